/*
 * fuzz_use_license.c: libFuzzer target for the client-side use-license
 * reader. Proves, for any bytes, that use_license_read (the hardened parse
 * with DOCUMENT_MAX_BYTES, then the strict element checks) and, on what it
 * accepts, xml_signature_key_name and xml_signature_verify with the seed
 * tenant's key, neither crash, nor hit undefined behaviour, nor leak; and
 * that an accepted UL holds NUL-terminated fields and enabling bits of 128 to
 * 1024 bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/documents.h"
#include "core/xml_signature.h"
#include "fuzz_common.h"

static EVP_PKEY *tenant_key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet_libxml();
	tenant_key = fuzz_seed_tenant_key();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct use_license license;
	lic_error error = {0};
	lic_status status = use_license_read((const char *)data, size, &license, &error);
	if (status != LIC_OK) {
		if (error.status != status || error.message[0] == '\0' || license.document != NULL ||
		    license.enabling_bits != NULL)
			abort();
		return 0;
	}
	if (license.document == NULL || license.enabling_bits == NULL || license.enabling_bits_length < 128 ||
	    license.enabling_bits_length > 1024 ||
	    strnlen(license.license_id, sizeof license.license_id) == sizeof license.license_id ||
	    strnlen(license.rights, sizeof license.rights) == sizeof license.rights)
		abort();
	char key_name[33];
	lic_error signature_error = {0};
	if (xml_signature_key_name(license.document, key_name, &signature_error) == LIC_OK) {
		if (strlen(key_name) != 32)
			abort();
		status = xml_signature_verify(license.document, tenant_key, &signature_error);
		if (status != LIC_OK && signature_error.message[0] == '\0')
			abort();
	}
	use_license_cleanup(&license);
	return 0;
}
