/*
 * replay.c: see replay.h.
 *
 * The loop's state, and who touches what:
 *   - chunks: file reads in flight or done, appended to `pending` strictly in
 *     file order (reads may complete out of order);
 *   - pending: bytes read and not yet submitted; it always has room for one
 *     more chunk behind an incomplete record, so reading never stalls on a
 *     record that spans chunks;
 *   - answered, responses_by_status: written by the engine's workers in
 *     on_answer, under answer_lock, which also covers the eventfd write: once
 *     the loop has taken answer_lock after seeing every body answered, no
 *     worker touches this state or the eventfd again, and both can go.
 * Everything else belongs to the calling thread.
 *
 * One wait point: io_uring_submit_and_wait. What can wake it: a file read,
 * the eventfd read (an answer came back), or a 1 ms timeout that is armed
 * only when a body was refused with LIC_OVERLOADED while none of ours was in
 * flight (the queue is full of someone else's work: nothing of ours will
 * write the eventfd).
 */
#include "io/replay.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keyring/error.h"

/* "1048576\n": the longest length line, with its '\n'. */
#define LENGTH_LINE_MAX_BYTES 8
/* The biggest record: length line, body, '\n'. */
#define RECORD_MAX_BYTES (LENGTH_LINE_MAX_BYTES + REPLAY_BODY_MAX_BYTES + 1)
#define RING_ENTRIES 8
/* user_data of the ring's requests other than chunk reads (0 … READS_IN_FLIGHT-1). */
#define WAKEUP_READ_TAG 1000
#define OVERLOADED_TIMEOUT_TAG 1001
#define OVERLOADED_RETRY_NS 1000000L

enum chunk_state { CHUNK_FREE, CHUNK_READING, CHUNK_READ };

struct chunk {
	char *data; /* REPLAY_CHUNK_BYTES */
	uint64_t file_offset;
	size_t length; /* bytes read */
	enum chunk_state state;
};

/* What a record check found at the start of pending. */
enum record_check { RECORD_COMPLETE, RECORD_NEEDS_MORE_BYTES, RECORD_BAD };

struct replay {
	const struct replay_options *options;
	struct replay_report *report;
	lic_error *error;
	lic_status status; /* the first failure; LIC_OK while none */

	int file;
	struct io_uring ring;
	bool ring_ready;
	bool ring_broken; /* io_uring_submit_and_wait failed for good */

	struct chunk chunks[REPLAY_READS_IN_FLIGHT];
	unsigned reads_outstanding;
	unsigned pass; /* 1 … repeat */
	uint64_t next_read_offset;
	uint64_t next_append_offset; /* the file offset of the next chunk to append */
	bool end_of_file_seen;       /* a read came back short this pass */
	uint64_t end_of_file_offset;

	char *pending;
	size_t pending_start, pending_end, pending_capacity;
	uint64_t pending_file_offset; /* file offset of pending[pending_start] */
	uint64_t record_number;       /* 1-based, in this pass, of the record at pending_start */
	bool all_submitted;           /* the last pass is done */

	bool held;             /* the record at pending_start was refused with LIC_OVERLOADED */
	int wakeup;            /* eventfd that on_answer writes */
	uint64_t wakeup_value; /* the ring's eventfd read lands here */
	bool wakeup_armed;     /* that read is in the ring */
	bool timeout_armed;    /* the LIC_OVERLOADED timeout is in the ring */
	struct __kernel_timespec retry_after;
	uint64_t max_in_flight;

	pthread_mutex_t answer_lock;
	atomic_uint_fast64_t answered;
	atomic_uint_fast64_t responses_by_status[REPLAY_HTTP_STATUS_LIMIT];
};

/* ---- answers, on the engine's worker threads ---- */

static void on_answer(void *context, int http_status, const char *response, size_t length)
{
	(void)response;
	(void)length;
	struct replay *replay = context;
	size_t index = http_status >= 100 && http_status < REPLAY_HTTP_STATUS_LIMIT ? (size_t)http_status : 0;
	uint64_t one = 1;
	pthread_mutex_lock(&replay->answer_lock);
	atomic_fetch_add_explicit(&replay->responses_by_status[index], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&replay->answered, 1, memory_order_release);
	/* Fails only if the counter would overflow, which 2^64 - 2 answers cannot
	 * make it do; a lost write cannot happen either way. */
	while (write(replay->wakeup, &one, sizeof one) < 0 && errno == EINTR)
		;
	pthread_mutex_unlock(&replay->answer_lock);
}

static uint64_t answers_received(const struct replay *replay)
{
	return atomic_load_explicit(&replay->answered, memory_order_acquire);
}

static uint64_t bodies_in_flight(const struct replay *replay)
{
	return replay->report->requests_submitted - answers_received(replay);
}

/* ---- failures ---- */

/* Records the first failure; later ones are consequences of it. */
static void fail(struct replay *replay, lic_status status, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct replay *replay, lic_status status, const char *format, ...)
{
	if (replay->status != LIC_OK)
		return;
	replay->status = status;
	if (replay->error == NULL)
		return;
	va_list arguments;
	va_start(arguments, format);
	vsnprintf(replay->error->message, sizeof replay->error->message, format, arguments);
	va_end(arguments);
	replay->error->status = status;
}

/* Up to 12 bytes of the file, quoted for a message: printable ASCII as it
 * is, anything else as '?'. */
static void quote_bytes(const char *bytes, size_t length, char *out, size_t out_size)
{
	size_t shown = length < 12 ? length : 12;
	size_t used = 0;
	for (size_t i = 0; i < shown && used + 1 < out_size; i++)
		if (bytes[i] >= 0x20 && bytes[i] < 0x7f)
			out[used++] = bytes[i];
		else
			out[used++] = '?';
	out[used] = '\0';
}

/* A record that stops the run: "replay file record N: <what>; K requests
 * were submitted before it, none after". */
static void fail_record(struct replay *replay, lic_status status, const char *what)
{
	char pass[48] = "";
	if (replay->pass > 1)
		snprintf(pass, sizeof pass, " (pass %u)", replay->pass);
	uint64_t submitted = replay->report->requests_submitted;
	fail(replay, status, "replay file record %llu%s: %s; %llu request%s submitted before it, none after",
	     (unsigned long long)replay->record_number, pass, what, (unsigned long long)submitted,
	     submitted == 1 ? " was" : "s were");
}

/* ---- records ---- */

/* Checks the record at the start of pending. On RECORD_COMPLETE, *body and
 * *body_length locate its body and *record_length is its size with the
 * length line and the final '\n'. `at_end`: no more bytes will come this
 * pass, so a short record is a truncated one. */
static enum record_check check_record(struct replay *replay, bool at_end, const char **body,
				      size_t *body_length, size_t *record_length)
{
	const char *start = replay->pending + replay->pending_start;
	size_t available = replay->pending_end - replay->pending_start;
	char what[256], quoted[16];
	unsigned long long offset = (unsigned long long)replay->pending_file_offset;
	size_t scan = available < LENGTH_LINE_MAX_BYTES ? available : LENGTH_LINE_MAX_BYTES;
	const char *newline = memchr(start, '\n', scan);
	size_t digits = newline ? (size_t)(newline - start) : scan;
	for (size_t i = 0; i < digits; i++) {
		if (start[i] < '0' || start[i] > '9') {
			quote_bytes(start, digits, quoted, sizeof quoted);
			snprintf(what, sizeof what,
				 "the length line at byte %llu is not a decimal byte count (it starts '%s')",
				 offset, quoted);
			fail_record(replay, LIC_MALFORMED, what);
			return RECORD_BAD;
		}
	}
	if (newline == NULL) {
		if (scan == LENGTH_LINE_MAX_BYTES) {
			snprintf(what, sizeof what,
				 "the length at byte %llu has more than %d digits: over the %zu-byte limit",
				 offset, LENGTH_LINE_MAX_BYTES - 1, REPLAY_BODY_MAX_BYTES);
			fail_record(replay, LIC_MALFORMED, what);
			return RECORD_BAD;
		}
		if (!at_end)
			return RECORD_NEEDS_MORE_BYTES;
		snprintf(what, sizeof what, "the file ends inside the length line at byte %llu (truncated)",
			 offset);
		fail_record(replay, LIC_MALFORMED, what);
		return RECORD_BAD;
	}
	if (digits == 0) {
		snprintf(what, sizeof what, "the length line at byte %llu is empty", offset);
		fail_record(replay, LIC_MALFORMED, what);
		return RECORD_BAD;
	}
	if (digits > 1 && start[0] == '0') {
		quote_bytes(start, digits, quoted, sizeof quoted);
		snprintf(what, sizeof what, "the length '%s' at byte %llu has a leading zero", quoted,
			 offset);
		fail_record(replay, LIC_MALFORMED, what);
		return RECORD_BAD;
	}
	size_t length = 0;
	for (size_t i = 0; i < digits; i++)
		length = length * 10 + (size_t)(start[i] - '0'); /* at most 7 digits */
	if (length > REPLAY_BODY_MAX_BYTES) {
		snprintf(what, sizeof what, "the length %zu at byte %llu is over the %zu-byte limit", length,
			 offset, REPLAY_BODY_MAX_BYTES);
		fail_record(replay, LIC_MALFORMED, what);
		return RECORD_BAD;
	}
	size_t needed = digits + 1 + length + 1;
	if (available < needed) {
		if (!at_end)
			return RECORD_NEEDS_MORE_BYTES;
		size_t body_present = available - digits - 1;
		if (body_present < length)
			snprintf(what, sizeof what,
				 "the file ends after %zu of the %zu body bytes (truncated)", body_present,
				 length);
		else
			snprintf(what, sizeof what,
				 "the file ends right after the %zu-byte body, without the '\\n' that ends a "
				 "record",
				 length);
		fail_record(replay, LIC_MALFORMED, what);
		return RECORD_BAD;
	}
	unsigned char after = (unsigned char)start[needed - 1];
	if (after != '\n') {
		snprintf(
		    what, sizeof what,
		    "the %zu-byte body is followed by byte 0x%02x, not '\\n' (a wrong length, or a missing "
		    "'\\n')",
		    length, after);
		fail_record(replay, LIC_MALFORMED, what);
		return RECORD_BAD;
	}
	*body = start + digits + 1;
	*body_length = length;
	*record_length = needed;
	return RECORD_COMPLETE;
}

/* Every byte of this pass has been appended to pending. */
static bool pass_fully_read(const struct replay *replay)
{
	return replay->end_of_file_seen && replay->next_append_offset >= replay->end_of_file_offset;
}

/* Submits complete records from pending, in order, until one is missing
 * bytes, the in-flight bound is reached, the engine is full, or a record is
 * bad. */
static void submit_records(struct replay *replay)
{
	bool at_end = pass_fully_read(replay);
	while (replay->status == LIC_OK && !replay->held &&
	       bodies_in_flight(replay) < replay->max_in_flight &&
	       replay->pending_start < replay->pending_end) {
		const char *body = NULL;
		size_t body_length = 0, record_length = 0;
		if (check_record(replay, at_end, &body, &body_length, &record_length) != RECORD_COMPLETE)
			return;
		lic_error refusal = {0};
		lic_status status = lic_engine_submit_acquire(replay->options->engine, body, body_length,
							      on_answer, replay, &refusal);
		if (status == LIC_OVERLOADED) {
			replay->held = true;
			replay->report->overloaded_retries++;
			return;
		}
		if (status != LIC_OK) {
			char what[sizeof refusal.message + 64];
			snprintf(what, sizeof what, "the engine refused it with %s: %s",
				 lic_status_code(status), refusal.message);
			fail_record(replay, status, what);
			return;
		}
		replay->report->requests_submitted++;
		uint64_t now_in_flight = bodies_in_flight(replay);
		if (now_in_flight > replay->report->max_in_flight_seen)
			replay->report->max_in_flight_seen = now_in_flight;
		replay->pending_start += record_length;
		replay->pending_file_offset += record_length;
		replay->record_number++;
	}
}

/* ---- reading the file ---- */

/* Appends read chunks to pending in file order, while there is room. */
static void append_read_chunks(struct replay *replay)
{
	for (;;) {
		struct chunk *next = NULL;
		for (size_t i = 0; i < REPLAY_READS_IN_FLIGHT; i++) {
			struct chunk *chunk = &replay->chunks[i];
			if (chunk->state != CHUNK_READ)
				continue;
			if (replay->end_of_file_seen && chunk->file_offset >= replay->end_of_file_offset)
				chunk->state = CHUNK_FREE; /* read past the end: nothing in it */
			else if (chunk->file_offset == replay->next_append_offset)
				next = chunk;
		}
		if (next == NULL)
			return;
		if (replay->pending_end + next->length > replay->pending_capacity) {
			size_t kept = replay->pending_end - replay->pending_start;
			if (kept + next->length > replay->pending_capacity)
				return; /* full of complete records: wait until some are submitted */
			memmove(replay->pending, replay->pending + replay->pending_start, kept);
			replay->pending_start = 0;
			replay->pending_end = kept;
		}
		memcpy(replay->pending + replay->pending_end, next->data, next->length);
		replay->pending_end += next->length;
		replay->next_append_offset += next->length;
		next->state = CHUNK_FREE;
	}
}

static struct io_uring_sqe *get_sqe(struct replay *replay)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&replay->ring);
	if (sqe == NULL) {
		/* RING_ENTRIES exceeds what is ever in the ring: make room anyway. */
		io_uring_submit(&replay->ring);
		sqe = io_uring_get_sqe(&replay->ring);
	}
	return sqe;
}

static void issue_reads(struct replay *replay)
{
	if (replay->status != LIC_OK || replay->all_submitted || replay->end_of_file_seen)
		return;
	for (size_t i = 0; i < REPLAY_READS_IN_FLIGHT; i++) {
		struct chunk *chunk = &replay->chunks[i];
		if (chunk->state != CHUNK_FREE)
			continue;
		struct io_uring_sqe *sqe = get_sqe(replay);
		if (sqe == NULL)
			return;
		io_uring_prep_read(sqe, replay->file, chunk->data, REPLAY_CHUNK_BYTES,
				   replay->next_read_offset);
		io_uring_sqe_set_data64(sqe, i);
		chunk->file_offset = replay->next_read_offset;
		chunk->length = 0;
		chunk->state = CHUNK_READING;
		replay->next_read_offset += REPLAY_CHUNK_BYTES;
		replay->reads_outstanding++;
	}
}

static void on_read_done(struct replay *replay, size_t index, int result)
{
	struct chunk *chunk = &replay->chunks[index];
	replay->reads_outstanding--;
	if (result < 0) {
		chunk->state = CHUNK_FREE;
		fail(replay, LIC_IO, "cannot read %s at byte %llu: %s", replay->options->path,
		     (unsigned long long)chunk->file_offset, strerror(-result));
		return;
	}
	chunk->length = (size_t)result;
	chunk->state = CHUNK_READ;
	if ((size_t)result < REPLAY_CHUNK_BYTES) {
		uint64_t end = chunk->file_offset + (uint64_t)result;
		if (!replay->end_of_file_seen || end < replay->end_of_file_offset)
			replay->end_of_file_offset = end;
		replay->end_of_file_seen = true;
	}
}

/* After the last record of a pass: the next pass, or the end. A pass ends
 * once every byte was appended and submitted and no read is out. */
static void finish_pass(struct replay *replay)
{
	if (replay->status != LIC_OK || replay->all_submitted || !pass_fully_read(replay) ||
	    replay->reads_outstanding > 0 || replay->pending_start < replay->pending_end)
		return;
	uint64_t records = replay->record_number - 1;
	if (replay->pass == 1) {
		if (records == 0) {
			fail(replay, LIC_MALFORMED,
			     "replay file %s is empty: it must hold at least one record "
			     "(a length line, the body, '\\n')",
			     replay->options->path);
			return;
		}
		replay->report->records_per_pass = records;
	}
	unsigned repeat = replay->options->repeat ? replay->options->repeat : 1;
	if (replay->pass >= repeat) {
		replay->all_submitted = true;
		return;
	}
	replay->pass++;
	replay->next_read_offset = 0;
	replay->next_append_offset = 0;
	replay->end_of_file_seen = false;
	replay->end_of_file_offset = 0;
	replay->pending_start = replay->pending_end = 0;
	replay->pending_file_offset = 0;
	replay->record_number = 1;
}

/* ---- the ring ---- */

static void arm_wakeup(struct replay *replay)
{
	if (replay->wakeup_armed)
		return;
	struct io_uring_sqe *sqe = get_sqe(replay);
	if (sqe == NULL)
		return;
	io_uring_prep_read(sqe, replay->wakeup, &replay->wakeup_value, sizeof replay->wakeup_value, 0);
	io_uring_sqe_set_data64(sqe, WAKEUP_READ_TAG);
	replay->wakeup_armed = true;
}

static void arm_overloaded_timeout(struct replay *replay)
{
	if (replay->timeout_armed)
		return;
	struct io_uring_sqe *sqe = get_sqe(replay);
	if (sqe == NULL)
		return;
	replay->retry_after = (struct __kernel_timespec){.tv_sec = 0, .tv_nsec = OVERLOADED_RETRY_NS};
	io_uring_prep_timeout(sqe, &replay->retry_after, 0, 0);
	io_uring_sqe_set_data64(sqe, OVERLOADED_TIMEOUT_TAG);
	replay->timeout_armed = true;
}

static void handle_completions(struct replay *replay)
{
	struct io_uring_cqe *cqe = NULL;
	unsigned head = 0, seen = 0;
	io_uring_for_each_cqe(&replay->ring, head, cqe)
	{
		uint64_t tag = io_uring_cqe_get_data64(cqe);
		seen++;
		if (tag < REPLAY_READS_IN_FLIGHT) {
			on_read_done(replay, (size_t)tag, cqe->res);
		} else if (tag == WAKEUP_READ_TAG) {
			replay->wakeup_armed = false;
			replay->held = false; /* an answer came back: retry a held record */
			if (cqe->res < 0 && cqe->res != -EINTR && cqe->res != -EAGAIN)
				fail(replay, LIC_INTERNAL, "cannot read the replay eventfd: %s",
				     strerror(-cqe->res));
		} else if (tag == OVERLOADED_TIMEOUT_TAG) {
			replay->timeout_armed = false;
			replay->held = false;
		}
	}
	io_uring_cq_advance(&replay->ring, seen);
}

/* Waits for one completion at least (submitting what is queued) and
 * handles every completion there is. false when the ring failed for good. */
static bool wait_and_handle(struct replay *replay)
{
	int result = io_uring_submit_and_wait(&replay->ring, 1);
	if (result < 0 && result != -EINTR && result != -EAGAIN && result != -EBUSY) {
		fail(replay, LIC_INTERNAL, "io_uring_submit_and_wait failed: %s", strerror(-result));
		replay->ring_broken = true;
		return false;
	}
	handle_completions(replay);
	return true;
}

/* ---- setup and teardown ---- */

static lic_status open_record_file(struct replay *replay, lic_error *error)
{
	const char *path = replay->options->path;
	struct stat info;
	replay->file = open(path, O_RDONLY | O_CLOEXEC);
	if (replay->file < 0)
		return lic_error_set(error, LIC_IO, "cannot open the replay file %s: %s", path,
				     strerror(errno));
	if (fstat(replay->file, &info) != 0)
		return lic_error_set(error, LIC_IO, "cannot stat the replay file %s: %s", path,
				     strerror(errno));
	if (!S_ISREG(info.st_mode))
		return lic_error_set(error, LIC_IO,
				     "the replay file %s is not a regular file (it is read %s)", path,
				     "by offset, and again for every --repeat pass");
	return LIC_OK;
}

static lic_status setup_ring(struct replay *replay, lic_error *error)
{
	struct io_uring_params params = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
	int result = io_uring_queue_init_params(RING_ENTRIES, &replay->ring, &params);
	if (result == -EINVAL) { /* a kernel older than 6.1 */
		memset(&params, 0, sizeof params);
		result = io_uring_queue_init_params(RING_ENTRIES, &replay->ring, &params);
	}
	if (result < 0)
		return lic_error_set(error, LIC_INTERNAL, "cannot set up io_uring: %s", strerror(-result));
	replay->ring_ready = true;
	return LIC_OK;
}

static lic_status allocate_buffers(struct replay *replay, lic_error *error)
{
	replay->pending_capacity = RECORD_MAX_BYTES + REPLAY_CHUNK_BYTES;
	replay->pending = malloc(replay->pending_capacity);
	if (replay->pending == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory for the replay buffers");
	for (size_t i = 0; i < REPLAY_READS_IN_FLIGHT; i++) {
		replay->chunks[i].data = malloc(REPLAY_CHUNK_BYTES);
		if (replay->chunks[i].data == NULL)
			return lic_error_set(error, LIC_INTERNAL, "out of memory for the replay buffers");
	}
	return LIC_OK;
}

/* Waits, without the ring, until every submitted body has been answered:
 * on_answer writes the eventfd once per answer. The ring goes first, so that
 * its eventfd read cannot take a write this wait needs. */
static void wait_for_answers_without_ring(struct replay *replay)
{
	uint64_t value = 0;
	io_uring_queue_exit(&replay->ring);
	replay->ring_ready = false;
	while (answers_received(replay) < replay->report->requests_submitted)
		if (read(replay->wakeup, &value, sizeof value) < 0 && errno != EINTR && errno != EAGAIN)
			break;
}

/* Takes back what is still in the ring: the eventfd read (completed by a
 * write of our own) and the timeout (at most 1 ms away). */
static void drain_ring(struct replay *replay)
{
	if (replay->wakeup_armed) {
		uint64_t one = 1;
		while (write(replay->wakeup, &one, sizeof one) < 0 && errno == EINTR)
			;
	}
	while (!replay->ring_broken &&
	       (replay->wakeup_armed || replay->timeout_armed || replay->reads_outstanding > 0))
		wait_and_handle(replay);
}

static double seconds_since(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* ---- the loop ---- */

static void run_loop(struct replay *replay)
{
	const struct replay_options *options = replay->options;
	struct timespec started, last_progress;
	clock_gettime(CLOCK_MONOTONIC, &started);
	last_progress = started;
	for (;;) {
		append_read_chunks(replay);
		submit_records(replay);
		append_read_chunks(replay); /* submitting may have made room */
		finish_pass(replay);
		issue_reads(replay);
		bool stopping = replay->status != LIC_OK || replay->all_submitted;
		uint64_t waiting_answers = bodies_in_flight(replay);
		if (stopping && waiting_answers == 0 && replay->reads_outstanding == 0)
			break;
		arm_wakeup(replay);
		if (replay->held && waiting_answers == 0)
			arm_overloaded_timeout(replay);
		if (waiting_answers == 0 && replay->reads_outstanding == 0 && !replay->timeout_armed) {
			/* Nothing can complete but the eventfd read, which nobody will write. */
			fail(replay, LIC_INTERNAL, "the replay loop stalled at record %llu (a bug)",
			     (unsigned long long)replay->record_number);
			break;
		}
		if (!wait_and_handle(replay))
			break;
		if (options->progress != NULL && seconds_since(&last_progress) >= 1.0) {
			clock_gettime(CLOCK_MONOTONIC, &last_progress);
			options->progress(options->progress_context, answers_received(replay),
					  seconds_since(&started));
		}
	}
	replay->report->seconds = seconds_since(&started);
}

lic_status replay_run(const struct replay_options *options, struct replay_report *report, lic_error *error)
{
	lic_status status = LIC_OK;
	struct replay *replay = NULL;
	lic_engine_stats before = {0};
	bool lock_ready = false;
	if (report != NULL)
		memset(report, 0, sizeof *report);
	if (options == NULL || options->engine == NULL || options->path == NULL || report == NULL)
		LIC_FAIL(error, LIC_USAGE, "replay needs a file, an engine and a report");
	replay = calloc(1, sizeof *replay);
	if (replay == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	replay->options = options;
	replay->report = report;
	replay->error = error;
	replay->file = -1;
	replay->wakeup = -1;
	replay->pass = 1;
	replay->record_number = 1;
	replay->max_in_flight = options->max_in_flight ? options->max_in_flight : REPLAY_DEFAULT_IN_FLIGHT;
	atomic_init(&replay->answered, 0);
	for (size_t i = 0; i < REPLAY_HTTP_STATUS_LIMIT; i++)
		atomic_init(&replay->responses_by_status[i], 0);
	LIC_TRY(open_record_file(replay, error));
	LIC_TRY(allocate_buffers(replay, error));
	replay->wakeup = eventfd(0, EFD_CLOEXEC);
	if (replay->wakeup < 0)
		LIC_FAIL(error, LIC_INTERNAL, "cannot make an eventfd: %s", strerror(errno));
	if (pthread_mutex_init(&replay->answer_lock, NULL) != 0)
		LIC_FAIL(error, LIC_INTERNAL, "cannot make a mutex");
	lock_ready = true;
	LIC_TRY(setup_ring(replay, error));

	lic_engine_get_stats(options->engine, &before);
	run_loop(replay);
	status = replay->status;
	drain_ring(replay);
	if (replay->ring_broken)
		wait_for_answers_without_ring(replay);
	/* Every body is answered; once this lock has been held, no worker is
	 * inside on_answer any more (see the top of the file). */
	pthread_mutex_lock(&replay->answer_lock);
	pthread_mutex_unlock(&replay->answer_lock);
	report->requests_answered = answers_received(replay);
	for (size_t i = 0; i < REPLAY_HTTP_STATUS_LIMIT; i++)
		report->responses_by_status[i] = atomic_load(&replay->responses_by_status[i]);
	lic_engine_get_stats(options->engine, &report->engine);
	lic_engine_stats_since(&report->engine, &before);
out:
	if (replay != NULL) {
		if (replay->ring_ready)
			io_uring_queue_exit(&replay->ring);
		if (lock_ready)
			pthread_mutex_destroy(&replay->answer_lock);
		if (replay->wakeup >= 0)
			close(replay->wakeup);
		if (replay->file >= 0)
			close(replay->file);
		/* A broken ring may still hold reads into the chunks: those are
		 * left to the process's end rather than reused under the kernel. */
		for (size_t i = 0; i < REPLAY_READS_IN_FLIGHT && !replay->ring_broken; i++)
			free(replay->chunks[i].data);
		free(replay->pending);
		free(replay);
	}
	return status;
}
