/*
 * Tests for reconcilers/schedule/capacity.c: which countSchedule window is
 * in force (the PRODUCT.md example in Europe/Amsterdam at fixed instants,
 * yearly crons, ties, DST), the autoscale table (up at once, down after the
 * delay, bursts, bounds, running runs, unknown queue, no flapping), how the
 * desired count and its source are chosen, and the quota cap.
 */
#include "test.h"

#include "error.h"
#include "schedule/capacity.h"
#include "schedule/tz.h"

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

#define COUNT(c) {.cron = (c), .min_count = -1, .max_count = -1}
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* PRODUCT.md: zero at night, three in the working day, Amsterdam time. */
static const struct capacity_window office[] = {
	{"0 19 * * 1-5", 0, -1, -1},
	{"0 7 * * 1-5", 3, -1, -1},
};

struct sched_case {
	const char *what;
	long long now;
	int active, count;
	long long since;
	int next;
	long long next_time;
};

TEST(schedule_product_example_in_amsterdam)
{
	const struct tz *ams = zone("Europe/Amsterdam");
	/* June 2025 is CEST (UTC+2): 07:00 local is 05:00 UTC, 19:00 is 17:00. */
	const struct sched_case cases[] = {
		{"Wednesday morning", at(2025, 6, 11, 8, 0, 0), 1, 3, at(2025, 6, 11, 5, 0, 0),
		 0, at(2025, 6, 11, 17, 0, 0)},
		{"Wednesday night", at(2025, 6, 11, 20, 0, 0), 0, 0, at(2025, 6, 11, 17, 0, 0),
		 1, at(2025, 6, 12, 5, 0, 0)},
		{"Saturday", at(2025, 6, 14, 10, 0, 0), 0, 0, at(2025, 6, 13, 17, 0, 0),
		 1, at(2025, 6, 16, 5, 0, 0)},
		{"Monday 06:59: Friday 19:00 still in force", at(2025, 6, 16, 4, 59, 0), 0, 0,
		 at(2025, 6, 13, 17, 0, 0), 1, at(2025, 6, 16, 5, 0, 0)},
		{"Monday 07:00 sharp", at(2025, 6, 16, 5, 0, 0), 1, 3, at(2025, 6, 16, 5, 0, 0),
		 0, at(2025, 6, 16, 17, 0, 0)},
		/* January is CET (UTC+1). */
		{"winter Wednesday morning", at(2025, 1, 15, 9, 0, 0), 1, 3, at(2025, 1, 15, 6, 0, 0),
		 0, at(2025, 1, 15, 18, 0, 0)},
		/* Monday 2025-03-31 06:59 CEST: the window in force fired Friday
		 * 19:00 CET, before the clocks changed. */
		{"Monday after spring forward", at(2025, 3, 31, 4, 59, 0), 0, 0, at(2025, 3, 28, 18, 0, 0),
		 1, at(2025, 3, 31, 5, 0, 0)},
	};
	for (size_t i = 0; i < N(cases); i++) {
		const struct sched_case *c = &cases[i];
		struct capacity_schedule s;
		CHECK_INT(capacity_schedule(&s, office, N(office), ams, c->now), 0);
		if (s.active != c->active || s.active_since != c->since || s.next_time != c->next_time)
			fprintf(stderr, "case \"%s\"\n", c->what);
		CHECK_INT(s.active, c->active);
		CHECK_INT(s.count, c->count);
		CHECK_INT(s.active_since, c->since);
		CHECK_INT(s.min_count, -1);
		CHECK_INT(s.next, c->next);
		CHECK_INT(s.next_time, c->next_time);
	}
}

TEST(schedule_yearly_windows_are_found_beyond_a_week)
{
	const struct capacity_window yearly[] = {COUNT("0 0 1 1 *"), COUNT("0 0 1 7 *")};
	struct capacity_window w[2] = {yearly[0], yearly[1]};
	w[0].count = 5;
	w[1].count = 2;
	struct capacity_schedule s;
	CHECK_INT(capacity_schedule(&s, w, 2, NULL, at(2025, 3, 15, 0, 0, 0)), 0);
	CHECK_INT(s.active, 0);
	CHECK_INT(s.count, 5);
	CHECK_INT(s.active_since, at(2025, 1, 1, 0, 0, 0));
	CHECK_INT(s.next, 1);
	CHECK_INT(s.next_time, at(2025, 7, 1, 0, 0, 0));
	CHECK_INT(capacity_schedule(&s, w, 2, NULL, at(2025, 12, 31, 23, 0, 0)), 0);
	CHECK_INT(s.active, 1);
	CHECK_INT(s.next, 0);
}

TEST(schedule_with_nothing_fired_has_no_window)
{
	struct capacity_window w[] = {COUNT("0 12 29 2 *")};
	w[0].count = 4;
	struct capacity_schedule s;
	CHECK_INT(capacity_schedule(&s, w, 1, NULL, at(2025, 6, 1, 0, 0, 0)), 0);
	CHECK_INT(s.active, -1);
	CHECK_INT(s.count, -1);
	CHECK_INT(s.next, -1);
	CHECK_INT(s.next_time, 0);
	CHECK_INT(capacity_schedule(&s, w, 0, NULL, at(2025, 6, 1, 0, 0, 0)), 0);
	CHECK_INT(s.active, -1);
}

TEST(schedule_tie_goes_to_the_later_window)
{
	/* Every day at 07:00 three, but Mondays five: both fire Monday 07:00. */
	struct capacity_window w[] = {COUNT("0 7 * * *"), COUNT("0 7 * * 1")};
	w[0].count = 3;
	w[1].count = 5;
	struct capacity_schedule s;
	CHECK_INT(capacity_schedule(&s, w, 2, NULL, at(2025, 6, 16, 8, 0, 0)), 0); /* Monday */
	CHECK_INT(s.active, 1);
	CHECK_INT(s.count, 5);
	CHECK_INT(s.next, 0);
	CHECK_INT(s.next_time, at(2025, 6, 17, 7, 0, 0));
	CHECK_INT(capacity_schedule(&s, w, 2, NULL, at(2025, 6, 17, 8, 0, 0)), 0); /* Tuesday */
	CHECK_INT(s.active, 0);
	CHECK_INT(capacity_schedule(&s, w, 2, NULL, at(2025, 6, 15, 8, 0, 0)), 0); /* Sunday */
	CHECK_INT(s.next, 1);
	CHECK_INT(s.next_time, at(2025, 6, 16, 7, 0, 0));
}

TEST(schedule_invalid_cron_names_the_window)
{
	struct capacity_window w[] = {COUNT("0 7 * * *"), COUNT("0 25 * * *")};
	struct capacity_schedule s;
	CHECK_INT(capacity_schedule(&s, w, 2, NULL, at(2025, 6, 1, 0, 0, 0)), CTL_EINVALID);
	CHECK_STR(ctl_error_last()->message,
		  "countSchedule.windows[1].cron \"0 25 * * *\": hour: 25 is out of range 0-23");
	CHECK_STR(ctl_error_last()->reason, "InvalidSchedule");
}

TEST(schedule_follows_dst_semantics)
{
	const struct tz *ny = zone("America/New_York");
	struct capacity_window w[] = {COUNT("0 1 * * *"), COUNT("30 2 * * *")};
	w[0].count = 1;
	w[1].count = 2;
	struct capacity_schedule s;
	/* 2025-03-09 03:30 EDT: 02:30 never happened, so 01:00 EST's window holds. */
	CHECK_INT(capacity_schedule(&s, w, 2, ny, at(2025, 3, 9, 7, 30, 0)), 0);
	CHECK_INT(s.active, 0);
	CHECK_INT(s.active_since, at(2025, 3, 9, 6, 0, 0));
	CHECK_INT(s.next, 0);
	CHECK_INT(s.next_time, at(2025, 3, 10, 5, 0, 0));
	CHECK_INT(capacity_schedule(&s, w, 2, ny, at(2025, 3, 10, 7, 0, 0)), 0);
	CHECK_INT(s.active, 1);
	CHECK_INT(s.active_since, at(2025, 3, 10, 6, 30, 0));

	/* 2025-11-02: 01:00 and 01:30 happen twice and fire once each, at
	 * their first (EDT) occurrence; at 01:15 EST the 01:30 window holds. */
	struct capacity_window f[] = {COUNT("30 1 * * *"), COUNT("0 1 * * *")};
	f[0].count = 1;
	f[1].count = 2;
	CHECK_INT(capacity_schedule(&s, f, 2, ny, at(2025, 11, 2, 6, 15, 0)), 0);
	CHECK_INT(s.active, 0);
	CHECK_INT(s.active_since, at(2025, 11, 2, 5, 30, 0));
	CHECK_INT(s.next, 1);
	CHECK_INT(s.next_time, at(2025, 11, 3, 6, 0, 0));
}

/* ---- autoscale ---------------------------------------------------------- */

#define NOW 1000000LL

struct as_case {
	const char *what;
	struct capacity_autoscale_params p;
	struct capacity_autoscale_observed o;
	int count;
	const char *reason;
	long long last_busy, recheck;
};

TEST(autoscale_table)
{
	const struct as_case cases[] = {
		{"12 queued, max 4", {0, 4, 1, 300}, {12, 0, 0, NOW - 5000, NOW}, 4, "ScaleUp", NOW, 0},
		{"from zero", {0, 4, 1, 300}, {1, 0, 0, NOW - 5000, NOW}, 1, "ScaleUp", NOW, 0},
		{"runs per instance rounds up", {0, 10, 2, 300}, {5, 0, 1, NOW - 5, NOW}, 3, "ScaleUp", NOW, 0},
		{"queue drained, within delay", {0, 4, 1, 300}, {0, 0, 4, NOW - 10, NOW}, 4, "ScaleDownDelayed",
		 NOW - 10, 290},
		{"queue drained, delay passed", {0, 4, 1, 300}, {0, 0, 4, NOW - 300, NOW}, 0, "ScaleDown",
		 NOW - 300, 0},
		{"queued runs block scale-down", {0, 4, 1, 300}, {2, 0, 4, NOW - 1000, NOW}, 4, "RunsQueued", NOW, 0},
		{"queued below instances", {0, 4, 2, 300}, {1, 0, 4, NOW - 1000, NOW}, 4, "RunsQueued", NOW, 0},
		{"min bound", {1, 4, 1, 300}, {0, 0, 4, NOW - 300, NOW}, 1, "ScaleDown", NOW - 300, 0},
		{"min bound raises at once", {2, 4, 1, 300}, {0, 0, 0, NOW - 300, NOW}, 2, "ScaleUp", NOW, 0},
		{"running runs count", {0, 4, 1, 300}, {0, 3, 4, NOW - 300, NOW}, 3, "ScaleDown", NOW - 300, 0},
		{"running runs keep the pool", {0, 4, 1, 300}, {0, 4, 4, NOW - 1000, NOW}, 4, "Steady", NOW, 0},
		{"steady", {0, 4, 1, 300}, {2, 0, 2, NOW - 50, NOW}, 2, "Steady", NOW, 0},
		{"running unknown counts queued only", {0, 4, 1, 300}, {0, -1, 4, NOW - 300, NOW}, 0, "ScaleDown",
		 NOW - 300, 0},
		{"queue unknown holds", {0, 4, 1, 300}, {-1, -1, 3, NOW - 1000, NOW}, 3, "QueueUnknown", NOW - 1000, 0},
		{"queue unknown still bounded", {0, 2, 1, 300}, {-1, -1, 3, NOW - 1000, NOW}, 2, "QueueUnknown",
		 NOW - 1000, 0},
		{"above max drops at once", {0, 4, 1, 300}, {10, 0, 6, NOW, NOW}, 4, "AboveMax", NOW, 0},
		{"last busy unknown starts the delay", {0, 4, 1, 300}, {0, 0, 4, 0, NOW}, 4, "ScaleDownDelayed", NOW,
		 300},
		{"no delay", {0, 4, 1, 0}, {0, 0, 4, NOW - 30, NOW}, 0, "ScaleDown", NOW - 30, 0},
		{"zero stays zero", {0, 4, 1, 300}, {0, 0, 0, NOW - 30, NOW}, 0, "Steady", NOW, 0},
	};
	for (size_t i = 0; i < N(cases); i++) {
		const struct as_case *c = &cases[i];
		struct capacity_autoscale_result r;
		capacity_autoscale(&r, &c->p, &c->o);
		if (r.count != c->count || strcmp(r.reason, c->reason) != 0 || r.last_busy != c->last_busy ||
		    r.recheck_after_s != c->recheck)
			fprintf(stderr, "case \"%s\": %d %s (%s)\n", c->what, r.count, r.reason, r.message);
		CHECK_INT(r.count, c->count);
		CHECK_STR(r.reason, c->reason);
		CHECK_INT(r.last_busy, c->last_busy);
		CHECK_INT(r.recheck_after_s, c->recheck);
		CHECK(r.message[0] != '\0');
	}
}

/* Drive autoscale like the reconciler would: poll, apply at once,
 * remember last_busy. */
struct sim {
	struct capacity_autoscale_params p;
	int current;
	long long last_busy;
};

static struct capacity_autoscale_result poll(struct sim *s, int queued, int running, long long now)
{
	struct capacity_autoscale_observed o = {queued, running, s->current, s->last_busy, now};
	struct capacity_autoscale_result r;
	capacity_autoscale(&r, &s->p, &o);
	s->current = r.count;
	s->last_busy = r.last_busy;
	return r;
}

TEST(autoscale_burst_during_delay_cancels_scale_down)
{
	struct sim s = {{0, 4, 1, 300}, 0, 0};
	long long t = NOW;
	CHECK_STR(poll(&s, 12, 0, t).reason, "ScaleUp");
	CHECK_INT(s.current, 4);
	/* The queue drains at t+60; the pool stays for the delay. */
	CHECK_STR(poll(&s, 0, 0, t + 60).reason, "ScaleDownDelayed");
	CHECK_STR(poll(&s, 0, 0, t + 200).reason, "ScaleDownDelayed");
	/* A burst at t+250, before the delay ran out, restarts it. */
	CHECK_STR(poll(&s, 1, 0, t + 250).reason, "RunsQueued");
	CHECK_STR(poll(&s, 0, 0, t + 320).reason, "ScaleDownDelayed");
	CHECK_INT(s.current, 4);
	struct capacity_autoscale_result r = poll(&s, 0, 0, t + 500);
	CHECK_STR(r.reason, "ScaleDownDelayed");
	CHECK_INT(r.recheck_after_s, 50);
	r = poll(&s, 0, 0, t + 550);
	CHECK_STR(r.reason, "ScaleDown");
	CHECK_INT(s.current, 0);
	/* And back from zero at once. */
	CHECK_STR(poll(&s, 2, 0, t + 560).reason, "ScaleUp");
	CHECK_INT(s.current, 2);
}

TEST(autoscale_never_scales_down_within_delay_of_a_scale_up)
{
	/* A spiky workload, polled every 30 s for a day: whatever the queue
	 * does, no scale-down comes within the delay of the last scale-up. */
	struct sim s = {{0, 8, 1, 300}, 0, 0};
	long long last_up = 0, downs = 0, ups = 0;
	unsigned seed = 7;
	int bad = 0;
	for (long long t = NOW; t < NOW + 86400; t += 30) {
		seed = seed * 1103515245 + 12345;
		int queued = (seed >> 16) % 5 == 0 ? (int)((seed >> 8) % 10) : 0;
		int running = (int)((seed >> 4) % 3);
		int before = s.current;
		poll(&s, queued, running, t);
		if (s.current > before) {
			last_up = t;
			ups++;
		} else if (s.current < before) {
			downs++;
			bad += last_up && t - last_up < 300;
		}
	}
	CHECK_INT(bad, 0);
	CHECK(ups > 0 && downs > 0);
}

TEST(autoscale_bounds_from_a_window)
{
	const struct capacity_autoscale_params spec = {0, 4, 1, 300};
	struct capacity_autoscale_params b;
	struct capacity_schedule s = {.active = 0, .count = -1, .min_count = 2, .max_count = 8, .next = -1};
	capacity_bounds(&b, &spec, &s);
	CHECK_INT(b.min_count, 2);
	CHECK_INT(b.max_count, 8);
	CHECK_INT(b.runs_per_instance, 1);
	CHECK_INT(b.scale_down_delay_s, 300);
	/* Only min, above spec's max: max follows. */
	s.min_count = 6;
	s.max_count = -1;
	capacity_bounds(&b, &spec, &s);
	CHECK_INT(b.min_count, 6);
	CHECK_INT(b.max_count, 6);
	/* Only max, below spec's min: min follows. */
	const struct capacity_autoscale_params spec2 = {3, 6, 1, 300};
	s.min_count = -1;
	s.max_count = 1;
	capacity_bounds(&b, &spec2, &s);
	CHECK_INT(b.min_count, 1);
	CHECK_INT(b.max_count, 1);
	/* No window in force: spec's bounds. */
	s.active = -1;
	capacity_bounds(&b, &spec2, &s);
	CHECK_INT(b.min_count, 3);
	CHECK_INT(b.max_count, 6);
	capacity_bounds(&b, &spec2, NULL);
	CHECK_INT(b.max_count, 6);
}

TEST(autoscale_with_office_hours_bounds)
{
	/* Working days between 2 and 8 instances, nights at most 1. */
	const struct tz *ams = zone("Europe/Amsterdam");
	const struct capacity_window w[] = {{"0 7 * * 1-5", -1, 2, 8}, {"0 19 * * 1-5", -1, 0, 1}};
	const struct capacity_autoscale_params spec = {0, 4, 1, 300};
	struct capacity_schedule s;
	struct capacity_autoscale_params b;
	struct capacity_autoscale_result r;
	struct capacity_desired d;

	long long morning = at(2025, 6, 11, 5, 0, 0);
	CHECK_INT(capacity_schedule(&s, w, 2, ams, morning), 0);
	capacity_bounds(&b, &spec, &s);
	capacity_autoscale(&r, &b, &(struct capacity_autoscale_observed){0, 0, 0, morning - 9000, morning});
	capacity_desired(&d, 1, &s, &r);
	CHECK_INT(d.count, 2);
	CHECK_STR(capacity_source_name(d.source), "Autoscale");
	CHECK_INT(d.min_count, 2);
	CHECK_INT(d.max_count, 8);

	long long night = at(2025, 6, 11, 17, 0, 0);
	CHECK_INT(capacity_schedule(&s, w, 2, ams, night), 0);
	capacity_bounds(&b, &spec, &s);
	capacity_autoscale(&r, &b, &(struct capacity_autoscale_observed){3, 1, 6, night, night});
	CHECK_STR(r.reason, "AboveMax");
	capacity_desired(&d, 1, &s, &r);
	CHECK_INT(d.count, 1);
	CHECK_INT(d.max_count, 1);
}

/* ---- desired ------------------------------------------------------------ */

TEST(desired_count_and_source)
{
	struct capacity_desired d;
	struct capacity_schedule none = {.active = -1, .count = -1, .min_count = -1, .max_count = -1, .next = -1};
	struct capacity_schedule night = {.active = 0, .count = 0, .min_count = -1, .max_count = -1, .next = 1};
	struct capacity_schedule bounds = {.active = 1, .count = -1, .min_count = 0, .max_count = 2, .next = 0};
	struct capacity_autoscale_result as = {.count = 3, .min_count = 0, .max_count = 4, .reason = "ScaleUp"};

	capacity_desired(&d, 2, NULL, NULL);
	CHECK_INT(d.count, 2);
	CHECK_STR(capacity_source_name(d.source), "Spec");
	CHECK_INT(d.min_count, -1);

	capacity_desired(&d, 2, &none, NULL);
	CHECK_INT(d.count, 2);
	CHECK_STR(capacity_source_name(d.source), "Spec");

	capacity_desired(&d, 2, &night, NULL);
	CHECK_INT(d.count, 0);
	CHECK_STR(capacity_source_name(d.source), "Schedule");

	capacity_desired(&d, 2, &none, &as);
	CHECK_INT(d.count, 3);
	CHECK_STR(capacity_source_name(d.source), "Autoscale");
	CHECK_INT(d.min_count, 0);
	CHECK_INT(d.max_count, 4);

	/* A count window overrides autoscale too: a night switch-off. */
	capacity_desired(&d, 2, &night, &as);
	CHECK_INT(d.count, 0);
	CHECK_STR(capacity_source_name(d.source), "Schedule");

	/* A bounds window without autoscale holds spec.count within it. */
	capacity_desired(&d, 5, &bounds, NULL);
	CHECK_INT(d.count, 2);
	CHECK_STR(capacity_source_name(d.source), "Schedule");
	CHECK_INT(d.max_count, 2);
	capacity_desired(&d, 1, &bounds, NULL);
	CHECK_INT(d.count, 1);
	CHECK_STR(capacity_source_name(d.source), "Spec");
}

/* ---- quota -------------------------------------------------------------- */

struct quota_case {
	const char *what;
	int desired, current;
	const char *tier;
	int others, quota;
	int count, fits;
	bool capped;
};

TEST(quota_caps_growth_only)
{
	static const struct quota_case cases[] = {
		{"fits", 3, 0, "S2", 4, 16, 3, 3, false},
		{"capped", 5, 0, "S2", 4, 16, 3, 3, true},
		{"capped from a running pool", 5, 2, "S2", 4, 16, 3, 3, true},
		{"others grew: keep what we have", 5, 4, "S2", 8, 16, 4, 2, true},
		{"scale-down never blocked", 3, 4, "S2", 16, 16, 3, 0, false},
		{"no room at all", 2, 0, "S1", 16, 16, 0, 0, true},
		{"others over quota", 2, 0, "S1", 20, 16, 0, 0, true},
		{"isolated needs isolated quota", 1, 0, "I6", 0, 0, 0, 0, true},
		{"isolated fits", 1, 0, "I6", 0, 64, 1, 1, false},
		{"unknown tier is not capped", 7, 0, "X9", 0, 0, 7, -1, false},
		{"zero", 0, 0, "S3", 16, 16, 0, 0, false},
	};
	for (size_t i = 0; i < N(cases); i++) {
		const struct quota_case *c = &cases[i];
		struct capacity_quota q;
		capacity_quota_cap(&q, c->desired, c->current, c->tier, c->others, c->quota);
		if (q.count != c->count || q.fits != c->fits || q.capped != c->capped)
			fprintf(stderr, "case \"%s\": count %d fits %d capped %d\n", c->what, q.count, q.fits,
				q.capped);
		CHECK_INT(q.count, c->count);
		CHECK_INT(q.fits, c->fits);
		CHECK_INT(q.capped, c->capped);
		CHECK(q.capped == (q.message[0] != '\0'));
	}
	struct capacity_quota q;
	capacity_quota_cap(&q, 5, 0, "S2", 4, 16);
	CHECK_STR(q.message, "vCPU quota caps the pool at 3 of the 5 instance(s) wanted: 5 x S2 needs 20 standard "
			     "vCPU, other pools use 4 of the quota of 16");
	capacity_quota_cap(&q, 1, 0, "I6", 0, 0);
	CHECK(strstr(q.message, "64 isolated vCPU") != NULL);
}

TEST(autoscale_never_asks_beyond_quota)
{
	/* 12 queued on an S1 pool with max 10; other pools use 6 of 16 vCPU:
	 * autoscale wants 10, quota leaves room for 5. */
	struct capacity_autoscale_result r;
	capacity_autoscale(&r, &(struct capacity_autoscale_params){0, 10, 1, 300},
			   &(struct capacity_autoscale_observed){12, 0, 0, NOW, NOW});
	struct capacity_desired d;
	capacity_desired(&d, 1, NULL, &r);
	CHECK_INT(d.count, 10);
	struct capacity_quota q;
	capacity_quota_cap(&q, d.count, 0, "S1", 6, 16);
	CHECK_INT(q.count, 5);
	CHECK(q.capped);
}

TEST_MAIN(T(schedule_product_example_in_amsterdam), T(schedule_yearly_windows_are_found_beyond_a_week),
	  T(schedule_with_nothing_fired_has_no_window), T(schedule_tie_goes_to_the_later_window),
	  T(schedule_invalid_cron_names_the_window), T(schedule_follows_dst_semantics), T(autoscale_table),
	  T(autoscale_burst_during_delay_cancels_scale_down),
	  T(autoscale_never_scales_down_within_delay_of_a_scale_up), T(autoscale_bounds_from_a_window),
	  T(autoscale_with_office_hours_bounds), T(desired_count_and_source), T(quota_caps_growth_only),
	  T(autoscale_never_asks_beyond_quota))
