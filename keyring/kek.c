/*
 * kek.c: loading or deriving the KEK, its check value, and AES-256-GCM
 * sealing. The KEK never leaves secure memory and never appears in a message.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "error.h"
#include "file_io.h"
#include "kek.h"
#include "secure_memory.h"

struct kek {
	uint8_t key[KEK_LENGTH];
};

const struct scrypt_parameters scrypt_default_parameters = {.n = 1u << 15, .r = 8, .p = 1};

static struct kek *kek_alloc(void)
{
	return secure_alloc(sizeof(struct kek));
}

void kek_free(struct kek *kek)
{
	secure_free(kek, sizeof *kek);
}

lic_status kek_from_token(struct pkcs11_key *token, const uint8_t *wrapped, size_t wrapped_length,
			  struct kek **out, lic_error *error)
{
	uint8_t *plaintext = NULL;
	size_t length = 0;
	lic_status status = pkcs11_aes_decrypt(token, wrapped, wrapped_length, &plaintext, &length, error);
	if (status != LIC_OK)
		return status;
	struct kek *kek = length == KEK_LENGTH ? kek_alloc() : NULL;
	if (kek == NULL) {
		status = lic_error_set(error, length == KEK_LENGTH ? LIC_INTERNAL : LIC_MALFORMED,
				       length == KEK_LENGTH ? "out of secure memory"
							    : "the token-wrapped KEK has the wrong length");
	} else {
		memcpy(kek->key, plaintext, KEK_LENGTH);
		*out = kek;
	}
	secure_free(plaintext, length);
	return status;
}

lic_status kek_create_in_token(struct pkcs11_key *token, struct kek **out, uint8_t **wrapped,
			       size_t *wrapped_length, lic_error *error)
{
	struct kek *kek = kek_alloc();
	if (kek == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of secure memory");
	lic_status status = LIC_OK;
	if (RAND_priv_bytes(kek->key, KEK_LENGTH) != 1)
		status = lic_error_set(error, LIC_INTERNAL, "random generator failed");
	else
		status = pkcs11_aes_encrypt(token, kek->key, KEK_LENGTH, wrapped, wrapped_length, error);
	if (status != LIC_OK)
		kek_free(kek);
	else
		*out = kek;
	return status;
}

lic_status kek_load_file(const char *path, struct kek **out, lic_error *error)
{
	lic_status status = LIC_OK;
	struct kek *kek = NULL;
	uint8_t extra;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return lic_error_set(error, LIC_IO, "cannot read KEK file %s: %s", path, strerror(errno));
	struct stat info;
	if (fstat(fd, &info) != 0)
		LIC_FAIL(error, LIC_IO, "cannot stat KEK file %s: %s", path, strerror(errno));
	if (!S_ISREG(info.st_mode))
		LIC_FAIL(error, LIC_IO, "KEK file %s is not a regular file", path);
	if (info.st_mode & 077)
		LIC_FAIL(error, LIC_IO, "KEK file %s is readable by others (mode %03o): chmod 600 it", path,
			 (unsigned)(info.st_mode & 0777));
	if (info.st_size != KEK_LENGTH)
		LIC_FAIL(error, LIC_IO, "KEK file %s must hold exactly %d bytes", path, KEK_LENGTH);
	kek = kek_alloc();
	if (kek == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of secure memory");
	if (read(fd, kek->key, KEK_LENGTH) != KEK_LENGTH || read(fd, &extra, 1) != 0)
		LIC_FAIL(error, LIC_IO, "cannot read KEK file %s", path);
	*out = kek;
	kek = NULL;
out:
	kek_free(kek);
	close(fd);
	return status;
}

lic_status kek_create_file(const char *path, struct kek **out, lic_error *error)
{
	lic_status status = LIC_OK;
	struct kek *kek = kek_alloc();
	int fd = -1;
	if (kek == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of secure memory");
	if (RAND_priv_bytes(kek->key, KEK_LENGTH) != 1)
		LIC_FAIL(error, LIC_INTERNAL, "random generator failed");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		LIC_FAIL(error, LIC_IO, "cannot create KEK file %s: %s", path, strerror(errno));
	if (fchmod(fd, 0600) != 0 || write(fd, kek->key, KEK_LENGTH) != KEK_LENGTH || fsync(fd) != 0) {
		int saved = errno;
		unlink(path);
		LIC_FAIL(error, LIC_IO, "cannot write KEK file %s: %s", path, strerror(saved));
	}
	/* The KEK's directory entry must survive a power loss with the store. */
	if (file_sync_parent(path, error) != LIC_OK) {
		unlink(path);
		status = LIC_IO;
		goto out;
	}
	*out = kek;
	kek = NULL;
out:
	if (fd >= 0)
		close(fd);
	kek_free(kek);
	return status;
}

lic_status kek_read_passphrase_file(const char *path, char **passphrase, size_t *length, lic_error *error)
{
	lic_status status = LIC_OK;
	char *buffer = secure_alloc(KEK_PASSPHRASE_MAX + 1);
	size_t used = 0;
	int fd = -1;
	if (buffer == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of secure memory");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		LIC_FAIL(error, LIC_IO, "cannot read passphrase file %s: %s", path, strerror(errno));
	for (;;) {
		ssize_t got = read(fd, buffer + used, KEK_PASSPHRASE_MAX + 1 - used);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			LIC_FAIL(error, LIC_IO, "cannot read passphrase file %s: %s", path, strerror(errno));
		if (got == 0)
			break;
		used += (size_t)got;
		if (used > KEK_PASSPHRASE_MAX)
			LIC_FAIL(error, LIC_TOO_LARGE, "passphrase file %s is longer than %d bytes", path,
				 KEK_PASSPHRASE_MAX);
	}
	char *newline = memchr(buffer, '\n', used);
	if (newline != NULL)
		used = (size_t)(newline - buffer);
	if (used > 0 && buffer[used - 1] == '\r')
		used--;
	if (used == 0)
		LIC_FAIL(error, LIC_USAGE, "passphrase file %s is empty", path);
	memset(buffer + used, 0, KEK_PASSPHRASE_MAX + 1 - used);
	*passphrase = buffer;
	*length = used;
	buffer = NULL;
out:
	if (fd >= 0)
		close(fd);
	secure_free(buffer, KEK_PASSPHRASE_MAX + 1);
	return status;
}

lic_status kek_from_passphrase(const char *passphrase, size_t passphrase_length,
			       const uint8_t salt[KEK_SALT_LENGTH],
			       const struct scrypt_parameters *parameters, struct kek **out, lic_error *error)
{
	lic_status status = LIC_OK;
	struct kek *kek = kek_alloc();
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *context = NULL;
	if (kek == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of secure memory");
	if (parameters->n < 2 || (parameters->n & (parameters->n - 1)) != 0 || parameters->n > (1u << 22) ||
	    parameters->r == 0 || parameters->r > 32 || parameters->p == 0 || parameters->p > 16)
		LIC_FAIL(error, LIC_MALFORMED, "scrypt parameters out of range");
	kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
	context = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	if (context == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "scrypt is not available");
	uint64_t n = parameters->n;
	uint32_t r = parameters->r, p = parameters->p;
	uint64_t max_memory = 1024ull * 1024 * 1024;
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)passphrase, passphrase_length),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, KEK_SALT_LENGTH),
	    OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
	    OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
	    OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
	    OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &max_memory),
	    OSSL_PARAM_construct_end(),
	};
	if (EVP_KDF_derive(context, kek->key, KEK_LENGTH, params) != 1)
		LIC_FAIL(error, LIC_INTERNAL, "scrypt derivation failed");
	*out = kek;
	kek = NULL;
out:
	EVP_KDF_CTX_free(context);
	EVP_KDF_free(kdf);
	kek_free(kek);
	return status;
}

void kek_check_value(const struct kek *kek, const char *store_id, uint8_t out[KEK_CHECK_LENGTH])
{
	static const char label[] = "licensor-kek-check-v1";
	uint8_t message[256];
	size_t id_length = strnlen(store_id, sizeof message - sizeof label);
	memcpy(message, label, sizeof label - 1);
	memcpy(message + sizeof label - 1, store_id, id_length);
	unsigned int length = KEK_CHECK_LENGTH;
	if (HMAC(EVP_sha256(), kek->key, KEK_LENGTH, message, sizeof label - 1 + id_length, out, &length) ==
	    NULL)
		memset(out, 0, KEK_CHECK_LENGTH); /* matches no real check value: the KEK is refused */
}

int kek_matches(const struct kek *kek, const char *store_id, const uint8_t expected[KEK_CHECK_LENGTH])
{
	uint8_t actual[KEK_CHECK_LENGTH];
	kek_check_value(kek, store_id, actual);
	return CRYPTO_memcmp(actual, expected, KEK_CHECK_LENGTH) == 0;
}

lic_status aes_gcm_seal(const uint8_t key[KEK_LENGTH], const uint8_t *aad, size_t aad_length,
			const uint8_t *plaintext, size_t plaintext_length, uint8_t **sealed,
			size_t *sealed_length, lic_error *error)
{
	lic_status status = LIC_OK;
	EVP_CIPHER_CTX *context = EVP_CIPHER_CTX_new();
	size_t total = plaintext_length + SEAL_OVERHEAD;
	uint8_t *buffer = malloc(total);
	int length = 0;
	if (context == NULL || buffer == NULL || plaintext_length > INT32_MAX || aad_length > INT32_MAX)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	if (RAND_bytes(buffer, SEAL_NONCE_LENGTH) != 1)
		LIC_FAIL(error, LIC_INTERNAL, "random generator failed");
	if (EVP_EncryptInit_ex(context, EVP_aes_256_gcm(), NULL, key, buffer) != 1 ||
	    EVP_EncryptUpdate(context, NULL, &length, aad, (int)aad_length) != 1 ||
	    EVP_EncryptUpdate(context, buffer + SEAL_NONCE_LENGTH, &length, plaintext,
			      (int)plaintext_length) != 1 ||
	    EVP_EncryptFinal_ex(context, buffer + SEAL_NONCE_LENGTH + length, &length) != 1 ||
	    EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LENGTH,
				buffer + SEAL_NONCE_LENGTH + plaintext_length) != 1)
		LIC_FAIL(error, LIC_INTERNAL, "AES-256-GCM seal failed");
	*sealed = buffer;
	*sealed_length = total;
	buffer = NULL;
out:
	EVP_CIPHER_CTX_free(context);
	free(buffer);
	return status;
}

lic_status aes_gcm_open(const uint8_t key[KEK_LENGTH], const uint8_t *aad, size_t aad_length,
			const uint8_t *sealed, size_t sealed_length, uint8_t **plaintext,
			size_t *plaintext_length, lic_error *error)
{
	lic_status status = LIC_OK;
	EVP_CIPHER_CTX *context = NULL;
	uint8_t *buffer = NULL;
	size_t length = 0;
	int chunk = 0;
	if (sealed_length < SEAL_OVERHEAD || sealed_length > INT32_MAX || aad_length > INT32_MAX)
		return lic_error_set(error, LIC_MALFORMED, "sealed value has an impossible length");
	length = sealed_length - SEAL_OVERHEAD;
	context = EVP_CIPHER_CTX_new();
	buffer = secure_alloc(length + 1);
	if (context == NULL || buffer == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of secure memory");
	if (EVP_DecryptInit_ex(context, EVP_aes_256_gcm(), NULL, key, sealed) != 1 ||
	    EVP_DecryptUpdate(context, NULL, &chunk, aad, (int)aad_length) != 1 ||
	    EVP_DecryptUpdate(context, buffer, &chunk, sealed + SEAL_NONCE_LENGTH, (int)length) != 1 ||
	    EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LENGTH,
				(void *)(sealed + SEAL_NONCE_LENGTH + length)) != 1 ||
	    EVP_DecryptFinal_ex(context, buffer + chunk, &chunk) != 1)
		LIC_FAIL(error, LIC_INTERNAL,
			 "integrity check failed (wrong key, wrong AAD or altered bytes)");
	*plaintext = buffer;
	*plaintext_length = length;
	buffer = NULL;
out:
	EVP_CIPHER_CTX_free(context);
	secure_free(buffer, length + 1);
	return status;
}

lic_status kek_seal(const struct kek *kek, const uint8_t *aad, size_t aad_length, const uint8_t *plaintext,
		    size_t plaintext_length, uint8_t **sealed, size_t *sealed_length, lic_error *error)
{
	return aes_gcm_seal(kek->key, aad, aad_length, plaintext, plaintext_length, sealed, sealed_length,
			    error);
}

lic_status kek_open(const struct kek *kek, const uint8_t *aad, size_t aad_length, const uint8_t *sealed,
		    size_t sealed_length, uint8_t **plaintext, size_t *plaintext_length, lic_error *error)
{
	if (sealed_length < SEAL_OVERHEAD)
		return lic_error_set(error, LIC_MALFORMED, "sealed key is too short");
	lic_status status = aes_gcm_open(kek->key, aad, aad_length, sealed, sealed_length, plaintext,
					 plaintext_length, error);
	if (status == LIC_INTERNAL)
		lic_error_set(error, LIC_INTERNAL,
			      "sealed key failed its integrity check (wrong KEK or altered file)");
	return status;
}
