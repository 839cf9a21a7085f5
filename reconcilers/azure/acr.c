/*
 * acr.c: the typed calls of Microsoft.ContainerRegistry. See acr.h.
 *
 * Each call builds its registry-relative path, sends it with the core's
 * plumbing (arm_internal.h) and turns the JSON answer into the caller's
 * struct. Nothing here touches the wire: retries, errors and long-running
 * operations are the core's (arm.c).
 */
#include "azure/acr.h"

#include "azure/arm_internal.h"
#include "error.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REGISTRIES "Microsoft.ContainerRegistry/registries"

/* "/subscriptions/../registries/<name><suffix>" with every name escaped. */
static char *registry_path(const struct arm_registry_ref *ref, const char *suffix)
{
	return arm_resource_path(ref->subscription_id, ref->resource_group, REGISTRIES, ref->name, suffix);
}

static char *child_path(const struct arm_registry_ref *ref, const char *collection, const char *name,
			const char *action)
{
	char *e = arm_escape(name);
	char *suffix = xasprintf("/%s/%s%s", collection, e, action ? action : "");
	char *p = registry_path(ref, suffix);
	free(e);
	free(suffix);
	return p;
}

static int ref_valid(const struct arm_registry_ref *ref)
{
	if (!ref || !ref->subscription_id || !*ref->subscription_id || !ref->resource_group ||
	    !*ref->resource_group || !ref->name || !*ref->name)
		return ctl_error_set(CTL_EINVALID, "InvalidRegistryRef",
				     "registry reference needs a subscription, a resource group and a name");
	return 0;
}

/* ---- registries ---- */

int arm_registry_get(struct arm_registry **out, struct arm_client *c, const struct arm_registry_ref *ref)
{
	int rc;
	cJSON *o = NULL;
	char *path = NULL, *url = NULL;
	struct arm_response r;

	*out = NULL;
	arm_response_init(&r);
	if ((rc = ref_valid(ref)))
		return rc;
	path = registry_path(ref, NULL);
	url = arm_path_url(c, path, arm_client_registries_api_version(c));
	rc = arm_call(&o, &r, c, "GET", url, "registries.get", NULL);
	if (rc)
		goto done;
	struct arm_registry *g = xcalloc(1, sizeof(*g));
	g->id = arm_jstr(o, "id");
	g->location = arm_jstr(o, "location");
	g->sku_name = arm_jstr(arm_jget(o, "sku"), "name");
	g->sku_tier = arm_jstr(arm_jget(o, "sku"), "tier");
	if (!g->sku_tier)
		g->sku_tier = xstrdup(g->sku_name);
	g->login_server = arm_jstr(arm_jget(o, "properties"), "loginServer");
	g->provisioning_state = arm_jstr(arm_jget(o, "properties"), "provisioningState");
	*out = g;
done:
	cJSON_Delete(o);
	arm_response_dispose(&r);
	free(path);
	free(url);
	return rc;
}

void arm_registry_free(struct arm_registry *g)
{
	if (!g)
		return;
	free(g->id);
	free(g->location);
	free(g->login_server);
	free(g->sku_name);
	free(g->sku_tier);
	free(g->provisioning_state);
	free(g);
}

/* ---- agent pools ---- */

int arm_agent_pool_from_json(struct arm_agent_pool *p, const cJSON *o)
{
	memset(p, 0, sizeof(*p));
	p->count = -1;
	if (!cJSON_IsObject(o))
		return ctl_error_set(CTL_EINVALID, "InvalidResponse", "agent pool is not a JSON object");
	const cJSON *props = arm_jget(o, "properties");
	p->id = arm_jstr(o, "id");
	p->name = arm_jstr(o, "name");
	p->location = arm_jstr(o, "location");
	p->tier = arm_jstr(props, "tier");
	p->os = arm_jstr(props, "os");
	p->subnet_id = arm_jstr(props, "virtualNetworkSubnetResourceId");
	p->provisioning_state = arm_jstr(props, "provisioningState");
	const cJSON *count = arm_jget(props, "count");
	/* A count outside int's range is nonsense from a peer: read it as
	 * absent rather than convert it (undefined behaviour). */
	if (cJSON_IsNumber(count) && count->valuedouble >= 0 && count->valuedouble <= 1e6)
		p->count = (int)count->valuedouble;
	const cJSON *tags = arm_jget(o, "tags"), *t;
	if (cJSON_IsObject(tags)) {
		p->tags = xcalloc((size_t)cJSON_GetArraySize(tags) + 1, sizeof(*p->tags));
		cJSON_ArrayForEach(t, tags) {
			if (!cJSON_IsString(t) || !t->string)
				continue;
			p->tags[p->ntags].name = xstrdup(t->string);
			p->tags[p->ntags].value = xstrdup(t->valuestring);
			p->ntags++;
		}
	}
	return 0;
}

cJSON *arm_agent_pool_to_json(const struct arm_agent_pool *p)
{
	cJSON *o = cJSON_CreateObject();
	if (p->location)
		cJSON_AddStringToObject(o, "location", p->location);
	if (p->ntags)
		cJSON_AddItemToObject(o, "tags", arm_tags_json(p->tags, p->ntags));
	cJSON *props = cJSON_AddObjectToObject(o, "properties");
	if (p->count >= 0)
		cJSON_AddNumberToObject(props, "count", p->count);
	if (p->tier)
		cJSON_AddStringToObject(props, "tier", p->tier);
	cJSON_AddStringToObject(props, "os", p->os ? p->os : "Linux");
	if (p->subnet_id && *p->subnet_id)
		cJSON_AddStringToObject(props, "virtualNetworkSubnetResourceId", p->subnet_id);
	return o;
}

void arm_agent_pool_dispose(struct arm_agent_pool *p)
{
	if (!p)
		return;
	free(p->id);
	free(p->name);
	free(p->location);
	free(p->tier);
	free(p->os);
	free(p->subnet_id);
	free(p->provisioning_state);
	for (size_t i = 0; i < p->ntags; i++) {
		free(p->tags[i].name);
		free(p->tags[i].value);
	}
	free(p->tags);
	memset(p, 0, sizeof(*p));
}

void arm_agent_pool_free(struct arm_agent_pool *p)
{
	arm_agent_pool_dispose(p);
	free(p);
}

void arm_agent_pool_array_free(struct arm_agent_pool *items, size_t n)
{
	for (size_t i = 0; items && i < n; i++)
		arm_agent_pool_dispose(&items[i]);
	free(items);
}

/* Turn an answer body into a heap pool for *out (when out is wanted). */
static int pool_out(struct arm_agent_pool **out, const cJSON *o)
{
	if (!out)
		return 0;
	*out = NULL;
	if (!o)
		return 0;
	struct arm_agent_pool *p = xcalloc(1, sizeof(*p));
	int rc = arm_agent_pool_from_json(p, o);
	if (rc) {
		arm_agent_pool_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

int arm_agent_pool_create(struct arm_agent_pool **out, struct arm_operation **op, struct arm_client *c,
			  const struct arm_registry_ref *ref, const char *name,
			  const struct arm_agent_pool *desired)
{
	int rc;
	cJSON *o = NULL, *body = NULL;
	char *path = NULL;

	if (out)
		*out = NULL;
	if (op)
		*op = NULL;
	if ((rc = ref_valid(ref)))
		return rc;
	path = child_path(ref, "agentPools", name, NULL);
	body = arm_agent_pool_to_json(desired);
	rc = arm_write_call(&o, op, c, "PUT", path, "agentPools.create", body);
	if (rc == 0)
		rc = pool_out(out, o);
	cJSON_Delete(o);
	cJSON_Delete(body);
	free(path);
	return rc;
}

int arm_agent_pool_get(struct arm_agent_pool **out, struct arm_client *c, const struct arm_registry_ref *ref,
		       const char *name)
{
	int rc;
	cJSON *o = NULL;
	char *path = NULL;
	struct arm_response r;

	*out = NULL;
	if ((rc = ref_valid(ref)))
		return rc;
	arm_response_init(&r);
	path = child_path(ref, "agentPools", name, NULL);
	rc = arm_call(&o, &r, c, "GET", path, "agentPools.get", NULL);
	if (rc == 0)
		rc = o ? pool_out(out, o)
		       : ctl_error_set(CTL_EINVALID, "InvalidResponse", "agentPools.get: empty body");
	cJSON_Delete(o);
	arm_response_dispose(&r);
	free(path);
	return rc;
}

int arm_agent_pool_update(struct arm_agent_pool **out, struct arm_operation **op, struct arm_client *c,
			  const struct arm_registry_ref *ref, const char *name, int count,
			  const struct arm_tag *tags, size_t ntags, int tags_set)
{
	int rc;
	cJSON *o = NULL, *body = cJSON_CreateObject();
	char *path = NULL;

	if (out)
		*out = NULL;
	if (op)
		*op = NULL;
	if ((rc = ref_valid(ref)))
		goto done;
	/* AgentPoolUpdateParameters has exactly properties.count and tags;
	 * tags in a PATCH replace the whole set. */
	if (count >= 0)
		cJSON_AddNumberToObject(cJSON_AddObjectToObject(body, "properties"), "count", count);
	if (tags_set)
		cJSON_AddItemToObject(body, "tags", arm_tags_json(tags, ntags));
	path = child_path(ref, "agentPools", name, NULL);
	rc = arm_write_call(&o, op, c, "PATCH", path, "agentPools.update", body);
	if (rc == 0)
		rc = pool_out(out, o);
done:
	cJSON_Delete(o);
	cJSON_Delete(body);
	free(path);
	return rc;
}

/* DELETE of a registry's child; something already gone is success. */
static int delete_child(struct arm_operation **op, struct arm_client *c, const struct arm_registry_ref *ref,
			const char *collection, const char *name, const char *operation)
{
	int rc;
	char *path = NULL;

	if (op)
		*op = NULL;
	if ((rc = ref_valid(ref)))
		return rc;
	path = child_path(ref, collection, name, NULL);
	rc = arm_delete_call(op, c, path, operation);
	free(path);
	return rc;
}

int arm_agent_pool_delete(struct arm_operation **op, struct arm_client *c, const struct arm_registry_ref *ref,
			  const char *name)
{
	return delete_child(op, c, ref, "agentPools", name, "agentPools.delete");
}

int arm_agent_pool_list(struct arm_agent_pool **items, size_t *n, struct arm_client *c,
			const struct arm_registry_ref *ref)
{
	int rc;
	cJSON *all = NULL, *it;
	char *path = NULL;

	*items = NULL;
	*n = 0;
	if ((rc = ref_valid(ref)))
		return rc;
	path = registry_path(ref, "/agentPools");
	rc = arm_list_all(&all, c, path, "agentPools.list", 0);
	if (rc)
		goto done;
	struct arm_agent_pool *v = xcalloc((size_t)cJSON_GetArraySize(all) + 1, sizeof(*v));
	size_t k = 0;
	cJSON_ArrayForEach(it, all) {
		if (arm_agent_pool_from_json(&v[k], it) == 0)
			k++;
	}
	*items = v;
	*n = k;
done:
	cJSON_Delete(all);
	free(path);
	return rc;
}

int arm_agent_pool_queue_status(int *count, struct arm_client *c, const struct arm_registry_ref *ref,
				const char *name)
{
	int rc;
	cJSON *o = NULL;
	char *path = NULL;
	struct arm_response r;

	*count = 0;
	if ((rc = ref_valid(ref)))
		return rc;
	arm_response_init(&r);
	path = child_path(ref, "agentPools", name, "/listQueueStatus");
	rc = arm_call(&o, &r, c, "POST", path, "agentPools.listQueueStatus", NULL);
	if (rc)
		goto done;
	const cJSON *v = arm_jget(o, "count");
	if (cJSON_IsNumber(v))
		*count = (int)v->valuedouble;
	else if (cJSON_IsNumber(o)) /* an early revision answered a bare integer */
		*count = (int)o->valuedouble;
	else
		rc = ctl_error_set(CTL_EINVALID, "InvalidResponse", "listQueueStatus: no count in the answer");
done:
	cJSON_Delete(o);
	arm_response_dispose(&r);
	free(path);
	return rc;
}

/* ---- tasks ---- */

int arm_task_create(cJSON **out, struct arm_operation **op, struct arm_client *c,
		    const struct arm_registry_ref *ref, const char *name, const cJSON *body)
{
	int rc;
	if (out)
		*out = NULL;
	if (op)
		*op = NULL;
	if ((rc = ref_valid(ref)))
		return rc;
	char *path = child_path(ref, "tasks", name, NULL);
	rc = arm_write_call(out, op, c, "PUT", path, "tasks.create", body);
	free(path);
	return rc;
}

int arm_task_update(cJSON **out, struct arm_operation **op, struct arm_client *c,
		    const struct arm_registry_ref *ref, const char *name, const cJSON *patch)
{
	int rc;
	if (out)
		*out = NULL;
	if (op)
		*op = NULL;
	if ((rc = ref_valid(ref)))
		return rc;
	char *path = child_path(ref, "tasks", name, NULL);
	rc = arm_write_call(out, op, c, "PATCH", path, "tasks.update", patch);
	free(path);
	return rc;
}

int arm_task_get(cJSON **out, struct arm_client *c, const struct arm_registry_ref *ref, const char *name)
{
	int rc;
	struct arm_response r;
	*out = NULL;
	if ((rc = ref_valid(ref)))
		return rc;
	arm_response_init(&r);
	char *path = child_path(ref, "tasks", name, NULL);
	rc = arm_call(out, &r, c, "GET", path, "tasks.get", NULL);
	if (rc == 0 && !*out)
		rc = ctl_error_set(CTL_EINVALID, "InvalidResponse", "tasks.get: empty body");
	arm_response_dispose(&r);
	free(path);
	return rc;
}

int arm_task_delete(struct arm_operation **op, struct arm_client *c, const struct arm_registry_ref *ref,
		    const char *name)
{
	return delete_child(op, c, ref, "tasks", name, "tasks.delete");
}

int arm_task_list(cJSON **out, struct arm_client *c, const struct arm_registry_ref *ref)
{
	int rc;
	*out = NULL;
	if ((rc = ref_valid(ref)))
		return rc;
	char *path = registry_path(ref, "/tasks");
	rc = arm_list_all(out, c, path, "tasks.list", 0);
	free(path);
	return rc;
}

/* ---- runs ---- */

int arm_run_status_terminal(const char *s)
{
	static const char *const terminal[] = {"Succeeded", "Failed", "Canceled", "Error", "Timeout"};
	for (size_t i = 0; s && i < sizeof(terminal) / sizeof(terminal[0]); i++)
		if (strcasecmp(s, terminal[i]) == 0)
			return 1;
	return 0;
}

int arm_run_from_json(struct arm_run *r, const cJSON *o)
{
	memset(r, 0, sizeof(*r));
	if (!cJSON_IsObject(o))
		return ctl_error_set(CTL_EINVALID, "InvalidResponse", "run is not a JSON object");
	const cJSON *p = arm_jget(o, "properties");
	r->id = arm_jstr(o, "id");
	r->run_id = arm_jstr(p, "runId");
	if (!r->run_id)
		r->run_id = arm_jstr(o, "name");
	r->status = arm_jstr(p, "status");
	r->run_type = arm_jstr(p, "runType");
	r->task = arm_jstr(p, "task");
	r->agent_pool_name = arm_jstr(p, "agentPoolName");
	r->create_time = arm_jstr(p, "createTime");
	r->start_time = arm_jstr(p, "startTime");
	r->finish_time = arm_jstr(p, "finishTime");
	r->last_updated_time = arm_jstr(p, "lastUpdatedTime");
	r->run_error_message = arm_jstr(p, "runErrorMessage");
	r->provisioning_state = arm_jstr(p, "provisioningState");
	const cJSON *timer = arm_jget(p, "timerTrigger");
	if (cJSON_IsObject(timer))
		r->trigger = arm_jstr(timer, "timerTriggerName");
	if (!r->trigger && cJSON_IsObject(timer))
		r->trigger = xstrdup("Timer");
	if (!r->trigger && cJSON_IsObject(arm_jget(p, "sourceTrigger")))
		r->trigger = xstrdup("SourceTrigger");
	if (!r->trigger && cJSON_IsObject(arm_jget(p, "imageUpdateTrigger")))
		r->trigger = xstrdup("BaseImageUpdate");
	const cJSON *imgs = arm_jget(p, "outputImages"), *it;
	if (cJSON_IsArray(imgs)) {
		r->output_images = xcalloc((size_t)cJSON_GetArraySize(imgs) + 1, sizeof(*r->output_images));
		cJSON_ArrayForEach(it, imgs) {
			struct arm_run_image *im = &r->output_images[r->noutput_images++];
			im->registry = arm_jstr(it, "registry");
			im->repository = arm_jstr(it, "repository");
			im->tag = arm_jstr(it, "tag");
			im->digest = arm_jstr(it, "digest");
		}
	}
	return 0;
}

void arm_run_dispose(struct arm_run *r)
{
	if (!r)
		return;
	free(r->id);
	free(r->run_id);
	free(r->status);
	free(r->run_type);
	free(r->task);
	free(r->agent_pool_name);
	free(r->create_time);
	free(r->start_time);
	free(r->finish_time);
	free(r->last_updated_time);
	free(r->run_error_message);
	free(r->provisioning_state);
	free(r->trigger);
	for (size_t i = 0; i < r->noutput_images; i++) {
		free(r->output_images[i].registry);
		free(r->output_images[i].repository);
		free(r->output_images[i].tag);
		free(r->output_images[i].digest);
	}
	free(r->output_images);
	memset(r, 0, sizeof(*r));
}

void arm_run_free(struct arm_run *r)
{
	arm_run_dispose(r);
	free(r);
}

void arm_run_array_free(struct arm_run *items, size_t n)
{
	for (size_t i = 0; items && i < n; i++)
		arm_run_dispose(&items[i]);
	free(items);
}

static int run_out(struct arm_run **out, const cJSON *o)
{
	*out = NULL;
	if (!o)
		return 0;
	struct arm_run *r = xcalloc(1, sizeof(*r));
	int rc = arm_run_from_json(r, o);
	if (rc) {
		arm_run_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

int arm_run_schedule(struct arm_run **out, struct arm_operation **op, struct arm_client *c,
		     const struct arm_registry_ref *ref, const cJSON *request)
{
	int rc;
	cJSON *o = NULL;
	*out = NULL;
	if (op)
		*op = NULL;
	if ((rc = ref_valid(ref)))
		return rc;
	char *path = registry_path(ref, "/scheduleRun");
	rc = arm_write_call(&o, op, c, "POST", path, "registries.scheduleRun", request);
	if (rc == 0)
		rc = run_out(out, o);
	cJSON_Delete(o);
	free(path);
	return rc;
}

int arm_run_schedule_once(struct arm_run **out, struct arm_operation **op, int *unknown, struct arm_client *c,
			  const struct arm_registry_ref *ref, const cJSON *request)
{
	int rc;
	cJSON *o = NULL;
	struct arm_response r;
	*out = NULL;
	*unknown = 0;
	if (op)
		*op = NULL;
	if ((rc = ref_valid(ref)))
		return rc;
	char *path = registry_path(ref, "/scheduleRun");
	char *url = arm_path_url(c, path, arm_client_api_version(c));
	char *text = cJSON_PrintUnformatted(request);
	if (!text)
		abort();
	arm_response_init(&r);
	rc = arm_request_once(&r, unknown, c, "POST", path, "registries.scheduleRun", text);
	if (rc == 0 && r.body.len && !(o = cJSON_Parse(ctl_buf_str(&r.body)))) {
		/* Azure took it (2xx) but the answer is unreadable: the run may exist. */
		*unknown = 1;
		rc = ctl_error_set(CTL_EINVALID, "InvalidResponse", "registries.scheduleRun: response is not JSON");
	}
	if (rc == 0) {
		struct arm_operation *lro = NULL;
		rc = arm_operation_begin(&lro, "POST", url, &r);
		if (rc == 0 && op)
			*op = lro;
		else
			arm_operation_free(lro);
		if (rc == 0)
			rc = run_out(out, o);
		if (rc)
			*unknown = 1;
	}
	cJSON_Delete(o);
	cJSON_free(text);
	arm_response_dispose(&r);
	free(url);
	free(path);
	return rc;
}

int arm_run_get(struct arm_run **out, struct arm_client *c, const struct arm_registry_ref *ref,
		const char *run_id)
{
	int rc;
	cJSON *o = NULL;
	struct arm_response r;
	*out = NULL;
	if ((rc = ref_valid(ref)))
		return rc;
	arm_response_init(&r);
	char *path = child_path(ref, "runs", run_id, NULL);
	rc = arm_call(&o, &r, c, "GET", path, "runs.get", NULL);
	if (rc == 0)
		rc = o ? run_out(out, o) : ctl_error_set(CTL_EINVALID, "InvalidResponse", "runs.get: empty body");
	cJSON_Delete(o);
	arm_response_dispose(&r);
	free(path);
	return rc;
}

int arm_run_list(struct arm_run **items, size_t *n, struct arm_client *c, const struct arm_registry_ref *ref,
		 const char *filter, int top)
{
	int rc;
	cJSON *all = NULL, *it;
	struct ctl_buf q = CTL_BUF_INIT;
	char *path = NULL;

	*items = NULL;
	*n = 0;
	if ((rc = ref_valid(ref)))
		return rc;
	ctl_buf_puts(&q, "/runs");
	if (filter && *filter) {
		char *f = arm_escape(filter);
		ctl_buf_printf(&q, "?$filter=%s", f);
		free(f);
	}
	if (top > 0)
		ctl_buf_printf(&q, "%c$top=%d", q.len > 5 ? '&' : '?', top);
	path = registry_path(ref, ctl_buf_str(&q));
	rc = arm_list_all(&all, c, path, "runs.list", top);
	if (rc)
		goto done;
	struct arm_run *v = xcalloc((size_t)cJSON_GetArraySize(all) + 1, sizeof(*v));
	size_t k = 0;
	cJSON_ArrayForEach(it, all) {
		if (arm_run_from_json(&v[k], it) == 0)
			k++;
	}
	*items = v;
	*n = k;
done:
	cJSON_Delete(all);
	ctl_buf_dispose(&q);
	free(path);
	return rc;
}

int arm_run_cancel(struct arm_operation **op, struct arm_client *c, const struct arm_registry_ref *ref,
		   const char *run_id)
{
	int rc;
	if (op)
		*op = NULL;
	if ((rc = ref_valid(ref)))
		return rc;
	char *path = child_path(ref, "runs", run_id, "/cancel");
	rc = arm_write_call(NULL, op, c, "POST", path, "runs.cancel", NULL);
	free(path);
	return rc;
}

int arm_run_log_sas_url(char **out, struct arm_client *c, const struct arm_registry_ref *ref,
			const char *run_id)
{
	int rc;
	cJSON *o = NULL;
	struct arm_response r;
	*out = NULL;
	if ((rc = ref_valid(ref)))
		return rc;
	arm_response_init(&r);
	char *path = child_path(ref, "runs", run_id, "/listLogSasUrl");
	rc = arm_call(&o, &r, c, "POST", path, "runs.listLogSasUrl", NULL);
	if (rc == 0) {
		*out = arm_jstr(o, "logLink");
		if (!*out)
			rc = ctl_error_set(CTL_EINVALID, "InvalidResponse", "listLogSasUrl: no logLink in the answer");
	}
	if (r.body.ptr)
		explicit_bzero(r.body.ptr, r.body.cap);
	cJSON_Delete(o);
	arm_response_dispose(&r);
	free(path);
	return rc;
}

/* ---- build source upload ---- */

int arm_build_source_upload_url(struct arm_upload_url *out, struct arm_client *c,
				const struct arm_registry_ref *ref)
{
	int rc;
	cJSON *o = NULL;
	struct arm_response r;
	memset(out, 0, sizeof(*out));
	if ((rc = ref_valid(ref)))
		return rc;
	arm_response_init(&r);
	char *path = registry_path(ref, "/listBuildSourceUploadUrl");
	rc = arm_call(&o, &r, c, "POST", path, "registries.listBuildSourceUploadUrl", NULL);
	if (rc == 0) {
		out->upload_url = arm_jstr(o, "uploadUrl");
		out->relative_path = arm_jstr(o, "relativePath");
		if (!out->upload_url || !out->relative_path) {
			arm_upload_url_dispose(out);
			rc = ctl_error_set(CTL_EINVALID, "InvalidResponse",
					   "listBuildSourceUploadUrl: no uploadUrl or relativePath in the answer");
		}
	}
	if (r.body.ptr)
		explicit_bzero(r.body.ptr, r.body.cap);
	cJSON_Delete(o);
	arm_response_dispose(&r);
	free(path);
	return rc;
}
void arm_upload_url_dispose(struct arm_upload_url *u)
{
	if (u->upload_url)
		explicit_bzero(u->upload_url, strlen(u->upload_url));
	free(u->upload_url);
	free(u->relative_path);
	u->upload_url = u->relative_path = NULL;
}

