/*
 * policy.h: the rights a publishing license's policy gives a principal
 * (DESIGN.md §2).
 *
 * Rights: VIEW EDIT PRINT EXPORT FORWARD REPLY EXTRACT VIEWRIGHTSDATA OWNER,
 * plus custom rights matching [A-Z][A-Z0-9_]{0,31}. OWNER implies every
 * right. Principals of a grant: an exact e-mail address (compared
 * case-insensitively), `*@domain` (any address at exactly that domain,
 * case-insensitive), or `ANYONE`. The PL's Owner gets OWNER; the tenant's
 * super-users get OWNER on every PL of the tenant. The rights of a principal
 * are the union of every grant that matches it.
 */
#ifndef LICENSOR_CORE_POLICY_H
#define LICENSOR_CORE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "licensor.h"

#define POLICY_MAX_GRANTS 256
#define POLICY_MAX_CUSTOM_RIGHTS 32
#define POLICY_RIGHT_NAME_MAX 32
#define POLICY_PRINCIPAL_MAX 320 /* RFC 5321: 64 + 1 + 255 */
/* The longest canonical rights text, with its NUL: every standard right and
 * 32 custom names of 32 characters. */
#define POLICY_RIGHTS_TEXT_MAX 1122

/* Standard rights as bits. */
enum policy_right {
	RIGHT_VIEW = 1u << 0,
	RIGHT_EDIT = 1u << 1,
	RIGHT_PRINT = 1u << 2,
	RIGHT_EXPORT = 1u << 3,
	RIGHT_FORWARD = 1u << 4,
	RIGHT_REPLY = 1u << 5,
	RIGHT_EXTRACT = 1u << 6,
	RIGHT_VIEWRIGHTSDATA = 1u << 7,
	RIGHT_OWNER = 1u << 8,
};

/* A set of rights: standard bits and custom names. */
struct rights {
	uint32_t standard;
	size_t custom_count;
	char custom[POLICY_MAX_CUSTOM_RIGHTS][POLICY_RIGHT_NAME_MAX + 1];
};

/* Parses "VIEW PRINT MY_RIGHT" (one space between names, as DESIGN.md writes
 * them; leading/trailing/multiple ASCII spaces tolerated). Unknown names that
 * match the custom pattern are custom rights; anything else, duplicates
 * allowed and merged, is MALFORMED. An empty list is MALFORMED. */
lic_status rights_parse(const char *text, struct rights *out, lic_error *error);

/* Union into `into`. MALFORMED if the custom rights overflow. */
lic_status rights_merge(struct rights *into, const struct rights *from, lic_error *error);

/* Canonical text: standard rights in the order of enum policy_right, then
 * custom rights sorted (strcmp), one space between names. A set holding OWNER
 * is written with every standard right spelled out (OWNER implies them, and a
 * client checking for PRINT should find it), then its custom rights. Writes at
 * most size bytes including the NUL; LIC_TOO_LARGE if it does not fit. */
lic_status rights_format(const struct rights *rights, char *out, size_t size, lic_error *error);

bool rights_empty(const struct rights *rights);
bool rights_has_standard(const struct rights *rights, uint32_t right); /* OWNER implies all */

/* A principal of a grant: kind and (lowercased) text. */
enum principal_kind { PRINCIPAL_EXACT, PRINCIPAL_DOMAIN, PRINCIPAL_ANYONE };

struct grant {
	enum principal_kind kind;
	char principal[POLICY_PRINCIPAL_MAX + 1]; /* lowercased address, or the domain for PRINCIPAL_DOMAIN */
	struct rights rights;
};

/* Parses a grant's Principal attribute: "bob@contoso.com", "*@fabrikam.com"
 * or "ANYONE" (exact case). Addresses: one '@', a non-empty local part and
 * domain, no whitespace or control characters, at most POLICY_PRINCIPAL_MAX
 * bytes; stored lowercased (ASCII). MALFORMED otherwise. */
lic_status grant_parse_principal(const char *text, struct grant *out, lic_error *error);

/* Checks an e-mail address (a RAC principal or an Owner) the same way and
 * writes its lowercase form to out (POLICY_PRINCIPAL_MAX + 1 bytes). */
lic_status principal_normalize(const char *text, char *out, lic_error *error);

struct policy {
	char owner[POLICY_PRINCIPAL_MAX + 1]; /* lowercased */
	size_t grant_count;
	struct grant *grants; /* owned */
};

void policy_cleanup(struct policy *policy);

/* The rights `principal` (already normalized) holds under `policy`, given the
 * tenant's super-users (normalized addresses). Empty result = NO_RIGHTS for
 * the caller to report. */
lic_status policy_evaluate(const struct policy *policy, const char *principal, const char *const *super_users,
			   size_t super_user_count, struct rights *out, lic_error *error);

#endif
