/*
 * fuzz_http_framing.c: libFuzzer target for the HTTP/1.1 request framer
 * (io/http_framing.c). The first byte of the input seeds the sizes (1 to 64
 * bytes, irregular) of the pieces the rest is cut into, as recv would deliver
 * it; the rest is fed piece by piece, and once more in one piece.
 *
 * Proves, for any bytes and any split, that the framer neither crashes nor
 * leaks nor hits undefined behaviour, and that: *consumed never passes what
 * it was given; NEED_MORE consumes everything; CONTINUE and REQUEST always
 * make progress; every request has a NUL-terminated path starting with '/', a
 * consistent query, and a body within the limit that can be read to its end;
 * an error carries 400, 413, 501 or 505 and a reason, frees the storage, and
 * is final; an idle framer holds no memory; and the split run reports exactly
 * the same events, at the same offsets, as the run with the input whole.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/http_framing.h"

#define MAX_HEADER 2048
#define MAX_BODY 4096

/* What a run reported, folded into one number (FNV-1a). */
struct digest {
	uint64_t hash;
	size_t events;
};

static void digest_bytes(struct digest *digest, const void *bytes, size_t length)
{
	const unsigned char *byte = bytes;
	for (size_t i = 0; i < length; i++) {
		digest->hash ^= byte[i];
		digest->hash *= 1099511628211u;
	}
}

static void digest_number(struct digest *digest, uint64_t number)
{
	digest_bytes(digest, &number, sizeof number);
}

static void digest_text(struct digest *digest, const char *text)
{
	digest_number(digest, text ? strlen(text) : UINT64_MAX);
	if (text)
		digest_bytes(digest, text, strlen(text));
}

static void check_request(const struct http_request *request)
{
	if (request->path == NULL || request->path_length == 0 || request->path[0] != '/' ||
	    strlen(request->path) != request->path_length || memchr(request->path, '?', request->path_length))
		abort();
	if (request->query ? strlen(request->query) != request->query_length : request->query_length != 0)
		abort();
	if (request->body_length > MAX_BODY || (request->body == NULL) != (request->body_length == 0))
		abort();
	if (request->method > HTTP_METHOD_OTHER)
		abort();
	/* Read every byte, so ASan sees a buffer shorter than it claims. */
	volatile char sink = 0;
	for (size_t i = 0; i < request->body_length; i++)
		sink ^= request->body[i];
	if (request->content_type)
		sink ^= (char)strlen(request->content_type);
	if (request->authorization)
		sink ^= (char)strlen(request->authorization);
	(void)sink;
}

/* A piece size of 1 to 64 bytes from a small xorshift state. */
static size_t next_piece_size(uint32_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 17;
	*state ^= *state << 5;
	return *state % 64 + 1;
}

/* Feeds text in pieces (seed 0: whole) and digests what is reported. */
static struct digest run(const char *text, size_t length, uint32_t seed)
{
	struct http_limits limits = {.max_header_bytes = MAX_HEADER, .max_body_bytes = MAX_BODY};
	struct http_framer framer;
	http_framer_init(&framer, &limits);
	struct digest digest = {.hash = 14695981039346656037u, .events = 0};
	uint32_t state = seed;
	bool stopped = false;
	for (size_t offset = 0; offset < length && !stopped;) {
		size_t piece = seed ? next_piece_size(&state) : length;
		if (piece > length - offset)
			piece = length - offset;
		const char *at = text + offset;
		size_t left = piece;
		while (left > 0) {
			size_t consumed = SIZE_MAX;
			enum http_feed_result result = http_framer_feed(&framer, at, left, &consumed);
			if (consumed > left)
				abort();
			at += consumed;
			left -= consumed;
			if (http_framer_holds_storage(&framer) &&
			    http_framer_phase(&framer) == HTTP_PHASE_IDLE)
				abort();
			if (result == HTTP_FEED_NEED_MORE) {
				if (left != 0)
					abort();
				break;
			}
			digest.events++;
			digest_number(&digest, (uint64_t)result);
			if (result == HTTP_FEED_ERROR) {
				int status = framer.error_status;
				if ((status != 400 && status != 413 && status != 501 && status != 505) ||
				    framer.error_reason == NULL || http_framer_holds_storage(&framer))
					abort();
				digest_number(&digest, (uint64_t)status);
				digest_text(&digest, framer.error_reason);
				size_t again = SIZE_MAX;
				if (http_framer_feed(&framer, "GET / HTTP/1.1\r\n\r\n", 18, &again) !=
					HTTP_FEED_ERROR ||
				    again != 0)
					abort();
				stopped = true;
				break;
			}
			if (consumed == 0)
				abort(); /* CONTINUE and REQUEST make progress */
			digest_number(&digest, (uint64_t)(at - text));
			if (result == HTTP_FEED_CONTINUE) {
				if (http_framer_phase(&framer) != HTTP_PHASE_BODY)
					abort();
				continue;
			}
			const struct http_request *request = &framer.request;
			check_request(request);
			digest_number(&digest, (uint64_t)request->method);
			digest_text(&digest, request->path);
			digest_text(&digest, request->query);
			digest_text(&digest, request->content_type);
			digest_text(&digest, request->authorization);
			digest_number(&digest, request->keep_alive);
			digest_number(&digest, request->body_length);
			digest_bytes(&digest, request->body, request->body_length);
			http_framer_next(&framer);
			if (http_framer_holds_storage(&framer) ||
			    http_framer_phase(&framer) != HTTP_PHASE_IDLE)
				abort();
		}
		offset += piece;
	}
	http_framer_cleanup(&framer);
	if (http_framer_holds_storage(&framer))
		abort();
	return digest;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *text = (const char *)data + 1;
	size_t length = size - 1;
	struct digest split = run(text, length, (uint32_t)data[0] * 2654435761u + 1);
	struct digest whole = run(text, length, 0);
	if (split.hash != whole.hash || split.events != whole.events)
		abort(); /* the split changed what was reported */
	return 0;
}
