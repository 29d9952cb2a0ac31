/*
 * latency_histogram.c: the log-linear latency histogram of licensor-load.
 *
 * Bucket layout (S = LATENCY_HISTOGRAM_SUB_BITS): values v < 2^S have bucket
 * v (width 1). A value v >= 2^S with highest set bit k keeps its top S+1
 * bits: bucket (k - S + 1) × 2^S + (v >> (k - S)) - 2^S, width 2^(k - S).
 * Buckets are in increasing order of value, so a percentile is one walk over
 * the counts.
 */
#include "latency_histogram.h"

#include <string.h>

#define SUB_COUNT (1u << LATENCY_HISTOGRAM_SUB_BITS)

void latency_histogram_init(struct latency_histogram *histogram)
{
	memset(histogram, 0, sizeof(*histogram));
	histogram->min = UINT64_MAX;
}

unsigned latency_histogram_bucket_of(uint64_t value_ns)
{
	if (value_ns < SUB_COUNT)
		return (unsigned)value_ns;
	unsigned top_bit = 63u - (unsigned)__builtin_clzll(value_ns);
	if (top_bit > LATENCY_HISTOGRAM_TOP_BITS)
		return LATENCY_HISTOGRAM_BUCKETS - 1;
	unsigned shift = top_bit - LATENCY_HISTOGRAM_SUB_BITS;
	return (shift + 1) * SUB_COUNT + (unsigned)(value_ns >> shift) - SUB_COUNT;
}

uint64_t latency_histogram_bucket_low(unsigned bucket)
{
	if (bucket < SUB_COUNT)
		return bucket;
	unsigned shift = bucket / SUB_COUNT - 1;
	return (uint64_t)(SUB_COUNT + bucket % SUB_COUNT) << shift;
}

uint64_t latency_histogram_bucket_width(unsigned bucket)
{
	if (bucket < SUB_COUNT)
		return 1;
	return (uint64_t)1 << (bucket / SUB_COUNT - 1);
}

void latency_histogram_record(struct latency_histogram *histogram, uint64_t value_ns)
{
	histogram->counts[latency_histogram_bucket_of(value_ns)]++;
	histogram->total++;
	if (value_ns < histogram->min)
		histogram->min = value_ns;
	if (value_ns > histogram->max)
		histogram->max = value_ns;
}

void latency_histogram_merge(struct latency_histogram *destination, const struct latency_histogram *source)
{
	for (unsigned i = 0; i < LATENCY_HISTOGRAM_BUCKETS; i++)
		destination->counts[i] += source->counts[i];
	destination->total += source->total;
	if (source->min < destination->min)
		destination->min = source->min;
	if (source->max > destination->max)
		destination->max = source->max;
}

uint64_t latency_histogram_percentile(const struct latency_histogram *histogram, double percentile)
{
	if (histogram->total == 0)
		return 0;
	double wanted = percentile / 100.0 * (double)histogram->total;
	uint64_t rank = wanted < 1 ? 1 : (uint64_t)wanted;
	if ((double)rank < wanted)
		rank++; /* ceil, without libm */
	if (rank >= histogram->total)
		return histogram->max; /* the top rank is the maximum, known exactly */
	uint64_t seen = 0;
	unsigned bucket = 0;
	for (; bucket < LATENCY_HISTOGRAM_BUCKETS; bucket++) {
		seen += histogram->counts[bucket];
		if (seen >= rank)
			break;
	}
	uint64_t value = latency_histogram_bucket_low(bucket) + latency_histogram_bucket_width(bucket) / 2;
	if (value > histogram->max)
		value = histogram->max;
	if (value < histogram->min)
		value = histogram->min;
	return value;
}

uint64_t latency_histogram_max(const struct latency_histogram *histogram)
{
	return histogram->max;
}

uint64_t latency_histogram_count(const struct latency_histogram *histogram)
{
	return histogram->total;
}
