/*
 * objects.c: finalizer and status writes. See objects.h.
 */
#include "objects.h"

#include "conditions.h"
#include "error.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

const cJSON *ctl_obj_field(const struct ctl_obj *obj, const char *dotted)
{
	const cJSON *node = obj ? obj->json : NULL;
	const char *p = dotted;
	while (node && *p) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		char name[128];
		if (len >= sizeof(name))
			return NULL;
		memcpy(name, p, len);
		name[len] = '\0';
		node = cJSON_IsObject(node) ? cJSON_GetObjectItemCaseSensitive(node, name) : NULL;
		p += len + (dot ? 1 : 0);
	}
	return node;
}

const char *ctl_obj_string(const struct ctl_obj *obj, const char *dotted)
{
	const cJSON *v = ctl_obj_field(obj, dotted);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool ctl_finalizer_has(const struct ctl_obj *obj, const char *finalizer)
{
	const cJSON *f;
	cJSON_ArrayForEach(f, ctl_obj_field(obj, "metadata.finalizers")) {
		if (cJSON_IsString(f) && strcmp(f->valuestring, finalizer) == 0)
			return true;
	}
	return false;
}

/* Merge-patch metadata.finalizers to list, with resourceVersion as the
 * optimistic lock (the API server refuses the patch with 409 when the
 * object changed since we read it). */
static int patch_finalizers(struct ctl_kube_client *c, const struct ctl_gvr *gvr, const struct ctl_obj *obj,
			    cJSON *list)
{
	cJSON *patch = cJSON_CreateObject();
	cJSON *meta = cJSON_AddObjectToObject(patch, "metadata");
	cJSON_AddStringToObject(meta, "resourceVersion", obj->resource_version);
	cJSON_AddItemToObject(meta, "finalizers", list);
	cJSON *res = NULL;
	int rc = ctl_kube_patch(&res, c, gvr, obj->namespace[0] ? obj->namespace : NULL, obj->name, NULL,
				CTL_PATCH_MERGE, patch, NULL);
	cJSON_Delete(patch);
	if (rc == 0)
		ctl_kube_observe_write(c, gvr, res, obj->resource_version);
	else
		cJSON_Delete(res);
	return rc;
}

int ctl_finalizer_add(struct ctl_kube_client *c, const struct ctl_gvr *gvr, const struct ctl_obj *obj,
		      const char *finalizer)
{
	if (ctl_finalizer_has(obj, finalizer))
		return 0;
	const cJSON *cur = ctl_obj_field(obj, "metadata.finalizers");
	cJSON *list = cJSON_IsArray(cur) ? cJSON_Duplicate(cur, true) : cJSON_CreateArray();
	cJSON_AddItemToArray(list, cJSON_CreateString(finalizer));
	return patch_finalizers(c, gvr, obj, list);
}

int ctl_finalizer_remove(struct ctl_kube_client *c, const struct ctl_gvr *gvr, const struct ctl_obj *obj,
			 const char *finalizer)
{
	if (!ctl_finalizer_has(obj, finalizer))
		return 0;
	cJSON *list = cJSON_CreateArray();
	const cJSON *f;
	cJSON_ArrayForEach(f, ctl_obj_field(obj, "metadata.finalizers")) {
		if (!cJSON_IsString(f) || strcmp(f->valuestring, finalizer) != 0)
			cJSON_AddItemToArray(list, cJSON_Duplicate(f, true));
	}
	return patch_finalizers(c, gvr, obj, list);
}

cJSON *ctl_status_copy(const struct ctl_obj *obj)
{
	const cJSON *st = ctl_obj_field(obj, "status");
	return cJSON_IsObject(st) ? cJSON_Duplicate(st, true) : cJSON_CreateObject();
}

int ctl_status_write(struct ctl_kube_client *c, const struct ctl_gvr *gvr, const struct ctl_obj *obj,
		     const cJSON *status, bool *wrote)
{
	if (wrote)
		*wrote = false;
	const cJSON *cur = ctl_obj_field(obj, "status");
	if (!ctl_status_changed(cJSON_IsObject(cur) ? cur : NULL, status))
		return 0;
	/* JSON patch "add" on /status replaces the whole member, so fields we
	 * dropped disappear (a merge patch would need explicit nulls). */
	cJSON *patch = cJSON_CreateArray();
	cJSON *op = cJSON_CreateObject();
	cJSON_AddStringToObject(op, "op", "add");
	cJSON_AddStringToObject(op, "path", "/status");
	cJSON_AddItemToObject(op, "value", cJSON_Duplicate(status, true));
	cJSON_AddItemToArray(patch, op);
	cJSON *res = NULL;
	int rc = ctl_kube_patch(&res, c, gvr, obj->namespace[0] ? obj->namespace : NULL, obj->name, "status",
				CTL_PATCH_JSON, patch, NULL);
	cJSON_Delete(patch);
	if (rc == 0)
		ctl_kube_observe_write(c, gvr, res, obj->resource_version);
	else
		cJSON_Delete(res);
	if (rc == 0 && wrote)
		*wrote = true;
	return rc;
}
