/*
 * admin.c: one transaction per operator action (see admin.h). The audit
 * event is appended after the tenant file is committed and under the same
 * lock, so the log never claims a change that did not happen; a writer killed
 * between the two loses that one line, never the change. Before changing
 * anything each transaction checks that the log will take the line, so a
 * damaged log refuses the change rather than missing it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "audit.h"
#include "byok.h"
#include "error.h"
#include "pkcs11.h"
#include "utc_time.h"

static int64_t admin_now(const struct admin_context *context)
{
	return lic_clock_now(context->clock ? context->clock : lic_clock_system());
}

/* The audit detail of a new version: its algorithm and, for a BYOK
 * version, "byok" and its URI with any PIN hidden. */
static void version_audit_detail(const struct key_version *version, char *out, size_t size)
{
	if (version->origin != KEY_ORIGIN_BYOK) {
		snprintf(out, size, "%s", key_algorithm_name(version->algorithm));
		return;
	}
	char redacted[PKCS11_URI_MAX];
	pkcs11_uri_redacted(version->byok_uri, redacted, sizeof redacted);
	snprintf(out, size, "byok %s %s", key_algorithm_name(version->algorithm), redacted);
}

static lic_status record(const struct admin_context *context, const char *action, const char *tenant,
			 uint32_t version, const char *reason, const char *detail, int64_t now,
			 lic_error *error)
{
	struct audit_event event = {
	    .actor = context->actor ? context->actor : "unknown",
	    .action = action,
	    .tenant = tenant,
	    .version = version,
	    .reason = reason,
	    .detail = detail,
	};
	return audit_append(context->store->directory, &event, now, error);
}

/* Everything that could keep the audit line from being written is checked
 * before the change is: the actor and the time (audit_check_event) and the
 * log's end (audit_check_appendable). Then a committed change always gets
 * its line, barring a crash or a full disk in between. */
static lic_status check_can_record(const struct admin_context *context, const char *action,
				   const char *tenant, int64_t now, lic_error *error)
{
	struct audit_event event = {
	    .actor = context->actor ? context->actor : "unknown",
	    .action = action,
	    .tenant = tenant,
	    .detail = "rollout from version 4294967295 to 4294967295 completed at 9999-12-31T23:59:59Z",
	};
	lic_status status = audit_check_event(&event, now, error);
	if (status != LIC_OK)
		return status;
	return audit_check_appendable(context->store->directory, error);
}

lic_status admin_record_settled(const struct admin_context *context, const char *tenant,
				const struct tenant_rollout *before, int64_t now, lic_error *error)
{
	char detail[128], completed[UTC_TIME_LENGTH];
	utc_time_format(before->started_at + before->duration_s, completed);
	snprintf(detail, sizeof detail, "rollout from version %u to %u completed at %s", before->from_version,
		 before->to_version, completed);
	return record(context, "rollout-complete", tenant, before->to_version, NULL, detail, now, error);
}

typedef lic_status (*tenant_change)(struct tenant *tenant, const void *argument, int64_t now,
				    lic_error *error);

/* The common transaction: lock, load, settle, change, save, audit. */
static lic_status transact_detail(const struct admin_context *context, const char *name, tenant_change change,
				  const void *argument, const char *action, uint32_t version,
				  const char *reason, const char *detail, lic_error *error)
{
	lic_status status = LIC_OK;
	struct tenant *tenant = NULL;
	int64_t now = admin_now(context);
	bool settled = false;
	struct tenant_rollout before;
	LIC_TRY(store_lock(context->store, error));
	LIC_TRY(check_can_record(context, action, name, now, error));
	LIC_TRY(store_load_tenant(context->store, name, &tenant, error));
	before = tenant->rollout;
	settled = lifecycle_settle(tenant, now);
	LIC_TRY(change(tenant, argument, now, error));
	LIC_TRY(store_save_tenant(context->store, tenant, 0, error));
	if (settled)
		LIC_TRY(admin_record_settled(context, name, &before, now, error));
	LIC_TRY(record(context, action, name, version, reason, detail, now, error));
out:
	store_unlock(context->store);
	tenant_free(tenant);
	return status;
}

static lic_status transact(const struct admin_context *context, const char *name, tenant_change change,
			   const void *argument, const char *action, uint32_t version, const char *reason,
			   lic_error *error)
{
	return transact_detail(context, name, change, argument, action, version, reason, NULL, error);
}

/* Version 1 of a new tenant: generated here, or the token key byok_uri names. */
static lic_status tenant_add(const struct admin_context *context, const char *name,
			     enum key_algorithm algorithm, const char *byok_uri, const char *pkcs11_module,
			     lic_error *error)
{
	lic_status status = LIC_OK;
	struct tenant *tenant = NULL;
	struct key_version version;
	bool version_owned = false;
	int64_t now = admin_now(context);
	char path[4096], detail[PKCS11_URI_MAX + 32];
	LIC_TRY(store_tenant_path(context->store, name, path, sizeof path, error));
	if (byok_uri == NULL && algorithm == KEY_ALGORITHM_RSA_1024)
		LIC_FAIL(error, LIC_UNSUPPORTED_VERSION,
			 "rsa-1024 is accepted for old content only, never for a new version");
	LIC_TRY(store_lock(context->store, error));
	LIC_TRY(check_can_record(context, "tenant-add", name, now, error));
	if (store_tenant_exists(context->store, name))
		LIC_FAIL(error, LIC_STATE, "tenant %s already exists", name);
	tenant = tenant_new(name, now);
	if (tenant == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	if (byok_uri != NULL)
		LIC_TRY(byok_version_from_token(byok_uri, pkcs11_module, 1, &version, error));
	else
		LIC_TRY(store_generate_version(context->store->kek, name, 1, algorithm, &version, error));
	version_owned = true;
	version.state = LIC_KEY_STATE_ACTIVE;
	version.state_before_revoke = LIC_KEY_STATE_ACTIVE;
	version.created_at = now;
	version.activated_at = now;
	version_audit_detail(&version, detail, sizeof detail);
	LIC_TRY(tenant_append_version(tenant, &version, error));
	version_owned = false;
	LIC_TRY(store_save_tenant(context->store, tenant, 0, error));
	LIC_TRY(record(context, "tenant-add", name, 1, byok_uri != NULL ? "byok" : NULL, detail, now, error));
out:
	if (version_owned)
		byok_version_cleanup(&version);
	store_unlock(context->store);
	tenant_free(tenant);
	return status;
}

lic_status admin_tenant_add(const struct admin_context *context, const char *name,
			    enum key_algorithm algorithm, lic_error *error)
{
	return tenant_add(context, name, algorithm, NULL, NULL, error);
}

lic_status admin_tenant_add_byok(const struct admin_context *context, const char *name, const char *uri,
				 const char *pkcs11_module, lic_error *error)
{
	return tenant_add(context, name, KEY_ALGORITHM_RSA_2048, uri, pkcs11_module, error);
}

static lic_status change_disabled(struct tenant *tenant, const void *argument, int64_t now, lic_error *error)
{
	return lifecycle_set_disabled(tenant, *(const bool *)argument, error);
}

lic_status admin_tenant_set_disabled(const struct admin_context *context, const char *tenant, bool disabled,
				     lic_error *error)
{
	return transact(context, tenant, change_disabled, &disabled,
			disabled ? "tenant-disable" : "tenant-enable", 0, NULL, error);
}

struct super_user_argument {
	const char *address;
	bool add;
};

static lic_status change_super_user(struct tenant *tenant, const void *argument, int64_t now,
				    lic_error *error)
{
	const struct super_user_argument *a = argument;
	if (tenant->disabled)
		return lic_error_set(error, LIC_TENANT_DISABLED, "tenant %s is disabled: enable it first",
				     tenant->name);
	return a->add ? tenant_add_super_user(tenant, a->address, error)
		      : tenant_remove_super_user(tenant, a->address, error);
}

lic_status admin_tenant_super_user(const struct admin_context *context, const char *tenant,
				   const char *address, bool add, lic_error *error)
{
	struct super_user_argument argument = {address, add};
	return transact_detail(context, tenant, change_super_user, &argument,
			       add ? "super-user-add" : "super-user-remove", 0, NULL, address, error);
}

struct version_argument {
	uint32_t version;
	bool confirmed;
};

static lic_status change_revoke(struct tenant *tenant, const void *argument, int64_t now, lic_error *error)
{
	const struct version_argument *a = argument;
	return lifecycle_revoke(tenant, a->version, a->confirmed, now, error);
}

static lic_status change_reinstate(struct tenant *tenant, const void *argument, int64_t now, lic_error *error)
{
	const struct version_argument *a = argument;
	return lifecycle_reinstate(tenant, a->version, now, error);
}

static lic_status change_destroy(struct tenant *tenant, const void *argument, int64_t now, lic_error *error)
{
	const struct version_argument *a = argument;
	return lifecycle_destroy(tenant, a->version, a->confirmed, now, error);
}

static lic_status change_activate(struct tenant *tenant, const void *argument, int64_t now, lic_error *error)
{
	const struct version_argument *a = argument;
	return lifecycle_activate(tenant, a->version, now, error);
}

lic_status admin_revoke(const struct admin_context *context, const char *tenant, uint32_t version,
			bool confirmed, lic_error *error)
{
	struct version_argument argument = {version, confirmed};
	return transact(context, tenant, change_revoke, &argument, "revoke", version, NULL, error);
}

lic_status admin_reinstate(const struct admin_context *context, const char *tenant, uint32_t version,
			   lic_error *error)
{
	struct version_argument argument = {version, false};
	return transact(context, tenant, change_reinstate, &argument, "reinstate", version, NULL, error);
}

lic_status admin_destroy(const struct admin_context *context, const char *tenant, uint32_t version,
			 bool confirmed, lic_error *error)
{
	struct version_argument argument = {version, confirmed};
	return transact(context, tenant, change_destroy, &argument, "destroy", version, NULL, error);
}

lic_status admin_activate(const struct admin_context *context, const char *tenant, uint32_t version,
			  lic_error *error)
{
	struct version_argument argument = {version, false};
	return transact(context, tenant, change_activate, &argument, "activate", version, NULL, error);
}

lic_status admin_rekey(const struct admin_context *context, const char *name,
		       const struct rekey_request *request, uint32_t *new_version, lic_error *error)
{
	lic_status status = LIC_OK;
	struct tenant *tenant = NULL;
	struct key_version version;
	bool version_owned = false;
	int64_t now = admin_now(context);
	struct tenant_rollout before;
	bool settled = false;
	char detail[PKCS11_URI_MAX + 128];

	LIC_TRY(store_lock(context->store, error));
	LIC_TRY(check_can_record(context, "rekey", name, now, error));
	LIC_TRY(store_load_tenant(context->store, name, &tenant, error));
	before = tenant->rollout;
	settled = lifecycle_settle(tenant, now);
	/* Refuse before the (slow) key generation. */
	LIC_TRY(lifecycle_check_rekey(tenant, request, now, error));
	uint32_t number = (uint32_t)tenant->version_count + 1;
	if (request->byok_uri != NULL)
		LIC_TRY(byok_version_from_token(request->byok_uri, request->pkcs11_module, number, &version,
						error));
	else
		LIC_TRY(store_generate_version(context->store->kek, name, number, request->algorithm,
					       &version, error));
	version_owned = true;
	char described[PKCS11_URI_MAX + 32];
	version_audit_detail(&version, described, sizeof described);
	LIC_TRY(lifecycle_rekey(tenant, request, &version, now, error));
	version_owned = false;
	LIC_TRY(store_save_tenant(context->store, tenant, 0, error));
	if (settled)
		LIC_TRY(admin_record_settled(context, name, &before, now, error));
	char duration[32];
	snprintf(duration, sizeof duration, "%llds", (long long)tenant->rollout.duration_s);
	if (request->pending)
		snprintf(detail, sizeof detail, "%s, pending", described);
	else
		snprintf(detail, sizeof detail, "%s, rollout %s from version %u", described, duration,
			 tenant->rollout.from_version);
	LIC_TRY(record(context, "rekey", name, number, request->compromised ? "compromised" : "routine",
		       detail, now, error));
	if (new_version != NULL)
		*new_version = number;
out:
	if (version_owned)
		byok_version_cleanup(&version);
	store_unlock(context->store);
	tenant_free(tenant);
	return status;
}

lic_status admin_load_tenant(const struct admin_context *context, const char *tenant, struct tenant **out,
			     lic_error *error)
{
	lic_status status = store_load_tenant(context->store, tenant, out, error);
	if (status == LIC_OK)
		lifecycle_settle(*out, admin_now(context));
	return status;
}
