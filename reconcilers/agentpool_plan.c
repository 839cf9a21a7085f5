/*
 * agentpool_plan.c: the AgentPool decision table. See agentpool_plan.h.
 *
 * The order of the checks is the policy:
 *   1. deletion first (an object being deleted never creates anything);
 *   2. the registry must exist and be Premium;
 *   3. an Azure operation in flight is waited on, never stacked on (Azure
 *      answers 409 anyway);
 *   4. a pool we do not own is adopted only when tier, os and subnet match,
 *      and is never modified otherwise;
 *   5. immutable fields that differ mean Recreate (drain, delete, create);
 *   6. quota is checked before any create or scale-up, so a request that
 *      Azure would refuse is never sent;
 *   7. count and tags are patched.
 */
#include "agentpool_plan.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int agentpool_tier_vcpu(const char *tier, bool *isolated)
{
	static const struct { const char *tier; int vcpu; bool isolated; } tiers[] = {
		{"S1", 2, false}, {"S2", 4, false}, {"S3", 8, false}, {"I6", 64, true},
	};
	for (size_t i = 0; tier && i < sizeof(tiers) / sizeof(tiers[0]); i++) {
		if (strcasecmp(tier, tiers[i].tier) == 0) {
			if (isolated)
				*isolated = tiers[i].isolated;
			return tiers[i].vcpu;
		}
	}
	if (isolated)
		*isolated = false;
	return 0;
}

const char *agentpool_action_name(enum agentpool_action_kind kind)
{
	static const char *names[] = {"noop", "adopt", "wait", "create", "update",
				      "drain", "delete", "release", "stall"};
	return names[kind];
}

static void set(struct agentpool_action *a, enum agentpool_action_kind kind, const char *reason,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void set(struct agentpool_action *a, enum agentpool_action_kind kind, const char *reason,
		const char *fmt, ...)
{
	va_list ap;
	a->kind = kind;
	a->reason = reason;
	va_start(ap, fmt);
	vsnprintf(a->message, sizeof(a->message), fmt, ap);
	va_end(ap);
}

/* Azure compares enum values without regard to case and resource IDs are
 * case-insensitive, so a pool created as "s2" or with a differently cased
 * subnet ID is the same pool. */
static bool same_ci(const char *a, const char *b)
{
	if (!a || !*a)
		return !b || !*b;
	return b && strcasecmp(a, b) == 0;
}

static bool in_flight(const char *state)
{
	return state && (strcasecmp(state, "Creating") == 0 || strcasecmp(state, "Updating") == 0 ||
			 strcasecmp(state, "Deleting") == 0);
}

static const char *immutable_mismatch(const struct agentpool_desired *d, const struct agentpool_observed *o)
{
	if (!same_ci(d->tier, o->tier))
		return "tier";
	if (!same_ci(d->os, o->os))
		return "os";
	if (!same_ci(d->subnet_id, o->subnet_id))
		return "subnetId";
	return NULL;
}

/* Would running `count` instances of d->tier fit next to the other pools? */
static bool fits_quota(const struct agentpool_desired *d, const struct agentpool_observed *o,
		       struct agentpool_action *a)
{
	bool isolated;
	int per = agentpool_tier_vcpu(d->tier, &isolated);
	long need = (long)per * d->count;
	long others = isolated ? o->other_isolated_vcpu : o->other_standard_vcpu;
	long quota = isolated ? o->quota_isolated_vcpu : o->quota_standard_vcpu;
	if (others + need <= quota)
		return true;
	set(a, AGENTPOOL_STALL, "QuotaExceeded",
	    "%d x %s needs %ld %s vCPU; other pools in the registry use %ld of the quota of %ld. "
	    "Lower the count, or raise spec.quota on the Registry after Azure support has raised it",
	    d->count, d->tier, need, isolated ? "isolated" : "standard", others, quota);
	return false;
}

static void plan_delete(const struct agentpool_desired *d, const struct agentpool_observed *o,
			struct agentpool_action *a)
{
	if (d->orphan) {
		set(a, AGENTPOOL_RELEASE, "Orphaned", "deletionPolicy is Orphan: the Azure pool is left in place");
		return;
	}
	if (!o->registry_found) {
		set(a, AGENTPOOL_RELEASE, "RegistryGone", "the registry no longer exists in Azure");
		return;
	}
	if (!o->pool_found) {
		set(a, AGENTPOOL_RELEASE, "Deleted", "the Azure pool is gone");
		return;
	}
	if (!o->owned) {
		/* A conflicting pool was never ours: deleting the object must not
		 * delete someone else's pool. */
		set(a, AGENTPOOL_RELEASE, "NotOwned", "the Azure pool was never adopted; it is left in place");
		return;
	}
	if (in_flight(o->provisioning_state)) {
		set(a, AGENTPOOL_WAIT, "Deleting", "waiting for the pool's %s operation before deleting it",
		    o->provisioning_state);
		return;
	}
	set(a, AGENTPOOL_DELETE, "Deleting", "deleting the Azure pool");
}

void agentpool_plan(const struct agentpool_desired *d, const struct agentpool_observed *o,
		    struct agentpool_action *out)
{
	memset(out, 0, sizeof(*out));
	if (d->deleting) {
		plan_delete(d, o, out);
		return;
	}
	if (!o->registry_found) {
		set(out, AGENTPOOL_STALL, "RegistryNotFound", "the registry does not exist in Azure");
		return;
	}
	if (!o->registry_premium) {
		set(out, AGENTPOOL_STALL, "RegistryNotPremium",
		    "agent pools need a Premium registry; upgrade the registry's SKU");
		return;
	}
	if (!o->pool_found) {
		if (!fits_quota(d, o, out))
			return;
		set(out, AGENTPOOL_CREATE, "Creating", "creating %s pool %s with %d instance(s)",
		    d->tier, d->azure_name, d->count);
		return;
	}
	if (in_flight(o->provisioning_state)) {
		set(out, AGENTPOOL_WAIT, o->provisioning_state, "Azure reports the pool %s",
		    o->provisioning_state);
		out->recreating = strcasecmp(o->provisioning_state, "Deleting") == 0 && o->owned;
		return;
	}
	const char *field = immutable_mismatch(d, o);
	if (!o->owned) {
		if (field) {
			set(out, AGENTPOOL_STALL, "ConflictingPool",
			    "an Azure pool named %s already exists with a different %s (%s %s, subnet %s); "
			    "it is left untouched. Choose another spec.azureName or delete that pool",
			    d->azure_name, field, o->tier ? o->tier : "?", o->os ? o->os : "?",
			    o->subnet_id && *o->subnet_id ? o->subnet_id : "none");
			return;
		}
		set(out, AGENTPOOL_ADOPT, "Adopted", "adopted the existing Azure pool %s", d->azure_name);
		return;
	}
	if (field) {
		if (!d->recreate) {
			set(out, AGENTPOOL_STALL, "ImmutableFieldChanged",
			    "%s differs from Azure and cannot change in place; set updateStrategy: Recreate",
			    field);
			return;
		}
		out->recreating = true;
		long long waited = o->drain_started ? o->now - o->drain_started : 0;
		if (o->queued_runs != 0 && waited < d->drain_timeout_s) {
			set(out, AGENTPOOL_DRAIN, "Draining",
			    "%s changed: waiting for %d queued run(s) to drain before recreating the pool "
			    "(%lld of %d s)", field, o->queued_runs, waited, d->drain_timeout_s);
			return;
		}
		set(out, AGENTPOOL_DELETE, "Recreating", "%s changed: deleting the pool to recreate it%s",
		    field, o->queued_runs > 0 ? " (drain timeout reached)" : "");
		return;
	}
	if (o->provisioning_state && strcasecmp(o->provisioning_state, "Failed") == 0) {
		set(out, AGENTPOOL_STALL, "ProvisioningFailed",
		    "Azure reports the pool Failed; it cannot be updated until it is recreated "
		    "(set updateStrategy: Recreate and change the tier, or delete and re-create the object)");
		return;
	}
	bool count_differs = o->count != d->count;
	bool tags_differ = d->manage_tags && strcmp(d->tags_json ? d->tags_json : "{}",
						   o->tags_json ? o->tags_json : "{}") != 0;
	if (!count_differs && !tags_differ) {
		set(out, AGENTPOOL_NOOP, "Succeeded", "pool has %d instance(s) as declared", d->count);
		return;
	}
	if (d->count > o->count && !fits_quota(d, o, out))
		return;
	out->scale_up = d->count > o->count;
	if (count_differs)
		set(out, AGENTPOOL_UPDATE, "Scaling", "scaling from %d to %d instance(s)", o->count, d->count);
	else
		set(out, AGENTPOOL_UPDATE, "Updating", "updating tags");
}
