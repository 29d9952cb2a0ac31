/*
 * cmd_tenant.c: `licensor tenant add|disable|enable|list`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "keyring/json_output.h"
#include "keyring/error.h"

static const struct cli_option_spec tenant_options[] = {
    {"algorithm", true, false},
    {"byok", true, false},
    {"json", false, false},
    {NULL, false, false},
};

static const char tenant_usage[] =
    "tenant add T [--algorithm A | --byok URI [--pkcs11-module PATH]] | disable T | enable T | list [--json]";

static int tenant_list(struct store *store, bool json)
{
	lic_error error = {0};
	char **names = NULL;
	size_t count = 0;
	struct admin_context context;
	cli_admin_context(store, &context);
	if (store_list_tenants(store, &names, &count, &error) != LIC_OK)
		return cli_fail(&error);
	int64_t now = lic_clock_now(context.clock);
	if (json)
		fputs("[", stdout);
	else
		printf("%-32s %-9s %8s %7s\n", "TENANT", "STATUS", "VERSIONS", "SIGNING");
	int exit_status = 0;
	size_t printed = 0;
	for (size_t i = 0; i < count; i++) {
		struct tenant *tenant = NULL;
		if (admin_load_tenant(&context, names[i], &tenant, &error) != LIC_OK) {
			exit_status = cli_fail(&error);
			continue;
		}
		const struct key_version *signing = tenant_signing_version(tenant, now);
		if (json) {
			printf("%s{\"tenant\":", printed++ ? "," : "");
			json_string(stdout, tenant->name);
			printf(",\"disabled\":%s,\"versions\":%zu,\"signing_version\":",
			       tenant->disabled ? "true" : "false", tenant->version_count);
			if (signing)
				printf("%u}", signing->number);
			else
				fputs("null}", stdout);
		} else {
			char signing_text[16];
			snprintf(signing_text, sizeof signing_text, signing ? "%u" : "none",
				 signing ? signing->number : 0);
			printf("%-32s %-9s %8zu %7s\n", tenant->name,
			       tenant->disabled ? "disabled" : "enabled", tenant->version_count,
			       signing_text);
		}
		tenant_free(tenant);
	}
	if (json)
		puts("]");
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
	return exit_status;
}

int command_tenant(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	struct store *store = NULL;
	int exit_status = 0;
	if (cli_parse(argc, argv, "tenant", tenant_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (!args.help && args.positional_count == 0) {
		lic_error_set(&error, LIC_USAGE, "usage: licensor %s", tenant_usage);
		return cli_fail(&error);
	}
	if (args.help) {
		printf("usage: licensor %s\n"
		       "  add T       create tenant T with version 1 active (default rsa-2048)\n"
		       "    --byok URI  version 1 is the RSA key in a PKCS#11 token (RFC 7512 URI, e.g.\n"
		       "              'pkcs11:token=hsm;object=contoso-v1?pin-source=/etc/licensor/pin');\n"
		       "              the key never leaves the token; --pkcs11-module PATH names the module\n"
		       "              (else LICENSOR_PKCS11_MODULE, the URI's module-path, p11-kit's proxy)\n"
		       "  disable T   the tenant unsubscribed: every issuance and key change is refused\n"
		       "              with TENANT_DISABLED; its keys are kept\n"
		       "  enable T    undo disable\n"
		       "  list        every tenant, its status and signing version\n",
		       tenant_usage);
		return 0;
	}
	const char *verb = args.positionals[0];
	bool is_list = strcmp(verb, "list") == 0;
	if (cli_expect_positionals(&args, is_list ? 1 : 2, tenant_usage, &error) != LIC_OK)
		return cli_fail(&error);
	if (!is_list && strcmp(verb, "add") != 0 && strcmp(verb, "disable") != 0 &&
	    strcmp(verb, "enable") != 0) {
		lic_error_set(&error, LIC_USAGE,
			      "unknown tenant command '%.32s' (use add, disable, enable, list)", verb);
		return cli_fail(&error);
	}
	enum key_algorithm algorithm = KEY_ALGORITHM_RSA_2048;
	const char *algorithm_name = cli_option(&args, "algorithm");
	if (algorithm_name != NULL &&
	    (strcmp(verb, "add") != 0 ||
	     key_algorithm_parse(algorithm_name, false, &algorithm, &error) != LIC_OK)) {
		if (strcmp(verb, "add") != 0)
			lic_error_set(&error, LIC_USAGE, "--algorithm is for `tenant add` only");
		return cli_fail(&error);
	}
	const char *byok = cli_option(&args, "byok");
	if (byok != NULL && (strcmp(verb, "add") != 0 || algorithm_name != NULL)) {
		lic_error_set(
		    &error, LIC_USAGE,
		    "--byok is for `tenant add` only, without --algorithm (the token key's size decides)");
		return cli_fail(&error);
	}
	if (cli_flag(&args, "json") && !is_list) {
		lic_error_set(&error, LIC_USAGE, "--json is for `tenant list` only");
		return cli_fail(&error);
	}
	if (cli_open_store(&args, &store, &error) != LIC_OK)
		return cli_fail(&error);
	struct admin_context context;
	cli_admin_context(store, &context);
	const char *name = is_list ? NULL : args.positionals[1];
	if (is_list) {
		exit_status = tenant_list(store, cli_flag(&args, "json"));
	} else if (strcmp(verb, "add") == 0) {
		lic_status added;
		if (byok != NULL) {
			cli_progress("checking the token key for %s…\n", name);
			added = admin_tenant_add_byok(&context, name, byok,
						      cli_option(&args, "pkcs11-module"), &error);
		} else {
			cli_progress("generating %s key for %s…\n", key_algorithm_name(algorithm), name);
			added = admin_tenant_add(&context, name, algorithm, &error);
		}
		if (added != LIC_OK) {
			exit_status = cli_fail(&error);
		} else {
			struct tenant *tenant = NULL;
			if (admin_load_tenant(&context, name, &tenant, &error) == LIC_OK) {
				const struct key_version *first = &tenant->versions[0];
				printf("tenant %s added: version 1 (%s%s, key id %s) is active\n", name,
				       key_algorithm_name(first->algorithm),
				       first->origin == KEY_ORIGIN_BYOK ? ", byok: the key stays in its token"
									: "",
				       first->key_id_hex);
				tenant_free(tenant);
			}
		}
	} else {
		bool disable = strcmp(verb, "disable") == 0;
		if (admin_tenant_set_disabled(&context, name, disable, &error) != LIC_OK)
			exit_status = cli_fail(&error);
		else if (disable)
			printf("tenant %s disabled: issuance and key changes are refused; keys are kept\n",
			       name);
		else
			printf("tenant %s enabled\n", name);
	}
	store_close(store);
	return exit_status;
}
