/*
 * replay.h: recorded AcquireLicense bodies fed from a file into an engine's
 * queues, for `licensor replay` (DESIGN.md §6): the issuance pipeline's
 * throughput without sockets.
 *
 * The file is a sequence of records (docs/formats.md, "Replay files"): the
 * body's length in decimal ASCII, '\n', exactly that many bytes, '\n'.
 * A length has no sign, no leading zero and at most REPLAY_BODY_MAX_BYTES.
 *
 * One thread (the caller's) runs an io_uring loop: file reads of
 * REPLAY_CHUNK_BYTES, REPLAY_READS_IN_FLIGHT at a time, and a read of an
 * eventfd that the engine's completion callbacks write. Records are checked
 * and submitted in file order with lic_engine_submit_acquire as they arrive,
 * at most max_in_flight unanswered at once. A body the engine refuses with
 * LIC_OVERLOADED is held and submitted again after the next completion:
 * nothing is dropped, nothing spins.
 *
 * What it promises:
 *   - every record before a bad one is submitted and answered, and nothing
 *     after it is: the run stops with LIC_MALFORMED, a sentence that starts
 *     "replay file record N: " and says how many requests were submitted;
 *   - replay_run returns only once every submitted body has been answered,
 *     so the engine's counters are exact when it returns (the engine counts
 *     a job before it calls back);
 *   - memory: two chunks, one record of at most 1 MiB being assembled, and
 *     the engine's copies of the bodies in flight.
 */
#ifndef LICENSOR_IO_REPLAY_H
#define LICENSOR_IO_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "licensor.h"

#define REPLAY_BODY_MAX_BYTES ((size_t)1024 * 1024) /* the engine's limit for a whole request */
#define REPLAY_CHUNK_BYTES ((size_t)1024 * 1024)
#define REPLAY_READS_IN_FLIGHT 2
#define REPLAY_DEFAULT_IN_FLIGHT 256
#define REPLAY_HTTP_STATUS_LIMIT 600 /* responses_by_status covers 0 … 599 */

struct replay_options {
	const char *path;     /* the record file: a regular file */
	lic_engine *engine;   /* required; not owned */
	unsigned repeat;      /* passes over the file; 0: 1 */
	size_t max_in_flight; /* bodies submitted and not yet answered; 0: REPLAY_DEFAULT_IN_FLIGHT */
	/* Optional: called on the calling thread about once a second while the
	 * run lasts, with the bodies answered so far. */
	void (*progress)(void *context, uint64_t answered, double seconds);
	void *progress_context;
};

/* What a run did. The engine's figures are the differences of
 * lic_engine_get_stats across the run. */
struct replay_report {
	uint64_t records_per_pass;   /* records in the file (0 if the first pass failed) */
	uint64_t requests_submitted; /* bodies the engine accepted */
	uint64_t requests_answered;  /* = requests_submitted once replay_run returns */
	uint64_t overloaded_retries; /* LIC_OVERLOADED answers, each followed by a retry */
	uint64_t max_in_flight_seen; /* the most bodies unanswered at once */
	/* Answers by HTTP status: [200] for an AcquireLicenseResponse, [400] for
	 * a body refused as a whole as not well-formed, …; [0] for a status
	 * outside 100 … 599. */
	uint64_t responses_by_status[REPLAY_HTTP_STATUS_LIMIT];
	double seconds; /* from the first read to the last answer (CLOCK_MONOTONIC) */
	lic_engine_stats engine;
};

/* Replays the file options->repeat times through options->engine and fills
 * *report (also on failure: what was done before it). Errors: LIC_IO (the
 * file cannot be opened or read, or is not a regular file), LIC_MALFORMED (a
 * bad record, or an empty file), LIC_INTERNAL (io_uring, eventfd, memory, or
 * the engine refusing a body for another reason than LIC_OVERLOADED). */
lic_status replay_run(const struct replay_options *options, struct replay_report *report, lic_error *error);

#endif
