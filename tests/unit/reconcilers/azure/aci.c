/*
 * Tests for reconcilers/azure/aci.c, the Microsoft.ContainerInstance typed
 * calls: the PUT body built from a desired group (pure), the published
 * spec's example answers (tests/emulator/spec/examples/2025-09-01/) parsed
 * into the observed struct, then canned-wire cases: the exact method, path,
 * api-version and body of each call, the LROs a create and a delete begin,
 * nextLink paging, deletes of what is already gone, and ARM errors
 * (ContainerGroupQuotaReached, InaccessibleImage) recorded with Azure's code
 * and message but never with a secure value.
 */
#include "test.h"

#include "arm_rig.h"

#include "azure/aci.h"
#include "azure/arm.h"
#include "error.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET "pat-0123456789-very-secret"
#define CG_PATH "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.ContainerInstance/containerGroups"
#define Q "?api-version=" ARM_API_VERSION_ACI
#define IDENTITY "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/pull"
#define SUBNET "/subscriptions/sub-1/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v/subnets/agents"

static const struct arm_resource_group_ref rg = {"sub-1", "rg-1"};

static const struct arm_container_env_var env[] = {
	{.name = "AZP_URL", .value = "https://dev.azure.com/org"},
	{.name = "AZP_TOKEN", .secure_value = SECRET},
	{.name = "AZP_POOL", .value = "builders"},
};
static const char *const command[] = {"/azp/start.sh", "--once"};
static const char *const subnets[] = {SUBNET};
static const struct arm_tag tags[] = {{"acrpool.dev/pool", "ns.agents"}, {"acrpool.dev/index", "0"}};

static struct arm_container_group_spec agent_spec(void)
{
	return (struct arm_container_group_spec){
		.name = "agents-0", .location = "eastus", .tags = tags, .ntags = 2, .container_name = "agent",
		.image = "myregistry.azurecr.io/azp-agent:1", .cpu = 1, .memory_in_gb = 1.5, .env = env, .nenv = 3,
		.command = command, .ncommand = 2, .subnet_ids = subnets, .nsubnet_ids = 1,
		.identity_id = IDENTITY, .registry_server = "myregistry.azurecr.io",
	};
}

#define AGENT_BODY                                                                                            \
	"{\"location\":\"eastus\",\"tags\":{\"acrpool.dev/pool\":\"ns.agents\",\"acrpool.dev/index\":\"0\"},"  \
	"\"identity\":{\"type\":\"UserAssigned\",\"userAssignedIdentities\":{\"" IDENTITY "\":{}}},"          \
	"\"properties\":{\"containers\":[{\"name\":\"agent\",\"properties\":{\"image\":"                       \
	"\"myregistry.azurecr.io/azp-agent:1\",\"command\":[\"/azp/start.sh\",\"--once\"],"                    \
	"\"environmentVariables\":[{\"name\":\"AZP_URL\",\"value\":\"https://dev.azure.com/org\"},"            \
	"{\"name\":\"AZP_TOKEN\",\"secureValue\":\"" SECRET "\"},{\"name\":\"AZP_POOL\",\"value\":"           \
	"\"builders\"}],\"resources\":{\"requests\":{\"cpu\":1,\"memoryInGB\":1.5}}}}],"                      \
	"\"imageRegistryCredentials\":[{\"server\":\"myregistry.azurecr.io\",\"identity\":\"" IDENTITY "\"}]," \
	"\"restartPolicy\":\"Always\",\"osType\":\"Linux\",\"subnetIds\":[{\"id\":\"" SUBNET "\"}]}}"

/* What ARM answers to that PUT: no secureValue, the variable by name. */
#define AGENT_ANSWER(state)                                                                                   \
	"{\"id\":\"" CG_PATH "/agents-0\",\"name\":\"agents-0\",\"type\":\"Microsoft.ContainerInstance/"      \
	"containerGroups\",\"location\":\"eastus\",\"tags\":{\"acrpool.dev/pool\":\"ns.agents\"},"            \
	"\"identity\":{\"type\":\"UserAssigned\",\"userAssignedIdentities\":{\"" IDENTITY "\":{\"principalId\":" \
	"\"p\",\"clientId\":\"c\"}}},\"properties\":{\"provisioningState\":\"" state "\",\"containers\":"    \
	"[{\"name\":\"agent\",\"properties\":{\"image\":\"myregistry.azurecr.io/azp-agent:1\",\"command\":"    \
	"[\"/azp/start.sh\",\"--once\"],\"environmentVariables\":[{\"name\":\"AZP_URL\",\"value\":"            \
	"\"https://dev.azure.com/org\"},{\"name\":\"AZP_TOKEN\"}],\"resources\":{\"requests\":{\"cpu\":1.0,"   \
	"\"memoryInGB\":1.5}}}}],\"restartPolicy\":\"Always\",\"osType\":\"Linux\"}}"

/* The repository's root, from this file's path as the compiler was given
 * it (CMake passes absolute paths). */
static char *source_path(const char *rel)
{
	static const char self[] = "tests/unit/reconcilers/azure/aci.c";
	const char *f = __FILE__;
	size_t n = strlen(f), k = strlen(self);
	if (n >= k && strcmp(f + n - k, self) == 0)
		return xasprintf("%.*s%s", (int)(n - k), f, rel);
	return xasprintf("../../%s", rel);
}

/* responses.<status>.body of an example file of the published spec. */
static cJSON *example(const char *file, const char *status)
{
	char *rel = xasprintf("tests/emulator/spec/examples/2025-09-01/%s", file);
	char *path = source_path(rel);
	FILE *f = fopen(path, "rb");
	char *text = NULL;
	cJSON *doc = NULL, *body = NULL;
	if (!f) {
		fprintf(stderr, "cannot open %s\n", path);
		goto done;
	}
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	text = xcalloc((size_t)len + 1, 1);
	if (fread(text, 1, (size_t)len, f) != (size_t)len)
		goto done;
	doc = cJSON_Parse(text);
	cJSON *resp = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "responses"), status);
	body = cJSON_DetachItemFromObjectCaseSensitive(resp, "body");
done:
	if (f)
		fclose(f);
	cJSON_Delete(doc);
	free(text);
	free(path);
	free(rel);
	return body;
}

static int starts_with(const char *s, const char *prefix)
{
	return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- pure: the PUT body ---- */

TEST(spec_to_json_is_the_put_body)
{
	struct arm_container_group_spec s = agent_spec();
	cJSON *body = arm_container_group_to_json(&s);
	char *text = cJSON_PrintUnformatted(body);
	CHECK_STR(text, AGENT_BODY);
	cJSON_free(text);
	/* The copy of the secret in the tree is wiped before it is freed. */
	arm_container_group_json_wipe(body);
	text = cJSON_PrintUnformatted(body);
	CHECK(strstr(text, SECRET) == NULL);
	CHECK(strstr(text, "\"AZP_URL\",\"value\":\"https://dev.azure.com/org\"") != NULL);
	cJSON_free(text);
	cJSON_Delete(body);

	/* The smallest group: Always and Linux by default, the group's name
	 * for its container, no identity, credentials, subnets or command. */
	struct arm_container_group_spec min = {.name = "g", .location = "westeurope", .image = "nginx",
					       .cpu = 0.5, .memory_in_gb = 1};
	body = arm_container_group_to_json(&min);
	text = cJSON_PrintUnformatted(body);
	CHECK_STR(text, "{\"location\":\"westeurope\",\"properties\":{\"containers\":[{\"name\":\"g\",\"properties\":"
			"{\"image\":\"nginx\",\"resources\":{\"requests\":{\"cpu\":0.5,\"memoryInGB\":1}}}}],"
			"\"restartPolicy\":\"Always\",\"osType\":\"Linux\"}}");
	cJSON_free(text);
	cJSON_Delete(body);
}

/* ---- pure: answers ---- */

TEST(example_get_failed_with_instance_view)
{
	cJSON *o = example("ContainerGroupsGet_Failed.json", "200");
	struct arm_container_group g;
	CHECK(o != NULL);
	CHECK_INT(arm_container_group_from_json(&g, o), 0);
	CHECK_STR(g.id, "/subscriptions/subid/resourceGroups/demo/providers/Microsoft.ContainerInstance/containerGroups/demo1");
	CHECK_STR(g.name, "demo1");
	CHECK_STR(g.location, "WestUs");
	CHECK_STR(g.provisioning_state, "Failed");
	CHECK_STR(g.state, "Pending");
	CHECK_STR(g.os_type, "Linux");
	CHECK(g.restart_policy == NULL);
	CHECK_INT(g.ncontainers, 1);
	CHECK_STR(g.container_name, "demo1");
	CHECK_STR(g.image, "nginx");
	CHECK(g.cpu == 1 && g.memory_in_gb == 1.5);
	CHECK_INT(g.nenv, 0);
	CHECK_INT(g.ncommand, 0);
	CHECK_INT(g.restart_count, 0);
	CHECK_STR(g.current.state, "Waiting");
	CHECK_STR(g.current.start_time, "2017-08-08T00:09:10Z");
	CHECK_STR(g.current.detail_status, "");
	CHECK(!g.current.has_exit_code);
	CHECK_STR(g.registry_server, "azcloudconsoleregistry.azurecr.io");
	CHECK(g.registry_identity == NULL);
	CHECK_INT(g.ntags, 0);
	CHECK_INT(g.nidentity_ids, 0);
	arm_container_group_dispose(&g);
	cJSON_Delete(o);
}

TEST(example_answers_of_every_call)
{
	struct {
		const char *file, *status, *provisioning;
		int restart_count;
	} cases[] = {
		{"ContainerGroupsGet_Succeeded.json", "200", "Succeeded", -1},
		{"ContainerGroupsCreateOrUpdate.json", "201", "Succeeded", -1},
		{"ContainerGroupsCreateOrUpdate.json", "200", "Succeeded", -1},
		{"ContainerGroupsUpdate.json", "200", NULL, -1},
		{"ContainerGroupsDelete.json", "200", "Succeeded", -1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *o = example(cases[i].file, cases[i].status);
		struct arm_container_group g;
		CHECK(o != NULL);
		CHECK_INT(arm_container_group_from_json(&g, o), 0);
		CHECK(g.name != NULL);
		if (cases[i].provisioning)
			CHECK_STR(g.provisioning_state, cases[i].provisioning);
		CHECK_INT(g.restart_count, cases[i].restart_count);
		arm_container_group_dispose(&g);
		cJSON_Delete(o);
	}
	/* A list item carries no instanceView: no restart count, no state. */
	cJSON *page = example("ContainerGroupsListByResourceGroup.json", "200");
	const cJSON *item = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(page, "value"), 0);
	struct arm_container_group g;
	CHECK_INT(arm_container_group_from_json(&g, item), 0);
	CHECK_STR(g.name, "demo1");
	CHECK_STR(g.image, "nginx");
	CHECK_INT(g.restart_count, -1);
	CHECK(g.state == NULL && g.current.state == NULL);
	arm_container_group_dispose(&g);
	cJSON_Delete(page);
	CHECK_INT(arm_container_group_from_json(&g, NULL), CTL_EINVALID);
	arm_container_group_dispose(&g);
}

TEST(observed_keeps_no_secure_value)
{
	/* ARM never returns a secureValue; were one in an answer, the parser
	 * would still not keep it. */
	cJSON *o = cJSON_Parse(
		"{\"name\":\"agents-0\",\"tags\":{\"a\":\"b\"},\"identity\":{\"type\":\"UserAssigned\","
		"\"userAssignedIdentities\":{\"" IDENTITY "\":{\"principalId\":\"p\"}}},\"properties\":{"
		"\"provisioningState\":\"Succeeded\",\"restartPolicy\":\"Always\",\"subnetIds\":[{\"id\":\"" SUBNET "\"}],"
		"\"imageRegistryCredentials\":[{\"server\":\"r.azurecr.io\",\"identity\":\"" IDENTITY "\"}],"
		"\"instanceView\":{\"state\":\"Running\",\"events\":[]},\"containers\":[{\"name\":\"agent\","
		"\"properties\":{\"image\":\"r.azurecr.io/a:1\",\"command\":[\"run.sh\",\"--once\"],"
		"\"environmentVariables\":[{\"name\":\"PLAIN\",\"value\":\"v\"},{\"name\":\"EMPTY\",\"value\":\"\"},"
		"{\"name\":\"AZP_TOKEN\",\"secureValue\":\"" SECRET "\"}],\"resources\":{\"requests\":{\"cpu\":2,"
		"\"memoryInGB\":4}},\"instanceView\":{\"restartCount\":7,\"currentState\":{\"state\":\"Terminated\","
		"\"startTime\":\"2025-01-01T00:00:00Z\",\"finishTime\":\"2025-01-01T00:05:00Z\",\"exitCode\":0,"
		"\"detailStatus\":\"Completed\"}}}},{\"name\":\"sidecar\",\"properties\":{\"image\":\"x\"}}]}}");
	struct arm_container_group g;
	CHECK_INT(arm_container_group_from_json(&g, o), 0);
	CHECK_INT(g.nenv, 3);
	CHECK_STR(arm_container_group_env(&g, "PLAIN"), "v");
	CHECK_STR(arm_container_group_env(&g, "EMPTY"), "");
	CHECK(arm_container_group_env(&g, "AZP_TOKEN") == NULL);
	CHECK(g.nenv == 3 && strcmp(g.env[2].name, "AZP_TOKEN") == 0 && g.env[2].value == NULL);
	for (size_t i = 0; i < g.nenv; i++)
		CHECK(!g.env[i].value || strstr(g.env[i].value, "secret") == NULL);
	CHECK_INT(g.restart_count, 7);
	CHECK_STR(g.current.state, "Terminated");
	CHECK_STR(g.current.finish_time, "2025-01-01T00:05:00Z");
	CHECK(g.current.has_exit_code && g.current.exit_code == 0);
	CHECK_STR(g.current.detail_status, "Completed");
	CHECK_STR(g.state, "Running");
	CHECK_INT(g.ncontainers, 2);
	CHECK_STR(g.container_name, "agent");
	CHECK(g.cpu == 2 && g.memory_in_gb == 4);
	CHECK(g.ncommand == 2 && strcmp(g.command[1], "--once") == 0);
	CHECK(g.nsubnet_ids == 1 && strcmp(g.subnet_ids[0], SUBNET) == 0);
	CHECK_STR(g.identity_type, "UserAssigned");
	CHECK(g.nidentity_ids == 1 && strcmp(g.identity_ids[0], IDENTITY) == 0);
	CHECK_STR(g.registry_server, "r.azurecr.io");
	CHECK_STR(g.registry_identity, IDENTITY);
	CHECK(g.ntags == 1 && strcmp(g.tags[0].value, "b") == 0);
	arm_container_group_dispose(&g);
	cJSON_Delete(o);
}

TEST(invalid_spec_is_refused_before_any_request)
{
	struct rig r;
	struct arm_container_group *g = (void *)1;
	struct arm_operation *op = (void *)1;
	rig_start(&r, 0, 0);
	struct arm_container_group_spec s = agent_spec();
	s.image = NULL;
	CHECK_INT(arm_container_group_create(&g, &op, r.c, &rg, &s), CTL_EINVALID);
	CHECK(g == NULL && op == NULL);
	s = agent_spec();
	s.cpu = 0;
	CHECK_INT(arm_container_group_create(&g, &op, r.c, &rg, &s), CTL_EINVALID);
	/* A variable with both values: named in the error, its value never. */
	struct arm_container_env_var both[] = {{.name = "AZP_TOKEN", .value = "plain", .secure_value = SECRET}};
	s = agent_spec();
	s.env = both;
	s.nenv = 1;
	CHECK_INT(arm_container_group_create(&g, &op, r.c, &rg, &s), CTL_EINVALID);
	CHECK_STR(ctl_error_last()->reason, "InvalidEnvironmentVariable");
	CHECK(strstr(ctl_error_last()->message, "AZP_TOKEN") != NULL);
	CHECK(strstr(ctl_error_last()->message, SECRET) == NULL);
	s = agent_spec();
	s.identity_id = NULL;
	CHECK_INT(arm_container_group_create(&g, &op, r.c, &rg, &s), CTL_EINVALID);
	struct arm_resource_group_ref bad = {"sub-1", ""};
	s = agent_spec();
	CHECK_INT(arm_container_group_create(&g, &op, r.c, &bad, &s), CTL_EINVALID);
	CHECK_INT(arm_container_group_get(&g, r.c, &rg, ""), CTL_EINVALID);
	CHECK_INT(r.s.nrequests, 0);
	rig_stop(&r);
}

/* ---- wire ---- */

TEST(wire_create_201_async_operation_then_poll)
{
	struct rig r;
	struct arm_container_group *g = NULL;
	struct arm_operation *op = NULL;
	enum arm_lro_state st;
	cJSON *result = NULL;
	rig_start(&r, 0, 0);
	char *aao = xasprintf("Azure-AsyncOperation: %s/subscriptions/sub-1/resourceGroups/rg-1/providers/"
			      "Microsoft.ContainerInstance/locations/eastus/operations/op1" Q "\r\nRetry-After: 10\r\n",
			      r.s.base);
	canned_reply(&r.s, 0, 201, aao, AGENT_ANSWER("Pending"));
	canned_reply(&r.s, 0, 200, "Retry-After: 2\r\n", "{\"status\":\"InProgress\"}");
	canned_reply(&r.s, 0, 200, NULL, "{\"status\":\"Succeeded\"}");
	canned_reply(&r.s, 0, 200, NULL, AGENT_ANSWER("Succeeded"));

	struct arm_container_group_spec s = agent_spec();
	CHECK_INT(arm_container_group_create(&g, &op, r.c, &rg, &s), 0);
	const char *req = canned_request(&r.s, 0, 0);
	CHECK(starts_with(req, "PUT " CG_PATH "/agents-0" Q " HTTP/1.1\r\n"));
	/* The secure value goes to ARM in the body, as secureValue, and only there. */
	CHECK_STR(canned_body(req), AGENT_BODY);
	char *ct = canned_header(req, "Content-Type");
	CHECK_STR(ct, "application/json");
	free(ct);
	CHECK_STR(r.metrics_last, "PUT containerGroups.createOrUpdate 201 1");
	CHECK(g != NULL);
	if (g) {
		CHECK_STR(g->provisioning_state, "Pending");
		CHECK_STR(g->name, "agents-0");
		CHECK(arm_container_group_env(g, "AZP_TOKEN") == NULL);
		CHECK_STR(arm_container_group_env(g, "AZP_URL"), "https://dev.azure.com/org");
	}
	CHECK(op != NULL);
	if (op) {
		CHECK_INT(op->kind, ARM_LRO_ASYNC_OPERATION);
		CHECK_INT(op->retry_after_ms, 10000);
		CHECK(strstr(op->resource_url, CG_PATH "/agents-0" Q) != NULL);
		CHECK_INT(arm_operation_poll(&st, &result, r.c, op), 0);
		CHECK_INT(st, ARM_LRO_IN_PROGRESS);
		CHECK_INT(op->retry_after_ms, 2000);
		CHECK_INT(arm_operation_poll(&st, &result, r.c, op), 0);
		CHECK_INT(st, ARM_LRO_SUCCEEDED);
		struct arm_container_group done;
		CHECK_INT(arm_container_group_from_json(&done, result), 0);
		CHECK_STR(done.provisioning_state, "Succeeded");
		arm_container_group_dispose(&done);
		req = canned_request(&r.s, 0, 1);
		CHECK(starts_with(req, "GET /subscriptions/sub-1/resourceGroups/rg-1/providers/"
				       "Microsoft.ContainerInstance/locations/eastus/operations/op1" Q " "));
		/* The final GET is the resource, at the ACI api-version. */
		req = canned_request(&r.s, 0, 3);
		CHECK(starts_with(req, "GET " CG_PATH "/agents-0" Q " HTTP/1.1\r\n"));
	}
	CHECK_INT(r.clk.nsleeps, 0);
	cJSON_Delete(result);
	arm_operation_free(op);
	arm_container_group_free(g);
	free(aao);
	rig_stop(&r);
}

TEST(wire_create_200_done_without_operation)
{
	struct rig r;
	struct arm_operation *op = (void *)1;
	rig_start(&r, 0, 0);
	/* An update that changed only tags: 200, Succeeded, nothing to poll. */
	canned_reply(&r.s, 0, 200, NULL, AGENT_ANSWER("Succeeded"));
	struct arm_container_group_spec s = agent_spec();
	CHECK_INT(arm_container_group_create(NULL, &op, r.c, &rg, &s), 0);
	CHECK(op == NULL);
	rig_stop(&r);
}

TEST(wire_get_parses_the_example)
{
	struct rig r;
	struct arm_container_group *g = NULL;
	rig_start(&r, 0, 0);
	cJSON *o = example("ContainerGroupsGetPriority.json", "200");
	char *text = o ? cJSON_PrintUnformatted(o) : xstrdup("{}");
	canned_reply(&r.s, 0, 200, NULL, text);
	canned_reply(&r.s, 0, 404, NULL, "{\"error\":{\"code\":\"ResourceNotFound\",\"message\":\"The Resource "
				       "'Microsoft.ContainerInstance/containerGroups/ghost' under resource group "
				       "'rg-1' was not found.\"}}");
	CHECK_INT(arm_container_group_get(&g, r.c, &rg, "demo1"), 0);
	CHECK(starts_with(canned_request(&r.s, 0, 0), "GET " CG_PATH "/demo1" Q " HTTP/1.1\r\n"));
	CHECK(g != NULL);
	if (g) {
		CHECK_STR(g->name, "demo1");
		CHECK_STR(g->provisioning_state, "Succeeded");
		CHECK_INT(g->restart_count, 0);
		CHECK_STR(g->current.state, "Terminated");
		CHECK(g->current.has_exit_code && g->current.exit_code == 0);
		CHECK_STR(g->current.finish_time, "2022-11-11T19:33:55.565Z");
		CHECK_STR(g->current.detail_status, "Completed");
	}
	arm_container_group_free(g);
	g = NULL;
	CHECK_INT(arm_container_group_get(&g, r.c, &rg, "ghost"), CTL_ENOTFOUND);
	CHECK(g == NULL);
	CHECK_STR(ctl_error_last()->reason, "ResourceNotFound");
	cJSON_free(text);
	cJSON_Delete(o);
	rig_stop(&r);
}

TEST(wire_list_follows_next_link)
{
	struct rig r;
	struct arm_container_group *items = NULL;
	size_t n = 0;
	rig_start(&r, 0, 0);
	char *page1 = xasprintf("{\"value\":[{\"name\":\"agents-0\",\"properties\":{\"provisioningState\":\"Succeeded\"}},"
				"{\"name\":\"agents-1\",\"properties\":{\"provisioningState\":\"Creating\"}}],"
				"\"nextLink\":\"%s" CG_PATH Q "&$skipToken=2\"}", r.s.base);
	canned_reply(&r.s, 0, 200, NULL, page1);
	cJSON *o = example("ContainerGroupsListByResourceGroup.json", "200");
	char *page2 = o ? cJSON_PrintUnformatted(o) : xstrdup("{}");
	canned_reply(&r.s, 0, 200, NULL, page2);
	CHECK_INT(arm_container_group_list(&items, &n, r.c, &rg), 0);
	CHECK_INT(n, 3);
	if (n == 3) {
		CHECK_STR(items[0].name, "agents-0");
		CHECK_STR(items[1].provisioning_state, "Creating");
		CHECK_STR(items[2].name, "demo1");
		CHECK_INT(items[2].restart_count, -1);
	}
	CHECK(starts_with(canned_request(&r.s, 0, 0), "GET " CG_PATH Q " HTTP/1.1\r\n"));
	/* nextLink is followed as given: its api-version and $skipToken. */
	CHECK(starts_with(canned_request(&r.s, 0, 1), "GET " CG_PATH Q "&$skipToken=2 HTTP/1.1\r\n"));
	CHECK_STR(r.metrics_last, "GET containerGroups.listByResourceGroup 200 1");
	arm_container_group_array_free(items, n);
	cJSON_free(page2);
	cJSON_Delete(o);
	free(page1);
	rig_stop(&r);
}

TEST(wire_delete_202_then_already_gone)
{
	struct rig r;
	struct arm_operation *op = NULL;
	enum arm_lro_state st;
	rig_start(&r, 0, 0);
	char *aao = xasprintf("Azure-AsyncOperation: %s/subscriptions/sub-1/resourceGroups/rg-1/providers/"
			      "Microsoft.ContainerInstance/locations/eastus/operations/op2" Q "\r\nRetry-After: 1\r\n",
			      r.s.base);
	canned_reply(&r.s, 0, 202, aao, NULL);
	canned_reply(&r.s, 0, 200, NULL, "{\"status\":\"Succeeded\"}");
	canned_reply(&r.s, 0, 204, NULL, NULL);
	canned_reply(&r.s, 0, 404, NULL, "{\"error\":{\"code\":\"ResourceNotFound\",\"message\":\"m\"}}");
	CHECK_INT(arm_container_group_delete(&op, r.c, &rg, "agents-0"), 0);
	CHECK(starts_with(canned_request(&r.s, 0, 0), "DELETE " CG_PATH "/agents-0" Q " HTTP/1.1\r\n"));
	CHECK(op && op->kind == ARM_LRO_ASYNC_OPERATION && op->retry_after_ms == 1000);
	if (op) {
		CHECK_INT(arm_operation_poll(&st, NULL, r.c, op), 0);
		CHECK_INT(st, ARM_LRO_SUCCEEDED);
	}
	arm_operation_free(op);
	op = (void *)1;
	/* ACI answers 204 for a group that is not there; 404 means the same. */
	CHECK_INT(arm_container_group_delete(&op, r.c, &rg, "agents-0"), 0);
	CHECK(op == NULL);
	op = (void *)1;
	CHECK_INT(arm_container_group_delete(&op, r.c, &rg, "agents-0"), 0);
	CHECK(op == NULL);
	free(aao);
	rig_stop(&r);
}

TEST(wire_restart_and_tags)
{
	struct rig r;
	struct arm_operation *op = (void *)1;
	struct arm_container_group *g = NULL;
	rig_start(&r, 0, 0);
	canned_reply(&r.s, 0, 204, NULL, NULL);
	canned_reply(&r.s, 0, 200, NULL, AGENT_ANSWER("Succeeded"));
	canned_reply(&r.s, 0, 200, NULL, AGENT_ANSWER("Succeeded"));
	CHECK_INT(arm_container_group_restart(&op, r.c, &rg, "agents-0"), 0);
	CHECK(op == NULL);
	const char *req = canned_request(&r.s, 0, 0);
	CHECK(starts_with(req, "POST " CG_PATH "/agents-0/restart" Q " HTTP/1.1\r\n"));
	char *cl = canned_header(req, "Content-Length");
	CHECK_STR(cl, "0");
	free(cl);
	struct arm_tag t[] = {{"team", "ci"}};
	CHECK_INT(arm_container_group_update_tags(&g, r.c, &rg, "agents-0", t, 1), 0);
	req = canned_request(&r.s, 0, 1);
	CHECK(starts_with(req, "PATCH " CG_PATH "/agents-0" Q " HTTP/1.1\r\n"));
	CHECK_STR(canned_body(req), "{\"tags\":{\"team\":\"ci\"}}");
	CHECK(g && g->ntags == 1);
	arm_container_group_free(g);
	/* No tags: an empty set replaces them all. */
	CHECK_INT(arm_container_group_update_tags(NULL, r.c, &rg, "agents-0", NULL, 0), 0);
	CHECK_STR(canned_body(canned_request(&r.s, 0, 2)), "{\"tags\":{}}");
	rig_stop(&r);
}

TEST(wire_arm_errors_keep_code_and_message)
{
	struct rig r;
	struct arm_container_group *g = (void *)1;
	struct arm_operation *op = (void *)1;
	rig_start(&r, 0, 0);
	canned_reply(&r.s, 0, 400, NULL,
		     "{\"error\":{\"code\":\"ContainerGroupQuotaReached\",\"message\":\"Resource type "
		     "'Microsoft.ContainerInstance/containerGroups' container group quota 'StandardCores' exceeded "
		     "in region 'eastus'. Limit: '10', Usage: '10' Requested: '1'.\"}}");
	canned_reply(&r.s, 0, 400, NULL,
		     "{\"error\":{\"code\":\"InaccessibleImage\",\"message\":\"The image "
		     "'myregistry.azurecr.io/azp-agent:1' in container group 'agents-0' is not accessible. Please "
		     "check the image and registry credential.\"}}");
	struct arm_container_group_spec s = agent_spec();
	CHECK_INT(arm_container_group_create(&g, &op, r.c, &rg, &s), CTL_ETERMINAL);
	CHECK(g == NULL && op == NULL);
	const struct ctl_error *e = ctl_error_last();
	CHECK_STR(e->reason, "ContainerGroupQuotaReached");
	CHECK(starts_with(e->message, "Resource type 'Microsoft.ContainerInstance/containerGroups' container group "
				      "quota 'StandardCores' exceeded in region 'eastus'. Limit: '10'"));
	CHECK_INT(e->http_status, 400);
	CHECK_STR(e->request_id, "req-400-0");
	/* 400 is not retried: one attempt. */
	CHECK_INT(r.s.narm_requests, 1);
	CHECK_INT(arm_container_group_create(&g, &op, r.c, &rg, &s), CTL_ETERMINAL);
	CHECK_STR(e->reason, "InaccessibleImage");
	CHECK(strstr(e->message, "'myregistry.azurecr.io/azp-agent:1' in container group 'agents-0' is not accessible"));
	CHECK(strstr(e->message, SECRET) == NULL);
	rig_stop(&r);
}

TEST(wire_error_quoting_a_secure_value_is_scrubbed)
{
	struct rig r;
	rig_start(&r, 0, 0);
	/* A validation error that echoes the offending value. */
	canned_reply(&r.s, 0, 400, "Retry-After: 3\r\n",
		     "{\"error\":{\"code\":\"InvalidEnvironmentVariable\",\"message\":\"The value '" SECRET "' of "
		     "variable 'AZP_TOKEN' is not valid (" SECRET ").\"}}");
	struct arm_container_group_spec s = agent_spec();
	CHECK_INT(arm_container_group_create(NULL, NULL, r.c, &rg, &s), CTL_ETERMINAL);
	const struct ctl_error *e = ctl_error_last();
	CHECK_STR(e->reason, "InvalidEnvironmentVariable");
	CHECK_STR(e->message, "The value '[secure value]' of variable 'AZP_TOKEN' is not valid ([secure value]).");
	/* The rest of the error survives the rewrite. */
	CHECK_INT(e->code, CTL_ETERMINAL);
	CHECK_INT(e->http_status, 400);
	CHECK_STR(e->request_id, "req-400-0");
	CHECK_INT(e->retry_after_ms, 3000);
	rig_stop(&r);
}

TEST_MAIN(T(spec_to_json_is_the_put_body), T(example_get_failed_with_instance_view),
	  T(example_answers_of_every_call), T(observed_keeps_no_secure_value),
	  T(invalid_spec_is_refused_before_any_request), T(wire_create_201_async_operation_then_poll),
	  T(wire_create_200_done_without_operation), T(wire_get_parses_the_example), T(wire_list_follows_next_link),
	  T(wire_delete_202_then_already_gone), T(wire_restart_and_tags), T(wire_arm_errors_keep_code_and_message),
	  T(wire_error_quoting_a_secure_value_is_scrubbed))
