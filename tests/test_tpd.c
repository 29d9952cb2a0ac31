/*
 * test_tpd.c: the TPD exchange (keyring/tpd.h) in memory: the round trip of
 * the recipient key files, TPD and ExportedTPD and the import into another
 * tenant under another KEK; and the refusals: a wrong password, a flipped
 * ciphertext byte, a changed Guid or Tenant attribute, a changed Compromised,
 * State or CreatedAt attribute, a private key with the right (n, e) but a
 * wrong d, swapped key entries,
 * files of two different exchanges, a BYOK version (NOT_EXPORTABLE), absurd
 * scrypt parameters, and a second import of the same key ids (STATE, the
 * tenant unchanged). And the seeds of the fuzz target (tests/fuzz/fuzz_tpd.c):
 * they must open with the fixture key and password of tests/fuzz/tpd_fixture.h
 * (a stale seed fails here); with LICENSOR_WRITE_TPD_SEEDS=DIR set, this
 * program first writes new seeds into DIR, then checks those.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "keyring/encoding.h"
#include "keyring/file_io.h"
#include "keyring/secure_memory.h"
#include "keyring/store.h"
#include "keyring/tpd.h"
#include "fuzz/tpd_fixture.h"
#include "test_helpers.h"

#define NOW 1796000000 /* 2026-11-30 */

static const struct scrypt_parameters fast_scrypt = {.n = 1u << 10, .r = 8, .p = 1};

struct world_state {
	struct kek *kek;       /* the exporting store's KEK */
	struct kek *other_kek; /* the importing store's KEK */
	struct tenant *tenant; /* contoso: v1 retained, v2 active */
	char guid[TPD_GUID_LENGTH];
	char *public_text, *private_text;
	size_t public_length, private_length;
	EVP_PKEY *recipient_public, *recipient_private;
	char *tpd;
	size_t tpd_length;
	char *exported;
	size_t exported_length;
	char *password;
};

static struct kek *make_kek(const char *passphrase)
{
	uint8_t salt[KEK_SALT_LENGTH] = {1, 2, 3};
	struct kek *kek = NULL;
	assert_int_equal(kek_from_passphrase(passphrase, strlen(passphrase), salt, &fast_scrypt, &kek, NULL),
			 LIC_OK);
	return kek;
}

static void add_version(struct tenant *tenant, const struct kek *kek, lic_key_state state)
{
	struct key_version version;
	uint32_t number = (uint32_t)tenant->version_count + 1;
	assert_int_equal(
	    store_generate_version(kek, tenant->name, number, KEY_ALGORITHM_RSA_2048, &version, NULL),
	    LIC_OK);
	version.state = state;
	version.state_before_revoke = state;
	version.created_at = NOW - 1000 + number;
	version.activated_at = NOW - 1000 + number;
	if (state == LIC_KEY_STATE_RETAINED)
		version.retained_at = NOW - 10;
	assert_int_equal(tenant_append_version(tenant, &version, NULL), LIC_OK);
}

static int group_setup(void **state)
{
	secure_memory_init();
	struct world_state *w = calloc(1, sizeof *w);
	lic_error error = {0};
	char guid[TPD_GUID_LENGTH];
	w->kek = make_kek("exporting store");
	w->other_kek = make_kek("importing store");
	w->tenant = tenant_new("contoso", NOW - 2000);
	add_version(w->tenant, w->kek, LIC_KEY_STATE_RETAINED);
	add_version(w->tenant, w->kek, LIC_KEY_STATE_ACTIVE);
	/* Version 1 is marked compromised: the mark travels and is authenticated. */
	tenant_version(w->tenant, 1)->compromised = true;
	tenant_version(w->tenant, 1)->compromised_at = NOW - 5;
	assert_int_equal(tpd_recipient_key_create(KEY_ALGORITHM_RSA_2048, w->guid, &w->public_text,
						  &w->public_length, &w->private_text, &w->private_length,
						  &error),
			 LIC_OK);
	assert_int_equal(
	    tpd_public_key_parse(w->public_text, w->public_length, guid, &w->recipient_public, &error),
	    LIC_OK);
	assert_string_equal(guid, w->guid);
	assert_int_equal(
	    tpd_private_key_parse(w->private_text, w->private_length, guid, &w->recipient_private, &error),
	    LIC_OK);
	assert_string_equal(guid, w->guid);
	char *versions = NULL;
	assert_int_equal(tpd_export(w->tenant, w->kek, w->guid, w->recipient_public, NOW, &w->tpd,
				    &w->tpd_length, &versions, &error),
			 LIC_OK);
	assert_string_equal(versions, "1,2");
	free(versions);
	struct tpd_contents *contents = NULL;
	assert_int_equal(tpd_unwrap(w->tpd, w->tpd_length, w->recipient_private, w->guid, &contents, &error),
			 LIC_OK);
	assert_int_equal(tpd_exported_build(contents, &fast_scrypt, &w->password, &w->exported,
					    &w->exported_length, &error),
			 LIC_OK);
	tpd_contents_free(contents);
	*state = w;
	return 0;
}

static int group_teardown(void **state)
{
	struct world_state *w = *state;
	kek_free(w->kek);
	kek_free(w->other_kek);
	tenant_free(w->tenant);
	free(w->public_text);
	secure_free(w->private_text, w->private_length + 1);
	EVP_PKEY_free(w->recipient_public);
	EVP_PKEY_free(w->recipient_private);
	free(w->tpd);
	free(w->exported);
	secure_free(w->password, TPD_PASSWORD_LENGTH + 1);
	free(w);
	return 0;
}

/* A copy of text with the first occurrence of `from` (which must occur) replaced by `to`. */
static char *replace_once(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	assert_non_null(at);
	size_t before = (size_t)(at - text), from_length = strlen(from), to_length = strlen(to);
	size_t total = strlen(text) - from_length + to_length;
	char *out = malloc(total + 1);
	memcpy(out, text, before);
	memcpy(out + before, to, to_length);
	strcpy(out + before + to_length, at + from_length);
	return out;
}

/* A copy with one base64 character of the n-th (0-based) element `name` changed. */
static char *flip_in_element(const char *text, const char *name, int n)
{
	char open[64];
	snprintf(open, sizeof open, "<%s>", name);
	char *out = strdup(text);
	char *at = out;
	for (int i = 0; i <= n; i++) {
		at = strstr(at, open);
		assert_non_null(at);
		at += strlen(open);
	}
	at[40] = at[40] == 'A' ? 'B' : 'A';
	return out;
}

/* The private key of version `number` of a tenant as PKCS#8 bytes (secure memory). */
static void private_der_of(const struct tenant *tenant, const struct kek *kek, uint32_t number, uint8_t **der,
			   size_t *length)
{
	EVP_PKEY *key = NULL;
	assert_int_equal(
	    store_open_private_key(kek, tenant->name, tenant_version(tenant, number), &key, NULL), LIC_OK);
	assert_int_equal(key_material_private_der(key, der, length, NULL), LIC_OK);
	EVP_PKEY_free(key);
}

static struct tpd_contents *open_exported(struct world_state *w, const char *xml, lic_status expected)
{
	struct tpd_contents *contents = NULL;
	lic_error error = {0};
	assert_int_equal(
	    tpd_exported_open(xml, strlen(xml), w->password, TPD_PASSWORD_LENGTH, w->guid, &contents, &error),
	    expected);
	if (expected != LIC_OK)
		assert_null(contents);
	return contents;
}

static void test_guids_and_file_names(void **state)
{
	(void)state;
	char a[TPD_GUID_LENGTH], b[TPD_GUID_LENGTH], named[TPD_GUID_LENGTH];
	assert_int_equal(tpd_guid_new(a, NULL), LIC_OK);
	assert_int_equal(tpd_guid_new(b, NULL), LIC_OK);
	assert_true(tpd_guid_valid(a));
	assert_string_not_equal(a, b);
	assert_int_equal(a[14], '4');
	assert_false(tpd_guid_valid("06EFCD3B-482C-471E-ABC1-FC193F6C730C"));
	assert_false(tpd_guid_valid("06efcd3b-482c-171e-abc1-fc193f6c730c"));
	char path[128];
	snprintf(path, sizeof path, "/x/y/TPD-%s.xml", a);
	assert_int_equal(tpd_check_file_name(path, "TPD-", ".xml", a, NULL), LIC_OK);
	assert_int_equal(tpd_guid_of_file_name(path, "TPD-", ".xml", named, NULL), LIC_OK);
	assert_string_equal(named, a);
	lic_error error = {0};
	assert_int_equal(tpd_check_file_name(path, "TPD-", ".xml", b, &error), LIC_USAGE);
	assert_non_null(strstr(error.message, b));
	assert_int_equal(tpd_check_file_name("/x/tpd.xml", "TPD-", ".xml", a, NULL), LIC_USAGE);
	assert_int_equal(tpd_check_file_name(path, "ExportedTPD-", ".xml", a, NULL), LIC_USAGE);
}

static void test_password_line(void **state)
{
	struct world_state *w = *state;
	char line[TPD_PASSWORD_LINE_LENGTH + 1], other[TPD_GUID_LENGTH];
	const char *password = NULL;
	size_t length = 0;
	lic_error error = {0};
	tpd_password_line(w->guid, w->password, line);
	assert_int_equal(strlen(line), TPD_PASSWORD_LINE_LENGTH);
	assert_int_equal(line[36], ':');
	assert_int_equal(line[TPD_PASSWORD_LINE_LENGTH - 1], '\n');
	assert_int_equal(
	    tpd_password_line_parse(line, TPD_PASSWORD_LINE_LENGTH - 1, w->guid, &password, &length, &error),
	    LIC_OK);
	assert_int_equal(length, TPD_PASSWORD_LENGTH);
	assert_memory_equal(password, w->password, TPD_PASSWORD_LENGTH);
	assert_int_equal(tpd_guid_new(other, NULL), LIC_OK);
	assert_int_equal(
	    tpd_password_line_parse(line, TPD_PASSWORD_LINE_LENGTH - 1, other, &password, &length, &error),
	    LIC_USAGE);
	assert_non_null(strstr(error.message, other));
	assert_int_equal(
	    tpd_password_line_parse(w->password, TPD_PASSWORD_LENGTH, NULL, &password, &length, &error),
	    LIC_MALFORMED);
}

static void test_round_trip_and_import(void **state)
{
	struct world_state *w = *state;
	lic_error error = {0};
	/* The password: 32 base64url characters. */
	assert_int_equal(strlen(w->password), TPD_PASSWORD_LENGTH);
	for (size_t i = 0; i < TPD_PASSWORD_LENGTH; i++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
				       w->password[i]));
	/* No private key or password in the clear in any document. */
	assert_null(strstr(w->tpd, "PRIVATE KEY"));
	assert_null(strstr(w->exported, w->password));
	assert_non_null(strstr(w->public_text, "-----BEGIN PUBLIC KEY-----"));
	assert_non_null(strstr(w->private_text, "-----BEGIN PRIVATE KEY-----"));
	assert_int_equal(strncmp(w->private_text, "Guid: ", 6), 0);

	struct tpd_contents *contents = open_exported(w, w->exported, LIC_OK);
	assert_string_equal(contents->guid, w->guid);
	assert_string_equal(contents->tenant, "contoso");
	assert_int_equal(contents->key_count, 2);
	for (uint32_t number = 1; number <= 2; number++) {
		const struct tpd_key *entry = &contents->keys[number - 1];
		const struct key_version *version = tenant_version(w->tenant, number);
		assert_int_equal(entry->number, number);
		assert_string_equal(entry->key_id_hex, version->key_id_hex);
		assert_int_equal(entry->algorithm, KEY_ALGORITHM_RSA_2048);
		assert_int_equal(entry->created_at, version->created_at);
		assert_int_equal(entry->state, number == 1 ? LIC_KEY_STATE_RETAINED : LIC_KEY_STATE_ACTIVE);
		assert_int_equal(entry->compromised, number == 1);
		uint8_t *der = NULL;
		size_t length = 0;
		private_der_of(w->tenant, w->kek, number, &der, &length);
		assert_int_equal(entry->private_key_length, length);
		assert_memory_equal(entry->private_key_der, der, length);
		secure_free(der, length);
	}

	/* Into a tenant of another store that has one version of its own. */
	struct tenant *fabrikam = tenant_new("fabrikam", NOW);
	add_version(fabrikam, w->other_kek, LIC_KEY_STATE_ACTIVE);
	uint32_t first = 0;
	assert_int_equal(tpd_import_into_tenant(fabrikam, w->other_kek, contents, NOW + 5, &first, &error),
			 LIC_OK);
	assert_int_equal(first, 2);
	assert_int_equal(fabrikam->version_count, 3);
	for (uint32_t i = 0; i < 2; i++) {
		const struct key_version *version = tenant_version(fabrikam, 2 + i);
		assert_int_equal(version->state, LIC_KEY_STATE_RETAINED);
		assert_int_equal(version->retained_at, NOW + 5);
		assert_int_equal(version->origin, KEY_ORIGIN_MANAGED);
		assert_int_equal(version->compromised, i == 0);
		assert_string_equal(version->key_id_hex, tenant_version(w->tenant, i + 1)->key_id_hex);
		assert_ptr_equal(tenant_find_key_id(fabrikam, version->key_id), version);
		/* Sealed under the importing KEK with its new number: it opens there. */
		uint8_t *imported = NULL, *original = NULL;
		size_t imported_length = 0, original_length = 0;
		private_der_of(fabrikam, w->other_kek, 2 + i, &imported, &imported_length);
		private_der_of(w->tenant, w->kek, i + 1, &original, &original_length);
		assert_int_equal(imported_length, original_length);
		assert_memory_equal(imported, original, original_length);
		secure_free(imported, imported_length);
		secure_free(original, original_length);
	}
	/* The same keys again: STATE, and the tenant is as it was. */
	assert_int_equal(tpd_import_into_tenant(fabrikam, w->other_kek, contents, NOW + 6, &first, &error),
			 LIC_STATE);
	assert_non_null(strstr(error.message, "already version 2"));
	assert_int_equal(fabrikam->version_count, 3);
	tenant_free(fabrikam);
	tpd_contents_free(contents);
}

static void test_wrong_password(void **state)
{
	struct world_state *w = *state;
	struct tpd_contents *contents = NULL;
	lic_error error = {0};
	char wrong[TPD_PASSWORD_LENGTH + 1];
	memcpy(wrong, w->password, sizeof wrong);
	wrong[3] = wrong[3] == 'x' ? 'y' : 'x';
	assert_int_equal(tpd_exported_open(w->exported, w->exported_length, wrong, TPD_PASSWORD_LENGTH,
					   w->guid, &contents, &error),
			 LIC_UNAUTHORIZED);
	assert_null(contents);
	assert_non_null(strstr(error.message, "wrong password"));
	assert_int_equal(
	    tpd_exported_open(w->exported, w->exported_length, "", 0, w->guid, &contents, &error), LIC_USAGE);
}

static void test_flipped_ciphertext_byte(void **state)
{
	struct world_state *w = *state;
	struct tpd_contents *contents = NULL;
	lic_error error = {0};
	for (int n = 0; n < 2; n++) {
		char *tampered = flip_in_element(w->tpd, "EncryptedPrivateKey", n);
		assert_int_equal(
		    tpd_unwrap(tampered, strlen(tampered), w->recipient_private, w->guid, &contents, &error),
		    LIC_MALFORMED);
		assert_non_null(strstr(error.message, "altered"));
		assert_null(contents);
		free(tampered);
		tampered = flip_in_element(w->exported, "EncryptedPrivateKey", n);
		open_exported(w, tampered, LIC_MALFORMED);
		free(tampered);
	}
	char *tampered = flip_in_element(w->exported, "PasswordCheck", 0);
	open_exported(w, tampered, LIC_UNAUTHORIZED);
	free(tampered);
	/* The wrapped document key: the OAEP decryption fails. */
	char *wrapped = strstr(w->tpd, "RecipientKeyId=");
	assert_non_null(wrapped);
	tampered = strdup(w->tpd);
	char *text = strchr(tampered + (wrapped - w->tpd), '>') + 1;
	text[30] = text[30] == 'A' ? 'B' : 'A';
	assert_int_equal(
	    tpd_unwrap(tampered, strlen(tampered), w->recipient_private, w->guid, &contents, &error),
	    LIC_MALFORMED);
	free(tampered);
}

static void test_changed_guid_attribute(void **state)
{
	struct world_state *w = *state;
	struct tpd_contents *contents = NULL;
	lic_error error = {0};
	char other[TPD_GUID_LENGTH], from[64], to[64];
	assert_int_equal(tpd_guid_new(other, NULL), LIC_OK);
	snprintf(from, sizeof from, "Guid=\"%s\"", w->guid);
	snprintf(to, sizeof to, "Guid=\"%s\"", other);
	char *tampered = replace_once(w->tpd, from, to);
	/* Expected GUID given (the key file's): a mismatch, named. */
	assert_int_equal(
	    tpd_unwrap(tampered, strlen(tampered), w->recipient_private, w->guid, &contents, &error),
	    LIC_USAGE);
	assert_non_null(strstr(error.message, other));
	/* Not given: the OAEP label and every AAD bind the GUID. */
	assert_int_equal(
	    tpd_unwrap(tampered, strlen(tampered), w->recipient_private, NULL, &contents, &error),
	    LIC_MALFORMED);
	assert_null(contents);
	free(tampered);
	tampered = replace_once(w->exported, from, to);
	struct tpd_contents *opened = NULL;
	assert_int_equal(tpd_exported_open(tampered, strlen(tampered), w->password, TPD_PASSWORD_LENGTH, NULL,
					   &opened, &error),
			 LIC_UNAUTHORIZED);
	assert_null(opened);
	open_exported(w, tampered, LIC_USAGE);
	free(tampered);
}

static void test_changed_tenant(void **state)
{
	struct world_state *w = *state;
	struct tpd_contents *contents = NULL;
	lic_error error = {0};
	char *tampered = replace_once(w->tpd, "Tenant=\"contoso\"", "Tenant=\"contosp\"");
	assert_int_equal(
	    tpd_unwrap(tampered, strlen(tampered), w->recipient_private, w->guid, &contents, &error),
	    LIC_MALFORMED);
	assert_null(contents);
	free(tampered);
	tampered = replace_once(w->exported, "Tenant=\"contoso\"", "Tenant=\"contosp\"");
	open_exported(w, tampered, LIC_UNAUTHORIZED);
	free(tampered);
	/* KeyCount is bound too. */
	tampered = replace_once(w->exported, "KeyCount=\"2\"", "KeyCount=\"1\"");
	open_exported(w, tampered, LIC_MALFORMED);
	free(tampered);
}

/* A copy with one digit of the year of the n-th (0-based) CreatedAt attribute changed. */
static char *change_created_at(const char *text, int n)
{
	char *out = strdup(text);
	char *at = out;
	for (int i = 0; i <= n; i++) {
		at = strstr(at, "CreatedAt=\"");
		assert_non_null(at);
		at += strlen("CreatedAt=\"");
	}
	at[3] = at[3] == '0' ? '1' : '0';
	return out;
}

/* Every attribute import uses is authenticated: Compromised, State and the
 * CreatedAt of the header and of each key cannot be edited in transit. */
static void test_changed_key_metadata(void **state)
{
	struct world_state *w = *state;
	struct tpd_contents *contents = NULL;
	lic_error error = {0};
	const char *edits[][2] = {
	    {"Compromised=\"true\"", "Compromised=\"false\""},
	    {"Compromised=\"false\"", "Compromised=\"true\""},
	    {"State=\"retained\"", "State=\"active\""},
	    {"State=\"active\"", "State=\"revoked\""},
	};
	for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
		char *tampered = replace_once(w->tpd, edits[i][0], edits[i][1]);
		assert_int_equal(
		    tpd_unwrap(tampered, strlen(tampered), w->recipient_private, w->guid, &contents, &error),
		    LIC_MALFORMED);
		assert_non_null(strstr(error.message, "altered"));
		assert_null(contents);
		free(tampered);
		tampered = replace_once(w->exported, edits[i][0], edits[i][1]);
		open_exported(w, tampered, LIC_MALFORMED);
		free(tampered);
	}
	/* CreatedAt 0 is the header's, 1 and 2 the keys'. */
	for (int n = 0; n < 3; n++) {
		char *tampered = change_created_at(w->tpd, n);
		assert_int_equal(
		    tpd_unwrap(tampered, strlen(tampered), w->recipient_private, w->guid, &contents, &error),
		    LIC_MALFORMED);
		assert_null(contents);
		free(tampered);
		tampered = change_created_at(w->exported, n);
		/* The header's is bound by the password check as well. */
		open_exported(w, tampered, n == 0 ? LIC_UNAUTHORIZED : LIC_MALFORMED);
		free(tampered);
	}
}

/* Swaps the text of the first two `name` elements. */
static char *swap_elements(const char *text, const char *name)
{
	char open[64], close[64];
	snprintf(open, sizeof open, "<%s>", name);
	snprintf(close, sizeof close, "</%s>", name);
	const char *a = strstr(text, open) + strlen(open);
	const char *a_end = strstr(a, close);
	const char *b = strstr(a_end, open) + strlen(open);
	const char *b_end = strstr(b, close);
	size_t total = strlen(text);
	char *out = malloc(total + 1), *at = out;
	memcpy(at, text, (size_t)(a - text));
	at += a - text;
	memcpy(at, b, (size_t)(b_end - b));
	at += b_end - b;
	memcpy(at, a_end, (size_t)(b - a_end));
	at += b - a_end;
	memcpy(at, a, (size_t)(a_end - a));
	at += a_end - a;
	strcpy(at, b_end);
	return out;
}

static void test_swapped_key_entries(void **state)
{
	struct world_state *w = *state;
	struct tpd_contents *contents = NULL;
	lic_error error = {0};
	const char *names[] = {"EncryptedPrivateKey", "PublicKey"};
	for (size_t i = 0; i < 2; i++) {
		char *tampered = swap_elements(w->tpd, names[i]);
		assert_int_equal(
		    tpd_unwrap(tampered, strlen(tampered), w->recipient_private, w->guid, &contents, &error),
		    LIC_MALFORMED);
		assert_null(contents);
		free(tampered);
		tampered = swap_elements(w->exported, names[i]);
		open_exported(w, tampered, LIC_MALFORMED);
		free(tampered);
	}
	/* Whole entries renumbered to swap their places: the AAD binds the number. */
	char *step = replace_once(w->exported, "Number=\"1\"", "Number=\"X\"");
	char *step2 = replace_once(step, "Number=\"2\"", "Number=\"1\"");
	char *tampered = replace_once(step2, "Number=\"X\"", "Number=\"2\"");
	free(step);
	free(step2);
	open_exported(w, tampered, LIC_MALFORMED);
	free(tampered);
}

/* A PKCS#8 key with the real n, e, p, q and CRT values of version 1 but a
 * wrong d: its SPKI is version 1's, so only a pairwise check sees it. Put in
 * an otherwise valid ExportedTPD (made with the test's own password), it is
 * refused, and the import refuses it too. */
static void test_private_key_not_the_private_half(void **state)
{
	struct world_state *w = *state;
	lic_error error = {0};
	uint8_t *der = NULL;
	size_t der_length = 0;
	EVP_PKEY *real = NULL, *forged = NULL;
	private_der_of(w->tenant, w->kek, 1, &der, &der_length);
	assert_int_equal(key_material_from_private_der(der, der_length, &real, NULL), LIC_OK);
	secure_free(der, der_length);
	const char *names[] = {OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
			       OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
			       OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
			       OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1};
	BIGNUM *values[8] = {0};
	OSSL_PARAM_BLD *builder = OSSL_PARAM_BLD_new();
	assert_non_null(builder);
	for (size_t i = 0; i < 8; i++) {
		assert_int_equal(EVP_PKEY_get_bn_param(real, names[i], &values[i]), 1);
		if (i == 2) /* d + 2: the wrong private exponent */
			assert_int_equal(BN_add_word(values[i], 2), 1);
		assert_int_equal(OSSL_PARAM_BLD_push_BN(builder, names[i], values[i]), 1);
	}
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(builder);
	EVP_PKEY_CTX *context = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	assert_non_null(params);
	assert_non_null(context);
	assert_int_equal(EVP_PKEY_fromdata_init(context), 1);
	assert_int_equal(EVP_PKEY_fromdata(context, &forged, EVP_PKEY_KEYPAIR, params), 1);

	/* The contents of an exchange with that one key as version 1. */
	const struct key_version *version = tenant_version(w->tenant, 1);
	struct tpd_contents *contents = calloc(1, sizeof *contents);
	memcpy(contents->guid, w->guid, TPD_GUID_LENGTH);
	contents->tenant = strdup("contoso");
	contents->created_at = NOW;
	contents->key_count = 1;
	contents->keys = calloc(1, sizeof *contents->keys);
	struct tpd_key *entry = &contents->keys[0];
	entry->number = 1;
	memcpy(entry->key_id, version->key_id, KEY_ID_LENGTH);
	memcpy(entry->key_id_hex, version->key_id_hex, KEY_ID_HEX_LENGTH);
	entry->algorithm = version->algorithm;
	entry->state = LIC_KEY_STATE_RETAINED;
	entry->created_at = version->created_at;
	entry->public_key_der = malloc(version->public_key_length);
	memcpy(entry->public_key_der, version->public_key_der, version->public_key_length);
	entry->public_key_length = version->public_key_length;
	assert_int_equal(
	    key_material_private_der(forged, &entry->private_key_der, &entry->private_key_length, NULL),
	    LIC_OK);
	/* Its SPKI is the real one: the old check (compare the SPKI) passed it. */
	uint8_t *spki = NULL;
	size_t spki_length = 0;
	assert_int_equal(key_material_public_der(forged, &spki, &spki_length, NULL), LIC_OK);
	assert_int_equal(spki_length, version->public_key_length);
	assert_memory_equal(spki, version->public_key_der, spki_length);
	free(spki);

	char *password = NULL, *xml = NULL;
	size_t xml_length = 0;
	assert_int_equal(tpd_exported_build(contents, &fast_scrypt, &password, &xml, &xml_length, &error),
			 LIC_OK);
	struct tpd_contents *opened = NULL;
	assert_int_equal(
	    tpd_exported_open(xml, xml_length, password, strlen(password), w->guid, &opened, &error),
	    LIC_MALFORMED);
	assert_non_null(strstr(error.message, "not the private half"));
	assert_null(opened);
	/* The import checks every key again before the tenant changes. */
	struct tenant *target = tenant_new("newco", NOW);
	uint32_t first = 0;
	assert_int_equal(tpd_import_into_tenant(target, w->other_kek, contents, NOW, &first, &error),
			 LIC_MALFORMED);
	assert_int_equal(target->version_count, 0);
	tenant_free(target);
	secure_free(password, TPD_PASSWORD_LENGTH + 1);
	free(xml);
	tpd_contents_free(contents);
	EVP_PKEY_CTX_free(context);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(builder);
	for (size_t i = 0; i < 8; i++)
		BN_clear_free(values[i]);
	EVP_PKEY_free(forged);
	EVP_PKEY_free(real);
}

static void test_key_file_of_another_exchange(void **state)
{
	struct world_state *w = *state;
	char guid[TPD_GUID_LENGTH], parsed[TPD_GUID_LENGTH];
	char *public_text = NULL, *private_text = NULL;
	size_t public_length = 0, private_length = 0;
	EVP_PKEY *other = NULL;
	struct tpd_contents *contents = NULL;
	lic_error error = {0};
	assert_int_equal(tpd_recipient_key_create(KEY_ALGORITHM_RSA_2048, guid, &public_text, &public_length,
						  &private_text, &private_length, &error),
			 LIC_OK);
	assert_string_not_equal(guid, w->guid);
	assert_int_equal(tpd_private_key_parse(private_text, private_length, parsed, &other, &error), LIC_OK);
	/* The TPD's GUID is not the key file's. */
	assert_int_equal(tpd_unwrap(w->tpd, w->tpd_length, other, guid, &contents, &error), LIC_USAGE);
	assert_non_null(strstr(error.message, guid));
	assert_non_null(strstr(error.message, w->guid));
	/* Even without the GUID check, the TPD names the key it was made for. */
	assert_int_equal(tpd_unwrap(w->tpd, w->tpd_length, other, NULL, &contents, &error), LIC_USAGE);
	assert_non_null(strstr(error.message, "not to this private key"));
	assert_null(contents);
	/* A key file whose Guid line was edited no longer parses as that GUID. */
	char *edited = strdup(private_text);
	edited[6] = edited[6] == 'a' ? 'b' : 'a';
	EVP_PKEY *again = NULL;
	assert_int_equal(tpd_private_key_parse(edited, private_length, parsed, &again, &error), LIC_OK);
	assert_string_not_equal(parsed, guid);
	EVP_PKEY_free(again);
	assert_int_equal(tpd_private_key_parse("Guid: nonsense\n", 15, parsed, &again, &error),
			 LIC_MALFORMED);
	free(edited);
	EVP_PKEY_free(other);
	free(public_text);
	secure_free(private_text, private_length + 1);
}

static void test_byok_version_not_exportable(void **state)
{
	struct world_state *w = *state;
	struct tenant *tenant = tenant_new("hsmco", NOW);
	add_version(tenant, w->kek, LIC_KEY_STATE_RETAINED);
	/* Version 2: BYOK, the key behind a PKCS#11 URI, no sealed key. */
	struct key_version version;
	assert_int_equal(store_generate_version(w->kek, "hsmco", 2, KEY_ALGORITHM_RSA_2048, &version, NULL),
			 LIC_OK);
	free(version.sealed_private_key);
	version.sealed_private_key = NULL;
	version.sealed_private_key_length = 0;
	version.origin = KEY_ORIGIN_BYOK;
	version.byok_uri = strdup("pkcs11:token=t;object=k");
	version.state = LIC_KEY_STATE_ACTIVE;
	version.state_before_revoke = LIC_KEY_STATE_ACTIVE;
	version.created_at = NOW;
	assert_int_equal(tenant_append_version(tenant, &version, NULL), LIC_OK);
	char *xml = NULL, *versions = NULL;
	size_t length = 0;
	lic_error error = {0};
	assert_int_equal(
	    tpd_export(tenant, w->kek, w->guid, w->recipient_public, NOW, &xml, &length, &versions, &error),
	    LIC_NOT_EXPORTABLE);
	assert_non_null(strstr(error.message, "version 2"));
	assert_null(xml);
	assert_null(versions);
	tenant_free(tenant);
}

/* Only active and retained versions leave; an rsa-1024 one (old content) travels too. */
static void test_exported_versions_and_legacy_keys(void **state)
{
	struct world_state *w = *state;
	lic_error error = {0};
	struct tenant *tenant = tenant_new("oldco", NOW);
	struct key_version version;
	assert_int_equal(store_generate_version(w->kek, "oldco", 1, KEY_ALGORITHM_RSA_1024, &version, NULL),
			 LIC_OK);
	version.state = version.state_before_revoke = LIC_KEY_STATE_RETAINED;
	version.created_at = NOW - 100;
	assert_int_equal(tenant_append_version(tenant, &version, NULL), LIC_OK);
	add_version(tenant, w->kek, LIC_KEY_STATE_RETAINED);
	tenant_version(tenant, 2)->state = LIC_KEY_STATE_REVOKED;
	add_version(tenant, w->kek, LIC_KEY_STATE_RETAINED);
	struct key_version *destroyed = tenant_version(tenant, 3);
	destroyed->state = LIC_KEY_STATE_DESTROYED;
	free(destroyed->sealed_private_key);
	destroyed->sealed_private_key = NULL;
	destroyed->sealed_private_key_length = 0;
	add_version(tenant, w->kek, LIC_KEY_STATE_PENDING);
	add_version(tenant, w->kek, LIC_KEY_STATE_ACTIVE);
	char *xml = NULL, *versions = NULL, *password = NULL, *exported = NULL;
	size_t length = 0, exported_length = 0;
	assert_int_equal(
	    tpd_export(tenant, w->kek, w->guid, w->recipient_public, NOW, &xml, &length, &versions, &error),
	    LIC_OK);
	assert_string_equal(versions, "1,5");
	struct tpd_contents *contents = NULL, *opened = NULL;
	assert_int_equal(tpd_unwrap(xml, length, w->recipient_private, w->guid, &contents, &error), LIC_OK);
	assert_int_equal(contents->key_count, 2);
	assert_int_equal(contents->keys[0].algorithm, KEY_ALGORITHM_RSA_1024);
	assert_int_equal(contents->keys[1].number, 5);
	assert_int_equal(
	    tpd_exported_build(contents, &fast_scrypt, &password, &exported, &exported_length, &error),
	    LIC_OK);
	assert_int_equal(tpd_exported_open(exported, exported_length, password, strlen(password), w->guid,
					   &opened, &error),
			 LIC_OK);
	struct tenant *target = tenant_new("newco", NOW);
	uint32_t first = 0;
	assert_int_equal(tpd_import_into_tenant(target, w->other_kek, opened, NOW, &first, &error), LIC_OK);
	assert_int_equal(first, 1);
	assert_int_equal(target->version_count, 2);
	assert_int_equal(tenant_version(target, 1)->algorithm, KEY_ALGORITHM_RSA_1024);
	assert_int_equal(tenant_version(target, 2)->state, LIC_KEY_STATE_RETAINED);
	/* A disabled tenant takes nothing. */
	struct tenant *disabled = tenant_new("offco", NOW);
	disabled->disabled = true;
	assert_int_equal(tpd_import_into_tenant(disabled, w->other_kek, opened, NOW, &first, &error),
			 LIC_TENANT_DISABLED);
	assert_int_equal(disabled->version_count, 0);
	tenant_free(disabled);
	tenant_free(target);
	tpd_contents_free(opened);
	tpd_contents_free(contents);
	secure_free(password, TPD_PASSWORD_LENGTH + 1);
	free(exported);
	free(xml);
	free(versions);
	tenant_free(tenant);
}

static void test_absurd_scrypt_parameters(void **state)
{
	struct world_state *w = *state;
	char from[32];
	snprintf(from, sizeof from, "N=\"%u\"", 1u << 10);
	const char *absurd[] = {"N=\"1099511627776\"", "N=\"1000\"", "N=\"0\"", "N=\"2\"",
				"N=\"18446744073709551616\""};
	for (size_t i = 0; i < sizeof absurd / sizeof absurd[0]; i++) {
		char *tampered = replace_once(w->exported, from, absurd[i]);
		open_exported(w, tampered, LIC_MALFORMED);
		free(tampered);
	}
	char *tampered = replace_once(w->exported, "R=\"8\"", "R=\"100000\"");
	open_exported(w, tampered, LIC_MALFORMED);
	free(tampered);
	tampered = replace_once(w->exported, "P=\"1\"", "P=\"4000\"");
	open_exported(w, tampered, LIC_MALFORMED);
	free(tampered);
	/* And building with them is refused too. */
	struct tpd_contents *contents = open_exported(w, w->exported, LIC_OK);
	struct scrypt_parameters huge = {.n = 1ull << 30, .r = 8, .p = 1};
	char *password = NULL, *xml = NULL;
	size_t length = 0;
	assert_int_equal(tpd_exported_build(contents, &huge, &password, &xml, &length, NULL), LIC_MALFORMED);
	assert_null(password);
	assert_null(xml);
	tpd_contents_free(contents);
}

static void test_malformed_documents(void **state)
{
	struct world_state *w = *state;
	struct tpd_contents *contents = NULL;
	lic_error error = {0};
	const char *bad = "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e \"x\">]><x>&e;</x>";
	assert_int_equal(tpd_unwrap(bad, strlen(bad), w->recipient_private, NULL, &contents, &error),
			 LIC_MALFORMED);
	char *tampered = replace_once(w->tpd, "Format=\"1\"", "Format=\"2\"");
	assert_int_equal(
	    tpd_unwrap(tampered, strlen(tampered), w->recipient_private, NULL, &contents, &error),
	    LIC_UNSUPPORTED_VERSION);
	free(tampered);
	/* A TPD is not an ExportedTPD. */
	open_exported(w, w->tpd, LIC_MALFORMED);
	assert_null(contents);
}

static size_t directory_entries(const char *directory)
{
	size_t count = 0;
	DIR *dir = opendir(directory);
	assert_non_null(dir);
	for (struct dirent *entry; (entry = readdir(dir)) != NULL;)
		if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
			count++;
	closedir(dir);
	return count;
}

/* The exchange's files: 0600 whatever the umask, and an existing name (a
 * file or a dangling symbolic link) is never replaced, nothing left behind. */
static void test_file_write_new(void **state)
{
	(void)state;
	char directory[256], path[512], link_path[512], target[512];
	lic_error error = {0};
	assert_int_equal(file_make_temporary_directory("test_tpd", directory, sizeof directory, NULL),
			 LIC_OK);
	snprintf(path, sizeof path, "%s/TPD-x.xml", directory);
	mode_t old_mask = umask(0);
	assert_int_equal(file_write_new(path, "first", 5, &error), LIC_OK);
	umask(old_mask);
	struct stat info;
	assert_int_equal(stat(path, &info), 0);
	assert_int_equal(info.st_mode & 07777, 0600);
	assert_int_equal(file_write_new(path, "second", 6, &error), LIC_IO);
	assert_non_null(strstr(error.message, "exists already"));
	char *text = NULL;
	size_t length = 0;
	assert_int_equal(file_read_all(path, 100, &text, &length, NULL), LIC_OK);
	assert_string_equal(text, "first");
	free(text);
	/* A dangling symbolic link: neither it nor its target is written. */
	snprintf(link_path, sizeof link_path, "%s/Password-x.txt", directory);
	snprintf(target, sizeof target, "%s/elsewhere", directory);
	assert_int_equal(symlink(target, link_path), 0);
	assert_int_equal(file_write_new(link_path, "secret", 6, &error), LIC_IO);
	assert_non_null(strstr(error.message, "exists already"));
	assert_int_equal(lstat(link_path, &info), 0);
	assert_true(S_ISLNK(info.st_mode));
	assert_int_not_equal(access(target, F_OK), 0);
	/* No temporary file left: the file and the link only. */
	assert_int_equal(directory_entries(directory), 2);
	/* A directory that does not exist: refused, nothing made. */
	char missing[600];
	snprintf(missing, sizeof missing, "%s/none/TPD-x.xml", directory);
	assert_int_equal(file_write_new(missing, "x", 1, &error), LIC_IO);
	unlink(link_path);
	unlink(path);
	assert_int_equal(rmdir(directory), 0);
}

/* Reads DIR/<prefix>-<fixture GUID>.xml. */
static char *read_seed(const char *directory, const char *prefix, size_t *length)
{
	char name[96], path[4096];
	char *text = NULL;
	snprintf(name, sizeof name, "%s-%s.xml", prefix, FUZZ_TPD_GUID);
	assert_int_equal(file_join(path, sizeof path, directory, name, NULL), LIC_OK);
	lic_error error = {0};
	if (file_read_all(path, TPD_FILE_MAX_BYTES, &text, length, &error) != LIC_OK)
		fail_msg("cannot read the seed %s: %s", path, error.message);
	return text;
}

/* Writes DIR/<prefix>-<fixture GUID>.xml, replacing it (seeds hold no secret). */
static void write_seed(const char *directory, const char *prefix, const char *xml, size_t length)
{
	char name[96], path[4096];
	snprintf(name, sizeof name, "%s-%s.xml", prefix, FUZZ_TPD_GUID);
	assert_int_equal(file_join(path, sizeof path, directory, name, NULL), LIC_OK);
	lic_error error = {0};
	if (file_write_atomic(path, xml, length, 0644, 0, &error) != LIC_OK)
		fail_msg("cannot write the seed %s: %s", path, error.message);
	printf("wrote %s\n", path);
}

/* The export of the group's tenant (contoso: v1 retained and compromised, v2
 * active) to the fixture recipient, and its ExportedTPD under the fixture
 * password with scrypt N = 2^10 (the only N the fuzz target opens). */
static void write_fuzz_seeds(struct world_state *w, EVP_PKEY *recipient, const char *directory)
{
	lic_error error = {0};
	char *tpd = NULL, *exported = NULL, *versions = NULL;
	size_t tpd_length = 0, exported_length = 0;
	struct tpd_contents *contents = NULL;
	assert_int_equal(tpd_export(w->tenant, w->kek, FUZZ_TPD_GUID, recipient, NOW, &tpd, &tpd_length,
				    &versions, &error),
			 LIC_OK);
	assert_string_equal(versions, "1,2");
	assert_int_equal(tpd_unwrap(tpd, tpd_length, recipient, FUZZ_TPD_GUID, &contents, &error), LIC_OK);
	assert_int_equal(tpd_exported_seal(contents, &fast_scrypt, fuzz_password, strlen(fuzz_password),
					   &exported, &exported_length, &error),
			 LIC_OK);
	write_seed(directory, "TPD", tpd, tpd_length);
	write_seed(directory, "ExportedTPD", exported, exported_length);
	tpd_contents_free(contents);
	free(versions);
	free(tpd);
	free(exported);
}

/* The fuzz target's seeds open with its fixture key and password: both hold
 * contoso's versions 1 and 2 with the same key ids, and the ExportedTPD asks
 * for scrypt N="1024" (fuzz_tpd.c skips any other N). */
static void test_fuzz_seeds(void **state)
{
	struct world_state *w = *state;
	lic_error error = {0};
	char guid[TPD_GUID_LENGTH];
	EVP_PKEY *recipient = NULL;
	assert_int_equal(
	    tpd_private_key_parse(fuzz_recipient_key, strlen(fuzz_recipient_key), guid, &recipient, &error),
	    LIC_OK);
	assert_string_equal(guid, FUZZ_TPD_GUID);
	const char *directory = getenv("LICENSOR_WRITE_TPD_SEEDS");
	if (directory != NULL && directory[0] != '\0')
		write_fuzz_seeds(w, recipient, directory);
	else
		directory = LICENSOR_TESTS_DIR "/fuzz/corpus/fuzz_tpd";

	size_t tpd_length = 0, exported_length = 0;
	char *tpd = read_seed(directory, "TPD", &tpd_length);
	char *exported = read_seed(directory, "ExportedTPD", &exported_length);
	struct tpd_contents *unwrapped = NULL, *opened = NULL;
	if (tpd_unwrap(tpd, tpd_length, recipient, FUZZ_TPD_GUID, &unwrapped, &error) != LIC_OK)
		fail_msg("the TPD seed does not open with the fixture key (%s): regenerate the seeds, see "
			 "tests/fuzz/fuzz_tpd.c",
			 error.message);
	assert_non_null(strstr(exported, " N=\"1024\""));
	if (tpd_exported_open(exported, exported_length, fuzz_password, strlen(fuzz_password), FUZZ_TPD_GUID,
			      &opened, &error) != LIC_OK)
		fail_msg("the ExportedTPD seed does not open with the fixture password (%s): regenerate the "
			 "seeds, see tests/fuzz/fuzz_tpd.c",
			 error.message);
	assert_string_equal(unwrapped->tenant, "contoso");
	assert_string_equal(opened->tenant, "contoso");
	assert_int_equal(unwrapped->key_count, 2);
	assert_int_equal(opened->key_count, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(unwrapped->keys[i].number, i + 1);
		assert_int_equal(opened->keys[i].number, i + 1);
		assert_string_equal(unwrapped->keys[i].key_id_hex, opened->keys[i].key_id_hex);
		assert_int_equal(unwrapped->keys[i].state, opened->keys[i].state);
		assert_int_equal(unwrapped->keys[i].compromised, opened->keys[i].compromised);
	}
	tpd_contents_free(unwrapped);
	tpd_contents_free(opened);
	free(tpd);
	free(exported);
	EVP_PKEY_free(recipient);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_guids_and_file_names),
	    cmocka_unit_test(test_password_line),
	    cmocka_unit_test(test_round_trip_and_import),
	    cmocka_unit_test(test_wrong_password),
	    cmocka_unit_test(test_flipped_ciphertext_byte),
	    cmocka_unit_test(test_changed_guid_attribute),
	    cmocka_unit_test(test_changed_tenant),
	    cmocka_unit_test(test_swapped_key_entries),
	    cmocka_unit_test(test_changed_key_metadata),
	    cmocka_unit_test(test_private_key_not_the_private_half),
	    cmocka_unit_test(test_key_file_of_another_exchange),
	    cmocka_unit_test(test_byok_version_not_exportable),
	    cmocka_unit_test(test_exported_versions_and_legacy_keys),
	    cmocka_unit_test(test_absurd_scrypt_parameters),
	    cmocka_unit_test(test_malformed_documents),
	    cmocka_unit_test(test_file_write_new),
	    cmocka_unit_test(test_fuzz_seeds),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
