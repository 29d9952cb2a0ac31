/*
 * tenant.c: the tenant model: versions in number order, the O(1) key id
 * index, and the questions every reader asks (effective state, signing
 * version). The index is rebuilt whenever versions are added or loaded; it is
 * never changed while a snapshot is being read.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "encoding.h"
#include "error.h"
#include "tenant.h"

bool tenant_name_valid(const char *name)
{
	size_t length = strnlen(name, TENANT_NAME_MAX + 1);
	if (length == 0 || length > TENANT_NAME_MAX)
		return false;
	for (size_t i = 0; i < length; i++) {
		char c = name[i];
		bool alphanumeric = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!alphanumeric && (i == 0 || (c != '.' && c != '-')))
			return false;
	}
	return true;
}

struct tenant *tenant_new(const char *name, int64_t now)
{
	struct tenant *tenant = calloc(1, sizeof *tenant);
	if (tenant == NULL)
		return NULL;
	tenant->name = strdup(name);
	if (tenant->name == NULL) {
		free(tenant);
		return NULL;
	}
	tenant->created_at = now;
	return tenant;
}

static void key_version_cleanup(struct key_version *version)
{
	free(version->public_key_der);
	if (version->sealed_private_key != NULL)
		OPENSSL_cleanse(version->sealed_private_key, version->sealed_private_key_length);
	free(version->sealed_private_key);
	free(version->byok_uri);
}

void tenant_free(struct tenant *tenant)
{
	if (tenant == NULL)
		return;
	for (size_t i = 0; i < tenant->version_count; i++)
		key_version_cleanup(&tenant->versions[i]);
	for (size_t i = 0; i < tenant->super_user_count; i++)
		free(tenant->super_users[i]);
	free(tenant->super_users);
	free(tenant->versions);
	free(tenant->key_id_slots);
	free(tenant->name);
	free(tenant);
}

static uint64_t key_id_hash(const uint8_t key_id[KEY_ID_LENGTH])
{
	/* Key ids are SHA-256 output: their first bytes are already uniform. */
	uint64_t hash;
	memcpy(&hash, key_id, sizeof hash);
	return hash;
}

lic_status tenant_index_key_ids(struct tenant *tenant, lic_error *error)
{
	size_t slot_count = 8;
	while (slot_count < 2 * tenant->version_count)
		slot_count *= 2;
	struct key_id_slot *slots = calloc(slot_count, sizeof *slots);
	if (slots == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	for (size_t i = 0; i < tenant->version_count; i++) {
		const uint8_t *key_id = tenant->versions[i].key_id;
		size_t slot = key_id_hash(key_id) & (slot_count - 1);
		while (slots[slot].version_index != 0) {
			if (memcmp(slots[slot].key_id, key_id, KEY_ID_LENGTH) == 0) {
				uint32_t first = slots[slot].version_index;
				free(slots);
				return lic_error_set(error, LIC_MALFORMED,
						     "tenant %s: versions %u and %zu have the same key id",
						     tenant->name, first, i + 1);
			}
			slot = (slot + 1) & (slot_count - 1);
		}
		memcpy(slots[slot].key_id, key_id, KEY_ID_LENGTH);
		slots[slot].version_index = (uint32_t)(i + 1);
	}
	free(tenant->key_id_slots);
	tenant->key_id_slots = slots;
	tenant->key_id_slot_count = slot_count;
	return LIC_OK;
}

lic_status tenant_push_version(struct tenant *tenant, const struct key_version *version, lic_error *error)
{
	if (tenant->version_count >= TENANT_VERSION_MAX)
		return lic_error_set(error, LIC_TOO_LARGE, "tenant %s already has %d versions", tenant->name,
				     TENANT_VERSION_MAX);
	if (tenant->version_count == tenant->version_capacity) {
		size_t capacity = tenant->version_capacity ? 2 * tenant->version_capacity : 4;
		struct key_version *grown = realloc(tenant->versions, capacity * sizeof *grown);
		if (grown == NULL)
			return lic_error_set(error, LIC_INTERNAL, "out of memory");
		tenant->versions = grown;
		tenant->version_capacity = capacity;
	}
	struct key_version *slot = &tenant->versions[tenant->version_count];
	memcpy(slot, version, sizeof *slot);
	slot->number = (uint32_t)(tenant->version_count + 1);
	hex_encode(slot->key_id, KEY_ID_LENGTH, slot->key_id_hex);
	tenant->version_count++;
	return LIC_OK;
}

lic_status tenant_append_version(struct tenant *tenant, const struct key_version *version, lic_error *error)
{
	lic_status status = tenant_push_version(tenant, version, error);
	if (status != LIC_OK)
		return status;
	status = tenant_index_key_ids(tenant, error);
	if (status != LIC_OK) {
		/* Give the buffers back to the caller untouched. */
		tenant->version_count--;
		return status;
	}
	return LIC_OK;
}

lic_status tenant_add_super_user(struct tenant *tenant, const char *address, lic_error *error)
{
	size_t length = strlen(address);
	if (length == 0 || length > TENANT_SUPER_USER_LENGTH_MAX)
		return lic_error_set(error, LIC_USAGE, "bad super-user address");
	for (size_t i = 0; i < tenant->super_user_count; i++)
		if (strcmp(tenant->super_users[i], address) == 0)
			return lic_error_set(error, LIC_STATE, "%s is already a super-user of %s", address,
					     tenant->name);
	if (tenant->super_user_count == TENANT_SUPER_USERS_MAX)
		return lic_error_set(error, LIC_TOO_LARGE, "tenant %s already has %d super-users",
				     tenant->name, TENANT_SUPER_USERS_MAX);
	char **grown = realloc(tenant->super_users, (tenant->super_user_count + 1) * sizeof *grown);
	if (grown == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	tenant->super_users = grown;
	grown[tenant->super_user_count] = strdup(address);
	if (grown[tenant->super_user_count] == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	tenant->super_user_count++;
	return LIC_OK;
}

lic_status tenant_remove_super_user(struct tenant *tenant, const char *address, lic_error *error)
{
	for (size_t i = 0; i < tenant->super_user_count; i++) {
		if (strcmp(tenant->super_users[i], address) != 0)
			continue;
		free(tenant->super_users[i]);
		memmove(&tenant->super_users[i], &tenant->super_users[i + 1],
			(tenant->super_user_count - i - 1) * sizeof *tenant->super_users);
		tenant->super_user_count--;
		return LIC_OK;
	}
	return lic_error_set(error, LIC_STATE, "%s is not a super-user of %s", address, tenant->name);
}

struct key_version *tenant_version(const struct tenant *tenant, uint32_t number)
{
	if (number == 0 || number > tenant->version_count)
		return NULL;
	return &tenant->versions[number - 1];
}

const struct key_version *tenant_find_key_id(const struct tenant *tenant, const uint8_t key_id[KEY_ID_LENGTH])
{
	if (tenant->key_id_slot_count == 0)
		return NULL;
	size_t mask = tenant->key_id_slot_count - 1;
	for (size_t slot = key_id_hash(key_id) & mask; tenant->key_id_slots[slot].version_index != 0;
	     slot = (slot + 1) & mask) {
		if (memcmp(tenant->key_id_slots[slot].key_id, key_id, KEY_ID_LENGTH) == 0)
			return &tenant->versions[tenant->key_id_slots[slot].version_index - 1];
	}
	return NULL;
}

/* Whether a version's state depends on the clock: only the from version of a
 * running rollout can turn retained by itself. */
bool tenant_state_depends_on_clock(const struct tenant *tenant, const struct key_version *version)
{
	return version->state == LIC_KEY_STATE_ACTIVE && tenant->rollout.outcome == ROLLOUT_RUNNING &&
	       version->number == tenant->rollout.from_version;
}

lic_key_state tenant_effective_state(const struct tenant *tenant, const struct key_version *version,
				     int64_t now)
{
	if (tenant_state_depends_on_clock(tenant, version) && rollout_complete(&tenant->rollout, now))
		return LIC_KEY_STATE_RETAINED;
	return version->state;
}

const struct key_version *tenant_signing_version(const struct tenant *tenant, int64_t now)
{
	for (size_t i = tenant->version_count; i > 0; i--) {
		const struct key_version *version = &tenant->versions[i - 1];
		if (!version->compromised &&
		    tenant_effective_state(tenant, version, now) == LIC_KEY_STATE_ACTIVE)
			return version;
	}
	return NULL;
}

lic_status tenant_version_usable_for_unwrap(const struct tenant *tenant, const struct key_version *version,
					    int64_t now, lic_error *error)
{
	switch (tenant_effective_state(tenant, version, now)) {
	case LIC_KEY_STATE_ACTIVE:
	case LIC_KEY_STATE_RETAINED:
		return LIC_OK;
	case LIC_KEY_STATE_REVOKED:
		return lic_error_set(error, LIC_KEY_REVOKED, "version %u of tenant %s is revoked",
				     version->number, tenant->name);
	case LIC_KEY_STATE_DESTROYED:
		return lic_error_set(error, LIC_KEY_DESTROYED, "version %u of tenant %s is destroyed",
				     version->number, tenant->name);
	case LIC_KEY_STATE_PENDING:
		return lic_error_set(error, LIC_KEY_REVOKED,
				     "version %u of tenant %s is pending: not in use yet", version->number,
				     tenant->name);
	}
	return lic_error_set(error, LIC_INTERNAL, "unknown key state");
}
