/*
 * task_plan.h: what the Task reconciler should do next, decided without
 * any I/O.
 *
 * Three pure pieces the reconciler (task.c) strings together:
 *  - task_plan_body(): the ARM Task (PUT body) a Task's spec stands for,
 *    with secret values filled in from Secrets the caller has read;
 *  - task_plan_compare(): which of the fields we own differ between that
 *    body and the task Azure reports (GET hides secrets, so secret values
 *    are compared through a hash kept in status instead, see
 *    task_plan_secret_hash);
 *  - task_plan(): (what is declared, what is observed) -> one action.
 * Unit tests drive all three with tables (tests/unit/reconcilers/task_plan.c).
 */
#ifndef TASK_PLAN_H
#define TASK_PLAN_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* The Azure tag that marks a task as managed by a Task object; its value
 * is "<namespace>/<name>". */
#define TASK_OWNER_TAG "acrpool.dev-owner"

/* One resolved Secret key. Borrowed strings; value is a secret. */
struct task_secret {
	const char *secret;   /* Secret name */
	const char *key;
	const char *value;    /* NULL: the Secret or the key does not exist */
};

struct task_secrets {
	const struct task_secret *items;
	size_t n;
};

/* The value of a resolved Secret key, or NULL. */
const char *task_secrets_lookup(const struct task_secrets *s, const char *secret, const char *key);

/* Every Secret key a Task spec refers to (contextAccessTokenSecretRef,
 * arguments / values with secretKeyRef), in spec order, duplicates
 * included; and the same for a TaskRun's taskRef.overrideValues. *out is
 * an array of borrowed {secret, key} pairs (value NULL) the caller frees. */
void task_plan_secret_refs(struct task_secret **out, size_t *n, const cJSON *spec);
void task_plan_value_secret_refs(struct task_secret **out, size_t *n, const cJSON *values);

/* A hash of the secret values (not the values): hex SHA-256 over the
 * object's uid and every "secret/key=value" in order. Kept in status so a
 * rotated Secret is noticed; "" when there are no secret references. out
 * has room for 65 bytes. */
void task_plan_secret_hash(char out[65], const char *uid, const struct task_secrets *s);

/*
 * The ARM Task body for spec. location is the registry's, pool_name the
 * Azure name of the referenced AgentPool (NULL: shared compute), owner the
 * TASK_OWNER_TAG value. Every secretKeyRef must be resolved in secrets:
 * otherwise returns NULL and names the first missing one in missing
 * ("Secret x key y"). No source trigger is ever set (the docs' example
 * uses --commit-trigger-enabled false). The caller frees the body and
 * must wipe it (it holds secret values): task_plan_body_free.
 */
cJSON *task_plan_body(const cJSON *spec, const char *location, const char *pool_name, const char *owner,
		      const struct task_secrets *secrets, char *missing, size_t missing_len);
void task_plan_body_free(cJSON *body);

/* The run values ({name, value, isSecret}) for a list of {name, value |
 * secretKeyRef} (TaskRun overrideValues, Task arguments/values). NULL and
 * missing set when a secret is unresolved. */
cJSON *task_plan_values(const cJSON *values, const struct task_secrets *secrets, char *missing,
			size_t missing_len);

/* Compare the fields we own (status, platform, agentPoolName, timeout,
 * cpu, the step without its secrets, timers, base image trigger) of the
 * desired body and the Azure task. Enum values and the pool name compare
 * without case, as Azure matches them. Returns true when they differ and
 * lists the differing fields in diff ("agentPoolName, timers"). */
bool task_plan_compare(const cJSON *desired, const cJSON *azure, char *diff, size_t diff_len);

struct task_observed {
	bool deleting;            /* metadata.deletionTimestamp */
	bool owned;               /* status.azureResourceId is set: we created or adopted it */
	bool registry_found;      /* the Registry object and the Azure registry exist */
	const char *missing_secret; /* non-NULL: a referenced Secret key does not exist */
	bool pool_ref;            /* spec.agentPoolRef is set */
	bool pool_found;          /* the AgentPool object exists */
	bool pool_deleting;
	bool pool_ready;          /* its Ready condition is True */
	bool pool_other_registry; /* it belongs to another Registry */
	const char *pool_name;    /* the AgentPool object's name, for messages */
	bool task_found;          /* Azure has the task */
	bool task_tagged_ours;    /* its TASK_OWNER_TAG names this object */
	const char *provisioning_state;
	bool differs;             /* task_plan_compare said so */
	const char *diff;         /* its list of fields */
	bool secrets_changed;     /* the secret hash differs from status */
	bool in_sync_before;      /* Ready and observedGeneration == generation */
};

enum task_action_kind {
	TASK_NOOP,      /* in sync: Ready */
	TASK_ADOPT,     /* an equal task already there becomes ours */
	TASK_WAIT,      /* waiting on something (pool, Azure operation): Reconciling */
	TASK_CREATE,    /* PUT a new task */
	TASK_UPDATE,    /* PUT over the existing task */
	TASK_DELETE,    /* DELETE the Azure task */
	TASK_RELEASE,   /* drop the finalizer */
	TASK_STALL,     /* needs a human */
};

struct task_action {
	enum task_action_kind kind;
	const char *reason;
	bool drift;           /* UPDATE corrects an out-of-band change */
	char message[640];
};

void task_plan(const struct task_observed *o, struct task_action *out);
const char *task_action_name(enum task_action_kind kind);

#endif
