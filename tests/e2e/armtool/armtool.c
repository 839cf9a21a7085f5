/*
 * armtool: a command-line driver over the ARM client (reconcilers/azure/:
 * arm.h, acr.h, aci.h, blob.h) and Azure identity (reconcilers/azure/identity.h),
 * for the end-to-end tests against the Azure emulator
 * (tests/e2e/test_arm_emulator.py).
 *
 *   acrpool-armtool [--arm-endpoint URL] [--authority-host URL]
 *       [--imds-endpoint URL] [--api-version V] [--registries-api-version V]
 *       --credential sp|workload|managed [--tenant T] [--client C]
 *       [--secret-env NAME] [--token-file F]
 *       --subscription S --resource-group RG --registry R
 *       [--max-attempts N] [--retry-delay-ms MS] [--max-retry-delay-ms MS]
 *       [--budget-ms MS] [--timeout-ms MS] [--wait] [--poll-cap-ms MS] [--poll-max N]
 *       [--repeat N] [--parallel N] [--step] [--advance-clock S]
 *       <command> [args]
 *
 * Each result is one JSON object on one line of stdout; a failure prints
 * {"error": {code, rc, reason, message, httpStatus, requestId,
 * retryAfterMs}} instead and the exit status is 1 (2: usage; 3: an LRO
 * ended Failed or Canceled). Every result also says which HTTP attempts
 * the client made ("http": [{method, operation, status}]) and how long it
 * slept between them ("sleptMs"), from the client's metrics and sleep
 * hooks, so a test can compare the client's view with the emulator's log.
 *
 * Secrets: the client secret comes from the environment variable named by
 * --secret-env (argv is visible in ps); no token, secret or SAS URL is
 * ever printed (SAS URLs are printed without their query string).
 *
 * Container groups (azure/aci.h; --registry is not needed):
 *   aci-create NAME SPECFILE   SPECFILE: {location, tags: {}, container,
 *       image, cpu, memoryInGB, env: [{name, value} | {name,
 *       secureValueEnv: VAR}], command: [], restartPolicy, subnetIds: [],
 *       identity, registryServer}; a secure value is read from the
 *       environment variable VAR, so it is never in argv or a file
 *   aci-get NAME | aci-list | aci-delete NAME | aci-restart NAME
 *   aci-tags NAME [KEY=VALUE ...]
 * The secure values are never printed: groups show a secure variable as
 * {name, secure: true}.
 *
 * Test hooks: --repeat N runs the command N times with one identity and
 * one client (so the token cache carries over); --step reads a line from
 * stdin before every repetition after the first (so a test can change the
 * emulator in between); --advance-clock S moves the identity's clock S
 * seconds further ahead at every repetition after the first (to reach a
 * token's refresh time without waiting an hour); --parallel N runs each
 * repetition in N threads at once over the same client and identity (the
 * token cache's one-fetcher-many-waiters path). --wait polls the LRO a
 * write returns to completion, like pool-op-poll does.
 */
#include "azure/aci.h"
#include "azure/acr.h"
#include "azure/arm.h"
#include "azure/blob.h"
#include "azure/identity.h"
#include "error.h"
#include "log.h"
#include "xalloc.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_CALL 1
#define EXIT_USAGE 2
#define EXIT_LRO_FAILED 3
#define FILE_MAX (4u * 1024 * 1024)

struct config {
	const char *arm_endpoint;
	const char *authority_host;
	const char *imds_endpoint;
	const char *api_version;
	const char *registries_api_version;
	const char *credential;
	const char *tenant;
	const char *client;
	const char *secret_env;
	const char *token_file;
	struct arm_registry_ref ref;
	int max_attempts;
	long retry_delay_ms, max_retry_delay_ms, budget_ms, timeout_ms;
	int wait;
	long poll_cap_ms;
	int poll_max;
	int repeat;
	int parallel;
	int step;
	long advance_clock_s;
	const char *command;
	char **args;
	int nargs;
};

/* What the client did during one command, per thread (the hooks below
 * run on the calling thread). */
struct trace {
	cJSON *http;          /* [{method, operation, status}] */
	long slept_ms;        /* client backoff and identity retries */
};

static _Thread_local struct trace trace;
/* Seconds added to the identity clock; changed only between repetitions,
 * while no command thread runs. */
static int64_t clock_offset;
static pthread_mutex_t stdout_mu = PTHREAD_MUTEX_INITIALIZER;

static void on_metrics(const char *method, const char *operation, long status, double seconds, void *arg)
{
	(void)seconds;
	(void)arg;
	if (!trace.http)
		return;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "method", method);
	cJSON_AddStringToObject(o, "operation", operation);
	cJSON_AddNumberToObject(o, "status", (double)status);
	cJSON_AddItemToArray(trace.http, o);
}

static void real_sleep(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* The client's waits are real (the tool is a loop, it may sleep); they
 * are also added up so the result can show them. */
static void on_sleep(long ms, void *arg)
{
	(void)arg;
	if (ms < 0)
		ms = 0;
	trace.slept_ms += ms;
	real_sleep(ms);
}

static int64_t identity_clock(void *arg)
{
	(void)arg;
	return (int64_t)time(NULL) + clock_offset;
}

/* ---- output ---- */

static void emit(cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);
	if (!s)
		abort();
	pthread_mutex_lock(&stdout_mu);
	fputs(s, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	pthread_mutex_unlock(&stdout_mu);
	cJSON_free(s);
}

static void add_str(cJSON *o, const char *name, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, name, v);
	else
		cJSON_AddNullToObject(o, name);
}

/* Attach the trace of the command to o and start a new one. */
static void add_trace(cJSON *o)
{
	cJSON_AddItemToObject(o, "http", trace.http);
	trace.http = cJSON_CreateArray();
	cJSON_AddNumberToObject(o, "sleptMs", (double)trace.slept_ms);
	trace.slept_ms = 0;
}

/* Print the thread's last error as {"error": {...}} with the trace. */
static int emit_error(int rc)
{
	const struct ctl_error *e = ctl_error_last();
	cJSON *o = cJSON_CreateObject();
	cJSON *err = cJSON_AddObjectToObject(o, "error");
	cJSON_AddStringToObject(err, "code", ctl_error_name(rc));
	cJSON_AddNumberToObject(err, "rc", rc);
	add_str(err, "reason", e->reason[0] ? e->reason : NULL);
	add_str(err, "message", e->message[0] ? e->message : NULL);
	cJSON_AddNumberToObject(err, "httpStatus", (double)e->http_status);
	add_str(err, "requestId", e->request_id[0] ? e->request_id : NULL);
	cJSON_AddNumberToObject(err, "retryAfterMs", (double)e->retry_after_ms);
	add_trace(o);
	emit(o);
	cJSON_Delete(o);
	return EXIT_CALL;
}

/* Print a result object (takes it) with the trace. */
static int emit_result(cJSON *o)
{
	add_trace(o);
	emit(o);
	cJSON_Delete(o);
	return 0;
}

/* "acrpool-armtool: <what><arg>" on stderr. */
static void usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "acrpool-armtool: %s%s\n", what, arg ? arg : "");
}

/* ---- conversions ---- */

static cJSON *registry_json(const struct arm_registry *g)
{
	cJSON *o = cJSON_CreateObject();
	add_str(o, "id", g->id);
	add_str(o, "location", g->location);
	add_str(o, "loginServer", g->login_server);
	add_str(o, "skuName", g->sku_name);
	add_str(o, "skuTier", g->sku_tier);
	add_str(o, "provisioningState", g->provisioning_state);
	return o;
}

static cJSON *pool_json(const struct arm_agent_pool *p)
{
	if (!p)
		return cJSON_CreateNull();
	cJSON *o = cJSON_CreateObject();
	add_str(o, "id", p->id);
	add_str(o, "name", p->name);
	add_str(o, "location", p->location);
	add_str(o, "tier", p->tier);
	add_str(o, "os", p->os);
	add_str(o, "subnetId", p->subnet_id);
	add_str(o, "provisioningState", p->provisioning_state);
	cJSON_AddNumberToObject(o, "count", p->count);
	cJSON *tags = cJSON_AddObjectToObject(o, "tags");
	for (size_t i = 0; i < p->ntags; i++)
		cJSON_AddStringToObject(tags, p->tags[i].name, p->tags[i].value ? p->tags[i].value : "");
	return o;
}

static cJSON *run_json(const struct arm_run *r)
{
	if (!r)
		return cJSON_CreateNull();
	cJSON *o = cJSON_CreateObject();
	add_str(o, "id", r->id);
	add_str(o, "runId", r->run_id);
	add_str(o, "status", r->status);
	add_str(o, "runType", r->run_type);
	add_str(o, "task", r->task);
	add_str(o, "agentPoolName", r->agent_pool_name);
	add_str(o, "createTime", r->create_time);
	add_str(o, "startTime", r->start_time);
	add_str(o, "finishTime", r->finish_time);
	add_str(o, "lastUpdatedTime", r->last_updated_time);
	add_str(o, "runErrorMessage", r->run_error_message);
	add_str(o, "provisioningState", r->provisioning_state);
	cJSON *imgs = cJSON_AddArrayToObject(o, "outputImages");
	for (size_t i = 0; i < r->noutput_images; i++) {
		cJSON *im = cJSON_CreateObject();
		add_str(im, "registry", r->output_images[i].registry);
		add_str(im, "repository", r->output_images[i].repository);
		add_str(im, "tag", r->output_images[i].tag);
		add_str(im, "digest", r->output_images[i].digest);
		cJSON_AddItemToArray(imgs, im);
	}
	cJSON_AddBoolToObject(o, "terminal", arm_run_status_terminal(r->status));
	return o;
}

static cJSON *string_list(char *const *v, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
	return a;
}

/* A container group as the tool prints it: a secure variable is its name
 * and "secure": true (the struct holds no value for it anyway). */
static cJSON *group_json(const struct arm_container_group *g)
{
	if (!g)
		return cJSON_CreateNull();
	cJSON *o = cJSON_CreateObject();
	add_str(o, "id", g->id);
	add_str(o, "name", g->name);
	add_str(o, "location", g->location);
	add_str(o, "provisioningState", g->provisioning_state);
	add_str(o, "state", g->state);
	add_str(o, "osType", g->os_type);
	add_str(o, "restartPolicy", g->restart_policy);
	cJSON *tags = cJSON_AddObjectToObject(o, "tags");
	for (size_t i = 0; i < g->ntags; i++)
		cJSON_AddStringToObject(tags, g->tags[i].name, g->tags[i].value ? g->tags[i].value : "");
	cJSON_AddNumberToObject(o, "containers", (double)g->ncontainers);
	add_str(o, "container", g->container_name);
	add_str(o, "image", g->image);
	cJSON_AddNumberToObject(o, "cpu", g->cpu);
	cJSON_AddNumberToObject(o, "memoryInGB", g->memory_in_gb);
	cJSON *env = cJSON_AddArrayToObject(o, "env");
	for (size_t i = 0; i < g->nenv; i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "name", g->env[i].name);
		if (g->env[i].value)
			cJSON_AddStringToObject(e, "value", g->env[i].value);
		else
			cJSON_AddBoolToObject(e, "secure", 1);
		cJSON_AddItemToArray(env, e);
	}
	cJSON_AddItemToObject(o, "command", string_list(g->command, g->ncommand));
	cJSON_AddNumberToObject(o, "restartCount", g->restart_count);
	cJSON *cur = cJSON_AddObjectToObject(o, "currentState");
	add_str(cur, "state", g->current.state);
	add_str(cur, "startTime", g->current.start_time);
	add_str(cur, "finishTime", g->current.finish_time);
	add_str(cur, "detailStatus", g->current.detail_status);
	if (g->current.has_exit_code)
		cJSON_AddNumberToObject(cur, "exitCode", g->current.exit_code);
	else
		cJSON_AddNullToObject(cur, "exitCode");
	cJSON_AddItemToObject(o, "subnetIds", string_list(g->subnet_ids, g->nsubnet_ids));
	add_str(o, "identityType", g->identity_type);
	cJSON_AddItemToObject(o, "identityIds", string_list(g->identity_ids, g->nidentity_ids));
	add_str(o, "registryServer", g->registry_server);
	add_str(o, "registryIdentity", g->registry_identity);
	return o;
}

static cJSON *operation_json(const struct arm_operation *op)
{
	if (!op)
		return cJSON_CreateNull();
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "kind", arm_lro_kind_name(op->kind));
	add_str(o, "method", op->method);
	add_str(o, "pollUrl", op->poll_url);
	add_str(o, "resourceUrl", op->resource_url);
	cJSON_AddNumberToObject(o, "retryAfterMs", (double)op->retry_after_ms);
	add_str(o, "errorCode", op->error_code);
	add_str(o, "errorMessage", op->error_message);
	return o;
}

/* A JSON file (a task body, a run request). NULL with ctl_error set. */
static cJSON *read_json_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct ctl_buf b = CTL_BUF_INIT;
	char chunk[4096];
	cJSON *o = NULL;

	ctl_buf_init(&b, FILE_MAX);
	if (!f) {
		ctl_error_set(CTL_EINVALID, "FileUnreadable", "cannot open %.200s: %s", path, strerror(errno));
		goto done;
	}
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (ctl_buf_append(&b, chunk, n)) {
			ctl_error_set(CTL_EINVALID, "FileTooLarge", "%.200s is too large", path);
			goto done;
		}
	}
	o = cJSON_Parse(ctl_buf_str(&b));
	if (!o)
		ctl_error_set(CTL_EINVALID, "InvalidJson", "%.200s is not JSON", path);
done:
	if (f)
		fclose(f);
	ctl_buf_dispose(&b);
	return o;
}

/* ---- long-running operations ---- */

/*
 * Run op to completion: arm_operation_poll until a terminal state,
 * sleeping op->retry_after_ms (capped by --poll-cap-ms) between looks,
 * and before the first one when first_wait (the write's own Retry-After;
 * an operation rebuilt from stored status has waited already).
 * Returns an object {state, polls, retryAfterMs: [...], pollSleptMs,
 * result, errorCode, errorMessage} in *out, or an error code (ctl_error
 * set) when a poll could not be read or --poll-max was reached.
 */
static int operation_wait(cJSON **out, struct arm_client *c, struct arm_operation *op,
			  const struct config *cfg, int first_wait)
{
	int rc = 0, polls = 0;
	long slept = 0;
	enum arm_lro_state state = ARM_LRO_IN_PROGRESS;
	cJSON *result = NULL, *waits = cJSON_CreateArray();

	*out = NULL;
	for (;;) {
		if (polls > 0 || first_wait) {
			long wait = op->retry_after_ms;
			if (cfg->poll_cap_ms >= 0 && wait > cfg->poll_cap_ms)
				wait = cfg->poll_cap_ms;
			real_sleep(wait);
			slept += wait;
		}
		cJSON_Delete(result);
		result = NULL;
		rc = arm_operation_poll(&state, &result, c, op);
		polls++;
		if (rc)
			goto done;
		cJSON_AddItemToArray(waits, cJSON_CreateNumber((double)op->retry_after_ms));
		if (state != ARM_LRO_IN_PROGRESS)
			break;
		if (polls >= cfg->poll_max) {
			rc = ctl_error_set(CTL_EUNAVAIL, "PollLimitReached",
					   "operation still in progress after %d polls", polls);
			goto done;
		}
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "state", arm_lro_state_name(state));
	cJSON_AddNumberToObject(o, "polls", polls);
	cJSON_AddItemToObject(o, "retryAfterMs", waits);
	waits = NULL;
	cJSON_AddNumberToObject(o, "pollSleptMs", (double)slept);
	cJSON_AddItemToObject(o, "result", result ? result : cJSON_CreateNull());
	result = NULL;
	add_str(o, "errorCode", op->error_code);
	add_str(o, "errorMessage", op->error_message);
	*out = o;
done:
	cJSON_Delete(waits);
	cJSON_Delete(result);
	return rc;
}

/*
 * The result of a write: {<name>: value, operation: op|null} and, with
 * --wait and an operation, "lro": the outcome of polling it. Takes value
 * and op. Returns the exit status.
 */
static int finish_write(struct arm_client *c, const struct config *cfg, const char *name, cJSON *value,
			struct arm_operation *op)
{
	cJSON *o = cJSON_CreateObject();
	int status = 0;
	if (name)
		cJSON_AddItemToObject(o, name, value ? value : cJSON_CreateNull());
	else
		cJSON_Delete(value);
	cJSON_AddItemToObject(o, "operation", operation_json(op));
	if (cfg->wait && op) {
		cJSON *lro = NULL;
		int rc = operation_wait(&lro, c, op, cfg, 1);
		if (rc) {
			cJSON_Delete(o);
			arm_operation_free(op);
			return emit_error(rc);
		}
		if (op->error_code)
			status = EXIT_LRO_FAILED;
		cJSON_AddItemToObject(o, "lro", lro);
	}
	arm_operation_free(op);
	emit_result(o);
	return status;
}

/* ---- commands ---- */

static int need_args(const struct config *cfg, int min, int max, const char *usage)
{
	if (cfg->nargs < min || cfg->nargs > max) {
		usage_error("usage: ", usage);
		return 0;
	}
	return 1;
}

static int parse_int(int *out, const char *s)
{
	char *end = NULL;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < -1 || v > 1000000)
		return -1;
	*out = (int)v;
	return 0;
}

static int cmd_token_twice(struct identity *id)
{
	char *a = NULL, *b = NULL;
	int rc = identity_token_get(&a, id);
	if (rc)
		return emit_error(rc);
	rc = identity_token_get(&b, id);
	if (rc) {
		identity_token_free(a);
		return emit_error(rc);
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "secondFromCache", strcmp(a, b) == 0);
	cJSON_AddNumberToObject(o, "tokenLength", (double)strlen(b));
	identity_token_free(a);
	identity_token_free(b);
	return emit_result(o);
}

static int cmd_token(struct identity *id)
{
	char *a = NULL;
	int rc = identity_token_get(&a, id);
	if (rc)
		return emit_error(rc);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "tokenLength", (double)strlen(a));
	identity_token_free(a);
	return emit_result(o);
}

static int cmd_pool_op_poll(struct arm_client *c, const struct config *cfg)
{
	enum arm_lro_kind kind;
	struct arm_operation *op = NULL;
	cJSON *lro = NULL;
	if (!need_args(cfg, 3, 4, "pool-op-poll KIND METHOD RESOURCE_URL [POLL_URL]"))
		return EXIT_USAGE;
	int rc = arm_lro_kind_parse(&kind, cfg->args[0]);
	if (rc == 0)
		rc = arm_operation_new(&op, kind, cfg->args[1], cfg->nargs > 3 ? cfg->args[3] : NULL,
				       cfg->args[2]);
	if (rc == 0)
		rc = operation_wait(&lro, c, op, cfg, 0);
	if (rc) {
		arm_operation_free(op);
		return emit_error(rc);
	}
	int status = op->error_code ? EXIT_LRO_FAILED : 0;
	cJSON_AddItemToObject(lro, "operation", operation_json(op));
	arm_operation_free(op);
	emit_result(lro);
	return status;
}

static int cmd_pools(struct arm_client *c, const struct config *cfg)
{
	const struct arm_registry_ref *ref = &cfg->ref;
	const char *cmd = cfg->command;
	struct arm_agent_pool *pool = NULL;
	struct arm_operation *op = NULL;
	int rc, count;

	if (strcmp(cmd, "pool-create") == 0) {
		if (!need_args(cfg, 3, 4, "pool-create NAME TIER COUNT [SUBNET]"))
			return EXIT_USAGE;
		if (parse_int(&count, cfg->args[2])) {
			usage_error("bad COUNT: ", cfg->args[2]);
			return EXIT_USAGE;
		}
		struct arm_agent_pool desired = {0};
		desired.location = "eastus";
		desired.tier = cfg->args[1];
		desired.os = "Linux";
		desired.count = count;
		desired.subnet_id = cfg->nargs > 3 ? cfg->args[3] : NULL;
		rc = arm_agent_pool_create(&pool, &op, c, ref, cfg->args[0], &desired);
		if (rc)
			return emit_error(rc);
		cJSON *v = pool_json(pool);
		arm_agent_pool_free(pool);
		return finish_write(c, cfg, "pool", v, op);
	}
	if (strcmp(cmd, "pool-get") == 0) {
		if (!need_args(cfg, 1, 1, "pool-get NAME"))
			return EXIT_USAGE;
		rc = arm_agent_pool_get(&pool, c, ref, cfg->args[0]);
		if (rc)
			return emit_error(rc);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "pool", pool_json(pool));
		arm_agent_pool_free(pool);
		return emit_result(o);
	}
	if (strcmp(cmd, "pool-update") == 0) {
		/* pool-update NAME COUNT [KEY=VALUE ...]: COUNT "-" leaves the
		 * count alone; any tag argument (or a lone "=") sets the tags. */
		if (!need_args(cfg, 2, 34, "pool-update NAME COUNT|- [KEY=VALUE ...]"))
			return EXIT_USAGE;
		count = -1;
		if (strcmp(cfg->args[1], "-") != 0 && parse_int(&count, cfg->args[1])) {
			usage_error("bad COUNT: ", cfg->args[1]);
			return EXIT_USAGE;
		}
		struct arm_tag tags[32];
		size_t ntags = 0;
		char *copies[32] = {0};
		for (int i = 2; i < cfg->nargs; i++) {
			if (strcmp(cfg->args[i], "=") == 0)
				continue;
			char *eq = strchr(cfg->args[i], '=');
			if (!eq || eq == cfg->args[i]) {
				usage_error("bad tag (want KEY=VALUE): ", cfg->args[i]);
				for (size_t k = 0; k < ntags; k++)
					free(copies[k]);
				return EXIT_USAGE;
			}
			copies[ntags] = xstrdup(cfg->args[i]);
			copies[ntags][eq - cfg->args[i]] = '\0';
			tags[ntags].name = copies[ntags];
			tags[ntags].value = copies[ntags] + (eq - cfg->args[i]) + 1;
			ntags++;
		}
		rc = arm_agent_pool_update(&pool, &op, c, ref, cfg->args[0], count, tags, ntags, cfg->nargs > 2);
		for (size_t k = 0; k < ntags; k++)
			free(copies[k]);
		if (rc)
			return emit_error(rc);
		cJSON *v = pool_json(pool);
		arm_agent_pool_free(pool);
		return finish_write(c, cfg, "pool", v, op);
	}
	if (strcmp(cmd, "pool-delete") == 0) {
		if (!need_args(cfg, 1, 1, "pool-delete NAME"))
			return EXIT_USAGE;
		rc = arm_agent_pool_delete(&op, c, ref, cfg->args[0]);
		if (rc)
			return emit_error(rc);
		return finish_write(c, cfg, NULL, NULL, op);
	}
	if (strcmp(cmd, "pool-list") == 0) {
		struct arm_agent_pool *items = NULL;
		size_t n = 0;
		if (!need_args(cfg, 0, 0, "pool-list"))
			return EXIT_USAGE;
		rc = arm_agent_pool_list(&items, &n, c, ref);
		if (rc)
			return emit_error(rc);
		cJSON *o = cJSON_CreateObject();
		cJSON *a = cJSON_AddArrayToObject(o, "pools");
		for (size_t i = 0; i < n; i++)
			cJSON_AddItemToArray(a, pool_json(&items[i]));
		arm_agent_pool_array_free(items, n);
		return emit_result(o);
	}
	if (strcmp(cmd, "pool-queue") == 0) {
		if (!need_args(cfg, 1, 1, "pool-queue NAME"))
			return EXIT_USAGE;
		rc = arm_agent_pool_queue_status(&count, c, ref, cfg->args[0]);
		if (rc)
			return emit_error(rc);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "count", count);
		return emit_result(o);
	}
	if (strcmp(cmd, "pool-op-poll") == 0)
		return cmd_pool_op_poll(c, cfg);
	return -1;
}

static int cmd_tasks(struct arm_client *c, const struct config *cfg)
{
	const struct arm_registry_ref *ref = &cfg->ref;
	const char *cmd = cfg->command;
	struct arm_operation *op = NULL;
	cJSON *body = NULL, *out = NULL;
	int rc;

	if (strcmp(cmd, "task-create") == 0 || strcmp(cmd, "task-update") == 0) {
		int create = cmd[5] == 'c';
		if (!need_args(cfg, 2, 2, create ? "task-create NAME JSONFILE" : "task-update NAME JSONFILE"))
			return EXIT_USAGE;
		if (!(body = read_json_file(cfg->args[1])))
			return emit_error(ctl_error_last()->code);
		rc = create ? arm_task_create(&out, &op, c, ref, cfg->args[0], body)
			    : arm_task_update(&out, &op, c, ref, cfg->args[0], body);
		cJSON_Delete(body);
		if (rc)
			return emit_error(rc);
		return finish_write(c, cfg, "task", out, op);
	}
	if (strcmp(cmd, "task-get") == 0) {
		if (!need_args(cfg, 1, 1, "task-get NAME"))
			return EXIT_USAGE;
		rc = arm_task_get(&out, c, ref, cfg->args[0]);
		if (rc)
			return emit_error(rc);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "task", out);
		return emit_result(o);
	}
	if (strcmp(cmd, "task-delete") == 0) {
		if (!need_args(cfg, 1, 1, "task-delete NAME"))
			return EXIT_USAGE;
		rc = arm_task_delete(&op, c, ref, cfg->args[0]);
		if (rc)
			return emit_error(rc);
		return finish_write(c, cfg, NULL, NULL, op);
	}
	if (strcmp(cmd, "task-list") == 0) {
		if (!need_args(cfg, 0, 0, "task-list"))
			return EXIT_USAGE;
		rc = arm_task_list(&out, c, ref);
		if (rc)
			return emit_error(rc);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "tasks", out);
		return emit_result(o);
	}
	return -1;
}

static int cmd_runs(struct arm_client *c, const struct config *cfg)
{
	const struct arm_registry_ref *ref = &cfg->ref;
	const char *cmd = cfg->command;
	struct arm_operation *op = NULL;
	struct arm_run *run = NULL;
	int rc;

	if (strcmp(cmd, "run-schedule") == 0) {
		if (!need_args(cfg, 1, 1, "run-schedule JSONFILE"))
			return EXIT_USAGE;
		cJSON *body = read_json_file(cfg->args[0]);
		if (!body)
			return emit_error(ctl_error_last()->code);
		rc = arm_run_schedule(&run, &op, c, ref, body);
		cJSON_Delete(body);
		if (rc)
			return emit_error(rc);
		cJSON *v = run_json(run);
		arm_run_free(run);
		return finish_write(c, cfg, "run", v, op);
	}
	if (strcmp(cmd, "run-get") == 0) {
		if (!need_args(cfg, 1, 1, "run-get RUNID"))
			return EXIT_USAGE;
		rc = arm_run_get(&run, c, ref, cfg->args[0]);
		if (rc)
			return emit_error(rc);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "run", run_json(run));
		arm_run_free(run);
		return emit_result(o);
	}
	if (strcmp(cmd, "run-list") == 0) {
		struct arm_run *items = NULL;
		size_t n = 0;
		int top = 0;
		if (!need_args(cfg, 0, 2, "run-list [FILTER] [TOP]"))
			return EXIT_USAGE;
		if (cfg->nargs > 1 && parse_int(&top, cfg->args[1])) {
			usage_error("bad TOP: ", cfg->args[1]);
			return EXIT_USAGE;
		}
		rc = arm_run_list(&items, &n, c, ref, cfg->nargs > 0 ? cfg->args[0] : NULL, top);
		if (rc)
			return emit_error(rc);
		cJSON *o = cJSON_CreateObject();
		cJSON *a = cJSON_AddArrayToObject(o, "runs");
		for (size_t i = 0; i < n; i++)
			cJSON_AddItemToArray(a, run_json(&items[i]));
		arm_run_array_free(items, n);
		return emit_result(o);
	}
	if (strcmp(cmd, "run-cancel") == 0) {
		if (!need_args(cfg, 1, 1, "run-cancel RUNID"))
			return EXIT_USAGE;
		rc = arm_run_cancel(&op, c, ref, cfg->args[0]);
		if (rc)
			return emit_error(rc);
		return finish_write(c, cfg, NULL, NULL, op);
	}
	if (strcmp(cmd, "run-log-url") == 0) {
		char *url = NULL;
		if (!need_args(cfg, 1, 1, "run-log-url RUNID"))
			return EXIT_USAGE;
		rc = arm_run_log_sas_url(&url, c, ref, cfg->args[0]);
		if (rc)
			return emit_error(rc);
		/* The SAS URL is a secret: only its path leaves the tool. */
		char *safe = ctl_log_redact_url(url);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "logUrlRedacted", safe);
		cJSON_AddBoolToObject(o, "hadQuery", strchr(url, '?') != NULL);
		explicit_bzero(url, strlen(url));
		free(url);
		free(safe);
		return emit_result(o);
	}
	return -1;
}

static int cmd_upload(struct arm_client *c, const struct config *cfg)
{
	struct arm_upload_url u = {0};
	int upload = strcmp(cfg->command, "upload") == 0;
	if (!need_args(cfg, upload ? 1 : 0, upload ? 1 : 0, upload ? "upload FILE" : "upload-url"))
		return EXIT_USAGE;
	int rc = arm_build_source_upload_url(&u, c, &cfg->ref);
	if (rc)
		return emit_error(rc);
	if (upload && (rc = arm_build_source_upload_file(c, u.upload_url, cfg->args[0]))) {
		arm_upload_url_dispose(&u);
		return emit_error(rc);
	}
	char *safe = ctl_log_redact_url(u.upload_url);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "relativePath", u.relative_path);
	cJSON_AddStringToObject(o, "uploadUrlRedacted", safe);
	cJSON_AddBoolToObject(o, "uploaded", upload);
	free(safe);
	arm_upload_url_dispose(&u);
	return emit_result(o);
}

/* KEY=VALUE arguments as tags (a lone "=" is skipped: an empty set).
 * Names and values point into copies[], which the caller frees. -1 with
 * a usage error for a malformed one. */
static int parse_tags(struct arm_tag *tags, size_t *ntags, char **copies, char **args, int nargs)
{
	*ntags = 0;
	for (int i = 0; i < nargs; i++) {
		if (strcmp(args[i], "=") == 0)
			continue;
		char *eq = strchr(args[i], '=');
		if (!eq || eq == args[i]) {
			usage_error("bad tag (want KEY=VALUE): ", args[i]);
			return -1;
		}
		copies[*ntags] = xstrdup(args[i]);
		copies[*ntags][eq - args[i]] = '\0';
		tags[*ntags].name = copies[*ntags];
		tags[*ntags].value = copies[*ntags] + (eq - args[i]) + 1;
		(*ntags)++;
	}
	return 0;
}

/* The tool's spec file: every string borrowed from the JSON tree (or the
 * environment, for secure values). */
struct aci_spec_arrays {
	struct arm_tag tags[32];
	struct arm_container_env_var env[32];
	const char *command[16];
	const char *subnets[8];
};

static const char *jstring(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int aci_spec_from_file(struct arm_container_group_spec *s, struct aci_spec_arrays *a, const cJSON *f,
			      const char *name)
{
	const cJSON *it;
	memset(s, 0, sizeof(*s));
	memset(a, 0, sizeof(*a));
	s->name = name;
	s->location = jstring(f, "location");
	s->container_name = jstring(f, "container");
	s->image = jstring(f, "image");
	s->restart_policy = jstring(f, "restartPolicy");
	s->identity_id = jstring(f, "identity");
	s->registry_server = jstring(f, "registryServer");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(f, "cpu");
	s->cpu = cJSON_IsNumber(v) ? v->valuedouble : 0;
	v = cJSON_GetObjectItemCaseSensitive(f, "memoryInGB");
	s->memory_in_gb = cJSON_IsNumber(v) ? v->valuedouble : 0;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(f, "tags")) {
		if (s->ntags < 32 && cJSON_IsString(it))
			a->tags[s->ntags++] = (struct arm_tag){it->string, it->valuestring};
	}
	s->tags = a->tags;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(f, "env")) {
		if (s->nenv == 32)
			break;
		struct arm_container_env_var *e = &a->env[s->nenv++];
		e->name = jstring(it, "name");
		e->value = jstring(it, "value");
		const char *var = jstring(it, "secureValueEnv");
		if (var && !(e->secure_value = getenv(var))) {
			usage_error("environment variable is not set: ", var);
			return -1;
		}
	}
	s->env = a->env;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(f, "command")) {
		if (s->ncommand < 16 && cJSON_IsString(it))
			a->command[s->ncommand++] = it->valuestring;
	}
	s->command = a->command;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(f, "subnetIds")) {
		if (s->nsubnet_ids < 8 && cJSON_IsString(it))
			a->subnets[s->nsubnet_ids++] = it->valuestring;
	}
	s->subnet_ids = a->subnets;
	return 0;
}

static int cmd_aci(struct arm_client *c, const struct config *cfg)
{
	const struct arm_resource_group_ref ref = {cfg->ref.subscription_id, cfg->ref.resource_group};
	const char *cmd = cfg->command;
	struct arm_container_group *g = NULL;
	struct arm_operation *op = NULL;
	int rc;

	if (strcmp(cmd, "aci-create") == 0) {
		struct arm_container_group_spec spec;
		struct aci_spec_arrays arrays;
		if (!need_args(cfg, 2, 2, "aci-create NAME SPECFILE"))
			return EXIT_USAGE;
		cJSON *f = read_json_file(cfg->args[1]);
		if (!f)
			return emit_error(ctl_error_last()->code);
		if (aci_spec_from_file(&spec, &arrays, f, cfg->args[0])) {
			cJSON_Delete(f);
			return EXIT_USAGE;
		}
		rc = arm_container_group_create(&g, &op, c, &ref, &spec);
		cJSON_Delete(f);
		if (rc)
			return emit_error(rc);
		cJSON *v = group_json(g);
		arm_container_group_free(g);
		return finish_write(c, cfg, "group", v, op);
	}
	if (strcmp(cmd, "aci-get") == 0) {
		if (!need_args(cfg, 1, 1, "aci-get NAME"))
			return EXIT_USAGE;
		if ((rc = arm_container_group_get(&g, c, &ref, cfg->args[0])))
			return emit_error(rc);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "group", group_json(g));
		arm_container_group_free(g);
		return emit_result(o);
	}
	if (strcmp(cmd, "aci-list") == 0) {
		struct arm_container_group *items = NULL;
		size_t n = 0;
		if (!need_args(cfg, 0, 0, "aci-list"))
			return EXIT_USAGE;
		if ((rc = arm_container_group_list(&items, &n, c, &ref)))
			return emit_error(rc);
		cJSON *o = cJSON_CreateObject();
		cJSON *a = cJSON_AddArrayToObject(o, "groups");
		for (size_t i = 0; i < n; i++)
			cJSON_AddItemToArray(a, group_json(&items[i]));
		arm_container_group_array_free(items, n);
		return emit_result(o);
	}
	if (strcmp(cmd, "aci-delete") == 0 || strcmp(cmd, "aci-restart") == 0) {
		int del = cmd[4] == 'd';
		if (!need_args(cfg, 1, 1, del ? "aci-delete NAME" : "aci-restart NAME"))
			return EXIT_USAGE;
		rc = del ? arm_container_group_delete(&op, c, &ref, cfg->args[0])
			 : arm_container_group_restart(&op, c, &ref, cfg->args[0]);
		if (rc)
			return emit_error(rc);
		return finish_write(c, cfg, NULL, NULL, op);
	}
	if (strcmp(cmd, "aci-tags") == 0) {
		struct arm_tag tags[32] = {0};
		char *copies[32] = {0};
		size_t ntags = 0;
		if (!need_args(cfg, 1, 33, "aci-tags NAME [KEY=VALUE ...]"))
			return EXIT_USAGE;
		if (parse_tags(tags, &ntags, copies, cfg->args + 1, cfg->nargs - 1) == 0)
			rc = arm_container_group_update_tags(&g, c, &ref, cfg->args[0], tags, ntags);
		else
			rc = 1;
		for (size_t k = 0; k < ntags; k++)
			free(copies[k]);
		if (rc == 1)
			return EXIT_USAGE;
		if (rc)
			return emit_error(rc);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "group", group_json(g));
		arm_container_group_free(g);
		return emit_result(o);
	}
	return -1;
}

static int run_command(struct arm_client *c, struct identity *id, const struct config *cfg)
{
	const char *cmd = cfg->command;
	int rc;

	if (strcmp(cmd, "token-twice") == 0)
		return cmd_token_twice(id);
	if (strcmp(cmd, "token") == 0)
		return cmd_token(id);
	if (strcmp(cmd, "registry-get") == 0) {
		struct arm_registry *g = NULL;
		if ((rc = arm_registry_get(&g, c, &cfg->ref)))
			return emit_error(rc);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "registry", registry_json(g));
		arm_registry_free(g);
		return emit_result(o);
	}
	if (strncmp(cmd, "pool-", 5) == 0 && (rc = cmd_pools(c, cfg)) >= 0)
		return rc;
	if (strncmp(cmd, "task-", 5) == 0 && (rc = cmd_tasks(c, cfg)) >= 0)
		return rc;
	if (strncmp(cmd, "run-", 4) == 0 && (rc = cmd_runs(c, cfg)) >= 0)
		return rc;
	if (strcmp(cmd, "upload-url") == 0 || strcmp(cmd, "upload") == 0)
		return cmd_upload(c, cfg);
	if (strncmp(cmd, "aci-", 4) == 0 && (rc = cmd_aci(c, cfg)) >= 0)
		return rc;
	usage_error("unknown command: ", cmd);
	return EXIT_USAGE;
}

/* ---- parallel runs ---- */

struct worker {
	pthread_t thread;
	pthread_barrier_t *start;
	struct arm_client *client;
	struct identity *id;
	const struct config *cfg;
	int status;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	trace.http = cJSON_CreateArray();
	trace.slept_ms = 0;
	/* Everyone starts at once, so they meet at a cold token cache. */
	pthread_barrier_wait(w->start);
	w->status = run_command(w->client, w->id, w->cfg);
	cJSON_Delete(trace.http);
	trace.http = NULL;
	return NULL;
}

/* The command once, or in cfg->parallel threads sharing one client and
 * one identity (as the operator's workers do). The worst exit status. */
static int run_once(struct arm_client *client, struct identity *id, const struct config *cfg)
{
	if (cfg->parallel <= 1) {
		ctl_error_clear();
		return run_command(client, id, cfg);
	}
	struct worker w[64];
	pthread_barrier_t start;
	int status = 0;
	pthread_barrier_init(&start, NULL, (unsigned)cfg->parallel);
	for (int i = 0; i < cfg->parallel; i++) {
		w[i] = (struct worker){.start = &start, .client = client, .id = id, .cfg = cfg};
		if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0)
			abort();
	}
	for (int i = 0; i < cfg->parallel; i++) {
		pthread_join(w[i].thread, NULL);
		if (w[i].status > status)
			status = w[i].status;
	}
	pthread_barrier_destroy(&start);
	return status;
}

/* ---- main ---- */

static int parse_long(long *out, const char *s)
{
	char *end = NULL;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < -1)
		return -1;
	*out = v;
	return 0;
}

static int parse_options(struct config *cfg, int argc, char **argv)
{
	int i;
	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *o = argv[i];
		long v = 0;
		if (strcmp(o, "--wait") == 0) {
			cfg->wait = 1;
			continue;
		}
		if (strcmp(o, "--step") == 0) {
			cfg->step = 1;
			continue;
		}
		if (i + 1 >= argc) {
			usage_error("option needs a value: ", o);
			return -1;
		}
		const char *val = argv[++i];
#define STR(name, field)                 \
	if (strcmp(o, name) == 0) {      \
		cfg->field = val;        \
		continue;                \
	}
#define NUM(name, field)                                          \
	if (strcmp(o, name) == 0) {                               \
		if (parse_long(&v, val)) {                        \
			usage_error("bad value for ", name);    \
			return -1;                                \
		}                                                 \
		cfg->field = v;                                   \
		continue;                                         \
	}
		STR("--arm-endpoint", arm_endpoint)
		STR("--authority-host", authority_host)
		STR("--imds-endpoint", imds_endpoint)
		STR("--api-version", api_version)
		STR("--registries-api-version", registries_api_version)
		STR("--credential", credential)
		STR("--tenant", tenant)
		STR("--client", client)
		STR("--secret-env", secret_env)
		STR("--token-file", token_file)
		STR("--subscription", ref.subscription_id)
		STR("--resource-group", ref.resource_group)
		STR("--registry", ref.name)
		NUM("--max-attempts", max_attempts)
		NUM("--retry-delay-ms", retry_delay_ms)
		NUM("--max-retry-delay-ms", max_retry_delay_ms)
		NUM("--budget-ms", budget_ms)
		NUM("--timeout-ms", timeout_ms)
		NUM("--poll-cap-ms", poll_cap_ms)
		NUM("--poll-max", poll_max)
		NUM("--repeat", repeat)
		NUM("--parallel", parallel)
		NUM("--advance-clock", advance_clock_s)
#undef STR
#undef NUM
		usage_error("unknown option: ", o);
		return -1;
	}
	if (i >= argc) {
		usage_error("no command", NULL);
		return -1;
	}
	cfg->command = argv[i];
	cfg->args = argv + i + 1;
	cfg->nargs = argc - i - 1;
	if (!cfg->credential) {
		usage_error("--credential sp|workload|managed is required", NULL);
		return -1;
	}
	if (cfg->repeat < 1)
		cfg->repeat = 1;
	if (cfg->parallel < 1)
		cfg->parallel = 1;
	if (cfg->parallel > 64)
		cfg->parallel = 64;
	if (cfg->poll_max < 1)
		cfg->poll_max = 600;
	return 0;
}

int main(int argc, char **argv)
{
	struct config cfg = {0};
	struct identity_options io = IDENTITY_OPTIONS_INIT;
	struct arm_options ao = ARM_OPTIONS_INIT;
	struct identity *id = NULL;
	struct arm_client *client = NULL;
	int status = EXIT_USAGE, rc;

	cfg.poll_cap_ms = -1;
	if (parse_options(&cfg, argc, argv))
		return EXIT_USAGE;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	trace.http = cJSON_CreateArray();

	if (strcmp(cfg.credential, "sp") == 0) {
		io.kind = IDENTITY_SERVICE_PRINCIPAL;
		if (cfg.secret_env) {
			io.client_secret = getenv(cfg.secret_env);
			if (!io.client_secret) {
				usage_error("environment variable is not set: ", cfg.secret_env);
				goto done;
			}
		}
	} else if (strcmp(cfg.credential, "workload") == 0) {
		io.kind = IDENTITY_WORKLOAD;
	} else if (strcmp(cfg.credential, "managed") == 0) {
		io.kind = IDENTITY_MANAGED;
	} else {
		usage_error("unknown credential: ", cfg.credential);
		goto done;
	}
	io.authority_host = cfg.authority_host;
	io.imds_endpoint = cfg.imds_endpoint;
	io.tenant_id = cfg.tenant;
	io.client_id = cfg.client;
	io.federated_token_file = cfg.token_file;
	io.clock = identity_clock;
	io.sleep = on_sleep;
	/* The emulator's IMDS answers at once; keep its retries short. */
	io.imds_retry_delay_ms = 200;
	/* No resource override: ask for the cloud's ARM audience, as the
	 * operator does (the emulator issues tokens for any audience). */
	if ((rc = identity_new(&id, &io))) {
		status = emit_error(rc);
		goto done;
	}
	ao.endpoint = cfg.arm_endpoint;
	ao.api_version = cfg.api_version;
	ao.registries_api_version = cfg.registries_api_version;
	ao.max_attempts = cfg.max_attempts;
	ao.retry_delay_ms = cfg.retry_delay_ms;
	ao.max_retry_delay_ms = cfg.max_retry_delay_ms;
	ao.budget_ms = cfg.budget_ms;
	ao.timeout_ms = cfg.timeout_ms;
	ao.metrics = on_metrics;
	ao.sleep = on_sleep;
	if ((rc = arm_client_new(&client, id, &ao))) {
		status = emit_error(rc);
		goto done;
	}

	status = 0;
	for (int n = 0; n < cfg.repeat; n++) {
		if (n > 0) {
			if (cfg.step) {
				char line[64];
				if (!fgets(line, sizeof(line), stdin))
					break;
			}
			clock_offset += cfg.advance_clock_s;
		}
		rc = run_once(client, id, &cfg);
		if (rc)
			status = rc;
		if (rc == EXIT_USAGE)
			break;
	}
done:
	arm_client_free(client);
	identity_free(id);
	cJSON_Delete(trace.http);
	curl_global_cleanup();
	return status;
}
