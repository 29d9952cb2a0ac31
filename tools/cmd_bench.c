/*
 * cmd_bench.c: `licensor bench issue` (DESIGN.md §7b, §8): how many licenses
 * the issuance pipeline turns out per second, next to the ceiling OpenSSL
 * sets on the same cores in the same run.
 *
 * One run, all in this process, in a temporary store (mkdtemp under $TMPDIR)
 * that it removes afterwards, on success, failure, SIGINT or SIGTERM:
 *   1. a store, tenant "bench" with one version of --algorithm, a user key
 *      and its RAC;
 *   2. the ceiling: on --workers threads, each with its own EVP_PKEY of the
 *      tenant's key, RSA PKCS#1 v1.5 SHA-256 signatures (EVP_PKEY_sign of a
 *      32-byte digest): private-key operations per second, measured for
 *      --seconds in all, half now and half after step 4, so that a change in
 *      the machine's load during the run weighs on both figures alike;
 *   3. publishing licenses. Cold: one distinct PL per license the run can
 *      issue (1.5 × ceiling/2 × seconds, from the first half of the ceiling),
 *      written before the clock starts (public-key operations only). Hot: 64;
 *   4. an engine of --workers workers, fed through lic_engine_issue in
 *      batches of --batch from 2 × workers submitting threads, so that a batch
 *      is queued whenever a worker finishes one, for --seconds. Cold: the PL
 *      cache is disabled, so every license costs an unwrap and a signature
 *      (2 private-key operations) even if PLs had to be reused. Hot: the
 *      cache is on and holds every PL before the clock starts, so a license
 *      costs its signature only (1);
 *   5. one more license, opened with the user's key and checked against its
 *      PL's content key and the tenant's signature: a fast wrong answer is no
 *      answer;
 *   6. one JSON object on stdout.
 * Only use licenses with status OK count; anything else is counted in
 * `errors`, and a run with errors exits 1 (after printing the JSON).
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "cli.h"
#include "keyring/json_output.h"
#include "core/documents.h"
#include "core/xml_signature.h"
#include "keyring/error.h"
#include "keyring/file_io.h"
#include "keyring/snapshot.h"

#define BENCH_TENANT "bench"
#define BENCH_READER "reader@bench.example"
#define BENCH_OWNER "owner@bench.example"
#define BENCH_READER_RIGHTS "VIEW PRINT"
#define RAC_DAYS 31
#define DEFAULT_SECONDS 5.0
#define SECONDS_MAX 3600.0
#define DEFAULT_BATCH 64
#define BATCH_MAX 4096
#define WORKERS_MAX 1024
#define SUBMITTERS_PER_WORKER 2
#define HOT_PL_COUNT 64
#define COLD_PL_HEADROOM 1.5
#define COLD_PL_MAX ((size_t)1 << 18) /* about 400 MB of PLs at rsa-2048 */
#define SIGNATURE_MAX_BYTES 1024      /* rsa-4096 signs 512 */

static const struct cli_option_spec bench_options[] = {
    {"hot", false, false},  {"workers", true, false}, {"seconds", true, false}, {"algorithm", true, false},
    {"batch", true, false}, {"byok", true, false},    {NULL, false, false},
};

static const char bench_usage[] =
    "bench issue [--hot] [--workers N] [--seconds S] [--algorithm A | --byok URI] [--batch B]";

/* Set by SIGINT/SIGTERM: every loop stops, the temporary store is removed. */
static atomic_bool interrupted;

static void on_interrupt(int signal_number)
{
	(void)signal_number;
	atomic_store(&interrupted, true);
}

/* ---- time ---- */

static struct timespec monotonic_now(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now;
}

static double seconds_between(struct timespec start, struct timespec end)
{
	return (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
}

static struct timespec after_seconds(struct timespec start, double seconds)
{
	time_t whole = (time_t)seconds; /* seconds > 0 */
	struct timespec end = {.tv_sec = start.tv_sec + whole,
			       .tv_nsec = start.tv_nsec + (long)((seconds - (double)whole) * 1e9)};
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	return end;
}

static bool reached(struct timespec now, struct timespec deadline)
{
	return now.tv_sec > deadline.tv_sec ||
	       (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec);
}

/* ---- a start line for threads ---- */

/* Threads arrive and wait; the main thread waits until they have all
 * arrived, does what must happen while they stand still, then opens. */
struct rendezvous {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	unsigned arrived;
	bool open;
};

static void rendezvous_init(struct rendezvous *rendezvous)
{
	pthread_mutex_init(&rendezvous->lock, NULL);
	pthread_cond_init(&rendezvous->changed, NULL);
	rendezvous->arrived = 0;
	rendezvous->open = false;
}

static void rendezvous_destroy(struct rendezvous *rendezvous)
{
	pthread_mutex_destroy(&rendezvous->lock);
	pthread_cond_destroy(&rendezvous->changed);
}

static void rendezvous_arrive(struct rendezvous *rendezvous)
{
	pthread_mutex_lock(&rendezvous->lock);
	rendezvous->arrived++;
	pthread_cond_broadcast(&rendezvous->changed);
	while (!rendezvous->open)
		pthread_cond_wait(&rendezvous->changed, &rendezvous->lock);
	pthread_mutex_unlock(&rendezvous->lock);
}

static void rendezvous_wait_for(struct rendezvous *rendezvous, unsigned count)
{
	pthread_mutex_lock(&rendezvous->lock);
	while (rendezvous->arrived < count)
		pthread_cond_wait(&rendezvous->changed, &rendezvous->lock);
	pthread_mutex_unlock(&rendezvous->lock);
}

static void rendezvous_open(struct rendezvous *rendezvous)
{
	pthread_mutex_lock(&rendezvous->lock);
	rendezvous->open = true;
	pthread_cond_broadcast(&rendezvous->changed);
	pthread_mutex_unlock(&rendezvous->lock);
}

/* ---- settings ---- */

struct bench_settings {
	bool hot;
	unsigned workers;
	double seconds;
	enum key_algorithm algorithm;
	size_t batch;
	const char *byok_uri; /* the tenant's key is this token key (its size sets algorithm) */
	const char *pkcs11_module;
};

static lic_status parse_count(const char *text, const char *option, unsigned long maximum, unsigned long *out,
			      lic_error *error)
{
	char *end = NULL;
	errno = 0;
	unsigned long value = strtoul(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || value == 0 || value > maximum)
		return lic_error_set(error, LIC_USAGE, "--%s must be a whole number from 1 to %lu", option,
				     maximum);
	*out = value;
	return LIC_OK;
}

static lic_status parse_settings(const struct cli_args *args, struct bench_settings *settings,
				 lic_error *error)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	*settings = (struct bench_settings){.hot = cli_flag(args, "hot"),
					    .workers = cores > 0 ? (unsigned)cores : 1,
					    .seconds = DEFAULT_SECONDS,
					    .algorithm = KEY_ALGORITHM_RSA_2048,
					    .batch = DEFAULT_BATCH};
	unsigned long value = 0;
	const char *text = cli_option(args, "workers");
	if (text != NULL) {
		if (parse_count(text, "workers", WORKERS_MAX, &value, error) != LIC_OK)
			return LIC_USAGE;
		settings->workers = (unsigned)value;
	}
	text = cli_option(args, "batch");
	if (text != NULL) {
		if (parse_count(text, "batch", BATCH_MAX, &value, error) != LIC_OK)
			return LIC_USAGE;
		settings->batch = value;
	}
	text = cli_option(args, "seconds");
	if (text != NULL) {
		char *end = NULL;
		errno = 0;
		double seconds = strtod(text, &end);
		if (errno != 0 || end == text || *end != '\0' || !(seconds >= 0.1 && seconds <= SECONDS_MAX))
			return lic_error_set(error, LIC_USAGE, "--seconds must be a number from 0.1 to %.0f",
					     SECONDS_MAX);
		settings->seconds = seconds;
	}
	settings->byok_uri = cli_option(args, "byok");
	settings->pkcs11_module = cli_option(args, "pkcs11-module");
	text = cli_option(args, "algorithm");
	if (text != NULL && settings->byok_uri != NULL)
		return lic_error_set(error, LIC_USAGE,
				     "give --algorithm or --byok, not both (the token key's size decides)");
	if (text != NULL)
		return key_algorithm_parse(text, false, &settings->algorithm, error);
	return LIC_OK;
}

/* ---- the world: a temporary store, a tenant, a user, PLs ---- */

struct pl_text {
	char *xml;
	size_t length;
};

struct bench_world {
	char root[PATH_MAX]; /* the mkdtemp directory; "" until made */
	lic_keyring *keyring;
	struct tenant *tenant;   /* version 1: publishes, unwraps and signs */
	EVP_PKEY *tenant_public; /* publishing key and signature check */
	EVP_PKEY *user_key;      /* the reader's key pair */
	/* BYOK: the tenant key is in a token, so the ceiling is measured on a
	 * managed key of the same size, generated for that alone. */
	EVP_PKEY *ceiling_key;
	char *rac;
	size_t rac_length;
	struct pl_text *pls;
	size_t pl_count;
	uint8_t first_content_key[CONTENT_KEY_LENGTH]; /* of pls[0], for the final check */
};

static const struct key_version *world_version(const struct bench_world *world)
{
	return &world->tenant->versions[0];
}

static const struct kek *world_kek(const struct bench_world *world)
{
	return keyring_store(world->keyring)->kek;
}

static int remove_entry(const char *path, const struct stat *info, int type, struct FTW *walk)
{
	(void)info;
	(void)type;
	(void)walk;
	return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static void world_cleanup(struct bench_world *world)
{
	for (size_t i = 0; i < world->pl_count; i++)
		free(world->pls[i].xml);
	free(world->pls);
	free(world->rac);
	EVP_PKEY_free(world->tenant_public);
	EVP_PKEY_free(world->user_key);
	EVP_PKEY_free(world->ceiling_key);
	tenant_free(world->tenant);
	lic_keyring_close(world->keyring);
	OPENSSL_cleanse(world->first_content_key, sizeof world->first_content_key);
	if (world->root[0] != '\0' && nftw(world->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "licensor: IO: cannot remove the temporary store %s: %s\n", world->root,
			strerror(errno));
	memset(world, 0, sizeof *world);
}

static lic_status world_setup(struct bench_world *world, struct bench_settings *settings, lic_error *error)
{
	lic_status status = LIC_OK;
	struct store *store = NULL;
	struct version_key *signing_key = NULL;
	enum key_algorithm algorithm = settings->algorithm;
	char store_dir[PATH_MAX], kek_path[PATH_MAX];
	LIC_TRY(file_make_temporary_directory("licensor-bench", world->root, sizeof world->root, error));
	LIC_TRY(file_join(store_dir, sizeof store_dir, world->root, "store", error));
	LIC_TRY(file_join(kek_path, sizeof kek_path, world->root, "kek", error));
	struct store_options options = {.directory = store_dir, .kek_file = kek_path, .clock = cli_clock()};
	LIC_TRY(store_init(&options, &store, error));
	struct admin_context context;
	cli_admin_context(store, &context);
	if (settings->byok_uri != NULL) {
		cli_progress("bench: temporary store %s: tenant %s on the token key…\n", store_dir,
			     BENCH_TENANT);
		LIC_TRY(admin_tenant_add_byok(&context, BENCH_TENANT, settings->byok_uri,
					      settings->pkcs11_module, error));
	} else {
		cli_progress("bench: temporary store %s: generating the %s key of tenant %s…\n", store_dir,
			     key_algorithm_name(algorithm), BENCH_TENANT);
		LIC_TRY(admin_tenant_add(&context, BENCH_TENANT, algorithm, error));
	}
	LIC_TRY(store_load_tenant(store, BENCH_TENANT, &world->tenant, error));
	const struct key_version *version = world_version(world);
	settings->algorithm = version->algorithm;
	if (settings->byok_uri != NULL) {
		cli_progress("bench: a managed %s key for the ceiling…\n",
			     key_algorithm_name(version->algorithm));
		LIC_TRY(key_material_generate(version->algorithm, &world->ceiling_key, error));
	}
	LIC_TRY(key_material_from_public_der(version->public_key_der, version->public_key_length,
					     &world->tenant_public, error));
	LIC_TRY(version_key_open(store->kek, BENCH_TENANT, version, &signing_key, error));
	/* The reader: an ordinary rsa-2048 user key, whatever the tenant's algorithm. */
	LIC_TRY(key_material_generate(KEY_ALGORITHM_RSA_2048, &world->user_key, error));
	int64_t now = lic_clock_now(cli_clock());
	LIC_TRY(rights_account_certificate_write(
	    BENCH_TENANT, BENCH_READER, world->user_key, now - 60, now + (int64_t)RAC_DAYS * 86400,
	    signing_key, version->key_id_hex, &world->rac, &world->rac_length, error));
	struct store *taken = store;
	store = NULL; /* keyring_open_store takes it over, and closes it on failure */
	LIC_TRY(keyring_open_store(taken, cli_clock(), &world->keyring, error));
out:
	version_key_free(signing_key);
	store_close(store);
	return status;
}

/* PL `index`: a new content key wrapped to the tenant's key; the reader gets
 * VIEW PRINT (its own grant, its domain's, ANYONE's). */
static lic_status write_publishing_license(const struct bench_world *world, size_t index, int64_t now,
					   struct pl_text *out, uint8_t content_key[CONTENT_KEY_LENGTH],
					   lic_error *error)
{
	static const char *const principals[] = {BENCH_READER, "*@bench.example", "ANYONE"};
	static const char *const rights[] = {BENCH_READER_RIGHTS, "VIEW", "VIEW"};
	char content_id[32];
	snprintf(content_id, sizeof content_id, "bench-%08zu", index);
	struct publish_request request = {.tenant = BENCH_TENANT,
					  .content_id = content_id,
					  .owner = BENCH_OWNER,
					  .grant_principals = principals,
					  .grant_rights = rights,
					  .grant_count = sizeof principals / sizeof principals[0],
					  .license_validity_days = 30,
					  .issued_at = now};
	if (RAND_priv_bytes(content_key, CONTENT_KEY_LENGTH) != 1)
		return lic_error_set(error, LIC_INTERNAL, "random generator failed");
	return publishing_license_write(&request, world->tenant_public, world_version(world)->key_id_hex,
					content_key, &out->xml, &out->length, error);
}

struct pl_writing {
	struct bench_world *world;
	int64_t now;
	atomic_size_t next;
	atomic_bool failed;
	pthread_mutex_t error_lock;
	lic_error error;
};

static void *pl_writer_main(void *argument)
{
	struct pl_writing *writing = argument;
	struct bench_world *world = writing->world;
	uint8_t content_key[CONTENT_KEY_LENGTH];
	for (;;) {
		size_t index = atomic_fetch_add(&writing->next, 1);
		if (index >= world->pl_count || atomic_load(&writing->failed) || atomic_load(&interrupted))
			break;
		lic_error error = {0};
		if (write_publishing_license(world, index, writing->now, &world->pls[index], content_key,
					     &error) != LIC_OK) {
			pthread_mutex_lock(&writing->error_lock);
			if (!atomic_exchange(&writing->failed, true))
				writing->error = error;
			pthread_mutex_unlock(&writing->error_lock);
			break;
		}
		if (index == 0)
			memcpy(world->first_content_key, content_key, CONTENT_KEY_LENGTH);
	}
	OPENSSL_cleanse(content_key, sizeof content_key);
	return NULL;
}

/* Writes `count` PLs on `threads` threads. */
static lic_status world_write_pls(struct bench_world *world, size_t count, unsigned threads, lic_error *error)
{
	world->pls = calloc(count, sizeof *world->pls);
	if (world->pls == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory for %zu publishing licenses", count);
	world->pl_count = count;
	struct pl_writing writing = {.world = world, .now = lic_clock_now(cli_clock())};
	atomic_init(&writing.next, 0);
	atomic_init(&writing.failed, false);
	pthread_mutex_init(&writing.error_lock, NULL);
	pthread_t *handles = calloc(threads, sizeof *handles);
	unsigned started = 0;
	if (handles != NULL)
		for (; started < threads; started++)
			if (pthread_create(&handles[started], NULL, pl_writer_main, &writing) != 0)
				break;
	if (started == 0)
		pl_writer_main(&writing);
	for (unsigned i = 0; i < started; i++)
		pthread_join(handles[i], NULL);
	free(handles);
	pthread_mutex_destroy(&writing.error_lock);
	if (atomic_load(&writing.failed)) {
		*error = writing.error;
		return writing.error.status;
	}
	return LIC_OK;
}

/* ---- the ceiling: OpenSSL's own private-key operations ---- */

struct ceiling_thread {
	pthread_t handle;
	struct rendezvous *start;
	const struct timespec *deadline; /* set before the start opens */
	EVP_PKEY *key;                   /* this thread's own copy */
	EVP_PKEY_CTX *context;
	uint64_t operations;
	struct timespec end;
	bool failed;
};

static void *ceiling_main(void *argument)
{
	struct ceiling_thread *thread = argument;
	uint8_t digest[32], signature[SIGNATURE_MAX_BYTES];
	for (size_t i = 0; i < sizeof digest; i++)
		digest[i] = (uint8_t)(0xa5 ^ i);
	rendezvous_arrive(thread->start);
	struct timespec now = monotonic_now();
	while (!atomic_load(&interrupted)) {
		size_t length = sizeof signature;
		if (EVP_PKEY_sign(thread->context, signature, &length, digest, sizeof digest) != 1) {
			thread->failed = true;
			break;
		}
		thread->operations++;
		now = monotonic_now();
		if (reached(now, *thread->deadline))
			break;
	}
	thread->end = now;
	return NULL;
}

struct ceiling_result {
	uint64_t operations;
	double elapsed_s;
	double operations_per_s;
};

static lic_status measure_ceiling(struct bench_world *world, unsigned threads, double seconds,
				  struct ceiling_result *result, lic_error *error)
{
	lic_status status = LIC_OK;
	struct ceiling_thread *workers = calloc(threads, sizeof *workers);
	unsigned started = 0;
	struct rendezvous start;
	struct timespec begin = monotonic_now(), deadline = begin;
	rendezvous_init(&start);
	memset(result, 0, sizeof *result);
	if (workers == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	for (unsigned i = 0; i < threads; i++) {
		struct ceiling_thread *worker = &workers[i];
		if (world->ceiling_key != NULL) {
			worker->key = EVP_PKEY_dup(world->ceiling_key);
			if (worker->key == NULL)
				LIC_FAIL(error, LIC_INTERNAL, "out of memory");
		} else {
			LIC_TRY(store_open_private_key(world_kek(world), BENCH_TENANT, world_version(world),
						       &worker->key, error));
		}
		worker->context = EVP_PKEY_CTX_new(worker->key, NULL);
		if (worker->context == NULL || EVP_PKEY_sign_init(worker->context) != 1 ||
		    EVP_PKEY_CTX_set_rsa_padding(worker->context, RSA_PKCS1_PADDING) <= 0 ||
		    EVP_PKEY_CTX_set_signature_md(worker->context, EVP_sha256()) <= 0)
			LIC_FAIL(error, LIC_INTERNAL, "cannot set up an RSA PKCS#1 SHA-256 signature");
		worker->start = &start;
		worker->deadline = &deadline;
	}
	for (; started < threads; started++)
		if (pthread_create(&workers[started].handle, NULL, ceiling_main, &workers[started]) != 0)
			break;
	if (started < threads)
		status = lic_error_set(error, LIC_INTERNAL, "cannot start %u threads", threads);
	rendezvous_wait_for(&start, started);
	begin = monotonic_now();
	deadline = after_seconds(begin, seconds);
	rendezvous_open(&start);
out:;
	struct timespec last = begin;
	bool failed = false;
	for (unsigned i = 0; i < started; i++) {
		pthread_join(workers[i].handle, NULL);
		result->operations += workers[i].operations;
		failed = failed || workers[i].failed;
		if (seconds_between(last, workers[i].end) > 0)
			last = workers[i].end;
	}
	if (status == LIC_OK && failed)
		status =
		    lic_error_set(error, LIC_INTERNAL, "an RSA signature failed while measuring the ceiling");
	result->elapsed_s = seconds_between(begin, last);
	if (result->elapsed_s > 0)
		result->operations_per_s = (double)result->operations / result->elapsed_s;
	for (unsigned i = 0; workers != NULL && i < threads; i++) {
		EVP_PKEY_CTX_free(workers[i].context);
		EVP_PKEY_free(workers[i].key);
	}
	free(workers);
	rendezvous_destroy(&start);
	return status;
}

/* ---- the engine run ---- */

struct issue_run {
	lic_engine *engine;
	const struct bench_world *world;
	bool hot;
	size_t batch;
	atomic_size_t next_pl; /* cold: the next unused PL */
	atomic_uint_fast64_t pl_reuses;
	struct rendezvous go;     /* the submitters, warmed up */
	struct timespec deadline; /* set before `go` opens */
	pthread_mutex_t error_lock;
	lic_error first_error;
};

struct submitter {
	pthread_t handle;
	struct issue_run *run;
	size_t hot_cursor;
	lic_license_request *requests;
	lic_license_result *results;
	uint64_t licenses, errors;
	struct timespec end;
};

static void record_error(struct issue_run *run, const lic_error *error)
{
	pthread_mutex_lock(&run->error_lock);
	if (run->first_error.status == LIC_OK)
		run->first_error = *error;
	pthread_mutex_unlock(&run->error_lock);
}

static size_t next_pl_index(struct submitter *submitter)
{
	struct issue_run *run = submitter->run;
	if (run->hot)
		return submitter->hot_cursor++ % run->world->pl_count;
	size_t index = atomic_fetch_add(&run->next_pl, 1);
	if (index >= run->world->pl_count) {
		/* Ran out of fresh PLs: reuse one. The PL cache is off in a cold
		 * run, so a reused PL still costs its unwrap. */
		atomic_fetch_add(&run->pl_reuses, 1);
		index %= run->world->pl_count;
	}
	return index;
}

/* One lic_engine_issue of a batch; `timed` counts the licenses. Errors
 * always count. */
static void issue_batch(struct submitter *submitter, bool timed)
{
	struct issue_run *run = submitter->run;
	const struct bench_world *world = run->world;
	for (size_t i = 0; i < run->batch; i++) {
		const struct pl_text *pl = &world->pls[next_pl_index(submitter)];
		submitter->requests[i] = (lic_license_request){.rac = world->rac,
							       .rac_length = world->rac_length,
							       .pl = pl->xml,
							       .pl_length = pl->length};
	}
	lic_error error = {0};
	if (lic_engine_issue(run->engine, submitter->requests, run->batch, submitter->results, &error) !=
	    LIC_OK) {
		submitter->errors += run->batch;
		record_error(run, &error);
		return;
	}
	for (size_t i = 0; i < run->batch; i++) {
		lic_license_result *result = &submitter->results[i];
		if (result->error.status == LIC_OK && result->use_license != NULL) {
			if (timed)
				submitter->licenses++;
		} else {
			submitter->errors++;
			record_error(run, &result->error);
		}
		free(result->use_license);
		result->use_license = NULL;
	}
}

static void *submitter_main(void *argument)
{
	struct submitter *submitter = argument;
	struct issue_run *run = submitter->run;
	/* Warm-up, not timed: every worker decrypts its key copy. */
	if (!atomic_load(&interrupted))
		issue_batch(submitter, false);
	rendezvous_arrive(&run->go);
	struct timespec now = monotonic_now();
	while (!atomic_load(&interrupted)) {
		issue_batch(submitter, true);
		now = monotonic_now();
		if (reached(now, run->deadline))
			break;
	}
	submitter->end = now;
	return NULL;
}

struct issue_result {
	uint64_t licenses, errors, pl_reuses;
	double elapsed_s;
	lic_engine_stats stats; /* of the timed phase */
	lic_error first_error;
};

/* Issues every hot PL once, so that the cache holds them all. */
static lic_status warm_pl_cache(lic_engine *engine, const struct bench_world *world, lic_error *error)
{
	lic_status status = LIC_OK;
	lic_license_request *requests = calloc(world->pl_count, sizeof *requests);
	lic_license_result *results = calloc(world->pl_count, sizeof *results);
	if (requests == NULL || results == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	for (size_t i = 0; i < world->pl_count; i++)
		requests[i] = (lic_license_request){.rac = world->rac,
						    .rac_length = world->rac_length,
						    .pl = world->pls[i].xml,
						    .pl_length = world->pls[i].length};
	LIC_TRY(lic_engine_issue(engine, requests, world->pl_count, results, error));
	for (size_t i = 0; i < world->pl_count; i++) {
		if (status == LIC_OK && results[i].error.status != LIC_OK) {
			*error = results[i].error;
			status = results[i].error.status;
		}
		free(results[i].use_license);
	}
out:
	free(requests);
	free(results);
	return status;
}

static lic_status run_engine(struct bench_world *world, lic_engine *engine,
			     const struct bench_settings *settings, unsigned submitter_count,
			     struct issue_result *result, lic_error *error)
{
	lic_status status = LIC_OK;
	struct issue_run run = {
	    .engine = engine, .world = world, .hot = settings->hot, .batch = settings->batch};
	struct submitter *submitters = calloc(submitter_count, sizeof *submitters);
	unsigned started = 0;
	lic_engine_stats before = {0};
	struct timespec begin = monotonic_now();
	atomic_init(&run.next_pl, 0);
	atomic_init(&run.pl_reuses, 0);
	pthread_mutex_init(&run.error_lock, NULL);
	rendezvous_init(&run.go);
	memset(result, 0, sizeof *result);
	if (submitters == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	for (unsigned i = 0; i < submitter_count; i++) {
		submitters[i].run = &run;
		submitters[i].hot_cursor = i * (world->pl_count / submitter_count + 1);
		submitters[i].requests = calloc(settings->batch, sizeof *submitters[i].requests);
		submitters[i].results = calloc(settings->batch, sizeof *submitters[i].results);
		if (submitters[i].requests == NULL || submitters[i].results == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	}
	if (settings->hot)
		LIC_TRY(warm_pl_cache(engine, world, error));
	for (; started < submitter_count; started++)
		if (pthread_create(&submitters[started].handle, NULL, submitter_main, &submitters[started]) !=
		    0)
			break;
	if (started < submitter_count)
		status =
		    lic_error_set(error, LIC_INTERNAL, "cannot start %u submitting threads", submitter_count);
	rendezvous_wait_for(&run.go, started);
	/* Every warm-up batch has completed and nothing is queued: the
	 * counters stand still while they are read. */
	lic_engine_get_stats(engine, &before);
	begin = monotonic_now();
	run.deadline = after_seconds(begin, settings->seconds);
	rendezvous_open(&run.go);
out:;
	struct timespec last = begin;
	for (unsigned i = 0; i < started; i++) {
		pthread_join(submitters[i].handle, NULL);
		result->licenses += submitters[i].licenses;
		result->errors += submitters[i].errors;
		if (seconds_between(last, submitters[i].end) > 0)
			last = submitters[i].end;
	}
	lic_engine_get_stats(engine, &result->stats);
	lic_engine_stats_since(&result->stats, &before);
	result->elapsed_s = seconds_between(begin, last);
	result->pl_reuses = atomic_load(&run.pl_reuses);
	result->first_error = run.first_error;
	for (unsigned i = 0; submitters != NULL && i < submitter_count; i++) {
		free(submitters[i].requests);
		free(submitters[i].results);
	}
	free(submitters);
	rendezvous_destroy(&run.go);
	pthread_mutex_destroy(&run.error_lock);
	return status;
}

/* One more license for pls[0], opened as a client would: the tenant's
 * signature verifies, the reader's key unwraps the PL's content key, and the
 * rights are the policy's. */
static lic_status check_one_license(const struct bench_world *world, lic_engine *engine, lic_error *error)
{
	lic_status status = LIC_OK;
	lic_license_request request = {.rac = world->rac,
				       .rac_length = world->rac_length,
				       .pl = world->pls[0].xml,
				       .pl_length = world->pls[0].length};
	lic_license_result result = {0};
	struct use_license license;
	bool license_read = false;
	uint8_t content_key[CONTENT_KEY_LENGTH];
	LIC_TRY(lic_engine_issue(engine, &request, 1, &result, error));
	if (result.error.status != LIC_OK) {
		*error = result.error;
		LIC_TRY(result.error.status);
	}
	LIC_TRY(use_license_read(result.use_license, result.use_license_length, &license, error));
	license_read = true;
	LIC_TRY(xml_signature_verify(license.document, world->tenant_public, error));
	LIC_TRY(use_license_open(&license, world->user_key, content_key, error));
	if (CRYPTO_memcmp(content_key, world->first_content_key, CONTENT_KEY_LENGTH) != 0)
		LIC_FAIL(error, LIC_INTERNAL, "the check license carries another content key than its PL");
	if (strcmp(license.principal, BENCH_READER) != 0 || strcmp(license.rights, BENCH_READER_RIGHTS) != 0)
		LIC_FAIL(error, LIC_INTERNAL, "the check license names %s with rights '%s'",
			 license.principal, license.rights);
out:
	OPENSSL_cleanse(content_key, sizeof content_key);
	if (license_read)
		use_license_cleanup(&license);
	free(result.use_license);
	return status;
}

/* ---- output ---- */

struct bench_figures {
	unsigned submitters;
	size_t pl_count;
	struct ceiling_result ceiling_before, ceiling_after;
	struct issue_result issue;
};

static void print_json(const struct bench_settings *settings, const struct bench_figures *figures)
{
	const struct issue_result *issue = &figures->issue;
	const struct ceiling_result *before = &figures->ceiling_before, *after = &figures->ceiling_after;
	unsigned private_ops_per_license = settings->hot ? 1 : 2;
	uint64_t ceiling_operations = before->operations + after->operations;
	double ceiling_elapsed = before->elapsed_s + after->elapsed_s;
	double ceiling = ceiling_elapsed > 0 ? (double)ceiling_operations / ceiling_elapsed : 0;
	double licenses_per_s = issue->elapsed_s > 0 ? (double)issue->licenses / issue->elapsed_s : 0;
	double efficiency = ceiling > 0 ? licenses_per_s * private_ops_per_license / ceiling : 0;
	double mean_batch =
	    issue->stats.batches > 0 ? (double)issue->stats.batched_jobs / (double)issue->stats.batches : 0;
	printf(
	    "{\"benchmark\":\"issue\",\"mode\":\"%s\",\"algorithm\":\"%s\",\"origin\":\"%s\",\"workers\":%u,"
	    "\"submitters\":%u,\"batch\":%zu,\"seconds\":%g,\"elapsed_s\":%.3f,",
	    settings->hot ? "hot" : "cold", key_algorithm_name(settings->algorithm),
	    settings->byok_uri != NULL ? "byok" : "managed", settings->workers, figures->submitters,
	    settings->batch, settings->seconds, issue->elapsed_s);
	printf("\"licenses\":%llu,\"errors\":%llu,\"licenses_per_s\":%.1f,\"private_ops_per_license\":%u,"
	       "\"private_key_operations\":%llu,",
	       (unsigned long long)issue->licenses, (unsigned long long)issue->errors, licenses_per_s,
	       private_ops_per_license, (unsigned long long)issue->stats.private_key_operations);
	printf("\"ceiling_private_ops_per_s\":%.1f,\"ceiling_threads\":%u,\"ceiling_operations\":%llu,"
	       "\"ceiling_elapsed_s\":%.3f,\"ceiling_before_per_s\":%.1f,\"ceiling_after_per_s\":%.1f,"
	       "\"efficiency\":%.4f,",
	       ceiling, settings->workers, (unsigned long long)ceiling_operations, ceiling_elapsed,
	       before->operations_per_s, after->operations_per_s, efficiency);
	printf("\"batches\":%llu,\"mean_batch_size\":%.2f,\"pl_cache\":\"%s\",\"pl_cache_hits\":%llu,"
	       "\"pl_cache_misses\":%llu,\"rac_cache_hits\":%llu,\"rac_cache_misses\":%llu,",
	       (unsigned long long)issue->stats.batches, mean_batch, settings->hot ? "on" : "off",
	       (unsigned long long)issue->stats.pl_cache_hits,
	       (unsigned long long)issue->stats.pl_cache_misses,
	       (unsigned long long)issue->stats.rac_cache_hits,
	       (unsigned long long)issue->stats.rac_cache_misses);
	printf("\"publishing_licenses\":%zu,\"pl_reuses\":%llu,\"cores_online\":%ld,\"openssl\":",
	       figures->pl_count, (unsigned long long)issue->pl_reuses, sysconf(_SC_NPROCESSORS_ONLN));
	json_string(stdout, OpenSSL_version(OPENSSL_VERSION));
	puts("}");
	fflush(stdout);
}

/* ---- the command ---- */

/* The ceiling is measured in two halves, one on each side of the engine
 * run, so that a change in the machine's load during the run weighs on both
 * figures alike (the JSON shows each half). */
static lic_status measure_and_issue(struct bench_world *world, const struct bench_settings *settings,
				    struct bench_figures *figures, lic_error *error)
{
	lic_status status = LIC_OK;
	lic_engine *engine = NULL;
	double half = settings->seconds / 2;
	cli_progress("bench: ceiling: RSA PKCS#1 SHA-256 signatures (%s) on %u threads, %g s before and %g s "
		     "after…\n",
		     key_algorithm_name(settings->algorithm), settings->workers, half, half);
	LIC_TRY(measure_ceiling(world, settings->workers, half, &figures->ceiling_before, error));
	if (atomic_load(&interrupted))
		goto out;
	figures->pl_count = HOT_PL_COUNT;
	if (!settings->hot) {
		/* One fresh PL per license: the warm-up batches, then 1.5 × what a
		 * perfect pipeline (ceiling / 2 licenses/s) issues, plus the batches
		 * in flight at the deadline. */
		double expected = figures->ceiling_before.operations_per_s / 2 * settings->seconds;
		double wanted =
		    (double)(2 * figures->submitters * settings->batch) + COLD_PL_HEADROOM * expected + 1;
		figures->pl_count = wanted > (double)COLD_PL_MAX ? COLD_PL_MAX : (size_t)wanted;
	}
	cli_progress("bench: writing %zu publishing licenses…\n", figures->pl_count);
	LIC_TRY(world_write_pls(world, figures->pl_count, settings->workers, error));
	if (atomic_load(&interrupted))
		goto out;
	lic_engine_options options = {
	    .keyring = world->keyring,
	    .workers = settings->workers,
	    .batch_max = settings->batch,
	    .queue_max = (size_t)figures->submitters * settings->batch + 8192,
	    .pl_cache_entries = settings->hot ? 0 : SIZE_MAX, /* cold: off, so no license skips its unwrap */
	};
	LIC_TRY(lic_engine_new(&options, &engine, error));
	cli_progress("bench: issuing (%s) on %u workers from %u submitting threads for %g s…\n",
		     settings->hot ? "hot" : "cold", settings->workers, figures->submitters,
		     settings->seconds);
	LIC_TRY(run_engine(world, engine, settings, figures->submitters, &figures->issue, error));
	if (atomic_load(&interrupted))
		goto out;
	LIC_TRY(measure_ceiling(world, settings->workers, half, &figures->ceiling_after, error));
	if (atomic_load(&interrupted) || figures->issue.errors > 0)
		goto out;
	const lic_engine_stats *stats = &figures->issue.stats;
	unsigned expected_ops = settings->hot ? 1 : 2;
	if (stats->private_key_operations != figures->issue.licenses * expected_ops)
		cli_progress(
		    "bench: note: %llu private-key operations for %llu licenses (%u each expected)\n",
		    (unsigned long long)stats->private_key_operations,
		    (unsigned long long)figures->issue.licenses, expected_ops);
	LIC_TRY(check_one_license(world, engine, error));
out:
	lic_engine_free(engine);
	return status;
}

static int bench_issue(struct bench_settings *settings)
{
	lic_error error = {0};
	struct bench_world world = {0};
	struct bench_figures figures = {.submitters = settings->workers * SUBMITTERS_PER_WORKER};
	struct sigaction action = {.sa_handler = on_interrupt}, old_int, old_term;
	sigemptyset(&action.sa_mask);
	atomic_store(&interrupted, false);
	sigaction(SIGINT, &action, &old_int);
	sigaction(SIGTERM, &action, &old_term);
	xmlInitParser(); /* before any thread uses libxml2 */
	lic_status status = world_setup(&world, settings, &error);
	if (status == LIC_OK)
		status = measure_and_issue(&world, settings, &figures, &error);
	world_cleanup(&world);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (status != LIC_OK)
		return cli_fail(&error);
	if (atomic_load(&interrupted)) {
		fputs("licensor: STATE: interrupted before the run finished: nothing measured\n", stderr);
		return 130;
	}
	print_json(settings, &figures);
	if (figures.issue.errors > 0) {
		const lic_error *first = &figures.issue.first_error;
		fprintf(stderr, "licensor: %s: %llu of %llu license requests failed; the first: %s\n",
			lic_status_code(first->status), (unsigned long long)figures.issue.errors,
			(unsigned long long)(figures.issue.errors + figures.issue.licenses), first->message);
		return 1;
	}
	return 0;
}

int command_bench(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	struct bench_settings settings;
	if (cli_parse(argc, argv, "bench", bench_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (args.help) {
		printf(
		    "usage: licensor %s\n"
		    "Measures the issuance pipeline in this process, in a temporary store of its own\n"
		    "(--store is not used; it is removed afterwards), and prints one JSON object:\n"
		    "licenses_per_s, private_ops_per_license, ceiling_private_ops_per_s (OpenSSL's own\n"
		    "RSA PKCS#1 SHA-256 signatures per second with the same key on --workers threads,\n"
		    "each with its own copy of the key, measured in the same run for --seconds: half\n"
		    "before the engine runs, half after) and efficiency = licenses_per_s ×\n"
		    "private_ops_per_license ÷ ceiling_private_ops_per_s.\n"
		    "  cold (default)  every license from a distinct PL, PL cache off: an unwrap and a\n"
		    "                  signature per license (private_ops_per_license 2)\n"
		    "  --hot           64 PLs, cached before the clock starts: a signature only (1)\n"
		    "  --workers N     engine workers and ceiling threads (default: online cores)\n"
		    "  --seconds S     how long the engine runs, and the ceiling (default 5)\n"
		    "  --algorithm A   the tenant's key: rsa-2048 (default), rsa-3072, rsa-4096\n"
		    "  --byok URI      the tenant's key is this PKCS#11 token key (--pkcs11-module PATH):\n"
		    "                  unwraps and signatures run in the token; the ceiling is measured\n"
		    "                  on a managed key of the same size (JSON origin: byok)\n"
		    "  --batch B       requests per lic_engine_issue call and jobs a worker takes at\n"
		    "                  once (default 64); 2 × N threads submit\n"
		    "Exits 1 when any license request failed (the JSON counts them in errors).\n",
		    bench_usage);
		return 0;
	}
	if (args.positional_count != 1 || strcmp(args.positionals[0], "issue") != 0) {
		lic_error_set(&error, LIC_USAGE, "usage: licensor %s", bench_usage);
		return cli_fail(&error);
	}
	if (parse_settings(&args, &settings, &error) != LIC_OK)
		return cli_fail(&error);
	return bench_issue(&settings);
}
