/*
 * file_io.c: atomic replace (temp file, fsync, rename, directory fsync), new
 * files that never replace anything (file_write_new),
 * bounded whole-file reads, and directory helpers. Every file licensor writes
 * is created with the mode its caller gives (0600 for anything holding keys).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "file_io.h"

static lic_status write_fully(int fd, const void *data, size_t length)
{
	const char *cursor = data;
	while (length > 0) {
		ssize_t written = write(fd, cursor, length);
		if (written < 0) {
			if (errno == EINTR)
				continue;
			return LIC_IO;
		}
		cursor += written;
		length -= (size_t)written;
	}
	return LIC_OK;
}

static void directory_of(const char *path, char *out, size_t size)
{
	const char *slash = strrchr(path, '/');
	if (slash == NULL) {
		snprintf(out, size, ".");
	} else if (slash == path) {
		snprintf(out, size, "/");
	} else {
		snprintf(out, size, "%.*s", (int)(slash - path), path);
	}
}

lic_status file_sync_directory(const char *directory, lic_error *error)
{
	int fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return lic_error_set(error, LIC_IO, "cannot open directory %s: %s", directory,
				     strerror(errno));
	int rc = fsync(fd);
	int saved = errno;
	close(fd);
	if (rc != 0)
		return lic_error_set(error, LIC_IO, "cannot sync directory %s: %s", directory,
				     strerror(saved));
	return LIC_OK;
}

lic_status file_sync_parent(const char *path, lic_error *error)
{
	char directory[PATH_MAX];
	directory_of(path, directory, sizeof directory);
	return file_sync_directory(directory, error);
}

lic_status file_write_atomic(const char *path, const void *data, size_t length, mode_t mode, int flags,
			     lic_error *error)
{
	lic_status status = LIC_OK;
	char temp_path[PATH_MAX];
	char directory[PATH_MAX];
	int fd = -1;
	bool temp_exists = false;

	if (snprintf(temp_path, sizeof temp_path, "%s.tmp", path) >= (int)sizeof temp_path)
		LIC_FAIL(error, LIC_TOO_LARGE, "path too long: %s", path);
	directory_of(path, directory, sizeof directory);

	/* A writer killed before its rename left this file: the lock says it is stale. */
	if (unlink(temp_path) != 0 && errno != ENOENT)
		LIC_FAIL(error, LIC_IO, "cannot remove stale %s: %s", temp_path, strerror(errno));
	fd = open(temp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		LIC_FAIL(error, LIC_IO, "cannot create %s: %s", temp_path, strerror(errno));
	temp_exists = true;
	/* The umask must not loosen or tighten what the caller asked for. */
	if (fchmod(fd, mode) != 0)
		LIC_FAIL(error, LIC_IO, "cannot set mode of %s: %s", temp_path, strerror(errno));
	if (write_fully(fd, data, length) != LIC_OK)
		LIC_FAIL(error, LIC_IO, "cannot write %s: %s", temp_path, strerror(errno));
	if (!(flags & FILE_WRITE_NO_SYNC) && fsync(fd) != 0)
		LIC_FAIL(error, LIC_IO, "cannot sync %s: %s", temp_path, strerror(errno));
	if (close(fd) != 0) {
		fd = -1;
		LIC_FAIL(error, LIC_IO, "cannot close %s: %s", temp_path, strerror(errno));
	}
	fd = -1;
	if (rename(temp_path, path) != 0)
		LIC_FAIL(error, LIC_IO, "cannot replace %s: %s", path, strerror(errno));
	temp_exists = false;
	if (!(flags & FILE_WRITE_NO_SYNC))
		LIC_TRY(file_sync_directory(directory, error));
out:
	if (fd >= 0)
		close(fd);
	if (temp_exists)
		unlink(temp_path);
	return status;
}

lic_status file_read_all(const char *path, size_t max_length, char **out, size_t *length, lic_error *error)
{
	lic_status status = LIC_OK;
	char *buffer = NULL;
	size_t used = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int saved = errno;
		lic_error_set(error, LIC_IO, "cannot read %s: %s", path, strerror(saved));
		errno = saved;
		return LIC_IO;
	}
	struct stat info;
	if (fstat(fd, &info) != 0)
		LIC_FAIL(error, LIC_IO, "cannot stat %s: %s", path, strerror(errno));
	if (!S_ISREG(info.st_mode))
		LIC_FAIL(error, LIC_IO, "%s is not a regular file", path);
	if ((size_t)info.st_size > max_length)
		LIC_FAIL(error, LIC_TOO_LARGE, "%s is larger than %zu bytes", path, max_length);
	size_t capacity = (size_t)info.st_size + 1;
	buffer = malloc(capacity);
	if (buffer == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory reading %s", path);
	for (;;) {
		if (used + 1 >= capacity) {
			/* The file grew since fstat: accept up to max_length. */
			if (capacity > max_length)
				LIC_FAIL(error, LIC_TOO_LARGE, "%s is larger than %zu bytes", path,
					 max_length);
			size_t grown = capacity * 2 > max_length + 1 ? max_length + 1 : capacity * 2;
			char *bigger = realloc(buffer, grown);
			if (bigger == NULL)
				LIC_FAIL(error, LIC_INTERNAL, "out of memory reading %s", path);
			buffer = bigger;
			capacity = grown;
		}
		ssize_t got = read(fd, buffer + used, capacity - 1 - used);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			LIC_FAIL(error, LIC_IO, "cannot read %s: %s", path, strerror(errno));
		}
		if (got == 0)
			break;
		used += (size_t)got;
	}
	buffer[used] = '\0';
	*out = buffer;
	*length = used;
	buffer = NULL;
out:
	free(buffer);
	close(fd);
	return status;
}

lic_status file_make_temporary_directory(const char *prefix, char *out, size_t size, lic_error *error)
{
	const char *temporary = getenv("TMPDIR");
	if (temporary == NULL || temporary[0] == '\0')
		temporary = "/tmp";
	if (snprintf(out, size, "%s/%s.XXXXXX", temporary, prefix) >= (int)size) {
		out[0] = '\0';
		return lic_error_set(error, LIC_TOO_LARGE, "the temporary directory path is too long");
	}
	if (mkdtemp(out) == NULL) {
		int saved = errno;
		out[0] = '\0';
		return lic_error_set(error, LIC_IO, "cannot create a temporary directory in %s: %s",
				     temporary, strerror(saved));
	}
	return LIC_OK;
}

lic_status file_make_directory(const char *path, lic_error *error)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return lic_error_set(error, LIC_IO, "cannot create directory %s: %s", path, strerror(errno));
	return LIC_OK;
}

lic_status file_join(char *buffer, size_t size, const char *directory, const char *name, lic_error *error)
{
	if (snprintf(buffer, size, "%s/%s", directory, name) >= (int)size)
		return lic_error_set(error, LIC_TOO_LARGE, "path too long: %s/%s", directory, name);
	return LIC_OK;
}

lic_status file_write_new(const char *path, const void *data, size_t length, lic_error *error)
{
	lic_status status = LIC_OK;
	char temp[PATH_MAX];
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	int directory_length = slash ? (int)(slash - path + 1) : 0;
	int fd = -1;
	bool temp_exists = false, created = false;
	const uint8_t *cursor = data;
	size_t left = length;
	if (snprintf(temp, sizeof temp, "%.*s.%s.XXXXXX", directory_length, path, name) >= (int)sizeof temp)
		LIC_FAIL(error, LIC_TOO_LARGE, "path too long: %.200s", path);
	/* A unique temporary name beside the target (0600 from mkostemp). */
	fd = mkostemp(temp, O_CLOEXEC);
	if (fd < 0)
		LIC_FAIL(error, LIC_IO, "cannot create a file beside %.300s: %s", path, strerror(errno));
	temp_exists = true;
	if (fchmod(fd, 0600) != 0)
		LIC_FAIL(error, LIC_IO, "cannot set the mode of %.300s: %s", temp, strerror(errno));
	while (left > 0) {
		ssize_t written = write(fd, cursor, left);
		if (written < 0 && errno == EINTR)
			continue;
		if (written <= 0)
			LIC_FAIL(error, LIC_IO, "cannot write %.300s: %s", temp, strerror(errno));
		cursor += written;
		left -= (size_t)written;
	}
	if (fsync(fd) != 0)
		LIC_FAIL(error, LIC_IO, "cannot sync %.300s: %s", temp, strerror(errno));
	if (close(fd) != 0) {
		fd = -1;
		LIC_FAIL(error, LIC_IO, "cannot close %.300s: %s", temp, strerror(errno));
	}
	fd = -1;
	/* The whole file appears under its name at once, and never replaces
	 * anything there (a file, a directory or a symbolic link, even a
	 * dangling one). A file system without RENAME_NOREPLACE: link(), which
	 * never replaces either. */
	if (renameat2(AT_FDCWD, temp, AT_FDCWD, path, RENAME_NOREPLACE) == 0) {
		temp_exists = false;
	} else if (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP) {
		if (link(temp, path) != 0)
			goto refused;
	} else {
		goto refused;
	}
	created = true;
	LIC_TRY(file_sync_parent(path, error));
	created = false;
	goto out;
refused:
	if (errno == EEXIST)
		LIC_FAIL(error, LIC_IO,
			 "%.300s exists already: nothing written (remove it or write elsewhere)", path);
	LIC_FAIL(error, LIC_IO, "cannot create %.300s: %s", path, strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	if (temp_exists)
		unlink(temp);
	if (created) /* ours, but not durable: no half-promised file stays */
		unlink(path);
	return status;
}
