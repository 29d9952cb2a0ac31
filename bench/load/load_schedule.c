/*
 * load_schedule.c: due times of an open-loop schedule.
 *
 * The count is first estimated in floating point, then corrected against
 * load_schedule_due_time itself, so that "due count" and "due time" never
 * disagree by one at the edges (request i is counted exactly when its due
 * time has passed).
 */
#include "load_schedule.h"

uint64_t load_schedule_due_time(uint64_t start_ns, double rate, uint64_t index)
{
	return start_ns + (uint64_t)((double)index * 1e9 / rate);
}

uint64_t load_schedule_due_count(uint64_t start_ns, double rate, uint64_t now_ns)
{
	if (now_ns < start_ns)
		return 0;
	uint64_t count = (uint64_t)((double)(now_ns - start_ns) * rate / 1e9) + 1;
	while (count > 0 && load_schedule_due_time(start_ns, rate, count - 1) > now_ns)
		count--;
	while (load_schedule_due_time(start_ns, rate, count) <= now_ns)
		count++;
	return count;
}

uint64_t load_schedule_total(double rate, uint64_t duration_ns)
{
	if (duration_ns == 0)
		return 0;
	return load_schedule_due_count(0, rate, duration_ns - 1);
}
