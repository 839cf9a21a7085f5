/*
 * ratelimit.h: how long to wait before retrying a key (after client-go's
 * util/workqueue/default_rate_limiters.go).
 *
 * Three limiters, behind one type:
 *   - exponential: per key, base * 2^failures, capped (5 ms doubling to
 *     1000 s by default). The failure count lives until ctl_ratelimiter_forget.
 *   - bucket: one token bucket for every key (10/s, burst 100 by default),
 *     golang.org/x/time/rate semantics: a request takes a token now and is
 *     told how long until that token would have existed.
 *   - max_of: asks every child and returns the longest delay (client-go's
 *     MaxOfRateLimiter). The default limiter is max_of(exponential, bucket).
 *
 * Delays are nanoseconds. Every limiter is safe to use from many threads.
 */
#ifndef CTL_RATELIMIT_H
#define CTL_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

struct ctl_clock;
struct ctl_ratelimiter;

#define CTL_RATELIMIT_BASE_DELAY (5 * INT64_C(1000000))        /* 5 ms */
#define CTL_RATELIMIT_MAX_DELAY  (1000 * INT64_C(1000000000))  /* 1000 s */
#define CTL_RATELIMIT_QPS        10.0
#define CTL_RATELIMIT_BURST      100

/* Per-key exponential backoff: base_ns * 2^n for the n-th failure of a key
 * (n from 0), never more than max_ns. Returns 0. */
int ctl_ratelimiter_exponential_new(struct ctl_ratelimiter **out, int64_t base_ns, int64_t max_ns);

/* A token bucket of burst tokens refilled at qps per second, read from
 * clock (NULL = the real clock, which must outlive the limiter). Returns 0,
 * or CTL_EINVALID when qps <= 0 or burst < 1. */
int ctl_ratelimiter_bucket_new(struct ctl_ratelimiter **out, struct ctl_clock *clock,
			       double qps, int burst);

/* The longest delay of the n children, which the new limiter owns from now
 * on (also when it fails). Returns 0, or CTL_EINVALID when n == 0. */
int ctl_ratelimiter_max_of_new(struct ctl_ratelimiter **out, struct ctl_ratelimiter **children,
			       size_t n);

/* max_of(exponential(5 ms, 1000 s), bucket(10/s, burst 100)). Returns 0. */
int ctl_ratelimiter_default_new(struct ctl_ratelimiter **out, struct ctl_clock *clock);

/* The default limiter with the per-key backoff capped at max_ns instead of
 * 1000 s (max_ns <= 0: 1000 s). Returns 0. */
int ctl_ratelimiter_capped_new(struct ctl_ratelimiter **out, struct ctl_clock *clock, int64_t max_ns);

void ctl_ratelimiter_free(struct ctl_ratelimiter *rl);

/* How long to wait before key may be retried; counts one more failure. */
int64_t ctl_ratelimiter_when(struct ctl_ratelimiter *rl, const char *key);

/* Reset the failure count of key (it succeeded, or it is gone). The bucket
 * is not refunded. */
void ctl_ratelimiter_forget(struct ctl_ratelimiter *rl, const char *key);

/* How many failures key has had since it was last forgotten (the largest
 * count among children for max_of, 0 for a bucket). */
int ctl_ratelimiter_num_requeues(struct ctl_ratelimiter *rl, const char *key);

#endif
