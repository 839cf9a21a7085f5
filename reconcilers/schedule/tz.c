/*
 * tz.c: TZif reader, POSIX TZ rule evaluation and the zone cache. See tz.h.
 *
 * A zone is three things from the file: the transition instants (ascending),
 * the local time type in force from each, and the footer rule for instants
 * after the last transition. Modern tzdata may ship "slim" files whose table
 * stops in 2007 and leaves everything later to the footer, so the footer is
 * not an afterthought: it is evaluated year by year like glibc and musl do.
 * Leap-second ("right/") zones are refused: our clock is POSIX time.
 *
 * The cache is a list under one mutex, keyed by file path. Entries are never
 * removed, which is what makes handing out bare pointers safe.
 */
#include "schedule/tz.h"

#include "error.h"
#include "xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TZ_MAX_FILE (1024 * 1024)
#define DAY 86400LL

struct tz_type {
	int32_t utoff;  /* seconds east of UTC */
	bool isdst;
};

/* One end of a POSIX TZ rule: Jn (1-365, Feb 29 never counted), n (0-365),
 * or Mm.w.d (day d of week w of month m; w 5 = the last), at `secs` past
 * local midnight (-167h to 167h, RFC 8536). */
struct tz_rule_date {
	char kind;      /* 'J', 'D' or 'M' */
	int n;          /* J and D: the day; M: the month */
	int week, wday; /* M only */
	int32_t secs;
};

struct tz_rule {
	int32_t std_off, dst_off;  /* seconds east of UTC */
	bool has_dst;
	struct tz_rule_date start, end;
};

struct tz {
	char *name;
	bool owned;            /* from tz_parse(): tz_free() frees it */
	size_t ntrans;
	int64_t *trans;        /* ascending UTC instants */
	unsigned char *idx;    /* type in force from trans[i] */
	size_t ntypes;
	struct tz_type *types;
	bool has_rule;
	struct tz_rule rule;
};

static struct tz_type utc_type = {0, false};
static struct tz utc_zone = {
	.name = (char *)"UTC", .ntypes = 1, .types = &utc_type,
};

const struct tz *tz_utc(void)
{
	return &utc_zone;
}

const char *tz_name(const struct tz *tz)
{
	return tz ? tz->name : "UTC";
}

/* ---- calendar ---------------------------------------------------------- */

/* Howard Hinnant's days_from_civil / civil_from_days: exact for every
 * proleptic Gregorian date, no tables, no time_t. */
long long tz_days_from_civil(long long y, int m, int d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	long long yoe = y - era * 400;
	long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void tz_civil_from_days(long long days, long long *y, int *m, int *d)
{
	days += 719468;
	long long era = (days >= 0 ? days : days - 146096) / 146097;
	long long doe = days - era * 146097;
	long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	long long mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(long long y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int tz_days_in_month(long long y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

static long long floor_div(long long a, long long b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* ---- POSIX TZ rules ---------------------------------------------------- */

/* Wall-clock seconds (standard or daylight, as the rule says) at which a
 * rule date falls in year y. */
static long long rule_date_local(const struct tz_rule_date *r, long long y)
{
	long long jan1 = tz_days_from_civil(y, 1, 1), day;
	switch (r->kind) {
	case 'J':
		day = jan1 + r->n - 1 + (is_leap(y) && r->n >= 60);
		break;
	case 'D':
		day = jan1 + r->n;
		break;
	default: {
		long long first = tz_days_from_civil(y, r->n, 1);
		int wd_first = (int)(((first + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday */
		int dom = (r->wday - wd_first + 7) % 7 + (r->week - 1) * 7;
		while (dom >= tz_days_in_month(y, r->n))
			dom -= 7;
		day = first + dom;
		break;
	}
	}
	return day * DAY + r->secs;
}

static int32_t rule_offset(const struct tz_rule *r, long long t)
{
	if (!r->has_dst)
		return r->std_off;
	long long y;
	int m, d;
	tz_civil_from_days(floor_div(t + r->std_off, DAY), &y, &m, &d);
	/* DST starts when standard time reaches the start date and ends when
	 * daylight time reaches the end date. */
	long long s = rule_date_local(&r->start, y) - r->std_off;
	long long e = rule_date_local(&r->end, y) - r->dst_off;
	if (s < e)
		return t >= s && t < e ? r->dst_off : r->std_off;
	/* Southern hemisphere: DST spans the new year. */
	return t >= e && t < s ? r->std_off : r->dst_off;
}

static const char *parse_num(const char *s, int min, int max, int *out)
{
	int v = 0, digits = 0;
	while (*s >= '0' && *s <= '9' && digits < 4) {
		v = v * 10 + (*s++ - '0');
		digits++;
	}
	if (!digits || (*s >= '0' && *s <= '9') || v < min || v > max)
		return NULL;
	*out = v;
	return s;
}

/* [+-]hh[:mm[:ss]] with hh up to max_h; the value is seconds, sign kept. */
static const char *parse_hms(const char *s, int max_h, int32_t *out)
{
	int sign = 1, h, mi = 0, sec = 0;
	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	if (!(s = parse_num(s, 0, max_h, &h)))
		return NULL;
	if (*s == ':') {
		if (!(s = parse_num(s + 1, 0, 59, &mi)))
			return NULL;
		if (*s == ':' && !(s = parse_num(s + 1, 0, 59, &sec)))
			return NULL;
	}
	*out = sign * (h * 3600 + mi * 60 + sec);
	return s;
}

/* A zone abbreviation: three or more letters, or <...> with letters, digits,
 * '+' and '-'. */
static const char *parse_abbr(const char *s)
{
	const char *p = s;
	if (*p == '<') {
		for (p++; (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			  (*p >= '0' && *p <= '9') || *p == '+' || *p == '-'; p++)
			;
		return *p == '>' && p - s >= 4 ? p + 1 : NULL;
	}
	while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
		p++;
	return p - s >= 3 ? p : NULL;
}

static const char *parse_rule_date(const char *s, struct tz_rule_date *r)
{
	if (*s == 'J') {
		r->kind = 'J';
		s = parse_num(s + 1, 1, 365, &r->n);
	} else if (*s == 'M') {
		r->kind = 'M';
		if (!(s = parse_num(s + 1, 1, 12, &r->n)) || *s != '.' ||
		    !(s = parse_num(s + 1, 1, 5, &r->week)) || *s != '.')
			return NULL;
		s = parse_num(s + 1, 0, 6, &r->wday);
	} else {
		r->kind = 'D';
		s = parse_num(s, 0, 365, &r->n);
	}
	if (!s)
		return NULL;
	r->secs = 7200;
	if (*s == '/')
		s = parse_hms(s + 1, 167, &r->secs);
	return s;
}

/* Parse a POSIX TZ string such as "CET-1CEST,M3.5.0,M10.5.0/3". POSIX
 * offsets count west of Greenwich; they are stored east. Returns false when
 * the string is malformed. */
static bool parse_rule(const char *s, struct tz_rule *r)
{
	int32_t off;
	memset(r, 0, sizeof(*r));
	if (!(s = parse_abbr(s)) || !(s = parse_hms(s, 24, &off)))
		return false;
	r->std_off = -off;
	if (!*s)
		return true;
	if (!(s = parse_abbr(s)))
		return false;
	r->has_dst = true;
	r->dst_off = r->std_off + 3600;
	if (*s && *s != ',') {
		if (!(s = parse_hms(s, 24, &off)))
			return false;
		r->dst_off = -off;
	}
	if (!*s) {
		/* No rule: the POSIX default is implementation-defined; glibc
		 * uses the US rules, and so do we. TZif footers always carry
		 * one. */
		r->start = (struct tz_rule_date){'M', 3, 2, 0, 7200};
		r->end = (struct tz_rule_date){'M', 11, 1, 0, 7200};
		return true;
	}
	if (*s != ',' || !(s = parse_rule_date(s + 1, &r->start)) || *s != ',' ||
	    !(s = parse_rule_date(s + 1, &r->end)))
		return false;
	return *s == '\0';
}

/* ---- TZif -------------------------------------------------------------- */

struct tzif_header {
	char version;
	uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
};

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static int bad(const char *name, const char *what)
{
	return ctl_error_set(CTL_EINVALID, "InvalidTimeZone", "time zone \"%s\": not a valid TZif file: %s",
			     name, what);
}

static int parse_header(const unsigned char *p, size_t avail, const char *name, struct tzif_header *h)
{
	if (avail < 44)
		return bad(name, "truncated header");
	if (memcmp(p, "TZif", 4) != 0)
		return bad(name, "no TZif magic");
	h->version = (char)p[4];
	if (h->version != 0 && (h->version < '2' || h->version > '9'))
		return bad(name, "unknown version");
	h->isutcnt = be32(p + 20);
	h->isstdcnt = be32(p + 24);
	h->leapcnt = be32(p + 28);
	h->timecnt = be32(p + 32);
	h->typecnt = be32(p + 36);
	h->charcnt = be32(p + 40);
	if (h->typecnt == 0 || h->charcnt == 0)
		return bad(name, "no local time types");
	if (h->typecnt > 256)
		return bad(name, "more than 256 local time types");
	if ((h->isutcnt && h->isutcnt != h->typecnt) || (h->isstdcnt && h->isstdcnt != h->typecnt))
		return bad(name, "indicator counts do not match the type count");
	return 0;
}

static uint64_t block_size(const struct tzif_header *h, int timesize)
{
	return (uint64_t)h->timecnt * (uint64_t)(timesize + 1) + (uint64_t)h->typecnt * 6 + h->charcnt +
	       (uint64_t)h->leapcnt * (uint64_t)(timesize + 4) + h->isstdcnt + h->isutcnt;
}

/* Fill z from the data block at p (already checked to be whole). */
static int parse_block(struct tz *z, const unsigned char *p, const struct tzif_header *h, int timesize,
		       const char *name)
{
	if (h->leapcnt)
		return ctl_error_set(CTL_EINVALID, "InvalidTimeZone",
				     "time zone \"%s\": leap-second (right/) zones are not supported", name);
	z->ntrans = h->timecnt;
	z->trans = xcalloc(h->timecnt ? h->timecnt : 1, sizeof(*z->trans));
	z->idx = xcalloc(h->timecnt ? h->timecnt : 1, 1);
	z->ntypes = h->typecnt;
	z->types = xcalloc(h->typecnt, sizeof(*z->types));
	for (size_t i = 0; i < h->timecnt; i++) {
		z->trans[i] = timesize == 8 ? be64(p + i * 8) : (int32_t)be32(p + i * 4);
		if (i > 0 && z->trans[i] <= z->trans[i - 1])
			return bad(name, "transition times are not ascending");
	}
	p += (size_t)h->timecnt * (size_t)timesize;
	for (size_t i = 0; i < h->timecnt; i++) {
		z->idx[i] = p[i];
		if (p[i] >= h->typecnt)
			return bad(name, "transition names a local time type that does not exist");
	}
	p += h->timecnt;
	for (size_t i = 0; i < h->typecnt; i++, p += 6) {
		int32_t off = (int32_t)be32(p);
		if (off < -89999 || off > 93599)
			return bad(name, "UTC offset out of range");
		if (p[4] > 1 || p[5] >= h->charcnt)
			return bad(name, "malformed local time type");
		z->types[i] = (struct tz_type){off, p[4] == 1};
	}
	return 0;
}

int tz_parse(const struct tz **out, const char *name, const void *data, size_t len)
{
	const unsigned char *p = data;
	struct tzif_header h;
	struct tz *z = xcalloc(1, sizeof(*z));
	int rc;
	char *footer = NULL;

	z->name = xstrdup(name ? name : "");
	z->owned = true;
	if ((rc = parse_header(p, len, z->name, &h)) < 0)
		goto done;
	uint64_t size = block_size(&h, 4);
	if (size > len - 44) {
		rc = bad(z->name, "truncated data");
		goto done;
	}
	if (h.version == 0) {
		rc = parse_block(z, p + 44, &h, 4, z->name);
		goto done;
	}
	/* Version 2 and later repeat everything with 64-bit times after the
	 * version 1 block, then add the footer; the v1 block is only for old
	 * readers. */
	size_t off = 44 + (size_t)size;
	if ((rc = parse_header(p + off, len - off, z->name, &h)) < 0)
		goto done;
	off += 44;
	size = block_size(&h, 8);
	if (size > len - off) {
		rc = bad(z->name, "truncated data");
		goto done;
	}
	if ((rc = parse_block(z, p + off, &h, 8, z->name)) < 0)
		goto done;
	off += (size_t)size;
	const unsigned char *nl = off < len ? memchr(p + off + 1, '\n', len - off - 1) : NULL;
	if (off >= len || p[off] != '\n' || !nl || (size_t)(nl - p) != len - 1) {
		rc = bad(z->name, "missing or malformed footer");
		goto done;
	}
	footer = xstrndup((const char *)p + off + 1, (size_t)(nl - p) - off - 1);
	if (*footer) {
		if (strlen(footer) != (size_t)(nl - p) - off - 1 || !parse_rule(footer, &z->rule)) {
			rc = ctl_error_set(CTL_EINVALID, "InvalidTimeZone",
					   "time zone \"%s\": malformed TZ rule \"%s\" in the footer", z->name,
					   footer);
			goto done;
		}
		z->has_rule = true;
	}
	rc = 0;
done:
	free(footer);
	if (rc < 0) {
		tz_free(z);
		z = NULL;
	}
	*out = z;
	return rc;
}

void tz_free(const struct tz *tz)
{
	struct tz *z = (struct tz *)tz;
	if (!z || !z->owned)
		return;
	free(z->name);
	free(z->trans);
	free(z->idx);
	free(z->types);
	free(z);
}

/* ---- offsets ----------------------------------------------------------- */

int tz_offset(const struct tz *tz, long long utc)
{
	if (!tz)
		return 0;
	size_t n = tz->ntrans;
	if (n == 0)
		return tz->has_rule ? rule_offset(&tz->rule, utc) : tz->types[0].utoff;
	if (utc < tz->trans[0])
		return tz->types[0].utoff;
	if (utc >= tz->trans[n - 1])
		return tz->has_rule ? rule_offset(&tz->rule, utc) : tz->types[tz->idx[n - 1]].utoff;
	size_t lo = 0, hi = n - 1; /* trans[lo] <= utc < trans[hi] */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (tz->trans[mid] <= utc)
			lo = mid;
		else
			hi = mid;
	}
	return tz->types[tz->idx[lo]].utoff;
}

long long tz_utc_to_local(const struct tz *tz, long long utc)
{
	return utc + tz_offset(tz, utc);
}

int tz_local_to_utc(const struct tz *tz, long long local, long long *out)
{
	/* Every answer is local - o for an offset o in force somewhere within
	 * a day or so of local; sampling two days either side and at local
	 * finds both offsets around a transition. Each candidate is then kept
	 * only if that offset really is in force at that instant. */
	int cand[3] = {tz_offset(tz, local - 2 * DAY), tz_offset(tz, local), tz_offset(tz, local + 2 * DAY)};
	int found = 0;
	long long best = 0;
	for (int i = 0; i < 3; i++) {
		bool dup = false;
		for (int j = 0; j < i; j++)
			dup |= cand[j] == cand[i];
		if (dup)
			continue;
		long long t = local - cand[i];
		if (tz_offset(tz, t) != cand[i])
			continue;
		if (!found || t < best)
			best = t;
		found++;
	}
	if (found)
		*out = best;
	return found;
}

/* ---- loading and the cache --------------------------------------------- */

struct cache_entry {
	struct cache_entry *next;
	char *path;
	struct tz *tz;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cache_entry *cache;

static bool valid_name(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > 255 || name[0] == '/' || name[len - 1] == '/' || strstr(name, "//") ||
	    strstr(name, ".."))
		return false;
	for (const char *p = name; *p; p++) {
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      *p == '/' || *p == '_' || *p == '-' || *p == '+' || *p == '.'))
			return false;
	}
	return true;
}

static struct tz *cache_find(const char *path)
{
	for (struct cache_entry *e = cache; e; e = e->next)
		if (strcmp(e->path, path) == 0)
			return e->tz;
	return NULL;
}

static int read_zone_file(const char *path, const char *name, const char *dir, unsigned char **out,
			  size_t *len)
{
	unsigned char *buf = NULL;
	size_t n = 0;
	struct stat st;
	int rc, fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return ctl_error_set(CTL_EINVALID, "UnknownTimeZone",
					     "unknown time zone \"%s\" (no such zone in %s)", name, dir);
		return ctl_error_set(CTL_ERR, "TimeZoneUnreadable", "time zone \"%s\": %s: %s", name, path,
				     strerror(errno));
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = ctl_error_set(CTL_EINVALID, "UnknownTimeZone",
				   "unknown time zone \"%s\" (%s is not a zone file)", name, path);
		goto done;
	}
	if (st.st_size > TZ_MAX_FILE) {
		rc = bad(name, "file too large");
		goto done;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = ctl_error_set(CTL_ERR, "TimeZoneUnreadable", "time zone \"%s\": %s: %s", name,
					   path, strerror(errno));
			goto done;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*out = buf;
	*len = n;
	buf = NULL;
	rc = 0;
done:
	free(buf);
	close(fd);
	return rc;
}

int tz_load_dir(const struct tz **out, const char *dir, const char *name)
{
	const struct tz *parsed = NULL;
	unsigned char *data = NULL;
	size_t len = 0;
	char *path = NULL;
	int rc;

	*out = NULL;
	if (!dir)
		dir = TZ_DEFAULT_DIR;
	if (name && (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0)) {
		*out = &utc_zone;
		return 0;
	}
	if (!name || !valid_name(name))
		return ctl_error_set(CTL_EINVALID, "InvalidTimeZone",
				     "\"%s\" is not a time zone name (expected an IANA name such as Europe/Amsterdam)",
				     name ? name : "");
	path = xasprintf("%s/%s", dir, name);
	pthread_mutex_lock(&cache_lock);
	*out = cache_find(path);
	pthread_mutex_unlock(&cache_lock);
	if (*out) {
		rc = 0;
		goto done;
	}
	/* Read and parse outside the lock; two threads racing on the same new
	 * zone both parse it and the loser's copy is dropped. */
	if ((rc = read_zone_file(path, name, dir, &data, &len)) < 0)
		goto done;
	if ((rc = tz_parse(&parsed, name, data, len)) < 0)
		goto done;
	pthread_mutex_lock(&cache_lock);
	*out = cache_find(path);
	if (!*out) {
		struct cache_entry *e = xmalloc(sizeof(*e));
		struct tz *z = (struct tz *)parsed;
		z->owned = false;
		e->path = path;
		e->tz = z;
		e->next = cache;
		cache = e;
		*out = z;
		path = NULL;
		parsed = NULL;
	}
	pthread_mutex_unlock(&cache_lock);
	rc = 0;
done:
	tz_free(parsed);
	free(data);
	free(path);
	return rc;
}

int tz_load(const struct tz **out, const char *name)
{
	return tz_load_dir(out, NULL, name);
}
