/*
 * json_output.h: the JSON the keyring is shown as, written to a FILE (stdout
 * for the command line, open_memstream for the server), so `keys list --json`
 * and `GET /v1/tenants/{t}/keys` print the same objects.
 */
#ifndef LICENSOR_KEYRING_JSON_OUTPUT_H
#define LICENSOR_KEYRING_JSON_OUTPUT_H

#include <stdint.h>
#include <stdio.h>

#include "keyring/tenant.h"

/* A JSON string: quotes, backslashes and control characters escaped. */
void json_string(FILE *out, const char *text);
/* A UTC time string, or null for 0 (never happened). */
void json_time_or_null(FILE *out, int64_t seconds);
/* The tenant's versions as a JSON array of objects (DESIGN.md §7b: version,
 * key_id, algorithm, origin, state, compromised, signing and the times). */
void json_tenant_versions(FILE *out, const struct tenant *tenant, int64_t now);

#endif
