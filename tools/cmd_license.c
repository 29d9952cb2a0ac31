/*
 * cmd_license.c: the license commands of DESIGN.md §7b: `certify` (a RAC for
 * a user's public key), `publish` (a PL, client side, from the
 * rollout-selected publishing key or a given public key), `acquire` (a UL for
 * a RAC and a PL, through the issuing engine), and `open` (client side: the
 * content key a UL carries, with the user's private key).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "cli.h"
#include "core/documents.h"
#include "keyring/encoding.h"
#include "keyring/error.h"
#include "keyring/file_io.h"
#include "keyring/snapshot.h"
#include "keyring/utc_time.h"

#define INPUT_MAX_BYTES (1024u * 1024)

static lic_status read_public_key_pem(const char *path, EVP_PKEY **out, lic_error *error)
{
	FILE *file = fopen(path, "r");
	if (file == NULL)
		return lic_error_set(error, LIC_IO, "cannot read %s: %s", path, strerror(errno));
	EVP_PKEY *key = PEM_read_PUBKEY(file, NULL, NULL, NULL);
	fclose(file);
	if (key == NULL)
		return lic_error_set(error, LIC_MALFORMED,
				     "%s is not a PEM public key (SubjectPublicKeyInfo)", path);
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
		EVP_PKEY_free(key);
		return lic_error_set(error, LIC_UNSUPPORTED_VERSION, "%s is not an RSA key", path);
	}
	*out = key;
	return LIC_OK;
}

static lic_status read_private_key_pem(const char *path, EVP_PKEY **out, lic_error *error)
{
	FILE *file = fopen(path, "r");
	if (file == NULL)
		return lic_error_set(error, LIC_IO, "cannot read %s: %s", path, strerror(errno));
	EVP_PKEY *key = PEM_read_PrivateKey(file, NULL, NULL, NULL);
	fclose(file);
	if (key == NULL)
		return lic_error_set(error, LIC_MALFORMED, "%s is not an unencrypted PEM private key", path);
	*out = key;
	return LIC_OK;
}

static int write_stdout(const char *data, size_t length)
{
	if (fwrite(data, 1, length, stdout) != length || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
		fprintf(stderr, "licensor: IO: cannot write the output\n");
		return 1;
	}
	return 0;
}

/* ---- certify ---- */

static const struct cli_option_spec certify_options[] = {
    {"principal", true, false}, {"pubkey", true, false}, {"days", true, false}, {NULL, false, false}};

int command_certify(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	struct store *store = NULL;
	struct tenant *tenant = NULL;
	EVP_PKEY *user_key = NULL;
	struct version_key *signing_key = NULL;
	char *xml = NULL;
	size_t length = 0;
	int exit_status = 0;
	static const char usage[] = "certify T --principal EMAIL --pubkey user.pem [--days 31]";
	if (cli_parse(argc, argv, "certify", certify_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (args.help) {
		printf(
		    "usage: licensor %s > rac.xml\n"
		    "Issues a rights account certificate: binds EMAIL to the RSA public key in user.pem,\n"
		    "signed by the tenant's signing version, valid for --days (default 31, at most 3650).\n",
		    usage);
		return 0;
	}
	const char *principal = cli_option(&args, "principal"), *pubkey = cli_option(&args, "pubkey");
	const char *days_text = cli_option(&args, "days");
	long days = 31;
	if (days_text != NULL) {
		char *end = NULL;
		days = strtol(days_text, &end, 10);
		if (*end != '\0' || end == days_text || days < 1 || days > 3650) {
			lic_error_set(&error, LIC_USAGE, "--days must be a number from 1 to 3650");
			return cli_fail(&error);
		}
	}
	if (cli_expect_positionals(&args, 1, usage, &error) != LIC_OK)
		return cli_fail(&error);
	if (principal == NULL || pubkey == NULL) {
		lic_error_set(&error, LIC_USAGE, "usage: licensor %s", usage);
		return cli_fail(&error);
	}
	const char *name = args.positionals[0];
	if (read_public_key_pem(pubkey, &user_key, &error) != LIC_OK ||
	    cli_open_store(&args, &store, &error) != LIC_OK)
		goto fail;
	struct admin_context context;
	cli_admin_context(store, &context);
	if (admin_load_tenant(&context, name, &tenant, &error) != LIC_OK)
		goto fail;
	if (tenant->disabled) {
		lic_error_set(&error, LIC_TENANT_DISABLED, "tenant %s is disabled", name);
		goto fail;
	}
	int64_t now = lic_clock_now(context.clock);
	const struct key_version *signing = tenant_signing_version(tenant, now);
	if (signing == NULL) {
		lic_error_set(&error, LIC_KEY_REVOKED, "tenant %s has no active version to sign with", name);
		goto fail;
	}
	if (version_key_open(store->kek, name, signing, &signing_key, &error) != LIC_OK ||
	    rights_account_certificate_write(name, principal, user_key, now, now + days * 86400, signing_key,
					     signing->key_id_hex, &xml, &length, &error) != LIC_OK)
		goto fail;
	exit_status = write_stdout(xml, length);
	goto out;
fail:
	exit_status = cli_fail(&error);
out:
	free(xml);
	EVP_PKEY_free(user_key);
	version_key_free(signing_key);
	tenant_free(tenant);
	store_close(store);
	return exit_status;
}

/* ---- publish ---- */

static const struct cli_option_spec publish_options[] = {
    {"content-id", true, false},  {"owner", true, false},         {"grant", true, true},
    {"client-id", true, false},   {"pubkey", true, false},        {"content-key-out", true, false},
    {"valid-until", true, false}, {"validity-days", true, false}, {NULL, false, false},
};

/* "bob@x.com:VIEW,PRINT" → principal and "VIEW PRINT". */
static lic_status split_grant(const char *text, char *principal, size_t principal_size, char *rights,
			      size_t rights_size, lic_error *error)
{
	const char *colon = strrchr(text, ':');
	if (colon == NULL || colon == text || colon[1] == '\0')
		return lic_error_set(error, LIC_USAGE, "--grant must look like 'bob@contoso.com:VIEW,PRINT'");
	size_t principal_length = (size_t)(colon - text);
	if (principal_length >= principal_size || strlen(colon + 1) >= rights_size)
		return lic_error_set(error, LIC_USAGE, "--grant is too long");
	memcpy(principal, text, principal_length);
	principal[principal_length] = '\0';
	snprintf(rights, rights_size, "%s", colon + 1);
	for (char *c = rights; *c; c++)
		if (*c == ',')
			*c = ' ';
	return LIC_OK;
}

static lic_status write_content_key(const char *path, const uint8_t key[CONTENT_KEY_LENGTH], lic_error *error)
{
	char hex[2 * CONTENT_KEY_LENGTH + 2];
	hex_encode(key, CONTENT_KEY_LENGTH, hex);
	hex[2 * CONTENT_KEY_LENGTH] = '\n';
	lic_status status = file_write_atomic(path, hex, 2 * CONTENT_KEY_LENGTH + 1, 0600, 0, error);
	OPENSSL_cleanse(hex, sizeof hex);
	return status;
}

int command_publish(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	struct store *store = NULL;
	struct tenant *tenant = NULL;
	EVP_PKEY *publishing_key = NULL;
	char *xml = NULL;
	size_t length = 0;
	int exit_status = 0;
	uint8_t content_key[CONTENT_KEY_LENGTH];
	char key_id_hex[KEY_ID_HEX_LENGTH];
	const char *grants[POLICY_MAX_GRANTS];
	static char principals[POLICY_MAX_GRANTS][POLICY_PRINCIPAL_MAX + 1];
	static char rights[POLICY_MAX_GRANTS][512];
	const char *principal_list[POLICY_MAX_GRANTS], *rights_list[POLICY_MAX_GRANTS];
	static const char usage[] =
	    "publish T --content-id ID --owner EMAIL [--grant 'bob@x.com:VIEW,PRINT' …] "
	    "[--client-id C | --pubkey FILE] [--content-key-out F] [--valid-until TIME] "
	    "[--validity-days N]";
	if (cli_parse(argc, argv, "publish", publish_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (args.help) {
		printf(
		    "usage: licensor %s > pl.xml\n"
		    "Protects content: writes a publishing license with a new random content key wrapped\n"
		    "to the tenant's publishing key. Without --pubkey the key is the one the rollout "
		    "selects\n"
		    "for --client-id (read from the store); with --pubkey FILE it is that public key (PEM),\n"
		    "as a client that cached it would. --content-key-out F writes the content key (64 hex\n"
		    "characters, 0600). Grants: PRINCIPAL:RIGHT,RIGHT with PRINCIPAL an address, *@domain "
		    "or\n"
		    "ANYONE. --validity-days: offline validity of licenses (default 30). --valid-until:\n"
		    "ContentValidUntil, a UTC time.\n",
		    usage);
		return 0;
	}
	const char *content_id = cli_option(&args, "content-id"), *owner = cli_option(&args, "owner");
	if (cli_expect_positionals(&args, 1, usage, &error) != LIC_OK)
		return cli_fail(&error);
	if (content_id == NULL || owner == NULL) {
		lic_error_set(&error, LIC_USAGE, "usage: licensor %s", usage);
		return cli_fail(&error);
	}
	if (cli_option(&args, "pubkey") && cli_option(&args, "client-id")) {
		lic_error_set(&error, LIC_USAGE,
			      "give --client-id (key from the store) or --pubkey, not both");
		return cli_fail(&error);
	}
	const char *name = args.positionals[0];
	struct publish_request request = {.tenant = name,
					  .content_id = content_id,
					  .owner = owner,
					  .license_validity_days = 30,
					  .issued_at = lic_clock_now(cli_clock())};
	const char *validity = cli_option(&args, "validity-days");
	if (validity != NULL) {
		char *end = NULL;
		long days = strtol(validity, &end, 10);
		if (*end != '\0' || end == validity || days < 0 || days > LICENSE_VALIDITY_DAYS_MAX) {
			lic_error_set(&error, LIC_USAGE, "--validity-days must be a number from 0 to %d",
				      LICENSE_VALIDITY_DAYS_MAX);
			return cli_fail(&error);
		}
		request.license_validity_days = (uint32_t)days;
	}
	const char *until = cli_option(&args, "valid-until");
	if (until != NULL && utc_time_parse(until, &request.content_valid_until, &error) != LIC_OK) {
		lic_error_set(&error, LIC_USAGE, "--valid-until must be a UTC time YYYY-MM-DDThh:mm:ssZ");
		return cli_fail(&error);
	}
	size_t grant_count = cli_option_values(&args, "grant", grants, POLICY_MAX_GRANTS);
	for (size_t i = 0; i < grant_count; i++) {
		if (split_grant(grants[i], principals[i], sizeof principals[i], rights[i], sizeof rights[i],
				&error) != LIC_OK)
			return cli_fail(&error);
		principal_list[i] = principals[i];
		rights_list[i] = rights[i];
	}
	request.grant_principals = principal_list;
	request.grant_rights = rights_list;
	request.grant_count = grant_count;

	const char *pubkey = cli_option(&args, "pubkey");
	if (pubkey != NULL) {
		uint8_t *spki = NULL;
		size_t spki_length = 0;
		uint8_t key_id[KEY_ID_LENGTH];
		if (read_public_key_pem(pubkey, &publishing_key, &error) != LIC_OK ||
		    key_material_public_der(publishing_key, &spki, &spki_length, &error) != LIC_OK)
			goto fail;
		key_id_of_spki(spki, spki_length, key_id);
		free(spki);
		hex_encode(key_id, KEY_ID_LENGTH, key_id_hex);
	} else {
		if (cli_open_store(&args, &store, &error) != LIC_OK)
			goto fail;
		struct admin_context context;
		cli_admin_context(store, &context);
		if (admin_load_tenant(&context, name, &tenant, &error) != LIC_OK)
			goto fail;
		if (tenant->disabled) {
			lic_error_set(&error, LIC_TENANT_DISABLED, "tenant %s is disabled", name);
			goto fail;
		}
		const struct key_version *version = rollout_select_publishing_version(
		    tenant, cli_option(&args, "client-id"), request.issued_at);
		if (version == NULL) {
			lic_error_set(&error, LIC_KEY_REVOKED,
				      "tenant %s has no active version to publish to", name);
			goto fail;
		}
		if (key_material_from_public_der(version->public_key_der, version->public_key_length,
						 &publishing_key, &error) != LIC_OK)
			goto fail;
		memcpy(key_id_hex, version->key_id_hex, sizeof key_id_hex);
	}
	if (RAND_priv_bytes(content_key, sizeof content_key) != 1) {
		lic_error_set(&error, LIC_INTERNAL, "random generator failed");
		goto fail;
	}
	if (publishing_license_write(&request, publishing_key, key_id_hex, content_key, &xml, &length,
				     &error) != LIC_OK)
		goto fail;
	const char *key_out = cli_option(&args, "content-key-out");
	if (key_out != NULL && write_content_key(key_out, content_key, &error) != LIC_OK)
		goto fail;
	exit_status = write_stdout(xml, length);
	goto out;
fail:
	exit_status = cli_fail(&error);
out:
	OPENSSL_cleanse(content_key, sizeof content_key);
	free(xml);
	EVP_PKEY_free(publishing_key);
	tenant_free(tenant);
	store_close(store);
	return exit_status;
}

/* ---- acquire ---- */

static const struct cli_option_spec acquire_options[] = {
    {"rac", true, false}, {"pl", true, false}, {NULL, false, false}};

int command_acquire(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	struct store *store = NULL;
	lic_keyring *keyring = NULL;
	lic_engine *engine = NULL;
	char *rac = NULL, *pl = NULL;
	size_t rac_length = 0, pl_length = 0;
	lic_license_result result = {0};
	int exit_status = 0;
	static const char usage[] = "acquire --rac rac.xml --pl pl.xml";
	if (cli_parse(argc, argv, "acquire", acquire_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (args.help) {
		printf("usage: licensor %s > ul.xml\n"
		       "Issues a use license for the RAC's principal from the PL, through the same engine\n"
		       "the server runs; prints the signed UseLicense.\n",
		       usage);
		return 0;
	}
	const char *rac_path = cli_option(&args, "rac"), *pl_path = cli_option(&args, "pl");
	if (cli_expect_positionals(&args, 0, usage, &error) != LIC_OK)
		return cli_fail(&error);
	if (rac_path == NULL || pl_path == NULL) {
		lic_error_set(&error, LIC_USAGE, "usage: licensor %s", usage);
		return cli_fail(&error);
	}
	if (file_read_all(rac_path, INPUT_MAX_BYTES, &rac, &rac_length, &error) != LIC_OK ||
	    file_read_all(pl_path, INPUT_MAX_BYTES, &pl, &pl_length, &error) != LIC_OK ||
	    cli_open_store(&args, &store, &error) != LIC_OK)
		goto fail;
	if (keyring_open_store(store, cli_clock(), &keyring, &error) != LIC_OK) {
		store = NULL; /* taken over (and closed) by keyring_open_store */
		goto fail;
	}
	store = NULL;
	lic_engine_options options = {.keyring = keyring, .workers = 1};
	if (lic_engine_new(&options, &engine, &error) != LIC_OK)
		goto fail;
	lic_license_request request = {
	    .rac = rac, .rac_length = rac_length, .pl = pl, .pl_length = pl_length};
	if (lic_engine_issue(engine, &request, 1, &result, &error) != LIC_OK)
		goto fail;
	if (result.error.status != LIC_OK) {
		error = result.error;
		goto fail;
	}
	exit_status = write_stdout(result.use_license, result.use_license_length);
	goto out;
fail:
	exit_status = cli_fail(&error);
out:
	free(result.use_license);
	lic_engine_free(engine);
	lic_keyring_close(keyring);
	store_close(store);
	free(rac);
	free(pl);
	return exit_status;
}

/* ---- open ---- */

static const struct cli_option_spec open_options[] = {{"ul", true, false},
						      {"response", true, false},
						      {"index", true, false},
						      {"user-key", true, false},
						      {NULL, false, false}};

int command_open(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	char *xml = NULL;
	size_t length = 0;
	EVP_PKEY *user_key = NULL;
	struct use_license license = {0};
	bool license_read = false;
	uint8_t content_key[CONTENT_KEY_LENGTH];
	int exit_status = 0;
	static const char usage[] =
	    "open (--ul ul.xml | --response response.xml [--index N]) --user-key user.pem";
	if (cli_parse(argc, argv, "open", open_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (args.help) {
		printf(
		    "usage: licensor %s\n"
		    "Client side: unwraps the content key of a use license with the user's private key\n"
		    "and prints it (64 hex characters). Check the license's signature with xmlsec1 first.\n"
		    "--response takes the use license of result N (default 0) of an AcquireLicenseResponse\n"
		    "(what POST /v1/licenses answers); a refused result prints its error code.\n",
		    usage);
		return 0;
	}
	const char *ul_path = cli_option(&args, "ul"), *key_path = cli_option(&args, "user-key");
	const char *response_path = cli_option(&args, "response"), *index_text = cli_option(&args, "index");
	if (cli_expect_positionals(&args, 0, usage, &error) != LIC_OK)
		return cli_fail(&error);
	if ((ul_path == NULL) == (response_path == NULL) || key_path == NULL ||
	    (index_text && !response_path)) {
		lic_error_set(&error, LIC_USAGE, "usage: licensor %s", usage);
		return cli_fail(&error);
	}
	unsigned long long index = 0;
	if (index_text) {
		char *end = NULL;
		index = strtoull(index_text, &end, 10);
		if (*index_text < '0' || *index_text > '9' || *end != '\0' || index > 99) {
			lic_error_set(&error, LIC_USAGE, "--index must be a number from 0 to 99");
			return cli_fail(&error);
		}
	}
	if (file_read_all(ul_path ? ul_path : response_path, ul_path ? INPUT_MAX_BYTES : 8u * 1024 * 1024,
			  &xml, &length, &error) != LIC_OK)
		goto fail;
	if (response_path) {
		char *license_xml = NULL;
		size_t license_length = 0;
		if (acquire_response_use_license(xml, length, index, &license_xml, &license_length, &error) !=
		    LIC_OK)
			goto fail;
		free(xml);
		xml = license_xml;
		length = license_length;
	}
	if (use_license_read(xml, length, &license, &error) != LIC_OK)
		goto fail;
	license_read = true;
	if (read_private_key_pem(key_path, &user_key, &error) != LIC_OK ||
	    use_license_open(&license, user_key, content_key, &error) != LIC_OK)
		goto fail;
	char hex[2 * CONTENT_KEY_LENGTH + 1];
	hex_encode(content_key, CONTENT_KEY_LENGTH, hex);
	printf("%s\n", hex);
	OPENSSL_cleanse(hex, sizeof hex);
	OPENSSL_cleanse(content_key, sizeof content_key);
	goto out;
fail:
	exit_status = cli_fail(&error);
out:
	if (license_read)
		use_license_cleanup(&license);
	EVP_PKEY_free(user_key);
	free(xml);
	return exit_status;
}
