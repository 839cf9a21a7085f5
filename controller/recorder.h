/*
 * recorder.h: Kubernetes Events (events.k8s.io/v1) about our objects.
 *
 * Every state change of an object gets an Event, so `kubectl describe`
 * tells its history. The same event repeated (same object, type, reason
 * and note) within the aggregation window is not a new object: the first
 * one gets a series {count, lastObservedTime} that is patched instead, as
 * client-go's events broadcaster does, so a flapping condition cannot
 * flood etcd. Notes are cut to the API's 1 kB limit. Callers must never
 * put a secret in a note.
 *
 * Events are sent by threads of the recorder's own, each Event's requests
 * in the order they were recorded, so recording one does not wait for the
 * API server (client-go's broadcaster works the same way). Only when 1000
 * wait already does the caller wait for room (at most full_wait_ms). They
 * are best effort: one the API server refuses is logged, not retried.
 */
#ifndef CTL_RECORDER_H
#define CTL_RECORDER_H

#include "kube.h"
#include "store.h"

struct ctl_recorder;

struct ctl_recorder_opts {
	const char *controller;   /* reportingController, e.g. acrpool.dev/acrpool-controller */
	const char *instance;     /* reportingInstance: the pod name */
	long window_ms;           /* aggregation window; default 10 minutes */
	long long (*now_ms)(void);/* realtime clock in ms; NULL: the system clock */
	long full_wait_ms;        /* with 1000 Events waiting, how long a caller waits
				     for room before the Event is dropped; default 10 s */
};

int ctl_recorder_new(struct ctl_recorder **out, struct ctl_kube_client *client,
		     const struct ctl_recorder_opts *opts);
/* Send what is queued (for at most 5 s), stop the senders and free. */
void ctl_recorder_free(struct ctl_recorder *r);

/* Wait until every Event recorded so far has been sent (or refused). */
void ctl_recorder_flush(struct ctl_recorder *r);

/* Events dropped so far (no room in time, or recorded while stopping). */
unsigned long long ctl_recorder_dropped(struct ctl_recorder *r);

/* Record an event about obj. type is "Normal" or "Warning", reason is
 * CamelCase, action what the controller did ("Create", "Scale", ...).
 * Returns 0 once the Event is queued for sending, or CTL_EUNAVAIL when it
 * was dropped (still 1000 waiting after full_wait_ms, or the recorder is
 * stopping).
 * Thread-safe. */
int ctl_recorder_event(struct ctl_recorder *r, const struct ctl_obj *obj, const char *type,
		       const char *reason, const char *action, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

#endif
