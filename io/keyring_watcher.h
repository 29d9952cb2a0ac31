/*
 * keyring_watcher.h: the server's thread that keeps the keyring current.
 *
 * It waits on the keyring's inotify fd (lic_keyring_watch) and on a reload
 * request (SIGHUP), and swaps in a new snapshot when the store changed: a
 * rekey, revoke or disable made by any `licensor` command is served within a
 * second. The reload (a directory scan) runs here, never on the I/O thread,
 * and readers are not blocked by the swap (RCU), so no request waits for it.
 * Once a second it also gives the engine its tick (due audit summaries).
 */
#ifndef LICENSOR_IO_KEYRING_WATCHER_H
#define LICENSOR_IO_KEYRING_WATCHER_H

#include <stdint.h>

#include "licensor.h"

struct keyring_watcher;

lic_status keyring_watcher_start(lic_keyring *keyring, lic_engine *engine, struct keyring_watcher **out,
				 lic_error *error);
/* Asks for a reload now (async-signal-safe: one eventfd write). */
void keyring_watcher_request_reload(struct keyring_watcher *watcher);
/* Snapshots swapped in so far, and when the last one was (unix seconds, 0: never). */
uint64_t keyring_watcher_reloads(struct keyring_watcher *watcher, int64_t *last_reload_at);
/* Stops the thread and frees. NULL is a no-op. */
void keyring_watcher_stop(struct keyring_watcher *watcher);

#endif
