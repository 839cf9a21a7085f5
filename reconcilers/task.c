/*
 * task.c: the Task reconciler, the declarative `az acr task create`.
 *
 * One pass: read the Task, its Registry and its AgentPool from the caches,
 * the Secrets it names from the API server (never cached), the Azure task
 * with one GET, then let task_plan() decide and make at most one Azure
 * write: a PUT of the whole task (create, update, drift correction, a
 * rotated Secret) or a DELETE. PUT rather than PATCH because PATCH merges
 * timers by name and cannot remove one, and because a PATCH that omits
 * agentPoolName is how the az CLI bug (Azure/azure-cli#23373) drops the
 * pool: a full body always carries it.
 *
 * Status: azureName, azureResourceId (once we created or adopted the
 * task), provisioningState, secretHash (a hash of the secret values, never
 * the values: how a rotated Secret is noticed, since Azure's GET hides
 * secrets), lastRun (the newest run of the task, from one runs LIST with
 * $filter on the task name), conditions.
 *
 * A Task whose AgentPool object does not exist (never created, or deleted)
 * is Stalled with reason AgentPoolNotFound: a human must create the pool
 * or change agentPoolRef; the pool's appearance re-queues the Task at once.
 * A pool that exists but is not Ready keeps the Task Reconciling with
 * reason AgentPoolNotReady.
 */
#include "app.h"
#include "azure.h"
#include "conditions.h"
#include "error.h"
#include "log.h"
#include "objects.h"
#include "task_plan.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POLL_IN_FLIGHT_NS (5LL * 1000000000)
#define POLL_RUN_NS (5LL * 1000000000)
#define WAIT_POOL_NS (30LL * 1000000000)

struct pass {
	struct app_write w;          /* status writes, Events, Azure failures */
	struct app *a;
	struct ctl_obj *obj;
	struct ctl_obj *reg;
	struct ctl_obj *pool;
	cJSON *status;
	const char *azure_name;
	struct azure_conn *conn;
	struct azure_snapshot *snap;
	cJSON *azure_task;
	cJSON *body;
	struct task_secret *refs;
	size_t nrefs;
	int64_t requeue_ns;
};

static void pass_dispose(struct pass *p)
{
	for (size_t i = 0; i < p->nrefs; i++)
		app_secret_free((char *)p->refs[i].value);
	free(p->refs);
	task_plan_body_free(p->body);
	cJSON_Delete(p->azure_task);
	azure_snapshot_free(p->snap);
	azure_conn_put(p->a->azure, p->conn);
	cJSON_Delete(p->status);
	ctl_obj_unref(p->pool);
	ctl_obj_unref(p->reg);
	ctl_obj_unref(p->obj);
}

static int64_t op_delay_ns(const struct arm_operation *op)
{
	if (op && op->retry_after_ms > 0) {
		int64_t ns = (int64_t)op->retry_after_ms * 1000000;
		return ns < 60LL * 1000000000 ? ns : 60LL * 1000000000;
	}
	return POLL_IN_FLIGHT_NS;
}

static const char *json_str(const cJSON *o, const char *a, const char *b)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
	return cJSON_GetStringValue(b ? cJSON_GetObjectItemCaseSensitive(x, b) : x);
}

/* Read every Secret key the spec names. *missing names the first absent
 * one. Errors are the API server's. */
static int resolve_secrets(struct pass *p, char *missing, size_t len)
{
	missing[0] = '\0';
	task_plan_secret_refs(&p->refs, &p->nrefs, ctl_obj_field(p->obj, "spec"));
	for (size_t i = 0; i < p->nrefs; i++) {
		char *v = NULL;
		int rc = app_secret_read(&v, p->a, p->obj->namespace, p->refs[i].secret, p->refs[i].key);
		if (rc)
			return rc;
		p->refs[i].value = v;
		if (!v && !missing[0])
			snprintf(missing, len, "Secret %s/%s key %s", p->obj->namespace, p->refs[i].secret,
				 p->refs[i].key);
	}
	return 0;
}

/* status.lastRun from the newest run of the task. Returns true when it
 * moved to a finished state (worth an Event), and sets *running while the
 * run is not finished. A failed LIST leaves lastRun as it was. */
static bool observe_last_run(struct pass *p, bool *running, char *what, size_t what_len)
{
	struct arm_run *runs = NULL;
	size_t n = 0;
	char filter[160];
	*running = false;
	snprintf(filter, sizeof(filter), "TaskName eq '%s'", p->azure_name);
	if (arm_run_list(&runs, &n, p->conn->arm, &p->conn->ref, filter, 1) != 0 || n == 0) {
		arm_run_array_free(runs, n);
		return false;
	}
	const struct arm_run *r = &runs[0];
	const cJSON *old = cJSON_GetObjectItemCaseSensitive(p->status, "lastRun");
	const char *old_id = json_str(old, "runId", NULL), *old_status = json_str(old, "status", NULL);
	cJSON *lr = cJSON_CreateObject();
	if (r->run_id)
		cJSON_AddStringToObject(lr, "runId", r->run_id);
	if (r->status)
		cJSON_AddStringToObject(lr, "status", r->status);
	cJSON_AddStringToObject(lr, "trigger", r->trigger ? r->trigger : "Manual");
	if (r->start_time)
		cJSON_AddStringToObject(lr, "startTime", r->start_time);
	if (r->finish_time)
		cJSON_AddStringToObject(lr, "finishTime", r->finish_time);
	/* old points into the lastRun being replaced: decide first. */
	bool moved = arm_run_status_terminal(r->status) &&
		     (!old_id || strcmp(old_id, r->run_id ? r->run_id : "") || !old_status ||
		      strcmp(old_status, r->status));
	app_json_set(p->status, "lastRun", lr);
	*running = !arm_run_status_terminal(r->status);
	if (moved)
		snprintf(what, what_len, "run %s (%s) finished: %s", r->run_id ? r->run_id : "?",
			 r->trigger ? r->trigger : "manual", r->status);
	arm_run_array_free(runs, n);
	return moved;
}

static int release(struct pass *p, const char *reason, const char *msg)
{
	int rc = ctl_finalizer_remove(p->a->kube, &gvr_tasks, p->obj, ACRPOOL_FINALIZER);
	if (rc == 0)
		app_event(&p->w, "Normal", reason, "Delete", msg);
	return rc;
}

int task_reconcile(void *ctx, const char *key, struct ctl_result *out)
{
	struct app *a = ctx;
	struct pass p = {.a = a};
	struct arm_operation *op = NULL;
	cJSON *put = NULL;
	char msg[1024], missing[600] = "", diff[256] = "", hash[65];
	int rc = 0;

	if (ctl_store_get(&p.obj, ctl_informer_store(a->tasks), key) == CTL_ENOTFOUND)
		return 0;
	struct ctl_obj *obj = p.obj;
	bool has_finalizer = ctl_finalizer_has(obj, ACRPOOL_FINALIZER);
	if (obj->deleting && !has_finalizer)
		goto done;
	if (!obj->deleting && !has_finalizer) {
		/* Nothing is created in Azure before the finalizer is there. */
		rc = ctl_finalizer_add(a->kube, &gvr_tasks, obj, ACRPOOL_FINALIZER);
		goto done;
	}
	p.status = ctl_status_copy(obj);
	p.w = (struct app_write){a, &gvr_tasks, obj, p.status, &p.requeue_ns, true};
	p.azure_name = ctl_obj_string(obj, "spec.azureName");
	if (!p.azure_name)
		p.azure_name = obj->name;
	app_json_set_str(p.status, "azureName", p.azure_name);

	const char *reg_name = ctl_obj_string(obj, "spec.registryRef.name");
	char *reg_key = ctl_obj_key(obj->namespace, reg_name ? reg_name : "");
	int grc = ctl_store_get(&p.reg, ctl_informer_store(a->registries), reg_key);
	free(reg_key);
	if (grc == CTL_ENOTFOUND) {
		if (obj->deleting) {
			rc = release(&p, "Deleted", "the Registry object is gone; the Azure task is left as it is");
			goto done;
		}
		snprintf(msg, sizeof(msg), "Registry %s/%s does not exist; create it", obj->namespace,
			 reg_name ? reg_name : "");
		rc = app_commit(&p.w, APP_STALLED, "RegistryRefNotFound", msg, false, "Reconcile");
		goto done;
	}
	if ((rc = azure_conn_get(&p.conn, a->azure, p.reg)) != 0) {
		rc = app_azure_failure(&p.w, rc, "cannot build the Azure credential of the Registry");
		goto done;
	}
	if ((rc = azure_snapshot_get(&p.snap, a->azure, p.conn, NULL, false)) != 0) {
		rc = app_azure_failure(&p.w, rc, "reading the registry failed");
		goto done;
	}

	struct task_observed o = {
		.deleting = obj->deleting,
		.owned = json_str(p.status, "azureResourceId", NULL) != NULL,
		.registry_found = p.snap->registry_found,
	};
	if (!obj->deleting) {
		if ((rc = resolve_secrets(&p, missing, sizeof(missing))) != 0) {
			ctl_error_set(rc, ctl_error_last()->reason, "reading the Secrets the Task names failed: %s",
				      ctl_error_last()->message);
			goto done;
		}
		if (missing[0])
			o.missing_secret = missing;
	}
	const char *pool_ref = ctl_obj_string(obj, "spec.agentPoolRef.name");
	const char *pool_azure = NULL;
	if (pool_ref) {
		o.pool_ref = true;
		o.pool_name = pool_ref;
		char *pk = ctl_obj_key(obj->namespace, pool_ref);
		if (ctl_store_get(&p.pool, ctl_informer_store(a->agentpools), pk) == 0) {
			o.pool_found = true;
			o.pool_deleting = p.pool->deleting;
			o.pool_ready = ctl_conditions_is_true(ctl_obj_field(p.pool, "status"), "Ready");
			const char *pr = ctl_obj_string(p.pool, "spec.registryRef.name");
			o.pool_other_registry = !pr || !reg_name || strcmp(pr, reg_name) != 0;
			pool_azure = app_pool_azure_name(p.pool);
		}
		free(pk);
	}
	if (p.snap->registry_found) {
		rc = arm_task_get(&p.azure_task, p.conn->arm, &p.conn->ref, p.azure_name);
		if (rc == CTL_ENOTFOUND) {
			rc = 0;
		} else if (rc) {
			rc = app_azure_failure(&p.w, rc, "reading the task failed");
			goto done;
		}
	}
	char owner[512];
	snprintf(owner, sizeof(owner), "%s/%s", obj->namespace, obj->name);
	if (p.azure_task) {
		o.task_found = true;
		o.provisioning_state = json_str(p.azure_task, "properties", "provisioningState");
		const char *tag = json_str(p.azure_task, "tags", TASK_OWNER_TAG);
		o.task_tagged_ours = tag && !strcmp(tag, owner);
	}
	struct task_secrets secrets = {p.refs, p.nrefs};
	task_plan_secret_hash(hash, obj->uid, &secrets);
	if (!obj->deleting && !o.missing_secret && p.snap->registry_found) {
		p.body = task_plan_body(ctl_obj_field(obj, "spec"), p.snap->location, pool_azure, owner, &secrets,
					missing, sizeof(missing));
		if (!p.body) {
			o.missing_secret = missing;
		} else if (p.azure_task) {
			o.differs = task_plan_compare(p.body, p.azure_task, diff, sizeof(diff));
			o.diff = diff;
		}
	}
	const char *old_hash = json_str(p.status, "secretHash", NULL);
	o.secrets_changed = strcmp(old_hash ? old_hash : "", hash) != 0;
	const cJSON *og = cJSON_GetObjectItemCaseSensitive(p.status, "observedGeneration");
	o.in_sync_before = ctl_conditions_is_true(p.status, "Ready") && cJSON_IsNumber(og) &&
			   (long long)og->valuedouble == obj->generation;

	struct task_action act;
	task_plan(&o, &act);

	if (p.azure_task) {
		const char *id = json_str(p.azure_task, "id", NULL);
		if (id && (o.owned || o.task_tagged_ours))
			app_json_set_str(p.status, "azureResourceId", id);
		app_json_set_str(p.status, "provisioningState", o.provisioning_state ? o.provisioning_state : "Succeeded");
	} else {
		cJSON_DeleteItemFromObjectCaseSensitive(p.status, "provisioningState");
	}

	bool running = false, run_moved = false;
	char run_what[200] = "";
	if (p.azure_task && !obj->deleting)
		run_moved = observe_last_run(&p, &running, run_what, sizeof(run_what));

	switch (act.kind) {
	case TASK_RELEASE:
		rc = release(&p, act.reason, act.message);
		goto done;
	case TASK_STALL:
		rc = app_commit(&p.w, APP_STALLED, act.reason, act.message, false, "Reconcile");
		goto done;
	case TASK_WAIT:
		p.requeue_ns = !strcmp(act.reason, "AgentPoolNotReady") ? WAIT_POOL_NS : POLL_IN_FLIGHT_NS;
		rc = app_commit(&p.w, APP_PROGRESSING, act.reason, act.message, false, "Reconcile");
		goto done;
	case TASK_DELETE:
		rc = arm_task_delete(&op, p.conn->arm, &p.conn->ref, p.azure_name);
		if (rc == CTL_ENOTFOUND)
			rc = 0;
		if (rc) {
			rc = app_azure_failure(&p.w, rc, "deleting the task failed");
			goto done;
		}
		if (op) {
			/* 2019 may answer 202: look again until the GET says 404. */
			app_event(&p.w, "Normal", "Deleting", "Delete", "deleting the Azure task");
			p.requeue_ns = op_delay_ns(op);
			goto done;
		}
		rc = release(&p, "Deleted", "deleted the Azure task");
		goto done;
	case TASK_NOOP:
	case TASK_ADOPT:
		if (act.kind == TASK_ADOPT) {
			app_json_set_str(p.status, "azureResourceId", json_str(p.azure_task, "id", NULL));
			app_json_set_str(p.status, "secretHash", hash[0] ? hash : NULL);
			app_event(&p.w, "Normal", "Adopted", "Adopt", act.message);
		}
		break;
	case TASK_CREATE:
	case TASK_UPDATE:
		rc = arm_task_create(&put, &op, p.conn->arm, &p.conn->ref, p.azure_name, p.body);
		if (rc) {
			rc = app_azure_failure(&p.w, rc, act.kind == TASK_CREATE ? "creating the task failed"
					   : "updating the task failed");
			goto done;
		}
		/* Written: the new secret values are in Azure now. */
		app_json_set_str(p.status, "secretHash", hash[0] ? hash : NULL);
		const char *id = json_str(put, "id", NULL);
		if (id)
			app_json_set_str(p.status, "azureResourceId", id);
		const char *ps = json_str(put, "properties", "provisioningState");
		if (op || (ps && strcasecmp(ps, "Succeeded") != 0)) {
			/* 2019 answers may be long-running: look again. */
			app_json_set_str(p.status, "provisioningState", ps ? ps
					 : act.kind == TASK_CREATE ? "Creating" : "Updating");
			p.requeue_ns = op_delay_ns(op);
			const char *r = act.kind == TASK_CREATE ? "Creating" : "Updating";
			if (act.drift)
				app_event(&p.w, "Warning", "DriftCorrected", "Update", act.message);
			rc = app_commit(&p.w, APP_PROGRESSING, r, act.message, !act.drift, act.kind == TASK_CREATE ? "Create"
				    : "Update");
			goto done;
		}
		app_json_set_str(p.status, "provisioningState", "Succeeded");
		if (act.drift)
			app_event(&p.w, "Warning", "DriftCorrected", "Update", act.message);
		else
			app_event(&p.w, "Normal", act.kind == TASK_CREATE ? "Created" : act.reason,
			      act.kind == TASK_CREATE ? "Create" : "Update",
			      act.kind == TASK_CREATE ? "created the Azure task" : act.message);
		break;
	}

	/* In sync. */
	if (run_moved)
		app_event(&p.w, "Normal", "LastRun", "Observe", run_what);
	const char *status_word = ctl_obj_field(obj, "spec.enabled") && cJSON_IsFalse(ctl_obj_field(obj, "spec.enabled"))
		? "disabled" : "enabled";
	snprintf(msg, sizeof(msg), "task %s is %s in Azure%s%s", p.azure_name, status_word,
		 pool_azure ? " on agent pool " : " on shared compute", pool_azure ? pool_azure : "");
	rc = app_commit(&p.w, APP_READY, "Succeeded", msg, false, "Reconcile");
	if (rc == 0 && running)
		p.requeue_ns = POLL_RUN_NS;
done:
	if (rc == 0 && p.requeue_ns > 0)
		out->requeue_after_ns = p.requeue_ns;
	task_plan_body_free(put);
	arm_operation_free(op);
	pass_dispose(&p);
	return rc;
}
