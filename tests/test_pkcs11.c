/*
 * test_pkcs11.c: the PKCS#11 token layer against a real SoftHSM2 token made
 * in a temporary directory (SOFTHSM2_CONF points at its own configuration),
 * with OpenSSL as the independent party: it reads the public key the token
 * gives, encrypts with RSA-OAEP (SHA-256, MGF1-SHA-256, a label) for the
 * token to decrypt, and verifies the token's signatures. The EME-OAEP decoder
 * is also tested alone on blocks OpenSSL padded. Skipped (with a message)
 * when SoftHSM2 is not installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyring/key_material.h"
#include "keyring/pkcs11.h"
#include "keyring/secure_memory.h"
#include "test_helpers.h"

/* Last: p11-kit's compatibility header #defines common words. */
#include <p11-kit/pkcs11.h>

#define MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define PIN "5678"
#define TOKEN "pkcs11:token=licensor-test"
#define RSA_URI TOKEN ";object=rsa-one;id=%01?pin-value=" PIN
#define AES_URI TOKEN ";object=aes-one;id=%02?pin-value=" PIN

static char directory[64];
static bool have_softhsm;

static const uint8_t label[] = "licensor content key v1";

static int group_setup(void **state)
{
	(void)state;
	have_softhsm = access(MODULE, R_OK) == 0 && system("command -v softhsm2-util >/dev/null 2>&1") == 0;
	if (!have_softhsm)
		return 0;
	strcpy(directory, "/tmp/licensor-pkcs11-XXXXXX");
	if (mkdtemp(directory) == NULL)
		return -1;
	char path[256];
	char text[512];
	test_join_path(path, sizeof path, directory, "tokens");
	if (mkdir(path, 0700) != 0)
		return -1;
	snprintf(text, sizeof text,
		 "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", path);
	test_join_path(path, sizeof path, directory, "softhsm2.conf");
	FILE *file = fopen(path, "w");
	if (file == NULL)
		return -1;
	fputs(text, file);
	fclose(file);
	setenv("SOFTHSM2_CONF", path, 1);
	unsetenv("LICENSOR_PKCS11_MODULE");
	if (system("softhsm2-util --init-token --free --label licensor-test --so-pin 1234 --pin " PIN
		   " >/dev/null") != 0)
		return -1;
	lic_error error = {0};
	if (pkcs11_generate_rsa(RSA_URI, MODULE, 2048, &error) != LIC_OK ||
	    pkcs11_generate_aes(AES_URI, MODULE, &error) != LIC_OK) {
		fprintf(stderr, "keygen: %s\n", error.message);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (have_softhsm)
		test_remove_tree(directory);
	return 0;
}

#define NEED_SOFTHSM()                                                                                       \
	do {                                                                                                 \
		if (!have_softhsm) {                                                                         \
			print_message("SoftHSM2 is not installed: skipped\n");                               \
			skip();                                                                              \
		}                                                                                            \
	} while (0)

static struct pkcs11_key *open_key(const char *uri, enum pkcs11_key_kind kind)
{
	struct pkcs11_key *key = NULL;
	lic_error error = {0};
	lic_status status = pkcs11_key_open(uri, MODULE, kind, &key, &error);
	if (status != LIC_OK)
		print_message("open: %s\n", error.message);
	assert_int_equal(status, LIC_OK);
	assert_non_null(key);
	return key;
}

static EVP_PKEY *token_public_key(struct pkcs11_key *key)
{
	uint8_t *der = NULL;
	size_t length = 0;
	lic_error error = {0};
	assert_int_equal(pkcs11_key_public_der(key, &der, &length, &error), LIC_OK);
	const unsigned char *cursor = der;
	EVP_PKEY *pkey = d2i_PUBKEY(NULL, &cursor, (long)length);
	assert_non_null(pkey);
	assert_ptr_equal(cursor, der + length);
	free(der);
	return pkey;
}

/* OpenSSL's RSA-OAEP, SHA-256 for OAEP and MGF1, with a label. */
static size_t openssl_oaep_encrypt(EVP_PKEY *pkey, const uint8_t *oaep_label, size_t label_length,
				   const uint8_t *message, size_t length, uint8_t *out, size_t capacity)
{
	EVP_PKEY_CTX *context = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	assert_non_null(context);
	assert_int_equal(EVP_PKEY_encrypt_init(context), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_OAEP_PADDING), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md(context, EVP_sha256()), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(context, EVP_sha256()), 1);
	if (label_length > 0) {
		unsigned char *copy = OPENSSL_malloc(label_length);
		assert_non_null(copy);
		memcpy(copy, oaep_label, label_length);
		assert_int_equal(EVP_PKEY_CTX_set0_rsa_oaep_label(context, copy, (int)label_length), 1);
	}
	size_t produced = capacity;
	assert_int_equal(EVP_PKEY_encrypt(context, out, &produced, message, length), 1);
	EVP_PKEY_CTX_free(context);
	return produced;
}

/* ---- URIs (no token needed) ---------------------------------------------- */

static void test_uri_check(void **state)
{
	(void)state;
	lic_error error = {0};
	assert_int_equal(pkcs11_uri_check("pkcs11:token=t;object=k", &error), LIC_OK);
	assert_int_equal(pkcs11_uri_check("pkcs11:id=%01%02", &error), LIC_OK);
	assert_int_equal(pkcs11_uri_check("pkcs11:token=t;object=k?pin-source=/x&module-path=/m.so", &error),
			 LIC_OK);
	assert_int_equal(pkcs11_uri_check("file:/etc/k", &error), LIC_USAGE);
	assert_int_equal(pkcs11_uri_check("pkcs11:token=t", &error), LIC_USAGE);
	assert_non_null(strstr(error.message, "names no object"));
	assert_int_equal(pkcs11_uri_check("pkcs11:object=%zz", &error), LIC_USAGE);
	assert_int_equal(pkcs11_uri_check("pkcs11:object=k;colour=blue", &error), LIC_USAGE);
	assert_int_equal(pkcs11_uri_check("", &error), LIC_USAGE);
	/* a refused URI's PIN does not reach the sentence */
	assert_int_equal(pkcs11_uri_check("pkcs11:token=t?pin-value=s3cr3t", &error), LIC_USAGE);
	assert_null(strstr(error.message, "s3cr3t"));
	assert_non_null(strstr(error.message, "pin-value=***"));
	/* p11-kit skips whitespace, so a blank could hide pin-value from the
	 * redaction: every blank or control character is refused, PIN unseen */
	static const char *const blank[] = {
	    "pkcs11:object=k; pin-value=s3cr3t",    "pkcs11:object=k?pin-val ue=s3cr3t",
	    "pkcs11:object=k;\tpin-value=s3cr3t",   "pkcs11:object=k\n;pin-value=s3cr3t",
	    "pkcs11:object=k?pin-value=s3cr3t\x7f", "pkcs11:object=my key",
	};
	for (size_t i = 0; i < sizeof blank / sizeof blank[0]; i++) {
		assert_int_equal(pkcs11_uri_check(blank[i], &error), LIC_USAGE);
		assert_non_null(strstr(error.message, "whitespace or a control character"));
		assert_null(strstr(error.message, "s3cr3t"));
		assert_int_equal(pkcs11_uri_check_storable(blank[i], &error), LIC_USAGE);
		assert_null(strstr(error.message, "s3cr3t"));
	}
	assert_int_equal(pkcs11_uri_check("pkcs11:object=my%20key", &error), LIC_OK);
}

static void test_uri_check_storable(void **state)
{
	(void)state;
	lic_error error = {0};
	assert_int_equal(pkcs11_uri_check_storable("pkcs11:token=t;object=k?pin-source=/run/pin", &error),
			 LIC_OK);
	/* pin-value in the query, in the path, in any case, percent-encoded */
	static const char *const holding[] = {
	    "pkcs11:token=t;object=k?pin-value=s3cr3t",
	    "pkcs11:token=t;object=k;pin-value=s3cr3t",
	    "pkcs11:pin-value=s3cr3t;object=k",
	    "pkcs11:object=k?module-path=/m.so&PIN-VALUE=s3cr3t",
	    "pkcs11:object=k?pin-val%75e=s3cr3t",
	    "pkcs11:object=k;pin-value=s3cr3t?pin-source=/run/pin",
	};
	for (size_t i = 0; i < sizeof holding / sizeof holding[0]; i++) {
		lic_status status = pkcs11_uri_check_storable(holding[i], &error);
		if (status == LIC_OK)
			print_message("storable: %s\n", holding[i]);
		assert_int_equal(status, LIC_USAGE);
		assert_null(strstr(error.message, "s3cr3t"));
		char out[PKCS11_URI_MAX];
		pkcs11_uri_redacted(holding[i], out, sizeof out);
		assert_null(strstr(out, "s3cr3t"));
		pkcs11_uri_without_pin(holding[i], out, sizeof out);
		assert_null(strstr(out, "s3cr3t"));
	}
}

static void test_uri_redacted(void **state)
{
	(void)state;
	char out[PKCS11_URI_MAX];
	pkcs11_uri_redacted("pkcs11:token=t;object=k?pin-value=s3cr3t", out, sizeof out);
	assert_string_equal(out, "pkcs11:token=t;object=k?pin-value=***");
	pkcs11_uri_redacted("pkcs11:object=k?pin-value=s3cr3t&module-path=/m.so", out, sizeof out);
	assert_string_equal(out, "pkcs11:object=k?pin-value=***&module-path=/m.so");
	pkcs11_uri_redacted("pkcs11:object=k;pin-value=s3cr3t", out, sizeof out);
	assert_string_equal(out, "pkcs11:object=k;pin-value=***");
	pkcs11_uri_redacted("pkcs11:object=k?module-path=/m.so&PIN-VALUE=s3cr3t", out, sizeof out);
	assert_null(strstr(out, "s3cr3t"));
	/* object names that merely contain the word are left alone */
	pkcs11_uri_redacted("pkcs11:object=my-pin-value=x", out, sizeof out);
	assert_string_equal(out, "pkcs11:object=my-pin-value=x");
	pkcs11_uri_redacted("pkcs11:object=k?pin-source=/run/pin", out, sizeof out);
	assert_string_equal(out, "pkcs11:object=k?pin-source=/run/pin");
	/* the path's segments end at ';' or '?' only: a '&' in a path value is part of it */
	pkcs11_uri_redacted("pkcs11:pin-value=s3c&r3t;object=k", out, sizeof out);
	assert_string_equal(out, "pkcs11:pin-value=***;object=k");
	pkcs11_uri_redacted("pkcs11:object=k?pin-val%75e=s3cr3t&pin-source=/p", out, sizeof out);
	assert_string_equal(out, "pkcs11:object=k?pin-value=***&pin-source=/p");
	pkcs11_uri_redacted("pkcs11:object=k; pin-value=s3cr3t", out, sizeof out);
	assert_string_equal(out, "pkcs11:object=k;pin-value=***");
	char small[12];
	pkcs11_uri_redacted("pkcs11:object=k?pin-value=s3cr3t", small, sizeof small);
	assert_string_equal(small, "pkcs11:obje");
}

static void test_uri_without_pin(void **state)
{
	(void)state;
	char out[PKCS11_URI_MAX];
	pkcs11_uri_without_pin("pkcs11:token=t;object=k?pin-value=s3cr3t", out, sizeof out);
	assert_string_equal(out, "pkcs11:token=t;object=k");
	pkcs11_uri_without_pin("pkcs11:object=k?pin-value=s3cr3t&module-path=/m.so", out, sizeof out);
	assert_string_equal(out, "pkcs11:object=k?module-path=/m.so");
	pkcs11_uri_without_pin("pkcs11:object=k?module-path=/m.so&pin-value=s3cr3t&pin-source=/p", out,
			       sizeof out);
	assert_string_equal(out, "pkcs11:object=k?module-path=/m.so&pin-source=/p");
	pkcs11_uri_without_pin("pkcs11:pin-value=s3cr3t;object=k;id=%01", out, sizeof out);
	assert_string_equal(out, "pkcs11:object=k;id=%01");
	pkcs11_uri_without_pin("pkcs11:object=k;pin-value=s3c&r3t?pin-source=/p", out, sizeof out);
	assert_string_equal(out, "pkcs11:object=k?pin-source=/p");
	pkcs11_uri_without_pin("pkcs11:object=k?pin-val%75e=s3cr3t", out, sizeof out);
	assert_string_equal(out, "pkcs11:object=k");
	pkcs11_uri_without_pin("pkcs11:object=k", out, sizeof out);
	assert_string_equal(out, "pkcs11:object=k");
}

/* Writes `text` (length bytes) to directory/name with `mode`. */
static void pin_file_write(char *path, size_t size, const char *name, const char *text, size_t length,
			   mode_t mode)
{
	test_join_path(path, size, directory, name);
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, length), (ssize_t)length);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void test_pin_source(void **state)
{
	(void)state;
	NEED_SOFTHSM();
	char path[256];
	char uri[512];
	struct pkcs11_key *key = NULL;
	lic_error error = {0};
	/* the first line of a 0600 file */
	pin_file_write(path, sizeof path, "pin", PIN "\nsecond line\n", strlen(PIN "\nsecond line\n"), 0600);
	snprintf(uri, sizeof uri, TOKEN ";object=rsa-one?pin-source=%s", path);
	pkcs11_key_free(open_key(uri, PKCS11_KEY_RSA));
	pin_file_write(path, sizeof path, "pin", PIN, strlen(PIN), 0400);
	pkcs11_key_free(open_key(uri, PKCS11_KEY_RSA));
	/* readable by the group or by others: IO, like the KEK file */
	static const mode_t loose[] = {0640, 0604, 0644, 0660};
	for (size_t i = 0; i < sizeof loose / sizeof loose[0]; i++) {
		pin_file_write(path, sizeof path, "pin", PIN "\n", strlen(PIN "\n"), loose[i]);
		assert_int_equal(pkcs11_key_open(uri, MODULE, PKCS11_KEY_RSA, &key, &error), LIC_IO);
		assert_non_null(strstr(error.message, "chmod 600"));
		assert_null(key);
	}
	/* a PIN longer than 255 bytes is refused, not cut to its first 255 */
	char longer[400];
	memset(longer, '7', sizeof longer);
	pin_file_write(path, sizeof path, "pin", longer, sizeof longer, 0600);
	assert_int_equal(pkcs11_key_open(uri, MODULE, PKCS11_KEY_RSA, &key, &error), LIC_IO);
	assert_non_null(strstr(error.message, "longer than 255"));
	pin_file_write(path, sizeof path, "pin", longer, 256, 0600);
	assert_int_equal(pkcs11_key_open(uri, MODULE, PKCS11_KEY_RSA, &key, &error), LIC_IO);
	/* 255 bytes fit (and are the wrong PIN) */
	pin_file_write(path, sizeof path, "pin", longer, 255, 0600);
	assert_int_equal(pkcs11_key_open(uri, MODULE, PKCS11_KEY_RSA, &key, &error), LIC_INTERNAL);
	assert_true(pkcs11_error_is_pin(&error));
	/* empty, a directory, missing */
	pin_file_write(path, sizeof path, "pin", "\n", 1, 0600);
	assert_int_equal(pkcs11_key_open(uri, MODULE, PKCS11_KEY_RSA, &key, &error), LIC_IO);
	snprintf(uri, sizeof uri, TOKEN ";object=rsa-one?pin-source=%s", directory);
	assert_int_equal(pkcs11_key_open(uri, MODULE, PKCS11_KEY_RSA, &key, &error), LIC_IO);
	snprintf(uri, sizeof uri, TOKEN ";object=rsa-one?pin-source=%s/none", directory);
	assert_int_equal(pkcs11_key_open(uri, MODULE, PKCS11_KEY_RSA, &key, &error), LIC_IO);
	assert_false(pkcs11_error_is_pin(&error));
	assert_null(key);
	unlink(path);
}

/* The token logs the application out (as a token restart or another
 * application's C_Logout would): the key's next operation fails, the key
 * says it is broken, and a key opened anew works. */
static void test_broken_key(void **state)
{
	(void)state;
	NEED_SOFTHSM();
	struct pkcs11_key *key = open_key(RSA_URI, PKCS11_KEY_RSA);
	uint8_t signature[512];
	size_t signature_length = 0;
	lic_error error = {0};
	assert_int_equal(pkcs11_rsa_sign_sha256(key, (const uint8_t *)"x", 1, signature, sizeof signature,
						&signature_length, &error),
			 LIC_OK);
	assert_false(pkcs11_key_broken(key));
	/* the module is already loaded and initialised: log out through it */
	void *handle = dlopen(MODULE, RTLD_NOW | RTLD_NOLOAD);
	assert_non_null(handle);
	CK_C_GetFunctionList get_function_list = NULL;
	*(void **)&get_function_list = dlsym(handle, "C_GetFunctionList");
	assert_non_null(get_function_list);
	CK_FUNCTION_LIST_PTR functions = NULL;
	assert_int_equal(get_function_list(&functions), CKR_OK);
	CK_SLOT_ID slots[8];
	CK_ULONG count = 8;
	assert_int_equal(functions->C_GetSlotList(CK_TRUE, slots, &count), CKR_OK);
	assert_true(count >= 1);
	CK_SESSION_HANDLE session;
	assert_int_equal(functions->C_OpenSession(slots[0], CKF_SERIAL_SESSION, NULL, NULL, &session),
			 CKR_OK);
	assert_int_equal(functions->C_Logout(session), CKR_OK);
	assert_int_equal(functions->C_CloseSession(session), CKR_OK);
	dlclose(handle);
	lic_status status = pkcs11_rsa_sign_sha256(key, (const uint8_t *)"x", 1, signature, sizeof signature,
						   &signature_length, &error);
	assert_int_equal(status, LIC_INTERNAL);
	print_message("after logout: %s\n", error.message);
	assert_true(pkcs11_key_broken(key));
	/* it stays broken */
	assert_int_equal(pkcs11_rsa_sign_sha256(key, (const uint8_t *)"x", 1, signature, sizeof signature,
						&signature_length, &error),
			 LIC_INTERNAL);
	assert_true(pkcs11_key_broken(key));
	pkcs11_key_free(key);
	/* opened anew: logs in again and works */
	key = open_key(RSA_URI, PKCS11_KEY_RSA);
	assert_int_equal(pkcs11_rsa_sign_sha256(key, (const uint8_t *)"x", 1, signature, sizeof signature,
						&signature_length, &error),
			 LIC_OK);
	assert_false(pkcs11_key_broken(key));
	pkcs11_key_free(key);
}

static void test_uri_with_module(void **state)
{
	(void)state;
	lic_error error = {0};
	char *out = NULL;
	assert_int_equal(pkcs11_uri_with_module("pkcs11:object=k", "/usr/lib/my hsm.so", &out, &error),
			 LIC_OK);
	assert_string_equal(out, "pkcs11:object=k?module-path=/usr/lib/my%20hsm.so");
	assert_int_equal(pkcs11_uri_check(out, &error), LIC_OK);
	free(out);
	assert_int_equal(pkcs11_uri_with_module("pkcs11:object=k?pin-source=/p", "/m.so", &out, &error),
			 LIC_OK);
	assert_string_equal(out, "pkcs11:object=k?pin-source=/p&module-path=/m.so");
	free(out);
	/* the same module again: unchanged */
	assert_int_equal(pkcs11_uri_with_module("pkcs11:object=k?module-path=/m.so", "/m.so", &out, &error),
			 LIC_OK);
	assert_string_equal(out, "pkcs11:object=k?module-path=/m.so");
	free(out);
	out = NULL;
	assert_int_equal(
	    pkcs11_uri_with_module("pkcs11:object=k?module-path=/m.so", "/other.so", &out, &error),
	    LIC_USAGE);
	assert_null(out);
	assert_int_equal(pkcs11_uri_with_module("pkcs11:object=k", "relative.so", &out, &error), LIC_USAGE);
	assert_null(out);
	assert_int_equal(pkcs11_uri_with_module("nope", "/m.so", &out, &error), LIC_USAGE);
	assert_null(out);
}

/* ---- The OAEP decoder alone ------------------------------------------------ */

static void test_oaep_decoder(void **state)
{
	(void)state;
	EVP_PKEY *pkey = EVP_RSA_gen(2048);
	assert_non_null(pkey);
	uint8_t message[32];
	for (size_t i = 0; i < sizeof message; i++)
		message[i] = (uint8_t)(i * 7 + 1);
	size_t message_lengths[] = {32, 0, 190};
	uint8_t long_message[190];
	memset(long_message, 0x5a, sizeof long_message);
	for (size_t round = 0; round < 3; round++) {
		const uint8_t *plain = round == 2 ? long_message : message;
		size_t plain_length = message_lengths[round];
		uint8_t ciphertext[256];
		size_t ciphertext_length =
		    openssl_oaep_encrypt(pkey, label, round == 1 ? 0 : sizeof label - 1, plain, plain_length,
					 ciphertext, sizeof ciphertext);
		assert_int_equal(ciphertext_length, 256);
		/* the raw RSA private operation gives the encoded block EM */
		EVP_PKEY_CTX *context = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
		assert_int_equal(EVP_PKEY_decrypt_init(context), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(context, RSA_NO_PADDING), 1);
		uint8_t encoded[256];
		size_t encoded_length = sizeof encoded;
		assert_int_equal(
		    EVP_PKEY_decrypt(context, encoded, &encoded_length, ciphertext, ciphertext_length), 1);
		EVP_PKEY_CTX_free(context);
		assert_int_equal(encoded_length, 256);
		assert_int_equal(encoded[0], 0);

		lic_error error = {0};
		uint8_t out[256];
		size_t out_length = 999;
		size_t label_length = round == 1 ? 0 : sizeof label - 1;
		assert_int_equal(pkcs11_oaep_sha256_decode(encoded, encoded_length, label, label_length, out,
							   sizeof out, &out_length, &error),
				 LIC_OK);
		assert_int_equal(out_length, plain_length);
		assert_memory_equal(out, plain, plain_length);

		/* a wrong label, a flipped byte anywhere, a non-zero first byte, too
		 * small a buffer: one code, one sentence */
		char first_sentence[sizeof error.message] = "";
		const uint8_t other_label[] = "licensor content key v2";
		assert_int_equal(pkcs11_oaep_sha256_decode(encoded, encoded_length, other_label,
							   sizeof other_label - 1, out, sizeof out,
							   &out_length, &error),
				 LIC_PL_INTEGRITY);
		strcpy(first_sentence, error.message);
		assert_string_equal(first_sentence, "the content key could not be unwrapped");
		size_t positions[] = {0, 1, 20, 33, 40, 100, 200, 255};
		for (size_t p = 0; p < sizeof positions / sizeof positions[0]; p++) {
			uint8_t altered[256];
			memcpy(altered, encoded, sizeof altered);
			altered[positions[p]] ^= 0x01;
			lic_status status =
			    pkcs11_oaep_sha256_decode(altered, sizeof altered, label, label_length, out,
						      sizeof out, &out_length, &error);
			/* a flip inside M itself changes the message but not the padding
			 * of an all-ones... no: every byte is masked, so any flip breaks
			 * the label hash or the separator search */
			assert_int_equal(status, LIC_PL_INTEGRITY);
			assert_string_equal(error.message, first_sentence);
		}
		if (plain_length > 0) {
			assert_int_equal(pkcs11_oaep_sha256_decode(encoded, encoded_length, label,
								   label_length, out, plain_length - 1,
								   &out_length, &error),
					 LIC_PL_INTEGRITY);
			assert_string_equal(error.message, first_sentence);
		}
		assert_int_equal(pkcs11_oaep_sha256_decode(encoded, 65, label, label_length, out, sizeof out,
							   &out_length, &error),
				 LIC_PL_INTEGRITY);
	}
	EVP_PKEY_free(pkey);
}

/* ---- Against the token ------------------------------------------------------ */

static void test_rsa_open_and_public_key(void **state)
{
	(void)state;
	NEED_SOFTHSM();
	struct pkcs11_key *key = open_key(RSA_URI, PKCS11_KEY_RSA);
	assert_int_equal(pkcs11_key_bits(key), 2048);
	uint8_t *der = NULL;
	size_t length = 0;
	lic_error error = {0};
	assert_int_equal(pkcs11_key_public_der(key, &der, &length, &error), LIC_OK);
	const unsigned char *cursor = der;
	EVP_PKEY *pkey = d2i_PUBKEY(NULL, &cursor, (long)length);
	assert_non_null(pkey);
	assert_int_equal(EVP_PKEY_get_bits(pkey), 2048);
	assert_int_equal(EVP_PKEY_get_base_id(pkey), EVP_PKEY_RSA);
	/* OpenSSL re-encodes it to the same bytes */
	unsigned char *again = NULL;
	int again_length = i2d_PUBKEY(pkey, &again);
	assert_int_equal(again_length, (int)length);
	assert_memory_equal(again, der, length);
	OPENSSL_free(again);
	EVP_PKEY_free(pkey);
	free(der);
	/* the same key by label alone, by id alone, through pin-source */
	pkcs11_key_free(open_key(TOKEN ";object=rsa-one?pin-value=" PIN, PKCS11_KEY_RSA));
	pkcs11_key_free(open_key(TOKEN ";id=%01?pin-value=" PIN, PKCS11_KEY_RSA));
	char pin_path[256];
	test_join_path(pin_path, sizeof pin_path, directory, "pin");
	FILE *file = fopen(pin_path, "w");
	assert_non_null(file);
	fputs(PIN "\n", file);
	fclose(file);
	assert_int_equal(chmod(pin_path, 0600), 0);
	char uri[512];
	snprintf(uri, sizeof uri, TOKEN ";object=rsa-one?pin-source=%s", pin_path);
	pkcs11_key_free(open_key(uri, PKCS11_KEY_RSA));
	snprintf(uri, sizeof uri, TOKEN ";object=rsa-one?pin-source=file:%s", pin_path);
	pkcs11_key_free(open_key(uri, PKCS11_KEY_RSA));
	snprintf(uri, sizeof uri, TOKEN ";object=rsa-one?pin-source=%s.missing", pin_path);
	struct pkcs11_key *none = NULL;
	assert_int_equal(pkcs11_key_open(uri, MODULE, PKCS11_KEY_RSA, &none, &error), LIC_IO);
	assert_null(none);
	pkcs11_key_free(key);
}

static void test_rsa_oaep(void **state)
{
	(void)state;
	NEED_SOFTHSM();
	struct pkcs11_key *key = open_key(RSA_URI, PKCS11_KEY_RSA);
	EVP_PKEY *pkey = token_public_key(key);
	uint8_t content_key[32];
	for (size_t i = 0; i < sizeof content_key; i++)
		content_key[i] = (uint8_t)(0xc0 + i);
	uint8_t ciphertext[256];
	size_t ciphertext_length = openssl_oaep_encrypt(pkey, label, sizeof label - 1, content_key,
							sizeof content_key, ciphertext, sizeof ciphertext);
	lic_error error = {0};
	uint8_t out[256];
	size_t out_length = 0;
	lic_status status = pkcs11_rsa_oaep_decrypt(key, label, sizeof label - 1, ciphertext,
						    ciphertext_length, out, sizeof out, &out_length, &error);
	if (status != LIC_OK)
		print_message("decrypt: %s\n", error.message);
	assert_int_equal(status, LIC_OK);
	assert_int_equal(out_length, sizeof content_key);
	assert_memory_equal(out, content_key, sizeof content_key);
	/* SoftHSM2 2.6 has no OAEP with SHA-256 and a label: raw RSA + our decoder */
	assert_true(pkcs11_key_uses_raw_rsa(key));

	const uint8_t wrong_label[] = "licensor content key v0";
	assert_int_equal(pkcs11_rsa_oaep_decrypt(key, wrong_label, sizeof wrong_label - 1, ciphertext,
						 ciphertext_length, out, sizeof out, &out_length, &error),
			 LIC_PL_INTEGRITY);
	assert_string_equal(error.message, "the content key could not be unwrapped");
	uint8_t altered[256];
	size_t flips[] = {0, 1, 128, 255};
	for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
		memcpy(altered, ciphertext, sizeof altered);
		altered[flips[i]] ^= 0x40;
		assert_int_equal(pkcs11_rsa_oaep_decrypt(key, label, sizeof label - 1, altered,
							 ciphertext_length, out, sizeof out, &out_length,
							 &error),
				 LIC_PL_INTEGRITY);
		assert_string_equal(error.message, "the content key could not be unwrapped");
	}
	assert_int_equal(pkcs11_rsa_oaep_decrypt(key, label, sizeof label - 1, ciphertext,
						 ciphertext_length - 1, out, sizeof out, &out_length, &error),
			 LIC_PL_INTEGRITY);
	/* a ciphertext above the modulus */
	memset(altered, 0xff, sizeof altered);
	assert_int_equal(pkcs11_rsa_oaep_decrypt(key, label, sizeof label - 1, altered, sizeof altered, out,
						 sizeof out, &out_length, &error),
			 LIC_PL_INTEGRITY);
	/* and the key still works after the failures */
	assert_int_equal(pkcs11_rsa_oaep_decrypt(key, label, sizeof label - 1, ciphertext, ciphertext_length,
						 out, sizeof out, &out_length, &error),
			 LIC_OK);
	assert_memory_equal(out, content_key, sizeof content_key);
	/* one caller at a time: one session, reused; failed ones were closed */
	assert_int_equal(pkcs11_key_pooled_sessions(key), 1);
	EVP_PKEY_free(pkey);
	pkcs11_key_free(key);
}

static void test_rsa_sign(void **state)
{
	(void)state;
	NEED_SOFTHSM();
	struct pkcs11_key *key = open_key(RSA_URI, PKCS11_KEY_RSA);
	EVP_PKEY *pkey = token_public_key(key);
	const uint8_t data[] = "<SignedInfo>licensor</SignedInfo>";
	uint8_t signature[512];
	size_t signature_length = 0;
	lic_error error = {0};
	assert_int_equal(pkcs11_rsa_sign_sha256(key, data, sizeof data - 1, signature, sizeof signature,
						&signature_length, &error),
			 LIC_OK);
	assert_int_equal(signature_length, 256);
	EVP_MD_CTX *context = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(context, NULL, EVP_sha256(), NULL, pkey), 1);
	assert_int_equal(EVP_DigestVerify(context, signature, signature_length, data, sizeof data - 1), 1);
	EVP_MD_CTX_free(context);
	/* a different message does not verify */
	context = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(context, NULL, EVP_sha256(), NULL, pkey), 1);
	assert_int_not_equal(EVP_DigestVerify(context, signature, signature_length, data, sizeof data - 2),
			     1);
	EVP_MD_CTX_free(context);
	assert_int_equal(
	    pkcs11_rsa_sign_sha256(key, data, sizeof data - 1, signature, 100, &signature_length, &error),
	    LIC_INTERNAL);
	EVP_PKEY_free(pkey);
	pkcs11_key_free(key);
}

static void test_aes(void **state)
{
	(void)state;
	NEED_SOFTHSM();
	struct pkcs11_key *key = open_key(AES_URI, PKCS11_KEY_AES);
	assert_int_equal(pkcs11_key_bits(key), 256);
	uint8_t kek[32];
	for (size_t i = 0; i < sizeof kek; i++)
		kek[i] = (uint8_t)(i ^ 0x33);
	uint8_t *sealed = NULL;
	size_t sealed_length = 0;
	lic_error error = {0};
	assert_int_equal(pkcs11_aes_encrypt(key, kek, sizeof kek, &sealed, &sealed_length, &error), LIC_OK);
	/* SoftHSM2 2.6.1 has AES-GCM: tag 1, 12-byte IV, ciphertext, 16-byte GCM tag */
	assert_int_equal(sealed[0], 1);
	assert_int_equal(sealed_length, 1 + 12 + sizeof kek + 16);
	assert_memory_not_equal(sealed + sealed_length - sizeof kek, kek, sizeof kek);
	uint8_t *plain = NULL;
	size_t plain_length = 0;
	assert_int_equal(pkcs11_aes_decrypt(key, sealed, sealed_length, &plain, &plain_length, &error),
			 LIC_OK);
	assert_int_equal(plain_length, sizeof kek);
	assert_memory_equal(plain, kek, sizeof kek);
	secure_free(plain, plain_length);
	/* two seals of the same plaintext differ (fresh IV) */
	uint8_t *second = NULL;
	size_t second_length = 0;
	assert_int_equal(pkcs11_aes_encrypt(key, kek, sizeof kek, &second, &second_length, &error), LIC_OK);
	assert_int_equal(second_length, sealed_length);
	assert_memory_not_equal(second, sealed, sealed_length);
	free(second);
	/* altered anywhere: refused */
	for (size_t position = 0; position < sealed_length; position += 7) {
		sealed[position] ^= 0x10;
		plain = NULL;
		lic_status status =
		    pkcs11_aes_decrypt(key, sealed, sealed_length, &plain, &plain_length, &error);
		assert_int_equal(status, LIC_INTERNAL);
		assert_null(plain);
		sealed[position] ^= 0x10;
	}
	assert_int_equal(pkcs11_aes_decrypt(key, sealed, sealed_length - 1, &plain, &plain_length, &error),
			 LIC_INTERNAL);
	assert_int_equal(pkcs11_aes_decrypt(key, sealed, 3, &plain, &plain_length, &error), LIC_INTERNAL);
	/* tag 2 (AES-CBC-PAD, unauthenticated) is not this key's mode: refused by
	 * name before the token sees it, whatever follows the tag */
	uint8_t cbc[1 + 16 + 48];
	memset(cbc, 0x5a, sizeof cbc);
	cbc[0] = 2;
	plain = NULL;
	assert_int_equal(pkcs11_aes_decrypt(key, cbc, sizeof cbc, &plain, &plain_length, &error),
			 LIC_INTERNAL);
	assert_non_null(strstr(error.message, "mode 2"));
	assert_null(plain);
	/* still fine afterwards */
	assert_int_equal(pkcs11_aes_decrypt(key, sealed, sealed_length, &plain, &plain_length, &error),
			 LIC_OK);
	assert_memory_equal(plain, kek, sizeof kek);
	secure_free(plain, plain_length);
	free(sealed);
	/* the wrong kinds */
	uint8_t out[8];
	size_t out_length;
	assert_int_equal(
	    pkcs11_rsa_oaep_decrypt(key, label, 1, out, sizeof out, out, sizeof out, &out_length, &error),
	    LIC_USAGE);
	struct pkcs11_key *none = NULL;
	assert_int_equal(pkcs11_key_open(AES_URI, MODULE, PKCS11_KEY_RSA, &none, &error), LIC_UNKNOWN_KEY);
	assert_null(none);
	pkcs11_key_free(key);
}

static void test_refusals(void **state)
{
	(void)state;
	NEED_SOFTHSM();
	struct pkcs11_key *key = NULL;
	lic_error error = {0};
	/* wrong PIN: the CKR name, never the PIN */
	assert_int_equal(
	    pkcs11_key_open(TOKEN ";object=rsa-one?pin-value=4321zq", MODULE, PKCS11_KEY_RSA, &key, &error),
	    LIC_INTERNAL);
	assert_null(key);
	assert_non_null(strstr(error.message, "CKR_PIN_INCORRECT"));
	assert_null(strstr(error.message, "4321zq"));
	/* recognisable, so that nobody retries it automatically */
	assert_true(pkcs11_error_is_pin(&error));
	/* no PIN at all */
	assert_int_equal(pkcs11_key_open(TOKEN ";object=rsa-one", MODULE, PKCS11_KEY_RSA, &key, &error),
			 LIC_USAGE);
	/* unknown object, unknown token */
	assert_int_equal(
	    pkcs11_key_open(TOKEN ";object=nobody?pin-value=" PIN, MODULE, PKCS11_KEY_RSA, &key, &error),
	    LIC_UNKNOWN_KEY);
	assert_null(strstr(error.message, PIN));
	assert_false(pkcs11_error_is_pin(&error));
	assert_int_equal(pkcs11_key_open(TOKEN ";object=rsa-one;id=%09?pin-value=" PIN, MODULE,
					 PKCS11_KEY_RSA, &key, &error),
			 LIC_UNKNOWN_KEY);
	assert_int_equal(pkcs11_key_open("pkcs11:token=elsewhere;object=rsa-one?pin-value=" PIN, MODULE,
					 PKCS11_KEY_RSA, &key, &error),
			 LIC_UNKNOWN_KEY);
	/* type= must agree with the kind asked for */
	assert_int_equal(pkcs11_key_open(TOKEN ";object=aes-one;type=private?pin-value=" PIN, MODULE,
					 PKCS11_KEY_AES, &key, &error),
			 LIC_USAGE);
	pkcs11_key_free(open_key(TOKEN ";object=aes-one;type=secret-key?pin-value=" PIN, PKCS11_KEY_AES));
	/* modules */
	assert_int_equal(pkcs11_key_open(RSA_URI, "/nonexistent/libnothing.so", PKCS11_KEY_RSA, &key, &error),
			 LIC_IO);
	assert_int_equal(pkcs11_key_open(RSA_URI, "libsofthsm2.so", PKCS11_KEY_RSA, &key, &error), LIC_USAGE);
	/* the URI's module-path is used when no module is given */
	pkcs11_key_free(open_key(RSA_URI "&module-path=" MODULE, PKCS11_KEY_RSA));
	assert_int_equal(
	    pkcs11_key_open(RSA_URI "&module-path=/nonexistent/x.so", NULL, PKCS11_KEY_RSA, &key, &error),
	    LIC_IO);
	/* keygen: an existing label, no label, bad size */
	assert_int_equal(pkcs11_generate_rsa(RSA_URI, MODULE, 2048, &error), LIC_STATE);
	assert_int_equal(pkcs11_generate_aes(AES_URI, MODULE, &error), LIC_STATE);
	assert_int_equal(pkcs11_generate_aes(TOKEN ";id=%07?pin-value=" PIN, MODULE, &error), LIC_USAGE);
	assert_int_equal(pkcs11_generate_rsa(TOKEN ";object=x?pin-value=" PIN, MODULE, 1000, &error),
			 LIC_USAGE);
	assert_null(key);
}

struct decrypt_worker {
	struct pkcs11_key *key;
	const uint8_t *ciphertext;
	size_t ciphertext_length;
	const uint8_t *expected;
	size_t expected_length;
	int correct;
};

static void *decrypt_many(void *argument)
{
	struct decrypt_worker *worker = argument;
	for (int i = 0; i < 200; i++) {
		uint8_t out[256];
		size_t out_length = 0;
		lic_error error = {0};
		if (pkcs11_rsa_oaep_decrypt(worker->key, label, sizeof label - 1, worker->ciphertext,
					    worker->ciphertext_length, out, sizeof out, &out_length,
					    &error) == LIC_OK &&
		    out_length == worker->expected_length && memcmp(out, worker->expected, out_length) == 0)
			worker->correct++;
	}
	return NULL;
}

static void test_concurrent_decrypts(void **state)
{
	(void)state;
	NEED_SOFTHSM();
	struct pkcs11_key *key = open_key(RSA_URI, PKCS11_KEY_RSA);
	EVP_PKEY *pkey = token_public_key(key);
	uint8_t messages[4][32];
	uint8_t ciphertexts[4][256];
	struct decrypt_worker workers[4];
	pthread_t threads[4];
	for (int t = 0; t < 4; t++) {
		memset(messages[t], 0x10 * (t + 1), sizeof messages[t]);
		size_t length =
		    openssl_oaep_encrypt(pkey, label, sizeof label - 1, messages[t], sizeof messages[t],
					 ciphertexts[t], sizeof ciphertexts[t]);
		workers[t] =
		    (struct decrypt_worker){key, ciphertexts[t], length, messages[t], sizeof messages[t], 0};
	}
	for (int t = 0; t < 4; t++)
		assert_int_equal(pthread_create(&threads[t], NULL, decrypt_many, &workers[t]), 0);
	for (int t = 0; t < 4; t++)
		assert_int_equal(pthread_join(threads[t], NULL), 0);
	for (int t = 0; t < 4; t++)
		assert_int_equal(workers[t].correct, 200);
	/* the pool grew to at most one session per thread, and kept them */
	size_t pooled = pkcs11_key_pooled_sessions(key);
	assert_true(pooled >= 1 && pooled <= 4);
	EVP_PKEY_free(pkey);
	pkcs11_key_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uri_check),
	    cmocka_unit_test(test_uri_check_storable),
	    cmocka_unit_test(test_uri_redacted),
	    cmocka_unit_test(test_uri_without_pin),
	    cmocka_unit_test(test_uri_with_module),
	    cmocka_unit_test(test_oaep_decoder),
	    cmocka_unit_test(test_rsa_open_and_public_key),
	    cmocka_unit_test(test_rsa_oaep),
	    cmocka_unit_test(test_rsa_sign),
	    cmocka_unit_test(test_aes),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_concurrent_decrypts),
	    cmocka_unit_test(test_pin_source),
	    cmocka_unit_test(test_broken_key),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
