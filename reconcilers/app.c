/*
 * app.c: helpers shared by the reconcilers. See app.h.
 */
#include "app.h"

#include "conditions.h"
#include "xalloc.h"

#include <string.h>
#include <time.h>

const struct ctl_gvr gvr_registries = {ACRPOOL_GROUP, ACRPOOL_VERSION_API, "registries"};
const struct ctl_gvr gvr_agentpools = {ACRPOOL_GROUP, ACRPOOL_VERSION_API, "agentpools"};

const char *app_now(char buf[32])
{
	return ctl_time_format((long long)time(NULL), buf);
}

void app_json_set(cJSON *obj, const char *name, cJSON *value)
{
	if (cJSON_HasObjectItem(obj, name))
		cJSON_ReplaceItemInObjectCaseSensitive(obj, name, value);
	else
		cJSON_AddItemToObject(obj, name, value);
}

void app_json_set_str(cJSON *obj, const char *name, const char *value)
{
	if (!value) {
		cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
		return;
	}
	app_json_set(obj, name, cJSON_CreateString(value));
}

void app_json_set_num(cJSON *obj, const char *name, double value)
{
	app_json_set(obj, name, cJSON_CreateNumber(value));
}

bool app_set_state(cJSON *status, enum app_state state, const char *reason, const char *message,
		   long long generation)
{
	char now[32];
	app_now(now);
	const cJSON *before = ctl_conditions_find(status, "Ready");
	const char *old_reason = before ? cJSON_GetStringValue(cJSON_GetObjectItem(before, "reason")) : NULL;
	const char *old_status = before ? cJSON_GetStringValue(cJSON_GetObjectItem(before, "status")) : NULL;
	bool transition = !old_reason || strcmp(old_reason, reason) != 0 ||
			  strcmp(old_status, state == APP_READY ? "True" : "False") != 0;

	struct ctl_condition ready = {"Ready", state == APP_READY ? "True" : "False", reason, message, generation};
	ctl_conditions_set(status, &ready, now);
	if (state == APP_PROGRESSING) {
		struct ctl_condition c = {"Reconciling", "True", reason, message, generation};
		ctl_conditions_set(status, &c, now);
	} else {
		ctl_conditions_remove(status, "Reconciling");
	}
	if (state == APP_STALLED) {
		struct ctl_condition c = {"Stalled", "True", reason, message, generation};
		ctl_conditions_set(status, &c, now);
	} else {
		ctl_conditions_remove(status, "Stalled");
	}
	app_json_set_num(status, "observedGeneration", (double)generation);
	return transition;
}
