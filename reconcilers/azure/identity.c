/*
 * identity.c: Azure credentials and their token caches. See identity.h.
 *
 * Owns, per credential: copies of the configuration (the client secret is
 * zeroed on free), the cached access token (zeroed when replaced) and the
 * mutex and condition variable that guard it. Token requests use their own
 * short-lived curl easy handle: they happen about once an hour, and keeping
 * them off the ARM client's handles keeps the two layers independent.
 */
#include "azure/identity.h"

#include "buf.h"
#include "error.h"
#include "xalloc.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define TOKEN_BODY_MAX (1024 * 1024)
#define ASSERTION_MAX (64 * 1024)
#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define IMDS_DEFAULT "http://169.254.169.254"
#define IMDS_PATH "/metadata/identity/oauth2/token"
#define IMDS_API_VERSION "2018-02-01"
#define IMDS_MAX_DELAY_MS 60000L

static const struct identity_cloud clouds[] = {
	{"AzureCloud", "https://login.microsoftonline.com/",
	 "https://management.azure.com/", "https://management.azure.com/"},
	{"AzureUSGovernment", "https://login.microsoftonline.us/",
	 "https://management.usgovcloudapi.net/", "https://management.usgovcloudapi.net/"},
	{"AzureChinaCloud", "https://login.chinacloudapi.cn/",
	 "https://management.chinacloudapi.cn/", "https://management.chinacloudapi.cn/"},
};

struct identity {
	enum identity_kind kind;
	const struct identity_cloud *cloud;
	char *token_url;      /* v2 endpoint, or the IMDS URL with its query */
	char *resource;       /* audience: a URL ending with '/', or an application id */
	char *scope;          /* resource + "/.default" (one slash) */
	char *client_id;
	char *client_secret;
	char *token_file;
	char *ca_file;
	int imds_max_attempts;
	long imds_retry_delay_ms;
	long timeout_ms;
	identity_clock_fn clock;
	identity_sleep_fn sleep;
	void *clock_arg;

	pthread_mutex_t mu;   /* guards everything below */
	pthread_cond_t cond;  /* signalled when a fetch finishes */
	char *token;
	int64_t expires_on;
	int64_t refresh_at;
	int refreshing;
	int64_t last_failure;
	struct ctl_error last_error;
};

const struct identity_cloud *identity_cloud_find(const char *name)
{
	if (!name || !*name || strcasecmp(name, "AzurePublicCloud") == 0)
		return &clouds[0];
	if (strcasecmp(name, "AzureUSGovernmentCloud") == 0)
		return &clouds[1];
	for (size_t i = 0; i < sizeof(clouds) / sizeof(clouds[0]); i++)
		if (strcasecmp(name, clouds[i].name) == 0)
			return &clouds[i];
	return NULL;
}

static int64_t default_clock(void *arg)
{
	return (int64_t)time(NULL);
}

static void default_sleep(long ms, void *arg)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void secret_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* opt if set, else the environment variable, else NULL; copied. */
static char *pick(const char *opt, const char *env)
{
	if (opt && *opt)
		return xstrdup(opt);
	const char *v = env ? getenv(env) : NULL;
	return v && *v ? xstrdup(v) : NULL;
}

/* Tenant ids and client ids go into a URL path or query; accept only what
 * GUIDs and domain names are made of. */
static int safe_id(const char *s)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++)
		if (!(('a' <= *s && *s <= 'z') || ('A' <= *s && *s <= 'Z') ||
		      ('0' <= *s && *s <= '9') || *s == '-' || *s == '.' || *s == '_'))
			return 0;
	return 1;
}

static char *without_trailing_slash(const char *s)
{
	size_t n = strlen(s);
	while (n > 0 && s[n - 1] == '/')
		n--;
	return xstrndup(s, n);
}

static char *escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	if (!e)
		abort(); /* only allocation failure gets here */
	char *r = xstrdup(e);
	explicit_bzero(e, strlen(e));
	curl_free(e);
	return r;
}

/*
 * Create a credential: resolve the options against the environment and the
 * cloud table, build the token URL once. Errors: CTL_EINVALID with the
 * missing or malformed field named in ctl_error.
 */
int identity_new(struct identity **out, const struct identity_options *opts)
{
	int rc = CTL_EINVALID;
	struct identity *id = NULL;
	char *tenant = NULL, *authority = NULL, *host = NULL, *imds = NULL, *q = NULL;

	*out = NULL;
	const struct identity_cloud *cloud = identity_cloud_find(opts->cloud);
	if (!cloud) {
		ctl_error_set(CTL_EINVALID, "UnknownCloud", "unknown cloud \"%.64s\": expected "
			      "AzureCloud, AzureUSGovernment or AzureChinaCloud", opts->cloud);
		goto done;
	}
	id = xcalloc(1, sizeof(*id));
	id->kind = opts->kind;
	id->cloud = cloud;
	pthread_mutex_init(&id->mu, NULL);
	pthread_cond_init(&id->cond, NULL);
	id->imds_max_attempts = opts->imds_max_attempts > 0 ? opts->imds_max_attempts : 5;
	id->imds_retry_delay_ms = opts->imds_retry_delay_ms > 0 ? opts->imds_retry_delay_ms : 2000;
	id->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
	id->clock = opts->clock ? opts->clock : default_clock;
	id->sleep = opts->sleep ? opts->sleep : default_sleep;
	id->clock_arg = opts->clock_arg;
	id->ca_file = xstrdup(opts->ca_file);

	const char *res = opts->resource && *opts->resource ? opts->resource : cloud->arm_resource;
	size_t rl = strlen(res);
	/* A URL audience (ARM's) ends with '/'; an application id (Azure
	 * DevOps' 499b84ac-...) is sent as it is to IMDS, and its v2 scope is
	 * "<id>/.default". */
	if (!strstr(res, "://"))
		id->resource = xstrdup(res);
	else
		id->resource = rl && res[rl - 1] == '/' ? xstrdup(res) : xasprintf("%s/", res);
	rl = strlen(id->resource);
	id->scope = xasprintf("%s%s.default", id->resource, rl && id->resource[rl - 1] == '/' ? "" : "/");

	if (opts->kind == IDENTITY_MANAGED) {
		id->client_id = pick(opts->client_id, NULL);
		if (id->client_id && !safe_id(id->client_id)) {
			ctl_error_set(CTL_EINVALID, "InvalidClientId", "managed identity client id is malformed");
			goto done;
		}
		imds = pick(opts->imds_endpoint, "AZURE_POD_IDENTITY_AUTHORITY_HOST");
		host = without_trailing_slash(imds ? imds : IMDS_DEFAULT);
		char *r = escape(id->resource);
		q = id->client_id ? xasprintf("&client_id=%s", id->client_id) : xstrdup("");
		id->token_url = xasprintf("%s" IMDS_PATH "?api-version=" IMDS_API_VERSION "&resource=%s%s",
					  host, r, q);
		free(r);
		rc = 0;
		goto done;
	}

	tenant = pick(opts->tenant_id, "AZURE_TENANT_ID");
	id->client_id = pick(opts->client_id, "AZURE_CLIENT_ID");
	if (!tenant || !safe_id(tenant)) {
		ctl_error_set(CTL_EINVALID, "MissingTenantId", "%s",
			      tenant ? "tenant id is malformed"
				     : "no tenant id: set it in the credential or AZURE_TENANT_ID");
		goto done;
	}
	if (!id->client_id || !safe_id(id->client_id)) {
		ctl_error_set(CTL_EINVALID, "MissingClientId", "%s",
			      id->client_id ? "client id is malformed"
					    : "no client id: set it in the credential or AZURE_CLIENT_ID");
		goto done;
	}
	/* The webhook's AZURE_AUTHORITY_HOST names the cloud the pod lives in;
	 * it applies to workload identity, whose token it issued for. */
	authority = pick(opts->authority_host,
			 opts->kind == IDENTITY_WORKLOAD ? "AZURE_AUTHORITY_HOST" : NULL);
	host = without_trailing_slash(authority ? authority : cloud->authority_host);
	id->token_url = xasprintf("%s/%s/oauth2/v2.0/token", host, tenant);

	if (opts->kind == IDENTITY_WORKLOAD) {
		id->token_file = pick(opts->federated_token_file, "AZURE_FEDERATED_TOKEN_FILE");
		if (!id->token_file) {
			ctl_error_set(CTL_EINVALID, "MissingFederatedTokenFile",
				      "no federated token file: is the pod labelled "
				      "azure.workload.identity/use=true? (AZURE_FEDERATED_TOKEN_FILE is unset)");
			goto done;
		}
	} else if (opts->kind == IDENTITY_SERVICE_PRINCIPAL) {
		if (!opts->client_secret || !*opts->client_secret) {
			ctl_error_set(CTL_EINVALID, "MissingClientSecret", "service principal has no client secret");
			goto done;
		}
		id->client_secret = xstrdup(opts->client_secret);
	} else {
		ctl_error_set(CTL_EINVALID, "UnknownCredential", "unknown credential kind %d", (int)opts->kind);
		goto done;
	}
	rc = 0;
done:
	free(tenant);
	free(authority);
	free(host);
	free(imds);
	free(q);
	if (rc)
		identity_free(id);
	else
		*out = id;
	return rc;
}

void identity_free(struct identity *id)
{
	if (!id)
		return;
	pthread_mutex_destroy(&id->mu);
	pthread_cond_destroy(&id->cond);
	secret_free(id->token);
	secret_free(id->client_secret);
	free(id->token_url);
	free(id->resource);
	free(id->scope);
	free(id->client_id);
	free(id->token_file);
	free(id->ca_file);
	free(id);
}

const struct identity_cloud *identity_cloud_of(const struct identity *id)
{
	return id->cloud;
}

const char *identity_resource(const struct identity *id)
{
	return id->resource;
}

void identity_token_free(char *token)
{
	secret_free(token);
}

/* ---- parsing ---- */

/* A number or a numeric string (IMDS sends "3599"); -1 when absent or not
 * a non-negative integer. */
static int64_t json_int(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (cJSON_IsNumber(v))
		return v->valuedouble >= 0 && v->valuedouble < 1e15 ? (int64_t)v->valuedouble : -1;
	if (cJSON_IsString(v) && v->valuestring[0]) {
		char *end = NULL;
		errno = 0;
		long long n = strtoll(v->valuestring, &end, 10);
		if (errno || *end || n < 0 || n >= 1000000000000000LL)
			return -1;
		return (int64_t)n;
	}
	return -1;
}

int64_t identity_refresh_at(int64_t now, int64_t expires_on, int64_t refresh_in)
{
	int64_t lifetime = expires_on - now;
	int64_t at;
	if (refresh_in > 0)
		at = now + refresh_in;
	else if (lifetime > 2 * 3600)
		at = now + lifetime / 2;
	else
		at = expires_on - 300;
	if (at > expires_on - 300)
		at = expires_on - 300;
	if (at < now + lifetime / 2 && lifetime < 600)
		at = now + lifetime / 2;
	return at;
}

int identity_token_parse(struct identity_token *out, const char *body, int64_t now)
{
	int rc = CTL_EINVALID;
	cJSON *o = cJSON_Parse(body);

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(o)) {
		ctl_error_set(CTL_EINVALID, "InvalidTokenResponse", "token response is not a JSON object");
		goto done;
	}
	const cJSON *at = cJSON_GetObjectItemCaseSensitive(o, "access_token");
	if (!cJSON_IsString(at) || !at->valuestring[0]) {
		ctl_error_set(CTL_EINVALID, "InvalidTokenResponse", "token response has no access_token");
		goto done;
	}
	int64_t expires_in = json_int(o, "expires_in");
	int64_t expires_on = json_int(o, "expires_on");
	if (expires_in >= 0)
		out->expires_on = now + expires_in;
	else if (expires_on > 0)
		out->expires_on = expires_on;
	else {
		ctl_error_set(CTL_EINVALID, "InvalidTokenResponse",
			      "token response has neither expires_in nor expires_on");
		goto done;
	}
	out->access_token = xstrdup(at->valuestring);
	out->refresh_at = identity_refresh_at(now, out->expires_on, json_int(o, "refresh_in"));
	rc = 0;
done:
	if (o) {
		/* The parse tree holds a copy of the token. */
		cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "access_token");
		if (cJSON_IsString(t))
			explicit_bzero(t->valuestring, strlen(t->valuestring));
		cJSON_Delete(o);
	}
	return rc;
}

void identity_token_dispose(struct identity_token *t)
{
	secret_free(t->access_token);
	t->access_token = NULL;
}

enum identity_cache_action identity_cache_decide(const struct identity_cache_state *s, int64_t now)
{
	int usable = s->have_token && now < s->expires_on - IDENTITY_EXPIRY_SKEW;
	if (usable) {
		if (now < s->refresh_at || s->refreshing)
			return IDENTITY_CACHE_USE;
		if (s->last_failure && now - s->last_failure < IDENTITY_REFRESH_BACKOFF)
			return IDENTITY_CACHE_USE;
		return IDENTITY_CACHE_FETCH;
	}
	if (s->refreshing)
		return IDENTITY_CACHE_WAIT;
	if (s->last_failure && now - s->last_failure < IDENTITY_FAILURE_HOLD)
		return IDENTITY_CACHE_FAILED;
	return IDENTITY_CACHE_FETCH;
}

/* Copy src into a new string with every occurrence of each secret replaced
 * by "[redacted]". */
static char *scrub(const char *src, const char *const *secrets)
{
	char *s = xstrdup(src);
	for (size_t i = 0; secrets && secrets[i]; i++) {
		const char *sec = secrets[i];
		size_t n = strlen(sec);
		if (n == 0)
			continue;
		struct ctl_buf b = CTL_BUF_INIT;
		const char *p = s, *hit;
		while ((hit = strstr(p, sec)) != NULL) {
			ctl_buf_append(&b, p, (size_t)(hit - p));
			ctl_buf_puts(&b, "[redacted]");
			p = hit + n;
		}
		ctl_buf_puts(&b, p);
		explicit_bzero(s, strlen(s));
		free(s);
		s = ctl_buf_detach(&b);
	}
	return s;
}

/* Copy of the leading "AADSTSnnnn" in s, if any, into out. */
static int aadsts_code(char *out, size_t n, const char *s)
{
	const char *p = s ? strstr(s, "AADSTS") : NULL;
	if (!p)
		return 0;
	size_t len = 6;
	while (p[len] >= '0' && p[len] <= '9' && len < 20)
		len++;
	if (len == 6)
		return 0;
	snprintf(out, n, "%.*s", (int)len, p);
	return 1;
}

int identity_error_set(long status, const char *body, const char *const *secrets)
{
	int code = status == 429 || status >= 500 || status == 408 ? CTL_EUNAVAIL
		 : (status >= 400 && status < 500) ? CTL_EAUTH : CTL_ERR;
	cJSON *o = cJSON_Parse(body ? body : "");
	char reason[64] = "TokenRequestFailed";
	char *desc = NULL, *clean = NULL;
	const char *err = NULL, *corr = NULL;

	if (cJSON_IsObject(o)) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "error_description");
		const cJSON *codes = cJSON_GetObjectItemCaseSensitive(o, "error_codes");
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "correlation_id");
		err = cJSON_IsString(e) ? e->valuestring : NULL;
		corr = cJSON_IsString(c) ? c->valuestring : NULL;
		if (cJSON_IsString(d)) {
			/* Entra appends "\r\nTrace ID: ...\r\nCorrelation ID: ...
			 * \r\nTimestamp: ..." to the sentence; keep the sentence. */
			const char *s = d->valuestring;
			size_t n = strcspn(s, "\r\n");
			const char *trace = strstr(s, " Trace ID:");
			if (trace && (size_t)(trace - s) < n)
				n = (size_t)(trace - s);
			if (n > 600)
				n = 600;
			desc = xstrndup(s, n);
		}
		const cJSON *first = cJSON_IsArray(codes) ? cJSON_GetArrayItem(codes, 0) : NULL;
		if (cJSON_IsNumber(first) && first->valuedouble >= 0 && first->valuedouble < 1e15)
			snprintf(reason, sizeof(reason), "AADSTS%lld", (long long)first->valuedouble);
		else if (!aadsts_code(reason, sizeof(reason), desc) && err && safe_id(err))
			snprintf(reason, sizeof(reason), "%.60s", err);
	}
	if (desc)
		clean = scrub(desc, secrets);
	if (err && clean)
		ctl_error_set(code, reason, "token request failed (HTTP %ld): %.64s: %s", status,
			      safe_id(err) ? err : "error", clean);
	else if (err)
		ctl_error_set(code, reason, "token request failed (HTTP %ld): %.64s", status,
			      safe_id(err) ? err : "error");
	else
		ctl_error_set(code, reason, "token request failed (HTTP %ld)", status);
	ctl_error_set_http(status, corr && safe_id(corr) ? corr : NULL, -1);
	if (desc)
		explicit_bzero(desc, strlen(desc));
	free(desc);
	secret_free(clean);
	cJSON_Delete(o);
	return code;
}

/* ---- the wire ---- */

struct http_reply {
	long status;
	struct ctl_buf body;
	long retry_after_ms;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct ctl_buf *b = arg;
	return ctl_buf_append(b, p, size * n) == 0 ? size * n : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct http_reply *r = arg;
	size_t len = size * n;
	if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
		char v[32];
		snprintf(v, sizeof(v), "%.*s", (int)(len - 12), p + 12);
		char *end = NULL;
		long s = strtol(v, &end, 10);
		while (end && (*end == ' ' || *end == '\r' || *end == '\n'))
			end++;
		if (end && *end == '\0' && s >= 0 && s < 86400)
			r->retry_after_ms = s * 1000;
	} else if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
		r->retry_after_ms = -1;
	}
	return len;
}

/*
 * One token request: POST form (when non-NULL) or GET url. Returns 0 when an
 * HTTP answer arrived (any status, in r), CTL_EUNAVAIL on a transport error
 * (no URL or body in the message), CTL_ETOOBIG for an oversized body.
 */
static int http_once(struct http_reply *r, struct identity *id, const char *url, const char *form)
{
	int rc = CTL_EUNAVAIL;
	struct curl_slist *h = NULL;
	CURL *c = curl_easy_init();
	if (!c)
		abort();
	ctl_buf_reset(&r->body);
	r->status = 0;
	r->retry_after_ms = -1;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, id->timeout_ms);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "acrpool/" ACRPOOL_VERSION);
	if (id->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, id->ca_file);
	h = curl_slist_append(h, "Accept: application/json");
	if (id->kind == IDENTITY_MANAGED) {
		/* IMDS is link-local plain HTTP; a proxy would break it and
		 * the header is its SSRF guard. */
		h = curl_slist_append(h, "Metadata: true");
		curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	} else {
		curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
		curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	}
	if (form) {
		h = curl_slist_append(h, "Content-Type: application/x-www-form-urlencoded");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	CURLcode cc = curl_easy_perform(c);
	if (cc == CURLE_WRITE_ERROR) {
		rc = ctl_error_set(CTL_ETOOBIG, "TokenResponseTooLarge", "token response exceeds %d bytes",
				   TOKEN_BODY_MAX);
		goto done;
	}
	if (cc != CURLE_OK) {
		ctl_error_set(CTL_EUNAVAIL, "TokenEndpointUnreachable", "token request failed: %s",
			      curl_easy_strerror(cc));
		goto done;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	rc = 0;
done:
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return rc;
}

/* The federated token file, trimmed; re-read on every call because the
 * kubelet rotates it. */
static int read_assertion(char **out, const char *path)
{
	int rc = CTL_EINVALID;
	struct ctl_buf b = CTL_BUF_INIT;
	char chunk[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*out = NULL;
	ctl_buf_init(&b, ASSERTION_MAX);
	if (fd < 0) {
		ctl_error_set(CTL_EINVALID, "FederatedTokenUnreadable", "cannot read federated token file %.200s: %s",
			      path, strerror(errno));
		goto done;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ctl_error_set(CTL_EINVALID, "FederatedTokenUnreadable", "cannot read federated token file %.200s: %s",
				      path, strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		if (ctl_buf_append(&b, chunk, (size_t)n)) {
			ctl_error_set(CTL_EINVALID, "FederatedTokenUnreadable", "federated token file %.200s is too large",
				      path);
			goto done;
		}
	}
	const char *s = ctl_buf_str(&b);
	size_t start = strspn(s, " \t\r\n"), end = b.len;
	while (end > start && strchr(" \t\r\n", s[end - 1]))
		end--;
	if (end == start) {
		ctl_error_set(CTL_EINVALID, "FederatedTokenUnreadable", "federated token file %.200s is empty", path);
		goto done;
	}
	*out = xstrndup(s + start, end - start);
	rc = 0;
done:
	explicit_bzero(chunk, sizeof(chunk));
	if (b.ptr)
		explicit_bzero(b.ptr, b.cap);
	ctl_buf_dispose(&b);
	if (fd >= 0)
		close(fd);
	return rc;
}

static int imds_retryable(long status)
{
	return status == 404 || status == 408 || status == 410 || status == 429 || status >= 500;
}

/* IMDS with its documented retry strategy: 404/410/429/5xx and timeouts
 * are retried with exponential backoff, Retry-After wins when longer. A 410
 * means IMDS is updating for up to 70 s, hence the longer floor. */
static int fetch_imds(struct identity_token *out, struct identity *id, struct http_reply *r)
{
	int rc = CTL_EUNAVAIL;
	for (int attempt = 1;; attempt++) {
		rc = http_once(r, id, id->token_url, NULL);
		if (rc == 0 && r->status == 200)
			return identity_token_parse(out, ctl_buf_str(&r->body), id->clock(id->clock_arg));
		if (rc == 0 && !imds_retryable(r->status))
			return identity_error_set(r->status, ctl_buf_str(&r->body), NULL);
		if (rc == CTL_ETOOBIG)
			return rc;
		if (attempt >= id->imds_max_attempts)
			break;
		long base = id->imds_retry_delay_ms;
		if (rc == 0 && r->status == 410 && base < 3000)
			base = 3000;
		long delay = ((1L << (attempt > 10 ? 10 : attempt)) - 1) * base;
		if (delay > IMDS_MAX_DELAY_MS)
			delay = IMDS_MAX_DELAY_MS;
		if (rc == 0 && r->retry_after_ms > delay)
			delay = r->retry_after_ms;
		id->sleep(delay, id->clock_arg);
	}
	if (rc == 0) {
		rc = identity_error_set(r->status, ctl_buf_str(&r->body), NULL);
		ctl_error_set_http(r->status, NULL, r->retry_after_ms);
	}
	return rc;
}

/* One token from the v2 endpoint (workload identity or client secret).
 * The form holds a secret: it is zeroed before it is freed. */
static int fetch_v2(struct identity_token *out, struct identity *id, struct http_reply *r)
{
	int rc;
	char *assertion = NULL, *form = NULL, *cid = escape(id->client_id), *scope = escape(id->scope);
	char *cred = NULL;
	const char *secrets[2] = {NULL, NULL};

	if (id->kind == IDENTITY_WORKLOAD) {
		rc = read_assertion(&assertion, id->token_file);
		if (rc)
			goto done;
		secrets[0] = assertion;
		char *e = escape(assertion);
		cred = xasprintf("client_assertion_type=%s&client_assertion=%s",
				 "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer", e);
		secret_free(e);
	} else {
		secrets[0] = id->client_secret;
		char *e = escape(id->client_secret);
		cred = xasprintf("client_secret=%s", e);
		secret_free(e);
	}
	form = xasprintf("client_id=%s&scope=%s&grant_type=client_credentials&%s", cid, scope, cred);
	rc = http_once(r, id, id->token_url, form);
	if (rc)
		goto done;
	if (r->status != 200) {
		rc = identity_error_set(r->status, ctl_buf_str(&r->body), secrets);
		if (r->status == 429 || r->status >= 500) {
			char rid[80];
			snprintf(rid, sizeof(rid), "%s", ctl_error_last()->request_id);
			ctl_error_set_http(r->status, rid, r->retry_after_ms);
		}
		goto done;
	}
	rc = identity_token_parse(out, ctl_buf_str(&r->body), id->clock(id->clock_arg));
done:
	secret_free(form);
	secret_free(cred);
	secret_free(assertion);
	free(cid);
	free(scope);
	return rc;
}

static int fetch(struct identity_token *out, struct identity *id)
{
	struct http_reply r = {0, CTL_BUF_INIT, -1};
	ctl_buf_init(&r.body, TOKEN_BODY_MAX);
	int rc = id->kind == IDENTITY_MANAGED ? fetch_imds(out, id, &r) : fetch_v2(out, id, &r);
	if (r.body.ptr)
		explicit_bzero(r.body.ptr, r.body.cap);
	ctl_buf_dispose(&r.body);
	return rc;
}

/*
 * The cache protocol: decide under the lock; the one caller that must fetch
 * marks the cache `refreshing`, drops the lock, fetches, and swaps the
 * result in under the lock again. Callers with a usable token never wait;
 * callers without one wait for the fetch in flight rather than start
 * another.
 */
int identity_token_get(char **out, struct identity *id)
{
	struct identity_token fresh = {0};
	struct ctl_error failed;
	int rc;

	*out = NULL;
	pthread_mutex_lock(&id->mu);
	for (;;) {
		struct identity_cache_state s = {
			id->token != NULL, id->expires_on, id->refresh_at, id->refreshing, id->last_failure,
		};
		int64_t now = id->clock(id->clock_arg);
		enum identity_cache_action a = identity_cache_decide(&s, now);
		if (a == IDENTITY_CACHE_USE) {
			*out = xstrdup(id->token);
			pthread_mutex_unlock(&id->mu);
			return 0;
		}
		if (a == IDENTITY_CACHE_WAIT) {
			pthread_cond_wait(&id->cond, &id->mu);
			continue;
		}
		if (a == IDENTITY_CACHE_FAILED) {
			failed = id->last_error;
			pthread_mutex_unlock(&id->mu);
			ctl_error_set(failed.code, failed.reason, "%s", failed.message);
			ctl_error_set_http(failed.http_status, failed.request_id,
					   (IDENTITY_FAILURE_HOLD - (now - s.last_failure)) * 1000);
			return failed.code;
		}
		break;
	}
	id->refreshing = 1;
	pthread_mutex_unlock(&id->mu);

	rc = fetch(&fresh, id);
	if (rc)
		failed = *ctl_error_last();

	pthread_mutex_lock(&id->mu);
	int64_t now = id->clock(id->clock_arg);
	id->refreshing = 0;
	if (rc == 0) {
		secret_free(id->token);
		id->token = fresh.access_token;
		fresh.access_token = NULL;
		id->expires_on = fresh.expires_on;
		id->refresh_at = fresh.refresh_at;
		id->last_failure = 0;
		*out = xstrdup(id->token);
	} else {
		id->last_failure = now ? now : 1;
		id->last_error = failed;
		/* A failed proactive refresh: the old token is still good. */
		if (id->token && now < id->expires_on - IDENTITY_EXPIRY_SKEW) {
			*out = xstrdup(id->token);
			rc = 0;
		}
	}
	pthread_cond_broadcast(&id->cond);
	pthread_mutex_unlock(&id->mu);
	identity_token_dispose(&fresh);
	return rc;
}

void identity_token_invalidate(struct identity *id, const char *token)
{
	pthread_mutex_lock(&id->mu);
	if (id->token && token && strcmp(id->token, token) == 0) {
		secret_free(id->token);
		id->token = NULL;
		id->expires_on = id->refresh_at = 0;
	}
	pthread_mutex_unlock(&id->mu);
}
