/*
 * Tests for reconcilers/devops/devops.c and agentkey.c, the Azure DevOps
 * client: organization URLs, error bodies and job counting (pure), the
 * agent key (its .credentials_rsaparams checked with OpenSSL BIGNUMs), then
 * canned-wire cases against a loopback server: the exact request of every
 * call (method, path, api-version, Authorization shape, body), the parsed
 * answers, 429 with Retry-After, the error mapping, an add sent at most
 * once, an Entra token for the DevOps audience, and no secret in an error.
 */
#include "test.h"

#include "canned_http.h"

#include "azure/identity.h"
#include "devops/agentkey.h"
#include "devops/devops.h"
#include "error.h"
#include "xalloc.h"

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAT "patsecret52charactersxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
/* base64(":" PAT) */
static char basic[256];

#define ERR_BODY(key, msg) "{\"$id\":\"1\",\"innerException\":null,\"message\":\"" msg "\",\"typeName\":\"" \
	"Microsoft.TeamFoundation.DistributedTask.WebApi." key ", Microsoft.TeamFoundation.DistributedTask.WebApi\"," \
	"\"typeKey\":\"" key "\",\"errorCode\":0,\"eventId\":3000}"

/* ---- a client against the canned server ---- */

struct rig {
	struct canned_server s;
	struct fake_clock clk;
	struct identity *id;
	struct devops_client *c;
	int metrics_calls;
	char metrics_last[160];
};

static void on_metrics(const char *method, const char *operation, long status, double seconds, void *arg)
{
	struct rig *r = arg;
	r->metrics_calls++;
	snprintf(r->metrics_last, sizeof(r->metrics_last), "%s %s %ld", method, operation, status);
}

static void rig_start(struct rig *r, int entra, const char *resource)
{
	memset(r, 0, sizeof(*r));
	canned_start(&r->s);
	r->clk.now_ms = 1700000000000LL;
	struct devops_options o = {
		.organization_url = "https://dev.azure.com/contoso/", .endpoint = r->s.base, .max_attempts = 3,
		.budget_ms = 10000, .metrics = on_metrics, .metrics_arg = r, .sleep = fake_sleep,
		.clock = fake_clock_ms, .clock_arg = &r->clk,
	};
	if (entra) {
		struct identity_options io = {
			.kind = IDENTITY_SERVICE_PRINCIPAL, .tenant_id = "tenant", .client_id = "app",
			.client_secret = "topsecret-value", .authority_host = r->s.base, .resource = resource,
			.clock = fake_clock_s, .sleep = fake_sleep, .clock_arg = &r->clk,
		};
		if (identity_new(&r->id, &io))
			abort();
		o.identity = r->id;
	} else {
		o.pat = PAT;
	}
	if (devops_client_new(&r->c, &o))
		abort();
	if (!basic[0]) {
		static const char raw[] = ":" PAT;
		strcpy(basic, "Basic ");
		EVP_EncodeBlock((unsigned char *)basic + 6, (const unsigned char *)raw, (int)sizeof(raw) - 1);
	}
}

static void rig_stop(struct rig *r)
{
	devops_client_free(r->c);
	identity_free(r->id);
	canned_stop(&r->s);
}

/* The i-th DevOps request's request line, e.g. "GET /contoso/... HTTP/1.1". */
static char *line_of(struct rig *r, size_t i)
{
	const char *q = canned_request(&r->s, 0, i);
	return q ? xstrndup(q, strcspn(q, "\r\n")) : xstrdup("(none)");
}

static void check_line(struct rig *r, size_t i, const char *want)
{
	char *l = line_of(r, i);
	CHECK_STR(l, want);
	free(l);
}

static void check_basic_auth(struct rig *r, size_t i)
{
	char *h = canned_header(canned_request(&r->s, 0, i), "Authorization");
	CHECK_STR(h, basic);
	free(h);
}

/* The thread's last error holds no secret. */
static void check_no_secret(void)
{
	const struct ctl_error *e = ctl_error_last();
	CHECK(strstr(e->message, PAT) == NULL && strstr(e->reason, PAT) == NULL);
	CHECK(!basic[0] || strstr(e->message, basic + 6) == NULL);
	CHECK(strstr(e->message, "topsecret") == NULL && strstr(e->message, "tok-default") == NULL);
}

static struct agentkey *small_key(void)
{
	struct agentkey *k = NULL;
	if (agentkey_generate(&k, 1024))
		abort();
	return k;
}

/* ---- pure: organization URLs ---- */

TEST(org_url_forms)
{
	char *org = NULL;
	CHECK_INT(devops_org_parse(&org, "https://dev.azure.com/contoso"), 0);
	CHECK_STR(org, "contoso");
	free(org);
	CHECK_INT(devops_org_parse(&org, "https://dev.azure.com/Contoso-1/"), 0);
	CHECK_STR(org, "Contoso-1");
	free(org);
	CHECK_INT(devops_org_parse(&org, "https://fabrikam.visualstudio.com/"), 0);
	CHECK_STR(org, "fabrikam");
	free(org);
	CHECK_INT(devops_org_parse(&org, "https://fabrikam.VisualStudio.com"), 0);
	CHECK_STR(org, "fabrikam");
	free(org);
	static const char *const bad[] = {
		"http://dev.azure.com/contoso", "https://dev.azure.com/", "https://dev.azure.com/a/project",
		"https://evil.example/contoso", "https://dev.azure.com/contoso?x=1", "https://visualstudio.com/",
		"https://a.visualstudio.com/coll", "dev.azure.com/contoso", "", "https://dev.azure.com/con%20toso",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		org = (char *)1;
		CHECK_INT(devops_org_parse(&org, bad[i]), CTL_EINVALID);
		CHECK(org == NULL);
		CHECK_STR(ctl_error_last()->reason, "InvalidOrganizationUrl");
	}
}

TEST(client_base_and_credentials)
{
	struct devops_client *c = NULL;
	struct devops_options o = {.organization_url = "https://dev.azure.com/contoso", .pat = PAT};
	CHECK_INT(devops_client_new(&c, &o), 0);
	CHECK_STR(devops_client_base(c), "https://dev.azure.com/contoso");
	CHECK_STR(devops_client_organization(c), "contoso");
	devops_client_free(c);
	o.organization_url = "https://fabrikam.visualstudio.com/";
	CHECK_INT(devops_client_new(&c, &o), 0);
	CHECK_STR(devops_client_base(c), "https://fabrikam.visualstudio.com");
	devops_client_free(c);
	/* The override keeps the organization in the path, as the emulator
	 * serves https://dev.azure.com/ORG at {endpoint}/ORG. */
	o.endpoint = "http://127.0.0.1:9/devops/";
	CHECK_INT(devops_client_new(&c, &o), 0);
	CHECK_STR(devops_client_base(c), "http://127.0.0.1:9/devops/fabrikam");
	devops_client_free(c);
	/* Exactly one credential. */
	o.pat = NULL;
	c = (struct devops_client *)1;
	CHECK_INT(devops_client_new(&c, &o), CTL_EINVALID);
	CHECK(c == NULL);
	CHECK_STR(ctl_error_last()->reason, "InvalidCredential");
	struct identity *id = NULL;
	struct identity_options io = {.kind = IDENTITY_MANAGED, .resource = DEVOPS_RESOURCE};
	CHECK_INT(identity_new(&id, &io), 0);
	o.identity = id;
	o.pat = PAT;
	CHECK_INT(devops_client_new(&c, &o), CTL_EINVALID);
	o.pat = NULL;
	CHECK_INT(devops_client_new(&c, &o), 0);
	devops_client_free(c);
	identity_free(id);
	o.identity = NULL;
	o.pat = "pat\r\nX-Injected: 1";
	CHECK_INT(devops_client_new(&c, &o), CTL_EINVALID);
	CHECK(strstr(ctl_error_last()->message, "Injected") == NULL);
}

TEST(identity_devops_audience)
{
	/* An application id is an audience as it is: IMDS gets it without a
	 * trailing '/', the v2 scope is "<id>/.default". */
	struct identity *id = NULL;
	struct identity_options io = {.kind = IDENTITY_MANAGED, .resource = DEVOPS_RESOURCE};
	CHECK_INT(identity_new(&id, &io), 0);
	CHECK_STR(identity_resource(id), DEVOPS_RESOURCE);
	identity_free(id);
	io.resource = NULL;
	CHECK_INT(identity_new(&id, &io), 0);
	CHECK_STR(identity_resource(id), "https://management.azure.com/");
	identity_free(id);
}

/* ---- pure: errors ---- */

TEST(error_body_mapping)
{
	const char *b401 = ERR_BODY("UnauthorizedRequestException", "TF400813: The user '' is not authorized to access this resource.");
	CHECK_INT(devops_error_set(401, b401, "act-1", -1), CTL_EAUTH);
	const struct ctl_error *e = ctl_error_last();
	CHECK_STR(e->reason, "UnauthorizedRequestException");
	CHECK_STR(e->message, "TF400813: The user '' is not authorized to access this resource.");
	CHECK_STR(e->request_id, "act-1");
	CHECK_INT(e->http_status, 401);
	CHECK_INT(devops_error_set(403, ERR_BODY("UnauthorizedRequestException", "Access denied: scope"), NULL, -1),
		  CTL_ETERMINAL);
	CHECK_INT(ctl_error_last()->http_status, 403);
	CHECK_INT(devops_error_set(404, ERR_BODY("TaskAgentNotFoundException", "No agent"), NULL, -1), CTL_ENOTFOUND);
	CHECK_STR(ctl_error_last()->reason, "TaskAgentNotFoundException");
	CHECK_INT(devops_error_set(409, ERR_BODY("TaskAgentExistsException", "exists"), NULL, -1), CTL_ECONFLICT);
	CHECK_INT(devops_error_set(400, ERR_BODY("ArgumentNullException", "Value cannot be null.\\r\\nParameter name: agent"),
				   NULL, -1), CTL_ETERMINAL);
	CHECK_STR(ctl_error_last()->message, "Value cannot be null.  Parameter name: agent");
	CHECK_INT(devops_error_set(429, ERR_BODY("RequestBlockedException", "TF400733"), NULL, 3000), CTL_EUNAVAIL);
	CHECK_INT(ctl_error_last()->retry_after_ms, 3000);
	CHECK_INT(devops_error_set(502, "<html>bad gateway</html>", NULL, -1), CTL_EUNAVAIL);
	CHECK_STR(ctl_error_last()->reason, "HttpStatus502");
	CHECK_STR(ctl_error_last()->message, "Azure DevOps answered HTTP 502 without an Azure DevOps error body");
	CHECK_INT(devops_error_set(404, "{}", NULL, -1), CTL_ENOTFOUND);
	CHECK_STR(ctl_error_last()->message, "Azure DevOps answered HTTP 404");
}

/* ---- pure: job requests ---- */

TEST(job_counts_queued_running_finished)
{
	const char *body =
		"{\"count\":5,\"value\":["
		"{\"requestId\":1,\"queueTime\":\"t\",\"jobName\":\"a\"},"
		"{\"requestId\":2,\"queueTime\":\"t\",\"result\":null},"
		"{\"requestId\":3,\"assignTime\":\"t\",\"reservedAgent\":{\"id\":7,\"name\":\"x-0\"}},"
		"{\"requestId\":4,\"assignTime\":\"t\",\"reservedAgent\":{\"id\":99,\"name\":\"other\"}},"
		"{\"requestId\":5,\"finishTime\":\"t\",\"result\":\"succeeded\",\"reservedAgent\":{\"id\":7}},"
		"{\"requestId\":6,\"finishTime\":\"t\",\"result\":\"canceled\"}]}";
	cJSON *o = cJSON_Parse(body);
	struct devops_jobrequest_list l = {xcalloc(6, sizeof(struct devops_jobrequest)), 0};
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(o, "value"))
		CHECK_INT(devops_jobrequest_from_json(&l.items[l.n++], it), 0);
	CHECK_STR(l.items[0].job_name, "a");
	CHECK(l.items[1].result == NULL && !l.items[1].assigned);
	CHECK(l.items[2].assigned && l.items[2].agent_id == 7);
	CHECK_STR(l.items[4].result, "succeeded");
	struct devops_job_counts n;
	devops_job_counts(&n, &l, NULL, 0);
	CHECK_INT(n.queued, 2);
	CHECK_INT(n.running, 2);
	CHECK_INT(n.finished, 2);
	int64_t mine[] = {7, 8};
	devops_job_counts(&n, &l, mine, 2);
	CHECK_INT(n.queued, 2); /* the pool's queue, whoever will take it */
	CHECK_INT(n.running, 1);
	CHECK_INT(n.finished, 1);
	devops_jobrequest_list_dispose(&l);
	cJSON_Delete(o);
	struct devops_jobrequest j;
	o = cJSON_Parse("{\"jobName\":\"no id\"}");
	CHECK_INT(devops_jobrequest_from_json(&j, o), CTL_EINVALID);
	cJSON_Delete(o);
}

/* ---- the agent key ---- */

static BIGNUM *b64_bn(const cJSON *o, const char *name, int *len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!cJSON_IsString(v))
		return NULL;
	size_t n = strlen(v->valuestring);
	unsigned char *raw = xmalloc(n + 1);
	int got = EVP_DecodeBlock(raw, (const unsigned char *)v->valuestring, (int)n);
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	for (size_t k = n; k > 0 && v->valuestring[k - 1] == '='; k--)
		got--;
	*len = got;
	BIGNUM *bn = got > 0 ? BN_bin2bn(raw, got, NULL) : NULL;
	free(raw);
	return bn;
}

TEST(agent_key_rsaparams_round_trip)
{
	struct agentkey *k = NULL;
	CHECK_INT(agentkey_generate(&k, 0), 0);
	CHECK_INT(agentkey_bits(k), 2048);
	char *json = NULL, *env = NULL;
	CHECK_INT(agentkey_rsaparams(&json, k), 0);
	CHECK_INT(agentkey_env_value(&env, k), 0);
	CHECK(strncmp(json, "{\"ContainerName\":\"\",\"UseCng\":false,\"d\":\"", 40) == 0);
	/* AZP_AGENT_KEY is base64 of exactly that JSON. */
	unsigned char *dec = xcalloc(1, strlen(env) + 1);
	int dn = EVP_DecodeBlock(dec, (const unsigned char *)env, (int)strlen(env));
	CHECK(dn >= (int)strlen(json) && memcmp(dec, json, strlen(json)) == 0);
	free(dec);

	cJSON *o = cJSON_Parse(json), *pub = agentkey_public_json(k);
	CHECK(o != NULL && pub != NULL);
	static const char *const names[] = {"d", "dp", "dq", "exponent", "inverseQ", "modulus", "p", "q"};
	static const int lens[] = {256, 128, 128, 3, 128, 256, 128, 128};
	BIGNUM *v[8];
	for (int i = 0; i < 8; i++) {
		int len = 0;
		v[i] = b64_bn(o, names[i], &len);
		CHECK(v[i] != NULL);
		CHECK_INT(len, lens[i]); /* .NET's ExportParameters lengths */
	}
	BIGNUM *d = v[0], *dp = v[1], *dq = v[2], *e = v[3], *iq = v[4], *n = v[5], *p = v[6], *q = v[7];
	int l1, l2;
	BIGNUM *pe = b64_bn(pub, "exponent", &l1), *pn = b64_bn(pub, "modulus", &l2);
	CHECK(BN_cmp(pe, e) == 0 && BN_cmp(pn, n) == 0); /* the registered half is this key's */
	CHECK(BN_is_word(e, 65537));
	CHECK_INT(BN_num_bits(n), 2048);
	BN_CTX *ctx = BN_CTX_new();
	BIGNUM *t = BN_new(), *one = BN_new(), *pm1 = BN_new(), *qm1 = BN_new();
	BN_one(one);
	BN_mul(t, p, q, ctx);
	CHECK(BN_cmp(t, n) == 0); /* p * q == modulus */
	BN_sub(pm1, p, one);
	BN_sub(qm1, q, one);
	BN_mod(t, d, pm1, ctx);
	CHECK(BN_cmp(t, dp) == 0); /* dp = d mod (p-1) */
	BN_mod(t, d, qm1, ctx);
	CHECK(BN_cmp(t, dq) == 0);
	BN_mod_mul(t, iq, q, p, ctx);
	CHECK(BN_is_one(t)); /* inverseQ * q = 1 mod p */
	BN_mod_mul(t, e, dp, pm1, ctx);
	CHECK(BN_is_one(t)); /* e * d = 1 mod (p-1) */
	BN_free(t), BN_free(one), BN_free(pm1), BN_free(qm1), BN_free(pe), BN_free(pn);
	BN_CTX_free(ctx);
	for (int i = 0; i < 8; i++)
		BN_clear_free(v[i]);
	char fp[17];
	agentkey_fingerprint(fp, k);
	CHECK_INT(strlen(fp), 16);
	/* Two keys are two keys. */
	struct agentkey *k2 = small_key();
	char fp2[17];
	agentkey_fingerprint(fp2, k2);
	CHECK(strcmp(fp, fp2) != 0);
	agentkey_free(k2);
	cJSON_Delete(o);
	cJSON_Delete(pub);
	agentkey_secret_free(json);
	agentkey_secret_free(env);
	agentkey_free(k);
	agentkey_free(NULL);
	agentkey_secret_free(NULL);
	CHECK_INT(agentkey_generate(&k, 512), CTL_EINVALID);
	CHECK(k == NULL);
}

/* ---- wire: every call ---- */

TEST(wire_pool_get)
{
	struct rig r;
	rig_start(&r, 0, NULL);
	canned_reply(&r.s, 0, 200, NULL,
		     "{\"count\":1,\"value\":[{\"id\":10,\"name\":\"ACI Linux\",\"isHosted\":false,\"poolType\":"
		     "\"automation\",\"size\":3}]}");
	struct devops_pool p;
	CHECK_INT(devops_pool_get(&p, r.c, "aci linux"), 0);
	CHECK_INT(p.id, 10);
	CHECK_STR(p.name, "ACI Linux");
	CHECK_INT(p.size, 3);
	CHECK(!p.is_hosted);
	devops_pool_dispose(&p);
	check_line(&r, 0, "GET /contoso/_apis/distributedtask/pools?poolName=aci%20linux&api-version=7.1 HTTP/1.1");
	check_basic_auth(&r, 0);
	CHECK_STR(r.metrics_last, "GET devops.pools.list 200");
	/* No pool of that name: not found, saying which. */
	canned_reply(&r.s, 0, 200, NULL, "{\"count\":0,\"value\":[]}");
	CHECK_INT(devops_pool_get(&p, r.c, "nope"), CTL_ENOTFOUND);
	CHECK_STR(ctl_error_last()->reason, "TaskAgentPoolNotFoundException");
	CHECK(strstr(ctl_error_last()->message, "nope") && strstr(ctl_error_last()->message, "contoso"));
	rig_stop(&r);
}

TEST(wire_agents_list)
{
	struct rig r;
	rig_start(&r, 0, NULL);
	canned_reply(&r.s, 0, 200, NULL,
		     "{\"count\":2,\"value\":[{\"id\":7,\"name\":\"aci-0\",\"version\":\"4.258.1\",\"enabled\":true,"
		     "\"status\":\"online\",\"authorization\":{\"clientId\":\"c-7\",\"authorizationUrl\":\"https://vstoken"
		     ".dev.azure.com/o/oauth2/token\"},\"assignedRequest\":{\"requestId\":41,\"jobName\":\"j\"}},"
		     "{\"id\":8,\"name\":\"aci-1\",\"enabled\":false,\"status\":\"offline\"}]}");
	struct devops_agent_list l;
	CHECK_INT(devops_agents_list(&l, r.c, 10, NULL), 0);
	CHECK_INT(l.n, 2);
	CHECK_INT(l.items[0].id, 7);
	CHECK_STR(l.items[0].name, "aci-0");
	CHECK(l.items[0].enabled && l.items[0].online && l.items[0].busy);
	CHECK_INT(l.items[0].assigned_request_id, 41);
	CHECK_STR(l.items[0].client_id, "c-7");
	CHECK_STR(l.items[0].version, "4.258.1");
	CHECK(!l.items[1].enabled && !l.items[1].online && !l.items[1].busy);
	CHECK(l.items[1].client_id == NULL);
	devops_agent_list_dispose(&l);
	check_line(&r, 0, "GET /contoso/_apis/distributedtask/pools/10/agents?includeAssignedRequest=true&api-version=7.1 HTTP/1.1");
	check_basic_auth(&r, 0);
	canned_reply(&r.s, 0, 200, NULL, "{\"count\":0,\"value\":[]}");
	CHECK_INT(devops_agents_list(&l, r.c, 10, "aci 0"), 0);
	CHECK_INT(l.n, 0);
	devops_agent_list_dispose(&l);
	check_line(&r, 1, "GET /contoso/_apis/distributedtask/pools/10/agents?includeAssignedRequest=true&agentName=aci%200&api-version=7.1 HTTP/1.1");
	/* An answer that is not a list. */
	canned_reply(&r.s, 0, 200, NULL, "{\"count\":1}");
	CHECK_INT(devops_agents_list(&l, r.c, 10, NULL), CTL_EINVALID);
	canned_reply(&r.s, 0, 200, NULL, "not json");
	CHECK_INT(devops_agents_list(&l, r.c, 10, NULL), CTL_EINVALID);
	rig_stop(&r);
}

TEST(wire_agent_add_sends_public_key)
{
	struct rig r;
	rig_start(&r, 0, NULL);
	struct agentkey *k = small_key();
	canned_reply(&r.s, 0, 200, NULL,
		     "{\"id\":12,\"name\":\"aci-2\",\"enabled\":true,\"status\":\"offline\",\"authorization\":"
		     "{\"clientId\":\"0c1e5d5a-1111-2222-3333-444455556666\",\"authorizationUrl\":"
		     "\"https://vstoken.dev.azure.com/abc/oauth2/token\",\"publicKey\":{}}}");
	struct devops_agent a;
	CHECK_INT(devops_agent_add(&a, r.c, 10, "aci-2", k), 0);
	CHECK_INT(a.id, 12);
	CHECK_STR(a.client_id, "0c1e5d5a-1111-2222-3333-444455556666");
	CHECK_STR(a.authorization_url, "https://vstoken.dev.azure.com/abc/oauth2/token");
	devops_agent_dispose(&a);
	const char *req = canned_request(&r.s, 0, 0);
	check_line(&r, 0, "POST /contoso/_apis/distributedtask/pools/10/agents?api-version=7.1 HTTP/1.1");
	check_basic_auth(&r, 0);
	char *ct = canned_header(req, "Content-Type");
	CHECK_STR(ct, "application/json");
	free(ct);
	cJSON *pub = agentkey_public_json(k), *want = cJSON_CreateObject();
	cJSON_AddStringToObject(want, "name", "aci-2");
	cJSON_AddTrueToObject(want, "enabled");
	cJSON_AddNumberToObject(want, "maxParallelism", 1);
	cJSON_AddItemToObject(cJSON_AddObjectToObject(want, "authorization"), "publicKey", pub);
	char *w = cJSON_PrintUnformatted(want);
	CHECK_STR(canned_body(req), w);
	CHECK(strstr(canned_body(req), "\"exponent\":\"AQAB\"") != NULL);
	cJSON_free(w);
	cJSON_Delete(want);
	/* Nothing private went out. */
	char *priv = NULL;
	CHECK_INT(agentkey_rsaparams(&priv, k), 0);
	cJSON *po = cJSON_Parse(priv);
	CHECK(strstr(req, cJSON_GetObjectItem(po, "d")->valuestring) == NULL);
	CHECK(strstr(req, cJSON_GetObjectItem(po, "p")->valuestring) == NULL);
	cJSON_Delete(po);
	agentkey_secret_free(priv);
	/* The name is taken. */
	canned_reply(&r.s, 0, 409, NULL, ERR_BODY("TaskAgentExistsException", "An agent named aci-2 already exists in the pool aci."));
	CHECK_INT(devops_agent_add(&a, r.c, 10, "aci-2", k), CTL_ECONFLICT);
	CHECK_STR(ctl_error_last()->reason, "TaskAgentExistsException");
	agentkey_free(k);
	rig_stop(&r);
}

TEST(wire_agent_add_not_repeated_after_5xx)
{
	struct rig r;
	rig_start(&r, 0, NULL);
	struct agentkey *k = small_key();
	canned_reply(&r.s, 0, 503, "Retry-After: 2\r\n", ERR_BODY("ServiceUnavailableException", "busy"));
	CHECK_INT(devops_agent_add(NULL, r.c, 10, "aci-2", k), CTL_EUNAVAIL);
	CHECK_INT(r.s.narm_requests, 1);
	CHECK_STR(ctl_error_last()->reason, "ServiceUnavailableException");
	CHECK_INT(ctl_error_last()->retry_after_ms, 2000);
	/* A 429 never reached the service: tried again. */
	canned_reply(&r.s, 0, 429, "Retry-After: 1\r\n", ERR_BODY("RequestBlockedException", "blocked"));
	canned_reply(&r.s, 0, 200, NULL, "{\"id\":12,\"name\":\"aci-2\"}");
	CHECK_INT(devops_agent_add(NULL, r.c, 10, "aci-2", k), 0);
	CHECK_INT(r.s.narm_requests, 3);
	agentkey_free(k);
	rig_stop(&r);
}

TEST(wire_agent_replace_enable_delete)
{
	struct rig r;
	rig_start(&r, 0, NULL);
	struct agentkey *k = small_key();
	canned_reply(&r.s, 0, 200, NULL, "{\"id\":7,\"name\":\"aci-0\",\"enabled\":false}");
	struct devops_agent a;
	CHECK_INT(devops_agent_replace(&a, r.c, 10, 7, "aci-0", false, k), 0);
	CHECK(!a.enabled);
	devops_agent_dispose(&a);
	check_line(&r, 0, "PUT /contoso/_apis/distributedtask/pools/10/agents/7?api-version=7.1 HTTP/1.1");
	check_basic_auth(&r, 0);
	cJSON *body = cJSON_Parse(canned_body(canned_request(&r.s, 0, 0)));
	CHECK_INT(cJSON_GetObjectItem(body, "id")->valueint, 7);
	CHECK_STR(cJSON_GetObjectItem(body, "name")->valuestring, "aci-0");
	CHECK(cJSON_IsFalse(cJSON_GetObjectItem(body, "enabled")));
	cJSON *pk = cJSON_GetObjectItem(cJSON_GetObjectItem(body, "authorization"), "publicKey");
	cJSON *pub = agentkey_public_json(k);
	CHECK(cJSON_Compare(pk, pub, 1));
	cJSON_Delete(pub);
	cJSON_Delete(body);

	canned_reply(&r.s, 0, 200, NULL, "{\"id\":7,\"name\":\"aci-0\",\"enabled\":true}");
	CHECK_INT(devops_agent_set_enabled(&a, r.c, 10, 7, true), 0);
	CHECK(a.enabled);
	devops_agent_dispose(&a);
	check_line(&r, 1, "PATCH /contoso/_apis/distributedtask/pools/10/agents/7?api-version=7.1 HTTP/1.1");
	CHECK_STR(canned_body(canned_request(&r.s, 0, 1)), "{\"id\":7,\"enabled\":true}");
	canned_reply(&r.s, 0, 200, NULL, "{\"id\":7,\"name\":\"aci-0\",\"enabled\":false}");
	CHECK_INT(devops_agent_set_enabled(NULL, r.c, 10, 7, false), 0);
	CHECK_STR(canned_body(canned_request(&r.s, 0, 2)), "{\"id\":7,\"enabled\":false}");

	canned_reply(&r.s, 0, 204, NULL, NULL);
	CHECK_INT(devops_agent_delete(r.c, 10, 7), 0);
	check_line(&r, 3, "DELETE /contoso/_apis/distributedtask/pools/10/agents/7?api-version=7.1 HTTP/1.1");
	check_basic_auth(&r, 3);
	CHECK_STR(canned_body(canned_request(&r.s, 0, 3)), "");
	/* Already gone is what a delete wants. */
	canned_reply(&r.s, 0, 404, NULL, ERR_BODY("TaskAgentNotFoundException", "No agent found in pool aci which has ID 7."));
	CHECK_INT(devops_agent_delete(r.c, 10, 7), 0);
	/* Not allowed is not. */
	canned_reply(&r.s, 0, 403, NULL, ERR_BODY("UnauthorizedRequestException", "Access denied: the personal access token needs the scope Agent Pools (read, manage)"));
	CHECK_INT(devops_agent_delete(r.c, 10, 7), CTL_ETERMINAL);
	CHECK_STR(ctl_error_last()->reason, "UnauthorizedRequestException");
	CHECK(strstr(ctl_error_last()->message, "Agent Pools (read, manage)") != NULL);
	CHECK_INT(ctl_error_last()->http_status, 403);
	check_no_secret();
	agentkey_free(k);
	rig_stop(&r);
}

TEST(wire_jobrequests_and_queued_count)
{
	struct rig r;
	rig_start(&r, 0, NULL);
	canned_reply(&r.s, 0, 200, NULL,
		     "{\"count\":3,\"value\":[{\"requestId\":1,\"queueTime\":\"2025-01-01T00:00:00Z\"},"
		     "{\"requestId\":2,\"queueTime\":\"2025-01-01T00:00:00Z\"},"
		     "{\"requestId\":3,\"assignTime\":\"2025-01-01T00:00:01Z\",\"reservedAgent\":{\"id\":7}}]}");
	int queued = -1;
	CHECK_INT(devops_jobs_queued(&queued, r.c, 10), 0);
	CHECK_INT(queued, 2);
	check_line(&r, 0, "GET /contoso/_apis/distributedtask/pools/10/jobrequests?completedRequestCount=0&api-version=7.1 HTTP/1.1");
	check_basic_auth(&r, 0);
	CHECK_STR(r.metrics_last, "GET devops.jobrequests.list 200");
	canned_reply(&r.s, 0, 200, NULL,
		     "{\"count\":1,\"value\":[{\"requestId\":9,\"result\":\"succeeded\",\"finishTime\":\"x\","
		     "\"reservedAgent\":{\"id\":7}}]}");
	struct devops_jobrequest_list l;
	CHECK_INT(devops_jobrequests_list(&l, r.c, 10, 50), 0);
	CHECK_INT(l.n, 1);
	CHECK_STR(l.items[0].result, "succeeded");
	devops_jobrequest_list_dispose(&l);
	check_line(&r, 1, "GET /contoso/_apis/distributedtask/pools/10/jobrequests?completedRequestCount=50&api-version=7.1 HTTP/1.1");
	canned_reply(&r.s, 0, 200, NULL, "{\"count\":0,\"value\":[]}");
	CHECK_INT(devops_jobrequests_list(&l, r.c, 10, -1), 0);
	devops_jobrequest_list_dispose(&l);
	check_line(&r, 2, "GET /contoso/_apis/distributedtask/pools/10/jobrequests?api-version=7.1 HTTP/1.1");
	rig_stop(&r);
}

/* ---- wire: retries and errors ---- */

TEST(wire_429_retry_after_honoured)
{
	struct rig r;
	rig_start(&r, 0, NULL);
	canned_reply(&r.s, 0, 429, "Retry-After: 2\r\nX-RateLimit-Resource: Core\r\n",
		     ERR_BODY("RequestBlockedException", "TF400733: The request has been canceled"));
	canned_reply(&r.s, 0, 503, "Retry-After: 1\r\n", ERR_BODY("ServiceUnavailableException", "busy"));
	canned_reply(&r.s, 0, 200, NULL, "{\"count\":0,\"value\":[]}");
	struct devops_agent_list l;
	CHECK_INT(devops_agents_list(&l, r.c, 10, NULL), 0);
	devops_agent_list_dispose(&l);
	CHECK_INT(r.s.narm_requests, 3);
	CHECK_INT(r.clk.nsleeps, 2);
	CHECK_INT(r.clk.sleeps[0], 2000);
	CHECK_INT(r.clk.sleeps[1], 1000);
	CHECK_INT(r.metrics_calls, 3);
	/* Each attempt carried the credential. */
	for (size_t i = 0; i < 3; i++)
		check_basic_auth(&r, i);
	rig_stop(&r);
}

TEST(wire_429_gives_up_with_retry_after)
{
	struct rig r;
	rig_start(&r, 0, NULL);
	/* A wait past the budget (10 s here): give up at once, saying when. */
	canned_reply(&r.s, 0, 429, "Retry-After: 30\r\nActivityId: act-429\r\n",
		     ERR_BODY("RequestBlockedException", "TF400733: blocked"));
	int queued = -1;
	CHECK_INT(devops_jobs_queued(&queued, r.c, 10), CTL_EUNAVAIL);
	const struct ctl_error *e = ctl_error_last();
	CHECK_STR(e->reason, "RequestBlockedException");
	CHECK_STR(e->message, "TF400733: blocked");
	CHECK_INT(e->retry_after_ms, 30000);
	CHECK_INT(e->http_status, 429);
	CHECK_INT(r.clk.nsleeps, 0);
	CHECK_INT(r.s.narm_requests, 1);
	rig_stop(&r);
}

TEST(wire_errors_mapped_without_secrets)
{
	struct rig r;
	rig_start(&r, 0, NULL);
	struct devops_pool p;
	canned_reply(&r.s, 0, 401, "WWW-Authenticate: Basic realm=\"x\"\r\n",
		     ERR_BODY("UnauthorizedRequestException", "TF400813: The user '' is not authorized to access this resource."));
	CHECK_INT(devops_pool_get(&p, r.c, "aci"), CTL_EAUTH);
	CHECK_STR(ctl_error_last()->reason, "UnauthorizedRequestException");
	CHECK_INT(r.s.narm_requests, 1); /* a PAT is not refreshed: one attempt */
	check_no_secret();
	canned_reply(&r.s, 0, 403, NULL, ERR_BODY("UnauthorizedRequestException", "Access denied: the personal access token needs the scope Agent Pools (read)"));
	CHECK_INT(devops_pool_get(&p, r.c, "aci"), CTL_ETERMINAL);
	check_no_secret();
	canned_reply(&r.s, 0, 404, NULL, ERR_BODY("HostNotFoundException", "VS800075: The project collection with name 'contoso' does not exist."));
	CHECK_INT(devops_pool_get(&p, r.c, "aci"), CTL_ENOTFOUND);
	CHECK_STR(ctl_error_last()->reason, "HostNotFoundException");
	CHECK(strstr(ctl_error_last()->request_id, "req-404") == ctl_error_last()->request_id);
	/* A service message quoting the credential is withheld. */
	canned_reply(&r.s, 0, 400, NULL, ERR_BODY("ArgumentException", "bad token " PAT));
	CHECK_INT(devops_pool_get(&p, r.c, "aci"), CTL_ETERMINAL);
	CHECK_STR(ctl_error_last()->reason, "ArgumentException");
	check_no_secret();
	/* The sign-in page some clients get instead of a 401. */
	canned_reply(&r.s, 0, 203, "Content-Type: text/html\r\n", "<html>Sign in</html>");
	CHECK_INT(devops_pool_get(&p, r.c, "aci"), CTL_EAUTH);
	CHECK_STR(ctl_error_last()->reason, "NonAuthoritativeAnswer");
	/* The pool in a 404 for an unknown pool id. */
	canned_reply(&r.s, 0, 404, NULL, ERR_BODY("TaskAgentPoolNotFoundException", "Agent pool 99 could not be found."));
	struct devops_agent_list l;
	CHECK_INT(devops_agents_list(&l, r.c, 99, NULL), CTL_ENOTFOUND);
	CHECK_STR(ctl_error_last()->message, "Agent pool 99 could not be found.");
	rig_stop(&r);
}

TEST(wire_no_answer)
{
	struct devops_client *c = NULL;
	struct fake_clock clk = {.now_ms = 1700000000000LL};
	char ep[64];
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", canned_dead_port());
	struct devops_options o = {
		.organization_url = "https://dev.azure.com/contoso", .endpoint = ep, .pat = PAT, .max_attempts = 2,
		.sleep = fake_sleep, .clock = fake_clock_ms, .clock_arg = &clk,
	};
	CHECK_INT(devops_client_new(&c, &o), 0);
	int queued;
	CHECK_INT(devops_jobs_queued(&queued, c, 10), CTL_EUNAVAIL);
	CHECK_STR(ctl_error_last()->reason, "ConnectionFailed");
	CHECK_INT(clk.nsleeps, 1);
	check_no_secret();
	devops_client_free(c);
}

/* ---- wire: Entra ---- */

TEST(wire_entra_bearer_for_devops_audience)
{
	struct rig r;
	rig_start(&r, 1, DEVOPS_RESOURCE);
	canned_reply(&r.s, 0, 200, NULL, "{\"count\":1,\"value\":[{\"id\":10,\"name\":\"aci\"}]}");
	struct devops_pool p;
	CHECK_INT(devops_pool_get(&p, r.c, "aci"), 0);
	devops_pool_dispose(&p);
	char *h = canned_header(canned_request(&r.s, 0, 0), "Authorization");
	CHECK_STR(h, "Bearer tok-default");
	free(h);
	const char *tok = canned_request(&r.s, 1, 0);
	CHECK(tok && strstr(canned_body(tok), "scope=499b84ac-1321-427f-aa17-267ca6975798%2F.default") != NULL);
	/* 401: the token is dropped and fetched again, once. */
	canned_reply(&r.s, 0, 401, NULL, ERR_BODY("UnauthorizedRequestException", "TF400813: not authorized"));
	canned_reply(&r.s, 0, 401, NULL, ERR_BODY("UnauthorizedRequestException", "TF400813: not authorized"));
	CHECK_INT(devops_pool_get(&p, r.c, "aci"), CTL_EAUTH);
	CHECK_INT(r.s.narm_requests, 3);
	CHECK_INT(r.s.ntoken_requests, 2);
	check_no_secret();
	rig_stop(&r);
}

TEST_MAIN(T(org_url_forms), T(client_base_and_credentials), T(identity_devops_audience), T(error_body_mapping),
	  T(job_counts_queued_running_finished), T(agent_key_rsaparams_round_trip), T(wire_pool_get),
	  T(wire_agents_list), T(wire_agent_add_sends_public_key), T(wire_agent_add_not_repeated_after_5xx),
	  T(wire_agent_replace_enable_delete), T(wire_jobrequests_and_queued_count), T(wire_429_retry_after_honoured),
	  T(wire_429_gives_up_with_retry_after), T(wire_errors_mapped_without_secrets), T(wire_no_answer),
	  T(wire_entra_bearer_for_devops_audience))
