/*
 * leader.h: leader election on a coordination.k8s.io/v1 Lease, as
 * client-go's leaderelection does it.
 *
 * Every replica runs an elector. The holder renews the Lease every retry
 * period; the others read it and take it over once it has not changed for
 * a whole lease duration, measured on their own monotonic clock from the
 * moment they saw it change (so clock skew between nodes does not matter).
 * A leader that cannot renew within the renew deadline has lost: it calls
 * on_stopped_leading at once, and the operator exits rather than risk two
 * replicas writing to Azure. On a clean stop the leader releases the Lease
 * (empty holder) so a standby takes over without waiting out the lease.
 */
#ifndef CTL_LEADER_H
#define CTL_LEADER_H

#include "clock.h"
#include "kube.h"

#include <stdbool.h>
#include <stdint.h>

struct ctl_leader;

struct ctl_leader_opts {
	const char *namespace;
	const char *name;          /* the Lease */
	const char *identity;      /* this replica: the pod name, unique */
	int64_t lease_duration_ns; /* default 15 s */
	int64_t renew_deadline_ns; /* default 10 s */
	int64_t retry_period_ns;   /* default 2 s */
	struct ctl_clock *clock;   /* NULL: the real clock */
	/* Called on the elector's thread. on_started_leading must not block;
	 * on_stopped_leading is called once, when leadership is lost or given
	 * up, and only after on_started_leading. */
	void (*on_started_leading)(void *arg);
	void (*on_stopped_leading)(void *arg);
	void *arg;
};

int ctl_leader_new(struct ctl_leader **out, struct ctl_kube_client *client, const struct ctl_leader_opts *opts);

/* Start the elector thread. */
int ctl_leader_start(struct ctl_leader *l);

/* Stop the elector: releases the Lease when held (unless release is
 * false), joins the thread. */
void ctl_leader_stop(struct ctl_leader *l, bool release);

void ctl_leader_free(struct ctl_leader *l);

bool ctl_leader_is_leader(struct ctl_leader *l);

/* Counts for metrics: leadership transitions seen by this replica. */
unsigned long ctl_leader_transitions(struct ctl_leader *l);

#endif
