/* Unit tests for controller/queue.c: the work queue. */
#include "test.h"

#include "clock.h"
#include "metrics.h"
#include "queue.h"
#include "ratelimit.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

/* A queue on a fake clock at t=0 with a plain exponential backoff of
 * 1 s doubling, so delays are round numbers. */
static struct ctl_queue *fake_queue(struct ctl_clock **clock, struct ctl_metrics *m)
{
	struct ctl_ratelimiter *rl = NULL;
	struct ctl_queue *q = NULL;
	ctl_clock_fake_new(clock, 0, 0);
	ctl_ratelimiter_exponential_new(&rl, CTL_SEC, 1000 * CTL_SEC);
	struct ctl_queue_opts o = {.name = "test", .metrics = m, .clock = *clock, .limiter = rl};
	CHECK_INT(ctl_queue_new(&q, &o), 0);
	return q;
}

/* Get a key and check it is want; done() it. */
static void expect_get(struct ctl_queue *q, const char *want)
{
	char *k = ctl_queue_get(q);
	CHECK_STR(k, want);
	if (k)
		ctl_queue_done(q, k);
	free(k);
}

TEST(queue_dedups_and_keeps_fifo_order)
{
	struct ctl_queue *q = NULL;
	CHECK_INT(ctl_queue_new(&q, NULL), 0);
	ctl_queue_add(q, "ns/a");
	ctl_queue_add(q, "ns/b");
	ctl_queue_add(q, "ns/a");
	ctl_queue_add(q, "ns/c");
	ctl_queue_add(q, "ns/b");
	CHECK_INT(ctl_queue_len(q), 3);
	expect_get(q, "ns/a");
	expect_get(q, "ns/b");
	expect_get(q, "ns/c");
	CHECK_INT(ctl_queue_len(q), 0);
	ctl_queue_free(q);
}

TEST(queue_requeues_key_added_while_processing)
{
	struct ctl_queue *q = NULL;
	ctl_queue_new(&q, NULL);
	ctl_queue_add(q, "ns/a");
	char *k = ctl_queue_get(q);
	CHECK_STR(k, "ns/a");
	/* Added again while a worker holds it: not handed to another worker... */
	ctl_queue_add(q, "ns/a");
	ctl_queue_add(q, "ns/a");
	CHECK_INT(ctl_queue_len(q), 0);
	/* ...but queued, once, when the first worker is done. */
	ctl_queue_done(q, k);
	free(k);
	CHECK_INT(ctl_queue_len(q), 1);
	expect_get(q, "ns/a");
	CHECK_INT(ctl_queue_len(q), 0);
	ctl_queue_free(q);
}

TEST(queue_done_without_readd_forgets_key)
{
	struct ctl_queue *q = NULL;
	ctl_queue_new(&q, NULL);
	ctl_queue_add(q, "ns/a");
	expect_get(q, "ns/a");
	ctl_queue_done(q, "ns/a"); /* a second done is ignored */
	ctl_queue_done(q, "ns/unknown");
	CHECK_INT(ctl_queue_len(q), 0);
	ctl_queue_free(q);
}

TEST(queue_add_after_orders_by_deadline)
{
	struct ctl_clock *clock = NULL;
	struct ctl_queue *q = fake_queue(&clock, NULL);
	ctl_queue_add_after(q, "ns/c", 3 * CTL_SEC);
	ctl_queue_add_after(q, "ns/a", 1 * CTL_SEC);
	ctl_queue_add_after(q, "ns/b", 2 * CTL_SEC);
	CHECK_INT(ctl_queue_len(q), 0);
	ctl_clock_advance(clock, 999 * CTL_MSEC);
	CHECK_INT(ctl_queue_len(q), 0);
	ctl_clock_advance(clock, 1 * CTL_MSEC);
	CHECK_INT(ctl_queue_len(q), 1);
	expect_get(q, "ns/a");
	ctl_clock_advance(clock, 2 * CTL_SEC);
	CHECK_INT(ctl_queue_len(q), 2);
	expect_get(q, "ns/b");
	expect_get(q, "ns/c");
	ctl_queue_free(q);
	ctl_clock_free(clock);
}

TEST(queue_add_after_twice_keeps_earlier_deadline)
{
	struct ctl_clock *clock = NULL;
	struct ctl_queue *q = fake_queue(&clock, NULL);
	ctl_queue_add_after(q, "ns/a", 5 * CTL_SEC);
	ctl_queue_add_after(q, "ns/a", 1 * CTL_SEC);
	ctl_queue_add_after(q, "ns/a", 9 * CTL_SEC);
	ctl_clock_advance(clock, 1 * CTL_SEC);
	CHECK_INT(ctl_queue_len(q), 1);
	expect_get(q, "ns/a");
	ctl_clock_advance(clock, 10 * CTL_SEC);
	CHECK_INT(ctl_queue_len(q), 0);
	ctl_queue_free(q);
	ctl_clock_free(clock);
}

TEST(queue_add_after_zero_adds_now)
{
	struct ctl_clock *clock = NULL;
	struct ctl_queue *q = fake_queue(&clock, NULL);
	ctl_queue_add_after(q, "ns/a", 0);
	CHECK_INT(ctl_queue_len(q), 1);
	ctl_queue_free(q);
	ctl_clock_free(clock);
}

struct getter {
	struct ctl_queue *q;
	char *key;
};

static void *get_one(void *arg)
{
	struct getter *g = arg;
	g->key = ctl_queue_get(g->q);
	return NULL;
}

TEST(queue_blocked_get_wakes_when_delay_passes)
{
	struct ctl_clock *clock = NULL;
	struct ctl_queue *q = fake_queue(&clock, NULL);
	struct getter g = {q, NULL};
	pthread_t t;
	pthread_create(&t, NULL, get_one, &g);
	ctl_queue_add_after(q, "ns/later", 30 * CTL_SEC);
	ctl_clock_advance(clock, 30 * CTL_SEC);
	pthread_join(t, NULL);
	CHECK_STR(g.key, "ns/later");
	ctl_queue_done(q, g.key);
	free(g.key);
	ctl_queue_free(q);
	ctl_clock_free(clock);
}

TEST(queue_shutdown_wakes_all_getters)
{
	struct ctl_queue *q = NULL;
	struct getter g[4];
	pthread_t t[4];
	ctl_queue_new(&q, NULL);
	for (int i = 0; i < 4; i++) {
		g[i] = (struct getter){q, NULL};
		pthread_create(&t[i], NULL, get_one, &g[i]);
	}
	ctl_queue_shutdown(q);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK(g[i].key == NULL);
	}
	CHECK_INT(ctl_queue_shutting_down(q), 1);
	ctl_queue_free(q);
}

TEST(queue_shutdown_hands_out_queued_keys_then_null)
{
	struct ctl_clock *clock = NULL;
	struct ctl_queue *q = fake_queue(&clock, NULL);
	ctl_queue_add(q, "ns/a");
	ctl_queue_add(q, "ns/b");
	ctl_queue_add_after(q, "ns/delayed", CTL_SEC);
	ctl_queue_shutdown(q);
	ctl_queue_add(q, "ns/ignored");
	ctl_queue_add_after(q, "ns/ignored-too", CTL_SEC);
	ctl_clock_advance(clock, 10 * CTL_SEC);
	expect_get(q, "ns/a");
	expect_get(q, "ns/b");
	CHECK(ctl_queue_get(q) == NULL);
	ctl_queue_free(q);
	ctl_clock_free(clock);
}

struct drainer {
	struct ctl_queue *q;
	atomic_int returned;
};

static void *drain(void *arg)
{
	struct drainer *d = arg;
	ctl_queue_shutdown_with_drain(d->q);
	atomic_store(&d->returned, 1);
	return NULL;
}

TEST(queue_shutdown_with_drain_waits_for_done)
{
	struct ctl_queue *q = NULL;
	struct drainer d = {.returned = 0};
	pthread_t t;
	ctl_queue_new(&q, NULL);
	d.q = q;
	ctl_queue_add(q, "ns/a");
	char *k = ctl_queue_get(q);
	pthread_create(&t, NULL, drain, &d);
	CHECK_INT(atomic_load(&d.returned), 0); /* "ns/a" is still processing */
	ctl_queue_done(q, k);
	free(k);
	pthread_join(t, NULL);
	CHECK_INT(atomic_load(&d.returned), 1);
	ctl_queue_free(q);
}

TEST(queue_rate_limited_add_backs_off_until_forget)
{
	struct ctl_clock *clock = NULL;
	struct ctl_queue *q = fake_queue(&clock, NULL);
	ctl_queue_add_rate_limited(q, "ns/a");
	CHECK_INT(ctl_queue_num_requeues(q, "ns/a"), 1);
	CHECK_INT(ctl_queue_len(q), 0);
	ctl_clock_advance(clock, 1 * CTL_SEC);
	CHECK_INT(ctl_queue_len(q), 1);
	expect_get(q, "ns/a");
	ctl_queue_add_rate_limited(q, "ns/a"); /* second failure: 2 s */
	ctl_clock_advance(clock, 1 * CTL_SEC);
	CHECK_INT(ctl_queue_len(q), 0);
	ctl_clock_advance(clock, 1 * CTL_SEC);
	CHECK_INT(ctl_queue_len(q), 1);
	expect_get(q, "ns/a");
	ctl_queue_forget(q, "ns/a");
	CHECK_INT(ctl_queue_num_requeues(q, "ns/a"), 0);
	ctl_queue_add_rate_limited(q, "ns/a"); /* back to 1 s */
	ctl_clock_advance(clock, 1 * CTL_SEC);
	CHECK_INT(ctl_queue_len(q), 1);
	ctl_queue_free(q);
	ctl_clock_free(clock);
}

/* --- many producers, many workers, one key never on two workers --- */

#define NKEYS 8
#define NPRODUCERS 4
#define NWORKERS 6
#define ADDS_PER_PRODUCER 4000

struct hammer {
	struct ctl_queue *q;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	atomic_int gen[NKEYS];  /* bumped before each add */
	int in_flight[NKEYS];
	int max_seen[NKEYS];    /* the largest gen a reconcile started from */
	int overlaps;
	long processed;
	atomic_int producer_seed;
};

static int key_index(const char *key)
{
	return atoi(key + 3); /* "ns/<i>" */
}

static void *produce(void *arg)
{
	struct hammer *h = arg;
	unsigned seed = (unsigned)atomic_fetch_add(&h->producer_seed, 1) * 2654435761u + 1;
	char key[16];
	for (int i = 0; i < ADDS_PER_PRODUCER; i++) {
		seed = seed * 1103515245u + 12345u;
		int k = (int)((seed >> 16) % NKEYS);
		snprintf(key, sizeof(key), "ns/%d", k);
		atomic_fetch_add(&h->gen[k], 1);
		ctl_queue_add(h->q, key);
	}
	return NULL;
}

static void *work(void *arg)
{
	struct hammer *h = arg;
	char *key;
	while ((key = ctl_queue_get(h->q))) {
		int k = key_index(key);
		pthread_mutex_lock(&h->mu);
		if (h->in_flight[k])
			h->overlaps++;
		h->in_flight[k] = 1;
		int seen = atomic_load(&h->gen[k]);
		pthread_mutex_unlock(&h->mu);
		sched_yield(); /* widen the window in which a second worker could slip in */
		pthread_mutex_lock(&h->mu);
		h->in_flight[k] = 0;
		if (seen > h->max_seen[k])
			h->max_seen[k] = seen;
		h->processed++;
		pthread_cond_broadcast(&h->cond);
		pthread_mutex_unlock(&h->mu);
		ctl_queue_done(h->q, key);
		free(key);
	}
	return NULL;
}

static int all_adds_seen(struct hammer *h)
{
	for (int k = 0; k < NKEYS; k++)
		if (h->max_seen[k] != atomic_load(&h->gen[k]))
			return 0;
	return 1;
}

TEST(queue_never_hands_one_key_to_two_workers)
{
	struct hammer h = {.overlaps = 0};
	pthread_t producers[NPRODUCERS], workers[NWORKERS];
	pthread_mutex_init(&h.mu, NULL);
	ctl_clock_cond_init(&h.cond);
	ctl_queue_new(&h.q, NULL);
	for (int i = 0; i < NWORKERS; i++)
		pthread_create(&workers[i], NULL, work, &h);
	for (int i = 0; i < NPRODUCERS; i++)
		pthread_create(&producers[i], NULL, produce, &h);
	for (int i = 0; i < NPRODUCERS; i++)
		pthread_join(producers[i], NULL);

	/* No add is lost: for every key, some reconcile started after its
	 * last add. Wait for exactly that (bounded, so a lost add fails the
	 * test instead of hanging it). */
	int64_t deadline = ctl_clock_now(NULL) + 30 * CTL_SEC;
	pthread_mutex_lock(&h.mu);
	while (!all_adds_seen(&h) && ctl_clock_now(NULL) < deadline)
		ctl_clock_wait(NULL, &h.cond, &h.mu, deadline);
	CHECK(all_adds_seen(&h));
	pthread_mutex_unlock(&h.mu);

	ctl_queue_shutdown(h.q);
	for (int i = 0; i < NWORKERS; i++)
		pthread_join(workers[i], NULL);
	CHECK_INT(h.overlaps, 0);
	CHECK(h.processed >= NKEYS);
	CHECK(h.processed <= (long)NPRODUCERS * ADDS_PER_PRODUCER);
	ctl_queue_free(h.q);
	pthread_cond_destroy(&h.cond);
	pthread_mutex_destroy(&h.mu);
}

/* --- metrics --- */

/* The value of the queue's series of a gauge or counter family, or -1 when
 * it has none. Registering again with the same shape finds the family. */
static double metric(struct ctl_metrics *m, const char *name)
{
	struct ctl_metric *f = NULL;
	double v = 0;
	if (ctl_metrics_gauge(&f, m, name, "", (const char *[]){"name", NULL}) != 0 &&
	    ctl_metrics_counter(&f, m, name, "", (const char *[]){"name", NULL}) != 0)
		return -1;
	return ctl_metric_get(&v, f, (const char *[]){"test"}) == 0 ? v : -1;
}

static double observations(struct ctl_metrics *m, const char *name)
{
	static const double bounds[] = {1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3,
					1e-2, 1e-1, 1,    10,   100,  1000};
	struct ctl_metric *f = NULL;
	double v = -1;
	CHECK_INT(ctl_metrics_histogram(&f, m, name, "", (const char *[]){"name", NULL}, bounds, 12), 0);
	ctl_metric_get(&v, f, (const char *[]){"test"});
	return v;
}

TEST(queue_records_workqueue_metrics)
{
	struct ctl_metrics *m = NULL;
	struct ctl_clock *clock = NULL;
	ctl_metrics_new(&m);
	struct ctl_queue *q = fake_queue(&clock, m);

	ctl_queue_add(q, "ns/a");
	ctl_queue_add(q, "ns/b");
	ctl_queue_add(q, "ns/a");
	CHECK(metric(m, "workqueue_depth") == 2);
	CHECK(metric(m, "workqueue_adds_total") == 2);
	ctl_clock_advance(clock, 1 * CTL_SEC);
	char *a = ctl_queue_get(q);
	CHECK(metric(m, "workqueue_depth") == 1);
	CHECK(observations(m, "workqueue_queue_duration_seconds") == 1);
	ctl_clock_advance(clock, 2 * CTL_SEC);
	char *b = ctl_queue_get(q);
	ctl_clock_advance(clock, 1 * CTL_SEC);
	/* a has run 3 s, b 1 s. */
	CHECK(metric(m, "workqueue_unfinished_work_seconds") == 4);
	CHECK(metric(m, "workqueue_longest_running_processor_seconds") == 3);
	ctl_queue_done(q, a);
	ctl_queue_done(q, b);
	CHECK(observations(m, "workqueue_work_duration_seconds") == 2);
	CHECK(metric(m, "workqueue_unfinished_work_seconds") == 0);
	ctl_queue_add_rate_limited(q, "ns/a");
	CHECK(metric(m, "workqueue_retries_total") == 1);
	free(a);
	free(b);

	/* The callbacks go with the queue. */
	ctl_queue_free(q);
	CHECK(metric(m, "workqueue_longest_running_processor_seconds") == -1);
	CHECK(metric(m, "workqueue_depth") == 0);
	ctl_metrics_free(m);
	ctl_clock_free(clock);
}

TEST_MAIN(T(queue_dedups_and_keeps_fifo_order), T(queue_requeues_key_added_while_processing),
	  T(queue_done_without_readd_forgets_key), T(queue_add_after_orders_by_deadline),
	  T(queue_add_after_twice_keeps_earlier_deadline), T(queue_add_after_zero_adds_now),
	  T(queue_blocked_get_wakes_when_delay_passes), T(queue_shutdown_wakes_all_getters),
	  T(queue_shutdown_hands_out_queued_keys_then_null),
	  T(queue_shutdown_with_drain_waits_for_done),
	  T(queue_rate_limited_add_backs_off_until_forget),
	  T(queue_never_hands_one_key_to_two_workers), T(queue_records_workqueue_metrics))
