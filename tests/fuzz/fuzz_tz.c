/*
 * fuzz_tz.c: TZif data (tz_parse). A zone that parses is asked for offsets
 * around its transitions and around now, wall time is mapped back to UTC
 * (tz_local_to_utc must report 0, 1 or 2 instants, each of which maps to the
 * wall time asked for), and a daily cron is searched in it.
 */
#include "fuzz.h"

#include "error.h"
#include "schedule/cron.h"
#include "schedule/tz.h"

#define SPAN (200LL * 365 * 86400) /* search around now, far beyond any zone */

static void probe(const struct tz *z, long long t)
{
	int off = tz_offset(z, t);
	FUZZ_ASSERT(off >= -89999 && off <= 93599 + 2 * 24 * 3600 + 3600);
	long long local = tz_utc_to_local(z, t), u = 0;
	int n = tz_local_to_utc(z, local, &u);
	FUZZ_ASSERT(n >= 0 && n <= 3);
	if (n > 0)
		FUZZ_ASSERT(tz_utc_to_local(z, u) == local);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h = fuzz_hash(data, size);
	char *bytes = fuzz_bytes(data, size);
	const struct tz *z = NULL;

	int rc = tz_parse(&z, "Fuzz/Zone", bytes, size);
	FUZZ_ASSERT(rc == 0 || rc == CTL_EINVALID);
	FUZZ_ASSERT((rc == 0) == (z != NULL));
	if (z) {
		FUZZ_ASSERT(strcmp(tz_name(z), "Fuzz/Zone") == 0);
		long long now = 1700000000LL;
		probe(z, now);
		probe(z, now - SPAN + (long long)(h % (uint64_t)(2 * SPAN)));
		for (long long d = -3; d <= 3; d++)
			probe(z, now + d * 86400 * 91);
		struct cron c;
		FUZZ_ASSERT(cron_parse(&c, "30 2 * * *") == 0);
		long long next;
		rc = cron_next(&next, &c, z, now);
		FUZZ_ASSERT(rc == 0 || rc == CTL_ENOTFOUND);
		if (rc == 0)
			FUZZ_ASSERT(next > now);
	}
	tz_free(z);
	free(bytes);
	return 0;
}
