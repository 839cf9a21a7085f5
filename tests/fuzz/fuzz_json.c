/*
 * fuzz_json.c: JSON answers to typed results. The input is a response body
 * and goes through every reader of one: an ARM agent pool and a run
 * (arm_agent_pool_from_json, arm_run_from_json, and the pool back to JSON
 * and in again), an Azure-AsyncOperation status body, a write's answer
 * (arm_operation_begin), a token endpoint answer (identity_token_parse) and
 * a Kubernetes Status (ctl_kube_status_error, which takes a length and so
 * gets an unterminated exact-size copy).
 */
#include "fuzz.h"

#include "azure/acr.h"
#include "azure/arm.h"
#include "azure/identity.h"
#include "buf.h"
#include "error.h"
#include "kube.h"

#include <cjson/cJSON.h>

static const long statuses[] = {400, 401, 403, 404, 409, 410, 422, 429, 500, 502, 503, 200, 418};

static void agent_pool(const cJSON *o)
{
	struct arm_agent_pool p, q;
	if (arm_agent_pool_from_json(&p, o) != 0) {
		FUZZ_ASSERT(!cJSON_IsObject(o));
		arm_agent_pool_dispose(&p);
		return;
	}
	cJSON *again = arm_agent_pool_to_json(&p);
	char *text = cJSON_PrintUnformatted(again);
	FUZZ_ASSERT(text);
	cJSON *back = cJSON_Parse(text);
	FUZZ_ASSERT(back);
	FUZZ_ASSERT(arm_agent_pool_from_json(&q, back) == 0);
	if (p.count >= 0)
		FUZZ_ASSERT(q.count == p.count);
	arm_agent_pool_dispose(&q);
	cJSON_Delete(back);
	free(text);
	cJSON_Delete(again);
	arm_agent_pool_dispose(&p);
}

static void run(const cJSON *o)
{
	struct arm_run r;
	int rc = arm_run_from_json(&r, o);
	FUZZ_ASSERT(rc == 0 || !cJSON_IsObject(o));
	if (rc == 0)
		(void)arm_run_status_terminal(r.status);
	arm_run_dispose(&r);
}

static void operation(const char *body, uint64_t h)
{
	enum arm_lro_state st;
	char *code = NULL, *message = NULL;
	int rc = arm_operation_status_parse(&st, &code, &message, body);
	FUZZ_ASSERT(rc == 0 || rc == CTL_EINVALID);
	if (rc == 0 && (st == ARM_LRO_FAILED || st == ARM_LRO_CANCELED))
		FUZZ_ASSERT(code && message);
	free(code);
	free(message);

	/* The same body as a write's 2xx answer. */
	static const long ok[] = {200, 201, 202, 204};
	static const char *const methods[] = {"PUT", "PATCH", "DELETE", "POST"};
	struct arm_response resp;
	struct arm_operation *op = NULL;
	arm_response_init(&resp);
	resp.status = ok[h % 4];
	if (h & 0x10)
		resp.location = xstrdup("https://management.azure.com/op?x=1");
	ctl_buf_puts(&resp.body, body);
	rc = arm_operation_begin(&op, methods[(h >> 8) % 4], "https://management.azure.com/r", &resp);
	FUZZ_ASSERT(rc == 0 || rc == CTL_EINVALID);
	arm_operation_free(op);
	arm_response_dispose(&resp);
}

static void token(const char *body, uint64_t h)
{
	struct identity_token t;
	int64_t now = 1700000000 + (int64_t)(h % 100000);
	int rc = identity_token_parse(&t, body, now);
	FUZZ_ASSERT(rc == 0 || rc == CTL_EINVALID);
	if (rc == 0) {
		FUZZ_ASSERT(t.access_token && t.access_token[0]);
		if (t.expires_on >= now)
			FUZZ_ASSERT(t.refresh_at <= t.expires_on);
	}
	identity_token_dispose(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h = fuzz_hash(data, size);
	char *bytes = fuzz_bytes(data, size);
	char *str = fuzz_str(data, size);
	cJSON *o = cJSON_ParseWithLength(bytes, size);

	agent_pool(o);
	run(o);
	/* The typed readers take what they are handed: a nested object too. */
	if (cJSON_IsObject(o)) {
		const cJSON *props = cJSON_GetObjectItemCaseSensitive(o, "properties");
		agent_pool(props);
		run(props);
	}
	operation(str, h);
	token(str, h);

	long status = statuses[h % (sizeof(statuses) / sizeof(statuses[0]))];
	int rc = ctl_kube_status_error(status, bytes, size);
	FUZZ_ASSERT(rc == ctl_error_from_http(status) && ctl_error_last()->code == rc);
	FUZZ_ASSERT(memchr(ctl_error_last()->reason, '\0', sizeof(ctl_error_last()->reason)));

	cJSON_Delete(o);
	free(str);
	free(bytes);
	return 0;
}
