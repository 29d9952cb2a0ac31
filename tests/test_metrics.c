/*
 * test_metrics.c: the /metrics page (io/metrics.h). Known engine, key usage
 * and server figures render to exact lines: cumulative buckets, +Inf equal to
 * _count, error codes by their stable strings, the "other" row of private-key
 * operations (always present), escaped label values, latency bucket edges.
 * Every page is also checked against the text exposition format 0.0.4
 * (promtool is not available here): HELP and TYPE once per family and before
 * its samples, sample lines `name{labels} value`, counters ending in _total,
 * histogram buckets rising to +Inf.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/metrics.h"

#define PAGE_LIMIT (1 << 20)

/* ---- a small checker of the exposition format ---- */

struct family_seen {
	char name[128];
	char type[16];
	bool help, typed, sampled;
};

struct format_check {
	struct family_seen families[64];
	size_t family_count;
	/* the histogram being read: its last le bound and cumulative count */
	double last_bound;
	uint64_t last_bucket;
	bool saw_infinity;
	char problem[256]; /* the first problem found */
};

/* Records the problem and makes the enclosing function return false. */
#define PROBLEM(check, ...)                                                                                  \
	do {                                                                                                 \
		snprintf((check)->problem, sizeof(check)->problem, __VA_ARGS__);                             \
		return false;                                                                                \
	} while (0)

static bool name_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
	       (!first && c >= '0' && c <= '9');
}

/* Reads a metric or label name at *cursor; false if there is none. */
static bool read_name(const char **cursor, char *out, size_t size)
{
	size_t length = 0;
	while (name_char((*cursor)[length], length == 0)) {
		if (length + 1 >= size)
			return false;
		out[length] = (*cursor)[length];
		length++;
	}
	out[length] = '\0';
	*cursor += length;
	return length > 0;
}

static struct family_seen *family_named(struct format_check *check, const char *name)
{
	for (size_t i = 0; i < check->family_count; i++)
		if (strcmp(check->families[i].name, name) == 0)
			return &check->families[i];
	return NULL;
}

static bool ends_with(const char *text, const char *suffix)
{
	size_t length = strlen(text), suffix_length = strlen(suffix);
	return length >= suffix_length && strcmp(text + length - suffix_length, suffix) == 0;
}

/* The family a sample name belongs to: itself, or a histogram's name without
 * _bucket, _sum or _count. */
static struct family_seen *family_of_sample(struct format_check *check, const char *sample)
{
	struct family_seen *family = family_named(check, sample);
	if (family != NULL)
		return family;
	static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
	for (size_t i = 0; i < 3; i++) {
		if (!ends_with(sample, suffixes[i]))
			continue;
		char base[128];
		snprintf(base, sizeof base, "%.*s", (int)(strlen(sample) - strlen(suffixes[i])), sample);
		family = family_named(check, base);
		if (family != NULL && strcmp(family->type, "histogram") == 0)
			return family;
	}
	return NULL;
}

static bool check_comment(struct format_check *check, const char *line)
{
	char name[128], kind[8];
	const char *cursor = line + 2;
	if (line[1] != ' ' || (strncmp(cursor, "HELP ", 5) != 0 && strncmp(cursor, "TYPE ", 5) != 0))
		return true; /* a plain comment */
	snprintf(kind, sizeof kind, "%.4s", cursor);
	cursor += 5;
	if (!read_name(&cursor, name, sizeof name) || *cursor != ' ' || cursor[1] == '\0')
		PROBLEM(check, "bad %s line: %s", kind, line);
	cursor++;
	if (strncmp(name, "licensor_", 9) != 0)
		PROBLEM(check, "%s is not under licensor_", name);
	struct family_seen *family = family_named(check, name);
	if (family == NULL) {
		if (check->family_count == 64)
			PROBLEM(check, "too many families");
		family = &check->families[check->family_count++];
		memset(family, 0, sizeof *family);
		snprintf(family->name, sizeof family->name, "%s", name);
	}
	if (family->sampled)
		PROBLEM(check, "%s of %s after its samples", kind, name);
	if (strcmp(kind, "HELP") == 0) {
		if (family->help)
			PROBLEM(check, "two HELP lines for %s", name);
		family->help = true;
		return true;
	}
	if (family->typed)
		PROBLEM(check, "two TYPE lines for %s", name);
	family->typed = true;
	if (strcmp(cursor, "counter") != 0 && strcmp(cursor, "gauge") != 0 &&
	    strcmp(cursor, "histogram") != 0 && strcmp(cursor, "summary") != 0 &&
	    strcmp(cursor, "untyped") != 0)
		PROBLEM(check, "unknown type in: %s", line);
	snprintf(family->type, sizeof family->type, "%s", cursor);
	if (strcmp(cursor, "counter") == 0 && !ends_with(name, "_total"))
		PROBLEM(check, "counter %s does not end in _total", name);
	return true;
}

/* Parses `{name="value",…}` (if any), checking escapes; copies the le
 * label's value to `le` ("" when there is none). */
static bool check_labels(struct format_check *check, const char **cursor, const char *line, char *le,
			 size_t le_size)
{
	le[0] = '\0';
	if (**cursor != '{')
		return true;
	(*cursor)++;
	while (**cursor != '}') {
		char label[64], value[256];
		size_t length = 0;
		if (!read_name(cursor, label, sizeof label) || **cursor != '=' || (*cursor)[1] != '"')
			PROBLEM(check, "bad label in: %s", line);
		*cursor += 2;
		while (**cursor != '"') {
			char c = **cursor;
			if (c == '\0')
				PROBLEM(check, "unterminated label value in: %s", line);
			if (c == '\\') {
				char escaped = (*cursor)[1];
				if (escaped != '\\' && escaped != '"' && escaped != 'n')
					PROBLEM(check, "bad escape in: %s", line);
				c = escaped == 'n' ? '\n' : escaped;
				(*cursor)++;
			}
			if (length + 1 >= sizeof value)
				PROBLEM(check, "label value too long in: %s", line);
			value[length++] = c;
			(*cursor)++;
		}
		value[length] = '\0';
		(*cursor)++;
		if (strcmp(label, "le") == 0)
			snprintf(le, le_size, "%s", value);
		if (**cursor == ',')
			(*cursor)++;
		else if (**cursor != '}')
			PROBLEM(check, "bad label list in: %s", line);
	}
	(*cursor)++;
	return true;
}

static bool parse_value(const char *text, double *value)
{
	if (strcmp(text, "+Inf") == 0) {
		*value = INFINITY;
		return true;
	}
	if (strcmp(text, "-Inf") == 0) {
		*value = -INFINITY;
		return true;
	}
	if (strcmp(text, "NaN") == 0) {
		*value = NAN;
		return true;
	}
	char *end = NULL;
	*value = strtod(text, &end);
	return end != text && *end == '\0' && (text[0] == '-' || (text[0] >= '0' && text[0] <= '9'));
}

static bool check_sample(struct format_check *check, const char *line)
{
	char name[128], le[256];
	const char *cursor = line;
	double value = 0;
	if (!read_name(&cursor, name, sizeof name))
		PROBLEM(check, "no metric name: %s", line);
	if (!check_labels(check, &cursor, line, le, sizeof le))
		return false;
	if (*cursor != ' ' || !parse_value(cursor + 1, &value))
		PROBLEM(check, "not `name{labels} value`: %s", line);
	struct family_seen *family = family_of_sample(check, name);
	if (family == NULL || !family->typed || !family->help)
		PROBLEM(check, "a sample of a family without HELP and TYPE: %s", line);
	family->sampled = true;
	if (strcmp(family->type, "histogram") != 0)
		return true;
	/* Buckets rise with le and end at +Inf, whose count is _count's. */
	if (ends_with(name, "_bucket")) {
		double bound = 0;
		if (le[0] == '\0' || !parse_value(le, &bound))
			PROBLEM(check, "a bucket without an le bound: %s", line);
		if (check->saw_infinity) { /* the next histogram's first bucket */
			check->saw_infinity = false;
			check->last_bound = -INFINITY;
			check->last_bucket = 0;
		}
		if (!(bound > check->last_bound) || (uint64_t)value < check->last_bucket)
			PROBLEM(check, "buckets not cumulative or out of order at: %s", line);
		check->last_bound = bound;
		check->last_bucket = (uint64_t)value;
		check->saw_infinity = isinf(bound);
	} else if (ends_with(name, "_count")) {
		if (!check->saw_infinity || (uint64_t)value != check->last_bucket)
			PROBLEM(check, "_count is not the +Inf bucket: %s", line);
		check->saw_infinity = false;
		check->last_bound = -INFINITY;
		check->last_bucket = 0;
	}
	return true;
}

/* NULL when `page` follows the format, else what is wrong (static buffer). */
static const char *exposition_format_problem(const char *page)
{
	static struct format_check check;
	memset(&check, 0, sizeof check);
	check.last_bound = -INFINITY;
	size_t length = strlen(page);
	if (length == 0 || page[length - 1] != '\n')
		return "the page does not end with a line feed";
	char *copy = strdup(page);
	bool good = true;
	char *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); good && line; line = strtok_r(NULL, "\n", &save))
		good = line[0] == '#' ? check_comment(&check, line) : check_sample(&check, line);
	for (size_t i = 0; good && i < check.family_count; i++)
		if (!check.families[i].sampled) {
			snprintf(check.problem, sizeof check.problem, "family %s has no sample",
				 check.families[i].name);
			good = false;
		}
	free(copy);
	return good ? NULL : check.problem;
}

static void check_exposition_format(const char *page)
{
	const char *problem = exposition_format_problem(page);
	if (problem != NULL)
		fail_msg("%s", problem);
}

/* ---- fixtures ---- */

static void assert_line(const char *page, const char *line)
{
	size_t length = strlen(line);
	for (const char *at = page; (at = strstr(at, line)) != NULL; at++)
		if ((at == page || at[-1] == '\n') && at[length] == '\n')
			return;
	fail_msg("line not in the page: %s\n%s", line, page);
}

static void assert_no_line_starting(const char *page, const char *prefix)
{
	for (const char *at = page; (at = strstr(at, prefix)) != NULL; at++)
		if (at == page || at[-1] == '\n')
			fail_msg("unexpected line: %.80s", at);
}

static char *render(const lic_engine_stats *engine, const lic_key_usage *usage, size_t usage_count,
		    uint64_t usage_other, const struct server_metrics *server)
{
	struct byte_builder builder;
	byte_builder_init(&builder, PAGE_LIMIT);
	metrics_render(&builder, engine, usage, usage_count, usage_other, server);
	assert_false(builder.failed);
	size_t length = 0;
	char *page = byte_builder_release(&builder, &length);
	assert_non_null(page);
	assert_int_equal(strlen(page), length);
	byte_builder_cleanup(&builder);
	check_exposition_format(page);
	return page;
}

static lic_engine_stats known_engine(void)
{
	lic_engine_stats engine = {0};
	engine.licenses_issued = 7;
	engine.errors_by_status[LIC_NO_RIGHTS] = 2;
	engine.errors_by_status[LIC_MALFORMED] = 1;
	engine.errors = 3;
	/* batches of 1, 1, 1, 2, 5, 8 and 300 jobs */
	engine.batch_size_buckets[0] = 3; /* ≤1 */
	engine.batch_size_buckets[1] = 1; /* ≤2 */
	engine.batch_size_buckets[3] = 2; /* ≤8 */
	engine.batch_size_buckets[8] = 1; /* +Inf */
	engine.batches = 7;
	engine.batched_jobs = 318;
	engine.queue_depth = 12;
	engine.private_key_operations = 11;
	engine.pl_cache_hits = 4;
	engine.pl_cache_misses = 5;
	engine.rac_cache_hits = 6;
	engine.rac_cache_misses = 1;
	engine.compromised_uses = 4;
	engine.pl_cache_entries = 5;
	return engine;
}

/* ---- tests ---- */

static void test_engine_figures_render_exactly(void **state)
{
	(void)state;
	lic_engine_stats engine = known_engine();
	struct server_metrics server = {0};
	char *page = render(&engine, NULL, 0, 0, &server);
	assert_line(page, "# HELP licensor_licenses_issued_total Use licenses issued.");
	assert_line(page, "# TYPE licensor_licenses_issued_total counter");
	assert_line(page, "licensor_licenses_issued_total 7");
	assert_line(page, "# TYPE licensor_license_errors_total counter");
	assert_line(page, "licensor_license_errors_total{code=\"NO_RIGHTS\"} 2");
	assert_line(page, "licensor_license_errors_total{code=\"MALFORMED\"} 1");
	assert_line(page, "licensor_license_errors_total{code=\"KEY_REVOKED\"} 0"); /* zeros too */
	assert_no_line_starting(page, "licensor_license_errors_total{code=\"OK\"}");
	/* cumulative buckets; +Inf and _count are the number of batches */
	assert_line(page, "# TYPE licensor_engine_batch_size histogram");
	assert_line(page, "licensor_engine_batch_size_bucket{le=\"1\"} 3");
	assert_line(page, "licensor_engine_batch_size_bucket{le=\"2\"} 4");
	assert_line(page, "licensor_engine_batch_size_bucket{le=\"4\"} 4");
	assert_line(page, "licensor_engine_batch_size_bucket{le=\"8\"} 6");
	assert_line(page, "licensor_engine_batch_size_bucket{le=\"128\"} 6");
	assert_line(page, "licensor_engine_batch_size_bucket{le=\"+Inf\"} 7");
	assert_line(page, "licensor_engine_batch_size_sum 318");
	assert_line(page, "licensor_engine_batch_size_count 7");
	assert_line(page, "# TYPE licensor_engine_queue_depth gauge");
	assert_line(page, "licensor_engine_queue_depth 12");
	assert_line(page, "licensor_pl_cache_hits_total 4");
	assert_line(page, "licensor_pl_cache_misses_total 5");
	assert_line(page, "licensor_pl_cache_entries 5");
	assert_line(page, "licensor_rac_cache_hits_total 6");
	assert_line(page, "licensor_rac_cache_misses_total 1");
	assert_line(page, "licensor_compromised_uses_total 4");
	/* no key usage reported: only the other row, at 0 */
	assert_line(page, "licensor_private_key_operations_total{tenant=\"other\",version=\"other\"} 0");
	assert_no_line_starting(page, "licensor_compromised_version_uses_total{");
	free(page);
}

static void test_key_usage_rows_and_label_escaping(void **state)
{
	(void)state;
	lic_engine_stats engine = known_engine();
	struct server_metrics server = {0};
	lic_key_usage usage[2] = {
	    {.tenant = "contoso", .version = 3, .private_key_operations = 5, .compromised_uses = 0},
	    {.tenant = "we\"ird\\ten\nant", .version = 1, .private_key_operations = 2, .compromised_uses = 4},
	};
	char *page = render(&engine, usage, 2, 4, &server);
	assert_line(page, "# TYPE licensor_private_key_operations_total counter");
	assert_line(page, "licensor_private_key_operations_total{tenant=\"contoso\",version=\"3\"} 5");
	assert_line(
	    page, "licensor_private_key_operations_total{tenant=\"we\\\"ird\\\\ten\\nant\",version=\"1\"} 2");
	assert_line(page, "licensor_private_key_operations_total{tenant=\"other\",version=\"other\"} 4");
	/* per version only where there were compromised uses */
	assert_line(
	    page,
	    "licensor_compromised_version_uses_total{tenant=\"we\\\"ird\\\\ten\\nant\",version=\"1\"} 4");
	assert_no_line_starting(page, "licensor_compromised_version_uses_total{tenant=\"contoso\"");
	free(page);
}

static void test_server_figures_and_latency_buckets(void **state)
{
	(void)state;
	lic_engine_stats engine = {0};
	struct server_metrics server = {.connections_open = 3,
					.connections_accepted = 10,
					.connections_refused = 2,
					.requests_total = 6,
					.overloaded_responses = 1,
					.timeouts_closed = 4,
					.keyring_reloads = 2,
					.keyring_reloaded_at = 1790000000};
	server_metrics_count_response(&server, 200);
	server_metrics_count_response(&server, 200);
	server_metrics_count_response(&server, 404);
	server_metrics_count_response(&server, 503);
	server_metrics_count_response(&server, 99);  /* not an HTTP status: dropped */
	server_metrics_count_response(&server, 600); /* likewise */
	assert_int_equal(server.responses_by_status[0], 0);
	server_metrics_observe_latency(&server, 50000);       /* 50 µs: le 0.0001 */
	server_metrics_observe_latency(&server, 100000);      /* exactly a bound: that bucket */
	server_metrics_observe_latency(&server, 1500000);     /* 1.5 ms: le 0.0025 */
	server_metrics_observe_latency(&server, 10000000000); /* 10 s: the last finite bucket */
	server_metrics_observe_latency(&server, 10000000001); /* over: +Inf only */
	assert_int_equal(server.latency_buckets[0], 2);
	assert_int_equal(server.latency_buckets[4], 1);
	assert_int_equal(server.latency_buckets[SERVER_LATENCY_BUCKETS - 1], 1);
	assert_int_equal(server.latency_buckets[SERVER_LATENCY_BUCKETS], 1);
	assert_int_equal(server.latency_count, 5);
	char *page = render(&engine, NULL, 0, 0, &server);
	assert_line(page, "# TYPE licensor_http_connections_open gauge");
	assert_line(page, "licensor_http_connections_open 3");
	assert_line(page, "licensor_http_connections_accepted_total 10");
	assert_line(page, "licensor_http_connections_refused_total 2");
	assert_line(page, "licensor_http_connections_timed_out_total 4");
	assert_line(page, "licensor_http_requests_total 6");
	assert_line(page, "licensor_http_responses_total{code=\"1xx\"} 0");
	assert_line(page, "licensor_http_responses_total{code=\"2xx\"} 2");
	assert_line(page, "licensor_http_responses_total{code=\"4xx\"} 1");
	assert_line(page, "licensor_http_responses_total{code=\"5xx\"} 1");
	assert_line(page, "licensor_http_overloaded_responses_total 1");
	assert_line(page, "# TYPE licensor_http_request_duration_seconds histogram");
	assert_line(page, "licensor_http_request_duration_seconds_bucket{le=\"0.0001\"} 2");
	assert_line(page, "licensor_http_request_duration_seconds_bucket{le=\"0.001\"} 2");
	assert_line(page, "licensor_http_request_duration_seconds_bucket{le=\"0.0025\"} 3");
	assert_line(page, "licensor_http_request_duration_seconds_bucket{le=\"5\"} 3");
	assert_line(page, "licensor_http_request_duration_seconds_bucket{le=\"10\"} 4");
	assert_line(page, "licensor_http_request_duration_seconds_bucket{le=\"+Inf\"} 5");
	assert_line(page, "licensor_http_request_duration_seconds_sum 20.001650001");
	assert_line(page, "licensor_http_request_duration_seconds_count 5");
	assert_line(page, "licensor_keyring_reloads_total 2");
	assert_line(page, "# TYPE licensor_keyring_last_reload_timestamp_seconds gauge");
	assert_line(page, "licensor_keyring_last_reload_timestamp_seconds 1790000000");
	free(page);
}

/* The same inputs give the same page, byte for byte; a builder too small
 * for it says so through `failed` instead of handing out half a page. */
static void test_page_is_stable_and_bounded(void **state)
{
	(void)state;
	lic_engine_stats engine = known_engine();
	struct server_metrics server = {0};
	server_metrics_observe_latency(&server, 3000000);
	char *first = render(&engine, NULL, 0, 7, &server);
	char *second = render(&engine, NULL, 0, 7, &server);
	assert_string_equal(first, second);
	struct byte_builder small;
	byte_builder_init(&small, strlen(first) - 1);
	metrics_render(&small, &engine, NULL, 0, 7, &server);
	assert_true(small.failed);
	size_t length = 0;
	assert_null(byte_builder_release(&small, &length));
	byte_builder_cleanup(&small);
	free(first);
	free(second);
}

/* The checker refuses what the format forbids, so its passes mean something. */
static void test_format_checker_refuses_bad_pages(void **state)
{
	(void)state;
	assert_null(exposition_format_problem("# HELP licensor_x_total x\n# TYPE licensor_x_total counter\n"
					      "licensor_x_total{a=\"q\\\"\\\\\\n\",b=\"\"} 1\n"));
	static const char *const bad[] = {
	    /* no space before the value */
	    "# HELP licensor_x_total x\n# TYPE licensor_x_total counter\nlicensor_x_total{a=\"b\"}1\n",
	    /* an escape the format does not have */
	    "# HELP licensor_x_total x\n# TYPE licensor_x_total counter\nlicensor_x_total{a=\"\\t\"} 1\n",
	    /* a counter without _total */
	    "# HELP licensor_x x\n# TYPE licensor_x counter\nlicensor_x 1\n",
	    /* a sample without HELP and TYPE */
	    "licensor_y 1\n",
	    /* TYPE after the samples */
	    "# HELP licensor_y x\nlicensor_y 1\n# TYPE licensor_y gauge\n",
	    /* a value that is not a number */
	    "# HELP licensor_y x\n# TYPE licensor_y gauge\nlicensor_y one\n",
	    /* buckets that are not cumulative */
	    "# HELP licensor_h x\n# TYPE licensor_h histogram\nlicensor_h_bucket{le=\"1\"} 2\n"
	    "licensor_h_bucket{le=\"+Inf\"} 1\nlicensor_h_sum 1\nlicensor_h_count 1\n",
	    /* _count other than +Inf */
	    "# HELP licensor_h x\n# TYPE licensor_h histogram\nlicensor_h_bucket{le=\"+Inf\"} 2\n"
	    "licensor_h_sum 1\nlicensor_h_count 3\n",
	    /* no final line feed */
	    "# HELP licensor_y x\n# TYPE licensor_y gauge\nlicensor_y 1",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (exposition_format_problem(bad[i]) == NULL)
			fail_msg("case %zu passed the checker:\n%s", i, bad[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_engine_figures_render_exactly),
	    cmocka_unit_test(test_key_usage_rows_and_label_escaping),
	    cmocka_unit_test(test_server_figures_and_latency_buckets),
	    cmocka_unit_test(test_page_is_stable_and_bounded),
	    cmocka_unit_test(test_format_checker_refuses_bad_pages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
