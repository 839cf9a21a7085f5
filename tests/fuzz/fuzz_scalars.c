/*
 * fuzz_scalars.c: the one-line values peers send. The input, as a C string,
 * is read as a Retry-After header (arm_retry_after_parse), an RFC 3339 time
 * from an object's status (ctl_time_parse), a duration (the flags' and
 * environment's options_parse_duration), and an LRO kind and status word.
 */
#include "fuzz.h"

#include "azure/arm.h"
#include "conditions.h"
#include "error.h"
#include "options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_str(data, size);
	int64_t now = 1700000000000LL + (int64_t)(fuzz_hash(data, size) % 1000000);

	long ra = arm_retry_after_parse(s, now);
	FUZZ_ASSERT(ra >= -1 && ra <= 86400000L);

	long long t = 0;
	int rc = ctl_time_parse(s, &t);
	FUZZ_ASSERT(rc == 0 || rc == CTL_EINVALID);
	if (rc == 0 && t >= 0 && t < 253402300800LL) { /* years 1970-9999 */
		char buf[32];
		long long back = 0;
		/* What we write we read back. */
		FUZZ_ASSERT(ctl_time_parse(ctl_time_format(t, buf), &back) == 0 && back == t);
	}

	long ms = -1;
	rc = options_parse_duration(s, &ms);
	FUZZ_ASSERT(rc == 0 || rc == CTL_EINVALID);
	FUZZ_ASSERT(rc != 0 || ms >= 0);

	enum arm_lro_kind kind;
	if (arm_lro_kind_parse(&kind, s) == 0)
		FUZZ_ASSERT(strcmp(arm_lro_kind_name(kind), s) == 0);
	FUZZ_ASSERT(arm_lro_state_name(arm_lro_status_state(s)) != NULL);

	free(s);
	return 0;
}
