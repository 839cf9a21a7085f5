/*
 * review.h: who may read /metrics, asked of the API server (delegated
 * authentication and authorization, the contract of controller-runtime's
 * metrics filter WithAuthenticationAndAuthorization and of kube-rbac-proxy).
 *
 *   Authorization: Bearer <token>
 *     -> POST authentication.k8s.io/v1 TokenReview {spec.token}
 *        not authenticated: 401
 *     -> POST authorization.k8s.io/v1 SubjectAccessReview for the reviewed
 *        user, uid, groups and extra, nonResourceAttributes {verb, path}
 *        (verb "get" for GET /metrics) not allowed: 403
 *     -> 200: serve
 *   no header, another scheme or an empty token: 401 without a review.
 *   a review that fails (network, the API server refusing us): 500, not
 *   cached.
 *
 * A decision is cached under the SHA-256 of (verb, path, token), never the
 * token itself: allowed for allow_ttl (default 1 minute), refused (401 or
 * 403) for deny_ttl (default 30 seconds, so a role just bound takes effect
 * soon). The cache holds at most cache_size entries (default 256); when
 * full, expired entries go first, then the one that expires soonest, so a
 * flood of made-up tokens costs reviews, never memory. A scrape every 15 s
 * thus costs two API requests a minute, not eight.
 *
 * The pure parts (the header, the review bodies and answers, the cache)
 * are separate functions for the unit tests. Thread safety: a reviewer
 * and its cache may be used from any thread; a review blocks its caller
 * for the API server's round trips, so a server asks
 * ctl_reviewer_check_cached on its event loop and ctl_reviewer_check,
 * on a miss only, on a thread that may wait.
 */
#ifndef CTL_REVIEW_H
#define CTL_REVIEW_H

#include "clock.h"
#include "kube.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

struct ctl_buf;

/* The token of an Authorization header value, as the API server reads it:
 * the scheme "Bearer" in any case, one space, a non-empty token (anything
 * after a further space is ignored). *out is the caller's. CTL_EAUTH when
 * header is NULL, empty, another scheme or has no token. */
int ctl_review_bearer(char **out, const char *header);

/* The TokenReview to POST for token (the API server's default audience). */
cJSON *ctl_review_token_request(const char *token);

/* Read a TokenReview answer. 0 when status.authenticated is true, with
 * *user a copy of status.user (username, uid, groups, extra; the caller's);
 * CTL_EAUTH when not authenticated (status.error, if any, in the last
 * error); CTL_EINVALID when it is no TokenReview status or has no username. */
int ctl_review_token_answer(cJSON **user, const cJSON *review);

/* The SubjectAccessReview to POST: may user (a TokenReview's status.user)
 * do verb on the non-resource path? */
cJSON *ctl_review_access_request(const cJSON *user, const char *verb, const char *path);

/* Read a SubjectAccessReview answer: 0 when status.allowed is true;
 * CTL_EAUTH when not (status.reason in the last error); CTL_EINVALID when
 * it has no status. An evaluationError with allowed true still allows, as
 * the API server's own authorizer reads it. */
int ctl_review_access_answer(const cJSON *review);

/* --- the cache ------------------------------------------------------------ */

struct ctl_review_cache;

int ctl_review_cache_new(struct ctl_review_cache **out, size_t max_entries);
void ctl_review_cache_free(struct ctl_review_cache *c);

/* The HTTP status cached for key (any string; only its SHA-256 is kept) at
 * monotonic time now_ns, or 0 when absent or expired. */
int ctl_review_cache_get(struct ctl_review_cache *c, const char *key, int64_t now_ns);

/* Remember status for key until expires_ns, replacing what was there,
 * evicting as described above when full. */
void ctl_review_cache_put(struct ctl_review_cache *c, const char *key, int status, int64_t expires_ns);

/* Entries held, expired ones included. */
size_t ctl_review_cache_len(struct ctl_review_cache *c);

/* --- the reviewer ------------------------------------------------------------ */

struct ctl_reviewer;

struct ctl_reviewer_opts {
	size_t cache_size;        /* 0: 256 */
	int64_t allow_ttl_ns;     /* 0: 1 minute */
	int64_t deny_ttl_ns;      /* 0: 30 seconds */
	struct ctl_clock *clock;  /* NULL: the real clock */
};

/* A reviewer asking through client (which must outlive it). */
int ctl_reviewer_new(struct ctl_reviewer **out, struct ctl_kube_client *client, const struct ctl_reviewer_opts *opts);
void ctl_reviewer_free(struct ctl_reviewer *r);

/* The decision for a request with this Authorization header (or NULL) for
 * verb (lower case, "get") on path: 200, 401, 403, or 500 when a review
 * failed (the detail in the last error). A short text for the response body
 * is appended to body (never the token). */
int ctl_reviewer_check(struct ctl_reviewer *r, const char *authorization, const char *verb, const char *path,
		       struct ctl_buf *body);

/* The same decision when it needs no review: a malformed header (401) or
 * a cached one (appending the same text); 0 when the API server must be
 * asked (ctl_reviewer_check), with nothing appended. Never blocks on the
 * network. */
int ctl_reviewer_check_cached(struct ctl_reviewer *r, const char *authorization, const char *verb,
			      const char *path, struct ctl_buf *body);

/* Reviews asked of the API server so far (TokenReviews plus
 * SubjectAccessReviews), and decisions answered from the cache. */
void ctl_reviewer_stats(struct ctl_reviewer *r, uint64_t *reviews, uint64_t *cache_hits);

#endif
