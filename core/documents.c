/*
 * documents.c: reading and writing PLs, RACs and ULs (see documents.h).
 *
 * Reading is strict: the element set of DESIGN.md §2 exactly, each once (a
 * Grant may repeat), in licensor's namespace, no text where elements are
 * expected, times and base64 in their one accepted form. Digests are taken
 * over the exclusive C14N of the document's own Body, so a PL written by any
 * implementation, pretty-printed or not, gets the digest its author computed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include "core/documents.h"
#include "core/xml_signature.h"
#include "keyring/encoding.h"
#include "keyring/error.h"
#include "keyring/utc_time.h"
#include "keyring/xml_document.h"

/* ---- helpers ---- */

void document_new_uuid(char out[37])
{
	uint8_t bytes[16];
	RAND_bytes(bytes, sizeof bytes);
	bytes[6] = (uint8_t)((bytes[6] & 0x0f) | 0x40);
	bytes[8] = (uint8_t)((bytes[8] & 0x3f) | 0x80);
	char hex[33];
	hex_encode(bytes, sizeof bytes, hex);
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

static bool is_element(xmlNodePtr node)
{
	return node->type == XML_ELEMENT_NODE;
}

/* Only whitespace text, comments and the listed elements may appear in `parent`. */
static lic_status check_children(xmlNodePtr parent, const char *const *allowed, lic_error *error)
{
	for (xmlNodePtr child = parent->children; child != NULL; child = child->next) {
		if (child->type == XML_TEXT_NODE) {
			for (const xmlChar *c = child->content; c && *c; c++)
				if (*c != ' ' && *c != '\t' && *c != '\r' && *c != '\n')
					return lic_error_set(error, LIC_MALFORMED,
							     "text is not allowed inside %s",
							     (const char *)parent->name);
			continue;
		}
		if (child->type == XML_COMMENT_NODE || child->type == XML_PI_NODE)
			continue;
		if (!is_element(child))
			return lic_error_set(error, LIC_MALFORMED, "unexpected content inside %s",
					     (const char *)parent->name);
		bool known = false;
		for (const char *const *name = allowed; *name; name++)
			known = known || strcmp((const char *)child->name, *name) == 0;
		if (!known)
			return lic_error_set(error, LIC_MALFORMED, "unexpected element %.40s inside %s",
					     (const char *)child->name, (const char *)parent->name);
	}
	return LIC_OK;
}

/* The text of the unique child `name`, copied into out (size bytes), or MALFORMED. */
static lic_status child_text(xmlNodePtr parent, const char *name, char *out, size_t size, lic_error *error)
{
	xmlNodePtr child = NULL;
	char *text = NULL;
	lic_status status = xml_child(parent, name, false, &child, error);
	if (status == LIC_OK)
		status = xml_text(child, &text, error);
	if (status != LIC_OK)
		return status;
	size_t length = strlen(text);
	if (length == 0 || length >= size) {
		xmlFree(text);
		return lic_error_set(error, LIC_MALFORMED, "element %s is empty or longer than %zu bytes",
				     name, size - 1);
	}
	memcpy(out, text, length + 1);
	xmlFree(text);
	return LIC_OK;
}

static lic_status child_time(xmlNodePtr parent, const char *name, bool optional, int64_t *out,
			     lic_error *error)
{
	xmlNodePtr child = NULL;
	lic_status status = xml_child(parent, name, optional, &child, error);
	if (status != LIC_OK || child == NULL)
		return status;
	char text[UTC_TIME_LENGTH + 1];
	status = child_text(parent, name, text, sizeof text, error);
	if (status != LIC_OK)
		return status;
	if (utc_time_parse(text, out, NULL) != LIC_OK)
		return lic_error_set(error, LIC_MALFORMED,
				     "element %s is not a UTC time (YYYY-MM-DDThh:mm:ssZ)", name);
	return LIC_OK;
}

static lic_status check_version_attribute(xmlNodePtr element, lic_error *error)
{
	char *version = NULL;
	lic_status status = xml_attribute(element, "Version", false, &version, error);
	if (status != LIC_OK)
		return status;
	bool supported = strcmp(version, "1") == 0;
	xmlFree(version);
	if (!supported)
		return lic_error_set(error, LIC_UNSUPPORTED_VERSION, "%s Version is not 1",
				     (const char *)element->name);
	return LIC_OK;
}

static bool in_licensor_namespace(xmlNodePtr node)
{
	return node->ns != NULL && strcmp((const char *)node->ns->href, LICENSOR_NAMESPACE) == 0;
}

static lic_status check_root(xmlNodePtr element, const char *name, lic_error *error)
{
	if (element == NULL || !is_element(element) || strcmp((const char *)element->name, name) != 0 ||
	    !in_licensor_namespace(element))
		return lic_error_set(error, LIC_MALFORMED, "expected a %s element in namespace %s", name,
				     LICENSOR_NAMESPACE);
	return check_version_attribute(element, error);
}

/* EnablingBits: Algorithm attribute and base64 content. */
static lic_status read_enabling_bits(xmlNodePtr parent, uint8_t **out, size_t *length, lic_error *error)
{
	xmlNodePtr node = NULL;
	char *algorithm = NULL;
	lic_status status = xml_child(parent, "EnablingBits", false, &node, error);
	if (status != LIC_OK)
		return status;
	status = xml_attribute(node, "Algorithm", false, &algorithm, error);
	if (status != LIC_OK)
		return status;
	bool supported = strcmp(algorithm, ENABLING_BITS_ALGORITHM) == 0;
	xmlFree(algorithm);
	if (!supported)
		return lic_error_set(error, LIC_UNSUPPORTED_VERSION, "EnablingBits Algorithm must be %s",
				     ENABLING_BITS_ALGORITHM);
	status = xml_child_base64(parent, "EnablingBits", false, out, length, error);
	if (status == LIC_OK && (*length < 128 || *length > 1024)) {
		free(*out);
		*out = NULL;
		return lic_error_set(error, LIC_MALFORMED, "EnablingBits has an impossible length");
	}
	return status;
}

/* ---- RSA-OAEP ---- */

lic_status oaep_wrap(EVP_PKEY *public_key, const uint8_t *label, size_t label_length,
		     const uint8_t *plaintext, size_t plaintext_length, uint8_t **ciphertext,
		     size_t *ciphertext_length, lic_error *error)
{
	lic_status status = LIC_OK;
	EVP_PKEY_CTX *context = EVP_PKEY_CTX_new(public_key, NULL);
	uint8_t *buffer = NULL;
	size_t length = 0;
	if (context == NULL || EVP_PKEY_encrypt_init(context) != 1 ||
	    oaep_set_parameters(context, label, label_length, NULL) != LIC_OK ||
	    EVP_PKEY_encrypt(context, NULL, &length, plaintext, plaintext_length) != 1)
		LIC_FAIL(error, LIC_INTERNAL, "RSA-OAEP wrap failed");
	buffer = malloc(length);
	if (buffer == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	if (EVP_PKEY_encrypt(context, buffer, &length, plaintext, plaintext_length) != 1)
		LIC_FAIL(error, LIC_INTERNAL, "RSA-OAEP wrap failed");
	*ciphertext = buffer;
	*ciphertext_length = length;
	buffer = NULL;
out:
	free(buffer);
	EVP_PKEY_CTX_free(context);
	return status;
}

lic_status oaep_unwrap(const struct version_key *private_key, const uint8_t *label, size_t label_length,
		       const uint8_t *ciphertext, size_t ciphertext_length,
		       uint8_t content_key[CONTENT_KEY_LENGTH], lic_error *error)
{
	lic_status status = LIC_OK;
	uint8_t buffer[1024];
	size_t length = 0;
	if (version_key_size(private_key) != ciphertext_length)
		LIC_FAIL(error, LIC_PL_INTEGRITY,
			 "the content key does not unwrap: the body or the enabling bits were altered");
	LIC_TRY(version_key_oaep_decrypt(private_key, label, label_length, ciphertext, ciphertext_length,
					 buffer, sizeof buffer, &length, error));
	if (length != CONTENT_KEY_LENGTH)
		LIC_FAIL(error, LIC_PL_INTEGRITY,
			 "the content key does not unwrap: the body or the enabling bits were altered");
	memcpy(content_key, buffer, CONTENT_KEY_LENGTH);
out:
	OPENSSL_cleanse(buffer, sizeof buffer);
	return status;
}

/* ---- Publishing license ---- */

static lic_status read_grant(xmlNodePtr node, struct grant *grant, lic_error *error)
{
	char *principal = NULL, *rights = NULL;
	lic_status status = LIC_OK;
	LIC_TRY(xml_attribute(node, "Principal", false, &principal, error));
	LIC_TRY(xml_attribute(node, "Rights", false, &rights, error));
	LIC_TRY(grant_parse_principal(principal, grant, error));
	LIC_TRY(rights_parse(rights, &grant->rights, error));
out:
	xmlFree(principal);
	xmlFree(rights);
	return status;
}

static lic_status read_policy(xmlNodePtr body, struct publishing_license *license, lic_error *error)
{
	lic_status status = LIC_OK;
	xmlNodePtr policy = NULL, days = NULL;
	char text[16];
	static const char *const allowed[] = {"ContentValidUntil", "LicenseValidityDays", "Grant", NULL};
	LIC_TRY(xml_child(body, "Policy", false, &policy, error));
	LIC_TRY(check_children(policy, allowed, error));
	LIC_TRY(child_time(policy, "ContentValidUntil", true, &license->content_valid_until, error));
	LIC_TRY(xml_child(policy, "LicenseValidityDays", false, &days, error));
	LIC_TRY(child_text(policy, "LicenseValidityDays", text, sizeof text, error));
	char *end = NULL;
	unsigned long value = strtoul(text, &end, 10);
	if (*end != '\0' || text[0] < '0' || text[0] > '9' || value > LICENSE_VALIDITY_DAYS_MAX)
		LIC_FAIL(error, LIC_MALFORMED, "LicenseValidityDays must be a number from 0 to %d",
			 LICENSE_VALIDITY_DAYS_MAX);
	license->license_validity_days = (uint32_t)value;
	size_t count = 0;
	for (xmlNodePtr child = policy->children; child; child = child->next)
		count += is_element(child) && strcmp((const char *)child->name, "Grant") == 0;
	if (count > POLICY_MAX_GRANTS)
		LIC_FAIL(error, LIC_TOO_LARGE, "more than %d grants", POLICY_MAX_GRANTS);
	license->policy.grants = calloc(count ? count : 1, sizeof *license->policy.grants);
	if (license->policy.grants == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	for (xmlNodePtr child = policy->children; child; child = child->next) {
		if (!is_element(child) || strcmp((const char *)child->name, "Grant") != 0)
			continue;
		if (!in_licensor_namespace(child))
			LIC_FAIL(error, LIC_MALFORMED, "Grant is in the wrong namespace");
		LIC_TRY(read_grant(child, &license->policy.grants[license->policy.grant_count], error));
		license->policy.grant_count++;
	}
out:
	return status;
}

lic_status publishing_license_read(xmlDocPtr document, xmlNodePtr element, struct publishing_license *out,
				   lic_error *error)
{
	lic_status status = LIC_OK;
	xmlNodePtr body = NULL;
	char owner[POLICY_PRINCIPAL_MAX + 1];
	static const char *const top[] = {"Body", "EnablingBits", NULL};
	static const char *const body_children[] = {"Tenant", "ContentId", "IssuedAt", "KeyId",
						    "Owner",  "Policy",    NULL};
	memset(out, 0, sizeof *out);
	LIC_TRY(check_root(element, "PublishingLicense", error));
	LIC_TRY(check_children(element, top, error));
	LIC_TRY(xml_child(element, "Body", false, &body, error));
	LIC_TRY(check_children(body, body_children, error));
	LIC_TRY(child_text(body, "Tenant", out->tenant, sizeof out->tenant, error));
	if (!tenant_name_valid(out->tenant))
		LIC_FAIL(error, LIC_MALFORMED, "Tenant is not a valid tenant name");
	LIC_TRY(child_text(body, "ContentId", out->content_id, sizeof out->content_id, error));
	LIC_TRY(child_time(body, "IssuedAt", false, &out->issued_at, error));
	LIC_TRY(child_text(body, "KeyId", out->key_id_hex, sizeof out->key_id_hex, error));
	if (strlen(out->key_id_hex) != 32 ||
	    hex_decode(out->key_id_hex, out->key_id, KEY_ID_LENGTH, NULL) != LIC_OK)
		LIC_FAIL(error, LIC_MALFORMED, "KeyId must be 32 hex digits");
	hex_encode(out->key_id, KEY_ID_LENGTH, out->key_id_hex); /* lowercase */
	LIC_TRY(child_text(body, "Owner", owner, sizeof owner, error));
	LIC_TRY(principal_normalize(owner, out->policy.owner, error));
	LIC_TRY(read_policy(body, out, error));
	LIC_TRY(read_enabling_bits(element, &out->enabling_bits, &out->enabling_bits_length, error));
	LIC_TRY(xml_c14n_digest(document, body, out->body_digest, error));
	EVP_MD_CTX *digest = EVP_MD_CTX_new();
	if (digest == NULL || EVP_DigestInit_ex(digest, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(digest, out->body_digest, 32) != 1 ||
	    EVP_DigestUpdate(digest, out->enabling_bits, out->enabling_bits_length) != 1 ||
	    EVP_DigestFinal_ex(digest, out->cache_key, NULL) != 1) {
		EVP_MD_CTX_free(digest);
		LIC_FAIL(error, LIC_INTERNAL, "SHA-256 failed");
	}
	EVP_MD_CTX_free(digest);
out:
	if (status != LIC_OK)
		publishing_license_cleanup(out);
	return status;
}

void publishing_license_cleanup(struct publishing_license *license)
{
	policy_cleanup(&license->policy);
	free(license->enabling_bits);
	license->enabling_bits = NULL;
}

static xmlNodePtr new_root(xmlDocPtr document, const char *name)
{
	xmlNodePtr root = xmlNewNode(NULL, (const xmlChar *)name);
	if (root == NULL)
		return NULL;
	xmlDocSetRootElement(document, root);
	xmlSetNs(root, xmlNewNs(root, (const xmlChar *)LICENSOR_NAMESPACE, NULL));
	xmlSetProp(root, (const xmlChar *)"Version", (const xmlChar *)"1");
	return root;
}

static lic_status add_time_child(xmlNodePtr parent, const char *name, int64_t value, lic_error *error)
{
	char text[UTC_TIME_LENGTH];
	utc_time_format(value, text);
	return xml_add_text_child(parent, name, text, NULL, error);
}

lic_status document_serialize(xmlDocPtr document, char **xml, size_t *length, lic_error *error)
{
	xmlChar *text = NULL;
	int size = 0;
	xmlDocDumpMemoryEnc(document, &text, &size, "UTF-8");
	if (text == NULL || size < 0)
		return lic_error_set(error, LIC_INTERNAL, "cannot serialise XML");
	char *copy = malloc((size_t)size + 1);
	if (copy == NULL) {
		xmlFree(text);
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	}
	memcpy(copy, text, (size_t)size + 1);
	xmlFree(text);
	*xml = copy;
	*length = (size_t)size;
	return LIC_OK;
}

lic_status publishing_license_write(const struct publish_request *request, EVP_PKEY *publishing_key,
				    const char *key_id_hex, const uint8_t content_key[CONTENT_KEY_LENGTH],
				    char **xml, size_t *length, lic_error *error)
{
	lic_status status = LIC_OK;
	xmlDocPtr document = xmlNewDoc((const xmlChar *)"1.0");
	xmlNodePtr root = document ? new_root(document, "PublishingLicense") : NULL;
	xmlNodePtr body = NULL, policy = NULL, bits = NULL;
	uint8_t label[32];
	uint8_t *wrapped = NULL;
	size_t wrapped_length = 0;
	char owner[POLICY_PRINCIPAL_MAX + 1], days[16];
	if (root == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	if (!tenant_name_valid(request->tenant))
		LIC_FAIL(error, LIC_USAGE, "bad tenant name");
	if (request->content_id[0] == '\0' || strlen(request->content_id) > CONTENT_ID_MAX)
		LIC_FAIL(error, LIC_USAGE, "content id must be 1 to %d bytes", CONTENT_ID_MAX);
	LIC_TRY(principal_normalize(request->owner, owner, error));
	LIC_TRY(xml_add_text_child(root, "Body", NULL, &body, error));
	LIC_TRY(xml_add_text_child(body, "Tenant", request->tenant, NULL, error));
	LIC_TRY(xml_add_text_child(body, "ContentId", request->content_id, NULL, error));
	LIC_TRY(add_time_child(body, "IssuedAt", request->issued_at, error));
	LIC_TRY(xml_add_text_child(body, "KeyId", key_id_hex, NULL, error));
	LIC_TRY(xml_add_text_child(body, "Owner", owner, NULL, error));
	LIC_TRY(xml_add_text_child(body, "Policy", NULL, &policy, error));
	if (request->content_valid_until != 0)
		LIC_TRY(add_time_child(policy, "ContentValidUntil", request->content_valid_until, error));
	snprintf(days, sizeof days, "%u", request->license_validity_days);
	LIC_TRY(xml_add_text_child(policy, "LicenseValidityDays", days, NULL, error));
	for (size_t i = 0; i < request->grant_count; i++) {
		struct grant check;
		LIC_TRY(grant_parse_principal(request->grant_principals[i], &check, error));
		LIC_TRY(rights_parse(request->grant_rights[i], &check.rights, error));
		char rights[POLICY_RIGHTS_TEXT_MAX];
		LIC_TRY(rights_format(&check.rights, rights, sizeof rights, error));
		xmlNodePtr grant = xmlNewChild(policy, root->ns, (const xmlChar *)"Grant", NULL);
		if (grant == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
		LIC_TRY(xml_set_attribute(grant, "Principal", request->grant_principals[i], error));
		LIC_TRY(xml_set_attribute(grant, "Rights", rights, error));
	}
	LIC_TRY(xml_c14n_digest(document, body, label, error));
	LIC_TRY(oaep_wrap(publishing_key, label, sizeof label, content_key, CONTENT_KEY_LENGTH, &wrapped,
			  &wrapped_length, error));
	LIC_TRY(xml_add_base64_child(root, "EnablingBits", wrapped, wrapped_length, &bits, error));
	LIC_TRY(xml_set_attribute(bits, "Algorithm", ENABLING_BITS_ALGORITHM, error));
	LIC_TRY(document_serialize(document, xml, length, error));
out:
	free(wrapped);
	xmlFreeDoc(document);
	return status;
}

/* ---- Rights account certificate ---- */

/* `element` as the root of its own document, so that a signature with
 * Reference URI="" covers exactly it: the element's exclusive C14N (which
 * declares on it every namespace it uses, wherever they were declared) parsed
 * anew. Exclusive C14N is idempotent, so the signature is unaffected. */
static lic_status own_document(xmlDocPtr source, xmlNodePtr element, xmlDocPtr *out, uint8_t digest[32],
			       lic_error *error)
{
	xmlChar *text = NULL;
	int length = 0;
	lic_status status = xml_c14n_subtree(source, element, &text, &length, error);
	if (status != LIC_OK)
		return status;
	/* These bytes are the RAC's canonical form: its digest (the cache key) too. */
	SHA256(text, (size_t)length, digest);
	status = xml_document_parse((const char *)text, (size_t)length, DOCUMENT_MAX_BYTES, out, error);
	xmlFree(text);
	return status;
}

lic_status rights_account_certificate_read(xmlDocPtr source, xmlNodePtr element,
					   struct rights_account_certificate *out, lic_error *error)
{
	lic_status status = LIC_OK;
	xmlNodePtr body = NULL, root = NULL;
	char principal[POLICY_PRINCIPAL_MAX + 1];
	static const char *const top[] = {"Body", "Signature", NULL};
	static const char *const body_children[] = {"Tenant",    "Principal", "PublicKey",
						    "NotBefore", "NotAfter",  NULL};
	memset(out, 0, sizeof *out);
	LIC_TRY(check_root(element, "RightsAccountCertificate", error));
	LIC_TRY(check_children(element, top, error));
	LIC_TRY(own_document(source, element, &out->document, out->digest, error));
	root = xmlDocGetRootElement(out->document);
	LIC_TRY(xml_child(root, "Body", false, &body, error));
	LIC_TRY(check_children(body, body_children, error));
	LIC_TRY(child_text(body, "Tenant", out->tenant, sizeof out->tenant, error));
	if (!tenant_name_valid(out->tenant))
		LIC_FAIL(error, LIC_MALFORMED, "Tenant is not a valid tenant name");
	LIC_TRY(child_text(body, "Principal", principal, sizeof principal, error));
	LIC_TRY(principal_normalize(principal, out->principal, error));
	LIC_TRY(xml_child_base64(body, "PublicKey", false, &out->public_key_der, &out->public_key_der_length,
				 error));
	if (out->public_key_der_length < 64 || out->public_key_der_length > 2048)
		LIC_FAIL(error, LIC_MALFORMED, "the RAC's PublicKey has an impossible length");
	LIC_TRY(child_time(body, "NotBefore", false, &out->not_before, error));
	LIC_TRY(child_time(body, "NotAfter", false, &out->not_after, error));
	if (out->not_after < out->not_before)
		LIC_FAIL(error, LIC_MALFORMED, "NotAfter is before NotBefore");
	LIC_TRY(xml_signature_key_name(out->document, out->signing_key_id_hex, error));
out:
	if (status != LIC_OK)
		rights_account_certificate_cleanup(out);
	return status;
}

lic_status rights_account_certificate_decode_key(struct rights_account_certificate *rac, lic_error *error)
{
	if (rac->public_key != NULL)
		return LIC_OK;
	EVP_PKEY *key = NULL;
	lic_status status =
	    key_material_from_public_der(rac->public_key_der, rac->public_key_der_length, &key, error);
	if (status != LIC_OK)
		return status;
	if (EVP_PKEY_get_bits(key) < 2048 || EVP_PKEY_get_bits(key) > 8192) {
		EVP_PKEY_free(key);
		return lic_error_set(error, LIC_UNSUPPORTED_VERSION,
				     "the RAC's key must be RSA of 2048 to 8192 bits");
	}
	rac->public_key = key;
	return LIC_OK;
}

lic_status rights_account_certificate_verify(const struct rights_account_certificate *rac,
					     EVP_PKEY *tenant_key, lic_error *error)
{
	return xml_signature_verify(rac->document, tenant_key, error);
}

void rights_account_certificate_cleanup(struct rights_account_certificate *rac)
{
	EVP_PKEY_free(rac->public_key);
	rac->public_key = NULL;
	free(rac->public_key_der);
	rac->public_key_der = NULL;
	xmlFreeDoc(rac->document);
	rac->document = NULL;
}

lic_status rights_account_certificate_write(const char *tenant, const char *principal,
					    EVP_PKEY *user_public_key, int64_t not_before, int64_t not_after,
					    const struct version_key *signing_key,
					    const char *signing_key_id_hex, char **xml, size_t *length,
					    lic_error *error)
{
	lic_status status = LIC_OK;
	xmlDocPtr document = xmlNewDoc((const xmlChar *)"1.0");
	xmlNodePtr root = document ? new_root(document, "RightsAccountCertificate") : NULL;
	xmlNodePtr body = NULL;
	char normalized[POLICY_PRINCIPAL_MAX + 1];
	uint8_t *spki = NULL;
	size_t spki_length = 0;
	if (root == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	LIC_TRY(principal_normalize(principal, normalized, error));
	LIC_TRY(key_material_public_der(user_public_key, &spki, &spki_length, error));
	LIC_TRY(xml_add_text_child(root, "Body", NULL, &body, error));
	LIC_TRY(xml_add_text_child(body, "Tenant", tenant, NULL, error));
	LIC_TRY(xml_add_text_child(body, "Principal", normalized, NULL, error));
	LIC_TRY(xml_add_base64_child(body, "PublicKey", spki, spki_length, NULL, error));
	LIC_TRY(add_time_child(body, "NotBefore", not_before, error));
	LIC_TRY(add_time_child(body, "NotAfter", not_after, error));
	LIC_TRY(xml_signature_sign(document, signing_key, signing_key_id_hex, error));
	LIC_TRY(document_serialize(document, xml, length, error));
out:
	free(spki);
	xmlFreeDoc(document);
	return status;
}

/* ---- Use license ---- */

lic_status use_license_build(const struct use_license_fields *fields, const struct version_key *signing_key,
			     const char *signing_key_id_hex, xmlDocPtr *out, lic_error *error)
{
	lic_status status = LIC_OK;
	xmlDocPtr document = xmlNewDoc((const xmlChar *)"1.0");
	xmlNodePtr root = document ? new_root(document, "UseLicense") : NULL;
	xmlNodePtr body = NULL, bits = NULL;
	if (root == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	LIC_TRY(xml_add_text_child(root, "Body", NULL, &body, error));
	LIC_TRY(xml_add_text_child(body, "LicenseId", fields->license_id, NULL, error));
	LIC_TRY(xml_add_text_child(body, "Tenant", fields->tenant, NULL, error));
	LIC_TRY(xml_add_text_child(body, "ContentId", fields->content_id, NULL, error));
	LIC_TRY(xml_add_text_child(body, "Principal", fields->principal, NULL, error));
	LIC_TRY(add_time_child(body, "IssuedAt", fields->issued_at, error));
	LIC_TRY(add_time_child(body, "NotAfter", fields->not_after, error));
	LIC_TRY(xml_add_text_child(body, "Rights", fields->rights, NULL, error));
	LIC_TRY(xml_add_base64_child(body, "PublishingLicenseDigest", fields->publishing_license_digest, 32,
				     NULL, error));
	LIC_TRY(xml_add_base64_child(body, "EnablingBits", fields->enabling_bits,
				     fields->enabling_bits_length, &bits, error));
	LIC_TRY(xml_set_attribute(bits, "Algorithm", ENABLING_BITS_ALGORITHM, error));
	LIC_TRY(xml_signature_sign(document, signing_key, signing_key_id_hex, error));
	*out = document;
	document = NULL;
out:
	xmlFreeDoc(document);
	return status;
}

lic_status use_license_read(const char *xml, size_t length, struct use_license *out, lic_error *error)
{
	lic_status status = LIC_OK;
	xmlNodePtr root = NULL, body = NULL;
	static const char *const top[] = {"Body", "Signature", NULL};
	static const char *const body_children[] = {
	    "LicenseId",    "Tenant",   "ContentId", "Principal",
	    "IssuedAt",     "NotAfter", "Rights",    "PublishingLicenseDigest",
	    "EnablingBits", NULL};
	memset(out, 0, sizeof *out);
	LIC_TRY(xml_document_parse(xml, length, DOCUMENT_MAX_BYTES, &out->document, error));
	root = xmlDocGetRootElement(out->document);
	LIC_TRY(check_root(root, "UseLicense", error));
	LIC_TRY(check_children(root, top, error));
	LIC_TRY(xml_child(root, "Body", false, &body, error));
	LIC_TRY(check_children(body, body_children, error));
	LIC_TRY(child_text(body, "LicenseId", out->license_id, sizeof out->license_id, error));
	LIC_TRY(child_text(body, "Tenant", out->tenant, sizeof out->tenant, error));
	LIC_TRY(child_text(body, "ContentId", out->content_id, sizeof out->content_id, error));
	LIC_TRY(child_text(body, "Principal", out->principal, sizeof out->principal, error));
	LIC_TRY(child_time(body, "IssuedAt", false, &out->issued_at, error));
	LIC_TRY(child_time(body, "NotAfter", false, &out->not_after, error));
	LIC_TRY(child_text(body, "Rights", out->rights, sizeof out->rights, error));
	LIC_TRY(read_enabling_bits(body, &out->enabling_bits, &out->enabling_bits_length, error));
out:
	if (status != LIC_OK)
		use_license_cleanup(out);
	return status;
}

lic_status use_license_open(const struct use_license *license, EVP_PKEY *user_private_key,
			    uint8_t content_key[CONTENT_KEY_LENGTH], lic_error *error)
{
	lic_status status =
	    oaep_unwrap(VERSION_KEY_OF(user_private_key), (const uint8_t *)license->license_id,
			strlen(license->license_id), license->enabling_bits, license->enabling_bits_length,
			content_key, error);
	if (status == LIC_PL_INTEGRITY)
		return lic_error_set(
		    error, LIC_PL_INTEGRITY,
		    "the content key does not unwrap with this key: wrong user key or altered license");
	return status;
}

void use_license_cleanup(struct use_license *license)
{
	free(license->enabling_bits);
	license->enabling_bits = NULL;
	xmlFreeDoc(license->document);
	license->document = NULL;
}

lic_status acquire_response_use_license(const char *response, size_t length, uint64_t index, char **xml,
					size_t *xml_length, lic_error *error)
{
	lic_status status = LIC_OK;
	xmlDocPtr document = NULL, license_document = NULL;
	xmlNodePtr root = NULL, found = NULL;
	xmlChar *text = NULL;
	char *code = NULL, *sentence = NULL;
	int text_length = 0;
	LIC_TRY(xml_document_parse(response, length, length, &document, error));
	LIC_TRY(xml_document_root(document, "AcquireLicenseResponse", &root, error));
	for (xmlNodePtr result = root->children; result; result = result->next) {
		if (result->type != XML_ELEMENT_NODE || !xmlStrEqual(result->name, (const xmlChar *)"Result"))
			continue;
		uint64_t number = 0;
		LIC_TRY(xml_attribute_u64(result, "Index", false, UINT32_MAX, &number, error));
		if (number == index) {
			found = result;
			break;
		}
	}
	if (found == NULL)
		LIC_FAIL(error, LIC_MALFORMED, "the response has no result %llu", (unsigned long long)index);
	xmlNodePtr refusal = NULL, license = NULL;
	LIC_TRY(xml_child(found, "Error", true, &refusal, error));
	if (refusal) {
		LIC_TRY(xml_attribute(refusal, "Code", false, &code, error));
		LIC_TRY(xml_text(refusal, &sentence, error));
		lic_status refused = LIC_MALFORMED;
		for (int candidate = 0; candidate < LIC_STATUS_COUNT; candidate++)
			if (strcmp(lic_status_code((lic_status)candidate), code) == 0)
				refused = (lic_status)candidate;
		LIC_FAIL(error, refused == LIC_OK ? LIC_MALFORMED : refused, "result %llu was refused: %s",
			 (unsigned long long)index, sentence);
	}
	LIC_TRY(xml_child(found, "UseLicense", false, &license, error));
	/* A document of its own: the copy carries the namespaces it uses, so the
	 * canonical Body (and so the signature) is the same. */
	license_document = xmlNewDoc((const xmlChar *)"1.0");
	xmlNodePtr copy = license_document ? xmlDocCopyNode(license, license_document, 1) : NULL;
	if (copy == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	xmlDocSetRootElement(license_document, copy);
	xmlReconciliateNs(license_document, copy);
	LIC_TRY(xml_document_serialize(license_document, &text, &text_length, error));
	*xml = malloc((size_t)text_length + 1);
	if (*xml == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	memcpy(*xml, text, (size_t)text_length);
	(*xml)[text_length] = '\0';
	*xml_length = (size_t)text_length;
out:
	xmlFree(text);
	free(code);
	free(sentence);
	xmlFreeDoc(license_document);
	xmlFreeDoc(document);
	return status;
}
