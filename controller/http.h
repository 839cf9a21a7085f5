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
 * Plain HTTP, or HTTPS when given a certificate (a PEM pair in memory, or
 * two files, which are looked at again at each new TLS handshake and
 * followed when they change), HTTP/1.1 only. An authorize callback, when
 * given, decides every GET /metrics before the registry is rendered (the
 * manager hands it a TokenReview/SubjectAccessReview reviewer, see
 * review.h); probes are never authorized. Probes, metrics callbacks and
 * authorize_cached run on the service thread, so a slow one delays the
 * next request of this server only (the manager runs metrics and probes on
 * two servers, each with its thread). authorize, which may wait on the API
 * server, runs on worker threads: other requests go on meanwhile.
 * libwebsockets' own log is set to errors and warnings, forwarded to the
 * JSON log (its service thread is a loop, which may log).
 */
#ifndef CTL_HTTP_H
#define CTL_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct ctl_buf;
struct ctl_metrics;
struct ctl_http;

/* Return 0 when healthy/ready; otherwise append a short reason to reason
 * and return non-zero. */
typedef int (*ctl_probe_fn)(struct ctl_buf *reason, void *ud);

/* Decide a request for path with this Authorization header value (NULL
 * when absent) and verb (lower case, "get"). Return the HTTP status: 200
 * to serve it, anything else to answer with that status and what was
 * appended to body. */
typedef int (*ctl_http_auth_fn)(const char *authorization, const char *verb, const char *path,
				struct ctl_buf *body, void *ud);

struct ctl_http_opts {
	const char *bind_address;      /* an IPv4 or IPv6 address; NULL: 0.0.0.0 */
	int port;                      /* 0: an ephemeral port (see ctl_http_port) */
	struct ctl_metrics *metrics;   /* NULL: /metrics is 404 */
	ctl_probe_fn healthz;          /* NULL: always healthy */
	void *healthz_ud;
	ctl_probe_fn readyz;           /* NULL: always ready */
	void *readyz_ud;
	/* authorize may block: it runs on one of authorize_workers threads
	 * (0: 4) while the connection waits, at most authorize_timeout_ns
	 * (0: 10 s; then 503). At most authorize_max_pending (0: 64) requests
	 * wait for it at once; more are answered 503 at once. When set,
	 * authorize_cached is asked first, on the service thread, and must
	 * not block: it answers as authorize would, or 0 when it cannot
	 * tell without asking (then authorize is asked). Both get
	 * authorize_ud. */
	ctl_http_auth_fn authorize;    /* NULL: /metrics open to all */
	ctl_http_auth_fn authorize_cached;
	void *authorize_ud;
	int authorize_workers;
	int authorize_max_pending;
	int64_t authorize_timeout_ns;
	/* TLS: a PEM certificate (chain) and key, either in memory or as
	 * files; all NULL: plain HTTP. */
	const char *tls_cert_pem, *tls_key_pem;
	size_t tls_cert_len, tls_key_len;
	const char *tls_cert_file, *tls_key_file;
};

/* Bind and start serving. The registry and probe payloads must outlive the
 * server; the TLS material is copied or read now (files are read again
 * when they change; see tlscert.h). Returns 0, or CTL_ERR when the address
 * cannot be bound or the certificate cannot be used. */
int ctl_http_new(struct ctl_http **out, const struct ctl_http_opts *opts);

/* The port actually bound (useful with port 0). */
int ctl_http_port(const struct ctl_http *h);

/* Stop serving and join the service and worker threads; open connections
 * are closed. A worker in the middle of authorize is waited for. Safe to
 * call twice. */
void ctl_http_stop(struct ctl_http *h);

/* Stop and free. */
void ctl_http_free(struct ctl_http *h);

#endif
