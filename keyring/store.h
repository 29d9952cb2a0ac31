/*
 * store.h: the embedded file store of DESIGN.md §4.
 *
 *   <store>/world.xml          store id, KEK source, KEK check value, format
 *   <store>/tenants/<t>.xml    one keyring per tenant (tenant_file.h)
 *   <store>/audit.log          hash-chained audit log (audit.h), audit.head
 *   <store>/lock               the writers' exclusive lock (flock)
 *
 * Promises: the KEK is checked against world.xml before any tenant file is
 * read or written; every write is atomic (file_io.h) and made under the
 * exclusive lock; files are 0600 and directories 0700. Readers do not lock.
 */
#ifndef LICENSOR_KEYRING_STORE_H
#define LICENSOR_KEYRING_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "kek.h"
#include "tenant.h"

#define WORLD_FILE_MAX_BYTES (64u * 1024)
#define STORE_ID_LENGTH 37 /* a UUID and a NUL */

enum kek_source { KEK_SOURCE_FILE, KEK_SOURCE_PASSPHRASE, KEK_SOURCE_PKCS11 };

struct world {
	char store_id[STORE_ID_LENGTH];
	int64_t created_at;
	enum kek_source kek_source;
	char *kek_path;       /* absolute; KEK_SOURCE_FILE only */
	char *kek_uri;        /* KEK_SOURCE_PKCS11: the token AES key (RFC 7512 URI) */
	uint8_t *wrapped_kek; /* KEK_SOURCE_PKCS11: the KEK wrapped by that key */
	size_t wrapped_kek_length;
	uint8_t salt[KEK_SALT_LENGTH];
	struct scrypt_parameters scrypt;
	uint8_t kek_check[KEK_CHECK_LENGTH];
};

struct store {
	char *directory;
	struct world world;
	struct kek *kek;
	int lock_fd; /* ≥ 0 while this process holds the exclusive lock */
};

struct store_options {
	const char *directory;       /* required */
	const char *kek_file;        /* init: where to create/read the KEK; open: overrides world.xml */
	const char *passphrase_file; /* a passphrase store: the file holding it */
	const char *pkcs11_uri;      /* init: the token AES key that guards the KEK */
	const char
	    *pkcs11_module;     /* init/open: the module (else LICENSOR_PKCS11_MODULE, the URI's, p11-kit) */
	const lic_clock *clock; /* init: creation time; NULL = system */
};

/* The KEK file used when init gets neither flag: "<store>.kek", beside the store. */
lic_status store_default_kek_path(const char *directory, char *out, size_t size, lic_error *error);

/* Creates a new store: the directory (0700), tenants/, world.xml, and the KEK
 * file when it does not exist. Refuses a directory that already holds a
 * world.xml. With passphrase_file the KEK is derived with scrypt instead. */
lic_status store_init(const struct store_options *options, struct store **out, lic_error *error);

/* Opens an existing store and checks its KEK. */
lic_status store_open(const struct store_options *options, struct store **out, lic_error *error);
void store_close(struct store *store);

/* Takes the exclusive writer lock (waits for another writer). */
lic_status store_lock(struct store *store, lic_error *error);
/* Takes the exclusive writer lock only if no other writer holds it: never
 * waits. *taken says whether this call (or an earlier one) holds it. */
lic_status store_try_lock(struct store *store, bool *taken, lic_error *error);
void store_unlock(struct store *store);

lic_status store_tenant_path(const struct store *store, const char *name, char *out, size_t size,
			     lic_error *error);
bool store_tenant_exists(const struct store *store, const char *name);
/* Reads and checks tenants/<name>.xml. LIC_UNKNOWN_TENANT when absent. */
lic_status store_load_tenant(const struct store *store, const char *name, struct tenant **out,
			     lic_error *error);
/* Bumps the revision and replaces the file atomically (FILE_WRITE_* flags). */
lic_status store_save_tenant(const struct store *store, struct tenant *tenant, int flags, lic_error *error);
/* Sorted tenant names (free each, then the array). */
lic_status store_list_tenants(const struct store *store, char ***names, size_t *count, lic_error *error);

/* Seals a version's private key under the KEK with the AAD of §4. */
lic_status store_seal_private_key(const struct kek *kek, const char *tenant, struct key_version *version,
				  EVP_PKEY *key, lic_error *error);
/* Decrypts a managed version's private key. */
lic_status store_open_private_key(const struct kek *kek, const char *tenant,
				  const struct key_version *version, EVP_PKEY **out, lic_error *error);

/* Fills version (number unset) with a new key pair of `algorithm`, sealed. */
lic_status store_generate_version(const struct kek *kek, const char *tenant, uint32_t number,
				  enum key_algorithm algorithm, struct key_version *version,
				  lic_error *error);

#endif
