/*
 * test_audit.c: the audit log's hash chain (keyring/audit.c).
 *
 * Every test runs in a fresh mkdtemp store directory. Tampering is done by
 * hand on the files, the way an intruder or a careless operator would, and
 * each kind (edit, removal, reordering, truncation, lost head) must be named
 * by audit_verify; crash leftovers (torn tail, head one line behind) must not.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "keyring/audit.h"

#define ZEROS_64 "0000000000000000000000000000000000000000000000000000000000000000"
#define TIME_1700000000 "2023-11-14T22:13:20Z"
#define MAX_LINES 128

/* ---- helpers ------------------------------------------------------------- */

static int make_store(void **state)
{
	const char *base = getenv("TMPDIR");
	char template[PATH_MAX];
	snprintf(template, sizeof template, "%s/licensor-test-audit-XXXXXX", base != NULL ? base : "/tmp");
	char *directory = mkdtemp(template);
	if (directory == NULL)
		return -1;
	*state = strdup(directory);
	return *state == NULL ? -1 : 0;
}

static int remove_store(void **state)
{
	char *directory = *state;
	DIR *listing = opendir(directory);
	if (listing != NULL) {
		struct dirent *entry;
		while ((entry = readdir(listing)) != NULL) {
			char path[PATH_MAX];
			if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
				continue;
			snprintf(path, sizeof path, "%s/%s", directory, entry->d_name);
			unlink(path);
		}
		closedir(listing);
	}
	rmdir(directory);
	free(directory);
	return 0;
}

static void store_path(char *out, size_t size, const char *directory, const char *name)
{
	int length = snprintf(out, size, "%s/%s", directory, name);
	assert_true(length > 0 && (size_t)length < size);
}

/* Whole file into a NUL-terminated heap buffer; NULL when it does not exist. */
static char *read_text(const char *directory, const char *name, size_t *length)
{
	char path[PATH_MAX];
	store_path(path, sizeof path, directory, name);
	FILE *file = fopen(path, "rb");
	if (file == NULL) {
		assert_int_equal(errno, ENOENT);
		return NULL;
	}
	assert_int_equal(fseek(file, 0, SEEK_END), 0);
	long size = ftell(file);
	assert_true(size >= 0);
	rewind(file);
	char *text = malloc((size_t)size + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)size, file), (size_t)size);
	text[size] = '\0';
	fclose(file);
	if (length != NULL)
		*length = (size_t)size;
	return text;
}

static void write_text(const char *directory, const char *name, const char *data, size_t length,
		       const char *mode)
{
	char path[PATH_MAX];
	store_path(path, sizeof path, directory, name);
	FILE *file = fopen(path, mode);
	assert_non_null(file);
	assert_int_equal(fwrite(data, 1, length, file), length);
	assert_int_equal(fclose(file), 0);
}

static void sha256_hex(const char *data, size_t length, char out[65])
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_length = 0;
	assert_int_equal(EVP_Digest(data, length, digest, &digest_length, EVP_sha256(), NULL), 1);
	assert_int_equal(digest_length, 32);
	for (unsigned int i = 0; i < digest_length; i++)
		snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

/* The log split into lines; each keeps its newline. */
struct log_lines {
	char *text;
	size_t count;
	const char *start[MAX_LINES];
	size_t length[MAX_LINES];
};

static void load_lines(const char *directory, struct log_lines *lines)
{
	size_t size = 0;
	lines->text = read_text(directory, "audit.log", &size);
	assert_non_null(lines->text);
	lines->count = 0;
	for (size_t at = 0; at < size;) {
		const char *newline = memchr(lines->text + at, '\n', size - at);
		size_t end = newline != NULL ? (size_t)(newline - lines->text) + 1 : size;
		assert_true(lines->count < MAX_LINES);
		lines->start[lines->count] = lines->text + at;
		lines->length[lines->count] = end - at;
		lines->count++;
		at = end;
	}
}

/* Rewrites the log as the given lines (0-based indexes into `lines`), in order. */
static void store_lines(const char *directory, const struct log_lines *lines, const size_t *order,
			size_t count)
{
	char path[PATH_MAX];
	store_path(path, sizeof path, directory, "audit.log");
	FILE *file = fopen(path, "wb");
	assert_non_null(file);
	for (size_t i = 0; i < count; i++)
		assert_int_equal(fwrite(lines->start[order[i]], 1, lines->length[order[i]], file),
				 lines->length[order[i]]);
	assert_int_equal(fclose(file), 0);
}

static void append_ok(const char *directory, const char *actor, const char *action, const char *tenant,
		      uint32_t version, const char *reason, const char *detail, int64_t now)
{
	struct audit_event event = {actor, action, tenant, version, reason, detail};
	lic_error error = {0};
	lic_status status = audit_append(directory, &event, now, &error);
	if (status != LIC_OK)
		fail_msg("audit_append: %s: %s", lic_status_code(status), error.message);
}

static void append_three(const char *directory)
{
	append_ok(directory, "alice", "tenant-add", "contoso", 0, NULL, NULL, 1700000000);
	append_ok(directory, "alice", "rekey", "contoso", 2, "routine", "rollout 14d", 1700000100);
	append_ok(directory, "bob", "revoke", "contoso", 1, "compromised", NULL, 1700000200);
}

static void assert_verify_ok(const char *directory, uint64_t lines, uint64_t head_sequence)
{
	struct audit_report report = {99, 99};
	lic_error error = {0};
	lic_status status = audit_verify(directory, &report, &error);
	if (status != LIC_OK)
		fail_msg("audit_verify: %s: %s", lic_status_code(status), error.message);
	assert_int_equal(report.lines, lines);
	assert_int_equal(report.head_sequence, head_sequence);
}

/* audit_verify must refuse with LIC_MALFORMED and a message holding each of
 * the given fragments (NULL-terminated). */
static void assert_verify_malformed(const char *directory, ...)
{
	struct audit_report report;
	lic_error error = {0};
	assert_int_equal(audit_verify(directory, &report, &error), LIC_MALFORMED);
	assert_int_equal(error.status, LIC_MALFORMED);
	va_list fragments;
	va_start(fragments, directory);
	for (const char *fragment = va_arg(fragments, const char *); fragment != NULL;
	     fragment = va_arg(fragments, const char *)) {
		if (strstr(error.message, fragment) == NULL)
			fail_msg("message \"%s\" lacks \"%s\"", error.message, fragment);
	}
	va_end(fragments);
}

/* ---- tests --------------------------------------------------------------- */

static void test_empty_store_verifies_with_no_lines(void **state)
{
	assert_verify_ok(*state, 0, 0);
}

static void test_three_events_verify(void **state)
{
	const char *directory = *state;
	append_three(directory);
	assert_verify_ok(directory, 3, 3);

	struct log_lines lines;
	load_lines(directory, &lines);
	assert_int_equal(lines.count, 3);
	/* The chain: each prev is the hash of the line before, without its newline. */
	char hash[65];
	char expected[80];
	sha256_hex(lines.start[0], lines.length[0] - 1, hash);
	snprintf(expected, sizeof expected, "\"prev\":\"%s\"}\n", hash);
	assert_memory_equal(lines.start[1] + lines.length[1] - strlen(expected), expected, strlen(expected));
	assert_memory_equal(lines.start[1], "{\"seq\":2,", 9);
	assert_memory_equal(lines.start[2], "{\"seq\":3,", 9);

	/* The head names line 3 and its hash. */
	char head_expected[128];
	sha256_hex(lines.start[2], lines.length[2] - 1, hash);
	snprintf(head_expected, sizeof head_expected, "seq 3 sha256 %s\n", hash);
	char *head = read_text(directory, "audit.head", NULL);
	assert_non_null(head);
	assert_string_equal(head, head_expected);
	free(head);
	free(lines.text);
}

static void test_files_are_created_0600(void **state)
{
	const char *directory = *state;
	/* A umask that would tighten the mode: the files are 0600 all the same. */
	mode_t old_mask = umask(0277);
	append_three(directory);
	umask(old_mask);

	char path[PATH_MAX];
	struct stat info;
	store_path(path, sizeof path, directory, "audit.log");
	assert_int_equal(stat(path, &info), 0);
	assert_int_equal(info.st_mode & 07777, 0600);
	store_path(path, sizeof path, directory, "audit.head");
	assert_int_equal(stat(path, &info), 0);
	assert_int_equal(info.st_mode & 07777, 0600);
}

static void test_line_bytes_are_exact(void **state)
{
	const char *directory = *state;
	append_ok(directory, "alice", "rekey", "contoso", 2, "routine", "scheduled rekey", 1700000000);
	append_ok(directory, "ops", "store-init", NULL, 0, NULL, NULL, 1700000001);

	struct log_lines lines;
	load_lines(directory, &lines);
	assert_int_equal(lines.count, 2);
	const char *first =
	    "{\"seq\":1,\"time\":\"" TIME_1700000000 "\",\"actor\":\"alice\",\"action\":\"rekey\","
	    "\"tenant\":\"contoso\",\"version\":2,\"reason\":\"routine\","
	    "\"detail\":\"scheduled rekey\",\"prev\":\"" ZEROS_64 "\"}\n";
	assert_int_equal(lines.length[0], strlen(first));
	assert_memory_equal(lines.start[0], first, strlen(first));

	/* Optional keys are left out when NULL or 0. */
	char hash[65];
	char second[256];
	sha256_hex(first, strlen(first) - 1, hash);
	snprintf(second, sizeof second,
		 "{\"seq\":2,\"time\":\"2023-11-14T22:13:21Z\",\"actor\":\"ops\",\"action\":\"store-init\","
		 "\"prev\":\"%s\"}\n",
		 hash);
	assert_int_equal(lines.length[1], strlen(second));
	assert_memory_equal(lines.start[1], second, strlen(second));
	free(lines.text);
}

static void test_json_escaping(void **state)
{
	const char *directory = *state;
	append_ok(directory, "o\"brien\\ops", "note", "caf\xc3\xa9", 0, NULL,
		  "first\nsecond\x01"
		  "!\t\x7f",
		  1700000000);
	assert_verify_ok(directory, 1, 1);

	size_t length = 0;
	char *text = read_text(directory, "audit.log", &length);
	assert_non_null(text);
	const char *expected = "{\"seq\":1,\"time\":\"" TIME_1700000000 "\",\"actor\":\"o\\\"brien\\\\ops\","
			       "\"action\":\"note\",\"tenant\":\"caf\xc3\xa9\","
			       "\"detail\":\"first\\nsecond\\u0001!\\t\\u007f\",\"prev\":\"" ZEROS_64 "\"}\n";
	assert_string_equal(text, expected);
	/* One line: the only newline byte is the last one. */
	assert_ptr_equal(strchr(text, '\n'), text + length - 1);
	assert_non_null(strstr(text, "\\\""));
	assert_non_null(strstr(text, "\\\\"));
	assert_non_null(strstr(text, "\\n"));
	assert_non_null(strstr(text, "\\u0001"));
	free(text);
}

static void test_edited_line_is_found(void **state)
{
	const char *directory = *state;
	append_three(directory);
	struct log_lines lines;
	load_lines(directory, &lines);
	/* "actor":"alice" → "actor":"alicf" in line 2: still well-formed. */
	char *actor = strstr((char *)lines.start[1], "\"alice\"");
	assert_non_null(actor);
	assert_true(actor < lines.start[2]);
	actor[5] = 'f';
	size_t order[] = {0, 1, 2};
	store_lines(directory, &lines, order, 3);
	free(lines.text);

	assert_verify_malformed(directory, "line 3", "prev does not match line 2", NULL);
}

static void test_edited_last_line_is_found_by_head(void **state)
{
	const char *directory = *state;
	append_three(directory);
	struct log_lines lines;
	load_lines(directory, &lines);
	char *actor = strstr((char *)lines.start[2], "\"bob\"");
	assert_non_null(actor);
	actor[1] = 'B';
	size_t order[] = {0, 1, 2};
	store_lines(directory, &lines, order, 3);
	free(lines.text);

	assert_verify_malformed(directory, "line 3", "audit.head", NULL);
}

static void test_broken_line_is_named(void **state)
{
	const char *directory = *state;
	append_three(directory);
	struct log_lines lines;
	load_lines(directory, &lines);
	char *time_key = strstr((char *)lines.start[1], "\"time\"");
	assert_non_null(time_key);
	time_key[0] = '\''; /* 'time": not JSON any more */
	size_t order[] = {0, 1, 2};
	store_lines(directory, &lines, order, 3);
	free(lines.text);

	assert_verify_malformed(directory, "audit.log line 2:", "\"time\"", NULL);
}

static void test_removed_middle_line_is_found(void **state)
{
	const char *directory = *state;
	append_three(directory);
	struct log_lines lines;
	load_lines(directory, &lines);
	size_t order[] = {0, 2};
	store_lines(directory, &lines, order, 2);
	free(lines.text);

	assert_verify_malformed(directory, "line 2", "sequence number is 3, expected 2", NULL);
}

static void test_reordered_lines_are_found(void **state)
{
	const char *directory = *state;
	append_three(directory);
	struct log_lines lines;
	load_lines(directory, &lines);
	size_t order[] = {0, 2, 1};
	store_lines(directory, &lines, order, 3);
	free(lines.text);

	assert_verify_malformed(directory, "line 2", NULL);
}

static void test_removed_first_line_is_found(void **state)
{
	const char *directory = *state;
	append_three(directory);
	struct log_lines lines;
	load_lines(directory, &lines);
	size_t order[] = {1, 2};
	store_lines(directory, &lines, order, 2);
	free(lines.text);

	assert_verify_malformed(directory, "line 1", NULL);
}

static void test_removed_last_line_is_found_and_not_covered_up(void **state)
{
	const char *directory = *state;
	append_three(directory);
	struct log_lines lines;
	load_lines(directory, &lines);
	size_t order[] = {0, 1};
	store_lines(directory, &lines, order, 2);
	free(lines.text);

	assert_verify_malformed(directory, "audit.head records line 3", "ends at line 2", NULL);

	/* An append must not write a new line 3 and a head that would hide it. */
	size_t before = 0;
	char *log_before = read_text(directory, "audit.log", &before);
	struct audit_event event = {"mallory", "rekey", "contoso", 3, NULL, NULL};
	lic_error error = {0};
	assert_int_equal(audit_append(directory, &event, 1700000300, &error), LIC_MALFORMED);
	assert_non_null(strstr(error.message, "line 3"));
	size_t after = 0;
	char *log_after = read_text(directory, "audit.log", &after);
	assert_int_equal(after, before);
	assert_memory_equal(log_after, log_before, before);
	assert_verify_malformed(directory, "audit.head records line 3", NULL);
	free(log_before);
	free(log_after);
}

static void test_missing_head_is_found(void **state)
{
	const char *directory = *state;
	append_three(directory);
	char path[PATH_MAX];
	store_path(path, sizeof path, directory, "audit.head");
	assert_int_equal(unlink(path), 0);

	assert_verify_malformed(directory, "audit.head is missing", NULL);
	struct audit_event event = {"alice", "rekey", "contoso", 3, NULL, NULL};
	lic_error error = {0};
	assert_int_equal(audit_append(directory, &event, 1700000300, &error), LIC_MALFORMED);
}

static void test_missing_log_with_head_is_found(void **state)
{
	const char *directory = *state;
	append_three(directory);
	char path[PATH_MAX];
	store_path(path, sizeof path, directory, "audit.log");
	assert_int_equal(unlink(path), 0);

	assert_verify_malformed(directory, "audit.log is missing", "line 3", NULL);
}

static void test_torn_tail_is_cut_by_next_append(void **state)
{
	const char *directory = *state;
	append_ok(directory, "alice", "tenant-add", "contoso", 0, NULL, NULL, 1700000000);
	append_ok(directory, "alice", "rekey", "contoso", 2, "routine", NULL, 1700000100);
	const char *torn = "{\"seq\":3,\"time\":\"2023-11-14T22:1";
	write_text(directory, "audit.log", torn, strlen(torn), "ab");

	/* A killed writer's leftover is not a line, and not a fault. */
	assert_verify_ok(directory, 2, 2);

	append_ok(directory, "bob", "revoke", "contoso", 1, "compromised", NULL, 1700000200);
	assert_verify_ok(directory, 3, 3);
	struct log_lines lines;
	load_lines(directory, &lines);
	assert_int_equal(lines.count, 3);
	assert_null(strstr(lines.text, "22:1\n"));
	assert_null(strstr(lines.text, "22:1{"));
	char hash[65];
	char expected[128];
	sha256_hex(lines.start[1], lines.length[1] - 1, hash);
	snprintf(expected, sizeof expected,
		 "{\"seq\":3,\"time\":\"2023-11-14T22:16:40Z\",\"actor\":\"bob\",");
	assert_memory_equal(lines.start[2], expected, strlen(expected));
	snprintf(expected, sizeof expected, ",\"prev\":\"%s\"}\n", hash);
	assert_memory_equal(lines.start[2] + lines.length[2] - strlen(expected), expected, strlen(expected));
	free(lines.text);
}

static void test_torn_first_line_is_cut(void **state)
{
	const char *directory = *state;
	const char *torn = "{\"seq\":1,\"ti";
	write_text(directory, "audit.log", torn, strlen(torn), "wb");
	append_ok(directory, "alice", "tenant-add", "contoso", 0, NULL, NULL, 1700000000);
	assert_verify_ok(directory, 1, 1);
	struct log_lines lines;
	load_lines(directory, &lines);
	assert_int_equal(lines.count, 1);
	const char *expected = "{\"seq\":1,\"time\":\"" TIME_1700000000 "\"";
	assert_memory_equal(lines.start[0], expected, strlen(expected));
	free(lines.text);
}

static void test_crash_before_head_update_is_accepted(void **state)
{
	const char *directory = *state;
	append_ok(directory, "alice", "tenant-add", "contoso", 0, NULL, NULL, 1700000000);
	append_ok(directory, "alice", "rekey", "contoso", 2, NULL, NULL, 1700000100);
	size_t head_length = 0;
	char *head_after_two = read_text(directory, "audit.head", &head_length);
	assert_non_null(head_after_two);
	append_ok(directory, "bob", "revoke", "contoso", 1, NULL, NULL, 1700000200);

	/* As if killed between the log's fsync and the head's rename. */
	write_text(directory, "audit.head", head_after_two, head_length, "wb");
	free(head_after_two);
	assert_verify_ok(directory, 3, 2);

	/* The next append carries on after line 3 and moves the head on. */
	append_ok(directory, "bob", "activate", "contoso", 2, NULL, NULL, 1700000300);
	assert_verify_ok(directory, 4, 4);
}

static void test_crash_before_first_line_is_accepted(void **state)
{
	const char *directory = *state;
	/* The first append records line 0 before it writes line 1. */
	const char *head = "seq 0 sha256 " ZEROS_64 "\n";
	write_text(directory, "audit.head", head, strlen(head), "wb");
	write_text(directory, "audit.log", "", 0, "wb");
	assert_verify_ok(directory, 0, 0);
	append_ok(directory, "alice", "tenant-add", "contoso", 0, NULL, NULL, 1700000000);
	assert_verify_ok(directory, 1, 1);
}

static void test_malformed_head_is_refused(void **state)
{
	const char *directory = *state;
	append_three(directory);
	write_text(directory, "audit.head", "seq 3\n", 6, "wb");
	assert_verify_malformed(directory, "audit.head is malformed", NULL);
}

/* An audit.head that is not a file is refused as such, not read as absent,
 * whatever errno held before (a stale ENOENT once made it "absent"). */
static void test_head_that_is_not_a_file_is_refused(void **state)
{
	const char *directory = *state;
	append_three(directory);
	char path[512];
	snprintf(path, sizeof path, "%s/audit.head", directory);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	struct audit_report report;
	lic_error error = {0};
	errno = ENOENT;
	assert_int_equal(audit_verify(directory, &report, &error), LIC_IO);
	assert_non_null(strstr(error.message, "not a regular file"));
	assert_int_equal(rmdir(path), 0);
}

static void test_too_long_line_is_refused(void **state)
{
	const char *directory = *state;
	size_t length = 9000;
	char *line = malloc(length + 1);
	assert_non_null(line);
	memset(line, 'x', length);
	line[length] = '\n';
	write_text(directory, "audit.log", line, length + 1, "wb");
	free(line);

	assert_verify_malformed(directory, "line 1", "too long", NULL);
}

static void test_too_large_event_is_refused_before_any_write(void **state)
{
	const char *directory = *state;
	size_t length = 9000;
	char *detail = malloc(length + 1);
	assert_non_null(detail);
	memset(detail, 'd', length);
	detail[length] = '\0';
	struct audit_event event = {"alice", "note", NULL, 0, NULL, detail};
	lic_error error = {0};
	assert_int_equal(audit_append(directory, &event, 1700000000, &error), LIC_TOO_LARGE);
	assert_int_equal(error.status, LIC_TOO_LARGE);
	free(detail);

	/* Escaping counts: 2000 control bytes become 12000 bytes. */
	char controls[2001];
	memset(controls, '\x02', 2000);
	controls[2000] = '\0';
	event.detail = controls;
	assert_int_equal(audit_append(directory, &event, 1700000000, &error), LIC_TOO_LARGE);

	assert_null(read_text(directory, "audit.log", NULL));
	assert_null(read_text(directory, "audit.head", NULL));
	assert_verify_ok(directory, 0, 0);
}

static void test_bad_events_are_refused(void **state)
{
	const char *directory = *state;
	lic_error error = {0};
	struct audit_event no_actor = {NULL, "rekey", "contoso", 2, NULL, NULL};
	assert_int_equal(audit_append(directory, &no_actor, 1700000000, &error), LIC_USAGE);
	struct audit_event empty_action = {"alice", "", "contoso", 2, NULL, NULL};
	assert_int_equal(audit_append(directory, &empty_action, 1700000000, &error), LIC_USAGE);
	struct audit_event bad_utf8 = {"alice", "rekey", "con\xfftoso", 2, NULL, NULL};
	assert_int_equal(audit_append(directory, &bad_utf8, 1700000000, &error), LIC_MALFORMED);
	struct audit_event good = {"alice", "rekey", "contoso", 2, NULL, NULL};
	assert_int_equal(audit_append(directory, &good, -1, &error), LIC_MALFORMED);

	assert_null(read_text(directory, "audit.log", NULL));
	assert_verify_ok(directory, 0, 0);
}

static void test_long_log_reads_only_its_tail(void **state)
{
	/* Over 64 KiB of log: append must find the last line in the tail. */
	const char *directory = *state;
	char detail[1001];
	memset(detail, 'z', 1000);
	detail[1000] = '\0';
	for (int i = 0; i < 80; i++)
		append_ok(directory, "alice", "note", "contoso", 0, NULL, detail, 1700000000 + i);
	size_t length = 0;
	char *text = read_text(directory, "audit.log", &length);
	assert_true(length > 64 * 1024);
	free(text);
	assert_verify_ok(directory, 80, 80);

	struct log_lines lines;
	load_lines(directory, &lines);
	assert_int_equal(lines.count, 80);
	assert_memory_equal(lines.start[79], "{\"seq\":80,", 10);
	free(lines.text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_empty_store_verifies_with_no_lines, make_store,
					    remove_store),
	    cmocka_unit_test_setup_teardown(test_three_events_verify, make_store, remove_store),
	    cmocka_unit_test_setup_teardown(test_files_are_created_0600, make_store, remove_store),
	    cmocka_unit_test_setup_teardown(test_line_bytes_are_exact, make_store, remove_store),
	    cmocka_unit_test_setup_teardown(test_json_escaping, make_store, remove_store),
	    cmocka_unit_test_setup_teardown(test_edited_line_is_found, make_store, remove_store),
	    cmocka_unit_test_setup_teardown(test_edited_last_line_is_found_by_head, make_store, remove_store),
	    cmocka_unit_test_setup_teardown(test_broken_line_is_named, make_store, remove_store),
	    cmocka_unit_test_setup_teardown(test_removed_middle_line_is_found, make_store, remove_store),
	    cmocka_unit_test_setup_teardown(test_reordered_lines_are_found, make_store, remove_store),
	    cmocka_unit_test_setup_teardown(test_removed_first_line_is_found, make_store, remove_store),
	    cmocka_unit_test_setup_teardown(test_removed_last_line_is_found_and_not_covered_up, make_store,
					    remove_store),
	    cmocka_unit_test_setup_teardown(test_missing_head_is_found, make_store, remove_store),
	    cmocka_unit_test_setup_teardown(test_missing_log_with_head_is_found, make_store, remove_store),
	    cmocka_unit_test_setup_teardown(test_torn_tail_is_cut_by_next_append, make_store, remove_store),
	    cmocka_unit_test_setup_teardown(test_torn_first_line_is_cut, make_store, remove_store),
	    cmocka_unit_test_setup_teardown(test_crash_before_head_update_is_accepted, make_store,
					    remove_store),
	    cmocka_unit_test_setup_teardown(test_crash_before_first_line_is_accepted, make_store,
					    remove_store),
	    cmocka_unit_test_setup_teardown(test_malformed_head_is_refused, make_store, remove_store),
	    cmocka_unit_test_setup_teardown(test_head_that_is_not_a_file_is_refused, make_store,
					    remove_store),
	    cmocka_unit_test_setup_teardown(test_too_long_line_is_refused, make_store, remove_store),
	    cmocka_unit_test_setup_teardown(test_too_large_event_is_refused_before_any_write, make_store,
					    remove_store),
	    cmocka_unit_test_setup_teardown(test_bad_events_are_refused, make_store, remove_store),
	    cmocka_unit_test_setup_teardown(test_long_log_reads_only_its_tail, make_store, remove_store),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
