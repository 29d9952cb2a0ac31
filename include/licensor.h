/*
 * licensor.h: the public C API of licensor, a license issuance engine with
 * versioned tenant keys.
 *
 * What an embedder gets from this header:
 *   - lic_status: one stable error code per refusal (DESIGN.md §3), with its
 *     code string and HTTP status;
 *   - lic_clock: the one clock all time arithmetic goes through, injectable
 *     for tests and simulations;
 *   - lic_keyring: a read-mostly view of a keyring store. Readers never lock:
 *     they see an immutable snapshot that writers replace whole (RCU).
 *
 * Ownership: every *_open / *_new returns an object the caller frees with the
 * matching *_close / *_free; *_free(NULL) and *_close(NULL) do nothing.
 * Strings returned as `const char *` are owned by the library and live as long
 * as the object they came from unless the comment says otherwise.
 *
 * Thread safety: lic_keyring_* lookups may be called from any thread without
 * registration or locking. Functions that change the store take the store's
 * exclusive file lock themselves.
 */
#ifndef LICENSOR_H
#define LICENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LIC_VERSION_STRING "0.1.0"

/* Marks the functions the shared library exports. */
#define LIC_API __attribute__((visibility("default")))

/* ---- Errors ---------------------------------------------------------- */

/* The codes of DESIGN.md §3, plus USAGE/IO/STATE for command-line, file and
 * illegal-transition errors. The numeric values are stable. */
typedef enum lic_status {
	LIC_OK = 0,
	LIC_MALFORMED,
	LIC_UNSUPPORTED_VERSION,
	LIC_TOO_LARGE,
	LIC_UNKNOWN_TENANT,
	LIC_TENANT_DISABLED,
	LIC_UNKNOWN_KEY,
	LIC_KEY_REVOKED,
	LIC_KEY_DESTROYED,
	LIC_PL_INTEGRITY,
	LIC_PL_EXPIRED,
	LIC_RAC_INVALID,
	LIC_RAC_EXPIRED,
	LIC_NO_RIGHTS,
	LIC_UNAUTHORIZED,
	LIC_OVERLOADED,
	LIC_NOT_EXPORTABLE,
	LIC_INTERNAL,
	LIC_USAGE, /* bad command line or argument */
	LIC_IO,    /* a file could not be read or written */
	LIC_STATE, /* illegal state transition, or an operation that needs confirmation */
	LIC_STATUS_COUNT
} lic_status;

/* "MALFORMED", "KEY_REVOKED", …; "OK" for LIC_OK. Never NULL. */
LIC_API const char *lic_status_code(lic_status status);
/* The HTTP status of DESIGN.md §3 (200 for LIC_OK). */
LIC_API int lic_status_http(lic_status status);

/* Details of a refusal: the code and one human sentence. The sentence never
 * holds key material. Embedded by the caller; no cleanup needed. */
typedef struct lic_error {
	lic_status status;
	char message[512];
} lic_error;

/* ---- Key material in memory ------------------------------------------ */

/* Decrypted private keys (their PKCS#8 form and the RSA private components)
 * live in OpenSSL's secure heap: locked pages marked MADV_DONTDUMP, wiped when
 * freed. OpenSSL still caches a Montgomery form of the primes in ordinary heap
 * once a key has been used, so a process that holds keys should also not be
 * dumpable at all. lic_process_harden() does both: it sets up the secure heap
 * and makes the process non-dumpable (prctl PR_SET_DUMPABLE 0: no core dumps,
 * no ptrace by other users), unless LICENSOR_ALLOW_CORE_DUMPS=1 is set in the
 * environment, for debugging on a machine without real keys. Call it first
 * thing in main(). Returns 1 when the process is non-dumpable. */
LIC_API int lic_process_harden(void);

/* ---- Clock ----------------------------------------------------------- */

/* Seconds since the Unix epoch, UTC. All rollout and validity arithmetic asks
 * this clock, so a test or a simulation can move time. */
typedef struct lic_clock {
	int64_t (*now)(void *context);
	void *context;
} lic_clock;

/* The wall clock (CLOCK_REALTIME). Owned by the library. */
LIC_API const lic_clock *lic_clock_system(void);
static inline int64_t lic_clock_now(const lic_clock *clock)
{
	return clock->now(clock->context);
}

/* ---- Keyring (read side) --------------------------------------------- */

typedef enum lic_key_state {
	LIC_KEY_STATE_PENDING,
	LIC_KEY_STATE_ACTIVE,
	LIC_KEY_STATE_RETAINED,
	LIC_KEY_STATE_REVOKED,
	LIC_KEY_STATE_DESTROYED
} lic_key_state;

/* "pending", "active", "retained", "revoked", "destroyed". */
LIC_API const char *lic_key_state_name(lic_key_state state);

typedef struct lic_keyring lic_keyring;

typedef struct lic_keyring_options {
	const char *store_dir;       /* required */
	const char *kek_file;        /* optional: overrides the KEK file named in world.xml */
	const char *passphrase_file; /* optional: the passphrase file of a passphrase store */
	const lic_clock *clock;      /* optional: defaults to lic_clock_system() */
} lic_keyring_options;

/* Opens a store for reading: reads world.xml, checks the KEK against the
 * store's check value and indexes the tenants. Tenant files are parsed on
 * first use and private keys decrypted on first use, so a store of 100,000
 * tenants opens in the time of one directory scan. */
LIC_API lic_status lic_keyring_open(const lic_keyring_options *options, lic_keyring **out, lic_error *error);
LIC_API void lic_keyring_close(lic_keyring *keyring);

/* Re-reads the store and swaps in a new snapshot. Tenants whose files did not
 * change keep their parsed form and their decrypted keys. Readers running at
 * the time of the swap finish on the old snapshot. */
LIC_API lic_status lic_keyring_reload(lic_keyring *keyring, lic_error *error);

/* What a lookup reports about one key version. Plain values: valid after the
 * snapshot is gone. */
typedef struct lic_key_info {
	uint32_t version;
	char key_id[33];     /* lowercase hex, NUL-terminated */
	lic_key_state state; /* the effective state at the keyring's clock */
	bool compromised;
	bool tenant_disabled;
} lic_key_info;

/* Finds the version of `tenant` whose key id is `key_id_hex` (32 lowercase hex
 * characters). O(1): a hash of tenants, then a hash of key ids. Errors:
 * LIC_UNKNOWN_TENANT, LIC_UNKNOWN_KEY, LIC_MALFORMED (bad key id). A disabled
 * tenant is found and reported through `tenant_disabled`. */
LIC_API lic_status lic_keyring_lookup(lic_keyring *keyring, const char *tenant, const char *key_id_hex,
				      lic_key_info *out, lic_error *error);

/* Number of tenants in the current snapshot. */
LIC_API size_t lic_keyring_tenant_count(lic_keyring *keyring);

/* ---- Rollout cohorts (DESIGN.md §1) ---------------------------------- */

/* bucket = first 8 bytes of SHA-256(tenant ‖ 0x00 ‖ client_id), big-endian,
 * mod 10000. */
LIC_API uint32_t lic_rollout_bucket(const char *tenant, const char *client_id);

#ifdef __cplusplus
}
#endif
#endif
