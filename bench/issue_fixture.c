/*
 * issue_fixture.c: builds the world of the issuance benchmarks and runs the
 * pipeline's steps one at a time (see issue_fixture.h for what it promises).
 *
 * Everything is made the way the product makes it: store_init, a tenant by
 * admin_tenant_add, the RAC by rights_account_certificate_write, PLs by
 * publishing_license_write, the keyring by keyring_open_store. The single
 * steps call the same core functions the engine calls (engine.c), on inputs
 * prepared once, so that each benchmark times one step and nothing else.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/documents.h"
#include "core/policy.h"
#include "core/xml_signature.h"
#include "keyring/admin.h"
#include "keyring/error.h"
#include "keyring/file_io.h"
#include "keyring/snapshot.h"
#include "keyring/store.h"
#include "keyring/xml_document.h"

#include "issue_fixture.h"

#define TENANT "bench"
#define READER "reader@bench.example"
#define OWNER "owner@bench.example"
#define READER_RIGHTS "VIEW PRINT"
#define RAC_DAYS 31

struct pl_text {
	char *xml;
	size_t length;
};

struct issue_fixture {
	char root[PATH_MAX]; /* the mkdtemp directory; "" until made */
	lic_keyring *keyring;
	struct tenant *tenant; /* its version 1 publishes, unwraps and signs */
	EVP_PKEY *tenant_private, *tenant_public;
	EVP_PKEY *reader_key; /* key pair */
	uint8_t *reader_spki;
	size_t reader_spki_length;
	char *rac;
	size_t rac_length;
	xmlDocPtr rac_document;
	struct pl_text *pls;
	size_t pl_count;
	struct publishing_license pl0;
	bool pl0_read;
	uint8_t content_key[CONTENT_KEY_LENGTH];
	/* a use license's fields, as the engine fills them */
	struct use_license_fields license;
	uint8_t *license_enabling_bits;
	size_t license_enabling_bits_length;
	char rights_text[POLICY_RIGHTS_TEXT_MAX];
	struct policy policy;
	const char *super_users[2];
};

static const char *const policy_super_users[] = {"admin@bench.example", "auditor@bench.example"};

/* ---- setup ---- */

static int remove_entry(const char *path, const struct stat *info, int type, struct FTW *walk)
{
	(void)info;
	(void)type;
	(void)walk;
	return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static lic_status make_store(issue_fixture *fixture, struct store **out, lic_error *error)
{
	lic_status status = LIC_OK;
	char store_dir[PATH_MAX], kek_path[PATH_MAX];
	LIC_TRY(file_make_temporary_directory("licensor-bench-issue", fixture->root, sizeof fixture->root,
					      error));
	LIC_TRY(file_join(store_dir, sizeof store_dir, fixture->root, "store", error));
	LIC_TRY(file_join(kek_path, sizeof kek_path, fixture->root, "kek", error));
	struct store_options options = {.directory = store_dir, .kek_file = kek_path};
	LIC_TRY(store_init(&options, out, error));
out:
	return status;
}

static lic_status write_publishing_license(issue_fixture *fixture, size_t index, int64_t now,
					   struct pl_text *out, uint8_t content_key[CONTENT_KEY_LENGTH],
					   lic_error *error)
{
	static const char *const principals[] = {READER, "*@bench.example", "ANYONE"};
	static const char *const rights[] = {READER_RIGHTS, "VIEW", "VIEW"};
	char content_id[32];
	snprintf(content_id, sizeof content_id, "bench-%08zu", index);
	struct publish_request request = {.tenant = TENANT,
					  .content_id = content_id,
					  .owner = OWNER,
					  .grant_principals = principals,
					  .grant_rights = rights,
					  .grant_count = sizeof principals / sizeof principals[0],
					  .license_validity_days = 30,
					  .issued_at = now};
	if (RAND_priv_bytes(content_key, CONTENT_KEY_LENGTH) != 1)
		return lic_error_set(error, LIC_INTERNAL, "random generator failed");
	return publishing_license_write(&request, fixture->tenant_public,
					fixture->tenant->versions[0].key_id_hex, content_key, &out->xml,
					&out->length, error);
}

/* Ten grants: seven other addresses, the reader's domain, another domain,
 * ANYONE. The reader matches two of them: VIEW PRINT. */
static lic_status make_policy(issue_fixture *fixture, lic_error *error)
{
	lic_status status = LIC_OK;
	static const char *const principals[ISSUE_FIXTURE_POLICY_GRANTS] = {
	    "alice@bench.example", "bob@bench.example",
	    "carol@bench.example", "dave@other.example",
	    "erin@other.example",  "frank@other.example",
	    "grace@third.example", "*@bench.example",
	    "*@other.example",     "ANYONE"};
	static const char *const rights[ISSUE_FIXTURE_POLICY_GRANTS] = {
	    "VIEW EDIT",    "VIEW",  "VIEW PRINT EXPORT", "VIEW", "VIEW REPLY", "OWNER",
	    "VIEW FORWARD", "PRINT", "VIEW EDIT",         "VIEW"};
	fixture->policy.grants = calloc(ISSUE_FIXTURE_POLICY_GRANTS, sizeof *fixture->policy.grants);
	if (fixture->policy.grants == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	LIC_TRY(principal_normalize(OWNER, fixture->policy.owner, error));
	for (size_t i = 0; i < ISSUE_FIXTURE_POLICY_GRANTS; i++) {
		LIC_TRY(grant_parse_principal(principals[i], &fixture->policy.grants[i], error));
		LIC_TRY(rights_parse(rights[i], &fixture->policy.grants[i].rights, error));
		fixture->policy.grant_count++;
	}
	fixture->super_users[0] = policy_super_users[0];
	fixture->super_users[1] = policy_super_users[1];
out:
	return status;
}

/* The fields of a UL for PL 0, as build_license (engine.c) fills them. */
static lic_status make_license_fields(issue_fixture *fixture, int64_t now, lic_error *error)
{
	lic_status status = LIC_OK;
	struct use_license_fields *fields = &fixture->license;
	document_new_uuid(fields->license_id);
	LIC_TRY(oaep_wrap(fixture->reader_key, (const uint8_t *)fields->license_id,
			  strlen(fields->license_id), fixture->content_key, CONTENT_KEY_LENGTH,
			  &fixture->license_enabling_bits, &fixture->license_enabling_bits_length, error));
	snprintf(fixture->rights_text, sizeof fixture->rights_text, "%s", READER_RIGHTS);
	fields->tenant = TENANT;
	fields->content_id = fixture->pl0.content_id;
	fields->principal = READER;
	fields->issued_at = now;
	fields->not_after = now + 30 * 86400;
	fields->rights = fixture->rights_text;
	fields->publishing_license_digest = fixture->pl0.body_digest;
	fields->enabling_bits = fixture->license_enabling_bits;
	fields->enabling_bits_length = fixture->license_enabling_bits_length;
out:
	return status;
}

lic_status issue_fixture_new(size_t pl_count, issue_fixture **out, lic_error *error)
{
	lic_status status = LIC_OK;
	struct store *store = NULL;
	xmlDocPtr pl_document = NULL;
	uint8_t content_key[CONTENT_KEY_LENGTH];
	issue_fixture *fixture = calloc(1, sizeof *fixture);
	if (fixture == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	if (pl_count == 0)
		LIC_FAIL(error, LIC_USAGE, "the fixture needs at least one PL");
	xmlInitParser(); /* before any thread uses libxml2 */
	const lic_clock *clock = lic_clock_system();
	int64_t now = lic_clock_now(clock);

	LIC_TRY(make_store(fixture, &store, error));
	struct admin_context context = {.store = store, .clock = clock, .actor = "bench_issue"};
	LIC_TRY(admin_tenant_add(&context, TENANT, KEY_ALGORITHM_RSA_2048, error));
	LIC_TRY(store_load_tenant(store, TENANT, &fixture->tenant, error));
	const struct key_version *version = &fixture->tenant->versions[0];
	LIC_TRY(key_material_from_public_der(version->public_key_der, version->public_key_length,
					     &fixture->tenant_public, error));
	LIC_TRY(store_open_private_key(store->kek, TENANT, version, &fixture->tenant_private, error));
	LIC_TRY(key_material_generate(KEY_ALGORITHM_RSA_2048, &fixture->reader_key, error));
	LIC_TRY(key_material_public_der(fixture->reader_key, &fixture->reader_spki,
					&fixture->reader_spki_length, error));
	LIC_TRY(rights_account_certificate_write(TENANT, READER, fixture->reader_key, now - 60,
						 now + (int64_t)RAC_DAYS * 86400,
						 VERSION_KEY_OF(fixture->tenant_private), version->key_id_hex,
						 &fixture->rac, &fixture->rac_length, error));
	LIC_TRY(xml_document_parse(fixture->rac, fixture->rac_length, DOCUMENT_MAX_BYTES,
				   &fixture->rac_document, error));

	fixture->pls = calloc(pl_count, sizeof *fixture->pls);
	if (fixture->pls == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	for (size_t i = 0; i < pl_count; i++) {
		LIC_TRY(write_publishing_license(fixture, i, now, &fixture->pls[i], content_key, error));
		fixture->pl_count++;
		if (i == 0)
			memcpy(fixture->content_key, content_key, CONTENT_KEY_LENGTH);
	}
	LIC_TRY(xml_document_parse(fixture->pls[0].xml, fixture->pls[0].length, DOCUMENT_MAX_BYTES,
				   &pl_document, error));
	LIC_TRY(
	    publishing_license_read(pl_document, xmlDocGetRootElement(pl_document), &fixture->pl0, error));
	fixture->pl0_read = true;
	LIC_TRY(make_license_fields(fixture, now, error));
	LIC_TRY(make_policy(fixture, error));

	struct store *taken = store;
	store = NULL; /* keyring_open_store takes it over, and closes it on failure */
	LIC_TRY(keyring_open_store(taken, clock, &fixture->keyring, error));
	*out = fixture;
	fixture = NULL;
out:
	OPENSSL_cleanse(content_key, sizeof content_key);
	xmlFreeDoc(pl_document);
	store_close(store);
	issue_fixture_free(fixture);
	return status;
}

void issue_fixture_free(issue_fixture *fixture)
{
	if (fixture == NULL)
		return;
	lic_keyring_close(fixture->keyring);
	for (size_t i = 0; i < fixture->pl_count; i++)
		free(fixture->pls[i].xml);
	free(fixture->pls);
	if (fixture->pl0_read)
		publishing_license_cleanup(&fixture->pl0);
	free(fixture->license_enabling_bits);
	policy_cleanup(&fixture->policy);
	xmlFreeDoc(fixture->rac_document);
	free(fixture->rac);
	free(fixture->reader_spki);
	EVP_PKEY_free(fixture->reader_key);
	EVP_PKEY_free(fixture->tenant_private);
	EVP_PKEY_free(fixture->tenant_public);
	tenant_free(fixture->tenant);
	OPENSSL_cleanse(fixture->content_key, sizeof fixture->content_key);
	if (fixture->root[0] != '\0' && nftw(fixture->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "bench: cannot remove the temporary store %s: %s\n", fixture->root,
			strerror(errno));
	free(fixture);
}

lic_keyring *issue_fixture_keyring(issue_fixture *fixture)
{
	return fixture->keyring;
}

size_t issue_fixture_pl_count(const issue_fixture *fixture)
{
	return fixture->pl_count;
}

lic_license_request issue_fixture_request(const issue_fixture *fixture, size_t index)
{
	const struct pl_text *pl = &fixture->pls[index % fixture->pl_count];
	return (lic_license_request){
	    .rac = fixture->rac, .rac_length = fixture->rac_length, .pl = pl->xml, .pl_length = pl->length};
}

lic_status issue_fixture_private_key(issue_fixture *fixture, EVP_PKEY **out, lic_error *error)
{
	return store_open_private_key(keyring_store(fixture->keyring)->kek, TENANT,
				      &fixture->tenant->versions[0], out, error);
}

/* ---- single steps ---- */

lic_status issue_fixture_unwrap(issue_fixture *fixture, lic_error *error)
{
	uint8_t content_key[CONTENT_KEY_LENGTH];
	lic_status status = oaep_unwrap(VERSION_KEY_OF(fixture->tenant_private), fixture->pl0.body_digest,
					sizeof fixture->pl0.body_digest, fixture->pl0.enabling_bits,
					fixture->pl0.enabling_bits_length, content_key, error);
	if (status == LIC_OK && CRYPTO_memcmp(content_key, fixture->content_key, CONTENT_KEY_LENGTH) != 0)
		status = lic_error_set(error, LIC_INTERNAL, "the unwrap gave another content key");
	OPENSSL_cleanse(content_key, sizeof content_key);
	return status;
}

lic_status issue_fixture_wrap(issue_fixture *fixture, lic_error *error)
{
	uint8_t *wrapped = NULL;
	size_t wrapped_length = 0;
	lic_status status = oaep_wrap(fixture->reader_key, (const uint8_t *)fixture->license.license_id,
				      strlen(fixture->license.license_id), fixture->content_key,
				      CONTENT_KEY_LENGTH, &wrapped, &wrapped_length, error);
	free(wrapped);
	return status;
}

lic_status issue_fixture_decode_public_key(issue_fixture *fixture, lic_error *error)
{
	EVP_PKEY *key = NULL;
	lic_status status =
	    key_material_from_public_der(fixture->reader_spki, fixture->reader_spki_length, &key, error);
	EVP_PKEY_free(key);
	return status;
}

lic_status issue_fixture_rac_read(issue_fixture *fixture, bool verify, lic_error *error)
{
	struct rights_account_certificate rac;
	lic_status status = rights_account_certificate_read(
	    fixture->rac_document, xmlDocGetRootElement(fixture->rac_document), &rac, error);
	if (status != LIC_OK)
		return status;
	if (verify)
		status = rights_account_certificate_verify(&rac, fixture->tenant_public, error);
	rights_account_certificate_cleanup(&rac);
	return status;
}

lic_status issue_fixture_pl_read(issue_fixture *fixture, lic_error *error)
{
	xmlDocPtr document = NULL;
	struct publishing_license license;
	lic_status status = xml_document_parse(fixture->pls[0].xml, fixture->pls[0].length,
					       DOCUMENT_MAX_BYTES, &document, error);
	if (status == LIC_OK)
		status = publishing_license_read(document, xmlDocGetRootElement(document), &license, error);
	if (status == LIC_OK)
		publishing_license_cleanup(&license);
	xmlFreeDoc(document);
	return status;
}

lic_status issue_fixture_use_license_build(issue_fixture *fixture, bool serialize, lic_error *error)
{
	xmlDocPtr document = NULL;
	lic_status status = use_license_build(&fixture->license, VERSION_KEY_OF(fixture->tenant_private),
					      fixture->tenant->versions[0].key_id_hex, &document, error);
	if (status == LIC_OK && serialize) {
		xmlChar *text = NULL;
		int size = 0;
		xmlDocDumpMemoryEnc(document, &text, &size, "UTF-8");
		if (text == NULL)
			status = lic_error_set(error, LIC_INTERNAL, "cannot serialise the use license");
		xmlFree(text);
	}
	xmlFreeDoc(document);
	return status;
}

lic_status issue_fixture_policy_evaluate(issue_fixture *fixture, lic_error *error)
{
	struct rights rights;
	lic_status status =
	    policy_evaluate(&fixture->policy, READER, fixture->super_users, 2, &rights, error);
	if (status == LIC_OK && (rights.standard != (RIGHT_VIEW | RIGHT_PRINT) || rights.custom_count != 0))
		status = lic_error_set(error, LIC_INTERNAL, "the policy gave the reader other rights than %s",
				       READER_RIGHTS);
	return status;
}
