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

/* Change notification, for an event loop: *fd (owned by the keyring) becomes
 * readable when a tenant file or world.xml changes (inotify on the store). Poll
 * it with the rest of your loop and call lic_keyring_watch_process when it is
 * readable: it drains the notifications and, if a tenant file or world.xml
 * changed, swaps in a new snapshot (*reloaded = true). Readers are never
 * blocked by the swap. Calling lic_keyring_watch again returns the same fd. */
LIC_API lic_status lic_keyring_watch(lic_keyring *keyring, int *fd, lic_error *error);
LIC_API lic_status lic_keyring_watch_process(lic_keyring *keyring, bool *reloaded, lic_error *error);

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

/* ---- Issuance engine (DESIGN.md §5) ----------------------------------- */

/* The engine turns license requests (a RAC and a PL) into signed use
 * licenses on its own worker threads. Each worker takes every queued job up
 * to a bound, runs the private-key operations of the batch grouped by key
 * version on its own copy of each key, and completes the batch. A PL cache
 * (bounded, with a TTL, zeroised on eviction, purged for a version the moment
 * it is revoked or destroyed) skips the unwrap of content seen before; a cache
 * of verified RACs skips their signature check. */
typedef struct lic_engine lic_engine;

typedef struct lic_engine_options {
	lic_keyring *keyring;     /* required; not owned: close it after lic_engine_free */
	unsigned workers;         /* 0: one per online core */
	size_t batch_max;         /* jobs a worker takes at once; 0: 64 */
	size_t queue_max;         /* queued jobs before LIC_OVERLOADED; 0: 8192 */
	size_t pl_cache_entries;  /* 0: 65536; SIZE_MAX disables the cache */
	int64_t pl_cache_ttl_s;   /* 0: 3600 */
	size_t rac_cache_entries; /* 0: 65536; SIZE_MAX disables the cache */
	size_t key_usage_entries; /* 0: 256 (lic_engine_get_key_usage) */
	/* An INTERNAL error (a bug, or an HSM failure of a BYOK key) is written
	 * to stderr with its detail, at most one line a second, and the result
	 * carries only "internal error (the server log has the detail)". Off:
	 * the result carries the detail and nothing is printed. */
	bool log_internal_errors;
} lic_engine_options;

LIC_API lic_status lic_engine_new(const lic_engine_options *options, lic_engine **out, lic_error *error);
/* Finishes every queued job (their callbacks run), stops the workers, frees. */
LIC_API void lic_engine_free(lic_engine *engine);

/* One license request: the RAC and the PL as XML documents (bytes; need not
 * be NUL-terminated). The engine copies what it needs before returning. */
typedef struct lic_license_request {
	const char *rac;
	size_t rac_length;
	const char *pl;
	size_t pl_length;
} lic_license_request;

/* One result: on LIC_OK, the UL document (new buffer, free() it); otherwise
 * the code and a sentence in error. */
typedef struct lic_license_result {
	lic_error error;
	char *use_license;
	size_t use_license_length;
} lic_license_result;

/* Synchronous batch: N requests in, N results out, each with its own status;
 * one bad request never fails the others. Returns LIC_OK once every result is
 * filled; when the queue is full it returns LIC_OVERLOADED at once and every
 * result carries that error. */
LIC_API lic_status lic_engine_issue(lic_engine *engine, const lic_license_request *requests, size_t count,
				    lic_license_result *results, lic_error *error);

/* Asynchronous AcquireLicense (DESIGN.md §2): `body` is a whole request
 * document with 1 to 100 items. `done` runs once, on a worker thread, with
 * the HTTP status and the response document (AcquireLicenseResponse for 200,
 * an <Error> document otherwise); the buffer is the engine's, valid during the
 * call only. Keep `done` short: hand the buffer to your own loop (copy it,
 * write an eventfd). Returns LIC_OVERLOADED at once when the queue is full
 * (then `done` never runs), and LIC_TOO_LARGE for a body over 1 MiB. The
 * engine copies `body` before returning: the caller may free it at once. */
typedef void (*lic_acquire_done)(void *context, int http_status, const char *response, size_t length);
LIC_API lic_status lic_engine_submit_acquire(lic_engine *engine, const char *body, size_t length,
					     lic_acquire_done done, void *context, lic_error *error);

/* Counters since lic_engine_new, for metrics. Each field is read on its own
 * (no lock across fields): while the engine works, two fields may be a batch
 * apart, and only the sums promised below hold exactly once it is idle.
 *
 * Refusals: `errors` counts the items refused (a failed item of a
 * lic_engine_issue call or of an AcquireLicense body); `requests_refused` the
 * AcquireLicense bodies refused as a whole (not well-formed, no Item, over 100
 * items: answered with a 4xx Error document, and holding no items), and
 * errors_by_status both, each under its code: so the sum of errors_by_status
 * is errors + requests_refused. Refusals returned at once by lic_engine_issue
 * or lic_engine_submit_acquire (LIC_OVERLOADED, LIC_TOO_LARGE) are not
 * counted: the caller has them. */
#define LIC_ENGINE_BATCH_BUCKETS 9 /* batch sizes ≤1, ≤2, ≤4, … ≤128, and more */
typedef struct lic_engine_stats {
	uint64_t licenses_issued;
	uint64_t errors;                             /* items refused */
	uint64_t requests_refused;                   /* AcquireLicense bodies refused as a whole */
	uint64_t errors_by_status[LIC_STATUS_COUNT]; /* both, by code (index: lic_status); [LIC_OK] stays 0 */
	uint64_t batches;                            /* batches a worker took from the queue */
	uint64_t batched_jobs;                       /* jobs in them: the sum of the batch sizes */
	/* Batches by size (jobs taken at once), not cumulative: bucket i holds
	 * the batches of more than lic_engine_batch_bucket_bound(i - 1) and at
	 * most lic_engine_batch_bucket_bound(i) jobs. They sum to `batches`. */
	uint64_t batch_size_buckets[LIC_ENGINE_BATCH_BUCKETS];
	uint64_t queue_depth;            /* jobs waiting for a worker now */
	uint64_t private_key_operations; /* unwraps and signatures */
	uint64_t pl_cache_hits, pl_cache_misses;
	uint64_t rac_cache_hits, rac_cache_misses;
	/* Requests for content under a compromised version that passed every
	 * check (counted before the unwrap or PL cache hit that serves them). */
	uint64_t compromised_uses;
	uint64_t pl_cache_entries; /* content keys held now */
} lic_engine_stats;
LIC_API void lic_engine_get_stats(lic_engine *engine, lic_engine_stats *out);
/* Turns `after` into the counts from `before` to `after` (both from
 * lic_engine_get_stats of one engine): for measuring a phase. Levels
 * (queue_depth, pl_cache_entries) keep their `after` values. */
LIC_API void lic_engine_stats_since(lic_engine_stats *after, const lic_engine_stats *before);

/* The upper bound (jobs) of batch size bucket i: 1, 2, 4, … 128, and
 * UINT64_MAX for the last bucket (+Inf). */
static inline uint64_t lic_engine_batch_bucket_bound(size_t bucket)
{
	return bucket + 1 < LIC_ENGINE_BATCH_BUCKETS ? (uint64_t)1 << bucket : UINT64_MAX;
}

/* Private-key operations by key version. The engine counts them apart for
 * the first key_usage_entries (tenant, version) pairs it uses, and in one
 * "other" count after that, so a scrape's label set stays bounded however
 * many tenants and versions there are. */
#define LIC_TENANT_NAME_MAX 63 /* bytes, without the NUL */
typedef struct lic_key_usage {
	char tenant[LIC_TENANT_NAME_MAX + 1];
	uint32_t version;
	uint64_t private_key_operations; /* unwraps and signatures with this version */
	uint64_t compromised_uses;       /* as lic_engine_stats.compromised_uses, for this version */
} lic_key_usage;

/* Copies the counted pairs into out[0 … capacity-1], sorted by tenant, then
 * version, and returns how many it wrote. *other_operations (may be NULL)
 * gets the operations of pairs not counted apart, plus those of pairs that
 * did not fit in `capacity`; so, once the engine is idle, the operations
 * written plus *other_operations equal lic_engine_stats.private_key_operations.
 * An array of lic_engine_key_usage_entries() entries always holds every pair;
 * `out` may be NULL when capacity is 0.
 * Takes a short lock shared with the workers (once per batch each). */
LIC_API size_t lic_engine_get_key_usage(lic_engine *engine, lic_key_usage *out, size_t capacity,
					uint64_t *other_operations);
/* The most pairs lic_engine_get_key_usage ever reports (key_usage_entries). */
LIC_API size_t lic_engine_key_usage_entries(lic_engine *engine);

/* Housekeeping for the embedder's timer, about once a second, from any
 * thread (not concurrently with lic_engine_free): writes the audit summaries
 * of compromised-version uses that are due (one line per version at most
 * once a minute). Without it they are written by the next batch or by
 * lic_engine_free. Never waits for the store's writer lock: when an
 * operator's command holds it, the summaries stay due for the next tick. */
LIC_API void lic_engine_tick(lic_engine *engine);

#ifdef __cplusplus
}
#endif
#endif
