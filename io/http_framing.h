/*
 * http_framing.h: HTTP/1.1 requests out of a connection's byte stream, one at
 * a time, for the server.
 *
 * A framer is fed whatever bytes arrived, split anywhere, and reports the
 * next event: more bytes needed, a 100-continue point, one complete request
 * (*consumed says exactly where it ends, so pipelined requests come out one
 * by one), or an error with the status to answer before closing. Splitting the
 * same bytes differently never changes what is reported.
 *
 * Memory: an idle framer (between requests) holds no heap memory, only the
 * struct (232 bytes on x86-64), so idle keep-alive connections are cheap. A
 * request's target and kept header values live in one buffer that grows with
 * them from 1 KiB (at most max_header_bytes + 1 bytes); its body in a buffer
 * sized from Content-Length, or grown chunk by chunk within max_body_bytes.
 * Both go back at http_framer_next to a cache kept per thread (at most 16
 * buffers of each size from 1 to 64 KiB, freed when the thread exits), so the
 * hot path does not call malloc.
 *
 * Strict where request smuggling lives. libhttp-parser (Debian builds it
 * non-strict) parses the request line and headers behind a lexer of this
 * file that insists on CRLF line ends and refuses obs-fold; the body is read
 * here, not by the parser.
 *   400: more than one Content-Length, one that is not all digits, or one
 *        beside Transfer-Encoding; malformed chunk sizes, extensions or CRLFs;
 *        Transfer-Encoding in HTTP/1.0; two Transfer-Encoding, Authorization
 *        or Content-Type headers; unknown or malformed methods; targets other
 *        than origin-form ("/path?query" in visible ASCII, no '#'); header
 *        names that are not tokens; control characters; an Expect other than
 *        100-continue; Upgrade requests and CONNECT.
 *   501: a Transfer-Encoding other than exactly "chunked" (RFC 9112 §6.1).
 *   505: a well-formed version other than HTTP/1.0 or 1.1.
 *   413 (DESIGN.md §3, TOO_LARGE): a request line and headers over
 *        max_header_bytes; a body over max_body_bytes, as soon as
 *        Content-Length or a chunk size says so, before any of it is read;
 *        chunked framing (sizes, extensions, trailers) over max_header_bytes
 *        + max_body_bytes.
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

/* (Not `enum http_method`: http_parser.h already has an enum of that name.) */
enum http_request_method { HTTP_METHOD_GET, HTTP_METHOD_HEAD, HTTP_METHOD_POST, HTTP_METHOD_OTHER };

/* One complete request. Every pointer is into the framer's buffers: valid
 * until http_framer_next (or http_framer_take_body for the body). */
struct http_request {
	/* GET, HEAD, POST; any other method libhttp-parser knows (PUT, DELETE,
	 * OPTIONS…) is OTHER, for the router to answer 405. */
	enum http_request_method method;
	const char *path; /* the target up to '?', starting with '/'; NUL-terminated */
	size_t path_length;
	const char *query; /* after '?', NUL-terminated, maybe empty; NULL when there is no '?' */
	size_t query_length;
	const char *content_type;  /* NUL-terminated, trailing blanks removed; NULL when absent */
	const char *authorization; /* NUL-terminated, trailing blanks removed; NULL when absent */
	bool keep_alive;           /* http_should_keep_alive: HTTP/1.1 unless Connection: close,
				      HTTP/1.0 only with Connection: keep-alive */
	bool http_1_0;             /* an HTTP/1.0 request (answers then say "Connection: keep-alive") */
	const char *body;          /* the whole body, contiguous, de-chunked; NULL when empty */
	size_t body_length;
};

enum http_phase {
	HTTP_PHASE_IDLE,    /* between requests: nothing buffered (empty lines before a request too) */
	HTTP_PHASE_HEADERS, /* the first byte of a request line has arrived */
	HTTP_PHASE_BODY,    /* the headers are complete (until http_framer_next) */
};

enum http_feed_result {
	HTTP_FEED_NEED_MORE, /* every byte consumed, no complete request yet */
	HTTP_FEED_CONTINUE,  /* the headers of an HTTP/1.1 request with "Expect: 100-continue" and a
				body are complete (reported once per request, *consumed ends them; the
				request's fields but the body are set): send "HTTP/1.1 100 Continue\r\n\r\n",
				then feed data + *consumed */
	HTTP_FEED_REQUEST,   /* framer->request is complete and ends at data + *consumed; handle it,
				call http_framer_next, then feed the rest */
	HTTP_FEED_ERROR,     /* answer framer->error_status (400, 413, 501 or 505) with error_reason
				(a static sentence) and close; nothing else is ever reported */
};

struct http_framer {
	struct http_request request; /* filled when HTTP_FEED_REQUEST is reported */
	int error_status;            /* 0 until HTTP_FEED_ERROR */
	const char *error_reason;    /* static; NULL until HTTP_FEED_ERROR */

	/* The rest is private to http_framing.c. */
	http_parser parser;
	struct http_limits limits;
	char *strings; /* the target, then kept header values; NULL between requests */
	char *body;    /* NULL until a body byte is due */
	size_t body_length, body_capacity;
	uint64_t body_remaining; /* of the Content-Length body, of a chunk, or a chunk size read so far */
	uint64_t framing_bytes;  /* chunked bodies: bytes that were not chunk data */
	uint32_t strings_length, strings_capacity;
	uint32_t header_bytes; /* of this request's head so far */
	uint32_t field_start;  /* in strings: where the current header's name, then value, begins */
	uint32_t content_type_at, authorization_at; /* in strings; 0: absent */
	uint8_t phase, head_state, body_state, field_state, current_header;
	uint8_t request_line_field, version_length; /* where the lexer is in the request line */
	bool in_request_line_space, target_complete, content_length_seen, transfer_encoding_seen;
	bool chunked, expect_continue, continue_reported, head_complete, request_complete;
};

/* Limits are copied; NULL or 0 fields: the defaults. The framer owns no heap
 * memory until the first byte of a request arrives. */
void http_framer_init(struct http_framer *framer, const struct http_limits *limits);
/* Frees what the framer holds (its cache of buffers is per thread, see
 * http_framing_release_cached_buffers). */
void http_framer_cleanup(struct http_framer *framer);
/* Consumes bytes of data up to the next event; see enum http_feed_result.
 * *consumed is always set (0 when nothing was consumed). Feeding again before
 * http_framer_next after HTTP_FEED_REQUEST reports the same request and
 * consumes nothing; after HTTP_FEED_ERROR, reports the error again. */
enum http_feed_result http_framer_feed(struct http_framer *framer, const char *data, size_t length,
				       size_t *consumed);
/* Releases the request's storage (the framer is idle again, holding no heap
 * memory) and readies the framer for the next request. After an error the
 * framer stays in error. */
void http_framer_next(struct http_framer *framer);
enum http_phase http_framer_phase(const struct http_framer *framer);

/* Hands the complete request's body buffer to the caller (who frees it with
 * free()) so it need not be copied; *length gets its length. NULL when the
 * request has no body. request.body is NULL afterwards. */
char *http_framer_take_body(struct http_framer *framer, size_t *length);
/* Whether the framer holds heap memory now (for tests and assertions). */
bool http_framer_holds_storage(const struct http_framer *framer);
/* Frees the buffers this thread keeps for reuse (they are also freed when the
 * thread exits). */
void http_framing_release_cached_buffers(void);

#endif
