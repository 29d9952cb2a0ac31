/*
 * cmd_simulate.c: `licensor simulate` (DESIGN.md §8): runs the rekey rollout
 * simulator of keyring/simulate.c and writes its CSV, an optional gnuplot PNG
 * and an optional JSON summary. It touches no store: the simulated tenant
 * lives in memory. The simulator sits in keyring/ (beside rollout.c, whose
 * code it drives) so that the unit tests, which link the library, reach it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "keyring/error.h"
#include "keyring/simulate.h"
#include "keyring/utc_time.h"

static const struct cli_option_spec simulate_options[] = {
    {"clients", true, false},        {"legacy-share", true, false}, {"legacy-clear-days", true, false},
    {"days", true, false},           {"rekey-day", true, false},    {"rollout", true, false},
    {"step", true, false},           {"seed", true, false},         {"emergency-rekey-day", true, false},
    {"revoke-old-day", true, false}, {"csv", true, false},          {"plot", true, false},
    {"json", false, false},          {NULL, false, false},
};

static const char simulate_usage[] =
    "simulate [--clients N] [--legacy-share F] [--legacy-clear-days D] [--days D] [--rekey-day D]\n"
    "         [--rollout DURATION] [--step DURATION] [--seed S] [--emergency-rekey-day D]\n"
    "         [--revoke-old-day D] --csv FILE [--plot FILE.png] [--json]";

static lic_status parse_unsigned(const char *name, const char *text, uint64_t max, uint64_t *out,
				 lic_error *error)
{
	char *end = NULL;
	errno = 0;
	unsigned long long value = strtoull(text, &end, 10);
	if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 || value > max)
		return lic_error_set(error, LIC_USAGE, "--%s must be a whole number 0..%llu", name,
				     (unsigned long long)max);
	*out = value;
	return LIC_OK;
}

/* Days, possibly fractional ("7", "7.5"), into seconds. */
static lic_status parse_days(const char *name, const char *text, int64_t *seconds, lic_error *error)
{
	char *end = NULL;
	errno = 0;
	double days = strtod(text, &end);
	if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 || !(days >= 0) ||
	    days > SIMULATION_DAYS_MAX)
		return lic_error_set(error, LIC_USAGE, "--%s must be a number of days 0..%d", name,
				     SIMULATION_DAYS_MAX);
	*seconds = (int64_t)(days * 86400.0 + 0.5);
	return LIC_OK;
}

static lic_status parse_fraction(const char *name, const char *text, double *out, lic_error *error)
{
	char *end = NULL;
	errno = 0;
	double value = strtod(text, &end);
	if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 || !(value >= 0 && value <= 1))
		return lic_error_set(error, LIC_USAGE, "--%s must be a fraction 0..1", name);
	*out = value;
	return LIC_OK;
}

static lic_status parse_parameters(const struct cli_args *args, struct simulation_parameters *p,
				   lic_error *error)
{
	lic_status status = LIC_OK;
	const char *value;
	uint64_t number = 0;
	simulation_parameters_default(p);
	if ((value = cli_option(args, "clients")) != NULL) {
		LIC_TRY(parse_unsigned("clients", value, SIMULATION_CLIENTS_MAX, &number, error));
		p->clients = (uint32_t)number;
	}
	if ((value = cli_option(args, "seed")) != NULL)
		LIC_TRY(parse_unsigned("seed", value, UINT64_MAX, &p->seed, error));
	if ((value = cli_option(args, "legacy-share")) != NULL)
		LIC_TRY(parse_fraction("legacy-share", value, &p->legacy_share, error));
	if ((value = cli_option(args, "legacy-clear-days")) != NULL)
		LIC_TRY(parse_days("legacy-clear-days", value, &p->legacy_clear_s, error));
	if ((value = cli_option(args, "days")) != NULL)
		LIC_TRY(parse_days("days", value, &p->duration_s, error));
	if ((value = cli_option(args, "rekey-day")) != NULL)
		LIC_TRY(parse_days("rekey-day", value, &p->rekey_at_s, error));
	else if (p->rekey_at_s > p->duration_s)
		p->rekey_at_s = p->duration_s / 2; /* a short run: the default rekey halfway */
	if ((value = cli_option(args, "emergency-rekey-day")) != NULL)
		LIC_TRY(parse_days("emergency-rekey-day", value, &p->emergency_rekey_s, error));
	if ((value = cli_option(args, "revoke-old-day")) != NULL)
		LIC_TRY(parse_days("revoke-old-day", value, &p->revoke_old_s, error));
	if ((value = cli_option(args, "rollout")) != NULL)
		LIC_TRY(duration_parse(value, &p->rollout_s, error));
	if ((value = cli_option(args, "step")) != NULL)
		LIC_TRY(duration_parse(value, &p->step_s, error));
	LIC_TRY(simulation_parameters_check(p, error));
out:
	return status;
}

/* Whether `gnuplot` is an executable somewhere on PATH. */
static bool gnuplot_available(void)
{
	const char *path = getenv("PATH");
	if (path == NULL)
		return false;
	char candidate[4096];
	while (*path != '\0') {
		size_t length = strcspn(path, ":");
		if (length > 0 && length + sizeof "/gnuplot" <= sizeof candidate) {
			memcpy(candidate, path, length);
			memcpy(candidate + length, "/gnuplot", sizeof "/gnuplot");
			if (access(candidate, X_OK) == 0)
				return true;
		}
		path += length;
		if (*path == ':')
			path++;
	}
	return false;
}

/* A gnuplot single-quoted string: '' stands for one quote. */
static void gnuplot_string(FILE *out, const char *text)
{
	fputc('\'', out);
	for (; *text != '\0'; text++) {
		if (*text == '\'')
			fputc('\'', out);
		fputc(*text, out);
	}
	fputc('\'', out);
}

static lic_status write_plot(const char *csv_path, const char *png_path, lic_error *error)
{
	lic_status status = LIC_OK;
	if (strpbrk(csv_path, "\n\r") != NULL || strpbrk(png_path, "\n\r") != NULL)
		LIC_FAIL(error, LIC_USAGE, "--csv and --plot file names must not contain line breaks");
	if (!gnuplot_available())
		LIC_FAIL(
		    error, LIC_IO,
		    "gnuplot is not installed (apt-get install gnuplot-nox): cannot write the plot %.200s",
		    png_path);
	FILE *gnuplot = popen("gnuplot", "w");
	if (gnuplot == NULL)
		LIC_FAIL(error, LIC_IO, "cannot run gnuplot: %s", strerror(errno));
	fputs("set terminal pngcairo size 1200,900 noenhanced\nset output ", gnuplot);
	gnuplot_string(gnuplot, png_path);
	fputs("\nset datafile separator ','\nset multiplot layout 2,1\nset grid\nset key outside right\n"
	      "set xlabel 'day'\nset ylabel 'share of new content'\nset yrange [0:1.05]\n"
	      "plot for [v=1:3] ",
	      gnuplot);
	gnuplot_string(gnuplot, csv_path);
	fputs(" every ::1 using 2:(column(6+v)) with lines title sprintf('published v%d', v)\n"
	      "set ylabel 'per step'\nset yrange [0:*]\nplot for [v=1:3] ",
	      gnuplot);
	gnuplot_string(gnuplot, csv_path);
	fputs(" every ::1 using 2:(column(13+v)) with lines title sprintf('licenses v%d', v), ", gnuplot);
	gnuplot_string(gnuplot, csv_path);
	fputs(" every ::1 using 2:(column(18)+column(19)+column(20)) with lines lw 2 title 'failures'\n"
	      "unset multiplot\n",
	      gnuplot);
	int result = pclose(gnuplot);
	if (result == -1 || !WIFEXITED(result) || WEXITSTATUS(result) != 0)
		LIC_FAIL(error, LIC_IO, "gnuplot failed to write %.200s", png_path);
out:
	return status;
}

static void show_progress(uint64_t done, uint64_t total, int *shown)
{
	int percent = (int)(done * 100 / total);
	if (percent == *shown)
		return;
	*shown = percent;
	char bar[41];
	int filled = percent * 40 / 100;
	memset(bar, '#', (size_t)filled);
	memset(bar + filled, ' ', (size_t)(40 - filled));
	bar[40] = '\0';
	cli_progress("\rsimulate [%s] %3d%%%s", bar, percent, done == total ? "\n" : "");
}

int command_simulate(int argc, char **argv)
{
	struct cli_args args;
	lic_error error = {0};
	lic_status status = LIC_OK;
	struct simulation *simulation = NULL;
	struct simulation_parameters parameters;
	FILE *csv = NULL;
	LIC_TRY(cli_parse(argc, argv, "simulate", simulate_options, &args, &error));
	if (args.help) {
		printf("usage: licensor %s\n"
		       "Simulates a rekey rollout over a population of clients, in memory, with the\n"
		       "engine's own rollout and lifecycle code (no store is touched).\n"
		       "  --clients N             publishing clients (default 10000, at most 1000000)\n"
		       "  --legacy-share F        share of legacy clients (default 0.05): they keep the key\n"
		       "                          they cached before a rekey until --legacy-clear-days after "
		       "it\n"
		       "  --legacy-clear-days D   default 30\n"
		       "  --days D                simulated days (default 60, at most 3650)\n"
		       "  --rekey-day D           when the routine rekey runs (default 7, or halfway if "
		       "--days < 7)\n"
		       "  --rollout DURATION      its rollout (default 14d)\n"
		       "  --step DURATION         time step (default 6h; at most 100000 steps)\n"
		       "  --seed S                random seed (default 1): same seed, same CSV\n"
		       "  --emergency-rekey-day D rekey --immediate --reason compromised then\n"
		       "  --revoke-old-day D      revoke version 1 then\n"
		       "  --csv FILE              per-step CSV (columns: docs/simulate.md)\n"
		       "  --plot FILE.png         a plot through gnuplot\n"
		       "  --json                  print a summary object on stdout\n",
		       simulate_usage);
		return 0;
	}
	LIC_TRY(cli_expect_positionals(&args, 0, simulate_usage, &error));
	const char *csv_path = cli_option(&args, "csv");
	const char *plot_path = cli_option(&args, "plot");
	if (csv_path == NULL || csv_path[0] == '\0')
		LIC_FAIL(&error, LIC_USAGE, "--csv FILE is required");
	LIC_TRY(parse_parameters(&args, &parameters, &error));
	if (plot_path != NULL && !gnuplot_available())
		LIC_FAIL(&error, LIC_IO,
			 "gnuplot is not installed (apt-get install gnuplot-nox): cannot write %.200s",
			 plot_path);
	LIC_TRY(simulation_new(&parameters, &simulation, &error));
	csv = fopen(csv_path, "w");
	if (csv == NULL)
		LIC_FAIL(&error, LIC_IO, "cannot write %.200s: %s", csv_path, strerror(errno));
	simulation_write_csv_header(csv);
	uint64_t steps = simulation_step_count(simulation);
	int shown = -1;
	for (uint64_t i = 0; i < steps; i++) {
		const struct simulation_step_result *result = NULL;
		LIC_TRY(simulation_step(simulation, &result, &error));
		simulation_write_csv_row(csv, result);
		show_progress(i + 1, steps, &shown);
	}
	int failed = ferror(csv);
	int closed = fclose(csv);
	csv = NULL;
	if (failed || closed != 0)
		LIC_FAIL(&error, LIC_IO, "cannot write %.200s", csv_path);
	if (plot_path != NULL)
		LIC_TRY(write_plot(csv_path, plot_path, &error));
	if (cli_flag(&args, "json"))
		simulation_write_summary_json(stdout, simulation);
	else
		printf("simulated %llu steps of %u clients: %s%s%s\n", (unsigned long long)steps,
		       parameters.clients, csv_path, plot_path ? ", " : "", plot_path ? plot_path : "");
out:
	if (csv != NULL)
		fclose(csv);
	simulation_free(simulation);
	if (status != LIC_OK)
		return cli_fail(&error);
	return 0;
}
