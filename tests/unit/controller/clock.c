/* Unit tests for controller/clock.c: the real and the fake clock. */
#include "test.h"

#include "clock.h"

#include <pthread.h>

TEST(clock_fake_stands_still_until_advanced)
{
	struct ctl_clock *c = NULL;
	CHECK_INT(ctl_clock_fake_new(&c, 1000, 5 * CTL_SEC), 0);
	CHECK_INT(ctl_clock_now(c), 1000);
	CHECK_INT(ctl_clock_now(c), 1000);
	CHECK_INT(ctl_clock_wall(c), 5 * CTL_SEC);
	ctl_clock_advance(c, 3 * CTL_MSEC);
	CHECK_INT(ctl_clock_now(c), 1000 + 3 * CTL_MSEC);
	CHECK_INT(ctl_clock_wall(c), 5 * CTL_SEC + 3 * CTL_MSEC);
	ctl_clock_free(c);
}

TEST(clock_real_is_monotonic_and_wall_is_recent)
{
	struct ctl_clock *c = ctl_clock_real();
	int64_t a = ctl_clock_now(c), b = ctl_clock_now(c);
	CHECK(b >= a);
	CHECK(ctl_clock_now(NULL) >= b);
	CHECK(ctl_clock_wall(c) > INT64_C(1600000000) * CTL_SEC); /* after 2020 */
	ctl_clock_free(c); /* a no-op on the real clock */
}

struct sleeper {
	struct ctl_clock *clock;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int64_t deadline;
	int woke;
};

static void *sleep_until_deadline(void *arg)
{
	struct sleeper *s = arg;
	pthread_mutex_lock(&s->mu);
	while (ctl_clock_now(s->clock) < s->deadline)
		ctl_clock_wait(s->clock, &s->cond, &s->mu, s->deadline);
	s->woke = 1;
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

TEST(clock_advance_wakes_subscribed_waiter)
{
	struct sleeper s = {.woke = 0};
	pthread_t t;
	ctl_clock_fake_new(&s.clock, 0, 0);
	pthread_mutex_init(&s.mu, NULL);
	ctl_clock_cond_init(&s.cond);
	ctl_clock_subscribe(s.clock, &s.mu, &s.cond);
	s.deadline = 10 * CTL_SEC;
	pthread_create(&t, NULL, sleep_until_deadline, &s);
	/* Short of the deadline, then past it: however the waiter and these
	 * advances interleave, it wakes only once the deadline is reached. */
	ctl_clock_advance(s.clock, 9 * CTL_SEC);
	ctl_clock_advance(s.clock, 1 * CTL_SEC);
	pthread_join(t, NULL);
	CHECK_INT(s.woke, 1);
	CHECK(ctl_clock_now(s.clock) >= s.deadline);
	ctl_clock_unsubscribe(s.clock, &s.mu, &s.cond);
	pthread_cond_destroy(&s.cond);
	pthread_mutex_destroy(&s.mu);
	ctl_clock_free(s.clock);
}

TEST(clock_real_wait_returns_at_deadline)
{
	struct sleeper s = {.clock = ctl_clock_real()};
	pthread_mutex_init(&s.mu, NULL);
	ctl_clock_cond_init(&s.cond);
	s.deadline = ctl_clock_now(s.clock) + 5 * CTL_MSEC;
	sleep_until_deadline(&s); /* nobody signals: only the deadline ends it */
	CHECK_INT(s.woke, 1);
	CHECK(ctl_clock_now(s.clock) >= s.deadline);
	pthread_cond_destroy(&s.cond);
	pthread_mutex_destroy(&s.mu);
}

TEST_MAIN(T(clock_fake_stands_still_until_advanced), T(clock_real_is_monotonic_and_wall_is_recent),
	  T(clock_advance_wakes_subscribed_waiter), T(clock_real_wait_returns_at_deadline))
