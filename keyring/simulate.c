/*
 * simulate.c: the rekey rollout simulator (see simulate.h for the contract,
 * docs/simulate.md for the model).
 *
 * The model, per step k at time t_k:
 *   1. events due by t_k run through the real lifecycle code: the rekey
 *      (lifecycle_rekey with the --rollout duration), the emergency rekey
 *      (--immediate --reason compromised), the revoke of version 1
 *      (lifecycle_revoke, confirmed); before each rekey every legacy client
 *      that holds no cache caches the version the engine gives it then, and
 *      keeps publishing to it until legacy_clear_s after that rekey;
 *   2. each client publishes Poisson(rate × step) items; a client not holding
 *      a cache asks rollout_select_publishing_version(tenant, client, t_k);
 *   3. clients × REQUESTS_PER_CLIENT_PER_DAY × step license requests pick an
 *      item uniformly among all content published in earlier steps, and are
 *      answered as core/engine.c answers: the content version's effective
 *      state (tenant_effective_state) must be active or retained, and a
 *      signing version must exist.
 * Invariant (tested): Σ published over steps == Σ content by version, and
 * every request is counted once, as a license or as one failure.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "simulate.h"
#include "tenant.h"
#include "utc_time.h"

#define DAY 86400LL
#define CLIENT_ID_LENGTH 20 /* "client-%06u" and a NUL, for any uint32_t */

struct simulated_client {
	char id[CLIENT_ID_LENGTH];
	double rate_per_step; /* mean items per step */
	bool legacy;
	uint32_t cached_version; /* 0: asks the engine at each publish */
	int64_t cache_until;
	uint32_t published; /* in the last step */
};

struct simulation {
	struct simulation_parameters parameters;
	struct tenant *tenant;
	struct simulated_client *clients;
	uint64_t state[4]; /* xoshiro256** */
	uint64_t step_count, next_step;
	bool rekeyed, emergency_done, revoke_done;
	uint64_t requests_per_step;
	struct simulation_step_result result;
	/* Totals for the summary. */
	uint64_t total_published[SIMULATION_VERSIONS_MAX + 1];
	uint64_t total_licenses[SIMULATION_VERSIONS_MAX + 1];
	uint64_t total_licenses_compromised;
	uint64_t total_publish_failures, total_revoked, total_destroyed, total_no_signing;
	int64_t new_content_99_at; /* first step time with ≥ 99 % on a re-keyed version; -1 none */
};

/* Publishing classes (percent of clients, items per day): mean 1.35 items/day. */
static const struct {
	uint64_t percent;
	double items_per_day;
} publisher_classes[] = {{50, 0.2}, {30, 1.0}, {15, 3.0}, {5, 10.0}};

/* ---- the random stream: splitmix64 seeds xoshiro256** ---- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t next_random(struct simulation *simulation)
{
	uint64_t *s = simulation->state;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Uniform in [0, 1), 53 bits. */
static double next_uniform(struct simulation *simulation)
{
	return (double)(next_random(simulation) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, bound), bound > 0 (Lemire's multiply, rejection for exactness). */
static uint64_t next_below(struct simulation *simulation, uint64_t bound)
{
	uint64_t threshold = -bound % bound;
	for (;;) {
		unsigned __int128 product = (unsigned __int128)next_random(simulation) * bound;
		if ((uint64_t)product >= threshold)
			return (uint64_t)(product >> 64);
	}
}

/* e^-x for 0 ≤ x ≤ 16 without libm (the library links none): Taylor series
 * of e^-(x/1024), then squared ten times. Relative error ~1e-13, and the same
 * bits on every run, which is what determinism needs. */
static double exp_negative(double x)
{
	double y = -x / 1024, term = 1, sum = 1;
	for (int n = 1; n < 12; n++) {
		term *= y / n;
		sum += term;
	}
	for (int i = 0; i < 10; i++)
		sum *= sum;
	return sum;
}

/* Poisson(mean) by Knuth's product of uniforms, in chunks of mean ≤ 16 so exp() never underflows. */
static uint32_t next_poisson(struct simulation *simulation, double mean)
{
	uint32_t count = 0;
	while (mean > 0) {
		double chunk = mean > 16 ? 16 : mean;
		mean -= chunk;
		double limit = exp_negative(chunk), product = next_uniform(simulation);
		while (product > limit) {
			count++;
			product *= next_uniform(simulation);
		}
	}
	return count;
}

/* ---- parameters ---- */

void simulation_parameters_default(struct simulation_parameters *parameters)
{
	*parameters = (struct simulation_parameters){
	    .clients = 10000,
	    .legacy_share = 0.05,
	    .legacy_clear_s = 30 * DAY,
	    .duration_s = 60 * DAY,
	    .rekey_at_s = 7 * DAY,
	    .rollout_s = 14 * DAY,
	    .step_s = 6 * 3600,
	    .seed = 1,
	    .emergency_rekey_s = -1,
	    .revoke_old_s = -1,
	};
}

lic_status simulation_parameters_check(const struct simulation_parameters *p, lic_error *error)
{
	if (p->clients == 0 || p->clients > SIMULATION_CLIENTS_MAX)
		return lic_error_set(error, LIC_USAGE, "--clients must be 1..%u", SIMULATION_CLIENTS_MAX);
	if (!(p->legacy_share >= 0 && p->legacy_share <= 1))
		return lic_error_set(error, LIC_USAGE, "--legacy-share must be a fraction 0..1");
	if (p->duration_s < DAY || p->duration_s > SIMULATION_DAYS_MAX * DAY)
		return lic_error_set(error, LIC_USAGE, "--days must be 1..%d", SIMULATION_DAYS_MAX);
	if (p->legacy_clear_s < 0 || p->legacy_clear_s > SIMULATION_DAYS_MAX * DAY)
		return lic_error_set(error, LIC_USAGE, "--legacy-clear-days must be 0..%d",
				     SIMULATION_DAYS_MAX);
	if (p->step_s < 60 || p->step_s > p->duration_s)
		return lic_error_set(error, LIC_USAGE, "--step must be at least 1m and at most --days");
	if (p->rollout_s < 0 || p->rollout_s > DURATION_MAX_SECONDS)
		return lic_error_set(error, LIC_USAGE, "--rollout must be 0s..3650d");
	if (p->rekey_at_s < 0 || p->rekey_at_s > p->duration_s)
		return lic_error_set(error, LIC_USAGE, "--rekey-day must be within --days");
	if (p->emergency_rekey_s != -1 &&
	    (p->emergency_rekey_s < p->rekey_at_s || p->emergency_rekey_s > p->duration_s))
		return lic_error_set(error, LIC_USAGE,
				     "--emergency-rekey-day must be between --rekey-day and --days");
	if (p->revoke_old_s != -1 && (p->revoke_old_s < p->rekey_at_s || p->revoke_old_s > p->duration_s))
		return lic_error_set(error, LIC_USAGE,
				     "--revoke-old-day must be between --rekey-day and --days");
	int64_t steps = (p->duration_s + p->step_s - 1) / p->step_s;
	if (steps > SIMULATION_STEPS_MAX)
		return lic_error_set(error, LIC_USAGE,
				     "%lld steps: at most %d (raise --step or lower --days)",
				     (long long)steps, SIMULATION_STEPS_MAX);
	if ((int64_t)p->clients * steps > SIMULATION_CLIENT_STEPS_MAX ||
	    (int64_t)p->clients * (p->duration_s / DAY) > SIMULATION_CLIENT_DAYS_MAX)
		return lic_error_set(
		    error, LIC_USAGE,
		    "too much work: clients × steps must be ≤ %lld and clients × days ≤ %lld",
		    SIMULATION_CLIENT_STEPS_MAX, SIMULATION_CLIENT_DAYS_MAX);
	return LIC_OK;
}

/* ---- the tenant ---- */

/* A version with a stand-in SPKI (never parsed) and no private key. */
static lic_status fake_version(uint32_t serial, struct key_version *version, lic_error *error)
{
	memset(version, 0, sizeof *version);
	char text[64];
	int length = snprintf(text, sizeof text, "simulated public key %u", serial);
	version->public_key_der = malloc((size_t)length);
	if (version->public_key_der == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	memcpy(version->public_key_der, text, (size_t)length);
	version->public_key_length = (size_t)length;
	key_id_of_spki(version->public_key_der, version->public_key_length, version->key_id);
	version->algorithm = KEY_ALGORITHM_RSA_2048;
	version->origin = KEY_ORIGIN_MANAGED;
	return LIC_OK;
}

static lic_status rekey(struct simulation *simulation, int64_t now, int64_t rollout_s, bool emergency,
			lic_error *error)
{
	lic_status status = LIC_OK;
	struct key_version version;
	struct rekey_request request = {.algorithm = KEY_ALGORITHM_RSA_2048,
					.rollout_seconds = emergency ? 0 : rollout_s,
					.immediate = emergency || rollout_s == 0,
					.compromised = emergency};
	/* Legacy clients cache what the engine gives them just before the rekey. */
	for (uint32_t i = 0; i < simulation->parameters.clients; i++) {
		struct simulated_client *client = &simulation->clients[i];
		if (!client->legacy || (client->cached_version != 0 && client->cache_until > now))
			continue;
		const struct key_version *cached =
		    rollout_select_publishing_version(simulation->tenant, client->id, now);
		client->cached_version = cached ? cached->number : 0;
		client->cache_until = now + simulation->parameters.legacy_clear_s;
	}
	LIC_TRY(fake_version((uint32_t)simulation->tenant->version_count + 1, &version, error));
	status = lifecycle_rekey(simulation->tenant, &request, &version, now, error);
	if (status != LIC_OK)
		free(version.public_key_der);
out:
	return status;
}

static lic_status run_events(struct simulation *simulation, int64_t now, lic_error *error)
{
	lic_status status = LIC_OK;
	const struct simulation_parameters *p = &simulation->parameters;
	int64_t elapsed = now - SIMULATION_EPOCH;
	if (!simulation->rekeyed && p->rekey_at_s <= elapsed) {
		LIC_TRY(rekey(simulation, SIMULATION_EPOCH + p->rekey_at_s, p->rollout_s, false, error));
		simulation->rekeyed = true;
	}
	if (!simulation->emergency_done && p->emergency_rekey_s != -1 && p->emergency_rekey_s <= elapsed) {
		LIC_TRY(rekey(simulation, SIMULATION_EPOCH + p->emergency_rekey_s, 0, true, error));
		simulation->emergency_done = true;
	}
	if (!simulation->revoke_done && p->revoke_old_s != -1 && p->revoke_old_s <= elapsed) {
		LIC_TRY(
		    lifecycle_revoke(simulation->tenant, 1, true, SIMULATION_EPOCH + p->revoke_old_s, error));
		simulation->revoke_done = true;
	}
	/* What a writer does whenever it touches the tenant: record a finished rollout. */
	lifecycle_settle(simulation->tenant, now);
out:
	return status;
}

lic_status simulation_new(const struct simulation_parameters *parameters, struct simulation **out,
			  lic_error *error)
{
	lic_status status = LIC_OK;
	struct simulation *simulation = NULL;
	struct key_version version;
	memset(&version, 0, sizeof version);
	LIC_TRY(simulation_parameters_check(parameters, error));
	simulation = calloc(1, sizeof *simulation);
	if (simulation == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	simulation->parameters = *parameters;
	simulation->new_content_99_at = -1;
	simulation->clients = calloc(parameters->clients, sizeof *simulation->clients);
	simulation->tenant = tenant_new(SIMULATION_TENANT, SIMULATION_EPOCH - DAY);
	if (simulation->clients == NULL || simulation->tenant == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	LIC_TRY(fake_version(1, &version, error));
	version.state = LIC_KEY_STATE_ACTIVE;
	version.state_before_revoke = LIC_KEY_STATE_ACTIVE;
	version.created_at = version.activated_at = SIMULATION_EPOCH - DAY;
	LIC_TRY(tenant_append_version(simulation->tenant, &version, error));
	version.public_key_der = NULL; /* the tenant owns it now */

	uint64_t seed = parameters->seed;
	for (int i = 0; i < 4; i++)
		simulation->state[i] = splitmix64(&seed);
	double step_days = (double)parameters->step_s / (double)DAY;
	for (uint32_t i = 0; i < parameters->clients; i++) {
		struct simulated_client *client = &simulation->clients[i];
		snprintf(client->id, sizeof client->id, "client-%06u", i);
		/* A publishing class: many occasional publishers, a few heavy ones. */
		uint64_t draw = next_below(simulation, 100);
		size_t class = 0;
		while (draw >= publisher_classes[class].percent) {
			draw -= publisher_classes[class].percent;
			class ++;
		}
		client->rate_per_step = publisher_classes[class].items_per_day * step_days;
		client->legacy = next_uniform(simulation) < parameters->legacy_share;
	}
	simulation->step_count =
	    (uint64_t)((parameters->duration_s + parameters->step_s - 1) / parameters->step_s);
	simulation->requests_per_step = (uint64_t)parameters->clients *
					SIMULATION_REQUESTS_PER_CLIENT_PER_DAY *
					(uint64_t)parameters->step_s / DAY;
	*out = simulation;
	simulation = NULL;
out:
	free(version.public_key_der);
	simulation_free(simulation);
	return status;
}

void simulation_free(struct simulation *simulation)
{
	if (simulation == NULL)
		return;
	tenant_free(simulation->tenant);
	free(simulation->clients);
	free(simulation);
}

uint64_t simulation_step_count(const struct simulation *simulation)
{
	return simulation->step_count;
}

static void publish(struct simulation *simulation, int64_t now, struct simulation_step_result *result)
{
	for (uint32_t i = 0; i < simulation->parameters.clients; i++) {
		struct simulated_client *client = &simulation->clients[i];
		client->published = next_poisson(simulation, client->rate_per_step);
		if (client->published == 0)
			continue;
		if (client->cached_version != 0 && client->cache_until <= now)
			client->cached_version = 0; /* state cleared: back to asking the engine */
		uint32_t number = client->cached_version;
		if (number == 0) {
			const struct key_version *version =
			    rollout_select_publishing_version(simulation->tenant, client->id, now);
			number = version ? version->number : 0;
		}
		if (number == 0 || number > SIMULATION_VERSIONS_MAX)
			result->publish_failures += client->published;
		else
			result->published[number] += client->published;
	}
}

static void serve_requests(struct simulation *simulation, int64_t now, struct simulation_step_result *result)
{
	uint64_t content_total = 0;
	for (uint32_t v = 1; v <= SIMULATION_VERSIONS_MAX; v++)
		content_total += result->content[v];
	if (content_total == 0)
		return;
	/* What engine.c checks, in its order: the content's version, then a signing version. */
	bool usable[SIMULATION_VERSIONS_MAX + 1] = {false};
	lic_key_state states[SIMULATION_VERSIONS_MAX + 1] = {0};
	bool compromised[SIMULATION_VERSIONS_MAX + 1] = {false};
	for (uint32_t v = 1; v <= result->version_count && v <= SIMULATION_VERSIONS_MAX; v++) {
		const struct key_version *version = tenant_version(simulation->tenant, v);
		states[v] = tenant_effective_state(simulation->tenant, version, now);
		usable[v] = states[v] == LIC_KEY_STATE_ACTIVE || states[v] == LIC_KEY_STATE_RETAINED;
		compromised[v] = version->compromised;
	}
	bool can_sign = tenant_signing_version(simulation->tenant, now) != NULL;
	for (uint64_t r = 0; r < simulation->requests_per_step; r++) {
		uint64_t pick = next_below(simulation, content_total);
		uint32_t v = 1;
		while (pick >= result->content[v]) {
			pick -= result->content[v];
			v++;
		}
		if (states[v] == LIC_KEY_STATE_DESTROYED) {
			result->failures_destroyed++;
		} else if (!usable[v]) {
			result->failures_revoked++;
		} else if (!can_sign) {
			result->failures_no_signing++;
		} else {
			result->licenses[v]++;
			result->licenses_compromised += compromised[v];
		}
	}
}

lic_status simulation_step(struct simulation *simulation, const struct simulation_step_result **out,
			   lic_error *error)
{
	lic_status status = LIC_OK;
	struct simulation_step_result *result = &simulation->result;
	if (simulation->next_step >= simulation->step_count)
		LIC_FAIL(error, LIC_STATE, "the simulation has run all its %llu steps",
			 (unsigned long long)simulation->step_count);
	int64_t now = SIMULATION_EPOCH + (int64_t)simulation->next_step * simulation->parameters.step_s;
	LIC_TRY(run_events(simulation, now, error));

	/* Content of earlier steps carries over; everything else starts at zero. */
	uint64_t content[SIMULATION_VERSIONS_MAX + 1];
	memcpy(content, result->content, sizeof content);
	memset(result, 0, sizeof *result);
	memcpy(result->content, content, sizeof content);
	result->step = simulation->next_step;
	result->now = now;
	result->version_count = (uint32_t)simulation->tenant->version_count;
	result->threshold = rollout_threshold(&simulation->tenant->rollout, now);

	serve_requests(simulation, now, result);
	publish(simulation, now, result);

	uint64_t published = 0, rekeyed = 0;
	for (uint32_t v = 1; v <= SIMULATION_VERSIONS_MAX; v++) {
		result->content[v] += result->published[v];
		simulation->total_published[v] += result->published[v];
		simulation->total_licenses[v] += result->licenses[v];
		published += result->published[v];
		if (v > 1)
			rekeyed += result->published[v];
	}
	simulation->total_licenses_compromised += result->licenses_compromised;
	simulation->total_publish_failures += result->publish_failures;
	simulation->total_revoked += result->failures_revoked;
	simulation->total_destroyed += result->failures_destroyed;
	simulation->total_no_signing += result->failures_no_signing;
	if (simulation->new_content_99_at < 0 && simulation->rekeyed && published > 0 &&
	    rekeyed * 100 >= published * 99)
		simulation->new_content_99_at = now;
	simulation->next_step++;
	*out = result;
out:
	return status;
}

const char *simulation_client_id(const struct simulation *simulation, uint32_t index)
{
	return simulation->clients[index].id;
}

bool simulation_client_is_legacy(const struct simulation *simulation, uint32_t index)
{
	return simulation->clients[index].legacy;
}

uint32_t simulation_client_published(const struct simulation *simulation, uint32_t index)
{
	return simulation->clients[index].published;
}

const struct tenant *simulation_tenant(const struct simulation *simulation)
{
	return simulation->tenant;
}

/* ---- output ---- */

void simulation_write_csv_header(FILE *out)
{
	fputs("time,day,rollout_threshold,published_v1,published_v2,published_v3,share_v1,share_v2,share_v3,"
	      "publish_failures,content_v1,content_v2,content_v3,licenses_v1,licenses_v2,licenses_v3,"
	      "licenses_compromised,failures_key_revoked,failures_key_destroyed,failures_no_signing_key\n",
	      out);
}

void simulation_write_csv_row(FILE *out, const struct simulation_step_result *r)
{
	char time[UTC_TIME_LENGTH];
	utc_time_format(r->now, time);
	uint64_t published = r->published[1] + r->published[2] + r->published[3];
	fprintf(out, "%s,%.4f,%u", time, (double)(r->now - SIMULATION_EPOCH) / DAY, r->threshold);
	for (int v = 1; v <= SIMULATION_VERSIONS_MAX; v++)
		fprintf(out, ",%llu", (unsigned long long)r->published[v]);
	for (int v = 1; v <= SIMULATION_VERSIONS_MAX; v++)
		fprintf(out, ",%.6f", published ? (double)r->published[v] / (double)published : 0.0);
	fprintf(out, ",%llu", (unsigned long long)r->publish_failures);
	for (int v = 1; v <= SIMULATION_VERSIONS_MAX; v++)
		fprintf(out, ",%llu", (unsigned long long)r->content[v]);
	for (int v = 1; v <= SIMULATION_VERSIONS_MAX; v++)
		fprintf(out, ",%llu", (unsigned long long)r->licenses[v]);
	fprintf(out, ",%llu,%llu,%llu,%llu\n", (unsigned long long)r->licenses_compromised,
		(unsigned long long)r->failures_revoked, (unsigned long long)r->failures_destroyed,
		(unsigned long long)r->failures_no_signing);
}

void simulation_write_summary_json(FILE *out, const struct simulation *s)
{
	const struct simulation_parameters *p = &s->parameters;
	uint32_t legacy = 0;
	for (uint32_t i = 0; i < p->clients; i++)
		legacy += s->clients[i].legacy;
	fprintf(out, "{\"clients\": %u, \"legacy_clients\": %u, \"seed\": %llu, \"steps\": %llu, ",
		p->clients, legacy, (unsigned long long)p->seed, (unsigned long long)s->next_step);
	fprintf(out, "\"step_s\": %lld, \"rekey_day\": %.4f, \"rollout_s\": %lld, ", (long long)p->step_s,
		(double)p->rekey_at_s / DAY, (long long)p->rollout_s);
	if (s->new_content_99_at < 0)
		fputs("\"days_to_99pct_new_content\": null, ", out);
	else
		fprintf(out, "\"days_to_99pct_new_content\": %.4f, ",
			(double)(s->new_content_99_at - SIMULATION_EPOCH - p->rekey_at_s) / DAY);
	const char *names[] = {"published_by_version", "licenses_by_version"};
	const uint64_t *values[] = {s->total_published, s->total_licenses};
	for (int k = 0; k < 2; k++) {
		fprintf(out, "\"%s\": {", names[k]);
		for (uint32_t v = 1; v <= s->tenant->version_count && v <= SIMULATION_VERSIONS_MAX; v++)
			fprintf(out, "%s\"%u\": %llu", v > 1 ? ", " : "", v,
				(unsigned long long)values[k][v]);
		fputs("}, ", out);
	}
	uint64_t failures =
	    s->total_publish_failures + s->total_revoked + s->total_destroyed + s->total_no_signing;
	fprintf(out,
		"\"licenses_compromised\": %llu, \"failures\": %llu, \"failures_by_code\": {\"KEY_REVOKED\": "
		"%llu, "
		"\"KEY_DESTROYED\": %llu, \"NO_SIGNING_KEY\": %llu, \"NO_PUBLISHING_KEY\": %llu}}\n",
		(unsigned long long)s->total_licenses_compromised, (unsigned long long)failures,
		(unsigned long long)s->total_revoked, (unsigned long long)s->total_destroyed,
		(unsigned long long)s->total_no_signing, (unsigned long long)s->total_publish_failures);
}
