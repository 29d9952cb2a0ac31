/*
 * engine_key_usage.c: the per-version usage table and the workers' per-batch
 * tallies (see engine_key_usage.h).
 *
 * The table is open addressing with linear probing over at least twice as
 * many slots as it may fill, so a probe stays short; slots are never emptied,
 * so no tombstones. One mutex guards it: each worker takes it once per batch,
 * a metrics scrape once per read.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_key_usage.h"
#include "keyring/error.h"
#include "keyring/tenant.h"

#define DEFAULT_LIMIT 256
#define TALLY_FIRST_CAPACITY 16

_Static_assert(LIC_TENANT_NAME_MAX == TENANT_NAME_MAX, "the public tenant name bound is the keyring's");

struct key_usage_slot {
	bool in_use;
	uint32_t version;
	char tenant[TENANT_NAME_MAX + 1];
	uint64_t private_key_operations, compromised_uses;
};

struct key_usage_table {
	pthread_mutex_t lock;
	struct key_usage_slot *slots;
	size_t slot_count; /* a power of two, at least twice `limit` */
	size_t used, limit;
	uint64_t other_operations; /* of pairs that found the table full */
};

lic_status key_usage_table_new(size_t limit, struct key_usage_table **out, lic_error *error)
{
	lic_status status = LIC_OK;
	struct key_usage_table *table = NULL;
	if (limit == 0)
		limit = DEFAULT_LIMIT;
	if (limit > SIZE_MAX / 4 / sizeof(struct key_usage_slot))
		LIC_FAIL(error, LIC_USAGE, "key_usage_entries is too large (%zu)", limit);
	table = calloc(1, sizeof *table);
	if (table == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	table->limit = limit;
	table->slot_count = 2;
	while (table->slot_count < 2 * limit)
		table->slot_count *= 2;
	table->slots = calloc(table->slot_count, sizeof *table->slots);
	if (table->slots == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory for %zu key usage entries", limit);
	pthread_mutex_init(&table->lock, NULL);
	*out = table;
	table = NULL;
out:
	if (table != NULL)
		free(table->slots);
	free(table);
	return status;
}

void key_usage_table_free(struct key_usage_table *table)
{
	if (table == NULL)
		return;
	pthread_mutex_destroy(&table->lock);
	free(table->slots);
	free(table);
}

size_t key_usage_table_limit(const struct key_usage_table *table)
{
	return table->limit;
}

static uint64_t pair_hash(const char *tenant, uint32_t version)
{
	uint64_t hash = 0xcbf29ce484222325u; /* FNV-1a */
	for (const unsigned char *cursor = (const unsigned char *)tenant; *cursor != '\0'; cursor++)
		hash = (hash ^ *cursor) * 0x100000001b3u;
	for (int shift = 0; shift < 32; shift += 8)
		hash = (hash ^ ((version >> shift) & 0xFF)) * 0x100000001b3u;
	return hash;
}

/* The pair's slot, claimed if the table has room; NULL when it is full.
 * Under the lock. */
static struct key_usage_slot *table_slot(struct key_usage_table *table, const char *tenant, uint32_t version)
{
	size_t mask = table->slot_count - 1;
	for (size_t index = (size_t)pair_hash(tenant, version) & mask;; index = (index + 1) & mask) {
		struct key_usage_slot *slot = &table->slots[index];
		if (!slot->in_use) {
			if (table->used == table->limit)
				return NULL;
			slot->in_use = true;
			slot->version = version;
			snprintf(slot->tenant, sizeof slot->tenant, "%s", tenant);
			table->used++;
			return slot;
		}
		if (slot->version == version && strcmp(slot->tenant, tenant) == 0)
			return slot;
	}
}

static int compare_usage(const void *a, const void *b)
{
	const lic_key_usage *x = a, *y = b;
	int order = strcmp(x->tenant, y->tenant);
	if (order != 0)
		return order;
	return x->version < y->version ? -1 : x->version > y->version;
}

size_t key_usage_table_read(struct key_usage_table *table, lic_key_usage *out, size_t capacity,
			    uint64_t *other_operations)
{
	size_t written = 0;
	pthread_mutex_lock(&table->lock);
	uint64_t other = table->other_operations;
	for (size_t i = 0; i < table->slot_count; i++) {
		const struct key_usage_slot *slot = &table->slots[i];
		if (!slot->in_use)
			continue;
		if (written == capacity) {
			other += slot->private_key_operations;
			continue;
		}
		lic_key_usage *usage = &out[written++];
		memcpy(usage->tenant, slot->tenant, sizeof usage->tenant);
		usage->version = slot->version;
		usage->private_key_operations = slot->private_key_operations;
		usage->compromised_uses = slot->compromised_uses;
	}
	pthread_mutex_unlock(&table->lock);
	if (written > 1)
		qsort(out, written, sizeof *out, compare_usage);
	if (other_operations != NULL)
		*other_operations = other;
	return written;
}

void key_usage_tally_add(struct key_usage_tally *tally, const char *tenant, uint32_t version,
			 uint64_t private_key_operations, uint64_t compromised_uses)
{
	if (tally->count > 0) {
		struct key_usage_tally_entry *last = &tally->entries[tally->count - 1];
		if (last->version == version &&
		    (last->tenant == tenant || strcmp(last->tenant, tenant) == 0)) {
			last->private_key_operations += private_key_operations;
			last->compromised_uses += compromised_uses;
			return;
		}
	}
	if (tally->count == tally->capacity) {
		size_t capacity = tally->capacity ? 2 * tally->capacity : TALLY_FIRST_CAPACITY;
		struct key_usage_tally_entry *entries = realloc(tally->entries, capacity * sizeof *entries);
		if (entries == NULL) {
			tally->unlisted_operations += private_key_operations;
			return;
		}
		tally->entries = entries;
		tally->capacity = capacity;
	}
	tally->entries[tally->count++] = (struct key_usage_tally_entry){
	    .tenant = tenant,
	    .version = version,
	    .private_key_operations = private_key_operations,
	    .compromised_uses = compromised_uses,
	};
}

void key_usage_tally_flush(struct key_usage_tally *tally, struct key_usage_table *table)
{
	if (tally->count == 0 && tally->unlisted_operations == 0)
		return;
	pthread_mutex_lock(&table->lock);
	for (size_t i = 0; i < tally->count; i++) {
		const struct key_usage_tally_entry *entry = &tally->entries[i];
		struct key_usage_slot *slot = table_slot(table, entry->tenant, entry->version);
		if (slot != NULL) {
			slot->private_key_operations += entry->private_key_operations;
			slot->compromised_uses += entry->compromised_uses;
		} else {
			table->other_operations += entry->private_key_operations;
		}
	}
	table->other_operations += tally->unlisted_operations;
	pthread_mutex_unlock(&table->lock);
	tally->count = 0;
	tally->unlisted_operations = 0;
}

void key_usage_tally_cleanup(struct key_usage_tally *tally)
{
	free(tally->entries);
	*tally = (struct key_usage_tally){0};
}
