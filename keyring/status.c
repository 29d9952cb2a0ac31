/*
 * status.c: the stable code strings and HTTP statuses of lic_status
 * (DESIGN.md §3), and lic_error_set. The table is the single source of truth:
 * the command line, the server and the docs all print from it.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

static const struct {
	const char *code;
	int http;
} status_table[LIC_STATUS_COUNT] = {
    [LIC_OK] = {"OK", 200},
    [LIC_MALFORMED] = {"MALFORMED", 400},
    [LIC_UNSUPPORTED_VERSION] = {"UNSUPPORTED_VERSION", 400},
    [LIC_TOO_LARGE] = {"TOO_LARGE", 413},
    [LIC_UNKNOWN_TENANT] = {"UNKNOWN_TENANT", 404},
    [LIC_TENANT_DISABLED] = {"TENANT_DISABLED", 403},
    [LIC_UNKNOWN_KEY] = {"UNKNOWN_KEY", 404},
    [LIC_KEY_REVOKED] = {"KEY_REVOKED", 403},
    [LIC_KEY_DESTROYED] = {"KEY_DESTROYED", 410},
    [LIC_PL_INTEGRITY] = {"PL_INTEGRITY", 422},
    [LIC_PL_EXPIRED] = {"PL_EXPIRED", 403},
    [LIC_RAC_INVALID] = {"RAC_INVALID", 401},
    [LIC_RAC_EXPIRED] = {"RAC_EXPIRED", 401},
    [LIC_NO_RIGHTS] = {"NO_RIGHTS", 403},
    [LIC_UNAUTHORIZED] = {"UNAUTHORIZED", 401},
    [LIC_OVERLOADED] = {"OVERLOADED", 503},
    [LIC_NOT_EXPORTABLE] = {"NOT_EXPORTABLE", 409},
    [LIC_INTERNAL] = {"INTERNAL", 500},
    [LIC_USAGE] = {"USAGE", 400},
    [LIC_IO] = {"IO", 500},
    [LIC_STATE] = {"STATE", 409},
};

const char *lic_status_code(lic_status status)
{
	if ((unsigned)status >= LIC_STATUS_COUNT)
		return "INTERNAL";
	return status_table[status].code;
}

int lic_status_http(lic_status status)
{
	if ((unsigned)status >= LIC_STATUS_COUNT)
		return 500;
	return status_table[status].http;
}

/* Length of the valid UTF-8 sequence at text (1 to 4), or 0 if it is not one. */
static size_t utf8_sequence(const unsigned char *text)
{
	unsigned char lead = text[0];
	size_t length;
	uint32_t minimum;
	if (lead < 0x80)
		return 1;
	if (lead >= 0xC2 && lead <= 0xDF) {
		length = 2;
		minimum = 0x80;
	} else if (lead >= 0xE0 && lead <= 0xEF) {
		length = 3;
		minimum = 0x800;
	} else if (lead >= 0xF0 && lead <= 0xF4) {
		length = 4;
		minimum = 0x10000;
	} else {
		return 0;
	}
	uint32_t code = lead & (0x7F >> length);
	for (size_t i = 1; i < length; i++) {
		if ((text[i] & 0xC0) != 0x80)
			return 0; /* also stops at the NUL of a cut sequence */
		code = code << 6 | (text[i] & 0x3F);
	}
	if (code < minimum || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF))
		return 0;
	return length;
}

/* A sentence may quote names from untrusted input, cut to a byte length: it
 * leaves here as valid UTF-8 without control characters, so it can go into an
 * XML response or a terminal as it is. Anything else becomes '?'. */
static void sanitize_sentence(char *message)
{
	unsigned char *cursor = (unsigned char *)message;
	while (*cursor != '\0') {
		size_t length = utf8_sequence(cursor);
		if (length == 0 || (length == 1 && (*cursor < 0x20 || *cursor == 0x7F))) {
			*cursor++ = '?';
			continue;
		}
		cursor += length;
	}
}

lic_status lic_error_set(lic_error *error, lic_status status, const char *format, ...)
{
	if (error != NULL) {
		va_list args;
		va_start(args, format);
		error->status = status;
		vsnprintf(error->message, sizeof error->message, format, args);
		va_end(args);
		sanitize_sentence(error->message);
	}
	return status;
}
