/*
 * rollout.c: the phased rollout of DESIGN.md §1. During a rollout of
 * duration D started at t0, a publishing client is in the new cohort when
 * bucket(tenant, client) < f(t) × 10000 with f(t) = clamp((t − t0) / D, 0, 1).
 * The comparison is done in integers (bucket × D < (t − t0) × 10000), so two
 * implementations agree on every client at every second. f only grows with
 * the clock, so a client once moved stays moved.
 */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "tenant.h"

uint32_t lic_rollout_bucket(const char *tenant, const char *client_id)
{
	uint8_t digest[SHA256_DIGEST_LENGTH];
	/* One buffer and the one-shot SHA256(): nothing here can fail or allocate. */
	uint8_t input[512];
	size_t tenant_length = strlen(tenant), client_length = strlen(client_id);
	if (tenant_length + 1 + client_length <= sizeof input) {
		memcpy(input, tenant, tenant_length);
		input[tenant_length] = 0;
		memcpy(input + tenant_length + 1, client_id, client_length);
		SHA256(input, tenant_length + 1 + client_length, digest);
	} else {
		/* Long ids: a streaming digest. Out of memory here (it allocates)
		 * can only give bucket 0: the client is then in the first cohort. */
		EVP_MD_CTX *context = EVP_MD_CTX_new();
		static const uint8_t separator = 0;
		if (context == NULL || EVP_DigestInit_ex(context, EVP_sha256(), NULL) != 1 ||
		    EVP_DigestUpdate(context, tenant, tenant_length) != 1 ||
		    EVP_DigestUpdate(context, &separator, 1) != 1 ||
		    EVP_DigestUpdate(context, client_id, client_length) != 1 ||
		    EVP_DigestFinal_ex(context, digest, NULL) != 1)
			memset(digest, 0, sizeof digest);
		EVP_MD_CTX_free(context);
	}
	uint64_t value = 0;
	for (int i = 0; i < 8; i++)
		value = value << 8 | digest[i];
	return (uint32_t)(value % 10000);
}

static bool rollout_running(const struct tenant_rollout *rollout)
{
	return rollout->outcome == ROLLOUT_RUNNING;
}

uint32_t rollout_threshold(const struct tenant_rollout *rollout, int64_t now)
{
	if (rollout->outcome == ROLLOUT_NONE || rollout->outcome == ROLLOUT_ABORTED ||
	    rollout->outcome == ROLLOUT_SUPERSEDED)
		return 0;
	if (rollout->outcome == ROLLOUT_COMPLETED)
		return 10000;
	int64_t elapsed = now - rollout->started_at;
	if (elapsed <= 0)
		return rollout->duration_s == 0 ? 10000 : 0;
	if (elapsed >= rollout->duration_s)
		return 10000;
	/* elapsed < D ≤ 3650 days: elapsed × 10000 fits easily in 64 bits. */
	return (uint32_t)(elapsed * 10000 / rollout->duration_s);
}

double rollout_fraction(const struct tenant_rollout *rollout, int64_t now)
{
	if (rollout->outcome == ROLLOUT_COMPLETED)
		return 1.0;
	if (!rollout_running(rollout))
		return 0.0;
	if (rollout->duration_s == 0)
		return now >= rollout->started_at ? 1.0 : 0.0;
	double fraction = (double)(now - rollout->started_at) / (double)rollout->duration_s;
	return fraction < 0 ? 0 : fraction > 1 ? 1 : fraction;
}

bool rollout_complete(const struct tenant_rollout *rollout, int64_t now)
{
	if (rollout->outcome == ROLLOUT_COMPLETED)
		return true;
	return rollout_running(rollout) && now - rollout->started_at >= rollout->duration_s;
}

static bool usable_for_publishing(const struct tenant *tenant, const struct key_version *version, int64_t now)
{
	return version != NULL && !version->compromised &&
	       tenant_effective_state(tenant, version, now) == LIC_KEY_STATE_ACTIVE;
}

const struct key_version *rollout_select_publishing_version(const struct tenant *tenant,
							    const char *client_id, int64_t now)
{
	const struct tenant_rollout *rollout = &tenant->rollout;
	if (rollout_running(rollout) && !rollout_complete(rollout, now)) {
		const struct key_version *from = tenant_version(tenant, rollout->from_version);
		const struct key_version *to = tenant_version(tenant, rollout->to_version);
		int64_t elapsed = now - rollout->started_at;
		bool new_cohort =
		    client_id != NULL && elapsed > 0 &&
		    (uint64_t)lic_rollout_bucket(tenant->name, client_id) * (uint64_t)rollout->duration_s <
			(uint64_t)elapsed * 10000u;
		if (new_cohort && usable_for_publishing(tenant, to, now))
			return to;
		if (usable_for_publishing(tenant, from, now))
			return from;
		if (usable_for_publishing(tenant, to, now))
			return to;
		return NULL;
	}
	/* No rollout running: the newest usable active version. */
	return tenant_signing_version(tenant, now);
}
