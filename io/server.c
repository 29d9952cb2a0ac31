/*
 * server.c: the io_uring I/O thread of `licensor serve` (see server.h).
 *
 * Every submission carries a user_data of (operation, connection slot,
 * generation). A connection slot is not reused while any of its operations is
 * in the ring: closing shuts our side for writing, reads and drops input until
 * the peer closes or LINGER_MS pass (so no reset destroys the last answer),
 * waits for the recv and the send to come back, and only then frees the slot
 * and bumps its generation. Engine
 * and control-worker answers come back through the completion queue naming
 * (slot, generation): an answer for a connection that is gone is recycled.
 *
 * Per connection: an HTTP framer (holds nothing while idle), a FIFO of
 * responses in request order (a response is created when its request is
 * complete, filled by whoever answers, and sent when it reaches the head), at
 * most one send in flight (a sendmsg of the ready responses at the head), and
 * a backlog of bytes received while the connection had max_pipelined requests
 * unanswered (its recv is cancelled then and re-armed once answers left).
 *
 * Receive buffers come from one provided-buffer ring registered by hand
 * (io_uring_setup_buf_ring is newer than liburing 2.3); a buffer is parsed
 * where it lies and returned to the ring at once.
 */
#include "io/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "io/byte_builder.h"
#include "io/control_worker.h"
#include "io/http_framing.h"
#include "io/keyring_watcher.h"
#include "io/metrics.h"
#include "io/response.h"
#include "keyring/error.h"
#include "keyring/tenant.h"

#define BUFFER_GROUP 7
#define BUFFER_COUNT 512
#define BUFFER_SIZE (16 * 1024)
#define RING_ENTRIES 4096
#define SEND_IOVECS 16

enum operation {
	OPERATION_ACCEPT = 1,
	OPERATION_RECV,
	OPERATION_SEND,
	OPERATION_COMPLETIONS,
	OPERATION_SIGNAL,
	OPERATION_TIMER,
	OPERATION_CANCEL,
};

enum slot_state { SLOT_FREE, SLOT_OPEN, SLOT_CLOSING };

struct connection {
	enum slot_state state;
	int fd;
	uint32_t generation;
	uint32_t next_free; /* free-list link (slot index + 1; 0 = end) */
	struct http_framer framer;
	struct response *first, *last; /* the FIFO, linked through queue_next */
	unsigned unanswered;           /* requests in the FIFO */
	uint64_t next_sequence;
	bool recv_armed, send_in_flight;
	bool paused;           /* max_pipelined reached: recv cancelled, bytes go to the backlog */
	bool reading_stopped;  /* no more recv: EOF, drain, or no more requests */
	bool requests_stopped; /* no more requests: a framing error or Connection: close */
	bool close_when_flushed;
	char *backlog; /* bytes received while paused; [backlog_offset, backlog_length) still to feed */
	size_t backlog_length, backlog_offset;
	int64_t send_progress_ms;   /* the last time the pending send moved */
	int64_t linger_until_ms;    /* closing: read and drop input until then (or EOF) */
	int64_t request_started_ms; /* 0: between requests */
	int64_t last_activity_ms;
	struct msghdr message;
	struct iovec iov[SEND_IOVECS];
};

struct server {
	const struct server_options *options;
	struct io_uring ring;
	int listen_fd;
	bool accept_multishot, accept_armed;
	struct io_uring_buf_ring *buffer_ring;
	size_t buffer_ring_bytes;
	char *buffers;
	struct connection *connections;
	size_t connection_count, max_connections;
	uint32_t free_head; /* slot index + 1 */
	struct response_pool pool;
	struct completion_queue completions;
	uint64_t completions_value;
	struct control_worker *control;
	struct keyring_watcher *watcher;
	int signal_fd;
	struct signalfd_siginfo signal_info;
	struct __kernel_timespec tick;
	struct server_metrics metrics;
	uint8_t admin_token_digest[SHA256_DIGEST_LENGTH];
	bool draining;
	int64_t drain_deadline_ms;
	size_t in_workers; /* responses out with the engine or the control worker */
	struct http_limits limits;
	lic_key_usage *key_usage; /* rows for /metrics, one per (tenant, version) the engine tracks */
	size_t key_usage_capacity;
};

/* The FIFO has its own link: `next` is the completion queue's while a worker
 * holds the response. */
#define queue_next(response) ((response)->fifo_next)

static int64_t monotonic_ms(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static uint64_t monotonic_ns(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static uint64_t pack(enum operation operation, uint32_t slot, uint32_t generation)
{
	return (uint64_t)operation << 56 | (uint64_t)(slot & 0xffffffu) << 32 | generation;
}

static struct io_uring_sqe *get_sqe(struct server *server)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&server->ring);
	while (sqe == NULL) {
		io_uring_submit(&server->ring);
		sqe = io_uring_get_sqe(&server->ring);
	}
	return sqe;
}

/* ---- setup ---- */

static lic_status parse_listen(const char *text, struct sockaddr_storage *address, socklen_t *length,
			       lic_error *error)
{
	char host[128];
	const char *colon = strrchr(text, ':');
	if (colon == NULL || (size_t)(colon - text) >= sizeof host)
		return lic_error_set(error, LIC_USAGE, "--listen must be HOST:PORT, e.g. 127.0.0.1:8080");
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = '\0';
	char *end = NULL;
	long port = strtol(colon + 1, &end, 10);
	if (*(colon + 1) == '\0' || *end != '\0' || port < 0 || port > 65535)
		return lic_error_set(error, LIC_USAGE, "--listen: bad port in %s", text);
	memset(address, 0, sizeof *address);
	size_t host_length = strlen(host);
	if (host_length >= 2 && host[0] == '[' && host[host_length - 1] == ']') {
		host[host_length - 1] = '\0';
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)address;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) != 1)
			return lic_error_set(error, LIC_USAGE, "--listen: bad IPv6 address in %s", text);
		*length = sizeof *in6;
		return LIC_OK;
	}
	struct sockaddr_in *in4 = (struct sockaddr_in *)address;
	in4->sin_family = AF_INET;
	in4->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, &in4->sin_addr) != 1)
		return lic_error_set(error, LIC_USAGE,
				     "--listen: bad IPv4 address in %s (a numeric address is needed)", text);
	*length = sizeof *in4;
	return LIC_OK;
}

static lic_status open_listener(struct server *server, char *url, size_t url_size, lic_error *error)
{
	struct sockaddr_storage address;
	socklen_t length = 0;
	lic_status status = parse_listen(server->options->listen ? server->options->listen : "127.0.0.1:8080",
					 &address, &length, error);
	if (status != LIC_OK)
		return status;
	int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return lic_error_set(error, LIC_IO, "socket: %s", strerror(errno));
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&address, length) != 0) {
		int saved = errno;
		close(fd);
		return lic_error_set(error, LIC_IO, "cannot listen on %s: %s", server->options->listen,
				     strerror(saved));
	}
	if (listen(fd, 4096) != 0) {
		int saved = errno;
		close(fd);
		return lic_error_set(error, LIC_IO, "listen: %s", strerror(saved));
	}
	length = sizeof address;
	getsockname(fd, (struct sockaddr *)&address, &length);
	char host[INET6_ADDRSTRLEN];
	if (address.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&address;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		snprintf(url, url_size, "http://[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		struct sockaddr_in *in4 = (struct sockaddr_in *)&address;
		inet_ntop(AF_INET, &in4->sin_addr, host, sizeof host);
		snprintf(url, url_size, "http://%s:%u", host, ntohs(in4->sin_port));
	}
	server->listen_fd = fd;
	return LIC_OK;
}

/* SINGLE_ISSUER | DEFER_TASKRUN where the kernel has them (6.1+), then less. */
static lic_status setup_ring(struct server *server, lic_error *error)
{
	static const unsigned flag_sets[] = {
	    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
	    IORING_SETUP_SINGLE_ISSUER,
	    0,
	};
	int result = -EINVAL;
	for (size_t i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
		struct io_uring_params params;
		memset(&params, 0, sizeof params);
		params.flags = flag_sets[i] | IORING_SETUP_CQSIZE;
		params.cq_entries = RING_ENTRIES * 8;
		result = io_uring_queue_init_params(RING_ENTRIES, &server->ring, &params);
		if (result == 0)
			return LIC_OK;
		if (result != -EINVAL)
			break;
	}
	return lic_error_set(error, LIC_IO, "io_uring is not available: %s", strerror(-result));
}

static lic_status setup_buffer_ring(struct server *server, lic_error *error)
{
	server->buffer_ring_bytes = BUFFER_COUNT * sizeof(struct io_uring_buf);
	void *memory =
	    mmap(NULL, server->buffer_ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (memory == MAP_FAILED)
		return lic_error_set(error, LIC_INTERNAL, "out of memory (buffer ring)");
	server->buffer_ring = memory;
	server->buffers = malloc((size_t)BUFFER_COUNT * BUFFER_SIZE);
	if (server->buffers == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory (receive buffers)");
	struct io_uring_buf_reg registration;
	memset(&registration, 0, sizeof registration);
	registration.ring_addr = (unsigned long)memory;
	registration.ring_entries = BUFFER_COUNT;
	registration.bgid = BUFFER_GROUP;
	int result = io_uring_register_buf_ring(&server->ring, &registration, 0);
	if (result != 0)
		return lic_error_set(error, LIC_IO,
				     "this kernel has no provided-buffer rings (5.19 or newer is needed): %s",
				     strerror(-result));
	io_uring_buf_ring_init(server->buffer_ring);
	int mask = io_uring_buf_ring_mask(BUFFER_COUNT);
	for (unsigned i = 0; i < BUFFER_COUNT; i++)
		io_uring_buf_ring_add(server->buffer_ring, server->buffers + (size_t)i * BUFFER_SIZE,
				      BUFFER_SIZE, (unsigned short)i, mask, (int)i);
	io_uring_buf_ring_advance(server->buffer_ring, BUFFER_COUNT);
	return LIC_OK;
}

static void return_buffer(struct server *server, unsigned buffer_id)
{
	io_uring_buf_ring_add(server->buffer_ring, server->buffers + (size_t)buffer_id * BUFFER_SIZE,
			      BUFFER_SIZE, (unsigned short)buffer_id, io_uring_buf_ring_mask(BUFFER_COUNT),
			      0);
	io_uring_buf_ring_advance(server->buffer_ring, 1);
}

/* ---- arming ---- */

static void arm_accept(struct server *server)
{
	if (server->draining || server->accept_armed || server->listen_fd < 0)
		return;
	struct io_uring_sqe *sqe = get_sqe(server);
	if (server->accept_multishot)
		io_uring_prep_multishot_accept(sqe, server->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	else
		io_uring_prep_accept(sqe, server->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, pack(OPERATION_ACCEPT, 0, 0));
	server->accept_armed = true;
}

/* A multishot recv into the provided-buffer ring. */
static void submit_recv(struct server *server, uint32_t slot)
{
	struct connection *connection = &server->connections[slot];
	struct io_uring_sqe *sqe = get_sqe(server);
	io_uring_prep_recv_multishot(sqe, connection->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BUFFER_GROUP;
	io_uring_sqe_set_data64(sqe, pack(OPERATION_RECV, slot, connection->generation));
	connection->recv_armed = true;
}

static void arm_recv(struct server *server, uint32_t slot)
{
	struct connection *connection = &server->connections[slot];
	if (connection->recv_armed || connection->paused || connection->reading_stopped ||
	    connection->state != SLOT_OPEN)
		return;
	submit_recv(server, slot);
}

/* Closing: read and drop what the peer still sends, so that close() does not
 * answer it with a reset that would destroy our last answer in flight. */
static void arm_linger_recv(struct server *server, uint32_t slot)
{
	struct connection *connection = &server->connections[slot];
	if (connection->recv_armed)
		return;
	submit_recv(server, slot);
}

static void cancel_recv(struct server *server, uint32_t slot)
{
	struct connection *connection = &server->connections[slot];
	if (!connection->recv_armed)
		return;
	struct io_uring_sqe *sqe = get_sqe(server);
	io_uring_prep_cancel64(sqe, pack(OPERATION_RECV, slot, connection->generation), 0);
	io_uring_sqe_set_data64(sqe, pack(OPERATION_CANCEL, slot, connection->generation));
}

static void arm_completions(struct server *server)
{
	struct io_uring_sqe *sqe = get_sqe(server);
	io_uring_prep_read(sqe, server->completions.eventfd, &server->completions_value,
			   sizeof server->completions_value, 0);
	io_uring_sqe_set_data64(sqe, pack(OPERATION_COMPLETIONS, 0, 0));
}

static void arm_signal(struct server *server)
{
	struct io_uring_sqe *sqe = get_sqe(server);
	io_uring_prep_read(sqe, server->signal_fd, &server->signal_info, sizeof server->signal_info, 0);
	io_uring_sqe_set_data64(sqe, pack(OPERATION_SIGNAL, 0, 0));
}

static void arm_timer(struct server *server)
{
	server->tick.tv_sec = 1;
	server->tick.tv_nsec = 0;
	struct io_uring_sqe *sqe = get_sqe(server);
	io_uring_prep_timeout(sqe, &server->tick, 0, 0);
	io_uring_sqe_set_data64(sqe, pack(OPERATION_TIMER, 0, 0));
}

/* ---- connections ---- */

static void release_slot(struct server *server, uint32_t slot)
{
	struct connection *connection = &server->connections[slot];
	struct response *response = connection->first;
	while (response) {
		struct response *next = queue_next(response);
		if (response->in_worker)
			response->orphaned = true; /* comes back through the completion queue */
		else
			response_pool_put(&server->pool, response);
		response = next;
	}
	http_framer_cleanup(&connection->framer);
	free(connection->backlog);
	close(connection->fd);
	uint32_t generation = connection->generation + 1;
	memset(connection, 0, sizeof *connection);
	connection->fd = -1;
	connection->generation = generation;
	connection->state = SLOT_FREE;
	connection->next_free = server->free_head;
	server->free_head = slot + 1;
	server->metrics.connections_open--;
	arm_accept(server); /* a slot is free again */
}

/* How long a closing connection keeps reading (and dropping) input. */
#define LINGER_MS 2000

/* Closes gracefully: our side is shut for writing (after what was sent), and
 * input is read and dropped until the peer closes or LINGER_MS pass (the
 * timer then shuts the socket down for good); the slot is freed once its
 * recv and send are back. */
static void close_connection(struct server *server, uint32_t slot)
{
	struct connection *connection = &server->connections[slot];
	if (connection->state != SLOT_OPEN)
		return;
	connection->state = SLOT_CLOSING;
	connection->reading_stopped = connection->requests_stopped = true;
	connection->linger_until_ms = monotonic_ms() + LINGER_MS;
	if (connection->send_in_flight) {
		/* A send that cannot finish (a peer that does not read) ends here. */
		shutdown(connection->fd, SHUT_RDWR);
		return;
	}
	shutdown(connection->fd, SHUT_WR);
	arm_linger_recv(server, slot);
}

/* Ends a closing connection's lingering at once. */
static void abort_connection(struct server *server, uint32_t slot)
{
	struct connection *connection = &server->connections[slot];
	if (connection->state == SLOT_OPEN)
		close_connection(server, slot);
	if (connection->state == SLOT_CLOSING) {
		connection->linger_until_ms = 0;
		shutdown(connection->fd, SHUT_RDWR);
		if (!connection->recv_armed && !connection->send_in_flight)
			release_slot(server, slot);
	}
}

static void maybe_release(struct server *server, uint32_t slot)
{
	struct connection *connection = &server->connections[slot];
	if (connection->state == SLOT_CLOSING && !connection->recv_armed && !connection->send_in_flight)
		release_slot(server, slot);
}

static void on_accept(struct server *server, struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE))
		server->accept_armed = false;
	if (cqe->res < 0) {
		if (cqe->res == -EINVAL && server->accept_multishot) {
			server->accept_multishot = false; /* an old kernel: one accept at a time */
		} else if (cqe->res != -ECANCELED && cqe->res != -EAGAIN && cqe->res != -EINTR &&
			   cqe->res != -ECONNABORTED) {
			fprintf(stderr, "licensor: accept: %s\n", strerror(-cqe->res));
		}
		if (!server->accept_armed && server->free_head)
			arm_accept(server);
		return;
	}
	int fd = cqe->res;
	if (server->draining || server->free_head == 0) {
		close(fd);
		server->metrics.connections_refused++;
	} else {
		uint32_t slot = server->free_head - 1;
		struct connection *connection = &server->connections[slot];
		server->free_head = connection->next_free;
		connection->state = SLOT_OPEN;
		connection->fd = fd;
		connection->last_activity_ms = monotonic_ms();
		http_framer_init(&connection->framer, &server->limits);
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		server->metrics.connections_open++;
		server->metrics.connections_accepted++;
		arm_recv(server, slot);
	}
	if (!server->accept_armed && server->free_head)
		arm_accept(server);
}

/* ---- sending ---- */

/* A worker sets `ready` before it hands the response back: until the
 * completion queue returns it (in_worker cleared here, on the I/O thread) it
 * is still the worker's. */
static bool sendable(const struct response *response)
{
	return !response->in_worker && response->ready;
}

static void try_send(struct server *server, uint32_t slot)
{
	struct connection *connection = &server->connections[slot];
	if (connection->send_in_flight || connection->state != SLOT_OPEN)
		return;
	size_t count = 0;
	for (struct response *response = connection->first; response && count < SEND_IOVECS;
	     response = queue_next(response)) {
		if (!sendable(response))
			break;
		connection->iov[count].iov_base = response->data + response->sent;
		connection->iov[count].iov_len = response->length - response->sent;
		count++;
		if (!response->keep_alive)
			break; /* nothing after a closing answer */
	}
	if (count == 0) {
		if (connection->close_when_flushed && connection->first == NULL &&
		    connection->backlog_offset == connection->backlog_length)
			close_connection(server, slot);
		return;
	}
	memset(&connection->message, 0, sizeof connection->message);
	connection->message.msg_iov = connection->iov;
	connection->message.msg_iovlen = count;
	struct io_uring_sqe *sqe = get_sqe(server);
	io_uring_prep_sendmsg(sqe, connection->fd, &connection->message, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, pack(OPERATION_SEND, slot, connection->generation));
	connection->send_in_flight = true;
	connection->send_progress_ms = monotonic_ms();
}

static size_t feed(struct server *server, uint32_t slot, const char *data, size_t length);

/* Answers left: maybe take the backlog and reading up again. The backlog is
 * fed from an offset (never copied again), so a megabyte of tiny pipelined
 * requests costs one pass. */
static void resume_if_possible(struct server *server, uint32_t slot)
{
	struct connection *connection = &server->connections[slot];
	if (!connection->paused || connection->unanswered >= server->options->max_pipelined ||
	    connection->state != SLOT_OPEN)
		return;
	connection->paused = false;
	if (connection->backlog_offset < connection->backlog_length)
		connection->backlog_offset +=
		    feed(server, slot, connection->backlog + connection->backlog_offset,
			 connection->backlog_length - connection->backlog_offset);
	if (connection->state != SLOT_OPEN)
		return;
	if (connection->backlog_offset == connection->backlog_length) {
		free(connection->backlog);
		connection->backlog = NULL;
		connection->backlog_length = connection->backlog_offset = 0;
	}
	if (!connection->paused)
		arm_recv(server, slot);
	try_send(server, slot);
}

/* Keeps bytes that arrived while paused. false: over the bound (closed). */
static bool keep_in_backlog(struct server *server, uint32_t slot, const char *data, size_t length)
{
	struct connection *connection = &server->connections[slot];
	size_t bound = server->limits.max_header_bytes + server->limits.max_body_bytes;
	size_t kept = connection->backlog_length - connection->backlog_offset;
	if (kept + length > bound)
		return false;
	if (connection->backlog_offset > 0) { /* compact once, before growing */
		memmove(connection->backlog, connection->backlog + connection->backlog_offset, kept);
		connection->backlog_length = kept;
		connection->backlog_offset = 0;
	}
	char *backlog = realloc(connection->backlog, connection->backlog_length + length);
	if (backlog == NULL)
		return false;
	memcpy(backlog + connection->backlog_length, data, length);
	connection->backlog = backlog;
	connection->backlog_length += length;
	return true;
}

static void on_send(struct server *server, uint32_t slot, struct io_uring_cqe *cqe)
{
	struct connection *connection = &server->connections[slot];
	connection->send_in_flight = false;
	if (connection->state != SLOT_OPEN) {
		maybe_release(server, slot);
		return;
	}
	if (cqe->res <= 0) {
		abort_connection(server, slot);
		return;
	}
	size_t sent = (size_t)cqe->res;
	connection->send_progress_ms = monotonic_ms();
	bool close_after = false;
	uint64_t now = monotonic_ns();
	while (connection->first && sendable(connection->first)) {
		struct response *response = connection->first;
		size_t left = response->length - response->sent;
		if (sent < left) {
			response->sent += sent;
			break;
		}
		sent -= left;
		connection->first = queue_next(response);
		if (connection->first == NULL)
			connection->last = NULL;
		if (!response->interim) {
			connection->unanswered--;
			server_metrics_count_response(&server->metrics, response->status);
			server_metrics_observe_latency(&server->metrics, now - response->received_ns);
			if (!response->keep_alive)
				close_after = true;
		}
		response_pool_put(&server->pool, response);
		if (close_after)
			break;
	}
	connection->last_activity_ms = monotonic_ms();
	if (close_after) {
		close_connection(server, slot);
		return;
	}
	resume_if_possible(server, slot);
	try_send(server, slot);
}

/* ---- requests ---- */

/* A new response at the tail of the connection's FIFO; an interim one (100
 * Continue) answers no request and is not counted as one. */
static struct response *enqueue_response(struct server *server, uint32_t slot, bool keep_alive, bool interim)
{
	struct connection *connection = &server->connections[slot];
	struct response *response = response_pool_get(&server->pool);
	if (response == NULL)
		return NULL;
	response->connection_slot = slot;
	response->connection_generation = connection->generation;
	response->sequence = connection->next_sequence++;
	response->received_ns = monotonic_ns();
	response->keep_alive = keep_alive;
	response->completions = &server->completions;
	if (connection->last)
		queue_next(connection->last) = response;
	else
		connection->first = response;
	connection->last = response;
	response->interim = interim;
	if (!interim) {
		connection->unanswered++;
		server->metrics.requests_total++;
	}
	return response;
}

static bool token_matches(struct server *server, const char *authorization)
{
	static const char scheme[] = "Bearer ";
	if (server->options->admin_token == NULL || authorization == NULL ||
	    strncasecmp(authorization, scheme, sizeof scheme - 1) != 0)
		return false;
	const char *token = authorization + sizeof scheme - 1;
	uint8_t digest[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)token, strlen(token), digest);
	/* Both sides hashed: the comparison takes the same time whatever the
	 * length or content of the guess. */
	return CRYPTO_memcmp(digest, server->admin_token_digest, sizeof digest) == 0;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The percent-decoded value of `name` in the query, as a new string; NULL
 * when absent. *bad set when present but not decodable (or with a NUL). */
static char *query_value(const char *query, size_t query_length, const char *name, bool *bad)
{
	size_t name_length = strlen(name);
	const char *end = query + query_length;
	for (const char *field = query; field && field < end;) {
		const char *field_end = memchr(field, '&', (size_t)(end - field));
		if (field_end == NULL)
			field_end = end;
		if ((size_t)(field_end - field) > name_length && memcmp(field, name, name_length) == 0 &&
		    field[name_length] == '=') {
			const char *value = field + name_length + 1;
			size_t length = (size_t)(field_end - value);
			char *out = malloc(length + 1);
			if (out == NULL) {
				*bad = true;
				return NULL;
			}
			size_t written = 0;
			for (size_t i = 0; i < length; i++) {
				char c = value[i];
				if (c == '+') {
					c = ' ';
				} else if (c == '%') {
					int high = i + 2 < length ? hex_value(value[i + 1]) : -1;
					int low = high >= 0 ? hex_value(value[i + 2]) : -1;
					if (high < 0 || low < 0 || (high == 0 && low == 0)) {
						free(out);
						*bad = true;
						return NULL;
					}
					c = (char)(high * 16 + low);
					i += 2;
				}
				out[written++] = c;
			}
			out[written] = '\0';
			return out;
		}
		field = field_end + 1;
	}
	return NULL;
}

static void engine_done(void *context, int http_status, const char *body, size_t length)
{
	struct response *response = context;
	if (!response_set(response, http_status, "application/xml", NULL, body, length))
		response->ready = false;
	completion_queue_push(response->completions, response);
}

static bool path_is(const struct http_request *request, const char *path)
{
	return request->path_length == strlen(path) && memcmp(request->path, path, request->path_length) == 0;
}

static void answer_error(struct response *response, lic_status code, int http_status, const char *sentence,
			 const char *headers)
{
	if (!response_set_error(response, code, http_status, sentence, headers))
		response->ready = false;
}

static void answer_licenses(struct server *server, struct response *response,
			    const struct http_request *request)
{
	if (request->content_type && strstr(request->content_type, "xml") == NULL) {
		answer_error(response, LIC_MALFORMED, 415,
			     "the body must be an AcquireLicense document (application/xml)", NULL);
		return;
	}
	lic_error error = {0};
	response->in_worker = true;
	server->in_workers++;
	lic_status status = lic_engine_submit_acquire(server->options->engine, request->body,
						      request->body_length, engine_done, response, &error);
	if (status == LIC_OK)
		return;
	response->in_worker = false;
	server->in_workers--;
	if (status == LIC_OVERLOADED) {
		server->metrics.overloaded_responses++;
		answer_error(response, LIC_OVERLOADED, 0, "the issuing queue is full: retry shortly",
			     "Retry-After: 1\r\n");
	} else {
		answer_error(response, status, 0, error.message, NULL);
	}
}

/* /v1/tenants/{t}/{what}: copies t (validated) and returns what, or NULL. */
static const char *tenant_route(const struct http_request *request, char tenant[TENANT_NAME_MAX + 1])
{
	static const char prefix[] = "/v1/tenants/";
	size_t prefix_length = sizeof prefix - 1;
	if (request->path_length <= prefix_length || memcmp(request->path, prefix, prefix_length) != 0)
		return NULL;
	const char *name = request->path + prefix_length;
	const char *end = request->path + request->path_length;
	const char *slash = memchr(name, '/', (size_t)(end - name));
	if (slash == NULL || (size_t)(slash - name) > TENANT_NAME_MAX)
		return NULL;
	memcpy(tenant, name, (size_t)(slash - name));
	tenant[slash - name] = '\0';
	static const char *const endpoints[] = {"publishing-key", "certify", "keys"};
	for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++)
		if ((size_t)(end - slash - 1) == strlen(endpoints[i]) &&
		    memcmp(slash + 1, endpoints[i], strlen(endpoints[i])) == 0)
			return endpoints[i];
	return NULL;
}

static void answer_tenant_request(struct server *server, struct response *response,
				  const struct http_request *request, const char *endpoint,
				  const char *tenant)
{
	bool certify = strcmp(endpoint, "certify") == 0, keys = strcmp(endpoint, "keys") == 0;
	enum http_request_method wanted = certify ? HTTP_METHOD_POST : HTTP_METHOD_GET;
	if (request->method != wanted) {
		answer_error(response, LIC_MALFORMED, 405, "method not allowed here",
			     certify ? "Allow: POST\r\n" : "Allow: GET\r\n");
		return;
	}
	if ((certify || keys) && !token_matches(server, request->authorization)) {
		answer_error(response, LIC_UNAUTHORIZED, 0,
			     server->options->admin_token
				 ? "this endpoint needs the admin token (Authorization: Bearer)"
				 : "admin endpoints are off: start the server with --admin-token-file",
			     "WWW-Authenticate: Bearer\r\n");
		return;
	}
	if (!tenant_name_valid(tenant)) {
		answer_error(response, LIC_UNKNOWN_TENANT, 0, "no such tenant (tenant names are [a-z0-9.-])",
			     NULL);
		return;
	}
	struct control_request *control = calloc(1, sizeof *control);
	bool bad = false;
	if (control == NULL) {
		answer_error(response, LIC_INTERNAL, 0, "out of memory", NULL);
		return;
	}
	memcpy(control->tenant, tenant, strlen(tenant) + 1);
	control->response = response;
	if (certify) {
		control->kind = CONTROL_CERTIFY;
		control->principal = query_value(request->query, request->query_length, "principal", &bad);
		char *days = query_value(request->query, request->query_length, "days", &bad);
		control->days = 31;
		if (days) {
			char *end = NULL;
			long value = strtol(days, &end, 10);
			if (*days == '\0' || *end != '\0' || value < 1 || value > 3650)
				bad = true;
			control->days = (unsigned)value;
			free(days);
		}
		if (bad || control->principal == NULL || request->body_length == 0) {
			control_request_free(control);
			answer_error(
			    response, LIC_MALFORMED, 0,
			    "certify needs ?principal=EMAIL (and optionally &days=1..3650) and the user's "
			    "public key (PEM) as the body",
			    NULL);
			return;
		}
		control->body = malloc(request->body_length);
		if (control->body)
			memcpy(control->body, request->body, request->body_length);
		control->body_length = request->body_length;
	} else if (keys) {
		control->kind = CONTROL_KEYS;
	} else {
		control->kind = CONTROL_PUBLISHING_KEY;
		control->client_id = query_value(request->query, request->query_length, "client", &bad);
		if (bad) {
			control_request_free(control);
			answer_error(response, LIC_MALFORMED, 0, "bad percent-encoding in ?client=", NULL);
			return;
		}
	}
	if ((certify && control->body == NULL)) {
		control_request_free(control);
		answer_error(response, LIC_INTERNAL, 0, "out of memory", NULL);
		return;
	}
	response->in_worker = true;
	server->in_workers++;
	if (control_worker_submit(server->control, control) != LIC_OK) {
		response->in_worker = false;
		server->in_workers--;
		control_request_free(control);
		server->metrics.overloaded_responses++;
		answer_error(response, LIC_OVERLOADED, 0, "the control queue is full: retry shortly",
			     "Retry-After: 1\r\n");
	}
}

static void answer_metrics(struct server *server, struct response *response)
{
	lic_engine_stats stats;
	lic_engine_get_stats(server->options->engine, &stats);
	uint64_t other = 0;
	size_t usage_count = lic_engine_get_key_usage(server->options->engine, server->key_usage,
						      server->key_usage_capacity, &other);
	server->metrics.keyring_reloads =
	    keyring_watcher_reloads(server->watcher, &server->metrics.keyring_reloaded_at);
	struct byte_builder builder;
	byte_builder_init(&builder, 4 * 1024 * 1024);
	metrics_render(&builder, &stats, server->key_usage, usage_count, other, &server->metrics);
	if (builder.failed ||
	    !response_set(response, 200, METRICS_CONTENT_TYPE, NULL, builder.data, builder.length))
		answer_error(response, LIC_INTERNAL, 0, "out of memory", NULL);
	byte_builder_cleanup(&builder);
}

static void handle_request(struct server *server, uint32_t slot, const struct http_request *request)
{
	struct response *response = enqueue_response(server, slot, request->keep_alive, false);
	if (response == NULL) {
		abort_connection(server, slot);
		return;
	}
	response->http_1_0 = request->http_1_0;
	char tenant[TENANT_NAME_MAX + 1];
	const char *endpoint = NULL;
	if (path_is(request, "/v1/licenses")) {
		if (request->method != HTTP_METHOD_POST)
			answer_error(response, LIC_MALFORMED, 405, "use POST", "Allow: POST\r\n");
		else
			answer_licenses(server, response, request);
	} else if (path_is(request, "/healthz")) {
		if (request->method != HTTP_METHOD_GET)
			answer_error(response, LIC_MALFORMED, 405, "use GET", "Allow: GET\r\n");
		else if (server->draining)
			response_set(response, 503, "text/plain", NULL, "draining\n", 9);
		else
			response_set(response, 200, "text/plain", NULL, "ok\n", 3);
	} else if (path_is(request, "/metrics")) {
		if (request->method != HTTP_METHOD_GET)
			answer_error(response, LIC_MALFORMED, 405, "use GET", "Allow: GET\r\n");
		else
			answer_metrics(server, response);
	} else if ((endpoint = tenant_route(request, tenant)) != NULL) {
		answer_tenant_request(server, response, request, endpoint, tenant);
	} else {
		answer_error(response, LIC_MALFORMED, 404, "no such endpoint", NULL);
	}
	/* Out of memory while answering here: the answer can never be sent. */
	if (!response->in_worker && !response->ready)
		abort_connection(server, slot);
}

/* Feeds received bytes to the framer, one request at a time, until they are
 * all consumed or the connection pauses (max_pipelined answers owed) or stops
 * taking requests. Returns how many bytes were consumed. */
static size_t feed(struct server *server, uint32_t slot, const char *data, size_t length)
{
	struct connection *connection = &server->connections[slot];
	size_t total = 0;
	while (total < length && connection->state == SLOT_OPEN && !connection->requests_stopped &&
	       !connection->paused) {
		size_t consumed = 0;
		enum http_feed_result result =
		    http_framer_feed(&connection->framer, data + total, length - total, &consumed);
		total += consumed;
		if (connection->request_started_ms == 0 &&
		    http_framer_phase(&connection->framer) != HTTP_PHASE_IDLE)
			connection->request_started_ms = monotonic_ms();
		switch (result) {
		case HTTP_FEED_NEED_MORE:
			return total;
		case HTTP_FEED_CONTINUE: {
			struct response *interim = enqueue_response(server, slot, true, true);
			if (interim == NULL || !response_set(interim, 100, "text/plain", NULL, NULL, 0)) {
				abort_connection(server, slot);
				return total;
			}
			/* A bare status line: no headers for a 1xx. */
			static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";
			memcpy(interim->data, continue_line, sizeof continue_line - 1);
			interim->length = sizeof continue_line - 1;
			break;
		}
		case HTTP_FEED_REQUEST:
			connection->request_started_ms = 0;
			handle_request(server, slot, &connection->framer.request);
			if (connection->state != SLOT_OPEN)
				return total;
			if (!connection->framer.request.keep_alive) {
				connection->requests_stopped = connection->reading_stopped = true;
				connection->close_when_flushed = true;
				cancel_recv(server, slot);
			}
			http_framer_next(&connection->framer);
			if (connection->unanswered >= server->options->max_pipelined) {
				connection->paused = true;
				cancel_recv(server, slot);
			}
			break;
		case HTTP_FEED_ERROR: {
			struct response *response = enqueue_response(server, slot, false, false);
			if (response == NULL) {
				abort_connection(server, slot);
				return total;
			}
			int code = connection->framer.error_status;
			answer_error(response, code == 413 ? LIC_TOO_LARGE : LIC_MALFORMED, code,
				     connection->framer.error_reason, NULL);
			if (!response->ready) {
				abort_connection(server, slot);
				return total;
			}
			connection->requests_stopped = connection->reading_stopped = true;
			connection->close_when_flushed = true;
			cancel_recv(server, slot);
			return total;
		}
		}
	}
	return total;
}

static void on_recv(struct server *server, uint32_t slot, struct io_uring_cqe *cqe)
{
	struct connection *connection = &server->connections[slot];
	bool more = cqe->flags & IORING_CQE_F_MORE;
	if (!more)
		connection->recv_armed = false;
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		unsigned buffer_id = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		/* Bytes received are taken even after EOF or a drain began: every
		 * request that arrived is answered. */
		if (cqe->res > 0 && connection->state == SLOT_OPEN && !connection->requests_stopped) {
			const char *data = server->buffers + (size_t)buffer_id * BUFFER_SIZE;
			size_t length = (size_t)cqe->res;
			connection->last_activity_ms = monotonic_ms();
			size_t used = connection->paused ? 0 : feed(server, slot, data, length);
			if (used < length && connection->state == SLOT_OPEN && connection->paused &&
			    !keep_in_backlog(server, slot, data + used, length - used))
				abort_connection(server, slot);
		}
		return_buffer(server, buffer_id);
	}
	if (connection->state == SLOT_CLOSING) {
		/* Lingering: input dropped; keep reading until EOF, an error or the
		 * deadline (abort_connection clears it). */
		if (!more) {
			bool ended =
			    cqe->res == 0 || (cqe->res < 0 && cqe->res != -ENOBUFS && cqe->res != -ECANCELED);
			if (!ended && connection->linger_until_ms > monotonic_ms())
				arm_linger_recv(server, slot);
		}
		maybe_release(server, slot);
		return;
	}
	if (connection->state != SLOT_OPEN) {
		maybe_release(server, slot);
		return;
	}
	if (cqe->res == 0 || (cqe->res < 0 && cqe->res != -ENOBUFS && cqe->res != -ECANCELED)) {
		/* The peer closed its side (or reset): answer what was asked, then close. */
		connection->reading_stopped = true;
		connection->close_when_flushed = true;
		if (connection->first == NULL && connection->backlog_offset == connection->backlog_length)
			close_connection(server, slot);
		return;
	}
	if (!more)
		arm_recv(server, slot); /* out of buffers, cancelled while paused, or the kernel ended it */
	try_send(server, slot);
}

/* Answers from the engine and the control worker. */
static void on_completions(struct server *server)
{
	struct response *response = completion_queue_take(&server->completions);
	while (response) {
		struct response *next = response->next;
		response->in_worker = false;
		server->in_workers--;
		uint32_t slot = response->connection_slot;
		struct connection *connection = &server->connections[slot];
		if (response->orphaned || connection->generation != response->connection_generation) {
			response_pool_put(&server->pool, response);
		} else if (connection->state == SLOT_OPEN) {
			if (!response->ready)
				abort_connection(server, slot); /* out of memory while answering */
			else
				try_send(server, slot);
		}
		/* SLOT_CLOSING: still in the FIFO; freed with the slot. */
		response = next;
	}
}

static void dispatch(struct server *server, struct io_uring_cqe *cqe);

/* ---- timeouts and draining ---- */

static void on_timer(struct server *server)
{
	int64_t now = monotonic_ms();
	const struct server_options *options = server->options;
	for (uint32_t slot = 0; slot < server->max_connections; slot++) {
		struct connection *connection = &server->connections[slot];
		if (connection->state == SLOT_CLOSING) {
			if (connection->linger_until_ms && now > connection->linger_until_ms)
				abort_connection(server, slot);
			continue;
		}
		if (connection->state != SLOT_OPEN)
			continue;
		/* A peer that stopped reading: the send made no progress. */
		if (connection->send_in_flight &&
		    now - connection->send_progress_ms > (int64_t)options->request_timeout_s * 1000) {
			server->metrics.timeouts_closed++;
			abort_connection(server, slot);
			continue;
		}
		enum http_phase phase = http_framer_phase(&connection->framer);
		bool expired = false;
		if (connection->request_started_ms && !connection->requests_stopped && !connection->paused) {
			int64_t limit_s =
			    phase == HTTP_PHASE_BODY ? options->request_timeout_s : options->header_timeout_s;
			expired = now - connection->request_started_ms > limit_s * 1000;
		} else if (connection->first == NULL && phase == HTTP_PHASE_IDLE) {
			expired =
			    now - connection->last_activity_ms > (int64_t)options->idle_timeout_s * 1000;
		}
		if (!expired)
			continue;
		server->metrics.timeouts_closed++;
		if (connection->request_started_ms && !connection->requests_stopped) {
			struct response *response = enqueue_response(server, slot, false, false);
			if (response) {
				answer_error(response, LIC_MALFORMED, 408,
					     "the request took too long to arrive", NULL);
				if (response->ready) {
					connection->requests_stopped = connection->reading_stopped = true;
					connection->close_when_flushed = true;
					cancel_recv(server, slot);
					try_send(server, slot);
					continue;
				}
			}
		}
		abort_connection(server, slot);
	}
}

static void start_draining(struct server *server)
{
	if (server->draining)
		return;
	server->draining = true;
	server->drain_deadline_ms = monotonic_ms() + (int64_t)server->options->drain_timeout_s * 1000;
	fprintf(stderr, "licensor: stopping: no new connections; answering what was received\n");
	if (server->accept_armed) {
		struct io_uring_sqe *sqe = get_sqe(server);
		io_uring_prep_cancel64(sqe, pack(OPERATION_ACCEPT, 0, 0), 0);
		io_uring_sqe_set_data64(sqe, pack(OPERATION_CANCEL, 0, 0));
		io_uring_submit(&server->ring);
	}
	/* The kernel completes handshakes for a listening socket by itself:
	 * closing it is what makes new clients get a refusal. */
	shutdown(server->listen_fd, SHUT_RDWR);
	close(server->listen_fd);
	server->listen_fd = -1;
	for (uint32_t slot = 0; slot < server->max_connections; slot++) {
		struct connection *connection = &server->connections[slot];
		if (connection->state != SLOT_OPEN)
			continue;
		/* No more reading; what was read (backlog included) is answered. */
		connection->reading_stopped = true;
		connection->close_when_flushed = true;
		cancel_recv(server, slot);
		if (connection->first == NULL && connection->backlog_offset == connection->backlog_length)
			close_connection(server, slot);
	}
}

/* After the drain deadline (or a failure): every socket is shut down and the
 * ring's last operations on them are reaped (at most a second), so that no
 * send still reads a buffer when the slots are freed. */
static void finish_operations(struct server *server)
{
	bool pending = false;
	for (uint32_t slot = 0; slot < server->max_connections; slot++) {
		struct connection *connection = &server->connections[slot];
		if (connection->state == SLOT_FREE)
			continue;
		abort_connection(server, slot);
		pending |= connection->state != SLOT_FREE;
	}
	int64_t deadline = monotonic_ms() + 1000;
	while (pending && monotonic_ms() < deadline) {
		struct __kernel_timespec wait = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
		struct io_uring_cqe *cqe = NULL;
		io_uring_submit_and_wait_timeout(&server->ring, &cqe, 1, &wait, NULL);
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&server->ring, head, cqe)
		{
			dispatch(server, cqe);
			seen++;
		}
		io_uring_cq_advance(&server->ring, seen);
		pending = false;
		for (uint32_t slot = 0; slot < server->max_connections && !pending; slot++)
			pending = server->connections[slot].state != SLOT_FREE;
	}
}

static bool drained(struct server *server)
{
	return server->metrics.connections_open == 0 && server->in_workers == 0;
}

/* ---- the loop ---- */

static void dispatch(struct server *server, struct io_uring_cqe *cqe)
{
	uint64_t data = io_uring_cqe_get_data64(cqe);
	enum operation operation = (enum operation)(data >> 56);
	uint32_t slot = (uint32_t)(data >> 32) & 0xffffffu;
	uint32_t generation = (uint32_t)data;
	if ((operation == OPERATION_RECV || operation == OPERATION_SEND) &&
	    (slot >= server->max_connections || server->connections[slot].generation != generation)) {
		/* Cannot happen: a slot is not reused while its operations are out.
		 * Still give a provided buffer back. */
		if (cqe->flags & IORING_CQE_F_BUFFER)
			return_buffer(server, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		return;
	}
	switch (operation) {
	case OPERATION_ACCEPT:
		on_accept(server, cqe);
		break;
	case OPERATION_RECV:
		on_recv(server, slot, cqe);
		break;
	case OPERATION_SEND:
		on_send(server, slot, cqe);
		break;
	case OPERATION_COMPLETIONS:
		on_completions(server);
		arm_completions(server);
		break;
	case OPERATION_SIGNAL:
		if (cqe->res == (int)sizeof server->signal_info) {
			if (server->signal_info.ssi_signo == SIGHUP)
				keyring_watcher_request_reload(server->watcher);
			else
				start_draining(server);
		}
		arm_signal(server);
		break;
	case OPERATION_TIMER:
		on_timer(server);
		arm_timer(server);
		break;
	case OPERATION_CANCEL:
		break;
	}
}

static lic_status run_loop(struct server *server)
{
	for (;;) {
		if (server->draining && (drained(server) || monotonic_ms() > server->drain_deadline_ms))
			break;
		int result = io_uring_submit_and_wait(&server->ring, 1);
		if (result < 0 && result != -EINTR && result != -EAGAIN && result != -EBUSY) {
			fprintf(stderr, "licensor: io_uring_submit_and_wait: %s\n", strerror(-result));
			return LIC_IO;
		}
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&server->ring, head, cqe)
		{
			dispatch(server, cqe);
			seen++;
		}
		io_uring_cq_advance(&server->ring, seen);
	}
	if (!drained(server))
		fprintf(stderr, "licensor: drain timeout: %llu connection(s) closed with answers pending\n",
			(unsigned long long)server->metrics.connections_open);
	return LIC_OK;
}

/* Blocks until every response out with a worker came back (they are freed). */
static void wait_for_workers(struct server *server)
{
	while (server->in_workers > 0 && server->completions.eventfd >= 0) {
		struct pollfd ready = {.fd = server->completions.eventfd, .events = POLLIN};
		poll(&ready, 1, 100);
		uint64_t value;
		ssize_t got = read(server->completions.eventfd, &value, sizeof value);
		(void)got;
		struct response *response = completion_queue_take(&server->completions);
		while (response) {
			struct response *next = response->next;
			server->in_workers--;
			response_pool_put(&server->pool, response);
			response = next;
		}
	}
}

void server_block_signals(void)
{
	sigset_t signals;
	sigemptyset(&signals);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGHUP);
	sigaddset(&signals, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);
}

/* As many connections as the descriptor limit allows (raised to its hard cap). */
static size_t connection_capacity(size_t wanted)
{
	struct rlimit limit;
	if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
		return wanted;
	if (limit.rlim_cur < limit.rlim_max) {
		limit.rlim_cur = limit.rlim_max;
		setrlimit(RLIMIT_NOFILE, &limit);
		getrlimit(RLIMIT_NOFILE, &limit);
	}
	size_t reserve = 64; /* store files, eventfds, the ring, stdio */
	if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < wanted + reserve) {
		size_t allowed = limit.rlim_cur > reserve + 16 ? limit.rlim_cur - reserve : 16;
		fprintf(stderr, "licensor: the descriptor limit allows %zu connections, not %zu\n", allowed,
			wanted);
		return allowed;
	}
	return wanted;
}

lic_status server_run(const struct server_options *given, lic_error *error)
{
	lic_status status = LIC_OK;
	struct server_options options = *given;
	if (!options.max_connections)
		options.max_connections = 16384;
	if (!options.max_pipelined)
		options.max_pipelined = 16;
	if (!options.header_timeout_s)
		options.header_timeout_s = 10;
	if (!options.request_timeout_s)
		options.request_timeout_s = 30;
	if (!options.idle_timeout_s)
		options.idle_timeout_s = 60;
	if (!options.drain_timeout_s)
		options.drain_timeout_s = 30;
	struct server *server = calloc(1, sizeof *server);
	if (server == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	server->options = &options;
	server->listen_fd = -1;
	server->signal_fd = -1;
	server->completions.eventfd = -1;
	server->accept_multishot = true;
	server->limits.max_header_bytes = options.max_header_bytes ? options.max_header_bytes : 16 * 1024;
	server->limits.max_body_bytes = options.max_body_bytes ? options.max_body_bytes : 1024 * 1024;
	if (options.admin_token)
		SHA256((const unsigned char *)options.admin_token, strlen(options.admin_token),
		       server->admin_token_digest);
	bool ring_ready = false;

	server->max_connections = connection_capacity(options.max_connections);
	server->connections = calloc(server->max_connections, sizeof *server->connections);
	if (server->connections == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory (%zu connection slots)",
			 server->max_connections);
	for (size_t i = server->max_connections; i-- > 0;) {
		server->connections[i].fd = -1;
		server->connections[i].next_free = server->free_head;
		server->free_head = (uint32_t)i + 1;
	}
	if (!completion_queue_init(&server->completions))
		LIC_FAIL(error, LIC_INTERNAL, "cannot make an eventfd: %s", strerror(errno));
	sigset_t signals;
	sigemptyset(&signals);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);
	server->signal_fd = signalfd(-1, &signals, SFD_CLOEXEC);
	if (server->signal_fd < 0)
		LIC_FAIL(error, LIC_INTERNAL, "signalfd: %s", strerror(errno));

	char url[96];
	LIC_TRY(open_listener(server, url, sizeof url, error));
	server->key_usage_capacity = lic_engine_key_usage_entries(options.engine);
	server->key_usage =
	    calloc(server->key_usage_capacity ? server->key_usage_capacity : 1, sizeof(lic_key_usage));
	if (server->key_usage == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	LIC_TRY(setup_ring(server, error));
	ring_ready = true;
	LIC_TRY(setup_buffer_ring(server, error));
	LIC_TRY(control_worker_new(options.keyring, &server->completions, 256, &server->control, error));
	LIC_TRY(keyring_watcher_start(options.keyring, options.engine, &server->watcher, error));

	arm_accept(server);
	arm_completions(server);
	arm_signal(server);
	arm_timer(server);
	io_uring_submit(&server->ring);
	if (options.on_listening)
		options.on_listening(options.context, url);
	status = run_loop(server);
out:
	server->draining = true; /* nothing is armed from here on */
	keyring_watcher_stop(server->watcher);
	control_worker_free(server->control); /* its last answers are pushed */
	if (ring_ready && server->connections)
		finish_operations(server);
	for (uint32_t slot = 0; server->connections && slot < server->max_connections; slot++)
		if (server->connections[slot].state != SLOT_FREE)
			release_slot(server, slot);
	/* The engine outlives this function (the caller frees it): wait until
	 * every answer it owes is back, so none lands in a freed queue. */
	wait_for_workers(server);
	if (ring_ready)
		io_uring_queue_exit(&server->ring);
	if (server->buffer_ring)
		munmap(server->buffer_ring, server->buffer_ring_bytes);
	free(server->buffers);
	if (server->listen_fd >= 0)
		close(server->listen_fd);
	if (server->signal_fd >= 0)
		close(server->signal_fd);
	completion_queue_cleanup(&server->completions);
	response_pool_cleanup(&server->pool);
	free(server->connections);
	free(server->key_usage);
	free(server);
	return status;
}
