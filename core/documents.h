/*
 * documents.h: the license documents of DESIGN.md §2, read and written with
 * libxml2: publishing licenses (PL), rights account certificates (RAC), use
 * licenses (UL), and the AcquireLicense request and response.
 *
 * Readers take untrusted bytes: size-capped, no DTD, no entities, no network,
 * every element checked for presence, uniqueness and namespace, and the
 * digests computed over what the document holds (exclusive C14N of its own
 * Body), never over a re-serialisation. Writers produce compact documents.
 * Parsing never checks signatures or keys: that is the pipeline's job, with
 * the keyring at hand.
 */
#ifndef LICENSOR_CORE_DOCUMENTS_H
#define LICENSOR_CORE_DOCUMENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libxml/tree.h>
#include <openssl/evp.h>

#include "core/policy.h"
#include "keyring/key_material.h"
#include "keyring/tenant.h"
#include "keyring/version_key.h"
#include "licensor.h"

#define CONTENT_KEY_LENGTH 32
#define DOCUMENT_MAX_BYTES (1024u * 1024) /* a whole AcquireLicense request */
#define CONTENT_ID_MAX 128
#define LICENSE_VALIDITY_DAYS_MAX 3650
#define ACQUIRE_MAX_ITEMS 100
#define ENABLING_BITS_ALGORITHM "RSA-OAEP-SHA256"

/* ---- Publishing license ---- */

struct publishing_license {
	char tenant[TENANT_NAME_MAX + 1];
	char content_id[CONTENT_ID_MAX + 1];
	int64_t issued_at;
	uint8_t key_id[KEY_ID_LENGTH];
	char key_id_hex[KEY_ID_HEX_LENGTH];
	struct policy policy;           /* owner and grants */
	int64_t content_valid_until;    /* 0 = no limit */
	uint32_t license_validity_days; /* offline validity of a UL */
	uint8_t body_digest[32];        /* SHA-256(exc-C14N(Body)): the OAEP label and the UL's
					   PublishingLicenseDigest */
	uint8_t *enabling_bits;         /* RSA-OAEP ciphertext, owned */
	size_t enabling_bits_length;
	uint8_t cache_key[32]; /* SHA-256(body digest ‖ enabling bits): the PL cache key */
};

/* Parses a PL from its own document node (the PublishingLicense element,
 * standalone or inside an AcquireLicense item). */
lic_status publishing_license_read(xmlDocPtr document, xmlNodePtr element, struct publishing_license *out,
				   lic_error *error);
void publishing_license_cleanup(struct publishing_license *license);

/* What `publish` needs to write a PL. */
struct publish_request {
	const char *tenant;
	const char *content_id;
	const char *owner;
	const char *const *grant_principals; /* parallel arrays */
	const char *const *grant_rights;     /* "VIEW PRINT" */
	size_t grant_count;
	int64_t content_valid_until; /* 0 = none */
	uint32_t license_validity_days;
	int64_t issued_at;
};

/* Writes a PL: builds the Body, canonicalises it, wraps content_key with
 * RSA-OAEP (SHA-256, MGF1-SHA-256, label = SHA-256(exc-C14N(Body))) to
 * `publishing_key` (public), and serialises. *xml is new (free()). */
lic_status publishing_license_write(const struct publish_request *request, EVP_PKEY *publishing_key,
				    const char *key_id_hex, const uint8_t content_key[CONTENT_KEY_LENGTH],
				    char **xml, size_t *length, lic_error *error);

/* ---- Rights account certificate ---- */

struct rights_account_certificate {
	char tenant[TENANT_NAME_MAX + 1];
	char principal[POLICY_PRINCIPAL_MAX + 1]; /* normalized (lowercase) */
	uint8_t *public_key_der;                  /* the user's key, SPKI DER, owned */
	size_t public_key_der_length;
	EVP_PKEY *public_key; /* decoded on demand (decode_key), owned */
	int64_t not_before, not_after;
	char signing_key_id_hex[KEY_ID_HEX_LENGTH];
	uint8_t digest[32]; /* SHA-256 of the RAC's exclusive C14N: the verified-RAC cache key */
	xmlDocPtr document; /* the RAC alone, for signature verification; owned */
};

/* Parses a RAC element (standalone or inside an item) into its own document;
 * the signature is checked later (rights_account_certificate_verify). */
lic_status rights_account_certificate_read(xmlDocPtr document, xmlNodePtr element,
					   struct rights_account_certificate *out, lic_error *error);
/* Decodes the user's public key into rac->public_key (RSA, 2048 to 8192
 * bits, else UNSUPPORTED_VERSION). Reading a RAC does not decode it: OpenSSL
 * 3.0's decoders cost about 100 µs, and a RAC seen before takes its decoded
 * key from the engine's RAC cache instead. */
lic_status rights_account_certificate_decode_key(struct rights_account_certificate *rac, lic_error *error);
/* Verifies the RAC's signature with the tenant public key of its KeyName. */
lic_status rights_account_certificate_verify(const struct rights_account_certificate *rac,
					     EVP_PKEY *tenant_key, lic_error *error);
void rights_account_certificate_cleanup(struct rights_account_certificate *rac);

lic_status rights_account_certificate_write(const char *tenant, const char *principal,
					    EVP_PKEY *user_public_key, int64_t not_before, int64_t not_after,
					    const struct version_key *signing_key,
					    const char *signing_key_id_hex, char **xml, size_t *length,
					    lic_error *error);

/* ---- Use license ---- */

struct use_license_fields {
	char license_id[37]; /* UUID */
	const char *tenant;
	const char *content_id;
	const char *principal;
	int64_t issued_at, not_after;
	const char *rights;                       /* canonical text */
	const uint8_t *publishing_license_digest; /* 32 bytes */
	const uint8_t *enabling_bits;             /* content key to the RAC key, label = LicenseId */
	size_t enabling_bits_length;
};

/* Builds and signs a UL document (not serialised: the caller signs and writes
 * it into a response). */
lic_status use_license_build(const struct use_license_fields *fields, const struct version_key *signing_key,
			     const char *signing_key_id_hex, xmlDocPtr *out, lic_error *error);

/* Client side (`licensor open`): parses a UL, unwraps its content key with
 * the user's private key. Does not check the tenant signature (use xmlsec1 or
 * use_license_verify for that). */
struct use_license {
	char license_id[37];
	char tenant[TENANT_NAME_MAX + 1];
	char content_id[CONTENT_ID_MAX + 1];
	char principal[POLICY_PRINCIPAL_MAX + 1];
	int64_t issued_at, not_after;
	char rights[POLICY_RIGHTS_TEXT_MAX];
	uint8_t *enabling_bits;
	size_t enabling_bits_length;
	xmlDocPtr document;
};
lic_status use_license_read(const char *xml, size_t length, struct use_license *out, lic_error *error);
lic_status use_license_open(const struct use_license *license, EVP_PKEY *user_private_key,
			    uint8_t content_key[CONTENT_KEY_LENGTH], lic_error *error);
void use_license_cleanup(struct use_license *license);
/* The use license of result `index` of an AcquireLicenseResponse, as a
 * document of its own (*xml: new buffer, free() it). A result holding an
 * Error is refused with that error's code and sentence; a response that is
 * not an AcquireLicenseResponse, or has no result `index`, is MALFORMED. */
lic_status acquire_response_use_license(const char *response, size_t length, uint64_t index, char **xml,
					size_t *xml_length, lic_error *error);

/* ---- RSA-OAEP (SHA-256, MGF1-SHA-256) with a label ---- */

lic_status oaep_wrap(EVP_PKEY *public_key, const uint8_t *label, size_t label_length,
		     const uint8_t *plaintext, size_t plaintext_length, uint8_t **ciphertext,
		     size_t *ciphertext_length, lic_error *error);
/* Unwraps into a caller buffer of CONTENT_KEY_LENGTH; a wrong key, label or
 * ciphertext is PL_INTEGRITY. */
lic_status oaep_unwrap(const struct version_key *private_key, const uint8_t *label, size_t label_length,
		       const uint8_t *ciphertext, size_t ciphertext_length,
		       uint8_t content_key[CONTENT_KEY_LENGTH], lic_error *error);

/* A document as UTF-8 text, written as it stands (no indentation added: a
 * signed document must not change). *xml is new (free()), NUL-terminated. */
lic_status document_serialize(xmlDocPtr document, char **xml, size_t *length, lic_error *error);

/* A random UUID v4 string. */
void document_new_uuid(char out[37]);

#endif
