/*
 * audit.h: the hash-chained, append-only audit log of a store (DESIGN.md §4).
 *
 * `<store>/audit.log` holds one JSON object per line. Each line carries the
 * SHA-256 (hex) of the previous line's bytes (without its newline) in "prev";
 * the first line carries 64 zeros. `<store>/audit.head` records the sequence
 * number and hash of the newest line, so that removing lines from the end is
 * found too. A line never holds key material.
 */
#ifndef LICENSOR_KEYRING_AUDIT_H
#define LICENSOR_KEYRING_AUDIT_H

#include <stdint.h>

#include "licensor.h"

struct audit_event {
	const char *actor;  /* who: operator name; required */
	const char *action; /* what: "rekey", "revoke", "tenant-add", …; required */
	const char *tenant; /* NULL when the event is about the store */
	uint32_t version;   /* 0 when the event is about no single version */
	const char *reason; /* NULL or e.g. "routine", "compromised" */
	const char *detail; /* NULL or a short free-text sentence */
};

/* Appends one event at time `now`. The caller holds the store's exclusive
 * lock. A torn last line (a writer killed mid-append: no final newline) is cut
 * off first. The line is fsynced, then audit.head is replaced atomically. */
lic_status audit_append(const char *store_dir, const struct audit_event *event, int64_t now,
			lic_error *error);

/* Checks, without writing, that audit_append would accept this event at this
 * time (fields valid UTF-8, the line within its size, the time within the
 * years 1970 to 9999). Writers call it, with audit_check_appendable, before
 * they change anything. */
lic_status audit_check_event(const struct audit_event *event, int64_t now, lic_error *error);

/* Checks, without writing, that audit_append would accept the log as it is
 * (its end agrees with audit.head). Writers call it under the lock before
 * they change anything, so a refused append never follows a committed change. */
lic_status audit_check_appendable(const char *store_dir, lic_error *error);

struct audit_report {
	uint64_t lines;         /* lines checked */
	uint64_t head_sequence; /* sequence recorded in audit.head (0 if none) */
};

/* Checks the whole chain: sequence numbers 1, 2, 3 … without gaps, every
 * "prev" equal to the hash of the line before, every line well-formed, and
 * the line named by audit.head present with that hash. On the first fault it
 * returns LIC_MALFORMED with a sentence naming the line number and the fault.
 * A store with no audit.log yet verifies with 0 lines. */
lic_status audit_verify(const char *store_dir, struct audit_report *report, lic_error *error);

#endif
