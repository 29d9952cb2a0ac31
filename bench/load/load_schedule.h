/*
 * load_schedule.h: the open-loop schedule of licensor-load (DESIGN.md §8).
 *
 * Request i (from 0) is due at start + i/rate, whatever happened to the
 * requests before it: a stalled server does not slow the schedule down, and
 * each request's latency is measured from its due time (no coordinated
 * omission, as in wrk2). Times are CLOCK_MONOTONIC nanoseconds. Pure
 * functions, so the rate is tested by counting, not timing.
 */
#ifndef LICENSOR_BENCH_LOAD_SCHEDULE_H
#define LICENSOR_BENCH_LOAD_SCHEDULE_H

#include <stdint.h>

/* When request `index` is due at `rate` requests per second (rate > 0). */
uint64_t load_schedule_due_time(uint64_t start_ns, double rate, uint64_t index);
/* How many requests are due at `now_ns`: those with due time <= now (0 before start). */
uint64_t load_schedule_due_count(uint64_t start_ns, double rate, uint64_t now_ns);
/* How many requests a run of duration_ns offers: those due strictly before start + duration. */
uint64_t load_schedule_total(double rate, uint64_t duration_ns);

#endif
