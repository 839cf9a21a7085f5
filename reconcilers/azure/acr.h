/*
 * acr.h: the typed calls of Microsoft.ContainerRegistry on the ARM core
 * (arm.h): registries GET, agentPools (small C structs), tasks (cJSON
 * bodies built by the caller), runs, scheduleRun, a run's log SAS URL and
 * listBuildSourceUploadUrl. The SAS URLs these hand out are read and
 * written with blob.h.
 *
 * Every call takes the registry it acts on as a struct arm_registry_ref
 * and returns 0 or the ctl_error codes of arm_request (arm.h); writes may
 * hand back a struct arm_operation to poll.
 */
#ifndef ACRPOOL_ACR_H
#define ACRPOOL_ACR_H

#include "azure/arm.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* Where a registry lives. Borrowed strings. */
struct arm_registry_ref {
	const char *subscription_id;
	const char *resource_group;
	const char *name;
};

/* ---- registries ---- */

struct arm_registry {
	char *id;
	char *location;
	char *login_server;
	char *sku_name;             /* "Premium" */
	char *sku_tier;             /* "Premium" */
	char *provisioning_state;
};

int arm_registry_get(struct arm_registry **out, struct arm_client *c, const struct arm_registry_ref *ref);
void arm_registry_free(struct arm_registry *r);

/* ---- agent pools ---- */

struct arm_agent_pool {
	char *id;
	char *name;
	char *location;
	char *tier;                 /* S1, S2, S3, I6 */
	char *os;                   /* Linux */
	char *subnet_id;            /* virtualNetworkSubnetResourceId, or NULL */
	char *provisioning_state;   /* NULL reads as Succeeded */
	int count;                  /* -1 when absent */
	struct arm_tag *tags;
	size_t ntags;
};

/* Fill p from an AgentPool resource body. 0 or CTL_EINVALID. */
int arm_agent_pool_from_json(struct arm_agent_pool *p, const cJSON *json);
/* The PUT body for a desired pool (location, tags, count, tier, os, subnet). */
cJSON *arm_agent_pool_to_json(const struct arm_agent_pool *p);
void arm_agent_pool_dispose(struct arm_agent_pool *p);
void arm_agent_pool_free(struct arm_agent_pool *p);
void arm_agent_pool_array_free(struct arm_agent_pool *items, size_t n);

/* PUT the pool; *out is the answer's pool (may say Creating), *op the
 * operation to poll or NULL when done. out and op may be NULL. */
int arm_agent_pool_create(struct arm_agent_pool **out, struct arm_operation **op, struct arm_client *c,
			  const struct arm_registry_ref *ref, const char *name,
			  const struct arm_agent_pool *desired);
int arm_agent_pool_get(struct arm_agent_pool **out, struct arm_client *c,
		       const struct arm_registry_ref *ref, const char *name);
/* PATCH count (when count >= 0) and tags (when tags_set; replaces the whole
 * set, ntags may be 0). */
int arm_agent_pool_update(struct arm_agent_pool **out, struct arm_operation **op, struct arm_client *c,
			  const struct arm_registry_ref *ref, const char *name, int count,
			  const struct arm_tag *tags, size_t ntags, int tags_set);
/* DELETE. 204 and 404 are success with *op NULL (already gone). */
int arm_agent_pool_delete(struct arm_operation **op, struct arm_client *c,
			  const struct arm_registry_ref *ref, const char *name);
/* Every pool of the registry, following nextLink. */
int arm_agent_pool_list(struct arm_agent_pool **items, size_t *n, struct arm_client *c,
			const struct arm_registry_ref *ref);
/* Runs queued on the pool (listQueueStatus). */
int arm_agent_pool_queue_status(int *count, struct arm_client *c, const struct arm_registry_ref *ref,
				const char *name);

/* ---- tasks (bodies are cJSON built by the caller; results owned by the caller) ---- */

int arm_task_create(cJSON **out, struct arm_operation **op, struct arm_client *c,
		    const struct arm_registry_ref *ref, const char *name, const cJSON *body);
int arm_task_update(cJSON **out, struct arm_operation **op, struct arm_client *c,
		    const struct arm_registry_ref *ref, const char *name, const cJSON *patch);
int arm_task_get(cJSON **out, struct arm_client *c, const struct arm_registry_ref *ref, const char *name);
int arm_task_delete(struct arm_operation **op, struct arm_client *c, const struct arm_registry_ref *ref,
		    const char *name);
/* *out is a JSON array of every task, following nextLink. */
int arm_task_list(cJSON **out, struct arm_client *c, const struct arm_registry_ref *ref);

/* ---- runs ---- */

struct arm_run_image {
	char *registry;
	char *repository;
	char *tag;
	char *digest;
};

struct arm_run {
	char *id;
	char *run_id;
	char *status;               /* Queued, Started, Running, Succeeded, Failed, Canceled, Error, Timeout */
	char *run_type;
	char *task;
	char *agent_pool_name;
	char *create_time;          /* ISO 8601 as sent */
	char *start_time;
	char *finish_time;
	char *last_updated_time;
	char *run_error_message;
	char *provisioning_state;
	char *trigger;              /* what started it: the timer's name, "SourceTrigger" or
				     * "BaseImageUpdate"; NULL for a scheduleRun request */
	struct arm_run_image *output_images;
	size_t noutput_images;
};

int arm_run_from_json(struct arm_run *r, const cJSON *json);
void arm_run_dispose(struct arm_run *r);
void arm_run_free(struct arm_run *r);
void arm_run_array_free(struct arm_run *items, size_t n);
/* Succeeded, Failed, Canceled, Error, Timeout. */
int arm_run_status_terminal(const char *status);

/* POST scheduleRun with a RunRequest body. Normally *out is the run and
 * *op NULL; a 2019-style 202 leaves *out NULL and *op to poll (the run is
 * the poll's result: arm_run_from_json on it). */
int arm_run_schedule(struct arm_run **out, struct arm_operation **op, struct arm_client *c,
		     const struct arm_registry_ref *ref, const cJSON *request);
/* scheduleRun sent at most once: no retry after the request may have
 * reached Azure (only a refused connection or a 429, which ARM answers
 * before the resource provider sees the request, are tried again). When it
 * fails, *unknown says whether Azure may still have created the run (no
 * answer, a timeout, a 5xx): the caller must then look for the run instead
 * of asking again. A 4xx other than 429 means Azure refused it: no run. */
int arm_run_schedule_once(struct arm_run **out, struct arm_operation **op, int *unknown, struct arm_client *c,
			  const struct arm_registry_ref *ref, const cJSON *request);
int arm_run_get(struct arm_run **out, struct arm_client *c, const struct arm_registry_ref *ref,
		const char *run_id);
/* Runs matching filter (OData, may be NULL), at most top (0: all), newest
 * first as ARM returns them; follows nextLink. */
int arm_run_list(struct arm_run **items, size_t *n, struct arm_client *c,
		 const struct arm_registry_ref *ref, const char *filter, int top);
int arm_run_cancel(struct arm_operation **op, struct arm_client *c, const struct arm_registry_ref *ref,
		   const char *run_id);
/* The run log's blob SAS URL (read it with arm_blob_tail, blob.h). *out is
 * a secret: never log it (log ctl_log_redact_url of it), never put it in
 * status. */
int arm_run_log_sas_url(char **out, struct arm_client *c, const struct arm_registry_ref *ref,
			const char *run_id);

/* ---- build source upload (the PUT itself: arm_build_source_upload, blob.h) ---- */

struct arm_upload_url {
	char *upload_url;           /* SAS URL: a secret, never log */
	char *relative_path;        /* pass as sourceLocation */
};

int arm_build_source_upload_url(struct arm_upload_url *out, struct arm_client *c,
				const struct arm_registry_ref *ref);
void arm_upload_url_dispose(struct arm_upload_url *u);

#endif
