/*
 * fuzz_rights_account_certificate.c: libFuzzer target for the RAC reader and
 * the XML-DSig check behind it. Proves, for any bytes, that
 * xml_document_parse, rights_account_certificate_read (which re-parses the
 * element's exclusive C14N as its own document and reads the Signature's
 * KeyName), rights_account_certificate_decode_key (the user's SPKI) and
 * rights_account_certificate_verify (the one accepted signature shape, then
 * digest and RSA signature, with the seed tenant's key) neither crash, nor hit
 * undefined behaviour, nor leak; and that an accepted RAC holds an SPKI of 64
 * to 2048 bytes (decoded only on demand, then RSA of 2048 to 8192 bits),
 * NotBefore <= NotAfter and a 32-digit KeyName.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/documents.h"
#include "fuzz_common.h"
#include "keyring/xml_document.h"

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
	xmlDocPtr document = NULL;
	lic_error error = {0};
	if (xml_document_parse((const char *)data, size, DOCUMENT_MAX_BYTES, &document, &error) != LIC_OK)
		return 0;
	struct rights_account_certificate rac;
	lic_status status =
	    rights_account_certificate_read(document, xmlDocGetRootElement(document), &rac, &error);
	if (status != LIC_OK) {
		if (error.status != status || error.message[0] == '\0' || rac.document != NULL ||
		    rac.public_key != NULL || rac.public_key_der != NULL)
			abort();
	} else {
		if (rac.document == NULL || rac.public_key_der == NULL || rac.public_key_der_length < 64 ||
		    rac.public_key_der_length > 2048 || rac.public_key != NULL ||
		    rac.not_after < rac.not_before || strlen(rac.signing_key_id_hex) != 32)
			abort();
		lic_error key_error = {0};
		status = rights_account_certificate_decode_key(&rac, &key_error);
		if (status == LIC_OK) {
			if (rac.public_key == NULL || EVP_PKEY_get_bits(rac.public_key) < 2048 ||
			    EVP_PKEY_get_bits(rac.public_key) > 8192)
				abort();
		} else if (key_error.status != status || key_error.message[0] == '\0' ||
			   rac.public_key != NULL) {
			abort();
		}
		lic_error verify_error = {0};
		status = rights_account_certificate_verify(&rac, tenant_key, &verify_error);
		if (status != LIC_OK && (verify_error.status != status || verify_error.message[0] == '\0'))
			abort();
		rights_account_certificate_cleanup(&rac);
	}
	xmlFreeDoc(document);
	return 0;
}
