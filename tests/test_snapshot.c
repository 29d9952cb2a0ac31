/*
 * test_snapshot.c: the lock-free read side of a store (keyring/snapshot.c,
 * DESIGN.md §4 "Readers never lock: they read an immutable snapshot that a
 * writer replaces whole").
 *
 * Two reader threads walk the current snapshot without any lock while the
 * main thread rekeys tenants through a second store handle and reloads the
 * keyring after each rekey. Every tenant a reader sees must be whole and
 * consistent: versions 1..N, exactly one active (the newest: the rekeys are
 * immediate), every key id found by the O(1) index, a revision that never
 * goes backwards and never changes within one snapshot generation, and
 * lic_keyring_lookup agreeing on the active key. Also: a reload without a
 * change shares the parsed tenants (same pointer) and only bumps the
 * generation; the lookup errors (unknown tenant, unknown key, malformed key
 * id); the tenant count; and a wrong KEK is refused with UNAUTHORIZED.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keyring/admin.h"
#include "keyring/kek.h"
#include "keyring/snapshot.h"
#include "keyring/store.h"
#include "keyring/tenant.h"
#include "test_helpers.h"

#define TENANT_COUNT 3
#define READER_COUNT 2
#define REKEY_COUNT 30

static const char *const tenant_names[TENANT_COUNT] = {"alpha", "beta.example", "gamma-3"};

struct reader {
	pthread_t thread;
	lic_keyring *keyring;
	atomic_bool *stop;
	uint64_t iterations;
	uint64_t violations;
	uint64_t generations_seen; /* distinct generations, counted on change */
	uint64_t last_generation;
	uint64_t last_revision[TENANT_COUNT];
	uint64_t lookups_on_newer_snapshot; /* the active key read as retained by a newer snapshot */
	char first_violation[256];
};

struct fixture {
	char work[PATH_MAX];  /* mkdtemp directory: the store and its KEK */
	char store[PATH_MAX]; /* <work>/store; KEK at <work>/store.kek */
	struct store *writer; /* a store handle of its own, for admin_* */
	lic_keyring *keyring; /* owns the readers' store handle */
	struct reader readers[READER_COUNT];
	atomic_bool stop;
	bool readers_running; /* so that teardown stops them after a failed assertion */
};

/* ---- helpers ------------------------------------------------------------- */

static double seconds_since(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static struct admin_context writer_context(const struct fixture *fixture)
{
	struct admin_context context = {.store = fixture->writer, .clock = NULL, .actor = "snapshot-test"};
	return context;
}

static int setup(void **state)
{
	struct fixture *fixture = calloc(1, sizeof *fixture);
	if (fixture != NULL)
		atomic_init(&fixture->stop, false);
	lic_error error = {0};
	struct store *store = NULL;
	const char *base = getenv("TMPDIR");
	if (fixture == NULL)
		return -1;
	snprintf(fixture->work, sizeof fixture->work, "%s/licensor-test-snapshot-XXXXXX",
		 base != NULL ? base : "/tmp");
	if (mkdtemp(fixture->work) == NULL)
		return -1;
	test_join_path(fixture->store, sizeof fixture->store, fixture->work, "store");
	struct store_options options = {.directory = fixture->store};
	if (store_init(&options, &store, &error) != LIC_OK) {
		print_error("store_init: %s\n", error.message);
		return -1;
	}
	store_close(store);

	/* The writer: a handle of its own. */
	if (store_open(&options, &fixture->writer, &error) != LIC_OK) {
		print_error("store_open (writer): %s\n", error.message);
		return -1;
	}
	struct admin_context context = writer_context(fixture);
	for (int i = 0; i < TENANT_COUNT; i++) {
		if (admin_tenant_add(&context, tenant_names[i], KEY_ALGORITHM_RSA_2048, &error) != LIC_OK) {
			print_error("admin_tenant_add %s: %s\n", tenant_names[i], error.message);
			return -1;
		}
	}

	/* The readers: another handle, owned by the keyring. */
	if (store_open(&options, &store, &error) != LIC_OK) {
		print_error("store_open (readers): %s\n", error.message);
		return -1;
	}
	if (keyring_open_store(store, NULL, &fixture->keyring, &error) != LIC_OK) {
		print_error("keyring_open_store: %s\n", error.message);
		return -1;
	}
	*state = fixture;
	return 0;
}

static void stop_readers(struct fixture *fixture)
{
	if (!fixture->readers_running)
		return;
	atomic_store(&fixture->stop, true);
	for (int i = 0; i < READER_COUNT; i++)
		pthread_join(fixture->readers[i].thread, NULL);
	fixture->readers_running = false;
}

static int teardown(void **state)
{
	struct fixture *fixture = *state;
	stop_readers(fixture);
	lic_keyring_close(fixture->keyring);
	store_close(fixture->writer);
	test_remove_tree(fixture->work);
	free(fixture);
	return 0;
}

/* What the main thread reads of one tenant of the current snapshot. Taken in
 * a read section of its own, so that a failed assertion never leaves one
 * open (a reload would then wait for it forever). */
struct tenant_view {
	lic_status status;
	uint64_t generation;
	uintptr_t parsed; /* the parsed tenant's address, to compare across snapshots */
	uint64_t revision;
	size_t version_count;
	uint32_t signing_version; /* 0: none */
	char newest_key_id[KEY_ID_HEX_LENGTH];
	char first_key_id[KEY_ID_HEX_LENGTH];
	char message[sizeof(((lic_error *)0)->message)];
};

static struct tenant_view view_tenant(lic_keyring *keyring, const char *name)
{
	struct tenant_view view;
	lic_error error = {0};
	const struct tenant *tenant = NULL;
	memset(&view, 0, sizeof view);
	keyring_read_enter();
	const struct keyring_snapshot *snapshot = keyring_current(keyring);
	view.generation = keyring_snapshot_generation(snapshot);
	view.status = keyring_snapshot_tenant(keyring, snapshot, name, &tenant, &error);
	if (view.status == LIC_OK) {
		view.parsed = (uintptr_t)tenant;
		view.revision = tenant->revision;
		view.version_count = tenant->version_count;
		const struct key_version *signing =
		    tenant_signing_version(tenant, lic_clock_now(lic_clock_system()));
		view.signing_version = signing != NULL ? signing->number : 0;
		memcpy(view.newest_key_id, tenant->versions[tenant->version_count - 1].key_id_hex,
		       KEY_ID_HEX_LENGTH);
		memcpy(view.first_key_id, tenant->versions[0].key_id_hex, KEY_ID_HEX_LENGTH);
	}
	keyring_read_leave();
	snprintf(view.message, sizeof view.message, "%s", error.message);
	if (view.status != LIC_OK)
		fail_msg("keyring_snapshot_tenant %s: %s", name, view.message);
	return view;
}

/* ---- the reader threads ---------------------------------------------------- */

/* Records a violation; the first one's sentence is kept for the report. */
__attribute__((format(printf, 2, 3))) static void violation(struct reader *reader, const char *format, ...)
{
	if (reader->violations++ == 0) {
		va_list arguments;
		va_start(arguments, format);
		vsnprintf(reader->first_violation, sizeof reader->first_violation, format, arguments);
		va_end(arguments);
	}
}

/* Checks one tenant of one snapshot: everything a reader relies on. */
static void check_tenant(struct reader *reader, const struct tenant *tenant, int index, uint64_t generation,
			 bool same_generation)
{
	const char *name = tenant_names[index];
	if (strcmp(tenant->name, name) != 0)
		violation(reader, "asked for %s, got %s", name, tenant->name);
	if (tenant->version_count == 0) {
		violation(reader, "%s: no versions", name);
		return;
	}
	size_t active = 0;
	for (size_t i = 0; i < tenant->version_count; i++) {
		const struct key_version *version = &tenant->versions[i];
		if (version->number != i + 1)
			violation(reader, "%s gen %llu: version[%zu] is numbered %u", name,
				  (unsigned long long)generation, i, version->number);
		if (tenant_find_key_id(tenant, version->key_id) != version)
			violation(reader, "%s gen %llu: key id of version %u not found by the index", name,
				  (unsigned long long)generation, version->number);
		if (version->state == LIC_KEY_STATE_ACTIVE)
			active++;
	}
	const struct key_version *newest = &tenant->versions[tenant->version_count - 1];
	if (active != 1 || newest->state != LIC_KEY_STATE_ACTIVE)
		violation(reader, "%s gen %llu: %zu active versions, newest (%u) is %s", name,
			  (unsigned long long)generation, active, newest->number,
			  lic_key_state_name(newest->state));
	if (tenant->revision < reader->last_revision[index])
		violation(reader, "%s: revision went back from %llu to %llu", name,
			  (unsigned long long)reader->last_revision[index],
			  (unsigned long long)tenant->revision);
	if (same_generation && tenant->revision != reader->last_revision[index])
		violation(reader, "%s: revision changed from %llu to %llu within generation %llu", name,
			  (unsigned long long)reader->last_revision[index],
			  (unsigned long long)tenant->revision, (unsigned long long)generation);
	reader->last_revision[index] = tenant->revision;

	/* lic_keyring_lookup reads the current snapshot, which may be newer than
	 * ours: there the key we saw active may already be retained. */
	lic_key_info info;
	lic_error error = {0};
	lic_status status = lic_keyring_lookup(reader->keyring, name, newest->key_id_hex, &info, &error);
	if (status != LIC_OK) {
		violation(reader, "%s: lookup of the active key failed: %s", name, error.message);
		return;
	}
	if (info.version != newest->number || strcmp(info.key_id, newest->key_id_hex) != 0)
		violation(reader, "%s: lookup of %s found version %u", name, newest->key_id_hex,
			  info.version);
	if (info.state != LIC_KEY_STATE_ACTIVE) {
		uint64_t now_generation = keyring_snapshot_generation(keyring_current(reader->keyring));
		if (now_generation == generation || info.state != LIC_KEY_STATE_RETAINED)
			violation(reader, "%s gen %llu: lookup says the active key is %s", name,
				  (unsigned long long)generation, lic_key_state_name(info.state));
		else
			reader->lookups_on_newer_snapshot++;
	}
}

static void *reader_main(void *argument)
{
	struct reader *reader = argument;
	while (!atomic_load(reader->stop)) {
		keyring_read_enter();
		const struct keyring_snapshot *snapshot = keyring_current(reader->keyring);
		uint64_t generation = keyring_snapshot_generation(snapshot);
		bool same_generation = generation == reader->last_generation;
		if (generation < reader->last_generation)
			violation(reader, "generation went back from %llu to %llu",
				  (unsigned long long)reader->last_generation,
				  (unsigned long long)generation);
		if (!same_generation)
			reader->generations_seen++;
		reader->last_generation = generation;
		if (keyring_snapshot_tenant_count(snapshot) != TENANT_COUNT)
			violation(reader, "gen %llu has %zu tenants", (unsigned long long)generation,
				  keyring_snapshot_tenant_count(snapshot));
		for (int i = 0; i < TENANT_COUNT; i++) {
			const struct tenant *tenant = NULL;
			lic_error error = {0};
			if (keyring_snapshot_tenant(reader->keyring, snapshot, tenant_names[i], &tenant,
						    &error) != LIC_OK) {
				violation(reader, "%s gen %llu: %s", tenant_names[i],
					  (unsigned long long)generation, error.message);
				continue;
			}
			check_tenant(reader, tenant, i, generation, same_generation);
		}
		keyring_read_leave();
		/* Busy, but leave the writer's key generation some of the two cores. */
		if (++reader->iterations % 256 == 0) {
			struct timespec pause = {0, 200 * 1000};
			nanosleep(&pause, NULL);
		}
	}
	return NULL;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_readers_see_whole_snapshots_during_rekeys(void **state)
{
	struct fixture *fixture = *state;
	struct admin_context context = writer_context(fixture);
	lic_error error = {0};
	struct reader *readers = fixture->readers;
	struct timespec start;

	uint32_t expected_versions[TENANT_COUNT];
	for (int i = 0; i < TENANT_COUNT; i++)
		expected_versions[i] = 1;
	uint64_t generation = view_tenant(fixture->keyring, tenant_names[0]).generation;

	for (int i = 0; i < READER_COUNT; i++) {
		readers[i].keyring = fixture->keyring;
		readers[i].stop = &fixture->stop;
		assert_int_equal(pthread_create(&readers[i].thread, NULL, reader_main, &readers[i]), 0);
	}
	fixture->readers_running = true;

	clock_gettime(CLOCK_MONOTONIC, &start);
	struct rekey_request request = {.algorithm = KEY_ALGORITHM_RSA_2048, .immediate = true};
	for (int round = 0; round < REKEY_COUNT; round++) {
		int index = round % TENANT_COUNT;
		uint32_t version = 0;
		if (admin_rekey(&context, tenant_names[index], &request, &version, &error) != LIC_OK)
			fail_msg("admin_rekey %s: %s", tenant_names[index], error.message);
		assert_int_equal(version, ++expected_versions[index]);
		if (lic_keyring_reload(fixture->keyring, &error) != LIC_OK)
			fail_msg("lic_keyring_reload: %s", error.message);

		/* The reload made the rekey visible, and only it. */
		struct tenant_view view = view_tenant(fixture->keyring, tenant_names[index]);
		assert_int_equal(view.generation, generation + 1);
		assert_int_equal(view.version_count, version);
		assert_int_equal(view.signing_version, version);
		for (int other = 0; other < TENANT_COUNT; other++) {
			struct tenant_view other_view = view_tenant(fixture->keyring, tenant_names[other]);
			assert_int_equal(other_view.generation, generation + 1);
			assert_int_equal(other_view.version_count, expected_versions[other]);
		}
		generation = view.generation;
	}
	double rekey_seconds = seconds_since(&start);

	/* Let the readers walk the final snapshot too, then stop them. */
	struct timespec pause = {0, 50 * 1000 * 1000};
	nanosleep(&pause, NULL);
	stop_readers(fixture);

	print_message("snapshot: %d rekeys + reloads in %.2f s, final generation %llu\n", REKEY_COUNT,
		      rekey_seconds, (unsigned long long)generation);
	for (int i = 0; i < READER_COUNT; i++) {
		print_message("  reader %d: %llu iterations, %llu generations seen, %llu violations, "
			      "%llu lookups answered by a newer snapshot%s%s\n",
			      i, (unsigned long long)readers[i].iterations,
			      (unsigned long long)readers[i].generations_seen,
			      (unsigned long long)readers[i].violations,
			      (unsigned long long)readers[i].lookups_on_newer_snapshot,
			      readers[i].violations ? "; first: " : "", readers[i].first_violation);
	}
	for (int i = 0; i < READER_COUNT; i++) {
		assert_int_equal(readers[i].violations, 0);
		assert_true(readers[i].iterations > 0);
		assert_true(readers[i].generations_seen > 1);
	}

	/* Quiet now: the newest key of every tenant is active by lookup. */
	for (int i = 0; i < TENANT_COUNT; i++) {
		struct tenant_view view = view_tenant(fixture->keyring, tenant_names[i]);
		lic_key_info info;
		assert_int_equal(
		    lic_keyring_lookup(fixture->keyring, tenant_names[i], view.newest_key_id, &info, &error),
		    LIC_OK);
		assert_int_equal(info.version, expected_versions[i]);
		assert_int_equal(info.state, LIC_KEY_STATE_ACTIVE);
		assert_false(info.compromised);
		assert_false(info.tenant_disabled);
		assert_string_equal(info.key_id, view.newest_key_id);
		/* and the first one, retained by the rekeys, still unwraps old content */
		assert_int_equal(
		    lic_keyring_lookup(fixture->keyring, tenant_names[i], view.first_key_id, &info, &error),
		    LIC_OK);
		assert_int_equal(info.version, 1);
		assert_int_equal(info.state, LIC_KEY_STATE_RETAINED);
	}
}

static void test_reload_without_change_shares_parsed_tenants(void **state)
{
	struct fixture *fixture = *state;
	struct admin_context context = writer_context(fixture);
	lic_error error = {0};
	struct tenant_view before[TENANT_COUNT], after[TENANT_COUNT], rekeyed[TENANT_COUNT];

	for (int i = 0; i < TENANT_COUNT; i++)
		before[i] = view_tenant(fixture->keyring, tenant_names[i]);
	assert_int_equal(lic_keyring_reload(fixture->keyring, &error), LIC_OK);
	for (int i = 0; i < TENANT_COUNT; i++)
		after[i] = view_tenant(fixture->keyring, tenant_names[i]);
	for (int i = 0; i < TENANT_COUNT; i++) {
		assert_int_equal(after[i].generation, before[i].generation + 1);
		assert_true(after[i].parsed == before[i].parsed); /* shared, not parsed again */
		assert_int_equal(after[i].revision, before[i].revision);
	}

	/* A rekey of one tenant: the others stay shared, it is read anew. */
	uint32_t version = 0;
	struct rekey_request request = {.algorithm = KEY_ALGORITHM_RSA_2048, .immediate = true};
	assert_int_equal(admin_rekey(&context, tenant_names[0], &request, &version, &error), LIC_OK);
	assert_int_equal(version, 2);
	/* Not visible before the reload: the snapshot is immutable. */
	struct tenant_view stale = view_tenant(fixture->keyring, tenant_names[0]);
	assert_int_equal(stale.generation, after[0].generation);
	assert_int_equal(stale.version_count, 1);
	assert_int_equal(lic_keyring_reload(fixture->keyring, &error), LIC_OK);
	for (int i = 0; i < TENANT_COUNT; i++)
		rekeyed[i] = view_tenant(fixture->keyring, tenant_names[i]);
	assert_int_equal(rekeyed[0].generation, after[0].generation + 1);
	assert_int_equal(rekeyed[0].revision, after[0].revision + 1);
	assert_int_equal(rekeyed[0].version_count, 2);
	assert_int_equal(rekeyed[0].signing_version, 2);
	for (int i = 1; i < TENANT_COUNT; i++) {
		assert_true(rekeyed[i].parsed == after[i].parsed);
		assert_int_equal(rekeyed[i].revision, after[i].revision);
	}
}

static void test_lookup_errors_and_tenant_count(void **state)
{
	struct fixture *fixture = *state;
	lic_error error = {0};
	lic_key_info info;

	assert_int_equal(lic_keyring_tenant_count(fixture->keyring), TENANT_COUNT);
	struct tenant_view view = view_tenant(fixture->keyring, tenant_names[1]);
	assert_int_equal(
	    lic_keyring_lookup(fixture->keyring, tenant_names[1], view.first_key_id, &info, &error), LIC_OK);
	assert_int_equal(info.version, 1);
	assert_int_equal(info.state, LIC_KEY_STATE_ACTIVE);

	assert_int_equal(lic_keyring_lookup(fixture->keyring, "nobody", view.first_key_id, &info, &error),
			 LIC_UNKNOWN_TENANT);
	assert_int_equal(error.status, LIC_UNKNOWN_TENANT);
	/* Another tenant's key is unknown to this one. */
	assert_int_equal(
	    lic_keyring_lookup(fixture->keyring, tenant_names[0], view.first_key_id, &info, &error),
	    LIC_UNKNOWN_KEY);
	assert_int_equal(lic_keyring_lookup(fixture->keyring, tenant_names[1],
					    "00000000000000000000000000000000", &info, &error),
			 LIC_UNKNOWN_KEY);
	assert_int_equal(error.status, LIC_UNKNOWN_KEY);
	assert_int_equal(lic_keyring_lookup(fixture->keyring, tenant_names[1], "xyz", &info, &error),
			 LIC_MALFORMED);
	assert_int_equal(error.status, LIC_MALFORMED);
	assert_int_equal(lic_keyring_lookup(fixture->keyring, tenant_names[1], "", &info, &error),
			 LIC_MALFORMED);
	/* 33 hex digits: one too many. */
	assert_int_equal(lic_keyring_lookup(fixture->keyring, tenant_names[1],
					    "000000000000000000000000000000000", &info, &error),
			 LIC_MALFORMED);

	/* A tenant added by the writer appears after a reload, not before. */
	struct admin_context context = writer_context(fixture);
	assert_int_equal(admin_tenant_add(&context, "delta", KEY_ALGORITHM_RSA_2048, &error), LIC_OK);
	assert_int_equal(lic_keyring_tenant_count(fixture->keyring), TENANT_COUNT);
	assert_int_equal(lic_keyring_reload(fixture->keyring, &error), LIC_OK);
	assert_int_equal(lic_keyring_tenant_count(fixture->keyring), TENANT_COUNT + 1);
}

static void test_open_with_wrong_kek_is_unauthorized(void **state)
{
	struct fixture *fixture = *state;
	lic_error error = {0};
	char wrong_kek[PATH_MAX];
	struct kek *kek = NULL;

	test_join_path(wrong_kek, sizeof wrong_kek, fixture->work, "wrong.kek");
	assert_int_equal(kek_create_file(wrong_kek, &kek, &error), LIC_OK);
	kek_free(kek);

	lic_keyring_options options = {.store_dir = fixture->store, .kek_file = wrong_kek};
	lic_keyring *keyring = NULL;
	assert_int_equal(lic_keyring_open(&options, &keyring, &error), LIC_UNAUTHORIZED);
	assert_null(keyring);
	assert_int_equal(error.status, LIC_UNAUTHORIZED);

	/* The right KEK (the one world.xml names) opens it. */
	options.kek_file = NULL;
	assert_int_equal(lic_keyring_open(&options, &keyring, &error), LIC_OK);
	assert_int_equal(lic_keyring_tenant_count(keyring), TENANT_COUNT);
	lic_keyring_close(keyring);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_readers_see_whole_snapshots_during_rekeys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reload_without_change_shares_parsed_tenants, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_lookup_errors_and_tenant_count, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_with_wrong_kek_is_unauthorized, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
