/*
 * version_key.h: the private half of a key version, wherever it lives.
 *
 * A managed version's key is decrypted from the store into an EVP_PKEY
 * (secure heap); a BYOK version's key stays in its PKCS#11 token and every
 * operation on it is a token call. Everything that unwraps or signs with a
 * tenant key (the engine's workers, certify, rewrap) goes through this one
 * interface, so it does not need to know which kind it holds.
 *
 * Operations: RSA-OAEP decrypt (SHA-256, MGF1-SHA-256, caller's label) and
 * RSASSA-PKCS1-v1_5 with SHA-256 over a message. A version_key may be used
 * by one thread at a time for the EVP kind (callers keep one per worker, as
 * the engine does), by any number for the token kind.
 */
#ifndef LICENSOR_KEYRING_VERSION_KEY_H
#define LICENSOR_KEYRING_VERSION_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "kek.h"
#include "pkcs11.h"
#include "tenant.h"

struct version_key {
	EVP_PKEY *evp;            /* managed: the private key; else NULL */
	struct pkcs11_key *token; /* BYOK: the key in the token; else NULL */
};

/* A version_key over an EVP_PKEY the caller owns (tests, user keys). */
#define VERSION_KEY_OF(key) (&(const struct version_key){.evp = (key), .token = NULL})

/* Opens the private key of `version` of `tenant`: managed keys are unsealed
 * with the KEK; BYOK keys are found in their token and checked against the
 * version's public key. *out is new (version_key_free). A destroyed version
 * is LIC_KEY_DESTROYED; a token that cannot give the key is LIC_INTERNAL
 * "the token key of version N of T is not available: …". */
lic_status version_key_open(const struct kek *kek, const char *tenant, const struct key_version *version,
			    struct version_key **out, lic_error *error);
void version_key_free(struct version_key *key); /* NULL is a no-op */

bool version_key_in_token(const struct version_key *key);
/* A token key whose session or login was lost (token removed, HSM restarted):
 * the holder frees it and opens the version anew. Always false for managed keys. */
bool version_key_broken(const struct version_key *key);
/* The token refused the PIN (wrong, locked, expired): retrying by itself
 * would count towards locking it, so callers wait for the operator. */
bool version_key_error_is_pin(const lic_error *error);
/* Modulus size in bytes. */
size_t version_key_size(const struct version_key *key);

/* RSA-OAEP-SHA256 decrypt with `label`; the plaintext goes to out. A wrong
 * key, label or an altered ciphertext is LIC_PL_INTEGRITY. */
lic_status version_key_oaep_decrypt(const struct version_key *key, const uint8_t *label, size_t label_length,
				    const uint8_t *ciphertext, size_t ciphertext_length, uint8_t *out,
				    size_t capacity, size_t *out_length, lic_error *error);

/* RSA PKCS#1 v1.5 signature with SHA-256 over message (hashed here or in
 * the token). *signature is a new buffer (free()). */
lic_status version_key_sign_sha256(const struct version_key *key, const uint8_t *message, size_t length,
				   uint8_t **signature, size_t *signature_length, lic_error *error);

/* OAEP parameters (SHA-256, MGF1-SHA-256, label) on an EVP_PKEY_CTX set up
 * for encryption or decryption. */
lic_status oaep_set_parameters(EVP_PKEY_CTX *context, const uint8_t *label, size_t label_length,
			       lic_error *error);

#endif
