/*
 * lifecycle.c: the state machine of key versions (DESIGN.md §1).
 *
 * Every operation first decides whether it is legal and only then changes
 * the tenant, so a refusal leaves the tenant exactly as it was. The rules,
 * also written in the README:
 *
 *   operation   allowed from                 result
 *   activate    pending, retained, or the    the one active version, at once;
 *               other side of a rollout      other active versions → retained
 *   revoke      pending, active, retained    revoked (--yes when no active would remain)
 *   reinstate   revoked                      the state it had, but never a second
 *                                            active one and never active if compromised
 *   destroy     pending, retained, revoked   destroyed, private key erased (--yes)
 *   rekey       any tenant (not disabled)    new version active, rollout from the old
 *
 * A compromised version never becomes active again.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "error.h"
#include "tenant.h"

static const char *state_name(lic_key_state state)
{
	return lic_key_state_name(state);
}

const char *lic_key_state_name(lic_key_state state)
{
	switch (state) {
	case LIC_KEY_STATE_PENDING:
		return "pending";
	case LIC_KEY_STATE_ACTIVE:
		return "active";
	case LIC_KEY_STATE_RETAINED:
		return "retained";
	case LIC_KEY_STATE_REVOKED:
		return "revoked";
	case LIC_KEY_STATE_DESTROYED:
		return "destroyed";
	}
	return "unknown";
}

static void set_retained(struct key_version *version, int64_t now)
{
	version->state = LIC_KEY_STATE_RETAINED;
	version->retained_at = now;
}

bool lifecycle_settle(struct tenant *tenant, int64_t now)
{
	struct tenant_rollout *rollout = &tenant->rollout;
	if (rollout->outcome != ROLLOUT_RUNNING || !rollout_complete(rollout, now))
		return false;
	struct key_version *from = tenant_version(tenant, rollout->from_version);
	if (from != NULL && from->state == LIC_KEY_STATE_ACTIVE)
		set_retained(from, rollout->started_at + rollout->duration_s);
	rollout->outcome = ROLLOUT_COMPLETED;
	rollout->ended_at = rollout->started_at + rollout->duration_s;
	return true;
}

static lic_status check_enabled(const struct tenant *tenant, lic_error *error)
{
	if (tenant->disabled)
		return lic_error_set(error, LIC_TENANT_DISABLED, "tenant %s is disabled: enable it first",
				     tenant->name);
	return LIC_OK;
}

static lic_status find_version(struct tenant *tenant, uint32_t number, struct key_version **out,
			       lic_error *error)
{
	struct key_version *version = tenant_version(tenant, number);
	if (version == NULL)
		return lic_error_set(error, LIC_UNKNOWN_KEY, "tenant %s has no version %u (it has %zu)",
				     tenant->name, number, tenant->version_count);
	*out = version;
	return LIC_OK;
}

static size_t active_count(const struct tenant *tenant)
{
	size_t count = 0;
	for (size_t i = 0; i < tenant->version_count; i++)
		count += tenant->versions[i].state == LIC_KEY_STATE_ACTIVE;
	return count;
}

lic_status lifecycle_check_rekey(const struct tenant *tenant, const struct rekey_request *request,
				 int64_t now, lic_error *error)
{
	lic_status status = check_enabled(tenant, error);
	if (status != LIC_OK)
		return status;
	if (request->algorithm == KEY_ALGORITHM_RSA_1024)
		return lic_error_set(error, LIC_UNSUPPORTED_VERSION,
				     "rsa-1024 is accepted for old content only, never for a new version");
	if (tenant->version_count >= TENANT_VERSION_MAX)
		return lic_error_set(error, LIC_TOO_LARGE, "tenant %s already has %d versions", tenant->name,
				     TENANT_VERSION_MAX);
	if (request->compromised && !request->immediate)
		return lic_error_set(
		    error, LIC_USAGE,
		    "a compromised version must never publish again: --reason compromised needs "
		    "--immediate");
	const struct tenant_rollout *rollout = &tenant->rollout;
	if (!request->immediate && rollout->outcome == ROLLOUT_RUNNING && !rollout_complete(rollout, now)) {
		int percent = (int)(rollout_fraction(rollout, now) * 100);
		return lic_error_set(
		    error, LIC_STATE,
		    "tenant %s is rolling out version %u (%d%% of clients so far): wait for it to "
		    "complete, or rekey with --immediate to complete it now",
		    tenant->name, rollout->to_version, percent);
	}
	return LIC_OK;
}

lic_status lifecycle_rekey(struct tenant *tenant, const struct rekey_request *request,
			   struct key_version *version, int64_t now, lic_error *error)
{
	lic_status status = lifecycle_check_rekey(tenant, request, now, error);
	if (status != LIC_OK)
		return status;
	/* With --immediate an unfinished rollout completes first: its from version is retired. */
	struct tenant_rollout *rollout = &tenant->rollout;
	bool finish_previous = rollout->outcome == ROLLOUT_RUNNING;
	lifecycle_settle(tenant, now);

	version->state = request->pending ? LIC_KEY_STATE_PENDING : LIC_KEY_STATE_ACTIVE;
	version->state_before_revoke = version->state;
	version->compromised = false;
	version->created_at = now;
	version->activated_at = request->pending ? 0 : now;
	status = tenant_append_version(tenant, version, error);
	if (status != LIC_OK)
		return status;
	struct key_version *added = &tenant->versions[tenant->version_count - 1];
	if (request->pending)
		return LIC_OK;

	if (finish_previous && rollout->outcome == ROLLOUT_RUNNING) {
		struct key_version *old_from = tenant_version(tenant, rollout->from_version);
		if (old_from != NULL && old_from->state == LIC_KEY_STATE_ACTIVE)
			set_retained(old_from, now);
		rollout->outcome = ROLLOUT_COMPLETED;
		rollout->ended_at = now;
	}
	/* The version rolled from: the newest active one other than the new one. */
	struct key_version *from = NULL;
	for (size_t i = tenant->version_count - 1; i > 0; i--) {
		if (tenant->versions[i - 1].state == LIC_KEY_STATE_ACTIVE) {
			from = &tenant->versions[i - 1];
			break;
		}
	}
	if (from != NULL && request->compromised) {
		from->compromised = true;
		from->compromised_at = now;
	}
	/* Any other active version (there should be none) retires now. */
	for (size_t i = 0; i + 1 < tenant->version_count; i++) {
		struct key_version *other = &tenant->versions[i];
		if (other != from && other->state == LIC_KEY_STATE_ACTIVE)
			set_retained(other, now);
	}
	rollout->from_version = from ? from->number : 0;
	rollout->to_version = added->number;
	rollout->started_at = now;
	rollout->duration_s = (request->immediate || from == NULL) ? 0 : request->rollout_seconds;
	rollout->outcome = ROLLOUT_RUNNING;
	rollout->ended_at = 0;
	/* An immediate rollout is complete at once: record it now. */
	lifecycle_settle(tenant, now);
	return LIC_OK;
}

lic_status lifecycle_revoke(struct tenant *tenant, uint32_t number, bool confirmed, int64_t now,
			    lic_error *error)
{
	struct key_version *version = NULL;
	lic_status status = check_enabled(tenant, error);
	if (status == LIC_OK)
		status = find_version(tenant, number, &version, error);
	if (status != LIC_OK)
		return status;
	lifecycle_settle(tenant, now);
	if (version->state == LIC_KEY_STATE_REVOKED || version->state == LIC_KEY_STATE_DESTROYED)
		return lic_error_set(error, LIC_STATE, "version %u of %s is already %s", number, tenant->name,
				     state_name(version->state));
	bool was_active = version->state == LIC_KEY_STATE_ACTIVE;
	if (was_active && active_count(tenant) == 1 && !confirmed)
		return lic_error_set(
		    error, LIC_STATE,
		    "version %u is the only active version of %s: revoking it stops all license "
		    "issuance and publishing for the tenant until a version is reinstated, "
		    "activated or created; pass --yes to proceed",
		    number, tenant->name);

	struct tenant_rollout *rollout = &tenant->rollout;
	if (was_active && rollout->outcome == ROLLOUT_RUNNING) {
		if (number == rollout->to_version) {
			/* The new version is withdrawn: the old one takes all new content again. */
			rollout->outcome = ROLLOUT_ABORTED;
			rollout->ended_at = now;
		} else if (number == rollout->from_version) {
			/* The old version goes: the new one takes all new content now. */
			rollout->outcome = ROLLOUT_COMPLETED;
			rollout->ended_at = now;
		}
	}
	version->state_before_revoke = version->state;
	version->state = LIC_KEY_STATE_REVOKED;
	version->revoked_at = now;
	return LIC_OK;
}

lic_status lifecycle_reinstate(struct tenant *tenant, uint32_t number, int64_t now, lic_error *error)
{
	struct key_version *version = NULL;
	lic_status status = check_enabled(tenant, error);
	if (status == LIC_OK)
		status = find_version(tenant, number, &version, error);
	if (status != LIC_OK)
		return status;
	lifecycle_settle(tenant, now);
	if (version->state != LIC_KEY_STATE_REVOKED)
		return lic_error_set(error, LIC_STATE,
				     "version %u of %s is %s, not revoked: only a revoked version "
				     "can be reinstated",
				     number, tenant->name, state_name(version->state));
	lic_key_state target = version->state_before_revoke;
	if (target == LIC_KEY_STATE_ACTIVE && (version->compromised || active_count(tenant) > 0))
		target = LIC_KEY_STATE_RETAINED;
	if (target != LIC_KEY_STATE_PENDING && target != LIC_KEY_STATE_ACTIVE)
		target = LIC_KEY_STATE_RETAINED;
	version->state = target;
	version->reinstated_at = now;
	if (target == LIC_KEY_STATE_RETAINED)
		version->retained_at = now;
	if (target == LIC_KEY_STATE_ACTIVE)
		version->activated_at = now;
	return LIC_OK;
}

lic_status lifecycle_destroy(struct tenant *tenant, uint32_t number, bool confirmed, int64_t now,
			     lic_error *error)
{
	struct key_version *version = NULL;
	lic_status status = check_enabled(tenant, error);
	if (status == LIC_OK)
		status = find_version(tenant, number, &version, error);
	if (status != LIC_OK)
		return status;
	lifecycle_settle(tenant, now);
	if (version->state == LIC_KEY_STATE_DESTROYED)
		return lic_error_set(error, LIC_STATE, "version %u of %s is already destroyed", number,
				     tenant->name);
	if (version->state == LIC_KEY_STATE_ACTIVE)
		return lic_error_set(error, LIC_STATE,
				     "version %u of %s is active: rekey or revoke it before destroying it",
				     number, tenant->name);
	if (!confirmed)
		return lic_error_set(
		    error, LIC_STATE,
		    "destroying version %u of %s erases its private key for ever: content protected "
		    "under it can never be opened again; pass --yes to proceed",
		    number, tenant->name);
	if (version->sealed_private_key != NULL) {
		OPENSSL_cleanse(version->sealed_private_key, version->sealed_private_key_length);
		free(version->sealed_private_key);
		version->sealed_private_key = NULL;
		version->sealed_private_key_length = 0;
	}
	version->state = LIC_KEY_STATE_DESTROYED;
	version->destroyed_at = now;
	return LIC_OK;
}

lic_status lifecycle_activate(struct tenant *tenant, uint32_t number, int64_t now, lic_error *error)
{
	struct key_version *version = NULL;
	lic_status status = check_enabled(tenant, error);
	if (status == LIC_OK)
		status = find_version(tenant, number, &version, error);
	if (status != LIC_OK)
		return status;
	lifecycle_settle(tenant, now);
	struct tenant_rollout *rollout = &tenant->rollout;
	bool rollout_running = rollout->outcome == ROLLOUT_RUNNING;
	if (version->compromised)
		return lic_error_set(error, LIC_STATE,
				     "version %u of %s is compromised: it can never publish or sign again",
				     number, tenant->name);
	switch (version->state) {
	case LIC_KEY_STATE_PENDING:
	case LIC_KEY_STATE_RETAINED:
		break;
	case LIC_KEY_STATE_ACTIVE:
		if (!rollout_running || active_count(tenant) < 2)
			return lic_error_set(error, LIC_STATE,
					     "version %u of %s is already the active version", number,
					     tenant->name);
		break;
	case LIC_KEY_STATE_REVOKED:
		return lic_error_set(error, LIC_STATE, "version %u of %s is revoked: reinstate it first",
				     number, tenant->name);
	case LIC_KEY_STATE_DESTROYED:
		return lic_error_set(error, LIC_STATE, "version %u of %s is destroyed and cannot come back",
				     number, tenant->name);
	}
	if (rollout_running) {
		if (number == rollout->to_version)
			rollout->outcome = ROLLOUT_COMPLETED;
		else
			rollout->outcome = ROLLOUT_SUPERSEDED;
		rollout->ended_at = now;
	}
	for (size_t i = 0; i < tenant->version_count; i++) {
		struct key_version *other = &tenant->versions[i];
		if (other != version && other->state == LIC_KEY_STATE_ACTIVE)
			set_retained(other, now);
	}
	if (version->state != LIC_KEY_STATE_ACTIVE) {
		version->state = LIC_KEY_STATE_ACTIVE;
		version->activated_at = now;
	}
	return LIC_OK;
}

lic_status lifecycle_set_disabled(struct tenant *tenant, bool disabled, lic_error *error)
{
	if (tenant->disabled == disabled)
		return lic_error_set(error, LIC_STATE, "tenant %s is already %s", tenant->name,
				     disabled ? "disabled" : "enabled");
	tenant->disabled = disabled;
	return LIC_OK;
}
