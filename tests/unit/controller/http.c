/* Unit tests for controller/http.c: a real server on an ephemeral port,
 * queried with libcurl. */
#include "test.h"

#include "buf.h"
#include "error.h"
#include "http.h"
#include "metrics.h"

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>

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

TEST_MAIN(T(http_serves_metrics_on_an_ephemeral_port), T(http_serves_large_metrics_bodies_whole),
	  T(http_readyz_flips_from_503_to_200), T(http_healthz_follows_the_health_probe),
	  T(http_without_probes_is_healthy_and_ready), T(http_unknown_path_is_404_and_post_is_405),
	  T(http_stop_closes_the_port), T(http_port_in_use_is_an_error),
	  T(http_unbindable_address_is_an_error))
