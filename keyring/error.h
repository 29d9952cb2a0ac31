/*
 * error.h: the one error idiom of licensor.
 *
 * Every fallible function returns a lic_status and, when it refuses, fills the
 * caller's lic_error with the code and one sentence. Functions have one
 * cleanup path: a `lic_status status = LIC_OK;` local, an `out:` label, and
 * LIC_TRY / LIC_FAIL to get there. Sentences never contain key material.
 */
#ifndef LICENSOR_KEYRING_ERROR_H
#define LICENSOR_KEYRING_ERROR_H

#include "licensor.h"

/* Sets error (if not NULL) to status and the formatted sentence; returns status. */
lic_status lic_error_set(lic_error *error, lic_status status, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* Runs expr; on failure stores its status in `status` and jumps to `out`. */
#define LIC_TRY(expr)                                                                                        \
	do {                                                                                                 \
		lic_status lic_try_status_ = (expr);                                                         \
		if (lic_try_status_ != LIC_OK) {                                                             \
			status = lic_try_status_;                                                            \
			goto out;                                                                            \
		}                                                                                            \
	} while (0)

/* Records a refusal in `error` and `status`, then jumps to `out`. */
#define LIC_FAIL(error, code, ...)                                                                           \
	do {                                                                                                 \
		status = lic_error_set((error), (code), __VA_ARGS__);                                        \
		goto out;                                                                                    \
	} while (0)

#endif
