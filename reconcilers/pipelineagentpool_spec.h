/*
 * pipelineagentpool_spec.h: the pure pieces of the PipelineAgentPool
 * reconciler that read its spec: the instance index in a name, the
 * template hash that tells an instance to roll, and the container's
 * environment (docs/pipeline-agents.md). No I/O: the reconciler reads the
 * Secrets and hands their resourceVersions and values in.
 */
#ifndef PIPELINEAGENTPOOL_SPEC_H
#define PIPELINEAGENTPOOL_SPEC_H

#include "azure/aci.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* Tags the operator puts on its container groups. */
#define PIPELINEAGENTPOOL_TAG_OWNER "acrpool.dev/owner"
#define PIPELINEAGENTPOOL_TAG_TEMPLATE "acrpool.dev/template"

/* The index in name when it is "<prefix>-<digits>" (no sign, no leading
 * zero but for "0", at most 6 digits); -1 otherwise. */
int pipelineagentpool_index(const char *prefix, const char *name);

/* The template hash of spec.aci (16 lower-case hex digits into out[17]):
 * SHA-256 over a canonical text of what rolls an instance: location,
 * image, cpu, memoryInGB, subnetIds, imagePull, every environment entry
 * (name and value; for a secretKeyRef the Secret's name, key and
 * secret_rvs[i], the resourceVersion, never its value) and the user tags
 * sorted by name. secret_rvs has one entry per spec.aci.environment item
 * (NULL for a plain value, or when the array is NULL). */
void pipelineagentpool_template_hash(char out[17], const cJSON *aci, const char *const *secret_rvs);

/* What the operator gives each container of pre-registered mode. */
struct pipelineagentpool_agent_env {
	const char *url;         /* AZP_URL: spec.organizationUrl */
	const char *pool;        /* AZP_POOL */
	int64_t pool_id;         /* AZP_POOL_ID */
	const char *agent_name;  /* AZP_AGENT_NAME */
	int64_t agent_id;        /* AZP_AGENT_ID */
	const char *client_id;   /* AZP_AGENT_CLIENT_ID */
	const char *auth_url;    /* AZP_AGENT_AUTH_URL */
	const char *key;         /* AZP_AGENT_KEY: secure */
};

/* The environment: the AZP_ variables, then spec.aci.environment (env,
 * may be NULL) with a secretKeyRef item's value from secret_values[i] as
 * a secureValue (an item whose value is NULL is left out). *out is a new
 * array of *n entries (free() it) whose strings are borrowed from e, env
 * and secret_values, except the two numbers, kept in numbuf (2 x 24
 * bytes, the caller's), and AZP_ENV_PASSTHROUGH (the spec's names, which
 * start.sh passes on to the agent and its jobs), in *passthrough (NULL when
 * the spec has none; the caller frees it). */
void pipelineagentpool_env(struct arm_container_env_var **out, size_t *n, const struct pipelineagentpool_agent_env *e,
			   const cJSON *env, const char *const *secret_values, char numbuf[2][24],
			   char **passthrough);

#endif
