/*
 * Tests for reconcilers/schedule/tz.c: offsets from the real zoneinfo files
 * (DST both ways, half-hour DST, no DST, the POSIX footer for far-future
 * times), wall-clock to UTC in gaps and folds, names that are refused, TZif
 * files that are malformed in every way we could think of (and every
 * truncation of a real one), and a cross-check against glibc's own reading
 * of the files.
 */
#include "test.h"

#include "error.h"
#include "schedule/tz.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long at(int y, int mo, int d, int h, int mi, int s)
{
	return tz_days_from_civil(y, mo, d) * 86400LL + h * 3600 + mi * 60 + s;
}

static const struct tz *zone(const char *name)
{
	const struct tz *z = NULL;
	int rc = tz_load(&z, name);
	if (rc != 0)
		fprintf(stderr, "tz_load(%s): %s\n", name, ctl_error_last()->message);
	CHECK_INT(rc, 0);
	return z;
}

/* ---- building TZif files ------------------------------------------------ */

struct blob {
	unsigned char b[8192];
	size_t n;
};

static void put(struct blob *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	memcpy(b->b + b->n, p, n);
	b->n += n;
}

static void put32(struct blob *b, uint32_t v)
{
	unsigned char x[4] = {v >> 24, v >> 16, v >> 8, v};
	put(b, x, 4);
}

static void put64(struct blob *b, uint64_t v)
{
	put32(b, (uint32_t)(v >> 32));
	put32(b, (uint32_t)v);
}

struct spec {
	char version;              /* 0 or '2' */
	int ntrans;
	const long long *trans;
	const unsigned char *idx;
	int ntypes;
	const int *offs;
	int leap;                  /* leap-second records to add */
	const char *footer;        /* NULL: no footer section at all */
};

static void block(struct blob *b, const struct spec *s, int timesize)
{
	put(b, "TZif", 4);
	put(b, &s->version, 1);
	put(b, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 15);
	put32(b, 0);
	put32(b, 0);
	put32(b, (uint32_t)s->leap);
	put32(b, (uint32_t)s->ntrans);
	put32(b, (uint32_t)s->ntypes);
	put32(b, 4);
	for (int i = 0; i < s->ntrans; i++) {
		if (timesize == 8)
			put64(b, (uint64_t)s->trans[i]);
		else
			put32(b, (uint32_t)s->trans[i]);
	}
	put(b, s->idx, (size_t)s->ntrans);
	for (int i = 0; i < s->ntypes; i++) {
		put32(b, (uint32_t)s->offs[i]);
		put(b, "\0\0", 2);
	}
	put(b, "XYZ", 4);
	for (int i = 0; i < s->leap; i++) {
		if (timesize == 8)
			put64(b, 78796800);
		else
			put32(b, 78796800);
		put32(b, 1);
	}
}

static struct blob tzif(const struct spec *s)
{
	struct blob b = {.n = 0};
	block(&b, s, 4);
	if (s->version) {
		block(&b, s, 8);
		if (s->footer) {
			put(&b, "\n", 1);
			put(&b, s->footer, strlen(s->footer));
			put(&b, "\n", 1);
		}
	}
	return b;
}

static const int zero_off[] = {0};

/* A v2 zone with no transitions: everything comes from the footer. */
static int footer_zone(const struct tz **out, const char *footer)
{
	struct spec s = {.version = '2', .ntypes = 1, .offs = zero_off, .footer = footer};
	struct blob b = tzif(&s);
	return tz_parse(out, footer, b.b, b.n);
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = malloc(65536);
	*len = f ? fread(buf, 1, 65536, f) : 0;
	if (f)
		fclose(f);
	return buf;
}

/* ---- cases -------------------------------------------------------------- */

TEST(tz_utc_is_built_in)
{
	const struct tz *z = NULL;
	CHECK_INT(tz_load_dir(&z, "/nonexistent-zoneinfo", "UTC"), 0);
	CHECK(z == tz_utc());
	CHECK_STR(tz_name(z), "UTC");
	CHECK_INT(tz_offset(z, at(2025, 7, 1, 12, 0, 0)), 0);
	CHECK_INT(tz_load_dir(&z, "/nonexistent-zoneinfo", "Etc/UTC"), 0);
	CHECK(z == tz_utc());
	CHECK_INT(tz_offset(NULL, 12345), 0);
	long long t = 0;
	CHECK_INT(tz_local_to_utc(z, 1000, &t), 1);
	CHECK_INT(t, 1000);
	tz_free(z); /* a no-op on built-in and cached zones */
}

struct offset_case {
	const char *zone;
	long long utc;
	int offset;
};

TEST(tz_offsets_from_real_zoneinfo)
{
	static const struct offset_case cases[] = {
		/* Amsterdam: CET/CEST, last Sunday of March and October at 01:00 UTC. */
		{"Europe/Amsterdam", 0, 3600},
		{"Europe/Amsterdam", 1736942400 /* 2025-01-15 12:00 */, 3600},
		{"Europe/Amsterdam", 1743296399 /* 2025-03-30 00:59:59 */, 3600},
		{"Europe/Amsterdam", 1743296400 /* 2025-03-30 01:00:00 */, 7200},
		{"Europe/Amsterdam", 1761440399 /* 2025-10-26 00:59:59 */, 7200},
		{"Europe/Amsterdam", 1761440400 /* 2025-10-26 01:00:00 */, 3600},
		/* New York: second Sunday of March, first Sunday of November, 02:00 local. */
		{"America/New_York", 1741503599 /* 2025-03-09 06:59:59 */, -18000},
		{"America/New_York", 1741503600 /* 2025-03-09 07:00:00 */, -14400},
		{"America/New_York", 1762063199 /* 2025-11-02 05:59:59 */, -14400},
		{"America/New_York", 1762063200 /* 2025-11-02 06:00:00 */, -18000},
		/* Lord Howe: +10:30, +11 in summer; the clock moves half an hour. */
		{"Australia/Lord_Howe", 1743865199 /* 2025-04-05 14:59:59 */, 39600},
		{"Australia/Lord_Howe", 1743865200 /* 2025-04-05 15:00:00 */, 37800},
		{"Australia/Lord_Howe", 1759591799 /* 2025-10-04 15:29:59 */, 37800},
		{"Australia/Lord_Howe", 1759591800 /* 2025-10-04 15:30:00 */, 39600},
		/* Kolkata: +5:30 all year. */
		{"Asia/Kolkata", 1735689600 /* 2025-01-01 */, 19800},
		{"Asia/Kolkata", 1751328000 /* 2025-07-01 */, 19800},
		{"UTC", 1751328000, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct offset_case *c = &cases[i];
		int got = tz_offset(zone(c->zone), c->utc);
		if (got != c->offset)
			fprintf(stderr, "case %zu: %s at %lld\n", i, c->zone, c->utc);
		CHECK_INT(got, c->offset);
	}
	/* The epoch constants above are what the calendar helper says. */
	CHECK_INT(at(2025, 3, 30, 1, 0, 0), 1743296400);
	CHECK_INT(at(2025, 10, 4, 15, 30, 0), 1759591800);
}

TEST(tz_far_future_uses_the_footer_rule)
{
	/* Past the last transition in the file the POSIX TZ footer decides. */
	CHECK_INT(tz_offset(zone("Europe/Amsterdam"), at(2090, 7, 1, 0, 0, 0)), 7200);
	CHECK_INT(tz_offset(zone("Europe/Amsterdam"), at(2090, 12, 1, 0, 0, 0)), 3600);
	CHECK_INT(tz_offset(zone("Europe/Amsterdam"), at(2090, 3, 26, 0, 59, 59)), 3600);
	CHECK_INT(tz_offset(zone("Europe/Amsterdam"), at(2090, 3, 26, 1, 0, 0)), 7200);
	CHECK_INT(tz_offset(zone("America/New_York"), at(2090, 7, 1, 0, 0, 0)), -14400);
	CHECK_INT(tz_offset(zone("Australia/Lord_Howe"), at(2090, 1, 1, 0, 0, 0)), 39600);
	CHECK_INT(tz_offset(zone("Australia/Lord_Howe"), at(2090, 6, 1, 0, 0, 0)), 37800);
	CHECK_INT(tz_offset(zone("Asia/Kolkata"), at(2090, 6, 1, 0, 0, 0)), 19800);
}

struct wall_case {
	const char *zone;
	long long local;
	int found;
	long long utc;
};

TEST(tz_local_to_utc_gap_and_fold)
{
	const struct wall_case cases[] = {
		/* New York spring forward: 02:00-02:59 does not exist. */
		{"America/New_York", at(2025, 3, 9, 2, 30, 0), 0, 0},
		{"America/New_York", at(2025, 3, 9, 1, 59, 0), 1, at(2025, 3, 9, 6, 59, 0)},
		{"America/New_York", at(2025, 3, 9, 3, 0, 0), 1, at(2025, 3, 9, 7, 0, 0)},
		/* Fall back: 01:00-01:59 happens twice; the first is EDT. */
		{"America/New_York", at(2025, 11, 2, 1, 30, 0), 2, at(2025, 11, 2, 5, 30, 0)},
		{"America/New_York", at(2025, 11, 2, 2, 0, 0), 1, at(2025, 11, 2, 7, 0, 0)},
		{"America/New_York", at(2025, 11, 2, 0, 59, 0), 1, at(2025, 11, 2, 4, 59, 0)},
		/* Amsterdam: 02:00-02:59 skipped in March, repeated in October. */
		{"Europe/Amsterdam", at(2025, 3, 30, 2, 30, 0), 0, 0},
		{"Europe/Amsterdam", at(2025, 10, 26, 2, 30, 0), 2, at(2025, 10, 26, 0, 30, 0)},
		/* Lord Howe moves half an hour: 02:00-02:29 skipped, 01:30-01:59 repeated. */
		{"Australia/Lord_Howe", at(2025, 10, 5, 2, 15, 0), 0, 0},
		{"Australia/Lord_Howe", at(2025, 10, 5, 2, 30, 0), 1, at(2025, 10, 4, 15, 30, 0)},
		{"Australia/Lord_Howe", at(2025, 4, 6, 1, 45, 0), 2, at(2025, 4, 5, 14, 45, 0)},
		{"Asia/Kolkata", at(2025, 6, 1, 0, 0, 0), 1, at(2025, 5, 31, 18, 30, 0)},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct wall_case *c = &cases[i];
		long long u = -1;
		int n = tz_local_to_utc(zone(c->zone), c->local, &u);
		if (n != c->found || (n && u != c->utc))
			fprintf(stderr, "case %zu: %s\n", i, c->zone);
		CHECK_INT(n, c->found);
		if (c->found)
			CHECK_INT(u, c->utc);
		else
			CHECK_INT(u, -1);
	}
}

TEST(tz_unknown_zone_is_invalid_with_clear_message)
{
	const struct tz *z = (const struct tz *)1;
	CHECK_INT(tz_load(&z, "Mars/Olympus_Mons"), CTL_EINVALID);
	CHECK(z == NULL);
	CHECK_STR(ctl_error_last()->message,
		  "unknown time zone \"Mars/Olympus_Mons\" (no such zone in /usr/share/zoneinfo)");
	/* A directory is not a zone. */
	CHECK_INT(tz_load(&z, "Europe"), CTL_EINVALID);
	CHECK(strstr(ctl_error_last()->message, "not a zone file") != NULL);
}

TEST(tz_rejects_names_that_are_not_zone_names)
{
	static const char *names[] = {"", "../etc/passwd", "/etc/localtime", "Europe/../UTC",
				      "Europe//Amsterdam", "Europe/", "Europe/Amster dam", "..", "a\\b"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const struct tz *z = NULL;
		CHECK_INT(tz_load(&z, names[i]), CTL_EINVALID);
		CHECK(strstr(ctl_error_last()->message, "is not a time zone name") != NULL);
	}
	const struct tz *z = NULL;
	CHECK_INT(tz_load(&z, NULL), CTL_EINVALID);
}

struct bad_case {
	const char *what;
	struct blob data;
	const char *message;
};

TEST(tz_malformed_tzif_is_an_error_not_a_crash)
{
	static const long long asc[] = {100, 200}, desc[] = {200, 100};
	static const unsigned char idx_ok[] = {0, 1}, idx_bad[] = {0, 5};
	static const int two[] = {3600, 7200}, huge[] = {3600, 100000};
	struct spec good = {.version = '2', .ntrans = 2, .trans = asc, .idx = idx_ok, .ntypes = 2,
			    .offs = two, .footer = "CET-1CEST,M3.5.0,M10.5.0/3"};
	struct spec s;
	struct bad_case cases[12];
	size_t n = 0;

	cases[n++] = (struct bad_case){"not TZif", {.b = "hello, world", .n = 12}, "truncated header"};
	cases[n] = (struct bad_case){"no magic", {.n = 0}, "no TZif magic"};
	memset(cases[n].data.b, 'x', 60);
	cases[n++].data.n = 60;
	s = good;
	s.version = 'X';
	cases[n++] = (struct bad_case){"version", tzif(&s), "unknown version"};
	s = good;
	s.ntypes = 0;
	cases[n++] = (struct bad_case){"no types", tzif(&s), "no local time types"};
	s = good;
	s.trans = desc;
	cases[n++] = (struct bad_case){"descending", tzif(&s), "transition times are not ascending"};
	s = good;
	s.idx = idx_bad;
	cases[n++] = (struct bad_case){"bad index", tzif(&s), "transition names a local time type that does not exist"};
	s = good;
	s.offs = huge;
	cases[n++] = (struct bad_case){"huge offset", tzif(&s), "UTC offset out of range"};
	s = good;
	s.footer = NULL;
	cases[n++] = (struct bad_case){"no footer", tzif(&s), "missing or malformed footer"};
	s = good;
	s.footer = "Nonsense";
	cases[n++] = (struct bad_case){"bad footer", tzif(&s), "malformed TZ rule \"Nonsense\""};
	s = good;
	s.version = 0;
	s.leap = 1;
	cases[n++] = (struct bad_case){"leap seconds", tzif(&s), "leap-second (right/) zones are not supported"};
	s = good;
	cases[n] = (struct bad_case){"short data", tzif(&s), "truncated data"};
	cases[n++].data.n = 44 + 10;

	for (size_t i = 0; i < n; i++) {
		const struct tz *z = (const struct tz *)1;
		int rc = tz_parse(&z, cases[i].what, cases[i].data.b, cases[i].data.n);
		if (rc != CTL_EINVALID || !strstr(ctl_error_last()->message, cases[i].message))
			fprintf(stderr, "case %s: rc %d, \"%s\"\n", cases[i].what, rc, ctl_error_last()->message);
		CHECK_INT(rc, CTL_EINVALID);
		CHECK(strstr(ctl_error_last()->message, cases[i].message) != NULL);
		CHECK(z == NULL);
	}
	/* The good one parses, so the cases above fail for their own reason. */
	struct blob b = tzif(&good);
	const struct tz *z = NULL;
	CHECK_INT(tz_parse(&z, "good", b.b, b.n), 0);
	CHECK_INT(tz_offset(z, 150), 3600);
	CHECK_INT(tz_offset(z, 50), 3600);
	tz_free(z);
	/* A version 1 file (no footer) keeps the last type forever. */
	good.version = 0;
	b = tzif(&good);
	CHECK_INT(tz_parse(&z, "v1", b.b, b.n), 0);
	CHECK_INT(tz_offset(z, 250), 7200);
	CHECK_INT(tz_offset(z, at(2090, 1, 1, 0, 0, 0)), 7200);
	tz_free(z);
}

TEST(tz_malformed_file_on_disk)
{
	char tmpl[] = "/tmp/acrpool-tz-XXXXXX";
	char *dir = mkdtemp(tmpl), path[256];
	CHECK(dir != NULL);
	snprintf(path, sizeof(path), "%s/Broken", dir);
	FILE *f = fopen(path, "w");
	fputs("TZif2 but not really", f);
	fclose(f);
	const struct tz *z = NULL;
	CHECK_INT(tz_load_dir(&z, dir, "Broken"), CTL_EINVALID);
	CHECK_STR(ctl_error_last()->message, "time zone \"Broken\": not a valid TZif file: truncated header");

	/* A good file in a private directory loads, and is cached. */
	struct spec s = {.version = '2', .ntypes = 1, .offs = zero_off, .footer = "<+0545>-5:45"};
	struct blob b = tzif(&s);
	snprintf(path, sizeof(path), "%s/Nepalish", dir);
	f = fopen(path, "w");
	fwrite(b.b, 1, b.n, f);
	fclose(f);
	CHECK_INT(tz_load_dir(&z, dir, "Nepalish"), 0);
	CHECK_INT(tz_offset(z, 0), 20700);
	const struct tz *again = NULL;
	CHECK_INT(tz_load_dir(&again, dir, "Nepalish"), 0);
	CHECK(again == z);
	unlink(path);
	snprintf(path, sizeof(path), "%s/Broken", dir);
	unlink(path);
	rmdir(dir);
}

TEST(tz_every_truncation_of_a_real_file_fails_cleanly)
{
	size_t len;
	unsigned char *data = slurp("/usr/share/zoneinfo/Europe/Amsterdam", &len);
	CHECK(len > 100);
	const struct tz *z = NULL;
	CHECK_INT(tz_parse(&z, "whole", data, len), 0);
	tz_free(z);
	for (size_t n = 0; n < len; n++) {
		z = (const struct tz *)1;
		int rc = tz_parse(&z, "cut", data, n);
		if (rc != CTL_EINVALID)
			fprintf(stderr, "truncated at %zu: rc %d\n", n, rc);
		CHECK_INT(rc, CTL_EINVALID);
		CHECK(z == NULL);
	}
	/* Flipped bytes may or may not parse, but never crash or leak. */
	unsigned seed = 12345;
	for (int i = 0; i < 5000; i++) {
		unsigned char copy[65536];
		memcpy(copy, data, len);
		for (int k = 0; k < 3; k++) {
			seed = seed * 1103515245 + 12345;
			copy[(seed >> 8) % len] ^= (unsigned char)(1 + (seed >> 20) % 255);
		}
		if (tz_parse(&z, "flipped", copy, len) == 0) {
			(void)tz_offset(z, at(2030, 1, 1, 0, 0, 0));
			long long u;
			(void)tz_local_to_utc(z, at(2030, 3, 31, 2, 30, 0), &u);
			tz_free(z);
		}
	}
	free(data);
}

struct footer_case {
	const char *footer;
	long long utc;
	int offset;
};

TEST(tz_posix_footer_rules)
{
	const struct footer_case cases[] = {
		{"CET-1CEST,M3.5.0,M10.5.0/3", at(2030, 1, 1, 0, 0, 0), 3600},
		{"CET-1CEST,M3.5.0,M10.5.0/3", at(2030, 3, 31, 0, 59, 59), 3600},
		{"CET-1CEST,M3.5.0,M10.5.0/3", at(2030, 3, 31, 1, 0, 0), 7200},
		{"CET-1CEST,M3.5.0,M10.5.0/3", at(2030, 10, 27, 1, 0, 0), 3600},
		{"EST5EDT,M3.2.0,M11.1.0", at(2030, 7, 1, 0, 0, 0), -14400},
		{"EST5EDT,M3.2.0,M11.1.0", at(2030, 12, 1, 0, 0, 0), -18000},
		{"EST5EDT", at(2030, 7, 1, 0, 0, 0), -14400},  /* no rule: US default */
		{"<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", at(2030, 1, 1, 0, 0, 0), 39600},
		{"<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", at(2030, 6, 1, 0, 0, 0), 37800},
		{"<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", at(2030, 12, 31, 23, 0, 0), 39600},
		{"<-03>3", at(2030, 6, 1, 0, 0, 0), -10800},
		{"<+0545>-5:45", 0, 20700},
		/* Dublin: "standard" is summer time and winter is negative DST. */
		{"IST-1GMT0,M10.5.0,M3.5.0/1", at(2030, 1, 15, 0, 0, 0), 0},
		{"IST-1GMT0,M10.5.0,M3.5.0/1", at(2030, 7, 15, 0, 0, 0), 3600},
		/* Julian days: J60 is always March 1; plain 300 is zero-based. */
		{"XXX3YYY,J60,300", at(2030, 3, 1, 4, 59, 59), -10800},
		{"XXX3YYY,J60,300", at(2030, 3, 1, 5, 0, 0), -7200},
		{"XXX3YYY,J60,300", at(2032, 3, 1, 5, 0, 0), -7200},
		{"XXX3YYY,J60,300", at(2032, 2, 29, 5, 0, 0), -10800},
		{"XXX3YYY,J60,300", at(2030, 10, 28, 3, 59, 59), -7200},
		{"XXX3YYY,J60,300", at(2030, 10, 28, 4, 0, 0), -10800},
		/* Transition times past 24h (RFC 8536 allows -167..167). */
		{"<-02>2<-01>,M3.5.0/-1,M10.5.0/0", at(2030, 7, 1, 0, 0, 0), -3600},
		{"EST5EDT,0/0,J365/25", at(2030, 12, 31, 23, 0, 0), -14400}, /* DST all year */
		{"EST5EDT,0/0,J365/25", at(2030, 1, 1, 5, 0, 0), -14400},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct tz *z = NULL;
		int rc = footer_zone(&z, cases[i].footer);
		if (rc != 0)
			fprintf(stderr, "case %zu: %s\n", i, ctl_error_last()->message);
		CHECK_INT(rc, 0);
		if (rc != 0)
			continue;
		int got = tz_offset(z, cases[i].utc);
		if (got != cases[i].offset)
			fprintf(stderr, "case %zu: %s at %lld\n", i, cases[i].footer, cases[i].utc);
		CHECK_INT(got, cases[i].offset);
		tz_free(z);
	}
	static const char *bad[] = {"CE-1", "CET", "CET-1CEST,M3.5.0", "CET-1CEST,M13.5.0,M10.5.0",
				    "CET-25", "CET-1CEST,M3.5.0,M10.5.0/200", "CET-1CEST,J0,J365",
				    "CET-1CEST,M3.6.0,M10.5.0", "<+01-1", "CET-1CEST,M3.5.0,M10.5.0 x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct tz *z = NULL;
		CHECK_INT(footer_zone(&z, bad[i]), CTL_EINVALID);
		CHECK(strstr(ctl_error_last()->message, "malformed TZ rule") != NULL);
	}
}

TEST(tz_footer_agrees_with_the_transition_table)
{
	/* Debian's files list transitions up to 2037; the footer must give
	 * the same answer over the years both cover. */
	const struct tz *file = zone("Europe/Amsterdam"), *rule = NULL;
	CHECK_INT(footer_zone(&rule, "CET-1CEST,M3.5.0,M10.5.0/3"), 0);
	int mismatches = 0;
	for (long long t = at(2000, 1, 1, 0, 0, 0); t < at(2037, 1, 1, 0, 0, 0); t += 1800)
		mismatches += tz_offset(file, t) != tz_offset(rule, t);
	CHECK_INT(mismatches, 0);
	tz_free(rule);
}

TEST(tz_agrees_with_glibc)
{
	/* glibc reads the same files; ask it through TZ in this test process
	 * only (the operator itself never touches TZ). */
	static const char *zones[] = {"Europe/Amsterdam", "America/New_York", "Australia/Lord_Howe",
				      "Asia/Kolkata", "Europe/Dublin", "America/Sao_Paulo",
				      "Pacific/Auckland", "Africa/Casablanca", "America/St_Johns",
				      "Asia/Tehran", "Pacific/Chatham", "America/Santiago"};
	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		char env[128];
		snprintf(env, sizeof(env), ":%s", zones[i]);
		setenv("TZ", env, 1);
		tzset();
		const struct tz *z = zone(zones[i]);
		int mismatches = 0;
		for (long long t = at(1971, 1, 1, 0, 0, 0); t < at(2060, 1, 1, 0, 0, 0); t += 3 * 3600 + 7) {
			time_t tt = (time_t)t;
			struct tm tm;
			localtime_r(&tt, &tm);
			if (tm.tm_gmtoff != tz_offset(z, t) && mismatches++ < 3)
				fprintf(stderr, "%s at %lld: glibc %ld, tz %d\n", zones[i], t, tm.tm_gmtoff,
					tz_offset(z, t));
		}
		CHECK_INT(mismatches, 0);
	}
	unsetenv("TZ");
	tzset();
}

static void *load_many(void *arg)
{
	static const char *names[] = {"Europe/Amsterdam", "America/New_York", "Asia/Kolkata", "Europe/Paris"};
	const struct tz **got = arg;
	for (int round = 0; round < 50; round++)
		for (int i = 0; i < 4; i++)
			if (tz_load(&got[i], names[i]) != 0)
				got[i] = NULL;
	return NULL;
}

TEST(tz_cache_is_shared_across_threads)
{
	pthread_t th[8];
	const struct tz *got[8][4];
	for (int i = 0; i < 8; i++)
		pthread_create(&th[i], NULL, load_many, got[i]);
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 8; i++)
		for (int k = 0; k < 4; k++) {
			CHECK(got[i][k] != NULL);
			CHECK(got[i][k] == got[0][k]);
		}
	CHECK_STR(tz_name(got[0][0]), "Europe/Amsterdam");
}

TEST(tz_calendar_matches_timegm)
{
	for (long long days = -800000; days < 800000; days += 37) {
		long long y;
		int m, d;
		tz_civil_from_days(days, &y, &m, &d);
		CHECK_INT(tz_days_from_civil(y, m, d), days);
		struct tm tm = {.tm_year = (int)(y - 1900), .tm_mon = m - 1, .tm_mday = d};
		CHECK_INT(timegm(&tm), days * 86400);
		CHECK(d >= 1 && d <= tz_days_in_month(y, m));
	}
	CHECK_INT(tz_days_in_month(2024, 2), 29);
	CHECK_INT(tz_days_in_month(2100, 2), 28);
	CHECK_INT(tz_days_in_month(2000, 2), 29);
}

TEST_MAIN(T(tz_utc_is_built_in), T(tz_offsets_from_real_zoneinfo), T(tz_far_future_uses_the_footer_rule),
	  T(tz_local_to_utc_gap_and_fold), T(tz_unknown_zone_is_invalid_with_clear_message),
	  T(tz_rejects_names_that_are_not_zone_names), T(tz_malformed_tzif_is_an_error_not_a_crash),
	  T(tz_malformed_file_on_disk), T(tz_every_truncation_of_a_real_file_fails_cleanly),
	  T(tz_posix_footer_rules), T(tz_footer_agrees_with_the_transition_table), T(tz_agrees_with_glibc),
	  T(tz_cache_is_shared_across_threads), T(tz_calendar_matches_timegm))
