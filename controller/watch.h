/*
 * watch.h: the watch protocol without the network.
 *
 * Three pieces, each testable with canned bytes:
 *  - the framer cuts a watch stream (one JSON event per line, lines split
 *    anywhere across curl writes) into lines, with a cap on a line;
 *  - ctl_watch_event_parse() turns a line into a typed event;
 *  - the watcher is the list-then-watch state machine (after kube-rs
 *    watcher.rs). It does no I/O: ctl_watcher_next() says what to do next
 *    (list a page, or watch from a resourceVersion, after an optional
 *    backoff delay) and the caller reports each outcome back through
 *    ctl_watcher_on_list(), ctl_watcher_on_event() and
 *    ctl_watcher_on_watch_end(). The informer is the driver that does the
 *    I/O; a test is another driver.
 *
 * The states:
 *
 *   EMPTY --next: list--> LISTING --page with continue--> LISTING
 *                            |  \--last page--> LISTED --next: watch--> WATCHING
 *                            \--error--> EMPTY (+ backoff)
 *   WATCHING --event--> WATCHING (resourceVersion advances; BOOKMARK too)
 *   WATCHING --stream ends normally--> LISTED (resume; backoff if it was empty)
 *   WATCHING --410 / ERROR 410 / Expired / Gone--> EMPTY (relist: the
 *             server no longer has history back to our resourceVersion, so
 *             only a full list can tell us what we missed)
 *   WATCHING --other error, idle stream--> LISTED (+ backoff)
 */
#ifndef CTL_WATCH_H
#define CTL_WATCH_H

#include "buf.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* --- framing ------------------------------------------------------------- */

#define CTL_WATCH_MAX_LINE_DEFAULT (16u * 1024 * 1024)

struct ctl_watch_framer {
	struct ctl_buf partial; /* the start of a line whose newline has not come; never holds a '\n' */
	size_t max_line;
};

/* Return 0 to go on, or a code to stop feeding (returned by feed). */
typedef int (*ctl_watch_line_fn)(const char *line, size_t len, void *arg);

void ctl_watch_framer_init(struct ctl_watch_framer *f, size_t max_line); /* 0: the default */
void ctl_watch_framer_dispose(struct ctl_watch_framer *f);
void ctl_watch_framer_reset(struct ctl_watch_framer *f); /* a new stream */

/* Feed bytes; fn gets every complete, non-empty line (without "\n" or
 * "\r\n") in order. Only the new bytes are scanned: a partial line is kept
 * and completed by a later feed, never re-scanned. Returns 0; fn's code
 * when fn stopped; CTL_ETOOBIG when a line exceeds max_line (the stream is
 * then unusable: reset before reusing). */
int ctl_watch_framer_feed(struct ctl_watch_framer *f, const char *data, size_t len,
			  ctl_watch_line_fn fn, void *arg);

/* --- events -------------------------------------------------------------- */

enum ctl_watch_event_type {
	CTL_WATCH_ADDED,
	CTL_WATCH_MODIFIED,
	CTL_WATCH_DELETED,
	CTL_WATCH_BOOKMARK,
	CTL_WATCH_ERROR,
};

struct ctl_watch_event {
	enum ctl_watch_event_type type;
	cJSON *root;    /* the whole line, owned */
	cJSON *object;  /* root's "object" (a Status for ERROR), borrowed */
};

/* Parse one line. Returns 0, or CTL_EINVALID (not JSON, unknown type, no
 * object) with the reason in the last error. */
int ctl_watch_event_parse(struct ctl_watch_event *out, const char *line, size_t len);
void ctl_watch_event_dispose(struct ctl_watch_event *ev);

/* Detach the object from the event: the caller owns it. */
cJSON *ctl_watch_event_take(struct ctl_watch_event *ev);

/* For an ERROR event: does its Status say our resourceVersion is too old
 * (code 410, reason Expired or Gone)? */
int ctl_watch_event_is_gone(const struct ctl_watch_event *ev);

/* --- the watcher state machine ------------------------------------------- */

enum ctl_watcher_state {
	CTL_WATCHER_EMPTY,    /* nothing listed: a list from scratch is next */
	CTL_WATCHER_LISTING,  /* a paged list is under way */
	CTL_WATCHER_LISTED,   /* have a resourceVersion: a watch from it is next */
	CTL_WATCHER_WATCHING, /* a stream is open */
};

struct ctl_watcher {
	enum ctl_watcher_state state;
	char *resource_version;   /* resume point: the list's, then each event's */
	char *continue_token;     /* LISTING: the next page, NULL for the first */
	long delay_ms;            /* backoff to wait before the next action */
	unsigned failures;        /* consecutive failures; drives the backoff */
	long backoff_base_ms;
	long backoff_max_ms;
	uint64_t rng;             /* xorshift state for the jitter */
	unsigned long stream_events; /* events seen on the current stream */
};

enum ctl_watcher_action_kind {
	CTL_WATCHER_DO_LIST,
	CTL_WATCHER_DO_WATCH,
};

struct ctl_watcher_action {
	enum ctl_watcher_action_kind kind;
	long delay_ms;               /* sleep this long first */
	const char *continue_token;  /* DO_LIST: NULL means the first page */
	const char *resource_version; /* DO_WATCH: the resume point */
};

enum ctl_watcher_effect {
	CTL_WATCHER_NOTHING, /* bookmark, or an event after the stream was given up */
	CTL_WATCHER_APPLY,   /* ADDED or MODIFIED: put the object in the store */
	CTL_WATCHER_DELETE,  /* DELETED: drop it from the store */
	CTL_WATCHER_STOP,    /* ERROR: abandon this stream now; next() says what follows */
};

/* Backoff: full jitter over base_ms doubling per failure up to max_ms (0s:
 * 200 ms and 30 s). seed makes the jitter reproducible in tests. */
void ctl_watcher_init(struct ctl_watcher *w, long base_ms, long max_ms, uint64_t seed);
void ctl_watcher_dispose(struct ctl_watcher *w);

/* What to do next. The strings in out belong to w and stay valid until the
 * next call into w. Moves LISTED to WATCHING and EMPTY to LISTING. */
void ctl_watcher_next(struct ctl_watcher *w, struct ctl_watcher_action *out);

/* The list page asked for came back: rc 0 with page, or an error. Returns 1
 * when this was the last page, so the caller swaps in everything gathered
 * since the first page; 0 when more pages follow or the list failed (the
 * caller then discards what it gathered: the next list starts over). */
int ctl_watcher_on_list(struct ctl_watcher *w, int rc, const cJSON *page);

/* An event arrived on the open stream. */
enum ctl_watcher_effect ctl_watcher_on_event(struct ctl_watcher *w, const struct ctl_watch_event *ev);

/* The stream ended with rc: 0 (the server closed it, as it does after
 * timeoutSeconds), CTL_EGONE, or any error (network, idle, bad line). */
void ctl_watcher_on_watch_end(struct ctl_watcher *w, int rc);

const char *ctl_watcher_state_name(enum ctl_watcher_state s);

#endif
