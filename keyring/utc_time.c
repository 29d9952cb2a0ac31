/*
 * utc_time.c: strict UTC timestamps and durations. Parsing accepts exactly
 * one form, so a time written by one implementation reads the same in any.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "utc_time.h"

void utc_time_format(int64_t seconds, char out[UTC_TIME_LENGTH])
{
	time_t t = (time_t)seconds;
	struct tm parts;
	if (gmtime_r(&t, &parts) == NULL || parts.tm_year + 1900 > 9999 || parts.tm_year + 1900 < 0) {
		snprintf(out, UTC_TIME_LENGTH, "0000-00-00T00:00:00Z");
		return;
	}
	strftime(out, UTC_TIME_LENGTH, "%Y-%m-%dT%H:%M:%SZ", &parts);
}

static int digits(const char *text, int count)
{
	int value = 0;
	for (int i = 0; i < count; i++) {
		if (text[i] < '0' || text[i] > '9')
			return -1;
		value = value * 10 + (text[i] - '0');
	}
	return value;
}

lic_status utc_time_parse(const char *text, int64_t *seconds, lic_error *error)
{
	if (strlen(text) != UTC_TIME_LENGTH - 1 || text[4] != '-' || text[7] != '-' || text[10] != 'T' ||
	    text[13] != ':' || text[16] != ':' || text[19] != 'Z')
		return lic_error_set(error, LIC_MALFORMED, "bad time (expected YYYY-MM-DDThh:mm:ssZ)");
	int year = digits(text, 4), month = digits(text + 5, 2), day = digits(text + 8, 2);
	int hour = digits(text + 11, 2), minute = digits(text + 14, 2), second = digits(text + 17, 2);
	if (year < 1970 || month < 1 || month > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 ||
	    minute < 0 || minute > 59 || second < 0 || second > 59)
		return lic_error_set(error, LIC_MALFORMED, "bad time (field out of range)");
	struct tm parts = {.tm_year = year - 1900,
			   .tm_mon = month - 1,
			   .tm_mday = day,
			   .tm_hour = hour,
			   .tm_min = minute,
			   .tm_sec = second};
	time_t t = timegm(&parts);
	/* timegm normalises 31 February into March: refuse what does not round-trip. */
	if (parts.tm_mday != day || parts.tm_mon != month - 1)
		return lic_error_set(error, LIC_MALFORMED, "bad time (no such day)");
	*seconds = (int64_t)t;
	return LIC_OK;
}

lic_status duration_parse(const char *text, int64_t *seconds, lic_error *error)
{
	size_t length = strlen(text);
	if (length < 2 || length > 12)
		return lic_error_set(error, LIC_USAGE, "bad duration '%.16s' (use e.g. 90s, 45m, 6h, 14d)",
				     text);
	int64_t unit;
	switch (text[length - 1]) {
	case 's':
		unit = 1;
		break;
	case 'm':
		unit = 60;
		break;
	case 'h':
		unit = 3600;
		break;
	case 'd':
		unit = 86400;
		break;
	default:
		return lic_error_set(error, LIC_USAGE, "bad duration '%.16s' (use e.g. 90s, 45m, 6h, 14d)",
				     text);
	}
	int64_t value = 0;
	for (size_t i = 0; i + 1 < length; i++) {
		if (text[i] < '0' || text[i] > '9')
			return lic_error_set(error, LIC_USAGE,
					     "bad duration '%.16s' (use e.g. 90s, 45m, 6h, 14d)", text);
		value = value * 10 + (text[i] - '0');
		if (value * unit > DURATION_MAX_SECONDS)
			return lic_error_set(error, LIC_USAGE, "duration '%.16s' is longer than 3650d", text);
	}
	*seconds = value * unit;
	return LIC_OK;
}

void duration_format(int64_t seconds, char *out, size_t size)
{
	if (seconds != 0 && seconds % 86400 == 0)
		snprintf(out, size, "%lldd", (long long)(seconds / 86400));
	else if (seconds != 0 && seconds % 3600 == 0)
		snprintf(out, size, "%lldh", (long long)(seconds / 3600));
	else if (seconds != 0 && seconds % 60 == 0)
		snprintf(out, size, "%lldm", (long long)(seconds / 60));
	else
		snprintf(out, size, "%llds", (long long)seconds);
}
