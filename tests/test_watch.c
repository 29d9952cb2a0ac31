/*
 * test_watch.c: store change notification (lic_keyring_watch): a change made
 * through another store handle (as another `licensor` process would) makes
 * the fd readable within a second, and processing it swaps in a snapshot
 * that shows the change; a refused change or a temporary file wakes nothing
 * up; a store that is only its world.xml is watched from its first write.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <poll.h>
#include <unistd.h>

#include "keyring/admin.h"
#include "keyring/file_io.h"
#include "keyring/snapshot.h"
#include "keyring/store.h"
#include "test_helpers.h"

static bool readable_within(int fd, int milliseconds)
{
	struct pollfd descriptor = {.fd = fd, .events = POLLIN};
	return poll(&descriptor, 1, milliseconds) == 1 && (descriptor.revents & POLLIN);
}

static struct store *open_store(const char *path)
{
	struct store_options options = {.directory = path};
	struct store *store = NULL;
	lic_error error = {0};
	if (store_open(&options, &store, &error) != LIC_OK)
		fail_msg("store_open: %s", error.message);
	return store;
}

static uint32_t signing_version(lic_keyring *keyring, const char *name)
{
	keyring_read_enter();
	const struct tenant *tenant = NULL;
	uint32_t number = 0;
	if (keyring_snapshot_tenant(keyring, keyring_current(keyring), name, &tenant, NULL) == LIC_OK)
		number = tenant_signing_version(tenant, lic_clock_now(lic_clock_system()))->number;
	keyring_read_leave();
	return number;
}

static void test_changes_wake_the_watcher(void **state)
{
	(void)state;
	char directory[] = "/tmp/licensor-test-watch-XXXXXX", store_path[128];
	assert_non_null(mkdtemp(directory));
	test_join_path(store_path, sizeof store_path, directory, "store");
	struct store_options options = {.directory = store_path};
	struct store *writer = NULL;
	lic_error error = {0};
	assert_int_equal(store_init(&options, &writer, &error), LIC_OK);
	struct admin_context admin = {.store = writer, .actor = "test"};
	assert_int_equal(admin_tenant_add(&admin, "contoso", KEY_ALGORITHM_RSA_2048, &error), LIC_OK);

	lic_keyring *keyring = NULL;
	assert_int_equal(keyring_open_store(open_store(store_path), NULL, &keyring, &error), LIC_OK);
	int fd = -1, again = -1;
	bool reloaded = true;
	assert_int_equal(lic_keyring_watch(keyring, &fd, &error), LIC_OK);
	assert_int_equal(lic_keyring_watch(keyring, &again, &error), LIC_OK);
	assert_int_equal(fd, again);
	assert_false(readable_within(fd, 100));
	assert_int_equal(signing_version(keyring, "contoso"), 1);

	/* A change by another handle: visible after one wake-up, within a second. */
	struct rekey_request rekey = {.algorithm = KEY_ALGORITHM_RSA_2048, .immediate = true};
	assert_int_equal(admin_rekey(&admin, "contoso", &rekey, NULL, &error), LIC_OK);
	assert_true(readable_within(fd, 1000));
	assert_int_equal(lic_keyring_watch_process(keyring, &reloaded, &error), LIC_OK);
	assert_true(reloaded);
	assert_int_equal(signing_version(keyring, "contoso"), 2);

	/* A refused change writes nothing and wakes nothing. */
	assert_int_equal(admin_revoke(&admin, "contoso", 9, true, &error), LIC_UNKNOWN_KEY);
	assert_false(readable_within(fd, 200));

	/* A temporary file alone is drained without a reload. */
	char temporary[192];
	test_join_path(temporary, sizeof temporary, store_path, "tenants/contoso.xml.tmp");
	FILE *file = fopen(temporary, "w");
	fputs("partial", file);
	fclose(file);
	assert_true(readable_within(fd, 1000));
	assert_int_equal(lic_keyring_watch_process(keyring, &reloaded, &error), LIC_OK);
	assert_false(reloaded);
	unlink(temporary);
	assert_int_equal(lic_keyring_watch_process(keyring, &reloaded, &error), LIC_OK);

	/* A new tenant appears. */
	assert_int_equal(admin_tenant_add(&admin, "fabrikam", KEY_ALGORITHM_RSA_2048, &error), LIC_OK);
	assert_true(readable_within(fd, 1000));
	assert_int_equal(lic_keyring_watch_process(keyring, &reloaded, &error), LIC_OK);
	assert_true(reloaded);
	assert_int_equal(lic_keyring_tenant_count(keyring), 2);
	lic_keyring_close(keyring);
	store_close(writer);
	test_remove_tree(directory);
}

static void test_world_only_store_is_watched_from_its_first_write(void **state)
{
	(void)state;
	char directory[] = "/tmp/licensor-test-watch-XXXXXX", store_path[128], copy[128], path[256];
	assert_non_null(mkdtemp(directory));
	test_join_path(store_path, sizeof store_path, directory, "store");
	test_join_path(copy, sizeof copy, directory, "copy");
	struct store_options options = {.directory = store_path};
	struct store *store = NULL;
	lic_error error = {0};
	assert_int_equal(store_init(&options, &store, &error), LIC_OK);
	/* A copy of world.xml alone is an empty store of the same world. */
	char *world = NULL;
	size_t length = 0;
	test_join_path(path, sizeof path, store_path, "world.xml");
	assert_int_equal(file_read_all(path, 1 << 16, &world, &length, &error), LIC_OK);
	assert_int_equal(file_make_directory(copy, &error), LIC_OK);
	test_join_path(path, sizeof path, copy, "world.xml");
	assert_int_equal(file_write_atomic(path, world, length, 0600, 0, &error), LIC_OK);
	free(world);
	store_close(store);

	lic_keyring *keyring = NULL;
	assert_int_equal(keyring_open_store(open_store(copy), NULL, &keyring, &error), LIC_OK);
	assert_int_equal(lic_keyring_tenant_count(keyring), 0);
	int fd = -1;
	bool reloaded = false;
	assert_int_equal(lic_keyring_watch(keyring, &fd, &error), LIC_OK);
	struct store *writer = open_store(copy);
	struct admin_context admin = {.store = writer, .actor = "test"};
	assert_int_equal(admin_tenant_add(&admin, "contoso", KEY_ALGORITHM_RSA_2048, &error), LIC_OK);
	assert_true(readable_within(fd, 1000));
	assert_int_equal(lic_keyring_watch_process(keyring, &reloaded, &error), LIC_OK);
	assert_true(reloaded);
	assert_int_equal(lic_keyring_tenant_count(keyring), 1);
	/* tenants/ is watched now: the next change is seen too. */
	struct rekey_request rekey = {.algorithm = KEY_ALGORITHM_RSA_2048, .immediate = true};
	assert_int_equal(admin_rekey(&admin, "contoso", &rekey, NULL, &error), LIC_OK);
	assert_true(readable_within(fd, 1000));
	assert_int_equal(lic_keyring_watch_process(keyring, &reloaded, &error), LIC_OK);
	assert_true(reloaded);
	assert_int_equal(signing_version(keyring, "contoso"), 2);
	lic_keyring_close(keyring);
	store_close(writer);
	test_remove_tree(directory);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_changes_wake_the_watcher),
	    cmocka_unit_test(test_world_only_store_is_watched_from_its_first_write),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
