/*
 * ratelimit.c: exponential, bucket and max_of limiters. See ratelimit.h.
 *
 * The exponential limiter keeps one record per failing key in a POSIX
 * search tree (tsearch), removed again by forget, so its memory is bounded
 * by the number of keys currently failing.
 */
#include "ratelimit.h"

#include "clock.h"
#include "error.h"
#include "xalloc.h"

#include <math.h>
#include <pthread.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

enum kind { EXPONENTIAL, BUCKET, MAX_OF };

struct failure {
	char *key; /* first member: the tree compares records by key */
	int count;
};

struct ctl_ratelimiter {
	enum kind kind;
	pthread_mutex_t mu;

	/* EXPONENTIAL */
	int64_t base_ns, max_ns;
	void *failures; /* tsearch root of struct failure */

	/* BUCKET */
	struct ctl_clock *clock;
	double qps, burst, tokens;
	int64_t last_ns;

	/* MAX_OF */
	struct ctl_ratelimiter **children;
	size_t nchildren;
};

static int failure_cmp(const void *a, const void *b)
{
	return strcmp(((const struct failure *)a)->key, ((const struct failure *)b)->key);
}

static struct ctl_ratelimiter *limiter_alloc(enum kind kind)
{
	struct ctl_ratelimiter *rl = xcalloc(1, sizeof(*rl));
	rl->kind = kind;
	pthread_mutex_init(&rl->mu, NULL);
	return rl;
}

int ctl_ratelimiter_exponential_new(struct ctl_ratelimiter **out, int64_t base_ns, int64_t max_ns)
{
	struct ctl_ratelimiter *rl = limiter_alloc(EXPONENTIAL);
	rl->base_ns = base_ns < 0 ? 0 : base_ns;
	rl->max_ns = max_ns < rl->base_ns ? rl->base_ns : max_ns;
	*out = rl;
	return 0;
}

int ctl_ratelimiter_bucket_new(struct ctl_ratelimiter **out, struct ctl_clock *clock,
			       double qps, int burst)
{
	*out = NULL;
	if (!(qps > 0) || burst < 1)
		return ctl_error_set(CTL_EINVALID, "InvalidRateLimit",
				     "token bucket needs qps > 0 and burst >= 1 (got %g, %d)", qps, burst);
	struct ctl_ratelimiter *rl = limiter_alloc(BUCKET);
	rl->clock = clock ? clock : ctl_clock_real();
	rl->qps = qps;
	rl->burst = burst;
	rl->tokens = burst;
	rl->last_ns = ctl_clock_now(rl->clock);
	*out = rl;
	return 0;
}

int ctl_ratelimiter_max_of_new(struct ctl_ratelimiter **out, struct ctl_ratelimiter **children,
			       size_t n)
{
	*out = NULL;
	if (n == 0)
		return ctl_error_set(CTL_EINVALID, "InvalidRateLimit", "max_of needs at least one limiter");
	struct ctl_ratelimiter *rl = limiter_alloc(MAX_OF);
	rl->children = xmalloc(n * sizeof(*rl->children));
	memcpy(rl->children, children, n * sizeof(*rl->children));
	rl->nchildren = n;
	*out = rl;
	return 0;
}

int ctl_ratelimiter_capped_new(struct ctl_ratelimiter **out, struct ctl_clock *clock, int64_t max_ns)
{
	struct ctl_ratelimiter *children[2];
	ctl_ratelimiter_exponential_new(&children[0], CTL_RATELIMIT_BASE_DELAY,
					max_ns > 0 ? max_ns : CTL_RATELIMIT_MAX_DELAY);
	ctl_ratelimiter_bucket_new(&children[1], clock, CTL_RATELIMIT_QPS, CTL_RATELIMIT_BURST);
	return ctl_ratelimiter_max_of_new(out, children, 2);
}

int ctl_ratelimiter_default_new(struct ctl_ratelimiter **out, struct ctl_clock *clock)
{
	return ctl_ratelimiter_capped_new(out, clock, CTL_RATELIMIT_MAX_DELAY);
}

static void failure_free(void *p)
{
	struct failure *f = p;
	free(f->key);
	free(f);
}

void ctl_ratelimiter_free(struct ctl_ratelimiter *rl)
{
	if (!rl)
		return;
	/* POSIX has no tdestroy: delete the root until the tree is empty. */
	while (rl->failures) {
		struct failure *f = *(struct failure **)rl->failures;
		tdelete(f, &rl->failures, failure_cmp);
		failure_free(f);
	}
	for (size_t i = 0; i < rl->nchildren; i++)
		ctl_ratelimiter_free(rl->children[i]);
	free(rl->children);
	pthread_mutex_destroy(&rl->mu);
	free(rl);
}

static int64_t exponential_when(struct ctl_ratelimiter *rl, const char *key)
{
	struct failure probe = {.key = (char *)key};
	struct failure **slot = tsearch(&probe, &rl->failures, failure_cmp);
	if (!slot)
		abort(); /* tsearch only fails on out of memory */
	if (*slot == &probe) {
		struct failure *f = xmalloc(sizeof(*f));
		f->key = xstrdup(key);
		f->count = 0;
		*slot = f; /* same key, so the tree order is unchanged */
	}
	int n = (*slot)->count++;
	/* base * 2^n in floating point so that a long failure streak cannot
	 * overflow before the cap applies. */
	double d = ldexp((double)rl->base_ns, n > 1000 ? 1000 : n);
	return d >= (double)rl->max_ns ? rl->max_ns : (int64_t)d;
}

static int64_t bucket_when(struct ctl_ratelimiter *rl)
{
	int64_t now = ctl_clock_now(rl->clock);
	if (now > rl->last_ns) {
		rl->tokens += (double)(now - rl->last_ns) * rl->qps / (double)CTL_SEC;
		if (rl->tokens > rl->burst)
			rl->tokens = rl->burst;
		rl->last_ns = now;
	}
	/* Take the token even if it does not exist yet; the caller waits for
	 * it, so the debt is what later callers queue behind. */
	rl->tokens -= 1;
	if (rl->tokens >= 0)
		return 0;
	return (int64_t)llround(-rl->tokens / rl->qps * (double)CTL_SEC);
}

int64_t ctl_ratelimiter_when(struct ctl_ratelimiter *rl, const char *key)
{
	int64_t d = 0;
	if (rl->kind == MAX_OF) {
		for (size_t i = 0; i < rl->nchildren; i++) {
			int64_t c = ctl_ratelimiter_when(rl->children[i], key);
			if (c > d)
				d = c;
		}
		return d;
	}
	pthread_mutex_lock(&rl->mu);
	d = rl->kind == EXPONENTIAL ? exponential_when(rl, key) : bucket_when(rl);
	pthread_mutex_unlock(&rl->mu);
	return d;
}

void ctl_ratelimiter_forget(struct ctl_ratelimiter *rl, const char *key)
{
	if (rl->kind == MAX_OF) {
		for (size_t i = 0; i < rl->nchildren; i++)
			ctl_ratelimiter_forget(rl->children[i], key);
		return;
	}
	if (rl->kind != EXPONENTIAL)
		return;
	struct failure probe = {.key = (char *)key};
	pthread_mutex_lock(&rl->mu);
	struct failure **slot = tfind(&probe, &rl->failures, failure_cmp);
	if (slot) {
		struct failure *f = *slot;
		tdelete(f, &rl->failures, failure_cmp);
		failure_free(f);
	}
	pthread_mutex_unlock(&rl->mu);
}

int ctl_ratelimiter_num_requeues(struct ctl_ratelimiter *rl, const char *key)
{
	int n = 0;
	if (rl->kind == MAX_OF) {
		for (size_t i = 0; i < rl->nchildren; i++) {
			int c = ctl_ratelimiter_num_requeues(rl->children[i], key);
			if (c > n)
				n = c;
		}
		return n;
	}
	if (rl->kind != EXPONENTIAL)
		return 0;
	struct failure probe = {.key = (char *)key};
	pthread_mutex_lock(&rl->mu);
	struct failure **slot = tfind(&probe, &rl->failures, failure_cmp);
	if (slot)
		n = (*slot)->count;
	pthread_mutex_unlock(&rl->mu);
	return n;
}
