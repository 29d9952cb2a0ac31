/*
 * clock.c: the system clock behind lic_clock_system(). Every time the engine
 * reasons about (rollouts, validity, audit times) comes through a lic_clock,
 * so tests and the simulator substitute their own.
 */
#include <time.h>

#include "licensor.h"

static int64_t system_now(void *context)
{
	(void)context;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	return (int64_t)now.tv_sec;
}

static const lic_clock system_clock = {.now = system_now, .context = NULL};

const lic_clock *lic_clock_system(void)
{
	return &system_clock;
}
