/*
 * store.c: opening, initialising, locking and reading/writing the file store.
 * The order of checks on open is the promise of §4: world.xml is parsed, the
 * KEK obtained and matched against the check value, and only then may any
 * tenant file be touched.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <openssl/rand.h>

#include "encoding.h"
#include "error.h"
#include "file_io.h"
#include "secure_memory.h"
#include "store.h"
#include "pkcs11.h"
#include "tenant_file.h"
#include "utc_time.h"
#include "xml_document.h"

lic_status store_default_kek_path(const char *directory, char *out, size_t size, lic_error *error)
{
	size_t length = strlen(directory);
	while (length > 1 && directory[length - 1] == '/')
		length--;
	if (snprintf(out, size, "%.*s.kek", (int)length, directory) >= (int)size)
		return lic_error_set(error, LIC_TOO_LARGE, "store path too long");
	return LIC_OK;
}

static lic_status world_path(const char *directory, char *out, size_t size, lic_error *error)
{
	return file_join(out, size, directory, "world.xml", error);
}

static void world_cleanup(struct world *world)
{
	free(world->kek_path);
	world->kek_path = NULL;
	free(world->kek_uri);
	world->kek_uri = NULL;
	free(world->wrapped_kek);
	world->wrapped_kek = NULL;
}

static lic_status world_parse(const char *data, size_t length, struct world *world, lic_error *error)
{
	lic_status status = LIC_OK;
	xmlDocPtr document = NULL;
	xmlNodePtr root = NULL, node = NULL;
	char *text = NULL;
	uint8_t *check = NULL, *salt = NULL;
	size_t check_length = 0, salt_length = 0;
	uint64_t format = 0, number = 0;

	LIC_TRY(xml_document_parse(data, length, WORLD_FILE_MAX_BYTES, &document, error));
	LIC_TRY(xml_document_root(document, "World", &root, error));
	LIC_TRY(xml_attribute_u64(root, "Format", false, UINT32_MAX, &format, error));
	if (format != 1)
		LIC_FAIL(error, LIC_UNSUPPORTED_VERSION, "world.xml format %u is not supported",
			 (unsigned)format);
	LIC_TRY(xml_child(root, "StoreId", false, &node, error));
	LIC_TRY(xml_text(node, &text, error));
	if (strlen(text) != STORE_ID_LENGTH - 1)
		LIC_FAIL(error, LIC_MALFORMED, "world.xml: bad StoreId");
	memcpy(world->store_id, text, STORE_ID_LENGTH);
	xmlFree(text);
	text = NULL;
	LIC_TRY(xml_child(root, "CreatedAt", false, &node, error));
	LIC_TRY(xml_text(node, &text, error));
	LIC_TRY(utc_time_parse(text, &world->created_at, error));
	xmlFree(text);
	text = NULL;
	LIC_TRY(xml_child(root, "Kek", false, &node, error));
	LIC_TRY(xml_attribute(node, "Source", false, &text, error));
	if (strcmp(text, "file") == 0) {
		world->kek_source = KEK_SOURCE_FILE;
		xmlFree(text);
		text = NULL;
		LIC_TRY(xml_attribute(node, "Path", false, &text, error));
		if (text[0] != '/')
			LIC_FAIL(error, LIC_MALFORMED, "world.xml: the KEK path must be absolute");
		world->kek_path = strdup(text);
		if (world->kek_path == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	} else if (strcmp(text, "passphrase") == 0) {
		world->kek_source = KEK_SOURCE_PASSPHRASE;
		LIC_TRY(xml_child_base64(node, "Salt", false, &salt, &salt_length, error));
		if (salt_length != KEK_SALT_LENGTH)
			LIC_FAIL(error, LIC_MALFORMED, "world.xml: bad scrypt salt");
		memcpy(world->salt, salt, KEK_SALT_LENGTH);
		LIC_TRY(xml_attribute_u64(node, "ScryptN", false, 1u << 22, &world->scrypt.n, error));
		LIC_TRY(xml_attribute_u64(node, "ScryptR", false, 32, &number, error));
		world->scrypt.r = (uint32_t)number;
		LIC_TRY(xml_attribute_u64(node, "ScryptP", false, 16, &number, error));
		world->scrypt.p = (uint32_t)number;
	} else if (strcmp(text, "pkcs11") == 0) {
		world->kek_source = KEK_SOURCE_PKCS11;
		xmlFree(text);
		text = NULL;
		LIC_TRY(xml_attribute(node, "Uri", false, &text, error));
		if (pkcs11_uri_check(text, error) != LIC_OK)
			LIC_FAIL(error, LIC_MALFORMED, "world.xml: the KEK's PKCS#11 URI is not valid");
		world->kek_uri = strdup(text);
		if (world->kek_uri == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
		LIC_TRY(xml_child_base64(node, "WrappedKek", false, &world->wrapped_kek,
					 &world->wrapped_kek_length, error));
	} else {
		LIC_FAIL(error, LIC_UNSUPPORTED_VERSION, "world.xml: KEK source '%.16s' is not supported",
			 text);
	}
	LIC_TRY(xml_child_base64(root, "KekCheck", false, &check, &check_length, error));
	if (check_length != KEK_CHECK_LENGTH)
		LIC_FAIL(error, LIC_MALFORMED, "world.xml: bad KekCheck");
	memcpy(world->kek_check, check, KEK_CHECK_LENGTH);
out:
	xmlFree(text);
	free(check);
	free(salt);
	xmlFreeDoc(document);
	return status;
}

static lic_status world_serialize(const struct world *world, char **out, size_t *length, lic_error *error)
{
	lic_status status = LIC_OK;
	xmlDocPtr document = xmlNewDoc((const xmlChar *)"1.0");
	xmlNodePtr root = document ? xmlNewNode(NULL, (const xmlChar *)"World") : NULL;
	xmlNodePtr node = NULL;
	char created[UTC_TIME_LENGTH];
	if (root == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	xmlDocSetRootElement(document, root);
	xmlSetNs(root, xmlNewNs(root, (const xmlChar *)LICENSOR_NAMESPACE, NULL));
	LIC_TRY(xml_set_attribute(root, "Format", "1", error));
	LIC_TRY(xml_add_text_child(root, "StoreId", world->store_id, NULL, error));
	utc_time_format(world->created_at, created);
	LIC_TRY(xml_add_text_child(root, "CreatedAt", created, NULL, error));
	node = xmlNewChild(root, root->ns, (const xmlChar *)"Kek", NULL);
	if (node == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	if (world->kek_source == KEK_SOURCE_FILE) {
		LIC_TRY(xml_set_attribute(node, "Source", "file", error));
		LIC_TRY(xml_set_attribute(node, "Path", world->kek_path, error));
	} else if (world->kek_source == KEK_SOURCE_PKCS11) {
		LIC_TRY(xml_set_attribute(node, "Source", "pkcs11", error));
		LIC_TRY(xml_set_attribute(node, "Uri", world->kek_uri, error));
		LIC_TRY(xml_add_base64_child(node, "WrappedKek", world->wrapped_kek,
					     world->wrapped_kek_length, NULL, error));
	} else {
		LIC_TRY(xml_set_attribute(node, "Source", "passphrase", error));
		LIC_TRY(xml_set_attribute_u64(node, "ScryptN", world->scrypt.n, error));
		LIC_TRY(xml_set_attribute_u64(node, "ScryptR", world->scrypt.r, error));
		LIC_TRY(xml_set_attribute_u64(node, "ScryptP", world->scrypt.p, error));
		LIC_TRY(xml_add_base64_child(node, "Salt", world->salt, KEK_SALT_LENGTH, NULL, error));
	}
	LIC_TRY(xml_add_base64_child(root, "KekCheck", world->kek_check, KEK_CHECK_LENGTH, NULL, error));
	xmlChar *text = NULL;
	int text_length = 0;
	LIC_TRY(xml_document_serialize(document, &text, &text_length, error));
	*out = (char *)text;
	*length = (size_t)text_length;
out:
	xmlFreeDoc(document);
	return status;
}

static lic_status new_store_id(char out[STORE_ID_LENGTH], lic_error *error)
{
	uint8_t bytes[16];
	if (RAND_bytes(bytes, sizeof bytes) != 1)
		return lic_error_set(error, LIC_INTERNAL, "random generator failed");
	bytes[6] = (uint8_t)((bytes[6] & 0x0f) | 0x40); /* version 4 */
	bytes[8] = (uint8_t)((bytes[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	char hex[33];
	hex_encode(bytes, sizeof bytes, hex);
	snprintf(out, STORE_ID_LENGTH, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
		 hex + 20);
	return LIC_OK;
}

static lic_status derive_passphrase_kek(const struct world *world, const char *passphrase_file,
					struct kek **out, lic_error *error)
{
	char *passphrase = NULL;
	size_t length = 0;
	lic_status status = kek_read_passphrase_file(passphrase_file, &passphrase, &length, error);
	if (status != LIC_OK)
		return status;
	status = kek_from_passphrase(passphrase, length, world->salt, &world->scrypt, out, error);
	secure_free(passphrase, KEK_PASSPHRASE_MAX + 1);
	return status;
}

static lic_status absolute_path(const char *path, char **out, lic_error *error)
{
	char resolved[PATH_MAX];
	if (realpath(path, resolved) == NULL)
		return lic_error_set(error, LIC_IO, "cannot resolve %s: %s", path, strerror(errno));
	*out = strdup(resolved);
	return *out ? LIC_OK : lic_error_set(error, LIC_INTERNAL, "out of memory");
}

lic_status store_init(const struct store_options *options, struct store **out, lic_error *error)
{
	lic_status status = LIC_OK;
	struct store *store = calloc(1, sizeof *store);
	char path[PATH_MAX], kek_path[PATH_MAX];
	char *text = NULL;
	size_t text_length = 0;
	bool created_kek = false, created_directory = false;
	struct pkcs11_key *token = NULL;
	const lic_clock *clock = options->clock ? options->clock : lic_clock_system();
	struct stat info;

	if (store == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	store->lock_fd = -1;
	LIC_TRY(world_path(options->directory, path, sizeof path, error));
	if (stat(path, &info) == 0)
		LIC_FAIL(error, LIC_STATE, "%s already holds a store (world.xml exists)", options->directory);
	if (stat(options->directory, &info) != 0) {
		if (mkdir(options->directory, 0700) != 0)
			LIC_FAIL(error, LIC_IO, "cannot create store directory %s: %s", options->directory,
				 strerror(errno));
		created_directory = true;
		LIC_TRY(file_sync_parent(options->directory, error));
	} else if (!S_ISDIR(info.st_mode)) {
		LIC_FAIL(error, LIC_IO, "%s exists and is not a directory", options->directory);
	} else if ((info.st_mode & 0777) != 0700 && chmod(options->directory, 0700) != 0) {
		LIC_FAIL(error, LIC_IO, "cannot make %s 0700: %s", options->directory, strerror(errno));
	}
	store->directory = strdup(options->directory);
	if (store->directory == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	LIC_TRY(new_store_id(store->world.store_id, error));
	store->world.created_at = lic_clock_now(clock);

	if (options->pkcs11_uri != NULL) {
		if (options->passphrase_file != NULL || options->kek_file != NULL)
			LIC_FAIL(error, LIC_USAGE,
				 "give one KEK source: --pkcs11, --kek-file or --passphrase-file");
		store->world.kek_source = KEK_SOURCE_PKCS11;
		LIC_TRY(pkcs11_uri_check_storable(options->pkcs11_uri, error));
		if (options->pkcs11_module != NULL)
			LIC_TRY(pkcs11_uri_with_module(options->pkcs11_uri, options->pkcs11_module,
						       &store->world.kek_uri, error));
		else if ((store->world.kek_uri = strdup(options->pkcs11_uri)) == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
		LIC_TRY(pkcs11_key_open(store->world.kek_uri, options->pkcs11_module, PKCS11_KEY_AES, &token,
					error));
		LIC_TRY(kek_create_in_token(token, &store->kek, &store->world.wrapped_kek,
					    &store->world.wrapped_kek_length, error));
	} else if (options->passphrase_file != NULL) {
		store->world.kek_source = KEK_SOURCE_PASSPHRASE;
		store->world.scrypt = scrypt_default_parameters;
		if (RAND_bytes(store->world.salt, KEK_SALT_LENGTH) != 1)
			LIC_FAIL(error, LIC_INTERNAL, "random generator failed");
		LIC_TRY(derive_passphrase_kek(&store->world, options->passphrase_file, &store->kek, error));
	} else {
		store->world.kek_source = KEK_SOURCE_FILE;
		if (options->kek_file != NULL) {
			if (snprintf(kek_path, sizeof kek_path, "%s", options->kek_file) >=
			    (int)sizeof kek_path)
				LIC_FAIL(error, LIC_TOO_LARGE, "KEK path too long");
		} else {
			LIC_TRY(store_default_kek_path(options->directory, kek_path, sizeof kek_path, error));
		}
		if (access(kek_path, F_OK) == 0) {
			LIC_TRY(kek_load_file(kek_path, &store->kek, error));
		} else {
			LIC_TRY(kek_create_file(kek_path, &store->kek, error));
			created_kek = true;
		}
		LIC_TRY(absolute_path(kek_path, &store->world.kek_path, error));
	}
	kek_check_value(store->kek, store->world.store_id, store->world.kek_check);

	LIC_TRY(file_join(path, sizeof path, options->directory, "tenants", error));
	LIC_TRY(file_make_directory(path, error));
	LIC_TRY(world_serialize(&store->world, &text, &text_length, error));
	LIC_TRY(world_path(options->directory, path, sizeof path, error));
	LIC_TRY(file_write_atomic(path, text, text_length, 0600, 0, error));
	*out = store;
	store = NULL;
out:
	xmlFree(text);
	pkcs11_key_free(token);
	if (store != NULL) {
		/* A failed init leaves nothing behind that it created. */
		if (created_kek)
			unlink(kek_path);
		if (created_directory) {
			char tenants[PATH_MAX];
			if (file_join(tenants, sizeof tenants, options->directory, "tenants", NULL) == LIC_OK)
				rmdir(tenants);
			rmdir(options->directory);
		}
		store_close(store);
	}
	return status;
}

lic_status store_open(const struct store_options *options, struct store **out, lic_error *error)
{
	lic_status status = LIC_OK;
	struct store *store = calloc(1, sizeof *store);
	char path[PATH_MAX];
	char *text = NULL;
	size_t length = 0;
	struct stat info;
	struct pkcs11_key *token = NULL;

	if (store == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	store->lock_fd = -1;
	if (stat(options->directory, &info) != 0)
		LIC_FAIL(error, LIC_IO, "no store at %s (%s): run `licensor init --store %s` first",
			 options->directory, strerror(errno), options->directory);
	LIC_TRY(world_path(options->directory, path, sizeof path, error));
	if (file_read_all(path, WORLD_FILE_MAX_BYTES, &text, &length, error) != LIC_OK) {
		if (errno == ENOENT)
			LIC_FAIL(error, LIC_IO,
				 "%s is not a store (no world.xml): run `licensor init --store %s`",
				 options->directory, options->directory);
		status = LIC_IO; /* file_read_all's sentence stands */
		goto out;
	}
	LIC_TRY(world_parse(text, length, &store->world, error));
	store->directory = strdup(options->directory);
	if (store->directory == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");

	if (store->world.kek_source == KEK_SOURCE_PKCS11) {
		if (options->passphrase_file != NULL || options->kek_file != NULL)
			LIC_FAIL(error, LIC_USAGE, "store %s keeps its KEK in a PKCS#11 token, not in a file",
				 options->directory);
		lic_error token_error = {0};
		if (pkcs11_key_open(store->world.kek_uri, options->pkcs11_module, PKCS11_KEY_AES, &token,
				    &token_error) != LIC_OK ||
		    kek_from_token(token, store->world.wrapped_kek, store->world.wrapped_kek_length,
				   &store->kek, &token_error) != LIC_OK) {
			char redacted[PKCS11_URI_MAX];
			pkcs11_uri_redacted(store->world.kek_uri, redacted, sizeof redacted);
			LIC_FAIL(
			    error, token_error.status == LIC_USAGE ? LIC_USAGE : LIC_INTERNAL,
			    "the KEK of store %s is guarded by the token key %s, which cannot unwrap it: %s",
			    options->directory, redacted, token_error.message);
		}
	} else if (options->passphrase_file != NULL || store->world.kek_source == KEK_SOURCE_PASSPHRASE) {
		if (store->world.kek_source != KEK_SOURCE_PASSPHRASE)
			LIC_FAIL(error, LIC_USAGE, "store %s uses a KEK file, not a passphrase",
				 options->directory);
		if (options->passphrase_file == NULL)
			LIC_FAIL(error, LIC_USAGE,
				 "store %s is protected by a passphrase: give --passphrase-file or "
				 "LICENSOR_PASSPHRASE_FILE",
				 options->directory);
		LIC_TRY(derive_passphrase_kek(&store->world, options->passphrase_file, &store->kek, error));
	} else {
		const char *kek_path = options->kek_file ? options->kek_file : store->world.kek_path;
		LIC_TRY(kek_load_file(kek_path, &store->kek, error));
	}
	if (!kek_matches(store->kek, store->world.store_id, store->world.kek_check))
		LIC_FAIL(
		    error, LIC_UNAUTHORIZED,
		    "wrong KEK for store %s: it does not match the store's check value; nothing was read or "
		    "changed",
		    options->directory);
	*out = store;
	store = NULL;
out:
	free(text);
	pkcs11_key_free(token);
	store_close(store);
	return status;
}

void store_close(struct store *store)
{
	if (store == NULL)
		return;
	store_unlock(store);
	kek_free(store->kek);
	world_cleanup(&store->world);
	free(store->directory);
	free(store);
}

lic_status store_lock(struct store *store, lic_error *error)
{
	if (store->lock_fd >= 0)
		return LIC_OK;
	/* The lock is a flock on the store directory itself: taking it creates no
	 * file, so a refused command leaves the store exactly as it was. */
	int fd = open(store->directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return lic_error_set(error, LIC_IO, "cannot open %s: %s", store->directory, strerror(errno));
	while (flock(fd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			int saved = errno;
			close(fd);
			return lic_error_set(error, LIC_IO, "cannot lock %s: %s", store->directory,
					     strerror(saved));
		}
	}
	store->lock_fd = fd;
	return LIC_OK;
}

lic_status store_try_lock(struct store *store, bool *taken, lic_error *error)
{
	*taken = store->lock_fd >= 0;
	if (*taken)
		return LIC_OK;
	int fd = open(store->directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return lic_error_set(error, LIC_IO, "cannot open %s: %s", store->directory, strerror(errno));
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EINTR) {
			int saved = errno;
			close(fd);
			if (saved == EWOULDBLOCK)
				return LIC_OK; /* another writer holds it */
			return lic_error_set(error, LIC_IO, "cannot lock %s: %s", store->directory,
					     strerror(saved));
		}
	}
	store->lock_fd = fd;
	*taken = true;
	return LIC_OK;
}

void store_unlock(struct store *store)
{
	if (store->lock_fd >= 0) {
		close(store->lock_fd); /* closing releases the flock */
		store->lock_fd = -1;
	}
}

lic_status store_tenant_path(const struct store *store, const char *name, char *out, size_t size,
			     lic_error *error)
{
	if (!tenant_name_valid(name))
		return lic_error_set(
		    error, LIC_USAGE,
		    "bad tenant name '%.64s' (1-63 characters of a-z, 0-9, '.', '-', starting with a "
		    "letter or digit)",
		    name);
	if (snprintf(out, size, "%s/tenants/%s.xml", store->directory, name) >= (int)size)
		return lic_error_set(error, LIC_TOO_LARGE, "path too long");
	return LIC_OK;
}

bool store_tenant_exists(const struct store *store, const char *name)
{
	char path[PATH_MAX];
	return store_tenant_path(store, name, path, sizeof path, NULL) == LIC_OK && access(path, F_OK) == 0;
}

lic_status store_load_tenant(const struct store *store, const char *name, struct tenant **out,
			     lic_error *error)
{
	char path[PATH_MAX];
	char *text = NULL;
	size_t length = 0;
	lic_status status = store_tenant_path(store, name, path, sizeof path, error);
	if (status != LIC_OK)
		return status;
	status = file_read_all(path, TENANT_FILE_MAX_BYTES, &text, &length, error);
	if (status != LIC_OK) {
		if (status == LIC_IO && errno == ENOENT)
			return lic_error_set(error, LIC_UNKNOWN_TENANT, "no tenant %s in store %s", name,
					     store->directory);
		return status;
	}
	status = tenant_file_parse(text, length, name, out, error);
	free(text);
	return status;
}

/* A store may be only its world.xml (how a lost store is rebuilt, DESIGN.md
 * §4): the first write creates tenants/, durably. */
static lic_status ensure_tenants_directory(const struct store *store, lic_error *error)
{
	char path[PATH_MAX];
	lic_status status = file_join(path, sizeof path, store->directory, "tenants", error);
	if (status != LIC_OK)
		return status;
	if (mkdir(path, 0700) == 0)
		return file_sync_directory(store->directory, error);
	if (errno != EEXIST)
		return lic_error_set(error, LIC_IO, "cannot create %s: %s", path, strerror(errno));
	return LIC_OK;
}

lic_status store_save_tenant(const struct store *store, struct tenant *tenant, int flags, lic_error *error)
{
	char path[PATH_MAX];
	char *text = NULL;
	size_t length = 0;
	lic_status status = store_tenant_path(store, tenant->name, path, sizeof path, error);
	if (status != LIC_OK)
		return status;
	status = ensure_tenants_directory(store, error);
	if (status != LIC_OK)
		return status;
	tenant->revision++;
	status = tenant_file_serialize(tenant, &text, &length, error);
	if (status == LIC_OK)
		status = file_write_atomic(path, text, length, 0600, flags, error);
	if (status != LIC_OK)
		tenant->revision--;
	xmlFree(text);
	return status;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

lic_status store_list_tenants(const struct store *store, char ***names, size_t *count, lic_error *error)
{
	lic_status status = LIC_OK;
	char path[PATH_MAX];
	char **list = NULL;
	size_t used = 0, capacity = 0;
	DIR *directory = NULL;
	LIC_TRY(file_join(path, sizeof path, store->directory, "tenants", error));
	directory = opendir(path);
	if (directory == NULL && errno == ENOENT) {
		/* A store that is only its world.xml: no tenants yet. */
		*names = NULL;
		*count = 0;
		goto out;
	}
	if (directory == NULL)
		LIC_FAIL(error, LIC_IO, "cannot read %s: %s", path, strerror(errno));
	struct dirent *entry;
	while ((entry = readdir(directory)) != NULL) {
		size_t length = strlen(entry->d_name);
		if (length <= 4 || strcmp(entry->d_name + length - 4, ".xml") != 0)
			continue; /* also skips `<tenant>.xml.tmp` left by an interrupted write */
		char name[TENANT_NAME_MAX + 1];
		if (length - 4 > TENANT_NAME_MAX)
			continue;
		memcpy(name, entry->d_name, length - 4);
		name[length - 4] = '\0';
		if (!tenant_name_valid(name))
			continue;
		if (used == capacity) {
			capacity = capacity ? 2 * capacity : 64;
			char **grown = realloc(list, capacity * sizeof *grown);
			if (grown == NULL)
				LIC_FAIL(error, LIC_INTERNAL, "out of memory");
			list = grown;
		}
		list[used] = strdup(name);
		if (list[used] == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
		used++;
	}
	if (used > 0)
		qsort(list, used, sizeof *list, compare_names);
	*names = list;
	*count = used;
	list = NULL;
out:
	if (directory != NULL)
		closedir(directory);
	if (list != NULL) {
		for (size_t i = 0; i < used; i++)
			free(list[i]);
		free(list);
	}
	return status;
}

lic_status store_seal_private_key(const struct kek *kek, const char *tenant, struct key_version *version,
				  EVP_PKEY *key, lic_error *error)
{
	uint8_t aad[TENANT_NAME_MAX + 1 + 4 + KEY_ID_LENGTH];
	uint8_t *der = NULL;
	size_t der_length = 0;
	lic_status status = key_material_private_der(key, &der, &der_length, error);
	if (status != LIC_OK)
		return status;
	size_t aad_length = tenant_private_key_aad(tenant, version->number, version->key_id, aad);
	status = kek_seal(kek, aad, aad_length, der, der_length, &version->sealed_private_key,
			  &version->sealed_private_key_length, error);
	secure_free(der, der_length);
	return status;
}

lic_status store_open_private_key(const struct kek *kek, const char *tenant,
				  const struct key_version *version, EVP_PKEY **out, lic_error *error)
{
	uint8_t aad[TENANT_NAME_MAX + 1 + 4 + KEY_ID_LENGTH];
	uint8_t *der = NULL;
	size_t der_length = 0;
	if (version->state == LIC_KEY_STATE_DESTROYED)
		return lic_error_set(error, LIC_KEY_DESTROYED, "version %u of %s is destroyed",
				     version->number, tenant);
	if (version->sealed_private_key == NULL)
		return lic_error_set(error, LIC_NOT_EXPORTABLE,
				     "version %u of %s has no private key here (BYOK)", version->number,
				     tenant);
	size_t aad_length = tenant_private_key_aad(tenant, version->number, version->key_id, aad);
	lic_status status = kek_open(kek, aad, aad_length, version->sealed_private_key,
				     version->sealed_private_key_length, &der, &der_length, error);
	if (status != LIC_OK)
		return status;
	EVP_PKEY *key = NULL;
	status = key_material_from_private_der(der, der_length, &key, error);
	secure_free(der, der_length + 1);
	if (status != LIC_OK)
		return status;
	/* The sealed key must belong to the public key it sits beside. */
	uint8_t *spki = NULL;
	size_t spki_length = 0;
	status = key_material_public_der(key, &spki, &spki_length, error);
	if (status == LIC_OK && (spki_length != version->public_key_length ||
				 memcmp(spki, version->public_key_der, spki_length) != 0))
		status = lic_error_set(error, LIC_INTERNAL,
				       "version %u of %s: private key does not match its public key",
				       version->number, tenant);
	free(spki);
	if (status != LIC_OK) {
		EVP_PKEY_free(key);
		return status;
	}
	*out = key;
	return LIC_OK;
}

lic_status store_generate_version(const struct kek *kek, const char *tenant, uint32_t number,
				  enum key_algorithm algorithm, struct key_version *version, lic_error *error)
{
	lic_status status = LIC_OK;
	EVP_PKEY *key = NULL;
	memset(version, 0, sizeof *version);
	version->number = number;
	version->algorithm = algorithm;
	version->origin = KEY_ORIGIN_MANAGED;
	LIC_TRY(key_material_generate(algorithm, &key, error));
	LIC_TRY(key_material_public_der(key, &version->public_key_der, &version->public_key_length, error));
	key_id_of_spki(version->public_key_der, version->public_key_length, version->key_id);
	hex_encode(version->key_id, KEY_ID_LENGTH, version->key_id_hex);
	LIC_TRY(store_seal_private_key(kek, tenant, version, key, error));
out:
	EVP_PKEY_free(key);
	if (status != LIC_OK) {
		free(version->public_key_der);
		free(version->sealed_private_key);
		memset(version, 0, sizeof *version);
	}
	return status;
}
