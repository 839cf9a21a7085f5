/*
 * task_plan.c: the Task body, the comparison with Azure, and the decision
 * table. See task_plan.h.
 *
 * The order of the checks in task_plan() is the policy:
 *   1. deletion first: delete the Azure task we own, then release;
 *   2. the registry must exist, every referenced Secret key must exist;
 *   3. a task on a dedicated pool waits while the pool is not Ready (and
 *      says so when the pool object is gone): Azure would accept the task,
 *      but its runs would queue on a pool that cannot take them;
 *   4. an Azure operation in flight is waited on;
 *   5. create; an existing task that is not ours is adopted only when it
 *      already matches, never overwritten;
 *   6. update when the owned fields differ (drift when the declaration did
 *      not change since we were last in sync) or a Secret rotated.
 */
#include "task_plan.h"

#include "xalloc.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *task_action_name(enum task_action_kind kind)
{
	static const char *names[] = {"noop", "adopt", "wait", "create", "update", "delete", "release", "stall"};
	return names[kind];
}

const char *task_secrets_lookup(const struct task_secrets *s, const char *secret, const char *key)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (!strcmp(s->items[i].secret, secret) && !strcmp(s->items[i].key, key))
			return s->items[i].value;
	return NULL;
}

static const char *jstr(const cJSON *o, const char *name)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
}

static const cJSON *jget(const cJSON *o, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(o, name);
}

static void push_ref(struct task_secret **out, size_t *n, const cJSON *ref)
{
	const char *s = jstr(ref, "name"), *k = jstr(ref, "key");
	if (!s || !k)
		return;
	*out = xrealloc(*out, (*n + 1) * sizeof(**out));
	(*out)[(*n)++] = (struct task_secret){s, k, NULL};
}

void task_plan_value_secret_refs(struct task_secret **out, size_t *n, const cJSON *values)
{
	const cJSON *v;
	cJSON_ArrayForEach(v, values) {
		const cJSON *ref = jget(v, "secretKeyRef");
		if (ref)
			push_ref(out, n, ref);
	}
}

void task_plan_secret_refs(struct task_secret **out, size_t *n, const cJSON *spec)
{
	*out = NULL;
	*n = 0;
	const cJSON *ref = jget(spec, "contextAccessTokenSecretRef");
	if (ref)
		push_ref(out, n, ref);
	const cJSON *step = jget(spec, "step");
	task_plan_value_secret_refs(out, n, jget(jget(step, "docker"), "arguments"));
	task_plan_value_secret_refs(out, n, jget(jget(step, "file"), "values"));
	task_plan_value_secret_refs(out, n, jget(jget(step, "encoded"), "values"));
}

void task_plan_secret_hash(char out[65], const char *uid, const struct task_secrets *s)
{
	out[0] = '\0';
	if (!s || s->n == 0)
		return;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		abort();
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	/* The uid keeps equal values in two objects from hashing alike. */
	EVP_DigestUpdate(ctx, uid ? uid : "", uid ? strlen(uid) + 1 : 1);
	for (size_t i = 0; i < s->n; i++) {
		const struct task_secret *e = &s->items[i];
		EVP_DigestUpdate(ctx, e->secret, strlen(e->secret) + 1);
		EVP_DigestUpdate(ctx, e->key, strlen(e->key) + 1);
		if (e->value)
			EVP_DigestUpdate(ctx, e->value, strlen(e->value) + 1);
		else
			EVP_DigestUpdate(ctx, "\xff", 1);
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	for (unsigned int i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static const char *ref_value(const cJSON *ref, const struct task_secrets *secrets, char *missing, size_t len)
{
	const char *s = jstr(ref, "name"), *k = jstr(ref, "key");
	const char *v = s && k ? task_secrets_lookup(secrets, s, k) : NULL;
	if (!v && missing && !missing[0])
		snprintf(missing, len, "Secret %s key %s", s ? s : "?", k ? k : "?");
	return v;
}

cJSON *task_plan_values(const cJSON *values, const struct task_secrets *secrets, char *missing,
			size_t missing_len)
{
	cJSON *arr = cJSON_CreateArray();
	const cJSON *v;
	bool bad = false;
	cJSON_ArrayForEach(v, values) {
		const char *name = jstr(v, "name");
		const cJSON *ref = jget(v, "secretKeyRef");
		const char *value = ref ? ref_value(ref, secrets, missing, missing_len) : jstr(v, "value");
		if (ref && !value) {
			bad = true;
			continue;
		}
		if (!name)
			continue;
		cJSON *item = cJSON_CreateObject();
		cJSON_AddStringToObject(item, "name", name);
		cJSON_AddStringToObject(item, "value", value ? value : "");
		cJSON_AddBoolToObject(item, "isSecret", ref != NULL);
		cJSON_AddItemToArray(arr, item);
	}
	if (bad) {
		task_plan_body_free(arr);
		return NULL;
	}
	return arr;
}

static char *base64(const char *in)
{
	size_t len = strlen(in);
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)len);
	return out;
}

static bool spec_bool(const cJSON *o, const char *name, bool def)
{
	const cJSON *v = jget(o, name);
	return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

static void copy_str(cJSON *dst, const char *to, const cJSON *src, const char *from, const char *def)
{
	const char *v = jstr(src, from);
	if (v || def)
		cJSON_AddStringToObject(dst, to, v ? v : def);
}

cJSON *task_plan_body(const cJSON *spec, const char *location, const char *pool_name, const char *owner,
		      const struct task_secrets *secrets, char *missing, size_t missing_len)
{
	if (missing && missing_len)
		missing[0] = '\0';
	cJSON *body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "location", location ? location : "");
	cJSON *tags = cJSON_AddObjectToObject(body, "tags");
	cJSON_AddStringToObject(tags, TASK_OWNER_TAG, owner ? owner : "");
	cJSON *p = cJSON_AddObjectToObject(body, "properties");
	cJSON_AddStringToObject(p, "status", spec_bool(spec, "enabled", true) ? "Enabled" : "Disabled");
	const cJSON *plat = jget(spec, "platform");
	cJSON *platform = cJSON_AddObjectToObject(p, "platform");
	copy_str(platform, "os", plat, "os", "Linux");
	copy_str(platform, "architecture", plat, "architecture", "amd64");
	copy_str(platform, "variant", plat, "variant", NULL);
	if (pool_name)
		cJSON_AddStringToObject(p, "agentPoolName", pool_name);
	const cJSON *cpu = jget(spec, "cpu");
	if (cJSON_IsNumber(cpu))
		cJSON_AddNumberToObject(cJSON_AddObjectToObject(p, "agentConfiguration"), "cpu", cpu->valueint);
	const cJSON *timeout = jget(spec, "timeoutSeconds");
	cJSON_AddNumberToObject(p, "timeout", cJSON_IsNumber(timeout) ? timeout->valueint : 3600);

	const cJSON *st = jget(spec, "step");
	const cJSON *docker = jget(st, "docker"), *file = jget(st, "file"), *enc = jget(st, "encoded");
	cJSON *step = cJSON_AddObjectToObject(p, "step");
	const cJSON *values = NULL;
	const char *values_member = "values";
	if (docker) {
		cJSON_AddStringToObject(step, "type", "Docker");
		copy_str(step, "contextPath", docker, "contextPath", NULL);
		copy_str(step, "dockerFilePath", docker, "dockerFilePath", "Dockerfile");
		cJSON *names = cJSON_AddArrayToObject(step, "imageNames");
		const cJSON *n;
		cJSON_ArrayForEach(n, jget(docker, "imageNames")) {
			if (cJSON_IsString(n))
				cJSON_AddItemToArray(names, cJSON_CreateString(n->valuestring));
		}
		cJSON_AddBoolToObject(step, "isPushEnabled", spec_bool(docker, "push", true));
		cJSON_AddBoolToObject(step, "noCache", spec_bool(docker, "noCache", false));
		copy_str(step, "target", docker, "target", NULL);
		values = jget(docker, "arguments");
		values_member = "arguments";
	} else if (file) {
		cJSON_AddStringToObject(step, "type", "FileTask");
		copy_str(step, "contextPath", file, "contextPath", NULL);
		copy_str(step, "taskFilePath", file, "taskFilePath", NULL);
		copy_str(step, "valuesFilePath", file, "valuesFilePath", NULL);
		values = jget(file, "values");
	} else if (enc) {
		cJSON_AddStringToObject(step, "type", "EncodedTask");
		const char *content = jstr(enc, "taskContent");
		char *b64 = base64(content ? content : "");
		cJSON_AddStringToObject(step, "encodedTaskContent", b64);
		free(b64);
		values = jget(enc, "values");
	}
	/* Checked in spec order: the token first. */
	const cJSON *tok = jget(spec, "contextAccessTokenSecretRef");
	if (tok) {
		const char *v = ref_value(tok, secrets, missing, missing_len);
		if (!v)
			goto missing;
		cJSON_AddStringToObject(step, "contextAccessToken", v);
	}
	cJSON *vals = task_plan_values(values, secrets, missing, missing_len);
	if (!vals)
		goto missing;
	cJSON_AddItemToObject(step, values_member, vals);

	const cJSON *timers = jget(spec, "timers"), *bit = jget(spec, "baseImageTrigger");
	if (cJSON_GetArraySize(timers) > 0 || bit) {
		cJSON *trig = cJSON_AddObjectToObject(p, "trigger");
		if (cJSON_GetArraySize(timers) > 0) {
			cJSON *arr = cJSON_AddArrayToObject(trig, "timerTriggers");
			const cJSON *t;
			cJSON_ArrayForEach(t, timers) {
				cJSON *o = cJSON_CreateObject();
				copy_str(o, "name", t, "name", "");
				copy_str(o, "schedule", t, "schedule", "");
				cJSON_AddStringToObject(o, "status", spec_bool(t, "enabled", true) ? "Enabled" : "Disabled");
				cJSON_AddItemToArray(arr, o);
			}
		}
		if (bit) {
			cJSON *o = cJSON_AddObjectToObject(trig, "baseImageTrigger");
			copy_str(o, "name", bit, "name", "defaultBaseimageTriggerName");
			copy_str(o, "baseImageTriggerType", bit, "type", "Runtime");
			cJSON_AddStringToObject(o, "status", spec_bool(bit, "enabled", true) ? "Enabled" : "Disabled");
		}
	}
	return body;
missing:
	task_plan_body_free(body);
	return NULL;
}

static void wipe(cJSON *j)
{
	for (cJSON *c = j; c; c = c->next) {
		if (cJSON_IsString(c) && c->valuestring)
			explicit_bzero(c->valuestring, strlen(c->valuestring));
		if (c->child)
			wipe(c->child);
	}
}

void task_plan_body_free(cJSON *body)
{
	if (!body)
		return;
	wipe(body->child);
	cJSON_Delete(body);
}

/* ---- comparison ---- */

static void lower(char *s)
{
	for (; s && *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static void view_str(cJSON *v, const char *name, const char *value, bool fold)
{
	if (!value || !*value)
		return;
	cJSON *s = cJSON_CreateString(value);
	if (fold)
		lower(s->valuestring);
	cJSON_AddItemToObject(v, name, s);
}

static int cmp_names(const void *a, const void *b)
{
	const char *x = jstr(*(cJSON *const *)a, "name"), *y = jstr(*(cJSON *const *)b, "name");
	return strcmp(x ? x : "", y ? y : "");
}

/* A list of {name, ...} sorted by name, as a new array (order in Azure is
 * not ours to keep). */
static cJSON *sorted_by_name(cJSON *arr)
{
	int n = cJSON_GetArraySize(arr);
	cJSON **items = xcalloc((size_t)n + 1, sizeof(*items));
	for (int i = 0; i < n; i++)
		items[i] = cJSON_DetachItemFromArray(arr, 0);
	qsort(items, (size_t)n, sizeof(*items), cmp_names);
	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(arr, items[i]);
	free(items);
	return arr;
}

/* The owned fields of a Task body or an Azure task, normalised: enums and
 * the pool name folded to lower case, defaults filled, secret values and
 * secret arguments left out (GET hides them). */
static cJSON *owned_view(const cJSON *task)
{
	const cJSON *p = jget(task, "properties");
	cJSON *v = cJSON_CreateObject();
	view_str(v, "status", jstr(p, "status") ? jstr(p, "status") : "Enabled", true);
	const cJSON *plat = jget(p, "platform");
	cJSON *pv = cJSON_AddObjectToObject(v, "platform");
	view_str(pv, "os", jstr(plat, "os"), true);
	view_str(pv, "architecture", jstr(plat, "architecture"), true);
	view_str(pv, "variant", jstr(plat, "variant"), true);
	view_str(v, "agentPoolName", jstr(p, "agentPoolName"), true);
	const cJSON *t = jget(p, "timeout");
	cJSON_AddNumberToObject(v, "timeout", cJSON_IsNumber(t) ? t->valuedouble : 3600);
	const cJSON *cpu = jget(jget(p, "agentConfiguration"), "cpu");
	if (cJSON_IsNumber(cpu))
		cJSON_AddNumberToObject(v, "cpu", cpu->valuedouble);

	const cJSON *st = jget(p, "step");
	cJSON *sv = cJSON_AddObjectToObject(v, "step");
	view_str(sv, "type", jstr(st, "type"), true);
	static const char *const strs[] = {"contextPath", "dockerFilePath", "taskFilePath", "valuesFilePath",
					   "encodedTaskContent", "target", NULL};
	for (int i = 0; strs[i]; i++)
		view_str(sv, strs[i], jstr(st, strs[i]), false);
	const char *type = jstr(st, "type");
	if (type && !strcasecmp(type, "Docker")) {
		cJSON_AddItemToObject(sv, "imageNames", jget(st, "imageNames")
			? cJSON_Duplicate(jget(st, "imageNames"), true) : cJSON_CreateArray());
		cJSON_AddBoolToObject(sv, "isPushEnabled", spec_bool(st, "isPushEnabled", true));
		cJSON_AddBoolToObject(sv, "noCache", spec_bool(st, "noCache", false));
	}
	cJSON *args = cJSON_AddArrayToObject(sv, "values");
	const cJSON *list = jget(st, "arguments") ? jget(st, "arguments") : jget(st, "values"), *a;
	cJSON_ArrayForEach(a, list) {
		if (spec_bool(a, "isSecret", false))
			continue;
		cJSON *o = cJSON_CreateObject();
		view_str(o, "name", jstr(a, "name"), false);
		cJSON_AddStringToObject(o, "value", jstr(a, "value") ? jstr(a, "value") : "");
		cJSON_AddItemToArray(args, o);
	}
	sorted_by_name(args);

	const cJSON *trig = jget(p, "trigger");
	cJSON *timers = cJSON_AddArrayToObject(v, "timers");
	cJSON_ArrayForEach(a, jget(trig, "timerTriggers")) {
		cJSON *o = cJSON_CreateObject();
		view_str(o, "name", jstr(a, "name"), false);
		view_str(o, "schedule", jstr(a, "schedule"), false);
		view_str(o, "status", jstr(a, "status") ? jstr(a, "status") : "Enabled", true);
		cJSON_AddItemToArray(timers, o);
	}
	sorted_by_name(timers);
	const cJSON *bit = jget(trig, "baseImageTrigger");
	if (cJSON_IsObject(bit)) {
		cJSON *o = cJSON_AddObjectToObject(v, "baseImageTrigger");
		view_str(o, "name", jstr(bit, "name"), false);
		view_str(o, "type", jstr(bit, "baseImageTriggerType"), true);
		view_str(o, "status", jstr(bit, "status") ? jstr(bit, "status") : "Enabled", true);
	}
	/* Source triggers are never ours: any there is drift. */
	if (cJSON_GetArraySize(jget(trig, "sourceTriggers")) > 0)
		cJSON_AddTrueToObject(v, "sourceTriggers");
	return v;
}

static void add_diff(char *diff, size_t len, const char *name)
{
	size_t used = strlen(diff);
	snprintf(diff + used, len - used, "%s%s", used ? ", " : "", name);
}

bool task_plan_compare(const cJSON *desired, const cJSON *azure, char *diff, size_t diff_len)
{
	cJSON *d = owned_view(desired), *a = owned_view(azure);
	diff[0] = '\0';
	static const char *const fields[] = {"status", "platform", "agentPoolName", "timeout", "cpu", "step",
					     "timers", "baseImageTrigger", "sourceTriggers", NULL};
	for (int i = 0; fields[i]; i++) {
		const cJSON *x = jget(d, fields[i]), *y = jget(a, fields[i]);
		if (!x && !y)
			continue;
		if (!x || !y || !cJSON_Compare(x, y, true)) {
			if (!strcmp(fields[i], "step")) {
				/* Name the step member: "imageNames" tells more than "step". */
				const cJSON *m;
				size_t before = strlen(diff);
				cJSON_ArrayForEach(m, x) {
					if (!cJSON_Compare(m, jget(y, m->string), true))
						add_diff(diff, diff_len, m->string);
				}
				cJSON_ArrayForEach(m, y) {
					if (!jget(x, m->string))
						add_diff(diff, diff_len, m->string);
				}
				if (strlen(diff) == before)
					add_diff(diff, diff_len, "step");
			} else {
				add_diff(diff, diff_len, fields[i]);
			}
		}
	}
	cJSON_Delete(d);
	cJSON_Delete(a);
	return diff[0] != '\0';
}

/* ---- decision ---- */

static void set(struct task_action *a, enum task_action_kind kind, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void set(struct task_action *a, enum task_action_kind kind, const char *reason, const char *fmt, ...)
{
	va_list ap;
	a->kind = kind;
	a->reason = reason;
	va_start(ap, fmt);
	vsnprintf(a->message, sizeof(a->message), fmt, ap);
	va_end(ap);
}

static bool in_flight(const char *state)
{
	return state && (!strcasecmp(state, "Creating") || !strcasecmp(state, "Updating") ||
			 !strcasecmp(state, "Deleting"));
}

void task_plan(const struct task_observed *o, struct task_action *out)
{
	memset(out, 0, sizeof(*out));
	const char *pool = o->pool_name ? o->pool_name : "";
	if (o->deleting) {
		if (o->registry_found && o->task_found && (o->owned || o->task_tagged_ours))
			set(out, TASK_DELETE, "Deleting", "deleting the Azure task");
		else
			set(out, TASK_RELEASE, "Deleted", o->registry_found ? "the Azure task is gone"
			    : "the registry is gone; nothing left to delete in Azure");
		return;
	}
	if (!o->registry_found) {
		set(out, TASK_STALL, "RegistryNotFound", "the registry does not exist in Azure");
		return;
	}
	if (o->missing_secret) {
		set(out, TASK_STALL, "SecretNotFound", "%s does not exist; create it (the task is not sent to Azure "
		    "without it)", o->missing_secret);
		return;
	}
	if (o->pool_ref) {
		if (!o->pool_found) {
			set(out, TASK_STALL, "AgentPoolNotFound", "AgentPool %s named by spec.agentPoolRef does not exist "
			    "(deleted?); the task waits for it (the Azure task, if any, is left as it is)", pool);
			return;
		}
		if (o->pool_other_registry) {
			set(out, TASK_STALL, "AgentPoolInOtherRegistry", "AgentPool %s belongs to another Registry; a "
			    "task runs only on a pool of its own registry", pool);
			return;
		}
		if (o->pool_deleting) {
			set(out, TASK_WAIT, "AgentPoolNotReady", "AgentPool %s is being deleted", pool);
			return;
		}
		if (!o->pool_ready) {
			set(out, TASK_WAIT, "AgentPoolNotReady", "waiting for AgentPool %s to be Ready", pool);
			return;
		}
	}
	if (o->task_found && in_flight(o->provisioning_state)) {
		set(out, TASK_WAIT, o->provisioning_state, "Azure is still %s the task", o->provisioning_state);
		return;
	}
	if (!o->task_found) {
		set(out, TASK_CREATE, "Creating", "creating the Azure task");
		return;
	}
	if (!o->owned && !o->task_tagged_ours) {
		if (o->differs)
			set(out, TASK_STALL, "ConflictingTask", "a task with this name already exists in Azure, was not "
			    "created by this object and differs in %s; it is left untouched (delete it, or set "
			    "spec.azureName)", o->diff ? o->diff : "its settings");
		else
			set(out, TASK_ADOPT, "Adopted", "adopted the existing Azure task, which matches the spec");
		return;
	}
	if (o->differs) {
		out->drift = o->in_sync_before;
		if (out->drift)
			set(out, TASK_UPDATE, "DriftCorrected", "Azure's task differed in %s; put back as declared",
			    o->diff ? o->diff : "its settings");
		else
			set(out, TASK_UPDATE, "Updating", "updating %s in Azure", o->diff ? o->diff : "the task");
		return;
	}
	if (o->secrets_changed) {
		set(out, TASK_UPDATE, "SecretRotated", "a referenced Secret changed; sending the new value to Azure");
		return;
	}
	set(out, TASK_NOOP, "Succeeded", "the Azure task matches the spec");
}
