/*
 * cmd_init.c: `licensor init`: create a store (DESIGN.md §4, §7b). The
 * directory and any missing parents are created 0700; the KEK file is
 * created 0600 beside the store unless --kek-file names one.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "keyring/audit.h"
#include "keyring/error.h"
#include "keyring/file_io.h"
#include "keyring/pkcs11.h"

static const struct cli_option_spec init_options[] = {{"pkcs11", true, false}, {NULL, false, false}};

/* Creates the missing parents of the store directory (0700), durably, and
 * remembers them so that a failed init can remove what it made. */
struct created_parents {
	char paths[16][PATH_MAX];
	size_t count;
};

static lic_status make_parents(const char *directory, struct created_parents *created, lic_error *error)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s", directory) >= (int)sizeof path)
		return lic_error_set(error, LIC_TOO_LARGE, "store path too long");
	for (char *slash = strchr(path + 1, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		if (mkdir(path, 0700) == 0) {
			lic_status status = file_sync_parent(path, error);
			if (status != LIC_OK)
				return status;
			if (created->count < sizeof created->paths / sizeof created->paths[0])
				snprintf(created->paths[created->count++], PATH_MAX, "%s", path);
		} else if (errno != EEXIST) {
			return lic_error_set(error, LIC_IO, "cannot create %s: %s", path, strerror(errno));
		}
		*slash = '/';
	}
	return LIC_OK;
}

static void remove_parents(const struct created_parents *created)
{
	for (size_t i = created->count; i > 0; i--)
		rmdir(created->paths[i - 1]);
}

int command_init(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	struct store_options options;
	struct store *store = NULL;
	if (cli_parse(argc, argv, "init", init_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (args.help) {
		puts("usage: licensor init --store DIR [--kek-file F | --passphrase-file F | --pkcs11 URI "
		     "[--pkcs11-module PATH]]\n"
		     "Creates a keyring store. Without a flag the KEK is a new random file DIR.kek (0600)\n"
		     "beside the store; --kek-file uses (or creates) that file; --passphrase-file derives\n"
		     "the KEK from the passphrase in F with scrypt; --pkcs11 keeps it wrapped by an AES key\n"
		     "in a PKCS#11 token (RFC 7512 URI; prefer pin-source=FILE to pin-value, since the URI\n"
		     "is recorded in world.xml). world.xml records the choice.");
		return 0;
	}
	if (cli_expect_positionals(&args, 0,
				   "init --store DIR [--kek-file F | --passphrase-file F | --pkcs11 URI]",
				   &error) != LIC_OK ||
	    cli_store_options(&args, &options, &error) != LIC_OK)
		return cli_fail(&error);
	options.pkcs11_uri = cli_option(&args, "pkcs11");
	/* The audit line must be writable before anything is created. */
	int64_t now = lic_clock_now(cli_clock());
	struct audit_event event = {
	    .actor = cli_actor(), .action = "store-init", .detail = "00000000-0000-0000-0000-000000000000"};
	if (audit_check_event(&event, now, &error) != LIC_OK)
		return cli_fail(&error);
	struct created_parents created = {.count = 0};
	if (make_parents(options.directory, &created, &error) != LIC_OK ||
	    store_init(&options, &store, &error) != LIC_OK) {
		remove_parents(&created);
		return cli_fail(&error);
	}
	event.detail = store->world.store_id;
	if (store_lock(store, &error) != LIC_OK ||
	    audit_append(store->directory, &event, now, &error) != LIC_OK) {
		store_close(store);
		return cli_fail(&error);
	}
	store_unlock(store);
	printf("initialised store %s\n", store->directory);
	printf("  store id  %s\n", store->world.store_id);
	if (store->world.kek_source == KEK_SOURCE_FILE)
		printf("  KEK       file %s (keep it 0600, and back it up apart from the store)\n",
		       store->world.kek_path);
	else if (store->world.kek_source == KEK_SOURCE_PKCS11) {
		char redacted[PKCS11_URI_MAX];
		pkcs11_uri_redacted(store->world.kek_uri, redacted, sizeof redacted);
		printf("  KEK       wrapped by the token key %s (the store opens only with it)\n", redacted);
	} else
		printf("  KEK       derived from the passphrase file with scrypt (N=%llu, r=%u, p=%u)\n",
		       (unsigned long long)store->world.scrypt.n, store->world.scrypt.r,
		       store->world.scrypt.p);
	store_close(store);
	return 0;
}
