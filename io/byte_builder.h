/*
 * byte_builder.h: output bytes built into one growing buffer that cannot
 * overflow.
 *
 * A builder has a limit; an append that would pass it (or an allocation that
 * fails) marks the builder failed and every later append is ignored, so a
 * caller builds a whole response and checks `failed` once at the end. The
 * buffer is heap memory owned by the builder until byte_builder_release hands
 * it over. Not for secrets: the buffer is not wiped.
 */
#ifndef LICENSOR_IO_BYTE_BUILDER_H
#define LICENSOR_IO_BYTE_BUILDER_H

#include <stdbool.h>
#include <stddef.h>

struct byte_builder {
	char *data;
	size_t length, capacity;
	size_t limit; /* the most bytes this builder may hold */
	bool failed;
};

void byte_builder_init(struct byte_builder *builder, size_t limit);
/* Frees the buffer (if not released). */
void byte_builder_cleanup(struct byte_builder *builder);
/* Empties the builder, keeping its buffer for reuse. */
void byte_builder_reset(struct byte_builder *builder);

bool byte_builder_append(struct byte_builder *builder, const void *bytes, size_t length);
bool byte_builder_append_string(struct byte_builder *builder, const char *text);
bool byte_builder_printf(struct byte_builder *builder, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* Hands the buffer (NUL-terminated, `*length` bytes before the NUL) to the
 * caller, who frees it with free(); NULL when the builder failed. The builder
 * is left empty. */
char *byte_builder_release(struct byte_builder *builder, size_t *length);

#endif
