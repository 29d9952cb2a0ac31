/*
 * encoding.c: strict base64 and hex. Written by hand rather than through
 * OpenSSL's EVP_Decode* so that padding and stray characters are refused
 * instead of silently skipped.
 */
#include <stdlib.h>
#include <string.h>

#include "encoding.h"
#include "error.h"

static const char base64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const uint8_t *data, size_t length)
{
	size_t out_length = 4 * ((length + 2) / 3);
	char *out = malloc(out_length + 1);
	if (out == NULL)
		return NULL;
	char *cursor = out;
	size_t i = 0;
	for (; i + 3 <= length; i += 3) {
		uint32_t group = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
		*cursor++ = base64_alphabet[group >> 18];
		*cursor++ = base64_alphabet[(group >> 12) & 63];
		*cursor++ = base64_alphabet[(group >> 6) & 63];
		*cursor++ = base64_alphabet[group & 63];
	}
	if (length - i == 1) {
		uint32_t group = (uint32_t)data[i] << 16;
		*cursor++ = base64_alphabet[group >> 18];
		*cursor++ = base64_alphabet[(group >> 12) & 63];
		*cursor++ = '=';
		*cursor++ = '=';
	} else if (length - i == 2) {
		uint32_t group = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
		*cursor++ = base64_alphabet[group >> 18];
		*cursor++ = base64_alphabet[(group >> 12) & 63];
		*cursor++ = base64_alphabet[(group >> 6) & 63];
		*cursor++ = '=';
	}
	*cursor = '\0';
	return out;
}

/* Decoding tables (generated from the alphabets): the value of each byte, or
 * -1 outside the alphabet. A lookup replaces a chain of range tests; base64 of
 * sealed keys dominates loading a tenant file. */
// clang-format off
static const int8_t base64_values[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
	-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

static const int8_t hex_values[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, -1, -1, -1, -1, -1, -1,
	-1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};
// clang-format on

static int base64_value(unsigned char c)
{
	return base64_values[c];
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

lic_status base64_decode(const char *text, size_t text_length, uint8_t **out, size_t *out_length,
			 lic_error *error)
{
	while (text_length > 0 && is_space(text[0])) {
		text++;
		text_length--;
	}
	while (text_length > 0 && is_space(text[text_length - 1]))
		text_length--;
	if (text_length % 4 != 0)
		return lic_error_set(error, LIC_MALFORMED, "bad base64: length is not a multiple of 4");
	size_t padding = 0;
	if (text_length >= 1 && text[text_length - 1] == '=')
		padding++;
	if (text_length >= 2 && text[text_length - 2] == '=')
		padding++;
	size_t decoded_length = text_length / 4 * 3 - padding;
	uint8_t *decoded = malloc(decoded_length + 1);
	if (decoded == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	size_t written = 0;
	for (size_t i = 0; i < text_length; i += 4) {
		int values[4];
		bool last = i + 4 == text_length;
		for (int j = 0; j < 4; j++) {
			unsigned char c = (unsigned char)text[i + j];
			if (c == '=' && last && j >= 4 - (int)padding) {
				values[j] = 0;
				continue;
			}
			values[j] = base64_value(c);
			if (values[j] < 0) {
				free(decoded);
				return lic_error_set(error, LIC_MALFORMED,
						     "bad base64: unexpected character");
			}
		}
		uint32_t group = (uint32_t)values[0] << 18 | (uint32_t)values[1] << 12 |
				 (uint32_t)values[2] << 6 | (uint32_t)values[3];
		uint8_t bytes[3] = {(uint8_t)(group >> 16), (uint8_t)(group >> 8), (uint8_t)group};
		size_t take = last ? 3 - padding : 3;
		/* Non-canonical encodings (bits set in the padding) are refused. */
		if (last && padding == 1 && (values[2] & 3) != 0)
			goto bad_padding;
		if (last && padding == 2 && (values[1] & 15) != 0)
			goto bad_padding;
		memcpy(decoded + written, bytes, take);
		written += take;
	}
	*out = decoded;
	*out_length = written;
	return LIC_OK;
bad_padding:
	free(decoded);
	return lic_error_set(error, LIC_MALFORMED, "bad base64: non-canonical padding");
}

void hex_encode(const uint8_t *data, size_t length, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < length; i++) {
		out[2 * i] = digits[data[i] >> 4];
		out[2 * i + 1] = digits[data[i] & 15];
	}
	out[2 * length] = '\0';
}

static int hex_value(char c)
{
	return hex_values[(unsigned char)c];
}

lic_status hex_decode(const char *text, uint8_t *out, size_t length, lic_error *error)
{
	if (strnlen(text, 2 * length + 1) != 2 * length)
		return lic_error_set(error, LIC_MALFORMED, "expected %zu hex digits", 2 * length);
	for (size_t i = 0; i < length; i++) {
		int high = hex_value(text[2 * i]);
		int low = hex_value(text[2 * i + 1]);
		if (high < 0 || low < 0)
			return lic_error_set(error, LIC_MALFORMED, "bad hex digit");
		out[i] = (uint8_t)(high << 4 | low);
	}
	return LIC_OK;
}
