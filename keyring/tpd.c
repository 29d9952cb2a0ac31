/*
 * tpd.c: the three documents of a TPD exchange (see tpd.h, docs/tpd.md):
 * the recipient key files, TPD-<GUID>.xml and ExportedTPD-<GUID>.xml, and
 * the cryptography under them.
 *
 * Both XML documents share one body: a header (Format, Guid, Tenant,
 * CreatedAt, KeyCount) and one <Key> per version whose private key is
 * AES-256-GCM under a document key. They differ in where the document key
 * comes from: RSA-OAEP-SHA256 unwrap (TPD) or scrypt of a password
 * (ExportedTPD). The AAD of each <Key> binds label, GUID, tenant, the
 * header's CreatedAt, key count, and the key's number, key id, algorithm,
 * state, compromised mark and CreatedAt, so any edit of the header or of a
 * key's attributes, or any reordering, removal or swap of keys fails
 * authentication and the whole document is refused. Every decrypted key is
 * checked against its public key (and, pairwise, its private half), the key
 * id and the algorithm before the caller sees it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "encoding.h"
#include "error.h"
#include "secure_memory.h"
#include "store.h"
#include "tpd.h"
#include "version_key.h"
#include "xml_document.h"

/* The OAEP label of the wrapped document key (unchanged since v1). */
#define TPD_OAEP_LABEL "licensor-tpd-v1"
/* The AAD labels: v2 binds the header CreatedAt and each key's Algorithm,
 * State, Compromised and CreatedAt too. */
#define TPD_LABEL "licensor-tpd-v2"
#define EXPORTED_LABEL "licensor-exported-tpd-v2"
#define DOCUMENT_KEY_LENGTH 32
#define GCM_NONCE_LENGTH 12
#define GCM_TAG_LENGTH 16
#define AAD_MAX (32 + 1 + 36 + 1 + TENANT_NAME_MAX + 1 + 8 + 4 + 4 + KEY_ID_LENGTH + 32 + 1 + 16 + 1 + 1 + 8)
#define PASSWORD_CHECK_TEXT "password-check"

void tpd_contents_free(struct tpd_contents *contents)
{
	if (contents == NULL)
		return;
	for (size_t i = 0; i < contents->key_count; i++) {
		free(contents->keys[i].public_key_der);
		if (contents->keys[i].private_key_der != NULL)
			secure_free(contents->keys[i].private_key_der, contents->keys[i].private_key_length);
	}
	free(contents->keys);
	free(contents->tenant);
	free(contents);
}

/* ---- GUIDs and file names ---- */

lic_status tpd_guid_new(char guid[TPD_GUID_LENGTH], lic_error *error)
{
	uint8_t bytes[16];
	char hex[33];
	if (RAND_bytes(bytes, sizeof bytes) != 1)
		return lic_error_set(error, LIC_INTERNAL, "no random bytes for a GUID");
	bytes[6] = (uint8_t)((bytes[6] & 0x0f) | 0x40); /* version 4 */
	bytes[8] = (uint8_t)((bytes[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	hex_encode(bytes, sizeof bytes, hex);
	snprintf(guid, TPD_GUID_LENGTH, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
		 hex + 20);
	return LIC_OK;
}

bool tpd_guid_valid(const char *guid)
{
	if (guid == NULL || strlen(guid) != 36)
		return false;
	for (size_t i = 0; i < 36; i++) {
		char c = guid[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			return false;
		}
	}
	return guid[14] == '4';
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

lic_status tpd_guid_of_file_name(const char *path, const char *prefix, const char *suffix,
				 char guid[TPD_GUID_LENGTH], lic_error *error)
{
	const char *name = base_name(path);
	size_t prefix_length = strlen(prefix), suffix_length = strlen(suffix), length = strlen(name);
	if (length != prefix_length + 36 + suffix_length || strncmp(name, prefix, prefix_length) != 0 ||
	    strcmp(name + length - suffix_length, suffix) != 0)
		return lic_error_set(error, LIC_USAGE, "file name %.200s is not of the form %s<GUID>%s", name,
				     prefix, suffix);
	memcpy(guid, name + prefix_length, 36);
	guid[36] = '\0';
	if (!tpd_guid_valid(guid))
		return lic_error_set(error, LIC_USAGE, "file name %.200s does not hold a lowercase UUID v4",
				     name);
	return LIC_OK;
}

lic_status tpd_check_file_name(const char *path, const char *prefix, const char *suffix, const char *guid,
			       lic_error *error)
{
	char named[TPD_GUID_LENGTH];
	lic_status status = tpd_guid_of_file_name(path, prefix, suffix, named, error);
	if (status != LIC_OK)
		return status;
	if (strcmp(named, guid) != 0)
		return lic_error_set(error, LIC_USAGE,
				     "%.200s is named for exchange %s but holds exchange %s: files of "
				     "different exchanges cannot be mixed",
				     base_name(path), named, guid);
	return LIC_OK;
}

/* ---- AES-256-GCM ---- */

/* The store's sealing format (kek.h: nonce ‖ ciphertext ‖ tag) under a
 * document key; gcm_open names `what` when the bytes do not authenticate. */
static lic_status gcm_seal(const uint8_t key[DOCUMENT_KEY_LENGTH], const uint8_t *aad, size_t aad_length,
			   const uint8_t *plaintext, size_t plaintext_length, uint8_t **sealed,
			   size_t *sealed_length, lic_error *error)
{
	return aes_gcm_seal(key, aad, aad_length, plaintext, plaintext_length, sealed, sealed_length, error);
}

/* Opens into new secure memory (secure_free(*plaintext, *plaintext_length + 1)).
 * Any altered byte, wrong key or wrong AAD: LIC_MALFORMED with `what`. */
static lic_status gcm_open(const uint8_t key[DOCUMENT_KEY_LENGTH], const uint8_t *aad, size_t aad_length,
			   const uint8_t *sealed, size_t sealed_length, uint8_t **plaintext,
			   size_t *plaintext_length, const char *what, lic_error *error)
{
	if (sealed_length < GCM_NONCE_LENGTH + GCM_TAG_LENGTH || sealed_length > INT32_MAX)
		return lic_error_set(error, LIC_MALFORMED, "%s is too short to be AES-GCM output", what);
	lic_status status =
	    aes_gcm_open(key, aad, aad_length, sealed, sealed_length, plaintext, plaintext_length, error);
	if (status == LIC_INTERNAL)
		return lic_error_set(error, LIC_MALFORMED, "%s fails authentication: the file was altered",
				     what);
	return status;
}

static void put_u32(uint8_t *out, uint32_t value)
{
	out[0] = (uint8_t)(value >> 24);
	out[1] = (uint8_t)(value >> 16);
	out[2] = (uint8_t)(value >> 8);
	out[3] = (uint8_t)value;
}

static void put_u64(uint8_t *out, uint64_t value)
{
	put_u32(out, (uint32_t)(value >> 32));
	put_u32(out + 4, (uint32_t)value);
}

static const char *const state_names[] = {"pending", "active", "retained", "revoked", "destroyed"};

static size_t aad_put_text(uint8_t *out, size_t at, const char *text)
{
	size_t length = strlen(text);
	memcpy(out + at, text, length);
	out[at + length] = 0;
	return at + length + 1;
}

/* The header part, every AAD of a document starts with it:
 *   label ‖ 0 ‖ guid ‖ 0 ‖ tenant ‖ 0 ‖ header CreatedAt (8, BE, two's
 *   complement) ‖ key count (4, BE)
 * and, for a key (entry != NULL), then:
 *   number (4, BE) ‖ key id (16) ‖ algorithm name ‖ 0 ‖ state name ‖ 0 ‖
 *   compromised (1: 0x00 or 0x01) ‖ key CreatedAt (8, BE, two's complement)
 * The password check of an ExportedTPD uses the header part alone. */
static size_t key_aad(const char *label, const struct tpd_contents *contents, const struct tpd_key *entry,
		      uint8_t out[AAD_MAX])
{
	size_t at = 0;
	at = aad_put_text(out, at, label);
	at = aad_put_text(out, at, contents->guid);
	at = aad_put_text(out, at, contents->tenant);
	put_u64(out + at, (uint64_t)contents->created_at);
	at += 8;
	put_u32(out + at, (uint32_t)contents->key_count);
	at += 4;
	if (entry == NULL)
		return at;
	put_u32(out + at, entry->number);
	at += 4;
	memcpy(out + at, entry->key_id, KEY_ID_LENGTH);
	at += KEY_ID_LENGTH;
	at = aad_put_text(out, at, key_algorithm_name(entry->algorithm));
	at = aad_put_text(out, at, state_names[entry->state]);
	out[at++] = entry->compromised ? 1 : 0;
	put_u64(out + at, (uint64_t)entry->created_at);
	return at + 8;
}

/* ---- recipient key files ---- */

static lic_status key_file_text(const char *guid, BIO *bio, bool secure, char **out, size_t *out_length,
				lic_error *error)
{
	char *data = NULL;
	long pem_length = BIO_get_mem_data(bio, &data);
	if (pem_length <= 0)
		return lic_error_set(error, LIC_INTERNAL, "cannot write PEM");
	size_t total = 6 + 36 + 1 + (size_t)pem_length;
	char *text = secure ? secure_alloc(total + 1) : malloc(total + 1);
	if (text == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	memcpy(text, "Guid: ", 6);
	memcpy(text + 6, guid, 36);
	text[42] = '\n';
	memcpy(text + 43, data, (size_t)pem_length);
	text[total] = '\0';
	*out = text;
	*out_length = total;
	return LIC_OK;
}

lic_status tpd_recipient_key_create(enum key_algorithm algorithm, char guid[TPD_GUID_LENGTH],
				    char **public_text, size_t *public_length, char **private_text,
				    size_t *private_length, lic_error *error)
{
	lic_status status = LIC_OK;
	EVP_PKEY *key = NULL;
	BIO *public_bio = NULL, *private_bio = NULL;
	char *public_out = NULL;
	if (algorithm == KEY_ALGORITHM_RSA_1024)
		LIC_FAIL(error, LIC_UNSUPPORTED_VERSION, "a recipient key must be rsa-2048 or larger");
	LIC_TRY(tpd_guid_new(guid, error));
	LIC_TRY(key_material_generate(algorithm, &key, error));
	public_bio = BIO_new(BIO_s_mem());
	private_bio = BIO_new(BIO_s_secmem());
	if (public_bio == NULL || private_bio == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	if (PEM_write_bio_PUBKEY(public_bio, key) != 1 ||
	    PEM_write_bio_PKCS8PrivateKey(private_bio, key, NULL, NULL, 0, NULL, NULL) != 1)
		LIC_FAIL(error, LIC_INTERNAL, "cannot write the recipient key as PEM");
	LIC_TRY(key_file_text(guid, public_bio, false, &public_out, public_length, error));
	LIC_TRY(key_file_text(guid, private_bio, true, private_text, private_length, error));
	*public_text = public_out;
	public_out = NULL;
out:
	free(public_out);
	BIO_free(public_bio);
	BIO_free(private_bio); /* a secmem BIO wipes its buffer */
	EVP_PKEY_free(key);
	return status;
}

static int no_password(char *buffer, int size, int rwflag, void *user)
{
	(void)buffer;
	(void)size;
	(void)rwflag;
	(void)user;
	return 0; /* never prompt: encrypted PEM is refused */
}

static lic_status key_file_header(const char *text, size_t length, char guid[TPD_GUID_LENGTH],
				  const char *what, lic_error *error)
{
	if (length < 43 || strncmp(text, "Guid: ", 6) != 0 || text[42] != '\n')
		return lic_error_set(error, LIC_MALFORMED, "%s must start with a line 'Guid: <GUID>'", what);
	memcpy(guid, text + 6, 36);
	guid[36] = '\0';
	if (!tpd_guid_valid(guid))
		return lic_error_set(error, LIC_MALFORMED,
				     "%s: the Guid line does not hold a lowercase UUID v4", what);
	return LIC_OK;
}

static lic_status check_recipient_key(EVP_PKEY *key, const char *what, lic_error *error)
{
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA || EVP_PKEY_get_bits(key) < 2048 ||
	    EVP_PKEY_get_bits(key) > 16384)
		return lic_error_set(error, LIC_UNSUPPORTED_VERSION,
				     "%s must hold an RSA key of 2048 to 16384 bits", what);
	return LIC_OK;
}

lic_status tpd_public_key_parse(const char *text, size_t length, char guid[TPD_GUID_LENGTH], EVP_PKEY **out,
				lic_error *error)
{
	lic_status status = key_file_header(text, length, guid, "the public key file", error);
	if (status != LIC_OK)
		return status;
	if (length > TPD_KEY_FILE_MAX_BYTES)
		return lic_error_set(error, LIC_TOO_LARGE, "the public key file is too large");
	BIO *bio = BIO_new_mem_buf(text + 43, (int)(length - 43));
	EVP_PKEY *key = bio ? PEM_read_bio_PUBKEY(bio, NULL, no_password, NULL) : NULL;
	BIO_free(bio);
	if (key == NULL)
		return lic_error_set(error, LIC_MALFORMED, "the public key file holds no PEM public key");
	status = check_recipient_key(key, "the public key file", error);
	if (status != LIC_OK) {
		EVP_PKEY_free(key);
		return status;
	}
	*out = key;
	return LIC_OK;
}

lic_status tpd_private_key_parse(const char *text, size_t length, char guid[TPD_GUID_LENGTH], EVP_PKEY **out,
				 lic_error *error)
{
	lic_status status = key_file_header(text, length, guid, "the private key file", error);
	if (status != LIC_OK)
		return status;
	if (length > TPD_KEY_FILE_MAX_BYTES)
		return lic_error_set(error, LIC_TOO_LARGE, "the private key file is too large");
	BIO *bio = BIO_new_mem_buf(text + 43, (int)(length - 43));
	EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL) : NULL;
	BIO_free(bio);
	if (key == NULL)
		return lic_error_set(error, LIC_MALFORMED, "the private key file holds no PEM private key");
	status = check_recipient_key(key, "the private key file", error);
	if (status != LIC_OK) {
		EVP_PKEY_free(key);
		return status;
	}
	*out = key;
	return LIC_OK;
}

lic_status tpd_private_key_read_file(const char *path, char guid[TPD_GUID_LENGTH], EVP_PKEY **out,
				     lic_error *error)
{
	lic_status status = LIC_OK;
	char *text = secure_alloc(TPD_KEY_FILE_MAX_BYTES + 1);
	size_t length = 0;
	int fd = -1;
	if (text == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of secure memory");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		LIC_FAIL(error, LIC_IO, "cannot open %.200s: %s", path, strerror(errno));
	for (;;) {
		ssize_t got = read(fd, text + length, TPD_KEY_FILE_MAX_BYTES + 1 - length);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			LIC_FAIL(error, LIC_IO, "cannot read %.200s: %s", path, strerror(errno));
		if (got == 0)
			break;
		length += (size_t)got;
		if (length > TPD_KEY_FILE_MAX_BYTES)
			LIC_FAIL(error, LIC_TOO_LARGE, "%.200s is larger than %u bytes", path,
				 TPD_KEY_FILE_MAX_BYTES);
	}
	LIC_TRY(tpd_private_key_parse(text, length, guid, out, error));
out:
	if (fd >= 0)
		close(fd);
	secure_free(text, TPD_KEY_FILE_MAX_BYTES + 1);
	return status;
}

/* ---- RSA-OAEP-SHA256 of the document key ---- */

static lic_status oaep_context(EVP_PKEY *key, bool encrypt, const char *guid, EVP_PKEY_CTX **out,
			       lic_error *error)
{
	EVP_PKEY_CTX *context = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
	size_t label_length = strlen(TPD_OAEP_LABEL) + 1 + 36;
	char *label = OPENSSL_malloc(label_length + 1); /* oaep_set_parameters copies it */
	if (context == NULL || label == NULL) {
		EVP_PKEY_CTX_free(context);
		OPENSSL_free(label);
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	}
	snprintf(label, label_length + 1, "%s:%s", TPD_OAEP_LABEL, guid);
	lic_status status = LIC_OK;
	if ((encrypt ? EVP_PKEY_encrypt_init(context) : EVP_PKEY_decrypt_init(context)) != 1)
		status = lic_error_set(error, LIC_INTERNAL, "RSA-OAEP is not available");
	else
		status = oaep_set_parameters(context, (const uint8_t *)label, label_length, error);
	OPENSSL_free(label);
	if (status != LIC_OK) {
		EVP_PKEY_CTX_free(context);
		return status;
	}
	*out = context;
	return LIC_OK;
}

/* ---- the shared document body ---- */

static lic_status add_keys(xmlNodePtr root, const struct tpd_contents *contents, const char *label,
			   const uint8_t key[DOCUMENT_KEY_LENGTH], lic_error *error)
{
	lic_status status = LIC_OK;
	uint8_t *sealed = NULL;
	size_t sealed_length = 0;
	uint8_t aad[AAD_MAX];
	for (size_t i = 0; i < contents->key_count; i++) {
		const struct tpd_key *entry = &contents->keys[i];
		xmlNodePtr node = xmlNewChild(root, root->ns, (const xmlChar *)"Key", NULL);
		if (node == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
		LIC_TRY(xml_set_attribute_u64(node, "Number", entry->number, error));
		LIC_TRY(xml_set_attribute(node, "KeyId", entry->key_id_hex, error));
		LIC_TRY(xml_set_attribute(node, "Algorithm", key_algorithm_name(entry->algorithm), error));
		LIC_TRY(xml_set_attribute(node, "State", state_names[entry->state], error));
		LIC_TRY(xml_set_attribute(node, "Compromised", entry->compromised ? "true" : "false", error));
		LIC_TRY(xml_set_attribute_time(node, "CreatedAt", entry->created_at, error));
		LIC_TRY(xml_add_base64_child(node, "PublicKey", entry->public_key_der,
					     entry->public_key_length, NULL, error));
		size_t aad_length = key_aad(label, contents, entry, aad);
		LIC_TRY(gcm_seal(key, aad, aad_length, entry->private_key_der, entry->private_key_length,
				 &sealed, &sealed_length, error));
		LIC_TRY(
		    xml_add_base64_child(node, "EncryptedPrivateKey", sealed, sealed_length, NULL, error));
		free(sealed);
		sealed = NULL;
	}
out:
	free(sealed);
	return status;
}

static lic_status new_document(const char *root_name, const struct tpd_contents *contents,
			       xmlDocPtr *document, xmlNodePtr *root, lic_error *error)
{
	lic_status status = LIC_OK;
	*document = xmlNewDoc((const xmlChar *)"1.0");
	*root = *document ? xmlNewNode(NULL, (const xmlChar *)root_name) : NULL;
	if (*root == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	xmlDocSetRootElement(*document, *root);
	xmlSetNs(*root, xmlNewNs(*root, (const xmlChar *)LICENSOR_NAMESPACE, NULL));
	LIC_TRY(xml_set_attribute(*root, "Format", "1", error));
	LIC_TRY(xml_set_attribute(*root, "Guid", contents->guid, error));
	LIC_TRY(xml_set_attribute(*root, "Tenant", contents->tenant, error));
	LIC_TRY(xml_set_attribute_time(*root, "CreatedAt", contents->created_at, error));
	LIC_TRY(xml_set_attribute_u64(*root, "KeyCount", contents->key_count, error));
out:
	return status;
}

static lic_status finish_document(xmlDocPtr document, char **xml, size_t *xml_length, lic_error *error)
{
	xmlChar *text = NULL;
	int length = 0;
	lic_status status = xml_document_serialize(document, &text, &length, error);
	if (status != LIC_OK)
		return status;
	char *copy = malloc((size_t)length + 1);
	if (copy == NULL) {
		xmlFree(text);
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	}
	memcpy(copy, text, (size_t)length + 1);
	xmlFree(text);
	*xml = copy;
	*xml_length = (size_t)length;
	return LIC_OK;
}

/* Parses the header: root element, Format, Guid (= expected_guid), Tenant,
 * CreatedAt, KeyCount, and that many <Key> elements. */
static lic_status parse_header(const char *xml, size_t xml_length, const char *root_name, const char *what,
			       const char *expected_guid, xmlDocPtr *document, xmlNodePtr *root,
			       struct tpd_contents **out, lic_error *error)
{
	lic_status status = LIC_OK;
	struct tpd_contents *contents = calloc(1, sizeof *contents);
	char *text = NULL;
	uint64_t count = 0;
	size_t found = 0;
	if (contents == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	LIC_TRY(xml_document_parse(xml, xml_length, TPD_FILE_MAX_BYTES, document, error));
	LIC_TRY(xml_document_root(*document, root_name, root, error));
	LIC_TRY(xml_attribute(*root, "Format", false, &text, error));
	if (strcmp(text, "1") != 0)
		LIC_FAIL(error, LIC_UNSUPPORTED_VERSION, "%s has Format %.20s; this licensor reads Format 1",
			 what, text);
	xmlFree(text);
	text = NULL;
	LIC_TRY(xml_attribute(*root, "Guid", false, &text, error));
	if (!tpd_guid_valid(text))
		LIC_FAIL(error, LIC_MALFORMED, "%s: Guid is not a lowercase UUID v4", what);
	memcpy(contents->guid, text, TPD_GUID_LENGTH);
	xmlFree(text);
	text = NULL;
	if (expected_guid != NULL && strcmp(expected_guid, contents->guid) != 0)
		LIC_FAIL(error, LIC_USAGE,
			 "%s belongs to exchange %s, not to exchange %s: files of different exchanges cannot "
			 "be mixed",
			 what, contents->guid, expected_guid);
	LIC_TRY(xml_attribute(*root, "Tenant", false, &text, error));
	if (!tenant_name_valid(text))
		LIC_FAIL(error, LIC_MALFORMED, "%s: Tenant is not a valid tenant name", what);
	contents->tenant = strdup(text);
	if (contents->tenant == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	LIC_TRY(xml_attribute_time(*root, "CreatedAt", false, &contents->created_at, error));
	LIC_TRY(xml_attribute_u64(*root, "KeyCount", false, TPD_KEYS_MAX, &count, error));
	if (count == 0)
		LIC_FAIL(error, LIC_MALFORMED, "%s holds no key", what);
	for (xmlNodePtr child = (*root)->children; child != NULL; child = child->next)
		if (child->type == XML_ELEMENT_NODE && strcmp((const char *)child->name, "Key") == 0)
			found++;
	if (found != count)
		LIC_FAIL(error, LIC_MALFORMED, "%s: KeyCount says %llu keys but it holds %zu", what,
			 (unsigned long long)count, found);
	contents->keys = calloc(count, sizeof *contents->keys);
	if (contents->keys == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	contents->key_count = (size_t)count;
	*out = contents;
	contents = NULL;
out:
	xmlFree(text);
	tpd_contents_free(contents);
	return status;
}

static lic_status parse_state(xmlNodePtr node, lic_key_state *out, lic_error *error)
{
	char *text = NULL;
	lic_status status = xml_attribute(node, "State", false, &text, error);
	if (status != LIC_OK)
		return status;
	for (size_t i = 0; i < sizeof state_names / sizeof state_names[0]; i++)
		if (strcmp(text, state_names[i]) == 0) {
			*out = (lic_key_state)i;
			xmlFree(text);
			return LIC_OK;
		}
	xmlFree(text);
	return lic_error_set(error, LIC_MALFORMED, "a Key has an unknown State");
}

/* Checks that a decrypted PKCS#8 key is the key of its public key, key id and
 * algorithm: its (n, e) must be the SPKI's, and its private half (d, p, q and
 * the CRT values) must belong to them (OpenSSL's pairwise check: p·q = n,
 * p and q prime, d·e ≡ 1 mod lcm(p−1, q−1), the CRT values). */
static lic_status check_key_pair(const struct tpd_key *entry, lic_error *error)
{
	lic_status status = LIC_OK;
	EVP_PKEY *key = NULL;
	EVP_PKEY_CTX *context = NULL;
	uint8_t *spki = NULL;
	size_t spki_length = 0;
	enum key_algorithm algorithm;
	LIC_TRY(
	    key_material_from_private_der(entry->private_key_der, entry->private_key_length, &key, error));
	LIC_TRY(key_material_public_der(key, &spki, &spki_length, error));
	if (spki_length != entry->public_key_length || memcmp(spki, entry->public_key_der, spki_length) != 0)
		LIC_FAIL(error, LIC_MALFORMED, "key %u: the private key does not match its public key",
			 entry->number);
	context = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
	if (context == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	if (EVP_PKEY_pairwise_check(context) != 1) {
		ERR_clear_error();
		LIC_FAIL(error, LIC_MALFORMED,
			 "key %u: the private key is not the private half of its public key", entry->number);
	}
	LIC_TRY(key_material_algorithm_of(key, &algorithm, error));
	if (algorithm != entry->algorithm)
		LIC_FAIL(error, LIC_MALFORMED, "key %u: the key is %s, not %s as its Algorithm says",
			 entry->number, key_algorithm_name(algorithm), key_algorithm_name(entry->algorithm));
out:
	EVP_PKEY_CTX_free(context);
	free(spki);
	EVP_PKEY_free(key);
	return status;
}

static lic_status read_keys(xmlNodePtr root, struct tpd_contents *contents, const char *label,
			    const uint8_t key[DOCUMENT_KEY_LENGTH], lic_error *error)
{
	lic_status status = LIC_OK;
	char *text = NULL;
	uint8_t *sealed = NULL;
	size_t sealed_length = 0, index = 0;
	uint8_t aad[AAD_MAX];
	uint8_t computed[KEY_ID_LENGTH];
	for (xmlNodePtr node = root->children; node != NULL; node = node->next) {
		if (node->type != XML_ELEMENT_NODE || strcmp((const char *)node->name, "Key") != 0)
			continue;
		struct tpd_key *entry = &contents->keys[index];
		uint64_t number = 0;
		LIC_TRY(xml_attribute_u64(node, "Number", false, TENANT_VERSION_MAX, &number, error));
		if (number == 0 || (index > 0 && number <= contents->keys[index - 1].number))
			LIC_FAIL(error, LIC_MALFORMED, "key numbers must rise from 1 in document order");
		entry->number = (uint32_t)number;
		LIC_TRY(xml_attribute(node, "KeyId", false, &text, error));
		if (strlen(text) != KEY_ID_HEX_LENGTH - 1 ||
		    hex_decode(text, entry->key_id, KEY_ID_LENGTH, error) != LIC_OK)
			LIC_FAIL(error, LIC_MALFORMED, "key %u: KeyId is not 32 hex digits", entry->number);
		hex_encode(entry->key_id, KEY_ID_LENGTH, entry->key_id_hex);
		xmlFree(text);
		text = NULL;
		LIC_TRY(xml_attribute(node, "Algorithm", false, &text, error));
		LIC_TRY(key_algorithm_parse(text, true, &entry->algorithm, error));
		xmlFree(text);
		text = NULL;
		LIC_TRY(parse_state(node, &entry->state, error));
		LIC_TRY(xml_attribute_bool(node, "Compromised", false, &entry->compromised, error));
		LIC_TRY(xml_attribute_time(node, "CreatedAt", false, &entry->created_at, error));
		LIC_TRY(xml_child_base64(node, "PublicKey", false, &entry->public_key_der,
					 &entry->public_key_length, error));
		key_id_of_spki(entry->public_key_der, entry->public_key_length, computed);
		if (memcmp(computed, entry->key_id, KEY_ID_LENGTH) != 0)
			LIC_FAIL(error, LIC_MALFORMED, "key %u: KeyId is not the hash of its public key",
				 entry->number);
		for (size_t j = 0; j < index; j++)
			if (memcmp(contents->keys[j].key_id, entry->key_id, KEY_ID_LENGTH) == 0)
				LIC_FAIL(error, LIC_MALFORMED, "key id %s appears twice", entry->key_id_hex);
		LIC_TRY(xml_child_base64(node, "EncryptedPrivateKey", false, &sealed, &sealed_length, error));
		size_t aad_length = key_aad(label, contents, entry, aad);
		char what[64];
		snprintf(what, sizeof what, "the private key of key %u", entry->number);
		LIC_TRY(gcm_open(key, aad, aad_length, sealed, sealed_length, &entry->private_key_der,
				 &entry->private_key_length, what, error));
		free(sealed);
		sealed = NULL;
		LIC_TRY(check_key_pair(entry, error));
		index++;
	}
out:
	xmlFree(text);
	free(sealed);
	return status;
}

/* ---- TPD ---- */

bool tpd_version_exported(const struct tenant *tenant, const struct key_version *version, int64_t now)
{
	lic_key_state state = tenant_effective_state(tenant, version, now);
	return state == LIC_KEY_STATE_ACTIVE || state == LIC_KEY_STATE_RETAINED;
}

static lic_status contents_from_tenant(const struct tenant *tenant, const struct kek *kek, const char *guid,
				       int64_t now, struct tpd_contents **out, lic_error *error)
{
	lic_status status = LIC_OK;
	struct tpd_contents *contents = calloc(1, sizeof *contents);
	EVP_PKEY *key = NULL;
	size_t count = 0;
	if (contents == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	for (size_t i = 0; i < tenant->version_count; i++) {
		const struct key_version *version = &tenant->versions[i];
		if (!tpd_version_exported(tenant, version, now))
			continue;
		if (version->origin == KEY_ORIGIN_BYOK || version->sealed_private_key == NULL)
			LIC_FAIL(error, LIC_NOT_EXPORTABLE,
				 "version %u of %s is a BYOK key: it never leaves its HSM, so the tenant "
				 "cannot be exported (nothing written)",
				 version->number, tenant->name);
		count++;
	}
	if (count == 0)
		LIC_FAIL(error, LIC_STATE, "tenant %s has no active or retained version to export",
			 tenant->name);
	if (count > TPD_KEYS_MAX)
		LIC_FAIL(error, LIC_TOO_LARGE, "tenant %s has more than %d versions to export", tenant->name,
			 TPD_KEYS_MAX);
	memcpy(contents->guid, guid, TPD_GUID_LENGTH);
	contents->tenant = strdup(tenant->name);
	contents->keys = calloc(count, sizeof *contents->keys);
	if (contents->tenant == NULL || contents->keys == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	contents->created_at = now;
	for (size_t i = 0; i < tenant->version_count; i++) {
		const struct key_version *version = &tenant->versions[i];
		if (!tpd_version_exported(tenant, version, now))
			continue;
		struct tpd_key *entry = &contents->keys[contents->key_count++];
		entry->number = version->number;
		memcpy(entry->key_id, version->key_id, KEY_ID_LENGTH);
		hex_encode(entry->key_id, KEY_ID_LENGTH, entry->key_id_hex);
		entry->algorithm = version->algorithm;
		entry->state = tenant_effective_state(tenant, version, now);
		entry->compromised = version->compromised;
		entry->created_at = version->created_at;
		entry->public_key_der = malloc(version->public_key_length);
		if (entry->public_key_der == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
		memcpy(entry->public_key_der, version->public_key_der, version->public_key_length);
		entry->public_key_length = version->public_key_length;
		LIC_TRY(store_open_private_key(kek, tenant->name, version, &key, error));
		LIC_TRY(key_material_private_der(key, &entry->private_key_der, &entry->private_key_length,
						 error));
		EVP_PKEY_free(key);
		key = NULL;
	}
	*out = contents;
	contents = NULL;
out:
	EVP_PKEY_free(key);
	tpd_contents_free(contents);
	return status;
}

lic_status tpd_export(const struct tenant *tenant, const struct kek *kek, const char *guid,
		      EVP_PKEY *recipient, int64_t now, char **xml, size_t *xml_length, char **versions,
		      lic_error *error)
{
	lic_status status = LIC_OK;
	struct tpd_contents *contents = NULL;
	uint8_t *document_key = secure_alloc(DOCUMENT_KEY_LENGTH);
	uint8_t *wrapped = NULL, *spki = NULL;
	size_t wrapped_length = 0, spki_length = 0;
	EVP_PKEY_CTX *context = NULL;
	xmlDocPtr document = NULL;
	xmlNodePtr root = NULL, node = NULL;
	char *list = NULL;
	uint8_t recipient_id[KEY_ID_LENGTH];
	char recipient_hex[KEY_ID_HEX_LENGTH];
	if (document_key == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of secure memory");
	if (!tpd_guid_valid(guid))
		LIC_FAIL(error, LIC_USAGE, "the exchange GUID is not a lowercase UUID v4");
	LIC_TRY(check_recipient_key(recipient, "the recipient key", error));
	LIC_TRY(contents_from_tenant(tenant, kek, guid, now, &contents, error));
	if (RAND_bytes(document_key, DOCUMENT_KEY_LENGTH) != 1)
		LIC_FAIL(error, LIC_INTERNAL, "no random bytes for the document key");
	LIC_TRY(oaep_context(recipient, true, guid, &context, error));
	if (EVP_PKEY_encrypt(context, NULL, &wrapped_length, document_key, DOCUMENT_KEY_LENGTH) != 1 ||
	    (wrapped = malloc(wrapped_length)) == NULL ||
	    EVP_PKEY_encrypt(context, wrapped, &wrapped_length, document_key, DOCUMENT_KEY_LENGTH) != 1)
		LIC_FAIL(error, LIC_INTERNAL, "RSA-OAEP encryption failed");
	LIC_TRY(key_material_public_der(recipient, &spki, &spki_length, error));
	key_id_of_spki(spki, spki_length, recipient_id);
	hex_encode(recipient_id, KEY_ID_LENGTH, recipient_hex);
	LIC_TRY(new_document("TrustedPublishingDomain", contents, &document, &root, error));
	LIC_TRY(xml_add_base64_child(root, "WrappedKey", wrapped, wrapped_length, &node, error));
	LIC_TRY(xml_set_attribute(node, "Algorithm", "rsa-oaep-sha256", error));
	LIC_TRY(xml_set_attribute(node, "RecipientKeyId", recipient_hex, error));
	LIC_TRY(add_keys(root, contents, TPD_LABEL, document_key, error));
	if (versions != NULL) {
		size_t size = contents->key_count * 12 + 1, at = 0;
		list = malloc(size);
		if (list == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
		list[0] = '\0';
		for (size_t i = 0; i < contents->key_count; i++)
			at += (size_t)snprintf(list + at, size - at, "%s%u", i ? "," : "",
					       contents->keys[i].number);
	}
	LIC_TRY(finish_document(document, xml, xml_length, error));
	if (versions != NULL) {
		*versions = list;
		list = NULL;
	}
out:
	free(list);
	xmlFreeDoc(document);
	EVP_PKEY_CTX_free(context);
	free(wrapped);
	free(spki);
	secure_free(document_key, DOCUMENT_KEY_LENGTH);
	tpd_contents_free(contents);
	return status;
}

lic_status tpd_unwrap(const char *xml, size_t xml_length, EVP_PKEY *recipient, const char *expected_guid,
		      struct tpd_contents **out, lic_error *error)
{
	lic_status status = LIC_OK;
	struct tpd_contents *contents = NULL;
	xmlDocPtr document = NULL;
	xmlNodePtr root = NULL, node = NULL;
	char *text = NULL;
	uint8_t *wrapped = NULL, *spki = NULL;
	size_t wrapped_length = 0, spki_length = 0, key_length = 0;
	/* RSA decryption needs room for a whole modulus. */
	size_t key_capacity = EVP_PKEY_get_size(recipient) > 0 ? (size_t)EVP_PKEY_get_size(recipient) : 1;
	uint8_t *document_key = secure_alloc(key_capacity);
	EVP_PKEY_CTX *context = NULL;
	uint8_t recipient_id[KEY_ID_LENGTH];
	char recipient_hex[KEY_ID_HEX_LENGTH];
	if (document_key == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of secure memory");
	LIC_TRY(check_recipient_key(recipient, "the private key file", error));
	LIC_TRY(parse_header(xml, xml_length, "TrustedPublishingDomain", "the TPD", expected_guid, &document,
			     &root, &contents, error));
	LIC_TRY(xml_child(root, "WrappedKey", false, &node, error));
	LIC_TRY(xml_attribute(node, "Algorithm", false, &text, error));
	if (strcmp(text, "rsa-oaep-sha256") != 0)
		LIC_FAIL(error, LIC_UNSUPPORTED_VERSION,
			 "the TPD's key is wrapped with %.40s, not rsa-oaep-sha256", text);
	xmlFree(text);
	text = NULL;
	LIC_TRY(key_material_public_der(recipient, &spki, &spki_length, error));
	key_id_of_spki(spki, spki_length, recipient_id);
	hex_encode(recipient_id, KEY_ID_LENGTH, recipient_hex);
	LIC_TRY(xml_attribute(node, "RecipientKeyId", false, &text, error));
	if (strcmp(text, recipient_hex) != 0)
		LIC_FAIL(error, LIC_USAGE, "the TPD was encrypted to key %.40s, not to this private key (%s)",
			 text, recipient_hex);
	LIC_TRY(xml_child_base64(root, "WrappedKey", false, &wrapped, &wrapped_length, error));
	LIC_TRY(oaep_context(recipient, false, contents->guid, &context, error));
	key_length = key_capacity;
	if (wrapped_length != key_capacity ||
	    EVP_PKEY_decrypt(context, document_key, &key_length, wrapped, wrapped_length) != 1 ||
	    key_length != DOCUMENT_KEY_LENGTH)
		LIC_FAIL(
		    error, LIC_MALFORMED,
		    "the TPD's wrapped key does not decrypt with this private key: the file was altered");
	LIC_TRY(read_keys(root, contents, TPD_LABEL, document_key, error));
	*out = contents;
	contents = NULL;
out:
	xmlFree(text);
	xmlFreeDoc(document);
	EVP_PKEY_CTX_free(context);
	free(wrapped);
	free(spki);
	secure_free(document_key, key_capacity);
	tpd_contents_free(contents);
	return status;
}

/* ---- ExportedTPD ---- */

static lic_status check_scrypt(const struct scrypt_parameters *parameters, lic_error *error)
{
	uint64_t n = parameters->n;
	if (n < TPD_SCRYPT_N_MIN || n > TPD_SCRYPT_N_MAX || (n & (n - 1)) != 0 || parameters->r == 0 ||
	    parameters->r > TPD_SCRYPT_R_MAX || parameters->p == 0 || parameters->p > TPD_SCRYPT_P_MAX ||
	    128 * n * parameters->r > 512ull * 1024 * 1024)
		return lic_error_set(error, LIC_MALFORMED,
				     "scrypt parameters out of bounds (N a power of two from 2^10 to 2^20, "
				     "r 1..%d, p 1..%d, 128·N·r ≤ 512 MiB)",
				     TPD_SCRYPT_R_MAX, TPD_SCRYPT_P_MAX);
	return LIC_OK;
}

static lic_status derive_key(const char *password, size_t password_length, const uint8_t *salt,
			     const struct scrypt_parameters *parameters, uint8_t key[DOCUMENT_KEY_LENGTH],
			     lic_error *error)
{
	lic_status status = check_scrypt(parameters, error);
	if (status != LIC_OK)
		return status;
	if (EVP_PBE_scrypt(password, password_length, salt, TPD_SALT_LENGTH, parameters->n, parameters->r,
			   parameters->p, 1024ull * 1024 * 1024, key, DOCUMENT_KEY_LENGTH) != 1)
		return lic_error_set(error, LIC_INTERNAL, "scrypt derivation failed");
	return LIC_OK;
}

lic_status tpd_exported_seal(const struct tpd_contents *contents, const struct scrypt_parameters *parameters,
			     const char *password, size_t password_length, char **xml, size_t *xml_length,
			     lic_error *error)
{
	lic_status status = LIC_OK;
	uint8_t *document_key = secure_alloc(DOCUMENT_KEY_LENGTH);
	uint8_t salt[TPD_SALT_LENGTH];
	uint8_t *check = NULL;
	size_t check_length = 0;
	uint8_t aad[AAD_MAX];
	xmlDocPtr document = NULL;
	xmlNodePtr root = NULL, node = NULL;
	char *salt_text = NULL;
	if (parameters == NULL)
		parameters = &scrypt_default_parameters;
	if (document_key == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of secure memory");
	if (password_length == 0 || password_length > TPD_PASSWORD_MAX)
		LIC_FAIL(error, LIC_USAGE, "an ExportedTPD password is 1 to %d bytes", TPD_PASSWORD_MAX);
	if (RAND_bytes(salt, sizeof salt) != 1)
		LIC_FAIL(error, LIC_INTERNAL, "no random bytes for the salt");
	LIC_TRY(derive_key(password, password_length, salt, parameters, document_key, error));
	size_t aad_length = key_aad(EXPORTED_LABEL, contents, NULL, aad);
	LIC_TRY(gcm_seal(document_key, aad, aad_length, (const uint8_t *)PASSWORD_CHECK_TEXT,
			 strlen(PASSWORD_CHECK_TEXT), &check, &check_length, error));
	LIC_TRY(new_document("ExportedTrustedPublishingDomain", contents, &document, &root, error));
	node = xmlNewChild(root, root->ns, (const xmlChar *)"Kdf", NULL);
	salt_text = base64_encode(salt, sizeof salt);
	if (node == NULL || salt_text == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	LIC_TRY(xml_set_attribute(node, "Algorithm", "scrypt", error));
	LIC_TRY(xml_set_attribute_u64(node, "N", parameters->n, error));
	LIC_TRY(xml_set_attribute_u64(node, "R", parameters->r, error));
	LIC_TRY(xml_set_attribute_u64(node, "P", parameters->p, error));
	LIC_TRY(xml_set_attribute(node, "Salt", salt_text, error));
	LIC_TRY(xml_add_base64_child(root, "PasswordCheck", check, check_length, NULL, error));
	LIC_TRY(add_keys(root, contents, EXPORTED_LABEL, document_key, error));
	LIC_TRY(finish_document(document, xml, xml_length, error));
out:
	free(salt_text);
	free(check);
	xmlFreeDoc(document);
	secure_free(document_key, DOCUMENT_KEY_LENGTH);
	return status;
}

lic_status tpd_exported_build(const struct tpd_contents *contents, const struct scrypt_parameters *parameters,
			      char **password, char **xml, size_t *xml_length, lic_error *error)
{
	lic_status status = LIC_OK;
	uint8_t *random = secure_alloc(TPD_PASSWORD_BYTES);
	char *text = secure_alloc(TPD_PASSWORD_LENGTH + 1);
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	if (random == NULL || text == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of secure memory");
	if (RAND_bytes(random, TPD_PASSWORD_BYTES) != 1)
		LIC_FAIL(error, LIC_INTERNAL, "no random bytes for the password");
	/* base64url without padding: 24 bytes → 32 characters, 6 bits each. */
	for (size_t i = 0, at = 0; i < TPD_PASSWORD_BYTES; i += 3) {
		uint32_t group = (uint32_t)random[i] << 16 | (uint32_t)random[i + 1] << 8 | random[i + 2];
		for (int shift = 18; shift >= 0; shift -= 6)
			text[at++] = alphabet[(group >> shift) & 63];
	}
	text[TPD_PASSWORD_LENGTH] = '\0';
	LIC_TRY(tpd_exported_seal(contents, parameters, text, TPD_PASSWORD_LENGTH, xml, xml_length, error));
	*password = text;
	text = NULL;
out:
	secure_free(random, TPD_PASSWORD_BYTES);
	secure_free(text, TPD_PASSWORD_LENGTH + 1);
	return status;
}

void tpd_password_line(const char *guid, const char *password, char line[TPD_PASSWORD_LINE_LENGTH + 1])
{
	memcpy(line, guid, 36);
	line[36] = ':';
	memcpy(line + 37, password, TPD_PASSWORD_LENGTH);
	line[TPD_PASSWORD_LINE_LENGTH - 1] = '\n';
	line[TPD_PASSWORD_LINE_LENGTH] = '\0';
}

lic_status tpd_password_line_parse(const char *line, size_t length, const char *expected_guid,
				   const char **password, size_t *password_length, lic_error *error)
{
	char guid[TPD_GUID_LENGTH];
	if (length < 38 || line[36] != ':')
		return lic_error_set(error, LIC_MALFORMED,
				     "the password file must hold one line '<GUID>:<password>'");
	memcpy(guid, line, 36);
	guid[36] = '\0';
	if (!tpd_guid_valid(guid))
		return lic_error_set(error, LIC_MALFORMED,
				     "the password file's line does not start with a lowercase UUID v4");
	if (expected_guid != NULL && strcmp(guid, expected_guid) != 0)
		return lic_error_set(
		    error, LIC_USAGE,
		    "the password file holds the password of exchange %s, not of exchange %s: "
		    "files of different exchanges cannot be mixed",
		    guid, expected_guid);
	*password = line + 37;
	*password_length = length - 37;
	return LIC_OK;
}

lic_status tpd_exported_open(const char *xml, size_t xml_length, const char *password, size_t password_length,
			     const char *expected_guid, struct tpd_contents **out, lic_error *error)
{
	lic_status status = LIC_OK;
	struct tpd_contents *contents = NULL;
	xmlDocPtr document = NULL;
	xmlNodePtr root = NULL, node = NULL;
	char *text = NULL;
	uint8_t *salt = NULL, *check = NULL, *opened = NULL;
	size_t salt_length = 0, check_length = 0, opened_length = 0;
	uint8_t *document_key = secure_alloc(DOCUMENT_KEY_LENGTH);
	uint8_t aad[AAD_MAX];
	uint64_t n = 0, r = 0, p = 0;
	lic_error ignored = {0};
	if (document_key == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of secure memory");
	if (password_length == 0 || password_length > TPD_PASSWORD_MAX)
		LIC_FAIL(error, LIC_USAGE, "the password file holds no password line");
	LIC_TRY(parse_header(xml, xml_length, "ExportedTrustedPublishingDomain", "the ExportedTPD",
			     expected_guid, &document, &root, &contents, error));
	LIC_TRY(xml_child(root, "Kdf", false, &node, error));
	LIC_TRY(xml_attribute(node, "Algorithm", false, &text, error));
	if (strcmp(text, "scrypt") != 0)
		LIC_FAIL(error, LIC_UNSUPPORTED_VERSION, "the ExportedTPD uses KDF %.40s, not scrypt", text);
	xmlFree(text);
	text = NULL;
	LIC_TRY(xml_attribute_u64(node, "N", false, UINT64_MAX, &n, error));
	LIC_TRY(xml_attribute_u64(node, "R", false, UINT32_MAX, &r, error));
	LIC_TRY(xml_attribute_u64(node, "P", false, UINT32_MAX, &p, error));
	struct scrypt_parameters parameters = {.n = n, .r = (uint32_t)r, .p = (uint32_t)p};
	LIC_TRY(check_scrypt(&parameters, error));
	LIC_TRY(xml_attribute(node, "Salt", false, &text, error));
	if (base64_decode(text, strlen(text), &salt, &salt_length, error) != LIC_OK ||
	    salt_length != TPD_SALT_LENGTH)
		LIC_FAIL(error, LIC_MALFORMED, "the ExportedTPD's Salt is not %d bytes of base64",
			 TPD_SALT_LENGTH);
	LIC_TRY(xml_child_base64(root, "PasswordCheck", false, &check, &check_length, error));
	LIC_TRY(derive_key(password, password_length, salt, &parameters, document_key, error));
	size_t aad_length = key_aad(EXPORTED_LABEL, contents, NULL, aad);
	if (gcm_open(document_key, aad, aad_length, check, check_length, &opened, &opened_length,
		     "password check", &ignored) != LIC_OK ||
	    opened_length != strlen(PASSWORD_CHECK_TEXT) ||
	    memcmp(opened, PASSWORD_CHECK_TEXT, opened_length) != 0)
		LIC_FAIL(error, LIC_UNAUTHORIZED,
			 "the password does not open this ExportedTPD (wrong password, or its header was "
			 "altered)");
	LIC_TRY(read_keys(root, contents, EXPORTED_LABEL, document_key, error));
	*out = contents;
	contents = NULL;
out:
	if (opened != NULL)
		secure_free(opened, opened_length + 1);
	xmlFree(text);
	xmlFreeDoc(document);
	free(salt);
	free(check);
	secure_free(document_key, DOCUMENT_KEY_LENGTH);
	tpd_contents_free(contents);
	return status;
}

/* ---- import into a tenant ---- */

lic_status tpd_import_into_tenant(struct tenant *tenant, const struct kek *kek,
				  const struct tpd_contents *contents, int64_t now, uint32_t *first_number,
				  lic_error *error)
{
	lic_status status = LIC_OK;
	struct key_version *versions = NULL;
	size_t prepared = 0, before = tenant->version_count;
	EVP_PKEY *key = NULL;
	if (tenant->disabled)
		LIC_FAIL(error, LIC_TENANT_DISABLED, "tenant %s is disabled: enable it first", tenant->name);
	for (size_t i = 0; i < contents->key_count; i++) {
		const struct key_version *existing = tenant_find_key_id(tenant, contents->keys[i].key_id);
		if (existing != NULL)
			LIC_FAIL(error, LIC_STATE,
				 "key id %s (version %u of the export) is already version %u of %s: nothing "
				 "imported",
				 contents->keys[i].key_id_hex, contents->keys[i].number, existing->number,
				 tenant->name);
	}
	if (before + contents->key_count > TENANT_VERSION_MAX)
		LIC_FAIL(error, LIC_TOO_LARGE, "tenant %s would have more than %d versions", tenant->name,
			 TENANT_VERSION_MAX);
	versions = calloc(contents->key_count, sizeof *versions);
	if (versions == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	/* Prepare (check and seal) every version before the tenant changes. */
	for (; prepared < contents->key_count; prepared++) {
		const struct tpd_key *entry = &contents->keys[prepared];
		struct key_version *version = &versions[prepared];
		LIC_TRY(check_key_pair(entry, error));
		version->number = (uint32_t)(before + prepared + 1);
		memcpy(version->key_id, entry->key_id, KEY_ID_LENGTH);
		hex_encode(version->key_id, KEY_ID_LENGTH, version->key_id_hex);
		version->algorithm = entry->algorithm;
		version->origin = KEY_ORIGIN_MANAGED;
		version->state = LIC_KEY_STATE_RETAINED;
		version->state_before_revoke = LIC_KEY_STATE_RETAINED;
		version->compromised = entry->compromised;
		version->compromised_at = entry->compromised ? now : 0;
		version->created_at = entry->created_at;
		version->retained_at = now;
		version->public_key_der = malloc(entry->public_key_length);
		if (version->public_key_der == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
		memcpy(version->public_key_der, entry->public_key_der, entry->public_key_length);
		version->public_key_length = entry->public_key_length;
		LIC_TRY(key_material_from_private_der(entry->private_key_der, entry->private_key_length, &key,
						      error));
		LIC_TRY(store_seal_private_key(kek, tenant->name, version, key, error));
		EVP_PKEY_free(key);
		key = NULL;
	}
	for (size_t i = 0; i < contents->key_count; i++) {
		status = tenant_push_version(tenant, &versions[i], error);
		if (status != LIC_OK) {
			tenant->version_count = before;
			goto out;
		}
	}
	status = tenant_index_key_ids(tenant, error);
	if (status != LIC_OK) {
		tenant->version_count = before;
		lic_error ignored = {0};
		(void)tenant_index_key_ids(tenant, &ignored);
		goto out;
	}
	prepared = 0; /* the tenant owns the buffers now */
	if (first_number != NULL)
		*first_number = (uint32_t)(before + 1);
out:
	EVP_PKEY_free(key);
	if (versions != NULL) {
		size_t owned = status == LIC_OK ? 0 : contents->key_count;
		for (size_t i = 0; i < owned; i++) {
			free(versions[i].public_key_der);
			if (versions[i].sealed_private_key != NULL)
				OPENSSL_cleanse(versions[i].sealed_private_key,
						versions[i].sealed_private_key_length);
			free(versions[i].sealed_private_key);
		}
	}
	free(versions);
	return status;
}
