/*
 * testctl: the smallest controller built on the runtime, for its
 * end-to-end tests. It watches Widgets (test.acrpool.dev/v1), keeps a
 * finalizer on them, copies spec.value to status.observedValue with a Ready
 * condition, records an Event when it does, and releases the finalizer on
 * deletion. Everything the runtime promises (no lost events across an API
 * server restart, relist after 410, leader failover, token rotation, clean
 * SIGTERM) is observable through it.
 *
 *   testctl [--kubeconfig F] [--namespace NS] [--identity ID]
 *           [--leader-elect --lease-namespace NS] [--metrics-address A]
 *           [--health-address A] [--workers N]
 */
#include "conditions.h"
#include "controller.h"
#include "error.h"
#include "informer.h"
#include "kube.h"
#include "log.h"
#include "manager.h"
#include "objects.h"
#include "queue.h"
#include "recorder.h"
#include "xalloc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FINALIZER "test.acrpool.dev/cleanup"

static const struct ctl_gvr widgets = {"test.acrpool.dev", "v1", "widgets"};

struct app {
	struct ctl_kube_client *client;
	struct ctl_informer *informer;
	struct ctl_controller *controller;
	struct ctl_recorder *recorder;
	const char *identity;
};

static int reconcile(void *ctx, const char *key, struct ctl_result *out)
{
	struct app *a = ctx;
	struct ctl_obj *obj = NULL;
	cJSON *status = NULL;
	int rc = 0;
	(void)out;
	if (ctl_store_get(&obj, ctl_informer_store(a->informer), key) == CTL_ENOTFOUND)
		return 0; /* gone: the finalizer saw to it */
	if (obj->deleting) {
		rc = ctl_finalizer_remove(a->client, &widgets, obj, FINALIZER);
		goto done;
	}
	if (!ctl_finalizer_has(obj, FINALIZER)) {
		/* The update wakes us again through the watch. */
		rc = ctl_finalizer_add(a->client, &widgets, obj, FINALIZER);
		goto done;
	}
	const char *value = ctl_obj_string(obj, "spec.value");
	char now[32];
	status = ctl_status_copy(obj);
	cJSON_DeleteItemFromObject(status, "observedValue");
	cJSON_AddStringToObject(status, "observedValue", value ? value : "");
	cJSON_DeleteItemFromObject(status, "observedGeneration");
	cJSON_AddNumberToObject(status, "observedGeneration", (double)obj->generation);
	struct ctl_condition ready = {"Ready", "True", "Reconciled", "value copied", obj->generation};
	ctl_conditions_set(status, &ready, ctl_time_format((long long)time(NULL), now));
	bool wrote = false;
	if ((rc = ctl_status_write(a->client, &widgets, obj, status, &wrote)) != 0)
		goto done;
	if (wrote) {
		cJSON_DeleteItemFromObject(status, "reconciledBy");
		ctl_recorder_event(a->recorder, obj, "Normal", "Reconciled", "Reconcile", "observed value \"%s\" (by %s)",
				   value ? value : "", a->identity);
	}
done:
	cJSON_Delete(status);
	ctl_obj_unref(obj);
	return rc;
}

static int list_keys(void *ctx, ctl_key_fn each, void *ud)
{
	struct app *a = ctx;
	char **keys;
	size_t n;
	ctl_store_keys(&keys, &n, ctl_informer_store(a->informer));
	for (size_t i = 0; i < n; i++)
		each(keys[i], ud);
	ctl_store_keys_free(keys, n);
	return 0;
}

static void on_add(const char *key, const struct ctl_obj *obj, void *arg)
{
	(void)obj;
	ctl_queue_add(ctl_controller_queue(((struct app *)arg)->controller), key);
}

static void on_update(const char *key, const struct ctl_obj *old, const struct ctl_obj *obj, void *arg)
{
	(void)old;
	on_add(key, obj, arg);
}

static void on_delete(const char *key, const struct ctl_obj *old, void *arg)
{
	on_add(key, old, arg);
}

struct sigctx {
	sigset_t set;
	struct ctl_manager *m;
};

static void *signal_thread(void *arg)
{
	struct sigctx *s = arg;
	int sig;
	if (sigwait(&s->set, &sig) == 0 && sig != SIGUSR1) {
		ctl_log(CTL_LOG_INFO, "signal received; shutting down", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
		ctl_manager_stop(s->m);
	}
	return NULL;
}

static const char *arg_value(int argc, char **argv, const char *name, const char *def)
{
	for (int i = 1; i < argc - 1; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return def;
}

static bool arg_flag(int argc, char **argv, const char *name)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return true;
	return false;
}

int main(int argc, char **argv)
{
	struct app a = {0};
	struct ctl_kubeconfig *cfg = NULL;
	struct ctl_manager *m = NULL;
	int rc;

	/* Signals are taken by one thread with sigwait; block them before any
	 * other thread exists so every thread inherits the mask. */
	struct sigctx sc;
	sigemptyset(&sc.set);
	sigaddset(&sc.set, SIGTERM);
	sigaddset(&sc.set, SIGINT);
	sigaddset(&sc.set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sc.set, NULL);
	curl_global_init(CURL_GLOBAL_DEFAULT);

	const char *kubeconfig = arg_value(argc, argv, "--kubeconfig", NULL);
	const char *ns = arg_value(argc, argv, "--namespace", NULL);
	a.identity = arg_value(argc, argv, "--identity", "testctl");
	if ((rc = ctl_kubeconfig_auto(&cfg, kubeconfig, NULL)) != 0 ||
	    (rc = ctl_kube_client_new(&a.client, cfg)) != 0) {
		ctl_log(CTL_LOG_ERROR, "cannot load kube config", "error", ctl_error_last()->message, NULL);
		return 2;
	}
	struct ctl_manager_opts mo = {
		.metrics_address = arg_value(argc, argv, "--metrics-address", "127.0.0.1:0"),
		.health_address = arg_value(argc, argv, "--health-address", "127.0.0.1:0"),
		.grace_period_ns = 10 * CTL_SEC,
		.leader_elect = arg_flag(argc, argv, "--leader-elect"),
		.leader = {
			.namespace = arg_value(argc, argv, "--lease-namespace", "default"),
			.name = "testctl",
			.identity = a.identity,
			.lease_duration_ns = atoi(arg_value(argc, argv, "--lease-seconds", "15")) * CTL_SEC,
			.renew_deadline_ns = atoi(arg_value(argc, argv, "--renew-seconds", "10")) * CTL_SEC,
			.retry_period_ns = 2 * CTL_SEC,
		},
	};
	if ((rc = ctl_manager_new(&m, a.client, &mo)) != 0) {
		ctl_log(CTL_LOG_ERROR, "cannot create manager", "error", ctl_error_last()->message, NULL);
		return 2;
	}
	struct ctl_recorder_opts ro = {.controller = "test.acrpool.dev/testctl", .instance = a.identity};
	ctl_recorder_new(&a.recorder, a.client, &ro);
	static const struct ctl_reconciler rec = {"widget", reconcile, list_keys};
	struct ctl_controller_opts co = {
		.workers = atoi(arg_value(argc, argv, "--workers", "2")),
		.resync_period_ns = 60 * CTL_SEC,
		.grace_period_ns = 10 * CTL_SEC,
		.metrics = ctl_manager_metrics(m),
	};
	ctl_controller_new(&a.controller, &rec, &a, &co);
	const char *nss[] = {ns, NULL};
	struct ctl_informer_opts io = {.gvr = widgets, .namespaces = ns ? nss : NULL,
				       .timeout_seconds = atoi(arg_value(argc, argv, "--watch-timeout", "0"))};
	struct ctl_informer_handlers h = {on_add, on_update, on_delete, &a};
	ctl_informer_new(&a.informer, a.client, &io, &h);
	ctl_manager_add_informer(m, "widgets", a.informer);
	ctl_manager_add_controller(m, a.controller);

	pthread_t st;
	sc.m = m;
	pthread_create(&st, NULL, signal_thread, &sc);
	rc = ctl_manager_run(m);
	if (rc == CTL_ECONFLICT)
		_exit(1); /* lost the lease: leave now, touch nothing */
	/* Wake the signal thread if run ended for another reason. */
	pthread_kill(st, SIGUSR1);
	pthread_join(st, NULL);
	ctl_manager_free(m);
	ctl_recorder_free(a.recorder);
	ctl_kube_client_free(a.client);
	curl_global_cleanup();
	ctl_log(CTL_LOG_INFO, "exited", NULL);
	return rc == 0 ? 0 : 1;
}
