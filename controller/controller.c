/*
 * controller.c: workers, outcomes, resync and shutdown. See controller.h.
 *
 * The controller owns its queue, its threads, and a mutex/condition pair
 * that guards the lifecycle (stopping, how many worker threads are still
 * running) and paces the resync thread. Workers never hold that mutex
 * while reconciling.
 */
#include "controller.h"

#include "clock.h"
#include "error.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "ratelimit.h"
#include "xalloc.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define DEFAULT_GRACE (30 * CTL_SEC)

struct ctl_controller {
	char *name;
	ctl_reconcile_fn reconcile;
	ctl_list_keys_fn list_keys;
	void *ctx;
	struct ctl_queue *queue;
	struct ctl_clock *clock;
	int workers;
	int64_t resync_ns, grace_ns;

	pthread_mutex_t mu;
	pthread_cond_t cond;
	int started;             /* threads created and not yet joined */
	int stopping;
	int running;             /* worker threads that have not exited */
	int64_t next_resync_ns;
	pthread_t *threads;
	pthread_t resync_thread;
	int has_resync_thread;

	struct ctl_metric *total, *errors, *terminal_errors, *time, *max_concurrent, *active;
};

static _Thread_local const char *current_reconcile_id;

const char *ctl_controller_reconcile_id(void)
{
	return current_reconcile_id ? current_reconcile_id : "";
}

/* A random (version 4) UUID. Not a secret, so if getrandom fails a clock
 * and counter mix will do. */
static void reconcile_id_new(char out[37])
{
	static atomic_uint_fast64_t counter;
	unsigned char b[16];
	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
		uint64_t x = (uint64_t)ctl_clock_now(NULL) ^ (atomic_fetch_add(&counter, 1) << 32);
		for (size_t i = 0; i < sizeof(b); i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			b[i] = (unsigned char)x;
		}
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
		 b[12], b[13], b[14], b[15]);
}

static int register_metrics(struct ctl_controller *c, struct ctl_metrics *m)
{
	/* controller-runtime's buckets for reconcile_time_seconds. */
	static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35,
					0.4,   0.45, 0.5,   0.6,  0.7, 0.8,  0.9, 1.0,  1.25, 1.5,
					1.75,  2.0,  2.5,   3.0,  3.5, 4.0,  4.5, 5,    6,    7,
					8,     9,    10,    15,   20,  25,   30,  40,   50,   60};
	const char *const labels[] = {"controller", NULL};
	const char *const result_labels[] = {"controller", "result", NULL};
	const char *const v[] = {c->name};
	int rc = ctl_metrics_counter(&c->total, m, "controller_runtime_reconcile_total",
				     "Total number of reconciliations per controller", result_labels);
	if (rc == 0)
		rc = ctl_metrics_counter(&c->errors, m, "controller_runtime_reconcile_errors_total",
					 "Total number of reconciliation errors per controller", labels);
	if (rc == 0)
		rc = ctl_metrics_counter(&c->terminal_errors, m,
					 "controller_runtime_terminal_reconcile_errors_total",
					 "Total number of terminal reconciliation errors per controller",
					 labels);
	if (rc == 0)
		rc = ctl_metrics_histogram(&c->time, m, "controller_runtime_reconcile_time_seconds",
					   "Length of time per reconciliation per controller", labels,
					   bounds, sizeof(bounds) / sizeof(bounds[0]));
	if (rc == 0)
		rc = ctl_metrics_gauge(&c->max_concurrent, m,
				       "controller_runtime_max_concurrent_reconciles",
				       "Maximum number of concurrent reconciles per controller", labels);
	if (rc == 0)
		rc = ctl_metrics_gauge(&c->active, m, "controller_runtime_active_workers",
				       "Number of currently used workers per controller", labels);
	if (rc < 0)
		return rc;
	/* Show every series from the start, as controller-runtime does. */
	static const char *const results[] = {"success", "error", "requeue_after"};
	for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++)
		ctl_metric_add(c->total, (const char *[]){c->name, results[i]}, 0);
	ctl_metric_add(c->errors, v, 0);
	ctl_metric_add(c->terminal_errors, v, 0);
	ctl_metric_set(c->max_concurrent, v, c->workers);
	ctl_metric_set(c->active, v, 0);
	return 0;
}

int ctl_controller_new(struct ctl_controller **out, const struct ctl_reconciler *r, void *ctx,
		       const struct ctl_controller_opts *opts)
{
	static const struct ctl_controller_opts defaults = {0};
	struct ctl_controller *c = NULL;
	int rc = 0;

	*out = NULL;
	if (!opts)
		opts = &defaults;
	if (!r || !r->name || !*r->name || !r->reconcile) {
		ctl_ratelimiter_free(opts->limiter); /* ours even on failure */
		return ctl_error_set(CTL_EINVALID, "InvalidReconciler",
				     "a reconciler needs a name and a reconcile function");
	}
	c = xcalloc(1, sizeof(*c));
	c->name = xstrdup(r->name);
	c->reconcile = r->reconcile;
	c->list_keys = r->list_keys;
	c->ctx = ctx;
	c->clock = opts->clock ? opts->clock : ctl_clock_real();
	c->workers = opts->workers > 0 ? opts->workers : 1;
	c->resync_ns = opts->resync_period_ns > 0 ? opts->resync_period_ns : 0;
	c->grace_ns = opts->grace_period_ns > 0 ? opts->grace_period_ns : DEFAULT_GRACE;
	pthread_mutex_init(&c->mu, NULL);
	ctl_clock_cond_init(&c->cond);
	ctl_clock_subscribe(c->clock, &c->mu, &c->cond);

	struct ctl_queue_opts qo = {
		.name = c->name,
		.metrics = opts->metrics,
		.clock = c->clock,
		.limiter = opts->limiter,
	};
	if (!qo.limiter && opts->max_retry_delay_ns > 0)
		ctl_ratelimiter_capped_new(&qo.limiter, c->clock, opts->max_retry_delay_ns);
	rc = ctl_queue_new(&c->queue, &qo);
	if (rc < 0)
		goto done;
	if (opts->metrics) {
		rc = register_metrics(c, opts->metrics);
		if (rc < 0)
			goto done;
	}
	*out = c;
	c = NULL;
done:
	ctl_controller_free(c);
	return rc;
}

struct ctl_queue *ctl_controller_queue(struct ctl_controller *c)
{
	return c->queue;
}

static void log_error(struct ctl_controller *c, const char *key, const char *id, int rc)
{
	const struct ctl_error *e = ctl_error_last();
	const char *msg = e->code == rc && e->message[0] ? e->message : ctl_error_name(rc);
	const char *reason = e->code == rc ? e->reason : "";
	/* The peer's request id (x-ms-request-id, the API server's audit id)
	 * is what a support ticket needs. */
	const char *request_id = e->code == rc && e->request_id[0] ? e->request_id : NULL;
	ctl_log(CTL_LOG_ERROR, "Reconciler error", "controller", c->name, "key", key,
		"reconcileID", id, "error", msg, "reason", reason, "code", ctl_error_name(rc),
		request_id ? "requestId" : NULL, request_id, NULL);
}

/* One reconcile and its outcome; the key is processing in the queue. */
static void reconcile_one(struct ctl_controller *c, const char *key)
{
	char id[37];
	struct ctl_result res = {0};
	const char *const v[] = {c->name};
	const char *result;

	reconcile_id_new(id);
	current_reconcile_id = id;
	ctl_metric_add(c->active, v, 1);
	ctl_error_clear();
	int64_t start = ctl_clock_now(c->clock);
	int rc = c->reconcile(c->ctx, key, &res);
	int64_t elapsed = ctl_clock_now(c->clock) - start;
	ctl_metric_observe(c->time, v, elapsed > 0 ? (double)elapsed / (double)CTL_SEC : 0);
	ctl_metric_add(c->active, v, -1);

	if (rc == 0 && res.requeue_after_ns > 0) {
		/* A deliberate look-again is not a failure: reset the backoff. */
		ctl_queue_forget(c->queue, key);
		ctl_queue_add_after(c->queue, key, res.requeue_after_ns);
		result = "requeue_after";
	} else if (rc == 0) {
		ctl_queue_forget(c->queue, key);
		result = "success";
	} else {
		log_error(c, key, id, rc);
		ctl_metric_inc(c->errors, v);
		if (rc == CTL_ETERMINAL) {
			/* Retrying cannot help; the next change to the object
			 * adds the key again. */
			ctl_metric_inc(c->terminal_errors, v);
			ctl_queue_forget(c->queue, key);
		} else {
			ctl_queue_add_rate_limited(c->queue, key);
		}
		result = "error";
	}
	ctl_metric_inc(c->total, (const char *[]){c->name, result});
	current_reconcile_id = NULL;
}

/* Hand the pages of freed memory back to the kernel after a burst of
 * work. glibc returns only the top of its heap by itself; what a rollout of
 * thousands freed in the middle of its arenas (parsed objects, request and
 * answer buffers) stays resident until malloc_trim: 3 to 4 MiB at 10,000
 * pools (BENCHMARKS.md). malloc_trim walks every arena's free chunks and the
 * pages it gives back fault in again when reused, so it runs when the
 * queue is empty and either TRIM_AFTER reconciles (of every controller)
 * have finished since the last trim, or TRIM_EVERY_S have passed with any:
 * about ten times in a rollout of 10,000, not once a second. */
#define TRIM_AFTER 1000
#define TRIM_EVERY_S 30
static atomic_ulong finished; /* reconciles of every controller, for ctl_controller_finished */

unsigned long ctl_controller_finished(void)
{
	return atomic_load(&finished);
}

static void trim_when_idle(struct ctl_controller *c)
{
#ifdef __GLIBC__
	static atomic_llong last_s;
	static atomic_long done;
	long n = atomic_fetch_add(&done, 1) + 1;
	if (ctl_queue_len(c->queue) != 0)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long long t = (long long)now.tv_sec, prev = atomic_load(&last_s);
	if (n < TRIM_AFTER && t - prev < TRIM_EVERY_S)
		return;
	if (!atomic_compare_exchange_strong(&last_s, &prev, t))
		return; /* another worker is trimming */
	atomic_store(&done, 0);
	malloc_trim(0);
#else
	(void)c;
#endif
}

int ctl_controller_process_next(struct ctl_controller *c)
{
	char *key = ctl_queue_get(c->queue);
	if (!key)
		return 0;
	pthread_mutex_lock(&c->mu);
	int stopping = c->stopping;
	pthread_mutex_unlock(&c->mu);
	/* After stop, keys still queued are handed out only so the queue can
	 * drain; they are not reconciled. */
	if (!stopping)
		reconcile_one(c, key);
	ctl_queue_done(c->queue, key);
	free(key);
	atomic_fetch_add(&finished, 1);
	trim_when_idle(c);
	return 1;
}

static void *worker_main(void *arg)
{
	struct ctl_controller *c = arg;

	while (ctl_controller_process_next(c))
		;
	pthread_mutex_lock(&c->mu);
	c->running--;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

static void add_key(const char *key, void *ud)
{
	ctl_queue_add(ud, key);
}

int ctl_controller_resync(struct ctl_controller *c)
{
	if (!c->list_keys)
		return 0;
	return c->list_keys(c->ctx, add_key, c->queue);
}

static void *resync_main(void *arg)
{
	struct ctl_controller *c = arg;

	pthread_mutex_lock(&c->mu);
	while (!c->stopping) {
		int64_t now = ctl_clock_now(c->clock);
		if (now < c->next_resync_ns) {
			ctl_clock_wait(c->clock, &c->cond, &c->mu, c->next_resync_ns);
			continue;
		}
		c->next_resync_ns = now + c->resync_ns;
		pthread_mutex_unlock(&c->mu);
		if (ctl_controller_resync(c) < 0) {
			const struct ctl_error *e = ctl_error_last();
			ctl_log(CTL_LOG_ERROR, "resync failed", "controller", c->name, "error",
				e->message, NULL);
		}
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* Join every thread; the caller has made them exit (or will). */
static void join_all(struct ctl_controller *c)
{
	for (int i = 0; i < c->workers; i++)
		pthread_join(c->threads[i], NULL);
	if (c->has_resync_thread)
		pthread_join(c->resync_thread, NULL);
	c->has_resync_thread = 0;
	free(c->threads);
	c->threads = NULL;
	c->started = 0;
}

int ctl_controller_start(struct ctl_controller *c)
{
	int rc = 0, created = 0, unwind = 0;

	pthread_mutex_lock(&c->mu);
	if (c->started || c->stopping) {
		rc = ctl_error_set(CTL_EINVALID, "AlreadyStarted",
				   "controller %s: started twice, or after stop", c->name);
		goto done;
	}
	c->threads = xcalloc((size_t)c->workers, sizeof(*c->threads));
	for (; created < c->workers; created++) {
		if (pthread_create(&c->threads[created], NULL, worker_main, c) != 0) {
			rc = ctl_error_set(CTL_ERR, "ThreadCreate", "controller %s: cannot start worker",
					   c->name);
			break;
		}
		c->running++;
	}
	/* The first resync is due one period after start, fixed here so that a
	 * fake clock advanced right after start always reaches it. */
	c->next_resync_ns = ctl_clock_now(c->clock) + c->resync_ns;
	if (rc == 0 && c->resync_ns > 0 && c->list_keys) {
		if (pthread_create(&c->resync_thread, NULL, resync_main, c) != 0)
			rc = ctl_error_set(CTL_ERR, "ThreadCreate", "controller %s: cannot start resync",
					   c->name);
		else
			c->has_resync_thread = 1;
	}
	c->workers = created; /* join_all joins only the threads that exist */
	c->started = 1;
	if (rc < 0) {
		c->stopping = 1;
		pthread_cond_broadcast(&c->cond);
		unwind = 1;
	}
done:
	pthread_mutex_unlock(&c->mu);
	if (unwind) {
		ctl_queue_shutdown(c->queue);
		join_all(c);
	}
	return rc;
}

int ctl_controller_stop(struct ctl_controller *c)
{
	int rc = 0;

	pthread_mutex_lock(&c->mu);
	c->stopping = 1;
	pthread_cond_broadcast(&c->cond); /* the resync thread */
	pthread_mutex_unlock(&c->mu);
	/* Intake stops here: adds are ignored from now on and idle workers
	 * wake up to exit. */
	ctl_queue_shutdown(c->queue);

	pthread_mutex_lock(&c->mu);
	int64_t deadline = ctl_clock_now(c->clock) + c->grace_ns;
	while (c->running > 0 && ctl_clock_now(c->clock) < deadline)
		ctl_clock_wait(c->clock, &c->cond, &c->mu, deadline);
	int running = c->running, started = c->started;
	pthread_mutex_unlock(&c->mu);
	if (running > 0)
		rc = ctl_error_set(CTL_EUNAVAIL, "GracePeriodExpired",
				   "controller %s: %d workers still reconciling after the grace period",
				   c->name, running);
	else if (started)
		join_all(c);
	return rc;
}

void ctl_controller_free(struct ctl_controller *c)
{
	if (!c)
		return;
	if (c->started) {
		pthread_mutex_lock(&c->mu);
		c->stopping = 1;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->mu);
		ctl_queue_shutdown(c->queue);
		join_all(c);
	}
	ctl_clock_unsubscribe(c->clock, &c->mu, &c->cond);
	ctl_queue_free(c->queue);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->mu);
	free(c->name);
	free(c);
}
