/*
 * arm.h: the Azure Resource Manager client's core, shared by every
 * resource provider's typed calls.
 *
 * Three layers, each usable on its own:
 *  - arm_request(): one logical ARM call on libcurl. It adds the bearer
 *    token from a struct identity, api-version, a fresh
 *    x-ms-client-request-id per attempt and the acrpool User-Agent; keeps
 *    x-ms-request-id / x-ms-correlation-request-id; retries 408/429/5xx and
 *    connection errors honouring Retry-After, within a bounded number of
 *    attempts and a sleep budget; refreshes the token once on 401; and turns
 *    an ARM error body into the thread's ctl_error (reason = error.code,
 *    message = error.message, request id, HTTP status, retry_after_ms).
 *  - long-running operations as data: a write returns a struct
 *    arm_operation (poll URL, kind, retry-after) that a reconciler may store
 *    in status; arm_operation_poll() looks once and never blocks.
 *  - typed calls, one header per resource provider on top of this one:
 *    acr.h (Microsoft.ContainerRegistry: registries, agent pools, tasks,
 *    runs, scheduleRun, build source upload URL), aci.h
 *    (Microsoft.ContainerInstance: container groups) and blob.h (Azure
 *    Storage through SAS URLs: run log tails, build source uploads). They share
 *    the core's plumbing through arm_internal.h, which nothing outside
 *    azure/ includes but the Azure DevOps client (devops/devops.c sends
 *    through arm_send for its retries).
 *
 * A client is shared by all workers: it keeps no per-call state (every
 * result lands in the caller's struct), and its libcurl connection cache
 * is shared between threads under locks. Library code: never logs, and
 * never puts a token, secret or SAS URL in a ctl_error message.
 */
#ifndef ACRPOOL_ARM_H
#define ACRPOOL_ARM_H

#include "azure/identity.h"
#include "buf.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* The api-version for agentPools, tasks, runs, scheduleRun and
 * listBuildSourceUploadUrl (docs/arm-api-versions.md says why). The client
 * reads the response shapes of both 2019-06-01-preview and
 * 2025-03-01-preview, so switching is this one line (or
 * arm_options.api_version at run time). It is the client's default: a
 * path without an api-version gets this one, so another resource
 * provider's typed calls put their own in the path. */
#define ARM_API_VERSION "2019-06-01-preview"
/* Registries GET lives in another swagger (containerregistry.json); the
 * Tasks preview versions do not cover it. */
#define ARM_API_VERSION_REGISTRIES "2023-07-01"

/* Wait before the next poll when an LRO response has no Retry-After
 * (azcore's default; the RPC says 60 s). */
#define ARM_LRO_DEFAULT_POLL_MS 30000L

/* Called after every HTTP attempt (status 0: no response). */
typedef void (*arm_metrics_fn)(const char *method, const char *operation, long status,
			       double seconds, void *arg);
/* Sleep between attempts; injectable so tests do not really sleep. */
typedef void (*arm_sleep_fn)(long ms, void *arg);
/* Wall clock in milliseconds since the epoch (HTTP-date Retry-After). */
typedef int64_t (*arm_clock_fn)(void *arg);

struct arm_options {
	const char *endpoint;      /* NULL: the identity's cloud, e.g. https://management.azure.com/ */
	const char *api_version;   /* NULL: ARM_API_VERSION */
	const char *registries_api_version; /* NULL: ARM_API_VERSION_REGISTRIES */
	int max_attempts;          /* per call, incl. the first; 0: 4 */
	long retry_delay_ms;       /* backoff base; 0: 800 */
	long max_retry_delay_ms;   /* cap on one wait; a longer Retry-After gives up at once; 0: 60000 */
	long budget_ms;            /* total wait per call before giving up; 0: 60000 */
	long timeout_ms;           /* per attempt; 0: 100000 */
	long connect_timeout_ms;   /* 0: 10000 */
	size_t max_body;           /* response cap; 0: 16 MiB (ARM caps RP answers at 8 MB) */
	const char *ca_file;       /* extra CA bundle (emulator); NULL: system */
	arm_metrics_fn metrics;
	void *metrics_arg;
	arm_sleep_fn sleep;        /* NULL: nanosleep */
	arm_clock_fn clock;        /* NULL: CLOCK_REALTIME */
	void *clock_arg;           /* passed to sleep and clock */
};

#define ARM_OPTIONS_INIT {0}

struct arm_client;

/* Create a client that authenticates with id (borrowed: it must outlive the
 * client). Errors: CTL_EINVALID for a malformed endpoint. */
int arm_client_new(struct arm_client **out, struct identity *id, const struct arm_options *opts);
void arm_client_free(struct arm_client *c);
/* The endpoint in use, without a trailing slash. */
const char *arm_client_endpoint(const struct arm_client *c);
const char *arm_client_api_version(const struct arm_client *c);

/* ---- one call ---- */

struct arm_response {
	long status;               /* last HTTP status; 0 if none arrived */
	struct ctl_buf body;       /* capped; NUL-terminated */
	char request_id[80];       /* x-ms-request-id (Azure DevOps: ActivityId) */
	char correlation_id[80];   /* x-ms-correlation-request-id */
	char client_request_id[40];/* the x-ms-client-request-id we sent last */
	char *azure_async_operation; /* Azure-AsyncOperation header, or NULL */
	char *location;            /* Location header, or NULL */
	long retry_after_ms;       /* retry-after-ms / x-ms-retry-after-ms / Retry-After; -1 if absent */
	int attempts;              /* HTTP attempts made */
	long slept_ms;             /* total backoff waited */
};

void arm_response_init(struct arm_response *r);
void arm_response_dispose(struct arm_response *r);

/*
 * Send method to target and fill out (initialised by the caller). target is
 * either a path starting with '/' (the endpoint is prefixed and api-version
 * appended unless already present) or an absolute URL on the endpoint's
 * host, used verbatim (LRO and nextLink URLs); any other host is refused so
 * the bearer token never leaves ARM. operation names the call for metrics
 * ("agentPools.get"). body (JSON) may be NULL.
 *
 * Returns 0 for 2xx. Otherwise the ctl_error code for the status
 * (CTL_ENOTFOUND, CTL_ECONFLICT, CTL_EAUTH, CTL_ETERMINAL, CTL_EUNAVAIL
 * after the retries, ...), with reason/message from the ARM error body and
 * request id, status and retry_after_ms set; out still holds the last
 * response. When retries give up, retry_after_ms is the server's
 * Retry-After (or the next backoff) so the caller can requeue_after it.
 */
int arm_request(struct arm_response *out, struct arm_client *c, const char *method,
		const char *target, const char *operation, const char *body);

/* ---- pure helpers (exposed for tests) ---- */

/* Retry-After value (delta-seconds or HTTP-date) in milliseconds from
 * now_ms; a date in the past is 0; garbage or absurd values (> 1 day) -1. */
long arm_retry_after_parse(const char *value, int64_t now_ms);

/* Record the ARM error in body (status, request id and retry-after as
 * given) as the thread's ctl_error and return its code. Accepts
 * {"error":{"code","message"}}, {"odata.error":{...}} and a bare
 * {"code","message"}; anything else gives reason "HttpStatus<status>". */
int arm_error_set(long status, const char *body, const char *request_id, long retry_after_ms);

/* Whether a status is retried by arm_request (408, 429, 500, 502, 503, 504). */
int arm_status_retryable(long status);

/* Backoff before retry n (1-based) without Retry-After:
 * (2^n - 1) x base x jitter[0.8, 1.3), capped. jitter is in [0, 1). */
long arm_backoff_ms(int n, long base_ms, long cap_ms, double jitter);

/* A fresh random (v4) UUID, lowercase, 36 characters plus NUL. */
void arm_uuid(char out[37]);

/* ---- long-running operations ---- */

enum arm_lro_kind {
	ARM_LRO_ASYNC_OPERATION, /* poll the Azure-AsyncOperation URL: status body */
	ARM_LRO_LOCATION,        /* poll the Location URL: 202 until the final answer */
	ARM_LRO_BODY,            /* re-GET the resource until provisioningState is terminal */
};

enum arm_lro_state {
	ARM_LRO_IN_PROGRESS,
	ARM_LRO_SUCCEEDED,
	ARM_LRO_FAILED,
	ARM_LRO_CANCELED,
};

/* An operation in flight. Every field is a plain string or number, so a
 * reconciler can store it in status and rebuild it with arm_operation_new
 * after a restart. */
struct arm_operation {
	enum arm_lro_kind kind;
	char *method;          /* of the original request: PUT, PATCH, DELETE, POST */
	char *poll_url;        /* absolute; NULL for ARM_LRO_BODY */
	char *resource_url;    /* absolute URL of the resource (final GET, body polling) */
	long retry_after_ms;   /* wait this long before the next poll */
	char *error_code;      /* set when the operation failed or was canceled */
	char *error_message;
};

int arm_operation_new(struct arm_operation **out, enum arm_lro_kind kind, const char *method,
		      const char *poll_url, const char *resource_url);
void arm_operation_free(struct arm_operation *op);
const char *arm_lro_kind_name(enum arm_lro_kind kind);        /* "AzureAsyncOperation", ... */
int arm_lro_kind_parse(enum arm_lro_kind *out, const char *name); /* 0 or CTL_EINVALID */
const char *arm_lro_state_name(enum arm_lro_state state);

/*
 * Interpret a write's 2xx answer (pure). *out is NULL when the operation
 * finished synchronously (200/201 with a terminal or absent
 * provisioningState, 204), else an operation to poll: Azure-AsyncOperation
 * wins, then Location on a 202, then body polling of resource_url (a PUT or
 * PATCH whose body says Creating/Updating, or a 202 without headers).
 * Returns 0, or CTL_EINVALID for a 202 to a POST with nothing to poll.
 */
int arm_operation_begin(struct arm_operation **out, const char *method, const char *resource_url,
			const struct arm_response *resp);

/* The state an async-operation status word stands for: Succeeded, Failed
 * and Canceled (any case) are terminal, anything else (InProgress,
 * Creating, Accepted, Running, ...) is in progress. */
enum arm_lro_state arm_lro_status_state(const char *status);

/* Parse an Azure-AsyncOperation status body (pure). For Failed/Canceled,
 * *code and *message (caller frees) come from its error object. Returns 0
 * or CTL_EINVALID (not JSON, no status). */
int arm_operation_status_parse(enum arm_lro_state *out, char **code, char **message, const char *body);

/*
 * Look once at an operation (one GET, no waiting). *state says where it
 * stands; op->retry_after_ms is updated for the next look and, for
 * Location polling, op->poll_url follows a new Location. When result is
 * non-NULL and the operation succeeded with a body (the resource for
 * PUT/PATCH, re-read with a final GET; the final Location answer or the
 * operation's properties for POST), *result receives it (caller frees).
 * FAILED/CANCELED fill op->error_code/error_message and the ctl_error, and
 * still return 0. A DELETE whose poll or resource answers 404 succeeded.
 * Non-zero only when the status could not be read (the operation itself
 * may be fine): CTL_EUNAVAIL, CTL_EAUTH, CTL_ENOTFOUND, ...
 */
int arm_operation_poll(enum arm_lro_state *state, cJSON **result, struct arm_client *c,
		       struct arm_operation *op);

/* ---- what every resource provider's typed calls share ---- */

/* A resource tag (ARM tags are name/value strings on any resource). */
struct arm_tag {
	char *name;
	char *value;
};

#endif
