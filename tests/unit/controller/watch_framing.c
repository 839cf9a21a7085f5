/* Unit tests for the framing and event parsing half of controller/watch.c:
 * canned watch streams cut at awkward places. */
#include "test.h"

#include "error.h"
#include "watch.h"
#include "xalloc.h"

#include <stdlib.h>

struct lines {
	char *v[64];
	size_t n;
	int fail_at; /* return an error on this line number (1-based), 0: never */
};

static int collect(const char *line, size_t len, void *arg)
{
	struct lines *l = arg;
	if (l->n < 64)
		l->v[l->n] = xstrndup(line, len);
	l->n++;
	return l->fail_at && (int)l->n == l->fail_at ? CTL_EINVALID : 0;
}

static void lines_free(struct lines *l)
{
	for (size_t i = 0; i < l->n && i < 64; i++)
		free(l->v[i]);
}

static const char stream[] =
	"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"11\"}}}\n"
	"{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"12\"}}}\n"
	"{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Thing\",\"metadata\":{\"resourceVersion\":\"15\"}}}\n";

TEST(framer_reassembles_a_line_split_mid_line)
{
	struct ctl_watch_framer f;
	struct lines l = {0};
	ctl_watch_framer_init(&f, 0);
	size_t cut = 30; /* inside the first object */
	CHECK_INT(ctl_watch_framer_feed(&f, stream, cut, collect, &l), 0);
	CHECK_INT(l.n, 0);
	CHECK_INT(ctl_watch_framer_feed(&f, stream + cut, sizeof(stream) - 1 - cut, collect, &l), 0);
	CHECK_INT(l.n, 3);
	CHECK(strncmp(l.v[0], "{\"type\":\"ADDED\"", 15) == 0);
	CHECK(strncmp(l.v[2], "{\"type\":\"BOOKMARK\"", 18) == 0);
	CHECK(l.v[0][strlen(l.v[0]) - 1] == '}');
	lines_free(&l);
	ctl_watch_framer_dispose(&f);
}

TEST(framer_survives_one_byte_writes)
{
	struct ctl_watch_framer f;
	struct lines l = {0};
	ctl_watch_framer_init(&f, 0);
	for (size_t i = 0; i < sizeof(stream) - 1; i++)
		CHECK_INT(ctl_watch_framer_feed(&f, stream + i, 1, collect, &l), 0);
	CHECK_INT(l.n, 3);
	/* Byte-at-a-time gives the very same lines as one big write. */
	struct lines whole = {0};
	ctl_watch_framer_reset(&f);
	CHECK_INT(ctl_watch_framer_feed(&f, stream, sizeof(stream) - 1, collect, &whole), 0);
	CHECK_INT(whole.n, 3);
	for (size_t i = 0; i < 3; i++)
		CHECK_STR(l.v[i], whole.v[i]);
	lines_free(&l);
	lines_free(&whole);
	ctl_watch_framer_dispose(&f);
}

TEST(framer_splits_many_lines_in_one_chunk)
{
	struct ctl_watch_framer f;
	struct lines l = {0};
	struct ctl_buf b = CTL_BUF_INIT;
	for (int i = 0; i < 50; i++)
		ctl_buf_printf(&b, "{\"n\":%d}\n", i);
	/* A cap far below the chunk: only a line counts against it. */
	ctl_watch_framer_init(&f, 16);
	CHECK_INT(ctl_watch_framer_feed(&f, b.ptr, b.len, collect, &l), 0);
	CHECK_INT(l.n, 50);
	CHECK_STR(l.v[0], "{\"n\":0}");
	CHECK_STR(l.v[49], "{\"n\":49}");
	lines_free(&l);
	ctl_buf_dispose(&b);
	ctl_watch_framer_dispose(&f);
}

TEST(framer_refuses_a_line_over_the_cap)
{
	struct ctl_watch_framer f;
	struct lines l = {0};
	ctl_watch_framer_init(&f, 10);
	/* Whole line in one chunk. */
	CHECK_INT(ctl_watch_framer_feed(&f, "0123456789A\n", 12, collect, &l), CTL_ETOOBIG);
	CHECK_STR(ctl_error_last()->reason, "LineTooLong");
	/* A line growing past the cap across writes, no newline yet. */
	ctl_watch_framer_reset(&f);
	CHECK_INT(ctl_watch_framer_feed(&f, "012345", 6, collect, &l), 0);
	CHECK_INT(ctl_watch_framer_feed(&f, "6789AB", 6, collect, &l), CTL_ETOOBIG);
	/* Exactly at the cap is fine. */
	ctl_watch_framer_reset(&f);
	CHECK_INT(ctl_watch_framer_feed(&f, "01234", 5, collect, &l), 0);
	CHECK_INT(ctl_watch_framer_feed(&f, "56789\n", 6, collect, &l), 0);
	CHECK_INT(l.n, 1);
	CHECK_STR(l.v[0], "0123456789");
	lines_free(&l);
	ctl_watch_framer_dispose(&f);
}

TEST(framer_drops_crlf_and_empty_lines)
{
	struct ctl_watch_framer f;
	struct lines l = {0};
	ctl_watch_framer_init(&f, 0);
	const char *s = "\n{\"a\":1}\r\n\r\n\n{\"b\":2}\n";
	CHECK_INT(ctl_watch_framer_feed(&f, s, strlen(s), collect, &l), 0);
	CHECK_INT(l.n, 2);
	CHECK_STR(l.v[0], "{\"a\":1}");
	CHECK_STR(l.v[1], "{\"b\":2}");
	lines_free(&l);
	ctl_watch_framer_dispose(&f);
}

TEST(framer_stops_when_the_callback_fails)
{
	struct ctl_watch_framer f;
	struct lines l = {.fail_at = 2};
	ctl_watch_framer_init(&f, 0);
	CHECK_INT(ctl_watch_framer_feed(&f, stream, sizeof(stream) - 1, collect, &l), CTL_EINVALID);
	CHECK_INT(l.n, 2);
	lines_free(&l);
	ctl_watch_framer_dispose(&f);
}

TEST(event_parse_reads_every_type)
{
	static const struct {
		const char *line;
		enum ctl_watch_event_type type;
	} cases[] = {
		{"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}", CTL_WATCH_ADDED},
		{"{\"type\":\"MODIFIED\",\"object\":{}}", CTL_WATCH_MODIFIED},
		{"{\"type\":\"DELETED\",\"object\":{}}", CTL_WATCH_DELETED},
		{"{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"9\"}}}", CTL_WATCH_BOOKMARK},
		{"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":500}}", CTL_WATCH_ERROR},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctl_watch_event ev;
		CHECK_INT(ctl_watch_event_parse(&ev, cases[i].line, strlen(cases[i].line)), 0);
		CHECK_INT(ev.type, cases[i].type);
		CHECK(cJSON_IsObject(ev.object));
		CHECK_INT(ctl_watch_event_is_gone(&ev), 0);
		ctl_watch_event_dispose(&ev);
	}
}

TEST(event_parse_rejects_garbage)
{
	static const char *const bad[] = {
		"not json", "[1,2]", "{\"type\":\"ADDED\"}", "{\"object\":{}}",
		"{\"type\":\"SURPRISE\",\"object\":{}}", "{\"type\":\"ADDED\",\"object\":\"str\"}",
		"{\"type\":\"ADDED\",\"object\":{}", /* cut short */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ctl_watch_event ev;
		CHECK_INT(ctl_watch_event_parse(&ev, bad[i], strlen(bad[i])), CTL_EINVALID);
		CHECK(ev.root == NULL);
	}
}

TEST(event_error_410_or_expired_means_gone)
{
	static const char *const gone[] = {
		"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"reason\":\"Expired\"}}",
		"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"reason\":\"Expired\"}}",
		"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"reason\":\"Gone\"}}",
		"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410}}",
	};
	for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++) {
		struct ctl_watch_event ev;
		CHECK_INT(ctl_watch_event_parse(&ev, gone[i], strlen(gone[i])), 0);
		CHECK_INT(ctl_watch_event_is_gone(&ev), 1);
		ctl_watch_event_dispose(&ev);
	}
}

TEST(event_take_detaches_the_object)
{
	const char *line = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}";
	struct ctl_watch_event ev;
	CHECK_INT(ctl_watch_event_parse(&ev, line, strlen(line)), 0);
	cJSON *o = ctl_watch_event_take(&ev);
	CHECK(cJSON_IsObject(o));
	CHECK(ev.object == NULL);
	ctl_watch_event_dispose(&ev);
	CHECK_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "metadata"), "name")->valuestring, "a");
	cJSON_Delete(o);
}

TEST_MAIN(T(framer_reassembles_a_line_split_mid_line), T(framer_survives_one_byte_writes),
	  T(framer_splits_many_lines_in_one_chunk), T(framer_refuses_a_line_over_the_cap),
	  T(framer_drops_crlf_and_empty_lines), T(framer_stops_when_the_callback_fails),
	  T(event_parse_reads_every_type), T(event_parse_rejects_garbage),
	  T(event_error_410_or_expired_means_gone), T(event_take_detaches_the_object))
