/*
 * cmd_backup.c: `licensor backup --out FILE` and `licensor restore FILE
 * [--force]` (DESIGN.md §7). Both are store transactions of keyring/backup.h:
 * the backup is a consistent cut under the lock, sealed under the world's KEK;
 * the restore works only into a store of the same world, checks everything
 * before writing, and says what it kept, dropped and left alone. Neither
 * prints key material; PKCS#11 URIs are printed with any PIN redacted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "keyring/backup.h"
#include "keyring/error.h"
#include "keyring/file_io.h"

static void show_progress(void *context, size_t done, size_t total)
{
	const char *verb = context;
	if (done == total || done % 1000 == 0)
		cli_progress("%s: %zu/%zu\n", verb, done, total);
}

static const struct cli_option_spec backup_options[] = {
    {"out", true, false},
    {NULL, false, false},
};

static const char backup_usage[] = "backup --out FILE";

int command_backup(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	struct store *store = NULL;
	if (cli_parse(argc, argv, "backup", backup_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (args.help) {
		printf("usage: licensor %s\n"
		       "Writes every tenant of the store to FILE (0600), sealed under the store's world key\n"
		       "(KEK), with a plaintext header naming the world and a SHA-256 digest. Only a store\n"
		       "of the same world can restore it. A BYOK version is saved as its PKCS#11 reference:\n"
		       "its key stays in the token. See docs/backup.md.\n",
		       backup_usage);
		return 0;
	}
	if (cli_expect_positionals(&args, 0, backup_usage, &error) != LIC_OK)
		return cli_fail(&error);
	const char *out = cli_option(&args, "out");
	if (out == NULL || out[0] == '\0') {
		lic_error_set(&error, LIC_USAGE, "backup needs --out FILE");
		return cli_fail(&error);
	}
	if (cli_open_store(&args, &store, &error) != LIC_OK)
		return cli_fail(&error);
	struct admin_context context;
	cli_admin_context(store, &context);
	struct backup_summary summary;
	int exit_status = 0;
	if (backup_store(&context, out, show_progress, "backup", &summary, &error) != LIC_OK) {
		exit_status = cli_fail(&error);
	} else {
		printf("backup of world %s written to %s: %zu tenants, %zu versions\n", store->world.store_id,
		       out, summary.tenant_count, summary.version_count);
		if (summary.byok_count > 0)
			printf("  %zu BYOK versions are saved as their PKCS#11 references only: their keys "
			       "stay in the token\n",
			       summary.byok_count);
	}
	store_close(store);
	return exit_status;
}

static const struct cli_option_spec restore_options[] = {
    {"force", false, false},
    {NULL, false, false},
};

static const char restore_usage[] = "restore FILE [--force]";

static void print_plan(const struct restore_plan *plan, bool force)
{
	size_t written = 0, unchanged = 0;
	for (size_t i = 0; i < plan->tenant_count; i++) {
		const struct restore_tenant *entry = &plan->tenants[i];
		const char *name = entry->merged->name;
		if (entry->action == RESTORE_UNCHANGED) {
			unchanged++;
			printf("tenant %s: unchanged (the store already holds the backup's keyring)\n", name);
		} else {
			written++;
			printf("tenant %s: %s (%zu versions)\n", name,
			       entry->action == RESTORE_WRITE_NEW ? "restored"
								  : "replaced by the backup's keyring",
			       entry->merged->version_count);
		}
	}
	for (size_t i = 0; i < plan->note_count; i++) {
		const struct restore_note *note = &plan->notes[i];
		switch (note->kind) {
		case RESTORE_NOTE_LOST:
			if (force)
				printf(
				    "dropped tenant %s version %u (key id %s): the store had it, the backup "
				    "does not\n",
				    note->tenant, note->version, note->key_id_hex);
			break;
		case RESTORE_NOTE_KEPT_DESTROYED:
			printf("tenant %s version %u (key id %s) stays destroyed, as in the store\n",
			       note->tenant, note->version, note->key_id_hex);
			break;
		case RESTORE_NOTE_KEPT_REVOKED:
			printf(
			    "tenant %s version %u (key id %s) stays revoked: the store revoked it after the "
			    "backup\n",
			    note->tenant, note->version, note->key_id_hex);
			break;
		case RESTORE_NOTE_BYOK:
			printf("tenant %s version %u is a PKCS#11 key (%s): the key itself must be in the "
			       "token\n",
			       note->tenant, note->version, note->uri ? note->uri : "no URI");
			break;
		case RESTORE_NOTE_NOT_IN_BACKUP:
			printf("tenant %s is in the store but not in the backup: left alone\n", note->tenant);
			break;
		}
	}
	printf("restore done: %zu tenants written, %zu unchanged, %zu versions%s\n", written, unchanged,
	       plan->version_count, force && plan->lost_count > 0 ? ", versions dropped as listed" : "");
}

int command_restore(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	struct store *store = NULL;
	char *data = NULL;
	size_t length = 0;
	if (cli_parse(argc, argv, "restore", restore_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (args.help) {
		printf("usage: licensor %s\n"
		       "Restores a backup into a store of the same world (a directory holding only a copy\n"
		       "of the world's world.xml is an empty store of that world: that is how a lost store\n"
		       "is rebuilt). Refuses, changing nothing, when the store has versions that the\n"
		       "backup lacks; --force drops them and lists each one. A version destroyed in the\n"
		       "store stays destroyed; a revocation made after the backup stands. Tenants the\n"
		       "backup lacks are left alone. See docs/backup.md.\n",
		       restore_usage);
		return 0;
	}
	if (cli_expect_positionals(&args, 1, restore_usage, &error) != LIC_OK)
		return cli_fail(&error);
	bool force = cli_flag(&args, "force");
	if (file_read_all(args.positionals[0], BACKUP_FILE_MAX_BYTES, &data, &length, &error) != LIC_OK)
		return cli_fail(&error);
	int exit_status = 0;
	if (cli_open_store(&args, &store, &error) != LIC_OK) {
		exit_status = cli_fail(&error);
		goto out;
	}
	struct backup_header header;
	if (backup_read_header(data, length, &header, &error) != LIC_OK) {
		exit_status = cli_fail(&error);
		goto out;
	}
	struct admin_context context;
	cli_admin_context(store, &context);
	struct restore_plan *plan = NULL;
	cli_progress("restoring %llu tenants…\n", (unsigned long long)header.tenant_count);
	if (restore_store(&context, data, length, force, show_progress, "restore", &plan, &error) != LIC_OK) {
		exit_status = cli_fail(&error);
		goto out;
	}
	print_plan(plan, force);
	restore_plan_free(plan);
out:
	free(data);
	store_close(store);
	return exit_status;
}
