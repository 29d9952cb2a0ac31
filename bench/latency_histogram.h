/*
 * latency_histogram.h: a log-linear histogram of latencies in nanoseconds, for
 * licensor-load (DESIGN.md §8), in the manner of HdrHistogram.
 *
 * Values below 2^LATENCY_HISTOGRAM_SUB_BITS ns are counted exactly. Above
 * that, each power of two [2^k, 2^(k+1)) is split into 2^SUB_BITS equal
 * buckets, so a bucket is at most 2^-SUB_BITS (0.78 %) of its lower bound
 * wide, and a percentile, reported as the middle of its bucket, is within
 * LATENCY_HISTOGRAM_RELATIVE_ERROR (0.4 %) of the value of that rank. The
 * range reaches 2^LATENCY_HISTOGRAM_TOP_BITS ns (137 s); larger values are
 * counted in the top bucket (the exact maximum is kept on the side).
 *
 * The struct is plain data (about 34 KiB, no allocation): embed it or put it
 * on the heap; init zeroes it and there is nothing to clean up. Not
 * thread-safe: one histogram per thread, merged at the end.
 */
#ifndef LICENSOR_BENCH_LATENCY_HISTOGRAM_H
#define LICENSOR_BENCH_LATENCY_HISTOGRAM_H

#include <stdint.h>

#define LATENCY_HISTOGRAM_SUB_BITS 7
#define LATENCY_HISTOGRAM_TOP_BITS 37
#define LATENCY_HISTOGRAM_BUCKETS                                                                            \
	((LATENCY_HISTOGRAM_TOP_BITS - LATENCY_HISTOGRAM_SUB_BITS + 1) << LATENCY_HISTOGRAM_SUB_BITS)
/* The promised bound on |reported - exact| / exact for any percentile. */
#define LATENCY_HISTOGRAM_RELATIVE_ERROR (1.0 / (2 << LATENCY_HISTOGRAM_SUB_BITS))

struct latency_histogram {
	uint64_t counts[LATENCY_HISTOGRAM_BUCKETS];
	uint64_t total;
	uint64_t min; /* exact; UINT64_MAX while empty */
	uint64_t max; /* exact; 0 while empty */
};

void latency_histogram_init(struct latency_histogram *histogram);
void latency_histogram_record(struct latency_histogram *histogram, uint64_t value_ns);
/* Adds every count of source into destination. */
void latency_histogram_merge(struct latency_histogram *destination, const struct latency_histogram *source);
/*
 * The value at percentile (0 < percentile <= 100): the middle of the bucket
 * holding the sample of rank ceil(percentile/100 × total), clamped to
 * [min, max]; the exact maximum for the top rank. 0 for an empty histogram.
 */
uint64_t latency_histogram_percentile(const struct latency_histogram *histogram, double percentile);
uint64_t latency_histogram_max(const struct latency_histogram *histogram);
uint64_t latency_histogram_count(const struct latency_histogram *histogram);

/* Bucket arithmetic, exposed for the tests. */
unsigned latency_histogram_bucket_of(uint64_t value_ns);
uint64_t latency_histogram_bucket_low(unsigned bucket);
uint64_t latency_histogram_bucket_width(unsigned bucket);

#endif
