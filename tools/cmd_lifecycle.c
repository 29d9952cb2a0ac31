/*
 * cmd_lifecycle.c: the commands that change a keyring: `licensor rekey`,
 * `revoke`, `reinstate`, `destroy` and `activate`. Each is one admin_*
 * transaction; on refusal nothing is written.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "keyring/error.h"
#include "keyring/utc_time.h"

/* Default rollout when a rekey names neither --rollout nor --immediate. */
#define DEFAULT_ROLLOUT_SECONDS (7 * 86400)

static const struct cli_option_spec rekey_options[] = {
    {"algorithm", true, false}, {"rollout", true, false},  {"immediate", false, false},
    {"reason", true, false},    {"pending", false, false}, {"byok", true, false},
    {NULL, false, false},
};

static const char rekey_usage[] =
    "rekey T [--algorithm A | --byok URI [--pkcs11-module PATH]] [--rollout DURATION | --immediate]\n"
    "          [--reason routine|compromised] [--pending]";

int command_rekey(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	struct store *store = NULL;
	struct rekey_request request = {.algorithm = KEY_ALGORITHM_RSA_2048,
					.rollout_seconds = DEFAULT_ROLLOUT_SECONDS};
	if (cli_parse(argc, argv, "rekey", rekey_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (args.help) {
		printf("usage: licensor %s\n"
		       "Creates version N+1 and rolls new content over to it cohort by cohort.\n"
		       "  --rollout D     phase the rollout over D (default 7d): a publishing client moves\n"
		       "                  when bucket(tenant, client) < 10000 x elapsed / D\n"
		       "  --immediate     all new content moves now (completes an unfinished rollout first)\n"
		       "  --reason compromised  breach response: also flags the old version compromised;\n"
		       "                  needs --immediate (the default when this reason is given)\n"
		       "  --algorithm A   rsa-2048 (default), rsa-3072 or rsa-4096\n"
		       "  --pending       create the version pending; `activate` switches to it later\n"
		       "  --byok URI      the new version is the RSA key in a PKCS#11 token (RFC 7512 URI);\n"
		       "                  it never leaves the token; --pkcs11-module PATH names the module\n"
		       "Old content keeps opening: retained versions still unwrap it.\n",
		       rekey_usage);
		return 0;
	}
	if (cli_expect_positionals(&args, 1, rekey_usage, &error) != LIC_OK)
		return cli_fail(&error);
	const char *name = args.positionals[0];
	const char *algorithm = cli_option(&args, "algorithm");
	if (algorithm != NULL && key_algorithm_parse(algorithm, false, &request.algorithm, &error) != LIC_OK)
		return cli_fail(&error);
	request.byok_uri = cli_option(&args, "byok");
	request.pkcs11_module = cli_option(&args, "pkcs11-module");
	if (request.byok_uri != NULL && algorithm != NULL) {
		lic_error_set(&error, LIC_USAGE,
			      "give --algorithm or --byok, not both (the token key's size decides)");
		return cli_fail(&error);
	}
	const char *reason = cli_option(&args, "reason");
	if (reason != NULL) {
		if (strcmp(reason, "compromised") == 0) {
			request.compromised = true;
		} else if (strcmp(reason, "routine") != 0) {
			lic_error_set(&error, LIC_USAGE, "--reason must be routine or compromised");
			return cli_fail(&error);
		}
	}
	const char *rollout = cli_option(&args, "rollout");
	request.immediate = cli_flag(&args, "immediate");
	request.pending = cli_flag(&args, "pending");
	if (rollout != NULL && request.immediate) {
		lic_error_set(&error, LIC_USAGE, "give --rollout or --immediate, not both");
		return cli_fail(&error);
	}
	if (request.pending && (rollout != NULL || request.immediate || request.compromised)) {
		lic_error_set(&error, LIC_USAGE,
			      "--pending creates a version without a rollout: drop --rollout, "
			      "--immediate and --reason compromised");
		return cli_fail(&error);
	}
	if (request.compromised && rollout == NULL)
		request.immediate = true;
	if (rollout != NULL && duration_parse(rollout, &request.rollout_seconds, &error) != LIC_OK)
		return cli_fail(&error);
	if (request.immediate)
		request.rollout_seconds = 0;
	if (cli_open_store(&args, &store, &error) != LIC_OK)
		return cli_fail(&error);
	struct admin_context context;
	cli_admin_context(store, &context);
	uint32_t number = 0;
	int exit_status = 0;
	if (request.byok_uri != NULL)
		cli_progress("checking the token key for %s…\n", name);
	else
		cli_progress("generating %s key for %s…\n", key_algorithm_name(request.algorithm), name);
	if (admin_rekey(&context, name, &request, &number, &error) != LIC_OK) {
		exit_status = cli_fail(&error);
	} else {
		struct tenant *tenant = NULL;
		if (admin_load_tenant(&context, name, &tenant, &error) == LIC_OK) {
			const struct key_version *version = tenant_version(tenant, number);
			const struct tenant_rollout *state = &tenant->rollout;
			printf("tenant %s: version %u created (%s%s, key id %s)\n", name, number,
			       key_algorithm_name(version->algorithm),
			       version->origin == KEY_ORIGIN_BYOK ? ", byok: the key stays in its token" : "",
			       version->key_id_hex);
			if (request.pending) {
				printf(
				    "  it is pending: `licensor activate %s --version %u` makes it active\n",
				    name, number);
			} else if (state->from_version == 0) {
				printf("  it is active now (the tenant had no active version)\n");
			} else if (state->duration_s == 0) {
				printf("  all new content uses it now; version %u is retained%s\n",
				       state->from_version,
				       request.compromised ? " and flagged COMPROMISED" : "");
			} else {
				char duration[32];
				duration_format(state->duration_s, duration, sizeof duration);
				printf("  rolling out over %s from version %u; see `licensor rollout status "
				       "%s`\n",
				       duration, state->from_version, name);
			}
			tenant_free(tenant);
		}
	}
	store_close(store);
	return exit_status;
}

static const struct cli_option_spec lifecycle_options[] = {
    {"version", true, false},
    {"yes", false, false},
    {NULL, false, false},
};

int command_lifecycle(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	struct store *store = NULL;
	const char *verb = argv[0];
	char usage[96];
	snprintf(usage, sizeof usage, "%s T --version N%s", verb,
		 strcmp(verb, "destroy") == 0  ? " --yes"
		 : strcmp(verb, "revoke") == 0 ? " [--yes]"
					       : "");
	if (cli_parse(argc, argv, verb, lifecycle_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (args.help) {
		printf("usage: licensor %s\n", usage);
		if (strcmp(verb, "revoke") == 0)
			puts("Removes the service's access to version N: its content gets KEY_REVOKED until "
			     "reinstated.\n"
			     "Revoking the only active version stops all issuance for the tenant: --yes is "
			     "required.");
		else if (strcmp(verb, "reinstate") == 0)
			puts(
			    "Gives a revoked version back the state it had (never a second active version).");
		else if (strcmp(verb, "destroy") == 0)
			puts("Erases version N's private key for ever (its content never opens again). Not "
			     "for the\n"
			     "active version; --yes is required.");
		else
			puts("Makes version N the tenant's one active version now (from pending or retained, "
			     "or the\n"
			     "other side of a rollout); the previously active version becomes retained.");
		return 0;
	}
	uint32_t number = 0;
	if (cli_expect_positionals(&args, 1, usage, &error) != LIC_OK ||
	    cli_version_number(&args, &number, &error) != LIC_OK)
		return cli_fail(&error);
	if (cli_flag(&args, "yes") && strcmp(verb, "revoke") != 0 && strcmp(verb, "destroy") != 0) {
		lic_error_set(&error, LIC_USAGE, "%s takes no --yes", verb);
		return cli_fail(&error);
	}
	const char *name = args.positionals[0];
	if (cli_open_store(&args, &store, &error) != LIC_OK)
		return cli_fail(&error);
	struct admin_context context;
	cli_admin_context(store, &context);
	bool yes = cli_flag(&args, "yes");
	lic_status status;
	if (strcmp(verb, "revoke") == 0)
		status = admin_revoke(&context, name, number, yes, &error);
	else if (strcmp(verb, "reinstate") == 0)
		status = admin_reinstate(&context, name, number, &error);
	else if (strcmp(verb, "destroy") == 0)
		status = admin_destroy(&context, name, number, yes, &error);
	else
		status = admin_activate(&context, name, number, &error);
	int exit_status = 0;
	if (status != LIC_OK) {
		exit_status = cli_fail(&error);
	} else {
		struct tenant *tenant = NULL;
		if (admin_load_tenant(&context, name, &tenant, &error) == LIC_OK) {
			const struct key_version *version = tenant_version(tenant, number);
			int64_t now = lic_clock_now(context.clock);
			printf("tenant %s: version %u is now %s\n", name, number,
			       lic_key_state_name(tenant_effective_state(tenant, version, now)));
			if (strcmp(verb, "destroy") == 0 && version->origin == KEY_ORIGIN_BYOK)
				printf("  it is a BYOK version: licensor no longer uses it, but the key "
				       "itself is "
				       "still in its token; delete it there to erase it\n");
			if (tenant_signing_version(tenant, now) == NULL)
				printf("  WARNING: %s has no active version: license issuance and publishing "
				       "are "
				       "stopped\n",
				       name);
			tenant_free(tenant);
		}
	}
	store_close(store);
	return exit_status;
}
