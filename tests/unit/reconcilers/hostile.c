/* Hostile input for the application's parsers: what a broken or malicious
 * ARM, token endpoint or zone file can hand us. Truncated JSON, wrong types
 * (count as a string, status as a number, properties as an array), missing
 * fields, nesting deeper than cJSON allows, NUL bytes and invalid UTF-8,
 * numbers far out of range, malformed cron expressions and TZif files. Every
 * case ends in an error code or a defined reading, never a crash or a leak
 * (the sanitizer build runs these). Cases marked "regression" were found by
 * the fuzzers in tests/fuzz and fixed; "KNOWN BUG" ones are reported and fail
 * until fixed. */
#include "test.h"

#include "canned_http.h"

#include "azure/acr.h"
#include "azure/arm.h"
#include "azure/identity.h"
#include "buf.h"
#include "error.h"
#include "schedule/cron.h"
#include "schedule/tz.h"
#include "xalloc.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>

#define MB (1024u * 1024u)
#define NOW_MS 1700000000000LL

static char *deep_arrays(size_t depth, const char *prefix, const char *suffix)
{
	size_t p = strlen(prefix), s = strlen(suffix);
	char *b = xmalloc(p + 2 * depth + s + 1);
	memcpy(b, prefix, p);
	memset(b + p, '[', depth);
	memset(b + p + depth, ']', depth);
	memcpy(b + p + 2 * depth, suffix, s + 1);
	return b;
}

/* --- agent pools and runs ------------------------------------------------ */

TEST(agent_pool_wrong_types_read_as_absent)
{
	static const struct {
		const char *body;
		int count;
		const char *tier;
		size_t ntags;
	} cases[] = {
		{"{\"properties\":{\"count\":\"3\",\"tier\":\"S1\"}}", -1, "S1", 0},           /* count as string */
		{"{\"properties\":{\"count\":null,\"tier\":1}}", -1, NULL, 0},
		{"{\"properties\":{\"count\":true}}", -1, NULL, 0},
		{"{\"properties\":[{\"count\":3}]}", -1, NULL, 0},                              /* properties as array */
		{"{\"properties\":\"count=3\"}", -1, NULL, 0},
		{"{\"properties\":{\"count\":2.9}}", 2, NULL, 0},
		{"{\"tags\":[\"a\",\"b\"],\"properties\":{}}", -1, NULL, 0},                    /* tags as array */
		{"{\"tags\":{\"a\":1,\"b\":null,\"c\":\"x\",\"d\":{}}}", -1, NULL, 1},           /* non-string tags skipped */
		{"{\"id\":7,\"name\":[],\"location\":{}}", -1, NULL, 0},
		{"{}", -1, NULL, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct arm_agent_pool p;
		cJSON *o = cJSON_Parse(cases[i].body);
		CHECK(o != NULL);
		CHECK_INT(arm_agent_pool_from_json(&p, o), 0);
		CHECK_INT(p.count, cases[i].count);
		CHECK((p.tier == NULL) == (cases[i].tier == NULL));
		CHECK_INT(p.ntags, cases[i].ntags);
		CHECK(p.id == NULL && p.name == NULL && p.location == NULL);
		arm_agent_pool_dispose(&p);
		cJSON_Delete(o);
	}
	static const char *const not_objects[] = {"[]", "\"pool\"", "3", "null"};
	for (size_t i = 0; i < sizeof(not_objects) / sizeof(not_objects[0]); i++) {
		struct arm_agent_pool p;
		cJSON *o = cJSON_Parse(not_objects[i]);
		CHECK_INT(arm_agent_pool_from_json(&p, o), CTL_EINVALID);
		arm_agent_pool_dispose(&p);
		cJSON_Delete(o);
	}
	struct arm_agent_pool p;
	CHECK_INT(arm_agent_pool_from_json(&p, NULL), CTL_EINVALID);
	arm_agent_pool_dispose(&p);
}

/*
 * Found by tests/fuzz/fuzz_json: arm_agent_pool_from_json() used to
 * convert any number to int, and 1e10 (or -1e10, 1e308) is undefined
 * behaviour (UBSan: outside the range of representable values); on x86 it
 * gave INT_MIN, which the planner would read as a count. Out of range now
 * reads as absent (-1).
 */
TEST(agent_pool_count_out_of_int_range_reads_as_absent)
{
	static const char *const bodies[] = {
		"{\"properties\":{\"count\":1e10}}",
		"{\"properties\":{\"count\":-1e10}}",
		"{\"properties\":{\"count\":1e308}}",
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct arm_agent_pool p;
		cJSON *o = cJSON_Parse(bodies[i]);
		CHECK_INT(arm_agent_pool_from_json(&p, o), 0);
		CHECK_INT(p.count, -1);
		arm_agent_pool_dispose(&p);
		cJSON_Delete(o);
	}
}

TEST(run_wrong_types_read_as_absent)
{
	static const char *const bodies[] = {
		"{\"name\":\"r1\",\"properties\":{\"runId\":42,\"status\":7,\"outputImages\":{\"tag\":\"v1\"}}}",
		"{\"properties\":{\"outputImages\":[\"img\",3,null,{\"tag\":[\"v1\"]}]}}",
		"{\"properties\":[]}",
		"{\"properties\":{\"status\":\"Succ\\u0000eeded\"}}",
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct arm_run r;
		cJSON *o = cJSON_Parse(bodies[i]);
		CHECK(o != NULL);
		CHECK_INT(arm_run_from_json(&r, o), 0);
		CHECK(r.status == NULL || !arm_run_status_terminal(r.status));
		for (size_t k = 0; k < r.noutput_images; k++)
			CHECK(r.output_images[k].tag == NULL);
		arm_run_dispose(&r);
		cJSON_Delete(o);
	}
	struct arm_run r;
	cJSON *o = cJSON_Parse("{\"name\":\"r1\",\"properties\":{\"runId\":42}}");
	CHECK_INT(arm_run_from_json(&r, o), 0);
	CHECK_STR(r.run_id, "r1"); /* a runId that is not a string falls back to the name */
	arm_run_dispose(&r);
	cJSON_Delete(o);
}

/* --- async operation status bodies ---------------------------------------- */

TEST(operation_status_hostile_bodies)
{
	static const struct {
		const char *body;
		int rc;
		enum arm_lro_state state;
		const char *code;
	} cases[] = {
		{"{\"status\":1}", CTL_EINVALID, ARM_LRO_IN_PROGRESS, NULL},                 /* status as number */
		{"{\"status\":[\"Succeeded\"]}", CTL_EINVALID, ARM_LRO_IN_PROGRESS, NULL},
		{"{\"status\":null}", CTL_EINVALID, ARM_LRO_IN_PROGRESS, NULL},
		{"{\"stat", CTL_EINVALID, ARM_LRO_IN_PROGRESS, NULL},                         /* truncated */
		{"{\"status\":\"Succeeded\"", CTL_EINVALID, ARM_LRO_IN_PROGRESS, NULL},
		{"", CTL_EINVALID, ARM_LRO_IN_PROGRESS, NULL},
		{"[{\"status\":\"Failed\"}]", CTL_EINVALID, ARM_LRO_IN_PROGRESS, NULL},
		{"{\"status\":\"Failed\",\"error\":\"boom\"}", 0, ARM_LRO_FAILED, "OperationFailed"}, /* error as string */
		{"{\"status\":\"Failed\",\"error\":{\"code\":500,\"message\":[]}}", 0, ARM_LRO_FAILED, "OperationFailed"},
		{"{\"status\":\"canceled\",\"error\":[]}", 0, ARM_LRO_CANCELED, "OperationCanceled"},
		{"{\"status\":\"Failed\",\"error\":{\"code\":\"Quota\\u0000Exceeded\"}}", 0, ARM_LRO_FAILED, "Quota"},
		{"{\"status\":\"\xff\xfe\"}", 0, ARM_LRO_IN_PROGRESS, NULL},                  /* invalid UTF-8 */
		{"{\"status\":\"InProgress\"}", 0, ARM_LRO_IN_PROGRESS, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum arm_lro_state st;
		char *code = NULL, *message = NULL;
		char *body = xstrdup(cases[i].body);
		CHECK_INT(arm_operation_status_parse(&st, &code, &message, body), cases[i].rc);
		CHECK_INT(st, cases[i].state);
		if (cases[i].code) {
			CHECK_STR(code, cases[i].code);
			CHECK(message && *message);
		} else {
			CHECK(code == NULL && message == NULL);
		}
		free(code);
		free(message);
		free(body);
	}
	enum arm_lro_state st;
	char *code = NULL, *message = NULL;
	CHECK_INT(arm_operation_status_parse(&st, &code, &message, NULL), CTL_EINVALID);
	char *deep = deep_arrays(100000, "{\"status\":\"Failed\",\"error\":", "}");
	CHECK_INT(arm_operation_status_parse(&st, &code, &message, deep), CTL_EINVALID);
	CHECK(code == NULL && message == NULL);
	free(deep);
}

/* --- token responses ------------------------------------------------------- */

TEST(token_response_hostile_bodies)
{
	static const char *const bad[] = {
		"",
		"{\"access_token\":\"t\"",                                      /* truncated */
		"{\"access_token\":7,\"expires_in\":3600}",                     /* token as number */
		"{\"access_token\":\"\",\"expires_in\":3600}",
		"{\"access_token\":[\"t\"],\"expires_in\":3600}",
		"{\"expires_in\":3600}",
		"{\"access_token\":\"t\"}",                                     /* no expiry */
		"{\"access_token\":\"t\",\"expires_in\":\"soon\"}",
		"{\"access_token\":\"t\",\"expires_in\":-5}",
		"{\"access_token\":\"t\",\"expires_in\":\"-5\"}",
		"{\"access_token\":\"t\",\"expires_in\":\"3600s\"}",
		"{\"access_token\":\"t\",\"expires_in\":1e300}",
		"{\"access_token\":\"t\",\"expires_in\":{}}",
		"{\"access_token\":\"t\",\"expires_on\":\"0\"}",
		"[\"access_token\",\"t\"]",
		"<html>Service Unavailable</html>",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct identity_token t;
		char *body = xstrdup(bad[i]);
		if (identity_token_parse(&t, body, NOW_MS / 1000) != CTL_EINVALID)
			fprintf(stderr, "case %zu: %s\n", i, bad[i]);
		identity_token_dispose(&t);
		CHECK_INT(identity_token_parse(&t, body, NOW_MS / 1000), CTL_EINVALID);
		CHECK(t.access_token == NULL);
		identity_token_dispose(&t);
		free(body);
	}
	struct identity_token t;
	char *deep = deep_arrays(100000, "{\"access_token\":\"t\",\"expires_in\":3600,\"x\":", "}");
	CHECK_INT(identity_token_parse(&t, deep, NOW_MS / 1000), CTL_EINVALID);
	identity_token_dispose(&t);
	free(deep);
}

/* Regression (found by tests/fuzz/fuzz_json, fixed in identity.c json_int):
 * expires_in / expires_on / refresh_in sent as numeric strings were taken up
 * to LLONG_MAX, and `now + expires_in` overflowed (UBSan: signed integer
 * overflow in identity_token_parse). Strings are now capped like numbers. */
TEST(token_response_huge_numeric_strings_regression)
{
	static const char *const bodies[] = {
		"{\"access_token\":\"t\",\"expires_in\":\"9223372036854775807\"}",
		"{\"access_token\":\"t\",\"expires_in\":\"3600\",\"refresh_in\":\"9223372036854775000\"}",
		"{\"access_token\":\"t\",\"expires_on\":\"9223372036854775807\",\"refresh_in\":\"9223372036854775807\"}",
		"{\"access_token\":\"t\",\"expires_in\":\"99999999999999999999999\"}",
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct identity_token t;
		int rc = identity_token_parse(&t, bodies[i], NOW_MS / 1000);
		CHECK(rc == 0 || rc == CTL_EINVALID);
		if (rc == 0) {
			CHECK(t.expires_on > NOW_MS / 1000 && t.expires_on < NOW_MS / 1000 + 2000000000000000LL);
			CHECK(t.refresh_at <= t.expires_on);
		}
		identity_token_dispose(&t);
	}
}

/* --- error bodies ---------------------------------------------------------- */

TEST(arm_error_hostile_bodies)
{
	static const struct {
		long status;
		const char *body;
		int code;
		const char *reason;
	} cases[] = {
		{404, "{\"error\":\"NotFound\"}", CTL_ENOTFOUND, "HttpStatus404"},            /* error as string */
		{409, "{\"error\":{\"code\":409,\"message\":[\"busy\"]}}", CTL_ECONFLICT, "HttpStatus409"},
		{400, "{\"error\":{\"code\":\"\",\"message\":\"\"}}", CTL_ETERMINAL, "HttpStatus400"},
		{500, "{\"error\":{\"code\":\"Internal", CTL_EUNAVAIL, "HttpStatus500"},     /* truncated */
		{403, "{\"odata.error\":{\"code\":\"Denied\",\"message\":{\"lang\":\"en\"}}}", CTL_EAUTH, "Denied"},
		{429, "[{\"error\":{\"code\":\"Throttled\"}}]", CTL_EUNAVAIL, "HttpStatus429"},
		{400, "{\"error\":{\"code\":\"Bad\\u0000Code\",\"message\":\"m\"}}", CTL_ETERMINAL, "Bad"},
		{400, "{\"code\":\"Line\\nBreak\\u001b[31m\",\"message\":\"a\\r\\nb\"}", CTL_ETERMINAL, "Line Break [31m"},
		{502, "\xff\xfe<html>", CTL_EUNAVAIL, "HttpStatus502"},
		{200, "{\"error\":{\"code\":\"Odd\"}}", CTL_ERR, "Odd"},
		{0, NULL, CTL_ERR, "HttpStatus0"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_INT(arm_error_set(cases[i].status, cases[i].body, "req", 1500), cases[i].code);
		const struct ctl_error *e = ctl_error_last();
		CHECK_STR(e->reason, cases[i].reason);
		CHECK_INT(e->http_status, cases[i].status);
		CHECK_INT(e->retry_after_ms, 1500);
		for (const unsigned char *p = (const unsigned char *)e->message; *p; p++)
			CHECK(*p >= 0x20);
	}
	/* A 20 MB message and a 1 MB code are cut to the record's size. */
	struct ctl_buf b = CTL_BUF_INIT;
	char *fill = xmalloc(MB);
	memset(fill, 'c', MB);
	ctl_buf_puts(&b, "{\"error\":{\"code\":\"");
	ctl_buf_append(&b, fill, MB);
	ctl_buf_puts(&b, "\",\"message\":\"");
	for (int i = 0; i < 20; i++)
		ctl_buf_append(&b, fill, MB);
	ctl_buf_puts(&b, "\"}}");
	CHECK_INT(arm_error_set(503, b.ptr, NULL, -1), CTL_EUNAVAIL);
	CHECK(strlen(ctl_error_last()->reason) <= 100);
	CHECK(strlen(ctl_error_last()->message) <= 900);
	ctl_buf_dispose(&b);
	free(fill);
	char *deep = deep_arrays(100000, "{\"error\":{\"code\":\"Deep\",\"details\":", "}}");
	CHECK_INT(arm_error_set(500, deep, NULL, -1), CTL_EUNAVAIL);
	CHECK_STR(ctl_error_last()->reason, "HttpStatus500");
	free(deep);
}

TEST(token_error_hostile_bodies)
{
	static const struct {
		long status;
		const char *body;
		int code;
		const char *reason;
	} cases[] = {
		{400, "{\"error\":7,\"error_description\":[\"AADSTS1\"]}", CTL_EAUTH, "TokenRequestFailed"},
		{401, "{\"error\":\"invalid_client\",\"error_codes\":\"7000215\"}", CTL_EAUTH, "invalid_client"},
		{401, "{\"error\":\"invalid_client\",\"error_codes\":[\"7000215\"]}", CTL_EAUTH, "invalid_client"},
		{400, "{\"error\":\"bad client\",\"error_description\":\"no code here\"}", CTL_EAUTH, "TokenRequestFailed"},
		{400, "{\"error_description\":\"AADSTS99999999999999999999999: long\"}", CTL_EAUTH, "AADSTS99999999999999"},
		{503, "{\"error\":\"temporarily_unavailable\"", CTL_EUNAVAIL, "TokenRequestFailed"}, /* truncated */
		{500, "\xff\xfe", CTL_EUNAVAIL, "TokenRequestFailed"},
		/* Regression (found by tests/fuzz/fuzz_arm_error, fixed in
		 * identity.c): a code far outside long long was cast to it,
		 * undefined behaviour; now such a code is ignored. */
		{400, "{\"error\":\"invalid_grant\",\"error_codes\":[1e300]}", CTL_EAUTH, "invalid_grant"},
		{400, "{\"error\":\"invalid_grant\",\"error_codes\":[-1e300]}", CTL_EAUTH, "invalid_grant"},
		{400, "{\"error\":\"x\",\"error_codes\":[70021]}", CTL_EAUTH, "AADSTS70021"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_INT(identity_error_set(cases[i].status, cases[i].body, NULL), cases[i].code);
		if (strcmp(ctl_error_last()->reason, cases[i].reason) != 0)
			fprintf(stderr, "case %zu: %s\n", i, ctl_error_last()->reason);
		CHECK_STR(ctl_error_last()->reason, cases[i].reason);
	}
	/* The secret is scrubbed wherever it sits in the description, even
	 * repeated and next to itself. */
	const char *const secrets[] = {"hunter2", NULL};
	CHECK_INT(identity_error_set(401, "{\"error\":\"invalid_client\",\"error_description\":\"bad hunter2hunter2 hunter2\"}",
				     secrets), CTL_EAUTH);
	CHECK(strstr(ctl_error_last()->message, "hunter2") == NULL);
}

TEST(retry_after_hostile_values)
{
	static const struct {
		const char *value;
		long ms;
	} cases[] = {
		{"", -1}, {" ", -1}, {"-1", -1}, {"+5", -1}, {"1e3", -1}, {"0x10", -1}, {"5.5", -1},
		{"86401", -1}, {"9999999", -1}, {"99999999999999999999", -1}, {"86400", 86400000},
		{"\t7\r\n", 7000}, {"0", 0},
		{"Sun, 06 Nov 1994 08:49:37 GMT", 0},          /* in the past */
		{"Sun, 06 Nov 1994 08:49:37 UTC", -1},
		{"Sun, 06 Nov 1994 08:49:37", -1},
		{"Sun, 32 Nov 1994 08:49:37 GMT", -1},
		{"Wed, 15 Nov 2023 00:00:00 GMT", 6400000},    /* NOW_MS is 2023-11-14T22:13:20Z */
		{"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", -1},
		{"Sun, 06 Nov 1994 08:49:37 GMT\xff", -1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_INT(arm_retry_after_parse(cases[i].value, NOW_MS), cases[i].ms);
	}
	CHECK_INT(arm_retry_after_parse(NULL, NOW_MS), -1);
}

/* --- the client against a hostile ARM --------------------------------------- */

struct rig {
	struct canned_server s;
	struct fake_clock clk;
	struct identity *id;
	struct arm_client *c;
	struct arm_registry_ref ref;
};

static void rig_start(struct rig *r, size_t max_body)
{
	memset(r, 0, sizeof(*r));
	/* The client hangs up on an oversized answer: the canned server's
	 * write must then fail with EPIPE, not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	canned_start(&r->s);
	r->clk.now_ms = NOW_MS;
	struct identity_options io = {
		.kind = IDENTITY_SERVICE_PRINCIPAL, .tenant_id = "tenant", .client_id = "app",
		.client_secret = "topsecret-value", .authority_host = r->s.base,
		.clock = fake_clock_s, .sleep = fake_sleep, .clock_arg = &r->clk,
	};
	if (identity_new(&r->id, &io))
		abort();
	struct arm_options ao = {
		.endpoint = r->s.base, .max_attempts = 1, .max_body = max_body,
		.sleep = fake_sleep, .clock = fake_clock_ms, .clock_arg = &r->clk,
	};
	if (arm_client_new(&r->c, r->id, &ao))
		abort();
	r->ref = (struct arm_registry_ref){"sub-1", "rg-1", "myregistry"};
}

static void rig_stop(struct rig *r)
{
	arm_client_free(r->c);
	identity_free(r->id);
	canned_stop(&r->s);
}

TEST(wire_agent_pool_get_hostile_answers)
{
	static const struct {
		int status;
		const char *body;
		int code;
	} cases[] = {
		{200, "{\"name\":\"p1\",\"properties\":{\"count\":", CTL_EINVALID},          /* truncated */
		{200, "[]", CTL_EINVALID},                                                   /* array */
		{200, "\"p1\"", CTL_EINVALID},
		{200, "", CTL_EINVALID},                                                     /* empty body */
		{200, "{\"a\":\"\\ud800\"}", CTL_EINVALID},
		{404, "{\"error\":{\"code\":404}}", CTL_ENOTFOUND},
		{409, "<html>", CTL_ECONFLICT},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rig r;
		struct arm_agent_pool *p = NULL;
		rig_start(&r, 0);
		canned_reply(&r.s, 0, cases[i].status, NULL, cases[i].body);
		CHECK_INT(arm_agent_pool_get(&p, r.c, &r.ref, "p1"), cases[i].code);
		CHECK(p == NULL);
		arm_agent_pool_free(p);
		rig_stop(&r);
	}
}

TEST(wire_answer_over_the_cap_and_too_deep)
{
	struct rig r;
	struct arm_agent_pool *p = NULL;
	char *big = xmalloc(3 * MB + 1);
	memset(big, ' ', 3 * MB);
	big[0] = '{';
	big[3 * MB - 1] = '}';
	big[3 * MB] = '\0';
	rig_start(&r, 1 * MB);
	canned_reply(&r.s, 0, 200, NULL, big);
	CHECK_INT(arm_agent_pool_get(&p, r.c, &r.ref, "p1"), CTL_ETOOBIG);
	CHECK(p == NULL);
	rig_stop(&r);
	free(big);

	char *deep = deep_arrays(50000, "{\"properties\":{\"x\":", "}}");
	rig_start(&r, 0);
	canned_reply(&r.s, 0, 200, NULL, deep);
	CHECK_INT(arm_agent_pool_get(&p, r.c, &r.ref, "p1"), CTL_EINVALID);
	CHECK(p == NULL);
	rig_stop(&r);
	free(deep);
}

TEST(wire_token_endpoint_garbage_fails_the_call)
{
	static const struct {
		int status;
		const char *body;
		int code;
	} cases[] = {
		{200, "{\"access_token\":\"t\"", CTL_EINVALID},
		{200, "{\"access_token\":1,\"expires_in\":3600}", CTL_EINVALID},
		{200, "{\"access_token\":\"t\",\"expires_in\":\"later\"}", CTL_EINVALID},
		{401, "{\"error\":[],\"error_codes\":{}}", CTL_EAUTH},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rig r;
		struct arm_agent_pool *p = NULL;
		rig_start(&r, 0);
		canned_reply(&r.s, 1, cases[i].status, NULL, cases[i].body);
		int rc = arm_agent_pool_get(&p, r.c, &r.ref, "p1");
		CHECK(rc != 0);
		if (cases[i].code == CTL_EAUTH)
			CHECK_INT(rc, CTL_EAUTH);
		CHECK(p == NULL);
		CHECK_INT(r.s.narm_requests, 0); /* no token, no ARM call */
		rig_stop(&r);
	}
}

/* --- cron ------------------------------------------------------------------- */

TEST(cron_hostile_expressions)
{
	static const char *const bad[] = {
		"", "     ", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *",
		"* * * 13 *", "* * * * 8", "*/0 * * * *", "1-/2 * * * *", "-1 * * * *", "5-1 * * * *",
		"99999999999999999999 * * * *", "* * * JANUARY *", "* * * * SUNDAY", "--- * * * *", ",,, * * * *",
		"1,,2 * * * *", "*/ * * * *", "*/1x * * * *", "** * * * *", "1/2/3 * * * *", "* * 30 2 *",
		"* * 31 4,6,9,11 *", "\xff * * * *", "\xc3\xa9 * * * *", "1\t2\n3\r4\v5 6",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cron c;
		char *expr = xstrdup(bad[i]);
		if (cron_parse(&c, expr) != CTL_EINVALID)
			fprintf(stderr, "case %zu: \"%s\"\n", i, bad[i]);
		CHECK_INT(cron_parse(&c, expr), CTL_EINVALID);
		CHECK_STR(ctl_error_last()->reason, "InvalidCron");
		free(expr);
	}
	struct cron c;
	CHECK_INT(cron_parse(&c, NULL), CTL_EINVALID);
	/* A 1 MB expression: one error, no quadratic rescans. */
	char *huge = xmalloc(MB + 1);
	for (size_t i = 0; i < MB; i += 2) {
		huge[i] = '1';
		huge[i + 1] = ',';
	}
	memcpy(huge + MB - 8, " * * * *", 8);
	huge[MB - 9] = '2'; /* "...,1,12 * * * *" */
	huge[MB] = '\0';
	CHECK_INT(cron_parse(&c, huge), 0);
	huge[0] = 'x';
	CHECK_INT(cron_parse(&c, huge), CTL_EINVALID);
	free(huge);
	/* Huge steps are capped, not overflowed. */
	CHECK_INT(cron_parse(&c, "*/99999999999999999999 * * * *"), 0);
	CHECK(c.minutes == 1);
}

/* Regression (found by tests/fuzz/fuzz_cron, fixed in cron.c parse_item):
 * "7/2" in day-of-week (Sunday as 7, with a step) made an empty weekday set
 * that parsed fine and never fired; it now means Sunday, like "0/2"'s
 * start. */
TEST(cron_sunday_seven_with_step_regression)
{
	struct cron c;
	long long next;
	CHECK_INT(cron_parse(&c, "0 0 * * 7/2"), 0);
	CHECK_INT(c.dows, 1);
	CHECK_INT(cron_next(&next, &c, NULL, 1700000000LL), 0); /* 2023-11-14, a Tuesday */
	CHECK_INT(next, 1700352000LL);                          /* 2023-11-19, Sunday */
	CHECK_INT(cron_parse(&c, "0 1 2 2 7/2"), 0);
	CHECK_INT(c.dows, 1);
}

/* --- TZif --------------------------------------------------------------------- */

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* A version 1 header with the given counts. */
static void header(unsigned char *p, char version, uint32_t timecnt, uint32_t typecnt, uint32_t charcnt,
		   uint32_t leapcnt)
{
	memset(p, 0, 44);
	memcpy(p, "TZif", 4);
	p[4] = (unsigned char)version;
	put32(p + 28, leapcnt);
	put32(p + 32, timecnt);
	put32(p + 36, typecnt);
	put32(p + 40, charcnt);
}

static int parse_bytes(const unsigned char *data, size_t len)
{
	const struct tz *z = NULL;
	unsigned char *copy = xmalloc(len ? len : 1);
	memcpy(copy, data, len);
	int rc = tz_parse(&z, "Hostile/Zone", copy, len);
	CHECK((rc == 0) == (z != NULL));
	tz_free(z);
	free(copy);
	return rc;
}

TEST(tz_hostile_files)
{
	unsigned char b[256] = {0};
	/* Empty, short, wrong magic, unknown version. */
	CHECK_INT(parse_bytes(b, 0), CTL_EINVALID);
	memcpy(b, "TZif2", 5);
	CHECK_INT(parse_bytes(b, 5), CTL_EINVALID);
	header(b, 0, 0, 1, 4, 0);
	memcpy(b, "TZiF", 4);
	CHECK_INT(parse_bytes(b, 44 + 6 + 4), CTL_EINVALID);
	header(b, 'x', 0, 1, 4, 0);
	CHECK_INT(parse_bytes(b, 44 + 6 + 4), CTL_EINVALID);
	/* Counts that promise more than is there: 4 G transitions. */
	header(b, 0, 0xffffffffu, 1, 4, 0);
	CHECK_INT(parse_bytes(b, 44 + 6 + 4), CTL_EINVALID);
	header(b, 0, 0, 0xffffffffu, 0xffffffffu, 0);
	CHECK_INT(parse_bytes(b, 100), CTL_EINVALID);
	header(b, 0, 0, 0, 4, 0); /* no types */
	CHECK_INT(parse_bytes(b, 48), CTL_EINVALID);
	header(b, 0, 0, 300, 4, 0); /* too many types */
	CHECK_INT(parse_bytes(b, 100), CTL_EINVALID);
	/* Leap seconds refused. */
	header(b, 0, 0, 1, 4, 1);
	memset(b + 44, 0, 6 + 4 + 8);
	CHECK_INT(parse_bytes(b, 44 + 6 + 4 + 8), CTL_EINVALID);

	/* One transition naming type 5 of 1; then an offset out of range;
	 * then a designation index past the characters; then descending
	 * transitions. */
	header(b, 0, 1, 1, 4, 0);
	memset(b + 44, 0, 1 * 5 + 6 + 4);
	b[48] = 5;
	CHECK_INT(parse_bytes(b, 44 + 5 + 6 + 4), CTL_EINVALID);
	b[48] = 0;
	put32(b + 49, 0x7fffffffu);
	CHECK_INT(parse_bytes(b, 44 + 5 + 6 + 4), CTL_EINVALID);
	put32(b + 49, 3600);
	b[54] = 9;
	CHECK_INT(parse_bytes(b, 44 + 5 + 6 + 4), CTL_EINVALID);
	b[54] = 0;
	CHECK_INT(parse_bytes(b, 44 + 5 + 6 + 4), 0); /* now valid */
	header(b, 0, 2, 1, 4, 0);
	memset(b + 44, 0, 2 * 5 + 6 + 4);
	put32(b + 44, 100);
	put32(b + 48, 50);
	CHECK_INT(parse_bytes(b, 44 + 10 + 6 + 4), CTL_EINVALID);
}

/* A version 2 file with no transitions, one type and the given footer
 * bytes (between the newlines). */
static size_t v2_with_footer(unsigned char *b, const char *footer, size_t flen)
{
	header(b, '2', 0, 1, 4, 0);
	memset(b + 44, 0, 10);
	put32(b + 44, 3600);
	header(b + 54, '2', 0, 1, 4, 0);
	memset(b + 98, 0, 10);
	put32(b + 98, 3600);
	b[108] = '\n';
	memcpy(b + 109, footer, flen);
	b[109 + flen] = '\n';
	return 110 + flen;
}

TEST(tz_hostile_footers)
{
	static const struct {
		const char *footer;
		size_t len;
		int rc;
	} cases[] = {
		{"CET-1CEST,M3.5.0,M10.5.0/3", 26, 0},
		{"", 0, 0},
		{"CET-1CEST,M3.5.0", 16, CTL_EINVALID},
		{"CET-1CEST,M13.5.0,M10.5.0", 25, CTL_EINVALID},
		{"CET-1CEST,M3.6.0,M10.5.0", 24, CTL_EINVALID},
		{"CET-1CEST,M3.5.7,M10.5.0", 24, CTL_EINVALID},
		{"CET-1CEST,J0,J365", 17, CTL_EINVALID},
		{"CET-1CEST,366,1", 15, CTL_EINVALID},
		{"CET-99", 6, CTL_EINVALID},
		{"CE-1", 4, CTL_EINVALID},
		{"<+03", 4, CTL_EINVALID},
		{"CET-1CEST,M3.5.0/999,M10.5.0", 28, CTL_EINVALID},
		{"CET-1CEST,M3.5.0/167,M10.5.0/-167", 33, 0},
		{"CET\0-1", 6, CTL_EINVALID},                 /* NUL inside */
		{"CET-1\nCEST", 10, CTL_EINVALID},            /* newline inside */
		{"CET-00000001", 12, CTL_EINVALID},
		{"\xff\xfe\xfd-1", 5, CTL_EINVALID},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned char b[256];
		size_t n = v2_with_footer(b, cases[i].footer, cases[i].len);
		int rc = parse_bytes(b, n);
		if (rc != cases[i].rc)
			fprintf(stderr, "case %zu: %.*s\n", i, (int)cases[i].len, cases[i].footer);
		CHECK_INT(rc, cases[i].rc);
	}
	/* No final newline, and the file cut anywhere. */
	unsigned char b[256];
	size_t n = v2_with_footer(b, "CET-1CEST,M3.5.0,M10.5.0/3", 26);
	for (size_t cut = 0; cut < n; cut++)
		CHECK_INT(parse_bytes(b, cut), CTL_EINVALID);
	CHECK_INT(parse_bytes(b, n), 0);
}

TEST_MAIN(T(agent_pool_wrong_types_read_as_absent), T(agent_pool_count_out_of_int_range_reads_as_absent),
	  T(run_wrong_types_read_as_absent), T(operation_status_hostile_bodies), T(token_response_hostile_bodies),
	  T(token_response_huge_numeric_strings_regression), T(arm_error_hostile_bodies),
	  T(token_error_hostile_bodies), T(retry_after_hostile_values), T(wire_agent_pool_get_hostile_answers),
	  T(wire_answer_over_the_cap_and_too_deep), T(wire_token_endpoint_garbage_fails_the_call),
	  T(cron_hostile_expressions), T(cron_sunday_seven_with_step_regression), T(tz_hostile_files),
	  T(tz_hostile_footers))
