/*
 * backup.h: `licensor backup` and `licensor restore` (DESIGN.md §7): the
 * backup file, its writer and reader, and the merge rules of a restore.
 *
 * A backup file (docs/backup.md is the full format) is text:
 *
 *   <BackupHeader xmlns="urn:licensor:v1" Format="1" StoreId="…" CreatedAt="…"
 *                 Tenants="T" Versions="V"/>                          line 1
 *   base64(kek_seal(audit.head text))                                  line 2
 *   base64(kek_seal(tenant name ‖ 0x00 ‖ tenant file bytes))           T lines
 *   sha256 <64 hex: SHA-256 of every byte before this line>            last
 *
 * Record i (0 = the audit head, 1..T = tenants in name order) is sealed under
 * the store's KEK with AAD = "licensor-backup-v1" ‖ store id (36 bytes) ‖
 * header line (without its newline) ‖ i (4 bytes, big endian), so a record
 * cannot be moved, dropped or replayed into another backup or world.
 *
 * Promises: the header (the world a backup belongs to) is readable without
 * the KEK; decoding checks the digest first (MALFORMED "damaged"), then the
 * world (STATE naming both store ids), then every record and every tenant
 * file (the checks of tenant_file.h), and never half-loads. A restore checks
 * everything before it writes anything; it never drops a version the store
 * has and the backup lacks unless forced, never brings back the key material
 * of a version destroyed in the store, and keeps a revocation made in the
 * store after the backup. Nothing here prints or records key material.
 */
#ifndef LICENSOR_KEYRING_BACKUP_H
#define LICENSOR_KEYRING_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin.h"
#include "store.h"
#include "tenant.h"

#define BACKUP_FORMAT 1
#define BACKUP_AAD_LABEL "licensor-backup-v1"
#define BACKUP_FILE_MAX_BYTES ((size_t)2 << 30) /* 2 GiB */
#define BACKUP_HEADER_MAX_BYTES 1024
#define BACKUP_AUDIT_HEAD_MAX 256

/* ---- the backup in memory ---- */

struct backup_tenant {
	char *name;
	char *text; /* the tenant file exactly as the store holds it (NUL-terminated) */
	size_t length;
	struct tenant *tenant; /* parsed from text */
};

struct backup {
	char store_id[STORE_ID_LENGTH];
	int64_t created_at;
	char audit_head[BACKUP_AUDIT_HEAD_MAX]; /* "seq N sha256 <hex>", or "" when the store had none */
	struct backup_tenant *tenants;          /* sorted by name */
	size_t tenant_count;
	size_t tenant_capacity;
	size_t version_count;
};

/* The plaintext header: what a backup is of, readable without the KEK. */
struct backup_header {
	char store_id[STORE_ID_LENGTH];
	int64_t created_at;
	uint64_t tenant_count;
	uint64_t version_count;
};

/* An empty backup of the world `store_id` taken at `created_at` (backup_free). */
struct backup *backup_new(const char *store_id, int64_t created_at);
/* Wipes and frees. NULL is a no-op. */
void backup_free(struct backup *backup);
/* Adds tenant `name` from its file bytes (copied; parsed and checked as the
 * store would, the name included). Names must come in increasing order. */
lic_status backup_add_tenant(struct backup *backup, const char *name, const char *text, size_t length,
			     lic_error *error);

/* Writes the backup file into a new buffer (*out, free()). */
lic_status backup_encode(const struct backup *backup, const struct kek *kek, char **out, size_t *length,
			 lic_error *error);
/* Checks the digest and reads the header. MALFORMED when damaged. */
lic_status backup_read_header(const char *data, size_t length, struct backup_header *header,
			      lic_error *error);
/* Checks the digest, that the backup is of world `store_id` (LIC_STATE
 * otherwise, naming both), then opens and checks every record (*out, backup_free). */
lic_status backup_decode(const char *data, size_t length, const char *store_id, const struct kek *kek,
			 struct backup **out, lic_error *error);

/* ---- restore: the plan ---- */

enum restore_note_kind {
	RESTORE_NOTE_LOST,           /* the store has it, the backup lacks it: dropped only with force */
	RESTORE_NOTE_KEPT_DESTROYED, /* destroyed in the store: stays destroyed */
	RESTORE_NOTE_KEPT_REVOKED,  /* revoked in the store after the backup's last decision: stays revoked */
	RESTORE_NOTE_BYOK,          /* a PKCS#11 reference: the key itself must be in the token */
	RESTORE_NOTE_NOT_IN_BACKUP, /* a tenant of the store that the backup lacks: left alone */
};

struct restore_note {
	enum restore_note_kind kind;
	char tenant[TENANT_NAME_MAX + 1];
	uint32_t version;                   /* 0 for RESTORE_NOTE_NOT_IN_BACKUP */
	char key_id_hex[KEY_ID_HEX_LENGTH]; /* "" for RESTORE_NOTE_NOT_IN_BACKUP */
	char *uri;                          /* BYOK only: the URI with any pin-value redacted */
};

enum restore_action { RESTORE_WRITE_NEW, RESTORE_REPLACE, RESTORE_UNCHANGED };

struct restore_tenant {
	enum restore_action action;
	struct tenant *merged; /* what is written (owned) */
	uint64_t stored_revision;
};

struct restore_plan {
	struct restore_tenant *tenants;
	size_t tenant_count, tenant_capacity;
	struct restore_note *notes;
	size_t note_count, note_capacity;
	size_t lost_count;    /* RESTORE_NOTE_LOST notes */
	size_t version_count; /* versions in the merged tenants */
};

struct restore_plan *restore_plan_new(void);
void restore_plan_free(struct restore_plan *plan);

/* Merges one tenant of the backup with the store's copy (`stored` NULL when
 * the store has no such tenant) by the rules of docs/backup.md, recording
 * notes. Refuses (LIC_STATE) a key id that is a different version number in
 * each, or a merge whose result breaks a keyring invariant. */
lic_status restore_plan_add(struct restore_plan *plan, const struct tenant *stored,
			    const struct tenant *backed_up, lic_error *error);
/* Records a store tenant that the backup does not hold (left alone). */
lic_status restore_plan_note_left_alone(struct restore_plan *plan, const char *tenant, lic_error *error);
/* Refuses (LIC_STATE, listing them) when versions would be lost and !force. */
lic_status restore_plan_check(const struct restore_plan *plan, bool force, lic_error *error);

/* Copies uri into out with the value of any `pin-value=` attribute replaced by ***. */
void backup_redact_uri(const char *uri, char *out, size_t size);

/* ---- on a store ---- */

typedef void (*backup_progress)(void *context, size_t done, size_t total);

struct backup_summary {
	size_t tenant_count;
	size_t version_count;
	size_t byok_count;
};

/* Reads `directory`/audit.head into out (its one line, without the newline);
 * "" only when the file does not exist. Any other failure to read it
 * (too large, not a regular file, unreadable) is returned as an error. */
lic_status backup_read_audit_head(const char *directory, char out[BACKUP_AUDIT_HEAD_MAX], lic_error *error);

/* Under the store lock: reads every tenant, writes the backup to `path`
 * atomically (0600) and appends the "backup" audit event; when that append
 * fails, the file just written is removed. Refuses (LIC_USAGE) a `path` whose
 * resolved directory is the store directory or below it. */
lic_status backup_store(const struct admin_context *context, const char *path, backup_progress progress,
			void *progress_context, struct backup_summary *summary, lic_error *error);

/* Under the store lock: decodes the backup, builds and checks the plan, then
 * writes each changed tenant atomically and appends one "restore" audit
 * event. On success *plan (restore_plan_free) says what was done. Creates tenants/ (0700) in a store that is
 * only its world.xml. */
lic_status restore_store(const struct admin_context *context, const char *data, size_t length, bool force,
			 backup_progress progress, void *progress_context, struct restore_plan **plan,
			 lic_error *error);

#endif
