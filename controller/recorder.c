/*
 * recorder.c: Events with series aggregation. See recorder.h.
 *
 * The cache of recent events is a small array searched linearly: it holds
 * at most MAX_RECENT entries, and events are rare (state changes only), so
 * a hash table would buy nothing. When full, the oldest entry is dropped;
 * the worst that does is start a new Event instead of extending a series.
 *
 * Sending is asynchronous, as client-go's event broadcaster is: the caller
 * decides (new Event or series patch) under the lock and queues the
 * request, and SENDERS threads talk to the API server. A reconcile thus
 * pays no API round trip for its Event. An Event's requests all go to the
 * sender its name hashes to, in order, so a series patch follows its
 * Event. One sender was too few: during a rollout of 10,000 pools the
 * workers record Events faster than one connection's round trips send
 * them. At most MAX_PENDING requests wait (client-go keeps 1000 too);
 * then the caller waits for room, up to full_wait_ms, and only then drops
 * the Event (counted): a burst slows down rather than loses its Events.
 * On free the senders send what is queued, for at most DRAIN_MS once
 * stopping, then drop the rest.
 */
#include "recorder.h"

#include "error.h"
#include "hash.h"
#include "log.h"
#include "objects.h"
#include "xalloc.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RECENT 1024
#define NOTE_MAX 1024
#define MAX_PENDING 1000
#define DRAIN_MS 5000
#define SENDERS 4

struct recent {
	char *key;        /* uid \n type \n reason \n note */
	uint64_t hash;    /* of key: most entries are told apart without a strcmp */
	char *ns;
	char *name;       /* the Event's name */
	long long first_ms;
	long long last_ms;
	int count;
};

/* One request for the sender: create ev, or (count > 0) patch the series
 * of the Event ns/name, creating ev instead if that Event expired. */
struct pending {
	struct pending *next;
	char *ns;
	char *name;
	cJSON *ev;
	int count;
	long long now_ms;
};

struct ctl_recorder {
	struct ctl_kube_client *client;
	char *controller;
	char *instance;
	long window_ms;
	long long (*now_ms)(void);
	pthread_mutex_t mu;
	struct recent recent[MAX_RECENT];
	size_t n;
	unsigned long long seq;

	/* the senders, under mu */
	struct sender {
		struct ctl_recorder *r;
		pthread_t thread;
		pthread_cond_t wake; /* a request was queued, or stopping */
		struct pending *head, *tail;
		bool busy;
		bool started;
	} senders[SENDERS];
	pthread_cond_t idle;    /* a sender's queue emptied: flush looks again */
	pthread_cond_t room;    /* a request left the queue (CLOCK_MONOTONIC) */
	size_t npending;
	long full_wait_ms;
	bool stopping;
	long long stop_ms;      /* monotonic, when stopping began */
	unsigned long long dropped;
};

static const struct ctl_gvr events_gvr = {"events.k8s.io", "v1", "events"};

static long long monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long system_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* MicroTime: RFC 3339 with exactly six fractional digits. */
static void micro_time(long long ms, char buf[40])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, 40 - n, ".%06lldZ", (ms % 1000) * 1000);
}

static void pending_free(struct pending *p)
{
	cJSON_Delete(p->ev);
	free(p->ns);
	free(p->name);
	free(p);
}

/* Send one queued request; the API server's answer is not read (only an
 * error is logged), so it is asked for in protobuf and never parsed. */
static void send_pending(struct ctl_recorder *r, struct pending *p)
{
	int rc;
	if (p->count == 0) {
		rc = ctl_kube_create(NULL, r->client, &events_gvr, p->ns, p->ev);
	} else {
		char when[40];
		micro_time(p->now_ms, when);
		cJSON *patch = cJSON_CreateObject();
		cJSON *series = cJSON_AddObjectToObject(patch, "series");
		cJSON_AddNumberToObject(series, "count", p->count);
		cJSON_AddStringToObject(series, "lastObservedTime", when);
		rc = ctl_kube_patch(NULL, r->client, &events_gvr, p->ns, p->name, NULL, CTL_PATCH_MERGE, patch,
				    NULL);
		cJSON_Delete(patch);
		if (rc == CTL_ENOTFOUND) {
			/* The Event expired (the API server keeps them an hour by
			 * default): start a new one. */
			rc = ctl_kube_create(NULL, r->client, &events_gvr, p->ns, p->ev);
		}
	}
	if (rc != 0)
		ctl_log(CTL_LOG_WARN, "event not recorded", "event", p->name, "namespace", p->ns, "error",
			ctl_error_last()->message, NULL);
}

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	struct ctl_recorder *r = s->r;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!s->head && !r->stopping)
			pthread_cond_wait(&s->wake, &r->mu);
		struct pending *p = s->head;
		if (!p)
			break; /* stopping, and nothing left */
		s->head = p->next;
		if (!s->head)
			s->tail = NULL;
		r->npending--;
		pthread_cond_signal(&r->room);
		bool late = r->stopping && monotonic_ms() - r->stop_ms > DRAIN_MS;
		if (late)
			r->dropped++;
		s->busy = true;
		pthread_mutex_unlock(&r->mu);
		if (!late)
			send_pending(r, p);
		pending_free(p);
		pthread_mutex_lock(&r->mu);
		s->busy = false;
		if (!s->head)
			pthread_cond_broadcast(&r->idle);
	}
	pthread_cond_broadcast(&r->idle);
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* Which sender an Event's requests go to. */
static size_t sender_of(const char *name)
{
	return (size_t)(ctl_fnv1a_str(CTL_FNV1A_INIT, name) % SENDERS);
}

static struct timespec deadline_in(long ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

static void recent_dispose(struct recent *e)
{
	free(e->key);
	free(e->ns);
	free(e->name);
	memset(e, 0, sizeof(*e));
}

/* Stop and join the senders that were started, then free everything. */
static void destroy(struct ctl_recorder *r)
{
	pthread_mutex_lock(&r->mu);
	r->stopping = true;
	r->stop_ms = monotonic_ms();
	for (size_t i = 0; i < SENDERS; i++)
		pthread_cond_signal(&r->senders[i].wake);
	pthread_cond_broadcast(&r->room);
	pthread_mutex_unlock(&r->mu);
	for (size_t i = 0; i < SENDERS; i++)
		if (r->senders[i].started)
			pthread_join(r->senders[i].thread, NULL);
	for (size_t i = 0; i < r->n; i++)
		recent_dispose(&r->recent[i]);
	for (size_t i = 0; i < SENDERS; i++)
		pthread_cond_destroy(&r->senders[i].wake);
	pthread_cond_destroy(&r->room);
	pthread_cond_destroy(&r->idle);
	pthread_mutex_destroy(&r->mu);
	free(r->controller);
	free(r->instance);
	free(r);
}

int ctl_recorder_new(struct ctl_recorder **out, struct ctl_kube_client *client,
		     const struct ctl_recorder_opts *opts)
{
	struct ctl_recorder *r = xcalloc(1, sizeof(*r));
	r->client = client;
	r->controller = xstrdup(opts->controller ? opts->controller : "acrpool.dev/acrpool-controller");
	r->instance = xstrdup(opts->instance ? opts->instance : "acrpool-controller");
	r->window_ms = opts->window_ms > 0 ? opts->window_ms : 10 * 60 * 1000;
	r->now_ms = opts->now_ms ? opts->now_ms : system_now_ms;
	r->full_wait_ms = opts->full_wait_ms > 0 ? opts->full_wait_ms : 10000;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->idle, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->room, &ca);
	pthread_condattr_destroy(&ca);
	for (size_t i = 0; i < SENDERS; i++) {
		r->senders[i].r = r;
		pthread_cond_init(&r->senders[i].wake, NULL);
	}
	for (size_t i = 0; i < SENDERS; i++) {
		if (pthread_create(&r->senders[i].thread, NULL, sender_main, &r->senders[i]) != 0) {
			destroy(r);
			*out = NULL;
			return ctl_error_set(CTL_ERR, "ThreadFailed", "cannot start the event senders");
		}
		r->senders[i].started = true;
	}
	*out = r;
	return 0;
}

void ctl_recorder_flush(struct ctl_recorder *r)
{
	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < SENDERS; i++)
		while (r->senders[i].head || r->senders[i].busy)
			pthread_cond_wait(&r->idle, &r->mu);
	pthread_mutex_unlock(&r->mu);
}

unsigned long long ctl_recorder_dropped(struct ctl_recorder *r)
{
	pthread_mutex_lock(&r->mu);
	unsigned long long n = r->dropped;
	pthread_mutex_unlock(&r->mu);
	return n;
}


void ctl_recorder_free(struct ctl_recorder *r)
{
	if (r)
		destroy(r);
}

static const char *str_or(const char *s, const char *def)
{
	return s && *s ? s : def;
}

static cJSON *new_event(struct ctl_recorder *r, const struct ctl_obj *obj, const char *name, const char *type,
			const char *reason, const char *action, const char *note, long long now)
{
	char when[40];
	micro_time(now, when);
	cJSON *ev = cJSON_CreateObject();
	cJSON_AddStringToObject(ev, "apiVersion", "events.k8s.io/v1");
	cJSON_AddStringToObject(ev, "kind", "Event");
	cJSON *meta = cJSON_AddObjectToObject(ev, "metadata");
	cJSON_AddStringToObject(meta, "name", name);
	cJSON_AddStringToObject(meta, "namespace", str_or(obj->namespace, "default"));
	cJSON_AddStringToObject(ev, "eventTime", when);
	cJSON_AddStringToObject(ev, "reportingController", r->controller);
	cJSON_AddStringToObject(ev, "reportingInstance", r->instance);
	cJSON_AddStringToObject(ev, "action", action);
	cJSON_AddStringToObject(ev, "reason", reason);
	cJSON_AddStringToObject(ev, "type", type);
	cJSON_AddStringToObject(ev, "note", note);
	cJSON *reg = cJSON_AddObjectToObject(ev, "regarding");
	cJSON_AddStringToObject(reg, "apiVersion", str_or(ctl_obj_string(obj, "apiVersion"), ""));
	cJSON_AddStringToObject(reg, "kind", str_or(ctl_obj_string(obj, "kind"), ""));
	cJSON_AddStringToObject(reg, "name", obj->name);
	if (obj->namespace[0])
		cJSON_AddStringToObject(reg, "namespace", obj->namespace);
	if (obj->uid[0])
		cJSON_AddStringToObject(reg, "uid", obj->uid);
	if (obj->resource_version[0])
		cJSON_AddStringToObject(reg, "resourceVersion", obj->resource_version);
	return ev;
}

/* Under r->mu, which every worker's Event takes: a pass over MAX_RECENT
 * keys with strcmp was 1.5% of the operator's CPU at 10,000 pools. */
static struct recent *find_recent(struct ctl_recorder *r, const char *key, uint64_t hash)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->recent[i].hash == hash && strcmp(r->recent[i].key, key) == 0)
			return &r->recent[i];
	return NULL;
}

static struct recent *add_recent(struct ctl_recorder *r)
{
	if (r->n == MAX_RECENT) {
		size_t oldest = 0;
		for (size_t i = 1; i < r->n; i++)
			if (r->recent[i].last_ms < r->recent[oldest].last_ms)
				oldest = i;
		recent_dispose(&r->recent[oldest]);
		r->recent[oldest] = r->recent[--r->n];
	}
	return &r->recent[r->n++];
}

int ctl_recorder_event(struct ctl_recorder *r, const struct ctl_obj *obj, const char *type,
		       const char *reason, const char *action, const char *fmt, ...)
{
	char note[NOTE_MAX];
	va_list ap;
	va_start(ap, fmt);
	int len = vsnprintf(note, sizeof(note), fmt, ap);
	va_end(ap);
	if (len >= (int)sizeof(note))
		memcpy(note + sizeof(note) - 4, "...", 4);

	long long now = r->now_ms();
	char *key = xasprintf("%s\n%s\n%s\n%s", obj->uid, type, reason, note);
	uint64_t hash = ctl_fnv1a_str(CTL_FNV1A_INIT, key);
	struct pending *p = xcalloc(1, sizeof(*p));
	p->now_ms = now;

	/* Decide under the lock, once there is room; the senders talk to
	 * the API server. */
	pthread_mutex_lock(&r->mu);
	struct timespec until = deadline_in(r->full_wait_ms);
	bool timed_out = false;
	while (r->npending >= MAX_PENDING && !r->stopping && !timed_out)
		timed_out = pthread_cond_timedwait(&r->room, &r->mu, &until) != 0;
	if (r->npending >= MAX_PENDING || r->stopping) {
		r->dropped++;
		pthread_mutex_unlock(&r->mu);
		free(key);
		free(p);
		return ctl_error_set(CTL_EUNAVAIL, "EventDropped", "%d events wait to be sent already",
				     MAX_PENDING);
	}
	struct recent *e = find_recent(r, key, hash);
	if (e && now - e->last_ms <= r->window_ms) {
		e->count++;
		e->last_ms = now;
		p->count = e->count;
	} else {
		if (e)
			recent_dispose(e);
		else
			e = add_recent(r);
		e->key = key;
		e->hash = hash;
		key = NULL;
		e->ns = xstrdup(str_or(obj->namespace, "default"));
		e->name = xasprintf("%.200s.%llx%04llx", obj->name, (unsigned long long)now,
				    ++r->seq & 0xffff);
		e->first_ms = e->last_ms = now;
		e->count = 1;
	}
	p->ns = xstrdup(e->ns);
	p->name = xstrdup(e->name);
	/* The Event itself goes with a series patch too, in case it expired. */
	p->ev = new_event(r, obj, p->name, type, reason, action, note, now);
	struct sender *s = &r->senders[sender_of(p->name)];
	if (s->tail)
		s->tail->next = p;
	else
		s->head = p;
	s->tail = p;
	r->npending++;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&r->mu);
	free(key);
	return 0;
}
