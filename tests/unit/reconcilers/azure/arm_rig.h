/*
 * arm_rig.h: the ARM client the wire cases of tests/unit/reconcilers/azure/
 * drive (arm.c, acr.c, blob.c): a client and its service-principal
 * identity aimed at a canned loopback server (canned_http.h), with a fake
 * clock and sleep, a metrics hook that remembers the last call, and a
 * registry to aim typed calls at.
 */
#ifndef ACRPOOL_TEST_ARM_RIG_H
#define ACRPOOL_TEST_ARM_RIG_H

#include "canned_http.h"

#include "azure/acr.h"
#include "azure/arm.h"
#include "azure/identity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rig {
	struct canned_server s;
	struct fake_clock clk;
	struct identity *id;
	struct arm_client *c;
	int metrics_calls;
	char metrics_last[128];
	struct arm_registry_ref ref;
};

static inline void on_metrics(const char *method, const char *operation, long status, double seconds, void *arg)
{
	struct rig *r = arg;
	r->metrics_calls++;
	snprintf(r->metrics_last, sizeof(r->metrics_last), "%s %s %ld %d", method, operation, status,
		 seconds >= 0 && seconds < 30);
}

static inline void rig_start(struct rig *r, int max_attempts, long budget_ms)
{
	memset(r, 0, sizeof(*r));
	canned_start(&r->s);
	r->clk.now_ms = 1700000000000LL;
	struct identity_options io = {
		.kind = IDENTITY_SERVICE_PRINCIPAL, .tenant_id = "tenant", .client_id = "app",
		.client_secret = "topsecret-value", .authority_host = r->s.base,
		.clock = fake_clock_s, .sleep = fake_sleep, .clock_arg = &r->clk,
	};
	if (identity_new(&r->id, &io))
		abort();
	struct arm_options ao = {
		.endpoint = r->s.base, .max_attempts = max_attempts, .budget_ms = budget_ms,
		.metrics = on_metrics, .metrics_arg = r,
		.sleep = fake_sleep, .clock = fake_clock_ms, .clock_arg = &r->clk,
	};
	if (arm_client_new(&r->c, r->id, &ao))
		abort();
	r->ref = (struct arm_registry_ref){"sub-1", "rg-1", "myregistry"};
}

static inline void rig_stop(struct rig *r)
{
	arm_client_free(r->c);
	identity_free(r->id);
	canned_stop(&r->s);
}

#define POOL_PATH "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.ContainerRegistry/registries/myregistry/agentPools"
#define POOL_BODY(state, count) "{\"name\":\"p1\",\"location\":\"eastus\",\"properties\":{\"count\":" #count \
	",\"tier\":\"S1\",\"os\":\"Linux\",\"provisioningState\":\"" state "\"}}"

#endif
