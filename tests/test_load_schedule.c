/*
 * test_load_schedule.c: licensor-load's open-loop schedule
 * (bench/load/load_schedule.c) sends at the offered rate, counted, not timed.
 *
 * A clock is stepped by hand, by random amounts from a fixed PRNG and across
 * every due time exactly; at each step the count of due requests must be the
 * number of i with start + i/rate <= now, and never go backwards. Over a run
 * of S seconds at R/s it must offer R × S requests (± 1 for a non-integer
 * product). The schedule depends only on the clock: answers that come late
 * (a stalled server) do not change it.
 *
 * The schedule lives in bench/load/, not in the library, so this file
 * compiles it in by including its source.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "bench/load/load_schedule.c"

#define SECOND 1000000000ull

static uint64_t prng_state = 0x2545f4914f6cdd1dull;

static uint64_t prng_next(void)
{
	prng_state ^= prng_state >> 12;
	prng_state ^= prng_state << 25;
	prng_state ^= prng_state >> 27;
	return prng_state * 0x2545f4914f6cdd1dull;
}

static void test_due_times(void **state)
{
	uint64_t start = 5 * SECOND;
	assert_int_equal(load_schedule_due_time(start, 200, 0), start);
	assert_int_equal(load_schedule_due_time(start, 200, 1), start + 5000000);
	assert_int_equal(load_schedule_due_time(start, 200, 400), start + 2 * SECOND);
	assert_int_equal(load_schedule_due_time(start, 3, 1), start + 333333333);
}

static void test_due_count_edges(void **state)
{
	uint64_t start = 7 * SECOND;
	assert_int_equal(load_schedule_due_count(start, 200, 0), 0);
	assert_int_equal(load_schedule_due_count(start, 200, start - 1), 0);
	assert_int_equal(load_schedule_due_count(start, 200, start), 1); /* request 0 is due at start */
	assert_int_equal(load_schedule_due_count(start, 200, start + 4999999), 1);
	assert_int_equal(load_schedule_due_count(start, 200, start + 5000000), 2);
	assert_int_equal(load_schedule_due_count(start, 200, start + SECOND), 201);
	assert_int_equal(load_schedule_due_count(start, 200, start + SECOND - 1), 200);
}

static void test_totals(void **state)
{
	assert_int_equal(load_schedule_total(200, 2 * SECOND), 400);
	assert_int_equal(load_schedule_total(1000, 5 * SECOND), 5000);
	assert_int_equal(load_schedule_total(3, SECOND), 3);
	assert_int_equal(load_schedule_total(2.5, 2 * SECOND), 5);
	assert_int_equal(load_schedule_total(0.5, 3 * SECOND), 2); /* at 0 s and 2 s */
	assert_int_equal(load_schedule_total(200, 0), 0);
	/* A non-integer product: within one of rate × duration. */
	uint64_t total = load_schedule_total(333.3, 3 * SECOND);
	assert_true(total >= 999 && total <= 1000);
}

/* Steps a hand clock through a run; the due count matches a brute-force count at every step. */
static void step_through(double rate, uint64_t duration)
{
	uint64_t start = 123456789;
	uint64_t now = start, previous = 0, brute = 0;
	while (now < start + duration) {
		while (load_schedule_due_time(start, rate, brute) <= now)
			brute++;
		uint64_t due = load_schedule_due_count(start, rate, now);
		assert_int_equal(due, brute);
		assert_true(due >= previous);
		previous = due;
		/* half the steps land exactly on the next due time, the others at random */
		if (prng_next() % 2 == 0)
			now = load_schedule_due_time(start, rate, brute);
		else
			now += prng_next() % (uint64_t)(3e9 / rate) + 1;
	}
	uint64_t total = load_schedule_total(rate, duration);
	assert_true((double)total >= rate * (double)duration / 1e9 - 1);
	assert_true((double)total <= rate * (double)duration / 1e9 + 1);
	assert_int_equal(load_schedule_due_count(start, rate, start + duration - 1), total);
}

static void test_rates_counted(void **state)
{
	step_through(200, 2 * SECOND);
	step_through(1000, 5 * SECOND);
	step_through(3000, SECOND);
	step_through(7.7, 10 * SECOND);
	step_through(99999, SECOND / 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_due_times),
	    cmocka_unit_test(test_due_count_edges),
	    cmocka_unit_test(test_totals),
	    cmocka_unit_test(test_rates_counted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
