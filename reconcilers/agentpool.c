/*
 * agentpool.c: the AgentPool reconciler, the declarative
 * `az acr agentpool create/update/delete`.
 *
 * One pass: read the object and its Registry from the caches, read what
 * Azure holds (the registry's snapshot, or a GET of this pool while an
 * operation on it is in flight), let agentpool_plan() decide, make at most
 * one Azure call, write status if it changed, and say when to look again.
 * Azure operations take minutes; the pass never waits for one, it returns
 * requeue_after and a later pass reads the result.
 *
 * Ownership: status.azureResourceId is set once we created or adopted the
 * Azure pool. A pool we do not own is never modified or deleted.
 */
#include "agentpool_plan.h"
#include "app.h"
#include "azure.h"
#include "conditions.h"
#include "error.h"
#include "log.h"
#include "objects.h"
#include "desired.h"
#include "schedule/capacity.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define POLL_IN_FLIGHT_NS (5LL * 1000000000)
#define POLL_DRAIN_NS (10LL * 1000000000)

static int spec_int(const struct ctl_obj *obj, const char *path, int def)
{
	const cJSON *v = ctl_obj_field(obj, path);
	return cJSON_IsNumber(v) ? v->valueint : def;
}

static int status_int(const cJSON *status, const char *name, int def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(status, name);
	return cJSON_IsNumber(v) ? v->valueint : def;
}

static const char *status_str(const cJSON *status, const char *name)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(status, name));
}

/* Tags as canonical JSON (keys sorted) so spec and Azure compare as text. */
static char *tags_canonical_json(const cJSON *spec_tags, const struct arm_tag *tags, size_t ntags)
{
	size_t n = 0;
	const char **names, **values;
	if (spec_tags) {
		n = (size_t)cJSON_GetArraySize(spec_tags);
		names = xcalloc(n + 1, sizeof(*names));
		values = xcalloc(n + 1, sizeof(*values));
		size_t i = 0;
		const cJSON *t;
		cJSON_ArrayForEach(t, spec_tags) {
			names[i] = t->string;
			values[i++] = cJSON_IsString(t) ? t->valuestring : "";
		}
	} else {
		n = ntags;
		names = xcalloc(n + 1, sizeof(*names));
		values = xcalloc(n + 1, sizeof(*values));
		for (size_t i = 0; i < n; i++) {
			names[i] = tags[i].name;
			values[i] = tags[i].value ? tags[i].value : "";
		}
	}
	/* insertion sort: at most 50 tags */
	for (size_t i = 1; i < n; i++) {
		for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			const char *tn = names[j], *tv = values[j];
			names[j] = names[j - 1];
			values[j] = values[j - 1];
			names[j - 1] = tn;
			values[j - 1] = tv;
		}
	}
	cJSON *o = cJSON_CreateObject();
	for (size_t i = 0; i < n; i++)
		cJSON_AddStringToObject(o, names[i], values[i]);
	char *s = cJSON_PrintUnformatted(o);
	char *res = xstrdup(s);
	cJSON_free(s);
	cJSON_Delete(o);
	free(names);
	free(values);
	return res;
}

static struct arm_tag *spec_tags_array(const cJSON *spec_tags, size_t *n)
{
	*n = spec_tags ? (size_t)cJSON_GetArraySize(spec_tags) : 0;
	struct arm_tag *tags = *n ? xcalloc(*n, sizeof(*tags)) : NULL;
	size_t i = 0;
	const cJSON *t;
	cJSON_ArrayForEach(t, spec_tags) {
		tags[i].name = t->string;
		tags[i++].value = cJSON_IsString(t) ? t->valuestring : "";
	}
	return tags;
}

static bool in_flight(const char *state)
{
	return state && (!strcasecmp(state, "Creating") || !strcasecmp(state, "Updating") ||
			 !strcasecmp(state, "Deleting"));
}

struct pass {
	struct app_write w;          /* status writes, Events, Azure failures */
	struct app *a;
	struct ctl_obj *obj;
	struct ctl_obj *reg;
	cJSON *status;
	const char *azure_name;
	struct azure_conn *conn;
	struct azure_snapshot *snap;
	struct arm_agent_pool *fresh;   /* GET of this pool, when in flight */
	const struct arm_agent_pool *pool;
	int64_t requeue_ns;
	bool released;                  /* the finalizer is gone: no metrics */
};

static void pass_dispose(struct pass *p)
{
	arm_agent_pool_free(p->fresh);
	azure_snapshot_free(p->snap);
	azure_conn_put(p->a->azure, p->conn);
	cJSON_Delete(p->status);
	ctl_obj_unref(p->reg);
	ctl_obj_unref(p->obj);
}

static const char *const sources[] = {"Spec", "Schedule", "Autoscale"};

/* Where the desired count comes from, kube-state-metrics style: one series
 * per source, 1 for the one in force. Registering is idempotent, so the
 * family is looked up here rather than kept in the app. */
static struct ctl_metric *source_metric(struct app *a)
{
	static const char *const labels[] = {"namespace", "name", "source", NULL};
	struct ctl_metric *f = NULL;
	ctl_metrics_gauge(&f, a->metrics, "acrpool_agentpool_desired_count_source",
			  "Where the pool's desired count comes from: 1 for the source in force.", labels);
	return f;
}

/* The pool's provisioning state (status.provisioningState, ARM's values):
 * one series, labelled with the pool's state, valued 1. "None"
 * is a pool with no Azure pool behind it (not created yet, or deleted).
 * The dashboard's "pools by state" and the PoolStuckCreating alert read it. */
static const char *const states[] = {"Creating", "Updating", "Deleting", "Succeeded", "Failed", "Canceled", "None"};
#define NSTATES (sizeof(states) / sizeof(states[0]))

static struct ctl_metric *state_metric(struct app *a)
{
	static const char *const labels[] = {"namespace", "name", "state", NULL};
	struct ctl_metric *f = NULL;
	ctl_metrics_gauge(&f, a->metrics, "acrpool_agentpool_provisioning_state",
			  "The pool's provisioning state in Azure: 1 for the pool's state.", labels);
	return f;
}

/* The gauges as this pass leaves the pool: after a create or a scale that
 * Azure answered as done at once, no other pass comes until the resync, so
 * what the action wrote to status (count, queuedRuns, provisioningState)
 * is what the gauges must say now. */
static void set_final_metrics(struct pass *p)
{
	const char *labels[] = {p->obj->namespace, p->obj->name, NULL};
	int count = status_int(p->status, "count", -1), queued = status_int(p->status, "queuedRuns", -1);
	if (count >= 0)
		ctl_metric_set(p->a->pool_count, labels, count);
	if (queued >= 0)
		ctl_metric_set(p->a->pool_queued, labels, queued);

	const char *state = status_str(p->status, "provisioningState");
	size_t in = NSTATES - 1;
	for (size_t i = 0; state && i < NSTATES - 1; i++)
		if (!strcasecmp(state, states[i]))
			in = i;
	/* One series a pool, for its state: the others are removed, not set
	 * to 0, so 10,000 pools cost 10,000 series and not 70,000. */
	struct ctl_metric *f = state_metric(p->a);
	const char *now[] = {p->obj->namespace, p->obj->name, states[in], NULL};
	double v = 0;
	if (ctl_metric_get(&v, f, now) == 0 && v == 1)
		return; /* unchanged: one lookup, not seven */
	for (size_t i = 0; i < NSTATES; i++) {
		const char *sl[] = {p->obj->namespace, p->obj->name, states[i], NULL};
		if (i == in)
			ctl_metric_set(f, sl, 1);
		else
			ctl_metric_remove(f, sl);
	}
}

static void set_pool_metrics(struct pass *p, int count, int desired, int queued, const char *source)
{
	const char *labels[] = {p->obj->namespace, p->obj->name, NULL};
	if (count >= 0)
		ctl_metric_set(p->a->pool_count, labels, count);
	ctl_metric_set(p->a->pool_desired, labels, desired);
	if (queued >= 0)
		ctl_metric_set(p->a->pool_queued, labels, queued);
	struct ctl_metric *f = source_metric(p->a);
	for (size_t i = 0; i < 3; i++) {
		const char *sl[] = {p->obj->namespace, p->obj->name, sources[i], NULL};
		ctl_metric_set(f, sl, !strcmp(source, sources[i]));
	}
}

static void remove_pool_metrics(struct app *a, const char *ns, const char *name)
{
	const char *labels[] = {ns, name, NULL};
	ctl_metric_remove(a->pool_count, labels);
	ctl_metric_remove(a->pool_desired, labels);
	ctl_metric_remove(a->pool_queued, labels);
	struct ctl_metric *f = source_metric(a);
	for (size_t i = 0; i < 3; i++) {
		const char *sl[] = {ns, name, sources[i], NULL};
		ctl_metric_remove(f, sl);
	}
	f = state_metric(a);
	for (size_t i = 0; i < NSTATES; i++) {
		const char *sl[] = {ns, name, states[i], NULL};
		ctl_metric_remove(f, sl);
	}
}

static int64_t op_delay_ns(const struct arm_operation *op)
{
	if (op && op->retry_after_ms > 0) {
		int64_t ns = (int64_t)op->retry_after_ms * 1000000;
		return ns < 60LL * 1000000000 ? ns : 60LL * 1000000000;
	}
	return POLL_IN_FLIGHT_NS;
}

/* Keep the pool's observable state in status. */
static void status_observe(struct pass *p, const struct arm_agent_pool *pool)
{
	app_json_set_str(p->status, "azureName", p->azure_name);
	if (pool) {
		app_json_set_str(p->status, "provisioningState",
				 pool->provisioning_state ? pool->provisioning_state : "Succeeded");
		if (pool->count >= 0)
			app_json_set_num(p->status, "count", pool->count);
	} else {
		cJSON_DeleteItemFromObjectCaseSensitive(p->status, "provisioningState");
		cJSON_DeleteItemFromObjectCaseSensitive(p->status, "count");
	}
}

static int release(struct pass *p, const char *reason, const char *msg)
{
	int rc = ctl_finalizer_remove(p->a->kube, &gvr_agentpools, p->obj, ACRPOOL_FINALIZER);
	if (rc == 0) {
		app_event(&p->w, "Normal", reason, "Delete", msg);
		remove_pool_metrics(p->a, p->obj->namespace, p->obj->name);
		p->released = true;
	}
	return rc;
}

/* The pool's queue depth (listQueueStatus), or -1 when it cannot be read. */
static int read_queue(struct pass *p)
{
	int q = 0;
	return arm_agent_pool_queue_status(&q, p->conn->arm, &p->conn->ref, p->azure_name) == 0 ? q : -1;
}

/* Whether this pass reads the pool's queue. listQueueStatus is an ARM POST,
 * which ARM may count against the subscription's write throttle (which
 * bucket is unmeasured, docs/capacity.md), so a fleet of
 * fixed pools with nothing waiting must not pay one per pool per resync:
 * the resync of such a fleet costs one registry GET and one pool LIST per
 * registry and nothing per pool. Read it when autoscale decides from it;
 * when the pool has no instances (runs queued there never start: the case
 * the QUEUED column and the queued-runs alert are for); when runs waited at
 * the last look, or there was no look yet (keep watching until it empties);
 * and when the spec changed (someone is looking). A Recreate's drain reads
 * it on its own (see the caller). Never for an object being deleted: its
 * deletion bumps the generation, but nothing decides from the queue then
 * (deletion does not drain), and the figure would go with the object. */
static bool queue_wanted(const struct pass *p, int count)
{
	const cJSON *gen = cJSON_GetObjectItemCaseSensitive(p->status, "observedGeneration");
	if (p->obj->deleting)
		return false;
	return cJSON_IsObject(ctl_obj_field(p->obj, "spec.autoscale")) || count == 0 ||
	       status_int(p->status, "queuedRuns", -1) != 0 ||
	       !cJSON_IsNumber(gen) || (long long)gen->valuedouble != p->obj->generation;
}

/* Runs executing on the pool (Started or Running), for autoscale: the
 * queue alone would let a scale-down take instances from running work.
 * -1 when it cannot be read. */
static int running_runs(struct pass *p)
{
	struct arm_run *runs = NULL;
	size_t n = 0;
	char *filter = xasprintf("AgentPoolName eq '%s' and Status eq 'Running' or "
				 "AgentPoolName eq '%s' and Status eq 'Started'", p->azure_name, p->azure_name);
	int rc = arm_run_list(&runs, &n, p->conn->arm, &p->conn->ref, filter, 100);
	free(filter);
	if (rc != 0)
		return -1;
	arm_run_array_free(runs, n);
	return (int)n;
}

static int running_runs_cb(void *ud)
{
	return running_runs(ud);
}

struct capacity_plan {
	struct desired_count d;      /* spec.count, countSchedule, autoscale */
	struct capacity_quota quota;
};

/* Decide the desired count (desired.h), then cap it by quota. Returns 0,
 * or CTL_EINVALID with a message for a schedule that cannot be evaluated
 * (bad time zone or cron). */
static int plan_capacity(struct pass *p, struct capacity_plan *cp, int current, int decided, int queued,
			 const char *tier, int other_vcpu, int quota_vcpu)
{
	struct desired_observed o = {
		.current = current,
		.decided = decided,
		.queued = queued,
		.running = running_runs_cb,
		.running_ud = p,
		.now = desired_now(),
		.poll_ns = p->a->opts->queue_poll_ms * 1000000LL,
	};
	memset(&cp->quota, 0, sizeof(cp->quota));
	int rc = desired_count_decide(&cp->d, p->obj, p->status, &o);
	if (rc != 0)
		return rc;
	capacity_quota_cap(&cp->quota, cp->d.want.count, current, tier, other_vcpu, quota_vcpu);
	/* Only capacity that moves by itself (schedule, autoscale) is capped
	 * here; a fixed spec.count over quota is the plan's QuotaExceeded. */
	if (cp->d.want.source == CAPACITY_SPEC)
		cp->quota.count = cp->d.want.count, cp->quota.capped = false;
	if (cp->quota.capped)
		snprintf(cp->d.message, sizeof(cp->d.message), "%s", cp->quota.message);
	return 0;
}

int agentpool_reconcile(void *ctx, const char *key, struct ctl_result *out)
{
	struct app *a = ctx;
	struct pass p = {.a = a};
	char *tags_desired = NULL, *tags_observed = NULL, msg[1024];
	struct arm_tag *tags = NULL;
	struct arm_agent_pool *created = NULL;
	struct arm_operation *op = NULL;
	int rc = 0;

	if (ctl_store_get(&p.obj, ctl_informer_store(a->agentpools), key) == CTL_ENOTFOUND) {
		const char *slash = strchr(key, '/');
		if (slash) {
			char *ns = xstrndup(key, (size_t)(slash - key));
			remove_pool_metrics(a, ns, slash + 1);
			free(ns);
		}
		return 0;
	}
	int gate = app_finalizer_gate(&p.obj, a, &gvr_agentpools, a->agentpools, key);
	if (gate <= 0) {
		rc = gate;
		goto done;
	}
	/* Nothing happens in Azure before the finalizer is in place: a pool
	 * must never outlive its object unnoticed. */
	struct ctl_obj *obj = p.obj;
	p.status = ctl_status_copy(obj);
	p.w = (struct app_write){a, &gvr_agentpools, obj, p.status, &p.requeue_ns, true};
	p.azure_name = ctl_obj_string(obj, "spec.azureName");
	if (!p.azure_name)
		p.azure_name = obj->name;

	const char *reg_name = ctl_obj_string(obj, "spec.registryRef.name");
	char *reg_key = ctl_obj_key(obj->namespace, reg_name ? reg_name : "");
	int grc = ctl_store_get(&p.reg, ctl_informer_store(a->registries), reg_key);
	free(reg_key);
	if (grc == CTL_ENOTFOUND) {
		snprintf(msg, sizeof(msg), "Registry %s/%s does not exist; create it (the Azure pool, if any, is "
			 "left as it is)", obj->namespace, reg_name ? reg_name : "");
		rc = app_commit(&p.w, APP_STALLED, "RegistryRefNotFound", msg, false, "Reconcile");
		goto done;
	}
	if ((rc = azure_conn_get(&p.conn, a->azure, p.reg)) != 0) {
		rc = app_azure_failure(&p.w, rc, "cannot build the Azure credential of the Registry");
		goto done;
	}
	const char *state_before = status_str(p.status, "provisioningState");
	bool fresh_needed = in_flight(state_before) || status_str(p.status, "drainStartedAt");
	if ((rc = azure_snapshot_get(&p.snap, a->azure, p.conn, p.azure_name, false)) != 0) {
		rc = app_azure_failure(&p.w, rc, "reading the registry's pools failed");
		goto done;
	}
	p.pool = p.snap->pool;
	/* A pool we own that the list does not show is confirmed with its own
	 * GET before anything acts on its absence: a paged LIST taken while
	 * other pools are deleted can skip entries (the pages are positions
	 * in a shrinking list), and releasing a finalizer on that word alone
	 * would orphan a billed pool. */
	if (!p.pool && status_str(p.status, "azureResourceId"))
		fresh_needed = true;
	/* An operation Azure reported in flight (to our own PUT, or in the
	 * list) is followed on the pool itself: the snapshot would show it
	 * unchanged until its next refresh. */
	if (p.pool && in_flight(p.pool->provisioning_state))
		fresh_needed = true;
	if (p.snap->registry_found && fresh_needed) {
		/* The pool's own operation is in flight (or the list missed it):
		 * read it directly instead of through the snapshot. */
		rc = arm_agent_pool_get(&p.fresh, p.conn->arm, &p.conn->ref, p.azure_name);
		if (rc == CTL_ENOTFOUND) {
			p.pool = NULL;
			azure_snapshot_note_pool(a->azure, p.conn, p.azure_name, NULL);
		} else if (rc != 0) {
			rc = app_azure_failure(&p.w, rc, "reading the pool failed");
			goto done;
		} else {
			p.pool = p.fresh;
			azure_snapshot_note_pool(a->azure, p.conn, p.azure_name, p.fresh);
		}
		rc = 0;
	}

	/* What status said before this pass, for telling drift from a
	 * change of mind. */
	int prev_desired = status_int(p.status, "desiredCount", -1);
	int prev_count = status_int(p.status, "count", -1);

	/* What is declared. */
	const cJSON *spec_tags = ctl_obj_field(obj, "spec.tags");
	tags_desired = tags_canonical_json(cJSON_IsObject(spec_tags) ? spec_tags : NULL, NULL, 0);
	struct agentpool_desired d = {
		.azure_name = p.azure_name,
		.tier = ctl_obj_string(obj, "spec.tier") ? ctl_obj_string(obj, "spec.tier") : "S1",
		.os = ctl_obj_string(obj, "spec.os") ? ctl_obj_string(obj, "spec.os") : "Linux",
		.subnet_id = ctl_obj_string(obj, "spec.subnetId"),
		.count = spec_int(obj, "spec.count", 1),
		.manage_tags = cJSON_IsObject(spec_tags),
		.tags_json = tags_desired,
		.deleting = obj->deleting,
		.orphan = ctl_obj_string(obj, "spec.deletionPolicy") &&
			  !strcmp(ctl_obj_string(obj, "spec.deletionPolicy"), "Orphan"),
		.recreate = ctl_obj_string(obj, "spec.updateStrategy") &&
			    !strcmp(ctl_obj_string(obj, "spec.updateStrategy"), "Recreate"),
		.drain_timeout_s = spec_int(obj, "spec.drainTimeoutSeconds", 1800),
	};
	/* What is observed. */
	struct agentpool_observed o = {
		.registry_found = p.snap->registry_found,
		.registry_premium = p.snap->sku && !strcasecmp(p.snap->sku, "Premium"),
		.pool_found = p.pool != NULL,
		.owned = status_str(p.status, "azureResourceId") != NULL,
		.queued_runs = -1,
		.now = (long long)time(NULL),
		.other_standard_vcpu = p.snap->standard_vcpu,
		.other_isolated_vcpu = p.snap->isolated_vcpu,
		.quota_standard_vcpu = (int)(cJSON_IsNumber(ctl_obj_field(p.reg, "spec.quota.standardVCPU"))
			? ctl_obj_field(p.reg, "spec.quota.standardVCPU")->valueint : 16),
		.quota_isolated_vcpu = (int)(cJSON_IsNumber(ctl_obj_field(p.reg, "spec.quota.isolatedVCPU"))
			? ctl_obj_field(p.reg, "spec.quota.isolatedVCPU")->valueint : 0),
	};
	if (p.pool) {
		o.tier = p.pool->tier;
		o.os = p.pool->os;
		o.subnet_id = p.pool->subnet_id;
		o.count = p.pool->count < 0 ? 0 : p.pool->count;
		o.provisioning_state = p.pool->provisioning_state ? p.pool->provisioning_state : "Succeeded";
		tags_observed = tags_canonical_json(NULL, p.pool->tags, p.pool->ntags);
		o.tags_json = tags_observed;
		if (!in_flight(o.provisioning_state) && queue_wanted(&p, o.count))
			o.queued_runs = read_queue(&p);
	}
	/* The count: spec.count, a schedule window, or autoscale, capped by
	 * quota when it moves by itself. */
	struct capacity_plan cp;
	bool iso_tier = false;
	agentpool_tier_vcpu(d.tier, &iso_tier);
	if (!d.deleting) {
		if (plan_capacity(&p, &cp, p.pool ? o.count : 0,
				  status_str(p.status, "desiredCountSource") &&
				  !strcmp(status_str(p.status, "desiredCountSource"), "Autoscale") ? prev_desired : -1,
				  o.queued_runs, d.tier,
				  iso_tier ? o.other_isolated_vcpu : o.other_standard_vcpu,
				  iso_tier ? o.quota_isolated_vcpu : o.quota_standard_vcpu) != 0) {
			const struct ctl_error *e = ctl_error_last();
			snprintf(msg, sizeof(msg), "%s", e->message);
			char reason[128];
			snprintf(reason, sizeof(reason), "%s", e->reason);
			rc = app_commit(&p.w, APP_STALLED, reason, msg, false, "Reconcile");
			goto done;
		}
		d.count = cp.quota.count;
	} else {
		memset(&cp, 0, sizeof(cp));
		cp.d.sched.active = cp.d.sched.next = -1;
		cp.d.want.source = CAPACITY_SPEC;
	}
	const char *drain = status_str(p.status, "drainStartedAt");
	long long drain_t = 0;
	if (drain && ctl_time_parse(drain, &drain_t) == 0)
		o.drain_started = drain_t;

	struct agentpool_action act;
	agentpool_plan(&d, &o, &act);
	if (act.recreating && (act.kind == AGENTPOOL_DRAIN || act.kind == AGENTPOOL_DELETE) &&
	    o.queued_runs < 0 && p.pool && !in_flight(o.provisioning_state)) {
		/* A Recreate drains the queue first: that needs its depth. */
		o.queued_runs = read_queue(&p);
		agentpool_plan(&d, &o, &act);
	}
	char now[32];

	/* Status that holds whatever the action. */
	status_observe(&p, p.pool);
	app_json_set_num(p.status, "desiredCount", d.count);
	desired_count_status(p.status, &cp.d, obj);
	if (o.queued_runs >= 0)
		app_json_set_num(p.status, "queuedRuns", o.queued_runs);
	if (p.pool && p.pool->id && o.owned)
		app_json_set_str(p.status, "azureResourceId", p.pool->id);
	set_pool_metrics(&p, p.pool ? o.count : -1, d.count, o.queued_runs, capacity_source_name(cp.d.want.source));
	if (act.kind != AGENTPOOL_DRAIN && act.kind != AGENTPOOL_DELETE && act.kind != AGENTPOOL_WAIT)
		cJSON_DeleteItemFromObjectCaseSensitive(p.status, "drainStartedAt");

	bool was_ready = ctl_conditions_is_true(p.status, "Ready");
	long long observed_gen = (long long)status_int(p.status, "observedGeneration", -1);
	switch (act.kind) {
	case AGENTPOOL_RELEASE:
		rc = release(&p, act.reason, act.message);
		break;
	case AGENTPOOL_STALL:
		rc = app_commit(&p.w, APP_STALLED, act.reason, act.message, false, "Reconcile");
		break;
	case AGENTPOOL_NOOP:
	case AGENTPOOL_ADOPT:
		if (act.kind == AGENTPOOL_ADOPT)
			app_json_set_str(p.status, "azureResourceId", p.pool->id ? p.pool->id : "");
		snprintf(msg, sizeof(msg), "%s pool %s has %d instance(s) as declared", d.tier, p.azure_name, d.count);
		if (act.kind == AGENTPOOL_ADOPT)
			app_event(&p.w, "Normal", "Adopted", "Adopt", act.message);
		rc = app_commit(&p.w, APP_READY, "Succeeded", msg, false, "Reconcile");
		/* Keep the queue depth fresh while runs wait; otherwise resync
		 * is enough. */
		if (rc == 0 && o.queued_runs > 0)
			p.requeue_ns = a->opts->queue_poll_ms * 1000000LL;
		break;
	case AGENTPOOL_WAIT:
		p.requeue_ns = POLL_IN_FLIGHT_NS;
		rc = app_commit(&p.w, APP_PROGRESSING, act.reason, act.message, false, "Reconcile");
		break;
	case AGENTPOOL_DRAIN:
		if (!status_str(p.status, "drainStartedAt")) {
			app_json_set_str(p.status, "drainStartedAt", app_now(now));
		}
		p.requeue_ns = POLL_DRAIN_NS;
		rc = app_commit(&p.w, APP_PROGRESSING, "Draining", act.message, false, "Drain");
		break;
	case AGENTPOOL_CREATE: {
		struct arm_agent_pool want = {
			.location = p.snap->location, .tier = (char *)d.tier, .os = (char *)d.os,
			.subnet_id = (char *)d.subnet_id, .count = d.count,
		};
		size_t ntags;
		tags = spec_tags_array(d.manage_tags ? spec_tags : NULL, &ntags);
		want.tags = tags;
		want.ntags = ntags;
		rc = arm_agent_pool_create(&created, &op, p.conn->arm, &p.conn->ref, p.azure_name, &want);
		if (rc != 0) {
			rc = app_azure_failure(&p.w, rc, "creating the pool failed");
			break;
		}
		azure_snapshot_note_pool(a->azure, p.conn, p.azure_name, created);
		status_observe(&p, created);
		app_json_set_str(p.status, "azureResourceId", created->id ? created->id : "");
		app_json_set_str(p.status, "lastScaleTime", app_now(now));
		/* Nothing can wait in the queue of a pool that did not exist a
		 * moment ago: no listQueueStatus for the first figure. */
		app_json_set_num(p.status, "queuedRuns", 0);
		if (created->provisioning_state && !strcasecmp(created->provisioning_state, "Succeeded")) {
			/* Azure's answer to the PUT already says done: one status
			 * write and one Event tell the whole story. */
			snprintf(msg, sizeof(msg), "%s pool %s has %d instance(s) as declared", d.tier, p.azure_name,
				 d.count);
			app_set_state(p.status, APP_READY, "Succeeded", msg, obj->generation);
			rc = ctl_status_write(a->kube, &gvr_agentpools, obj, p.status, NULL);
			if (rc == 0) {
				snprintf(msg, sizeof(msg), "%s pool %s %s with %d instance(s)", d.tier, p.azure_name,
					 act.recreating ? "recreated" : "created", d.count);
				app_event(&p.w, "Normal", act.recreating ? "Recreated" : "Created", "Create", msg);
			}
			break;
		}
		if (!created->provisioning_state || !in_flight(created->provisioning_state))
			app_json_set_str(p.status, "provisioningState", "Creating");
		p.requeue_ns = op_delay_ns(op);
		rc = app_commit(&p.w, APP_PROGRESSING, act.recreating ? "Recreating" : "Creating", act.message, true, "Create");
		break;
	}
	case AGENTPOOL_UPDATE: {
		size_t ntags = 0;
		tags = spec_tags_array(d.manage_tags ? spec_tags : NULL, &ntags);
		int old_count = o.count;
		rc = arm_agent_pool_update(&created, &op, p.conn->arm, &p.conn->ref, p.azure_name, d.count, tags, ntags,
					   d.manage_tags);
		if (rc != 0) {
			rc = app_azure_failure(&p.w, rc, "updating the pool failed");
			break;
		}
		azure_snapshot_note_pool(a->azure, p.conn, p.azure_name, created);
		status_observe(&p, created);
		app_json_set_str(p.status, "lastScaleTime", app_now(now));
		/* Azure's answer already says done: report the outcome, not
		 * the step (one status write, one Event). */
		bool done_now = created->provisioning_state && !strcasecmp(created->provisioning_state, "Succeeded");
		if (!done_now && (!created->provisioning_state || !in_flight(created->provisioning_state)))
			app_json_set_str(p.status, "provisioningState", "Updating");
		if (!done_now)
			p.requeue_ns = op_delay_ns(op);
		/* Nothing we want changed since we last had Azure in sync, yet
		 * Azure differs: someone changed it behind our back. */
		bool drift = was_ready && observed_gen == obj->generation && prev_desired == d.count &&
			     prev_count == d.count;
		if (drift) {
			snprintf(msg, sizeof(msg), "Azure had %d instance(s)%s; set back to the declared %d",
				 old_count, old_count == d.count ? " and other tags" : "", d.count);
			app_event(&p.w, "Warning", "DriftCorrected", "Scale", msg);
		} else if (cp.d.want.source == CAPACITY_AUTOSCALE || cp.d.want.source == CAPACITY_SCHEDULE ||
			   cp.quota.capped) {
			/* An Event per scaling decision, with its reason. */
			const char *why = cp.quota.capped ? "QuotaCapped"
				: cp.d.want.source == CAPACITY_AUTOSCALE ? cp.d.as.reason : "ScheduleWindow";
			snprintf(msg, sizeof(msg), "%d -> %d instance(s): %s", old_count, d.count, cp.d.message);
			app_event(&p.w, "Normal", why, "Scale", msg);
		}
		bool spec_event = !drift && cp.d.want.source == CAPACITY_SPEC;
		if (done_now) {
			snprintf(msg, sizeof(msg), "%s pool %s has %d instance(s) as declared", d.tier, p.azure_name, d.count);
			app_set_state(p.status, APP_READY, "Succeeded", msg, obj->generation);
			rc = ctl_status_write(a->kube, &gvr_agentpools, obj, p.status, NULL);
			if (rc == 0 && spec_event) {
				bool scaled = !strcmp(act.reason, "Scaling");
				if (scaled)
					snprintf(msg, sizeof(msg), "scaled from %d to %d instance(s)", old_count, d.count);
				else
					snprintf(msg, sizeof(msg), "tags updated");
				app_event(&p.w, "Normal", scaled ? "Scaled" : "Updated", "Scale", msg);
			}
			/* Runs were waiting: keep their count fresh until the
			 * new instances have taken them. */
			if (rc == 0 && status_int(p.status, "queuedRuns", 0) > 0)
				p.requeue_ns = a->opts->queue_poll_ms * 1000000LL;
			break;
		}
		rc = app_commit(&p.w, APP_PROGRESSING, act.reason, act.message, spec_event, "Scale");
		break;
	}
	case AGENTPOOL_DELETE:
		rc = arm_agent_pool_delete(&op, p.conn->arm, &p.conn->ref, p.azure_name);
		if (rc != 0) {
			rc = app_azure_failure(&p.w, rc, "deleting the pool failed");
			break;
		}
		app_json_set_str(p.status, "provisioningState", op ? "Deleting" : "Deleted");
		if (!op)
			azure_snapshot_note_pool(a->azure, p.conn, p.azure_name, NULL);
		if (!op && obj->deleting) {
			/* Azure's answer (200 or 204, no operation to follow)
			 * says the pool is gone: release the object now, with
			 * one Event for the outcome, rather than write status
			 * and GET the pool once more to learn the same. */
			rc = release(&p, "Deleted", "the Azure pool was deleted");
			break;
		}
		p.requeue_ns = op ? op_delay_ns(op) : 1000000000LL;
		if (obj->deleting) {
			/* The object is going away; a status write would only
			 * race the finalizer. */
			app_event(&p.w, "Normal", "Deleting", "Delete", act.message);
			rc = ctl_status_write(a->kube, &gvr_agentpools, obj, p.status, NULL);
		} else {
			rc = app_commit(&p.w, APP_PROGRESSING, act.reason, act.message, true, "Delete");
		}
		break;
	}
	if (rc == 0 && cp.d.requeue_ns > 0 && (p.requeue_ns <= 0 || cp.d.requeue_ns < p.requeue_ns))
		p.requeue_ns = cp.d.requeue_ns;
done:
	/* The gauges as this pass leaves the pool (after a create, scale or
	 * delete). Not after a failure: the status was not written, and the
	 * lookups would overwrite the error the runtime is about to report. */
	if (rc == 0 && p.status && p.obj && !p.released)
		set_final_metrics(&p);
	if (rc == 0 && p.requeue_ns > 0)
		out->requeue_after_ns = p.requeue_ns;
	arm_operation_free(op);
	arm_agent_pool_free(created);
	free(tags);
	free(tags_desired);
	free(tags_observed);
	pass_dispose(&p);
	return rc;
}
