/*
 * key_material.c: RSA key generation and the DER forms of keys.
 *
 * What it promises: the plaintext PKCS#8 of a private key exists only in
 * secure memory (secure_memory.h), and so do the private components it is
 * built from. key_material_private_der does not go through OpenSSL's ASN.1
 * encoder, which builds the RSAPrivateKey and the PKCS#8 structure in
 * ordinary heap and frees them without wiping (every seal would leave two
 * big-endian copies of d in a core dump). It asks the key's provider for the
 * components straight into a secure buffer (OSSL_PARAM, no BIGNUM copies),
 * computes every DER length first and writes the encoding into a second
 * secure buffer of exactly that size. The output is byte-identical to
 * i2d_PKCS8_PRIV_KEY_INFO(EVP_PKEY2PKCS8(key)) (tests/test_secure_memory.c
 * checks it). Only two-prime RSA keys are encoded; other keys are refused.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "error.h"
#include "key_material.h"
#include "secure_memory.h"

static const struct {
	const char *name;
	int bits;
} algorithm_table[] = {
    [KEY_ALGORITHM_RSA_1024] = {"rsa-1024", 1024},
    [KEY_ALGORITHM_RSA_2048] = {"rsa-2048", 2048},
    [KEY_ALGORITHM_RSA_3072] = {"rsa-3072", 3072},
    [KEY_ALGORITHM_RSA_4096] = {"rsa-4096", 4096},
};

const char *key_algorithm_name(enum key_algorithm algorithm)
{
	return algorithm_table[algorithm].name;
}

int key_algorithm_bits(enum key_algorithm algorithm)
{
	return algorithm_table[algorithm].bits;
}

lic_status key_algorithm_parse(const char *name, bool allow_legacy, enum key_algorithm *out, lic_error *error)
{
	for (size_t i = 0; i < sizeof algorithm_table / sizeof algorithm_table[0]; i++) {
		if (strcmp(name, algorithm_table[i].name) != 0)
			continue;
		if (i == KEY_ALGORITHM_RSA_1024 && !allow_legacy)
			return lic_error_set(
			    error, LIC_UNSUPPORTED_VERSION,
			    "rsa-1024 is accepted for old content only, never for a new version");
		*out = (enum key_algorithm)i;
		return LIC_OK;
	}
	return lic_error_set(error, LIC_UNSUPPORTED_VERSION,
			     "unknown algorithm '%.32s' (use rsa-2048, rsa-3072 or rsa-4096)", name);
}

lic_status key_material_generate(enum key_algorithm algorithm, EVP_PKEY **out, lic_error *error)
{
	secure_memory_init();
	EVP_PKEY *key = EVP_RSA_gen((unsigned int)key_algorithm_bits(algorithm));
	if (key == NULL)
		return lic_error_set(error, LIC_INTERNAL, "RSA key generation failed");
	*out = key;
	return LIC_OK;
}

lic_status key_material_public_der(EVP_PKEY *key, uint8_t **der, size_t *length, lic_error *error)
{
	unsigned char *buffer = NULL;
	int size = i2d_PUBKEY(key, &buffer);
	if (size <= 0)
		return lic_error_set(error, LIC_INTERNAL, "cannot encode public key");
	/* Hand back a malloc()ed copy so callers free() it like every other buffer. */
	uint8_t *copy = malloc((size_t)size);
	if (copy == NULL) {
		OPENSSL_free(buffer);
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	}
	memcpy(copy, buffer, (size_t)size);
	OPENSSL_free(buffer);
	*der = copy;
	*length = (size_t)size;
	return LIC_OK;
}

/* The INTEGERs of a two-prime RSAPrivateKey after its version, in order (RFC 8017 A.1.2). */
static const char *const rsa_private_key_fields[] = {
    OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
    OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
    OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
    OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
};
#define RSA_PRIVATE_KEY_FIELD_COUNT (sizeof rsa_private_key_fields / sizeof rsa_private_key_fields[0])
/* No component of an RSA key up to 16384 bits is longer. */
#define RSA_COMPONENT_MAX_BYTES 2048

#define DER_TAG_INTEGER 0x02
#define DER_TAG_OCTET_STRING 0x04
#define DER_TAG_SEQUENCE 0x30

/* INTEGER 0: the version of both PrivateKeyInfo (RFC 5208) and a two-prime RSAPrivateKey. */
static const uint8_t der_version_zero[] = {DER_TAG_INTEGER, 0x01, 0x00};
/* AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }. */
static const uint8_t der_rsa_encryption[] = {
    DER_TAG_SEQUENCE, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00};

/* One component as the provider wrote it: `size` significant bytes in native byte order. */
struct rsa_component {
	const uint8_t *native;
	size_t size;
};

/* Byte `index` of the component counted from the most significant one. */
static uint8_t rsa_component_byte(const struct rsa_component *component, size_t index)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return component->native[component->size - 1 - index];
#else
	return component->native[index];
#endif
}

/* Drops the most significant zero bytes of a native-order field of `size` bytes (keeps one). */
static struct rsa_component rsa_component_of(const uint8_t *native, size_t size)
{
	struct rsa_component component = {native, size};
	while (component.size > 1 && rsa_component_byte(&component, 0) == 0) {
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
		component.native++;
#endif
		component.size--;
	}
	return component;
}

/* The content of the component's DER INTEGER: a 0x00 first when the top bit is set. */
static size_t der_integer_content_size(const struct rsa_component *component)
{
	return component->size + ((rsa_component_byte(component, 0) & 0x80) != 0);
}

/* Bytes of a DER length field: the short form below 128, else 0x80|n and n bytes. */
static size_t der_length_size(size_t length)
{
	if (length < 0x80)
		return 1;
	size_t size = 1;
	for (; length > 0; length >>= 8)
		size++;
	return size;
}

static size_t der_element_size(size_t content_size)
{
	return 1 + der_length_size(content_size) + content_size;
}

/* Writes into a buffer of a size computed beforehand; never past its end. */
struct der_writer {
	uint8_t *cursor;
	const uint8_t *end;
	bool overflow;
};

static void der_put_bytes(struct der_writer *writer, const uint8_t *bytes, size_t count)
{
	if (writer->overflow || (size_t)(writer->end - writer->cursor) < count) {
		writer->overflow = true;
		return;
	}
	memcpy(writer->cursor, bytes, count);
	writer->cursor += count;
}

static void der_put_byte(struct der_writer *writer, uint8_t byte)
{
	der_put_bytes(writer, &byte, 1);
}

static void der_put_header(struct der_writer *writer, uint8_t tag, size_t length)
{
	der_put_byte(writer, tag);
	size_t size = der_length_size(length);
	if (size == 1) {
		der_put_byte(writer, (uint8_t)length);
		return;
	}
	der_put_byte(writer, (uint8_t)(0x80 | (size - 1)));
	for (size_t i = size - 1; i > 0; i--)
		der_put_byte(writer, (uint8_t)(length >> (8 * (i - 1))));
}

/* Byte by byte from the secure native copy into the secure output: no buffer in between. */
static void der_put_integer(struct der_writer *writer, const struct rsa_component *component)
{
	size_t content_size = der_integer_content_size(component);
	der_put_header(writer, DER_TAG_INTEGER, content_size);
	if (content_size > component->size)
		der_put_byte(writer, 0x00);
	if (writer->overflow || (size_t)(writer->end - writer->cursor) < component->size) {
		writer->overflow = true;
		return;
	}
	for (size_t i = 0; i < component->size; i++)
		*writer->cursor++ = rsa_component_byte(component, i);
}

lic_status key_material_private_der(EVP_PKEY *key, uint8_t **der, size_t *length, lic_error *error)
{
	lic_status status = LIC_OK;
	/* The fields, FACTOR3 (present only in multi-prime keys), the end marker. */
	OSSL_PARAM params[RSA_PRIVATE_KEY_FIELD_COUNT + 2];
	struct rsa_component components[RSA_PRIVATE_KEY_FIELD_COUNT];
	uint8_t *native = NULL, *buffer = NULL;
	size_t native_size = 0, size = 0;

	if (!EVP_PKEY_is_a(key, "RSA"))
		LIC_FAIL(error, LIC_UNSUPPORTED_VERSION, "private key is not an RSA key");
	/* First the sizes only: with no buffer the provider reports each length and copies nothing. */
	for (size_t i = 0; i < RSA_PRIVATE_KEY_FIELD_COUNT; i++)
		params[i] = OSSL_PARAM_construct_BN(rsa_private_key_fields[i], NULL, 0);
	params[RSA_PRIVATE_KEY_FIELD_COUNT] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_RSA_FACTOR3, NULL, 0);
	params[RSA_PRIVATE_KEY_FIELD_COUNT + 1] = OSSL_PARAM_construct_end();
	if (EVP_PKEY_get_params(key, params) != 1)
		LIC_FAIL(error, LIC_INTERNAL, "cannot read the components of the private key");
	if (OSSL_PARAM_modified(&params[RSA_PRIVATE_KEY_FIELD_COUNT]))
		LIC_FAIL(error, LIC_UNSUPPORTED_VERSION, "multi-prime RSA keys are not supported");
	for (size_t i = 0; i < RSA_PRIVATE_KEY_FIELD_COUNT; i++) {
		if (!OSSL_PARAM_modified(&params[i]) || params[i].return_size == 0 ||
		    params[i].return_size > RSA_COMPONENT_MAX_BYTES)
			LIC_FAIL(error, LIC_INTERNAL, "key has no complete RSA private key");
		native_size += params[i].return_size;
	}
	/* Then the values, written by the provider straight into secure memory. */
	native = secure_alloc(native_size);
	if (native == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of secure memory");
	uint8_t *slot = native;
	for (size_t i = 0; i < RSA_PRIVATE_KEY_FIELD_COUNT; i++) {
		size_t field_size = params[i].return_size;
		params[i] = OSSL_PARAM_construct_BN(rsa_private_key_fields[i], slot, field_size);
		slot += field_size;
	}
	params[RSA_PRIVATE_KEY_FIELD_COUNT] = OSSL_PARAM_construct_end();
	if (EVP_PKEY_get_params(key, params) != 1)
		LIC_FAIL(error, LIC_INTERNAL, "cannot read the components of the private key");

	/* All lengths before any byte is written. */
	size_t rsa_key_content = sizeof der_version_zero;
	for (size_t i = 0; i < RSA_PRIVATE_KEY_FIELD_COUNT; i++) {
		if (!OSSL_PARAM_modified(&params[i]))
			LIC_FAIL(error, LIC_INTERNAL, "key has no complete RSA private key");
		components[i] = rsa_component_of(params[i].data, params[i].return_size);
		rsa_key_content += der_element_size(der_integer_content_size(&components[i]));
	}
	size_t rsa_key_size = der_element_size(rsa_key_content);
	size_t info_content =
	    sizeof der_version_zero + sizeof der_rsa_encryption + der_element_size(rsa_key_size);
	size = der_element_size(info_content);
	buffer = secure_alloc(size);
	if (buffer == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of secure memory");

	/* PrivateKeyInfo { version, algorithm, OCTET STRING { RSAPrivateKey } } (RFC 5208). */
	struct der_writer writer = {.cursor = buffer, .end = buffer + size};
	der_put_header(&writer, DER_TAG_SEQUENCE, info_content);
	der_put_bytes(&writer, der_version_zero, sizeof der_version_zero);
	der_put_bytes(&writer, der_rsa_encryption, sizeof der_rsa_encryption);
	der_put_header(&writer, DER_TAG_OCTET_STRING, rsa_key_size);
	der_put_header(&writer, DER_TAG_SEQUENCE, rsa_key_content);
	der_put_bytes(&writer, der_version_zero, sizeof der_version_zero);
	for (size_t i = 0; i < RSA_PRIVATE_KEY_FIELD_COUNT; i++)
		der_put_integer(&writer, &components[i]);
	if (writer.overflow || writer.cursor != writer.end)
		LIC_FAIL(error, LIC_INTERNAL, "cannot encode private key");
	*der = buffer;
	*length = size;
	buffer = NULL;
out:
	secure_free(buffer, size);
	secure_free(native, native_size);
	return status;
}

lic_status key_material_from_public_der(const uint8_t *der, size_t length, EVP_PKEY **out, lic_error *error)
{
	const unsigned char *cursor = der;
	EVP_PKEY *key = d2i_PUBKEY(NULL, &cursor, (long)length);
	if (key == NULL || cursor != der + length) {
		EVP_PKEY_free(key);
		return lic_error_set(error, LIC_MALFORMED, "bad public key (not a DER SubjectPublicKeyInfo)");
	}
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
		EVP_PKEY_free(key);
		return lic_error_set(error, LIC_UNSUPPORTED_VERSION, "public key is not an RSA key");
	}
	*out = key;
	return LIC_OK;
}

lic_status key_material_from_private_der(const uint8_t *der, size_t length, EVP_PKEY **out, lic_error *error)
{
	secure_memory_init();
	const unsigned char *cursor = der;
	PKCS8_PRIV_KEY_INFO *info = d2i_PKCS8_PRIV_KEY_INFO(NULL, &cursor, (long)length);
	if (info == NULL)
		return lic_error_set(error, LIC_MALFORMED, "bad private key (not PKCS#8 DER)");
	EVP_PKEY *key = EVP_PKCS82PKEY(info);
	PKCS8_PRIV_KEY_INFO_free(info);
	if (key == NULL)
		return lic_error_set(error, LIC_MALFORMED, "bad private key");
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
		EVP_PKEY_free(key);
		return lic_error_set(error, LIC_UNSUPPORTED_VERSION, "private key is not an RSA key");
	}
	*out = key;
	return LIC_OK;
}

lic_status key_material_algorithm_of(EVP_PKEY *key, enum key_algorithm *out, lic_error *error)
{
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA)
		return lic_error_set(error, LIC_UNSUPPORTED_VERSION, "key is not an RSA key");
	int bits = EVP_PKEY_get_bits(key);
	for (size_t i = 0; i < sizeof algorithm_table / sizeof algorithm_table[0]; i++) {
		if (algorithm_table[i].bits == bits) {
			*out = (enum key_algorithm)i;
			return LIC_OK;
		}
	}
	return lic_error_set(error, LIC_UNSUPPORTED_VERSION, "unsupported RSA key size %d", bits);
}

void key_id_of_spki(const uint8_t *spki_der, size_t length, uint8_t key_id[KEY_ID_LENGTH])
{
	uint8_t digest[SHA256_DIGEST_LENGTH];
	SHA256(spki_der, length, digest);
	memcpy(key_id, digest, KEY_ID_LENGTH);
}

lic_status key_material_public_pem(const uint8_t *spki_der, size_t length, char **pem, lic_error *error)
{
	lic_status status = LIC_OK;
	EVP_PKEY *key = NULL;
	BIO *bio = NULL;
	LIC_TRY(key_material_from_public_der(spki_der, length, &key, error));
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || PEM_write_bio_PUBKEY(bio, key) != 1)
		LIC_FAIL(error, LIC_INTERNAL, "cannot write PEM");
	char *data = NULL;
	long size = BIO_get_mem_data(bio, &data);
	char *copy = malloc((size_t)size + 1);
	if (copy == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	memcpy(copy, data, (size_t)size);
	copy[size] = '\0';
	*pem = copy;
out:
	BIO_free(bio);
	EVP_PKEY_free(key);
	return status;
}
