/*
 * byok.c: building a key version from a key in a PKCS#11 token, after the
 * token has proven it holds the private half (see byok.h).
 */
#include "byok.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "encoding.h"
#include "error.h"
#include "key_material.h"
#include "pkcs11.h"
#include "version_key.h"

static const uint8_t proof_label[] = "licensor-byok-proof-v1";

/* The token unwraps what its public key wrapped, and signs what that public
 * key verifies: the key is usable for content keys and licenses. */
static lic_status prove_token_key(struct pkcs11_key *token, EVP_PKEY *public_key, lic_error *error)
{
	lic_status status = LIC_OK;
	EVP_PKEY_CTX *context = NULL;
	EVP_MD_CTX *md = NULL;
	const struct version_key key = {.evp = NULL, .token = token};
	uint8_t secret[32], wrapped[1024], unwrapped[1024];
	size_t wrapped_length = sizeof wrapped, unwrapped_length = 0, signature_length = 0;
	uint8_t *signature = NULL;
	if (RAND_bytes(secret, sizeof secret) != 1)
		LIC_FAIL(error, LIC_INTERNAL, "random generator failed");
	context = EVP_PKEY_CTX_new(public_key, NULL);
	if (context == NULL || EVP_PKEY_encrypt_init(context) != 1)
		LIC_FAIL(error, LIC_INTERNAL, "RSA-OAEP context failed");
	LIC_TRY(oaep_set_parameters(context, proof_label, sizeof proof_label - 1, error));
	if (EVP_PKEY_encrypt(context, wrapped, &wrapped_length, secret, sizeof secret) != 1)
		LIC_FAIL(error, LIC_INTERNAL, "RSA-OAEP wrap of the proof value failed");
	lic_error token_error = {0};
	if (version_key_oaep_decrypt(&key, proof_label, sizeof proof_label - 1, wrapped, wrapped_length,
				     unwrapped, sizeof unwrapped, &unwrapped_length, &token_error) != LIC_OK)
		LIC_FAIL(error, LIC_INTERNAL, "the token key cannot unwrap RSA-OAEP-SHA256 with a label: %s",
			 token_error.message);
	if (unwrapped_length != sizeof secret || CRYPTO_memcmp(unwrapped, secret, sizeof secret) != 0)
		LIC_FAIL(error, LIC_INTERNAL,
			 "the token key unwrapped a test value to something else: it is not the private half "
			 "of the public key the token shows");
	if (version_key_sign_sha256(&key, secret, sizeof secret, &signature, &signature_length,
				    &token_error) != LIC_OK)
		LIC_FAIL(error, LIC_INTERNAL, "the token key cannot sign with RSA-SHA256: %s",
			 token_error.message);
	md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, public_key) != 1 ||
	    EVP_DigestVerify(md, signature, signature_length, secret, sizeof secret) != 1)
		LIC_FAIL(error, LIC_INTERNAL,
			 "the token key's RSA-SHA256 signature does not verify under its public key");
out:
	ERR_clear_error();
	OPENSSL_cleanse(secret, sizeof secret);
	OPENSSL_cleanse(unwrapped, sizeof unwrapped);
	free(signature);
	EVP_MD_CTX_free(md);
	EVP_PKEY_CTX_free(context);
	return status;
}

lic_status byok_version_from_token(const char *uri, const char *module_path, uint32_t number,
				   struct key_version *version, lic_error *error)
{
	lic_status status = LIC_OK;
	struct pkcs11_key *token = NULL;
	EVP_PKEY *public_key = NULL;
	char *recorded_uri = NULL;
	memset(version, 0, sizeof *version);
	LIC_TRY(pkcs11_uri_check_storable(uri, error));
	if (module_path != NULL)
		LIC_TRY(pkcs11_uri_with_module(uri, module_path, &recorded_uri, error));
	else if ((recorded_uri = strdup(uri)) == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	/* An explicit module wins over LICENSOR_PKCS11_MODULE, as it will be recorded. */
	LIC_TRY(pkcs11_key_open(recorded_uri, module_path, PKCS11_KEY_RSA, &token, error));
	version->number = number;
	version->origin = KEY_ORIGIN_BYOK;
	LIC_TRY(pkcs11_key_public_der(token, &version->public_key_der, &version->public_key_length, error));
	LIC_TRY(key_material_from_public_der(version->public_key_der, version->public_key_length, &public_key,
					     error));
	LIC_TRY(key_material_algorithm_of(public_key, &version->algorithm, error));
	if (version->algorithm == KEY_ALGORITHM_RSA_1024)
		LIC_FAIL(error, LIC_UNSUPPORTED_VERSION,
			 "the token key is rsa-1024: accepted for old content only, never for a new version");
	key_id_of_spki(version->public_key_der, version->public_key_length, version->key_id);
	hex_encode(version->key_id, KEY_ID_LENGTH, version->key_id_hex);
	LIC_TRY(prove_token_key(token, public_key, error));
	version->byok_uri = recorded_uri;
	recorded_uri = NULL;
out:
	free(recorded_uri);
	EVP_PKEY_free(public_key);
	pkcs11_key_free(token);
	if (status != LIC_OK)
		byok_version_cleanup(version);
	return status;
}

void byok_version_cleanup(struct key_version *version)
{
	free(version->public_key_der);
	free(version->sealed_private_key);
	free(version->byok_uri);
	memset(version, 0, sizeof *version);
}
