/* Unit tests for controller/ratelimit.c: backoff, bucket and max_of. */
#include "test.h"

#include "clock.h"
#include "error.h"
#include "ratelimit.h"

#include <stdio.h>

TEST(ratelimit_exponential_doubles_then_caps)
{
	struct ctl_ratelimiter *rl = NULL;
	CHECK_INT(ctl_ratelimiter_exponential_new(&rl, 5 * CTL_MSEC, 1000 * CTL_SEC), 0);
	CHECK_INT(ctl_ratelimiter_when(rl, "ns/a"), 5 * CTL_MSEC);
	CHECK_INT(ctl_ratelimiter_when(rl, "ns/a"), 10 * CTL_MSEC);
	CHECK_INT(ctl_ratelimiter_when(rl, "ns/a"), 20 * CTL_MSEC);
	CHECK_INT(ctl_ratelimiter_when(rl, "ns/a"), 40 * CTL_MSEC);
	/* 5 ms * 2^17 = 655.36 s is the last step under the cap. */
	int64_t d = 0;
	for (int i = 4; i <= 17; i++)
		d = ctl_ratelimiter_when(rl, "ns/a");
	CHECK_INT(d, INT64_C(655360) * CTL_MSEC);
	CHECK_INT(ctl_ratelimiter_when(rl, "ns/a"), 1000 * CTL_SEC);
	/* A long streak stays at the cap and never overflows. */
	for (int i = 0; i < 200; i++)
		d = ctl_ratelimiter_when(rl, "ns/a");
	CHECK_INT(d, 1000 * CTL_SEC);
	CHECK_INT(ctl_ratelimiter_num_requeues(rl, "ns/a"), 219);
	ctl_ratelimiter_free(rl);
}

TEST(ratelimit_exponential_is_per_key_and_forget_resets)
{
	struct ctl_ratelimiter *rl = NULL;
	ctl_ratelimiter_exponential_new(&rl, 5 * CTL_MSEC, 1000 * CTL_SEC);
	ctl_ratelimiter_when(rl, "ns/a");
	ctl_ratelimiter_when(rl, "ns/a");
	CHECK_INT(ctl_ratelimiter_when(rl, "ns/b"), 5 * CTL_MSEC);
	CHECK_INT(ctl_ratelimiter_num_requeues(rl, "ns/a"), 2);
	CHECK_INT(ctl_ratelimiter_num_requeues(rl, "ns/b"), 1);
	ctl_ratelimiter_forget(rl, "ns/a");
	CHECK_INT(ctl_ratelimiter_num_requeues(rl, "ns/a"), 0);
	CHECK_INT(ctl_ratelimiter_when(rl, "ns/a"), 5 * CTL_MSEC);
	ctl_ratelimiter_forget(rl, "ns/never-failed");
	ctl_ratelimiter_free(rl);
}

TEST(ratelimit_bucket_allows_burst_then_refills)
{
	struct ctl_clock *clock = NULL;
	struct ctl_ratelimiter *rl = NULL;
	ctl_clock_fake_new(&clock, 0, 0);
	CHECK_INT(ctl_ratelimiter_bucket_new(&rl, clock, 10, 3), 0);
	CHECK_INT(ctl_ratelimiter_when(rl, "a"), 0);
	CHECK_INT(ctl_ratelimiter_when(rl, "b"), 0);
	CHECK_INT(ctl_ratelimiter_when(rl, "c"), 0);
	/* Past the burst each request waits for its own token: 10/s. */
	CHECK_INT(ctl_ratelimiter_when(rl, "d"), 100 * CTL_MSEC);
	CHECK_INT(ctl_ratelimiter_when(rl, "e"), 200 * CTL_MSEC);
	/* 50 ms refills half a token: still 1.5 tokens in debt. */
	ctl_clock_advance(clock, 50 * CTL_MSEC);
	CHECK_INT(ctl_ratelimiter_when(rl, "f"), 250 * CTL_MSEC);
	/* A long pause refills to the burst, not beyond. */
	ctl_clock_advance(clock, 10 * CTL_SEC);
	CHECK_INT(ctl_ratelimiter_when(rl, "g"), 0);
	CHECK_INT(ctl_ratelimiter_when(rl, "h"), 0);
	CHECK_INT(ctl_ratelimiter_when(rl, "i"), 0);
	CHECK_INT(ctl_ratelimiter_when(rl, "j"), 100 * CTL_MSEC);
	CHECK_INT(ctl_ratelimiter_num_requeues(rl, "j"), 0);
	ctl_ratelimiter_free(rl);
	ctl_clock_free(clock);
}

TEST(ratelimit_bucket_rejects_bad_config)
{
	struct ctl_ratelimiter *rl = NULL;
	CHECK_INT(ctl_ratelimiter_bucket_new(&rl, NULL, 0, 10), CTL_EINVALID);
	CHECK(rl == NULL);
	CHECK_INT(ctl_ratelimiter_bucket_new(&rl, NULL, 10, 0), CTL_EINVALID);
	CHECK_INT(ctl_ratelimiter_max_of_new(&rl, NULL, 0), CTL_EINVALID);
}

TEST(ratelimit_max_of_returns_longest_delay)
{
	struct ctl_clock *clock = NULL;
	struct ctl_ratelimiter *rl = NULL;
	char key[32];
	ctl_clock_fake_new(&clock, 0, 0);
	CHECK_INT(ctl_ratelimiter_default_new(&rl, clock), 0);
	/* While the bucket has tokens, the per-key backoff decides. */
	CHECK_INT(ctl_ratelimiter_when(rl, "ns/a"), 5 * CTL_MSEC);
	CHECK_INT(ctl_ratelimiter_when(rl, "ns/a"), 10 * CTL_MSEC);
	CHECK_INT(ctl_ratelimiter_when(rl, "ns/a"), 20 * CTL_MSEC);
	for (int i = 0; i < 97; i++) {
		snprintf(key, sizeof(key), "ns/k%d", i);
		CHECK_INT(ctl_ratelimiter_when(rl, key), 5 * CTL_MSEC);
	}
	/* The 101st request overdraws the bucket (burst 100, 10/s): 100 ms
	 * beats a fresh key's 5 ms. */
	CHECK_INT(ctl_ratelimiter_when(rl, "ns/z"), 100 * CTL_MSEC);
	CHECK_INT(ctl_ratelimiter_num_requeues(rl, "ns/a"), 3);
	ctl_ratelimiter_forget(rl, "ns/a");
	CHECK_INT(ctl_ratelimiter_num_requeues(rl, "ns/a"), 0);
	ctl_ratelimiter_free(rl);
	ctl_clock_free(clock);
}

TEST(ratelimit_capped_stops_doubling_at_its_cap)
{
	struct ctl_clock *clock = NULL;
	struct ctl_ratelimiter *rl = NULL;
	ctl_clock_fake_new(&clock, 0, 0);
	CHECK_INT(ctl_ratelimiter_capped_new(&rl, clock, 60 * CTL_SEC), 0);
	/* 5 ms * 2^13 = 40.96 s; the 15th failure would be 81.92 s. */
	int64_t d = 0;
	for (int i = 0; i <= 13; i++)
		d = ctl_ratelimiter_when(rl, "ns/a");
	CHECK_INT(d, INT64_C(40960) * CTL_MSEC);
	CHECK_INT(ctl_ratelimiter_when(rl, "ns/a"), 60 * CTL_SEC);
	for (int i = 0; i < 20; i++)
		d = ctl_ratelimiter_when(rl, "ns/a");
	CHECK_INT(d, 60 * CTL_SEC);
	ctl_ratelimiter_free(rl);
	/* No cap given: client-go's 1000 s. */
	CHECK_INT(ctl_ratelimiter_capped_new(&rl, clock, 0), 0);
	for (int i = 0; i < 30; i++)
		d = ctl_ratelimiter_when(rl, "ns/a");
	CHECK_INT(d, 1000 * CTL_SEC);
	ctl_ratelimiter_free(rl);
	ctl_clock_free(clock);
}

TEST_MAIN(T(ratelimit_exponential_doubles_then_caps), T(ratelimit_capped_stops_doubling_at_its_cap),
	  T(ratelimit_exponential_is_per_key_and_forget_resets),
	  T(ratelimit_bucket_allows_burst_then_refills), T(ratelimit_bucket_rejects_bad_config),
	  T(ratelimit_max_of_returns_longest_delay))
