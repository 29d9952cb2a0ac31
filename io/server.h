/*
 * server.h: `licensor serve`, the HTTP/1.1 front of the engine (DESIGN.md §6).
 *
 * One I/O thread runs an io_uring loop: multishot accept, multishot recv into a
 * provided-buffer ring, sends, a 1-second timer, the completion eventfd and a
 * signalfd. It frames HTTP/1.1 (keep-alive, pipelining: answers leave in
 * request order), hands license requests to the engine's bounded queue and
 * other requests to the control worker, and never blocks or does RSA itself.
 * A full queue is answered at once with 503 OVERLOADED and Retry-After.
 * SIGTERM/SIGINT: stop accepting, answer every request already received,
 * return. SIGHUP: reload the keyring.
 */
#ifndef LICENSOR_IO_SERVER_H
#define LICENSOR_IO_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "licensor.h"

struct server_options {
	const char *listen;         /* "127.0.0.1:8080", "[::1]:8080"; port 0: any free port */
	lic_keyring *keyring;       /* required, not owned */
	lic_engine *engine;         /* required, not owned */
	const char *admin_token;    /* NULL: the admin endpoints answer 401 */
	size_t max_connections;     /* 0: 16384 (lowered to what RLIMIT_NOFILE allows) */
	size_t max_header_bytes;    /* 0: 16 KiB */
	size_t max_body_bytes;      /* 0: 1 MiB */
	unsigned max_pipelined;     /* requests received and not yet answered per connection; 0: 16 */
	unsigned header_timeout_s;  /* first byte of a request to the end of its headers; 0: 10 */
	unsigned request_timeout_s; /* first byte of a request to its last; 0: 30 */
	unsigned idle_timeout_s;    /* keep-alive connection with nothing to do; 0: 60 */
	unsigned drain_timeout_s;   /* after SIGTERM, at most this long to answer what was received; 0: 30 */
	/* Called once listening, with the URL (http://host:port); may be NULL. */
	void (*on_listening)(void *context, const char *url);
	void *context;
};

/* Runs until SIGTERM or SIGINT (blocked in the calling thread and every thread
 * it starts: call before creating other threads, or block them yourself).
 * LIC_OK after a clean drain. */
lic_status server_run(const struct server_options *options, lic_error *error);

/* Blocks SIGTERM, SIGINT, SIGHUP and SIGPIPE in the calling thread, so threads
 * created afterwards (engine workers) inherit the mask. */
void server_block_signals(void);

#endif
