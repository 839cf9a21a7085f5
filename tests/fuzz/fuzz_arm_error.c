/*
 * fuzz_arm_error.c: error bodies. The input is the body of a failed ARM or
 * token endpoint answer and goes through arm_error_set() and
 * identity_error_set() under a status derived from it. Both must record a
 * bounded, terminated error with the status's code, and the token error
 * must never repeat the secret it was told to scrub when the secret only
 * appears in error_description.
 */
#include "fuzz.h"

#include "azure/arm.h"
#include "azure/identity.h"
#include "error.h"

#define SECRET "s3cr3t-Zq9"

static const long statuses[] = {0, 400, 401, 403, 404, 408, 409, 429, 500, 502, 503, 504, 200, 302};

static void check_last(int rc, long status)
{
	const struct ctl_error *e = ctl_error_last();
	FUZZ_ASSERT(e->code == rc && e->http_status == status);
	FUZZ_ASSERT(memchr(e->reason, '\0', sizeof(e->reason)) && memchr(e->message, '\0', sizeof(e->message)));
	FUZZ_ASSERT(e->reason[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h = fuzz_hash(data, size);
	long status = statuses[h % (sizeof(statuses) / sizeof(statuses[0]))];
	char *body = fuzz_str(data, size);
	long retry = (h >> 8) % 3 == 0 ? -1 : (long)((h >> 16) % 100000);

	int rc = arm_error_set(status, body, "req-1", retry);
	check_last(rc, status);
	FUZZ_ASSERT(ctl_error_last()->retry_after_ms == retry);
	for (const unsigned char *p = (const unsigned char *)ctl_error_last()->message; *p; p++)
		FUZZ_ASSERT(*p >= 0x20);

	const char *const secrets[] = {SECRET, NULL};
	rc = identity_error_set(status, body, secrets);
	check_last(rc, status);
	if (!strstr(body, "\"error\"") && !strstr(body, "\\u"))
		FUZZ_ASSERT(!strstr(ctl_error_last()->message, SECRET));

	free(body);
	return 0;
}
