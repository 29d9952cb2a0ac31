/*
 * policy.c: the rights a publishing license's policy gives a principal
 * (DESIGN.md §2, policy.h).
 *
 * What it promises:
 *   - One checker for every e-mail address licensor compares (grant
 *     principals, PL Owners, RAC principals, super-users): exactly one '@', a
 *     non-empty local part and domain, at most POLICY_PRINCIPAL_MAX bytes,
 *     well-formed UTF-8 (Unicode table 3-7: no overlong forms, surrogates or
 *     code points past U+10FFFF), no whitespace, control or invisible bidi
 *     characters (ASCII or not), a domain of non-empty dot-separated labels,
 *     and no '*' except as the whole local part of a `*@domain` grant: a
 *     pattern that would silently match nothing is refused, not stored.
 *   - Case folding is ASCII only: A-Z become a-z, every other byte is kept
 *     and compared as it is (no Unicode case folding or normalization, so two
 *     spellings of one non-ASCII name are two principals). Matching folds
 *     both sides again, so an owner or super-user list that skipped
 *     principal_normalize still compares correctly.
 *   - `*@domain` matches exactly that domain, never a subdomain; ANYONE
 *     matches every principal; the Owner and the super-users get OWNER; a
 *     principal's rights are the union of every grant that matches it.
 *   - Rights sets leave rights_parse and rights_merge canonical: custom names
 *     sorted (strcmp) and distinct. A refused call leaves its output empty
 *     (rights_parse, policy_evaluate, the principal parsers) or untouched
 *     (rights_merge), never half-written.
 *   - Nothing here allocates; refusal messages never echo bytes that are not
 *     printable ASCII.
 */
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "keyring/error.h"

#define RIGHTS_STANDARD_ALL                                                                                  \
	(RIGHT_VIEW | RIGHT_EDIT | RIGHT_PRINT | RIGHT_EXPORT | RIGHT_FORWARD | RIGHT_REPLY |                \
	 RIGHT_EXTRACT | RIGHT_VIEWRIGHTSDATA | RIGHT_OWNER)

/* In the order of enum policy_right, which is the order rights_format writes. */
static const struct {
	const char *name;
	uint32_t bit;
} standard_rights[] = {
    {"VIEW", RIGHT_VIEW},       {"EDIT", RIGHT_EDIT},
    {"PRINT", RIGHT_PRINT},     {"EXPORT", RIGHT_EXPORT},
    {"FORWARD", RIGHT_FORWARD}, {"REPLY", RIGHT_REPLY},
    {"EXTRACT", RIGHT_EXTRACT}, {"VIEWRIGHTSDATA", RIGHT_VIEWRIGHTSDATA},
    {"OWNER", RIGHT_OWNER},
};
#define STANDARD_RIGHT_COUNT (sizeof standard_rights / sizeof standard_rights[0])

/* Longest piece of untrusted text a refusal message quotes. */
#define QUOTE_MAX 40

static bool printable_ascii(const char *text, size_t length)
{
	for (size_t i = 0; i < length; i++)
		if ((unsigned char)text[i] < 0x20 || (unsigned char)text[i] > 0x7e)
			return false;
	return true;
}

/* ---- Rights ------------------------------------------------------------ */

/* The bit of a standard right name, or 0. Case-sensitive. */
static uint32_t standard_right_of(const char *name, size_t length)
{
	for (size_t i = 0; i < STANDARD_RIGHT_COUNT; i++)
		if (strlen(standard_rights[i].name) == length &&
		    memcmp(standard_rights[i].name, name, length) == 0)
			return standard_rights[i].bit;
	return 0;
}

/* [A-Z][A-Z0-9_]{0,31}, and not the name of a standard right. */
static bool custom_name_valid(const char *name, size_t length)
{
	if (length == 0 || length > POLICY_RIGHT_NAME_MAX)
		return false;
	if (name[0] < 'A' || name[0] > 'Z')
		return false;
	for (size_t i = 1; i < length; i++) {
		char c = name[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return standard_right_of(name, length) == 0;
}

/* The length of a stored custom name, or POLICY_RIGHT_NAME_MAX + 1 when it
 * lacks its NUL (a set filled by hand). */
static size_t custom_name_length(const char name[POLICY_RIGHT_NAME_MAX + 1])
{
	return strnlen(name, POLICY_RIGHT_NAME_MAX + 1);
}

/* Adds name[0..length) to a sorted, distinct custom list, keeping it so. */
static lic_status custom_insert(struct rights *rights, const char *name, size_t length, lic_error *error)
{
	char key[POLICY_RIGHT_NAME_MAX + 1];
	size_t position = 0;

	memcpy(key, name, length);
	key[length] = '\0';
	for (; position < rights->custom_count; position++) {
		int order = strcmp(rights->custom[position], key);
		if (order == 0)
			return LIC_OK;
		if (order > 0)
			break;
	}
	if (rights->custom_count >= POLICY_MAX_CUSTOM_RIGHTS)
		return lic_error_set(error, LIC_MALFORMED, "more than %d distinct custom rights",
				     POLICY_MAX_CUSTOM_RIGHTS);
	memmove(rights->custom[position + 1], rights->custom[position],
		(rights->custom_count - position) * sizeof rights->custom[0]);
	memcpy(rights->custom[position], key, length + 1);
	rights->custom_count++;
	return LIC_OK;
}

/* Adds every custom right of `from` (checked: it may have been filled by hand). */
static lic_status custom_insert_all(struct rights *into, const struct rights *from, lic_error *error)
{
	if (from->custom_count > POLICY_MAX_CUSTOM_RIGHTS)
		return lic_error_set(error, LIC_INTERNAL, "a rights set claims %zu custom rights",
				     from->custom_count);
	for (size_t i = 0; i < from->custom_count; i++) {
		size_t length = custom_name_length(from->custom[i]);
		if (!custom_name_valid(from->custom[i], length))
			return lic_error_set(error, LIC_MALFORMED,
					     "a rights set holds an invalid custom right");
		lic_status status = custom_insert(into, from->custom[i], length, error);
		if (status != LIC_OK)
			return status;
	}
	return LIC_OK;
}

lic_status rights_parse(const char *text, struct rights *out, lic_error *error)
{
	lic_status status = LIC_OK;
	struct rights parsed;
	const char *cursor = text;
	size_t names = 0;

	memset(&parsed, 0, sizeof parsed);
	if (text == NULL)
		LIC_FAIL(error, LIC_MALFORMED, "the list of rights is missing");
	for (;;) {
		while (*cursor == ' ')
			cursor++;
		if (*cursor == '\0')
			break;
		const char *name = cursor;
		while (*cursor != ' ' && *cursor != '\0')
			cursor++;
		size_t length = (size_t)(cursor - name);
		uint32_t bit = standard_right_of(name, length);
		if (bit != 0)
			parsed.standard |= bit;
		else if (custom_name_valid(name, length))
			LIC_TRY(custom_insert(&parsed, name, length, error));
		else if (length <= QUOTE_MAX && printable_ascii(name, length))
			LIC_FAIL(error, LIC_MALFORMED,
				 "'%.*s' is neither a standard right nor a custom right [A-Z][A-Z0-9_]{0,31}",
				 (int)length, name);
		else
			LIC_FAIL(
			    error, LIC_MALFORMED,
			    "a right is neither a standard right nor a custom right [A-Z][A-Z0-9_]{0,31}");
		names++;
	}
	if (names == 0)
		LIC_FAIL(error, LIC_MALFORMED, "the list of rights is empty");
out:
	if (status != LIC_OK)
		memset(&parsed, 0, sizeof parsed);
	*out = parsed;
	return status;
}

lic_status rights_merge(struct rights *into, const struct rights *from, lic_error *error)
{
	lic_status status = LIC_OK;
	struct rights merged;

	/* Rebuilt from scratch, so that `into` is untouched on refusal and a
	 * hand-filled `into` comes out sorted and distinct too. */
	memset(&merged, 0, sizeof merged);
	merged.standard = (into->standard | from->standard) & RIGHTS_STANDARD_ALL;
	LIC_TRY(custom_insert_all(&merged, into, error));
	LIC_TRY(custom_insert_all(&merged, from, error));
	*into = merged;
out:
	return status;
}

/* Appends " name" (no space first) to out[0..*length), keeping the NUL. */
static lic_status append_name(char *out, size_t size, size_t *length, const char *name, lic_error *error)
{
	size_t name_length = strlen(name);
	size_t separator = *length > 0 ? 1 : 0;
	if (size == 0 || size - 1 - *length < separator + name_length)
		return lic_error_set(error, LIC_TOO_LARGE, "the rights do not fit in %zu bytes", size);
	if (separator)
		out[(*length)++] = ' ';
	memcpy(out + *length, name, name_length + 1);
	*length += name_length;
	return LIC_OK;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

lic_status rights_format(const struct rights *rights, char *out, size_t size, lic_error *error)
{
	lic_status status = LIC_OK;
	const char *sorted[POLICY_MAX_CUSTOM_RIGHTS];
	size_t length = 0;
	uint32_t standard = rights->standard & RIGHTS_STANDARD_ALL;

	if (size > 0)
		out[0] = '\0';
	if (rights->custom_count > POLICY_MAX_CUSTOM_RIGHTS)
		LIC_FAIL(error, LIC_INTERNAL, "a rights set claims %zu custom rights", rights->custom_count);
	for (size_t i = 0; i < rights->custom_count; i++) {
		if (!custom_name_valid(rights->custom[i], custom_name_length(rights->custom[i])))
			LIC_FAIL(error, LIC_MALFORMED, "a rights set holds an invalid custom right");
		sorted[i] = rights->custom[i];
	}
	if (size == 0)
		LIC_FAIL(error, LIC_TOO_LARGE, "no room for the rights");
	if (standard & RIGHT_OWNER)
		standard = RIGHTS_STANDARD_ALL;
	for (size_t i = 0; i < STANDARD_RIGHT_COUNT; i++)
		if (standard & standard_rights[i].bit)
			LIC_TRY(append_name(out, size, &length, standard_rights[i].name, error));
	qsort(sorted, rights->custom_count, sizeof sorted[0], compare_names);
	for (size_t i = 0; i < rights->custom_count; i++)
		if (i == 0 || strcmp(sorted[i], sorted[i - 1]) != 0)
			LIC_TRY(append_name(out, size, &length, sorted[i], error));
out:
	if (status != LIC_OK && size > 0)
		out[0] = '\0';
	return status;
}

bool rights_empty(const struct rights *rights)
{
	return (rights->standard & RIGHTS_STANDARD_ALL) == 0 && rights->custom_count == 0;
}

bool rights_has_standard(const struct rights *rights, uint32_t right)
{
	if (right == 0 || (right & ~(uint32_t)RIGHTS_STANDARD_ALL) != 0)
		return false;
	if (rights->standard & RIGHT_OWNER)
		return true;
	return (rights->standard & right) == right;
}

/* ---- Principals -------------------------------------------------------- */

/* Decodes the well-formed UTF-8 sequence (Unicode table 3-7) that starts at
 * bytes[0] of a NUL-terminated string; returns its length, or 0 when it is
 * ill-formed or cut short (the NUL is never a continuation byte). */
static size_t utf8_decode(const unsigned char *bytes, uint32_t *code_point)
{
	unsigned char lead = bytes[0];
	size_t length;
	unsigned char low = 0x80, high = 0xbf; /* range of the second byte */

	if (lead < 0x80) {
		*code_point = lead;
		return 1;
	}
	if (lead >= 0xc2 && lead <= 0xdf) {
		length = 2;
		*code_point = lead & 0x1f;
	} else if (lead >= 0xe0 && lead <= 0xef) {
		length = 3;
		*code_point = lead & 0x0f;
		if (lead == 0xe0)
			low = 0xa0; /* overlong */
		else if (lead == 0xed)
			high = 0x9f; /* surrogates */
	} else if (lead >= 0xf0 && lead <= 0xf4) {
		length = 4;
		*code_point = lead & 0x07;
		if (lead == 0xf0)
			low = 0x90; /* overlong */
		else if (lead == 0xf4)
			high = 0x8f; /* past U+10FFFF */
	} else {
		return 0; /* continuation byte, C0/C1 overlong lead, or F5..FF */
	}
	if (bytes[1] < low || bytes[1] > high)
		return 0;
	for (size_t i = 1; i < length; i++) {
		if (i > 1 && (bytes[i] < 0x80 || bytes[i] > 0xbf))
			return 0;
		*code_point = *code_point << 6 | (bytes[i] & 0x3f);
	}
	return length;
}

/* Controls (C0, DEL, C1), the Unicode White_Space characters, and the
 * invisible characters that make one address look like another (zero width
 * space, bidi marks and overrides, word joiner, byte order mark). */
static bool forbidden_in_address(uint32_t c)
{
	if (c <= 0x20 || (c >= 0x7f && c <= 0xa0))
		return true;
	if ((c >= 0x2000 && c <= 0x200b) || c == 0x200e || c == 0x200f || (c >= 0x2028 && c <= 0x202f) ||
	    c == 0x205f || c == 0x2060 || (c >= 0x2066 && c <= 0x2069))
		return true;
	return c == 0x1680 || c == 0x3000 || c == 0xfeff;
}

static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Equal after ASCII case folding. Reads neither string past the first
 * difference or the NUL of the shorter, and at most POLICY_PRINCIPAL_MAX + 1
 * bytes of either (so an owner field that lost its NUL is still safe). */
static bool ascii_case_equal(const char *a, const char *b)
{
	for (size_t i = 0; i <= POLICY_PRINCIPAL_MAX; i++) {
		if (ascii_lower(a[i]) != ascii_lower(b[i]))
			return false;
		if (a[i] == '\0')
			return true;
	}
	return false;
}

/* The checks of policy.h on an address, writing its lowercase form to out
 * (POLICY_PRINCIPAL_MAX + 1 bytes). A local part of exactly "*" is accepted
 * only when `wildcard` is set (a `*@domain` grant). */
static lic_status address_normalize(const char *text, bool wildcard, char *out, lic_error *error)
{
	lic_status status = LIC_OK;
	size_t length = 0, at = 0, at_count = 0, domain_length = 0;
	const char *domain = NULL;

	out[0] = '\0';
	if (text == NULL)
		LIC_FAIL(error, LIC_MALFORMED, "the e-mail address is missing");
	length = strnlen(text, POLICY_PRINCIPAL_MAX + 1);
	if (length > POLICY_PRINCIPAL_MAX)
		LIC_FAIL(error, LIC_MALFORMED, "an e-mail address is longer than %d bytes",
			 POLICY_PRINCIPAL_MAX);
	for (size_t i = 0; i < length;) {
		uint32_t code_point = 0;
		size_t sequence = utf8_decode((const unsigned char *)text + i, &code_point);
		if (sequence == 0)
			LIC_FAIL(error, LIC_MALFORMED, "an e-mail address is not valid UTF-8");
		if (forbidden_in_address(code_point))
			LIC_FAIL(error, LIC_MALFORMED,
				 "an e-mail address holds whitespace or a control character (U+%04X)",
				 (unsigned)code_point);
		if (code_point == '@') {
			at = i;
			at_count++;
		}
		for (size_t j = 0; j < sequence; j++)
			out[i + j] = ascii_lower(text[i + j]);
		i += sequence;
	}
	out[length] = '\0';

	if (at_count != 1)
		LIC_FAIL(error, LIC_MALFORMED, "an e-mail address must hold exactly one '@'");
	if (at == 0)
		LIC_FAIL(error, LIC_MALFORMED, "an e-mail address has an empty local part");
	domain = out + at + 1;
	domain_length = length - at - 1;
	if (domain_length == 0)
		LIC_FAIL(error, LIC_MALFORMED, "an e-mail address has an empty domain");
	if (at == 1 && out[0] == '*') {
		if (!wildcard)
			LIC_FAIL(error, LIC_MALFORMED, "'*@domain' names a whole domain, not one address");
	} else if (memchr(out, '*', at) != NULL) {
		LIC_FAIL(error, LIC_MALFORMED, "'*' is only a wildcard as the whole local part ('*@domain')");
	}
	if (memchr(domain, '*', domain_length) != NULL)
		LIC_FAIL(error, LIC_MALFORMED, "a domain holds '*': subdomain wildcards are not supported");
	if (domain[0] == '.' || domain[domain_length - 1] == '.' || strstr(domain, "..") != NULL)
		LIC_FAIL(error, LIC_MALFORMED, "a domain has an empty label");
out:
	if (status != LIC_OK)
		out[0] = '\0';
	return status;
}

lic_status principal_normalize(const char *text, char *out, lic_error *error)
{
	return address_normalize(text, false, out, error);
}

lic_status grant_parse_principal(const char *text, struct grant *out, lic_error *error)
{
	lic_status status = LIC_OK;
	char normalized[POLICY_PRINCIPAL_MAX + 1];
	const char *stored = normalized;

	out->principal[0] = '\0';
	if (text != NULL && strcmp(text, "ANYONE") == 0) {
		out->kind = PRINCIPAL_ANYONE;
		stored = "ANYONE";
	} else {
		LIC_TRY(address_normalize(text, true, normalized, error));
		out->kind = normalized[0] == '*' ? PRINCIPAL_DOMAIN : PRINCIPAL_EXACT;
		if (out->kind == PRINCIPAL_DOMAIN)
			stored = normalized + 2; /* past "*@" */
	}
	memcpy(out->principal, stored, strlen(stored) + 1);
out:
	return status;
}

/* ---- Policies ---------------------------------------------------------- */

void policy_cleanup(struct policy *policy)
{
	if (policy == NULL)
		return;
	free(policy->grants);
	memset(policy, 0, sizeof *policy);
}

static bool grant_matches(const struct grant *grant, const char *principal, const char *domain)
{
	switch (grant->kind) {
	case PRINCIPAL_ANYONE:
		return true;
	case PRINCIPAL_EXACT:
		return ascii_case_equal(grant->principal, principal);
	case PRINCIPAL_DOMAIN:
		return ascii_case_equal(grant->principal, domain);
	}
	return false;
}

lic_status policy_evaluate(const struct policy *policy, const char *principal, const char *const *super_users,
			   size_t super_user_count, struct rights *out, lic_error *error)
{
	lic_status status = LIC_OK;
	struct rights result;
	char normalized[POLICY_PRINCIPAL_MAX + 1];
	const char *domain = NULL;

	memset(&result, 0, sizeof result);
	if (policy == NULL || (policy->grants == NULL && policy->grant_count > 0) ||
	    (super_users == NULL && super_user_count > 0))
		LIC_FAIL(error, LIC_INTERNAL, "policy_evaluate called without its policy or super-users");
	/* Normalized again: cheap, and the comparison below must not depend on
	 * every caller having done it. */
	LIC_TRY(principal_normalize(principal, normalized, error));
	domain = strchr(normalized, '@') + 1;

	if (ascii_case_equal(policy->owner, normalized))
		result.standard |= RIGHT_OWNER;
	for (size_t i = 0; i < super_user_count; i++) {
		if (super_users[i] != NULL && ascii_case_equal(super_users[i], normalized)) {
			result.standard |= RIGHT_OWNER;
			break;
		}
	}
	for (size_t i = 0; i < policy->grant_count; i++) {
		const struct grant *grant = &policy->grants[i];
		if (grant->kind != PRINCIPAL_EXACT && grant->kind != PRINCIPAL_DOMAIN &&
		    grant->kind != PRINCIPAL_ANYONE)
			LIC_FAIL(error, LIC_INTERNAL, "grant %zu has an unknown principal kind", i);
		if (grant_matches(grant, normalized, domain))
			LIC_TRY(rights_merge(&result, &grant->rights, error));
	}
out:
	if (status != LIC_OK)
		memset(&result, 0, sizeof result);
	*out = result;
	return status;
}
