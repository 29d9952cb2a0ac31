/*
 * tpd_store.c: export and import as store transactions (tpd.h), in the
 * pattern of admin.c: take the store lock, check that the audit log will
 * take the line, load, change or read, write atomically, append the audit
 * event, release the lock. A refusal writes nothing: the import prepares and
 * seals every key before the tenant changes, and saves the tenant in one
 * atomic replace. Audit lines carry the exchange GUID and version numbers,
 * never key material. The exchange's files are written by file_write_new
 * (file_io.h): whole, durable, 0600, and never over an existing file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "audit.h"
#include "error.h"
#include "file_io.h"
#include "tpd.h"
#include "utc_time.h"

#define DETAIL_MAX 1024

static int64_t context_now(const struct admin_context *context)
{
	return lic_clock_now(context->clock ? context->clock : lic_clock_system());
}

static lic_status record(const struct admin_context *context, const char *action, const char *tenant,
			 const char *detail, int64_t now, bool check_only, lic_error *error)
{
	struct audit_event event = {
	    .actor = context->actor ? context->actor : "unknown",
	    .action = action,
	    .tenant = tenant,
	    .detail = detail,
	};
	if (check_only) {
		lic_status status = audit_check_event(&event, now, error);
		if (status != LIC_OK)
			return status;
		return audit_check_appendable(context->store->directory, error);
	}
	return audit_append(context->store->directory, &event, now, error);
}

/* "guid G; versions 1,2,3", or a count and range when the list is long. */
static void version_detail(char detail[DETAIL_MAX], const char *guid, const char *prefix, const char *list,
			   size_t count, uint32_t first, uint32_t last)
{
	if (strlen(list) + 128 < DETAIL_MAX)
		snprintf(detail, DETAIL_MAX, "guid %s; %sversions %s", guid, prefix, list);
	else
		snprintf(detail, DETAIL_MAX, "guid %s; %s%zu versions, %u to %u", guid, prefix, count, first,
			 last);
}

lic_status tpd_export_to_file(const struct admin_context *context, const char *name, EVP_PKEY *recipient,
			      const char *guid, const char *path, char **versions, char **key_ids,
			      lic_error *error)
{
	lic_status status = LIC_OK;
	struct tenant *tenant = NULL;
	char *xml = NULL, *list = NULL, *lines = NULL;
	size_t xml_length = 0;
	char detail[DETAIL_MAX];
	int64_t now = context_now(context);
	snprintf(detail, sizeof detail, "guid %s; versions 4294967295", guid);
	LIC_TRY(store_lock(context->store, error));
	LIC_TRY(record(context, "export", name, detail, now, true, error));
	LIC_TRY(store_load_tenant(context->store, name, &tenant, error));
	/* Export reads only: a rollout complete by the clock is applied in
	 * memory so that its from version exports as retained. */
	lifecycle_settle(tenant, now);
	LIC_TRY(
	    tpd_export(tenant, context->store->kek, guid, recipient, now, &xml, &xml_length, &list, error));
	LIC_TRY(file_write_new(path, xml, xml_length, error));
	const char *last_comma = strrchr(list, ',');
	size_t count = 1;
	for (const char *c = list; *c != '\0'; c++)
		count += *c == ',';
	version_detail(detail, guid, "", list, count, (uint32_t)strtoul(list, NULL, 10),
		       (uint32_t)strtoul(last_comma ? last_comma + 1 : list, NULL, 10));
	if (key_ids != NULL) {
		/* "version N key-id HEX\n" for each exported version, from the list. */
		size_t size = count * (24 + KEY_ID_HEX_LENGTH) + 1, at = 0;
		lines = malloc(size);
		if (lines == NULL) {
			unlink(path);
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
		}
		lines[0] = '\0';
		for (const char *cursor = list; *cursor != '\0';) {
			char *end = NULL;
			uint32_t number = (uint32_t)strtoul(cursor, &end, 10);
			const struct key_version *version = tenant_version(tenant, number);
			if (version != NULL)
				at += (size_t)snprintf(lines + at, size - at, "version %u key-id %s\n",
						       number, version->key_id_hex);
			cursor = *end == ',' ? end + 1 : end;
		}
	}
	status = record(context, "export", name, detail, now, false, error);
	if (status != LIC_OK) {
		/* No TPD leaves the store without its audit line. */
		unlink(path);
		goto out;
	}
	if (versions != NULL) {
		*versions = list;
		list = NULL;
	}
	if (key_ids != NULL) {
		*key_ids = lines;
		lines = NULL;
	}
out:
	store_unlock(context->store);
	free(lines);
	free(list);
	free(xml);
	tenant_free(tenant);
	return status;
}

lic_status tpd_import_to_store(const struct admin_context *context, const char *name,
			       const struct tpd_contents *contents, uint32_t *first_number, bool *created,
			       lic_error *error)
{
	lic_status status = LIC_OK;
	struct tenant *tenant = NULL;
	int64_t now = context_now(context);
	bool settled = false, is_new = false;
	struct tenant_rollout before;
	uint32_t first = 0;
	char detail[DETAIL_MAX], path[4096];
	char *list = NULL;
	snprintf(detail, sizeof detail, "guid %s; created the tenant; versions 4294967295", contents->guid);
	LIC_TRY(store_tenant_path(context->store, name, path, sizeof path, error));
	LIC_TRY(store_lock(context->store, error));
	LIC_TRY(record(context, "import", name, detail, now, true, error));
	if (store_tenant_exists(context->store, name)) {
		LIC_TRY(store_load_tenant(context->store, name, &tenant, error));
		before = tenant->rollout;
		settled = lifecycle_settle(tenant, now);
	} else {
		tenant = tenant_new(name, now);
		if (tenant == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
		is_new = true;
	}
	LIC_TRY(tpd_import_into_tenant(tenant, context->store->kek, contents, now, &first, error));
	LIC_TRY(store_save_tenant(context->store, tenant, 0, error));
	if (settled)
		LIC_TRY(admin_record_settled(context, name, &before, now, error));
	size_t size = contents->key_count * 24 + 1, at = 0;
	list = malloc(size);
	if (list == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	list[0] = '\0';
	for (size_t i = 0; i < contents->key_count; i++)
		at += (size_t)snprintf(list + at, size - at, "%s%zu (exported %u)", i ? "," : "", first + i,
				       contents->keys[i].number);
	version_detail(detail, contents->guid, is_new ? "created the tenant; " : "", list,
		       contents->key_count, first, first + (uint32_t)contents->key_count - 1);
	LIC_TRY(record(context, "import", name, detail, now, false, error));
	if (first_number != NULL)
		*first_number = first;
	if (created != NULL)
		*created = is_new;
out:
	store_unlock(context->store);
	free(list);
	tenant_free(tenant);
	return status;
}
