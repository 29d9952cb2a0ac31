/*
 * tenant.h: the in-memory model of one tenant's keyring: its versions with
 * their states, flags and timestamps, and its rollout.
 *
 * Invariants a reader may rely on (lifecycle.c keeps them):
 *   - versions[i].number == i + 1: versions are numbered 1, 2, 3 … with no gap
 *     and are never removed (a destroyed version keeps its public key and id);
 *   - at most two versions are `active`, and two only while the rollout
 *     `from_version → to_version` is unfinished in the file;
 *   - a compromised version is never `active` or `pending`;
 *   - a destroyed version holds no private key material.
 */
#ifndef LICENSOR_KEYRING_TENANT_H
#define LICENSOR_KEYRING_TENANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "key_material.h"
#include "licensor.h"

#define TENANT_NAME_MAX 63
#define TENANT_VERSION_MAX 100000

enum key_origin { KEY_ORIGIN_MANAGED, KEY_ORIGIN_BYOK };

struct key_version {
	uint32_t number;
	uint8_t key_id[KEY_ID_LENGTH];
	char key_id_hex[KEY_ID_HEX_LENGTH];
	enum key_algorithm algorithm;
	enum key_origin origin;
	lic_key_state state;
	lic_key_state state_before_revoke; /* what reinstate returns to */
	bool compromised;
	int64_t created_at, activated_at, retained_at, revoked_at, reinstated_at, destroyed_at,
	    compromised_at;
	uint8_t *public_key_der; /* SPKI */
	size_t public_key_length;
	uint8_t *sealed_private_key; /* kek_seal output; NULL when destroyed or BYOK */
	size_t sealed_private_key_length;
	char *byok_uri; /* PKCS#11 URI of a BYOK version, else NULL */
};

enum rollout_outcome {
	ROLLOUT_NONE,       /* never re-keyed */
	ROLLOUT_RUNNING,    /* unfinished in the file (it may be complete by the clock) */
	ROLLOUT_COMPLETED,  /* the from version became retained */
	ROLLOUT_ABORTED,    /* the to version was revoked mid-rollout; from stayed active */
	ROLLOUT_SUPERSEDED, /* an `activate` chose another version mid-rollout */
};

struct tenant_rollout {
	enum rollout_outcome outcome;
	uint32_t from_version; /* 0: there was no active version to roll from */
	uint32_t to_version;
	int64_t started_at;
	int64_t duration_s;
	int64_t ended_at; /* when the outcome was recorded; 0 while running */
};

struct key_id_slot {
	uint8_t key_id[KEY_ID_LENGTH];
	uint32_t version_index; /* index into versions + 1; 0 = empty */
};

struct tenant {
	char *name;
	bool disabled;
	int64_t created_at;
	uint64_t revision; /* +1 on every save */
	struct key_version *versions;
	size_t version_count;
	size_t version_capacity;
	struct tenant_rollout rollout;
	/* Addresses (lowercase) that get every right on every PL of the tenant. */
	char **super_users;
	size_t super_user_count;
	/* Open-addressing index of key ids, the key id inline so that a probe
	 * compares without leaving the index; version_index 0 = empty slot. */
	struct key_id_slot *key_id_slots;
	size_t key_id_slot_count; /* a power of two, at least 2 × version_count */
};

/* Tenant names: 1–63 characters of [a-z0-9.-], starting with a letter or digit. */
bool tenant_name_valid(const char *name);

struct tenant *tenant_new(const char *name, int64_t now);
/* Frees versions and wipes their sealed keys. NULL is a no-op. */
void tenant_free(struct tenant *tenant);

/* Appends a version with the next number; takes ownership of the buffers on
 * success. Rebuilds the key id index. */
lic_status tenant_append_version(struct tenant *tenant, const struct key_version *version, lic_error *error);
/* Appends without touching the index: for building a tenant in bulk (the file
 * reader), which calls tenant_index_key_ids once at the end. Until then
 * tenant_find_key_id does not see the new versions. */
lic_status tenant_push_version(struct tenant *tenant, const struct key_version *version, lic_error *error);
/* Rebuilds the key id index (after loading). LIC_MALFORMED on a duplicate key id. */
lic_status tenant_index_key_ids(struct tenant *tenant, lic_error *error);

#define TENANT_SUPER_USERS_MAX 64
#define TENANT_SUPER_USER_LENGTH_MAX 320

/* Adds or removes a super-user address (already normalized by the caller).
 * Adding one that is there, or removing one that is not, is LIC_STATE. */
lic_status tenant_add_super_user(struct tenant *tenant, const char *address, lic_error *error);
lic_status tenant_remove_super_user(struct tenant *tenant, const char *address, lic_error *error);

/* Version by number, NULL if absent. */
struct key_version *tenant_version(const struct tenant *tenant, uint32_t number);
/* Version by key id in O(1), NULL if absent. */
const struct key_version *tenant_find_key_id(const struct tenant *tenant,
					     const uint8_t key_id[KEY_ID_LENGTH]);

/* True when tenant_effective_state of this version needs the clock. */
bool tenant_state_depends_on_clock(const struct tenant *tenant, const struct key_version *version);

/* Effective state at `now`: a `from` version whose rollout is complete by the
 * clock reads as retained even before a writer records it. */
lic_key_state tenant_effective_state(const struct tenant *tenant, const struct key_version *version,
				     int64_t now);

/* Whether `version` may unwrap content at `now`: LIC_OK for active and
 * retained (compromised included); KEY_REVOKED for revoked and pending,
 * KEY_DESTROYED for destroyed, each with a sentence naming the version. */
lic_status tenant_version_usable_for_unwrap(const struct tenant *tenant, const struct key_version *version,
					    int64_t now, lic_error *error);

/* The version that signs licenses: the newest effective-active, not
 * compromised version; NULL when there is none (all issuance stops). */
const struct key_version *tenant_signing_version(const struct tenant *tenant, int64_t now);

/* ---- rollout (rollout.c) ---- */

/* 0 ≤ threshold ≤ 10000: a client is in the new cohort when bucket < threshold.
 * threshold = floor(10000 × (now − t0) / D), computed exactly in integers. */
uint32_t rollout_threshold(const struct tenant_rollout *rollout, int64_t now);
double rollout_fraction(const struct tenant_rollout *rollout, int64_t now);
bool rollout_complete(const struct tenant_rollout *rollout, int64_t now);

/* The publishing key for a client at `now`: during a running rollout the to
 * version for clients in the new cohort, the from version for the others;
 * otherwise the active version. A NULL client_id counts as the old cohort
 * until the rollout completes. NULL when the tenant has no version to publish
 * to (all revoked, or disabled is the caller's check). */
const struct key_version *rollout_select_publishing_version(const struct tenant *tenant,
							    const char *client_id, int64_t now);

/* ---- lifecycle (lifecycle.c): every operation checks, then changes ---- */

struct rekey_request {
	enum key_algorithm algorithm;
	int64_t rollout_seconds; /* 0 with immediate */
	bool immediate;
	bool compromised; /* --reason compromised */
	bool pending;     /* create the version as pending; activate later */
	/* BYOK (admin_rekey only): the new version is this token key instead of
	 * a generated one; its modulus decides the algorithm. */
	const char *byok_uri;
	const char *pkcs11_module; /* NULL: LICENSOR_PKCS11_MODULE, the URI's, or p11-kit's proxy */
};

/* Records a rollout that completed by the clock (from → retained). Returns
 * true when it changed the tenant. Every writer calls it first. */
bool lifecycle_settle(struct tenant *tenant, int64_t now);

/* Whether a rekey may go ahead (checked before the slow key generation). */
lic_status lifecycle_check_rekey(const struct tenant *tenant, const struct rekey_request *request,
				 int64_t now, lic_error *error);
/* Appends `version` (material filled in; number and states set here) and
 * starts the rollout. Takes ownership of the version's buffers on success. */
lic_status lifecycle_rekey(struct tenant *tenant, const struct rekey_request *request,
			   struct key_version *version, int64_t now, lic_error *error);

/* `confirmed` is --yes: needed by revoke when it leaves no active version, and by destroy always. */
lic_status lifecycle_revoke(struct tenant *tenant, uint32_t number, bool confirmed, int64_t now,
			    lic_error *error);
lic_status lifecycle_reinstate(struct tenant *tenant, uint32_t number, int64_t now, lic_error *error);
lic_status lifecycle_destroy(struct tenant *tenant, uint32_t number, bool confirmed, int64_t now,
			     lic_error *error);
lic_status lifecycle_activate(struct tenant *tenant, uint32_t number, int64_t now, lic_error *error);
lic_status lifecycle_set_disabled(struct tenant *tenant, bool disabled, lic_error *error);

#endif
