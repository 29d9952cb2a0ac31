/*
 * encoding.h: base64 (RFC 4648, with padding, no line breaks) and lowercase
 * hex, the two text encodings of binary values in licensor's files.
 * Decoders are strict: any character outside the alphabet, bad padding or a
 * wrong length is refused, so one document has exactly one encoding.
 */
#ifndef LICENSOR_KEYRING_ENCODING_H
#define LICENSOR_KEYRING_ENCODING_H

#include <stddef.h>
#include <stdint.h>

#include "licensor.h"

/* Returns a new NUL-terminated base64 string (free()), or NULL when out of memory. */
char *base64_encode(const uint8_t *data, size_t length);

/* Decodes text[0..text_length) into a new buffer (*out, free()). Leading and
 * trailing ASCII whitespace is ignored; whitespace inside is refused. */
lic_status base64_decode(const char *text, size_t text_length, uint8_t **out, size_t *out_length,
			 lic_error *error);

/* Writes 2*length lowercase hex digits and a NUL to out. */
void hex_encode(const uint8_t *data, size_t length, char *out);

/* Decodes exactly 2*length hex digits (either case) into out. */
lic_status hex_decode(const char *text, uint8_t *out, size_t length, lic_error *error);

#endif
