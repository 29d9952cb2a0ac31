/*
 * byte_builder.c: see byte_builder.h. Growth doubles, so building n bytes
 * costs O(n) copies; one spare byte is always kept for the terminating NUL.
 */
#include "byte_builder.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void byte_builder_init(struct byte_builder *builder, size_t limit)
{
	memset(builder, 0, sizeof(*builder));
	builder->limit = limit;
}

void byte_builder_cleanup(struct byte_builder *builder)
{
	free(builder->data);
	builder->data = NULL;
	builder->length = builder->capacity = 0;
}

void byte_builder_reset(struct byte_builder *builder)
{
	builder->length = 0;
	builder->failed = false;
	if (builder->data)
		builder->data[0] = '\0';
}

/* Makes room for `extra` more bytes plus the NUL. */
static bool reserve(struct byte_builder *builder, size_t extra)
{
	if (builder->failed)
		return false;
	if (extra > builder->limit || builder->length > builder->limit - extra) {
		builder->failed = true;
		return false;
	}
	size_t needed = builder->length + extra + 1;
	if (needed <= builder->capacity)
		return true;
	size_t capacity = builder->capacity ? builder->capacity : 256;
	while (capacity < needed)
		capacity *= 2;
	char *data = realloc(builder->data, capacity);
	if (!data) {
		builder->failed = true;
		return false;
	}
	builder->data = data;
	builder->capacity = capacity;
	return true;
}

bool byte_builder_append(struct byte_builder *builder, const void *bytes, size_t length)
{
	if (!reserve(builder, length))
		return false;
	if (length)
		memcpy(builder->data + builder->length, bytes, length);
	builder->length += length;
	builder->data[builder->length] = '\0';
	return true;
}

bool byte_builder_append_string(struct byte_builder *builder, const char *text)
{
	return byte_builder_append(builder, text, strlen(text));
}

bool byte_builder_printf(struct byte_builder *builder, const char *format, ...)
{
	char small[256];
	va_list arguments;
	va_start(arguments, format);
	int written = vsnprintf(small, sizeof(small), format, arguments);
	va_end(arguments);
	if (written < 0) {
		builder->failed = true;
		return false;
	}
	if ((size_t)written < sizeof(small))
		return byte_builder_append(builder, small, (size_t)written);
	if (!reserve(builder, (size_t)written))
		return false;
	va_start(arguments, format);
	vsnprintf(builder->data + builder->length, (size_t)written + 1, format, arguments);
	va_end(arguments);
	builder->length += (size_t)written;
	return true;
}

char *byte_builder_release(struct byte_builder *builder, size_t *length)
{
	if (builder->failed || !reserve(builder, 0)) {
		byte_builder_cleanup(builder);
		builder->failed = false;
		return NULL;
	}
	char *data = builder->data;
	*length = builder->length;
	builder->data = NULL;
	builder->length = builder->capacity = 0;
	return data;
}
