/*
 * conditions.h: kstatus-style conditions in an object's status.
 *
 * A condition is {type, status, reason, message, lastTransitionTime,
 * observedGeneration} in status.conditions, a list keyed by type. The rule
 * that makes them useful to Flux, Argo CD and humans: lastTransitionTime
 * moves only when status flips, not on every reconcile, so setting the same
 * condition twice leaves the object byte-identical and a status write can
 * be skipped (see ctl_status_changed).
 */
#ifndef CTL_CONDITIONS_H
#define CTL_CONDITIONS_H

#include <cjson/cJSON.h>
#include <stdbool.h>

struct ctl_condition {
	const char *type;     /* Ready, Reconciling, Stalled */
	const char *status;   /* "True", "False", "Unknown" */
	const char *reason;   /* CamelCase */
	const char *message;
	long long observed_generation;
};

/* Set (add or replace) one condition in status (a JSON object; its
 * "conditions" array is created when missing). now is an RFC 3339 time used
 * only when the status value flips or the condition is new. Returns true
 * when anything about the condition changed. */
bool ctl_conditions_set(cJSON *status, const struct ctl_condition *c, const char *now);

/* Remove the condition of that type; true when one was there. */
bool ctl_conditions_remove(cJSON *status, const char *type);

/* The condition of that type in status, or NULL. Borrowed. */
const cJSON *ctl_conditions_find(const cJSON *status, const char *type);

/* True when the condition exists and its status is "True". */
bool ctl_conditions_is_true(const cJSON *status, const char *type);

/* True when the two status objects differ (NULL counts as {}). */
bool ctl_status_changed(const cJSON *before, const cJSON *after);

/* Format t (seconds since the epoch, UTC) as RFC 3339 into buf[32]. */
const char *ctl_time_format(long long t, char buf[32]);

/* Parse an RFC 3339 UTC time ("2026-11-23T04:33:14Z", fractions allowed)
 * into seconds since the epoch; CTL_EINVALID when malformed. */
int ctl_time_parse(const char *s, long long *out);

#endif
