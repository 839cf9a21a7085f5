/* Hostile input for the runtime's parsers: what a broken or malicious API
 * server, proxy or kubeconfig can hand us. Watch lines far over the cap,
 * truncated JSON, wrong types where objects and strings belong, nesting
 * deeper than cJSON allows, NUL bytes and invalid UTF-8. Every case must end
 * in an error code (or a documented lenient reading), never a crash, never
 * a leak (the sanitizer build runs these). The wire cases use the canned
 * HTTP server the unit tests share (canned_http.h). Fuzzing finds the
 * inputs; this file keeps the ones worth keeping (tests/fuzz). */
#include "test.h"

#include "canned_http.h"

#include "buf.h"
#include "conditions.h"
#include "error.h"
#include "kube.h"
#include "kubeconfig.h"
#include "watch.h"
#include "xalloc.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdint.h>

#define MB (1024u * 1024u)
/* A literal with NUL bytes inside, and its length. */
#define BIN(s) s, sizeof(s) - 1

/* --- helpers ------------------------------------------------------------- */

struct lines {
	size_t n;
	size_t bytes;
	char last[128];
};

static int count_line(const char *line, size_t len, void *arg)
{
	struct lines *l = arg;
	l->n++;
	l->bytes += len;
	snprintf(l->last, sizeof(l->last), "%.*s", (int)(len < 100 ? len : 100), line);
	return 0;
}

/* depth opening brackets of kind open, then closing ones: "[[[...]]]". */
static char *nested(size_t depth, const char *prefix, char open, char close, const char *suffix)
{
	size_t p = strlen(prefix), s = strlen(suffix);
	char *b = xmalloc(p + 2 * depth + s + 1);
	memcpy(b, prefix, p);
	memset(b + p, open, depth);
	memset(b + p + depth, close, depth);
	memcpy(b + p + 2 * depth, suffix, s + 1);
	return b;
}

/* "{"a":{"a":...{}...}}" depth deep, inside an event's object. */
static char *nested_objects(size_t depth)
{
	struct ctl_buf b = CTL_BUF_INIT;
	ctl_buf_puts(&b, "{\"type\":\"ADDED\",\"object\":");
	for (size_t i = 0; i < depth; i++)
		ctl_buf_puts(&b, "{\"a\":");
	ctl_buf_puts(&b, "{}");
	for (size_t i = 0; i < depth; i++)
		ctl_buf_puts(&b, "}");
	ctl_buf_puts(&b, "}");
	return ctl_buf_detach(&b);
}

/* --- watch framing ------------------------------------------------------- */

TEST(watch_20mb_line_against_1mb_cap_in_chunks)
{
	/* As curl delivers it: 64 KiB at a time, no newline for 20 MB. The
	 * framer must give up once the partial line passes the cap, holding
	 * no more than about the cap. */
	const size_t chunk = 64 * 1024, total = 20 * MB;
	char *buf = xmalloc(chunk);
	struct ctl_watch_framer f;
	struct lines l = {0};
	size_t fed = 0;
	int rc = 0;

	memset(buf, 'x', chunk);
	ctl_watch_framer_init(&f, 1 * MB);
	CHECK_INT(ctl_watch_framer_feed(&f, "{\"type\":\"BOOKMARK\",\"object\":{}}\n{\"a\":\"", 38, count_line, &l), 0);
	while (fed < total && rc == 0) {
		rc = ctl_watch_framer_feed(&f, buf, chunk, count_line, &l);
		fed += chunk;
	}
	CHECK_INT(rc, CTL_ETOOBIG);
	CHECK_STR(ctl_error_last()->reason, "LineTooLong");
	CHECK(fed <= 1 * MB + chunk); /* stopped at the cap, not at 20 MB */
	CHECK(f.partial.cap <= 2 * MB);
	CHECK_INT(l.n, 1); /* the bookmark before it */
	/* After a reset the framer works again. */
	ctl_watch_framer_reset(&f);
	CHECK_INT(ctl_watch_framer_feed(&f, "{}\n", 3, count_line, &l), 0);
	CHECK_INT(l.n, 2);
	ctl_watch_framer_dispose(&f);
	free(buf);
}

TEST(watch_20mb_line_against_1mb_cap_in_one_piece)
{
	/* The whole line, newline included, in one write: refused without
	 * being copied anywhere. */
	char *buf = xmalloc(20 * MB + 1);
	struct ctl_watch_framer f;
	struct lines l = {0};

	memset(buf, 'y', 20 * MB);
	buf[20 * MB] = '\n';
	ctl_watch_framer_init(&f, 1 * MB);
	CHECK_INT(ctl_watch_framer_feed(&f, buf, 20 * MB + 1, count_line, &l), CTL_ETOOBIG);
	CHECK_INT(l.n, 0);
	CHECK_INT(f.partial.len, 0);
	ctl_watch_framer_dispose(&f);
	free(buf);
}

TEST(watch_line_exactly_at_cap_passes_one_over_fails)
{
	const size_t cap = 4096;
	char *buf = xmalloc(cap + 2);
	struct ctl_watch_framer f;
	struct lines l = {0};

	memset(buf, 'z', cap + 1);
	buf[cap] = '\n';
	ctl_watch_framer_init(&f, cap);
	CHECK_INT(ctl_watch_framer_feed(&f, buf, cap + 1, count_line, &l), 0);
	CHECK_INT(l.n, 1);
	CHECK_INT(l.bytes, cap);
	/* Split across two feeds: same answer. */
	CHECK_INT(ctl_watch_framer_feed(&f, buf, cap / 2, count_line, &l), 0);
	CHECK_INT(ctl_watch_framer_feed(&f, buf + cap / 2, cap / 2 + 1, count_line, &l), 0);
	CHECK_INT(l.n, 2);
	buf[cap] = 'z';
	buf[cap + 1] = '\n';
	CHECK_INT(ctl_watch_framer_feed(&f, buf, cap + 2, count_line, &l), CTL_ETOOBIG);
	ctl_watch_framer_reset(&f);
	CHECK_INT(ctl_watch_framer_feed(&f, buf, 1, count_line, &l), 0);
	CHECK_INT(ctl_watch_framer_feed(&f, buf, cap + 2, count_line, &l), CTL_ETOOBIG);
	CHECK_INT(l.n, 2);
	ctl_watch_framer_dispose(&f);
	free(buf);
}

TEST(watch_nul_bytes_and_bare_newlines_are_framed_not_trusted)
{
	/* A NUL inside a line does not end it; blank lines and "\r\n" alone
	 * are skipped. */
	static const char stream[] = "\n\r\n{\"type\":\"ADD\0ED\",\"object\":{}}\r\n\n{}\n";
	struct ctl_watch_framer f;
	struct lines l = {0};
	ctl_watch_framer_init(&f, 1024);
	CHECK_INT(ctl_watch_framer_feed(&f, stream, sizeof(stream) - 1, count_line, &l), 0);
	CHECK_INT(l.n, 2);
	CHECK_INT(l.bytes, 29 + 2);
	ctl_watch_framer_dispose(&f);
}

/* --- watch events --------------------------------------------------------- */

TEST(watch_event_malformed_lines_are_invalid)
{
	static const struct {
		const char *line;
		size_t len; /* 0: strlen */
	} cases[] = {
		{"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"p1\"", 0}, /* truncated */
		{"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"p1\"}", 0},
		{"{\"type\":\"ADDED\",\"obj", 0},
		{"{\"type\":\"ADDED\",\"object\":{\"a\":\"\\u00", 0},            /* truncated escape */
		{"{\"type\":7,\"object\":{}}", 0},                                /* type as number */
		{"{\"type\":null,\"object\":{}}", 0},
		{"{\"type\":[\"ADDED\"],\"object\":{}}", 0},
		{"{\"type\":\"ADDED\",\"object\":[]}", 0},                       /* object as array */
		{"{\"type\":\"ADDED\",\"object\":\"{}\"}", 0},                   /* object as string */
		{"{\"type\":\"ADDED\",\"object\":null}", 0},
		{"{\"type\":\"ADDED\"}", 0},                                      /* missing object */
		{"{\"object\":{}}", 0},                                           /* missing type */
		{"{\"type\":\"added\",\"object\":{}}", 0},                       /* case matters */
		{"{\"type\":\"RESYNC\",\"object\":{}}", 0},
		{"{\"type\":\"\",\"object\":{}}", 0},
		{"[{\"type\":\"ADDED\",\"object\":{}}]", 0},                     /* array root */
		{"\"ADDED\"", 0},
		{"null", 0},
		{"42", 0},
		{"<html><body>502 Bad Gateway</body></html>", 0},
		{BIN("{\"type\":\"ADD\0ED\",\"object\":{}}")},                     /* NUL inside the type */
		{"{\"type\":\"ADDED\",\"object\":{\"a\":\"\\ud800\"}}", 0},        /* lone surrogate */
		{"{\"type\":\"ADDED\",\"object\":{\"a\":tru}}", 0},
		{"{\"type\":\"ADDED\",\"object\":{\"a\":01x}}", 0},
		{"{\"type\":\"ADDED\" \"object\":{}}", 0},                        /* missing comma */
		{"{\"type\":\"ADDED\",\"object\":{},}", 0},                       /* trailing comma */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctl_watch_event ev;
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].line);
		char *line = xmalloc(len); /* exact size: an over-read is an ASan report */
		memcpy(line, cases[i].line, len);
		int rc = ctl_watch_event_parse(&ev, line, len);
		if (rc != CTL_EINVALID)
			fprintf(stderr, "case %zu: %.*s\n", i, (int)len, cases[i].line);
		CHECK_INT(rc, CTL_EINVALID);
		CHECK_STR(ctl_error_last()->reason, "InvalidWatchEvent");
		CHECK(ev.root == NULL && ev.object == NULL);
		free(line);
	}
}

TEST(watch_event_invalid_utf8_is_carried_not_crashed_on)
{
	/* cJSON does not validate UTF-8: bytes pass through as they came, and
	 * whatever stores them later sees the same bytes. */
	static const char line[] = "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"p\xff\xfe\xc3\x28\",\"resourceVersion\":\"\xed\xa0\x80\"}}}";
	struct ctl_watch_event ev;
	char *copy = xmalloc(sizeof(line) - 1);
	memcpy(copy, line, sizeof(line) - 1);
	CHECK_INT(ctl_watch_event_parse(&ev, copy, sizeof(line) - 1), 0);
	CHECK_INT(ev.type, CTL_WATCH_MODIFIED);
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ev.object, "metadata"), "name");
	CHECK(cJSON_IsString(name) && strcmp(name->valuestring, "p\xff\xfe\xc3\x28") == 0);
	ctl_watch_event_dispose(&ev);
	free(copy);
}

TEST(watch_event_cjson_leniencies_are_harmless)
{
	/* Documented, not endorsed: cJSON skips every byte <= 0x20 as
	 * whitespace (so a NUL before the JSON is ignored), reads a bad \u
	 * escape as U+0000 (which cuts the C string there) and ignores what
	 * follows the first value. None of it can make a wrong type pass. */
	static const struct {
		const char *line;
		size_t len;
	} cases[] = {
		{BIN("\0\x01{\"type\":\"ADDED\",\"object\":{}}")},
		{BIN("{\"type\":\"ADDED\",\"object\":{\"a\":\"x\\uZZZZy\"}}")},
		{BIN("{\"type\":\"ADDED\",\"object\":{}}{\"type\":7}")},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctl_watch_event ev;
		char *line = xmalloc(cases[i].len);
		memcpy(line, cases[i].line, cases[i].len);
		CHECK_INT(ctl_watch_event_parse(&ev, line, cases[i].len), 0);
		CHECK_INT(ev.type, CTL_WATCH_ADDED);
		CHECK(cJSON_IsObject(ev.object));
		ctl_watch_event_dispose(&ev);
		free(line);
	}
}

TEST(watch_event_nesting_past_cjson_limit_is_invalid)
{
	/* cJSON stops at CJSON_NESTING_LIMIT (1000) levels: deeper input is
	 * refused cleanly, without recursing off the stack. */
	static const size_t depths[] = {CJSON_NESTING_LIMIT + 1, 100000, 2 * MB};
	for (size_t i = 0; i < sizeof(depths) / sizeof(depths[0]); i++) {
		struct ctl_watch_event ev;
		char *arrays = nested(depths[i], "{\"type\":\"ADDED\",\"object\":{\"a\":", '[', ']', "}}");
		CHECK_INT(ctl_watch_event_parse(&ev, arrays, strlen(arrays)), CTL_EINVALID);
		free(arrays);
		char *objects = nested_objects(depths[i] < 100000 ? depths[i] : 100000);
		CHECK_INT(ctl_watch_event_parse(&ev, objects, strlen(objects)), CTL_EINVALID);
		free(objects);
	}
	/* Well inside the limit still parses. */
	struct ctl_watch_event ev;
	char *objects = nested_objects(CJSON_NESTING_LIMIT - 10);
	CHECK_INT(ctl_watch_event_parse(&ev, objects, strlen(objects)), 0);
	ctl_watch_event_dispose(&ev);
	free(objects);
}

/* A watcher that has listed and is watching from resourceVersion "100". */
static void watching(struct ctl_watcher *w)
{
	struct ctl_watcher_action a;
	cJSON *page = cJSON_Parse("{\"metadata\":{\"resourceVersion\":\"100\"},\"items\":[]}");
	ctl_watcher_init(w, 10, 1000, 42);
	ctl_watcher_next(w, &a);
	CHECK_INT(ctl_watcher_on_list(w, 0, page), 1);
	ctl_watcher_next(w, &a);
	CHECK_INT(w->state, CTL_WATCHER_WATCHING);
	cJSON_Delete(page);
}

static enum ctl_watcher_effect feed_event(struct ctl_watcher *w, const char *line)
{
	struct ctl_watch_event ev;
	if (ctl_watch_event_parse(&ev, line, strlen(line)) != 0)
		return (enum ctl_watcher_effect)-1;
	enum ctl_watcher_effect e = ctl_watcher_on_event(w, &ev);
	ctl_watch_event_dispose(&ev);
	return e;
}

TEST(watcher_wrong_types_in_events_leave_the_resume_point)
{
	static const char *const lines[] = {
		"{\"type\":\"MODIFIED\",\"object\":{\"metadata\":[\"resourceVersion\",\"999\"]}}", /* metadata as array */
		"{\"type\":\"MODIFIED\",\"object\":{\"metadata\":\"rv=999\"}}",
		"{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"resourceVersion\":999}}}",  /* rv as number */
		"{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"resourceVersion\":\"\"}}}",
		"{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":null}}}",
		"{\"type\":\"DELETED\",\"object\":{}}",
	};
	struct ctl_watcher w;
	watching(&w);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		enum ctl_watcher_effect e = feed_event(&w, lines[i]);
		CHECK(e == CTL_WATCHER_APPLY || e == CTL_WATCHER_NOTHING || e == CTL_WATCHER_DELETE);
		CHECK_STR(w.resource_version, "100");
		CHECK_INT(w.state, CTL_WATCHER_WATCHING);
	}
	ctl_watcher_dispose(&w);
}

TEST(watcher_error_events_with_wrong_types)
{
	static const struct {
		const char *line;
		enum ctl_watcher_state after; /* EMPTY: relist; LISTED: rewatch with backoff */
	} cases[] = {
		{"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"reason\":\"Expired\"}}", CTL_WATCHER_EMPTY},
		{"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410}}", CTL_WATCHER_EMPTY},
		{"{\"type\":\"ERROR\",\"object\":{\"reason\":\"Gone\"}}", CTL_WATCHER_EMPTY},
		{"{\"type\":\"ERROR\",\"object\":{\"code\":\"410\"}}", CTL_WATCHER_LISTED},   /* code as string */
		{"{\"type\":\"ERROR\",\"object\":{\"code\":1e300}}", CTL_WATCHER_LISTED},     /* saturates, no UB */
		{"{\"type\":\"ERROR\",\"object\":{\"code\":-1e300}}", CTL_WATCHER_LISTED},
		{"{\"type\":\"ERROR\",\"object\":{\"code\":410.9}}", CTL_WATCHER_EMPTY},      /* valueint truncates */
		{"{\"type\":\"ERROR\",\"object\":{\"reason\":[\"Expired\"]}}", CTL_WATCHER_LISTED},
		{"{\"type\":\"ERROR\",\"object\":{}}", CTL_WATCHER_LISTED},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctl_watcher w;
		struct ctl_watcher_action a;
		watching(&w);
		CHECK_INT(feed_event(&w, cases[i].line), CTL_WATCHER_STOP);
		CHECK_INT(w.state, cases[i].after);
		ctl_watcher_on_watch_end(&w, CTL_ERR); /* the stream then ends: already decided */
		CHECK_INT(w.state, cases[i].after);
		ctl_watcher_next(&w, &a);
		CHECK_INT(a.kind, cases[i].after == CTL_WATCHER_EMPTY ? CTL_WATCHER_DO_LIST : CTL_WATCHER_DO_WATCH);
		CHECK(a.delay_ms >= 0 && a.delay_ms <= 1000);
		ctl_watcher_dispose(&w);
	}
}

TEST(watcher_hostile_list_pages_start_over)
{
	static const char *const pages[] = {
		"{\"metadata\":[]}",
		"{\"metadata\":{\"resourceVersion\":100}}",
		"{\"metadata\":{\"resourceVersion\":\"\"}}",
		"{\"metadata\":{\"continue\":7}}",
		"[]",
		"\"page\"",
	};
	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		struct ctl_watcher w;
		struct ctl_watcher_action a;
		cJSON *page = cJSON_Parse(pages[i]);
		CHECK(page != NULL);
		ctl_watcher_init(&w, 10, 1000, 7);
		ctl_watcher_next(&w, &a);
		CHECK_INT(ctl_watcher_on_list(&w, 0, page), 0);
		CHECK_INT(w.state, CTL_WATCHER_EMPTY);
		CHECK(w.resource_version == NULL && w.continue_token == NULL);
		CHECK_INT(w.failures, 1);
		cJSON_Delete(page);
		ctl_watcher_dispose(&w);
	}
}

/* --- Kubernetes Status bodies --------------------------------------------- */

TEST(status_body_wrong_types_fall_back_to_the_http_status)
{
	static const struct {
		long status;
		const char *body;
		size_t len; /* 0: strlen */
		int code;
		const char *reason;
	} cases[] = {
		{404, "{\"kind\":\"Status\",\"reason\":404,\"message\":[\"gone\"]}", 0, CTL_ENOTFOUND, "NotFound"},
		{409, "{\"kind\":\"Status\",\"reason\":{\"r\":1},\"message\":null}", 0, CTL_ECONFLICT, "Conflict"},
		{410, "{\"kind\":7,\"reason\":\"Gone\"}", 0, CTL_EGONE, "Expired"},
		{422, "{\"kind\":[\"Status\"],\"reason\":\"Bad\"}", 0, CTL_ETERMINAL, "Invalid"},
		{500, "{\"kind\":\"Status\",\"reason\":\"InternalError\",\"message\":\"etcd", 0, CTL_EUNAVAIL, "InternalError"},
		{500, "[{\"kind\":\"Status\"}]", 0, CTL_EUNAVAIL, "InternalError"},
		{403, BIN("{\"kind\":\"Sta\0tus\",\"reason\":\"Nope\"}"), CTL_EAUTH, "Forbidden"},
		{401, BIN("\0\0\0\0"), CTL_EAUTH, "Unauthorized"},
		{503, "\xff\xfe<html>\xc3\x28</html>", 0, CTL_EUNAVAIL, "ServiceUnavailable"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].body);
		char *body = xmalloc(len);
		memcpy(body, cases[i].body, len);
		CHECK_INT(ctl_kube_status_error(cases[i].status, body, len), cases[i].code);
		const struct ctl_error *e = ctl_error_last();
		CHECK_INT(e->http_status, cases[i].status);
		if (strcmp(e->reason, cases[i].reason) != 0)
			fprintf(stderr, "case %zu: reason %s\n", i, e->reason);
		CHECK_STR(e->reason, cases[i].reason);
		CHECK(strlen(e->message) < sizeof(e->message));
		free(body);
	}
}

TEST(status_body_non_status_snippet_is_printable)
{
	static const char body[] = "\x01\x02<h1>\0\xff\xfe\x1b[31mred\r\n";
	char *copy = xmalloc(sizeof(body) - 1);
	memcpy(copy, body, sizeof(body) - 1);
	CHECK_INT(ctl_kube_status_error(502, copy, sizeof(body) - 1), CTL_EUNAVAIL);
	for (const char *p = ctl_error_last()->message; *p; p++)
		CHECK(*p >= 0x20 && *p < 0x7f);
	free(copy);
}

TEST(status_body_huge_and_deep)
{
	/* 20 MB of message, and a Status nested past cJSON's limit. */
	struct ctl_buf b = CTL_BUF_INIT;
	ctl_buf_puts(&b, "{\"kind\":\"Status\",\"reason\":\"TooLarge\",\"message\":\"");
	char *fill = xmalloc(MB);
	memset(fill, 'm', MB);
	for (int i = 0; i < 20; i++)
		ctl_buf_append(&b, fill, MB);
	ctl_buf_puts(&b, "\"}");
	CHECK_INT(ctl_kube_status_error(500, b.ptr, b.len), CTL_EUNAVAIL);
	CHECK_STR(ctl_error_last()->reason, "TooLarge");
	CHECK(strlen(ctl_error_last()->message) < sizeof(ctl_error_last()->message));
	free(fill);
	ctl_buf_dispose(&b);

	char *deep = nested(100000, "{\"kind\":\"Status\",\"reason\":\"Deep\",\"details\":", '[', ']', "}");
	CHECK_INT(ctl_kube_status_error(409, deep, strlen(deep)), CTL_ECONFLICT);
	CHECK_STR(ctl_error_last()->reason, "Conflict"); /* not parsed, so not trusted */
	free(deep);
}

/* --- the client against a hostile server ---------------------------------- */

struct rig {
	struct canned_server s;
	struct ctl_kube_client *c;
};

static void rig_start(struct rig *r, size_t max_body)
{
	struct ctl_kubeconfig *cfg = NULL;
	/* The client hangs up mid-answer in some cases: the canned server's
	 * write must fail with EPIPE, not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	canned_start(&r->s);
	char *yaml = xasprintf("current-context: t\ncontexts: [{name: t, context: {cluster: t}}]\n"
			       "clusters: [{name: t, cluster: {server: '%s'}}]\n", r->s.base);
	if (ctl_kubeconfig_parse(&cfg, yaml, strlen(yaml), NULL, NULL) || ctl_kube_client_new(&r->c, cfg))
		abort();
	ctl_kube_client_set_limits(r->c, max_body, 10000);
	free(yaml);
}

static void rig_stop(struct rig *r)
{
	ctl_kube_client_free(r->c);
	canned_stop(&r->s);
}

static const struct ctl_gvr pools = {"acrpool.dev", "v1alpha1", "agentpools"};

TEST(client_truncated_and_wrong_bodies)
{
	static const struct {
		int status;
		const char *body;
		int code;
		const char *reason;
	} cases[] = {
		{200, "{\"kind\":\"AgentPool\",\"metadata\":{\"name\":\"p1\"", CTL_EINVALID, "InvalidResponse"},
		{200, "<html>login</html>", CTL_EINVALID, "InvalidResponse"},
		{200, "{\"a\":\"\\ud800\"}", CTL_EINVALID, "InvalidResponse"},
		{404, "{\"kind\":\"Status\",\"reason\":404}", CTL_ENOTFOUND, "NotFound"},
		{409, "{\"kind\":\"Status\",\"reason\":\"Conflict\",\"message\":\"trunc", CTL_ECONFLICT, "Conflict"},
		{500, "\xff\xfe\xfd", CTL_EUNAVAIL, "InternalError"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rig r;
		cJSON *out = NULL;
		rig_start(&r, 0);
		canned_reply(&r.s, 0, cases[i].status, NULL, cases[i].body);
		CHECK_INT(ctl_kube_get(&out, r.c, &pools, "default", "p1", NULL), cases[i].code);
		CHECK(out == NULL);
		CHECK_STR(ctl_error_last()->reason, cases[i].reason);
		cJSON_Delete(out);
		rig_stop(&r);
	}
}

TEST(client_deeply_nested_body_is_invalid)
{
	struct rig r;
	cJSON *out = NULL;
	char *deep = nested(50000, "", '[', ']', "");
	rig_start(&r, 0);
	canned_reply(&r.s, 0, 200, NULL, deep);
	CHECK_INT(ctl_kube_get(&out, r.c, &pools, "default", "p1", NULL), CTL_EINVALID);
	CHECK(out == NULL);
	rig_stop(&r);
	free(deep);
}

TEST(client_body_over_the_cap_is_toobig)
{
	struct rig r;
	cJSON *out = NULL;
	char *big = xmalloc(4 * MB + 1);
	memset(big, ' ', 4 * MB);
	big[0] = '{';
	big[4 * MB - 1] = '}';
	big[4 * MB] = '\0';
	rig_start(&r, 1 * MB);
	canned_reply(&r.s, 0, 200, NULL, big);
	CHECK_INT(ctl_kube_get(&out, r.c, &pools, "default", "p1", NULL), CTL_ETOOBIG);
	CHECK(out == NULL);
	rig_stop(&r);
	free(big);
}

struct stream {
	struct ctl_watch_framer f;
	struct lines l;
	int events, bad;
};

static int on_event_line(const char *line, size_t len, void *arg)
{
	struct stream *s = arg;
	struct ctl_watch_event ev;
	count_line(line, len, &s->l);
	if (ctl_watch_event_parse(&ev, line, len) == 0) {
		s->events++;
		ctl_watch_event_dispose(&ev);
	} else {
		s->bad++;
	}
	return 0;
}

static int on_chunk(const char *data, size_t len, void *arg)
{
	struct stream *s = arg;
	return ctl_watch_framer_feed(&s->f, data, len, on_event_line, s);
}

TEST(client_watch_20mb_line_aborts_the_stream)
{
	/* A real watch answer whose second line is 20 MB: the framer's 1 MB
	 * cap ends the stream with CTL_ETOOBIG, after the first event. */
	struct rig r;
	struct stream s = {0};
	struct ctl_buf body = CTL_BUF_INIT;
	char *fill = xmalloc(MB);
	memset(fill, 'w', MB);
	ctl_buf_puts(&body, "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"5\"}}}\n"
			    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"");
	for (int i = 0; i < 20; i++)
		ctl_buf_append(&body, fill, MB);
	ctl_buf_puts(&body, "\"}}}\n");
	rig_start(&r, 0);
	canned_reply(&r.s, 0, 200, NULL, body.ptr);
	ctl_watch_framer_init(&s.f, 1 * MB);
	struct ctl_kube_watch_opts opts = {.resource_version = "4", .allow_bookmarks = 1};
	CHECK_INT(ctl_kube_watch(r.c, &pools, NULL, &opts, on_chunk, &s), CTL_ETOOBIG);
	CHECK_INT(s.events, 1);
	CHECK(s.f.partial.cap <= 2 * MB);
	ctl_watch_framer_dispose(&s.f);
	rig_stop(&r);
	ctl_buf_dispose(&body);
	free(fill);
}

TEST(client_watch_garbage_lines_are_reported_per_line)
{
	/* Each bad line is its own error; good ones around it still arrive,
	 * BOOKMARK and ERROR 410 included. */
	static const char body[] =
		"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"resourceVersion\":\"5\"}}}\n"
		"{\"type\":\"ADDED\",\"object\":[]}\n"
		"\xff\xfe\n"
		"{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"9\"}}}\r\n"
		"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"reason\":\"Expired\"}}\n"
		"{\"type\":\"MODIFIED\",\"object\":{\"metad";
	struct rig r;
	struct stream s = {0};
	rig_start(&r, 0);
	canned_reply(&r.s, 0, 200, NULL, body);
	ctl_watch_framer_init(&s.f, 4096);
	struct ctl_kube_watch_opts opts = {.resource_version = "4", .allow_bookmarks = 1};
	CHECK_INT(ctl_kube_watch(r.c, &pools, NULL, &opts, on_chunk, &s), 0);
	CHECK_INT(s.events, 3);
	CHECK_INT(s.bad, 2);
	CHECK(s.f.partial.len > 0); /* the cut-off last line, never handed over */
	ctl_watch_framer_dispose(&s.f);
	rig_stop(&r);
}

/* --- kubeconfig ------------------------------------------------------------ */

#define KC_HEAD "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
#define KC_CLUSTER "clusters: [{name: k, cluster: {server: 'https://k:6443'}}]\n"

TEST(kubeconfig_malformed_documents_are_invalid)
{
	static const struct {
		const char *yaml;
		size_t len; /* 0: strlen */
	} cases[] = {
		{"", 0},
		{"---\n", 0},
		{"just a scalar", 0},
		{"- a\n- b\n", 0},
		{"current-context: c\n\tcontexts: []\n", 0},                 /* tab indentation */
		{"current-context: 'c\n", 0},                                 /* unterminated quote */
		{"current-context: c\ncontexts: {c: {cluster: k}}\n", 0},    /* mapping, not list */
		{"current-context: c\ncontexts: [c]\n", 0},                   /* item not a mapping */
		{"current-context: [c]\n", 0},                                /* wrong type */
		{"contexts: []\n", 0},                                        /* no current-context */
		{KC_HEAD "clusters: [{name: k, cluster: {server: [https://k]}}]\nusers: [{name: u, user: {}}]\n", 0},
		{KC_HEAD "clusters: [{name: k, cluster: {server: 'ftp://k'}}]\nusers: [{name: u, user: {}}]\n", 0},
		{KC_HEAD "clusters: [{name: k, cluster: {}}]\nusers: [{name: u, user: {}}]\n", 0},
		{KC_HEAD "clusters: [{name: k}]\nusers: [{name: u, user: {}}]\n", 0},
		{KC_HEAD "clusters: [{name: k, cluster: {server: 'https://k', certificate-authority-data: QUJD}}]\n"
			 "users: [{name: u, user: {client-certificate-data: 'QUJ', client-key-data: QUJD}}]\n", 0},
		{KC_HEAD "clusters: [{name: k, cluster: {server: 'https://k', certificate-authority-data: 'QU=D'}}]\nusers: [{name: u, user: {}}]\n", 0},
		{KC_HEAD "clusters: [{name: k, cluster: {server: 'https://k', certificate-authority-data: 'QUJ*'}}]\nusers: [{name: u, user: {}}]\n", 0},
		{KC_HEAD "clusters: [{name: k, cluster: {server: 'https://k', insecure-skip-tls-verify: maybe}}]\nusers: [{name: u, user: {}}]\n", 0},
		{KC_HEAD KC_CLUSTER "users: [{name: u, user: {client-certificate: c.crt}}]\n", 0},   /* cert, no key */
		{KC_HEAD KC_CLUSTER "users: [{name: u, user: {auth-provider: {name: azure}}}]\n", 0},
		{KC_HEAD KC_CLUSTER "users: [{name: u, user: {exec: {command: k}}}]\n", 0},           /* no apiVersion */
		{KC_HEAD KC_CLUSTER "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: k, args: [a, {b: c}]}}}]\n", 0},
		{KC_HEAD KC_CLUSTER "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: k, env: [{value: v}]}}}]\n", 0},
		{KC_HEAD KC_CLUSTER "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: k, env: [{name: 'A=B'}]}}}]\n", 0},
		{KC_HEAD KC_CLUSTER "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: k, env: [x]}}}]\n", 0},
		{KC_HEAD KC_CLUSTER "users: [{name: u, user: {exec: []}}]\n", 0},
		{KC_HEAD KC_CLUSTER "users: [{name: other, user: {}}]\n", 0},                           /* user not found */
		{BIN(KC_HEAD KC_CLUSTER "users: [{name: u, user: {}}]\n\0garbage")},                   /* NUL inside */
		{"current-context: \xff\xfe\n", 0},                                                  /* invalid UTF-8 */
		{"current-context: c\ncontexts: &a [*a]\n", 0},                                      /* self-referencing alias */
		{"current-context: c\ncontexts: *nowhere\n", 0},                                     /* undefined alias */
		{"a: &x b\na: &x c\nq: *x\ncurrent-context: 1\n", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctl_kubeconfig *cfg = (struct ctl_kubeconfig *)1;
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].yaml);
		char *yaml = xmalloc(len ? len : 1);
		memcpy(yaml, cases[i].yaml, len);
		int rc = ctl_kubeconfig_parse(&cfg, yaml, len, NULL, NULL);
		if (rc != CTL_EINVALID)
			fprintf(stderr, "case %zu: rc %d: %s\n", i, rc, cases[i].yaml);
		CHECK_INT(rc, CTL_EINVALID);
		CHECK(cfg == NULL);
		ctl_kubeconfig_free(cfg);
		free(yaml);
	}
}

TEST(kubeconfig_deep_nesting_and_alias_bombs)
{
	/* Deep flow sequences, and a billion-laughs alias tree (libyaml shares
	 * aliased nodes, so it stays small). libyaml 0.2.5 has no nesting
	 * limit and its cost grows with the square of the depth (40000 levels
	 * take seconds, 100000 half a minute under ASan): reported; kept
	 * small here so the case stays fast. */
	char *deep = nested(5000, "current-context: c\nx: ", '[', ']', "\n");
	struct ctl_kubeconfig *cfg = NULL;
	CHECK_INT(ctl_kubeconfig_parse(&cfg, deep, strlen(deep), NULL, NULL), CTL_EINVALID);
	CHECK(cfg == NULL);
	free(deep);

	struct ctl_buf b = CTL_BUF_INIT;
	ctl_buf_puts(&b, "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
	for (int i = 1; i < 10; i++)
		ctl_buf_printf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i - 1,
			       i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
	ctl_buf_puts(&b, "current-context: c\ncontexts: *a9\n");
	CHECK_INT(ctl_kubeconfig_parse(&cfg, b.ptr, b.len, NULL, NULL), CTL_EINVALID); /* items are not mappings */
	CHECK(cfg == NULL);
	ctl_buf_dispose(&b);
}

TEST(kubeconfig_huge_inline_data_is_decoded_once)
{
	/* 8 MB of base64 certificate: decoded, not copied around. */
	struct ctl_buf b = CTL_BUF_INIT;
	struct ctl_kubeconfig *cfg = NULL;
	char *fill = xmalloc(MB);
	memset(fill, 'A', MB);
	b.max = 32 * MB;
	ctl_buf_puts(&b, KC_HEAD "users: [{name: u, user: {}}]\nclusters:\n- name: k\n  cluster:\n    server: https://k\n"
			 "    certificate-authority-data: ");
	for (int i = 0; i < 8; i++)
		ctl_buf_append(&b, fill, MB);
	ctl_buf_puts(&b, "\n");
	CHECK_INT(ctl_kubeconfig_parse(&cfg, b.ptr, b.len, NULL, NULL), 0);
	CHECK(cfg && cfg->ca_len == 6 * MB);
	ctl_kubeconfig_free(cfg);
	ctl_buf_dispose(&b);
	free(fill);
}

/* --- times in status -------------------------------------------------------- */

TEST(time_parse_hostile_strings)
{
	static const char *const bad[] = {
		"", "T", "2026", "2026-11-23", "2026-11-23T04:33", "2026-11-23T04:33:14",
		"2026-11-23T04:33:14+0100", "2026-11-23T04:33:14+01", "2026-11-23T04:33:14.Z.Z",
		"2026-11-23T25:00:00Z", "2026-00-10T00:00:00Z", "2026-11-32T00:00:00Z",
		"99999-11-23T04:33:14Z", "2026-11-23T04:33:14Z\n", "\xff\xfe-11-23T04:33:14Z",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		long long t = 0;
		char *s = xstrdup(bad[i]); /* exact size on the heap, as from cJSON */
		if (ctl_time_parse(s, &t) != CTL_EINVALID)
			fprintf(stderr, "case %zu: %s\n", i, bad[i]);
		CHECK_INT(ctl_time_parse(s, &t), CTL_EINVALID);
		free(s);
	}
}

/*
 * Found by tests/fuzz/fuzz_scalars: ctl_time_parse() used to step six
 * bytes over a UTC offset that sscanf had read from fewer ("+1:00"), past
 * the string's NUL (ASan: heap-buffer-overflow READ). Reachable from an
 * AgentPool's status.lastBusyTime and status.drainStartedAt.
 */
TEST(time_parse_short_utc_offset_is_refused_without_reading_past_the_end)
{
	long long t = 0;
	char *s = xstrdup("2026-11-23T05:33:14+1:00");
	CHECK_INT(ctl_time_parse(s, &t), CTL_EINVALID);
	free(s);
	s = xstrdup("2026--1-23T05:3:1.50+1:00"); /* the fuzzer's own input */
	CHECK_INT(ctl_time_parse(s, &t), CTL_EINVALID);
	free(s);
}

TEST_MAIN(T(watch_20mb_line_against_1mb_cap_in_chunks), T(watch_20mb_line_against_1mb_cap_in_one_piece),
	  T(watch_line_exactly_at_cap_passes_one_over_fails), T(watch_nul_bytes_and_bare_newlines_are_framed_not_trusted),
	  T(watch_event_malformed_lines_are_invalid), T(watch_event_invalid_utf8_is_carried_not_crashed_on),
	  T(watch_event_cjson_leniencies_are_harmless), T(watch_event_nesting_past_cjson_limit_is_invalid), T(watcher_wrong_types_in_events_leave_the_resume_point),
	  T(watcher_error_events_with_wrong_types), T(watcher_hostile_list_pages_start_over),
	  T(status_body_wrong_types_fall_back_to_the_http_status), T(status_body_non_status_snippet_is_printable),
	  T(status_body_huge_and_deep), T(client_truncated_and_wrong_bodies), T(client_deeply_nested_body_is_invalid),
	  T(client_body_over_the_cap_is_toobig), T(client_watch_20mb_line_aborts_the_stream),
	  T(client_watch_garbage_lines_are_reported_per_line), T(kubeconfig_malformed_documents_are_invalid),
	  T(kubeconfig_deep_nesting_and_alias_bombs), T(kubeconfig_huge_inline_data_is_decoded_once),
	  T(time_parse_hostile_strings), T(time_parse_short_utc_offset_is_refused_without_reading_past_the_end))
