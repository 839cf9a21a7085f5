/*
 * watch.c: watch stream framing, event parsing and the watcher state
 * machine. See watch.h; docs/internals/watch.md tells the story.
 *
 * Nothing here does I/O or reads the clock, so every transition can be
 * driven by a unit test with canned data.
 */
#include "watch.h"

#include "error.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

#define BACKOFF_BASE_MS 200
#define BACKOFF_MAX_MS 30000

/* --- framing ------------------------------------------------------------- */

void ctl_watch_framer_init(struct ctl_watch_framer *f, size_t max_line)
{
	f->max_line = max_line ? max_line : CTL_WATCH_MAX_LINE_DEFAULT;
	ctl_buf_init(&f->partial, f->max_line);
}

void ctl_watch_framer_dispose(struct ctl_watch_framer *f)
{
	ctl_buf_dispose(&f->partial);
}

void ctl_watch_framer_reset(struct ctl_watch_framer *f)
{
	ctl_buf_reset(&f->partial);
}

static int emit(const char *line, size_t len, ctl_watch_line_fn fn, void *arg)
{
	if (len && line[len - 1] == '\r')
		len--;
	return len ? fn(line, len, arg) : 0;
}

int ctl_watch_framer_feed(struct ctl_watch_framer *f, const char *data, size_t len,
			  ctl_watch_line_fn fn, void *arg)
{
	const char *p = data, *end = data + len;
	int rc;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl) {
			/* No newline in the rest: keep it for the next feed. */
			if (ctl_buf_append(&f->partial, p, (size_t)(end - p)) != 0)
				goto toobig;
			return 0;
		}
		size_t n = (size_t)(nl - p);
		if (f->partial.len == 0) {
			/* The common case: a whole line inside this chunk, handed
			 * over without a copy. */
			if (n > f->max_line)
				goto toobig;
			rc = emit(p, n, fn, arg);
		} else {
			if (ctl_buf_append(&f->partial, p, n) != 0)
				goto toobig;
			rc = emit(f->partial.ptr, f->partial.len, fn, arg);
			ctl_buf_reset(&f->partial);
		}
		if (rc)
			return rc;
		p = nl + 1;
	}
	return 0;
toobig:
	return ctl_error_set(CTL_ETOOBIG, "LineTooLong", "watch: a line is longer than %zu bytes", f->max_line);
}

/* --- events -------------------------------------------------------------- */

static const char *json_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int ctl_watch_event_parse(struct ctl_watch_event *out, const char *line, size_t len)
{
	static const char *const names[] = {
		[CTL_WATCH_ADDED] = "ADDED",       [CTL_WATCH_MODIFIED] = "MODIFIED",
		[CTL_WATCH_DELETED] = "DELETED",   [CTL_WATCH_BOOKMARK] = "BOOKMARK",
		[CTL_WATCH_ERROR] = "ERROR",
	};
	cJSON *root = cJSON_ParseWithLength(line, len);
	const char *type = json_str(root, "type");
	cJSON *object = cJSON_GetObjectItemCaseSensitive(root, "object");
	int rc = 0;

	out->root = out->object = NULL;
	if (!cJSON_IsObject(root)) {
		rc = ctl_error_set(CTL_EINVALID, "InvalidWatchEvent", "watch: event is not a JSON object");
		goto done;
	}
	if (!type || !cJSON_IsObject(object)) {
		rc = ctl_error_set(CTL_EINVALID, "InvalidWatchEvent", "watch: event has no type or object");
		goto done;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(type, names[i]) == 0) {
			out->type = (enum ctl_watch_event_type)i;
			out->root = root;
			out->object = object;
			root = NULL;
			goto done;
		}
	}
	rc = ctl_error_set(CTL_EINVALID, "InvalidWatchEvent", "watch: unknown event type \"%.40s\"", type);
done:
	cJSON_Delete(root);
	return rc;
}

void ctl_watch_event_dispose(struct ctl_watch_event *ev)
{
	cJSON_Delete(ev->root);
	ev->root = ev->object = NULL;
}

cJSON *ctl_watch_event_take(struct ctl_watch_event *ev)
{
	cJSON *o = ev->object ? cJSON_DetachItemViaPointer(ev->root, ev->object) : NULL;
	ev->object = NULL;
	return o;
}

int ctl_watch_event_is_gone(const struct ctl_watch_event *ev)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(ev->object, "code");
	const char *reason = json_str(ev->object, "reason");
	if (ev->type != CTL_WATCH_ERROR)
		return 0;
	return (cJSON_IsNumber(code) && code->valueint == 410) ||
	       (reason && (strcmp(reason, "Expired") == 0 || strcmp(reason, "Gone") == 0));
}

/* --- the watcher --------------------------------------------------------- */

void ctl_watcher_init(struct ctl_watcher *w, long base_ms, long max_ms, uint64_t seed)
{
	memset(w, 0, sizeof(*w));
	w->state = CTL_WATCHER_EMPTY;
	w->backoff_base_ms = base_ms > 0 ? base_ms : BACKOFF_BASE_MS;
	w->backoff_max_ms = max_ms > 0 ? max_ms : BACKOFF_MAX_MS;
	w->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
}

void ctl_watcher_dispose(struct ctl_watcher *w)
{
	free(w->resource_version);
	free(w->continue_token);
	w->resource_version = w->continue_token = NULL;
}

static uint64_t next_random(struct ctl_watcher *w)
{
	/* xorshift64*: plenty for spreading reconnects apart. */
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return w->rng * 0x2545f4914f6cdd1dull;
}

/* A failure: the next action waits a random time in [0, cap], where cap
 * doubles with each consecutive failure ("full jitter"), so that every
 * informer of every replica does not reconnect in the same instant after
 * an API server restart. */
static void fail(struct ctl_watcher *w)
{
	long cap = w->backoff_base_ms;
	for (unsigned i = 0; i < w->failures && cap < w->backoff_max_ms; i++)
		cap *= 2;
	if (cap > w->backoff_max_ms)
		cap = w->backoff_max_ms;
	w->delay_ms = (long)(next_random(w) % ((uint64_t)cap + 1));
	w->failures++;
}

static void set_str(char **dst, const char *s)
{
	free(*dst);
	*dst = s && *s ? xstrdup(s) : NULL;
}

/* Start over with a full list, now. */
static void relist(struct ctl_watcher *w)
{
	w->state = CTL_WATCHER_EMPTY;
	set_str(&w->resource_version, NULL);
	set_str(&w->continue_token, NULL);
}

void ctl_watcher_next(struct ctl_watcher *w, struct ctl_watcher_action *out)
{
	out->delay_ms = w->delay_ms;
	w->delay_ms = 0;
	out->continue_token = NULL;
	out->resource_version = NULL;
	switch (w->state) {
	case CTL_WATCHER_EMPTY:
		w->state = CTL_WATCHER_LISTING;
		set_str(&w->continue_token, NULL);
		out->kind = CTL_WATCHER_DO_LIST;
		break;
	case CTL_WATCHER_LISTING:
		out->kind = CTL_WATCHER_DO_LIST;
		out->continue_token = w->continue_token;
		break;
	case CTL_WATCHER_LISTED:
	case CTL_WATCHER_WATCHING:
		w->state = CTL_WATCHER_WATCHING;
		w->stream_events = 0;
		out->kind = CTL_WATCHER_DO_WATCH;
		out->resource_version = w->resource_version;
		break;
	}
}

int ctl_watcher_on_list(struct ctl_watcher *w, int rc, const cJSON *page)
{
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(page, "metadata");
	const char *cont = json_str(meta, "continue");
	const char *rv = json_str(meta, "resourceVersion");

	if (w->state != CTL_WATCHER_LISTING)
		return 0;
	if (rc == 0 && cont && *cont) {
		set_str(&w->continue_token, cont);
		return 0;
	}
	if (rc != 0 || !rv || !*rv) {
		/* Also an expired continue token (410): the snapshot is gone,
		 * so the pages we have are useless; start again. */
		relist(w);
		fail(w);
		return 0;
	}
	set_str(&w->continue_token, NULL);
	set_str(&w->resource_version, rv);
	w->state = CTL_WATCHER_LISTED;
	w->failures = 0;
	return 1;
}

enum ctl_watcher_effect ctl_watcher_on_event(struct ctl_watcher *w, const struct ctl_watch_event *ev)
{
	if (w->state != CTL_WATCHER_WATCHING)
		return CTL_WATCHER_NOTHING;
	if (ev->type == CTL_WATCH_ERROR) {
		if (ctl_watch_event_is_gone(ev)) {
			relist(w);
		} else {
			w->state = CTL_WATCHER_LISTED;
			fail(w);
		}
		return CTL_WATCHER_STOP;
	}
	const char *rv = json_str(cJSON_GetObjectItemCaseSensitive(ev->object, "metadata"), "resourceVersion");
	if (rv && *rv)
		set_str(&w->resource_version, rv);
	w->stream_events++;
	w->failures = 0;
	switch (ev->type) {
	case CTL_WATCH_ADDED:
	case CTL_WATCH_MODIFIED:
		return CTL_WATCHER_APPLY;
	case CTL_WATCH_DELETED:
		return CTL_WATCHER_DELETE;
	default:
		return CTL_WATCHER_NOTHING; /* BOOKMARK: only the resourceVersion moves */
	}
}

void ctl_watcher_on_watch_end(struct ctl_watcher *w, int rc)
{
	if (w->state != CTL_WATCHER_WATCHING)
		return; /* an ERROR event already decided */
	if (rc == CTL_EGONE) {
		relist(w);
		return;
	}
	w->state = CTL_WATCHER_LISTED;
	/* A normal end (timeoutSeconds ran out) resumes at once, unless the
	 * stream carried nothing at all: a server that accepts and closes
	 * every watch must not turn us into a busy loop. */
	if (rc != 0 || w->stream_events == 0)
		fail(w);
}

const char *ctl_watcher_state_name(enum ctl_watcher_state s)
{
	switch (s) {
	case CTL_WATCHER_EMPTY: return "empty";
	case CTL_WATCHER_LISTING: return "listing";
	case CTL_WATCHER_LISTED: return "listed";
	case CTL_WATCHER_WATCHING: return "watching";
	}
	return "unknown";
}
