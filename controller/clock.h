/*
 * clock.h: an injectable clock, so that time-driven code can be tested
 * without sleeping.
 *
 * A clock gives monotonic time (for deadlines, durations and backoff) and
 * wall time (for timestamps), both in nanoseconds. The real clock reads
 * CLOCK_MONOTONIC and CLOCK_REALTIME. A fake clock stands still until a test
 * moves it with ctl_clock_advance().
 *
 * Waiting for "a condition or a deadline, whichever comes first" goes
 * through ctl_clock_wait(). With the real clock it is a timed wait on a
 * condition variable made with ctl_clock_cond_init() (so the deadline is on
 * CLOCK_MONOTONIC). With a fake clock the deadline is ignored and the wait
 * ends only when the condition is signalled; ctl_clock_advance() signals
 * every (mutex, condition) pair subscribed to the clock, so a waiter wakes,
 * reads the new time and re-checks its deadline. Every waiter must re-check
 * its predicate and the time after each wakeup, as with any condition
 * variable.
 */
#ifndef CTL_CLOCK_H
#define CTL_CLOCK_H

#include <pthread.h>
#include <stdint.h>

#define CTL_NSEC  INT64_C(1)
#define CTL_USEC  INT64_C(1000)
#define CTL_MSEC  INT64_C(1000000)
#define CTL_SEC   INT64_C(1000000000)

struct ctl_clock;

/* The process-wide real clock. Never freed (ctl_clock_free ignores it). */
struct ctl_clock *ctl_clock_real(void);

/* A fake clock whose monotonic time starts at mono_ns and wall time at
 * wall_ns. Free with ctl_clock_free(), after everything subscribed to it
 * has unsubscribed. Returns 0. */
int ctl_clock_fake_new(struct ctl_clock **out, int64_t mono_ns, int64_t wall_ns);
void ctl_clock_free(struct ctl_clock *c);

/* Monotonic and wall time in nanoseconds. c == NULL means the real clock. */
int64_t ctl_clock_now(const struct ctl_clock *c);
int64_t ctl_clock_wall(const struct ctl_clock *c);

/* Move a fake clock forward by ns (both monotonic and wall time) and wake
 * every subscribed waiter. Does nothing on the real clock. The caller must
 * not hold any subscribed mutex. */
void ctl_clock_advance(struct ctl_clock *c, int64_t ns);

/* Initialise cond so that ctl_clock_wait() deadlines are on the monotonic
 * clock. Use this for every condition variable passed to ctl_clock_wait. */
void ctl_clock_cond_init(pthread_cond_t *cond);

/* Register (mu, cond) to be woken by ctl_clock_advance(), and remove it
 * again. Both are no-ops on the real clock. Call them without holding mu;
 * unsubscribe before destroying mu or cond. */
void ctl_clock_subscribe(struct ctl_clock *c, pthread_mutex_t *mu, pthread_cond_t *cond);
void ctl_clock_unsubscribe(struct ctl_clock *c, pthread_mutex_t *mu, pthread_cond_t *cond);

/* Wait on cond (mu held by the caller, as for pthread_cond_wait) until it
 * is signalled or, on the real clock, until the monotonic deadline_ns
 * passes. deadline_ns < 0 means no deadline. Spurious wakeups happen;
 * callers loop on their predicate and on ctl_clock_now(). */
void ctl_clock_wait(struct ctl_clock *c, pthread_cond_t *cond, pthread_mutex_t *mu,
		    int64_t deadline_ns);

#endif
