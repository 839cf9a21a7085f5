/*
 * manager.h: starts and stops the runtime's parts in the right order, as
 * controller-runtime's manager does:
 *
 *   start: http endpoints -> informers -> wait until their caches synced
 *          -> leader election (when enabled) -> controllers
 *   stop:  controllers (in-flight reconciles finish within the grace
 *          period) -> release the Lease -> informers -> http endpoints
 *
 * Informers start before leadership so a standby replica keeps its caches
 * warm and takes over at once. /readyz turns ready when every informer has
 * synced; /healthz fails once leadership is lost. Losing the Lease ends
 * ctl_manager_run() with CTL_ECONFLICT at once, with every thread still
 * running: the caller must exit the process right away (_exit), so that
 * two replicas never act on Azure together.
 *
 * Metrics are secure when metrics_secure is set: HTTPS with a mounted
 * certificate (metrics_cert_dir/tls.crt and tls.key) or one made at start
 * (tlscert.h), and every GET /metrics reviewed by the API server through
 * the manager's client (review.h: TokenReview, then SubjectAccessReview for
 * get on /metrics). Probes stay plain HTTP on their own address, which must
 * then differ from the metrics address.
 */
#ifndef CTL_MANAGER_H
#define CTL_MANAGER_H

#include "controller.h"
#include "informer.h"
#include "kube.h"
#include "leader.h"
#include "metrics.h"

#include <stdbool.h>
#include <stdint.h>

struct ctl_manager;

struct ctl_manager_opts {
	const char *metrics_address;  /* "host:port" or ":port"; "0" or NULL: no metrics server */
	const char *health_address;   /* the same for /healthz and /readyz; may equal metrics_address
				       * unless metrics_secure */
	bool metrics_secure;          /* HTTPS + TokenReview/SubjectAccessReview on /metrics */
	const char *metrics_cert_dir; /* with tls.crt and tls.key; NULL: self-signed at start, for
				       * the host name, localhost, 127.0.0.1 and ::1 */
	int64_t grace_period_ns;      /* for controllers to finish; default 30 s */
	int64_t sync_timeout_ns;      /* give up waiting for caches; default 5 min */
	bool leader_elect;
	struct ctl_leader_opts leader; /* callbacks are the manager's own */
};

/* A manager with its own metrics registry (see ctl_manager_metrics). The
 * client must outlive it. */
int ctl_manager_new(struct ctl_manager **out, struct ctl_kube_client *client, const struct ctl_manager_opts *opts);
void ctl_manager_free(struct ctl_manager *m);

struct ctl_metrics *ctl_manager_metrics(struct ctl_manager *m);

/* Hand over an informer or a controller; the manager starts, stops and
 * frees them (informers after controllers). name labels the informer's
 * watch metrics (acrpool_watch_*{resource}). The manager also takes the
 * kube client's write hook (ctl_kube_client_set_write_observer): the
 * answers to our own writes go into the informer of their resource. */
void ctl_manager_add_informer(struct ctl_manager *m, const char *name, struct ctl_informer *inf);
void ctl_manager_add_controller(struct ctl_manager *m, struct ctl_controller *c);

/* Run until ctl_manager_stop() or lost leadership. Returns 0 after a clean
 * stop, CTL_ECONFLICT when leadership was lost, or the error that kept a
 * part from starting. Logs each phase (the manager is a loop). */
int ctl_manager_run(struct ctl_manager *m);

/* Ask run to return; safe from any thread, including a signal thread. */
void ctl_manager_stop(struct ctl_manager *m);

/* The bound ports (useful with port 0); 0 when not serving. */
int ctl_manager_metrics_port(struct ctl_manager *m);
int ctl_manager_health_port(struct ctl_manager *m);

/* Split "host:port", ":port", "[v6]:port" into host (NULL for any) and
 * port. CTL_EINVALID when malformed. */
int ctl_manager_parse_address(const char *addr, char **host, int *port);

#endif
