/*
 * backup.c: the backup file (writer and reader), the merge rules of a
 * restore, and the two store transactions `backup` and `restore`.
 *
 * The format is in backup.h and docs/backup.md. What this file promises
 * beyond it: a backup is a consistent cut (every tenant read under the
 * store's exclusive lock) written atomically, 0600; a restore reads, checks
 * and plans every tenant before it writes the first one; a refused restore
 * writes nothing. Record plaintexts hold tenant files, whose private keys are
 * themselves sealed under the KEK: no private key is ever decrypted here,
 * and nothing here prints or records key material.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/xmlmemory.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "audit.h"
#include "backup.h"
#include "encoding.h"
#include "error.h"
#include "file_io.h"
#include "secure_memory.h"
#include "tenant_file.h"
#include "utc_time.h"
#include "xml_document.h"

#define DIGEST_PREFIX "sha256 "
#define DIGEST_LINE_LENGTH (sizeof DIGEST_PREFIX - 1 + 2 * SHA256_DIGEST_LENGTH)
#define STORE_ID_TEXT_LENGTH (STORE_ID_LENGTH - 1)

/* ---- the backup in memory ------------------------------------------------ */

struct backup *backup_new(const char *store_id, int64_t created_at)
{
	struct backup *backup = calloc(1, sizeof *backup);
	if (backup == NULL)
		return NULL;
	snprintf(backup->store_id, sizeof backup->store_id, "%s", store_id);
	backup->created_at = created_at;
	return backup;
}

void backup_free(struct backup *backup)
{
	if (backup == NULL)
		return;
	for (size_t i = 0; i < backup->tenant_count; i++) {
		struct backup_tenant *entry = &backup->tenants[i];
		free(entry->name);
		if (entry->text != NULL)
			OPENSSL_cleanse(entry->text, entry->length);
		free(entry->text);
		tenant_free(entry->tenant);
	}
	free(backup->tenants);
	free(backup);
}

lic_status backup_add_tenant(struct backup *backup, const char *name, const char *text, size_t length,
			     lic_error *error)
{
	lic_status status = LIC_OK;
	struct backup_tenant entry = {0};
	if (!tenant_name_valid(name))
		LIC_FAIL(error, LIC_MALFORMED, "backup: bad tenant name '%.64s'", name);
	if (backup->tenant_count > 0 && strcmp(backup->tenants[backup->tenant_count - 1].name, name) >= 0)
		LIC_FAIL(error, LIC_MALFORMED, "backup: tenant %s is out of order or repeated", name);
	LIC_TRY(tenant_file_parse(text, length, name, &entry.tenant, error));
	entry.name = strdup(name);
	entry.text = malloc(length + 1);
	if (entry.name == NULL || entry.text == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	memcpy(entry.text, text, length);
	entry.text[length] = '\0';
	entry.length = length;
	if (backup->tenant_count == backup->tenant_capacity) {
		size_t capacity = backup->tenant_capacity ? 2 * backup->tenant_capacity : 16;
		struct backup_tenant *grown = realloc(backup->tenants, capacity * sizeof *grown);
		if (grown == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
		backup->tenants = grown;
		backup->tenant_capacity = capacity;
	}
	backup->version_count += entry.tenant->version_count;
	backup->tenants[backup->tenant_count++] = entry;
	memset(&entry, 0, sizeof entry);
out:
	free(entry.name);
	if (entry.text != NULL)
		OPENSSL_cleanse(entry.text, length);
	free(entry.text);
	tenant_free(entry.tenant);
	return status;
}

/* ---- the file ------------------------------------------------------------- */

static size_t record_aad(const char *store_id, const char *header, size_t header_length, uint32_t index,
			 uint8_t *out)
{
	size_t used = 0;
	memcpy(out, BACKUP_AAD_LABEL, sizeof BACKUP_AAD_LABEL - 1);
	used += sizeof BACKUP_AAD_LABEL - 1;
	memcpy(out + used, store_id, STORE_ID_TEXT_LENGTH);
	used += STORE_ID_TEXT_LENGTH;
	memcpy(out + used, header, header_length);
	used += header_length;
	out[used++] = (uint8_t)(index >> 24);
	out[used++] = (uint8_t)(index >> 16);
	out[used++] = (uint8_t)(index >> 8);
	out[used++] = (uint8_t)index;
	return used;
}

#define RECORD_AAD_MAX (sizeof BACKUP_AAD_LABEL + STORE_ID_LENGTH + BACKUP_HEADER_MAX_BYTES + 4)

/* A growing text buffer for the file being written. */
struct text_builder {
	char *data;
	size_t length, capacity;
};

static lic_status builder_append(struct text_builder *builder, const char *text, size_t length,
				 lic_error *error)
{
	if (builder->length + length + 1 > builder->capacity) {
		size_t capacity = builder->capacity ? builder->capacity : 4096;
		while (capacity < builder->length + length + 1)
			capacity *= 2;
		char *grown = realloc(builder->data, capacity);
		if (grown == NULL)
			return lic_error_set(error, LIC_INTERNAL, "out of memory");
		builder->data = grown;
		builder->capacity = capacity;
	}
	memcpy(builder->data + builder->length, text, length);
	builder->length += length;
	builder->data[builder->length] = '\0';
	return LIC_OK;
}

static lic_status append_record(struct text_builder *builder, const struct kek *kek, const uint8_t *aad,
				size_t aad_length, const uint8_t *plaintext, size_t plaintext_length,
				lic_error *error)
{
	lic_status status = LIC_OK;
	uint8_t *sealed = NULL;
	size_t sealed_length = 0;
	char *encoded = NULL;
	LIC_TRY(kek_seal(kek, aad, aad_length, plaintext, plaintext_length, &sealed, &sealed_length, error));
	encoded = base64_encode(sealed, sealed_length);
	if (encoded == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	LIC_TRY(builder_append(builder, encoded, strlen(encoded), error));
	LIC_TRY(builder_append(builder, "\n", 1, error));
out:
	free(sealed);
	free(encoded);
	return status;
}

static int format_header(const struct backup *backup, char *out, size_t size)
{
	char created[UTC_TIME_LENGTH];
	utc_time_format(backup->created_at, created);
	return snprintf(out, size,
			"<BackupHeader xmlns=\"" LICENSOR_NAMESPACE "\" Format=\"%d\" StoreId=\"%s\" "
			"CreatedAt=\"%s\" Tenants=\"%zu\" Versions=\"%zu\"/>",
			BACKUP_FORMAT, backup->store_id, created, backup->tenant_count,
			backup->version_count);
}

lic_status backup_encode(const struct backup *backup, const struct kek *kek, char **out, size_t *length,
			 lic_error *error)
{
	lic_status status = LIC_OK;
	struct text_builder builder = {0};
	char header[BACKUP_HEADER_MAX_BYTES];
	uint8_t aad[RECORD_AAD_MAX];
	uint8_t *plaintext = NULL;
	size_t plaintext_length = 0;
	uint8_t digest[SHA256_DIGEST_LENGTH];
	char digest_hex[2 * SHA256_DIGEST_LENGTH + 1];

	if (strlen(backup->store_id) != STORE_ID_TEXT_LENGTH)
		LIC_FAIL(error, LIC_INTERNAL, "backup: bad store id");
	int header_length = format_header(backup, header, sizeof header);
	if (header_length < 0 || (size_t)header_length >= sizeof header)
		LIC_FAIL(error, LIC_INTERNAL, "backup: header too long");
	LIC_TRY(builder_append(&builder, header, (size_t)header_length, error));
	LIC_TRY(builder_append(&builder, "\n", 1, error));

	size_t aad_length = record_aad(backup->store_id, header, (size_t)header_length, 0, aad);
	LIC_TRY(append_record(&builder, kek, aad, aad_length, (const uint8_t *)backup->audit_head,
			      strlen(backup->audit_head), error));
	for (size_t i = 0; i < backup->tenant_count; i++) {
		const struct backup_tenant *entry = &backup->tenants[i];
		size_t name_length = strlen(entry->name);
		plaintext_length = name_length + 1 + entry->length;
		plaintext = malloc(plaintext_length);
		if (plaintext == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
		memcpy(plaintext, entry->name, name_length + 1);
		memcpy(plaintext + name_length + 1, entry->text, entry->length);
		aad_length =
		    record_aad(backup->store_id, header, (size_t)header_length, (uint32_t)(i + 1), aad);
		LIC_TRY(append_record(&builder, kek, aad, aad_length, plaintext, plaintext_length, error));
		OPENSSL_cleanse(plaintext, plaintext_length);
		free(plaintext);
		plaintext = NULL;
	}
	SHA256((const uint8_t *)builder.data, builder.length, digest);
	hex_encode(digest, sizeof digest, digest_hex);
	LIC_TRY(builder_append(&builder, DIGEST_PREFIX, sizeof DIGEST_PREFIX - 1, error));
	LIC_TRY(builder_append(&builder, digest_hex, strlen(digest_hex), error));
	LIC_TRY(builder_append(&builder, "\n", 1, error));
	*out = builder.data;
	*length = builder.length;
	builder.data = NULL;
out:
	if (plaintext != NULL) {
		OPENSSL_cleanse(plaintext, plaintext_length);
		free(plaintext);
	}
	free(builder.data);
	return status;
}

/* The digest line must end the file and match every byte before it. Sets
 * *body_length to where the digest line starts. */
static lic_status check_digest(const char *data, size_t length, size_t *body_length, lic_error *error)
{
	if (length < DIGEST_LINE_LENGTH + 2 || data[length - 1] != '\n')
		return lic_error_set(error, LIC_MALFORMED,
				     "backup is damaged: it does not end with its digest line");
	size_t start = length - 1 - DIGEST_LINE_LENGTH;
	if (data[start - 1] != '\n' || memcmp(data + start, DIGEST_PREFIX, sizeof DIGEST_PREFIX - 1) != 0)
		return lic_error_set(error, LIC_MALFORMED,
				     "backup is damaged: it does not end with its digest line");
	uint8_t expected[SHA256_DIGEST_LENGTH], actual[SHA256_DIGEST_LENGTH];
	char hex[2 * SHA256_DIGEST_LENGTH + 1];
	memcpy(hex, data + start + sizeof DIGEST_PREFIX - 1, 2 * SHA256_DIGEST_LENGTH);
	hex[2 * SHA256_DIGEST_LENGTH] = '\0';
	if (hex_decode(hex, expected, sizeof expected, NULL) != LIC_OK)
		return lic_error_set(error, LIC_MALFORMED, "backup is damaged: bad digest line");
	SHA256((const uint8_t *)data, start, actual);
	if (memcmp(expected, actual, sizeof actual) != 0)
		return lic_error_set(error, LIC_MALFORMED,
				     "backup is damaged: its SHA-256 digest does not match its content");
	*body_length = start;
	return LIC_OK;
}

static lic_status parse_header(const char *line, size_t line_length, struct backup_header *header,
			       lic_error *error)
{
	lic_status status = LIC_OK;
	xmlDocPtr document = NULL;
	xmlNodePtr root = NULL;
	char *text = NULL;
	uint64_t format = 0;
	memset(header, 0, sizeof *header);
	if (line_length >= BACKUP_HEADER_MAX_BYTES)
		LIC_FAIL(error, LIC_MALFORMED, "backup: header line too long");
	LIC_TRY(xml_document_parse(line, line_length, BACKUP_HEADER_MAX_BYTES, &document, error));
	LIC_TRY(xml_document_root(document, "BackupHeader", &root, error));
	LIC_TRY(xml_attribute_u64(root, "Format", false, UINT32_MAX, &format, error));
	if (format != BACKUP_FORMAT)
		LIC_FAIL(error, LIC_UNSUPPORTED_VERSION, "backup format %u is not supported",
			 (unsigned)format);
	LIC_TRY(xml_attribute(root, "StoreId", false, &text, error));
	if (strlen(text) != STORE_ID_TEXT_LENGTH)
		LIC_FAIL(error, LIC_MALFORMED, "backup: bad StoreId in the header");
	memcpy(header->store_id, text, STORE_ID_LENGTH);
	LIC_TRY(xml_attribute_time(root, "CreatedAt", false, &header->created_at, error));
	LIC_TRY(xml_attribute_u64(root, "Tenants", false, UINT32_MAX - 1, &header->tenant_count, error));
	LIC_TRY(xml_attribute_u64(root, "Versions", false, UINT64_MAX, &header->version_count, error));
out:
	xmlFree(text);
	xmlFreeDoc(document);
	return status;
}

lic_status backup_read_header(const char *data, size_t length, struct backup_header *header, lic_error *error)
{
	size_t body_length = 0;
	lic_status status = check_digest(data, length, &body_length, error);
	if (status != LIC_OK)
		return status;
	const char *newline = memchr(data, '\n', body_length);
	if (newline == NULL)
		return lic_error_set(error, LIC_MALFORMED, "backup: no header line");
	return parse_header(data, (size_t)(newline - data), header, error);
}

/* Opens one record line into ordinary memory (*out, NUL-terminated; the
 * plaintext is tenant files whose keys are sealed: no key material). */
static lic_status open_record(const struct kek *kek, const uint8_t *aad, size_t aad_length, const char *line,
			      size_t line_length, uint32_t index, char **out, size_t *out_length,
			      lic_error *error)
{
	lic_status status = LIC_OK;
	uint8_t *sealed = NULL, *plaintext = NULL;
	size_t sealed_length = 0, plaintext_length = 0;
	lic_error detail = {0};
	if (base64_decode(line, line_length, &sealed, &sealed_length, &detail) != LIC_OK)
		LIC_FAIL(error, LIC_MALFORMED, "backup: record %u is not base64", (unsigned)index);
	if (kek_open(kek, aad, aad_length, sealed, sealed_length, &plaintext, &plaintext_length, &detail) !=
	    LIC_OK) {
		if (detail.status == LIC_INTERNAL && strstr(detail.message, "secure memory") != NULL)
			LIC_FAIL(error, LIC_INTERNAL, "backup: record %u: %s", (unsigned)index,
				 detail.message);
		LIC_FAIL(error, LIC_MALFORMED,
			 "backup: record %u failed its integrity check (altered, or not sealed under this "
			 "store's KEK)",
			 (unsigned)index);
	}
	*out = malloc(plaintext_length + 1);
	if (*out == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	memcpy(*out, plaintext, plaintext_length);
	(*out)[plaintext_length] = '\0';
	*out_length = plaintext_length;
out:
	free(sealed);
	secure_free(plaintext, plaintext_length + 1);
	return status;
}

lic_status backup_decode(const char *data, size_t length, const char *store_id, const struct kek *kek,
			 struct backup **out, lic_error *error)
{
	lic_status status = LIC_OK;
	struct backup_header header;
	struct backup *backup = NULL;
	size_t body_length = 0;
	uint8_t aad[RECORD_AAD_MAX];
	char *record = NULL;
	size_t record_length = 0;

	LIC_TRY(check_digest(data, length, &body_length, error));
	const char *cursor = data, *end = data + body_length;
	const char *newline = memchr(cursor, '\n', body_length);
	if (newline == NULL)
		LIC_FAIL(error, LIC_MALFORMED, "backup: no header line");
	const char *header_line = cursor;
	size_t header_length = (size_t)(newline - cursor);
	LIC_TRY(parse_header(header_line, header_length, &header, error));
	if (strcmp(header.store_id, store_id) != 0)
		LIC_FAIL(error, LIC_STATE,
			 "this backup is of world %s, this store is world %s: a backup restores only into a "
			 "store of its own world; nothing was changed",
			 header.store_id, store_id);
	backup = backup_new(header.store_id, header.created_at);
	if (backup == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	cursor = newline + 1;
	for (uint64_t index = 0; index <= header.tenant_count; index++) {
		if (cursor >= end)
			LIC_FAIL(error, LIC_MALFORMED,
				 "backup: %" PRIu64 " tenant records announced, %" PRIu64 " found",
				 header.tenant_count, index == 0 ? 0 : index - 1);
		newline = memchr(cursor, '\n', (size_t)(end - cursor));
		if (newline == NULL)
			LIC_FAIL(error, LIC_MALFORMED, "backup: record %u is not a line", (unsigned)index);
		size_t aad_length = record_aad(store_id, header_line, header_length, (uint32_t)index, aad);
		LIC_TRY(open_record(kek, aad, aad_length, cursor, (size_t)(newline - cursor), (uint32_t)index,
				    &record, &record_length, error));
		if (index == 0) {
			if (record_length >= sizeof backup->audit_head || strlen(record) != record_length)
				LIC_FAIL(error, LIC_MALFORMED, "backup: bad audit head record");
			memcpy(backup->audit_head, record, record_length + 1);
		} else {
			size_t name_length = strnlen(record, record_length);
			if (name_length == record_length || name_length > TENANT_NAME_MAX)
				LIC_FAIL(error, LIC_MALFORMED, "backup: record %u has no tenant name",
					 (unsigned)index);
			LIC_TRY(backup_add_tenant(backup, record, record + name_length + 1,
						  record_length - name_length - 1, error));
		}
		OPENSSL_cleanse(record, record_length);
		free(record);
		record = NULL;
		cursor = newline + 1;
	}
	if (cursor != end)
		LIC_FAIL(error, LIC_MALFORMED, "backup: more records than the header announces");
	if (backup->version_count != header.version_count)
		LIC_FAIL(error, LIC_MALFORMED,
			 "backup: the header announces %" PRIu64 " versions, the records hold %zu",
			 header.version_count, backup->version_count);
	*out = backup;
	backup = NULL;
out:
	if (record != NULL) {
		OPENSSL_cleanse(record, record_length);
		free(record);
	}
	backup_free(backup);
	return status;
}

/* ---- restore: the plan ----------------------------------------------------- */

struct restore_plan *restore_plan_new(void)
{
	return calloc(1, sizeof(struct restore_plan));
}

void restore_plan_free(struct restore_plan *plan)
{
	if (plan == NULL)
		return;
	for (size_t i = 0; i < plan->tenant_count; i++)
		tenant_free(plan->tenants[i].merged);
	for (size_t i = 0; i < plan->note_count; i++)
		free(plan->notes[i].uri);
	free(plan->tenants);
	free(plan->notes);
	free(plan);
}

void backup_redact_uri(const char *uri, char *out, size_t size)
{
	static const char attribute[] = "pin-value=";
	size_t used = 0;
	if (size == 0)
		return;
	while (*uri != '\0' && used + 1 < size) {
		if (strncmp(uri, attribute, sizeof attribute - 1) == 0) {
			int written = snprintf(out + used, size - used, "%s***", attribute);
			used = written < 0 ? used : used + (size_t)written;
			if (used >= size)
				used = size - 1;
			uri += sizeof attribute - 1;
			while (*uri != '\0' && *uri != ';' && *uri != '&' && *uri != '?')
				uri++;
			continue;
		}
		out[used++] = *uri++;
	}
	out[used] = '\0';
}

static lic_status add_note(struct restore_plan *plan, enum restore_note_kind kind, const char *tenant,
			   const struct key_version *version, lic_error *error)
{
	if (plan->note_count == plan->note_capacity) {
		size_t capacity = plan->note_capacity ? 2 * plan->note_capacity : 16;
		struct restore_note *grown = realloc(plan->notes, capacity * sizeof *grown);
		if (grown == NULL)
			return lic_error_set(error, LIC_INTERNAL, "out of memory");
		plan->notes = grown;
		plan->note_capacity = capacity;
	}
	struct restore_note *note = &plan->notes[plan->note_count];
	memset(note, 0, sizeof *note);
	note->kind = kind;
	snprintf(note->tenant, sizeof note->tenant, "%s", tenant);
	if (version != NULL) {
		note->version = version->number;
		memcpy(note->key_id_hex, version->key_id_hex, KEY_ID_HEX_LENGTH);
		if (kind == RESTORE_NOTE_BYOK && version->byok_uri != NULL) {
			size_t size = 2 * strlen(version->byok_uri) + 16;
			note->uri = malloc(size);
			if (note->uri == NULL)
				return lic_error_set(error, LIC_INTERNAL, "out of memory");
			backup_redact_uri(version->byok_uri, note->uri, size);
		}
	}
	plan->note_count++;
	if (kind == RESTORE_NOTE_LOST)
		plan->lost_count++;
	return LIC_OK;
}

lic_status restore_plan_note_left_alone(struct restore_plan *plan, const char *tenant, lic_error *error)
{
	return add_note(plan, RESTORE_NOTE_NOT_IN_BACKUP, tenant, NULL, error);
}

/* A deep copy through the file form, which also checks every invariant. */
static lic_status tenant_copy(const struct tenant *tenant, struct tenant **out, lic_error *error)
{
	char *text = NULL;
	size_t length = 0;
	lic_status status = tenant_file_serialize(tenant, &text, &length, error);
	if (status == LIC_OK)
		status = tenant_file_parse(text, length, tenant->name, out, error);
	if (text != NULL) {
		OPENSSL_cleanse(text, length);
		xmlFree(text);
	}
	return status;
}

/* Whether two tenants have the same file form, their revisions aside. */
static lic_status tenants_equal(const struct tenant *a, struct tenant *b, bool *equal, lic_error *error)
{
	lic_status status = LIC_OK;
	char *text_a = NULL, *text_b = NULL;
	size_t length_a = 0, length_b = 0;
	uint64_t revision = b->revision;
	b->revision = a->revision;
	LIC_TRY(tenant_file_serialize(a, &text_a, &length_a, error));
	LIC_TRY(tenant_file_serialize(b, &text_b, &length_b, error));
	*equal = length_a == length_b && memcmp(text_a, text_b, length_a) == 0;
out:
	b->revision = revision;
	if (text_a != NULL)
		OPENSSL_cleanse(text_a, length_a);
	if (text_b != NULL)
		OPENSSL_cleanse(text_b, length_b);
	xmlFree(text_a);
	xmlFree(text_b);
	return status;
}

/* The time of the latest decision recorded on a version. */
static int64_t last_decision(const struct key_version *version)
{
	int64_t times[] = {version->created_at,    version->activated_at,  version->retained_at,
			   version->revoked_at,    version->reinstated_at, version->destroyed_at,
			   version->compromised_at};
	int64_t latest = times[0];
	for (size_t i = 1; i < sizeof times / sizeof times[0]; i++)
		if (times[i] > latest)
			latest = times[i];
	return latest;
}

static bool same_rollout(const struct tenant_rollout *a, const struct tenant_rollout *b)
{
	return a->from_version == b->from_version && a->to_version == b->to_version &&
	       a->started_at == b->started_at && a->duration_s == b->duration_s;
}

lic_status restore_plan_add(struct restore_plan *plan, const struct tenant *stored,
			    const struct tenant *backed_up, lic_error *error)
{
	lic_status status = LIC_OK;
	struct tenant *merged = NULL, *checked = NULL;
	bool overridden = false;
	LIC_TRY(tenant_copy(backed_up, &merged, error));
	if (stored != NULL) {
		for (size_t i = 0; i < stored->version_count; i++) {
			const struct key_version *kept = &stored->versions[i];
			const struct key_version *old = tenant_find_key_id(backed_up, kept->key_id);
			if (old == NULL) {
				LIC_TRY(add_note(plan, RESTORE_NOTE_LOST, stored->name, kept, error));
				continue;
			}
			if (old->number != kept->number)
				LIC_FAIL(error, LIC_STATE,
					 "tenant %s: key id %s is version %u in the store but version %u in "
					 "the backup: these keyrings have different histories; nothing was "
					 "changed",
					 stored->name, kept->key_id_hex, kept->number, old->number);
			struct key_version *result = tenant_version(merged, kept->number);
			if (kept->state == LIC_KEY_STATE_DESTROYED &&
			    result->state != LIC_KEY_STATE_DESTROYED) {
				/* Never resurrect key material the operator destroyed. */
				if (result->sealed_private_key != NULL) {
					OPENSSL_cleanse(result->sealed_private_key,
							result->sealed_private_key_length);
					free(result->sealed_private_key);
					result->sealed_private_key = NULL;
					result->sealed_private_key_length = 0;
				}
				result->state = LIC_KEY_STATE_DESTROYED;
				result->destroyed_at = kept->destroyed_at;
				result->revoked_at = kept->revoked_at;
				result->compromised = kept->compromised || result->compromised;
				if (kept->compromised_at > result->compromised_at)
					result->compromised_at = kept->compromised_at;
				overridden = true;
				LIC_TRY(
				    add_note(plan, RESTORE_NOTE_KEPT_DESTROYED, stored->name, kept, error));
			} else if (kept->state == LIC_KEY_STATE_REVOKED &&
				   result->state != LIC_KEY_STATE_REVOKED &&
				   result->state != LIC_KEY_STATE_DESTROYED &&
				   kept->revoked_at >= last_decision(old)) {
				/* The store's revocation is the later decision: it stands. Times
				 * are whole seconds, so a tie keeps the decision that removes
				 * access. */
				result->state = LIC_KEY_STATE_REVOKED;
				result->state_before_revoke = kept->state_before_revoke;
				result->revoked_at = kept->revoked_at;
				overridden = true;
				LIC_TRY(add_note(plan, RESTORE_NOTE_KEPT_REVOKED, stored->name, kept, error));
			}
		}
		/* A revoke or destroy may have ended the rollout they were part of:
		 * the store's record of that same rollout is the later one. */
		if (overridden && same_rollout(&stored->rollout, &merged->rollout))
			merged->rollout = stored->rollout;
	}
	/* The merged keyring must satisfy every invariant, as any store file does. */
	lic_error broken = {0};
	if (tenant_copy(merged, &checked, &broken) != LIC_OK)
		LIC_FAIL(
		    error, LIC_STATE,
		    "tenant %s: the store's later revoke or destroy cannot be combined with the backup's "
		    "keyring (%.300s); nothing was changed",
		    merged->name, broken.message);
	for (size_t i = 0; i < merged->version_count; i++)
		if (merged->versions[i].origin == KEY_ORIGIN_BYOK &&
		    merged->versions[i].state != LIC_KEY_STATE_DESTROYED)
			LIC_TRY(add_note(plan, RESTORE_NOTE_BYOK, merged->name, &merged->versions[i], error));

	if (plan->tenant_count == plan->tenant_capacity) {
		size_t capacity = plan->tenant_capacity ? 2 * plan->tenant_capacity : 16;
		struct restore_tenant *grown = realloc(plan->tenants, capacity * sizeof *grown);
		if (grown == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
		plan->tenants = grown;
		plan->tenant_capacity = capacity;
	}
	struct restore_tenant *entry = &plan->tenants[plan->tenant_count];
	memset(entry, 0, sizeof *entry);
	entry->action = RESTORE_WRITE_NEW;
	if (stored != NULL) {
		bool equal = false;
		LIC_TRY(tenants_equal(stored, merged, &equal, error));
		entry->action = equal ? RESTORE_UNCHANGED : RESTORE_REPLACE;
		entry->stored_revision = stored->revision;
	}
	entry->merged = merged;
	merged = NULL;
	plan->version_count += entry->merged->version_count;
	plan->tenant_count++;
out:
	tenant_free(merged);
	tenant_free(checked);
	return status;
}

lic_status restore_plan_check(const struct restore_plan *plan, bool force, lic_error *error)
{
	if (plan->lost_count == 0 || force)
		return LIC_OK;
	char list[360];
	size_t used = 0, listed = 0;
	list[0] = '\0';
	for (size_t i = 0; i < plan->note_count; i++) {
		const struct restore_note *note = &plan->notes[i];
		if (note->kind != RESTORE_NOTE_LOST)
			continue;
		char item[TENANT_NAME_MAX + KEY_ID_HEX_LENGTH + 48];
		int length = snprintf(item, sizeof item, "%stenant %s version %u (key id %s)",
				      listed > 0 ? ", " : "", note->tenant, note->version, note->key_id_hex);
		if (length < 0 || used + (size_t)length >= sizeof list)
			break;
		memcpy(list + used, item, (size_t)length + 1);
		used += (size_t)length;
		listed++;
	}
	if (listed < plan->lost_count)
		return lic_error_set(
		    error, LIC_STATE,
		    "restore would drop %zu versions that the store has and the backup lacks: "
		    "%s and %zu more; nothing was changed (--force drops them)",
		    plan->lost_count, list, plan->lost_count - listed);
	return lic_error_set(error, LIC_STATE,
			     "restore would drop %s, which the store has and the backup lacks; nothing was "
			     "changed (--force drops %s)",
			     list, plan->lost_count == 1 ? "it" : "them");
}

/* ---- on a store ------------------------------------------------------------ */

static int64_t context_now(const struct admin_context *context)
{
	return lic_clock_now(context->clock ? context->clock : lic_clock_system());
}

static struct audit_event store_event(const struct admin_context *context, const char *action,
				      const char *detail)
{
	struct audit_event event = {
	    .actor = context->actor ? context->actor : "unknown",
	    .action = action,
	    .detail = detail,
	};
	return event;
}

lic_status backup_read_audit_head(const char *directory, char out[BACKUP_AUDIT_HEAD_MAX], lic_error *error)
{
	char path[PATH_MAX];
	char *text = NULL;
	size_t length = 0;
	out[0] = '\0';
	lic_status status = file_join(path, sizeof path, directory, "audit.head", error);
	if (status != LIC_OK)
		return status;
	/* Absent only when this very open says ENOENT: errno may hold an older
	 * ENOENT after a failure that sets none (too large, not a regular file). */
	lic_error read_error = {0};
	errno = 0;
	status = file_read_all(path, BACKUP_AUDIT_HEAD_MAX - 1, &text, &length, &read_error);
	if (status == LIC_IO && errno == ENOENT)
		return LIC_OK;
	if (status != LIC_OK)
		return lic_error_set(error, status, "%s", read_error.message);
	while (length > 0 && (text[length - 1] == '\n' || text[length - 1] == '\r'))
		length--;
	memcpy(out, text, length);
	out[length] = '\0';
	free(text);
	return LIC_OK;
}

/* No output anywhere in the store directory: in tenants/ it would be read
 * back as a (damaged) tenant, and at the top it could replace world.xml,
 * audit.log or audit.head. The parent is resolved (symlinks, "..", a relative
 * path); the file itself need not exist, and is replaced by a rename, never
 * written through a symlink. A parent that cannot be resolved is left to the
 * write, which fails (IO). */
static lic_status check_output_outside_store(const struct store *store, const char *path, lic_error *error)
{
	char parent[PATH_MAX], resolved_parent[PATH_MAX], resolved_store[PATH_MAX];
	if (snprintf(parent, sizeof parent, "%s", path) >= (int)sizeof parent)
		return lic_error_set(error, LIC_TOO_LARGE, "backup path too long");
	char *slash = strrchr(parent, '/');
	if (slash == NULL)
		snprintf(parent, sizeof parent, ".");
	else if (slash == parent)
		parent[1] = '\0';
	else
		*slash = '\0';
	if (realpath(parent, resolved_parent) == NULL)
		return LIC_OK;
	if (realpath(store->directory, resolved_store) == NULL)
		return lic_error_set(error, LIC_IO, "cannot resolve the store directory %s: %s",
				     store->directory, strerror(errno));
	size_t store_length = strlen(resolved_store);
	bool inside = strcmp(resolved_store, "/") == 0 ||
		      (strncmp(resolved_parent, resolved_store, store_length) == 0 &&
		       (resolved_parent[store_length] == '\0' || resolved_parent[store_length] == '/'));
	if (inside)
		return lic_error_set(error, LIC_USAGE,
				     "a backup cannot be written inside the store directory (it could "
				     "replace world.xml, the audit log or a tenant): choose another --out");
	return LIC_OK;
}

lic_status backup_store(const struct admin_context *context, const char *path, backup_progress progress,
			void *progress_context, struct backup_summary *summary, lic_error *error)
{
	lic_status status = LIC_OK;
	struct store *store = context->store;
	struct backup *backup = NULL;
	char **names = NULL;
	size_t name_count = 0;
	char *text = NULL, *file = NULL;
	size_t length = 0, file_length = 0;
	char tenant_path[PATH_MAX], detail[128];
	int64_t now = context_now(context);

	snprintf(detail, sizeof detail, "%zu tenants, %zu versions", (size_t)UINT32_MAX, (size_t)UINT32_MAX);
	struct audit_event event = store_event(context, "backup", detail);
	LIC_TRY(check_output_outside_store(store, path, error));
	LIC_TRY(store_lock(store, error));
	LIC_TRY(audit_check_event(&event, now, error));
	LIC_TRY(audit_check_appendable(store->directory, error));
	LIC_TRY(store_list_tenants(store, &names, &name_count, error));
	backup = backup_new(store->world.store_id, now);
	if (backup == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	LIC_TRY(backup_read_audit_head(store->directory, backup->audit_head, error));
	for (size_t i = 0; i < name_count; i++) {
		LIC_TRY(store_tenant_path(store, names[i], tenant_path, sizeof tenant_path, error));
		LIC_TRY(file_read_all(tenant_path, TENANT_FILE_MAX_BYTES, &text, &length, error));
		LIC_TRY(backup_add_tenant(backup, names[i], text, length, error));
		OPENSSL_cleanse(text, length);
		free(text);
		text = NULL;
		if (progress != NULL)
			progress(progress_context, i + 1, name_count);
	}
	LIC_TRY(backup_encode(backup, store->kek, &file, &file_length, error));
	LIC_TRY(file_write_atomic(path, file, file_length, 0600, 0, error));
	snprintf(detail, sizeof detail, "%zu tenants, %zu versions", backup->tenant_count,
		 backup->version_count);
	event = store_event(context, "backup", detail);
	status = audit_append(store->directory, &event, now, error);
	if (status != LIC_OK) {
		/* No backup file that the audit log does not record. */
		unlink(path);
		goto out;
	}
	if (summary != NULL) {
		memset(summary, 0, sizeof *summary);
		summary->tenant_count = backup->tenant_count;
		summary->version_count = backup->version_count;
		for (size_t i = 0; i < backup->tenant_count; i++)
			for (size_t j = 0; j < backup->tenants[i].tenant->version_count; j++)
				if (backup->tenants[i].tenant->versions[j].origin == KEY_ORIGIN_BYOK)
					summary->byok_count++;
	}
out:
	store_unlock(store);
	if (text != NULL) {
		OPENSSL_cleanse(text, length);
		free(text);
	}
	free(file);
	for (size_t i = 0; i < name_count; i++)
		free(names[i]);
	free(names);
	backup_free(backup);
	return status;
}

static int compare_backup_tenant(const void *key, const void *element)
{
	return strcmp((const char *)key, ((const struct backup_tenant *)element)->name);
}

/* A store that is only its world.xml gets tenants/ (0700), and the store
 * directory is made 0700 as init makes it. */
static lic_status prepare_store_directory(const struct store *store, lic_error *error)
{
	char path[PATH_MAX];
	struct stat info;
	if (stat(store->directory, &info) == 0 && (info.st_mode & 0777) != 0700 &&
	    chmod(store->directory, 0700) != 0)
		return lic_error_set(error, LIC_IO, "cannot make %s 0700: %s", store->directory,
				     strerror(errno));
	lic_status status = file_join(path, sizeof path, store->directory, "tenants", error);
	if (status != LIC_OK)
		return status;
	if (stat(path, &info) == 0)
		return LIC_OK;
	status = file_make_directory(path, error);
	if (status != LIC_OK)
		return status;
	return file_sync_directory(store->directory, error);
}

lic_status restore_store(const struct admin_context *context, const char *data, size_t length, bool force,
			 backup_progress progress, void *progress_context, struct restore_plan **plan_out,
			 lic_error *error)
{
	lic_status status = LIC_OK;
	struct store *store = context->store;
	struct backup *backup = NULL;
	struct restore_plan *plan = NULL;
	struct tenant *stored = NULL;
	char **names = NULL;
	size_t name_count = 0;
	char detail[200];
	int64_t now = context_now(context);
	size_t written = 0, unchanged = 0, left_alone = 0;

	snprintf(detail, sizeof detail,
		 "%zu tenants (%zu written, %zu unchanged, %zu left alone), %zu versions, %zu dropped; "
		 "backup of 9999-12-31T23:59:59Z",
		 (size_t)UINT32_MAX, (size_t)UINT32_MAX, (size_t)UINT32_MAX, (size_t)UINT32_MAX,
		 (size_t)UINT32_MAX, (size_t)UINT32_MAX);
	struct audit_event event = store_event(context, "restore", detail);
	LIC_TRY(store_lock(store, error));
	LIC_TRY(audit_check_event(&event, now, error));
	LIC_TRY(audit_check_appendable(store->directory, error));
	LIC_TRY(backup_decode(data, length, store->world.store_id, store->kek, &backup, error));
	plan = restore_plan_new();
	if (plan == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	for (size_t i = 0; i < backup->tenant_count; i++) {
		const struct backup_tenant *entry = &backup->tenants[i];
		if (store_tenant_exists(store, entry->name))
			LIC_TRY(store_load_tenant(store, entry->name, &stored, error));
		LIC_TRY(restore_plan_add(plan, stored, entry->tenant, error));
		tenant_free(stored);
		stored = NULL;
		if (progress != NULL)
			progress(progress_context, i + 1, 2 * backup->tenant_count);
	}
	LIC_TRY(store_list_tenants(store, &names, &name_count, error));
	for (size_t i = 0; i < name_count; i++)
		if (bsearch(names[i], backup->tenants, backup->tenant_count, sizeof *backup->tenants,
			    compare_backup_tenant) == NULL) {
			LIC_TRY(restore_plan_note_left_alone(plan, names[i], error));
			left_alone++;
		}
	LIC_TRY(restore_plan_check(plan, force, error));

	/* Everything is checked: now write. */
	LIC_TRY(prepare_store_directory(store, error));
	for (size_t i = 0; i < plan->tenant_count; i++) {
		struct restore_tenant *entry = &plan->tenants[i];
		if (entry->action == RESTORE_UNCHANGED) {
			unchanged++;
		} else {
			/* The revision moves past both, so a watcher sees the change. */
			if (entry->stored_revision > entry->merged->revision)
				entry->merged->revision = entry->stored_revision;
			LIC_TRY(store_save_tenant(store, entry->merged, 0, error));
			written++;
		}
		if (progress != NULL)
			progress(progress_context, backup->tenant_count + i + 1, 2 * backup->tenant_count);
	}
	char created[UTC_TIME_LENGTH];
	utc_time_format(backup->created_at, created);
	snprintf(
	    detail, sizeof detail,
	    "%zu tenants (%zu written, %zu unchanged, %zu left alone), %zu versions, %zu dropped; backup "
	    "of %s",
	    backup->tenant_count, written, unchanged, left_alone, plan->version_count,
	    force ? plan->lost_count : (size_t)0, created);
	event = store_event(context, "restore", detail);
	LIC_TRY(audit_append(store->directory, &event, now, error));
	*plan_out = plan;
	plan = NULL;
out:
	store_unlock(store);
	tenant_free(stored);
	for (size_t i = 0; i < name_count; i++)
		free(names[i]);
	free(names);
	restore_plan_free(plan);
	backup_free(backup);
	return status;
}
