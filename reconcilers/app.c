/*
 * app.c: helpers shared by the reconcilers. See app.h.
 */
#include "app.h"

#include "conditions.h"
#include "error.h"
#include "xalloc.h"

#include "objects.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

const struct ctl_gvr gvr_registries = {ACRPOOL_GROUP, ACRPOOL_VERSION_API, "registries"};
const struct ctl_gvr gvr_agentpools = {ACRPOOL_GROUP, ACRPOOL_VERSION_API, "agentpools"};
const struct ctl_gvr gvr_tasks = {ACRPOOL_GROUP, ACRPOOL_VERSION_API, "tasks"};
const struct ctl_gvr gvr_taskruns = {ACRPOOL_GROUP, ACRPOOL_VERSION_API, "taskruns"};
const struct ctl_gvr gvr_pipelineagentpools = {ACRPOOL_GROUP, ACRPOOL_VERSION_API, "pipelineagentpools"};
const struct ctl_gvr gvr_secrets = {"", "v1", "secrets"};
const struct ctl_gvr gvr_configmaps = {"", "v1", "configmaps"};

unsigned char *app_base64_decode(const char *in, size_t *len)
{
	size_t n = strlen(in);
	unsigned char *out = xmalloc(n * 3 / 4 + 3);
	unsigned bits = 0;
	int nbits = 0;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		int v;
		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '+')
			v = 62;
		else if (c == '/')
			v = 63;
		else if (c == '=')
			break;
		else if (c == '\n' || c == '\r')
			continue;
		else {
			free(out);
			return NULL;
		}
		bits = (bits << 6) | (unsigned)v;
		nbits += 6;
		if (nbits >= 8) {
			nbits -= 8;
			out[o++] = (unsigned char)((bits >> nbits) & 0xff);
		}
	}
	out[o] = '\0';
	*len = o;
	return out;
}

void app_secret_free(char *value)
{
	if (value) {
		explicit_bzero(value, strlen(value));
		free(value);
	}
}

int app_secret_read(char **out, struct app *a, const char *ns, const char *name, const char *key)
{
	cJSON *s = NULL;
	*out = NULL;
	int rc = ctl_kube_get(&s, a->kube, &gvr_secrets, ns, name, NULL);
	if (rc == CTL_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "data"), key);
	if (cJSON_IsString(v)) {
		size_t len;
		*out = (char *)app_base64_decode(v->valuestring, &len);
		if (*out && strlen(*out) != len) {
			/* A NUL inside: not a usable token or value. */
			app_secret_free(*out);
			*out = NULL;
		}
	}
	/* The whole Secret came over the wire; leave no copy behind. */
	for (cJSON *d = cJSON_GetObjectItemCaseSensitive(s, "data") ? cJSON_GetObjectItemCaseSensitive(s, "data")->child
								    : NULL; d; d = d->next)
		if (cJSON_IsString(d))
			explicit_bzero(d->valuestring, strlen(d->valuestring));
	cJSON_Delete(s);
	return 0;
}

const char *app_pool_azure_name(const struct ctl_obj *pool)
{
	const char *n = ctl_obj_string(pool, "status.azureName");
	if (!n || !*n)
		n = ctl_obj_string(pool, "spec.azureName");
	return n && *n ? n : pool->name;
}

const char *app_now(char buf[32])
{
	return ctl_time_format((long long)time(NULL), buf);
}

void app_json_set(cJSON *obj, const char *name, cJSON *value)
{
	if (cJSON_HasObjectItem(obj, name))
		cJSON_ReplaceItemInObjectCaseSensitive(obj, name, value);
	else
		cJSON_AddItemToObject(obj, name, value);
}

void app_json_set_str(cJSON *obj, const char *name, const char *value)
{
	if (!value) {
		cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
		return;
	}
	app_json_set(obj, name, cJSON_CreateString(value));
}

void app_json_set_num(cJSON *obj, const char *name, double value)
{
	app_json_set(obj, name, cJSON_CreateNumber(value));
}

bool app_set_state(cJSON *status, enum app_state state, const char *reason, const char *message,
		   long long generation)
{
	char now[32];
	app_now(now);
	const cJSON *before = ctl_conditions_find(status, "Ready");
	const char *old_reason = before ? cJSON_GetStringValue(cJSON_GetObjectItem(before, "reason")) : NULL;
	const char *old_status = before ? cJSON_GetStringValue(cJSON_GetObjectItem(before, "status")) : NULL;
	bool transition = !old_reason || strcmp(old_reason, reason) != 0 ||
			  strcmp(old_status, state == APP_READY ? "True" : "False") != 0;

	struct ctl_condition ready = {"Ready", state == APP_READY ? "True" : "False", reason, message, generation};
	ctl_conditions_set(status, &ready, now);
	if (state == APP_PROGRESSING) {
		struct ctl_condition c = {"Reconciling", "True", reason, message, generation};
		ctl_conditions_set(status, &c, now);
	} else {
		ctl_conditions_remove(status, "Reconciling");
	}
	if (state == APP_STALLED) {
		struct ctl_condition c = {"Stalled", "True", reason, message, generation};
		ctl_conditions_set(status, &c, now);
	} else {
		ctl_conditions_remove(status, "Stalled");
	}
	app_json_set_num(status, "observedGeneration", (double)generation);
	return transition;
}

void app_event(const struct app_write *w, const char *type, const char *reason, const char *action,
	       const char *msg)
{
	ctl_recorder_event(w->a->recorder, w->obj, type, reason, action, "%s", msg);
}

int app_commit(const struct app_write *w, enum app_state state, const char *reason, const char *msg,
	       bool force_event, const char *action)
{
	bool transition = app_set_state(w->status, state, reason, msg, w->obj->generation);
	int rc = ctl_status_write(w->a->kube, w->gvr, w->obj, w->status, NULL);
	if (rc == 0 && (transition || force_event))
		app_event(w, state == APP_STALLED ? "Warning" : "Normal", reason, action, msg);
	return rc;
}

int app_azure_failure(const struct app_write *w, int rc, const char *what)
{
	const struct ctl_error *e = ctl_error_last();
	char msg[1400];
	bool unreachable = !strcmp(e->reason, "ConnectionFailed");
	if (unreachable)
		snprintf(msg, sizeof(msg), "%s: no answer from Azure: %s", what, e->message);
	else
		snprintf(msg, sizeof(msg), "%s: Azure answered %s%s%s%s%s%s", what, e->reason[0] ? e->reason : "error",
			 e->message[0] ? ": " : "", e->message, e->request_id[0] ? " (request id " : "",
			 e->request_id, e->request_id[0] ? ")" : "");
	long retry_ms = e->retry_after_ms;
	if (rc == CTL_ECONFLICT && w->busy_on_conflict) {
		*w->requeue_ns = 10LL * 1000000000;
		return app_commit(w, APP_PROGRESSING, "AzureBusy", msg, false, "Reconcile");
	}
	if (rc == CTL_EAUTH)
		azure_distrust_secrets(w->a->azure); /* the fix may be in the Secret already */
	if (rc == CTL_EAUTH || rc == CTL_ETERMINAL || rc == CTL_EINVALID) {
		char reason[128];
		snprintf(reason, sizeof(reason), "%s", rc == CTL_EAUTH ? "AuthenticationFailed"
			 : !strcmp(e->reason, "QuotaExceeded") ? "QuotaExceeded"
			 : !strncmp(e->reason, "Credential", 10) ? e->reason : "AzureRequestRefused");
		int wrc = app_commit(w, APP_STALLED, reason, msg, false, "Reconcile");
		return wrc ? wrc : CTL_ETERMINAL;
	}
	const char *reason = unreachable ? "AzureUnreachable" : "AzureUnavailable";
	app_commit(w, unreachable ? APP_STALLED : APP_PROGRESSING, reason, msg, false, "Reconcile");
	if (!unreachable && retry_ms > 0) {
		*w->requeue_ns = (int64_t)retry_ms * 1000000;
		return 0;
	}
	int code = rc == CTL_ECONFLICT ? CTL_EUNAVAIL : rc;
	ctl_error_set(code, reason, "%s", msg);
	return code;
}

/* A resync: every key of the informer's store, parsing no object. */
static int list_keys(struct ctl_informer *inf, ctl_key_fn each, void *ud)
{
	char **keys;
	size_t n;
	ctl_store_keys(&keys, &n, ctl_informer_store(inf));
	for (size_t i = 0; i < n; i++)
		each(keys[i], ud);
	ctl_store_keys_free(keys, n);
	return 0;
}

int app_list_keys_registries(void *ctx, ctl_key_fn each, void *ud)
{
	return list_keys(((struct app *)ctx)->registries, each, ud);
}

int app_list_keys_agentpools(void *ctx, ctl_key_fn each, void *ud)
{
	return list_keys(((struct app *)ctx)->agentpools, each, ud);
}

int app_list_keys_tasks(void *ctx, ctl_key_fn each, void *ud)
{
	return list_keys(((struct app *)ctx)->tasks, each, ud);
}

int app_list_keys_taskruns(void *ctx, ctl_key_fn each, void *ud)
{
	return list_keys(((struct app *)ctx)->taskruns, each, ud);
}

int app_list_keys_pipelineagentpools(void *ctx, ctl_key_fn each, void *ud)
{
	return list_keys(((struct app *)ctx)->pipelineagentpools, each, ud);
}

int app_finalizer_gate(struct ctl_obj **obj, struct app *a, const struct ctl_gvr *gvr,
		       struct ctl_informer *inf, const char *key)
{
	if (ctl_finalizer_has(*obj, ACRPOOL_FINALIZER))
		return 1;
	if ((*obj)->deleting)
		return 0;
	int rc = ctl_finalizer_add(a->kube, gvr, *obj, ACRPOOL_FINALIZER);
	if (rc != 0)
		return rc;
	ctl_obj_unref(*obj);
	*obj = NULL;
	if (ctl_store_get(obj, ctl_informer_store(inf), key) != 0 || !ctl_finalizer_has(*obj, ACRPOOL_FINALIZER) ||
	    (*obj)->deleting)
		return 0;
	return 1;
}

void app_sha256_hex(char out[65], const void *data, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) || n != 32)
		abort(); /* only when out of memory */
	for (unsigned int i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}
