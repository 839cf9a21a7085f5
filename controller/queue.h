/*
 * queue.h: the work queue of "namespace/name" keys, mapped one to one from
 * client-go's util/workqueue (queue.go, delaying_queue.go,
 * rate_limiting_queue.go).
 *
 * Guarantees, as in client-go:
 *   - a key is queued at most once however often it is added (dedup);
 *   - a key is never handed to two workers at once: a key added while a
 *     worker processes it is marked dirty and queued again by
 *     ctl_queue_done();
 *   - ctl_queue_add_after() holds a key back until its delay has passed
 *     (the earliest deadline wins if it is added after twice);
 *   - ctl_queue_add_rate_limited() delays by the queue's rate limiter;
 *     ctl_queue_forget() resets that key's backoff;
 *   - after ctl_queue_shutdown() adds are ignored, keys still queued are
 *     handed out, delayed keys are dropped, and ctl_queue_get() returns NULL
 *     once the queue is empty.
 *
 * The workqueue_* metrics (label name) are recorded when the options give a
 * registry and a name: depth, adds_total, queue_duration_seconds,
 * work_duration_seconds, retries_total, unfinished_work_seconds and
 * longest_running_processor_seconds.
 *
 * All functions are thread-safe.
 */
#ifndef CTL_QUEUE_H
#define CTL_QUEUE_H

#include <stddef.h>
#include <stdint.h>

struct ctl_clock;
struct ctl_metrics;
struct ctl_ratelimiter;
struct ctl_queue;

struct ctl_queue_opts {
	const char *name;                /* the metrics' name label; NULL: no metrics */
	struct ctl_metrics *metrics;     /* NULL: no metrics */
	struct ctl_clock *clock;         /* NULL: the real clock; must outlive the queue */
	struct ctl_ratelimiter *limiter; /* the queue owns it; NULL: ctl_ratelimiter_default_new */
};

/* opts may be NULL for all defaults. The queue takes opts->limiter even on
 * failure. Returns 0, or an error from registering the metrics
 * (CTL_EINVALID, CTL_ECONFLICT). */
int ctl_queue_new(struct ctl_queue **out, const struct ctl_queue_opts *opts);

/* Shut down if needed and free. No thread may still be inside a call. */
void ctl_queue_free(struct ctl_queue *q);

void ctl_queue_add(struct ctl_queue *q, const char *key);

/* Add key once delay_ns has passed on the queue's clock; delay_ns <= 0 is
 * ctl_queue_add. */
void ctl_queue_add_after(struct ctl_queue *q, const char *key, int64_t delay_ns);

/* Add key after the rate limiter's delay for it, and count a retry. */
void ctl_queue_add_rate_limited(struct ctl_queue *q, const char *key);

/* Forget key's failures in the rate limiter; and how many it has had. */
void ctl_queue_forget(struct ctl_queue *q, const char *key);
int ctl_queue_num_requeues(struct ctl_queue *q, const char *key);

/* Block until a key is ready and mark it processing. Returns the key (the
 * caller frees it, after ctl_queue_done), or NULL when the queue has shut
 * down and is empty. */
char *ctl_queue_get(struct ctl_queue *q);

/* The worker has finished key: if it was added again meanwhile, it goes
 * back on the queue now. */
void ctl_queue_done(struct ctl_queue *q, const char *key);

/* Keys ready to be handed out (not those processing, nor delayed ones). */
size_t ctl_queue_len(struct ctl_queue *q);

/* Stop taking adds and wake every blocked ctl_queue_get(). */
void ctl_queue_shutdown(struct ctl_queue *q);

/* ctl_queue_shutdown, then wait until every key handed out is done. */
void ctl_queue_shutdown_with_drain(struct ctl_queue *q);

int ctl_queue_shutting_down(struct ctl_queue *q);

#endif
