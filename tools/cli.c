/*
 * cli.c: shared plumbing of the `licensor` subcommands (see cli.h).
 */
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "keyring/error.h"
#include "keyring/utc_time.h"

static const struct cli_option_spec common_options[] = {
    {"store", true, false},         {"kek-file", true, false}, {"passphrase-file", true, false},
    {"pkcs11-module", true, false}, /* the PKCS#11 module of --byok / --pkcs11 keys */
    {NULL, false, false},
};

static const struct cli_option_spec *find_spec(const struct cli_option_spec *specs, const char *name)
{
	for (const struct cli_option_spec *spec = common_options; spec->name; spec++)
		if (strcmp(spec->name, name) == 0)
			return spec;
	for (const struct cli_option_spec *spec = specs; spec && spec->name; spec++)
		if (strcmp(spec->name, name) == 0)
			return spec;
	return NULL;
}

lic_status cli_parse(int argc, char **argv, const char *command, const struct cli_option_spec *specs,
		     struct cli_args *args, lic_error *error)
{
	memset(args, 0, sizeof *args);
	args->command = command;
	bool options_ended = false;
	for (int i = 1; i < argc; i++) {
		const char *argument = argv[i];
		if (!options_ended && strcmp(argument, "--") == 0) {
			options_ended = true;
			continue;
		}
		if (!options_ended && (strcmp(argument, "--help") == 0 || strcmp(argument, "-h") == 0)) {
			args->help = true;
			continue;
		}
		if (!options_ended && strncmp(argument, "--", 2) == 0) {
			char name[64];
			const char *equals = strchr(argument, '=');
			size_t length = equals ? (size_t)(equals - argument - 2) : strlen(argument + 2);
			if (length >= sizeof name)
				return lic_error_set(error, LIC_USAGE, "%s: unknown option %.64s", command,
						     argument);
			memcpy(name, argument + 2, length);
			name[length] = '\0';
			const struct cli_option_spec *spec = find_spec(specs, name);
			if (spec == NULL)
				return lic_error_set(error, LIC_USAGE, "%s: unknown option --%s (see --help)",
						     command, name);
			const char *value = "";
			if (spec->takes_value) {
				if (equals)
					value = equals + 1;
				else if (i + 1 < argc)
					value = argv[++i];
				else
					return lic_error_set(error, LIC_USAGE,
							     "%s: option --%s needs a value", command, name);
			} else if (equals) {
				return lic_error_set(error, LIC_USAGE, "%s: option --%s takes no value",
						     command, name);
			}
			if (!spec->repeatable && cli_option(args, spec->name) != NULL)
				return lic_error_set(error, LIC_USAGE, "%s: option --%s given twice", command,
						     name);
			if (args->option_count == CLI_MAX_OPTIONS)
				return lic_error_set(error, LIC_USAGE, "%s: too many options", command);
			args->names[args->option_count] = spec->name;
			args->values[args->option_count] = value;
			args->option_count++;
			continue;
		}
		if (args->positional_count == CLI_MAX_POSITIONALS)
			return lic_error_set(error, LIC_USAGE, "%s: too many arguments", command);
		args->positionals[args->positional_count++] = argument;
	}
	return LIC_OK;
}

const char *cli_option(const struct cli_args *args, const char *name)
{
	for (size_t i = 0; i < args->option_count; i++)
		if (strcmp(args->names[i], name) == 0)
			return args->values[i];
	return NULL;
}

size_t cli_option_values(const struct cli_args *args, const char *name, const char **out, size_t max)
{
	size_t count = 0;
	for (size_t i = 0; i < args->option_count && count < max; i++)
		if (strcmp(args->names[i], name) == 0)
			out[count++] = args->values[i];
	return count;
}

bool cli_flag(const struct cli_args *args, const char *name)
{
	return cli_option(args, name) != NULL;
}

lic_status cli_expect_positionals(const struct cli_args *args, size_t count, const char *usage,
				  lic_error *error)
{
	if (args->positional_count != count)
		return lic_error_set(error, LIC_USAGE, "usage: licensor %s", usage);
	return LIC_OK;
}

lic_status cli_version_number(const struct cli_args *args, uint32_t *out, lic_error *error)
{
	const char *text = cli_option(args, "version");
	if (text == NULL)
		return lic_error_set(error, LIC_USAGE, "%s: --version N is required", args->command);
	char *end = NULL;
	errno = 0;
	unsigned long value = strtoul(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || value == 0 || value > TENANT_VERSION_MAX ||
	    text[0] == '-')
		return lic_error_set(error, LIC_USAGE, "%s: bad version number '%.16s'", args->command, text);
	*out = (uint32_t)value;
	return LIC_OK;
}

const char *cli_store_directory(const struct cli_args *args)
{
	const char *directory = cli_option(args, "store");
	if (directory == NULL)
		directory = getenv("LICENSOR_STORE");
	if (directory == NULL)
		directory = "./var/licensor";
	return directory;
}

lic_status cli_store_options(const struct cli_args *args, struct store_options *options, lic_error *error)
{
	memset(options, 0, sizeof *options);
	options->directory = cli_store_directory(args);
	/* An empty --store (an unset variable in a script) must not mean the default store. */
	if (options->directory[0] == '\0')
		return lic_error_set(error, LIC_USAGE,
				     "the store directory is empty (--store or LICENSOR_STORE)");
	options->kek_file = cli_option(args, "kek-file");
	if (options->kek_file == NULL)
		options->kek_file = getenv("LICENSOR_KEK_FILE");
	options->passphrase_file = cli_option(args, "passphrase-file");
	if (options->passphrase_file == NULL)
		options->passphrase_file = getenv("LICENSOR_PASSPHRASE_FILE");
	options->pkcs11_module = cli_option(args, "pkcs11-module");
	if (options->kek_file && options->passphrase_file)
		return lic_error_set(error, LIC_USAGE,
				     "give either a KEK file or a passphrase file, not both");
	options->clock = cli_clock();
	return LIC_OK;
}

lic_status cli_open_store(const struct cli_args *args, struct store **out, lic_error *error)
{
	struct store_options options;
	lic_status status = cli_store_options(args, &options, error);
	if (status != LIC_OK)
		return status;
	return store_open(&options, out, error);
}

void cli_admin_context(struct store *store, struct admin_context *context)
{
	context->store = store;
	context->clock = cli_clock();
	context->actor = cli_actor();
}

static int64_t test_now;

static int64_t fixed_now(void *context)
{
	(void)context;
	return test_now;
}

static const lic_clock fixed_clock = {.now = fixed_now, .context = NULL};

const lic_clock *cli_clock(void)
{
	const char *text = getenv("LICENSOR_TEST_NOW");
	if (text == NULL || text[0] == '\0')
		return lic_clock_system();
	if (utc_time_parse(text, &test_now, NULL) != LIC_OK) {
		char *end = NULL;
		long long seconds = strtoll(text, &end, 10);
		if (end == text || *end != '\0') {
			fprintf(stderr,
				"licensor: USAGE: LICENSOR_TEST_NOW must be a UTC time or epoch seconds\n");
			exit(2);
		}
		test_now = seconds;
	}
	return &fixed_clock;
}

const char *cli_actor(void)
{
	static char name[128];
	const char *actor = getenv("LICENSOR_ACTOR");
	if (actor == NULL || actor[0] == '\0')
		actor = getenv("SUDO_USER");
	if (actor != NULL && actor[0] != '\0') {
		snprintf(name, sizeof name, "%s", actor);
		/* Cut on a UTF-8 character boundary, not inside a character. */
		size_t length = strlen(name);
		size_t start = length;
		while (start > 0 && ((unsigned char)name[start - 1] & 0xC0) == 0x80)
			start--;
		if (strlen(actor) > length && start > 0) {
			unsigned char lead = (unsigned char)name[start - 1];
			size_t expected = lead < 0x80    ? 1
					  : lead >= 0xF0 ? 4
					  : lead >= 0xE0 ? 3
					  : lead >= 0xC0 ? 2
							 : 1;
			if (length - (start - 1) < expected)
				name[start - 1] = '\0';
		}
		return name;
	}
	struct passwd *entry = getpwuid(geteuid());
	if (entry != NULL)
		snprintf(name, sizeof name, "%s", entry->pw_name);
	else
		snprintf(name, sizeof name, "uid %u", (unsigned)geteuid());
	return name;
}

int cli_exit_status(lic_status status)
{
	return status == LIC_OK ? 0 : status == LIC_USAGE ? 2 : 1;
}

int cli_fail(const lic_error *error)
{
	fprintf(stderr, "licensor: %s: %s\n", lic_status_code(error->status), error->message);
	return cli_exit_status(error->status);
}

void cli_progress(const char *format, ...)
{
	if (!isatty(STDERR_FILENO))
		return;
	va_list args;
	va_start(args, format);
	vfprintf(stderr, format, args);
	va_end(args);
}
