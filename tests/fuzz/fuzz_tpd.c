/*
 * fuzz_tpd.c: libFuzzer target for the TPD readers (keyring/tpd.h). Proves,
 * for any bytes, that tpd_unwrap (TPD-<GUID>.xml) and tpd_exported_open
 * (ExportedTPD-<GUID>.xml) neither crash, nor hit undefined behaviour, nor
 * leak, and that what they accept has 1 to 10,000 keys with rising numbers,
 * each holding a public and a private key.
 *
 * The seeds in corpus/fuzz_tpd were made for the throw-away recipient key and
 * password below (a test fixture, used nowhere else), so the OAEP unwrap, the
 * scrypt derivation (N = 2^10) and the AES-GCM checks run on the seeds and on
 * inputs close to them. An input asking for any other scrypt N is skipped on
 * the ExportedTPD path: the bound accepts up to 512 MiB, too slow per input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "keyring/secure_memory.h"
#include "keyring/tpd.h"

static const char fuzz_recipient_key[] = "Guid: 10b94c15-7275-4c93-889f-a01de841477e\n"
					 "-----BEGIN PRIVATE KEY-----\n"
					 "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCdtqr3MN3iLnFp\n"
					 "Onlioqtc+JaAogIAidmbbjsA5mKU7ZYNHJuYRd0UUSnI5Oigaizfzza0p3LJzqso\n"
					 "mOKabMoX27i/VvWXh6h8ABZMJevWNDCqTzfyt/Sq7Zx9djBxcBqErka7f6X36JKj\n"
					 "gJIY1mRVX7X3lTQLomGtzaeZTMQ/HJFy+Ps/rBwGcwewphktrro51v+jlUeQNvYv\n"
					 "0chtVchjnXGQXWe07oLDvM08Kj4JHGfCDjy0sgkriGYdmIrxN3FpRoTniFn2P8t0\n"
					 "gD7hQcOmVfvi6ab5RnOinUqVMG0SJ6mihdc84wPOId1uChCaxjhdO+OHazt3+A5y\n"
					 "4ETuvjotAgMBAAECggEAL+YKhoiQ2uDAEPVxaEN/R/03uFl7wi4bqNkRknRl/FUr\n"
					 "/U9y8gxF2KXNyvW6sP2OI2sLclJoymG6GdpU+BGSTyysL3B5pkvNH9vm6bmaprOz\n"
					 "FAZ7N3wnEsKXhIMgs1MYurMzSD68aU55Oq8Rr/ls/4DSAx+NbvsiL2cGP8jQ0Vmh\n"
					 "O16cBJoEZ4JSv50uddXkF9RLqXjssdDRxGhR4M9CT/WbVIKbOIobm1t/Yc92Lrjb\n"
					 "UVnCZ6Rj/cdy3CKZXn5au4PZyeI1vxDyrO9ZdzQ/A1VDScdcj0sPEjWKadCLB/cs\n"
					 "or1l/5LMgEhYgzmyDhrgBPJTqG+LfasvK2K5lk3JAQKBgQDcwSfLQIeCxOX9BNyL\n"
					 "PtWU18eDSJaSeY5IY8sL0bsDgMnmC8A681W9ujBqVMQAc0xXiQ1I94CaK+fKFsFh\n"
					 "CzPROSHPFwy7awcH9CyqLdZ2GvIGi0USCmDfe8dhUZDeE1MhWqnrsieIt2S7orpl\n"
					 "Kkgsm20zEriZMxzZP2Jz29UzawKBgQC25NrDtgK7zwvhfRMLoWqCol06iDWSyiNI\n"
					 "RsB7diL136M+1biMTeAf7No95Y/ppau3MOmmWEUKInbTixeBI3ID3kIR1KZtjMgs\n"
					 "5FA0uC6D+xQHDWwdSO8Q5OyXXnDITQBOU6prK1bmrRt5uPe6+p2OOpMbHwyDOxkw\n"
					 "y4tVsNxGxwKBgAQJC98tSMzdKI8dfaKV/XWBFEaUFxyKWE1+dYG7zb1cp1QrNtJd\n"
					 "DF4xfx0Se5q+gNDA0ptY2uL2loAdNl+9wq66aqHMfBEY/cHpdr+NovP5vh7cgOC5\n"
					 "i9fJ/XUL9qf4lnZvn9eNJCfdolvDt8CNq1AVb0OVvgYe5xIZlIUlqZoNAoGAbPUM\n"
					 "CxosqLxhRJVhukUQkgCub8djuy5nNJDJ7QNlMntn4nAqgJOIWRyeq89OHBDRqtId\n"
					 "8DaX8sCzb7VmbE20h+9qBvtbptn/Cxd9XNr5AzGaLdVmOlAP9E2dUVQ29m1BKGiZ\n"
					 "lzz7iXNJcguqsh7JrEjjCH5H0wprKHGqcYNqx1MCgYARQsTvggZ2No/CvC3teXfQ\n"
					 "Kvi5L9/AhmTl8Vy75DRjGvqIRkyz7O+RtDTpThAs7X0OjV0cn8WMx9CHL4X2xqPC\n"
					 "qA1kBmEzCjICpKpT1WV4l9YwcnE50feMzvy6fk87sD8wUVe6012Xu6Gta7ZSr/EX\n"
					 "KuklUgsDTB7381dBSqvKlw==\n"
					 "-----END PRIVATE KEY-----\n";

static const char fuzz_password[] = "uHE9hNGv06GgzbMm6ely963BSBCHod8V";

static EVP_PKEY *recipient;

/* OpenSSL keeps its per-thread random generators (set up on the first RSA
 * blinding or nonce) in thread-local storage, which LeakSanitizer does not
 * scan mid-run: they are freed at exit, not leaked per input. The
 * suppression needs whole stacks through libcrypto (built without frame
 * pointers), hence the slow unwinder on malloc. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "fast_unwind_on_malloc=0";
}

const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:RAND_get0_primary\nleak:RAND_get0_private\nleak:RAND_get0_public\n";
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet_libxml();
	secure_memory_init();
	char guid[TPD_GUID_LENGTH];
	if (tpd_private_key_parse(fuzz_recipient_key, strlen(fuzz_recipient_key), guid, &recipient, NULL) !=
	    LIC_OK)
		abort();
	return 0;
}

static void check_contents(const struct tpd_contents *contents)
{
	if (contents->key_count == 0 || contents->key_count > TPD_KEYS_MAX || contents->tenant == NULL)
		abort();
	for (size_t i = 0; i < contents->key_count; i++) {
		const struct tpd_key *key = &contents->keys[i];
		if (key->public_key_der == NULL || key->private_key_der == NULL ||
		    (i > 0 && key->number <= contents->keys[i - 1].number))
			abort();
	}
}

/* True when the document names scrypt N="1024" (or no N at all). */
static bool cheap_scrypt(const uint8_t *data, size_t size)
{
	static const char marker[] = " N=\"";
	for (size_t i = 0; i + sizeof marker - 1 <= size; i++)
		if (memcmp(data + i, marker, sizeof marker - 1) == 0)
			return size - i - (sizeof marker - 1) >= 5 &&
			       memcmp(data + i + sizeof marker - 1, "1024\"", 5) == 0;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tpd_contents *contents = NULL;
	lic_error error = {0};
	lic_status status = tpd_unwrap((const char *)data, size, recipient, NULL, &contents, &error);
	if (status != LIC_OK) {
		if (error.status != status || error.message[0] == '\0' || contents != NULL)
			abort();
	} else {
		check_contents(contents);
		tpd_contents_free(contents);
		contents = NULL;
	}
	if (!cheap_scrypt(data, size))
		return 0;
	lic_error exported_error = {0};
	status = tpd_exported_open((const char *)data, size, fuzz_password, strlen(fuzz_password), NULL,
				   &contents, &exported_error);
	if (status != LIC_OK) {
		if (exported_error.status != status || exported_error.message[0] == '\0' || contents != NULL)
			abort();
		return 0;
	}
	check_contents(contents);
	tpd_contents_free(contents);
	return 0;
}
