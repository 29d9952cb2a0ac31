/*
 * engine_cache.c: set-associative caches with a lock per set (see
 * engine_cache.h). The PL cache's content keys are one block of OpenSSL
 * secure memory (locked, MADV_DONTDUMP), parallel to the entries' metadata,
 * and a key is wiped (OPENSSL_cleanse) whenever its entry leaves.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/engine_cache.h"
#include "keyring/error.h"
#include "keyring/secure_memory.h"
#include "keyring/tenant.h"

#define WAYS 4
#define DEFAULT_ENTRIES 65536
#define DEFAULT_PL_TTL 3600
#define RAC_TTL 3600

/* The metadata of an entry; its content key sits at the same index of the
 * secure content_keys array, so only 32 bytes an entry use the secure heap. */
struct pl_entry {
	uint8_t key[32];
	uint8_t key_id[16];
	char tenant[TENANT_NAME_MAX + 1];
	int64_t inserted_at; /* 0 = empty */
};

struct pl_cache {
	bool disabled;
	size_t sets; /* a power of two */
	int64_t ttl_s;
	struct pl_entry *entries;    /* sets × WAYS */
	uint8_t (*content_keys)[32]; /* sets × WAYS, secure memory */
	size_t content_keys_bytes;
	pthread_mutex_t *locks; /* one per set */
	atomic_uint_fast64_t purged_generation;
};

struct rac_entry {
	uint8_t digest[32];
	EVP_PKEY *user_key;
	int64_t inserted_at;
};

struct rac_cache {
	bool disabled;
	size_t sets;
	struct rac_entry *entries;
	pthread_mutex_t *locks;
};

static size_t sets_for(size_t entries)
{
	if (entries == 0)
		entries = DEFAULT_ENTRIES;
	size_t sets = 1;
	while (sets * WAYS < entries)
		sets *= 2;
	return sets;
}

static size_t set_of(const uint8_t key[32], size_t sets)
{
	uint64_t hash;
	memcpy(&hash, key, sizeof hash); /* SHA-256 output: uniform */
	return (size_t)(hash & (sets - 1));
}

static pthread_mutex_t *new_locks(size_t count)
{
	pthread_mutex_t *locks = calloc(count, sizeof *locks);
	for (size_t i = 0; locks && i < count; i++)
		pthread_mutex_init(&locks[i], NULL);
	return locks;
}

static void free_locks(pthread_mutex_t *locks, size_t count)
{
	for (size_t i = 0; locks && i < count; i++)
		pthread_mutex_destroy(&locks[i]);
	free(locks);
}

lic_status pl_cache_new(size_t entries, int64_t ttl_s, struct pl_cache **out, lic_error *error)
{
	struct pl_cache *cache = calloc(1, sizeof *cache);
	if (cache == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	cache->ttl_s = ttl_s > 0 ? ttl_s : DEFAULT_PL_TTL;
	if (entries == SIZE_MAX) {
		cache->disabled = true;
		*out = cache;
		return LIC_OK;
	}
	cache->sets = sets_for(entries);
	cache->entries = calloc(cache->sets * WAYS, sizeof *cache->entries);
	cache->content_keys_bytes = cache->sets * WAYS * sizeof *cache->content_keys;
	cache->content_keys = secure_alloc(cache->content_keys_bytes);
	cache->locks = new_locks(cache->sets);
	if (cache->entries == NULL || cache->content_keys == NULL || cache->locks == NULL) {
		size_t wanted = cache->sets * WAYS;
		pl_cache_free(cache);
		return lic_error_set(error, LIC_INTERNAL,
				     "out of secure memory for the PL cache (%zu entries)", wanted);
	}
	*out = cache;
	return LIC_OK;
}

void pl_cache_free(struct pl_cache *cache)
{
	if (cache == NULL)
		return;
	secure_free(cache->content_keys, cache->content_keys_bytes); /* wipes every content key */
	free(cache->entries);
	free_locks(cache->locks, cache->sets);
	free(cache);
}

static void pl_entry_wipe(struct pl_cache *cache, struct pl_entry *entry)
{
	OPENSSL_cleanse(cache->content_keys[entry - cache->entries], 32);
	memset(entry, 0, sizeof *entry);
}

bool pl_cache_lookup(struct pl_cache *cache, const uint8_t key[32], int64_t now, uint8_t content_key[32])
{
	if (cache->disabled)
		return false;
	size_t set = set_of(key, cache->sets);
	struct pl_entry *ways = &cache->entries[set * WAYS];
	bool found = false;
	pthread_mutex_lock(&cache->locks[set]);
	for (int i = 0; i < WAYS; i++) {
		struct pl_entry *entry = &ways[i];
		if (entry->inserted_at == 0 || CRYPTO_memcmp(entry->key, key, 32) != 0)
			continue;
		if (now - entry->inserted_at >= cache->ttl_s) {
			pl_entry_wipe(cache, entry);
			break;
		}
		memcpy(content_key, cache->content_keys[entry - cache->entries], 32);
		found = true;
		break;
	}
	pthread_mutex_unlock(&cache->locks[set]);
	return found;
}

void pl_cache_insert(struct pl_cache *cache, const uint8_t key[32], const uint8_t content_key[32],
		     const char *tenant, const uint8_t key_id[16], int64_t now, uint64_t generation)
{
	if (cache->disabled || generation < atomic_load(&cache->purged_generation))
		return;
	size_t set = set_of(key, cache->sets);
	struct pl_entry *ways = &cache->entries[set * WAYS];
	pthread_mutex_lock(&cache->locks[set]);
	struct pl_entry *victim = &ways[0];
	for (int i = 0; i < WAYS; i++) {
		struct pl_entry *entry = &ways[i];
		if (entry->inserted_at != 0 && memcmp(entry->key, key, 32) == 0) {
			victim = entry; /* refresh */
			break;
		}
		if (entry->inserted_at == 0 || now - entry->inserted_at >= cache->ttl_s) {
			victim = entry;
			break;
		}
		if (entry->inserted_at < victim->inserted_at)
			victim = entry;
	}
	pl_entry_wipe(cache, victim);
	memcpy(victim->key, key, 32);
	memcpy(cache->content_keys[victim - cache->entries], content_key, 32);
	memcpy(victim->key_id, key_id, 16);
	strncpy(victim->tenant, tenant, TENANT_NAME_MAX);
	victim->inserted_at = now > 0 ? now : 1;
	pthread_mutex_unlock(&cache->locks[set]);
}

size_t pl_cache_purge(struct pl_cache *cache, lic_keyring *keyring, const struct keyring_snapshot *snapshot)
{
	if (cache->disabled)
		return 0;
	uint64_t generation = keyring_snapshot_generation(snapshot);
	uint_fast64_t seen = atomic_load(&cache->purged_generation);
	if (seen >= generation ||
	    !atomic_compare_exchange_strong(&cache->purged_generation, &seen, generation))
		return 0; /* another worker purges (or purged) for this generation */
	size_t dropped = 0;
	for (size_t set = 0; set < cache->sets; set++) {
		pthread_mutex_lock(&cache->locks[set]);
		for (int i = 0; i < WAYS; i++) {
			struct pl_entry *entry = &cache->entries[set * WAYS + i];
			if (entry->inserted_at == 0)
				continue;
			const struct tenant *tenant = NULL;
			const struct key_version *version = NULL;
			if (keyring_snapshot_tenant(keyring, snapshot, entry->tenant, &tenant, NULL) ==
			    LIC_OK)
				version = tenant_find_key_id(tenant, entry->key_id);
			if (version == NULL || version->state == LIC_KEY_STATE_REVOKED ||
			    version->state == LIC_KEY_STATE_DESTROYED || tenant->disabled) {
				pl_entry_wipe(cache, entry);
				dropped++;
			}
		}
		pthread_mutex_unlock(&cache->locks[set]);
	}
	return dropped;
}

size_t pl_cache_count(struct pl_cache *cache)
{
	size_t count = 0;
	for (size_t set = 0; !cache->disabled && set < cache->sets; set++) {
		pthread_mutex_lock(&cache->locks[set]);
		for (int i = 0; i < WAYS; i++)
			count += cache->entries[set * WAYS + i].inserted_at != 0;
		pthread_mutex_unlock(&cache->locks[set]);
	}
	return count;
}

lic_status rac_cache_new(size_t entries, struct rac_cache **out, lic_error *error)
{
	struct rac_cache *cache = calloc(1, sizeof *cache);
	if (cache == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	if (entries == SIZE_MAX) {
		cache->disabled = true;
		*out = cache;
		return LIC_OK;
	}
	cache->sets = sets_for(entries);
	cache->entries = calloc(cache->sets * WAYS, sizeof *cache->entries);
	cache->locks = new_locks(cache->sets);
	if (cache->entries == NULL || cache->locks == NULL) {
		rac_cache_free(cache);
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	}
	*out = cache;
	return LIC_OK;
}

void rac_cache_free(struct rac_cache *cache)
{
	if (cache == NULL)
		return;
	for (size_t i = 0; cache->entries && i < cache->sets * WAYS; i++)
		EVP_PKEY_free(cache->entries[i].user_key);
	free(cache->entries);
	free_locks(cache->locks, cache->sets);
	free(cache);
}

bool rac_cache_lookup(struct rac_cache *cache, const uint8_t digest[32], int64_t now, EVP_PKEY **user_key)
{
	if (cache->disabled)
		return false;
	size_t set = set_of(digest, cache->sets);
	bool found = false;
	pthread_mutex_lock(&cache->locks[set]);
	for (int i = 0; i < WAYS; i++) {
		struct rac_entry *entry = &cache->entries[set * WAYS + i];
		if (entry->inserted_at != 0 && memcmp(entry->digest, digest, 32) == 0 &&
		    now - entry->inserted_at < RAC_TTL && EVP_PKEY_up_ref(entry->user_key) == 1) {
			*user_key = entry->user_key;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&cache->locks[set]);
	return found;
}

void rac_cache_insert(struct rac_cache *cache, const uint8_t digest[32], EVP_PKEY *user_key, int64_t now)
{
	if (cache->disabled || EVP_PKEY_up_ref(user_key) != 1)
		return;
	size_t set = set_of(digest, cache->sets);
	pthread_mutex_lock(&cache->locks[set]);
	struct rac_entry *victim = &cache->entries[set * WAYS];
	for (int i = 0; i < WAYS; i++) {
		struct rac_entry *entry = &cache->entries[set * WAYS + i];
		if (entry->inserted_at == 0 || memcmp(entry->digest, digest, 32) == 0) {
			victim = entry;
			break;
		}
		if (entry->inserted_at < victim->inserted_at)
			victim = entry;
	}
	EVP_PKEY_free(victim->user_key);
	memcpy(victim->digest, digest, 32);
	victim->user_key = user_key;
	victim->inserted_at = now > 0 ? now : 1;
	pthread_mutex_unlock(&cache->locks[set]);
}
