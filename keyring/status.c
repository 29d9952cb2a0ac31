/*
 * status.c: the stable code strings and HTTP statuses of lic_status
 * (DESIGN.md §3), and lic_error_set. The table is the single source of truth:
 * the command line, the server and the docs all print from it.
 */
#include <stdarg.h>
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

lic_status lic_error_set(lic_error *error, lic_status status, const char *format, ...)
{
	if (error != NULL) {
		va_list args;
		va_start(args, format);
		error->status = status;
		vsnprintf(error->message, sizeof error->message, format, args);
		va_end(args);
	}
	return status;
}
