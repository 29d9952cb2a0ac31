/*
 * admin.h: the keyring changes an operator makes (DESIGN.md §7b), each one a
 * transaction on the store: take the exclusive lock, load the tenant, record
 * a rollout that completed by the clock, check, change, write atomically,
 * append the audit event, release the lock. A refusal writes nothing.
 *
 * The `licensor` command and embedders call these; tests call them with an
 * injected clock.
 */
#ifndef LICENSOR_KEYRING_ADMIN_H
#define LICENSOR_KEYRING_ADMIN_H

#include "store.h"
#include "tenant.h"

struct admin_context {
	struct store *store;
	const lic_clock *clock;
	const char *actor; /* who, for the audit log */
};

lic_status admin_tenant_add(const struct admin_context *context, const char *tenant,
			    enum key_algorithm algorithm, lic_error *error);
/* A tenant whose version 1 is the RSA key in a PKCS#11 token that `uri`
 * names (BYOK): the key stays in the token, the store records its public key
 * and URI (with pkcs11_module added as module-path when given). */
lic_status admin_tenant_add_byok(const struct admin_context *context, const char *tenant, const char *uri,
				 const char *pkcs11_module, lic_error *error);
lic_status admin_tenant_set_disabled(const struct admin_context *context, const char *tenant, bool disabled,
				     lic_error *error);
/* *new_version (optional) receives the number of the version created. */
lic_status admin_rekey(const struct admin_context *context, const char *tenant,
		       const struct rekey_request *request, uint32_t *new_version, lic_error *error);
lic_status admin_revoke(const struct admin_context *context, const char *tenant, uint32_t version,
			bool confirmed, lic_error *error);
lic_status admin_reinstate(const struct admin_context *context, const char *tenant, uint32_t version,
			   lic_error *error);
lic_status admin_destroy(const struct admin_context *context, const char *tenant, uint32_t version,
			 bool confirmed, lic_error *error);
lic_status admin_activate(const struct admin_context *context, const char *tenant, uint32_t version,
			  lic_error *error);

/* Adds (add = true) or removes a super-user address, already normalized
 * (lowercase) by the caller: super-users get every right on every PL of the
 * tenant. */
lic_status admin_tenant_super_user(const struct admin_context *context, const char *tenant,
				   const char *address, bool add, lic_error *error);

/* A rollout that completed by the clock (lifecycle_settle changed `before`)
 * is recorded by the next writer of the tenant, with its own audit event
 * "rollout-complete". Writers outside admin.c (import) call it too. */
lic_status admin_record_settled(const struct admin_context *context, const char *tenant,
				const struct tenant_rollout *before, int64_t now, lic_error *error);

/* Reads a tenant for display, with a completed rollout applied in memory only. */
lic_status admin_load_tenant(const struct admin_context *context, const char *tenant, struct tenant **out,
			     lic_error *error);

#endif
