/*
 * fuzz_tpd.c: libFuzzer target for the TPD readers (keyring/tpd.h). Proves,
 * for any bytes, that tpd_unwrap (TPD-<GUID>.xml) and tpd_exported_open
 * (ExportedTPD-<GUID>.xml) neither crash, nor hit undefined behaviour, nor
 * leak, and that what they accept has 1 to 10,000 keys with rising numbers,
 * each holding a public and a private key.
 *
 * The seeds in corpus/fuzz_tpd were made for the throw-away recipient key and
 * password of tpd_fixture.h (a test fixture, used nowhere else), so the OAEP
 * unwrap, the scrypt derivation (N = 2^10) and the AES-GCM checks run on the
 * seeds and on inputs close to them. An input asking for any other scrypt N is
 * skipped on the ExportedTPD path: the bound accepts up to 512 MiB, too slow
 * per input.
 *
 * tests/test_tpd.c (test_fuzz_seeds, part of `ctest -R tpd`) fails when the
 * seeds no longer open with that key and password, e.g. after a change of
 * the AAD or of the formats. To make them again with the current code (a
 * tenant "contoso" with two managed RSA versions, v1 retained and marked
 * compromised, v2 active; scrypt N = 1024, r = 8, p = 1):
 *
 *   cmake --build build --target test_tpd
 *   LICENSOR_WRITE_TPD_SEEDS=tests/fuzz/corpus/fuzz_tpd build/tests/test_tpd
 *
 * which overwrites TPD-<GUID>.xml and ExportedTPD-<GUID>.xml there, then
 * checks them like the plain run does. Commit both files.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "keyring/secure_memory.h"
#include "keyring/tpd.h"
#include "tpd_fixture.h"

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
