/*
 * fuzz_watch.c: the watch stream end to end without the network. The input
 * is a raw watch body. It is framed three ways (in one piece, at split
 * points derived from the input itself, and byte by byte when short) under a
 * small line cap, and every framing must hand over the same lines and end
 * the same way: a line cut across curl writes is still one line. Every
 * framed line goes through ctl_watch_event_parse() and, when it is an
 * event, through the watcher state machine (or, when it is not, is offered
 * to the watcher as a list page), as the informer would.
 */
#include "fuzz.h"

#include "error.h"
#include "watch.h"

#include <cjson/cJSON.h>

#define LINE_CAP_MIN 64
#define LINE_CAP_SPREAD 4096
#define MAX_CUTS 6

struct seen {
	uint64_t hash;       /* of every line, with its length, in order */
	size_t lines;
	struct ctl_watcher *w; /* NULL: frame only */
};

static void drive_watcher(struct ctl_watcher *w, const char *line, size_t len)
{
	struct ctl_watch_event ev;
	struct ctl_watcher_action act;

	if (ctl_watch_event_parse(&ev, line, len) != 0) {
		/* Not an event: let the watcher read it as a list page. */
		cJSON *page = cJSON_ParseWithLength(line, len);
		if (page) {
			if (w->state != CTL_WATCHER_LISTING)
				ctl_watcher_next(w, &act);
			ctl_watcher_on_list(w, 0, page);
			cJSON_Delete(page);
		}
		return;
	}
	FUZZ_ASSERT(ev.root && cJSON_IsObject(ev.object));
	if (w->state != CTL_WATCHER_WATCHING)
		ctl_watcher_next(w, &act);
	switch (ctl_watcher_on_event(w, &ev)) {
	case CTL_WATCHER_APPLY:
	case CTL_WATCHER_DELETE:
		cJSON_Delete(ctl_watch_event_take(&ev));
		break;
	case CTL_WATCHER_STOP:
		ctl_watcher_on_watch_end(w, ctl_watch_event_is_gone(&ev) ? CTL_EGONE : CTL_ERR);
		ctl_watcher_next(w, &act);
		FUZZ_ASSERT(act.delay_ms >= 0 && act.delay_ms <= w->backoff_max_ms);
		break;
	case CTL_WATCHER_NOTHING:
		break;
	}
	ctl_watch_event_dispose(&ev);
}

static int on_line(const char *line, size_t len, void *arg)
{
	struct seen *s = arg;
	/* One "\r" before the newline is dropped; a line may still end in
	 * another ("...\r\r\n"), which JSON reads as whitespace. */
	FUZZ_ASSERT(len > 0 && memchr(line, '\n', len) == NULL);
	s->hash = fuzz_hash((const uint8_t *)line, len) ^ (s->hash * 31 + len);
	s->lines++;
	if (s->w)
		drive_watcher(s->w, line, len);
	return 0;
}

/* Frame data fed in the pieces that cuts[] (ascending offsets) delimit. */
static int frame(struct seen *s, const char *data, size_t size, const size_t *cuts, size_t ncuts,
		 size_t cap)
{
	struct ctl_watch_framer f;
	size_t at = 0;
	int rc = 0;

	ctl_watch_framer_init(&f, cap);
	for (size_t i = 0; i <= ncuts && rc == 0; i++) {
		size_t end = i < ncuts ? cuts[i] : size;
		/* Each piece in its own exact-size buffer, as curl hands them. */
		char *piece = fuzz_bytes((const uint8_t *)data + at, end - at);
		rc = ctl_watch_framer_feed(&f, piece, end - at, on_line, s);
		free(piece);
		at = end;
	}
	FUZZ_ASSERT(rc == 0 || rc == CTL_ETOOBIG);
	FUZZ_ASSERT(f.partial.len <= cap);
	ctl_watch_framer_dispose(&f);
	return rc;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h = fuzz_hash(data, size);
	size_t cap = LINE_CAP_MIN + (size_t)(h % LINE_CAP_SPREAD);
	size_t cuts[MAX_CUTS];
	struct ctl_watcher w;

	ctl_watcher_init(&w, 0, 0, h | 1);
	struct seen whole = {0, 0, &w};
	int rc_whole = frame(&whole, (const char *)data, size, NULL, 0, cap);
	ctl_watcher_dispose(&w);

	uint64_t r = h;
	for (size_t i = 0; i < MAX_CUTS; i++) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		cuts[i] = size ? (size_t)(r >> 33) % (size + 1) : 0;
	}
	qsort(cuts, MAX_CUTS, sizeof(cuts[0]), cmp_size);
	struct seen split = {0, 0, NULL};
	int rc_split = frame(&split, (const char *)data, size, cuts, MAX_CUTS, cap);
	FUZZ_ASSERT(rc_split == rc_whole && split.lines == whole.lines && split.hash == whole.hash);

	if (size <= 512) {
		size_t bytes[512];
		for (size_t i = 0; i < size; i++)
			bytes[i] = i + 1;
		struct seen each = {0, 0, NULL};
		int rc_each = frame(&each, (const char *)data, size, bytes, size ? size - 1 : 0, cap);
		FUZZ_ASSERT(rc_each == rc_whole && each.lines == whole.lines && each.hash == whole.hash);
	}
	return 0;
}
