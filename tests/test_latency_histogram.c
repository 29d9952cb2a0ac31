/*
 * test_latency_histogram.c: licensor-load's log-linear histogram
 * (bench/latency_histogram.c) against known distributions.
 *
 * Every sample is also kept in an array; the exact percentile is the sorted
 * sample of rank ceil(p/100 × n) (the histogram's own definition), and the
 * histogram's answer must be within LATENCY_HISTOGRAM_RELATIVE_ERROR of it
 * (0.4 %; the test allows exactly that, plus 1 ns for the rounding of a
 * bucket's middle). The distributions: uniform, exponential from a fixed
 * PRNG (xorshift64*), constant, and a bimodal merge of two histograms.
 *
 * The histogram lives in bench/, not in the library, so this file compiles
 * it in by including its source (no change to the test build).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>

#include "bench/latency_histogram.c"

#define SAMPLES 200000

static uint64_t prng_state = 0x9e3779b97f4a7c15ull;

static uint64_t prng_next(void)
{
	prng_state ^= prng_state >> 12;
	prng_state ^= prng_state << 25;
	prng_state ^= prng_state >> 27;
	return prng_state * 0x2545f4914f6cdd1dull;
}

/* Uniform in [0, 1). */
static double prng_unit(void)
{
	return (double)(prng_next() >> 11) / 9007199254740992.0;
}

/* ln x for x > 0, without libm (the unit tests link no -lm): x = m × 2^e, m in [0.5, 1), atanh series. */
static double natural_log(double x)
{
	int exponent = 0;
	while (x >= 1.0) {
		x /= 2;
		exponent++;
	}
	while (x < 0.5) {
		x *= 2;
		exponent--;
	}
	double z = (x - 1) / (x + 1), z2 = z * z, term = z, sum = 0;
	for (int k = 1; k < 80; k += 2) {
		sum += term / k;
		term *= z2;
	}
	return exponent * 0.69314718055994530942 + 2 * sum;
}

static int compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t exact_percentile(const uint64_t *sorted, size_t count, double percentile)
{
	double wanted = percentile / 100.0 * (double)count;
	size_t rank = wanted < 1 ? 1 : (size_t)wanted;
	if ((double)rank < wanted)
		rank++;
	return sorted[rank - 1];
}

static void assert_close(uint64_t exact, uint64_t reported)
{
	double allowed = (double)exact * LATENCY_HISTOGRAM_RELATIVE_ERROR + 1.0;
	double difference = __builtin_fabs((double)reported - (double)exact);
	if (difference > allowed)
		fail_msg("percentile %llu reported as %llu: off by %.0f ns, more than %.0f allowed",
			 (unsigned long long)exact, (unsigned long long)reported, difference, allowed);
}

static const double percentiles[] = {0.1, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};

static void check_samples(const struct latency_histogram *histogram, uint64_t *samples, size_t count)
{
	qsort(samples, count, sizeof(*samples), compare_u64);
	assert_int_equal(latency_histogram_count(histogram), count);
	assert_int_equal(latency_histogram_max(histogram), samples[count - 1]);
	for (size_t i = 0; i < sizeof(percentiles) / sizeof(percentiles[0]); i++)
		assert_close(exact_percentile(samples, count, percentiles[i]),
			     latency_histogram_percentile(histogram, percentiles[i]));
	assert_int_equal(latency_histogram_percentile(histogram, 100), samples[count - 1]);
}

static void test_bucket_layout(void **state)
{
	/* Exact below 2^S; every bucket's bounds contain the values mapped to it; widths ≤ 2^-S of low. */
	for (uint64_t v = 0; v < 128; v++)
		assert_int_equal(latency_histogram_bucket_of(v), v);
	unsigned previous = 0;
	for (uint64_t v = 1; v < ((uint64_t)1 << LATENCY_HISTOGRAM_TOP_BITS); v = v + 1 + v / 97) {
		unsigned bucket = latency_histogram_bucket_of(v);
		assert_true(bucket >= previous);
		previous = bucket;
		assert_true(latency_histogram_bucket_low(bucket) <= v);
		assert_true(v <
			    latency_histogram_bucket_low(bucket) + latency_histogram_bucket_width(bucket));
		if (v >= 128)
			assert_true(latency_histogram_bucket_width(bucket) * 128 <=
				    latency_histogram_bucket_low(bucket));
	}
	/* 100 s fits below the top; 1000 s goes to the top bucket. */
	assert_true(latency_histogram_bucket_of(100000000000ull) < LATENCY_HISTOGRAM_BUCKETS - 1);
	assert_int_equal(latency_histogram_bucket_of(1000000000000ull), LATENCY_HISTOGRAM_BUCKETS - 1);
	assert_int_equal(latency_histogram_bucket_of(UINT64_MAX), LATENCY_HISTOGRAM_BUCKETS - 1);
}

static void test_empty(void **state)
{
	struct latency_histogram histogram;
	latency_histogram_init(&histogram);
	assert_int_equal(latency_histogram_count(&histogram), 0);
	assert_int_equal(latency_histogram_max(&histogram), 0);
	assert_int_equal(latency_histogram_percentile(&histogram, 50), 0);
}

static void test_constant(void **state)
{
	struct latency_histogram histogram;
	latency_histogram_init(&histogram);
	for (int i = 0; i < 1000; i++)
		latency_histogram_record(&histogram, 1234567);
	/* Clamped to [min, max], a constant distribution is reported exactly. */
	for (size_t i = 0; i < sizeof(percentiles) / sizeof(percentiles[0]); i++)
		assert_int_equal(latency_histogram_percentile(&histogram, percentiles[i]), 1234567);
	assert_int_equal(latency_histogram_max(&histogram), 1234567);
}

static void test_uniform(void **state)
{
	/* Uniform from 1 µs to 100 ms. */
	uint64_t *samples = malloc(SAMPLES * sizeof(*samples));
	assert_non_null(samples);
	struct latency_histogram histogram;
	latency_histogram_init(&histogram);
	for (size_t i = 0; i < SAMPLES; i++) {
		samples[i] = 1000 + (uint64_t)(prng_unit() * 99999000.0);
		latency_histogram_record(&histogram, samples[i]);
	}
	check_samples(&histogram, samples, SAMPLES);
	/* The median of U(1 µs, 100 ms) is 50.0005 ms: within 1 % with this many samples. */
	assert_true(__builtin_fabs((double)latency_histogram_percentile(&histogram, 50) - 50000500.0) <
		    500000.0);
	free(samples);
}

static void test_exponential(void **state)
{
	/* Exponential with mean 2 ms, plus 50 µs: a long tail across many powers of two. */
	uint64_t *samples = malloc(SAMPLES * sizeof(*samples));
	assert_non_null(samples);
	struct latency_histogram histogram;
	latency_histogram_init(&histogram);
	for (size_t i = 0; i < SAMPLES; i++) {
		samples[i] = 50000 + (uint64_t)(-natural_log(1.0 - prng_unit()) * 2000000.0);
		latency_histogram_record(&histogram, samples[i]);
	}
	check_samples(&histogram, samples, SAMPLES);
	/* Theory: p99 = 50 µs + 2 ms × ln 100 = 9.26 ms; within 3 % at this sample size. */
	double p99 = (double)latency_histogram_percentile(&histogram, 99);
	assert_true(__builtin_fabs(p99 - (50000.0 + 2000000.0 * natural_log(100.0))) < 0.03 * p99);
	free(samples);
}

static void test_merge_bimodal(void **state)
{
	/* Two histograms, fast (≈200 µs) and slow (≈2 s), merged: the same as one histogram of both. */
	size_t count = 20000;
	uint64_t *samples = malloc(count * sizeof(*samples));
	assert_non_null(samples);
	struct latency_histogram fast, slow, both;
	latency_histogram_init(&fast);
	latency_histogram_init(&slow);
	latency_histogram_init(&both);
	for (size_t i = 0; i < count; i++) {
		bool is_slow = i % 10 == 0;
		samples[i] =
		    is_slow ? 2000000000ull + prng_next() % 100000000ull : 200000 + prng_next() % 20000;
		latency_histogram_record(is_slow ? &slow : &fast, samples[i]);
		latency_histogram_record(&both, samples[i]);
	}
	latency_histogram_merge(&fast, &slow);
	assert_memory_equal(fast.counts, both.counts, sizeof(both.counts));
	assert_int_equal(fast.min, both.min);
	assert_int_equal(fast.max, both.max);
	check_samples(&fast, samples, count);
	/* p50 in the fast mode, p95 in the slow one. */
	assert_true(latency_histogram_percentile(&fast, 50) < 221000);
	assert_true(latency_histogram_percentile(&fast, 95) > 2000000000ull * 0.99);
	free(samples);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bucket_layout), cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_constant),      cmocka_unit_test(test_uniform),
	    cmocka_unit_test(test_exponential),   cmocka_unit_test(test_merge_bimodal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
