/*
 * controller.h: the controller loop (after controller-runtime's
 * pkg/internal/controller/controller.go).
 *
 * A controller owns a work queue and N worker threads. Each worker takes a
 * key, calls the reconciler, and acts on the outcome:
 *
 *   return 0, out->requeue_after_ns == 0   done: forget the key's backoff
 *   return 0, out->requeue_after_ns > 0    forget, then add_after(delay)
 *   return CTL_ETERMINAL                   terminal error: forget, no retry
 *                                          until someone adds the key again
 *                                          (the object changed)
 *   return any other negative code         retryable error: add_rate_limited
 *                                          (per-key backoff, global bucket)
 *
 * Errors are logged as one JSON line with controller, key and reconcileID
 * (the detail comes from ctl_error_last(), so reconcilers should return
 * through ctl_error_set). Every reconcile gets a fresh random reconcile id,
 * readable from inside the reconciler with ctl_controller_reconcile_id().
 *
 * A periodic resync asks the reconciler's list_keys for every key and adds
 * it: level-based reconciliation catches what a lost event missed.
 *
 * Metrics (label controller): controller_runtime_reconcile_total{result},
 * controller_runtime_reconcile_errors_total,
 * controller_runtime_terminal_reconcile_errors_total,
 * controller_runtime_reconcile_time_seconds,
 * controller_runtime_max_concurrent_reconciles,
 * controller_runtime_active_workers; and the queue's workqueue_* (label
 * name = the controller's name).
 */
#ifndef CTL_CONTROLLER_H
#define CTL_CONTROLLER_H

#include <stdint.h>

struct ctl_clock;
struct ctl_metrics;
struct ctl_queue;
struct ctl_ratelimiter;
struct ctl_controller;

/* What a successful reconcile asks for next. Zeroed before each call. */
struct ctl_result {
	int64_t requeue_after_ns; /* > 0: look again after this long */
};

typedef int (*ctl_reconcile_fn)(void *ctx, const char *key, struct ctl_result *out);
typedef void (*ctl_key_fn)(const char *key, void *ud);
/* Call each(key, ud) for every key that exists; return 0 or an error. */
typedef int (*ctl_list_keys_fn)(void *ctx, ctl_key_fn each, void *ud);

/* The table a reconciler hands to the runtime. ctx is given to
 * ctl_controller_new and passed to every call. */
struct ctl_reconciler {
	const char *name;            /* controller label and log field */
	ctl_reconcile_fn reconcile;  /* called from worker threads, one key at a time */
	ctl_list_keys_fn list_keys;  /* for resync; NULL: no resync */
};

struct ctl_controller_opts {
	int workers;                     /* concurrent reconciles; default 1 */
	int64_t resync_period_ns;        /* 0: no periodic resync */
	int64_t grace_period_ns;         /* how long stop waits; default 30 s */
	struct ctl_metrics *metrics;     /* NULL: no metrics */
	struct ctl_clock *clock;         /* NULL: the real clock */
	struct ctl_ratelimiter *limiter; /* the queue's; owned; NULL: default */
	int64_t max_retry_delay_ns;      /* without a limiter: the longest per-key
					    backoff after failures (0: 1000 s) */
};

/* r is copied (its name too); ctx must outlive the controller. opts may be
 * NULL. The controller owns opts->limiter even on failure. Returns 0,
 * CTL_EINVALID (no name or reconcile function), or a metrics registration
 * error. */
int ctl_controller_new(struct ctl_controller **out, const struct ctl_reconciler *r, void *ctx,
		       const struct ctl_controller_opts *opts);

/* Stop (waiting without a grace limit) and free. */
void ctl_controller_free(struct ctl_controller *c);

/* The queue, for event handlers to add keys to. Owned by the controller. */
struct ctl_queue *ctl_controller_queue(struct ctl_controller *c);

/* Start the workers and the resync timer. Returns 0, CTL_EINVALID when
 * already started, or CTL_ERR when a thread cannot be created (nothing is
 * left running). */
int ctl_controller_start(struct ctl_controller *c);

/* Stop intake (the queue shuts down; keys still queued are not
 * reconciled), let in-flight reconciles finish, and join the threads.
 * Returns 0, or CTL_EUNAVAIL when reconciles were still running after the
 * grace period: the threads are then left running (exit the process, or
 * call ctl_controller_free, which waits for them). */
int ctl_controller_stop(struct ctl_controller *c);

/* One worker iteration on the calling thread (controller-runtime's
 * processNextWorkItem): wait for a key, reconcile it, apply the outcome.
 * Returns 1 when a key was handled, 0 once the queue has shut down. For
 * tests and for callers that bring their own threads. */
int ctl_controller_process_next(struct ctl_controller *c);

/* Add every key list_keys reports, now. Returns list_keys' result, or 0
 * without list_keys. */
int ctl_controller_resync(struct ctl_controller *c);

/* The id of the reconcile running on this thread ("" outside one); a
 * 36-character random UUID. */
const char *ctl_controller_reconcile_id(void);

/* Reconciles finished by every controller of the process so far (the
 * manager trims malloc's free pages once this stops moving). */
unsigned long ctl_controller_finished(void);

#endif
