/*
 * fuzz_common.h: what the libFuzzer targets of tests/fuzz share: libxml2
 * kept quiet (a refusal is a status, not a page of stderr per input), and the
 * public key of the tenant that signed the seed RAC and UL in corpus/, so the
 * signature check runs to its end on the seeds and on inputs close to them.
 *
 * The seeds were written by the licensor binary (init, tenant add contoso,
 * certify, publish, acquire; LICENSOR_TEST_NOW=2026-11-23T17:00:00Z); the key
 * below is `licensor keys pubkey contoso --version 1` of that store. Re-making
 * the seeds means replacing it too, or the checks simply stop at the digest.
 */
#ifndef LICENSOR_TESTS_FUZZ_COMMON_H
#define LICENSOR_TESTS_FUZZ_COMMON_H

#include <stdlib.h>

#include <libxml/parser.h>
#include <libxml/xmlerror.h>
#include <openssl/bio.h>
#include <openssl/pem.h>

static const char fuzz_seed_tenant_public_key_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvw05ZNVhOsJj2FthKXcM\n"
    "c7rnXvlfRt6GC21fPt9tsoun+D/XoGKBHedSGjTYmUb1+F6K/rEHhzbxISoXlAfb\n"
    "WCaL0/R7UNza5cn+H7YQSlJVuL5IOzy7whvBZM+9R8HzF2FDSQgIkBU+40VEmjgO\n"
    "b6IAqijO1EsL0e3VC9FQdyWnNVXKt2IxoyjiEpGSXyYXD1bTbwMXWBj5nOgXh+7O\n"
    "8VXAQJnn+UPuz0unjU2TEy7KuEHWGbGi0OQuUitqYU+JS6lF0vm5f2hVVKniBodb\n"
    "7TjD1QyHF5jLQ4FeHfgbNOcQvT0jh5THoHaBXsY48QEiXy9JXRj98DEgcv9Veny6\n"
    "ZwIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

static inline void fuzz_ignore_libxml_message(void *context, const char *format, ...)
{
	(void)context;
	(void)format;
}

static inline void fuzz_ignore_libxml_error(void *context, xmlErrorPtr error)
{
	(void)context;
	(void)error;
}

/* Initialises libxml2 and silences its error callbacks for this thread. */
static inline void fuzz_quiet_libxml(void)
{
	xmlInitParser();
	xmlSetGenericErrorFunc(NULL, fuzz_ignore_libxml_message);
	xmlSetStructuredErrorFunc(NULL, fuzz_ignore_libxml_error);
}

/* The seed tenant's public key (the caller owns it; it lives for the run). */
static inline EVP_PKEY *fuzz_seed_tenant_key(void)
{
	BIO *bio = BIO_new_mem_buf(fuzz_seed_tenant_public_key_pem, -1);
	EVP_PKEY *key = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (key == NULL)
		abort();
	return key;
}

#endif
