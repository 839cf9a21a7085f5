/*
 * desired.c: the count of a pool kind from spec.count, countSchedule and
 * autoscale (desired.h). Shared by AgentPool and PipelineAgentPool.
 */
#include "desired.h"

#include "app.h"
#include "conditions.h"
#include "error.h"
#include "schedule/tz.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

long long desired_now(void)
{
	const char *path = getenv("ACRPOOL_TEST_CLOCK_FILE");
	if (path && *path) {
		FILE *f = fopen(path, "r");
		long long t = 0;
		if (f) {
			int ok = fscanf(f, "%lld", &t) == 1;
			fclose(f);
			if (ok && t > 0)
				return t;
		}
	}
	return (long long)time(NULL);
}

static int spec_int(const struct ctl_obj *obj, const char *path, int def)
{
	const cJSON *v = ctl_obj_field(obj, path);
	return cJSON_IsNumber(v) ? v->valueint : def;
}

static int item_int(const cJSON *it, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, name);
	return cJSON_IsNumber(v) ? v->valueint : -1;
}

/* Which countSchedule window is in force. */
static int decide_schedule(struct desired_count *out, const struct ctl_obj *obj, long long now)
{
	const cJSON *windows = ctl_obj_field(obj, "spec.countSchedule.windows");
	if (!cJSON_IsArray(windows) || cJSON_GetArraySize(windows) == 0)
		return 0;
	const char *zone = ctl_obj_string(obj, "spec.countSchedule.timeZone");
	const struct tz *tz = NULL;
	if (tz_load(&tz, zone ? zone : "UTC") != 0)
		return ctl_error_set(CTL_EINVALID, "InvalidTimeZone", "spec.countSchedule.timeZone: %s",
				     ctl_error_last()->message);
	size_t n = (size_t)cJSON_GetArraySize(windows), i = 0;
	struct capacity_window *w = xcalloc(n, sizeof(*w));
	const cJSON *it;
	cJSON_ArrayForEach(it, windows) {
		w[i].cron = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "cron"));
		w[i].count = item_int(it, "count");
		w[i].min_count = item_int(it, "minCount");
		w[i].max_count = item_int(it, "maxCount");
		if (!w[i].cron)
			w[i].cron = "";
		i++;
	}
	int rc = capacity_schedule(&out->sched, w, n, tz, now);
	free(w);
	if (rc != 0)
		return ctl_error_set(CTL_EINVALID, "InvalidSchedule", "spec.%s", ctl_error_last()->message);
	out->has_schedule = true;
	if (out->sched.next >= 0 && out->sched.next_time > now)
		out->requeue_ns = (int64_t)(out->sched.next_time - now + 1) * 1000000000LL;
	return 0;
}

/* What autoscale wants from the queue, within the bounds in force. */
static void decide_autoscale(struct desired_count *out, const struct ctl_obj *obj, cJSON *status,
			     const struct desired_observed *o)
{
	struct capacity_autoscale_params spec = {
		.min_count = spec_int(obj, "spec.autoscale.minCount", 0),
		.max_count = spec_int(obj, "spec.autoscale.maxCount", 1),
		.runs_per_instance = spec_int(obj, "spec.autoscale.runsPerInstance",
					      o->runs_per_instance_default > 0 ? o->runs_per_instance_default : 1),
		.scale_down_delay_s = spec_int(obj, "spec.autoscale.scaleDownDelaySeconds", 300),
	}, bounds;
	capacity_bounds(&bounds, &spec, out->has_schedule ? &out->sched : NULL);
	long long last_busy = 0;
	const char *lb = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(status, "lastBusyTime"));
	if (lb)
		ctl_time_parse(lb, &last_busy);
	/* Autoscale starts from the count it decided last, not from what
	 * Azure shows: a human's out-of-band change is drift to put back,
	 * not capacity to keep until the scale-down delay. */
	struct capacity_autoscale_observed ob = {
		.queued = o->queued,
		.running = o->queued >= 0 && o->running ? o->running(o->running_ud) : -1,
		.current = o->decided >= 0 ? o->decided : o->current,
		.last_busy = last_busy,
		.now = o->now,
	};
	capacity_autoscale(&out->as, &bounds, &ob);
	out->has_autoscale = true;
	char when[32];
	if (out->as.last_busy > 0)
		app_json_set_str(status, "lastBusyTime", ctl_time_format(out->as.last_busy, when));
	/* Autoscale polls the queue; a delayed scale-down falls due on its
	 * own time. */
	int64_t poll = o->poll_ns;
	if (out->as.recheck_after_s > 0 && out->as.recheck_after_s * 1000000000LL < poll)
		poll = out->as.recheck_after_s * 1000000000LL;
	if (!out->requeue_ns || poll < out->requeue_ns)
		out->requeue_ns = poll;
}

static const char *window_cron(const struct ctl_obj *obj, int index)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetArrayItem(ctl_obj_field(obj, "spec.countSchedule.windows"), index), "cron"));
}

int desired_count_decide(struct desired_count *out, const struct ctl_obj *obj, cJSON *status,
			 const struct desired_observed *o)
{
	memset(out, 0, sizeof(*out));
	out->sched.active = -1;
	out->sched.next = -1;
	int rc = decide_schedule(out, obj, o->now);
	if (rc != 0)
		return rc;
	if (cJSON_IsObject(ctl_obj_field(obj, "spec.autoscale")))
		decide_autoscale(out, obj, status, o);
	else
		cJSON_DeleteItemFromObjectCaseSensitive(status, "lastBusyTime");
	capacity_desired(&out->want, spec_int(obj, "spec.count", 1), out->has_schedule ? &out->sched : NULL,
			 out->has_autoscale ? &out->as : NULL);
	if (out->want.source == CAPACITY_AUTOSCALE)
		snprintf(out->message, sizeof(out->message), "%s", out->as.message);
	else if (out->want.source == CAPACITY_SCHEDULE && out->sched.active >= 0)
		snprintf(out->message, sizeof(out->message), "window \"%s\" in force since its last firing",
			 window_cron(obj, out->sched.active));
	else
		snprintf(out->message, sizeof(out->message), "spec.count");
	return 0;
}

void desired_count_status(cJSON *status, const struct desired_count *d, const struct ctl_obj *obj)
{
	char when[32];
	app_json_set_str(status, "desiredCountSource", capacity_source_name(d->want.source));
	app_json_set_str(status, "activeWindow",
			 d->has_schedule && d->sched.active >= 0 ? window_cron(obj, d->sched.active) : NULL);
	app_json_set_str(status, "nextWindowTime", d->has_schedule && d->sched.next >= 0
			 ? ctl_time_format(d->sched.next_time, when) : NULL);
	if (d->message[0]) /* none while deleting: the last one stays */
		app_json_set_str(status, "capacityMessage", d->message);
}
