/* Unit tests for controller/metrics.c: registry and text format 0.0.4. */
#include "test.h"

#include "buf.h"
#include "error.h"
#include "metrics.h"

#include <math.h>
#include <stdio.h>

static const char *const no_labels[] = {NULL};

TEST(metrics_render_exact_text)
{
	static const double bounds[] = {0.1, 1};
	struct ctl_metrics *m = NULL;
	struct ctl_metric *req = NULL, *temp = NULL, *lat = NULL, *empty = NULL;
	struct ctl_buf out = CTL_BUF_INIT;

	ctl_metrics_new(&m);
	CHECK_INT(ctl_metrics_counter(&req, m, "http_requests_total", "Requests served.",
				      (const char *[]){"code", "method", NULL}), 0);
	CHECK_INT(ctl_metrics_gauge(&temp, m, "temperature_celsius", "Current temperature.", NULL), 0);
	CHECK_INT(ctl_metrics_histogram(&lat, m, "latency_seconds", "Request latency.",
					(const char *[]){"path", NULL}, bounds, 2), 0);
	CHECK_INT(ctl_metrics_counter(&empty, m, "never_used_total", "No series yet.",
				      (const char *[]){"x", NULL}), 0);
	ctl_metric_inc(req, (const char *[]){"200", "get"});
	ctl_metric_add(req, (const char *[]){"200", "get"}, 2);
	ctl_metric_inc(req, (const char *[]){"404", "get"});
	ctl_metric_inc(req, (const char *[]){"200", "delete"});
	ctl_metric_set(temp, NULL, 21.5);
	ctl_metric_observe(lat, (const char *[]){"/b"}, 0.05);
	ctl_metric_observe(lat, (const char *[]){"/b"}, 0.5);
	ctl_metric_observe(lat, (const char *[]){"/b"}, 2);
	ctl_metric_observe(lat, (const char *[]){"/a"}, 1);

	CHECK_INT(ctl_metrics_render(m, &out), 0);
	CHECK_STR(ctl_buf_str(&out),
		  "# HELP http_requests_total Requests served.\n"
		  "# TYPE http_requests_total counter\n"
		  "http_requests_total{code=\"200\",method=\"delete\"} 1\n"
		  "http_requests_total{code=\"200\",method=\"get\"} 3\n"
		  "http_requests_total{code=\"404\",method=\"get\"} 1\n"
		  "# HELP latency_seconds Request latency.\n"
		  "# TYPE latency_seconds histogram\n"
		  "latency_seconds_bucket{path=\"/a\",le=\"0.1\"} 0\n"
		  "latency_seconds_bucket{path=\"/a\",le=\"1\"} 1\n"
		  "latency_seconds_bucket{path=\"/a\",le=\"+Inf\"} 1\n"
		  "latency_seconds_sum{path=\"/a\"} 1\n"
		  "latency_seconds_count{path=\"/a\"} 1\n"
		  "latency_seconds_bucket{path=\"/b\",le=\"0.1\"} 1\n"
		  "latency_seconds_bucket{path=\"/b\",le=\"1\"} 2\n"
		  "latency_seconds_bucket{path=\"/b\",le=\"+Inf\"} 3\n"
		  "latency_seconds_sum{path=\"/b\"} 2.55\n"
		  "latency_seconds_count{path=\"/b\"} 3\n"
		  "# HELP temperature_celsius Current temperature.\n"
		  "# TYPE temperature_celsius gauge\n"
		  "temperature_celsius 21.5\n");
	ctl_buf_dispose(&out);
	ctl_metrics_free(m);
}

TEST(metrics_escape_label_values_and_help)
{
	struct ctl_metrics *m = NULL;
	struct ctl_metric *f = NULL;
	struct ctl_buf out = CTL_BUF_INIT;
	ctl_metrics_new(&m);
	ctl_metrics_gauge(&f, m, "odd", "Back\\slash and\nnewline \"kept\".",
			  (const char *[]){"v", NULL});
	ctl_metric_set(f, (const char *[]){"a\"b\\c\nd"}, 1);
	ctl_metrics_render(m, &out);
	CHECK_STR(ctl_buf_str(&out),
		  "# HELP odd Back\\\\slash and\\nnewline \"kept\".\n"
		  "# TYPE odd gauge\n"
		  "odd{v=\"a\\\"b\\\\c\\nd\"} 1\n");
	ctl_buf_dispose(&out);
	ctl_metrics_free(m);
}

TEST(metrics_format_values_like_client_golang)
{
	struct { double v; const char *want; } cases[] = {
		{0, "0"}, {1, "1"}, {-2, "-2"}, {0.5, "0.5"}, {2.55, "2.55"},
		{123456, "123456"}, {1e6, "1e+06"}, {1234567, "1.234567e+06"},
		{0.0001, "0.0001"}, {1e-5, "1e-05"}, {1e-8, "1e-08"}, {0.1 + 0.2, "0.30000000000000004"},
		{INFINITY, "+Inf"}, {-INFINITY, "-Inf"}, {NAN, "NaN"},
	};
	char buf[40];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ctl_metrics_format_value(buf, sizeof(buf), cases[i].v);
		CHECK_STR(buf, cases[i].want);
	}
}

TEST(metrics_register_again_finds_family_or_conflicts)
{
	struct ctl_metrics *m = NULL;
	struct ctl_metric *a = NULL, *b = NULL, *c = NULL;
	ctl_metrics_new(&m);
	CHECK_INT(ctl_metrics_counter(&a, m, "x_total", "X.", (const char *[]){"name", NULL}), 0);
	CHECK_INT(ctl_metrics_counter(&b, m, "x_total", "X.", (const char *[]){"name", NULL}), 0);
	CHECK(a == b);
	CHECK_INT(ctl_metrics_gauge(&c, m, "x_total", "X.", (const char *[]){"name", NULL}), CTL_ECONFLICT);
	CHECK(c == NULL);
	CHECK_INT(ctl_metrics_counter(&c, m, "x_total", "X.", (const char *[]){"other", NULL}),
		  CTL_ECONFLICT);
	CHECK_INT(ctl_metrics_counter(&c, m, "9starts_with_digit", "", NULL), CTL_EINVALID);
	CHECK_INT(ctl_metrics_counter(&c, m, "has-dash", "", NULL), CTL_EINVALID);
	CHECK_INT(ctl_metrics_counter(&c, m, "ok:with_colon", "", NULL), 0);
	CHECK_INT(ctl_metrics_gauge(&c, m, "bad_label", "", (const char *[]){"a:b", NULL}), CTL_EINVALID);
	CHECK_INT(ctl_metrics_gauge(&c, m, "reserved", "", (const char *[]){"__x", NULL}), CTL_EINVALID);
	CHECK_INT(ctl_metrics_histogram(&c, m, "h", "", (const char *[]){"le", NULL}, NULL, 0),
		  CTL_EINVALID);
	CHECK_INT(ctl_metrics_histogram(&c, m, "h2", "", no_labels, (const double[]){1, 1}, 2),
		  CTL_EINVALID);
	ctl_metrics_free(m);
}

TEST(metrics_updates_must_fit_the_type)
{
	struct ctl_metrics *m = NULL;
	struct ctl_metric *c = NULL, *h = NULL;
	ctl_metrics_new(&m);
	ctl_metrics_counter(&c, m, "c_total", "", NULL);
	ctl_metrics_histogram(&h, m, "h_seconds", "", NULL, NULL, 0);
	CHECK_INT(ctl_metric_add(c, NULL, -1), CTL_EINVALID);
	CHECK_INT(ctl_metric_set(c, NULL, 5), CTL_EINVALID);
	CHECK_INT(ctl_metric_observe(c, NULL, 5), CTL_EINVALID);
	CHECK_INT(ctl_metric_inc(h, NULL), CTL_EINVALID);
	CHECK_INT(ctl_metric_observe(h, NULL, 0.3), 0);
	double v = 0;
	CHECK_INT(ctl_metric_get(&v, h, NULL), 0);
	CHECK(v == 1);
	/* A NULL registry hands out NULL families that ignore updates. */
	struct ctl_metric *none = NULL;
	CHECK_INT(ctl_metrics_counter(&none, NULL, "x_total", "", NULL), 0);
	CHECK(none == NULL);
	CHECK_INT(ctl_metric_inc(none, NULL), 0);
	ctl_metrics_free(m);
}

TEST(metrics_series_are_bounded)
{
	struct ctl_metrics *m = NULL;
	struct ctl_metric *f = NULL;
	char v[32];
	ctl_metrics_new(&m);
	ctl_metrics_counter(&f, m, "by_user_total", "", (const char *[]){"user", NULL});
	for (int i = 0; i < CTL_METRICS_MAX_SERIES; i++) {
		snprintf(v, sizeof(v), "u%d", i);
		CHECK_INT(ctl_metric_inc(f, (const char *[]){v}), 0);
	}
	CHECK_INT(ctl_metric_inc(f, (const char *[]){"one-too-many"}), CTL_ETOOBIG);
	CHECK_INT(ctl_metric_inc(f, (const char *[]){"u0"}), 0); /* existing series still count */
	CHECK_INT(ctl_metric_remove(f, (const char *[]){"u0"}), 0);
	CHECK_INT(ctl_metric_inc(f, (const char *[]){"one-too-many"}), 0);
	ctl_metrics_free(m);
}

TEST(metrics_series_found_by_values_through_removals)
{
	/* Two labels whose joined text is the same ("a","bc" / "ab","c"), and
	 * many series removed in an order unlike the one they were added in:
	 * each update lands on its own series, a removed one is gone, and the
	 * exposition keeps the order of creation. */
	struct ctl_metrics *m = NULL;
	struct ctl_metric *f = NULL;
	char ns[32], name[32];
	double v = 0;
	ctl_metrics_new(&m);
	ctl_metrics_gauge(&f, m, "pool_count", "", (const char *[]){"namespace", "name", NULL});
	CHECK_INT(ctl_metric_set(f, (const char *[]){"a", "bc"}, 1), 0);
	CHECK_INT(ctl_metric_set(f, (const char *[]){"ab", "c"}, 2), 0);
	for (int i = 0; i < 1500; i++) {
		snprintf(ns, sizeof(ns), "ns%d", i % 7);
		snprintf(name, sizeof(name), "pool-%d", i);
		CHECK_INT(ctl_metric_set(f, (const char *[]){ns, name}, i), 0);
	}
	for (int i = 1499; i >= 0; i -= 3) { /* every third, from the end */
		snprintf(ns, sizeof(ns), "ns%d", i % 7);
		snprintf(name, sizeof(name), "pool-%d", i);
		CHECK_INT(ctl_metric_remove(f, (const char *[]){ns, name}), 0);
	}
	for (int i = 0; i < 1500; i++) {
		snprintf(ns, sizeof(ns), "ns%d", i % 7);
		snprintf(name, sizeof(name), "pool-%d", i);
		int rc = ctl_metric_get(&v, f, (const char *[]){ns, name});
		if ((1499 - i) % 3 == 0) {
			CHECK_INT(rc, CTL_ENOTFOUND);
		} else {
			CHECK_INT(rc, 0);
			CHECK(v == i);
		}
	}
	CHECK_INT(ctl_metric_get(&v, f, (const char *[]){"a", "bc"}), 0);
	CHECK(v == 1);
	CHECK_INT(ctl_metric_get(&v, f, (const char *[]){"ab", "c"}), 0);
	CHECK(v == 2);
	/* Added again: found again, and shown last. */
	CHECK_INT(ctl_metric_set(f, (const char *[]){"ns1", "pool-1499"}, 7), 0);
	CHECK_INT(ctl_metric_get(&v, f, (const char *[]){"ns1", "pool-1499"}), 0);
	CHECK(v == 7);
	struct ctl_buf b;
	ctl_buf_init(&b, 1 << 20);
	CHECK_INT(ctl_metrics_render(m, &b), 0);
	const char *text = ctl_buf_str(&b);
	const char *first = strstr(text, "pool_count{namespace=\"a\",name=\"bc\"} 1");
	const char *p0 = strstr(text, "name=\"pool-0\"} 0");
	const char *last = strstr(text, "name=\"pool-1499\"} 7");
	CHECK(first && p0 && last && first < p0 && p0 < last);
	ctl_buf_dispose(&b);
	ctl_metrics_free(m);
}

static double read_ud(void *ud)
{
	return *(double *)ud;
}

TEST(metrics_gauge_callback_runs_at_scrape_until_removed)
{
	struct ctl_metrics *m = NULL;
	struct ctl_metric *f = NULL;
	struct ctl_buf out = CTL_BUF_INIT;
	double depth = 7;
	ctl_metrics_new(&m);
	ctl_metrics_gauge(&f, m, "pool_queue_depth", "Runs queued.", (const char *[]){"pool", NULL});
	CHECK_INT(ctl_metric_set_func(f, (const char *[]){"ns/p"}, read_ud, &depth), 0);
	ctl_metrics_render(m, &out);
	CHECK_STR(ctl_buf_str(&out), "# HELP pool_queue_depth Runs queued.\n"
				     "# TYPE pool_queue_depth gauge\n"
				     "pool_queue_depth{pool=\"ns/p\"} 7\n");
	depth = 9;
	ctl_buf_reset(&out);
	ctl_metrics_render(m, &out);
	CHECK(strstr(ctl_buf_str(&out), "pool_queue_depth{pool=\"ns/p\"} 9\n") != NULL);
	CHECK_INT(ctl_metric_remove(f, (const char *[]){"ns/p"}), 0);
	CHECK_INT(ctl_metric_remove(f, (const char *[]){"ns/p"}), CTL_ENOTFOUND);
	ctl_buf_reset(&out);
	ctl_metrics_render(m, &out);
	CHECK_STR(ctl_buf_str(&out), "");
	ctl_buf_dispose(&out);
	ctl_metrics_free(m);
}

TEST(metrics_counter_callback_is_exact_when_read)
{
	struct ctl_metrics *m = NULL;
	struct ctl_metric *f = NULL, *h = NULL;
	struct ctl_buf out = CTL_BUF_INIT;
	double relists = 0, v = -1;
	ctl_metrics_new(&m);
	ctl_metrics_counter(&f, m, "watch_relists_total", "Relists.", (const char *[]){"resource", NULL});
	CHECK_INT(ctl_metric_set_func(f, (const char *[]){"pools"}, read_ud, &relists), 0);
	/* The tally moves elsewhere; a read or a scrape sees it at once. */
	relists = 2;
	CHECK_INT(ctl_metric_get(&v, f, (const char *[]){"pools"}), 0);
	CHECK(v == 2);
	ctl_metrics_render(m, &out);
	CHECK_STR(ctl_buf_str(&out), "# HELP watch_relists_total Relists.\n"
				     "# TYPE watch_relists_total counter\n"
				     "watch_relists_total{resource=\"pools\"} 2\n");
	/* A histogram has no single value to call for. */
	ctl_metrics_histogram(&h, m, "latency_seconds", "", NULL, NULL, 0);
	CHECK_INT(ctl_metric_set_func(h, NULL, read_ud, &relists), CTL_EINVALID);
	ctl_buf_dispose(&out);
	ctl_metrics_free(m);
}

TEST(metrics_render_reports_too_big)
{
	struct ctl_metrics *m = NULL;
	struct ctl_metric *f = NULL;
	struct ctl_buf out;
	ctl_buf_init(&out, 16);
	ctl_metrics_new(&m);
	ctl_metrics_gauge(&f, m, "a_rather_long_metric_name", "", NULL);
	CHECK_INT(ctl_metrics_render(m, &out), CTL_ETOOBIG);
	ctl_buf_dispose(&out);
	ctl_metrics_free(m);
}

TEST(metrics_rest_client_observe_registers_client_go_names)
{
	struct ctl_metrics *m = NULL;
	struct ctl_buf out = CTL_BUF_INIT;
	ctl_metrics_new(&m);
	CHECK_INT(ctl_metrics_rest_client_observe(m, "10.0.0.1:6443", "GET", "200", 0.02), 0);
	CHECK_INT(ctl_metrics_rest_client_observe(m, "10.0.0.1:6443", "GET", "200", 0.2), 0);
	ctl_metrics_render(m, &out);
	const char *s = ctl_buf_str(&out);
	CHECK(strstr(s, "rest_client_requests_total{host=\"10.0.0.1:6443\",verb=\"GET\",code=\"200\"} 2\n"));
	CHECK(strstr(s, "rest_client_request_duration_seconds_bucket{host=\"10.0.0.1:6443\","
			"verb=\"GET\",le=\"0.025\"} 1\n"));
	CHECK(strstr(s, "rest_client_request_duration_seconds_count{host=\"10.0.0.1:6443\","
			"verb=\"GET\"} 2\n"));
	ctl_buf_dispose(&out);
	ctl_metrics_free(m);
}

TEST_MAIN(T(metrics_series_found_by_values_through_removals), T(metrics_render_exact_text), T(metrics_escape_label_values_and_help),
	  T(metrics_format_values_like_client_golang),
	  T(metrics_register_again_finds_family_or_conflicts), T(metrics_updates_must_fit_the_type),
	  T(metrics_series_are_bounded), T(metrics_gauge_callback_runs_at_scrape_until_removed), T(metrics_counter_callback_is_exact_when_read),
	  T(metrics_render_reports_too_big), T(metrics_rest_client_observe_registers_client_go_names))
