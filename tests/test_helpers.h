/*
 * test_helpers.h: small fixtures shared by the unit tests: a tenant whose
 * versions carry stand-in public keys (lifecycle and rollout logic never
 * parses them, and real RSA generation would make the state table slow), and
 * a fixed clock, and path helpers. Include it after cmocka.h.
 */
#ifndef LICENSOR_TESTS_HELPERS_H
#define LICENSOR_TESTS_HELPERS_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "keyring/tenant.h"

static inline struct key_version test_fake_version(const char *tenant, uint32_t serial)
{
	struct key_version version;
	memset(&version, 0, sizeof version);
	char text[96];
	int length = snprintf(text, sizeof text, "stand-in public key %s %u", tenant, serial);
	version.public_key_der = malloc((size_t)length);
	memcpy(version.public_key_der, text, (size_t)length);
	version.public_key_length = (size_t)length;
	key_id_of_spki(version.public_key_der, version.public_key_length, version.key_id);
	version.algorithm = KEY_ALGORITHM_RSA_2048;
	version.origin = KEY_ORIGIN_MANAGED;
	version.sealed_private_key = malloc(40);
	memset(version.sealed_private_key, 0xA5, 40);
	version.sealed_private_key_length = 40;
	return version;
}

/* A tenant with version 1 active at time `now`. */
static inline struct tenant *test_tenant_with_one_version(const char *name, int64_t now)
{
	struct tenant *tenant = tenant_new(name, now);
	struct key_version version = test_fake_version(name, 1);
	version.state = LIC_KEY_STATE_ACTIVE;
	version.state_before_revoke = LIC_KEY_STATE_ACTIVE;
	version.created_at = now;
	version.activated_at = now;
	if (tenant_append_version(tenant, &version, NULL) != LIC_OK)
		abort();
	return tenant;
}

static inline lic_status test_rekey(struct tenant *tenant, int64_t rollout_seconds, bool immediate,
				    bool compromised, bool pending, int64_t now, lic_error *error)
{
	struct rekey_request request = {.algorithm = KEY_ALGORITHM_RSA_2048,
					.rollout_seconds = rollout_seconds,
					.immediate = immediate,
					.compromised = compromised,
					.pending = pending};
	struct key_version version = test_fake_version(tenant->name, (uint32_t)tenant->version_count + 1);
	lic_status status = lifecycle_rekey(tenant, &request, &version, now, error);
	if (status != LIC_OK) {
		free(version.public_key_der);
		free(version.sealed_private_key);
	}
	return status;
}

/* out = directory "/" name; the test fails rather than truncate. */
static inline void test_join_path(char *out, size_t size, const char *directory, const char *name)
{
	int length = snprintf(out, size, "%s/%s", directory, name);
	assert_true(length > 0 && (size_t)length < size);
}

static inline int test_remove_entry(const char *path, const struct stat *info, int type, struct FTW *walk)
{
	(void)info;
	(void)type;
	(void)walk;
	return remove(path);
}

/* rm -rf without a shell. */
static inline void test_remove_tree(const char *path)
{
	nftw(path, test_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

struct test_clock {
	int64_t now;
};

static inline int64_t test_clock_now(void *context)
{
	return ((struct test_clock *)context)->now;
}

#endif
