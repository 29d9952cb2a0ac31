/*
 * cli.h: what every `licensor` subcommand shares: argument parsing with a
 * per-command option table, the one-line error contract of DESIGN.md §7b
 * (`licensor: CODE: sentence` on stderr, non-zero exit), opening the store
 * from --store / LICENSOR_STORE, the operator's name for the audit log, and
 * the clock (LICENSOR_TEST_NOW moves it, for tests and rehearsals).
 */
#ifndef LICENSOR_TOOLS_CLI_H
#define LICENSOR_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "keyring/admin.h"
#include "keyring/store.h"
#include "licensor.h"

#define CLI_MAX_POSITIONALS 16
#define CLI_MAX_OPTIONS 160

struct cli_option_spec {
	const char *name; /* without the leading dashes */
	bool takes_value;
	bool repeatable; /* may be given more than once (cli_option_values) */
};

struct cli_args {
	const char *command; /* e.g. "keys list", for messages */
	const char *positionals[CLI_MAX_POSITIONALS];
	size_t positional_count;
	const char *names[CLI_MAX_OPTIONS];
	const char *values[CLI_MAX_OPTIONS]; /* "" for flags */
	size_t option_count;
	bool help;
};

/* Options every command accepts: --store, --kek-file, --passphrase-file, --help. */
lic_status cli_parse(int argc, char **argv, const char *command, const struct cli_option_spec *specs,
		     struct cli_args *args, lic_error *error);
const char *cli_option(const struct cli_args *args, const char *name); /* NULL when absent */
bool cli_flag(const struct cli_args *args, const char *name);
/* Every value of a repeatable option, in order; returns how many (≤ max). */
size_t cli_option_values(const struct cli_args *args, const char *name, const char **out, size_t max);
lic_status cli_expect_positionals(const struct cli_args *args, size_t count, const char *usage,
				  lic_error *error);
lic_status cli_version_number(const struct cli_args *args, uint32_t *out, lic_error *error);

/* The store directory: --store, else LICENSOR_STORE, else ./var/licensor. */
const char *cli_store_directory(const struct cli_args *args);
lic_status cli_store_options(const struct cli_args *args, struct store_options *options, lic_error *error);
lic_status cli_open_store(const struct cli_args *args, struct store **out, lic_error *error);
/* The admin context over an opened store. */
void cli_admin_context(struct store *store, struct admin_context *context);

const lic_clock *cli_clock(void);
const char *cli_actor(void);

/* Prints `licensor: CODE: sentence` and returns the exit status for it. */
int cli_fail(const lic_error *error);
int cli_exit_status(lic_status status);
/* Progress notes go to stderr only when it is a terminal. */
void cli_progress(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* Subcommands: argv[0] is the subcommand's own name. */
int command_init(int argc, char **argv);
int command_serve(int argc, char **argv);
int command_replay(int argc, char **argv);
int command_tenant(int argc, char **argv);
int command_keys(int argc, char **argv);
int command_rekey(int argc, char **argv);
int command_rollout(int argc, char **argv);
int command_lifecycle(int argc, char **argv); /* revoke, reinstate, destroy, activate */
int command_audit(int argc, char **argv);
int command_certify(int argc, char **argv);
int command_publish(int argc, char **argv);
int command_acquire(int argc, char **argv);
int command_open(int argc, char **argv);
int command_bench(int argc, char **argv);
int command_superuser(int argc, char **argv);
int command_pkcs11(int argc, char **argv); /* keygen, show: keys in a PKCS#11 token */
int command_simulate(int argc, char **argv);
int command_tpd(int argc, char **argv); /* tpd createkey, tpd unwrap */
int command_export(int argc, char **argv);
int command_import(int argc, char **argv);
int command_backup(int argc, char **argv);
int command_restore(int argc, char **argv);
int command_rewrap(int argc, char **argv);

#endif
