/*
 * capacity.c: the countSchedule, autoscale and quota decisions. See
 * capacity.h for the contract and docs/capacity.md for the policy.
 */
#include "schedule/capacity.h"

#include "agentpool_plan.h"
#include "error.h"
#include "schedule/cron.h"

#include <stdio.h>
#include <string.h>

int capacity_schedule(struct capacity_schedule *out, const struct capacity_window *windows, size_t n,
		      const struct tz *tz, long long now)
{
	*out = (struct capacity_schedule){
		.active = -1, .count = -1, .min_count = -1, .max_count = -1, .next = -1,
	};
	for (size_t i = 0; i < n; i++) {
		struct cron c;
		long long t;
		if (cron_parse(&c, windows[i].cron) < 0) {
			char msg[sizeof(ctl_error_last()->message)];
			snprintf(msg, sizeof(msg), "%s", ctl_error_last()->message);
			return ctl_error_set(CTL_EINVALID, "InvalidSchedule",
					     "countSchedule.windows[%zu].cron \"%s\": %s", i,
					     windows[i].cron ? windows[i].cron : "", msg);
		}
		/* cron_prev looks back a year; the most recent fire over all
		 * windows is then the window in force. ">=" lets the later of
		 * two windows firing together win. */
		if (cron_prev(&t, &c, tz, now) == 0 && (out->active < 0 || t >= out->active_since)) {
			out->active = (int)i;
			out->active_since = t;
		}
		if (cron_next(&t, &c, tz, now) == 0 && (out->next < 0 || t <= out->next_time)) {
			out->next = (int)i;
			out->next_time = t;
		}
	}
	if (out->active >= 0) {
		const struct capacity_window *w = &windows[out->active];
		out->count = w->count;
		out->min_count = w->min_count;
		out->max_count = w->max_count;
	}
	ctl_error_clear();
	return 0;
}

void capacity_bounds(struct capacity_autoscale_params *out, const struct capacity_autoscale_params *spec,
		     const struct capacity_schedule *sched)
{
	*out = *spec;
	if (!sched || sched->active < 0)
		return;
	if (sched->min_count >= 0) {
		out->min_count = sched->min_count;
		if (out->max_count < out->min_count)
			out->max_count = out->min_count;
	}
	if (sched->max_count >= 0) {
		out->max_count = sched->max_count;
		if (out->min_count > out->max_count)
			out->min_count = out->max_count;
	}
}

static int clamp(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

#define SAY(...) snprintf(out->message, sizeof(out->message), __VA_ARGS__)

void capacity_autoscale(struct capacity_autoscale_result *out, const struct capacity_autoscale_params *p,
			const struct capacity_autoscale_observed *o)
{
	int lo = p->min_count < 0 ? 0 : p->min_count;
	int hi = p->max_count < lo ? lo : p->max_count;
	int rpi = p->runs_per_instance < 1 ? 1 : p->runs_per_instance;

	memset(out, 0, sizeof(*out));
	out->min_count = lo;
	out->max_count = hi;
	/* Unknown last_busy (first sight of the pool, or a restart) starts the
	 * delay now: better a late scale-down than a run cut short. */
	out->last_busy = o->last_busy > 0 ? o->last_busy : o->now;

	if (o->queued < 0) {
		out->need = -1;
		out->count = clamp(o->current, lo, hi);
		out->reason = "QueueUnknown";
		SAY("queue depth unknown: holding %d instance(s)", out->count);
		return;
	}
	long long work = (long long)o->queued + (o->running > 0 ? o->running : 0);
	long long raw = (work + rpi - 1) / rpi;
	out->need = raw > hi ? hi : raw < lo ? lo : (int)raw;
	if (o->queued > 0 || out->need >= o->current)
		out->last_busy = o->now;

	if (o->current > hi) {
		out->count = hi;
		out->reason = "AboveMax";
		SAY("%d instance(s) exceed maxCount %d: scaling down to %d", o->current, hi, hi);
	} else if (out->need > o->current) {
		out->count = out->need;
		out->reason = "ScaleUp";
		SAY("%d queued and %d running run(s) need %d instance(s) (bounds %d-%d)", o->queued,
		    o->running > 0 ? o->running : 0, out->need, lo, hi);
	} else if (out->need == o->current) {
		out->count = o->current;
		out->reason = "Steady";
		SAY("%d instance(s) cover %lld run(s)", o->current, work);
	} else if (o->queued > 0) {
		out->count = o->current;
		out->reason = "RunsQueued";
		SAY("%d run(s) queued: not scaling down", o->queued);
	} else if (o->now - out->last_busy >= p->scale_down_delay_s) {
		out->count = out->need;
		out->reason = "ScaleDown";
		SAY("idle for %llds: scaling down from %d to %d instance(s)", o->now - out->last_busy,
		    o->current, out->need);
	} else {
		out->count = o->current;
		out->reason = "ScaleDownDelayed";
		out->recheck_after_s = out->last_busy + p->scale_down_delay_s - o->now;
		SAY("need %d of %d instance(s): scaling down in %llds (scaleDownDelaySeconds %d)", out->need,
		    o->current, out->recheck_after_s, p->scale_down_delay_s);
	}
}

void capacity_desired(struct capacity_desired *out, int spec_count, const struct capacity_schedule *sched,
		      const struct capacity_autoscale_result *as)
{
	bool window = sched && sched->active >= 0;
	*out = (struct capacity_desired){spec_count, CAPACITY_SPEC, -1, -1};
	if (window && sched->count >= 0) {
		out->count = sched->count;
		out->source = CAPACITY_SCHEDULE;
		return;
	}
	if (as) {
		out->count = as->count;
		out->source = CAPACITY_AUTOSCALE;
		out->min_count = as->min_count;
		out->max_count = as->max_count;
		return;
	}
	if (window && (sched->min_count >= 0 || sched->max_count >= 0)) {
		out->min_count = sched->min_count >= 0 ? sched->min_count : 0;
		out->max_count = sched->max_count >= 0 ? sched->max_count : (spec_count > out->min_count ? spec_count : out->min_count);
		out->count = clamp(spec_count, out->min_count, out->max_count);
		if (out->count != spec_count)
			out->source = CAPACITY_SCHEDULE;
	}
}

const char *capacity_source_name(enum capacity_source source)
{
	switch (source) {
	case CAPACITY_SCHEDULE: return "Schedule";
	case CAPACITY_AUTOSCALE: return "Autoscale";
	default: return "Spec";
	}
}

void capacity_quota_cap(struct capacity_quota *out, int desired, int current, const char *tier,
			int other_vcpu, int quota_vcpu)
{
	bool isolated;
	int per = agentpool_tier_vcpu(tier, &isolated);

	memset(out, 0, sizeof(*out));
	out->count = desired;
	if (per <= 0) {
		out->fits = -1;
		return;
	}
	long room = (long)quota_vcpu - other_vcpu;
	out->fits = room > 0 ? (int)(room / per) : 0;
	if (desired <= current || desired <= out->fits)
		return;
	/* Growth is capped; what the pool already has is never taken away. */
	int keep = current < 0 ? 0 : current;
	out->count = out->fits > keep ? out->fits : keep;
	out->capped = true;
	snprintf(out->message, sizeof(out->message),
		 "vCPU quota caps the pool at %d of the %d instance(s) wanted: %d x %s needs %ld %s vCPU, "
		 "other pools use %d of the quota of %d",
		 out->count, desired, desired, tier, (long)per * desired, isolated ? "isolated" : "standard",
		 other_vcpu, quota_vcpu);
}
