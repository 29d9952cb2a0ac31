/*
 * xml_signature.c: exclusive XML canonicalisation and licensor's one enveloped
 * XML-DSig signature shape (see xml_signature.h for the shape).
 *
 * What this file promises:
 *   - Canonical bytes are libxml2's exclusive C14N 1.0 without comments. A
 *     subtree is rendered as in its document context: the namespace
 *     declarations it visibly uses are printed on it, inherited or not, and
 *     no others. That is what xmlsec1 and every other XML-DSig verifier
 *     compute, so a digest taken here matches one taken there (the tests
 *     check both against xmlsec1). The signature's own inputs (the document
 *     minus its Signature, and SignedInfo) go through a visibility callback
 *     over the whole document; xml_c14n_subtree and xml_c14n_digest
 *     canonicalise a namespace-complete copy of the subtree instead, which
 *     gives the same bytes in time linear in the subtree.
 *   - The signer appends exactly the Signature of the header, compact (no
 *     whitespace text inside it), changes nothing else in the document, and
 *     on any failure leaves the document as it was.
 *   - The verifier accepts that shape only, and checks it before any
 *     cryptography: a second XML-DSig element anywhere, a Signature that is
 *     not the last element of the document element, another algorithm,
 *     another Reference URI, more or other transforms, Object, X509Data or an
 *     Id attribute are all refused. Namespace prefixes and whitespace between
 *     the Signature's elements are free (C14N covers them), as is whitespace
 *     inside base64 values (xmlsec1 wraps long ones). Because the one
 *     Reference covers the whole document (URI=""), a verified document is
 *     exactly what the caller reads next: no signature wrapping.
 *   - Every refusal of a document is LIC_RAC_INVALID with a sentence that
 *     names at most an element, never other document content; only running
 *     out of memory is LIC_INTERNAL.
 *
 * A signed document must be written out as it stands (xmlDocDumpMemory): an
 * indenting serialiser adds whitespace text inside the signed content, and
 * the signature then no longer verifies.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/c14n.h>
#include <libxml/globals.h>
#include <libxml/xmlIO.h>
#include <libxml/xmlerror.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "core/xml_signature.h"
#include "keyring/encoding.h"
#include "keyring/error.h"

#define C14N_EXCLUSIVE_ALGORITHM "http://www.w3.org/2001/10/xml-exc-c14n#"
#define RSA_SHA256_ALGORITHM "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
#define ENVELOPED_SIGNATURE_ALGORITHM XMLDSIG_NAMESPACE "enveloped-signature"
#define SHA256_ALGORITHM "http://www.w3.org/2001/04/xmlenc#sha256"

#define SHA256_LENGTH 32
#define KEY_NAME_LENGTH 32
/* RSA-16384 is 2,732 base64 characters: room for xmlsec1's line breaks. */
#define BASE64_VALUE_MAX_CHARACTERS 8192

/* ---- Exclusive C14N ------------------------------------------------- */

/* What C14N renders: the subtree under `subtree` (subtree_visible), or the
 * whole document except that subtree (the enveloped-signature transform). */
struct c14n_selection {
	xmlNodePtr subtree;
	bool subtree_visible;
};

/* Where canonical bytes go: into `update(md, …)` when md is set (a digest, a
 * signature or its verification), otherwise into data (xmlMalloc'd, kept
 * NUL-terminated). */
struct c14n_sink {
	EVP_MD_CTX *md;
	int (*update)(EVP_MD_CTX *md, const void *bytes, size_t length);
	xmlChar *data;
	size_t length;
	size_t capacity;
	bool failed;
};

/* Node types that are xmlNode structures with a parent link. Namespace nodes
 * (xmlNs, which has none) and attributes are judged by the element they sit
 * on, which libxml2 passes as `parent`. */
static bool is_tree_node(xmlNodePtr node)
{
	switch (node->type) {
	case XML_ELEMENT_NODE:
	case XML_TEXT_NODE:
	case XML_CDATA_SECTION_NODE:
	case XML_ENTITY_REF_NODE:
	case XML_PI_NODE:
	case XML_COMMENT_NODE:
		return true;
	default:
		return false;
	}
}

static int c14n_is_visible(void *context, xmlNodePtr node, xmlNodePtr parent)
{
	const struct c14n_selection *selection = context;
	xmlNodePtr holder = (node != NULL && is_tree_node(node)) ? node : parent;
	bool inside = false;
	for (xmlNodePtr cursor = holder; cursor != NULL && !inside; cursor = cursor->parent)
		inside = cursor == selection->subtree;
	return inside == selection->subtree_visible;
}

static int c14n_sink_write(void *context, const char *bytes, int length)
{
	struct c14n_sink *sink = context;
	if (length < 0 || sink->failed)
		return -1;
	size_t count = (size_t)length;
	if (sink->md != NULL) {
		if (sink->update(sink->md, bytes, count) != 1) {
			sink->failed = true;
			return -1;
		}
		return length;
	}
	if (count + 1 > sink->capacity - sink->length) {
		size_t capacity = sink->capacity != 0 ? sink->capacity : 1024;
		while (count + 1 > capacity - sink->length) {
			if (capacity > (size_t)INT_MAX) {
				sink->failed = true;
				return -1;
			}
			capacity *= 2;
		}
		xmlChar *grown = xmlRealloc(sink->data, capacity);
		if (grown == NULL) {
			sink->failed = true;
			return -1;
		}
		sink->data = grown;
		sink->capacity = capacity;
	}
	memcpy(sink->data + sink->length, bytes, count);
	sink->length += count;
	sink->data[sink->length] = '\0';
	return length;
}

static void c14n_ignore_error(void *context, xmlErrorPtr libxml_error)
{
	(void)context;
	(void)libxml_error;
}

/* Runs exclusive C14N (no comments) of the selected nodes (NULL: the whole
 * document) into sink. MALFORMED when libxml2 refuses the document (a
 * relative namespace URI). */
static lic_status c14n_run(xmlDocPtr document, struct c14n_selection *selection, struct c14n_sink *sink,
			   lic_error *error)
{
	xmlOutputBufferPtr output = xmlOutputBufferCreateIO(c14n_sink_write, NULL, sink, NULL);
	if (output == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	/* libxml2 reports C14N refusals to the thread's error handler, which
	 * would print them: keep them off stderr, as xml_document_parse does. */
	xmlStructuredErrorFunc saved_handler = xmlStructuredError;
	void *saved_context = xmlStructuredErrorContext;
	xmlSetStructuredErrorFunc(NULL, c14n_ignore_error);
	int written = xmlC14NExecute(document, selection != NULL ? c14n_is_visible : NULL, selection,
				     XML_C14N_EXCLUSIVE_1_0, NULL, 0, output);
	int closed = xmlOutputBufferClose(output);
	xmlSetStructuredErrorFunc(saved_context, saved_handler);
	if (sink->failed)
		return lic_error_set(error, LIC_INTERNAL, "out of memory while canonicalising XML");
	if (written < 0 || closed < 0) {
		xmlResetLastError();
		return lic_error_set(error, LIC_MALFORMED,
				     "the document cannot be canonicalised (relative namespace URI?)");
	}
	return LIC_OK;
}

/* Exclusive C14N of the subtree under `node` alone. Its output depends on
 * nothing outside the subtree but the in-scope namespace declarations that
 * it visibly uses, and xmlDocCopyNode declares exactly those on the copy, so
 * the copy, canonicalised as a document of its own, gives the same bytes as
 * the visibility callback over the whole document. It costs time linear in
 * the subtree rather than in the document: a request holding 100 PLs would
 * otherwise be walked whole for each PL's Body (measured: 13 times slower). */
static lic_status c14n_run_subtree(xmlDocPtr document, xmlNodePtr node, struct c14n_sink *sink,
				   lic_error *error)
{
	if (document == NULL || node == NULL || node->type != XML_ELEMENT_NODE || node->doc != document)
		return lic_error_set(error, LIC_INTERNAL, "C14N needs an element of the given document");
	xmlDocPtr alone = xmlNewDoc((const xmlChar *)"1.0");
	xmlNodePtr copy = alone != NULL ? xmlDocCopyNode(node, alone, 1) : NULL;
	if (copy == NULL) {
		xmlFreeDoc(alone);
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	}
	xmlDocSetRootElement(alone, copy);
	lic_status status = c14n_run(alone, NULL, sink, error);
	xmlFreeDoc(alone);
	return status;
}

/* SHA-256 of the C14N of the selected nodes of document, or (selection NULL)
 * of the subtree under node. */
static lic_status c14n_sha256(xmlDocPtr document, struct c14n_selection *selection, xmlNodePtr node,
			      uint8_t digest[SHA256_LENGTH], lic_error *error)
{
	lic_status status = LIC_OK;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	struct c14n_sink sink = {.md = md, .update = EVP_DigestUpdate};
	unsigned int digest_length = 0;
	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		LIC_FAIL(error, LIC_INTERNAL, "SHA-256 is not available");
	if (selection != NULL)
		LIC_TRY(c14n_run(document, selection, &sink, error));
	else
		LIC_TRY(c14n_run_subtree(document, node, &sink, error));
	if (EVP_DigestFinal_ex(md, digest, &digest_length) != 1 || digest_length != SHA256_LENGTH)
		LIC_FAIL(error, LIC_INTERNAL, "SHA-256 failed");
out:
	EVP_MD_CTX_free(md);
	return status;
}

lic_status xml_c14n_subtree(xmlDocPtr document, xmlNodePtr node, xmlChar **out, int *length, lic_error *error)
{
	lic_status status = LIC_OK;
	struct c14n_sink sink = {0};
	LIC_TRY(c14n_run_subtree(document, node, &sink, error));
	if (sink.data == NULL) {
		sink.data = xmlStrdup((const xmlChar *)"");
		if (sink.data == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	}
	*out = sink.data;
	*length = (int)sink.length;
	sink.data = NULL;
out:
	xmlFree(sink.data);
	return status;
}

lic_status xml_c14n_digest(xmlDocPtr document, xmlNodePtr node, uint8_t digest[32], lic_error *error)
{
	return c14n_sha256(document, NULL, node, digest, error);
}

/* ---- Reading the Signature: the shape check ------------------------- */

/* The parts of a Signature that passed the shape check. */
struct signature_parts {
	xmlNodePtr signature;
	xmlNodePtr signed_info;
	uint8_t digest[SHA256_LENGTH];
	uint8_t *signature_value; /* malloc'd */
	size_t signature_value_length;
	char key_name[KEY_NAME_LENGTH + 1];
};

static void signature_parts_cleanup(struct signature_parts *parts)
{
	free(parts->signature_value);
	parts->signature_value = NULL;
}

#define REFUSE(...) LIC_FAIL(error, LIC_RAC_INVALID, "XML signature: " __VA_ARGS__)

static bool is_dsig_element(xmlNodePtr node, const char *name)
{
	return node->type == XML_ELEMENT_NODE && node->ns != NULL &&
	       xmlStrEqual(node->ns->href, (const xmlChar *)XMLDSIG_NAMESPACE) &&
	       (name == NULL || xmlStrEqual(node->name, (const xmlChar *)name));
}

static bool is_xml_whitespace(xmlChar c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_blank_text(xmlNodePtr node)
{
	if (node->type != XML_TEXT_NODE)
		return false;
	for (const xmlChar *c = node->content; c != NULL && *c != '\0'; c++)
		if (!is_xml_whitespace(*c))
			return false;
	return true;
}

static bool is_key_name(const char *text)
{
	if (text == NULL || strlen(text) != KEY_NAME_LENGTH)
		return false;
	for (const char *c = text; *c != '\0'; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return false;
	return true;
}

/* The next node of the document in document order; children of `node` are
 * skipped unless descend is set (only elements are descended into). */
static xmlNodePtr next_in_document(xmlNodePtr node, bool descend)
{
	if (descend && node->type == XML_ELEMENT_NODE && node->children != NULL)
		return node->children;
	while (node != NULL && node->type != XML_DOCUMENT_NODE) {
		if (node->next != NULL)
			return node->next;
		node = node->parent;
	}
	return NULL;
}

/* The first XML-DSig element of the document outside `except` (NULL: none). */
static xmlNodePtr find_dsig_element(xmlDocPtr document, xmlNodePtr except)
{
	for (xmlNodePtr node = document->children; node != NULL;
	     node = next_in_document(node, node != except))
		if (node != except && is_dsig_element(node, NULL))
			return node;
	return NULL;
}

/* `parent` holds exactly the XML-DSig elements names[0..count) in that order,
 * and between them nothing but whitespace text. */
static lic_status expect_children(xmlNodePtr parent, const char *const *names, size_t count,
				  xmlNodePtr *found, lic_error *error)
{
	lic_status status = LIC_OK;
	size_t seen = 0;
	for (xmlNodePtr child = parent->children; child != NULL; child = child->next) {
		if (is_blank_text(child))
			continue;
		if (child->type != XML_ELEMENT_NODE)
			REFUSE("%s holds text, a comment or other content besides its elements",
			       (const char *)parent->name);
		if (seen == count || !is_dsig_element(child, names[seen]))
			REFUSE("unexpected element %.40s in %s", (const char *)child->name,
			       (const char *)parent->name);
		found[seen++] = child;
	}
	if (seen != count)
		REFUSE("element %s is missing from %s", names[seen], (const char *)parent->name);
out:
	return status;
}

/* `node` carries the one attribute name="value" (no namespace) and no other;
 * with name NULL, no attribute at all. */
static lic_status expect_attribute(xmlNodePtr node, const char *name, const char *value, lic_error *error)
{
	lic_status status = LIC_OK;
	xmlChar *actual = NULL;
	for (xmlAttrPtr attribute = node->properties; attribute != NULL; attribute = attribute->next)
		if (name == NULL || attribute->ns != NULL ||
		    !xmlStrEqual(attribute->name, (const xmlChar *)name))
			REFUSE("unexpected attribute %.40s on %s", (const char *)attribute->name,
			       (const char *)node->name);
	if (name == NULL)
		goto out;
	actual = xmlGetNoNsProp(node, (const xmlChar *)name);
	if (actual == NULL || !xmlStrEqual(actual, (const xmlChar *)value))
		REFUSE("%s must carry %s=\"%s\"", (const char *)node->name, name, value);
out:
	xmlFree(actual);
	return status;
}

/* A method or transform: Algorithm="algorithm" and no content. */
static lic_status expect_algorithm(xmlNodePtr node, const char *algorithm, lic_error *error)
{
	lic_status status = LIC_OK;
	LIC_TRY(expect_attribute(node, "Algorithm", algorithm, error));
	LIC_TRY(expect_children(node, NULL, 0, NULL, error));
out:
	return status;
}

/* The text of an element that holds text only and no attribute (new string,
 * xmlFree()), at most maximum bytes. */
static lic_status element_text(xmlNodePtr node, size_t maximum, xmlChar **out, lic_error *error)
{
	lic_status status = LIC_OK;
	xmlChar *text = NULL;
	LIC_TRY(expect_attribute(node, NULL, NULL, error));
	for (xmlNodePtr child = node->children; child != NULL; child = child->next)
		if (child->type != XML_TEXT_NODE)
			REFUSE("%s must hold text only", (const char *)node->name);
	text = xmlNodeGetContent(node);
	if (text == NULL)
		text = xmlStrdup((const xmlChar *)"");
	if (text == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	if (strlen((const char *)text) > maximum)
		REFUSE("%s is too long", (const char *)node->name);
	*out = text;
	text = NULL;
out:
	xmlFree(text);
	return status;
}

/* The base64 value of a DigestValue or SignatureValue (new buffer, free()).
 * Whitespace anywhere in it is ignored: XML Schema's base64Binary allows it
 * and xmlsec1 breaks long values into lines. */
static lic_status element_base64(xmlNodePtr node, uint8_t **out, size_t *length, lic_error *error)
{
	lic_status status = LIC_OK;
	xmlChar *text = NULL;
	char *compact = NULL;
	size_t used = 0;
	LIC_TRY(element_text(node, BASE64_VALUE_MAX_CHARACTERS, &text, error));
	compact = malloc(strlen((const char *)text) + 1);
	if (compact == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	for (const xmlChar *c = text; *c != '\0'; c++)
		if (!is_xml_whitespace(*c))
			compact[used++] = (char)*c;
	status = base64_decode(compact, used, out, length, error);
	if (status == LIC_MALFORMED)
		REFUSE("%s is not base64", (const char *)node->name);
out:
	free(compact);
	xmlFree(text);
	return status;
}

/* Finds the document's Signature and checks that it has exactly licensor's
 * shape; fills parts. */
static lic_status signature_parse(xmlDocPtr document, struct signature_parts *parts, lic_error *error)
{
	static const char *const signature_names[] = {"SignedInfo", "SignatureValue", "KeyInfo"};
	static const char *const signed_info_names[] = {"CanonicalizationMethod", "SignatureMethod",
							"Reference"};
	static const char *const reference_names[] = {"Transforms", "DigestMethod", "DigestValue"};
	static const char *const transforms_names[] = {"Transform", "Transform"};
	static const char *const key_info_names[] = {"KeyName"};
	lic_status status = LIC_OK;
	xmlNodePtr root = document != NULL ? xmlDocGetRootElement(document) : NULL;
	xmlNodePtr signature = NULL, other = NULL;
	xmlNodePtr signature_children[3], signed_info_children[3], reference_children[3], transforms[2],
	    key_name[1];
	xmlChar *key_name_text = NULL;
	uint8_t *digest = NULL;
	size_t digest_length = 0;
	memset(parts, 0, sizeof *parts);
	if (root == NULL)
		REFUSE("the document has no element");

	/* Where: the last element child of the document element, followed by
	 * whitespace only, and the only XML-DSig element of the document. */
	for (xmlNodePtr child = root->children; child != NULL; child = child->next)
		if (child->type == XML_ELEMENT_NODE)
			signature = child;
	if (signature == NULL || !is_dsig_element(signature, "Signature"))
		REFUSE("the last element of %.40s is not an XML-DSig Signature", (const char *)root->name);
	for (xmlNodePtr after = signature->next; after != NULL; after = after->next)
		if (!is_blank_text(after))
			REFUSE("content follows the Signature in %.40s", (const char *)root->name);
	other = find_dsig_element(document, signature);
	if (other != NULL)
		REFUSE("XML-DSig element %.40s appears outside the Signature", (const char *)other->name);

	/* What: exactly the shape of xml_signature.h. */
	LIC_TRY(expect_attribute(signature, NULL, NULL, error));
	LIC_TRY(expect_children(signature, signature_names, 3, signature_children, error));
	xmlNodePtr signed_info = signature_children[0];
	LIC_TRY(expect_attribute(signed_info, NULL, NULL, error));
	LIC_TRY(expect_children(signed_info, signed_info_names, 3, signed_info_children, error));
	LIC_TRY(expect_algorithm(signed_info_children[0], C14N_EXCLUSIVE_ALGORITHM, error));
	LIC_TRY(expect_algorithm(signed_info_children[1], RSA_SHA256_ALGORITHM, error));
	xmlNodePtr reference = signed_info_children[2];
	LIC_TRY(expect_attribute(reference, "URI", "", error));
	LIC_TRY(expect_children(reference, reference_names, 3, reference_children, error));
	LIC_TRY(expect_attribute(reference_children[0], NULL, NULL, error));
	LIC_TRY(expect_children(reference_children[0], transforms_names, 2, transforms, error));
	LIC_TRY(expect_algorithm(transforms[0], ENVELOPED_SIGNATURE_ALGORITHM, error));
	LIC_TRY(expect_algorithm(transforms[1], C14N_EXCLUSIVE_ALGORITHM, error));
	LIC_TRY(expect_algorithm(reference_children[1], SHA256_ALGORITHM, error));
	LIC_TRY(element_base64(reference_children[2], &digest, &digest_length, error));
	if (digest_length != SHA256_LENGTH)
		REFUSE("DigestValue is not a SHA-256 digest");
	LIC_TRY(element_base64(signature_children[1], &parts->signature_value, &parts->signature_value_length,
			       error));
	if (parts->signature_value_length == 0)
		REFUSE("SignatureValue is empty");
	LIC_TRY(expect_attribute(signature_children[2], NULL, NULL, error));
	LIC_TRY(expect_children(signature_children[2], key_info_names, 1, key_name, error));
	LIC_TRY(element_text(key_name[0], KEY_NAME_LENGTH + 1, &key_name_text, error));
	if (!is_key_name((const char *)key_name_text))
		REFUSE("KeyName is not a key id (32 lowercase hex digits)");

	memcpy(parts->digest, digest, SHA256_LENGTH);
	memcpy(parts->key_name, key_name_text, KEY_NAME_LENGTH + 1);
	parts->signature = signature;
	parts->signed_info = signed_info;
out:
	free(digest);
	xmlFree(key_name_text);
	if (status != LIC_OK)
		signature_parts_cleanup(parts);
	return status;
}

lic_status xml_signature_key_name(xmlDocPtr document, char key_id_hex[33], lic_error *error)
{
	struct signature_parts parts;
	key_id_hex[0] = '\0';
	lic_status status = signature_parse(document, &parts, error);
	if (status != LIC_OK)
		return status;
	memcpy(key_id_hex, parts.key_name, KEY_NAME_LENGTH + 1);
	signature_parts_cleanup(&parts);
	return LIC_OK;
}

lic_status xml_signature_verify(xmlDocPtr document, EVP_PKEY *public_key, lic_error *error)
{
	lic_status status = LIC_OK;
	struct signature_parts parts = {0};
	EVP_MD_CTX *md = NULL;
	EVP_PKEY_CTX *key_context = NULL;
	uint8_t digest[SHA256_LENGTH];
	LIC_TRY(signature_parse(document, &parts, error));
	if (public_key == NULL || !EVP_PKEY_is_a(public_key, "RSA"))
		REFUSE("key %s is not an RSA key", parts.key_name);

	/* The Reference: the document without its Signature. */
	struct c14n_selection enveloped = {.subtree = parts.signature, .subtree_visible = false};
	status = c14n_sha256(document, &enveloped, NULL, digest, error);
	if (status == LIC_MALFORMED)
		REFUSE("the document cannot be canonicalised");
	if (status != LIC_OK)
		goto out;
	if (CRYPTO_memcmp(digest, parts.digest, SHA256_LENGTH) != 0)
		REFUSE("the signed content was changed (digest mismatch)");

	/* The signature over SignedInfo. */
	md = EVP_MD_CTX_new();
	if (md == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	if (EVP_DigestVerifyInit(md, &key_context, EVP_sha256(), NULL, public_key) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(key_context, RSA_PKCS1_PADDING) <= 0) {
		ERR_clear_error();
		REFUSE("key %s cannot verify RSA signatures", parts.key_name);
	}
	struct c14n_selection signed_info = {.subtree = parts.signed_info, .subtree_visible = true};
	struct c14n_sink sink = {.md = md, .update = EVP_DigestVerifyUpdate};
	status = c14n_run(document, &signed_info, &sink, error);
	if (status == LIC_MALFORMED)
		REFUSE("SignedInfo cannot be canonicalised");
	if (status != LIC_OK)
		goto out;
	if (EVP_DigestVerifyFinal(md, parts.signature_value, parts.signature_value_length) != 1) {
		ERR_clear_error();
		REFUSE("the signature does not verify with key %s", parts.key_name);
	}
out:
	EVP_MD_CTX_free(md);
	signature_parts_cleanup(&parts);
	return status;
}

/* ---- Writing the Signature ------------------------------------------ */

/* Builds the elements of the Signature; `failed` records any allocation failure. */
struct signature_builder {
	xmlNsPtr ns;
	bool failed;
};

static xmlNodePtr add_element(struct signature_builder *builder, xmlNodePtr parent, const char *name,
			      const char *algorithm)
{
	xmlNodePtr child =
	    parent != NULL ? xmlNewChild(parent, builder->ns, (const xmlChar *)name, NULL) : NULL;
	if (child != NULL && algorithm != NULL &&
	    xmlNewProp(child, (const xmlChar *)"Algorithm", (const xmlChar *)algorithm) == NULL)
		child = NULL;
	if (child == NULL)
		builder->failed = true;
	return child;
}

/* The Signature of xml_signature.h, detached, with empty DigestValue and
 * SignatureValue (*out: xmlFreeNode()). */
static lic_status build_signature(xmlDocPtr document, const char *key_id_hex, xmlNodePtr *out,
				  xmlNodePtr *signed_info, xmlNodePtr *digest_value,
				  xmlNodePtr *signature_value, lic_error *error)
{
	struct signature_builder builder = {0};
	xmlNodePtr signature = xmlNewDocNode(document, NULL, (const xmlChar *)"Signature", NULL);
	builder.ns = signature != NULL ? xmlNewNs(signature, (const xmlChar *)XMLDSIG_NAMESPACE, NULL) : NULL;
	if (builder.ns == NULL) {
		xmlFreeNode(signature);
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	}
	xmlSetNs(signature, builder.ns);
	*signed_info = add_element(&builder, signature, "SignedInfo", NULL);
	add_element(&builder, *signed_info, "CanonicalizationMethod", C14N_EXCLUSIVE_ALGORITHM);
	add_element(&builder, *signed_info, "SignatureMethod", RSA_SHA256_ALGORITHM);
	xmlNodePtr reference = add_element(&builder, *signed_info, "Reference", NULL);
	if (reference != NULL && xmlNewProp(reference, (const xmlChar *)"URI", (const xmlChar *)"") == NULL)
		builder.failed = true;
	xmlNodePtr transforms = add_element(&builder, reference, "Transforms", NULL);
	add_element(&builder, transforms, "Transform", ENVELOPED_SIGNATURE_ALGORITHM);
	add_element(&builder, transforms, "Transform", C14N_EXCLUSIVE_ALGORITHM);
	add_element(&builder, reference, "DigestMethod", SHA256_ALGORITHM);
	*digest_value = add_element(&builder, reference, "DigestValue", NULL);
	*signature_value = add_element(&builder, signature, "SignatureValue", NULL);
	xmlNodePtr key_info = add_element(&builder, signature, "KeyInfo", NULL);
	xmlNodePtr key_name = add_element(&builder, key_info, "KeyName", NULL);
	xmlNodePtr key_name_text = xmlNewDocText(document, (const xmlChar *)key_id_hex);
	if (key_name == NULL || key_name_text == NULL || xmlAddChild(key_name, key_name_text) == NULL) {
		xmlFreeNode(key_name_text);
		builder.failed = true;
	}
	if (builder.failed) {
		xmlFreeNode(signature);
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	}
	*out = signature;
	return LIC_OK;
}

/* Sets the text of an empty element to the base64 of data. */
static lic_status set_base64_text(xmlNodePtr node, const uint8_t *data, size_t length, lic_error *error)
{
	char *text = base64_encode(data, length);
	xmlNodePtr child = text != NULL ? xmlNewDocText(node->doc, (const xmlChar *)text) : NULL;
	free(text);
	if (child == NULL || xmlAddChild(node, child) == NULL) {
		xmlFreeNode(child);
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	}
	return LIC_OK;
}

lic_status xml_signature_sign(xmlDocPtr document, const struct version_key *key, const char *key_id_hex,
			      lic_error *error)
{
	lic_status status = LIC_OK;
	xmlNodePtr root = document != NULL ? xmlDocGetRootElement(document) : NULL;
	xmlNodePtr signature = NULL, signed_info = NULL, digest_value = NULL, signature_value = NULL;
	uint8_t digest[SHA256_LENGTH];
	uint8_t *signature_bytes = NULL;
	size_t signature_length = 0;
	struct c14n_sink canonical_signed_info = {0};
	if (root == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "cannot sign a document without an element");
	if (!is_key_name(key_id_hex))
		LIC_FAIL(error, LIC_INTERNAL, "the signing key id must be 32 lowercase hex digits");
	if (key == NULL || (key->token == NULL && (key->evp == NULL || !EVP_PKEY_is_a(key->evp, "RSA"))))
		LIC_FAIL(error, LIC_INTERNAL, "the signing key is not an RSA key");
	if (find_dsig_element(document, NULL) != NULL)
		LIC_FAIL(error, LIC_INTERNAL, "the document already holds an XML-DSig element");
	LIC_TRY(build_signature(document, key_id_hex, &signature, &signed_info, &digest_value,
				&signature_value, error));
	if (xmlAddChild(root, signature) == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");

	struct c14n_selection enveloped = {.subtree = signature, .subtree_visible = false};
	LIC_TRY(c14n_sha256(document, &enveloped, NULL, digest, error));
	LIC_TRY(set_base64_text(digest_value, digest, sizeof digest, error));

	/* The canonical SignedInfo is collected whole (a few hundred bytes) so
	 * that a token key can hash and sign it in one call. */
	struct c14n_selection signed_info_only = {.subtree = signed_info, .subtree_visible = true};
	LIC_TRY(c14n_run(document, &signed_info_only, &canonical_signed_info, error));
	LIC_TRY(version_key_sign_sha256(
	    key, canonical_signed_info.data != NULL ? (const uint8_t *)canonical_signed_info.data : digest,
	    canonical_signed_info.length, &signature_bytes, &signature_length, error));
	LIC_TRY(set_base64_text(signature_value, signature_bytes, signature_length, error));
out:
	if (status != LIC_OK && signature != NULL) {
		xmlUnlinkNode(signature);
		xmlFreeNode(signature);
	}
	free(signature_bytes);
	xmlFree(canonical_signed_info.data);
	return status;
}
