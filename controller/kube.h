/*
 * kube.h: a small Kubernetes REST client on libcurl.
 *
 * Any resource is addressed by group/version/resource (the plural) plus an
 * optional namespace, name and subresource; there is no generated code.
 * Results are cJSON objects the caller owns. A failed call returns a CTL_E*
 * code and leaves the API server's Status (reason, message, code) in
 * ctl_error_last(): 404 CTL_ENOTFOUND, 409 CTL_ECONFLICT, 410 CTL_EGONE,
 * 429/5xx/network CTL_EUNAVAIL, 401/403 CTL_EAUTH, 400/422 CTL_ETERMINAL.
 * Bodies are read into capped buffers.
 *
 * A client is shared by all threads. Each thread that calls it gets its own
 * curl easy handle (kept per client and per thread, so connections are
 * reused); the handle is released when the thread exits or the client is
 * freed. main must call curl_global_init(CURL_GLOBAL_DEFAULT) before the
 * first client is created, while the process has one thread: libcurl's
 * implicit init is not thread-safe, and this library never calls it.
 */
#ifndef CTL_KUBE_H
#define CTL_KUBE_H

#include "kubeconfig.h"

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stddef.h>

struct ctl_kube_client;

/* A resource type: group ("" for the core group), version, plural. */
struct ctl_gvr {
	const char *group;
	const char *version;
	const char *resource;
};

/* Called after every HTTP exchange, on the calling thread, so the metrics
 * module can count requests: verb is the HTTP method ("WATCH" for a watch
 * stream, whose duration is not a latency), resource the plural, host the
 * API server's host:port, status the HTTP status or 0 when no response
 * arrived, seconds the wall time. */
typedef void (*ctl_kube_metrics_fn)(const char *verb, const char *resource, const char *host,
				    long status, double seconds, void *arg);

/* Consume a chunk of a watch stream. Return 0 to go on, or a CTL_E* code
 * to abort the stream; ctl_kube_watch() then returns that code. */
typedef int (*ctl_kube_data_fn)(const char *data, size_t len, void *arg);

/* Create a client for cfg, which it takes over (also on failure). Returns
 * 0 or CTL_EINVALID (the server URL has no host). */
int ctl_kube_client_new(struct ctl_kube_client **out, struct ctl_kubeconfig *cfg);

/* Free the client and every thread's curl handle. No thread may be using
 * it. NULL is fine. */
void ctl_kube_client_free(struct ctl_kube_client *c);

/* Install the metrics hook (before the client is shared). */
void ctl_kube_client_set_metrics(struct ctl_kube_client *c, ctl_kube_metrics_fn fn, void *arg);

/* Who hears of the API server's answers to this process's own writes:
 * answer (the object as written, taken over) and base_rv (the version the
 * write was made on, or NULL). The manager points it at the informers, so
 * their caches hold what was written at once. */
typedef void (*ctl_kube_write_fn)(const struct ctl_gvr *gvr, cJSON *answer, const char *base_rv, void *arg);

/* Install the write hook (before the client is shared). */
void ctl_kube_client_set_write_observer(struct ctl_kube_client *c, ctl_kube_write_fn fn, void *arg);

/* Hand answer (taken over) to the write hook, or free it when none is set. */
void ctl_kube_observe_write(struct ctl_kube_client *c, const struct ctl_gvr *gvr, cJSON *answer,
			    const char *base_rv);

/* Cap on a response body (default 64 MiB) and timeout for one ordinary
 * request (default 60 s). Set before the client is shared. */
void ctl_kube_client_set_limits(struct ctl_kube_client *c, size_t max_body, long timeout_ms);

/* The context's namespace ("default" when unset). */
const char *ctl_kube_client_namespace(const struct ctl_kube_client *c);

/* The API path of a collection or object: /api/v1/namespaces/ns/pods/name,
 * /apis/g/v/r, ... ns, name and subresource may be NULL; they are
 * percent-encoded. The caller frees the result. */
char *ctl_kube_path(const struct ctl_gvr *gvr, const char *ns, const char *name, const char *subresource);

/* GET one object. */
int ctl_kube_get(cJSON **out, struct ctl_kube_client *c, const struct ctl_gvr *gvr, const char *ns,
		 const char *name, const char *subresource);

struct ctl_kube_list_opts {
	const char *label_selector;
	const char *field_selector;
	long limit;                   /* page size; 0 means no limit */
	const char *continue_token;   /* from the previous page's metadata.continue */
	const char *resource_version; /* NULL: a consistent read of the latest */
	const atomic_int *cancel;     /* optional: set to abort from another thread */
};

/* GET one page of a collection (ns NULL: all namespaces, or a
 * cluster-scoped resource). A continue token that has expired answers
 * CTL_EGONE: start over. */
int ctl_kube_list(cJSON **out, struct ctl_kube_client *c, const struct ctl_gvr *gvr, const char *ns,
		  const struct ctl_kube_list_opts *opts);

/* Every page of a collection, following metadata.continue, as one list
 * whose metadata.resourceVersion is the snapshot's. opts->continue_token is
 * ignored; opts may be NULL. */
int ctl_kube_list_all(cJSON **out, struct ctl_kube_client *c, const struct ctl_gvr *gvr, const char *ns,
		      const struct ctl_kube_list_opts *opts);

/* The writes below take out NULL when the answer is not wanted: it is
 * then not parsed, and a create asks for it in protobuf where the API
 * server has the kind in protobuf (cheaper for the server to encode). */

/* POST body to the collection; *out is the created object. */
int ctl_kube_create(cJSON **out, struct ctl_kube_client *c, const struct ctl_gvr *gvr, const char *ns,
		    const cJSON *body);

/* PUT body over the object (or its subresource). body must carry
 * metadata.resourceVersion for an optimistic update (409 on a race). */
int ctl_kube_update(cJSON **out, struct ctl_kube_client *c, const struct ctl_gvr *gvr, const char *ns,
		    const char *name, const char *subresource, const cJSON *body);

enum ctl_kube_patch_type {
	CTL_PATCH_MERGE,  /* application/merge-patch+json (RFC 7386) */
	CTL_PATCH_JSON,   /* application/json-patch+json (RFC 6902) */
	CTL_PATCH_APPLY,  /* application/apply-patch+yaml, server-side apply */
};

/* PATCH the object or its subresource. field_manager is required for
 * CTL_PATCH_APPLY (which also forces ownership), optional otherwise. */
int ctl_kube_patch(cJSON **out, struct ctl_kube_client *c, const struct ctl_gvr *gvr, const char *ns,
		   const char *name, const char *subresource, enum ctl_kube_patch_type type,
		   const cJSON *patch, const char *field_manager);

/* Merge-patch the status subresource: the way reconcilers write status. */
int ctl_kube_patch_status(cJSON **out, struct ctl_kube_client *c, const struct ctl_gvr *gvr, const char *ns,
			  const char *name, const cJSON *patch);

struct ctl_kube_delete_opts {
	const char *resource_version;   /* precondition, or NULL */
	const char *uid;                /* precondition, or NULL */
	const char *propagation_policy; /* Foreground, Background, Orphan, or NULL */
};

/* DELETE the object. out may be NULL; otherwise it receives the server's
 * answer (the object while finalizers hold it, or a Status). A failed
 * precondition answers CTL_ECONFLICT. */
int ctl_kube_delete(cJSON **out, struct ctl_kube_client *c, const struct ctl_gvr *gvr, const char *ns,
		    const char *name, const struct ctl_kube_delete_opts *opts);

struct ctl_kube_watch_opts {
	const char *resource_version; /* resume point; NULL: start now */
	const char *label_selector;
	const char *field_selector;
	long timeout_seconds;         /* server closes the stream after this; 0: server default */
	long idle_timeout_ms;         /* no byte for this long: the stream is dead; 0: none */
	int allow_bookmarks;
	const atomic_int *cancel;     /* optional: set nonzero to abort from another thread */
};

/* Stream a watch: every chunk of the 2xx body goes to fn as it arrives.
 * Returns 0 when the server ended the stream normally (resume from the last
 * resourceVersion), CTL_EGONE on HTTP 410 (relist), CTL_EUNAVAIL when the
 * connection failed or the stream went silent past idle_timeout_ms, fn's
 * code when fn aborted, CTL_ERR (reason "Canceled") when *cancel was set,
 * or the mapped code of another HTTP error. */
int ctl_kube_watch(struct ctl_kube_client *c, const struct ctl_gvr *gvr, const char *ns,
		   const struct ctl_kube_watch_opts *opts, ctl_kube_data_fn fn, void *arg);

/* Turn a failed response (status and body, which may be a Kubernetes
 * Status or anything else) into the thread's last error, and return the
 * CTL_E* code for status. */
int ctl_kube_status_error(long http_status, const char *body, size_t len);

#endif
