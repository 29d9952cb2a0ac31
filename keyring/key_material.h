/*
 * key_material.h: RSA key pairs of key versions: generation, the key id
 * (DESIGN.md §1: lowercase hex of the first 16 bytes of SHA-256 of the DER
 * SubjectPublicKeyInfo), and conversion between EVP_PKEY, SPKI DER and
 * PKCS#8 DER. Plaintext PKCS#8 always lives in secure memory.
 */
#ifndef LICENSOR_KEYRING_KEY_MATERIAL_H
#define LICENSOR_KEYRING_KEY_MATERIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "licensor.h"

#define KEY_ID_LENGTH 16
#define KEY_ID_HEX_LENGTH (2 * KEY_ID_LENGTH + 1)

enum key_algorithm {
	KEY_ALGORITHM_RSA_1024, /* importable for old content only */
	KEY_ALGORITHM_RSA_2048,
	KEY_ALGORITHM_RSA_3072,
	KEY_ALGORITHM_RSA_4096,
};

const char *key_algorithm_name(enum key_algorithm algorithm);
int key_algorithm_bits(enum key_algorithm algorithm);
/* Parses "rsa-2048" …; rsa-1024 only when allow_legacy. LIC_UNSUPPORTED_VERSION otherwise. */
lic_status key_algorithm_parse(const char *name, bool allow_legacy, enum key_algorithm *out,
			       lic_error *error);

/* A new RSA key pair (e = 65537). */
lic_status key_material_generate(enum key_algorithm algorithm, EVP_PKEY **out, lic_error *error);

/* SubjectPublicKeyInfo DER of a key (new buffer, free()). */
lic_status key_material_public_der(EVP_PKEY *key, uint8_t **der, size_t *length, lic_error *error);
/* PKCS#8 DER of a private key, in new secure memory (secure_free(der, length)). */
lic_status key_material_private_der(EVP_PKEY *key, uint8_t **der, size_t *length, lic_error *error);

lic_status key_material_from_public_der(const uint8_t *der, size_t length, EVP_PKEY **out, lic_error *error);
lic_status key_material_from_private_der(const uint8_t *der, size_t length, EVP_PKEY **out, lic_error *error);

/* The algorithm of an RSA key by its modulus size; LIC_UNSUPPORTED_VERSION for other sizes. */
lic_status key_material_algorithm_of(EVP_PKEY *key, enum key_algorithm *out, lic_error *error);

void key_id_of_spki(const uint8_t *spki_der, size_t length, uint8_t key_id[KEY_ID_LENGTH]);

/* PEM text of an SPKI DER (new NUL-terminated buffer, free()). */
lic_status key_material_public_pem(const uint8_t *spki_der, size_t length, char **pem, lic_error *error);

#endif
