/*
 * cron.c: the cron parser and the fire-time search. See cron.h.
 *
 * A parsed cron is five bit sets. The search walks wall-clock time field by
 * field, coarsest first: a month that is not in the set is skipped whole, a
 * day that does not match is skipped whole, and within a day only the hours
 * and minutes in the sets are visited, so a year's search is a few hundred
 * steps however sparse the expression is. Each wall-clock candidate is then
 * mapped to UTC through the zone (tz_local_to_utc): no mapping is a
 * spring-forward gap and the candidate is dropped; two mappings is a
 * fall-back fold and the earlier one is the fire time. Because a later wall
 * time never maps to an earlier first occurrence, the first candidate that
 * lands on the right side of t is the answer.
 */
#include "schedule/cron.h"

#include "error.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DAY 86400LL
#define SEARCH_DAYS 367   /* a year and a day: every yearly cron fires once in it */

struct cron_field {
	const char *name;
	int min, max;
	const char *const *names;  /* names[i] is value min + i; NULL when none */
	int nnames;
	const char *names_hint;
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
					  "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

static const struct cron_field fields[5] = {
	{"minute", 0, 59, NULL, 0, NULL},
	{"hour", 0, 23, NULL, 0, NULL},
	{"day-of-month", 1, 31, NULL, 0, NULL},
	{"month", 1, 12, month_names, 12, "a month name (JAN-DEC)"},
	{"day-of-week", 0, 7, day_names, 7, "a day name (SUN-SAT)"},
};

static int invalid(const struct cron_field *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int invalid(const struct cron_field *f, const char *fmt, ...)
{
	char detail[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	return ctl_error_set(CTL_EINVALID, "InvalidCron", "%s: %s", f->name, detail);
}

static bool is_alnum(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* Parse one value (a number or, where the field has them, a name) from
 * s[*pos] within the item s[0..len). item and ilen are for messages. */
static int parse_value(const struct cron_field *f, const char *s, size_t len, size_t *pos, int *out,
		       const char *item, int ilen)
{
	size_t start = *pos, end = start;
	bool digits = true;
	while (end < len && is_alnum(s[end])) {
		digits &= s[end] >= '0' && s[end] <= '9';
		end++;
	}
	int vlen = (int)(end - start);
	const char *v = s + start;
	if (vlen == 0 && start < len && s[start] != '-' && s[start] != '/')
		return invalid(f, "\"%.*s\" is not a valid value, range or step", ilen, item);
	if (vlen == 0)
		return invalid(f, "\"%.*s\" is missing a value", ilen, item);
	if (digits) {
		long n = 0;
		for (int i = 0; i < vlen && n <= 1000; i++)
			n = n * 10 + (v[i] - '0');
		if (n < f->min || n > f->max)
			return invalid(f, "%.*s is out of range %d-%d", vlen, v, f->min, f->max);
		*out = (int)n;
	} else {
		int found = -1;
		for (int i = 0; vlen == 3 && i < f->nnames; i++)
			if (strncasecmp(v, f->names[i], 3) == 0)
				found = f->min + i;
		if (found < 0) {
			if (f->names)
				return invalid(f, "\"%.*s\" is not a number or %s", vlen, v, f->names_hint);
			return invalid(f, "\"%.*s\" is not a number", vlen, v);
		}
		*out = found;
	}
	*pos = end;
	return 0;
}

/* Parse one comma-separated item of a field into *mask; *star is set for a
 * bare `*` (or `*` with step 1). */
static int parse_item(const struct cron_field *f, const char *s, size_t len, uint64_t *mask, bool *star)
{
	size_t pos = 0;
	int lo, hi, step = 1, rc, ilen = (int)len;
	bool is_star = false, single = false;

	if (len == 0)
		return invalid(f, "empty list item");
	if (s[0] == '*') {
		is_star = true;
		lo = f->min;
		hi = f->max == 7 ? 6 : f->max;
		pos = 1;
	} else {
		if ((rc = parse_value(f, s, len, &pos, &lo, s, ilen)) < 0)
			return rc;
		hi = lo;
		single = true;
		if (pos < len && s[pos] == '-') {
			pos++;
			if ((rc = parse_value(f, s, len, &pos, &hi, s, ilen)) < 0)
				return rc;
			single = false;
			/* FRI-SUN: Sunday closes a weekday range as 7. */
			if (f->max == 7 && hi == 0 && lo > 0)
				hi = 7;
			if (hi < lo)
				return invalid(f, "range %.*s runs backwards (the first value must not exceed the second)",
					       ilen, s);
		}
	}
	if (pos < len && s[pos] == '/') {
		size_t st = ++pos;
		long n = 0;
		while (pos < len && s[pos] >= '0' && s[pos] <= '9') {
			if (n <= 1000)
				n = n * 10 + (s[pos] - '0');
			pos++;
		}
		if (pos == st)
			return invalid(f, "\"%.*s\" needs a number after \"/\"", ilen, s);
		if (pos < len && is_alnum(s[pos]))
			return invalid(f, "step in \"%.*s\" is not a number", ilen, s);
		if (n == 0)
			return invalid(f, "step 0 in \"%.*s\" must be at least 1", ilen, s);
		step = n > 100 ? 100 : (int)n;
		/* 5/15 means 5-59/15, as in cronie and Kubernetes CronJob. */
		if (single)
			hi = f->max == 7 ? (lo == 7 ? 7 : 6) : f->max;
	}
	if (pos < len)
		return invalid(f, "\"%.*s\" is not a valid value, range or step", ilen, s);
	for (int v = lo; v <= hi; v += step)
		*mask |= 1ULL << v;
	*star |= is_star && step == 1;
	return 0;
}

static int parse_field(const struct cron_field *f, const char *s, size_t len, uint64_t *mask, bool *star)
{
	size_t i = 0;
	int rc;
	*mask = 0;
	*star = false;
	for (;;) {
		size_t j = i;
		while (j < len && s[j] != ',')
			j++;
		if ((rc = parse_item(f, s + i, j - i, mask, star)) < 0)
			return rc;
		if (j == len)
			return 0;
		i = j + 1;
	}
}

int cron_parse(struct cron *out, const char *expr)
{
	const char *start[6];
	size_t len[6];
	int n = 0;
	uint64_t mask[5];
	bool star[5];

	memset(out, 0, sizeof(*out));
	for (const char *p = expr ? expr : ""; *p;) {
		while (*p && isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		const char *q = p;
		while (*q && !isspace((unsigned char)*q))
			q++;
		if (n < 6) {
			start[n] = p;
			len[n] = (size_t)(q - p);
		}
		n++;
		p = q;
	}
	if (n != 5)
		return ctl_error_set(CTL_EINVALID, "InvalidCron",
				     "cron: expected 5 fields (minute hour day-of-month month day-of-week), got %d", n);
	for (int i = 0; i < 5; i++) {
		int rc = parse_field(&fields[i], start[i], len[i], &mask[i], &star[i]);
		if (rc < 0)
			return rc;
	}
	out->minutes = mask[0];
	out->hours = (uint32_t)mask[1];
	out->doms = (uint32_t)mask[2];
	out->months = (uint16_t)mask[3];
	out->dows = (uint8_t)((mask[4] | mask[4] >> 7) & 0x7f);
	out->dom_any = star[2];
	out->dow_any = star[4];

	/* With weekdays unrestricted only the day of month picks days; if no
	 * chosen day exists in any chosen month the cron can never fire. */
	if (out->dow_any && !out->dom_any) {
		bool possible = false;
		for (int m = 1; m <= 12 && !possible; m++)
			if (out->months >> m & 1)
				possible = (out->doms & ((2ULL << tz_days_in_month(2000, m)) - 1)) != 0;
		if (!possible)
			return invalid(&fields[2], "no day in \"%.*s\" occurs in month \"%.*s\", so the expression would never fire",
				       (int)len[2], start[2], (int)len[3], start[3]);
	}
	return 0;
}

/* ---- search ------------------------------------------------------------ */

static long long floor_div(long long a, long long b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static int next_bit(uint64_t mask, int from)
{
	if (from > 63)
		return -1;
	uint64_t bits = mask & (~0ULL << from);
	return bits ? __builtin_ctzll(bits) : -1;
}

static int prev_bit(uint64_t mask, int from)
{
	if (from < 0)
		return -1;
	uint64_t bits = from >= 63 ? mask : mask & ((2ULL << from) - 1);
	return bits ? 63 - __builtin_clzll(bits) : -1;
}

/* A broken-down wall-clock minute plus its day number, kept in step. */
struct wall {
	long long days, y;
	int mo, d, h, mi;
};

static struct wall wall_split(long long w)
{
	struct wall x;
	x.days = floor_div(w, DAY);
	long long secs = w - x.days * DAY;
	x.h = (int)(secs / 3600);
	x.mi = (int)(secs % 3600 / 60);
	tz_civil_from_days(x.days, &x.y, &x.mo, &x.d);
	return x;
}

static void next_day(struct wall *x)
{
	x->days++;
	if (++x->d > tz_days_in_month(x->y, x->mo)) {
		x->d = 1;
		if (++x->mo > 12) {
			x->mo = 1;
			x->y++;
		}
	}
	x->h = 0;
	x->mi = 0;
}

static void prev_day(struct wall *x)
{
	x->days--;
	if (--x->d < 1) {
		if (--x->mo < 1) {
			x->mo = 12;
			x->y--;
		}
		x->d = tz_days_in_month(x->y, x->mo);
	}
	x->h = 23;
	x->mi = 59;
}

static bool day_matches(const struct cron *c, const struct wall *x)
{
	int wday = (int)(((x->days + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday */
	bool dom = c->doms >> x->d & 1, dow = c->dows >> wday & 1;
	if (c->dom_any || c->dow_any)
		return dom && dow;
	return dom || dow;
}

/* The first matching wall-clock minute at or after *w (minute-aligned), on
 * or before day limit. */
static bool wall_next(const struct cron *c, long long *w, long long limit)
{
	struct wall x = wall_split(*w);
	while (x.days <= limit) {
		if (!(c->months >> x.mo & 1)) {
			/* Skip to the first of the next month. */
			x.days += tz_days_in_month(x.y, x.mo) - x.d;
			x.d = tz_days_in_month(x.y, x.mo);
			next_day(&x);
			continue;
		}
		if (!day_matches(c, &x)) {
			next_day(&x);
			continue;
		}
		int h = next_bit(c->hours, x.h);
		if (h < 0) {
			next_day(&x);
			continue;
		}
		if (h != x.h) {
			x.h = h;
			x.mi = 0;
		}
		int mi = next_bit(c->minutes, x.mi);
		if (mi < 0) {
			x.mi = 0;
			if (++x.h > 23)
				next_day(&x);
			continue;
		}
		*w = x.days * DAY + x.h * 3600LL + mi * 60LL;
		return true;
	}
	return false;
}

/* The last matching wall-clock minute at or before *w, on or after day
 * limit. */
static bool wall_prev(const struct cron *c, long long *w, long long limit)
{
	struct wall x = wall_split(*w);
	while (x.days >= limit) {
		if (!(c->months >> x.mo & 1)) {
			/* Skip to the last day of the previous month. */
			x.days -= x.d - 1;
			x.d = 1;
			prev_day(&x);
			continue;
		}
		if (!day_matches(c, &x)) {
			prev_day(&x);
			continue;
		}
		int h = prev_bit(c->hours, x.h);
		if (h < 0) {
			prev_day(&x);
			continue;
		}
		if (h != x.h) {
			x.h = h;
			x.mi = 59;
		}
		int mi = prev_bit(c->minutes, x.mi);
		if (mi < 0) {
			x.mi = 59;
			if (--x.h < 0)
				prev_day(&x);
			continue;
		}
		*w = x.days * DAY + x.h * 3600LL + mi * 60LL;
		return true;
	}
	return false;
}

/* The smallest and largest offsets in force within two days of t: every
 * wall time that can map near t lies between t + lo and t + hi. */
static void offsets_near(const struct tz *tz, long long t, int *lo, int *hi)
{
	int o[3] = {tz_offset(tz, t - 2 * DAY), tz_offset(tz, t), tz_offset(tz, t + 2 * DAY)};
	*lo = *hi = o[0];
	for (int i = 1; i < 3; i++) {
		*lo = o[i] < *lo ? o[i] : *lo;
		*hi = o[i] > *hi ? o[i] : *hi;
	}
}

static int not_found(const char *dir, long long t)
{
	long long y;
	int m, d;
	long long days = floor_div(t, DAY), secs = t - days * DAY;
	tz_civil_from_days(days, &y, &m, &d);
	return ctl_error_set(CTL_ENOTFOUND, "NoFireTime",
			     "cron does not fire within a year %s %04lld-%02d-%02dT%02lld:%02lld:%02lldZ", dir, y, m,
			     d, secs / 3600, secs % 3600 / 60, secs % 60);
}

int cron_next(long long *out, const struct cron *c, const struct tz *tz, long long t)
{
	int lo, hi;
	offsets_near(tz, t, &lo, &hi);
	/* A wall time before t + lo maps to before t; start there. */
	long long w = floor_div(t + lo, 60) * 60;
	long long limit = floor_div(w, DAY) + SEARCH_DAYS;
	for (;;) {
		long long u;
		if (!wall_next(c, &w, limit))
			return not_found("after", t);
		if (tz_local_to_utc(tz, w, &u) > 0 && u > t) {
			*out = u;
			return 0;
		}
		w += 60;
	}
}

int cron_prev(long long *out, const struct cron *c, const struct tz *tz, long long t)
{
	int lo, hi;
	offsets_near(tz, t, &lo, &hi);
	/* In a fold, wall times after t's own can have fired already (their
	 * first occurrence was under the larger offset): start at t + hi. */
	long long w = floor_div(t + hi, 60) * 60;
	long long limit = floor_div(w, DAY) - SEARCH_DAYS;
	for (;;) {
		long long u;
		if (!wall_prev(c, &w, limit))
			return not_found("before", t);
		if (tz_local_to_utc(tz, w, &u) > 0 && u <= t) {
			*out = u;
			return 0;
		}
		w -= 60;
	}
}
