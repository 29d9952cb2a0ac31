/*
 * http_framing.c: see http_framing.h.
 *
 * libhttp-parser does the byte-level work; this file adds what a server that
 * sits behind proxies must be strict about and the parser is lenient on:
 * exactly one Content-Length and never beside Transfer-Encoding, a
 * Transfer-Encoding of "chunked" only, no upgrades, HTTP/1.0 and 1.1 only,
 * origin-form targets only, and our own header and body limits.
 *
 * The parser is paused at the end of the headers (to report 100-continue and
 * to size the body) and at the end of each message (so pipelined requests
 * come out one at a time, with *consumed exactly where the next one starts).
 */
#include "io/http_framing.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_MAX_HEADER_BYTES (16 * 1024)
#define DEFAULT_MAX_BODY_BYTES (1024 * 1024)
/* Buffers of at most this size are recycled through a small free list. */
#define POOL_BUFFER_BYTES (16 * 1024)
#define POOL_KEEP 64

/* ---- a small pool of buffers (the server uses framers on one thread) ---- */

struct pooled_buffer {
	struct pooled_buffer *next;
};
static _Thread_local struct pooled_buffer *pool_free;
static _Thread_local size_t pool_count;

/* A buffer of at least `size` bytes; *capacity says how many. */
static char *buffer_get(size_t size, size_t *capacity)
{
	if (size <= POOL_BUFFER_BYTES) {
		*capacity = POOL_BUFFER_BYTES;
		if (pool_free) {
			struct pooled_buffer *buffer = pool_free;
			pool_free = buffer->next;
			pool_count--;
			return (char *)buffer;
		}
		return malloc(POOL_BUFFER_BYTES);
	}
	*capacity = size;
	return malloc(size);
}

static void buffer_put(char *data, size_t capacity)
{
	if (data == NULL)
		return;
	if (capacity == POOL_BUFFER_BYTES && pool_count < POOL_KEEP) {
		struct pooled_buffer *buffer = (struct pooled_buffer *)(void *)data;
		buffer->next = pool_free;
		pool_free = buffer;
		pool_count++;
		return;
	}
	free(data);
}

/* Appends to a growable buffer within `limit` bytes in all; false past it. */
static bool buffer_append(char **data, size_t *length, size_t *capacity, const char *bytes, size_t count,
			  size_t limit)
{
	if (count > limit || *length > limit - count)
		return false;
	size_t needed = *length + count + 1; /* room for a NUL */
	if (needed > *capacity) {
		size_t new_capacity = *capacity ? *capacity : 0;
		if (*data == NULL) {
			char *fresh = buffer_get(needed, &new_capacity);
			if (fresh == NULL)
				return false;
			*data = fresh;
			*capacity = new_capacity;
		} else {
			new_capacity = *capacity * 2 > needed ? *capacity * 2 : needed;
			char *grown = malloc(new_capacity);
			if (grown == NULL)
				return false;
			memcpy(grown, *data, *length);
			buffer_put(*data, *capacity);
			*data = grown;
			*capacity = new_capacity;
		}
	}
	memcpy(*data + *length, bytes, count);
	*length += count;
	return true;
}

/* ---- header bookkeeping ---- */

enum kept_header {
	KEPT_NONE,
	KEPT_CONTENT_TYPE,
	KEPT_AUTHORIZATION,
	KEPT_CONTENT_LENGTH,
	KEPT_TRANSFER_ENCODING,
	KEPT_EXPECT,
};

static enum kept_header header_kind(const char *name, size_t length)
{
	static const struct {
		const char *name;
		enum kept_header kind;
	} known[] = {
	    {"content-type", KEPT_CONTENT_TYPE},
	    {"authorization", KEPT_AUTHORIZATION},
	    {"content-length", KEPT_CONTENT_LENGTH},
	    {"transfer-encoding", KEPT_TRANSFER_ENCODING},
	    {"expect", KEPT_EXPECT},
	};
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (length == strlen(known[i].name) && strncasecmp(name, known[i].name, length) == 0)
			return known[i].kind;
	return KEPT_NONE;
}

static struct http_framer *framer_of(http_parser *parser)
{
	return parser->data;
}

static int refuse(struct http_framer *framer, int status, const char *reason)
{
	if (framer->error_status == 0) {
		framer->error_status = status;
		framer->error_reason = reason;
	}
	return -1;
}

/* The strings buffer holds the target, then the kept header values, each
 * NUL-terminated; offsets are kept until the headers are complete (the buffer
 * may move while it grows). */
static bool strings_append(struct http_framer *framer, const char *bytes, size_t count)
{
	return buffer_append(&framer->strings, &framer->strings_length, &framer->strings_capacity, bytes,
			     count, framer->limits.max_header_bytes);
}

static bool strings_terminate(struct http_framer *framer)
{
	return strings_append(framer, "", 1);
}

/* Ends the value of the header being read, if any. */
static int header_done(struct http_framer *framer)
{
	if (!framer->in_value)
		return 0;
	framer->in_value = false;
	switch (framer->current_header) {
	case KEPT_CONTENT_TYPE:
	case KEPT_AUTHORIZATION:
		if (!strings_terminate(framer))
			return refuse(framer, 413, "the request headers are too large");
		break;
	case KEPT_CONTENT_LENGTH:
		if (framer->small_length == 0)
			return refuse(framer, 400, "Content-Length must be a number");
		break;
	case KEPT_TRANSFER_ENCODING:
		if (framer->small_length != 7 || strncasecmp(framer->small, "chunked", 7) != 0)
			return refuse(framer, 501, "only Transfer-Encoding: chunked is supported");
		break;
	case KEPT_EXPECT:
		if (framer->small_length == 12 && strncasecmp(framer->small, "100-continue", 12) == 0)
			framer->expect_continue = true;
		else
			return refuse(framer, 400, "Expect supports 100-continue only");
		break;
	default:
		break;
	}
	return 0;
}

static int on_message_begin(http_parser *parser)
{
	struct http_framer *framer = framer_of(parser);
	framer->phase = HTTP_PHASE_HEADERS;
	return 0;
}

static int on_url(http_parser *parser, const char *at, size_t length)
{
	struct http_framer *framer = framer_of(parser);
	if (!strings_append(framer, at, length))
		return refuse(framer, 413, "the request target is too long");
	framer->target_length += length;
	return 0;
}

static int on_header_field(http_parser *parser, const char *at, size_t length)
{
	struct http_framer *framer = framer_of(parser);
	if (framer->in_value || !framer->in_field) {
		if (header_done(framer) != 0)
			return -1;
		if (!framer->target_terminated) {
			if (!strings_terminate(framer))
				return refuse(framer, 413, "the request target is too long");
			framer->target_terminated = true;
		}
		framer->in_field = true;
		framer->small_length = 0;
		framer->name_length = 0;
	}
	/* Only names we keep matter; longer ones are simply not ours. */
	for (size_t i = 0; i < length; i++) {
		if (framer->name_length < sizeof framer->small)
			framer->small[framer->name_length] = at[i];
		if (framer->name_length < UINT8_MAX)
			framer->name_length++;
	}
	return 0;
}

static int on_header_value(http_parser *parser, const char *at, size_t length)
{
	struct http_framer *framer = framer_of(parser);
	if (framer->in_field) {
		framer->in_field = false;
		framer->in_value = true;
		framer->current_header = framer->name_length <= sizeof framer->small
					     ? header_kind(framer->small, framer->name_length)
					     : KEPT_NONE;
		framer->small_length = 0;
		switch (framer->current_header) {
		case KEPT_CONTENT_TYPE:
			if (framer->content_type_offset != SIZE_MAX)
				return refuse(framer, 400, "Content-Type given twice");
			framer->content_type_offset = framer->strings_length;
			break;
		case KEPT_AUTHORIZATION:
			if (framer->authorization_offset != SIZE_MAX)
				return refuse(framer, 400, "Authorization given twice");
			framer->authorization_offset = framer->strings_length;
			break;
		case KEPT_CONTENT_LENGTH:
			if (framer->content_length_seen)
				return refuse(framer, 400, "Content-Length given twice");
			framer->content_length_seen = true;
			framer->content_length = 0;
			break;
		case KEPT_TRANSFER_ENCODING:
			if (framer->transfer_encoding_seen)
				return refuse(framer, 400, "Transfer-Encoding given twice");
			framer->transfer_encoding_seen = true;
			break;
		default:
			break;
		}
	}
	switch (framer->current_header) {
	case KEPT_CONTENT_TYPE:
	case KEPT_AUTHORIZATION:
		if (!strings_append(framer, at, length))
			return refuse(framer, 413, "the request headers are too large");
		break;
	case KEPT_CONTENT_LENGTH:
		for (size_t i = 0; i < length; i++) {
			if (at[i] < '0' || at[i] > '9')
				return refuse(framer, 400, "Content-Length must be a number");
			if (framer->content_length > (UINT64_MAX - 9) / 10)
				return refuse(framer, 400, "Content-Length is out of range");
			framer->content_length = framer->content_length * 10 + (uint64_t)(at[i] - '0');
			framer->small_length = 1; /* digits seen */
		}
		break;
	case KEPT_TRANSFER_ENCODING:
	case KEPT_EXPECT:
		for (size_t i = 0; i < length; i++) {
			if (framer->small_length >= sizeof framer->small)
				return refuse(framer, framer->current_header == KEPT_EXPECT ? 400 : 501,
					      framer->current_header == KEPT_EXPECT
						  ? "Expect supports 100-continue only"
						  : "only Transfer-Encoding: chunked is supported");
			framer->small[framer->small_length++] = at[i];
		}
		break;
	default:
		break;
	}
	return 0;
}

static int on_headers_complete(http_parser *parser)
{
	struct http_framer *framer = framer_of(parser);
	if (header_done(framer) != 0)
		return -1;
	if (!framer->target_terminated) {
		if (!strings_terminate(framer))
			return refuse(framer, 413, "the request target is too long");
		framer->target_terminated = true;
	}
	if (parser->http_major != 1 || parser->http_minor > 1)
		return refuse(framer, 505, "only HTTP/1.0 and HTTP/1.1 are served");
	if (parser->upgrade || parser->method == HTTP_CONNECT)
		return refuse(framer, 400, "upgrades and CONNECT are not served");
	if (framer->content_length_seen && framer->transfer_encoding_seen)
		return refuse(framer, 400, "Content-Length and Transfer-Encoding together");
	if (framer->transfer_encoding_seen && parser->http_minor == 0)
		return refuse(framer, 400, "Transfer-Encoding in an HTTP/1.0 request");
	if (framer->target_length == 0 || framer->strings[0] != '/')
		return refuse(framer, 400, "the request target must be a path (origin-form)");
	if (framer->content_length_seen) {
		if (framer->content_length > framer->limits.max_body_bytes)
			return refuse(framer, 413, "the request body is too large");
		if (framer->content_length > 0) {
			framer->body = buffer_get((size_t)framer->content_length, &framer->body_capacity);
			if (framer->body == NULL)
				return refuse(framer, 413, "no memory for the request body");
		}
	}
	switch (parser->method) {
	case HTTP_GET:
		framer->request.method = HTTP_METHOD_GET;
		break;
	case HTTP_HEAD:
		framer->request.method = HTTP_METHOD_HEAD;
		break;
	case HTTP_POST:
		framer->request.method = HTTP_METHOD_POST;
		break;
	default:
		framer->request.method = HTTP_METHOD_OTHER;
		break;
	}
	/* The strings buffer no longer moves: expose the pointers. */
	const char *target = framer->strings;
	const char *question = memchr(target, '?', framer->target_length);
	framer->request.path = target;
	framer->request.path_length = question ? (size_t)(question - target) : framer->target_length;
	framer->request.query = question ? question + 1 : NULL;
	framer->request.query_length = question ? framer->target_length - framer->request.path_length - 1 : 0;
	framer->request.content_type =
	    framer->content_type_offset != SIZE_MAX ? framer->strings + framer->content_type_offset : NULL;
	framer->request.authorization =
	    framer->authorization_offset != SIZE_MAX ? framer->strings + framer->authorization_offset : NULL;
	framer->phase = HTTP_PHASE_BODY;
	framer->headers_done = true;
	http_parser_pause(parser, 1);
	return 0;
}

static int on_body(http_parser *parser, const char *at, size_t length)
{
	struct http_framer *framer = framer_of(parser);
	if (framer->content_length_seen) {
		/* The parser never gives more than Content-Length. */
		memcpy(framer->body + framer->body_length, at, length);
		framer->body_length += length;
		return 0;
	}
	if (!buffer_append(&framer->body, &framer->body_length, &framer->body_capacity, at, length,
			   framer->limits.max_body_bytes))
		return refuse(framer, 413, "the request body is too large");
	return 0;
}

static int on_message_complete(http_parser *parser)
{
	struct http_framer *framer = framer_of(parser);
	framer->request.keep_alive = http_should_keep_alive(parser) != 0;
	framer->request.body = framer->body;
	framer->request.body_length = framer->body_length;
	framer->message_done = true;
	http_parser_pause(parser, 1);
	return 0;
}

/* The parser as Debian builds it (not HTTP_PARSER_STRICT) does not check the
 * CRLF after a chunk's data, so "5\r\nhelloXX" would pass: a smuggling
 * shape. This follows the chunk framing over the same bytes the parser
 * consumed and insists on that CRLF; everything else about chunks (hex sizes,
 * extensions, the last chunk) the parser checks itself. */
enum chunk_state { CHUNK_START, CHUNK_SIZE_LINE, CHUNK_DATA, CHUNK_DATA_CR, CHUNK_DATA_LF, CHUNK_LAST };

static bool chunk_framing_valid(struct http_framer *framer, const char *bytes, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		char c = bytes[i];
		switch ((enum chunk_state)framer->chunk_state) {
		case CHUNK_START:
			/* The parser pauses at the end of the headers before their
			 * last LF and reads it again when resumed. */
			framer->chunk_state = CHUNK_SIZE_LINE;
			if (c == '\n')
				break;
			/* fall through */
		case CHUNK_SIZE_LINE:
			if (c == '\n') {
				framer->chunk_state = framer->chunk_left ? CHUNK_DATA : CHUNK_LAST;
			} else if (!framer->chunk_size_done) {
				int digit = c >= '0' && c <= '9'   ? c - '0'
					    : c >= 'a' && c <= 'f' ? c - 'a' + 10
					    : c >= 'A' && c <= 'F' ? c - 'A' + 10
								   : -1;
				if (digit < 0)
					framer->chunk_size_done = true;
				else if (framer->chunk_left > UINT64_MAX / 16)
					return false;
				else
					framer->chunk_left = framer->chunk_left * 16 + (uint64_t)digit;
			}
			break;
		case CHUNK_DATA: {
			uint64_t available = count - i;
			uint64_t take = available < framer->chunk_left ? available : framer->chunk_left;
			framer->chunk_left -= take;
			i += (size_t)take - 1;
			if (framer->chunk_left == 0)
				framer->chunk_state = CHUNK_DATA_CR;
			break;
		}
		case CHUNK_DATA_CR:
			if (c != '\r')
				return false;
			framer->chunk_state = CHUNK_DATA_LF;
			break;
		case CHUNK_DATA_LF:
			if (c != '\n')
				return false;
			framer->chunk_state = CHUNK_SIZE_LINE;
			framer->chunk_size_done = false;
			break;
		case CHUNK_LAST:
			return true; /* trailers: the parser's */
		}
	}
	return true;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- the framer ---- */

static void reset_request(struct http_framer *framer)
{
	buffer_put(framer->strings, framer->strings_capacity);
	buffer_put(framer->body, framer->body_capacity);
	framer->strings = framer->body = NULL;
	framer->strings_length = framer->strings_capacity = 0;
	framer->body_length = framer->body_capacity = 0;
	framer->target_length = 0;
	framer->header_bytes = 0;
	framer->content_length = 0;
	framer->chunk_left = 0;
	framer->chunk_state = CHUNK_START;
	framer->chunk_size_done = false;
	framer->content_type_offset = framer->authorization_offset = SIZE_MAX;
	framer->name_length = 0;
	framer->small_length = 0;
	framer->current_header = KEPT_NONE;
	framer->in_field = framer->in_value = false;
	framer->target_terminated = false;
	framer->content_length_seen = framer->transfer_encoding_seen = false;
	framer->expect_continue = framer->continue_reported = false;
	framer->headers_done = framer->message_done = false;
	memset(&framer->request, 0, sizeof framer->request);
	framer->phase = HTTP_PHASE_IDLE;
}

void http_framer_init(struct http_framer *framer, const struct http_limits *limits)
{
	memset(framer, 0, sizeof *framer);
	framer->limits.max_header_bytes =
	    limits && limits->max_header_bytes ? limits->max_header_bytes : DEFAULT_MAX_HEADER_BYTES;
	framer->limits.max_body_bytes =
	    limits && limits->max_body_bytes ? limits->max_body_bytes : DEFAULT_MAX_BODY_BYTES;
	http_parser_init(&framer->parser, HTTP_REQUEST);
	framer->parser.data = framer;
	reset_request(framer);
}

void http_framer_cleanup(struct http_framer *framer)
{
	buffer_put(framer->strings, framer->strings_capacity);
	buffer_put(framer->body, framer->body_capacity);
	framer->strings = framer->body = NULL;
	framer->strings_capacity = framer->body_capacity = 0;
}

void http_framer_next(struct http_framer *framer)
{
	reset_request(framer);
	http_parser_pause(&framer->parser, 0);
}

enum http_phase http_framer_phase(const struct http_framer *framer)
{
	return framer->phase;
}

bool http_framer_holds_storage(const struct http_framer *framer)
{
	return framer->strings != NULL || framer->body != NULL;
}

/* The status for a parser error this file did not set itself. */
static void refuse_parser_error(struct http_framer *framer)
{
	enum http_errno code = HTTP_PARSER_ERRNO(&framer->parser);
	switch (code) {
	case HPE_HEADER_OVERFLOW:
		refuse(framer, 413, "the request headers are too large");
		break;
	case HPE_INVALID_METHOD:
		refuse(framer, 400, "unknown request method");
		break;
	case HPE_INVALID_VERSION:
		refuse(framer, 505, "only HTTP/1.0 and HTTP/1.1 are served");
		break;
	case HPE_INVALID_CHUNK_SIZE:
		refuse(framer, 400, "malformed chunk size");
		break;
	case HPE_INVALID_CONTENT_LENGTH:
	case HPE_UNEXPECTED_CONTENT_LENGTH:
		refuse(framer, 400, "bad Content-Length");
		break;
	default:
		refuse(framer, 400, "malformed HTTP request");
		break;
	}
}

enum http_feed_result http_framer_feed(struct http_framer *framer, const char *data, size_t length,
				       size_t *consumed)
{
	*consumed = 0;
	if (framer->error_status)
		return HTTP_FEED_ERROR;
	while (*consumed < length) {
		if (framer->message_done)
			return HTTP_FEED_REQUEST; /* the caller must call http_framer_next first */
		const char *at = data + *consumed;
		size_t count = length - *consumed;
		bool in_headers = !framer->headers_done;
		if (in_headers) {
			/* At most one byte past the header limit, to notice it. */
			size_t room = framer->limits.max_header_bytes + 1 - framer->header_bytes;
			if (count > room)
				count = room;
		}
		size_t parsed = http_parser_execute(&framer->parser, &parser_settings, at, count);
		*consumed += parsed;
		if (!in_headers && framer->transfer_encoding_seen &&
		    !chunk_framing_valid(framer, at, parsed)) {
			refuse(framer, 400, "malformed chunk framing");
			return HTTP_FEED_ERROR;
		}
		if (in_headers)
			framer->header_bytes += parsed;
		enum http_errno code = HTTP_PARSER_ERRNO(&framer->parser);
		if (code != HPE_OK && code != HPE_PAUSED) {
			if (framer->error_status == 0)
				refuse_parser_error(framer);
			return HTTP_FEED_ERROR;
		}
		if (framer->error_status)
			return HTTP_FEED_ERROR;
		if (framer->message_done)
			return HTTP_FEED_REQUEST;
		if (code == HPE_PAUSED) {
			/* Paused at the end of the headers. */
			http_parser_pause(&framer->parser, 0);
			if (framer->expect_continue && !framer->continue_reported) {
				framer->continue_reported = true;
				return HTTP_FEED_CONTINUE;
			}
			continue;
		}
		if (in_headers && !framer->headers_done &&
		    framer->header_bytes > framer->limits.max_header_bytes) {
			refuse(framer, 413, "the request headers are too large");
			return HTTP_FEED_ERROR;
		}
		if (parsed < count) {
			refuse(framer, 400, "malformed HTTP request");
			return HTTP_FEED_ERROR;
		}
	}
	return framer->message_done ? HTTP_FEED_REQUEST : HTTP_FEED_NEED_MORE;
}
