/*
 * test_rollout.c: the cohort function and the phased rollout of DESIGN.md
 * §1: the five documented bucket vectors (docs/rollout.md), the fraction and
 * threshold at chosen clock times, that a client never moves back, and which
 * version a client publishes to before, during and after a rollout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_helpers.h"

#define T0 1795000000LL /* 2026-11-18T11:06:40Z */
#define DAY 86400LL

static void test_bucket_vectors(void **state)
{
	(void)state;
	/* Computed independently (Python hashlib) and listed in docs/rollout.md. */
	assert_int_equal(lic_rollout_bucket("contoso", "client-0001"), 9815);
	assert_int_equal(lic_rollout_bucket("contoso", "alice-laptop"), 260);
	assert_int_equal(lic_rollout_bucket("fabrikam.com", "00000000-0000-0000-0000-000000000000"), 8288);
	assert_int_equal(lic_rollout_bucket("contoso", ""), 3103);
	assert_int_equal(lic_rollout_bucket("t", "x"), 7551);
}

static void test_bucket_separates_tenant_and_client(void **state)
{
	(void)state;
	/* The 0x00 separator: ("ab","c") and ("a","bc") are different inputs. */
	assert_int_not_equal(lic_rollout_bucket("ab", "c"), lic_rollout_bucket("a", "bc"));
}

static void test_fraction_and_threshold_at_chosen_times(void **state)
{
	(void)state;
	struct tenant_rollout rollout = {.outcome = ROLLOUT_RUNNING,
					 .from_version = 1,
					 .to_version = 2,
					 .started_at = T0,
					 .duration_s = 10 * DAY};
	assert_int_equal(rollout_threshold(&rollout, T0 - 1), 0);
	assert_int_equal(rollout_threshold(&rollout, T0), 0);
	assert_true(rollout_fraction(&rollout, T0) == 0.0);
	assert_int_equal(rollout_threshold(&rollout, T0 + DAY), 1000);
	assert_int_equal(rollout_threshold(&rollout, T0 + 5 * DAY), 5000);
	assert_true(rollout_fraction(&rollout, T0 + 5 * DAY) == 0.5);
	assert_false(rollout_complete(&rollout, T0 + 5 * DAY));
	/* 86 s of a 10-day rollout: 10000 × 86 / 864000 = 0.995… → 0. */
	assert_int_equal(rollout_threshold(&rollout, T0 + 86), 0);
	assert_int_equal(rollout_threshold(&rollout, T0 + 87), 1);
	assert_int_equal(rollout_threshold(&rollout, T0 + 10 * DAY - 1), 9999);
	assert_int_equal(rollout_threshold(&rollout, T0 + 10 * DAY), 10000);
	assert_true(rollout_complete(&rollout, T0 + 10 * DAY));
	assert_int_equal(rollout_threshold(&rollout, T0 + 100 * DAY), 10000);
	assert_true(rollout_fraction(&rollout, T0 + 100 * DAY) == 1.0);

	struct tenant_rollout immediate = {.outcome = ROLLOUT_RUNNING,
					   .from_version = 1,
					   .to_version = 2,
					   .started_at = T0,
					   .duration_s = 0};
	assert_int_equal(rollout_threshold(&immediate, T0), 10000);
	assert_true(rollout_complete(&immediate, T0));

	struct tenant_rollout aborted = rollout;
	aborted.outcome = ROLLOUT_ABORTED;
	assert_int_equal(rollout_threshold(&aborted, T0 + 5 * DAY), 0);
	assert_false(rollout_complete(&aborted, T0 + 50 * DAY));
}

static void test_selection_follows_the_cohort(void **state)
{
	(void)state;
	struct tenant *tenant = test_tenant_with_one_version("contoso", T0 - DAY);
	assert_int_equal(test_rekey(tenant, 10000, false, false, false, T0, NULL), LIC_OK);
	/* alice-laptop has bucket 260: she moves when 10000 × elapsed / 10000 s > 260, i.e. after 260 s. */
	assert_int_equal(rollout_select_publishing_version(tenant, "alice-laptop", T0 + 260)->number, 1);
	assert_int_equal(rollout_select_publishing_version(tenant, "alice-laptop", T0 + 261)->number, 2);
	/* client-0001 has bucket 9815: it moves after 9815 s. */
	assert_int_equal(rollout_select_publishing_version(tenant, "client-0001", T0 + 9815)->number, 1);
	assert_int_equal(rollout_select_publishing_version(tenant, "client-0001", T0 + 9816)->number, 2);
	/* A client without an id stays on the old version until the rollout completes. */
	assert_int_equal(rollout_select_publishing_version(tenant, NULL, T0 + 9999)->number, 1);
	assert_int_equal(rollout_select_publishing_version(tenant, NULL, T0 + 10000)->number, 2);
	/* The newest active version signs from the start of the rollout. */
	assert_int_equal(tenant_signing_version(tenant, T0)->number, 2);
	tenant_free(tenant);
}

static void test_client_never_moves_back(void **state)
{
	(void)state;
	struct tenant *tenant = test_tenant_with_one_version("fabrikam.com", T0 - DAY);
	assert_int_equal(test_rekey(tenant, 14 * DAY, false, false, false, T0, NULL), LIC_OK);
	char client[32];
	size_t moved_at_end = 0;
	for (int c = 0; c < 500; c++) {
		snprintf(client, sizeof client, "client-%04d", c);
		bool moved = false;
		for (int64_t t = T0 - DAY; t <= T0 + 15 * DAY; t += 3600) {
			uint32_t version = rollout_select_publishing_version(tenant, client, t)->number;
			if (moved)
				assert_int_equal(version, 2);
			moved = version == 2;
		}
		moved_at_end += moved;
	}
	assert_int_equal(moved_at_end, 500);
	tenant_free(tenant);
}

static void test_share_of_clients_tracks_the_fraction(void **state)
{
	(void)state;
	struct tenant *tenant = test_tenant_with_one_version("contoso", T0 - DAY);
	assert_int_equal(test_rekey(tenant, 10 * DAY, false, false, false, T0, NULL), LIC_OK);
	char client[32];
	int on_new = 0;
	for (int c = 0; c < 10000; c++) {
		snprintf(client, sizeof client, "device-%d", c);
		on_new += rollout_select_publishing_version(tenant, client, T0 + 3 * DAY)->number == 2;
	}
	/* 30% expected; SHA-256 buckets are uniform: 4 standard deviations is ±184. */
	assert_in_range(on_new, 3000 - 184, 3000 + 184);
	tenant_free(tenant);
}

static void test_completion_reads_retained_before_and_after_settle(void **state)
{
	(void)state;
	struct tenant *tenant = test_tenant_with_one_version("contoso", T0 - DAY);
	assert_int_equal(test_rekey(tenant, DAY, false, false, false, T0, NULL), LIC_OK);
	const struct key_version *old = tenant_version(tenant, 1);
	assert_int_equal(tenant_effective_state(tenant, old, T0 + DAY - 1), LIC_KEY_STATE_ACTIVE);
	assert_int_equal(tenant_effective_state(tenant, old, T0 + DAY), LIC_KEY_STATE_RETAINED);
	assert_int_equal(old->state, LIC_KEY_STATE_ACTIVE); /* not yet recorded */
	assert_false(lifecycle_settle(tenant, T0 + DAY - 1));
	assert_true(lifecycle_settle(tenant, T0 + DAY + 5));
	assert_int_equal(old->state, LIC_KEY_STATE_RETAINED);
	assert_int_equal(old->retained_at, T0 + DAY); /* the moment it completed, not when noticed */
	assert_int_equal(tenant->rollout.outcome, ROLLOUT_COMPLETED);
	assert_false(lifecycle_settle(tenant, T0 + 2 * DAY));
	tenant_free(tenant);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bucket_vectors),
	    cmocka_unit_test(test_bucket_separates_tenant_and_client),
	    cmocka_unit_test(test_fraction_and_threshold_at_chosen_times),
	    cmocka_unit_test(test_selection_follows_the_cohort),
	    cmocka_unit_test(test_client_never_moves_back),
	    cmocka_unit_test(test_share_of_clients_tracks_the_fraction),
	    cmocka_unit_test(test_completion_reads_retained_before_and_after_settle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
