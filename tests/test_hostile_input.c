/*
 * test_hostile_input.c: attack documents against the readers of untrusted
 * XML (DESIGN.md §2 and §3, CONVENTIONS.md "untrusted input"). Proves that
 * each one is refused with its code (MALFORMED, TOO_LARGE or
 * UNSUPPORTED_VERSION) and the expected sentence, that no sentence or answer
 * quotes a file the document names (/etc/passwd, or a file of ours holding a
 * marker), that no external file is opened, and that each refusal comes
 * quickly and in bounded memory: under a liveness bound of 2 s per case and a
 * peak-RSS growth bound of 512 MB (and no measurable growth at all while a
 * 100 MB body is refused, which proves it was never parsed).
 *
 * The time bound is a liveness check (a refusal that hangs or expands
 * entities would blow through it by orders of magnitude), not a performance
 * test: benchmarks live in bench/.
 *
 * Single documents go through what the engine does with a PL: the hardened
 * xml_document_parse with DOCUMENT_MAX_BYTES, then publishing_license_read
 * on the root. Whole requests go through lic_engine_submit_acquire over a
 * real store (tenant contoso), and the test reads the answer the engine
 * writes for the client.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <libxml/parser.h>

#include "core/documents.h"
#include "keyring/admin.h"
#include "keyring/store.h"
#include "keyring/xml_document.h"
#include "licensor.h"
#include "test_helpers.h"

#define LIVENESS_BOUND_SECONDS 2.0
#define RSS_GROWTH_BOUND_KB (512L * 1024)
#define HUNDRED_MEGABYTES (100u * 1024 * 1024)
#define ANSWER_WAIT_SECONDS 30

/* A PL and a RAC written by the licensor binary (init, tenant add contoso,
 * certify, publish; LICENSOR_TEST_NOW=2026-11-23T17:00:00Z): the same
 * documents as the seeds in tests/fuzz/corpus/. Their keys are not in this
 * test's store, which only matters past parsing. */
static const char seed_publishing_license[] =
    "<PublishingLicense xmlns=\"urn:licensor:v1\" Version=\"1\"><Body><Tenant>contoso</Tenant>"
    "<ContentId>doc-1</ContentId><IssuedAt>2026-11-23T17:00:00Z</IssuedAt>"
    "<KeyId>f55c177ea73756ac674a933bd726977f</KeyId><Owner>alice@contoso.com</Owner><Policy>"
    "<ContentValidUntil>2027-06-01T00:00:00Z</ContentValidUntil><LicenseValidityDays>30"
    "</LicenseValidityDays><Grant Principal=\"bob@contoso.com\" Rights=\"VIEW PRINT\"/>"
    "<Grant Principal=\"*@fabrikam.com\" Rights=\"VIEW\"/>"
    "<Grant Principal=\"ANYONE\" Rights=\"VIEW\"/></Policy></Body>"
    "<EnablingBits Algorithm=\"RSA-OAEP-SHA256\">pGljcRwttYSHoxm+Q8Rd2nHn56EIko2IaXj2QRgCq8W/ZI"
    "IKq+KmbG85OTuZoOJg0c32kDz235no5YqbfJvO4KVuWfjFTDhWzEoFLwUc93DsBFsmdxtJrMcGQoT6lHh1wdG0V9si"
    "A1+PtIepzYYoHuHH5MSGe8S2Nb5aeV6/1Im2cqG1pxz+aqbQaSiqUADhTBE/wbu/r97C4rI4zwo15pxxKa3BasqbSM"
    "vgULOHU94YDDafghJjW6Hc1Dhqima1ooiSMUHkMXiS/3hpDKDTSLzdp7W4bFGM8R3ldP3rqovQrBM/EGD1itdmkXmC"
    "XJ9NlbaWtyxyEwdo/zgBLZdTBQ==</EnablingBits></PublishingLicense>";

static const char seed_rights_account_certificate[] =
    "<RightsAccountCertificate xmlns=\"urn:licensor:v1\" Version=\"1\"><Body><Tenant>contoso"
    "</Tenant><Principal>bob@contoso.com</Principal>"
    "<PublicKey>MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAiqYfSCKH6vxhxbZaVwCeKlwkeDBm2NonuOU"
    "sEGTgLOYDXwv08c0mEqn1LDJMoUjRxRCoLdH5H7PeY/EjjxqJHGKRlpY4Gtw9O3Jv0Zb/S1HFFrqXesOUPbm6wGw57"
    "kYDMdxKEzd/l6GLHLkxgq6KLCKb5T3LezBKH/fnENDczgORnK/7uwxGFRRfouSdj4v7hLi1bnIKOqVdaBBEJK+Y7yk"
    "8US08tl4vb0rKobyMxtf3qrBTImRflTI7fFGpNb5a7qiWlNHrIjM8GqeGS97i3FX2DCigyCTa/hTHy9aOHNhhG+ecD"
    "tz/SO4IEvQBB5R1o5InXeVLozYW1Du5jh72fQIDAQAB</PublicKey><NotBefore>2026-11-23T17:00:00Z"
    "</NotBefore><NotAfter>2026-12-24T17:00:00Z</NotAfter></Body>"
    "<Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"><SignedInfo>"
    "<CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>"
    "<SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>"
    "<Reference URI=\"\"><Transforms>"
    "<Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>"
    "<Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></Transforms>"
    "<DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/>"
    "<DigestValue>Q4n3XNKNBdhlZiXAV0g+5csqq6hVTtLTzzHuINn9d0o=</DigestValue></Reference>"
    "</SignedInfo>"
    "<SignatureValue>ZGWvF+Y3cRMNsGcLKIB/f/mtbLhFL2QEuaiIDoPZxIZ/6Lpj7meGXh0Jq6EYiPDPz7rLY9wL1p"
    "Zwtj3J7OFLGVdw4yfT4gzNeHEVK2yrqcmLBVi65OXwTFfcbiGTtLwoweCJGgcHSZ2kV5OYuRIE9TJBypsTqWZXptML"
    "w6oQR473aMbqaLMxHYiUBeTLVWOt8Xvphqq9PoSjXuJrj2GMiXabvSCgiN8r7VWtk7rAq27hOQ2dbvfwzB6Oc/5eDU"
    "wFr7aEtAexw5pwnRVAzYulV5E3Zz0jNDN+4orJ1fagmg6tqqUpVPV4i22vXfD5plsw+TAPz0JaRjp6Ov2PGibMOw=="
    "</SignatureValue><KeyInfo><KeyName>f55c177ea73756ac674a933bd726977f</KeyName></KeyInfo>"
    "</Signature></RightsAccountCertificate>";

#define PL_ROOT_START "<PublishingLicense xmlns=\"urn:licensor:v1\" Version=\"1\">"

/* Nine levels of ten: &lol9; stands for 10^9 "lol"s. */
#define BILLION_LAUGHS_DOCTYPE                                                                               \
	"<?xml version=\"1.0\"?>\n"                                                                          \
	"<!DOCTYPE PublishingLicense [\n"                                                                    \
	" <!ENTITY lol \"lol\">\n"                                                                           \
	" <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"                           \
	" <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"                 \
	" <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"                 \
	" <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"                 \
	" <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"                 \
	" <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"                 \
	" <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"                 \
	" <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"                 \
	" <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"                 \
	"]>\n"

/* ---- the fixture: a store with tenant contoso, its keyring, an engine ---- */

static char work_directory[128];
static char marker_path[192];
static lic_keyring *keyring;
static lic_engine *engine;

/* A file of ours that an external entity names: its content must never come back. */
#define SECRET_MARKER "licensor-hostile-input-secret-7f3a9c"

static int setup_group(void **state)
{
	(void)state;
	lic_error error = {0};
	const char *base = getenv("TMPDIR");
	snprintf(work_directory, sizeof work_directory, "%s/licensor-test-hostile-XXXXXX",
		 base != NULL && base[0] != '\0' ? base : "/tmp");
	if (mkdtemp(work_directory) == NULL)
		return -1;
	char store_path[160];
	snprintf(store_path, sizeof store_path, "%s/store", work_directory);
	snprintf(marker_path, sizeof marker_path, "%s/secret.txt", work_directory);
	FILE *marker = fopen(marker_path, "w");
	if (marker == NULL || fputs(SECRET_MARKER "\n", marker) < 0 || fclose(marker) != 0)
		return -1;
	struct store_options options = {.directory = store_path};
	struct store *store = NULL;
	if (store_init(&options, &store, &error) != LIC_OK) {
		print_error("store_init: %s\n", error.message);
		return -1;
	}
	struct admin_context context = {.store = store, .actor = "test"};
	lic_status status = admin_tenant_add(&context, "contoso", KEY_ALGORITHM_RSA_2048, &error);
	store_close(store);
	if (status != LIC_OK) {
		print_error("admin_tenant_add: %s\n", error.message);
		return -1;
	}
	lic_keyring_options keyring_options = {.store_dir = store_path};
	if (lic_keyring_open(&keyring_options, &keyring, &error) != LIC_OK) {
		print_error("lic_keyring_open: %s\n", error.message);
		return -1;
	}
	lic_engine_options engine_options = {.keyring = keyring, .workers = 2};
	if (lic_engine_new(&engine_options, &engine, &error) != LIC_OK) {
		print_error("lic_engine_new: %s\n", error.message);
		return -1;
	}
	return 0;
}

static int teardown_group(void **state)
{
	(void)state;
	lic_engine_free(engine);
	lic_keyring_close(keyring);
	test_remove_tree(work_directory);
	return 0;
}

/* ---- measuring a case: wall time and peak-RSS growth ---- */

struct measure {
	struct timespec start;
	long start_rss_kb;
};

static long peak_rss_kb(void)
{
	struct rusage usage;
	assert_int_equal(getrusage(RUSAGE_SELF, &usage), 0);
	return usage.ru_maxrss; /* kilobytes on Linux */
}

static void measure_start(struct measure *measure)
{
	measure->start_rss_kb = peak_rss_kb();
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &measure->start), 0);
}

/* Asserts the liveness and memory bounds; returns the peak-RSS growth in KB. */
static long measure_finish(const struct measure *measure, const char *name)
{
	struct timespec end;
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &end), 0);
	double seconds = (double)(end.tv_sec - measure->start.tv_sec) +
			 (double)(end.tv_nsec - measure->start.tv_nsec) / 1e9;
	long growth = peak_rss_kb() - measure->start_rss_kb;
	print_message("%-44s %9.3f ms, peak RSS +%ld KB\n", name, seconds * 1e3, growth);
	if (seconds >= LIVENESS_BOUND_SECONDS)
		fail_msg("%s took %.3f s (bound %.1f s)", name, seconds, LIVENESS_BOUND_SECONDS);
	if (growth >= RSS_GROWTH_BOUND_KB)
		fail_msg("%s grew the peak RSS by %ld KB (bound %ld KB)", name, growth, RSS_GROWTH_BOUND_KB);
	return growth;
}

/* ---- documents ---- */

/* text with the first `from` replaced by `to` (new string, free()). */
static char *replace_once(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	assert_non_null(at);
	size_t before = (size_t)(at - text), from_length = strlen(from), to_length = strlen(to);
	size_t after = strlen(at + from_length);
	char *result = malloc(before + to_length + after + 1);
	assert_non_null(result);
	memcpy(result, text, before);
	memcpy(result + before, to, to_length);
	memcpy(result + before + to_length, at + from_length, after + 1);
	return result;
}

/* What the engine does with a PL: the capped parse, then the reader on the root. */
static lic_status read_publishing_license(const char *xml, size_t length, lic_error *error)
{
	xmlDocPtr document = NULL;
	lic_status status = xml_document_parse(xml, length, DOCUMENT_MAX_BYTES, &document, error);
	if (status != LIC_OK)
		return status;
	struct publishing_license license;
	status = publishing_license_read(document, xmlDocGetRootElement(document), &license, error);
	if (status == LIC_OK)
		publishing_license_cleanup(&license);
	xmlFreeDoc(document);
	return status;
}

/* Reads `xml` as a PL within the bounds; asserts the code and a piece of the sentence. */
static void expect_refusal(const char *name, const char *xml, size_t length, lic_status expected,
			   const char *sentence)
{
	lic_error error = {0};
	struct measure measure;
	measure_start(&measure);
	lic_status status = read_publishing_license(xml, length, &error);
	measure_finish(&measure, name);
	if (status != expected)
		fail_msg("%s: expected %s, got %s (%s)", name, lic_status_code(expected),
			 lic_status_code(status), error.message);
	assert_int_equal(error.status, expected);
	if (strstr(error.message, sentence) == NULL)
		fail_msg("%s: the sentence \"%s\" does not say \"%s\"", name, error.message, sentence);
}

static bool printable_ascii(const char *text)
{
	for (const unsigned char *c = (const unsigned char *)text; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			return false;
	return true;
}

/* ---- the engine: one AcquireLicense, its answer ---- */

struct answer {
	pthread_mutex_t lock;
	pthread_cond_t done;
	int calls;
	int http_status;
	char *body;
	size_t length;
};

static void record_answer(void *context, int http_status, const char *response, size_t length)
{
	struct answer *answer = context;
	char *copy = malloc(length + 1);
	if (copy != NULL) {
		memcpy(copy, response, length);
		copy[length] = '\0';
	}
	pthread_mutex_lock(&answer->lock);
	answer->calls++;
	answer->http_status = http_status;
	free(answer->body);
	answer->body = copy;
	answer->length = length;
	pthread_cond_broadcast(&answer->done);
	pthread_mutex_unlock(&answer->lock);
}

static void answer_init(struct answer *answer)
{
	memset(answer, 0, sizeof *answer);
	pthread_mutex_init(&answer->lock, NULL);
	pthread_cond_init(&answer->done, NULL);
}

static void answer_cleanup(struct answer *answer)
{
	free(answer->body);
	pthread_mutex_destroy(&answer->lock);
	pthread_cond_destroy(&answer->done);
}

/* Submits body and waits (bounded) for the one answer. */
static void acquire(const char *name, const char *body, size_t length, struct answer *answer)
{
	lic_error error = {0};
	struct measure measure;
	measure_start(&measure);
	lic_status status = lic_engine_submit_acquire(engine, body, length, record_answer, answer, &error);
	if (status != LIC_OK)
		fail_msg("%s: submit refused: %s", name, error.message);
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += ANSWER_WAIT_SECONDS;
	pthread_mutex_lock(&answer->lock);
	int wait = 0;
	while (answer->calls == 0 && wait != ETIMEDOUT)
		wait = pthread_cond_timedwait(&answer->done, &answer->lock, &deadline);
	int calls = answer->calls;
	pthread_mutex_unlock(&answer->lock);
	if (calls == 0)
		fail_msg("%s: no answer within %d s", name, ANSWER_WAIT_SECONDS);
	measure_finish(&measure, name);
	assert_non_null(answer->body);
}

/* The answer is an <Error Code="code"> document with that HTTP status. */
static void assert_error_answer(const struct answer *answer, int http_status, const char *code,
				const char *sentence)
{
	assert_int_equal(answer->http_status, http_status);
	xmlDocPtr document = NULL;
	lic_error error = {0};
	if (xml_document_parse(answer->body, answer->length, DOCUMENT_MAX_BYTES, &document, &error) != LIC_OK)
		fail_msg("the answer is not well-formed: %s", answer->body);
	xmlNodePtr root = NULL;
	assert_int_equal(xml_document_root(document, "Error", &root, &error), LIC_OK);
	xmlChar *found = xmlGetNoNsProp(root, (const xmlChar *)"Code");
	assert_non_null(found);
	assert_string_equal((const char *)found, code);
	xmlFree(found);
	xmlChar *text = xmlNodeGetContent(root);
	if (strstr((const char *)text, sentence) == NULL)
		fail_msg("the answer \"%s\" does not say \"%s\"", (const char *)text, sentence);
	xmlFree(text);
	xmlFreeDoc(document);
}

/* An AcquireLicense of `count` items, each the seed RAC and PL (new string, free()). */
static char *acquire_body(size_t count, size_t *length)
{
	static const char head[] = "<AcquireLicense xmlns=\"urn:licensor:v1\">";
	static const char tail[] = "</AcquireLicense>";
	size_t item = strlen("<Item></Item>") + strlen(seed_rights_account_certificate) +
		      strlen(seed_publishing_license);
	size_t size = strlen(head) + count * item + strlen(tail) + 1;
	char *body = malloc(size);
	assert_non_null(body);
	char *cursor = body;
	cursor += sprintf(cursor, "%s", head);
	for (size_t i = 0; i < count; i++)
		cursor += sprintf(cursor, "<Item>%s%s</Item>", seed_rights_account_certificate,
				  seed_publishing_license);
	cursor += sprintf(cursor, "%s", tail);
	*length = (size_t)(cursor - body);
	return body;
}

/* ---- the control: the seed PL is accepted, so each refusal below is its mutation's ---- */

static void test_seed_publishing_license_is_accepted(void **state)
{
	(void)state;
	lic_error error = {0};
	assert_int_equal(
	    read_publishing_license(seed_publishing_license, strlen(seed_publishing_license), &error),
	    LIC_OK);
}

/* ---- entity attacks ---- */

static void test_billion_laughs_is_refused_without_expansion(void **state)
{
	(void)state;
	static const char in_text[] =
	    BILLION_LAUGHS_DOCTYPE PL_ROOT_START "<Body><Tenant>&lol9;</Tenant></Body></PublishingLicense>";
	static const char in_attribute[] =
	    BILLION_LAUGHS_DOCTYPE "<PublishingLicense xmlns=\"urn:licensor:v1\" Version=\"&lol9;\"/>";
	/* libxml2 sees the amplification while it checks the references, before our
	 * DOCTYPE refusal: either way nothing is expanded and the answer is MALFORMED. */
	expect_refusal("billion laughs in text", in_text, strlen(in_text), LIC_MALFORMED,
		       "not well-formed XML");
	expect_refusal("billion laughs in an attribute", in_attribute, strlen(in_attribute), LIC_MALFORMED,
		       "not well-formed XML");

	struct answer answer;
	answer_init(&answer);
	acquire("billion laughs as an AcquireLicense", in_text, strlen(in_text), &answer);
	assert_error_answer(&answer, 400, "MALFORMED", "not well-formed XML");
	answer_cleanup(&answer);
}

static void test_external_entity_is_refused_and_not_echoed(void **state)
{
	(void)state;
	static const char in_text[] =
	    "<?xml version=\"1.0\"?>\n"
	    "<!DOCTYPE PublishingLicense [<!ENTITY secret SYSTEM \"file:///etc/passwd\">]>\n" PL_ROOT_START
	    "<Body><Tenant>&secret;</Tenant></Body></PublishingLicense>";
	static const char in_attribute[] =
	    "<!DOCTYPE PublishingLicense [<!ENTITY secret SYSTEM \"file:///etc/passwd\">]>"
	    "<PublishingLicense xmlns=\"urn:licensor:v1\" Version=\"&secret;\"/>";
	static const char parameter[] =
	    "<!DOCTYPE PublishingLicense [<!ENTITY % secret SYSTEM \"file:///etc/passwd\"> "
	    "%secret;]>" PL_ROOT_START "</PublishingLicense>";
	static const char external_subset[] =
	    "<!DOCTYPE PublishingLicense SYSTEM \"file:///etc/passwd\">" PL_ROOT_START "</PublishingLicense>";
	const struct {
		const char *name, *xml;
	} cases[] = {
	    {"external entity in text", in_text},
	    {"external entity in an attribute", in_attribute},
	    {"external parameter entity", parameter},
	    {"external DTD subset", external_subset},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		lic_error error = {0};
		struct measure measure;
		measure_start(&measure);
		lic_status status = read_publishing_license(cases[i].xml, strlen(cases[i].xml), &error);
		measure_finish(&measure, cases[i].name);
		assert_int_equal(status, LIC_MALFORMED);
		assert_null(strstr(error.message, "root:"));
		assert_true(printable_ascii(error.message));
	}

	/* A file of ours with a marker: it is never opened (inotify sees no IN_OPEN),
	 * and neither the sentence nor the answer holds its content. */
	char *marked = NULL;
	assert_true(
	    asprintf(&marked,
		     "<!DOCTYPE PublishingLicense [<!ENTITY secret SYSTEM \"file://%s\">]>" PL_ROOT_START
		     "<Body><Tenant>&secret;</Tenant></Body></PublishingLicense>",
		     marker_path) > 0);
	int watcher = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	assert_true(watcher >= 0);
	assert_true(inotify_add_watch(watcher, marker_path, IN_OPEN | IN_ACCESS) >= 0);
	lic_error error = {0};
	assert_int_equal(read_publishing_license(marked, strlen(marked), &error), LIC_MALFORMED);
	assert_null(strstr(error.message, SECRET_MARKER));
	struct answer answer;
	answer_init(&answer);
	acquire("external entity as an AcquireLicense", in_text, strlen(in_text), &answer);
	assert_error_answer(&answer, 400, "MALFORMED", "document type declarations are not accepted");
	assert_null(strstr(answer.body, "root:"));
	answer_cleanup(&answer);
	answer_init(&answer);
	acquire("marker-file entity as an AcquireLicense", marked, strlen(marked), &answer);
	assert_error_answer(&answer, 400, "MALFORMED", "document type declarations are not accepted");
	assert_null(strstr(answer.body, SECRET_MARKER));
	answer_cleanup(&answer);
	char events[4096];
	ssize_t got = read(watcher, events, sizeof events);
	if (got > 0)
		fail_msg("a document that names %s made the reader open it", marker_path);
	assert_int_equal(errno, EAGAIN);
	close(watcher);
	free(marked);
}

/* ---- size ---- */

/* A 100 MB PL, built in memory: the seed's head, then Grants up to the size. */
static char *hundred_megabyte_publishing_license(void)
{
	static const char grant[] = "<Grant Principal=\"bob@contoso.com\" Rights=\"VIEW\"/>";
	static const char tail[] = "</Policy></Body></PublishingLicense>";
	const char *policy_end = strstr(seed_publishing_license, "</Policy>");
	assert_non_null(policy_end);
	size_t head = (size_t)(policy_end - seed_publishing_license);
	char *xml = malloc(HUNDRED_MEGABYTES);
	assert_non_null(xml);
	memcpy(xml, seed_publishing_license, head);
	size_t at = head;
	while (at + sizeof grant - 1 <= HUNDRED_MEGABYTES - (sizeof tail - 1)) {
		memcpy(xml + at, grant, sizeof grant - 1);
		at += sizeof grant - 1;
	}
	memset(xml + at, ' ', HUNDRED_MEGABYTES - (sizeof tail - 1) - at);
	memcpy(xml + HUNDRED_MEGABYTES - (sizeof tail - 1), tail, sizeof tail - 1);
	return xml;
}

static void test_hundred_megabyte_body_is_refused_unparsed(void **state)
{
	(void)state;
	struct measure whole;
	measure_start(&whole);
	char *xml = hundred_megabyte_publishing_license();

	struct measure refusal;
	measure_start(&refusal);
	lic_error error = {0};
	assert_int_equal(read_publishing_license(xml, HUNDRED_MEGABYTES, &error), LIC_TOO_LARGE);
	long parse_growth = measure_finish(&refusal, "100 MB PL refused");
	assert_string_equal(error.message, "document is larger than 1048576 bytes");
	/* Nothing was parsed: a tree of 100 MB of Grants would take far more than 100 MB. */
	assert_true(parse_growth < 16 * 1024);

	/* The engine refuses it before copying or queueing: `done` never runs. */
	struct answer answer;
	answer_init(&answer);
	measure_start(&refusal);
	assert_int_equal(
	    lic_engine_submit_acquire(engine, xml, HUNDRED_MEGABYTES, record_answer, &answer, &error),
	    LIC_TOO_LARGE);
	measure_finish(&refusal, "100 MB AcquireLicense refused");
	assert_string_equal(error.message, "request larger than 1048576 bytes");
	assert_int_equal(answer.calls, 0);
	answer_cleanup(&answer);
	free(xml);
	measure_finish(&whole, "100 MB case, buffer included");
}

/* The cap is exact: DOCUMENT_MAX_BYTES is read, one byte more is refused. */
static void test_size_cap_is_exact(void **state)
{
	(void)state;
	size_t seed_length = strlen(seed_publishing_license), root_start = strlen(PL_ROOT_START);
	char *xml = malloc(DOCUMENT_MAX_BYTES + 1);
	assert_non_null(xml);
	/* The seed with a comment after the root's start tag, padded to the cap. */
	size_t padding = DOCUMENT_MAX_BYTES - seed_length - strlen("<!---->");
	memcpy(xml, seed_publishing_license, root_start);
	size_t at = root_start;
	memcpy(xml + at, "<!--", 4);
	at += 4;
	memset(xml + at, 'x', padding);
	at += padding;
	memcpy(xml + at, "-->", 3);
	at += 3;
	memcpy(xml + at, seed_publishing_license + root_start, seed_length - root_start);
	at += seed_length - root_start;
	assert_int_equal(at, DOCUMENT_MAX_BYTES);
	xml[at] = ' ';

	lic_error error = {0};
	struct measure measure;
	measure_start(&measure);
	assert_int_equal(read_publishing_license(xml, DOCUMENT_MAX_BYTES, &error), LIC_OK);
	measure_finish(&measure, "PL of exactly DOCUMENT_MAX_BYTES");
	expect_refusal("PL of DOCUMENT_MAX_BYTES + 1", xml, DOCUMENT_MAX_BYTES + 1, LIC_TOO_LARGE,
		       "document is larger than 1048576 bytes");
	free(xml);
}

/* ---- structure ---- */

static void test_ten_thousand_deep_nesting_is_refused(void **state)
{
	(void)state;
	enum { DEPTH = 10000 };
	static const char open_tag[] = "<Body>", close_tag[] = "</Body>";
	static const char tail[] = "</PublishingLicense>";
	size_t size =
	    strlen(PL_ROOT_START) + DEPTH * (strlen(open_tag) + strlen(close_tag)) + strlen(tail) + 1;
	char *xml = malloc(size);
	assert_non_null(xml);
	char *cursor = xml + sprintf(xml, "%s", PL_ROOT_START);
	for (int i = 0; i < DEPTH; i++)
		cursor += sprintf(cursor, "%s", open_tag);
	for (int i = 0; i < DEPTH; i++)
		cursor += sprintf(cursor, "%s", close_tag);
	cursor += sprintf(cursor, "%s", tail);
	expect_refusal("10,000-deep nesting", xml, (size_t)(cursor - xml), LIC_MALFORMED,
		       "not well-formed XML");

	/* The same depth of Items, as a whole request. */
	char *request = malloc(DEPTH * strlen("<Item></Item>") + 128);
	assert_non_null(request);
	cursor = request + sprintf(request, "<AcquireLicense xmlns=\"urn:licensor:v1\">");
	for (int i = 0; i < DEPTH; i++)
		cursor += sprintf(cursor, "<Item>");
	for (int i = 0; i < DEPTH; i++)
		cursor += sprintf(cursor, "</Item>");
	cursor += sprintf(cursor, "</AcquireLicense>");
	struct answer answer;
	answer_init(&answer);
	acquire("10,000-deep AcquireLicense", request, (size_t)(cursor - request), &answer);
	assert_error_answer(&answer, 400, "MALFORMED", "not well-formed XML");
	answer_cleanup(&answer);
	free(request);
	free(xml);
}

static void test_invalid_utf8_in_text_is_refused(void **state)
{
	(void)state;
	/* C3 28: a lead byte whose continuation is not one; FF: never valid. */
	const char *sequences[] = {"doc-\xC3\x28", "doc-\xFF\xFE", "doc-\xED\xA0\x80" /* a surrogate */};
	for (size_t i = 0; i < sizeof sequences / sizeof sequences[0]; i++) {
		char *content_id = NULL;
		assert_true(asprintf(&content_id, "<ContentId>%s<", sequences[i]) > 0);
		char *bad = replace_once(seed_publishing_license, "<ContentId>doc-1<", content_id);
		lic_error error = {0};
		struct measure measure;
		measure_start(&measure);
		assert_int_equal(read_publishing_license(bad, strlen(bad), &error), LIC_MALFORMED);
		measure_finish(&measure, "invalid UTF-8 in a text node");
		assert_true(printable_ascii(error.message)); /* the bytes are not echoed */
		assert_non_null(strstr(error.message, "not well-formed XML"));
		free(bad);
		free(content_id);
	}
}

static void test_duplicated_body_is_refused(void **state)
{
	(void)state;
	char *xml =
	    replace_once(seed_publishing_license, "</Body>", "</Body><Body><Tenant>contoso</Tenant></Body>");
	expect_refusal("a duplicated Body", xml, strlen(xml), LIC_MALFORMED,
		       "element Body appears twice in PublishingLicense");
	free(xml);
}

static void test_missing_enabling_bits_is_refused(void **state)
{
	(void)state;
	const char *start = strstr(seed_publishing_license, "<EnablingBits");
	assert_non_null(start);
	char *xml = NULL;
	assert_true(asprintf(&xml, "%.*s</PublishingLicense>", (int)(start - seed_publishing_license),
			     seed_publishing_license) > 0);
	expect_refusal("a missing EnablingBits", xml, strlen(xml), LIC_MALFORMED,
		       "element EnablingBits is missing from PublishingLicense");
	free(xml);
}

static void test_wrong_namespace_is_refused(void **state)
{
	(void)state;
	char *root =
	    replace_once(seed_publishing_license, "xmlns=\"urn:licensor:v1\"", "xmlns=\"urn:licensor:v2\"");
	expect_refusal("the root in another namespace", root, strlen(root), LIC_MALFORMED,
		       "expected a PublishingLicense element in namespace urn:licensor:v1");
	/* A child in no namespace, by the name the reader looks for. */
	char *child = replace_once(seed_publishing_license, "<Tenant>contoso</Tenant>",
				   "<Tenant xmlns=\"\">contoso</Tenant>");
	expect_refusal("Tenant in no namespace", child, strlen(child), LIC_MALFORMED,
		       "element Tenant is in the wrong namespace");
	free(child);
	free(root);
}

static void test_bad_base64_in_enabling_bits_is_refused(void **state)
{
	(void)state;
	const char *start = strstr(seed_publishing_license, "RSA-OAEP-SHA256\">");
	assert_non_null(start);
	start += strlen("RSA-OAEP-SHA256\">");
	const char *end = strstr(start, "</EnablingBits>");
	char *bits = strndup(start, (size_t)(end - start));
	assert_non_null(bits);
	/* Not base64 at all; and a valid payload with one character that is not. */
	char *garbage = replace_once(seed_publishing_license, bits, "!!not*base64!!");
	expect_refusal("EnablingBits that is not base64", garbage, strlen(garbage), LIC_MALFORMED,
		       "element EnablingBits holds bad base64");
	char *one_bad = replace_once(seed_publishing_license, "pGljcRwt", "pGljcR%t");
	expect_refusal("EnablingBits with one bad character", one_bad, strlen(one_bad), LIC_MALFORMED,
		       "element EnablingBits holds bad base64");
	free(one_bad);
	free(garbage);
	free(bits);
}

static void test_version_2_is_unsupported(void **state)
{
	(void)state;
	char *xml = replace_once(seed_publishing_license, "Version=\"1\"", "Version=\"2\"");
	expect_refusal("Version=\"2\"", xml, strlen(xml), LIC_UNSUPPORTED_VERSION,
		       "PublishingLicense Version is not 1");
	free(xml);
}

/* ---- AcquireLicense item count: 1 to 100 ---- */

static void test_acquire_with_101_items_is_too_large(void **state)
{
	(void)state;
	size_t length = 0;
	char *body = acquire_body(ACQUIRE_MAX_ITEMS + 1, &length);
	assert_true(length <= DOCUMENT_MAX_BYTES); /* the count is refused, not the size */
	struct answer answer;
	answer_init(&answer);
	acquire("AcquireLicense with 101 items", body, length, &answer);
	assert_error_answer(&answer, 413, "TOO_LARGE", "more than 100 items in one request");
	answer_cleanup(&answer);
	free(body);
}

/* The boundary: 100 items are read, and each gets its own Result. */
static void test_acquire_with_100_items_gets_100_results(void **state)
{
	(void)state;
	size_t length = 0;
	char *body = acquire_body(ACQUIRE_MAX_ITEMS, &length);
	struct answer answer;
	answer_init(&answer);
	acquire("AcquireLicense with 100 items", body, length, &answer);
	assert_int_equal(answer.http_status, 200);
	xmlDocPtr document = NULL;
	xmlNodePtr root = NULL;
	lic_error error = {0};
	assert_int_equal(
	    xml_document_parse(answer.body, answer.length, DOCUMENT_MAX_BYTES, &document, &error), LIC_OK);
	assert_int_equal(xml_document_root(document, "AcquireLicenseResponse", &root, &error), LIC_OK);
	size_t results = 0;
	for (xmlNodePtr child = root->children; child; child = child->next)
		results +=
		    child->type == XML_ELEMENT_NODE && strcmp((const char *)child->name, "Result") == 0;
	assert_int_equal(results, ACQUIRE_MAX_ITEMS);
	/* The seed RAC is signed by a key this store never had. */
	assert_non_null(strstr(answer.body, "Code=\"RAC_INVALID\""));
	xmlFreeDoc(document);
	answer_cleanup(&answer);
	free(body);
}

static void test_acquire_with_0_items_is_malformed(void **state)
{
	(void)state;
	const char *bodies[] = {
	    "<AcquireLicense xmlns=\"urn:licensor:v1\"/>",
	    "<AcquireLicense xmlns=\"urn:licensor:v1\">\n  <!-- nothing -->\n</AcquireLicense>",
	};
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		struct answer answer;
		answer_init(&answer);
		acquire("AcquireLicense with 0 items", bodies[i], strlen(bodies[i]), &answer);
		assert_error_answer(&answer, 400, "MALFORMED", "AcquireLicense holds no Item");
		answer_cleanup(&answer);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_seed_publishing_license_is_accepted),
	    cmocka_unit_test(test_billion_laughs_is_refused_without_expansion),
	    cmocka_unit_test(test_external_entity_is_refused_and_not_echoed),
	    cmocka_unit_test(test_hundred_megabyte_body_is_refused_unparsed),
	    cmocka_unit_test(test_size_cap_is_exact),
	    cmocka_unit_test(test_ten_thousand_deep_nesting_is_refused),
	    cmocka_unit_test(test_invalid_utf8_in_text_is_refused),
	    cmocka_unit_test(test_duplicated_body_is_refused),
	    cmocka_unit_test(test_missing_enabling_bits_is_refused),
	    cmocka_unit_test(test_wrong_namespace_is_refused),
	    cmocka_unit_test(test_bad_base64_in_enabling_bits_is_refused),
	    cmocka_unit_test(test_version_2_is_unsupported),
	    cmocka_unit_test(test_acquire_with_101_items_is_too_large),
	    cmocka_unit_test(test_acquire_with_100_items_gets_100_results),
	    cmocka_unit_test(test_acquire_with_0_items_is_malformed),
	};
	return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
