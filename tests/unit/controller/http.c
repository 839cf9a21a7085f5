/* Unit tests for controller/http.c: a real server on an ephemeral port,
 * queried with libcurl. */
#include "test.h"

#include "buf.h"
#include "clock.h"
#include "error.h"
#include "http.h"
#include "metrics.h"
#include "tlscert.h"
#include "xalloc.h"

#include "secret_volume.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct reply {
	long status;
	char ctype[128];
	struct ctl_buf body;
};

static size_t collect(char *data, size_t size, size_t n, void *ud)
{
	struct ctl_buf *b = ud;
	return ctl_buf_append(b, data, size * n) == 0 ? size * n : 0;
}

/* One request with a fresh handle; post != 0 sends an empty POST. */
static int fetch(struct reply *r, int port, const char *path, int post)
{
	char url[128];
	char *ctype = NULL;
	CURL *h = curl_easy_init();
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	ctl_buf_init(&r->body, 1 << 20);
	r->status = 0;
	r->ctype[0] = '\0';
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
	if (post)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	CURLcode rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ctype);
	snprintf(r->ctype, sizeof(r->ctype), "%s", ctype ? ctype : "");
	curl_easy_cleanup(h);
	return rc == CURLE_OK ? 0 : -1;
}

static struct ctl_http *serve(const struct ctl_http_opts *o)
{
	struct ctl_http *h = NULL;
	struct ctl_http_opts opts = *o;
	opts.bind_address = "127.0.0.1";
	opts.port = 0;
	CHECK_INT(ctl_http_new(&h, &opts), 0);
	CHECK(h && ctl_http_port(h) > 0);
	return h;
}

TEST(http_serves_metrics_on_an_ephemeral_port)
{
	struct ctl_metrics *m = NULL;
	struct ctl_metric *f = NULL;
	struct reply r;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	ctl_metrics_new(&m);
	ctl_metrics_gauge(&f, m, "workqueue_depth", "Current depth of workqueue",
			  (const char *[]){"name", NULL});
	ctl_metric_set(f, (const char *[]){"agentpool"}, 4);
	struct ctl_http *h = serve(&(struct ctl_http_opts){.metrics = m});

	CHECK_INT(fetch(&r, ctl_http_port(h), "/metrics", 0), 0);
	CHECK_INT(r.status, 200);
	CHECK_STR(r.ctype, "text/plain; version=0.0.4; charset=utf-8");
	CHECK_STR(ctl_buf_str(&r.body), "# HELP workqueue_depth Current depth of workqueue\n"
					"# TYPE workqueue_depth gauge\n"
					"workqueue_depth{name=\"agentpool\"} 4\n");
	ctl_buf_dispose(&r.body);

	ctl_http_free(h);
	ctl_metrics_free(m);
	curl_global_cleanup();
}

TEST(http_serves_large_metrics_bodies_whole)
{
	struct ctl_metrics *m = NULL;
	struct ctl_metric *f = NULL;
	struct ctl_buf want = CTL_BUF_INIT;
	struct reply r;
	char v[32];
	curl_global_init(CURL_GLOBAL_DEFAULT);
	ctl_metrics_new(&m);
	ctl_metrics_counter(&f, m, "pool_runs_total", "Runs.", (const char *[]){"pool", NULL});
	for (int i = 0; i < 1500; i++) {
		snprintf(v, sizeof(v), "ns/pool-%04d", i);
		ctl_metric_inc(f, (const char *[]){v});
	}
	ctl_metrics_render(m, &want); /* ~60 KB: many writeable callbacks */
	struct ctl_http *h = serve(&(struct ctl_http_opts){.metrics = m});
	CHECK_INT(fetch(&r, ctl_http_port(h), "/metrics", 0), 0);
	CHECK_INT(r.status, 200);
	CHECK_INT(r.body.len, want.len);
	CHECK_STR(ctl_buf_str(&r.body), ctl_buf_str(&want));
	ctl_buf_dispose(&r.body);
	ctl_buf_dispose(&want);
	ctl_http_free(h);
	ctl_metrics_free(m);
	curl_global_cleanup();
}

static int probe_flag(struct ctl_buf *reason, void *ud)
{
	if (atomic_load((atomic_int *)ud))
		return 0;
	ctl_buf_puts(reason, "informers not synced");
	return 1;
}

TEST(http_readyz_flips_from_503_to_200)
{
	atomic_int ready = 0;
	struct reply r;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct ctl_http *h = serve(&(struct ctl_http_opts){.readyz = probe_flag, .readyz_ud = &ready});

	CHECK_INT(fetch(&r, ctl_http_port(h), "/readyz", 0), 0);
	CHECK_INT(r.status, 503);
	CHECK_STR(ctl_buf_str(&r.body), "informers not synced");
	ctl_buf_dispose(&r.body);

	atomic_store(&ready, 1);
	CHECK_INT(fetch(&r, ctl_http_port(h), "/readyz", 0), 0);
	CHECK_INT(r.status, 200);
	CHECK_STR(ctl_buf_str(&r.body), "ok");
	ctl_buf_dispose(&r.body);

	ctl_http_free(h);
	curl_global_cleanup();
}

TEST(http_healthz_follows_the_health_probe)
{
	atomic_int healthy = 1;
	struct reply r;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct ctl_http *h = serve(&(struct ctl_http_opts){.healthz = probe_flag, .healthz_ud = &healthy});

	CHECK_INT(fetch(&r, ctl_http_port(h), "/healthz", 0), 0);
	CHECK_INT(r.status, 200);
	CHECK_STR(ctl_buf_str(&r.body), "ok");
	CHECK_STR(r.ctype, "text/plain; charset=utf-8");
	ctl_buf_dispose(&r.body);

	atomic_store(&healthy, 0);
	CHECK_INT(fetch(&r, ctl_http_port(h), "/healthz", 0), 0);
	CHECK_INT(r.status, 500);
	ctl_buf_dispose(&r.body);

	ctl_http_free(h);
	curl_global_cleanup();
}

TEST(http_without_probes_is_healthy_and_ready)
{
	struct reply r;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct ctl_http *h = serve(&(struct ctl_http_opts){0});
	CHECK_INT(fetch(&r, ctl_http_port(h), "/healthz", 0), 0);
	CHECK_INT(r.status, 200);
	ctl_buf_dispose(&r.body);
	CHECK_INT(fetch(&r, ctl_http_port(h), "/readyz", 0), 0);
	CHECK_INT(r.status, 200);
	ctl_buf_dispose(&r.body);
	/* No registry: no /metrics. */
	CHECK_INT(fetch(&r, ctl_http_port(h), "/metrics", 0), 0);
	CHECK_INT(r.status, 404);
	ctl_buf_dispose(&r.body);
	ctl_http_free(h);
	curl_global_cleanup();
}

TEST(http_unknown_path_is_404_and_post_is_405)
{
	struct reply r;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct ctl_http *h = serve(&(struct ctl_http_opts){0});
	CHECK_INT(fetch(&r, ctl_http_port(h), "/nope", 0), 0);
	CHECK_INT(r.status, 404);
	ctl_buf_dispose(&r.body);
	CHECK_INT(fetch(&r, ctl_http_port(h), "/healthz/extra", 0), 0);
	CHECK_INT(r.status, 404);
	ctl_buf_dispose(&r.body);
	CHECK_INT(fetch(&r, ctl_http_port(h), "/healthz", 1), 0);
	CHECK_INT(r.status, 405);
	ctl_buf_dispose(&r.body);
	ctl_http_free(h);
	curl_global_cleanup();
}

TEST(http_stop_closes_the_port)
{
	struct reply r;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct ctl_http *h = serve(&(struct ctl_http_opts){0});
	int port = ctl_http_port(h);
	ctl_http_stop(h);
	ctl_http_stop(h); /* twice is fine */
	CHECK_INT(fetch(&r, port, "/healthz", 0), -1);
	ctl_buf_dispose(&r.body);
	ctl_http_free(h);
	curl_global_cleanup();
}

TEST(http_port_in_use_is_an_error)
{
	struct ctl_http *first = serve(&(struct ctl_http_opts){0});
	struct ctl_http *second = NULL;
	struct ctl_http_opts o = {.bind_address = "127.0.0.1", .port = ctl_http_port(first)};
	CHECK_INT(ctl_http_new(&second, &o), CTL_ERR);
	CHECK(second == NULL);
	CHECK_STR(ctl_error_last()->reason, "HTTPBind");
	ctl_http_free(first);
}

TEST(http_unbindable_address_is_an_error)
{
	struct ctl_http *h = NULL;
	/* 192.0.2.1 (TEST-NET-1) is on no interface of this machine. */
	struct ctl_http_opts o = {.bind_address = "192.0.2.1", .port = 0};
	CHECK_INT(ctl_http_new(&h, &o), CTL_ERR);
	CHECK(h == NULL);
}

/* One HTTPS request that trusts only ca_pem (verifying the name
 * 127.0.0.1), with an Authorization header when auth is not NULL. */
static int fetch_tls(struct reply *r, int port, const char *path, const char *auth, const char *ca_pem)
{
	char url[128];
	struct curl_slist *hdrs = NULL;
	CURL *h = curl_easy_init();
	snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", port, path);
	ctl_buf_init(&r->body, 1 << 20);
	r->status = 0;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
	struct curl_blob ca = {(void *)ca_pem, strlen(ca_pem), CURL_BLOB_COPY};
	curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca);
	if (auth) {
		hdrs = curl_slist_append(hdrs, auth);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	}
	CURLcode rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	return rc == CURLE_OK ? 0 : -1;
}

/* Lets in "Bearer good" only, and counts its calls. */
static int allow_good(const char *authorization, const char *verb, const char *path, struct ctl_buf *body,
		      void *ud)
{
	atomic_fetch_add((atomic_int *)ud, 1);
	if (!authorization) {
		ctl_buf_puts(body, "Unauthorized\n");
		return 401;
	}
	if (strcmp(verb, "get") || strcmp(path, "/metrics") || strcmp(authorization, "Bearer good")) {
		ctl_buf_puts(body, "Forbidden\n");
		return 403;
	}
	return 200;
}

TEST(http_tls_with_a_self_signed_certificate_and_authorize)
{
	struct ctl_tlscert cert = CTL_TLSCERT_INIT;
	struct ctl_metrics *m = NULL;
	struct ctl_metric *f = NULL;
	atomic_int calls = 0;
	struct reply r;
	char *long_auth = NULL;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CHECK_INT(ctl_tlscert_self_signed(&cert, (const char *[]){"acrpool-test", "localhost", "127.0.0.1", NULL}), 0);
	CHECK(cert.cert_pem && strstr(cert.cert_pem, "BEGIN CERTIFICATE"));
	CHECK(cert.key_pem && strstr(cert.key_pem, "BEGIN PRIVATE KEY"));
	ctl_metrics_new(&m);
	ctl_metrics_gauge(&f, m, "up_gauge", "Up.", NULL);
	struct ctl_http *h = serve(&(struct ctl_http_opts){
		.metrics = m, .authorize = allow_good, .authorize_ud = &calls,
		.tls_cert_pem = cert.cert_pem, .tls_cert_len = cert.cert_len,
		.tls_key_pem = cert.key_pem, .tls_key_len = cert.key_len});
	int port = ctl_http_port(h);

	CHECK_INT(fetch_tls(&r, port, "/metrics", "Authorization: Bearer good", cert.cert_pem), 0);
	CHECK_INT(r.status, 200);
	CHECK(strstr(ctl_buf_str(&r.body), "up_gauge 0") != NULL);
	ctl_buf_dispose(&r.body);
	CHECK_INT(fetch_tls(&r, port, "/metrics", NULL, cert.cert_pem), 0);
	CHECK_INT(r.status, 401);
	CHECK_STR(ctl_buf_str(&r.body), "Unauthorized\n");
	ctl_buf_dispose(&r.body);
	CHECK_INT(fetch_tls(&r, port, "/metrics", "Authorization: Bearer other", cert.cert_pem), 0);
	CHECK_INT(r.status, 403);
	CHECK(strstr(ctl_buf_str(&r.body), "up_gauge") == NULL);
	ctl_buf_dispose(&r.body);
	/* A ServiceAccount token is over 1 KiB: the header must arrive whole. */
	long_auth = xasprintf("Authorization: Bearer %01500d", 7);
	CHECK_INT(fetch_tls(&r, port, "/metrics", long_auth, cert.cert_pem), 0);
	CHECK_INT(r.status, 403);
	ctl_buf_dispose(&r.body);
	/* Probes are never authorized. */
	int before = atomic_load(&calls);
	CHECK_INT(fetch_tls(&r, port, "/healthz", NULL, cert.cert_pem), 0);
	CHECK_INT(r.status, 200);
	ctl_buf_dispose(&r.body);
	CHECK_INT(atomic_load(&calls), before);
	/* Plain HTTP on the TLS port gets no metrics. */
	fetch(&r, port, "/metrics", 0);
	CHECK(r.status != 200);
	ctl_buf_dispose(&r.body);

	ctl_http_free(h);
	ctl_metrics_free(m);
	ctl_tlscert_dispose(&cert);
	free(long_auth);
	curl_global_cleanup();
}

TEST(http_tls_from_files)
{
	struct ctl_tlscert cert = CTL_TLSCERT_INIT;
	struct reply r;
	char dir[] = "/tmp/acrpool-http-tls-XXXXXX", crt[64], key[64];
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CHECK(mkdtemp(dir) != NULL);
	snprintf(crt, sizeof(crt), "%s/tls.crt", dir);
	snprintf(key, sizeof(key), "%s/tls.key", dir);
	CHECK_INT(ctl_tlscert_self_signed(&cert, (const char *[]){"127.0.0.1", NULL}), 0);
	FILE *fc = fopen(crt, "w"), *fk = fopen(key, "w");
	CHECK(fc && fk);
	fputs(cert.cert_pem, fc);
	fputs(cert.key_pem, fk);
	fclose(fc);
	fclose(fk);
	struct ctl_http *h = serve(&(struct ctl_http_opts){.tls_cert_file = crt, .tls_key_file = key});
	CHECK_INT(fetch_tls(&r, ctl_http_port(h), "/readyz", NULL, cert.cert_pem), 0);
	CHECK_INT(r.status, 200);
	ctl_buf_dispose(&r.body);
	ctl_http_free(h);

	/* A key that is not the certificate's: refused at start. */
	struct ctl_tlscert other = CTL_TLSCERT_INIT;
	CHECK_INT(ctl_tlscert_self_signed(&other, (const char *[]){"127.0.0.1", NULL}), 0);
	fk = fopen(key, "w");
	fputs(other.key_pem, fk);
	fclose(fk);
	h = NULL;
	struct ctl_http_opts o = {.bind_address = "127.0.0.1", .tls_cert_file = crt, .tls_key_file = key};
	CHECK(ctl_http_new(&h, &o) != 0);
	CHECK(h == NULL);
	remove(crt);
	remove(key);
	rmdir(dir);
	ctl_tlscert_dispose(&cert);
	ctl_tlscert_dispose(&other);
	curl_global_cleanup();
}

TEST(http_tls_presents_a_rotated_certificate_without_a_restart)
{
	struct ctl_tlscert a = CTL_TLSCERT_INIT, b = CTL_TLSCERT_INIT, c = CTL_TLSCERT_INIT;
	struct reply r;
	char dir[] = "/tmp/acrpool-http-rotate-XXXXXX", crt[64], key[64];
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CHECK(mkdtemp(dir) != NULL);
	snprintf(crt, sizeof(crt), "%s/tls.crt", dir);
	snprintf(key, sizeof(key), "%s/tls.key", dir);
	CHECK_INT(ctl_tlscert_self_signed(&a, (const char *[]){"127.0.0.1", NULL}), 0);
	CHECK_INT(ctl_tlscert_self_signed(&b, (const char *[]){"127.0.0.1", NULL}), 0);
	CHECK_INT(ctl_tlscert_self_signed(&c, (const char *[]){"127.0.0.1", NULL}), 0);
	secret_volume_publish(dir, 0, a.cert_pem, a.key_pem);
	struct ctl_http *h = serve(&(struct ctl_http_opts){.tls_cert_file = crt, .tls_key_file = key});
	int port = ctl_http_port(h);

	/* Each request trusts one certificate only, so it tells which one
	 * the server presented. */
	CHECK_INT(fetch_tls(&r, port, "/healthz", NULL, a.cert_pem), 0);
	CHECK_INT(r.status, 200);
	ctl_buf_dispose(&r.body);
	CHECK_INT(fetch_tls(&r, port, "/healthz", NULL, b.cert_pem), -1);
	ctl_buf_dispose(&r.body);

	secret_volume_publish(dir, 1, b.cert_pem, b.key_pem);
	CHECK_INT(fetch_tls(&r, port, "/healthz", NULL, b.cert_pem), 0);
	CHECK_INT(r.status, 200);
	ctl_buf_dispose(&r.body);
	CHECK_INT(fetch_tls(&r, port, "/healthz", NULL, a.cert_pem), -1);
	ctl_buf_dispose(&r.body);

	/* A pair that does not match (c's certificate, a's key): b stays. */
	secret_volume_publish(dir, 2, c.cert_pem, a.key_pem);
	for (int i = 0; i < 2; i++) {
		CHECK_INT(fetch_tls(&r, port, "/healthz", NULL, b.cert_pem), 0);
		CHECK_INT(r.status, 200);
		ctl_buf_dispose(&r.body);
	}

	ctl_http_free(h);
	secret_volume_remove(dir, 3);
	ctl_tlscert_dispose(&a);
	ctl_tlscert_dispose(&b);
	ctl_tlscert_dispose(&c);
	curl_global_cleanup();
}

/* An authorize that blocks until the test opens the gate, as a
 * TokenReview does while the API server is slow; "Bearer cached" is
 * answered from the cache without it. */
struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int entered;   /* authorize calls that started */
	bool open;
};

static int cached_only(const char *authorization, const char *verb, const char *path, struct ctl_buf *body,
		       void *ud)
{
	if (authorization && strcmp(authorization, "Bearer cached") == 0)
		return 200;
	return 0;
}

static int blocking_authorize(const char *authorization, const char *verb, const char *path,
			      struct ctl_buf *body, void *ud)
{
	struct gate *g = ud;
	pthread_mutex_lock(&g->mu);
	g->entered++;
	pthread_cond_broadcast(&g->cond);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->mu);
	pthread_mutex_unlock(&g->mu);
	if (authorization && strcmp(authorization, "Bearer slow") == 0)
		return 200;
	ctl_buf_puts(body, "Forbidden\n");
	return 403;
}

/* Wait until n authorize calls have started, at most 20 s. */
static bool gate_wait_entered(struct gate *g, int n)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 20;
	pthread_mutex_lock(&g->mu);
	while (g->entered < n && pthread_cond_timedwait(&g->cond, &g->mu, &ts) == 0)
		;
	bool ok = g->entered >= n;
	pthread_mutex_unlock(&g->mu);
	return ok;
}

static void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->mu);
}

/* One plain GET with an Authorization header, giving up after timeout_ms. */
static int fetch_auth(struct reply *r, int port, const char *path, const char *auth, long timeout_ms)
{
	char url[128];
	struct curl_slist *hdrs = NULL;
	CURL *h = curl_easy_init();
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	ctl_buf_init(&r->body, 1 << 20);
	r->status = 0;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (auth) {
		hdrs = curl_slist_append(hdrs, auth);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	}
	CURLcode rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	return rc == CURLE_OK ? 0 : -1;
}

/* A scrape on its own thread. */
struct scrape {
	pthread_t thread;
	int port;
	const char *auth;
	long timeout_ms;
	struct reply r;
	int rc;
	atomic_int finished;
};

static void *scrape_main(void *arg)
{
	struct scrape *sc = arg;
	sc->rc = fetch_auth(&sc->r, sc->port, "/metrics", sc->auth, sc->timeout_ms);
	atomic_store(&sc->finished, 1);
	return NULL;
}

static void scrape_start(struct scrape *sc, int port, const char *auth, long timeout_ms)
{
	memset(sc, 0, sizeof(*sc));
	sc->port = port;
	sc->auth = auth;
	sc->timeout_ms = timeout_ms;
	atomic_init(&sc->finished, 0);
	CHECK(pthread_create(&sc->thread, NULL, scrape_main, sc) == 0);
}

static struct ctl_http *serve_gated(struct ctl_metrics **m, struct gate *g, int max_pending, int64_t timeout_ns)
{
	struct ctl_metric *f = NULL;
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->entered = 0;
	g->open = false;
	ctl_metrics_new(m);
	ctl_metrics_gauge(&f, *m, "up_gauge", "Up.", NULL);
	return serve(&(struct ctl_http_opts){.metrics = *m, .authorize = blocking_authorize,
					     .authorize_cached = cached_only, .authorize_ud = g,
					     .authorize_max_pending = max_pending,
					     .authorize_timeout_ns = timeout_ns});
}

static void gate_dispose(struct gate *g)
{
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cond);
}

TEST(http_a_pending_review_does_not_hold_up_cached_scrapes)
{
	struct ctl_metrics *m = NULL;
	struct gate g;
	struct scrape slow;
	struct reply r;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct ctl_http *h = serve_gated(&m, &g, 0, 0);
	int port = ctl_http_port(h);

	scrape_start(&slow, port, "Authorization: Bearer slow", 30000);
	CHECK(gate_wait_entered(&g, 1));
	/* The review of "slow" is under way and cannot finish: the gate is
	 * shut. A cached token, the probes and a refused request are
	 * answered meanwhile. */
	CHECK_INT(fetch_auth(&r, port, "/metrics", "Authorization: Bearer cached", 20000), 0);
	CHECK_INT(r.status, 200);
	CHECK(strstr(ctl_buf_str(&r.body), "up_gauge 0") != NULL);
	ctl_buf_dispose(&r.body);
	CHECK_INT(fetch_auth(&r, port, "/healthz", NULL, 20000), 0);
	CHECK_INT(r.status, 200);
	ctl_buf_dispose(&r.body);
	CHECK_INT(atomic_load(&slow.finished), 0);

	gate_open(&g);
	pthread_join(slow.thread, NULL);
	CHECK_INT(slow.rc, 0);
	CHECK_INT(slow.r.status, 200);
	CHECK(strstr(ctl_buf_str(&slow.r.body), "up_gauge 0") != NULL);
	ctl_buf_dispose(&slow.r.body);
	/* A refusal from a review comes back the same way. */
	CHECK_INT(fetch_auth(&r, port, "/metrics", "Authorization: Bearer other", 20000), 0);
	CHECK_INT(r.status, 403);
	CHECK_STR(ctl_buf_str(&r.body), "Forbidden\n");
	ctl_buf_dispose(&r.body);

	ctl_http_free(h);
	ctl_metrics_free(m);
	gate_dispose(&g);
	curl_global_cleanup();
}

TEST(http_a_review_past_the_timeout_is_503)
{
	struct ctl_metrics *m = NULL;
	struct gate g;
	struct reply r;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct ctl_http *h = serve_gated(&m, &g, 0, 300 * CTL_MSEC);
	int port = ctl_http_port(h);

	CHECK_INT(fetch_auth(&r, port, "/metrics", "Authorization: Bearer slow", 20000), 0);
	CHECK_INT(r.status, 503);
	CHECK_STR(ctl_buf_str(&r.body), "authorization timed out\n");
	CHECK(strstr(ctl_buf_str(&r.body), "up_gauge") == NULL);
	ctl_buf_dispose(&r.body);
	/* The review still under way finishes for nobody (and is freed). */
	gate_open(&g);
	CHECK_INT(fetch_auth(&r, port, "/metrics", "Authorization: Bearer slow", 20000), 0);
	CHECK_INT(r.status, 200);
	ctl_buf_dispose(&r.body);

	ctl_http_free(h);
	ctl_metrics_free(m);
	gate_dispose(&g);
	curl_global_cleanup();
}

TEST(http_reviews_in_flight_are_bounded)
{
	struct ctl_metrics *m = NULL;
	struct gate g;
	struct scrape first;
	struct reply r;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct ctl_http *h = serve_gated(&m, &g, 1, 0);
	int port = ctl_http_port(h);

	scrape_start(&first, port, "Authorization: Bearer slow", 30000);
	CHECK(gate_wait_entered(&g, 1));
	/* One review pending is the limit: another token waits for none. */
	CHECK_INT(fetch_auth(&r, port, "/metrics", "Authorization: Bearer another", 20000), 0);
	CHECK_INT(r.status, 503);
	CHECK_STR(ctl_buf_str(&r.body), "too many requests waiting for authorization\n");
	ctl_buf_dispose(&r.body);
	/* A cached token needs no review. */
	CHECK_INT(fetch_auth(&r, port, "/metrics", "Authorization: Bearer cached", 20000), 0);
	CHECK_INT(r.status, 200);
	ctl_buf_dispose(&r.body);

	gate_open(&g);
	pthread_join(first.thread, NULL);
	CHECK_INT(first.r.status, 200);
	ctl_buf_dispose(&first.r.body);

	ctl_http_free(h);
	ctl_metrics_free(m);
	gate_dispose(&g);
	curl_global_cleanup();
}

TEST(http_a_client_that_leaves_mid_review_is_forgotten)
{
	struct ctl_metrics *m = NULL;
	struct gate g;
	struct reply r;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct ctl_http *h = serve_gated(&m, &g, 0, 0);
	int port = ctl_http_port(h);

	/* The client gives up while its review is pending... */
	CHECK_INT(fetch_auth(&r, port, "/metrics", "Authorization: Bearer slow", 500), -1);
	ctl_buf_dispose(&r.body);
	CHECK(gate_wait_entered(&g, 1));
	/* ... and a request queued behind nothing is served as usual. */
	CHECK_INT(fetch_auth(&r, port, "/metrics", "Authorization: Bearer cached", 20000), 0);
	CHECK_INT(r.status, 200);
	ctl_buf_dispose(&r.body);
	gate_open(&g);
	CHECK_INT(fetch_auth(&r, port, "/metrics", "Authorization: Bearer slow", 20000), 0);
	CHECK_INT(r.status, 200);
	ctl_buf_dispose(&r.body);

	ctl_http_free(h);
	ctl_metrics_free(m);
	gate_dispose(&g);
	curl_global_cleanup();
}

struct opener {
	struct scrape *sc;
	struct gate *g;
};

/* Open the gate once the scrape has ended. */
static void *open_after_scrape(void *arg)
{
	struct opener *o = arg;
	pthread_join(o->sc->thread, NULL);
	gate_open(o->g);
	return NULL;
}

TEST(http_stop_waits_for_a_review_under_way)
{
	struct ctl_metrics *m = NULL;
	struct gate g;
	struct scrape slow;
	pthread_t opener;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct ctl_http *h = serve_gated(&m, &g, 0, 0);

	scrape_start(&slow, ctl_http_port(h), "Authorization: Bearer slow", 30000);
	CHECK(gate_wait_entered(&g, 1));
	/* Stopped with a connection waiting: the connection is closed
	 * unanswered (which ends the scrape, which opens the gate), stop
	 * returns once the review has, and its late answer goes nowhere. */
	struct opener o = {&slow, &g};
	CHECK(pthread_create(&opener, NULL, open_after_scrape, &o) == 0);
	ctl_http_stop(h);
	pthread_join(opener, NULL);
	CHECK_INT(slow.rc, -1);
	CHECK_INT(slow.r.status, 0);
	ctl_buf_dispose(&slow.r.body);
	ctl_http_free(h);
	ctl_metrics_free(m);
	gate_dispose(&g);
	curl_global_cleanup();
}

TEST_MAIN(T(http_serves_metrics_on_an_ephemeral_port), T(http_serves_large_metrics_bodies_whole),
	  T(http_readyz_flips_from_503_to_200), T(http_healthz_follows_the_health_probe),
	  T(http_without_probes_is_healthy_and_ready), T(http_unknown_path_is_404_and_post_is_405),
	  T(http_stop_closes_the_port), T(http_port_in_use_is_an_error),
	  T(http_unbindable_address_is_an_error), T(http_tls_with_a_self_signed_certificate_and_authorize),
	  T(http_tls_from_files), T(http_tls_presents_a_rotated_certificate_without_a_restart),
	  T(http_a_pending_review_does_not_hold_up_cached_scrapes), T(http_a_review_past_the_timeout_is_503),
	  T(http_reviews_in_flight_are_bounded), T(http_a_client_that_leaves_mid_review_is_forgotten),
	  T(http_stop_waits_for_a_review_under_way))
