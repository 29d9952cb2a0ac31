/*
 * cmd_pkcs11.c: `licensor pkcs11 keygen URI (--rsa BITS | --aes-256)` and
 * `licensor pkcs11 show URI`, for keys in a PKCS#11 token (keyring/pkcs11.h).
 * Neither needs a store. Both print the URI without its pin-value, never a
 * PIN, never key material: keygen the key id of a new RSA key (what
 * `keys list` will show for it), show its kind, size, key id and whether
 * RSA-OAEP runs wholly in the token or as raw RSA in the token plus the
 * OAEP decoding here (found by a trial decryption of a random block).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "cli.h"
#include "keyring/encoding.h"
#include "keyring/error.h"
#include "keyring/key_material.h"
#include "keyring/pkcs11.h"
#include "keyring/version_key.h"

static const struct cli_option_spec pkcs11_options[] = {
    {"rsa", true, false},  {"aes-256", false, false}, {"pkcs11-module", true, false},
    {"pem", false, false}, {NULL, false, false},
};

static const char pkcs11_usage[] = "pkcs11 keygen URI (--rsa BITS | --aes-256) [--pkcs11-module PATH]\n"
				   "       licensor pkcs11 show URI [--pem] [--pkcs11-module PATH]";

/* The key id of an RSA key in the token: hex of SHA-256(SPKI)[0..16). */
static lic_status key_id_hex_of(struct pkcs11_key *key, char hex[KEY_ID_HEX_LENGTH], lic_error *error)
{
	uint8_t *der = NULL;
	size_t length = 0;
	lic_status status = pkcs11_key_public_der(key, &der, &length, error);
	if (status != LIC_OK)
		return status;
	uint8_t key_id[KEY_ID_LENGTH];
	key_id_of_spki(der, length, key_id);
	hex_encode(key_id, KEY_ID_LENGTH, hex);
	free(der);
	return LIC_OK;
}

/* A trial RSA-OAEP decryption of a random block encrypted here. */
static lic_status oaep_trial(struct pkcs11_key *key, lic_error *error)
{
	lic_status status = LIC_OK;
	uint8_t *der = NULL;
	size_t der_length = 0;
	EVP_PKEY *pkey = NULL;
	EVP_PKEY_CTX *context = NULL;
	static const char trial_label[] = "licensor pkcs11 show";
	uint8_t message[32];
	uint8_t ciphertext[1024];
	size_t ciphertext_length = sizeof ciphertext;
	uint8_t out[sizeof ciphertext];
	size_t out_length = 0;
	LIC_TRY(pkcs11_key_public_der(key, &der, &der_length, error));
	const unsigned char *cursor = der;
	pkey = d2i_PUBKEY(NULL, &cursor, (long)der_length);
	context = pkey != NULL ? EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL) : NULL;
	if (RAND_bytes(message, sizeof message) != 1 || context == NULL ||
	    EVP_PKEY_encrypt_init(context) <= 0 ||
	    oaep_set_parameters(context, (const uint8_t *)trial_label, sizeof trial_label - 1, NULL) !=
		LIC_OK)
		LIC_FAIL(error, LIC_INTERNAL, "cannot prepare the trial RSA-OAEP encryption");
	if (EVP_PKEY_encrypt(context, ciphertext, &ciphertext_length, message, sizeof message) <= 0)
		LIC_FAIL(error, LIC_INTERNAL, "cannot prepare the trial RSA-OAEP encryption");
	LIC_TRY(pkcs11_rsa_oaep_decrypt(key, (const uint8_t *)trial_label, sizeof trial_label - 1, ciphertext,
					ciphertext_length, out, sizeof out, &out_length, error));
	if (out_length != sizeof message || memcmp(out, message, sizeof message) != 0)
		LIC_FAIL(error, LIC_INTERNAL, "the token's RSA-OAEP decryption gave a wrong result");
out:
	OPENSSL_cleanse(out, sizeof out);
	EVP_PKEY_CTX_free(context);
	EVP_PKEY_free(pkey);
	free(der);
	return status;
}

/* The PEM SubjectPublicKeyInfo of an RSA key in the token. */
static int pkcs11_show_pem(const char *uri, const char *module_path)
{
	lic_error error = {0};
	struct pkcs11_key *key = NULL;
	uint8_t *der = NULL;
	size_t length = 0;
	char *pem = NULL;
	int exit_status = 0;
	if (pkcs11_key_open(uri, module_path, PKCS11_KEY_RSA, &key, &error) != LIC_OK ||
	    pkcs11_key_public_der(key, &der, &length, &error) != LIC_OK ||
	    key_material_public_pem(der, length, &pem, &error) != LIC_OK)
		exit_status = cli_fail(&error);
	else
		fputs(pem, stdout);
	free(pem);
	free(der);
	pkcs11_key_free(key);
	return exit_status;
}

static int pkcs11_show(const char *uri, const char *module_path)
{
	lic_error error = {0};
	struct pkcs11_key *key = NULL;
	char shown[PKCS11_URI_MAX];
	pkcs11_uri_without_pin(uri, shown, sizeof shown);
	lic_status status = pkcs11_key_open(uri, module_path, PKCS11_KEY_RSA, &key, &error);
	if (status == LIC_UNKNOWN_KEY) {
		lic_error aes_error = {0};
		status = pkcs11_key_open(uri, module_path, PKCS11_KEY_AES, &key, &aes_error);
		if (status == LIC_OK) {
			printf(
			    "uri: %s\nkind: AES secret key (seals the store's keys in the token)\nbits: %d\n",
			    shown, pkcs11_key_bits(key));
			pkcs11_key_free(key);
			return 0;
		}
		if (status == LIC_UNKNOWN_KEY)
			lic_error_set(&error, LIC_UNKNOWN_KEY,
				      "the token holds no RSA private key or AES key named by %s", shown);
		else
			error = aes_error;
	}
	if (status != LIC_OK)
		return cli_fail(&error);
	int exit_status = 0;
	char key_id[KEY_ID_HEX_LENGTH];
	if (key_id_hex_of(key, key_id, &error) != LIC_OK || oaep_trial(key, &error) != LIC_OK) {
		exit_status = cli_fail(&error);
	} else {
		printf("uri: %s\nkind: RSA private key\nbits: %d\nkey id: %s\n", shown, pkcs11_key_bits(key),
		       key_id);
		printf("oaep: %s\n",
		       pkcs11_key_uses_raw_rsa(key)
			   ? "raw RSA in the token (CKM_RSA_X_509), OAEP SHA-256 decoding in licensor"
			   : "in the token (CKM_RSA_PKCS_OAEP, SHA-256, MGF1-SHA-256, label)");
	}
	pkcs11_key_free(key);
	return exit_status;
}

static int pkcs11_keygen(const struct cli_args *args, const char *uri, const char *module_path)
{
	lic_error error = {0};
	const char *rsa = cli_option(args, "rsa");
	bool aes = cli_flag(args, "aes-256");
	if ((rsa == NULL) == !aes) {
		lic_error_set(&error, LIC_USAGE, "give one of --rsa BITS or --aes-256");
		return cli_fail(&error);
	}
	char shown[PKCS11_URI_MAX];
	pkcs11_uri_without_pin(uri, shown, sizeof shown);
	if (aes) {
		if (pkcs11_generate_aes(uri, module_path, &error) != LIC_OK)
			return cli_fail(&error);
		printf("generated an AES-256 key in the token\nuri: %s\n", shown);
		return 0;
	}
	char *end = NULL;
	long bits = strtol(rsa, &end, 10);
	if (end == rsa || *end != '\0' || (bits != 2048 && bits != 3072 && bits != 4096)) {
		lic_error_set(&error, LIC_USAGE, "--rsa takes 2048, 3072 or 4096");
		return cli_fail(&error);
	}
	if (pkcs11_uri_check(uri, &error) != LIC_OK)
		return cli_fail(&error);
	cli_progress("generating an RSA-%ld key pair in the token…\n", bits);
	if (pkcs11_generate_rsa(uri, module_path, (int)bits, &error) != LIC_OK)
		return cli_fail(&error);
	struct pkcs11_key *key = NULL;
	char key_id[KEY_ID_HEX_LENGTH];
	if (pkcs11_key_open(uri, module_path, PKCS11_KEY_RSA, &key, &error) != LIC_OK ||
	    key_id_hex_of(key, key_id, &error) != LIC_OK) {
		pkcs11_key_free(key);
		return cli_fail(&error);
	}
	printf("generated an RSA-%ld key pair in the token\nuri: %s\nkey id: %s\n", bits, shown, key_id);
	pkcs11_key_free(key);
	return 0;
}

int command_pkcs11(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	if (cli_parse(argc, argv, "pkcs11", pkcs11_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (args.help) {
		printf(
		    "usage: licensor %s\n"
		    "Keys in a PKCS#11 token (an HSM), named by RFC 7512 URIs such as\n"
		    "  'pkcs11:token=hsm1;object=tenant-a-v3;id=%%01?pin-source=/run/secrets/hsm-pin'\n"
		    "  keygen URI --rsa BITS   an RSA key pair (2048, 3072, 4096) for a BYOK key version;\n"
		    "                          prints its key id\n"
		    "  keygen URI --aes-256    an AES-256 key to seal the store's keys (a token KEK)\n"
		    "  show URI                kind, size, key id, and where RSA-OAEP runs\n"
		    "  show URI --pem          only the public key of an RSA key (PEM SubjectPublicKeyInfo)\n"
		    "Keys are made in the token, sensitive and not extractable. The module: "
		    "--pkcs11-module,\n"
		    "else $LICENSOR_PKCS11_MODULE, else the URI's module-path, else p11-kit's proxy.\n",
		    pkcs11_usage);
		return 0;
	}
	if (args.positional_count != 2) {
		lic_error_set(&error, LIC_USAGE, "usage: licensor %s", pkcs11_usage);
		return cli_fail(&error);
	}
	const char *verb = args.positionals[0];
	const char *uri = args.positionals[1];
	const char *module_path = cli_option(&args, "pkcs11-module");
	if (strcmp(verb, "keygen") == 0 && cli_flag(&args, "pem")) {
		lic_error_set(&error, LIC_USAGE, "--pem goes with show, not keygen");
		return cli_fail(&error);
	}
	if (strcmp(verb, "keygen") == 0)
		return pkcs11_keygen(&args, uri, module_path);
	if (strcmp(verb, "show") == 0) {
		if (cli_option(&args, "rsa") != NULL || cli_flag(&args, "aes-256")) {
			lic_error_set(&error, LIC_USAGE, "show takes no --rsa or --aes-256");
			return cli_fail(&error);
		}
		if (pkcs11_uri_check(uri, &error) != LIC_OK)
			return cli_fail(&error);
		return cli_flag(&args, "pem") ? pkcs11_show_pem(uri, module_path)
					      : pkcs11_show(uri, module_path);
	}
	lic_error_set(&error, LIC_USAGE, "unknown pkcs11 command '%.32s' (use keygen or show)", verb);
	return cli_fail(&error);
}
