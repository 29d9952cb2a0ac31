/*
 * watch.c: store change notification (lic_keyring_watch). Every store write
 * ends in a rename into tenants/ (or the store directory for world.xml), so
 * IN_MOVED_TO names the changed file; deletions and a tenants/ directory
 * created by the first write of a world-only store are watched too.
 * Notifications of temporary files (*.tmp) are drained and ignored.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "error.h"
#include "file_io.h"
#include "snapshot.h"

#define WATCH_EVENTS (IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_CLOSE_WRITE)

static bool relevant(const struct inotify_event *event)
{
	if (event->len == 0)
		return false;
	size_t length = strlen(event->name);
	if (length > 4 && strcmp(event->name + length - 4, ".tmp") == 0)
		return false;
	return (length > 4 && strcmp(event->name + length - 4, ".xml") == 0) ||
	       strcmp(event->name, "tenants") == 0;
}

/* Adds the watch on tenants/ once it exists (a world-only store gets it at its first write). */
static void watch_tenants(struct keyring_watch *watch, const char *directory)
{
	if (watch->tenants_descriptor >= 0)
		return;
	char path[PATH_MAX];
	if (file_join(path, sizeof path, directory, "tenants", NULL) == LIC_OK)
		watch->tenants_descriptor = inotify_add_watch(watch->fd, path, WATCH_EVENTS | IN_ONLYDIR);
}

lic_status lic_keyring_watch(lic_keyring *keyring, int *fd, lic_error *error)
{
	struct keyring_watch *watch = keyring_watch_state(keyring);
	if (watch->fd >= 0) {
		*fd = watch->fd;
		return LIC_OK;
	}
	const char *directory = keyring_store(keyring)->directory;
	int descriptor = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (descriptor < 0)
		return lic_error_set(error, LIC_IO, "cannot watch %s: %s", directory, strerror(errno));
	if (inotify_add_watch(descriptor, directory, WATCH_EVENTS | IN_ONLYDIR) < 0) {
		int saved = errno;
		close(descriptor);
		return lic_error_set(error, LIC_IO, "cannot watch %s: %s", directory, strerror(saved));
	}
	watch->fd = descriptor;
	watch->tenants_descriptor = -1;
	watch_tenants(watch, directory);
	*fd = descriptor;
	return LIC_OK;
}

lic_status lic_keyring_watch_process(lic_keyring *keyring, bool *reloaded, lic_error *error)
{
	struct keyring_watch *watch = keyring_watch_state(keyring);
	*reloaded = false;
	if (watch->fd < 0)
		return lic_error_set(error, LIC_USAGE, "lic_keyring_watch was not called");
	bool changed = false;
	char buffer[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t length = read(watch->fd, buffer, sizeof buffer);
		if (length < 0 && errno == EINTR)
			continue;
		if (length < 0 && errno == EAGAIN)
			break;
		if (length <= 0)
			return lic_error_set(error, LIC_IO, "cannot read store notifications: %s",
					     strerror(errno));
		for (char *cursor = buffer; cursor < buffer + length;) {
			const struct inotify_event *event = (const struct inotify_event *)cursor;
			if (event->mask & IN_Q_OVERFLOW)
				changed = true; /* notifications were lost: reload to be sure */
			else if (relevant(event))
				changed = true;
			cursor += sizeof *event + event->len;
		}
	}
	watch_tenants(watch, keyring_store(keyring)->directory);
	if (!changed)
		return LIC_OK;
	lic_status status = lic_keyring_reload(keyring, error);
	if (status == LIC_OK)
		*reloaded = true;
	return status;
}
