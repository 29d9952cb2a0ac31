/*
 * test_encoding.c: the strict text forms: base64 (RFC 4648 vectors, bad
 * padding and stray characters refused), hex, UTC times and durations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "keyring/encoding.h"
#include "keyring/error.h"
#include "keyring/utc_time.h"

static void check_base64(const char *plain, const char *encoded)
{
	char *text = base64_encode((const uint8_t *)plain, strlen(plain));
	assert_string_equal(text, encoded);
	free(text);
	uint8_t *decoded = NULL;
	size_t length = 0;
	assert_int_equal(base64_decode(encoded, strlen(encoded), &decoded, &length, NULL), LIC_OK);
	assert_int_equal(length, strlen(plain));
	assert_memory_equal(decoded, plain, length);
	free(decoded);
}

static void test_base64_vectors(void **state)
{
	(void)state;
	/* RFC 4648 §10. */
	check_base64("", "");
	check_base64("f", "Zg==");
	check_base64("fo", "Zm8=");
	check_base64("foo", "Zm9v");
	check_base64("foob", "Zm9vYg==");
	check_base64("fooba", "Zm9vYmE=");
	check_base64("foobar", "Zm9vYmFy");
}

static void test_base64_refusals(void **state)
{
	(void)state;
	const char *bad[] = {"Zg=", "Zg===", "Z===", "Zm9v!", "Zm 9v", "Zh==", "Zm9=", "=Zm9", "Zg==Zg=="};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		uint8_t *decoded = NULL;
		size_t length = 0;
		if (base64_decode(bad[i], strlen(bad[i]), &decoded, &length, NULL) != LIC_MALFORMED)
			fail_msg("'%s' was accepted", bad[i]);
	}
	/* Surrounding whitespace (pretty-printed XML) is fine. */
	uint8_t *decoded = NULL;
	size_t length = 0;
	assert_int_equal(base64_decode("\n  Zm9v\n", 8, &decoded, &length, NULL), LIC_OK);
	assert_int_equal(length, 3);
	free(decoded);
}

static void test_hex(void **state)
{
	(void)state;
	uint8_t bytes[3] = {0x00, 0xab, 0xff};
	char text[7];
	hex_encode(bytes, 3, text);
	assert_string_equal(text, "00abff");
	uint8_t back[3];
	assert_int_equal(hex_decode("00ABff", back, 3, NULL), LIC_OK);
	assert_memory_equal(back, bytes, 3);
	assert_int_equal(hex_decode("00abf", back, 3, NULL), LIC_MALFORMED);
	assert_int_equal(hex_decode("00abfff", back, 3, NULL), LIC_MALFORMED);
	assert_int_equal(hex_decode("00abfg", back, 3, NULL), LIC_MALFORMED);
}

static void test_utc_time(void **state)
{
	(void)state;
	char text[UTC_TIME_LENGTH];
	utc_time_format(0, text);
	assert_string_equal(text, "1970-01-01T00:00:00Z");
	utc_time_format(1795000000, text);
	assert_string_equal(text, "2026-11-18T11:06:40Z");
	int64_t seconds = 0;
	assert_int_equal(utc_time_parse("2026-11-18T11:06:40Z", &seconds, NULL), LIC_OK);
	assert_int_equal(seconds, 1795000000);
	assert_int_equal(utc_time_parse("2024-02-29T00:00:00Z", &seconds, NULL), LIC_OK);
	const char *bad[] = {"2026-11-18 08:53:20Z",      "2026-11-18T08:53:20",
			     "2026-11-18T08:53:20+01:00", "2023-02-29T00:00:00Z",
			     "2026-13-01T00:00:00Z",      "2026-11-18T24:00:00Z",
			     "2026-11-18T08:53:20.5Z",    "",
			     "1969-12-31T23:59:59Z"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (utc_time_parse(bad[i], &seconds, NULL) != LIC_MALFORMED)
			fail_msg("'%s' was accepted", bad[i]);
}

static void test_durations(void **state)
{
	(void)state;
	int64_t seconds = 0;
	assert_int_equal(duration_parse("90s", &seconds, NULL), LIC_OK);
	assert_int_equal(seconds, 90);
	assert_int_equal(duration_parse("45m", &seconds, NULL), LIC_OK);
	assert_int_equal(seconds, 2700);
	assert_int_equal(duration_parse("6h", &seconds, NULL), LIC_OK);
	assert_int_equal(seconds, 21600);
	assert_int_equal(duration_parse("14d", &seconds, NULL), LIC_OK);
	assert_int_equal(seconds, 1209600);
	assert_int_equal(duration_parse("0s", &seconds, NULL), LIC_OK);
	assert_int_equal(seconds, 0);
	assert_int_equal(duration_parse("3650d", &seconds, NULL), LIC_OK);
	const char *bad[] = {"10", "5x", "d", "-5d", "1.5h", "3651d", "99999999999d", "", " 5d", "5d "};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (duration_parse(bad[i], &seconds, NULL) != LIC_USAGE)
			fail_msg("'%s' was accepted", bad[i]);
	char text[32];
	duration_format(1209600, text, sizeof text);
	assert_string_equal(text, "14d");
	duration_format(5400, text, sizeof text);
	assert_string_equal(text, "90m");
	duration_format(61, text, sizeof text);
	assert_string_equal(text, "61s");
	duration_format(0, text, sizeof text);
	assert_string_equal(text, "0s");
}

/* Error sentences quote names from untrusted input, cut to a byte length: they
 * must leave lic_error_set as valid UTF-8 without control characters. */
static void test_error_sentences_are_clean_text(void **state)
{
	(void)state;
	lic_error error;
	lic_error_set(&error, LIC_MALFORMED, "element %.4s", "a\xc3\xa9\xc3\xa9"); /* cuts the second é */
	assert_string_equal(error.message, "element a\xc3\xa9?");
	lic_error_set(&error, LIC_MALFORMED, "bad %s", "\xff\x01\x7f ok \xe2\x82\xac");
	assert_string_equal(error.message, "bad ??? ok \xe2\x82\xac");
	lic_error_set(&error, LIC_MALFORMED, "%s",
		      "\xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf"); /* surrogate, >U+10FFFF, overlong */
	assert_string_equal(error.message, "??? ???? ??");
	assert_int_equal(error.status, LIC_MALFORMED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_base64_vectors),
	    cmocka_unit_test(test_base64_refusals),
	    cmocka_unit_test(test_hex),
	    cmocka_unit_test(test_utc_time),
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_error_sentences_are_clean_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
