/*
 * cmd_audit.c: `licensor audit verify`: checks the hash chain of the store's
 * audit log and its recorded head; exits 1 naming the first bad line.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "keyring/audit.h"
#include "keyring/error.h"

static const struct cli_option_spec audit_options[] = {{NULL, false, false}};

int command_audit(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	struct store *store = NULL;
	if (cli_parse(argc, argv, "audit", audit_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (args.help) {
		puts(
		    "usage: licensor audit verify\n"
		    "Checks that audit.log is an unbroken hash chain up to the head recorded in audit.head:\n"
		    "an edited, removed or reordered line is reported with its line number.");
		return 0;
	}
	if (cli_expect_positionals(&args, 1, "audit verify", &error) != LIC_OK)
		return cli_fail(&error);
	if (strcmp(args.positionals[0], "verify") != 0) {
		lic_error_set(&error, LIC_USAGE, "unknown audit command '%.32s' (use verify)",
			      args.positionals[0]);
		return cli_fail(&error);
	}
	/* Opening the store checks the KEK: only the store's operator verifies its log. */
	if (cli_open_store(&args, &store, &error) != LIC_OK)
		return cli_fail(&error);
	struct audit_report report = {0};
	int exit_status = 0;
	if (audit_verify(store->directory, &report, &error) != LIC_OK)
		exit_status = cli_fail(&error);
	else
		printf("audit log of %s verified: %llu lines, chain intact\n", store->directory,
		       (unsigned long long)report.lines);
	store_close(store);
	return exit_status;
}
