/*
 * test_http_framing.c: the HTTP/1.1 framer (io/http_framing.c). Requests come
 * out one at a time with the right fields, however the bytes are split;
 * pipelined requests in order; keep-alive rules; Expect: 100-continue;
 * chunked bodies; every request-smuggling shape refused with 400 (501 for an
 * unknown transfer coding); header and body limits exactly at and one over;
 * an idle framer holds no memory; nothing is reported after an error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/http_framing.h"

/* What one request looked like, copied out of the framer. */
struct seen {
	enum http_request_method method;
	char path[256], query[256], content_type[128], authorization[128], body[4096];
	size_t body_length;
	bool keep_alive, has_query, has_content_type, has_authorization;
};

struct run {
	struct seen requests[16];
	size_t count;
	size_t continues;
	int error_status;
};

static void copy_request(const struct http_request *request, struct seen *out)
{
	memset(out, 0, sizeof *out);
	out->method = request->method;
	assert_true(request->path_length < sizeof out->path);
	memcpy(out->path, request->path, request->path_length);
	out->has_query = request->query != NULL;
	if (request->query) {
		assert_true(request->query_length < sizeof out->query);
		memcpy(out->query, request->query, request->query_length);
	}
	if (request->content_type) {
		out->has_content_type = true;
		snprintf(out->content_type, sizeof out->content_type, "%s", request->content_type);
	}
	if (request->authorization) {
		out->has_authorization = true;
		snprintf(out->authorization, sizeof out->authorization, "%s", request->authorization);
	}
	assert_true(request->body_length <= sizeof out->body);
	if (request->body_length)
		memcpy(out->body, request->body, request->body_length);
	out->body_length = request->body_length;
	out->keep_alive = request->keep_alive;
}

/* Feeds `text` in pieces of `step` bytes (0: all at once), as a server would. */
static void feed_all(const struct http_limits *limits, const char *text, size_t length, size_t step,
		     struct run *run)
{
	struct http_framer framer;
	http_framer_init(&framer, limits);
	memset(run, 0, sizeof *run);
	size_t offset = 0;
	while (offset < length && run->error_status == 0) {
		size_t piece = step ? step : length;
		if (piece > length - offset)
			piece = length - offset;
		const char *data = text + offset;
		size_t left = piece;
		while (left > 0) {
			size_t consumed = 0;
			enum http_feed_result result = http_framer_feed(&framer, data, left, &consumed);
			assert_true(consumed <= left);
			data += consumed;
			left -= consumed;
			if (result == HTTP_FEED_NEED_MORE) {
				assert_int_equal(left, 0);
				break;
			}
			if (result == HTTP_FEED_CONTINUE) {
				run->continues++;
				continue;
			}
			if (result == HTTP_FEED_ERROR) {
				run->error_status = framer.error_status;
				assert_non_null(framer.error_reason);
				/* Nothing else is reported after an error. */
				size_t again = 0;
				assert_int_equal(
				    http_framer_feed(&framer, "GET / HTTP/1.1\r\n\r\n", 18, &again),
				    HTTP_FEED_ERROR);
				break;
			}
			assert_int_equal(result, HTTP_FEED_REQUEST);
			assert_true(run->count < 16);
			copy_request(&framer.request, &run->requests[run->count++]);
			http_framer_next(&framer);
		}
		offset += piece;
	}
	http_framer_cleanup(&framer);
}

static void feed_text(const char *text, struct run *run)
{
	feed_all(NULL, text, strlen(text), 0, run);
}

static void test_simple_get(void **state)
{
	(void)state;
	struct run run;
	feed_text("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &run);
	assert_int_equal(run.error_status, 0);
	assert_int_equal(run.count, 1);
	assert_int_equal(run.requests[0].method, HTTP_METHOD_GET);
	assert_string_equal(run.requests[0].path, "/healthz");
	assert_false(run.requests[0].has_query);
	assert_false(run.requests[0].has_content_type);
	assert_int_equal(run.requests[0].body_length, 0);
	assert_true(run.requests[0].keep_alive);
}

static void test_post_with_body_and_query(void **state)
{
	(void)state;
	struct run run;
	feed_text("POST /v1/tenants/demo/certify?principal=a%40b.com&days=7 HTTP/1.1\r\nHost: x\r\n"
		  "Content-Type: application/xml\r\nAuthorization: Bearer secret-token\r\n"
		  "Content-Length: 11\r\n\r\nhello world",
		  &run);
	assert_int_equal(run.count, 1);
	struct seen *seen = &run.requests[0];
	assert_int_equal(seen->method, HTTP_METHOD_POST);
	assert_string_equal(seen->path, "/v1/tenants/demo/certify");
	assert_string_equal(seen->query, "principal=a%40b.com&days=7");
	assert_string_equal(seen->content_type, "application/xml");
	assert_string_equal(seen->authorization, "Bearer secret-token");
	assert_int_equal(seen->body_length, 11);
	assert_memory_equal(seen->body, "hello world", 11);
}

static void test_keep_alive_rules(void **state)
{
	(void)state;
	struct run run;
	feed_text("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &run);
	assert_false(run.requests[0].keep_alive);
	feed_text("GET / HTTP/1.0\r\n\r\n", &run);
	assert_int_equal(run.count, 1);
	assert_false(run.requests[0].keep_alive);
	feed_text("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &run);
	assert_true(run.requests[0].keep_alive);
	feed_text("PUT / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &run);
	assert_int_equal(run.requests[0].method, HTTP_METHOD_OTHER);
}

static const char pipelined[] = "GET /a HTTP/1.1\r\n\r\n"
				"POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"
				"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
				"4;name=value\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n"
				"GET /d?q HTTP/1.1\r\nConnection: close\r\n\r\n";

static void check_pipelined(const struct run *run)
{
	assert_int_equal(run->error_status, 0);
	assert_int_equal(run->count, 4);
	assert_string_equal(run->requests[0].path, "/a");
	assert_string_equal(run->requests[1].path, "/b");
	assert_int_equal(run->requests[1].body_length, 3);
	assert_memory_equal(run->requests[1].body, "xyz", 3);
	assert_string_equal(run->requests[2].path, "/c");
	assert_int_equal(run->requests[2].body_length, 6);
	assert_memory_equal(run->requests[2].body, "abcdef", 6);
	assert_string_equal(run->requests[3].path, "/d");
	assert_string_equal(run->requests[3].query, "q");
	assert_false(run->requests[3].keep_alive);
	assert_true(run->requests[2].keep_alive);
}

static void test_pipelined_in_one_buffer(void **state)
{
	(void)state;
	struct run run;
	feed_text(pipelined, &run);
	check_pipelined(&run);
}

/* Every split of the input gives the same requests. */
static void test_every_split(void **state)
{
	(void)state;
	struct run run;
	for (size_t step = 1; step <= 7; step++) {
		feed_all(NULL, pipelined, strlen(pipelined), step, &run);
		check_pipelined(&run);
	}
	/* two pieces, split at every offset */
	size_t length = strlen(pipelined);
	for (size_t cut = 1; cut < length; cut++) {
		struct http_framer framer;
		http_framer_init(&framer, NULL);
		size_t count = 0;
		const char *pieces[2] = {pipelined, pipelined + cut};
		size_t sizes[2] = {cut, length - cut};
		for (int p = 0; p < 2; p++) {
			const char *data = pieces[p];
			size_t left = sizes[p];
			while (left) {
				size_t consumed = 0;
				enum http_feed_result result =
				    http_framer_feed(&framer, data, left, &consumed);
				data += consumed;
				left -= consumed;
				if (result == HTTP_FEED_NEED_MORE)
					break;
				assert_int_equal(result, HTTP_FEED_REQUEST);
				count++;
				http_framer_next(&framer);
			}
		}
		assert_int_equal(count, 4);
		http_framer_cleanup(&framer);
	}
}

static void test_expect_continue(void **state)
{
	(void)state;
	struct run run;
	feed_text("POST /v1/licenses HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok", &run);
	assert_int_equal(run.continues, 1);
	assert_int_equal(run.count, 1);
	assert_memory_equal(run.requests[0].body, "ok", 2);
	feed_text("POST / HTTP/1.1\r\nExpect: something-else\r\nContent-Length: 0\r\n\r\n", &run);
	assert_int_equal(run.error_status, 400);
}

static void expect_status(const char *text, int status)
{
	struct run run;
	feed_text(text, &run);
	if (run.error_status != status)
		fail_msg("%d for %s (expected %d)", run.error_status, text, status);
	assert_int_equal(run.count, 0);
}

static void test_smuggling_refused(void **state)
{
	(void)state;
	expect_status("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		      400);
	expect_status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
		      400);
	expect_status("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400);
	expect_status("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400);
	expect_status("POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r\nhello", 400);
	expect_status("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400);
	expect_status("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400);
	expect_status("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501);
	expect_status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
		      400);
	expect_status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400);
	expect_status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400);
	expect_status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
	expect_status("GET / HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n", 400);
}

static void test_bad_requests(void **state)
{
	(void)state;
	expect_status("FOO / HTTP/1.1\r\n\r\n", 400);
	expect_status("GET / HTTP/2.0\r\n\r\n", 505);
	expect_status("GET / HTTP/1.2\r\n\r\n", 505);
	expect_status("GET http://example.com/ HTTP/1.1\r\n\r\n", 400);
	expect_status("CONNECT example.com:443 HTTP/1.1\r\n\r\n", 400);
	expect_status("GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 400);
	expect_status("GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400);
	expect_status("GET /\x01 HTTP/1.1\r\n\r\n", 400);
}

/* A request whose request line + headers are exactly `size` bytes. */
static char *request_of_header_size(size_t size)
{
	static const char head[] = "GET / HTTP/1.1\r\nX: ";
	static const char tail[] = "\r\n\r\n";
	size_t filler = size - (sizeof head - 1) - (sizeof tail - 1);
	char *text = malloc(size + 1);
	memcpy(text, head, sizeof head - 1);
	memset(text + sizeof head - 1, 'a', filler);
	memcpy(text + sizeof head - 1 + filler, tail, sizeof tail);
	assert_int_equal(strlen(text), size);
	return text;
}

static void test_header_limit(void **state)
{
	(void)state;
	struct http_limits limits = {.max_header_bytes = 1024, .max_body_bytes = 0};
	struct run run;
	char *at = request_of_header_size(1024);
	feed_all(&limits, at, strlen(at), 0, &run);
	assert_int_equal(run.error_status, 0);
	assert_int_equal(run.count, 1);
	feed_all(&limits, at, strlen(at), 1, &run);
	assert_int_equal(run.count, 1);
	free(at);
	char *over = request_of_header_size(1026);
	feed_all(&limits, over, strlen(over), 0, &run);
	assert_int_equal(run.error_status, 413);
	feed_all(&limits, over, strlen(over), 3, &run);
	assert_int_equal(run.error_status, 413);
	free(over);
	/* a header that never ends is cut off at the limit, not buffered */
	char endless[4096];
	memcpy(endless, "GET / HTTP/1.1\r\nX: ", 19);
	memset(endless + 19, 'b', sizeof endless - 19);
	feed_all(&limits, endless, sizeof endless, 100, &run);
	assert_int_equal(run.error_status, 413);
}

static void test_body_limit(void **state)
{
	(void)state;
	struct http_limits limits = {.max_header_bytes = 0, .max_body_bytes = 8};
	struct run run;
	feed_all(&limits, "POST / HTTP/1.1\r\nContent-Length: 8\r\n\r\n12345678", 46, 0, &run);
	assert_int_equal(run.count, 1);
	assert_int_equal(run.requests[0].body_length, 8);
	/* refused from the announced length, before any body byte */
	expect_status("POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n", 413);
	feed_all(&limits, "POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\n", 38, 0, &run);
	assert_int_equal(run.error_status, 413);
	/* chunked bodies are counted as they arrive */
	const char chunked_ok[] =
	    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n1234\r\n4\r\n5678\r\n0\r\n\r\n";
	feed_all(&limits, chunked_ok, strlen(chunked_ok), 0, &run);
	assert_int_equal(run.count, 1);
	assert_int_equal(run.requests[0].body_length, 8);
	const char chunked_over[] =
	    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n1234\r\n5\r\n56789\r\n0\r\n\r\n";
	feed_all(&limits, chunked_over, strlen(chunked_over), 0, &run);
	assert_int_equal(run.error_status, 413);
}

static void test_phases_and_storage(void **state)
{
	(void)state;
	struct http_framer framer;
	http_framer_init(&framer, NULL);
	assert_int_equal(http_framer_phase(&framer), HTTP_PHASE_IDLE);
	assert_false(http_framer_holds_storage(&framer));
	size_t consumed = 0;
	const char part1[] = "POST /x HTTP/1.1\r\nContent-Le";
	assert_int_equal(http_framer_feed(&framer, part1, strlen(part1), &consumed), HTTP_FEED_NEED_MORE);
	assert_int_equal(http_framer_phase(&framer), HTTP_PHASE_HEADERS);
	const char part2[] = "ngth: 4\r\n\r\nab";
	assert_int_equal(http_framer_feed(&framer, part2, strlen(part2), &consumed), HTTP_FEED_NEED_MORE);
	assert_int_equal(http_framer_phase(&framer), HTTP_PHASE_BODY);
	assert_true(http_framer_holds_storage(&framer));
	assert_int_equal(http_framer_feed(&framer, "cd", 2, &consumed), HTTP_FEED_REQUEST);
	assert_int_equal(consumed, 2);
	http_framer_next(&framer);
	assert_int_equal(http_framer_phase(&framer), HTTP_PHASE_IDLE);
	assert_false(http_framer_holds_storage(&framer));
	/* a few hundred bytes: 10,000 idle connections cost a few MiB */
	assert_true(sizeof(struct http_framer) <= 320);
	http_framer_cleanup(&framer);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_simple_get),         cmocka_unit_test(test_post_with_body_and_query),
	    cmocka_unit_test(test_keep_alive_rules),   cmocka_unit_test(test_pipelined_in_one_buffer),
	    cmocka_unit_test(test_every_split),        cmocka_unit_test(test_expect_continue),
	    cmocka_unit_test(test_smuggling_refused),  cmocka_unit_test(test_bad_requests),
	    cmocka_unit_test(test_header_limit),       cmocka_unit_test(test_body_limit),
	    cmocka_unit_test(test_phases_and_storage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
