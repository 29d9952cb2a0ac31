/*
 * rewrap.h: moving publishing licenses from an older key version of their
 * tenant to the tenant's current one (DESIGN.md §7, `licensor rewrap`), so
 * that the older version can be revoked or destroyed without losing content.
 *
 * What a rewrap changes in a PL: the Body's KeyId and the EnablingBits, and
 * nothing else. The policy, the ids and the times stay as they were, byte for
 * byte, since the document is edited in place rather than written anew. The
 * content key is unwrapped with the old version's private key, held only in
 * secure memory (secure_memory.h) and wiped at once, and wrapped again to the
 * target's public key with the OAEP label that every reader computes:
 * SHA-256 of the exclusive C14N of the new Body.
 *
 * rewrap_files is all or nothing for the outputs: every input is read,
 * checked and rewrapped in memory before the first output file is written,
 * and a refusal names the file at fault and writes nothing.
 */
#ifndef LICENSOR_CORE_REWRAP_H
#define LICENSOR_CORE_REWRAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "core/documents.h"
#include "keyring/admin.h"
#include "keyring/tenant.h"
#include "licensor.h"

/* At most this many PLs in one rewrap (they are all held in memory). */
#define REWRAP_MAX_FILES 100000

/* The version a rewrap moves PLs to. */
struct rewrap_target {
	EVP_PKEY *public_key; /* borrowed */
	char key_id_hex[KEY_ID_HEX_LENGTH];
};

/* Rewraps one PL document (xml, length bytes) of `tenant` whose content key
 * is wrapped to the version of `old_private_key` (borrowed). On success
 * *out is a new NUL-terminated document (free()) of *out_length bytes that
 * names target->key_id_hex and wraps the same content key to
 * target->public_key. Refusals: MALFORMED / UNSUPPORTED_VERSION for a bad
 * document, USAGE for a PL of another tenant, PL_INTEGRITY when the content
 * key does not unwrap (an altered Body or EnablingBits, or the wrong key). */
lic_status rewrap_document(const char *xml, size_t length, const char *tenant,
			   const struct version_key *old_private_key, const struct rewrap_target *target,
			   char **out, size_t *out_length, lic_error *error);

/* How many PLs came from one old version. */
struct rewrap_source_count {
	uint32_t version;
	size_t count;
};

struct rewrap_summary {
	size_t files;           /* inputs */
	size_t rewrapped;       /* rewritten to the target */
	size_t already_current; /* already under the target: copied unchanged */
	uint32_t target_version;
	char target_key_id_hex[KEY_ID_HEX_LENGTH];
	struct rewrap_source_count *sources; /* one per old version, ascending; owned */
	size_t source_count;
};
void rewrap_summary_cleanup(struct rewrap_summary *summary);

/* Called after every PL rewrapped in memory (done of total). */
typedef void (*rewrap_progress_function)(size_t done, size_t total, void *argument);

/* The whole operation behind `licensor rewrap TENANT --out DIR PL-FILE…`:
 * under the store's lock, with the audit log checked first, it reads every
 * file, checks that it is a PL of `tenant` under a version that still
 * unwraps (else KEY_REVOKED / KEY_DESTROYED / UNKNOWN_KEY naming the file),
 * rewraps the ones not already under the target (the newest active, not
 * compromised version) opening each old private key once, then creates
 * out_dir (0700) if needed, writes DIR/<basename of each input> atomically
 * and appends one "rewrap" audit event. An out_dir that is the directory of
 * an input, or two inputs with the same basename, is USAGE. On success
 * *summary is filled (rewrap_summary_cleanup). */
lic_status rewrap_files(const struct admin_context *context, const char *tenant, const char *out_dir,
			const char *const *paths, size_t count, rewrap_progress_function progress,
			void *progress_argument, struct rewrap_summary *summary, lic_error *error);

#endif
