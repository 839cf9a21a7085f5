/*
 * capacity.h: how many instances an AgentPool should have right now, decided
 * without any I/O.
 *
 * Three inputs can set the count: spec.count, the countSchedule window in
 * force, and autoscale (the pool's queue). The reconciler gathers the spec,
 * the clock and what it observed (queued and running runs, the count Azure
 * reports, when the pool was last busy), and calls, in this order:
 *
 *   capacity_schedule(&sched, windows, n, tz, now);    which window is in force
 *   capacity_bounds(&bounds, &spec_autoscale, &sched);  window min/max override
 *   capacity_autoscale(&as, &bounds, &observed);       queue -> count
 *   capacity_desired(&want, spec.count, &sched, &as);   the one answer + source
 *   capacity_quota_cap(&q, want.count, current, tier, others, quota);
 *
 * Each function is pure; the unit tests drive them with tables and fixed
 * clocks. docs/capacity.md explains the policy for users.
 */
#ifndef CAPACITY_H
#define CAPACITY_H

#include <stdbool.h>
#include <stddef.h>

#include "schedule/tz.h"

/* One countSchedule window as declared. Unset integers are -1. */
struct capacity_window {
	const char *cron;
	int count;
	int min_count;
	int max_count;
};

/* Which window is in force at `now` and when the schedule next changes. */
struct capacity_schedule {
	int active;              /* index of the window in force, -1 for none */
	long long active_since;  /* when it fired (epoch seconds) */
	int count;               /* the active window's values, -1 when unset or none */
	int min_count;
	int max_count;
	int next;                /* index of the window that fires next, -1 for none */
	long long next_time;     /* when (epoch seconds); 0 when next is -1 */
};

/* Evaluate windows[0..n) in zone tz (NULL means UTC) at now. The window in
 * force is the one whose cron fired most recently at or before now, looking
 * back up to a year (in practice a weekday schedule finds it within days; a
 * yearly cron within the year); when two fire at the same instant the one
 * listed later wins. No window fired in that year: none is in force
 * (out->active == -1, spec.count applies). next/next_time give the earliest
 * next fire time over all windows, so the reconciler can requeue for it.
 * Returns 0, or CTL_EINVALID when a cron does not parse (the message names
 * the window: "countSchedule.windows[1].cron: hour: 25 is out of range
 * 0-23"). */
int capacity_schedule(struct capacity_schedule *out, const struct capacity_window *windows, size_t n,
		      const struct tz *tz, long long now);

struct capacity_autoscale_params {
	int min_count;
	int max_count;
	int runs_per_instance;   /* >= 1 */
	int scale_down_delay_s;
};

/* The autoscale bounds in force: spec's, with the active window's minCount
 * and maxCount (where set) put in their place. A window bound that crosses
 * the other spec bound drags it along (window min 5 over spec max 4 gives
 * [5, 5]). sched may be NULL. */
void capacity_bounds(struct capacity_autoscale_params *out, const struct capacity_autoscale_params *spec,
		     const struct capacity_schedule *sched);

struct capacity_autoscale_observed {
	int queued;            /* runs waiting in the pool's queue; -1 when unknown */
	int running;           /* runs executing on the pool; -1 when unknown */
	int current;           /* instances the pool has */
	long long last_busy;   /* last time runs were queued or the need was >= current; 0 unknown */
	long long now;
};

struct capacity_autoscale_result {
	int count;                  /* the count autoscale wants */
	int need;                   /* ceil(work / runsPerInstance) within bounds; -1 queue unknown */
	int min_count, max_count;   /* the bounds applied */
	const char *reason;         /* ScaleUp ScaleDown ScaleDownDelayed RunsQueued AboveMax Steady QueueUnknown */
	char message[256];
	long long last_busy;        /* remember this as the next observed.last_busy */
	long long recheck_after_s;  /* > 0: a delayed scale-down falls due in this many seconds */
};

/* Decide the autoscaled count. need = ceil((queued + running) / runsPerInstance)
 * within [min, max] (an unknown running count counts as 0). Up: at once.
 * Down: only when no run is queued and the pool has not been busy for
 * scaleDownDelaySeconds, so a burst during the delay restarts it; since a
 * scale-up always marks the pool busy, a scale-down never follows a scale-up
 * within the delay (no flapping). A count above max (a window lowered it)
 * drops to max at once. Queue unknown: hold the current count within
 * bounds. */
void capacity_autoscale(struct capacity_autoscale_result *out, const struct capacity_autoscale_params *p,
			const struct capacity_autoscale_observed *o);

enum capacity_source {
	CAPACITY_SPEC,
	CAPACITY_SCHEDULE,
	CAPACITY_AUTOSCALE,
};

struct capacity_desired {
	int count;
	enum capacity_source source;
	int min_count, max_count;  /* bounds in force (autoscale or a bounds window), else -1 */
};

/* The one desired count. A window with a count in force sets it (source
 * Schedule), with or without autoscale: a night window {count: 0} turns an
 * autoscaled pool off. Otherwise autoscale (as non-NULL) decides (source
 * Autoscale). Otherwise spec.count, held within a bounds-only window's
 * [min, max] if one is in force (source Schedule when that changed it).
 * sched and as may be NULL. */
void capacity_desired(struct capacity_desired *out, int spec_count, const struct capacity_schedule *sched,
		      const struct capacity_autoscale_result *as);

/* "Spec", "Schedule" or "Autoscale", as status.desiredCountSource. */
const char *capacity_source_name(enum capacity_source source);

struct capacity_quota {
	int count;         /* the count to ask Azure for */
	int fits;          /* the largest count the quota leaves room for; -1 for an unknown tier */
	bool capped;       /* count is below desired because of the quota */
	char message[256]; /* why, when capped */
};

/* Cap desired so that the pool's vCPU (agentpool_tier_vcpu() x count) plus
 * other_vcpu (the other pools of the registry, same class as tier) stays
 * within quota_vcpu. Quota only ever limits growth: the answer is never
 * below min(desired, current), even when other pools have since used the
 * room this pool holds. An unknown tier is not capped. */
void capacity_quota_cap(struct capacity_quota *out, int desired, int current, const char *tier,
			int other_vcpu, int quota_vcpu);

#endif
