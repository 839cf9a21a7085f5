/*
 * agentpool_plan.h: what the AgentPool reconciler should do next, decided
 * without any I/O.
 *
 * The reconciler gathers the declared pool (spec), what Azure reports (the
 * registry, the pool, the other pools of the registry for quota) and what
 * status remembers (whether we own the Azure pool, when a drain began), and
 * hands them to agentpool_plan(). The answer is one action: at most one
 * mutating call per reconcile, then look again. Unit tests drive this with
 * tables of (desired, observed) -> action.
 */
#ifndef AGENTPOOL_PLAN_H
#define AGENTPOOL_PLAN_H

#include <stdbool.h>

struct agentpool_desired {
	const char *azure_name;
	const char *tier;        /* S1 S2 S3 I6 */
	const char *os;          /* Linux */
	const char *subnet_id;   /* NULL when not in a VNet */
	int count;               /* the effective desired count */
	bool manage_tags;        /* spec.tags is set: Azure tags must equal tags_json */
	const char *tags_json;   /* canonical JSON of spec.tags ("{}" when unset) */
	bool deleting;           /* metadata.deletionTimestamp is set */
	bool orphan;             /* deletionPolicy: Orphan */
	bool recreate;           /* updateStrategy: Recreate */
	int drain_timeout_s;
};

struct agentpool_observed {
	bool registry_found;
	bool registry_premium;
	bool pool_found;
	const char *tier;
	const char *os;
	const char *subnet_id;
	int count;
	const char *tags_json;          /* canonical JSON of the Azure tags */
	const char *provisioning_state; /* Creating Updating Deleting Succeeded Failed Canceled */
	bool owned;                     /* status says we created or adopted this pool */
	int queued_runs;                /* listQueueStatus; -1 when unknown */
	long long drain_started;        /* epoch seconds a Recreate drain began; 0 if none */
	long long now;
	/* vCPU of every other pool in the registry, by class, and the quota. */
	int other_standard_vcpu;
	int other_isolated_vcpu;
	int quota_standard_vcpu;
	int quota_isolated_vcpu;
};

enum agentpool_action_kind {
	AGENTPOOL_NOOP,     /* in sync: Ready */
	AGENTPOOL_ADOPT,    /* an existing matching pool becomes ours, no Azure write */
	AGENTPOOL_WAIT,     /* an Azure operation is in flight: look again later */
	AGENTPOOL_CREATE,   /* PUT the pool */
	AGENTPOOL_UPDATE,   /* PATCH count and/or tags */
	AGENTPOOL_DRAIN,    /* Recreate: wait for the queue to empty */
	AGENTPOOL_DELETE,   /* DELETE the pool (object deleted, or Recreate) */
	AGENTPOOL_RELEASE,  /* drop the finalizer: nothing left to do in Azure */
	AGENTPOOL_STALL,    /* needs a human: reason and message say why */
};

struct agentpool_action {
	enum agentpool_action_kind kind;
	const char *reason;   /* CamelCase condition reason */
	char message[512];
	bool scale_up;        /* UPDATE raises the count */
	bool recreating;      /* DELETE/DRAIN as part of a Recreate */
};

/* vCPU per instance of a tier and whether it is isolated; 0 for unknown. */
int agentpool_tier_vcpu(const char *tier, bool *isolated);

void agentpool_plan(const struct agentpool_desired *d, const struct agentpool_observed *o,
		    struct agentpool_action *out);

const char *agentpool_action_name(enum agentpool_action_kind kind);

#endif
