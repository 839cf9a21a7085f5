/*
 * queue.c: the work queue. See queue.h.
 *
 * client-go keeps a FIFO slice plus "dirty" and "processing" sets under one
 * mutex and condition variable. Here each key known to the queue has one
 * record (struct item, in a POSIX search tree) and the sets are bits on
 * it: dirty (needs processing), processing (handed to a worker), and
 * "waiting" (a position in the add_after min-heap). The FIFO links only
 * records that are dirty and not processing, exactly the keys client-go's
 * queue slice holds. A record is freed when it is in none of the sets.
 *
 * There is no timer thread: delayed keys are moved to the FIFO when they
 * are due by whoever next looks (get, len, add), and a blocked get waits on
 * the condition with the earliest deadline, so the fake clock drives it.
 */
#include "queue.h"

#include "clock.h"
#include "metrics.h"
#include "ratelimit.h"
#include "xalloc.h"

#include <pthread.h>
#include <search.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NOT_WAITING SIZE_MAX

struct item {
	char *key;                   /* first member: the tree compares by key */
	int dirty;
	int processing;
	size_t heap_pos;             /* in q->heap, or NOT_WAITING */
	int64_t ready_ns;            /* while waiting: when to add */
	uint64_t seq;                /* while waiting: FIFO among equal deadlines */
	int64_t added_ns;            /* when it became dirty */
	int64_t started_ns;          /* when a worker got it */
	struct item *qnext;         /* FIFO link */
	struct item *pprev, *pnext; /* processing list */
};

struct ctl_queue {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct ctl_clock *clock;
	struct ctl_ratelimiter *limiter;

	void *entries;               /* tsearch root */
	struct item *head, *tail;   /* the FIFO */
	size_t len;
	struct item *processing;
	size_t nprocessing;
	struct item **heap;
	size_t nheap, heapcap;
	uint64_t seq;
	int shutting_down;

	char *name;
	struct ctl_metric *depth, *adds, *queue_duration, *work_duration, *retries;
	struct ctl_metric *unfinished, *longest;
	int has_callbacks;           /* the two gauges above point at us */
};

static int item_cmp(const void *a, const void *b)
{
	return strcmp(((const struct item *)a)->key, ((const struct item *)b)->key);
}

static struct item *item_find(struct ctl_queue *q, const char *key)
{
	struct item probe = {.key = (char *)key};
	struct item **slot = tfind(&probe, &q->entries, item_cmp);
	return slot ? *slot : NULL;
}

static struct item *item_get(struct ctl_queue *q, const char *key)
{
	struct item probe = {.key = (char *)key};
	struct item **slot = tsearch(&probe, &q->entries, item_cmp);
	if (!slot)
		abort(); /* tsearch fails only on out of memory */
	if (*slot == &probe) {
		struct item *e = xcalloc(1, sizeof(*e));
		e->key = xstrdup(key);
		e->heap_pos = NOT_WAITING;
		*slot = e; /* same key: the tree order holds */
	}
	return *slot;
}

static void item_release(struct ctl_queue *q, struct item *e)
{
	if (e->dirty || e->processing || e->heap_pos != NOT_WAITING)
		return;
	tdelete(e, &q->entries, item_cmp);
	free(e->key);
	free(e);
}

static const char *const *name_label(struct ctl_queue *q)
{
	return (const char *const *)&q->name;
}

/* --- the add_after min-heap, ordered by (ready_ns, seq) --- */

static int heap_less(const struct item *a, const struct item *b)
{
	return a->ready_ns < b->ready_ns || (a->ready_ns == b->ready_ns && a->seq < b->seq);
}

static void heap_set(struct ctl_queue *q, size_t i, struct item *e)
{
	q->heap[i] = e;
	e->heap_pos = i;
}

static void heap_up(struct ctl_queue *q, size_t i)
{
	struct item *e = q->heap[i];
	while (i > 0 && heap_less(e, q->heap[(i - 1) / 2])) {
		heap_set(q, i, q->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(q, i, e);
}

static void heap_down(struct ctl_queue *q, size_t i)
{
	struct item *e = q->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= q->nheap)
			break;
		if (c + 1 < q->nheap && heap_less(q->heap[c + 1], q->heap[c]))
			c++;
		if (!heap_less(q->heap[c], e))
			break;
		heap_set(q, i, q->heap[c]);
		i = c;
	}
	heap_set(q, i, e);
}

static void heap_push(struct ctl_queue *q, struct item *e)
{
	if (q->nheap == q->heapcap) {
		q->heapcap = q->heapcap ? q->heapcap * 2 : 16;
		q->heap = xrealloc(q->heap, q->heapcap * sizeof(*q->heap));
	}
	q->heap[q->nheap] = e;
	heap_up(q, q->nheap++);
}

static struct item *heap_pop(struct ctl_queue *q)
{
	struct item *top = q->heap[0];
	top->heap_pos = NOT_WAITING;
	if (--q->nheap > 0) {
		heap_set(q, 0, q->heap[q->nheap]);
		heap_down(q, 0);
	}
	return top;
}

/* --- the queue proper; all *_locked functions run under q->mu --- */

static void fifo_push(struct ctl_queue *q, struct item *e)
{
	e->qnext = NULL;
	if (q->tail)
		q->tail->qnext = e;
	else
		q->head = e;
	q->tail = e;
	q->len++;
}

static struct item *fifo_pop(struct ctl_queue *q)
{
	struct item *e = q->head;
	q->head = e->qnext;
	if (!q->head)
		q->tail = NULL;
	e->qnext = NULL;
	q->len--;
	return e;
}

/* client-go Add: a dirty key is already queued or will be re-queued by
 * done(); a processing key must wait for done(). */
static void add_locked(struct ctl_queue *q, struct item *e, int64_t now)
{
	if (e->dirty)
		return;
	ctl_metric_add(q->depth, name_label(q), 1);
	ctl_metric_inc(q->adds, name_label(q));
	e->added_ns = now;
	e->dirty = 1;
	if (e->processing)
		return;
	fifo_push(q, e);
	pthread_cond_signal(&q->cond);
}

/* Move every delayed key whose time has come onto the queue. */
static void promote_locked(struct ctl_queue *q, int64_t now)
{
	while (q->nheap > 0 && q->heap[0]->ready_ns <= now)
		add_locked(q, heap_pop(q), now);
}

static void shutdown_locked(struct ctl_queue *q)
{
	q->shutting_down = 1;
	/* As client-go's delaying queue: keys still waiting are dropped. */
	while (q->nheap > 0)
		item_release(q, heap_pop(q));
	pthread_cond_broadcast(&q->cond);
}

static double since_seconds(int64_t now, int64_t then)
{
	return now > then ? (double)(now - then) / (double)CTL_SEC : 0;
}

static double unfinished_work(void *ud)
{
	struct ctl_queue *q = ud;
	double total = 0;
	pthread_mutex_lock(&q->mu);
	int64_t now = ctl_clock_now(q->clock);
	for (struct item *e = q->processing; e; e = e->pnext)
		total += since_seconds(now, e->started_ns);
	pthread_mutex_unlock(&q->mu);
	return total;
}

static double longest_running(void *ud)
{
	struct ctl_queue *q = ud;
	double longest = 0;
	pthread_mutex_lock(&q->mu);
	int64_t now = ctl_clock_now(q->clock);
	for (struct item *e = q->processing; e; e = e->pnext)
		if (since_seconds(now, e->started_ns) > longest)
			longest = since_seconds(now, e->started_ns);
	pthread_mutex_unlock(&q->mu);
	return longest;
}

/* Register the workqueue_* families (shared between queues; the name label
 * tells them apart) and this queue's two callback gauges. */
static int register_metrics(struct ctl_queue *q, struct ctl_metrics *m)
{
	/* controller-runtime's buckets: 10 ns to 1000 s. */
	static const double bounds[] = {1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3,
					1e-2, 1e-1, 1,    10,   100,  1000};
	const size_t nb = sizeof(bounds) / sizeof(bounds[0]);
	const char *const labels[] = {"name", NULL};
	int rc = ctl_metrics_gauge(&q->depth, m, "workqueue_depth",
				   "Current depth of workqueue", labels);
	if (rc == 0)
		rc = ctl_metrics_counter(&q->adds, m, "workqueue_adds_total",
					 "Total number of adds handled by workqueue", labels);
	if (rc == 0)
		rc = ctl_metrics_histogram(&q->queue_duration, m, "workqueue_queue_duration_seconds",
					   "How long in seconds an item stays in workqueue before being requested",
					   labels, bounds, nb);
	if (rc == 0)
		rc = ctl_metrics_histogram(&q->work_duration, m, "workqueue_work_duration_seconds",
					   "How long in seconds processing an item from workqueue takes.",
					   labels, bounds, nb);
	if (rc == 0)
		rc = ctl_metrics_counter(&q->retries, m, "workqueue_retries_total",
					 "Total number of retries handled by workqueue", labels);
	if (rc == 0)
		rc = ctl_metrics_gauge(&q->unfinished, m, "workqueue_unfinished_work_seconds",
				       "How many seconds of work has been done that is in progress and hasn't "
				       "been observed by work_duration. Large values indicate stuck threads. "
				       "One can deduce the number of stuck threads by observing the rate at "
				       "which this increases.", labels);
	if (rc == 0)
		rc = ctl_metrics_gauge(&q->longest, m, "workqueue_longest_running_processor_seconds",
				       "How many seconds has the longest running processor for workqueue "
				       "been running.", labels);
	if (rc == 0) {
		/* Start the counters at 0 so they show before the first add. */
		ctl_metric_add(q->depth, name_label(q), 0);
		ctl_metric_add(q->adds, name_label(q), 0);
		ctl_metric_add(q->retries, name_label(q), 0);
		ctl_metric_set_func(q->unfinished, name_label(q), unfinished_work, q);
		ctl_metric_set_func(q->longest, name_label(q), longest_running, q);
		q->has_callbacks = 1;
	}
	return rc;
}

int ctl_queue_new(struct ctl_queue **out, const struct ctl_queue_opts *opts)
{
	static const struct ctl_queue_opts defaults = {0};
	struct ctl_queue *q = xcalloc(1, sizeof(*q));
	int rc = 0;

	*out = NULL;
	if (!opts)
		opts = &defaults;
	pthread_mutex_init(&q->mu, NULL);
	ctl_clock_cond_init(&q->cond);
	q->clock = opts->clock ? opts->clock : ctl_clock_real();
	q->limiter = opts->limiter;
	if (!q->limiter)
		ctl_ratelimiter_default_new(&q->limiter, q->clock);
	ctl_clock_subscribe(q->clock, &q->mu, &q->cond);
	if (opts->metrics && opts->name) {
		q->name = xstrdup(opts->name);
		rc = register_metrics(q, opts->metrics);
		if (rc < 0)
			goto done;
	}
	*out = q;
	q = NULL;
done:
	ctl_queue_free(q);
	return rc;
}

void ctl_queue_free(struct ctl_queue *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->mu);
	shutdown_locked(q);
	pthread_mutex_unlock(&q->mu);
	/* Not under q->mu: removal waits for a scrape, which may be inside
	 * one of our callbacks waiting for q->mu. */
	if (q->has_callbacks) {
		ctl_metric_remove(q->unfinished, name_label(q));
		ctl_metric_remove(q->longest, name_label(q));
	}
	ctl_clock_unsubscribe(q->clock, &q->mu, &q->cond);
	while (q->entries) {
		struct item *e = *(struct item **)q->entries;
		tdelete(e, &q->entries, item_cmp);
		free(e->key);
		free(e);
	}
	free(q->heap);
	ctl_ratelimiter_free(q->limiter);
	free(q->name);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

void ctl_queue_add(struct ctl_queue *q, const char *key)
{
	pthread_mutex_lock(&q->mu);
	if (!q->shutting_down)
		add_locked(q, item_get(q, key), ctl_clock_now(q->clock));
	pthread_mutex_unlock(&q->mu);
}

void ctl_queue_add_after(struct ctl_queue *q, const char *key, int64_t delay_ns)
{
	if (delay_ns <= 0) {
		ctl_queue_add(q, key);
		return;
	}
	pthread_mutex_lock(&q->mu);
	if (q->shutting_down)
		goto done;
	int64_t now = ctl_clock_now(q->clock);
	struct item *e = item_get(q, key);
	int64_t ready = now + delay_ns;
	if (e->heap_pos == NOT_WAITING) {
		e->ready_ns = ready;
		e->seq = q->seq++;
		heap_push(q, e);
	} else if (ready < e->ready_ns) {
		/* Already waiting: keep the earlier deadline, as client-go. */
		e->ready_ns = ready;
		heap_up(q, e->heap_pos);
	}
	/* A getter may be sleeping towards a later deadline. */
	if (q->heap[0] == e)
		pthread_cond_signal(&q->cond);
done:
	pthread_mutex_unlock(&q->mu);
}

void ctl_queue_add_rate_limited(struct ctl_queue *q, const char *key)
{
	ctl_metric_inc(q->retries, name_label(q));
	ctl_queue_add_after(q, key, ctl_ratelimiter_when(q->limiter, key));
}

void ctl_queue_forget(struct ctl_queue *q, const char *key)
{
	ctl_ratelimiter_forget(q->limiter, key);
}

int ctl_queue_num_requeues(struct ctl_queue *q, const char *key)
{
	return ctl_ratelimiter_num_requeues(q->limiter, key);
}

char *ctl_queue_get(struct ctl_queue *q)
{
	char *key = NULL;
	int64_t now;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		now = ctl_clock_now(q->clock);
		promote_locked(q, now);
		if (q->len > 0 || q->shutting_down)
			break;
		ctl_clock_wait(q->clock, &q->cond, &q->mu, q->nheap ? q->heap[0]->ready_ns : -1);
	}
	if (q->len == 0)
		goto done;
	struct item *e = fifo_pop(q);
	e->dirty = 0;
	e->processing = 1;
	e->started_ns = now;
	e->pprev = NULL;
	e->pnext = q->processing;
	if (q->processing)
		q->processing->pprev = e;
	q->processing = e;
	q->nprocessing++;
	ctl_metric_add(q->depth, name_label(q), -1);
	ctl_metric_observe(q->queue_duration, name_label(q), since_seconds(now, e->added_ns));
	key = xstrdup(e->key);
done:
	pthread_mutex_unlock(&q->mu);
	return key;
}

void ctl_queue_done(struct ctl_queue *q, const char *key)
{
	pthread_mutex_lock(&q->mu);
	struct item *e = item_find(q, key);
	if (!e || !e->processing)
		goto done;
	ctl_metric_observe(q->work_duration, name_label(q),
			   since_seconds(ctl_clock_now(q->clock), e->started_ns));
	e->processing = 0;
	if (e->pprev)
		e->pprev->pnext = e->pnext;
	else
		q->processing = e->pnext;
	if (e->pnext)
		e->pnext->pprev = e->pprev;
	e->pprev = e->pnext = NULL;
	q->nprocessing--;
	if (e->dirty) {
		fifo_push(q, e);
		pthread_cond_signal(&q->cond);
	} else if (q->nprocessing == 0) {
		pthread_cond_broadcast(&q->cond); /* for shutdown_with_drain */
	}
	item_release(q, e);
done:
	pthread_mutex_unlock(&q->mu);
}

size_t ctl_queue_len(struct ctl_queue *q)
{
	pthread_mutex_lock(&q->mu);
	promote_locked(q, ctl_clock_now(q->clock));
	size_t n = q->len;
	pthread_mutex_unlock(&q->mu);
	return n;
}

void ctl_queue_shutdown(struct ctl_queue *q)
{
	pthread_mutex_lock(&q->mu);
	shutdown_locked(q);
	pthread_mutex_unlock(&q->mu);
}

void ctl_queue_shutdown_with_drain(struct ctl_queue *q)
{
	pthread_mutex_lock(&q->mu);
	shutdown_locked(q);
	while (q->nprocessing > 0)
		pthread_cond_wait(&q->cond, &q->mu);
	pthread_mutex_unlock(&q->mu);
}

int ctl_queue_shutting_down(struct ctl_queue *q)
{
	pthread_mutex_lock(&q->mu);
	int s = q->shutting_down;
	pthread_mutex_unlock(&q->mu);
	return s;
}
