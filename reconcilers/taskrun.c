/*
 * taskrun.c: the TaskRun reconciler, the declarative `az acr task run` and
 * `az acr build --agent-pool`: one run, requested at most once.
 *
 * At most once. Before scheduleRun the pass records
 * status.scheduleIntent {token, time, taskName | agentPoolName}; only when
 * that status write succeeded does it send the request (sent once: the
 * ARM client does not retry it, see arm_run_schedule_once), then it
 * records status.runId. Three things can leave an intent without a run id:
 *  - a crash (or kill -9) between the two writes: the next process finds
 *    an intent it did not make and looks for the run (taskrun_match over a
 *    runs LIST) instead of requesting another, for TASKRUN_SETTLE_S after
 *    the intent; only when no run appeared in that window is a new intent
 *    recorded;
 *  - an answer that leaves the outcome unknown (timeout, 5xx): the same
 *    search, in this process;
 *  - a status write that has not reached the informer cache yet: this
 *    process remembers (per object uid) the intent and run id it made, so a
 *    pass that reads a stale cache never schedules twice. Before a new
 *    intent is written the object is also read live from the API server.
 * docs/tasks.md says exactly what this guarantees.
 *
 * Following: while the run is going the pass GETs it every few seconds
 * (requeue_after, never blocking) and mirrors it in status; on each status
 * change it reads the tail of the run log through listLogSasUrl. The SAS
 * URL is a credential: it is wiped after use and never logged or stored.
 *
 * Cancel: spec.cancel or deletion of a TaskRun whose run is going cancels
 * the run (runs cancel) once; deletion then releases the finalizer.
 *
 * A build from a ConfigMap packs the ConfigMap's files (data and
 * binaryData) into a tar.gz in memory (tarball.c), uploads it through
 * listBuildSourceUploadUrl and passes its relativePath as sourceLocation.
 */
#include "app.h"
#include "azure.h"
#include "azure/blob.h"
#include "conditions.h"
#include "error.h"
#include "log.h"
#include "objects.h"
#include "tarball.h"
#include "taskrun_plan.h"
#include "xalloc.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define POLL_RUN_NS (3LL * 1000000000)
#define POLL_FIND_NS (5LL * 1000000000)
#define WAIT_NS (30LL * 1000000000)
#define CACHE_LAG_NS (1LL * 1000000000)
#define LOG_TAIL_BYTES 4096
#define SOURCE_MAX (64u * 1024 * 1024)

/* ---- what this process did, per TaskRun uid, until the cache shows it ---- */

struct memo {
	char *uid;
	char *key;
	char *token;
	long long intent_time;
	char *run_id;       /* NULL: sent, outcome unknown (or not sent yet) */
};

static pthread_mutex_t memo_mu = PTHREAD_MUTEX_INITIALIZER;
static struct memo *memos;
static size_t nmemos;

static void memo_dispose(struct memo *m)
{
	free(m->uid);
	free(m->key);
	free(m->token);
	free(m->run_id);
	memset(m, 0, sizeof(*m));
}

/* A copy of the memo for uid; false when there is none. */
static bool memo_get(struct memo *out, const char *uid)
{
	bool found = false;
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&memo_mu);
	for (size_t i = 0; i < nmemos; i++) {
		if (!strcmp(memos[i].uid, uid)) {
			out->uid = xstrdup(memos[i].uid);
			out->key = xstrdup(memos[i].key);
			out->token = xstrdup(memos[i].token);
			out->intent_time = memos[i].intent_time;
			out->run_id = xstrdup(memos[i].run_id);
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&memo_mu);
	return found;
}

static void memo_set(const char *uid, const char *key, const char *token, long long t, const char *run_id)
{
	pthread_mutex_lock(&memo_mu);
	struct memo *m = NULL;
	for (size_t i = 0; i < nmemos && !m; i++)
		if (!strcmp(memos[i].uid, uid))
			m = &memos[i];
	if (!m) {
		memos = xrealloc(memos, (nmemos + 1) * sizeof(*memos));
		m = &memos[nmemos++];
		memset(m, 0, sizeof(*m));
	}
	memo_dispose(m);
	m->uid = xstrdup(uid);
	m->key = xstrdup(key);
	m->token = xstrdup(token);
	m->intent_time = t;
	m->run_id = xstrdup(run_id);
	pthread_mutex_unlock(&memo_mu);
}

/* Forget every memo of key (the object is gone) or of uid. */
static void memo_drop(const char *key, const char *uid)
{
	pthread_mutex_lock(&memo_mu);
	for (size_t i = 0; i < nmemos;) {
		if ((key && !strcmp(memos[i].key, key)) || (uid && !strcmp(memos[i].uid, uid))) {
			memo_dispose(&memos[i]);
			memos[i] = memos[--nmemos];
		} else {
			i++;
		}
	}
	if (nmemos == 0) {
		free(memos);
		memos = NULL;
	}
	pthread_mutex_unlock(&memo_mu);
}

/* ---- the pass ---- */

struct pass {
	struct app_write w;          /* status writes, Events, Azure failures */
	struct app *a;
	struct ctl_obj *obj;
	struct ctl_obj *reg;
	struct ctl_obj *task;
	struct ctl_obj *pool;
	cJSON *status;
	struct azure_conn *conn;
	struct azure_snapshot *snap;
	struct arm_run *run;
	struct task_secret *refs;
	size_t nrefs;
	int64_t requeue_ns;
};

static void pass_dispose(struct pass *p)
{
	for (size_t i = 0; i < p->nrefs; i++)
		app_secret_free((char *)p->refs[i].value);
	free(p->refs);
	arm_run_free(p->run);
	azure_snapshot_free(p->snap);
	azure_conn_put(p->a->azure, p->conn);
	cJSON_Delete(p->status);
	ctl_obj_unref(p->pool);
	ctl_obj_unref(p->task);
	ctl_obj_unref(p->reg);
	ctl_obj_unref(p->obj);
}

static const char *sget(const cJSON *o, const char *a, const char *b)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
	return cJSON_GetStringValue(b ? cJSON_GetObjectItemCaseSensitive(x, b) : x);
}

/* Mirror the run in status: id, status, times, images, error. */
static void status_from_run(struct pass *p, const struct arm_run *r)
{
	app_json_set_str(p->status, "runId", r->run_id);
	app_json_set_str(p->status, "runStatus", r->status);
	app_json_set_str(p->status, "startTime", r->start_time);
	app_json_set_str(p->status, "finishTime", r->finish_time);
	app_json_set_str(p->status, "errorMessage", r->run_error_message && *r->run_error_message
			 ? r->run_error_message : NULL);
	if (r->noutput_images) {
		cJSON *arr = cJSON_CreateArray();
		for (size_t i = 0; i < r->noutput_images; i++) {
			cJSON *o = cJSON_CreateObject();
			const struct arm_run_image *im = &r->output_images[i];
			if (im->registry)
				cJSON_AddStringToObject(o, "registry", im->registry);
			if (im->repository)
				cJSON_AddStringToObject(o, "repository", im->repository);
			if (im->tag)
				cJSON_AddStringToObject(o, "tag", im->tag);
			if (im->digest)
				cJSON_AddStringToObject(o, "digest", im->digest);
			cJSON_AddItemToArray(arr, o);
		}
		app_json_set(p->status, "outputImages", arr);
	} else {
		cJSON_DeleteItemFromObjectCaseSensitive(p->status, "outputImages");
	}
}

/* status.logTail from the run's log: listLogSasUrl, then the last few KB
 * through the SAS URL. Best effort: a failure leaves the old tail (the log
 * is a convenience; the run's state does not depend on it). */
static void refresh_log_tail(struct pass *p, const char *run_id)
{
	char *sas = NULL, *text = NULL;
	size_t len = 0;
	if (arm_run_log_sas_url(&sas, p->conn->arm, &p->conn->ref, run_id) != 0)
		goto done;
	if (arm_blob_tail(&text, &len, p->conn->arm, sas, LOG_TAIL_BYTES) != 0) {
		ctl_log(CTL_LOG_DEBUG, "cannot read the run log", "key", p->obj->key, "runId", run_id, "error",
			ctl_error_last()->message, NULL);
		goto done;
	}
	char tail[LOG_TAIL_BYTES + 64];
	taskrun_log_tail(tail, sizeof(tail), text, len, len >= LOG_TAIL_BYTES, TASKRUN_LOG_LINES);
	app_json_set_str(p->status, "logTail", tail[0] ? tail : NULL);
done:
	if (sas) {
		explicit_bzero(sas, strlen(sas));
		free(sas);
	}
	free(text);
}

static int release(struct pass *p, const char *reason, const char *msg)
{
	int rc = ctl_finalizer_remove(p->a->kube, &gvr_taskruns, p->obj, ACRPOOL_FINALIZER);
	if (rc == 0) {
		memo_drop(NULL, p->obj->uid);
		app_event(&p->w, "Normal", reason, "Delete", msg);
	}
	return rc;
}

/* Run ids other TaskRuns hold (status or this process's memos). */
static void claimed_runs(struct pass *p, char ***out, size_t *n)
{
	struct ctl_obj **objs;
	size_t nobj;
	*out = NULL;
	*n = 0;
	ctl_store_list(&objs, &nobj, ctl_informer_store(p->a->taskruns));
	for (size_t i = 0; i < nobj; i++) {
		const char *id = ctl_obj_string(objs[i], "status.runId");
		if (id && strcmp(objs[i]->uid, p->obj->uid) != 0) {
			*out = xrealloc(*out, (*n + 1) * sizeof(**out));
			(*out)[(*n)++] = xstrdup(id);
		}
	}
	ctl_store_list_free(objs, nobj);
	pthread_mutex_lock(&memo_mu);
	for (size_t i = 0; i < nmemos; i++) {
		if (memos[i].run_id && strcmp(memos[i].uid, p->obj->uid) != 0) {
			*out = xrealloc(*out, (*n + 1) * sizeof(**out));
			(*out)[(*n)++] = xstrdup(memos[i].run_id);
		}
	}
	pthread_mutex_unlock(&memo_mu);
}

/* Look for the run of an intent. *found receives it (caller frees). */
static int find_run(struct pass *p, const struct taskrun_match_key *k, struct arm_run **found)
{
	struct arm_run *runs = NULL;
	size_t n = 0;
	char filter[320], **claimed = NULL;
	size_t nclaimed = 0;
	*found = NULL;
	taskrun_match_filter(filter, sizeof(filter), k);
	int rc = arm_run_list(&runs, &n, p->conn->arm, &p->conn->ref, filter, 100);
	if (rc)
		return rc;
	claimed_runs(p, &claimed, &nclaimed);
	int i = taskrun_match(runs, n, k, (const char *const *)claimed, nclaimed);
	if (i >= 0) {
		/* Move it out of the array. */
		*found = xcalloc(1, sizeof(**found));
		**found = runs[i];
		memset(&runs[i], 0, sizeof(runs[i]));
	}
	for (size_t j = 0; j < nclaimed; j++)
		free(claimed[j]);
	free(claimed);
	arm_run_array_free(runs, n);
	return 0;
}

/* The ConfigMap's files as a tar.gz. Stalls are reported through *why. */
static int pack_configmap(struct pass *p, const char *name, unsigned char **out, size_t *len, size_t *nfiles,
			  char *why, size_t why_len)
{
	cJSON *cm = NULL;
	struct tarball_file *files = NULL;
	unsigned char **decoded = NULL;
	size_t n = 0;
	*out = NULL;
	*len = 0;
	why[0] = '\0';
	int rc = ctl_kube_get(&cm, p->a->kube, &gvr_configmaps, p->obj->namespace, name, NULL);
	if (rc == CTL_ENOTFOUND) {
		snprintf(why, why_len, "ConfigMap %s/%s named by spec.build.configMapRef does not exist",
			 p->obj->namespace, name);
		return 0;
	}
	if (rc)
		return rc;
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(cm, "data");
	const cJSON *bin = cJSON_GetObjectItemCaseSensitive(cm, "binaryData");
	size_t cap = (size_t)cJSON_GetArraySize(data) + (size_t)cJSON_GetArraySize(bin) + 1;
	files = xcalloc(cap, sizeof(*files));
	decoded = xcalloc(cap, sizeof(*decoded));
	const cJSON *it;
	cJSON_ArrayForEach(it, data) {
		if (cJSON_IsString(it))
			files[n++] = (struct tarball_file){it->string, (const unsigned char *)it->valuestring,
							   strlen(it->valuestring)};
	}
	cJSON_ArrayForEach(it, bin) {
		size_t l = 0;
		unsigned char *d = cJSON_IsString(it) ? app_base64_decode(it->valuestring, &l) : NULL;
		if (!d) {
			snprintf(why, why_len, "ConfigMap %s/%s: binaryData %s is not base64", p->obj->namespace, name,
				 it->string);
			goto done;
		}
		decoded[n] = d;
		files[n++] = (struct tarball_file){it->string, d, l};
	}
	if (n == 0) {
		snprintf(why, why_len, "ConfigMap %s/%s holds no files", p->obj->namespace, name);
		goto done;
	}
	long long mtime = 0;
	const char *created = sget(cJSON_GetObjectItemCaseSensitive(cm, "metadata"), "creationTimestamp", NULL);
	if (created)
		ctl_time_parse(created, &mtime);
	if ((rc = tarball_pack(out, len, files, n, mtime)) != 0) {
		/* A long reason is cut to fit; the status message has a bound. */
		if (snprintf(why, why_len, "ConfigMap %s/%s: %s", p->obj->namespace, name,
			     ctl_error_last()->message) >= (int)why_len)
			why[why_len - 1] = '\0';
		rc = 0;
		goto done;
	}
	if (*len > SOURCE_MAX) {
		snprintf(why, why_len, "ConfigMap %s/%s packs to %zu bytes, more than %u", p->obj->namespace, name,
			 *len, SOURCE_MAX);
		free(*out);
		*out = NULL;
	}
	*nfiles = n;
done:
	for (size_t i = 0; i < cap; i++)
		free(decoded[i]);
	free(decoded);
	free(files);
	cJSON_Delete(cm);
	return rc;
}

/* What a run needs beyond the spec, and why it cannot be asked for yet. */
struct target {
	struct taskrun_target t;
	struct taskrun_match_key key;
	const char *blocked_reason;
	bool blocked_stall;
	char blocked_message[600];
};

static void blocked(struct target *t, const char *reason, bool stall, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void blocked(struct target *t, const char *reason, bool stall, const char *fmt, ...)
{
	va_list ap;
	t->blocked_reason = reason;
	t->blocked_stall = stall;
	va_start(ap, fmt);
	vsnprintf(t->blocked_message, sizeof(t->blocked_message), fmt, ap);
	va_end(ap);
}

static int gather_target(struct pass *p, struct target *t)
{
	struct ctl_obj *obj = p->obj;
	const char *reg_name = ctl_obj_string(obj, "spec.registryRef.name");
	const char *task_name = ctl_obj_string(obj, "spec.taskRef.name");
	memset(t, 0, sizeof(*t));
	if (task_name) {
		char *k = ctl_obj_key(obj->namespace, task_name);
		int grc = ctl_store_get(&p->task, ctl_informer_store(p->a->tasks), k);
		free(k);
		if (grc) {
			blocked(t, "TaskNotFound", false, "waiting for Task %s (spec.taskRef) to exist", task_name);
			return 0;
		}
		const char *tr = ctl_obj_string(p->task, "spec.registryRef.name");
		if (!tr || !reg_name || strcmp(tr, reg_name) != 0) {
			blocked(t, "TaskInOtherRegistry", true, "Task %s belongs to another Registry", task_name);
			return 0;
		}
		if (!ctl_conditions_is_true(ctl_obj_field(p->task, "status"), "Ready")) {
			blocked(t, "TaskNotReady", false, "waiting for Task %s to be Ready", task_name);
			return 0;
		}
		const char *az = ctl_obj_string(p->task, "status.azureName");
		if (!az)
			az = ctl_obj_string(p->task, "spec.azureName");
		t->key.task = az ? az : p->task->name;
		const char *id = ctl_obj_string(p->task, "status.azureResourceId");
		t->t.task_id = id ? id : t->key.task;
		t->t.task_docker = ctl_obj_field(p->task, "spec.step.docker") != NULL;
	} else {
		const char *pool_name = ctl_obj_string(obj, "spec.build.agentPoolRef.name");
		if (pool_name) {
			char *k = ctl_obj_key(obj->namespace, pool_name);
			int grc = ctl_store_get(&p->pool, ctl_informer_store(p->a->agentpools), k);
			free(k);
			if (grc) {
				blocked(t, "AgentPoolNotFound", false, "waiting for AgentPool %s (spec.build.agentPoolRef) "
					"to exist", pool_name);
				return 0;
			}
			if (!ctl_conditions_is_true(ctl_obj_field(p->pool, "status"), "Ready") || p->pool->deleting) {
				blocked(t, "AgentPoolNotReady", false, "waiting for AgentPool %s to be Ready", pool_name);
				return 0;
			}
			t->key.pool = app_pool_azure_name(p->pool);
			t->t.pool = t->key.pool;
		}
		t->t.source_location = ctl_obj_string(obj, "spec.build.sourceLocation");
		const char *cm = ctl_obj_string(obj, "spec.build.configMapRef.name");
		if (cm) {
			/* Only check that it exists here; it is packed when the run is requested. */
			cJSON *o = NULL;
			int rc = ctl_kube_get(&o, p->a->kube, &gvr_configmaps, obj->namespace, cm, NULL);
			cJSON_Delete(o);
			if (rc == CTL_ENOTFOUND) {
				blocked(t, "ConfigMapNotFound", false, "waiting for ConfigMap %s (spec.build.configMapRef) "
					"to exist", cm);
				return 0;
			}
			if (rc)
				return rc;
		}
	}
	/* Secret override values. */
	task_plan_value_secret_refs(&p->refs, &p->nrefs, ctl_obj_field(obj, "spec.taskRef.overrideValues"));
	for (size_t i = 0; i < p->nrefs; i++) {
		char *v = NULL;
		int rc = app_secret_read(&v, p->a, obj->namespace, p->refs[i].secret, p->refs[i].key);
		if (rc)
			return rc;
		p->refs[i].value = v;
		if (!v && !t->blocked_reason)
			blocked(t, "SecretNotFound", true, "Secret %s/%s key %s (spec.taskRef.overrideValues) does not "
				"exist", obj->namespace, p->refs[i].secret, p->refs[i].key);
	}
	return 0;
}

/* Schedule: upload the source if any, record the intent, ask once. */
static int schedule(struct pass *p, struct target *t)
{
	struct ctl_obj *obj = p->obj;
	struct arm_upload_url up = {0};
	unsigned char *tgz = NULL;
	size_t tgz_len = 0, nfiles = 0;
	cJSON *req = NULL, *live = NULL;
	struct arm_run *run = NULL;
	struct arm_operation *op = NULL;
	char why[600], missing[300], token[37], now[32], msg[700];
	int rc, unknown = 0;

	/* The cache may lag our own writes; the API server does not. */
	rc = ctl_kube_get(&live, p->a->kube, &gvr_taskruns, obj->namespace, obj->name, NULL);
	if (rc)
		goto done;
	const cJSON *ls = cJSON_GetObjectItemCaseSensitive(live, "status");
	if (cJSON_GetObjectItemCaseSensitive(ls, "runId") || cJSON_GetObjectItemCaseSensitive(ls, "scheduleIntent")) {
		p->requeue_ns = CACHE_LAG_NS;
		goto done;
	}

	const char *cm = ctl_obj_string(obj, "spec.build.configMapRef.name");
	if (cm) {
		if ((rc = pack_configmap(p, cm, &tgz, &tgz_len, &nfiles, why, sizeof(why))))
			goto done;
		if (why[0]) {
			p->requeue_ns = WAIT_NS;
			rc = app_commit(&p->w, APP_STALLED, "InvalidBuildSource", why, false, "Reconcile");
			goto done;
		}
		if ((rc = arm_build_source_upload_url(&up, p->conn->arm, &p->conn->ref))) {
			rc = app_azure_failure(&p->w, rc, "asking for a build source upload URL failed");
			goto done;
		}
		if ((rc = arm_build_source_upload(p->conn->arm, up.upload_url, tgz, tgz_len))) {
			rc = app_azure_failure(&p->w, rc, "uploading the build source failed");
			goto done;
		}
		char sha[65];
		app_sha256_hex(sha, tgz, tgz_len);
		cJSON *src = cJSON_CreateObject();
		cJSON_AddStringToObject(src, "configMap", cm);
		cJSON_AddStringToObject(src, "relativePath", up.relative_path);
		cJSON_AddStringToObject(src, "sha256", sha);
		cJSON_AddNumberToObject(src, "size", (double)tgz_len);
		cJSON_AddNumberToObject(src, "files", (double)nfiles);
		app_json_set(p->status, "source", src);
		t->t.source_location = up.relative_path;
	}
	struct task_secrets secrets = {p->refs, p->nrefs};
	req = taskrun_plan_request(ctl_obj_field(obj, "spec"), &t->t, &secrets, missing, sizeof(missing));
	if (!req) {
		rc = app_commit(&p->w, APP_STALLED, "SecretNotFound", missing, false, "Reconcile");
		goto done;
	}

	/* The intent first; nothing is sent unless it is stored. */
	arm_uuid(token);
	long long t_now = (long long)time(NULL);
	cJSON *intent = cJSON_CreateObject();
	cJSON_AddStringToObject(intent, "token", token);
	cJSON_AddStringToObject(intent, "time", ctl_time_format(t_now, now));
	if (t->key.task)
		cJSON_AddStringToObject(intent, "taskName", t->key.task);
	if (t->key.pool)
		cJSON_AddStringToObject(intent, "agentPoolName", t->key.pool);
	app_json_set(p->status, "scheduleIntent", intent);
	if ((rc = app_commit(&p->w, APP_PROGRESSING, "Scheduling", "requesting the run from Azure", false, "Schedule")))
		goto done;
	memo_set(obj->uid, obj->key, token, t_now, NULL);

	rc = arm_run_schedule_once(&run, &op, &unknown, p->conn->arm, &p->conn->ref, req);
	if (rc == 0 && run && run->run_id) {
		memo_set(obj->uid, obj->key, token, t_now, run->run_id);
		status_from_run(p, run);
		snprintf(msg, sizeof(msg), "Azure scheduled run %s%s%s", run->run_id,
			 t->key.pool ? " on agent pool " : "", t->key.pool ? t->key.pool : "");
		app_event(&p->w, "Normal", "Scheduled", "Schedule", msg);
		int st;
		const char *reason = taskrun_run_reason(run->status, &st);
		rc = app_commit(&p->w, st == 0 ? APP_READY : st == 1 ? APP_PROGRESSING : APP_STALLED, reason, msg, false,
			    "Schedule");
		p->requeue_ns = POLL_RUN_NS;
		goto done;
	}
	if (rc == 0 || unknown) {
		/* Accepted without a run id (a 2019 202), or no telling: the
		 * run may exist. Never ask again; look for it. */
		const struct ctl_error *e = ctl_error_last();
		snprintf(msg, sizeof(msg), "the outcome of the run request is unknown (%s%s%.400s); looking for the run "
			 "instead of requesting another", rc == 0 ? "accepted without a run id" : e->reason,
			 rc == 0 ? "" : ": ", rc == 0 ? "" : e->message);
		app_event(&p->w, "Warning", "ScheduleOutcomeUnknown", "Schedule", msg);
		p->requeue_ns = POLL_FIND_NS;
		rc = app_commit(&p->w, APP_PROGRESSING, "FindingRun", msg, false, "Schedule");
		goto done;
	}
	/* Azure answered and refused: no run exists. Forget the intent so a
	 * later pass may ask again (after a human fixed the cause). */
	struct ctl_error e = *ctl_error_last();
	memo_drop(NULL, obj->uid);
	cJSON_DeleteItemFromObjectCaseSensitive(p->status, "scheduleIntent");
	ctl_error_set(rc, e.reason, "%s", e.message);
	ctl_error_set_http(e.http_status, e.request_id, e.retry_after_ms);
	rc = app_azure_failure(&p->w, rc, "requesting the run failed");
done:
	arm_run_free(run);
	arm_operation_free(op);
	task_plan_body_free(req);
	cJSON_Delete(live);
	arm_upload_url_dispose(&up);
	free(tgz);
	return rc;
}

int taskrun_reconcile(void *ctx, const char *key, struct ctl_result *out)
{
	struct app *a = ctx;
	struct pass p = {.a = a};
	struct memo memo = {0};
	struct target t;
	struct arm_run *found = NULL;
	char msg[1024];
	int rc = 0;

	memset(&t, 0, sizeof(t));
	if (ctl_store_get(&p.obj, ctl_informer_store(a->taskruns), key) == CTL_ENOTFOUND) {
		memo_drop(key, NULL);
		return 0;
	}
	struct ctl_obj *obj = p.obj;
	bool has_finalizer = ctl_finalizer_has(obj, ACRPOOL_FINALIZER);
	if (obj->deleting && !has_finalizer)
		goto done;
	if (!obj->deleting && !has_finalizer) {
		/* Before any run: deleting the TaskRun must be able to cancel it. */
		rc = ctl_finalizer_add(a->kube, &gvr_taskruns, obj, ACRPOOL_FINALIZER);
		goto done;
	}
	p.status = ctl_status_copy(obj);
	p.w = (struct app_write){a, &gvr_taskruns, obj, p.status, &p.requeue_ns, false};

	const char *reg_name = ctl_obj_string(obj, "spec.registryRef.name");
	char *reg_key = ctl_obj_key(obj->namespace, reg_name ? reg_name : "");
	int grc = ctl_store_get(&p.reg, ctl_informer_store(a->registries), reg_key);
	free(reg_key);
	if (grc == CTL_ENOTFOUND) {
		if (obj->deleting) {
			rc = release(&p, "Deleted", "the Registry object is gone");
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
	if (!p.snap->registry_found) {
		if (obj->deleting)
			rc = release(&p, "Deleted", "the registry no longer exists in Azure");
		else
			rc = app_commit(&p.w, APP_STALLED, "RegistryNotFound", "the registry does not exist in Azure", false,
				    "Reconcile");
		goto done;
	}

	struct taskrun_observed o = {
		.deleting = obj->deleting,
		.cancel = cJSON_IsTrue(ctl_obj_field(obj, "spec.cancel")),
		.run_id = sget(p.status, "runId", NULL),
		.run_status = sget(p.status, "runStatus", NULL),
		.cancel_sent = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p.status, "cancelRequested")),
		.now = (long long)time(NULL),
	};
	const cJSON *intent = cJSON_GetObjectItemCaseSensitive(p.status, "scheduleIntent");
	struct taskrun_match_key key_from_intent = {0};
	if (intent) {
		o.intent = true;
		ctl_time_parse(sget(intent, "time", NULL), &o.intent_time);
		key_from_intent.task = sget(intent, "taskName", NULL);
		key_from_intent.pool = sget(intent, "agentPoolName", NULL);
		key_from_intent.intent_time = o.intent_time;
	}
	/* Status members are replaced below: keep copies. */
	char run_id_buf[128] = "", run_status_buf[32] = "";
	if (o.run_id) {
		snprintf(run_id_buf, sizeof(run_id_buf), "%s", o.run_id);
		o.run_id = run_id_buf;
	}
	if (o.run_status) {
		snprintf(run_status_buf, sizeof(run_status_buf), "%s", o.run_status);
		o.run_status = run_status_buf;
	}
	/* What this process did may be newer than the cache; once the cache
	 * shows the run, the memo has done its work (keeping it would cost
	 * every finished TaskRun a memo, and each lookup a longer search). */
	if (o.run_id)
		memo_drop(NULL, obj->uid);
	else if (memo_get(&memo, obj->uid)) {
		if (memo.run_id) {
			o.run_id = memo.run_id;
			o.run_status = NULL;
		} else if (!o.intent) {
			/* Our intent write has not reached the cache yet. */
			p.requeue_ns = CACHE_LAG_NS;
			goto done;
		}
	}

	if (o.run_id) {
		bool terminal = o.run_status && arm_run_status_terminal(o.run_status) &&
				cJSON_GetObjectItemCaseSensitive(p.status, "logTail");
		if (!terminal) {
			rc = arm_run_get(&p.run, p.conn->arm, &p.conn->ref, o.run_id);
			if (rc == CTL_ENOTFOUND) {
				o.run_gone = true;
				rc = 0;
			} else if (rc) {
				rc = app_azure_failure(&p.w, rc, "reading the run failed");
				goto done;
			} else {
				o.run_status = p.run->status;
			}
		}
	} else if (o.intent) {
		if ((rc = find_run(&p, &key_from_intent, &found)) != 0) {
			rc = app_azure_failure(&p.w, rc, "listing runs to find the requested one failed");
			goto done;
		}
		o.candidate = found != NULL;
	}
	if (!o.run_id && !obj->deleting && !o.cancel && !o.candidate) {
		if ((rc = gather_target(&p, &t)) != 0) {
			ctl_error_set(rc, ctl_error_last()->reason, "reading what the TaskRun refers to failed: %s",
				      ctl_error_last()->message);
			goto done;
		}
		o.blocked_reason = t.blocked_reason;
		o.blocked_message = t.blocked_message;
		o.blocked_stall = t.blocked_stall;
	}

	struct taskrun_action act;
	taskrun_plan(&o, &act);

	const char *old_status = sget(p.status, "runStatus", NULL);
	bool status_moved = p.run && (!old_status || !p.run->status || strcmp(old_status, p.run->status) != 0);
	old_status = NULL; /* replaced below */
	switch (act.kind) {
	case TASKRUN_RELEASE:
		rc = release(&p, act.reason, act.message);
		break;
	case TASKRUN_WAIT:
		p.requeue_ns = WAIT_NS;
		rc = app_commit(&p.w, APP_PROGRESSING, act.reason, act.message, false, "Reconcile");
		break;
	case TASKRUN_STALL:
		rc = app_commit(&p.w, APP_STALLED, act.reason, act.message, false, "Reconcile");
		break;
	case TASKRUN_CANCELED:
		cJSON_DeleteItemFromObjectCaseSensitive(p.status, "scheduleIntent");
		rc = app_commit(&p.w, APP_STALLED, act.reason, act.message, false, "Cancel");
		break;
	case TASKRUN_FIND:
		p.requeue_ns = POLL_FIND_NS;
		rc = app_commit(&p.w, APP_PROGRESSING, act.reason, act.message, false, "Find");
		break;
	case TASKRUN_SCHEDULE:
		if (o.intent) {
			snprintf(msg, sizeof(msg), "no run appeared within %d s of the recorded intent %s: the request "
				 "never reached Azure; requesting the run now", TASKRUN_SETTLE_S,
				 sget(intent, "time", NULL) ? sget(intent, "time", NULL) : "");
			app_event(&p.w, "Normal", "IntentExpired", "Schedule", msg);
			cJSON_DeleteItemFromObjectCaseSensitive(p.status, "scheduleIntent");
			memo_drop(NULL, obj->uid);
		}
		rc = schedule(&p, &t);
		break;
	case TASKRUN_ADOPT: {
		const char *token = sget(intent, "token", NULL);
		memo_set(obj->uid, obj->key, token ? token : "", o.intent_time, found->run_id);
		status_from_run(&p, found);
		snprintf(msg, sizeof(msg), "found run %s, requested before the operator restarted; not requesting "
			 "another", found->run_id);
		app_event(&p.w, "Normal", "RunFound", "Find", msg);
		refresh_log_tail(&p, found->run_id);
		int st;
		const char *reason = taskrun_run_reason(found->status, &st);
		rc = app_commit(&p.w, st == 0 ? APP_READY : st == 1 ? APP_PROGRESSING : APP_STALLED, reason, msg, false,
			    "Find");
		if (st == 1)
			p.requeue_ns = POLL_RUN_NS;
		break;
	}
	case TASKRUN_CANCEL: {
		rc = arm_run_cancel(NULL, p.conn->arm, &p.conn->ref, o.run_id);
		if (rc) {
			rc = app_azure_failure(&p.w, rc, "canceling the run failed");
			break;
		}
		app_json_set(p.status, "cancelRequested", cJSON_CreateTrue());
		app_event(&p.w, "Normal", "CancelRequested", "Cancel", act.message);
		if (obj->deleting) {
			rc = release(&p, "Deleted", "asked Azure to cancel the run; releasing the TaskRun");
			break;
		}
		if (p.run)
			status_from_run(&p, p.run);
		p.requeue_ns = POLL_RUN_NS;
		rc = app_commit(&p.w, APP_PROGRESSING, "Canceling", act.message, false, "Cancel");
		break;
	}
	case TASKRUN_FOLLOW:
	case TASKRUN_FINISHED: {
		if (o.run_gone) {
			snprintf(msg, sizeof(msg), "%s", act.message);
			rc = app_commit(&p.w, APP_STALLED, "RunNotFound", msg, false, "Reconcile");
			break;
		}
		if (p.run) {
			status_from_run(&p, p.run);
			if (status_moved || (act.kind == TASKRUN_FINISHED && !cJSON_GetObjectItemCaseSensitive(p.status,
													    "logTail")))
				refresh_log_tail(&p, o.run_id);
		}
		const char *rs = sget(p.status, "runStatus", NULL);
		int st;
		const char *reason = taskrun_run_reason(rs, &st);
		const char *err = sget(p.status, "errorMessage", NULL);
		if (st == 0)
			snprintf(msg, sizeof(msg), "run %s succeeded", o.run_id);
		else if (st == 1)
			snprintf(msg, sizeof(msg), "run %s is %s", o.run_id, rs ? rs : "Queued");
		else
			snprintf(msg, sizeof(msg), "run %s ended %s%s%s", o.run_id, rs ? rs : "", err ? ": " : "",
				 err ? err : "");
		rc = app_commit(&p.w, st == 0 ? APP_READY : st == 1 ? APP_PROGRESSING : APP_STALLED, reason, msg, false,
			    "Observe");
		if (act.kind == TASKRUN_FOLLOW)
			p.requeue_ns = POLL_RUN_NS;
		break;
	}
	}
done:
	if (rc == 0 && p.requeue_ns > 0)
		out->requeue_after_ns = p.requeue_ns;
	arm_run_free(found);
	memo_dispose(&memo);
	pass_dispose(&p);
	return rc;
}
