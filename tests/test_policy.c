/*
 * test_policy.c: the rights a policy gives a principal (core/policy.h,
 * DESIGN.md §2): parsing and canonical text of rights, the custom right
 * pattern and its limits, principal forms and address checks (case, UTF-8,
 * whitespace, length), and evaluation: exact, domain and ANYONE grants, the
 * Owner, super-users, unions and principals that match nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/policy.h"

#define ALL_STANDARD_TEXT "VIEW EDIT PRINT EXPORT FORWARD REPLY EXTRACT VIEWRIGHTSDATA OWNER"

static const uint32_t all_standard_bits[] = {RIGHT_VIEW,    RIGHT_EDIT,           RIGHT_PRINT,
					     RIGHT_EXPORT,  RIGHT_FORWARD,        RIGHT_REPLY,
					     RIGHT_EXTRACT, RIGHT_VIEWRIGHTSDATA, RIGHT_OWNER};

/* ---- helpers ----------------------------------------------------------- */

static struct rights parse_ok(const char *text)
{
	struct rights rights;
	lic_error error = {0};
	if (rights_parse(text, &rights, &error) != LIC_OK)
		fail_msg("'%s' was refused: %s", text, error.message);
	return rights;
}

static void assert_parse_refused(const char *text)
{
	struct rights rights;
	lic_error error = {0};
	memset(&rights, 0x5a, sizeof rights);
	if (rights_parse(text, &rights, &error) != LIC_MALFORMED)
		fail_msg("rights '%s' were accepted", text ? text : "(null)");
	assert_int_equal(error.status, LIC_MALFORMED);
	assert_true(error.message[0] != '\0');
	assert_true(rights_empty(&rights)); /* nothing half-parsed is left */
	assert_int_equal(rights.standard, 0);
}

static void assert_format(const struct rights *rights, const char *expected)
{
	char text[2048];
	lic_error error = {0};
	if (rights_format(rights, text, sizeof text, &error) != LIC_OK)
		fail_msg("format failed: %s", error.message);
	assert_string_equal(text, expected);
}

/* parse(text) formats as `canonical`, and that text parses back to the same set. */
static void assert_round_trip(const char *text, const char *canonical)
{
	struct rights first = parse_ok(text);
	assert_format(&first, canonical);
	struct rights second = parse_ok(canonical);
	/* Same rights; the bits may differ only by OWNER's implied ones. */
	for (size_t i = 0; i < sizeof all_standard_bits / sizeof all_standard_bits[0]; i++)
		assert_int_equal(rights_has_standard(&second, all_standard_bits[i]),
				 rights_has_standard(&first, all_standard_bits[i]));
	assert_int_equal(second.custom_count, first.custom_count);
	for (size_t i = 0; i < first.custom_count; i++)
		assert_string_equal(second.custom[i], first.custom[i]);
	assert_format(&second, canonical);
}

static void assert_principal_refused(const char *text)
{
	struct grant grant;
	char normalized[POLICY_PRINCIPAL_MAX + 1];
	lic_error error = {0};
	memset(&grant, 0, sizeof grant);
	strcpy(grant.principal, "stale");
	if (grant_parse_principal(text, &grant, &error) != LIC_MALFORMED)
		fail_msg("grant principal '%s' was accepted", text ? text : "(null)");
	assert_int_equal(error.status, LIC_MALFORMED);
	assert_string_equal(grant.principal, "");
	strcpy(normalized, "stale");
	if (principal_normalize(text, normalized, NULL) != LIC_MALFORMED)
		fail_msg("address '%s' was accepted", text ? text : "(null)");
	assert_string_equal(normalized, "");
}

static void assert_grant_principal(const char *text, enum principal_kind kind, const char *stored)
{
	struct grant grant;
	lic_error error = {0};
	memset(&grant, 0, sizeof grant);
	if (grant_parse_principal(text, &grant, &error) != LIC_OK)
		fail_msg("grant principal '%s' was refused: %s", text, error.message);
	assert_int_equal(grant.kind, kind);
	assert_string_equal(grant.principal, stored);
}

/* A policy owned by `owner` with grants given as "principal", "rights" pairs,
 * built the way a PL reader builds it. */
static struct policy make_policy(const char *owner, const char *const *pairs, size_t grant_count)
{
	struct policy policy;
	memset(&policy, 0, sizeof policy);
	assert_int_equal(principal_normalize(owner, policy.owner, NULL), LIC_OK);
	policy.grants = calloc(grant_count ? grant_count : 1, sizeof *policy.grants);
	assert_non_null(policy.grants);
	for (size_t i = 0; i < grant_count; i++) {
		assert_int_equal(grant_parse_principal(pairs[2 * i], &policy.grants[i], NULL), LIC_OK);
		assert_int_equal(rights_parse(pairs[2 * i + 1], &policy.grants[i].rights, NULL), LIC_OK);
	}
	policy.grant_count = grant_count;
	return policy;
}

/* The canonical text of what `principal` holds (no super-users). */
static void assert_evaluates(const struct policy *policy, const char *principal, const char *expected)
{
	struct rights rights;
	lic_error error = {0};
	if (policy_evaluate(policy, principal, NULL, 0, &rights, &error) != LIC_OK)
		fail_msg("evaluate '%s' failed: %s", principal, error.message);
	assert_format(&rights, expected);
}

/* ---- rights ------------------------------------------------------------ */

static void test_rights_parse_standard(void **state)
{
	(void)state;
	struct rights rights = parse_ok("VIEW PRINT");
	assert_int_equal(rights.standard, RIGHT_VIEW | RIGHT_PRINT);
	assert_int_equal(rights.custom_count, 0);

	rights = parse_ok(ALL_STANDARD_TEXT);
	assert_int_equal(rights.standard, 0x1ff);
	const char *names[] = {"VIEW",  "EDIT",    "PRINT",          "EXPORT", "FORWARD",
			       "REPLY", "EXTRACT", "VIEWRIGHTSDATA", "OWNER"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		rights = parse_ok(names[i]);
		assert_int_equal(rights.standard, all_standard_bits[i]);
		assert_int_equal(rights.custom_count, 0);
	}
}

static void test_rights_parse_spaces(void **state)
{
	(void)state;
	struct rights rights = parse_ok("  VIEW    PRINT ");
	assert_int_equal(rights.standard, RIGHT_VIEW | RIGHT_PRINT);
	assert_format(&rights, "VIEW PRINT");
	/* Only the ASCII space separates names. */
	assert_parse_refused("VIEW\tPRINT");
	assert_parse_refused("VIEW\nPRINT");
	assert_parse_refused("VIEW,PRINT");
	assert_parse_refused("VIEW\xc2\xa0PRINT");
}

static void test_rights_custom_pattern(void **state)
{
	(void)state;
	struct rights rights = parse_ok("X");
	assert_int_equal(rights.standard, 0);
	assert_int_equal(rights.custom_count, 1);
	assert_string_equal(rights.custom[0], "X");

	rights = parse_ok("MY_RIGHT_2");
	assert_int_equal(rights.custom_count, 1);
	assert_string_equal(rights.custom[0], "MY_RIGHT_2");

	char longest[POLICY_RIGHT_NAME_MAX + 2];
	memset(longest, 'A', POLICY_RIGHT_NAME_MAX);
	longest[POLICY_RIGHT_NAME_MAX] = '\0';
	rights = parse_ok(longest); /* 32 characters */
	assert_int_equal(rights.custom_count, 1);
	assert_int_equal(strlen(rights.custom[0]), 32);
	assert_string_equal(rights.custom[0], longest);

	longest[POLICY_RIGHT_NAME_MAX] = 'A';
	longest[POLICY_RIGHT_NAME_MAX + 1] = '\0';
	assert_parse_refused(longest); /* 33 characters */
	assert_parse_refused("lower");
	assert_parse_refused("view"); /* right names are case-sensitive */
	assert_parse_refused("View");
	assert_parse_refused("1ABC");
	assert_parse_refused("_ABC");
	assert_parse_refused("A-B");
	assert_parse_refused("A.B");
	assert_parse_refused("VIEW lower");
	assert_parse_refused("\xc3\x89"); /* É */
	assert_parse_refused("VIEW \x01");
}

static void test_rights_duplicates_merged(void **state)
{
	(void)state;
	struct rights rights = parse_ok("VIEW PRINT VIEW MINE PRINT MINE VIEW");
	assert_int_equal(rights.standard, RIGHT_VIEW | RIGHT_PRINT);
	assert_int_equal(rights.custom_count, 1);
	assert_string_equal(rights.custom[0], "MINE");
	assert_format(&rights, "VIEW PRINT MINE");
}

static void test_rights_empty_refused(void **state)
{
	(void)state;
	assert_parse_refused("");
	assert_parse_refused(" ");
	assert_parse_refused("     ");
	assert_parse_refused(NULL);
}

static void test_rights_too_many_custom(void **state)
{
	(void)state;
	char text[4096] = "";
	char name[16];
	for (int i = 0; i < POLICY_MAX_CUSTOM_RIGHTS; i++) {
		snprintf(name, sizeof name, "C%02d ", i);
		strcat(text, name);
	}
	/* 32 distinct, plus duplicates of them: accepted. */
	strcat(text, "C00 C31 VIEW");
	struct rights rights = parse_ok(text);
	assert_int_equal(rights.custom_count, POLICY_MAX_CUSTOM_RIGHTS);
	assert_int_equal(rights.standard, RIGHT_VIEW);
	/* A 33rd distinct one: refused. */
	strcat(text, " C32");
	assert_parse_refused(text);
}

static void test_rights_format_canonical(void **state)
{
	(void)state;
	assert_round_trip("VIEW", "VIEW");
	assert_round_trip("PRINT VIEW", "VIEW PRINT");
	assert_round_trip("ZED PRINT ALPHA VIEW EXTRACT", "VIEW PRINT EXTRACT ALPHA ZED");
	assert_round_trip("VIEWRIGHTSDATA REPLY FORWARD EXPORT EDIT",
			  "EDIT EXPORT FORWARD REPLY VIEWRIGHTSDATA");
	assert_round_trip("B_2 B_10 B A", "A B B_10 B_2"); /* strcmp order */
	assert_round_trip("OWNER", ALL_STANDARD_TEXT);
	assert_round_trip("MINE OWNER VIEW", ALL_STANDARD_TEXT " MINE");
	assert_round_trip(ALL_STANDARD_TEXT, ALL_STANDARD_TEXT);

	/* Parse keeps custom rights sorted too. */
	struct rights rights = parse_ok("ZED ALPHA MID");
	assert_int_equal(rights.custom_count, 3);
	assert_string_equal(rights.custom[0], "ALPHA");
	assert_string_equal(rights.custom[1], "MID");
	assert_string_equal(rights.custom[2], "ZED");

	/* The empty set formats as "". */
	struct rights empty;
	memset(&empty, 0, sizeof empty);
	assert_format(&empty, "");
}

static void test_rights_format_hand_filled(void **state)
{
	(void)state;
	/* A set built by hand: unsorted and repeated customs, a stray bit. */
	struct rights rights;
	memset(&rights, 0, sizeof rights);
	rights.standard = RIGHT_PRINT | (1u << 20);
	rights.custom_count = 3;
	strcpy(rights.custom[0], "ZED");
	strcpy(rights.custom[1], "ALPHA");
	strcpy(rights.custom[2], "ZED");
	assert_format(&rights, "PRINT ALPHA ZED");

	/* A custom name that could smuggle a second right in is refused. */
	strcpy(rights.custom[1], "A B");
	char text[64];
	lic_error error = {0};
	assert_int_equal(rights_format(&rights, text, sizeof text, &error), LIC_MALFORMED);
	assert_string_equal(text, "");
	strcpy(rights.custom[1], "VIEW"); /* a standard name is not a custom right */
	assert_int_equal(rights_format(&rights, text, sizeof text, NULL), LIC_MALFORMED);
	rights.custom_count = POLICY_MAX_CUSTOM_RIGHTS + 1;
	assert_int_equal(rights_format(&rights, text, sizeof text, NULL), LIC_INTERNAL);
}

static void test_rights_format_too_large(void **state)
{
	(void)state;
	struct rights rights = parse_ok("VIEW PRINT MINE");
	char text[32];
	lic_error error = {0};
	/* "VIEW PRINT MINE" is 15 bytes, 16 with its NUL. */
	assert_int_equal(rights_format(&rights, text, 16, &error), LIC_OK);
	assert_string_equal(text, "VIEW PRINT MINE");
	memset(text, 'x', sizeof text);
	assert_int_equal(rights_format(&rights, text, 15, &error), LIC_TOO_LARGE);
	assert_int_equal(error.status, LIC_TOO_LARGE);
	assert_string_equal(text, "");   /* no truncated list */
	assert_int_equal(text[15], 'x'); /* nothing written past size */
	assert_int_equal(rights_format(&rights, text, 5, NULL), LIC_TOO_LARGE);
	assert_string_equal(text, "");
	assert_int_equal(rights_format(&rights, text, 1, NULL), LIC_TOO_LARGE);
	assert_int_equal(rights_format(&rights, text, 0, NULL), LIC_TOO_LARGE);

	struct rights empty;
	memset(&empty, 0, sizeof empty);
	assert_int_equal(rights_format(&empty, text, 1, NULL), LIC_OK);
	assert_string_equal(text, "");

	/* The largest set: OWNER spelled out and 32 custom names of 32 characters.
	 * 65 + 32 * 33 = 1121 bytes, 1122 with the NUL. */
	struct rights largest;
	memset(&largest, 0, sizeof largest);
	largest.standard = RIGHT_OWNER;
	largest.custom_count = POLICY_MAX_CUSTOM_RIGHTS;
	for (int i = 0; i < POLICY_MAX_CUSTOM_RIGHTS; i++) {
		memset(largest.custom[i], 'R', POLICY_RIGHT_NAME_MAX);
		snprintf(largest.custom[i] + POLICY_RIGHT_NAME_MAX - 2, 3, "%02d", i);
	}
	char big[1200];
	assert_int_equal(rights_format(&largest, big, sizeof big, NULL), LIC_OK);
	assert_int_equal(strlen(big), 1121);
	assert_int_equal(rights_format(&largest, big, 1122, NULL), LIC_OK);
	assert_int_equal(rights_format(&largest, big, 1121, NULL), LIC_TOO_LARGE);
	assert_int_equal(rights_format(&largest, big, 1024, NULL), LIC_TOO_LARGE);
}

static void test_rights_owner_implies_all(void **state)
{
	(void)state;
	struct rights owner = parse_ok("OWNER");
	for (size_t i = 0; i < sizeof all_standard_bits / sizeof all_standard_bits[0]; i++)
		assert_true(rights_has_standard(&owner, all_standard_bits[i]));
	assert_true(rights_has_standard(&owner, RIGHT_VIEW | RIGHT_PRINT | RIGHT_EXPORT));
	assert_false(rights_has_standard(&owner, 1u << 20)); /* not a right at all */
	assert_false(rights_has_standard(&owner, 0));

	struct rights some = parse_ok("VIEW PRINT");
	assert_true(rights_has_standard(&some, RIGHT_VIEW));
	assert_true(rights_has_standard(&some, RIGHT_PRINT));
	assert_true(rights_has_standard(&some, RIGHT_VIEW | RIGHT_PRINT));
	assert_false(rights_has_standard(&some, RIGHT_VIEW | RIGHT_EDIT)); /* all of them, not any */
	assert_false(rights_has_standard(&some, RIGHT_EDIT));
	assert_false(rights_has_standard(&some, RIGHT_EXPORT));
	assert_false(rights_has_standard(&some, RIGHT_OWNER));

	struct rights custom_only = parse_ok("MINE");
	assert_false(rights_has_standard(&custom_only, RIGHT_VIEW));
	assert_false(rights_empty(&custom_only));
	assert_false(rights_empty(&some));
	struct rights empty;
	memset(&empty, 0, sizeof empty);
	assert_true(rights_empty(&empty));
	empty.standard = 1u << 20; /* not a right */
	assert_true(rights_empty(&empty));
}

static void test_rights_merge(void **state)
{
	(void)state;
	struct rights into = parse_ok("VIEW MINE ZED");
	struct rights from = parse_ok("PRINT ALPHA MINE");
	assert_int_equal(rights_merge(&into, &from, NULL), LIC_OK);
	assert_int_equal(into.standard, RIGHT_VIEW | RIGHT_PRINT);
	assert_int_equal(into.custom_count, 3);
	assert_string_equal(into.custom[0], "ALPHA");
	assert_string_equal(into.custom[1], "MINE");
	assert_string_equal(into.custom[2], "ZED");
	assert_format(&into, "VIEW PRINT ALPHA MINE ZED");

	/* Merging with itself changes nothing. */
	assert_int_equal(rights_merge(&into, &into, NULL), LIC_OK);
	assert_format(&into, "VIEW PRINT ALPHA MINE ZED");

	/* Overflow: 20 + 20 distinct customs. `into` is left as it was. */
	char text_a[1024] = "", text_b[1024] = "", name[16];
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof name, "A%02d ", i);
		strcat(text_a, name);
		snprintf(name, sizeof name, "B%02d ", i);
		strcat(text_b, name);
	}
	struct rights a = parse_ok(text_a), b = parse_ok(text_b);
	struct rights before = a;
	lic_error error = {0};
	assert_int_equal(rights_merge(&a, &b, &error), LIC_MALFORMED);
	assert_int_equal(error.status, LIC_MALFORMED);
	assert_int_equal(a.standard, before.standard);
	assert_int_equal(a.custom_count, 20);
	for (size_t i = 0; i < a.custom_count; i++)
		assert_string_equal(a.custom[i], before.custom[i]);
	/* Overlapping sets whose union fits are fine. */
	struct rights c = parse_ok(text_a);
	assert_int_equal(rights_merge(&a, &c, NULL), LIC_OK);
	assert_int_equal(a.custom_count, 20);
}

/* ---- principals -------------------------------------------------------- */

static void test_principal_forms(void **state)
{
	(void)state;
	assert_grant_principal("bob@contoso.com", PRINCIPAL_EXACT, "bob@contoso.com");
	assert_grant_principal("Bob@Contoso.COM", PRINCIPAL_EXACT, "bob@contoso.com");
	assert_grant_principal("first.last+tag@mail.contoso.com", PRINCIPAL_EXACT,
			       "first.last+tag@mail.contoso.com");
	assert_grant_principal("*@fabrikam.com", PRINCIPAL_DOMAIN, "fabrikam.com");
	assert_grant_principal("*@FabriKam.COM", PRINCIPAL_DOMAIN, "fabrikam.com");
	assert_grant_principal("ANYONE", PRINCIPAL_ANYONE, "ANYONE");
	assert_grant_principal("a@b", PRINCIPAL_EXACT, "a@b");

	/* ANYONE is written in capitals; other spellings are not addresses. */
	assert_principal_refused("anyone");
	assert_principal_refused("Anyone");
	assert_principal_refused(" ANYONE");
}

static void test_principal_malformed(void **state)
{
	(void)state;
	const char *bad[] = {
	    "*@",          "@x",          "a@",         "a@@b",        "a@b@c",       "",
	    "@",           "bob",         "*",          "**@x.com",    "*bob@x.com",  "b*b@x.com",
	    "*@*.x.com",   "bob@x*.com",  "a@.com",     "a@x..com",    "a@x.com.",    ".",
	    "bob @x.com",  " bob@x.com",  "bob@x.com ", "bob@x.com\n", "bob\t@x.com", "bob@x\r.com",
	    "b\x01@x.com", "b\x7f@x.com", "*@ x.com",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_principal_refused(bad[i]);
	assert_principal_refused(NULL);

	/* Unicode whitespace, controls and invisible characters. */
	assert_principal_refused("bob\xc2\xa0@x.com");     /* U+00A0 no-break space */
	assert_principal_refused("bob\xc2\x85@x.com");     /* U+0085 next line (C1) */
	assert_principal_refused("bob@x\xe2\x80\xa8.com"); /* U+2028 line separator */
	assert_principal_refused("bob\xe2\x80\x83@x.com"); /* U+2003 em space */
	assert_principal_refused("bob\xe2\x80\x8b@x.com"); /* U+200B zero width space */
	assert_principal_refused("\xe2\x80\xae"
				 "bob@x.com");             /* U+202E right-to-left override */
	assert_principal_refused("bob\xe3\x80\x80@x.com"); /* U+3000 ideographic space */
	assert_principal_refused("\xef\xbb\xbf"
				 "bob@x.com"); /* U+FEFF byte order mark */

	/* A RAC principal or an Owner is one address, never a pattern. */
	char out[POLICY_PRINCIPAL_MAX + 1];
	assert_int_equal(principal_normalize("*@contoso.com", out, NULL), LIC_MALFORMED);
	assert_int_equal(principal_normalize("ANYONE", out, NULL), LIC_MALFORMED);
	lic_error error = {0};
	assert_int_equal(principal_normalize("a@@b", out, &error), LIC_MALFORMED);
	assert_int_equal(error.status, LIC_MALFORMED);
	assert_true(error.message[0] != '\0');
}

static void test_principal_normalize_lowercases_ascii(void **state)
{
	(void)state;
	char out[POLICY_PRINCIPAL_MAX + 1];
	assert_int_equal(principal_normalize("Bob@Contoso.COM", out, NULL), LIC_OK);
	assert_string_equal(out, "bob@contoso.com");
	assert_int_equal(principal_normalize("bob@contoso.com", out, NULL), LIC_OK);
	assert_string_equal(out, "bob@contoso.com");
	/* Only ASCII letters fold: Ü (C3 9C) stays as it is. */
	assert_int_equal(principal_normalize("J\xc3\x9cRGEN@B\xc3\xbc"
					     "cher.DE",
					     out, NULL),
			 LIC_OK);
	assert_string_equal(out, "j\xc3\x9crgen@b\xc3\xbc"
				 "cher.de");
}

static void test_principal_utf8(void **state)
{
	(void)state;
	/* Well-formed UTF-8 of every length is accepted. */
	assert_grant_principal("j\xc3\xbcrgen@b\xc3\xbc"
			       "cher.de",
			       PRINCIPAL_EXACT,
			       "j\xc3\xbcrgen@b\xc3\xbc"
			       "cher.de");
	assert_grant_principal("\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe4\xb8\xad\xe5\x9b\xbd",
			       PRINCIPAL_EXACT,
			       "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe4\xb8\xad\xe5\x9b\xbd");
	assert_grant_principal("\xf0\x9f\x98\x80@x.com", PRINCIPAL_EXACT, "\xf0\x9f\x98\x80@x.com");
	assert_grant_principal("\xf4\x8f\xbf\xbf@x.com", PRINCIPAL_EXACT,
			       "\xf4\x8f\xbf\xbf@x.com"); /* U+10FFFF */
	assert_grant_principal("*@b\xc3\xbc"
			       "cher.de",
			       PRINCIPAL_DOMAIN,
			       "b\xc3\xbc"
			       "cher.de");

	const char *bad[] = {
	    "\x80@x.com",             /* lone continuation byte */
	    "bob\xbf@x.com",          /* lone continuation byte */
	    "bob\xc3@x.com",          /* lead byte without its continuation */
	    "bob@x.com\xc3",          /* cut short at the end */
	    "bob@x.com\xe2\x82",      /* cut short at the end */
	    "\xc0\xaf@x.com",         /* overlong '/' */
	    "\xc1\x81@x.com",         /* overlong 'A' */
	    "\xe0\x80\xaf@x.com",     /* overlong, three bytes */
	    "\xf0\x80\x80\xaf@x.com", /* overlong, four bytes */
	    "\xed\xa0\x80@x.com",     /* U+D800, a surrogate */
	    "\xed\xbf\xbf@x.com",     /* U+DFFF, a surrogate */
	    "\xf4\x90\x80\x80@x.com", /* U+110000 */
	    "\xf5\x80\x80\x80@x.com", /* F5 never appears */
	    "\xfe@x.com",
	    "\xff@x.com", /* nor do FE, FF */
	    "bob@b\xfc"
	    "cher.de",               /* Latin-1, not UTF-8 */
	    "bob\xe2\x28\xa1@x.com", /* bad second byte */
	    "bob\xe2\x82\x28@x.com", /* bad third byte */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_principal_refused(bad[i]);
}

static void test_principal_length(void **state)
{
	(void)state;
	/* 64 + 1 + 255 = 320 bytes: accepted. */
	char text[1024];
	memset(text, 'l', 64);
	text[64] = '@';
	char *domain = text + 65;
	for (int i = 0; i < 255; i++)
		domain[i] = (i % 10 == 9) ? '.' : 'D';
	domain[254] = 'D';
	text[320] = '\0';
	assert_int_equal(strlen(text), POLICY_PRINCIPAL_MAX);
	char out[POLICY_PRINCIPAL_MAX + 1];
	assert_int_equal(principal_normalize(text, out, NULL), LIC_OK);
	assert_int_equal(strlen(out), POLICY_PRINCIPAL_MAX);
	assert_int_equal(out[65], 'd');
	struct grant grant;
	assert_int_equal(grant_parse_principal(text, &grant, NULL), LIC_OK);
	assert_int_equal(strlen(grant.principal), POLICY_PRINCIPAL_MAX);

	/* 321 bytes: refused. */
	text[320] = 'D';
	text[321] = '\0';
	assert_principal_refused(text);

	/* Far longer: refused, and read no further than the limit needs. */
	memset(text, 'a', sizeof text - 1);
	text[10] = '@';
	text[sizeof text - 1] = '\0';
	assert_principal_refused(text);

	/* A domain grant counts the "*@" too. */
	char wildcard[POLICY_PRINCIPAL_MAX + 2];
	wildcard[0] = '*';
	wildcard[1] = '@';
	memset(wildcard + 2, 'd', POLICY_PRINCIPAL_MAX - 2);
	wildcard[POLICY_PRINCIPAL_MAX] = '\0';
	assert_grant_principal(wildcard, PRINCIPAL_DOMAIN, wildcard + 2);
	wildcard[POLICY_PRINCIPAL_MAX] = 'd';
	wildcard[POLICY_PRINCIPAL_MAX + 1] = '\0';
	assert_principal_refused(wildcard);
}

/* ---- evaluation -------------------------------------------------------- */

static void test_evaluate_exact_case_insensitive(void **state)
{
	(void)state;
	const char *grants[] = {"bob@contoso.com", "VIEW PRINT", "Carol@Contoso.COM", "EDIT"};
	struct policy policy = make_policy("alice@contoso.com", grants, 2);
	assert_evaluates(&policy, "bob@contoso.com", "VIEW PRINT");
	assert_evaluates(&policy, "Bob@Contoso.COM", "VIEW PRINT");
	assert_evaluates(&policy, "BOB@CONTOSO.COM", "VIEW PRINT");
	assert_evaluates(&policy, "carol@contoso.com", "EDIT");
	assert_evaluates(&policy, "CAROL@contoso.com", "EDIT");
	/* Near misses match nothing. */
	assert_evaluates(&policy, "bob@contoso.co", "");
	assert_evaluates(&policy, "bob@contoso.com.evil.example", "");
	assert_evaluates(&policy, "bobby@contoso.com", "");
	assert_evaluates(&policy, "ob@contoso.com", "");
	assert_evaluates(&policy, "bob@sales.contoso.com", "");
	policy_cleanup(&policy);
}

static void test_evaluate_domain(void **state)
{
	(void)state;
	const char *grants[] = {"*@fabrikam.com", "VIEW"};
	struct policy policy = make_policy("alice@contoso.com", grants, 1);
	assert_evaluates(&policy, "carol@fabrikam.com", "VIEW");
	assert_evaluates(&policy, "Carol@FABRIKAM.com", "VIEW");
	assert_evaluates(&policy, "x@fabrikam.com", "VIEW");
	/* Not a subdomain, not another domain that merely ends alike. */
	assert_evaluates(&policy, "carol@sales.fabrikam.com", "");
	assert_evaluates(&policy, "carol@notfabrikam.com", "");
	assert_evaluates(&policy, "carol@fabrikam.com.evil.example", "");
	assert_evaluates(&policy, "carol@fabrikam.co", "");
	assert_evaluates(&policy, "carol@contoso.com", "");
	/* The local part is not matched against the domain. */
	assert_evaluates(&policy, "fabrikam.com@contoso.com", "");
	policy_cleanup(&policy);
}

static void test_evaluate_anyone(void **state)
{
	(void)state;
	const char *grants[] = {"ANYONE", "VIEW"};
	struct policy policy = make_policy("alice@contoso.com", grants, 1);
	assert_evaluates(&policy, "bob@contoso.com", "VIEW");
	assert_evaluates(&policy, "stranger@elsewhere.example", "VIEW");
	assert_evaluates(&policy, "\xe7\x94\xa8\xe6\x88\xb7@x.cn", "VIEW");
	/* The owner gets OWNER, and ANYONE's rights on top change nothing. */
	assert_evaluates(&policy, "alice@contoso.com", ALL_STANDARD_TEXT);
	policy_cleanup(&policy);
}

static void test_evaluate_owner_without_grant(void **state)
{
	(void)state;
	struct policy policy = make_policy("Alice@Contoso.com", NULL, 0);
	assert_string_equal(policy.owner, "alice@contoso.com");
	struct rights rights;
	assert_int_equal(policy_evaluate(&policy, "alice@contoso.com", NULL, 0, &rights, NULL), LIC_OK);
	assert_int_equal(rights.standard, RIGHT_OWNER);
	assert_true(rights_has_standard(&rights, RIGHT_PRINT));
	assert_true(rights_has_standard(&rights, RIGHT_EXTRACT));
	assert_format(&rights, ALL_STANDARD_TEXT);
	assert_evaluates(&policy, "ALICE@CONTOSO.COM", ALL_STANDARD_TEXT);
	assert_evaluates(&policy, "bob@contoso.com", "");

	/* An Owner written in mixed case by a caller that did not normalize it. */
	strcpy(policy.owner, "Alice@CONTOSO.com");
	assert_evaluates(&policy, "alice@contoso.com", ALL_STANDARD_TEXT);
	policy_cleanup(&policy);
}

static void test_evaluate_super_user(void **state)
{
	(void)state;
	const char *grants[] = {"bob@contoso.com", "VIEW", "ANYONE", "AUDIT_TRAIL"};
	struct policy policy = make_policy("alice@contoso.com", grants, 2);
	const char *super_users[] = {"admin@contoso.com", NULL, "Root@Contoso.com"};
	struct rights rights;

	assert_int_equal(policy_evaluate(&policy, "admin@contoso.com", super_users, 3, &rights, NULL),
			 LIC_OK);
	assert_true(rights_has_standard(&rights, RIGHT_OWNER));
	assert_format(&rights, ALL_STANDARD_TEXT " AUDIT_TRAIL");
	assert_int_equal(policy_evaluate(&policy, "ROOT@contoso.COM", super_users, 3, &rights, NULL), LIC_OK);
	assert_format(&rights, ALL_STANDARD_TEXT " AUDIT_TRAIL");

	/* Not a super-user: only the grants. */
	assert_int_equal(policy_evaluate(&policy, "bob@contoso.com", super_users, 3, &rights, NULL), LIC_OK);
	assert_format(&rights, "VIEW AUDIT_TRAIL");
	assert_false(rights_has_standard(&rights, RIGHT_OWNER));
	/* A super-user of the list is no super-user when the list is not passed. */
	assert_int_equal(policy_evaluate(&policy, "admin@contoso.com", super_users, 1, &rights, NULL),
			 LIC_OK);
	assert_true(rights_has_standard(&rights, RIGHT_OWNER));
	assert_int_equal(policy_evaluate(&policy, "root@contoso.com", super_users, 1, &rights, NULL), LIC_OK);
	assert_format(&rights, "AUDIT_TRAIL");
	assert_int_equal(policy_evaluate(&policy, "admin@contoso.com", NULL, 0, &rights, NULL), LIC_OK);
	assert_format(&rights, "AUDIT_TRAIL");
	/* Super-users are whole addresses: a colleague in their domain is not one. */
	assert_int_equal(policy_evaluate(&policy, "other@contoso.com", super_users, 3, &rights, NULL),
			 LIC_OK);
	assert_format(&rights, "AUDIT_TRAIL");
	policy_cleanup(&policy);
}

static void test_evaluate_union(void **state)
{
	(void)state;
	const char *grants[] = {
	    "bob@contoso.com", "VIEW",           "*@contoso.com",     "EDIT MINE",
	    "ANYONE",          "PRINT",          "*@fabrikam.com",    "EXPORT",
	    "BOB@contoso.com", "REPLY MINE ZED", "carol@contoso.com", "FORWARD",
	};
	struct policy policy = make_policy("alice@contoso.com", grants, 6);
	assert_evaluates(&policy, "bob@contoso.com", "VIEW EDIT PRINT REPLY MINE ZED");
	assert_evaluates(&policy, "carol@contoso.com", "EDIT PRINT FORWARD MINE");
	assert_evaluates(&policy, "dave@contoso.com", "EDIT PRINT MINE");
	assert_evaluates(&policy, "erin@fabrikam.com", "PRINT EXPORT");
	assert_evaluates(&policy, "frank@elsewhere.example", "PRINT");
	policy_cleanup(&policy);
}

static void test_evaluate_no_match(void **state)
{
	(void)state;
	const char *grants[] = {"bob@contoso.com", "VIEW", "*@fabrikam.com", "PRINT"};
	struct policy policy = make_policy("alice@contoso.com", grants, 2);
	struct rights rights;
	memset(&rights, 0x5a, sizeof rights);
	lic_error error = {0};
	assert_int_equal(policy_evaluate(&policy, "mallory@evil.example", NULL, 0, &rights, &error), LIC_OK);
	assert_true(rights_empty(&rights)); /* the caller reports NO_RIGHTS */
	assert_int_equal(rights.standard, 0);
	assert_int_equal(rights.custom_count, 0);
	assert_int_equal(error.status, LIC_OK);
	policy_cleanup(&policy);

	/* A policy with no grants and someone else's owner. */
	struct policy bare = make_policy("alice@contoso.com", NULL, 0);
	assert_evaluates(&bare, "bob@contoso.com", "");
	policy_cleanup(&bare);
}

static void test_evaluate_refuses_bad_principal(void **state)
{
	(void)state;
	const char *grants[] = {"ANYONE", "VIEW"};
	struct policy policy = make_policy("alice@contoso.com", grants, 1);
	char overlong[400];
	memset(overlong, 'a', sizeof overlong - 1);
	overlong[5] = '@';
	overlong[sizeof overlong - 1] = '\0';
	const char *bad[] = {
	    "bob\xc3@contoso.com", "\xed\xa0\x80@x.com", overlong, "ANYONE", "*@contoso.com", "bob", "",
	    "bob @contoso.com"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct rights rights;
		memset(&rights, 0x5a, sizeof rights);
		lic_error error = {0};
		if (policy_evaluate(&policy, bad[i], NULL, 0, &rights, &error) != LIC_MALFORMED)
			fail_msg("principal %zu was evaluated", i);
		assert_int_equal(error.status, LIC_MALFORMED);
		assert_true(rights_empty(&rights)); /* ANYONE's VIEW is not handed out */
	}
	assert_int_equal(policy_evaluate(&policy, NULL, NULL, 0, &(struct rights){0}, NULL), LIC_MALFORMED);
	policy_cleanup(&policy);
}

static void test_evaluate_custom_overflow(void **state)
{
	(void)state;
	char text_a[1024] = "", text_b[1024] = "", name[16];
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof name, "A%02d ", i);
		strcat(text_a, name);
		snprintf(name, sizeof name, "B%02d ", i);
		strcat(text_b, name);
	}
	const char *grants[] = {"bob@contoso.com", text_a, "*@contoso.com", text_b};
	struct policy policy = make_policy("alice@contoso.com", grants, 2);
	struct rights rights;
	lic_error error = {0};
	/* Each grant fits; their union for bob (40 custom rights) does not. */
	assert_int_equal(policy_evaluate(&policy, "bob@contoso.com", NULL, 0, &rights, &error),
			 LIC_MALFORMED);
	assert_true(rights_empty(&rights));
	/* Carol gets only the domain grant. */
	assert_int_equal(policy_evaluate(&policy, "carol@contoso.com", NULL, 0, &rights, NULL), LIC_OK);
	assert_int_equal(rights.custom_count, 20);
	policy_cleanup(&policy);
}

static void test_policy_cleanup(void **state)
{
	(void)state;
	const char *grants[] = {"bob@contoso.com", "VIEW"};
	struct policy policy = make_policy("alice@contoso.com", grants, 1);
	policy_cleanup(&policy);
	assert_null(policy.grants);
	assert_int_equal(policy.grant_count, 0);
	assert_string_equal(policy.owner, "");
	policy_cleanup(&policy); /* twice is harmless */
	policy_cleanup(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rights_parse_standard),
	    cmocka_unit_test(test_rights_parse_spaces),
	    cmocka_unit_test(test_rights_custom_pattern),
	    cmocka_unit_test(test_rights_duplicates_merged),
	    cmocka_unit_test(test_rights_empty_refused),
	    cmocka_unit_test(test_rights_too_many_custom),
	    cmocka_unit_test(test_rights_format_canonical),
	    cmocka_unit_test(test_rights_format_hand_filled),
	    cmocka_unit_test(test_rights_format_too_large),
	    cmocka_unit_test(test_rights_owner_implies_all),
	    cmocka_unit_test(test_rights_merge),
	    cmocka_unit_test(test_principal_forms),
	    cmocka_unit_test(test_principal_malformed),
	    cmocka_unit_test(test_principal_normalize_lowercases_ascii),
	    cmocka_unit_test(test_principal_utf8),
	    cmocka_unit_test(test_principal_length),
	    cmocka_unit_test(test_evaluate_exact_case_insensitive),
	    cmocka_unit_test(test_evaluate_domain),
	    cmocka_unit_test(test_evaluate_anyone),
	    cmocka_unit_test(test_evaluate_owner_without_grant),
	    cmocka_unit_test(test_evaluate_super_user),
	    cmocka_unit_test(test_evaluate_union),
	    cmocka_unit_test(test_evaluate_no_match),
	    cmocka_unit_test(test_evaluate_refuses_bad_principal),
	    cmocka_unit_test(test_evaluate_custom_overflow),
	    cmocka_unit_test(test_policy_cleanup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
