/*
 * pipelineagentpool.c: the PipelineAgentPool reconciler: count Azure
 * Pipelines agents, each in its own Azure Container Instances container
 * group, registered by the operator (pre-registered mode,
 * docs/pipeline-agents.md).
 *
 * One pass: read the object from the cache, take its Azure DevOps client
 * (kept across passes; the registration credential, the PAT from its
 * Secret or an Entra token for Azure DevOps through spec.credential, is
 * read again every other pass), the pool id (status.poolId, else
 * one pool GET), the pool's agents (one LIST), the pool's job requests
 * (one LIST: queued and completed), the resource group's container groups
 * (one LIST, kept when tagged acrpool.dev/owner = <namespace>.<name>),
 * and a GET of those of our groups whose instanceView (restartCount,
 * state) may have moved (view_wanted: none in a steady pass). Join them
 * by index, let pipelineagentpool_plan() decide, apply its steps, write
 * status if it changed, and requeue.
 *
 * Secrets: the PAT lives in the object's Azure DevOps client (zeroed when
 * it is freed); the Secret values of spec.aci.environment and every agent
 * key live only in this pass's memory (wiped when freed) and in the PUT
 * body sent to ARM; none reaches status, an Event, a log line or a metric
 * label.
 */
#include "app.h"
#include "azure.h"
#include "azure/aci.h"
#include "clock.h"
#include "conditions.h"
#include "desired.h"
#include "devops/agentkey.h"
#include "devops/devops.h"
#include "error.h"
#include "log.h"
#include "objects.h"
#include "pipelineagentpool_plan.h"
#include "pipelineagentpool_spec.h"
#include "xalloc.h"

#include <inttypes.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POLL_WORKING_NS (5LL * 1000000000)

/* The Azure DevOps client of each object, kept across passes, so a pass
 * costs no Secret read and, with Entra registration, no token request (the
 * identity keeps its token for its lifetime). The credential is read again
 * every other pass (recheck_ns), and at the next pass after Azure
 * DevOps refused it; a change of the spec fields the client is built from
 * (organization, registration, credential, cloud) builds a new one at once.
 * A pass takes its object's entry out of the list and puts it back at its
 * end, so an entry is only ever used by one thread. */

struct client_entry {
	char *key;            /* namespace/name */
	char *shape;          /* the spec fields the client is built from, as JSON */
	char *fingerprint;    /* SHA-256 of the PAT, or azure_credential_fingerprint() */
	int64_t checked_ns;   /* when the credential was last read */
	int64_t swept_ns;     /* when every group was last read one by one (view_wanted) */
	int64_t last_finished; /* the newest finished job request of our agents seen */
	/* spec.aci.environment's Secrets as last read (read_env_secrets):
	 * for the environment env_shape, at env_read_ns, one per item. */
	char *env_shape;
	size_t nenv;
	char **env_rv, **env_val;
	int64_t env_read_ns;
	struct identity *id;  /* Entra registration */
	struct devops_client *dc;
};

struct pipelineagentpool_clients {
	pthread_mutex_t mu;
	struct client_entry **v;
	size_t n;
};

static void wipe_free(char *s)
{
	if (s) {
		volatile char *p = s;
		while (*p)
			*p++ = 0;
		free(s);
	}
}

/* Free n strings of v (wiped: they may be Secret values) and v. */
static void strings_free(char **v, size_t n, bool wipe)
{
	for (size_t i = 0; v && i < n; i++)
		wipe ? wipe_free(v[i]) : free(v[i]);
	free(v);
}

static void client_entry_free(struct client_entry *e)
{
	if (!e)
		return;
	strings_free(e->env_rv, e->nenv, false);
	strings_free(e->env_val, e->nenv, true);
	free(e->env_shape);
	devops_client_free(e->dc);
	identity_free(e->id);
	free(e->key);
	free(e->shape);
	free(e->fingerprint);
	free(e);
}

struct pipelineagentpool_clients *pipelineagentpool_clients_new(void)
{
	struct pipelineagentpool_clients *c = xcalloc(1, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	return c;
}

void pipelineagentpool_clients_free(struct pipelineagentpool_clients *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		client_entry_free(c->v[i]);
	free(c->v);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* Take key's entry out of the list (NULL when there is none). */
static struct client_entry *clients_take(struct pipelineagentpool_clients *c, const char *key)
{
	struct client_entry *e = NULL;
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->v[i]->key, key)) {
			e = c->v[i];
			c->v[i] = c->v[--c->n];
			break;
		}
	pthread_mutex_unlock(&c->mu);
	return e;
}

/* Put e back for the next pass, or free it (drop). */
static void clients_put(struct pipelineagentpool_clients *c, struct client_entry *e, bool drop)
{
	if (drop) {
		client_entry_free(e);
		return;
	}
	pthread_mutex_lock(&c->mu);
	c->v = xrealloc(c->v, (c->n + 1) * sizeof(*c->v));
	c->v[c->n++] = e;
	pthread_mutex_unlock(&c->mu);
}

/* The spec fields a client is built from, as one text. */
static char *client_shape(const struct ctl_obj *obj)
{
	cJSON *j = cJSON_CreateObject();
	static const char *const fields[] = {"spec.organizationUrl", "spec.registration", "spec.credential",
					     "spec.cloud"};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const cJSON *v = ctl_obj_field(obj, fields[i]);
		if (v)
			cJSON_AddItemToObject(j, fields[i], cJSON_Duplicate(v, true));
	}
	char *out = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (!out)
		abort();
	return out;
}

struct pass {
	struct app_write w;
	struct app *a;
	struct ctl_obj *obj;
	cJSON *status;
	const char *prefix;
	char *owner;                      /* <namespace>.<name> */
	char hash[17];                    /* the desired template */
	char *pat;
	struct client_entry *client;      /* taken from the cache for this pass */
	bool distrust;                    /* Azure DevOps refused the credential: drop the client */
	struct devops_client *dc;         /* client->dc */
	int64_t pool_id;
	struct devops_agent_list agents;
	struct azure_conn *conn;
	struct arm_resource_group_ref rg;
	struct arm_container_group *groups; /* every group of the resource group */
	size_t ngroups;
	struct arm_container_group **views; /* the GET of a group of ours (by index in groups), or NULL */
	/* spec.aci.environment's Secrets, one per item (NULL: plain) */
	size_t nenv;
	char **env_rv;
	char **env_val;
	struct ctl_obj *reg;              /* spec.aci.imagePull.registryRef's Registry, or NULL */
	const char *pull_server;          /* the registry the image is pulled from, or NULL */
	int64_t requeue_ns;
	bool released;
};

/* How long what was read of a Secret is trusted: two passes of a Ready
 * pool (a minute at the default --queue-poll-interval of 30 s), so a
 * rotated Secret is seen by the second pass after it. */
static int64_t recheck_ns(const struct pass *p)
{
	return 2 * p->a->opts->queue_poll_ms * CTL_MSEC;
}

static void pass_dispose(struct pass *p)
{
	strings_free(p->env_rv, p->nenv, false);
	strings_free(p->env_val, p->nenv, true);
	if (p->views)
		for (size_t i = 0; i < p->ngroups; i++)
			arm_container_group_free(p->views[i]);
	free(p->views);
	arm_container_group_array_free(p->groups, p->ngroups);
	azure_conn_put(p->a->azure, p->conn);
	devops_agent_list_dispose(&p->agents);
	if (p->client)
		clients_put(p->a->pap_clients, p->client, p->distrust || p->released);
	wipe_free(p->pat);
	free(p->owner);
	cJSON_Delete(p->status);
	ctl_obj_unref(p->reg);
	ctl_obj_unref(p->obj);
}

static const char *tag_value(const struct arm_container_group *g, const char *name)
{
	for (size_t i = 0; i < g->ntags; i++)
		if (g->tags[i].name && !strcmp(g->tags[i].name, name))
			return g->tags[i].value;
	return NULL;
}

static bool ours(const struct pass *p, const struct arm_container_group *g)
{
	const char *o = tag_value(g, PIPELINEAGENTPOOL_TAG_OWNER);
	return o && !strcmp(o, p->owner) && pipelineagentpool_index(p->prefix, g->name) >= 0;
}

/* A condition reason from a service's code: CamelCase letters and digits. */
static void reason_from(char out[128], const char *code, const char *fallback)
{
	size_t k = 0;
	for (const char *s = code; s && *s && k < 127; s++)
		if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9' && k > 0))
			out[k++] = *s;
	out[k] = '\0';
	if (!k)
		snprintf(out, 128, "%s", fallback);
}

/* A call to Azure DevOps failed: refusals are Stalled quoting the
 * service; the rest is retried by the queue. */
static int devops_failure(struct pass *p, int rc, const char *what)
{
	const struct ctl_error *e = ctl_error_last();
	char msg[1500], reason[128];
	if (rc == CTL_EAUTH || rc == CTL_ETERMINAL || rc == CTL_EINVALID ||
	    (rc == CTL_ENOTFOUND && e->http_status != 0)) {
		bool denied = e->http_status == 401 || e->http_status == 403 || rc == CTL_EAUTH;
		/* Read the credential again next pass: it may be fixed by then. */
		p->distrust |= denied;
		snprintf(msg, sizeof(msg), "%s: Azure DevOps answered %ld %s%s%s%s", what, e->http_status,
			 e->reason[0] ? e->reason : "error", e->message[0] ? ": " : "", e->message,
			 denied ? ctl_obj_field(p->obj, "spec.registration.entra")
				? "; the identity must be allowed to manage the agent pool"
				: "; the PAT needs the Agent Pools (read, manage) scope"
				: "");
		if (denied)
			snprintf(reason, sizeof(reason), "%s", e->http_status == 403 ? "AzureDevOpsAccessDenied"
				 : "AzureDevOpsAuthenticationFailed");
		else
			reason_from(reason, e->reason, "AzureDevOpsRequestRefused");
		int wrc = app_commit(&p->w, APP_STALLED, reason, msg, false, "Reconcile");
		return wrc ? wrc : CTL_ETERMINAL;
	}
	snprintf(msg, sizeof(msg), "%s: %s", what, e->message);
	app_commit(&p->w, APP_PROGRESSING, "AzureDevOpsUnavailable", msg, false, "Reconcile");
	if (e->retry_after_ms > 0) {
		p->requeue_ns = (int64_t)e->retry_after_ms * 1000000;
		return 0;
	}
	ctl_error_set(rc == CTL_ECONFLICT ? CTL_EUNAVAIL : rc, "AzureDevOpsUnavailable", "%s", msg);
	return rc == CTL_ECONFLICT ? CTL_EUNAVAIL : rc;
}

/* An ARM call failed: a refusal is Stalled with ARM's own code
 * (InaccessibleImage, ContainerGroupQuotaReached, ...). */
static int aci_failure(struct pass *p, int rc, const char *what)
{
	const struct ctl_error *e = ctl_error_last();
	if (rc == CTL_ETERMINAL || rc == CTL_EINVALID) {
		char msg[1500], reason[128];
		reason_from(reason, e->reason, "AzureRequestRefused");
		snprintf(msg, sizeof(msg), "%s: Azure answered %s%s%s%s%s%s", what, e->reason[0] ? e->reason : "error",
			 e->message[0] ? ": " : "", e->message, e->request_id[0] ? " (request id " : "", e->request_id,
			 e->request_id[0] ? ")" : "");
		int wrc = app_commit(&p->w, APP_STALLED, reason, msg, false, "Reconcile");
		return wrc ? wrc : CTL_ETERMINAL;
	}
	return app_azure_failure(&p->w, rc, what);
}

static const struct devops_agent *agent_at(const struct pass *p, int index)
{
	for (size_t i = 0; i < p->agents.n; i++)
		if (pipelineagentpool_index(p->prefix, p->agents.items[i].name) == index)
			return &p->agents.items[i];
	return NULL;
}

static size_t group_at(const struct pass *p, int index)
{
	for (size_t i = 0; i < p->ngroups; i++)
		if (ours(p, &p->groups[i]) && pipelineagentpool_index(p->prefix, p->groups[i].name) == index)
			return i;
	return (size_t)-1;
}

/* The Azure DevOps client: this object's from the cache, unless its spec
 * moved or the credential is due for a read and changed. */
static int devops_connect(struct pass *p)
{
	struct devops_options o = DEVOPS_OPTIONS_INIT;
	const struct ctl_obj *obj = p->obj;
	char msg[1100], *fp = NULL, *shape = client_shape(obj);
	struct client_entry *e = clients_take(p->a->pap_clients, obj->key);
	int64_t now = ctl_clock_now(ctl_clock_real());
	int rc;

	bool same_shape = e && !strcmp(e->shape, shape);
	if (same_shape && now - e->checked_ns < recheck_ns(p)) {
		free(shape);
		p->client = e;
		p->dc = e->dc;
		return 0;
	}
	const char *sname = ctl_obj_string(obj, "spec.registration.patSecretRef.name");
	if (sname) {
		const char *skey = ctl_obj_string(obj, "spec.registration.patSecretRef.key");
		if (!skey)
			skey = "pat";
		if ((rc = app_secret_read(&p->pat, p->a, obj->namespace, sname, skey)) != 0)
			goto done;
		if (!p->pat || !*p->pat) {
			snprintf(msg, sizeof(msg), "Secret %s/%s with the key %s (spec.registration.patSecretRef) does "
				 "not exist or is empty", obj->namespace, sname, skey);
			rc = app_commit(&p->w, APP_STALLED, "RegistrationSecretNotFound", msg, false, "Reconcile");
			rc = rc ? rc : CTL_ETERMINAL;
			goto done;
		}
		fp = xcalloc(65, 1);
		app_sha256_hex(fp, p->pat, strlen(p->pat));
	} else if ((rc = azure_credential_fingerprint(&fp, p->a->azure, obj)) != 0) {
		rc = app_azure_failure(&p->w, rc, "cannot build the Azure DevOps credential");
		goto done;
	}
	if (same_shape && !strcmp(e->fingerprint, fp)) {
		e->checked_ns = now; /* read, and the same: keep the client (and its token) */
		p->client = e;
		p->dc = e->dc;
		e = NULL;
		rc = 0;
		goto done;
	}

	struct client_entry *n = xcalloc(1, sizeof(*n));
	o.organization_url = ctl_obj_string(obj, "spec.organizationUrl");
	o.endpoint = p->a->opts->devops_endpoint;
	o.budget_ms = 10000;
	o.max_attempts = 3;
	if (sname) {
		o.pat = p->pat;
	} else {
		if ((rc = azure_identity_new(&n->id, p->a->azure, obj, DEVOPS_RESOURCE)) != 0) {
			client_entry_free(n);
			rc = app_azure_failure(&p->w, rc, "cannot build the Azure DevOps credential");
			goto done;
		}
		o.identity = n->id;
	}
	if ((rc = devops_client_new(&n->dc, &o)) != 0) {
		snprintf(msg, sizeof(msg), "%s", ctl_error_last()->message);
		client_entry_free(n);
		rc = app_commit(&p->w, APP_STALLED, "InvalidSpec", msg, false, "Reconcile");
		rc = rc ? rc : CTL_ETERMINAL;
		goto done;
	}
	n->key = xstrdup(obj->key);
	n->shape = shape;
	n->fingerprint = fp;
	n->checked_ns = now;
	shape = fp = NULL;
	p->client = n;
	p->dc = n->dc;
done:
	/* A read failed (app_azure_failure may even answer 0, a Retry-After
	 * left for the requeue): keep the old client for the next try. */
	if (e && !p->client && rc != CTL_ETERMINAL)
		clients_put(p->a->pap_clients, e, false);
	else
		client_entry_free(e); /* replaced, or its credential is gone */
	free(shape);
	free(fp);
	return rc;
}

/* n strings of v copied (NULLs kept). */
static char **strings_dup(char *const *v, size_t n)
{
	char **out = xcalloc(n + 1, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		out[i] = v[i] ? xstrdup(v[i]) : NULL;
	return out;
}

/* Read the Secrets of env from the API server into p. */
static int read_env_secrets_now(struct pass *p, const cJSON *env)
{
	p->nenv = cJSON_IsArray(env) ? (size_t)cJSON_GetArraySize(env) : 0;
	p->env_rv = xcalloc(p->nenv + 1, sizeof(*p->env_rv));
	p->env_val = xcalloc(p->nenv + 1, sizeof(*p->env_val));
	size_t i = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, env) {
		const cJSON *ref = cJSON_GetObjectItemCaseSensitive(it, "secretKeyRef");
		if (cJSON_IsObject(ref)) {
			const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ref, "name"));
			const char *key = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ref, "key"));
			cJSON *s = NULL;
			int rc = ctl_kube_get(&s, p->a->kube, &gvr_secrets, p->obj->namespace, name ? name : "", NULL);
			const cJSON *data = cJSON_GetObjectItemCaseSensitive(s, "data");
			const char *b64 = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(data, key ? key : ""));
			if (rc == CTL_ENOTFOUND || (rc == 0 && !b64)) {
				cJSON_Delete(s);
				char msg[700];
				snprintf(msg, sizeof(msg), "Secret %s/%s with the key %s (spec.aci.environment %s) does not "
					 "exist", p->obj->namespace, name ? name : "", key ? key : "",
					 cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "name")));
				rc = app_commit(&p->w, APP_STALLED, "EnvironmentSecretNotFound", msg, false, "Reconcile");
				return rc ? rc : CTL_ETERMINAL;
			}
			if (rc != 0)
				return rc;
			const char *rv = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
				cJSON_GetObjectItemCaseSensitive(s, "metadata"), "resourceVersion"));
			p->env_rv[i] = xstrdup(rv ? rv : "");
			size_t len = 0;
			p->env_val[i] = (char *)app_base64_decode(b64, &len);
			cJSON_Delete(s);
			if (!p->env_val[i])
				p->env_val[i] = xstrdup("");
		}
		i++;
	}
	return 0;
}

/* The Secrets of spec.aci.environment: resourceVersion (for the hash) and
 * value (for the PUT). A missing one stalls. Read from the API server at
 * every other pass (recheck_ns), as the registration credential is (a
 * rotated Secret rolls the instances from the second pass after), and at once
 * when the environment in the spec changed; in between, the object's
 * client entry holds what was read. */
static int read_env_secrets(struct pass *p)
{
	const cJSON *env = ctl_obj_field(p->obj, "spec.aci.environment");
	struct client_entry *c = p->client;
	int64_t now = ctl_clock_now(ctl_clock_real());
	char *shape = env ? cJSON_PrintUnformatted(env) : xstrdup("");
	if (!shape)
		abort();
	if (c->env_shape && !strcmp(c->env_shape, shape) && now - c->env_read_ns < recheck_ns(p)) {
		free(shape);
		p->nenv = c->nenv;
		p->env_rv = strings_dup(c->env_rv, c->nenv);
		p->env_val = strings_dup(c->env_val, c->nenv);
		return 0;
	}
	int rc = read_env_secrets_now(p, env);
	if (rc == 0) {
		strings_free(c->env_rv, c->nenv, false);
		strings_free(c->env_val, c->nenv, true);
		free(c->env_shape);
		c->env_shape = shape;
		c->nenv = p->nenv;
		c->env_rv = strings_dup(p->env_rv, p->nenv);
		c->env_val = strings_dup(p->env_val, p->nenv);
		c->env_read_ns = now;
	} else {
		free(shape);
	}
	return rc;
}

/* The registry a private image is pulled from: spec.aci.imagePull.server,
 * or the login server of the Registry object registryRef names (from the
 * cache). Not there, or not known yet: Stalled, or Reconciling until the
 * Registry's status says (its change brings this object back). */
static int resolve_pull_server(struct pass *p)
{
	const struct ctl_obj *obj = p->obj;
	const char *ref = ctl_obj_string(obj, "spec.aci.imagePull.registryRef.name");
	char msg[700];
	p->pull_server = ctl_obj_string(obj, "spec.aci.imagePull.server");
	if (!ref)
		return 0;
	char *key = ctl_obj_key(obj->namespace, ref);
	int rc = ctl_store_get(&p->reg, ctl_informer_store(p->a->registries), key);
	free(key);
	if (rc == CTL_ENOTFOUND) {
		snprintf(msg, sizeof(msg), "Registry %s/%s (spec.aci.imagePull.registryRef) does not exist; create it",
			 obj->namespace, ref);
		rc = app_commit(&p->w, APP_STALLED, "RegistryRefNotFound", msg, false, "Reconcile");
		return rc ? rc : CTL_ETERMINAL;
	}
	p->pull_server = ctl_obj_string(p->reg, "status.loginServer");
	if (!p->pull_server || !*p->pull_server) {
		snprintf(msg, sizeof(msg), "waiting for Registry %s/%s to report its login server", obj->namespace, ref);
		rc = app_commit(&p->w, APP_PROGRESSING, "WaitingForRegistry", msg, false, "Reconcile");
		return rc ? rc : CTL_ETERMINAL;
	}
	return 0;
}

/* The agent at index has a new key but its group's PUT failed: the old
 * container still holds the old key, which no longer signs in. Mark the
 * group outdated (its template tag, a PATCH that does not restart it) so
 * that a later pass replaces it, with a new key, once a PUT can succeed
 * (say, the image is put back); otherwise it would count as current and
 * its agent stay offline for good. Best effort: a failure here is logged. */
static void mark_outdated(struct pass *p, int index)
{
	size_t gi = group_at(p, index);
	if (gi == (size_t)-1)
		return;
	const struct arm_container_group *g = &p->groups[gi];
	struct arm_tag *tags = xcalloc(g->ntags + 1, sizeof(*tags));
	for (size_t i = 0; i < g->ntags; i++) {
		tags[i] = g->tags[i];
		if (tags[i].name && !strcmp(tags[i].name, PIPELINEAGENTPOOL_TAG_TEMPLATE))
			tags[i].value = (char *)"outdated";
	}
	if (arm_container_group_update_tags(NULL, p->conn->arm, &p->rg, g->name, tags, g->ntags) != 0)
		ctl_log(CTL_LOG_WARN, "cannot mark a container group outdated", "group", g->name, "error",
			ctl_error_last()->message, NULL);
	free(tags);
}

/* CREATE or REPLACE index: a new key, the agent registered (or given the
 * key), then the container group PUT. */
static int put_instance(struct pass *p, int index, struct arm_operation **op)
{
	const struct ctl_obj *obj = p->obj;
	char *name = xasprintf("%s-%d", p->prefix, index);
	struct agentkey *key = NULL;
	char *keyval = NULL;
	struct devops_agent got = {0};
	struct arm_container_env_var *env = NULL;
	struct arm_tag *tags = NULL;
	struct arm_container_group *created = NULL;
	const char **subnets = NULL;
	bool added = false;
	size_t nenv = 0;
	char numbuf[2][24];
	char *passthrough = NULL;
	int rc;

	if ((rc = agentkey_generate(&key, 0)) != 0)
		goto done;
	const struct devops_agent *have = agent_at(p, index);
	if (have) {
		rc = devops_agent_replace(&got, p->dc, p->pool_id, have->id, name, true, key);
	} else {
		rc = devops_agent_add(&got, p->dc, p->pool_id, name, key);
		if (rc == CTL_ECONFLICT) {
			/* Registered since our list (or by someone else):
			 * take it over with our key. */
			struct devops_agent_list l = {0};
			if ((rc = devops_agents_list(&l, p->dc, p->pool_id, name)) == 0) {
				rc = l.n ? devops_agent_replace(&got, p->dc, p->pool_id, l.items[0].id, name, true, key)
					 : CTL_EUNAVAIL;
				devops_agent_list_dispose(&l);
			}
		} else if (rc == 0) {
			added = true;
		}
	}
	if (rc != 0) {
		rc = devops_failure(p, rc, have ? "giving the agent a new key failed" : "registering the agent failed");
		goto done;
	}
	if ((rc = agentkey_env_value(&keyval, key)) != 0)
		goto done;
	struct pipelineagentpool_agent_env ae = {
		.url = ctl_obj_string(obj, "spec.organizationUrl"),
		.pool = ctl_obj_string(obj, "spec.agentPool"),
		.pool_id = p->pool_id,
		.agent_name = name,
		.agent_id = got.id,
		.client_id = got.client_id,
		.auth_url = got.authorization_url,
		.key = keyval,
	};
	pipelineagentpool_env(&env, &nenv, &ae, ctl_obj_field(obj, "spec.aci.environment"),
			      (const char *const *)p->env_val, numbuf, &passthrough);
	const cJSON *utags = ctl_obj_field(obj, "spec.aci.tags");
	size_t ntags = 0, cap = 2 + (size_t)(cJSON_IsObject(utags) ? cJSON_GetArraySize(utags) : 0);
	tags = xcalloc(cap, sizeof(*tags));
	const cJSON *t;
	cJSON_ArrayForEach(t, utags) {
		if (!t->string || !strncmp(t->string, "acrpool.dev/", 12))
			continue;
		tags[ntags].name = t->string;
		tags[ntags++].value = cJSON_IsString(t) ? t->valuestring : "";
	}
	tags[ntags].name = (char *)PIPELINEAGENTPOOL_TAG_OWNER;
	tags[ntags++].value = p->owner;
	tags[ntags].name = (char *)PIPELINEAGENTPOOL_TAG_TEMPLATE;
	tags[ntags++].value = p->hash;
	const cJSON *sn = ctl_obj_field(obj, "spec.aci.subnetIds");
	size_t nsub = cJSON_IsArray(sn) ? (size_t)cJSON_GetArraySize(sn) : 0;
	subnets = xcalloc(nsub + 1, sizeof(*subnets));
	size_t k = 0;
	cJSON_ArrayForEach(t, sn)
		if (cJSON_IsString(t))
			subnets[k++] = t->valuestring;
	const cJSON *cpu = ctl_obj_field(obj, "spec.aci.cpu"), *mem = ctl_obj_field(obj, "spec.aci.memoryInGB");
	struct arm_container_group_spec spec = {
		.name = name,
		.location = ctl_obj_string(obj, "spec.aci.location"),
		.tags = tags,
		.ntags = ntags,
		.image = ctl_obj_string(obj, "spec.aci.image"),
		.cpu = cJSON_IsNumber(cpu) ? cpu->valuedouble : 1,
		.memory_in_gb = cJSON_IsNumber(mem) ? mem->valuedouble : 2,
		.env = env,
		.nenv = nenv,
		.restart_policy = "Always",
		.os_type = "Linux",
		.subnet_ids = subnets,
		.nsubnet_ids = k,
		.identity_id = ctl_obj_string(obj, "spec.aci.imagePull.identityId"),
		.registry_server = p->pull_server,
	};
	rc = arm_container_group_create(&created, op, p->conn->arm, &p->rg, &spec);
	if (rc != 0) {
		/* Save the error: the cleanup below makes requests of its own. */
		struct ctl_error saved = *ctl_error_last();
		if (added)
			devops_agent_delete(p->dc, p->pool_id, got.id); /* no agent without its group */
		else
			mark_outdated(p, index);
		ctl_error_set(saved.code, saved.reason, "%s", saved.message);
		ctl_error_set_http(saved.http_status, saved.request_id, saved.retry_after_ms);
		rc = aci_failure(p, rc, "creating the container group failed");
		goto done;
	}
done:
	arm_container_group_free(created);
	free(subnets);
	free(tags);
	free(env);
	free(passthrough);
	agentkey_secret_free(keyval);
	agentkey_free(key);
	devops_agent_dispose(&got);
	free(name);
	return rc;
}

/* The object's gauges, from the status this pass wrote. */
static void set_metrics(struct pass *p)
{
	const char *labels[] = {p->obj->namespace, p->obj->name, NULL};
	struct {
		struct ctl_metric *m;
		const char *field;
	} g[] = {{p->a->pap_instances, "count"}, {p->a->pap_desired, "desiredCount"}, {p->a->pap_online, "online"},
		 {p->a->pap_busy, "busy"}, {p->a->pap_queued, "queuedJobs"}};
	for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(p->status, g[i].field);
		if (g[i].m && cJSON_IsNumber(v))
			ctl_metric_set(g[i].m, labels, v->valuedouble);
	}
}

static void remove_metrics(struct app *a, const char *ns, const char *name)
{
	const char *labels[] = {ns, name, NULL};
	struct ctl_metric *m[] = {a->pap_instances, a->pap_desired, a->pap_online, a->pap_busy, a->pap_queued};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (m[i])
			ctl_metric_remove(m[i], labels);
}

static int release(struct pass *p, const char *reason, const char *msg)
{
	int rc = ctl_finalizer_remove(p->a->kube, &gvr_pipelineagentpools, p->obj, ACRPOOL_FINALIZER);
	if (rc == 0) {
		app_event(&p->w, "Normal", reason, "Delete", msg);
		remove_metrics(p->a, p->obj->namespace, p->obj->name);
		p->released = true;
	}
	return rc;
}

/* Every group is read one by one at least this often, whatever moved. */
#define VIEW_SWEEP_NS (300LL * 1000000000)

/* The entry for name in a status.instances array, or NULL. */
static const cJSON *instance_status(const cJSON *instances, const char *name)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, instances) {
		const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "name"));
		if (n && !strcmp(n, name))
			return it;
	}
	return NULL;
}

/* Whether this pass GETs group gi for its instanceView (restartCount and
 * the container's state, which a LIST does not carry). A steady pool's
 * pass reads no group one by one: drift is seen in the LIST. It does when
 * the instance is not in status yet or has no restartCount there, when
 * what the pass sees of it moved since the status (its agent online or
 * busy, its provisioning state), while its agent is not online (a
 * container between two jobs, or one failing to start), when jobs
 * finished since the last pass, and in a sweep (VIEW_SWEEP_NS). */
static bool view_wanted(const struct pass *p, const cJSON *prev, size_t gi, bool jobs_moved, bool sweep)
{
	const struct arm_container_group *g = &p->groups[gi];
	const cJSON *was = instance_status(prev, g->name);
	int index = pipelineagentpool_index(p->prefix, g->name);
	const struct devops_agent *ag = index >= 0 ? agent_at(p, index) : NULL;
	if (sweep || jobs_moved || !was || !ag || !ag->online)
		return true;
	const char *ps = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(was, "provisioningState"));
	const char *status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(was, "agentStatus"));
	const cJSON *busy = cJSON_GetObjectItemCaseSensitive(was, "busy");
	return !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(was, "restartCount")) || !ps || !g->provisioning_state ||
	       strcmp(ps, g->provisioning_state) != 0 || !status || strcmp(status, "online") != 0 ||
	       !cJSON_IsBool(busy) || cJSON_IsTrue(busy) != ag->busy;
}

/* status.instances, online, busy, count from what was observed. */
static void status_observe(struct pass *p, int *count)
{
	const cJSON *prev = cJSON_GetObjectItemCaseSensitive(p->status, "instances");
	cJSON *arr = cJSON_CreateArray();
	int online = 0, busy = 0, n = 0;
	/* Instances in index order: groups of ours, then agents without one. */
	int max = -1;
	for (size_t i = 0; i < p->ngroups; i++)
		if (ours(p, &p->groups[i])) {
			int ix = pipelineagentpool_index(p->prefix, p->groups[i].name);
			max = ix > max ? ix : max;
		}
	for (size_t i = 0; i < p->agents.n; i++) {
		int ix = pipelineagentpool_index(p->prefix, p->agents.items[i].name);
		max = ix > max ? ix : max;
	}
	for (int ix = 0; ix <= max; ix++) {
		size_t gi = group_at(p, ix);
		const struct devops_agent *ag = agent_at(p, ix);
		if (gi == (size_t)-1 && !ag)
			continue;
		cJSON *o = cJSON_CreateObject();
		char *name = xasprintf("%s-%d", p->prefix, ix);
		cJSON_AddStringToObject(o, "name", name);
		free(name);
		if (gi != (size_t)-1) {
			const struct arm_container_group *g = &p->groups[gi];
			const struct arm_container_group *v = p->views && p->views[gi] ? p->views[gi] : g;
			n++;
			const char *ps = v->provisioning_state ? v->provisioning_state : g->provisioning_state;
			if (ps)
				cJSON_AddStringToObject(o, "provisioningState", ps);
			if (p->views && p->views[gi]) {
				if (v->current.state)
					cJSON_AddStringToObject(o, "state", v->current.state);
				if (v->restart_count >= 0)
					cJSON_AddNumberToObject(o, "restartCount", v->restart_count);
			} else {
				/* Not read one by one this pass: what the last read said. */
				const cJSON *was = instance_status(prev, g->name);
				const cJSON *st = cJSON_GetObjectItemCaseSensitive(was, "state");
				const cJSON *rs = cJSON_GetObjectItemCaseSensitive(was, "restartCount");
				if (cJSON_IsString(st))
					cJSON_AddStringToObject(o, "state", st->valuestring);
				if (cJSON_IsNumber(rs))
					cJSON_AddNumberToObject(o, "restartCount", rs->valuedouble);
			}
		}
		if (ag) {
			cJSON_AddNumberToObject(o, "agentId", (double)ag->id);
			cJSON_AddStringToObject(o, "agentStatus", ag->online ? "online" : "offline");
			cJSON_AddBoolToObject(o, "enabled", ag->enabled);
			cJSON_AddBoolToObject(o, "busy", ag->busy);
			online += ag->online;
			busy += ag->busy;
		}
		cJSON_AddItemToArray(arr, o);
	}
	app_json_set(p->status, "instances", arr);
	app_json_set_num(p->status, "count", n);
	app_json_set_num(p->status, "online", online);
	app_json_set_num(p->status, "busy", busy);
	*count = n;
}

/* queuedJobs and jobsCompleted from one job request LIST. Returns the
 * queued count (what autoscale decides from), -1 when it cannot be read.
 * *finished_max is the newest finished request of our agents (request ids
 * grow), which keeps moving when jobsCompleted, bounded by the list's
 * history, no longer does. */
static int status_jobs(struct pass *p, int64_t *finished_max)
{
	struct devops_jobrequest_list l = {0};
	if (devops_jobrequests_list(&l, p->dc, p->pool_id, 200) != 0)
		return -1; /* the figures wait for the next pass */
	int64_t *ids = xcalloc(p->agents.n + 1, sizeof(*ids));
	size_t n = 0;
	for (size_t i = 0; i < p->agents.n; i++)
		if (pipelineagentpool_index(p->prefix, p->agents.items[i].name) >= 0)
			ids[n++] = p->agents.items[i].id;
	struct devops_job_counts jc;
	/* n == 0 would count every agent's jobs: none are ours then. */
	devops_job_counts(&jc, &l, ids, n ? n : 0);
	for (size_t i = 0; i < l.n; i++)
		for (size_t k = 0; k < n && l.items[i].result; k++)
			if (l.items[i].agent_id == ids[k] && l.items[i].request_id > *finished_max)
				*finished_max = l.items[i].request_id;
	if (!n)
		jc.finished = 0;
	app_json_set_num(p->status, "queuedJobs", jc.queued);
	const cJSON *prev = cJSON_GetObjectItemCaseSensitive(p->status, "jobsCompleted");
	double done = cJSON_IsNumber(prev) ? prev->valuedouble : 0;
	/* The service keeps a bounded history; never go backwards. */
	if (jc.finished > done)
		done = jc.finished;
	app_json_set_num(p->status, "jobsCompleted", done);
	free(ids);
	devops_jobrequest_list_dispose(&l);
	return jc.queued;
}

/* Jobs running on the pool, for autoscale: our agents that hold one
 * (each agent runs one job at a time). */
static int busy_agents(void *ud)
{
	const struct pass *p = ud;
	int busy = 0;
	for (size_t i = 0; i < p->agents.n; i++)
		busy += p->agents.items[i].busy && pipelineagentpool_index(p->prefix, p->agents.items[i].name) >= 0;
	return busy;
}

/* REGISTER: the placeholder agent of a pool scaled to zero. It never runs,
 * so its key is thrown away; a later CREATE at its index gives it a new
 * one with the container that runs it. */
static int register_placeholder(struct pass *p, int index)
{
	struct agentkey *key = NULL;
	struct devops_agent got = {0};
	char *name = xasprintf("%s-%d", p->prefix, index);
	int rc = agentkey_generate(&key, 0);
	if (rc == 0) {
		rc = devops_agent_add(&got, p->dc, p->pool_id, name, key);
		if (rc == CTL_ECONFLICT)
			rc = 0; /* registered since our list: the next pass sees it */
		else if (rc != 0)
			rc = devops_failure(p, rc, "registering the placeholder agent failed");
	}
	devops_agent_dispose(&got);
	agentkey_free(key);
	free(name);
	return rc;
}

/* Whether what Azure reports of a group (from the LIST) is what the spec
 * declares: the template tag says what we wrote, this catches a group
 * changed by hand since (its image, CPU or memory). */
static bool as_declared(const struct ctl_obj *obj, const struct arm_container_group *g)
{
	const char *image = ctl_obj_string(obj, "spec.aci.image");
	const cJSON *cpu = ctl_obj_field(obj, "spec.aci.cpu"), *mem = ctl_obj_field(obj, "spec.aci.memoryInGB");
	if (g->image && image && strcmp(g->image, image) != 0)
		return false;
	if (g->cpu > 0 && cJSON_IsNumber(cpu) && fabs(g->cpu - cpu->valuedouble) > 1e-6)
		return false;
	if (g->memory_in_gb > 0 && cJSON_IsNumber(mem) && fabs(g->memory_in_gb - mem->valuedouble) > 1e-6)
		return false;
	return true;
}

int pipelineagentpool_reconcile(void *ctx, const char *key, struct ctl_result *out)
{
	struct app *a = ctx;
	struct pass p = {.a = a};
	struct pipelineagentpool_instance *inst = NULL;
	struct pipelineagentpool_plan plan = {0};
	char msg[1024];
	int rc = 0;

	if (ctl_store_get(&p.obj, ctl_informer_store(a->pipelineagentpools), key) == CTL_ENOTFOUND) {
		client_entry_free(clients_take(a->pap_clients, key)); /* gone: its client and gauges too */
		const char *slash = strchr(key, '/');
		if (slash) {
			char *ns = xstrndup(key, (size_t)(slash - key));
			remove_metrics(a, ns, slash + 1);
			free(ns);
		}
		return 0;
	}
	/* Nothing is made in Azure or Azure DevOps before the finalizer is in place. */
	int gate = app_finalizer_gate(&p.obj, a, &gvr_pipelineagentpools, a->pipelineagentpools, key);
	if (gate <= 0) {
		rc = gate;
		goto done;
	}
	struct ctl_obj *obj = p.obj;
	p.status = ctl_status_copy(obj);
	p.w = (struct app_write){a, &gvr_pipelineagentpools, obj, p.status, &p.requeue_ns, true};
	p.prefix = ctl_obj_string(obj, "spec.agentNamePrefix");
	if (!p.prefix)
		p.prefix = obj->name;
	p.owner = xasprintf("%s.%s", obj->namespace, obj->name);
	const char *policy = ctl_obj_string(obj, "spec.deletionPolicy");
	struct pipelineagentpool_desired d = {
		.count = cJSON_IsNumber(ctl_obj_field(obj, "spec.count")) ? ctl_obj_field(obj, "spec.count")->valueint : 1,
		.deleting = obj->deleting,
		.orphan = policy && !strcmp(policy, "Orphan"),
	};
	if (d.deleting && d.orphan) {
		/* Orphan touches nothing: no credential is needed to leave. */
		rc = release(&p, "Orphaned", "deletionPolicy is Orphan: container groups and agents are left in place");
		goto done;
	}

	if (!d.deleting && (rc = resolve_pull_server(&p)) != 0)
		goto done;

	/* Azure DevOps: credential, pool, agents. */
	if ((rc = devops_connect(&p)) != 0 || !p.client)
		goto done; /* no client: the failure is in status, the requeue set */
	const cJSON *pid = cJSON_GetObjectItemCaseSensitive(p.status, "poolId");
	p.pool_id = cJSON_IsNumber(pid) ? (int64_t)pid->valuedouble : 0;
	const char *pool_name = ctl_obj_string(obj, "spec.agentPool");
	if (p.pool_id > 0) {
		rc = devops_agents_list(&p.agents, p.dc, p.pool_id, NULL);
		if (rc == CTL_ENOTFOUND)
			p.pool_id = 0; /* the pool was deleted (or renamed): look it up again */
		else if (rc != 0) {
			rc = devops_failure(&p, rc, "listing the pool's agents failed");
			goto done;
		}
	}
	if (p.pool_id <= 0) {
		struct devops_pool pool = {0};
		rc = devops_pool_get(&pool, p.dc, pool_name ? pool_name : "");
		if (rc == CTL_ENOTFOUND) {
			snprintf(msg, sizeof(msg), "Azure DevOps organization %s has no agent pool named %s; create it "
				 "(Organization settings, Agent pools)", devops_client_organization(p.dc),
				 pool_name ? pool_name : "");
			cJSON_DeleteItemFromObjectCaseSensitive(p.status, "poolId");
			rc = app_commit(&p.w, APP_STALLED, "AgentPoolNotFound", msg, false, "Reconcile");
			rc = rc ? rc : CTL_ETERMINAL;
			goto done;
		}
		if (rc != 0) {
			rc = devops_failure(&p, rc, "reading the agent pool failed");
			goto done;
		}
		p.pool_id = pool.id;
		devops_pool_dispose(&pool);
		app_json_set_num(p.status, "poolId", (double)p.pool_id);
		devops_agent_list_dispose(&p.agents);
		if ((rc = devops_agents_list(&p.agents, p.dc, p.pool_id, NULL)) != 0) {
			rc = devops_failure(&p, rc, "listing the pool's agents failed");
			goto done;
		}
	}

	/* Azure: the connection, the template, the groups. */
	if ((rc = azure_conn_get_aci(&p.conn, a->azure, obj)) != 0) {
		rc = app_azure_failure(&p.w, rc, "cannot build the Azure credential");
		goto done;
	}
	p.rg = (struct arm_resource_group_ref){p.conn->ref.subscription_id, p.conn->ref.resource_group};
	if (!d.deleting && (rc = read_env_secrets(&p)) != 0)
		goto done;
	pipelineagentpool_template_hash(p.hash, ctl_obj_field(obj, "spec.aci"), (const char *const *)p.env_rv);
	if ((rc = arm_container_group_list(&p.groups, &p.ngroups, p.conn->arm, &p.rg)) != 0) {
		rc = aci_failure(&p, rc, "listing the container groups failed");
		goto done;
	}
	/* The job requests first (queued for autoscale, finished for JOBS):
	 * jobs that finished since the last pass mean restarts to read. */
	int64_t finished_before = p.client->last_finished;
	int queued = d.deleting ? -1 : status_jobs(&p, &p.client->last_finished);
	bool jobs_moved = p.client->last_finished != finished_before;
	/* A LIST has no instanceView: a GET of a group of ours for its
	 * restartCount and state when view_wanted says (not while deleting). */
	int64_t now_ns = ctl_clock_now(ctl_clock_real());
	bool sweep = !p.client->swept_ns || now_ns - p.client->swept_ns >= VIEW_SWEEP_NS;
	if (sweep && !d.deleting)
		p.client->swept_ns = now_ns;
	const cJSON *prev_instances = cJSON_GetObjectItemCaseSensitive(p.status, "instances");
	p.views = xcalloc(p.ngroups + 1, sizeof(*p.views));
	for (size_t i = 0; i < p.ngroups && !d.deleting; i++)
		if (ours(&p, &p.groups[i]) && view_wanted(&p, prev_instances, i, jobs_moved, sweep))
			arm_container_group_get(&p.views[i], p.conn->arm, &p.rg, p.groups[i].name);

	/* Join by index. */
	size_t cap = p.ngroups + p.agents.n + 1, n = 0;
	inst = xcalloc(cap, sizeof(*inst));
	for (size_t i = 0; i < p.ngroups; i++) {
		if (!ours(&p, &p.groups[i]))
			continue;
		const struct arm_container_group *g = &p.groups[i];
		const struct arm_container_group *v = p.views[i] ? p.views[i] : g;
		const char *tmpl = tag_value(g, PIPELINEAGENTPOOL_TAG_TEMPLATE);
		inst[n] = (struct pipelineagentpool_instance){
			.index = pipelineagentpool_index(p.prefix, g->name),
			.group_found = true,
			.provisioning_state = v->provisioning_state ? v->provisioning_state : "Succeeded",
			.current = tmpl && !strcmp(tmpl, p.hash) && as_declared(obj, g),
		};
		n++;
	}
	for (size_t i = 0; i < p.agents.n; i++) {
		const struct devops_agent *ag = &p.agents.items[i];
		int ix = pipelineagentpool_index(p.prefix, ag->name);
		if (ix < 0)
			continue;
		size_t k = 0;
		while (k < n && inst[k].index != ix)
			k++;
		if (k == n)
			inst[n++] = (struct pipelineagentpool_instance){.index = ix};
		inst[k].agent_found = true;
		inst[k].agent_enabled = ag->enabled;
		inst[k].agent_busy = ag->busy;
		inst[k].agent_online = ag->online;
	}
	/* The count: spec.count, a countSchedule window, or autoscale from
	 * the job requests queued for the pool and the agents busy. */
	int count = 0;
	const cJSON *pd = cJSON_GetObjectItemCaseSensitive(p.status, "desiredCount");
	int prev_desired = cJSON_IsNumber(pd) ? pd->valueint : -1;
	struct desired_count dc;
	memset(&dc, 0, sizeof(dc));
	if (!d.deleting) {
		status_observe(&p, &count);
		const char *src = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p.status, "desiredCountSource"));
		struct desired_observed o = {
			.current = count,
			.decided = src && !strcmp(src, "Autoscale") ? prev_desired : -1,
			.queued = queued,
			.running = busy_agents,
			.running_ud = &p,
			.now = desired_now(),
			.poll_ns = a->opts->queue_poll_ms * 1000000LL,
		};
		if (desired_count_decide(&dc, obj, p.status, &o) != 0) {
			const struct ctl_error *e = ctl_error_last();
			char reason[128];
			snprintf(msg, sizeof(msg), "%s", e->message);
			snprintf(reason, sizeof(reason), "%s", e->reason);
			rc = app_commit(&p.w, APP_STALLED, reason, msg, false, "Reconcile");
			goto done;
		}
		d.count = dc.want.count;
		d.placeholder = d.count == 0 && dc.want.source != CAPACITY_SPEC;
		desired_count_status(p.status, &dc, obj);
		app_json_set_num(p.status, "desiredCount", d.count);
		set_metrics(&p);
		if (prev_desired >= 0 && prev_desired != d.count) {
			snprintf(msg, sizeof(msg), "%d -> %d instance(s): %s", prev_desired, d.count, dc.message);
			app_event(&p.w, "Normal", dc.want.source == CAPACITY_AUTOSCALE ? dc.as.reason
				  : dc.want.source == CAPACITY_SCHEDULE ? "ScheduleWindow" : "Scaled", "Scale", msg);
		}
	}
	pipelineagentpool_plan(&d, inst, n, &plan);

	/* Apply the steps. */
	int64_t op_delay = 0;
	int created = 0, removed = 0;
	for (size_t s = 0; s < plan.nsteps && rc == 0; s++) {
		const struct pipelineagentpool_step *st = &plan.steps[s];
		const struct devops_agent *ag = agent_at(&p, st->index);
		char *name = xasprintf("%s-%d", p.prefix, st->index);
		struct arm_operation *op = NULL;
		ctl_log(CTL_LOG_DEBUG, "pipelineagentpool step", "key", key, "step",
			pipelineagentpool_step_name(st->kind), "instance", name, NULL);
		switch (st->kind) {
		case PIPELINEAGENTPOOL_CREATE:
		case PIPELINEAGENTPOOL_REPLACE:
			rc = put_instance(&p, st->index, &op);
			created += rc == 0 && st->kind == PIPELINEAGENTPOOL_CREATE;
			break;
		case PIPELINEAGENTPOOL_DISABLE:
		case PIPELINEAGENTPOOL_ENABLE:
			if (ag)
				rc = devops_agent_set_enabled(NULL, p.dc, p.pool_id, ag->id,
							      st->kind == PIPELINEAGENTPOOL_ENABLE);
			if (rc == CTL_ENOTFOUND)
				rc = 0; /* removed since our list: the next pass sees it gone */
			else if (rc != 0)
				rc = devops_failure(&p, rc, "enabling or disabling the agent failed");
			break;
		case PIPELINEAGENTPOOL_DELETE:
			if ((rc = arm_container_group_delete(&op, p.conn->arm, &p.rg, name)) != 0)
				rc = aci_failure(&p, rc, "deleting the container group failed");
			removed += rc == 0;
			break;
		case PIPELINEAGENTPOOL_REGISTER:
			rc = register_placeholder(&p, st->index);
			break;
		case PIPELINEAGENTPOOL_REMOVE_AGENT:
			if (ag && (rc = devops_agent_delete(p.dc, p.pool_id, ag->id)) != 0)
				rc = devops_failure(&p, rc, "removing the agent failed");
			break;
		}
		if (op && op->retry_after_ms > 0 && (!op_delay || op->retry_after_ms * 1000000LL < op_delay))
			op_delay = op->retry_after_ms * 1000000LL;
		arm_operation_free(op);
		free(name);
	}
	if (rc != 0)
		goto done; /* the failure is in status already */

	switch (plan.outcome) {
	case PIPELINEAGENTPOOL_RELEASE:
		rc = release(&p, plan.reason, plan.message);
		break;
	case PIPELINEAGENTPOOL_STALLED:
		rc = app_commit(&p.w, APP_STALLED, plan.reason, plan.message, false, "Reconcile");
		break;
	case PIPELINEAGENTPOOL_READY:
		rc = app_commit(&p.w, APP_READY, plan.reason, plan.message, false, "Reconcile");
		/* Refresh online, busy, queued and jobs. */
		p.requeue_ns = a->opts->queue_poll_ms * 1000000LL;
		break;
	case PIPELINEAGENTPOOL_WORKING:
	case PIPELINEAGENTPOOL_WAITING:
		p.requeue_ns = op_delay > 0 ? (op_delay < 60LL * 1000000000 ? op_delay : 60LL * 1000000000)
					    : POLL_WORKING_NS;
		if (d.deleting) {
			if (removed)
				app_event(&p.w, "Normal", "Deleting", "Delete", plan.message);
			rc = 0; /* the object is going: no status write to race the finalizer */
			break;
		}
		if (created) {
			snprintf(msg, sizeof(msg), "created %d instance(s): %s", created, plan.message);
			app_event(&p.w, "Normal", "Created", "Create", msg);
		}
		rc = app_commit(&p.w, APP_PROGRESSING, plan.reason, plan.message, false, "Reconcile");
		break;
	}
	/* A schedule window or a delayed scale-down falls due on its own time. */
	if (rc == 0 && !p.released && dc.requeue_ns > 0 && (p.requeue_ns <= 0 || dc.requeue_ns < p.requeue_ns))
		p.requeue_ns = dc.requeue_ns;
done:
	if (rc == 0 && p.requeue_ns > 0)
		out->requeue_after_ns = p.requeue_ns;
	pipelineagentpool_plan_dispose(&plan);
	free(inst);
	pass_dispose(&p);
	return rc;
}
