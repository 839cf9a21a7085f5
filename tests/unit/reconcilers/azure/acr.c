/*
 * Tests for reconcilers/azure/acr.c, the Microsoft.ContainerRegistry typed
 * calls: resource JSON to structs (pure), then canned-wire cases: the exact
 * path, query and body of each call, LROs begun by a create or a delete,
 * deletes of what is already gone, paging, scheduleRun sent at most once,
 * and, seen through agentPools.get, the headers every ARM request carries
 * and that a client secret never reaches an error.
 */
#include "test.h"

#include "arm_rig.h"

#include "azure/acr.h"
#include "azure/arm.h"
#include "error.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

TEST_MAIN(T(agent_pool_json), T(run_json), T(wire_request_headers),
	  T(wire_once_503_not_repeated_keeps_retry_after), T(wire_secret_never_in_error),
	  T(wire_lro_create_async_poll), T(wire_lro_delete_location), T(wire_delete_already_gone),
	  T(wire_list_follows_next_link), T(wire_update_and_queue_status), T(wire_registry_get),
	  T(wire_run_schedule_list_cancel), T(wire_task_create_with_cjson))
