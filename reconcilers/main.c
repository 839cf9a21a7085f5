/*
 * main.c: acrpool-controller, the operator binary.
 *
 * Wiring only: parse flags, connect to the API server, build the shared
 * context, hand informers and controllers to the manager, run it until
 * SIGTERM (or lost leadership), then tear down in reverse.
 */
#include "app.h"
#include "conditions.h"
#include "error.h"
#include "log.h"
#include "manager.h"
#include "objects.h"
#include "options.h"
#include "queue.h"
#include "xalloc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Informer handlers: level-based, they only enqueue keys. A change to a
 * Registry concerns every AgentPool that references it (quota, Premium,
 * credentials); a change to an AgentPool concerns its Registry's vCPU
 * figures. */
static void enqueue_keys(struct ctl_controller *ctl, char **keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ctl_queue_add(ctl_controller_queue(ctl), keys[i]);
	ctl_store_keys_free(keys, n);
}

/* Enqueue every object of informer inf in ctl whose indexed field (see
 * main: ctl_store_add_index) names `name` in namespace ns. The store keeps
 * the field beside each object, so this parses nothing. */
static void enqueue_referrers(struct ctl_informer *inf, struct ctl_controller *ctl, int index, const char *ns,
			      const char *name)
{
	char **keys;
	size_t n;
	ctl_store_find_keys(&keys, &n, ctl_informer_store(inf), index, ns, name);
	enqueue_keys(ctl, keys, n);
}

static void enqueue_pools_of_registry(struct app *a, const struct ctl_obj *reg)
{
	enqueue_referrers(a->agentpools, a->agentpool_ctl, a->ix_pool_registry, reg->namespace, reg->name);
}

static void registry_changed(const char *key, const struct ctl_obj *obj, void *arg)
{
	struct app *a = arg;
	ctl_queue_add(ctl_controller_queue(a->registry_ctl), key);
	if (obj) {
		enqueue_pools_of_registry(a, obj);
		enqueue_referrers(a->tasks, a->task_ctl, a->ix_task_registry, obj->namespace, obj->name);
		enqueue_referrers(a->taskruns, a->taskrun_ctl, a->ix_run_registry, obj->namespace, obj->name);
		enqueue_referrers(a->pipelineagentpools, a->pipelineagentpool_ctl, a->ix_pap_registry, obj->namespace,
				  obj->name);
	}
}

static void registry_add(const char *key, const struct ctl_obj *obj, void *arg)
{
	registry_changed(key, obj, arg);
}

static void registry_update(const char *key, const struct ctl_obj *old, const struct ctl_obj *obj, void *arg)
{
	(void)old;
	/* Our own status writes on the Registry must not stir every pool:
	 * only a spec change (generation) concerns them. */
	struct app *a = arg;
	if (!obj->own_write)
		ctl_queue_add(ctl_controller_queue(a->registry_ctl), key);
	if (!old || old->generation != obj->generation) {
		enqueue_pools_of_registry(a, obj);
		enqueue_referrers(a->tasks, a->task_ctl, a->ix_task_registry, obj->namespace, obj->name);
		enqueue_referrers(a->taskruns, a->taskrun_ctl, a->ix_run_registry, obj->namespace, obj->name);
	}
	/* PipelineAgentPools pull their image from the registry's login
	 * server, which the Registry's status says (our own write). */
	const char *was = old ? ctl_obj_string(old, "status.loginServer") : NULL;
	const char *now = ctl_obj_string(obj, "status.loginServer");
	if ((was == NULL) != (now == NULL) || (was && now && strcmp(was, now) != 0))
		enqueue_referrers(a->pipelineagentpools, a->pipelineagentpool_ctl, a->ix_pap_registry, obj->namespace,
				  obj->name);
}

static void registry_delete(const char *key, const struct ctl_obj *old, void *arg)
{
	registry_changed(key, old, arg);
}

/* Tasks and build TaskRuns wait for their pool to be Ready and use its
 * Azure name. */
static void enqueue_pool_users(struct app *a, const struct ctl_obj *pool)
{
	enqueue_referrers(a->tasks, a->task_ctl, a->ix_task_pool, pool->namespace, pool->name);
	enqueue_referrers(a->taskruns, a->taskrun_ctl, a->ix_run_pool, pool->namespace, pool->name);
}

static bool ready_moved(const struct ctl_obj *old, const struct ctl_obj *obj)
{
	if (!old || !obj)
		return true;
	bool ro = ctl_conditions_is_true(ctl_obj_field(old, "status"), "Ready");
	bool rn = ctl_conditions_is_true(ctl_obj_field(obj, "status"), "Ready");
	return ro != rn || old->deleting != obj->deleting;
}

/* How long a Registry's vCPU figures may trail its pools' counts: every
 * pool change within it comes to one Registry reconcile and one status
 * write, not one per pool, during a rollout of thousands. At 1 s a rollout
 * of 10,000 pools over 10 registries still cost 0.1 status writes a pool
 * (BENCHMARKS.md); 5 s is a fifth of that, and a summary figure that
 * trails by seconds misleads nobody. */
#define REGISTRY_COALESCE_NS (5000LL * 1000000)

/* Is the field equal (or absent) in both? (cJSON_Compare calls two
 * absent fields different.) */
static bool same_field(const struct ctl_obj *a, const struct ctl_obj *b, const char *path)
{
	const cJSON *x = ctl_obj_field(a, path), *y = ctl_obj_field(b, path);
	return (!x && !y) || cJSON_Compare(x, y, true);
}

/* Does a change to a pool need a pass of its own? Not the answer to the
 * pool reconciler's own write (the pass that wrote it acted on all it
 * says), and not a change of status alone: the reconciler acts on the
 * spec (the generation moves with it), the deletion and its own finalizer;
 * a person's label or annotation change is the usual way to ask an
 * operator to look again, so it counts too. Nothing else does, and the
 * resync covers the rest. So the watch event of our own write, when it
 * beats the API server's answer to us, does not wake the pool twice. */
static bool pool_needs_pass(const struct ctl_obj *old, const struct ctl_obj *obj)
{
	if (!old || !obj)
		return true;
	if (obj->own_write)
		return false;
	return old->generation != obj->generation || old->deleting != obj->deleting ||
	       (!obj->deleting && !ctl_finalizer_has(obj, ACRPOOL_FINALIZER)) ||
	       !same_field(old, obj, "metadata.annotations") || !same_field(old, obj, "metadata.labels");
}

/* Its users and its Registry hear of a pool that came, went or changed
 * its count. */
static void pool_moved(struct app *a, const struct ctl_obj *obj)
{
	enqueue_pool_users(a, obj);
	const char *ref = ctl_obj_string(obj, "spec.registryRef.name");
	if (ref) {
		char *rk = ctl_obj_key(obj->namespace, ref);
		ctl_queue_add_after(ctl_controller_queue(a->registry_ctl), rk, REGISTRY_COALESCE_NS);
		free(rk);
	}
}

static void pool_add(const char *key, const struct ctl_obj *obj, void *arg)
{
	struct app *a = arg;
	ctl_queue_add(ctl_controller_queue(a->agentpool_ctl), key);
	pool_moved(a, obj);
}

static void pool_update(const char *key, const struct ctl_obj *old, const struct ctl_obj *obj, void *arg)
{
	struct app *a = arg;
	if (pool_needs_pass(old, obj))
		ctl_queue_add(ctl_controller_queue(a->agentpool_ctl), key);
	/* The Registry's vCPU figures follow the pools' counts in status. */
	if (!same_field(old, obj, "status.count"))
		pool_moved(a, obj);
	else if (ready_moved(old, obj))
		enqueue_pool_users(a, obj);
}

static void pool_delete(const char *key, const struct ctl_obj *old, void *arg)
{
	struct app *a = arg;
	ctl_queue_add(ctl_controller_queue(a->agentpool_ctl), key);
	if (old)
		pool_moved(a, old);
}

/* A PipelineAgentPool: a pass when its spec, deletion or finalizer moved
 * (not for our own status writes). */
static void pap_add(const char *key, const struct ctl_obj *obj, void *arg)
{
	(void)obj;
	struct app *a = arg;
	ctl_queue_add(ctl_controller_queue(a->pipelineagentpool_ctl), key);
}

static void pap_update(const char *key, const struct ctl_obj *old, const struct ctl_obj *obj, void *arg)
{
	struct app *a = arg;
	if (pool_needs_pass(old, obj))
		ctl_queue_add(ctl_controller_queue(a->pipelineagentpool_ctl), key);
}

static void pap_delete(const char *key, const struct ctl_obj *old, void *arg)
{
	(void)old;
	struct app *a = arg;
	ctl_queue_add(ctl_controller_queue(a->pipelineagentpool_ctl), key);
}

/* A Task's readiness and Azure id concern the TaskRuns that run it. */
static void task_add(const char *key, const struct ctl_obj *obj, void *arg)
{
	struct app *a = arg;
	ctl_queue_add(ctl_controller_queue(a->task_ctl), key);
	enqueue_referrers(a->taskruns, a->taskrun_ctl, a->ix_run_task, obj->namespace, obj->name);
}

static void task_update(const char *key, const struct ctl_obj *old, const struct ctl_obj *obj, void *arg)
{
	struct app *a = arg;
	ctl_queue_add(ctl_controller_queue(a->task_ctl), key);
	if (ready_moved(old, obj))
		enqueue_referrers(a->taskruns, a->taskrun_ctl, a->ix_run_task, obj->namespace, obj->name);
}

static void task_delete(const char *key, const struct ctl_obj *old, void *arg)
{
	struct app *a = arg;
	ctl_queue_add(ctl_controller_queue(a->task_ctl), key);
	if (old)
		enqueue_referrers(a->taskruns, a->taskrun_ctl, a->ix_run_task, old->namespace, old->name);
}

/* A TaskRun's run moving concerns its Task's status.lastRun. */
static void taskrun_add(const char *key, const struct ctl_obj *obj, void *arg)
{
	struct app *a = arg;
	(void)obj;
	ctl_queue_add(ctl_controller_queue(a->taskrun_ctl), key);
}

static void taskrun_update(const char *key, const struct ctl_obj *old, const struct ctl_obj *obj, void *arg)
{
	struct app *a = arg;
	ctl_queue_add(ctl_controller_queue(a->taskrun_ctl), key);
	const char *task = ctl_obj_string(obj, "spec.taskRef.name");
	const char *os = old ? ctl_obj_string(old, "status.runStatus") : NULL;
	const char *ns = ctl_obj_string(obj, "status.runStatus");
	if (task && (!os || !ns || strcmp(os, ns) != 0)) {
		char *tk = ctl_obj_key(obj->namespace, task);
		ctl_queue_add(ctl_controller_queue(a->task_ctl), tk);
		free(tk);
	}
}

static void taskrun_delete(const char *key, const struct ctl_obj *old, void *arg)
{
	struct app *a = arg;
	(void)old;
	ctl_queue_add(ctl_controller_queue(a->taskrun_ctl), key);
}


static void kube_metrics(const char *verb, const char *resource, const char *host, long status, double seconds,
			 void *arg)
{
	(void)resource;
	if (!strcmp(verb, "WATCH"))
		return; /* a watch's duration is not a latency */
	char code[16];
	snprintf(code, sizeof(code), "%ld", status);
	ctl_metrics_rest_client_observe(arg, host, verb, status ? code : "<error>", seconds);
}

struct azure_metrics {
	struct ctl_metric *requests, *latency;
};

static void arm_metrics(const char *method, const char *operation, long status, double seconds, void *arg)
{
	struct azure_metrics *m = arg;
	char code[16];
	snprintf(code, sizeof(code), "%ld", status);
	const char *labels[] = {operation, method, status ? code : "<error>", NULL};
	ctl_metric_inc(m->requests, labels);
	const char *hl[] = {operation, NULL};
	ctl_metric_observe(m->latency, hl, seconds);
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
		ctl_log(CTL_LOG_INFO, "signal received; shutting down", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT",
			NULL);
		ctl_manager_stop(s->m);
	}
	return NULL;
}

static char *split_namespaces(const char *list, const char ***out)
{
	char *copy = xstrdup(list ? list : "");
	size_t n = 0;
	const char **v = xcalloc(strlen(copy) / 2 + 2, sizeof(*v));
	for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		if (*tok)
			v[n++] = tok;
	}
	v[n] = NULL;
	*out = v;
	return copy;
}

int main(int argc, char **argv)
{
	struct options opts;
	struct app a = {.opts = &opts};
	struct ctl_kubeconfig *cfg = NULL;
	struct ctl_manager *m = NULL;
	struct azure_metrics am = {0};
	const char **namespaces = NULL;
	char *ns_buf = NULL;
	int rc = 1;

	/* glibc gives each of our ~27 threads its own malloc arena, and free
	 * chunks scattered over them stay resident: at 10,000 pools two arenas
	 * hold 7 to 9 MiB less than the default (BENCHMARKS.md), and the
	 * workers spend their time in I/O, not in malloc. */
	mallopt(M_ARENA_MAX, 2);
	/* No fastbins (tcache still serves small sizes per thread): every
	 * large request first consolidated the fastbins a JSON parse filled,
	 * and at 10,000 pools malloc_consolidate and _int_malloc were a sixth
	 * of the operator's CPU; without them the rollout took 8% less CPU. */
	mallopt(M_MXFAST, 0);

	/* Signals go to one thread that sigwaits; block them before any
	 * thread exists so all inherit the mask. */
	struct sigctx sc;
	sigemptyset(&sc.set);
	sigaddset(&sc.set, SIGTERM);
	sigaddset(&sc.set, SIGINT);
	sigaddset(&sc.set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sc.set, NULL);

	if (options_parse(&opts, argc, argv, NULL) != 0) {
		fprintf(stderr, "acrpool-controller: %s\n", ctl_error_last()->message);
		options_dispose(&opts);
		return 2;
	}
	if (opts.show_help) {
		fputs(options_usage(), stdout);
		options_dispose(&opts);
		return 0;
	}
	if (opts.show_version) {
		printf("acrpool-controller %s\n", ACRPOOL_VERSION);
		options_dispose(&opts);
		return 0;
	}
	enum ctl_log_level level;
	if (ctl_log_parse_level(opts.log_level, &level) != 0) {
		fprintf(stderr, "acrpool-controller: --log-level: \"%s\" is not debug, info, warn or error\n",
			opts.log_level);
		options_dispose(&opts);
		return 2;
	}
	ctl_log_set_level(level);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	a.pap_clients = pipelineagentpool_clients_new();

	if (ctl_kubeconfig_auto(&cfg, opts.kubeconfig && *opts.kubeconfig ? opts.kubeconfig : NULL, opts.context) != 0 ||
	    ctl_kube_client_new(&a.kube, cfg) != 0) {
		ctl_log(CTL_LOG_ERROR, "cannot connect to the API server", "error", ctl_error_last()->message, NULL);
		goto out;
	}
	char host[256];
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "acrpool-controller");
	const char *identity = getenv("POD_NAME") && *getenv("POD_NAME") ? getenv("POD_NAME") : host;
	const char *lease_ns = opts.leader_election_namespace && *opts.leader_election_namespace
		? opts.leader_election_namespace : ctl_kube_client_namespace(a.kube);

	struct ctl_manager_opts mo = {
		.metrics_address = opts.metrics_bind_address,
		.health_address = opts.health_bind_address,
		.metrics_secure = opts.metrics_secure,
		.metrics_cert_dir = opts.metrics_cert_dir,
		.grace_period_ns = opts.shutdown_grace_ms * 1000000LL,
		.leader_elect = opts.leader_elect,
		.leader = {
			.namespace = lease_ns,
			.name = opts.leader_election_id,
			.identity = identity,
			.lease_duration_ns = opts.lease_duration_ms * 1000000LL,
			.renew_deadline_ns = opts.renew_deadline_ms * 1000000LL,
			.retry_period_ns = opts.retry_period_ms * 1000000LL,
		},
	};
	if (ctl_manager_new(&m, a.kube, &mo) != 0) {
		ctl_log(CTL_LOG_ERROR, "cannot set up the manager", "error", ctl_error_last()->message, NULL);
		goto out;
	}
	a.metrics = ctl_manager_metrics(m);
	ctl_kube_client_set_metrics(a.kube, kube_metrics, a.metrics);
	static const char *const pool_labels[] = {"namespace", "name", NULL};
	ctl_metrics_gauge(&a.pool_count, a.metrics, "acrpool_agentpool_count",
			  "Instances Azure reports for the pool.", pool_labels);
	ctl_metrics_gauge(&a.pool_desired, a.metrics, "acrpool_agentpool_desired_count",
			  "Instances the operator drives the pool to.", pool_labels);
	ctl_metrics_gauge(&a.pool_queued, a.metrics, "acrpool_agentpool_queued_runs",
			  "Runs waiting in the pool's queue (listQueueStatus).", pool_labels);
	const struct {
		struct ctl_metric **m;
		const char *name, *help;
	} pap_gauges[] = {
		{&a.pap_instances, "acrpool_pipelineagentpool_instances",
		 "Container groups of the PipelineAgentPool that exist."},
		{&a.pap_desired, "acrpool_pipelineagentpool_desired_instances",
		 "Instances the operator drives the PipelineAgentPool to."},
		{&a.pap_online, "acrpool_pipelineagentpool_online_agents",
		 "Agents of the PipelineAgentPool Azure DevOps reports online."},
		{&a.pap_busy, "acrpool_pipelineagentpool_busy_agents", "Agents of the PipelineAgentPool running a job."},
		{&a.pap_queued, "acrpool_pipelineagentpool_queued_jobs",
		 "Job requests of the Azure DevOps pool no agent has taken yet."},
	};
	for (size_t i = 0; i < sizeof(pap_gauges) / sizeof(pap_gauges[0]); i++)
		ctl_metrics_gauge(pap_gauges[i].m, a.metrics, pap_gauges[i].name, pap_gauges[i].help, pool_labels);
	static const char *const arm_labels[] = {"operation", "method", "code", NULL};
	static const char *const arm_hist_labels[] = {"operation", NULL};
	static const double buckets[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
	ctl_metrics_counter(&am.requests, a.metrics, "acrpool_azure_requests_total",
			    "Azure Resource Manager HTTP attempts, by operation, method and status code.", arm_labels);
	ctl_metrics_histogram(&am.latency, a.metrics, "acrpool_azure_request_duration_seconds",
			      "Azure Resource Manager request latency.", arm_hist_labels, buckets,
			      sizeof(buckets) / sizeof(buckets[0]));

	struct azure_options ao = {
		.arm_endpoint = opts.arm_endpoint,
		.authority_host = opts.authority_host,
		.imds_endpoint = opts.imds_endpoint,
		/* Fresh enough that every resync sees Azure anew (drift), old
		 * enough that all pools of a registry share one read. */
		.snapshot_max_age_ns = opts.resync_ms * 1000000LL / 2,
		.metrics = arm_metrics,
		.metrics_arg = &am,
	};
	azure_new(&a.azure, a.kube, &ao);
	struct ctl_recorder_opts ro = {.controller = "acrpool.dev/acrpool-controller", .instance = identity};
	ctl_recorder_new(&a.recorder, a.kube, &ro);

	static const struct ctl_reconciler registry_rec = {"registry", registry_reconcile, app_list_keys_registries};
	static const struct ctl_reconciler agentpool_rec = {"agentpool", agentpool_reconcile, app_list_keys_agentpools};
	struct ctl_controller_opts co = {
		.workers = opts.workers,
		.resync_period_ns = opts.resync_ms * 1000000LL,
		/* Once Azure or the API server is back, an object that failed
		 * through a burst should not sit out client-go's 1000 s cap:
		 * the doubling from 5 ms reaches it after 18 failures, and one
		 * failed snapshot read fails every pool waiting for it. */
		.max_retry_delay_ns = opts.max_retry_delay_ms * 1000000LL,
		.grace_period_ns = opts.shutdown_grace_ms * 1000000LL,
		.metrics = a.metrics,
	};
	ctl_controller_new(&a.registry_ctl, &registry_rec, &a, &co);
	ctl_controller_new(&a.agentpool_ctl, &agentpool_rec, &a, &co);
	static const struct ctl_reconciler task_rec = {"task", task_reconcile, app_list_keys_tasks};
	static const struct ctl_reconciler taskrun_rec = {"taskrun", taskrun_reconcile, app_list_keys_taskruns};
	ctl_controller_new(&a.task_ctl, &task_rec, &a, &co);
	ctl_controller_new(&a.taskrun_ctl, &taskrun_rec, &a, &co);
	static const struct ctl_reconciler pap_rec = {"pipelineagentpool", pipelineagentpool_reconcile,
						      app_list_keys_pipelineagentpools};
	ctl_controller_new(&a.pipelineagentpool_ctl, &pap_rec, &a, &co);

	ns_buf = split_namespaces(opts.namespaces, &namespaces);
	struct ctl_informer_opts io = {.namespaces = namespaces[0] ? namespaces : NULL};
	io.gvr = gvr_registries;
	struct ctl_informer_handlers rh = {registry_add, registry_update, registry_delete, &a};
	ctl_informer_new(&a.registries, a.kube, &io, &rh);
	io.gvr = gvr_agentpools;
	struct ctl_informer_handlers ph = {pool_add, pool_update, pool_delete, &a};
	ctl_informer_new(&a.agentpools, a.kube, &io, &ph);
	io.gvr = gvr_tasks;
	struct ctl_informer_handlers th = {task_add, task_update, task_delete, &a};
	ctl_informer_new(&a.tasks, a.kube, &io, &th);
	io.gvr = gvr_taskruns;
	struct ctl_informer_handlers trh = {taskrun_add, taskrun_update, taskrun_delete, &a};
	ctl_informer_new(&a.taskruns, a.kube, &io, &trh);
	io.gvr = gvr_pipelineagentpools;
	struct ctl_informer_handlers paph = {pap_add, pap_update, pap_delete, &a};
	ctl_informer_new(&a.pipelineagentpools, a.kube, &io, &paph);
	/* The references handlers follow from one object to others, kept
	 * beside each cached object so following them parses nothing. */
	a.ix_pool_registry = ctl_store_add_index(ctl_informer_store(a.agentpools), "spec.registryRef.name");
	a.ix_task_registry = ctl_store_add_index(ctl_informer_store(a.tasks), "spec.registryRef.name");
	a.ix_task_pool = ctl_store_add_index(ctl_informer_store(a.tasks), "spec.agentPoolRef.name");
	a.ix_run_registry = ctl_store_add_index(ctl_informer_store(a.taskruns), "spec.registryRef.name");
	a.ix_run_pool = ctl_store_add_index(ctl_informer_store(a.taskruns), "spec.build.agentPoolRef.name");
	a.ix_run_task = ctl_store_add_index(ctl_informer_store(a.taskruns), "spec.taskRef.name");
	a.ix_pap_registry = ctl_store_add_index(ctl_informer_store(a.pipelineagentpools),
						"spec.aci.imagePull.registryRef.name");
	ctl_manager_add_informer(m, "registries", a.registries);
	ctl_manager_add_informer(m, "agentpools", a.agentpools);
	ctl_manager_add_informer(m, "tasks", a.tasks);
	ctl_manager_add_informer(m, "taskruns", a.taskruns);
	ctl_manager_add_informer(m, "pipelineagentpools", a.pipelineagentpools);
	ctl_manager_add_controller(m, a.registry_ctl);
	ctl_manager_add_controller(m, a.agentpool_ctl);
	ctl_manager_add_controller(m, a.task_ctl);
	ctl_manager_add_controller(m, a.taskrun_ctl);
	ctl_manager_add_controller(m, a.pipelineagentpool_ctl);

	ctl_log(CTL_LOG_INFO, "acrpool-controller starting", "version", ACRPOOL_VERSION, "identity", identity,
		"namespaces", opts.namespaces && *opts.namespaces ? opts.namespaces : "(all)", NULL);
	pthread_t st;
	sc.m = m;
	pthread_create(&st, NULL, signal_thread, &sc);
	rc = ctl_manager_run(m);
	if (rc == CTL_ECONFLICT)
		_exit(1); /* lost the Lease: another replica may be acting; leave now */
	pthread_kill(st, SIGUSR1);
	pthread_join(st, NULL);
	rc = rc == 0 ? 0 : 1;
out:
	ctl_manager_free(m);
	ctl_recorder_free(a.recorder);
	pipelineagentpool_clients_free(a.pap_clients);
	azure_free(a.azure);
	ctl_kube_client_free(a.kube);
	free(namespaces);
	free(ns_buf);
	options_dispose(&opts);
	curl_global_cleanup();
	ctl_log(CTL_LOG_INFO, "exited", NULL);
	return rc;
}
