/*
 * http_framing.h: HTTP/1.1 requests out of a byte stream, one at a time, for
 * the server's connections.
 *
 * A framer is fed whatever bytes arrived and reports, one at a time, each
 * complete request (pipelined requests come out in order, *consumed saying
 * where the next one starts), a 100-continue point, or an error with the
 * status to answer before closing. It holds no heap memory between requests
 * (an idle keep-alive connection costs only the struct), and recycles its
 * buffers through a small per-thread pool so the hot path does not allocate.
 *
 * Strict where request smuggling lives: one Content-Length at most, never
 * with Transfer-Encoding, Transfer-Encoding "chunked" only (else 501),
 * well-formed chunks, HTTP/1.0 or 1.1 only (else 505), origin-form targets,
 * no upgrades or CONNECT; headers over max_header_bytes and bodies over
 * max_body_bytes are 413 (DESIGN.md §3: TOO_LARGE), a body as soon as its
 * Content-Length says so.
 */
#ifndef LICENSOR_IO_HTTP_FRAMING_H
#define LICENSOR_IO_HTTP_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <http_parser.h>

struct http_limits {
	size_t max_header_bytes; /* request line + headers of one request; 0: 16 KiB */
	size_t max_body_bytes;   /* 0: 1 MiB */
};

enum http_request_method { HTTP_METHOD_GET, HTTP_METHOD_HEAD, HTTP_METHOD_POST, HTTP_METHOD_OTHER };

/* One request; every pointer is the framer's, valid until http_framer_next. */
struct http_request {
	enum http_request_method method;
	const char *path; /* the target up to '?', always starting with '/' */
	size_t path_length;
	const char *query; /* after '?'; NULL when there is none */
	size_t query_length;
	const char *content_type;  /* NUL-terminated, or NULL when absent */
	const char *authorization; /* NUL-terminated, or NULL when absent */
	bool keep_alive;           /* HTTP/1.1 unless Connection: close; HTTP/1.0 only with keep-alive */
	const char *body;          /* the whole body, de-chunked; NULL when empty */
	size_t body_length;
};

enum http_phase {
	HTTP_PHASE_IDLE,    /* between requests: nothing buffered */
	HTTP_PHASE_HEADERS, /* a request has begun */
	HTTP_PHASE_BODY,    /* its headers are complete */
};

enum http_feed_result {
	HTTP_FEED_NEED_MORE, /* every byte consumed, no complete request yet */
	HTTP_FEED_CONTINUE,  /* the headers of a request with "Expect: 100-continue" are complete (once per
				request): send "HTTP/1.1 100 Continue", then feed data + *consumed */
	HTTP_FEED_REQUEST,   /* framer->request is complete and ends at data + *consumed; handle it, call
				http_framer_next, then feed the rest */
	HTTP_FEED_ERROR,     /* answer framer->error_status (400, 413, 501, 505) with error_reason (a static
				sentence) and close; the framer reports nothing else */
};

struct http_framer {
	struct http_request request;
	int error_status;
	const char *error_reason;
	/* private */
	http_parser parser;
	struct http_limits limits;
	enum http_phase phase;
	char *strings; /* the target, then kept header values, NUL-separated */
	size_t strings_length, strings_capacity;
	char *body;
	size_t body_length, body_capacity;
	size_t target_length, header_bytes;
	size_t content_type_offset, authorization_offset; /* SIZE_MAX: absent */
	uint64_t content_length;
	uint64_t chunk_left; /* chunked: data bytes left in this chunk */
	uint8_t chunk_state; /* chunked: where the framing check is (http_framing.c) */
	char small[24];      /* the header name being read, then a short value */
	uint8_t name_length, small_length, current_header;
	bool in_field, in_value, target_terminated;
	bool content_length_seen, transfer_encoding_seen;
	bool expect_continue, continue_reported, headers_done, message_done, chunk_size_done;
};

/* limits are copied; NULL: the defaults. */
void http_framer_init(struct http_framer *framer, const struct http_limits *limits);
/* Frees any storage. */
void http_framer_cleanup(struct http_framer *framer);
enum http_feed_result http_framer_feed(struct http_framer *framer, const char *data, size_t length,
				       size_t *consumed);
/* Releases the request's storage; the framer is ready for the next request. */
void http_framer_next(struct http_framer *framer);
enum http_phase http_framer_phase(const struct http_framer *framer);
/* For tests: whether the framer holds heap memory now. */
bool http_framer_holds_storage(const struct http_framer *framer);

#endif
