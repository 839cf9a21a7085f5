/* Unit tests for controller/recorder.c: Events leave from the recorder's
 * own threads, each Event's requests in the order they were recorded, and
 * a full queue waits a bounded time for room, then drops. The canned
 * server holds the first answer open, so a recorder that waited for the
 * API server would hang these tests. */
#include "test.h"

#include "canned_http.h"

#include "error.h"
#include "kube.h"
#include "kubeconfig.h"
#include "log.h"
#include "recorder.h"
#include "store.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct ctl_kube_client *client_for(const char *server)
{
	struct ctl_kubeconfig *cfg;
	struct ctl_kube_client *c;
	char *yaml = xasprintf("current-context: t\n"
			       "contexts: [{name: t, context: {cluster: t, user: t}}]\n"
			       "clusters: [{name: t, cluster: {server: '%s'}}]\n"
			       "users: [{name: t, user: {}}]\n", server);
	CHECK_INT(ctl_kubeconfig_parse(&cfg, yaml, strlen(yaml), NULL, NULL), 0);
	CHECK_INT(ctl_kube_client_new(&c, cfg), 0);
	free(yaml);
	return c;
}

static struct ctl_obj *pool(const char *name)
{
	struct ctl_obj *o = NULL;
	char *json = xasprintf("{\"apiVersion\":\"acrpool.dev/v1alpha1\",\"kind\":\"AgentPool\",\"metadata\":"
			       "{\"name\":\"%s\",\"namespace\":\"team\",\"uid\":\"uid-%s\",\"resourceVersion\":\"7\"}}",
			       name, name);
	CHECK_INT(ctl_obj_new(&o, cJSON_Parse(json)), 0);
	free(json);
	return o;
}

static const char *request(struct canned_server *s, size_t i)
{
	const char *r = canned_request(s, 0, i);
	return r ? r : "";
}

/* The index of the first recorded request whose text holds all of a and
 * b, or -1. */
static int find(struct canned_server *s, const char *a, const char *b)
{
	for (size_t i = 0; canned_request(s, 0, i); i++)
		if (strstr(request(s, i), a) && strstr(request(s, i), b))
			return (int)i;
	return -1;
}

TEST(recorder_sends_from_its_own_threads_each_event_in_order)
{
	struct canned_server s;
	struct ctl_recorder *r = NULL;
	struct ctl_recorder_opts ro = {.controller = "acrpool.dev/test", .instance = "pod-1"};
	canned_start(&s);
	/* The first answer stops after its first part until released. */
	canned_stream(&s, NULL, 201, CANNED_CLOSE, "{\"kind\":", "\"Event\"}", NULL);
	canned_reply(&s, 0, 200, NULL, "{\"kind\":\"Event\"}");
	canned_reply(&s, 0, 201, NULL, "{\"kind\":\"Event\"}");
	struct ctl_kube_client *c = client_for(s.base);
	struct ctl_obj *a = pool("a"), *b = pool("b");
	CHECK_INT(ctl_recorder_new(&r, c, &ro), 0);

	CHECK_INT(ctl_recorder_event(r, a, "Normal", "Created", "Create", "pool %s created", "a"), 0);
	CHECK(canned_wait_requests(&s, 1, 10000));
	/* The API server has not answered the first yet; recording more
	 * returns at once all the same. */
	CHECK_INT(ctl_recorder_event(r, a, "Normal", "Created", "Create", "pool %s created", "a"), 0);
	CHECK_INT(ctl_recorder_event(r, b, "Warning", "Stalled", "Reconcile", "quota"), 0);
	canned_release(&s);
	ctl_recorder_flush(r);

	/* The first Event, then its series (the other Event may come
	 * between: it has a sender of its own, or waits its turn). */
	CHECK(strncmp(request(&s, 0), "POST /apis/events.k8s.io/v1/namespaces/team/events HTTP/1.1", 59) == 0);
	CHECK(strstr(canned_body(request(&s, 0)), "\"reason\":\"Created\"") != NULL);
	CHECK(strstr(canned_body(request(&s, 0)), "\"reportingInstance\":\"pod-1\"") != NULL);
	int patch = find(&s, "PATCH /apis/events.k8s.io/v1/namespaces/team/events/a.", "\"series\":{\"count\":2");
	int other = find(&s, "POST /apis/events.k8s.io/v1/namespaces/team/events HTTP/1.1", "\"reason\":\"Stalled\"");
	CHECK(patch > 0);
	CHECK(other > 0);
	CHECK(canned_request(&s, 0, 3) == NULL);
	CHECK_INT(ctl_recorder_dropped(r), 0);

	ctl_recorder_free(r);
	ctl_obj_unref(a);
	ctl_obj_unref(b);
	ctl_kube_client_free(c);
	canned_stop(&s);
}

TEST(recorder_full_queue_waits_for_room_then_drops)
{
	struct canned_server s;
	struct ctl_recorder *r = NULL;
	struct ctl_recorder_opts ro = {.full_wait_ms = 50};
	ctl_log_set_level(CTL_LOG_ERROR); /* the unanswered sends warn */
	canned_start(&s);
	canned_stream(&s, NULL, 201, CANNED_CLOSE, "{\"kind\":", "\"Event\"}", NULL);
	struct ctl_kube_client *c = client_for(s.base);
	struct ctl_obj *a = pool("a");
	CHECK_INT(ctl_recorder_new(&r, c, &ro), 0);
	CHECK_INT(ctl_recorder_event(r, a, "Normal", "Step", "Reconcile", "again"), 0);
	CHECK(canned_wait_requests(&s, 1, 10000));
	/* Its create is in flight; the same Event's series patches wait behind
	 * it on the same sender until 1000 wait, and the next finds no room. */
	for (int i = 0; i < 1000; i++)
		CHECK_INT(ctl_recorder_event(r, a, "Normal", "Step", "Reconcile", "again"), 0);
	CHECK_INT(ctl_recorder_event(r, a, "Normal", "Step", "Reconcile", "again"), CTL_EUNAVAIL);
	CHECK_STR(ctl_error_last()->reason, "EventDropped");
	CHECK_INT(ctl_recorder_dropped(r), 1);
	canned_release(&s);
	ctl_recorder_flush(r);
	/* Room again: nothing waits. */
	CHECK_INT(ctl_recorder_event(r, a, "Normal", "Step", "Reconcile", "again"), 0);
	ctl_recorder_free(r);
	ctl_obj_unref(a);
	ctl_kube_client_free(c);
	canned_stop(&s);
}

TEST_MAIN(T(recorder_sends_from_its_own_threads_each_event_in_order),
	  T(recorder_full_queue_waits_for_room_then_drops))
