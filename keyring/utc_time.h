/*
 * utc_time.h: the two textual time forms of licensor: UTC timestamps
 * (YYYY-MM-DDThh:mm:ssZ, exactly) and durations (90s, 45m, 6h, 14d).
 */
#ifndef LICENSOR_KEYRING_UTC_TIME_H
#define LICENSOR_KEYRING_UTC_TIME_H

#include <stddef.h>
#include <stdint.h>

#include "licensor.h"

#define UTC_TIME_LENGTH 21 /* "2026-11-23T17:00:00Z" and a NUL */

void utc_time_format(int64_t seconds, char out[UTC_TIME_LENGTH]);
lic_status utc_time_parse(const char *text, int64_t *seconds, lic_error *error);

/* Longest accepted duration: 10 years. */
#define DURATION_MAX_SECONDS (3650LL * 86400)

/* "90s", "45m", "6h", "14d", also "0s". A number without unit is refused. */
lic_status duration_parse(const char *text, int64_t *seconds, lic_error *error);

/* The shortest exact form: 86400 → "1d", 5400 → "90m", 61 → "61s". */
void duration_format(int64_t seconds, char *out, size_t size);

#endif
