/*
 * cmd_serve.c: `licensor serve`, the HTTP server (DESIGN.md §6).
 *
 * On a store that does not exist yet it makes the embedded default first: the
 * store (KEK file 0600 beside it, as `init` does), a tenant "demo" and an
 * admin token file DIR.admin-token (0600), then prints the URL and a curl
 * session that certifies a user and gets a license. Everything else is the
 * io/ server over a read-only keyring and the engine.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "cli.h"
#include "io/server.h"
#include "keyring/encoding.h"
#include "keyring/error.h"
#include "keyring/file_io.h"
#include "keyring/utc_time.h"

static const struct cli_option_spec serve_options[] = {
    {"listen", true, false},
    {"workers", true, false},
    {"admin-token-file", true, false},
    {"max-connections", true, false},
    {"max-header-bytes", true, false},
    {"max-body-bytes", true, false},
    {"max-pipelined", true, false},
    {"queue-max", true, false},
    {"batch-max", true, false},
    {"header-timeout", true, false},
    {"request-timeout", true, false},
    {"idle-timeout", true, false},
    {"drain-timeout", true, false},
    {"pl-cache-entries", true, false},
    {"no-pl-cache", false, false},
    {"audit-issuance", false, false},
    {NULL, false, false},
};

static const char serve_help[] =
    "usage: licensor serve [--listen 127.0.0.1:8080] [--workers N] [--admin-token-file F] [limits]\n"
    "Serves the store over HTTP/1.1 (DESIGN.md §6): POST /v1/licenses,\n"
    "GET /v1/tenants/T/publishing-key?client=ID, POST /v1/tenants/T/certify (admin),\n"
    "GET /v1/tenants/T/keys (admin), GET /metrics, GET /healthz.\n"
    "A store that does not exist yet is created with a tenant \"demo\" and an admin token\n"
    "file DIR.admin-token (used by default when it exists).\n"
    "Limits (defaults): --max-connections 16384, --max-header-bytes 16384,\n"
    "  --max-body-bytes 1048576 (at most 1 MiB), --max-pipelined 16, --queue-max 8192,\n"
    "  --batch-max 64, --header-timeout 10s, --request-timeout 30s, --idle-timeout 60s,\n"
    "  --drain-timeout 30s, --pl-cache-entries 65536 (--no-pl-cache: every license unwraps).\n"
    "SIGTERM/SIGINT: stop accepting, answer what was received, exit 0. SIGHUP: reload.";

/* A positive integer option within [1, max]; `fallback` when absent. */
static lic_status number_option(const struct cli_args *args, const char *name, size_t max, size_t fallback,
				size_t *out, lic_error *error)
{
	const char *text = cli_option(args, name);
	*out = fallback;
	if (text == NULL)
		return LIC_OK;
	char *end = NULL;
	errno = 0;
	unsigned long long value = strtoull(text, &end, 10);
	if (*text == '\0' || *text == '-' || *end != '\0' || errno != 0 || value < 1 || value > max)
		return lic_error_set(error, LIC_USAGE, "--%s must be a number from 1 to %zu", name, max);
	*out = (size_t)value;
	return LIC_OK;
}

static lic_status seconds_option(const struct cli_args *args, const char *name, unsigned *out,
				 lic_error *error)
{
	const char *text = cli_option(args, name);
	*out = 0;
	if (text == NULL)
		return LIC_OK;
	int64_t seconds = 0;
	if (duration_parse(text, &seconds, error) != LIC_OK || seconds < 1 || seconds > 3600)
		return lic_error_set(error, LIC_USAGE, "--%s must be a duration from 1s to 1h (e.g. 10s, 2m)",
				     name);
	*out = (unsigned)seconds;
	return LIC_OK;
}

/* Reads the admin token: one line, at least 16 characters, in a file nobody
 * else may read. */
static lic_status read_admin_token(const char *path, char **out, lic_error *error)
{
	lic_status status = LIC_OK;
	char *data = NULL;
	size_t length = 0;
	struct stat info;
	if (stat(path, &info) != 0)
		return lic_error_set(error, LIC_IO, "cannot read the admin token file %s: %s", path,
				     strerror(errno));
	if (info.st_mode & 077)
		return lic_error_set(error, LIC_IO,
				     "the admin token file %s is readable by others: chmod 600 it", path);
	LIC_TRY(file_read_all(path, 4096, &data, &length, error));
	while (length > 0 && (data[length - 1] == '\n' || data[length - 1] == '\r'))
		length--;
	if (length < 16)
		LIC_FAIL(error, LIC_USAGE, "the admin token in %s is shorter than 16 characters", path);
	for (size_t i = 0; i < length; i++)
		if ((unsigned char)data[i] <= 0x20 || (unsigned char)data[i] >= 0x7f)
			LIC_FAIL(error, LIC_USAGE,
				 "the admin token in %s must be one line of printable characters", path);
	*out = malloc(length + 1);
	if (*out == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	memcpy(*out, data, length);
	(*out)[length] = '\0';
out:
	if (data) {
		OPENSSL_cleanse(data, length);
		free(data);
	}
	return status;
}

/* A new random admin token in `path` (0600). */
static lic_status write_admin_token(const char *path, lic_error *error)
{
	uint8_t random[24];
	char text[2 * sizeof random + 2];
	if (RAND_bytes(random, sizeof random) != 1)
		return lic_error_set(error, LIC_INTERNAL, "random generator failed");
	hex_encode(random, sizeof random, text);
	text[2 * sizeof random] = '\n';
	text[2 * sizeof random + 1] = '\0';
	lic_status status = file_write_atomic(path, text, strlen(text), 0600, 0, error);
	OPENSSL_cleanse(text, sizeof text);
	OPENSSL_cleanse(random, sizeof random);
	return status;
}

/* The embedded default: a store with a demo tenant and an admin token. */
static lic_status make_default_store(const char *directory, const char *token_path, lic_error *error)
{
	char *init_argv[] = {"init", "--store", (char *)directory, NULL};
	char *tenant_argv[] = {"tenant", "add", "demo", "--store", (char *)directory, NULL};
	fprintf(stderr, "licensor: %s does not exist yet: creating it with a tenant \"demo\"\n", directory);
	if (command_init(3, init_argv) != 0 || command_tenant(5, tenant_argv) != 0)
		return lic_error_set(error, LIC_IO, "could not create the default store %s (see above)",
				     directory);
	return write_admin_token(token_path, error);
}

struct serve_context {
	const char *store;
	const char *token_path; /* NULL: no admin token */
	const char *binary;
	unsigned workers;
};

static void print_session(void *argument, const char *url)
{
	const struct serve_context *context = argument;
	printf("licensor: serving %s (%u workers, store %s)\n", url, context->workers, context->store);
	if (context->token_path == NULL)
		printf("licensor: admin endpoints are off (no --admin-token-file, no %s.admin-token)\n",
		       context->store);
	printf("\nTry it from another terminal (a user, a RAC, a PL, a license, the content key):\n"
	       "  URL=%s LICENSOR=%s\n"
	       "  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -quiet -out alice.pem\n"
	       "  openssl pkey -in alice.pem -pubout -out alice.pub\n",
	       url, context->binary);
	if (context->token_path)
		printf("  curl -sf -H \"Authorization: Bearer $(cat %s)\" --data-binary @alice.pub \\\n"
		       "       \"$URL/v1/tenants/demo/certify?principal=alice@example.com\" > rac.xml\n",
		       context->token_path);
	else
		printf("  $LICENSOR certify demo --store %s --principal alice@example.com --pubkey alice.pub "
		       "> rac.xml\n",
		       context->store);
	printf(
	    "  curl -sf \"$URL/v1/tenants/demo/publishing-key?client=laptop-1\" > demo.pub\n"
	    "  $LICENSOR publish demo --pubkey demo.pub --content-id doc-1 --owner alice@example.com \\\n"
	    "       --grant 'alice@example.com:VIEW' --content-key-out doc-1.key > pl.xml\n"
	    "  { echo '<AcquireLicense xmlns=\"urn:licensor:v1\"><Item>'; sed '/^<?xml/d' rac.xml pl.xml;\n"
	    "    echo '</Item></AcquireLicense>'; } > request.xml\n"
	    "  curl -sf -H 'Content-Type: application/xml' --data-binary @request.xml $URL/v1/licenses"
	    " > response.xml\n"
	    "  $LICENSOR open --response response.xml --user-key alice.pem; cat doc-1.key\n"
	    "  curl -s $URL/metrics | grep licensor_licenses_issued_total\n"
	    "Stop with Ctrl-C (SIGTERM): requests already received are answered first.\n\n");
	fflush(stdout);
}

int command_serve(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	lic_keyring *keyring = NULL;
	lic_engine *engine = NULL;
	char *admin_token = NULL;
	char default_token_path[PATH_MAX];
	int exit_status = 1;
	if (cli_parse(argc, argv, "serve", serve_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (args.help) {
		puts(serve_help);
		return 0;
	}
	if (cli_expect_positionals(&args, 0,
				   "serve [--listen HOST:PORT] [--workers N] [--admin-token-file F]",
				   &error) != LIC_OK)
		return cli_fail(&error);
	struct server_options options = {.listen = cli_option(&args, "listen")};
	size_t workers, queue_max, batch_max, pl_cache, max_connections, max_header, max_body, max_pipelined;
	if (number_option(&args, "workers", 256, 0, &workers, &error) != LIC_OK ||
	    number_option(&args, "queue-max", 1 << 24, 0, &queue_max, &error) != LIC_OK ||
	    number_option(&args, "batch-max", 4096, 0, &batch_max, &error) != LIC_OK ||
	    number_option(&args, "pl-cache-entries", 1 << 26, 0, &pl_cache, &error) != LIC_OK ||
	    number_option(&args, "max-connections", 1 << 20, 0, &max_connections, &error) != LIC_OK ||
	    number_option(&args, "max-header-bytes", 1 << 20, 0, &max_header, &error) != LIC_OK ||
	    number_option(&args, "max-body-bytes", 1 << 20, 0, &max_body, &error) != LIC_OK ||
	    number_option(&args, "max-pipelined", 1024, 0, &max_pipelined, &error) != LIC_OK ||
	    seconds_option(&args, "header-timeout", &options.header_timeout_s, &error) != LIC_OK ||
	    seconds_option(&args, "request-timeout", &options.request_timeout_s, &error) != LIC_OK ||
	    seconds_option(&args, "idle-timeout", &options.idle_timeout_s, &error) != LIC_OK ||
	    seconds_option(&args, "drain-timeout", &options.drain_timeout_s, &error) != LIC_OK)
		return cli_fail(&error);
	if (cli_flag(&args, "audit-issuance")) {
		lic_error_set(&error, LIC_USAGE, "--audit-issuance is not available yet in this version");
		return cli_fail(&error);
	}
	options.max_connections = max_connections;
	options.max_header_bytes = max_header;
	options.max_body_bytes = max_body;
	options.max_pipelined = (unsigned)max_pipelined;

	const char *store_directory = cli_store_directory(&args);
	/* The session printed at start names this binary by its full path. */
	char binary[PATH_MAX];
	ssize_t binary_length = readlink("/proc/self/exe", binary, sizeof binary - 1);
	binary[binary_length > 0 ? binary_length : 0] = '\0';
	struct serve_context context = {.store = store_directory,
					.binary = binary_length > 0 ? binary : "licensor"};
	char world_path[PATH_MAX];
	if (snprintf(default_token_path, sizeof default_token_path, "%s.admin-token", store_directory) >=
		(int)sizeof default_token_path ||
	    snprintf(world_path, sizeof world_path, "%s/world.xml", store_directory) >=
		(int)sizeof world_path) {
		lic_error_set(&error, LIC_TOO_LARGE, "store path too long");
		return cli_fail(&error);
	}
	if (access(world_path, F_OK) != 0 && errno == ENOENT &&
	    make_default_store(store_directory, default_token_path, &error) != LIC_OK)
		return cli_fail(&error);
	const char *token_path = cli_option(&args, "admin-token-file");
	if (token_path == NULL && access(default_token_path, F_OK) == 0)
		token_path = default_token_path;
	if (token_path && read_admin_token(token_path, &admin_token, &error) != LIC_OK)
		return cli_fail(&error);
	/* The printed session works from any directory. */
	char token_absolute[PATH_MAX];
	context.token_path = token_path && realpath(token_path, token_absolute) ? token_absolute : token_path;

	/* Before any thread exists, so that every thread inherits the mask. */
	server_block_signals();
	struct store_options store_options;
	if (cli_store_options(&args, &store_options, &error) != LIC_OK)
		goto fail;
	lic_keyring_options keyring_options = {
	    .store_dir = store_options.directory,
	    .kek_file = store_options.kek_file,
	    .passphrase_file = store_options.passphrase_file,
	    .clock = cli_clock(),
	};
	if (lic_keyring_open(&keyring_options, &keyring, &error) != LIC_OK)
		goto fail;
	lic_engine_options engine_options = {
	    .keyring = keyring,
	    .workers = (unsigned)workers,
	    .batch_max = batch_max,
	    .queue_max = queue_max,
	    .pl_cache_entries = cli_flag(&args, "no-pl-cache") ? SIZE_MAX : pl_cache,
	    .log_internal_errors = true,
	};
	if (lic_engine_new(&engine_options, &engine, &error) != LIC_OK)
		goto fail;
	context.workers = workers ? (unsigned)workers : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	options.keyring = keyring;
	options.engine = engine;
	options.admin_token = admin_token;
	options.on_listening = print_session;
	options.context = &context;
	if (server_run(&options, &error) != LIC_OK)
		goto fail;
	fprintf(stderr, "licensor: stopped\n");
	exit_status = 0;
	goto out;
fail:
	exit_status = cli_fail(&error);
out:
	lic_engine_free(engine);
	lic_keyring_close(keyring);
	if (admin_token) {
		OPENSSL_cleanse(admin_token, strlen(admin_token));
		free(admin_token);
	}
	return exit_status;
}
