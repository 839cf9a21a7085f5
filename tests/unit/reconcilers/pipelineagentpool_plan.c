/* Unit tests for reconcilers/pipelineagentpool_plan.c: (desired, instances) -> steps and outcome. */
#include "test.h"

#include "pipelineagentpool_plan.h"

/* An instance in service: provisioned, current, its agent enabled and idle. */
static struct pipelineagentpool_instance serving(int index)
{
	return (struct pipelineagentpool_instance){
		.index = index, .group_found = true, .provisioning_state = "Succeeded", .current = true,
		.agent_found = true, .agent_enabled = true, .agent_online = true,
	};
}

static struct pipelineagentpool_instance busy(int index)
{
	struct pipelineagentpool_instance i = serving(index);
	i.agent_busy = true;
	return i;
}

static struct pipelineagentpool_instance disabled(struct pipelineagentpool_instance i)
{
	i.agent_enabled = false;
	return i;
}

static struct pipelineagentpool_instance outdated(struct pipelineagentpool_instance i)
{
	i.current = false;
	return i;
}

static struct pipelineagentpool_instance in_state(struct pipelineagentpool_instance i, const char *state)
{
	i.provisioning_state = state;
	return i;
}

/* The plan as "outcome reason: step:index ...", so one CHECK_STR says it all. */
static char result[1024];

static const char *plan_with(const struct pipelineagentpool_desired *dp, const struct pipelineagentpool_instance *in,
			     size_t n)
{
	struct pipelineagentpool_desired d = *dp;
	struct pipelineagentpool_plan p;
	pipelineagentpool_plan(&d, in, n, &p);
	int len = snprintf(result, sizeof(result), "%s %s:", pipelineagentpool_outcome_name(p.outcome), p.reason);
	for (size_t k = 0; k < p.nsteps && len > 0 && (size_t)len < sizeof(result); k++)
		len += snprintf(result + len, sizeof(result) - (size_t)len, " %s:%d",
				pipelineagentpool_step_name(p.steps[k].kind), p.steps[k].index);
	pipelineagentpool_plan_dispose(&p);
	return result;
}

static const char *plan(int count, bool deleting, bool orphan, const struct pipelineagentpool_instance *in,
			size_t n)
{
	struct pipelineagentpool_desired d = {.count = count, .deleting = deleting, .orphan = orphan};
	return plan_with(&d, in, n);
}

/* Scaled to zero by autoscale or a schedule: one offline agent stays. */
static const char *plan_zero(const struct pipelineagentpool_instance *in, size_t n)
{
	struct pipelineagentpool_desired d = {.count = 0, .placeholder = true};
	return plan_with(&d, in, n);
}

/* An agent whose container group is gone. */
static struct pipelineagentpool_instance agent_only(int index, bool enabled)
{
	return (struct pipelineagentpool_instance){.index = index, .agent_found = true, .agent_enabled = enabled};
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

TEST(plan_creates_every_instance_from_nothing)
{
	CHECK_STR(plan(3, false, false, NULL, 0), "working Scaling: create:0 create:1 create:2");
}

TEST(plan_is_ready_when_every_instance_serves)
{
	struct pipelineagentpool_instance in[] = {serving(0), busy(1), serving(2)};
	CHECK_STR(plan(3, false, false, in, N(in)), "ready Succeeded:");
}

TEST(plan_scale_down_disables_an_idle_agent_before_a_busy_one)
{
	/* The highest index is busy: the idle one below it leaves instead. */
	struct pipelineagentpool_instance in[] = {serving(0), serving(1), busy(2)};
	CHECK_STR(plan(2, false, false, in, N(in)), "working Scaling: disable:1");
}

TEST(plan_scale_down_deletes_only_a_disabled_idle_instance_and_its_agent)
{
	struct pipelineagentpool_instance in[] = {serving(0), disabled(serving(1)), busy(2)};
	CHECK_STR(plan(2, false, false, in, N(in)), "working Scaling: delete:1 remove-agent:1");
}

TEST(plan_scale_down_never_deletes_a_busy_instance)
{
	/* All busy: the highest is disabled so it takes no new job, and drains. */
	struct pipelineagentpool_instance in[] = {busy(0), busy(1)};
	CHECK_STR(plan(1, false, false, in, N(in)), "working Scaling: disable:1");
	struct pipelineagentpool_instance draining[] = {busy(0), disabled(busy(1))};
	CHECK_STR(plan(1, false, false, draining, N(draining)), "waiting WaitingForJobs:");
}

TEST(plan_scale_to_zero_removes_every_idle_instance)
{
	struct pipelineagentpool_instance in[] = {disabled(serving(0)), serving(1)};
	CHECK_STR(plan(0, false, false, in, N(in)), "working Scaling: delete:0 remove-agent:0 disable:1");
}

TEST(plan_scale_up_fills_the_lowest_free_names_and_enables_wanted_agents)
{
	/* Index 1 was disabled on its way out; wanted again, it is enabled, not replaced. */
	struct pipelineagentpool_instance in[] = {serving(0), disabled(serving(1)), serving(3)};
	CHECK_STR(plan(5, false, false, in, N(in)), "working Scaling: create:2 create:4 enable:1");
}

TEST(plan_does_not_reuse_a_name_still_being_deleted)
{
	struct pipelineagentpool_instance gone = in_state(serving(0), "Deleting");
	gone.agent_found = false;
	struct pipelineagentpool_instance in[] = {gone};
	CHECK_STR(plan(1, false, false, in, N(in)), "working Scaling: create:1");
}

TEST(plan_rolls_a_template_change_one_instance_at_a_time)
{
	/* Idle first: instance 1 leaves service; nothing else moves. */
	struct pipelineagentpool_instance start[] = {outdated(busy(0)), outdated(serving(1)), outdated(serving(2))};
	CHECK_STR(plan(3, false, false, start, N(start)), "working Rolling: disable:1");
	/* Its agent is disabled and idle: replace it, and only it. */
	struct pipelineagentpool_instance next[] = {outdated(busy(0)), outdated(disabled(serving(1))),
						    outdated(serving(2))};
	CHECK_STR(plan(3, false, false, next, N(next)), "working Rolling: replace:1");
	/* While its replace is in flight, the others wait. */
	struct pipelineagentpool_instance flying[] = {outdated(busy(0)), disabled(in_state(serving(1), "Updating")),
						      outdated(serving(2))};
	CHECK_STR(plan(3, false, false, flying, N(flying)), "waiting Provisioning:");
	/* Back and current: its agent returns to service and the next one leaves. */
	struct pipelineagentpool_instance back[] = {outdated(busy(0)), disabled(serving(1)), outdated(serving(2))};
	CHECK_STR(plan(3, false, false, back, N(back)), "working Rolling: disable:2 enable:1");
}

TEST(plan_roll_waits_for_the_job_of_a_busy_outdated_instance)
{
	struct pipelineagentpool_instance only_busy[] = {outdated(busy(0)), serving(1)};
	CHECK_STR(plan(2, false, false, only_busy, N(only_busy)), "working Rolling: disable:0");
	struct pipelineagentpool_instance draining[] = {outdated(disabled(busy(0))), serving(1)};
	CHECK_STR(plan(2, false, false, draining, N(draining)), "waiting WaitingForJobs:");
}

TEST(plan_replaces_every_failed_outdated_instance_at_once)
{
	struct pipelineagentpool_instance in[] = {outdated(in_state(serving(0), "Failed")),
						  outdated(in_state(serving(1), "Failed")), serving(2)};
	CHECK_STR(plan(3, false, false, in, N(in)), "working Rolling: replace:0 replace:1");
}

TEST(plan_stalls_on_an_instance_failed_with_the_current_template)
{
	struct pipelineagentpool_instance in[] = {in_state(serving(0), "Failed"), serving(1)};
	struct pipelineagentpool_desired d = {.count = 2};
	struct pipelineagentpool_plan p;
	pipelineagentpool_plan(&d, in, N(in), &p);
	CHECK_STR(pipelineagentpool_outcome_name(p.outcome), "stalled");
	CHECK_STR(p.reason, "InstanceFailed");
	CHECK_INT(p.failed_index, 0);
	CHECK_INT(p.in_service, 1);
	pipelineagentpool_plan_dispose(&p);
	/* It does not hold up the rest: a scale-up still goes ahead. */
	CHECK_STR(plan(3, false, false, in, N(in)), "working Scaling: create:2");
}

TEST(plan_scale_down_removes_a_failed_instance_first)
{
	/* It serves nothing, so it goes at once, without disabling its agent first. */
	struct pipelineagentpool_instance in[] = {serving(0), in_state(serving(1), "Failed"), serving(2)};
	CHECK_STR(plan(2, false, false, in, N(in)), "working Scaling: delete:1 remove-agent:1");
}

TEST(plan_removes_leftover_agents_but_not_one_about_to_be_replaced)
{
	struct pipelineagentpool_instance agent_only = {.index = 5, .agent_found = true, .agent_enabled = true};
	struct pipelineagentpool_instance agent_of_1 = {.index = 1, .agent_found = true};
	struct pipelineagentpool_instance in[] = {serving(0), agent_of_1, agent_only};
	/* Index 1 is created again (its agent will be re-registered); 5 is a leftover. */
	CHECK_STR(plan(2, false, false, in, N(in)), "working Scaling: create:1 remove-agent:5");
}

TEST(plan_waits_for_instances_being_created)
{
	struct pipelineagentpool_instance creating = in_state(serving(1), "Creating");
	creating.agent_found = false;
	struct pipelineagentpool_instance in[] = {serving(0), creating};
	CHECK_STR(plan(2, false, false, in, N(in)), "waiting Provisioning:");
}

TEST(plan_deletion_removes_everything_then_releases)
{
	struct pipelineagentpool_instance in[] = {busy(0), in_state(serving(1), "Creating")};
	CHECK_STR(plan(2, true, false, in, N(in)),
		  "working Deleting: delete:0 remove-agent:0 delete:1 remove-agent:1");
	struct pipelineagentpool_instance going = in_state(serving(0), "Deleting");
	going.agent_found = false;
	struct pipelineagentpool_instance wait[] = {going};
	CHECK_STR(plan(2, true, false, wait, N(wait)), "waiting Deleting:");
	CHECK_STR(plan(2, true, false, NULL, 0), "release Deleted:");
}

TEST(plan_deletion_with_orphan_policy_touches_nothing)
{
	struct pipelineagentpool_instance in[] = {serving(0), serving(1)};
	CHECK_STR(plan(2, true, true, in, N(in)), "release Orphaned:");
}

TEST(plan_roll_waits_for_the_replaced_agent_to_come_online)
{
	/* Instance 0 was replaced: its group is current, its agent enabled,
	 * but not online yet (the agent is starting). The next one waits. */
	struct pipelineagentpool_instance starting = serving(0);
	starting.agent_online = false;
	struct pipelineagentpool_instance in[] = {starting, outdated(serving(1)), outdated(serving(2))};
	CHECK_STR(plan(3, false, false, in, N(in)), "waiting Rolling:");
	/* Online: the roll goes on with the next idle instance. */
	struct pipelineagentpool_instance next[] = {serving(0), outdated(serving(1)), outdated(serving(2))};
	CHECK_STR(plan(3, false, false, next, N(next)), "working Rolling: disable:1");
	/* With nothing to roll, an agent between two jobs (offline while its
	 * container restarts) is no reason to wait. */
	struct pipelineagentpool_instance steady[] = {starting, serving(1)};
	CHECK_STR(plan(2, false, false, steady, N(steady)), "ready Succeeded:");
}

TEST(plan_replaces_a_group_whose_agent_was_deleted)
{
	/* Someone deleted agent 1 in Azure DevOps: its container can no
	 * longer sign in. It is replaced (registered anew), and a roll does
	 * not wait for it to come online as if it were starting. */
	struct pipelineagentpool_instance gone = serving(1);
	gone.agent_found = gone.agent_enabled = false;
	struct pipelineagentpool_instance in[] = {serving(0), gone};
	CHECK_STR(plan(2, false, false, in, N(in)), "working Rolling: replace:1");
	struct pipelineagentpool_instance rolling[] = {outdated(serving(0)), gone};
	CHECK_STR(plan(2, false, false, rolling, N(rolling)), "working Rolling: disable:0 replace:1");
}

TEST(plan_scale_to_zero_keeps_the_lowest_agent_registered_as_a_placeholder)
{
	/* Out of service first, busy ones drain; then the groups go, and the
	 * lowest agent stays (its group deleted, the agent not removed). */
	struct pipelineagentpool_instance in[] = {serving(0), busy(1), serving(2)};
	CHECK_STR(plan_zero(in, N(in)), "working Scaling: disable:2 disable:0 disable:1");
	struct pipelineagentpool_instance off[] = {disabled(serving(0)), disabled(busy(1)), disabled(serving(2))};
	CHECK_STR(plan_zero(off, N(off)), "working Scaling: delete:2 remove-agent:2 delete:0");
	/* Its group gone, the placeholder is enabled again: offline and
	 * enabled, jobs queue for it instead of failing. */
	struct pipelineagentpool_instance left[] = {agent_only(0, false)};
	CHECK_STR(plan_zero(left, N(left)), "working Updating: enable:0");
	struct pipelineagentpool_instance rest[] = {agent_only(0, true)};
	CHECK_STR(plan_zero(rest, N(rest)), "ready Succeeded:");
	/* Without the placeholder (spec.count: 0) every agent goes. */
	CHECK_STR(plan(0, false, false, rest, N(rest)), "working Updating: remove-agent:0");
}

TEST(plan_scale_to_zero_registers_a_placeholder_when_no_agent_is_left)
{
	CHECK_STR(plan_zero(NULL, 0), "working Updating: register:0");
	/* Not under a name whose group is still being deleted. */
	struct pipelineagentpool_instance going = in_state(serving(0), "Deleting");
	going.agent_found = false;
	struct pipelineagentpool_instance in[] = {going};
	CHECK_STR(plan_zero(in, N(in)), "working Updating: register:1");
	/* Two leftovers: the lowest stays, the other is removed. */
	struct pipelineagentpool_instance two[] = {agent_only(3, true), agent_only(1, true)};
	CHECK_STR(plan_zero(two, N(two)), "working Updating: remove-agent:3");
}

TEST(plan_scale_up_from_zero_puts_the_placeholder_back_in_a_container)
{
	struct pipelineagentpool_instance in[] = {agent_only(0, true)};
	CHECK_STR(plan(2, false, false, in, N(in)), "working Scaling: create:0 create:1");
}

TEST_MAIN(T(plan_creates_every_instance_from_nothing), T(plan_is_ready_when_every_instance_serves),
	  T(plan_scale_down_disables_an_idle_agent_before_a_busy_one),
	  T(plan_scale_down_deletes_only_a_disabled_idle_instance_and_its_agent),
	  T(plan_scale_down_never_deletes_a_busy_instance), T(plan_scale_to_zero_removes_every_idle_instance),
	  T(plan_scale_up_fills_the_lowest_free_names_and_enables_wanted_agents),
	  T(plan_does_not_reuse_a_name_still_being_deleted), T(plan_rolls_a_template_change_one_instance_at_a_time),
	  T(plan_roll_waits_for_the_job_of_a_busy_outdated_instance),
	  T(plan_replaces_every_failed_outdated_instance_at_once),
	  T(plan_stalls_on_an_instance_failed_with_the_current_template),
	  T(plan_scale_down_removes_a_failed_instance_first),
	  T(plan_removes_leftover_agents_but_not_one_about_to_be_replaced),
	  T(plan_waits_for_instances_being_created), T(plan_deletion_removes_everything_then_releases),
	  T(plan_deletion_with_orphan_policy_touches_nothing),
	  T(plan_roll_waits_for_the_replaced_agent_to_come_online), T(plan_replaces_a_group_whose_agent_was_deleted),
	  T(plan_scale_to_zero_keeps_the_lowest_agent_registered_as_a_placeholder),
	  T(plan_scale_to_zero_registers_a_placeholder_when_no_agent_is_left),
	  T(plan_scale_up_from_zero_puts_the_placeholder_back_in_a_container))
