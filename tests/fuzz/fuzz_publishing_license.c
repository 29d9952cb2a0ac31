/*
 * fuzz_publishing_license.c: libFuzzer target for the publishing-license
 * reader. Proves, for any bytes, that xml_document_parse (with the request
 * cap DOCUMENT_MAX_BYTES) followed by publishing_license_read on the root
 * element neither crashes, nor reads out of bounds, nor hits undefined
 * behaviour, nor leaks; that a refusal always carries a code and a sentence;
 * and that an accepted PL holds what documents.h promises (a NUL-terminated
 * tenant, content id and lowercase key id, enabling bits of 128 to 1024 bytes,
 * a validity of at most LICENSE_VALIDITY_DAYS_MAX days).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/documents.h"
#include "fuzz_common.h"
#include "keyring/xml_document.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet_libxml();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	xmlDocPtr document = NULL;
	lic_error error = {0};
	if (xml_document_parse((const char *)data, size, DOCUMENT_MAX_BYTES, &document, &error) != LIC_OK) {
		if (error.status == LIC_OK || error.message[0] == '\0')
			abort();
		return 0;
	}
	struct publishing_license license;
	lic_status status =
	    publishing_license_read(document, xmlDocGetRootElement(document), &license, &error);
	if (status != LIC_OK) {
		if (error.status != status || error.message[0] == '\0')
			abort();
	} else {
		if (strnlen(license.tenant, sizeof license.tenant) == sizeof license.tenant ||
		    strnlen(license.content_id, sizeof license.content_id) == sizeof license.content_id ||
		    strlen(license.key_id_hex) != 32 || license.enabling_bits == NULL ||
		    license.enabling_bits_length < 128 || license.enabling_bits_length > 1024 ||
		    license.license_validity_days > LICENSE_VALIDITY_DAYS_MAX)
			abort();
		for (size_t i = 0; i < 32; i++)
			if (!((license.key_id_hex[i] >= '0' && license.key_id_hex[i] <= '9') ||
			      (license.key_id_hex[i] >= 'a' && license.key_id_hex[i] <= 'f')))
				abort();
		publishing_license_cleanup(&license);
	}
	xmlFreeDoc(document);
	return 0;
}
