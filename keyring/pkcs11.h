/*
 * pkcs11.h: keys that live in a PKCS#11 token (an HSM; SoftHSM2 in tests),
 * named by RFC 7512 URIs, for BYOK key versions (RSA) and for a store whose
 * KEK is a token AES key (DESIGN.md §1, §4, §7).
 *
 * Promises:
 *   - a private or secret key never leaves the token: decrypt, sign and the
 *     AES operations are PKCS#11 calls; only results come back;
 *   - the module is dlopen()ed once per path and C_Initialize'd once with
 *     CKF_OS_LOCKING_OK; each pkcs11_key keeps a pool of sessions so that
 *     concurrent callers (one per worker) do not share a session;
 *   - every function is safe to call from several threads on one key;
 *   - a PIN (pin-value, or the file named by pin-source) is never copied into
 *     an error sentence, a log line or an audit line: use pkcs11_uri_redacted.
 *
 * Which module: the explicit module_path argument (--pkcs11-module), else
 * LICENSOR_PKCS11_MODULE, else the URI's module-path query attribute, else
 * p11-kit's proxy module (every module p11-kit has registered).
 *
 * Errors: a malformed URI or an unusable module path is LIC_USAGE ("USAGE"
 * on the command line); a module that cannot be loaded or a PIN file that
 * cannot be read is LIC_IO; no object matching the URI is LIC_UNKNOWN_KEY;
 * any token failure (CKR_* other than these) is LIC_INTERNAL with the CKR
 * name in the sentence.
 *
 * Recovery: a key whose operation saw its session, login, token, module or
 * object go (pkcs11_key_broken) is dropped by the caller and opened anew
 * later; an open that failed on the PIN itself (pkcs11_error_is_pin) must
 * not be retried automatically, lest the token lock the PIN.
 */
#ifndef LICENSOR_KEYRING_PKCS11_H
#define LICENSOR_KEYRING_PKCS11_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "licensor.h"

#define PKCS11_URI_MAX 2048

enum pkcs11_key_kind {
	PKCS11_KEY_RSA, /* a CKO_PRIVATE_KEY of type CKK_RSA (its public half read from the token) */
	PKCS11_KEY_AES, /* a CKO_SECRET_KEY of type CKK_AES */
};

struct pkcs11_key;

/* Checks that `uri` is a pkcs11: URI naming an object (LIC_USAGE if not). */
lic_status pkcs11_uri_check(const char *uri, lic_error *error);

/* `uri` with the value of pin-value replaced by "***": for messages, logs
 * and the audit log. Always NUL-terminates (truncates to size − 1). */
void pkcs11_uri_redacted(const char *uri, char *out, size_t size);

/* `uri` with every pin-value attribute removed (pin-source is kept): what
 * the store and the command line show and remember. Always NUL-terminates
 * (truncates to size − 1). */
void pkcs11_uri_without_pin(const char *uri, char *out, size_t size);

/* A URI that the store records (a BYOK version, a token KEK) must not carry
 * its PIN: LIC_USAGE when it holds pin-value, naming pin-source instead. */
lic_status pkcs11_uri_check_storable(const char *uri, lic_error *error);

/* `uri` with module-path=<module_path> added (percent-encoded), so that the
 * store remembers which module holds the key. LIC_USAGE when the URI already
 * names another module or module_path is not absolute. *out is malloc()ed. */
lic_status pkcs11_uri_with_module(const char *uri, const char *module_path, char **out, lic_error *error);

/* Finds the one object of `kind` the URI names (token, object label, id),
 * logs in with the URI's PIN when the token needs it. module_path may be NULL. */
lic_status pkcs11_key_open(const char *uri, const char *module_path, enum pkcs11_key_kind kind,
			   struct pkcs11_key **out, lic_error *error);
void pkcs11_key_free(struct pkcs11_key *key); /* NULL is a no-op */

/* True when `error` (from pkcs11_key_open, pkcs11_generate_*) is the token
 * refusing the PIN itself: CKR_PIN_INCORRECT, CKR_PIN_LOCKED or
 * CKR_PIN_EXPIRED (LIC_INTERNAL, the sentence "the token refused the PIN:
 * CKR_…"). Such an open must not be retried with the same PIN: each try
 * counts towards the token locking the PIN. Other open failures (token
 * absent, object missing) may be retried later. */
bool pkcs11_error_is_pin(const lic_error *error);

/* True once an operation on the key got CKR_USER_NOT_LOGGED_IN,
 * CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED, CKR_DEVICE_ERROR,
 * CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT, CKR_CRYPTOKI_NOT_INITIALIZED,
 * CKR_OBJECT_HANDLE_INVALID or CKR_KEY_HANDLE_INVALID: the token was
 * removed, restarted, logged out or lost the object, and this key will not
 * work again. It stays true; the caller drops the key (pkcs11_key_free) and
 * opens the URI anew later. The failing operation itself returned
 * LIC_INTERNAL with the CKR name. */
bool pkcs11_key_broken(const struct pkcs11_key *key);

/* RSA: modulus size in bits; AES: key size in bits (CKA_VALUE_LEN × 8, 0 if unknown). */
int pkcs11_key_bits(const struct pkcs11_key *key);
/* RSA: the SubjectPublicKeyInfo DER of the key (new buffer, free()). */
lic_status pkcs11_key_public_der(const struct pkcs11_key *key, uint8_t **der, size_t *length,
				 lic_error *error);

/* How many idle sessions the key's pool holds now: at most the largest number
 * of operations that ran at once on it (for tests and diagnostics). */
size_t pkcs11_key_pooled_sessions(struct pkcs11_key *key);

/* RSA-OAEP with SHA-256, MGF1-SHA-256 and `label`. Uses CKM_RSA_PKCS_OAEP
 * when the token takes those parameters; tokens that do not (SoftHSM2 2.6
 * takes only SHA-1 without a label) get CKM_RSA_X_509 in the token and the
 * OAEP decoding here, in constant time. A wrong label or an altered
 * ciphertext is LIC_PL_INTEGRITY. The plaintext is written to out. */
lic_status pkcs11_rsa_oaep_decrypt(struct pkcs11_key *key, const uint8_t *label, size_t label_length,
				   const uint8_t *ciphertext, size_t ciphertext_length, uint8_t *out,
				   size_t capacity, size_t *out_length, lic_error *error);
/* EME-OAEP decoding (RFC 8017 §7.1.2) with SHA-256 and MGF1-SHA-256 of an
 * encoded block EM (the output of the raw RSA operation, as long as the
 * modulus), in constant time over the block. Every failure, a message longer
 * than capacity included, is LIC_PL_INTEGRITY with one sentence. Used by
 * pkcs11_rsa_oaep_decrypt after CKM_RSA_X_509; public for its tests. */
lic_status pkcs11_oaep_sha256_decode(const uint8_t *encoded, size_t encoded_length, const uint8_t *label,
				     size_t label_length, uint8_t *out, size_t capacity, size_t *out_length,
				     lic_error *error);
/* True once the key has fallen back to CKM_RSA_X_509 for OAEP. */
bool pkcs11_key_uses_raw_rsa(const struct pkcs11_key *key);

/* RSASSA-PKCS1-v1_5 with SHA-256 over `data` (CKM_SHA256_RSA_PKCS). */
lic_status pkcs11_rsa_sign_sha256(struct pkcs11_key *key, const uint8_t *data, size_t length,
				  uint8_t *signature, size_t capacity, size_t *signature_length,
				  lic_error *error);

/* AES: encrypts plaintext into a new buffer (*sealed, free()) whose format is
 * this module's own (mechanism, IV, ciphertext: AES-GCM when the token has
 * it, else AES-CBC-PAD); decrypt takes that buffer back and returns the
 * plaintext in new secure memory (secure_free(*plaintext, *length)). An
 * altered buffer is LIC_INTERNAL. */
lic_status pkcs11_aes_encrypt(struct pkcs11_key *key, const uint8_t *plaintext, size_t length,
			      uint8_t **sealed, size_t *sealed_length, lic_error *error);
lic_status pkcs11_aes_decrypt(struct pkcs11_key *key, const uint8_t *sealed, size_t sealed_length,
			      uint8_t **plaintext, size_t *length, lic_error *error);

/* Generate in the token, as token objects, sensitive and not extractable,
 * labelled and identified by the URI's object= and id= (object= required):
 * an RSA key pair of `bits` (private: decrypt + sign; public: encrypt +
 * verify), or a 256-bit AES key (encrypt + decrypt). LIC_STATE when an
 * object with that label already exists. */
lic_status pkcs11_generate_rsa(const char *uri, const char *module_path, int bits, lic_error *error);
lic_status pkcs11_generate_aes(const char *uri, const char *module_path, lic_error *error);

#endif
