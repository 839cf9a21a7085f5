/*
 * Tests for reconcilers/azure/arm.c, the ARM core: ARM error bodies,
 * Retry-After, backoff, LRO interpretation and status bodies (pure), then
 * canned-wire cases against a loopback server: 429/503 retries with an
 * injected sleep, budgets, 401 token refresh, LRO polling and the
 * response cap. Cases that drive a typed call are in acr.c (among them the
 * headers every request carries and secret hygiene) and blob.c.
 */
#include "test.h"

#include "arm_rig.h"

#include "azure/arm.h"
#include "azure/identity.h"
#include "error.h"
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

/* ---- wire ---- */

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
	  T(lro_kind_names_round_trip), T(wire_response_ids_kept), T(wire_429_retry_after_then_200),
	  T(wire_retry_after_ms_headers), T(wire_503_twice_then_success), T(wire_429_storm_gives_up),
	  T(wire_attempts_bound), T(wire_long_retry_after_returns_at_once), T(wire_401_refreshes_token_once),
	  T(wire_401_twice_is_auth_error), T(wire_connection_refused_retries), T(wire_lro_failed),
	  T(wire_lro_body_polling_delete), T(wire_foreign_poll_url_refused), T(wire_response_too_big))
