/*
 * Tests for reconcilers/arm.c: ARM error bodies, Retry-After, backoff, LRO
 * interpretation and status bodies, resource JSON to structs (pure), then
 * canned-wire cases against a loopback server: exact request headers,
 * 429/503 retries with an injected sleep, budgets, 401 token refresh,
 * LRO polling, paging, uploads and secret hygiene.
 */
#include "test.h"

#include "canned_http.h"

#include "arm.h"
#include "error.h"
#include "identity.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- pure: errors ---- */

TEST(error_body_well_formed)
{
	const char *body = "{\"error\":{\"code\":\"RegistryStatusConflict\",\"message\":\"The registry is busy.\","
			   "\"details\":[{\"code\":\"x\",\"message\":\"y\"}]}}";
	CHECK_INT(arm_error_set(409, body, "rid-1", -1), CTL_ECONFLICT);
	const struct ctl_error *e = ctl_error_last();
	CHECK_INT(e->code, CTL_ECONFLICT);
	CHECK_STR(e->reason, "RegistryStatusConflict");
	CHECK_STR(e->message, "The registry is busy.");
	CHECK_STR(e->request_id, "rid-1");
	CHECK_INT(e->http_status, 409);
	CHECK_INT(e->retry_after_ms, -1);
	CHECK_INT(arm_error_set(404, "{\"error\":{\"code\":\"ResourceNotFound\",\"message\":\"m\"}}", NULL, -1),
		  CTL_ENOTFOUND);
	CHECK_INT(arm_error_set(400, "{\"error\":{\"code\":\"InvalidInputValue\",\"message\":\"m\"}}", NULL, -1),
		  CTL_ETERMINAL);
	CHECK_INT(arm_error_set(403, "{\"error\":{\"code\":\"AuthorizationFailed\",\"message\":\"m\"}}", NULL, -1),
		  CTL_EAUTH);
	CHECK_INT(arm_error_set(429, "{\"error\":{\"code\":\"TooManyRequests\",\"message\":\"m\"}}", NULL, 5000),
		  CTL_EUNAVAIL);
	CHECK_INT(ctl_error_last()->retry_after_ms, 5000);
}

TEST(error_body_other_shapes)
{
	arm_error_set(400, "{\"odata.error\":{\"code\":\"BadRequest\",\"message\":{\"lang\":\"en\",\"value\":\"odata "
			   "says no\"}}}", NULL, -1);
	CHECK_STR(ctl_error_last()->reason, "BadRequest");
	CHECK_STR(ctl_error_last()->message, "odata says no");
	arm_error_set(400, "{\"code\":\"Unwrapped\",\"message\":\"bare\"}", NULL, -1);
	CHECK_STR(ctl_error_last()->reason, "Unwrapped");
	CHECK_STR(ctl_error_last()->message, "bare");
}

TEST(error_body_missing_fields)
{
	arm_error_set(400, "{\"error\":{}}", NULL, -1);
	CHECK_STR(ctl_error_last()->reason, "HttpStatus400");
	CHECK_STR(ctl_error_last()->message, "ARM answered HTTP 400");
	arm_error_set(409, "{\"error\":{\"code\":\"Conflict\"}}", NULL, -1);
	CHECK_STR(ctl_error_last()->reason, "Conflict");
	CHECK_STR(ctl_error_last()->message, "ARM answered HTTP 409");
	arm_error_set(409, "{\"error\":{\"code\":42,\"message\":[]}}", NULL, -1);
	CHECK_STR(ctl_error_last()->reason, "HttpStatus409");
}

TEST(error_body_not_json)
{
	CHECK_INT(arm_error_set(502, "<html><body>Bad Gateway</body></html>", "r", -1), CTL_EUNAVAIL);
	CHECK_STR(ctl_error_last()->reason, "HttpStatus502");
	CHECK_STR(ctl_error_last()->message, "ARM answered HTTP 502 without an ARM error body");
	CHECK_INT(arm_error_set(500, "", NULL, -1), CTL_EUNAVAIL);
	CHECK_INT(arm_error_set(500, NULL, NULL, -1), CTL_EUNAVAIL);
}

TEST(error_body_huge)
{
	size_t n = 200000;
	char *msg = xmalloc(n + 1);
	memset(msg, 'x', n);
	msg[n] = '\0';
	msg[10] = '\n'; /* control characters never reach a log line */
	char *code = xmalloc(1001);
	memset(code, 'C', 1000);
	code[1000] = '\0';
	char *body = xasprintf("{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, msg);
	arm_error_set(400, body, NULL, -1);
	const struct ctl_error *e = ctl_error_last();
	CHECK(strlen(e->message) < sizeof(e->message));
	CHECK(strlen(e->message) >= 800);
	CHECK(strchr(e->message, '\n') == NULL);
	CHECK(strlen(e->reason) <= 100);
	free(msg);
	free(code);
	free(body);
}

/* ---- pure: Retry-After and backoff ---- */

TEST(retry_after_seconds)
{
	CHECK_INT(arm_retry_after_parse("5", 0), 5000);
	CHECK_INT(arm_retry_after_parse(" 10 ", 0), 10000);
	CHECK_INT(arm_retry_after_parse("0", 0), 0);
	CHECK_INT(arm_retry_after_parse("86400", 0), 86400000);
}

TEST(retry_after_http_date)
{
	/* Wed, 21 Oct 2015 07:28:00 GMT = 1445412480 */
	int64_t at = 1445412480LL * 1000;
	CHECK_INT(arm_retry_after_parse("Wed, 21 Oct 2015 07:28:00 GMT", at - 30000), 30000);
	CHECK_INT(arm_retry_after_parse("Wed, 21 Oct 2015 07:28:00 GMT", at + 5000), 0);
	CHECK_INT(arm_retry_after_parse("Wed, 21 Oct 2015 07:28:00 GMT", at - 2LL * 86400000), -1);
}

TEST(retry_after_garbage)
{
	CHECK_INT(arm_retry_after_parse(NULL, 0), -1);
	CHECK_INT(arm_retry_after_parse("", 0), -1);
	CHECK_INT(arm_retry_after_parse("soon", 0), -1);
	CHECK_INT(arm_retry_after_parse("-1", 0), -1);
	CHECK_INT(arm_retry_after_parse("1.5", 0), -1);
	CHECK_INT(arm_retry_after_parse("99999999999999999999", 0), -1);
	CHECK_INT(arm_retry_after_parse("86401", 0), -1);
	CHECK_INT(arm_retry_after_parse("Wed, 21 Oct 2015 07:28:00", 0), -1);
	CHECK_INT(arm_retry_after_parse("Wed, 21 Oct 2015 07:28:00 GMT trailing", 0), -1);
}

TEST(backoff_and_retryable)
{
	CHECK_INT(arm_backoff_ms(1, 800, 60000, 0.0), 640);
	CHECK_INT(arm_backoff_ms(2, 800, 60000, 0.0), 1920);
	CHECK_INT(arm_backoff_ms(3, 800, 60000, 0.999999), 7279);
	CHECK_INT(arm_backoff_ms(10, 800, 60000, 0.5), 60000);
	CHECK(arm_status_retryable(408) && arm_status_retryable(429) && arm_status_retryable(500));
	CHECK(arm_status_retryable(502) && arm_status_retryable(503) && arm_status_retryable(504));
	CHECK(!arm_status_retryable(400) && !arm_status_retryable(401) && !arm_status_retryable(404));
	CHECK(!arm_status_retryable(409) && !arm_status_retryable(412) && !arm_status_retryable(501));
}

TEST(uuid_shape)
{
	char a[37], b[37];
	arm_uuid(a);
	arm_uuid(b);
	CHECK_INT(strlen(a), 36);
	CHECK(a[8] == '-' && a[13] == '-' && a[18] == '-' && a[23] == '-');
	CHECK(a[14] == '4');
	CHECK(strchr("89ab", a[19]) != NULL);
	CHECK(strcmp(a, b) != 0);
}

/* ---- pure: long-running operations ---- */

static void fake_response(struct arm_response *r, long status, const char *aao, const char *loc, long ra,
			  const char *body)
{
	arm_response_init(r);
	r->status = status;
	r->azure_async_operation = xstrdup(aao);
	r->location = xstrdup(loc);
	r->retry_after_ms = ra;
	if (body)
		ctl_buf_puts(&r->body, body);
}

TEST(lro_begin_201_async_operation)
{
	struct arm_response r;
	struct arm_operation *op = NULL;
	fake_response(&r, 201, "https://management.azure.com/op/1?api-version=x", NULL, 10000,
		      "{\"properties\":{\"provisioningState\":\"Creating\"}}");
	CHECK_INT(arm_operation_begin(&op, "PUT", "https://management.azure.com/pool", &r), 0);
	CHECK(op != NULL);
	if (op) {
		CHECK_INT(op->kind, ARM_LRO_ASYNC_OPERATION);
		CHECK_STR(op->poll_url, "https://management.azure.com/op/1?api-version=x");
		CHECK_STR(op->resource_url, "https://management.azure.com/pool");
		CHECK_STR(op->method, "PUT");
		CHECK_INT(op->retry_after_ms, 10000);
	}
	arm_operation_free(op);
	arm_response_dispose(&r);
}

TEST(lro_begin_202_location)
{
	struct arm_response r;
	struct arm_operation *op = NULL;
	fake_response(&r, 202, NULL, "https://management.azure.com/loc/1", -1, NULL);
	CHECK_INT(arm_operation_begin(&op, "DELETE", "https://management.azure.com/pool", &r), 0);
	CHECK(op && op->kind == ARM_LRO_LOCATION);
	if (op) {
		CHECK_STR(op->poll_url, "https://management.azure.com/loc/1");
		CHECK_INT(op->retry_after_ms, ARM_LRO_DEFAULT_POLL_MS);
	}
	arm_operation_free(op);
	arm_response_dispose(&r);
}

TEST(lro_begin_sync_done)
{
	struct arm_response r;
	struct arm_operation *op = (void *)1;
	fake_response(&r, 200, NULL, NULL, -1, "{\"properties\":{\"provisioningState\":\"Succeeded\",\"count\":1}}");
	CHECK_INT(arm_operation_begin(&op, "PUT", "u", &r), 0);
	CHECK(op == NULL);
	arm_response_dispose(&r);
	/* No provisioningState means Succeeded. */
	fake_response(&r, 200, NULL, NULL, -1, "{\"properties\":{}}");
	CHECK_INT(arm_operation_begin(&op, "PATCH", "u", &r), 0);
	CHECK(op == NULL);
	arm_response_dispose(&r);
	/* 204: delete done (or nothing to delete). */
	fake_response(&r, 204, NULL, NULL, -1, NULL);
	CHECK_INT(arm_operation_begin(&op, "DELETE", "u", &r), 0);
	CHECK(op == NULL);
	arm_response_dispose(&r);
	/* 200 to a POST (2025 scheduleRun) is the answer itself. */
	fake_response(&r, 200, NULL, NULL, -1, "{\"properties\":{\"provisioningState\":\"Creating\"}}");
	CHECK_INT(arm_operation_begin(&op, "POST", "u", &r), 0);
	CHECK(op == NULL);
	arm_response_dispose(&r);
}

TEST(lro_begin_body_polling)
{
	struct arm_response r;
	struct arm_operation *op = NULL;
	/* 2019-style PUT: 201 Creating, no headers. */
	fake_response(&r, 201, NULL, NULL, -1, "{\"properties\":{\"provisioningState\":\"Creating\"}}");
	CHECK_INT(arm_operation_begin(&op, "PUT", "https://h/pool", &r), 0);
	CHECK(op && op->kind == ARM_LRO_BODY && op->poll_url == NULL);
	arm_operation_free(op);
	arm_response_dispose(&r);
	/* A 202 DELETE with neither header: watch the resource go (the CLI's way). */
	fake_response(&r, 202, NULL, NULL, 5000, NULL);
	CHECK_INT(arm_operation_begin(&op, "DELETE", "https://h/pool", &r), 0);
	CHECK(op && op->kind == ARM_LRO_BODY);
	arm_operation_free(op);
	arm_response_dispose(&r);
	/* ... but a 202 POST with nothing to follow is an error. */
	fake_response(&r, 202, NULL, NULL, -1, NULL);
	CHECK_INT(arm_operation_begin(&op, "POST", "https://h/x", &r), CTL_EINVALID);
	CHECK(op == NULL);
	arm_response_dispose(&r);
}

TEST(lro_status_bodies)
{
	enum arm_lro_state st;
	char *code = NULL, *msg = NULL;
	CHECK_INT(arm_operation_status_parse(&st, &code, &msg, "{\"status\":\"InProgress\"}"), 0);
	CHECK_INT(st, ARM_LRO_IN_PROGRESS);
	/* ACR's own in-progress word. */
	CHECK_INT(arm_operation_status_parse(&st, &code, &msg, "{\"id\":\"x\",\"name\":\"g\",\"status\":\"Creating\","
							       "\"startTime\":\"2019-01-01T00:00:00Z\"}"), 0);
	CHECK_INT(st, ARM_LRO_IN_PROGRESS);
	CHECK_INT(arm_operation_status_parse(&st, &code, &msg, "{\"status\":\"Succeeded\"}"), 0);
	CHECK_INT(st, ARM_LRO_SUCCEEDED);
	CHECK(code == NULL && msg == NULL);
	CHECK_INT(arm_operation_status_parse(&st, &code, &msg, "{\"status\":\"Failed\",\"error\":{\"code\":"
							       "\"QuotaExceeded\",\"message\":\"16 vCPU\"}}"), 0);
	CHECK_INT(st, ARM_LRO_FAILED);
	CHECK_STR(code, "QuotaExceeded");
	CHECK_STR(msg, "16 vCPU");
	free(code);
	free(msg);
	CHECK_INT(arm_operation_status_parse(&st, &code, &msg, "{\"status\":\"Canceled\"}"), 0);
	CHECK_INT(st, ARM_LRO_CANCELED);
	CHECK_STR(code, "OperationCanceled");
	free(code);
	free(msg);
	CHECK_INT(arm_operation_status_parse(&st, &code, &msg, "not json"), CTL_EINVALID);
	CHECK_INT(arm_operation_status_parse(&st, &code, &msg, "{\"status\":3}"), CTL_EINVALID);
	CHECK_INT(arm_lro_status_state("succeeded"), ARM_LRO_SUCCEEDED);
	CHECK_INT(arm_lro_status_state("Accepted"), ARM_LRO_IN_PROGRESS);
}

TEST(lro_kind_names_round_trip)
{
	for (int k = ARM_LRO_ASYNC_OPERATION; k <= ARM_LRO_BODY; k++) {
		enum arm_lro_kind back;
		CHECK_INT(arm_lro_kind_parse(&back, arm_lro_kind_name((enum arm_lro_kind)k)), 0);
		CHECK_INT(back, k);
	}
	enum arm_lro_kind x;
	CHECK_INT(arm_lro_kind_parse(&x, "Bogus"), CTL_EINVALID);
	struct arm_operation *op = NULL;
	CHECK_INT(arm_operation_new(&op, ARM_LRO_LOCATION, "DELETE", NULL, "u"), CTL_EINVALID);
	CHECK_INT(arm_operation_new(&op, ARM_LRO_BODY, "DELETE", NULL, "u"), 0);
	arm_operation_free(op);
}

/* ---- pure: resources ---- */

TEST(agent_pool_json)
{
	const char *body = "{\"id\":\"/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/"
			   "registries/r/agentPools/build-s2\",\"name\":\"build-s2\",\"type\":\"Microsoft."
			   "ContainerRegistry/registries/agentPools\",\"location\":\"eastus\",\"tags\":{\"owner\":"
			   "\"team-a\",\"env\":\"ci\"},\"properties\":{\"count\":2,\"tier\":\"S2\",\"os\":\"Linux\","
			   "\"virtualNetworkSubnetResourceId\":\"/sub/net\",\"provisioningState\":\"Creating\"}}";
	cJSON *o = cJSON_Parse(body);
	struct arm_agent_pool p;
	CHECK_INT(arm_agent_pool_from_json(&p, o), 0);
	CHECK_STR(p.name, "build-s2");
	CHECK_STR(p.location, "eastus");
	CHECK_STR(p.tier, "S2");
	CHECK_STR(p.os, "Linux");
	CHECK_STR(p.subnet_id, "/sub/net");
	CHECK_STR(p.provisioning_state, "Creating");
	CHECK_INT(p.count, 2);
	CHECK_INT(p.ntags, 2);
	CHECK_STR(p.tags[0].name, "owner");
	CHECK_STR(p.tags[0].value, "team-a");
	cJSON *back = arm_agent_pool_to_json(&p);
	char *text = cJSON_PrintUnformatted(back);
	CHECK_STR(text, "{\"location\":\"eastus\",\"tags\":{\"owner\":\"team-a\",\"env\":\"ci\"},\"properties\":"
			"{\"count\":2,\"tier\":\"S2\",\"os\":\"Linux\",\"virtualNetworkSubnetResourceId\":\"/sub/net\"}}");
	cJSON_free(text);
	cJSON_Delete(back);
	arm_agent_pool_dispose(&p);
	cJSON_Delete(o);
	/* Scale to zero is a count, not an absence. */
	o = cJSON_Parse("{\"properties\":{\"count\":0}}");
	CHECK_INT(arm_agent_pool_from_json(&p, o), 0);
	CHECK_INT(p.count, 0);
	CHECK(p.provisioning_state == NULL);
	arm_agent_pool_dispose(&p);
	cJSON_Delete(o);
	CHECK_INT(arm_agent_pool_from_json(&p, NULL), CTL_EINVALID);
}

TEST(run_json)
{
	const char *body = "{\"id\":\"/x/runs/cb1\",\"name\":\"cb1\",\"properties\":{\"runId\":\"cb1\",\"status\":"
			   "\"Succeeded\",\"runType\":\"QuickBuild\",\"agentPoolName\":\"build-s2\",\"createTime\":"
			   "\"2024-01-01T00:00:00Z\",\"startTime\":\"2024-01-01T00:00:05Z\",\"finishTime\":"
			   "\"2024-01-01T00:01:00Z\",\"outputImages\":[{\"registry\":\"r.azurecr.io\",\"repository\":"
			   "\"app\",\"tag\":\"v1\",\"digest\":\"sha256:ab\"}],\"runErrorMessage\":\"none\"}}";
	cJSON *o = cJSON_Parse(body);
	struct arm_run r;
	CHECK_INT(arm_run_from_json(&r, o), 0);
	CHECK_STR(r.run_id, "cb1");
	CHECK_STR(r.status, "Succeeded");
	CHECK_STR(r.agent_pool_name, "build-s2");
	CHECK_STR(r.finish_time, "2024-01-01T00:01:00Z");
	CHECK_STR(r.run_error_message, "none");
	CHECK_INT(r.noutput_images, 1);
	CHECK_STR(r.output_images[0].digest, "sha256:ab");
	CHECK(arm_run_status_terminal(r.status));
	CHECK(!arm_run_status_terminal("Running") && !arm_run_status_terminal("Queued"));
	CHECK(arm_run_status_terminal("Timeout") && arm_run_status_terminal("Error"));
	arm_run_dispose(&r);
	cJSON_Delete(o);
}

/* ---- wire ---- */

struct rig {
	struct canned_server s;
	struct fake_clock clk;
	struct identity *id;
	struct arm_client *c;
	int metrics_calls;
	char metrics_last[128];
	struct arm_registry_ref ref;
};

static void on_metrics(const char *method, const char *operation, long status, double seconds, void *arg)
{
	struct rig *r = arg;
	r->metrics_calls++;
	snprintf(r->metrics_last, sizeof(r->metrics_last), "%s %s %ld %d", method, operation, status,
		 seconds >= 0 && seconds < 30);
}

static void rig_start(struct rig *r, int max_attempts, long budget_ms)
{
	memset(r, 0, sizeof(*r));
	canned_start(&r->s);
	r->clk.now_ms = 1700000000000LL;
	struct identity_options io = {
		.kind = IDENTITY_SERVICE_PRINCIPAL, .tenant_id = "tenant", .client_id = "app",
		.client_secret = "topsecret-value", .authority_host = r->s.base,
		.clock = fake_clock_s, .sleep = fake_sleep, .clock_arg = &r->clk,
	};
	if (identity_new(&r->id, &io))
		abort();
	struct arm_options ao = {
		.endpoint = r->s.base, .max_attempts = max_attempts, .budget_ms = budget_ms,
		.metrics = on_metrics, .metrics_arg = r,
		.sleep = fake_sleep, .clock = fake_clock_ms, .clock_arg = &r->clk,
	};
	if (arm_client_new(&r->c, r->id, &ao))
		abort();
	r->ref = (struct arm_registry_ref){"sub-1", "rg-1", "myregistry"};
}

static void rig_stop(struct rig *r)
{
	arm_client_free(r->c);
	identity_free(r->id);
	canned_stop(&r->s);
}

#define POOL_PATH "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.ContainerRegistry/registries/myregistry/agentPools"
#define POOL_BODY(state, count) "{\"name\":\"p1\",\"location\":\"eastus\",\"properties\":{\"count\":" #count \
	",\"tier\":\"S1\",\"os\":\"Linux\",\"provisioningState\":\"" state "\"}}"

TEST(wire_request_headers)
{
	struct rig r;
	struct arm_agent_pool *p = NULL;
	rig_start(&r, 0, 0);
	canned_reply(&r.s, 0, 200, NULL, POOL_BODY("Succeeded", 3));
	CHECK_INT(arm_agent_pool_get(&p, r.c, &r.ref, "p1"), 0);
	CHECK(p && p->count == 3);
	const char *req = canned_request(&r.s, 0, 0);
	CHECK(req && strncmp(req, "GET " POOL_PATH "/p1?api-version=" ARM_API_VERSION " HTTP/1.1\r\n",
			     strlen("GET " POOL_PATH "/p1?api-version=" ARM_API_VERSION " HTTP/1.1\r\n")) == 0);
	char *h = canned_header(req, "Authorization");
	CHECK_STR(h, "Bearer tok-default");
	free(h);
	h = canned_header(req, "User-Agent");
	CHECK_STR(h, "acrpool/" ACRPOOL_VERSION);
	free(h);
	h = canned_header(req, "x-ms-client-request-id");
	CHECK(h && strlen(h) == 36 && h[14] == '4');
	free(h);
	h = canned_header(req, "Content-Type");
	CHECK(h == NULL); /* no body, no type */
	free(h);
	CHECK_INT(r.metrics_calls, 1);
	CHECK_STR(r.metrics_last, "GET agentPools.get 200 1");
	arm_agent_pool_free(p);
	rig_stop(&r);
}

TEST(wire_response_ids_kept)
{
	struct rig r;
	struct arm_response resp;
	rig_start(&r, 0, 0);
	canned_reply(&r.s, 0, 404, NULL, "{\"error\":{\"code\":\"ResourceNotFound\",\"message\":\"gone\"}}");
	canned_reply(&r.s, 0, 200, NULL, "{}");
	arm_response_init(&resp);
	CHECK_INT(arm_request(&resp, r.c, "GET", "/x", "test.get", NULL), CTL_ENOTFOUND);
	CHECK_STR(ctl_error_last()->reason, "ResourceNotFound");
	CHECK_STR(ctl_error_last()->request_id, "req-404-0");
	CHECK_STR(resp.request_id, "req-404-0");
	CHECK_STR(resp.correlation_id, "corr-1");
	CHECK_INT(resp.status, 404);
	CHECK_INT(resp.attempts, 1);
	CHECK_INT(arm_request(&resp, r.c, "GET", "/y?x=1", "test.get", NULL), 0);
	CHECK_STR(resp.request_id, "req-200-1");
	const char *req = canned_request(&r.s, 0, 1);
	CHECK(req && strncmp(req, "GET /y?x=1&api-version=" ARM_API_VERSION " ", 24 + strlen(ARM_API_VERSION)) == 0);
	char *h = canned_header(req, "x-ms-client-request-id");
	CHECK_STR(h, resp.client_request_id);
	free(h);
	arm_response_dispose(&resp);
	rig_stop(&r);
}

TEST(wire_429_retry_after_then_200)
{
	struct rig r;
	struct arm_response resp;
	rig_start(&r, 0, 0);
	canned_reply(&r.s, 0, 429, "Retry-After: 7\r\n", "{\"error\":{\"code\":\"TooManyRequests\",\"message\":\"slow\"}}");
	canned_reply(&r.s, 0, 200, NULL, "{\"ok\":true}");
	arm_response_init(&resp);
	CHECK_INT(arm_request(&resp, r.c, "GET", "/x", "test.get", NULL), 0);
	CHECK_INT(resp.attempts, 2);
	CHECK_INT(r.clk.nsleeps, 1);
	CHECK_INT(r.clk.sleeps[0], 7000);
	CHECK_INT(resp.slept_ms, 7000);
	CHECK_STR(ctl_buf_str(&resp.body), "{\"ok\":true}");
	CHECK_INT(r.metrics_calls, 2);
	/* Each attempt is its own request with its own id. */
	char *a = canned_header(canned_request(&r.s, 0, 0), "x-ms-client-request-id");
	char *b = canned_header(canned_request(&r.s, 0, 1), "x-ms-client-request-id");
	CHECK(a && b && strcmp(a, b) != 0);
	free(a);
	free(b);
	arm_response_dispose(&resp);
	rig_stop(&r);
}

TEST(wire_retry_after_ms_headers)
{
	struct rig r;
	struct arm_response resp;
	rig_start(&r, 0, 0);
	canned_reply(&r.s, 0, 503, "Retry-After: 9\r\nretry-after-ms: 250\r\n", "");
	canned_reply(&r.s, 0, 503, "x-ms-retry-after-ms: 300\r\n", "");
	canned_reply(&r.s, 0, 200, NULL, "{}");
	arm_response_init(&resp);
	CHECK_INT(arm_request(&resp, r.c, "GET", "/x", "test.get", NULL), 0);
	CHECK_INT(r.clk.nsleeps, 2);
	CHECK_INT(r.clk.sleeps[0], 250);
	CHECK_INT(r.clk.sleeps[1], 300);
	arm_response_dispose(&resp);
	rig_stop(&r);
}

TEST(wire_503_twice_then_success)
{
	struct rig r;
	struct arm_response resp;
	rig_start(&r, 0, 0);
	canned_reply(&r.s, 0, 503, NULL, "");
	canned_reply(&r.s, 0, 503, NULL, "{\"error\":{\"code\":\"ServiceUnavailable\",\"message\":\"x\"}}");
	canned_reply(&r.s, 0, 200, NULL, "{}");
	arm_response_init(&resp);
	CHECK_INT(arm_request(&resp, r.c, "PUT", "/x", "test.put", "{\"a\":1}"), 0);
	CHECK_INT(resp.attempts, 3);
	CHECK_INT(r.clk.nsleeps, 2);
	/* (2^n - 1) x 800 ms x [0.8, 1.3) */
	CHECK(r.clk.sleeps[0] >= 640 && r.clk.sleeps[0] < 1040);
	CHECK(r.clk.sleeps[1] >= 1920 && r.clk.sleeps[1] < 3120);
	/* The body is sent again on every attempt. */
	for (size_t i = 0; i < 3; i++) {
		const char *req = canned_request(&r.s, 0, i);
		CHECK(req && strcmp(canned_body(req), "{\"a\":1}") == 0);
		char *ct = canned_header(req, "Content-Type");
		CHECK_STR(ct, "application/json");
		free(ct);
	}
	arm_response_dispose(&resp);
	rig_stop(&r);
}

TEST(wire_429_storm_gives_up)
{
	struct rig r;
	struct arm_response resp;
	rig_start(&r, 10, 45000);
	for (int i = 0; i < 20; i++)
		canned_reply(&r.s, 0, 429, "Retry-After: 20\r\n",
			     "{\"error\":{\"code\":\"TooManyRequests\",\"message\":\"excessive volume\"}}");
	arm_response_init(&resp);
	CHECK_INT(arm_request(&resp, r.c, "GET", "/x", "test.get", NULL), CTL_EUNAVAIL);
	/* 20 s + 20 s fit the 45 s budget; a third wait would not. */
	CHECK_INT(resp.attempts, 3);
	CHECK_INT(r.clk.nsleeps, 2);
	const struct ctl_error *e = ctl_error_last();
	CHECK_STR(e->reason, "TooManyRequests");
	CHECK_INT(e->http_status, 429);
	CHECK_INT(e->retry_after_ms, 20000);
	CHECK_STR(e->request_id, "req-429-2");
	arm_response_dispose(&resp);
	rig_stop(&r);
}

TEST(wire_attempts_bound)
{
	struct rig r;
	struct arm_response resp;
	rig_start(&r, 3, 0);
	for (int i = 0; i < 5; i++)
		canned_reply(&r.s, 0, 500, NULL, "");
	arm_response_init(&resp);
	CHECK_INT(arm_request(&resp, r.c, "GET", "/x", "test.get", NULL), CTL_EUNAVAIL);
	CHECK_INT(resp.attempts, 3);
	CHECK_INT(r.clk.nsleeps, 2);
	CHECK(ctl_error_last()->retry_after_ms > 0);
	arm_response_dispose(&resp);
	rig_stop(&r);
}

TEST(wire_long_retry_after_returns_at_once)
{
	struct rig r;
	struct arm_response resp;
	rig_start(&r, 0, 0);
	canned_reply(&r.s, 0, 429, "Retry-After: 300\r\n", "");
	arm_response_init(&resp);
	CHECK_INT(arm_request(&resp, r.c, "GET", "/x", "test.get", NULL), CTL_EUNAVAIL);
	CHECK_INT(resp.attempts, 1);
	CHECK_INT(r.clk.nsleeps, 0);
	CHECK_INT(ctl_error_last()->retry_after_ms, 300000);
	arm_response_dispose(&resp);
	rig_stop(&r);
}

TEST(wire_once_503_not_repeated_keeps_retry_after)
{
	struct rig r;
	struct arm_run *run = NULL;
	struct arm_operation *op = NULL;
	int unknown = 0;
	rig_start(&r, 0, 0);
	canned_reply(&r.s, 0, 503, "Retry-After: 4\r\n",
		     "{\"error\":{\"code\":\"ServiceUnavailable\",\"message\":\"busy\"}}");
	cJSON *req = cJSON_Parse("{\"type\":\"TaskRunRequest\",\"taskId\":\"t\"}");
	/* Azure may have acted on the scheduleRun: it is not sent again here,
	 * but the reconcile loop is told when Azure asked to be tried again. */
	CHECK_INT(arm_run_schedule_once(&run, &op, &unknown, r.c, &r.ref, req), CTL_EUNAVAIL);
	CHECK(canned_request(&r.s, 0, 0) != NULL && canned_request(&r.s, 0, 1) == NULL);
	CHECK_INT(unknown, 1);
	CHECK_INT(r.clk.nsleeps, 0);
	CHECK_STR(ctl_error_last()->reason, "ServiceUnavailable");
	CHECK_INT(ctl_error_last()->retry_after_ms, 4000);
	cJSON_Delete(req);
	arm_operation_free(op);
	arm_run_free(run);
	rig_stop(&r);
}

TEST(wire_401_refreshes_token_once)
{
	struct rig r;
	struct arm_response resp;
	rig_start(&r, 0, 0);
	canned_reply(&r.s, 1, 200, NULL, "{\"access_token\":\"tok-1\",\"expires_in\":3600}");
	canned_reply(&r.s, 1, 200, NULL, "{\"access_token\":\"tok-2\",\"expires_in\":3600}");
	canned_reply(&r.s, 0, 401, NULL, "{\"error\":{\"code\":\"ExpiredAuthenticationToken\",\"message\":\"expired\"}}");
	canned_reply(&r.s, 0, 200, NULL, "{}");
	arm_response_init(&resp);
	CHECK_INT(arm_request(&resp, r.c, "GET", "/x", "test.get", NULL), 0);
	CHECK_INT(r.s.ntoken_requests, 2);
	CHECK_INT(r.clk.nsleeps, 0);
	char *a = canned_header(canned_request(&r.s, 0, 0), "Authorization");
	char *b = canned_header(canned_request(&r.s, 0, 1), "Authorization");
	CHECK_STR(a, "Bearer tok-1");
	CHECK_STR(b, "Bearer tok-2");
	free(a);
	free(b);
	arm_response_dispose(&resp);
	rig_stop(&r);
}

TEST(wire_401_twice_is_auth_error)
{
	struct rig r;
	struct arm_response resp;
	rig_start(&r, 0, 0);
	canned_reply(&r.s, 0, 401, NULL, "{\"error\":{\"code\":\"InvalidAuthenticationToken\",\"message\":\"no\"}}");
	canned_reply(&r.s, 0, 401, NULL, "{\"error\":{\"code\":\"InvalidAuthenticationToken\",\"message\":\"no\"}}");
	arm_response_init(&resp);
	CHECK_INT(arm_request(&resp, r.c, "GET", "/x", "test.get", NULL), CTL_EAUTH);
	CHECK_STR(ctl_error_last()->reason, "InvalidAuthenticationToken");
	CHECK_INT(r.s.narm_requests, 2);
	arm_response_dispose(&resp);
	rig_stop(&r);
}

TEST(wire_secret_never_in_error)
{
	struct rig r;
	struct arm_agent_pool *p = NULL;
	rig_start(&r, 0, 0);
	canned_reply(&r.s, 1, 401, NULL,
		     "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client "
		     "secret provided (topsecret-value).\",\"error_codes\":[7000215]}");
	CHECK_INT(arm_agent_pool_get(&p, r.c, &r.ref, "p1"), CTL_EAUTH);
	const struct ctl_error *e = ctl_error_last();
	CHECK_STR(e->reason, "AADSTS7000215");
	CHECK(strstr(e->message, "topsecret") == NULL);
	CHECK(strstr(e->message, "Invalid client secret provided") != NULL);
	CHECK_INT(r.s.narm_requests, 0);
	/* It was sent, form-encoded, to the token endpoint only. */
	CHECK(strstr(canned_body(canned_request(&r.s, 1, 0)), "client_secret=topsecret-value") != NULL);
	rig_stop(&r);
}

TEST(wire_connection_refused_retries)
{
	struct fake_clock clk = {.now_ms = 0};
	struct canned_server s;
	struct identity *id = NULL;
	struct arm_client *c = NULL;
	struct arm_response resp;
	canned_start(&s);
	struct identity_options io = {.kind = IDENTITY_SERVICE_PRINCIPAL, .tenant_id = "t", .client_id = "c",
				      .client_secret = "s", .authority_host = s.base};
	CHECK_INT(identity_new(&id, &io), 0);
	char *dead = xasprintf("http://127.0.0.1:%d/", canned_dead_port());
	struct arm_options ao = {.endpoint = dead, .max_attempts = 3, .sleep = fake_sleep, .clock = fake_clock_ms,
				 .clock_arg = &clk};
	CHECK_INT(arm_client_new(&c, id, &ao), 0);
	arm_response_init(&resp);
	CHECK_INT(arm_request(&resp, c, "GET", "/x", "test.get", NULL), CTL_EUNAVAIL);
	CHECK_INT(resp.attempts, 3);
	CHECK_INT(clk.nsleeps, 2);
	CHECK_STR(ctl_error_last()->reason, "ConnectionFailed");
	CHECK(ctl_error_last()->retry_after_ms > 0);
	arm_response_dispose(&resp);
	arm_client_free(c);
	identity_free(id);
	canned_stop(&s);
	free(dead);
}

TEST(wire_lro_create_async_poll)
{
	struct rig r;
	struct arm_agent_pool *p = NULL, desired = {.location = "eastus", .tier = "S2", .os = "Linux", .count = 2};
	struct arm_operation *op = NULL;
	enum arm_lro_state st;
	cJSON *result = NULL;
	rig_start(&r, 0, 0);
	char *aao = xasprintf("Azure-AsyncOperation: %s/op/123?api-version=" ARM_API_VERSION "\r\nRetry-After: 10\r\n",
			      r.s.base);
	canned_reply(&r.s, 0, 201, aao, POOL_BODY("Creating", 2));
	canned_reply(&r.s, 0, 200, "Retry-After: 5\r\n", "{\"status\":\"InProgress\"}");
	canned_reply(&r.s, 0, 200, NULL, "{\"status\":\"Succeeded\"}");
	canned_reply(&r.s, 0, 200, NULL, POOL_BODY("Succeeded", 2));

	CHECK_INT(arm_agent_pool_create(&p, &op, r.c, &r.ref, "p1", &desired), 0);
	CHECK(p && p->provisioning_state && strcmp(p->provisioning_state, "Creating") == 0);
	CHECK(op != NULL);
	const char *req = canned_request(&r.s, 0, 0);
	CHECK(req && strncmp(req, "PUT " POOL_PATH "/p1?api-version=", strlen("PUT " POOL_PATH "/p1?api-version=")) == 0);
	CHECK_STR(canned_body(req), "{\"location\":\"eastus\",\"properties\":{\"count\":2,\"tier\":\"S2\",\"os\":\"Linux\"}}");
	if (op) {
		CHECK_INT(op->kind, ARM_LRO_ASYNC_OPERATION);
		CHECK_INT(op->retry_after_ms, 10000);
		/* No waiting inside the client: one look per call. */
		CHECK_INT(arm_operation_poll(&st, &result, r.c, op), 0);
		CHECK_INT(st, ARM_LRO_IN_PROGRESS);
		CHECK(result == NULL);
		CHECK_INT(op->retry_after_ms, 5000);
		CHECK_INT(arm_operation_poll(&st, &result, r.c, op), 0);
		CHECK_INT(st, ARM_LRO_SUCCEEDED);
		CHECK(result != NULL);
		struct arm_agent_pool done;
		CHECK_INT(arm_agent_pool_from_json(&done, result), 0);
		CHECK_STR(done.provisioning_state, "Succeeded");
		arm_agent_pool_dispose(&done);
		req = canned_request(&r.s, 0, 1);
		CHECK(req && strncmp(req, "GET /op/123?api-version=" ARM_API_VERSION " ", 25 + strlen(ARM_API_VERSION)) == 0);
		/* The final GET is on the resource itself. */
		req = canned_request(&r.s, 0, 3);
		CHECK(req && strncmp(req, "GET " POOL_PATH "/p1?", strlen("GET " POOL_PATH "/p1?")) == 0);
	}
	CHECK_INT(r.clk.nsleeps, 0);
	cJSON_Delete(result);
	arm_operation_free(op);
	arm_agent_pool_free(p);
	free(aao);
	rig_stop(&r);
}

TEST(wire_lro_failed)
{
	struct rig r;
	struct arm_operation *op = NULL;
	enum arm_lro_state st;
	rig_start(&r, 0, 0);
	char *url = xasprintf("%s/op/9?api-version=x", r.s.base);
	char *res = xasprintf("%s" POOL_PATH "/p1?api-version=x", r.s.base);
	canned_reply(&r.s, 0, 200, NULL, "{\"status\":\"Failed\",\"error\":{\"code\":\"QuotaExceeded\","
				       "\"message\":\"vCPU quota of 16 exceeded\"}}");
	/* As a reconciler would after a restart: rebuilt from stored strings. */
	CHECK_INT(arm_operation_new(&op, ARM_LRO_ASYNC_OPERATION, "PUT", url, res), 0);
	CHECK_INT(arm_operation_poll(&st, NULL, r.c, op), 0);
	CHECK_INT(st, ARM_LRO_FAILED);
	CHECK_STR(op->error_code, "QuotaExceeded");
	CHECK_STR(op->error_message, "vCPU quota of 16 exceeded");
	CHECK_STR(ctl_error_last()->reason, "QuotaExceeded");
	CHECK_INT(r.s.narm_requests, 1);
	arm_operation_free(op);
	free(url);
	free(res);
	rig_stop(&r);
}

TEST(wire_lro_delete_location)
{
	struct rig r;
	struct arm_operation *op = NULL;
	enum arm_lro_state st;
	rig_start(&r, 0, 0);
	char *loc = xasprintf("Location: %s/loc/1?api-version=x\r\nRetry-After: 15\r\n", r.s.base);
	char *loc2 = xasprintf("Location: %s/loc/2?api-version=x\r\n", r.s.base);
	canned_reply(&r.s, 0, 202, loc, NULL);
	canned_reply(&r.s, 0, 202, loc2, NULL);
	canned_reply(&r.s, 0, 204, NULL, NULL);
	CHECK_INT(arm_agent_pool_delete(&op, r.c, &r.ref, "p1"), 0);
	CHECK(op && op->kind == ARM_LRO_LOCATION);
	if (op) {
		CHECK_INT(op->retry_after_ms, 15000);
		CHECK_INT(arm_operation_poll(&st, NULL, r.c, op), 0);
		CHECK_INT(st, ARM_LRO_IN_PROGRESS);
		CHECK(strstr(op->poll_url, "/loc/2") != NULL);
		CHECK_INT(op->retry_after_ms, ARM_LRO_DEFAULT_POLL_MS);
		CHECK_INT(arm_operation_poll(&st, NULL, r.c, op), 0);
		CHECK_INT(st, ARM_LRO_SUCCEEDED);
		const char *req = canned_request(&r.s, 0, 2);
		CHECK(req && strncmp(req, "GET /loc/2?", 11) == 0);
	}
	arm_operation_free(op);
	free(loc);
	free(loc2);
	rig_stop(&r);
}

TEST(wire_delete_already_gone)
{
	struct rig r;
	struct arm_operation *op = (void *)1;
	rig_start(&r, 0, 0);
	canned_reply(&r.s, 0, 204, NULL, NULL);
	canned_reply(&r.s, 0, 404, NULL, "{\"error\":{\"code\":\"ResourceNotFound\",\"message\":\"m\"}}");
	CHECK_INT(arm_agent_pool_delete(&op, r.c, &r.ref, "p1"), 0);
	CHECK(op == NULL);
	CHECK_INT(arm_task_delete(&op, r.c, &r.ref, "task1"), 0);
	CHECK(op == NULL);
	CHECK(strncmp(canned_request(&r.s, 0, 0), "DELETE " POOL_PATH "/p1?", strlen("DELETE " POOL_PATH "/p1?")) == 0);
	rig_stop(&r);
}

TEST(wire_lro_body_polling_delete)
{
	struct rig r;
	struct arm_operation *op = NULL;
	enum arm_lro_state st;
	rig_start(&r, 0, 0);
	char *res = xasprintf("%s" POOL_PATH "/p1?api-version=x", r.s.base);
	canned_reply(&r.s, 0, 200, NULL, POOL_BODY("Deleting", 1));
	canned_reply(&r.s, 0, 404, NULL, "{\"error\":{\"code\":\"ResourceNotFound\",\"message\":\"m\"}}");
	CHECK_INT(arm_operation_new(&op, ARM_LRO_BODY, "DELETE", NULL, res), 0);
	CHECK_INT(arm_operation_poll(&st, NULL, r.c, op), 0);
	CHECK_INT(st, ARM_LRO_IN_PROGRESS);
	CHECK_INT(arm_operation_poll(&st, NULL, r.c, op), 0);
	CHECK_INT(st, ARM_LRO_SUCCEEDED);
	arm_operation_free(op);
	free(res);
	rig_stop(&r);
}

TEST(wire_foreign_poll_url_refused)
{
	struct rig r;
	struct arm_operation *op = NULL;
	enum arm_lro_state st;
	rig_start(&r, 0, 0);
	CHECK_INT(arm_operation_new(&op, ARM_LRO_ASYNC_OPERATION, "PUT", "https://evil.example/steal?sig=abc",
				    "https://evil.example/r"), 0);
	CHECK_INT(arm_operation_poll(&st, NULL, r.c, op), CTL_EINVALID);
	CHECK_STR(ctl_error_last()->reason, "ForeignPollUrl");
	CHECK(strstr(ctl_error_last()->message, "sig=abc") == NULL);
	CHECK_INT(r.s.nrequests, 0);
	arm_operation_free(op);
	rig_stop(&r);
}

TEST(wire_list_follows_next_link)
{
	struct rig r;
	struct arm_agent_pool *items = NULL;
	size_t n = 0;
	rig_start(&r, 0, 0);
	char *page1 = xasprintf("{\"value\":[" POOL_BODY("Succeeded", 1) "," POOL_BODY("Succeeded", 2) "],"
				"\"nextLink\":\"%s" POOL_PATH "?api-version=x&$skipToken=2\"}", r.s.base);
	canned_reply(&r.s, 0, 200, NULL, page1);
	canned_reply(&r.s, 0, 200, NULL, "{\"value\":[" POOL_BODY("Succeeded", 3) "]}");
	CHECK_INT(arm_agent_pool_list(&items, &n, r.c, &r.ref), 0);
	CHECK_INT(n, 3);
	if (n == 3)
		CHECK_INT(items[2].count, 3);
	const char *req = canned_request(&r.s, 0, 1);
	CHECK(req && strstr(req, "$skipToken=2") != NULL);
	arm_agent_pool_array_free(items, n);
	free(page1);
	rig_stop(&r);
}

TEST(wire_update_and_queue_status)
{
	struct rig r;
	struct arm_agent_pool *p = NULL;
	struct arm_operation *op = NULL;
	struct arm_tag tags[] = {{"owner", "team-a"}};
	int queued = -1;
	rig_start(&r, 0, 0);
	canned_reply(&r.s, 0, 200, NULL, POOL_BODY("Succeeded", 0));
	canned_reply(&r.s, 0, 200, NULL, "{\"count\":4}");
	CHECK_INT(arm_agent_pool_update(&p, &op, r.c, &r.ref, "p1", 0, tags, 1, 1), 0);
	CHECK(op == NULL);
	CHECK(p && p->count == 0);
	const char *req = canned_request(&r.s, 0, 0);
	CHECK(req && strncmp(req, "PATCH ", 6) == 0);
	CHECK_STR(canned_body(req), "{\"properties\":{\"count\":0},\"tags\":{\"owner\":\"team-a\"}}");
	CHECK_INT(arm_agent_pool_queue_status(&queued, r.c, &r.ref, "p1"), 0);
	CHECK_INT(queued, 4);
	req = canned_request(&r.s, 0, 1);
	CHECK(req && strncmp(req, "POST " POOL_PATH "/p1/listQueueStatus?", strlen("POST " POOL_PATH "/p1/listQueueStatus?")) == 0);
	char *cl = canned_header(req, "Content-Length");
	CHECK_STR(cl, "0");
	free(cl);
	char *ct = canned_header(req, "Content-Type");
	CHECK(ct == NULL);
	free(ct);
	arm_agent_pool_free(p);
	rig_stop(&r);
}

TEST(wire_registry_get)
{
	struct rig r;
	struct arm_registry *g = NULL;
	rig_start(&r, 0, 0);
	canned_reply(&r.s, 0, 200, NULL, "{\"id\":\"/r\",\"location\":\"westeurope\",\"sku\":{\"name\":\"Premium\","
				       "\"tier\":\"Premium\"},\"properties\":{\"loginServer\":\"myregistry.azurecr.io\","
				       "\"provisioningState\":\"Succeeded\"}}");
	CHECK_INT(arm_registry_get(&g, r.c, &r.ref), 0);
	CHECK(g != NULL);
	if (g) {
		CHECK_STR(g->location, "westeurope");
		CHECK_STR(g->login_server, "myregistry.azurecr.io");
		CHECK_STR(g->sku_tier, "Premium");
		CHECK_STR(g->provisioning_state, "Succeeded");
	}
	const char *req = canned_request(&r.s, 0, 0);
	CHECK(req && strstr(req, "/registries/myregistry?api-version=" ARM_API_VERSION_REGISTRIES " ") != NULL);
	arm_registry_free(g);
	rig_stop(&r);
}

TEST(wire_run_schedule_list_cancel)
{
	struct rig r;
	struct arm_run *run = NULL, *runs = NULL;
	struct arm_operation *op = NULL;
	size_t n = 0;
	char *sas = NULL;
	rig_start(&r, 0, 0);
	canned_reply(&r.s, 0, 200, NULL, "{\"name\":\"cb1\",\"properties\":{\"runId\":\"cb1\",\"status\":\"Queued\"}}");
	canned_reply(&r.s, 0, 200, NULL, "{\"value\":[{\"properties\":{\"runId\":\"cb2\",\"status\":\"Running\"}},"
				       "{\"properties\":{\"runId\":\"cb1\",\"status\":\"Queued\"}}],"
				       "\"nextLink\":\"http://elsewhere.invalid/never-followed\"}");
	canned_reply(&r.s, 0, 200, NULL, "");
	canned_reply(&r.s, 0, 200, NULL, "{\"logLink\":\"https://blob/log?sig=SECRET\"}");
	cJSON *reqbody = cJSON_Parse("{\"type\":\"TaskRunRequest\",\"taskId\":\"t1\",\"agentPoolName\":\"p1\"}");
	CHECK_INT(arm_run_schedule(&run, &op, r.c, &r.ref, reqbody), 0);
	CHECK(run && strcmp(run->run_id, "cb1") == 0);
	CHECK(op == NULL);
	CHECK_STR(canned_body(canned_request(&r.s, 0, 0)), "{\"type\":\"TaskRunRequest\",\"taskId\":\"t1\",\"agentPoolName\":\"p1\"}");
	CHECK_INT(arm_run_list(&runs, &n, r.c, &r.ref, "TaskName eq 'build'", 2), 0);
	CHECK_INT(n, 2);
	const char *req = canned_request(&r.s, 0, 1);
	CHECK(req && strstr(req, "/runs?$filter=TaskName%20eq%20%27build%27&$top=2&api-version=") != NULL);
	CHECK_INT(arm_run_cancel(&op, r.c, &r.ref, "cb1"), 0);
	CHECK(op == NULL);
	CHECK(strstr(canned_request(&r.s, 0, 2), "/runs/cb1/cancel?") != NULL);
	CHECK_INT(arm_run_log_sas_url(&sas, r.c, &r.ref, "cb1"), 0);
	CHECK_STR(sas, "https://blob/log?sig=SECRET");
	free(sas);
	cJSON_Delete(reqbody);
	arm_run_free(run);
	arm_run_array_free(runs, n);
	rig_stop(&r);
}

TEST(wire_task_create_with_cjson)
{
	struct rig r;
	cJSON *out = NULL, *list = NULL;
	struct arm_operation *op = NULL;
	rig_start(&r, 0, 0);
	/* 2019: a task PUT is an LRO answered 201 Creating. */
	canned_reply(&r.s, 0, 201, NULL, "{\"name\":\"task1\",\"properties\":{\"provisioningState\":\"Creating\"}}");
	canned_reply(&r.s, 0, 200, NULL, "{\"value\":[{\"name\":\"task1\"}]}");
	cJSON *body = cJSON_Parse("{\"location\":\"eastus\",\"properties\":{\"status\":\"Enabled\"}}");
	CHECK_INT(arm_task_create(&out, &op, r.c, &r.ref, "task1", body), 0);
	CHECK(out != NULL);
	CHECK(op && op->kind == ARM_LRO_BODY);
	CHECK(op && strstr(op->resource_url, "/tasks/task1?api-version=") != NULL);
	CHECK_INT(arm_task_list(&list, r.c, &r.ref), 0);
	CHECK_INT(cJSON_GetArraySize(list), 1);
	cJSON_Delete(list);
	cJSON_Delete(body);
	cJSON_Delete(out);
	arm_operation_free(op);
	rig_stop(&r);
}

TEST(wire_upload_block_blob)
{
	struct rig r;
	struct arm_upload_url u;
	rig_start(&r, 0, 0);
	char *answer = xasprintf("{\"uploadUrl\":\"%s/container/source.tar.gz?sv=2020&sig=SASSECRET\","
				 "\"relativePath\":\"source/123/source.tar.gz\"}", r.s.base);
	canned_reply(&r.s, 0, 200, NULL, answer);
	canned_reply(&r.s, 0, 503, NULL, "");
	canned_reply(&r.s, 0, 201, NULL, "");
	canned_reply(&r.s, 0, 403, NULL, "<?xml version=\"1.0\"?><Error><Code>AuthenticationFailed</Code>"
				       "<Message>Signature sig=SASSECRET did not match</Message></Error>");
	CHECK_INT(arm_build_source_upload_url(&u, r.c, &r.ref), 0);
	CHECK_STR(u.relative_path, "source/123/source.tar.gz");
	static const char data[] = "\x1f\x8b\x08\x00tar-bytes";
	CHECK_INT(arm_build_source_upload(r.c, u.upload_url, data, sizeof(data) - 1), 0);
	const char *req = canned_request(&r.s, 0, 2);
	CHECK(req && strncmp(req, "PUT /container/source.tar.gz?sv=2020&sig=SASSECRET HTTP/1.1", 58) == 0);
	char *h = canned_header(req, "x-ms-blob-type");
	CHECK_STR(h, "BlockBlob");
	free(h);
	h = canned_header(req, "x-ms-version");
	CHECK(h != NULL);
	free(h);
	h = canned_header(req, "Authorization");
	CHECK(h == NULL); /* the SAS is the credential; the ARM token stays home */
	free(h);
	CHECK(memcmp(canned_body(req), data, sizeof(data) - 1) == 0);
	CHECK_INT(arm_build_source_upload(r.c, u.upload_url, data, sizeof(data) - 1), CTL_EAUTH);
	CHECK_STR(ctl_error_last()->reason, "AuthenticationFailed");
	CHECK(strstr(ctl_error_last()->message, "SASSECRET") == NULL);
	arm_upload_url_dispose(&u);
	free(answer);
	rig_stop(&r);
}

TEST(wire_response_too_big)
{
	struct canned_server s;
	struct identity *id = NULL;
	struct arm_client *c = NULL;
	struct arm_response resp;
	canned_start(&s);
	struct identity_options io = {.kind = IDENTITY_SERVICE_PRINCIPAL, .tenant_id = "t", .client_id = "c",
				      .client_secret = "s", .authority_host = s.base};
	CHECK_INT(identity_new(&id, &io), 0);
	struct arm_options ao = {.endpoint = s.base, .max_body = 64};
	CHECK_INT(arm_client_new(&c, id, &ao), 0);
	char big[200];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	canned_reply(&s, 0, 200, NULL, big);
	arm_response_init(&resp);
	CHECK_INT(arm_request(&resp, c, "GET", "/x", "test.get", NULL), CTL_ETOOBIG);
	CHECK_INT(resp.attempts, 1);
	arm_response_dispose(&resp);
	arm_client_free(c);
	identity_free(id);
	canned_stop(&s);
}

TEST_MAIN(T(error_body_well_formed), T(error_body_other_shapes), T(error_body_missing_fields),
	  T(error_body_not_json), T(error_body_huge), T(retry_after_seconds), T(retry_after_http_date),
	  T(retry_after_garbage), T(backoff_and_retryable), T(uuid_shape), T(lro_begin_201_async_operation),
	  T(lro_begin_202_location), T(lro_begin_sync_done), T(lro_begin_body_polling), T(lro_status_bodies),
	  T(lro_kind_names_round_trip), T(agent_pool_json), T(run_json), T(wire_request_headers),
	  T(wire_response_ids_kept), T(wire_429_retry_after_then_200), T(wire_retry_after_ms_headers),
	  T(wire_503_twice_then_success), T(wire_429_storm_gives_up), T(wire_attempts_bound),
	  T(wire_long_retry_after_returns_at_once), T(wire_once_503_not_repeated_keeps_retry_after), T(wire_401_refreshes_token_once),
	  T(wire_401_twice_is_auth_error), T(wire_secret_never_in_error), T(wire_connection_refused_retries),
	  T(wire_lro_create_async_poll), T(wire_lro_failed), T(wire_lro_delete_location),
	  T(wire_delete_already_gone), T(wire_lro_body_polling_delete), T(wire_foreign_poll_url_refused),
	  T(wire_list_follows_next_link), T(wire_update_and_queue_status), T(wire_registry_get),
	  T(wire_run_schedule_list_cancel), T(wire_task_create_with_cjson), T(wire_upload_block_blob),
	  T(wire_response_too_big))
