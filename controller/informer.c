/*
 * informer.c: the driver of the watcher state machine. See informer.h.
 *
 * The informer owns its store, its options and one struct scope per
 * namespace; each scope owns a thread, a watcher, a framer and the objects
 * gathered from the list pages so far. All I/O happens here: the watcher
 * only decides. The thread loop is the one place in this layer that logs,
 * because it is a loop with nobody above it to return an error to.
 */
#include "informer.h"

#include "error.h"
#include "log.h"
#include "watch.h"
#include "xalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_PAGE_SIZE 500
#define DEFAULT_TIMEOUT_S 290
#define DEFAULT_IDLE_MS 120000

struct scope {
	struct ctl_informer *inf;
	char *ns;                 /* NULL: all namespaces */
	pthread_t thread;
	int started;
	int listed;               /* has swapped in a list before */
	int watched;              /* has opened a stream before */
	struct ctl_watcher watcher;
	struct ctl_watch_framer framer;
	struct ctl_obj **pending; /* gathered from this list's pages */
	size_t n_pending, cap_pending;
};

struct ctl_informer {
	struct ctl_kube_client *client;
	char *group, *version, *resource;
	struct ctl_gvr gvr;       /* points at the three strings above */
	char *label_selector, *field_selector;
	long page_size, timeout_seconds, idle_timeout_ms, backoff_base_ms, backoff_max_ms;
	size_t max_line;
	struct ctl_informer_handlers handlers;
	struct ctl_store *store;
	struct scope *scopes;
	size_t n_scopes;

	atomic_int stop;
	int started;
	pthread_mutex_t mu;       /* with cond: sleeps, stop, sync waits */
	pthread_cond_t cond;
	size_t n_synced;          /* scopes listed at least once; under mu */

	atomic_ullong lists, relists, watch_starts, watch_restarts, events, errors;
};

static void pending_clear(struct scope *sc)
{
	for (size_t i = 0; i < sc->n_pending; i++)
		ctl_obj_unref(sc->pending[i]);
	sc->n_pending = 0;
}

static void pending_push(struct scope *sc, struct ctl_obj *o)
{
	if (sc->n_pending == sc->cap_pending) {
		sc->cap_pending = sc->cap_pending ? sc->cap_pending * 2 : 64;
		sc->pending = xrealloc(sc->pending, sc->cap_pending * sizeof(*sc->pending));
	}
	sc->pending[sc->n_pending++] = o;
}

static const char *json_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The cache keeps what reconcilers read. metadata.managedFields (the
 * API server's field ownership bookkeeping) and kubectl's
 * last-applied-configuration annotation (a second copy of the object) are
 * most of an applied object's bytes, and nothing here reads them: drop them
 * before caching, as controller-runtime users do with a cache transform.
 * Every write is a patch of named fields, never the cached object sent
 * back, so nothing dropped here can be lost on the server. */
static cJSON *trim(cJSON *obj)
{
	cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	cJSON_DeleteItemFromObjectCaseSensitive(meta, "managedFields");
	cJSON *ann = cJSON_GetObjectItemCaseSensitive(meta, "annotations");
	cJSON_DeleteItemFromObjectCaseSensitive(ann, "kubectl.kubernetes.io/last-applied-configuration");
	if (cJSON_IsObject(ann) && !ann->child)
		cJSON_DeleteItemFromObjectCaseSensitive(meta, "annotations");
	return obj;
}

/* Move a page's items into sc->pending. Items of a list carry no kind or
 * apiVersion; fill them in from the list's ("FooList" -> "Foo") so cached
 * objects look the same whether they came from a list or a watch. */
static void gather(struct scope *sc, cJSON *page)
{
	const char *list_kind = json_str(page, "kind");
	const char *api = json_str(page, "apiVersion");
	cJSON *items = cJSON_GetObjectItemCaseSensitive(page, "items");
	char *kind = NULL;
	if (list_kind) {
		size_t n = strlen(list_kind);
		kind = xstrndup(list_kind, n > 4 && strcmp(list_kind + n - 4, "List") == 0 ? n - 4 : n);
	}
	while (cJSON_IsArray(items) && items->child) {
		cJSON *item = cJSON_DetachItemViaPointer(items, items->child);
		struct ctl_obj *o;
		if (kind && cJSON_IsObject(item) && !cJSON_HasObjectItem(item, "kind"))
			cJSON_AddStringToObject(item, "kind", kind);
		if (api && cJSON_IsObject(item) && !cJSON_HasObjectItem(item, "apiVersion"))
			cJSON_AddStringToObject(item, "apiVersion", api);
		if (ctl_obj_new(&o, trim(item)) == 0) /* a nameless item cannot be cached */
			pending_push(sc, o);
	}
	free(kind);
}

/* Swap the gathered list in and tell the handlers what changed. */
static void swap_in(struct scope *sc)
{
	struct ctl_informer *inf = sc->inf;
	const struct ctl_informer_handlers *h = &inf->handlers;
	struct ctl_store_delta *d;
	size_t n;

	ctl_store_replace(&d, &n, inf->store, sc->ns, sc->pending, sc->n_pending);
	sc->n_pending = 0; /* the store took the references */
	atomic_fetch_add(&inf->lists, 1);
	if (sc->listed)
		atomic_fetch_add(&inf->relists, 1);
	for (size_t i = 0; i < n; i++) {
		if (!d[i].old && h->on_add)
			h->on_add(d[i].obj->key, d[i].obj, h->arg);
		else if (d[i].old && d[i].obj && h->on_update)
			h->on_update(d[i].obj->key, d[i].old, d[i].obj, h->arg);
		else if (!d[i].obj && h->on_delete)
			h->on_delete(d[i].old->key, d[i].old, h->arg);
	}
	ctl_store_deltas_free(d, n);
	if (!sc->listed) {
		sc->listed = 1;
		pthread_mutex_lock(&inf->mu);
		inf->n_synced++;
		pthread_cond_broadcast(&inf->cond);
		pthread_mutex_unlock(&inf->mu);
	}
}

/* Record an ERROR event's Status as the thread's error. */
static int status_error(const cJSON *status, int gone)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(status, "code");
	const char *reason = json_str(status, "reason");
	const char *message = json_str(status, "message");
	long http = cJSON_IsNumber(code) ? (long)code->valueint : 0;
	int rc = ctl_error_set(gone ? CTL_EGONE : http ? ctl_error_from_http(http) : CTL_ERR,
			       reason ? reason : "WatchError", "watch ERROR event: %s",
			       message ? message : "(no message)");
	if (rc == CTL_OK)
		rc = CTL_ERR;
	ctl_error_set_http(http, NULL, -1);
	return rc;
}

/* One line of the stream: parse, let the watcher decide, apply. */
static int on_line(const char *line, size_t len, void *arg)
{
	struct scope *sc = arg;
	struct ctl_informer *inf = sc->inf;
	const struct ctl_informer_handlers *h = &inf->handlers;
	struct ctl_watch_event ev;
	struct ctl_obj *obj = NULL, *old = NULL;
	int rc;

	if ((rc = ctl_watch_event_parse(&ev, line, len)))
		return rc;
	atomic_fetch_add(&inf->events, 1);
	switch (ctl_watcher_on_event(&sc->watcher, &ev)) {
	case CTL_WATCHER_APPLY:
		if (ctl_obj_new(&obj, trim(ctl_watch_event_take(&ev))) != 0)
			break;
		/* Stale: the store already has this version, or a newer one,
		 * from the answer to our own write (ctl_informer_observe). */
		if (!ctl_store_offer(&old, inf->store, ctl_obj_ref(obj), NULL))
			break;
		if (old && h->on_update)
			h->on_update(obj->key, old, obj, h->arg);
		else if (!old && h->on_add)
			h->on_add(obj->key, obj, h->arg);
		break;
	case CTL_WATCHER_DELETE:
		if (ctl_obj_new(&obj, trim(ctl_watch_event_take(&ev))) != 0)
			break;
		ctl_store_delete(&old, inf->store, obj->key);
		if (h->on_delete)
			h->on_delete(obj->key, old ? old : obj, h->arg);
		break;
	case CTL_WATCHER_STOP:
		rc = status_error(ev.object, ctl_watch_event_is_gone(&ev));
		break;
	case CTL_WATCHER_NOTHING:
		break;
	}
	ctl_obj_unref(obj);
	ctl_obj_unref(old);
	ctl_watch_event_dispose(&ev);
	return rc;
}

int ctl_informer_observe(struct ctl_informer *inf, cJSON *json, const char *base_rv)
{
	const struct ctl_informer_handlers *h = &inf->handlers;
	struct ctl_obj *obj = NULL, *old = NULL;
	if (ctl_obj_new(&obj, trim(json)) != 0)
		return 0;
	int in_scope = !inf->scopes[0].ns;
	for (size_t i = 0; i < inf->n_scopes && !in_scope; i++)
		in_scope = !strcmp(inf->scopes[i].ns, obj->namespace);
	int applied = in_scope && ctl_store_offer(&old, inf->store, ctl_obj_ref(obj), base_rv);
	if (applied && old && h->on_update)
		h->on_update(obj->key, old, obj, h->arg);
	else if (applied && !old && h->on_add)
		h->on_add(obj->key, obj, h->arg);
	ctl_obj_unref(obj);
	ctl_obj_unref(old);
	return applied;
}

static int on_data(const char *data, size_t len, void *arg)
{
	struct scope *sc = arg;
	return ctl_watch_framer_feed(&sc->framer, data, len, on_line, sc);
}

/* Sleep ms or until stop. Returns 1 when stopping. */
static int sleep_or_stop(struct ctl_informer *inf, long ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&inf->mu);
	while (!atomic_load(&inf->stop) && pthread_cond_timedwait(&inf->cond, &inf->mu, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&inf->mu);
	return atomic_load(&inf->stop);
}

static void log_failure(const struct scope *sc, const char *what)
{
	const struct ctl_error *e = ctl_error_last();
	ctl_log(CTL_LOG_WARN, what, "resource", sc->inf->resource, "namespace", sc->ns ? sc->ns : "",
		"error", ctl_error_name(e->code), "reason", e->reason, "message", e->message, NULL);
}

static void *scope_run(void *arg)
{
	struct scope *sc = arg;
	struct ctl_informer *inf = sc->inf;
	struct ctl_watcher_action a;

	while (!atomic_load(&inf->stop)) {
		ctl_watcher_next(&sc->watcher, &a);
		if (a.delay_ms > 0 && sleep_or_stop(inf, a.delay_ms))
			break;
		if (a.kind == CTL_WATCHER_DO_LIST) {
			struct ctl_kube_list_opts lo = {
				.label_selector = inf->label_selector,
				.field_selector = inf->field_selector,
				.limit = inf->page_size,
				.continue_token = a.continue_token,
				.cancel = &inf->stop,
			};
			cJSON *page = NULL;
			if (!a.continue_token)
				pending_clear(sc);
			int rc = ctl_kube_list(&page, inf->client, &inf->gvr, sc->ns, &lo);
			if (rc == 0)
				gather(sc, page);
			else if (!atomic_load(&inf->stop)) {
				atomic_fetch_add(&inf->errors, 1);
				log_failure(sc, "list failed");
			}
			if (ctl_watcher_on_list(&sc->watcher, rc, page))
				swap_in(sc);
			cJSON_Delete(page);
		} else {
			struct ctl_kube_watch_opts wo = {
				.resource_version = a.resource_version,
				.label_selector = inf->label_selector,
				.field_selector = inf->field_selector,
				.timeout_seconds = inf->timeout_seconds,
				.idle_timeout_ms = inf->idle_timeout_ms,
				.allow_bookmarks = 1,
				.cancel = &inf->stop,
			};
			atomic_fetch_add(&inf->watch_starts, 1);
			if (sc->watched)
				atomic_fetch_add(&inf->watch_restarts, 1);
			sc->watched = 1;
			ctl_watch_framer_reset(&sc->framer);
			int rc = ctl_kube_watch(inf->client, &inf->gvr, sc->ns, &wo, on_data, sc);
			if (rc != 0 && rc != CTL_EGONE && !atomic_load(&inf->stop)) {
				atomic_fetch_add(&inf->errors, 1);
				log_failure(sc, "watch failed");
			}
			ctl_watcher_on_watch_end(&sc->watcher, rc);
		}
	}
	pending_clear(sc);
	return NULL;
}

static char *dup_or_null(const char *s)
{
	return s && *s ? xstrdup(s) : NULL;
}

int ctl_informer_new(struct ctl_informer **out, struct ctl_kube_client *client,
		     const struct ctl_informer_opts *opts, const struct ctl_informer_handlers *handlers)
{
	struct ctl_informer *inf = xcalloc(1, sizeof(*inf));
	pthread_condattr_t ca;
	size_t n = 0;

	inf->client = client;
	inf->group = xstrdup(opts->gvr.group ? opts->gvr.group : "");
	inf->version = xstrdup(opts->gvr.version);
	inf->resource = xstrdup(opts->gvr.resource);
	inf->gvr = (struct ctl_gvr){inf->group, inf->version, inf->resource};
	inf->label_selector = dup_or_null(opts->label_selector);
	inf->field_selector = dup_or_null(opts->field_selector);
	inf->page_size = opts->page_size > 0 ? opts->page_size : DEFAULT_PAGE_SIZE;
	inf->timeout_seconds = opts->timeout_seconds > 0 ? opts->timeout_seconds : DEFAULT_TIMEOUT_S;
	inf->idle_timeout_ms = opts->idle_timeout_ms > 0 ? opts->idle_timeout_ms : DEFAULT_IDLE_MS;
	inf->backoff_base_ms = opts->backoff_base_ms;
	inf->backoff_max_ms = opts->backoff_max_ms;
	inf->max_line = opts->max_line;
	if (handlers)
		inf->handlers = *handlers;
	ctl_store_new(&inf->store);
	pthread_mutex_init(&inf->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&inf->cond, &ca);
	pthread_condattr_destroy(&ca);

	for (const char *const *p = opts->namespaces; p && *p; p++)
		n++;
	inf->n_scopes = n ? n : 1;
	inf->scopes = xcalloc(inf->n_scopes, sizeof(*inf->scopes));
	for (size_t i = 0; i < inf->n_scopes; i++) {
		struct scope *sc = &inf->scopes[i];
		sc->inf = inf;
		sc->ns = n ? xstrdup(opts->namespaces[i]) : NULL;
		ctl_watcher_init(&sc->watcher, inf->backoff_base_ms, inf->backoff_max_ms,
				 (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)sc);
		ctl_watch_framer_init(&sc->framer, inf->max_line);
	}
	*out = inf;
	return 0;
}

int ctl_informer_start(struct ctl_informer *inf)
{
	if (inf->started)
		return ctl_error_set(CTL_ERR, "AlreadyStarted", "informer for %s already started", inf->resource);
	inf->started = 1;
	for (size_t i = 0; i < inf->n_scopes; i++) {
		if (pthread_create(&inf->scopes[i].thread, NULL, scope_run, &inf->scopes[i]) != 0)
			abort(); /* out of threads: no better answer than out of memory */
		inf->scopes[i].started = 1;
	}
	return 0;
}

void ctl_informer_stop(struct ctl_informer *inf)
{
	pthread_mutex_lock(&inf->mu);
	atomic_store(&inf->stop, 1);
	pthread_cond_broadcast(&inf->cond);
	pthread_mutex_unlock(&inf->mu);
	for (size_t i = 0; i < inf->n_scopes; i++) {
		if (inf->scopes[i].started) {
			pthread_join(inf->scopes[i].thread, NULL);
			inf->scopes[i].started = 0;
		}
	}
}

void ctl_informer_free(struct ctl_informer *inf)
{
	if (!inf)
		return;
	ctl_informer_stop(inf);
	for (size_t i = 0; i < inf->n_scopes; i++) {
		struct scope *sc = &inf->scopes[i];
		pending_clear(sc);
		free(sc->pending);
		free(sc->ns);
		ctl_watcher_dispose(&sc->watcher);
		ctl_watch_framer_dispose(&sc->framer);
	}
	free(inf->scopes);
	ctl_store_free(inf->store);
	pthread_cond_destroy(&inf->cond);
	pthread_mutex_destroy(&inf->mu);
	free(inf->group);
	free(inf->version);
	free(inf->resource);
	free(inf->label_selector);
	free(inf->field_selector);
	free(inf);
}

int ctl_informer_has_synced(struct ctl_informer *inf)
{
	pthread_mutex_lock(&inf->mu);
	int synced = inf->n_synced == inf->n_scopes;
	pthread_mutex_unlock(&inf->mu);
	return synced;
}

int ctl_informer_wait_synced(struct ctl_informer *inf, long timeout_ms)
{
	struct timespec until;
	int rc = 0;
	clock_gettime(CLOCK_MONOTONIC, &until);
	if (timeout_ms >= 0) {
		until.tv_sec += timeout_ms / 1000;
		until.tv_nsec += (timeout_ms % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
	}
	pthread_mutex_lock(&inf->mu);
	while (inf->n_synced < inf->n_scopes && !atomic_load(&inf->stop)) {
		int w = timeout_ms >= 0 ? pthread_cond_timedwait(&inf->cond, &inf->mu, &until)
					: pthread_cond_wait(&inf->cond, &inf->mu);
		if (w == ETIMEDOUT)
			break;
	}
	if (inf->n_synced < inf->n_scopes)
		rc = ctl_error_set(CTL_EUNAVAIL, "NotSynced", "informer for %s has not synced", inf->resource);
	pthread_mutex_unlock(&inf->mu);
	return rc;
}

const struct ctl_gvr *ctl_informer_gvr(const struct ctl_informer *inf)
{
	return &inf->gvr;
}

struct ctl_store *ctl_informer_store(struct ctl_informer *inf)
{
	return inf->store;
}

void ctl_informer_stats(const struct ctl_informer *inf, struct ctl_informer_stats *out)
{
	struct ctl_informer *m = (struct ctl_informer *)inf; /* atomic loads want non-const */
	out->lists = atomic_load(&m->lists);
	out->relists = atomic_load(&m->relists);
	out->watch_starts = atomic_load(&m->watch_starts);
	out->watch_restarts = atomic_load(&m->watch_restarts);
	out->events = atomic_load(&m->events);
	out->errors = atomic_load(&m->errors);
}
