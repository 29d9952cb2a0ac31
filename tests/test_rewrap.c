/*
 * test_rewrap.c: core/rewrap: one PL rewrapped from an old key to a new one
 * reads back with the same policy fields and the same content key under the
 * new key id, every byte outside KeyId and EnablingBits kept; a tampered PL,
 * the wrong old key and another tenant's PL refused; then rewrap_files over
 * a real store: a re-keyed tenant's PLs grouped by version, outputs written
 * under the same names, one audit event, and refusals (garbage, another
 * tenant, a revoked version, --out the input directory) writing nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <libxml/parser.h>
#include <openssl/rand.h>
#include <unistd.h>

#include "core/documents.h"
#include "core/rewrap.h"
#include "core/xml_signature.h"
#include "keyring/admin.h"
#include "keyring/audit.h"
#include "keyring/encoding.h"
#include "keyring/file_io.h"
#include "keyring/xml_document.h"
#include "test_helpers.h"

static EVP_PKEY *old_key, *new_key, *other_key;
static char old_key_id[KEY_ID_HEX_LENGTH], new_key_id[KEY_ID_HEX_LENGTH];

static void key_id_hex_of(EVP_PKEY *key, char out[KEY_ID_HEX_LENGTH])
{
	uint8_t *spki = NULL, key_id[KEY_ID_LENGTH];
	size_t length = 0;
	lic_error error = {0};
	assert_int_equal(key_material_public_der(key, &spki, &length, &error), LIC_OK);
	key_id_of_spki(spki, length, key_id);
	hex_encode(key_id, KEY_ID_LENGTH, out);
	free(spki);
}

static int setup_keys(void **state)
{
	(void)state;
	lic_error error = {0};
	if (key_material_generate(KEY_ALGORITHM_RSA_2048, &old_key, &error) != LIC_OK ||
	    key_material_generate(KEY_ALGORITHM_RSA_2048, &new_key, &error) != LIC_OK ||
	    key_material_generate(KEY_ALGORITHM_RSA_2048, &other_key, &error) != LIC_OK)
		return -1;
	key_id_hex_of(old_key, old_key_id);
	key_id_hex_of(new_key, new_key_id);
	return 0;
}

static int teardown_keys(void **state)
{
	(void)state;
	EVP_PKEY_free(old_key);
	EVP_PKEY_free(new_key);
	EVP_PKEY_free(other_key);
	return 0;
}

/* A PL of `tenant` wrapped to `key`; *xml: free(). */
static void publish(const char *tenant, const char *content_id, EVP_PKEY *key, const char *key_id,
		    const uint8_t content_key[CONTENT_KEY_LENGTH], char **xml, size_t *length)
{
	const char *principals[] = {"Bob@Contoso.com", "*@fabrikam.com", "ANYONE"};
	const char *rights[] = {"VIEW PRINT", "VIEW", "VIEW"};
	struct publish_request request = {.tenant = tenant,
					  .content_id = content_id,
					  .owner = "Alice@Contoso.com",
					  .grant_principals = principals,
					  .grant_rights = rights,
					  .grant_count = 3,
					  .content_valid_until = 1800000000,
					  .license_validity_days = 7,
					  .issued_at = 1795000000};
	lic_error error = {0};
	assert_int_equal(publishing_license_write(&request, key, key_id, content_key, xml, length, &error),
			 LIC_OK);
}

static lic_status read_pl(const char *xml, size_t length, struct publishing_license *pl, lic_error *error)
{
	xmlDocPtr document = NULL;
	lic_status status = xml_document_parse(xml, length, DOCUMENT_MAX_BYTES, &document, error);
	if (status == LIC_OK)
		status = publishing_license_read(document, xmlDocGetRootElement(document), pl, error);
	xmlFreeDoc(document);
	return status;
}

/* The text with its <KeyId> and <EnablingBits> contents cut out. */
static char *without_key_fields(const char *xml)
{
	char *copy = strdup(xml);
	const char *tags[][2] = {{"<KeyId>", "</KeyId>"},
				 {"<EnablingBits Algorithm=\"RSA-OAEP-SHA256\">", "</EnablingBits>"}};
	for (size_t i = 0; i < 2; i++) {
		char *start = strstr(copy, tags[i][0]);
		assert_non_null(start);
		start += strlen(tags[i][0]);
		char *end = strstr(start, tags[i][1]);
		assert_non_null(end);
		memmove(start, end, strlen(end) + 1);
	}
	return copy;
}

static void test_rewrap_keeps_policy_and_content_key(void **state)
{
	(void)state;
	uint8_t content_key[CONTENT_KEY_LENGTH], unwrapped[CONTENT_KEY_LENGTH];
	RAND_bytes(content_key, sizeof content_key);
	char *xml = NULL, *out = NULL;
	size_t length = 0, out_length = 0;
	lic_error error = {0};
	publish("contoso", "doc-1", old_key, old_key_id, content_key, &xml, &length);
	struct rewrap_target target = {.public_key = new_key};
	memcpy(target.key_id_hex, new_key_id, sizeof target.key_id_hex);
	assert_int_equal(rewrap_document(xml, length, "contoso", VERSION_KEY_OF(old_key), &target, &out,
					 &out_length, &error),
			 LIC_OK);
	assert_int_equal(strlen(out), out_length);

	struct publishing_license before, after;
	assert_int_equal(read_pl(xml, length, &before, &error), LIC_OK);
	assert_int_equal(read_pl(out, out_length, &after, &error), LIC_OK);
	assert_string_equal(before.key_id_hex, old_key_id);
	assert_string_equal(after.key_id_hex, new_key_id);
	assert_string_equal(after.tenant, "contoso");
	assert_string_equal(after.content_id, "doc-1");
	assert_int_equal(after.issued_at, 1795000000);
	assert_int_equal(after.content_valid_until, 1800000000);
	assert_int_equal(after.license_validity_days, 7);
	assert_string_equal(after.policy.owner, "alice@contoso.com");
	assert_int_equal(after.policy.grant_count, 3);
	for (size_t i = 0; i < 3; i++)
		assert_memory_equal(&after.policy.grants[i], &before.policy.grants[i],
				    sizeof after.policy.grants[i]);
	/* The content key: the same, under the new key and the new Body's label. */
	assert_int_equal(oaep_unwrap(VERSION_KEY_OF(new_key), after.body_digest, 32, after.enabling_bits,
				     after.enabling_bits_length, unwrapped, &error),
			 LIC_OK);
	assert_memory_equal(unwrapped, content_key, CONTENT_KEY_LENGTH);
	/* Not under the old key any more, nor under the old label. */
	assert_int_equal(oaep_unwrap(VERSION_KEY_OF(old_key), after.body_digest, 32, after.enabling_bits,
				     after.enabling_bits_length, unwrapped, &error),
			 LIC_PL_INTEGRITY);
	assert_int_equal(oaep_unwrap(VERSION_KEY_OF(new_key), before.body_digest, 32, after.enabling_bits,
				     after.enabling_bits_length, unwrapped, &error),
			 LIC_PL_INTEGRITY);
	/* Every byte outside KeyId and EnablingBits is as it was. */
	char *a = without_key_fields(xml), *b = without_key_fields(out);
	assert_string_equal(a, b);
	free(a);
	free(b);
	publishing_license_cleanup(&before);
	publishing_license_cleanup(&after);
	free(out);
	free(xml);
}

/* A Body written by hand, indented and commented; %s is its KeyId. */
#define HAND_MADE_BODY                                                                                       \
	"<Body>\n    <!-- hand-made -->\n    <Tenant>contoso</Tenant>\n"                                     \
	"    <ContentId>doc-2</ContentId>\n    <IssuedAt>2026-11-23T17:00:00Z</IssuedAt>\n"                  \
	"    <KeyId>%s</KeyId>\n    <Owner>alice@contoso.com</Owner>\n"                                      \
	"    <Policy><LicenseValidityDays>3</LicenseValidityDays>"                                           \
	"<Grant Principal=\"ANYONE\" Rights=\"VIEW\"/></Policy>\n  </Body>"

/* A commented, indented PL keeps its comments and layout. */
static void test_rewrap_keeps_layout(void **state)
{
	(void)state;
	uint8_t content_key[CONTENT_KEY_LENGTH], label[32], unwrapped[CONTENT_KEY_LENGTH];
	RAND_bytes(content_key, sizeof content_key);
	lic_error error = {0};
	char document_text[4096], body_text[2048];
	snprintf(body_text, sizeof body_text, HAND_MADE_BODY, old_key_id);
	/* Its label: the canonical Body of the document as it will be read. */
	snprintf(document_text, sizeof document_text,
		 "<PublishingLicense xmlns=\"urn:licensor:v1\" Version=\"1\">\n  %s\n"
		 "  <EnablingBits Algorithm=\"RSA-OAEP-SHA256\">AA==</EnablingBits>\n</PublishingLicense>\n",
		 body_text);
	xmlDocPtr document = NULL;
	assert_int_equal(
	    xml_document_parse(document_text, strlen(document_text), DOCUMENT_MAX_BYTES, &document, &error),
	    LIC_OK);
	xmlNodePtr body_node = NULL;
	assert_int_equal(xml_child(xmlDocGetRootElement(document), "Body", false, &body_node, &error),
			 LIC_OK);
	assert_int_equal(xml_c14n_digest(document, body_node, label, &error), LIC_OK);
	xmlFreeDoc(document);
	uint8_t *wrapped = NULL;
	size_t wrapped_length = 0;
	assert_int_equal(
	    oaep_wrap(old_key, label, 32, content_key, CONTENT_KEY_LENGTH, &wrapped, &wrapped_length, &error),
	    LIC_OK);
	char *bits = base64_encode(wrapped, wrapped_length);
	snprintf(document_text, sizeof document_text,
		 "<PublishingLicense xmlns=\"urn:licensor:v1\" Version=\"1\">\n  %s\n"
		 "  <EnablingBits Algorithm=\"RSA-OAEP-SHA256\">%s</EnablingBits>\n</PublishingLicense>\n",
		 body_text, bits);
	struct rewrap_target target = {.public_key = new_key};
	memcpy(target.key_id_hex, new_key_id, sizeof target.key_id_hex);
	char *out = NULL;
	size_t out_length = 0;
	assert_int_equal(rewrap_document(document_text, strlen(document_text), "contoso",
					 VERSION_KEY_OF(old_key), &target, &out, &out_length, &error),
			 LIC_OK);
	assert_non_null(strstr(out, "<!-- hand-made -->\n    <Tenant>contoso</Tenant>"));
	struct publishing_license after;
	assert_int_equal(read_pl(out, out_length, &after, &error), LIC_OK);
	assert_string_equal(after.key_id_hex, new_key_id);
	assert_int_equal(oaep_unwrap(VERSION_KEY_OF(new_key), after.body_digest, 32, after.enabling_bits,
				     after.enabling_bits_length, unwrapped, &error),
			 LIC_OK);
	assert_memory_equal(unwrapped, content_key, CONTENT_KEY_LENGTH);
	publishing_license_cleanup(&after);
	free(out);
	free(bits);
	free(wrapped);
}

static void test_rewrap_refusals(void **state)
{
	(void)state;
	uint8_t content_key[CONTENT_KEY_LENGTH];
	RAND_bytes(content_key, sizeof content_key);
	char *xml = NULL, *out = NULL;
	size_t length = 0, out_length = 0;
	lic_error error = {0};
	publish("contoso", "doc-3", old_key, old_key_id, content_key, &xml, &length);
	struct rewrap_target target = {.public_key = new_key};
	memcpy(target.key_id_hex, new_key_id, sizeof target.key_id_hex);

	/* A policy edited after publishing: the label no longer matches. */
	char *tampered = strdup(xml);
	char *rights = strstr(tampered, "Rights=\"VIEW PRINT\"");
	assert_non_null(rights);
	memcpy(rights, "Rights=\"VIEW EDIT\" ", strlen("Rights=\"VIEW PRINT\""));
	assert_int_equal(rewrap_document(tampered, strlen(tampered), "contoso", VERSION_KEY_OF(old_key),
					 &target, &out, &out_length, &error),
			 LIC_PL_INTEGRITY);
	assert_null(out);
	free(tampered);

	/* Altered enabling bits. */
	tampered = strdup(xml);
	char *bits = strstr(tampered, "RSA-OAEP-SHA256\">");
	assert_non_null(bits);
	bits += strlen("RSA-OAEP-SHA256\">");
	bits[10] = bits[10] == 'A' ? 'B' : 'A';
	assert_int_equal(rewrap_document(tampered, strlen(tampered), "contoso", VERSION_KEY_OF(old_key),
					 &target, &out, &out_length, &error),
			 LIC_PL_INTEGRITY);
	free(tampered);

	/* The wrong old key. */
	assert_int_equal(rewrap_document(xml, length, "contoso", VERSION_KEY_OF(other_key), &target, &out,
					 &out_length, &error),
			 LIC_PL_INTEGRITY);
	/* Another tenant's PL. */
	assert_int_equal(rewrap_document(xml, length, "fabrikam", VERSION_KEY_OF(old_key), &target, &out,
					 &out_length, &error),
			 LIC_USAGE);
	assert_non_null(strstr(error.message, "contoso"));
	/* Not a PL at all. */
	const char *garbage = "<UseLicense xmlns=\"urn:licensor:v1\" Version=\"1\"/>";
	assert_int_equal(rewrap_document(garbage, strlen(garbage), "contoso", VERSION_KEY_OF(old_key),
					 &target, &out, &out_length, &error),
			 LIC_MALFORMED);
	assert_int_equal(rewrap_document("junk", 4, "contoso", VERSION_KEY_OF(old_key), &target, &out,
					 &out_length, &error),
			 LIC_MALFORMED);
	assert_null(out);
	free(xml);
}

/* ---- rewrap_files over a store ---- */

struct fixture {
	char directory[64];
	char store_path[96];
	struct store *store;
	struct test_clock clock;
	lic_clock clock_interface;
	struct admin_context context;
};

static int setup_store(void **state)
{
	struct fixture *fixture = calloc(1, sizeof *fixture);
	lic_error error = {0};
	snprintf(fixture->directory, sizeof fixture->directory, "/tmp/licensor-rewrap-XXXXXX");
	assert_non_null(mkdtemp(fixture->directory));
	snprintf(fixture->store_path, sizeof fixture->store_path, "%s/store", fixture->directory);
	fixture->clock.now = 1795000000;
	fixture->clock_interface = (lic_clock){.now = test_clock_now, .context = &fixture->clock};
	struct store_options options = {.directory = fixture->store_path, .clock = &fixture->clock_interface};
	if (store_init(&options, &fixture->store, &error) != LIC_OK)
		fail_msg("init: %s", error.message);
	fixture->context = (struct admin_context){
	    .store = fixture->store, .clock = &fixture->clock_interface, .actor = "test"};
	assert_int_equal(admin_tenant_add(&fixture->context, "contoso", KEY_ALGORITHM_RSA_2048, &error),
			 LIC_OK);
	assert_int_equal(admin_tenant_add(&fixture->context, "fabrikam", KEY_ALGORITHM_RSA_2048, &error),
			 LIC_OK);
	*state = fixture;
	return 0;
}

static int teardown_store(void **state)
{
	struct fixture *fixture = *state;
	store_close(fixture->store);
	test_remove_tree(fixture->directory);
	free(fixture);
	return 0;
}

/* Publishes to the tenant's current publishing version into directory/name. */
static void publish_file(struct fixture *fixture, const char *tenant, const char *directory, const char *name,
			 uint8_t content_key[CONTENT_KEY_LENGTH])
{
	struct tenant *loaded = NULL;
	lic_error error = {0};
	EVP_PKEY *key = NULL;
	char *xml = NULL, path[256];
	size_t length = 0;
	assert_int_equal(admin_load_tenant(&fixture->context, tenant, &loaded, &error), LIC_OK);
	const struct key_version *version = tenant_signing_version(loaded, fixture->clock.now);
	assert_non_null(version);
	assert_int_equal(
	    key_material_from_public_der(version->public_key_der, version->public_key_length, &key, &error),
	    LIC_OK);
	RAND_bytes(content_key, CONTENT_KEY_LENGTH);
	publish(tenant, name, key, version->key_id_hex, content_key, &xml, &length);
	test_join_path(path, sizeof path, directory, name);
	assert_int_equal(file_write_atomic(path, xml, length, 0644, FILE_WRITE_NO_SYNC, &error), LIC_OK);
	free(xml);
	EVP_PKEY_free(key);
	tenant_free(loaded);
}

static size_t audit_lines(const struct fixture *fixture)
{
	struct audit_report report = {0};
	lic_error error = {0};
	assert_int_equal(audit_verify(fixture->store_path, &report, &error), LIC_OK);
	return report.lines;
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* The content key of a PL file, unwrapped with `version`'s private key. */
static void open_file(struct fixture *fixture, const char *path, uint32_t number,
		      uint8_t content_key[CONTENT_KEY_LENGTH])
{
	char *xml = NULL;
	size_t length = 0;
	lic_error error = {0};
	struct tenant *loaded = NULL;
	EVP_PKEY *key = NULL;
	struct publishing_license license;
	assert_int_equal(file_read_all(path, DOCUMENT_MAX_BYTES, &xml, &length, &error), LIC_OK);
	assert_int_equal(read_pl(xml, length, &license, &error), LIC_OK);
	assert_int_equal(admin_load_tenant(&fixture->context, "contoso", &loaded, &error), LIC_OK);
	const struct key_version *version = tenant_version(loaded, number);
	assert_string_equal(license.key_id_hex, version->key_id_hex);
	assert_int_equal(store_open_private_key(fixture->store->kek, "contoso", version, &key, &error),
			 LIC_OK);
	assert_int_equal(oaep_unwrap(VERSION_KEY_OF(key), license.body_digest, 32, license.enabling_bits,
				     license.enabling_bits_length, content_key, &error),
			 LIC_OK);
	EVP_PKEY_free(key);
	publishing_license_cleanup(&license);
	tenant_free(loaded);
	free(xml);
}

static void count_progress(size_t done, size_t total, void *argument)
{
	size_t *calls = argument;
	assert_int_equal(total, 4);
	assert_int_equal(done, ++*calls);
}

static void test_rewrap_files(void **state)
{
	struct fixture *fixture = *state;
	lic_error error = {0};
	char in[128], out[128], path[256];
	uint8_t keys[5][CONTENT_KEY_LENGTH], opened[CONTENT_KEY_LENGTH];
	snprintf(in, sizeof in, "%s/in", fixture->directory);
	snprintf(out, sizeof out, "%s/out", fixture->directory);
	assert_int_equal(file_make_directory(in, &error), LIC_OK);
	/* Two PLs under v1, then a rekey, two under v2, another rekey, one under v3. */
	publish_file(fixture, "contoso", in, "a.xml", keys[0]);
	publish_file(fixture, "contoso", in, "b.xml", keys[1]);
	struct rekey_request rekey = {.algorithm = KEY_ALGORITHM_RSA_2048, .immediate = true};
	assert_int_equal(admin_rekey(&fixture->context, "contoso", &rekey, NULL, &error), LIC_OK);
	publish_file(fixture, "contoso", in, "c.xml", keys[2]);
	publish_file(fixture, "contoso", in, "d.xml", keys[3]);
	assert_int_equal(admin_rekey(&fixture->context, "contoso", &rekey, NULL, &error), LIC_OK);
	publish_file(fixture, "contoso", in, "e.xml", keys[4]);
	publish_file(fixture, "fabrikam", in, "theirs.xml", opened);

	const char *names[] = {"d.xml", "a.xml", "e.xml", "c.xml", "b.xml"};
	char paths[5][256];
	const char *path_list[6];
	for (size_t i = 0; i < 5; i++) {
		test_join_path(paths[i], sizeof paths[i], in, names[i]);
		path_list[i] = paths[i];
	}
	char theirs[256];
	test_join_path(theirs, sizeof theirs, in, "theirs.xml");
	size_t lines = audit_lines(fixture);

	/* Refusals: nothing written, no audit line. */
	struct rewrap_summary summary;
	path_list[5] = theirs;
	assert_int_equal(
	    rewrap_files(&fixture->context, "contoso", out, path_list, 6, NULL, NULL, &summary, &error),
	    LIC_USAGE);
	assert_non_null(strstr(error.message, "theirs.xml"));
	assert_false(exists(out));
	assert_int_equal(
	    rewrap_files(&fixture->context, "contoso", in, path_list, 5, NULL, NULL, &summary, &error),
	    LIC_USAGE);
	assert_int_equal(
	    rewrap_files(&fixture->context, "nobody", out, path_list, 5, NULL, NULL, &summary, &error),
	    LIC_UNKNOWN_TENANT);
	const char *twice[] = {paths[0], paths[0]};
	assert_int_equal(
	    rewrap_files(&fixture->context, "contoso", out, twice, 2, NULL, NULL, &summary, &error),
	    LIC_USAGE);
	assert_false(exists(out));
	assert_int_equal(audit_lines(fixture), lines);

	/* The rewrap: v1 and v2 → v3, one group each, e.xml already current. */
	size_t progress_calls = 0;
	assert_int_equal(rewrap_files(&fixture->context, "contoso", out, path_list, 5, count_progress,
				      &progress_calls, &summary, &error),
			 LIC_OK);
	assert_int_equal(progress_calls, 4);
	assert_int_equal(summary.files, 5);
	assert_int_equal(summary.rewrapped, 4);
	assert_int_equal(summary.already_current, 1);
	assert_int_equal(summary.target_version, 3);
	assert_int_equal(summary.source_count, 2);
	assert_int_equal(summary.sources[0].version, 1);
	assert_int_equal(summary.sources[0].count, 2);
	assert_int_equal(summary.sources[1].version, 2);
	assert_int_equal(summary.sources[1].count, 2);
	rewrap_summary_cleanup(&summary);
	assert_int_equal(audit_lines(fixture), lines + 1);
	struct stat info;
	assert_int_equal(stat(out, &info), 0);
	assert_int_equal(info.st_mode & 0777, 0700);
	const char *sorted[] = {"a.xml", "b.xml", "c.xml", "d.xml", "e.xml"};
	for (size_t i = 0; i < 5; i++) {
		test_join_path(path, sizeof path, out, sorted[i]);
		open_file(fixture, path, 3, opened);
		assert_memory_equal(opened, keys[i], CONTENT_KEY_LENGTH);
	}
	/* e.xml was copied as it was. */
	char *before = NULL, *after = NULL;
	size_t before_length = 0, after_length = 0;
	test_join_path(path, sizeof path, in, "e.xml");
	assert_int_equal(file_read_all(path, DOCUMENT_MAX_BYTES, &before, &before_length, &error), LIC_OK);
	test_join_path(path, sizeof path, out, "e.xml");
	assert_int_equal(file_read_all(path, DOCUMENT_MAX_BYTES, &after, &after_length, &error), LIC_OK);
	assert_int_equal(before_length, after_length);
	assert_memory_equal(before, after, before_length);
	free(before);
	free(after);

	/* Revoke v1: its originals are refused by name, and nothing is written. */
	assert_int_equal(admin_revoke(&fixture->context, "contoso", 1, false, &error), LIC_OK);
	char again[128];
	snprintf(again, sizeof again, "%s/again", fixture->directory);
	lines = audit_lines(fixture);
	assert_int_equal(
	    rewrap_files(&fixture->context, "contoso", again, path_list, 5, NULL, NULL, &summary, &error),
	    LIC_KEY_REVOKED);
	assert_non_null(strstr(error.message, "a.xml"));
	assert_false(exists(again));
	assert_int_equal(audit_lines(fixture), lines);
	/* The rewrapped ones still open. */
	test_join_path(path, sizeof path, out, "a.xml");
	open_file(fixture, path, 3, opened);
	assert_memory_equal(opened, keys[0], CONTENT_KEY_LENGTH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rewrap_keeps_policy_and_content_key),
	    cmocka_unit_test(test_rewrap_keeps_layout),
	    cmocka_unit_test(test_rewrap_refusals),
	    cmocka_unit_test_setup_teardown(test_rewrap_files, setup_store, teardown_store),
	};
	return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
