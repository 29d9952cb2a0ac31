/*
 * pkcs11.c: keys in a PKCS#11 token, named by RFC 7512 URIs (see pkcs11.h).
 *
 * Modules are dlopen()ed by path, once per path for the life of the process,
 * and C_Initialize'd once with CKF_OS_LOCKING_OK; they are never unloaded
 * (another key may still use them, and many modules do not survive a
 * C_Finalize + reload). The registry of loaded modules is a mutex-protected
 * list.
 *
 * A pkcs11_key holds one "anchor" session, opened at pkcs11_key_open and kept
 * until pkcs11_key_free: it carries the login (a token logs the application
 * out when its last session closes) and is used only while opening. The
 * operations take a session from the key's pool (a mutex-protected stack),
 * open a new one when the pool is empty, and push it back when done, so
 * concurrent callers never share a session. A session whose operation
 * failed is closed rather than pushed back: its state is not trusted.
 *
 * RSA-OAEP: the token is asked for CKM_RSA_PKCS_OAEP with SHA-256, MGF1-SHA-256
 * and the label. Tokens that refuse those parameters (SoftHSM2 2.6 takes only
 * SHA-1 and no label) are remembered on the key and get CKM_RSA_X_509 (the
 * raw RSA private operation, still in the token) followed by the EME-OAEP
 * decoding of RFC 8017 §7.1.2 here, in constant time over the padded block.
 * Every decoding failure is one sentence, so that no caller can tell which
 * check failed (Manger's attack).
 *
 * PINs: read from pin-value or the pin-source file into a local buffer, wiped
 * after C_Login, and never copied into an error sentence.
 */
#include "keyring/pkcs11.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "keyring/error.h"
#include "keyring/secure_memory.h"

/* Last: p11-kit's compatibility header #defines common words (value, label…). */
#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>

#define PROXY_MODULE "p11-kit-proxy.so"
#define PIN_MAX 256
#define SHA256_LENGTH 32
#define AES_GCM_IV_LENGTH 12
#define AES_GCM_TAG_LENGTH 16
#define SEALED_TAG_GCM 1 /* the only mode; 2 was AES-CBC-PAD, no longer written or read */
#define FIND_MAX 4

/* ---- CKR names ----------------------------------------------------------- */

static const char *ckr_name(CK_RV rv)
{
	switch (rv) {
#define CKR_CASE(name)                                                                                       \
	case name:                                                                                           \
		return #name
		CKR_CASE(CKR_OK);
		CKR_CASE(CKR_HOST_MEMORY);
		CKR_CASE(CKR_SLOT_ID_INVALID);
		CKR_CASE(CKR_GENERAL_ERROR);
		CKR_CASE(CKR_FUNCTION_FAILED);
		CKR_CASE(CKR_ARGUMENTS_BAD);
		CKR_CASE(CKR_CANT_LOCK);
		CKR_CASE(CKR_ATTRIBUTE_SENSITIVE);
		CKR_CASE(CKR_ATTRIBUTE_TYPE_INVALID);
		CKR_CASE(CKR_ATTRIBUTE_VALUE_INVALID);
		CKR_CASE(CKR_DATA_INVALID);
		CKR_CASE(CKR_DATA_LEN_RANGE);
		CKR_CASE(CKR_DEVICE_ERROR);
		CKR_CASE(CKR_DEVICE_MEMORY);
		CKR_CASE(CKR_DEVICE_REMOVED);
		CKR_CASE(CKR_ENCRYPTED_DATA_INVALID);
		CKR_CASE(CKR_ENCRYPTED_DATA_LEN_RANGE);
		CKR_CASE(CKR_FUNCTION_NOT_SUPPORTED);
		CKR_CASE(CKR_KEY_HANDLE_INVALID);
		CKR_CASE(CKR_KEY_SIZE_RANGE);
		CKR_CASE(CKR_KEY_TYPE_INCONSISTENT);
		CKR_CASE(CKR_KEY_FUNCTION_NOT_PERMITTED);
		CKR_CASE(CKR_MECHANISM_INVALID);
		CKR_CASE(CKR_MECHANISM_PARAM_INVALID);
		CKR_CASE(CKR_OBJECT_HANDLE_INVALID);
		CKR_CASE(CKR_OPERATION_ACTIVE);
		CKR_CASE(CKR_OPERATION_NOT_INITIALIZED);
		CKR_CASE(CKR_PIN_INCORRECT);
		CKR_CASE(CKR_PIN_INVALID);
		CKR_CASE(CKR_PIN_LEN_RANGE);
		CKR_CASE(CKR_PIN_EXPIRED);
		CKR_CASE(CKR_PIN_LOCKED);
		CKR_CASE(CKR_SESSION_CLOSED);
		CKR_CASE(CKR_SESSION_COUNT);
		CKR_CASE(CKR_SESSION_HANDLE_INVALID);
		CKR_CASE(CKR_SESSION_READ_ONLY);
		CKR_CASE(CKR_SIGNATURE_INVALID);
		CKR_CASE(CKR_SIGNATURE_LEN_RANGE);
		CKR_CASE(CKR_TEMPLATE_INCOMPLETE);
		CKR_CASE(CKR_TEMPLATE_INCONSISTENT);
		CKR_CASE(CKR_TOKEN_NOT_PRESENT);
		CKR_CASE(CKR_TOKEN_NOT_RECOGNIZED);
		CKR_CASE(CKR_TOKEN_WRITE_PROTECTED);
		CKR_CASE(CKR_USER_ALREADY_LOGGED_IN);
		CKR_CASE(CKR_USER_NOT_LOGGED_IN);
		CKR_CASE(CKR_USER_PIN_NOT_INITIALIZED);
		CKR_CASE(CKR_USER_TYPE_INVALID);
		CKR_CASE(CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
		CKR_CASE(CKR_BUFFER_TOO_SMALL);
		CKR_CASE(CKR_CRYPTOKI_NOT_INITIALIZED);
		CKR_CASE(CKR_CRYPTOKI_ALREADY_INITIALIZED);
		CKR_CASE(CKR_FUNCTION_REJECTED);
#undef CKR_CASE
	default:
		return "CKR_(unknown)";
	}
}

static lic_status token_failure(lic_error *error, const char *what, CK_RV rv)
{
	return lic_error_set(error, LIC_INTERNAL, "the token refused %s: %s (0x%lx)", what, ckr_name(rv),
			     (unsigned long)rv);
}

/* ---- URIs ---------------------------------------------------------------- */

/* p11_kit_uri_free after wiping the pin-value p11-kit decoded (it frees the
 * string without wiping it). */
static void uri_free(P11KitUri *parsed)
{
	if (parsed == NULL)
		return;
	const char *pin = p11_kit_uri_get_pin_value(parsed);
	if (pin != NULL)
		OPENSSL_cleanse((char *)pin, strlen(pin));
	p11_kit_uri_free(parsed);
}

/* Whether the URI holds a byte p11-kit would skip (whitespace) or that has
 * no place in a URI (control characters): such a URI could spell pin-value
 * in a way the redaction does not see, so it is refused. */
static bool uri_has_blank(const char *uri)
{
	for (const unsigned char *c = (const unsigned char *)uri; *c != '\0'; c++)
		if (*c <= 0x20 || *c == 0x7f)
			return true;
	return false;
}

static lic_status uri_parse(const char *uri, P11KitUri **out, lic_error *error)
{
	lic_status status = LIC_OK;
	P11KitUri *parsed = NULL;
	char shown[PKCS11_URI_MAX];
	if (uri == NULL || strncmp(uri, "pkcs11:", 7) != 0) {
		pkcs11_uri_redacted(uri != NULL ? uri : "", shown, sizeof shown);
		LIC_FAIL(error, LIC_USAGE, "%s is not a pkcs11: URI", shown);
	}
	if (strlen(uri) >= PKCS11_URI_MAX)
		LIC_FAIL(error, LIC_USAGE, "the pkcs11: URI is longer than %d bytes", PKCS11_URI_MAX - 1);
	if (uri_has_blank(uri)) {
		pkcs11_uri_redacted(uri, shown, sizeof shown);
		LIC_FAIL(error, LIC_USAGE,
			 "the pkcs11: URI holds whitespace or a control character (write it %%20 inside a "
			 "value): %s",
			 shown);
	}
	parsed = p11_kit_uri_new();
	if (parsed == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	int result = p11_kit_uri_parse(uri, P11_KIT_URI_FOR_ANY, parsed);
	if (result != P11_KIT_URI_OK) {
		pkcs11_uri_redacted(uri, shown, sizeof shown);
		LIC_FAIL(error, LIC_USAGE, "%s is not a valid pkcs11: URI (%s)", shown,
			 p11_kit_uri_message(result));
	}
	if (p11_kit_uri_any_unrecognized(parsed)) {
		pkcs11_uri_redacted(uri, shown, sizeof shown);
		LIC_FAIL(error, LIC_USAGE, "%s has an attribute this program does not know", shown);
	}
	*out = parsed;
	parsed = NULL;
out:
	uri_free(parsed);
	return status;
}

lic_status pkcs11_uri_check(const char *uri, lic_error *error)
{
	lic_status status = LIC_OK;
	P11KitUri *parsed = NULL;
	LIC_TRY(uri_parse(uri, &parsed, error));
	if (p11_kit_uri_get_attribute(parsed, CKA_LABEL) == NULL &&
	    p11_kit_uri_get_attribute(parsed, CKA_ID) == NULL) {
		char shown[PKCS11_URI_MAX];
		pkcs11_uri_redacted(uri, shown, sizeof shown);
		LIC_FAIL(error, LIC_USAGE, "%s names no object: add object=LABEL or id=%%XX…", shown);
	}
out:
	uri_free(parsed);
	return status;
}

/* Appends `text` (length bytes) to out[*used], keeping room for the NUL. */
static void append_bounded(char *out, size_t size, size_t *used, const char *text, size_t length)
{
	if (*used + 1 >= size)
		return;
	size_t room = size - 1 - *used;
	if (length > room)
		length = room;
	memcpy(out + *used, text, length);
	*used += length;
	out[*used] = '\0';
}

/* Whether the attribute segment [segment, segment + length) is pin-value=…,
 * its name read as p11-kit might: case aside, percent-decoded, blanks
 * skipped. */
static bool segment_is_pin(const char *segment, size_t length)
{
	static const char name[] = "pin-value";
	size_t matched = 0;
	for (size_t i = 0; i < length; i++) {
		unsigned char c = (unsigned char)segment[i];
		if (c == '=')
			return matched == sizeof name - 1;
		if (c <= 0x20 || c == 0x7f)
			continue;
		if (c == '%' && i + 2 < length && isxdigit((unsigned char)segment[i + 1]) &&
		    isxdigit((unsigned char)segment[i + 2])) {
			char hex[3] = {segment[i + 1], segment[i + 2], '\0'};
			c = (unsigned char)strtoul(hex, NULL, 16);
			i += 2;
		}
		if (matched >= sizeof name - 1 || tolower(c) != name[matched])
			return false;
		matched++;
	}
	return false;
}

/* The end of the attribute segment starting at `cursor`: the path's
 * segments end at ';' or '?', the query's at '&'. */
static const char *segment_end(const char *cursor, bool in_query)
{
	while (*cursor != '\0' && (in_query ? *cursor != '&' : (*cursor != ';' && *cursor != '?')))
		cursor++;
	return cursor;
}

void pkcs11_uri_redacted(const char *uri, char *out, size_t size)
{
	if (out == NULL || size == 0)
		return;
	out[0] = '\0';
	if (uri == NULL)
		return;
	size_t used = 0;
	const char *cursor = uri;
	const char *colon = strchr(uri, ':');
	const char *query = strchr(uri, '?');
	if (colon != NULL && (query == NULL || colon < query)) {
		append_bounded(out, size, &used, uri, (size_t)(colon + 1 - uri));
		cursor = colon + 1;
	}
	bool in_query = false;
	while (*cursor != '\0') {
		const char *end = segment_end(cursor, in_query);
		if (segment_is_pin(cursor, (size_t)(end - cursor)))
			append_bounded(out, size, &used, "pin-value=***", 13);
		else
			append_bounded(out, size, &used, cursor, (size_t)(end - cursor));
		if (*end == '\0')
			break;
		append_bounded(out, size, &used, end, 1);
		if (*end == '?')
			in_query = true;
		cursor = end + 1;
	}
}

lic_status pkcs11_uri_check_storable(const char *uri, lic_error *error)
{
	lic_status status = LIC_OK;
	P11KitUri *parsed = NULL;
	LIC_TRY(pkcs11_uri_check(uri, error));
	LIC_TRY(uri_parse(uri, &parsed, error));
	char *without = malloc(strlen(uri) + 1);
	if (without == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	pkcs11_uri_without_pin(uri, without, strlen(uri) + 1);
	bool has_pin = p11_kit_uri_get_pin_value(parsed) != NULL || strcmp(without, uri) != 0;
	free(without);
	if (has_pin)
		LIC_FAIL(error, LIC_USAGE,
			 "the URI holds pin-value, and the store would record it: give "
			 "pin-source=FILE (a 0600 file holding the PIN) instead");
out:
	uri_free(parsed);
	return status;
}

void pkcs11_uri_without_pin(const char *uri, char *out, size_t size)
{
	if (out == NULL || size == 0)
		return;
	out[0] = '\0';
	if (uri == NULL)
		return;
	size_t used = 0;
	const char *cursor = uri;
	const char *colon = strchr(uri, ':');
	const char *query = strchr(uri, '?');
	if (colon != NULL && (query == NULL || colon < query)) {
		append_bounded(out, size, &used, uri, (size_t)(colon + 1 - uri));
		cursor = colon + 1;
	}
	bool in_query = false;
	bool first = true; /* of the path, then of the query */
	while (true) {
		const char *end = segment_end(cursor, in_query);
		size_t length = (size_t)(end - cursor);
		if (length > 0 && !segment_is_pin(cursor, length)) {
			if (first && in_query)
				append_bounded(out, size, &used, "?", 1);
			else if (!first)
				append_bounded(out, size, &used, in_query ? "&" : ";", 1);
			append_bounded(out, size, &used, cursor, length);
			first = false;
		}
		if (*end == '\0')
			break;
		if (*end == '?') {
			in_query = true;
			first = true;
		}
		cursor = end + 1;
	}
}

static bool module_path_char_plain(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '.' || c == '_' || c == '~' || c == '/';
}

lic_status pkcs11_uri_with_module(const char *uri, const char *module_path, char **out, lic_error *error)
{
	lic_status status = LIC_OK;
	P11KitUri *parsed = NULL;
	char *result = NULL;
	*out = NULL;
	LIC_TRY(uri_parse(uri, &parsed, error));
	if (module_path == NULL || module_path[0] != '/')
		LIC_FAIL(error, LIC_USAGE, "the PKCS#11 module path must be absolute");
	const char *named = p11_kit_uri_get_module_path(parsed);
	if (named != NULL) {
		if (strcmp(named, module_path) != 0)
			LIC_FAIL(error, LIC_USAGE, "the URI already names module %s, not %s", named,
				 module_path);
		result = strdup(uri);
		if (result == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
		*out = result;
		result = NULL;
		goto out;
	}
	size_t uri_length = strlen(uri);
	size_t capacity = uri_length + strlen("&module-path=") + 3 * strlen(module_path) + 1;
	result = malloc(capacity);
	if (result == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	memcpy(result, uri, uri_length);
	size_t used = uri_length;
	const char *separator = strchr(uri, '?') != NULL ? "&module-path=" : "?module-path=";
	memcpy(result + used, separator, strlen(separator));
	used += strlen(separator);
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *c = (const unsigned char *)module_path; *c != '\0'; c++) {
		if (module_path_char_plain(*c)) {
			result[used++] = (char)*c;
		} else {
			result[used++] = '%';
			result[used++] = hex[*c >> 4];
			result[used++] = hex[*c & 15];
		}
	}
	result[used] = '\0';
	if (used >= PKCS11_URI_MAX)
		LIC_FAIL(error, LIC_USAGE, "the pkcs11: URI with its module path is longer than %d bytes",
			 PKCS11_URI_MAX - 1);
	*out = result;
	result = NULL;
out:
	free(result);
	uri_free(parsed);
	return status;
}

/* ---- Modules ------------------------------------------------------------- */

struct pkcs11_module {
	char *path;
	void *handle;
	CK_FUNCTION_LIST_PTR functions;
	struct pkcs11_module *next;
};

static pthread_mutex_t modules_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pkcs11_module *modules;

/* Which module: the argument, LICENSOR_PKCS11_MODULE, the URI's module-path,
 * else p11-kit's proxy (found on the library path). */
static lic_status module_choose(const char *module_path, P11KitUri *parsed, const char **out,
				lic_error *error)
{
	const char *chosen = module_path;
	const char *origin = "--pkcs11-module";
	if (chosen == NULL || chosen[0] == '\0') {
		chosen = getenv("LICENSOR_PKCS11_MODULE");
		origin = "LICENSOR_PKCS11_MODULE";
	}
	if (chosen == NULL || chosen[0] == '\0') {
		chosen = p11_kit_uri_get_module_path(parsed);
		origin = "the URI's module-path";
	}
	if (chosen == NULL || chosen[0] == '\0') {
		*out = PROXY_MODULE;
		return LIC_OK;
	}
	if (chosen[0] != '/')
		return lic_error_set(error, LIC_USAGE, "the PKCS#11 module of %s must be an absolute path",
				     origin);
	*out = chosen;
	return LIC_OK;
}

static lic_status module_load(const char *path, struct pkcs11_module **out, lic_error *error)
{
	lic_status status = LIC_OK;
	struct pkcs11_module *module = NULL;
	struct pkcs11_module *fresh = NULL;
	void *handle = NULL;
	pthread_mutex_lock(&modules_lock);
	for (module = modules; module != NULL; module = module->next)
		if (strcmp(module->path, path) == 0)
			break;
	if (module != NULL) {
		*out = module;
		goto out;
	}
	/* allocated first: once C_Initialize succeeded the module is never
	 * dlclose()d, so nothing may fail after it */
	fresh = calloc(1, sizeof *fresh);
	if (fresh == NULL || (fresh->path = strdup(path)) == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (handle == NULL) {
		const char *reason = dlerror();
		LIC_FAIL(error, LIC_IO, "cannot load the PKCS#11 module %s: %s", path,
			 reason != NULL ? reason : "unknown reason");
	}
	CK_C_GetFunctionList get_function_list = NULL;
	*(void **)&get_function_list = dlsym(handle, "C_GetFunctionList");
	if (get_function_list == NULL)
		LIC_FAIL(error, LIC_IO, "%s is not a PKCS#11 module (no C_GetFunctionList)", path);
	CK_FUNCTION_LIST_PTR functions = NULL;
	CK_RV rv = get_function_list(&functions);
	if (rv != CKR_OK || functions == NULL)
		LIC_FAIL(error, LIC_IO, "%s gave no PKCS#11 function list: %s", path, ckr_name(rv));
	CK_C_INITIALIZE_ARGS arguments;
	memset(&arguments, 0, sizeof arguments);
	arguments.flags = CKF_OS_LOCKING_OK;
	rv = functions->C_Initialize(&arguments);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED)
		LIC_FAIL(error, LIC_INTERNAL, "the PKCS#11 module %s did not initialize: %s", path,
			 ckr_name(rv));
	module = fresh;
	fresh = NULL;
	module->handle = handle;
	module->functions = functions;
	module->next = modules;
	modules = module;
	handle = NULL;
	*out = module;
out:
	if (handle != NULL)
		dlclose(handle);
	if (fresh != NULL)
		free(fresh->path);
	free(fresh);
	pthread_mutex_unlock(&modules_lock);
	return status;
}

/* ---- Tokens: slot, PIN, login -------------------------------------------- */

static lic_status slot_find(CK_FUNCTION_LIST_PTR functions, P11KitUri *parsed, CK_SLOT_ID *out,
			    CK_TOKEN_INFO *token_out, lic_error *error)
{
	lic_status status = LIC_OK;
	CK_SLOT_ID *slots = NULL;
	CK_ULONG count = 0;
	CK_RV rv = functions->C_GetSlotList(CK_TRUE, NULL, &count);
	if (rv != CKR_OK)
		LIC_FAIL(error, LIC_INTERNAL, "the PKCS#11 module cannot list its slots: %s", ckr_name(rv));
	if (count > 0) {
		slots = calloc(count, sizeof *slots);
		if (slots == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
		rv = functions->C_GetSlotList(CK_TRUE, slots, &count);
		if (rv != CKR_OK)
			LIC_FAIL(error, LIC_INTERNAL, "the PKCS#11 module cannot list its slots: %s",
				 ckr_name(rv));
	}
	for (CK_ULONG i = 0; i < count; i++) {
		CK_TOKEN_INFO info;
		if (functions->C_GetTokenInfo(slots[i], &info) != CKR_OK)
			continue;
		if (p11_kit_uri_match_token_info(parsed, &info)) {
			*out = slots[i];
			if (token_out != NULL)
				*token_out = info;
			goto out;
		}
	}
	LIC_FAIL(error, LIC_UNKNOWN_KEY, "no token matches the URI (%lu tokens present)",
		 (unsigned long)count);
out:
	free(slots);
	return status;
}

/* The PIN of the URI into pin[PIN_MAX] (NUL-terminated); *have = false when
 * the URI gives none. A pin-source file is read with read(2) straight into
 * pin (no stdio buffer keeps a copy); it must be a regular file that neither
 * group nor others can read, and its first line must fit. */
static lic_status pin_read(P11KitUri *parsed, char *pin, bool *have, lic_error *error)
{
	lic_status status = LIC_OK;
	int fd = -1;
	*have = false;
	pin[0] = '\0';
	const char *value = p11_kit_uri_get_pin_value(parsed);
	if (value != NULL) {
		size_t length = strlen(value);
		if (length >= PIN_MAX)
			LIC_FAIL(error, LIC_USAGE, "the URI's pin-value is longer than %d bytes",
				 PIN_MAX - 1);
		memcpy(pin, value, length + 1);
		*have = true;
		goto out;
	}
	const char *source = p11_kit_uri_get_pin_source(parsed);
	if (source == NULL)
		goto out;
	if (strncmp(source, "file:", 5) == 0) {
		source += 5;
		if (strncmp(source, "//", 2) == 0)
			source += 2;
	}
	fd = open(source, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		LIC_FAIL(error, LIC_IO, "cannot read the PIN file %s: %s", source, strerror(errno));
	struct stat info;
	if (fstat(fd, &info) != 0)
		LIC_FAIL(error, LIC_IO, "cannot read the PIN file %s: %s", source, strerror(errno));
	if (!S_ISREG(info.st_mode))
		LIC_FAIL(error, LIC_IO, "the PIN file %s is not a regular file", source);
	if ((info.st_mode & 077) != 0)
		LIC_FAIL(error, LIC_IO,
			 "the PIN file %s can be read by others (mode %04o): chmod 600 it first", source,
			 (unsigned)(info.st_mode & 07777));
	/* up to PIN_MAX bytes: a first line of PIN_MAX − 1 bytes and its end */
	size_t used = 0;
	while (used < PIN_MAX) {
		ssize_t got = read(fd, pin + used, PIN_MAX - used);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			LIC_FAIL(error, LIC_IO, "cannot read the PIN file %s: %s", source, strerror(errno));
		if (got == 0)
			break;
		used += (size_t)got;
	}
	size_t length = 0;
	while (length < used && pin[length] != '\n' && pin[length] != '\r' && pin[length] != '\0')
		length++;
	if (length >= PIN_MAX)
		LIC_FAIL(error, LIC_IO, "the PIN in %s is longer than %d bytes", source, PIN_MAX - 1);
	if (length == 0)
		LIC_FAIL(error, LIC_IO, "the PIN file %s is empty", source);
	OPENSSL_cleanse(pin + length, PIN_MAX - length);
	*have = true;
out:
	if (fd >= 0)
		close(fd);
	if (status != LIC_OK)
		OPENSSL_cleanse(pin, PIN_MAX);
	return status;
}

/* The sentence of a login the PIN itself failed (pkcs11_error_is_pin). */
static const char pin_refused[] = "the token refused the PIN: ";

bool pkcs11_error_is_pin(const lic_error *error)
{
	return error != NULL && error->status == LIC_INTERNAL &&
	       strncmp(error->message, pin_refused, sizeof pin_refused - 1) == 0;
}

struct token_session {
	struct pkcs11_module *module;
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE session;
	bool open;
};

static void token_session_close(struct token_session *token)
{
	if (token->open)
		token->module->functions->C_CloseSession(token->session);
	token->open = false;
}

/* Module, slot, a session (read-write when `write`), logged in as the user
 * when the token asks for it. */
static lic_status token_open(P11KitUri *parsed, const char *module_path, bool write,
			     struct token_session *out, lic_error *error)
{
	lic_status status = LIC_OK;
	char pin[PIN_MAX];
	bool have_pin = false;
	const char *path = NULL;
	memset(out, 0, sizeof *out);
	LIC_TRY(module_choose(module_path, parsed, &path, error));
	LIC_TRY(module_load(path, &out->module, error));
	CK_FUNCTION_LIST_PTR functions = out->module->functions;
	CK_TOKEN_INFO info;
	memset(&info, 0, sizeof info);
	LIC_TRY(slot_find(functions, parsed, &out->slot, &info, error));
	CK_FLAGS flags = CKF_SERIAL_SESSION | (write ? CKF_RW_SESSION : 0);
	CK_RV rv = functions->C_OpenSession(out->slot, flags, NULL, NULL, &out->session);
	if (rv != CKR_OK)
		LIC_FAIL(error, LIC_INTERNAL, "the token refused a session: %s", ckr_name(rv));
	out->open = true;
	if ((info.flags & CKF_LOGIN_REQUIRED) == 0)
		goto out;
	LIC_TRY(pin_read(parsed, pin, &have_pin, error));
	if (!have_pin)
		LIC_FAIL(error, LIC_USAGE,
			 "the token needs a PIN: add pin-value=… or pin-source=FILE to the URI");
	rv = functions->C_Login(out->session, CKU_USER, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)strlen(pin));
	if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED || rv == CKR_PIN_EXPIRED)
		LIC_FAIL(error, LIC_INTERNAL, "%s%s", pin_refused, ckr_name(rv));
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
		LIC_FAIL(error, LIC_INTERNAL, "the token refused the login: %s", ckr_name(rv));
out:
	OPENSSL_cleanse(pin, sizeof pin);
	if (status != LIC_OK)
		token_session_close(out);
	return status;
}

/* Up to FIND_MAX objects matching the template. */
static lic_status objects_find(CK_FUNCTION_LIST_PTR functions, CK_SESSION_HANDLE session,
			       CK_ATTRIBUTE *template, CK_ULONG template_count, CK_OBJECT_HANDLE *found,
			       CK_ULONG *count, lic_error *error)
{
	CK_RV rv = functions->C_FindObjectsInit(session, template, template_count);
	if (rv != CKR_OK)
		return token_failure(error, "an object search", rv);
	rv = functions->C_FindObjects(session, found, FIND_MAX, count);
	CK_RV final_rv = functions->C_FindObjectsFinal(session);
	if (rv != CKR_OK)
		return token_failure(error, "an object search", rv);
	if (final_rv != CKR_OK)
		return token_failure(error, "an object search", final_rv);
	return LIC_OK;
}

/* An attribute's value in a new buffer (free()). */
static lic_status attribute_read(CK_FUNCTION_LIST_PTR functions, CK_SESSION_HANDLE session,
				 CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type, uint8_t **value_out,
				 size_t *length, lic_error *error)
{
	CK_ATTRIBUTE attribute = {type, NULL, 0};
	CK_RV rv = functions->C_GetAttributeValue(session, object, &attribute, 1);
	if (rv != CKR_OK)
		return token_failure(error, "to show an attribute", rv);
	if (attribute.ulValueLen == CK_UNAVAILABLE_INFORMATION || attribute.ulValueLen == 0)
		return lic_error_set(error, LIC_INTERNAL, "the token gave an empty attribute");
	uint8_t *buffer = malloc(attribute.ulValueLen);
	if (buffer == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	attribute.pValue = buffer;
	rv = functions->C_GetAttributeValue(session, object, &attribute, 1);
	if (rv != CKR_OK) {
		free(buffer);
		return token_failure(error, "to show an attribute", rv);
	}
	*value_out = buffer;
	*length = attribute.ulValueLen;
	return LIC_OK;
}

/* ---- Keys ---------------------------------------------------------------- */

struct pkcs11_key {
	enum pkcs11_key_kind kind;
	struct token_session anchor; /* keeps the login; used only while opening */
	CK_FUNCTION_LIST_PTR functions;
	CK_OBJECT_HANDLE object;
	uint8_t *modulus; /* RSA, big-endian */
	size_t modulus_length;
	uint8_t *exponent;
	size_t exponent_length;
	int bits;
	size_t modulus_bytes;
	atomic_bool raw_rsa;
	atomic_bool broken; /* an operation saw the session, login, token or object gone */
	pthread_mutex_t pool_lock;
	CK_SESSION_HANDLE *pool;
	size_t pool_count;
	size_t pool_capacity;
};

/* Whether rv says the key cannot work again as opened: its sessions, its
 * login, the token, the module or the object are gone. */
static bool rv_breaks_key(CK_RV rv)
{
	return rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
	       rv == CKR_DEVICE_ERROR || rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT ||
	       rv == CKR_CRYPTOKI_NOT_INITIALIZED || rv == CKR_OBJECT_HANDLE_INVALID ||
	       rv == CKR_KEY_HANDLE_INVALID;
}

/* Every CK_RV an operation gets back passes here; returns rv. */
static CK_RV key_saw(struct pkcs11_key *key, CK_RV rv)
{
	if (rv_breaks_key(rv))
		atomic_store(&key->broken, true);
	return rv;
}

bool pkcs11_key_broken(const struct pkcs11_key *key)
{
	return atomic_load(&key->broken);
}

static lic_status session_take(struct pkcs11_key *key, CK_SESSION_HANDLE *session, lic_error *error)
{
	pthread_mutex_lock(&key->pool_lock);
	bool taken = key->pool_count > 0;
	if (taken)
		*session = key->pool[--key->pool_count];
	pthread_mutex_unlock(&key->pool_lock);
	if (taken)
		return LIC_OK;
	CK_RV rv = key_saw(
	    key, key->functions->C_OpenSession(key->anchor.slot, CKF_SERIAL_SESSION, NULL, NULL, session));
	if (rv != CKR_OK)
		return lic_error_set(error, LIC_INTERNAL, "the token refused a session: %s", ckr_name(rv));
	return LIC_OK;
}

/* Pushes the session back when `healthy`; closes it otherwise. */
static void session_give_back(struct pkcs11_key *key, CK_SESSION_HANDLE session, bool healthy)
{
	if (healthy && !atomic_load(&key->broken)) {
		pthread_mutex_lock(&key->pool_lock);
		if (key->pool_count == key->pool_capacity) {
			size_t capacity = key->pool_capacity == 0 ? 4 : key->pool_capacity * 2;
			CK_SESSION_HANDLE *grown = realloc(key->pool, capacity * sizeof *grown);
			if (grown != NULL) {
				key->pool = grown;
				key->pool_capacity = capacity;
			}
		}
		bool kept = key->pool_count < key->pool_capacity;
		if (kept)
			key->pool[key->pool_count++] = session;
		pthread_mutex_unlock(&key->pool_lock);
		if (kept)
			return;
	}
	key->functions->C_CloseSession(session);
}

static size_t significant_bits(const uint8_t *number, size_t length)
{
	size_t i = 0;
	while (i < length && number[i] == 0)
		i++;
	if (i == length)
		return 0;
	size_t bits = (length - i - 1) * 8;
	for (uint8_t top = number[i]; top != 0; top >>= 1)
		bits++;
	return bits;
}

/* The public half of an RSA key: from the private object, else from the
 * public object with the same id (or label). */
static lic_status rsa_public_read(struct pkcs11_key *key, P11KitUri *parsed, lic_error *error)
{
	lic_status status = LIC_OK;
	lic_error ignored;
	CK_FUNCTION_LIST_PTR functions = key->functions;
	CK_SESSION_HANDLE session = key->anchor.session;
	if (attribute_read(functions, session, key->object, CKA_MODULUS, &key->modulus, &key->modulus_length,
			   &ignored) == LIC_OK &&
	    attribute_read(functions, session, key->object, CKA_PUBLIC_EXPONENT, &key->exponent,
			   &key->exponent_length, &ignored) == LIC_OK)
		goto measure;
	free(key->modulus);
	key->modulus = NULL;
	CK_OBJECT_CLASS public_class = CKO_PUBLIC_KEY;
	CK_KEY_TYPE rsa = CKK_RSA;
	CK_ATTRIBUTE template[3] = {{CKA_CLASS, &public_class, sizeof public_class},
				    {CKA_KEY_TYPE, &rsa, sizeof rsa}};
	CK_ULONG template_count = 2;
	CK_ATTRIBUTE *named = p11_kit_uri_get_attribute(parsed, CKA_ID);
	if (named == NULL)
		named = p11_kit_uri_get_attribute(parsed, CKA_LABEL);
	if (named != NULL)
		template[template_count++] = *named;
	CK_OBJECT_HANDLE found[FIND_MAX];
	CK_ULONG count = 0;
	LIC_TRY(objects_find(functions, session, template, template_count, found, &count, error));
	if (count != 1)
		LIC_FAIL(
		    error, LIC_UNKNOWN_KEY,
		    "the token shows neither the modulus of the private key nor one public key beside it");
	LIC_TRY(attribute_read(functions, session, found[0], CKA_MODULUS, &key->modulus, &key->modulus_length,
			       error));
	LIC_TRY(attribute_read(functions, session, found[0], CKA_PUBLIC_EXPONENT, &key->exponent,
			       &key->exponent_length, error));
measure:
	key->bits = (int)significant_bits(key->modulus, key->modulus_length);
	key->modulus_bytes = ((size_t)key->bits + 7) / 8;
	if (key->bits < 1024)
		LIC_FAIL(error, LIC_UNSUPPORTED_VERSION, "the token's RSA key has only %d bits", key->bits);
out:
	return status;
}

lic_status pkcs11_key_open(const char *uri, const char *module_path, enum pkcs11_key_kind kind,
			   struct pkcs11_key **out, lic_error *error)
{
	lic_status status = LIC_OK;
	P11KitUri *parsed = NULL;
	struct pkcs11_key *key = NULL;
	*out = NULL;
	LIC_TRY(pkcs11_uri_check(uri, error));
	LIC_TRY(uri_parse(uri, &parsed, error));
	CK_OBJECT_CLASS class = kind == PKCS11_KEY_RSA ? CKO_PRIVATE_KEY : CKO_SECRET_KEY;
	CK_KEY_TYPE type = kind == PKCS11_KEY_RSA ? CKK_RSA : CKK_AES;
	CK_ATTRIBUTE *named_class = p11_kit_uri_get_attribute(parsed, CKA_CLASS);
	if (named_class != NULL && named_class->ulValueLen == sizeof class &&
	    memcmp(named_class->pValue, &class, sizeof class) != 0)
		LIC_FAIL(error, LIC_USAGE, "the URI's type= does not name a %s",
			 kind == PKCS11_KEY_RSA ? "private key" : "secret key");
	key = calloc(1, sizeof *key);
	if (key == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	key->kind = kind;
	pthread_mutex_init(&key->pool_lock, NULL);
	atomic_init(&key->raw_rsa, false);
	atomic_init(&key->broken, false);
	LIC_TRY(token_open(parsed, module_path, false, &key->anchor, error));
	key->functions = key->anchor.module->functions;
	CK_ATTRIBUTE template[4] = {{CKA_CLASS, &class, sizeof class}, {CKA_KEY_TYPE, &type, sizeof type}};
	CK_ULONG template_count = 2;
	CK_ATTRIBUTE *label = p11_kit_uri_get_attribute(parsed, CKA_LABEL);
	CK_ATTRIBUTE *id = p11_kit_uri_get_attribute(parsed, CKA_ID);
	if (label != NULL)
		template[template_count++] = *label;
	if (id != NULL)
		template[template_count++] = *id;
	CK_OBJECT_HANDLE found[FIND_MAX];
	CK_ULONG count = 0;
	LIC_TRY(objects_find(key->functions, key->anchor.session, template, template_count, found, &count,
			     error));
	char shown[PKCS11_URI_MAX];
	if (count == 0) {
		pkcs11_uri_redacted(uri, shown, sizeof shown);
		LIC_FAIL(error, LIC_UNKNOWN_KEY, "the token holds no %s named by %s",
			 kind == PKCS11_KEY_RSA ? "RSA private key" : "AES key", shown);
	}
	if (count > 1) {
		pkcs11_uri_redacted(uri, shown, sizeof shown);
		LIC_FAIL(error, LIC_USAGE, "%s names more than one key: add id= to tell them apart", shown);
	}
	key->object = found[0];
	if (kind == PKCS11_KEY_RSA) {
		LIC_TRY(rsa_public_read(key, parsed, error));
	} else {
		CK_ULONG value_length = 0;
		CK_ATTRIBUTE attribute = {CKA_VALUE_LEN, &value_length, sizeof value_length};
		CK_RV rv =
		    key->functions->C_GetAttributeValue(key->anchor.session, key->object, &attribute, 1);
		key->bits = rv == CKR_OK ? (int)(value_length * 8) : 0;
	}
	*out = key;
	key = NULL;
out:
	pkcs11_key_free(key);
	uri_free(parsed);
	return status;
}

void pkcs11_key_free(struct pkcs11_key *key)
{
	if (key == NULL)
		return;
	for (size_t i = 0; i < key->pool_count; i++)
		key->functions->C_CloseSession(key->pool[i]);
	free(key->pool);
	token_session_close(&key->anchor);
	pthread_mutex_destroy(&key->pool_lock);
	free(key->modulus);
	free(key->exponent);
	free(key);
}

int pkcs11_key_bits(const struct pkcs11_key *key)
{
	return key->bits; /* AES: from CKA_VALUE_LEN, 0 when the token does not say */
}

size_t pkcs11_key_pooled_sessions(struct pkcs11_key *key)
{
	pthread_mutex_lock(&key->pool_lock);
	size_t count = key->pool_count;
	pthread_mutex_unlock(&key->pool_lock);
	return count;
}

bool pkcs11_key_uses_raw_rsa(const struct pkcs11_key *key)
{
	return atomic_load(&key->raw_rsa);
}

lic_status pkcs11_key_public_der(const struct pkcs11_key *key, uint8_t **der, size_t *length,
				 lic_error *error)
{
	lic_status status = LIC_OK;
	BIGNUM *n = NULL;
	BIGNUM *e = NULL;
	OSSL_PARAM_BLD *builder = NULL;
	OSSL_PARAM *parameters = NULL;
	EVP_PKEY_CTX *context = NULL;
	EVP_PKEY *pkey = NULL;
	unsigned char *encoded = NULL;
	*der = NULL;
	*length = 0;
	if (key->kind != PKCS11_KEY_RSA)
		LIC_FAIL(error, LIC_USAGE, "an AES key has no public half");
	n = BN_bin2bn(key->modulus, (int)key->modulus_length, NULL);
	e = BN_bin2bn(key->exponent, (int)key->exponent_length, NULL);
	builder = OSSL_PARAM_BLD_new();
	if (n == NULL || e == NULL || builder == NULL ||
	    !OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_E, e) ||
	    (parameters = OSSL_PARAM_BLD_to_param(builder)) == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "cannot build the RSA public key");
	context = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (context == NULL || EVP_PKEY_fromdata_init(context) <= 0 ||
	    EVP_PKEY_fromdata(context, &pkey, EVP_PKEY_PUBLIC_KEY, parameters) <= 0)
		LIC_FAIL(error, LIC_INTERNAL, "cannot build the RSA public key");
	int encoded_length = i2d_PUBKEY(pkey, &encoded);
	if (encoded_length <= 0)
		LIC_FAIL(error, LIC_INTERNAL, "cannot encode the RSA public key");
	*der = malloc((size_t)encoded_length);
	if (*der == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	memcpy(*der, encoded, (size_t)encoded_length);
	*length = (size_t)encoded_length;
out:
	OPENSSL_free(encoded);
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(context);
	OSSL_PARAM_free(parameters);
	OSSL_PARAM_BLD_free(builder);
	BN_free(n);
	BN_free(e);
	return status;
}

/* ---- RSA-OAEP ------------------------------------------------------------ */

static const char unwrap_failure[] = "the content key could not be unwrapped";

/* MGF1 with SHA-256 (RFC 8017 B.2.1): mask[0..length) ^= MGF1(seed). */
static bool mgf1_sha256_xor(uint8_t *mask_target, size_t length, const uint8_t *seed, size_t seed_length)
{
	bool ok = false;
	EVP_MD_CTX *context = EVP_MD_CTX_new();
	uint8_t block[SHA256_LENGTH];
	if (context == NULL)
		goto out;
	for (uint32_t counter = 0; length > 0; counter++) {
		uint8_t counter_bytes[4] = {(uint8_t)(counter >> 24), (uint8_t)(counter >> 16),
					    (uint8_t)(counter >> 8), (uint8_t)counter};
		if (!EVP_DigestInit_ex(context, EVP_sha256(), NULL) ||
		    !EVP_DigestUpdate(context, seed, seed_length) ||
		    !EVP_DigestUpdate(context, counter_bytes, sizeof counter_bytes) ||
		    !EVP_DigestFinal_ex(context, block, NULL))
			goto out;
		size_t take = length < SHA256_LENGTH ? length : SHA256_LENGTH;
		for (size_t i = 0; i < take; i++)
			mask_target[i] ^= block[i];
		mask_target += take;
		length -= take;
	}
	ok = true;
out:
	OPENSSL_cleanse(block, sizeof block);
	EVP_MD_CTX_free(context);
	return ok;
}

/* All ones when a == b, else zero; no branch. */
static size_t mask_equal(size_t a, size_t b)
{
	size_t difference = a ^ b;
	return (size_t)0 -
	       (size_t)(((difference | ((size_t)0 - difference)) >> (sizeof(size_t) * 8 - 1)) ^ 1);
}

lic_status pkcs11_oaep_sha256_decode(const uint8_t *encoded, size_t encoded_length, const uint8_t *label,
				     size_t label_length, uint8_t *out, size_t capacity, size_t *out_length,
				     lic_error *error)
{
	lic_status status = LIC_OK;
	uint8_t *block = NULL;
	uint8_t label_hash[SHA256_LENGTH];
	*out_length = 0;
	if (encoded_length < 2 * SHA256_LENGTH + 2)
		LIC_FAIL(error, LIC_PL_INTEGRITY, "%s", unwrap_failure);
	block = secure_alloc(encoded_length); /* it will hold the unwrapped key */
	if (block == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of secure memory");
	memcpy(block, encoded, encoded_length);
	uint8_t *seed = block + 1;
	uint8_t *database = block + 1 + SHA256_LENGTH;
	size_t database_length = encoded_length - 1 - SHA256_LENGTH;
	if (!EVP_Digest(label_length > 0 ? label : (const uint8_t *)"", label_length, label_hash, NULL,
			EVP_sha256(), NULL) ||
	    !mgf1_sha256_xor(seed, SHA256_LENGTH, database, database_length) ||
	    !mgf1_sha256_xor(database, database_length, seed, SHA256_LENGTH))
		LIC_FAIL(error, LIC_INTERNAL, "SHA-256 failed");
	/* Every check below runs over the whole block whatever the outcome. */
	size_t good = mask_equal(block[0], 0);
	good &= mask_equal((size_t)CRYPTO_memcmp(database, label_hash, SHA256_LENGTH), 0);
	size_t found = 0;
	size_t separator = 0;
	size_t padding_ok = ~(size_t)0;
	for (size_t i = SHA256_LENGTH; i < database_length; i++) {
		size_t is_one = mask_equal(database[i], 1);
		size_t is_zero = mask_equal(database[i], 0);
		separator |= i & is_one & ~found;
		/* before the separator, only zeros are allowed */
		padding_ok &= found | is_zero | is_one;
		found |= is_one;
	}
	good &= found & padding_ok;
	size_t message_length = database_length - separator - 1;
	good &= ~((size_t)0 - (size_t)(message_length > capacity));
	if (good == 0)
		LIC_FAIL(error, LIC_PL_INTEGRITY, "%s", unwrap_failure);
	memcpy(out, database + separator + 1, message_length);
	*out_length = message_length;
out:
	secure_free(block, encoded_length);
	return status;
}

static bool oaep_refused(CK_RV rv)
{
	return rv == CKR_MECHANISM_PARAM_INVALID || rv == CKR_MECHANISM_INVALID || rv == CKR_ARGUMENTS_BAD;
}

/* After C_DecryptInit succeeded on a ciphertext below the modulus, a
 * C_Decrypt failure is the token's own trouble only for these (nothing about
 * the ciphertext can cause them); every other failure may depend on the
 * padding and is the one unwrap-failure sentence (Manger's attack). */
static bool decrypt_failure_is_token(CK_RV rv)
{
	switch (rv) {
	case CKR_HOST_MEMORY:
	case CKR_DEVICE_ERROR:
	case CKR_DEVICE_MEMORY:
	case CKR_DEVICE_REMOVED:
	case CKR_SESSION_CLOSED:
	case CKR_SESSION_COUNT:
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_PARALLEL_NOT_SUPPORTED:
	case CKR_SESSION_READ_ONLY:
	case CKR_SESSION_EXISTS:
	case CKR_SESSION_READ_ONLY_EXISTS:
	case CKR_SESSION_READ_WRITE_SO_EXISTS:
	case CKR_USER_NOT_LOGGED_IN:
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_TOKEN_NOT_RECOGNIZED:
	case CKR_TOKEN_WRITE_PROTECTED:
	case CKR_CRYPTOKI_NOT_INITIALIZED:
	case CKR_OBJECT_HANDLE_INVALID:
	case CKR_KEY_HANDLE_INVALID:
		return true;
	default:
		return false;
	}
}

/* block[0..length) holds `produced` bytes at its start and zeros after
 * them; moves them to the end (the leading zeros a token may drop put back)
 * in a fixed sequence of reads and writes that does not depend on produced:
 * a barrel shift by length − produced, every stage over the whole block. */
static void right_align(uint8_t *block, size_t length, size_t produced)
{
	size_t shift = length - produced;
	for (unsigned bit = 0; ((size_t)1 << bit) < length; bit++) {
		size_t step = (size_t)1 << bit;
		size_t take = (size_t)0 - ((shift >> bit) & 1);
		for (size_t i = length; i-- > 0;) {
			uint8_t from = i >= step ? block[i - step] : 0;
			block[i] = (uint8_t)((from & take) | (block[i] & ~take));
		}
	}
}

/* Whether the big-endian integer c is below n (same length): a ciphertext
 * that is not is refused before the token sees it (SoftHSM2 answers
 * CKR_GENERAL_ERROR). Both are public, so this need not be constant time. */
static bool below_modulus(const uint8_t *c, const uint8_t *n, size_t length)
{
	for (size_t i = 0; i < length; i++)
		if (c[i] != n[i])
			return c[i] < n[i];
	return false;
}

lic_status pkcs11_rsa_oaep_decrypt(struct pkcs11_key *key, const uint8_t *label, size_t label_length,
				   const uint8_t *ciphertext, size_t ciphertext_length, uint8_t *out,
				   size_t capacity, size_t *out_length, lic_error *error)
{
	lic_status status = LIC_OK;
	CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
	bool have_session = false;
	bool healthy = true;
	uint8_t *raw = NULL;
	size_t raw_capacity = 0;
	*out_length = 0;
	if (key->kind != PKCS11_KEY_RSA)
		LIC_FAIL(error, LIC_USAGE, "an AES key cannot unwrap with RSA-OAEP");
	if (ciphertext_length != key->modulus_bytes ||
	    !below_modulus(ciphertext, key->modulus + (key->modulus_length - key->modulus_bytes),
			   ciphertext_length))
		LIC_FAIL(error, LIC_PL_INTEGRITY, "%s", unwrap_failure);
	LIC_TRY(session_take(key, &session, error));
	have_session = true;
	CK_FUNCTION_LIST_PTR functions = key->functions;
	CK_RV rv;
	if (!atomic_load(&key->raw_rsa)) {
		CK_RSA_PKCS_OAEP_PARAMS oaep = {CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED,
						(void *)label, (CK_ULONG)label_length};
		if (label_length == 0)
			oaep.pSourceData = NULL;
		CK_MECHANISM mechanism = {CKM_RSA_PKCS_OAEP, &oaep, sizeof oaep};
		rv = key_saw(key, functions->C_DecryptInit(session, &mechanism, key->object));
		if (rv == CKR_OK) {
			CK_ULONG produced = (CK_ULONG)capacity;
			rv = key_saw(key, functions->C_Decrypt(session, (CK_BYTE_PTR)ciphertext,
							       (CK_ULONG)ciphertext_length, out, &produced));
			if (rv == CKR_OK) {
				*out_length = produced;
				goto out;
			}
			healthy = false;
			if (!decrypt_failure_is_token(rv))
				LIC_FAIL(error, LIC_PL_INTEGRITY, "%s", unwrap_failure);
			LIC_FAIL(error, LIC_INTERNAL, "the token refused to decrypt: %s", ckr_name(rv));
		}
		if (!oaep_refused(rv))
			LIC_FAIL(error, LIC_INTERNAL, "the token refused to decrypt: %s", ckr_name(rv));
		atomic_store(&key->raw_rsa, true);
	}
	CK_MECHANISM raw_mechanism = {CKM_RSA_X_509, NULL, 0};
	rv = key_saw(key, functions->C_DecryptInit(session, &raw_mechanism, key->object));
	if (rv != CKR_OK)
		LIC_FAIL(error, LIC_INTERNAL, "the token refused raw RSA: %s", ckr_name(rv));
	raw_capacity = key->modulus_bytes;
	raw = secure_alloc(raw_capacity);
	if (raw == NULL) {
		healthy = false;
		LIC_FAIL(error, LIC_INTERNAL, "out of secure memory");
	}
	memset(raw, 0, raw_capacity);
	CK_ULONG produced = (CK_ULONG)raw_capacity;
	rv = key_saw(key, functions->C_Decrypt(session, (CK_BYTE_PTR)ciphertext, (CK_ULONG)ciphertext_length,
					       raw, &produced));
	if (rv != CKR_OK) {
		healthy = false;
		if (!decrypt_failure_is_token(rv))
			LIC_FAIL(error, LIC_PL_INTEGRITY, "%s", unwrap_failure);
		LIC_FAIL(error, LIC_INTERNAL, "the token refused raw RSA: %s", ckr_name(rv));
	}
	if (produced > raw_capacity)
		LIC_FAIL(error, LIC_INTERNAL, "the token returned more than the modulus");
	/* A token may drop the leading zero bytes of the integer; whether it did
	 * tells whether the top byte is zero, which must not be observable: no
	 * branch on produced, one fixed pass over the block. */
	right_align(raw, raw_capacity, (size_t)produced);
	LIC_TRY(pkcs11_oaep_sha256_decode(raw, raw_capacity, label, label_length, out, capacity, out_length,
					  error));
out:
	secure_free(raw, raw_capacity);
	if (have_session)
		session_give_back(key, session, healthy);
	return status;
}

/* ---- RSA signatures ------------------------------------------------------ */

lic_status pkcs11_rsa_sign_sha256(struct pkcs11_key *key, const uint8_t *data, size_t length,
				  uint8_t *signature, size_t capacity, size_t *signature_length,
				  lic_error *error)
{
	lic_status status = LIC_OK;
	CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
	bool have_session = false;
	bool healthy = true;
	*signature_length = 0;
	if (key->kind != PKCS11_KEY_RSA)
		LIC_FAIL(error, LIC_USAGE, "an AES key cannot sign");
	if (capacity < key->modulus_bytes)
		LIC_FAIL(error, LIC_INTERNAL, "the signature buffer holds %zu bytes, the key needs %zu",
			 capacity, key->modulus_bytes);
	LIC_TRY(session_take(key, &session, error));
	have_session = true;
	CK_MECHANISM mechanism = {CKM_SHA256_RSA_PKCS, NULL, 0};
	CK_RV rv = key_saw(key, key->functions->C_SignInit(session, &mechanism, key->object));
	if (rv != CKR_OK)
		LIC_FAIL(error, LIC_INTERNAL, "the token refused to sign: %s", ckr_name(rv));
	CK_ULONG produced = (CK_ULONG)capacity;
	rv = key_saw(
	    key, key->functions->C_Sign(session, (CK_BYTE_PTR)data, (CK_ULONG)length, signature, &produced));
	if (rv != CKR_OK) {
		healthy = false;
		LIC_FAIL(error, LIC_INTERNAL, "the token refused to sign: %s", ckr_name(rv));
	}
	*signature_length = produced;
out:
	if (have_session)
		session_give_back(key, session, healthy);
	return status;
}

/* ---- AES ----------------------------------------------------------------- */

/* Sealed: tag (1 byte, SEALED_TAG_GCM) ‖ 12-byte IV ‖ ciphertext ‖ 16-byte
 * GCM tag (which the token appends). GCM authenticates the tag byte as its
 * AAD. There is no unauthenticated fallback: a token without CKM_AES_GCM
 * cannot seal (SoftHSM2 2.6 has no CKM_AES_KEY_WRAP_PAD for C_Encrypt, the
 * one authenticated alternative), and tag 2 (the AES-CBC-PAD of earlier
 * builds) is refused. */

lic_status pkcs11_aes_encrypt(struct pkcs11_key *key, const uint8_t *plaintext, size_t length,
			      uint8_t **sealed, size_t *sealed_length, lic_error *error)
{
	lic_status status = LIC_OK;
	CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
	bool have_session = false;
	bool healthy = true;
	uint8_t *buffer = NULL;
	size_t buffer_length = 0;
	/* at function scope: the token may read them until C_Encrypt returns */
	CK_GCM_PARAMS gcm;
	CK_MECHANISM mechanism;
	*sealed = NULL;
	*sealed_length = 0;
	if (key->kind != PKCS11_KEY_AES)
		LIC_FAIL(error, LIC_USAGE, "an RSA key cannot seal with AES");
	LIC_TRY(session_take(key, &session, error));
	have_session = true;
	CK_FUNCTION_LIST_PTR functions = key->functions;
	buffer_length = 1 + AES_GCM_IV_LENGTH + length + AES_GCM_TAG_LENGTH;
	buffer = malloc(buffer_length);
	if (buffer == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	buffer[0] = SEALED_TAG_GCM;
	if (RAND_bytes(buffer + 1, AES_GCM_IV_LENGTH) != 1)
		LIC_FAIL(error, LIC_INTERNAL, "no random bytes for the IV");
	gcm = (CK_GCM_PARAMS){buffer + 1, AES_GCM_IV_LENGTH,     AES_GCM_IV_LENGTH * 8, buffer,
			      1,          AES_GCM_TAG_LENGTH * 8};
	mechanism = (CK_MECHANISM){CKM_AES_GCM, &gcm, sizeof gcm};
	CK_RV rv = key_saw(key, functions->C_EncryptInit(session, &mechanism, key->object));
	if (rv == CKR_MECHANISM_INVALID)
		LIC_FAIL(error, LIC_INTERNAL,
			 "the token has no AES-GCM (CKM_AES_GCM: CKR_MECHANISM_INVALID), and this program "
			 "seals only with an authenticated mode");
	if (rv != CKR_OK)
		LIC_FAIL(error, LIC_INTERNAL, "the token refused to encrypt: %s", ckr_name(rv));
	CK_ULONG produced = (CK_ULONG)(buffer_length - 1 - AES_GCM_IV_LENGTH);
	rv = key_saw(key, functions->C_Encrypt(session, (CK_BYTE_PTR)plaintext, (CK_ULONG)length,
					       buffer + 1 + AES_GCM_IV_LENGTH, &produced));
	if (rv != CKR_OK) {
		healthy = false;
		LIC_FAIL(error, LIC_INTERNAL, "the token refused to encrypt: %s", ckr_name(rv));
	}
	if (produced != length + AES_GCM_TAG_LENGTH) {
		healthy = false;
		LIC_FAIL(error, LIC_INTERNAL, "the token's AES-GCM returned %lu bytes for %zu",
			 (unsigned long)produced, length);
	}
	*sealed = buffer;
	*sealed_length = 1 + AES_GCM_IV_LENGTH + produced;
	buffer = NULL;
out:
	free(buffer);
	if (have_session)
		session_give_back(key, session, healthy);
	return status;
}

lic_status pkcs11_aes_decrypt(struct pkcs11_key *key, const uint8_t *sealed, size_t sealed_length,
			      uint8_t **plaintext, size_t *length, lic_error *error)
{
	lic_status status = LIC_OK;
	CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
	bool have_session = false;
	bool healthy = true;
	uint8_t *work = NULL;
	size_t work_length = 0;
	*plaintext = NULL;
	*length = 0;
	if (key->kind != PKCS11_KEY_AES)
		LIC_FAIL(error, LIC_USAGE, "an RSA key cannot open an AES-sealed buffer");
	if (sealed_length >= 1 && sealed[0] != SEALED_TAG_GCM)
		LIC_FAIL(error, LIC_INTERNAL,
			 "the token-sealed buffer names mode %u, and this key seals with AES-GCM (mode %u) "
			 "only",
			 (unsigned)sealed[0], (unsigned)SEALED_TAG_GCM);
	if (sealed_length < 1 + AES_GCM_IV_LENGTH + AES_GCM_TAG_LENGTH)
		LIC_FAIL(error, LIC_INTERNAL, "the token-sealed buffer is damaged");
	CK_GCM_PARAMS gcm = {
	    (CK_BYTE_PTR)sealed + 1, AES_GCM_IV_LENGTH, AES_GCM_IV_LENGTH * 8, (CK_BYTE_PTR)sealed, 1,
	    AES_GCM_TAG_LENGTH * 8};
	CK_MECHANISM mechanism = {CKM_AES_GCM, &gcm, sizeof gcm};
	const uint8_t *ciphertext = sealed + 1 + AES_GCM_IV_LENGTH;
	size_t ciphertext_length = sealed_length - 1 - AES_GCM_IV_LENGTH;
	LIC_TRY(session_take(key, &session, error));
	have_session = true;
	CK_RV rv = key_saw(key, key->functions->C_DecryptInit(session, &mechanism, key->object));
	if (rv != CKR_OK)
		LIC_FAIL(error, LIC_INTERNAL, "the token refused to decrypt: %s", ckr_name(rv));
	work_length = ciphertext_length;
	work = secure_alloc(work_length);
	if (work == NULL) {
		healthy = false;
		LIC_FAIL(error, LIC_INTERNAL, "out of secure memory");
	}
	CK_ULONG produced = (CK_ULONG)work_length;
	rv = key_saw(key, key->functions->C_Decrypt(session, (CK_BYTE_PTR)ciphertext,
						    (CK_ULONG)ciphertext_length, work, &produced));
	if (rv != CKR_OK) {
		healthy = false;
		if (!decrypt_failure_is_token(rv))
			LIC_FAIL(error, LIC_INTERNAL, "the token-sealed buffer is damaged (%s)",
				 ckr_name(rv));
		LIC_FAIL(error, LIC_INTERNAL, "the token refused to decrypt: %s", ckr_name(rv));
	}
	if (produced > work_length)
		LIC_FAIL(error, LIC_INTERNAL, "the token returned more than it was given");
	uint8_t *exact = secure_alloc(produced > 0 ? produced : 1);
	if (exact == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of secure memory");
	memcpy(exact, work, produced);
	*plaintext = exact;
	*length = produced;
out:
	secure_free(work, work_length);
	if (have_session)
		session_give_back(key, session, healthy);
	return status;
}

/* ---- Key generation ------------------------------------------------------ */

static lic_status generate_prepare(const char *uri, const char *module_path, P11KitUri **parsed,
				   struct token_session *token, CK_ATTRIBUTE **label, CK_ATTRIBUTE **id,
				   lic_error *error)
{
	lic_status status = LIC_OK;
	LIC_TRY(uri_parse(uri, parsed, error));
	*label = p11_kit_uri_get_attribute(*parsed, CKA_LABEL);
	*id = p11_kit_uri_get_attribute(*parsed, CKA_ID);
	char shown[PKCS11_URI_MAX];
	if (*label == NULL) {
		pkcs11_uri_redacted(uri, shown, sizeof shown);
		LIC_FAIL(error, LIC_USAGE, "%s has no object=LABEL for the new key", shown);
	}
	LIC_TRY(token_open(*parsed, module_path, true, token, error));
	CK_OBJECT_HANDLE found[FIND_MAX];
	CK_ULONG count = 0;
	LIC_TRY(objects_find(token->module->functions, token->session, *label, 1, found, &count, error));
	if (count > 0) {
		pkcs11_uri_redacted(uri, shown, sizeof shown);
		LIC_FAIL(error, LIC_STATE, "the token already holds an object labelled as %s names", shown);
	}
out:
	return status;
}

lic_status pkcs11_generate_rsa(const char *uri, const char *module_path, int bits, lic_error *error)
{
	lic_status status = LIC_OK;
	P11KitUri *parsed = NULL;
	struct token_session token = {0};
	CK_ATTRIBUTE *label = NULL;
	CK_ATTRIBUTE *id = NULL;
	if (bits != 2048 && bits != 3072 && bits != 4096)
		LIC_FAIL(error, LIC_USAGE, "RSA keys are 2048, 3072 or 4096 bits, not %d", bits);
	LIC_TRY(generate_prepare(uri, module_path, &parsed, &token, &label, &id, error));
	CK_BBOOL yes = CK_TRUE;
	CK_BBOOL no = CK_FALSE;
	CK_ULONG modulus_bits = (CK_ULONG)bits;
	CK_BYTE exponent[] = {0x01, 0x00, 0x01};
	CK_ATTRIBUTE public_template[8] = {
	    {CKA_TOKEN, &yes, sizeof yes},
	    {CKA_ENCRYPT, &yes, sizeof yes},
	    {CKA_VERIFY, &yes, sizeof yes},
	    {CKA_MODULUS_BITS, &modulus_bits, sizeof modulus_bits},
	    {CKA_PUBLIC_EXPONENT, exponent, sizeof exponent},
	    *label,
	};
	CK_ULONG public_count = 6;
	CK_ATTRIBUTE private_template[8] = {
	    {CKA_TOKEN, &yes, sizeof yes},
	    {CKA_PRIVATE, &yes, sizeof yes},
	    {CKA_SENSITIVE, &yes, sizeof yes},
	    {CKA_EXTRACTABLE, &no, sizeof no},
	    {CKA_DECRYPT, &yes, sizeof yes},
	    {CKA_SIGN, &yes, sizeof yes},
	    *label,
	};
	CK_ULONG private_count = 7;
	if (id != NULL) {
		public_template[public_count++] = *id;
		private_template[private_count++] = *id;
	}
	CK_MECHANISM mechanism = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
	CK_OBJECT_HANDLE public_key, private_key;
	CK_RV rv = token.module->functions->C_GenerateKeyPair(token.session, &mechanism, public_template,
							      public_count, private_template, private_count,
							      &public_key, &private_key);
	if (rv != CKR_OK)
		LIC_FAIL(error, LIC_INTERNAL, "the token refused to generate an RSA key pair: %s",
			 ckr_name(rv));
out:
	token_session_close(&token);
	uri_free(parsed);
	return status;
}

lic_status pkcs11_generate_aes(const char *uri, const char *module_path, lic_error *error)
{
	lic_status status = LIC_OK;
	P11KitUri *parsed = NULL;
	struct token_session token = {0};
	CK_ATTRIBUTE *label = NULL;
	CK_ATTRIBUTE *id = NULL;
	LIC_TRY(generate_prepare(uri, module_path, &parsed, &token, &label, &id, error));
	CK_BBOOL yes = CK_TRUE;
	CK_BBOOL no = CK_FALSE;
	CK_ULONG value_length = 32;
	CK_OBJECT_CLASS class = CKO_SECRET_KEY;
	CK_KEY_TYPE type = CKK_AES;
	CK_ATTRIBUTE template[11] = {
	    {CKA_CLASS, &class, sizeof class},
	    {CKA_KEY_TYPE, &type, sizeof type},
	    {CKA_TOKEN, &yes, sizeof yes},
	    {CKA_PRIVATE, &yes, sizeof yes},
	    {CKA_SENSITIVE, &yes, sizeof yes},
	    {CKA_EXTRACTABLE, &no, sizeof no},
	    {CKA_ENCRYPT, &yes, sizeof yes},
	    {CKA_DECRYPT, &yes, sizeof yes},
	    {CKA_VALUE_LEN, &value_length, sizeof value_length},
	    *label,
	};
	CK_ULONG count = 10;
	if (id != NULL)
		template[count++] = *id;
	CK_MECHANISM mechanism = {CKM_AES_KEY_GEN, NULL, 0};
	CK_OBJECT_HANDLE secret;
	CK_RV rv =
	    token.module->functions->C_GenerateKey(token.session, &mechanism, template, count, &secret);
	if (rv != CKR_OK)
		LIC_FAIL(error, LIC_INTERNAL, "the token refused to generate an AES key: %s", ckr_name(rv));
out:
	token_session_close(&token);
	uri_free(parsed);
	return status;
}
