/* Unit tests for the watcher state machine (controller/watch.c), driven
 * with canned results, and for the informer end to end against a canned
 * API server on a local socket: a list, a watch stream split mid-line with
 * a BOOKMARK, a 410, the relist. */
#include "test.h"

#include "canned_http.h"

#include "error.h"
#include "informer.h"
#include "kube.h"
#include "kubeconfig.h"
#include "objects.h"
#include "watch.h"
#include "xalloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

/* --- the state machine with canned results ------------------------------ */

static cJSON *page(const char *rv, const char *cont)
{
	cJSON *p = cJSON_CreateObject();
	cJSON *m = cJSON_AddObjectToObject(p, "metadata");
	if (rv)
		cJSON_AddStringToObject(m, "resourceVersion", rv);
	if (cont)
		cJSON_AddStringToObject(m, "continue", cont);
	cJSON_AddArrayToObject(p, "items");
	return p;
}

/* Feed one canned line to the watcher; returns its effect. */
static enum ctl_watcher_effect feed(struct ctl_watcher *w, const char *line)
{
	struct ctl_watch_event ev;
	CHECK_INT(ctl_watch_event_parse(&ev, line, strlen(line)), 0);
	enum ctl_watcher_effect e = ctl_watcher_on_event(w, &ev);
	ctl_watch_event_dispose(&ev);
	return e;
}

/* Take the watcher from EMPTY through a one-page list at rv to WATCHING. */
static void list_and_watch(struct ctl_watcher *w, const char *rv)
{
	struct ctl_watcher_action a;
	ctl_watcher_next(w, &a);
	CHECK_INT(a.kind, CTL_WATCHER_DO_LIST);
	cJSON *p = page(rv, NULL);
	CHECK_INT(ctl_watcher_on_list(w, 0, p), 1);
	cJSON_Delete(p);
	ctl_watcher_next(w, &a);
	CHECK_INT(a.kind, CTL_WATCHER_DO_WATCH);
	CHECK_STR(a.resource_version, rv);
	CHECK_INT(w->state, CTL_WATCHER_WATCHING);
}

#define ADDED(name, rv) \
	"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"" name "\",\"resourceVersion\":\"" rv "\"}}}"
#define BOOKMARK(rv) "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"" rv "\"}}}"
#define ERROR_410 \
	"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"status\":\"Failure\",\"code\":410," \
	"\"reason\":\"Expired\",\"message\":\"too old resource version: 5 (20)\"}}"

TEST(watcher_lists_then_watches_from_the_list_version)
{
	struct ctl_watcher w;
	struct ctl_watcher_action a;
	ctl_watcher_init(&w, 0, 0, 1);
	CHECK_INT(w.state, CTL_WATCHER_EMPTY);
	ctl_watcher_next(&w, &a);
	CHECK_INT(a.kind, CTL_WATCHER_DO_LIST);
	CHECK(a.continue_token == NULL);
	CHECK_INT(a.delay_ms, 0);
	CHECK_INT(w.state, CTL_WATCHER_LISTING);
	cJSON *p = page("100", NULL);
	CHECK_INT(ctl_watcher_on_list(&w, 0, p), 1);
	cJSON_Delete(p);
	CHECK_INT(w.state, CTL_WATCHER_LISTED);
	ctl_watcher_next(&w, &a);
	CHECK_INT(a.kind, CTL_WATCHER_DO_WATCH);
	CHECK_STR(a.resource_version, "100");
	CHECK_INT(a.delay_ms, 0);
	CHECK_INT(feed(&w, ADDED("a", "101")), CTL_WATCHER_APPLY);
	CHECK_INT(feed(&w, "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"102\"}}}"),
		  CTL_WATCHER_APPLY);
	CHECK_INT(feed(&w, "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"103\"}}}"),
		  CTL_WATCHER_DELETE);
	CHECK_STR(w.resource_version, "103");
	ctl_watcher_dispose(&w);
}

TEST(watcher_follows_continue_pages)
{
	struct ctl_watcher w;
	struct ctl_watcher_action a;
	ctl_watcher_init(&w, 0, 0, 1);
	ctl_watcher_next(&w, &a);
	cJSON *p1 = page("50", "tok1"), *p2 = page("50", "tok2"), *p3 = page("50", NULL);
	CHECK_INT(ctl_watcher_on_list(&w, 0, p1), 0);
	ctl_watcher_next(&w, &a);
	CHECK_INT(a.kind, CTL_WATCHER_DO_LIST);
	CHECK_STR(a.continue_token, "tok1");
	CHECK_INT(ctl_watcher_on_list(&w, 0, p2), 0);
	ctl_watcher_next(&w, &a);
	CHECK_STR(a.continue_token, "tok2");
	CHECK_INT(ctl_watcher_on_list(&w, 0, p3), 1);
	ctl_watcher_next(&w, &a);
	CHECK_INT(a.kind, CTL_WATCHER_DO_WATCH);
	CHECK_STR(a.resource_version, "50");
	cJSON_Delete(p1);
	cJSON_Delete(p2);
	cJSON_Delete(p3);
	ctl_watcher_dispose(&w);
}

TEST(watcher_expired_continue_token_restarts_the_list)
{
	struct ctl_watcher w;
	struct ctl_watcher_action a;
	ctl_watcher_init(&w, 0, 0, 1);
	ctl_watcher_next(&w, &a);
	cJSON *p1 = page("50", "tok1");
	CHECK_INT(ctl_watcher_on_list(&w, 0, p1), 0);
	cJSON_Delete(p1);
	ctl_watcher_next(&w, &a);
	CHECK_INT(ctl_watcher_on_list(&w, CTL_EGONE, NULL), 0);
	CHECK_INT(w.state, CTL_WATCHER_EMPTY);
	ctl_watcher_next(&w, &a);
	CHECK_INT(a.kind, CTL_WATCHER_DO_LIST);
	CHECK(a.continue_token == NULL); /* from the first page again */
	ctl_watcher_dispose(&w);
}

TEST(watcher_bookmark_advances_the_resume_point)
{
	struct ctl_watcher w;
	struct ctl_watcher_action a;
	ctl_watcher_init(&w, 0, 0, 1);
	list_and_watch(&w, "10");
	CHECK_INT(feed(&w, BOOKMARK("15")), CTL_WATCHER_NOTHING);
	CHECK_STR(w.resource_version, "15");
	ctl_watcher_on_watch_end(&w, 0);
	ctl_watcher_next(&w, &a);
	CHECK_INT(a.kind, CTL_WATCHER_DO_WATCH);
	CHECK_STR(a.resource_version, "15");
	ctl_watcher_dispose(&w);
}

TEST(watcher_resumes_at_once_after_a_normal_end)
{
	struct ctl_watcher w;
	struct ctl_watcher_action a;
	ctl_watcher_init(&w, 0, 0, 1);
	list_and_watch(&w, "10");
	feed(&w, ADDED("a", "11"));
	ctl_watcher_on_watch_end(&w, 0);
	CHECK_INT(w.state, CTL_WATCHER_LISTED);
	ctl_watcher_next(&w, &a);
	CHECK_INT(a.kind, CTL_WATCHER_DO_WATCH);
	CHECK_STR(a.resource_version, "11");
	CHECK_INT(a.delay_ms, 0);
	ctl_watcher_dispose(&w);
}

TEST(watcher_empty_stream_end_backs_off)
{
	struct ctl_watcher w;
	struct ctl_watcher_action a;
	int nonzero = 0;
	ctl_watcher_init(&w, 100, 1000, 7);
	list_and_watch(&w, "10");
	for (int i = 0; i < 5; i++) {
		ctl_watcher_on_watch_end(&w, 0);
		ctl_watcher_next(&w, &a);
		CHECK_INT(a.kind, CTL_WATCHER_DO_WATCH);
		CHECK_STR(a.resource_version, "10");
		nonzero += a.delay_ms > 0;
	}
	CHECK(nonzero > 0);
	CHECK_INT(w.failures, 5);
	ctl_watcher_dispose(&w);
}

TEST(watcher_error_410_event_relists)
{
	struct ctl_watcher w;
	struct ctl_watcher_action a;
	ctl_watcher_init(&w, 0, 0, 1);
	list_and_watch(&w, "10");
	CHECK_INT(feed(&w, ERROR_410), CTL_WATCHER_STOP);
	CHECK_INT(w.state, CTL_WATCHER_EMPTY);
	CHECK(w.resource_version == NULL);
	/* The aborted stream's end must not undo the decision. */
	ctl_watcher_on_watch_end(&w, CTL_EGONE);
	ctl_watcher_on_watch_end(&w, CTL_EUNAVAIL);
	ctl_watcher_next(&w, &a);
	CHECK_INT(a.kind, CTL_WATCHER_DO_LIST);
	CHECK(a.continue_token == NULL);
	CHECK_INT(a.delay_ms, 0);
	ctl_watcher_dispose(&w);
}

TEST(watcher_http_410_relists)
{
	struct ctl_watcher w;
	struct ctl_watcher_action a;
	ctl_watcher_init(&w, 0, 0, 1);
	list_and_watch(&w, "10");
	ctl_watcher_on_watch_end(&w, CTL_EGONE);
	CHECK_INT(w.state, CTL_WATCHER_EMPTY);
	ctl_watcher_next(&w, &a);
	CHECK_INT(a.kind, CTL_WATCHER_DO_LIST);
	ctl_watcher_dispose(&w);
}

TEST(watcher_other_error_event_rewatches_after_backoff)
{
	struct ctl_watcher w;
	struct ctl_watcher_action a;
	ctl_watcher_init(&w, 0, 0, 1);
	list_and_watch(&w, "10");
	feed(&w, ADDED("a", "12"));
	CHECK_INT(feed(&w, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":500,\"reason\":\"InternalError\"}}"),
		  CTL_WATCHER_STOP);
	CHECK_INT(w.state, CTL_WATCHER_LISTED);
	CHECK_INT(w.failures, 1);
	/* Whatever else was in the chunk is ignored once the stream is given up. */
	CHECK_INT(feed(&w, ADDED("b", "13")), CTL_WATCHER_NOTHING);
	ctl_watcher_next(&w, &a);
	CHECK_INT(a.kind, CTL_WATCHER_DO_WATCH);
	CHECK_STR(a.resource_version, "12");
	CHECK(a.delay_ms >= 0 && a.delay_ms <= 200);
	ctl_watcher_dispose(&w);
}

TEST(watcher_backoff_doubles_with_full_jitter_up_to_the_cap)
{
	struct ctl_watcher w;
	struct ctl_watcher_action a;
	long cap = 100, sum = 0;
	ctl_watcher_init(&w, 100, 1000, 42);
	list_and_watch(&w, "10");
	for (int i = 0; i < 12; i++) {
		ctl_watcher_on_watch_end(&w, CTL_EUNAVAIL);
		ctl_watcher_next(&w, &a);
		CHECK(a.delay_ms >= 0 && a.delay_ms <= cap);
		sum += a.delay_ms;
		cap = cap * 2 > 1000 ? 1000 : cap * 2;
	}
	CHECK(sum > 0);
	CHECK(sum <= 100 + 200 + 400 + 800 + 8 * 1000);
	/* An event proves the connection works: the backoff starts over. */
	feed(&w, ADDED("a", "11"));
	ctl_watcher_on_watch_end(&w, CTL_EUNAVAIL);
	ctl_watcher_next(&w, &a);
	CHECK(a.delay_ms <= 100);
	/* The same seed gives the same delays. */
	struct ctl_watcher w2;
	ctl_watcher_init(&w2, 100, 1000, 42);
	list_and_watch(&w2, "10");
	ctl_watcher_on_watch_end(&w2, CTL_EUNAVAIL);
	ctl_watcher_next(&w2, &a);
	long first = a.delay_ms;
	ctl_watcher_dispose(&w2);
	ctl_watcher_init(&w2, 100, 1000, 42);
	list_and_watch(&w2, "10");
	ctl_watcher_on_watch_end(&w2, CTL_EUNAVAIL);
	ctl_watcher_next(&w2, &a);
	CHECK_INT(a.delay_ms, first);
	ctl_watcher_dispose(&w2);
	ctl_watcher_dispose(&w);
}

TEST(watcher_list_failure_starts_over_after_backoff)
{
	struct ctl_watcher w;
	struct ctl_watcher_action a;
	ctl_watcher_init(&w, 100, 1000, 3);
	ctl_watcher_next(&w, &a);
	CHECK_INT(ctl_watcher_on_list(&w, CTL_EUNAVAIL, NULL), 0);
	CHECK_INT(w.state, CTL_WATCHER_EMPTY);
	CHECK_INT(w.failures, 1);
	ctl_watcher_next(&w, &a);
	CHECK_INT(a.kind, CTL_WATCHER_DO_LIST);
	CHECK(a.delay_ms <= 100);
	/* A list without a resourceVersion cannot be watched from. */
	cJSON *p = page(NULL, NULL);
	CHECK_INT(ctl_watcher_on_list(&w, 0, p), 0);
	cJSON_Delete(p);
	CHECK_INT(w.state, CTL_WATCHER_EMPTY);
	ctl_watcher_dispose(&w);
}

/* --- a client for the canned server (canned_http.h) ---------------------- */

/* Does request i's first line contain what? */
static int request_has(struct canned_server *s, size_t i, const char *what)
{
	const char *r = canned_request(s, 0, i);
	return r && canned_line_has(r, what);
}

static struct ctl_kube_client *client_for(const struct canned_server *s)
{
	struct ctl_kubeconfig *cfg;
	struct ctl_kube_client *c;
	char *yaml = xasprintf("current-context: t\n"
			       "contexts: [{name: t, context: {cluster: t, user: t}}]\n"
			       "clusters: [{name: t, cluster: {server: '%s'}}]\n"
			       "users: [{name: t, user: {token: secret}}]\n", s->base);
	CHECK_INT(ctl_kubeconfig_parse(&cfg, yaml, strlen(yaml), NULL, NULL), 0);
	CHECK_INT(ctl_kube_client_new(&c, cfg), 0);
	free(yaml);
	return c;
}

/* --- the informer end to end --------------------------------------------- */

struct seen {
	pthread_mutex_t mu;
	pthread_cond_t added;
	int adds, updates, deletes;
	char last_delete[64];
};

static void seen_add(const char *key, const struct ctl_obj *obj, void *arg)
{
	struct seen *s = arg;
	pthread_mutex_lock(&s->mu);
	s->adds++;
	pthread_cond_broadcast(&s->added);
	pthread_mutex_unlock(&s->mu);
}

/* Wait until the handlers have seen n adds, at most 5 s. Returns 1 when
 * they have. */
static int seen_wait_adds(struct seen *s, int n)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&s->mu);
	while (s->adds < n && pthread_cond_timedwait(&s->added, &s->mu, &until) == 0)
		;
	int reached = s->adds >= n;
	pthread_mutex_unlock(&s->mu);
	return reached;
}

static void seen_update(const char *key, const struct ctl_obj *old, const struct ctl_obj *obj, void *arg)
{
	struct seen *s = arg;
	pthread_mutex_lock(&s->mu);
	s->updates++;
	pthread_mutex_unlock(&s->mu);
}

static void seen_delete(const char *key, const struct ctl_obj *old, void *arg)
{
	struct seen *s = arg;
	pthread_mutex_lock(&s->mu);
	s->deletes++;
	snprintf(s->last_delete, sizeof(s->last_delete), "%s", key);
	pthread_mutex_unlock(&s->mu);
}

#define THING(name, rv) "{\"metadata\":{\"namespace\":\"ns\",\"name\":\"" name "\",\"resourceVersion\":\"" rv "\"}}"
#define EVENT(type, obj) "{\"type\":\"" type "\",\"object\":" obj "}\n"

TEST(informer_relists_after_gone_and_reports_what_was_deleted_meanwhile)
{
	struct canned_server s;
	struct seen seen = {.mu = PTHREAD_MUTEX_INITIALIZER, .added = PTHREAD_COND_INITIALIZER};
	struct ctl_informer *inf;
	canned_start(&s);
	/* 0: the list */
	canned_reply(&s, 0, 200, NULL,
		     "{\"kind\":\"ThingList\",\"apiVersion\":\"example.com/v1\",\"metadata\":{\"resourceVersion\":\"10\"},"
		     "\"items\":[" THING("a", "5") "," THING("b", "6") "]}");
	/* 1: a watch, split mid-line, a bookmark, then a normal end */
	canned_stream(&s, NULL, 200, CANNED_CLOSE, EVENT("ADDED", THING("c", "11")) "{\"type\":\"MODI",
		      "FIED\",\"object\":" THING("a", "12") "}\n" EVENT("BOOKMARK", "{\"metadata\":{\"resourceVersion\":\"15\"}}"),
		      NULL);
	/* 2: the resume from the bookmark: too old */
	canned_stream(&s, NULL, 200, CANNED_CLOSE, ERROR_410 "\n", NULL);
	/* 3: the relist: b was deleted while we were away */
	canned_reply(&s, 0, 200, NULL,
		     "{\"kind\":\"ThingList\",\"apiVersion\":\"example.com/v1\",\"metadata\":{\"resourceVersion\":\"20\"},"
		     "\"items\":[" THING("a", "12") "," THING("c", "11") "]}");
	/* 4: a quiet stream, open until we stop */
	canned_stream(&s, NULL, 200, CANNED_HOLD, NULL);
	struct ctl_kube_client *c = client_for(&s);
	const char *const namespaces[] = {"ns", NULL};
	struct ctl_informer_opts opts = {
		.gvr = {"example.com", "v1", "things"},
		.namespaces = namespaces,
		.backoff_base_ms = 10,
	};
	struct ctl_informer_handlers h = {seen_add, seen_update, seen_delete, &seen};
	CHECK_INT(ctl_informer_new(&inf, c, &opts, &h), 0);
	CHECK_INT(ctl_informer_has_synced(inf), 0);
	CHECK_INT(ctl_informer_start(inf), 0);
	CHECK_INT(ctl_informer_wait_synced(inf, 5000), 0);
	/* c came in the watch's first part, so the cut-off line after it
	 * waits in the framer: only now does the rest of the line go out. */
	CHECK(seen_wait_adds(&seen, 3));
	canned_release(&s);
	/* The quiet watch goes out after the relist and its callbacks. */
	CHECK(canned_wait_requests(&s, 5, 5000));
	CHECK(canned_request(&s, 0, 5) == NULL); /* and nothing after it */

	CHECK(request_has(&s, 0, "GET /apis/example.com/v1/namespaces/ns/things?limit=500 "));
	CHECK(request_has(&s, 1, "watch=true&resourceVersion=10&allowWatchBookmarks=true&timeoutSeconds=290"));
	CHECK(request_has(&s, 2, "resourceVersion=15"));
	CHECK(!request_has(&s, 3, "watch=true"));
	CHECK(request_has(&s, 4, "resourceVersion=20"));

	struct ctl_obj *o;
	struct ctl_store *store = ctl_informer_store(inf);
	CHECK_INT(ctl_store_len(store), 2);
	CHECK_INT(ctl_store_get(&o, store, "ns/b"), CTL_ENOTFOUND);
	CHECK_INT(ctl_store_get(&o, store, "ns/a"), 0);
	CHECK_STR(o->resource_version, "12");
	CHECK(cJSON_GetObjectItem(o->json, "kind") && strcmp(cJSON_GetObjectItem(o->json, "kind")->valuestring, "Thing") == 0);
	ctl_obj_unref(o);

	pthread_mutex_lock(&seen.mu);
	CHECK_INT(seen.adds, 3);    /* a, b from the list; c from the watch */
	CHECK_INT(seen.updates, 1); /* a at 12; the relist finds a and c unchanged */
	CHECK_INT(seen.deletes, 1);
	CHECK_STR(seen.last_delete, "ns/b");
	pthread_mutex_unlock(&seen.mu);

	struct ctl_informer_stats st;
	ctl_informer_stats(inf, &st);
	CHECK_INT(st.lists, 2);
	CHECK_INT(st.relists, 1);
	CHECK_INT(st.watch_starts, 3);
	CHECK_INT(st.watch_restarts, 2);
	CHECK_INT(st.events, 4);

	/* The quiet stream is still open: stop must abort it, and promptly. */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ctl_informer_stop(inf);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(t1.tv_sec - t0.tv_sec < 3);
	ctl_informer_free(inf);
	ctl_kube_client_free(c);
	canned_stop(&s);
}

TEST(informer_caches_objects_without_managed_fields_or_last_applied)
{
#define FAT(name, rv) "{\"metadata\":{\"namespace\":\"ns\",\"name\":\"" name "\",\"resourceVersion\":\"" rv "\"," \
	"\"managedFields\":[{\"manager\":\"kubectl\",\"fieldsV1\":{\"f:spec\":{}}}]," \
	"\"annotations\":{\"kubectl.kubernetes.io/last-applied-configuration\":\"{\\\"spec\\\":{}}\"%s}}," \
	"\"spec\":{\"count\":1}}"
	struct canned_server s;
	struct seen seen = {.mu = PTHREAD_MUTEX_INITIALIZER, .added = PTHREAD_COND_INITIALIZER};
	struct ctl_informer *inf;
	canned_start(&s);
	char *list = xasprintf("{\"kind\":\"ThingList\",\"metadata\":{\"resourceVersion\":\"3\"},\"items\":["
			       FAT("a", "2") "]}", ",\"team\":\"ci\"");
	char *event = xasprintf("{\"type\":\"ADDED\",\"object\":" FAT("b", "4") "}\n", "");
	canned_reply(&s, 0, 200, NULL, list);
	canned_stream(&s, NULL, 200, CANNED_HOLD, event, NULL);
	struct ctl_kube_client *c = client_for(&s);
	const char *const namespaces[] = {"ns", NULL};
	struct ctl_informer_opts opts = {.gvr = {"example.com", "v1", "things"}, .namespaces = namespaces};
	struct ctl_informer_handlers h = {seen_add, seen_update, seen_delete, &seen};
	CHECK_INT(ctl_informer_new(&inf, c, &opts, &h), 0);
	CHECK_INT(ctl_informer_start(inf), 0);
	CHECK_INT(ctl_informer_wait_synced(inf, 5000), 0);
	CHECK(seen_wait_adds(&seen, 2));

	struct ctl_obj *o;
	CHECK_INT(ctl_store_get(&o, ctl_informer_store(inf), "ns/a"), 0);
	/* From the list: the bulk is gone, other annotations and the spec stay. */
	CHECK(ctl_obj_field(o, "metadata.managedFields") == NULL);
	CHECK(ctl_obj_field(o, "metadata.annotations") != NULL);
	CHECK(cJSON_GetObjectItemCaseSensitive(ctl_obj_field(o, "metadata.annotations"),
					       "kubectl.kubernetes.io/last-applied-configuration") == NULL);
	CHECK_STR(ctl_obj_string(o, "metadata.annotations.team"), "ci");
	CHECK(cJSON_IsNumber(ctl_obj_field(o, "spec.count")));
	ctl_obj_unref(o);
	/* From the watch: no annotation left, so no annotations object. */
	CHECK_INT(ctl_store_get(&o, ctl_informer_store(inf), "ns/b"), 0);
	CHECK(ctl_obj_field(o, "metadata.managedFields") == NULL);
	CHECK(ctl_obj_field(o, "metadata.annotations") == NULL);
	CHECK_STR(o->resource_version, "4");
	ctl_obj_unref(o);

	ctl_informer_free(inf);
	ctl_kube_client_free(c);
	canned_stop(&s);
	free(list);
	free(event);
#undef FAT
}

/* The answer to our own write is cached at once and marked own_write; the
 * watch event of that write, when it comes, calls no handler. */
TEST(informer_caches_our_own_write_and_drops_its_watch_event)
{
	struct canned_server s;
	struct seen seen = {.mu = PTHREAD_MUTEX_INITIALIZER, .added = PTHREAD_COND_INITIALIZER};
	struct ctl_informer *inf;
	canned_start(&s);
	canned_reply(&s, 0, 200, NULL,
		     "{\"kind\":\"ThingList\",\"metadata\":{\"resourceVersion\":\"5\"},\"items\":[" THING("a", "5") "]}");
	canned_stream(&s, NULL, 200, CANNED_HOLD, EVENT("BOOKMARK", "{\"metadata\":{\"resourceVersion\":\"5\"}}"),
		      EVENT("MODIFIED", THING("a", "7")) EVENT("ADDED", THING("b", "9")), NULL);
	struct ctl_kube_client *c = client_for(&s);
	const char *const namespaces[] = {"ns", NULL};
	struct ctl_informer_opts opts = {.gvr = {"example.com", "v1", "things"}, .namespaces = namespaces};
	struct ctl_informer_handlers h = {seen_add, seen_update, seen_delete, &seen};
	CHECK_INT(ctl_informer_new(&inf, c, &opts, &h), 0);
	CHECK_INT(ctl_informer_start(inf), 0);
	CHECK_INT(ctl_informer_wait_synced(inf, 5000), 0);
	CHECK(seen_wait_adds(&seen, 1));

	/* A status write made on version 5 answered with version 7. */
	CHECK_INT(ctl_informer_observe(inf, cJSON_Parse(THING("a", "7")), "5"), 1);
	struct ctl_obj *o;
	CHECK_INT(ctl_store_get(&o, ctl_informer_store(inf), "ns/a"), 0);
	CHECK_STR(o->resource_version, "7");
	CHECK_INT(o->own_write, 1);
	ctl_obj_unref(o);
	pthread_mutex_lock(&seen.mu);
	CHECK_INT(seen.updates, 1);
	pthread_mutex_unlock(&seen.mu);

	/* Now the watch delivers version 7 (already cached), then b. */
	canned_release(&s);
	CHECK(seen_wait_adds(&seen, 2));
	pthread_mutex_lock(&seen.mu);
	CHECK_INT(seen.updates, 1);
	pthread_mutex_unlock(&seen.mu);
	/* An answer for an object the store does not hold is not cached. */
	CHECK_INT(ctl_informer_observe(inf, cJSON_Parse(THING("gone", "10")), "8"), 0);
	CHECK_INT(ctl_store_get(&o, ctl_informer_store(inf), "ns/gone"), CTL_ENOTFOUND);
	/* Nor one outside the watched namespaces. */
	CHECK_INT(ctl_informer_observe(inf, cJSON_Parse("{\"metadata\":{\"namespace\":\"other\",\"name\":\"a\","
							 "\"resourceVersion\":\"11\"}}"), NULL), 0);

	ctl_informer_free(inf);
	ctl_kube_client_free(c);
	canned_stop(&s);
}

TEST(informer_with_two_namespaces_syncs_both)
{
	static const char empty[] = "{\"kind\":\"ThingList\",\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[]}";
	struct canned_server s;
	struct ctl_informer *inf;
	canned_start(&s);
	canned_reply_to(&s, "?limit=", 200, NULL, empty);
	canned_reply_to(&s, "?limit=", 200, NULL, empty);
	canned_stream(&s, "watch=true", 200, CANNED_HOLD, NULL);
	canned_stream(&s, "watch=true", 200, CANNED_HOLD, NULL);
	struct ctl_kube_client *c = client_for(&s);
	const char *const namespaces[] = {"x", "y", NULL};
	struct ctl_informer_opts opts = {.gvr = {"", "v1", "things"}, .namespaces = namespaces};
	CHECK_INT(ctl_informer_new(&inf, c, &opts, NULL), 0);
	CHECK_INT(ctl_informer_start(inf), 0);
	CHECK_INT(ctl_informer_wait_synced(inf, 5000), 0);
	CHECK_INT(ctl_informer_has_synced(inf), 1);
	/* One thread per namespace, in whatever order they got there. */
	int lists_x = 0, lists_y = 0;
	for (size_t i = 0; canned_request(&s, 0, i); i++) {
		lists_x += request_has(&s, i, "/api/v1/namespaces/x/things?limit=");
		lists_y += request_has(&s, i, "/api/v1/namespaces/y/things?limit=");
	}
	CHECK_INT(lists_x, 1);
	CHECK_INT(lists_y, 1);
	ctl_informer_free(inf);
	ctl_kube_client_free(c);
	canned_stop(&s);
}

/* --- the streaming GET --------------------------------------------------- */

struct got {
	struct ctl_buf data;
};

static int take(const char *data, size_t len, void *arg)
{
	struct got *g = arg;
	return ctl_buf_append(&g->data, data, len);
}

TEST(kube_watch_declares_a_silent_stream_dead)
{
	struct canned_server s;
	struct got g = {CTL_BUF_INIT};
	canned_start(&s);
	canned_stream(&s, NULL, 200, CANNED_HOLD, "{\"type\":\"BOOKMARK\",\"object\":{}}\n", NULL);
	struct ctl_kube_client *c = client_for(&s);
	struct ctl_gvr gvr = {"", "v1", "pods"};
	struct ctl_kube_watch_opts o = {.resource_version = "1", .idle_timeout_ms = 300};
	CHECK_INT(ctl_kube_watch(c, &gvr, "ns", &o, take, &g), CTL_EUNAVAIL);
	CHECK_STR(ctl_error_last()->reason, "Timeout");
	CHECK(strstr(ctl_buf_str(&g.data), "BOOKMARK") != NULL);
	ctl_buf_dispose(&g.data);
	ctl_kube_client_free(c);
	canned_stop(&s);
}

struct canceler {
	struct canned_server *s;
	atomic_int *flag;
};

/* Cancel once the watch is open: the server has its request. */
static void *cancel_when_watching(void *arg)
{
	struct canceler *k = arg;
	canned_wait_requests(k->s, 1, 5000);
	atomic_store(k->flag, 1);
	return NULL;
}

TEST(kube_watch_aborts_when_canceled_from_another_thread)
{
	struct canned_server s;
	struct got g = {CTL_BUF_INIT};
	atomic_int flag = 0;
	struct canceler k = {&s, &flag};
	pthread_t t;
	canned_start(&s);
	canned_stream(&s, NULL, 200, CANNED_HOLD, NULL);
	struct ctl_kube_client *c = client_for(&s);
	struct ctl_gvr gvr = {"", "v1", "pods"};
	struct ctl_kube_watch_opts o = {.cancel = &flag};
	pthread_create(&t, NULL, cancel_when_watching, &k);
	CHECK_INT(ctl_kube_watch(c, &gvr, NULL, &o, take, &g), CTL_ERR);
	CHECK_STR(ctl_error_last()->reason, "Canceled");
	pthread_join(t, NULL);
	ctl_buf_dispose(&g.data);
	ctl_kube_client_free(c);
	canned_stop(&s);
}

TEST(kube_watch_http_410_is_gone)
{
	struct canned_server s;
	struct got g = {CTL_BUF_INIT};
	canned_start(&s);
	canned_reply(&s, 0, 410, "Audit-Id: audit-0\r\n",
		     "{\"kind\":\"Status\",\"status\":\"Failure\",\"reason\":\"Expired\",\"message\":\"too old\",\"code\":410}");
	struct ctl_kube_client *c = client_for(&s);
	struct ctl_gvr gvr = {"", "v1", "pods"};
	struct ctl_kube_watch_opts o = {.resource_version = "1"};
	CHECK_INT(ctl_kube_watch(c, &gvr, NULL, &o, take, &g), CTL_EGONE);
	CHECK_STR(ctl_error_last()->reason, "Expired");
	CHECK_STR(ctl_error_last()->message, "too old");
	CHECK_INT(ctl_error_last()->http_status, 410);
	CHECK_STR(ctl_error_last()->request_id, "audit-0");
	CHECK_INT(g.data.len, 0); /* an error body never reaches the framer */
	ctl_buf_dispose(&g.data);
	ctl_kube_client_free(c);
	canned_stop(&s);
}

TEST_MAIN(T(watcher_lists_then_watches_from_the_list_version), T(informer_caches_our_own_write_and_drops_its_watch_event), T(watcher_follows_continue_pages),
	  T(watcher_expired_continue_token_restarts_the_list), T(watcher_bookmark_advances_the_resume_point),
	  T(watcher_resumes_at_once_after_a_normal_end), T(watcher_empty_stream_end_backs_off),
	  T(watcher_error_410_event_relists), T(watcher_http_410_relists),
	  T(watcher_other_error_event_rewatches_after_backoff),
	  T(watcher_backoff_doubles_with_full_jitter_up_to_the_cap),
	  T(watcher_list_failure_starts_over_after_backoff),
	  T(informer_relists_after_gone_and_reports_what_was_deleted_meanwhile),
	  T(informer_caches_objects_without_managed_fields_or_last_applied), T(informer_with_two_namespaces_syncs_both), T(kube_watch_declares_a_silent_stream_dead),
	  T(kube_watch_aborts_when_canceled_from_another_thread), T(kube_watch_http_410_is_gone))
