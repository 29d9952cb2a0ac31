/*
 * metrics.h: what `GET /metrics` answers (DESIGN.md §6), in the Prometheus
 * text exposition format 0.0.4.
 *
 * Two sources: the engine's counters (lic_engine_get_stats and
 * lic_engine_get_key_usage, read by the caller just before rendering) and the
 * server's own, below, which only the I/O thread writes: plain integers, no
 * atomics, so render them on the I/O thread too.
 *
 * What the output promises (tests/test_metrics.c checks it):
 *   - every family has one HELP and one TYPE line before its samples; every
 *     name starts with licensor_, counters end in _total;
 *   - histograms have cumulative _bucket{le="…"} samples ending in le="+Inf",
 *     and _sum and _count, with +Inf equal to _count;
 *   - licensor_license_errors_total has a sample for every code (but OK),
 *     zeros included, and licensor_http_responses_total one for each class
 *     1xx … 5xx, so rate() has a series from the first scrape;
 *   - licensor_private_key_operations_total has one sample per reported
 *     (tenant, version) and always the {tenant="other",version="other"} one
 *     (0 when the engine's bound was never reached: that, too, is worth
 *     seeing); licensor_compromised_version_uses_total one per version with
 *     compromised uses, and no family at all without any (the total is
 *     licensor_compromised_uses_total, always present);
 *   - label values are escaped (backslash, double quote, line feed);
 *   - the same inputs give the same bytes.
 */
#ifndef LICENSOR_IO_METRICS_H
#define LICENSOR_IO_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "io/byte_builder.h"
#include "licensor.h"

/* The Content-Type of a rendered page. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Request latency buckets: 100 µs to 10 s in 1-2.5-5 steps, plus +Inf. */
#define SERVER_LATENCY_BUCKETS 16
/* The upper bound of each bucket but +Inf, in nanoseconds. */
extern const uint64_t server_latency_bounds_ns[SERVER_LATENCY_BUCKETS];

/* The server's own counters. Embedded (zero-initialise it); written by the
 * I/O thread only. */
struct server_metrics {
	uint64_t connections_open;     /* gauge */
	uint64_t connections_accepted; /* since start */
	uint64_t connections_refused;  /* closed at once: over the connection limit */
	uint64_t requests_total;       /* requests framed, whatever their answer */
	/* Responses by class: index = status / 100, so [1] is 1xx … [5] is 5xx;
	 * [0] is unused (server_metrics_count_response drops statuses outside
	 * 100 … 599). Exact license error codes are in the engine's counters. */
	uint64_t responses_by_status[6];
	uint64_t overloaded_responses; /* 503 answered at once by the I/O thread */
	uint64_t timeouts_closed;      /* connections closed by the header, request or idle timeout */
	/* Request latency, from the end of the request to the end of sending its
	 * answer (the server's own time and the send). Buckets are not cumulative: [i] counts latencies above
	 * bound i - 1 and at most bound i; [SERVER_LATENCY_BUCKETS] the rest. */
	uint64_t latency_buckets[SERVER_LATENCY_BUCKETS + 1];
	uint64_t latency_count;
	double latency_sum_seconds;
	uint64_t keyring_reloads;
	int64_t keyring_reloaded_at; /* Unix seconds of the last reload; 0: none yet */
};

void server_metrics_observe_latency(struct server_metrics *metrics, uint64_t nanoseconds);
/* Counts one response of HTTP status `status` in its class. */
void server_metrics_count_response(struct server_metrics *metrics, int status);

/* Renders everything (engine stats, key usage, server metrics) as Prometheus
 * text appended to builder; the caller checks builder->failed once after.
 * `usage` holds `usage_count` entries from lic_engine_get_key_usage and
 * `usage_other` its other_operations. Nothing is kept: the inputs are only
 * read, and may be freed when it returns. */
void metrics_render(struct byte_builder *builder, const lic_engine_stats *engine, const lic_key_usage *usage,
		    size_t usage_count, uint64_t usage_other, const struct server_metrics *server);

#endif
