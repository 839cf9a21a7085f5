/*
 * fuzz_cron.c: countSchedule cron expressions. The input, as a C string, is
 * parsed with cron_parse(); a cron that parses is searched forwards and
 * backwards from a few instants in UTC and in a zone with daylight saving
 * time, and the answers must agree: the next fire time is after t and is
 * itself a fire time (cron_prev at it returns it), the previous one is at
 * or before t.
 */
#include "fuzz.h"

#include "error.h"
#include "schedule/cron.h"
#include "schedule/tz.h"

static const struct tz *zones[2];

static void search(const struct cron *c, const struct tz *tz, long long t)
{
	long long next, prev, back;
	int rc = cron_next(&next, c, tz, t);
	FUZZ_ASSERT(rc == 0 || rc == CTL_ENOTFOUND);
	if (rc == 0) {
		FUZZ_ASSERT(next > t);
		FUZZ_ASSERT(cron_prev(&back, c, tz, next) == 0 && back == next);
	}
	rc = cron_prev(&prev, c, tz, t);
	FUZZ_ASSERT(rc == 0 || rc == CTL_ENOTFOUND);
	if (rc == 0)
		FUZZ_ASSERT(prev <= t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* 2024-03-10 06:59:59Z (New York springs forward at 07:00Z) and
	 * 2024-11-03 05:30:00Z (inside the fall-back fold) and a leap day. */
	static const long long instants[] = {1710053999LL, 1730611800LL, 1709164800LL};
	uint64_t h = fuzz_hash(data, size);
	char *expr = fuzz_str(data, size);
	struct cron c;

	if (!zones[0]) {
		zones[0] = tz_utc();
		if (tz_load(&zones[1], "America/New_York") != 0)
			zones[1] = tz_utc();
	}
	int rc = cron_parse(&c, expr);
	FUZZ_ASSERT(rc == 0 || rc == CTL_EINVALID);
	if (rc == 0) {
		FUZZ_ASSERT(c.minutes && c.hours && c.doms && c.months && c.dows);
		FUZZ_ASSERT(!(c.minutes >> 60) && !(c.hours >> 24) && !(c.doms & 1) && !(c.months & 0xe001));
		search(&c, zones[h & 1], instants[(h >> 1) % 3]);
	}
	free(expr);
	return 0;
}
