/*
 * metrics.h: a small Prometheus registry and the text exposition format
 * 0.0.4 (what client_golang's expfmt writes).
 *
 * A registry owns metric families; a family (struct ctl_metric) has a name,
 * a help string, a type (counter, gauge, histogram) and label names; each
 * distinct tuple of label values is one series, created on first use. A
 * family holds at most CTL_METRICS_MAX_SERIES series: past that, updates to
 * new series are dropped with CTL_ETOOBIG, so a label fed from untrusted
 * input cannot grow memory without bound. A family without labels has its
 * one series from the start (exported as 0 before any update).
 *
 * Registering a name again with the same type and labels returns the family
 * already registered, so two work queues can share workqueue_depth and tell
 * themselves apart by their "name" label. A NULL registry hands out NULL
 * families, and every update on a NULL family does nothing: code can record
 * metrics unconditionally.
 *
 * A gauge series may be a callback (ctl_metric_set_func) read at scrape
 * time. Scrapes hold the registry lock while they call callbacks, and
 * ctl_metric_remove takes that lock, so once remove returns the callback
 * will not be called again and its payload may be freed. Callbacks must
 * not register or remove metrics.
 *
 * Thread safety: everything here may be called from any thread. Updates
 * take only their family's mutex, never the registry's, so they may be made
 * while holding a lock that a gauge callback also takes (the work queue
 * does this).
 *
 * Standard names used by the runtime: workqueue_* (label name),
 * controller_runtime_* (label controller), rest_client_* (see
 * ctl_metrics_rest_client_observe).
 */
#ifndef CTL_METRICS_H
#define CTL_METRICS_H

#include <stddef.h>

struct ctl_buf;
struct ctl_metrics;
struct ctl_metric;

#define CTL_METRICS_MAX_SERIES 2000

/* Called at scrape time for a gauge or counter series; returns its value
 * (a counter's must never go down: read a monotonic tally kept elsewhere). */
typedef double (*ctl_gauge_fn)(void *ud);

int ctl_metrics_new(struct ctl_metrics **out);
void ctl_metrics_free(struct ctl_metrics *m);

/* Register (or find) a family. labels is a NULL-terminated array of label
 * names, or NULL for none. Returns 0 with *out set (NULL when m is NULL);
 * CTL_EINVALID for a malformed metric or label name; CTL_ECONFLICT when
 * name is already registered with another type, labels or buckets.
 * The family lives as long as the registry. */
int ctl_metrics_counter(struct ctl_metric **out, struct ctl_metrics *m, const char *name,
			const char *help, const char *const labels[]);
int ctl_metrics_gauge(struct ctl_metric **out, struct ctl_metrics *m, const char *name,
		      const char *help, const char *const labels[]);

/* buckets: nbuckets strictly increasing upper bounds (+Inf is implicit),
 * or NULL for the client_golang defaults (0.005 ... 10 seconds). */
int ctl_metrics_histogram(struct ctl_metric **out, struct ctl_metrics *m, const char *name,
			  const char *help, const char *const labels[],
			  const double *buckets, size_t nbuckets);

/* Updates. values has one entry per label name of the family, in order
 * (NULL when the family has no labels; a NULL entry counts as ""). All
 * return 0; CTL_EINVALID when the operation does not fit the type
 * (add/inc: counter or gauge, and a counter only goes up; set: gauge;
 * observe: histogram); CTL_ETOOBIG when the family is full. */
int ctl_metric_inc(struct ctl_metric *f, const char *const values[]);
int ctl_metric_add(struct ctl_metric *f, const char *const values[], double v);
int ctl_metric_set(struct ctl_metric *f, const char *const values[], double v);
int ctl_metric_observe(struct ctl_metric *f, const char *const values[], double v);

/* Make a gauge or counter series a callback: fn(ud) is called at each
 * scrape and by ctl_metric_get, so the value is exact when read. The series
 * keeps ud until ctl_metric_remove (or ctl_metrics_free). */
int ctl_metric_set_func(struct ctl_metric *f, const char *const values[], ctl_gauge_fn fn,
			void *ud);

/* Delete a series (e.g. a pool that is gone). Waits for a scrape in
 * progress. Returns 0, or CTL_ENOTFOUND. Must not be called from a gauge
 * callback. */
int ctl_metric_remove(struct ctl_metric *f, const char *const values[]);

/* Current value of a series: a counter's or gauge's value (a callback is
 * called), a histogram's observation count. Returns 0, or CTL_ENOTFOUND. */
int ctl_metric_get(double *out, struct ctl_metric *f, const char *const values[]);

/* Append the whole registry in text format 0.0.4 to out: families sorted
 * by name, series by label values. Returns 0, or CTL_ETOOBIG when out's
 * cap is reached. */
int ctl_metrics_render(struct ctl_metrics *m, struct ctl_buf *out);

/* The client-go request metrics, for HTTP clients of the runtime:
 * rest_client_requests_total{host,verb,code} and
 * rest_client_request_duration_seconds{host,verb}. code is the HTTP status
 * as text, or "<error>" when no response arrived. Returns 0 or an error of
 * the calls above. */
int ctl_metrics_rest_client_observe(struct ctl_metrics *m, const char *host, const char *verb,
				    const char *code, double seconds);

/* Format v as client_golang does (shortest round-trip, %e outside
 * [1e-4, 1e6), "+Inf", "-Inf", "NaN") into buf of at least 32 bytes. */
void ctl_metrics_format_value(char *buf, size_t size, double v);

#endif
