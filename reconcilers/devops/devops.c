/*
 * devops.c: the Azure DevOps REST client (see devops.h): the organization
 * URL and its endpoint override, the credential, one request on the ARM
 * client's wire, Azure DevOps errors, and the typed calls on agent pools,
 * agents and job requests.
 *
 * Owns a copy of the PAT (zeroed when freed), the organization's name and
 * base URL, and an ARM client aimed at that base URL that it uses only for
 * arm_send (azure/arm_internal.h): the curl share, the retry loop with
 * Retry-After and budgets, the response cap, the metrics and sleep hooks,
 * and, with an identity, the bearer token and its refresh on 401. Every
 * URL is built here from the base URL, so the credential goes nowhere
 * else; arm_send does not follow redirects.
 */
#include "devops/devops.h"

#include "azure/arm_internal.h"
#include "error.h"
#include "log.h"
#include "xalloc.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POOLS "/_apis/distributedtask/pools"

struct devops_client {
	char *org;
	char *base;                /* no trailing slash */
	char *pat;                 /* NULL with an identity */
	struct arm_client *wire;
};

/* ---- organization URLs ---- */

static int org_name_ok(const char *s)
{
	if (!s || !*s || strlen(s) > 100)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '-' || *s == '_' || *s == '.'))
			return 0;
	return 1;
}

int devops_org_parse(char **out, const char *url)
{
	int rc = CTL_EINVALID;
	char *scheme = NULL, *host = NULL, *path = NULL, *query = NULL, *org = NULL;
	CURLU *u = curl_url();
	if (!u)
		abort();
	*out = NULL;
	if (!url || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK || strcasecmp(scheme, "https") != 0 ||
	    curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK)
		goto done;
	for (char *p = host; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	size_t hl = strlen(host), pl = strlen(path);
	while (pl > 1 && path[pl - 1] == '/')
		path[--pl] = '\0';
	static const char vs[] = ".visualstudio.com";
	if (strcmp(host, "dev.azure.com") == 0 && path[0] == '/' && !strchr(path + 1, '/'))
		org = xstrdup(path + 1);
	else if (hl > sizeof(vs) - 1 && strcmp(host + hl - (sizeof(vs) - 1), vs) == 0 && strcmp(path, "/") == 0)
		org = xstrndup(host, hl - (sizeof(vs) - 1));
	if (org_name_ok(org)) {
		*out = org;
		org = NULL;
		rc = 0;
	}
done:
	if (rc) {
		char *safe = url ? ctl_log_redact_url(url) : NULL;
		ctl_error_set(CTL_EINVALID, "InvalidOrganizationUrl",
			      "organization URL \"%.200s\" is not https://dev.azure.com/ORG or https://ORG.visualstudio.com",
			      safe ? safe : "");
		free(safe);
	}
	free(org);
	curl_free(scheme);
	curl_free(host);
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return rc;
}

/* ---- the client ---- */

int devops_client_new(struct devops_client **out, const struct devops_options *opts)
{
	int rc = CTL_EINVALID;
	struct devops_client *c = xcalloc(1, sizeof(*c));

	*out = NULL;
	if (!!(opts->pat && *opts->pat) == !!opts->identity) {
		ctl_error_set(CTL_EINVALID, "InvalidCredential",
			      "Azure DevOps needs exactly one credential: a personal access token or an identity");
		goto done;
	}
	if (opts->pat && strpbrk(opts->pat, "\r\n")) {
		ctl_error_set(CTL_EINVALID, "InvalidCredential", "the personal access token holds a line break");
		goto done;
	}
	rc = devops_org_parse(&c->org, opts->organization_url);
	if (rc)
		goto done;
	const char *vs = strstr(opts->organization_url, ".visualstudio.com");
	if (opts->endpoint && *opts->endpoint) {
		size_t n = strlen(opts->endpoint);
		while (n > 0 && opts->endpoint[n - 1] == '/')
			n--;
		c->base = xasprintf("%.*s/%s", (int)n, opts->endpoint, c->org);
	} else if (vs) {
		c->base = xasprintf("https://%s.visualstudio.com", c->org);
	} else {
		c->base = xasprintf("https://dev.azure.com/%s", c->org);
	}
	struct arm_options ao = {
		.endpoint = c->base, .api_version = DEVOPS_API_VERSION, .max_attempts = opts->max_attempts,
		.retry_delay_ms = opts->retry_delay_ms, .max_retry_delay_ms = opts->max_retry_delay_ms,
		.budget_ms = opts->budget_ms, .timeout_ms = opts->timeout_ms,
		.connect_timeout_ms = opts->connect_timeout_ms, .max_body = opts->max_body,
		.ca_file = opts->ca_file, .metrics = opts->metrics, .metrics_arg = opts->metrics_arg,
		.sleep = opts->sleep, .clock = opts->clock, .clock_arg = opts->clock_arg,
	};
	rc = arm_client_new(&c->wire, opts->identity, &ao);
	if (rc) {
		ctl_error_set(CTL_EINVALID, "InvalidEndpoint", "Azure DevOps endpoint \"%.200s\" is not an http(s) URL",
			      c->base);
		goto done;
	}
	c->pat = xstrdup(opts->pat && *opts->pat ? opts->pat : NULL);
done:
	if (rc)
		devops_client_free(c);
	else
		*out = c;
	return rc;
}

void devops_client_free(struct devops_client *c)
{
	if (!c)
		return;
	if (c->pat) {
		OPENSSL_cleanse(c->pat, strlen(c->pat));
		free(c->pat);
	}
	arm_client_free(c->wire);
	free(c->org);
	free(c->base);
	free(c);
}

const char *devops_client_organization(const struct devops_client *c)
{
	return c->org;
}

const char *devops_client_base(const struct devops_client *c)
{
	return c->base;
}

/* ---- errors ---- */

static void copy_clean(char *dst, size_t n, const char *s, size_t max)
{
	size_t i = 0;
	for (; s && s[i] && i < max && i + 1 < n; i++)
		dst[i] = (unsigned char)s[i] < 0x20 ? ' ' : s[i];
	dst[i] = '\0';
}

int devops_error_set(long status, const char *body, const char *activity_id, long retry_after_ms)
{
	int code = ctl_error_from_http(status);
	cJSON *o = cJSON_Parse(body ? body : "");
	char reason[128], message[1024];

	/* 403 is a permission the credential lacks (a PAT's scope): a new
	 * credential, not a fresh token, is the fix. 401 stays CTL_EAUTH. */
	if (status == 403)
		code = CTL_ETERMINAL;
	if (status >= 200 && status < 300)
		code = CTL_ERR;
	snprintf(reason, sizeof(reason), "HttpStatus%ld", status);
	const cJSON *tk = arm_jget(o, "typeKey"), *m = arm_jget(o, "message");
	if (cJSON_IsString(tk) && tk->valuestring[0])
		copy_clean(reason, sizeof(reason), tk->valuestring, 100);
	if (cJSON_IsString(m) && m->valuestring[0])
		copy_clean(message, sizeof(message), m->valuestring, 900);
	else if (status == 0)
		snprintf(message, sizeof(message), "no response");
	else
		snprintf(message, sizeof(message), "Azure DevOps answered HTTP %ld%s", status,
			 cJSON_IsObject(o) ? "" : " without an Azure DevOps error body");
	ctl_error_set(code, reason, "%s", message);
	ctl_error_set_http(status, activity_id && activity_id[0] ? activity_id : NULL, retry_after_ms);
	cJSON_Delete(o);
	return code;
}

/* ---- one request ---- */

/* "Authorization: Basic base64(":" PAT)" in a buffer the caller cleanses. */
static char *basic_header(const char *pat, size_t *len)
{
	size_t n = strlen(pat) + 1;
	unsigned char *raw = xmalloc(n);
	raw[0] = ':';
	memcpy(raw + 1, pat, n - 1);
	static const char prefix[] = "Authorization: Basic ";
	*len = sizeof(prefix) - 1 + 4 * ((n + 2) / 3) + 1;
	char *h = xmalloc(*len);
	memcpy(h, prefix, sizeof(prefix) - 1);
	EVP_EncodeBlock((unsigned char *)h + sizeof(prefix) - 1, raw, (int)n);
	OPENSSL_cleanse(raw, n);
	free(raw);
	return h;
}

/*
 * method path (under the base URL, starting "/_apis/") with api-version
 * 7.1 and a JSON body (may be NULL). *out (may be NULL) gets the parsed
 * answer, NULL for an empty one. once: not idempotent (see arm_send).
 * Errors as devops.h says; CTL_EINVALID for a 2xx answer that is not JSON
 * where JSON was due, CTL_EAUTH for a 203 (the sign-in page Azure DevOps
 * serves some clients instead of a 401).
 */
static int request(cJSON **out, struct devops_client *c, const char *method, const char *path,
		   const char *operation, const cJSON *body, int once)
{
	int rc, unknown = 0;
	struct arm_response r;
	char *url = xasprintf("%s%s%capi-version=" DEVOPS_API_VERSION, c->base, path, strchr(path, '?') ? '&' : '?');
	char *json = body ? cJSON_PrintUnformatted(body) : NULL;
	char *auth = NULL;
	size_t auth_len = 0;
	const char *extra[2] = {NULL, NULL};

	if (out)
		*out = NULL;
	if (body && !json)
		abort();
	if (c->pat) {
		auth = basic_header(c->pat, &auth_len);
		extra[0] = auth;
	}
	struct arm_wire_req q = {
		.method = method, .url = url, .operation = operation, .body = json, .len = json ? strlen(json) : 0,
		.content_type = "application/json", .extra = extra, .auth = c->pat == NULL, .once = once,
		.unknown = once ? &unknown : NULL,
	};
	arm_response_init(&r);
	rc = arm_send(&r, c->wire, &q);
	if (rc && r.status >= 300) {
		/* arm_send read the body as ARM's; read it as Azure DevOps'.
		 * When retries gave up, it is CTL_EUNAVAIL whatever the status. */
		int prev = rc;
		long wait = ctl_error_last()->retry_after_ms;
		rc = devops_error_set(r.status, ctl_buf_str(&r.body), r.request_id, wait);
		if (prev == CTL_EUNAVAIL && rc != CTL_EUNAVAIL) {
			struct ctl_error e = *ctl_error_last();
			rc = ctl_error_set(CTL_EUNAVAIL, e.reason, "%s", e.message);
			ctl_error_set_http(r.status, r.request_id, wait);
		}
	} else if (rc && once && unknown) {
		struct ctl_error e = *ctl_error_last();
		ctl_error_set(rc, e.reason, "%s (the request may have reached Azure DevOps)", e.message);
		ctl_error_set_http(e.http_status, e.request_id, e.retry_after_ms);
	} else if (rc == 0 && r.status == 203) {
		rc = ctl_error_set(CTL_EAUTH, "NonAuthoritativeAnswer",
				   "%s: Azure DevOps answered with a sign-in page: the credential was not accepted",
				   operation);
		ctl_error_set_http(r.status, r.request_id, -1);
	} else if (rc == 0 && out && r.body.len > 0) {
		*out = cJSON_Parse(ctl_buf_str(&r.body));
		if (!*out) {
			rc = ctl_error_set(CTL_EINVALID, "InvalidResponse", "%s: Azure DevOps answered HTTP %ld with a body "
					   "that is not JSON", operation, r.status);
			ctl_error_set_http(r.status, r.request_id, -1);
		}
	}
	/* Belt and braces: a service message never quotes a PAT, but if one
	 * ever did, it would not reach a condition or a log from here. */
	if (rc && c->pat && strstr(ctl_error_last()->message, c->pat)) {
		struct ctl_error e = *ctl_error_last();
		rc = ctl_error_set(rc, e.reason, "%s: Azure DevOps answered HTTP %ld (message withheld: it quoted "
				   "the credential)", operation, e.http_status);
		ctl_error_set_http(e.http_status, e.request_id, e.retry_after_ms);
		OPENSSL_cleanse(&e, sizeof(e));
	}
	if (auth) {
		OPENSSL_cleanse(auth, auth_len);
		free(auth);
	}
	cJSON_free(json);
	free(url);
	arm_response_dispose(&r);
	return rc;
}

/* ---- JSON ---- */

/* An integer member (JSON number) or def. */
static int64_t jint(const cJSON *o, const char *name, int64_t def)
{
	const cJSON *v = arm_jget(o, name);
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble) ||
	    fabs(v->valuedouble) > 9007199254740992.0)
		return def;
	return (int64_t)v->valuedouble;
}

static const cJSON *jvalue(const cJSON *o)
{
	const cJSON *v = arm_jget(o, "value");
	return cJSON_IsArray(v) ? v : NULL;
}

/* ---- pools ---- */

void devops_pool_dispose(struct devops_pool *p)
{
	if (!p)
		return;
	free(p->name);
	memset(p, 0, sizeof(*p));
}

int devops_pool_get(struct devops_pool *out, struct devops_client *c, const char *name)
{
	cJSON *ans = NULL;
	char *esc = arm_escape(name);
	char *path = xasprintf(POOLS "?poolName=%s", esc);
	memset(out, 0, sizeof(*out));
	int rc = request(&ans, c, "GET", path, "devops.pools.list", NULL, 0);
	if (rc)
		goto done;
	const cJSON *it;
	rc = CTL_ENOTFOUND;
	cJSON_ArrayForEach(it, jvalue(ans)) {
		const cJSON *n = arm_jget(it, "name");
		int64_t id = jint(it, "id", 0);
		if (cJSON_IsString(n) && strcasecmp(n->valuestring, name) == 0 && id > 0) {
			out->id = id;
			out->name = xstrdup(n->valuestring);
			out->is_hosted = cJSON_IsTrue(arm_jget(it, "isHosted"));
			out->size = (int)jint(it, "size", 0);
			rc = 0;
			break;
		}
	}
	if (rc)
		ctl_error_set(CTL_ENOTFOUND, "TaskAgentPoolNotFoundException",
			      "Agent pool %.200s was not found in organization %s.", name, c->org);
done:
	cJSON_Delete(ans);
	free(path);
	free(esc);
	return rc;
}

/* ---- agents ---- */

void devops_agent_dispose(struct devops_agent *a)
{
	if (!a)
		return;
	free(a->name);
	free(a->version);
	free(a->client_id);
	free(a->authorization_url);
	memset(a, 0, sizeof(*a));
}

void devops_agent_list_dispose(struct devops_agent_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		devops_agent_dispose(&l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

int devops_agent_from_json(struct devops_agent *out, const cJSON *o)
{
	memset(out, 0, sizeof(*out));
	const cJSON *name = arm_jget(o, "name"), *status = arm_jget(o, "status");
	const cJSON *authz = arm_jget(o, "authorization"), *req = arm_jget(o, "assignedRequest");
	out->id = jint(o, "id", 0);
	if (out->id <= 0 || !cJSON_IsString(name))
		return ctl_error_set(CTL_EINVALID, "InvalidResponse", "an agent in Azure DevOps' answer has no id or name");
	out->name = xstrdup(name->valuestring);
	out->enabled = cJSON_IsTrue(arm_jget(o, "enabled"));
	out->online = cJSON_IsString(status) && strcasecmp(status->valuestring, "online") == 0;
	out->version = arm_jstr(o, "version");
	out->client_id = arm_jstr(authz, "clientId");
	out->authorization_url = arm_jstr(authz, "authorizationUrl");
	if (cJSON_IsObject(req)) {
		out->busy = true;
		out->assigned_request_id = jint(req, "requestId", 0);
	}
	return 0;
}

/* The items of a {count, value: [...]} answer as agents. */
static int agents_from_list(struct devops_agent_list *out, const cJSON *ans)
{
	const cJSON *v = jvalue(ans), *it;
	if (!v)
		return ctl_error_set(CTL_EINVALID, "InvalidResponse", "Azure DevOps' agent list has no value array");
	size_t n = (size_t)cJSON_GetArraySize(v);
	out->items = xcalloc(n ? n : 1, sizeof(*out->items));
	cJSON_ArrayForEach(it, v) {
		int rc = devops_agent_from_json(&out->items[out->n], it);
		if (rc)
			return rc;
		out->n++;
	}
	return 0;
}

int devops_agents_list(struct devops_agent_list *out, struct devops_client *c, int64_t pool_id,
		       const char *name)
{
	cJSON *ans = NULL;
	char *esc = name ? arm_escape(name) : NULL;
	char *path = xasprintf(POOLS "/%" PRId64 "/agents?includeAssignedRequest=true%s%s", pool_id,
			       esc ? "&agentName=" : "", esc ? esc : "");
	memset(out, 0, sizeof(*out));
	int rc = request(&ans, c, "GET", path, "devops.agents.list", NULL, 0);
	if (rc == 0)
		rc = agents_from_list(out, ans);
	if (rc)
		devops_agent_list_dispose(out);
	cJSON_Delete(ans);
	free(path);
	free(esc);
	return rc;
}

/* The answer of a write that returns the agent, into out (may be NULL). */
static int agent_answer(struct devops_agent *out, const cJSON *ans)
{
	if (!out)
		return 0;
	if (!ans)
		return ctl_error_set(CTL_EINVALID, "InvalidResponse", "Azure DevOps answered without the agent");
	return devops_agent_from_json(out, ans);
}

/* TaskAgent for add and replace: name, enabled, one job at a time, key. */
static cJSON *agent_body(int64_t id, const char *name, bool enabled, const struct agentkey *key)
{
	cJSON *b = cJSON_CreateObject();
	if (id > 0)
		cJSON_AddNumberToObject(b, "id", (double)id);
	cJSON_AddStringToObject(b, "name", name);
	cJSON_AddBoolToObject(b, "enabled", enabled);
	cJSON_AddNumberToObject(b, "maxParallelism", 1);
	cJSON *authz = cJSON_AddObjectToObject(b, "authorization");
	cJSON *pk = agentkey_public_json(key);
	if (!pk)
		abort(); /* the key's own public numbers: only an OpenSSL allocation failure */
	cJSON_AddItemToObject(authz, "publicKey", pk);
	return b;
}

/* Send body (freed here) to path (freed here) and parse the agent the
 * answer holds into *out. once: a POST that must not be repeated blindly. */
static int agent_write(struct devops_agent *out, struct devops_client *c, const char *method, char *path,
		       const char *operation, cJSON *body, int once)
{
	cJSON *ans = NULL;
	if (out)
		memset(out, 0, sizeof(*out));
	int rc = request(&ans, c, method, path, operation, body, once);
	if (rc == 0)
		rc = agent_answer(out, ans);
	cJSON_Delete(ans);
	cJSON_Delete(body);
	free(path);
	return rc;
}

static char *agent_path(int64_t pool_id, int64_t agent_id)
{
	return xasprintf(POOLS "/%" PRId64 "/agents/%" PRId64, pool_id, agent_id);
}

int devops_agent_add(struct devops_agent *out, struct devops_client *c, int64_t pool_id, const char *name,
		     const struct agentkey *key)
{
	return agent_write(out, c, "POST", xasprintf(POOLS "/%" PRId64 "/agents", pool_id), "devops.agents.add",
			   agent_body(0, name, true, key), 1);
}

int devops_agent_replace(struct devops_agent *out, struct devops_client *c, int64_t pool_id, int64_t agent_id,
			 const char *name, bool enabled, const struct agentkey *key)
{
	return agent_write(out, c, "PUT", agent_path(pool_id, agent_id), "devops.agents.replace",
			   agent_body(agent_id, name, enabled, key), 0);
}

int devops_agent_set_enabled(struct devops_agent *out, struct devops_client *c, int64_t pool_id,
			     int64_t agent_id, bool enabled)
{
	cJSON *body = cJSON_CreateObject();
	cJSON_AddNumberToObject(body, "id", (double)agent_id);
	cJSON_AddBoolToObject(body, "enabled", enabled);
	return agent_write(out, c, "PATCH", agent_path(pool_id, agent_id), "devops.agents.update", body, 0);
}

int devops_agent_delete(struct devops_client *c, int64_t pool_id, int64_t agent_id)
{
	char *path = agent_path(pool_id, agent_id);
	int rc = request(NULL, c, "DELETE", path, "devops.agents.delete", NULL, 0);
	free(path);
	/* Gone already: what a delete wants. (A missing pool is also a 404,
	 * and its agents are gone with it.) */
	return rc == CTL_ENOTFOUND ? 0 : rc;
}

/* ---- job requests ---- */

void devops_jobrequest_list_dispose(struct devops_jobrequest_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		struct devops_jobrequest *j = &l->items[i];
		free(j->job_name);
		free(j->result);
		free(j->queue_time);
		free(j->assign_time);
		free(j->finish_time);
	}
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

int devops_jobrequest_from_json(struct devops_jobrequest *out, const cJSON *o)
{
	memset(out, 0, sizeof(*out));
	out->request_id = jint(o, "requestId", 0);
	if (out->request_id <= 0)
		return ctl_error_set(CTL_EINVALID, "InvalidResponse", "a job request in Azure DevOps' answer has no requestId");
	out->job_name = arm_jstr(o, "jobName");
	/* The contract omits members it has no value for (EmitDefaultValue =
	 * false); a null is read the same way. */
	out->result = arm_jstr(o, "result");
	out->queue_time = arm_jstr(o, "queueTime");
	out->assign_time = arm_jstr(o, "assignTime");
	out->finish_time = arm_jstr(o, "finishTime");
	const cJSON *agent = arm_jget(o, "reservedAgent");
	if (cJSON_IsObject(agent))
		out->agent_id = jint(agent, "id", 0);
	out->assigned = out->assign_time != NULL || cJSON_IsObject(agent);
	return 0;
}

int devops_jobrequests_list(struct devops_jobrequest_list *out, struct devops_client *c, int64_t pool_id,
			    int completed)
{
	cJSON *ans = NULL;
	char *path = completed >= 0
			     ? xasprintf(POOLS "/%" PRId64 "/jobrequests?completedRequestCount=%d", pool_id, completed)
			     : xasprintf(POOLS "/%" PRId64 "/jobrequests", pool_id);
	memset(out, 0, sizeof(*out));
	int rc = request(&ans, c, "GET", path, "devops.jobrequests.list", NULL, 0);
	const cJSON *v = rc ? NULL : jvalue(ans), *it;
	if (rc == 0 && !v)
		rc = ctl_error_set(CTL_EINVALID, "InvalidResponse", "Azure DevOps' job request list has no value array");
	if (rc == 0) {
		size_t n = (size_t)cJSON_GetArraySize(v);
		out->items = xcalloc(n ? n : 1, sizeof(*out->items));
		cJSON_ArrayForEach(it, v) {
			rc = devops_jobrequest_from_json(&out->items[out->n], it);
			if (rc)
				break;
			out->n++;
		}
	}
	if (rc)
		devops_jobrequest_list_dispose(out);
	cJSON_Delete(ans);
	free(path);
	return rc;
}

static bool ours(int64_t agent_id, const int64_t *ids, size_t n)
{
	if (n == 0)
		return true;
	for (size_t i = 0; i < n; i++)
		if (ids[i] == agent_id)
			return true;
	return false;
}

void devops_job_counts(struct devops_job_counts *out, const struct devops_jobrequest_list *l,
		       const int64_t *agent_ids, size_t n_agents)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; l && i < l->n; i++) {
		const struct devops_jobrequest *j = &l->items[i];
		if (!j->result && !j->assigned)
			out->queued++;
		else if (!ours(j->agent_id, agent_ids, n_agents))
			continue;
		else if (!j->result)
			out->running++;
		else
			out->finished++;
	}
}

int devops_jobs_queued(int *out, struct devops_client *c, int64_t pool_id)
{
	struct devops_jobrequest_list l;
	struct devops_job_counts n;
	*out = 0;
	int rc = devops_jobrequests_list(&l, c, pool_id, 0);
	if (rc)
		return rc;
	devops_job_counts(&n, &l, NULL, 0);
	devops_jobrequest_list_dispose(&l);
	*out = n.queued;
	return 0;
}
