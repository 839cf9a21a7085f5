/*
 * kube.c: the Kubernetes REST client. See kube.h.
 *
 * Every verb funnels into perform(): fetch credentials, configure this
 * thread's curl handle, run the exchange, report it to the metrics hook,
 * and turn the outcome into a code and the thread's last error. The client
 * owns the config and one curl handle per calling thread; a response body
 * lives in a capped buffer only for the duration of the call.
 */
#include "kube.h"

#include "buf.h"
#include "error.h"
#include "xalloc.h"

#include <curl/curl.h>
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CONNECT_TIMEOUT_MS 10000
#define DEFAULT_TIMEOUT_MS 60000
#define ERROR_BODY_MAX (64u * 1024)
#define WATCH_TIMEOUT_MARGIN_S 60

/* One thread's curl handle for one client, on the client's list so that
 * ctl_kube_client_free() can release handles of threads still alive. */
struct handle {
	struct ctl_kube_client *client;
	CURL *curl;
	struct handle *prev, *next;
};

struct ctl_kube_client {
	struct ctl_kubeconfig *cfg;
	char *host;                 /* host[:port] of the server, for metrics */
	char *user_agent;
	size_t max_body;
	long timeout_ms;
	ctl_kube_metrics_fn metrics;
	void *metrics_arg;
	ctl_kube_write_fn on_write;
	void *on_write_arg;
	pthread_key_t key;          /* this thread's struct handle */
	pthread_mutex_t mu;         /* guards handles */
	struct handle *handles;
};

/* What one exchange needs to know beyond the URL. */
struct request {
	const char *method;
	const char *metric_verb;
	const char *resource;
	const char *url;
	const char *content_type;   /* of body, or NULL */
	const char *accept;         /* NULL: application/json */
	const char *body;           /* NULL: none */
	long timeout_ms;            /* whole exchange; 0: none */
	ctl_kube_data_fn fn;        /* streaming: 2xx body chunks go here */
	void *arg;
	const atomic_int *cancel;
	long idle_ms;
};

/* State shared with curl's callbacks during one exchange. */
struct xfer {
	CURL *curl;
	struct ctl_buf body;
	long status;
	char audit_id[80];
	long retry_after_ms;
	const struct request *req;
	int fn_rc;
	int canceled, idle, toobig;
	struct timespec last_byte;
};

static double since(const struct timespec *t0)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void handle_release(void *p)
{
	struct handle *h = p;
	struct ctl_kube_client *c = h->client;
	pthread_mutex_lock(&c->mu);
	if (h->prev)
		h->prev->next = h->next;
	else
		c->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&c->mu);
	curl_easy_cleanup(h->curl);
	free(h);
}

/* This thread's handle for c, created on first use. */
static CURL *thread_handle(struct ctl_kube_client *c)
{
	struct handle *h = pthread_getspecific(c->key);
	if (h)
		return h->curl;
	h = xcalloc(1, sizeof(*h));
	h->client = c;
	h->curl = curl_easy_init();
	if (!h->curl)
		abort(); /* curl_easy_init only fails when out of memory */
	pthread_mutex_lock(&c->mu);
	h->next = c->handles;
	if (h->next)
		h->next->prev = h;
	c->handles = h;
	pthread_mutex_unlock(&c->mu);
	pthread_setspecific(c->key, h);
	return h->curl;
}

int ctl_kube_client_new(struct ctl_kube_client **out, struct ctl_kubeconfig *cfg)
{
	const char *p = strstr(cfg->server, "://");
	*out = NULL;
	if (!p || !p[3] || p[3] == '/') {
		ctl_kubeconfig_free(cfg);
		return ctl_error_set(CTL_EINVALID, "InvalidServer", "server URL has no host");
	}
	p += 3;
	struct ctl_kube_client *c = xcalloc(1, sizeof(*c));
	c->cfg = cfg;
	c->host = xstrndup(p, strcspn(p, "/"));
	c->user_agent = xasprintf("acrpool/%s", ACRPOOL_VERSION);
	c->max_body = CTL_BUF_DEFAULT_MAX;
	c->timeout_ms = DEFAULT_TIMEOUT_MS;
	pthread_mutex_init(&c->mu, NULL);
	if (pthread_key_create(&c->key, handle_release) != 0)
		abort(); /* only when the process is out of keys */
	*out = c;
	return 0;
}

void ctl_kube_client_free(struct ctl_kube_client *c)
{
	if (!c)
		return;
	/* Deleting the key first means no thread-exit destructor can run
	 * against the list we are about to empty. */
	pthread_key_delete(c->key);
	for (struct handle *h = c->handles, *next; h; h = next) {
		next = h->next;
		curl_easy_cleanup(h->curl);
		free(h);
	}
	pthread_mutex_destroy(&c->mu);
	ctl_kubeconfig_free(c->cfg);
	free(c->host);
	free(c->user_agent);
	free(c);
}

void ctl_kube_client_set_metrics(struct ctl_kube_client *c, ctl_kube_metrics_fn fn, void *arg)
{
	c->metrics = fn;
	c->metrics_arg = arg;
}

void ctl_kube_client_set_write_observer(struct ctl_kube_client *c, ctl_kube_write_fn fn, void *arg)
{
	c->on_write = fn;
	c->on_write_arg = arg;
}

void ctl_kube_observe_write(struct ctl_kube_client *c, const struct ctl_gvr *gvr, cJSON *answer,
			    const char *base_rv)
{
	if (c->on_write && answer)
		c->on_write(gvr, answer, base_rv, c->on_write_arg);
	else
		cJSON_Delete(answer);
}

void ctl_kube_client_set_limits(struct ctl_kube_client *c, size_t max_body, long timeout_ms)
{
	c->max_body = max_body;
	c->timeout_ms = timeout_ms;
}

const char *ctl_kube_client_namespace(const struct ctl_kube_client *c)
{
	return c->cfg->namespace;
}

/* --- paths and queries --------------------------------------------------- */

static void put_escaped(struct ctl_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~')
			ctl_buf_append(b, s, 1);
		else
			ctl_buf_printf(b, "%%%02X", ch);
	}
}

char *ctl_kube_path(const struct ctl_gvr *gvr, const char *ns, const char *name, const char *subresource)
{
	struct ctl_buf b = CTL_BUF_INIT;
	if (!gvr->group || !*gvr->group) {
		ctl_buf_puts(&b, "/api/");
	} else {
		ctl_buf_puts(&b, "/apis/");
		put_escaped(&b, gvr->group);
		ctl_buf_puts(&b, "/");
	}
	put_escaped(&b, gvr->version);
	if (ns && *ns) {
		ctl_buf_puts(&b, "/namespaces/");
		put_escaped(&b, ns);
	}
	ctl_buf_puts(&b, "/");
	put_escaped(&b, gvr->resource);
	if (name && *name) {
		ctl_buf_puts(&b, "/");
		put_escaped(&b, name);
		if (subresource && *subresource) {
			ctl_buf_puts(&b, "/");
			put_escaped(&b, subresource);
		}
	}
	return ctl_buf_detach(&b);
}

static void query_add(struct ctl_buf *q, const char *key, const char *value)
{
	if (!value || !*value)
		return;
	ctl_buf_puts(q, strchr(ctl_buf_str(q), '?') ? "&" : "?");
	ctl_buf_puts(q, key);
	ctl_buf_puts(q, "=");
	put_escaped(q, value);
}

static void query_add_long(struct ctl_buf *q, const char *key, long value)
{
	char s[32];
	if (value <= 0)
		return;
	snprintf(s, sizeof(s), "%ld", value);
	query_add(q, key, s);
}

/* server + path for gvr/ns/name/subresource, ready for query_add. */
static void url_init(struct ctl_buf *u, const struct ctl_kube_client *c, const struct ctl_gvr *gvr,
		     const char *ns, const char *name, const char *subresource)
{
	char *path = ctl_kube_path(gvr, ns, name, subresource);
	ctl_buf_init(u, 0);
	ctl_buf_puts(u, c->cfg->server);
	ctl_buf_puts(u, path);
	free(path);
}

/* --- errors -------------------------------------------------------------- */

static const char *json_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The Kubernetes StatusReason an API server would send with status. */
static const char *status_reason(long status)
{
	switch (status) {
	case 400: return "BadRequest";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "NotFound";
	case 405: return "MethodNotAllowed";
	case 409: return "Conflict";
	case 410: return "Expired";
	case 415: return "UnsupportedMediaType";
	case 422: return "Invalid";
	case 429: return "TooManyRequests";
	case 500: return "InternalError";
	case 503: return "ServiceUnavailable";
	case 504: return "Timeout";
	default: return "Unknown";
	}
}

int ctl_kube_status_error(long http_status, const char *body, size_t len)
{
	int code = ctl_error_from_http(http_status);
	cJSON *o = body && len ? cJSON_ParseWithLength(body, len) : NULL;
	const char *kind = json_str(o, "kind");

	if (cJSON_IsObject(o) && kind && strcmp(kind, "Status") == 0) {
		const char *reason = json_str(o, "reason");
		const char *message = json_str(o, "message");
		ctl_error_set(code, reason && *reason ? reason : status_reason(http_status), "%s",
			      message && *message ? message : status_reason(http_status));
	} else {
		/* Not a Status (a proxy's HTML page, say): keep a printable
		 * prefix so the log shows what answered. */
		char snippet[201];
		size_t n = len < sizeof(snippet) - 1 ? len : sizeof(snippet) - 1;
		for (size_t i = 0; i < n; i++)
			snippet[i] = isprint((unsigned char)body[i]) ? body[i] : ' ';
		snippet[n] = '\0';
		ctl_error_set(code, status_reason(http_status), "HTTP %ld%s%s", http_status, n ? ": " : "",
			      snippet);
	}
	ctl_error_set_http(http_status, NULL, -1);
	cJSON_Delete(o);
	return code;
}

/* --- the exchange -------------------------------------------------------- */

static size_t on_write(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	size_t len = size * nmemb;
	clock_gettime(CLOCK_MONOTONIC, &x->last_byte);
	if (!x->status)
		curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &x->status);
	if (x->req->fn && x->status >= 200 && x->status < 300) {
		int rc = x->req->fn(data, len, x->req->arg);
		if (rc) {
			x->fn_rc = rc;
			return 0; /* aborts the transfer */
		}
		return len;
	}
	if (ctl_buf_append(&x->body, data, len) != 0) {
		x->toobig = 1;
		return 0;
	}
	return len;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	size_t len = size * nmemb;
	clock_gettime(CLOCK_MONOTONIC, &x->last_byte);
	if (len > 5 && strncmp(data, "HTTP/", 5) == 0) {
		/* A new response (after a 100 Continue, say): forget the last. */
		x->audit_id[0] = '\0';
		x->retry_after_ms = -1;
		return len;
	}
	const char *colon = memchr(data, ':', len);
	if (!colon)
		return len;
	size_t klen = (size_t)(colon - data);
	const char *v = colon + 1;
	while (v < data + len && (*v == ' ' || *v == '\t'))
		v++;
	size_t vlen = (size_t)(data + len - v);
	while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
		vlen--;
	if (klen == 8 && strncasecmp(data, "Audit-Id", 8) == 0) {
		snprintf(x->audit_id, sizeof(x->audit_id), "%.*s", (int)vlen, v);
	} else if (klen == 11 && strncasecmp(data, "Retry-After", 11) == 0) {
		char tmp[32];
		snprintf(tmp, sizeof(tmp), "%.*s", (int)vlen, v);
		char *end;
		long s = strtol(tmp, &end, 10);
		if (end != tmp && *end == '\0' && s >= 0)
			x->retry_after_ms = s * 1000;
	}
	return len;
}

/* Called at least once a second while a transfer is idle: the hook for
 * shutdown and for declaring a silent stream dead. */
static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct xfer *x = userdata;
	if (x->req->cancel && atomic_load(x->req->cancel)) {
		x->canceled = 1;
		return 1;
	}
	if (x->req->idle_ms > 0 && since(&x->last_byte) * 1000 > (double)x->req->idle_ms) {
		x->idle = 1;
		return 1;
	}
	return 0;
}

/* Point curl at the server's trust anchors and our client certificate. */
static void set_tls(CURL *h, const struct ctl_kubeconfig *cfg, const struct ctl_kube_creds *creds)
{
	if (cfg->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (cfg->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, cfg->ca_file);
	if (cfg->ca_data) {
		struct curl_blob blob = {cfg->ca_data, cfg->ca_len, CURL_BLOB_COPY};
		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
	}
	if (creds->cert_pem && creds->key_pem) {
		struct curl_blob cert = {creds->cert_pem, strlen(creds->cert_pem), CURL_BLOB_COPY};
		struct curl_blob key = {creds->key_pem, strlen(creds->key_pem), CURL_BLOB_COPY};
		curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cert);
		curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &key);
		return;
	}
	if (cfg->cert_file)
		curl_easy_setopt(h, CURLOPT_SSLCERT, cfg->cert_file);
	if (cfg->key_file)
		curl_easy_setopt(h, CURLOPT_SSLKEY, cfg->key_file);
	if (cfg->cert_data) {
		struct curl_blob blob = {cfg->cert_data, cfg->cert_len, CURL_BLOB_COPY};
		curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &blob);
	}
	if (cfg->key_data) {
		struct curl_blob blob = {cfg->key_data, cfg->key_len, CURL_BLOB_COPY};
		curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &blob);
	}
}

/* One HTTP exchange. On 2xx *out (when out is not NULL and the call is not
 * streaming) gets the parsed body. *status_out gets the HTTP status. */
static int perform_once(struct ctl_kube_client *c, const struct request *r, cJSON **out, long *status_out)
{
	CURL *h = thread_handle(c);
	struct ctl_kube_creds creds = CTL_KUBE_CREDS_INIT;
	struct curl_slist *hdrs = NULL;
	struct xfer x = {.curl = h, .req = r, .retry_after_ms = -1};
	char errbuf[CURL_ERROR_SIZE] = "", *auth = NULL, *ctype = NULL;
	struct timespec t0;
	int rc;

	*status_out = 0;
	/* Bodies of streams go to fn; only an error body is kept. */
	ctl_buf_init(&x.body, r->fn ? ERROR_BODY_MAX : c->max_body);
	if ((rc = ctl_kubeconfig_creds(&creds, c->cfg)))
		goto done;

	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, r->url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	/* HTTP/1.1, not the HTTP/2 curl would negotiate by ALPN: each thread
	 * has a handle and a connection of its own, so HTTP/2 would multiplex
	 * nothing and cost its framing on both sides (nghttp2 was a twentieth
	 * of the operator's CPU in a rollout, BENCHMARKS.md). */
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, r->timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
	if (r->cancel || r->idle_ms > 0) {
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	}
	if (strcmp(r->method, "GET") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
	if (r->body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body));
	}
	set_tls(h, c->cfg, &creds);

	char accept[128];
	snprintf(accept, sizeof(accept), "Accept: %s", r->accept ? r->accept : "application/json");
	hdrs = curl_slist_append(hdrs, accept);
	/* No "Expect: 100-continue" round trip for large bodies. */
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (r->content_type) {
		ctype = xasprintf("Content-Type: %s", r->content_type);
		hdrs = curl_slist_append(hdrs, ctype);
	}
	if (creds.token) {
		auth = xasprintf("Authorization: Bearer %s", creds.token);
		hdrs = curl_slist_append(hdrs, auth);
	}
	if (!hdrs)
		abort(); /* curl_slist_append fails only when out of memory */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	x.last_byte = t0;
	CURLcode cc = curl_easy_perform(h);
	double secs = since(&t0);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x.status);
	*status_out = x.status;
	if (c->metrics)
		c->metrics(r->metric_verb, r->resource, c->host, x.status, secs, c->metrics_arg);

	if (x.fn_rc) {
		rc = x.fn_rc; /* fn recorded its own error */
	} else if (x.canceled) {
		rc = ctl_error_set(CTL_ERR, "Canceled", "%s %s: canceled", r->method, r->resource);
	} else if (x.idle) {
		rc = ctl_error_set(CTL_EUNAVAIL, "Timeout", "%s %s: no data for %ld ms", r->metric_verb,
				   r->resource, r->idle_ms);
	} else if (x.toobig) {
		rc = ctl_error_set(CTL_ETOOBIG, "BodyTooLarge", "%s %s: response body over %zu bytes", r->method,
				   r->resource, x.body.max);
	} else if (cc != CURLE_OK) {
		rc = ctl_error_set(CTL_EUNAVAIL, "NetworkError", "%s %s on %s: %s", r->method, r->resource, c->host,
				   errbuf[0] ? errbuf : curl_easy_strerror(cc));
	} else if (x.status < 200 || x.status >= 300) {
		rc = ctl_kube_status_error(x.status, x.body.ptr, x.body.len);
	} else if (out && !r->fn) {
		if (x.body.len == 0) {
			*out = cJSON_CreateObject();
		} else if (!(*out = cJSON_ParseWithLength(x.body.ptr, x.body.len))) {
			rc = ctl_error_set(CTL_EINVALID, "InvalidResponse", "%s %s: response is not JSON", r->method,
					   r->resource);
		}
	}
	if (rc && rc != x.fn_rc && x.status)
		ctl_error_set_http(x.status, x.audit_id, x.retry_after_ms);
done:
	/* The handle still points at hdrs and errbuf: drop them before they go. */
	curl_easy_reset(h);
	curl_slist_free_all(hdrs);
	if (auth) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	free(ctype);
	ctl_kube_creds_dispose(&creds);
	ctl_buf_dispose(&x.body);
	return rc;
}

/* perform_once, and once more with fresh credentials after a 401 when the
 * credentials can change (a rotated token file, an exec plugin). */
static int perform(struct ctl_kube_client *c, const struct request *r, cJSON **out)
{
	long status;
	int rc = perform_once(c, r, out, &status);
	if (rc == CTL_EAUTH && status == 401 && ctl_kubeconfig_invalidate(c->cfg))
		rc = perform_once(c, r, out, &status);
	return rc;
}

/* A request with a JSON body (or none) that returns a JSON object. */
static int call(cJSON **out, struct ctl_kube_client *c, const char *method, const struct ctl_gvr *gvr,
		struct ctl_buf *url, const char *content_type, const cJSON *body, const atomic_int *cancel)
{
	char *text = body ? cJSON_PrintUnformatted(body) : NULL;
	cJSON *res = NULL;
	if (body && !text)
		abort(); /* cJSON_Print fails only when out of memory */
	struct request r = {
		.method = method,
		.metric_verb = method,
		.resource = gvr->resource,
		.url = ctl_buf_str(url),
		.content_type = body ? content_type : NULL,
		/* A create whose answer nobody reads (an Event): the answer in
		 * protobuf where the API server has it for the kind, which costs
		 * the server less to encode than JSON; it is not parsed. An
		 * error then reads "HTTP <code>: <printable bytes of the Status>". */
		.accept = !out && strcmp(method, "POST") == 0 ? "application/vnd.kubernetes.protobuf, application/json"
							      : NULL,
		.body = text,
		.timeout_ms = c->timeout_ms,
		.cancel = cancel,
	};
	int rc = perform(c, &r, out ? &res : NULL);
	free(text);
	ctl_buf_dispose(url);
	if (out)
		*out = res;
	else
		cJSON_Delete(res);
	return rc;
}

int ctl_kube_get(cJSON **out, struct ctl_kube_client *c, const struct ctl_gvr *gvr, const char *ns,
		 const char *name, const char *subresource)
{
	struct ctl_buf url;
	*out = NULL;
	url_init(&url, c, gvr, ns, name, subresource);
	return call(out, c, "GET", gvr, &url, NULL, NULL, NULL);
}

int ctl_kube_list(cJSON **out, struct ctl_kube_client *c, const struct ctl_gvr *gvr, const char *ns,
		  const struct ctl_kube_list_opts *opts)
{
	struct ctl_buf url;
	*out = NULL;
	url_init(&url, c, gvr, ns, NULL, NULL);
	if (opts) {
		query_add(&url, "labelSelector", opts->label_selector);
		query_add(&url, "fieldSelector", opts->field_selector);
		query_add_long(&url, "limit", opts->limit);
		query_add(&url, "continue", opts->continue_token);
		query_add(&url, "resourceVersion", opts->resource_version);
	}
	return call(out, c, "GET", gvr, &url, NULL, NULL, opts ? opts->cancel : NULL);
}

int ctl_kube_list_all(cJSON **out, struct ctl_kube_client *c, const struct ctl_gvr *gvr, const char *ns,
		      const struct ctl_kube_list_opts *opts)
{
	struct ctl_kube_list_opts o = {0};
	cJSON *acc = NULL, *page = NULL;
	char *cont = NULL;
	int rc;

	*out = NULL;
	if (opts)
		o = *opts;
	o.continue_token = NULL;
	for (;;) {
		if ((rc = ctl_kube_list(&page, c, gvr, ns, &o)))
			goto done;
		const char *next = json_str(cJSON_GetObjectItemCaseSensitive(page, "metadata"), "continue");
		free(cont);
		cont = next && *next ? xstrdup(next) : NULL;
		cJSON *items = cJSON_GetObjectItemCaseSensitive(page, "items");
		if (!acc) {
			acc = page;
			page = NULL;
			if (!cJSON_IsArray(items)) {
				cJSON_DeleteItemFromObjectCaseSensitive(acc, "items");
				cJSON_AddItemToObject(acc, "items", cJSON_CreateArray());
			}
		} else {
			cJSON *dst = cJSON_GetObjectItemCaseSensitive(acc, "items");
			while (cJSON_IsArray(items) && items->child)
				cJSON_AddItemToArray(dst, cJSON_DetachItemViaPointer(items, items->child));
			cJSON_Delete(page);
			page = NULL;
		}
		if (!cont)
			break;
		o.continue_token = cont;
	}
	cJSON *meta = cJSON_GetObjectItemCaseSensitive(acc, "metadata");
	cJSON_DeleteItemFromObjectCaseSensitive(meta, "continue");
	cJSON_DeleteItemFromObjectCaseSensitive(meta, "remainingItemCount");
	*out = acc;
	acc = NULL;
done:
	cJSON_Delete(acc);
	cJSON_Delete(page);
	free(cont);
	return rc;
}

int ctl_kube_create(cJSON **out, struct ctl_kube_client *c, const struct ctl_gvr *gvr, const char *ns,
		    const cJSON *body)
{
	struct ctl_buf url;
	if (out)
		*out = NULL;
	url_init(&url, c, gvr, ns, NULL, NULL);
	return call(out, c, "POST", gvr, &url, "application/json", body, NULL);
}

int ctl_kube_update(cJSON **out, struct ctl_kube_client *c, const struct ctl_gvr *gvr, const char *ns,
		    const char *name, const char *subresource, const cJSON *body)
{
	struct ctl_buf url;
	if (out)
		*out = NULL;
	url_init(&url, c, gvr, ns, name, subresource);
	return call(out, c, "PUT", gvr, &url, "application/json", body, NULL);
}

int ctl_kube_patch(cJSON **out, struct ctl_kube_client *c, const struct ctl_gvr *gvr, const char *ns,
		   const char *name, const char *subresource, enum ctl_kube_patch_type type,
		   const cJSON *patch, const char *field_manager)
{
	static const char *const types[] = {
		[CTL_PATCH_MERGE] = "application/merge-patch+json",
		[CTL_PATCH_JSON] = "application/json-patch+json",
		[CTL_PATCH_APPLY] = "application/apply-patch+yaml",
	};
	struct ctl_buf url;
	if (out)
		*out = NULL;
	if (type == CTL_PATCH_APPLY && (!field_manager || !*field_manager))
		return ctl_error_set(CTL_ETERMINAL, "BadRequest", "server-side apply needs a field manager");
	url_init(&url, c, gvr, ns, name, subresource);
	query_add(&url, "fieldManager", field_manager);
	if (type == CTL_PATCH_APPLY)
		query_add(&url, "force", "true");
	/* JSON is YAML, so an apply patch can be sent as JSON text. */
	return call(out, c, "PATCH", gvr, &url, types[type], patch, NULL);
}

int ctl_kube_patch_status(cJSON **out, struct ctl_kube_client *c, const struct ctl_gvr *gvr, const char *ns,
			  const char *name, const cJSON *patch)
{
	return ctl_kube_patch(out, c, gvr, ns, name, "status", CTL_PATCH_MERGE, patch, NULL);
}

int ctl_kube_delete(cJSON **out, struct ctl_kube_client *c, const struct ctl_gvr *gvr, const char *ns,
		    const char *name, const struct ctl_kube_delete_opts *opts)
{
	struct ctl_buf url;
	cJSON *body = NULL;
	if (out)
		*out = NULL;
	if (opts && (opts->resource_version || opts->uid || opts->propagation_policy)) {
		body = cJSON_CreateObject();
		cJSON_AddStringToObject(body, "apiVersion", "v1");
		cJSON_AddStringToObject(body, "kind", "DeleteOptions");
		if (opts->resource_version || opts->uid) {
			cJSON *pre = cJSON_AddObjectToObject(body, "preconditions");
			if (opts->resource_version)
				cJSON_AddStringToObject(pre, "resourceVersion", opts->resource_version);
			if (opts->uid)
				cJSON_AddStringToObject(pre, "uid", opts->uid);
		}
		if (opts->propagation_policy)
			cJSON_AddStringToObject(body, "propagationPolicy", opts->propagation_policy);
	}
	url_init(&url, c, gvr, ns, name, NULL);
	int rc = call(out, c, "DELETE", gvr, &url, "application/json", body, NULL);
	cJSON_Delete(body);
	return rc;
}

int ctl_kube_watch(struct ctl_kube_client *c, const struct ctl_gvr *gvr, const char *ns,
		   const struct ctl_kube_watch_opts *opts, ctl_kube_data_fn fn, void *arg)
{
	struct ctl_buf url;
	url_init(&url, c, gvr, ns, NULL, NULL);
	query_add(&url, "watch", "true");
	query_add(&url, "resourceVersion", opts->resource_version);
	query_add(&url, "labelSelector", opts->label_selector);
	query_add(&url, "fieldSelector", opts->field_selector);
	if (opts->allow_bookmarks)
		query_add(&url, "allowWatchBookmarks", "true");
	query_add_long(&url, "timeoutSeconds", opts->timeout_seconds);
	struct request r = {
		.method = "GET",
		.metric_verb = "WATCH",
		.resource = gvr->resource,
		.url = ctl_buf_str(&url),
		/* The server ends the stream after timeoutSeconds; our own cap
		 * is only a backstop behind the idle timeout. */
		.timeout_ms = opts->timeout_seconds > 0 ? (opts->timeout_seconds + WATCH_TIMEOUT_MARGIN_S) * 1000 : 0,
		.fn = fn,
		.arg = arg,
		.cancel = opts->cancel,
		.idle_ms = opts->idle_timeout_ms,
	};
	int rc = perform(c, &r, NULL);
	ctl_buf_dispose(&url);
	return rc;
}
