/*
 * test_simulate.c: the rekey rollout simulator (keyring/simulate.c,
 * docs/simulate.md): every published item and every license request is
 * counted exactly once per step; the same seed gives the same CSV bytes and
 * another seed other bytes; the content published to the new version is
 * exactly what the §1 formula, computed here from lic_rollout_bucket, says;
 * bad parameters are refused; a revoke makes failures appear for old content
 * at the revoke and not before.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "keyring/simulate.h"
#include "test_helpers.h"

#define DAY 86400LL

static struct simulation_parameters small_parameters(void)
{
	struct simulation_parameters p;
	simulation_parameters_default(&p);
	p.clients = 2000;
	p.duration_s = 20 * DAY;
	p.rekey_at_s = 2 * DAY;
	p.rollout_s = 5 * DAY;
	p.legacy_share = 0.1;
	p.legacy_clear_s = 6 * DAY;
	p.step_s = 6 * 3600;
	p.seed = 42;
	return p;
}

static void test_conservation(void **state)
{
	(void)state;
	struct simulation_parameters p = small_parameters();
	p.emergency_rekey_s = 9 * DAY;
	p.revoke_old_s = 12 * DAY;
	struct simulation *simulation = NULL;
	assert_int_equal(simulation_new(&p, &simulation, NULL), LIC_OK);
	uint64_t steps = simulation_step_count(simulation);
	assert_int_equal(steps, 80);
	uint64_t content_before[SIMULATION_VERSIONS_MAX + 1] = {0};
	uint64_t requests_per_step = (uint64_t)p.clients * SIMULATION_REQUESTS_PER_CLIENT_PER_DAY / 4;
	for (uint64_t k = 0; k < steps; k++) {
		const struct simulation_step_result *r = NULL;
		assert_int_equal(simulation_step(simulation, &r, NULL), LIC_OK);
		assert_int_equal(r->now, SIMULATION_EPOCH + (int64_t)k * p.step_s);
		uint64_t by_clients = 0;
		for (uint32_t i = 0; i < p.clients; i++)
			by_clients += simulation_client_published(simulation, i);
		uint64_t published = r->publish_failures, served = 0, content_total = 0;
		for (int v = 1; v <= SIMULATION_VERSIONS_MAX; v++) {
			published += r->published[v];
			served += r->licenses[v];
			/* Every item lands in the inventory exactly once, in the step it was published. */
			assert_int_equal(r->content[v], content_before[v] + r->published[v]);
			content_before[v] = r->content[v];
			content_total += r->content[v];
		}
		assert_int_equal(published, by_clients);
		assert_true(content_total > 0);
		/* Every request is one license or one failure (none in step 0: no content yet). */
		uint64_t answered =
		    served + r->failures_revoked + r->failures_destroyed + r->failures_no_signing;
		assert_int_equal(answered, k == 0 ? 0 : requests_per_step);
		assert_true(r->licenses_compromised <= served);
	}
	const struct simulation_step_result *r = NULL;
	assert_int_equal(simulation_step(simulation, &r, NULL), LIC_STATE);
	/* The real lifecycle ran: v1 revoked, v2 compromised by the emergency rekey, v3 active. */
	const struct tenant *tenant = simulation_tenant(simulation);
	assert_int_equal(tenant->version_count, 3);
	assert_int_equal(tenant_version(tenant, 1)->state, LIC_KEY_STATE_REVOKED);
	assert_true(tenant_version(tenant, 2)->compromised);
	assert_int_equal(tenant_version(tenant, 2)->state, LIC_KEY_STATE_RETAINED);
	assert_int_equal(tenant_version(tenant, 3)->state, LIC_KEY_STATE_ACTIVE);
	simulation_free(simulation);
}

static char *run_to_csv(const struct simulation_parameters *p, size_t *length)
{
	char *buffer = NULL;
	FILE *out = open_memstream(&buffer, length);
	assert_non_null(out);
	struct simulation *simulation = NULL;
	assert_int_equal(simulation_new(p, &simulation, NULL), LIC_OK);
	simulation_write_csv_header(out);
	for (uint64_t k = 0; k < simulation_step_count(simulation); k++) {
		const struct simulation_step_result *r = NULL;
		assert_int_equal(simulation_step(simulation, &r, NULL), LIC_OK);
		simulation_write_csv_row(out, r);
	}
	simulation_write_summary_json(out, simulation);
	simulation_free(simulation);
	assert_int_equal(fclose(out), 0);
	return buffer;
}

static void test_determinism(void **state)
{
	(void)state;
	struct simulation_parameters p = small_parameters();
	p.revoke_old_s = 15 * DAY;
	size_t first_length = 0, second_length = 0, other_length = 0;
	char *first = run_to_csv(&p, &first_length);
	char *second = run_to_csv(&p, &second_length);
	assert_int_equal(first_length, second_length);
	assert_memory_equal(first, second, first_length);
	p.seed = 43;
	char *other = run_to_csv(&p, &other_length);
	assert_true(other_length != first_length || memcmp(first, other, first_length) != 0);
	free(first);
	free(second);
	free(other);
}

/* §1, computed here: the client is in the new cohort when bucket < f(t) × 10000,
 * f(t) = (t − t0) / D, compared exactly as bucket × D < (t − t0) × 10000. */
static bool in_new_cohort(const char *client_id, int64_t elapsed, int64_t duration)
{
	if (elapsed <= 0)
		return false;
	if (elapsed >= duration)
		return true;
	return (uint64_t)lic_rollout_bucket(SIMULATION_TENANT, client_id) * (uint64_t)duration <
	       (uint64_t)elapsed * 10000u;
}

static void test_rollout_share_matches_formula(void **state)
{
	(void)state;
	struct simulation_parameters p = small_parameters();
	p.clients = 5000;
	p.legacy_share = 0; /* legacy clients would keep v1 on purpose */
	p.rekey_at_s = 1 * DAY;
	p.rollout_s = 10 * DAY;
	p.duration_s = 14 * DAY;
	p.step_s = 3 * 3600;
	struct simulation *simulation = NULL;
	assert_int_equal(simulation_new(&p, &simulation, NULL), LIC_OK);
	int64_t t0 = SIMULATION_EPOCH + p.rekey_at_s;
	for (uint64_t k = 0; k < simulation_step_count(simulation); k++) {
		const struct simulation_step_result *r = NULL;
		assert_int_equal(simulation_step(simulation, &r, NULL), LIC_OK);
		int64_t elapsed = r->now - t0;
		uint64_t expected_new = 0, expected_old = 0, cohort = 0;
		for (uint32_t i = 0; i < p.clients; i++) {
			bool moved = r->now >= t0 &&
				     in_new_cohort(simulation_client_id(simulation, i), elapsed, p.rollout_s);
			cohort += moved;
			if (moved)
				expected_new += simulation_client_published(simulation, i);
			else
				expected_old += simulation_client_published(simulation, i);
		}
		assert_int_equal(r->published[2], expected_new);
		assert_int_equal(r->published[1], expected_old);
		/* At chosen times the share of clients moved is f(t), within sampling noise. */
		if (elapsed == 0 || elapsed == 2 * DAY || elapsed == 5 * DAY || elapsed == 8 * DAY ||
		    elapsed == 10 * DAY) {
			double f = (double)elapsed / (double)p.rollout_s;
			double share = (double)cohort / p.clients;
			assert_true(share > f - 0.02 && share < f + 0.02);
			assert_int_equal(r->threshold, (uint32_t)(elapsed * 10000 / p.rollout_s));
		}
	}
	simulation_free(simulation);
}

static void expect_refused(struct simulation_parameters p)
{
	lic_error error = {0};
	struct simulation *simulation = NULL;
	assert_int_equal(simulation_new(&p, &simulation, &error), LIC_USAGE);
	assert_null(simulation);
	assert_int_equal(error.status, LIC_USAGE);
}

static void test_bad_parameters_are_refused(void **state)
{
	(void)state;
	struct simulation_parameters good = small_parameters(), p;
	assert_int_equal(simulation_parameters_check(&good, NULL), LIC_OK);
	p = good, p.clients = 0, expect_refused(p);
	p = good, p.clients = SIMULATION_CLIENTS_MAX + 1, expect_refused(p);
	p = good, p.duration_s = (SIMULATION_DAYS_MAX + 1) * DAY, expect_refused(p);
	p = good, p.duration_s = 0, expect_refused(p);
	p = good, p.legacy_share = 1.5, expect_refused(p);
	p = good, p.legacy_share = -0.1, expect_refused(p);
	p = good, p.step_s = 30, expect_refused(p);
	p = good, p.step_s = 21 * DAY, expect_refused(p);
	p = good, p.duration_s = 3650 * DAY, p.step_s = 60, expect_refused(p); /* 5 million steps */
	p = good, p.rekey_at_s = 21 * DAY, expect_refused(p);
	p = good, p.revoke_old_s = 1 * DAY, expect_refused(p); /* before the rekey */
	p = good, p.emergency_rekey_s = 30 * DAY, expect_refused(p);
	/* Too much work: a million clients over ten years. */
	p = good, p.clients = SIMULATION_CLIENTS_MAX, p.duration_s = 3650 * DAY, p.step_s = DAY,
	expect_refused(p);
}

static void test_revoke_makes_failures_appear_then_only(void **state)
{
	(void)state;
	struct simulation_parameters p = small_parameters();
	p.revoke_old_s = 10 * DAY;
	struct simulation *simulation = NULL;
	assert_int_equal(simulation_new(&p, &simulation, NULL), LIC_OK);
	int64_t revoke_at = SIMULATION_EPOCH + p.revoke_old_s;
	uint64_t failing_steps = 0;
	for (uint64_t k = 0; k < simulation_step_count(simulation); k++) {
		const struct simulation_step_result *r = NULL;
		assert_int_equal(simulation_step(simulation, &r, NULL), LIC_OK);
		if (r->now < revoke_at) {
			assert_int_equal(r->failures_revoked, 0);
		} else {
			/* Old content is most of the content: some of each step's requests fail. */
			assert_true(r->failures_revoked > 0);
			assert_int_equal(r->licenses[1], 0);
			failing_steps++;
		}
		assert_int_equal(r->failures_destroyed, 0);
		assert_int_equal(r->failures_no_signing, 0);
	}
	assert_int_equal(failing_steps, 40);
	simulation_free(simulation);

	/* Without the revoke, nothing fails. */
	p.revoke_old_s = -1;
	assert_int_equal(simulation_new(&p, &simulation, NULL), LIC_OK);
	for (uint64_t k = 0; k < simulation_step_count(simulation); k++) {
		const struct simulation_step_result *r = NULL;
		assert_int_equal(simulation_step(simulation, &r, NULL), LIC_OK);
		assert_int_equal(r->failures_revoked + r->publish_failures, 0);
	}
	simulation_free(simulation);
}

static void test_legacy_clients_keep_the_old_version_until_cleared(void **state)
{
	(void)state;
	struct simulation_parameters p = small_parameters();
	p.legacy_share = 0.2;
	struct simulation *simulation = NULL;
	assert_int_equal(simulation_new(&p, &simulation, NULL), LIC_OK);
	int64_t clear_at = SIMULATION_EPOCH + p.rekey_at_s + p.legacy_clear_s;
	int64_t rollout_end = SIMULATION_EPOCH + p.rekey_at_s + p.rollout_s;
	for (uint64_t k = 0; k < simulation_step_count(simulation); k++) {
		const struct simulation_step_result *r = NULL;
		assert_int_equal(simulation_step(simulation, &r, NULL), LIC_OK);
		if (r->now < rollout_end)
			continue;
		uint64_t legacy_items = 0;
		for (uint32_t i = 0; i < p.clients; i++)
			if (simulation_client_is_legacy(simulation, i))
				legacy_items += simulation_client_published(simulation, i);
		/* After the rollout only legacy clients publish to v1, and only until cleared. */
		assert_int_equal(r->published[1], r->now < clear_at ? legacy_items : 0);
	}
	simulation_free(simulation);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_conservation),
	    cmocka_unit_test(test_determinism),
	    cmocka_unit_test(test_rollout_share_matches_formula),
	    cmocka_unit_test(test_bad_parameters_are_refused),
	    cmocka_unit_test(test_revoke_makes_failures_appear_then_only),
	    cmocka_unit_test(test_legacy_clients_keep_the_old_version_until_cleared),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
