/*
 * http.c: /metrics, /healthz and /readyz over libwebsockets. See http.h.
 *
 * One lws context with one explicit vhost and one protocol whose callback
 * answers LWS_CALLBACK_HTTP. The whole response body is built when the
 * request arrives (metrics render, probe reason), the headers are written
 * at once, and the body follows in LWS_CALLBACK_HTTP_WRITEABLE chunks, as
 * lws wants; a response that waits for authorize (below) is built when
 * the answer arrives, and its headers go out in the first writeable
 * callback. Only the service thread touches the context after creation;
 * other threads reach it only through lws_cancel_service, which is
 * documented as safe from any thread.
 *
 * With TLS, the vhost takes the certificate from memory or files when it
 * is created, advertises only http/1.1 by ALPN (the body writer below is
 * HTTP/1.1's), and lws drives the OpenSSL handshake on the same thread.
 * A pair from files is also held by a certificate watcher (tlscert.h):
 * an OpenSSL certificate callback, at the start of each handshake, asks
 * it to look for a rotated pair and sets the pair in use on the
 * connection, so a new certificate is presented without a restart.
 *
 * A request authorize must decide waits without holding up the service
 * thread: it becomes a job on a bounded queue that worker threads take,
 * the connection's response is deferred, and the worker hands the answer
 * back through a done list and lws_cancel_service, whose
 * LWS_CALLBACK_EVENT_WAIT_CANCELLED on the service thread delivers it (a
 * writeable callback then sends headers and body). A per-connection lws
 * timer answers 503 when the decision takes too long. A job is owned by
 * whichever side lets go of it last: the worker frees one no connection
 * waits for any more, the service thread one it delivered or dropped.
 */
#include "http.h"

#include "buf.h"
#include "clock.h"
#include "error.h"
#include "log.h"
#include "metrics.h"
#include "tlscert.h"
#include "xalloc.h"

#include <libwebsockets.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 4096
#define BODY_MAX (16u * 1024 * 1024)
/* Room for the request line and headers: a ServiceAccount token alone is
 * about 1 KiB, and lws's default (1 KiB) would cut its Authorization. */
#define HEADER_MAX 16384
#define AUTH_MAX 8192
#define AUTH_BODY_MAX 4096
#define DEFAULT_WORKERS 4
#define DEFAULT_MAX_PENDING 64
#define DEFAULT_AUTH_TIMEOUT (10 * CTL_SEC)

/* A request waiting for authorize. */
struct job {
	struct job *next;         /* in the queue or the done list */
	struct lws *wsi;          /* the connection waiting; NULL once none is */
	char *authorization;      /* the header (NULL: none), wiped once asked */
	size_t auth_len;
	int status;               /* authorize's answer, once done */
	struct ctl_buf body;
	bool done;                /* answered: in the done list, or freed */
};

struct ctl_http {
	struct ctl_http_opts opts;
	char *bind_address;
	char *cert_file, *key_file;  /* copies: lws may keep the paths */
	struct ctl_certwatcher *certs; /* a pair from files */
	struct lws_context *ctx;
	struct lws_vhost *vhost;
	int port;
	pthread_t thread;
	int running;            /* the service thread exists */
	atomic_int stop;

	/* Decisions asked of authorize; all under mu. */
	pthread_mutex_t mu;
	pthread_cond_t cond;       /* a job was queued, or the workers stop */
	struct job *queue, *queue_tail;
	struct job *done;          /* answered, for the service thread */
	int pending;               /* queued or being asked */
	bool workers_stop;
	bool ctx_alive;            /* lws_cancel_service may be called */
	pthread_t *workers;
	int n_workers;
};

/* One per connection; lws zeroes it, and a keep-alive connection reuses
 * it for each request. */
struct session {
	char *body;
	size_t len, off;
	struct job *job;          /* the decision this request waits for */
	unsigned status;          /* of a deferred response ... */
	const char *ctype;
	bool head_pending;        /* ... whose headers are still to be sent */
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
	s->head_pending = false;
}

static void job_free(struct job *j)
{
	if (!j)
		return;
	if (j->authorization) {
		OPENSSL_cleanse(j->authorization, j->auth_len);
		free(j->authorization);
	}
	ctl_buf_dispose(&j->body);
	free(j);
}

static const char *const text_plain = "text/plain; charset=utf-8";

/* The response to GET /metrics given the authorization's answer allowed:
 * 200 renders the registry; anything else refuses, with the text already
 * in body. */
static void metrics_response(struct ctl_http *h, int allowed, unsigned *status, const char **ctype,
			     struct ctl_buf *body)
{
	*ctype = text_plain;
	if (allowed != 200) {
		*status = allowed > 0 ? (unsigned)allowed : 500;
		if (body->len == 0)
			ctl_buf_puts(body, "refused\n");
		return;
	}
	ctl_buf_reset(body);
	*ctype = "text/plain; version=0.0.4; charset=utf-8";
	*status = ctl_metrics_render(h->opts.metrics, body) == 0 ? 200 : 500;
}

/* Decide the response to a request for path: status, content type, and
 * the body appended to body. Runs the probes and renders the metrics.
 * Returns 1 when authorize must be asked first (off this thread), else 0. */
static int route(struct ctl_http *h, const char *path, int get, const char *authorization,
		 unsigned *status, const char **ctype, struct ctl_buf *body)
{
	int known = strcmp(path, "/metrics") == 0 || strcmp(path, "/healthz") == 0 ||
		    strcmp(path, "/readyz") == 0;

	*ctype = text_plain;
	if (!known || (strcmp(path, "/metrics") == 0 && !h->opts.metrics)) {
		*status = 404;
		ctl_buf_puts(body, "404 page not found\n");
	} else if (!get) {
		*status = 405;
		ctl_buf_puts(body, "method not allowed\n");
	} else if (strcmp(path, "/metrics") == 0) {
		int allowed = 200;
		if (h->opts.authorize) {
			ctl_http_auth_fn cached = h->opts.authorize_cached;
			allowed = cached ? cached(authorization, "get", path, body, h->opts.authorize_ud) : 0;
			if (allowed == 0) {
				ctl_buf_reset(body);
				return 1;
			}
		}
		metrics_response(h, allowed, status, ctype, body);
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
	return 0;
}

/* Write the headers of the response in s (status, ctype, len), then ask
 * for the body's writeable callback or, with no body, end the transaction.
 * Returns what the lws callback returns. */
static int send_head(struct lws *wsi, struct session *s)
{
	unsigned char hdr[LWS_PRE + 512];
	unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr) - 1;

	s->head_pending = false;
	if (lws_add_http_common_headers(wsi, s->status, s->ctype, (lws_filepos_t)s->len, &p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return 1;
	if (s->len == 0) {
		session_reset(s);
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	}
	lws_callback_on_writable(wsi);
	return 0;
}

/* Queue the decision of this request for the workers and leave the
 * connection waiting; takes authorization over. Returns 0, or -1 when
 * too many decisions are pending (authorization untouched). */
static int defer(struct ctl_http *h, struct lws *wsi, struct session *s, char *authorization, size_t auth_len)
{
	pthread_mutex_lock(&h->mu);
	if (h->pending >= h->opts.authorize_max_pending) {
		pthread_mutex_unlock(&h->mu);
		return -1;
	}
	struct job *j = xcalloc(1, sizeof(*j));
	j->wsi = wsi;
	j->authorization = authorization;
	j->auth_len = auth_len;
	ctl_buf_init(&j->body, AUTH_BODY_MAX);
	if (h->queue_tail)
		h->queue_tail->next = j;
	else
		h->queue = j;
	h->queue_tail = j;
	h->pending++;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->mu);
	s->job = j;
	/* Our timer bounds the wait and always answers; lws's own timeout
	 * (left from reading the headers) would close without an answer. */
	lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
	lws_set_timer_usecs(wsi, (lws_usec_t)(h->opts.authorize_timeout_ns / 1000));
	return 0;
}

/* Make the response to a deferred request from authorize's answer (job
 * stays the caller's) and have it sent. On the service thread. */
static void deliver(struct ctl_http *h, struct lws *wsi, struct session *s, struct job *j)
{
	struct ctl_buf body;
	ctl_buf_init(&body, BODY_MAX);
	ctl_buf_puts(&body, ctl_buf_str(&j->body));
	s->job = NULL;
	lws_set_timer_usecs(wsi, LWS_SET_TIMER_USEC_CANCEL);
	metrics_response(h, j->status, &s->status, &s->ctype, &body);
	s->len = body.len;
	s->body = ctl_buf_detach(&body);
	s->off = 0;
	s->head_pending = true;
	lws_callback_on_writable(wsi);
}

/* LWS_CALLBACK_EVENT_WAIT_CANCELLED: hand the answered decisions to their
 * connections; free the jobs. */
static void deliver_done(struct ctl_http *h)
{
	pthread_mutex_lock(&h->mu);
	struct job *list = h->done;
	h->done = NULL;
	pthread_mutex_unlock(&h->mu);
	/* Only this thread clears a job's wsi, so it cannot change here. */
	while (list) {
		struct job *j = list;
		list = j->next;
		if (j->wsi)
			deliver(h, j->wsi, lws_wsi_user(j->wsi), j);
		job_free(j);
	}
}

/* The connection no longer waits for its job (closed, or answered by the
 * timeout). Returns whether the job was answered already; if not, the
 * worker frees it, and the caller must not touch it again. */
static bool detach(struct ctl_http *h, struct session *s)
{
	struct job *j = s->job;
	s->job = NULL;
	pthread_mutex_lock(&h->mu);
	j->wsi = NULL;
	bool done = j->done;
	pthread_mutex_unlock(&h->mu);
	return done;
}

/* LWS_CALLBACK_TIMER: the decision took too long. An answer already in
 * the done list is delivered (the list frees it later); otherwise 503. */
static int timed_out(struct ctl_http *h, struct lws *wsi, struct session *s)
{
	if (!s || !s->job)
		return 0;
	struct job *j = s->job;
	if (detach(h, s)) {
		deliver(h, wsi, s, j);
		return 0;
	}
	ctl_log(CTL_LOG_WARN, "authorization of a metrics request timed out", NULL);
	session_reset(s);
	s->status = 503;
	s->ctype = text_plain;
	s->body = xstrdup("authorization timed out\n");
	s->len = strlen(s->body);
	s->head_pending = true;
	lws_callback_on_writable(wsi);
	return 0;
}

static void *worker_main(void *arg)
{
	struct ctl_http *h = arg;
	pthread_mutex_lock(&h->mu);
	for (;;) {
		while (!h->queue && !h->workers_stop)
			pthread_cond_wait(&h->cond, &h->mu);
		if (!h->queue)
			break;
		struct job *j = h->queue;
		h->queue = j->next;
		if (!h->queue)
			h->queue_tail = NULL;
		j->next = NULL;
		bool wanted = j->wsi != NULL;
		pthread_mutex_unlock(&h->mu);
		/* A job whose connection left (or timed out) while queued is
		 * not asked: that would be a review for nobody. */
		int status = wanted ? h->opts.authorize(j->authorization, "get", "/metrics", &j->body,
							h->opts.authorize_ud)
				    : 500;
		if (j->authorization) {
			/* It held a token. */
			OPENSSL_cleanse(j->authorization, j->auth_len);
			free(j->authorization);
			j->authorization = NULL;
		}
		pthread_mutex_lock(&h->mu);
		h->pending--;
		j->status = status;
		j->done = true;
		if (!j->wsi) {
			job_free(j);
		} else {
			j->next = h->done;
			h->done = j;
			if (h->ctx_alive)
				lws_cancel_service(h->ctx);
		}
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* The OpenSSL certificate callback, at the start of every handshake:
 * follow a rotated pair, and present the pair in use. */
static int pick_certificate(SSL *ssl, void *arg)
{
	struct ctl_http *h = arg;
	char fp[65];
	int rc = ctl_certwatcher_poll(h->certs);
	if (rc == 1) {
		ctl_certwatcher_fingerprint(h->certs, fp);
		ctl_log(CTL_LOG_INFO, "loaded a new serving certificate", "certificate", h->cert_file, "sha256", fp,
			NULL);
	} else if (rc < 0) {
		ctl_log(CTL_LOG_ERROR, "cannot load the new serving certificate; still serving the previous one",
			"certificate", h->cert_file, "error", ctl_error_last()->message, NULL);
	}
	if (ctl_certwatcher_use(h->certs, ssl) != 0) {
		ctl_log(CTL_LOG_ERROR, "cannot present the serving certificate", "error", ctl_error_last()->message,
			NULL);
		return 0;
	}
	return 1;
}

/* LWS_CALLBACK_HTTP: build the whole response, write the headers, and ask
 * for a writeable callback to send the body (kept in s); or, when
 * authorize must decide, leave the response to deliver(). Returns what the
 * lws callback returns: 0 to carry on, non-zero to close. */
static int respond(struct ctl_http *h, struct lws *wsi, struct session *s, const char *path)
{
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
	if (route(h, path ? path : "", get, authorization, &status, &ctype, &body) == 1) {
		if (defer(h, wsi, s, authorization, authorization ? (size_t)alen + 1 : 0) == 0) {
			ctl_buf_dispose(&body);
			return 0;
		}
		status = 503;
		ctype = text_plain;
		ctl_buf_puts(&body, "too many requests waiting for authorization\n");
	}
	if (authorization) {
		/* It held a token. */
		OPENSSL_cleanse(authorization, (size_t)alen + 1);
		free(authorization);
	}
	if (!get) {
		/* lws now expects a request body, not our response: answer with
		 * its canned status page and close instead of reading it. */
		ctl_buf_dispose(&body);
		lws_return_http_status(wsi, status, NULL);
		return -1;
	}
	s->status = status;
	s->ctype = ctype;
	s->len = body.len;
	s->body = ctl_buf_detach(&body);
	return send_head(wsi, s);
}

/* LWS_CALLBACK_HTTP_WRITEABLE: send the next chunk of s->body, the last
 * one marked final, then end the transaction (keep-alive). */
static int write_body(struct lws *wsi, struct session *s)
{
	unsigned char buf[LWS_PRE + CHUNK];

	if (s->head_pending)
		return send_head(wsi, s);
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
	case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS:
		/* While the vhost is made: user is its SSL_CTX, which every
		 * connection's SSL is made from. */
		if (h->certs)
			SSL_CTX_set_cert_cb(user, pick_certificate, h);
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		deliver_done(h);
		return 0;
	case LWS_CALLBACK_HTTP:
		return respond(h, wsi, s, in);
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return write_body(wsi, s);
	case LWS_CALLBACK_TIMER:
		return timed_out(h, wsi, s);
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		if (s && s->job)
			detach(h, s);
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
	if (h->opts.authorize_workers <= 0)
		h->opts.authorize_workers = DEFAULT_WORKERS;
	if (h->opts.authorize_max_pending <= 0)
		h->opts.authorize_max_pending = DEFAULT_MAX_PENDING;
	if (h->opts.authorize_timeout_ns <= 0)
		h->opts.authorize_timeout_ns = DEFAULT_AUTH_TIMEOUT;
	atomic_init(&h->stop, 0);
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cond, NULL);
	h->ctx_alive = true;
	/* Read (and checked) now, so that a bad pair fails here; lws reads
	 * the files too, for the vhost's own context. */
	if (opts->tls_cert_file &&
	    (rc = ctl_certwatcher_new(&h->certs, opts->tls_cert_file, opts->tls_key_file)) != 0) {
		rc = ctl_error_set(CTL_ERR, "HTTPBind", "cannot serve TLS on %s port %d: %s", h->bind_address,
				   opts->port, ctl_error_last()->message);
		goto done;
	}

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
	if (h->opts.authorize) {
		h->workers = xcalloc((size_t)h->opts.authorize_workers, sizeof(*h->workers));
		for (; h->n_workers < h->opts.authorize_workers; h->n_workers++) {
			if (pthread_create(&h->workers[h->n_workers], NULL, worker_main, h) != 0) {
				rc = ctl_error_set(CTL_ERR, "ThreadCreate", "cannot start an authorization thread");
				goto done;
			}
		}
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

/* Free a list of jobs linked by next. */
static void jobs_free(struct job *j)
{
	while (j) {
		struct job *next = j->next;
		job_free(j);
		j = next;
	}
}

void ctl_http_stop(struct ctl_http *h)
{
	if (!h)
		return;
	if (h->running) {
		atomic_store(&h->stop, 1);
		lws_cancel_service(h->ctx);
		pthread_join(h->thread, NULL);
		h->running = 0;
	}
	if (h->ctx) {
		/* Workers still asking must not wake a context that is gone. */
		pthread_mutex_lock(&h->mu);
		h->ctx_alive = false;
		pthread_mutex_unlock(&h->mu);
		lws_context_destroy(h->ctx);
		h->ctx = NULL;
		h->vhost = NULL;
	}
	if (h->n_workers > 0) {
		/* A worker finishes the review it is in (bounded by the kube
		 * client's timeout); queued jobs are dropped unasked, as their
		 * connections are closed. */
		pthread_mutex_lock(&h->mu);
		h->workers_stop = true;
		for (struct job *j = h->queue; j; j = j->next)
			j->wsi = NULL;
		for (struct job *j = h->done; j; j = j->next)
			j->wsi = NULL;
		pthread_cond_broadcast(&h->cond);
		pthread_mutex_unlock(&h->mu);
		for (int i = 0; i < h->n_workers; i++)
			pthread_join(h->workers[i], NULL);
		h->n_workers = 0;
	}
	/* Answers no connection will take any more. */
	pthread_mutex_lock(&h->mu);
	jobs_free(h->done);
	h->done = NULL;
	pthread_mutex_unlock(&h->mu);
}

void ctl_http_free(struct ctl_http *h)
{
	if (!h)
		return;
	ctl_http_stop(h);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cond);
	ctl_certwatcher_free(h->certs);
	free(h->workers);
	free(h->bind_address);
	free(h->cert_file);
	free(h->key_file);
	free(h);
}
