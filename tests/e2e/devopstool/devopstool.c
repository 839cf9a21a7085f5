/*
 * devopstool: a command-line driver over the Azure DevOps client
 * (reconcilers/devops/devops.h, agentkey.h) for the end-to-end tests
 * against the emulator's Azure DevOps stand-in
 * (tests/e2e/test_devops_emulator.py).
 *
 *   acrpool-devopstool --org-url URL [--endpoint URL]
 *       (--pat-env NAME | --credential sp|managed [--authority-host URL]
 *        [--imds-endpoint URL] [--tenant T] [--client C] [--secret-env NAME]
 *        [--resource R])
 *       [--max-attempts N] [--budget-ms MS] [--key-file PATH] [--key-bits N]
 *       <command> [args]
 *
 * Commands:
 *   pool-get NAME                          {"pool": {id, name, isHosted, size}}
 *   agents POOL_ID [NAME]                  {"agents": [{id, name, enabled, online, busy, ...}]}
 *   agent-add POOL_ID NAME                 a new key; {"agent": {...}, "keyFingerprint"}
 *   agent-replace POOL_ID AGENT_ID NAME [true|false]   a new key for it
 *   agent-enable POOL_ID AGENT_ID true|false
 *   agent-delete POOL_ID AGENT_ID          {"deleted": true}
 *   jobs POOL_ID [COMPLETED]               {"counts": {queued, running, finished}, "requests": [...]}
 *   queued POOL_ID                         {"queued": N}
 *
 * agent-add and agent-replace write the new key's AZP_AGENT_KEY value
 * (base64 of .credentials_rsaparams) to --key-file, created 0600, and print
 * only its public fingerprint. Each result is one JSON object on one line
 * of stdout, with the HTTP attempts the client made ("http": [{method,
 * operation, status}]) and its backoff ("sleptMs"); a failure prints
 * {"error": {code, rc, reason, message, httpStatus, requestId,
 * retryAfterMs}} and exits 1 (2: usage). The PAT and the client secret come
 * from environment variables named on the command line (argv is visible in
 * ps); neither, nor a token or a private key, is ever printed.
 */
#include "azure/identity.h"
#include "devops/agentkey.h"
#include "devops/devops.h"
#include "error.h"
#include "xalloc.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXIT_CALL 1
#define EXIT_USAGE 2

struct config {
	const char *org_url, *endpoint, *pat_env;
	const char *credential, *authority_host, *imds_endpoint, *tenant, *client, *secret_env, *resource;
	int max_attempts;
	long budget_ms;
	const char *key_file;
	int key_bits;
	const char *command;
	char **args;
	int nargs;
};

static cJSON *http_trace;
static long slept_ms;

static void on_metrics(const char *method, const char *operation, long status, double seconds, void *arg)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "method", method);
	cJSON_AddStringToObject(o, "operation", operation);
	cJSON_AddNumberToObject(o, "status", (double)status);
	cJSON_AddItemToArray(http_trace, o);
}

static void on_sleep(long ms, void *arg)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	slept_ms += ms;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void emit(cJSON *o)
{
	cJSON_AddItemToObject(o, "http", http_trace);
	http_trace = cJSON_CreateArray();
	cJSON_AddNumberToObject(o, "sleptMs", (double)slept_ms);
	char *s = cJSON_PrintUnformatted(o);
	if (!s)
		abort();
	puts(s);
	fflush(stdout);
	cJSON_free(s);
	cJSON_Delete(o);
}

static int emit_error(int rc)
{
	const struct ctl_error *e = ctl_error_last();
	cJSON *o = cJSON_CreateObject();
	cJSON *err = cJSON_AddObjectToObject(o, "error");
	cJSON_AddStringToObject(err, "code", ctl_error_name(rc));
	cJSON_AddNumberToObject(err, "rc", rc);
	cJSON_AddStringToObject(err, "reason", e->reason);
	cJSON_AddStringToObject(err, "message", e->message);
	cJSON_AddNumberToObject(err, "httpStatus", (double)e->http_status);
	cJSON_AddStringToObject(err, "requestId", e->request_id);
	cJSON_AddNumberToObject(err, "retryAfterMs", (double)e->retry_after_ms);
	emit(o);
	return EXIT_CALL;
}

static int usage(const char *what, const char *arg)
{
	fprintf(stderr, "devopstool: %s%s\n", what, arg ? arg : "");
	return EXIT_USAGE;
}

static cJSON *agent_json(const struct devops_agent *a)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)a->id);
	cJSON_AddStringToObject(o, "name", a->name);
	cJSON_AddBoolToObject(o, "enabled", a->enabled);
	cJSON_AddBoolToObject(o, "online", a->online);
	cJSON_AddBoolToObject(o, "busy", a->busy);
	cJSON_AddNumberToObject(o, "assignedRequestId", (double)a->assigned_request_id);
	if (a->client_id)
		cJSON_AddStringToObject(o, "clientId", a->client_id);
	if (a->authorization_url)
		cJSON_AddStringToObject(o, "authorizationUrl", a->authorization_url);
	return o;
}

static int64_t num(const char *s)
{
	char *end = NULL;
	long long v = strtoll(s, &end, 10);
	return end && *end == '\0' ? (int64_t)v : -1;
}

/* Write AZP_AGENT_KEY for k to path, 0600, created anew. */
static int write_key(const char *path, const struct agentkey *k)
{
	char *v = NULL;
	int rc = agentkey_env_value(&v, k);
	if (rc)
		return rc;
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	size_t n = strlen(v);
	if (fd < 0 || write(fd, v, n) != (ssize_t)n)
		rc = ctl_error_set(CTL_ERR, "KeyFileFailed", "cannot write the key file: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
	agentkey_secret_free(v);
	return rc;
}

/* agent-add / agent-replace: a new key, registered, saved to the key file. */
static int cmd_key(struct devops_client *c, const struct config *cfg, int replace)
{
	struct agentkey *k = NULL;
	struct devops_agent a = {0};
	char fp[17];
	int rc;
	if (!cfg->key_file)
		return usage("--key-file is required for ", cfg->command);
	if (cfg->nargs < (replace ? 3 : 2))
		return usage("missing arguments for ", cfg->command);
	rc = agentkey_generate(&k, cfg->key_bits);
	if (rc == 0 && replace)
		rc = devops_agent_replace(&a, c, num(cfg->args[0]), num(cfg->args[1]), cfg->args[2],
					  cfg->nargs < 4 || strcmp(cfg->args[3], "false") != 0, k);
	else if (rc == 0)
		rc = devops_agent_add(&a, c, num(cfg->args[0]), cfg->args[1], k);
	if (rc == 0)
		rc = write_key(cfg->key_file, k);
	if (rc) {
		agentkey_free(k);
		devops_agent_dispose(&a);
		return emit_error(rc);
	}
	agentkey_fingerprint(fp, k);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "agent", agent_json(&a));
	cJSON_AddStringToObject(o, "keyFingerprint", fp);
	cJSON_AddNumberToObject(o, "keyBits", agentkey_bits(k));
	emit(o);
	agentkey_free(k);
	devops_agent_dispose(&a);
	return 0;
}

static int run(struct devops_client *c, const struct config *cfg)
{
	const char *cmd = cfg->command;
	char **a = cfg->args;
	int n = cfg->nargs, rc;
	cJSON *o;

	if (strcmp(cmd, "pool-get") == 0 && n == 1) {
		struct devops_pool p;
		if ((rc = devops_pool_get(&p, c, a[0])))
			return emit_error(rc);
		o = cJSON_CreateObject();
		cJSON *po = cJSON_AddObjectToObject(o, "pool");
		cJSON_AddNumberToObject(po, "id", (double)p.id);
		cJSON_AddStringToObject(po, "name", p.name);
		cJSON_AddBoolToObject(po, "isHosted", p.is_hosted);
		cJSON_AddNumberToObject(po, "size", p.size);
		devops_pool_dispose(&p);
		emit(o);
		return 0;
	}
	if (strcmp(cmd, "agents") == 0 && (n == 1 || n == 2)) {
		struct devops_agent_list l;
		if ((rc = devops_agents_list(&l, c, num(a[0]), n == 2 ? a[1] : NULL)))
			return emit_error(rc);
		o = cJSON_CreateObject();
		cJSON *arr = cJSON_AddArrayToObject(o, "agents");
		for (size_t i = 0; i < l.n; i++)
			cJSON_AddItemToArray(arr, agent_json(&l.items[i]));
		devops_agent_list_dispose(&l);
		emit(o);
		return 0;
	}
	if (strcmp(cmd, "agent-add") == 0)
		return cmd_key(c, cfg, 0);
	if (strcmp(cmd, "agent-replace") == 0)
		return cmd_key(c, cfg, 1);
	if (strcmp(cmd, "agent-enable") == 0 && n == 3) {
		struct devops_agent ag;
		if ((rc = devops_agent_set_enabled(&ag, c, num(a[0]), num(a[1]), strcmp(a[2], "true") == 0)))
			return emit_error(rc);
		o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "agent", agent_json(&ag));
		devops_agent_dispose(&ag);
		emit(o);
		return 0;
	}
	if (strcmp(cmd, "agent-delete") == 0 && n == 2) {
		if ((rc = devops_agent_delete(c, num(a[0]), num(a[1]))))
			return emit_error(rc);
		o = cJSON_CreateObject();
		cJSON_AddTrueToObject(o, "deleted");
		emit(o);
		return 0;
	}
	if (strcmp(cmd, "jobs") == 0 && (n == 1 || n == 2)) {
		struct devops_jobrequest_list l;
		struct devops_job_counts k;
		if ((rc = devops_jobrequests_list(&l, c, num(a[0]), n == 2 ? (int)num(a[1]) : -1)))
			return emit_error(rc);
		devops_job_counts(&k, &l, NULL, 0);
		o = cJSON_CreateObject();
		cJSON *co = cJSON_AddObjectToObject(o, "counts");
		cJSON_AddNumberToObject(co, "queued", k.queued);
		cJSON_AddNumberToObject(co, "running", k.running);
		cJSON_AddNumberToObject(co, "finished", k.finished);
		cJSON *arr = cJSON_AddArrayToObject(o, "requests");
		for (size_t i = 0; i < l.n; i++) {
			const struct devops_jobrequest *j = &l.items[i];
			cJSON *jo = cJSON_CreateObject();
			cJSON_AddNumberToObject(jo, "requestId", (double)j->request_id);
			if (j->result)
				cJSON_AddStringToObject(jo, "result", j->result);
			cJSON_AddBoolToObject(jo, "assigned", j->assigned);
			cJSON_AddNumberToObject(jo, "agentId", (double)j->agent_id);
			cJSON_AddItemToArray(arr, jo);
		}
		devops_jobrequest_list_dispose(&l);
		emit(o);
		return 0;
	}
	if (strcmp(cmd, "queued") == 0 && n == 1) {
		int q;
		if ((rc = devops_jobs_queued(&q, c, num(a[0]))))
			return emit_error(rc);
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "queued", q);
		emit(o);
		return 0;
	}
	return usage("unknown command or wrong arguments: ", cmd);
}

static int parse(struct config *cfg, int argc, char **argv)
{
	int i = 1;
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!val)
			return usage("missing value for ", opt);
		i++;
		if (!strcmp(opt, "--org-url"))
			cfg->org_url = val;
		else if (!strcmp(opt, "--endpoint"))
			cfg->endpoint = val;
		else if (!strcmp(opt, "--pat-env"))
			cfg->pat_env = val;
		else if (!strcmp(opt, "--credential"))
			cfg->credential = val;
		else if (!strcmp(opt, "--authority-host"))
			cfg->authority_host = val;
		else if (!strcmp(opt, "--imds-endpoint"))
			cfg->imds_endpoint = val;
		else if (!strcmp(opt, "--tenant"))
			cfg->tenant = val;
		else if (!strcmp(opt, "--client"))
			cfg->client = val;
		else if (!strcmp(opt, "--secret-env"))
			cfg->secret_env = val;
		else if (!strcmp(opt, "--resource"))
			cfg->resource = val;
		else if (!strcmp(opt, "--max-attempts"))
			cfg->max_attempts = atoi(val);
		else if (!strcmp(opt, "--budget-ms"))
			cfg->budget_ms = atol(val);
		else if (!strcmp(opt, "--key-file"))
			cfg->key_file = val;
		else if (!strcmp(opt, "--key-bits"))
			cfg->key_bits = atoi(val);
		else
			return usage("unknown option ", opt);
	}
	if (i >= argc)
		return usage("no command", NULL);
	if (!cfg->org_url)
		return usage("--org-url is required", NULL);
	cfg->command = argv[i];
	cfg->args = argv + i + 1;
	cfg->nargs = argc - i - 1;
	return 0;
}

int main(int argc, char **argv)
{
	struct config cfg = {0};
	struct identity *id = NULL;
	struct devops_client *c = NULL;
	int status = EXIT_USAGE, rc;

	if (parse(&cfg, argc, argv))
		return EXIT_USAGE;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	http_trace = cJSON_CreateArray();
	struct devops_options o = {
		.organization_url = cfg.org_url, .endpoint = cfg.endpoint, .max_attempts = cfg.max_attempts,
		.budget_ms = cfg.budget_ms, .metrics = on_metrics, .sleep = on_sleep,
	};
	if (cfg.pat_env) {
		o.pat = getenv(cfg.pat_env);
		if (!o.pat) {
			usage("environment variable is not set: ", cfg.pat_env);
			goto done;
		}
	} else if (cfg.credential) {
		struct identity_options io = {
			.kind = strcmp(cfg.credential, "managed") == 0 ? IDENTITY_MANAGED : IDENTITY_SERVICE_PRINCIPAL,
			.authority_host = cfg.authority_host, .imds_endpoint = cfg.imds_endpoint, .tenant_id = cfg.tenant,
			.client_id = cfg.client, .resource = cfg.resource ? cfg.resource : DEVOPS_RESOURCE,
			.client_secret = cfg.secret_env ? getenv(cfg.secret_env) : NULL, .imds_retry_delay_ms = 200,
		};
		if ((rc = identity_new(&id, &io))) {
			status = emit_error(rc);
			goto done;
		}
		o.identity = id;
	}
	if ((rc = devops_client_new(&c, &o))) {
		status = emit_error(rc);
		goto done;
	}
	status = run(c, &cfg);
done:
	devops_client_free(c);
	identity_free(id);
	cJSON_Delete(http_trace);
	curl_global_cleanup();
	return status;
}
