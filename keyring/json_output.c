/*
 * json_output.c: see json_output.h.
 */
#include "keyring/json_output.h"

#include "keyring/key_material.h"
#include "keyring/utc_time.h"

void json_string(FILE *out, const char *text)
{
	fputc('"', out);
	for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
		if (*c == '"' || *c == '\\')
			fprintf(out, "\\%c", *c);
		else if (*c < 0x20 || *c == 0x7f)
			fprintf(out, "\\u%04x", *c);
		else
			fputc(*c, out);
	}
	fputc('"', out);
}

void json_time_or_null(FILE *out, int64_t seconds)
{
	if (seconds == 0) {
		fputs("null", out);
		return;
	}

	char text[UTC_TIME_LENGTH];
	utc_time_format(seconds, text);
	json_string(out, text);
}

static void json_version(FILE *out, const struct tenant *tenant, const struct key_version *version,
			 int64_t now, const struct key_version *signing)
{
	fprintf(out,
		"{\"version\":%u,\"key_id\":\"%s\",\"algorithm\":\"%s\",\"origin\":\"%s\",\"state\":\"%s\","
		"\"compromised\":%s,\"signing\":%s,\"created_at\":",
		version->number, version->key_id_hex, key_algorithm_name(version->algorithm),
		version->origin == KEY_ORIGIN_BYOK ? "byok" : "managed",
		lic_key_state_name(tenant_effective_state(tenant, version, now)),
		version->compromised ? "true" : "false", version == signing ? "true" : "false");
	json_time_or_null(out, version->created_at);
	const struct {
		const char *name;
		int64_t value;
	} times[] = {
	    {"activated_at", version->activated_at}, {"retained_at", version->retained_at},
	    {"revoked_at", version->revoked_at},     {"reinstated_at", version->reinstated_at},
	    {"destroyed_at", version->destroyed_at}, {"compromised_at", version->compromised_at},
	};
	for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
		fprintf(out, ",\"%s\":", times[i].name);
		json_time_or_null(out, times[i].value);
	}
	fputc('}', out);
}

void json_tenant_versions(FILE *out, const struct tenant *tenant, int64_t now)
{
	const struct key_version *signing = tenant_signing_version(tenant, now);
	fputc('[', out);
	for (size_t i = 0; i < tenant->version_count; i++) {
		if (i)
			fputc(',', out);
		json_version(out, tenant, &tenant->versions[i], now, signing);
	}
	fputc(']', out);
}
