/*
 * aci.h: the typed calls of Microsoft.ContainerInstance on the ARM core
 * (arm.h): container groups, at the published stable api-version
 * ARM_API_VERSION_ACI. What a PipelineAgentPool needs: create or update a
 * group of one container (PUT, long-running), read one (GET) or all of a
 * resource group (LIST, following nextLink), delete (long-running),
 * restart, and replace its tags (PATCH).
 *
 * Two shapes, kept apart on purpose: struct arm_container_group_spec is
 * what the operator asks for (borrowed strings, may carry secure values);
 * struct arm_container_group is what ARM answered (owned strings, never a
 * secure value: ARM does not return them, and the parser would not keep
 * one if it did).
 *
 * Secrets: a secure environment variable goes to ARM only in the PUT body,
 * as secureValue. These calls never put one in a ctl_error (an ARM error
 * that quotes one is recorded with it replaced), and wipe their copies of
 * the request body once it is sent. Every call returns 0 or the ctl_error
 * codes of arm_request (arm.h).
 */
#ifndef ACRPOOL_ACI_H
#define ACRPOOL_ACI_H

#include "azure/arm.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* The stable api-version of containerGroups (the published swagger,
 * tests/emulator/spec/2025-09-01-containerInstance.json). Every path these
 * calls build carries it, so the client's default (ACR's) is never used. */
#define ARM_API_VERSION_ACI "2025-09-01"

/* Where container groups live. Borrowed strings. */
struct arm_resource_group_ref {
	const char *subscription_id;
	const char *resource_group;
};

/* ---- what the operator asks for ---- */

/* One environment variable: exactly one of value and secure_value. */
struct arm_container_env_var {
	const char *name;
	const char *value;          /* plain: ARM returns it on GET */
	const char *secure_value;   /* secureValue: a secret, never returned, never logged */
};

/* A container group of one container, as the PUT body builds it. Every
 * pointer is borrowed from the caller; nothing here is freed. */
struct arm_container_group_spec {
	const char *name;           /* the group's (and the URL's) name */
	const char *location;
	const struct arm_tag *tags;
	size_t ntags;
	const char *container_name; /* NULL: the group's name */
	const char *image;
	double cpu;                 /* cores, e.g. 1 or 0.5 */
	double memory_in_gb;
	const struct arm_container_env_var *env;
	size_t nenv;
	const char *const *command; /* exec form; ncommand 0: the image's entrypoint */
	size_t ncommand;
	const char *restart_policy; /* NULL: Always */
	const char *os_type;        /* NULL: Linux */
	const char *const *subnet_ids; /* VNet injection: subnet resource ids */
	size_t nsubnet_ids;
	const char *identity_id;    /* a user-assigned identity's resource id, or NULL */
	const char *registry_server;/* imageRegistryCredentials: pull from this server
				     * (myregistry.azurecr.io) with identity_id; NULL: none */
};

/* The PUT body for spec (caller deletes; it holds the secure values:
 * arm_container_group_json_wipe it first). */
cJSON *arm_container_group_to_json(const struct arm_container_group_spec *spec);
/* Overwrite every secureValue string in a body built by
 * arm_container_group_to_json, before it is deleted. */
void arm_container_group_json_wipe(cJSON *body);

/* ---- what ARM answered ---- */

/* A variable as ARM returns it. */
struct arm_container_env_seen {
	char *name;
	char *value;                /* NULL: a secure variable (ARM gives its name only) */
};

/* A container's currentState; every string NULL when absent. */
struct arm_container_state {
	char *state;                /* Waiting, Running, Terminated */
	char *start_time;           /* ISO 8601 as sent */
	char *finish_time;
	char *detail_status;        /* Completed, Error, CrashLoopBackOff, ... */
	int exit_code;
	int has_exit_code;
};

/* A container group from a GET, LIST or PUT answer. Of its containers
 * only the first is read (the operator's groups have one; ncontainers
 * tells a group changed by hand). */
struct arm_container_group {
	char *id;
	char *name;
	char *location;
	char *provisioning_state;   /* Pending, Creating, Updating, Succeeded, Failed, Deleting, ... */
	struct arm_tag *tags;
	size_t ntags;
	char *os_type;
	char *restart_policy;
	char *state;                /* instanceView.state: Pending, Running, Stopped, Succeeded,
				     * Failed; NULL in a LIST item (lists carry no instanceView) */
	size_t ncontainers;
	char *container_name;
	char *image;
	double cpu;                 /* 0 when absent */
	double memory_in_gb;
	struct arm_container_env_seen *env;
	size_t nenv;
	char **command;
	size_t ncommand;
	int restart_count;          /* -1 when there is no instanceView (a LIST item) */
	struct arm_container_state current;
	char **subnet_ids;
	size_t nsubnet_ids;
	char *identity_type;        /* UserAssigned, SystemAssigned, ... or NULL */
	char **identity_ids;        /* userAssignedIdentities' resource ids */
	size_t nidentity_ids;
	char *registry_server;      /* the first imageRegistryCredentials entry */
	char *registry_identity;
};

/* Fill g from a container group body. 0 or CTL_EINVALID (not an object).
 * A secureValue in the body (ARM never sends one) is not kept. */
int arm_container_group_from_json(struct arm_container_group *g, const cJSON *json);
void arm_container_group_dispose(struct arm_container_group *g);
void arm_container_group_free(struct arm_container_group *g);
void arm_container_group_array_free(struct arm_container_group *items, size_t n);
/* The plain value of variable name: NULL when absent or secure. */
const char *arm_container_group_env(const struct arm_container_group *g, const char *name);

/* ---- calls ---- */

/* PUT the group (create, or update: ARM restarts the containers when the
 * definition changed, not for tags alone). *out is the answer's group
 * (Pending/Creating/Updating at first), *op the operation to poll (201 or
 * 200 with Azure-AsyncOperation) or NULL when done. out and op may be
 * NULL. CTL_EINVALID before any request for a spec without name, location,
 * image, cpu or memory, with a variable that has both or neither value,
 * or a registry server without an identity. ARM's refusals keep its code:
 * ContainerGroupQuotaReached, InaccessibleImage, ... (CTL_ETERMINAL). */
int arm_container_group_create(struct arm_container_group **out, struct arm_operation **op,
			       struct arm_client *c, const struct arm_resource_group_ref *ref,
			       const struct arm_container_group_spec *spec);
/* GET, with the containers' instanceView (restartCount, currentState). */
int arm_container_group_get(struct arm_container_group **out, struct arm_client *c,
			    const struct arm_resource_group_ref *ref, const char *name);
/* DELETE. 204 and 404 are success with *op NULL (already gone). */
int arm_container_group_delete(struct arm_operation **op, struct arm_client *c,
			       const struct arm_resource_group_ref *ref, const char *name);
/* Every group of the resource group, following nextLink: one LIST reads
 * them all. Items have no instanceView (restart_count -1, state NULL). */
int arm_container_group_list(struct arm_container_group **items, size_t *n, struct arm_client *c,
			     const struct arm_resource_group_ref *ref);
/* POST restart: every container is killed and started again in place.
 * *op is an operation to poll when ARM answers 202, else NULL (204). */
int arm_container_group_restart(struct arm_operation **op, struct arm_client *c,
				const struct arm_resource_group_ref *ref, const char *name);
/* PATCH the tags (replaces the whole set; ntags may be 0). Nothing
 * restarts. *out (may be NULL) is the updated group. */
int arm_container_group_update_tags(struct arm_container_group **out, struct arm_client *c,
				    const struct arm_resource_group_ref *ref, const char *name,
				    const struct arm_tag *tags, size_t ntags);

#endif
