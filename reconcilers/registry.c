/*
 * registry.c: the Registry reconciler.
 *
 * A Registry is read, never written, in Azure: the reconciler checks that
 * the registry exists and is Premium (agent pools need it) and reports its
 * location, login server and the vCPU in use across every agent pool Azure
 * lists for it, managed by us or not, against the quota declared in spec.
 * The pool list it reads is the same snapshot the AgentPool reconciler
 * uses, so a resync costs one registry GET and one pool LIST per registry.
 */
#include "app.h"
#include "azure.h"
#include "conditions.h"
#include "error.h"
#include "log.h"
#include "objects.h"
#include "xalloc.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int spec_int(const struct ctl_obj *obj, const char *path, int def)
{
	const cJSON *v = ctl_obj_field(obj, path);
	return cJSON_IsNumber(v) ? v->valueint : def;
}

/* Write status and, on a transition, record an Event. */
static int finish(struct app *a, const struct ctl_obj *obj, cJSON *status, bool transition, const char *type,
		  const char *reason, const char *message)
{
	bool wrote = false;
	int rc = ctl_status_write(a->kube, &gvr_registries, obj, status, &wrote);
	if (rc == 0 && transition)
		ctl_recorder_event(a->recorder, obj, type, reason, "Reconcile", "%s", message);
	return rc;
}

/* Map an Azure failure to a condition: auth and client errors need a
 * human (Stalled); throttling and outages are transient (Reconciling, and
 * the error makes the work queue back off). */
static int azure_failure(struct app *a, const struct ctl_obj *obj, cJSON *status, int rc, const char *what)
{
	const struct ctl_error *e = ctl_error_last();
	char msg[1400];
	snprintf(msg, sizeof(msg), "%s: %s%s%s", what, e->reason[0] ? e->reason : "", e->reason[0] ? ": " : "",
		 e->message);
	if (rc == CTL_EAUTH)
		azure_distrust_secrets(a->azure); /* the fix may be in the Secret already */
	if (rc == CTL_EAUTH || rc == CTL_ETERMINAL) {
		const char *reason = rc == CTL_EAUTH ? "AuthenticationFailed" : (e->reason[0] == 'C' &&
			strncmp(e->reason, "Credential", 10) == 0 ? e->reason : "AzureRequestFailed");
		bool t = app_set_state(status, APP_STALLED, reason, msg, obj->generation);
		int wrc = finish(a, obj, status, t, "Warning", reason, msg);
		return wrc ? wrc : CTL_ETERMINAL;
	}
	bool unreachable = !strcmp(e->reason, "ConnectionFailed");
	const char *reason = unreachable ? "AzureUnreachable" : "AzureUnavailable";
	bool t = app_set_state(status, unreachable ? APP_STALLED : APP_PROGRESSING, reason, msg, obj->generation);
	finish(a, obj, status, t, "Warning", reason, msg);
	ctl_error_set(CTL_EUNAVAIL, reason, "%s", msg);
	return CTL_EUNAVAIL;
}

int registry_reconcile(void *ctx, const char *key, struct ctl_result *out)
{
	struct app *a = ctx;
	struct ctl_obj *obj = NULL;
	struct azure_conn *conn = NULL;
	struct azure_snapshot *snap = NULL;
	cJSON *status = NULL;
	int rc;

	if (ctl_store_get(&obj, ctl_informer_store(a->registries), key) == CTL_ENOTFOUND)
		return 0;
	status = ctl_status_copy(obj);
	if ((rc = azure_conn_get(&conn, a->azure, obj)) != 0) {
		rc = azure_failure(a, obj, status, rc, "cannot build the Azure credential");
		goto done;
	}
	/* A changed spec (a new generation) reads Azure afresh; otherwise the
	 * shared snapshot serves, refreshed when older than half the resync
	 * period, so a resync reads each registry once, not once per pool
	 * change. */
	const cJSON *og = ctl_obj_field(obj, "status.observedGeneration");
	bool spec_changed = !cJSON_IsNumber(og) || (long long)og->valuedouble != obj->generation;
	if ((rc = azure_snapshot_get(&snap, a->azure, conn, NULL, spec_changed)) != 0) {
		rc = azure_failure(a, obj, status, rc, "reading the registry from Azure failed");
		goto done;
	}
	int std_quota = spec_int(obj, "spec.quota.standardVCPU", 16);
	int iso_quota = spec_int(obj, "spec.quota.isolatedVCPU", 0);
	const char *name = ctl_obj_string(obj, "spec.name");
	char msg[512];
	if (!snap->registry_found) {
		snprintf(msg, sizeof(msg), "registry %s not found in resource group %s of subscription %s",
			 name, conn->ref.resource_group, conn->ref.subscription_id);
		cJSON_DeleteItemFromObjectCaseSensitive(status, "vcpu");
		bool t = app_set_state(status, APP_STALLED, "RegistryNotFound", msg, obj->generation);
		rc = finish(a, obj, status, t, "Warning", "RegistryNotFound", msg);
		goto done;
	}
	app_json_set_str(status, "location", snap->location);
	app_json_set_str(status, "loginServer", snap->login_server);
	app_json_set_str(status, "sku", snap->sku);
	int std_used = snap->standard_vcpu, iso_used = snap->isolated_vcpu;
	cJSON *vcpu = cJSON_CreateObject();
	char ratio[32];
	snprintf(ratio, sizeof(ratio), "%d/%d", std_used, std_quota);
	cJSON_AddStringToObject(vcpu, "standard", ratio);
	cJSON_AddNumberToObject(vcpu, "standardInUse", std_used);
	cJSON_AddNumberToObject(vcpu, "standardQuota", std_quota);
	cJSON_AddNumberToObject(vcpu, "isolatedInUse", iso_used);
	cJSON_AddNumberToObject(vcpu, "isolatedQuota", iso_quota);
	cJSON_AddNumberToObject(vcpu, "pools", (double)snap->npools);
	app_json_set(status, "vcpu", vcpu);

	if (!snap->sku || strcasecmp(snap->sku, "Premium") != 0) {
		snprintf(msg, sizeof(msg), "registry %s is %s; agent pools need the Premium SKU "
			 "(az acr update --name %s --sku Premium)", name, snap->sku ? snap->sku : "of unknown SKU", name);
		bool t = app_set_state(status, APP_STALLED, "RegistryNotPremium", msg, obj->generation);
		rc = finish(a, obj, status, t, "Warning", "RegistryNotPremium", msg);
		goto done;
	}
	snprintf(msg, sizeof(msg), "Premium registry in %s; %d of %d standard and %d of %d isolated vCPU in use "
		 "by %zu pool(s)", snap->location ? snap->location : "?", std_used, std_quota, iso_used, iso_quota,
		 snap->npools);
	bool t = app_set_state(status, APP_READY, "Ready", msg, obj->generation);
	rc = finish(a, obj, status, t, "Normal", "Ready", msg);
done:
	(void)out;
	azure_snapshot_free(snap);
	azure_conn_put(a->azure, conn);
	cJSON_Delete(status);
	ctl_obj_unref(obj);
	return rc;
}
