/*
 * test_documents.c: the license documents of DESIGN.md §2: a PL written and
 * read back (fields, the content key unwrapping under the Body's label); a
 * pretty-printed PL built the way another implementation would (its label
 * over its own canonical Body) accepted as it is; the refusals of the reader
 * with their codes; a RAC verifying standalone and embedded in a request that
 * declares its namespace; a UL opened with the user's key and not with
 * another.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <libxml/parser.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "core/documents.h"
#include "core/xml_signature.h"
#include "keyring/encoding.h"
#include "keyring/xml_document.h"
#include "test_helpers.h"

static EVP_PKEY *tenant_key, *user_key, *other_key;
static char tenant_key_id[KEY_ID_HEX_LENGTH];

static int setup_keys(void **state)
{
	(void)state;
	lic_error error = {0};
	if (key_material_generate(KEY_ALGORITHM_RSA_2048, &tenant_key, &error) != LIC_OK ||
	    key_material_generate(KEY_ALGORITHM_RSA_2048, &user_key, &error) != LIC_OK ||
	    key_material_generate(KEY_ALGORITHM_RSA_2048, &other_key, &error) != LIC_OK)
		return -1;
	uint8_t *spki = NULL, key_id[KEY_ID_LENGTH];
	size_t length = 0;
	key_material_public_der(tenant_key, &spki, &length, &error);
	key_id_of_spki(spki, length, key_id);
	hex_encode(key_id, KEY_ID_LENGTH, tenant_key_id);
	free(spki);
	return 0;
}

static int teardown_keys(void **state)
{
	(void)state;
	EVP_PKEY_free(tenant_key);
	EVP_PKEY_free(user_key);
	EVP_PKEY_free(other_key);
	return 0;
}

static lic_status read_pl(const char *xml, struct publishing_license *pl, lic_error *error)
{
	xmlDocPtr document = NULL;
	lic_status status = xml_document_parse(xml, strlen(xml), DOCUMENT_MAX_BYTES, &document, error);
	if (status == LIC_OK)
		status = publishing_license_read(document, xmlDocGetRootElement(document), pl, error);
	xmlFreeDoc(document);
	return status;
}

static void test_pl_round_trip(void **state)
{
	(void)state;
	const char *principals[] = {"Bob@Contoso.com", "*@fabrikam.com"};
	const char *rights[] = {"VIEW PRINT", "VIEW"};
	struct publish_request request = {.tenant = "contoso",
					  .content_id = "doc-1",
					  .owner = "Alice@Contoso.com",
					  .grant_principals = principals,
					  .grant_rights = rights,
					  .grant_count = 2,
					  .content_valid_until = 1800000000,
					  .license_validity_days = 7,
					  .issued_at = 1795000000};
	uint8_t content_key[CONTENT_KEY_LENGTH], unwrapped[CONTENT_KEY_LENGTH];
	RAND_bytes(content_key, sizeof content_key);
	char *xml = NULL;
	size_t length = 0;
	lic_error error = {0};
	assert_int_equal(
	    publishing_license_write(&request, tenant_key, tenant_key_id, content_key, &xml, &length, &error),
	    LIC_OK);
	struct publishing_license pl;
	assert_int_equal(read_pl(xml, &pl, &error), LIC_OK);
	assert_string_equal(pl.tenant, "contoso");
	assert_string_equal(pl.content_id, "doc-1");
	assert_string_equal(pl.key_id_hex, tenant_key_id);
	assert_string_equal(pl.policy.owner, "alice@contoso.com");
	assert_int_equal(pl.policy.grant_count, 2);
	assert_int_equal(pl.policy.grants[1].kind, PRINCIPAL_DOMAIN);
	assert_int_equal(pl.issued_at, 1795000000);
	assert_int_equal(pl.content_valid_until, 1800000000);
	assert_int_equal(pl.license_validity_days, 7);
	assert_int_equal(oaep_unwrap(VERSION_KEY_OF(tenant_key), pl.body_digest, 32, pl.enabling_bits,
				     pl.enabling_bits_length, unwrapped, &error),
			 LIC_OK);
	assert_memory_equal(unwrapped, content_key, CONTENT_KEY_LENGTH);
	/* Another key, or another label, does not unwrap it. */
	assert_int_equal(oaep_unwrap(VERSION_KEY_OF(other_key), pl.body_digest, 32, pl.enabling_bits,
				     pl.enabling_bits_length, unwrapped, &error),
			 LIC_PL_INTEGRITY);
	uint8_t wrong_label[32] = {0};
	assert_int_equal(oaep_unwrap(VERSION_KEY_OF(tenant_key), wrong_label, 32, pl.enabling_bits,
				     pl.enabling_bits_length, unwrapped, &error),
			 LIC_PL_INTEGRITY);
	publishing_license_cleanup(&pl);
	free(xml);
}

/* Copies template to out with "@BITS@" replaced by value. */
static void fill_placeholder(char *out, size_t size, const char *template, const char *value)
{
	const char *at = strstr(template, "@BITS@");
	assert_non_null(at);
	int written = snprintf(out, size, "%.*s%s%s", (int)(at - template), template, value, at + 6);
	assert_true(written > 0 && (size_t)written < size);
}

/* A PL as another implementation might write it: indented, attributes in
 * another order, a comment, an unused namespace on the root. Its author
 * computes the label over the canonical form of the Body it wrote. */
static void test_pretty_printed_pl_from_elsewhere(void **state)
{
	(void)state;
	char body[2048];
	snprintf(body, sizeof body,
		 "<PublishingLicense xmlns=\"urn:licensor:v1\" xmlns:unused=\"urn:x\" Version=\"1\">\n"
		 "  <!-- written by another SDK -->\n"
		 "  <Body>\n"
		 "    <Tenant>contoso</Tenant>\n"
		 "    <ContentId>doc &amp; notes</ContentId>\n"
		 "    <IssuedAt>2026-11-23T17:00:00Z</IssuedAt>\n"
		 "    <KeyId>%s</KeyId>\n"
		 "    <Owner>alice@contoso.com</Owner>\n"
		 "    <Policy>\n"
		 "      <LicenseValidityDays>30</LicenseValidityDays>\n"
		 "      <Grant Rights=\"VIEW\" Principal=\"bob@contoso.com\" />\n"
		 "    </Policy>\n"
		 "  </Body>\n"
		 "  <EnablingBits Algorithm=\"RSA-OAEP-SHA256\">@BITS@</EnablingBits>\n"
		 "</PublishingLicense>\n",
		 tenant_key_id);
	/* The author's label: SHA-256 of the exclusive C14N of its Body. */
	char draft[2048];
	fill_placeholder(draft, sizeof draft, body, "");
	xmlDocPtr document = NULL;
	lic_error error = {0};
	assert_int_equal(xml_document_parse(draft, strlen(draft), DOCUMENT_MAX_BYTES, &document, &error),
			 LIC_OK);
	xmlNodePtr node = xmlDocGetRootElement(document)->children;
	while (node->type != XML_ELEMENT_NODE)
		node = node->next;
	xmlChar *canonical = NULL;
	int canonical_length = 0;
	assert_int_equal(xml_c14n_subtree(document, node, &canonical, &canonical_length, &error), LIC_OK);
	/* The canonical Body declares the namespace it uses, drops the unused one, keeps the whitespace. */
	assert_true(strncmp((char *)canonical, "<Body xmlns=\"urn:licensor:v1\">\n    <Tenant>", 42) == 0);
	assert_non_null(
	    strstr((char *)canonical, "<Grant Principal=\"bob@contoso.com\" Rights=\"VIEW\"></Grant>"));
	assert_null(strstr((char *)canonical, "unused"));
	uint8_t label[32];
	SHA256(canonical, (size_t)canonical_length, label);
	xmlFree(canonical);
	xmlFreeDoc(document);
	uint8_t content_key[CONTENT_KEY_LENGTH], unwrapped[CONTENT_KEY_LENGTH];
	RAND_bytes(content_key, sizeof content_key);
	uint8_t *wrapped = NULL;
	size_t wrapped_length = 0;
	assert_int_equal(oaep_wrap(tenant_key, label, 32, content_key, 32, &wrapped, &wrapped_length, &error),
			 LIC_OK);
	char *bits = base64_encode(wrapped, wrapped_length);
	char final[4096];
	fill_placeholder(final, sizeof final, body, bits);
	struct publishing_license pl;
	assert_int_equal(read_pl(final, &pl, &error), LIC_OK);
	assert_string_equal(pl.content_id, "doc & notes");
	assert_memory_equal(pl.body_digest, label, 32);
	assert_int_equal(oaep_unwrap(VERSION_KEY_OF(tenant_key), pl.body_digest, 32, pl.enabling_bits,
				     pl.enabling_bits_length, unwrapped, &error),
			 LIC_OK);
	assert_memory_equal(unwrapped, content_key, 32);
	publishing_license_cleanup(&pl);
	free(bits);
	free(wrapped);
}

/* Writes a valid PL, applies one edit and returns the reader's verdict. */
static lic_status read_edited(const char *from, const char *to)
{
	const char *principals[] = {"bob@contoso.com"};
	const char *rights[] = {"VIEW"};
	struct publish_request request = {.tenant = "contoso",
					  .content_id = "doc-1",
					  .owner = "alice@contoso.com",
					  .grant_principals = principals,
					  .grant_rights = rights,
					  .grant_count = 1,
					  .license_validity_days = 30,
					  .issued_at = 1795000000};
	uint8_t content_key[CONTENT_KEY_LENGTH] = {1};
	char *xml = NULL;
	size_t length = 0;
	lic_error error = {0};
	assert_int_equal(
	    publishing_license_write(&request, tenant_key, tenant_key_id, content_key, &xml, &length, &error),
	    LIC_OK);
	const char *at = strstr(xml, from);
	if (at == NULL)
		fail_msg("'%s' is not in the PL", from);
	size_t size = length + strlen(to) + 1;
	char *edited = malloc(size);
	snprintf(edited, size, "%.*s%s%s", (int)(at - xml), xml, to, at + strlen(from));
	struct publishing_license pl;
	lic_status status = read_pl(edited, &pl, &error);
	if (status == LIC_OK)
		publishing_license_cleanup(&pl);
	else
		assert_true(strlen(error.message) > 5);
	free(edited);
	free(xml);
	return status;
}

static void test_pl_refusals(void **state)
{
	(void)state;
	assert_int_equal(read_edited("<Tenant>", "<Tenant>"), LIC_OK);
	assert_int_equal(read_edited("Version=\"1\"", "Version=\"2\""), LIC_UNSUPPORTED_VERSION);
	assert_int_equal(read_edited("Algorithm=\"RSA-OAEP-SHA256\"", "Algorithm=\"RSA-OAEP\""),
			 LIC_UNSUPPORTED_VERSION);
	assert_int_equal(read_edited("<KeyId>", "<KeyId>zz"), LIC_MALFORMED);
	assert_int_equal(read_edited("<Owner>", "<Owner>a@b.c</Owner><Owner>"), LIC_MALFORMED);
	assert_int_equal(read_edited("<IssuedAt>2026", "<IssuedAt>1926"), LIC_MALFORMED);
	assert_int_equal(read_edited("<LicenseValidityDays>30", "<LicenseValidityDays>3651"), LIC_MALFORMED);
	assert_int_equal(read_edited("<EnablingBits Algorithm=\"RSA-OAEP-SHA256\">",
				     "<EnablingBits Algorithm=\"RSA-OAEP-SHA256\">!"),
			 LIC_MALFORMED);
	assert_int_equal(read_edited("<Tenant>contoso", "<Tenant>../etc"), LIC_MALFORMED);
	assert_int_equal(read_edited("<Body>", "<Body>stray text"), LIC_MALFORMED);
	assert_int_equal(read_edited("<Policy>", "<Policy><Extra/>"), LIC_MALFORMED);
	assert_int_equal(read_edited("Principal=\"bob@contoso.com\"", "Principal=\"bob@@contoso.com\""),
			 LIC_MALFORMED);
	assert_int_equal(read_edited("Rights=\"VIEW\"", "Rights=\"view\""), LIC_MALFORMED);
	/* 257 grants: over the bound. */
	char *grants = malloc(257 * 64 + 16);
	grants[0] = '\0';
	for (int i = 0; i < 257; i++)
		strcat(grants, "<Grant Principal=\"ANYONE\" Rights=\"VIEW\"/>");
	strcat(grants, "<Grant ");
	assert_int_equal(read_edited("<Grant ", grants), LIC_TOO_LARGE);
	free(grants);
}

static void test_rac_standalone_and_embedded(void **state)
{
	(void)state;
	char *xml = NULL;
	size_t length = 0;
	lic_error error = {0};
	assert_int_equal(rights_account_certificate_write("contoso", "Bob@Contoso.com", user_key, 1795000000,
							  1797000000, VERSION_KEY_OF(tenant_key),
							  tenant_key_id, &xml, &length, &error),
			 LIC_OK);
	xmlDocPtr document = NULL;
	struct rights_account_certificate rac;
	assert_int_equal(xml_document_parse(xml, length, DOCUMENT_MAX_BYTES, &document, &error), LIC_OK);
	assert_int_equal(
	    rights_account_certificate_read(document, xmlDocGetRootElement(document), &rac, &error), LIC_OK);
	assert_string_equal(rac.principal, "bob@contoso.com");
	assert_string_equal(rac.signing_key_id_hex, tenant_key_id);
	assert_int_equal(rac.not_after, 1797000000);
	assert_int_equal(rights_account_certificate_decode_key(&rac, &error), LIC_OK);
	assert_int_equal(EVP_PKEY_eq(rac.public_key, user_key), 1);
	assert_int_equal(rights_account_certificate_verify(&rac, tenant_key, &error), LIC_OK);
	assert_int_equal(rights_account_certificate_verify(&rac, other_key, &error), LIC_RAC_INVALID);
	rights_account_certificate_cleanup(&rac);
	xmlFreeDoc(document);

	/* Embedded in a request whose root declares the namespace (a client that
	 * strips the RAC's own declaration): the canonical RAC is the same. */
	const char *rac_start = strstr(xml, "<RightsAccountCertificate");
	char *stripped = strdup(rac_start);
	char *declaration = strstr(stripped, " xmlns=\"urn:licensor:v1\"");
	memmove(declaration, declaration + strlen(" xmlns=\"urn:licensor:v1\""),
		strlen(declaration + strlen(" xmlns=\"urn:licensor:v1\"")) + 1);
	size_t size = strlen(stripped) + 128;
	char *request = malloc(size);
	snprintf(request, size,
		 "<AcquireLicense xmlns=\"urn:licensor:v1\">\n <Item>%s</Item></AcquireLicense>", stripped);
	assert_int_equal(xml_document_parse(request, strlen(request), DOCUMENT_MAX_BYTES, &document, &error),
			 LIC_OK);
	xmlNodePtr item = xmlDocGetRootElement(document)->children;
	while (item->type != XML_ELEMENT_NODE)
		item = item->next;
	assert_int_equal(rights_account_certificate_read(document, item->children, &rac, &error), LIC_OK);
	assert_int_equal(rights_account_certificate_verify(&rac, tenant_key, &error), LIC_OK);
	rights_account_certificate_cleanup(&rac);
	xmlFreeDoc(document);
	free(request);
	free(stripped);
	free(xml);
}

static void test_use_license_opens_with_the_user_key_only(void **state)
{
	(void)state;
	uint8_t content_key[CONTENT_KEY_LENGTH], opened[CONTENT_KEY_LENGTH], digest[32] = {7};
	RAND_bytes(content_key, sizeof content_key);
	struct use_license_fields fields = {.tenant = "contoso",
					    .content_id = "doc-1",
					    .principal = "bob@contoso.com",
					    .issued_at = 1795000000,
					    .not_after = 1795086400,
					    .rights = "VIEW PRINT",
					    .publishing_license_digest = digest};
	document_new_uuid(fields.license_id);
	uint8_t *wrapped = NULL;
	size_t wrapped_length = 0;
	lic_error error = {0};
	assert_int_equal(oaep_wrap(user_key, (const uint8_t *)fields.license_id, strlen(fields.license_id),
				   content_key, 32, &wrapped, &wrapped_length, &error),
			 LIC_OK);
	fields.enabling_bits = wrapped;
	fields.enabling_bits_length = wrapped_length;
	xmlDocPtr document = NULL;
	assert_int_equal(
	    use_license_build(&fields, VERSION_KEY_OF(tenant_key), tenant_key_id, &document, &error), LIC_OK);
	assert_int_equal(xml_signature_verify(document, tenant_key, &error), LIC_OK);
	xmlChar *text = NULL;
	int length = 0;
	xmlDocDumpMemoryEnc(document, &text, &length, "UTF-8");
	struct use_license license;
	assert_int_equal(use_license_read((const char *)text, (size_t)length, &license, &error), LIC_OK);
	assert_string_equal(license.rights, "VIEW PRINT");
	assert_string_equal(license.license_id, fields.license_id);
	assert_int_equal(license.not_after, 1795086400);
	assert_int_equal(use_license_open(&license, user_key, opened, &error), LIC_OK);
	assert_memory_equal(opened, content_key, 32);
	assert_int_equal(use_license_open(&license, other_key, opened, &error), LIC_PL_INTEGRITY);
	use_license_cleanup(&license);
	xmlFree(text);
	xmlFreeDoc(document);
	free(wrapped);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pl_round_trip),
	    cmocka_unit_test(test_pretty_printed_pl_from_elsewhere),
	    cmocka_unit_test(test_pl_refusals),
	    cmocka_unit_test(test_rac_standalone_and_embedded),
	    cmocka_unit_test(test_use_license_opens_with_the_user_key_only),
	};
	return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
