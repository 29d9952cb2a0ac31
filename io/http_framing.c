/*
 * http_framing.c: see http_framing.h.
 *
 * A request goes through three stages:
 *
 *   1. scan_head, a lexer of this file, walks the request head first. It
 *      counts the head's bytes against max_header_bytes, insists on CRLF
 *      (libhttp-parser as Debian builds it takes a bare LF, or any byte after
 *      a CR), refuses obs-fold, checks that the request line ends in
 *      " HTTP/x.y" (the parser takes "HTXP/1.1") and that header names are
 *      tokens (the parser takes spaces in them: "Content-Length : 5"), and
 *      finds the blank line that ends the head.
 *   2. libhttp-parser is given exactly the bytes scan_head accepted. Its
 *      callbacks keep the target and the headers that matter and check what
 *      it is lenient about (control characters in the target, duplicates,
 *      Transfer-Encoding values). on_headers_complete answers 1 ("no
 *      body"), so the parser's message ends with the head, and
 *      on_message_complete pauses it (http_parser_pause): the parser never
 *      reads a byte that is not this request's head.
 *   3. read_body reads the body itself, strictly (the parser would take any
 *      two bytes as the CRLF after chunk data, and anything in a chunk
 *      extension), into one contiguous buffer: Content-Length bytes, or
 *      chunks (RFC 9112 §7.1) whose trailers are checked and dropped. Then the
 *      request is reported with *consumed at its last byte, and
 *      http_framer_next re-initialises the framer and the parser.
 *
 * Any split of the input gives the same events, refusals included, because
 * every check is made either at a byte (the lexer, the parser, read_body) or
 * once the parser has seen a whole token (a value is checked when it ends,
 * not when its first piece arrives), and a callback's refusal for a target
 * has the same reason as the parser's.
 *
 * The head's strings (target, Content-Type, Authorization) live in one buffer
 * that only ever holds bytes that came in the head, so it never passes
 * max_header_bytes + 1. Offsets into it are kept until the head is complete
 * (the buffer moves as it grows); then the request's pointers are set.
 */
#include "io/http_framing.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_MAX_HEADER_BYTES ((size_t)16 * 1024)
#define DEFAULT_MAX_BODY_BYTES ((size_t)1024 * 1024)
/* Offsets into the strings buffer are 32-bit; libhttp-parser refuses heads
 * over 80 KiB (HTTP_MAX_HEADER_SIZE) long before this. */
#define HEADER_BYTES_CEILING ((size_t)1 << 30)

/* ---- a per-thread cache of buffers: 1 KiB, 2 KiB … 64 KiB, a few of each ---- */

#define CACHE_SMALLEST_BYTES ((size_t)1024)
#define CACHE_CLASSES 7
#define CACHE_KEEP_PER_CLASS 16

struct cached_buffer {
	struct cached_buffer *next;
};

struct buffer_cache {
	struct cached_buffer *free[CACHE_CLASSES];
	uint8_t count[CACHE_CLASSES];
	bool freed_at_thread_exit;
};

static _Thread_local struct buffer_cache thread_cache;
static pthread_key_t cache_key;
static pthread_once_t cache_key_once = PTHREAD_ONCE_INIT;
static bool cache_key_created;

static void cache_release(struct buffer_cache *cache)
{
	for (unsigned size_class = 0; size_class < CACHE_CLASSES; size_class++) {
		while (cache->free[size_class] != NULL) {
			struct cached_buffer *buffer = cache->free[size_class];
			cache->free[size_class] = buffer->next;
			free(buffer);
		}
		cache->count[size_class] = 0;
	}
}

static void cache_release_at_thread_exit(void *cache)
{
	cache_release(cache);
}

static void cache_key_create(void)
{
	cache_key_created = pthread_key_create(&cache_key, cache_release_at_thread_exit) == 0;
}

/* The smallest class holding `size` bytes; CACHE_CLASSES when none does. */
static unsigned cache_class_for(size_t size)
{
	unsigned size_class = 0;
	while (size_class < CACHE_CLASSES && (CACHE_SMALLEST_BYTES << size_class) < size)
		size_class++;
	return size_class;
}

/* A buffer of at least `size` bytes (size > 0); *capacity says how many. */
static char *buffer_obtain(size_t size, size_t *capacity)
{
	unsigned size_class = cache_class_for(size);
	if (size_class == CACHE_CLASSES) {
		*capacity = size;
		return malloc(size);
	}
	*capacity = CACHE_SMALLEST_BYTES << size_class;
	struct cached_buffer *cached = thread_cache.free[size_class];
	if (cached != NULL) {
		thread_cache.free[size_class] = cached->next;
		thread_cache.count[size_class]--;
		return (char *)cached;
	}
	return malloc(*capacity);
}

/* Keeps a buffer of a class size for reuse, or frees it. */
static void buffer_give_back(char *buffer, size_t capacity)
{
	if (buffer == NULL)
		return;
	unsigned size_class = cache_class_for(capacity);
	if (size_class == CACHE_CLASSES || (CACHE_SMALLEST_BYTES << size_class) != capacity ||
	    thread_cache.count[size_class] >= CACHE_KEEP_PER_CLASS) {
		free(buffer);
		return;
	}
	if (!thread_cache.freed_at_thread_exit) {
		/* A thread-specific value makes its destructor run when this thread exits. */
		pthread_once(&cache_key_once, cache_key_create);
		if (!cache_key_created || pthread_setspecific(cache_key, &thread_cache) != 0) {
			free(buffer);
			return;
		}
		thread_cache.freed_at_thread_exit = true;
	}
	struct cached_buffer *cached = (struct cached_buffer *)(void *)buffer;
	cached->next = thread_cache.free[size_class];
	thread_cache.free[size_class] = cached;
	thread_cache.count[size_class]++;
}

/* Makes *buffer hold at least `needed` bytes (needed <= ceiling), keeping its
 * first `length`; grows by doubling, within `ceiling`. */
static bool buffer_reserve(char **buffer, size_t *capacity, size_t length, size_t needed, size_t ceiling)
{
	if (needed <= *capacity)
		return true;
	size_t wanted = *capacity > ceiling / 2 ? ceiling : *capacity * 2;
	if (wanted < needed)
		wanted = needed;
	size_t new_capacity = 0;
	char *fresh = buffer_obtain(wanted, &new_capacity);
	if (fresh == NULL)
		return false;
	if (length > 0)
		memcpy(fresh, *buffer, length);
	buffer_give_back(*buffer, *capacity);
	*buffer = fresh;
	*capacity = new_capacity;
	return true;
}

void http_framing_release_cached_buffers(void)
{
	cache_release(&thread_cache);
}

/* ---- small helpers ---- */

enum head_state {
	HEAD_BEFORE_REQUEST, /* empty lines before a request line are skipped (RFC 9112 §2.2) */
	HEAD_REQUEST_LINE,
	HEAD_LINE_CR,       /* a CR ended the request line or a header line: LF must follow */
	HEAD_LINE_START,    /* a header line or the blank line begins */
	HEAD_HEADER_NAME,   /* up to the ':' */
	HEAD_HEADER_VALUE,  /* after the ':', up to the CR */
	HEAD_BLANK_LINE_CR, /* the CR of the blank line: LF must follow */
	HEAD_COMPLETE,
};

enum body_state {
	BODY_NONE, /* the head is not complete */
	BODY_CONTENT_LENGTH,
	BODY_CHUNK_SIZE_START,
	BODY_CHUNK_SIZE,
	BODY_CHUNK_EXTENSION, /* after the size, up to the CR */
	BODY_CHUNK_SIZE_LF,
	BODY_CHUNK_DATA,
	BODY_CHUNK_DATA_CR,
	BODY_CHUNK_DATA_LF,
	BODY_TRAILER_LINE_START,
	BODY_TRAILER_LINE,
	BODY_TRAILER_LF,
	BODY_FINAL_LF, /* the CR of the blank line after the trailers */
	BODY_COMPLETE,
};

enum field_state { FIELD_NONE, FIELD_NAME, FIELD_VALUE };

enum header_kind {
	HEADER_OTHER, /* not kept */
	HEADER_CONTENT_TYPE,
	HEADER_AUTHORIZATION,
	HEADER_CONTENT_LENGTH,
	HEADER_TRANSFER_ENCODING,
	HEADER_EXPECT,
};

static enum header_kind header_named(const char *name, size_t length)
{
	static const struct {
		const char *name;
		size_t length;
		enum header_kind kind;
	} kept[] = {
	    {"content-type", 12, HEADER_CONTENT_TYPE},
	    {"authorization", 13, HEADER_AUTHORIZATION},
	    {"content-length", 14, HEADER_CONTENT_LENGTH},
	    {"transfer-encoding", 17, HEADER_TRANSFER_ENCODING},
	    {"expect", 6, HEADER_EXPECT},
	};
	for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
		if (length == kept[i].length && strncasecmp(name, kept[i].name, length) == 0)
			return kept[i].kind;
	return HEADER_OTHER;
}

/* tchar of RFC 9110 §5.6.2. */
static bool is_token_byte(unsigned char byte)
{
	if ((byte >= '0' && byte <= '9') || (byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z'))
		return true;
	return byte != '\0' && strchr("!#$%&'*+-.^_`|~", byte) != NULL;
}

static int hex_digit_value(unsigned char byte)
{
	if (byte >= '0' && byte <= '9')
		return byte - '0';
	if (byte >= 'a' && byte <= 'f')
		return byte - 'a' + 10;
	if (byte >= 'A' && byte <= 'F')
		return byte - 'A' + 10;
	return -1;
}

static size_t add_saturating(size_t a, size_t b)
{
	return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/* Records the first refusal (later ones are consequences of it). */
static void record_refusal(struct http_framer *framer, int status, const char *reason)
{
	if (framer->error_status == 0) {
		framer->error_status = status;
		framer->error_reason = reason;
	}
}

/* For callbacks: records the refusal and stops the parser. */
static int refuse(struct http_framer *framer, int status, const char *reason)
{
	record_refusal(framer, status, reason);
	return -1;
}

static void release_storage(struct http_framer *framer)
{
	buffer_give_back(framer->strings, framer->strings_capacity);
	buffer_give_back(framer->body, framer->body_capacity);
	framer->strings = NULL;
	framer->strings_length = framer->strings_capacity = 0;
	framer->body = NULL;
	framer->body_length = framer->body_capacity = 0;
}

/* The feed result once a refusal is recorded: storage goes at once. */
static enum http_feed_result feed_failed(struct http_framer *framer)
{
	release_storage(framer);
	memset(&framer->request, 0, sizeof framer->request);
	return HTTP_FEED_ERROR;
}

static enum http_feed_result fail(struct http_framer *framer, int status, const char *reason)
{
	record_refusal(framer, status, reason);
	return feed_failed(framer);
}

static const char too_large_head[] = "the request line and headers are too large";

/* ---- the strings buffer: target, then kept header values ---- */

static bool strings_append(struct http_framer *framer, const char *bytes, size_t count)
{
	size_t ceiling = framer->limits.max_header_bytes + 1;
	size_t needed = (size_t)framer->strings_length + count;
	if (needed > ceiling)
		return false;
	if (needed > framer->strings_capacity) {
		size_t capacity = framer->strings_capacity;
		if (!buffer_reserve(&framer->strings, &capacity, framer->strings_length, needed, ceiling))
			return false;
		framer->strings_capacity = (uint32_t)(capacity < UINT32_MAX ? capacity : UINT32_MAX);
	}
	if (count > 0)
		memcpy(framer->strings + framer->strings_length, bytes, count);
	framer->strings_length = (uint32_t)needed;
	return true;
}

/* ---- stage 1: the lexer of the request head ---- */

enum head_scan { HEAD_SCAN_MORE, HEAD_SCAN_COMPLETE, HEAD_SCAN_MALFORMED, HEAD_SCAN_TOO_LARGE };

static const char bad_request_line[] = "the request line must be: method, target, HTTP/1.x";
static const char bare_line_end[] = "lines must end with CRLF";
static const char bad_header_line[] = "a header line must be a name, ':' and a value";
static const char bad_header_name[] = "a header name has a character that is not allowed";

/* The request line is three fields apart by spaces; the third is "HTTP/" and
 * a digit, a dot and a digit (which libhttp-parser checks). */
static const char *scan_request_line_byte(struct http_framer *framer, unsigned char byte)
{
	static const char version_prefix[] = "HTTP/";
	if (byte == '\r') {
		if (framer->request_line_field != 2 || framer->version_length != 8)
			return bad_request_line;
		framer->head_state = HEAD_LINE_CR;
		return NULL;
	}
	if (byte == '\n')
		return bare_line_end;
	if (byte == ' ') {
		if (framer->request_line_field == 2)
			return bad_request_line;
		framer->in_request_line_space = true;
		return NULL;
	}
	if (framer->in_request_line_space) {
		framer->in_request_line_space = false;
		framer->request_line_field++;
	}
	if (framer->request_line_field == 2) {
		if (framer->version_length >= 8 ||
		    (framer->version_length < 5 &&
		     byte != (unsigned char)version_prefix[framer->version_length]))
			return bad_request_line;
		framer->version_length++;
	}
	return NULL;
}

/* One byte of the head: NULL, or why it is refused. */
static const char *scan_head_byte(struct http_framer *framer, unsigned char byte)
{
	switch ((enum head_state)framer->head_state) {
	case HEAD_BEFORE_REQUEST:
		if (byte == '\r' || byte == '\n')
			return NULL;
		framer->head_state = HEAD_REQUEST_LINE;
		framer->phase = HTTP_PHASE_HEADERS;
		return scan_request_line_byte(framer, byte);
	case HEAD_REQUEST_LINE:
		return scan_request_line_byte(framer, byte);
	case HEAD_LINE_CR:
		if (byte != '\n')
			return bare_line_end;
		framer->head_state = HEAD_LINE_START;
		return NULL;
	case HEAD_LINE_START:
		if (byte == '\r') {
			framer->head_state = HEAD_BLANK_LINE_CR;
			return NULL;
		}
		if (byte == ' ' || byte == '\t')
			return "a header line starts with whitespace (obs-fold is refused)";
		if (byte == '\n')
			return bare_line_end;
		if (byte == ':')
			return bad_header_line;
		framer->head_state = HEAD_HEADER_NAME;
		/* fall through */
	case HEAD_HEADER_NAME:
		/* Checked here, byte by byte, rather than when the parser hands
		 * the name over: the refusal must not depend on where a read
		 * ended. (The parser as built takes spaces in names.) */
		if (byte == ':')
			framer->head_state = HEAD_HEADER_VALUE;
		else if (!is_token_byte(byte))
			return byte == '\r' || byte == '\n' ? bad_header_line : bad_header_name;
		return NULL;
	case HEAD_HEADER_VALUE:
		/* The parser refuses control characters in values. */
		if (byte == '\r')
			framer->head_state = HEAD_LINE_CR;
		else if (byte == '\n')
			return bare_line_end;
		return NULL;
	case HEAD_BLANK_LINE_CR:
		if (byte != '\n')
			return bare_line_end;
		framer->head_state = HEAD_COMPLETE;
		return NULL;
	case HEAD_COMPLETE:
		break;
	}
	return "malformed request head";
}

/* Scans head bytes up to the end of the head, a refused byte or the limit;
 * *scanned is how many were accepted (the refused byte is not). */
static enum head_scan scan_head(struct http_framer *framer, const char *data, size_t length, size_t *scanned,
				const char **complaint)
{
	enum head_scan result = HEAD_SCAN_MORE;
	size_t i = 0;
	for (; i < length; i++) {
		if (framer->header_bytes >= framer->limits.max_header_bytes) {
			result = HEAD_SCAN_TOO_LARGE;
			break;
		}
		*complaint = scan_head_byte(framer, (unsigned char)data[i]);
		if (*complaint != NULL) {
			result = HEAD_SCAN_MALFORMED;
			break;
		}
		framer->header_bytes++;
		if (framer->head_state == HEAD_COMPLETE) {
			i++;
			result = HEAD_SCAN_COMPLETE;
			break;
		}
	}
	*scanned = i;
	return result;
}

/* ---- stage 2: libhttp-parser's callbacks ---- */

static int end_target(struct http_framer *framer)
{
	framer->target_complete = true;
	if (!strings_append(framer, "", 1))
		return refuse(framer, 413, too_large_head);
	return 0;
}

/* The value of a kept header, trailing blanks removed (the parser already
 * skipped the leading ones). */
static size_t header_value_length(const struct http_framer *framer)
{
	const char *value = framer->strings + framer->field_start;
	size_t length = framer->strings_length - framer->field_start;
	while (length > 0 && (value[length - 1] == ' ' || value[length - 1] == '\t'))
		length--;
	return length;
}

static int end_header_value(struct http_framer *framer)
{
	framer->field_state = FIELD_NONE;
	enum header_kind kind = framer->current_header;
	if (kind == HEADER_OTHER)
		return 0;
	const char *value = framer->strings + framer->field_start;
	size_t length = header_value_length(framer);
	/* Every check is made here, once the parser has seen the whole value,
	 * so that the same refusal comes however the input was split. */
	switch (kind) {
	case HEADER_CONTENT_TYPE:
		if (framer->content_type_at != 0)
			return refuse(framer, 400, "Content-Type is given twice");
		framer->content_type_at = framer->field_start;
		break;
	case HEADER_AUTHORIZATION:
		if (framer->authorization_at != 0)
			return refuse(framer, 400, "Authorization is given twice");
		framer->authorization_at = framer->field_start;
		break;
	case HEADER_CONTENT_LENGTH:
		if (framer->content_length_seen)
			return refuse(framer, 400, "Content-Length is given twice");
		framer->content_length_seen = true;
		break;
	case HEADER_TRANSFER_ENCODING:
		if (framer->transfer_encoding_seen)
			return refuse(framer, 400, "Transfer-Encoding is given twice");
		framer->transfer_encoding_seen = true;
		break;
	case HEADER_EXPECT:
	case HEADER_OTHER:
		break;
	}
	switch (kind) {
	case HEADER_CONTENT_TYPE:
	case HEADER_AUTHORIZATION:
		framer->strings_length = framer->field_start + (uint32_t)length;
		if (!strings_append(framer, "", 1))
			return refuse(framer, 413, too_large_head);
		return 0;
	case HEADER_CONTENT_LENGTH: {
		if (length == 0)
			return refuse(framer, 400, "Content-Length must be a number");
		uint64_t content_length = 0;
		for (size_t i = 0; i < length; i++) {
			if (value[i] < '0' || value[i] > '9')
				return refuse(framer, 400, "Content-Length must be a number");
			unsigned digit = (unsigned)(value[i] - '0');
			if (content_length > (UINT64_MAX - digit) / 10)
				return refuse(framer, 400, "Content-Length is out of range");
			content_length = content_length * 10 + digit;
		}
		framer->body_remaining = content_length;
		break;
	}
	case HEADER_TRANSFER_ENCODING:
		if (length == 0)
			return refuse(framer, 400, "Transfer-Encoding is empty");
		if (length != 7 || strncasecmp(value, "chunked", 7) != 0)
			return refuse(framer, 501, "only Transfer-Encoding: chunked is supported");
		framer->chunked = true;
		break;
	case HEADER_EXPECT:
		/* No other expectation can be met (RFC 9110 §10.1.1 would have 417). */
		if (length != 12 || strncasecmp(value, "100-continue", 12) != 0)
			return refuse(framer, 400, "Expect supports 100-continue only");
		framer->expect_continue = true;
		break;
	case HEADER_OTHER:
		break;
	}
	framer->strings_length = framer->field_start; /* the value is not kept */
	return 0;
}

static const char bad_target_characters[] = "the request target must be a path and query in visible ASCII";

static int on_url(http_parser *parser, const char *at, size_t length)
{
	struct http_framer *framer = parser->data;
	for (size_t i = 0; i < length; i++) {
		unsigned char byte = (unsigned char)at[i];
		if (byte <= ' ' || byte >= 0x7f || byte == '#')
			return refuse(framer, 400, bad_target_characters);
	}
	if (!strings_append(framer, at, length))
		return refuse(framer, 413, too_large_head);
	return 0;
}

static int on_header_field(http_parser *parser, const char *at, size_t length)
{
	struct http_framer *framer = parser->data;
	if (framer->field_state != FIELD_NAME) {
		if (framer->field_state == FIELD_VALUE && end_header_value(framer) != 0)
			return -1;
		if (!framer->target_complete && end_target(framer) != 0)
			return -1;
		framer->field_state = FIELD_NAME;
		framer->field_start = framer->strings_length;
	}
	/* scan_head checked the name's characters; it is kept until its value starts. */
	if (!strings_append(framer, at, length))
		return refuse(framer, 413, too_large_head);
	return 0;
}

static int on_header_value(http_parser *parser, const char *at, size_t length)
{
	struct http_framer *framer = parser->data;
	if (framer->field_state == FIELD_NAME) {
		enum header_kind kind = header_named(framer->strings + framer->field_start,
						     framer->strings_length - framer->field_start);
		framer->strings_length = framer->field_start;
		framer->field_state = FIELD_VALUE;
		framer->current_header = (uint8_t)kind;
	} else if (framer->field_state != FIELD_VALUE) {
		return refuse(framer, 400, "a header value without a name");
	}
	if (framer->current_header != HEADER_OTHER && !strings_append(framer, at, length))
		return refuse(framer, 413, too_large_head);
	return 0;
}

static enum http_request_method request_method_of(const http_parser *parser)
{
	switch (parser->method) {
	case HTTP_GET:
		return HTTP_METHOD_GET;
	case HTTP_HEAD:
		return HTTP_METHOD_HEAD;
	case HTTP_POST:
		return HTTP_METHOD_POST;
	default:
		return HTTP_METHOD_OTHER;
	}
}

static int on_headers_complete(http_parser *parser)
{
	struct http_framer *framer = parser->data;
	if (framer->field_state == FIELD_VALUE && end_header_value(framer) != 0)
		return -1;
	if (framer->field_state == FIELD_NAME)
		return refuse(framer, 400, "a header name without a value");
	if (!framer->target_complete && end_target(framer) != 0)
		return -1;
	if (parser->http_major != 1 || parser->http_minor > 1)
		return refuse(framer, 505, "only HTTP/1.0 and HTTP/1.1 are served");
	if (parser->method == HTTP_CONNECT || parser->upgrade)
		return refuse(framer, 400, "upgrades and CONNECT are not served");
	if (framer->strings[0] != '/')
		return refuse(framer, 400, "the request target must be a path (origin-form)");
	if (framer->transfer_encoding_seen && framer->content_length_seen)
		return refuse(framer, 400, "Content-Length and Transfer-Encoding together");
	if (framer->transfer_encoding_seen && parser->http_minor == 0)
		return refuse(framer, 400, "Transfer-Encoding in an HTTP/1.0 request");
	if (framer->content_length_seen && framer->body_remaining > framer->limits.max_body_bytes)
		return refuse(framer, 413, "the request body is too large");
	/* RFC 9110 §10.1.1: a 100-continue expectation in HTTP/1.0 is ignored. */
	if (parser->http_minor == 0)
		framer->expect_continue = false;

	/* The strings no longer move: point into them. '?' becomes a NUL so
	 * that path and query are both NUL-terminated. */
	struct http_request *request = &framer->request;
	char *target = framer->strings;
	size_t target_length = strlen(target);
	char *question = memchr(target, '?', target_length);
	request->method = request_method_of(parser);
	request->path = target;
	request->path_length = question ? (size_t)(question - target) : target_length;
	request->query = NULL;
	request->query_length = 0;
	if (question != NULL) {
		*question = '\0';
		request->query = question + 1;
		request->query_length = target_length - request->path_length - 1;
	}
	request->content_type = framer->content_type_at ? framer->strings + framer->content_type_at : NULL;
	request->authorization = framer->authorization_at ? framer->strings + framer->authorization_at : NULL;
	request->keep_alive = http_should_keep_alive(parser) != 0;
	request->http_1_0 = parser->http_minor == 0;
	return 1; /* "no body": the parser's message ends here; read_body reads the body */
}

static int on_message_complete(http_parser *parser)
{
	struct http_framer *framer = parser->data;
	framer->head_complete = true;
	http_parser_pause(parser, 1);
	return 0;
}

/* Never called (the parser reads no body); refuses if it ever were. */
static int on_body(http_parser *parser, const char *at, size_t length)
{
	(void)at;
	(void)length;
	return refuse(parser->data, 400, "malformed HTTP request");
}

static const http_parser_settings parser_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* The refusal for a parser error that no callback explained. */
static void record_parser_error(struct http_framer *framer, enum http_errno code)
{
	switch (code) {
	case HPE_HEADER_OVERFLOW:
		record_refusal(framer, 413, too_large_head);
		break;
	case HPE_INVALID_METHOD:
		record_refusal(framer, 400, "unknown or malformed request method");
		break;
	case HPE_INVALID_VERSION:
	case HPE_INVALID_CONSTANT:
		record_refusal(framer, 400, bad_request_line);
		break;
	case HPE_INVALID_URL:
		record_refusal(framer, 400, bad_target_characters);
		break;
	case HPE_INVALID_CONTENT_LENGTH:
		record_refusal(framer, 400, "Content-Length must be a number");
		break;
	case HPE_UNEXPECTED_CONTENT_LENGTH:
		record_refusal(framer, 400, "Content-Length given twice or with Transfer-Encoding");
		break;
	case HPE_INVALID_HEADER_TOKEN:
		record_refusal(framer, 400, "a header has a character that is not allowed");
		break;
	default:
		record_refusal(framer, 400, "malformed HTTP request");
		break;
	}
}

/* ---- stage 3: the body ---- */

/* One byte of chunked framing (RFC 9112 §7.1). */
static bool read_chunk_framing_byte(struct http_framer *framer, unsigned char byte)
{
	size_t framing_limit = add_saturating(framer->limits.max_header_bytes, framer->limits.max_body_bytes);
	if (++framer->framing_bytes > framing_limit) {
		record_refusal(framer, 413, "the chunked framing is too large");
		return false;
	}
	size_t room = framer->limits.max_body_bytes - framer->body_length;
	int digit = hex_digit_value(byte);
	switch ((enum body_state)framer->body_state) {
	case BODY_CHUNK_SIZE_START:
		if (digit < 0)
			goto malformed_size;
		framer->body_remaining = (uint64_t)digit;
		framer->body_state = BODY_CHUNK_SIZE;
		if ((size_t)digit > room)
			goto too_large;
		return true;
	case BODY_CHUNK_SIZE:
		if (digit >= 0) {
			/* Refused as soon as the size passes the room left. */
			if ((size_t)digit > room || framer->body_remaining > (room - (size_t)digit) / 16)
				goto too_large;
			framer->body_remaining = framer->body_remaining * 16 + (uint64_t)digit;
		} else if (byte == ';' || byte == ' ' || byte == '\t') {
			framer->body_state = BODY_CHUNK_EXTENSION;
		} else if (byte == '\r') {
			framer->body_state = BODY_CHUNK_SIZE_LF;
		} else {
			goto malformed_size;
		}
		return true;
	case BODY_CHUNK_EXTENSION:
		/* Extensions are ignored, but hold no control characters. */
		if (byte == '\r')
			framer->body_state = BODY_CHUNK_SIZE_LF;
		else if ((byte < ' ' && byte != '\t') || byte == 0x7f)
			goto malformed_size;
		return true;
	case BODY_CHUNK_SIZE_LF:
		if (byte != '\n')
			goto malformed_framing;
		if (framer->body_remaining == 0) {
			framer->body_state = BODY_TRAILER_LINE_START;
			return true;
		}
		if (!buffer_reserve(&framer->body, &framer->body_capacity, framer->body_length,
				    framer->body_length + (size_t)framer->body_remaining,
				    framer->limits.max_body_bytes)) {
			record_refusal(framer, 413, "no memory for a request body this large");
			return false;
		}
		framer->body_state = BODY_CHUNK_DATA;
		return true;
	case BODY_CHUNK_DATA_CR:
		if (byte != '\r')
			goto malformed_framing;
		framer->body_state = BODY_CHUNK_DATA_LF;
		return true;
	case BODY_CHUNK_DATA_LF:
		if (byte != '\n')
			goto malformed_framing;
		framer->body_state = BODY_CHUNK_SIZE_START;
		return true;
	case BODY_TRAILER_LINE_START:
		if (byte == '\r') {
			framer->body_state = BODY_FINAL_LF;
			return true;
		}
		if (byte == ' ' || byte == '\t' || byte == '\n')
			goto malformed_framing;
		framer->body_state = BODY_TRAILER_LINE;
		/* fall through */
	case BODY_TRAILER_LINE:
		/* Trailers are dropped, but hold no control characters. */
		if (byte == '\r')
			framer->body_state = BODY_TRAILER_LF;
		else if ((byte < ' ' && byte != '\t') || byte == 0x7f)
			goto malformed_framing;
		return true;
	case BODY_TRAILER_LF:
		if (byte != '\n')
			goto malformed_framing;
		framer->body_state = BODY_TRAILER_LINE_START;
		return true;
	case BODY_FINAL_LF:
		if (byte != '\n')
			goto malformed_framing;
		framer->body_state = BODY_COMPLETE;
		return true;
	case BODY_NONE:
	case BODY_CONTENT_LENGTH:
	case BODY_CHUNK_DATA:
	case BODY_COMPLETE:
		break;
	}
malformed_framing:
	record_refusal(framer, 400, "malformed chunked framing");
	return false;
malformed_size:
	record_refusal(framer, 400, "malformed chunk size");
	return false;
too_large:
	record_refusal(framer, 413, "the request body is too large");
	return false;
}

static enum http_feed_result complete_request(struct http_framer *framer)
{
	framer->body_state = BODY_COMPLETE;
	framer->request_complete = true;
	framer->request.body = framer->body_length > 0 ? framer->body : NULL;
	framer->request.body_length = framer->body_length;
	return HTTP_FEED_REQUEST;
}

static enum http_feed_result read_body(struct http_framer *framer, const char *data, size_t length,
				       size_t *consumed)
{
	size_t at = 0;
	while (at < length && framer->body_state != BODY_COMPLETE) {
		if (framer->body_state == BODY_CONTENT_LENGTH || framer->body_state == BODY_CHUNK_DATA) {
			size_t count = length - at;
			if (count > framer->body_remaining)
				count = (size_t)framer->body_remaining;
			memcpy(framer->body + framer->body_length, data + at, count);
			framer->body_length += count;
			framer->body_remaining -= count;
			at += count;
			if (framer->body_remaining == 0)
				framer->body_state = framer->body_state == BODY_CONTENT_LENGTH
							 ? BODY_COMPLETE
							 : BODY_CHUNK_DATA_CR;
			continue;
		}
		if (!read_chunk_framing_byte(framer, (unsigned char)data[at])) {
			*consumed = at;
			return feed_failed(framer);
		}
		at++;
	}
	*consumed = at;
	return framer->body_state == BODY_COMPLETE ? complete_request(framer) : HTTP_FEED_NEED_MORE;
}

/* ---- the framer ---- */

/* The head is complete: the body to read, or the request. */
static enum http_feed_result start_body(struct http_framer *framer)
{
	framer->phase = HTTP_PHASE_BODY;
	if (framer->chunked) {
		framer->body_state = BODY_CHUNK_SIZE_START;
	} else if (framer->content_length_seen && framer->body_remaining > 0) {
		framer->body = buffer_obtain((size_t)framer->body_remaining, &framer->body_capacity);
		if (framer->body == NULL)
			return fail(framer, 413, "no memory for a request body this large");
		framer->body_state = BODY_CONTENT_LENGTH;
	} else {
		return complete_request(framer);
	}
	if (framer->expect_continue && !framer->continue_reported) {
		framer->continue_reported = true;
		return HTTP_FEED_CONTINUE;
	}
	return HTTP_FEED_NEED_MORE;
}

/* Scans and parses head bytes; ends at the end of the head at the latest. */
static enum http_feed_result feed_head(struct http_framer *framer, const char *data, size_t length,
				       size_t *consumed)
{
	size_t scanned = 0;
	const char *complaint = NULL;
	enum head_scan scan = scan_head(framer, data, length, &scanned, &complaint);
	if (scanned > 0) {
		size_t parsed = http_parser_execute(&framer->parser, &parser_settings, data, scanned);
		*consumed = parsed;
		enum http_errno code = HTTP_PARSER_ERRNO(&framer->parser);
		if (framer->error_status != 0)
			return feed_failed(framer);
		if (code != HPE_OK && code != HPE_PAUSED) {
			record_parser_error(framer, code);
			return feed_failed(framer);
		}
		if (parsed != scanned)
			return fail(framer, 400, "malformed HTTP request");
	}
	switch (scan) {
	case HEAD_SCAN_MORE:
		return HTTP_FEED_NEED_MORE;
	case HEAD_SCAN_MALFORMED:
		return fail(framer, 400, complaint);
	case HEAD_SCAN_TOO_LARGE:
		return fail(framer, 413, too_large_head);
	case HEAD_SCAN_COMPLETE:
		break;
	}
	/* The lexer and the parser agree on where the head ends. */
	if (!framer->head_complete)
		return fail(framer, 400, "malformed HTTP request");
	return start_body(framer);
}

/* Everything of the framer back to its initial state, but the limits. */
static void reset(struct http_framer *framer)
{
	struct http_limits limits = framer->limits;
	memset(framer, 0, sizeof *framer);
	framer->limits = limits;
	http_parser_init(&framer->parser, HTTP_REQUEST);
	framer->parser.data = framer;
}

void http_framer_init(struct http_framer *framer, const struct http_limits *limits)
{
	size_t max_header_bytes =
	    limits && limits->max_header_bytes ? limits->max_header_bytes : DEFAULT_MAX_HEADER_BYTES;
	framer->limits.max_header_bytes =
	    max_header_bytes < HEADER_BYTES_CEILING ? max_header_bytes : HEADER_BYTES_CEILING;
	framer->limits.max_body_bytes =
	    limits && limits->max_body_bytes ? limits->max_body_bytes : DEFAULT_MAX_BODY_BYTES;
	reset(framer);
}

void http_framer_cleanup(struct http_framer *framer)
{
	release_storage(framer);
	memset(&framer->request, 0, sizeof framer->request);
}

enum http_feed_result http_framer_feed(struct http_framer *framer, const char *data, size_t length,
				       size_t *consumed)
{
	*consumed = 0;
	if (framer->error_status != 0)
		return HTTP_FEED_ERROR;
	if (framer->request_complete)
		return HTTP_FEED_REQUEST;
	if (!framer->head_complete) {
		enum http_feed_result result = feed_head(framer, data, length, consumed);
		if (result != HTTP_FEED_NEED_MORE || !framer->head_complete)
			return result;
	}
	size_t body_consumed = 0;
	enum http_feed_result result =
	    read_body(framer, data + *consumed, length - *consumed, &body_consumed);
	*consumed += body_consumed;
	return result;
}

void http_framer_next(struct http_framer *framer)
{
	release_storage(framer);
	if (framer->error_status != 0) {
		memset(&framer->request, 0, sizeof framer->request);
		return;
	}
	reset(framer);
}

enum http_phase http_framer_phase(const struct http_framer *framer)
{
	return (enum http_phase)framer->phase;
}

char *http_framer_take_body(struct http_framer *framer, size_t *length)
{
	*length = 0;
	if (!framer->request_complete || framer->request.body == NULL)
		return NULL;
	char *body = framer->body;
	*length = framer->body_length;
	framer->body = NULL;
	framer->body_length = framer->body_capacity = 0;
	framer->request.body = NULL;
	framer->request.body_length = 0;
	return body;
}

bool http_framer_holds_storage(const struct http_framer *framer)
{
	return framer->strings != NULL || framer->body != NULL;
}
