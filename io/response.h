/*
 * response.h: HTTP responses on their way from wherever they were made (the
 * I/O thread, an engine worker, the control worker) back to a connection.
 *
 * A response is one complete HTTP/1.1 message in one buffer. It names its
 * connection by slot and generation, so a response that comes back after its
 * connection closed (and the slot was reused) is recognised and dropped, and by
 * sequence number, so pipelined requests are answered in the order they came.
 * Responses are recycled through a pool owned by the I/O thread with their
 * buffers, so the hot path does not allocate once the pool is warm.
 *
 * The completion queue is how other threads hand finished responses back:
 * push under a mutex, and the first push into an empty queue writes the
 * queue's eventfd, which the I/O thread reads in its ring.
 */
#ifndef LICENSOR_IO_RESPONSE_H
#define LICENSOR_IO_RESPONSE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "licensor.h"

struct response {
	struct response *next;
	uint32_t connection_slot, connection_generation;
	uint64_t sequence;    /* the request's number on its connection */
	uint64_t received_ns; /* CLOCK_MONOTONIC when the request was complete */
	bool keep_alive;      /* false: "Connection: close", and the connection closes after it */
	bool http_1_0;        /* answering HTTP/1.0: keep-alive must be said */
	bool ready;           /* data holds the message */
	bool interim;         /* a 100 Continue: not the answer to a request */
	bool in_worker;       /* out with the engine or the control worker */
	bool orphaned;        /* its connection closed while it was out */
	int status;
	struct response *fifo_next;           /* the connection's queue, in request order */
	struct completion_queue *completions; /* where a worker hands it back */
	char *data;                           /* the whole message: status line, headers, body */
	size_t length, capacity, sent;
};

/* "OK", "Not Found", … for the statuses the server uses. */
const char *http_reason_phrase(int status);

/* Writes the message into response->data (reusing its buffer). extra_headers
 * is NULL or complete "Name: value\r\n" lines. Sets status and ready. false
 * when memory ran out (the caller closes the connection). */
bool response_set(struct response *response, int status, const char *content_type, const char *extra_headers,
		  const void *body, size_t body_length);
/* An <Error xmlns="urn:licensor:v1" Code="CODE">sentence</Error> answer with
 * the code's HTTP status (DESIGN.md §3); http_status overrides it when not 0. */
bool response_set_error(struct response *response, lic_status code, int http_status, const char *sentence,
			const char *extra_headers);

/* A pool of responses for one thread (the I/O thread). */
struct response_pool {
	struct response *free_list;
	size_t free_count;
};
struct response *response_pool_get(struct response_pool *pool);
/* Returns a response; big buffers are freed rather than kept. */
void response_pool_put(struct response_pool *pool, struct response *response);
void response_pool_cleanup(struct response_pool *pool);

struct completion_queue {
	pthread_mutex_t lock;
	struct response *head, *tail;
	int eventfd; /* readable when the queue went from empty to not empty */
};
/* false when no eventfd could be made. */
bool completion_queue_init(struct completion_queue *queue);
/* Frees any responses still queued; closes the eventfd. */
void completion_queue_cleanup(struct completion_queue *queue);
/* Any thread. */
void completion_queue_push(struct completion_queue *queue, struct response *response);
/* Everything queued, oldest first (a list through ->next); NULL when empty. */
struct response *completion_queue_take(struct completion_queue *queue);

#endif
