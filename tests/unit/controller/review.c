/* Unit tests for controller/review.c: the Authorization header, the
 * TokenReview and SubjectAccessReview bodies and answers, the decision
 * cache, and the reviewer against a canned API server. */
#include "test.h"

#include "buf.h"
#include "canned_http.h"
#include "clock.h"
#include "error.h"
#include "kubeconfig.h"
#include "review.h"

/* --- the Authorization header ------------------------------------------------ */

TEST(review_bearer_header_parsing)
{
	static const struct {
		const char *header, *token; /* token NULL: refused */
	} cases[] = {
		{"Bearer abc.def.ghi", "abc.def.ghi"},
		{"bearer abc", "abc"},          /* the scheme in any case */
		{"BEARER abc", "abc"},
		{"  Bearer abc", "abc"},        /* leading space trimmed */
		{"Bearer abc ", "abc"},         /* trailing space trimmed */
		{"Bearer abc extra", "abc"},    /* a third field is ignored, as the API server does */
		{NULL, NULL},                   /* no header */
		{"", NULL},
		{"Bearer", NULL},               /* no token */
		{"Bearer ", NULL},
		{"Bearer  abc", NULL},          /* two spaces: the token is the empty second field */
		{"Basic dXNlcjpwYXNz", NULL},   /* another scheme */
		{"Bearerabc", NULL},
		{"Token abc", NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *tok = (char *)1;
		int rc = ctl_review_bearer(&tok, cases[i].header);
		if (cases[i].token) {
			CHECK_INT(rc, 0);
			CHECK_STR(tok, cases[i].token);
		} else {
			if (rc != CTL_EAUTH)
				fprintf(stderr, "case %zu: \"%s\"\n", i, cases[i].header ? cases[i].header : "(null)");
			CHECK_INT(rc, CTL_EAUTH);
			CHECK(tok == NULL);
		}
		free(tok);
	}
}

/* --- the review bodies and answers ---------------------------------------------- */

TEST(review_token_request_body)
{
	cJSON *r = ctl_review_token_request("t0k");
	char *s = cJSON_PrintUnformatted(r);
	CHECK_STR(s, "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\",\"spec\":{\"token\":\"t0k\"}}");
	free(s);
	cJSON_Delete(r);
}

static int token_answer(cJSON **user, const char *json)
{
	cJSON *a = cJSON_Parse(json);
	int rc = ctl_review_token_answer(user, a);
	cJSON_Delete(a);
	return rc;
}

TEST(review_token_answer_decides)
{
	cJSON *u = NULL;
	CHECK_INT(token_answer(&u, "{\"status\":{\"authenticated\":true,\"user\":{\"username\":"
				   "\"system:serviceaccount:mon:prometheus\",\"uid\":\"u-1\",\"groups\":"
				   "[\"system:serviceaccounts\",\"system:authenticated\"],\"extra\":{\"authentication."
				   "kubernetes.io/pod-name\":[\"prom-0\"]}}}}"), 0);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(u, "username")), "system:serviceaccount:mon:prometheus");
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(u, "groups")), 2);
	cJSON_Delete(u);

	/* Not authenticated: the API server's error goes to the last error. */
	CHECK_INT(token_answer(&u, "{\"status\":{\"authenticated\":false,\"error\":\"invalid bearer token\"}}"),
		  CTL_EAUTH);
	CHECK(strstr(ctl_error_last()->message, "invalid bearer token") != NULL);
	CHECK(u == NULL);
	CHECK_INT(token_answer(&u, "{\"status\":{}}"), CTL_EAUTH);
	CHECK_INT(token_answer(&u, "{\"status\":{\"authenticated\":\"true\"}}"), CTL_EAUTH); /* a string is not true */
	/* Malformed: no status, or authenticated without a user name. */
	CHECK_INT(token_answer(&u, "{\"kind\":\"TokenReview\"}"), CTL_EINVALID);
	CHECK_INT(token_answer(&u, "{\"status\":{\"authenticated\":true,\"user\":{}}}"), CTL_EINVALID);
	CHECK_INT(token_answer(&u, "{\"status\":{\"authenticated\":true,\"user\":{\"username\":\"\"}}}"), CTL_EINVALID);
	CHECK(u == NULL);
}

TEST(review_access_request_carries_the_reviewed_user)
{
	cJSON *u = cJSON_Parse("{\"username\":\"alice\",\"uid\":\"42\",\"groups\":[\"g1\",\"g2\"],"
			       "\"extra\":{\"k\":[\"v\"]}}");
	cJSON *r = ctl_review_access_request(u, "get", "/metrics");
	char *s = cJSON_PrintUnformatted(r);
	CHECK_STR(s, "{\"apiVersion\":\"authorization.k8s.io/v1\",\"kind\":\"SubjectAccessReview\",\"spec\":"
		     "{\"user\":\"alice\",\"uid\":\"42\",\"groups\":[\"g1\",\"g2\"],\"extra\":{\"k\":[\"v\"]},"
		     "\"nonResourceAttributes\":{\"path\":\"/metrics\",\"verb\":\"get\"}}}");
	free(s);
	cJSON_Delete(r);
	cJSON_Delete(u);
	/* No uid, groups or extra: none sent. */
	u = cJSON_Parse("{\"username\":\"bob\"}");
	r = ctl_review_access_request(u, "get", "/metrics");
	s = cJSON_PrintUnformatted(r);
	CHECK_STR(s, "{\"apiVersion\":\"authorization.k8s.io/v1\",\"kind\":\"SubjectAccessReview\",\"spec\":"
		     "{\"user\":\"bob\",\"nonResourceAttributes\":{\"path\":\"/metrics\",\"verb\":\"get\"}}}");
	free(s);
	cJSON_Delete(r);
	cJSON_Delete(u);
}

static int access_answer(const char *json)
{
	cJSON *a = cJSON_Parse(json);
	int rc = ctl_review_access_answer(a);
	cJSON_Delete(a);
	return rc;
}

TEST(review_access_answer_decides)
{
	CHECK_INT(access_answer("{\"status\":{\"allowed\":true,\"reason\":\"RBAC: allowed by ClusterRoleBinding\"}}"), 0);
	CHECK_INT(access_answer("{\"status\":{\"allowed\":true,\"evaluationError\":\"webhook down\"}}"), 0);
	CHECK_INT(access_answer("{\"status\":{\"allowed\":false}}"), CTL_EAUTH);
	CHECK_INT(access_answer("{\"status\":{\"allowed\":false,\"denied\":true,\"reason\":\"no\"}}"), CTL_EAUTH);
	CHECK(strstr(ctl_error_last()->message, "no") != NULL);
	CHECK_INT(access_answer("{\"status\":{}}"), CTL_EAUTH);
	CHECK_INT(access_answer("{}"), CTL_EINVALID);
}

/* --- the cache ------------------------------------------------------------------- */

TEST(review_cache_answers_until_expiry)
{
	struct ctl_review_cache *c;
	ctl_review_cache_new(&c, 4);
	CHECK_INT(ctl_review_cache_get(c, "k1", 0), 0);
	ctl_review_cache_put(c, "k1", 200, 60 * CTL_SEC);
	ctl_review_cache_put(c, "k2", 403, 30 * CTL_SEC);
	CHECK_INT(ctl_review_cache_get(c, "k1", 59 * CTL_SEC), 200);
	CHECK_INT(ctl_review_cache_get(c, "k2", 29 * CTL_SEC), 403);
	CHECK_INT(ctl_review_cache_get(c, "k2", 30 * CTL_SEC), 0);  /* expired */
	CHECK_INT(ctl_review_cache_get(c, "k1", 60 * CTL_SEC), 0);
	CHECK_INT(ctl_review_cache_get(c, "k3", 0), 0);
	/* A put replaces: no second entry. */
	ctl_review_cache_put(c, "k1", 401, 100 * CTL_SEC);
	CHECK_INT(ctl_review_cache_get(c, "k1", 70 * CTL_SEC), 401);
	CHECK_INT(ctl_review_cache_len(c), 2);
	ctl_review_cache_free(c);
}

TEST(review_cache_is_bounded_and_evicts_what_expires_first)
{
	struct ctl_review_cache *c;
	char key[32];
	ctl_review_cache_new(&c, 3);
	ctl_review_cache_put(c, "a", 200, 50);
	ctl_review_cache_put(c, "b", 200, 10); /* expires first */
	ctl_review_cache_put(c, "c", 200, 30);
	ctl_review_cache_put(c, "d", 403, 40);
	CHECK_INT(ctl_review_cache_len(c), 3);
	CHECK_INT(ctl_review_cache_get(c, "b", 0), 0);
	CHECK_INT(ctl_review_cache_get(c, "a", 0), 200);
	CHECK_INT(ctl_review_cache_get(c, "c", 0), 200);
	CHECK_INT(ctl_review_cache_get(c, "d", 0), 403);
	/* A flood of new keys never grows it. */
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "flood-%d", i);
		ctl_review_cache_put(c, key, 401, 100 + i);
	}
	CHECK_INT(ctl_review_cache_len(c), 3);
	CHECK_INT(ctl_review_cache_get(c, "flood-999", 0), 401);
	ctl_review_cache_free(c);
}

/* --- the reviewer against a canned API server ----------------------------------- */

static struct ctl_kube_client *client_for(const char *server)
{
	struct ctl_kubeconfig *cfg;
	struct ctl_kube_client *c;
	char *yaml = xasprintf("current-context: t\n"
			       "contexts: [{name: t, context: {cluster: t, user: t}}]\n"
			       "clusters: [{name: t, cluster: {server: '%s'}}]\n"
			       "users: [{name: t, user: {token: operator-token}}]\n", server);
	CHECK_INT(ctl_kubeconfig_parse(&cfg, yaml, strlen(yaml), NULL, NULL), 0);
	CHECK_INT(ctl_kube_client_new(&c, cfg), 0);
	free(yaml);
	return c;
}

static const char authenticated[] =
	"{\"kind\":\"TokenReview\",\"status\":{\"authenticated\":true,\"user\":{\"username\":"
	"\"system:serviceaccount:mon:prom\",\"groups\":[\"system:authenticated\"]}}}";

static int check(struct ctl_reviewer *r, const char *header, struct ctl_buf *body)
{
	ctl_buf_reset(body);
	return ctl_reviewer_check(r, header, "get", "/metrics", body);
}

TEST(review_reviewer_allows_then_answers_from_the_cache)
{
	struct canned_server s;
	struct ctl_clock *clk;
	struct ctl_reviewer *r;
	struct ctl_buf body = CTL_BUF_INIT;
	uint64_t reviews, hits;
	canned_start(&s);
	ctl_clock_fake_new(&clk, CTL_SEC, 0);
	canned_reply_to(&s, "/tokenreviews", 201, NULL, authenticated);
	canned_reply_to(&s, "/subjectaccessreviews", 201, NULL, "{\"status\":{\"allowed\":true}}");
	struct ctl_kube_client *c = client_for(s.base);
	ctl_reviewer_new(&r, c, &(struct ctl_reviewer_opts){.clock = clk});

	CHECK_INT(check(r, "Bearer scraper-token", &body), 200);
	const char *tr = canned_request(&s, 0, 0), *sar = canned_request(&s, 0, 1);
	CHECK(tr && strncmp(tr, "POST /apis/authentication.k8s.io/v1/tokenreviews HTTP/1.1\r\n", 59) == 0);
	CHECK(tr && strstr(canned_body(tr), "\"token\":\"scraper-token\"") != NULL);
	CHECK(tr && strstr(tr, "Authorization: Bearer operator-token\r\n") != NULL);
	CHECK(sar && strncmp(sar, "POST /apis/authorization.k8s.io/v1/subjectaccessreviews HTTP/1.1\r\n", 66) == 0);
	CHECK(sar && strstr(canned_body(sar), "\"user\":\"system:serviceaccount:mon:prom\"") != NULL);
	CHECK(sar && strstr(canned_body(sar), "\"nonResourceAttributes\":{\"path\":\"/metrics\",\"verb\":\"get\"}"));
	CHECK(sar && strstr(canned_body(sar), "scraper-token") == NULL);

	/* A scrape every 15 s within the minute: no more reviews. */
	for (int i = 0; i < 3; i++) {
		ctl_clock_advance(clk, 15 * CTL_SEC);
		CHECK_INT(check(r, "Bearer scraper-token", &body), 200);
	}
	ctl_reviewer_stats(r, &reviews, &hits);
	CHECK_INT(reviews, 2);
	CHECK_INT(hits, 3);
	CHECK_INT(s.nrequests, 2);
	/* Past the minute: reviewed again (nothing queued now: 418, a failure). */
	ctl_clock_advance(clk, 16 * CTL_SEC);
	CHECK_INT(check(r, "Bearer scraper-token", &body), 500);
	CHECK_INT(s.nrequests, 3);

	ctl_reviewer_free(r);
	ctl_kube_client_free(c);
	ctl_clock_free(clk);
	ctl_buf_dispose(&body);
	canned_stop(&s);
}

TEST(review_reviewer_refuses)
{
	struct canned_server s;
	struct ctl_reviewer *r;
	struct ctl_buf body = CTL_BUF_INIT;
	canned_start(&s);
	canned_reply_to(&s, "/tokenreviews", 201, NULL,
			"{\"status\":{\"authenticated\":false,\"error\":\"invalid bearer token\"}}");
	canned_reply_to(&s, "/tokenreviews", 201, NULL, authenticated);
	canned_reply_to(&s, "/subjectaccessreviews", 201, NULL, "{\"status\":{\"allowed\":false}}");
	struct ctl_kube_client *c = client_for(s.base);
	ctl_reviewer_new(&r, c, NULL);

	/* No header, another scheme: 401 without asking. */
	CHECK_INT(check(r, NULL, &body), 401);
	CHECK_STR(ctl_buf_str(&body), "Unauthorized\n");
	CHECK_INT(check(r, "Basic dTpw", &body), 401);
	CHECK_INT(s.nrequests, 0);
	/* A token the API server does not know: 401, and cached. */
	CHECK_INT(check(r, "Bearer garbage", &body), 401);
	CHECK_INT(check(r, "Bearer garbage", &body), 401);
	CHECK_INT(s.nrequests, 1);
	/* Known, not allowed: 403 naming the user, never the token. */
	CHECK_INT(check(r, "Bearer known", &body), 403);
	CHECK_STR(ctl_buf_str(&body), "Authorization denied for user system:serviceaccount:mon:prom\n");
	CHECK_INT(check(r, "Bearer known", &body), 403);
	CHECK_INT(s.nrequests, 3);

	ctl_reviewer_free(r);
	ctl_kube_client_free(c);
	ctl_buf_dispose(&body);
	canned_stop(&s);
}

TEST(review_reviewer_failure_is_500_and_not_cached)
{
	struct canned_server s;
	struct ctl_reviewer *r;
	struct ctl_buf body = CTL_BUF_INIT;
	canned_start(&s);
	/* The operator itself may not create TokenReviews (its RBAC is short). */
	canned_reply_to(&s, "/tokenreviews", 403, NULL,
			"{\"kind\":\"Status\",\"reason\":\"Forbidden\",\"message\":\"tokenreviews is forbidden\",\"code\":403}");
	canned_reply_to(&s, "/tokenreviews", 201, NULL, authenticated);
	canned_reply_to(&s, "/subjectaccessreviews", 201, NULL, "{\"status\":{\"allowed\":true}}");
	struct ctl_kube_client *c = client_for(s.base);
	ctl_reviewer_new(&r, c, NULL);
	CHECK_INT(check(r, "Bearer t", &body), 500);
	CHECK(strstr(ctl_error_last()->message, "tokenreviews is forbidden") != NULL);
	CHECK_STR(ctl_buf_str(&body), "Authentication or authorization failed\n");
	CHECK_INT(check(r, "Bearer t", &body), 200);
	ctl_reviewer_free(r);
	ctl_kube_client_free(c);
	ctl_buf_dispose(&body);
	canned_stop(&s);
}

TEST(review_reviewer_cached_check_never_asks)
{
	struct canned_server s;
	struct ctl_reviewer *r;
	struct ctl_buf body = CTL_BUF_INIT;
	uint64_t reviews, hits;
	canned_start(&s);
	canned_reply_to(&s, "/tokenreviews", 201, NULL, authenticated);
	canned_reply_to(&s, "/subjectaccessreviews", 201, NULL, "{\"status\":{\"allowed\":false}}");
	struct ctl_kube_client *c = client_for(s.base);
	ctl_reviewer_new(&r, c, NULL);

	/* Unknown: 0, nothing said, nobody asked. */
	CHECK_INT(ctl_reviewer_check_cached(r, "Bearer t", "get", "/metrics", &body), 0);
	CHECK_INT(body.len, 0);
	CHECK_INT(s.nrequests, 0);
	/* A header that needs no review is decided at once. */
	CHECK_INT(ctl_reviewer_check_cached(r, "Basic dTpw", "get", "/metrics", &body), 401);
	CHECK_STR(ctl_buf_str(&body), "Unauthorized\n");
	/* Once reviewed, the cached answer, with the same text. */
	CHECK_INT(check(r, "Bearer t", &body), 403);
	CHECK_INT(s.nrequests, 2);
	ctl_buf_reset(&body);
	CHECK_INT(ctl_reviewer_check_cached(r, "Bearer t", "get", "/metrics", &body), 403);
	CHECK_STR(ctl_buf_str(&body), "Forbidden\n");
	CHECK_INT(s.nrequests, 2);
	ctl_reviewer_stats(r, &reviews, &hits);
	CHECK_INT(reviews, 2);
	CHECK_INT(hits, 1);

	ctl_reviewer_free(r);
	ctl_kube_client_free(c);
	ctl_buf_dispose(&body);
	canned_stop(&s);
}

TEST_MAIN(T(review_bearer_header_parsing), T(review_token_request_body), T(review_token_answer_decides),
	  T(review_access_request_carries_the_reviewed_user), T(review_access_answer_decides),
	  T(review_cache_answers_until_expiry), T(review_cache_is_bounded_and_evicts_what_expires_first),
	  T(review_reviewer_allows_then_answers_from_the_cache), T(review_reviewer_refuses),
	  T(review_reviewer_failure_is_500_and_not_cached), T(review_reviewer_cached_check_never_asks))
