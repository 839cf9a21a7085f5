/* Unit tests for reconcilers/taskrun_plan.c and tarball.c: the TaskRun
 * state machine, run matching after a restart, the run request, the log
 * tail, and the build context tarball. */
#include "test.h"

#include "tarball.h"
#include "taskrun_plan.h"

#include <cjson/cJSON.h>
#include <zlib.h>

static struct taskrun_action plan(struct taskrun_observed o)
{
	struct taskrun_action a;
	taskrun_plan(&o, &a);
	return a;
}

#define EXPECT(a, k) CHECK_STR(taskrun_action_name((a).kind), taskrun_action_name(k))

TEST(fresh_taskrun_schedules_unless_blocked_canceled_or_deleted)
{
	struct taskrun_observed o = {.now = 1000};
	EXPECT(plan(o), TASKRUN_SCHEDULE);
	o.blocked_reason = "TaskNotReady";
	EXPECT(plan(o), TASKRUN_WAIT);
	o.blocked_stall = true;
	EXPECT(plan(o), TASKRUN_STALL);
	o = (struct taskrun_observed){.now = 1000, .cancel = true};
	EXPECT(plan(o), TASKRUN_CANCELED);
	o = (struct taskrun_observed){.now = 1000, .deleting = true};
	EXPECT(plan(o), TASKRUN_RELEASE);
}

TEST(intent_without_run_is_never_sent_again_within_the_settle_window)
{
	struct taskrun_observed o = {.intent = true, .intent_time = 1000, .now = 1001};
	EXPECT(plan(o), TASKRUN_FIND);
	o.now = 1000 + TASKRUN_SETTLE_S - 1;
	EXPECT(plan(o), TASKRUN_FIND);
	o.deleting = true; /* even deletion waits: the run may still appear and need a cancel */
	EXPECT(plan(o), TASKRUN_FIND);
	o.deleting = false;
	o.candidate = true;
	EXPECT(plan(o), TASKRUN_ADOPT);
	o.candidate = false;
	o.now = 1000 + TASKRUN_SETTLE_S;
	EXPECT(plan(o), TASKRUN_SCHEDULE);
	o.deleting = true;
	EXPECT(plan(o), TASKRUN_RELEASE);
}

TEST(known_run_is_followed_canceled_and_released)
{
	struct taskrun_observed o = {.run_id = "cx1", .run_status = "Queued", .now = 1};
	EXPECT(plan(o), TASKRUN_FOLLOW);
	o.run_status = "Running";
	EXPECT(plan(o), TASKRUN_FOLLOW);
	o.cancel = true;
	EXPECT(plan(o), TASKRUN_CANCEL);
	o.cancel_sent = true;
	EXPECT(plan(o), TASKRUN_FOLLOW);
	o.deleting = true;
	EXPECT(plan(o), TASKRUN_RELEASE);
	o = (struct taskrun_observed){.run_id = "cx1", .run_status = "Running", .deleting = true};
	EXPECT(plan(o), TASKRUN_CANCEL);
	o.run_status = "Succeeded";
	EXPECT(plan(o), TASKRUN_RELEASE);
	o.deleting = false;
	EXPECT(plan(o), TASKRUN_FINISHED);
	o.run_gone = true;
	EXPECT(plan(o), TASKRUN_FINISHED);
	/* A finished run is never canceled. */
	o = (struct taskrun_observed){.run_id = "cx1", .run_status = "Failed", .cancel = true};
	EXPECT(plan(o), TASKRUN_FINISHED);
}

TEST(run_status_maps_to_kstatus)
{
	static const struct { const char *status, *reason; int state; } table[] = {
		{"Queued", "Queued", 1}, {"Started", "Running", 1}, {"Running", "Running", 1},
		{"Succeeded", "Succeeded", 0}, {"Failed", "RunFailed", 2}, {"Error", "RunError", 2},
		{"Timeout", "RunTimeout", 2}, {"Canceled", "RunCanceled", 2},
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		int st = -1;
		CHECK_STR(taskrun_run_reason(table[i].status, &st), table[i].reason);
		CHECK_INT(st, table[i].state);
	}
}

static struct arm_run run(char *id, char *task, char *type, char *pool, char *created, char *trigger)
{
	return (struct arm_run){.run_id = id, .task = task, .run_type = type, .agent_pool_name = pool,
				.create_time = created, .trigger = trigger};
}

/* 1000000000 is 2001-09-09T01:46:40Z. */
TEST(match_takes_oldest_untriggered_unclaimed_run_in_the_window)
{
	struct arm_run runs[] = {
		run("cx5", "mytask", "AutoBuild", "pool", "2001-09-09T01:47:10.0000000Z", NULL),
		run("cx4", "mytask", "AutoBuild", "pool", "2001-09-09T01:47:00.1234567Z", "nightly"),
		run("cx3", "mytask", "AutoBuild", "pool", "2001-09-09T01:46:50Z", NULL),
		run("cx2", "other", "AutoBuild", "pool", "2001-09-09T01:46:45Z", NULL),
		run("cx1", "mytask", "AutoBuild", "pool", "2001-09-09T01:30:00Z", NULL),
	};
	struct taskrun_match_key k = {.task = "MyTask", .intent_time = 1000000000};
	CHECK_INT(taskrun_match(runs, 5, &k, NULL, 0), 2); /* cx3: cx1 too old, cx4 a timer's, cx2 another task */
	const char *claimed[] = {"cx3"};
	CHECK_INT(taskrun_match(runs, 5, &k, claimed, 1), 0); /* cx3 is another TaskRun's */
	k.intent_time = 1000000000 - 1000 + 30;
	CHECK_INT(taskrun_match(runs, 5, &k, NULL, 0), 4); /* only cx1 is in that window (30 s of skew) */
	k.intent_time = 1000000000 + 3600;
	CHECK_INT(taskrun_match(runs, 5, &k, NULL, 0), -1);
}

TEST(match_builds_by_pool_and_quick_build)
{
	struct arm_run runs[] = {
		run("cb3", NULL, "QuickBuild", "otherpool", "2001-09-09T01:46:41Z", NULL),
		run("cb2", "mytask", "AutoBuild", "mypool", "2001-09-09T01:46:41Z", NULL),
		run("cb1", NULL, "QuickBuild", "MyPool", "2001-09-09T01:46:42Z", NULL),
		run("cb0", NULL, "QuickBuild", NULL, "2001-09-09T01:46:41Z", NULL),
	};
	struct taskrun_match_key k = {.pool = "mypool", .intent_time = 1000000000};
	CHECK_INT(taskrun_match(runs, 4, &k, NULL, 0), 2);
	k.pool = NULL; /* shared compute */
	CHECK_INT(taskrun_match(runs, 4, &k, NULL, 0), 3);
	char f[128];
	k.pool = "mypool";
	taskrun_match_filter(f, sizeof(f), &k);
	CHECK_STR(f, "AgentPoolName eq 'mypool' and RunType eq 'QuickBuild'");
	k = (struct taskrun_match_key){.task = "mytask"};
	taskrun_match_filter(f, sizeof(f), &k);
	CHECK_STR(f, "TaskName eq 'mytask'");
}

TEST(request_for_task_ref_and_build)
{
	cJSON *spec = cJSON_Parse("{\"taskRef\":{\"name\":\"t\",\"overrideValues\":[{\"name\":\"a\",\"value\":\"1\"},"
				  "{\"name\":\"s\",\"secretKeyRef\":{\"name\":\"sec\",\"key\":\"k\"}}]}}");
	struct taskrun_target t = {.task_id = "/sub/x/tasks/t", .task_docker = true};
	struct task_secret sec[] = {{"sec", "k", "v"}};
	struct task_secrets s = {sec, 1};
	char missing[64];
	cJSON *r = taskrun_plan_request(spec, &t, &s, missing, sizeof(missing));
	cJSON *want = cJSON_Parse("{\"type\":\"TaskRunRequest\",\"taskId\":\"/sub/x/tasks/t\","
				  "\"overrideTaskStepProperties\":{\"arguments\":[{\"name\":\"a\",\"value\":\"1\","
				  "\"isSecret\":false},{\"name\":\"s\",\"value\":\"v\",\"isSecret\":true}]},"
				  "\"isArchiveEnabled\":false}");
	CHECK(cJSON_Compare(r, want, true));
	task_plan_body_free(r);
	cJSON_Delete(want);
	s.n = 0;
	CHECK(taskrun_plan_request(spec, &t, &s, missing, sizeof(missing)) == NULL);
	CHECK_STR(missing, "Secret sec key k");
	cJSON_Delete(spec);

	spec = cJSON_Parse("{\"build\":{\"configMapRef\":{\"name\":\"ctx\"},\"imageNames\":[\"i:1\"],\"push\":false,"
			   "\"platform\":{\"os\":\"Linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"}}}");
	t = (struct taskrun_target){.pool = "mypool", .source_location = "source/202601010000/x.tar.gz"};
	r = taskrun_plan_request(spec, &t, NULL, missing, sizeof(missing));
	want = cJSON_Parse("{\"type\":\"DockerBuildRequest\",\"dockerFilePath\":\"Dockerfile\",\"imageNames\":[\"i:1\"],"
			   "\"isPushEnabled\":false,\"platform\":{\"os\":\"Linux\",\"architecture\":\"arm64\","
			   "\"variant\":\"v8\"},\"timeout\":3600,\"sourceLocation\":\"source/202601010000/x.tar.gz\","
			   "\"agentPoolName\":\"mypool\",\"isArchiveEnabled\":false}");
	CHECK(cJSON_Compare(r, want, true));
	task_plan_body_free(r);
	cJSON_Delete(want);
	cJSON_Delete(spec);
}

TEST(log_tail_keeps_last_lines_and_drops_a_cut_first_line)
{
	char log[4096] = "";
	for (int i = 1; i <= 30; i++)
		snprintf(log + strlen(log), sizeof(log) - strlen(log), "line %d\n", i);
	char out[1024];
	taskrun_log_tail(out, sizeof(out), log, strlen(log), false, 20);
	CHECK(strncmp(out, "line 11\n", 8) == 0);
	CHECK(strstr(out, "line 30") && !strstr(out, "line 10\n"));
	CHECK(out[strlen(out) - 1] == '0');
	taskrun_log_tail(out, sizeof(out), "ne 29\nline 30\n", 14, true, 20);
	CHECK_STR(out, "line 30");
	/* Control bytes and broken UTF-8 become '?'; valid UTF-8 stays. */
	taskrun_log_tail(out, sizeof(out), "a\x1b[1mb \xc3\xa9 \xff\r\n", 13, false, 20);
	CHECK_STR(out, "a?[1mb \xc3\xa9 ?");
}

/* Inflate a gzip stream (test helper). */
static unsigned char *gunzip(const unsigned char *in, size_t len, size_t *out_len)
{
	size_t cap = 1 << 20;
	unsigned char *out = malloc(cap);
	z_stream z = {0};
	inflateInit2(&z, 15 + 16);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	int zr = inflate(&z, Z_FINISH);
	*out_len = z.total_out;
	inflateEnd(&z);
	if (zr != Z_STREAM_END) {
		free(out);
		return NULL;
	}
	return out;
}

TEST(tarball_is_gzip_ustar_sorted_and_deterministic)
{
	const unsigned char bin[] = {0, 1, 2, 255};
	struct tarball_file files[] = {
		{"app.sh", (const unsigned char *)"echo hi\n", 8},
		{"Dockerfile", (const unsigned char *)"FROM scratch\n", 13},
		{"cert.der", bin, sizeof(bin)},
	};
	unsigned char *tgz = NULL, *tgz2 = NULL;
	size_t len = 0, len2 = 0, tlen = 0;
	CHECK_INT(tarball_pack(&tgz, &len, files, 3, 1700000000), 0);
	CHECK(len > 20 && tgz[0] == 0x1f && tgz[1] == 0x8b);
	CHECK_INT(tarball_pack(&tgz2, &len2, files, 3, 1700000000), 0);
	CHECK(len == len2 && memcmp(tgz, tgz2, len) == 0);
	unsigned char *tar = gunzip(tgz, len, &tlen);
	CHECK(tar != NULL);
	/* 3 headers + 3 data blocks + 2 end blocks. */
	CHECK_INT(tlen, 8 * 512);
	CHECK_STR((char *)tar, "Dockerfile"); /* sorted: 'D' < 'a' < 'c' */
	CHECK(memcmp(tar + 257, "ustar\0" "00", 8) == 0);
	CHECK(memcmp(tar + 512, "FROM scratch\n", 13) == 0);
	CHECK_STR((char *)tar + 1024, "app.sh");
	CHECK_STR((char *)tar + 124, "00000000015"); /* size 13 in octal */
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += (i >= 148 && i < 156) ? ' ' : tar[i];
	CHECK_INT(strtol((char *)tar + 148, NULL, 8), sum);
	free(tar);
	free(tgz);
	free(tgz2);

	char longname[300];
	memset(longname, 'x', 200);
	longname[200] = '\0';
	struct tarball_file bad[] = {{longname, (const unsigned char *)"", 0}};
	CHECK(tarball_pack(&tgz, &len, bad, 1, 0) != 0);
}

TEST_MAIN(T(fresh_taskrun_schedules_unless_blocked_canceled_or_deleted),
	  T(intent_without_run_is_never_sent_again_within_the_settle_window),
	  T(known_run_is_followed_canceled_and_released), T(run_status_maps_to_kstatus),
	  T(match_takes_oldest_untriggered_unclaimed_run_in_the_window), T(match_builds_by_pool_and_quick_build),
	  T(request_for_task_ref_and_build), T(log_tail_keeps_last_lines_and_drops_a_cut_first_line),
	  T(tarball_is_gzip_ustar_sorted_and_deterministic))
