/*
 * tenant_file.h: the XML form of one tenant's keyring (tenants/<name>.xml).
 *
 *   <Tenant xmlns="urn:licensor:v1" Format="1" Name="contoso" Disabled="false"
 *           CreatedAt="…" Revision="7">
 *     <SuperUser>admin@contoso.com</SuperUser>            (zero or more, first)
 *     <Version Number="1" KeyId="…" Algorithm="rsa-2048" Origin="managed"
 *              State="active" StateBeforeRevoke="active" Compromised="false"
 *              CreatedAt="…" ActivatedAt="…" …>
 *       <PublicKey>base64 SPKI DER</PublicKey>
 *       <SealedPrivateKey>base64 nonce ‖ AES-256-GCM(KEK, PKCS#8) ‖ tag</SealedPrivateKey>
 *       <Pkcs11Uri>…</Pkcs11Uri>                       (BYOK only)
 *     </Version>
 *     <Rollout Outcome="running" FromVersion="1" ToVersion="2" StartedAt="…"
 *              DurationSeconds="604800" EndedAt="…"/>
 *   </Tenant>
 *
 * Reading checks every invariant of tenant.h and that each key id is the
 * hash of its public key: a damaged or hand-edited file is refused, never
 * half-loaded.
 */
#ifndef LICENSOR_KEYRING_TENANT_FILE_H
#define LICENSOR_KEYRING_TENANT_FILE_H

#include "tenant.h"

#define TENANT_FILE_MAX_BYTES (64u * 1024 * 1024)

lic_status tenant_file_parse(const char *data, size_t length, const char *expected_name, struct tenant **out,
			     lic_error *error);
/* New buffer (xmlFree()). */
lic_status tenant_file_serialize(const struct tenant *tenant, char **out, size_t *length, lic_error *error);

/* The AAD of a sealed private key: tenant ‖ 0x00 ‖ version (4 bytes, big
 * endian) ‖ key id (16 bytes). Returns the length written (≤ 64 + 21). */
size_t tenant_private_key_aad(const char *tenant, uint32_t version, const uint8_t key_id[KEY_ID_LENGTH],
			      uint8_t out[TENANT_NAME_MAX + 1 + 4 + KEY_ID_LENGTH]);

#endif
