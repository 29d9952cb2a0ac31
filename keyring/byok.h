/*
 * byok.h: key versions whose private key lives in a PKCS#11 token (bring
 * your own key, DESIGN.md §1, §4, §7).
 *
 * A BYOK version records the token key's public key, its key id and its
 * PKCS#11 URI (with the module path when one was given); never a private
 * key. Before such a version is accepted, the token proves that it holds the
 * private half and that it does what issuance needs: it unwraps a test value
 * wrapped here with RSA-OAEP-SHA256 and a label, and its RSA-SHA256
 * signature verifies under the public key read from it.
 */
#ifndef LICENSOR_KEYRING_BYOK_H
#define LICENSOR_KEYRING_BYOK_H

#include "tenant.h"

/* Fills `version` (number set, origin BYOK, algorithm from the modulus,
 * public key, key id, byok_uri) from the token key `uri` names. rsa-1024 and
 * other sizes are LIC_UNSUPPORTED_VERSION; a token that fails the proof is
 * LIC_INTERNAL. On failure version is left zeroed. Release with
 * byok_version_cleanup unless ownership passed to a tenant. */
lic_status byok_version_from_token(const char *uri, const char *module_path, uint32_t number,
				   struct key_version *version, lic_error *error);
void byok_version_cleanup(struct key_version *version);

#endif
