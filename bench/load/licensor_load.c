/*
 * licensor_load.c: licensor-load, the open-loop HTTP/1.1 load generator of
 * DESIGN.md §8, on io_uring.
 *
 *   licensor-load --url URL --body FILE --rate R --duration S [--connections C]
 *                 [--pipeline P] [--steps R1,R2,...] [--server-pid PID] [--json]
 *
 * Requests are due on a fixed schedule (load_schedule.h): request i at
 * start + i/R. A due request goes to the connection with the fewest requests
 * in flight (at most P each); when none has room it waits, and its latency,
 * always measured from its due time to the end of its response, keeps
 * growing. So a server that stalls shows its stall in every request that was
 * due during it (no coordinated omission).
 *
 * One thread, one ring: per connection at most one recv and one send are
 * outstanding. Responses are framed by their status line and Content-Length
 * (the server always sends one); a response without one, or a closed or
 * failed connection, fails the requests in flight on it (counted in errors)
 * and the connection is opened again. The run stops at the duration plus a
 * drain of at most DRAIN_NS; what is unanswered then counts as a timeout.
 *
 * Output: a table, or with --json one object (an array with --steps), with
 * the percentiles of the latency histogram, the achieved rate, the errors,
 * and the CPU time of this process beside the server's (--server-pid).
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "latency_histogram.h"
#include "load_schedule.h"

#define DRAIN_NS 2000000000ull
#define MAX_WAIT_NS 100000000ull /* wake at least every 100 ms (progress, deadlines) */
#define MAX_BODY_BYTES (16u << 20)
#define MAX_BODIES 1000000u
#define MAX_RESPONSE_BYTES (64u << 20)
#define RECV_CHUNK 65536u
#define MAX_CONNECTIONS 4096u
#define MAX_PIPELINE 1024u
#define MAX_STATUS_KINDS 16

enum operation { OPERATION_RECV = 1, OPERATION_SEND = 2 };

struct options {
	const char *url;
	const char *body_path;
	double rates[64];
	unsigned rate_count;
	double duration_s;
	unsigned connections;
	unsigned pipeline;
	long server_pid;
	bool json;
	bool steps; /* --steps: JSON is an array, even of one run */
};

/* A prepared request: the whole HTTP/1.1 message, head and body. */
struct request {
	char *bytes;
	size_t length;
};

struct in_flight {
	uint64_t index; /* in the schedule: gives the due time */
	const struct request *request;
};

struct connection {
	int fd; /* -1 while closed */
	bool recv_pending, send_pending, broken;
	struct in_flight *ring;     /* pipeline entries, oldest at head */
	unsigned head, count, sent; /* sent: entries (from head) whose bytes are all sent */
	size_t send_offset;         /* bytes of entry head+sent already sent */
	char *rx;                   /* received bytes not yet parsed */
	size_t rx_length, rx_capacity;
};

struct status_count {
	int status;
	uint64_t count;
};

struct result {
	double offered_rate, duration_s, elapsed_s, achieved_rate;
	uint64_t offered, count, ok;
	uint64_t connection_errors, protocol_errors, timeouts; /* requests, as the statuses */
	uint64_t reconnect_failures;
	struct status_count statuses[MAX_STATUS_KINDS];
	unsigned status_kinds;
	double load_cpu_s, server_cpu_s;
	bool server_cpu_known;
	struct latency_histogram histogram;
};

struct run {
	const struct options *options;
	struct addrinfo *address;
	const struct request *requests;
	size_t request_count, next_request;
	struct io_uring ring;
	struct connection *connections;
	double rate;
	uint64_t start_ns, end_ns, deadline_ns, total, assigned, last_answer_ns;
	struct result *result;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int signal_number)
{
	interrupted = 1;
}

static uint64_t now_ns(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

static void usage(FILE *stream)
{
	fprintf(stream,
		"usage: licensor-load --url http://HOST:PORT[/PATH] --body FILE --rate R --duration S\n"
		"                     [--connections C] [--pipeline P] [--steps R1,R2,...]\n"
		"                     [--server-pid PID] [--json]\n"
		"  --body FILE: one request body, or lines '@path' (relative to FILE's directory)\n"
		"  sent round-robin. PATH defaults to /v1/licenses.\n");
}

/* ---- reading the bodies and building the requests ---- */

static char *read_file(const char *path, size_t *length)
{
	char *bytes = NULL;
	FILE *file = fopen(path, "rb");
	if (file == NULL) {
		fprintf(stderr, "licensor-load: %s: %s\n", path, strerror(errno));
		goto out;
	}
	size_t capacity = 4096, used = 0;
	bytes = malloc(capacity + 1);
	for (;;) {
		if (bytes == NULL)
			goto fail;
		size_t n = fread(bytes + used, 1, capacity - used, file);
		used += n;
		if (used < capacity)
			break;
		if (capacity >= MAX_BODY_BYTES) {
			fprintf(stderr, "licensor-load: %s: larger than %u bytes\n", path, MAX_BODY_BYTES);
			goto fail;
		}
		capacity *= 2;
		char *grown = realloc(bytes, capacity + 1);
		if (grown == NULL)
			free(bytes);
		bytes = grown;
	}
	if (ferror(file)) {
		fprintf(stderr, "licensor-load: %s: read error\n", path);
		goto fail;
	}
	bytes[used] = '\0';
	*length = used;
	goto out;
fail:
	free(bytes);
	bytes = NULL;
out:
	if (file != NULL)
		fclose(file);
	return bytes;
}

/* True when every non-empty line of text starts with '@' (and there is one). */
static bool is_body_list(const char *text)
{
	bool any = false;
	for (const char *line = text; *line != '\0';) {
		const char *end = strchr(line, '\n');
		size_t length = end ? (size_t)(end - line) : strlen(line);
		if (length > 0 && !(length == 1 && line[0] == '\r')) {
			if (line[0] != '@')
				return false;
			any = true;
		}
		line += length + (end ? 1 : 0);
	}
	return any;
}

static int build_request(struct request *request, const char *host, const char *path, const char *body,
			 size_t body_length)
{
	char head[2048];
	int head_length = snprintf(head, sizeof(head),
				   "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/xml\r\n"
				   "Content-Length: %zu\r\n\r\n",
				   path, host, body_length);
	if (head_length < 0 || (size_t)head_length >= sizeof(head))
		return -1;
	request->length = (size_t)head_length + body_length;
	request->bytes = malloc(request->length);
	if (request->bytes == NULL)
		return -1;
	memcpy(request->bytes, head, (size_t)head_length);
	memcpy(request->bytes + head_length, body, body_length);
	return 0;
}

static void free_requests(struct request *requests, size_t count)
{
	for (size_t i = 0; requests != NULL && i < count; i++)
		free(requests[i].bytes);
	free(requests);
}

/* Builds the requests from --body: *requests is owned by the caller (free_requests). */
static int load_requests(const char *body_path, const char *host, const char *path, struct request **requests,
			 size_t *count)
{
	int status = -1;
	size_t length = 0, built = 0, capacity = 0;
	struct request *list = NULL;
	char *directory = NULL;
	char *text = read_file(body_path, &length);
	if (text == NULL)
		goto out;
	if (!is_body_list(text)) {
		list = calloc(1, sizeof(*list));
		if (list == NULL || build_request(&list[0], host, path, text, length) != 0)
			goto out;
		built = 1;
		status = 0;
		goto out;
	}
	directory = strdup(body_path);
	if (directory == NULL)
		goto out;
	char *slash = strrchr(directory, '/');
	if (slash != NULL)
		slash[1] = '\0';
	else
		directory[0] = '\0';
	for (char *line = text; *line != '\0';) {
		char *end = strchr(line, '\n');
		if (end != NULL)
			*end = '\0';
		size_t line_length = strlen(line);
		if (line_length > 0 && line[line_length - 1] == '\r')
			line[--line_length] = '\0';
		if (line_length > 1) {
			char file_path[PATH_MAX];
			int n = snprintf(file_path, sizeof(file_path), "%s%s",
					 line[1] == '/' ? "" : directory, line + 1);
			if (n < 0 || (size_t)n >= sizeof(file_path) || built >= MAX_BODIES) {
				fprintf(stderr, "licensor-load: %s: path too long or too many bodies\n",
					body_path);
				goto out;
			}
			if (built == capacity) {
				capacity = capacity ? capacity * 2 : 64;
				struct request *grown = realloc(list, capacity * sizeof(*list));
				if (grown == NULL)
					goto out;
				list = grown;
			}
			size_t body_length = 0;
			char *body = read_file(file_path, &body_length);
			if (body == NULL)
				goto out;
			int built_status = build_request(&list[built], host, path, body, body_length);
			free(body);
			if (built_status != 0)
				goto out;
			built++;
		}
		if (end == NULL)
			break;
		line = end + 1;
	}
	status = 0;
out:
	if (status == 0) {
		*requests = list;
		*count = built;
	} else {
		free_requests(list, built);
	}
	free(directory);
	free(text);
	return status;
}

/* ---- the URL: http://HOST[:PORT][/PATH] ---- */

static int parse_url(const char *url, char *host_port, size_t host_port_size, char *host, size_t host_size,
		     char *port, size_t port_size, char *path, size_t path_size)
{
	if (strncmp(url, "http://", 7) != 0)
		return -1;
	const char *authority = url + 7;
	const char *slash = strchr(authority, '/');
	size_t authority_length = slash ? (size_t)(slash - authority) : strlen(authority);
	if (authority_length == 0 || authority_length >= host_port_size)
		return -1;
	memcpy(host_port, authority, authority_length);
	host_port[authority_length] = '\0';
	snprintf(path, path_size, "%s", slash && slash[1] != '\0' ? slash : "/v1/licenses");
	const char *host_start = host_port, *host_end, *colon;
	if (host_port[0] == '[') {
		host_start = host_port + 1;
		host_end = strchr(host_start, ']');
		if (host_end == NULL)
			return -1;
		colon = host_end[1] == ':' ? host_end + 1 : NULL;
	} else {
		colon = strrchr(host_port, ':');
		host_end = colon ? colon : host_port + authority_length;
	}
	if ((size_t)(host_end - host_start) >= host_size)
		return -1;
	memcpy(host, host_start, (size_t)(host_end - host_start));
	host[host_end - host_start] = '\0';
	snprintf(port, port_size, "%s", colon ? colon + 1 : "80");
	return 0;
}

/* ---- connections ---- */

static int connection_open(struct run *run, struct connection *connection)
{
	int fd = socket(run->address->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, run->address->ai_addr, run->address->ai_addrlen) != 0) {
		close(fd);
		return -1;
	}
	connection->fd = fd;
	connection->broken = false;
	connection->head = connection->count = connection->sent = 0;
	connection->send_offset = 0;
	connection->rx_length = 0;
	return 0;
}

static struct io_uring_sqe *get_sqe(struct run *run)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&run->ring);
	if (sqe == NULL) {
		io_uring_submit(&run->ring);
		sqe = io_uring_get_sqe(&run->ring);
	}
	return sqe;
}

static uint64_t user_data_of(unsigned index, enum operation operation)
{
	return ((uint64_t)index << 8) | (uint64_t)operation;
}

static int submit_recv(struct run *run, unsigned index)
{
	struct connection *connection = &run->connections[index];
	if (connection->rx_capacity - connection->rx_length < RECV_CHUNK) {
		size_t capacity = connection->rx_length + RECV_CHUNK * 2;
		char *grown = realloc(connection->rx, capacity);
		if (grown == NULL)
			return -1;
		connection->rx = grown;
		connection->rx_capacity = capacity;
	}
	struct io_uring_sqe *sqe = get_sqe(run);
	if (sqe == NULL)
		return -1;
	io_uring_prep_recv(sqe, connection->fd, connection->rx + connection->rx_length,
			   connection->rx_capacity - connection->rx_length, 0);
	io_uring_sqe_set_data64(sqe, user_data_of(index, OPERATION_RECV));
	connection->recv_pending = true;
	return 0;
}

static int submit_send(struct run *run, unsigned index)
{
	struct connection *connection = &run->connections[index];
	if (connection->send_pending || connection->broken || connection->sent == connection->count)
		return 0;
	unsigned slot = (connection->head + connection->sent) % run->options->pipeline;
	const struct request *request = connection->ring[slot].request;
	struct io_uring_sqe *sqe = get_sqe(run);
	if (sqe == NULL)
		return -1;
	io_uring_prep_send(sqe, connection->fd, request->bytes + connection->send_offset,
			   request->length - connection->send_offset, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, user_data_of(index, OPERATION_SEND));
	connection->send_pending = true;
	return 0;
}

static void count_status(struct result *result, int status)
{
	for (unsigned i = 0; i < result->status_kinds; i++) {
		if (result->statuses[i].status == status) {
			result->statuses[i].count++;
			return;
		}
	}
	if (result->status_kinds < MAX_STATUS_KINDS) {
		result->statuses[result->status_kinds].status = status;
		result->statuses[result->status_kinds].count = 1;
		result->status_kinds++;
	} else {
		result->protocol_errors++; /* too many distinct statuses to name */
	}
}

/* Fails every request in flight on the connection and starts closing it. */
static void connection_break(struct run *run, struct connection *connection, bool protocol)
{
	if (protocol)
		run->result->protocol_errors += connection->count;
	else
		run->result->connection_errors += connection->count;
	connection->count = connection->sent = 0;
	connection->send_offset = 0;
	if (!connection->broken && connection->fd >= 0)
		shutdown(connection->fd, SHUT_RDWR);
	connection->broken = true;
}

/* Once both operations are back, a broken connection is closed and opened again. */
static void connection_reopen_if_idle(struct run *run, unsigned index)
{
	struct connection *connection = &run->connections[index];
	if (!connection->broken || connection->recv_pending || connection->send_pending)
		return;
	if (connection->fd >= 0)
		close(connection->fd);
	connection->fd = -1;
	if (now_ns() >= run->end_ns || interrupted)
		return;
	if (connection_open(run, connection) != 0) {
		run->result->reconnect_failures++; /* not a request: its requests end as timeouts */
		return;
	}
	if (submit_recv(run, index) != 0)
		connection_break(run, connection, false);
}

/*
 * Parses the complete responses at the start of rx: each answers the oldest
 * request in flight. Returns -1 on a response that cannot be framed.
 */
static int parse_responses(struct run *run, struct connection *connection, uint64_t now)
{
	size_t offset = 0;
	int status = 0;
	while (connection->rx_length - offset >= 12) {
		const char *start = connection->rx + offset;
		size_t available = connection->rx_length - offset;
		const char *head_end = memmem(start, available, "\r\n\r\n", 4);
		if (head_end == NULL) {
			if (available > 65536)
				status = -1;
			break;
		}
		size_t head_length = (size_t)(head_end - start) + 4;
		if (memcmp(start, "HTTP/1.", 7) != 0 || start[8] != ' ') {
			status = -1;
			break;
		}
		int code = atoi(start + 9);
		long long content_length = -1;
		for (const char *line = memchr(start, '\n', head_length); line != NULL && line < head_end;
		     line = memchr(line + 1, '\n', (size_t)(head_end - line))) {
			if (strncasecmp(line + 1, "Content-Length:", 15) == 0)
				content_length = strtoll(line + 16, NULL, 10);
		}
		if (code >= 100 && code < 200) {
			offset += head_length; /* an interim response: the final one follows */
			continue;
		}
		if (content_length < 0 || content_length > MAX_RESPONSE_BYTES) {
			status = -1;
			break;
		}
		if (available < head_length + (size_t)content_length)
			break;
		offset += head_length + (size_t)content_length;
		if (connection->sent == 0) {
			status = -1; /* an answer to nothing we sent */
			break;
		}
		struct in_flight *answered = &connection->ring[connection->head];
		uint64_t due = load_schedule_due_time(run->start_ns, run->rate, answered->index);
		latency_histogram_record(&run->result->histogram, now > due ? now - due : 0);
		run->result->count++;
		run->last_answer_ns = now;
		if (code == 200)
			run->result->ok++;
		else
			count_status(run->result, code);
		connection->head = (connection->head + 1) % run->options->pipeline;
		connection->count--;
		connection->sent--;
	}
	memmove(connection->rx, connection->rx + offset, connection->rx_length - offset);
	connection->rx_length -= offset;
	return status;
}

static void handle_completion(struct run *run, struct io_uring_cqe *cqe)
{
	uint64_t data = io_uring_cqe_get_data64(cqe);
	unsigned index = (unsigned)(data >> 8);
	struct connection *connection = &run->connections[index];
	int res = cqe->res;
	if ((data & 0xff) == OPERATION_RECV) {
		connection->recv_pending = false;
		if (connection->broken) {
			/* nothing */
		} else if (res <= 0) {
			connection_break(run, connection, false);
		} else {
			connection->rx_length += (size_t)res;
			if (parse_responses(run, connection, now_ns()) != 0)
				connection_break(run, connection, true);
			else if (submit_recv(run, index) != 0)
				connection_break(run, connection, false);
		}
	} else {
		connection->send_pending = false;
		if (connection->broken) {
			/* nothing */
		} else if (res <= 0) { /* a send that moves nothing would loop */
			connection_break(run, connection, false);
		} else {
			unsigned slot = (connection->head + connection->sent) % run->options->pipeline;
			connection->send_offset += (size_t)res;
			if (connection->send_offset == connection->ring[slot].request->length) {
				connection->sent++;
				connection->send_offset = 0;
			}
			if (submit_send(run, index) != 0)
				connection_break(run, connection, false);
		}
	}
	connection_reopen_if_idle(run, index);
}

/* Hands due requests to the least busy connections; true if one still has room. */
static bool assign_due(struct run *run, uint64_t now)
{
	uint64_t due = load_schedule_due_count(run->start_ns, run->rate, now);
	if (due > run->total)
		due = run->total;
	unsigned connections = run->options->connections, pipeline = run->options->pipeline;
	bool room = false;
	for (unsigned depth = 0; depth < pipeline; depth++) {
		for (unsigned i = 0; i < connections; i++) {
			struct connection *connection = &run->connections[i];
			if (connection->fd < 0 || connection->broken || connection->count != depth)
				continue;
			if (run->assigned >= due) {
				room = true;
				continue;
			}
			unsigned slot = (connection->head + connection->count) % pipeline;
			connection->ring[slot].index = run->assigned++;
			connection->ring[slot].request = &run->requests[run->next_request];
			run->next_request = (run->next_request + 1) % run->request_count;
			connection->count++;
			if (submit_send(run, i) != 0)
				connection_break(run, connection, false);
		}
		if (run->assigned >= due && room)
			break;
	}
	return room;
}

static bool read_process_cpu(long pid, double *seconds)
{
	char path[64], text[1024];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	FILE *file = fopen(path, "r");
	if (file == NULL)
		return false;
	size_t n = fread(text, 1, sizeof(text) - 1, file);
	fclose(file);
	text[n] = '\0';
	char *after = strrchr(text, ')');
	unsigned long utime = 0, stime = 0;
	/* fields 3..13 after the name, then utime (14) and stime (15) */
	if (after == NULL ||
	    sscanf(after + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
		return false;
	*seconds = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
	return true;
}

static double self_cpu(void)
{
	struct rusage usage;
	getrusage(RUSAGE_SELF, &usage);
	return (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 +
	       (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6;
}

static void print_progress(const struct run *run, uint64_t now)
{
	fprintf(stderr, "\rlicensor-load: %5.1f s  rate %.0f/s  due %llu  answered %llu  p99 %.2f ms   ",
		(double)(now - run->start_ns) / 1e9, run->rate,
		(unsigned long long)load_schedule_due_count(run->start_ns, run->rate, now),
		(unsigned long long)run->result->count,
		(double)latency_histogram_percentile(&run->result->histogram, 99) / 1e6);
}

/* One run at one rate. Returns 0 when the run took place (errors are in result). */
static int load_run(const struct options *options, struct addrinfo *address, const struct request *requests,
		    size_t request_count, double rate, struct result *result)
{
	int status = -1;
	bool ring_ready = false;
	struct run run = {.options = options,
			  .address = address,
			  .requests = requests,
			  .request_count = request_count,
			  .rate = rate,
			  .result = result};
	memset(result, 0, sizeof(*result));
	latency_histogram_init(&result->histogram);
	unsigned entries = 2 * options->connections + 16;
	if (io_uring_queue_init(entries, &run.ring, 0) != 0) {
		fprintf(stderr, "licensor-load: io_uring_queue_init failed\n");
		goto out;
	}
	ring_ready = true;
	run.connections = calloc(options->connections, sizeof(*run.connections));
	if (run.connections == NULL)
		goto out;
	for (unsigned i = 0; i < options->connections; i++)
		run.connections[i].fd = -1;
	for (unsigned i = 0; i < options->connections; i++) {
		struct connection *connection = &run.connections[i];
		connection->ring = calloc(options->pipeline, sizeof(*connection->ring));
		if (connection->ring == NULL)
			goto out;
		if (connection_open(&run, connection) != 0) {
			fprintf(stderr, "licensor-load: cannot connect to %s: %s\n", options->url,
				strerror(errno));
			goto out;
		}
		if (submit_recv(&run, i) != 0)
			goto out;
	}
	io_uring_submit(&run.ring);

	uint64_t duration_ns = (uint64_t)(options->duration_s * 1e9);
	run.total = load_schedule_total(rate, duration_ns);
	bool progress = isatty(STDERR_FILENO) && !options->json;
	double server_cpu_before = 0, server_cpu_after = 0;
	bool server_known =
	    options->server_pid > 0 && read_process_cpu(options->server_pid, &server_cpu_before);
	double cpu_before = self_cpu();
	run.start_ns = now_ns();
	run.end_ns = run.start_ns + duration_ns;
	run.deadline_ns = run.end_ns + DRAIN_NS;
	uint64_t next_progress = run.start_ns + 1000000000ull;
	for (;;) {
		uint64_t now = now_ns();
		bool room = assign_due(&run, now);
		uint64_t in_flight = 0;
		unsigned open = 0;
		for (unsigned i = 0; i < options->connections; i++) {
			in_flight += run.connections[i].count;
			open += run.connections[i].fd >= 0;
		}
		/* Stop at the deadline, when all is answered, or when no connection could be opened again. */
		if (interrupted || now >= run.deadline_ns || open == 0 ||
		    (now >= run.end_ns && run.assigned >= run.total && in_flight == 0))
			break;
		if (progress && now >= next_progress) {
			print_progress(&run, now);
			next_progress += 1000000000ull;
		}
		uint64_t wake = run.deadline_ns;
		if (room && run.assigned < run.total) {
			uint64_t next_due = load_schedule_due_time(run.start_ns, rate, run.assigned);
			if (next_due < wake)
				wake = next_due;
		}
		if (run.end_ns > now && run.end_ns < wake)
			wake = run.end_ns;
		if (wake > now + MAX_WAIT_NS)
			wake = now + MAX_WAIT_NS;
		uint64_t wait = wake > now ? wake - now : 0;
		struct __kernel_timespec timeout = {.tv_sec = (long long)(wait / 1000000000ull),
						    .tv_nsec = (long long)(wait % 1000000000ull)};
		struct io_uring_cqe *cqe = NULL;
		int waited = wait > 0 ? io_uring_submit_and_wait_timeout(&run.ring, &cqe, 1, &timeout, NULL)
				      : io_uring_submit(&run.ring);
		if (waited < 0 && waited != -ETIME && waited != -EINTR && waited != -EAGAIN) {
			fprintf(stderr, "licensor-load: io_uring wait: %s\n", strerror(-waited));
			goto out;
		}
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&run.ring, head, cqe)
		{
			handle_completion(&run, cqe);
			seen++;
		}
		io_uring_cq_advance(&run.ring, seen);
	}
	uint64_t stop = now_ns();
	result->load_cpu_s = self_cpu() - cpu_before;
	if (server_known && read_process_cpu(options->server_pid, &server_cpu_after)) {
		result->server_cpu_s = server_cpu_after - server_cpu_before;
		result->server_cpu_known = true;
	}
	if (progress)
		fprintf(stderr, "\n");
	/* Whatever is still unanswered (in flight, or never sent) is a timeout. */
	for (unsigned i = 0; i < options->connections; i++)
		result->timeouts += run.connections[i].count;
	result->timeouts += run.total - run.assigned;
	result->offered_rate = rate;
	result->duration_s = options->duration_s;
	result->offered = run.total;
	result->elapsed_s = (double)(stop - run.start_ns) / 1e9;
	/* Answers per second over the run: the duration, or longer if answers came after it. */
	double span = options->duration_s;
	if (run.last_answer_ns > run.end_ns)
		span = (double)(run.last_answer_ns - run.start_ns) / 1e9;
	result->achieved_rate = span > 0 ? (double)result->count / span : 0;
	status = 0;
out:
	if (run.connections != NULL) {
		for (unsigned i = 0; i < options->connections; i++) {
			if (run.connections[i].fd >= 0)
				close(run.connections[i].fd);
			free(run.connections[i].ring);
			free(run.connections[i].rx);
		}
		free(run.connections);
	}
	if (ring_ready)
		io_uring_queue_exit(&run.ring);
	return status;
}

/* ---- output ---- */

static uint64_t error_total(const struct result *result)
{
	uint64_t total = result->connection_errors + result->protocol_errors + result->timeouts;
	for (unsigned i = 0; i < result->status_kinds; i++)
		total += result->statuses[i].count;
	return total;
}

static double percentile_ms(const struct result *result, double percentile)
{
	return (double)latency_histogram_percentile(&result->histogram, percentile) / 1e6;
}

static void print_json(const struct options *options, const struct result *result)
{
	printf("{\"offered_rate\":%.3f,\"achieved_rate\":%.3f,\"duration_s\":%.3f,\"elapsed_s\":%.3f,"
	       "\"offered\":%llu,\"count\":%llu,\"ok\":%llu,"
	       "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,"
	       "\"connections\":%u,\"pipeline\":%u,\"errors\":{",
	       result->offered_rate, result->achieved_rate, result->duration_s, result->elapsed_s,
	       (unsigned long long)result->offered, (unsigned long long)result->count,
	       (unsigned long long)result->ok, percentile_ms(result, 50), percentile_ms(result, 90),
	       percentile_ms(result, 99), percentile_ms(result, 99.9),
	       (double)latency_histogram_max(&result->histogram) / 1e6, options->connections,
	       options->pipeline);
	const char *separator = "";
	for (unsigned i = 0; i < result->status_kinds; i++) {
		printf("%s\"%d\":%llu", separator, result->statuses[i].status,
		       (unsigned long long)result->statuses[i].count);
		separator = ",";
	}
	if (result->connection_errors > 0) {
		printf("%s\"connection\":%llu", separator, (unsigned long long)result->connection_errors);
		separator = ",";
	}
	if (result->protocol_errors > 0) {
		printf("%s\"protocol\":%llu", separator, (unsigned long long)result->protocol_errors);
		separator = ",";
	}
	if (result->timeouts > 0)
		printf("%s\"timeout\":%llu", separator, (unsigned long long)result->timeouts);
	printf(
	    "},\"error_count\":%llu,\"reconnect_failures\":%llu,\"load_cpu_s\":%.3f,\"load_cpu_share\":%.3f",
	    (unsigned long long)error_total(result), (unsigned long long)result->reconnect_failures,
	    result->load_cpu_s, result->elapsed_s > 0 ? result->load_cpu_s / result->elapsed_s : 0);
	if (result->server_cpu_known)
		printf(",\"server_pid\":%ld,\"server_cpu_s\":%.3f,\"server_cpu_share\":%.3f",
		       options->server_pid, result->server_cpu_s,
		       result->elapsed_s > 0 ? result->server_cpu_s / result->elapsed_s : 0);
	printf("}");
}

static void print_table_header(void)
{
	printf("%10s %10s %8s %8s %9s %9s %9s %9s %9s %7s %8s\n", "offered/s", "achieved/s", "count",
	       "errors", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "cpu s", "srv cpu");
}

static void print_table_row(const struct result *result)
{
	char server[32] = "-";
	if (result->server_cpu_known)
		snprintf(server, sizeof(server), "%.2f", result->server_cpu_s);
	printf("%10.0f %10.1f %8llu %8llu %9.3f %9.3f %9.3f %9.3f %9.3f %7.2f %8s\n", result->offered_rate,
	       result->achieved_rate, (unsigned long long)result->count,
	       (unsigned long long)error_total(result), percentile_ms(result, 50), percentile_ms(result, 90),
	       percentile_ms(result, 99), percentile_ms(result, 99.9),
	       (double)latency_histogram_max(&result->histogram) / 1e6, result->load_cpu_s, server);
	for (unsigned i = 0; i < result->status_kinds; i++)
		printf("    HTTP %d: %llu\n", result->statuses[i].status,
		       (unsigned long long)result->statuses[i].count);
	if (result->connection_errors + result->protocol_errors + result->timeouts > 0)
		printf("    connection errors: %llu, unframed responses: %llu, timeouts: %llu, reconnects "
		       "failed: %llu\n",
		       (unsigned long long)result->connection_errors,
		       (unsigned long long)result->protocol_errors, (unsigned long long)result->timeouts,
		       (unsigned long long)result->reconnect_failures);
}

/* ---- command line ---- */

static bool parse_number(const char *text, double minimum, double maximum, double *value)
{
	char *end = NULL;
	errno = 0;
	double parsed = strtod(text, &end);
	if (errno != 0 || end == text || *end != '\0' || !(parsed >= minimum && parsed <= maximum))
		return false;
	*value = parsed;
	return true;
}

static bool parse_rates(const char *text, struct options *options)
{
	char copy[1024];
	if (snprintf(copy, sizeof(copy), "%s", text) >= (int)sizeof(copy))
		return false;
	options->rate_count = 0;
	char *save = NULL;
	for (char *item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
		if (options->rate_count == sizeof(options->rates) / sizeof(options->rates[0]) ||
		    !parse_number(item, 0.001, 10e6, &options->rates[options->rate_count]))
			return false;
		options->rate_count++;
	}
	return options->rate_count > 0;
}

/* Returns 0 on success, 1 after --help, 2 on a usage error (printed). */
static int parse_options(int argc, char **argv, struct options *options)
{
	double number = 0;
	bool steps = false, rate = false;
	*options = (struct options){.duration_s = 0, .connections = 8, .pipeline = 1};
	for (int i = 1; i < argc; i++) {
		const char *name = argv[i];
		if (strcmp(name, "--json") == 0) {
			options->json = true;
			continue;
		}
		if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
			usage(stdout);
			return 1;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "licensor-load: %s needs a value\n", name);
			return 2;
		}
		const char *value = argv[++i];
		if (strcmp(name, "--url") == 0) {
			options->url = value;
		} else if (strcmp(name, "--body") == 0) {
			options->body_path = value;
		} else if (strcmp(name, "--rate") == 0) {
			if (!parse_number(value, 0.001, 10e6, &options->rates[0]))
				goto bad_value;
			rate = true;
		} else if (strcmp(name, "--steps") == 0) {
			if (!parse_rates(value, options))
				goto bad_value;
			steps = true;
		} else if (strcmp(name, "--duration") == 0) {
			if (!parse_number(value, 0.001, 86400, &options->duration_s))
				goto bad_value;
		} else if (strcmp(name, "--connections") == 0) {
			if (!parse_number(value, 1, MAX_CONNECTIONS, &number))
				goto bad_value;
			options->connections = (unsigned)number;
		} else if (strcmp(name, "--pipeline") == 0) {
			if (!parse_number(value, 1, MAX_PIPELINE, &number))
				goto bad_value;
			options->pipeline = (unsigned)number;
		} else if (strcmp(name, "--server-pid") == 0) {
			if (!parse_number(value, 1, 4194304, &number))
				goto bad_value;
			options->server_pid = (long)number;
		} else {
			fprintf(stderr, "licensor-load: unknown option %s\n", name);
			usage(stderr);
			return 2;
		}
		continue;
	bad_value:
		fprintf(stderr, "licensor-load: bad value for %s: %s\n", name, value);
		return 2;
	}
	if (rate && !steps)
		options->rate_count = 1;
	options->steps = steps;
	if (options->url == NULL || options->body_path == NULL || options->rate_count == 0 ||
	    options->duration_s <= 0 || (rate && steps)) {
		fprintf(stderr,
			"licensor-load: --url, --body, --duration and one of --rate or --steps are needed\n");
		usage(stderr);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int exit_code = 1;
	struct options options;
	struct request *requests = NULL;
	size_t request_count = 0;
	struct addrinfo *address = NULL;
	struct result *result = NULL;
	int parsed = parse_options(argc, argv, &options);
	if (parsed != 0) {
		exit_code = parsed == 1 ? 0 : parsed;
		goto out;
	}
	char host_port[512], host[256], port[32], path[1024];
	if (parse_url(options.url, host_port, sizeof(host_port), host, sizeof(host), port, sizeof(port), path,
		      sizeof(path)) != 0) {
		fprintf(stderr, "licensor-load: --url must be http://HOST[:PORT][/PATH], got %s\n",
			options.url);
		exit_code = 2;
		goto out;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	int resolved = getaddrinfo(host, port, &hints, &address);
	if (resolved != 0) {
		fprintf(stderr, "licensor-load: %s: %s\n", host_port, gai_strerror(resolved));
		goto out;
	}
	if (load_requests(options.body_path, host_port, path, &requests, &request_count) != 0)
		goto out;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	result = malloc(sizeof(*result));
	if (result == NULL)
		goto out;
	bool steps = options.steps;
	if (options.json && steps)
		printf("[");
	else if (!options.json)
		print_table_header();
	for (unsigned i = 0; i < options.rate_count && !interrupted; i++) {
		if (load_run(&options, address, requests, request_count, options.rates[i], result) != 0)
			goto out;
		if (options.json) {
			if (steps && i > 0)
				printf(",");
			print_json(&options, result);
		} else {
			print_table_row(result);
		}
		fflush(stdout);
	}
	if (options.json)
		printf(steps ? "]\n" : "\n");
	exit_code = interrupted ? 130 : 0;
out:
	free(result);
	free_requests(requests, request_count);
	if (address != NULL)
		freeaddrinfo(address);
	return exit_code;
}
