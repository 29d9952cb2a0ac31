/*
 * cmd_keys.c: the read-only views of a keyring: `licensor keys list`,
 * `licensor keys pubkey` and `licensor rollout status`. States shown are the
 * effective states at the clock: a rollout that completed by the clock shows
 * its old version as retained even before a writer records it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "keyring/json_output.h"
#include "keyring/error.h"
#include "keyring/utc_time.h"

static const struct cli_option_spec keys_options[] = {
    {"json", false, false},
    {"version", true, false},
    {NULL, false, false},
};

static const char keys_usage[] = "keys list T [--json] | keys pubkey T --version N";

static int keys_list(struct admin_context *context, const char *name, bool json)
{
	lic_error error = {0};
	struct tenant *tenant = NULL;
	if (admin_load_tenant(context, name, &tenant, &error) != LIC_OK)
		return cli_fail(&error);
	int64_t now = lic_clock_now(context->clock);
	const struct key_version *signing = tenant_signing_version(tenant, now);
	if (json) {
		json_tenant_versions(stdout, tenant, now);
		putchar('\n');
	} else {
		printf("tenant %s%s\n", tenant->name,
		       tenant->disabled ? " (DISABLED: issuance refused)" : "");
		printf("%-7s %-32s %-9s %-7s %-9s %-11s %s\n", "VERSION", "KEY ID", "ALGORITHM", "ORIGIN",
		       "STATE", "FLAGS", "CREATED");
		for (size_t i = 0; i < tenant->version_count; i++) {
			const struct key_version *version = &tenant->versions[i];
			char created[UTC_TIME_LENGTH], flags[32];
			utc_time_format(version->created_at, created);
			snprintf(flags, sizeof flags, "%s%s", version->compromised ? "COMPROMISED" : "",
				 version == signing ? (version->compromised ? ",signing" : "signing") : "");
			printf("%-7u %-32s %-9s %-7s %-9s %-11s %s\n", version->number, version->key_id_hex,
			       key_algorithm_name(version->algorithm),
			       version->origin == KEY_ORIGIN_BYOK ? "byok" : "managed",
			       lic_key_state_name(tenant_effective_state(tenant, version, now)),
			       flags[0] ? flags : "-", created);
		}
		if (signing == NULL)
			printf("no active version: license issuance and publishing are stopped for %s\n",
			       tenant->name);
	}
	tenant_free(tenant);
	return 0;
}

static int keys_pubkey(struct admin_context *context, const char *name, uint32_t number)
{
	lic_error error = {0};
	struct tenant *tenant = NULL;
	char *pem = NULL;
	int exit_status = 0;
	if (admin_load_tenant(context, name, &tenant, &error) != LIC_OK)
		return cli_fail(&error);
	const struct key_version *version = tenant_version(tenant, number);
	if (version == NULL) {
		lic_error_set(&error, LIC_UNKNOWN_KEY, "tenant %s has no version %u (it has %zu)", name,
			      number, tenant->version_count);
		exit_status = cli_fail(&error);
	} else if (key_material_public_pem(version->public_key_der, version->public_key_length, &pem,
					   &error) != LIC_OK) {
		exit_status = cli_fail(&error);
	} else {
		fputs(pem, stdout);
	}
	free(pem);
	tenant_free(tenant);
	return exit_status;
}

int command_keys(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	struct store *store = NULL;
	if (cli_parse(argc, argv, "keys", keys_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (!args.help && args.positional_count == 0) {
		lic_error_set(&error, LIC_USAGE, "usage: licensor %s", keys_usage);
		return cli_fail(&error);
	}
	if (args.help) {
		printf("usage: licensor %s\n"
		       "  list T      every version of T: key id, algorithm, origin, state, flags\n"
		       "  pubkey T    the public key (PEM SubjectPublicKeyInfo) of version N\n",
		       keys_usage);
		return 0;
	}
	const char *verb = args.positionals[0];
	bool list = strcmp(verb, "list") == 0, pubkey = strcmp(verb, "pubkey") == 0;
	uint32_t number = 0;
	if (!list && !pubkey) {
		lic_error_set(&error, LIC_USAGE, "unknown keys command '%.32s' (use list or pubkey)", verb);
		return cli_fail(&error);
	}
	if (cli_expect_positionals(&args, 2, keys_usage, &error) != LIC_OK ||
	    (pubkey && cli_version_number(&args, &number, &error) != LIC_OK))
		return cli_fail(&error);
	if (cli_open_store(&args, &store, &error) != LIC_OK)
		return cli_fail(&error);
	struct admin_context context;
	cli_admin_context(store, &context);
	int exit_status = list ? keys_list(&context, args.positionals[1], cli_flag(&args, "json"))
			       : keys_pubkey(&context, args.positionals[1], number);
	store_close(store);
	return exit_status;
}

static const struct cli_option_spec rollout_options[] = {
    {"json", false, false},
    {NULL, false, false},
};

static const char *const outcome_names[] = {"none", "running", "completed", "aborted", "superseded"};

int command_rollout(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	struct store *store = NULL;
	struct tenant *tenant = NULL;
	if (cli_parse(argc, argv, "rollout", rollout_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (args.help) {
		puts("usage: licensor rollout status T [--json]\n"
		     "The tenant's latest rollout: from and to versions, start, duration, the fraction of\n"
		     "publishing clients on the new version now, and whether it is complete.");
		return 0;
	}
	if (cli_expect_positionals(&args, 2, "rollout status T [--json]", &error) != LIC_OK)
		return cli_fail(&error);
	if (strcmp(args.positionals[0], "status") != 0) {
		lic_error_set(&error, LIC_USAGE, "unknown rollout command '%.32s' (use status)",
			      args.positionals[0]);
		return cli_fail(&error);
	}
	if (cli_open_store(&args, &store, &error) != LIC_OK)
		return cli_fail(&error);
	struct admin_context context;
	cli_admin_context(store, &context);
	int exit_status = 0;
	if (store_load_tenant(store, args.positionals[1], &tenant, &error) != LIC_OK) {
		exit_status = cli_fail(&error);
		goto out;
	}
	int64_t now = lic_clock_now(context.clock);
	const struct tenant_rollout *rollout = &tenant->rollout;
	bool complete = rollout_complete(rollout, now);
	double fraction = rollout_fraction(rollout, now);
	const char *outcome =
	    rollout->outcome == ROLLOUT_RUNNING && complete ? "completed" : outcome_names[rollout->outcome];
	char started[UTC_TIME_LENGTH], duration[32];
	if (cli_flag(&args, "json")) {
		if (rollout->outcome == ROLLOUT_NONE) {
			puts("{}");
			goto out;
		}
		printf("{\"tenant\":");
		json_string(stdout, tenant->name);
		fputs(",\"from_version\":", stdout);
		if (rollout->from_version)
			printf("%u", rollout->from_version);
		else
			fputs("null", stdout);
		printf(",\"to_version\":%u,\"started_at\":", rollout->to_version);
		json_time_or_null(stdout, rollout->started_at);
		printf(",\"duration_s\":%lld,\"fraction\":%.6f,\"cohort_threshold\":%u,\"complete\":%s,"
		       "\"outcome\":\"%s\"}\n",
		       (long long)rollout->duration_s, fraction, rollout_threshold(rollout, now),
		       complete ? "true" : "false", outcome);
		goto out;
	}
	if (rollout->outcome == ROLLOUT_NONE) {
		printf("tenant %s has never been re-keyed: version 1 is its only version\n", tenant->name);
		goto out;
	}
	utc_time_format(rollout->started_at, started);
	duration_format(rollout->duration_s, duration, sizeof duration);
	printf("tenant %s: rollout from version %s%u to version %u\n", tenant->name,
	       rollout->from_version ? "" : "(none) ", rollout->from_version, rollout->to_version);
	printf("  started   %s, duration %s\n", started, duration);
	printf("  progress  %.1f%% of publishing clients on version %u\n", fraction * 100,
	       rollout->to_version);
	printf("  outcome   %s\n", outcome);
out:
	tenant_free(tenant);
	store_close(store);
	return exit_status;
}
