/*
 * leader.c: Lease-based leader election. See leader.h.
 *
 * The elector is one thread with two phases, like client-go's
 * LeaderElector.Run: acquire (try every retry period until we hold the
 * Lease) and renew (try every retry period; give up when no renewal has
 * succeeded for the renew deadline). Every try is a GET then, when we may
 * take or keep the Lease, a PUT carrying the resourceVersion we read: two
 * replicas racing for an expired Lease cannot both win, the second PUT
 * gets 409.
 */
#include "leader.h"

#include "error.h"
#include "xalloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct ctl_gvr lease_gvr = {"coordination.k8s.io", "v1", "leases"};

struct ctl_leader {
	struct ctl_kube_client *client;
	struct ctl_leader_opts opts;
	char *ns, *name, *identity;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool stopping;
	atomic_bool leader;
	atomic_ulong transitions;
	/* What we last saw in the Lease and when (monotonic). */
	char *observed_record;
	int64_t observed_at;
};

int ctl_leader_new(struct ctl_leader **out, struct ctl_kube_client *client, const struct ctl_leader_opts *opts)
{
	if (!opts->namespace || !opts->name || !opts->identity || !*opts->identity)
		return ctl_error_set(CTL_EINVALID, "BadLeaderConfig", "leader election needs a namespace, name and identity");
	struct ctl_leader *l = xcalloc(1, sizeof(*l));
	l->client = client;
	l->opts = *opts;
	l->ns = xstrdup(opts->namespace);
	l->name = xstrdup(opts->name);
	l->identity = xstrdup(opts->identity);
	l->opts.namespace = l->ns;
	l->opts.name = l->name;
	l->opts.identity = l->identity;
	if (l->opts.lease_duration_ns <= 0)
		l->opts.lease_duration_ns = 15 * CTL_SEC;
	if (l->opts.renew_deadline_ns <= 0)
		l->opts.renew_deadline_ns = 10 * CTL_SEC;
	if (l->opts.retry_period_ns <= 0)
		l->opts.retry_period_ns = 2 * CTL_SEC;
	pthread_mutex_init(&l->mu, NULL);
	ctl_clock_cond_init(&l->cond);
	*out = l;
	return 0;
}

void ctl_leader_free(struct ctl_leader *l)
{
	if (!l)
		return;
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cond);
	free(l->ns);
	free(l->name);
	free(l->identity);
	free(l->observed_record);
	free(l);
}

bool ctl_leader_is_leader(struct ctl_leader *l)
{
	return atomic_load(&l->leader);
}

unsigned long ctl_leader_transitions(struct ctl_leader *l)
{
	return atomic_load(&l->transitions);
}

static void micro_time(int64_t wall_ns, char buf[40])
{
	time_t t = (time_t)(wall_ns / CTL_SEC);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, 40 - n, ".%06ldZ", (long)((wall_ns % CTL_SEC) / CTL_USEC));
}

static const char *spec_str(const cJSON *spec, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, name);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static void set_spec(struct ctl_leader *l, cJSON *spec, bool new_holder, const char *holder, int duration_s)
{
	char now[40];
	micro_time(ctl_clock_wall(l->opts.clock), now);
	cJSON_DeleteItemFromObjectCaseSensitive(spec, "holderIdentity");
	cJSON_AddStringToObject(spec, "holderIdentity", holder);
	cJSON_DeleteItemFromObjectCaseSensitive(spec, "leaseDurationSeconds");
	cJSON_AddNumberToObject(spec, "leaseDurationSeconds", duration_s);
	cJSON_DeleteItemFromObjectCaseSensitive(spec, "renewTime");
	cJSON_AddStringToObject(spec, "renewTime", now);
	if (new_holder) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(spec, "leaseTransitions");
		int n = cJSON_IsNumber(t) ? t->valueint : -1;
		cJSON_DeleteItemFromObjectCaseSensitive(spec, "acquireTime");
		cJSON_AddStringToObject(spec, "acquireTime", now);
		cJSON_DeleteItemFromObjectCaseSensitive(spec, "leaseTransitions");
		cJSON_AddNumberToObject(spec, "leaseTransitions", n + 1);
	}
}

/* One try: 0 when we hold the Lease afterwards, CTL_ECONFLICT when someone
 * else validly holds it, another code on an API error. */
static int try_acquire_or_renew(struct ctl_leader *l)
{
	cJSON *lease = NULL, *res = NULL;
	int duration_s = (int)((l->opts.lease_duration_ns + CTL_SEC - 1) / CTL_SEC);
	int64_t now = ctl_clock_now(l->opts.clock);
	int rc = ctl_kube_get(&lease, l->client, &lease_gvr, l->ns, l->name, NULL);
	if (rc == CTL_ENOTFOUND) {
		cJSON *obj = cJSON_CreateObject();
		cJSON_AddStringToObject(obj, "apiVersion", "coordination.k8s.io/v1");
		cJSON_AddStringToObject(obj, "kind", "Lease");
		cJSON *meta = cJSON_AddObjectToObject(obj, "metadata");
		cJSON_AddStringToObject(meta, "name", l->name);
		cJSON_AddStringToObject(meta, "namespace", l->ns);
		cJSON *spec = cJSON_AddObjectToObject(obj, "spec");
		cJSON_AddNumberToObject(spec, "leaseTransitions", -1);
		set_spec(l, spec, true, l->identity, duration_s);
		rc = ctl_kube_create(&res, l->client, &lease_gvr, l->ns, obj);
		cJSON_Delete(obj);
		goto done;
	}
	if (rc != 0)
		goto done;
	cJSON *spec = cJSON_GetObjectItemCaseSensitive(lease, "spec");
	if (!cJSON_IsObject(spec)) {
		cJSON_DeleteItemFromObjectCaseSensitive(lease, "spec");
		spec = cJSON_AddObjectToObject(lease, "spec");
	}
	const char *holder = spec_str(spec, "holderIdentity");
	char *record = xasprintf("%s|%s|%s", holder, spec_str(spec, "renewTime"), spec_str(spec, "acquireTime"));
	if (!l->observed_record || strcmp(record, l->observed_record) != 0) {
		free(l->observed_record);
		l->observed_record = record;
		l->observed_at = now;
	} else {
		free(record);
	}
	bool mine = strcmp(holder, l->identity) == 0;
	if (!mine && *holder && now < l->observed_at + l->opts.lease_duration_ns) {
		rc = CTL_ECONFLICT;
		goto done;
	}
	set_spec(l, spec, !mine, l->identity, duration_s);
	rc = ctl_kube_update(&res, l->client, &lease_gvr, l->ns, l->name, NULL, lease);
done:
	if (rc == 0) {
		/* Our own write is the record now; remember it as observed. */
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(res, "spec");
		free(l->observed_record);
		l->observed_record = xasprintf("%s|%s|%s", spec_str(s, "holderIdentity"), spec_str(s, "renewTime"),
					       spec_str(s, "acquireTime"));
		l->observed_at = now;
	}
	cJSON_Delete(lease);
	cJSON_Delete(res);
	return rc;
}

static void release(struct ctl_leader *l)
{
	cJSON *lease = NULL, *res = NULL;
	if (ctl_kube_get(&lease, l->client, &lease_gvr, l->ns, l->name, NULL) == 0) {
		cJSON *spec = cJSON_GetObjectItemCaseSensitive(lease, "spec");
		if (cJSON_IsObject(spec) && strcmp(spec_str(spec, "holderIdentity"), l->identity) == 0) {
			/* client-go's release: no holder, a one-second lease. */
			set_spec(l, spec, false, "", 1);
			ctl_kube_update(&res, l->client, &lease_gvr, l->ns, l->name, NULL, lease);
		}
	}
	cJSON_Delete(lease);
	cJSON_Delete(res);
}

/* Wait until deadline (monotonic) or stop; true when stopping. */
static bool wait_until(struct ctl_leader *l, int64_t deadline)
{
	pthread_mutex_lock(&l->mu);
	while (!l->stopping && ctl_clock_now(l->opts.clock) < deadline)
		ctl_clock_wait(l->opts.clock, &l->cond, &l->mu, deadline);
	bool stopping = l->stopping;
	pthread_mutex_unlock(&l->mu);
	return stopping;
}

/* Up to 20% more than the retry period, so replicas do not try in step. */
static int64_t jittered(struct ctl_leader *l, unsigned *seed)
{
	return l->opts.retry_period_ns + (int64_t)((double)l->opts.retry_period_ns * 0.2 *
						   ((double)rand_r(seed) / RAND_MAX));
}

static void *run(void *arg)
{
	struct ctl_leader *l = arg;
	unsigned seed = (unsigned)ctl_clock_wall(NULL) ^ (unsigned)(uintptr_t)l;
	/* Acquire. */
	for (;;) {
		if (try_acquire_or_renew(l) == 0)
			break;
		if (wait_until(l, ctl_clock_now(l->opts.clock) + jittered(l, &seed)))
			return NULL;
	}
	atomic_store(&l->leader, true);
	atomic_fetch_add(&l->transitions, 1);
	if (l->opts.on_started_leading)
		l->opts.on_started_leading(l->opts.arg);
	/* Renew. */
	int64_t last_renew = ctl_clock_now(l->opts.clock);
	bool stopping = false;
	for (;;) {
		if ((stopping = wait_until(l, ctl_clock_now(l->opts.clock) + l->opts.retry_period_ns)))
			break;
		int64_t now = ctl_clock_now(l->opts.clock);
		if (try_acquire_or_renew(l) == 0) {
			last_renew = now;
			continue;
		}
		if (ctl_clock_now(l->opts.clock) - last_renew >= l->opts.renew_deadline_ns)
			break;
	}
	(void)stopping; /* a stop releases the Lease in ctl_leader_stop() */
	atomic_store(&l->leader, false);
	if (l->opts.on_stopped_leading)
		l->opts.on_stopped_leading(l->opts.arg);
	return NULL;
}

int ctl_leader_start(struct ctl_leader *l)
{
	if (pthread_create(&l->thread, NULL, run, l) != 0)
		return ctl_error_set(CTL_ERR, "ThreadFailed", "cannot start the leader election thread");
	l->started = true;
	return 0;
}

void ctl_leader_stop(struct ctl_leader *l, bool do_release)
{
	if (!l || !l->started)
		return;
	pthread_mutex_lock(&l->mu);
	l->stopping = true;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->mu);
	pthread_join(l->thread, NULL);
	l->started = false;
	if (do_release)
		release(l);
}
