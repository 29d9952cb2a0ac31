/*
 * engine_cache.h: the engine's two caches (DESIGN.md §5).
 *
 * PL cache: the content key a PL unwraps to, keyed by SHA-256(digest of the
 * PL Body ‖ EnablingBits), so a hit skips the private-key unwrap. Bounded
 * (set-associative, 4 ways, the oldest way evicted), entries expire after a
 * TTL, content keys live in secure memory (never in a core dump; 32 bytes an
 * entry, 2 MiB for the default 65,536 entries) and are wiped when
 * evicted, expired or purged. pl_cache_purge drops every entry of a version
 * that is revoked or destroyed in the given snapshot; the engine calls it the
 * first time a worker sees a new snapshot generation, before any lookup under
 * that snapshot.
 *
 * RAC cache: the digests of RACs whose signature verified, with their decoded
 * user keys, so a RAC seen again skips both the signature check and the key
 * decoding (its validity period and signing key's state are still checked
 * every time). Same bounds, TTL one hour.
 *
 * Both are safe to use from every worker at once (a lock per set).
 */
#ifndef LICENSOR_CORE_ENGINE_CACHE_H
#define LICENSOR_CORE_ENGINE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "keyring/snapshot.h"
#include "licensor.h"

struct pl_cache;
struct rac_cache;

/* entries 0 = default (65536); SIZE_MAX = disabled (lookups miss, inserts are dropped). */
lic_status pl_cache_new(size_t entries, int64_t ttl_s, struct pl_cache **out, lic_error *error);
void pl_cache_free(struct pl_cache *cache);
bool pl_cache_lookup(struct pl_cache *cache, const uint8_t key[32], int64_t now, uint8_t content_key[32]);
/* `generation` is the snapshot generation the caller checked the version
 * under: an insert from a snapshot older than the last purge is dropped, so a
 * key of a version revoked meanwhile cannot slip back in. */
void pl_cache_insert(struct pl_cache *cache, const uint8_t key[32], const uint8_t content_key[32],
		     const char *tenant, const uint8_t key_id[16], int64_t now, uint64_t generation);
/* Drops entries whose version is revoked, destroyed or gone in `snapshot`
 * (inside a read section). Runs once per snapshot generation. Returns the
 * number of entries dropped. */
size_t pl_cache_purge(struct pl_cache *cache, lic_keyring *keyring, const struct keyring_snapshot *snapshot);
size_t pl_cache_count(struct pl_cache *cache);

lic_status rac_cache_new(size_t entries, struct rac_cache **out, lic_error *error);
void rac_cache_free(struct rac_cache *cache);
/* A hit hands back the RAC's decoded user key (a new reference: free it). */
bool rac_cache_lookup(struct rac_cache *cache, const uint8_t digest[32], int64_t now, EVP_PKEY **user_key);
/* Remembers a verified RAC and its decoded user key (the cache takes its own reference). */
void rac_cache_insert(struct rac_cache *cache, const uint8_t digest[32], EVP_PKEY *user_key, int64_t now);

#endif
