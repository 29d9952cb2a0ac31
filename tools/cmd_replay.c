/*
 * cmd_replay.c: `licensor replay FILE` (DESIGN.md §6, §7b): recorded
 * AcquireLicense bodies pushed through the engine's queues and workers, the
 * ones `licensor serve` uses, with no socket in the way; prints one JSON
 * object with what came back and how fast.
 *
 * The store is opened read-only (lic_keyring_open): a replay issues licenses
 * and changes no key. The file format is docs/formats.md, "Replay files";
 * the loop is io/replay.c. Exit 0 once every record was submitted and
 * answered, whatever the answers said (recorded traffic holds refusals too:
 * they are counted); 1 when the run stopped (a bad record, a read error),
 * after every body already submitted was answered.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "io/replay.h"
#include "keyring/error.h"
#include "keyring/json_output.h"

#define WORKERS_MAX 1024
#define REPEAT_MAX 1000000
#define IN_FLIGHT_PER_WORKER 128 /* two batches of the engine's default 64 per worker */
#define IN_FLIGHT_MAX 65536
#define QUEUE_DEFAULT 8192 /* the engine's own default */
#define QUEUE_MAX 1048576

static const struct cli_option_spec replay_options[] = {
    {"workers", true, false}, {"repeat", true, false}, {"in-flight", true, false},
    {"queue", true, false},   {NULL, false, false},
};

static const char replay_usage[] = "replay FILE [--workers N] [--repeat K] [--in-flight N] [--queue N]";

struct replay_settings {
	const char *path;
	unsigned workers;
	unsigned repeat;
	size_t in_flight;
	size_t queue;
};

static lic_status parse_count(const struct cli_args *args, const char *option, unsigned long maximum,
			      unsigned long *out, lic_error *error)
{
	const char *text = cli_option(args, option);
	if (text == NULL)
		return LIC_OK;
	char *end = NULL;
	errno = 0;
	unsigned long value = strtoul(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || value == 0 || value > maximum)
		return lic_error_set(error, LIC_USAGE, "replay: --%s must be a whole number from 1 to %lu",
				     option, maximum);
	*out = value;
	return LIC_OK;
}

static lic_status parse_settings(const struct cli_args *args, struct replay_settings *settings,
				 lic_error *error)
{
	lic_status status = LIC_OK;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned long workers = cores > 0 ? (unsigned long)cores : 1, repeat = 1, in_flight = 0,
		      queue = QUEUE_DEFAULT;
	LIC_TRY(cli_expect_positionals(args, 1, replay_usage, error));
	LIC_TRY(parse_count(args, "workers", WORKERS_MAX, &workers, error));
	LIC_TRY(parse_count(args, "repeat", REPEAT_MAX, &repeat, error));
	LIC_TRY(parse_count(args, "in-flight", IN_FLIGHT_MAX, &in_flight, error));
	LIC_TRY(parse_count(args, "queue", QUEUE_MAX, &queue, error));
	if (in_flight == 0)
		in_flight = workers * IN_FLIGHT_PER_WORKER;
	/* Unless --queue says otherwise, every body in flight fits in the queue,
	 * so that OVERLOADED only happens when asked for. */
	if (cli_option(args, "queue") == NULL && queue < in_flight)
		queue = in_flight;
	*settings = (struct replay_settings){.path = args->positionals[0],
					     .workers = (unsigned)workers,
					     .repeat = (unsigned)repeat,
					     .in_flight = in_flight,
					     .queue = queue};
out:
	return status;
}

/* ---- progress, on a terminal only ---- */

struct progress_line {
	bool shown;
};

static void show_progress(void *context, uint64_t answered, double seconds)
{
	struct progress_line *line = context;
	fprintf(stderr, "\rreplay: %llu requests answered in %.0f s (%.0f requests/s)",
		(unsigned long long)answered, seconds, seconds > 0 ? (double)answered / seconds : 0.0);
	line->shown = true;
}

/* ---- output ---- */

static double per_second(uint64_t count, double seconds)
{
	return seconds > 0 ? (double)count / seconds : 0.0;
}

static void print_json(const struct replay_settings *settings, const struct replay_report *report)
{
	const lic_engine_stats *engine = &report->engine;
	printf("{\"file\":");
	json_string(stdout, settings->path);
	printf(",\"records\":%llu,\"repeat\":%u,\"workers\":%u,\"in_flight\":%zu,\"queue\":%zu,",
	       (unsigned long long)report->records_per_pass, settings->repeat, settings->workers,
	       settings->in_flight, settings->queue);
	printf("\"requests\":%llu,\"licenses_issued\":%llu,\"item_errors\":%llu,\"requests_refused\":%llu,",
	       (unsigned long long)report->requests_answered, (unsigned long long)engine->licenses_issued,
	       (unsigned long long)engine->errors, (unsigned long long)engine->requests_refused);
	printf("\"responses_by_status\":{");
	const char *separator = "";
	for (size_t status = 0; status < REPLAY_HTTP_STATUS_LIMIT; status++) {
		if (report->responses_by_status[status] == 0)
			continue;
		printf("%s\"%zu\":%llu", separator, status,
		       (unsigned long long)report->responses_by_status[status]);
		separator = ",";
	}
	printf("},\"errors_by_code\":{");
	separator = "";
	for (size_t code = 0; code < LIC_STATUS_COUNT; code++) {
		if (engine->errors_by_status[code] == 0)
			continue;
		printf("%s\"%s\":%llu", separator, lic_status_code((lic_status)code),
		       (unsigned long long)engine->errors_by_status[code]);
		separator = ",";
	}
	double mean_batch =
	    engine->batches > 0 ? (double)engine->batched_jobs / (double)engine->batches : 0.0;
	printf("},\"seconds\":%.6f,\"licenses_per_s\":%.1f,\"requests_per_s\":%.1f,", report->seconds,
	       per_second(engine->licenses_issued, report->seconds),
	       per_second(report->requests_answered, report->seconds));
	printf("\"pl_cache_hits\":%llu,\"pl_cache_misses\":%llu,\"rac_cache_hits\":%llu,\"rac_cache_misses\":"
	       "%llu,"
	       "\"private_key_operations\":%llu,\"batches\":%llu,\"mean_batch_size\":%.2f,"
	       "\"overloaded_retries\":%llu,\"max_in_flight_seen\":%llu}\n",
	       (unsigned long long)engine->pl_cache_hits, (unsigned long long)engine->pl_cache_misses,
	       (unsigned long long)engine->rac_cache_hits, (unsigned long long)engine->rac_cache_misses,
	       (unsigned long long)engine->private_key_operations, (unsigned long long)engine->batches,
	       mean_batch, (unsigned long long)report->overloaded_retries,
	       (unsigned long long)report->max_in_flight_seen);
	fflush(stdout);
}

/* ---- the command ---- */

static lic_status run_replay(const struct cli_args *args, const struct replay_settings *settings,
			     struct replay_report *report, lic_error *error)
{
	lic_status status = LIC_OK;
	lic_keyring *keyring = NULL;
	lic_engine *engine = NULL;
	struct store_options store_options;
	struct progress_line progress = {0};
	LIC_TRY(cli_store_options(args, &store_options, error));
	lic_keyring_options keyring_options = {.store_dir = store_options.directory,
					       .kek_file = store_options.kek_file,
					       .passphrase_file = store_options.passphrase_file,
					       .clock = cli_clock()};
	LIC_TRY(lic_keyring_open(&keyring_options, &keyring, error));
	lic_engine_options engine_options = {
	    .keyring = keyring, .workers = settings->workers, .queue_max = settings->queue};
	LIC_TRY(lic_engine_new(&engine_options, &engine, error));
	struct replay_options options = {.path = settings->path,
					 .engine = engine,
					 .repeat = settings->repeat,
					 .max_in_flight = settings->in_flight,
					 .progress = isatty(STDERR_FILENO) ? show_progress : NULL,
					 .progress_context = &progress};
	status = replay_run(&options, report, error);
	if (progress.shown)
		fputc('\n', stderr);
out:
	lic_engine_free(engine);
	lic_keyring_close(keyring);
	return status;
}

int command_replay(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	struct replay_settings settings;
	struct replay_report *report = NULL;
	int exit_status = 0;
	if (cli_parse(argc, argv, "replay", replay_options, &args, &error) != LIC_OK)
		return cli_fail(&error);
	if (args.help) {
		printf("usage: licensor %s\n"
		       "Feeds recorded AcquireLicense bodies from FILE through the engine's queues and\n"
		       "workers, as `licensor serve` would without the sockets, and prints one JSON object:\n"
		       "requests, licenses_issued, item_errors, responses_by_status, seconds,\n"
		       "licenses_per_s, requests_per_s, pl_cache_hits/misses, private_key_operations, ...\n"
		       "FILE holds records: the body's length in decimal, '\\n', the body, '\\n'\n"
		       "(docs/formats.md, \"Replay files\"; README.md shows how to write one).\n"
		       "  --workers N    engine workers (default: one per online core)\n"
		       "  --repeat K     replay the file K times (the PL cache is warm after the first)\n"
		       "  --in-flight N  bodies submitted and not yet answered, at most (default: 128 per\n"
		       "                 worker)\n"
		       "  --queue N      the engine's queue bound (default: 8192, or --in-flight if more);\n"
		       "                 below --in-flight, full-queue refusals are held and retried\n"
		       "The store (--store or LICENSOR_STORE) is opened read-only. A bad record stops the\n"
		       "run with MALFORMED, after what came before it was answered; exit 1.\n",
		       replay_usage);
		return 0;
	}
	if (parse_settings(&args, &settings, &error) != LIC_OK)
		return cli_fail(&error);
	report = calloc(1, sizeof *report);
	if (report == NULL) {
		lic_error_set(&error, LIC_INTERNAL, "out of memory");
		return cli_fail(&error);
	}
	if (run_replay(&args, &settings, report, &error) != LIC_OK)
		exit_status = cli_fail(&error);
	else
		print_json(&settings, report);
	free(report);
	return exit_status;
}
