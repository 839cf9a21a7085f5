/*
 * pipelineagentpool_plan.c: the PipelineAgentPool instance decisions. The
 * policy is in pipelineagentpool_plan.h; this file only applies it.
 */
#include "pipelineagentpool_plan.h"

#include "xalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *pipelineagentpool_step_name(enum pipelineagentpool_step_kind kind)
{
	static const char *names[] = {"create", "replace", "disable", "enable", "delete", "remove-agent", "register"};
	return names[kind];
}

const char *pipelineagentpool_outcome_name(enum pipelineagentpool_outcome outcome)
{
	static const char *names[] = {"ready", "working", "waiting", "stalled", "release"};
	return names[outcome];
}

static bool state_is(const char *state, const char *word)
{
	return state && strcasecmp(state, word) == 0;
}

static bool failed(const struct pipelineagentpool_instance *i)
{
	return i->group_found &&
	       (state_is(i->provisioning_state, "Failed") || state_is(i->provisioning_state, "Canceled"));
}

/* Pending, Creating, Updating, Repairing, Deleting, ...: an Azure operation
 * is running on the group and a second write would be refused with 409. */
static bool in_flight(const struct pipelineagentpool_instance *i)
{
	return i->group_found && i->provisioning_state && !state_is(i->provisioning_state, "Succeeded") &&
	       !failed(i);
}

static bool deleting(const struct pipelineagentpool_instance *i)
{
	return i->group_found && state_is(i->provisioning_state, "Deleting");
}

static bool disabled(const struct pipelineagentpool_instance *i)
{
	return i->agent_found && !i->agent_enabled;
}

static void add(struct pipelineagentpool_plan *p, enum pipelineagentpool_step_kind kind, int index)
{
	p->steps[p->nsteps++] = (struct pipelineagentpool_step){kind, index};
}

static void say(struct pipelineagentpool_plan *p, enum pipelineagentpool_outcome outcome, const char *reason,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void say(struct pipelineagentpool_plan *p, enum pipelineagentpool_outcome outcome, const char *reason,
		const char *fmt, ...)
{
	va_list ap;
	p->outcome = outcome;
	p->reason = reason;
	va_start(ap, fmt);
	vsnprintf(p->message, sizeof(p->message), fmt, ap);
	va_end(ap);
}

/* Which surplus instance leaves first: a failed one (it serves nothing),
 * then an idle one already disabled, then an idle one, then a busy one
 * already draining, then a busy one, which is only disabled and drains its
 * job; higher indices before lower. */
static int removal_rank(const struct pipelineagentpool_instance *i)
{
	if (failed(i))
		return 0;
	if (!i->agent_busy)
		return disabled(i) || !i->agent_found ? 1 : 2;
	return disabled(i) ? 3 : 4;
}

static int by_removal(const void *a, const void *b)
{
	const struct pipelineagentpool_instance *x = *(const struct pipelineagentpool_instance *const *)a;
	const struct pipelineagentpool_instance *y = *(const struct pipelineagentpool_instance *const *)b;
	int rx = removal_rank(x), ry = removal_rank(y);
	if (rx != ry)
		return rx - ry;
	return y->index - x->index;
}

static void plan_delete(const struct pipelineagentpool_desired *d, const struct pipelineagentpool_instance *in,
			size_t n, struct pipelineagentpool_plan *p)
{
	if (d->orphan) {
		say(p, PIPELINEAGENTPOOL_RELEASE, "Orphaned",
		    "deletionPolicy is Orphan: container groups and agents are left in place");
		return;
	}
	size_t waiting = 0;
	for (size_t k = 0; k < n; k++) {
		if (deleting(&in[k]))
			waiting++;
		else if (in[k].group_found)
			add(p, PIPELINEAGENTPOOL_DELETE, in[k].index);
		if (in[k].agent_found)
			add(p, PIPELINEAGENTPOOL_REMOVE_AGENT, in[k].index);
	}
	if (p->nsteps)
		say(p, PIPELINEAGENTPOOL_WORKING, "Deleting", "deleting %zu instance(s)", n);
	else if (waiting)
		say(p, PIPELINEAGENTPOOL_WAITING, "Deleting", "waiting for %zu container group(s) to be deleted",
		    waiting);
	else
		say(p, PIPELINEAGENTPOOL_RELEASE, "Deleted", "every container group and agent is gone");
}

void pipelineagentpool_plan(const struct pipelineagentpool_desired *d,
			    const struct pipelineagentpool_instance *in, size_t n,
			    struct pipelineagentpool_plan *p)
{
	memset(p, 0, sizeof(*p));
	p->failed_index = -1;
	int count = d->count > 0 ? d->count : 0;
	/* Each instance takes at most two steps (delete and remove its agent),
	 * each create one, and the placeholder's register one. */
	p->steps = xcalloc(2 * n + (size_t)count + 2, sizeof(*p->steps));
	if (d->deleting) {
		plan_delete(d, in, n, p);
		return;
	}

	/* The instances that count towards the desired number: every group not
	 * being deleted. The surplus beyond count leaves, best candidates first. */
	const struct pipelineagentpool_instance **kept = xcalloc(n + 1, sizeof(*kept));
	bool *leaving = xcalloc(n + 1, sizeof(*leaving));
	size_t nkept = 0;
	for (size_t k = 0; k < n; k++)
		if (in[k].group_found && !deleting(&in[k]))
			kept[nkept++] = &in[k];
	qsort(kept, nkept, sizeof(*kept), by_removal);
	/* At zero, the placeholder: the lowest-index agent stays. */
	int keep = -1;
	if (d->placeholder && count == 0)
		for (size_t k = 0; k < n; k++)
			if (in[k].agent_found && (keep < 0 || in[k].index < keep))
				keep = in[k].index;
	size_t surplus = nkept > (size_t)count ? nkept - (size_t)count : 0;
	size_t removing = 0, draining = 0, provisioning = 0, creating = 0, rolling = 0, starting = 0;
	for (size_t k = 0; k < surplus; k++) {
		const struct pipelineagentpool_instance *i = kept[k];
		leaving[i - in] = true;
		if (in_flight(i)) {
			provisioning++;
		} else if (!failed(i) && i->agent_found && i->agent_enabled) {
			add(p, PIPELINEAGENTPOOL_DISABLE, i->index);
			removing++;
		} else if (!failed(i) && i->agent_busy) {
			draining++;
		} else {
			add(p, PIPELINEAGENTPOOL_DELETE, i->index);
			removing++;
			if (i->agent_found && i->index != keep)
				add(p, PIPELINEAGENTPOOL_REMOVE_AGENT, i->index);
		}
	}

	/* Scale up into the lowest free names. A name whose group is still
	 * being deleted is not free: a PUT over it would be refused. */
	size_t staying = nkept - surplus;
	bool *created = xcalloc(n + (size_t)count + 1, sizeof(*created));
	for (int index = 0; staying + creating < (size_t)count; index++) {
		bool taken = false;
		for (size_t k = 0; k < n && !taken; k++)
			taken = in[k].index == index && in[k].group_found;
		if (taken)
			continue;
		add(p, PIPELINEAGENTPOOL_CREATE, index);
		if ((size_t)index < n + (size_t)count)
			created[index] = true;
		creating++;
	}

	/* Roll outdated instances one at a time. An instance already out of
	 * service for a roll (its agent disabled, its replace in flight, or
	 * replaced and its agent not online yet) holds the one slot. */
	int out_of_service = 0;
	bool rolling_any = false;
	for (size_t k = 0; k < n; k++)
		rolling_any |= in[k].group_found && !in[k].current && !leaving[k] && !deleting(&in[k]);
	for (size_t k = 0; k < n; k++) {
		const struct pipelineagentpool_instance *i = &in[k];
		if (!i->group_found || leaving[k] || deleting(i) || failed(i))
			continue;
		if (in_flight(i) || (!i->current && disabled(i)))
			out_of_service++;
		else if (rolling_any && i->current && i->agent_found && i->agent_enabled && !i->agent_online)
			out_of_service++, starting++;
	}
	for (int pass = 0; pass < 2; pass++) {
		/* First pass: idle instances; second: busy ones, which drain. */
		for (size_t k = 0; k < n; k++) {
			const struct pipelineagentpool_instance *i = &in[k];
			if (!i->group_found || leaving[k] || deleting(i) || in_flight(i) || i->current || failed(i))
				continue;
			if (i->agent_busy != (pass == 1))
				continue;
			if (i->agent_found && i->agent_enabled) {
				if (out_of_service < 1) {
					add(p, PIPELINEAGENTPOOL_DISABLE, i->index);
					out_of_service++;
					rolling++;
				}
			} else if (pass == 0) {
				add(p, PIPELINEAGENTPOOL_REPLACE, i->index);
				rolling++;
			} else {
				draining++;
			}
		}
	}

	/* Failed instances serve nothing: replace them at once when the
	 * template moved on; with the current template, retrying would fail
	 * the same way, so that needs a human. Enable agents that are wanted. */
	for (size_t k = 0; k < n; k++) {
		const struct pipelineagentpool_instance *i = &in[k];
		if (!i->group_found || leaving[k] || deleting(i))
			continue;
		if (failed(i)) {
			if (!i->current) {
				add(p, PIPELINEAGENTPOOL_REPLACE, i->index);
				rolling++;
			} else if (p->failed_index < 0) {
				p->failed_index = i->index;
			}
			continue;
		}
		if (in_flight(i)) {
			provisioning++;
			continue;
		}
		if (i->current && !i->agent_found) {
			/* Its agent was deleted (by hand): the container cannot
			 * sign in any more. Register anew with a new key. */
			add(p, PIPELINEAGENTPOOL_REPLACE, i->index);
			rolling++;
			continue;
		}
		if (i->current && disabled(i))
			add(p, PIPELINEAGENTPOOL_ENABLE, i->index);
		if (i->current && !disabled(i))
			p->in_service++;
	}

	/* Agents with no container group and no create coming are leftovers. */
	for (size_t k = 0; k < n; k++) {
		const struct pipelineagentpool_instance *i = &in[k];
		bool coming = i->index >= 0 && (size_t)i->index < n + (size_t)count && created[i->index];
		if (!i->agent_found || i->group_found || coming)
			continue;
		if (i->index != keep)
			add(p, PIPELINEAGENTPOOL_REMOVE_AGENT, i->index);
		else if (!i->agent_enabled)
			add(p, PIPELINEAGENTPOOL_ENABLE, i->index); /* offline and enabled: jobs queue */
	}
	if (d->placeholder && count == 0 && keep < 0) {
		/* No agent left: register one under the lowest name no group holds. */
		int index = 0;
		for (bool taken = true; taken; index += taken) {
			taken = false;
			for (size_t k = 0; k < n && !taken; k++)
				taken = in[k].index == index && in[k].group_found;
		}
		add(p, PIPELINEAGENTPOOL_REGISTER, index);
	}
	free(created);
	free(leaving);
	free(kept);

	if (creating || removing || rolling) {
		const char *reason = creating || removing ? "Scaling" : "Rolling";
		say(p, PIPELINEAGENTPOOL_WORKING, reason,
		    "%d of %d instance(s) in service; creating %zu, removing %zu, updating %zu", p->in_service,
		    count, creating, removing, rolling);
	} else if (p->nsteps) {
		say(p, PIPELINEAGENTPOOL_WORKING, "Updating", "%d of %d instance(s) in service; tidying agents",
		    p->in_service, count);
	} else if (p->failed_index >= 0) {
		say(p, PIPELINEAGENTPOOL_STALLED, "InstanceFailed",
		    "instance %d failed with the current template; fix the spec (image, resources) to replace it",
		    p->failed_index);
	} else if (provisioning) {
		say(p, PIPELINEAGENTPOOL_WAITING, "Provisioning",
		    "%d of %d instance(s) in service; waiting for %zu Azure operation(s)", p->in_service, count,
		    provisioning);
	} else if (starting) {
		say(p, PIPELINEAGENTPOOL_WAITING, "Rolling",
		    "%d of %d instance(s) in service; waiting for %zu replaced agent(s) to come online", p->in_service,
		    count, starting);
	} else if (draining) {
		say(p, PIPELINEAGENTPOOL_WAITING, "WaitingForJobs",
		    "%d of %d instance(s) in service; waiting for %zu running job(s) to finish", p->in_service,
		    count, draining);
	} else {
		say(p, PIPELINEAGENTPOOL_READY, "Succeeded", "%d instance(s) in service as declared", count);
	}
}

void pipelineagentpool_plan_dispose(struct pipelineagentpool_plan *p)
{
	free(p->steps);
	p->steps = NULL;
	p->nsteps = 0;
}
