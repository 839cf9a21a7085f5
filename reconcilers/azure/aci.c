/*
 * aci.c: the typed calls of Microsoft.ContainerInstance (container groups).
 * See aci.h.
 *
 * Like acr.c: each call builds its path (with ARM_API_VERSION_ACI in it, so
 * the client's default, ACR's, is not appended), sends it with the core's
 * plumbing (arm_internal.h) and turns the JSON answer into the caller's
 * struct. One difference: the create sends secure values, so it prints
 * and sends its body itself (arm_request) to wipe every copy it made, and
 * reads the answer as a long-running operation the way arm_write_call
 * does.
 */
#include "azure/aci.h"

#include "azure/arm_internal.h"
#include "error.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONTAINER_GROUPS "Microsoft.ContainerInstance/containerGroups"
#define API_QUERY "?api-version=" ARM_API_VERSION_ACI
#define SECURE_MARK "[secure value]"

static int ref_valid(const struct arm_resource_group_ref *ref)
{
	if (!ref || !ref->subscription_id || !*ref->subscription_id || !ref->resource_group ||
	    !*ref->resource_group)
		return ctl_error_set(CTL_EINVALID, "InvalidResourceGroupRef",
				     "resource group reference needs a subscription and a resource group");
	return 0;
}

static int name_valid(const char *name)
{
	if (!name || !*name)
		return ctl_error_set(CTL_EINVALID, "InvalidContainerGroupName", "container group name is empty");
	return 0;
}

/* ".../containerGroups/<name><action>?api-version=..." (action may be NULL). */
static char *group_path(const struct arm_resource_group_ref *ref, const char *name, const char *action)
{
	char *suffix = xasprintf("%s" API_QUERY, action ? action : "");
	char *p = arm_resource_path(ref->subscription_id, ref->resource_group, CONTAINER_GROUPS, name, suffix);
	free(suffix);
	return p;
}

/* ---- the PUT body ---- */

static void add_string_array(cJSON *o, const char *name, const char *const *v, size_t n)
{
	cJSON *a = cJSON_AddArrayToObject(o, name);
	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(v[i] ? v[i] : ""));
}

cJSON *arm_container_group_to_json(const struct arm_container_group_spec *s)
{
	cJSON *o = cJSON_CreateObject();
	if (s->location)
		cJSON_AddStringToObject(o, "location", s->location);
	if (s->ntags)
		cJSON_AddItemToObject(o, "tags", arm_tags_json(s->tags, s->ntags));
	if (s->identity_id && *s->identity_id) {
		cJSON *id = cJSON_AddObjectToObject(o, "identity");
		cJSON_AddStringToObject(id, "type", "UserAssigned");
		cJSON_AddObjectToObject(cJSON_AddObjectToObject(id, "userAssignedIdentities"), s->identity_id);
	}
	cJSON *props = cJSON_AddObjectToObject(o, "properties");
	cJSON *containers = cJSON_AddArrayToObject(props, "containers");
	cJSON *ct = cJSON_CreateObject();
	cJSON_AddItemToArray(containers, ct);
	cJSON_AddStringToObject(ct, "name", s->container_name ? s->container_name : s->name ? s->name : "");
	cJSON *cp = cJSON_AddObjectToObject(ct, "properties");
	cJSON_AddStringToObject(cp, "image", s->image ? s->image : "");
	if (s->ncommand)
		add_string_array(cp, "command", s->command, s->ncommand);
	if (s->nenv) {
		cJSON *env = cJSON_AddArrayToObject(cp, "environmentVariables");
		for (size_t i = 0; i < s->nenv; i++) {
			cJSON *e = cJSON_CreateObject();
			cJSON_AddStringToObject(e, "name", s->env[i].name ? s->env[i].name : "");
			if (s->env[i].secure_value)
				cJSON_AddStringToObject(e, "secureValue", s->env[i].secure_value);
			else
				cJSON_AddStringToObject(e, "value", s->env[i].value ? s->env[i].value : "");
			cJSON_AddItemToArray(env, e);
		}
	}
	cJSON *req = cJSON_AddObjectToObject(cJSON_AddObjectToObject(cp, "resources"), "requests");
	cJSON_AddNumberToObject(req, "cpu", s->cpu);
	cJSON_AddNumberToObject(req, "memoryInGB", s->memory_in_gb);
	if (s->registry_server && *s->registry_server) {
		cJSON *cred = cJSON_CreateObject();
		cJSON_AddStringToObject(cred, "server", s->registry_server);
		if (s->identity_id)
			cJSON_AddStringToObject(cred, "identity", s->identity_id);
		cJSON_AddItemToArray(cJSON_AddArrayToObject(props, "imageRegistryCredentials"), cred);
	}
	cJSON_AddStringToObject(props, "restartPolicy", s->restart_policy ? s->restart_policy : "Always");
	cJSON_AddStringToObject(props, "osType", s->os_type ? s->os_type : "Linux");
	if (s->nsubnet_ids) {
		cJSON *subnets = cJSON_AddArrayToObject(props, "subnetIds");
		for (size_t i = 0; i < s->nsubnet_ids; i++) {
			cJSON *sn = cJSON_CreateObject();
			cJSON_AddStringToObject(sn, "id", s->subnet_ids[i] ? s->subnet_ids[i] : "");
			cJSON_AddItemToArray(subnets, sn);
		}
	}
	return o;
}

void arm_container_group_json_wipe(cJSON *body)
{
	const cJSON *ct;
	cJSON *e;
	cJSON_ArrayForEach(ct, arm_jget(arm_jget(body, "properties"), "containers")) {
		cJSON_ArrayForEach(e, arm_jget(arm_jget(ct, "properties"), "environmentVariables")) {
			cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "secureValue");
			if (cJSON_IsString(v) && v->valuestring)
				explicit_bzero(v->valuestring, strlen(v->valuestring));
		}
	}
}

static int spec_valid(const struct arm_container_group_spec *s)
{
	if (!s || !s->name || !*s->name || !s->location || !*s->location || !s->image || !*s->image)
		return ctl_error_set(CTL_EINVALID, "InvalidContainerGroupSpec",
				     "a container group needs a name, a location and an image");
	if (!(s->cpu > 0) || !(s->memory_in_gb > 0))
		return ctl_error_set(CTL_EINVALID, "InvalidContainerGroupSpec",
				     "container group %.100s: cpu and memoryInGB must be greater than 0", s->name);
	for (size_t i = 0; i < s->nenv; i++) {
		const struct arm_container_env_var *e = &s->env[i];
		/* Name the variable, never its value. */
		if (!e->name || !*e->name || !e->value == !e->secure_value)
			return ctl_error_set(CTL_EINVALID, "InvalidEnvironmentVariable",
					     "container group %.100s: environment variable %zu (%.100s) needs a name "
					     "and exactly one of value and secureValue",
					     s->name, i, e->name ? e->name : "");
	}
	if (s->registry_server && *s->registry_server && !(s->identity_id && *s->identity_id))
		return ctl_error_set(CTL_EINVALID, "InvalidContainerGroupSpec",
				     "container group %.100s: pulling from %.200s needs a user-assigned identity",
				     s->name, s->registry_server);
	return 0;
}

/* Copy src into dst (n bytes) with every secure value of s replaced by
 * SECURE_MARK. Returns whether anything was replaced. */
static int scrub(char *dst, size_t n, const char *src, const struct arm_container_group_spec *s)
{
	size_t k = 0;
	int hit = 0;
	for (const char *p = src; *p && k + 1 < n;) {
		size_t matched = 0;
		for (size_t i = 0; i < s->nenv && !matched; i++) {
			const char *v = s->env[i].secure_value;
			size_t len = v ? strlen(v) : 0;
			if (len && strncmp(p, v, len) == 0)
				matched = len;
		}
		if (!matched) {
			dst[k++] = *p++;
			continue;
		}
		hit = 1;
		p += matched;
		for (const char *m = SECURE_MARK; *m && k + 1 < n; m++)
			dst[k++] = *m;
	}
	dst[k] = '\0';
	return hit;
}

/* An ARM error may quote the request (a validation message naming the
 * offending value): record it again without any secure value of s. */
static void scrub_error(const struct arm_container_group_spec *s)
{
	const struct ctl_error *e = ctl_error_last();
	char reason[sizeof(e->reason)], message[sizeof(e->message)], request_id[sizeof(e->request_id)];
	int code = e->code;
	long status = e->http_status, retry_after_ms = e->retry_after_ms;
	int hit = scrub(reason, sizeof(reason), e->reason, s);
	hit |= scrub(message, sizeof(message), e->message, s);
	if (!hit)
		return;
	snprintf(request_id, sizeof(request_id), "%s", e->request_id);
	ctl_error_set(code, reason, "%s", message);
	ctl_error_set_http(status, request_id, retry_after_ms);
	explicit_bzero(message, sizeof(message));
	explicit_bzero(reason, sizeof(reason));
}

/* ---- the observed group ---- */

static char **string_array(size_t *n, const cJSON *a)
{
	const cJSON *it;
	char **v;
	*n = 0;
	if (!cJSON_IsArray(a))
		return NULL;
	v = xcalloc((size_t)cJSON_GetArraySize(a) + 1, sizeof(*v));
	cJSON_ArrayForEach(it, a) {
		if (cJSON_IsString(it))
			v[(*n)++] = xstrdup(it->valuestring);
	}
	return v;
}

static void string_array_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* A JSON number as an int, or fallback when absent or out of range (a
 * peer's nonsense must not become undefined behaviour). */
static int json_int(const cJSON *v, int fallback)
{
	if (cJSON_IsNumber(v) && v->valuedouble >= -2147483647.0 && v->valuedouble <= 2147483647.0)
		return (int)v->valuedouble;
	return fallback;
}

static double json_double(const cJSON *v)
{
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void container_from_json(struct arm_container_group *g, const cJSON *ct)
{
	const cJSON *p = arm_jget(ct, "properties"), *it;
	g->container_name = arm_jstr(ct, "name");
	g->image = arm_jstr(p, "image");
	const cJSON *req = arm_jget(arm_jget(p, "resources"), "requests");
	g->cpu = json_double(arm_jget(req, "cpu"));
	g->memory_in_gb = json_double(arm_jget(req, "memoryInGB"));
	g->command = string_array(&g->ncommand, arm_jget(p, "command"));
	const cJSON *env = arm_jget(p, "environmentVariables");
	if (cJSON_IsArray(env)) {
		g->env = xcalloc((size_t)cJSON_GetArraySize(env) + 1, sizeof(*g->env));
		cJSON_ArrayForEach(it, env) {
			char *name = arm_jstr(it, "name");
			if (!name)
				continue;
			/* Only "value" is read: a secureValue, were ARM ever to
			 * send one, stays out of the struct. */
			g->env[g->nenv].name = name;
			g->env[g->nenv].value = arm_jstr(it, "value");
			g->nenv++;
		}
	}
	const cJSON *view = arm_jget(p, "instanceView");
	g->restart_count = cJSON_IsObject(view) ? json_int(arm_jget(view, "restartCount"), 0) : -1;
	const cJSON *cur = arm_jget(view, "currentState");
	g->current.state = arm_jstr(cur, "state");
	g->current.start_time = arm_jstr(cur, "startTime");
	g->current.finish_time = arm_jstr(cur, "finishTime");
	g->current.detail_status = arm_jstr(cur, "detailStatus");
	const cJSON *code = arm_jget(cur, "exitCode");
	g->current.has_exit_code = cJSON_IsNumber(code);
	g->current.exit_code = json_int(code, 0);
}

int arm_container_group_from_json(struct arm_container_group *g, const cJSON *o)
{
	const cJSON *it;
	memset(g, 0, sizeof(*g));
	g->restart_count = -1;
	if (!cJSON_IsObject(o))
		return ctl_error_set(CTL_EINVALID, "InvalidResponse", "container group is not a JSON object");
	const cJSON *props = arm_jget(o, "properties");
	g->id = arm_jstr(o, "id");
	g->name = arm_jstr(o, "name");
	g->location = arm_jstr(o, "location");
	g->provisioning_state = arm_jstr(props, "provisioningState");
	g->os_type = arm_jstr(props, "osType");
	g->restart_policy = arm_jstr(props, "restartPolicy");
	g->state = arm_jstr(arm_jget(props, "instanceView"), "state");
	const cJSON *tags = arm_jget(o, "tags");
	if (cJSON_IsObject(tags)) {
		g->tags = xcalloc((size_t)cJSON_GetArraySize(tags) + 1, sizeof(*g->tags));
		cJSON_ArrayForEach(it, tags) {
			if (!cJSON_IsString(it) || !it->string)
				continue;
			g->tags[g->ntags].name = xstrdup(it->string);
			g->tags[g->ntags].value = xstrdup(it->valuestring);
			g->ntags++;
		}
	}
	const cJSON *containers = arm_jget(props, "containers");
	if (cJSON_IsArray(containers)) {
		g->ncontainers = (size_t)cJSON_GetArraySize(containers);
		if (g->ncontainers)
			container_from_json(g, cJSON_GetArrayItem(containers, 0));
	}
	const cJSON *subnets = arm_jget(props, "subnetIds");
	if (cJSON_IsArray(subnets)) {
		g->subnet_ids = xcalloc((size_t)cJSON_GetArraySize(subnets) + 1, sizeof(*g->subnet_ids));
		cJSON_ArrayForEach(it, subnets) {
			char *id = arm_jstr(it, "id");
			if (id)
				g->subnet_ids[g->nsubnet_ids++] = id;
		}
	}
	const cJSON *identity = arm_jget(o, "identity");
	g->identity_type = arm_jstr(identity, "type");
	const cJSON *uai = arm_jget(identity, "userAssignedIdentities");
	if (cJSON_IsObject(uai)) {
		g->identity_ids = xcalloc((size_t)cJSON_GetArraySize(uai) + 1, sizeof(*g->identity_ids));
		cJSON_ArrayForEach(it, uai) {
			if (it->string)
				g->identity_ids[g->nidentity_ids++] = xstrdup(it->string);
		}
	}
	const cJSON *creds = arm_jget(props, "imageRegistryCredentials");
	if (cJSON_IsArray(creds) && cJSON_GetArraySize(creds) > 0) {
		const cJSON *cred = cJSON_GetArrayItem(creds, 0);
		g->registry_server = arm_jstr(cred, "server");
		g->registry_identity = arm_jstr(cred, "identity");
	}
	return 0;
}

void arm_container_group_dispose(struct arm_container_group *g)
{
	if (!g)
		return;
	free(g->id);
	free(g->name);
	free(g->location);
	free(g->provisioning_state);
	for (size_t i = 0; i < g->ntags; i++) {
		free(g->tags[i].name);
		free(g->tags[i].value);
	}
	free(g->tags);
	free(g->os_type);
	free(g->restart_policy);
	free(g->state);
	free(g->container_name);
	free(g->image);
	for (size_t i = 0; i < g->nenv; i++) {
		free(g->env[i].name);
		free(g->env[i].value);
	}
	free(g->env);
	string_array_free(g->command, g->ncommand);
	free(g->current.state);
	free(g->current.start_time);
	free(g->current.finish_time);
	free(g->current.detail_status);
	string_array_free(g->subnet_ids, g->nsubnet_ids);
	free(g->identity_type);
	string_array_free(g->identity_ids, g->nidentity_ids);
	free(g->registry_server);
	free(g->registry_identity);
	memset(g, 0, sizeof(*g));
}

void arm_container_group_free(struct arm_container_group *g)
{
	arm_container_group_dispose(g);
	free(g);
}

void arm_container_group_array_free(struct arm_container_group *items, size_t n)
{
	for (size_t i = 0; items && i < n; i++)
		arm_container_group_dispose(&items[i]);
	free(items);
}

const char *arm_container_group_env(const struct arm_container_group *g, const char *name)
{
	for (size_t i = 0; g && name && i < g->nenv; i++)
		if (strcmp(g->env[i].name, name) == 0)
			return g->env[i].value;
	return NULL;
}

/* Turn an answer body into a heap group for *out (when out is wanted). */
static int group_out(struct arm_container_group **out, const cJSON *o)
{
	if (!out)
		return 0;
	*out = NULL;
	if (!o)
		return 0;
	struct arm_container_group *g = xcalloc(1, sizeof(*g));
	int rc = arm_container_group_from_json(g, o);
	if (rc) {
		arm_container_group_free(g);
		return rc;
	}
	*out = g;
	return 0;
}

/* ---- calls ---- */

int arm_container_group_create(struct arm_container_group **out, struct arm_operation **op,
			       struct arm_client *c, const struct arm_resource_group_ref *ref,
			       const struct arm_container_group_spec *spec)
{
	int rc;
	cJSON *body = NULL, *o = NULL;
	char *path = NULL, *url = NULL, *text = NULL;
	struct arm_operation *lro = NULL;
	struct arm_response r;

	if (out)
		*out = NULL;
	if (op)
		*op = NULL;
	arm_response_init(&r);
	if ((rc = ref_valid(ref)) || (rc = spec_valid(spec)))
		goto done;
	path = group_path(ref, spec->name, NULL);
	url = arm_path_url(c, path, ARM_API_VERSION_ACI);
	body = arm_container_group_to_json(spec);
	if (!(text = cJSON_PrintUnformatted(body)))
		abort();
	/* A PUT is idempotent: arm_request's retries are safe. */
	rc = arm_request(&r, c, "PUT", path, "containerGroups.createOrUpdate", text);
	if (rc) {
		scrub_error(spec);
		goto done;
	}
	if (r.body.len && !(o = cJSON_Parse(ctl_buf_str(&r.body)))) {
		rc = ctl_error_set(CTL_EINVALID, "InvalidResponse", "containerGroups.createOrUpdate: response is not JSON");
		goto done;
	}
	if ((rc = arm_operation_begin(&lro, "PUT", url, &r)))
		goto done;
	if ((rc = group_out(out, o)))
		goto done;
	if (op) {
		*op = lro;
		lro = NULL;
	}
done:
	if (text) {
		explicit_bzero(text, strlen(text));
		cJSON_free(text);
	}
	if (r.body.ptr) /* an error body may quote the request */
		explicit_bzero(r.body.ptr, r.body.cap);
	arm_container_group_json_wipe(body);
	cJSON_Delete(body);
	cJSON_Delete(o);
	arm_operation_free(lro);
	arm_response_dispose(&r);
	free(path);
	free(url);
	return rc;
}

int arm_container_group_get(struct arm_container_group **out, struct arm_client *c,
			    const struct arm_resource_group_ref *ref, const char *name)
{
	int rc;
	cJSON *o = NULL;
	char *path = NULL;
	struct arm_response r;

	*out = NULL;
	if ((rc = ref_valid(ref)) || (rc = name_valid(name)))
		return rc;
	arm_response_init(&r);
	path = group_path(ref, name, NULL);
	rc = arm_call(&o, &r, c, "GET", path, "containerGroups.get", NULL);
	if (rc == 0)
		rc = o ? group_out(out, o)
		       : ctl_error_set(CTL_EINVALID, "InvalidResponse", "containerGroups.get: empty body");
	cJSON_Delete(o);
	arm_response_dispose(&r);
	free(path);
	return rc;
}

int arm_container_group_delete(struct arm_operation **op, struct arm_client *c,
			       const struct arm_resource_group_ref *ref, const char *name)
{
	int rc;
	if (op)
		*op = NULL;
	if ((rc = ref_valid(ref)) || (rc = name_valid(name)))
		return rc;
	char *path = group_path(ref, name, NULL);
	rc = arm_delete_call(op, c, path, "containerGroups.delete");
	free(path);
	return rc;
}

int arm_container_group_list(struct arm_container_group **items, size_t *n, struct arm_client *c,
			     const struct arm_resource_group_ref *ref)
{
	int rc;
	cJSON *all = NULL, *it;

	*items = NULL;
	*n = 0;
	if ((rc = ref_valid(ref)))
		return rc;
	char *s = arm_escape(ref->subscription_id), *g = arm_escape(ref->resource_group);
	char *path = xasprintf("/subscriptions/%s/resourceGroups/%s/providers/" CONTAINER_GROUPS API_QUERY, s, g);
	free(s);
	free(g);
	/* nextLink carries its own api-version (and $skipToken): it is
	 * followed verbatim. */
	rc = arm_list_all(&all, c, path, "containerGroups.listByResourceGroup", 0);
	if (rc)
		goto done;
	struct arm_container_group *v = xcalloc((size_t)cJSON_GetArraySize(all) + 1, sizeof(*v));
	size_t k = 0;
	cJSON_ArrayForEach(it, all) {
		if (arm_container_group_from_json(&v[k], it) == 0)
			k++;
	}
	*items = v;
	*n = k;
done:
	cJSON_Delete(all);
	free(path);
	return rc;
}

int arm_container_group_restart(struct arm_operation **op, struct arm_client *c,
				const struct arm_resource_group_ref *ref, const char *name)
{
	int rc;
	if (op)
		*op = NULL;
	if ((rc = ref_valid(ref)) || (rc = name_valid(name)))
		return rc;
	char *path = group_path(ref, name, "/restart");
	rc = arm_write_call(NULL, op, c, "POST", path, "containerGroups.restart", NULL);
	free(path);
	return rc;
}

int arm_container_group_update_tags(struct arm_container_group **out, struct arm_client *c,
				    const struct arm_resource_group_ref *ref, const char *name,
				    const struct arm_tag *tags, size_t ntags)
{
	int rc;
	cJSON *o = NULL, *body = NULL;
	char *path = NULL;
	struct arm_response r;

	if (out)
		*out = NULL;
	if ((rc = ref_valid(ref)) || (rc = name_valid(name)))
		return rc;
	arm_response_init(&r);
	/* The swagger's PATCH body is Resource: of it only tags apply. */
	body = cJSON_CreateObject();
	cJSON_AddItemToObject(body, "tags", arm_tags_json(tags, ntags));
	path = group_path(ref, name, NULL);
	rc = arm_call(out ? &o : NULL, &r, c, "PATCH", path, "containerGroups.update", body);
	if (rc == 0)
		rc = group_out(out, o);
	cJSON_Delete(o);
	cJSON_Delete(body);
	arm_response_dispose(&r);
	free(path);
	return rc;
}
