/*
 * azure.h: what the reconcilers share about Azure: one ARM connection per
 * Registry (identity + client, rebuilt when the credential changes) and one
 * snapshot per registry of what Azure holds (the registry itself and every
 * agent pool in it).
 *
 * The snapshot is how resync stays cheap: every AgentPool of a registry
 * reads its observed state from one registries GET and one agentPools LIST,
 * refreshed when older than max_age, instead of one GET per pool. A pool
 * whose Azure operation is in flight is read with its own GET (its state
 * moves), and every write we make is folded into the snapshot at once.
 */
#ifndef AZURE_H
#define AZURE_H

#include "azure/acr.h"
#include "kube.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

struct azure;

struct azure_options {
	const char *arm_endpoint;    /* override, or NULL for the Registry's cloud */
	const char *authority_host;  /* override, or NULL */
	const char *imds_endpoint;   /* override, or NULL */
	int64_t snapshot_max_age_ns; /* older snapshots are read again */
	arm_metrics_fn metrics;      /* Azure request metrics hook */
	void *metrics_arg;
};

int azure_new(struct azure **out, struct ctl_kube_client *kube, const struct azure_options *opts);
void azure_free(struct azure *az);

/* A connection: refcounted, so a reconcile keeps using its own while the
 * credential is rotated under it. */
struct azure_conn {
	struct arm_client *arm;
	struct arm_registry_ref ref;  /* points into the conn */
};

/* The connection for a Registry object. Reads the servicePrincipal Secret
 * when there is one (its resourceVersion is part of the identity of the
 * connection, so rotating the Secret makes a new one): when the connection
 * is first built, then at most once per snapshot max age (so a rotation is
 * seen within half a resync, and a reconcile costs no API server request),
 * and at the next call after azure_distrust_secrets(). CTL_ETERMINAL with
 * reason CredentialNotFound/CredentialInvalid when the Secret is missing or
 * incomplete; the message never quotes a secret value. */
int azure_conn_get(struct azure_conn **out, struct azure *az, const struct ctl_obj *registry);
void azure_conn_put(struct azure *az, struct azure_conn *conn);

/* The same for a PipelineAgentPool (spec.cloud, spec.credential): a
 * connection to spec.aci's subscription and resource group (ref.name is
 * ""), cached apart from Registries. */
int azure_conn_get_aci(struct azure_conn **out, struct azure *az, const struct ctl_obj *obj);

/* A new identity (caller frees) from obj's spec.cloud and spec.credential
 * for the audience resource (DEVOPS_RESOURCE for Azure DevOps). Errors as
 * azure_conn_get's. */
struct identity;
int azure_identity_new(struct identity **out, struct azure *az, const struct ctl_obj *obj, const char *resource);

/* What an identity from obj's spec.cloud and spec.credential is built of,
 * short of the secret itself (the servicePrincipal Secret's
 * resourceVersion stands for it), so a caller that keeps an identity can
 * tell when to build a new one: the same text, the same identity. Reads the
 * Secret when there is one. Errors as azure_conn_get's. */
int azure_credential_fingerprint(char **out, struct azure *az, const struct ctl_obj *obj);

/* Azure refused a credential: read every servicePrincipal Secret again at
 * its next use, so a fixed or rotated Secret is picked up at once. */
void azure_distrust_secrets(struct azure *az);

/* What one reconcile needs of the registry's snapshot, copied out under the
 * lock: the registry, the one pool it asked about, and totals over the rest.
 * Not the whole pool list: copying a thousand pools for each reconcile made
 * a rollout of 10,000 pools quadratic. Owned by the caller
 * (azure_snapshot_free). */
struct azure_snapshot {
	bool registry_found;
	char *location;
	char *sku;
	char *login_server;
	struct arm_agent_pool *pool;  /* the pool asked about (names compare without case), or NULL */
	size_t npools;                /* pools in the registry */
	int standard_vcpu;            /* vCPU of the registry's pools, the one asked about apart */
	int isolated_vcpu;
	int64_t fetched_ns;
};

/* The registry's snapshot as seen by the pool named pool (NULL: no pool,
 * totals over all), read from Azure first when missing, older than max_age,
 * or when force is set. One read per registry at a time: a caller that
 * finds a read under way waits for it and shares its answer, or its error
 * (a forced caller makes its own read after it). Errors are the ARM
 * call's. */
int azure_snapshot_get(struct azure_snapshot **out, struct azure *az, struct azure_conn *conn, const char *pool,
		       bool force);
void azure_snapshot_free(struct azure_snapshot *s);

/* Fold what we just learned about one pool into the cached snapshot:
 * pool NULL means it is gone. */
void azure_snapshot_note_pool(struct azure *az, struct azure_conn *conn, const char *name,
			      const struct arm_agent_pool *pool);

/* Forget the cached snapshot of the registry (after a 404, say). */
void azure_snapshot_invalidate(struct azure *az, struct azure_conn *conn);

/* Counts for tests and metrics: snapshot reads made (each is one registry
 * GET and one pool LIST). */
unsigned long azure_snapshot_reads(struct azure *az);

#endif
