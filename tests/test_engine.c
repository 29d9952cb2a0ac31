/*
 * test_engine.c: the issuance pipeline (DESIGN.md §5) through its public
 * API: a synchronous batch whose items fail differently, the PL cache (a
 * second request for the same PL costs one private-key operation instead of
 * two; entries are purged the moment their version is revoked), the RAC
 * cache, the asynchronous AcquireLicense path with its response document, the
 * queue bound (OVERLOADED), and the rollover promise (an old PL gets a UL
 * signed by the new version). Then the counters behind /metrics: errors by
 * code (items and whole requests), the batch size histogram, the queue depth,
 * private-key operations by version with its bound, and lic_engine_tick
 * writing compromised-use lines that are due. And a BYOK version whose token
 * cannot be reached: INTERNAL, and one attempt to reach it per backoff period,
 * not one per request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "core/documents.h"
#include "core/engine_cache.h"
#include "keyring/admin.h"
#include "keyring/audit.h"
#include "keyring/file_io.h"
#include "keyring/snapshot.h"
#include "keyring/xml_document.h"
#include "keyring/store.h"
#include "test_helpers.h"

struct world_fixture {
	char directory[64];
	char store_path[128];
	struct store *writer; /* for admin_* changes */
	struct admin_context admin;
	lic_keyring *keyring;
	EVP_PKEY *bob_key;
	char *bob_rac;
	size_t bob_rac_length;
	char *carol_rac;
	size_t carol_rac_length;
};

static struct store *open_store(const char *path)
{
	struct store_options options = {.directory = path};
	struct store *store = NULL;
	lic_error error = {0};
	if (store_open(&options, &store, &error) != LIC_OK)
		fail_msg("store_open: %s", error.message);
	return store;
}

static void make_rac(struct world_fixture *fixture, const char *principal, EVP_PKEY *user, char **xml,
		     size_t *length)
{
	struct tenant *tenant = NULL;
	lic_error error = {0};
	assert_int_equal(store_load_tenant(fixture->writer, "contoso", &tenant, &error), LIC_OK);
	const struct key_version *signing = tenant_signing_version(tenant, lic_clock_now(lic_clock_system()));
	EVP_PKEY *signing_key = NULL;
	assert_int_equal(
	    store_open_private_key(fixture->writer->kek, "contoso", signing, &signing_key, &error), LIC_OK);
	int64_t now = lic_clock_now(lic_clock_system());
	assert_int_equal(rights_account_certificate_write("contoso", principal, user, now - 60, now + 86400,
							  VERSION_KEY_OF(signing_key), signing->key_id_hex,
							  xml, length, &error),
			 LIC_OK);
	EVP_PKEY_free(signing_key);
	tenant_free(tenant);
}

/* A PL for bob (VIEW) under the tenant's current publishing version. */
static void make_pl(struct world_fixture *fixture, const char *content_id, char **xml, size_t *length)
{
	struct tenant *tenant = NULL;
	lic_error error = {0};
	assert_int_equal(store_load_tenant(fixture->writer, "contoso", &tenant, &error), LIC_OK);
	int64_t now = lic_clock_now(lic_clock_system());
	const struct key_version *version = rollout_select_publishing_version(tenant, "client", now);
	assert_non_null(version);
	EVP_PKEY *public_key = NULL;
	assert_int_equal(key_material_from_public_der(version->public_key_der, version->public_key_length,
						      &public_key, &error),
			 LIC_OK);
	const char *principals[] = {"bob@contoso.com"};
	const char *rights[] = {"VIEW"};
	struct publish_request request = {.tenant = "contoso",
					  .content_id = content_id,
					  .owner = "alice@contoso.com",
					  .grant_principals = principals,
					  .grant_rights = rights,
					  .grant_count = 1,
					  .license_validity_days = 30,
					  .issued_at = now};
	uint8_t content_key[CONTENT_KEY_LENGTH];
	RAND_bytes(content_key, sizeof content_key);
	assert_int_equal(publishing_license_write(&request, public_key, version->key_id_hex, content_key, xml,
						  length, &error),
			 LIC_OK);
	EVP_PKEY_free(public_key);
	tenant_free(tenant);
}

static int setup(void **state)
{
	struct world_fixture *fixture = calloc(1, sizeof *fixture);
	snprintf(fixture->directory, sizeof fixture->directory, "/tmp/licensor-test-engine-XXXXXX");
	assert_non_null(mkdtemp(fixture->directory));
	test_join_path(fixture->store_path, sizeof fixture->store_path, fixture->directory, "store");
	struct store_options options = {.directory = fixture->store_path};
	struct store *store = NULL;
	lic_error error = {0};
	assert_int_equal(store_init(&options, &store, &error), LIC_OK);
	store_close(store);
	fixture->writer = open_store(fixture->store_path);
	fixture->admin = (struct admin_context){.store = fixture->writer, .actor = "test"};
	assert_int_equal(admin_tenant_add(&fixture->admin, "contoso", KEY_ALGORITHM_RSA_2048, &error),
			 LIC_OK);
	assert_int_equal(keyring_open_store(open_store(fixture->store_path), NULL, &fixture->keyring, &error),
			 LIC_OK);
	assert_int_equal(key_material_generate(KEY_ALGORITHM_RSA_2048, &fixture->bob_key, &error), LIC_OK);
	make_rac(fixture, "bob@contoso.com", fixture->bob_key, &fixture->bob_rac, &fixture->bob_rac_length);
	make_rac(fixture, "carol@contoso.com", fixture->bob_key, &fixture->carol_rac,
		 &fixture->carol_rac_length);
	*state = fixture;
	return 0;
}

static int teardown(void **state)
{
	struct world_fixture *fixture = *state;
	lic_keyring_close(fixture->keyring);
	store_close(fixture->writer);
	EVP_PKEY_free(fixture->bob_key);
	free(fixture->bob_rac);
	free(fixture->carol_rac);
	test_remove_tree(fixture->directory);
	free(fixture);
	return 0;
}

static lic_engine *new_engine(struct world_fixture *fixture, unsigned workers)
{
	lic_engine_options options = {.keyring = fixture->keyring, .workers = workers};
	lic_engine *engine = NULL;
	lic_error error = {0};
	assert_int_equal(lic_engine_new(&options, &engine, &error), LIC_OK);
	return engine;
}

static void test_batch_items_fail_independently(void **state)
{
	struct world_fixture *fixture = *state;
	char *pl = NULL;
	size_t pl_length = 0;
	make_pl(fixture, "doc-1", &pl, &pl_length);
	char *tampered = strdup(pl);
	char *at = strstr(tampered, "doc-1");
	at[4] = '9'; /* the Body no longer matches the OAEP label */
	lic_engine *engine = new_engine(fixture, 2);
	lic_license_request requests[] = {
	    {fixture->bob_rac, fixture->bob_rac_length, pl, pl_length},
	    {fixture->carol_rac, fixture->carol_rac_length, pl, pl_length},
	    {fixture->bob_rac, fixture->bob_rac_length, tampered, pl_length},
	    {fixture->bob_rac, fixture->bob_rac_length, "<nope", 5},
	    {fixture->bob_rac, fixture->bob_rac_length, pl, pl_length},
	};
	lic_license_result results[5];
	lic_error error = {0};
	assert_int_equal(lic_engine_issue(engine, requests, 5, results, &error), LIC_OK);
	assert_int_equal(results[0].error.status, LIC_OK);
	assert_non_null(strstr(results[0].use_license, "<Rights>VIEW</Rights>"));
	assert_int_equal(results[1].error.status, LIC_NO_RIGHTS);
	assert_null(results[1].use_license);
	assert_int_equal(results[2].error.status, LIC_PL_INTEGRITY);
	assert_int_equal(results[3].error.status, LIC_MALFORMED);
	assert_int_equal(results[4].error.status, LIC_OK);
	lic_engine_stats stats;
	lic_engine_get_stats(engine, &stats);
	assert_int_equal(stats.licenses_issued, 2);
	assert_int_equal(stats.errors, 3);
	for (int i = 0; i < 5; i++)
		free(results[i].use_license);
	lic_engine_free(engine);
	free(tampered);
	free(pl);
}

static void test_pl_cache_saves_the_unwrap_and_is_purged_on_revoke(void **state)
{
	struct world_fixture *fixture = *state;
	char *pl = NULL;
	size_t pl_length = 0;
	make_pl(fixture, "doc-2", &pl, &pl_length);
	lic_engine *engine = new_engine(fixture, 1);
	lic_license_request request = {fixture->bob_rac, fixture->bob_rac_length, pl, pl_length};
	lic_license_result result;
	lic_error error = {0};
	lic_engine_stats stats;

	assert_int_equal(lic_engine_issue(engine, &request, 1, &result, &error), LIC_OK);
	assert_int_equal(result.error.status, LIC_OK);
	free(result.use_license);
	lic_engine_get_stats(engine, &stats);
	assert_int_equal(stats.private_key_operations, 2); /* unwrap + signature */
	assert_int_equal(stats.pl_cache_misses, 1);
	assert_int_equal(stats.rac_cache_misses, 1);

	assert_int_equal(lic_engine_issue(engine, &request, 1, &result, &error), LIC_OK);
	assert_int_equal(result.error.status, LIC_OK);
	free(result.use_license);
	lic_engine_get_stats(engine, &stats);
	assert_int_equal(stats.private_key_operations, 3); /* the hit costs the signature only */
	assert_int_equal(stats.pl_cache_hits, 1);
	assert_int_equal(stats.rac_cache_hits, 1);

	/* Rekey, then revoke the PL's version: the next request gets KEY_REVOKED,
	 * and the cached content key is gone, not merely unused. */
	struct rekey_request rekey = {.algorithm = KEY_ALGORITHM_RSA_2048, .immediate = true};
	assert_int_equal(admin_rekey(&fixture->admin, "contoso", &rekey, NULL, &error), LIC_OK);
	assert_int_equal(lic_keyring_reload(fixture->keyring, &error), LIC_OK);
	/* Still retained: the old PL gets a UL signed by version 2. */
	assert_int_equal(lic_engine_issue(engine, &request, 1, &result, &error), LIC_OK);
	assert_int_equal(result.error.status, LIC_OK);
	struct tenant *tenant = NULL;
	assert_int_equal(store_load_tenant(fixture->writer, "contoso", &tenant, &error), LIC_OK);
	assert_non_null(strstr(result.use_license, tenant_version(tenant, 2)->key_id_hex));
	tenant_free(tenant);
	free(result.use_license);

	lic_engine_get_stats(engine, &stats);
	assert_int_equal(stats.pl_cache_entries, 1); /* the content key under version 1 */
	assert_int_equal(admin_revoke(&fixture->admin, "contoso", 1, false, &error), LIC_OK);
	assert_int_equal(lic_keyring_reload(fixture->keyring, &error), LIC_OK);
	assert_int_equal(lic_engine_issue(engine, &request, 1, &result, &error), LIC_OK);
	/* bob's RAC was signed by version 1, now revoked: the RAC is refused first. */
	assert_int_equal(result.error.status, LIC_RAC_INVALID);
	/* The first batch under the new snapshot dropped (and wiped) the entry. */
	lic_engine_get_stats(engine, &stats);
	assert_int_equal(stats.pl_cache_entries, 0);
	lic_engine_free(engine);
	free(pl);
}

struct acquire_outcome {
	pthread_mutex_t lock;
	pthread_cond_t done;
	int finished;
	int status;
	char *response;
};

static void on_acquire(void *context, int http_status, const char *response, size_t length)
{
	struct acquire_outcome *outcome = context;
	pthread_mutex_lock(&outcome->lock);
	outcome->status = http_status;
	outcome->response = strndup(response, length);
	outcome->finished = 1;
	pthread_cond_signal(&outcome->done);
	pthread_mutex_unlock(&outcome->lock);
}

static char *strip_declaration(const char *xml)
{
	const char *start = strstr(xml, "?>");
	return strdup(start ? start + 2 : xml);
}

static void test_acquire_request_and_response(void **state)
{
	struct world_fixture *fixture = *state;
	char *pl = NULL;
	size_t pl_length = 0;
	make_pl(fixture, "doc-3", &pl, &pl_length);
	char *rac_bob = strip_declaration(fixture->bob_rac),
	     *rac_carol = strip_declaration(fixture->carol_rac);
	char *pl_body = strip_declaration(pl);
	size_t size = strlen(rac_bob) + strlen(rac_carol) + 2 * strlen(pl_body) + 256;
	char *body = malloc(size);
	snprintf(body, size,
		 "<AcquireLicense xmlns=\"urn:licensor:v1\">\n  <Item>%s%s</Item>\n  "
		 "<Item>%s%s</Item>\n</AcquireLicense>",
		 rac_bob, pl_body, rac_carol, pl_body);
	lic_engine *engine = new_engine(fixture, 2);
	struct acquire_outcome outcome = {.lock = PTHREAD_MUTEX_INITIALIZER,
					  .done = PTHREAD_COND_INITIALIZER};
	lic_error error = {0};
	assert_int_equal(lic_engine_submit_acquire(engine, body, strlen(body), on_acquire, &outcome, &error),
			 LIC_OK);
	pthread_mutex_lock(&outcome.lock);
	while (!outcome.finished)
		pthread_cond_wait(&outcome.done, &outcome.lock);
	pthread_mutex_unlock(&outcome.lock);
	assert_int_equal(outcome.status, 200);
	assert_non_null(strstr(outcome.response, "<Result Index=\"0\"><UseLicense"));
	assert_non_null(strstr(outcome.response, "<Result Index=\"1\"><Error Code=\"NO_RIGHTS\">"));
	free(outcome.response);

	/* A request that is not well-formed as a whole: a 4xx and an Error document. */
	outcome.finished = 0;
	assert_int_equal(
	    lic_engine_submit_acquire(engine, "<AcquireLicense", 15, on_acquire, &outcome, &error), LIC_OK);
	pthread_mutex_lock(&outcome.lock);
	while (!outcome.finished)
		pthread_cond_wait(&outcome.done, &outcome.lock);
	pthread_mutex_unlock(&outcome.lock);
	assert_int_equal(outcome.status, 400);
	assert_non_null(strstr(outcome.response, "Code=\"MALFORMED\""));
	free(outcome.response);
	lic_engine_free(engine);
	free(body);
	free(rac_bob);
	free(rac_carol);
	free(pl_body);
	free(pl);
}

static void test_compromised_uses_are_counted_and_audited(void **state)
{
	struct world_fixture *fixture = *state;
	char *pl = NULL;
	size_t pl_length = 0;
	make_pl(fixture, "doc-4", &pl, &pl_length);
	lic_error error = {0};
	/* Breach response: version 1 is flagged compromised; its old content still opens. */
	struct rekey_request rekey = {
	    .algorithm = KEY_ALGORITHM_RSA_2048, .immediate = true, .compromised = true};
	assert_int_equal(admin_rekey(&fixture->admin, "contoso", &rekey, NULL, &error), LIC_OK);
	assert_int_equal(lic_keyring_reload(fixture->keyring, &error), LIC_OK);
	char *rac = NULL;
	size_t rac_length = 0;
	make_rac(fixture, "bob@contoso.com", fixture->bob_key, &rac, &rac_length); /* signed by version 2 */
	lic_engine *engine = new_engine(fixture, 1);
	lic_license_request request = {rac, rac_length, pl, pl_length};
	lic_license_result result;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(lic_engine_issue(engine, &request, 1, &result, &error), LIC_OK);
		assert_int_equal(result.error.status, LIC_OK);
		free(result.use_license);
	}
	lic_engine_stats stats;
	lic_engine_get_stats(engine, &stats);
	assert_int_equal(stats.compromised_uses, 3);
	lic_engine_free(engine); /* flushes what the minute's rate limit held back */
	char path[256], *log = NULL;
	size_t log_length = 0;
	test_join_path(path, sizeof path, fixture->store_path, "audit.log");
	assert_int_equal(file_read_all(path, 1 << 20, &log, &log_length, &error), LIC_OK);
	assert_non_null(strstr(log, "\"action\":\"compromised-use\",\"tenant\":\"contoso\",\"version\":1"));
	/* Three uses in all, however they were split between lines. */
	unsigned long total = 0;
	for (const char *at = log; (at = strstr(at, "\"compromised-use\"")) != NULL; at++) {
		const char *detail = strstr(at, "\"detail\":\"");
		total += strtoul(detail + 10, NULL, 10);
	}
	assert_int_equal(total, 3);
	struct audit_report report;
	assert_int_equal(audit_verify(fixture->store_path, &report, &error), LIC_OK);
	free(log);
	free(rac);
	free(pl);
}

static void wait_for(struct acquire_outcome *outcome)
{
	pthread_mutex_lock(&outcome->lock);
	while (!outcome->finished)
		pthread_cond_wait(&outcome->done, &outcome->lock);
	pthread_mutex_unlock(&outcome->lock);
}

/* Found by fuzz_acquire_request: an element name of multi-byte characters,
 * cut to 40 bytes in an error sentence, split a character and made the
 * response invalid XML. Every response must parse. */
static void test_responses_stay_well_formed(void **state)
{
	struct world_fixture *fixture = *state;
	static const char cut_character[] =
	    "<AcquireLicense xmlns=\"urn:licensor:v1\"><Item><RightsAccountCertificate Version=\"1\"><a"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9/></RightsAccountCertificate>"
	    "<PublishingLicense/></Item></AcquireLicense>";
	static const char text_in_request[] =
	    "<AcquireLicense xmlns=\"urn:licensor:v1\">free text<Item/></AcquireLicense>";
	static const char foreign_item[] =
	    "<AcquireLicense xmlns=\"urn:licensor:v1\"><x:Item xmlns:x=\"urn:other\"/></AcquireLicense>";
	static const char junk_in_item[] =
	    "<AcquireLicense xmlns=\"urn:licensor:v1\"><Item><Junk/></Item></AcquireLicense>";
	static const char root_attribute[] =
	    "<AcquireLicense xmlns=\"urn:licensor:v1\" Mode=\"x\"><Item/></AcquireLicense>";
	const struct {
		const char *body;
		int status;
		const char *code;
	} cases[] = {
	    {cut_character, 200, "Code=\"MALFORMED\""},   {text_in_request, 400, "Code=\"MALFORMED\""},
	    {foreign_item, 400, "Code=\"MALFORMED\""},    {junk_in_item, 200, "an Item holds only"},
	    {root_attribute, 400, "takes no attributes"},
	};
	lic_engine *engine = new_engine(fixture, 1);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct acquire_outcome outcome = {.lock = PTHREAD_MUTEX_INITIALIZER,
						  .done = PTHREAD_COND_INITIALIZER};
		lic_error error = {0};
		assert_int_equal(lic_engine_submit_acquire(engine, cases[i].body, strlen(cases[i].body),
							   on_acquire, &outcome, &error),
				 LIC_OK);
		wait_for(&outcome);
		assert_int_equal(outcome.status, cases[i].status);
		if (strstr(outcome.response, cases[i].code) == NULL)
			fail_msg("case %zu: '%s' not in %s", i, cases[i].code, outcome.response);
		xmlDocPtr response = NULL;
		if (xml_document_parse(outcome.response, strlen(outcome.response), 1 << 20, &response,
				       &error) != LIC_OK)
			fail_msg("case %zu: the response is not well-formed XML: %s", i, error.message);
		xmlFreeDoc(response);
		free(outcome.response);
	}
	lic_engine_free(engine);
}

static void test_queue_bound_refuses_with_overloaded(void **state)
{
	struct world_fixture *fixture = *state;
	lic_engine_options options = {.keyring = fixture->keyring, .workers = 1, .queue_max = 2};
	lic_engine *engine = NULL;
	lic_error error = {0};
	assert_int_equal(lic_engine_new(&options, &engine, &error), LIC_OK);
	lic_license_request requests[3] = {
	    {"<a/>", 4, "<b/>", 4}, {"<a/>", 4, "<b/>", 4}, {"<a/>", 4, "<b/>", 4}};
	lic_license_result results[3];
	assert_int_equal(lic_engine_issue(engine, requests, 3, results, &error), LIC_OVERLOADED);
	assert_int_equal(results[2].error.status, LIC_OVERLOADED); /* never an empty "OK" result */
	assert_int_equal(lic_engine_issue(engine, requests, 2, results, &error), LIC_OK);
	assert_int_equal(results[0].error.status, LIC_MALFORMED);
	lic_engine_free(engine);
}

/* ---- metrics: errors by code, batch sizes, queue depth, key usage, tick ---- */

static size_t count_occurrences(const char *text, const char *needle)
{
	size_t count = 0;
	for (const char *at = text; (at = strstr(at, needle)) != NULL; at++)
		count++;
	return count;
}

static uint64_t sum_of(const uint64_t *values, size_t count)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < count; i++)
		sum += values[i];
	return sum;
}

static void acquire_and_wait(lic_engine *engine, const char *body, size_t length, int expected_status)
{
	struct acquire_outcome outcome = {.lock = PTHREAD_MUTEX_INITIALIZER,
					  .done = PTHREAD_COND_INITIALIZER};
	lic_error error = {0};
	assert_int_equal(lic_engine_submit_acquire(engine, body, length, on_acquire, &outcome, &error),
			 LIC_OK);
	wait_for(&outcome);
	assert_int_equal(outcome.status, expected_status);
	free(outcome.response);
}

/* Failed items count under their own code, and so does a whole
 * AcquireLicense refused (once, as a refused request). One worker takes the five
 * jobs of one lic_engine_issue call as one batch (they are queued at once),
 * and each AcquireLicense after it alone. */
static void test_stats_count_errors_by_code_and_batch_sizes(void **state)
{
	struct world_fixture *fixture = *state;
	char *pl = NULL;
	size_t pl_length = 0;
	make_pl(fixture, "doc-m1", &pl, &pl_length);
	char *tampered = strdup(pl);
	strstr(tampered, "doc-m1")[5] = '9';
	lic_engine *engine = new_engine(fixture, 1);
	lic_license_request requests[] = {
	    {fixture->bob_rac, fixture->bob_rac_length, pl, pl_length},       /* OK */
	    {fixture->carol_rac, fixture->carol_rac_length, pl, pl_length},   /* NO_RIGHTS */
	    {fixture->bob_rac, fixture->bob_rac_length, tampered, pl_length}, /* PL_INTEGRITY */
	    {fixture->bob_rac, fixture->bob_rac_length, "<nope", 5},          /* MALFORMED */
	    {fixture->carol_rac, fixture->carol_rac_length, pl, pl_length},   /* NO_RIGHTS */
	};
	lic_license_result results[5];
	lic_error error = {0};
	assert_int_equal(lic_engine_issue(engine, requests, 5, results, &error), LIC_OK);
	for (int i = 0; i < 5; i++)
		free(results[i].use_license);
	/* Whole requests refused: not well-formed (MALFORMED), 101 items (TOO_LARGE). */
	acquire_and_wait(engine, "<AcquireLicense", 15, 400);
	size_t size = 64 + 101 * 7;
	char *many_items = malloc(size);
	int length = snprintf(many_items, size, "<AcquireLicense xmlns=\"urn:licensor:v1\">");
	for (int i = 0; i < 101; i++)
		length += snprintf(many_items + length, size - (size_t)length, "<Item/>");
	length += snprintf(many_items + length, size - (size_t)length, "</AcquireLicense>");
	acquire_and_wait(engine, many_items, (size_t)length, 413);

	lic_engine_stats stats;
	lic_engine_get_stats(engine, &stats);
	assert_int_equal(stats.licenses_issued, 1);
	assert_int_equal(stats.errors_by_status[LIC_NO_RIGHTS], 2);
	assert_int_equal(stats.errors_by_status[LIC_PL_INTEGRITY], 1);
	assert_int_equal(stats.errors_by_status[LIC_MALFORMED], 2); /* an item and a whole request */
	assert_int_equal(stats.errors_by_status[LIC_TOO_LARGE], 1);
	assert_int_equal(stats.errors_by_status[LIC_OK], 0);
	assert_int_equal(stats.errors, 4);           /* items */
	assert_int_equal(stats.requests_refused, 2); /* whole requests */
	assert_int_equal(sum_of(stats.errors_by_status, LIC_STATUS_COUNT),
			 stats.errors + stats.requests_refused);
	/* batches of 5, 1 and 1 jobs */
	assert_int_equal(stats.batches, 3);
	assert_int_equal(stats.batched_jobs, 7);
	assert_int_equal(sum_of(stats.batch_size_buckets, LIC_ENGINE_BATCH_BUCKETS), stats.batches);
	assert_int_equal(stats.batch_size_buckets[0], 2); /* ≤1 */
	assert_int_equal(stats.batch_size_buckets[3], 1); /* ≤8 */
	assert_int_equal(lic_engine_batch_bucket_bound(0), 1);
	assert_int_equal(lic_engine_batch_bucket_bound(3), 8);
	assert_int_equal(lic_engine_batch_bucket_bound(7), 128);
	assert_true(lic_engine_batch_bucket_bound(LIC_ENGINE_BATCH_BUCKETS - 1) == UINT64_MAX);
	assert_int_equal(stats.queue_depth, 0);
	lic_engine_free(engine);
	free(many_items);
	free(tampered);
	free(pl);
}

/* An AcquireLicense callback that holds its worker until released. */
struct held_worker {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	bool entered, released;
	int finished;
};

static void on_acquire_hold(void *context, int http_status, const char *response, size_t length)
{
	struct held_worker *held = context;
	pthread_mutex_lock(&held->lock);
	if (!held->entered) {
		held->entered = true;
		pthread_cond_broadcast(&held->changed);
		while (!held->released)
			pthread_cond_wait(&held->changed, &held->lock);
	}
	held->finished++;
	pthread_cond_broadcast(&held->changed);
	pthread_mutex_unlock(&held->lock);
}

static void test_stats_report_the_queue_depth(void **state)
{
	struct world_fixture *fixture = *state;
	lic_engine *engine = new_engine(fixture, 1);
	struct held_worker held = {.lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};
	lic_error error = {0};
	static const char body[] = "<AcquireLicense";
	assert_int_equal(
	    lic_engine_submit_acquire(engine, body, strlen(body), on_acquire_hold, &held, &error), LIC_OK);
	pthread_mutex_lock(&held.lock);
	while (!held.entered)
		pthread_cond_wait(&held.changed, &held.lock);
	pthread_mutex_unlock(&held.lock);
	/* The only worker is held in the first callback: these three wait. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(
		    lic_engine_submit_acquire(engine, body, strlen(body), on_acquire_hold, &held, &error),
		    LIC_OK);
	lic_engine_stats stats;
	lic_engine_get_stats(engine, &stats);
	assert_int_equal(stats.queue_depth, 3);
	pthread_mutex_lock(&held.lock);
	held.released = true;
	pthread_cond_broadcast(&held.changed);
	while (held.finished < 4)
		pthread_cond_wait(&held.changed, &held.lock);
	pthread_mutex_unlock(&held.lock);
	lic_engine_get_stats(engine, &stats);
	assert_int_equal(stats.queue_depth, 0);
	lic_engine_free(engine);
}

/* A cold request costs an unwrap and a signature, both with version 1 here:
 * two operations for (contoso, 1), none elsewhere. */
static void test_key_usage_counts_operations_by_version(void **state)
{
	struct world_fixture *fixture = *state;
	char *pl = NULL;
	size_t pl_length = 0;
	make_pl(fixture, "doc-m2", &pl, &pl_length);
	lic_engine *engine = new_engine(fixture, 2);
	assert_int_equal(lic_engine_key_usage_entries(engine), 256); /* the default */
	lic_license_request request = {fixture->bob_rac, fixture->bob_rac_length, pl, pl_length};
	lic_license_result result;
	lic_error error = {0};
	assert_int_equal(lic_engine_issue(engine, &request, 1, &result, &error), LIC_OK);
	assert_int_equal(result.error.status, LIC_OK);
	free(result.use_license);

	lic_key_usage usage[4];
	uint64_t other = 99;
	assert_int_equal(lic_engine_get_key_usage(engine, usage, 4, &other), 1);
	assert_string_equal(usage[0].tenant, "contoso");
	assert_int_equal(usage[0].version, 1);
	assert_int_equal(usage[0].private_key_operations, 2); /* unwrap + signature */
	assert_int_equal(usage[0].compromised_uses, 0);
	assert_int_equal(other, 0);
	/* A caller with no room gets the operations in `other`: the sum holds. */
	assert_int_equal(lic_engine_get_key_usage(engine, usage, 0, &other), 0);
	assert_int_equal(other, 2);
	lic_engine_stats stats;
	lic_engine_get_stats(engine, &stats);
	assert_int_equal(stats.private_key_operations, 2);
	lic_engine_free(engine);
	free(pl);
}

/* With room for one pair, the first version used keeps its row and the
 * second version's operations go to `other`. */
static void test_key_usage_is_bounded(void **state)
{
	struct world_fixture *fixture = *state;
	char *pl = NULL;
	size_t pl_length = 0;
	make_pl(fixture, "doc-m3", &pl, &pl_length);
	lic_engine_options options = {.keyring = fixture->keyring, .workers = 1, .key_usage_entries = 1};
	lic_engine *engine = NULL;
	lic_error error = {0};
	assert_int_equal(lic_engine_new(&options, &engine, &error), LIC_OK);
	assert_int_equal(lic_engine_key_usage_entries(engine), 1);
	lic_license_request request = {fixture->bob_rac, fixture->bob_rac_length, pl, pl_length};
	lic_license_result result;
	assert_int_equal(lic_engine_issue(engine, &request, 1, &result, &error), LIC_OK); /* v1: 2 ops */
	assert_int_equal(result.error.status, LIC_OK);
	free(result.use_license);
	struct rekey_request rekey = {.algorithm = KEY_ALGORITHM_RSA_2048, .immediate = true};
	assert_int_equal(admin_rekey(&fixture->admin, "contoso", &rekey, NULL, &error), LIC_OK);
	assert_int_equal(lic_keyring_reload(fixture->keyring, &error), LIC_OK);
	/* The PL cache answers the unwrap; the signature is version 2's. */
	assert_int_equal(lic_engine_issue(engine, &request, 1, &result, &error), LIC_OK);
	assert_int_equal(result.error.status, LIC_OK);
	free(result.use_license);

	lic_key_usage usage[2];
	uint64_t other = 0;
	assert_int_equal(lic_engine_get_key_usage(engine, usage, 2, &other), 1);
	assert_string_equal(usage[0].tenant, "contoso");
	assert_int_equal(usage[0].version, 1);
	assert_int_equal(usage[0].private_key_operations, 2);
	assert_int_equal(other, 1);
	lic_engine_stats stats;
	lic_engine_get_stats(engine, &stats);
	assert_int_equal(stats.private_key_operations, usage[0].private_key_operations + other);
	lic_engine_free(engine);
	free(pl);
}

static size_t compromised_lines(struct world_fixture *fixture)
{
	char path[256], *log = NULL;
	size_t length = 0;
	lic_error error = {0};
	test_join_path(path, sizeof path, fixture->store_path, "audit.log");
	assert_int_equal(file_read_all(path, 1 << 20, &log, &length, &error), LIC_OK);
	size_t count =
	    count_occurrences(log, "\"action\":\"compromised-use\",\"tenant\":\"contoso\",\"version\":1");
	free(log);
	return count;
}

/* Uses held back by the once-a-minute limit are written by lic_engine_tick
 * once due, without waiting for another batch; a tick while an operator
 * holds the store lock writes nothing and does not wait, and the next tick
 * writes them. The per-version table counts the compromised uses too. */
static void test_tick_writes_due_compromised_uses(void **state)
{
	struct world_fixture *fixture = *state;
	char *pl = NULL;
	size_t pl_length = 0;
	make_pl(fixture, "doc-m4", &pl, &pl_length);
	lic_error error = {0};
	struct rekey_request rekey = {
	    .algorithm = KEY_ALGORITHM_RSA_2048, .immediate = true, .compromised = true};
	assert_int_equal(admin_rekey(&fixture->admin, "contoso", &rekey, NULL, &error), LIC_OK);
	char *rac = NULL;
	size_t rac_length = 0;
	make_rac(fixture, "bob@contoso.com", fixture->bob_key, &rac, &rac_length); /* signed by version 2 */
	/* Moved only while the engine is idle: the queue's lock orders it. */
	struct test_clock clock_state = {.now = lic_clock_now(lic_clock_system())};
	lic_clock clock = {.now = test_clock_now, .context = &clock_state};
	lic_keyring *keyring = NULL;
	assert_int_equal(keyring_open_store(open_store(fixture->store_path), &clock, &keyring, &error),
			 LIC_OK);
	lic_engine_options options = {.keyring = keyring, .workers = 1};
	lic_engine *engine = NULL;
	assert_int_equal(lic_engine_new(&options, &engine, &error), LIC_OK);
	lic_license_request request = {rac, rac_length, pl, pl_length};
	lic_license_result result;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(lic_engine_issue(engine, &request, 1, &result, &error), LIC_OK);
		assert_int_equal(result.error.status, LIC_OK);
		free(result.use_license);
	}
	/* The first use was written at once; the second waits for its minute. */
	assert_int_equal(compromised_lines(fixture), 1);
	lic_engine_tick(engine);
	assert_int_equal(compromised_lines(fixture), 1);

	clock_state.now += 61;
	assert_int_equal(store_lock(fixture->writer, &error), LIC_OK); /* an operator's command */
	lic_engine_tick(engine);                                       /* returns at once */
	assert_int_equal(compromised_lines(fixture), 1);
	store_unlock(fixture->writer);
	lic_engine_tick(engine);
	assert_int_equal(compromised_lines(fixture), 2);
	lic_engine_tick(engine); /* nothing more is due */
	assert_int_equal(compromised_lines(fixture), 2);

	lic_key_usage usage[4];
	uint64_t other = 0;
	size_t count = lic_engine_get_key_usage(engine, usage, 4, &other);
	assert_int_equal(count, 2);
	assert_int_equal(usage[0].version, 1);
	assert_int_equal(usage[0].compromised_uses, 2);
	assert_int_equal(usage[0].private_key_operations, 1); /* one unwrap; then the PL cache */
	assert_int_equal(usage[1].version, 2);
	assert_int_equal(usage[1].compromised_uses, 0);
	assert_int_equal(usage[1].private_key_operations, 2); /* two signatures */
	lic_engine_free(engine);
	assert_int_equal(compromised_lines(fixture), 2); /* nothing was left to flush */
	struct audit_report report;
	assert_int_equal(audit_verify(fixture->store_path, &report, &error), LIC_OK);
	lic_keyring_close(keyring);
	free(rac);
	free(pl);
}

static void test_pl_cache_bounds_and_ttl(void **state)
{
	(void)state;
	struct pl_cache *cache = NULL;
	lic_error error = {0};
	assert_int_equal(pl_cache_new(16, 100, &cache, &error), LIC_OK);
	uint8_t key[32] = {0}, content[32], out[32];
	uint8_t key_id[16] = {0};
	for (int i = 0; i < 64; i++) {
		key[0] = (uint8_t)i;
		key[31] = (uint8_t)i;
		memset(content, i, sizeof content);
		pl_cache_insert(cache, key, content, "contoso", key_id, 1000, 0);
	}
	assert_true(pl_cache_count(cache) <= 16); /* bounded */
	key[0] = key[31] = 63;
	assert_true(pl_cache_lookup(cache, key, 1050, out)); /* the newest stays */
	assert_int_equal(out[0], 63);
	assert_false(pl_cache_lookup(cache, key, 1100, out)); /* past the TTL */
	pl_cache_free(cache);
}

/* A version whose token cannot be opened fails with INTERNAL, and the worker
 * remembers it: ten requests within the first second of the backoff make one
 * attempt on the token's module, not ten (the module file's opens are counted
 * with inotify). */
static void test_unreachable_token_is_not_retried_per_request(void **state)
{
	struct world_fixture *fixture = *state;
	lic_error error = {0};
	char module[192];
	test_join_path(module, sizeof module, fixture->directory, "not-a-module.so");
	FILE *file = fopen(module, "w");
	assert_non_null(file);
	fputs("not an ELF file\n", file);
	fclose(file);
	/* Version 2: a BYOK key "in" that module, retained (it unwraps). */
	EVP_PKEY *token_public = NULL;
	assert_int_equal(key_material_generate(KEY_ALGORITHM_RSA_2048, &token_public, &error), LIC_OK);
	struct key_version version = {.algorithm = KEY_ALGORITHM_RSA_2048,
				      .origin = KEY_ORIGIN_BYOK,
				      .state = LIC_KEY_STATE_RETAINED,
				      .state_before_revoke = LIC_KEY_STATE_RETAINED,
				      .created_at = 1,
				      .retained_at = 1};
	assert_int_equal(key_material_public_der(token_public, &version.public_key_der,
						 &version.public_key_length, &error),
			 LIC_OK);
	key_id_of_spki(version.public_key_der, version.public_key_length, version.key_id);
	for (int i = 0; i < KEY_ID_LENGTH; i++)
		snprintf(version.key_id_hex + 2 * i, 3, "%02x", version.key_id[i]);
	char uri[512];
	snprintf(uri, sizeof uri, "pkcs11:token=gone;object=contoso-v2?module-path=%s", module);
	version.byok_uri = strdup(uri);
	struct tenant *tenant = NULL;
	assert_int_equal(store_lock(fixture->writer, &error), LIC_OK);
	assert_int_equal(store_load_tenant(fixture->writer, "contoso", &tenant, &error), LIC_OK);
	assert_int_equal(tenant_append_version(tenant, &version, &error), LIC_OK);
	assert_int_equal(store_save_tenant(fixture->writer, tenant, 0, &error), LIC_OK);
	store_unlock(fixture->writer);
	assert_int_equal(lic_keyring_reload(fixture->keyring, &error), LIC_OK);
	/* A PL for bob under version 2. */
	const char *principals[] = {"bob@contoso.com"};
	const char *rights[] = {"VIEW"};
	struct publish_request publish = {.tenant = "contoso",
					  .content_id = "doc-token",
					  .owner = "alice@contoso.com",
					  .grant_principals = principals,
					  .grant_rights = rights,
					  .grant_count = 1,
					  .license_validity_days = 30,
					  .issued_at = lic_clock_now(lic_clock_system())};
	uint8_t content_key[CONTENT_KEY_LENGTH] = {0};
	char *pl = NULL;
	size_t pl_length = 0;
	assert_int_equal(publishing_license_write(&publish, token_public,
						  tenant_version(tenant, 2)->key_id_hex, content_key, &pl,
						  &pl_length, &error),
			 LIC_OK);

	int watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	assert_true(watch >= 0);
	/* IN_CLOSE too: inotify merges an event identical to the last unread
	 * one, so opens alone would be counted once however many there were. */
	assert_true(inotify_add_watch(watch, module, IN_OPEN | IN_CLOSE_NOWRITE) >= 0);
	lic_engine *engine = new_engine(fixture, 1);
	size_t opens = 0;
	for (int i = 0; i < 10; i++) {
		lic_license_request request = {fixture->bob_rac, fixture->bob_rac_length, pl, pl_length};
		lic_license_result result;
		assert_int_equal(lic_engine_issue(engine, &request, 1, &result, &error), LIC_OK);
		assert_int_equal(result.error.status, LIC_INTERNAL);
		assert_non_null(strstr(result.error.message, "version 2 of contoso is not available"));
		assert_null(result.use_license);
		char events[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
		ssize_t length;
		while ((length = read(watch, events, sizeof events)) > 0)
			for (char *at = events; at < events + length;
			     at += sizeof(struct inotify_event) + ((struct inotify_event *)at)->len)
				if (((struct inotify_event *)at)->mask & IN_OPEN)
					opens++;
	}
	lic_engine_free(engine);
	close(watch);
	/* One attempt (dlopen may open the file once or twice per attempt); ten
	 * attempts would be at least ten opens. */
	assert_true(opens >= 1);
	assert_true(opens <= 2);
	free(pl);
	tenant_free(tenant);
	EVP_PKEY_free(token_public);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_batch_items_fail_independently, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pl_cache_saves_the_unwrap_and_is_purged_on_revoke, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_acquire_request_and_response, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_compromised_uses_are_counted_and_audited, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_responses_stay_well_formed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_bound_refuses_with_overloaded, setup, teardown),
	    cmocka_unit_test(test_pl_cache_bounds_and_ttl),
	    cmocka_unit_test_setup_teardown(test_stats_count_errors_by_code_and_batch_sizes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stats_report_the_queue_depth, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_key_usage_counts_operations_by_version, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_key_usage_is_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tick_writes_due_compromised_uses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unreachable_token_is_not_retried_per_request, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
