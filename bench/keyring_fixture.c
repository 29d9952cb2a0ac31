/*
 * keyring_fixture.c: builds, caches and drives the benchmark stores of
 * bench_keyring.cc (see keyring_fixture.h for the layout and promises).
 *
 * Why the build looks the way it does: RSA-2048 generation costs ~0.2 s a
 * key, so 100,000 tenants × 3 keys cannot each get their own. Instead:
 *   - the tenants store draws each tenant's 3 keys (distinct within the
 *     tenant) from a pool of 64 independently generated key pairs;
 *   - the wide tenant needs 1,000 distinct keys, so they are composed from a
 *     pool of 46 random 1024-bit primes: every pair p ≠ q gives a valid
 *     RSA-2048 key pair, 46 primes give 1,035 of them at the cost of ~23
 *     key generations. Keys sharing a factor are worthless for security and
 *     fine for measuring, which is all these stores are for.
 * Everything else is what the engine itself writes: store_init, private keys
 * sealed with store_seal_private_key, files written by store_save_tenant. The
 * only shortcut is FILE_WRITE_NO_SYNC: no fsync per file in a bulk build.
 *
 * The build runs on every online CPU (at most 8 workers). Worker 0 is the
 * calling thread and prints progress to stderr.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "keyring/encoding.h"
#include "keyring/error.h"
#include "keyring/file_io.h"
#include "keyring/snapshot.h"
#include "keyring/store.h"
#include "keyring/tenant.h"
#include "keyring/tenant_file.h"

#include "keyring_fixture.h"

#define DEFAULT_CACHE_ROOT "/tmp/licensor-bench-store"
#define TENANT_KEY_POOL_SIZE 64
#define WORKERS_MAX 8
#define PRIME_BITS 1024
#define RSA_PUBLIC_EXPONENT 65537

/* The history every benchmark tenant has: created 2023-01-01, each later
 * version rolled out over 7 days after `interval` seconds. */
#define HISTORY_START 1672531200 /* 2023-01-01T00:00:00Z */
#define ROLLOUT_SECONDS (7 * 86400)
#define TENANTS_STORE_INTERVAL (365 * 86400)
#define WIDE_TENANT_INTERVAL 86400

/* ---- small helpers ---- */

static double seconds_since(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t worker_count(void)
{
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	if (online < 1)
		return 1;
	return online > WORKERS_MAX ? WORKERS_MAX : (size_t)online;
}

const char *bench_cache_root(void)
{
	const char *root = getenv("LICENSOR_BENCH_DIR");
	return root != NULL && root[0] != '\0' ? root : DEFAULT_CACHE_ROOT;
}

void bench_tenant_name(size_t index, char out[BENCH_TENANT_NAME_SIZE])
{
	/* Store sizes stop at 1,000,000 tenants: six digits. */
	snprintf(out, BENCH_TENANT_NAME_SIZE, "tenant-%06u", (unsigned)(index % 1000000));
}

/* ---- running work on every CPU ---- */

/* One share of a parallel job: worker `worker` of `workers`. */
typedef lic_status (*work_function)(void *context, size_t worker, size_t workers, lic_error *error);

struct worker_thread {
	pthread_t thread;
	work_function function;
	void *context;
	size_t worker, workers;
	lic_status status;
	lic_error error;
};

static void *worker_main(void *argument)
{
	struct worker_thread *self = argument;
	self->status = self->function(self->context, self->worker, self->workers, &self->error);
	return NULL;
}

/* Runs function on `workers` workers, the calling thread being worker 0.
 * Returns the first failure. */
static lic_status run_workers(size_t workers, work_function function, void *context, lic_error *error)
{
	lic_status status = LIC_OK;
	struct worker_thread *threads = calloc(workers, sizeof *threads);
	bool *started = calloc(workers, sizeof *started);
	if (threads == NULL || started == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	for (size_t i = 1; i < workers; i++) {
		threads[i] = (struct worker_thread){
		    .function = function, .context = context, .worker = i, .workers = workers};
		started[i] = pthread_create(&threads[i].thread, NULL, worker_main, &threads[i]) == 0;
	}
	status = function(context, 0, workers, error);
	for (size_t i = 1; i < workers; i++) {
		if (started[i])
			pthread_join(threads[i].thread, NULL);
		else /* no thread for this share: do it here */
			worker_main(&threads[i]);
		if (status == LIC_OK && threads[i].status != LIC_OK) {
			status = threads[i].status;
			if (error != NULL)
				*error = threads[i].error;
		}
	}
out:
	free(started);
	free(threads);
	return status;
}

/* ---- key pools ---- */

struct pool_key {
	EVP_PKEY *key;
	uint8_t *spki; /* SubjectPublicKeyInfo DER */
	size_t spki_length;
	uint8_t key_id[KEY_ID_LENGTH];
};

struct key_pool {
	struct pool_key *keys;
	size_t count;
};

static void key_pool_cleanup(struct key_pool *pool)
{
	for (size_t i = 0; pool->keys != NULL && i < pool->count; i++) {
		EVP_PKEY_free(pool->keys[i].key);
		free(pool->keys[i].spki);
	}
	free(pool->keys);
	pool->keys = NULL;
	pool->count = 0;
}

/* Fills in the public side of every key of the pool. */
static lic_status key_pool_describe(struct key_pool *pool, lic_error *error)
{
	for (size_t i = 0; i < pool->count; i++) {
		struct pool_key *entry = &pool->keys[i];
		lic_status status =
		    key_material_public_der(entry->key, &entry->spki, &entry->spki_length, error);
		if (status != LIC_OK)
			return status;
		key_id_of_spki(entry->spki, entry->spki_length, entry->key_id);
	}
	return LIC_OK;
}

static lic_status generate_keys_work(void *context, size_t worker, size_t workers, lic_error *error)
{
	struct key_pool *pool = context;
	for (size_t i = worker; i < pool->count; i += workers) {
		lic_status status = key_material_generate(KEY_ALGORITHM_RSA_2048, &pool->keys[i].key, error);
		if (status != LIC_OK)
			return status;
	}
	return LIC_OK;
}

/* `count` independently generated RSA-2048 key pairs. */
static lic_status key_pool_generate(size_t count, struct key_pool *pool, lic_error *error)
{
	lic_status status = LIC_OK;
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	pool->count = count;
	pool->keys = calloc(count, sizeof *pool->keys);
	if (pool->keys == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	LIC_TRY(run_workers(worker_count(), generate_keys_work, pool, error));
	LIC_TRY(key_pool_describe(pool, error));
	fprintf(stderr, "bench: generated %zu RSA-2048 key pairs in %.1f s\n", count, seconds_since(&start));
out:
	if (status != LIC_OK)
		key_pool_cleanup(pool);
	return status;
}

/* A copy of the pool with its own EVP_PKEY objects, one per build worker, so
 * that no two threads ever encode the same key object at once. */
static lic_status key_pool_duplicate(const struct key_pool *source, struct key_pool *copy, lic_error *error)
{
	lic_status status = LIC_OK;
	copy->count = source->count;
	copy->keys = calloc(source->count, sizeof *copy->keys);
	if (copy->keys == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	for (size_t i = 0; i < source->count; i++) {
		struct pool_key *entry = &copy->keys[i];
		entry->key = EVP_PKEY_dup(source->keys[i].key);
		entry->spki = malloc(source->keys[i].spki_length);
		if (entry->key == NULL || entry->spki == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "cannot copy key %zu of the pool", i);
		memcpy(entry->spki, source->keys[i].spki, source->keys[i].spki_length);
		entry->spki_length = source->keys[i].spki_length;
		memcpy(entry->key_id, source->keys[i].key_id, KEY_ID_LENGTH);
	}
out:
	if (status != LIC_OK)
		key_pool_cleanup(copy);
	return status;
}

struct prime_job {
	BIGNUM **primes;
	size_t count;
};

static lic_status generate_primes_work(void *context, size_t worker, size_t workers, lic_error *error)
{
	struct prime_job *job = context;
	lic_status status = LIC_OK;
	BN_CTX *bn_context = BN_CTX_new();
	if (bn_context == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	for (size_t i = worker; i < job->count; i += workers) {
		BIGNUM *prime = BN_new();
		if (prime == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
		job->primes[i] = prime;
		/* Top two bits set (OpenSSL's prime generator does it), so p × q has
		 * exactly 2048 bits; p − 1 must be prime to e for d to exist. */
		do {
			if (!BN_generate_prime_ex2(prime, PRIME_BITS, 0, NULL, NULL, NULL, bn_context))
				LIC_FAIL(error, LIC_INTERNAL, "prime generation failed");
		} while (BN_mod_word(prime, RSA_PUBLIC_EXPONENT) == 1);
	}
out:
	BN_CTX_free(bn_context);
	return status;
}

/* The RSA key pair of primes p and q, with e = 65537. */
static lic_status compose_rsa_key(const BIGNUM *p, const BIGNUM *q, BN_CTX *bn_context, EVP_PKEY **out,
				  lic_error *error)
{
	lic_status status = LIC_OK;
	OSSL_PARAM_BLD *builder = NULL;
	OSSL_PARAM *parameters = NULL;
	EVP_PKEY_CTX *key_context = NULL;
	BN_CTX_start(bn_context);
	BIGNUM *n = BN_CTX_get(bn_context), *e = BN_CTX_get(bn_context), *d = BN_CTX_get(bn_context);
	BIGNUM *p1 = BN_CTX_get(bn_context), *q1 = BN_CTX_get(bn_context), *phi = BN_CTX_get(bn_context);
	BIGNUM *dp = BN_CTX_get(bn_context), *dq = BN_CTX_get(bn_context), *qinv = BN_CTX_get(bn_context);
	if (qinv == NULL || !BN_set_word(e, RSA_PUBLIC_EXPONENT) || !BN_mul(n, p, q, bn_context) ||
	    !BN_sub(p1, p, BN_value_one()) || !BN_sub(q1, q, BN_value_one()) ||
	    !BN_mul(phi, p1, q1, bn_context) || !BN_mod_inverse(d, e, phi, bn_context) ||
	    !BN_mod(dp, d, p1, bn_context) || !BN_mod(dq, d, q1, bn_context) ||
	    !BN_mod_inverse(qinv, q, p, bn_context))
		LIC_FAIL(error, LIC_INTERNAL, "RSA key arithmetic failed");
	builder = OSSL_PARAM_BLD_new();
	if (builder == NULL || !OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_E, e) ||
	    !OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_D, d) ||
	    !OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_FACTOR1, p) ||
	    !OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_FACTOR2, q) ||
	    !OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_EXPONENT1, dp) ||
	    !OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_EXPONENT2, dq) ||
	    !OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, qinv))
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	parameters = OSSL_PARAM_BLD_to_param(builder);
	key_context = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (parameters == NULL || key_context == NULL || EVP_PKEY_fromdata_init(key_context) <= 0 ||
	    EVP_PKEY_fromdata(key_context, out, EVP_PKEY_KEYPAIR, parameters) <= 0)
		LIC_FAIL(error, LIC_INTERNAL, "cannot build an RSA key from its primes");
out:
	EVP_PKEY_CTX_free(key_context);
	OSSL_PARAM_free(parameters);
	OSSL_PARAM_BLD_free(builder);
	BN_CTX_end(bn_context);
	return status;
}

/* `count` distinct RSA-2048 key pairs composed from a pool of primes. */
static lic_status key_pool_compose(size_t count, struct key_pool *pool, lic_error *error)
{
	lic_status status = LIC_OK;
	struct timespec start;
	struct prime_job job = {NULL, 2};
	BN_CTX *bn_context = BN_CTX_new();
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (job.count * (job.count - 1) / 2 < count)
		job.count++;
	job.primes = calloc(job.count, sizeof *job.primes);
	pool->count = 0;
	pool->keys = calloc(count, sizeof *pool->keys);
	if (bn_context == NULL || job.primes == NULL || pool->keys == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	LIC_TRY(run_workers(worker_count(), generate_primes_work, &job, error));
	for (size_t i = 0; i < job.count && pool->count < count; i++) {
		for (size_t j = i + 1; j < job.count && pool->count < count; j++) {
			LIC_TRY(compose_rsa_key(job.primes[i], job.primes[j], bn_context,
						&pool->keys[pool->count].key, error));
			pool->count++;
		}
	}
	LIC_TRY(key_pool_describe(pool, error));
	fprintf(stderr, "bench: composed %zu RSA-2048 key pairs from %zu primes in %.1f s\n", count,
		job.count, seconds_since(&start));
out:
	for (size_t i = 0; job.primes != NULL && i < job.count; i++)
		BN_clear_free(job.primes[i]);
	free(job.primes);
	BN_CTX_free(bn_context);
	if (status != LIC_OK)
		key_pool_cleanup(pool);
	return status;
}

/* ---- tenants ---- */

/* Builds tenant `name` with one version per key (the last one active, the
 * others retained after a completed rollout each) and writes its file. */
static lic_status write_tenant(const struct store *store, const char *name, struct pool_key *const *keys,
			       size_t version_count, int64_t interval, lic_error *error)
{
	lic_status status = LIC_OK;
	struct key_version version;
	bool version_owned = false;
	struct tenant *tenant = tenant_new(name, HISTORY_START);
	if (tenant == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	for (size_t i = 0; i < version_count; i++) {
		int64_t created = HISTORY_START + (int64_t)i * interval;
		memset(&version, 0, sizeof version);
		version_owned = true;
		version.number = (uint32_t)(i + 1);
		version.algorithm = KEY_ALGORITHM_RSA_2048;
		version.origin = KEY_ORIGIN_MANAGED;
		version.public_key_der = malloc(keys[i]->spki_length);
		if (version.public_key_der == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
		memcpy(version.public_key_der, keys[i]->spki, keys[i]->spki_length);
		version.public_key_length = keys[i]->spki_length;
		memcpy(version.key_id, keys[i]->key_id, KEY_ID_LENGTH);
		hex_encode(version.key_id, KEY_ID_LENGTH, version.key_id_hex);
		bool last = i + 1 == version_count;
		version.state = last ? LIC_KEY_STATE_ACTIVE : LIC_KEY_STATE_RETAINED;
		version.state_before_revoke = LIC_KEY_STATE_ACTIVE;
		version.created_at = created;
		version.activated_at = created;
		version.retained_at = last ? 0 : created + interval + ROLLOUT_SECONDS;
		LIC_TRY(store_seal_private_key(store->kek, name, &version, keys[i]->key, error));
		LIC_TRY(tenant_append_version(tenant, &version, error));
		version_owned = false;
	}
	if (version_count > 1) {
		tenant->rollout = (struct tenant_rollout){
		    .outcome = ROLLOUT_COMPLETED,
		    .from_version = (uint32_t)(version_count - 1),
		    .to_version = (uint32_t)version_count,
		    .started_at = HISTORY_START + (int64_t)(version_count - 1) * interval,
		    .duration_s = ROLLOUT_SECONDS,
		    .ended_at = HISTORY_START + (int64_t)(version_count - 1) * interval + ROLLOUT_SECONDS,
		};
	}
	LIC_TRY(store_save_tenant(store, tenant, FILE_WRITE_NO_SYNC, error));
out:
	if (version_owned) {
		free(version.public_key_der);
		free(version.sealed_private_key);
	}
	tenant_free(tenant);
	return status;
}

/* ---- the tenants store ---- */

struct store_build {
	const struct store *store;
	struct key_pool *pools; /* one per worker */
	size_t tenant_count;
	bool skip_existing;
	atomic_size_t done;
	atomic_bool failed;
	struct timespec start; /* of the writing, after key generation */
};

static void report_progress(struct store_build *build, size_t done)
{
	double elapsed = seconds_since(&build->start);
	double rate = elapsed > 0 ? (double)done / elapsed : 0;
	double remaining = rate > 0 ? (double)(build->tenant_count - done) / rate : 0;
	fprintf(stderr, "bench: %zu/%zu tenants (%3.0f%%), %.1f s, %.0f tenants/s, ~%.0f s left\n", done,
		build->tenant_count, 100.0 * (double)done / (double)build->tenant_count, elapsed, rate,
		remaining);
}

static lic_status build_tenants_work(void *context, size_t worker, size_t workers, lic_error *error)
{
	struct store_build *build = context;
	struct key_pool *pool = &build->pools[worker];
	size_t step = build->tenant_count / 20 ? build->tenant_count / 20 : 1;
	size_t next_report = step;
	for (size_t index = worker; index < build->tenant_count; index += workers) {
		if (atomic_load(&build->failed))
			return LIC_OK; /* another worker reports the failure */
		char name[BENCH_TENANT_NAME_SIZE];
		bench_tenant_name(index, name);
		if (!build->skip_existing || !store_tenant_exists(build->store, name)) {
			/* BENCH_VERSIONS_PER_TENANT keys of the pool, distinct within the tenant. */
			struct pool_key *keys[BENCH_VERSIONS_PER_TENANT];
			uint64_t random_state = index;
			size_t chosen[BENCH_VERSIONS_PER_TENANT];
			for (size_t k = 0; k < BENCH_VERSIONS_PER_TENANT; k++) {
				bool distinct;
				do {
					chosen[k] = (size_t)(splitmix64(&random_state) % pool->count);
					distinct = true;
					for (size_t m = 0; m < k; m++)
						distinct = distinct && chosen[m] != chosen[k];
				} while (!distinct);
				keys[k] = &pool->keys[chosen[k]];
			}
			lic_status status = write_tenant(build->store, name, keys, BENCH_VERSIONS_PER_TENANT,
							 TENANTS_STORE_INTERVAL, error);
			if (status != LIC_OK) {
				atomic_store(&build->failed, true);
				return status;
			}
		}
		size_t done = atomic_fetch_add(&build->done, 1) + 1;
		if (worker == 0 && done >= next_report) {
			report_progress(build, done);
			while (next_report <= done)
				next_report += step;
		}
	}
	return LIC_OK;
}

/* Opens the store in `directory`, or creates it (KEK in <directory>/kek). */
static lic_status open_or_init_store(const char *directory, struct store **out, lic_error *error)
{
	char kek_path[PATH_MAX], world_path[PATH_MAX];
	lic_status status = file_join(kek_path, sizeof kek_path, directory, "kek", error);
	if (status == LIC_OK)
		status = file_join(world_path, sizeof world_path, directory, "world.xml", error);
	if (status != LIC_OK)
		return status;
	struct store_options options = {.directory = directory, .kek_file = kek_path};
	if (access(world_path, F_OK) == 0)
		return store_open(&options, out, error);
	return store_init(&options, out, error);
}

static lic_status count_tenants(const struct store *store, size_t *count, lic_error *error)
{
	char **names = NULL;
	lic_status status = store_list_tenants(store, &names, count, error);
	if (status != LIC_OK)
		return status;
	for (size_t i = 0; i < *count; i++)
		free(names[i]);
	free(names);
	return LIC_OK;
}

static void print_disk_usage(const char *store_dir)
{
	struct bench_disk_usage usage;
	if (bench_store_disk_usage(store_dir, &usage, NULL) != LIC_OK)
		return;
	fprintf(stderr, "bench: %s: %.1f MiB on disk (%.1f MiB in %llu files)\n", store_dir,
		(double)usage.allocated_bytes / (1024.0 * 1024.0),
		(double)usage.file_bytes / (1024.0 * 1024.0), (unsigned long long)usage.files);
}

lic_status bench_store_prepare(const char *cache_root, size_t tenant_count, char *store_dir,
			       size_t store_dir_size, lic_error *error)
{
	lic_status status = LIC_OK;
	struct store *store = NULL;
	struct key_pool pool = {NULL, 0};
	struct store_build build = {.tenant_count = tenant_count};
	size_t workers = worker_count(), existing = 0;
	struct timespec start;

	if (tenant_count == 0 || tenant_count > 1000000)
		LIC_FAIL(error, LIC_USAGE, "the tenant count must be between 1 and 1000000");
	LIC_TRY(file_make_directory(cache_root, error));
	if (snprintf(store_dir, store_dir_size, "%s/tenants-%zu", cache_root, tenant_count) >=
	    (int)store_dir_size)
		LIC_FAIL(error, LIC_TOO_LARGE, "cache path too long");
	LIC_TRY(open_or_init_store(store_dir, &store, error));
	LIC_TRY(count_tenants(store, &existing, error));
	if (existing == tenant_count) {
		fprintf(stderr, "bench: reusing %s (%zu tenants)\n", store_dir, tenant_count);
		print_disk_usage(store_dir);
		goto out;
	}
	if (existing > tenant_count)
		LIC_FAIL(error, LIC_STATE, "%s holds %zu tenants, more than %zu: remove it", store_dir,
			 existing, tenant_count);
	fprintf(stderr, "bench: building %s: %zu tenants × %d versions (%zu already there), %zu workers\n",
		store_dir, tenant_count, BENCH_VERSIONS_PER_TENANT, existing, workers);
	xmlInitParser(); /* before any thread uses libxml2 */
	clock_gettime(CLOCK_MONOTONIC, &start);
	LIC_TRY(key_pool_generate(TENANT_KEY_POOL_SIZE, &pool, error));
	build.pools = calloc(workers, sizeof *build.pools);
	if (build.pools == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	for (size_t i = 0; i < workers; i++)
		LIC_TRY(key_pool_duplicate(&pool, &build.pools[i], error));
	build.store = store;
	build.skip_existing = existing > 0;
	atomic_init(&build.done, 0);
	atomic_init(&build.failed, false);
	clock_gettime(CLOCK_MONOTONIC, &build.start);
	LIC_TRY(run_workers(workers, build_tenants_work, &build, error));
	fprintf(stderr, "bench: built %s: %zu tenants written in %.1f s (%.0f tenants/s), %.1f s in all\n",
		store_dir, tenant_count - existing, seconds_since(&build.start),
		(double)(tenant_count - existing) / seconds_since(&build.start), seconds_since(&start));
	print_disk_usage(store_dir);
out:
	for (size_t i = 0; build.pools != NULL && i < workers; i++)
		key_pool_cleanup(&build.pools[i]);
	free(build.pools);
	key_pool_cleanup(&pool);
	store_close(store);
	return status;
}

/* ---- the wide tenant ---- */

lic_status bench_wide_store_prepare(const char *cache_root, size_t version_count, char *store_dir,
				    size_t store_dir_size, lic_error *error)
{
	lic_status status = LIC_OK;
	struct store *store = NULL;
	struct tenant *tenant = NULL;
	struct key_pool pool = {NULL, 0};
	struct pool_key **keys = NULL;
	struct timespec start;

	if (version_count == 0 || version_count > TENANT_VERSION_MAX)
		LIC_FAIL(error, LIC_USAGE, "the version count must be between 1 and %d", TENANT_VERSION_MAX);
	LIC_TRY(file_make_directory(cache_root, error));
	if (snprintf(store_dir, store_dir_size, "%s/versions-%zu", cache_root, version_count) >=
	    (int)store_dir_size)
		LIC_FAIL(error, LIC_TOO_LARGE, "cache path too long");
	LIC_TRY(open_or_init_store(store_dir, &store, error));
	if (store_tenant_exists(store, BENCH_WIDE_TENANT_NAME)) {
		LIC_TRY(store_load_tenant(store, BENCH_WIDE_TENANT_NAME, &tenant, error));
		if (tenant->version_count == version_count) {
			fprintf(stderr, "bench: reusing %s (tenant %s, %zu versions)\n", store_dir,
				BENCH_WIDE_TENANT_NAME, version_count);
			goto out;
		}
		LIC_FAIL(error, LIC_STATE, "%s: tenant %s has %zu versions, not %zu: remove the directory",
			 store_dir, BENCH_WIDE_TENANT_NAME, tenant->version_count, version_count);
	}
	fprintf(stderr, "bench: building %s: tenant %s with %zu versions\n", store_dir,
		BENCH_WIDE_TENANT_NAME, version_count);
	xmlInitParser();
	clock_gettime(CLOCK_MONOTONIC, &start);
	LIC_TRY(key_pool_compose(version_count, &pool, error));
	keys = calloc(version_count, sizeof *keys);
	if (keys == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	for (size_t i = 0; i < version_count; i++)
		keys[i] = &pool.keys[i];
	LIC_TRY(
	    write_tenant(store, BENCH_WIDE_TENANT_NAME, keys, version_count, WIDE_TENANT_INTERVAL, error));
	fprintf(stderr, "bench: built %s in %.1f s\n", store_dir, seconds_since(&start));
	print_disk_usage(store_dir);
out:
	free(keys);
	key_pool_cleanup(&pool);
	tenant_free(tenant);
	store_close(store);
	return status;
}

/* ---- disk usage ---- */

static lic_status add_directory_usage(const char *path, bool descend, struct bench_disk_usage *usage,
				      lic_error *error)
{
	DIR *directory = opendir(path);
	if (directory == NULL)
		return lic_error_set(error, LIC_IO, "cannot read %s: %s", path, strerror(errno));
	struct stat info;
	if (fstat(dirfd(directory), &info) == 0)
		usage->allocated_bytes += (uint64_t)info.st_blocks * 512;
	lic_status status = LIC_OK;
	struct dirent *entry;
	while (status == LIC_OK && (entry = readdir(directory)) != NULL) {
		if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(directory), entry->d_name, &info, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (S_ISREG(info.st_mode)) {
			usage->allocated_bytes += (uint64_t)info.st_blocks * 512;
			usage->file_bytes += (uint64_t)info.st_size;
			usage->files++;
		} else if (S_ISDIR(info.st_mode) && descend) {
			char child[PATH_MAX];
			status = file_join(child, sizeof child, path, entry->d_name, error);
			if (status == LIC_OK)
				status = add_directory_usage(child, false, usage, error);
		}
	}
	closedir(directory);
	return status;
}

lic_status bench_store_disk_usage(const char *store_dir, struct bench_disk_usage *out, lic_error *error)
{
	memset(out, 0, sizeof *out);
	return add_directory_usage(store_dir, true, out, error);
}

/* ---- keyrings ---- */

lic_status bench_keyring_open(const char *store_dir, lic_keyring **out, lic_error *error)
{
	lic_keyring_options options = {.store_dir = store_dir};
	return lic_keyring_open(&options, out, error);
}

struct warm_job {
	lic_keyring *keyring;
	char **names;
	size_t count;
};

static lic_status warm_work(void *context, size_t worker, size_t workers, lic_error *error)
{
	struct warm_job *job = context;
	lic_status status = LIC_OK;
	keyring_read_enter();
	const struct keyring_snapshot *snapshot = keyring_current(job->keyring);
	for (size_t i = worker; i < job->count && status == LIC_OK; i += workers) {
		const struct tenant *tenant = NULL;
		status = keyring_snapshot_tenant(job->keyring, snapshot, job->names[i], &tenant, error);
	}
	keyring_read_leave();
	return status;
}

lic_status bench_keyring_warm(lic_keyring *keyring, lic_error *error)
{
	struct warm_job job = {keyring, NULL, 0};
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	lic_status status = store_list_tenants(keyring_store(keyring), &job.names, &job.count, error);
	if (status != LIC_OK)
		return status;
	xmlInitParser(); /* before any thread uses libxml2 */
	size_t workers = worker_count();
	status = run_workers(workers, warm_work, &job, error);
	if (status == LIC_OK)
		fprintf(stderr, "bench: parsed %zu tenants in %.1f s (%zu workers)\n", job.count,
			seconds_since(&start), workers);
	for (size_t i = 0; i < job.count; i++)
		free(job.names[i]);
	free(job.names);
	return status;
}

lic_status bench_keyring_key_ids(lic_keyring *keyring, const char *name, char hex[][BENCH_KEY_ID_HEX_SIZE],
				 uint8_t binary[][BENCH_KEY_ID_LENGTH], size_t capacity, size_t *count,
				 lic_error *error)
{
	const struct tenant *tenant = NULL;
	keyring_read_enter();
	lic_status status = keyring_snapshot_tenant(keyring, keyring_current(keyring), name, &tenant, error);
	if (status == LIC_OK) {
		for (size_t i = 0; i < tenant->version_count && i < capacity; i++) {
			memcpy(hex[i], tenant->versions[i].key_id_hex, BENCH_KEY_ID_HEX_SIZE);
			memcpy(binary[i], tenant->versions[i].key_id, BENCH_KEY_ID_LENGTH);
		}
		*count = tenant->version_count;
	}
	keyring_read_leave();
	return status;
}

uint32_t bench_keyring_lookup_internal(lic_keyring *keyring, const char *name,
				       const uint8_t key_id[BENCH_KEY_ID_LENGTH])
{
	uint32_t number = 0;
	const struct tenant *tenant = NULL;
	keyring_read_enter();
	if (keyring_snapshot_tenant(keyring, keyring_current(keyring), name, &tenant, NULL) == LIC_OK) {
		const struct key_version *version = tenant_find_key_id(tenant, key_id);
		if (version != NULL)
			number = version->number;
	}
	keyring_read_leave();
	return number;
}

lic_status bench_keyring_rewrite_tenant(lic_keyring *keyring, const char *name, lic_error *error)
{
	lic_status status = LIC_OK;
	struct store *store = keyring_store(keyring);
	struct tenant *tenant = NULL;
	LIC_TRY(store_lock(store, error));
	LIC_TRY(store_load_tenant(store, name, &tenant, error));
	LIC_TRY(store_save_tenant(store, tenant, FILE_WRITE_NO_SYNC, error));
out:
	store_unlock(store);
	tenant_free(tenant);
	return status;
}

/* ---- one tenant ---- */

lic_status bench_store_open(const char *store_dir, bench_store **out, lic_error *error)
{
	struct store_options options = {.directory = store_dir};
	return store_open(&options, out, error);
}

void bench_store_close(bench_store *store)
{
	store_close(store);
}

lic_status bench_store_load_tenant(const bench_store *store, const char *name, bench_tenant **out,
				   lic_error *error)
{
	return store_load_tenant(store, name, out, error);
}

lic_status bench_store_read_tenant_file(const bench_store *store, const char *name, char **data,
					size_t *length, lic_error *error)
{
	char path[PATH_MAX];
	lic_status status = store_tenant_path(store, name, path, sizeof path, error);
	if (status != LIC_OK)
		return status;
	return file_read_all(path, TENANT_FILE_MAX_BYTES, data, length, error);
}

void bench_buffer_free(char *data)
{
	free(data);
}

lic_status bench_tenant_parse(const char *data, size_t length, const char *name, bench_tenant **out,
			      lic_error *error)
{
	return tenant_file_parse(data, length, name, out, error);
}

size_t bench_tenant_version_count(const bench_tenant *tenant)
{
	return tenant->version_count;
}

void bench_tenant_free(bench_tenant *tenant)
{
	tenant_free(tenant);
}
