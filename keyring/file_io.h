/*
 * file_io.h: the crash-safe file primitives every store write goes through.
 *
 * Promise of file_write_atomic: after it returns LIC_OK the new contents are
 * on disk under `path`; if the process dies at any point before, `path` holds
 * the old contents (or does not exist, if it did not). It writes `path.tmp`,
 * fsyncs it, renames it over `path` and fsyncs the directory.
 *
 * The caller must be the only writer of `path` (the store's exclusive lock):
 * the temporary name is fixed, so a file left by a killed writer is replaced
 * by the next write instead of piling up.
 */
#ifndef LICENSOR_KEYRING_FILE_IO_H
#define LICENSOR_KEYRING_FILE_IO_H

#include <stddef.h>
#include <sys/types.h>

#include "licensor.h"

/* Flags of file_write_atomic. */
enum {
	FILE_WRITE_NO_SYNC = 1, /* skip fsyncs: only for bulk-built benchmark stores */
};

lic_status file_write_atomic(const char *path, const void *data, size_t length, mode_t mode, int flags,
			     lic_error *error);

/* Writes a file that must not exist yet (an export's output): a unique
 * temporary beside `path` (0600), fsync, then renameat2(RENAME_NOREPLACE)
 * (or link() where the file system lacks it) and an fsync of the directory.
 * Never replaces anything at `path`, not even a dangling symbolic link
 * (LIC_IO "exists already"); on any failure nothing is left behind. Safe
 * without a lock: two writers cannot both create the name. */
lic_status file_write_new(const char *path, const void *data, size_t length, lic_error *error);

/* Reads the whole file into a new NUL-terminated buffer (*out, freed with
 * free(); *length excludes the NUL). Files over max_length are refused with
 * LIC_TOO_LARGE. A missing file is LIC_IO with errno ENOENT kept in errno. */
lic_status file_read_all(const char *path, size_t max_length, char **out, size_t *length, lic_error *error);

/* fsync of the directory holding `path` (the directory itself if it is one). */
lic_status file_sync_directory(const char *directory, lic_error *error);

/* fsync of the directory that holds `path`: makes a new entry in it durable. */
lic_status file_sync_parent(const char *path, lic_error *error);

/* Creates a new private directory $TMPDIR/<prefix>.XXXXXX (mkdtemp, 0700;
 * /tmp when TMPDIR is unset) and writes its path to out. */
lic_status file_make_temporary_directory(const char *prefix, char *out, size_t size, lic_error *error);

/* Creates a directory with mode 0700 when it does not exist yet. */
lic_status file_make_directory(const char *path, lic_error *error);

/* Joins directory and name into buffer; LIC_TOO_LARGE if it does not fit. */
lic_status file_join(char *buffer, size_t size, const char *directory, const char *name, lic_error *error);

#endif
