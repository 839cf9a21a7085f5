/*
 * arm_internal.h: what the ARM core (arm.c) shares with the files of typed
 * calls in this folder (acr.c, aci.c, blob.c) and with the Azure DevOps client
 * (devops/devops.c, which sends through arm_send for its retries), and with
 * nothing else. Kinds and tests use the public headers: arm.h, acr.h,
 * aci.h, blob.h.
 *
 * A resource provider's typed calls are one file on top of these: build
 * the resource's path (arm_resource_path), send it with arm_call (reads),
 * arm_write_call (writes that may be long-running operations),
 * arm_list_all (pageable lists) or arm_delete_call, and turn the JSON into
 * small C structs with arm_jget/arm_jstr. The wire part (arm_send and the
 * curl handle setup) is for calls that are not ARM requests: blob.c's SAS
 * URLs, which carry no bearer token, and Azure DevOps (a PAT in an extra
 * header, or the bearer token of an identity for the DevOps audience).
 */
#ifndef ACRPOOL_ARM_INTERNAL_H
#define ACRPOOL_ARM_INTERNAL_H

#include "azure/arm.h"

#include <curl/curl.h>

#define ARM_USER_AGENT "acrpool/" ACRPOOL_VERSION

/* ---- JSON and paths ---- */

/* Member name of o when o is an object, else NULL. Borrowed. */
const cJSON *arm_jget(const cJSON *o, const char *name);
/* A copy of string member name of o, or NULL (caller frees). */
char *arm_jstr(const cJSON *o, const char *name);
/* s (NULL reads as "") percent-encoded for a URL path or query (caller frees). */
char *arm_escape(const char *s);

/* "/subscriptions/<s>/resourceGroups/<g>/providers/<type>/<name><suffix>":
 * subscription, group and name escaped; type (e.g.
 * "Microsoft.ContainerRegistry/registries") and suffix verbatim, suffix may
 * be NULL. Caller frees. */
char *arm_resource_path(const char *subscription_id, const char *resource_group, const char *type,
			const char *name, const char *suffix);
/* The absolute URL for an ARM path, with api_version appended unless the
 * path already has one. Caller frees. */
char *arm_path_url(const struct arm_client *c, const char *path, const char *api_version);
/* The api-version for registries GET (arm_options.registries_api_version). */
const char *arm_client_registries_api_version(const struct arm_client *c);
/* A tags object {"name": "value", ...} (NULL values read as ""). */
cJSON *arm_tags_json(const struct arm_tag *tags, size_t n);

/* ---- calls (all with the client's api-version unless the path has one) ---- */

/* One request with a JSON body in and out: *out is the parsed answer (NULL
 * for an empty body; out may be NULL). The raw response stays in r (which
 * the caller initialised and disposes) for LRO handling. Errors are
 * arm_request's, or CTL_EINVALID for an answer that is not JSON. */
int arm_call(cJSON **out, struct arm_response *r, struct arm_client *c, const char *method,
	     const char *path, const char *operation, const cJSON *body);
/* A write: arm_call, then its answer read as a possible LRO
 * (arm_operation_begin on the resource's URL). *out is the answer body and
 * *op the operation to poll or NULL; both may be NULL. */
int arm_write_call(cJSON **out, struct arm_operation **op, struct arm_client *c, const char *method,
		   const char *path, const char *operation, const cJSON *body);
/* GET a pageable list, appending every item of every page to *out (a JSON
 * array, caller frees). nextLink must stay on the ARM endpoint; stops after
 * top items when top > 0. */
int arm_list_all(cJSON **out, struct arm_client *c, const char *path, const char *operation, int top);
/* DELETE path. Something already gone is success (204 from ARM, or 404),
 * with *op NULL. */
int arm_delete_call(struct arm_operation **op, struct arm_client *c, const char *path, const char *operation);
/* arm_request for a call that is not idempotent (scheduleRun): no retry
 * after the request may have reached Azure; only a refused connection or a
 * 429 is tried again. When it fails, *unknown says whether Azure may have
 * acted on it (no answer, a timeout, a 5xx). */
int arm_request_once(struct arm_response *out, int *unknown, struct arm_client *c, const char *method,
		     const char *target, const char *operation, const char *body);

/* ---- the wire ---- */

/* One request as arm_send sends it. */
struct arm_wire_req {
	const char *method;
	const char *url;
	const char *operation;
	const void *body;          /* NULL: none */
	size_t len;
	const char *content_type;
	const char *const *extra;  /* NULL-terminated extra headers */
	int auth;                  /* send the bearer token (ARM) */
	int blob;                  /* storage: url is a secret, errors are XML */
	int once;                  /* not idempotent: no retry once Azure may have it */
	int *unknown;              /* once: set when the outcome is unknown */
};

/* Send q with arm_request's retry rules into r (initialised by the caller;
 * its body cap becomes the client's). 0 for 2xx, else the error recorded
 * as arm_request does (arm_blob_error_set for a blob request). */
int arm_send(struct arm_response *r, struct arm_client *c, const struct arm_wire_req *q);

/* A curl easy handle for url with the client's connection share,
 * timeouts, CA file, User-Agent and errbuf (CURL_ERROR_SIZE bytes) set.
 * Aborts when libcurl cannot make one. Caller cleans up. */
CURL *arm_easy_new(struct arm_client *c, const char *url, char *errbuf);
/* Report one HTTP attempt to the client's metrics hook, if any. */
void arm_client_metric(const struct arm_client *c, const char *method, const char *operation, long status,
		       double seconds);
double arm_monotonic_seconds(void);
/* Whether a libcurl error is worth another attempt (DNS, connect, timeout,
 * send/receive, TLS handshake, HTTP/2 stream). */
int arm_transport_retryable(CURLcode cc);
/* Record an Azure Storage error (XML body; only its <Code> is kept, the
 * message can quote the SAS) as the thread's ctl_error; returns its code. */
int arm_blob_error_set(long status, const char *body, const char *request_id, long retry_after_ms);

#endif
