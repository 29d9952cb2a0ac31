/*
 * key_material.c: RSA key generation and the DER forms of keys. Private key
 * DER is produced and consumed only in secure memory.
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

lic_status key_material_private_der(EVP_PKEY *key, uint8_t **der, size_t *length, lic_error *error)
{
	lic_status status = LIC_OK;
	PKCS8_PRIV_KEY_INFO *info = EVP_PKEY2PKCS8(key);
	uint8_t *buffer = NULL;
	int size = 0;
	if (info == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "cannot encode private key");
	size = i2d_PKCS8_PRIV_KEY_INFO(info, NULL);
	if (size <= 0)
		LIC_FAIL(error, LIC_INTERNAL, "cannot encode private key");
	buffer = secure_alloc((size_t)size);
	if (buffer == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of secure memory");
	unsigned char *cursor = buffer;
	if (i2d_PKCS8_PRIV_KEY_INFO(info, &cursor) != size)
		LIC_FAIL(error, LIC_INTERNAL, "cannot encode private key");
	*der = buffer;
	*length = (size_t)size;
	buffer = NULL;
out:
	secure_free(buffer, (size_t)(size > 0 ? size : 0));
	PKCS8_PRIV_KEY_INFO_free(info);
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
