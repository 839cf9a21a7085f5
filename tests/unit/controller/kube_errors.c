/* Unit tests for controller/kube.c: how API server answers become codes and
 * the last error, and what each verb puts on the wire, against a canned
 * server on a local socket (as curl's tests pair a reply with the request
 * the client must send). */
#include "test.h"

#include "canned_http.h"

#include "error.h"
#include "kube.h"
#include "kubeconfig.h"
#include "xalloc.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- Status bodies ------------------------------------------------------- */

TEST(status_body_becomes_the_last_error)
{
	static const struct {
		long status;
		const char *body;
		int code;
		const char *reason, *message;
	} cases[] = {
		{404, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":\"agentpools.acr.example.com \\\"p1\\\" not found\",\"reason\":\"NotFound\",\"code\":404}",
		 CTL_ENOTFOUND, "NotFound", "agentpools.acr.example.com \"p1\" not found"},
		{409, "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"the object has been modified\",\"reason\":\"Conflict\",\"code\":409}",
		 CTL_ECONFLICT, "Conflict", "the object has been modified"},
		{409, "{\"kind\":\"Status\",\"reason\":\"AlreadyExists\",\"message\":\"exists\"}", CTL_ECONFLICT, "AlreadyExists", "exists"},
		{410, "{\"kind\":\"Status\",\"reason\":\"Expired\",\"message\":\"too old resource version\"}", CTL_EGONE, "Expired", "too old resource version"},
		{422, "{\"kind\":\"Status\",\"reason\":\"Invalid\",\"message\":\"spec.count: Invalid value\"}", CTL_ETERMINAL, "Invalid", "spec.count: Invalid value"},
		{400, "{\"kind\":\"Status\",\"reason\":\"BadRequest\",\"message\":\"bad\"}", CTL_ETERMINAL, "BadRequest", "bad"},
		{401, "{\"kind\":\"Status\",\"reason\":\"Unauthorized\",\"message\":\"Unauthorized\"}", CTL_EAUTH, "Unauthorized", "Unauthorized"},
		{403, "{\"kind\":\"Status\",\"reason\":\"Forbidden\",\"message\":\"cannot list\"}", CTL_EAUTH, "Forbidden", "cannot list"},
		{429, "{\"kind\":\"Status\",\"reason\":\"TooManyRequests\",\"message\":\"slow down\"}", CTL_EUNAVAIL, "TooManyRequests", "slow down"},
		{500, "{\"kind\":\"Status\",\"message\":\"etcd down\"}", CTL_EUNAVAIL, "InternalError", "etcd down"},
		{503, "{\"kind\":\"Status\",\"reason\":\"\"}", CTL_EUNAVAIL, "ServiceUnavailable", "ServiceUnavailable"},
		{502, "<html>Bad Gateway</html>", CTL_EUNAVAIL, "Unknown", "HTTP 502: <html>Bad Gateway</html>"},
		{404, "", CTL_ENOTFOUND, "NotFound", "HTTP 404"},
		{404, "{\"kind\":\"Pod\"}", CTL_ENOTFOUND, "NotFound", "HTTP 404: {\"kind\":\"Pod\"}"},
		{418, "line1\nline2", CTL_ERR, "Unknown", "HTTP 418: line1 line2"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = ctl_kube_status_error(cases[i].status, cases[i].body, strlen(cases[i].body));
		const struct ctl_error *e = ctl_error_last();
		CHECK_INT(rc, cases[i].code);
		CHECK_INT(e->code, cases[i].code);
		CHECK_INT(e->http_status, cases[i].status);
		CHECK_STR(e->reason, cases[i].reason);
		CHECK_STR(e->message, cases[i].message);
	}
}

TEST(status_error_keeps_a_long_body_short)
{
	char body[5000];
	memset(body, 'x', sizeof(body));
	CHECK_INT(ctl_kube_status_error(500, body, sizeof(body)), CTL_EUNAVAIL);
	CHECK(strlen(ctl_error_last()->message) < 300);
}

TEST(kube_path_builds_core_and_group_paths)
{
	static const struct {
		struct ctl_gvr gvr;
		const char *ns, *name, *sub, *path;
	} cases[] = {
		{{"", "v1", "pods"}, NULL, NULL, NULL, "/api/v1/pods"},
		{{NULL, "v1", "pods"}, "default", NULL, NULL, "/api/v1/namespaces/default/pods"},
		{{"", "v1", "namespaces"}, NULL, "kube-system", NULL, "/api/v1/namespaces/kube-system"},
		{{"acr.example.com", "v1alpha1", "agentpools"}, "ns", "p1", "status",
		 "/apis/acr.example.com/v1alpha1/namespaces/ns/agentpools/p1/status"},
		{{"coordination.k8s.io", "v1", "leases"}, "ns", "a/b c", NULL,
		 "/apis/coordination.k8s.io/v1/namespaces/ns/leases/a%2Fb%20c"},
		{{"", "v1", "pods"}, "ns", NULL, "status", "/api/v1/namespaces/ns/pods"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *p = ctl_kube_path(&cases[i].gvr, cases[i].ns, cases[i].name, cases[i].sub);
		CHECK_STR(p, cases[i].path);
		free(p);
	}
}

/* --- a client for the canned server (canned_http.h) ---------------------- */

/* Request i as the server saw it ("" when there was none). Only read it
 * after the call that sent it returned. */
static const char *request(struct canned_server *s, size_t i)
{
	const char *r = canned_request(s, 0, i);
	return r ? r : "";
}

static struct ctl_kube_client *client_for(const char *server, const char *user, const char *base_dir)
{
	struct ctl_kubeconfig *cfg;
	struct ctl_kube_client *c;
	char *yaml = xasprintf("current-context: t\n"
			       "contexts: [{name: t, context: {cluster: t, user: t, namespace: team}}]\n"
			       "clusters: [{name: t, cluster: {server: '%s'}}]\n"
			       "users: [{name: t, user: %s}]\n", server, user);
	CHECK_INT(ctl_kubeconfig_parse(&cfg, yaml, strlen(yaml), NULL, base_dir), 0);
	CHECK_INT(ctl_kube_client_new(&c, cfg), 0);
	free(yaml);
	return c;
}

struct metric {
	int calls;
	char verb[16], resource[32], host[64];
	long status;
	double seconds;
};

static void record_metric(const char *verb, const char *resource, const char *host, long status, double seconds,
			  void *arg)
{
	struct metric *m = arg;
	m->calls++;
	snprintf(m->verb, sizeof(m->verb), "%s", verb);
	snprintf(m->resource, sizeof(m->resource), "%s", resource);
	snprintf(m->host, sizeof(m->host), "%s", host);
	m->status = status;
	m->seconds = seconds;
}

static const struct ctl_gvr pods = {"", "v1", "pods"};
static const struct ctl_gvr pools = {"acr.example.com", "v1alpha1", "agentpools"};

/* --- the client against the canned server -------------------------------- */

TEST(kube_get_not_found_fills_the_last_error)
{
	struct canned_server s;
	struct metric m = {0};
	cJSON *o = (cJSON *)1;
	canned_start(&s);
	canned_reply(&s, 0, 404, "Audit-Id: 1234-abcd\r\n",
		     "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"pods \\\"x\\\" not found\","
		     "\"reason\":\"NotFound\",\"code\":404}");
	struct ctl_kube_client *c = client_for(s.base, "{token: secret-token}", NULL);
	ctl_kube_client_set_metrics(c, record_metric, &m);
	CHECK_STR(ctl_kube_client_namespace(c), "team");
	CHECK_INT(ctl_kube_get(&o, c, &pods, "team", "x", NULL), CTL_ENOTFOUND);
	CHECK(o == NULL);
	const struct ctl_error *e = ctl_error_last();
	CHECK_STR(e->reason, "NotFound");
	CHECK_STR(e->message, "pods \"x\" not found");
	CHECK_INT(e->http_status, 404);
	CHECK_STR(e->request_id, "1234-abcd");
	CHECK(strncmp(request(&s, 0), "GET /api/v1/namespaces/team/pods/x HTTP/1.1\r\n", 45) == 0);
	CHECK(strstr(request(&s, 0), "Authorization: Bearer secret-token\r\n") != NULL);
	CHECK(strstr(request(&s, 0), "Accept: application/json\r\n") != NULL);
	CHECK_INT(m.calls, 1);
	CHECK_STR(m.verb, "GET");
	CHECK_STR(m.resource, "pods");
	char host[32];
	snprintf(host, sizeof(host), "127.0.0.1:%d", s.port);
	CHECK_STR(m.host, host);
	CHECK_INT(m.status, 404);
	CHECK(m.seconds >= 0 && m.seconds < 10);
	ctl_kube_client_free(c);
	canned_stop(&s);
}

TEST(kube_429_reports_retry_after)
{
	struct canned_server s;
	cJSON *o;
	canned_start(&s);
	canned_reply(&s, 0, 429, "Retry-After: 3\r\n",
		     "{\"kind\":\"Status\",\"reason\":\"TooManyRequests\",\"message\":\"slow down\"}");
	struct ctl_kube_client *c = client_for(s.base, "{}", NULL);
	CHECK_INT(ctl_kube_get(&o, c, &pods, "team", "x", NULL), CTL_EUNAVAIL);
	CHECK_INT(ctl_error_last()->retry_after_ms, 3000);
	CHECK_STR(ctl_error_last()->reason, "TooManyRequests");
	CHECK(strstr(request(&s, 0), "Authorization:") == NULL);
	ctl_kube_client_free(c);
	canned_stop(&s);
}

TEST(kube_list_all_follows_continue)
{
	struct canned_server s;
	cJSON *list = NULL;
	canned_start(&s);
	canned_reply(&s, 0, 200, NULL,
		     "{\"kind\":\"AgentPoolList\",\"metadata\":{\"resourceVersion\":\"50\",\"continue\":\"tok+1\","
		     "\"remainingItemCount\":1},\"items\":[{\"metadata\":{\"name\":\"a\"}},{\"metadata\":{\"name\":\"b\"}}]}");
	canned_reply(&s, 0, 200, NULL,
		     "{\"kind\":\"AgentPoolList\",\"metadata\":{\"resourceVersion\":\"50\"},"
		     "\"items\":[{\"metadata\":{\"name\":\"c\"}}]}");
	struct ctl_kube_client *c = client_for(s.base, "{}", NULL);
	struct ctl_kube_list_opts o = {.label_selector = "app=x,tier in (a,b)", .limit = 2};
	CHECK_INT(ctl_kube_list_all(&list, c, &pools, NULL, &o), 0);
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(list, "items")), 3);
	cJSON *meta = cJSON_GetObjectItem(list, "metadata");
	CHECK_STR(cJSON_GetObjectItem(meta, "resourceVersion")->valuestring, "50");
	CHECK(cJSON_GetObjectItem(meta, "continue") == NULL);
	CHECK(cJSON_GetObjectItem(meta, "remainingItemCount") == NULL);
	CHECK_STR(cJSON_GetArrayItem(cJSON_GetObjectItem(list, "items"), 2)->child->child->valuestring, "c");
	CHECK(strncmp(request(&s, 0),
		      "GET /apis/acr.example.com/v1alpha1/agentpools?labelSelector=app%3Dx%2Ctier%20in%20%28a%2Cb%29&limit=2 ",
		      100) == 0);
	CHECK(strstr(request(&s, 1), "&limit=2&continue=tok%2B1 HTTP/1.1") != NULL);
	cJSON_Delete(list);
	ctl_kube_client_free(c);
	canned_stop(&s);
}

TEST(kube_writes_send_method_content_type_and_body)
{
	struct canned_server s;
	cJSON *out = NULL;
	cJSON *body = cJSON_Parse("{\"metadata\":{\"name\":\"p1\",\"resourceVersion\":\"7\"},\"spec\":{\"count\":2}}");
	cJSON *patch = cJSON_Parse("{\"status\":{\"phase\":\"Ready\"}}");
	cJSON *jpatch = cJSON_Parse("[{\"op\":\"remove\",\"path\":\"/metadata/finalizers/0\"}]");
	canned_start(&s);
	for (int i = 0; i < 7; i++) /* one for each call that reaches the server */
		canned_reply(&s, 0, 200, NULL, "{\"kind\":\"AgentPool\",\"metadata\":{\"name\":\"p1\"}}");
	struct ctl_kube_client *c = client_for(s.base, "{}", NULL);

	CHECK_INT(ctl_kube_create(&out, c, &pools, "ns", body), 0);
	CHECK_STR(cJSON_GetObjectItem(out, "kind")->valuestring, "AgentPool");
	cJSON_Delete(out);
	CHECK_INT(ctl_kube_update(&out, c, &pools, "ns", "p1", NULL, body), 0);
	cJSON_Delete(out);
	CHECK_INT(ctl_kube_patch_status(&out, c, &pools, "ns", "p1", patch), 0);
	cJSON_Delete(out);
	CHECK_INT(ctl_kube_patch(&out, c, &pools, "ns", "p1", NULL, CTL_PATCH_JSON, jpatch, NULL), 0);
	cJSON_Delete(out);
	CHECK_INT(ctl_kube_patch(&out, c, &pools, "ns", "p1", NULL, CTL_PATCH_APPLY, body, "acrpool"), 0);
	cJSON_Delete(out);
	CHECK_INT(ctl_kube_patch(&out, c, &pools, "ns", "p1", NULL, CTL_PATCH_APPLY, body, NULL), CTL_ETERMINAL);
	struct ctl_kube_delete_opts d = {.resource_version = "7", .propagation_policy = "Foreground"};
	CHECK_INT(ctl_kube_delete(NULL, c, &pools, "ns", "p1", &d), 0);
	CHECK_INT(ctl_kube_delete(&out, c, &pools, "ns", "p1", NULL), 0);
	cJSON_Delete(out);

	static const struct {
		const char *line, *type, *body;
	} want[] = {
		{"POST /apis/acr.example.com/v1alpha1/namespaces/ns/agentpools HTTP", "application/json", "\"count\":2"},
		{"PUT /apis/acr.example.com/v1alpha1/namespaces/ns/agentpools/p1 HTTP", "application/json", "\"resourceVersion\":\"7\""},
		{"PATCH /apis/acr.example.com/v1alpha1/namespaces/ns/agentpools/p1/status HTTP",
		 "application/merge-patch+json", "{\"status\":{\"phase\":\"Ready\"}}"},
		{"PATCH /apis/acr.example.com/v1alpha1/namespaces/ns/agentpools/p1 HTTP", "application/json-patch+json",
		 "\"op\":\"remove\""},
		{"PATCH /apis/acr.example.com/v1alpha1/namespaces/ns/agentpools/p1?fieldManager=acrpool&force=true HTTP",
		 "application/apply-patch+yaml", "\"spec\""},
		{"DELETE /apis/acr.example.com/v1alpha1/namespaces/ns/agentpools/p1 HTTP", "application/json",
		 "\"preconditions\":{\"resourceVersion\":\"7\"},\"propagationPolicy\":\"Foreground\""},
		{"DELETE /apis/acr.example.com/v1alpha1/namespaces/ns/agentpools/p1 HTTP", NULL, NULL},
	};
	CHECK_INT(s.nrequests, 7); /* the apply without a field manager never left */
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const char *r = request(&s, i);
		char *ct = want[i].type ? xasprintf("Content-Type: %s\r\n", want[i].type) : NULL;
		CHECK(strncmp(r, want[i].line, strlen(want[i].line)) == 0);
		CHECK(ct ? strstr(r, ct) != NULL : strstr(r, "Content-Type:") == NULL);
		CHECK(!want[i].body || strstr(strstr(r, "\r\n\r\n"), want[i].body) != NULL);
		CHECK(strstr(r, "Expect:") == NULL);
		free(ct);
	}
	cJSON_Delete(body);
	cJSON_Delete(patch);
	cJSON_Delete(jpatch);
	ctl_kube_client_free(c);
	canned_stop(&s);
}

TEST(kube_body_over_the_cap_is_too_big)
{
	static char big[4096];
	struct canned_server s;
	cJSON *o;
	memset(big, ' ', sizeof(big) - 1);
	big[0] = '{';
	big[sizeof(big) - 2] = '}';
	canned_start(&s);
	canned_reply(&s, 0, 200, NULL, big);
	canned_reply(&s, 0, 200, NULL, big);
	struct ctl_kube_client *c = client_for(s.base, "{}", NULL);
	ctl_kube_client_set_limits(c, 1000, 5000);
	CHECK_INT(ctl_kube_get(&o, c, &pods, "ns", "p", NULL), CTL_ETOOBIG);
	CHECK(o == NULL);
	ctl_kube_client_set_limits(c, 8192, 5000);
	CHECK_INT(ctl_kube_get(&o, c, &pods, "ns", "p", NULL), 0);
	cJSON_Delete(o);
	ctl_kube_client_free(c);
	canned_stop(&s);
}

TEST(kube_success_that_is_not_json_is_invalid)
{
	struct canned_server s;
	cJSON *o;
	canned_start(&s);
	canned_reply(&s, 0, 200, NULL, "<html>login</html>");
	struct ctl_kube_client *c = client_for(s.base, "{}", NULL);
	CHECK_INT(ctl_kube_get(&o, c, &pods, "ns", "p", NULL), CTL_EINVALID);
	CHECK(o == NULL);
	ctl_kube_client_free(c);
	canned_stop(&s);
}

TEST(kube_connection_refused_is_unavailable)
{
	struct metric m = {0};
	cJSON *o;
	char *dead = xasprintf("http://127.0.0.1:%d", canned_dead_port()); /* nobody listens there */
	struct ctl_kube_client *c = client_for(dead, "{}", NULL);
	free(dead);
	ctl_kube_client_set_metrics(c, record_metric, &m);
	CHECK_INT(ctl_kube_get(&o, c, &pods, "ns", "p", NULL), CTL_EUNAVAIL);
	CHECK_STR(ctl_error_last()->reason, "NetworkError");
	CHECK_INT(m.calls, 1);
	CHECK_INT(m.status, 0);
	ctl_kube_client_free(c);
}

static void *get_on_another_thread(void *arg)
{
	struct ctl_kube_client *c = arg;
	cJSON *o = NULL;
	long rc = ctl_kube_get(&o, c, &pods, "ns", "p", NULL);
	cJSON_Delete(o);
	return (void *)rc;
}

TEST(kube_client_serves_several_threads)
{
	struct canned_server s;
	pthread_t t[4];
	canned_start(&s);
	for (int i = 0; i < 5; i++) /* this thread's GET and the four others' */
		canned_reply(&s, 0, 200, NULL, "{\"kind\":\"Pod\"}");
	struct ctl_kube_client *c = client_for(s.base, "{}", NULL);
	/* This thread keeps its handle until the client is freed; the
	 * others release theirs as they exit. */
	CHECK_INT((long)get_on_another_thread(c), 0);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, get_on_another_thread, c);
	for (int i = 0; i < 4; i++) {
		void *rc;
		pthread_join(t[i], &rc);
		CHECK_INT((long)rc, 0);
	}
	ctl_kube_client_free(c);
	canned_stop(&s);
}

static char *tmpdir_with_plugin(void)
{
	char tmpl[] = "/tmp/acrpool-kube-XXXXXX";
	char *dir = xstrdup(mkdtemp(tmpl));
	char *p = xasprintf("%s/plugin.sh", dir);
	FILE *fp = fopen(p, "w");
	fputs("#!/bin/sh\n"
	      "d=$(dirname \"$0\")\n"
	      "n=$(cat \"$d/count\" 2>/dev/null || echo 0)\n"
	      "n=$((n + 1))\n"
	      "echo $n > \"$d/count\"\n"
	      "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\","
	      "\"status\":{\"token\":\"tok-%s\"}}' \"$n\"\n", fp);
	fclose(fp);
	chmod(p, 0700);
	free(p);
	return dir;
}

static void rmdir_all(char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char *p = xasprintf("%s/%s", dir, e->d_name);
		unlink(p);
		free(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
	free(dir);
}

TEST(kube_401_runs_the_exec_plugin_again_and_retries_once)
{
	static const char unauthorized[] =
		"{\"kind\":\"Status\",\"reason\":\"Unauthorized\",\"message\":\"Unauthorized\",\"code\":401}";
	struct canned_server s;
	cJSON *o = NULL;
	char *dir = tmpdir_with_plugin();
	canned_start(&s);
	canned_reply(&s, 0, 401, NULL, unauthorized);
	canned_reply(&s, 0, 200, NULL, "{\"kind\":\"Pod\"}");
	canned_reply(&s, 0, 401, NULL, unauthorized);
	canned_reply(&s, 0, 401, NULL, unauthorized);
	struct ctl_kube_client *c = client_for(s.base,
		"{exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: ./plugin.sh}}", dir);
	CHECK_INT(ctl_kube_get(&o, c, &pods, "ns", "p", NULL), 0);
	cJSON_Delete(o);
	CHECK(strstr(request(&s, 0), "Authorization: Bearer tok-1\r\n") != NULL);
	CHECK(strstr(request(&s, 1), "Authorization: Bearer tok-2\r\n") != NULL);
	/* Refused twice in a row: one retry only, then the error. */
	CHECK_INT(ctl_kube_get(&o, c, &pods, "ns", "p", NULL), CTL_EAUTH);
	CHECK_INT(s.nrequests, 4);
	CHECK(strstr(request(&s, 2), "Authorization: Bearer tok-2\r\n") != NULL);
	CHECK(strstr(request(&s, 3), "Authorization: Bearer tok-3\r\n") != NULL);
	ctl_kube_client_free(c);
	canned_stop(&s);
	rmdir_all(dir);
}

TEST_MAIN(T(status_body_becomes_the_last_error), T(status_error_keeps_a_long_body_short),
	  T(kube_path_builds_core_and_group_paths), T(kube_get_not_found_fills_the_last_error),
	  T(kube_429_reports_retry_after), T(kube_list_all_follows_continue),
	  T(kube_writes_send_method_content_type_and_body), T(kube_body_over_the_cap_is_too_big),
	  T(kube_success_that_is_not_json_is_invalid), T(kube_connection_refused_is_unavailable),
	  T(kube_client_serves_several_threads), T(kube_401_runs_the_exec_plugin_again_and_retries_once))
