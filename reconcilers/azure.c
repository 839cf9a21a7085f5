/*
 * azure.c: ARM connections per Registry and per-registry snapshots. See
 * azure.h.
 *
 * Both caches are small linear arrays under one mutex: there are as many
 * entries as Registry objects (tens), and the network calls are made
 * outside the lock. A stale snapshot is read by one reconcile at a time:
 * the others that want it wait for that read and share its answer (or its
 * error), so a resync that wakes every pool of a registry at once costs one
 * registry GET and one pool LIST, not one per worker.
 */
#include "azure.h"

#include "agentpool_plan.h"
#include "azure/identity.h"
#include "error.h"
#include "hash.h"
#include "objects.h"
#include "xalloc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const struct ctl_gvr secrets_gvr = {"", "v1", "secrets"};

struct conn_entry {
	struct azure_conn conn;        /* first: a conn pointer is an entry pointer */
	char *key;                     /* Registry ns/name */
	char *fingerprint;             /* what the connection was built from */
	char *shape;                   /* the same, short of the Secret's resourceVersion */
	int64_t secret_read_ns;        /* when the Secret was last read; 0: read it again */
	struct identity *id;
	char *sub, *rg, *name;
	int refs;                      /* the cache's own reference counts as one */
	bool retired;
};

/* What a read found: the registry and every pool in it. */
struct snap_data {
	bool registry_found;
	char *location;
	char *sku;
	char *login_server;
	struct arm_agent_pool *pools;
	size_t npools;
	/* Beside pools, kept with it (snap_index, snap_note): each name's
	 * case-blind hash, and the vCPU of all pools by class. Every reconcile
	 * of a pool looks up its name and sums the others' vCPU; at 1,000
	 * pools a registry a pass over the names with strcasecmp was 4% of
	 * the operator's CPU. */
	uint64_t *hashes;
	long standard_vcpu, isolated_vcpu;
	/* Pools are kept compact (snap_compact): 10,000 pools' ids and
	 * repeated words were 3 MiB. Their location, tier, os and
	 * provisioningState point into the azure's shared strings, and an id
	 * that is id_prefix followed by the name is not kept (NULL). */
	char *id_prefix;               /* ".../registries/<name>/agentPools/", from the first pool read */
	int64_t fetched_ns;            /* 0: never read, or invalidated */
};

struct snap_entry {
	char *key;                     /* sub/rg/name, lower case */
	struct snap_data snap;
	bool reading;                  /* a reconcile is reading it from Azure */
	int last_rc;                   /* how that read ended, for those who waited */
	struct ctl_error last_err;
};

struct azure {
	struct ctl_kube_client *kube;
	struct azure_options opts;
	char *arm_endpoint, *authority_host, *imds_endpoint;
	pthread_mutex_t mu;
	pthread_cond_t read_done;      /* a snapshot read finished */
	struct conn_entry **conns;
	size_t nconns;
	struct snap_entry **snaps;     /* pointers: entries outlive a realloc */
	size_t nsnaps;
	unsigned long reads;
	/* The values snapshot pools share (snap_compact): a few locations,
	 * the tiers, os and provisioning states. Kept until azure_free, at
	 * most SHARED_MAX of them: past that, a pool keeps a string of its own
	 * (an Azure that sent a new word for every pool would otherwise grow
	 * this for as long as the process runs). Under mu. */
	char **shared;
	size_t nshared;
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int azure_new(struct azure **out, struct ctl_kube_client *kube, const struct azure_options *opts)
{
	struct azure *az = xcalloc(1, sizeof(*az));
	az->kube = kube;
	az->opts = *opts;
	az->arm_endpoint = xstrdup(opts->arm_endpoint);
	az->authority_host = xstrdup(opts->authority_host);
	az->imds_endpoint = xstrdup(opts->imds_endpoint);
	if (az->opts.snapshot_max_age_ns <= 0)
		az->opts.snapshot_max_age_ns = 60LL * 1000000000;
	pthread_mutex_init(&az->mu, NULL);
	pthread_cond_init(&az->read_done, NULL);
	*out = az;
	return 0;
}

static void conn_entry_free(struct conn_entry *e)
{
	arm_client_free(e->conn.arm);
	identity_free(e->id);
	free(e->key);
	free(e->fingerprint);
	free(e->shape);
	free(e->sub);
	free(e->rg);
	free(e->name);
	free(e);
}

#define SHARED_MAX 256

static bool is_shared(const struct azure *az, const char *v)
{
	for (size_t i = 0; i < az->nshared; i++)
		if (az->shared[i] == v)
			return true;
	return false;
}

/* Free a snapshot pool; the strings it shares are not its own. */
static void snap_pool_dispose(const struct azure *az, struct arm_agent_pool *p)
{
	char **fields[] = {&p->location, &p->tier, &p->os, &p->provisioning_state};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (is_shared(az, *fields[i]))
			*fields[i] = NULL;
	arm_agent_pool_dispose(p);
}

static void snap_data_dispose(const struct azure *az, struct snap_data *s)
{
	free(s->location);
	free(s->sku);
	free(s->login_server);
	for (size_t i = 0; i < s->npools; i++)
		snap_pool_dispose(az, &s->pools[i]);
	free(s->pools);
	free(s->hashes);
	free(s->id_prefix);
	memset(s, 0, sizeof(*s));
}

/* The shared copy of v, taking v; v itself when it is NULL or the table
 * is full. Under mu. */
static char *share(struct azure *az, char *v)
{
	if (!v)
		return NULL;
	for (size_t i = 0; i < az->nshared; i++)
		if (strcmp(az->shared[i], v) == 0) {
			free(v);
			return az->shared[i];
		}
	if (az->nshared >= SHARED_MAX)
		return v;
	az->shared = xrealloc(az->shared, (az->nshared + 1) * sizeof(*az->shared));
	return az->shared[az->nshared++] = v;
}

/* Make p, a pool just put in s (with strings of its own), compact: see
 * struct snap_data. Under mu. */
static void snap_compact(struct azure *az, struct snap_data *s, struct arm_agent_pool *p)
{
	p->location = share(az, p->location);
	p->tier = share(az, p->tier);
	p->os = share(az, p->os);
	p->provisioning_state = share(az, p->provisioning_state);
	if (!p->id || !p->name)
		return;
	size_t id_len = strlen(p->id), name_len = strlen(p->name);
	if (id_len <= name_len || strcmp(p->id + id_len - name_len, p->name) != 0 || p->id[id_len - name_len - 1] != '/')
		return;
	if (!s->id_prefix)
		s->id_prefix = xstrndup(p->id, id_len - name_len);
	if (strlen(s->id_prefix) == id_len - name_len && strncmp(s->id_prefix, p->id, id_len - name_len) == 0) {
		free(p->id);
		p->id = NULL;
	}
}

/* The name's hash in lower case (Azure names compare case-blind). */
static uint64_t name_hash(const char *name)
{
	uint64_t h = CTL_FNV1A_INIT;
	for (const char *c = name ? name : ""; *c; c++)
		h = ctl_fnv1a_byte(h, (unsigned char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c));
	return h;
}

/* What pool p adds to its class's vCPU: +1 or -1 times its tier's vCPU by
 * its count. */
static void vcpu_add(struct snap_data *s, const struct arm_agent_pool *p, int sign)
{
	bool isolated;
	int per = agentpool_tier_vcpu(p->tier, &isolated);
	long v = (long)sign * per * (p->count > 0 ? p->count : 0);
	if (isolated)
		s->isolated_vcpu += v;
	else
		s->standard_vcpu += v;
}

/* The hashes and totals of a snapshot just read, and its pools made
 * compact. Under mu. */
static void snap_index(struct azure *az, struct snap_data *s)
{
	free(s->hashes);
	s->hashes = xcalloc(s->npools + 1, sizeof(*s->hashes));
	s->standard_vcpu = s->isolated_vcpu = 0;
	for (size_t i = 0; i < s->npools; i++) {
		snap_compact(az, s, &s->pools[i]);
		s->hashes[i] = name_hash(s->pools[i].name);
		vcpu_add(s, &s->pools[i], 1);
	}
}

/* The index of the pool named name, or s->npools. */
static size_t snap_find(const struct snap_data *s, const char *name)
{
	uint64_t h = name_hash(name);
	for (size_t i = 0; i < s->npools; i++)
		if (s->hashes[i] == h && s->pools[i].name && strcasecmp(s->pools[i].name, name) == 0)
			return i;
	return s->npools;
}

void azure_free(struct azure *az)
{
	if (!az)
		return;
	for (size_t i = 0; i < az->nconns; i++)
		conn_entry_free(az->conns[i]);
	for (size_t i = 0; i < az->nsnaps; i++) {
		free(az->snaps[i]->key);
		snap_data_dispose(az, &az->snaps[i]->snap);
		free(az->snaps[i]);
	}
	free(az->conns);
	free(az->snaps);
	for (size_t i = 0; i < az->nshared; i++)
		free(az->shared[i]);
	free(az->shared);
	free(az->arm_endpoint);
	free(az->authority_host);
	free(az->imds_endpoint);
	pthread_cond_destroy(&az->read_done);
	pthread_mutex_destroy(&az->mu);
	free(az);
}

unsigned long azure_snapshot_reads(struct azure *az)
{
	pthread_mutex_lock(&az->mu);
	unsigned long n = az->reads;
	pthread_mutex_unlock(&az->mu);
	return n;
}

/* Secret data values are base64; decode one key into a new string. */
static char *secret_value(const cJSON *secret, const char *key)
{
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(secret, "data");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, key);
	if (!cJSON_IsString(v))
		return NULL;
	const char *in = v->valuestring;
	size_t len = strlen(in);
	char *outp = xmalloc(len + 1);
	unsigned bits = 0;
	int nbits = 0;
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		int val;
		if (c >= 'A' && c <= 'Z')
			val = c - 'A';
		else if (c >= 'a' && c <= 'z')
			val = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			val = c - '0' + 52;
		else if (c == '+')
			val = 62;
		else if (c == '/')
			val = 63;
		else if (c == '=')
			break;
		else {
			free(outp);
			return NULL;
		}
		bits = (bits << 6) | (unsigned)val;
		nbits += 6;
		if (nbits >= 8) {
			nbits -= 8;
			outp[o++] = (char)((bits >> nbits) & 0xff);
		}
	}
	outp[o] = '\0';
	while (o > 0 && (outp[o - 1] == '\n' || outp[o - 1] == '\r'))
		outp[--o] = '\0';
	return outp;
}

static void wipe_free(char *s)
{
	if (s) {
		volatile char *p = s;
		while (*p)
			*p++ = 0;
		free(s);
	}
}

/* Build identity options from the Registry's credential. For a service
 * principal the Secret is read; *secret receives the client secret (the
 * caller wipes it) and *secret_rv its resourceVersion. */
static int credential_options(struct azure *az, const struct ctl_obj *reg, struct identity_options *o,
			      char **tenant, char **client, char **secret, char **secret_rv)
{
	const char *cloud = ctl_obj_string(reg, "spec.cloud");
	o->cloud = cloud ? cloud : "AzureCloud";
	o->authority_host = az->authority_host;
	o->imds_endpoint = az->imds_endpoint;
	if (ctl_obj_field(reg, "spec.credential.workloadIdentity")) {
		o->kind = IDENTITY_WORKLOAD;
		o->client_id = ctl_obj_string(reg, "spec.credential.workloadIdentity.clientId");
		o->tenant_id = ctl_obj_string(reg, "spec.credential.workloadIdentity.tenantId");
		return 0;
	}
	if (ctl_obj_field(reg, "spec.credential.managedIdentity")) {
		o->kind = IDENTITY_MANAGED;
		o->client_id = ctl_obj_string(reg, "spec.credential.managedIdentity.clientId");
		return 0;
	}
	const char *name = ctl_obj_string(reg, "spec.credential.servicePrincipal.secretRef.name");
	if (!name)
		return ctl_error_set(CTL_ETERMINAL, "CredentialInvalid",
				     "spec.credential names no workloadIdentity, managedIdentity or servicePrincipal");
	o->kind = IDENTITY_SERVICE_PRINCIPAL;
	cJSON *s = NULL;
	int rc = ctl_kube_get(&s, az->kube, &secrets_gvr, reg->namespace, name, NULL);
	if (rc == CTL_ENOTFOUND)
		return ctl_error_set(CTL_ETERMINAL, "CredentialNotFound",
				     "Secret %s/%s named by spec.credential.servicePrincipal.secretRef does not exist",
				     reg->namespace, name);
	if (rc != 0)
		return rc;
	*tenant = secret_value(s, "AZURE_TENANT_ID");
	*client = secret_value(s, "AZURE_CLIENT_ID");
	*secret = secret_value(s, "AZURE_CLIENT_SECRET");
	const cJSON *rv = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "metadata"),
							   "resourceVersion");
	*secret_rv = xstrdup(cJSON_IsString(rv) ? rv->valuestring : "");
	cJSON_Delete(s);
	if (!*tenant || !*client || !*secret || !**tenant || !**client || !**secret)
		return ctl_error_set(CTL_ETERMINAL, "CredentialInvalid",
				     "Secret %s/%s needs the keys AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET",
				     reg->namespace, name);
	o->tenant_id = *tenant;
	o->client_id = *client;
	o->client_secret = *secret;
	return 0;
}

/* For a servicePrincipal Registry, what its connection is built from
 * short of the Secret's contents: the Secret may be trusted without a read
 * for as long as this stays the same. NULL for the other credentials,
 * which read nothing from the API server. */
static char *secret_shape(const struct ctl_obj *reg)
{
	const char *secret = ctl_obj_string(reg, "spec.credential.servicePrincipal.secretRef.name");
	if (!secret || ctl_obj_field(reg, "spec.credential.workloadIdentity") ||
	    ctl_obj_field(reg, "spec.credential.managedIdentity"))
		return NULL;
	const char *cloud = ctl_obj_string(reg, "spec.cloud"), *sub = ctl_obj_string(reg, "spec.subscriptionId");
	const char *rg = ctl_obj_string(reg, "spec.resourceGroup"), *name = ctl_obj_string(reg, "spec.name");
	return xasprintf("%s|%s|%s|%s|%s", cloud ? cloud : "", secret, sub ? sub : "", rg ? rg : "", name ? name : "");
}

void azure_distrust_secrets(struct azure *az)
{
	pthread_mutex_lock(&az->mu);
	for (size_t i = 0; i < az->nconns; i++)
		az->conns[i]->secret_read_ns = 0;
	pthread_mutex_unlock(&az->mu);
}

/* A connection for obj (a Registry or a PipelineAgentPool: both carry
 * spec.cloud and spec.credential), cached under key, for the resources of
 * subscription sub and resource group rg (name: the registry, or ""). */
static int conn_get(struct azure_conn **out, struct azure *az, const struct ctl_obj *reg, const char *key,
		    const char *sub, const char *rg, const char *name)
{
	struct identity_options io = IDENTITY_OPTIONS_INIT;
	char *tenant = NULL, *client = NULL, *secret = NULL, *secret_rv = NULL, *fp = NULL;
	char *shape = secret_shape(reg);
	struct conn_entry *e = NULL;
	int rc;

	*out = NULL;
	/* The Secret read recently is trusted: a reconcile costs no API
	 * server request for it (the Secrets are not watched: that would
	 * cache every Secret of every watched namespace). */
	if (shape) {
		int64_t now = now_ns();
		pthread_mutex_lock(&az->mu);
		for (size_t i = 0; i < az->nconns; i++) {
			struct conn_entry *c = az->conns[i];
			if (strcmp(c->key, key) != 0 || !c->shape || strcmp(c->shape, shape) != 0)
				continue;
			if (c->secret_read_ns && now - c->secret_read_ns < az->opts.snapshot_max_age_ns) {
				c->refs++;
				*out = &c->conn;
				pthread_mutex_unlock(&az->mu);
				rc = 0;
				goto done;
			}
			/* This caller reads the Secret again; the workers that
			 * come meanwhile (a resync wakes them all at once) go on
			 * with what was read last instead of reading it too. */
			c->secret_read_ns = now;
			break;
		}
		pthread_mutex_unlock(&az->mu);
	}
	if ((rc = credential_options(az, reg, &io, &tenant, &client, &secret, &secret_rv)) != 0)
		goto done;
	if (!sub || !rg || !name) {
		rc = ctl_error_set(CTL_ETERMINAL, "InvalidSpec", "the subscription id and resource group are required");
		goto done;
	}
	/* The secret itself is not in the fingerprint, its resourceVersion is. */
	fp = xasprintf("%d|%s|%s|%s|%s|%s|%s|%s", (int)io.kind, io.cloud, io.tenant_id ? io.tenant_id : "",
		       io.client_id ? io.client_id : "", secret_rv ? secret_rv : "", sub, rg, name);

	pthread_mutex_lock(&az->mu);
	for (size_t i = 0; i < az->nconns; i++) {
		struct conn_entry *c = az->conns[i];
		if (strcmp(c->key, key) == 0 && strcmp(c->fingerprint, fp) == 0) {
			c->secret_read_ns = now_ns();
			c->refs++;
			*out = &c->conn;
			pthread_mutex_unlock(&az->mu);
			goto done;
		}
	}
	pthread_mutex_unlock(&az->mu);

	/* Build outside the lock: identity_new and arm_client_new do no I/O,
	 * but there is no reason to hold others up either. */
	e = xcalloc(1, sizeof(*e));
	if ((rc = identity_new(&e->id, &io)) != 0) {
		rc = ctl_error_set(CTL_ETERMINAL, "CredentialInvalid", "%s", ctl_error_last()->message);
		goto done;
	}
	struct arm_options ao = ARM_OPTIONS_INIT;
	ao.endpoint = az->arm_endpoint;
	ao.metrics = az->opts.metrics;
	ao.metrics_arg = az->opts.metrics_arg;
	/* A worker must not sit in a retry loop for a minute: give up early
	 * and let the work queue's backoff (or Retry-After) bring us back. */
	ao.budget_ms = 10000;
	ao.max_attempts = 3;
	if ((rc = arm_client_new(&e->conn.arm, e->id, &ao)) != 0)
		goto done;
	e->key = xstrdup(key);
	e->fingerprint = fp;
	fp = NULL;
	e->shape = shape;
	shape = NULL;
	e->secret_read_ns = now_ns();
	e->sub = xstrdup(sub);
	e->rg = xstrdup(rg);
	e->name = xstrdup(name);
	e->conn.ref = (struct arm_registry_ref){e->sub, e->rg, e->name};
	e->refs = 2; /* the cache's and the caller's */

	pthread_mutex_lock(&az->mu);
	for (size_t i = 0; i < az->nconns; i++) {
		struct conn_entry *old = az->conns[i];
		if (strcmp(old->key, key) == 0) {
			/* Credential rotated: retire the old connection; the last
			 * holder frees it. */
			az->conns[i] = az->conns[--az->nconns];
			old->retired = true;
			if (--old->refs == 0)
				conn_entry_free(old);
			break;
		}
	}
	az->conns = xrealloc(az->conns, (az->nconns + 1) * sizeof(*az->conns));
	az->conns[az->nconns++] = e;
	pthread_mutex_unlock(&az->mu);
	*out = &e->conn;
	e = NULL;
done:
	if (e)
		conn_entry_free(e);
	free(fp);
	free(shape);
	free(tenant);
	free(client);
	wipe_free(secret);
	free(secret_rv);
	return rc;
}

int azure_conn_get(struct azure_conn **out, struct azure *az, const struct ctl_obj *reg)
{
	return conn_get(out, az, reg, reg->key, ctl_obj_string(reg, "spec.subscriptionId"),
			ctl_obj_string(reg, "spec.resourceGroup"), ctl_obj_string(reg, "spec.name"));
}

int azure_conn_get_aci(struct azure_conn **out, struct azure *az, const struct ctl_obj *obj)
{
	/* Kept apart from a Registry of the same namespace and name. */
	char *key = xasprintf("PipelineAgentPool/%s", obj->key);
	int rc = conn_get(out, az, obj, key, ctl_obj_string(obj, "spec.aci.subscriptionId"),
			  ctl_obj_string(obj, "spec.aci.resourceGroup"), "");
	free(key);
	return rc;
}

int azure_identity_new(struct identity **out, struct azure *az, const struct ctl_obj *obj, const char *resource)
{
	struct identity_options io = IDENTITY_OPTIONS_INIT;
	char *tenant = NULL, *client = NULL, *secret = NULL, *secret_rv = NULL;
	*out = NULL;
	int rc = credential_options(az, obj, &io, &tenant, &client, &secret, &secret_rv);
	if (rc == 0) {
		io.resource = resource;
		if ((rc = identity_new(out, &io)) != 0)
			rc = ctl_error_set(CTL_ETERMINAL, "CredentialInvalid", "%s", ctl_error_last()->message);
	}
	free(tenant);
	free(client);
	wipe_free(secret);
	free(secret_rv);
	return rc;
}

int azure_credential_fingerprint(char **out, struct azure *az, const struct ctl_obj *obj)
{
	struct identity_options io = IDENTITY_OPTIONS_INIT;
	char *tenant = NULL, *client = NULL, *secret = NULL, *secret_rv = NULL;
	*out = NULL;
	int rc = credential_options(az, obj, &io, &tenant, &client, &secret, &secret_rv);
	if (rc == 0)
		*out = xasprintf("%d|%s|%s|%s|%s", (int)io.kind, io.cloud, io.tenant_id ? io.tenant_id : "",
				 io.client_id ? io.client_id : "", secret_rv ? secret_rv : "");
	free(tenant);
	free(client);
	wipe_free(secret);
	free(secret_rv);
	return rc;
}

void azure_conn_put(struct azure *az, struct azure_conn *conn)
{
	if (!conn)
		return;
	struct conn_entry *e = (struct conn_entry *)conn;
	pthread_mutex_lock(&az->mu);
	bool last = --e->refs == 0;
	pthread_mutex_unlock(&az->mu);
	if (last)
		conn_entry_free(e);
}

static char *snap_key(const struct arm_registry_ref *ref)
{
	char *k = xasprintf("%s/%s/%s", ref->subscription_id, ref->resource_group, ref->name);
	for (char *p = k; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return k;
}

static struct snap_entry *find_snap(struct azure *az, const char *key)
{
	for (size_t i = 0; i < az->nsnaps; i++)
		if (strcmp(az->snaps[i]->key, key) == 0)
			return az->snaps[i];
	return NULL;
}

/* A full copy of src into dst; a compact snapshot pool's id is id_prefix
 * and its name. */
static void pool_copy(struct arm_agent_pool *dst, const struct arm_agent_pool *src, const char *id_prefix)
{
	cJSON *j = arm_agent_pool_to_json(src);
	/* to_json drops read-only fields; put back what the snapshot needs. */
	if (src->id || !id_prefix || !src->name) {
		cJSON_AddStringToObject(j, "id", src->id ? src->id : "");
	} else {
		char *id = xasprintf("%s%s", id_prefix, src->name);
		cJSON_AddStringToObject(j, "id", id);
		free(id);
	}
	cJSON_AddStringToObject(j, "name", src->name ? src->name : "");
	if (src->provisioning_state) {
		cJSON *props = cJSON_GetObjectItemCaseSensitive(j, "properties");
		if (!props)
			props = cJSON_AddObjectToObject(j, "properties");
		cJSON_AddStringToObject(props, "provisioningState", src->provisioning_state);
	}
	memset(dst, 0, sizeof(*dst));
	arm_agent_pool_from_json(dst, j);
	cJSON_Delete(j);
}

/* The caller's view of a cached snapshot: one pool copied, the others
 * summed. Under the lock; costs a pass over the names, no allocation per
 * pool. */
static struct azure_snapshot *snapshot_view(const struct snap_data *e, const char *pool)
{
	struct azure_snapshot *v = xcalloc(1, sizeof(*v));
	v->registry_found = e->registry_found;
	v->location = xstrdup(e->location);
	v->sku = xstrdup(e->sku);
	v->login_server = xstrdup(e->login_server);
	v->fetched_ns = e->fetched_ns;
	v->npools = e->npools;
	/* The others' vCPU: the totals less this pool's own. */
	struct snap_data rest = {.standard_vcpu = e->standard_vcpu, .isolated_vcpu = e->isolated_vcpu};
	size_t i = pool ? snap_find(e, pool) : e->npools;
	if (i < e->npools) {
		v->pool = xcalloc(1, sizeof(*v->pool));
		pool_copy(v->pool, &e->pools[i], e->id_prefix);
		vcpu_add(&rest, &e->pools[i], -1);
	}
	v->standard_vcpu = (int)rest.standard_vcpu;
	v->isolated_vcpu = (int)rest.isolated_vcpu;
	return v;
}

/* Read the registry and its pools from Azure. No lock held. */
static int snapshot_read(struct snap_data *fresh, struct azure_conn *conn)
{
	struct arm_registry *reg = NULL;
	int rc = arm_registry_get(&reg, conn->arm, &conn->ref);
	if (rc == CTL_ENOTFOUND) {
		fresh->registry_found = false;
		rc = 0;
	} else if (rc == 0) {
		fresh->registry_found = true;
		fresh->location = xstrdup(reg->location);
		fresh->sku = xstrdup(reg->sku_tier ? reg->sku_tier : reg->sku_name);
		fresh->login_server = xstrdup(reg->login_server);
		rc = arm_agent_pool_list(&fresh->pools, &fresh->npools, conn->arm, &conn->ref);
		if (rc == CTL_ENOTFOUND) {
			/* Gone between the two calls. */
			fresh->registry_found = false;
			rc = 0;
		}
	}
	arm_registry_free(reg);
	fresh->fetched_ns = now_ns();
	return rc;
}

int azure_snapshot_get(struct azure_snapshot **out, struct azure *az, struct azure_conn *conn, const char *pool,
		       bool force)
{
	char *key = snap_key(&conn->ref);
	struct snap_data fresh = {0};

	*out = NULL;
	pthread_mutex_lock(&az->mu);
	struct snap_entry *e = find_snap(az, key);
	if (!e) {
		e = xcalloc(1, sizeof(*e));
		e->key = key;
		key = NULL;
		az->snaps = xrealloc(az->snaps, (az->nsnaps + 1) * sizeof(*az->snaps));
		az->snaps[az->nsnaps++] = e;
	}
	for (;;) {
		if (!force && e->snap.fetched_ns && now_ns() - e->snap.fetched_ns < az->opts.snapshot_max_age_ns)
			goto copy;
		if (!e->reading)
			break;
		while (e->reading)
			pthread_cond_wait(&az->read_done, &az->mu);
		/* Share the failure of the read we waited for rather than send
		 * the same request again at once. A forced read does not wait
		 * for a read that began before it was asked for: it loops and
		 * makes its own. */
		if (!force && e->last_rc != 0) {
			int rc = e->last_rc;
			struct ctl_error err = e->last_err;
			pthread_mutex_unlock(&az->mu);
			free(key);
			ctl_error_set(rc, err.reason, "%s", err.message);
			ctl_error_set_http(err.http_status, err.request_id, err.retry_after_ms);
			return rc;
		}
	}
	e->reading = true;
	az->reads++;
	pthread_mutex_unlock(&az->mu);

	int rc = snapshot_read(&fresh, conn);

	pthread_mutex_lock(&az->mu);
	e->reading = false;
	e->last_rc = rc;
	if (rc != 0) {
		e->last_err = *ctl_error_last();
	} else {
		snap_data_dispose(az, &e->snap);
		e->snap = fresh;
		memset(&fresh, 0, sizeof(fresh));
		snap_index(az, &e->snap);
	}
	pthread_cond_broadcast(&az->read_done);
	if (rc != 0) {
		snap_data_dispose(az, &fresh); /* under mu: it reads the shared strings */
		pthread_mutex_unlock(&az->mu);
		free(key);
		return rc;
	}
copy:
	*out = snapshot_view(&e->snap, pool);
	pthread_mutex_unlock(&az->mu);
	free(key);
	return 0;
}

void azure_snapshot_free(struct azure_snapshot *s)
{
	if (!s)
		return;
	free(s->location);
	free(s->sku);
	free(s->login_server);
	if (s->pool)
		arm_agent_pool_array_free(s->pool, 1);
	free(s);
}

void azure_snapshot_note_pool(struct azure *az, struct azure_conn *conn, const char *name,
			      const struct arm_agent_pool *pool)
{
	char *key = snap_key(&conn->ref);
	pthread_mutex_lock(&az->mu);
	struct snap_entry *e = find_snap(az, key);
	if (e) {
		struct snap_data *s = &e->snap;
		size_t i = snap_find(s, name);
		if (i < s->npools) {
			vcpu_add(s, &s->pools[i], -1);
			snap_pool_dispose(az, &s->pools[i]);
			if (pool) {
				pool_copy(&s->pools[i], pool, NULL);
				snap_compact(az, s, &s->pools[i]);
				s->hashes[i] = name_hash(s->pools[i].name);
				vcpu_add(s, &s->pools[i], 1);
			} else {
				s->pools[i] = s->pools[--s->npools];
				s->hashes[i] = s->hashes[s->npools];
			}
		} else if (pool) {
			s->pools = xrealloc(s->pools, (s->npools + 1) * sizeof(*s->pools));
			s->hashes = xrealloc(s->hashes, (s->npools + 1) * sizeof(*s->hashes));
			pool_copy(&s->pools[s->npools], pool, NULL);
			snap_compact(az, s, &s->pools[s->npools]);
			s->hashes[s->npools] = name_hash(s->pools[s->npools].name);
			vcpu_add(s, &s->pools[s->npools], 1);
			s->npools++;
		}
	}
	pthread_mutex_unlock(&az->mu);
	free(key);
}

void azure_snapshot_invalidate(struct azure *az, struct azure_conn *conn)
{
	char *key = snap_key(&conn->ref);
	pthread_mutex_lock(&az->mu);
	struct snap_entry *e = find_snap(az, key);
	if (e)
		e->snap.fetched_ns = 0;
	pthread_mutex_unlock(&az->mu);
	free(key);
}
