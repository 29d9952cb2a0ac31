/*
 * keyring_fixture.h: the C side of the keyring benchmarks (bench_keyring.cc).
 *
 * The keyring's internal headers use C11 _Atomic and cannot be included from
 * C++, so everything that needs them lives behind this plain C interface:
 * building (once) and reusing the benchmark stores, warming a keyring, the
 * internal lookup path, rewriting one tenant file, and loading one tenant.
 *
 * Benchmark stores are cached under a root directory ($LICENSOR_BENCH_DIR,
 * default /tmp/licensor-bench-store), one store per shape:
 *   <root>/tenants-<N>/   N tenants "tenant-000000" … × 3 versions
 *                         (1 and 2 retained, 3 active), KEK in <store>/kek
 *   <root>/versions-<V>/  one tenant "wide" with V versions (V-1 retained,
 *                         the last active), KEK in <store>/kek
 * A store that exists with the right shape is reused; one whose build was
 * interrupted is completed. Files are genuine: real RSA-2048 key pairs,
 * private keys sealed under the store's KEK with the AAD of DESIGN.md §4,
 * written by store_save_tenant (without fsync, FILE_WRITE_NO_SYNC).
 *
 * Ownership: buffers and handles returned here are freed with the matching
 * bench_*_free / bench_*_close. Every fallible function returns a lic_status
 * and fills the caller's lic_error. Progress and summaries go to stderr.
 */
#ifndef LICENSOR_BENCH_KEYRING_FIXTURE_H
#define LICENSOR_BENCH_KEYRING_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "licensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BENCH_TENANT_NAME_SIZE 24 /* "tenant-000000" and a NUL, with room */
#define BENCH_KEY_ID_LENGTH 16
#define BENCH_KEY_ID_HEX_SIZE 33
#define BENCH_VERSIONS_PER_TENANT 3
#define BENCH_WIDE_TENANT_NAME "wide"

/* The cache root: $LICENSOR_BENCH_DIR, or /tmp/licensor-bench-store. Static string. */
const char *bench_cache_root(void);

/* Tenant `index` of a benchmark store: "tenant-000042". */
void bench_tenant_name(size_t index, char out[BENCH_TENANT_NAME_SIZE]);

/* Makes sure <cache_root>/tenants-<tenant_count> is a complete store of
 * tenant_count tenants × 3 versions, building what is missing, and writes its
 * path to store_dir. */
lic_status bench_store_prepare(const char *cache_root, size_t tenant_count, char *store_dir,
			       size_t store_dir_size, lic_error *error);

/* Makes sure <cache_root>/versions-<version_count> holds the tenant
 * BENCH_WIDE_TENANT_NAME with version_count versions; writes its path. */
lic_status bench_wide_store_prepare(const char *cache_root, size_t version_count, char *store_dir,
				    size_t store_dir_size, lic_error *error);

/* What a store directory occupies: allocated bytes (st_blocks) and file
 * sizes, over world.xml, the KEK and tenants/. */
struct bench_disk_usage {
	uint64_t allocated_bytes;
	uint64_t file_bytes;
	uint64_t files;
};
lic_status bench_store_disk_usage(const char *store_dir, struct bench_disk_usage *out, lic_error *error);

/* Opens a keyring on a benchmark store (lic_keyring_open; the KEK path comes
 * from world.xml). Close with lic_keyring_close. */
lic_status bench_keyring_open(const char *store_dir, lic_keyring **out, lic_error *error);

/* Parses every tenant of the keyring's current snapshot, so that lookups find
 * them loaded ("warm"). */
lic_status bench_keyring_warm(lic_keyring *keyring, lic_error *error);

/* The key ids of tenant `tenant` in version order: up to `capacity` of them,
 * as hex (NUL-terminated) and as bytes. *count receives the version count. */
lic_status bench_keyring_key_ids(lic_keyring *keyring, const char *tenant, char hex[][BENCH_KEY_ID_HEX_SIZE],
				 uint8_t binary[][BENCH_KEY_ID_LENGTH], size_t capacity, size_t *count,
				 lic_error *error);

/* The internal read path under lic_keyring_lookup, without the hex decoding,
 * the clock and the copy into lic_key_info: read section, current snapshot,
 * tenant by name, version by key id. Returns the version number, 0 when the
 * tenant or key is unknown. */
uint32_t bench_keyring_lookup_internal(lic_keyring *keyring, const char *tenant,
				       const uint8_t key_id[BENCH_KEY_ID_LENGTH]);

/* Rewrites tenant's file through store_save_tenant (revision + 1, without
 * fsync) under the store lock, so the next reload sees it changed. */
lic_status bench_keyring_rewrite_tenant(lic_keyring *keyring, const char *tenant, lic_error *error);

/* ---- one tenant, outside any keyring ---- */

typedef struct store bench_store;   /* opaque */
typedef struct tenant bench_tenant; /* opaque */

/* store_open on a benchmark store (KEK from world.xml). */
lic_status bench_store_open(const char *store_dir, bench_store **out, lic_error *error);
void bench_store_close(bench_store *store);

/* store_load_tenant: reads tenants/<name>.xml and parses it. */
lic_status bench_store_load_tenant(const bench_store *store, const char *name, bench_tenant **out,
				   lic_error *error);

/* The bytes of tenants/<name>.xml (free with bench_buffer_free). */
lic_status bench_store_read_tenant_file(const bench_store *store, const char *name, char **data,
					size_t *length, lic_error *error);
void bench_buffer_free(char *data);

/* tenant_file_parse of bytes already in memory. */
lic_status bench_tenant_parse(const char *data, size_t length, const char *name, bench_tenant **out,
			      lic_error *error);

size_t bench_tenant_version_count(const bench_tenant *tenant);
void bench_tenant_free(bench_tenant *tenant);

#ifdef __cplusplus
}
#endif
#endif
