/*
 * snapshot.c: lic_keyring, the lock-free read side of a store (see
 * snapshot.h for the design). Writers of the store never touch a published
 * snapshot: they write files, then lic_keyring_reload builds a new snapshot,
 * publishes it with rcu_assign_pointer, waits for readers of the old one
 * (synchronize_rcu) and only then drops the old one's references.
 */
#define _LGPL_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <urcu-bp.h>

#include "encoding.h"
#include "error.h"
#include "file_io.h"
#include "snapshot.h"

struct tenant_slot {
	_Atomic(struct tenant *) tenant; /* parsed on first use, then immutable */
	char name[TENANT_NAME_MAX + 1];  /* inline: a lookup touches one line of the slot */
	uint64_t hash;
	dev_t device;
	ino_t inode;
	off_t size;
	struct timespec modified;
	atomic_ulong references; /* snapshots holding this slot */
};

/* A table entry carries the name's hash, so a probe compares without leaving
 * the table. */
struct table_entry {
	uint64_t hash;
	struct tenant_slot *slot;
};

struct keyring_snapshot {
	uint64_t generation;
	size_t count;
	struct tenant_slot **slots; /* sorted by name */
	struct table_entry *table;  /* open addressing by name hash */
	size_t table_size;          /* a power of two */
};

struct lic_keyring {
	struct store *store;
	const lic_clock *clock;
	struct keyring_snapshot *current; /* RCU-protected */
	pthread_mutex_t reload_lock;      /* one reload at a time */
	struct keyring_watch watch;       /* lic_keyring_watch */
};

struct keyring_watch *keyring_watch_state(lic_keyring *keyring)
{
	return &keyring->watch;
}

/* liburcu-bp 0.13 hands out its per-thread reader records with less than the
 * 128-byte alignment their type declares. x86-64 does not care, but UBSan's
 * alignment check does when the inline fast path (_LGPL_SOURCE) is compiled
 * here, so CMakeLists.txt turns that one check off for this file. */
void keyring_read_enter(void)
{
	urcu_bp_read_lock();
}

void keyring_read_leave(void)
{
	urcu_bp_read_unlock();
}

static uint64_t name_hash(const char *name)
{
	uint64_t hash = 1469598103934665603ull; /* FNV-1a */
	for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
		hash ^= *c;
		hash *= 1099511628211ull;
	}
	return hash ^ (hash >> 29);
}

static void slot_release(struct tenant_slot *slot)
{
	if (atomic_fetch_sub(&slot->references, 1) != 1)
		return;
	tenant_free(atomic_load(&slot->tenant));
	free(slot);
}

static void snapshot_free(struct keyring_snapshot *snapshot)
{
	if (snapshot == NULL)
		return;
	for (size_t i = 0; i < snapshot->count; i++)
		slot_release(snapshot->slots[i]);
	free(snapshot->slots);
	free(snapshot->table);
	free(snapshot);
}

static struct tenant_slot *snapshot_find(const struct keyring_snapshot *snapshot, const char *name,
					 uint64_t hash)
{
	size_t mask = snapshot->table_size - 1;
	for (size_t index = hash & mask;; index = (index + 1) & mask) {
		const struct table_entry *entry = &snapshot->table[index];
		if (entry->slot == NULL)
			return NULL;
		if (entry->hash == hash && strcmp(entry->slot->name, name) == 0)
			return entry->slot;
	}
}

static bool same_file(const struct tenant_slot *slot, const struct stat *info)
{
	return slot->device == info->st_dev && slot->inode == info->st_ino && slot->size == info->st_size &&
	       slot->modified.tv_sec == info->st_mtim.tv_sec &&
	       slot->modified.tv_nsec == info->st_mtim.tv_nsec;
}

/* Builds a snapshot of the store's tenants, sharing unchanged slots of `previous`. */
static lic_status snapshot_build(lic_keyring *keyring, const struct keyring_snapshot *previous,
				 struct keyring_snapshot **out, lic_error *error)
{
	lic_status status = LIC_OK;
	char **names = NULL;
	size_t count = 0;
	char tenants_path[PATH_MAX];
	int tenants_fd = -1;
	struct keyring_snapshot *snapshot = calloc(1, sizeof *snapshot);
	if (snapshot == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	LIC_TRY(store_list_tenants(keyring->store, &names, &count, error));
	LIC_TRY(file_join(tenants_path, sizeof tenants_path, keyring->store->directory, "tenants", error));
	/* stat relative to tenants/, not by full path: a reload of a large store is
	 * mostly these stats. */
	tenants_fd = open(tenants_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tenants_fd < 0 && !(errno == ENOENT && count == 0)) /* a store of world.xml alone is empty */
		LIC_FAIL(error, LIC_IO, "cannot open %s: %s", tenants_path, strerror(errno));
	snapshot->generation = previous ? previous->generation + 1 : 1;
	snapshot->slots = calloc(count ? count : 1, sizeof *snapshot->slots);
	snapshot->table_size = 16;
	while (snapshot->table_size < 2 * count)
		snapshot->table_size *= 2;
	snapshot->table = calloc(snapshot->table_size, sizeof *snapshot->table);
	if (snapshot->slots == NULL || snapshot->table == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	for (size_t i = 0; i < count; i++) {
		char file_name[TENANT_NAME_MAX + 8];
		struct stat info;
		snprintf(file_name, sizeof file_name, "%s.xml", names[i]);
		if (fstatat(tenants_fd, file_name, &info, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(info.st_mode))
			continue; /* vanished between the scan and the stat */
		uint64_t hash = name_hash(names[i]);
		struct tenant_slot *slot = previous ? snapshot_find(previous, names[i], hash) : NULL;
		if (slot != NULL && same_file(slot, &info)) {
			atomic_fetch_add(&slot->references, 1);
		} else {
			slot = calloc(1, sizeof *slot);
			if (slot == NULL)
				LIC_FAIL(error, LIC_INTERNAL, "out of memory");
			memcpy(slot->name, names[i], strlen(names[i]) + 1);
			slot->hash = hash;
			slot->device = info.st_dev;
			slot->inode = info.st_ino;
			slot->size = info.st_size;
			slot->modified = info.st_mtim;
			atomic_init(&slot->tenant, NULL);
			atomic_init(&slot->references, 1);
		}
		snapshot->slots[snapshot->count++] = slot;
		size_t mask = snapshot->table_size - 1;
		size_t index = hash & mask;
		while (snapshot->table[index].slot != NULL)
			index = (index + 1) & mask;
		snapshot->table[index].hash = hash;
		snapshot->table[index].slot = slot;
	}
	*out = snapshot;
	snapshot = NULL;
out:
	if (tenants_fd >= 0)
		close(tenants_fd);
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
	snapshot_free(snapshot);
	return status;
}

lic_status keyring_open_store(struct store *store, const lic_clock *clock, lic_keyring **out,
			      lic_error *error)
{
	lic_keyring *keyring = calloc(1, sizeof *keyring);
	if (keyring == NULL) {
		store_close(store);
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	}
	keyring->store = store;
	keyring->clock = clock ? clock : lic_clock_system();
	keyring->watch.fd = -1;
	keyring->watch.tenants_descriptor = -1;
	pthread_mutex_init(&keyring->reload_lock, NULL);
	struct keyring_snapshot *snapshot = NULL;
	lic_status status = snapshot_build(keyring, NULL, &snapshot, error);
	if (status != LIC_OK) {
		lic_keyring_close(keyring);
		return status;
	}
	rcu_assign_pointer(keyring->current, snapshot);
	*out = keyring;
	return LIC_OK;
}

lic_status lic_keyring_open(const lic_keyring_options *options, lic_keyring **out, lic_error *error)
{
	if (options == NULL || options->store_dir == NULL)
		return lic_error_set(error, LIC_USAGE, "no store directory given");
	struct store_options store_options = {
	    .directory = options->store_dir,
	    .kek_file = options->kek_file,
	    .passphrase_file = options->passphrase_file,
	};
	struct store *store = NULL;
	lic_status status = store_open(&store_options, &store, error);
	if (status != LIC_OK)
		return status;
	return keyring_open_store(store, options->clock, out, error);
}

void lic_keyring_close(lic_keyring *keyring)
{
	if (keyring == NULL)
		return;
	struct keyring_snapshot *old = keyring->current;
	rcu_assign_pointer(keyring->current, NULL);
	urcu_bp_synchronize_rcu();
	snapshot_free(old);
	store_close(keyring->store);
	if (keyring->watch.fd >= 0)
		close(keyring->watch.fd);
	pthread_mutex_destroy(&keyring->reload_lock);
	free(keyring);
}

lic_status lic_keyring_reload(lic_keyring *keyring, lic_error *error)
{
	pthread_mutex_lock(&keyring->reload_lock);
	struct keyring_snapshot *old =
	    keyring->current; /* only reloads write it: the mutex makes this safe */
	struct keyring_snapshot *fresh = NULL;
	lic_status status = snapshot_build(keyring, old, &fresh, error);
	if (status == LIC_OK) {
		rcu_assign_pointer(keyring->current, fresh);
		urcu_bp_synchronize_rcu();
		snapshot_free(old);
	}
	pthread_mutex_unlock(&keyring->reload_lock);
	return status;
}

const struct keyring_snapshot *keyring_current(lic_keyring *keyring)
{
	return rcu_dereference(keyring->current);
}

uint64_t keyring_snapshot_generation(const struct keyring_snapshot *snapshot)
{
	return snapshot->generation;
}

size_t keyring_snapshot_tenant_count(const struct keyring_snapshot *snapshot)
{
	return snapshot->count;
}

struct store *keyring_store(lic_keyring *keyring)
{
	return keyring->store;
}

const lic_clock *keyring_clock(lic_keyring *keyring)
{
	return keyring->clock;
}

lic_status keyring_snapshot_tenant(lic_keyring *keyring, const struct keyring_snapshot *snapshot,
				   const char *name, const struct tenant **out, lic_error *error)
{
	struct tenant_slot *slot = snapshot_find(snapshot, name, name_hash(name));
	if (slot == NULL)
		return lic_error_set(error, LIC_UNKNOWN_TENANT, "unknown tenant %.64s", name);
	struct tenant *tenant = atomic_load_explicit(&slot->tenant, memory_order_acquire);
	if (tenant != NULL) {
		*out = tenant;
		return LIC_OK;
	}
	struct tenant *loaded = NULL;
	lic_status status = store_load_tenant(keyring->store, name, &loaded, error);
	if (status != LIC_OK)
		return status;
	struct tenant *expected = NULL;
	if (!atomic_compare_exchange_strong_explicit(&slot->tenant, &expected, loaded, memory_order_acq_rel,
						     memory_order_acquire)) {
		tenant_free(loaded); /* another reader published first */
		loaded = expected;
	}
	*out = loaded;
	return LIC_OK;
}

size_t lic_keyring_tenant_count(lic_keyring *keyring)
{
	keyring_read_enter();
	const struct keyring_snapshot *snapshot = keyring_current(keyring);
	size_t count = snapshot ? snapshot->count : 0;
	keyring_read_leave();
	return count;
}

lic_status lic_keyring_lookup(lic_keyring *keyring, const char *tenant_name, const char *key_id_hex,
			      lic_key_info *out, lic_error *error)
{
	uint8_t key_id[KEY_ID_LENGTH];
	lic_status status = hex_decode(key_id_hex, key_id, KEY_ID_LENGTH, error);
	if (status != LIC_OK)
		return lic_error_set(error, LIC_MALFORMED, "bad key id (expected 32 hex digits)");
	keyring_read_enter();
	const struct keyring_snapshot *snapshot = keyring_current(keyring);
	const struct tenant *tenant = NULL;
	status = keyring_snapshot_tenant(keyring, snapshot, tenant_name, &tenant, error);
	if (status == LIC_OK) {
		const struct key_version *version = tenant_find_key_id(tenant, key_id);
		if (version == NULL) {
			status = lic_error_set(error, LIC_UNKNOWN_KEY, "tenant %s never had key %.32s",
					       tenant->name, key_id_hex);
		} else {
			out->version = version->number;
			memcpy(out->key_id, version->key_id_hex, sizeof out->key_id);
			/* The clock is read only when the answer depends on it. */
			out->state =
			    tenant_state_depends_on_clock(tenant, version)
				? tenant_effective_state(tenant, version, lic_clock_now(keyring->clock))
				: version->state;
			out->compromised = version->compromised;
			out->tenant_disabled = tenant->disabled;
		}
	}
	keyring_read_leave();
	return status;
}
