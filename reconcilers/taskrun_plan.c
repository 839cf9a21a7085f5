/*
 * taskrun_plan.c: the TaskRun state machine, run matching, the run request
 * and the log tail. See taskrun_plan.h.
 *
 * The order of taskrun_plan() is the policy:
 *   1. a known run is followed; deletion or spec.cancel cancel it while it
 *      is going (once), and deletion releases once it ended or the cancel
 *      was sent;
 *   2. an intent without a run id is never sent again: the run is looked
 *      for until TASKRUN_SETTLE_S after the intent; only then, with no run
 *      found, may a new intent be recorded;
 *   3. without an intent: deletion releases, cancel ends it without a run,
 *      unmet prerequisites wait (or stall), and otherwise the run is
 *      scheduled.
 */
#include "taskrun_plan.h"

#include "conditions.h"
#include "xalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *taskrun_action_name(enum taskrun_action_kind kind)
{
	static const char *names[] = {"schedule", "adopt", "find", "follow", "cancel",
				      "finished", "canceled", "wait", "stall", "release"};
	return names[kind];
}

static void set(struct taskrun_action *a, enum taskrun_action_kind kind, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void set(struct taskrun_action *a, enum taskrun_action_kind kind, const char *reason, const char *fmt, ...)
{
	va_list ap;
	a->kind = kind;
	a->reason = reason;
	va_start(ap, fmt);
	vsnprintf(a->message, sizeof(a->message), fmt, ap);
	va_end(ap);
}

const char *taskrun_run_reason(const char *s, int *state)
{
	static const struct { const char *status, *reason; int state; } map[] = {
		{"Queued", "Queued", 1}, {"Started", "Running", 1}, {"Running", "Running", 1},
		{"Succeeded", "Succeeded", 0}, {"Failed", "RunFailed", 2}, {"Error", "RunError", 2},
		{"Timeout", "RunTimeout", 2}, {"Canceled", "RunCanceled", 2},
	};
	for (size_t i = 0; s && i < sizeof(map) / sizeof(map[0]); i++) {
		if (!strcasecmp(s, map[i].status)) {
			*state = map[i].state;
			return map[i].reason;
		}
	}
	*state = 1;
	return "Queued";
}

void taskrun_plan(const struct taskrun_observed *o, struct taskrun_action *out)
{
	memset(out, 0, sizeof(*out));
	if (o->run_id) {
		const char *id = o->run_id;
		if (o->run_gone) {
			if (o->deleting)
				set(out, TASKRUN_RELEASE, "Deleted", "run %s no longer exists in Azure", id);
			else
				set(out, TASKRUN_FINISHED, "RunNotFound", "run %s no longer exists in Azure", id);
			return;
		}
		bool done = arm_run_status_terminal(o->run_status);
		if (done) {
			if (o->deleting)
				set(out, TASKRUN_RELEASE, "Deleted", "run %s had ended (%s)", id, o->run_status);
			else
				set(out, TASKRUN_FINISHED, o->run_status, "run %s ended: %s", id, o->run_status);
			return;
		}
		if ((o->deleting || o->cancel) && !o->cancel_sent) {
			set(out, TASKRUN_CANCEL, "Canceling", "canceling run %s (%s)", id,
			    o->deleting ? "the TaskRun is being deleted" : "spec.cancel is true");
			return;
		}
		if (o->deleting) {
			set(out, TASKRUN_RELEASE, "Deleted", "asked Azure to cancel run %s", id);
			return;
		}
		set(out, TASKRUN_FOLLOW, o->run_status ? o->run_status : "Queued", "run %s is %s", id,
		    o->run_status ? o->run_status : "Queued");
		return;
	}
	if (o->intent) {
		if (o->candidate) {
			set(out, TASKRUN_ADOPT, "RunFound", "found the run requested before a restart");
			return;
		}
		long long age = o->now - o->intent_time;
		if (age < TASKRUN_SETTLE_S) {
			set(out, TASKRUN_FIND, "FindingRun", "a run was requested at the recorded intent but its id was "
			    "not recorded; looking for it instead of requesting another (for up to %d s)",
			    TASKRUN_SETTLE_S);
			return;
		}
		/* No run appeared within the settle window: the request never
		 * reached Azure (or Azure refused it). */
		if (o->deleting) {
			set(out, TASKRUN_RELEASE, "Deleted", "no run had been created");
			return;
		}
		if (o->cancel) {
			set(out, TASKRUN_CANCELED, "RunCanceled", "canceled before a run was created");
			return;
		}
	} else {
		if (o->deleting) {
			set(out, TASKRUN_RELEASE, "Deleted", "no run had been requested");
			return;
		}
		if (o->cancel) {
			set(out, TASKRUN_CANCELED, "RunCanceled", "canceled before a run was requested");
			return;
		}
	}
	if (o->blocked_reason) {
		set(out, o->blocked_stall ? TASKRUN_STALL : TASKRUN_WAIT, o->blocked_reason, "%s",
		    o->blocked_message ? o->blocked_message : o->blocked_reason);
		return;
	}
	set(out, TASKRUN_SCHEDULE, "Scheduling", "requesting the run");
}

static bool claimed_by(const char *id, const char *const *claimed, size_t n)
{
	for (size_t i = 0; id && i < n; i++)
		if (claimed[i] && !strcasecmp(claimed[i], id))
			return true;
	return false;
}

int taskrun_match(const struct arm_run *runs, size_t n, const struct taskrun_match_key *k,
		  const char *const *claimed, size_t nclaimed)
{
	int best = -1;
	long long best_t = 0;
	for (size_t i = 0; i < n; i++) {
		const struct arm_run *r = &runs[i];
		long long t;
		if (!r->run_id || r->trigger || !r->create_time || ctl_time_parse(r->create_time, &t) != 0)
			continue;
		if (t < k->intent_time - TASKRUN_SKEW_S || t > k->intent_time + TASKRUN_SETTLE_S)
			continue;
		if (k->task) {
			if (!r->task || strcasecmp(r->task, k->task) != 0)
				continue;
		} else {
			if (r->task || !r->run_type || strcasecmp(r->run_type, "QuickBuild") != 0)
				continue;
			const char *pool = r->agent_pool_name && *r->agent_pool_name ? r->agent_pool_name : NULL;
			if ((k->pool == NULL) != (pool == NULL) || (pool && strcasecmp(pool, k->pool) != 0))
				continue;
		}
		if (claimed_by(r->run_id, claimed, nclaimed))
			continue;
		if (best < 0 || t < best_t || (t == best_t && strcmp(r->run_id, runs[best].run_id) < 0)) {
			best = (int)i;
			best_t = t;
		}
	}
	return best;
}

void taskrun_match_filter(char *out, size_t len, const struct taskrun_match_key *k)
{
	if (k->task)
		snprintf(out, len, "TaskName eq '%s'", k->task);
	else if (k->pool)
		snprintf(out, len, "AgentPoolName eq '%s' and RunType eq 'QuickBuild'", k->pool);
	else
		snprintf(out, len, "RunType eq 'QuickBuild'");
}

static const cJSON *jget(const cJSON *o, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(o, name);
}

static const char *jstr(const cJSON *o, const char *name)
{
	return cJSON_GetStringValue(jget(o, name));
}

cJSON *taskrun_plan_request(const cJSON *spec, const struct taskrun_target *t, const struct task_secrets *secrets,
			    char *missing, size_t missing_len)
{
	if (missing && missing_len)
		missing[0] = '\0';
	cJSON *req = cJSON_CreateObject();
	const cJSON *ref = jget(spec, "taskRef"), *build = jget(spec, "build");
	if (ref) {
		cJSON_AddStringToObject(req, "type", "TaskRunRequest");
		cJSON_AddStringToObject(req, "taskId", t->task_id ? t->task_id : "");
		const cJSON *ov = jget(ref, "overrideValues");
		if (cJSON_GetArraySize(ov) > 0) {
			cJSON *vals = task_plan_values(ov, secrets, missing, missing_len);
			if (!vals) {
				task_plan_body_free(req);
				return NULL;
			}
			cJSON *o = cJSON_AddObjectToObject(req, "overrideTaskStepProperties");
			cJSON_AddItemToObject(o, t->task_docker ? "arguments" : "values", vals);
		}
	} else {
		cJSON_AddStringToObject(req, "type", "DockerBuildRequest");
		const char *df = jstr(build, "dockerFilePath");
		cJSON_AddStringToObject(req, "dockerFilePath", df ? df : "Dockerfile");
		cJSON *names = cJSON_AddArrayToObject(req, "imageNames");
		const cJSON *n;
		cJSON_ArrayForEach(n, jget(build, "imageNames")) {
			if (cJSON_IsString(n))
				cJSON_AddItemToArray(names, cJSON_CreateString(n->valuestring));
		}
		const cJSON *push = jget(build, "push");
		cJSON_AddBoolToObject(req, "isPushEnabled", cJSON_IsBool(push) ? cJSON_IsTrue(push) : true);
		const cJSON *plat = jget(build, "platform");
		cJSON *p = cJSON_AddObjectToObject(req, "platform");
		cJSON_AddStringToObject(p, "os", jstr(plat, "os") ? jstr(plat, "os") : "Linux");
		cJSON_AddStringToObject(p, "architecture", jstr(plat, "architecture") ? jstr(plat, "architecture")
					: "amd64");
		if (jstr(plat, "variant"))
			cJSON_AddStringToObject(p, "variant", jstr(plat, "variant"));
		const cJSON *to = jget(build, "timeoutSeconds");
		cJSON_AddNumberToObject(req, "timeout", cJSON_IsNumber(to) ? to->valueint : 3600);
		if (t->source_location)
			cJSON_AddStringToObject(req, "sourceLocation", t->source_location);
		if (t->pool)
			cJSON_AddStringToObject(req, "agentPoolName", t->pool);
	}
	cJSON_AddBoolToObject(req, "isArchiveEnabled", false);
	return req;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t need;
	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0 && s[0] >= 0xc2)
		need = 2;
	else if ((s[0] & 0xf0) == 0xe0)
		need = 3;
	else if ((s[0] & 0xf8) == 0xf0 && s[0] <= 0xf4)
		need = 4;
	else
		return 0;
	if (need > n)
		return 0;
	for (size_t i = 1; i < need; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return need;
}

void taskrun_log_tail(char *out, size_t out_len, const char *log, size_t len, bool partial, int lines)
{
	out[0] = '\0';
	if (!log || !len || out_len < 2)
		return;
	size_t start = 0;
	if (partial) {
		const char *nl = memchr(log, '\n', len);
		start = nl ? (size_t)(nl - log) + 1 : len;
	}
	size_t end = len;
	while (end > start && (log[end - 1] == '\n' || log[end - 1] == '\r'))
		end--;
	/* Walk back over `lines` newlines. */
	size_t from = end;
	int seen = 0;
	while (from > start) {
		if (log[from - 1] == '\n' && ++seen == lines)
			break;
		from--;
	}
	size_t o = 0;
	for (size_t i = from; i < end && o + 5 < out_len;) {
		const unsigned char *c = (const unsigned char *)log + i;
		size_t l = utf8_len(c, end - i);
		if (l == 1 && (c[0] == '\r' || (c[0] < 0x20 && c[0] != '\n' && c[0] != '\t') || c[0] == 0x7f)) {
			if (c[0] != '\r')
				out[o++] = '?';
			i++;
		} else if (l == 0) {
			out[o++] = '?';
			i++;
		} else {
			memcpy(out + o, c, l);
			o += l;
			i += l;
		}
	}
	out[o] = '\0';
}
