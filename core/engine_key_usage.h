/*
 * engine_key_usage.h: the engine's count of private-key operations (and
 * compromised-version uses) per (tenant, version), for metrics.
 *
 * The table counts the first `limit` distinct pairs it is given apart and
 * the operations of every later pair in one "other" count, so the label set a
 * scrape exports stays bounded however many tenants and versions the store
 * holds. (Compromised uses of a pair left out are only in the engine's global
 * count.) A pair once counted keeps its slot for the life of the table, which
 * keeps every count monotonic (Prometheus counters).
 *
 * The hot path never takes the table's lock per item: a worker sums a
 * batch's uses in its own key_usage_tally (no lock; consecutive uses of the
 * same version, which is what phases grouped by version produce, share one
 * entry) and adds the tally to the table under one lock per batch.
 */
#ifndef LICENSOR_CORE_ENGINE_KEY_USAGE_H
#define LICENSOR_CORE_ENGINE_KEY_USAGE_H

#include <stddef.h>
#include <stdint.h>

#include "licensor.h"

struct key_usage_table;

/* limit 0: the default (256). The table is freed with key_usage_table_free. */
lic_status key_usage_table_new(size_t limit, struct key_usage_table **out, lic_error *error);
void key_usage_table_free(struct key_usage_table *table);
/* The most pairs the table counts apart. */
size_t key_usage_table_limit(const struct key_usage_table *table);
/* As lic_engine_get_key_usage: copies at most `capacity` pairs into `out`,
 * sorted by tenant then version; the operations of the pairs left out go to
 * *other_operations (may be NULL) with those never counted apart. */
size_t key_usage_table_read(struct key_usage_table *table, lic_key_usage *out, size_t capacity,
			    uint64_t *other_operations);

/* One worker's uses of key versions during one batch. Embedded in the worker
 * (zero-initialised is empty); its buffer is kept between batches and freed
 * by key_usage_tally_cleanup. Used by one thread at a time. */
struct key_usage_tally {
	struct key_usage_tally_entry {
		const char *tenant; /* borrowed: must stay valid until the flush */
		uint32_t version;
		uint64_t private_key_operations, compromised_uses;
	} * entries;
	size_t count, capacity;
	/* operations the tally had no room for (out of memory): they count as "other" */
	uint64_t unlisted_operations;
};

/* Adds uses of (tenant, version). No lock, no allocation unless the version
 * differs from the previous call's and the buffer is full. */
void key_usage_tally_add(struct key_usage_tally *tally, const char *tenant, uint32_t version,
			 uint64_t private_key_operations, uint64_t compromised_uses);
/* Adds the tally to the table under the table's lock, then empties it. */
void key_usage_tally_flush(struct key_usage_tally *tally, struct key_usage_table *table);
void key_usage_tally_cleanup(struct key_usage_tally *tally);

#endif
