/*
 * devops.h: the Azure DevOps REST client (api-version 7.1) the
 * PipelineAgentPool reconciler uses: agent pools, agents and job requests
 * under {organization}/_apis/distributedtask/pools.
 *
 * A client is one organization and one credential: a personal access
 * token (HTTP Basic, empty user name, the PAT as password) or a struct
 * identity whose audience is Azure DevOps (DEVOPS_RESOURCE; its bearer
 * token is refreshed once on 401). Requests go through the ARM client's
 * wire (azure/arm_internal.h: arm_send), so retries are the ARM client's:
 * 408/429/5xx and connection errors, Retry-After honoured within an attempt
 * count and a sleep budget, and when they give up CTL_EUNAVAIL with the
 * wait in retry_after_ms for a requeue_after.
 *
 * Errors: an Azure DevOps error body ({message, typeKey, errorCode, ...})
 * becomes the thread's ctl_error with reason = typeKey and message =
 * message, the HTTP status and the ActivityId as request id. The codes:
 *   401 CTL_EAUTH      the PAT or token is unknown, expired, revoked, or
 *                      for another audience;
 *   403 CTL_ETERMINAL  the credential is valid but may not do this (a PAT
 *                      without Agent Pools (read, manage)): retrying will
 *                      not help, the reconciler reports Stalled quoting the
 *                      message (http_status 403 tells it apart from 400);
 *   404 CTL_ENOTFOUND  organization, pool, agent or request;
 *   409 CTL_ECONFLICT  an agent of that name exists;
 *   400 CTL_ETERMINAL, 429/5xx CTL_EUNAVAIL.
 * No PAT, token or key material ever reaches a ctl_error, a log or a
 * metrics label (operation names are fixed strings), and a credential is
 * sent only to the organization's own URL: every request is built from it,
 * redirects are not followed.
 *
 * Thread-safe as the ARM client is: no per-call state on the client.
 * Library code: never logs.
 */
#ifndef ACRPOOL_DEVOPS_H
#define ACRPOOL_DEVOPS_H

#include "azure/arm.h"
#include "azure/identity.h"
#include "devops/agentkey.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEVOPS_API_VERSION "7.1"
/* Azure DevOps' Microsoft Entra application id: the identity_options
 * resource of a credential that calls Azure DevOps. */
#define DEVOPS_RESOURCE "499b84ac-1321-427f-aa17-267ca6975798"

struct devops_options {
	/* https://dev.azure.com/ORG or https://ORG.visualstudio.com (a
	 * trailing '/' is fine). */
	const char *organization_url;
	/* Tests: requests for organization ORG go to {endpoint}/ORG/_apis/...
	 * instead (the emulator: http://127.0.0.1:PORT/devops). NULL: none. */
	const char *endpoint;
	/* Exactly one credential: pat (copied, zeroed when the client is
	 * freed) or identity (borrowed, must outlive the client; created with
	 * resource DEVOPS_RESOURCE). */
	const char *pat;
	struct identity *identity;
	/* As arm_options; 0/NULL: the ARM client's defaults. */
	int max_attempts;
	long retry_delay_ms;
	long max_retry_delay_ms;
	long budget_ms;
	long timeout_ms;
	long connect_timeout_ms;
	size_t max_body;
	const char *ca_file;
	arm_metrics_fn metrics;    /* operation: "devops.<noun>.<verb>" */
	void *metrics_arg;
	arm_sleep_fn sleep;
	arm_clock_fn clock;
	void *clock_arg;
};

#define DEVOPS_OPTIONS_INIT {0}

struct devops_client;

/* Create a client. Errors: CTL_EINVALID (ctl_error says which) for an
 * organization URL of another shape, a non-http(s) endpoint, or not
 * exactly one credential. */
int devops_client_new(struct devops_client **out, const struct devops_options *opts);
void devops_client_free(struct devops_client *c);
/* The organization's name ("contoso"). */
const char *devops_client_organization(const struct devops_client *c);
/* Where requests go, without a trailing slash: https://dev.azure.com/ORG,
 * https://ORG.visualstudio.com, or {endpoint}/ORG. */
const char *devops_client_base(const struct devops_client *c);

/* The organization name in an organization URL (pure; caller frees):
 * https://dev.azure.com/ORG[/] or https://ORG.visualstudio.com[/]; a name
 * is letters, digits, '-', '_' and '.'. Returns 0 or CTL_EINVALID. */
int devops_org_parse(char **out, const char *organization_url);

/* Turn an Azure DevOps error answer into the thread's ctl_error (pure;
 * codes as above) and return its code. A body without typeKey/message
 * gives reason "HttpStatus<status>". */
int devops_error_set(long status, const char *body, const char *activity_id, long retry_after_ms);

/* ---- pools ---- */

struct devops_pool {
	int64_t id;
	char *name;
	bool is_hosted;
	int size;                  /* agents in the pool */
};

void devops_pool_dispose(struct devops_pool *p);

/* The pool named name (GET pools?poolName=, exact, case-insensitive).
 * CTL_ENOTFOUND (reason TaskAgentPoolNotFoundException) when the
 * organization has none of that name. out is the caller's; dispose it. */
int devops_pool_get(struct devops_pool *out, struct devops_client *c, const char *name);

/* ---- agents ---- */

struct devops_agent {
	int64_t id;
	char *name;
	bool enabled;
	bool online;               /* status "online" */
	char *version;             /* may be NULL */
	char *client_id;           /* authorization.clientId (NULL if absent) */
	char *authorization_url;   /* authorization.authorizationUrl */
	bool busy;                 /* assignedRequest present (when asked for) */
	int64_t assigned_request_id; /* its requestId, or 0 */
};

struct devops_agent_list {
	struct devops_agent *items;
	size_t n;
};

void devops_agent_dispose(struct devops_agent *a);
void devops_agent_list_dispose(struct devops_agent_list *l);
/* Parse a TaskAgent (pure). 0 or CTL_EINVALID (no id or name). */
int devops_agent_from_json(struct devops_agent *out, const cJSON *o);

/* The agents of a pool with their assigned request (GET
 * agents?includeAssignedRequest=true); name non-NULL filters by name
 * (agentName=). */
int devops_agents_list(struct devops_agent_list *out, struct devops_client *c, int64_t pool_id,
		       const char *name);

/* Register an agent named name with key's public half (POST agents, body
 * {name, enabled, maxParallelism: 1, authorization: {publicKey}}); out
 * (may be NULL) receives the answer: id, clientId and authorizationUrl,
 * what the container needs. Not retried once the request may have reached
 * the service (a second POST would meet the first's agent): an unknown
 * outcome is CTL_EUNAVAIL, and the caller lists the agents next time.
 * CTL_ECONFLICT (TaskAgentExistsException) when the name is taken. */
int devops_agent_add(struct devops_agent *out, struct devops_client *c, int64_t pool_id, const char *name,
		     const struct agentkey *key);

/* Give an existing agent a new key (PUT agents/{id}, body {id, name,
 * enabled, maxParallelism: 1, authorization: {publicKey}}): the old key,
 * its tokens and its session stop working, and a job its process held is
 * abandoned. enabled is sent as given (keep a disabled agent disabled
 * while its container learns the key). out may be NULL. */
int devops_agent_replace(struct devops_agent *out, struct devops_client *c, int64_t pool_id, int64_t agent_id,
			 const char *name, bool enabled, const struct agentkey *key);

/* Enable or disable an agent (PATCH agents/{id}, body {id, enabled}); a
 * disabled agent is assigned no new job. out may be NULL. */
int devops_agent_set_enabled(struct devops_agent *out, struct devops_client *c, int64_t pool_id,
			     int64_t agent_id, bool enabled);

/* Remove an agent (DELETE agents/{id}); one already gone (404) is 0. */
int devops_agent_delete(struct devops_client *c, int64_t pool_id, int64_t agent_id);

/* ---- job requests ---- */

struct devops_jobrequest {
	int64_t request_id;
	char *job_name;            /* may be NULL */
	char *result;              /* NULL while unfinished */
	bool assigned;             /* assignTime or reservedAgent present */
	int64_t agent_id;          /* reservedAgent.id, or 0 */
	char *queue_time, *assign_time, *finish_time; /* ISO 8601 as sent, or NULL */
};

struct devops_jobrequest_list {
	struct devops_jobrequest *items;
	size_t n;
};

void devops_jobrequest_list_dispose(struct devops_jobrequest_list *l);
/* Parse a TaskAgentJobRequest (pure). 0 or CTL_EINVALID (no requestId). */
int devops_jobrequest_from_json(struct devops_jobrequest *out, const cJSON *o);

/* The pool's job requests (GET jobrequests): every unfinished one, and at
 * most completed finished ones (completedRequestCount=; completed < 0
 * leaves the parameter out and the service decides, which can be many). */
int devops_jobrequests_list(struct devops_jobrequest_list *out, struct devops_client *c, int64_t pool_id,
			    int completed);

/* What a list of job requests says, for autoscale and status (pure). */
struct devops_job_counts {
	int queued;    /* no result and not assigned: waiting for an agent */
	int running;   /* no result, assigned to an agent */
	int finished;  /* with a result */
};

/* Count l. With n_agents > 0, running and finished count only requests
 * reserved by one of agent_ids (ours); queued always counts the pool's. */
void devops_job_counts(struct devops_job_counts *out, const struct devops_jobrequest_list *l,
		       const int64_t *agent_ids, size_t n_agents);

/* The pool's queued requests (unfinished and unassigned), read with
 * completedRequestCount=0 so only unfinished requests come back. */
int devops_jobs_queued(int *out, struct devops_client *c, int64_t pool_id);

#endif
