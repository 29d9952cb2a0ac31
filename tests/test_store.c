/*
 * test_store.c: the file store of DESIGN.md §4: init and reopen, a wrong KEK
 * refused before anything is read, passphrase stores, file and directory
 * modes, sealed private keys bound to tenant, version and key id by their AAD,
 * and tenant files that are damaged or hand-edited refused whole.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <libxml/xmlmemory.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyring/admin.h"
#include "keyring/audit.h"
#include "keyring/file_io.h"
#include "keyring/tenant_file.h"
#include "test_helpers.h"

struct fixture {
	char directory[64];
	char store[128];
	char kek[128];
};

static int setup(void **state)
{
	struct fixture *fixture = calloc(1, sizeof *fixture);
	snprintf(fixture->directory, sizeof fixture->directory, "/tmp/licensor-store-XXXXXX");
	assert_non_null(mkdtemp(fixture->directory));
	snprintf(fixture->store, sizeof fixture->store, "%s/store", fixture->directory);
	snprintf(fixture->kek, sizeof fixture->kek, "%s/store.kek", fixture->directory);
	*state = fixture;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fixture = *state;
	char command[256];
	snprintf(command, sizeof command, "rm -rf '%s'", fixture->directory);
	assert_int_equal(system(command), 0);
	free(fixture);
	return 0;
}

static mode_t mode_of(const char *path)
{
	struct stat info;
	assert_int_equal(stat(path, &info), 0);
	return info.st_mode & 07777;
}

static struct store *init_store(struct fixture *fixture)
{
	struct store_options options = {.directory = fixture->store};
	struct store *store = NULL;
	lic_error error = {0};
	if (store_init(&options, &store, &error) != LIC_OK)
		fail_msg("init: %s", error.message);
	return store;
}

static void test_init_creates_store_with_modes(void **state)
{
	struct fixture *fixture = *state;
	umask(022); /* the store must not depend on the umask */
	struct store *store = init_store(fixture);
	char path[256];
	assert_int_equal(mode_of(fixture->store), 0700);
	snprintf(path, sizeof path, "%s/tenants", fixture->store);
	assert_int_equal(mode_of(path), 0700);
	snprintf(path, sizeof path, "%s/world.xml", fixture->store);
	assert_int_equal(mode_of(path), 0600);
	assert_int_equal(mode_of(fixture->kek), 0600); /* default KEK file: beside the store */
	assert_string_equal(store->world.kek_path, fixture->kek);

	struct admin_context context = {.store = store, .actor = "test"};
	lic_error error = {0};
	assert_int_equal(admin_tenant_add(&context, "contoso", KEY_ALGORITHM_RSA_2048, &error), LIC_OK);
	snprintf(path, sizeof path, "%s/tenants/contoso.xml", fixture->store);
	assert_int_equal(mode_of(path), 0600);
	snprintf(path, sizeof path, "%s/audit.log", fixture->store);
	assert_int_equal(mode_of(path), 0600);
	/* A second init into the same directory is refused. */
	struct store_options options = {.directory = fixture->store};
	struct store *again = NULL;
	assert_int_equal(store_init(&options, &again, &error), LIC_STATE);
	store_close(store);
}

static void test_reopen_and_private_key_round_trip(void **state)
{
	struct fixture *fixture = *state;
	struct store *store = init_store(fixture);
	struct admin_context context = {.store = store, .actor = "test"};
	lic_error error = {0};
	assert_int_equal(admin_tenant_add(&context, "contoso", KEY_ALGORITHM_RSA_2048, &error), LIC_OK);
	char store_id[STORE_ID_LENGTH];
	memcpy(store_id, store->world.store_id, sizeof store_id);
	store_close(store);

	struct store_options options = {.directory = fixture->store};
	assert_int_equal(store_open(&options, &store, &error), LIC_OK);
	assert_string_equal(store->world.store_id, store_id);
	struct tenant *tenant = NULL;
	assert_int_equal(store_load_tenant(store, "contoso", &tenant, &error), LIC_OK);
	assert_int_equal(tenant->version_count, 1);
	const struct key_version *version = tenant_version(tenant, 1);
	EVP_PKEY *key = NULL;
	assert_int_equal(store_open_private_key(store->kek, "contoso", version, &key, &error), LIC_OK);
	assert_int_equal(EVP_PKEY_get_bits(key), 2048);
	EVP_PKEY_free(key);

	/* The AAD binds the sealed key to its tenant and version number. */
	assert_int_not_equal(store_open_private_key(store->kek, "fabrikam", version, &key, &error), LIC_OK);
	struct key_version moved = *version;
	moved.number = 2;
	assert_int_not_equal(store_open_private_key(store->kek, "contoso", &moved, &key, &error), LIC_OK);
	/* One flipped byte of the sealed key is refused. */
	moved = *version;
	uint8_t *copy = malloc(version->sealed_private_key_length);
	memcpy(copy, version->sealed_private_key, version->sealed_private_key_length);
	copy[20] ^= 1;
	moved.sealed_private_key = copy;
	assert_int_not_equal(store_open_private_key(store->kek, "contoso", &moved, &key, &error), LIC_OK);
	assert_null(strstr(error.message, "BEGIN")); /* no key material in the sentence */
	free(copy);
	tenant_free(tenant);
	store_close(store);
}

static void test_wrong_kek_is_refused_before_reading(void **state)
{
	struct fixture *fixture = *state;
	store_close(init_store(fixture));
	char other[256];
	snprintf(other, sizeof other, "%s/other.kek", fixture->directory);
	struct kek *kek = NULL;
	lic_error error = {0};
	assert_int_equal(kek_create_file(other, &kek, &error), LIC_OK);
	kek_free(kek);
	struct store_options options = {.directory = fixture->store, .kek_file = other};
	struct store *store = NULL;
	assert_int_equal(store_open(&options, &store, &error), LIC_UNAUTHORIZED);
	assert_non_null(strstr(error.message, "check value"));
	assert_null(store);

	/* A KEK file readable by others is refused. */
	assert_int_equal(chmod(other, 0644), 0);
	assert_int_equal(kek_load_file(other, &kek, &error), LIC_IO);
	assert_non_null(strstr(error.message, "chmod 600"));
	/* A KEK file of the wrong length is refused. */
	assert_int_equal(chmod(other, 0600), 0);
	assert_int_equal(truncate(other, 31), 0);
	assert_int_equal(kek_load_file(other, &kek, &error), LIC_IO);
}

static void test_passphrase_store(void **state)
{
	struct fixture *fixture = *state;
	char passphrase[256], wrong[256];
	snprintf(passphrase, sizeof passphrase, "%s/pass", fixture->directory);
	snprintf(wrong, sizeof wrong, "%s/wrong", fixture->directory);
	FILE *file = fopen(passphrase, "w");
	fputs("correct horse battery staple\n", file);
	fclose(file);
	file = fopen(wrong, "w");
	fputs("incorrect horse\n", file);
	fclose(file);
	struct store_options options = {.directory = fixture->store, .passphrase_file = passphrase};
	struct store *store = NULL;
	lic_error error = {0};
	assert_int_equal(store_init(&options, &store, &error), LIC_OK);
	assert_int_equal(store->world.kek_source, KEK_SOURCE_PASSPHRASE);
	store_close(store);
	assert_int_equal(access(fixture->kek, F_OK), -1); /* no KEK file for a passphrase store */
	assert_int_equal(store_open(&options, &store, &error), LIC_OK);
	store_close(store);
	options.passphrase_file = wrong;
	assert_int_equal(store_open(&options, &store, &error), LIC_UNAUTHORIZED);
	options.passphrase_file = NULL;
	assert_int_equal(store_open(&options, &store, &error), LIC_USAGE);
}

static void test_missing_store_and_unknown_tenant(void **state)
{
	struct fixture *fixture = *state;
	struct store_options options = {.directory = fixture->store};
	struct store *store = NULL;
	lic_error error = {0};
	assert_int_equal(store_open(&options, &store, &error), LIC_IO);
	assert_non_null(strstr(error.message, "licensor init"));
	store = init_store(fixture);
	struct tenant *tenant = NULL;
	assert_int_equal(store_load_tenant(store, "nobody", &tenant, &error), LIC_UNKNOWN_TENANT);
	assert_int_equal(store_load_tenant(store, "../world", &tenant, &error), LIC_USAGE);
	store_close(store);
}

/* Serialises a one-version tenant, applies an edit, and expects the parser's verdict. */
static void expect_parse(const char *from, const char *to, lic_status expected)
{
	struct tenant *tenant = test_tenant_with_one_version("contoso", 1795000000);
	char *text = NULL;
	size_t length = 0;
	assert_int_equal(tenant_file_serialize(tenant, &text, &length, NULL), LIC_OK);
	char *edited = malloc(length + strlen(to) + 1);
	const char *at = strstr(text, from);
	if (at == NULL)
		fail_msg("'%s' not in the serialised tenant", from);
	size_t prefix = (size_t)(at - text);
	memcpy(edited, text, prefix);
	strcpy(edited + prefix, to);
	strcat(edited, at + strlen(from));
	struct tenant *parsed = NULL;
	lic_error error = {0};
	lic_status status = tenant_file_parse(edited, strlen(edited), "contoso", &parsed, &error);
	if (status != expected)
		fail_msg("edit '%s' → '%s': got %s (%s)", from, to, lic_status_code(status), error.message);
	tenant_free(parsed);
	free(edited);
	xmlFree(text);
	tenant_free(tenant);
}

static void test_damaged_tenant_files_are_refused(void **state)
{
	(void)state;
	expect_parse("Format=\"1\"", "Format=\"1\"", LIC_OK);
	expect_parse("Format=\"1\"", "Format=\"2\"", LIC_UNSUPPORTED_VERSION);
	expect_parse("Name=\"contoso\"", "Name=\"fabrikam\"", LIC_MALFORMED);
	expect_parse("KeyId=\"", "KeyId=\"0", LIC_MALFORMED);
	expect_parse("State=\"active\"", "State=\"sleeping\"", LIC_MALFORMED);
	expect_parse("Number=\"1\"", "Number=\"2\"", LIC_MALFORMED);
	expect_parse("Compromised=\"false\"", "Compromised=\"true\"",
		     LIC_MALFORMED); /* active + compromised */
	expect_parse("Algorithm=\"rsa-2048\"", "Algorithm=\"rsa-512\"", LIC_UNSUPPORTED_VERSION);
	expect_parse("<SealedPrivateKey>", "<SealedPrivateKey>!", LIC_MALFORMED);
	expect_parse("<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
		     "<?xml version=\"1.0\"?><!DOCTYPE Tenant [<!ENTITY x \"y\">]>", LIC_MALFORMED);
	expect_parse("</Tenant>", "", LIC_MALFORMED);
	expect_parse("xmlns=\"urn:licensor:v1\"", "xmlns=\"urn:other\"", LIC_MALFORMED);
	expect_parse("<SealedPrivateKey>", "<Extra/><SealedPrivateKey>", LIC_MALFORMED);
}

static void test_atomic_write_leaves_old_or_new(void **state)
{
	struct fixture *fixture = *state;
	char path[256];
	snprintf(path, sizeof path, "%s/file", fixture->directory);
	lic_error error = {0};
	assert_int_equal(file_write_atomic(path, "old", 3, 0600, 0, &error), LIC_OK);
	assert_int_equal(file_write_atomic(path, "newer", 5, 0600, 0, &error), LIC_OK);
	char *text = NULL;
	size_t length = 0;
	assert_int_equal(file_read_all(path, 100, &text, &length, &error), LIC_OK);
	assert_string_equal(text, "newer");
	free(text);
	assert_int_equal(file_read_all(path, 3, &text, &length, &error), LIC_TOO_LARGE);
	/* Writing into a missing directory fails and leaves no temporary file behind. */
	snprintf(path, sizeof path, "%s/missing/file", fixture->directory);
	assert_int_equal(file_write_atomic(path, "x", 1, 0600, 0, &error), LIC_IO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_init_creates_store_with_modes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_and_private_key_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_kek_is_refused_before_reading, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_passphrase_store, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_store_and_unknown_tenant, setup, teardown),
	    cmocka_unit_test(test_damaged_tenant_files_are_refused),
	    cmocka_unit_test_setup_teardown(test_atomic_write_leaves_old_or_new, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
