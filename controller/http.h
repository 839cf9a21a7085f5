/*
 * http.h: the operator's own HTTP endpoints, served by libwebsockets on a
 * thread of their own.
 *
 *   GET /metrics   200, text/plain; version=0.0.4: the metrics registry
 *   GET /healthz   200 "ok" while the health probe passes, else 500 and
 *                  the probe's reason (liveness: is a loop wedged?)
 *   GET /readyz    200 "ok" once the readiness probe passes (caches
 *                  synced), else 503 and the probe's reason
 *   anything else  404; a method other than GET on a known path is 405
 *
 * Plain HTTP only; these endpoints carry no secrets. Probes and metrics
 * callbacks run on the service thread, so they must not block for long.
 * libwebsockets' own log is set to errors and warnings, forwarded to the
 * JSON log (its service thread is a loop, which may log).
 */
#ifndef CTL_HTTP_H
#define CTL_HTTP_H

struct ctl_buf;
struct ctl_metrics;
struct ctl_http;

/* Return 0 when healthy/ready; otherwise append a short reason to reason
 * and return non-zero. */
typedef int (*ctl_probe_fn)(struct ctl_buf *reason, void *ud);

struct ctl_http_opts {
	const char *bind_address;      /* an IPv4 or IPv6 address; NULL: 0.0.0.0 */
	int port;                      /* 0: an ephemeral port (see ctl_http_port) */
	struct ctl_metrics *metrics;   /* NULL: /metrics is 404 */
	ctl_probe_fn healthz;          /* NULL: always healthy */
	void *healthz_ud;
	ctl_probe_fn readyz;           /* NULL: always ready */
	void *readyz_ud;
};

/* Bind and start serving. The registry and probe payloads must outlive the
 * server. Returns 0, or CTL_ERR when the address cannot be bound. */
int ctl_http_new(struct ctl_http **out, const struct ctl_http_opts *opts);

/* The port actually bound (useful with port 0). */
int ctl_http_port(const struct ctl_http *h);

/* Stop serving and join the service thread; open connections are closed.
 * Safe to call twice. */
void ctl_http_stop(struct ctl_http *h);

/* Stop and free. */
void ctl_http_free(struct ctl_http *h);

#endif
