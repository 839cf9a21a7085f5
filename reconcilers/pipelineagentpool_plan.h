/*
 * pipelineagentpool_plan.h: what the PipelineAgentPool reconciler should do
 * next with its instances, decided without any I/O.
 *
 * An instance is one Azure Container Instances container group named
 * <prefix>-<index> running one Azure Pipelines agent of the same name, which
 * takes one job per container start (`run.sh --once`, restartPolicy Always).
 * The reconciler reads every container group of the pool with one LIST and
 * every agent of the Azure DevOps pool with one LIST, joins them by index,
 * and hands them to pipelineagentpool_plan() with the desired count. The
 * answer is a list of steps for this pass and the outcome to report.
 *
 * The policy, in the order it is applied:
 *   1. Deleting: every container group is deleted and every agent removed
 *      (the object is going; running jobs end with it), then the finalizer
 *      is released. deletionPolicy Orphan releases at once.
 *   2. A job is never cut short by a scale-down or a roll: an instance
 *      leaves service by first disabling its agent (Azure DevOps then
 *      assigns it no new job), and its container group is deleted or
 *      replaced only once the agent is disabled and has no job assigned.
 *      Scale-down picks idle instances first, then the highest index.
 *   3. Scale-up fills the lowest free indices, all in one pass (each create
 *      is its own Azure operation); a disabled agent that is wanted again is
 *      enabled instead of replaced.
 *   4. A template change (image, resources, environment, ...) rolls
 *      instances one at a time: at most one in-service instance is out of
 *      service for a roll at any moment, and a replaced instance is back in
 *      service only once its agent is online again (an agent takes seconds
 *      to start after its container). Failed instances are not in
 *      service, so all of them are replaced at once.
 *   5. Agents with no container group (left by a failed delete or by hand)
 *      are removed, so no offline agents pile up in the Azure DevOps pool;
 *      a group whose agent is gone (deleted by hand) is replaced, which
 *      registers the agent again with a new key.
 *   6. Scaled to zero by autoscale or a schedule (placeholder), one agent
 *      stays registered, enabled and offline, with no container group:
 *      Azure DevOps fails a job at once when its pool has no agent at all,
 *      but queues it while an offline one exists, and the queue is what
 *      brings instances back. The lowest-index agent is kept, or one is
 *      registered when none is left.
 */
#ifndef PIPELINEAGENTPOOL_PLAN_H
#define PIPELINEAGENTPOOL_PLAN_H

#include <stdbool.h>
#include <stddef.h>

struct pipelineagentpool_desired {
	int count;           /* the effective desired count (spec, schedule or autoscale) */
	bool deleting;       /* metadata.deletionTimestamp is set */
	bool orphan;         /* deletionPolicy: Orphan */
	bool placeholder;    /* at count 0, keep one offline agent (policy 6) */
};

/* One index's container group and agent, as observed. Either may be absent. */
struct pipelineagentpool_instance {
	int index;                      /* from the name <prefix>-<index> */
	bool group_found;
	const char *provisioning_state; /* the group's ARM provisioningState */
	bool current;                   /* the group matches the desired template */
	bool agent_found;
	bool agent_enabled;
	bool agent_busy;                /* a job request is assigned to the agent */
	bool agent_online;              /* Azure DevOps reports the agent online */
};

enum pipelineagentpool_step_kind {
	PIPELINEAGENTPOOL_CREATE,       /* PUT a container group at index */
	PIPELINEAGENTPOOL_REPLACE,      /* PUT the desired template over an outdated or failed group */
	PIPELINEAGENTPOOL_DISABLE,      /* disable the agent: no new job before it leaves service */
	PIPELINEAGENTPOOL_ENABLE,       /* put a disabled agent that is wanted back in service */
	PIPELINEAGENTPOOL_DELETE,       /* DELETE the container group */
	PIPELINEAGENTPOOL_REMOVE_AGENT, /* delete the agent from the Azure DevOps pool */
	PIPELINEAGENTPOOL_REGISTER,     /* register the placeholder agent, with no container group */
};

struct pipelineagentpool_step {
	enum pipelineagentpool_step_kind kind;
	int index;
};

enum pipelineagentpool_outcome {
	PIPELINEAGENTPOOL_READY,    /* count instances, all provisioned and current: nothing to do */
	PIPELINEAGENTPOOL_WORKING,  /* steps to take this pass (Reconciling) */
	PIPELINEAGENTPOOL_WAITING,  /* nothing to do now: Azure operations or jobs to wait for */
	PIPELINEAGENTPOOL_STALLED,  /* an instance failed with the current template */
	PIPELINEAGENTPOOL_RELEASE,  /* deleting and nothing is left: drop the finalizer */
};

struct pipelineagentpool_plan {
	enum pipelineagentpool_outcome outcome;
	const char *reason;              /* CamelCase condition reason */
	char message[256];
	struct pipelineagentpool_step *steps; /* nsteps, owned by the plan */
	size_t nsteps;
	int failed_index;                /* STALLED: the failed instance; -1 otherwise */
	int in_service;                  /* provisioned, current and enabled instances kept */
};

/* Decide this pass. instances are in any order, one per index; indices
 * are >= 0. Fills *out (free its steps with pipelineagentpool_plan_dispose). */
void pipelineagentpool_plan(const struct pipelineagentpool_desired *d,
			    const struct pipelineagentpool_instance *instances, size_t n,
			    struct pipelineagentpool_plan *out);
void pipelineagentpool_plan_dispose(struct pipelineagentpool_plan *p);

const char *pipelineagentpool_step_name(enum pipelineagentpool_step_kind kind);
const char *pipelineagentpool_outcome_name(enum pipelineagentpool_outcome outcome);

#endif
