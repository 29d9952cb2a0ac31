/*
 * snapshot.h: the read side of a keyring store: an immutable snapshot of the
 * tenant index, replaced whole by lic_keyring_reload (RCU, liburcu-bp, so
 * reader threads need no registration).
 *
 * A snapshot maps tenant names to slots in O(1). A slot knows its file's
 * identity (inode, size, mtime) and parses the file on first use; the parsed
 * tenant is published once with a compare-and-swap and never changed after.
 * Slots whose file did not change are shared between consecutive snapshots
 * (reference counted), so a reload costs one directory scan and one stat per
 * tenant, and parsed tenants and decrypted keys survive it.
 */
#ifndef LICENSOR_KEYRING_SNAPSHOT_H
#define LICENSOR_KEYRING_SNAPSHOT_H

#include "store.h"
#include "tenant.h"

struct keyring_snapshot;
struct tenant_slot;

/* Enter/leave a read-side critical section; snapshots and tenants obtained
 * inside stay valid until the matching leave. Nestable, lock-free. */
void keyring_read_enter(void);
void keyring_read_leave(void);

/* The current snapshot (inside a read section). */
const struct keyring_snapshot *keyring_current(lic_keyring *keyring);
uint64_t keyring_snapshot_generation(const struct keyring_snapshot *snapshot);
size_t keyring_snapshot_tenant_count(const struct keyring_snapshot *snapshot);

/* The parsed tenant `name` of the snapshot, loading it on first use. Inside a
 * read section. LIC_UNKNOWN_TENANT when absent. */
lic_status keyring_snapshot_tenant(lic_keyring *keyring, const struct keyring_snapshot *snapshot,
				   const char *name, const struct tenant **out, lic_error *error);

/* The inotify state of lic_keyring_watch (watch.c); fd -1 until watched. */
struct keyring_watch {
	int fd;
	int tenants_descriptor;
};
struct keyring_watch *keyring_watch_state(lic_keyring *keyring);

/* The keyring's store (for the KEK) and clock. */
struct store *keyring_store(lic_keyring *keyring);
const lic_clock *keyring_clock(lic_keyring *keyring);

/* Builds a keyring over an already opened store (taken over: closed with the
 * keyring). Used by tests and tools that also write. */
lic_status keyring_open_store(struct store *store, const lic_clock *clock, lic_keyring **out,
			      lic_error *error);

#endif
