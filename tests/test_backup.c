/*
 * test_backup.c: the backup file and the restore merge rules of
 * keyring/backup.h, on in-memory tenants: a round trip keeps every tenant file
 * byte for byte (a BYOK version as its URI), a flipped byte is refused by the
 * digest, a backup of another world is refused before decryption, a record
 * altered under a recomputed digest is refused by its seal; a version the
 * store has and the backup lacks refuses the restore (named) unless forced,
 * a destroyed version stays destroyed, a later revocation stands, and PINs
 * in PKCS#11 URIs are redacted (a revocation in the same second as the
 * backup's last decision stands too). On a real store: a directory holding
 * only a copy of world.xml is rebuilt by a restore, and a refused restore
 * changes not one byte; a backup into the store directory is refused; a
 * backup whose audit line cannot be appended leaves no file; audit.head is
 * "absent" only when it does not exist.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>
#include <libxml/xmlmemory.h>
#include <openssl/sha.h>

#include "keyring/audit.h"
#include "keyring/backup.h"
#include "keyring/encoding.h"
#include "keyring/file_io.h"
#include "keyring/tenant_file.h"
#include "test_helpers.h"

static const char world_a[] = "11111111-2222-4333-8444-555555555555";
static const char world_b[] = "99999999-2222-4333-8444-555555555555";
static const int64_t t0 = 1800000000;

struct fixture {
	char directory[64];
	struct kek *kek;
};

static int setup(void **state)
{
	struct fixture *fixture = calloc(1, sizeof *fixture);
	snprintf(fixture->directory, sizeof fixture->directory, "/tmp/licensor-backup-XXXXXX");
	assert_non_null(mkdtemp(fixture->directory));
	char path[128];
	test_join_path(path, sizeof path, fixture->directory, "kek");
	assert_int_equal(kek_create_file(path, &fixture->kek, NULL), LIC_OK);
	*state = fixture;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fixture = *state;
	char command[128];
	snprintf(command, sizeof command, "rm -rf '%s'", fixture->directory);
	assert_int_equal(system(command), 0);
	kek_free(fixture->kek);
	free(fixture);
	return 0;
}

static void add_tenant(struct backup *backup, const struct tenant *tenant)
{
	char *text = NULL;
	size_t length = 0;
	lic_error error = {0};
	assert_int_equal(tenant_file_serialize(tenant, &text, &length, &error), LIC_OK);
	if (backup_add_tenant(backup, tenant->name, text, length, &error) != LIC_OK)
		fail_msg("add: %s", error.message);
	xmlFree(text);
}

/* acme: v1 retained, v2 active; byok: v1 a PKCS#11 key. */
static struct tenant *make_acme(void)
{
	struct tenant *tenant = test_tenant_with_one_version("acme", t0);
	assert_int_equal(test_rekey(tenant, 0, true, false, false, t0 + 10, NULL), LIC_OK);
	return tenant;
}

static struct tenant *make_byok(void)
{
	struct tenant *tenant = tenant_new("byok", t0);
	struct key_version version = test_fake_version("byok", 1);
	free(version.sealed_private_key);
	version.sealed_private_key = NULL;
	version.sealed_private_key_length = 0;
	version.origin = KEY_ORIGIN_BYOK;
	version.byok_uri = strdup("pkcs11:token=licensor;object=byok-1?pin-value=1234&module-name=softhsm2");
	version.state = LIC_KEY_STATE_ACTIVE;
	version.state_before_revoke = LIC_KEY_STATE_ACTIVE;
	version.created_at = t0;
	version.activated_at = t0;
	assert_int_equal(tenant_append_version(tenant, &version, NULL), LIC_OK);
	return tenant;
}

static struct backup *make_backup(const char *world)
{
	struct backup *backup = backup_new(world, t0 + 100);
	struct tenant *acme = make_acme(), *byok = make_byok();
	snprintf(backup->audit_head, sizeof backup->audit_head, "seq 7 sha256 %064d", 0);
	add_tenant(backup, acme);
	add_tenant(backup, byok);
	tenant_free(acme);
	tenant_free(byok);
	return backup;
}

static void encode(const struct fixture *fixture, const struct backup *backup, char **out, size_t *length)
{
	lic_error error = {0};
	if (backup_encode(backup, fixture->kek, out, length, &error) != LIC_OK)
		fail_msg("encode: %s", error.message);
}

static void test_round_trip(void **state)
{
	struct fixture *fixture = *state;
	struct backup *backup = make_backup(world_a), *decoded = NULL;
	char *data = NULL;
	size_t length = 0;
	lic_error error = {0};
	encode(fixture, backup, &data, &length);

	struct backup_header header;
	assert_int_equal(backup_read_header(data, length, &header, &error), LIC_OK);
	assert_string_equal(header.store_id, world_a);
	assert_int_equal(header.tenant_count, 2);
	assert_int_equal(header.version_count, 3);
	assert_int_equal(header.created_at, t0 + 100);
	/* No tenant name or key id travels in the clear. */
	assert_null(strstr(data, "acme"));
	assert_null(strstr(data, backup->tenants[0].tenant->versions[0].key_id_hex));
	assert_null(strstr(data, "pkcs11:"));

	if (backup_decode(data, length, world_a, fixture->kek, &decoded, &error) != LIC_OK)
		fail_msg("decode: %s", error.message);
	assert_int_equal(decoded->tenant_count, 2);
	assert_int_equal(decoded->version_count, 3);
	assert_string_equal(decoded->audit_head, backup->audit_head);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(decoded->tenants[i].name, backup->tenants[i].name);
		assert_int_equal(decoded->tenants[i].length, backup->tenants[i].length);
		assert_memory_equal(decoded->tenants[i].text, backup->tenants[i].text,
				    backup->tenants[i].length);
	}
	/* The BYOK version comes back as its PKCS#11 reference, with no key. */
	const struct key_version *byok = &decoded->tenants[1].tenant->versions[0];
	assert_string_equal(decoded->tenants[1].name, "byok");
	assert_int_equal(byok->origin, KEY_ORIGIN_BYOK);
	assert_null(byok->sealed_private_key);
	assert_string_equal(byok->byok_uri,
			    "pkcs11:token=licensor;object=byok-1?pin-value=1234&module-name=softhsm2");
	backup_free(decoded);
	free(data);
	backup_free(backup);
}

static void test_flipped_byte_refused_by_digest(void **state)
{
	struct fixture *fixture = *state;
	struct backup *backup = make_backup(world_a), *decoded = NULL;
	char *data = NULL;
	size_t length = 0;
	encode(fixture, backup, &data, &length);
	size_t positions[] = {10, length / 2, length - 30};
	for (size_t i = 0; i < 3; i++) {
		lic_error error = {0};
		data[positions[i]] ^= 0x01;
		assert_int_equal(backup_decode(data, length, world_a, fixture->kek, &decoded, &error),
				 LIC_MALFORMED);
		assert_non_null(strstr(error.message, "damaged"));
		assert_null(decoded);
		data[positions[i]] ^= 0x01;
	}
	lic_error error = {0};
	assert_int_equal(backup_decode(data, length - 1, world_a, fixture->kek, &decoded, &error),
			 LIC_MALFORMED);
	assert_int_equal(backup_decode(data, length, world_a, fixture->kek, &decoded, &error), LIC_OK);
	backup_free(decoded);
	free(data);
	backup_free(backup);
}

/* Recomputes the digest line after an edit, as a forger would. */
static void redigest(char *data, size_t length)
{
	size_t start = length - 1 - (7 + 64);
	uint8_t digest[SHA256_DIGEST_LENGTH];
	char hex[65];
	SHA256((const uint8_t *)data, start, digest);
	hex_encode(digest, sizeof digest, hex);
	memcpy(data + start + 7, hex, 64);
}

static void test_other_world_refused_and_seal_checked(void **state)
{
	struct fixture *fixture = *state;
	struct backup *backup = make_backup(world_a), *decoded = NULL;
	char *data = NULL;
	size_t length = 0;
	lic_error error = {0};
	encode(fixture, backup, &data, &length);
	assert_int_equal(backup_decode(data, length, world_b, fixture->kek, &decoded, &error), LIC_STATE);
	assert_non_null(strstr(error.message, world_a));
	assert_non_null(strstr(error.message, world_b));
	assert_null(decoded);

	/* A header rewritten to another world, digest recomputed: the seal refuses it. */
	char *id = strstr(data, world_a);
	assert_non_null(id);
	memcpy(id, world_b, strlen(world_b));
	redigest(data, length);
	assert_int_equal(backup_decode(data, length, world_b, fixture->kek, &decoded, &error), LIC_MALFORMED);
	assert_non_null(strstr(error.message, "integrity"));
	memcpy(id, world_a, strlen(world_a));
	redigest(data, length);

	/* Two records swapped, digest recomputed: each record is bound to its place. */
	char *line2 = strchr(data, '\n') + 1;
	char *line3 = strchr(line2, '\n') + 1;
	char *line4 = strchr(line3, '\n') + 1;
	char *line5 = strchr(line4, '\n') + 1;
	size_t length3 = (size_t)(line4 - line3), length4 = (size_t)(line5 - line4);
	char *copy = malloc(length3 + length4);
	memcpy(copy, line4, length4);
	memcpy(copy + length4, line3, length3);
	memcpy(line3, copy, length3 + length4);
	free(copy);
	redigest(data, length);
	assert_int_equal(backup_decode(data, length, world_a, fixture->kek, &decoded, &error), LIC_MALFORMED);
	assert_null(decoded);
	free(data);
	backup_free(backup);
}

static void test_newer_version_in_store_refused_unless_forced(void **state)
{
	(void)state;
	struct tenant *backed_up = make_acme();
	struct tenant *stored = make_acme();
	assert_int_equal(test_rekey(stored, 0, true, false, false, t0 + 500, NULL), LIC_OK);
	assert_int_equal(stored->version_count, 3);
	const char *lost_key_id = stored->versions[2].key_id_hex;

	struct restore_plan *plan = restore_plan_new();
	lic_error error = {0};
	if (restore_plan_add(plan, stored, backed_up, &error) != LIC_OK)
		fail_msg("plan: %s", error.message);
	assert_int_equal(plan->lost_count, 1);
	assert_int_equal(restore_plan_check(plan, false, &error), LIC_STATE);
	char expected[96];
	snprintf(expected, sizeof expected, "tenant acme version 3 (key id %s)", lost_key_id);
	assert_non_null(strstr(error.message, expected));
	assert_non_null(strstr(error.message, "--force"));
	/* With force the backup's keyring is what is written: version 3 dropped. */
	assert_int_equal(restore_plan_check(plan, true, &error), LIC_OK);
	assert_int_equal(plan->tenant_count, 1);
	assert_int_equal(plan->tenants[0].action, RESTORE_REPLACE);
	assert_int_equal(plan->tenants[0].merged->version_count, 2);
	assert_int_equal(plan->tenants[0].merged->versions[1].state, LIC_KEY_STATE_ACTIVE);
	restore_plan_free(plan);

	/* The same keyring in both: nothing to write, nothing lost. */
	plan = restore_plan_new();
	assert_int_equal(restore_plan_add(plan, backed_up, backed_up, &error), LIC_OK);
	assert_int_equal(plan->lost_count, 0);
	assert_int_equal(plan->tenants[0].action, RESTORE_UNCHANGED);
	assert_int_equal(restore_plan_check(plan, false, &error), LIC_OK);
	restore_plan_free(plan);

	/* Absent from the store: written. */
	plan = restore_plan_new();
	assert_int_equal(restore_plan_add(plan, NULL, backed_up, &error), LIC_OK);
	assert_int_equal(plan->tenants[0].action, RESTORE_WRITE_NEW);
	assert_int_equal(plan->version_count, 2);
	restore_plan_free(plan);
	tenant_free(stored);
	tenant_free(backed_up);
}

static void test_destroyed_stays_destroyed(void **state)
{
	(void)state;
	struct tenant *backed_up = make_acme();
	struct tenant *stored = make_acme();
	lic_error error = {0};
	assert_non_null(backed_up->versions[0].sealed_private_key);
	assert_int_equal(lifecycle_destroy(stored, 1, true, t0 + 600, &error), LIC_OK);
	struct restore_plan *plan = restore_plan_new();
	if (restore_plan_add(plan, stored, backed_up, &error) != LIC_OK)
		fail_msg("plan: %s", error.message);
	assert_int_equal(restore_plan_check(plan, false, &error), LIC_OK);
	const struct key_version *version = &plan->tenants[0].merged->versions[0];
	assert_int_equal(version->state, LIC_KEY_STATE_DESTROYED);
	assert_null(version->sealed_private_key);
	assert_int_equal(version->destroyed_at, t0 + 600);
	assert_int_equal(plan->tenants[0].action, RESTORE_UNCHANGED);
	assert_int_equal(plan->note_count, 1);
	assert_int_equal(plan->notes[0].kind, RESTORE_NOTE_KEPT_DESTROYED);
	assert_int_equal(plan->notes[0].version, 1);
	restore_plan_free(plan);
	tenant_free(stored);
	tenant_free(backed_up);
}

static void test_later_revocation_stands_earlier_does_not(void **state)
{
	(void)state;
	struct tenant *backed_up = make_acme();
	struct tenant *stored = make_acme();
	lic_error error = {0};
	assert_int_equal(lifecycle_revoke(stored, 1, true, t0 + 700, &error), LIC_OK);
	struct restore_plan *plan = restore_plan_new();
	assert_int_equal(restore_plan_add(plan, stored, backed_up, &error), LIC_OK);
	assert_int_equal(plan->tenants[0].merged->versions[0].state, LIC_KEY_STATE_REVOKED);
	assert_int_equal(plan->tenants[0].merged->versions[0].revoked_at, t0 + 700);
	assert_int_equal(plan->notes[0].kind, RESTORE_NOTE_KEPT_REVOKED);
	restore_plan_free(plan);

	/* The backup reinstated it after the store's revocation: the backup's decision is later. */
	struct tenant *reinstated = make_acme();
	assert_int_equal(lifecycle_revoke(reinstated, 1, true, t0 + 300, &error), LIC_OK);
	assert_int_equal(lifecycle_reinstate(reinstated, 1, t0 + 800, &error), LIC_OK);
	tenant_free(stored);
	stored = make_acme();
	assert_int_equal(lifecycle_revoke(stored, 1, true, t0 + 300, &error), LIC_OK);
	plan = restore_plan_new();
	assert_int_equal(restore_plan_add(plan, stored, reinstated, &error), LIC_OK);
	assert_int_equal(plan->tenants[0].merged->versions[0].state, LIC_KEY_STATE_RETAINED);
	assert_int_equal(plan->note_count, 0);
	restore_plan_free(plan);
	tenant_free(reinstated);
	tenant_free(stored);
	tenant_free(backed_up);
}

/* A revoke in the same second as the backup's last decision on that version:
 * the tie keeps the decision that removes access. */
static void test_revocation_in_the_same_second_stands(void **state)
{
	(void)state;
	struct tenant *backed_up = make_acme();
	struct tenant *stored = make_acme();
	lic_error error = {0};
	/* make_acme retains version 1 at t0 + 10: the backup's last decision on it. */
	assert_int_equal(backed_up->versions[0].retained_at, t0 + 10);
	assert_int_equal(lifecycle_revoke(stored, 1, true, t0 + 10, &error), LIC_OK);
	struct restore_plan *plan = restore_plan_new();
	if (restore_plan_add(plan, stored, backed_up, &error) != LIC_OK)
		fail_msg("plan: %s", error.message);
	assert_int_equal(plan->tenants[0].merged->versions[0].state, LIC_KEY_STATE_REVOKED);
	assert_int_equal(plan->tenants[0].merged->versions[0].revoked_at, t0 + 10);
	assert_int_equal(plan->note_count, 1);
	assert_int_equal(plan->notes[0].kind, RESTORE_NOTE_KEPT_REVOKED);
	restore_plan_free(plan);
	tenant_free(stored);
	tenant_free(backed_up);
}

/* A revoke that aborted a rollout after the backup: the version stays revoked
 * and the rollout keeps the store's "aborted", a keyring that satisfies every
 * invariant (a running rollout to a revoked version would not). */
static void test_revocation_mid_rollout_keeps_the_aborted_rollout(void **state)
{
	(void)state;
	struct tenant *backed_up = test_tenant_with_one_version("acme", t0);
	assert_int_equal(test_rekey(backed_up, 7 * 86400, false, false, false, t0 + 10, NULL), LIC_OK);
	struct tenant *stored = test_tenant_with_one_version("acme", t0);
	assert_int_equal(test_rekey(stored, 7 * 86400, false, false, false, t0 + 10, NULL), LIC_OK);
	lic_error error = {0};
	assert_int_equal(lifecycle_revoke(stored, 2, false, t0 + 900, &error), LIC_OK);
	assert_int_equal(stored->rollout.outcome, ROLLOUT_ABORTED);
	assert_int_equal(backed_up->rollout.outcome, ROLLOUT_RUNNING);
	struct restore_plan *plan = restore_plan_new();
	if (restore_plan_add(plan, stored, backed_up, &error) != LIC_OK)
		fail_msg("plan: %s", error.message);
	const struct tenant *merged = plan->tenants[0].merged;
	assert_int_equal(merged->versions[1].state, LIC_KEY_STATE_REVOKED);
	assert_int_equal(merged->versions[0].state, LIC_KEY_STATE_ACTIVE);
	assert_int_equal(merged->rollout.outcome, ROLLOUT_ABORTED);
	assert_int_equal(plan->tenants[0].action, RESTORE_UNCHANGED);
	restore_plan_free(plan);
	tenant_free(stored);
	tenant_free(backed_up);
}

static void test_byok_note_redacts_pin(void **state)
{
	(void)state;
	struct tenant *byok = make_byok();
	struct restore_plan *plan = restore_plan_new();
	lic_error error = {0};
	assert_int_equal(restore_plan_add(plan, NULL, byok, &error), LIC_OK);
	assert_int_equal(plan->note_count, 1);
	assert_int_equal(plan->notes[0].kind, RESTORE_NOTE_BYOK);
	assert_string_equal(plan->notes[0].uri,
			    "pkcs11:token=licensor;object=byok-1?pin-value=***&module-name=softhsm2");
	assert_null(strstr(plan->notes[0].uri, "1234"));
	restore_plan_free(plan);
	tenant_free(byok);

	char out[128];
	backup_redact_uri("pkcs11:token=a;pin-value=secret;object=b", out, sizeof out);
	assert_string_equal(out, "pkcs11:token=a;pin-value=***;object=b");
	backup_redact_uri("pkcs11:token=a", out, sizeof out);
	assert_string_equal(out, "pkcs11:token=a");
	backup_redact_uri("pkcs11:x?pin-value=9", out, sizeof out);
	assert_string_equal(out, "pkcs11:x?pin-value=***");
}

static void test_key_id_with_two_numbers_refused(void **state)
{
	(void)state;
	struct tenant *backed_up = make_acme();
	struct tenant *stored = tenant_new("acme", t0);
	/* The store's version 1 is the backup's version 2. */
	struct key_version version = test_fake_version("acme", 2);
	version.state = LIC_KEY_STATE_ACTIVE;
	version.state_before_revoke = LIC_KEY_STATE_ACTIVE;
	version.created_at = t0;
	version.activated_at = t0;
	assert_int_equal(tenant_append_version(stored, &version, NULL), LIC_OK);
	struct restore_plan *plan = restore_plan_new();
	lic_error error = {0};
	assert_int_equal(restore_plan_add(plan, stored, backed_up, &error), LIC_STATE);
	assert_non_null(strstr(error.message, "version 1 in the store but version 2 in the backup"));
	assert_int_equal(plan->tenant_count, 0);
	restore_plan_free(plan);
	tenant_free(stored);
	tenant_free(backed_up);
}

static char *read_file(const char *path, size_t *length)
{
	char *data = NULL;
	lic_error error = {0};
	if (file_read_all(path, BACKUP_FILE_MAX_BYTES, &data, length, &error) != LIC_OK)
		fail_msg("read %s: %s", path, error.message);
	return data;
}

static void copy_file(const char *from, const char *to)
{
	size_t length = 0;
	char *data = read_file(from, &length);
	assert_int_equal(file_write_atomic(to, data, length, 0600, 0, NULL), LIC_OK);
	free(data);
}

/* The store path of DESIGN.md §4: a new directory holding only a copy of
 * world.xml is an empty store of that world, and a restore rebuilds it. */
static void test_store_rebuilt_from_world_xml(void **state)
{
	struct fixture *fixture = *state;
	char directory[128], rebuilt[128], path[256], other[256], backup_path[128];
	lic_error error = {0};
	test_join_path(directory, sizeof directory, fixture->directory, "store");
	test_join_path(rebuilt, sizeof rebuilt, fixture->directory, "rebuilt");
	test_join_path(backup_path, sizeof backup_path, fixture->directory, "store.backup");
	struct store_options options = {.directory = directory};
	struct store *store = NULL, *copy = NULL;
	assert_int_equal(store_init(&options, &store, &error), LIC_OK);
	struct admin_context context = {.store = store, .actor = "test"};
	assert_int_equal(admin_tenant_add(&context, "acme", KEY_ALGORITHM_RSA_2048, &error), LIC_OK);
	assert_int_equal(admin_tenant_add(&context, "beta", KEY_ALGORITHM_RSA_2048, &error), LIC_OK);
	struct backup_summary summary;
	if (backup_store(&context, backup_path, NULL, NULL, &summary, &error) != LIC_OK)
		fail_msg("backup: %s", error.message);
	assert_int_equal(summary.tenant_count, 2);
	assert_int_equal(summary.version_count, 2);
	struct stat info;
	assert_int_equal(stat(backup_path, &info), 0);
	assert_int_equal(info.st_mode & 0777, 0600);

	assert_int_equal(mkdir(rebuilt, 0755), 0);
	test_join_path(path, sizeof path, directory, "world.xml");
	test_join_path(other, sizeof other, rebuilt, "world.xml");
	copy_file(path, other);
	struct store_options rebuilt_options = {.directory = rebuilt};
	if (store_open(&rebuilt_options, &copy, &error) != LIC_OK)
		fail_msg("open the world.xml-only store: %s", error.message);
	size_t length = 0;
	char *data = read_file(backup_path, &length);
	struct admin_context copy_context = {.store = copy, .actor = "test"};
	struct restore_plan *plan = NULL;
	if (restore_store(&copy_context, data, length, false, NULL, NULL, &plan, &error) != LIC_OK)
		fail_msg("restore: %s", error.message);
	assert_int_equal(plan->tenant_count, 2);
	assert_int_equal(plan->tenants[0].action, RESTORE_WRITE_NEW);
	restore_plan_free(plan);
	assert_int_equal(stat(rebuilt, &info), 0);
	assert_int_equal(info.st_mode & 0777, 0700);
	test_join_path(other, sizeof other, rebuilt, "tenants");
	assert_int_equal(stat(other, &info), 0);
	assert_int_equal(info.st_mode & 0777, 0700);
	/* Byte for byte the original tenant files, the revision aside; and the keys open. */
	for (int i = 0; i < 2; i++) {
		const char *name = i == 0 ? "acme" : "beta";
		struct tenant *original = NULL, *restored = NULL;
		assert_int_equal(store_load_tenant(store, name, &original, &error), LIC_OK);
		assert_int_equal(store_load_tenant(copy, name, &restored, &error), LIC_OK);
		assert_int_equal(restored->version_count, original->version_count);
		assert_memory_equal(restored->versions[0].key_id, original->versions[0].key_id,
				    KEY_ID_LENGTH);
		EVP_PKEY *key = NULL;
		assert_int_equal(
		    store_open_private_key(copy->kek, name, &restored->versions[0], &key, &error), LIC_OK);
		EVP_PKEY_free(key);
		tenant_free(original);
		tenant_free(restored);
	}
	struct audit_report report;
	assert_int_equal(audit_verify(rebuilt, &report, &error), LIC_OK);
	assert_int_equal(report.lines, 1);

	/* A rekey after the backup: refused, and not one byte of the store changes. */
	struct rekey_request request = {.algorithm = KEY_ALGORITHM_RSA_2048, .immediate = true};
	assert_int_equal(admin_rekey(&context, "acme", &request, NULL, &error), LIC_OK);
	test_join_path(path, sizeof path, directory, "tenants/acme.xml");
	size_t before_length = 0, log_length = 0, after_length = 0, log_after_length = 0;
	char *before = read_file(path, &before_length);
	test_join_path(other, sizeof other, directory, "audit.log");
	char *log_before = read_file(other, &log_length);
	plan = NULL;
	assert_int_equal(restore_store(&context, data, length, false, NULL, NULL, &plan, &error), LIC_STATE);
	assert_null(plan);
	assert_non_null(strstr(error.message, "tenant acme version 2 (key id"));
	char *after = read_file(path, &after_length);
	char *log_after = read_file(other, &log_after_length);
	assert_int_equal(after_length, before_length);
	assert_memory_equal(after, before, before_length);
	assert_int_equal(log_after_length, log_length);
	free(before);
	free(after);
	free(log_before);
	free(log_after);
	free(data);
	store_close(copy);
	store_close(store);
}

static void assert_same_file(const char *path, const char *expected, size_t expected_length)
{
	size_t length = 0;
	char *data = read_file(path, &length);
	assert_int_equal(length, expected_length);
	assert_memory_equal(data, expected, length);
	free(data);
}

/* A store with tenant acme in fixture/store. */
static struct store *make_store(const struct fixture *fixture, char *directory, size_t size)
{
	struct store *store = NULL;
	lic_error error = {0};
	test_join_path(directory, size, fixture->directory, "store");
	struct store_options options = {.directory = directory};
	assert_int_equal(store_init(&options, &store, &error), LIC_OK);
	struct admin_context context = {.store = store, .actor = "test"};
	assert_int_equal(admin_tenant_add(&context, "acme", KEY_ALGORITHM_RSA_2048, &error), LIC_OK);
	return store;
}

/* No output anywhere in the store directory: world.xml, the audit log and
 * its head, a new file at its top, tenants/, a subdirectory, the store reached
 * through a symlink or a relative path. Each is refused (USAGE) and changes
 * nothing; a file next to the store is fine. */
static void test_backup_into_the_store_refused(void **state)
{
	struct fixture *fixture = *state;
	char directory[128], path[256], link[128], world[256], log[256], head[256];
	lic_error error = {0};
	struct store *store = make_store(fixture, directory, sizeof directory);
	struct admin_context context = {.store = store, .actor = "test"};
	test_join_path(world, sizeof world, directory, "world.xml");
	test_join_path(log, sizeof log, directory, "audit.log");
	test_join_path(head, sizeof head, directory, "audit.head");
	test_join_path(path, sizeof path, directory, "sub");
	assert_int_equal(mkdir(path, 0700), 0);
	test_join_path(link, sizeof link, fixture->directory, "link");
	assert_int_equal(symlink(directory, link), 0);
	size_t world_length = 0, log_length = 0, head_length = 0;
	char *world_before = read_file(world, &world_length);
	char *log_before = read_file(log, &log_length);
	char *head_before = read_file(head, &head_length);

	const char *inside[] = {"world.xml",
				"audit.log",
				"audit.head",
				"new.backup",
				"tenants/x.backup",
				"sub/new.backup",
				"tenants/../sub/../new.backup"};
	struct stat info;
	for (size_t i = 0; i < sizeof inside / sizeof inside[0]; i++) {
		for (int through_link = 0; through_link < 2; through_link++) {
			test_join_path(path, sizeof path, through_link ? link : directory, inside[i]);
			memset(&error, 0, sizeof error);
			if (backup_store(&context, path, NULL, NULL, NULL, &error) != LIC_USAGE)
				fail_msg("backup --out %s: not refused (%s)", path, error.message);
			assert_non_null(strstr(error.message, "inside the store directory"));
		}
	}
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(directory), 0);
	assert_int_equal(backup_store(&context, "audit.log", NULL, NULL, NULL, &error), LIC_USAGE);
	assert_int_equal(chdir(cwd), 0);

	assert_same_file(world, world_before, world_length);
	assert_same_file(log, log_before, log_length);
	assert_same_file(head, head_before, head_length);
	test_join_path(path, sizeof path, directory, "new.backup");
	assert_int_equal(stat(path, &info), -1);
	test_join_path(path, sizeof path, directory, "sub/new.backup");
	assert_int_equal(stat(path, &info), -1);

	/* Next to the store (a name that starts like the store's) is fine. */
	snprintf(path, sizeof path, "%s.backup", directory);
	if (backup_store(&context, path, NULL, NULL, NULL, &error) != LIC_OK)
		fail_msg("backup next to the store: %s", error.message);
	assert_int_equal(stat(path, &info), 0);
	free(world_before);
	free(log_before);
	free(head_before);
	store_close(store);
}

static void break_audit_head(void *context, size_t done, size_t total)
{
	(void)done;
	(void)total;
	assert_int_equal(file_write_atomic((const char *)context, "garbage\n", 8, 0600, 0, NULL), LIC_OK);
}

/* The audit line cannot be appended after the backup file was written: the
 * file is removed, so no backup exists that the audit log does not record. */
static void test_backup_removed_when_audit_append_fails(void **state)
{
	struct fixture *fixture = *state;
	char directory[128], head[256], path[256];
	lic_error error = {0};
	struct store *store = make_store(fixture, directory, sizeof directory);
	struct admin_context context = {.store = store, .actor = "test"};
	test_join_path(head, sizeof head, directory, "audit.head");
	test_join_path(path, sizeof path, fixture->directory, "x.backup");
	/* The head is damaged after the checks, while the tenants are read. */
	assert_int_not_equal(backup_store(&context, path, break_audit_head, head, NULL, &error), LIC_OK);
	assert_non_null(strstr(error.message, "audit.head"));
	struct stat info;
	assert_int_equal(stat(path, &info), -1);
	assert_int_equal(errno, ENOENT);
	store_close(store);
}

/* audit.head is "absent" only when it does not exist, whatever errno held before. */
static void test_read_audit_head(void **state)
{
	struct fixture *fixture = *state;
	char head[BACKUP_AUDIT_HEAD_MAX], path[128];
	lic_error error = {0};
	test_join_path(path, sizeof path, fixture->directory, "audit.head");
	errno = EACCES;
	assert_int_equal(backup_read_audit_head(fixture->directory, head, &error), LIC_OK);
	assert_string_equal(head, "");

	char line[BACKUP_AUDIT_HEAD_MAX + 64];
	snprintf(line, sizeof line, "seq 3 sha256 %064d\n", 0);
	assert_int_equal(file_write_atomic(path, line, strlen(line), 0600, 0, NULL), LIC_OK);
	assert_int_equal(backup_read_audit_head(fixture->directory, head, &error), LIC_OK);
	line[strlen(line) - 1] = '\0';
	assert_string_equal(head, line);

	memset(line, 'x', sizeof line);
	assert_int_equal(file_write_atomic(path, line, sizeof line, 0600, 0, NULL), LIC_OK);
	errno = ENOENT; /* left over from an earlier call */
	memset(&error, 0, sizeof error);
	assert_int_equal(backup_read_audit_head(fixture->directory, head, &error), LIC_TOO_LARGE);
	assert_non_null(strstr(error.message, "audit.head"));

	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	errno = ENOENT;
	memset(&error, 0, sizeof error);
	assert_int_equal(backup_read_audit_head(fixture->directory, head, &error), LIC_IO);
	assert_non_null(strstr(error.message, "audit.head"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flipped_byte_refused_by_digest, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_other_world_refused_and_seal_checked, setup, teardown),
	    cmocka_unit_test(test_newer_version_in_store_refused_unless_forced),
	    cmocka_unit_test(test_destroyed_stays_destroyed),
	    cmocka_unit_test(test_later_revocation_stands_earlier_does_not),
	    cmocka_unit_test(test_revocation_in_the_same_second_stands),
	    cmocka_unit_test(test_revocation_mid_rollout_keeps_the_aborted_rollout),
	    cmocka_unit_test(test_byok_note_redacts_pin),
	    cmocka_unit_test(test_key_id_with_two_numbers_refused),
	    cmocka_unit_test_setup_teardown(test_store_rebuilt_from_world_xml, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backup_into_the_store_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backup_removed_when_audit_append_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_audit_head, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
