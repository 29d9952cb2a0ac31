/*
 * cmd_tpd.c: the TPD exchange of DESIGN.md §7 on the command line:
 *
 *   licensor tpd createkey [--out DIR] [--algorithm rsa-3072]
 *   licensor export TENANT --to PublicKey-<GUID>.txt [--out DIR]
 *   licensor tpd unwrap --key PrivateKey-<GUID>.txt --target TPD-<GUID>.xml [--out DIR]
 *   licensor import TENANT --tpd ExportedTPD-<GUID>.xml --password-file Password-<GUID>.txt
 *
 * Every file of one exchange carries the same GUID, in its name and inside
 * it; a file whose GUID disagrees is refused before anything is written.
 * Output files are written whole, durably and with mode 0600 into --out
 * (default: the current directory) by file_write_new, which never
 * replaces an existing file (renameat2 RENAME_NOREPLACE, not a check then a
 * rename); their paths are printed first, then (export, unwrap, import) the
 * number and key id of each version, so that both sides can compare them.
 * Neither a key nor the password is ever printed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "keyring/error.h"
#include "keyring/file_io.h"
#include "keyring/secure_memory.h"
#include "keyring/tpd.h"

#define PATH_SIZE 4096

/* DIR/<prefix><guid><suffix>, refused early when it exists already (before
 * the expensive work); the write itself is what guarantees that nothing is
 * replaced. */
static lic_status output_path(const char *directory, const char *prefix, const char *guid, const char *suffix,
			      char path[PATH_SIZE], lic_error *error)
{
	char name[128];
	snprintf(name, sizeof name, "%s%s%s", prefix, guid, suffix);
	lic_status status = file_join(path, PATH_SIZE, directory, name, error);
	if (status != LIC_OK)
		return status;
	struct stat info;
	if (lstat(path, &info) == 0)
		return lic_error_set(error, LIC_IO,
				     "%.300s exists already: nothing written (remove it or use --out)", path);
	return LIC_OK;
}

/* One stdout line per version: "version N key-id HEX" (after the paths). */
static void print_key_ids(const struct tpd_contents *contents)
{
	for (size_t i = 0; i < contents->key_count; i++)
		printf("version %u key-id %s\n", contents->keys[i].number, contents->keys[i].key_id_hex);
}

static lic_status output_directory(const struct cli_args *args, const char **out, lic_error *error)
{
	const char *directory = cli_option(args, "out");
	if (directory == NULL) {
		*out = ".";
		return LIC_OK;
	}
	if (directory[0] == '\0')
		return lic_error_set(error, LIC_USAGE, "--out needs a directory");
	*out = directory;
	return file_make_directory(directory, error);
}

/* ---- tpd createkey / tpd unwrap ---- */

static const struct cli_option_spec tpd_options[] = {
    {"out", true, false},    {"algorithm", true, false}, {"key", true, false},
    {"target", true, false}, {NULL, false, false},
};

static const char tpd_usage[] = "tpd createkey [--out DIR] [--algorithm rsa-3072] | "
				"tpd unwrap --key PrivateKey-<GUID>.txt --target TPD-<GUID>.xml [--out DIR]";

static int tpd_createkey(const struct cli_args *args)
{
	lic_error error = {0};
	enum key_algorithm algorithm = KEY_ALGORITHM_RSA_3072;
	const char *directory = NULL;
	char guid[TPD_GUID_LENGTH], public_path[PATH_SIZE], private_path[PATH_SIZE];
	char *public_text = NULL, *private_text = NULL;
	size_t public_length = 0, private_length = 0;
	int exit_status = 0;
	const char *name = cli_option(args, "algorithm");
	if (cli_option(args, "key") != NULL || cli_option(args, "target") != NULL) {
		lic_error_set(&error, LIC_USAGE, "tpd createkey takes no --key or --target");
		return cli_fail(&error);
	}
	if ((name != NULL && key_algorithm_parse(name, false, &algorithm, &error) != LIC_OK) ||
	    output_directory(args, &directory, &error) != LIC_OK)
		return cli_fail(&error);
	cli_progress("generating a %s recipient key…\n", key_algorithm_name(algorithm));
	if (tpd_recipient_key_create(algorithm, guid, &public_text, &public_length, &private_text,
				     &private_length, &error) != LIC_OK ||
	    output_path(directory, "PublicKey-", guid, ".txt", public_path, &error) != LIC_OK ||
	    output_path(directory, "PrivateKey-", guid, ".txt", private_path, &error) != LIC_OK ||
	    file_write_new(private_path, private_text, private_length, &error) != LIC_OK) {
		exit_status = cli_fail(&error);
	} else if (file_write_new(public_path, public_text, public_length, &error) != LIC_OK) {
		/* A private key without its public key is of no use: remove it. */
		unlink(private_path);
		exit_status = cli_fail(&error);
	} else {
		printf("%s\n%s\n", public_path, private_path);
	}
	free(public_text);
	if (private_text != NULL)
		secure_free(private_text, private_length + 1);
	return exit_status;
}

static int tpd_unwrap_command(const struct cli_args *args)
{
	lic_error error = {0};
	const char *key_path = cli_option(args, "key"), *target_path = cli_option(args, "target");
	const char *directory = NULL;
	char guid[TPD_GUID_LENGTH], exported_path[PATH_SIZE], password_path[PATH_SIZE];
	EVP_PKEY *key = NULL;
	char *xml = NULL, *password = NULL, *exported = NULL, *line = NULL;
	size_t xml_length = 0, exported_length = 0;
	struct tpd_contents *contents = NULL;
	int exit_status = 0;
	if (key_path == NULL || target_path == NULL || cli_option(args, "algorithm") != NULL) {
		lic_error_set(
		    &error, LIC_USAGE,
		    "usage: licensor tpd unwrap --key PrivateKey-<GUID>.txt --target TPD-<GUID>.xml "
		    "[--out DIR]");
		return cli_fail(&error);
	}
	if (tpd_private_key_read_file(key_path, guid, &key, &error) != LIC_OK ||
	    tpd_check_file_name(key_path, "PrivateKey-", ".txt", guid, &error) != LIC_OK ||
	    tpd_check_file_name(target_path, "TPD-", ".xml", guid, &error) != LIC_OK ||
	    file_read_all(target_path, TPD_FILE_MAX_BYTES, &xml, &xml_length, &error) != LIC_OK ||
	    tpd_unwrap(xml, xml_length, key, guid, &contents, &error) != LIC_OK ||
	    output_directory(args, &directory, &error) != LIC_OK ||
	    output_path(directory, "ExportedTPD-", guid, ".xml", exported_path, &error) != LIC_OK ||
	    output_path(directory, "Password-", guid, ".txt", password_path, &error) != LIC_OK) {
		exit_status = cli_fail(&error);
		goto out;
	}
	cli_progress("deriving the password key (scrypt)…\n");
	if (tpd_exported_build(contents, NULL, &password, &exported, &exported_length, &error) != LIC_OK) {
		exit_status = cli_fail(&error);
		goto out;
	}
	/* The password file is one line: the GUID, a colon, the password. */
	line = secure_alloc(TPD_PASSWORD_LINE_LENGTH + 1);
	if (line == NULL) {
		lic_error_set(&error, LIC_INTERNAL, "out of secure memory");
		exit_status = cli_fail(&error);
		goto out;
	}
	tpd_password_line(guid, password, line);
	if (file_write_new(exported_path, exported, exported_length, &error) != LIC_OK) {
		exit_status = cli_fail(&error);
		goto out;
	}
	if (file_write_new(password_path, line, TPD_PASSWORD_LINE_LENGTH, &error) != LIC_OK) {
		unlink(exported_path); /* ours: written just now */
		exit_status = cli_fail(&error);
		goto out;
	}
	printf("%s\n%s\n", exported_path, password_path);
	print_key_ids(contents);
	cli_progress("tenant %s: %zu versions; hand the two files over by separate channels.\n"
		     "Anyone with PublicKey-%s.txt can make a TPD: compare these key ids with "
		     "`licensor keys list %s` on the exporting side before any activate.\n",
		     contents->tenant, contents->key_count, guid, contents->tenant);
out:
	if (password != NULL)
		secure_free(password, TPD_PASSWORD_LENGTH + 1);
	if (line != NULL)
		secure_free(line, TPD_PASSWORD_LINE_LENGTH + 1);
	free(exported);
	free(xml);
	tpd_contents_free(contents);
	EVP_PKEY_free(key);
	return exit_status;
}

int command_tpd(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	if (cli_parse(argc, argv, "tpd", tpd_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (args.help) {
		printf("usage: licensor %s\n"
		       "  createkey   the receiving side: writes PublicKey-<GUID>.txt (give it to the "
		       "exporting\n"
		       "              service) and PrivateKey-<GUID>.txt (keep it; 0600)\n"
		       "  unwrap      decrypts TPD-<GUID>.xml with the private key and writes\n"
		       "              ExportedTPD-<GUID>.xml under a new random password, in "
		       "Password-<GUID>.txt\n"
		       "Then: licensor import TENANT --tpd ExportedTPD-<GUID>.xml --password-file "
		       "Password-<GUID>.txt\n"
		       "Files are written into --out DIR (default: the current directory); their paths are "
		       "printed.\n",
		       tpd_usage);
		return 0;
	}
	if (args.positional_count != 1) {
		lic_error_set(&error, LIC_USAGE, "usage: licensor %s", tpd_usage);
		return cli_fail(&error);
	}
	if (strcmp(args.positionals[0], "createkey") == 0)
		return tpd_createkey(&args);
	if (strcmp(args.positionals[0], "unwrap") == 0)
		return tpd_unwrap_command(&args);
	lic_error_set(&error, LIC_USAGE, "unknown tpd command '%.32s' (use createkey or unwrap)",
		      args.positionals[0]);
	return cli_fail(&error);
}

/* ---- export ---- */

static const struct cli_option_spec export_options[] = {
    {"to", true, false},
    {"out", true, false},
    {NULL, false, false},
};

static const char export_usage[] = "export TENANT --to PublicKey-<GUID>.txt [--out DIR]";

int command_export(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	struct store *store = NULL;
	char *text = NULL, *versions = NULL, *key_ids = NULL;
	size_t length = 0;
	EVP_PKEY *recipient = NULL;
	char guid[TPD_GUID_LENGTH], path[PATH_SIZE];
	const char *directory = NULL;
	int exit_status = 0;
	if (cli_parse(argc, argv, "export", export_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (args.help) {
		printf(
		    "usage: licensor %s\n"
		    "Writes TPD-<GUID>.xml: every active and retained version of TENANT, encrypted to the\n"
		    "recipient's public key (from `licensor tpd createkey` on the receiving side).\n"
		    "BYOK versions never leave their HSM: a tenant with one is refused (NOT_EXPORTABLE).\n",
		    export_usage);
		return 0;
	}
	const char *to = cli_option(&args, "to");
	if (cli_expect_positionals(&args, 1, export_usage, &error) != LIC_OK)
		return cli_fail(&error);
	if (to == NULL) {
		lic_error_set(&error, LIC_USAGE, "usage: licensor %s", export_usage);
		return cli_fail(&error);
	}
	if (file_read_all(to, TPD_KEY_FILE_MAX_BYTES, &text, &length, &error) != LIC_OK ||
	    tpd_public_key_parse(text, length, guid, &recipient, &error) != LIC_OK ||
	    tpd_check_file_name(to, "PublicKey-", ".txt", guid, &error) != LIC_OK ||
	    output_directory(&args, &directory, &error) != LIC_OK ||
	    output_path(directory, "TPD-", guid, ".xml", path, &error) != LIC_OK ||
	    cli_open_store(&args, &store, &error) != LIC_OK) {
		exit_status = cli_fail(&error);
		goto out;
	}
	struct admin_context context;
	cli_admin_context(store, &context);
	if (tpd_export_to_file(&context, args.positionals[0], recipient, guid, path, &versions, &key_ids,
			       &error) != LIC_OK) {
		exit_status = cli_fail(&error);
		goto out;
	}
	printf("%s\n%s", path, key_ids);
	cli_progress("tenant %s: versions %s exported; the receiving side should find these key ids in "
		     "what it imports\n",
		     args.positionals[0], versions);
out:
	free(key_ids);
	free(versions);
	free(text);
	EVP_PKEY_free(recipient);
	store_close(store);
	return exit_status;
}

/* ---- import ---- */

/* The number here of the version that was active on the exporting side, or
 * the last one imported when none was (State is authenticated). */
static uint32_t active_import_number(const struct tpd_contents *contents, uint32_t first, uint32_t last)
{
	for (size_t i = 0; i < contents->key_count; i++)
		if (contents->keys[i].state == LIC_KEY_STATE_ACTIVE)
			return first + (uint32_t)i;
	return last;
}

static const struct cli_option_spec import_options[] = {
    {"tpd", true, false},
    {"password-file", true, false},
    {NULL, false, false},
};

static const char import_usage[] =
    "import TENANT --tpd ExportedTPD-<GUID>.xml --password-file Password-<GUID>.txt";

int command_import(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	struct store *store = NULL;
	char *xml = NULL, *password = NULL;
	size_t xml_length = 0, password_length = 0;
	struct tpd_contents *contents = NULL;
	char guid[TPD_GUID_LENGTH];
	int exit_status = 0;
	if (cli_parse(argc, argv, "import", import_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (args.help) {
		printf(
		    "usage: licensor %s\n"
		    "Brings every version of an ExportedTPD into TENANT (created when the store has none) "
		    "as\n"
		    "`retained`, numbered after its versions: old content opens here. `licensor activate`\n"
		    "then makes one of them active. A wrong password, an altered file, files of different\n"
		    "exchanges or a key id the tenant has already are refused, and nothing is imported.\n",
		    import_usage);
		return 0;
	}
	const char *tpd_path = cli_option(&args, "tpd"), *password_path = cli_option(&args, "password-file");
	if (cli_expect_positionals(&args, 1, import_usage, &error) != LIC_OK)
		return cli_fail(&error);
	if (tpd_path == NULL || password_path == NULL) {
		lic_error_set(&error, LIC_USAGE, "usage: licensor %s", import_usage);
		return cli_fail(&error);
	}
	if (tpd_guid_of_file_name(tpd_path, "ExportedTPD-", ".xml", guid, &error) != LIC_OK ||
	    tpd_check_file_name(password_path, "Password-", ".txt", guid, &error) != LIC_OK ||
	    cli_open_store(&args, &store, &error) != LIC_OK ||
	    file_read_all(tpd_path, TPD_FILE_MAX_BYTES, &xml, &xml_length, &error) != LIC_OK ||
	    kek_read_passphrase_file(password_path, &password, &password_length, &error) != LIC_OK) {
		exit_status = cli_fail(&error);
		goto out;
	}
	cli_progress("deriving the password key (scrypt)…\n");
	const char *secret = NULL;
	size_t secret_length = 0;
	if (tpd_password_line_parse(password, password_length, guid, &secret, &secret_length, &error) !=
	    LIC_OK) {
		exit_status = cli_fail(&error);
		goto out;
	}
	if (tpd_exported_open(xml, xml_length, secret, secret_length, guid, &contents, &error) != LIC_OK) {
		exit_status = cli_fail(&error);
		goto out;
	}
	struct admin_context context;
	cli_admin_context(store, &context);
	uint32_t first = 0;
	bool created = false;
	const char *name = args.positionals[0];
	if (tpd_import_to_store(&context, name, contents, &first, &created, &error) != LIC_OK) {
		exit_status = cli_fail(&error);
		goto out;
	}
	uint32_t last = first + (uint32_t)contents->key_count - 1;
	printf("tenant %s%s: imported %zu versions as retained\n", name, created ? " (created)" : "",
	       contents->key_count);
	for (size_t i = 0; i < contents->key_count; i++)
		printf("version %zu (exported %u) key-id %s\n", first + i, contents->keys[i].number,
		       contents->keys[i].key_id_hex);
	/* A TPD proves only that its maker had PublicKey-<GUID>.txt, not who it
	 * was: the operator checks the key ids before anything is activated. */
	printf("Before activating: compare these key ids with `licensor keys list %s` on the exporting "
	       "side\n(anyone with PublicKey-%s.txt can make a TPD). If they match, `licensor activate "
	       "%s --version N`\n(the exporting side's active one is version %u here).\n",
	       name, guid, name, active_import_number(contents, first, last));
out:
	if (password != NULL)
		secure_free(password, KEK_PASSPHRASE_MAX + 1);
	tpd_contents_free(contents);
	free(xml);
	store_close(store);
	return exit_status;
}
