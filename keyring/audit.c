/*
 * audit.c: the hash-chained audit log of a store (DESIGN.md §4, audit.h).
 *
 * audit.log only ever grows: one JSON object per line, keys in a fixed order,
 * at most AUDIT_LINE_MAX bytes with its newline:
 *   {"seq":N,"time":"…Z","actor":"…","action":"…"[,"tenant":"…"][,"version":N]
 *    [,"reason":"…"][,"detail":"…"],"prev":"<SHA-256 hex of the line before>"}
 * An edited, removed or reordered line breaks the chain of "prev" hashes;
 * audit.head ("seq N sha256 <hex>") names the newest line, so that lines cut
 * from the end are found too.
 *
 * Crash safety: a line goes out in one write() and is fsynced before
 * audit.head is replaced atomically. A kill at any point leaves either a torn
 * last line without its newline (not counted by verify, cut off by the next
 * append) or one line more than audit.head names (accepted by verify, and the
 * next append moves the head on). The very first append writes audit.head
 * "seq 0" before the first line, so a log with lines and no head is never the
 * work of a crash, and verify reports it.
 *
 * Append does not paper over a fault: when the end of the log contradicts
 * audit.head it refuses, rather than write a new head that would hide the
 * loss. Verify takes no lock: it reads the head before the log, so a writer
 * appending meanwhile only adds lines after the head, which is accepted.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "audit.h"
#include "error.h"
#include "file_io.h"

#define AUDIT_LOG_NAME "audit.log"
#define AUDIT_HEAD_NAME "audit.head"

enum {
	AUDIT_LINE_MAX = 8192,       /* bytes of one line, its newline included */
	AUDIT_TAIL_READ = 64 * 1024, /* bytes append reads from the end of the log */
	AUDIT_HEAD_MAX = 128,        /* bytes of audit.head */
	SHA256_HEX_LENGTH = 64,
};

/* The bytes around an event's body: {"seq":<20 digits>, … ,"prev":"<64 hex>"}\n */
#define AUDIT_FRAME_MAX                                                                                      \
	(sizeof "{\"seq\":18446744073709551615," - 1 + sizeof ",\"prev\":\"\"}\n" - 1 + SHA256_HEX_LENGTH)

/* 9999-12-31T23:59:59Z: the last second a four-digit year can show. */
#define AUDIT_TIME_MAX INT64_C(253402300799)

/* ---- Hashes ------------------------------------------------------------ */

static lic_status sha256_hex(const void *data, size_t length, char out[SHA256_HEX_LENGTH + 1],
			     lic_error *error)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_length = 0;

	if (EVP_Digest(data, length, digest, &digest_length, EVP_sha256(), NULL) != 1 ||
	    digest_length * 2 != SHA256_HEX_LENGTH)
		return lic_error_set(error, LIC_INTERNAL, "SHA-256 of an audit line failed");
	for (unsigned int i = 0; i < digest_length; i++) {
		out[2 * i] = digits[digest[i] >> 4];
		out[2 * i + 1] = digits[digest[i] & 0x0f];
	}
	out[SHA256_HEX_LENGTH] = '\0';
	return LIC_OK;
}

/* The "prev" of line 1, and the hash audit.head records for line 0. */
static void genesis_hash(char out[SHA256_HEX_LENGTH + 1])
{
	memset(out, '0', SHA256_HEX_LENGTH);
	out[SHA256_HEX_LENGTH] = '\0';
}

/* ---- Output: a builder that cannot overflow ------------------------------ */

struct text_builder {
	char *data;
	size_t capacity;
	size_t length;
	bool overflow; /* set once something did not fit; later appends do nothing */
};

static void builder_append(struct text_builder *builder, const void *bytes, size_t length)
{
	if (builder->overflow || length > builder->capacity - builder->length) {
		builder->overflow = true;
		return;
	}
	memcpy(builder->data + builder->length, bytes, length);
	builder->length += length;
}

static void builder_append_text(struct text_builder *builder, const char *text)
{
	builder_append(builder, text, strlen(text));
}

static void builder_append_unsigned(struct text_builder *builder, uint64_t value)
{
	char digits[24];
	int length = snprintf(digits, sizeof digits, "%" PRIu64, value);
	builder_append(builder, digits, (size_t)length);
}

/* A JSON string: quote and backslash escaped, \n \r \t by name, every other
 * control character (and DEL) as \u00XX; UTF-8 passes through. */
static void builder_append_json_string(struct text_builder *builder, const char *text)
{
	builder_append(builder, "\"", 1);
	for (const unsigned char *cursor = (const unsigned char *)text; *cursor != '\0'; cursor++) {
		char escape[8];
		switch (*cursor) {
		case '"':
			builder_append_text(builder, "\\\"");
			break;
		case '\\':
			builder_append_text(builder, "\\\\");
			break;
		case '\n':
			builder_append_text(builder, "\\n");
			break;
		case '\r':
			builder_append_text(builder, "\\r");
			break;
		case '\t':
			builder_append_text(builder, "\\t");
			break;
		default:
			if (*cursor < 0x20 || *cursor == 0x7f) {
				snprintf(escape, sizeof escape, "\\u%04x", (unsigned)*cursor);
				builder_append_text(builder, escape);
			} else {
				builder_append(builder, cursor, 1);
			}
		}
	}
	builder_append(builder, "\"", 1);
}

/* ---- Input: a cursor that cannot read past its end ----------------------- */

static bool utf8_is_valid(const unsigned char *text, size_t length)
{
	size_t at = 0;
	while (at < length) {
		unsigned char lead = text[at];
		size_t continuation;
		uint32_t code_point;
		uint32_t smallest;
		if (lead < 0x80) {
			at++;
			continue;
		}
		if ((lead & 0xe0) == 0xc0) {
			continuation = 1;
			code_point = lead & 0x1f;
			smallest = 0x80;
		} else if ((lead & 0xf0) == 0xe0) {
			continuation = 2;
			code_point = lead & 0x0f;
			smallest = 0x800;
		} else if ((lead & 0xf8) == 0xf0) {
			continuation = 3;
			code_point = lead & 0x07;
			smallest = 0x10000;
		} else {
			return false;
		}
		if (length - at - 1 < continuation)
			return false;
		for (size_t k = 1; k <= continuation; k++) {
			if ((text[at + k] & 0xc0) != 0x80)
				return false;
			code_point = (code_point << 6) | (text[at + k] & 0x3f);
		}
		/* No overlong forms, no surrogates, nothing past U+10FFFF. */
		if (code_point < smallest || code_point > 0x10ffff ||
		    (code_point >= 0xd800 && code_point <= 0xdfff))
			return false;
		at += continuation + 1;
	}
	return true;
}

struct cursor {
	const char *at;
	const char *end;
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_lower_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f');
}

static bool is_hex(char c)
{
	return is_lower_hex(c) || (c >= 'A' && c <= 'F');
}

/* Consumes `literal` if the input starts with it. */
static bool cursor_take(struct cursor *cursor, const char *literal)
{
	size_t length = strlen(literal);
	if ((size_t)(cursor->end - cursor->at) < length || memcmp(cursor->at, literal, length) != 0)
		return false;
	cursor->at += length;
	return true;
}

/* A decimal number without sign or leading zeros, at most `max`. */
static bool cursor_unsigned(struct cursor *cursor, uint64_t max, uint64_t *out)
{
	uint64_t value = 0;
	if (cursor->at == cursor->end || !is_digit(*cursor->at))
		return false;
	if (*cursor->at == '0') {
		cursor->at++;
		*out = 0;
		return cursor->at == cursor->end || !is_digit(*cursor->at);
	}
	while (cursor->at < cursor->end && is_digit(*cursor->at)) {
		uint64_t digit = (uint64_t)(*cursor->at - '0');
		if (value > (max - digit) / 10)
			return false;
		value = value * 10 + digit;
		cursor->at++;
	}
	*out = value;
	return true;
}

/* A JSON string (the input is known to be UTF-8); *length is its raw length. */
static bool cursor_string(struct cursor *cursor, size_t *length)
{
	const char *start;
	if (!cursor_take(cursor, "\""))
		return false;
	start = cursor->at;
	while (cursor->at < cursor->end) {
		unsigned char c = (unsigned char)*cursor->at++;
		if (c == '"') {
			*length = (size_t)(cursor->at - 1 - start);
			return true;
		}
		if (c < 0x20)
			return false;
		if (c != '\\')
			continue;
		if (cursor->at == cursor->end)
			return false;
		c = (unsigned char)*cursor->at++;
		if (c == 'u') {
			for (int k = 0; k < 4; k++) {
				if (cursor->at == cursor->end || !is_hex(*cursor->at))
					return false;
				cursor->at++;
			}
		} else if (c == '\0' || strchr("\"\\/bfnrt", c) == NULL) {
			return false;
		}
	}
	return false;
}

/* YYYY-MM-DDThh:mm:ssZ (the shape; the writer makes the values). */
static bool cursor_time(struct cursor *cursor)
{
	static const char shape[] = "DDDD-DD-DDTDD:DD:DDZ";
	size_t length = sizeof shape - 1;
	if ((size_t)(cursor->end - cursor->at) < length)
		return false;
	for (size_t i = 0; i < length; i++) {
		if (shape[i] == 'D' ? !is_digit(cursor->at[i]) : cursor->at[i] != shape[i])
			return false;
	}
	cursor->at += length;
	return true;
}

/* 64 lowercase hex digits, copied into out (NUL-terminated). */
static bool cursor_hash(struct cursor *cursor, char out[SHA256_HEX_LENGTH + 1])
{
	if (cursor->end - cursor->at < SHA256_HEX_LENGTH)
		return false;
	for (int i = 0; i < SHA256_HEX_LENGTH; i++) {
		if (!is_lower_hex(cursor->at[i]))
			return false;
	}
	memcpy(out, cursor->at, SHA256_HEX_LENGTH);
	out[SHA256_HEX_LENGTH] = '\0';
	cursor->at += SHA256_HEX_LENGTH;
	return true;
}

/* What the chain needs from one line. */
struct audit_line {
	uint64_t sequence;
	char prev[SHA256_HEX_LENGTH + 1];
};

/* Checks one line (without its newline) against the format at the top of
 * this file. Returns NULL when it is well-formed, else what is wrong. */
static const char *parse_line(const char *text, size_t length, struct audit_line *out)
{
	struct cursor cursor = {text, text + length};
	size_t string_length = 0;
	uint64_t number = 0;

	if (!utf8_is_valid((const unsigned char *)text, length))
		return "not valid UTF-8";
	if (!cursor_take(&cursor, "{\"seq\":") || !cursor_unsigned(&cursor, UINT64_MAX, &out->sequence) ||
	    out->sequence == 0)
		return "does not start with a valid \"seq\"";
	if (!cursor_take(&cursor, ",\"time\":\"") || !cursor_time(&cursor) || !cursor_take(&cursor, "\""))
		return "no valid \"time\" after \"seq\"";
	if (!cursor_take(&cursor, ",\"actor\":") || !cursor_string(&cursor, &string_length) ||
	    string_length == 0)
		return "no valid \"actor\" after \"time\"";
	if (!cursor_take(&cursor, ",\"action\":") || !cursor_string(&cursor, &string_length) ||
	    string_length == 0)
		return "no valid \"action\" after \"actor\"";
	if (cursor_take(&cursor, ",\"tenant\":") && !cursor_string(&cursor, &string_length))
		return "malformed \"tenant\"";
	if (cursor_take(&cursor, ",\"version\":") &&
	    (!cursor_unsigned(&cursor, UINT32_MAX, &number) || number == 0))
		return "malformed \"version\"";
	if (cursor_take(&cursor, ",\"reason\":") && !cursor_string(&cursor, &string_length))
		return "malformed \"reason\"";
	if (cursor_take(&cursor, ",\"detail\":") && !cursor_string(&cursor, &string_length))
		return "malformed \"detail\"";
	if (!cursor_take(&cursor, ",\"prev\":\""))
		return "an unknown or misplaced key where \"prev\" should be";
	if (!cursor_hash(&cursor, out->prev) || !cursor_take(&cursor, "\""))
		return "\"prev\" is not 64 lowercase hex digits";
	if (!cursor_take(&cursor, "}") || cursor.at != cursor.end)
		return "bytes after \"prev\" where the object should end";
	return NULL;
}

/* ---- audit.head ---------------------------------------------------------- */

struct audit_head {
	bool present;
	uint64_t sequence;
	char hash[SHA256_HEX_LENGTH + 1];
};

static lic_status read_head(const char *path, struct audit_head *head, lic_error *error)
{
	lic_status status = LIC_OK;
	lic_error read_error = {0};
	char *text = NULL;
	size_t length = 0;
	struct cursor cursor;
	char genesis[SHA256_HEX_LENGTH + 1];

	memset(head, 0, sizeof *head);
	/* Absent means this open failed with ENOENT; file_read_all's other IO
	 * refusals (not a regular file) leave errno as it was. */
	errno = 0;
	status = file_read_all(path, AUDIT_HEAD_MAX, &text, &length, &read_error);
	if (status == LIC_IO && errno == ENOENT) {
		status = LIC_OK;
		goto out;
	}
	if (status == LIC_TOO_LARGE)
		LIC_FAIL(error, LIC_MALFORMED, "audit.head is malformed: over %d bytes", AUDIT_HEAD_MAX);
	if (status != LIC_OK)
		LIC_FAIL(error, status, "%s", read_error.message);
	cursor = (struct cursor){text, text + length};
	if (!cursor_take(&cursor, "seq ") || !cursor_unsigned(&cursor, UINT64_MAX, &head->sequence) ||
	    !cursor_take(&cursor, " sha256 ") || !cursor_hash(&cursor, head->hash) ||
	    !cursor_take(&cursor, "\n") || cursor.at != cursor.end)
		LIC_FAIL(error, LIC_MALFORMED, "audit.head is malformed: expected \"seq N sha256 <64 hex>\"");
	genesis_hash(genesis);
	if (head->sequence == 0 && strcmp(head->hash, genesis) != 0)
		LIC_FAIL(error, LIC_MALFORMED,
			 "audit.head is malformed: line 0 must have the hash of 64 zeros");
	head->present = true;
out:
	free(text);
	return status;
}

static lic_status write_head(const char *path, uint64_t sequence, const char *hash, lic_error *error)
{
	char text[AUDIT_HEAD_MAX];
	int length = snprintf(text, sizeof text, "seq %" PRIu64 " sha256 %s\n", sequence, hash);
	return file_write_atomic(path, text, (size_t)length, 0600, 0, error);
}

/* ---- Append -------------------------------------------------------------- */

static lic_status check_event_field(const char *name, const char *value, bool required, lic_error *error)
{
	if (value == NULL) {
		if (required)
			return lic_error_set(error, LIC_USAGE, "audit event without %s", name);
		return LIC_OK;
	}
	if (required && value[0] == '\0')
		return lic_error_set(error, LIC_USAGE, "audit event with an empty %s", name);
	if (!utf8_is_valid((const unsigned char *)value, strlen(value)))
		return lic_error_set(error, LIC_MALFORMED, "audit event %s is not valid UTF-8", name);
	return LIC_OK;
}

/* Everything of the line between {"seq":N, and ,"prev":…: it does not depend
 * on the log, so an event that cannot be written is refused before any file
 * is touched. */
static lic_status build_body(const struct audit_event *event, int64_t now, struct text_builder *body,
			     lic_error *error)
{
	char time_text[32];
	time_t seconds = (time_t)now;
	struct tm parts;

	if (now < 0 || now > AUDIT_TIME_MAX)
		return lic_error_set(error, LIC_MALFORMED,
				     "audit time %" PRId64 " is outside the years 1970 to 9999", now);
	if (gmtime_r(&seconds, &parts) == NULL ||
	    strftime(time_text, sizeof time_text, "%Y-%m-%dT%H:%M:%SZ", &parts) != 20)
		return lic_error_set(error, LIC_INTERNAL, "cannot format audit time %" PRId64, now);

	builder_append_text(body, "\"time\":\"");
	builder_append_text(body, time_text);
	builder_append_text(body, "\",\"actor\":");
	builder_append_json_string(body, event->actor);
	builder_append_text(body, ",\"action\":");
	builder_append_json_string(body, event->action);
	if (event->tenant != NULL) {
		builder_append_text(body, ",\"tenant\":");
		builder_append_json_string(body, event->tenant);
	}
	if (event->version != 0) {
		builder_append_text(body, ",\"version\":");
		builder_append_unsigned(body, event->version);
	}
	if (event->reason != NULL) {
		builder_append_text(body, ",\"reason\":");
		builder_append_json_string(body, event->reason);
	}
	if (event->detail != NULL) {
		builder_append_text(body, ",\"detail\":");
		builder_append_json_string(body, event->detail);
	}
	if (body->overflow)
		return lic_error_set(error, LIC_TOO_LARGE,
				     "audit event is too large: a line holds at most %d bytes",
				     AUDIT_LINE_MAX);
	return LIC_OK;
}

static lic_status check_event(const struct audit_event *event, int64_t now, struct text_builder *body,
			      lic_error *error)
{
	lic_status status = LIC_OK;
	LIC_TRY(check_event_field("actor", event->actor, true, error));
	LIC_TRY(check_event_field("action", event->action, true, error));
	LIC_TRY(check_event_field("tenant", event->tenant, false, error));
	LIC_TRY(check_event_field("reason", event->reason, false, error));
	LIC_TRY(check_event_field("detail", event->detail, false, error));
	LIC_TRY(build_body(event, now, body, error));
out:
	return status;
}

lic_status audit_check_event(const struct audit_event *event, int64_t now, lic_error *error)
{
	char body_data[AUDIT_LINE_MAX - AUDIT_FRAME_MAX];
	struct text_builder body = {body_data, sizeof body_data, 0, false};
	return check_event(event, now, &body, error);
}

/* Opens audit.log for appending, creating it 0600 (whatever the umask) and
 * making its directory entry durable when it did not exist. */
static lic_status open_log(const char *path, const char *store_dir, int *out, lic_error *error)
{
	lic_status status = LIC_OK;
	const int flags = O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW;
	int fd = open(path, flags | O_CREAT | O_EXCL, 0600);

	if (fd >= 0) {
		if (fchmod(fd, 0600) != 0)
			LIC_FAIL(error, LIC_IO, "cannot set mode of %s: %s", path, strerror(errno));
		LIC_TRY(file_sync_directory(store_dir, error));
	} else if (errno == EEXIST) {
		fd = open(path, flags);
	}
	if (fd < 0)
		LIC_FAIL(error, LIC_IO, "cannot open %s: %s", path, strerror(errno));
	*out = fd;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	return status;
}

static lic_status read_at(int fd, char *buffer, size_t length, off_t offset, lic_error *error)
{
	size_t done = 0;
	while (done < length) {
		ssize_t got = pread(fd, buffer + done, length - done, offset + (off_t)done);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return lic_error_set(error, LIC_IO, "cannot read audit.log: %s", strerror(errno));
		if (got == 0)
			return lic_error_set(error, LIC_IO,
					     "cannot read audit.log: it shrank while being read");
		done += (size_t)got;
	}
	return LIC_OK;
}

/* Index of the last '\n' in data[0, length), or -1. */
static ptrdiff_t last_newline(const char *data, size_t length)
{
	for (size_t i = length; i > 0; i--) {
		if (data[i - 1] == '\n')
			return (ptrdiff_t)(i - 1);
	}
	return -1;
}

/* Reads only the end of the log: cuts a torn last line off (when repair), then reports the
 * sequence number and hash of the last line (0 and 64 zeros when there is
 * none) and the log's size. */
static lic_status read_log_end(int fd, bool repair, struct audit_line *last,
			       char last_hash[SHA256_HEX_LENGTH + 1], off_t *size, lic_error *error)
{
	lic_status status = LIC_OK;
	char *tail = NULL;
	struct stat info;
	off_t tail_start;
	size_t tail_length;
	ptrdiff_t newline;
	size_t line_start;
	size_t line_length;
	const char *fault;

	memset(last, 0, sizeof *last);
	genesis_hash(last_hash);
	if (fstat(fd, &info) != 0)
		LIC_FAIL(error, LIC_IO, "cannot stat audit.log: %s", strerror(errno));
	if (!S_ISREG(info.st_mode))
		LIC_FAIL(error, LIC_IO, "audit.log is not a regular file");
	*size = info.st_size;
	if (info.st_size == 0)
		goto out;
	tail_start = info.st_size > AUDIT_TAIL_READ ? info.st_size - AUDIT_TAIL_READ : 0;
	tail_length = (size_t)(info.st_size - tail_start);
	tail = malloc(tail_length);
	if (tail == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory reading audit.log");
	LIC_TRY(read_at(fd, tail, tail_length, tail_start, error));

	if (tail[tail_length - 1] != '\n') {
		/* A writer killed mid-append left part of one line: cut it off. More
		 * than one line's worth is not that, and is left for an operator. */
		newline = last_newline(tail, tail_length);
		size_t keep = newline < 0 ? 0 : (size_t)newline + 1;
		if (tail_length - keep >= AUDIT_LINE_MAX)
			LIC_FAIL(error, LIC_MALFORMED,
				 "audit.log ends with %zu or more bytes without a newline: not a torn line, "
				 "refusing to cut it",
				 tail_length - keep);
		if (repair && ftruncate(fd, tail_start + (off_t)keep) != 0)
			LIC_FAIL(error, LIC_IO, "cannot cut the torn last line of audit.log: %s",
				 strerror(errno));
		tail_length = keep;
		*size = tail_start + (off_t)keep;
		if (tail_length == 0)
			goto out;
	}

	newline = last_newline(tail, tail_length - 1);
	if (newline < 0 && tail_start > 0)
		LIC_FAIL(error, LIC_MALFORMED, "audit.log's last line is too long: refusing to append");
	line_start = newline < 0 ? 0 : (size_t)newline + 1;
	line_length = tail_length - 1 - line_start;
	if (line_length >= AUDIT_LINE_MAX)
		LIC_FAIL(error, LIC_MALFORMED, "audit.log's last line is too long: refusing to append");
	fault = parse_line(tail + line_start, line_length, last);
	if (fault != NULL)
		LIC_FAIL(error, LIC_MALFORMED, "audit.log's last line is malformed (%s): refusing to append",
			 fault);
	LIC_TRY(sha256_hex(tail + line_start, line_length, last_hash, error));
out:
	free(tail);
	return status;
}

/* The end of the log must be where audit.head says, or one crash past it. */
static lic_status check_log_end_against_head(const struct audit_head *head, const struct audit_line *last,
					     const char *last_hash, lic_error *error)
{
	if (!head->present) {
		if (last->sequence > 0)
			return lic_error_set(
			    error, LIC_MALFORMED,
			    "audit.log has lines but audit.head is missing: refusing to append "
			    "(run licensor audit verify)");
		return LIC_OK;
	}
	if (last->sequence < head->sequence)
		return lic_error_set(error, LIC_MALFORMED,
				     "audit.log ends at line %" PRIu64 " but audit.head records line %" PRIu64
				     " (lines removed from the end): refusing to append",
				     last->sequence, head->sequence);
	if (last->sequence == head->sequence && strcmp(last_hash, head->hash) != 0)
		return lic_error_set(
		    error, LIC_MALFORMED,
		    "audit.log line %" PRIu64
		    " does not match the hash in audit.head (edited line): refusing to append",
		    last->sequence);
	if (last->sequence == head->sequence + 1 && strcmp(last->prev, head->hash) != 0)
		return lic_error_set(error, LIC_MALFORMED,
				     "audit.log line %" PRIu64 ": prev does not match line %" PRIu64
				     " as recorded in audit.head: refusing to append",
				     last->sequence, head->sequence);
	return LIC_OK;
}

lic_status audit_append(const char *store_dir, const struct audit_event *event, int64_t now, lic_error *error)
{
	lic_status status = LIC_OK;
	char log_path[PATH_MAX];
	char head_path[PATH_MAX];
	char body_data[AUDIT_LINE_MAX - AUDIT_FRAME_MAX];
	char line_data[AUDIT_LINE_MAX];
	struct text_builder body = {body_data, sizeof body_data, 0, false};
	struct text_builder line = {line_data, sizeof line_data, 0, false};
	struct audit_head head;
	struct audit_line last;
	char last_hash[SHA256_HEX_LENGTH + 1];
	char line_hash[SHA256_HEX_LENGTH + 1];
	off_t size_before = 0;
	ssize_t written;
	int fd = -1;

	if (store_dir == NULL || event == NULL)
		LIC_FAIL(error, LIC_USAGE, "audit_append needs a store directory and an event");
	LIC_TRY(check_event(event, now, &body, error));
	LIC_TRY(file_join(log_path, sizeof log_path, store_dir, AUDIT_LOG_NAME, error));
	LIC_TRY(file_join(head_path, sizeof head_path, store_dir, AUDIT_HEAD_NAME, error));

	LIC_TRY(read_head(head_path, &head, error));
	LIC_TRY(open_log(log_path, store_dir, &fd, error));
	LIC_TRY(read_log_end(fd, true, &last, last_hash, &size_before, error));
	LIC_TRY(check_log_end_against_head(&head, &last, last_hash, error));
	if (last.sequence == UINT64_MAX)
		LIC_FAIL(error, LIC_INTERNAL, "audit.log has run out of sequence numbers");
	if (!head.present) {
		/* First line: record "line 0" first, so that a log with lines and
		 * no head can only be the work of someone removing the head. */
		LIC_TRY(write_head(head_path, 0, last_hash, error));
	}

	builder_append_text(&line, "{\"seq\":");
	builder_append_unsigned(&line, last.sequence + 1);
	builder_append_text(&line, ",");
	builder_append(&line, body.data, body.length);
	builder_append_text(&line, ",\"prev\":\"");
	builder_append_text(&line, last_hash);
	builder_append_text(&line, "\"}\n");
	if (line.overflow)
		LIC_FAIL(error, LIC_INTERNAL, "audit line overflow (the body bound is wrong)");
	LIC_TRY(sha256_hex(line.data, line.length - 1, line_hash, error));

	/* One write(), so that a concurrent reader or a crash sees the line whole
	 * or torn at its end, never interleaved. */
	do {
		written = write(fd, line.data, line.length);
	} while (written < 0 && errno == EINTR);
	if (written != (ssize_t)line.length) {
		int saved = written < 0 ? errno : ENOSPC;
		if (ftruncate(fd, size_before) != 0) {
			/* The next append cuts the torn line off. */
		}
		LIC_FAIL(error, LIC_IO, "cannot append to %s: %s", log_path, strerror(saved));
	}
	if (fsync(fd) != 0) {
		int saved = errno;
		if (ftruncate(fd, size_before) != 0) {
			/* Left as is: verify accepts a line after the head. */
		}
		LIC_FAIL(error, LIC_IO, "cannot sync %s: %s", log_path, strerror(saved));
	}
	/* A crash here leaves the log one line past the head: verify accepts it,
	 * and the next append moves the head on. */
	LIC_TRY(write_head(head_path, last.sequence + 1, line_hash, error));
out:
	if (fd >= 0)
		close(fd);
	return status;
}

lic_status audit_check_appendable(const char *store_dir, lic_error *error)
{
	lic_status status = LIC_OK;
	char log_path[PATH_MAX];
	char head_path[PATH_MAX];
	struct audit_head head;
	struct audit_line last;
	char last_hash[SHA256_HEX_LENGTH + 1];
	off_t size = 0;
	int fd = -1;

	LIC_TRY(file_join(log_path, sizeof log_path, store_dir, AUDIT_LOG_NAME, error));
	LIC_TRY(file_join(head_path, sizeof head_path, store_dir, AUDIT_HEAD_NAME, error));
	LIC_TRY(read_head(head_path, &head, error));
	fd = open(log_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno != ENOENT)
		LIC_FAIL(error, LIC_IO, "cannot open %s: %s", log_path, strerror(errno));
	memset(&last, 0, sizeof last);
	genesis_hash(last_hash);
	if (fd >= 0)
		LIC_TRY(read_log_end(fd, false, &last, last_hash, &size, error));
	LIC_TRY(check_log_end_against_head(&head, &last, last_hash, error));
out:
	if (fd >= 0)
		close(fd);
	return status;
}

/* ---- Verify -------------------------------------------------------------- */

/* Reads one line, without its newline, into line[AUDIT_LINE_MAX]. *complete
 * is false at the end of the file: then *length bytes without a newline were
 * read (0, or a torn last line). */
static lic_status read_line(FILE *file, char *line, size_t *length, bool *complete, uint64_t number,
			    lic_error *error)
{
	size_t used = 0;
	int c;

	*complete = false;
	while ((c = getc_unlocked(file)) != EOF) {
		if (c == '\n') {
			*complete = true;
			break;
		}
		if (used == AUDIT_LINE_MAX - 1)
			return lic_error_set(error, LIC_MALFORMED,
					     "audit.log line %" PRIu64
					     " is too long (a line holds at most %d bytes)",
					     number, AUDIT_LINE_MAX);
		line[used++] = (char)c;
	}
	if (c == EOF && ferror(file))
		return lic_error_set(error, LIC_IO, "cannot read audit.log: %s", strerror(errno));
	*length = used;
	return LIC_OK;
}

lic_status audit_verify(const char *store_dir, struct audit_report *report, lic_error *error)
{
	lic_status status = LIC_OK;
	char log_path[PATH_MAX];
	char head_path[PATH_MAX];
	char line[AUDIT_LINE_MAX];
	char previous_hash[SHA256_HEX_LENGTH + 1];
	struct audit_report unused_report;
	struct audit_head head;
	struct audit_line parsed;
	uint64_t number = 0;
	FILE *file = NULL;

	if (report == NULL)
		report = &unused_report;
	memset(report, 0, sizeof *report);
	if (store_dir == NULL)
		LIC_FAIL(error, LIC_USAGE, "audit_verify needs a store directory");
	LIC_TRY(file_join(log_path, sizeof log_path, store_dir, AUDIT_LOG_NAME, error));
	LIC_TRY(file_join(head_path, sizeof head_path, store_dir, AUDIT_HEAD_NAME, error));

	/* The head first: lines a writer appends meanwhile come after it. */
	LIC_TRY(read_head(head_path, &head, error));
	report->head_sequence = head.sequence;
	file = fopen(log_path, "re");
	if (file == NULL) {
		if (errno != ENOENT)
			LIC_FAIL(error, LIC_IO, "cannot open %s: %s", log_path, strerror(errno));
		if (head.sequence > 0)
			LIC_FAIL(error, LIC_MALFORMED,
				 "audit.log is missing but audit.head records line %" PRIu64, head.sequence);
		goto out;
	}

	genesis_hash(previous_hash);
	for (;;) {
		size_t length = 0;
		bool complete = false;
		const char *fault;

		LIC_TRY(read_line(file, line, &length, &complete, number + 1, error));
		if (!complete)
			break; /* end of file; bytes without a newline are a torn append, not a line */
		number++;
		fault = parse_line(line, length, &parsed);
		if (fault != NULL)
			LIC_FAIL(error, LIC_MALFORMED, "audit.log line %" PRIu64 ": %s", number, fault);
		if (parsed.sequence != number)
			LIC_FAIL(error, LIC_MALFORMED,
				 "audit.log line %" PRIu64 ": sequence number is %" PRIu64
				 ", expected %" PRIu64 " (removed, inserted or reordered line)",
				 number, parsed.sequence, number);
		if (strcmp(parsed.prev, previous_hash) != 0) {
			if (number == 1)
				LIC_FAIL(error, LIC_MALFORMED, "audit.log line 1: prev is not 64 zeros");
			LIC_FAIL(error, LIC_MALFORMED,
				 "audit.log line %" PRIu64 ": prev does not match line %" PRIu64
				 " (edited, removed or reordered line)",
				 number, number - 1);
		}
		LIC_TRY(sha256_hex(line, length, previous_hash, error));
		if (number == head.sequence && strcmp(previous_hash, head.hash) != 0)
			LIC_FAIL(error, LIC_MALFORMED,
				 "audit.log line %" PRIu64
				 " does not match the hash recorded in audit.head (edited line)",
				 number);
		report->lines = number;
	}
	if (!head.present && number > 0)
		LIC_FAIL(error, LIC_MALFORMED,
			 "audit.log has %" PRIu64 " lines but audit.head is missing (removed head)", number);
	if (number < head.sequence)
		LIC_FAIL(error, LIC_MALFORMED,
			 "audit.head records line %" PRIu64 " but audit.log ends at line %" PRIu64
			 " (lines removed from the end)",
			 head.sequence, number);
out:
	if (file != NULL)
		fclose(file);
	return status;
}
