/* Unit tests for controller/controller.c: outcomes, resync, workers. */
#include "test.h"

#include "clock.h"
#include "controller.h"
#include "error.h"
#include "metrics.h"
#include "queue.h"
#include "ratelimit.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* A scripted reconciler: outcomes[i] is what the i-th call returns. */
enum outcome { DONE, REQUEUE_30S, RETRY, TERMINAL, BLOCK };

struct script {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	enum outcome outcomes[8];
	int noutcomes;
	int calls;
	int in_flight;
	int gate_open;
	char ids[8][40];
	char last_key[64];
	const char *const *keys; /* for list_keys */
};

static void script_init(struct script *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	ctl_clock_cond_init(&s->cond);
}

static void script_dispose(struct script *s)
{
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mu);
}

static int scripted(void *ctx, const char *key, struct ctl_result *out)
{
	struct script *s = ctx;
	pthread_mutex_lock(&s->mu);
	int i = s->calls++;
	enum outcome o = i < s->noutcomes ? s->outcomes[i] : DONE;
	if (i < 8)
		snprintf(s->ids[i], sizeof(s->ids[i]), "%s", ctl_controller_reconcile_id());
	snprintf(s->last_key, sizeof(s->last_key), "%s", key);
	s->in_flight++;
	pthread_cond_broadcast(&s->cond);
	while (o == BLOCK && !s->gate_open)
		pthread_cond_wait(&s->cond, &s->mu);
	s->in_flight--;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);

	switch (o) {
	case REQUEUE_30S:
		out->requeue_after_ns = 30 * CTL_SEC;
		return 0;
	case RETRY:
		return ctl_error_set(CTL_EUNAVAIL, "Throttled", "ARM said 429 for %s", key);
	case TERMINAL:
		return ctl_error_set(CTL_ETERMINAL, "InvalidSku", "sku S9 does not exist");
	default:
		return 0;
	}
}

static int list_keys(void *ctx, ctl_key_fn each, void *ud)
{
	struct script *s = ctx;
	for (const char *const *k = s->keys; k && *k; k++)
		each(*k, ud);
	return 0;
}

static const struct ctl_reconciler reconciler = {
	.name = "agentpool",
	.reconcile = scripted,
	.list_keys = list_keys,
};

struct fixture {
	struct script s;
	struct ctl_clock *clock;
	struct ctl_metrics *m;
	struct ctl_controller *c;
	struct ctl_queue *q;
};

/* A controller on a fake clock, with 1 s doubling backoff and a metrics
 * registry, not started. */
static void fixture_init(struct fixture *f, int workers, int64_t resync)
{
	struct ctl_ratelimiter *rl = NULL;
	script_init(&f->s);
	ctl_clock_fake_new(&f->clock, 0, 0);
	ctl_metrics_new(&f->m);
	ctl_ratelimiter_exponential_new(&rl, CTL_SEC, 1000 * CTL_SEC);
	struct ctl_controller_opts o = {
		.workers = workers,
		.resync_period_ns = resync,
		.metrics = f->m,
		.clock = f->clock,
		.limiter = rl,
	};
	CHECK_INT(ctl_controller_new(&f->c, &reconciler, &f->s, &o), 0);
	f->q = ctl_controller_queue(f->c);
}

static void fixture_dispose(struct fixture *f)
{
	ctl_controller_free(f->c);
	ctl_metrics_free(f->m);
	ctl_clock_free(f->clock);
	script_dispose(&f->s);
}

static double counter(struct fixture *f, const char *name, const char *result)
{
	struct ctl_metric *fam = NULL;
	double v = -1;
	if (result)
		ctl_metrics_counter(&fam, f->m, name, "", (const char *[]){"controller", "result", NULL});
	else
		ctl_metrics_counter(&fam, f->m, name, "", (const char *[]){"controller", NULL});
	ctl_metric_get(&v, fam, (const char *[]){"agentpool", result});
	return v;
}

TEST(controller_done_forgets_and_does_not_requeue)
{
	struct fixture f;
	fixture_init(&f, 1, 0);
	ctl_queue_add(f.q, "ns/a");
	CHECK_INT(ctl_controller_process_next(f.c), 1);
	CHECK_INT(f.s.calls, 1);
	CHECK_STR(f.s.last_key, "ns/a");
	ctl_clock_advance(f.clock, 3600 * CTL_SEC);
	CHECK_INT(ctl_queue_len(f.q), 0);
	CHECK(counter(&f, "controller_runtime_reconcile_total", "success") == 1);
	CHECK(counter(&f, "controller_runtime_reconcile_errors_total", NULL) == 0);
	fixture_dispose(&f);
}

TEST(controller_requeue_after_adds_key_after_delay)
{
	struct fixture f;
	fixture_init(&f, 1, 0);
	f.s.outcomes[0] = REQUEUE_30S;
	f.s.noutcomes = 1;
	ctl_queue_add(f.q, "ns/a");
	ctl_controller_process_next(f.c);
	ctl_clock_advance(f.clock, 29 * CTL_SEC);
	CHECK_INT(ctl_queue_len(f.q), 0);
	ctl_clock_advance(f.clock, 1 * CTL_SEC);
	CHECK_INT(ctl_queue_len(f.q), 1);
	CHECK_INT(ctl_queue_num_requeues(f.q, "ns/a"), 0); /* not a failure */
	ctl_controller_process_next(f.c);
	CHECK_INT(f.s.calls, 2);
	CHECK(counter(&f, "controller_runtime_reconcile_total", "requeue_after") == 1);
	CHECK(counter(&f, "controller_runtime_reconcile_total", "success") == 1);
	fixture_dispose(&f);
}

TEST(controller_error_retries_with_backoff)
{
	struct fixture f;
	fixture_init(&f, 1, 0);
	f.s.outcomes[0] = RETRY;
	f.s.outcomes[1] = RETRY;
	f.s.noutcomes = 2;
	ctl_queue_add(f.q, "ns/a");
	ctl_controller_process_next(f.c);           /* fails: back off 1 s */
	CHECK_INT(ctl_queue_num_requeues(f.q, "ns/a"), 1);
	CHECK_INT(ctl_queue_len(f.q), 0);
	ctl_clock_advance(f.clock, 1 * CTL_SEC);
	CHECK_INT(ctl_queue_len(f.q), 1);
	ctl_controller_process_next(f.c);           /* fails: back off 2 s */
	ctl_clock_advance(f.clock, 1 * CTL_SEC);
	CHECK_INT(ctl_queue_len(f.q), 0);
	ctl_clock_advance(f.clock, 1 * CTL_SEC);
	CHECK_INT(ctl_queue_len(f.q), 1);
	ctl_controller_process_next(f.c);           /* succeeds: backoff reset */
	CHECK_INT(f.s.calls, 3);
	CHECK_INT(ctl_queue_num_requeues(f.q, "ns/a"), 0);
	CHECK(counter(&f, "controller_runtime_reconcile_total", "error") == 2);
	CHECK(counter(&f, "controller_runtime_reconcile_errors_total", NULL) == 2);
	struct ctl_metric *retries = NULL;
	double v = 0;
	ctl_metrics_counter(&retries, f.m, "workqueue_retries_total", "", (const char *[]){"name", NULL});
	CHECK_INT(ctl_metric_get(&v, retries, (const char *[]){"agentpool"}), 0);
	CHECK(v == 2);
	fixture_dispose(&f);
}

TEST(controller_terminal_error_waits_for_next_add)
{
	struct fixture f;
	fixture_init(&f, 1, 0);
	f.s.outcomes[0] = TERMINAL;
	f.s.noutcomes = 1;
	ctl_queue_add(f.q, "ns/a");
	ctl_controller_process_next(f.c);
	CHECK_INT(ctl_queue_num_requeues(f.q, "ns/a"), 0);
	ctl_clock_advance(f.clock, 3600 * CTL_SEC);
	CHECK_INT(ctl_queue_len(f.q), 0);
	CHECK(counter(&f, "controller_runtime_terminal_reconcile_errors_total", NULL) == 1);
	CHECK(counter(&f, "controller_runtime_reconcile_errors_total", NULL) == 1);
	/* The object changed: the informer adds the key again. */
	ctl_queue_add(f.q, "ns/a");
	ctl_controller_process_next(f.c);
	CHECK_INT(f.s.calls, 2);
	fixture_dispose(&f);
}

TEST(controller_logs_one_json_line_per_error)
{
	struct fixture f;
	char line[2048] = "";
	fixture_init(&f, 1, 0);
	f.s.outcomes[0] = RETRY;
	f.s.noutcomes = 1;
	ctl_queue_add(f.q, "ns/a");

	/* Capture stderr around the one reconcile. */
	FILE *tmp = tmpfile();
	fflush(stderr);
	int saved = dup(2);
	dup2(fileno(tmp), 2);
	ctl_controller_process_next(f.c);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	CHECK(fgets(line, sizeof(line), tmp) != NULL);
	char extra[16];
	CHECK(fgets(extra, sizeof(extra), tmp) == NULL); /* exactly one line */
	fclose(tmp);

	cJSON *o = cJSON_Parse(line);
	CHECK(o != NULL);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "level")), "error");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "controller")), "agentpool");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "key")), "ns/a");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "reconcileID")), f.s.ids[0]);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "error")), "ARM said 429 for ns/a");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "reason")), "Throttled");
	cJSON_Delete(o);
	fixture_dispose(&f);
}

TEST(controller_reconcile_id_is_fresh_per_reconcile)
{
	struct fixture f;
	fixture_init(&f, 1, 0);
	ctl_queue_add(f.q, "ns/a");
	ctl_controller_process_next(f.c);
	ctl_queue_add(f.q, "ns/a");
	ctl_controller_process_next(f.c);
	CHECK_INT(strlen(f.s.ids[0]), 36);
	CHECK_INT(f.s.ids[0][14], '4'); /* UUID version 4 */
	CHECK(strcmp(f.s.ids[0], f.s.ids[1]) != 0);
	CHECK_STR(ctl_controller_reconcile_id(), "");
	fixture_dispose(&f);
}

TEST(controller_resync_adds_every_key)
{
	static const char *const keys[] = {"ns/a", "ns/b", "other/c", NULL};
	struct fixture f;
	fixture_init(&f, 1, 0);
	f.s.keys = keys;
	ctl_queue_add(f.q, "ns/a"); /* already queued: deduplicated */
	CHECK_INT(ctl_controller_resync(f.c), 0);
	CHECK_INT(ctl_queue_len(f.q), 3);
	fixture_dispose(&f);
}

static int all_reconciled(struct script *s, int n)
{
	return s->calls >= n;
}

TEST(controller_periodic_resync_follows_the_clock)
{
	static const char *const keys[] = {"ns/a", "ns/b", "ns/c", NULL};
	struct fixture f;
	fixture_init(&f, 2, 600 * CTL_SEC);
	f.s.keys = keys;
	CHECK_INT(ctl_controller_start(f.c), 0);
	ctl_clock_advance(f.clock, 600 * CTL_SEC);
	pthread_mutex_lock(&f.s.mu);
	while (!all_reconciled(&f.s, 3))
		pthread_cond_wait(&f.s.cond, &f.s.mu);
	pthread_mutex_unlock(&f.s.mu);
	ctl_clock_advance(f.clock, 600 * CTL_SEC);
	pthread_mutex_lock(&f.s.mu);
	while (!all_reconciled(&f.s, 6))
		pthread_cond_wait(&f.s.cond, &f.s.mu);
	pthread_mutex_unlock(&f.s.mu);
	CHECK_INT(ctl_controller_stop(f.c), 0);
	CHECK_INT(f.s.calls, 6);
	fixture_dispose(&f);
}

struct stopper {
	struct ctl_controller *c;
	int rc;
};

static void *stop_controller(void *arg)
{
	struct stopper *st = arg;
	st->rc = ctl_controller_stop(st->c);
	return NULL;
}

TEST(controller_workers_run_in_parallel_and_stop_lets_them_finish)
{
	struct fixture f;
	struct stopper st;
	pthread_t t;
	fixture_init(&f, 3, 0);
	for (int i = 0; i < 3; i++)
		f.s.outcomes[i] = BLOCK;
	f.s.noutcomes = 3;
	CHECK_INT(ctl_controller_start(f.c), 0);
	CHECK_INT(ctl_controller_start(f.c), CTL_EINVALID);
	ctl_queue_add(f.q, "ns/a");
	ctl_queue_add(f.q, "ns/b");
	ctl_queue_add(f.q, "ns/c");
	pthread_mutex_lock(&f.s.mu);
	while (f.s.in_flight < 3)
		pthread_cond_wait(&f.s.cond, &f.s.mu);
	pthread_mutex_unlock(&f.s.mu);
	ctl_queue_add(f.q, "ns/d"); /* queued behind three busy workers */

	st.c = f.c;
	pthread_create(&t, NULL, stop_controller, &st);
	/* Release the workers only once intake has stopped, so "ns/d" is
	 * certain to be left alone. */
	while (!ctl_queue_shutting_down(f.q))
		sched_yield();
	pthread_mutex_lock(&f.s.mu);
	f.s.gate_open = 1;
	pthread_cond_broadcast(&f.s.cond);
	pthread_mutex_unlock(&f.s.mu);
	pthread_join(t, NULL);
	CHECK_INT(st.rc, 0);
	CHECK_INT(f.s.calls, 3);
	ctl_queue_add(f.q, "ns/e"); /* ignored after stop */
	CHECK_INT(ctl_queue_len(f.q), 0);

	struct ctl_metric *g = NULL;
	double v = -1;
	ctl_metrics_gauge(&g, f.m, "controller_runtime_max_concurrent_reconciles", "",
			  (const char *[]){"controller", NULL});
	ctl_metric_get(&v, g, (const char *[]){"agentpool"});
	CHECK(v == 3);
	ctl_metrics_gauge(&g, f.m, "controller_runtime_active_workers", "",
			  (const char *[]){"controller", NULL});
	ctl_metric_get(&v, g, (const char *[]){"agentpool"});
	CHECK(v == 0);
	fixture_dispose(&f);
}

TEST(controller_stop_gives_up_after_grace_period)
{
	struct script s;
	struct ctl_controller *c = NULL;
	script_init(&s);
	s.outcomes[0] = BLOCK;
	s.noutcomes = 1;
	/* The real clock: the grace period has to pass for real, briefly. */
	struct ctl_controller_opts o = {.workers = 1, .grace_period_ns = 20 * CTL_MSEC};
	CHECK_INT(ctl_controller_new(&c, &reconciler, &s, &o), 0);
	CHECK_INT(ctl_controller_start(c), 0);
	ctl_queue_add(ctl_controller_queue(c), "ns/stuck");
	pthread_mutex_lock(&s.mu);
	while (s.in_flight < 1)
		pthread_cond_wait(&s.cond, &s.mu);
	pthread_mutex_unlock(&s.mu);
	CHECK_INT(ctl_controller_stop(c), CTL_EUNAVAIL);
	CHECK_STR(ctl_error_last()->reason, "GracePeriodExpired");
	pthread_mutex_lock(&s.mu);
	s.gate_open = 1;
	pthread_cond_broadcast(&s.cond);
	pthread_mutex_unlock(&s.mu);
	ctl_controller_free(c); /* joins the worker once it returns */
	script_dispose(&s);
}

TEST(controller_rejects_incomplete_reconciler)
{
	struct ctl_controller *c = NULL;
	struct ctl_ratelimiter *rl = NULL;
	struct ctl_reconciler r = {.name = "x"};
	ctl_ratelimiter_exponential_new(&rl, 1, 2);
	struct ctl_controller_opts o = {.limiter = rl}; /* freed even on failure */
	CHECK_INT(ctl_controller_new(&c, &r, NULL, &o), CTL_EINVALID);
	CHECK(c == NULL);
}

TEST_MAIN(T(controller_done_forgets_and_does_not_requeue),
	  T(controller_requeue_after_adds_key_after_delay), T(controller_error_retries_with_backoff),
	  T(controller_terminal_error_waits_for_next_add), T(controller_logs_one_json_line_per_error),
	  T(controller_reconcile_id_is_fresh_per_reconcile), T(controller_resync_adds_every_key),
	  T(controller_periodic_resync_follows_the_clock),
	  T(controller_workers_run_in_parallel_and_stop_lets_them_finish),
	  T(controller_stop_gives_up_after_grace_period), T(controller_rejects_incomplete_reconciler))
