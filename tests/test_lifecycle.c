/*
 * test_lifecycle.c: every state of a key version × every operation of the
 * transition table (keyring/lifecycle.c, README "Key version lifecycle"). For
 * each cell: the status, the state the target version ends in, and for every
 * refusal that the tenant is byte-for-byte what it was (compared through its
 * serialised file form).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <libxml/xmlmemory.h>

#include "keyring/tenant_file.h"
#include "test_helpers.h"

#define T0 1795000000LL
#define DAY 86400LL

/* The situations a target version can be in. */
enum situation {
	PENDING,              /* v1 active, v2 pending: target v2 */
	ACTIVE_ONLY,          /* v1 the only active: target v1 */
	RETAINED,             /* v1 retained, v2 active: target v1 */
	RETAINED_COMPROMISED, /* v1 retained + compromised, v2 active: target v1 */
	REVOKED_WAS_RETAINED, /* v1 revoked (was retained), v2 active: target v1 */
	REVOKED_WAS_ONLY,     /* v1 revoked with --yes (was the only active): target v1 */
	DESTROYED,            /* v1 destroyed, v2 active: target v1 */
	ROLLOUT_FROM,         /* 10-day rollout v1 → v2 under way: target v1 */
	ROLLOUT_TO,           /* same rollout: target v2 */
	SITUATION_COUNT
};

static const char *const situation_names[] = {
    "pending",          "active-only", "retained",     "retained-compromised", "revoked-was-retained",
    "revoked-was-only", "destroyed",   "rollout-from", "rollout-to",
};

static struct tenant *make_situation(enum situation situation, uint32_t *target)
{
	int64_t t = T0;
	struct tenant *tenant = test_tenant_with_one_version("contoso", t);
	*target = 1;
	switch (situation) {
	case PENDING:
		assert_int_equal(test_rekey(tenant, 0, false, false, true, t, NULL), LIC_OK);
		*target = 2;
		break;
	case ACTIVE_ONLY:
		break;
	case RETAINED:
		assert_int_equal(test_rekey(tenant, 0, true, false, false, t, NULL), LIC_OK);
		break;
	case RETAINED_COMPROMISED:
		assert_int_equal(test_rekey(tenant, 0, true, true, false, t, NULL), LIC_OK);
		break;
	case REVOKED_WAS_RETAINED:
		assert_int_equal(test_rekey(tenant, 0, true, false, false, t, NULL), LIC_OK);
		assert_int_equal(lifecycle_revoke(tenant, 1, false, t, NULL), LIC_OK);
		break;
	case REVOKED_WAS_ONLY:
		assert_int_equal(lifecycle_revoke(tenant, 1, true, t, NULL), LIC_OK);
		break;
	case DESTROYED:
		assert_int_equal(test_rekey(tenant, 0, true, false, false, t, NULL), LIC_OK);
		assert_int_equal(lifecycle_destroy(tenant, 1, true, t, NULL), LIC_OK);
		break;
	case ROLLOUT_FROM:
	case ROLLOUT_TO:
		assert_int_equal(test_rekey(tenant, 10 * DAY, false, false, false, t, NULL), LIC_OK);
		*target = situation == ROLLOUT_TO ? 2 : 1;
		break;
	case SITUATION_COUNT:
		break;
	}
	return tenant;
}

enum operation {
	ACTIVATE,
	REVOKE,
	REVOKE_YES,
	REINSTATE,
	DESTROY,
	DESTROY_YES,
	REKEY_PHASED,
	REKEY_IMMEDIATE,
	OPERATION_COUNT
};

static const char *const operation_names[] = {
    "activate", "revoke",        "revoke --yes",       "reinstate",
    "destroy",  "destroy --yes", "rekey --rollout 7d", "rekey --immediate",
};

struct cell {
	lic_status status;
	int state; /* the target's state afterwards; -1 = unchanged (refusal) */
};

#define NO(code)                                                                                             \
	{                                                                                                    \
		code, -1                                                                                     \
	}
#define OK(state)                                                                                            \
	{                                                                                                    \
		LIC_OK, state                                                                                \
	}
#define A LIC_KEY_STATE_ACTIVE
#define R LIC_KEY_STATE_RETAINED
#define V LIC_KEY_STATE_REVOKED
#define D LIC_KEY_STATE_DESTROYED
#define P LIC_KEY_STATE_PENDING

/* The transition table. Rekeys target the tenant; the state column is then the target's. */
static const struct cell table[SITUATION_COUNT][OPERATION_COUNT] = {
    /*                 activate        revoke          revoke --yes  reinstate       destroy         destroy
       --yes   rekey 7d        rekey now */
    [PENDING] = {OK(A), OK(V), OK(V), NO(LIC_STATE), NO(LIC_STATE), OK(D), OK(P), OK(P)},
    [ACTIVE_ONLY] = {NO(LIC_STATE), NO(LIC_STATE), OK(V), NO(LIC_STATE), NO(LIC_STATE), NO(LIC_STATE), OK(A),
		     OK(R)},
    [RETAINED] = {OK(A), OK(V), OK(V), NO(LIC_STATE), NO(LIC_STATE), OK(D), OK(R), OK(R)},
    [RETAINED_COMPROMISED] = {NO(LIC_STATE), OK(V), OK(V), NO(LIC_STATE), NO(LIC_STATE), OK(D), OK(R), OK(R)},
    [REVOKED_WAS_RETAINED] = {NO(LIC_STATE), NO(LIC_STATE), NO(LIC_STATE), OK(R), NO(LIC_STATE), OK(D), OK(V),
			      OK(V)},
    [REVOKED_WAS_ONLY] = {NO(LIC_STATE), NO(LIC_STATE), NO(LIC_STATE), OK(A), NO(LIC_STATE), OK(D), OK(V),
			  OK(V)},
    [DESTROYED] = {NO(LIC_STATE), NO(LIC_STATE), NO(LIC_STATE), NO(LIC_STATE), NO(LIC_STATE), NO(LIC_STATE),
		   OK(D), OK(D)},
    [ROLLOUT_FROM] = {OK(A), OK(V), OK(V), NO(LIC_STATE), NO(LIC_STATE), NO(LIC_STATE), NO(LIC_STATE), OK(R)},
    [ROLLOUT_TO] = {OK(A), OK(V), OK(V), NO(LIC_STATE), NO(LIC_STATE), NO(LIC_STATE), NO(LIC_STATE), OK(R)},
};

static char *serialize(const struct tenant *tenant, size_t *length)
{
	char *text = NULL;
	assert_int_equal(tenant_file_serialize(tenant, &text, length, NULL), LIC_OK);
	return text;
}

static lic_status apply(struct tenant *tenant, enum operation operation, uint32_t target, int64_t now,
			lic_error *error)
{
	switch (operation) {
	case ACTIVATE:
		return lifecycle_activate(tenant, target, now, error);
	case REVOKE:
		return lifecycle_revoke(tenant, target, false, now, error);
	case REVOKE_YES:
		return lifecycle_revoke(tenant, target, true, now, error);
	case REINSTATE:
		return lifecycle_reinstate(tenant, target, now, error);
	case DESTROY:
		return lifecycle_destroy(tenant, target, false, now, error);
	case DESTROY_YES:
		return lifecycle_destroy(tenant, target, true, now, error);
	case REKEY_PHASED:
		return test_rekey(tenant, 7 * DAY, false, false, false, now, error);
	case REKEY_IMMEDIATE:
		return test_rekey(tenant, 0, true, false, false, now, error);
	case OPERATION_COUNT:
		break;
	}
	return LIC_INTERNAL;
}

/* Invariants of tenant.h that must hold after every successful operation. */
static void check_invariants(const struct tenant *tenant, int64_t now)
{
	size_t active = 0;
	for (size_t i = 0; i < tenant->version_count; i++) {
		const struct key_version *version = &tenant->versions[i];
		assert_int_equal(version->number, i + 1);
		active += version->state == LIC_KEY_STATE_ACTIVE;
		if (version->compromised)
			assert_true(version->state != LIC_KEY_STATE_ACTIVE &&
				    version->state != LIC_KEY_STATE_PENDING);
		if (version->state == LIC_KEY_STATE_DESTROYED)
			assert_null(version->sealed_private_key);
		assert_ptr_equal(tenant_find_key_id(tenant, version->key_id), version);
	}
	assert_true(active <= 2);
	if (active == 2)
		assert_int_equal(tenant->rollout.outcome, ROLLOUT_RUNNING);
	const struct key_version *signing = tenant_signing_version(tenant, now);
	if (signing != NULL)
		assert_false(signing->compromised);
	/* A tenant that survives a file round trip is one the store can hold. */
	size_t length = 0;
	char *text = serialize(tenant, &length);
	struct tenant *reread = NULL;
	lic_error error = {0};
	if (tenant_file_parse(text, length, tenant->name, &reread, &error) != LIC_OK)
		fail_msg("round trip refused: %s", error.message);
	assert_int_equal(reread->version_count, tenant->version_count);
	tenant_free(reread);
	xmlFree(text);
}

static void test_transition_table(void **state)
{
	(void)state;
	int checked = 0;
	for (int s = 0; s < SITUATION_COUNT; s++) {
		for (int o = 0; o < OPERATION_COUNT; o++) {
			uint32_t target = 0;
			struct tenant *tenant = make_situation((enum situation)s, &target);
			size_t before_length = 0;
			char *before = serialize(tenant, &before_length);
			lic_error error = {0};
			int64_t now = T0 + DAY; /* one day into any rollout */
			lic_status status = apply(tenant, (enum operation)o, target, now, &error);
			const struct cell *cell = &table[s][o];
			if (status != cell->status)
				fail_msg("%s × %s: got %s (%s), expected %s", situation_names[s],
					 operation_names[o], lic_status_code(status), error.message,
					 lic_status_code(cell->status));
			if (status != LIC_OK) {
				/* A refusal names its reason and changes nothing. */
				assert_true(strlen(error.message) > 10);
				size_t after_length = 0;
				char *after = serialize(tenant, &after_length);
				if (after_length != before_length ||
				    memcmp(before, after, before_length) != 0)
					fail_msg("%s × %s: refused but changed the tenant",
						 situation_names[s], operation_names[o]);
				xmlFree(after);
			} else {
				lic_key_state actual = tenant_version(tenant, target)->state;
				if ((int)actual != cell->state)
					fail_msg("%s × %s: version ends %s, expected %s", situation_names[s],
						 operation_names[o], lic_key_state_name(actual),
						 lic_key_state_name((lic_key_state)cell->state));
				check_invariants(tenant, now);
			}
			xmlFree(before);
			tenant_free(tenant);
			checked++;
		}
	}
	assert_int_equal(checked, SITUATION_COUNT * OPERATION_COUNT);
}

static void test_side_effects_on_other_versions(void **state)
{
	(void)state;
	uint32_t target = 0;
	lic_error error = {0};
	/* Activating a retained version retires the active one. */
	struct tenant *tenant = make_situation(RETAINED, &target);
	assert_int_equal(lifecycle_activate(tenant, 1, T0 + 10, &error), LIC_OK);
	assert_int_equal(tenant_version(tenant, 2)->state, LIC_KEY_STATE_RETAINED);
	assert_int_equal(tenant_signing_version(tenant, T0 + 10)->number, 1);
	tenant_free(tenant);

	/* Revoking the new version mid-rollout aborts it: the old one publishes and signs again. */
	tenant = make_situation(ROLLOUT_TO, &target);
	assert_int_equal(lifecycle_revoke(tenant, 2, false, T0 + DAY, &error), LIC_OK);
	assert_int_equal(tenant->rollout.outcome, ROLLOUT_ABORTED);
	assert_int_equal(tenant_version(tenant, 1)->state, LIC_KEY_STATE_ACTIVE);
	assert_int_equal(rollout_select_publishing_version(tenant, "alice-laptop", T0 + 9 * DAY)->number, 1);
	assert_int_equal(tenant_signing_version(tenant, T0 + DAY)->number, 1);
	/* Reinstating it does not make a second active version. */
	assert_int_equal(lifecycle_reinstate(tenant, 2, T0 + 2 * DAY, &error), LIC_OK);
	assert_int_equal(tenant_version(tenant, 2)->state, LIC_KEY_STATE_RETAINED);
	tenant_free(tenant);

	/* Revoking the old version mid-rollout completes it. */
	tenant = make_situation(ROLLOUT_FROM, &target);
	assert_int_equal(lifecycle_revoke(tenant, 1, false, T0 + DAY, &error), LIC_OK);
	assert_int_equal(tenant->rollout.outcome, ROLLOUT_COMPLETED);
	assert_int_equal(rollout_select_publishing_version(tenant, "client-0001", T0 + DAY)->number, 2);
	tenant_free(tenant);

	/* Revoking the only active version with --yes stops issuance; reinstating restores it. */
	tenant = make_situation(ACTIVE_ONLY, &target);
	assert_int_equal(lifecycle_revoke(tenant, 1, true, T0, &error), LIC_OK);
	assert_null(tenant_signing_version(tenant, T0));
	assert_null(rollout_select_publishing_version(tenant, "alice-laptop", T0));
	assert_int_equal(lifecycle_reinstate(tenant, 1, T0 + 5, &error), LIC_OK);
	assert_int_equal(tenant_signing_version(tenant, T0 + 5)->number, 1);
	tenant_free(tenant);

	/* A rekey with no active version makes the new one active at once, with no rollout source. */
	tenant = make_situation(REVOKED_WAS_ONLY, &target);
	assert_int_equal(test_rekey(tenant, 7 * DAY, false, false, false, T0 + 5, &error), LIC_OK);
	assert_int_equal(tenant->rollout.from_version, 0);
	assert_int_equal(tenant_signing_version(tenant, T0 + 5)->number, 2);
	assert_int_equal(rollout_select_publishing_version(tenant, "client-0001", T0 + 5)->number, 2);
	tenant_free(tenant);

	/* --immediate during a rollout completes the earlier rollout first. */
	tenant = make_situation(ROLLOUT_TO, &target);
	assert_int_equal(test_rekey(tenant, 0, true, false, false, T0 + DAY, &error), LIC_OK);
	assert_int_equal(tenant_version(tenant, 1)->state, LIC_KEY_STATE_RETAINED);
	assert_int_equal(tenant_version(tenant, 2)->state, LIC_KEY_STATE_RETAINED);
	assert_int_equal(tenant_version(tenant, 3)->state, LIC_KEY_STATE_ACTIVE);
	assert_int_equal(tenant->rollout.from_version, 2);
	tenant_free(tenant);

	/* --reason compromised flags the old version and never lets it publish or sign. */
	tenant = make_situation(ACTIVE_ONLY, &target);
	assert_int_equal(test_rekey(tenant, 0, true, true, false, T0, &error), LIC_OK);
	assert_true(tenant_version(tenant, 1)->compromised);
	assert_int_equal(tenant_version(tenant, 1)->compromised_at, T0);
	assert_int_equal(tenant_signing_version(tenant, T0)->number, 2);
	/* Reinstating a compromised version after a revoke brings it back retained, never active. */
	assert_int_equal(lifecycle_revoke(tenant, 1, false, T0 + 1, &error), LIC_OK);
	assert_int_equal(lifecycle_revoke(tenant, 2, true, T0 + 2, &error), LIC_OK);
	assert_int_equal(lifecycle_reinstate(tenant, 1, T0 + 3, &error), LIC_OK);
	assert_int_equal(tenant_version(tenant, 1)->state, LIC_KEY_STATE_RETAINED);
	assert_null(tenant_signing_version(tenant, T0 + 3));
	tenant_free(tenant);
}

static void test_refusals_with_their_codes(void **state)
{
	(void)state;
	lic_error error = {0};
	struct tenant *tenant = test_tenant_with_one_version("contoso", T0);
	/* An unknown version. */
	assert_int_equal(lifecycle_revoke(tenant, 7, true, T0, &error), LIC_UNKNOWN_KEY);
	assert_non_null(strstr(error.message, "no version 7"));
	assert_int_equal(lifecycle_activate(tenant, 0, T0, &error), LIC_UNKNOWN_KEY);
	/* Compromised without --immediate. */
	assert_int_equal(test_rekey(tenant, 7 * DAY, false, true, false, T0, &error), LIC_USAGE);
	/* rsa-1024 for a new version. */
	struct rekey_request legacy = {.algorithm = KEY_ALGORITHM_RSA_1024, .immediate = true};
	assert_int_equal(lifecycle_check_rekey(tenant, &legacy, T0, &error), LIC_UNSUPPORTED_VERSION);
	/* A second rekey while a rollout runs, accepted once it completed by the clock. */
	assert_int_equal(test_rekey(tenant, DAY, false, false, false, T0, &error), LIC_OK);
	assert_int_equal(test_rekey(tenant, DAY, false, false, false, T0 + 100, &error), LIC_STATE);
	assert_non_null(strstr(error.message, "--immediate"));
	assert_int_equal(test_rekey(tenant, DAY, false, false, false, T0 + DAY, &error), LIC_OK);
	assert_int_equal(tenant_version(tenant, 2)->state, LIC_KEY_STATE_ACTIVE);
	assert_int_equal(tenant_version(tenant, 1)->state, LIC_KEY_STATE_RETAINED);
	/* A disabled tenant refuses every change, and disabling twice is refused. */
	assert_int_equal(lifecycle_set_disabled(tenant, true, &error), LIC_OK);
	assert_int_equal(lifecycle_set_disabled(tenant, true, &error), LIC_STATE);
	assert_int_equal(lifecycle_revoke(tenant, 1, true, T0 + 3 * DAY, &error), LIC_TENANT_DISABLED);
	assert_int_equal(lifecycle_reinstate(tenant, 1, T0 + 3 * DAY, &error), LIC_TENANT_DISABLED);
	assert_int_equal(lifecycle_destroy(tenant, 1, true, T0 + 3 * DAY, &error), LIC_TENANT_DISABLED);
	assert_int_equal(lifecycle_activate(tenant, 1, T0 + 3 * DAY, &error), LIC_TENANT_DISABLED);
	assert_int_equal(test_rekey(tenant, 0, true, false, false, T0 + 3 * DAY, &error),
			 LIC_TENANT_DISABLED);
	assert_int_equal(lifecycle_set_disabled(tenant, false, &error), LIC_OK);
	assert_int_equal(lifecycle_set_disabled(tenant, false, &error), LIC_STATE);
	tenant_free(tenant);
}

static void test_tenant_names(void **state)
{
	(void)state;
	assert_true(tenant_name_valid("contoso"));
	assert_true(tenant_name_valid("fabrikam.com"));
	assert_true(tenant_name_valid("a-1"));
	assert_true(tenant_name_valid("0"));
	assert_false(tenant_name_valid(""));
	assert_false(tenant_name_valid(".hidden"));
	assert_false(tenant_name_valid("-x"));
	assert_false(tenant_name_valid("Contoso"));
	assert_false(tenant_name_valid("../etc"));
	assert_false(tenant_name_valid("a/b"));
	assert_false(tenant_name_valid("a b"));
	char long_name[80];
	memset(long_name, 'a', 63);
	long_name[63] = '\0';
	assert_true(tenant_name_valid(long_name));
	long_name[63] = 'a';
	long_name[64] = '\0';
	assert_false(tenant_name_valid(long_name));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_transition_table),
	    cmocka_unit_test(test_side_effects_on_other_versions),
	    cmocka_unit_test(test_refusals_with_their_codes),
	    cmocka_unit_test(test_tenant_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
