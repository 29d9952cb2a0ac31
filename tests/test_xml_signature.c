/*
 * test_xml_signature.c: exclusive C14N against hand-computed vectors, the
 * enveloped XML-DSig signature of RACs and ULs (sign, verify, tampering,
 * signature-wrapping shapes refused), and interoperability with xmlsec1 in
 * both directions.
 *
 * The wrapping tests build documents whose digest and signature are correct
 * (signed by a test-side signer that signs any shape), so the only thing that
 * can refuse them is the shape check; each asserts the sentence of that check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include "core/xml_signature.h"
#include "keyring/encoding.h"
#include "keyring/key_material.h"
#include "keyring/xml_document.h"
#include "test_helpers.h"

#define DSIG_ALGORITHM_C14N "http://www.w3.org/2001/10/xml-exc-c14n#"
#define DSIG_ALGORITHM_RSA_SHA256 "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
#define DSIG_ALGORITHM_ENVELOPED "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
#define DSIG_ALGORITHM_SHA256 "http://www.w3.org/2001/04/xmlenc#sha256"

/* Our exact Signature shape with empty values; KEYNAME is replaced by a key id. */
#define SIGNATURE_TEMPLATE                                                                                   \
	"<Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"><SignedInfo>"                               \
	"<CanonicalizationMethod Algorithm=\"" DSIG_ALGORITHM_C14N "\"/>"                                    \
	"<SignatureMethod Algorithm=\"" DSIG_ALGORITHM_RSA_SHA256 "\"/>"                                     \
	"<Reference URI=\"\"><Transforms>"                                                                   \
	"<Transform Algorithm=\"" DSIG_ALGORITHM_ENVELOPED "\"/>"                                            \
	"<Transform Algorithm=\"" DSIG_ALGORITHM_C14N "\"/>"                                                 \
	"</Transforms><DigestMethod Algorithm=\"" DSIG_ALGORITHM_SHA256 "\"/>"                               \
	"<DigestValue></DigestValue></Reference></SignedInfo><SignatureValue></SignatureValue>"              \
	"<KeyInfo><KeyName>KEYNAME</KeyName></KeyInfo></Signature>"

/* A use-license-like document around the template. */
#define TEMPLATE_DOCUMENT                                                                                    \
	"<UseLicense xmlns=\"urn:licensor:v1\" Version=\"1\"><Body Id=\"x\"><Tenant>contoso</Tenant>"        \
	"<Rights>VIEW PRINT</Rights></Body>" SIGNATURE_TEMPLATE "</UseLicense>"

static EVP_PKEY *signing_key;
static EVP_PKEY *other_key;
static char signing_key_id[KEY_ID_HEX_LENGTH];
static char work_directory[64];

/* ---- helpers ---- */

static int setup_group(void **state)
{
	(void)state;
	if (key_material_generate(KEY_ALGORITHM_RSA_2048, &signing_key, NULL) != LIC_OK ||
	    key_material_generate(KEY_ALGORITHM_RSA_2048, &other_key, NULL) != LIC_OK)
		return -1;
	uint8_t *spki = NULL;
	size_t spki_length = 0;
	uint8_t key_id[KEY_ID_LENGTH];
	if (key_material_public_der(signing_key, &spki, &spki_length, NULL) != LIC_OK)
		return -1;
	key_id_of_spki(spki, spki_length, key_id);
	hex_encode(key_id, KEY_ID_LENGTH, signing_key_id);
	free(spki);
	snprintf(work_directory, sizeof work_directory, "/tmp/test_xml_signature.XXXXXX");
	return mkdtemp(work_directory) != NULL ? 0 : -1;
}

static int teardown_group(void **state)
{
	(void)state;
	EVP_PKEY_free(signing_key);
	EVP_PKEY_free(other_key);
	/* TEST_KEEP_FILES=1 keeps the files handed to xmlsec1, for a look. */
	if (getenv("TEST_KEEP_FILES") == NULL)
		test_remove_tree(work_directory);
	return 0;
}

static xmlDocPtr parse(const char *xml)
{
	xmlDocPtr document = NULL;
	lic_error error = {0};
	lic_status status = xml_document_parse(xml, strlen(xml), 1u << 20, &document, &error);
	if (status != LIC_OK)
		fail_msg("parse: %s", error.message);
	return document;
}

/* The first element named `name` in document order below (and including) node. */
static xmlNodePtr find_element(xmlNodePtr node, const char *name)
{
	for (; node != NULL; node = node->next) {
		if (node->type != XML_ELEMENT_NODE)
			continue;
		if (strcmp((const char *)node->name, name) == 0)
			return node;
		xmlNodePtr found = find_element(node->children, name);
		if (found != NULL)
			return found;
	}
	return NULL;
}

/* The last child element of the root in the XML-DSig namespace named Signature. */
static xmlNodePtr root_signature(xmlDocPtr document)
{
	xmlNodePtr found = NULL;
	for (xmlNodePtr child = xmlDocGetRootElement(document)->children; child != NULL; child = child->next)
		if (child->type == XML_ELEMENT_NODE && strcmp((const char *)child->name, "Signature") == 0 &&
		    child->ns != NULL && strcmp((const char *)child->ns->href, XMLDSIG_NAMESPACE) == 0)
			found = child;
	assert_non_null(found);
	return found;
}

static void check_c14n(const char *xml, const char *element, const char *expected)
{
	xmlDocPtr document = parse(xml);
	xmlNodePtr node = find_element(document->children, element);
	assert_non_null(node);
	xmlChar *text = NULL;
	int length = -1;
	lic_error error = {0};
	assert_int_equal(xml_c14n_subtree(document, node, &text, &length, &error), LIC_OK);
	assert_string_equal((const char *)text, expected);
	assert_int_equal(length, (int)strlen(expected));
	xmlFree(text);
	xmlFreeDoc(document);
}

/* Compact serialisation (new string, free()). */
static char *serialize(xmlDocPtr document)
{
	xmlChar *text = NULL;
	int length = 0;
	xmlDocDumpMemoryEnc(document, &text, &length, "UTF-8");
	assert_non_null(text);
	char *copy = strdup((const char *)text);
	xmlFree(text);
	return copy;
}

/* text with its only occurrence of `from` replaced by `to` (new string, free()). */
static char *replace_once(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	if (at == NULL)
		fail_msg("'%s' not found", from);
	if (strstr(at + 1, from) != NULL)
		fail_msg("'%s' found twice", from);
	size_t size = strlen(text) - strlen(from) + strlen(to) + 1;
	char *out = malloc(size);
	snprintf(out, size, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
	return out;
}

/* A signed document, signed by our signer, compact (new string, free()). */
static char *signed_sample(const char *xml)
{
	xmlDocPtr document = parse(xml);
	lic_error error = {0};
	lic_status status = xml_signature_sign(document, VERSION_KEY_OF(signing_key), signing_key_id, &error);
	if (status != LIC_OK)
		fail_msg("sign: %s", error.message);
	char *text = serialize(document);
	xmlFreeDoc(document);
	return text;
}

#define SAMPLE                                                                                               \
	"<UseLicense xmlns=\"urn:licensor:v1\" Version=\"1\"><Body><LicenseId>1c0e</LicenseId>"              \
	"<Tenant>contoso</Tenant><Rights>VIEW PRINT</Rights></Body></UseLicense>"

/* Parses xml, reads its KeyName and verifies it with key; the error is kept. */
static lic_status verify_text(const char *xml, EVP_PKEY *key, lic_error *error)
{
	xmlDocPtr document = NULL;
	lic_status status = xml_document_parse(xml, strlen(xml), 1u << 20, &document, error);
	if (status != LIC_OK)
		return status;
	char key_name[33];
	status = xml_signature_key_name(document, key_name, error);
	if (status == LIC_OK && strcmp(key_name, signing_key_id) != 0)
		fail_msg("KeyName is %s", key_name);
	if (status == LIC_OK)
		status = xml_signature_verify(document, key, error);
	xmlFreeDoc(document);
	return status;
}

static void expect_refused(const char *xml, EVP_PKEY *key, const char *phrase)
{
	lic_error error = {0};
	lic_status status = verify_text(xml, key, &error);
	if (status != LIC_RAC_INVALID)
		fail_msg("expected RAC_INVALID, got %s (%s)", lic_status_code(status), error.message);
	assert_int_equal(error.status, LIC_RAC_INVALID);
	if (phrase != NULL && strstr(error.message, phrase) == NULL)
		fail_msg("'%s' does not say '%s'", error.message, phrase);
}

static void expect_accepted(const char *xml, EVP_PKEY *key)
{
	lic_error error = {0};
	lic_status status = verify_text(xml, key, &error);
	if (status != LIC_OK)
		fail_msg("refused: %s %s", lic_status_code(status), error.message);
}

static void set_text(xmlNodePtr node, const char *text)
{
	while (node->children != NULL) {
		xmlNodePtr child = node->children;
		xmlUnlinkNode(child);
		xmlFreeNode(child);
	}
	xmlAddChild(node, xmlNewDocText(node->doc, (const xmlChar *)text));
}

/* A naive signer that signs whatever Signature shape `signature` has: the
 * first DigestValue gets SHA-256 of the C14N of the document without
 * `signature`, the first SignatureValue the RSA-SHA256 of the C14N of the
 * first SignedInfo. It is what makes the wrapping tests cryptographically
 * valid, so that only the shape check can refuse them. */
static void naive_sign(xmlDocPtr document, xmlNodePtr signature, EVP_PKEY *key)
{
	lic_error error = {0};
	xmlNodePtr root = xmlDocGetRootElement(document);
	xmlNodePtr parent = signature->parent, next = signature->next;
	uint8_t digest[32];
	xmlUnlinkNode(signature);
	assert_int_equal(xml_c14n_digest(document, root, digest, &error), LIC_OK);
	if (next != NULL)
		xmlAddPrevSibling(next, signature);
	else
		xmlAddChild(parent, signature);
	char *text = base64_encode(digest, sizeof digest);
	set_text(find_element(signature->children, "DigestValue"), text);
	free(text);

	xmlChar *signed_info = NULL;
	int length = 0;
	assert_int_equal(xml_c14n_subtree(document, find_element(signature->children, "SignedInfo"),
					  &signed_info, &length, &error),
			 LIC_OK);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t value[1024];
	size_t value_length = sizeof value;
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
	assert_int_equal(EVP_DigestSign(md, value, &value_length, signed_info, (size_t)length), 1);
	EVP_MD_CTX_free(md);
	xmlFree(signed_info);
	text = base64_encode(value, value_length);
	set_text(find_element(signature->children, "SignatureValue"), text);
	free(text);
}

/* TEMPLATE_DOCUMENT with `from` replaced by `to` (NULL: as is), signed by
 * the naive signer, compact (new string, free()). */
static char *naive_signed(const char *from, const char *to)
{
	char *xml = replace_once(TEMPLATE_DOCUMENT, "KEYNAME", signing_key_id);
	if (from != NULL) {
		char *changed = replace_once(xml, from, to);
		free(xml);
		xml = changed;
	}
	xmlDocPtr document = parse(xml);
	naive_sign(document, root_signature(document), signing_key);
	char *text = serialize(document);
	xmlFreeDoc(document);
	free(xml);
	return text;
}

static bool have_xmlsec1(void)
{
	return system("command -v xmlsec1 >/dev/null 2>&1") == 0;
}

static void write_file(const char *name, const char *text, char *path, size_t size)
{
	test_join_path(path, size, work_directory, name);
	FILE *file = fopen(path, "w");
	assert_non_null(file);
	assert_int_equal(fwrite(text, 1, strlen(text), file), strlen(text));
	assert_int_equal(fclose(file), 0);
}

static char *read_file(const char *path)
{
	FILE *file = fopen(path, "r");
	assert_non_null(file);
	char *text = calloc(1, 1u << 20);
	size_t length = fread(text, 1, (1u << 20) - 1, file);
	assert_true(length > 0);
	fclose(file);
	return text;
}

static void write_pem(const char *name, EVP_PKEY *key, bool private_key, char *path, size_t size)
{
	test_join_path(path, size, work_directory, name);
	FILE *file = fopen(path, "w");
	assert_non_null(file);
	if (private_key)
		assert_int_equal(PEM_write_PrivateKey(file, key, NULL, NULL, 0, NULL, NULL), 1);
	else
		assert_int_equal(PEM_write_PUBKEY(file, key), 1);
	assert_int_equal(fclose(file), 0);
}

/* Exit status of `xmlsec1 --verify --pubkey-pem PEM` on xml. */
static int xmlsec1_verify(const char *xml, EVP_PKEY *key)
{
	char document_path[256], key_path[256], command[1024];
	write_file("verify.xml", xml, document_path, sizeof document_path);
	write_pem("verify.pub.pem", key, false, key_path, sizeof key_path);
	snprintf(command, sizeof command, "xmlsec1 --verify --pubkey-pem '%s' '%s' >/dev/null 2>&1", key_path,
		 document_path);
	return system(command);
}

/* ---- exclusive C14N vectors (computed by hand from the W3C specs) ---- */

static void test_c14n_renders_inherited_default_namespace(void **state)
{
	(void)state;
	check_c14n("<A xmlns=\"urn:licensor:v1\"><Body><X>1</X></Body></A>", "Body",
		   "<Body xmlns=\"urn:licensor:v1\"><X>1</X></Body>");
}

static void test_c14n_sorts_attributes_and_drops_unused_namespaces(void **state)
{
	(void)state;
	const char *xml = "<A xmlns=\"urn:licensor:v1\" xmlns:foo=\"urn:foo\" xmlns:bar=\"urn:bar\">\n"
			  "  <Body z=\"1\" bar:q=\"3\" a='2'>\n"
			  "    <X/>\n"
			  "    <Y   b='x'  a=\"y\" />\n"
			  "  </Body>\n"
			  "</A>\n";
	/* Namespaces first (default, then by prefix), then attributes by
	 * (namespace URI, local name): unqualified ones first. foo is in
	 * scope but not used: never rendered. */
	check_c14n(xml, "Body",
		   "<Body xmlns=\"urn:licensor:v1\" xmlns:bar=\"urn:bar\" a=\"2\" z=\"1\" bar:q=\"3\">\n"
		   "    <X></X>\n"
		   "    <Y a=\"y\" b=\"x\"></Y>\n"
		   "  </Body>");
	/* The root itself: bar is not used by A, so it is rendered on Body. */
	check_c14n(xml, "A",
		   "<A xmlns=\"urn:licensor:v1\">\n"
		   "  <Body xmlns:bar=\"urn:bar\" a=\"2\" z=\"1\" bar:q=\"3\">\n"
		   "    <X></X>\n"
		   "    <Y a=\"y\" b=\"x\"></Y>\n"
		   "  </Body>\n"
		   "</A>");
}

static void test_c14n_renders_prefix_where_first_used(void **state)
{
	(void)state;
	check_c14n(
	    "<A xmlns=\"urn:licensor:v1\" xmlns:p=\"urn:p\"><Body><p:Y p:k=\"v\">1</p:Y><Z/></Body></A>",
	    "Body", "<Body xmlns=\"urn:licensor:v1\"><p:Y xmlns:p=\"urn:p\" p:k=\"v\">1</p:Y><Z></Z></Body>");
	/* An element in no namespace under a default namespace undeclares it. */
	check_c14n("<A xmlns=\"urn:licensor:v1\"><Body><N xmlns=\"\">x</N></Body></A>", "Body",
		   "<Body xmlns=\"urn:licensor:v1\"><N xmlns=\"\">x</N></Body>");
}

static void test_c14n_escapes_text_and_attributes(void **state)
{
	(void)state;
	check_c14n("<A xmlns=\"urn:licensor:v1\"><B t=\"&quot;&lt;&gt;&amp;&#9;&#10;&#13;'\">"
		   "a &amp; b &lt; c &gt; d \"e\" 'f'&#13;\xc3\xa9&#233;</B></A>",
		   "B",
		   "<B xmlns=\"urn:licensor:v1\" t=\"&quot;&lt;>&amp;&#x9;&#xA;&#xD;'\">"
		   "a &amp; b &lt; c &gt; d \"e\" 'f'&#xD;\xc3\xa9\xc3\xa9</B>");
}

static void test_c14n_keeps_whitespace_drops_comments_expands_empty(void **state)
{
	(void)state;
	check_c14n(
	    "<A xmlns=\"urn:licensor:v1\"><B>  lead\r\n<!-- gone --><C/><D></D><?pi data?>trail  </B></A>",
	    "B", "<B xmlns=\"urn:licensor:v1\">  lead\n<C></C><D></D><?pi data?>trail  </B>");
}

static void test_c14n_digest_is_sha256_of_c14n(void **state)
{
	(void)state;
	xmlDocPtr document = parse("<A xmlns=\"urn:licensor:v1\">\n  <Body><X>1</X></Body>\n</A>");
	uint8_t digest[32], expected[32];
	lic_error error = {0};
	assert_int_equal(xml_c14n_digest(document, find_element(document->children, "Body"), digest, &error),
			 LIC_OK);
	const char *canonical = "<Body xmlns=\"urn:licensor:v1\"><X>1</X></Body>";
	SHA256((const unsigned char *)canonical, strlen(canonical), expected);
	assert_memory_equal(digest, expected, 32);
	/* A node of another document is a caller bug. */
	xmlDocPtr other = parse("<A/>");
	assert_int_equal(xml_c14n_digest(document, xmlDocGetRootElement(other), digest, &error),
			 LIC_INTERNAL);
	xmlFreeDoc(other);
	xmlFreeDoc(document);
}

/* ---- signing and verifying ---- */

/* The whole signed document, byte for byte: the digest is SHA-256 of the
 * hand-written C14N of the document without its Signature, and the
 * signature verifies (OpenSSL directly) over the hand-written C14N of
 * SignedInfo. */
static void test_sign_writes_exact_shape_and_values(void **state)
{
	(void)state;
	char *xml = signed_sample("<A xmlns=\"urn:licensor:v1\"><Body><X>1</X></Body></A>");
	uint8_t digest[32];
	const char *content = "<A xmlns=\"urn:licensor:v1\"><Body><X>1</X></Body></A>";
	SHA256((const unsigned char *)content, strlen(content), digest);
	char *digest_text = base64_encode(digest, 32);

	const char *value_start = strstr(xml, "<SignatureValue>");
	assert_non_null(value_start);
	value_start += strlen("<SignatureValue>");
	const char *value_end = strstr(value_start, "</SignatureValue>");
	assert_non_null(value_end);
	char *value_text = strndup(value_start, (size_t)(value_end - value_start));

	char expected[4096];
	snprintf(expected, sizeof expected,
		 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		 "<A xmlns=\"urn:licensor:v1\"><Body><X>1</X></Body>"
		 "<Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"><SignedInfo>"
		 "<CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>"
		 "<SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>"
		 "<Reference URI=\"\"><Transforms>"
		 "<Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>"
		 "<Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></Transforms>"
		 "<DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/>"
		 "<DigestValue>%s</DigestValue></Reference></SignedInfo>"
		 "<SignatureValue>%s</SignatureValue>"
		 "<KeyInfo><KeyName>%s</KeyName></KeyInfo></Signature></A>\n",
		 digest_text, value_text, signing_key_id);
	assert_string_equal(xml, expected);

	char signed_info[2048];
	snprintf(signed_info, sizeof signed_info,
		 "<SignedInfo xmlns=\"http://www.w3.org/2000/09/xmldsig#\">"
		 "<CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\">"
		 "</CanonicalizationMethod>"
		 "<SignatureMethod "
		 "Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"></SignatureMethod>"
		 "<Reference URI=\"\"><Transforms>"
		 "<Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"></Transform>"
		 "<Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"></Transform></Transforms>"
		 "<DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"></DigestMethod>"
		 "<DigestValue>%s</DigestValue></Reference></SignedInfo>",
		 digest_text);
	uint8_t *value = NULL;
	size_t value_length = 0;
	assert_int_equal(base64_decode(value_text, strlen(value_text), &value, &value_length, NULL), LIC_OK);
	assert_int_equal(value_length, 256);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *key_context = NULL;
	assert_int_equal(EVP_DigestVerifyInit(md, &key_context, EVP_sha256(), NULL, signing_key), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(key_context, RSA_PKCS1_PADDING), 1);
	assert_int_equal(EVP_DigestVerify(md, value, value_length, (const unsigned char *)signed_info,
					  strlen(signed_info)),
			 1);
	EVP_MD_CTX_free(md);
	free(value);
	free(value_text);
	free(digest_text);
	free(xml);
}

static void test_sign_then_verify(void **state)
{
	(void)state;
	char *xml = signed_sample(SAMPLE);
	expect_accepted(xml, signing_key);

	/* The in-memory document verifies too, and its KeyName is the key id. */
	xmlDocPtr document = parse(SAMPLE);
	lic_error error = {0};
	char key_name[33] = "unchanged";
	assert_int_equal(xml_signature_key_name(document, key_name, &error), LIC_RAC_INVALID);
	assert_string_equal(key_name, "");
	assert_int_equal(xml_signature_sign(document, VERSION_KEY_OF(signing_key), signing_key_id, &error),
			 LIC_OK);
	assert_int_equal(xml_signature_key_name(document, key_name, &error), LIC_OK);
	assert_string_equal(key_name, signing_key_id);
	assert_int_equal(xml_signature_verify(document, signing_key, &error), LIC_OK);
	/* Signing twice is a caller bug, and changes nothing. */
	char *before = serialize(document);
	assert_int_equal(xml_signature_sign(document, VERSION_KEY_OF(signing_key), signing_key_id, &error),
			 LIC_INTERNAL);
	char *after = serialize(document);
	assert_string_equal(before, after);
	free(before);
	free(after);
	xmlFreeDoc(document);

	/* A pretty-printed document keeps its whitespace under the signature. */
	char *pretty = signed_sample("<UseLicense xmlns=\"urn:licensor:v1\" Version=\"1\">\n"
				     "  <Body>\n    <Tenant>contoso</Tenant>\n  </Body>\n"
				     "</UseLicense>\n");
	expect_accepted(pretty, signing_key);
	free(pretty);
	free(xml);
}

static void test_sign_refuses_bad_arguments(void **state)
{
	(void)state;
	xmlDocPtr document = parse(SAMPLE);
	lic_error error = {0};
	assert_int_equal(xml_signature_sign(document, VERSION_KEY_OF(signing_key),
					    "ABCDEF0123456789ABCDEF0123456789", &error),
			 LIC_INTERNAL);
	assert_int_equal(xml_signature_sign(document, VERSION_KEY_OF(signing_key), "0123", &error),
			 LIC_INTERNAL);
	EVP_PKEY *ec_key = EVP_EC_gen("P-256");
	assert_non_null(ec_key);
	assert_int_equal(xml_signature_sign(document, VERSION_KEY_OF(ec_key), signing_key_id, &error),
			 LIC_INTERNAL);
	char *text = serialize(document);
	assert_null(strstr(text, "Signature"));
	free(text);
	xmlFreeDoc(document);

	/* A document that already holds a Signature (here inside Body). */
	document = parse("<A xmlns=\"urn:licensor:v1\"><Body><Signature xmlns=\"" XMLDSIG_NAMESPACE
			 "\"/></Body></A>");
	assert_int_equal(xml_signature_sign(document, VERSION_KEY_OF(signing_key), signing_key_id, &error),
			 LIC_INTERNAL);
	xmlFreeDoc(document);

	/* Verifying with a key that is not RSA. */
	char *xml = signed_sample(SAMPLE);
	expect_refused(xml, ec_key, "not an RSA key");
	free(xml);
	EVP_PKEY_free(ec_key);
}

static void test_tampering_is_refused(void **state)
{
	(void)state;
	char *xml = signed_sample(SAMPLE);
	char *changed;

	/* One character of a signed text node. */
	changed = replace_once(xml, "contoso", "contosp");
	expect_refused(changed, signing_key, "digest mismatch");
	free(changed);
	/* An attribute of the root. */
	changed = replace_once(xml, "Version=\"1\"", "Version=\"2\"");
	expect_refused(changed, signing_key, "digest mismatch");
	free(changed);
	/* Whitespace added inside the signed content (what an indenting
	 * serialiser does). */
	changed = replace_once(xml, "<Tenant>", "\n  <Tenant>");
	expect_refused(changed, signing_key, "digest mismatch");
	free(changed);
	/* An element added to the Body. */
	changed = replace_once(xml, "</Body>", "<Rights>OWNER</Rights></Body>");
	expect_refused(changed, signing_key, "digest mismatch");
	free(changed);

	/* The DigestValue: one base64 character changed. */
	const char *digest = strstr(xml, "<DigestValue>") + strlen("<DigestValue>");
	changed = strdup(xml);
	changed[digest - xml] = digest[0] == 'A' ? 'B' : 'A';
	expect_refused(changed, signing_key, NULL);
	free(changed);
	/* The SignatureValue: one base64 character changed. */
	const char *value = strstr(xml, "<SignatureValue>") + strlen("<SignatureValue>");
	changed = strdup(xml);
	changed[value + 10 - xml] = value[10] == 'A' ? 'B' : 'A';
	expect_refused(changed, signing_key, "does not verify");
	free(changed);
	/* A SignatureValue that is not base64, or empty. */
	changed = strdup(xml);
	changed[value + 10 - xml] = '!';
	expect_refused(changed, signing_key, "not base64");
	free(changed);

	/* The wrong public key. */
	expect_refused(xml, other_key, "does not verify");
	/* The untouched document still verifies (the tests above are not vacuous). */
	expect_accepted(xml, signing_key);
	free(xml);
}

/* The naive signer on our own shape is accepted: the refusals below come from
 * the shape check, not from a broken naive signer. */
static void test_naive_signer_control(void **state)
{
	(void)state;
	char *xml = naive_signed(NULL, NULL);
	expect_accepted(xml, signing_key);
	free(xml);
	/* Namespace prefixes and whitespace between the Signature's elements are
	 * free: C14N covers them. */
	char *prefixed = replace_once(
	    "<UseLicense xmlns=\"urn:licensor:v1\" xmlns:ds=\"" XMLDSIG_NAMESPACE "\" Version=\"1\">"
	    "<Body><Tenant>contoso</Tenant></Body>\n"
	    "<ds:Signature>\n <ds:SignedInfo>\n  <ds:CanonicalizationMethod Algorithm=\"" DSIG_ALGORITHM_C14N
	    "\"/>\n"
	    "  <ds:SignatureMethod Algorithm=\"" DSIG_ALGORITHM_RSA_SHA256 "\"/>\n"
	    "  <ds:Reference URI=\"\"><ds:Transforms><ds:Transform Algorithm=\"" DSIG_ALGORITHM_ENVELOPED
	    "\"/>"
	    "<ds:Transform Algorithm=\"" DSIG_ALGORITHM_C14N "\"/></ds:Transforms>"
	    "<ds:DigestMethod Algorithm=\"" DSIG_ALGORITHM_SHA256 "\"/><ds:DigestValue/></ds:Reference>\n"
	    " </ds:SignedInfo>\n <ds:SignatureValue/>\n"
	    " <ds:KeyInfo><ds:KeyName>KEYNAME</ds:KeyName></ds:KeyInfo>\n</ds:Signature>\n</UseLicense>",
	    "KEYNAME", signing_key_id);
	xmlDocPtr document = parse(prefixed);
	naive_sign(document, root_signature(document), signing_key);
	char *text = serialize(document);
	assert_non_null(strstr(text, "<ds:Transform Algorithm"));
	expect_accepted(text, signing_key);
	free(text);
	xmlFreeDoc(document);
	free(prefixed);
}

static void check_wrapping(const char *from, const char *to, const char *phrase)
{
	char *xml = naive_signed(from, to);
	expect_refused(xml, signing_key, phrase);
	free(xml);
}

static void test_wrapping_shapes_are_refused(void **state)
{
	(void)state;
	/* Another Reference target. */
	check_wrapping("<Reference URI=\"\">", "<Reference URI=\"#x\">", "Reference must carry URI=\"\"");
	check_wrapping("<Reference URI=\"\">", "<Reference>", "Reference must carry URI=\"\"");
	check_wrapping("<Reference URI=\"\">", "<Reference URI=\"\" Id=\"r\">", "unexpected attribute Id");
	/* A second Reference. */
	check_wrapping(
	    "</Reference></SignedInfo>",
	    "</Reference><Reference URI=\"#x\"><Transforms/><DigestMethod Algorithm=\"" DSIG_ALGORITHM_SHA256
	    "\"/><DigestValue>AAAA</DigestValue></Reference></SignedInfo>",
	    "unexpected element Reference in SignedInfo");
	/* An extra Transform, the transforms swapped, an InclusiveNamespaces list. */
	check_wrapping("</Transforms>", "<Transform Algorithm=\"" DSIG_ALGORITHM_C14N "\"/></Transforms>",
		       "unexpected element Transform in Transforms");
	check_wrapping("<Transform Algorithm=\"" DSIG_ALGORITHM_ENVELOPED
		       "\"/><Transform Algorithm=\"" DSIG_ALGORITHM_C14N "\"/>",
		       "<Transform Algorithm=\"" DSIG_ALGORITHM_C14N
		       "\"/><Transform Algorithm=\"" DSIG_ALGORITHM_ENVELOPED "\"/>",
		       "Transform must carry Algorithm=\"" DSIG_ALGORITHM_ENVELOPED "\"");
	check_wrapping("<Transform Algorithm=\"" DSIG_ALGORITHM_C14N "\"/>",
		       "<Transform Algorithm=\"" DSIG_ALGORITHM_C14N
		       "\"><InclusiveNamespaces xmlns=\"" DSIG_ALGORITHM_C14N
		       "\" PrefixList=\"#default\"/></Transform>",
		       "unexpected element InclusiveNamespaces in Transform");
	check_wrapping("<Transform Algorithm=\"" DSIG_ALGORITHM_ENVELOPED "\"/>", "",
		       "element Transform is missing");
	/* Other algorithms. */
	check_wrapping(DSIG_ALGORITHM_RSA_SHA256, "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
		       "SignatureMethod must carry");
	check_wrapping(
	    "<CanonicalizationMethod Algorithm=\"" DSIG_ALGORITHM_C14N "\"/>",
	    "<CanonicalizationMethod Algorithm=\"http://www.w3.org/TR/2001/REC-xml-c14n-20010315\"/>",
	    "CanonicalizationMethod must carry");
	check_wrapping(DSIG_ALGORITHM_SHA256, "http://www.w3.org/2000/09/xmldsig#sha1",
		       "DigestMethod must carry");
	/* Extra elements and attributes in the Signature. */
	check_wrapping(
	    "</KeyInfo></Signature>",
	    "</KeyInfo><Object><Body xmlns=\"urn:licensor:v1\"><Tenant>evil</Tenant></Body></Object>"
	    "</Signature>",
	    "unexpected element Object in Signature");
	check_wrapping("</KeyName></KeyInfo>", "</KeyName><X509Data/></KeyInfo>",
		       "unexpected element X509Data in KeyInfo");
	check_wrapping(
	    "<Signature xmlns=", "<Signature Id=\"s\" xmlns=", "unexpected attribute Id on Signature");
	check_wrapping("<SignedInfo>", "<SignedInfo>junk", "SignedInfo holds text, a comment");
	check_wrapping("<SignedInfo>", "<SignedInfo><!-- hidden -->", "SignedInfo holds text, a comment");
	check_wrapping("<SignatureMethod Algorithm", "<SignatureMethod Algorithm=\"x\" Other",
		       "unexpected attribute Other");
	/* The KeyName must be a key id. */
	check_wrapping("<KeyName>", "<KeyName>A", "KeyName is not a key id");
	check_wrapping("</KeyName>", " </KeyName>", "KeyName is not a key id");
	char upper[KEY_ID_HEX_LENGTH];
	for (size_t i = 0; i < sizeof upper; i++)
		upper[i] = (char)toupper((unsigned char)signing_key_id[i]);
	assert_string_not_equal(upper, signing_key_id);
	check_wrapping(signing_key_id, upper, "KeyName is not a key id");

	/* Where the Signature is: not the last element, followed by text, a
	 * second Signature after it, or inside the Body. */
	check_wrapping("</Signature></UseLicense>", "</Signature><Extra/></UseLicense>",
		       "last element of UseLicense is not");
	check_wrapping("</Signature></UseLicense>", "</Signature>text</UseLicense>",
		       "content follows the Signature");
	check_wrapping("</Signature></UseLicense>", "</Signature><!-- c --></UseLicense>",
		       "content follows the Signature");
	check_wrapping("</Body><Signature", "</Body>" SIGNATURE_TEMPLATE "<Signature",
		       "XML-DSig element Signature appears outside the Signature");
	check_wrapping("</Rights></Body>", "</Rights>" SIGNATURE_TEMPLATE "</Body>",
		       "XML-DSig element Signature appears outside the Signature");
	/* Any XML-DSig element outside it, not only Signature. */
	check_wrapping("</Rights></Body>",
		       "</Rights><KeyName xmlns=\"" XMLDSIG_NAMESPACE "\">x</KeyName></Body>",
		       "XML-DSig element KeyName appears outside the Signature");
}

static void test_document_without_signature_is_refused(void **state)
{
	(void)state;
	expect_refused(SAMPLE, signing_key, "is not an XML-DSig Signature");
	/* A Signature in licensor's namespace is not an XML-DSig Signature. */
	expect_refused("<A xmlns=\"urn:licensor:v1\"><Signature/></A>", signing_key,
		       "is not an XML-DSig Signature");
	char key_name[33];
	lic_error error = {0};
	assert_int_equal(xml_signature_verify(NULL, signing_key, &error), LIC_RAC_INVALID);
	assert_int_equal(xml_signature_key_name(NULL, key_name, &error), LIC_RAC_INVALID);
}

/* libxml2's C14N refuses relative namespace URIs: C14N says MALFORMED, the
 * signer fails and leaves the document as it was, the verifier refuses. */
static void test_relative_namespace_is_refused_everywhere(void **state)
{
	(void)state;
	const char *xml = "<A xmlns=\"urn:licensor:v1\"><Body xmlns:r=\"relative/uri\"><X>1</X></Body></A>";
	xmlDocPtr document = parse(xml);
	lic_error error = {0};
	xmlChar *text = NULL;
	int length = 0;
	xmlNodePtr body = find_element(document->children, "Body");
	/* libxml2 reports the refusal to its error handler: nothing may reach stderr. */
	char stderr_path[256];
	test_join_path(stderr_path, sizeof stderr_path, work_directory, "stderr.txt");
	fflush(stderr);
	int saved_stderr = dup(STDERR_FILENO);
	int capture = open(stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved_stderr >= 0 && capture >= 0);
	dup2(capture, STDERR_FILENO);
	close(capture);
	lic_status c14n_status = xml_c14n_subtree(document, body, &text, &length, &error);
	char *before = serialize(document);
	lic_status sign_status =
	    xml_signature_sign(document, VERSION_KEY_OF(signing_key), signing_key_id, &error);
	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	struct stat captured;
	assert_int_equal(stat(stderr_path, &captured), 0);
	assert_int_equal(captured.st_size, 0);
	assert_int_equal(c14n_status, LIC_MALFORMED);
	assert_null(text);
	assert_int_equal(sign_status, LIC_MALFORMED);
	char *after = serialize(document);
	assert_string_equal(before, after);
	free(before);
	free(after);
	xmlFreeDoc(document);

	/* A well-shaped Signature with values of the right form. */
	char value[345];
	memset(value, 'A', 344);
	value[344] = '\0';
	char *signed_xml = replace_once(TEMPLATE_DOCUMENT, "KEYNAME", signing_key_id);
	char *next = replace_once(signed_xml, "<DigestValue></DigestValue>",
				  "<DigestValue>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=</DigestValue>");
	free(signed_xml);
	signed_xml =
	    replace_once(next, "<SignatureValue></SignatureValue>", "<SignatureValue>VALUE</SignatureValue>");
	free(next);
	next = replace_once(signed_xml, "VALUE", value);
	free(signed_xml);
	expect_refused(next, signing_key, "digest mismatch");
	signed_xml = replace_once(next, "<Body Id", "<Body xmlns:r=\"relative/uri\" Id");
	expect_refused(signed_xml, signing_key, "cannot be canonicalised");
	free(signed_xml);
	free(next);
}

/* ---- interoperability with xmlsec1 ---- */

static void test_xmlsec1_verifies_our_signature(void **state)
{
	(void)state;
	if (!have_xmlsec1())
		skip();
	char *xml = signed_sample(SAMPLE);
	assert_int_equal(xmlsec1_verify(xml, signing_key), 0);
	assert_int_not_equal(xmlsec1_verify(xml, other_key), 0);
	char *changed = replace_once(xml, "contoso", "contosp");
	assert_int_not_equal(xmlsec1_verify(changed, signing_key), 0);
	free(changed);
	free(xml);

	/* A document that exercises C14N: indentation, comments and a PI,
	 * attributes out of order, an unused and a used prefix, escapes,
	 * a CDATA section, non-ASCII text. */
	const char *rich = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			   "<!-- before -->\n"
			   "<RightsAccountCertificate xmlns=\"urn:licensor:v1\" xmlns:u=\"urn:unused\""
			   " xmlns:x=\"urn:x\" Version=\"1\">\n"
			   "  <Body z='1' a=\"&quot;&lt;&gt;&amp;&#9;\" x:k=\"v\">\n"
			   "    <Tenant>contoso</Tenant><!-- comment -->\n"
			   "    <Principal>b\xc3\xb6"
			   "b@contoso.com &amp; &lt;x&gt;</Principal>\n"
			   "    <x:Note><![CDATA[a < b & c]]></x:Note>\n"
			   "    <?note keep?>\n"
			   "    <Empty/>\n"
			   "  </Body>\n"
			   "</RightsAccountCertificate>\n";
	xml = signed_sample(rich);
	expect_accepted(xml, signing_key);
	assert_int_equal(xmlsec1_verify(xml, signing_key), 0);
	changed = replace_once(xml, "b@contoso.com", "c@contoso.com");
	assert_int_not_equal(xmlsec1_verify(changed, signing_key), 0);
	expect_refused(changed, signing_key, "digest mismatch");
	free(changed);
	free(xml);
}

/* Has xmlsec1 sign `template_xml` with the signing key (extra: more options);
 * returns its output. */
static char *xmlsec1_sign_with(const char *template_xml, const char *extra)
{
	char template_path[256], key_path[256], output_path[256], command[1024];
	write_file("template.xml", template_xml, template_path, sizeof template_path);
	write_pem("sign.key.pem", signing_key, true, key_path, sizeof key_path);
	test_join_path(output_path, sizeof output_path, work_directory, "signed.xml");
	unlink(output_path);
	snprintf(command, sizeof command,
		 "xmlsec1 --sign %s --privkey-pem '%s' --output '%s' '%s' >/dev/null 2>&1", extra, key_path,
		 output_path, template_path);
	assert_int_equal(system(command), 0);
	return read_file(output_path);
}

static char *xmlsec1_sign(const char *template_xml)
{
	return xmlsec1_sign_with(template_xml, "");
}

/* xml_c14n_digest of a Body deep inside a request equals the digest xmlsec1
 * computes, in document context, for a Reference to that Body alone: the
 * PL label that any other implementation computes. */
static void test_subtree_digest_matches_xmlsec1_in_context(void **state)
{
	(void)state;
	if (!have_xmlsec1())
		skip();
	const char *request =
	    "<AcquireLicense xmlns=\"urn:licensor:v1\" xmlns:p=\"urn:p\" xmlns:unused=\"urn:unused\">\n"
	    "  <Item>\n"
	    "    <PublishingLicense xml:lang=\"en\" Version=\"1\">\n"
	    "      <Body Id=\"b\" z=\"1\" a=\"&quot;2&quot;\" p:k=\"v\">\n"
	    "        <Tenant>contoso</Tenant><!-- comment -->\n"
	    "        <p:Note>x &amp; y &lt; z</p:Note>\n"
	    "        <Grant Principal=\"bob@contoso.com\" Rights=\"VIEW PRINT\"/>\n"
	    "        <Plain xmlns=\"\"><Inner/></Plain>\n"
	    "      </Body>\n"
	    "      <EnablingBits Algorithm=\"RSA-OAEP-SHA256\">AAAA</EnablingBits>\n"
	    "    </PublishingLicense>\n"
	    "  </Item>\n"
	    "  <Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"><SignedInfo>"
	    "<CanonicalizationMethod Algorithm=\"" DSIG_ALGORITHM_C14N "\"/>"
	    "<SignatureMethod Algorithm=\"" DSIG_ALGORITHM_RSA_SHA256 "\"/>"
	    "<Reference URI=\"#b\"><Transforms><Transform Algorithm=\"" DSIG_ALGORITHM_C14N
	    "\"/></Transforms>"
	    "<DigestMethod Algorithm=\"" DSIG_ALGORITHM_SHA256 "\"/><DigestValue/></Reference>"
	    "</SignedInfo><SignatureValue/></Signature>\n"
	    "</AcquireLicense>\n";
	char *xml = xmlsec1_sign_with(request, "--id-attr:Id urn:licensor:v1:Body");
	xmlDocPtr document = parse(xml);
	xmlChar *digest_text = xmlNodeGetContent(find_element(document->children, "DigestValue"));
	uint8_t *expected = NULL;
	size_t expected_length = 0;
	assert_int_equal(base64_decode((const char *)digest_text, strlen((const char *)digest_text),
				       &expected, &expected_length, NULL),
			 LIC_OK);
	assert_int_equal(expected_length, 32);
	uint8_t digest[32];
	lic_error error = {0};
	assert_int_equal(xml_c14n_digest(document, find_element(document->children, "Body"), digest, &error),
			 LIC_OK);
	assert_memory_equal(digest, expected, 32);
	free(expected);
	xmlFree(digest_text);
	xmlFreeDoc(document);
	free(xml);
}

static void test_we_verify_xmlsec1_signature(void **state)
{
	(void)state;
	if (!have_xmlsec1())
		skip();
	char *template_xml = replace_once(TEMPLATE_DOCUMENT, "KEYNAME", signing_key_id);
	char *xml = xmlsec1_sign(template_xml);
	assert_null(strstr(xml, "<DigestValue></DigestValue>"));
	expect_accepted(xml, signing_key);
	expect_refused(xml, other_key, "does not verify");
	char *changed = replace_once(xml, "contoso", "contosp");
	expect_refused(changed, signing_key, "digest mismatch");
	free(changed);
	free(xml);
	free(template_xml);

	/* An indented template: whitespace inside the Signature, and xmlsec1
	 * writes SignatureValue over several lines. */
	char *indented =
	    replace_once("<?xml version=\"1.0\"?>\n"
			 "<UseLicense xmlns=\"urn:licensor:v1\" Version=\"1\">\n"
			 "  <Body>\n    <Tenant>contoso</Tenant>\n  </Body>\n"
			 "  <Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\">\n"
			 "    <SignedInfo>\n"
			 "      <CanonicalizationMethod Algorithm=\"" DSIG_ALGORITHM_C14N "\"/>\n"
			 "      <SignatureMethod Algorithm=\"" DSIG_ALGORITHM_RSA_SHA256 "\"/>\n"
			 "      <Reference URI=\"\">\n"
			 "        <Transforms>\n"
			 "          <Transform Algorithm=\"" DSIG_ALGORITHM_ENVELOPED "\"/>\n"
			 "          <Transform Algorithm=\"" DSIG_ALGORITHM_C14N "\"/>\n"
			 "        </Transforms>\n"
			 "        <DigestMethod Algorithm=\"" DSIG_ALGORITHM_SHA256 "\"/>\n"
			 "        <DigestValue/>\n"
			 "      </Reference>\n"
			 "    </SignedInfo>\n"
			 "    <SignatureValue/>\n"
			 "    <KeyInfo>\n      <KeyName>KEYNAME</KeyName>\n    </KeyInfo>\n"
			 "  </Signature>\n"
			 "</UseLicense>\n",
			 "KEYNAME", signing_key_id);
	xml = xmlsec1_sign(indented);
	expect_accepted(xml, signing_key);
	changed = replace_once(xml, "contoso", "contosp");
	expect_refused(changed, signing_key, "digest mismatch");
	free(changed);
	free(xml);
	free(indented);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_c14n_renders_inherited_default_namespace),
	    cmocka_unit_test(test_c14n_sorts_attributes_and_drops_unused_namespaces),
	    cmocka_unit_test(test_c14n_renders_prefix_where_first_used),
	    cmocka_unit_test(test_c14n_escapes_text_and_attributes),
	    cmocka_unit_test(test_c14n_keeps_whitespace_drops_comments_expands_empty),
	    cmocka_unit_test(test_c14n_digest_is_sha256_of_c14n),
	    cmocka_unit_test(test_sign_writes_exact_shape_and_values),
	    cmocka_unit_test(test_sign_then_verify),
	    cmocka_unit_test(test_sign_refuses_bad_arguments),
	    cmocka_unit_test(test_tampering_is_refused),
	    cmocka_unit_test(test_naive_signer_control),
	    cmocka_unit_test(test_wrapping_shapes_are_refused),
	    cmocka_unit_test(test_document_without_signature_is_refused),
	    cmocka_unit_test(test_relative_namespace_is_refused_everywhere),
	    cmocka_unit_test(test_xmlsec1_verifies_our_signature),
	    cmocka_unit_test(test_we_verify_xmlsec1_signature),
	    cmocka_unit_test(test_subtree_digest_matches_xmlsec1_in_context),
	};
	return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
