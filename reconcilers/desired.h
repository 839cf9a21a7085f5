/*
 * desired.h: the count a pool kind should have right now, read from its
 * spec (spec.count, spec.countSchedule, spec.autoscale) and its status
 * (lastBusyTime), for every kind that has those blocks with the same
 * meaning: AgentPool (ACR Task agents) and PipelineAgentPool (Azure
 * Pipelines agents). The decisions themselves are schedule/capacity.h,
 * pure; this is the part that reads the object, keeps lastBusyTime and
 * writes the capacity fields of status, so both kinds say the same thing
 * the same way (docs/capacity.md).
 *
 * What each kind measures differs and is handed in: the queue (queued
 * ACR runs, or queued Azure DevOps job requests) and the work running on
 * the pool (running ACR runs, or busy agents).
 */
#ifndef DESIRED_H
#define DESIRED_H

#include "schedule/capacity.h"

#include "objects.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

struct desired_observed {
	int current;         /* instances the pool has now */
	int decided;         /* the count autoscale decided last (status), -1 when it did not */
	int queued;          /* work waiting; -1 when it could not be read */
	/* Work running on the pool, asked only when autoscale decides and the
	 * queue was read (for AgentPool it is one more ARM read); -1 unknown. */
	int (*running)(void *ud);
	void *running_ud;
	long long now;       /* desired_now() */
	int64_t poll_ns;     /* how often autoscale looks at the queue */
	int runs_per_instance_default; /* when the spec has no runsPerInstance */
};

struct desired_count {
	struct capacity_schedule sched;
	bool has_schedule;
	bool has_autoscale;
	struct capacity_autoscale_result as;
	struct capacity_desired want;
	int64_t requeue_ns;  /* when the decision may change by itself; 0 never */
	char message[512];   /* why the count is what it is (status.capacityMessage) */
};

/* The clock capacity decisions use: the wall clock, or in tests the
 * epoch seconds in the file ACRPOOL_TEST_CLOCK_FILE names, so the e2e
 * tests move through schedule windows without waiting. */
long long desired_now(void);

/* Decide. Keeps status.lastBusyTime (autoscale's memory) up to date.
 * Returns 0, or CTL_EINVALID with the error's reason InvalidTimeZone or
 * InvalidSchedule and a message naming the field, for a schedule that
 * cannot be evaluated. */
int desired_count_decide(struct desired_count *out, const struct ctl_obj *obj, cJSON *status,
			 const struct desired_observed *o);

/* The decision as status: desiredCountSource, activeWindow,
 * nextWindowTime, capacityMessage. */
void desired_count_status(cJSON *status, const struct desired_count *d, const struct ctl_obj *obj);

#endif
