/*
 * fuzz_acquire_request.c: libFuzzer target for a whole AcquireLicense body
 * as the server hands it to the engine. Proves, for any bytes, that
 * lic_engine_submit_acquire and the worker behind it (job_prepare: the
 * hardened parse, the AcquireLicense root, the 1..100 Item split, each item's
 * RAC and PL readers; then the per-item checks against a real keyring, and
 * job_respond) neither crash, nor hit undefined behaviour, nor leak; that
 * `done` runs exactly once; and that the answer is one well-formed XML
 * document: an AcquireLicenseResponse with HTTP 200, or an Error with a 4xx
 * or 5xx status. A server copies that answer to the client as is, so an
 * answer that does not parse is a bug too. (LICENSOR_FUZZ_SKIP_ANSWER_CHECK=1
 * turns that last check off, to look for other bugs while one is open.)
 *
 * The keyring is a small store made once in LLVMFuzzerInitialize in a
 * temporary directory (tenant contoso, one RSA-2048 version); the seeds'
 * RACs name another key of contoso, so items reach the RAC trust check. Each
 * input gets its own engine (one worker, caches off), freed before the input
 * ends: every allocation of the job is released before libFuzzer counts
 * them, and no state carries over from one input to the next.
 */
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/documents.h"
#include "fuzz_common.h"
#include "keyring/admin.h"
#include "keyring/store.h"
#include "licensor.h"

static char work_directory[256];
static lic_keyring *keyring;
static bool check_answers = true;

struct outcome {
	int calls;
	int http_status;
	char *response;
	size_t length;
};

static void record_outcome(void *context, int http_status, const char *response, size_t length)
{
	struct outcome *outcome = context;
	outcome->calls++;
	outcome->http_status = http_status;
	free(outcome->response);
	outcome->response = malloc(length + 1);
	if (outcome->response == NULL)
		abort();
	memcpy(outcome->response, response, length);
	outcome->response[length] = '\0';
	outcome->length = length;
}

static int remove_entry(const char *path, const struct stat *info, int type, struct FTW *walk)
{
	(void)info;
	(void)type;
	(void)walk;
	return remove(path);
}

static void cleanup_store(void)
{
	lic_keyring_close(keyring);
	keyring = NULL;
	nftw(work_directory, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void die(const char *what, const lic_error *error)
{
	fprintf(stderr, "fuzz_acquire_request: %s: %s\n", what, error->message);
	abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet_libxml();
	const char *base = getenv("TMPDIR");
	snprintf(work_directory, sizeof work_directory, "%s/licensor-fuzz-acquire-XXXXXX",
		 base != NULL && base[0] != '\0' ? base : "/tmp");
	if (mkdtemp(work_directory) == NULL)
		abort();
	char store_path[300];
	snprintf(store_path, sizeof store_path, "%s/store", work_directory);
	lic_error error = {0};
	struct store_options options = {.directory = store_path};
	struct store *store = NULL;
	if (store_init(&options, &store, &error) != LIC_OK)
		die("store_init", &error);
	struct admin_context context = {.store = store, .actor = "fuzz"};
	if (admin_tenant_add(&context, "contoso", KEY_ALGORITHM_RSA_2048, &error) != LIC_OK)
		die("admin_tenant_add", &error);
	store_close(store);
	lic_keyring_options keyring_options = {.store_dir = store_path};
	if (lic_keyring_open(&keyring_options, &keyring, &error) != LIC_OK)
		die("lic_keyring_open", &error);
	atexit(cleanup_store);
	const char *skip = getenv("LICENSOR_FUZZ_SKIP_ANSWER_CHECK");
	check_answers = skip == NULL || strcmp(skip, "1") != 0;
	return 0;
}

/* The answer is one well-formed document whose root matches the status. */
static void check_answer(const struct outcome *outcome)
{
	if (outcome->calls != 1 || outcome->response == NULL)
		abort();
	if (!check_answers)
		return;
	int options = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING;
	xmlDocPtr answer = xmlReadMemory(outcome->response, (int)outcome->length, NULL, NULL, options);
	if (answer == NULL) {
		fprintf(stderr,
			"fuzz_acquire_request: the engine answered (HTTP %d) with a document "
			"that is not well-formed XML\n",
			outcome->http_status);
		abort();
	}
	xmlNodePtr root = xmlDocGetRootElement(answer);
	bool accepted = root != NULL && strcmp((const char *)root->name, "AcquireLicenseResponse") == 0;
	bool refused = root != NULL && strcmp((const char *)root->name, "Error") == 0;
	if (!(accepted && outcome->http_status == 200) && !(refused && outcome->http_status >= 400))
		abort();
	xmlFreeDoc(answer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lic_engine_options options = {
	    .keyring = keyring, .workers = 1, .pl_cache_entries = SIZE_MAX, .rac_cache_entries = SIZE_MAX};
	lic_engine *engine = NULL;
	lic_error error = {0};
	if (lic_engine_new(&options, &engine, &error) != LIC_OK)
		die("lic_engine_new", &error);
	struct outcome outcome = {0};
	lic_status status =
	    lic_engine_submit_acquire(engine, (const char *)data, size, record_outcome, &outcome, &error);
	lic_engine_free(engine); /* runs the queued job to its end */
	if (status == LIC_OK) {
		check_answer(&outcome);
	} else if (!(status == LIC_TOO_LARGE && size > DOCUMENT_MAX_BYTES) || outcome.calls != 0) {
		abort();
	}
	free(outcome.response);
	return 0;
}
