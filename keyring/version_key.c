/*
 * version_key.c: one interface over a managed key (EVP_PKEY) and a BYOK key
 * (PKCS#11 token); see version_key.h.
 */
#include "version_key.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include "error.h"
#include "store.h"

lic_status oaep_set_parameters(EVP_PKEY_CTX *context, const uint8_t *label, size_t label_length,
			       lic_error *error)
{
	if (EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(context, EVP_sha256()) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(context, EVP_sha256()) != 1) {
		ERR_clear_error();
		return lic_error_set(error, LIC_INTERNAL, "RSA-OAEP parameters refused");
	}
	if (label_length > 0) {
		/* The context takes ownership of the copy. */
		unsigned char *copy = OPENSSL_memdup(label, label_length);
		if (copy == NULL || EVP_PKEY_CTX_set0_rsa_oaep_label(context, copy, (int)label_length) != 1) {
			OPENSSL_free(copy);
			ERR_clear_error();
			return lic_error_set(error, LIC_INTERNAL, "RSA-OAEP label refused");
		}
	}
	return LIC_OK;
}

static lic_status open_token_key(const char *tenant, const struct key_version *version,
				 struct pkcs11_key **out, lic_error *error)
{
	lic_status status = LIC_OK;
	lic_error token_error = {0};
	struct pkcs11_key *key = NULL;
	uint8_t *spki = NULL;
	size_t spki_length = 0;
	if (pkcs11_key_open(version->byok_uri, NULL, PKCS11_KEY_RSA, &key, &token_error) != LIC_OK ||
	    pkcs11_key_public_der(key, &spki, &spki_length, &token_error) != LIC_OK)
		LIC_FAIL(error, LIC_INTERNAL, "the token key of version %u of %s is not available: %s",
			 version->number, tenant, token_error.message);
	/* The token must hold the key the store recorded, not another one
	 * that was put under the same label. */
	if (spki_length != version->public_key_length ||
	    memcmp(spki, version->public_key_der, spki_length) != 0)
		LIC_FAIL(error, LIC_INTERNAL,
			 "the token key of version %u of %s is not available: the token holds a different "
			 "key under that URI (key id recorded: %s)",
			 version->number, tenant, version->key_id_hex);
	*out = key;
	key = NULL;
out:
	free(spki);
	pkcs11_key_free(key);
	return status;
}

lic_status version_key_open(const struct kek *kek, const char *tenant, const struct key_version *version,
			    struct version_key **out, lic_error *error)
{
	lic_status status = LIC_OK;
	struct version_key *key = calloc(1, sizeof *key);
	if (key == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	if (version->state == LIC_KEY_STATE_DESTROYED)
		LIC_FAIL(error, LIC_KEY_DESTROYED, "version %u of %s is destroyed", version->number, tenant);
	if (version->origin == KEY_ORIGIN_BYOK)
		LIC_TRY(open_token_key(tenant, version, &key->token, error));
	else
		LIC_TRY(store_open_private_key(kek, tenant, version, &key->evp, error));
	*out = key;
	key = NULL;
out:
	version_key_free(key);
	return status;
}

void version_key_free(struct version_key *key)
{
	if (key == NULL)
		return;
	EVP_PKEY_free(key->evp); /* RSA_free wipes the private components */
	pkcs11_key_free(key->token);
	free(key);
}

bool version_key_in_token(const struct version_key *key)
{
	return key->token != NULL;
}

bool version_key_broken(const struct version_key *key)
{
	return key->token != NULL && pkcs11_key_broken(key->token);
}

bool version_key_error_is_pin(const lic_error *error)
{
	/* pkcs11.h: a token failure's sentence names its CKR code. */
	return error->status == LIC_INTERNAL && strstr(error->message, "CKR_PIN_") != NULL;
}

size_t version_key_size(const struct version_key *key)
{
	if (key->token != NULL)
		return (size_t)(pkcs11_key_bits(key->token) + 7) / 8;
	return key->evp != NULL ? (size_t)EVP_PKEY_get_size(key->evp) : 0;
}

lic_status version_key_oaep_decrypt(const struct version_key *key, const uint8_t *label, size_t label_length,
				    const uint8_t *ciphertext, size_t ciphertext_length, uint8_t *out,
				    size_t capacity, size_t *out_length, lic_error *error)
{
	if (key->token != NULL)
		return pkcs11_rsa_oaep_decrypt(key->token, label, label_length, ciphertext, ciphertext_length,
					       out, capacity, out_length, error);
	lic_status status = LIC_OK;
	EVP_PKEY_CTX *context = EVP_PKEY_CTX_new(key->evp, NULL);
	size_t length = capacity;
	if (context == NULL || EVP_PKEY_decrypt_init(context) != 1)
		LIC_FAIL(error, LIC_INTERNAL, "RSA-OAEP context failed");
	LIC_TRY(oaep_set_parameters(context, label, label_length, error));
	if ((size_t)EVP_PKEY_get_size(key->evp) != ciphertext_length ||
	    EVP_PKEY_decrypt(context, out, &length, ciphertext, ciphertext_length) != 1)
		LIC_FAIL(error, LIC_PL_INTEGRITY,
			 "the content key does not unwrap: the body or the enabling bits were altered");
	*out_length = length;
out:
	ERR_clear_error();
	EVP_PKEY_CTX_free(context);
	return status;
}

lic_status version_key_sign_sha256(const struct version_key *key, const uint8_t *message, size_t length,
				   uint8_t **signature, size_t *signature_length, lic_error *error)
{
	lic_status status = LIC_OK;
	EVP_MD_CTX *md = NULL;
	EVP_PKEY_CTX *key_context = NULL;
	size_t capacity = version_key_size(key);
	uint8_t *bytes = capacity > 0 ? malloc(capacity) : NULL;
	size_t written = capacity;
	if (bytes == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	if (key->token != NULL) {
		LIC_TRY(
		    pkcs11_rsa_sign_sha256(key->token, message, length, bytes, capacity, &written, error));
	} else {
		md = EVP_MD_CTX_new();
		if (md == NULL || EVP_DigestSignInit(md, &key_context, EVP_sha256(), NULL, key->evp) != 1 ||
		    EVP_PKEY_CTX_set_rsa_padding(key_context, RSA_PKCS1_PADDING) <= 0 ||
		    EVP_DigestSign(md, bytes, &written, message, length) != 1) {
			ERR_clear_error();
			LIC_FAIL(error, LIC_INTERNAL, "RSA-SHA256 signing failed");
		}
	}
	*signature = bytes;
	*signature_length = written;
	bytes = NULL;
out:
	free(bytes);
	EVP_MD_CTX_free(md);
	return status;
}
