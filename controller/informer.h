/*
 * informer.h: keeps a store in step with the API server for one resource.
 *
 * One thread per watched namespace (or one for all namespaces) drives a
 * watcher (watch.h) against the kube client: list in pages, swap the
 * result into the store, watch from the list's resourceVersion with
 * bookmarks, resume, relist on 410, back off on errors. After each change
 * to the store it calls the handlers with the object's key, so a
 * controller can enqueue it; handlers run on the informer's threads,
 * without locks held, and must be quick and thread-safe (the work queue
 * is). Being level-based, a controller should only enqueue from them and
 * read the store when it reconciles.
 */
#ifndef CTL_INFORMER_H
#define CTL_INFORMER_H

#include "kube.h"
#include "store.h"

#include <stddef.h>

struct ctl_informer;

/* Any of these may be NULL. old is the object the store held before. */
struct ctl_informer_handlers {
	void (*on_add)(const char *key, const struct ctl_obj *obj, void *arg);
	void (*on_update)(const char *key, const struct ctl_obj *old, const struct ctl_obj *obj, void *arg);
	void (*on_delete)(const char *key, const struct ctl_obj *old, void *arg);
	void *arg;
};

struct ctl_informer_opts {
	struct ctl_gvr gvr;
	const char *const *namespaces; /* NULL-terminated; NULL or empty: all namespaces */
	const char *label_selector;
	const char *field_selector;
	long page_size;           /* list limit; default 500 */
	long timeout_seconds;     /* watch timeoutSeconds; default 290 */
	long idle_timeout_ms;     /* a stream silent this long is dead; default 120 s */
	long backoff_base_ms;     /* default 200 ms */
	long backoff_max_ms;      /* default 30 s */
	size_t max_line;          /* cap on one watch event; default 16 MiB */
};

/* Counters for metrics. Read at any time. */
struct ctl_informer_stats {
	unsigned long long lists;          /* complete lists swapped in */
	unsigned long long relists;        /* lists after the first, per namespace */
	unsigned long long watch_starts;   /* watch streams opened */
	unsigned long long watch_restarts; /* streams opened after the first, per namespace */
	unsigned long long events;         /* watch events, bookmarks included */
	unsigned long long errors;         /* failed lists and streams */
};

/* Create an informer; it copies opts and does not start. The client must
 * outlive it. Returns 0. */
int ctl_informer_new(struct ctl_informer **out, struct ctl_kube_client *client,
		     const struct ctl_informer_opts *opts, const struct ctl_informer_handlers *handlers);

/* Start the threads. Returns 0, or CTL_ERR when already started once. */
int ctl_informer_start(struct ctl_informer *inf);

/* Ask the threads to stop and join them: an open stream is aborted within
 * about a second, a backoff sleep at once. Safe to call twice. */
void ctl_informer_stop(struct ctl_informer *inf);

/* Stop (if running) and free. NULL is fine. */
void ctl_informer_free(struct ctl_informer *inf);

/* Has every namespace been listed at least once? */
int ctl_informer_has_synced(struct ctl_informer *inf);

/* Wait until synced, up to timeout_ms (< 0: forever). Returns 0, or
 * CTL_EUNAVAIL on timeout or stop. */
int ctl_informer_wait_synced(struct ctl_informer *inf, long timeout_ms);

/* Cache the API server's answer to this process's own write (json, taken
 * over) as if its watch event had come: the store holds it at once, so the
 * next reconcile reads what we wrote, not the version before, and the watch
 * event that follows with the same resourceVersion is dropped as already
 * seen. base_rv is the version the write was made on (see
 * ctl_store_offer: own_write). Handlers run as for a watch event. Returns 1
 * when the store took it, 0 when it held a newer version or the object is
 * outside the watched namespaces. */
int ctl_informer_observe(struct ctl_informer *inf, cJSON *json, const char *base_rv);

/* The resource it watches; owned by the informer. */
const struct ctl_gvr *ctl_informer_gvr(const struct ctl_informer *inf);

/* The store; owned by the informer. */
struct ctl_store *ctl_informer_store(struct ctl_informer *inf);

void ctl_informer_stats(const struct ctl_informer *inf, struct ctl_informer_stats *out);

#endif
