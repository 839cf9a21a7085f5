/*
 * conditions.c: kstatus conditions on cJSON status objects. See
 * conditions.h.
 */
#include "conditions.h"

#include "error.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *str_field(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool str_eq(const char *a, const char *b)
{
	return a && b ? strcmp(a, b) == 0 : a == b;
}

const cJSON *ctl_conditions_find(const cJSON *status, const char *type)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(status, "conditions");
	const cJSON *c;
	cJSON_ArrayForEach(c, list) {
		if (str_eq(str_field(c, "type"), type))
			return c;
	}
	return NULL;
}

bool ctl_conditions_is_true(const cJSON *status, const char *type)
{
	const cJSON *c = ctl_conditions_find(status, type);
	return c && str_eq(str_field(c, "status"), "True");
}

static void set_str(cJSON *o, const char *name, const char *value)
{
	cJSON *v = cJSON_CreateString(value ? value : "");
	if (cJSON_HasObjectItem(o, name))
		cJSON_ReplaceItemInObjectCaseSensitive(o, name, v);
	else
		cJSON_AddItemToObject(o, name, v);
}

bool ctl_conditions_set(cJSON *status, const struct ctl_condition *c, const char *now)
{
	cJSON *list = cJSON_GetObjectItemCaseSensitive(status, "conditions");
	if (!cJSON_IsArray(list)) {
		cJSON_DeleteItemFromObjectCaseSensitive(status, "conditions");
		list = cJSON_AddArrayToObject(status, "conditions");
	}
	cJSON *cur = (cJSON *)ctl_conditions_find(status, c->type);
	if (!cur) {
		cur = cJSON_CreateObject();
		cJSON_AddItemToArray(list, cur);
		set_str(cur, "type", c->type);
	}
	bool flipped = !str_eq(str_field(cur, "status"), c->status);
	const cJSON *gen = cJSON_GetObjectItemCaseSensitive(cur, "observedGeneration");
	bool changed = flipped || !str_eq(str_field(cur, "reason"), c->reason) ||
		       !str_eq(str_field(cur, "message"), c->message ? c->message : "") ||
		       !cJSON_IsNumber(gen) || (long long)gen->valuedouble != c->observed_generation;
	if (!changed)
		return false;
	set_str(cur, "status", c->status);
	set_str(cur, "reason", c->reason);
	set_str(cur, "message", c->message);
	if (flipped || !str_field(cur, "lastTransitionTime"))
		set_str(cur, "lastTransitionTime", now);
	cJSON_DeleteItemFromObjectCaseSensitive(cur, "observedGeneration");
	cJSON_AddNumberToObject(cur, "observedGeneration", (double)c->observed_generation);
	return true;
}

bool ctl_conditions_remove(cJSON *status, const char *type)
{
	cJSON *list = cJSON_GetObjectItemCaseSensitive(status, "conditions");
	int i = 0;
	cJSON *c;
	cJSON_ArrayForEach(c, list) {
		if (str_eq(str_field(c, "type"), type)) {
			cJSON_DeleteItemFromArray(list, i);
			return true;
		}
		i++;
	}
	return false;
}

bool ctl_status_changed(const cJSON *before, const cJSON *after)
{
	cJSON *empty = cJSON_CreateObject();
	bool same = cJSON_Compare(before ? before : empty, after ? after : empty, true);
	cJSON_Delete(empty);
	return !same;
}

const char *ctl_time_format(long long t, char buf[32])
{
	struct tm tm;
	time_t tt = (time_t)t;
	gmtime_r(&tt, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

int ctl_time_parse(const char *s, long long *out)
{
	struct tm tm = {0};
	int n = 0;
	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			 &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
		return ctl_error_set(CTL_EINVALID, "BadTime", "not an RFC 3339 time");
	const char *rest = s + n;
	if (*rest == '.')
		for (rest++; *rest >= '0' && *rest <= '9'; rest++)
			;
	long offset = 0;
	if (*rest == 'Z' || *rest == 'z') {
		rest++;
	} else if (*rest == '+' || *rest == '-') {
		/* Exactly +hh:mm: stepping by what sscanf consumed, never by a
		 * fixed width that could run past the string's end. */
		const char *o = rest + 1;
		if (!(o[0] >= '0' && o[0] <= '9' && o[1] >= '0' && o[1] <= '9' && o[2] == ':' &&
		      o[3] >= '0' && o[3] <= '9' && o[4] >= '0' && o[4] <= '9'))
			return ctl_error_set(CTL_EINVALID, "BadTime", "bad UTC offset in time");
		int hh = (o[0] - '0') * 10 + (o[1] - '0'), mm = (o[3] - '0') * 10 + (o[4] - '0');
		if (hh > 23 || mm > 59)
			return ctl_error_set(CTL_EINVALID, "BadTime", "bad UTC offset in time");
		offset = (hh * 3600L + mm * 60L) * (*rest == '-' ? -1 : 1);
		rest = o + 5;
	} else {
		return ctl_error_set(CTL_EINVALID, "BadTime", "time has no UTC offset");
	}
	if (*rest || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return ctl_error_set(CTL_EINVALID, "BadTime", "not an RFC 3339 time");
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*out = (long long)timegm(&tm) - offset;
	return 0;
}
