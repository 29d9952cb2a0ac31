/*
 * rewrap.c: rewrapping PLs to a tenant's current key version (see rewrap.h).
 *
 * Why the document is edited in place: the OAEP label binds the whole Body,
 * so any re-serialisation of the policy (grant order, principal spelling,
 * an optional element) would be a different Body. Changing the KeyId text
 * and the EnablingBits only keeps every other byte the author wrote.
 *
 * Private keys are touched in exactly two small functions, open_old_key and
 * unwrap_content_key, so that a change in how keys are held (BYOK, PKCS#11)
 * is made there and nowhere else.
 *
 * rewrap_files works in three phases: check every input (read, parse, tenant,
 * version state), rewrap in memory grouped by old version (each private key
 * opened once, then freed), and only then write the outputs and the audit
 * event. A refusal in the first two phases writes nothing.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libxml/parser.h>
#include <openssl/crypto.h>

#include "core/rewrap.h"
#include "core/xml_signature.h"
#include "keyring/audit.h"
#include "keyring/encoding.h"
#include "keyring/error.h"
#include "keyring/file_io.h"
#include "keyring/secure_memory.h"
#include "keyring/store.h"
#include "keyring/xml_document.h"

/* Bytes of an input PL file. */
#define REWRAP_FILE_MAX_BYTES DOCUMENT_MAX_BYTES
/* Old versions named one by one in the audit detail; more are summed up. */
#define REWRAP_AUDIT_VERSIONS_MAX 32

/* ---- the two functions that use private keys ---- */

/* The old version's private key (new, version_key_free): a managed key
 * unsealed here, or a BYOK key's handle in its token (the unwrap runs there). */
static lic_status open_old_key(const struct store *store, const char *tenant,
			       const struct key_version *version, struct version_key **out, lic_error *error)
{
	return version_key_open(store->kek, tenant, version, out, error);
}

/* The content key of `license` into content_key (secure memory of the caller). */
static lic_status unwrap_content_key(const struct version_key *old_private_key,
				     const struct publishing_license *license,
				     uint8_t content_key[CONTENT_KEY_LENGTH], lic_error *error)
{
	return oaep_unwrap(old_private_key, license->body_digest, sizeof license->body_digest,
			   license->enabling_bits, license->enabling_bits_length, content_key, error);
}

/* ---- one document ---- */

/* The output must read back as the same PL under the target: same tenant,
 * ids, times and policy, the target's key id, and a Body digest equal to
 * the label the content key was wrapped with. */
static lic_status check_rewritten(const char *xml, size_t length, const struct publishing_license *before,
				  const struct rewrap_target *target, const uint8_t label[32],
				  lic_error *error)
{
	lic_status status = LIC_OK;
	xmlDocPtr document = NULL;
	struct publishing_license after;
	bool after_read = false;
	LIC_TRY(xml_document_parse(xml, length, REWRAP_FILE_MAX_BYTES, &document, error));
	LIC_TRY(publishing_license_read(document, xmlDocGetRootElement(document), &after, error));
	after_read = true;
	bool same_policy = after.policy.grant_count == before->policy.grant_count &&
			   strcmp(after.policy.owner, before->policy.owner) == 0;
	for (size_t i = 0; same_policy && i < after.policy.grant_count; i++)
		same_policy = memcmp(&after.policy.grants[i], &before->policy.grants[i],
				     sizeof after.policy.grants[i]) == 0;
	if (strcmp(after.tenant, before->tenant) != 0 || strcmp(after.content_id, before->content_id) != 0 ||
	    after.issued_at != before->issued_at ||
	    after.content_valid_until != before->content_valid_until ||
	    after.license_validity_days != before->license_validity_days || !same_policy ||
	    strcmp(after.key_id_hex, target->key_id_hex) != 0 || memcmp(after.body_digest, label, 32) != 0)
		LIC_FAIL(error, LIC_INTERNAL, "the rewrapped PL does not read back as the original");
out:
	if (after_read)
		publishing_license_cleanup(&after);
	xmlFreeDoc(document);
	return status;
}

lic_status rewrap_document(const char *xml, size_t length, const char *tenant,
			   const struct version_key *old_private_key, const struct rewrap_target *target,
			   char **out, size_t *out_length, lic_error *error)
{
	lic_status status = LIC_OK;
	xmlDocPtr document = NULL;
	xmlNodePtr root = NULL, body = NULL, key_id = NULL, bits = NULL;
	struct publishing_license license;
	bool license_read = false;
	uint8_t *content_key = secure_alloc(CONTENT_KEY_LENGTH);
	uint8_t label[32];
	uint8_t *wrapped = NULL;
	size_t wrapped_length = 0;
	char *encoded = NULL, *result = NULL;
	size_t result_length = 0;
	if (content_key == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of secure memory");
	if (strlen(target->key_id_hex) != KEY_ID_HEX_LENGTH - 1)
		LIC_FAIL(error, LIC_INTERNAL, "the target key id must be %d hex digits",
			 KEY_ID_HEX_LENGTH - 1);
	LIC_TRY(xml_document_parse(xml, length, REWRAP_FILE_MAX_BYTES, &document, error));
	root = xmlDocGetRootElement(document);
	LIC_TRY(publishing_license_read(document, root, &license, error));
	license_read = true;
	if (strcmp(license.tenant, tenant) != 0)
		LIC_FAIL(error, LIC_USAGE, "the PL belongs to tenant %s, not %s", license.tenant, tenant);
	LIC_TRY(unwrap_content_key(old_private_key, &license, content_key, error));
	/* The new Body: the KeyId's text replaced, nothing else. */
	LIC_TRY(xml_child(root, "Body", false, &body, error));
	LIC_TRY(xml_child(body, "KeyId", false, &key_id, error));
	xmlNodeSetContent(key_id, (const xmlChar *)target->key_id_hex);
	LIC_TRY(xml_c14n_digest(document, body, label, error));
	LIC_TRY(oaep_wrap(target->public_key, label, sizeof label, content_key, CONTENT_KEY_LENGTH, &wrapped,
			  &wrapped_length, error));
	OPENSSL_cleanse(content_key, CONTENT_KEY_LENGTH);
	encoded = base64_encode(wrapped, wrapped_length);
	if (encoded == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	LIC_TRY(xml_child(root, "EnablingBits", false, &bits, error));
	xmlNodeSetContent(bits, (const xmlChar *)encoded);
	LIC_TRY(document_serialize(document, &result, &result_length, error));
	LIC_TRY(check_rewritten(result, result_length, &license, target, label, error));
	*out = result;
	*out_length = result_length;
	result = NULL;
out:
	secure_free(content_key, CONTENT_KEY_LENGTH);
	if (license_read)
		publishing_license_cleanup(&license);
	free(result);
	free(encoded);
	free(wrapped);
	xmlFreeDoc(document);
	return status;
}

void rewrap_summary_cleanup(struct rewrap_summary *summary)
{
	free(summary->sources);
	summary->sources = NULL;
	summary->source_count = 0;
}

/* ---- many files ---- */

struct rewrap_item {
	const char *path;
	const char *basename;
	char *input; /* the file's bytes, owned */
	size_t input_length;
	const struct key_version *version; /* of the tenant, borrowed */
	char *output;                      /* what goes to DIR; owned (NULL: the input, unchanged) */
	size_t output_length;
};

/* Prefixes the sentence in `error` with the file name. */
static lic_status name_file(lic_error *error, lic_status status, const char *path)
{
	if (error == NULL)
		return status;
	char sentence[sizeof error->message];
	memcpy(sentence, error->message, sizeof sentence);
	return lic_error_set(error, status, "%s: %s", path, sentence);
}

static const char *path_basename(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* The real directory of `path` into out (PATH_MAX). */
static lic_status real_directory_of(const char *path, char *out, lic_error *error)
{
	char directory[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (slash == NULL) {
		snprintf(directory, sizeof directory, ".");
	} else if (slash == path) {
		snprintf(directory, sizeof directory, "/");
	} else {
		if ((size_t)(slash - path) >= sizeof directory)
			return lic_error_set(error, LIC_USAGE, "path too long");
		memcpy(directory, path, (size_t)(slash - path));
		directory[slash - path] = '\0';
	}
	if (realpath(directory, out) == NULL)
		return lic_error_set(error, LIC_IO, "cannot resolve directory %s: %s", directory,
				     strerror(errno));
	return LIC_OK;
}

static int compare_basenames(const void *a, const void *b)
{
	const struct rewrap_item *const *x = a, *const *y = b;
	return strcmp((*x)->basename, (*y)->basename);
}

static int compare_versions(const void *a, const void *b)
{
	const struct rewrap_item *const *x = a, *const *y = b;
	uint32_t u = (*x)->version->number, v = (*y)->version->number;
	return (u > v) - (u < v);
}

/* Checks the file names: a basename that is a name (not empty, "." or ".."),
 * no two inputs with the same one, and no output that would land on an input. */
static lic_status check_names(struct rewrap_item *items, size_t count, const char *out_dir, lic_error *error)
{
	lic_status status = LIC_OK;
	struct rewrap_item **sorted = NULL;
	char out_real[PATH_MAX], directory[PATH_MAX], previous[PATH_MAX] = "";
	bool out_exists = realpath(out_dir, out_real) != NULL;
	for (size_t i = 0; i < count; i++) {
		const char *name = items[i].basename;
		if (name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			LIC_FAIL(error, LIC_USAGE, "%s: not a file name", items[i].path);
		if (!out_exists)
			continue;
		/* An input reached through a symbolic link may be the very file its output would replace. */
		char output[PATH_MAX], output_real[PATH_MAX], input_real[PATH_MAX];
		LIC_TRY(file_join(output, sizeof output, out_real, name, error));
		if (realpath(output, output_real) != NULL && realpath(items[i].path, input_real) != NULL &&
		    strcmp(output_real, input_real) == 0)
			LIC_FAIL(error, LIC_USAGE,
				 "%s would be overwritten by its own output in %s: rewrap never "
				 "overwrites its inputs",
				 items[i].path, out_dir);
		LIC_TRY(real_directory_of(items[i].path, directory, error));
		if (strcmp(directory, previous) == 0)
			continue;
		if (strcmp(directory, out_real) == 0)
			LIC_FAIL(error, LIC_USAGE,
				 "--out %s is the directory of %s: rewrap never overwrites its inputs",
				 out_dir, items[i].path);
		memcpy(previous, directory, sizeof previous);
	}
	sorted = malloc(count * sizeof *sorted);
	if (sorted == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	for (size_t i = 0; i < count; i++)
		sorted[i] = &items[i];
	qsort(sorted, count, sizeof *sorted, compare_basenames);
	for (size_t i = 1; i < count; i++)
		if (strcmp(sorted[i - 1]->basename, sorted[i]->basename) == 0)
			LIC_FAIL(error, LIC_USAGE,
				 "%s and %s have the same name: their outputs would collide",
				 sorted[i - 1]->path, sorted[i]->path);
out:
	free(sorted);
	return status;
}

/* Phase 1 for one file: read it and find its version. */
static lic_status check_item(const struct tenant *tenant, struct rewrap_item *item, int64_t now,
			     lic_error *error)
{
	lic_status status = LIC_OK;
	xmlDocPtr document = NULL;
	struct publishing_license license;
	bool license_read = false;
	LIC_TRY(file_read_all(item->path, REWRAP_FILE_MAX_BYTES, &item->input, &item->input_length, error));
	LIC_TRY(xml_document_parse(item->input, item->input_length, REWRAP_FILE_MAX_BYTES, &document, error));
	LIC_TRY(publishing_license_read(document, xmlDocGetRootElement(document), &license, error));
	license_read = true;
	if (strcmp(license.tenant, tenant->name) != 0)
		LIC_FAIL(error, LIC_USAGE, "the PL belongs to tenant %s, not %s", license.tenant,
			 tenant->name);
	item->version = tenant_find_key_id(tenant, license.key_id);
	if (item->version == NULL)
		LIC_FAIL(error, LIC_UNKNOWN_KEY, "tenant %s never had the PL's key %s", tenant->name,
			 license.key_id_hex);
	LIC_TRY(tenant_version_usable_for_unwrap(tenant, item->version, now, error));
out:
	if (license_read)
		publishing_license_cleanup(&license);
	xmlFreeDoc(document);
	if (status != LIC_OK)
		status = name_file(error, status, item->path);
	return status;
}

/* Phase 2: rewraps every item not under the target, one old version at a time. */
static lic_status rewrap_items(const struct store *store, const struct tenant *tenant,
			       struct rewrap_item *items, size_t count,
			       const struct key_version *target_version, rewrap_progress_function progress,
			       void *progress_argument, struct rewrap_summary *summary, lic_error *error)
{
	lic_status status = LIC_OK;
	struct rewrap_item **order = malloc((count ? count : 1) * sizeof *order);
	struct version_key *old_key = NULL;
	const struct key_version *opened = NULL;
	struct rewrap_target target = {0};
	size_t pending = 0, done = 0;
	if (order == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	LIC_TRY(key_material_from_public_der(target_version->public_key_der,
					     target_version->public_key_length, &target.public_key, error));
	memcpy(target.key_id_hex, target_version->key_id_hex, sizeof target.key_id_hex);
	for (size_t i = 0; i < count; i++)
		if (items[i].version != target_version)
			order[pending++] = &items[i];
	summary->already_current = count - pending;
	qsort(order, pending, sizeof *order, compare_versions);
	for (size_t i = 0; i < pending; i++) {
		struct rewrap_item *item = order[i];
		if (item->version != opened) {
			version_key_free(old_key);
			old_key = NULL;
			opened = NULL;
			lic_status opened_status =
			    open_old_key(store, tenant->name, item->version, &old_key, error);
			if (opened_status != LIC_OK) {
				status = name_file(error, opened_status, item->path);
				goto out;
			}
			opened = item->version;
			struct rewrap_source_count *grown =
			    realloc(summary->sources, (summary->source_count + 1) * sizeof *grown);
			if (grown == NULL)
				LIC_FAIL(error, LIC_INTERNAL, "out of memory");
			summary->sources = grown;
			summary->sources[summary->source_count++] =
			    (struct rewrap_source_count){.version = opened->number, .count = 0};
		}
		lic_status rewrapped = rewrap_document(item->input, item->input_length, tenant->name, old_key,
						       &target, &item->output, &item->output_length, error);
		if (rewrapped != LIC_OK) {
			status = name_file(error, rewrapped, item->path);
			goto out;
		}
		summary->sources[summary->source_count - 1].count++;
		summary->rewrapped++;
		done++;
		if (progress != NULL)
			progress(done, pending, progress_argument);
	}
out:
	version_key_free(old_key);
	EVP_PKEY_free(target.public_key);
	free(order);
	return status;
}

/* The audit detail: "N PLs to version T: V1→T a, V2→T b; c already current". */
static void audit_detail(const struct rewrap_summary *summary, char *out, size_t size)
{
	size_t used = (size_t)snprintf(out, size, "%zu PLs to version %u (key id %s):", summary->files,
				       summary->target_version, summary->target_key_id_hex);
	size_t others = 0;
	for (size_t i = 0; i < summary->source_count && used < size; i++) {
		if (i >= REWRAP_AUDIT_VERSIONS_MAX) {
			others += summary->sources[i].count;
			continue;
		}
		used += (size_t)snprintf(out + used, size - used, " version %u -> %u: %zu,",
					 summary->sources[i].version, summary->target_version,
					 summary->sources[i].count);
	}
	if (others > 0 && used < size)
		used += (size_t)snprintf(out + used, size - used, " other versions: %zu,", others);
	if (used < size)
		snprintf(out + used, size - used, " already current: %zu", summary->already_current);
}

static lic_status write_outputs(const struct rewrap_item *items, size_t count, const char *out_dir,
				lic_error *error)
{
	lic_status status = LIC_OK;
	char path[PATH_MAX];
	LIC_TRY(file_make_directory(out_dir, error));
	for (size_t i = 0; i < count; i++) {
		const struct rewrap_item *item = &items[i];
		LIC_TRY(file_join(path, sizeof path, out_dir, item->basename, error));
		const char *data = item->output ? item->output : item->input;
		size_t length = item->output ? item->output_length : item->input_length;
		/* A PL is not secret (its content key is wrapped): readable like any document. */
		LIC_TRY(file_write_atomic(path, data, length, 0644, 0, error));
	}
out:
	return status;
}

lic_status rewrap_files(const struct admin_context *context, const char *name, const char *out_dir,
			const char *const *paths, size_t count, rewrap_progress_function progress,
			void *progress_argument, struct rewrap_summary *summary, lic_error *error)
{
	lic_status status = LIC_OK;
	struct tenant *tenant = NULL;
	struct rewrap_item *items = NULL;
	bool locked = false;
	char detail[1024];
	int64_t now = lic_clock_now(context->clock ? context->clock : lic_clock_system());
	struct audit_event event = {
	    .actor = context->actor ? context->actor : "unknown",
	    .action = "rewrap",
	    .tenant = name,
	};
	memset(summary, 0, sizeof *summary);
	if (count == 0)
		LIC_FAIL(error, LIC_USAGE, "no PL files given");
	if (count > REWRAP_MAX_FILES)
		LIC_FAIL(error, LIC_TOO_LARGE, "more than %d PL files in one rewrap", REWRAP_MAX_FILES);
	if (out_dir == NULL || out_dir[0] == '\0')
		LIC_FAIL(error, LIC_USAGE, "--out DIR is required");
	if (!tenant_name_valid(name))
		LIC_FAIL(error, LIC_USAGE, "%s is not a valid tenant name", name);
	items = calloc(count, sizeof *items);
	if (items == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	for (size_t i = 0; i < count; i++) {
		items[i].path = paths[i];
		items[i].basename = path_basename(paths[i]);
	}
	LIC_TRY(check_names(items, count, out_dir, error));

	LIC_TRY(store_lock(context->store, error));
	locked = true;
	LIC_TRY(audit_check_event(&event, now, error));
	LIC_TRY(audit_check_appendable(context->store->directory, error));
	LIC_TRY(store_load_tenant(context->store, name, &tenant, error));
	if (tenant->disabled)
		LIC_FAIL(error, LIC_TENANT_DISABLED, "tenant %s is disabled: enable it first", name);
	const struct key_version *target = tenant_signing_version(tenant, now);
	if (target == NULL)
		LIC_FAIL(error, LIC_KEY_REVOKED,
			 "tenant %s has no active, uncompromised version to rewrap to", name);
	summary->files = count;
	summary->target_version = target->number;
	memcpy(summary->target_key_id_hex, target->key_id_hex, sizeof summary->target_key_id_hex);

	for (size_t i = 0; i < count; i++)
		LIC_TRY(check_item(tenant, &items[i], now, error));
	LIC_TRY(rewrap_items(context->store, tenant, items, count, target, progress, progress_argument,
			     summary, error));
	audit_detail(summary, detail, sizeof detail);
	event.version = target->number;
	event.detail = detail;
	LIC_TRY(audit_check_event(&event, now, error));

	LIC_TRY(write_outputs(items, count, out_dir, error));
	LIC_TRY(audit_append(context->store->directory, &event, now, error));
out:
	if (locked)
		store_unlock(context->store);
	for (size_t i = 0; items != NULL && i < count; i++) {
		free(items[i].input);
		free(items[i].output);
	}
	free(items);
	tenant_free(tenant);
	if (status != LIC_OK)
		rewrap_summary_cleanup(summary);
	return status;
}
