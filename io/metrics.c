/*
 * metrics.c: the server's counters and the Prometheus text page (see
 * metrics.h).
 *
 * The page is written family by family in a fixed order, so two scrapes of
 * the same state are byte for byte the same and a test can assert exact
 * lines. A histogram's _count is its +Inf bucket (the sum of the buckets):
 * the engine's counters are read one by one while workers run, and the
 * format's promise that +Inf equals _count must hold even then.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "io/metrics.h"

const uint64_t server_latency_bounds_ns[SERVER_LATENCY_BUCKETS] = {
    100000,   250000,    500000,    1000000,   2500000,    5000000,    10000000,   25000000,
    50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000,
};

/* The same bounds as the le label writes them (seconds, shortest exact form). */
static const char *const latency_bound_labels[SERVER_LATENCY_BUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",   "0.1",     "0.25",   "0.5",   "1",      "2.5",   "5",    "10",
};

void server_metrics_observe_latency(struct server_metrics *metrics, uint64_t nanoseconds)
{
	size_t bucket = 0;
	while (bucket < SERVER_LATENCY_BUCKETS && nanoseconds > server_latency_bounds_ns[bucket])
		bucket++;
	metrics->latency_buckets[bucket]++;
	metrics->latency_count++;
	metrics->latency_sum_seconds += (double)nanoseconds / 1e9;
}

void server_metrics_count_response(struct server_metrics *metrics, int status)
{
	if (status >= 100 && status <= 599)
		metrics->responses_by_status[status / 100]++;
}

/* ---- exposition format pieces ---- */

static void family(struct byte_builder *builder, const char *name, const char *type, const char *help)
{
	byte_builder_printf(builder, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(struct byte_builder *builder, const char *name, uint64_t value)
{
	byte_builder_printf(builder, "%s %" PRIu64 "\n", name, value);
}

static void counter(struct byte_builder *builder, const char *name, const char *help, uint64_t value)
{
	family(builder, name, "counter", help);
	sample(builder, name, value);
}

static void gauge(struct byte_builder *builder, const char *name, const char *help, int64_t value)
{
	family(builder, name, "gauge", help);
	byte_builder_printf(builder, "%s %" PRId64 "\n", name, value);
}

/* A label value as the format wants it: backslash, double quote and line
 * feed escaped; every other byte as it is. */
static void label_value(struct byte_builder *builder, const char *value)
{
	for (const char *cursor = value; *cursor != '\0'; cursor++) {
		switch (*cursor) {
		case '\\':
			byte_builder_append_string(builder, "\\\\");
			break;
		case '"':
			byte_builder_append_string(builder, "\\\"");
			break;
		case '\n':
			byte_builder_append_string(builder, "\\n");
			break;
		default:
			byte_builder_append(builder, cursor, 1);
		}
	}
}

/* name{tenant="…",version="…"} value */
static void version_sample(struct byte_builder *builder, const char *name, const char *tenant,
			   const char *version, uint64_t value)
{
	byte_builder_printf(builder, "%s{tenant=\"", name);
	label_value(builder, tenant);
	byte_builder_append_string(builder, "\",version=\"");
	label_value(builder, version);
	byte_builder_printf(builder, "\"} %" PRIu64 "\n", value);
}

/* The _bucket, _sum and _count samples of a histogram whose plain
 * (non-cumulative) bucket counts are `buckets`, the last one +Inf. The sum is
 * already formatted. */
static void histogram_samples(struct byte_builder *builder, const char *name, const uint64_t *buckets,
			      const char *const *bound_labels, size_t bound_count, const char *sum)
{
	uint64_t cumulative = 0;
	for (size_t i = 0; i < bound_count; i++) {
		cumulative += buckets[i];
		byte_builder_printf(builder, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name, bound_labels[i],
				    cumulative);
	}
	cumulative += buckets[bound_count];
	byte_builder_printf(builder, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cumulative);
	byte_builder_printf(builder, "%s_sum %s\n", name, sum);
	byte_builder_printf(builder, "%s_count %" PRIu64 "\n", name, cumulative);
}

/* ---- the page ---- */

static void render_engine(struct byte_builder *builder, const lic_engine_stats *engine)
{
	counter(builder, "licensor_licenses_issued_total", "Use licenses issued.", engine->licenses_issued);

	family(builder, "licensor_license_errors_total", "counter",
	       "License requests refused, by error code: one per refused item, one per AcquireLicense "
	       "body refused as a whole.");
	for (int status = LIC_OK + 1; status < LIC_STATUS_COUNT; status++)
		byte_builder_printf(builder, "licensor_license_errors_total{code=\"%s\"} %" PRIu64 "\n",
				    lic_status_code((lic_status)status), engine->errors_by_status[status]);

	family(builder, "licensor_engine_batch_size", "histogram",
	       "Jobs a worker took from the queue at once.");
	char bound_text[LIC_ENGINE_BATCH_BUCKETS - 1][24];
	const char *bound_labels[LIC_ENGINE_BATCH_BUCKETS - 1];
	for (size_t i = 0; i + 1 < LIC_ENGINE_BATCH_BUCKETS; i++) {
		snprintf(bound_text[i], sizeof bound_text[i], "%" PRIu64, lic_engine_batch_bucket_bound(i));
		bound_labels[i] = bound_text[i];
	}
	char sum[32];
	snprintf(sum, sizeof sum, "%" PRIu64, engine->batched_jobs);
	histogram_samples(builder, "licensor_engine_batch_size", engine->batch_size_buckets, bound_labels,
			  LIC_ENGINE_BATCH_BUCKETS - 1, sum);

	gauge(builder, "licensor_engine_queue_depth", "Jobs waiting for an engine worker.",
	      (int64_t)engine->queue_depth);

	counter(builder, "licensor_pl_cache_hits_total", "PL cache lookups that found the content key.",
		engine->pl_cache_hits);
	counter(builder, "licensor_pl_cache_misses_total", "PL cache lookups that needed an unwrap.",
		engine->pl_cache_misses);
	gauge(builder, "licensor_pl_cache_entries", "Content keys held in the PL cache.",
	      (int64_t)engine->pl_cache_entries);
	counter(builder, "licensor_rac_cache_hits_total", "RACs found verified in the RAC cache.",
		engine->rac_cache_hits);
	counter(builder, "licensor_rac_cache_misses_total", "RACs whose signature had to be verified.",
		engine->rac_cache_misses);

	counter(builder, "licensor_compromised_uses_total",
		"License requests for content under a compromised key version.", engine->compromised_uses);
}

static void render_key_usage(struct byte_builder *builder, const lic_key_usage *usage, size_t usage_count,
			     uint64_t usage_other)
{
	char version[16];
	family(builder, "licensor_private_key_operations_total", "counter",
	       "Private-key operations (unwraps and signatures) by tenant key version; versions past the "
	       "engine's bound count as other.");
	for (size_t i = 0; i < usage_count; i++) {
		snprintf(version, sizeof version, "%" PRIu32, usage[i].version);
		version_sample(builder, "licensor_private_key_operations_total", usage[i].tenant, version,
			       usage[i].private_key_operations);
	}
	version_sample(builder, "licensor_private_key_operations_total", "other", "other", usage_other);

	/* Only versions with uses, and no family at all without one: a family
	 * without samples is noise. */
	bool any_compromised = false;
	for (size_t i = 0; i < usage_count; i++)
		any_compromised = any_compromised || usage[i].compromised_uses > 0;
	if (!any_compromised)
		return;
	family(builder, "licensor_compromised_version_uses_total", "counter",
	       "License requests for content under a compromised key version, by version.");
	for (size_t i = 0; i < usage_count; i++) {
		if (usage[i].compromised_uses == 0)
			continue;
		snprintf(version, sizeof version, "%" PRIu32, usage[i].version);
		version_sample(builder, "licensor_compromised_version_uses_total", usage[i].tenant, version,
			       usage[i].compromised_uses);
	}
}

static void render_server(struct byte_builder *builder, const struct server_metrics *server)
{
	gauge(builder, "licensor_http_connections_open", "HTTP connections open now.",
	      (int64_t)server->connections_open);
	counter(builder, "licensor_http_connections_accepted_total", "HTTP connections accepted.",
		server->connections_accepted);
	counter(builder, "licensor_http_connections_refused_total",
		"HTTP connections closed at once: over the connection limit.", server->connections_refused);
	counter(builder, "licensor_http_connections_timed_out_total",
		"HTTP connections closed by the header, request or idle timeout.", server->timeouts_closed);
	counter(builder, "licensor_http_requests_total", "HTTP requests received.", server->requests_total);

	family(builder, "licensor_http_responses_total", "counter", "HTTP responses sent, by status class.");
	for (int status_class = 1; status_class <= 5; status_class++)
		byte_builder_printf(builder, "licensor_http_responses_total{code=\"%dxx\"} %" PRIu64 "\n",
				    status_class, server->responses_by_status[status_class]);
	counter(builder, "licensor_http_overloaded_responses_total",
		"503 OVERLOADED answered at once because the engine's queue was full.",
		server->overloaded_responses);

	family(builder, "licensor_http_request_duration_seconds", "histogram",
	       "From the end of a request to the end of sending its answer.");
	char sum[48];
	snprintf(sum, sizeof sum, "%.9f", server->latency_sum_seconds);
	histogram_samples(builder, "licensor_http_request_duration_seconds", server->latency_buckets,
			  latency_bound_labels, SERVER_LATENCY_BUCKETS, sum);

	counter(builder, "licensor_keyring_reloads_total", "Keyring snapshots swapped in after a change.",
		server->keyring_reloads);
	gauge(builder, "licensor_keyring_last_reload_timestamp_seconds",
	      "Unix time of the last keyring reload; 0 before the first.", server->keyring_reloaded_at);
}

void metrics_render(struct byte_builder *builder, const lic_engine_stats *engine, const lic_key_usage *usage,
		    size_t usage_count, uint64_t usage_other, const struct server_metrics *server)
{
	render_engine(builder, engine);
	render_key_usage(builder, usage, usage_count, usage_other);
	render_server(builder, server);
}
