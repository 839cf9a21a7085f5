/*
 * Tests for reconcilers/azure/identity.c: the cloud table, token response and
 * error parsing, refresh timing and cache decisions with an injected clock,
 * and the exact token requests each credential sends (canned_http.h).
 */
#include "test.h"

#include "canned_http.h"

#include "azure/identity.h"
#include "error.h"
#include "xalloc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOKEN_REPLY(tok, exp) "{\"token_type\":\"Bearer\",\"expires_in\":" #exp ",\"access_token\":\"" tok "\"}"

TEST(cloud_table)
{
	const struct identity_cloud *c = identity_cloud_find(NULL);
	CHECK_STR(c->name, "AzureCloud");
	CHECK_STR(c->authority_host, "https://login.microsoftonline.com/");
	CHECK_STR(c->arm_endpoint, "https://management.azure.com/");
	CHECK_STR(identity_cloud_find("")->name, "AzureCloud");
	CHECK_STR(identity_cloud_find("azurecloud")->name, "AzureCloud");
	CHECK_STR(identity_cloud_find("AzurePublicCloud")->name, "AzureCloud");
	c = identity_cloud_find("AzureUSGovernment");
	CHECK_STR(c->authority_host, "https://login.microsoftonline.us/");
	CHECK_STR(c->arm_endpoint, "https://management.usgovcloudapi.net/");
	CHECK_STR(c->arm_resource, "https://management.usgovcloudapi.net/");
	CHECK_STR(identity_cloud_find("AzureUSGovernmentCloud")->name, "AzureUSGovernment");
	c = identity_cloud_find("AzureChinaCloud");
	CHECK_STR(c->authority_host, "https://login.chinacloudapi.cn/");
	CHECK_STR(c->arm_endpoint, "https://management.chinacloudapi.cn/");
	CHECK(identity_cloud_find("AzureGermanCloud") == NULL);
}

TEST(token_parse_v2_number)
{
	struct identity_token t;
	CHECK_INT(identity_token_parse(&t, "{\"token_type\":\"Bearer\",\"expires_in\":3599,"
				       "\"ext_expires_in\":3599,\"access_token\":\"eyJ.a.b\"}", 1000), 0);
	CHECK_STR(t.access_token, "eyJ.a.b");
	CHECK_INT(t.expires_on, 4599);
	CHECK_INT(t.refresh_at, 4599 - 300);
	identity_token_dispose(&t);
}

TEST(token_parse_imds_strings)
{
	struct identity_token t;
	/* IMDS sends numbers as strings; expires_in wins over expires_on
	 * because it does not depend on the two clocks agreeing. */
	CHECK_INT(identity_token_parse(&t, "{\"access_token\":\"x\",\"refresh_token\":\"\",\"expires_in\":\"86399\","
				       "\"expires_on\":\"1506484173\",\"not_before\":\"1506480273\","
				       "\"resource\":\"https://management.azure.com/\",\"token_type\":\"Bearer\"}",
				       2000), 0);
	CHECK_INT(t.expires_on, 2000 + 86399);
	CHECK_INT(t.refresh_at, 2000 + 86399 / 2);
	identity_token_dispose(&t);
}

TEST(token_parse_expires_on_only)
{
	struct identity_token t;
	CHECK_INT(identity_token_parse(&t, "{\"access_token\":\"x\",\"expires_on\":\"5000\"}", 1000), 0);
	CHECK_INT(t.expires_on, 5000);
	identity_token_dispose(&t);
	CHECK_INT(identity_token_parse(&t, "{\"access_token\":\"x\",\"expires_on\":5000}", 1000), 0);
	CHECK_INT(t.expires_on, 5000);
	identity_token_dispose(&t);
}

TEST(token_parse_refresh_in)
{
	struct identity_token t;
	CHECK_INT(identity_token_parse(&t, "{\"access_token\":\"x\",\"expires_in\":7200,\"refresh_in\":1800}", 0), 0);
	CHECK_INT(t.refresh_at, 1800);
	identity_token_dispose(&t);
}

TEST(token_parse_rejects)
{
	struct identity_token t;
	CHECK_INT(identity_token_parse(&t, "not json", 0), CTL_EINVALID);
	CHECK(t.access_token == NULL);
	CHECK_INT(identity_token_parse(&t, "{\"expires_in\":3600}", 0), CTL_EINVALID);
	CHECK_INT(identity_token_parse(&t, "{\"access_token\":\"\",\"expires_in\":3600}", 0), CTL_EINVALID);
	CHECK_INT(identity_token_parse(&t, "{\"access_token\":\"x\"}", 0), CTL_EINVALID);
	CHECK_INT(identity_token_parse(&t, "{\"access_token\":\"x\",\"expires_in\":\"soon\"}", 0), CTL_EINVALID);
	CHECK(t.access_token == NULL);
}

TEST(refresh_at_rules)
{
	/* 1 h app token: 5 min before expiry. */
	CHECK_INT(identity_refresh_at(0, 3600, 0), 3300);
	/* 24 h managed identity token: half the lifetime (MSAL). */
	CHECK_INT(identity_refresh_at(0, 86400, 0), 43200);
	/* Exactly 2 h: still the 5 minute rule. */
	CHECK_INT(identity_refresh_at(0, 7200, 0), 6900);
	/* Server refresh_in wins, but never later than expiry - 5 min. */
	CHECK_INT(identity_refresh_at(100, 3700, 600), 700);
	CHECK_INT(identity_refresh_at(0, 3600, 3500), 3300);
	/* A token too short for the 5 minute margin: half its life. */
	CHECK_INT(identity_refresh_at(0, 240, 0), 120);
}

TEST(cache_decide_table)
{
	static const struct {
		struct identity_cache_state s;
		int64_t now;
		enum identity_cache_action want;
	} cases[] = {
		{{0, 0, 0, 0, 0}, 100, IDENTITY_CACHE_FETCH},           /* empty */
		{{1, 4000, 3700, 0, 0}, 1000, IDENTITY_CACHE_USE},       /* fresh */
		{{1, 4000, 3700, 0, 0}, 3700, IDENTITY_CACHE_FETCH},     /* refresh due */
		{{1, 4000, 3700, 1, 0}, 3800, IDENTITY_CACHE_USE},       /* someone refreshing */
		{{1, 4000, 3700, 0, 3790}, 3800, IDENTITY_CACHE_USE},    /* refresh failed 10 s ago */
		{{1, 4000, 3700, 0, 3700}, 3800, IDENTITY_CACHE_FETCH},  /* ... 100 s ago */
		{{1, 4000, 3700, 0, 0}, 3975, IDENTITY_CACHE_FETCH},     /* inside the skew */
		{{1, 4000, 3700, 1, 0}, 3975, IDENTITY_CACHE_WAIT},      /* unusable, fetch in flight */
		{{0, 0, 0, 1, 0}, 100, IDENTITY_CACHE_WAIT},
		{{0, 0, 0, 0, 98}, 100, IDENTITY_CACHE_FAILED},          /* failed 2 s ago */
		{{0, 0, 0, 0, 90}, 100, IDENTITY_CACHE_FETCH},           /* failed 10 s ago */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum identity_cache_action got = identity_cache_decide(&cases[i].s, cases[i].now);
		if (got != cases[i].want)
			fprintf(stderr, "case %zu\n", i);
		CHECK_INT(got, cases[i].want);
	}
}

TEST(error_aadsts_from_codes)
{
	const char *body = "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client "
			   "secret provided.\\r\\nTrace ID: 1\\r\\nCorrelation ID: 2\\r\\nTimestamp: 3\","
			   "\"error_codes\":[7000215],\"correlation_id\":\"c0ffee-1\"}";
	CHECK_INT(identity_error_set(401, body, NULL), CTL_EAUTH);
	const struct ctl_error *e = ctl_error_last();
	CHECK_STR(e->reason, "AADSTS7000215");
	CHECK_STR(e->message, "token request failed (HTTP 401): invalid_client: AADSTS7000215: Invalid client "
			      "secret provided.");
	CHECK_STR(e->request_id, "c0ffee-1");
	CHECK_INT(e->http_status, 401);
}

TEST(error_aadsts_from_description)
{
	/* The emulator's single-line form: trace ids after a space. */
	const char *body = "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS70021: No matching "
			   "federated identity record found. Trace ID: abc Correlation ID: def\"}";
	CHECK_INT(identity_error_set(400, body, NULL), CTL_EAUTH);
	CHECK_STR(ctl_error_last()->reason, "AADSTS70021");
	CHECK(strstr(ctl_error_last()->message, "Trace ID") == NULL);
	CHECK(strstr(ctl_error_last()->message, "No matching federated identity record found.") != NULL);
}

TEST(error_oauth_code_only)
{
	CHECK_INT(identity_error_set(400, "{\"error\":\"invalid_request\",\"error_description\":"
				     "\"Identity not found\"}", NULL), CTL_EAUTH);
	CHECK_STR(ctl_error_last()->reason, "invalid_request");
	CHECK_INT(identity_error_set(503, "<html>oops</html>", NULL), CTL_EUNAVAIL);
	CHECK_STR(ctl_error_last()->reason, "TokenRequestFailed");
	CHECK_STR(ctl_error_last()->message, "token request failed (HTTP 503)");
	CHECK_INT(identity_error_set(429, "", NULL), CTL_EUNAVAIL);
}

TEST(error_scrubs_secrets)
{
	const char *secrets[] = {"s3cr3t-Value~42", "eyJhbGciOi.assertion.sig", NULL};
	const char *body = "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: secret "
			   "s3cr3t-Value~42 and assertion eyJhbGciOi.assertion.sig are wrong s3cr3t-Value~42\"}";
	identity_error_set(401, body, secrets);
	const struct ctl_error *e = ctl_error_last();
	CHECK(strstr(e->message, "s3cr3t") == NULL);
	CHECK(strstr(e->message, "assertion.sig") == NULL);
	CHECK(strstr(e->message, "[redacted]") != NULL);
}

/* ---- wire ---- */

static char *write_temp(const char *contents)
{
	char *path = xstrdup("/tmp/acrpool-wi-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, contents, strlen(contents)) != (ssize_t)strlen(contents))
		abort();
	close(fd);
	return path;
}

static void rewrite(const char *path, const char *contents)
{
	FILE *f = fopen(path, "w");
	fputs(contents, f);
	fclose(f);
}

TEST(workload_identity_request)
{
	struct canned_server s;
	struct fake_clock clk = {.now_ms = 1000000};
	struct identity *id = NULL;
	char *tok = NULL, *file = write_temp("  header.payload.sig-1\n");
	canned_start(&s);
	canned_reply(&s, 1, 200, NULL, TOKEN_REPLY("wi-1", 3600));
	canned_reply(&s, 1, 200, NULL, TOKEN_REPLY("wi-2", 3600));
	char *host = xasprintf("%s/", s.base);
	struct identity_options o = {
		.kind = IDENTITY_WORKLOAD, .tenant_id = "tenant-1", .client_id = "client-1",
		.federated_token_file = file, .authority_host = host,
		.clock = fake_clock_s, .sleep = fake_sleep, .clock_arg = &clk,
	};
	CHECK_INT(identity_new(&id, &o), 0);
	CHECK_INT(identity_token_get(&tok, id), 0);
	CHECK_STR(tok, "wi-1");
	const char *req = canned_request(&s, 1, 0);
	CHECK(req && strncmp(req, "POST /tenant-1/oauth2/v2.0/token HTTP/1.1\r\n", 43) == 0);
	char *ct = canned_header(req, "Content-Type");
	CHECK_STR(ct, "application/x-www-form-urlencoded");
	free(ct);
	CHECK_STR(canned_body(req), "client_id=client-1&scope=https%3A%2F%2Fmanagement.azure.com%2F.default"
				    "&grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams"
				    "%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion="
				    "header.payload.sig-1");
	identity_token_free(tok);

	/* The kubelet rotates the file; the next fetch reads it again. */
	rewrite(file, "header.payload.sig-2");
	identity_token_invalidate(id, "wi-1");
	CHECK_INT(identity_token_get(&tok, id), 0);
	CHECK_STR(tok, "wi-2");
	req = canned_request(&s, 1, 1);
	CHECK(req && strstr(canned_body(req), "client_assertion=header.payload.sig-2") != NULL);
	identity_token_free(tok);
	identity_free(id);
	canned_stop(&s);
	unlink(file);
	free(file);
	free(host);
}

TEST(workload_identity_env_defaults)
{
	struct canned_server s;
	struct identity *id = NULL;
	char *tok = NULL, *file = write_temp("assertion-from-env");
	canned_start(&s);
	/* The webhook's AZURE_AUTHORITY_HOST ends with a slash. */
	char *host = xasprintf("%s/", s.base);
	setenv("AZURE_TENANT_ID", "env-tenant", 1);
	setenv("AZURE_CLIENT_ID", "env-client", 1);
	setenv("AZURE_FEDERATED_TOKEN_FILE", file, 1);
	setenv("AZURE_AUTHORITY_HOST", host, 1);
	struct identity_options o = {.kind = IDENTITY_WORKLOAD, .client_id = "explicit-client"};
	CHECK_INT(identity_new(&id, &o), 0);
	CHECK_INT(identity_token_get(&tok, id), 0);
	CHECK_STR(tok, "tok-default");
	const char *req = canned_request(&s, 1, 0);
	CHECK(req && strncmp(req, "POST /env-tenant/oauth2/v2.0/token ", 35) == 0);
	CHECK(req && strstr(canned_body(req), "client_id=explicit-client&") != NULL);
	CHECK(req && strstr(canned_body(req), "client_assertion=assertion-from-env") != NULL);
	unsetenv("AZURE_TENANT_ID");
	unsetenv("AZURE_CLIENT_ID");
	unsetenv("AZURE_FEDERATED_TOKEN_FILE");
	unsetenv("AZURE_AUTHORITY_HOST");
	identity_token_free(tok);
	identity_free(id);
	canned_stop(&s);
	unlink(file);
	free(file);
	free(host);
}

TEST(workload_identity_missing_config)
{
	struct identity *id = NULL;
	struct identity_options o = {.kind = IDENTITY_WORKLOAD, .client_id = "c"};
	CHECK_INT(identity_new(&id, &o), CTL_EINVALID);
	CHECK_STR(ctl_error_last()->reason, "MissingTenantId");
	o.tenant_id = "t";
	CHECK_INT(identity_new(&id, &o), CTL_EINVALID);
	CHECK_STR(ctl_error_last()->reason, "MissingFederatedTokenFile");
	o.tenant_id = "t/../../evil";
	CHECK_INT(identity_new(&id, &o), CTL_EINVALID);
	o.tenant_id = "t";
	o.cloud = "Mars";
	CHECK_INT(identity_new(&id, &o), CTL_EINVALID);
	CHECK_STR(ctl_error_last()->reason, "UnknownCloud");
	CHECK(id == NULL);
}

TEST(service_principal_secret_request)
{
	struct canned_server s;
	struct identity *id = NULL;
	char *tok = NULL;
	canned_start(&s);
	struct identity_options o = {
		.kind = IDENTITY_SERVICE_PRINCIPAL, .tenant_id = "t1", .client_id = "app-1",
		.client_secret = "p@ss w+rd", .authority_host = s.base, .cloud = "AzureUSGovernment",
	};
	CHECK_INT(identity_new(&id, &o), 0);
	CHECK_INT(identity_token_get(&tok, id), 0);
	const char *req = canned_request(&s, 1, 0);
	CHECK(req && strncmp(req, "POST /t1/oauth2/v2.0/token ", 27) == 0);
	CHECK_STR(canned_body(req), "client_id=app-1&scope=https%3A%2F%2Fmanagement.usgovcloudapi.net%2F.default"
				    "&grant_type=client_credentials&client_secret=p%40ss%20w%2Brd");
	identity_token_free(tok);
	identity_free(id);
	canned_stop(&s);
}

TEST(secret_never_in_error)
{
	struct canned_server s;
	struct identity *id = NULL;
	char *tok = NULL;
	canned_start(&s);
	/* A token endpoint that echoes what it was sent. */
	canned_reply(&s, 1, 401, NULL,
		     "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client "
		     "secret provided: hunter2-SECRET\",\"error_codes\":[7000215]}");
	struct identity_options o = {
		.kind = IDENTITY_SERVICE_PRINCIPAL, .tenant_id = "t1", .client_id = "app-1",
		.client_secret = "hunter2-SECRET", .authority_host = s.base,
	};
	CHECK_INT(identity_new(&id, &o), 0);
	CHECK_INT(identity_token_get(&tok, id), CTL_EAUTH);
	CHECK(tok == NULL);
	const struct ctl_error *e = ctl_error_last();
	CHECK_STR(e->reason, "AADSTS7000215");
	CHECK(strstr(e->message, "hunter2") == NULL);
	CHECK(strstr(e->reason, "hunter2") == NULL);
	CHECK_INT(e->http_status, 401);
	/* Within the hold time the same error comes back without a call. */
	CHECK_INT(identity_token_get(&tok, id), CTL_EAUTH);
	CHECK_INT(s.ntoken_requests, 1);
	identity_free(id);
	canned_stop(&s);
}

TEST(imds_request)
{
	struct canned_server s;
	struct identity *id = NULL;
	char *tok = NULL;
	canned_start(&s);
	canned_reply(&s, 1, 200, NULL,
		     "{\"access_token\":\"mi-1\",\"refresh_token\":\"\",\"expires_in\":\"86399\","
		     "\"expires_on\":\"1506484173\",\"not_before\":\"1506480273\","
		     "\"resource\":\"https://management.azure.com/\",\"token_type\":\"Bearer\"}");
	struct identity_options o = {.kind = IDENTITY_MANAGED, .client_id = "mi-client", .imds_endpoint = s.base};
	CHECK_INT(identity_new(&id, &o), 0);
	CHECK_INT(identity_token_get(&tok, id), 0);
	CHECK_STR(tok, "mi-1");
	const char *req = canned_request(&s, 1, 0);
	const char *want = "GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource="
			   "https%3A%2F%2Fmanagement.azure.com%2F&client_id=mi-client HTTP/1.1\r\n";
	CHECK(req && strncmp(req, want, strlen(want)) == 0);
	char *md = canned_header(req, "Metadata");
	CHECK_STR(md, "true");
	free(md);
	identity_token_free(tok);
	identity_free(id);
	canned_stop(&s);
}

TEST(imds_endpoint_from_env)
{
	struct canned_server s;
	struct identity *id = NULL;
	char *tok = NULL;
	canned_start(&s);
	setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", s.base, 1);
	struct identity_options o = {.kind = IDENTITY_MANAGED};
	CHECK_INT(identity_new(&id, &o), 0);
	CHECK_INT(identity_token_get(&tok, id), 0);
	const char *req = canned_request(&s, 1, 0);
	CHECK(req && strstr(req, "resource=https%3A%2F%2Fmanagement.azure.com%2F HTTP/1.1") != NULL);
	unsetenv("AZURE_POD_IDENTITY_AUTHORITY_HOST");
	identity_token_free(tok);
	identity_free(id);
	canned_stop(&s);
}

TEST(imds_retries)
{
	struct canned_server s;
	struct fake_clock clk = {.now_ms = 5000000};
	struct identity *id = NULL;
	char *tok = NULL;
	canned_start(&s);
	canned_reply(&s, 1, 410, NULL, "");
	canned_reply(&s, 1, 429, "Retry-After: 3\r\n", "");
	canned_reply(&s, 1, 500, "Retry-After: 20\r\n", "");
	canned_reply(&s, 1, 200, NULL, "{\"access_token\":\"mi-ok\",\"expires_in\":\"3600\"}");
	struct identity_options o = {
		.kind = IDENTITY_MANAGED, .imds_endpoint = s.base,
		.clock = fake_clock_s, .sleep = fake_sleep, .clock_arg = &clk,
	};
	CHECK_INT(identity_new(&id, &o), 0);
	CHECK_INT(identity_token_get(&tok, id), 0);
	CHECK_STR(tok, "mi-ok");
	CHECK_INT(s.ntoken_requests, 4);
	/* 410 (IMDS updating): 3 s floor; 429: backoff 6 s beats Retry-After
	 * 3 s; 500: Retry-After 20 s beats backoff 14 s. */
	CHECK_INT(clk.nsleeps, 3);
	CHECK_INT(clk.sleeps[0], 3000);
	CHECK_INT(clk.sleeps[1], 6000);
	CHECK_INT(clk.sleeps[2], 20000);
	identity_token_free(tok);
	identity_free(id);
	canned_stop(&s);
}

TEST(imds_gives_up_and_does_not_retry_400)
{
	struct canned_server s;
	struct fake_clock clk = {.now_ms = 5000000};
	struct identity *id = NULL;
	char *tok = NULL;
	canned_start(&s);
	canned_reply(&s, 1, 400, NULL, "{\"error\":\"invalid_request\",\"error_description\":\"Identity not found\"}");
	for (int i = 0; i < 5; i++)
		canned_reply(&s, 1, 503, NULL, "");
	struct identity_options o = {
		.kind = IDENTITY_MANAGED, .imds_endpoint = s.base, .imds_max_attempts = 3,
		.clock = fake_clock_s, .sleep = fake_sleep, .clock_arg = &clk,
	};
	CHECK_INT(identity_new(&id, &o), 0);
	CHECK_INT(identity_token_get(&tok, id), CTL_EAUTH);
	CHECK_STR(ctl_error_last()->reason, "invalid_request");
	CHECK_INT(s.ntoken_requests, 1);
	CHECK_INT(clk.nsleeps, 0);
	clk.now_ms += 60000; /* past the failure hold */
	CHECK_INT(identity_token_get(&tok, id), CTL_EUNAVAIL);
	CHECK_INT(s.ntoken_requests, 4);
	CHECK_INT(clk.nsleeps, 2);
	identity_free(id);
	canned_stop(&s);
}

TEST(cache_refreshes_early_with_clock)
{
	struct canned_server s;
	struct fake_clock clk = {.now_ms = 1000000};
	struct identity *id = NULL;
	char *tok = NULL;
	canned_start(&s);
	canned_reply(&s, 1, 200, NULL, TOKEN_REPLY("t-1", 3600));
	canned_reply(&s, 1, 200, NULL, TOKEN_REPLY("t-2", 3600));
	struct identity_options o = {
		.kind = IDENTITY_SERVICE_PRINCIPAL, .tenant_id = "t", .client_id = "c", .client_secret = "s",
		.authority_host = s.base, .clock = fake_clock_s, .sleep = fake_sleep, .clock_arg = &clk,
	};
	CHECK_INT(identity_new(&id, &o), 0);
	CHECK_INT(identity_token_get(&tok, id), 0);
	CHECK_STR(tok, "t-1");
	identity_token_free(tok);
	clk.now_ms += 3000 * 1000; /* 50 min: still fresh */
	CHECK_INT(identity_token_get(&tok, id), 0);
	CHECK_STR(tok, "t-1");
	identity_token_free(tok);
	CHECK_INT(s.ntoken_requests, 1);
	clk.now_ms += 400 * 1000; /* 56 min 40 s: under 5 minutes left */
	CHECK_INT(identity_token_get(&tok, id), 0);
	CHECK_STR(tok, "t-2");
	identity_token_free(tok);
	CHECK_INT(s.ntoken_requests, 2);
	identity_free(id);
	canned_stop(&s);
}

TEST(cache_keeps_old_token_when_refresh_fails)
{
	struct canned_server s;
	struct fake_clock clk = {.now_ms = 1000000};
	struct identity *id = NULL;
	char *tok = NULL;
	canned_start(&s);
	canned_reply(&s, 1, 200, NULL, TOKEN_REPLY("t-1", 3600));
	canned_reply(&s, 1, 503, NULL, "");
	struct identity_options o = {
		.kind = IDENTITY_SERVICE_PRINCIPAL, .tenant_id = "t", .client_id = "c", .client_secret = "s",
		.authority_host = s.base, .clock = fake_clock_s, .sleep = fake_sleep, .clock_arg = &clk,
	};
	CHECK_INT(identity_new(&id, &o), 0);
	CHECK_INT(identity_token_get(&tok, id), 0);
	identity_token_free(tok);
	clk.now_ms += 3400 * 1000;
	CHECK_INT(identity_token_get(&tok, id), 0);
	CHECK_STR(tok, "t-1");
	identity_token_free(tok);
	/* No new attempt within the 30 s refresh backoff. */
	clk.now_ms += 10 * 1000;
	CHECK_INT(identity_token_get(&tok, id), 0);
	CHECK_STR(tok, "t-1");
	identity_token_free(tok);
	CHECK_INT(s.ntoken_requests, 2);
	identity_free(id);
	canned_stop(&s);
}

TEST(invalidate_only_matching_token)
{
	struct canned_server s;
	struct identity *id = NULL;
	char *tok = NULL;
	canned_start(&s);
	struct identity_options o = {
		.kind = IDENTITY_SERVICE_PRINCIPAL, .tenant_id = "t", .client_id = "c", .client_secret = "s",
		.authority_host = s.base,
	};
	CHECK_INT(identity_new(&id, &o), 0);
	CHECK_INT(identity_token_get(&tok, id), 0);
	identity_token_free(tok);
	identity_token_invalidate(id, "some-older-token");
	CHECK_INT(identity_token_get(&tok, id), 0);
	identity_token_free(tok);
	CHECK_INT(s.ntoken_requests, 1);
	identity_token_invalidate(id, "tok-default");
	CHECK_INT(identity_token_get(&tok, id), 0);
	identity_token_free(tok);
	CHECK_INT(s.ntoken_requests, 2);
	identity_free(id);
	canned_stop(&s);
}

static void *get_token_thread(void *arg)
{
	char *tok = NULL;
	if (identity_token_get(&tok, arg) == 0 && strcmp(tok, "tok-default") == 0) {
		identity_token_free(tok);
		return (void *)1;
	}
	identity_token_free(tok);
	return NULL;
}

TEST(concurrent_callers_share_one_fetch)
{
	struct canned_server s;
	struct identity *id = NULL;
	pthread_t t[4];
	canned_start(&s);
	s.token_delay_ms = 300;
	struct identity_options o = {
		.kind = IDENTITY_SERVICE_PRINCIPAL, .tenant_id = "t", .client_id = "c", .client_secret = "s",
		.authority_host = s.base,
	};
	CHECK_INT(identity_new(&id, &o), 0);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, get_token_thread, id);
	for (int i = 0; i < 4; i++) {
		void *ok = NULL;
		pthread_join(t[i], &ok);
		CHECK(ok != NULL);
	}
	CHECK_INT(s.ntoken_requests, 1);
	identity_free(id);
	canned_stop(&s);
}

TEST_MAIN(T(cloud_table), T(token_parse_v2_number), T(token_parse_imds_strings), T(token_parse_expires_on_only),
	  T(token_parse_refresh_in), T(token_parse_rejects), T(refresh_at_rules), T(cache_decide_table),
	  T(error_aadsts_from_codes), T(error_aadsts_from_description), T(error_oauth_code_only),
	  T(error_scrubs_secrets), T(workload_identity_request), T(workload_identity_env_defaults),
	  T(workload_identity_missing_config), T(service_principal_secret_request), T(secret_never_in_error),
	  T(imds_request), T(imds_endpoint_from_env), T(imds_retries), T(imds_gives_up_and_does_not_retry_400),
	  T(cache_refreshes_early_with_clock), T(cache_keeps_old_token_when_refresh_fails),
	  T(invalidate_only_matching_token), T(concurrent_callers_share_one_fetch))
