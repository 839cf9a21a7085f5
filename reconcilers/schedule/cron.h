/*
 * cron.h: five-field cron expressions for countSchedule windows, evaluated in
 * an IANA time zone.
 *
 * Syntax: "minute hour day-of-month month day-of-week", each field a comma
 * list of `*`, `n`, `a-b`, each optionally followed by `/step` (`1-5/2`;
 * a star with a step, every 15 minutes, is `*` then `/15`; `n/step` means n
 * to the field's maximum). Months take JAN-DEC and
 * weekdays SUN-SAT, in any case; weekday 0 and 7 are both Sunday, and a range
 * may end on Sunday (`FRI-SUN`). As in every cron, when both day-of-month and
 * day-of-week are restricted a day matches if EITHER matches ("0 0 13 * 5"
 * fires on the 13th and on Fridays); a field counts as unrestricted when one
 * of its items is a bare `*` (as in Kubernetes CronJob, a star with a step
 * greater than 1 restricts).
 *
 * Time: the fields are read as wall-clock time in the zone. A wall time that
 * does not exist (the spring-forward gap) does not fire that day; a wall time
 * that occurs twice (fall-back) fires at its first occurrence only.
 *
 * A parsed cron is a plain value: no allocation, nothing to free.
 */
#ifndef CRON_H
#define CRON_H

#include <stdbool.h>
#include <stdint.h>

#include "schedule/tz.h"

struct cron {
	uint64_t minutes;  /* bit m: minute m, 0-59 */
	uint32_t hours;    /* bit h: hour h, 0-23 */
	uint32_t doms;     /* bit d: day of month d, 1-31 */
	uint16_t months;   /* bit m: month m, 1-12 */
	uint8_t dows;      /* bit d: weekday d, 0 (Sunday) - 6 */
	bool dom_any;      /* day-of-month field is unrestricted */
	bool dow_any;      /* day-of-week field is unrestricted */
};

/* Parse expr into out. Returns 0, or CTL_EINVALID with a message that names
 * the field and the problem ("hour: 25 is out of range 0-23"). A cron that
 * can never fire ("0 0 30 2 *") is refused too. */
int cron_parse(struct cron *out, const char *expr);

/* The first fire time strictly after t, in seconds since the epoch; tz NULL
 * means UTC. Searches about a year ahead; returns CTL_ENOTFOUND when nothing
 * fires in that span (a Feb 29 cron three years from a leap day). */
int cron_next(long long *out, const struct cron *c, const struct tz *tz, long long t);

/* The most recent fire time at or before t; as cron_next(), backwards. */
int cron_prev(long long *out, const struct cron *c, const struct tz *tz, long long t);

#endif
