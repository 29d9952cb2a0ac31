/*
 * response.c: see response.h.
 */
#include "io/response.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Buffers above this go back to the allocator instead of the pool. */
#define POOL_BUFFER_KEEP (64 * 1024)
/* Responses the pool keeps at most. */
#define POOL_KEEP 4096

const char *http_reason_phrase(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 410:
		return "Gone";
	case 413:
		return "Content Too Large";
	case 415:
		return "Unsupported Media Type";
	case 422:
		return "Unprocessable Content";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Unknown";
	}
}

static bool reserve(struct response *response, size_t needed)
{
	if (needed <= response->capacity)
		return true;
	size_t capacity = response->capacity ? response->capacity : 4096;
	while (capacity < needed)
		capacity *= 2;
	char *data = realloc(response->data, capacity);
	if (data == NULL)
		return false;
	response->data = data;
	response->capacity = capacity;
	return true;
}

bool response_set(struct response *response, int status, const char *content_type, const char *extra_headers,
		  const void *body, size_t body_length)
{
	char head[512];
	int head_length = snprintf(
	    head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
	    status, http_reason_phrase(status), content_type, body_length, extra_headers ? extra_headers : "",
	    !response->keep_alive ? "Connection: close\r\n"
	    : response->http_1_0  ? "Connection: keep-alive\r\n"
				  : "");
	if (head_length < 0 || (size_t)head_length >= sizeof head)
		return false;
	if (!reserve(response, (size_t)head_length + body_length))
		return false;
	memcpy(response->data, head, (size_t)head_length);
	if (body_length)
		memcpy(response->data + head_length, body, body_length);
	response->length = (size_t)head_length + body_length;
	response->sent = 0;
	response->status = status;
	response->ready = true;
	return true;
}

bool response_set_error(struct response *response, lic_status code, int http_status, const char *sentence,
			const char *extra_headers)
{
	char body[1024];
	size_t length = (size_t)snprintf(body, sizeof body, "<Error xmlns=\"urn:licensor:v1\" Code=\"%s\">",
					 lic_status_code(code));
	/* The sentence is plain text (lic_error_set keeps it valid UTF-8 without
	 * control characters); escape what XML needs, cut whole characters only. */
	const char *closing = "</Error>\n";
	size_t reserve_tail = strlen(closing) + 1;
	for (const unsigned char *c = (const unsigned char *)sentence; *c; c++) {
		const char *escaped = NULL;
		char single[2] = {(char)*c, 0};
		switch (*c) {
		case '<':
			escaped = "&lt;";
			break;
		case '>':
			escaped = "&gt;";
			break;
		case '&':
			escaped = "&amp;";
			break;
		default:
			escaped = single;
			break;
		}
		size_t escaped_length = strlen(escaped);
		if (length + escaped_length + reserve_tail + 4 > sizeof body) {
			/* back off to the start of a UTF-8 character */
			while (length > 0 && ((unsigned char)body[length - 1] & 0xc0) == 0x80)
				length--;
			if (length > 0 && ((unsigned char)body[length - 1] & 0x80))
				length--;
			break;
		}
		memcpy(body + length, escaped, escaped_length);
		length += escaped_length;
	}
	memcpy(body + length, closing, strlen(closing));
	length += strlen(closing);
	int status = http_status ? http_status : lic_status_http(code);
	return response_set(response, status, "application/xml", extra_headers, body, length);
}

struct response *response_pool_get(struct response_pool *pool)
{
	struct response *response = pool->free_list;
	if (response) {
		pool->free_list = response->next;
		pool->free_count--;
	} else {
		response = calloc(1, sizeof *response);
		if (response == NULL)
			return NULL;
	}
	char *data = response->data;
	size_t capacity = response->capacity;
	memset(response, 0, sizeof *response);
	response->data = data;
	response->capacity = capacity;
	response->keep_alive = true;
	return response;
}

void response_pool_put(struct response_pool *pool, struct response *response)
{
	if (response == NULL)
		return;
	if (pool->free_count >= POOL_KEEP) {
		free(response->data);
		free(response);
		return;
	}
	if (response->capacity > POOL_BUFFER_KEEP) {
		free(response->data);
		response->data = NULL;
		response->capacity = 0;
	}
	response->next = pool->free_list;
	pool->free_list = response;
	pool->free_count++;
}

void response_pool_cleanup(struct response_pool *pool)
{
	while (pool->free_list) {
		struct response *response = pool->free_list;
		pool->free_list = response->next;
		free(response->data);
		free(response);
	}
	pool->free_count = 0;
}

bool completion_queue_init(struct completion_queue *queue)
{
	memset(queue, 0, sizeof *queue);
	queue->eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (queue->eventfd < 0)
		return false;
	pthread_mutex_init(&queue->lock, NULL);
	return true;
}

void completion_queue_cleanup(struct completion_queue *queue)
{
	if (queue->eventfd < 0)
		return;
	struct response *response = completion_queue_take(queue);
	while (response) {
		struct response *next = response->next;
		free(response->data);
		free(response);
		response = next;
	}
	pthread_mutex_destroy(&queue->lock);
	close(queue->eventfd);
	queue->eventfd = -1;
}

void completion_queue_push(struct completion_queue *queue, struct response *response)
{
	response->next = NULL;
	pthread_mutex_lock(&queue->lock);
	bool was_empty = queue->head == NULL;
	if (queue->tail)
		queue->tail->next = response;
	else
		queue->head = response;
	queue->tail = response;
	/* Written under the lock: once the reader has taken this response it may
	 * free the queue, so nothing of it is touched after the unlock. */
	if (was_empty) {
		uint64_t one = 1;
		/* EAGAIN only when the counter is saturated: the reader is awake anyway. */
		ssize_t written = write(queue->eventfd, &one, sizeof one);
		(void)written;
	}
	pthread_mutex_unlock(&queue->lock);
}

struct response *completion_queue_take(struct completion_queue *queue)
{
	pthread_mutex_lock(&queue->lock);
	struct response *list = queue->head;
	queue->head = queue->tail = NULL;
	pthread_mutex_unlock(&queue->lock);
	return list;
}
