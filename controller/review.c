/*
 * review.c: TokenReview and SubjectAccessReview for the metrics endpoint,
 * and the cache of their decisions. See review.h.
 */
#include "review.h"

#include "buf.h"
#include "error.h"
#include "xalloc.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEY_LEN 32 /* SHA-256 */

static const struct ctl_gvr gvr_tokenreviews = {"authentication.k8s.io", "v1", "tokenreviews"};
static const struct ctl_gvr gvr_subjectaccessreviews = {"authorization.k8s.io", "v1", "subjectaccessreviews"};

/* --- pure parts ---------------------------------------------------------------- */

int ctl_review_bearer(char **out, const char *header)
{
	*out = NULL;
	if (!header)
		return ctl_error_set(CTL_EAUTH, "Unauthorized", "no Authorization header");
	while (isspace((unsigned char)*header))
		header++;
	/* The API server's reading (bearertoken.go): split on single spaces,
	 * the scheme compared without case, the second field the token. */
	const char *sp = strchr(header, ' ');
	if (!sp || (size_t)(sp - header) != 6 || strncasecmp(header, "bearer", 6) != 0)
		return ctl_error_set(CTL_EAUTH, "Unauthorized", "the Authorization header is not a Bearer token");
	const char *tok = sp + 1;
	size_t n = strcspn(tok, " ");
	while (n > 0 && isspace((unsigned char)tok[n - 1]))
		n--;
	if (n == 0)
		return ctl_error_set(CTL_EAUTH, "Unauthorized", "empty Bearer token");
	*out = xstrndup(tok, n);
	return 0;
}

cJSON *ctl_review_token_request(const char *token)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "apiVersion", "authentication.k8s.io/v1");
	cJSON_AddStringToObject(r, "kind", "TokenReview");
	cJSON *spec = cJSON_AddObjectToObject(r, "spec");
	cJSON_AddStringToObject(spec, "token", token);
	if (!spec)
		abort(); /* cJSON fails only when out of memory */
	return r;
}

int ctl_review_token_answer(cJSON **user, const cJSON *review)
{
	*user = NULL;
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(review, "status");
	if (!cJSON_IsObject(status))
		return ctl_error_set(CTL_EINVALID, "InvalidResponse", "the TokenReview has no status");
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(status, "authenticated"))) {
		const char *why = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(status, "error"));
		return ctl_error_set(CTL_EAUTH, "Unauthorized", "token not authenticated%s%s", why ? ": " : "",
				     why ? why : "");
	}
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(status, "user");
	const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(u, "username"));
	if (!name || !*name)
		return ctl_error_set(CTL_EINVALID, "InvalidResponse", "the TokenReview authenticated no username");
	*user = cJSON_Duplicate(u, 1);
	if (!*user)
		abort();
	return 0;
}

cJSON *ctl_review_access_request(const cJSON *user, const char *verb, const char *path)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "apiVersion", "authorization.k8s.io/v1");
	cJSON_AddStringToObject(r, "kind", "SubjectAccessReview");
	cJSON *spec = cJSON_AddObjectToObject(r, "spec");
	const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(user, "username"));
	const char *uid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(user, "uid"));
	const cJSON *groups = cJSON_GetObjectItemCaseSensitive(user, "groups");
	const cJSON *extra = cJSON_GetObjectItemCaseSensitive(user, "extra");
	cJSON_AddStringToObject(spec, "user", name ? name : "");
	if (uid && *uid)
		cJSON_AddStringToObject(spec, "uid", uid);
	if (cJSON_IsArray(groups))
		cJSON_AddItemToObject(spec, "groups", cJSON_Duplicate(groups, 1));
	if (cJSON_IsObject(extra))
		cJSON_AddItemToObject(spec, "extra", cJSON_Duplicate(extra, 1));
	cJSON *na = cJSON_AddObjectToObject(spec, "nonResourceAttributes");
	cJSON_AddStringToObject(na, "path", path);
	cJSON_AddStringToObject(na, "verb", verb);
	if (!na)
		abort();
	return r;
}

int ctl_review_access_answer(const cJSON *review)
{
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(review, "status");
	if (!cJSON_IsObject(status))
		return ctl_error_set(CTL_EINVALID, "InvalidResponse", "the SubjectAccessReview has no status");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(status, "allowed")))
		return 0;
	const char *why = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(status, "reason"));
	return ctl_error_set(CTL_EAUTH, "Forbidden", "not allowed%s%s", why && *why ? ": " : "",
			     why && *why ? why : "");
}

/* --- the cache ---------------------------------------------------------------- */

struct entry {
	unsigned char key[KEY_LEN];
	int status;
	int64_t expires;
};

struct ctl_review_cache {
	pthread_mutex_t mu;
	struct entry *v;
	size_t n, max;
};

int ctl_review_cache_new(struct ctl_review_cache **out, size_t max_entries)
{
	struct ctl_review_cache *c = xcalloc(1, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	c->max = max_entries ? max_entries : 1;
	c->v = xcalloc(c->max, sizeof(*c->v));
	*out = c;
	return 0;
}

void ctl_review_cache_free(struct ctl_review_cache *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->mu);
	free(c->v);
	free(c);
}

static void hash(unsigned char out[KEY_LEN], const char *key)
{
	unsigned int len = KEY_LEN;
	if (!EVP_Digest(key, strlen(key), out, &len, EVP_sha256(), NULL))
		abort(); /* SHA-256 fails only when out of memory */
}

/* The slot of key, or -1. Under c->mu. */
static long find(const struct ctl_review_cache *c, const unsigned char k[KEY_LEN])
{
	for (size_t i = 0; i < c->n; i++)
		if (CRYPTO_memcmp(c->v[i].key, k, KEY_LEN) == 0)
			return (long)i;
	return -1;
}

int ctl_review_cache_get(struct ctl_review_cache *c, const char *key, int64_t now_ns)
{
	unsigned char k[KEY_LEN];
	int status = 0;
	hash(k, key);
	pthread_mutex_lock(&c->mu);
	long i = find(c, k);
	if (i >= 0 && c->v[i].expires > now_ns)
		status = c->v[i].status;
	pthread_mutex_unlock(&c->mu);
	return status;
}

void ctl_review_cache_put(struct ctl_review_cache *c, const char *key, int status, int64_t expires_ns)
{
	unsigned char k[KEY_LEN];
	hash(k, key);
	pthread_mutex_lock(&c->mu);
	long i = find(c, k);
	if (i < 0 && c->n == c->max) {
		/* Full: the entry that expires first goes (an expired one, if
		 * any, since those expire before any live one). */
		size_t victim = 0;
		for (size_t j = 1; j < c->n; j++)
			if (c->v[j].expires < c->v[victim].expires)
				victim = j;
		i = (long)victim;
	} else if (i < 0) {
		i = (long)c->n++;
	}
	memcpy(c->v[i].key, k, KEY_LEN);
	c->v[i].status = status;
	c->v[i].expires = expires_ns;
	pthread_mutex_unlock(&c->mu);
}

size_t ctl_review_cache_len(struct ctl_review_cache *c)
{
	pthread_mutex_lock(&c->mu);
	size_t n = c->n;
	pthread_mutex_unlock(&c->mu);
	return n;
}

/* --- the reviewer -------------------------------------------------------------- */

struct ctl_reviewer {
	struct ctl_kube_client *client;
	struct ctl_reviewer_opts opts;
	struct ctl_review_cache *cache;
	atomic_uint_fast64_t reviews, hits;
};

int ctl_reviewer_new(struct ctl_reviewer **out, struct ctl_kube_client *client, const struct ctl_reviewer_opts *opts)
{
	struct ctl_reviewer *r = xcalloc(1, sizeof(*r));
	r->client = client;
	if (opts)
		r->opts = *opts;
	if (!r->opts.cache_size)
		r->opts.cache_size = 256;
	if (r->opts.allow_ttl_ns <= 0)
		r->opts.allow_ttl_ns = 60 * CTL_SEC;
	if (r->opts.deny_ttl_ns <= 0)
		r->opts.deny_ttl_ns = 30 * CTL_SEC;
	atomic_init(&r->reviews, 0);
	atomic_init(&r->hits, 0);
	ctl_review_cache_new(&r->cache, r->opts.cache_size);
	*out = r;
	return 0;
}

void ctl_reviewer_free(struct ctl_reviewer *r)
{
	if (!r)
		return;
	ctl_review_cache_free(r->cache);
	free(r);
}

void ctl_reviewer_stats(struct ctl_reviewer *r, uint64_t *reviews, uint64_t *cache_hits)
{
	*reviews = atomic_load(&r->reviews);
	*cache_hits = atomic_load(&r->hits);
}

static const char *status_text(int status)
{
	switch (status) {
	case 200:
		return "";
	case 401:
		return "Unauthorized\n";
	case 403:
		return "Forbidden\n";
	default:
		return "Authentication or authorization failed\n";
	}
}

/* Ask the API server: 200, 401 or 403, or 500 when a review failed. For a
 * 403, *user_out names who was refused. */
static int ask(struct ctl_reviewer *r, const char *token, const char *verb, const char *path, char **who)
{
	cJSON *req = NULL, *ans = NULL, *user = NULL;
	int status, rc;

	req = ctl_review_token_request(token);
	atomic_fetch_add(&r->reviews, 1);
	rc = ctl_kube_create(&ans, r->client, &gvr_tokenreviews, NULL, req);
	/* The request held the token: wipe it before it is freed. */
	cJSON *spec = cJSON_GetObjectItemCaseSensitive(req, "spec");
	char *held = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(spec, "token"));
	if (held)
		OPENSSL_cleanse(held, strlen(held));
	cJSON_Delete(req);
	req = NULL;
	if (rc != 0) {
		status = 500;
		goto done;
	}
	rc = ctl_review_token_answer(&user, ans);
	if (rc != 0) {
		status = rc == CTL_EAUTH ? 401 : 500;
		goto done;
	}
	cJSON_Delete(ans);
	ans = NULL;
	req = ctl_review_access_request(user, verb, path);
	atomic_fetch_add(&r->reviews, 1);
	if ((rc = ctl_kube_create(&ans, r->client, &gvr_subjectaccessreviews, NULL, req)) != 0) {
		status = 500;
		goto done;
	}
	rc = ctl_review_access_answer(ans);
	status = rc == 0 ? 200 : rc == CTL_EAUTH ? 403 : 500;
	if (status == 403)
		*who = xstrdup(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(user, "username")));
done:
	cJSON_Delete(req);
	cJSON_Delete(ans);
	cJSON_Delete(user);
	return status;
}

/* The decision, from the cache only or (ask) from the API server on a
 * miss; 0 on a miss when not asking, with nothing appended to body. */
static int decide(struct ctl_reviewer *r, const char *authorization, const char *verb, const char *path,
		  struct ctl_buf *body, bool ask_on_miss)
{
	char *token = NULL, *key = NULL, *who = NULL;
	int status;

	if (ctl_review_bearer(&token, authorization) != 0) {
		ctl_buf_puts(body, status_text(401));
		return 401;
	}
	key = xasprintf("%s\n%s\n%s", verb, path, token);
	int64_t now = ctl_clock_now(r->opts.clock);
	status = ctl_review_cache_get(r->cache, key, now);
	if (status) {
		atomic_fetch_add(&r->hits, 1);
	} else if (ask_on_miss) {
		status = ask(r, token, verb, path, &who);
		if (status != 500)
			ctl_review_cache_put(r->cache, key, status,
					     now + (status == 200 ? r->opts.allow_ttl_ns : r->opts.deny_ttl_ns));
	}
	if (who)
		ctl_buf_printf(body, "Authorization denied for user %s\n", who);
	else if (status)
		ctl_buf_puts(body, status_text(status));
	OPENSSL_cleanse(token, strlen(token));
	OPENSSL_cleanse(key, strlen(key));
	free(token);
	free(key);
	free(who);
	return status;
}

int ctl_reviewer_check(struct ctl_reviewer *r, const char *authorization, const char *verb, const char *path,
		       struct ctl_buf *body)
{
	return decide(r, authorization, verb, path, body, true);
}

int ctl_reviewer_check_cached(struct ctl_reviewer *r, const char *authorization, const char *verb,
			      const char *path, struct ctl_buf *body)
{
	return decide(r, authorization, verb, path, body, false);
}
