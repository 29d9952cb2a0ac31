/*
 * tpd.h: the trusted publishing domain (TPD) exchange of DESIGN.md §7: how
 * every version of a tenant's keyring leaves one store and enters another.
 *
 *   receiver: tpd_recipient_key_create  → PublicKey-<GUID>.txt, PrivateKey-<GUID>.txt
 *   service:  tpd_export                → TPD-<GUID>.xml (hybrid: RSA-OAEP-SHA256
 *                                         wraps one AES-256-GCM key)
 *   receiver: tpd_unwrap + tpd_exported_build
 *                                       → ExportedTPD-<GUID>.xml (scrypt(password)
 *                                         + AES-256-GCM), Password-<GUID>.txt
 *   receiver: tpd_exported_open + tpd_import_into_tenant (tpd_import.c)
 *
 * docs/tpd.md describes the three formats byte for byte.
 *
 * Promises: one GUID (random UUID v4, lowercase) names an exchange and is
 * inside every file; every AES-GCM AAD binds the GUID, the exported tenant,
 * the document's CreatedAt, the number of keys and (per key) the version
 * number, key id, algorithm, state, compromised mark and CreatedAt, so a
 * changed header or key attribute, a dropped, added or swapped key, or one
 * flipped byte is refused whole. Every decrypted private key is checked against its
 * public key and key id before it is returned. Plaintext private keys
 * (PKCS#8) and passwords live only in secure memory. Nothing here prints.
 */
#ifndef LICENSOR_KEYRING_TPD_H
#define LICENSOR_KEYRING_TPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "kek.h"
#include "tenant.h"

#define TPD_GUID_LENGTH 37 /* 36 characters and a NUL */
#define TPD_FILE_MAX_BYTES (32u * 1024 * 1024)
#define TPD_KEY_FILE_MAX_BYTES (64u * 1024)
#define TPD_KEYS_MAX 10000
#define TPD_PASSWORD_BYTES 24  /* 192 bits from RAND_bytes */
#define TPD_PASSWORD_LENGTH 32 /* base64url of 24 bytes, no padding */
#define TPD_PASSWORD_MAX 1024  /* longest password line accepted */
#define TPD_SCRYPT_N_MIN (1u << 10)
#define TPD_SCRYPT_N_MAX (1u << 20)
#define TPD_SCRYPT_R_MAX 16
#define TPD_SCRYPT_P_MAX 4
#define TPD_SALT_LENGTH 16

/* One exported version, decrypted. */
struct tpd_key {
	uint32_t number; /* the version number in the exporting store */
	uint8_t key_id[KEY_ID_LENGTH];
	char key_id_hex[KEY_ID_HEX_LENGTH];
	enum key_algorithm algorithm;
	lic_key_state state; /* in the exporting store, for information */
	bool compromised;
	int64_t created_at;
	uint8_t *public_key_der; /* SPKI, free() */
	size_t public_key_length;
	uint8_t *private_key_der; /* PKCS#8 in secure memory: secure_free(der, length) */
	size_t private_key_length;
};

/* The decrypted content of a TPD: what unwrap hands to the ExportedTPD and
 * what import reads back. */
struct tpd_contents {
	char guid[TPD_GUID_LENGTH];
	char *tenant; /* the exported tenant's name (free()) */
	int64_t created_at;
	struct tpd_key *keys;
	size_t key_count;
};

/* Wipes every private key and frees; NULL is a no-op. */
void tpd_contents_free(struct tpd_contents *contents);

/* A new random UUID v4, lowercase. */
lic_status tpd_guid_new(char guid[TPD_GUID_LENGTH], lic_error *error);
/* 8-4-4-4-12 lowercase hex with the version nibble 4. */
bool tpd_guid_valid(const char *guid);

/* Checks that the last component of `path` is exactly <prefix>-<guid><suffix>
 * (e.g. "TPD-", ".xml"). LIC_USAGE with a sentence naming both GUIDs if not. */
lic_status tpd_check_file_name(const char *path, const char *prefix, const char *suffix, const char *guid,
			       lic_error *error);
/* The GUID in a file name <prefix>-<guid><suffix>; LIC_USAGE when the name has
 * another form. */
lic_status tpd_guid_of_file_name(const char *path, const char *prefix, const char *suffix,
				 char guid[TPD_GUID_LENGTH], lic_error *error);

/* A new recipient key pair and GUID. *public_text is ordinary memory (free());
 * *private_text is in secure memory: secure_free(text, *private_length + 1).
 * Both are NUL-terminated. */
lic_status tpd_recipient_key_create(enum key_algorithm algorithm, char guid[TPD_GUID_LENGTH],
				    char **public_text, size_t *public_length, char **private_text,
				    size_t *private_length, lic_error *error);
/* Reads a PublicKey / PrivateKey file's text: the GUID line and the key. */
lic_status tpd_public_key_parse(const char *text, size_t length, char guid[TPD_GUID_LENGTH], EVP_PKEY **out,
				lic_error *error);
lic_status tpd_private_key_parse(const char *text, size_t length, char guid[TPD_GUID_LENGTH], EVP_PKEY **out,
				 lic_error *error);

/* Reads a PrivateKey file into secure memory and parses it (its mode is not
 * checked; the files this code writes are 0600). */
lic_status tpd_private_key_read_file(const char *path, char guid[TPD_GUID_LENGTH], EVP_PKEY **out,
				     lic_error *error);

/* The versions that an export takes: active and retained. A BYOK version in
 * one of those states refuses the whole export (LIC_NOT_EXPORTABLE). */
bool tpd_version_exported(const struct tenant *tenant, const struct key_version *version, int64_t now);

/* Builds TPD-<guid>.xml of every active and retained version of `tenant`,
 * opening each private key with `kek`, encrypted to `recipient` (a public
 * RSA key). *xml: new buffer (free()). *versions (optional): a new string
 * listing the exported version numbers, e.g. "1,2" (free()). A disabled
 * tenant may be exported (an unsubscribing organisation takes its keys). */
lic_status tpd_export(const struct tenant *tenant, const struct kek *kek, const char *guid,
		      EVP_PKEY *recipient, int64_t now, char **xml, size_t *xml_length, char **versions,
		      lic_error *error);

/* Decrypts a TPD with the recipient's private key. The document's GUID must
 * be expected_guid (when not NULL). */
lic_status tpd_unwrap(const char *xml, size_t xml_length, EVP_PKEY *recipient, const char *expected_guid,
		      struct tpd_contents **out, lic_error *error);

/* Builds ExportedTPD-<guid>.xml under a new random password. parameters NULL:
 * scrypt_default_parameters. *password: secure memory, NUL-terminated,
 * secure_free(password, TPD_PASSWORD_LENGTH + 1). *xml: free(). */
lic_status tpd_exported_build(const struct tpd_contents *contents, const struct scrypt_parameters *parameters,
			      char **password, char **xml, size_t *xml_length, lic_error *error);

/* The same document under a password the caller chose (1 to TPD_PASSWORD_MAX
 * bytes; the salt is still random). The product always goes through
 * tpd_exported_build, whose password is random; this is its second half,
 * there so that fixtures can be made under a known password
 * (tests/test_tpd.c writes the fuzz_tpd seeds with it). *xml: free(). */
lic_status tpd_exported_seal(const struct tpd_contents *contents, const struct scrypt_parameters *parameters,
			     const char *password, size_t password_length, char **xml, size_t *xml_length,
			     lic_error *error);

/* The one line of Password-<GUID>.txt: "<GUID>:<password>\n" (70 bytes). */
#define TPD_PASSWORD_LINE_LENGTH (36 + 1 + TPD_PASSWORD_LENGTH + 1)
void tpd_password_line(const char *guid, const char *password, char line[TPD_PASSWORD_LINE_LENGTH + 1]);
/* Splits a password line (without its newline) into its GUID, which must be
 * expected_guid (LIC_USAGE otherwise), and the password (*password points
 * into line). */
lic_status tpd_password_line_parse(const char *line, size_t length, const char *expected_guid,
				   const char **password, size_t *password_length, lic_error *error);

/* Opens an ExportedTPD with its password. The document's GUID must be
 * expected_guid (when not NULL). A wrong password is LIC_USAGE; an altered
 * document LIC_MALFORMED. */
lic_status tpd_exported_open(const char *xml, size_t xml_length, const char *password, size_t password_length,
			     const char *expected_guid, struct tpd_contents **out, lic_error *error);

/* Appends every key of `contents` to `tenant` as `retained`, numbered after
 * its versions, each sealed under `kek`. A key id the tenant already has is
 * LIC_STATE and the tenant is left as it was. *first_number receives the
 * number of the first imported version. */
lic_status tpd_import_into_tenant(struct tenant *tenant, const struct kek *kek,
				  const struct tpd_contents *contents, int64_t now, uint32_t *first_number,
				  lic_error *error);

/* ---- the store transactions (tpd_store.c) ---- */

struct admin_context;

/* Export: under the store lock, loads `tenant`, builds its TPD for
 * `recipient`, writes it to `path` (file_write_new) and appends the audit
 * event "export" (GUID and version list). *versions as in tpd_export;
 * *key_ids (optional): a new text with one line "version N key-id HEX" per
 * exported version (free()), for the operator to compare with the
 * receiving side. */
lic_status tpd_export_to_file(const struct admin_context *context, const char *tenant, EVP_PKEY *recipient,
			      const char *guid, const char *path, char **versions, char **key_ids,
			      lic_error *error);

/* Import: under the store lock, loads `tenant` (or creates it, with no active
 * version, when the store has none), appends every key as retained, saves
 * and appends the audit event "import". A refusal writes nothing. */
lic_status tpd_import_to_store(const struct admin_context *context, const char *tenant,
			       const struct tpd_contents *contents, uint32_t *first_number, bool *created,
			       lic_error *error);

#endif
