/*
 * Tests for reconcilers/schedule/cron.c: what parses to what, every
 * malformed form with its message, next/prev across month and year ends,
 * Feb 29, the day-of-month OR day-of-week rule, the one-year search bound,
 * and the DST semantics (a wall time in the spring-forward gap does not
 * fire; one in the fall-back fold fires once) in real zones. Clocks are
 * fixed instants.
 */
#include "test.h"

#include "error.h"
#include "schedule/cron.h"
#include "schedule/tz.h"

#include <stdint.h>
#include <time.h>

static long long at(int y, int mo, int d, int h, int mi, int s)
{
	return tz_days_from_civil(y, mo, d) * 86400LL + h * 3600 + mi * 60 + s;
}

static const struct tz *zone(const char *name)
{
	const struct tz *z = NULL;
	CHECK_INT(tz_load(&z, name), 0);
	return z;
}

static uint64_t bits(const char *list)
{
	uint64_t m = 0;
	for (const char *p = list; *p;) {
		char *end;
		long v = strtol(p, &end, 10);
		m |= 1ULL << v;
		p = *end ? end + 1 : end;
	}
	return m;
}

static uint64_t range(int lo, int hi)
{
	uint64_t m = 0;
	for (int v = lo; v <= hi; v++)
		m |= 1ULL << v;
	return m;
}

struct parse_case {
	const char *expr;
	uint64_t minutes, hours, doms, months, dows;
	bool dom_any, dow_any;
};

TEST(cron_parse_accepts_every_form)
{
	const uint64_t M = range(0, 59), H = range(0, 23), D = range(1, 31), MO = range(1, 12), W = range(0, 6);
	const struct parse_case cases[] = {
		{"* * * * *", M, H, D, MO, W, true, true},
		{"*/15 * * * *", bits("0,15,30,45"), H, D, MO, W, true, true},
		{"0 9-17/2 * * 1-5", bits("0"), bits("9,11,13,15,17"), D, MO, range(1, 5), true, false},
		{"5/20 0 1,15 jan,Jul,DEC mon-FRI", bits("5,25,45"), bits("0"), bits("1,15"), bits("1,7,12"),
		 range(1, 5), false, false},
		{"0 0 * * 7", bits("0"), bits("0"), D, MO, bits("0"), true, false},
		{"0 0 * * 0", bits("0"), bits("0"), D, MO, bits("0"), true, false},
		{"0 0 * * sun,Sat", bits("0"), bits("0"), D, MO, bits("0,6"), true, false},
		{"0 0 * * FRI-SUN", bits("0"), bits("0"), D, MO, bits("0,5,6"), true, false},
		{"0 0 * * 5-7", bits("0"), bits("0"), D, MO, bits("0,5,6"), true, false},
		{"0 0 * * 0-7", bits("0"), bits("0"), D, MO, W, true, false},
		{"0 0 * * */2", bits("0"), bits("0"), D, MO, bits("0,2,4,6"), true, false},
		/* A star with a step restricts (Kubernetes CronJob); a bare star in
		 * a list does not. */
		{"0 0 */2 * *", bits("0"), bits("0"), bits("1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31"), MO, W,
		 false, true},
		{"0 0 *,5 * *", bits("0"), bits("0"), D, MO, W, true, true},
		{"0 0 */1 * *", bits("0"), bits("0"), D, MO, W, true, true},
		{"  0   7\t* *   1-5  ", bits("0"), bits("7"), D, MO, range(1, 5), true, false},
		{"59 23 31 12 6", bits("59"), bits("23"), bits("31"), bits("12"), bits("6"), false, false},
		{"0 0 29 2 *", bits("0"), bits("0"), bits("29"), bits("2"), W, false, true},
		{"*/90 * * * *", bits("0"), H, D, MO, W, true, true},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct parse_case *c = &cases[i];
		struct cron cr;
		int rc = cron_parse(&cr, c->expr);
		if (rc != 0)
			fprintf(stderr, "case %zu \"%s\": %s\n", i, c->expr, ctl_error_last()->message);
		CHECK_INT(rc, 0);
		CHECK(cr.minutes == c->minutes);
		CHECK(cr.hours == c->hours);
		CHECK(cr.doms == c->doms);
		CHECK(cr.months == c->months);
		if (cr.dows != c->dows)
			fprintf(stderr, "case %zu \"%s\": dows %x\n", i, c->expr, cr.dows);
		CHECK(cr.dows == c->dows);
		CHECK(cr.dom_any == c->dom_any);
		CHECK(cr.dow_any == c->dow_any);
	}
}

struct bad_case {
	const char *expr;
	const char *message;
};

TEST(cron_parse_rejects_malformed_with_message)
{
	static const struct bad_case cases[] = {
		{"", "cron: expected 5 fields (minute hour day-of-month month day-of-week), got 0"},
		{"   ", "cron: expected 5 fields (minute hour day-of-month month day-of-week), got 0"},
		{"* * * *", "cron: expected 5 fields (minute hour day-of-month month day-of-week), got 4"},
		{"* * * * * *", "cron: expected 5 fields (minute hour day-of-month month day-of-week), got 6"},
		{"@daily", "cron: expected 5 fields (minute hour day-of-month month day-of-week), got 1"},
		{"60 * * * *", "minute: 60 is out of range 0-59"},
		{"0 25 * * *", "hour: 25 is out of range 0-23"},
		{"0 0 0 * *", "day-of-month: 0 is out of range 1-31"},
		{"0 0 32 * *", "day-of-month: 32 is out of range 1-31"},
		{"0 0 * 0 *", "month: 0 is out of range 1-12"},
		{"0 0 * 13 *", "month: 13 is out of range 1-12"},
		{"0 0 * * 8", "day-of-week: 8 is out of range 0-7"},
		{"99999999999 * * * *", "minute: 99999999999 is out of range 0-59"},
		{"0 0 1-40 * *", "day-of-month: 40 is out of range 1-31"},
		{"x * * * *", "minute: \"x\" is not a number"},
		{"0 MON * * *", "hour: \"MON\" is not a number"},
		{"0 0 * FOO *", "month: \"FOO\" is not a number or a month name (JAN-DEC)"},
		{"0 0 * JANUARY *", "month: \"JANUARY\" is not a number or a month name (JAN-DEC)"},
		{"0 0 * * MONDAY", "day-of-week: \"MONDAY\" is not a number or a day name (SUN-SAT)"},
		{"0 0 * * 1x", "day-of-week: \"1x\" is not a number or a day name (SUN-SAT)"},
		{"*/0 * * * *", "minute: step 0 in \"*/0\" must be at least 1"},
		{"*/ * * * *", "minute: \"*/\" needs a number after \"/\""},
		{"*/x * * * *", "minute: \"*/x\" needs a number after \"/\""},
		{"*/5x * * * *", "minute: step in \"*/5x\" is not a number"},
		{"0 5-1 * * *", "hour: range 5-1 runs backwards (the first value must not exceed the second)"},
		{"0 0 * * SAT-MON", "day-of-week: range SAT-MON runs backwards (the first value must not exceed the second)"},
		{"1,,2 * * * *", "minute: empty list item"},
		{"1, * * * *", "minute: empty list item"},
		{",1 * * * *", "minute: empty list item"},
		{"- * * * *", "minute: \"-\" is missing a value"},
		{"5- * * * *", "minute: \"5-\" is missing a value"},
		{"*5 * * * *", "minute: \"*5\" is not a valid value, range or step"},
		{"*-5 * * * *", "minute: \"*-5\" is not a valid value, range or step"},
		{"1-2-3 * * * *", "minute: \"1-2-3\" is not a valid value, range or step"},
		{"1/2/3 * * * *", "minute: \"1/2/3\" is not a valid value, range or step"},
		{"? * * * *", "minute: \"?\" is not a valid value, range or step"},
		{"0 0 L * *", "day-of-month: \"L\" is not a number"},
		{"0 0 * * 5#3", "day-of-week: \"5#3\" is not a valid value, range or step"},
		{"0 0 30 2 *", "day-of-month: no day in \"30\" occurs in month \"2\", so the expression would never fire"},
		{"0 0 31 apr,jun *",
		 "day-of-month: no day in \"31\" occurs in month \"apr,jun\", so the expression would never fire"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cron c;
		CHECK_INT(cron_parse(&c, cases[i].expr), CTL_EINVALID);
		CHECK_STR(ctl_error_last()->message, cases[i].message);
		CHECK_STR(ctl_error_last()->reason, "InvalidCron");
	}
	struct cron c;
	CHECK_INT(cron_parse(&c, NULL), CTL_EINVALID);
	/* Impossible dates are fine when weekdays can fire instead (OR rule). */
	CHECK_INT(cron_parse(&c, "0 0 30 2 5"), 0);
	CHECK_INT(cron_parse(&c, "0 0 31 2,3 *"), 0);
}

struct when_case {
	const char *expr;
	long long from;
	long long want;
};

static void run_next(const struct when_case *cases, size_t n, const struct tz *z)
{
	for (size_t i = 0; i < n; i++) {
		struct cron c;
		long long got = 0;
		CHECK_INT(cron_parse(&c, cases[i].expr), 0);
		int rc = cron_next(&got, &c, z, cases[i].from);
		if (rc != 0 || got != cases[i].want)
			fprintf(stderr, "next case %zu \"%s\" in %s: rc %d\n", i, cases[i].expr, tz_name(z), rc);
		CHECK_INT(rc, 0);
		CHECK_INT(got, cases[i].want);
	}
}

static void run_prev(const struct when_case *cases, size_t n, const struct tz *z)
{
	for (size_t i = 0; i < n; i++) {
		struct cron c;
		long long got = 0;
		CHECK_INT(cron_parse(&c, cases[i].expr), 0);
		int rc = cron_prev(&got, &c, z, cases[i].from);
		if (rc != 0 || got != cases[i].want)
			fprintf(stderr, "prev case %zu \"%s\" in %s: rc %d\n", i, cases[i].expr, tz_name(z), rc);
		CHECK_INT(rc, 0);
		CHECK_INT(got, cases[i].want);
	}
}

TEST(cron_next_across_month_and_year_ends)
{
	const struct when_case cases[] = {
		{"*/15 * * * *", at(2025, 1, 1, 0, 0, 0), at(2025, 1, 1, 0, 15, 0)},   /* strictly after */
		{"*/15 * * * *", at(2025, 1, 1, 0, 7, 30), at(2025, 1, 1, 0, 15, 0)},
		{"*/15 * * * *", at(2025, 12, 31, 23, 59, 59), at(2026, 1, 1, 0, 0, 0)},
		{"0 0 1 * *", at(2025, 1, 31, 12, 0, 0), at(2025, 2, 1, 0, 0, 0)},
		{"0 0 1 1 *", at(2025, 6, 1, 0, 0, 0), at(2026, 1, 1, 0, 0, 0)},
		{"59 23 31 12 *", at(2025, 12, 31, 23, 59, 0), at(2026, 12, 31, 23, 59, 0)},
		{"0 12 29 2 *", at(2024, 1, 1, 0, 0, 0), at(2024, 2, 29, 12, 0, 0)},
	};
	run_next(cases, sizeof(cases) / sizeof(cases[0]), NULL);
	const struct when_case more[] = {
		{"0 0 31 * *", at(2025, 4, 1, 0, 0, 0), at(2025, 5, 31, 0, 0, 0)},      /* April has no 31st */
		{"0 0 29 * *", at(2025, 2, 1, 0, 0, 0), at(2025, 3, 29, 0, 0, 0)},      /* nor February 2025 */
		{"0 9 * * 1-5", at(2025, 1, 3, 10, 0, 0), at(2025, 1, 6, 9, 0, 0)},     /* Friday -> Monday */
		{"30 4 * 2 *", at(2025, 3, 1, 0, 0, 0), at(2026, 2, 1, 4, 30, 0)},
		{"0 0 * * 0", at(2025, 12, 29, 0, 0, 0), at(2026, 1, 4, 0, 0, 0)},      /* Sunday in the new year */
		{"15,45 8-9 * * *", at(2025, 5, 5, 9, 45, 0), at(2025, 5, 6, 8, 15, 0)},
	};
	run_next(more, sizeof(more) / sizeof(more[0]), NULL);
}

TEST(cron_prev_across_month_and_year_ends)
{
	const struct when_case cases[] = {
		{"0 19 * * 1-5", at(2025, 1, 6, 6, 59, 0), at(2025, 1, 3, 19, 0, 0)},   /* Monday -> Friday */
		{"0 7 * * *", at(2025, 1, 6, 7, 0, 0), at(2025, 1, 6, 7, 0, 0)},        /* at or before */
		{"0 7 * * *", at(2025, 1, 6, 6, 59, 59), at(2025, 1, 5, 7, 0, 0)},
		{"0 0 1 1 *", at(2025, 6, 1, 0, 0, 0), at(2025, 1, 1, 0, 0, 0)},
		{"0 23 31 12 *", at(2026, 1, 1, 5, 0, 0), at(2025, 12, 31, 23, 0, 0)},
		{"0 12 29 2 *", at(2024, 3, 1, 0, 0, 0), at(2024, 2, 29, 12, 0, 0)},
		{"0 12 29 2 *", at(2025, 3, 1, 0, 0, 0), at(2024, 2, 29, 12, 0, 0)},   /* 366 days back */
		{"0 0 31 * *", at(2025, 5, 1, 0, 0, 0), at(2025, 3, 31, 0, 0, 0)},
		{"*/15 * * * *", at(2026, 1, 1, 0, 14, 59), at(2026, 1, 1, 0, 0, 0)},
		{"59 * * * *", at(2026, 1, 1, 0, 30, 0), at(2025, 12, 31, 23, 59, 0)},
		{"0 0 * 12 *", at(2026, 3, 1, 0, 0, 0), at(2025, 12, 31, 0, 0, 0)},
	};
	run_prev(cases, sizeof(cases) / sizeof(cases[0]), NULL);
}

TEST(cron_dom_or_dow_when_both_restricted)
{
	/* June 2025: Friday the 6th, Friday the 13th, Friday the 20th. */
	const struct when_case cases[] = {
		{"0 0 13 * 5", at(2025, 6, 1, 0, 0, 0), at(2025, 6, 6, 0, 0, 0)},
		{"0 0 13 * 5", at(2025, 6, 6, 0, 0, 0), at(2025, 6, 13, 0, 0, 0)},
		{"0 0 13 * 5", at(2025, 6, 13, 0, 0, 0), at(2025, 6, 20, 0, 0, 0)},
		{"0 0 12 * 5", at(2025, 6, 7, 0, 0, 0), at(2025, 6, 12, 0, 0, 0)},  /* Thursday the 12th */
		/* Weekday unrestricted: the day of month alone. */
		{"0 0 13 * *", at(2025, 6, 1, 0, 0, 0), at(2025, 6, 13, 0, 0, 0)},
		/* Day of month unrestricted: the weekday alone. */
		{"0 0 * * 5", at(2025, 6, 7, 0, 0, 0), at(2025, 6, 13, 0, 0, 0)},
		/* A stepped day of month is a restriction: odd days OR Mondays. */
		{"0 0 */2 * 1", at(2025, 6, 1, 0, 0, 0), at(2025, 6, 2, 0, 0, 0)},    /* Monday the 2nd */
		{"0 0 */2 * 1", at(2025, 6, 2, 0, 0, 0), at(2025, 6, 3, 0, 0, 0)},    /* the 3rd is odd */
	};
	run_next(cases, sizeof(cases) / sizeof(cases[0]), NULL);
	/* Feb 30 never exists, but with a weekday the OR rule fires on
	 * February's Fridays. */
	const struct when_case feb[] = {{"0 0 30 2 5", at(2025, 1, 1, 0, 0, 0), at(2025, 2, 7, 0, 0, 0)}};
	run_next(feb, 1, NULL);
	const struct when_case back[] = {{"0 0 13 * 5", at(2025, 6, 12, 0, 0, 0), at(2025, 6, 6, 0, 0, 0)}};
	run_prev(back, 1, NULL);
}

TEST(cron_search_stops_after_a_year)
{
	struct cron c;
	long long t = 0;
	CHECK_INT(cron_parse(&c, "0 12 29 2 *"), 0);
	CHECK_INT(cron_next(&t, &c, NULL, at(2025, 3, 1, 0, 0, 0)), CTL_ENOTFOUND);
	CHECK_STR(ctl_error_last()->message, "cron does not fire within a year after 2025-03-01T00:00:00Z");
	CHECK_INT(cron_prev(&t, &c, NULL, at(2027, 3, 1, 0, 0, 0)), CTL_ENOTFOUND);
	CHECK_STR(ctl_error_last()->message, "cron does not fire within a year before 2027-03-01T00:00:00Z");
	/* From within a year of a leap day it is found. */
	CHECK_INT(cron_next(&t, &c, NULL, at(2027, 3, 1, 0, 0, 0)), 0);
	CHECK_INT(t, at(2028, 2, 29, 12, 0, 0));
}

TEST(cron_year_search_is_cheap)
{
	/* Sparse expressions walk months and days, not minutes: 20000 year
	 * searches take well under a second even under sanitizers. */
	static const char *exprs[] = {"0 12 29 2 *", "59 23 31 12 *", "0 0 13 * 5", "*/7 3 * 6 1"};
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 5000; i++) {
		struct cron c;
		long long t;
		CHECK_INT(cron_parse(&c, exprs[i % 4]), 0);
		(void)cron_next(&t, &c, NULL, at(2025, 3, 1, 0, 0, 0) + i * 3607LL);
		(void)cron_prev(&t, &c, NULL, at(2025, 3, 1, 0, 0, 0) + i * 3607LL);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (secs >= 10)
		fprintf(stderr, "20000 searches took %.2fs\n", secs);
	CHECK(secs < 10);
}

TEST(cron_spring_forward_gap_does_not_fire)
{
	const struct tz *ny = zone("America/New_York"), *ams = zone("Europe/Amsterdam"),
			*lhi = zone("Australia/Lord_Howe");
	/* 2025-03-09 02:30 does not exist in New York: the next 02:30 after
	 * Saturday's is Monday's (EDT, 06:30 UTC). */
	const struct when_case ny_next[] = {
		{"30 2 * * *", at(2025, 3, 8, 17, 0, 0), at(2025, 3, 10, 6, 30, 0)},
		{"0 2 * * *", at(2025, 3, 8, 17, 0, 0), at(2025, 3, 10, 6, 0, 0)},
		{"0 3 * * *", at(2025, 3, 8, 17, 0, 0), at(2025, 3, 9, 7, 0, 0)},
		{"59 1 * * *", at(2025, 3, 8, 17, 0, 0), at(2025, 3, 9, 6, 59, 0)},
	};
	run_next(ny_next, sizeof(ny_next) / sizeof(ny_next[0]), ny);
	const struct when_case ny_prev[] = {
		{"30 2 * * *", at(2025, 3, 9, 16, 0, 0), at(2025, 3, 8, 7, 30, 0)},
	};
	run_prev(ny_prev, 1, ny);
	const struct when_case ams_next[] = {
		{"30 2 * * *", at(2025, 3, 29, 12, 0, 0), at(2025, 3, 31, 0, 30, 0)},
	};
	run_next(ams_next, 1, ams);
	/* Lord Howe skips 02:00-02:29 only. */
	const struct when_case lhi_next[] = {
		{"15 2 * * *", at(2025, 10, 4, 12, 0, 0), at(2025, 10, 5, 15, 15, 0)},
		{"30 2 * * *", at(2025, 10, 4, 12, 0, 0), at(2025, 10, 4, 15, 30, 0)},
	};
	run_next(lhi_next, 2, lhi);

	/* Every half hour across the gap: 01:30 EST, then 03:00 EDT. */
	struct cron c;
	long long t = at(2025, 3, 9, 6, 0, 0), seq[3];
	CHECK_INT(cron_parse(&c, "*/30 * * * *"), 0);
	for (int i = 0; i < 3; i++) {
		CHECK_INT(cron_next(&t, &c, ny, t), 0);
		seq[i] = t;
	}
	CHECK_INT(seq[0], at(2025, 3, 9, 6, 30, 0));
	CHECK_INT(seq[1], at(2025, 3, 9, 7, 0, 0));
	CHECK_INT(seq[2], at(2025, 3, 9, 7, 30, 0));
}

TEST(cron_fall_back_fold_fires_once)
{
	const struct tz *ny = zone("America/New_York"), *lhi = zone("Australia/Lord_Howe");
	struct cron c;
	long long t;
	/* 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST). */
	CHECK_INT(cron_parse(&c, "30 1 * * *"), 0);
	CHECK_INT(cron_next(&t, &c, ny, at(2025, 11, 2, 4, 0, 0)), 0);
	CHECK_INT(t, at(2025, 11, 2, 5, 30, 0));
	CHECK_INT(cron_next(&t, &c, ny, t), 0);
	CHECK_INT(t, at(2025, 11, 3, 6, 30, 0)); /* Monday's, not the repeat */
	CHECK_INT(cron_prev(&t, &c, ny, at(2025, 11, 2, 6, 45, 0)), 0);
	CHECK_INT(t, at(2025, 11, 2, 5, 30, 0));
	CHECK_INT(cron_prev(&t, &c, ny, at(2025, 11, 2, 6, 30, 0)), 0);
	CHECK_INT(t, at(2025, 11, 2, 5, 30, 0));

	/* Every half hour through the fold: the repeated hour is skipped. */
	const long long want[] = {
		at(2025, 11, 2, 4, 30, 0), /* 00:30 EDT */
		at(2025, 11, 2, 5, 0, 0),  /* 01:00 EDT */
		at(2025, 11, 2, 5, 30, 0), /* 01:30 EDT; 01:00 and 01:30 EST are skipped */
		at(2025, 11, 2, 7, 0, 0),  /* 02:00 EST */
		at(2025, 11, 2, 7, 30, 0), /* 02:30 EST */
	};
	CHECK_INT(cron_parse(&c, "*/30 * * * *"), 0);
	t = at(2025, 11, 2, 4, 0, 0);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		CHECK_INT(cron_next(&t, &c, ny, t), 0);
		CHECK_INT(t, want[i]);
	}
	/* And backwards from 07:00 UTC: 05:30, not the EST 01:30 at 06:30. */
	CHECK_INT(cron_prev(&t, &c, ny, at(2025, 11, 2, 6, 59, 0)), 0);
	CHECK_INT(t, at(2025, 11, 2, 5, 30, 0));

	/* Lord Howe repeats 01:30-01:59 only. */
	CHECK_INT(cron_parse(&c, "45 1 * * *"), 0);
	CHECK_INT(cron_next(&t, &c, lhi, at(2025, 4, 5, 12, 0, 0)), 0);
	CHECK_INT(t, at(2025, 4, 5, 14, 45, 0));
	CHECK_INT(cron_next(&t, &c, lhi, t), 0);
	CHECK_INT(t, at(2025, 4, 6, 15, 15, 0));
}

TEST(cron_zones_without_dst)
{
	const struct when_case kolkata[] = {
		{"0 9 * * *", at(2025, 6, 1, 0, 0, 0), at(2025, 6, 1, 3, 30, 0)},
		{"0 0 1 1 *", at(2025, 6, 1, 0, 0, 0), at(2025, 12, 31, 18, 30, 0)},
	};
	run_next(kolkata, 2, zone("Asia/Kolkata"));
	const struct when_case utc[] = {{"0 9 * * *", at(2025, 6, 1, 0, 0, 0), at(2025, 6, 1, 9, 0, 0)}};
	run_next(utc, 1, zone("UTC"));
}

TEST(cron_next_and_prev_agree)
{
	/* For any t: next(t) is the first fire after t and prev(t) the last at
	 * or before it, so nothing fires in between and they chain. */
	static const char *exprs[] = {"*/30 * * * *", "30 2 * * *", "30 1 * * *", "0 7 * * 1-5",
				      "15 2 * * 0", "0 0 13 * 5", "45 1 1,15 * *"};
	static const char *zones[] = {"UTC", "Europe/Amsterdam", "America/New_York", "Australia/Lord_Howe",
				      "Asia/Kolkata"};
	for (size_t zi = 0; zi < sizeof(zones) / sizeof(zones[0]); zi++) {
		const struct tz *z = zone(zones[zi]);
		for (size_t ei = 0; ei < sizeof(exprs) / sizeof(exprs[0]); ei++) {
			struct cron c;
			CHECK_INT(cron_parse(&c, exprs[ei]), 0);
			int bad = 0;
			/* Around both 2025 transitions of all the zones. */
			for (long long t = at(2025, 3, 1, 0, 0, 0); t < at(2025, 11, 10, 0, 0, 0); t += 4 * 3600 + 47 * 60 + 13) {
				long long n, p, x;
				if (cron_next(&n, &c, z, t) || cron_prev(&p, &c, z, t)) {
					bad++;
					continue;
				}
				bad += !(n > t && p <= t);
				bad += cron_prev(&x, &c, z, n) || x != n;
				bad += cron_prev(&x, &c, z, n - 1) || x != p;
				bad += cron_next(&x, &c, z, p) || x != n;
				bad += cron_next(&x, &c, z, p - 1) || x != p;
			}
			if (bad)
				fprintf(stderr, "%s in %s: %d inconsistencies\n", exprs[ei], zones[zi], bad);
			CHECK_INT(bad, 0);
		}
	}
}

TEST_MAIN(T(cron_parse_accepts_every_form), T(cron_parse_rejects_malformed_with_message),
	  T(cron_next_across_month_and_year_ends), T(cron_prev_across_month_and_year_ends),
	  T(cron_dom_or_dow_when_both_restricted), T(cron_search_stops_after_a_year),
	  T(cron_year_search_is_cheap), T(cron_spring_forward_gap_does_not_fire),
	  T(cron_fall_back_fold_fires_once), T(cron_zones_without_dst), T(cron_next_and_prev_agree))
