/*
 * http.c: /metrics, /healthz and /readyz over libwebsockets. See http.h.
 *
 * One lws context with one explicit vhost and one protocol whose callback
 * answers LWS_CALLBACK_HTTP. The whole response body is built when the
 * request arrives (metrics render, probe reason), the headers are written
 * at once, and the body follows in LWS_CALLBACK_HTTP_WRITEABLE chunks, as
 * lws wants. Only the service thread touches the context after creation;
 * other threads reach it only through lws_cancel_service, which is
 * documented as safe from any thread.
 *
 * With TLS, the vhost takes the certificate from memory or files when it
 * is created, advertises only http/1.1 by ALPN (the body writer below is
 * HTTP/1.1's), and lws drives the OpenSSL handshake on the same thread.
 */
#include "http.h"

#include "buf.h"
#include "error.h"
#include "log.h"
#include "metrics.h"
#include "xalloc.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 4096
#define BODY_MAX (16u * 1024 * 1024)
/* Room for the request line and headers: a ServiceAccount token alone is
 * about 1 KiB, and lws's default (1 KiB) would cut its Authorization. */
#define HEADER_MAX 16384
#define AUTH_MAX 8192

struct ctl_http {
	struct ctl_http_opts opts;
	char *bind_address;
	char *cert_file, *key_file;  /* copies: lws may keep the paths */
	struct lws_context *ctx;
	struct lws_vhost *vhost;
	int port;
	pthread_t thread;
	int running;            /* the service thread exists */
	atomic_int stop;
};

/* One per connection; lws zeroes it, and a keep-alive connection reuses
 * it for each request. */
struct session {
	char *body;
	size_t len, off;
};

static void lws_emit(int level, const char *line)
{
	size_t n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	char *msg = xstrndup(line, n);
	ctl_log(level & LLL_ERR ? CTL_LOG_ERROR : CTL_LOG_WARN, "libwebsockets", "detail", msg,
		NULL);
	free(msg);
}

static void session_reset(struct session *s)
{
	free(s->body);
	s->body = NULL;
	s->len = s->off = 0;
}

/* Decide the response to a request for path: status, content type, and
 * the body appended to body. Runs the probes and renders the metrics. */
static void route(struct ctl_http *h, const char *path, int get, const char *authorization,
		  unsigned *status, const char **ctype, struct ctl_buf *body)
{
	static const char *const text = "text/plain; charset=utf-8";
	int known = strcmp(path, "/metrics") == 0 || strcmp(path, "/healthz") == 0 ||
		    strcmp(path, "/readyz") == 0;

	*ctype = text;
	if (!known || (strcmp(path, "/metrics") == 0 && !h->opts.metrics)) {
		*status = 404;
		ctl_buf_puts(body, "404 page not found\n");
	} else if (!get) {
		*status = 405;
		ctl_buf_puts(body, "method not allowed\n");
	} else if (strcmp(path, "/metrics") == 0) {
		int allowed = 200;
		if (h->opts.authorize)
			allowed = h->opts.authorize(authorization, "get", path, body, h->opts.authorize_ud);
		if (allowed != 200) {
			*status = allowed > 0 ? (unsigned)allowed : 500;
			if (body->len == 0)
				ctl_buf_puts(body, "refused\n");
			return;
		}
		ctl_buf_reset(body);
		*ctype = "text/plain; version=0.0.4; charset=utf-8";
		*status = ctl_metrics_render(h->opts.metrics, body) == 0 ? 200 : 500;
	} else {
		int ready = strcmp(path, "/readyz") == 0;
		ctl_probe_fn probe = ready ? h->opts.readyz : h->opts.healthz;
		void *ud = ready ? h->opts.readyz_ud : h->opts.healthz_ud;
		if (!probe || probe(body, ud) == 0) {
			*status = 200;
			ctl_buf_reset(body);
			ctl_buf_puts(body, "ok");
		} else {
			*status = ready ? 503 : 500;
			if (body->len == 0)
				ctl_buf_puts(body, ready ? "not ready" : "unhealthy");
		}
	}
}

/* LWS_CALLBACK_HTTP: build the whole response, write the headers, and ask
 * for a writeable callback to send the body (kept in s). Returns what the
 * lws callback returns: 0 to carry on, non-zero to close. */
static int respond(struct ctl_http *h, struct lws *wsi, struct session *s, const char *path)
{
	unsigned char hdr[LWS_PRE + 512];
	unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr) - 1;
	struct ctl_buf body;
	unsigned status = 0;
	const char *ctype = NULL;

	ctl_buf_init(&body, BODY_MAX);
	session_reset(s);
	int get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
	char *authorization = NULL;
	int alen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	if (get && alen > 0 && alen < AUTH_MAX) {
		authorization = xmalloc((size_t)alen + 1);
		if (lws_hdr_copy(wsi, authorization, alen + 1, WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
			authorization[0] = '\0';
	}
	route(h, path ? path : "", get, authorization, &status, &ctype, &body);
	if (authorization) {
		/* It held a token. */
		explicit_bzero(authorization, (size_t)alen + 1);
		free(authorization);
	}
	if (!get) {
		/* lws now expects a request body, not our response: answer with
		 * its canned status page and close instead of reading it. */
		ctl_buf_dispose(&body);
		lws_return_http_status(wsi, status, NULL);
		return -1;
	}
	s->len = body.len;
	s->body = ctl_buf_detach(&body);
	if (lws_add_http_common_headers(wsi, status, ctype, (lws_filepos_t)s->len, &p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return 1;
	if (s->len == 0) {
		session_reset(s);
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	}
	lws_callback_on_writable(wsi);
	return 0;
}

/* LWS_CALLBACK_HTTP_WRITEABLE: send the next chunk of s->body, the last
 * one marked final, then end the transaction (keep-alive). */
static int write_body(struct lws *wsi, struct session *s)
{
	unsigned char buf[LWS_PRE + CHUNK];

	if (!s->body)
		return 0;
	size_t n = s->len - s->off < CHUNK ? s->len - s->off : CHUNK;
	int final = s->off + n == s->len;
	memcpy(buf + LWS_PRE, s->body + s->off, n);
	if (lws_write(wsi, buf + LWS_PRE, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
		return -1;
	s->off += n;
	if (!final) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	session_reset(s);
	/* Keep-alive: wait for the next request, or close when lws says so. */
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
			 size_t len)
{
	struct session *s = user;
	struct ctl_http *h = lws_context_user(lws_get_context(wsi));

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return respond(h, wsi, s, in);
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return write_body(wsi, s);
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		if (s)
			session_reset(s);
		break;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
	{"http", http_callback, sizeof(struct session), 0, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *service_main(void *arg)
{
	struct ctl_http *h = arg;
	/* lws_cancel_service wakes lws_service, which then returns. */
	while (!atomic_load(&h->stop))
		if (lws_service(h->ctx, 0) < 0)
			break;
	return NULL;
}

int ctl_http_new(struct ctl_http **out, const struct ctl_http_opts *opts)
{
	struct ctl_http *h = xcalloc(1, sizeof(*h));
	struct lws_context_creation_info info;
	int rc = 0;

	*out = NULL;
	h->opts = *opts;
	h->bind_address = xstrdup(opts->bind_address ? opts->bind_address : "0.0.0.0");
	h->opts.bind_address = h->bind_address;
	h->cert_file = xstrdup(opts->tls_cert_file);
	h->key_file = xstrdup(opts->tls_key_file);
	h->opts.tls_cert_file = h->cert_file;
	h->opts.tls_key_file = h->key_file;
	/* The PEM in memory is read by lws_create_vhost below, not kept. */
	h->opts.tls_cert_pem = h->opts.tls_key_pem = NULL;
	atomic_init(&h->stop, 0);

	lws_set_log_level(LLL_ERR | LLL_WARN, lws_emit);
	memset(&info, 0, sizeof(info));
	int tls = opts->tls_cert_pem || opts->tls_cert_file;
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
	if (tls)
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.max_http_header_data = HEADER_MAX;
	/* An IPv4 address needs an IPv4 socket; lws would open IPv6. */
	if (!strchr(h->bind_address, ':'))
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	info.gid = -1;
	info.uid = -1;
	info.user = h;
	info.port = CONTEXT_PORT_NO_LISTEN;
	h->ctx = lws_create_context(&info);
	if (!h->ctx) {
		rc = ctl_error_set(CTL_ERR, "HTTPServer", "cannot create the HTTP server context");
		goto done;
	}
	info.port = opts->port;
	info.iface = h->bind_address;
	info.protocols = protocols;
	info.vhost_name = "acrpool";
	if (tls) {
		info.alpn = "http/1.1";
		info.ssl_cert_filepath = h->cert_file;
		info.ssl_private_key_filepath = h->key_file;
		info.server_ssl_cert_mem = opts->tls_cert_pem;
		info.server_ssl_cert_mem_len = (unsigned)opts->tls_cert_len;
		info.server_ssl_private_key_mem = opts->tls_key_pem;
		info.server_ssl_private_key_mem_len = (unsigned)opts->tls_key_len;
	}
	h->vhost = lws_create_vhost(h->ctx, &info);
	if (!h->vhost && tls) {
		rc = ctl_error_set(CTL_ERR, "HTTPBind", "cannot serve TLS on %s port %d (certificate %s)",
				   h->bind_address, opts->port, opts->tls_cert_file ? opts->tls_cert_file : "in memory");
		goto done;
	}
	if (!h->vhost) {
		rc = ctl_error_set(CTL_ERR, "HTTPBind", "cannot listen on %s port %d",
				   h->bind_address, opts->port);
		goto done;
	}
	h->port = lws_get_vhost_listen_port(h->vhost);
	/* An address not (yet) on any interface is a vhost that lws would
	 * bind later; we want to know now. */
	if (h->port <= 0) {
		rc = ctl_error_set(CTL_ERR, "HTTPBind", "cannot listen on %s port %d",
				   h->bind_address, opts->port);
		goto done;
	}
	if (pthread_create(&h->thread, NULL, service_main, h) != 0) {
		rc = ctl_error_set(CTL_ERR, "ThreadCreate", "cannot start the HTTP service thread");
		goto done;
	}
	h->running = 1;
	*out = h;
	h = NULL;
done:
	ctl_http_free(h);
	return rc;
}

int ctl_http_port(const struct ctl_http *h)
{
	return h->port;
}

void ctl_http_stop(struct ctl_http *h)
{
	if (!h || !h->ctx)
		return;
	if (h->running) {
		atomic_store(&h->stop, 1);
		lws_cancel_service(h->ctx);
		pthread_join(h->thread, NULL);
		h->running = 0;
	}
	lws_context_destroy(h->ctx);
	h->ctx = NULL;
	h->vhost = NULL;
}

void ctl_http_free(struct ctl_http *h)
{
	if (!h)
		return;
	ctl_http_stop(h);
	free(h->bind_address);
	free(h->cert_file);
	free(h->key_file);
	free(h);
}
