/*
 * cmd_rewrap.c: `licensor rewrap TENANT --out DIR PL-FILE…` (DESIGN.md §7):
 * moves PLs from older key versions of the tenant to its current one, so the
 * older versions can be revoked or destroyed. The work is rewrap_files
 * (core/rewrap.h): all inputs checked and rewrapped before anything is
 * written, one audit event. Never prints a content key.
 *
 * PL files are many (a thousand is ordinary), more than cli_parse keeps as
 * positionals: the files are split from the options here first, and
 * `--list FILE` (one path a line) takes any number of them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/rewrap.h"
#include "keyring/error.h"
#include "keyring/file_io.h"

#define REWRAP_LIST_MAX_BYTES (64u * 1024 * 1024)

static const struct cli_option_spec rewrap_options[] = {
    {"out", true, false},
    {"list", true, false},
    {NULL, false, false},
};

static const char rewrap_usage[] = "rewrap TENANT --out DIR [--list FILE] PL-FILE…";

/* Options of rewrap and the common ones that take a value. */
static bool takes_value(const char *argument)
{
	static const char *const names[] = {"--out", "--list", "--store", "--kek-file", "--passphrase-file",
					    NULL};
	for (const char *const *name = names; *name; name++)
		if (strcmp(argument, *name) == 0)
			return true;
	return false;
}

/* Splits argv into what cli_parse reads (options and the tenant) and the PL
 * files (every positional after the first). */
static lic_status split_arguments(int argc, char **argv, char **options, int *option_count,
				  const char **files, size_t *file_count, lic_error *error)
{
	bool options_ended = false, tenant_seen = false;
	*option_count = 0;
	*file_count = 0;
	options[(*option_count)++] = argv[0];
	for (int i = 1; i < argc; i++) {
		const char *argument = argv[i];
		bool is_option = !options_ended && strncmp(argument, "-", 1) == 0 && argument[1] != '\0';
		if (!options_ended && strcmp(argument, "--") == 0) {
			options_ended = true;
			continue;
		}
		if (is_option) {
			options[(*option_count)++] = argv[i];
			if (takes_value(argument) && i + 1 < argc)
				options[(*option_count)++] = argv[++i];
			continue;
		}
		if (!tenant_seen) {
			tenant_seen = true;
			options[(*option_count)++] = argv[i];
			continue;
		}
		if (*file_count == REWRAP_MAX_FILES)
			return lic_error_set(error, LIC_TOO_LARGE, "more than %d PL files in one rewrap",
					     REWRAP_MAX_FILES);
		files[(*file_count)++] = argument;
	}
	return LIC_OK;
}

/* Appends the paths of a list file (one a line, blank lines skipped) to
 * files; the lines point into *text (owned by the caller). */
static lic_status read_list(const char *path, char **text, const char ***files, size_t *file_count,
			    lic_error *error)
{
	size_t length = 0;
	lic_status status = file_read_all(path, REWRAP_LIST_MAX_BYTES, text, &length, error);
	if (status != LIC_OK)
		return status;
	for (char *line = *text; line != NULL && *line != '\0';) {
		char *end = strchr(line, '\n');
		if (end != NULL)
			*end = '\0';
		if (line[0] != '\0') {
			if (*file_count == REWRAP_MAX_FILES)
				return lic_error_set(error, LIC_TOO_LARGE,
						     "more than %d PL files in one rewrap", REWRAP_MAX_FILES);
			(*files)[(*file_count)++] = line;
		}
		line = end ? end + 1 : NULL;
	}
	return LIC_OK;
}

static void report_progress(size_t done, size_t total, void *argument)
{
	(void)argument;
	if (done % 100 == 0 || done == total)
		cli_progress("rewrapped %zu of %zu PLs\n", done, total);
}

int command_rewrap(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	struct store *store = NULL;
	struct rewrap_summary summary = {0};
	char **options = calloc((size_t)argc + 1, sizeof *options);
	const char **files = calloc(REWRAP_MAX_FILES, sizeof *files);
	char *list_text = NULL;
	int option_count = 0, exit_status = 0;
	size_t file_count = 0;
	if (options == NULL || files == NULL) {
		lic_error_set(&error, LIC_INTERNAL, "out of memory");
		goto fail;
	}
	if (split_arguments(argc, argv, options, &option_count, files, &file_count, &error) != LIC_OK ||
	    cli_parse(option_count, options, "rewrap", rewrap_options, &args, &error) != LIC_OK)
		goto fail;
	if (args.help) {
		printf(
		    "usage: licensor %s\n"
		    "Rewraps publishing licenses made under older key versions of TENANT to its current\n"
		    "version (the newest active, not compromised one) and writes them to DIR under the same\n"
		    "file names; DIR is created 0700 if needed and must not be the directory of an input.\n"
		    "The policy, ids and times stay as they were; only the KeyId and the wrapped content\n"
		    "key change, and the content key is never shown. PLs already under the current version\n"
		    "are copied unchanged. Every input is checked before anything is written: one bad file\n"
		    "(malformed, another tenant's, under a revoked or destroyed version) refuses them all.\n"
		    "  --list FILE   read PL paths from FILE, one a line (as well as any given as "
		    "arguments)\n"
		    "Afterwards the old versions can be revoked: the rewrapped PLs still open.\n",
		    rewrap_usage);
		goto out;
	}
	if (cli_expect_positionals(&args, 1, rewrap_usage, &error) != LIC_OK)
		goto fail;
	const char *out_dir = cli_option(&args, "out");
	if (out_dir == NULL || out_dir[0] == '\0') {
		lic_error_set(&error, LIC_USAGE, "--out DIR is required (usage: licensor %s)", rewrap_usage);
		goto fail;
	}
	const char *list = cli_option(&args, "list");
	if (list != NULL && read_list(list, &list_text, &files, &file_count, &error) != LIC_OK)
		goto fail;
	if (file_count == 0) {
		lic_error_set(&error, LIC_USAGE, "no PL files given (usage: licensor %s)", rewrap_usage);
		goto fail;
	}
	const char *name = args.positionals[0];
	if (cli_open_store(&args, &store, &error) != LIC_OK)
		goto fail;
	struct admin_context context;
	cli_admin_context(store, &context);
	if (rewrap_files(&context, name, out_dir, files, file_count, report_progress, NULL, &summary,
			 &error) != LIC_OK)
		goto fail;
	printf("tenant %s: %zu PLs in %s, version %u (key id %s)\n", name, summary.files, out_dir,
	       summary.target_version, summary.target_key_id_hex);
	for (size_t i = 0; i < summary.source_count; i++)
		printf("  rewrapped from version %u: %zu\n", summary.sources[i].version,
		       summary.sources[i].count);
	printf("  already current: %zu\n", summary.already_current);
	goto out;
fail:
	exit_status = cli_fail(&error);
out:
	rewrap_summary_cleanup(&summary);
	store_close(store);
	free(list_text);
	free(files);
	free(options);
	return exit_status;
}
