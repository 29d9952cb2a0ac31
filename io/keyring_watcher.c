/*
 * keyring_watcher.c: see keyring_watcher.h.
 */
#include "io/keyring_watcher.h"

#include "keyring/error.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct keyring_watcher {
	lic_keyring *keyring;
	lic_engine *engine;
	int watch_fd;  /* the keyring's; not ours to close */
	int reload_fd; /* eventfd: SIGHUP */
	int stop_fd;   /* eventfd: stop */
	atomic_uint_fast64_t reloads;
	atomic_int_fast64_t last_reload_at;
	pthread_t thread;
};

static void drain_eventfd(int fd)
{
	uint64_t value;
	while (read(fd, &value, sizeof value) > 0)
		;
}

static void note_reload(struct keyring_watcher *watcher)
{
	atomic_fetch_add(&watcher->reloads, 1);
	atomic_store(&watcher->last_reload_at, (int_fast64_t)time(NULL));
}

static void *keyring_watcher_main(void *argument)
{
	struct keyring_watcher *watcher = argument;
	for (;;) {
		struct pollfd fds[3] = {
		    {.fd = watcher->stop_fd, .events = POLLIN},
		    {.fd = watcher->reload_fd, .events = POLLIN},
		    {.fd = watcher->watch_fd, .events = POLLIN},
		};
		int ready = poll(fds, 3, 1000);
		if (ready < 0 && errno != EINTR)
			break;
		if (fds[0].revents)
			break;
		lic_error error = {0};
		if (fds[1].revents) {
			drain_eventfd(watcher->reload_fd);
			if (lic_keyring_reload(watcher->keyring, &error) == LIC_OK) {
				note_reload(watcher);
				fprintf(stderr, "licensor: keyring reloaded (SIGHUP)\n");
			} else {
				fprintf(
				    stderr,
				    "licensor: reload failed, still serving the previous keyring: %s: %s\n",
				    lic_status_code(error.status), error.message);
			}
		}
		if (fds[2].revents) {
			bool reloaded = false;
			if (lic_keyring_watch_process(watcher->keyring, &reloaded, &error) != LIC_OK)
				fprintf(
				    stderr,
				    "licensor: reload failed, still serving the previous keyring: %s: %s\n",
				    lic_status_code(error.status), error.message);
			else if (reloaded)
				note_reload(watcher);
		}
		lic_engine_tick(watcher->engine);
	}
	return NULL;
}

lic_status keyring_watcher_start(lic_keyring *keyring, lic_engine *engine, struct keyring_watcher **out,
				 lic_error *error)
{
	struct keyring_watcher *watcher = calloc(1, sizeof *watcher);
	if (watcher == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	watcher->keyring = keyring;
	watcher->engine = engine;
	watcher->reload_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	watcher->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	lic_status status = LIC_OK;
	if (watcher->reload_fd < 0 || watcher->stop_fd < 0) {
		status = lic_error_set(error, LIC_INTERNAL, "cannot make an eventfd: %s", strerror(errno));
		goto fail;
	}
	status = lic_keyring_watch(keyring, &watcher->watch_fd, error);
	if (status != LIC_OK)
		goto fail;
	if (pthread_create(&watcher->thread, NULL, keyring_watcher_main, watcher) != 0) {
		status = lic_error_set(error, LIC_INTERNAL, "cannot start the keyring watcher thread");
		goto fail;
	}
	*out = watcher;
	return LIC_OK;
fail:
	if (watcher->reload_fd >= 0)
		close(watcher->reload_fd);
	if (watcher->stop_fd >= 0)
		close(watcher->stop_fd);
	free(watcher);
	return status;
}

void keyring_watcher_request_reload(struct keyring_watcher *watcher)
{
	uint64_t one = 1;
	ssize_t written = write(watcher->reload_fd, &one, sizeof one);
	(void)written;
}

uint64_t keyring_watcher_reloads(struct keyring_watcher *watcher, int64_t *last_reload_at)
{
	if (last_reload_at)
		*last_reload_at = (int64_t)atomic_load(&watcher->last_reload_at);
	return (uint64_t)atomic_load(&watcher->reloads);
}

void keyring_watcher_stop(struct keyring_watcher *watcher)
{
	if (watcher == NULL)
		return;
	uint64_t one = 1;
	ssize_t written = write(watcher->stop_fd, &one, sizeof one);
	(void)written;
	pthread_join(watcher->thread, NULL);
	close(watcher->reload_fd);
	close(watcher->stop_fd);
	free(watcher);
}
