/*
 * tz.h: IANA time zones, read from TZif files, without the C library's
 * process-global TZ.
 *
 * setenv("TZ") + tzset() + localtime_r() would change the zone of the whole
 * process and race with every thread that reads the environment (libcurl
 * calls getenv), so countSchedule time zones are loaded here instead: a
 * zone is the parsed TZif file (RFC 8536; versions 1 to 4, with 64-bit
 * transition times and the POSIX TZ footer, such as
 * "CET-1CEST,M3.5.0,M10.5.0/3", that governs times after the last
 * transition) from /usr/share/zoneinfo. "UTC" and "Etc/UTC" are built in and
 * need no file.
 *
 * Loaded zones are immutable and cached for the life of the process (there
 * are a few hundred zone files at most), so any thread may use a zone it got
 * from tz_load() without locking, and tz_free() on it is a no-op.
 *
 * Local time here is "wall-clock seconds": the wall-clock date and time read
 * as if it were UTC (what timegm() would return for it). Converting wall time
 * back to UTC has two special cases, and cron.c relies on the answers:
 *   - a wall time in a spring-forward gap (02:30 on the day New York moves
 *     from 02:00 to 03:00) does not exist: there is no UTC instant for it;
 *   - a wall time in a fall-back fold (01:30 on the day New York moves from
 *     02:00 back to 01:00) exists twice: tz_local_to_utc() reports both and
 *     gives the first.
 */
#ifndef TZ_H
#define TZ_H

#include <stddef.h>

#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"

struct tz;

/* Load the zone `name` (such as "Europe/Amsterdam") from TZ_DEFAULT_DIR, or
 * the built-in UTC. The zone is cached and immortal; the caller may keep it
 * forever. Returns 0, CTL_EINVALID for a name that is not a zone name (empty,
 * "..", a leading "/"), an unknown zone or a malformed file (the message says
 * which), or CTL_ERR when the file cannot be read for another reason. */
int tz_load(const struct tz **out, const char *name);

/* As tz_load() from the directory dir (NULL means TZ_DEFAULT_DIR); for
 * tests and for a zoneinfo tree shipped outside the default place. */
int tz_load_dir(const struct tz **out, const char *dir, const char *name);

/* Parse TZif data (the bytes of a zone file) into a new zone named name,
 * not cached: the caller frees it with tz_free(). Returns 0 or CTL_EINVALID
 * with a message naming what is wrong. */
int tz_parse(const struct tz **out, const char *name, const void *data, size_t len);

/* Release a zone from tz_parse(); a no-op for cached zones, UTC and NULL. */
void tz_free(const struct tz *tz);

/* The built-in UTC zone. */
const struct tz *tz_utc(void);

/* The name the zone was loaded as. */
const char *tz_name(const struct tz *tz);

/* Seconds east of UTC in force at the UTC instant utc (3600 for Amsterdam in
 * winter, -14400 for New York in summer). A NULL tz is UTC. */
int tz_offset(const struct tz *tz, long long utc);

/* The wall-clock seconds at the UTC instant utc: utc + tz_offset(). */
long long tz_utc_to_local(const struct tz *tz, long long utc);

/* The UTC instants whose wall-clock time is local. Returns how many there
 * are: 0 in a spring-forward gap (*out is left alone), 1 usually, 2 in a
 * fall-back fold, where *out gets the earlier one. Zones whose offset
 * changes twice within two days of local are not handled exactly (no IANA
 * zone has done that since 1970). */
int tz_local_to_utc(const struct tz *tz, long long local, long long *out);

/* Calendar helpers shared with cron.c. Days since 1970-01-01 of a proleptic
 * Gregorian date (month 1-12), and back. */
long long tz_days_from_civil(long long y, int m, int d);
void tz_civil_from_days(long long days, long long *y, int *m, int *d);
int tz_days_in_month(long long y, int m);

#endif
