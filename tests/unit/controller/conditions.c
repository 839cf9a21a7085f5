/* Unit tests for controller/conditions.c. */
#include "test.h"

#include "conditions.h"
#include "error.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

static const char *ltt(const cJSON *status, const char *type)
{
	const cJSON *c = ctl_conditions_find(status, type);
	return cJSON_GetStringValue(cJSON_GetObjectItem(c, "lastTransitionTime"));
}

TEST(conditions_set_adds_with_transition_time)
{
	cJSON *st = cJSON_CreateObject();
	struct ctl_condition ready = {"Ready", "False", "Creating", "pool is being created", 1};
	CHECK(ctl_conditions_set(st, &ready, "2026-01-01T00:00:00Z"));
	CHECK_STR(ltt(st, "Ready"), "2026-01-01T00:00:00Z");
	CHECK(!ctl_conditions_is_true(st, "Ready"));
	cJSON_Delete(st);
}

TEST(conditions_same_status_keeps_transition_time)
{
	cJSON *st = cJSON_CreateObject();
	struct ctl_condition c = {"Ready", "False", "Creating", "step 1", 1};
	ctl_conditions_set(st, &c, "2026-01-01T00:00:00Z");
	c.message = "step 2";
	CHECK(ctl_conditions_set(st, &c, "2026-01-01T00:05:00Z"));
	CHECK_STR(ltt(st, "Ready"), "2026-01-01T00:00:00Z");
	c.status = "True";
	c.reason = "Succeeded";
	CHECK(ctl_conditions_set(st, &c, "2026-01-01T00:09:00Z"));
	CHECK_STR(ltt(st, "Ready"), "2026-01-01T00:09:00Z");
	CHECK(ctl_conditions_is_true(st, "Ready"));
	cJSON_Delete(st);
}

TEST(conditions_identical_set_reports_no_change)
{
	cJSON *st = cJSON_CreateObject();
	struct ctl_condition c = {"Stalled", "True", "QuotaExceeded", "needs 20 vCPU, quota 16", 3};
	ctl_conditions_set(st, &c, "2026-01-01T00:00:00Z");
	cJSON *before = cJSON_Duplicate(st, true);
	CHECK(!ctl_conditions_set(st, &c, "2026-01-01T01:00:00Z"));
	CHECK(!ctl_status_changed(before, st));
	c.observed_generation = 4;
	CHECK(ctl_conditions_set(st, &c, "2026-01-01T01:00:00Z"));
	CHECK(ctl_status_changed(before, st));
	cJSON_Delete(before);
	cJSON_Delete(st);
}

TEST(conditions_remove)
{
	cJSON *st = cJSON_CreateObject();
	struct ctl_condition c = {"Reconciling", "True", "Scaling", "", 1};
	ctl_conditions_set(st, &c, "2026-01-01T00:00:00Z");
	CHECK(ctl_conditions_remove(st, "Reconciling"));
	CHECK(!ctl_conditions_remove(st, "Reconciling"));
	CHECK(ctl_conditions_find(st, "Reconciling") == NULL);
	cJSON_Delete(st);
}

TEST(conditions_tolerate_malformed_status)
{
	cJSON *st = cJSON_Parse("{\"conditions\": \"oops\"}");
	struct ctl_condition c = {"Ready", "True", "Ok", "", 1};
	CHECK(ctl_conditions_find(st, "Ready") == NULL);
	CHECK(ctl_conditions_set(st, &c, "2026-01-01T00:00:00Z"));
	CHECK(ctl_conditions_is_true(st, "Ready"));
	cJSON_Delete(st);
}

TEST(time_roundtrip_and_rejects_garbage)
{
	long long t = 0;
	char buf[32];
	CHECK_INT(ctl_time_parse("2026-11-23T04:33:14Z", &t), 0);
	CHECK_STR(ctl_time_format(t, buf), "2026-11-23T04:33:14Z");
	CHECK_INT(ctl_time_parse("2026-11-23T05:33:14.123+01:00", &t), 0);
	CHECK_STR(ctl_time_format(t, buf), "2026-11-23T04:33:14Z");
	CHECK_INT(ctl_time_parse("2026-11-23 04:33:14", &t), CTL_EINVALID);
	CHECK_INT(ctl_time_parse("2026-13-01T00:00:00Z", &t), CTL_EINVALID);
	CHECK_INT(ctl_time_parse("2026-11-23T04:33:14Zjunk", &t), CTL_EINVALID);
	CHECK_INT(ctl_time_parse(NULL, &t), CTL_EINVALID);
}

TEST_MAIN(T(conditions_set_adds_with_transition_time), T(conditions_same_status_keeps_transition_time),
	  T(conditions_identical_set_reports_no_change), T(conditions_remove),
	  T(conditions_tolerate_malformed_status), T(time_roundtrip_and_rejects_garbage))
