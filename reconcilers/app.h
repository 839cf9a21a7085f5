/*
 * app.h: the operator's shared context, handed to every reconciler.
 *
 * One kube client, one Events recorder, the Azure connections and
 * snapshots, the informers (whose stores the reconcilers read) and the
 * controllers (whose queues the informers' handlers fill).
 */
#ifndef APP_H
#define APP_H

#include "azure.h"
#include "controller.h"
#include "informer.h"
#include "kube.h"
#include "manager.h"
#include "metrics.h"
#include "options.h"
#include "recorder.h"

#define ACRPOOL_GROUP "acrpool.dev"
#define ACRPOOL_VERSION_API "v1alpha1"
#define ACRPOOL_FINALIZER "acrpool.dev/finalizer"

extern const struct ctl_gvr gvr_registries;
extern const struct ctl_gvr gvr_agentpools;
extern const struct ctl_gvr gvr_tasks;
extern const struct ctl_gvr gvr_taskruns;
extern const struct ctl_gvr gvr_pipelineagentpools;
extern const struct ctl_gvr gvr_secrets;
extern const struct ctl_gvr gvr_configmaps;

struct app {
	const struct options *opts;
	struct ctl_kube_client *kube;
	struct ctl_recorder *recorder;
	struct azure *azure;
	struct ctl_metrics *metrics;
	struct ctl_informer *registries;
	struct ctl_informer *agentpools;
	struct ctl_informer *tasks;
	struct ctl_informer *taskruns;
	struct ctl_informer *pipelineagentpools;
	struct ctl_controller *registry_ctl;
	struct ctl_controller *agentpool_ctl;
	struct ctl_controller *task_ctl;
	struct ctl_controller *taskrun_ctl;
	struct ctl_controller *pipelineagentpool_ctl;
	/* Indexes of reference fields in the informers' stores (main.c). */
	int ix_pool_registry, ix_task_registry, ix_task_pool, ix_run_registry, ix_run_pool, ix_run_task;
	int ix_pap_registry;
	/* The Azure DevOps client of each PipelineAgentPool, kept across
	 * passes (pipelineagentpool.c). */
	struct pipelineagentpool_clients *pap_clients;
	/* Per-pool gauges (label namespace, name). */
	struct ctl_metric *pool_count, *pool_desired, *pool_queued;
	/* Per-PipelineAgentPool gauges (label namespace, name). */
	struct ctl_metric *pap_instances, *pap_desired, *pap_online, *pap_busy, *pap_queued;
};

/* The current time as RFC 3339 into buf. */
const char *app_now(char buf[32]);

/* Set the kstatus trio on status for one outcome:
 *   APP_READY:       Ready True, no Reconciling, no Stalled
 *   APP_PROGRESSING: Reconciling True, Ready False (same reason), no Stalled
 *   APP_STALLED:     Stalled True, Ready False (same reason), no Reconciling
 * Returns true when the Ready condition's reason or status changed (a
 * transition worth an Event). */
enum app_state { APP_READY, APP_PROGRESSING, APP_STALLED };
bool app_set_state(cJSON *status, enum app_state state, const char *reason, const char *message,
		   long long generation);

/* Where one reconcile pass writes: the object, its kind, and the status
 * copy the pass edits. */
struct app_write {
	struct app *a;
	const struct ctl_gvr *gvr;
	const struct ctl_obj *obj;
	cJSON *status;
	int64_t *requeue_ns;     /* where app_azure_failure leaves Azure's Retry-After */
	bool busy_on_conflict;   /* see app_azure_failure */
};

/* Record an Event about the object. */
void app_event(const struct app_write *w, const char *type, const char *reason, const char *action,
	       const char *msg);

/* Set the kstatus conditions for state, write status (only if it changed)
 * and record an Event when the Ready condition moved, or always with
 * force_event. Returns the status write's result. */
int app_commit(const struct app_write *w, enum app_state state, const char *reason, const char *msg,
	       bool force_event, const char *action);

/* An Azure call failed (what says which): turn ctl_error_last() into a
 * condition. Refusals (4xx, credentials) are Stalled quoting Azure's code,
 * message and request id, and return CTL_ETERMINAL; no answer at all is
 * Stalled AzureUnreachable and returns CTL_EUNAVAIL (the queue keeps
 * retrying with backoff); throttling and outages are Reconciling
 * AzureUnavailable and set *w->requeue_ns to Azure's Retry-After when it
 * gave one. With w->busy_on_conflict a 409 (an operation in flight) is
 * Reconciling AzureBusy, looked at again in 10 s; without, it counts as an
 * outage. */
int app_azure_failure(const struct app_write *w, int rc, const char *what);

/* Set or replace a member of a JSON object. */
void app_json_set(cJSON *obj, const char *name, cJSON *value);
void app_json_set_str(cJSON *obj, const char *name, const char *value);
void app_json_set_num(cJSON *obj, const char *name, double value);

/* The value of key in Secret ns/name, read from the API server (there is
 * no Secret informer: the operator keeps no copy of every Secret). *out is
 * NULL when the Secret or the key does not exist; otherwise a new string
 * the caller wipes and frees (app_secret_free). Errors are the API's. */
int app_secret_read(char **out, struct app *a, const char *ns, const char *name, const char *key);
void app_secret_free(char *value);

/* The SHA-256 of data as 64 lower-case hex digits and a NUL. */
void app_sha256_hex(char out[65], const void *data, size_t len);

/* Decode base64 (standard alphabet, padding optional) into a new buffer
 * of *len bytes (NUL-terminated too). NULL when malformed. */
unsigned char *app_base64_decode(const char *in, size_t *len);

/* The Azure name of an AgentPool object: status.azureName, else
 * spec.azureName, else metadata.name. */
const char *app_pool_azure_name(const struct ctl_obj *pool);

/* Reconcilers. */
int registry_reconcile(void *ctx, const char *key, struct ctl_result *out);
int agentpool_reconcile(void *ctx, const char *key, struct ctl_result *out);
int app_list_keys_registries(void *ctx, ctl_key_fn each, void *ud);
int app_list_keys_agentpools(void *ctx, ctl_key_fn each, void *ud);
int task_reconcile(void *ctx, const char *key, struct ctl_result *out);
int taskrun_reconcile(void *ctx, const char *key, struct ctl_result *out);
int app_list_keys_tasks(void *ctx, ctl_key_fn each, void *ud);
int app_list_keys_taskruns(void *ctx, ctl_key_fn each, void *ud);
int pipelineagentpool_reconcile(void *ctx, const char *key, struct ctl_result *out);
/* The finalizer before anything else, so nothing is made in Azure for an
 * object the operator could lose track of. Adds it when missing and goes
 * on with the store's copy, which holds the API server's answer at once
 * (the write hook); when it does not (another change won the race), the
 * watch brings the key back. *obj is the caller's reference, replaced.
 * Returns 1 to go on with *obj, 0 to end the pass, or the write's error. */
int app_finalizer_gate(struct ctl_obj **obj, struct app *a, const struct ctl_gvr *gvr,
		       struct ctl_informer *inf, const char *key);

int app_list_keys_pipelineagentpools(void *ctx, ctl_key_fn each, void *ud);
struct pipelineagentpool_clients *pipelineagentpool_clients_new(void);
void pipelineagentpool_clients_free(struct pipelineagentpool_clients *c);

#endif
