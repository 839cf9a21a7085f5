/*
 * Tests for reconcilers/azure.c: the per-registry snapshot is read once
 * however many reconciles want it at the same moment (a resync wakes every
 * pool of a registry at once), a failed read is shared with those who
 * waited for it instead of being repeated by each, and a forced read always
 * goes to Azure. Against the canned loopback server; the managed identity
 * token request is slowed down so the callers pile up behind the first read.
 */
#include "test.h"

#include "canned_http.h"

#include "azure.h"
#include "error.h"
#include "store.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <string.h>

#define CALLERS 4

static const char registry_body[] =
	"{\"id\":\"/subscriptions/sub/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg\","
	"\"name\":\"reg\",\"location\":\"eastus\",\"sku\":{\"name\":\"Premium\",\"tier\":\"Premium\"},"
	"\"properties\":{\"loginServer\":\"reg.azurecr.io\",\"provisioningState\":\"Succeeded\"}}";
static const char pools_body[] =
	"{\"value\":[{\"id\":\"/subscriptions/sub/resourceGroups/rg/providers/Microsoft.ContainerRegistry/"
	"registries/reg/agentPools/p1\",\"name\":\"p1\",\"location\":\"eastus\",\"properties\":{\"count\":2,"
	"\"tier\":\"S1\",\"os\":\"Linux\",\"provisioningState\":\"Succeeded\"}},"
	"{\"id\":\"/subscriptions/sub/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg/"
	"agentPools/big\",\"name\":\"big\",\"location\":\"eastus\",\"properties\":{\"count\":1,"
	"\"tier\":\"I6\",\"os\":\"Linux\",\"provisioningState\":\"Succeeded\"}}]}";
static const char denied_body[] =
	"{\"error\":{\"code\":\"AuthorizationFailed\",\"message\":\"The client does not have authorization.\"}}";

struct fixture {
	struct canned_server srv;
	struct azure *az;
	struct ctl_obj *reg;
	struct azure_conn *conn;
};

static void fixture_start(struct fixture *f)
{
	canned_start(&f->srv);
	struct azure_options o = {
		.arm_endpoint = f->srv.base,
		.authority_host = f->srv.base,
		.imds_endpoint = f->srv.base,
		.snapshot_max_age_ns = 60LL * 1000000000,
	};
	CHECK_INT(azure_new(&f->az, NULL, &o), 0);
	cJSON *j = cJSON_Parse("{\"metadata\":{\"name\":\"r\",\"namespace\":\"ns\",\"generation\":1},"
			       "\"spec\":{\"subscriptionId\":\"sub\",\"resourceGroup\":\"rg\",\"name\":\"reg\","
			       "\"credential\":{\"managedIdentity\":{}}}}");
	CHECK_INT(ctl_obj_new(&f->reg, j), 0);
	CHECK_INT(azure_conn_get(&f->conn, f->az, f->reg), 0);
}

static void fixture_stop(struct fixture *f)
{
	azure_conn_put(f->az, f->conn);
	azure_free(f->az);
	ctl_obj_unref(f->reg);
	canned_stop(&f->srv);
}

struct caller {
	struct fixture *f;
	int rc;
	size_t npools;
	char reason[128];
};

static void *call_get(void *arg)
{
	struct caller *c = arg;
	struct azure_snapshot *s = NULL;
	c->rc = azure_snapshot_get(&s, c->f->az, c->f->conn, "p1", false);
	if (c->rc == 0)
		c->npools = s->npools;
	else
		snprintf(c->reason, sizeof(c->reason), "%s", ctl_error_last()->reason);
	azure_snapshot_free(s);
	return NULL;
}

static void call_together(struct fixture *f, struct caller *c)
{
	pthread_t t[CALLERS];
	for (int i = 0; i < CALLERS; i++) {
		c[i] = (struct caller){.f = f, .rc = 1};
		pthread_create(&t[i], NULL, call_get, &c[i]);
	}
	for (int i = 0; i < CALLERS; i++)
		pthread_join(t[i], NULL);
}

TEST(concurrent_callers_share_one_read)
{
	struct fixture f;
	fixture_start(&f);
	f.srv.token_delay_ms = 300;
	canned_reply(&f.srv, 0, 200, NULL, registry_body);
	canned_reply(&f.srv, 0, 200, NULL, pools_body);
	struct caller c[CALLERS];
	call_together(&f, c);
	for (int i = 0; i < CALLERS; i++) {
		CHECK_INT(c[i].rc, 0);
		CHECK_INT(c[i].npools, 2);
	}
	/* One registry GET and one pool LIST for all four. */
	CHECK_INT(f.srv.narm_requests, 2);
	CHECK(strstr(canned_request(&f.srv, 0, 0), "GET /subscriptions/sub/resourceGroups/rg/providers/"
				    "Microsoft.ContainerRegistry/registries/reg?") != NULL);
	CHECK(strstr(canned_request(&f.srv, 0, 1), "/registries/reg/agentPools?") != NULL);
	CHECK_INT(azure_snapshot_reads(f.az), 1);

	/* Fresh now: served from the cache, as seen by one pool (a copy of
	 * it, the others' vCPU summed) or by the registry (all summed). */
	struct azure_snapshot *s = NULL;
	CHECK_INT(azure_snapshot_get(&s, f.az, f.conn, "P1", false), 0);
	CHECK_INT(s->npools, 2);
	CHECK_STR(s->location, "eastus");
	CHECK(s->pool != NULL);
	CHECK_STR(s->pool ? s->pool->name : NULL, "p1");
	CHECK_INT(s->pool ? s->pool->count : -1, 2);
	/* The snapshot keeps pools compact (the id as the registry's prefix
	 * and the name, shared words); the copy is whole. */
	CHECK_STR(s->pool ? s->pool->id : NULL,
		  "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg/agentPools/p1");
	CHECK_STR(s->pool ? s->pool->location : NULL, "eastus");
	CHECK_STR(s->pool ? s->pool->tier : NULL, "S1");
	CHECK_STR(s->pool ? s->pool->os : NULL, "Linux");
	CHECK_STR(s->pool ? s->pool->provisioning_state : NULL, "Succeeded");
	CHECK_INT(s->standard_vcpu, 0);
	CHECK_INT(s->isolated_vcpu, 64);
	azure_snapshot_free(s);
	CHECK_INT(azure_snapshot_get(&s, f.az, f.conn, NULL, false), 0);
	CHECK(s->pool == NULL);
	CHECK_INT(s->standard_vcpu, 4);
	CHECK_INT(s->isolated_vcpu, 64);
	azure_snapshot_free(s);
	CHECK_INT(azure_snapshot_get(&s, f.az, f.conn, "absent", false), 0);
	CHECK(s->pool == NULL);
	CHECK_INT(s->standard_vcpu, 4);
	azure_snapshot_free(s);
	CHECK_INT(f.srv.narm_requests, 2);

	/* What a reconcile learns is folded in, and the sums with it (names
	 * compare case-blind): p1 scaled to 3, a new S1 pool of 1, big gone. */
	struct arm_agent_pool p1 = {.name = "p1", .tier = "S1", .count = 3};
	struct arm_agent_pool p2 = {.name = "P2", .tier = "S1", .count = 1, .location = "westus",
				    .id = "/subscriptions/SUB/resourceGroups/rg/providers/Microsoft.ContainerRegistry/"
					  "registries/reg/agentPools/P2"};
	azure_snapshot_note_pool(f.az, f.conn, "P1", &p1);
	azure_snapshot_note_pool(f.az, f.conn, "p2", &p2);
	azure_snapshot_note_pool(f.az, f.conn, "BIG", NULL);
	CHECK_INT(azure_snapshot_get(&s, f.az, f.conn, NULL, false), 0);
	CHECK_INT(s->npools, 2);
	CHECK_INT(s->standard_vcpu, 8); /* S1 is 2 vCPU: 3 + 1 instances */
	CHECK_INT(s->isolated_vcpu, 0);
	azure_snapshot_free(s);
	CHECK_INT(azure_snapshot_get(&s, f.az, f.conn, "p2", false), 0);
	CHECK_STR(s->pool ? s->pool->name : NULL, "P2");
	/* An id that is not the prefix and the name is kept as it came. */
	CHECK_STR(s->pool ? s->pool->id : NULL,
		  "/subscriptions/SUB/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg/agentPools/P2");
	CHECK_STR(s->pool ? s->pool->location : NULL, "westus");
	CHECK_INT(s->standard_vcpu, 6);
	azure_snapshot_free(s);
	CHECK_INT(f.srv.narm_requests, 2);

	/* Forced: read again even though it is fresh. */
	canned_reply(&f.srv, 0, 200, NULL, registry_body);
	canned_reply(&f.srv, 0, 200, NULL, "{\"value\":[]}");
	CHECK_INT(azure_snapshot_get(&s, f.az, f.conn, NULL, true), 0);
	CHECK_INT(s->npools, 0);
	azure_snapshot_free(s);
	CHECK_INT(f.srv.narm_requests, 4);
	fixture_stop(&f);
}

TEST(failed_read_is_shared_then_retried)
{
	struct fixture f;
	fixture_start(&f);
	f.srv.token_delay_ms = 300;
	canned_reply(&f.srv, 0, 403, NULL, denied_body);
	struct caller c[CALLERS];
	call_together(&f, c);
	for (int i = 0; i < CALLERS; i++) {
		CHECK_INT(c[i].rc, CTL_EAUTH);
		CHECK_STR(c[i].reason, "AuthorizationFailed");
	}
	/* Azure refused once; nobody asked again on the same breath. */
	CHECK_INT(f.srv.narm_requests, 1);

	/* The next caller, later, reads again and succeeds. */
	canned_reply(&f.srv, 0, 200, NULL, registry_body);
	canned_reply(&f.srv, 0, 200, NULL, pools_body);
	struct azure_snapshot *s = NULL;
	CHECK_INT(azure_snapshot_get(&s, f.az, f.conn, NULL, false), 0);
	CHECK_INT(s->npools, 2);
	azure_snapshot_free(s);
	CHECK_INT(f.srv.narm_requests, 3);
	fixture_stop(&f);
}

/* Words pools share are kept once, up to a bound; past it each pool keeps
 * its own, and every copy handed out is whole (ASan sees a double free or
 * a leak of either kind). */
TEST(snapshot_pools_share_words_up_to_a_bound)
{
	struct fixture f;
	fixture_start(&f);
	canned_reply(&f.srv, 0, 200, NULL, registry_body);
	canned_reply(&f.srv, 0, 200, NULL, pools_body);
	struct azure_snapshot *s = NULL;
	CHECK_INT(azure_snapshot_get(&s, f.az, f.conn, NULL, false), 0);
	azure_snapshot_free(s);
	char name[32], location[32];
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 400; i++) {
			snprintf(name, sizeof(name), "p%03d", i);
			snprintf(location, sizeof(location), "region%03d", i);
			struct arm_agent_pool p = {.name = name, .tier = "S1", .os = "Linux", .count = 1,
						   .location = location, .provisioning_state = "Succeeded"};
			azure_snapshot_note_pool(f.az, f.conn, name, &p);
		}
	}
	for (int i = 0; i < 400; i += 57) {
		snprintf(name, sizeof(name), "p%03d", i);
		snprintf(location, sizeof(location), "region%03d", i);
		CHECK_INT(azure_snapshot_get(&s, f.az, f.conn, name, false), 0);
		CHECK_STR(s->pool ? s->pool->location : NULL, location);
		CHECK_STR(s->pool ? s->pool->tier : NULL, "S1");
		azure_snapshot_free(s);
	}
	azure_snapshot_note_pool(f.az, f.conn, "p399", NULL);
	CHECK_INT(azure_snapshot_get(&s, f.az, f.conn, NULL, false), 0);
	CHECK_INT(s->npools, 401); /* p1 and big from the list, 398 noted */
	azure_snapshot_free(s);
	fixture_stop(&f);
}

TEST_MAIN(T(concurrent_callers_share_one_read), T(failed_read_is_shared_then_retried),
	  T(snapshot_pools_share_words_up_to_a_bound))
