/*
 * kek.h: the store's key-encryption key and the sealing of private keys.
 *
 * The KEK is 32 bytes, from a file (raw bytes, 0600), derived from a
 * passphrase with scrypt, or unwrapped by an AES key in a PKCS#11 token.
 * It lives in secure memory. sealed = nonce (12) ‖
 * AES-256-GCM ciphertext ‖ tag (16), with caller-given AAD (DESIGN.md §4:
 * tenant ‖ version ‖ key id). The check value stored in world.xml is
 * HMAC-SHA256(KEK, "licensor-kek-check-v1" ‖ store id): it tells a wrong KEK
 * apart before anything is decrypted, and reveals nothing about the KEK.
 */
#ifndef LICENSOR_KEYRING_KEK_H
#define LICENSOR_KEYRING_KEK_H

#include <stddef.h>
#include <stdint.h>

#include "licensor.h"
#include "pkcs11.h"

#define KEK_LENGTH 32
#define KEK_CHECK_LENGTH 32
#define KEK_SALT_LENGTH 16
#define SEAL_NONCE_LENGTH 12
#define SEAL_TAG_LENGTH 16
#define SEAL_OVERHEAD (SEAL_NONCE_LENGTH + SEAL_TAG_LENGTH)
#define KEK_PASSPHRASE_MAX 1024

struct kek;

struct scrypt_parameters {
	uint64_t n; /* CPU/memory cost, a power of two */
	uint32_t r;
	uint32_t p;
};

/* Defaults for new stores: N = 2^15, r = 8, p = 1 (32 MiB, ~0.1 s). */
extern const struct scrypt_parameters scrypt_default_parameters;

/* Reads a KEK file: exactly 32 bytes, not readable by group or others. */
lic_status kek_load_file(const char *path, struct kek **out, lic_error *error);
/* Creates a KEK file (0600, O_EXCL) holding 32 random bytes. */
lic_status kek_create_file(const char *path, struct kek **out, lic_error *error);
/* Derives the KEK from a passphrase. */
lic_status kek_from_passphrase(const char *passphrase, size_t passphrase_length,
			       const uint8_t salt[KEK_SALT_LENGTH],
			       const struct scrypt_parameters *parameters, struct kek **out,
			       lic_error *error);
/* Reads a passphrase file (first line, without its newline; at most
 * KEK_PASSPHRASE_MAX bytes), in secure memory: secure_free(p, KEK_PASSPHRASE_MAX + 1). */
lic_status kek_read_passphrase_file(const char *path, char **passphrase, size_t *length, lic_error *error);
/* A store whose KEK is guarded by an AES key in a PKCS#11 token: the KEK is
 * 32 random bytes wrapped (encrypted) by that token key, and only the
 * wrapped form is stored (world.xml). kek_create_in_token makes a new KEK and
 * its wrapped form (*wrapped, free()); kek_from_token unwraps it in the token.
 * Without the token key the store cannot be opened. */
lic_status kek_create_in_token(struct pkcs11_key *token, struct kek **out, uint8_t **wrapped,
			       size_t *wrapped_length, lic_error *error);
lic_status kek_from_token(struct pkcs11_key *token, const uint8_t *wrapped, size_t wrapped_length,
			  struct kek **out, lic_error *error);
void kek_free(struct kek *kek);

void kek_check_value(const struct kek *kek, const char *store_id, uint8_t out[KEK_CHECK_LENGTH]);
/* Constant-time comparison of kek's check value with `expected`. */
int kek_matches(const struct kek *kek, const char *store_id, const uint8_t expected[KEK_CHECK_LENGTH]);

/* AES-256-GCM with a raw 32-byte key, the one sealing format of the store
 * and its exchange files: nonce (12, random) ‖ ciphertext ‖ tag (16).
 * aes_gcm_open returns the plaintext in new secure memory
 * (secure_free(p, *plaintext_length + 1)); any altered byte, wrong key or
 * AAD is LIC_INTERNAL, an impossible length LIC_MALFORMED. */
lic_status aes_gcm_seal(const uint8_t key[KEK_LENGTH], const uint8_t *aad, size_t aad_length,
			const uint8_t *plaintext, size_t plaintext_length, uint8_t **sealed,
			size_t *sealed_length, lic_error *error);
lic_status aes_gcm_open(const uint8_t key[KEK_LENGTH], const uint8_t *aad, size_t aad_length,
			const uint8_t *sealed, size_t sealed_length, uint8_t **plaintext,
			size_t *plaintext_length, lic_error *error);

/* Seals plaintext into a new ordinary buffer (*sealed, free()). */
lic_status kek_seal(const struct kek *kek, const uint8_t *aad, size_t aad_length, const uint8_t *plaintext,
		    size_t plaintext_length, uint8_t **sealed, size_t *sealed_length, lic_error *error);
/* Opens a sealed buffer into new secure memory (*plaintext, secure_free()).
 * A wrong key, AAD or any altered byte gives LIC_INTERNAL "integrity". */
lic_status kek_open(const struct kek *kek, const uint8_t *aad, size_t aad_length, const uint8_t *sealed,
		    size_t sealed_length, uint8_t **plaintext, size_t *plaintext_length, lic_error *error);

#endif
