/*
 * manager.c: start order, stop order and readiness. See manager.h.
 */
#include "manager.h"

#include "buf.h"
#include "error.h"
#include "http.h"
#include "log.h"
#include "review.h"
#include "store.h"
#include "tlscert.h"
#include "xalloc.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The watch counters are the informers' own tallies, and the cache gauges
 * their stores' own counts, read at scrape time (a copy synced now and then
 * made a test that read the metric right after the relist it caused see
 * the old value). */
enum tally { TALLY_RESTARTS, TALLY_RELISTS, TALLY_EVENTS, TALLY_OBJECTS, TALLY_BYTES, N_TALLIES };

struct informer_tally {
	struct ctl_informer *inf;
	enum tally which;
};

static double read_tally(void *arg)
{
	const struct informer_tally *t = arg;
	struct ctl_informer_stats st;
	size_t objects, bytes;
	switch (t->which) {
	case TALLY_OBJECTS:
	case TALLY_BYTES:
		ctl_store_footprint(ctl_informer_store(t->inf), &objects, &bytes);
		return (double)(t->which == TALLY_OBJECTS ? objects : bytes);
	default:
		ctl_informer_stats(t->inf, &st);
		return (double)(t->which == TALLY_RESTARTS ? st.watch_restarts
				: t->which == TALLY_RELISTS ? st.relists
							    : st.events);
	}
}

struct named_informer {
	char *name;
	struct ctl_informer *inf;
	struct informer_tally *tallies; /* N_TALLIES, for the callbacks */
};

struct ctl_manager {
	struct ctl_kube_client *client;
	struct ctl_manager_opts opts;
	char *metrics_address, *health_address;
	struct ctl_metrics *metrics;
	struct ctl_metric *tally_families[N_TALLIES]; /* in enum tally's order */
	struct ctl_http *metrics_http, *health_http;
	char *metrics_cert_dir;
	struct ctl_reviewer *reviewer;     /* when metrics are secure */
	unsigned long trim_seen;           /* trim_when_quiet's: the reconciles it last saw, */
	int64_t trim_changed_ns;           /* when that count last moved, */
	bool trim_due;                     /* and whether work came since the last trim */
	struct named_informer *informers;
	size_t n_informers;
	struct ctl_controller **controllers;
	size_t n_controllers;
	struct ctl_leader *leader;

	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool stop;
	bool leading;
	bool lost;
};

int ctl_manager_parse_address(const char *addr, char **host, int *port)
{
	*host = NULL;
	*port = 0;
	if (!addr || !*addr)
		return ctl_error_set(CTL_EINVALID, "BadAddress", "empty bind address");
	const char *colon = strrchr(addr, ':');
	if (!colon)
		return ctl_error_set(CTL_EINVALID, "BadAddress", "bind address \"%s\" has no :port", addr);
	char *end;
	errno = 0;
	long p = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || p < 0 || p > 65535)
		return ctl_error_set(CTL_EINVALID, "BadAddress", "bad port in bind address \"%s\"", addr);
	const char *h = addr;
	size_t len = (size_t)(colon - addr);
	if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
		h++;
		len -= 2;
	}
	*host = len ? xstrndup(h, len) : NULL;
	*port = (int)p;
	return 0;
}

static void on_started_leading(void *arg)
{
	struct ctl_manager *m = arg;
	pthread_mutex_lock(&m->mu);
	m->leading = true;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->mu);
}

static void on_stopped_leading(void *arg)
{
	struct ctl_manager *m = arg;
	pthread_mutex_lock(&m->mu);
	m->lost = m->leading && !m->stop;
	m->leading = false;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->mu);
}

int ctl_manager_new(struct ctl_manager **out, struct ctl_kube_client *client, const struct ctl_manager_opts *opts)
{
	struct ctl_manager *m = xcalloc(1, sizeof(*m));
	m->client = client;
	m->opts = *opts;
	m->metrics_address = xstrdup(opts->metrics_address);
	m->health_address = xstrdup(opts->health_address);
	m->metrics_cert_dir = xstrdup(opts->metrics_cert_dir && *opts->metrics_cert_dir ? opts->metrics_cert_dir : NULL);
	m->opts.metrics_cert_dir = m->metrics_cert_dir;
	if (m->opts.grace_period_ns <= 0)
		m->opts.grace_period_ns = 30 * CTL_SEC;
	if (m->opts.sync_timeout_ns <= 0)
		m->opts.sync_timeout_ns = 300 * CTL_SEC;
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cond, NULL);
	ctl_metrics_new(&m->metrics);
	static const char *const labels[] = {"resource", NULL};
	ctl_metrics_counter(&m->tally_families[TALLY_RESTARTS], m->metrics, "acrpool_watch_restarts_total",
			    "Watch streams reopened after the first, by resource.", labels);
	ctl_metrics_counter(&m->tally_families[TALLY_RELISTS], m->metrics, "acrpool_watch_relists_total",
			    "Full relists after the first list (410 Gone, errors), by resource.", labels);
	ctl_metrics_counter(&m->tally_families[TALLY_EVENTS], m->metrics, "acrpool_watch_events_total",
			    "Watch events received, bookmarks included, by resource.", labels);
	ctl_metrics_gauge(&m->tally_families[TALLY_OBJECTS], m->metrics, "acrpool_cache_objects",
			  "Objects in the informer's cache, by resource.", labels);
	ctl_metrics_gauge(&m->tally_families[TALLY_BYTES], m->metrics, "acrpool_cache_bytes",
			  "Heap bytes the informer's cache holds (records, table, references), by resource.", labels);
	if (opts->leader_elect) {
		struct ctl_leader_opts lo = opts->leader;
		lo.on_started_leading = on_started_leading;
		lo.on_stopped_leading = on_stopped_leading;
		lo.arg = m;
		int rc = ctl_leader_new(&m->leader, client, &lo);
		if (rc != 0) {
			ctl_manager_free(m);
			return rc;
		}
	}
	*out = m;
	return 0;
}

void ctl_manager_free(struct ctl_manager *m)
{
	if (!m)
		return;
	/* The endpoints first: a scrape reads the informers' tallies. */
	ctl_http_free(m->metrics_http);
	ctl_http_free(m->health_http);
	ctl_reviewer_free(m->reviewer);
	free(m->metrics_cert_dir);
	for (size_t i = 0; i < m->n_controllers; i++)
		ctl_controller_free(m->controllers[i]);
	for (size_t i = 0; i < m->n_informers; i++) {
		ctl_informer_free(m->informers[i].inf);
		free(m->informers[i].name);
	}
	ctl_leader_free(m->leader);
	ctl_metrics_free(m->metrics);
	for (size_t i = 0; i < m->n_informers; i++)
		free(m->informers[i].tallies);
	free(m->controllers);
	free(m->informers);
	free(m->metrics_address);
	free(m->health_address);
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->cond);
	free(m);
}

struct ctl_metrics *ctl_manager_metrics(struct ctl_manager *m)
{
	return m->metrics;
}

/* The API server's answer to one of our writes goes to the informer of
 * its resource, so the cache holds what a reconcile wrote before the next
 * reconcile reads it (and the write's own watch event is then dropped). */
static void on_write(const struct ctl_gvr *gvr, cJSON *answer, const char *base_rv, void *arg)
{
	struct ctl_manager *m = arg;
	for (size_t i = 0; i < m->n_informers; i++) {
		const struct ctl_gvr *g = ctl_informer_gvr(m->informers[i].inf);
		if (!strcmp(g->group, gvr->group) && !strcmp(g->version, gvr->version) &&
		    !strcmp(g->resource, gvr->resource)) {
			ctl_informer_observe(m->informers[i].inf, answer, base_rv);
			return;
		}
	}
	cJSON_Delete(answer);
}

void ctl_manager_add_informer(struct ctl_manager *m, const char *name, struct ctl_informer *inf)
{
	if (!m->n_informers)
		ctl_kube_client_set_write_observer(m->client, on_write, m);
	m->informers = xrealloc(m->informers, (m->n_informers + 1) * sizeof(*m->informers));
	struct named_informer *ni = &m->informers[m->n_informers++];
	ni->name = xstrdup(name);
	ni->inf = inf;
	ni->tallies = xcalloc(N_TALLIES, sizeof(*ni->tallies));
	const char *labels[] = {name, NULL};
	for (int i = 0; i < N_TALLIES; i++) {
		ni->tallies[i] = (struct informer_tally){inf, (enum tally)i};
		ctl_metric_set_func(m->tally_families[i], labels, read_tally, &ni->tallies[i]);
	}
}

void ctl_manager_add_controller(struct ctl_manager *m, struct ctl_controller *c)
{
	m->controllers = xrealloc(m->controllers, (m->n_controllers + 1) * sizeof(*m->controllers));
	m->controllers[m->n_controllers++] = c;
}

void ctl_manager_stop(struct ctl_manager *m)
{
	pthread_mutex_lock(&m->mu);
	m->stop = true;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->mu);
}

static int readyz(struct ctl_buf *reason, void *ud)
{
	struct ctl_manager *m = ud;
	for (size_t i = 0; i < m->n_informers; i++) {
		if (!ctl_informer_has_synced(m->informers[i].inf)) {
			ctl_buf_printf(reason, "cache of %s not synced\n", m->informers[i].name);
			return 1;
		}
	}
	return 0;
}

static int healthz(struct ctl_buf *reason, void *ud)
{
	struct ctl_manager *m = ud;
	pthread_mutex_lock(&m->mu);
	bool lost = m->lost;
	pthread_mutex_unlock(&m->mu);
	if (lost) {
		ctl_buf_puts(reason, "leader election lost\n");
		return 1;
	}
	return 0;
}

/* The metrics server's authorize callback, on its worker threads: the
 * reviewer's decision. A review that failed is logged here (the worker is
 * a loop): it means the API server is unreachable or refuses us
 * TokenReviews. */
static int authorize(const char *authorization, const char *verb, const char *path, struct ctl_buf *body,
		     void *ud)
{
	struct ctl_manager *m = ud;
	int status = ctl_reviewer_check(m->reviewer, authorization, verb, path, body);
	if (status == 500)
		ctl_log(CTL_LOG_WARN, "cannot review a metrics request", "error", ctl_error_last()->message, NULL);
	else if (status != 200)
		ctl_log(CTL_LOG_DEBUG, "metrics request refused", "status", status == 401 ? "401" : "403", NULL);
	return status;
}

/* The same from the cache alone, on the metrics server's service thread:
 * 0 when a review is needed. */
static int authorize_cached(const char *authorization, const char *verb, const char *path,
			    struct ctl_buf *body, void *ud)
{
	struct ctl_manager *m = ud;
	return ctl_reviewer_check_cached(m->reviewer, authorization, verb, path, body);
}

/* The serving certificate: the mounted pair, whose paths go into o (the
 * server reads the files when it starts, and again when they change), or
 * a self-signed one made now into cert. */
static int metrics_tls(struct ctl_manager *m, struct ctl_http_opts *o, struct ctl_tlscert *cert, char **crt,
		       char **key)
{
	if (m->metrics_cert_dir) {
		*crt = xasprintf("%s/tls.crt", m->metrics_cert_dir);
		*key = xasprintf("%s/tls.key", m->metrics_cert_dir);
		if (access(*crt, R_OK) != 0 || access(*key, R_OK) != 0)
			return ctl_error_set(CTL_EINVALID, "MetricsCertificate", "cannot read %s and %s", *crt, *key);
		o->tls_cert_file = *crt;
		o->tls_key_file = *key;
		return 0;
	}
	char host[256];
	if (gethostname(host, sizeof(host)) != 0 || !host[0])
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	const char *names[] = {host, "localhost", "127.0.0.1", "::1", NULL};
	int rc = ctl_tlscert_self_signed(cert, names);
	if (rc != 0)
		return rc;
	o->tls_cert_pem = cert->cert_pem;
	o->tls_cert_len = cert->cert_len;
	o->tls_key_pem = cert->key_pem;
	o->tls_key_len = cert->key_len;
	return 0;
}

static int start_http(struct ctl_manager *m)
{
	char *host = NULL;
	int port, rc = 0;
	/* Probes share the metrics server only when it is plain HTTP; with
	 * secure metrics the same host:port is a bind error on the second. */
	bool same = !m->opts.metrics_secure && m->metrics_address && m->health_address &&
		    strcmp(m->metrics_address, m->health_address) == 0;
	if (m->metrics_address && strcmp(m->metrics_address, "0") != 0) {
		if ((rc = ctl_manager_parse_address(m->metrics_address, &host, &port)) != 0)
			return rc;
		struct ctl_http_opts o = {.bind_address = host, .port = port, .metrics = m->metrics};
		struct ctl_tlscert cert = CTL_TLSCERT_INIT;
		char *crt = NULL, *key = NULL;
		if (same) {
			o.healthz = healthz;
			o.healthz_ud = m;
			o.readyz = readyz;
			o.readyz_ud = m;
		}
		if (m->opts.metrics_secure) {
			if (!m->reviewer)
				ctl_reviewer_new(&m->reviewer, m->client, NULL);
			o.authorize = authorize;
			o.authorize_cached = authorize_cached;
			o.authorize_ud = m;
			rc = metrics_tls(m, &o, &cert, &crt, &key);
		}
		if (rc == 0)
			rc = ctl_http_new(&m->metrics_http, &o);
		/* The server holds its own copy of the certificate now. */
		ctl_tlscert_dispose(&cert);
		free(crt);
		free(key);
		free(host);
		host = NULL;
		if (rc != 0)
			return rc;
		char port_s[16];
		snprintf(port_s, sizeof(port_s), "%d", ctl_http_port(m->metrics_http));
		ctl_log(CTL_LOG_INFO, "serving metrics", "address", m->metrics_address, "port", port_s, "secure",
			m->opts.metrics_secure ? "true" : "false", "certificate",
			!m->opts.metrics_secure ? "none" : m->metrics_cert_dir ? m->metrics_cert_dir : "self-signed",
			NULL);
	}
	if (!same && m->health_address && strcmp(m->health_address, "0") != 0) {
		if ((rc = ctl_manager_parse_address(m->health_address, &host, &port)) != 0)
			return rc;
		struct ctl_http_opts o = {.bind_address = host, .port = port,
					  .healthz = healthz, .healthz_ud = m, .readyz = readyz, .readyz_ud = m};
		rc = ctl_http_new(&m->health_http, &o);
		free(host);
		if (rc != 0)
			return rc;
		char port_s[16];
		snprintf(port_s, sizeof(port_s), "%d", ctl_http_port(m->health_http));
		ctl_log(CTL_LOG_INFO, "serving health probes", "address", m->health_address, "port", port_s, NULL);
	}
	return 0;
}

int ctl_manager_metrics_port(struct ctl_manager *m)
{
	return m->metrics_http ? ctl_http_port(m->metrics_http) : 0;
}

int ctl_manager_health_port(struct ctl_manager *m)
{
	if (m->health_http)
		return ctl_http_port(m->health_http);
	return ctl_manager_metrics_port(m);
}

/* Wait on the manager's condition until pred holds, stop is asked, or the
 * deadline (monotonic ns, < 0: none) passes. Returns pred's value. */
static bool wait_for(struct ctl_manager *m, bool (*pred)(struct ctl_manager *), int64_t deadline)
{
	pthread_mutex_lock(&m->mu);
	for (;;) {
		pthread_mutex_unlock(&m->mu);
		bool ok = pred(m);
		pthread_mutex_lock(&m->mu);
		if (ok || m->stop || m->lost || (deadline >= 0 && ctl_clock_now(NULL) >= deadline)) {
			pthread_mutex_unlock(&m->mu);
			return ok;
		}
		/* Informers have no way to signal us; look again every 100 ms. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&m->cond, &m->mu, &ts);
	}
}

static bool all_synced(struct ctl_manager *m)
{
	for (size_t i = 0; i < m->n_informers; i++)
		if (!ctl_informer_has_synced(m->informers[i].inf))
			return false;
	return true;
}

static bool is_leading(struct ctl_manager *m)
{
	pthread_mutex_lock(&m->mu);
	bool l = m->leading;
	pthread_mutex_unlock(&m->mu);
	return l;
}

/* Once the controllers have been quiet for QUIET_TRIM_NS after some work,
 * hand malloc's free pages back to the kernel. The workers trim during a
 * burst (controller.c, trim_when_idle), but what the watch, Event sender
 * and HTTP threads free after the last reconcile stays resident until the
 * next burst: 1.2 to 1.8 MiB of a settled operator's RSS with 2,000 pools,
 * Tasks or TaskRuns (malloc's own count, read with gdb). Called from the
 * run loop every 100 ms; never true. */
#define QUIET_TRIM_NS (2 * CTL_SEC)
static bool trim_when_quiet(struct ctl_manager *m)
{
#ifdef __GLIBC__
	unsigned long n = ctl_controller_finished();
	int64_t now = ctl_clock_now(NULL);
	if (n != m->trim_seen) {
		m->trim_seen = n;
		m->trim_changed_ns = now;
		m->trim_due = true;
	} else if (m->trim_due && now - m->trim_changed_ns >= QUIET_TRIM_NS) {
		m->trim_due = false;
		malloc_trim(0);
	}
#else
	(void)m;
#endif
	return false;
}

int ctl_manager_run(struct ctl_manager *m)
{
	int rc = 0;
	size_t started_informers = 0, started_controllers = 0;
	bool leader_started = false;

	if ((rc = start_http(m)) != 0) {
		ctl_log(CTL_LOG_ERROR, "cannot serve metrics or health probes", "error", ctl_error_last()->message,
			NULL);
		goto stop;
	}
	for (; started_informers < m->n_informers; started_informers++) {
		if ((rc = ctl_informer_start(m->informers[started_informers].inf)) != 0)
			goto stop;
	}
	ctl_log(CTL_LOG_INFO, "waiting for caches to sync", NULL);
	if (!wait_for(m, all_synced, ctl_clock_now(NULL) + m->opts.sync_timeout_ns)) {
		if (!m->stop) {
			rc = ctl_error_set(CTL_EUNAVAIL, "CacheSyncTimeout", "caches did not sync in time");
			ctl_log(CTL_LOG_ERROR, "caches did not sync in time", NULL);
		}
		goto stop;
	}
	ctl_log(CTL_LOG_INFO, "caches synced", NULL);
	if (m->leader) {
		if ((rc = ctl_leader_start(m->leader)) != 0)
			goto stop;
		leader_started = true;
		ctl_log(CTL_LOG_INFO, "waiting for leadership", "lease", m->opts.leader.name,
			"identity", m->opts.leader.identity, NULL);
		if (!wait_for(m, is_leading, -1))
			goto stop;
		ctl_log(CTL_LOG_INFO, "became leader", "identity", m->opts.leader.identity, NULL);
	}
	for (; started_controllers < m->n_controllers; started_controllers++) {
		if ((rc = ctl_controller_start(m->controllers[started_controllers])) != 0)
			goto stop;
	}
	ctl_log(CTL_LOG_INFO, "controllers started", NULL);
	wait_for(m, trim_when_quiet, -1);

stop:
	pthread_mutex_lock(&m->mu);
	bool lost = m->lost;
	pthread_mutex_unlock(&m->mu);
	if (lost) {
		/* Another replica may be acting already: do not wait for
		 * in-flight work or touch anything; the caller exits now. */
		ctl_log(CTL_LOG_ERROR, "leader election lost; exiting", NULL);
		return CTL_ECONFLICT;
	}
	ctl_log(CTL_LOG_INFO, "stopping", NULL);
	for (size_t i = 0; i < started_controllers; i++) {
		if (ctl_controller_stop(m->controllers[i]) != 0)
			ctl_log(CTL_LOG_WARN, "reconciles still running after the grace period", NULL);
	}
	if (leader_started)
		ctl_leader_stop(m->leader, true);
	for (size_t i = 0; i < started_informers; i++)
		ctl_informer_stop(m->informers[i].inf);
	if (m->metrics_http)
		ctl_http_stop(m->metrics_http);
	if (m->health_http)
		ctl_http_stop(m->health_http);
	return rc;
}
