/*
 * clock.c: the real and the fake clock. See clock.h.
 *
 * A fake clock owns its time (two atomics, so readers never lock) and the
 * list of subscribed (mutex, condition) pairs. ctl_clock_advance() stores
 * the new time first and then takes each subscriber's mutex to broadcast:
 * a waiter holds its mutex from reading the time until it is inside
 * pthread_cond_wait, so it either sees the new time or gets the broadcast.
 * Lock order is the clock's mutex, then a subscriber's mutex; subscribers
 * never take the clock's mutex while holding their own.
 */
#include "clock.h"

#include "xalloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct waiter {
	pthread_mutex_t *mu;
	pthread_cond_t *cond;
};

struct ctl_clock {
	int fake;
	_Atomic int64_t mono;
	_Atomic int64_t wall;
	pthread_mutex_t mu;      /* guards waiters */
	struct waiter *waiters;
	size_t nwaiters, cap;
};

static struct ctl_clock real_clock = {.fake = 0};

static int64_t read_clock(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * CTL_SEC + ts.tv_nsec;
}

struct ctl_clock *ctl_clock_real(void)
{
	return &real_clock;
}

int ctl_clock_fake_new(struct ctl_clock **out, int64_t mono_ns, int64_t wall_ns)
{
	struct ctl_clock *c = xcalloc(1, sizeof(*c));
	c->fake = 1;
	atomic_init(&c->mono, mono_ns);
	atomic_init(&c->wall, wall_ns);
	pthread_mutex_init(&c->mu, NULL);
	*out = c;
	return 0;
}

void ctl_clock_free(struct ctl_clock *c)
{
	if (!c || !c->fake)
		return;
	pthread_mutex_destroy(&c->mu);
	free(c->waiters);
	free(c);
}

int64_t ctl_clock_now(const struct ctl_clock *c)
{
	if (c && c->fake)
		return atomic_load(&c->mono);
	return read_clock(CLOCK_MONOTONIC);
}

int64_t ctl_clock_wall(const struct ctl_clock *c)
{
	if (c && c->fake)
		return atomic_load(&c->wall);
	return read_clock(CLOCK_REALTIME);
}

void ctl_clock_advance(struct ctl_clock *c, int64_t ns)
{
	if (!c || !c->fake)
		return;
	pthread_mutex_lock(&c->mu);
	atomic_fetch_add(&c->mono, ns);
	atomic_fetch_add(&c->wall, ns);
	for (size_t i = 0; i < c->nwaiters; i++) {
		pthread_mutex_lock(c->waiters[i].mu);
		pthread_cond_broadcast(c->waiters[i].cond);
		pthread_mutex_unlock(c->waiters[i].mu);
	}
	pthread_mutex_unlock(&c->mu);
}

void ctl_clock_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}

void ctl_clock_subscribe(struct ctl_clock *c, pthread_mutex_t *mu, pthread_cond_t *cond)
{
	if (!c || !c->fake)
		return;
	pthread_mutex_lock(&c->mu);
	if (c->nwaiters == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 4;
		c->waiters = xrealloc(c->waiters, c->cap * sizeof(*c->waiters));
	}
	c->waiters[c->nwaiters++] = (struct waiter){mu, cond};
	pthread_mutex_unlock(&c->mu);
}

void ctl_clock_unsubscribe(struct ctl_clock *c, pthread_mutex_t *mu, pthread_cond_t *cond)
{
	if (!c || !c->fake)
		return;
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->nwaiters; i++) {
		if (c->waiters[i].mu == mu && c->waiters[i].cond == cond) {
			c->waiters[i] = c->waiters[--c->nwaiters];
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
}

void ctl_clock_wait(struct ctl_clock *c, pthread_cond_t *cond, pthread_mutex_t *mu,
		    int64_t deadline_ns)
{
	if ((c && c->fake) || deadline_ns < 0) {
		pthread_cond_wait(cond, mu);
		return;
	}
	struct timespec ts = {
		.tv_sec = (time_t)(deadline_ns / CTL_SEC),
		.tv_nsec = (long)(deadline_ns % CTL_SEC),
	};
	int rc = pthread_cond_timedwait(cond, mu, &ts);
	(void)rc; /* ETIMEDOUT and a signal look the same to a caller that re-checks */
}
