/* Unit tests for reconcilers/pipelineagentpool_spec.c: instance names, the
 * template hash and the containers' environment. */
#include "test.h"

#include "pipelineagentpool_spec.h"

#include <stdlib.h>
#include <string.h>

TEST(index_parses_prefix_dash_digits)
{
	CHECK_INT(pipelineagentpool_index("agents", "agents-0"), 0);
	CHECK_INT(pipelineagentpool_index("agents", "agents-17"), 17);
	CHECK_INT(pipelineagentpool_index("my-pool", "my-pool-3"), 3);
	CHECK_INT(pipelineagentpool_index("agents", "agents-"), -1);
	CHECK_INT(pipelineagentpool_index("agents", "agents-01"), -1);
	CHECK_INT(pipelineagentpool_index("agents", "agents-1x"), -1);
	CHECK_INT(pipelineagentpool_index("agents", "agents--1"), -1);
	CHECK_INT(pipelineagentpool_index("agents", "agents1"), -1);
	CHECK_INT(pipelineagentpool_index("agents", "other-1"), -1);
	CHECK_INT(pipelineagentpool_index("agents", "agents-1234567"), -1);
	/* another pool whose prefix extends ours is not ours */
	CHECK_INT(pipelineagentpool_index("agents", "agents-b-1"), -1);
	CHECK_INT(pipelineagentpool_index("agents", NULL), -1);
}

static void hash_of(char out[17], const char *json, const char *const *rvs)
{
	cJSON *aci = cJSON_Parse(json);
	CHECK(aci != NULL);
	pipelineagentpool_template_hash(out, aci, rvs);
	cJSON_Delete(aci);
}

#define BASE "\"location\":\"westeurope\",\"image\":\"agent:1\",\"cpu\":1,\"memoryInGB\":2"

TEST(template_hash_follows_what_rolls_an_instance)
{
	char a[17], b[17];
	hash_of(a, "{" BASE "}", NULL);
	CHECK_INT((int)strlen(a), 16);
	hash_of(b, "{" BASE "}", NULL);
	CHECK_STR(a, b);
	/* subscription and resource group do not roll (they cannot change) */
	hash_of(b, "{" BASE ",\"subscriptionId\":\"x\",\"resourceGroup\":\"y\"}", NULL);
	CHECK_STR(a, b);
	static const char *const variants[] = {
		"{\"location\":\"westeurope\",\"image\":\"agent:2\",\"cpu\":1,\"memoryInGB\":2}",
		"{\"location\":\"westeurope\",\"image\":\"agent:1\",\"cpu\":0.5,\"memoryInGB\":2}",
		"{\"location\":\"westeurope\",\"image\":\"agent:1\",\"cpu\":1,\"memoryInGB\":4}",
		"{" BASE ",\"subnetIds\":[\"/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/virtualNetworks/v/subnets/a\"]}",
		"{" BASE ",\"imagePull\":{\"server\":\"r.azurecr.io\",\"identityId\":\"/x\"}}",
		"{" BASE ",\"environment\":[{\"name\":\"A\",\"value\":\"1\"}]}",
		"{" BASE ",\"tags\":{\"team\":\"ci\"}}",
	};
	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		hash_of(b, variants[i], NULL);
		CHECK(strcmp(a, b) != 0);
	}
}

TEST(template_hash_sorts_tags_and_tells_values_apart)
{
	char a[17], b[17];
	hash_of(a, "{" BASE ",\"tags\":{\"a\":\"1\",\"b\":\"2\"}}", NULL);
	hash_of(b, "{" BASE ",\"tags\":{\"b\":\"2\",\"a\":\"1\"}}", NULL);
	CHECK_STR(a, b);
	hash_of(a, "{" BASE ",\"environment\":[{\"name\":\"A\",\"value\":\"1\"}]}", NULL);
	hash_of(b, "{" BASE ",\"environment\":[{\"name\":\"A\",\"value\":\"2\"}]}", NULL);
	CHECK(strcmp(a, b) != 0);
}

TEST(template_hash_takes_a_secret_resource_version_never_its_value)
{
	const char *env = "{" BASE ",\"environment\":[{\"name\":\"T\",\"secretKeyRef\":{\"name\":\"s\",\"key\":\"k\"}}]}";
	const char *rv1[] = {"100"}, *rv2[] = {"101"};
	char a[17], b[17], c[17];
	hash_of(a, env, rv1);
	hash_of(b, env, rv1);
	hash_of(c, env, rv2);
	CHECK_STR(a, b);
	CHECK(strcmp(a, c) != 0);
}

TEST(env_has_the_contract_and_the_spec_variables)
{
	cJSON *env = cJSON_Parse("[{\"name\":\"PLAIN\",\"value\":\"v\"},"
				 "{\"name\":\"SECRET\",\"secretKeyRef\":{\"name\":\"s\",\"key\":\"k\"}},"
				 "{\"name\":\"GONE\",\"secretKeyRef\":{\"name\":\"s\",\"key\":\"x\"}}]");
	const char *values[] = {NULL, "s3cret", NULL};
	struct pipelineagentpool_agent_env e = {
		.url = "https://dev.azure.com/contoso", .pool = "ci", .pool_id = 10, .agent_name = "agents-2",
		.agent_id = 42, .client_id = "cid", .auth_url = "https://vstoken.dev.azure.com/x", .key = "KEY",
	};
	struct arm_container_env_var *v = NULL;
	size_t n = 0;
	char numbuf[2][24];
	char *pass = NULL;
	pipelineagentpool_env(&v, &n, &e, env, values, numbuf, &pass);
	CHECK_INT((int)n, 11);
	/* The spec's variables that were set reach the agent and its jobs. */
	CHECK_STR(v[10].name, "AZP_ENV_PASSTHROUGH");
	CHECK_STR(v[10].value, "PLAIN,SECRET");
	free(pass);
	static const char *const names[] = {"AZP_URL", "AZP_POOL", "AZP_POOL_ID", "AZP_AGENT_NAME", "AZP_AGENT_ID",
					    "AZP_AGENT_CLIENT_ID", "AZP_AGENT_AUTH_URL", "AZP_AGENT_KEY", "PLAIN",
					    "SECRET"};
	for (size_t i = 0; i < n && i < 10; i++)
		CHECK_STR(v[i].name, names[i]);
	CHECK_STR(v[2].value, "10");
	CHECK_STR(v[4].value, "42");
	/* the key and the Secret's value go as secureValue only */
	CHECK(v[7].value == NULL);
	CHECK_STR(v[7].secure_value, "KEY");
	CHECK(v[9].value == NULL);
	CHECK_STR(v[9].secure_value, "s3cret");
	CHECK_STR(v[8].value, "v");
	CHECK(v[8].secure_value == NULL);
	free(v);
	cJSON_Delete(env);
	/* No spec variables: no passthrough. */
	pipelineagentpool_env(&v, &n, &e, NULL, NULL, numbuf, &pass);
	CHECK_INT((int)n, 8);
	CHECK(pass == NULL);
	free(v);
}

TEST_MAIN(T(index_parses_prefix_dash_digits), T(template_hash_follows_what_rolls_an_instance),
	  T(template_hash_sorts_tags_and_tells_values_apart),
	  T(template_hash_takes_a_secret_resource_version_never_its_value),
	  T(env_has_the_contract_and_the_spec_variables))
