/* Unit tests for reconcilers/task_plan.c: spec -> ARM body, (desired,
 * Azure) -> differing fields, and (observed) -> action. */
#include "test.h"

#include "task_plan.h"

#include <cjson/cJSON.h>

static cJSON *parse(const char *json)
{
	cJSON *j = cJSON_Parse(json);
	if (!j) {
		fprintf(stderr, "bad JSON in test: %s\n", json);
		abort();
	}
	return j;
}

static const char *str_at(const cJSON *o, const char *a, const char *b, const char *c)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
	if (b)
		x = cJSON_GetObjectItemCaseSensitive(x, b);
	if (c)
		x = cJSON_GetObjectItemCaseSensitive(x, c);
	return cJSON_GetStringValue(x);
}

#define DOCS_SPEC "{\"registryRef\":{\"name\":\"myregistry\"},\"agentPoolRef\":{\"name\":\"myagentpool\"}," \
	"\"step\":{\"docker\":{\"contextPath\":\"https://github.com/Azure-Samples/acr-build-helloworld-node.git#main\"," \
	"\"dockerFilePath\":\"Dockerfile\",\"imageNames\":[\"myimage:mytag\"]}}," \
	"\"timers\":[{\"name\":\"nightly\",\"schedule\":\"0 21 * * *\"}]}"

TEST(body_of_the_docs_scheduled_task)
{
	cJSON *spec = parse(DOCS_SPEC);
	char missing[128];
	cJSON *b = task_plan_body(spec, "eastus", "myagentpool", "ns/mytask", NULL, missing, sizeof(missing));
	CHECK(b != NULL);
	cJSON *want = parse("{\"location\":\"eastus\",\"tags\":{\"acrpool.dev-owner\":\"ns/mytask\"},\"properties\":{"
		"\"status\":\"Enabled\",\"platform\":{\"os\":\"Linux\",\"architecture\":\"amd64\"},"
		"\"agentPoolName\":\"myagentpool\",\"timeout\":3600,\"step\":{\"type\":\"Docker\","
		"\"contextPath\":\"https://github.com/Azure-Samples/acr-build-helloworld-node.git#main\","
		"\"dockerFilePath\":\"Dockerfile\",\"imageNames\":[\"myimage:mytag\"],\"isPushEnabled\":true,"
		"\"noCache\":false,\"arguments\":[]},\"trigger\":{\"timerTriggers\":[{\"name\":\"nightly\","
		"\"schedule\":\"0 21 * * *\",\"status\":\"Enabled\"}]}}}");
	CHECK(cJSON_Compare(b, want, true));
	cJSON_Delete(want);
	task_plan_body_free(b);
	cJSON_Delete(spec);
}

TEST(body_encoded_step_is_base64_and_shared_compute_has_no_pool)
{
	cJSON *spec = parse("{\"cpu\":2,\"enabled\":false,\"step\":{\"encoded\":{\"taskContent\":\"steps: []\"}},"
			    "\"baseImageTrigger\":{\"type\":\"All\"}}");
	char missing[128];
	cJSON *b = task_plan_body(spec, "eastus", NULL, "ns/x", NULL, missing, sizeof(missing));
	CHECK_STR(str_at(b, "properties", "step", "encodedTaskContent"), "c3RlcHM6IFtd");
	CHECK_STR(str_at(b, "properties", "status", NULL), "Disabled");
	CHECK(!cJSON_GetObjectItem(cJSON_GetObjectItem(b, "properties"), "agentPoolName"));
	CHECK_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "properties"), "agentConfiguration"),
				      "cpu")->valueint, 2);
	const cJSON *bit = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "properties"), "trigger"),
					       "baseImageTrigger");
	CHECK_STR(str_at(bit, "name", NULL, NULL), "defaultBaseimageTriggerName");
	CHECK_STR(str_at(bit, "baseImageTriggerType", NULL, NULL), "All");
	task_plan_body_free(b);
	cJSON_Delete(spec);
}

TEST(body_secrets_resolved_or_missing_named)
{
	cJSON *spec = parse("{\"contextAccessTokenSecretRef\":{\"name\":\"git\",\"key\":\"token\"},"
			    "\"step\":{\"file\":{\"contextPath\":\"c\",\"taskFilePath\":\"t.yaml\",\"values\":["
			    "{\"name\":\"a\",\"value\":\"1\"},{\"name\":\"pw\",\"secretKeyRef\":{\"name\":\"db\",\"key\":\"pw\"}}]}}}");
	struct task_secret *refs;
	size_t n;
	task_plan_secret_refs(&refs, &n, spec);
	CHECK_INT(n, 2);
	CHECK_STR(refs[0].secret, "git");
	CHECK_STR(refs[1].key, "pw");
	char missing[128];
	struct task_secrets s = {refs, n};
	CHECK(task_plan_body(spec, "eastus", NULL, "o", &s, missing, sizeof(missing)) == NULL);
	CHECK_STR(missing, "Secret git key token");
	refs[0].value = "ghp_1";
	refs[1].value = "hunter2";
	cJSON *b = task_plan_body(spec, "eastus", NULL, "o", &s, missing, sizeof(missing));
	CHECK_STR(str_at(b, "properties", "step", "contextAccessToken"), "ghp_1");
	const cJSON *v = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "properties"),
										    "step"), "values"), 1);
	CHECK_STR(str_at(v, "value", NULL, NULL), "hunter2");
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(v, "isSecret")));
	task_plan_body_free(b);
	free(refs);
	cJSON_Delete(spec);
}

TEST(secret_hash_changes_with_values_not_shown)
{
	struct task_secret a[] = {{"git", "token", "one"}}, b[] = {{"git", "token", "two"}};
	struct task_secrets sa = {a, 1}, sb = {b, 1}, none = {NULL, 0};
	char h1[65], h2[65], h3[65], h0[65];
	task_plan_secret_hash(h1, "uid-1", &sa);
	task_plan_secret_hash(h2, "uid-1", &sb);
	task_plan_secret_hash(h3, "uid-2", &sa);
	task_plan_secret_hash(h0, "uid-1", &none);
	CHECK_INT(strlen(h1), 64);
	CHECK(strcmp(h1, h2) != 0);
	CHECK(strcmp(h1, h3) != 0);
	CHECK(strstr(h1, "one") == NULL);
	CHECK_STR(h0, "");
}

static bool differs(const char *azure_props_patch, char *diff, size_t len)
{
	cJSON *spec = parse(DOCS_SPEC);
	cJSON *d = task_plan_body(spec, "eastus", "myagentpool", "o", NULL, diff, len);
	cJSON *a = cJSON_Duplicate(d, true);
	cJSON *patch = parse(azure_props_patch);
	cJSON *props = cJSON_GetObjectItem(a, "properties");
	cJSON *m;
	cJSON_ArrayForEach(m, patch) {
		cJSON_DeleteItemFromObject(props, m->string);
		cJSON_AddItemToObject(props, m->string, cJSON_Duplicate(m, true));
	}
	bool r = task_plan_compare(d, a, diff, len);
	cJSON_Delete(patch);
	cJSON_Delete(a);
	task_plan_body_free(d);
	cJSON_Delete(spec);
	return r;
}

TEST(compare_equal_ignores_case_and_azure_extras)
{
	char diff[256];
	/* Azure answers enums in its own case and adds read-only members. */
	CHECK(!differs("{\"agentPoolName\":\"MyAgentPool\",\"status\":\"enabled\",\"platform\":{\"os\":\"linux\","
		       "\"architecture\":\"AMD64\"},\"provisioningState\":\"Succeeded\",\"creationDate\":\"x\"}",
		       diff, sizeof(diff)));
	CHECK_STR(diff, "");
}

TEST(compare_finds_dropped_pool_and_changed_step_and_timer)
{
	char diff[256];
	CHECK(differs("{\"agentPoolName\":\"\"}", diff, sizeof(diff)));
	CHECK_STR(diff, "agentPoolName");
	CHECK(differs("{\"step\":{\"type\":\"Docker\",\"contextPath\":\"https://github.com/Azure-Samples/"
		      "acr-build-helloworld-node.git#main\",\"dockerFilePath\":\"Dockerfile\","
		      "\"imageNames\":[\"other:1\"]}}", diff, sizeof(diff)));
	CHECK_STR(diff, "imageNames");
	CHECK(differs("{\"trigger\":{\"timerTriggers\":[{\"name\":\"nightly\",\"schedule\":\"0 22 * * *\"}]}}",
		      diff, sizeof(diff)));
	CHECK_STR(diff, "timers");
	/* A commit trigger someone added is not ours: drift. */
	CHECK(differs("{\"trigger\":{\"timerTriggers\":[{\"name\":\"nightly\",\"schedule\":\"0 21 * * *\"}],"
		      "\"sourceTriggers\":[{\"name\":\"defaultSourceTriggerName\"}]}}", diff, sizeof(diff)));
	CHECK_STR(diff, "sourceTriggers");
}

TEST(compare_skips_secret_arguments_azure_hides)
{
	cJSON *d = parse("{\"properties\":{\"step\":{\"type\":\"Docker\",\"arguments\":[{\"name\":\"a\",\"value\":\"1\","
			 "\"isSecret\":false},{\"name\":\"s\",\"value\":\"x\",\"isSecret\":true}],"
			 "\"contextAccessToken\":\"tok\"}}}");
	cJSON *a = parse("{\"properties\":{\"step\":{\"type\":\"Docker\",\"arguments\":[{\"name\":\"a\",\"value\":\"1\","
			 "\"isSecret\":false}]}}}");
	char diff[128];
	CHECK(!task_plan_compare(d, a, diff, sizeof(diff)));
	cJSON_Delete(d);
	cJSON_Delete(a);
}

static struct task_observed ready_world(void)
{
	return (struct task_observed){.registry_found = true, .pool_ref = true, .pool_found = true,
				      .pool_ready = true, .pool_name = "mypool", .task_found = true, .owned = true,
				      .provisioning_state = "Succeeded", .in_sync_before = true};
}

static struct task_action plan(struct task_observed o)
{
	struct task_action a;
	task_plan(&o, &a);
	return a;
}

#define EXPECT(a, k, r) do { \
	CHECK_STR(task_action_name((a).kind), task_action_name(k)); \
	CHECK_STR((a).reason, r); \
} while (0)

TEST(plan_in_sync_is_noop_and_missing_task_is_created)
{
	EXPECT(plan(ready_world()), TASK_NOOP, "Succeeded");
	struct task_observed o = ready_world();
	o.task_found = false;
	o.owned = false;
	EXPECT(plan(o), TASK_CREATE, "Creating");
}

TEST(plan_waits_for_pool_and_stalls_when_it_is_gone)
{
	struct task_observed o = ready_world();
	o.pool_ready = false;
	o.task_found = false;
	struct task_action a = plan(o);
	EXPECT(a, TASK_WAIT, "AgentPoolNotReady");
	CHECK(strstr(a.message, "mypool") != NULL);
	o.pool_deleting = true;
	EXPECT(plan(o), TASK_WAIT, "AgentPoolNotReady");
	o.pool_found = false;
	a = plan(o);
	EXPECT(a, TASK_STALL, "AgentPoolNotFound");
	CHECK(strstr(a.message, "does not exist") != NULL);
	o = ready_world();
	o.pool_other_registry = true;
	EXPECT(plan(o), TASK_STALL, "AgentPoolInOtherRegistry");
	/* Shared compute has no pool to wait for. */
	o = ready_world();
	o.pool_ref = o.pool_found = o.pool_ready = false;
	EXPECT(plan(o), TASK_NOOP, "Succeeded");
}

TEST(plan_drift_versus_edit_versus_secret_rotation)
{
	struct task_observed o = ready_world();
	o.differs = true;
	o.diff = "agentPoolName";
	struct task_action a = plan(o);
	EXPECT(a, TASK_UPDATE, "DriftCorrected");
	CHECK(a.drift && strstr(a.message, "agentPoolName"));
	o.in_sync_before = false; /* the spec changed since */
	a = plan(o);
	EXPECT(a, TASK_UPDATE, "Updating");
	CHECK(!a.drift);
	o = ready_world();
	o.secrets_changed = true;
	EXPECT(plan(o), TASK_UPDATE, "SecretRotated");
}

TEST(plan_never_overwrites_a_foreign_task)
{
	struct task_observed o = ready_world();
	o.owned = false;
	o.task_tagged_ours = false;
	o.differs = true;
	o.diff = "step";
	EXPECT(plan(o), TASK_STALL, "ConflictingTask");
	o.differs = false;
	EXPECT(plan(o), TASK_ADOPT, "Adopted");
	o.task_tagged_ours = true; /* we created it but crashed before status */
	o.differs = true;
	EXPECT(plan(o), TASK_UPDATE, "DriftCorrected");
}

TEST(plan_waits_on_operations_and_stalls_on_missing_things)
{
	struct task_observed o = ready_world();
	o.provisioning_state = "Updating";
	EXPECT(plan(o), TASK_WAIT, "Updating");
	o = ready_world();
	o.missing_secret = "Secret ns/git key token";
	struct task_action a = plan(o);
	EXPECT(a, TASK_STALL, "SecretNotFound");
	CHECK(strstr(a.message, "ns/git") != NULL);
	o = ready_world();
	o.registry_found = false;
	EXPECT(plan(o), TASK_STALL, "RegistryNotFound");
}

TEST(plan_deletion_deletes_only_our_task)
{
	struct task_observed o = ready_world();
	o.deleting = true;
	EXPECT(plan(o), TASK_DELETE, "Deleting");
	o.task_found = false;
	EXPECT(plan(o), TASK_RELEASE, "Deleted");
	o = ready_world();
	o.deleting = true;
	o.owned = false;
	EXPECT(plan(o), TASK_RELEASE, "Deleted");
	o = ready_world();
	o.deleting = true;
	o.registry_found = false;
	EXPECT(plan(o), TASK_RELEASE, "Deleted");
	/* A pool that is not Ready never blocks deletion. */
	o = ready_world();
	o.deleting = true;
	o.pool_found = false;
	EXPECT(plan(o), TASK_DELETE, "Deleting");
}

TEST_MAIN(T(body_of_the_docs_scheduled_task), T(body_encoded_step_is_base64_and_shared_compute_has_no_pool),
	  T(body_secrets_resolved_or_missing_named), T(secret_hash_changes_with_values_not_shown),
	  T(compare_equal_ignores_case_and_azure_extras), T(compare_finds_dropped_pool_and_changed_step_and_timer),
	  T(compare_skips_secret_arguments_azure_hides), T(plan_in_sync_is_noop_and_missing_task_is_created),
	  T(plan_waits_for_pool_and_stalls_when_it_is_gone), T(plan_drift_versus_edit_versus_secret_rotation),
	  T(plan_never_overwrites_a_foreign_task), T(plan_waits_on_operations_and_stalls_on_missing_things),
	  T(plan_deletion_deletes_only_our_task))
