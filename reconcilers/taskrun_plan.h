/*
 * taskrun_plan.h: the TaskRun state machine and the pure pieces around it,
 * decided without any I/O.
 *
 * A TaskRun asks Azure for one run, at most once, also across an operator
 * crash. The reconciler (taskrun.c) records an intent {token, time} in
 * status before it calls scheduleRun, and the run id after. When it finds
 * an intent without a run id that this process did not send (a restart),
 * it looks for the run instead of scheduling another: taskrun_match()
 * picks it from the runs Azure lists. Azure echoes nothing of a run
 * request that could carry a token, so the match is on (kind, task or
 * pool, no trigger, not claimed by another TaskRun, created within
 * [intent - skew, intent + settle]); docs/tasks.md states what that
 * guarantees. Unit tests: tests/unit/reconcilers/taskrun_plan.c.
 */
#ifndef TASKRUN_PLAN_H
#define TASKRUN_PLAN_H

#include "azure/acr.h"
#include "task_plan.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* How long after the intent a run Azure creates may still be ours: more
 * than the ARM client's per-attempt timeout (100 s), so a request Azure
 * was still processing when we crashed is found, not duplicated. */
#define TASKRUN_SETTLE_S 180
/* How far Azure's clock may lag ours when it stamps createTime. */
#define TASKRUN_SKEW_S 60
/* Lines of the run log kept in status.logTail. */
#define TASKRUN_LOG_LINES 20

struct taskrun_observed {
	bool deleting;
	bool cancel;               /* spec.cancel */
	const char *run_id;        /* status.runId (or what this process knows) */
	const char *run_status;    /* Azure's status of that run; NULL if unknown */
	bool run_gone;             /* Azure answers 404 for the run */
	bool cancel_sent;          /* status says we asked Azure to cancel */
	bool intent;               /* status.scheduleIntent is set */
	long long intent_time;     /* its time, epoch seconds */
	bool candidate;            /* taskrun_match found the run of the intent */
	long long now;
	/* Why a run cannot be requested yet (NULL: it can). stall: needs a
	 * human (missing Task/Secret/ConfigMap); otherwise wait. */
	const char *blocked_reason;
	const char *blocked_message;
	bool blocked_stall;
};

enum taskrun_action_kind {
	TASKRUN_SCHEDULE,    /* record intent, then scheduleRun */
	TASKRUN_ADOPT,       /* the intent's run was found: record its id */
	TASKRUN_FIND,        /* intent without run, none found yet: look again */
	TASKRUN_FOLLOW,      /* the run is going: poll it */
	TASKRUN_CANCEL,      /* ask Azure to cancel the run */
	TASKRUN_FINISHED,    /* the run ended: status says how */
	TASKRUN_CANCELED,    /* canceled before any run existed */
	TASKRUN_WAIT,        /* prerequisites not met: Reconciling */
	TASKRUN_STALL,       /* prerequisites need a human */
	TASKRUN_RELEASE,     /* deleting and nothing left in Azure: drop the finalizer */
};

struct taskrun_action {
	enum taskrun_action_kind kind;
	const char *reason;
	char message[512];
};

void taskrun_plan(const struct taskrun_observed *o, struct taskrun_action *out);
const char *taskrun_action_name(enum taskrun_action_kind kind);

/* The kstatus outcome for an Azure run status: Queued -> Reconciling
 * Queued; Started, Running -> Reconciling Running; Succeeded -> Ready;
 * Failed, Error, Timeout, Canceled -> Stalled RunFailed, RunError,
 * RunTimeout, RunCanceled. *state: 0 ready, 1 progressing, 2 stalled. */
const char *taskrun_run_reason(const char *run_status, int *state);

/* What identifies the run of an intent among the runs Azure lists. */
struct taskrun_match_key {
	const char *task;          /* taskRef: the Azure task name; NULL for a build */
	const char *pool;          /* build: the Azure pool name; NULL: shared compute */
	long long intent_time;     /* epoch seconds */
};

/* Index into runs of the run the intent created, or -1: the oldest run
 * that has no trigger (timers, commits and base image updates start runs
 * of their own), matches the task (taskRef) or is a QuickBuild on the pool
 * (build), was created within [intent - TASKRUN_SKEW_S, intent +
 * TASKRUN_SETTLE_S], and is not in claimed (run ids other TaskRuns hold). */
int taskrun_match(const struct arm_run *runs, size_t n, const struct taskrun_match_key *k,
		  const char *const *claimed, size_t nclaimed);

/* The runs LIST $filter for a match key ("TaskName eq 'x'", ...). */
void taskrun_match_filter(char *out, size_t len, const struct taskrun_match_key *k);

/* What the run request needs beyond the spec. */
struct taskrun_target {
	const char *task_id;          /* taskRef: the task's ARM id (or name) */
	bool task_docker;             /* taskRef: the Task has a Docker step (overrides are arguments) */
	const char *pool;             /* build: Azure pool name, NULL for shared compute */
	const char *source_location;  /* build: git URL or the uploaded relativePath */
};

/* The RunRequest for spec: TaskRunRequest (taskRef, with overrideValues)
 * or DockerBuildRequest (build). NULL with missing set when a secret
 * override is unresolved. Free with task_plan_body_free (it may hold
 * secret values). */
cJSON *taskrun_plan_request(const cJSON *spec, const struct taskrun_target *t, const struct task_secrets *secrets,
			    char *missing, size_t missing_len);

/* The last `lines` lines of a log tail into out (NUL-terminated). When
 * partial is set the text starts mid-log, so its first (cut) line is
 * dropped. Bytes that are not printable ASCII, tab, newline or UTF-8 are
 * replaced with '?'. */
void taskrun_log_tail(char *out, size_t out_len, const char *log, size_t len, bool partial, int lines);

#endif
