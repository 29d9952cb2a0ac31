/*
 * engine.c: the issuance pipeline of DESIGN.md §5.
 *
 * Jobs (a single request of lic_engine_issue, or a whole AcquireLicense body)
 * wait in one bounded queue. A worker takes every queued job up to
 * batch_max, then works through the batch in phases:
 *   1. parse each item's RAC and PL, check tenant, keys, states, validity and
 *      policy, and look the PL up in the PL cache;
 *   2. run the unwraps the cache could not answer, grouped by key version,
 *      back to back on this worker's own EVP_PKEY for that version;
 *   3. wrap each content key to its RAC key and build and sign each UL,
 *      grouped by signing version;
 *   4. complete every job (callbacks, or wake the waiting caller).
 * Workers never share a private key: each decrypts its own copy from the
 * sealed form on first use, so no RSA blinding lock is contended. Readers of
 * the keyring use its RCU snapshot; a worker drops its keys of versions that
 * became revoked or destroyed when it sees a new snapshot generation.
 *
 * Counters (lic_engine_stats) are atomics. Private-key operations by key
 * version are summed by each worker during a batch and added to the shared
 * table under one lock at its end (engine_key_usage.h), never per item.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "core/documents.h"
#include "core/engine_cache.h"
#include "core/engine_key_usage.h"
#include "core/xml_signature.h"
#include "keyring/audit.h"
#include "keyring/encoding.h"
#include "keyring/error.h"
#include "keyring/snapshot.h"
#include "keyring/store.h"
#include "keyring/utc_time.h"
#include "keyring/xml_document.h"

#define DEFAULT_BATCH_MAX 64
#define DEFAULT_QUEUE_MAX 8192
#define WORKER_KEY_CACHE_MAX 256
#define COMPROMISED_TRACKED 64
#define COMPROMISED_LOG_INTERVAL 60

/* ---- jobs ---- */

enum job_kind { JOB_SINGLE, JOB_ACQUIRE };

struct batch_waiter {
	pthread_mutex_t lock;
	pthread_cond_t done;
	size_t remaining;
};

/* One item of a job: a RAC and a PL, and where its result goes. */
struct item {
	/* inputs, parsed in phase 1 */
	struct rights_account_certificate rac;
	struct publishing_license pl;
	bool rac_parsed, pl_parsed;
	/* state between phases */
	lic_error error; /* status LIC_OK while the item is alive */
	char principal[POLICY_PRINCIPAL_MAX + 1];
	struct rights rights;
	uint8_t content_key[CONTENT_KEY_LENGTH];
	bool have_content_key;
	const struct key_version *unwrap_version; /* in the batch's snapshot */
	const struct key_version *signing_version;
	const struct tenant *tenant;
	int64_t not_after;
	/* output: serialised for a single request, the document itself for an
	 * AcquireLicense response (copied into it, never re-parsed) */
	bool keep_document;
	xmlDocPtr use_license_document;
	char *use_license;
	size_t use_license_length;
};

struct job {
	enum job_kind kind;
	struct job *next;
	/* JOB_SINGLE */
	char *rac_xml, *pl_xml;
	size_t rac_length, pl_length;
	lic_license_result *result;
	struct batch_waiter *waiter;
	/* JOB_ACQUIRE */
	char *body;
	size_t body_length;
	lic_acquire_done done;
	void *context;
	xmlDocPtr request;
	/* both */
	struct item *items;
	size_t item_count;
	lic_error job_error; /* a whole-request failure (JOB_ACQUIRE) */
};

/* A worker's own decrypted key for one version. */
struct worker_key {
	char tenant[TENANT_NAME_MAX + 1];
	uint8_t key_id[KEY_ID_LENGTH];
	struct version_key *key; /* managed: decrypted here; BYOK: this worker's handle on the token */
};

/* A version whose key could not be opened (a token that does not answer, a
 * refused PIN): requests for it fail at once with the remembered sentence
 * until retry_at, and the wait doubles (1 s … 60 s) while it keeps failing,
 * so a dead HSM costs one attempt a minute, not one per request. A refused
 * PIN is never retried by itself (each try counts towards locking the
 * token): only a new keyring snapshot (a store change, SIGHUP) clears it. */
struct worker_key_failure {
	char tenant[TENANT_NAME_MAX + 1];
	uint8_t key_id[KEY_ID_LENGTH];
	int64_t retry_at; /* monotonic seconds */
	int64_t backoff_s;
	bool pin_refused;
	lic_error error;
};

struct worker {
	struct lic_engine *engine;
	pthread_t thread;
	struct worker_key keys[WORKER_KEY_CACHE_MAX];
	size_t key_count;
	struct worker_key_failure failures[WORKER_KEY_CACHE_MAX];
	size_t failure_count;
	uint64_t generation_seen;
	struct key_usage_tally key_usage; /* this batch's uses, added to the engine's table at its end */
};

struct lic_engine {
	lic_keyring *keyring;
	size_t batch_max, queue_max;
	pthread_mutex_t queue_lock;
	pthread_cond_t queue_ready;
	struct job *head, *tail;
	size_t queued;
	bool stopping;
	struct worker *workers;
	unsigned worker_count;
	struct pl_cache *pl_cache;
	struct rac_cache *rac_cache;
	/* Uses of compromised versions, written to the audit log (DESIGN.md §1)
	 * as one summary line per version at most once a minute. */
	pthread_mutex_t compromised_lock;
	pthread_mutex_t store_lock; /* one audit writer at a time (the store handle is shared) */
	struct compromised_use {
		char tenant[TENANT_NAME_MAX + 1];
		uint32_t version;
		uint64_t pending; /* uses not yet in the log */
		int64_t since;    /* time of the first of them */
		int64_t logged_at;
	} compromised[COMPROMISED_TRACKED];
	size_t compromised_count;
	struct key_usage_table *key_usage; /* private-key operations by version, for metrics */
	bool log_internal_errors;
	atomic_int_fast64_t internal_logged_at; /* second of the last INTERNAL line on stderr */
	atomic_uint_fast64_t internal_unlogged; /* INTERNAL errors since then not written */
	struct {
		atomic_uint_fast64_t licenses_issued, errors, requests_refused, batches, batched_jobs,
		    private_key_operations, pl_cache_hits, pl_cache_misses, rac_cache_hits, rac_cache_misses,
		    compromised_uses;
		atomic_uint_fast64_t errors_by_status[LIC_STATUS_COUNT];
		atomic_uint_fast64_t batch_size_buckets[LIC_ENGINE_BATCH_BUCKETS];
	} stats;
};

/* ---- worker key cache ---- */

static void worker_drop_keys(struct worker *worker, const struct keyring_snapshot *snapshot)
{
	/* Keep a key only while its version can still unwrap or sign. */
	size_t kept = 0;
	for (size_t i = 0; i < worker->key_count; i++) {
		struct worker_key *entry = &worker->keys[i];
		const struct tenant *tenant = NULL;
		bool keep = false;
		if (keyring_snapshot_tenant(worker->engine->keyring, snapshot, entry->tenant, &tenant,
					    NULL) == LIC_OK) {
			const struct key_version *version = tenant_find_key_id(tenant, entry->key_id);
			keep = version != NULL && version->state != LIC_KEY_STATE_REVOKED &&
			       version->state != LIC_KEY_STATE_DESTROYED;
		}
		if (keep)
			worker->keys[kept++] = *entry;
		else
			version_key_free(entry->key); /* wipes a managed key's private components */
	}
	worker->key_count = kept;
	worker->failure_count = 0; /* a new snapshot: every version may be tried again */
}

static int64_t monotonic_seconds(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)now.tv_sec;
}

static struct worker_key_failure *worker_find_failure(struct worker *worker, const char *tenant,
						      const uint8_t key_id[KEY_ID_LENGTH])
{
	for (size_t i = 0; i < worker->failure_count; i++)
		if (memcmp(worker->failures[i].key_id, key_id, KEY_ID_LENGTH) == 0 &&
		    strcmp(worker->failures[i].tenant, tenant) == 0)
			return &worker->failures[i];
	return NULL;
}

static void worker_note_failure(struct worker *worker, const char *tenant,
				const uint8_t key_id[KEY_ID_LENGTH], const lic_error *error)
{
	struct worker_key_failure *failure = worker_find_failure(worker, tenant, key_id);
	if (failure == NULL) {
		if (worker->failure_count == WORKER_KEY_CACHE_MAX)
			memmove(&worker->failures[0], &worker->failures[1],
				(WORKER_KEY_CACHE_MAX - 1) * sizeof worker->failures[0]);
		else
			worker->failure_count++;
		failure = &worker->failures[worker->failure_count - 1];
		memset(failure, 0, sizeof *failure);
		snprintf(failure->tenant, sizeof failure->tenant, "%s", tenant);
		memcpy(failure->key_id, key_id, KEY_ID_LENGTH);
		failure->backoff_s = 1;
	} else if (failure->backoff_s < 60) {
		failure->backoff_s = failure->backoff_s * 2 > 60 ? 60 : failure->backoff_s * 2;
	}
	failure->retry_at = monotonic_seconds() + failure->backoff_s;
	failure->pin_refused = version_key_error_is_pin(error);
	failure->error = *error;
}

static lic_status worker_key(struct worker *worker, const struct tenant *tenant,
			     const struct key_version *version, struct version_key **out, lic_error *error)
{
	for (size_t i = 0; i < worker->key_count; i++) {
		struct worker_key *entry = &worker->keys[i];
		if (memcmp(entry->key_id, version->key_id, KEY_ID_LENGTH) == 0 &&
		    strcmp(entry->tenant, tenant->name) == 0) {
			if (!version_key_broken(entry->key)) {
				*out = entry->key;
				return LIC_OK;
			}
			/* The token lost this session or login: open it anew. */
			version_key_free(entry->key);
			memmove(entry, entry + 1, (worker->key_count - i - 1) * sizeof *entry);
			worker->key_count--;
			break;
		}
	}
	const struct worker_key_failure *failure = worker_find_failure(worker, tenant->name, version->key_id);
	if (failure != NULL && (failure->pin_refused || monotonic_seconds() < failure->retry_at)) {
		*error = failure->error;
		return error->status;
	}
	struct version_key *key = NULL;
	struct store *store = keyring_store(worker->engine->keyring);
	lic_status status = version_key_open(store->kek, tenant->name, version, &key, error);
	if (status != LIC_OK) {
		if (status == LIC_INTERNAL)
			worker_note_failure(worker, tenant->name, version->key_id, error);
		return status;
	}
	if (failure != NULL) {
		size_t index = (size_t)(failure - worker->failures);
		memmove(&worker->failures[index], &worker->failures[index + 1],
			(worker->failure_count - index - 1) * sizeof worker->failures[0]);
		worker->failure_count--;
	}
	if (worker->key_count == WORKER_KEY_CACHE_MAX) {
		/* Evict the oldest: rare, and only costs a decryption later. */
		version_key_free(worker->keys[0].key);
		memmove(&worker->keys[0], &worker->keys[1],
			(WORKER_KEY_CACHE_MAX - 1) * sizeof worker->keys[0]);
		worker->key_count--;
	}
	struct worker_key *entry = &worker->keys[worker->key_count++];
	snprintf(entry->tenant, sizeof entry->tenant, "%s", tenant->name);
	memcpy(entry->key_id, version->key_id, KEY_ID_LENGTH);
	entry->key = key;
	*out = key;
	return LIC_OK;
}

/* ---- phase 1: parse and check ---- */

static bool item_failed(const struct item *item)
{
	return item->error.status != LIC_OK;
}

#define item_fail(item, status, ...) lic_error_set(&(item)->error, (status), __VA_ARGS__)

/* Parses an item's RAC and PL from their elements. */
static void item_parse(struct item *item, xmlDocPtr rac_document, xmlNodePtr rac, xmlDocPtr pl_document,
		       xmlNodePtr pl)
{
	if (rights_account_certificate_read(rac_document, rac, &item->rac, &item->error) != LIC_OK)
		return;
	item->rac_parsed = true;
	if (publishing_license_read(pl_document, pl, &item->pl, &item->error) != LIC_OK)
		return;
	item->pl_parsed = true;
}

static EVP_PKEY *public_key_of(const struct key_version *version, lic_error *error)
{
	EVP_PKEY *key = NULL;
	if (key_material_from_public_der(version->public_key_der, version->public_key_length, &key, error) !=
	    LIC_OK)
		return NULL;
	return key;
}

/* Adds `count` uses of a compromised version since `since`. A slot whose uses
 * are all logged is reused, so only 64 versions with unlogged uses at once
 * are tracked; beyond that, uses are still counted in the stats. */
static void note_compromised_uses(struct lic_engine *engine, const char *tenant, uint32_t version,
				  int64_t since, uint64_t count)
{
	pthread_mutex_lock(&engine->compromised_lock);
	struct compromised_use *use = NULL, *free_slot = NULL;
	for (size_t i = 0; i < engine->compromised_count && use == NULL; i++) {
		struct compromised_use *candidate = &engine->compromised[i];
		if (candidate->version == version && strcmp(candidate->tenant, tenant) == 0)
			use = candidate;
		else if (candidate->pending == 0 && free_slot == NULL)
			free_slot = candidate;
	}
	if (use == NULL && engine->compromised_count < COMPROMISED_TRACKED)
		free_slot = &engine->compromised[engine->compromised_count++];
	if (use == NULL && free_slot != NULL) {
		use = free_slot;
		memset(use, 0, sizeof *use);
		snprintf(use->tenant, sizeof use->tenant, "%s", tenant);
		use->version = version;
	}
	if (use != NULL) {
		if (use->pending == 0 || since < use->since)
			use->since = since;
		use->pending += count;
	}
	pthread_mutex_unlock(&engine->compromised_lock);
}

static void note_compromised_use(struct lic_engine *engine, const char *tenant, uint32_t version, int64_t now)
{
	atomic_fetch_add(&engine->stats.compromised_uses, 1);
	note_compromised_uses(engine, tenant, version, now, 1);
}

/* Whether log_compromised_uses may wait for the store's writer lock. */
enum store_lock_wait { WAIT_FOR_STORE_LOCK, SKIP_IF_STORE_LOCKED };

/* Takes the engine's audit writer mutex and the store's writer lock; false
 * (nothing held) when `wait` is SKIP_IF_STORE_LOCKED and either is busy, or
 * when the store cannot be locked. */
static bool lock_store_for_audit(struct lic_engine *engine, struct store *store, enum store_lock_wait wait)
{
	if (wait == WAIT_FOR_STORE_LOCK) {
		pthread_mutex_lock(&engine->store_lock);
		if (store_lock(store, NULL) == LIC_OK)
			return true;
		pthread_mutex_unlock(&engine->store_lock);
		return false;
	}
	if (pthread_mutex_trylock(&engine->store_lock) != 0)
		return false;
	bool taken = false;
	if (store_try_lock(store, &taken, NULL) == LIC_OK && taken)
		return true;
	pthread_mutex_unlock(&engine->store_lock);
	return false;
}

/* Gives back uses taken for logging that were not written because the store
 * was busy: they stay due, as if never taken. Slot as note_compromised_uses. */
static void return_unlogged_uses(struct lic_engine *engine, const struct compromised_use *taken)
{
	note_compromised_uses(engine, taken->tenant, taken->version, taken->since, taken->pending);
	pthread_mutex_lock(&engine->compromised_lock);
	for (size_t i = 0; i < engine->compromised_count; i++) {
		struct compromised_use *use = &engine->compromised[i];
		if (use->version == taken->version && strcmp(use->tenant, taken->tenant) == 0 &&
		    use->logged_at > taken->logged_at)
			use->logged_at = taken->logged_at;
	}
	pthread_mutex_unlock(&engine->compromised_lock);
}

/* Writes the pending uses of compromised versions to the audit log: each
 * version at most once per COMPROMISED_LOG_INTERVAL, or all of them when
 * `all` (engine shutdown). A failure to log is retried at the next flush;
 * with SKIP_IF_STORE_LOCKED, uses the busy store lock kept out stay due. */
static void log_compromised_uses(struct lic_engine *engine, int64_t now, bool all, enum store_lock_wait wait)
{
	/* Take the due counts under the mutex, write them without it: waiting
	 * for the store lock (an operator's command may hold it for seconds) must
	 * not stall the workers that note uses inside their read sections. */
	struct compromised_use due[COMPROMISED_TRACKED];
	size_t due_count = 0;
	pthread_mutex_lock(&engine->compromised_lock);
	for (size_t i = 0; i < engine->compromised_count; i++) {
		struct compromised_use *use = &engine->compromised[i];
		if (use->pending == 0 || (!all && now - use->logged_at < COMPROMISED_LOG_INTERVAL))
			continue;
		due[due_count++] = *use; /* logged_at: the previous time, for return_unlogged_uses */
		use->pending = 0;
		use->logged_at = now;
	}
	pthread_mutex_unlock(&engine->compromised_lock);

	struct store *store = keyring_store(engine->keyring);
	bool store_busy = false;
	for (size_t i = 0; i < due_count; i++) {
		if (store_busy) {
			return_unlogged_uses(engine, &due[i]);
			continue;
		}
		char since[UTC_TIME_LENGTH], detail[128];
		utc_time_format(due[i].since, since);
		snprintf(detail, sizeof detail, "%llu unwraps of old content since %s",
			 (unsigned long long)due[i].pending, since);
		struct audit_event event = {.actor = "licensor-engine",
					    .action = "compromised-use",
					    .tenant = due[i].tenant,
					    .version = due[i].version,
					    .detail = detail};
		if (!lock_store_for_audit(engine, store, wait)) {
			store_busy = wait == SKIP_IF_STORE_LOCKED;
			if (store_busy)
				return_unlogged_uses(engine, &due[i]);
			else
				note_compromised_uses(engine, due[i].tenant, due[i].version, due[i].since,
						      due[i].pending);
			continue;
		}
		lic_status status = audit_append(store->directory, &event, now, NULL);
		store_unlock(store);
		pthread_mutex_unlock(&engine->store_lock);
		if (status != LIC_OK)
			note_compromised_uses(engine, due[i].tenant, due[i].version, due[i].since,
					      due[i].pending);
	}
}

static void item_check(struct lic_engine *engine, const struct keyring_snapshot *snapshot, struct item *item,
		       int64_t now, struct key_usage_tally *key_usage)
{
	lic_error *error = &item->error;
	const struct tenant *tenant = NULL;
	if (keyring_snapshot_tenant(engine->keyring, snapshot, item->pl.tenant, &tenant, error) != LIC_OK)
		return;
	item->tenant = tenant;
	if (tenant->disabled) {
		item_fail(item, LIC_TENANT_DISABLED, "tenant %s is disabled", tenant->name);
		return;
	}
	/* The RAC: this tenant's, signed by a version it still trusts, valid now. */
	if (strcmp(item->rac.tenant, tenant->name) != 0) {
		item_fail(item, LIC_RAC_INVALID, "the RAC was issued by another tenant than %s",
			  tenant->name);
		return;
	}
	uint8_t signer_id[KEY_ID_LENGTH];
	const struct key_version *signer = NULL;
	if (hex_decode(item->rac.signing_key_id_hex, signer_id, KEY_ID_LENGTH, NULL) == LIC_OK)
		signer = tenant_find_key_id(tenant, signer_id);
	/* A compromised version never vouches for anyone again: whoever stole it
	 * could sign a RAC for any principal, with any (backdated) NotBefore. */
	if (signer == NULL || signer->compromised || signer->state == LIC_KEY_STATE_REVOKED ||
	    signer->state == LIC_KEY_STATE_DESTROYED || signer->state == LIC_KEY_STATE_PENDING) {
		item_fail(item, LIC_RAC_INVALID, "the RAC is signed by a key that tenant %s does not trust%s",
			  tenant->name,
			  signer != NULL && signer->compromised ? " (compromised: re-certify the user)" : "");
		return;
	}
	if (rac_cache_lookup(engine->rac_cache, item->rac.digest, now, &item->rac.public_key)) {
		atomic_fetch_add(&engine->stats.rac_cache_hits, 1);
	} else {
		atomic_fetch_add(&engine->stats.rac_cache_misses, 1);
		if (rights_account_certificate_decode_key(&item->rac, error) != LIC_OK)
			return;
		EVP_PKEY *signer_key = public_key_of(signer, error);
		if (signer_key == NULL)
			return;
		lic_status status = rights_account_certificate_verify(&item->rac, signer_key, error);
		EVP_PKEY_free(signer_key);
		if (status != LIC_OK)
			return;
		rac_cache_insert(engine->rac_cache, item->rac.digest, item->rac.public_key, now);
	}
	if (now < item->rac.not_before || now > item->rac.not_after) {
		item_fail(item, LIC_RAC_EXPIRED, "the RAC of %s is not valid at this time",
			  item->rac.principal);
		return;
	}
	/* The PL's key version. */
	const struct key_version *version = tenant_find_key_id(tenant, item->pl.key_id);
	if (version == NULL) {
		item_fail(item, LIC_UNKNOWN_KEY, "tenant %s never had the PL's key", tenant->name);
		return;
	}
	if (tenant_version_usable_for_unwrap(tenant, version, now, error) != LIC_OK)
		return;
	if (item->pl.content_valid_until != 0 && now > item->pl.content_valid_until) {
		item_fail(item, LIC_PL_EXPIRED, "the content of this PL expired (ContentValidUntil) for %s",
			  item->rac.principal);
		return;
	}
	/* The policy. */
	snprintf(item->principal, sizeof item->principal, "%s", item->rac.principal);
	const char *const *super_users = (const char *const *)tenant->super_users;
	if (policy_evaluate(&item->pl.policy, item->principal, super_users, tenant->super_user_count,
			    &item->rights, error) != LIC_OK)
		return;
	if (rights_empty(&item->rights)) {
		item_fail(item, LIC_NO_RIGHTS, "the policy gives %s no rights", item->principal);
		return;
	}
	item->signing_version = tenant_signing_version(tenant, now);
	if (item->signing_version == NULL) {
		item_fail(item, LIC_KEY_REVOKED, "tenant %s has no active version: issuance is stopped",
			  tenant->name);
		return;
	}
	item->unwrap_version = version;
	if (version->compromised) {
		note_compromised_use(engine, tenant->name, version->number, now);
		key_usage_tally_add(key_usage, tenant->name, version->number, 0, 1);
	}
	/* NotAfter = min(ContentValidUntil, now + LicenseValidityDays, RAC NotAfter). */
	int64_t not_after = now + (int64_t)item->pl.license_validity_days * 86400;
	if (item->pl.content_valid_until != 0 && item->pl.content_valid_until < not_after)
		not_after = item->pl.content_valid_until;
	if (item->rac.not_after < not_after)
		not_after = item->rac.not_after;
	item->not_after = not_after;
	if (pl_cache_lookup(engine->pl_cache, item->pl.cache_key, now, item->content_key)) {
		item->have_content_key = true;
		atomic_fetch_add(&engine->stats.pl_cache_hits, 1);
	} else {
		atomic_fetch_add(&engine->stats.pl_cache_misses, 1);
	}
}

/* ---- phases 2 and 3 ---- */

static int compare_by_unwrap_version(const void *a, const void *b)
{
	const struct item *x = *(struct item *const *)a, *y = *(struct item *const *)b;
	if (x->unwrap_version != y->unwrap_version)
		return x->unwrap_version < y->unwrap_version ? -1 : 1;
	return 0;
}

static int compare_by_signing_version(const void *a, const void *b)
{
	const struct item *x = *(struct item *const *)a, *y = *(struct item *const *)b;
	if (x->signing_version != y->signing_version)
		return x->signing_version < y->signing_version ? -1 : 1;
	return 0;
}

static void run_unwraps(struct worker *worker, struct item **items, size_t count, int64_t now)
{
	qsort(items, count, sizeof *items, compare_by_unwrap_version);
	for (size_t i = 0; i < count; i++) {
		struct item *item = items[i];
		struct version_key *key = NULL;
		if (worker_key(worker, item->tenant, item->unwrap_version, &key, &item->error) != LIC_OK)
			continue;
		atomic_fetch_add(&worker->engine->stats.private_key_operations, 1);
		key_usage_tally_add(&worker->key_usage, item->tenant->name, item->unwrap_version->number, 1,
				    0);
		if (oaep_unwrap(key, item->pl.body_digest, sizeof item->pl.body_digest,
				item->pl.enabling_bits, item->pl.enabling_bits_length, item->content_key,
				&item->error) != LIC_OK)
			continue;
		item->have_content_key = true;
		pl_cache_insert(worker->engine->pl_cache, item->pl.cache_key, item->content_key,
				item->tenant->name, item->unwrap_version->key_id, now,
				worker->generation_seen);
	}
}

static void build_license(struct worker *worker, struct item *item, const struct version_key *signing_key,
			  int64_t now)
{
	lic_status status = LIC_OK;
	uint8_t *wrapped = NULL;
	size_t wrapped_length = 0;
	xmlDocPtr document = NULL;
	char rights[POLICY_RIGHTS_TEXT_MAX];
	struct use_license_fields fields = {0};
	lic_error *error = &item->error;
	document_new_uuid(fields.license_id);
	LIC_TRY(rights_format(&item->rights, rights, sizeof rights, error));
	LIC_TRY(oaep_wrap(item->rac.public_key, (const uint8_t *)fields.license_id, strlen(fields.license_id),
			  item->content_key, CONTENT_KEY_LENGTH, &wrapped, &wrapped_length, error));
	fields.tenant = item->tenant->name;
	fields.content_id = item->pl.content_id;
	fields.principal = item->principal;
	fields.issued_at = now;
	fields.not_after = item->not_after;
	fields.rights = rights;
	fields.publishing_license_digest = item->pl.body_digest;
	fields.enabling_bits = wrapped;
	fields.enabling_bits_length = wrapped_length;
	atomic_fetch_add(&worker->engine->stats.private_key_operations, 1);
	key_usage_tally_add(&worker->key_usage, item->tenant->name, item->signing_version->number, 1, 0);
	LIC_TRY(use_license_build(&fields, signing_key, item->signing_version->key_id_hex, &document, error));
	if (item->keep_document) {
		item->use_license_document = document;
		document = NULL;
		goto out;
	}
	xmlChar *text = NULL;
	int size = 0;
	xmlDocDumpMemoryEnc(document, &text, &size, "UTF-8");
	if (text == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "cannot serialise the use license");
	item->use_license = malloc((size_t)size + 1);
	if (item->use_license == NULL) {
		xmlFree(text);
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	}
	memcpy(item->use_license, text, (size_t)size + 1);
	item->use_license_length = (size_t)size;
	xmlFree(text);
out:
	(void)status;
	free(wrapped);
	xmlFreeDoc(document);
	OPENSSL_cleanse(item->content_key, sizeof item->content_key);
}

static void run_signatures(struct worker *worker, struct item **items, size_t count, int64_t now)
{
	qsort(items, count, sizeof *items, compare_by_signing_version);
	for (size_t i = 0; i < count; i++) {
		struct item *item = items[i];
		struct version_key *key = NULL;
		if (worker_key(worker, item->tenant, item->signing_version, &key, &item->error) != LIC_OK)
			continue;
		build_license(worker, item, key, now);
	}
}

/* ---- jobs in and out ---- */

static void item_cleanup(struct item *item)
{
	if (item->rac_parsed)
		rights_account_certificate_cleanup(&item->rac);
	if (item->pl_parsed)
		publishing_license_cleanup(&item->pl);
	OPENSSL_cleanse(item->content_key, sizeof item->content_key);
	free(item->use_license);
	xmlFreeDoc(item->use_license_document);
}

static void job_free(struct job *job)
{
	for (size_t i = 0; i < job->item_count; i++)
		item_cleanup(&job->items[i]);
	free(job->items);
	free(job->rac_xml);
	free(job->pl_xml);
	free(job->body);
	xmlFreeDoc(job->request);
	free(job);
}

/* An Item holds its RAC and its PL, and nothing else but whitespace and comments. */
static bool item_holds_only(xmlNodePtr item, lic_error *error)
{
	for (xmlNodePtr child = item->children; child; child = child->next) {
		if (child->type == XML_COMMENT_NODE ||
		    (child->type == XML_TEXT_NODE && xmlIsBlankNode(child)))
			continue;
		if (child->type == XML_ELEMENT_NODE &&
		    (strcmp((const char *)child->name, "RightsAccountCertificate") == 0 ||
		     strcmp((const char *)child->name, "PublishingLicense") == 0))
			continue;
		lic_error_set(error, LIC_MALFORMED,
			      "an Item holds only a RightsAccountCertificate and a PublishingLicense");
		return false;
	}
	return true;
}

/* Splits a job into items and parses them (phase 1, first half). */
static void job_prepare(struct job *job)
{
	if (job->kind == JOB_SINGLE) {
		job->items = calloc(1, sizeof *job->items);
		if (job->items == NULL) {
			lic_error_set(&job->job_error, LIC_INTERNAL, "out of memory");
			return;
		}
		job->item_count = 1;
		struct item *item = &job->items[0];
		xmlDocPtr rac = NULL, pl = NULL;
		if (xml_document_parse(job->rac_xml, job->rac_length, DOCUMENT_MAX_BYTES, &rac,
				       &item->error) == LIC_OK &&
		    xml_document_parse(job->pl_xml, job->pl_length, DOCUMENT_MAX_BYTES, &pl, &item->error) ==
			LIC_OK)
			item_parse(item, rac, xmlDocGetRootElement(rac), pl, xmlDocGetRootElement(pl));
		/* The item holds copies of everything it needs from both documents. */
		xmlFreeDoc(rac);
		xmlFreeDoc(pl);
		return;
	}
	xmlNodePtr root = NULL;
	if (xml_document_parse(job->body, job->body_length, DOCUMENT_MAX_BYTES, &job->request,
			       &job->job_error) != LIC_OK ||
	    xml_document_root(job->request, "AcquireLicense", &root, &job->job_error) != LIC_OK)
		return;
	if (root->properties != NULL) {
		lic_error_set(&job->job_error, LIC_MALFORMED, "AcquireLicense takes no attributes");
		return;
	}
	size_t count = 0;
	for (xmlNodePtr child = root->children; child; child = child->next) {
		if (child->type == XML_COMMENT_NODE ||
		    (child->type == XML_TEXT_NODE && xmlIsBlankNode(child)))
			continue;
		if (child->type != XML_ELEMENT_NODE || strcmp((const char *)child->name, "Item") != 0 ||
		    child->ns == NULL || strcmp((const char *)child->ns->href, LICENSOR_NAMESPACE) != 0) {
			lic_error_set(&job->job_error, LIC_MALFORMED,
				      "AcquireLicense holds only Item elements (in namespace %s)",
				      LICENSOR_NAMESPACE);
			return;
		}
		if (++count > ACQUIRE_MAX_ITEMS) {
			lic_error_set(&job->job_error, LIC_TOO_LARGE, "more than %d items in one request",
				      ACQUIRE_MAX_ITEMS);
			return;
		}
	}
	if (count == 0) {
		lic_error_set(&job->job_error, LIC_MALFORMED, "AcquireLicense holds no Item");
		return;
	}
	job->items = calloc(count, sizeof *job->items);
	if (job->items == NULL) {
		lic_error_set(&job->job_error, LIC_INTERNAL, "out of memory");
		return;
	}
	job->item_count = count;
	size_t index = 0;
	for (xmlNodePtr child = root->children; child; child = child->next) {
		if (child->type != XML_ELEMENT_NODE)
			continue;
		struct item *item = &job->items[index++];
		item->keep_document = true;
		xmlNodePtr rac = NULL, pl = NULL;
		if (!item_holds_only(child, &item->error) ||
		    xml_child(child, "RightsAccountCertificate", false, &rac, &item->error) != LIC_OK ||
		    xml_child(child, "PublishingLicense", false, &pl, &item->error) != LIC_OK)
			continue;
		item_parse(item, job->request, rac, job->request, pl);
	}
}

/* The AcquireLicenseResponse (or an Error document) for a finished job. */
static void job_respond(struct job *job)
{
	xmlDocPtr response = xmlNewDoc((const xmlChar *)"1.0");
	int http_status = 200;
	xmlNodePtr root = NULL;
	if (response == NULL)
		goto fail;
	if (job->job_error.status != LIC_OK) {
		http_status = lic_status_http(job->job_error.status);
		if (http_status < 400)
			http_status = 400;
		root = xmlNewNode(NULL, (const xmlChar *)"Error");
		if (root == NULL)
			goto fail;
		xmlDocSetRootElement(response, root);
		xmlSetNs(root, xmlNewNs(root, (const xmlChar *)LICENSOR_NAMESPACE, NULL));
		xmlSetProp(root, (const xmlChar *)"Code",
			   (const xmlChar *)lic_status_code(job->job_error.status));
		xmlNodeAddContent(root, (const xmlChar *)job->job_error.message);
	} else {
		root = xmlNewNode(NULL, (const xmlChar *)"AcquireLicenseResponse");
		if (root == NULL)
			goto fail;
		xmlDocSetRootElement(response, root);
		xmlSetNs(root, xmlNewNs(root, (const xmlChar *)LICENSOR_NAMESPACE, NULL));
		for (size_t i = 0; i < job->item_count; i++) {
			struct item *item = &job->items[i];
			xmlNodePtr result = xmlNewChild(root, root->ns, (const xmlChar *)"Result", NULL);
			char index[24];
			snprintf(index, sizeof index, "%zu", i);
			xmlSetProp(result, (const xmlChar *)"Index", (const xmlChar *)index);
			if (!item_failed(item) && item->use_license_document != NULL) {
				xmlNodePtr copy = xmlDocCopyNode(
				    xmlDocGetRootElement(item->use_license_document), response, 1);
				if (copy != NULL && xmlAddChild(result, copy) != NULL)
					continue;
				xmlFreeNode(copy);
				lic_error_set(&item->error, LIC_INTERNAL, "cannot embed the use license");
			}
			xmlNodePtr error = xmlNewChild(result, root->ns, (const xmlChar *)"Error", NULL);
			xmlSetProp(error, (const xmlChar *)"Code",
				   (const xmlChar *)lic_status_code(item->error.status));
			xmlNodeAddContent(error, (const xmlChar *)item->error.message);
		}
	}
	xmlChar *text = NULL;
	int size = 0;
	xmlDocDumpMemoryEnc(response, &text, &size, "UTF-8");
	if (text == NULL)
		goto fail;
	job->done(job->context, http_status, (const char *)text, (size_t)size);
	xmlFree(text);
	xmlFreeDoc(response);
	return;
fail:
	xmlFreeDoc(response);
	static const char oom[] = "<Error xmlns=\"urn:licensor:v1\" Code=\"INTERNAL\">out of memory</Error>";
	job->done(job->context, 500, oom, sizeof oom - 1);
}

/* A token failure (or a bug) is the operator's to see, with its detail; the
 * client gets a plain sentence. One line a second at most, with a count of
 * what was left out, so a dead HSM cannot flood the log. */
static void log_internal_error(struct lic_engine *engine, lic_error *error)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	int_fast64_t last = atomic_load(&engine->internal_logged_at);
	if (now.tv_sec > last &&
	    atomic_compare_exchange_strong(&engine->internal_logged_at, &last, (int_fast64_t)now.tv_sec)) {
		uint_fast64_t left_out = atomic_exchange(&engine->internal_unlogged, 0);
		if (left_out > 0)
			fprintf(stderr, "licensor: INTERNAL: %s (and %llu more since the last line)\n",
				error->message, (unsigned long long)left_out);
		else
			fprintf(stderr, "licensor: INTERNAL: %s\n", error->message);
	} else {
		atomic_fetch_add(&engine->internal_unlogged, 1);
	}
	lic_error_set(error, LIC_INTERNAL, "internal error (the server log has the detail)");
}

static void count_error_status(struct lic_engine *engine, lic_status status)
{
	if ((unsigned)status >= LIC_STATUS_COUNT)
		status = LIC_INTERNAL;
	atomic_fetch_add(&engine->stats.errors_by_status[status], 1);
}

/* Counted before the caller hears of it, so its stats already show the job.
 * A job refused as a whole (job_error: then it has no items) is one refused
 * request; otherwise each item is a license or an error (lic_engine_stats). */
static void count_job_outcome(struct lic_engine *engine, const struct job *job)
{
	if (job->job_error.status != LIC_OK) {
		atomic_fetch_add(&engine->stats.requests_refused, 1);
		count_error_status(engine, job->job_error.status);
		return;
	}
	for (size_t i = 0; i < job->item_count; i++) {
		if (item_failed(&job->items[i])) {
			atomic_fetch_add(&engine->stats.errors, 1);
			count_error_status(engine, job->items[i].error.status);
			if (job->items[i].error.status == LIC_INTERNAL && engine->log_internal_errors)
				log_internal_error(engine, &job->items[i].error);
		} else {
			atomic_fetch_add(&engine->stats.licenses_issued, 1);
		}
	}
}

static void job_complete(struct lic_engine *engine, struct job *job)
{
	count_job_outcome(engine, job);
	if (job->kind == JOB_ACQUIRE) {
		job_respond(job);
		job_free(job);
		return;
	}
	lic_license_result *result = job->result;
	struct item *item = job->item_count ? &job->items[0] : NULL;
	if (job->job_error.status != LIC_OK)
		result->error = job->job_error;
	else if (item != NULL)
		result->error = item->error;
	if (item != NULL && !item_failed(item)) {
		result->use_license = item->use_license;
		result->use_license_length = item->use_license_length;
		item->use_license = NULL;
	}
	struct batch_waiter *waiter = job->waiter;
	job_free(job);
	pthread_mutex_lock(&waiter->lock);
	if (--waiter->remaining == 0)
		pthread_cond_broadcast(&waiter->done);
	pthread_mutex_unlock(&waiter->lock);
}

static void process_batch(struct worker *worker, struct job *jobs)
{
	struct lic_engine *engine = worker->engine;
	size_t item_total = 0;
	for (struct job *job = jobs; job; job = job->next) {
		job_prepare(job);
		item_total += job->item_count;
	}
	struct item **pending = calloc(item_total ? item_total : 1, sizeof *pending);
	keyring_read_enter();
	const struct keyring_snapshot *snapshot = keyring_current(engine->keyring);
	uint64_t generation = keyring_snapshot_generation(snapshot);
	if (generation != worker->generation_seen) {
		worker_drop_keys(worker, snapshot);
		pl_cache_purge(engine->pl_cache, engine->keyring, snapshot);
		worker->generation_seen = generation;
	}
	int64_t now = lic_clock_now(keyring_clock(engine->keyring));
	size_t unwraps = 0;
	for (struct job *job = jobs; job; job = job->next) {
		for (size_t i = 0; i < job->item_count; i++) {
			struct item *item = &job->items[i];
			if (!item_failed(item))
				item_check(engine, snapshot, item, now, &worker->key_usage);
			if (!item_failed(item) && !item->have_content_key && pending != NULL)
				pending[unwraps++] = item;
		}
	}
	if (pending == NULL) {
		for (struct job *job = jobs; job; job = job->next)
			for (size_t i = 0; i < job->item_count; i++)
				lic_error_set(&job->items[i].error, LIC_INTERNAL, "out of memory");
	} else {
		run_unwraps(worker, pending, unwraps, now);
		size_t signatures = 0;
		for (struct job *job = jobs; job; job = job->next)
			for (size_t i = 0; i < job->item_count; i++)
				if (!item_failed(&job->items[i]))
					pending[signatures++] = &job->items[i];
		run_signatures(worker, pending, signatures, now);
	}
	key_usage_tally_flush(&worker->key_usage, engine->key_usage); /* borrows tenant names */
	/* Snapshot pointers (tenant, versions) are not used past this point. */
	keyring_read_leave();
	free(pending);
	log_compromised_uses(engine, now, false, WAIT_FOR_STORE_LOCK);
	while (jobs != NULL) {
		struct job *next = jobs->next;
		job_complete(engine, jobs);
		jobs = next;
	}
}

/* The batch_size_buckets index of a batch of `size` jobs. */
static size_t batch_size_bucket(size_t size)
{
	size_t bucket = 0;
	while (bucket + 1 < LIC_ENGINE_BATCH_BUCKETS && size > lic_engine_batch_bucket_bound(bucket))
		bucket++;
	return bucket;
}

static void *worker_main(void *argument)
{
	struct worker *worker = argument;
	struct lic_engine *engine = worker->engine;
	for (;;) {
		pthread_mutex_lock(&engine->queue_lock);
		while (engine->head == NULL && !engine->stopping)
			pthread_cond_wait(&engine->queue_ready, &engine->queue_lock);
		if (engine->head == NULL && engine->stopping) {
			pthread_mutex_unlock(&engine->queue_lock);
			break;
		}
		/* Take every queued job, up to the bound. */
		struct job *batch = engine->head, *last = engine->head;
		size_t taken = 1;
		while (taken < engine->batch_max && last->next != NULL) {
			last = last->next;
			taken++;
		}
		engine->head = last->next;
		if (engine->head == NULL)
			engine->tail = NULL;
		last->next = NULL;
		engine->queued -= taken;
		pthread_mutex_unlock(&engine->queue_lock);
		atomic_fetch_add(&engine->stats.batches, 1);
		atomic_fetch_add(&engine->stats.batched_jobs, taken);
		atomic_fetch_add(&engine->stats.batch_size_buckets[batch_size_bucket(taken)], 1);
		process_batch(worker, batch);
	}
	for (size_t i = 0; i < worker->key_count; i++)
		version_key_free(worker->keys[i].key);
	worker->key_count = 0;
	key_usage_tally_cleanup(&worker->key_usage);
	return NULL;
}

/* Appends jobs to the queue, or refuses them all when it would overflow. */
static lic_status enqueue(struct lic_engine *engine, struct job *first, struct job *last, size_t count,
			  lic_error *error)
{
	pthread_mutex_lock(&engine->queue_lock);
	if (engine->stopping || engine->queued + count > engine->queue_max) {
		pthread_mutex_unlock(&engine->queue_lock);
		return lic_error_set(error, LIC_OVERLOADED,
				     "the issuing queue is full (%zu jobs): retry shortly",
				     engine->queue_max);
	}
	if (engine->tail)
		engine->tail->next = first;
	else
		engine->head = first;
	engine->tail = last;
	engine->queued += count;
	pthread_cond_signal(&engine->queue_ready);
	if (count > 1)
		pthread_cond_broadcast(&engine->queue_ready);
	pthread_mutex_unlock(&engine->queue_lock);
	return LIC_OK;
}

static char *copy_bytes(const char *data, size_t length)
{
	char *copy = malloc(length + 1);
	if (copy != NULL) {
		memcpy(copy, data, length);
		copy[length] = '\0';
	}
	return copy;
}

lic_status lic_engine_issue(lic_engine *engine, const lic_license_request *requests, size_t count,
			    lic_license_result *results, lic_error *error)
{
	if (count == 0)
		return LIC_OK;
	struct batch_waiter waiter = {.remaining = count};
	pthread_mutex_init(&waiter.lock, NULL);
	pthread_cond_init(&waiter.done, NULL);
	struct job *first = NULL, *last = NULL;
	lic_status status = LIC_OK;
	memset(results, 0, count * sizeof *results);
	for (size_t i = 0; i < count; i++) {
		struct job *job = calloc(1, sizeof *job);
		if (job != NULL) {
			job->kind = JOB_SINGLE;
			job->rac_xml = copy_bytes(requests[i].rac, requests[i].rac_length);
			job->pl_xml = copy_bytes(requests[i].pl, requests[i].pl_length);
			job->rac_length = requests[i].rac_length;
			job->pl_length = requests[i].pl_length;
			job->result = &results[i];
			job->waiter = &waiter;
		}
		if (job == NULL || job->rac_xml == NULL || job->pl_xml == NULL) {
			if (job)
				job_free(job);
			status = lic_error_set(error, LIC_INTERNAL, "out of memory");
			break;
		}
		if (last)
			last->next = job;
		else
			first = job;
		last = job;
	}
	if (status == LIC_OK)
		status = enqueue(engine, first, last, count, error);
	if (status != LIC_OK) {
		while (first) {
			struct job *next = first->next;
			job_free(first);
			first = next;
		}
		/* Every result says why it has no license. */
		for (size_t i = 0; i < count; i++)
			lic_error_set(&results[i].error, status, "%s",
				      status == LIC_OVERLOADED ? "the issuing queue is full: retry shortly"
							       : "out of memory");
	} else {
		pthread_mutex_lock(&waiter.lock);
		while (waiter.remaining > 0)
			pthread_cond_wait(&waiter.done, &waiter.lock);
		pthread_mutex_unlock(&waiter.lock);
	}
	pthread_mutex_destroy(&waiter.lock);
	pthread_cond_destroy(&waiter.done);
	return status;
}

lic_status lic_engine_submit_acquire(lic_engine *engine, const char *body, size_t length,
				     lic_acquire_done done, void *context, lic_error *error)
{
	if (length > DOCUMENT_MAX_BYTES)
		return lic_error_set(error, LIC_TOO_LARGE, "request larger than %u bytes",
				     DOCUMENT_MAX_BYTES);
	struct job *job = calloc(1, sizeof *job);
	if (job == NULL || (job->body = copy_bytes(body, length)) == NULL) {
		free(job);
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	}
	job->kind = JOB_ACQUIRE;
	job->body_length = length;
	job->done = done;
	job->context = context;
	lic_status status = enqueue(engine, job, job, 1, error);
	if (status != LIC_OK)
		job_free(job);
	return status;
}

lic_status lic_engine_new(const lic_engine_options *options, lic_engine **out, lic_error *error)
{
	if (options == NULL || options->keyring == NULL)
		return lic_error_set(error, LIC_USAGE, "the engine needs a keyring");
	struct lic_engine *engine = calloc(1, sizeof *engine);
	if (engine == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	engine->keyring = options->keyring;
	engine->log_internal_errors = options->log_internal_errors;
	engine->batch_max = options->batch_max ? options->batch_max : DEFAULT_BATCH_MAX;
	engine->queue_max = options->queue_max ? options->queue_max : DEFAULT_QUEUE_MAX;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	engine->worker_count = options->workers ? options->workers : (unsigned)(cores > 0 ? cores : 1);
	pthread_mutex_init(&engine->queue_lock, NULL);
	pthread_cond_init(&engine->queue_ready, NULL);
	pthread_mutex_init(&engine->compromised_lock, NULL);
	pthread_mutex_init(&engine->store_lock, NULL);
	xmlInitParser();
	lic_status status =
	    pl_cache_new(options->pl_cache_entries, options->pl_cache_ttl_s, &engine->pl_cache, error);
	if (status == LIC_OK)
		status = rac_cache_new(options->rac_cache_entries, &engine->rac_cache, error);
	if (status == LIC_OK)
		status = key_usage_table_new(options->key_usage_entries, &engine->key_usage, error);
	engine->workers = status == LIC_OK ? calloc(engine->worker_count, sizeof *engine->workers) : NULL;
	if (status == LIC_OK && engine->workers == NULL)
		status = lic_error_set(error, LIC_INTERNAL, "out of memory");
	unsigned started = 0; /* threads running: the ones lic_engine_free joins */
	while (status == LIC_OK && started < engine->worker_count) {
		engine->workers[started].engine = engine;
		if (pthread_create(&engine->workers[started].thread, NULL, worker_main,
				   &engine->workers[started]) != 0)
			status = lic_error_set(error, LIC_INTERNAL, "cannot start worker threads");
		else
			started++;
	}
	if (status != LIC_OK) {
		engine->worker_count = started;
		lic_engine_free(engine);
		return status;
	}
	*out = engine;
	return LIC_OK;
}

void lic_engine_free(lic_engine *engine)
{
	if (engine == NULL)
		return;
	pthread_mutex_lock(&engine->queue_lock);
	engine->stopping = true;
	pthread_cond_broadcast(&engine->queue_ready);
	pthread_mutex_unlock(&engine->queue_lock);
	for (unsigned i = 0; engine->workers && i < engine->worker_count; i++)
		pthread_join(engine->workers[i].thread, NULL);
	free(engine->workers);
	log_compromised_uses(engine, lic_clock_now(keyring_clock(engine->keyring)), true,
			     WAIT_FOR_STORE_LOCK);
	pthread_mutex_destroy(&engine->compromised_lock);
	pthread_mutex_destroy(&engine->store_lock);
	pl_cache_free(engine->pl_cache);
	rac_cache_free(engine->rac_cache);
	key_usage_table_free(engine->key_usage);
	pthread_mutex_destroy(&engine->queue_lock);
	pthread_cond_destroy(&engine->queue_ready);
	free(engine);
}

void lic_engine_get_stats(lic_engine *engine, lic_engine_stats *out)
{
	out->licenses_issued = atomic_load(&engine->stats.licenses_issued);
	out->errors = atomic_load(&engine->stats.errors);
	out->requests_refused = atomic_load(&engine->stats.requests_refused);
	for (size_t i = 0; i < LIC_STATUS_COUNT; i++)
		out->errors_by_status[i] = atomic_load(&engine->stats.errors_by_status[i]);
	out->batches = atomic_load(&engine->stats.batches);
	out->batched_jobs = atomic_load(&engine->stats.batched_jobs);
	for (size_t i = 0; i < LIC_ENGINE_BATCH_BUCKETS; i++)
		out->batch_size_buckets[i] = atomic_load(&engine->stats.batch_size_buckets[i]);
	pthread_mutex_lock(&engine->queue_lock);
	out->queue_depth = engine->queued;
	pthread_mutex_unlock(&engine->queue_lock);
	out->private_key_operations = atomic_load(&engine->stats.private_key_operations);
	out->pl_cache_hits = atomic_load(&engine->stats.pl_cache_hits);
	out->pl_cache_misses = atomic_load(&engine->stats.pl_cache_misses);
	out->rac_cache_hits = atomic_load(&engine->stats.rac_cache_hits);
	out->rac_cache_misses = atomic_load(&engine->stats.rac_cache_misses);
	out->compromised_uses = atomic_load(&engine->stats.compromised_uses);
	out->pl_cache_entries = pl_cache_count(engine->pl_cache);
}

size_t lic_engine_get_key_usage(lic_engine *engine, lic_key_usage *out, size_t capacity,
				uint64_t *other_operations)
{
	return key_usage_table_read(engine->key_usage, out, capacity, other_operations);
}

size_t lic_engine_key_usage_entries(lic_engine *engine)
{
	return key_usage_table_limit(engine->key_usage);
}

void lic_engine_tick(lic_engine *engine)
{
	log_compromised_uses(engine, lic_clock_now(keyring_clock(engine->keyring)), false,
			     SKIP_IF_STORE_LOCKED);
}

void lic_engine_stats_since(lic_engine_stats *after, const lic_engine_stats *before)
{
	after->licenses_issued -= before->licenses_issued;
	after->errors -= before->errors;
	after->requests_refused -= before->requests_refused;
	for (size_t i = 0; i < LIC_STATUS_COUNT; i++)
		after->errors_by_status[i] -= before->errors_by_status[i];
	after->batches -= before->batches;
	after->batched_jobs -= before->batched_jobs;
	for (size_t i = 0; i < LIC_ENGINE_BATCH_BUCKETS; i++)
		after->batch_size_buckets[i] -= before->batch_size_buckets[i];
	after->private_key_operations -= before->private_key_operations;
	after->pl_cache_hits -= before->pl_cache_hits;
	after->pl_cache_misses -= before->pl_cache_misses;
	after->rac_cache_hits -= before->rac_cache_hits;
	after->rac_cache_misses -= before->rac_cache_misses;
	after->compromised_uses -= before->compromised_uses;
	/* queue_depth and pl_cache_entries are levels, not counts: kept as they are now. */
}
