/*
 * test_crash_safety.c: DESIGN.md §4's promise that "a kill -9 at any point
 * leaves the old or the new keyring, never a mix, never a lost version",
 * proven the way SQLite proves it: by killing the writer.
 *
 * A child process opens the store and rekeys one tenant in a loop
 * (admin_rekey, rsa-2048, --immediate), telling the parent through a pipe when
 * it starts a rekey and which version each successful one committed. The
 * parent kills it with SIGKILL at a random moment, then opens the store afresh
 * and checks it: the tenant file loads (never torn), every version reported
 * committed is there with the key id it had before, versions are 1..N, the
 * newest is the only active one and the signing one, its sealed private key
 * opens under the KEK, the audit chain verifies, and the audit log never names
 * a version that is not in the file. Temp files a killed writer leaves are
 * counted: at most one per kill.
 *
 * Half the kills land at a uniformly random time after the fork (mostly in
 * key generation); the other half are aimed at the commit itself: the parent
 * watches tenants/ with inotify and kills a random 10 µs–20 ms after the
 * writer creates its temp file, so that kills also land in the tenant file
 * write, the rename, the audit append and the audit.head replacement. After
 * each kill the test reads what the writer left behind and classifies where
 * the kill landed; the histogram is printed. The random delays come from a
 * fixed seed (LICENSOR_CRASH_SEED overrides) so the schedule is reproducible.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "keyring/admin.h"
#include "keyring/audit.h"
#include "keyring/store.h"
#include "keyring/tenant.h"
#include "test_helpers.h"

#define TENANT "crash"
#define REKEYS_WANTED 200 /* rekeys started by a child that was then killed */
#define MAX_ROUNDS 2000   /* a bound, never reached when things work */
#define TIME_LIMIT_S 85   /* stop starting rounds after this; then assert the count */
#define UNIFORM_DELAY_US 120000
#define AIMED_WAIT_MS 5000 /* how long an aimed round waits for the writer's temp file */
#define DEFAULT_SEED 20261118u

/* What the child tells the parent; one write() each, so never torn. */
enum child_record_kind { RECORD_STARTED = 1, RECORD_COMMITTED = 2, RECORD_FAILED = 3 };
struct child_record {
	uint32_t kind;
	uint32_t value; /* committed version number, or the lic_status of a failure */
	char message[sizeof(((lic_error *)0)->message)];
};

/* Where a kill landed, as read from what the writer left behind. */
enum kill_phase {
	PHASE_IDLE,          /* no rekey started (store_open, between rekeys) */
	PHASE_BEFORE_COMMIT, /* rekey started, nothing on disk: lock, load, key generation */
	PHASE_TENANT_WRITE,  /* a temp file left in tenants/: killed before the rename */
	PHASE_BEFORE_AUDIT,  /* new version committed, its audit line not (fully) written */
	PHASE_AUDIT_HEAD,    /* audit line written, audit.head not yet moved on */
	PHASE_BEFORE_REPORT, /* everything committed, killed before telling the parent */
	PHASE_COUNT
};
static const char *const phase_names[PHASE_COUNT] = {
    "idle (startup, between rekeys)",
    "rekey started, nothing on disk yet (load, key generation)",
    "tenant temp file written, not renamed",
    "tenant file committed, audit line missing or torn",
    "audit line written, audit.head not moved on",
    "all committed, not yet reported",
};

struct crash_run {
	char work[PATH_MAX];  /* mkdtemp directory holding the store and its KEK */
	char store[PATH_MAX]; /* <work>/store; the KEK is <work>/store.kek */
	char tenants[PATH_MAX];
	pid_t child;   /* the writer of the current round; 0 when none is alive */
	int notify_fd; /* inotify on tenants/, -1 when unavailable */
	/* Key ids seen so far, by version number - 1: a version is never replaced. */
	char (*key_ids)[KEY_ID_HEX_LENGTH];
	size_t known_versions;
	uint32_t max_reported; /* newest version any child reported committed */
	bool *reported;        /* by version number: a child reported it committed */
	size_t reported_capacity;
	size_t temp_files; /* *.tmp files in tenants/ and the store directory */
	/* Totals. */
	unsigned rounds, kills, rekeys_started, rekeys_reported, rekeys_interrupted;
	unsigned lost_audit_lines, torn_audit_tails;
	bool audit_torn; /* audit.log ended torn after the last kill */
	unsigned phases[PHASE_COUNT];
	unsigned aimed_rounds, aimed_missed;
};

/* ---- helpers ------------------------------------------------------------- */

static double seconds_since(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void sleep_microseconds(long microseconds)
{
	struct timespec delay = {microseconds / 1000000, (microseconds % 1000000) * 1000};
	while (nanosleep(&delay, &delay) != 0 && errno == EINTR) {
	}
}

/* A killed writer's leftover: "<file>.tmp". */
static bool is_temp_name(const char *name)
{
	size_t length = strlen(name);
	return length > 4 && strcmp(name + length - 4, ".tmp") == 0;
}

/* Number of entries of `directory` whose name ends in ".tmp". */
static size_t count_temp_files(const char *directory)
{
	size_t count = 0;
	DIR *listing = opendir(directory);
	assert_non_null(listing);
	struct dirent *entry;
	while ((entry = readdir(listing)) != NULL) {
		if (is_temp_name(entry->d_name))
			count++;
	}
	closedir(listing);
	return count;
}

/* Whole file into a NUL-terminated heap buffer. */
static char *read_text(const char *path, size_t *length)
{
	FILE *file = fopen(path, "rb");
	assert_non_null(file);
	size_t capacity = 4096, used = 0;
	char *text = malloc(capacity);
	assert_non_null(text);
	size_t got;
	while ((got = fread(text + used, 1, capacity - used - 1, file)) > 0) {
		used += got;
		if (capacity - used < 2) {
			capacity *= 2;
			text = realloc(text, capacity);
			assert_non_null(text);
		}
	}
	assert_false(ferror(file));
	fclose(file);
	text[used] = '\0';
	*length = used;
	return text;
}

static bool read_fully(int fd, void *buffer, size_t length)
{
	char *cursor = buffer;
	while (length > 0) {
		ssize_t got = read(fd, cursor, length);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return false;
		cursor += got;
		length -= (size_t)got;
	}
	return true;
}

/* ---- the child: rekey until killed --------------------------------------- */

static void child_send(int fd, uint32_t kind, uint32_t value, const char *message)
{
	struct child_record record;
	memset(&record, 0, sizeof record);
	record.kind = kind;
	record.value = value;
	if (message != NULL)
		snprintf(record.message, sizeof record.message, "%s", message);
	/* sizeof record < PIPE_BUF: the write is atomic, a kill cannot tear it. */
	if (write(fd, &record, sizeof record) != (ssize_t)sizeof record)
		_exit(4);
}

static _Noreturn void child_rekey_forever(const char *store_directory, int fd, pid_t parent)
{
	/* Never outlive the test, whatever happens to it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(5);
	lic_error error = {0};
	struct store *store = NULL;
	struct store_options options = {.directory = store_directory};
	if (store_open(&options, &store, &error) != LIC_OK) {
		child_send(fd, RECORD_FAILED, error.status, error.message);
		_exit(3);
	}
	struct admin_context context = {.store = store, .clock = NULL, .actor = "crash-test"};
	struct rekey_request request = {.algorithm = KEY_ALGORITHM_RSA_2048, .immediate = true};
	for (;;) {
		uint32_t version = 0;
		child_send(fd, RECORD_STARTED, 0, NULL);
		lic_status status = admin_rekey(&context, TENANT, &request, &version, &error);
		if (status != LIC_OK) {
			child_send(fd, RECORD_FAILED, status, error.message);
			_exit(3);
		}
		child_send(fd, RECORD_COMMITTED, version, NULL);
	}
}

/* ---- the parent: kill, then check ----------------------------------------- */

#define ROUND_VERSIONS_MAX 256

struct round_report {
	unsigned started, committed;
	uint32_t max_committed;
	uint32_t versions[ROUND_VERSIONS_MAX]; /* the first committed ones, in order */
	bool failed;
	uint32_t failure_status;
	char failure[sizeof(((lic_error *)0)->message)];
};

static void collect_records(int fd, struct round_report *report)
{
	struct child_record record;
	memset(report, 0, sizeof *report);
	while (read_fully(fd, &record, sizeof record)) {
		switch (record.kind) {
		case RECORD_STARTED:
			report->started++;
			break;
		case RECORD_COMMITTED:
			if (report->committed < ROUND_VERSIONS_MAX)
				report->versions[report->committed] = record.value;
			report->committed++;
			if (record.value > report->max_committed)
				report->max_committed = record.value;
			break;
		case RECORD_FAILED:
			report->failed = true;
			report->failure_status = record.value;
			snprintf(report->failure, sizeof report->failure, "%s", record.message);
			break;
		default:
			fail_msg("unknown record kind %u from the child", record.kind);
		}
	}
}

/* Waits until the writer creates a temp file in tenants/ (the start of its
 * commit). Returns false when none came in time. */
static bool wait_for_commit_start(int notify_fd)
{
	char buffer[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		int left = AIMED_WAIT_MS - (int)(seconds_since(&start) * 1000);
		if (left <= 0)
			return false;
		struct pollfd poll_fd = {.fd = notify_fd, .events = POLLIN};
		int ready = poll(&poll_fd, 1, left);
		if (ready < 0 && errno == EINTR)
			continue;
		assert_true(ready >= 0);
		if (ready == 0)
			return false;
		ssize_t length = read(notify_fd, buffer, sizeof buffer);
		if (length < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		assert_true(length > 0);
		for (char *cursor = buffer; cursor < buffer + length;) {
			const struct inotify_event *event = (const struct inotify_event *)cursor;
			if ((event->mask & IN_CREATE) && event->len > 0 && is_temp_name(event->name))
				return true;
			cursor += sizeof *event + event->len;
		}
	}
}

static void drain_notifications(int notify_fd)
{
	char buffer[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	while (read(notify_fd, buffer, sizeof buffer) > 0) {
	}
}

/* Which versions have a "rekey" line in the complete lines of audit.log;
 * checks each is named once and exists. Returns whether the log ends torn. */
static bool scan_audit_log(const struct crash_run *run, size_t version_count, bool *audited)
{
	char path[PATH_MAX];
	size_t length = 0;
	test_join_path(path, sizeof path, run->store, "audit.log");
	char *text = read_text(path, &length);
	bool torn = length > 0 && text[length - 1] != '\n';
	memset(audited, 0, (version_count + 1) * sizeof *audited);
	char *line = text;
	for (char *newline; (newline = strchr(line, '\n')) != NULL; line = newline + 1) {
		*newline = '\0';
		if (strstr(line, "\"action\":\"rekey\"") == NULL)
			continue;
		const char *field = strstr(line, "\"version\":");
		assert_non_null(field);
		unsigned long version = strtoul(field + strlen("\"version\":"), NULL, 10);
		/* The log never claims a change that did not happen. */
		if (version < 2 || version > version_count)
			fail_msg("audit.log names rekey to version %lu but the tenant has %zu versions",
				 version, version_count);
		if (audited[version])
			fail_msg("audit.log names rekey to version %lu twice", version);
		audited[version] = true;
	}
	free(text);
	return torn;
}

/* Opens the store afresh after a kill and checks everything §4 promises. */
static void check_store_after_kill(struct crash_run *run, const struct round_report *round)
{
	lic_error error = {0};
	struct store *store = NULL;
	struct tenant *tenant = NULL;
	struct store_options options = {.directory = run->store};

	if (store_open(&options, &store, &error) != LIC_OK)
		fail_msg("round %u: store_open after a kill: %s: %s", run->rounds,
			 lic_status_code(error.status), error.message);
	if (store_load_tenant(store, TENANT, &tenant, &error) != LIC_OK)
		fail_msg("round %u: the tenant does not load after a kill (torn file?): %s: %s", run->rounds,
			 lic_status_code(error.status), error.message);

	/* Nothing reported is lost; at most the one unreported commit is added. */
	size_t floor = run->known_versions;
	if (run->max_reported > floor)
		floor = run->max_reported;
	if (round->max_committed > floor)
		floor = round->max_committed;
	size_t count = tenant->version_count;
	if (count < floor || count > floor + 1)
		fail_msg("round %u: %zu versions after a kill, expected %zu or %zu (child reported up to %u)",
			 run->rounds, count, floor, floor + 1, round->max_committed);
	bool unreported_commit = count == floor + 1;

	int active = 0;
	for (size_t i = 0; i < count; i++) {
		const struct key_version *version = &tenant->versions[i];
		assert_int_equal(version->number, i + 1);
		assert_ptr_equal(tenant_find_key_id(tenant, version->key_id), version);
		if (i < run->known_versions)
			assert_string_equal(version->key_id_hex, run->key_ids[i]);
		if (version->state == LIC_KEY_STATE_ACTIVE)
			active++;
		else
			assert_int_equal(version->state, LIC_KEY_STATE_RETAINED);
	}
	assert_int_equal(active, 1);
	const struct key_version *newest = &tenant->versions[count - 1];
	assert_int_equal(newest->state, LIC_KEY_STATE_ACTIVE);
	assert_ptr_equal(tenant_signing_version(tenant, lic_clock_now(lic_clock_system())), newest);
	if (count > 1) {
		assert_int_equal(tenant->rollout.outcome, ROLLOUT_COMPLETED);
		assert_int_equal(tenant->rollout.to_version, count);
		assert_int_equal(tenant->rollout.from_version, count - 1);
	}
	/* The committed key material is whole: it opens under the KEK. */
	EVP_PKEY *key = NULL;
	if (store_open_private_key(store->kek, TENANT, newest, &key, &error) != LIC_OK)
		fail_msg("round %u: version %u's private key does not open: %s", run->rounds, newest->number,
			 error.message);
	EVP_PKEY_free(key);

	char path[PATH_MAX];
	struct stat info;
	test_join_path(path, sizeof path, run->tenants, TENANT ".xml");
	assert_int_equal(stat(path, &info), 0);
	assert_int_equal(info.st_mode & 0777, 0600);

	/* The audit chain verifies; every reported version has its line. */
	struct audit_report audit = {0};
	if (audit_verify(run->store, &audit, &error) != LIC_OK)
		fail_msg("round %u: audit_verify after a kill: %s: %s", run->rounds,
			 lic_status_code(error.status), error.message);
	bool *audited = calloc(count + 1, sizeof *audited);
	assert_non_null(audited);
	bool torn = scan_audit_log(run, count, audited);
	for (size_t v = 2; v < run->reported_capacity && v <= count; v++) {
		if (run->reported[v] && !audited[v])
			fail_msg("round %u: version %zu was reported committed but has no audit line",
				 run->rounds, v);
	}
	bool newest_audited = count < 2 || audited[count];
	bool head_behind = audit.head_sequence < audit.lines;

	/* Temp names are fixed and a stale one is replaced by the next write, so
	 * killed writers never leave more than one per file they write: the
	 * tenant file and audit.head. */
	size_t tenant_temps = count_temp_files(run->tenants);
	size_t temp_files = tenant_temps + count_temp_files(run->store);
	if (temp_files > 2)
		fail_msg("round %u: %zu temp files: killed writers' files pile up", run->rounds, temp_files);
	bool new_temp = tenant_temps > 0;
	run->temp_files = temp_files;

	/* Where did the kill land? */
	enum kill_phase phase;
	if (unreported_commit && !newest_audited)
		phase = PHASE_BEFORE_AUDIT;
	else if (unreported_commit && (head_behind || new_temp))
		phase = PHASE_AUDIT_HEAD;
	else if (unreported_commit)
		phase = PHASE_BEFORE_REPORT;
	else if (new_temp)
		phase = PHASE_TENANT_WRITE;
	else if (round->started > round->committed)
		phase = PHASE_BEFORE_COMMIT;
	else
		phase = PHASE_IDLE;
	run->phases[phase]++;
	if (unreported_commit && !newest_audited)
		run->lost_audit_lines++;
	if (torn && !run->audit_torn)
		run->torn_audit_tails++;
	run->audit_torn = torn;

	/* Remember the key ids: later rounds must find them unchanged. */
	if (count > run->known_versions) {
		run->key_ids = realloc(run->key_ids, count * sizeof *run->key_ids);
		assert_non_null(run->key_ids);
		for (size_t i = run->known_versions; i < count; i++)
			memcpy(run->key_ids[i], tenant->versions[i].key_id_hex, KEY_ID_HEX_LENGTH);
		run->known_versions = count;
	}
	free(audited);
	tenant_free(tenant);
	store_close(store);
}

static void mark_reported(struct crash_run *run, uint32_t version)
{
	if (version >= run->reported_capacity) {
		size_t capacity = run->reported_capacity ? run->reported_capacity : 64;
		while (capacity <= version)
			capacity *= 2;
		run->reported = realloc(run->reported, capacity * sizeof *run->reported);
		assert_non_null(run->reported);
		memset(run->reported + run->reported_capacity, 0,
		       (capacity - run->reported_capacity) * sizeof *run->reported);
		run->reported_capacity = capacity;
	}
	run->reported[version] = true;
}

static void run_one_round(struct crash_run *run, int notify_fd, bool aimed)
{
	int pipe_fds[2];
	assert_int_equal(pipe2(pipe_fds, O_CLOEXEC), 0);
	if (notify_fd >= 0)
		drain_notifications(notify_fd);
	long delay_us = aimed ? (10L << (rand() % 11)) : rand() % (UNIFORM_DELAY_US + 1);
	if (aimed)
		delay_us += rand() % delay_us; /* 10 µs … 20 ms, log-uniform-ish */

	pid_t parent = getpid();
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		close(pipe_fds[0]);
		child_rekey_forever(run->store, pipe_fds[1], parent);
	}
	run->child = child;
	close(pipe_fds[1]);

	if (aimed) {
		run->aimed_rounds++;
		if (!wait_for_commit_start(notify_fd))
			run->aimed_missed++;
	}
	sleep_microseconds(delay_us);
	kill(child, SIGKILL);
	int wait_status = 0;
	while (waitpid(child, &wait_status, 0) < 0)
		assert_int_equal(errno, EINTR);
	run->child = 0;

	struct round_report round;
	collect_records(pipe_fds[0], &round);
	close(pipe_fds[0]);
	if (round.failed)
		fail_msg("round %u: the writer failed on its own: %s: %s", run->rounds,
			 lic_status_code((lic_status)round.failure_status), round.failure);
	if (!WIFSIGNALED(wait_status) || WTERMSIG(wait_status) != SIGKILL)
		fail_msg("round %u: the writer ended without being killed (status %#x)", run->rounds,
			 wait_status);

	run->kills++;
	for (unsigned i = 0; i < round.committed && i < ROUND_VERSIONS_MAX; i++)
		mark_reported(run, round.versions[i]);
	run->rekeys_started += round.started;
	run->rekeys_reported += round.committed;
	if (round.started > round.committed)
		run->rekeys_interrupted++;
	check_store_after_kill(run, &round);
	if (round.max_committed > run->max_reported)
		run->max_reported = round.max_committed;
	run->rounds++;
}

/* ---- the test --------------------------------------------------------------- */

static int setup(void **state)
{
	struct crash_run *run = calloc(1, sizeof *run);
	if (run == NULL)
		return -1;
	run->notify_fd = -1;
	const char *base = getenv("TMPDIR");
	snprintf(run->work, sizeof run->work, "%s/licensor-test-crash-XXXXXX", base != NULL ? base : "/tmp");
	if (mkdtemp(run->work) == NULL) {
		free(run);
		return -1;
	}
	test_join_path(run->store, sizeof run->store, run->work, "store");
	test_join_path(run->tenants, sizeof run->tenants, run->store, "tenants");
	*state = run;
	return 0;
}

/* Also after a failed assertion: no writer left running, no directory left behind. */
static int teardown(void **state)
{
	struct crash_run *run = *state;
	if (run->child > 0) {
		kill(run->child, SIGKILL);
		waitpid(run->child, NULL, 0);
	}
	if (run->notify_fd >= 0)
		close(run->notify_fd);
	test_remove_tree(run->work); /* the store and its KEK, <work>/store.kek */
	free(run->key_ids);
	free(run->reported);
	free(run);
	return 0;
}

static void test_rekey_survives_kill_at_any_moment(void **state)
{
	struct crash_run *run = *state;
	const char *seed_text = getenv("LICENSOR_CRASH_SEED");
	unsigned seed = seed_text != NULL ? (unsigned)strtoul(seed_text, NULL, 10) : DEFAULT_SEED;
	srand(seed);

	lic_error error = {0};
	struct store *store = NULL;
	struct store_options options = {.directory = run->store};
	if (store_init(&options, &store, &error) != LIC_OK)
		fail_msg("store_init: %s", error.message);
	struct admin_context context = {.store = store, .clock = NULL, .actor = "crash-test"};
	if (admin_tenant_add(&context, TENANT, KEY_ALGORITHM_RSA_2048, &error) != LIC_OK)
		fail_msg("admin_tenant_add: %s", error.message);
	struct tenant *tenant = NULL;
	if (store_load_tenant(store, TENANT, &tenant, &error) != LIC_OK)
		fail_msg("store_load_tenant: %s", error.message);
	assert_int_equal(tenant->version_count, 1);
	run->key_ids = malloc(sizeof *run->key_ids);
	assert_non_null(run->key_ids);
	memcpy(run->key_ids[0], tenant->versions[0].key_id_hex, KEY_ID_HEX_LENGTH);
	run->known_versions = 1;
	tenant_free(tenant);
	store_close(store);

	run->notify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (run->notify_fd >= 0 && inotify_add_watch(run->notify_fd, run->tenants, IN_CREATE) < 0) {
		close(run->notify_fd);
		run->notify_fd = -1;
	}
	if (run->notify_fd < 0)
		print_message("inotify unavailable (%s): every kill is at a uniform random time\n",
			      strerror(errno));

	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (run->rekeys_started < REKEYS_WANTED && run->rounds < MAX_ROUNDS &&
	       seconds_since(&start) < TIME_LIMIT_S) {
		bool aimed = run->notify_fd >= 0 && run->rounds % 2 == 1;
		run_one_round(run, run->notify_fd, aimed);
	}
	double elapsed = seconds_since(&start);

	print_message("crash safety: seed %u, %.1f s, %u rounds, %u kills\n", seed, elapsed, run->rounds,
		      run->kills);
	print_message("  rekeys started %u (reported committed %u, interrupted by the kill %u)\n",
		      run->rekeys_started, run->rekeys_reported, run->rekeys_interrupted);
	print_message("  versions in the store: %zu (1 from tenant add + %zu committed by rekeys)\n",
		      run->known_versions, run->known_versions - 1);
	print_message("  aimed kills %u (%u found no commit in time)\n", run->aimed_rounds,
		      run->aimed_missed);
	print_message("  audit: %u lines lost (commit killed before its line), %u torn tails left\n",
		      run->lost_audit_lines, run->torn_audit_tails);
	print_message("  temp files left at the end (at most 2): %zu\n", run->temp_files);
	print_message("  where the kills landed:\n");
	for (int phase = 0; phase < PHASE_COUNT; phase++)
		print_message("    %4u  %s\n", run->phases[phase], phase_names[phase]);

	assert_true(run->rekeys_started >= REKEYS_WANTED);
	assert_true(run->known_versions >= 1 + run->rekeys_reported);
	/* The committed versions survived: nothing reported was lost. */
	assert_true(run->known_versions >= run->max_reported);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_rekey_survives_kill_at_any_moment, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
