/*
 * test_http_framing.c: the HTTP/1.1 request framer. Each stream is fed and
 * what the framer reports is written down as a transcript, one line per event
 * ("REQUEST POST /v1/licenses ?- ct=… auth=… keep=1 body=5:hello @123", with
 * @ the offset where the request ends), which the tests compare to the exact
 * text expected, and to the transcripts of the same stream split at every
 * offset and fed byte by byte. Covers pipelining, keep-alive, chunked bodies,
 * 100-continue, every request-smuggling refusal, the header and body limits
 * at and one over, phases, and that an idle framer holds no memory.
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

#define TRANSCRIPT_BYTES 8192

struct transcript {
	char text[TRANSCRIPT_BYTES];
	size_t length;
};

static void transcript_add(struct transcript *transcript, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void transcript_add(struct transcript *transcript, const char *format, ...)
{
	va_list arguments;
	va_start(arguments, format);
	int written = vsnprintf(transcript->text + transcript->length, TRANSCRIPT_BYTES - transcript->length,
				format, arguments);
	va_end(arguments);
	assert_true(written >= 0 && (size_t)written < TRANSCRIPT_BYTES - transcript->length);
	transcript->length += (size_t)written;
}

static const char *method_name(enum http_request_method method)
{
	switch (method) {
	case HTTP_METHOD_GET:
		return "GET";
	case HTTP_METHOD_HEAD:
		return "HEAD";
	case HTTP_METHOD_POST:
		return "POST";
	case HTTP_METHOD_OTHER:
		return "OTHER";
	}
	return "?";
}

static void transcript_add_request(struct transcript *transcript, const struct http_request *request,
				   size_t end)
{
	/* The request's own promises first. */
	assert_non_null(request->path);
	assert_true(request->path_length >= 1);
	assert_int_equal(request->path[0], '/');
	assert_int_equal(strlen(request->path), request->path_length);
	if (request->query != NULL)
		assert_int_equal(strlen(request->query), request->query_length);
	else
		assert_int_equal(request->query_length, 0);
	assert_true((request->body == NULL) == (request->body_length == 0));
	transcript_add(transcript, "REQUEST %s %s ?%s ct=%s auth=%s keep=%d body=%zu:%.*s @%zu\n",
		       method_name(request->method), request->path, request->query ? request->query : "-",
		       request->content_type ? request->content_type : "-",
		       request->authorization ? request->authorization : "-", request->keep_alive,
		       request->body_length, (int)request->body_length, request->body ? request->body : "",
		       end);
}

/* Feeds stream in pieces that end at `cuts` (ascending offsets) and at its
 * end, the way the server does, and writes down what is reported. */
static void run_cut(struct transcript *transcript, const char *stream, size_t length, const size_t *cuts,
		    size_t cut_count, const struct http_limits *limits)
{
	struct http_framer framer;
	http_framer_init(&framer, limits);
	transcript->length = 0;
	transcript->text[0] = '\0';
	size_t start = 0;
	bool stopped = false;
	for (size_t piece = 0; piece <= cut_count && !stopped; piece++) {
		size_t end = piece < cut_count ? cuts[piece] : length;
		const char *data = stream + start;
		size_t left = end - start;
		for (;;) {
			size_t consumed = 99999;
			enum http_feed_result result = http_framer_feed(&framer, data, left, &consumed);
			assert_true(consumed <= left);
			data += consumed;
			left -= consumed;
			size_t offset = (size_t)(data - stream);
			if (result == HTTP_FEED_NEED_MORE) {
				assert_int_equal(left, 0);
				break;
			}
			if (result == HTTP_FEED_ERROR) {
				assert_false(http_framer_holds_storage(&framer));
				transcript_add(transcript, "ERROR %d %s\n", framer.error_status,
					       framer.error_reason);
				/* Nothing else, ever. */
				assert_int_equal(
				    http_framer_feed(&framer, "GET / HTTP/1.1\r\n\r\n", 18, &consumed),
				    HTTP_FEED_ERROR);
				assert_int_equal(consumed, 0);
				stopped = true;
				break;
			}
			assert_true(consumed > 0);
			if (result == HTTP_FEED_CONTINUE) {
				assert_int_equal(http_framer_phase(&framer), HTTP_PHASE_BODY);
				transcript_add(transcript, "CONTINUE @%zu\n", offset);
			} else {
				assert_int_equal(result, HTTP_FEED_REQUEST);
				transcript_add_request(transcript, &framer.request, offset);
				http_framer_next(&framer);
				assert_int_equal(http_framer_phase(&framer), HTTP_PHASE_IDLE);
				assert_false(http_framer_holds_storage(&framer));
			}
			if (left == 0)
				break;
		}
		start = end;
	}
	http_framer_cleanup(&framer);
	assert_false(http_framer_holds_storage(&framer));
}

static void run_whole(struct transcript *transcript, const char *stream, size_t length,
		      const struct http_limits *limits)
{
	run_cut(transcript, stream, length, NULL, 0, limits);
}

/* The stream whole, split at every offset, and byte by byte: the same. */
static void assert_split_invariant(const char *stream, size_t length, const struct http_limits *limits,
				   const char *expected)
{
	static struct transcript whole, split;
	run_whole(&whole, stream, length, limits);
	assert_string_equal(whole.text, expected);
	for (size_t cut = 0; cut <= length; cut++) {
		run_cut(&split, stream, length, &cut, 1, limits);
		if (strcmp(split.text, whole.text) != 0)
			fail_msg("cut at %zu:\n%s\ninstead of\n%s", cut, split.text, whole.text);
	}
	size_t *cuts = malloc((length + 1) * sizeof *cuts);
	assert_non_null(cuts);
	for (size_t i = 0; i <= length; i++)
		cuts[i] = i;
	run_cut(&split, stream, length, cuts, length + 1, limits);
	free(cuts);
	assert_string_equal(split.text, whole.text);
}

static void check(const char *stream, const char *expected)
{
	assert_split_invariant(stream, strlen(stream), NULL, expected);
}

/* ---- requests that are served ---- */

static void test_simple_get(void **state)
{
	(void)state;
	const char *stream = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
	struct http_framer framer;
	http_framer_init(&framer, NULL);
	size_t consumed = 0;
	assert_int_equal(http_framer_feed(&framer, stream, strlen(stream), &consumed), HTTP_FEED_REQUEST);
	assert_int_equal(consumed, strlen(stream));
	assert_int_equal(framer.request.method, HTTP_METHOD_GET);
	assert_int_equal(framer.request.path_length, 8);
	assert_memory_equal(framer.request.path, "/healthz", 8);
	assert_null(framer.request.query);
	assert_int_equal(framer.request.query_length, 0);
	assert_null(framer.request.content_type);
	assert_null(framer.request.authorization);
	assert_true(framer.request.keep_alive);
	assert_null(framer.request.body);
	assert_int_equal(framer.request.body_length, 0);
	http_framer_next(&framer);
	http_framer_cleanup(&framer);

	check(stream, "REQUEST GET /healthz ?- ct=- auth=- keep=1 body=0: @34\n");
	check("HEAD / HTTP/1.1\r\n\r\n", "REQUEST HEAD / ?- ct=- auth=- keep=1 body=0: @19\n");
}

static void test_post_with_body(void **state)
{
	(void)state;
	const char *stream = "POST /v1/licenses HTTP/1.1\r\nHost: t\r\nContent-Type: application/xml \t\r\n"
			     "Authorization:   Bearer abc\r\nContent-Length: 11\r\n\r\nhello world";
	struct http_framer framer;
	http_framer_init(&framer, NULL);
	size_t consumed = 0;
	assert_int_equal(http_framer_feed(&framer, stream, strlen(stream), &consumed), HTTP_FEED_REQUEST);
	assert_int_equal(consumed, strlen(stream));
	assert_int_equal(framer.request.method, HTTP_METHOD_POST);
	assert_string_equal(framer.request.path, "/v1/licenses");
	assert_string_equal(framer.request.content_type, "application/xml");
	assert_string_equal(framer.request.authorization, "Bearer abc");
	assert_int_equal(framer.request.body_length, 11);
	assert_memory_equal(framer.request.body, "hello world", 11);
	http_framer_next(&framer);
	http_framer_cleanup(&framer);

	check(stream, "REQUEST POST /v1/licenses ?- ct=application/xml auth=Bearer abc keep=1 "
		      "body=11:hello world @132\n");
	/* Content-Length: 0 and a GET with a body are fine too. */
	check("POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
	      "REQUEST POST /x ?- ct=- auth=- keep=1 body=0: @39\n");
	check("GET /x HTTP/1.1\r\nContent-Length: 2 \r\n\r\nab",
	      "REQUEST GET /x ?- ct=- auth=- keep=1 body=2:ab @41\n");
}

static void test_keep_alive(void **state)
{
	(void)state;
	check("GET / HTTP/1.1\r\n\r\n", "REQUEST GET / ?- ct=- auth=- keep=1 body=0: @18\n");
	check("GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
	      "REQUEST GET / ?- ct=- auth=- keep=0 body=0: @37\n");
	check("GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n",
	      "REQUEST GET / ?- ct=- auth=- keep=0 body=0: @49\n");
	check("GET / HTTP/1.0\r\n\r\n", "REQUEST GET / ?- ct=- auth=- keep=0 body=0: @18\n");
	check("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	      "REQUEST GET / ?- ct=- auth=- keep=1 body=0: @42\n");
}

static const char pipelined[] = "GET /a HTTP/1.1\r\n\r\n"
				"POST /b?x=1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
				"GET /c HTTP/1.1\r\nConnection: close\r\n\r\n";

static void test_pipelined_requests_one_at_a_time(void **state)
{
	(void)state;
	struct http_framer framer;
	http_framer_init(&framer, NULL);
	const char *data = pipelined;
	size_t left = strlen(pipelined);
	size_t consumed = 0;

	assert_int_equal(http_framer_feed(&framer, data, left, &consumed), HTTP_FEED_REQUEST);
	assert_int_equal(consumed, 19);
	assert_string_equal(framer.request.path, "/a");
	/* Before http_framer_next, the same request again, nothing consumed. */
	assert_int_equal(http_framer_feed(&framer, data + consumed, left - consumed, &consumed),
			 HTTP_FEED_REQUEST);
	assert_int_equal(consumed, 0);
	http_framer_next(&framer);
	data += 19;
	left -= 19;

	assert_int_equal(http_framer_feed(&framer, data, left, &consumed), HTTP_FEED_REQUEST);
	assert_int_equal(consumed, 46);
	assert_string_equal(framer.request.path, "/b");
	assert_string_equal(framer.request.query, "x=1");
	assert_memory_equal(framer.request.body, "abc", 3);
	http_framer_next(&framer);
	data += 46;
	left -= 46;

	assert_int_equal(http_framer_feed(&framer, data, left, &consumed), HTTP_FEED_REQUEST);
	assert_int_equal(consumed, left);
	assert_string_equal(framer.request.path, "/c");
	assert_false(framer.request.keep_alive);
	http_framer_next(&framer);
	http_framer_cleanup(&framer);

	check(pipelined, "REQUEST GET /a ?- ct=- auth=- keep=1 body=0: @19\n"
			 "REQUEST POST /b ?x=1 ct=- auth=- keep=1 body=3:abc @65\n"
			 "REQUEST GET /c ?- ct=- auth=- keep=0 body=0: @103\n");
}

static void test_every_split_and_byte_by_byte(void **state)
{
	(void)state;
	/* Everything at once: pipelining, a chunked body with extensions and
	 * trailers, 100-continue, an empty line between requests, then an error. */
	const char *stream = "POST /v1/licenses?tenant=a HTTP/1.1\r\nContent-Type: text/xml\r\n"
			     "Transfer-Encoding: chunked\r\n\r\n"
			     "4;a=b\r\nwiki\r\n5 ; c=\"d e\"\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n"
			     "\r\n"
			     "POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\ndata"
			     "GET /after?q HTTP/1.1\r\nAuthorization: Basic eA==\r\n\r\n"
			     "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"
			     "GET /never HTTP/1.1\r\n\r\n";
	check(stream, "REQUEST POST /v1/licenses ?tenant=a ct=text/xml auth=- keep=1 body=9:wikipedia @143\n"
		      "CONTINUE @207\n"
		      "REQUEST POST /up ?- ct=- auth=- keep=1 body=4:data @211\n"
		      "REQUEST GET /after ?q ct=- auth=Basic eA== keep=1 body=0: @263\n"
		      "ERROR 400 Content-Length given twice or with Transfer-Encoding\n");
}

static void test_chunked_body_with_extensions(void **state)
{
	(void)state;
	check("POST /c HTTP/1.1\r\nTransfer-Encoding: Chunked \r\n\r\n"
	      "5;name=value\r\nhello\r\n6;a;b=\"q;r\"\r\n world\r\nA\r\n0123456789\r\n000;last\r\n\r\n",
	      "REQUEST POST /c ?- ct=- auth=- keep=1 body=21:hello world0123456789 @118\n");
	/* Trailers are read and dropped; an empty chunked body has no buffer. */
	check("POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\r\nC: d\r\n\r\n",
	      "REQUEST POST /c ?- ct=- auth=- keep=1 body=0: @65\n");

	/* A body grown chunk by chunk past the cached buffer sizes. */
	struct http_limits limits = {.max_body_bytes = 256 * 1024};
	const size_t chunk = 1000, chunks = 200;
	size_t capacity = 128 + chunks * (chunk + 16);
	char *stream = malloc(capacity);
	assert_non_null(stream);
	size_t length = (size_t)sprintf(stream, "POST /big HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (size_t i = 0; i < chunks; i++) {
		length += (size_t)sprintf(stream + length, "%zx\r\n", chunk);
		memset(stream + length, 'a' + (int)(i % 26), chunk);
		length += chunk;
		memcpy(stream + length, "\r\n", 2);
		length += 2;
	}
	length += (size_t)sprintf(stream + length, "0\r\n\r\n");
	struct http_framer framer;
	http_framer_init(&framer, &limits);
	size_t consumed = 0;
	size_t at = 0;
	enum http_feed_result result = HTTP_FEED_NEED_MORE;
	while (result == HTTP_FEED_NEED_MORE && at < length) {
		size_t piece = length - at < 777 ? length - at : 777;
		result = http_framer_feed(&framer, stream + at, piece, &consumed);
		at += consumed;
	}
	assert_int_equal(result, HTTP_FEED_REQUEST);
	assert_int_equal(at, length);
	assert_int_equal(framer.request.body_length, chunk * chunks);
	assert_int_equal(framer.request.body[0], 'a');
	assert_int_equal(framer.request.body[chunk * chunks - 1], 'a' + (int)((chunks - 1) % 26));
	http_framer_next(&framer);
	http_framer_cleanup(&framer);
	free(stream);
}

static void test_query_split(void **state)
{
	(void)state;
	check("GET /v1/tenants/t/publishing-key?client=laptop%2D1 HTTP/1.1\r\n\r\n",
	      "REQUEST GET /v1/tenants/t/publishing-key ?client=laptop%2D1 ct=- auth=- keep=1 body=0: @63\n");
	check("GET /x?a?b=/c HTTP/1.1\r\n\r\n", "REQUEST GET /x ?a?b=/c ct=- auth=- keep=1 body=0: @26\n");

	struct http_framer framer;
	http_framer_init(&framer, NULL);
	size_t consumed = 0;
	assert_int_equal(http_framer_feed(&framer, "GET /x? HTTP/1.1\r\n\r\n", 20, &consumed),
			 HTTP_FEED_REQUEST);
	assert_int_equal(framer.request.path_length, 2);
	assert_non_null(framer.request.query);
	assert_int_equal(framer.request.query_length, 0);
	assert_string_equal(framer.request.query, "");
	http_framer_next(&framer);
	http_framer_cleanup(&framer);
}

static void test_other_methods(void **state)
{
	(void)state;
	check("PUT /x HTTP/1.1\r\nContent-Length: 1\r\n\r\nz",
	      "REQUEST OTHER /x ?- ct=- auth=- keep=1 body=1:z @39\n");
	check("DELETE /x HTTP/1.1\r\n\r\n", "REQUEST OTHER /x ?- ct=- auth=- keep=1 body=0: @22\n");
	check("OPTIONS /x HTTP/1.1\r\n\r\n", "REQUEST OTHER /x ?- ct=- auth=- keep=1 body=0: @23\n");
}

static void test_expect_continue(void **state)
{
	(void)state;
	const char *stream =
	    "POST /v1/licenses HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\nhello";
	struct http_framer framer;
	http_framer_init(&framer, NULL);
	size_t consumed = 0;
	size_t head = strlen(stream) - 5;
	/* Reported once, with *consumed at the end of the head, even if the body is there. */
	assert_int_equal(http_framer_feed(&framer, stream, strlen(stream), &consumed), HTTP_FEED_CONTINUE);
	assert_int_equal(consumed, head);
	assert_int_equal(http_framer_phase(&framer), HTTP_PHASE_BODY);
	assert_int_equal(http_framer_feed(&framer, stream + head, 2, &consumed), HTTP_FEED_NEED_MORE);
	assert_int_equal(consumed, 2);
	assert_int_equal(http_framer_feed(&framer, stream + head + 2, 3, &consumed), HTTP_FEED_REQUEST);
	assert_int_equal(consumed, 3);
	assert_memory_equal(framer.request.body, "hello", 5);
	http_framer_next(&framer);
	http_framer_cleanup(&framer);

	check(stream, "CONTINUE @71\nREQUEST POST /v1/licenses ?- ct=- auth=- keep=1 body=5:hello @76\n");
	/* Not for a request without a body, nor in HTTP/1.0; other expectations are refused. */
	check("GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
	      "REQUEST GET / ?- ct=- auth=- keep=1 body=0: @40\n");
	check("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
	      "REQUEST POST / ?- ct=- auth=- keep=0 body=1:x @61\n");
	check("POST / HTTP/1.1\r\nExpect: something\r\nContent-Length: 1\r\n\r\nx",
	      "ERROR 400 Expect supports 100-continue only\n");
	/* A chunked body, and a body too large: 413 instead. */
	check("POST / HTTP/1.1\r\nExpect: 100-continue\r\nTransfer-Encoding: "
	      "chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
	      "CONTINUE @69\nREQUEST POST / ?- ct=- auth=- keep=1 body=1:x @80\n");
	check("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1048577\r\n\r\n",
	      "ERROR 413 the request body is too large\n");
}

/* ---- refusals ---- */

struct refusal {
	const char *stream;
	int status;
	const char *reason;
};

static void check_refusals(const struct refusal *refusals, size_t count)
{
	char expected[512];
	for (size_t i = 0; i < count; i++) {
		snprintf(expected, sizeof expected, "ERROR %d %s\n", refusals[i].status, refusals[i].reason);
		assert_split_invariant(refusals[i].stream, strlen(refusals[i].stream), NULL, expected);
	}
}

static void test_smuggling_refusals(void **state)
{
	(void)state;
	static const struct refusal refusals[] = {
	    /* Content-Length with Transfer-Encoding, either order */
	    {"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
	     "Content-Length given twice or with Transfer-Encoding"},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400,
	     "Content-Length given twice or with Transfer-Encoding"},
	    /* two Content-Lengths, equal or not */
	    {"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400,
	     "Content-Length given twice or with Transfer-Encoding"},
	    {"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400,
	     "Content-Length given twice or with Transfer-Encoding"},
	    {"POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhello", 400,
	     "Content-Length given twice or with Transfer-Encoding"},
	    /* Content-Length not all digits, or too large for 64 bits */
	    {"POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 400, "Content-Length must be a number"},
	    {"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello", 400, "Content-Length must be a number"},
	    {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "Content-Length must be a number"},
	    {"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 400, "Content-Length must be a number"},
	    {"POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", 400, "Content-Length must be a number"},
	    {"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400, "Content-Length must be a number"},
	    {"POST / HTTP/1.1\r\nContent-Length: 5,5\r\n\r\nhello", 400, "Content-Length must be a number"},
	    {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400,
	     "Content-Length must be a number"},
	    /* Transfer-Encoding other than chunked (501), twice, empty, in HTTP/1.0 */
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
	     "only Transfer-Encoding: chunked is supported"},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
	     "only Transfer-Encoding: chunked is supported"},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 501,
	     "only Transfer-Encoding: chunked is supported"},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501,
	     "only Transfer-Encoding: chunked is supported"},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	     400, "Transfer-Encoding is given twice"},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", 400, "Transfer-Encoding is empty"},
	    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
	     "Transfer-Encoding in an HTTP/1.0 request"},
	    /* obs-fold, which could hide a header from one reader and not another */
	    {"POST / HTTP/1.1\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400,
	     "a header line starts with whitespace (obs-fold is refused)"},
	    {"POST / HTTP/1.1\r\nX: a\r\n\tContent-Length: 5\r\n\r\nhello", 400,
	     "a header line starts with whitespace (obs-fold is refused)"},
	    {"POST / HTTP/1.1\r\n Content-Length: 5\r\n\r\nhello", 400,
	     "a header line starts with whitespace (obs-fold is refused)"},
	    /* header names that are not tokens ("Content-Length : 5") */
	    {"POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello", 400,
	     "a header name has a character that is not allowed"},
	    {"POST / HTTP/1.1\r\nTransfer Encoding: chunked\r\n\r\n", 400,
	     "a header name has a character that is not allowed"},
	    {"GET / HTTP/1.1\r\nX\"y: 1\r\n\r\n", 400, "a header name has a character that is not allowed"},
	    {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400, "a header line must be a name, ':' and a value"},
	    {"GET / HTTP/1.1\r\n: value\r\n\r\n", 400, "a header line must be a name, ':' and a value"},
	    /* found by fuzz_http_framing: the refusal once depended on where the
	     * input was split (the parser takes spaces in names, then stops at '=') */
	    {"GET /after?q HTTP/1.1\r\nAuthorizatlicensasic eA==\r\n\r\n", 400,
	     "a header name has a character that is not allowed"},
	    /* and so did this one, when duplicates were checked as a value began */
	    {"GET / HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\x01c\r\n\r\n", 400,
	     "a header has a character that is not allowed"},
	    /* bare LF or CR as line ends */
	    {"GET / HTTP/1.1\nHost: t\n\n", 400, "lines must end with CRLF"},
	    {"GET / HTTP/1.1\r\nHost: t\n\r\n", 400, "lines must end with CRLF"},
	    {"GET / HTTP/1.1\r\nHost: t\r\n\n", 400, "lines must end with CRLF"},
	    {"GET / HTTP/1.1\r\nHost: t\rX: 1\r\n\r\n", 400, "lines must end with CRLF"},
	    {"GET / HTTP/1.1\r\nHost: t\r\n\rX", 400, "lines must end with CRLF"},
	    /* malformed chunk sizes and framing */
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n", 400,
	     "malformed chunk size"},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", 400, "malformed chunk size"},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", 400,
	     "malformed chunk size"},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400,
	     "malformed chunk size"},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n", 400,
	     "malformed chunk size"},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400,
	     "malformed chunk size"},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\rhello\r\n0\r\n\r\n", 400,
	     "malformed chunked framing"},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXY0\r\n\r\n", 400,
	     "malformed chunked framing"},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", 400,
	     "malformed chunked framing"},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\rX", 400,
	     "malformed chunked framing"},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\n\r\n", 400,
	     "malformed chunked framing"},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n folded\r\n\r\n", 400,
	     "malformed chunked framing"},
	    /* duplicates of the kept headers */
	    {"GET / HTTP/1.1\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n", 400,
	     "Authorization is given twice"},
	    {"POST / HTTP/1.1\r\nContent-Type: a/b\r\ncontent-type: c/d\r\n\r\n", 400,
	     "Content-Type is given twice"},
	};
	check_refusals(refusals, sizeof refusals / sizeof refusals[0]);
}

static void test_request_line_refusals(void **state)
{
	(void)state;
	static const struct refusal refusals[] = {
	    {"FOO / HTTP/1.1\r\n\r\n", 400, "unknown or malformed request method"},
	    {"get / HTTP/1.1\r\n\r\n", 400, "unknown or malformed request method"},
	    {"GETS / HTTP/1.1\r\n\r\n", 400, "unknown or malformed request method"},
	    {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "unknown or malformed request method"},
	    {" GET / HTTP/1.1\r\n\r\n", 400, "unknown or malformed request method"},
	    {"GET / HTTP/2.0\r\n\r\n", 505, "only HTTP/1.0 and HTTP/1.1 are served"},
	    {"GET / HTTP/1.2\r\n\r\n", 505, "only HTTP/1.0 and HTTP/1.1 are served"},
	    {"GET / HTTP/0.9\r\n\r\n", 505, "only HTTP/1.0 and HTTP/1.1 are served"},
	    {"GET / HTXP/1.1\r\n\r\n", 400, "the request line must be: method, target, HTTP/1.x"},
	    {"GET / HTTP/11\r\n\r\n", 400, "the request line must be: method, target, HTTP/1.x"},
	    {"GET / HTTP/1.1 \r\n\r\n", 400, "the request line must be: method, target, HTTP/1.x"},
	    {"GET / HTTP/1.10\r\n\r\n", 400, "the request line must be: method, target, HTTP/1.x"},
	    {"GET /\r\n\r\n", 400, "the request line must be: method, target, HTTP/1.x"},
	    {"SOURCE / ICE/1.0\r\n\r\n", 400, "the request line must be: method, target, HTTP/1.x"},
	    /* targets other than origin-form */
	    {"GET http://example.com/ HTTP/1.1\r\n\r\n", 400,
	     "the request target must be a path (origin-form)"},
	    {"OPTIONS * HTTP/1.1\r\n\r\n", 400, "the request target must be a path (origin-form)"},
	    {"GET /a#b HTTP/1.1\r\n\r\n", 400,
	     "the request target must be a path and query in visible ASCII"},
	    {"GET /a\tb HTTP/1.1\r\n\r\n", 400,
	     "the request target must be a path and query in visible ASCII"},
	    {"GET /a\x7f HTTP/1.1\r\n\r\n", 400,
	     "the request target must be a path and query in visible ASCII"},
	    {"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", 400,
	     "the request target must be a path and query in visible ASCII"},
	    /* upgrades and CONNECT */
	    {"CONNECT example.com:443 HTTP/1.1\r\n\r\n", 400, "upgrades and CONNECT are not served"},
	    {"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 400,
	     "upgrades and CONNECT are not served"},
	    /* control characters in header values */
	    {"GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", 400, "a header has a character that is not allowed"},
	    {"GET / HTTP/1.1\r\nX: a\x7fz\r\n\r\n", 400, "a header has a character that is not allowed"},
	};
	check_refusals(refusals, sizeof refusals / sizeof refusals[0]);
	/* A NUL in a header value (not expressible in the table's strings). */
	static const char nul_in_value[] = "GET / HTTP/1.1\r\nX: a\0z\r\n\r\n";
	assert_split_invariant(nul_in_value, sizeof nul_in_value - 1, NULL,
			       "ERROR 400 a header has a character that is not allowed\n");
	/* An Upgrade header without "Connection: upgrade" asks for nothing. */
	check("GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n", "REQUEST GET / ?- ct=- auth=- keep=1 body=0: @32\n");
}

/* A request head of exactly `length` bytes (length >= 32). */
static char *head_of_length(size_t length)
{
	const char *start = "GET / HTTP/1.1\r\nX: ";
	char *head = malloc(length + 1);
	assert_non_null(head);
	size_t start_length = strlen(start);
	memcpy(head, start, start_length);
	memset(head + start_length, 'v', length - start_length - 4);
	memcpy(head + length - 4, "\r\n\r\n", 5);
	assert_int_equal(strlen(head), length);
	return head;
}

static void test_header_limit_at_and_one_over(void **state)
{
	(void)state;
	struct http_limits limits = {.max_header_bytes = 256};
	struct transcript transcript;

	char *head = head_of_length(256);
	run_whole(&transcript, head, 256, &limits);
	assert_string_equal(transcript.text, "REQUEST GET / ?- ct=- auth=- keep=1 body=0: @256\n");
	free(head);

	head = head_of_length(257);
	assert_split_invariant(head, 257, &limits, "ERROR 413 the request line and headers are too large\n");
	/* Refused when byte 257 arrives, not later; 256 bytes are only "more". */
	struct http_framer framer;
	http_framer_init(&framer, &limits);
	size_t consumed = 0;
	assert_int_equal(http_framer_feed(&framer, head, 256, &consumed), HTTP_FEED_NEED_MORE);
	assert_int_equal(consumed, 256);
	assert_int_equal(http_framer_feed(&framer, head + 256, 1, &consumed), HTTP_FEED_ERROR);
	assert_int_equal(framer.error_status, 413);
	http_framer_cleanup(&framer);
	free(head);

	/* The default limit is 16 KiB. */
	head = head_of_length(16 * 1024);
	run_whole(&transcript, head, 16 * 1024, NULL);
	assert_string_equal(transcript.text, "REQUEST GET / ?- ct=- auth=- keep=1 body=0: @16384\n");
	free(head);
	head = head_of_length(16 * 1024 + 1);
	run_whole(&transcript, head, 16 * 1024 + 1, NULL);
	assert_string_equal(transcript.text, "ERROR 413 the request line and headers are too large\n");
	free(head);

	/* A long target or a long kept header counts the same. */
	char stream[400];
	memset(stream, 0, sizeof stream);
	strcpy(stream, "GET /");
	memset(stream + 5, 'p', 300);
	strcat(stream, " HTTP/1.1\r\n\r\n");
	run_whole(&transcript, stream, strlen(stream), &limits);
	assert_string_equal(transcript.text, "ERROR 413 the request line and headers are too large\n");
}

static void test_body_limit_at_and_one_over(void **state)
{
	(void)state;
	struct http_limits limits = {.max_body_bytes = 8};
	struct transcript transcript;
	run_whole(&transcript, "POST / HTTP/1.1\r\nContent-Length: 8\r\n\r\n12345678", 46, &limits);
	assert_string_equal(transcript.text, "REQUEST POST / ?- ct=- auth=- keep=1 body=8:12345678 @46\n");
	/* 413 from the head alone, before any of the body. */
	const char *over = "POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\n";
	assert_split_invariant(over, strlen(over), &limits, "ERROR 413 the request body is too large\n");

	const char *chunked_at =
	    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n3\r\n678\r\n0\r\n\r\n";
	assert_split_invariant(chunked_at, strlen(chunked_at), &limits,
			       "REQUEST POST / ?- ct=- auth=- keep=1 body=8:12345678 @70\n");
	/* 413 as soon as the chunk size passes the room left: at the '4'. */
	const char *chunked_over = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n4";
	assert_split_invariant(chunked_over, strlen(chunked_over), &limits,
			       "ERROR 413 the request body is too large\n");
	const char *huge_chunk =
	    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0000fffffffffffffffffffff";
	struct http_framer framer;
	http_framer_init(&framer, &limits);
	size_t consumed = 0;
	assert_int_equal(http_framer_feed(&framer, huge_chunk, strlen(huge_chunk), &consumed),
			 HTTP_FEED_ERROR);
	assert_int_equal(framer.error_status, 413);
	http_framer_cleanup(&framer);

	/* Chunked framing is bounded too: header limit + body limit bytes. */
	struct http_limits small = {.max_header_bytes = 64, .max_body_bytes = 64};
	char stream[512];
	int length =
	    snprintf(stream, sizeof stream, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;");
	memset(stream + length, 'e', 200);
	memcpy(stream + length + 200, "\r\nx\r\n0\r\n\r\n", 11);
	run_whole(&transcript, stream, strlen(stream), &small);
	assert_string_equal(transcript.text, "ERROR 413 the chunked framing is too large\n");
}

static void test_phases(void **state)
{
	(void)state;
	struct http_framer framer;
	http_framer_init(&framer, NULL);
	size_t consumed = 0;
	assert_int_equal(http_framer_phase(&framer), HTTP_PHASE_IDLE);
	/* Empty lines before a request are skipped and are not a request yet. */
	assert_int_equal(http_framer_feed(&framer, "\r\n", 2, &consumed), HTTP_FEED_NEED_MORE);
	assert_int_equal(http_framer_phase(&framer), HTTP_PHASE_IDLE);
	assert_false(http_framer_holds_storage(&framer));
	assert_int_equal(http_framer_feed(&framer, "P", 1, &consumed), HTTP_FEED_NEED_MORE);
	assert_int_equal(http_framer_phase(&framer), HTTP_PHASE_HEADERS);
	const char *head = "OST /p HTTP/1.1\r\nContent-Length: 2\r\n\r";
	assert_int_equal(http_framer_feed(&framer, head, strlen(head), &consumed), HTTP_FEED_NEED_MORE);
	assert_int_equal(http_framer_phase(&framer), HTTP_PHASE_HEADERS);
	assert_true(http_framer_holds_storage(&framer));
	assert_int_equal(http_framer_feed(&framer, "\n", 1, &consumed), HTTP_FEED_NEED_MORE);
	assert_int_equal(http_framer_phase(&framer), HTTP_PHASE_BODY);
	assert_int_equal(http_framer_feed(&framer, "o", 1, &consumed), HTTP_FEED_NEED_MORE);
	assert_int_equal(http_framer_phase(&framer), HTTP_PHASE_BODY);
	assert_int_equal(http_framer_feed(&framer, "k", 1, &consumed), HTTP_FEED_REQUEST);
	assert_int_equal(http_framer_phase(&framer), HTTP_PHASE_BODY);
	http_framer_next(&framer);
	assert_int_equal(http_framer_phase(&framer), HTTP_PHASE_IDLE);
	http_framer_cleanup(&framer);
}

static void test_idle_framer_holds_no_storage(void **state)
{
	(void)state;
	/* Small enough for 10,000 idle connections to cost little. */
	assert_true(sizeof(struct http_framer) <= 256);
	struct http_framer framer;
	http_framer_init(&framer, NULL);
	assert_false(http_framer_holds_storage(&framer));
	assert_null(framer.strings);
	assert_null(framer.body);
	size_t consumed = 0;
	const char *stream = "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\n";
	assert_int_equal(http_framer_feed(&framer, stream, strlen(stream), &consumed), HTTP_FEED_REQUEST);
	assert_true(http_framer_holds_storage(&framer));
	http_framer_next(&framer);
	assert_false(http_framer_holds_storage(&framer));
	/* Half a request holds its strings; cleanup frees them (ASan checks). */
	assert_int_equal(http_framer_feed(&framer, stream + consumed, strlen(stream) - consumed, &consumed),
			 HTTP_FEED_NEED_MORE);
	assert_true(http_framer_holds_storage(&framer));
	http_framer_cleanup(&framer);
	assert_false(http_framer_holds_storage(&framer));
	http_framing_release_cached_buffers();
}

static void test_nothing_after_an_error(void **state)
{
	(void)state;
	struct http_framer framer;
	http_framer_init(&framer, NULL);
	size_t consumed = 0;
	const char *stream = "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\nGET / HTTP/1.1\r\n\r\n";
	assert_int_equal(http_framer_feed(&framer, stream, strlen(stream), &consumed), HTTP_FEED_ERROR);
	assert_int_equal(framer.error_status, 400);
	assert_string_equal(framer.error_reason, "Content-Length must be a number");
	assert_false(http_framer_holds_storage(&framer));
	assert_int_equal(http_framer_feed(&framer, "GET / HTTP/1.1\r\n\r\n", 18, &consumed), HTTP_FEED_ERROR);
	assert_int_equal(consumed, 0);
	http_framer_next(&framer);
	assert_int_equal(http_framer_feed(&framer, "GET / HTTP/1.1\r\n\r\n", 18, &consumed), HTTP_FEED_ERROR);
	assert_int_equal(consumed, 0);
	assert_int_equal(framer.error_status, 400);
	assert_string_equal(framer.error_reason, "Content-Length must be a number");
	http_framer_cleanup(&framer);
}

static void test_take_body(void **state)
{
	(void)state;
	struct http_framer framer;
	http_framer_init(&framer, NULL);
	size_t consumed = 0, length = 0;
	const char *stream = "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nbodyGET / HTTP/1.1\r\n\r\n";
	assert_int_equal(http_framer_feed(&framer, stream, strlen(stream), &consumed), HTTP_FEED_REQUEST);
	char *body = http_framer_take_body(&framer, &length);
	assert_non_null(body);
	assert_int_equal(length, 4);
	assert_memory_equal(body, "body", 4);
	assert_null(framer.request.body);
	assert_null(http_framer_take_body(&framer, &length));
	assert_int_equal(length, 0);
	free(body);
	http_framer_next(&framer);
	assert_int_equal(http_framer_feed(&framer, stream + consumed, strlen(stream) - consumed, &consumed),
			 HTTP_FEED_REQUEST);
	assert_null(http_framer_take_body(&framer, &length));
	http_framer_next(&framer);
	http_framer_cleanup(&framer);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_simple_get),
	    cmocka_unit_test(test_post_with_body),
	    cmocka_unit_test(test_keep_alive),
	    cmocka_unit_test(test_pipelined_requests_one_at_a_time),
	    cmocka_unit_test(test_every_split_and_byte_by_byte),
	    cmocka_unit_test(test_chunked_body_with_extensions),
	    cmocka_unit_test(test_query_split),
	    cmocka_unit_test(test_other_methods),
	    cmocka_unit_test(test_expect_continue),
	    cmocka_unit_test(test_smuggling_refusals),
	    cmocka_unit_test(test_request_line_refusals),
	    cmocka_unit_test(test_header_limit_at_and_one_over),
	    cmocka_unit_test(test_body_limit_at_and_one_over),
	    cmocka_unit_test(test_phases),
	    cmocka_unit_test(test_idle_framer_holds_no_storage),
	    cmocka_unit_test(test_nothing_after_an_error),
	    cmocka_unit_test(test_take_body),
	};
	int failures = cmocka_run_group_tests(tests, NULL, NULL);
	http_framing_release_cached_buffers();
	return failures;
}
