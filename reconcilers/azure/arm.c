/*
 * arm.c: the ARM core on libcurl: the client, one request with its
 * retries, ARM errors, long-running operations, and the plumbing the typed
 * calls share (arm_internal.h). See arm.h. The typed calls themselves live
 * in one file per resource provider (acr.c) and blob.c (SAS URLs).
 *
 * Owns the client's configuration copies and a CURLSH that shares the
 * connection, DNS and TLS session caches between the easy handles the
 * workers create per call (one handle per call keeps calls independent
 * across threads; the share keeps TLS handshakes rare). Everything a call
 * learns goes into the caller's struct arm_response; nothing per-call is
 * stored on the client.
 *
 * The retry rules follow azure-identity-and-arm.md 2.5 and 3.3: 408, 429,
 * 500, 502, 503, 504 and connection errors are retried; the server's
 * Retry-After wins over the computed backoff; a wait longer than
 * max_retry_delay_ms, more attempts than max_attempts or more total
 * waiting than budget_ms ends the call with CTL_EUNAVAIL and the wait in
 * retry_after_ms, so the reconcile loop requeues instead of a worker
 * sleeping through a throttling storm.
 */
#define _GNU_SOURCE
#include "azure/arm_internal.h"

#include "error.h"
#include "log.h"
#include "xalloc.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define MAX_PAGES 1000
#define HEADER_VALUE_MAX 8192

struct arm_client {
	struct identity *id;
	char *endpoint;            /* no trailing slash */
	char *scheme, *host;       /* lowercase, for the same-host check */
	long port;
	char *api_version;
	char *registries_api_version;
	int max_attempts;
	long retry_delay_ms, max_retry_delay_ms, budget_ms, timeout_ms, connect_timeout_ms;
	size_t max_body;
	char *ca_file;
	arm_metrics_fn metrics;
	void *metrics_arg;
	arm_sleep_fn sleep;
	arm_clock_fn clock;
	void *clock_arg;
	CURLSH *share;
	pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
};

/* ---- small helpers ---- */

static void default_sleep(long ms, void *arg)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int64_t default_clock(void *arg)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double arm_monotonic_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void random_bytes(void *p, size_t n)
{
	unsigned char *b = p;
	while (n > 0) {
		ssize_t got = getrandom(b, n, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			abort(); /* the kernel always has entropy for getrandom(0) after boot */
		b += got;
		n -= (size_t)got;
	}
}

void arm_uuid(char out[37])
{
	unsigned char b[16];
	random_bytes(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
		 b[14], b[15]);
}

static double jitter(void)
{
	uint32_t v;
	random_bytes(&v, sizeof(v));
	return (double)v / 4294967296.0;
}

char *arm_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s ? s : "", 0);
	if (!e)
		abort();
	char *r = xstrdup(e);
	curl_free(e);
	return r;
}

const cJSON *arm_jget(const cJSON *o, const char *name)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, name) : NULL;
}

char *arm_jstr(const cJSON *o, const char *name)
{
	const cJSON *v = arm_jget(o, name);
	return cJSON_IsString(v) ? xstrdup(v->valuestring) : NULL;
}

static void lower(char *s)
{
	for (; s && *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* Scheme, host and port of url (lowercased); 0 or CTL_EINVALID. */
static int url_origin(const char *url, char **scheme, char **host, long *port)
{
	int rc = CTL_EINVALID;
	char *s = NULL, *h = NULL, *p = NULL;
	CURLU *u = curl_url();
	if (!u)
		abort();
	*scheme = *host = NULL;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &s, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) != CURLUE_OK)
		goto done;
	*scheme = xstrdup(s);
	*host = xstrdup(h);
	lower(*scheme);
	lower(*host);
	*port = strtol(p, NULL, 10);
	rc = 0;
done:
	curl_free(s);
	curl_free(h);
	curl_free(p);
	curl_url_cleanup(u);
	return rc;
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *arg)
{
	struct arm_client *c = arg;
	pthread_mutex_lock(&c->locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *arg)
{
	struct arm_client *c = arg;
	pthread_mutex_unlock(&c->locks[data]);
}

/* ---- the client ---- */

int arm_client_new(struct arm_client **out, struct identity *id, const struct arm_options *opts)
{
	int rc = CTL_EINVALID;
	struct arm_client *c = xcalloc(1, sizeof(*c));
	const char *ep = opts->endpoint && *opts->endpoint ? opts->endpoint
							    : identity_cloud_of(id)->arm_endpoint;
	size_t n = strlen(ep);

	*out = NULL;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->locks[i], NULL);
	while (n > 0 && ep[n - 1] == '/')
		n--;
	c->id = id;
	c->endpoint = xstrndup(ep, n);
	if (url_origin(c->endpoint, &c->scheme, &c->host, &c->port) ||
	    (strcmp(c->scheme, "https") != 0 && strcmp(c->scheme, "http") != 0)) {
		ctl_error_set(CTL_EINVALID, "InvalidEndpoint", "ARM endpoint \"%.200s\" is not an http(s) URL",
			      c->endpoint);
		goto done;
	}
	c->api_version = xstrdup(opts->api_version && *opts->api_version ? opts->api_version : ARM_API_VERSION);
	c->registries_api_version = xstrdup(opts->registries_api_version && *opts->registries_api_version
						    ? opts->registries_api_version
						    : ARM_API_VERSION_REGISTRIES);
	c->max_attempts = opts->max_attempts > 0 ? opts->max_attempts : 4;
	c->retry_delay_ms = opts->retry_delay_ms > 0 ? opts->retry_delay_ms : 800;
	c->max_retry_delay_ms = opts->max_retry_delay_ms > 0 ? opts->max_retry_delay_ms : 60000;
	c->budget_ms = opts->budget_ms > 0 ? opts->budget_ms : 60000;
	c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 100000;
	c->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 10000;
	c->max_body = opts->max_body > 0 ? opts->max_body : 16u * 1024 * 1024;
	c->ca_file = xstrdup(opts->ca_file);
	c->metrics = opts->metrics;
	c->metrics_arg = opts->metrics_arg;
	c->sleep = opts->sleep ? opts->sleep : default_sleep;
	c->clock = opts->clock ? opts->clock : default_clock;
	c->clock_arg = opts->clock_arg;
	c->share = curl_share_init();
	if (!c->share)
		abort();
	curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	rc = 0;
done:
	if (rc)
		arm_client_free(c);
	else
		*out = c;
	return rc;
}

void arm_client_free(struct arm_client *c)
{
	if (!c)
		return;
	if (c->share)
		curl_share_cleanup(c->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->locks[i]);
	free(c->endpoint);
	free(c->scheme);
	free(c->host);
	free(c->api_version);
	free(c->registries_api_version);
	free(c->ca_file);
	free(c);
}

const char *arm_client_endpoint(const struct arm_client *c)
{
	return c->endpoint;
}

const char *arm_client_api_version(const struct arm_client *c)
{
	return c->api_version;
}

const char *arm_client_registries_api_version(const struct arm_client *c)
{
	return c->registries_api_version;
}

void arm_response_init(struct arm_response *r)
{
	memset(r, 0, sizeof(*r));
	ctl_buf_init(&r->body, 0);
	r->retry_after_ms = -1;
}

void arm_response_dispose(struct arm_response *r)
{
	ctl_buf_dispose(&r->body);
	free(r->azure_async_operation);
	free(r->location);
	r->azure_async_operation = r->location = NULL;
}

/* ---- pure helpers ---- */

int arm_status_retryable(long status)
{
	return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
	       status == 504;
}

long arm_backoff_ms(int n, long base_ms, long cap_ms, double j)
{
	if (n < 1)
		n = 1;
	if (n > 20)
		n = 20;
	double d = (double)((1L << n) - 1) * (double)base_ms * (0.8 + 0.5 * j);
	if (cap_ms > 0 && d > (double)cap_ms)
		d = (double)cap_ms;
	return (long)d;
}

long arm_retry_after_parse(const char *value, int64_t now_ms)
{
	if (!value)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	size_t n = strlen(value);
	while (n > 0 && strchr(" \t\r\n", value[n - 1]))
		n--;
	if (n == 0 || n > 64)
		return -1;
	char v[65];
	memcpy(v, value, n);
	v[n] = '\0';
	if (strspn(v, "0123456789") == n) {
		if (n > 6)
			return -1;
		long s = strtol(v, NULL, 10);
		return s > 86400 ? -1 : s * 1000;
	}
	/* RFC 7231 IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT". */
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end || *end)
		return -1;
	int64_t when = (int64_t)timegm(&tm) * 1000;
	int64_t d = when - now_ms;
	if (d < 0)
		return 0;
	return d > 86400000 ? -1 : (long)d;
}

/* Copy s into a fixed buffer, replacing control characters (a message
 * goes into JSON logs and Kubernetes conditions). */
static void copy_clean(char *dst, size_t n, const char *s, size_t max)
{
	size_t i = 0;
	for (; s && s[i] && i < max && i + 1 < n; i++)
		dst[i] = (unsigned char)s[i] < 0x20 ? ' ' : s[i];
	dst[i] = '\0';
}

int arm_error_set(long status, const char *body, const char *request_id, long retry_after_ms)
{
	int code = ctl_error_from_http(status);
	cJSON *o = cJSON_Parse(body ? body : "");
	const cJSON *e = NULL;
	char reason[128], message[1024];

	if (status >= 200 && status < 300)
		code = CTL_ERR;
	snprintf(reason, sizeof(reason), "HttpStatus%ld", status);
	if (cJSON_IsObject(o)) {
		e = arm_jget(o, "error");
		if (!cJSON_IsObject(e))
			e = arm_jget(o, "odata.error");
		if (!cJSON_IsObject(e))
			e = o;
	}
	const cJSON *ec = arm_jget(e, "code"), *em = arm_jget(e, "message");
	if (cJSON_IsString(ec) && ec->valuestring[0])
		copy_clean(reason, sizeof(reason), ec->valuestring, 100);
	if (cJSON_IsObject(em)) /* odata: {"message":{"lang":..,"value":..}} */
		em = arm_jget(em, "value");
	if (cJSON_IsString(em) && em->valuestring[0])
		copy_clean(message, sizeof(message), em->valuestring, 900);
	else if (status == 0)
		snprintf(message, sizeof(message), "no response");
	else
		snprintf(message, sizeof(message), "ARM answered HTTP %ld%s", status,
			 cJSON_IsObject(o) ? "" : " without an ARM error body");
	ctl_error_set(code, reason, "%s", message);
	ctl_error_set_http(status, request_id, retry_after_ms);
	cJSON_Delete(o);
	return code;
}

/* An Azure Storage error is XML: <Error><Code>AuthenticationFailed</Code>.
 * Its <Message> can quote the signature, so only the code is kept. Here,
 * not in blob.c, because the retry loop below records it for blob calls. */
int arm_blob_error_set(long status, const char *body, const char *request_id, long retry_after_ms)
{
	int code = ctl_error_from_http(status);
	char reason[128];
	const char *p = body ? strstr(body, "<Code>") : NULL;
	const char *q = p ? strstr(p, "</Code>") : NULL;
	if (p && q && q - p - 6 < 100 && q - p - 6 > 0)
		copy_clean(reason, sizeof(reason), p + 6, (size_t)(q - p - 6));
	else
		snprintf(reason, sizeof(reason), "HttpStatus%ld", status);
	ctl_error_set(code, reason, "build source upload failed: storage answered HTTP %ld (%s)", status,
		      reason);
	ctl_error_set_http(status, request_id, retry_after_ms);
	return code;
}

/* ---- the wire ---- */

struct wire_state {
	struct arm_response *r;
	char retry_after[72];
	long retry_after_ms_hdr;   /* retry-after-ms */
	long x_retry_after_ms_hdr; /* x-ms-retry-after-ms */
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct arm_response *r = arg;
	return ctl_buf_append(&r->body, p, size * n) == 0 ? size * n : 0;
}

static long parse_ms(const char *v)
{
	char *end = NULL;
	errno = 0;
	long ms = strtol(v, &end, 10);
	return errno || end == v || *end || ms < 0 || ms > 86400000L ? -1 : ms;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct wire_state *w = arg;
	struct arm_response *r = w->r;
	size_t len = size * n;

	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		/* A new response (after a 100 Continue, say): forget the last. */
		free(r->location);
		free(r->azure_async_operation);
		r->location = r->azure_async_operation = NULL;
		r->request_id[0] = r->correlation_id[0] = '\0';
		w->retry_after[0] = '\0';
		w->retry_after_ms_hdr = w->x_retry_after_ms_hdr = -1;
		return len;
	}
	const char *colon = memchr(p, ':', len);
	if (!colon || len > HEADER_VALUE_MAX)
		return len;
	size_t nlen = (size_t)(colon - p);
	const char *v = colon + 1;
	size_t vlen = len - nlen - 1;
	while (vlen > 0 && (*v == ' ' || *v == '\t'))
		v++, vlen--;
	while (vlen > 0 && strchr(" \t\r\n", v[vlen - 1]))
		vlen--;
	char *value = xstrndup(v, vlen);
#define IS(name) (nlen == sizeof(name) - 1 && strncasecmp(p, name, nlen) == 0)
	if (IS("x-ms-request-id"))
		snprintf(r->request_id, sizeof(r->request_id), "%s", value);
	else if (IS("ActivityId") && !r->request_id[0]) /* Azure DevOps' request id */
		snprintf(r->request_id, sizeof(r->request_id), "%s", value);
	else if (IS("x-ms-correlation-request-id"))
		snprintf(r->correlation_id, sizeof(r->correlation_id), "%s", value);
	else if (IS("Retry-After"))
		snprintf(w->retry_after, sizeof(w->retry_after), "%s", value);
	else if (IS("retry-after-ms"))
		w->retry_after_ms_hdr = parse_ms(value);
	else if (IS("x-ms-retry-after-ms"))
		w->x_retry_after_ms_hdr = parse_ms(value);
	else if (IS("Location")) {
		free(r->location);
		r->location = value;
		value = NULL;
	} else if (IS("Azure-AsyncOperation")) {
		free(r->azure_async_operation);
		r->azure_async_operation = value;
		value = NULL;
	}
#undef IS
	free(value);
	return len;
}

int arm_transport_retryable(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
}

static void slist_free_zeroed(struct curl_slist *h)
{
	for (struct curl_slist *s = h; s; s = s->next)
		explicit_bzero(s->data, strlen(s->data));
	curl_slist_free_all(h);
}

CURL *arm_easy_new(struct arm_client *c, const char *url, char *errbuf)
{
	CURL *e = curl_easy_init();
	if (!e)
		abort();
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_SHARE, c->share);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_USERAGENT, ARM_USER_AGENT);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	if (c->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
	return e;
}

void arm_client_metric(const struct arm_client *c, const char *method, const char *operation, long status,
		       double seconds)
{
	if (c->metrics)
		c->metrics(method, operation, status, seconds, c->metrics_arg);
}

/*
 * One HTTP exchange. Returns 0 when a response arrived (any status, in r),
 * else CTL_EUNAVAIL (retryable transport error), CTL_ETOOBIG (body over the
 * cap) or CTL_ERR, with ctl_error set. Never quotes a blob URL.
 */
static int perform(struct arm_client *c, struct arm_response *r, const struct arm_wire_req *q,
		   const char *token, CURLcode *ccout)
{
	int rc = CTL_ERR;
	struct wire_state w = {r, "", -1, -1};
	struct curl_slist *h = NULL;
	char line[128], errbuf[CURL_ERROR_SIZE] = "";
	char *auth = NULL;
	CURL *e = arm_easy_new(c, q->url, errbuf);

	ctl_buf_reset(&r->body);
	r->status = 0;
	r->retry_after_ms = -1;
	free(r->location);
	free(r->azure_async_operation);
	r->location = r->azure_async_operation = NULL;
	r->request_id[0] = r->correlation_id[0] = '\0';
	arm_uuid(r->client_request_id);

	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, &w);
	/* Location is an LRO monitor, never a redirect to follow. */
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);

	if (q->auth) {
		auth = xasprintf("Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
		explicit_bzero(auth, strlen(auth));
	}
	snprintf(line, sizeof(line), "x-ms-client-request-id: %s", r->client_request_id);
	h = curl_slist_append(h, line);
	h = curl_slist_append(h, q->blob ? "Accept: */*" : "Accept: application/json");
	h = curl_slist_append(h, "Expect:");
	for (size_t i = 0; q->extra && q->extra[i]; i++)
		h = curl_slist_append(h, q->extra[i]);
	if (strcmp(q->method, "GET") != 0)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, q->method);
	if (q->body || strcmp(q->method, "POST") == 0 || strcmp(q->method, "PUT") == 0 ||
	    strcmp(q->method, "PATCH") == 0) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->body ? q->body : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(q->body ? q->len : 0));
		if (q->body && q->content_type) {
			snprintf(line, sizeof(line), "Content-Type: %s", q->content_type);
			h = curl_slist_append(h, line);
		} else {
			/* libcurl would claim a form; an empty POST has no type. */
			h = curl_slist_append(h, "Content-Type:");
		}
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);

	double t0 = arm_monotonic_seconds();
	CURLcode cc = curl_easy_perform(e);
	double secs = arm_monotonic_seconds() - t0;
	*ccout = cc;
	if (cc == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
	arm_client_metric(c, q->method, q->operation, cc == CURLE_OK ? r->status : 0, secs);

	if (cc == CURLE_WRITE_ERROR) {
		rc = ctl_error_set(CTL_ETOOBIG, "ResponseTooLarge", "%s: response body exceeds %zu bytes",
				   q->operation, c->max_body);
		goto done;
	}
	if (cc != CURLE_OK) {
		rc = arm_transport_retryable(cc) ? CTL_EUNAVAIL : CTL_ERR;
		/* The error buffer can name the URL; a blob URL is a secret. */
		ctl_error_set(rc, "ConnectionFailed", "%s: %s", q->operation,
			      q->blob || !errbuf[0] ? curl_easy_strerror(cc) : errbuf);
		goto done;
	}
	if (w.retry_after_ms_hdr >= 0)
		r->retry_after_ms = w.retry_after_ms_hdr;
	else if (w.x_retry_after_ms_hdr >= 0)
		r->retry_after_ms = w.x_retry_after_ms_hdr;
	else if (w.retry_after[0])
		r->retry_after_ms = arm_retry_after_parse(w.retry_after, c->clock(c->clock_arg));
	rc = 0;
done:
	slist_free_zeroed(h);
	free(auth);
	curl_easy_cleanup(e);
	return rc;
}

/*
 * The retry loop around perform(): see the file comment. A 401 invalidates
 * the token it was sent with and repeats once with a fresh token, outside
 * the attempt count.
 */
int arm_send(struct arm_response *r, struct arm_client *c, const struct arm_wire_req *q)
{
	int rc = CTL_ERR, refreshed = 0;
	char *token = NULL;

	r->body.max = c->max_body;
	ctl_buf_reset(&r->body);
	r->attempts = 0;
	r->slept_ms = 0;
	for (int n = 1;;) {
		CURLcode cc = CURLE_OK;
		if (q->auth) {
			identity_token_free(token);
			token = NULL;
			rc = identity_token_get(&token, c->id);
			if (rc)
				goto done;
		}
		rc = perform(c, r, q, token, &cc);
		r->attempts++;
		if (rc == 0 && r->status >= 200 && r->status < 300)
			goto done;
		if (rc == 0 && r->status == 401 && q->auth && !refreshed) {
			identity_token_invalidate(c->id, token);
			refreshed = 1;
			continue;
		}
		int retryable = rc == CTL_EUNAVAIL || (rc == 0 && arm_status_retryable(r->status));
		if (q->once) {
			/* A refused connection or a 429 never reached the resource
			 * provider; anything else might have. */
			int not_sent = (rc == CTL_EUNAVAIL && (cc == CURLE_COULDNT_CONNECT ||
							       cc == CURLE_COULDNT_RESOLVE_HOST ||
							       cc == CURLE_COULDNT_RESOLVE_PROXY)) ||
				       (rc == 0 && r->status == 429);
			if (q->unknown)
				*q->unknown = !not_sent && (rc != 0 || r->status >= 500 || r->status == 408);
			if (!not_sent)
				retryable = 0;
			if (rc != 0 && !retryable)
				goto done;
		}
		if (!retryable) {
			/* A 503 to a PUT is not repeated here (Azure may have
			 * it), but its Retry-After still says when to look
			 * again; the reconcile loop takes it from the error. */
			if (rc == 0)
				rc = q->blob ? arm_blob_error_set(r->status, ctl_buf_str(&r->body), r->request_id,
								  r->retry_after_ms)
					     : arm_error_set(r->status, ctl_buf_str(&r->body), r->request_id,
							     r->retry_after_ms);
			goto done;
		}
		long wait = rc == 0 && r->retry_after_ms >= 0
				    ? r->retry_after_ms
				    : arm_backoff_ms(n, c->retry_delay_ms, c->max_retry_delay_ms, jitter());
		if (n >= c->max_attempts || wait > c->max_retry_delay_ms || r->slept_ms + wait > c->budget_ms) {
			if (rc == 0) {
				rc = q->blob ? arm_blob_error_set(r->status, ctl_buf_str(&r->body), r->request_id, wait)
					     : arm_error_set(r->status, ctl_buf_str(&r->body), r->request_id, wait);
				/* Every retryable status maps to CTL_EUNAVAIL already;
				 * this keeps it so if the mapping ever changes. */
				if (rc != CTL_EUNAVAIL) {
					struct ctl_error e = *ctl_error_last();
					rc = ctl_error_set(CTL_EUNAVAIL, e.reason, "%s", e.message);
					ctl_error_set_http(r->status, r->request_id, wait);
				}
			} else {
				ctl_error_set_http(0, NULL, wait);
			}
			goto done;
		}
		c->sleep(wait, c->clock_arg);
		r->slept_ms += wait;
		n++;
	}
done:
	identity_token_free(token);
	return rc;
}

/* The absolute URL for an ARM path with an api-version. */
char *arm_path_url(const struct arm_client *c, const char *path, const char *api_version)
{
	if (strstr(path, "api-version="))
		return xasprintf("%s%s", c->endpoint, path);
	return xasprintf("%s%s%capi-version=%s", c->endpoint, path, strchr(path, '?') ? '&' : '?',
			 api_version);
}

/* Whether url is on the endpoint's scheme, host and port. */
static int same_origin(const struct arm_client *c, const char *url)
{
	char *s = NULL, *h = NULL;
	long port = 0;
	int ok = url_origin(url, &s, &h, &port) == 0 && strcmp(s, c->scheme) == 0 &&
		 strcmp(h, c->host) == 0 && port == c->port;
	free(s);
	free(h);
	return ok;
}

static int request(struct arm_response *out, struct arm_client *c, const char *method, const char *target,
		   const char *operation, const char *body, int once, int *unknown);

int arm_request(struct arm_response *out, struct arm_client *c, const char *method, const char *target,
		const char *operation, const char *body)
{
	return request(out, c, method, target, operation, body, 0, NULL);
}

int arm_request_once(struct arm_response *out, int *unknown, struct arm_client *c, const char *method,
		     const char *target, const char *operation, const char *body)
{
	return request(out, c, method, target, operation, body, 1, unknown);
}

static int request(struct arm_response *out, struct arm_client *c, const char *method, const char *target,
		   const char *operation, const char *body, int once, int *unknown)
{
	int rc;
	char *url = NULL;

	if (target[0] == '/') {
		url = arm_path_url(c, target, c->api_version);
	} else if (same_origin(c, target)) {
		url = xstrdup(target);
	} else {
		char *safe = ctl_log_redact_url(target);
		rc = ctl_error_set(CTL_EINVALID, "ForeignPollUrl",
				   "%s: refusing to send the ARM token to %.200s (not the ARM endpoint)",
				   operation, safe);
		free(safe);
		return rc;
	}
	struct arm_wire_req q = {
		.method = method, .url = url, .operation = operation, .body = body,
		.len = body ? strlen(body) : 0, .content_type = "application/json", .auth = 1,
		.once = once, .unknown = unknown,
	};
	rc = arm_send(out, c, &q);
	free(url);
	return rc;
}

/* ---- long-running operations ---- */

static const char *kind_names[] = {"AzureAsyncOperation", "Location", "ResourceBody"};
static const char *state_names[] = {"InProgress", "Succeeded", "Failed", "Canceled"};

const char *arm_lro_kind_name(enum arm_lro_kind kind)
{
	return (unsigned)kind < 3 ? kind_names[kind] : "Unknown";
}

int arm_lro_kind_parse(enum arm_lro_kind *out, const char *name)
{
	for (int i = 0; i < 3; i++) {
		if (name && strcmp(name, kind_names[i]) == 0) {
			*out = (enum arm_lro_kind)i;
			return 0;
		}
	}
	return ctl_error_set(CTL_EINVALID, "InvalidOperationKind", "unknown operation kind \"%.40s\"",
			     name ? name : "");
}

const char *arm_lro_state_name(enum arm_lro_state state)
{
	return (unsigned)state < 4 ? state_names[state] : "Unknown";
}

int arm_operation_new(struct arm_operation **out, enum arm_lro_kind kind, const char *method,
		      const char *poll_url, const char *resource_url)
{
	*out = NULL;
	if ((kind != ARM_LRO_BODY && !poll_url) || !resource_url || !method)
		return ctl_error_set(CTL_EINVALID, "InvalidOperation",
				     "an operation needs a method, a resource URL and (unless %s) a poll URL",
				     kind_names[ARM_LRO_BODY]);
	struct arm_operation *op = xcalloc(1, sizeof(*op));
	op->kind = kind;
	op->method = xstrdup(method);
	op->poll_url = kind == ARM_LRO_BODY ? NULL : xstrdup(poll_url);
	op->resource_url = xstrdup(resource_url);
	op->retry_after_ms = ARM_LRO_DEFAULT_POLL_MS;
	*out = op;
	return 0;
}

void arm_operation_free(struct arm_operation *op)
{
	if (!op)
		return;
	free(op->method);
	free(op->poll_url);
	free(op->resource_url);
	free(op->error_code);
	free(op->error_message);
	free(op);
}

enum arm_lro_state arm_lro_status_state(const char *status)
{
	if (!status)
		return ARM_LRO_IN_PROGRESS;
	if (strcasecmp(status, "Succeeded") == 0)
		return ARM_LRO_SUCCEEDED;
	if (strcasecmp(status, "Failed") == 0)
		return ARM_LRO_FAILED;
	if (strcasecmp(status, "Canceled") == 0 || strcasecmp(status, "Cancelled") == 0)
		return ARM_LRO_CANCELED;
	return ARM_LRO_IN_PROGRESS;
}

/* properties.provisioningState of a resource body, or NULL. */
static const char *provisioning_state(const cJSON *o)
{
	const cJSON *v = arm_jget(arm_jget(o, "properties"), "provisioningState");
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int arm_operation_begin(struct arm_operation **out, const char *method, const char *resource_url,
			const struct arm_response *resp)
{
	int rc = 0;
	cJSON *body = NULL;
	enum arm_lro_kind kind;
	const char *poll = NULL;

	*out = NULL;
	if (resp->status == 204)
		goto done;
	if (resp->azure_async_operation && *resp->azure_async_operation) {
		kind = ARM_LRO_ASYNC_OPERATION;
		poll = resp->azure_async_operation;
	} else if (resp->status == 202 && resp->location && *resp->location) {
		kind = ARM_LRO_LOCATION;
		poll = resp->location;
	} else if (resp->status == 202) {
		if (strcmp(method, "POST") == 0) {
			rc = ctl_error_set(CTL_EINVALID, "MissingPollingUrl",
					   "ARM accepted the request (202) without a Location or "
					   "Azure-AsyncOperation header to follow");
			goto done;
		}
		kind = ARM_LRO_BODY;
	} else {
		/* 200/201: done unless the body says the resource is still
		 * on its way (Creating, Updating, Deleting). An absent
		 * provisioningState means Succeeded. */
		if (strcmp(method, "POST") == 0)
			goto done;
		body = cJSON_Parse(ctl_buf_str(&resp->body));
		const char *ps = provisioning_state(body);
		if (!ps || arm_lro_status_state(ps) != ARM_LRO_IN_PROGRESS)
			goto done;
		kind = ARM_LRO_BODY;
	}
	rc = arm_operation_new(out, kind, method, poll, resource_url);
	if (rc == 0 && resp->retry_after_ms >= 0)
		(*out)->retry_after_ms = resp->retry_after_ms;
done:
	cJSON_Delete(body);
	return rc;
}

int arm_operation_status_parse(enum arm_lro_state *out, char **code, char **message, const char *body)
{
	int rc = CTL_EINVALID;
	cJSON *o = cJSON_Parse(body ? body : "");
	const cJSON *st = arm_jget(o, "status");

	*code = *message = NULL;
	*out = ARM_LRO_IN_PROGRESS;
	if (!cJSON_IsString(st)) {
		ctl_error_set(CTL_EINVALID, "InvalidOperationStatus",
			      "operation status body has no \"status\" string");
		goto done;
	}
	*out = arm_lro_status_state(st->valuestring);
	if (*out == ARM_LRO_FAILED || *out == ARM_LRO_CANCELED) {
		const cJSON *e = arm_jget(o, "error");
		*code = arm_jstr(e, "code");
		*message = arm_jstr(e, "message");
		if (!*code)
			*code = xstrdup(*out == ARM_LRO_FAILED ? "OperationFailed" : "OperationCanceled");
		if (!*message)
			*message = xasprintf("the operation ended with status %.40s", st->valuestring);
	}
	rc = 0;
done:
	cJSON_Delete(o);
	return rc;
}

/* Record why an operation failed (takes code and message) on op and as
 * the thread's error. */
static void operation_failed(struct arm_operation *op, char *code, char *message)
{
	free(op->error_code);
	free(op->error_message);
	op->error_code = code;
	op->error_message = message;
	ctl_error_set(CTL_ETERMINAL, code, "%s", message);
}

static int is_method(const struct arm_operation *op, const char *m)
{
	return strcmp(op->method, m) == 0;
}

/* GET the resource again and hand its body to *result. */
static int final_get(cJSON **result, struct arm_client *c, const struct arm_operation *op)
{
	struct arm_response r;
	arm_response_init(&r);
	int rc = arm_request(&r, c, "GET", op->resource_url, "operations.finalGet", NULL);
	if (rc == 0 && r.body.len)
		*result = cJSON_Parse(ctl_buf_str(&r.body));
	arm_response_dispose(&r);
	return rc;
}

static int poll_async(enum arm_lro_state *state, cJSON **result, struct arm_client *c,
		      struct arm_operation *op, struct arm_response *r)
{
	char *code = NULL, *message = NULL;
	int rc = arm_request(r, c, "GET", op->poll_url, "operations.poll", NULL);
	if (rc == CTL_ENOTFOUND && is_method(op, "DELETE")) {
		/* ARM may forget the operation once the resource is gone
		 * (the CLI's agentpool delete poller says so too). */
		*state = ARM_LRO_SUCCEEDED;
		return 0;
	}
	if (rc)
		return rc;
	if (r->body.len == 0) /* a 202 with no body: still running */
		return 0;
	rc = arm_operation_status_parse(state, &code, &message, ctl_buf_str(&r->body));
	if (rc)
		return rc;
	if (*state == ARM_LRO_FAILED || *state == ARM_LRO_CANCELED) {
		operation_failed(op, code, message);
		return 0;
	}
	if (*state == ARM_LRO_SUCCEEDED && result) {
		if (is_method(op, "PUT") || is_method(op, "PATCH")) {
			rc = final_get(result, c, op);
		} else if (is_method(op, "POST")) {
			cJSON *o = cJSON_Parse(ctl_buf_str(&r->body));
			cJSON *p = cJSON_DetachItemFromObjectCaseSensitive(o, "properties");
			*result = p;
			cJSON_Delete(o);
		}
	}
	return rc;
}

static int poll_location(enum arm_lro_state *state, cJSON **result, struct arm_client *c,
			 struct arm_operation *op, struct arm_response *r)
{
	int rc = arm_request(r, c, "GET", op->poll_url, "operations.poll", NULL);
	if (rc == 0 && r->status == 202) {
		if (r->location && *r->location) {
			free(op->poll_url);
			op->poll_url = xstrdup(r->location);
		}
		return 0;
	}
	if (rc == 0) {
		*state = ARM_LRO_SUCCEEDED;
		if (result && r->body.len)
			*result = cJSON_Parse(ctl_buf_str(&r->body));
		return 0;
	}
	if (rc == CTL_ENOTFOUND && is_method(op, "DELETE")) {
		*state = ARM_LRO_SUCCEEDED;
		return 0;
	}
	/* The Location URL answers with what the synchronous call would
	 * have: a final 4xx is the operation's failure. Auth, throttling and
	 * 5xx (after retries) mean we could not read it. */
	long st = r->status;
	if (st >= 400 && st < 500 && st != 401 && st != 403 && st != 408 && st != 429) {
		const struct ctl_error *e = ctl_error_last();
		*state = ARM_LRO_FAILED;
		operation_failed(op, xstrdup(e->reason), xstrdup(e->message));
		return 0;
	}
	return rc;
}

static int poll_body(enum arm_lro_state *state, cJSON **result, struct arm_client *c,
		     struct arm_operation *op, struct arm_response *r)
{
	int rc = arm_request(r, c, "GET", op->resource_url, "operations.pollResource", NULL);
	if (rc == CTL_ENOTFOUND && is_method(op, "DELETE")) {
		*state = ARM_LRO_SUCCEEDED;
		return 0;
	}
	if (rc)
		return rc;
	cJSON *o = cJSON_Parse(ctl_buf_str(&r->body));
	const char *ps = provisioning_state(o);
	*state = ps ? arm_lro_status_state(ps) : ARM_LRO_SUCCEEDED;
	if (*state == ARM_LRO_FAILED || *state == ARM_LRO_CANCELED) {
		operation_failed(op,
				 xstrdup(*state == ARM_LRO_FAILED ? "ProvisioningFailed" : "ProvisioningCanceled"),
				 xasprintf("provisioningState is %.40s", ps));
	} else if (*state == ARM_LRO_SUCCEEDED && result) {
		*result = o;
		o = NULL;
	}
	cJSON_Delete(o);
	return 0;
}

int arm_operation_poll(enum arm_lro_state *state, cJSON **result, struct arm_client *c,
		       struct arm_operation *op)
{
	int rc;
	struct arm_response r;

	*state = ARM_LRO_IN_PROGRESS;
	if (result)
		*result = NULL;
	arm_response_init(&r);
	switch (op->kind) {
	case ARM_LRO_ASYNC_OPERATION:
		rc = poll_async(state, result, c, op, &r);
		break;
	case ARM_LRO_LOCATION:
		rc = poll_location(state, result, c, op, &r);
		break;
	case ARM_LRO_BODY:
		rc = poll_body(state, result, c, op, &r);
		break;
	default:
		rc = ctl_error_set(CTL_EINVALID, "InvalidOperation", "unknown operation kind %d", (int)op->kind);
		break;
	}
	op->retry_after_ms = r.retry_after_ms >= 0 ? r.retry_after_ms : ARM_LRO_DEFAULT_POLL_MS;
	arm_response_dispose(&r);
	return rc;
}

/* ---- typed calls: plumbing (arm_internal.h) ---- */

char *arm_resource_path(const char *subscription_id, const char *resource_group, const char *type,
			const char *name, const char *suffix)
{
	char *s = arm_escape(subscription_id), *g = arm_escape(resource_group), *n = arm_escape(name);
	char *p = xasprintf("/subscriptions/%s/resourceGroups/%s/providers/%s/%s%s", s, g, type, n,
			    suffix ? suffix : "");
	free(s);
	free(g);
	free(n);
	return p;
}

cJSON *arm_tags_json(const struct arm_tag *tags, size_t n)
{
	cJSON *t = cJSON_CreateObject();
	for (size_t i = 0; i < n; i++)
		cJSON_AddStringToObject(t, tags[i].name, tags[i].value ? tags[i].value : "");
	return t;
}

int arm_call(cJSON **out, struct arm_response *r, struct arm_client *c, const char *method,
	     const char *path, const char *operation, const cJSON *body)
{
	char *text = body ? cJSON_PrintUnformatted(body) : NULL;
	if (body && !text)
		abort();
	if (out)
		*out = NULL;
	int rc = arm_request(r, c, method, path, operation, text);
	cJSON_free(text);
	if (rc == 0 && out && r->body.len) {
		*out = cJSON_Parse(ctl_buf_str(&r->body));
		if (!*out)
			rc = ctl_error_set(CTL_EINVALID, "InvalidResponse", "%s: response is not JSON", operation);
	}
	return rc;
}

int arm_write_call(cJSON **out, struct arm_operation **op, struct arm_client *c, const char *method,
		   const char *path, const char *operation, const cJSON *body)
{
	struct arm_response r;
	cJSON *json = NULL;
	char *url = arm_path_url(c, path, c->api_version);
	arm_response_init(&r);
	if (op)
		*op = NULL;
	int rc = arm_call(out ? &json : NULL, &r, c, method, path, operation, body);
	if (rc)
		goto done;
	struct arm_operation *o = NULL;
	rc = arm_operation_begin(&o, method, url, &r);
	if (rc)
		goto done;
	if (op)
		*op = o;
	else
		arm_operation_free(o);
done:
	if (out)
		*out = json;
	else
		cJSON_Delete(json);
	if (rc && out) {
		cJSON_Delete(*out);
		*out = NULL;
	}
	arm_response_dispose(&r);
	free(url);
	return rc;
}

int arm_list_all(cJSON **out, struct arm_client *c, const char *path, const char *operation, int top)
{
	int rc = 0;
	cJSON *all = cJSON_CreateArray();
	char *next = xstrdup(path);

	for (int page = 0; next && page < MAX_PAGES; page++) {
		struct arm_response r;
		cJSON *o = NULL;
		arm_response_init(&r);
		rc = arm_call(&o, &r, c, "GET", next, operation, NULL);
		arm_response_dispose(&r);
		free(next);
		next = NULL;
		if (rc)
			break;
		cJSON *value = cJSON_DetachItemFromObjectCaseSensitive(o, "value");
		cJSON *item;
		while (cJSON_IsArray(value) && (item = cJSON_DetachItemFromArray(value, 0)) != NULL) {
			if (top > 0 && cJSON_GetArraySize(all) >= top) {
				cJSON_Delete(item);
				continue;
			}
			cJSON_AddItemToArray(all, item);
		}
		cJSON_Delete(value);
		const cJSON *nl = arm_jget(o, "nextLink");
		if (cJSON_IsString(nl) && nl->valuestring[0] && (top <= 0 || cJSON_GetArraySize(all) < top))
			next = xstrdup(nl->valuestring);
		cJSON_Delete(o);
	}
	free(next);
	if (rc) {
		cJSON_Delete(all);
		all = NULL;
	}
	*out = all;
	return rc;
}

int arm_delete_call(struct arm_operation **op, struct arm_client *c, const char *path, const char *operation)
{
	int rc = arm_write_call(NULL, op, c, "DELETE", path, operation, NULL);
	return rc == CTL_ENOTFOUND ? 0 : rc;
}
