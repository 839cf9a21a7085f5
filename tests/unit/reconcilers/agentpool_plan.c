/* Unit tests for reconcilers/agentpool_plan.c: (desired, observed) -> action. */
#include "test.h"

#include "agentpool_plan.h"

static struct agentpool_desired desired(void)
{
	return (struct agentpool_desired){
		.azure_name = "myagentpool", .tier = "S2", .os = "Linux", .count = 1,
		.tags_json = "{}", .drain_timeout_s = 1800,
	};
}

static struct agentpool_observed premium_registry(void)
{
	return (struct agentpool_observed){
		.registry_found = true, .registry_premium = true, .queued_runs = 0,
		.quota_standard_vcpu = 16, .quota_isolated_vcpu = 0, .now = 1000000,
	};
}

static struct agentpool_observed pool(const char *tier, int count, const char *state, bool owned)
{
	struct agentpool_observed o = premium_registry();
	o.pool_found = true;
	o.tier = tier;
	o.os = "Linux";
	o.count = count;
	o.provisioning_state = state;
	o.owned = owned;
	o.tags_json = "{}";
	return o;
}

static struct agentpool_action plan(struct agentpool_desired d, struct agentpool_observed o)
{
	struct agentpool_action a;
	agentpool_plan(&d, &o, &a);
	return a;
}

#define EXPECT(a, k, r) do { \
	CHECK_STR(agentpool_action_name((a).kind), agentpool_action_name(k)); \
	CHECK_STR((a).reason, r); \
} while (0)

TEST(plan_creates_missing_pool)
{
	struct agentpool_action a = plan(desired(), premium_registry());
	EXPECT(a, AGENTPOOL_CREATE, "Creating");
}

TEST(plan_stalls_on_missing_or_basic_registry)
{
	struct agentpool_observed o = premium_registry();
	o.registry_found = false;
	EXPECT(plan(desired(), o), AGENTPOOL_STALL, "RegistryNotFound");
	o = premium_registry();
	o.registry_premium = false;
	struct agentpool_action a = plan(desired(), o);
	EXPECT(a, AGENTPOOL_STALL, "RegistryNotPremium");
	CHECK(strstr(a.message, "Premium") != NULL);
}

TEST(plan_quota_blocks_create_before_any_write)
{
	struct agentpool_desired d = desired();
	d.count = 3; /* 12 vCPU */
	struct agentpool_observed o = premium_registry();
	o.other_standard_vcpu = 8; /* someone else's pools */
	struct agentpool_action a = plan(d, o);
	EXPECT(a, AGENTPOOL_STALL, "QuotaExceeded");
	CHECK(strstr(a.message, "12") != NULL && strstr(a.message, "16") != NULL);
	o.quota_standard_vcpu = 20;
	EXPECT(plan(d, o), AGENTPOOL_CREATE, "Creating");
}

TEST(plan_isolated_tier_needs_isolated_quota)
{
	struct agentpool_desired d = desired();
	d.tier = "I6";
	EXPECT(plan(d, premium_registry()), AGENTPOOL_STALL, "QuotaExceeded");
	struct agentpool_observed o = premium_registry();
	o.quota_isolated_vcpu = 64;
	EXPECT(plan(d, o), AGENTPOOL_CREATE, "Creating");
}

TEST(plan_waits_while_azure_operation_in_flight)
{
	EXPECT(plan(desired(), pool("S2", 1, "Creating", true)), AGENTPOOL_WAIT, "Creating");
	EXPECT(plan(desired(), pool("S2", 1, "Updating", true)), AGENTPOOL_WAIT, "Updating");
}

TEST(plan_in_sync_is_noop)
{
	EXPECT(plan(desired(), pool("S2", 1, "Succeeded", true)), AGENTPOOL_NOOP, "Succeeded");
	/* Azure answers enums in its own case; "s2" is the same tier. */
	EXPECT(plan(desired(), pool("s2", 1, "Succeeded", true)), AGENTPOOL_NOOP, "Succeeded");
}

TEST(plan_scales_up_and_down_and_to_zero)
{
	struct agentpool_desired d = desired();
	d.count = 2;
	struct agentpool_action a = plan(d, pool("S2", 1, "Succeeded", true));
	EXPECT(a, AGENTPOOL_UPDATE, "Scaling");
	CHECK(a.scale_up);
	d.count = 0;
	a = plan(d, pool("S2", 2, "Succeeded", true));
	EXPECT(a, AGENTPOOL_UPDATE, "Scaling");
	CHECK(!a.scale_up);
}

TEST(plan_quota_blocks_scale_up_not_scale_down)
{
	struct agentpool_desired d = desired();
	struct agentpool_observed o = pool("S2", 4, "Succeeded", true);
	o.other_standard_vcpu = 4;
	d.count = 5;
	EXPECT(plan(d, o), AGENTPOOL_STALL, "QuotaExceeded");
	d.count = 3;
	EXPECT(plan(d, o), AGENTPOOL_UPDATE, "Scaling");
}

TEST(plan_updates_tags_only_when_managed)
{
	struct agentpool_desired d = desired();
	struct agentpool_observed o = pool("S2", 1, "Succeeded", true);
	o.tags_json = "{\"policy\":\"added\"}";
	EXPECT(plan(d, o), AGENTPOOL_NOOP, "Succeeded");
	d.manage_tags = true;
	d.tags_json = "{\"owner\":\"team-a\"}";
	EXPECT(plan(d, o), AGENTPOOL_UPDATE, "Updating");
}

TEST(plan_adopts_matching_pool_without_write)
{
	EXPECT(plan(desired(), pool("S2", 1, "Succeeded", false)), AGENTPOOL_ADOPT, "Adopted");
}

TEST(plan_conflicting_pool_is_stalled_never_touched)
{
	struct agentpool_action a = plan(desired(), pool("S3", 1, "Succeeded", false));
	EXPECT(a, AGENTPOOL_STALL, "ConflictingPool");
	CHECK(strstr(a.message, "tier") != NULL);
	struct agentpool_desired d = desired();
	d.subnet_id = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/virtualNetworks/v/subnets/a";
	EXPECT(plan(d, pool("S2", 1, "Succeeded", false)), AGENTPOOL_STALL, "ConflictingPool");
}

TEST(plan_subnet_id_compared_without_case)
{
	struct agentpool_desired d = desired();
	d.subnet_id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/a";
	struct agentpool_observed o = pool("S2", 1, "Succeeded", true);
	o.subnet_id = "/subscriptions/s/resourcegroups/RG/providers/microsoft.network/virtualnetworks/v/subnets/a";
	EXPECT(plan(d, o), AGENTPOOL_NOOP, "Succeeded");
}

TEST(plan_recreate_drains_then_deletes)
{
	struct agentpool_desired d = desired();
	d.tier = "S3";
	d.recreate = true;
	struct agentpool_observed o = pool("S2", 1, "Succeeded", true);
	o.queued_runs = 2;
	struct agentpool_action a = plan(d, o);
	EXPECT(a, AGENTPOOL_DRAIN, "Draining");
	CHECK(a.recreating);
	o.drain_started = o.now - 1800; /* the bound is reached */
	a = plan(d, o);
	EXPECT(a, AGENTPOOL_DELETE, "Recreating");
	CHECK(strstr(a.message, "drain timeout") != NULL);
	o.queued_runs = 0;
	o.drain_started = 0;
	EXPECT(plan(d, o), AGENTPOOL_DELETE, "Recreating");
}

TEST(plan_immutable_change_without_recreate_stalls)
{
	struct agentpool_desired d = desired();
	d.tier = "S3";
	EXPECT(plan(d, pool("S2", 1, "Succeeded", true)), AGENTPOOL_STALL, "ImmutableFieldChanged");
}

TEST(plan_failed_pool_stalls)
{
	EXPECT(plan(desired(), pool("S2", 1, "Failed", true)), AGENTPOOL_STALL, "ProvisioningFailed");
}

TEST(plan_delete_paths)
{
	struct agentpool_desired d = desired();
	d.deleting = true;
	EXPECT(plan(d, pool("S2", 1, "Succeeded", true)), AGENTPOOL_DELETE, "Deleting");
	EXPECT(plan(d, pool("S2", 1, "Creating", true)), AGENTPOOL_WAIT, "Deleting");
	EXPECT(plan(d, pool("S2", 1, "Deleting", true)), AGENTPOOL_WAIT, "Deleting");
	EXPECT(plan(d, premium_registry()), AGENTPOOL_RELEASE, "Deleted");
	EXPECT(plan(d, pool("S3", 1, "Succeeded", false)), AGENTPOOL_RELEASE, "NotOwned");
	struct agentpool_observed gone = premium_registry();
	gone.registry_found = false;
	EXPECT(plan(d, gone), AGENTPOOL_RELEASE, "RegistryGone");
	d.orphan = true;
	EXPECT(plan(d, pool("S2", 1, "Succeeded", true)), AGENTPOOL_RELEASE, "Orphaned");
}

TEST(plan_tier_table)
{
	bool iso = true;
	CHECK_INT(agentpool_tier_vcpu("S1", &iso), 2);
	CHECK(!iso);
	CHECK_INT(agentpool_tier_vcpu("s3", NULL), 8);
	CHECK_INT(agentpool_tier_vcpu("I6", &iso), 64);
	CHECK(iso);
	CHECK_INT(agentpool_tier_vcpu("X9", NULL), 0);
	CHECK_INT(agentpool_tier_vcpu(NULL, NULL), 0);
}

TEST_MAIN(T(plan_creates_missing_pool), T(plan_stalls_on_missing_or_basic_registry),
	  T(plan_quota_blocks_create_before_any_write), T(plan_isolated_tier_needs_isolated_quota),
	  T(plan_waits_while_azure_operation_in_flight), T(plan_in_sync_is_noop),
	  T(plan_scales_up_and_down_and_to_zero), T(plan_quota_blocks_scale_up_not_scale_down),
	  T(plan_updates_tags_only_when_managed), T(plan_adopts_matching_pool_without_write),
	  T(plan_conflicting_pool_is_stalled_never_touched), T(plan_subnet_id_compared_without_case),
	  T(plan_recreate_drains_then_deletes), T(plan_immutable_change_without_recreate_stalls),
	  T(plan_failed_pool_stalls), T(plan_delete_paths), T(plan_tier_table))
