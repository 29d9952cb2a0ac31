/*
 * cmd_superuser.c: `licensor superuser add|remove|list T [EMAIL]`: the
 * tenant's super-users, who get every right (OWNER) on every PL of the tenant
 * (DESIGN.md §2), as an RMS super-user group does for recovery and
 * compliance. Addresses are normalized (lowercase) as licenses compare them.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "keyring/json_output.h"
#include "core/policy.h"
#include "keyring/error.h"

static const struct cli_option_spec superuser_options[] = {{"json", false, false}, {NULL, false, false}};

static const char superuser_usage[] = "superuser add T EMAIL | remove T EMAIL | list T [--json]";

int command_superuser(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	struct store *store = NULL;
	struct tenant *tenant = NULL;
	int exit_status = 0;
	if (cli_parse(argc, argv, "superuser", superuser_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (args.help) {
		printf("usage: licensor %s\n"
		       "Super-users get every right on every publishing license of the tenant.\n",
		       superuser_usage);
		return 0;
	}
	const char *verb = args.positionals[0];
	bool list = args.positional_count > 0 && strcmp(verb, "list") == 0;
	bool add = args.positional_count > 0 && strcmp(verb, "add") == 0;
	bool remove = args.positional_count > 0 && strcmp(verb, "remove") == 0;
	if ((!list && !add && !remove) ||
	    cli_expect_positionals(&args, list ? 2 : 3, superuser_usage, &error) != LIC_OK) {
		lic_error_set(&error, LIC_USAGE, "usage: licensor %s", superuser_usage);
		return cli_fail(&error);
	}
	const char *name = args.positionals[1];
	char address[POLICY_PRINCIPAL_MAX + 1];
	if (!list && principal_normalize(args.positionals[2], address, &error) != LIC_OK) {
		error.status = LIC_USAGE;
		return cli_fail(&error);
	}
	if (cli_open_store(&args, &store, &error) != LIC_OK)
		return cli_fail(&error);
	struct admin_context context;
	cli_admin_context(store, &context);
	if (!list) {
		if (admin_tenant_super_user(&context, name, address, add, &error) != LIC_OK)
			exit_status = cli_fail(&error);
		else
			printf("tenant %s: %s %s super-users\n", name, address,
			       add ? "added to the" : "removed from the");
	} else if (admin_load_tenant(&context, name, &tenant, &error) != LIC_OK) {
		exit_status = cli_fail(&error);
	} else if (cli_flag(&args, "json")) {
		putchar('[');
		for (size_t i = 0; i < tenant->super_user_count; i++) {
			if (i)
				putchar(',');
			json_string(stdout, tenant->super_users[i]);
		}
		puts("]");
	} else {
		for (size_t i = 0; i < tenant->super_user_count; i++)
			puts(tenant->super_users[i]);
	}
	tenant_free(tenant);
	store_close(store);
	return exit_status;
}
