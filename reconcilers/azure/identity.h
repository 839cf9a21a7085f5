/*
 * identity.h: Azure identity for the ARM client: where tokens come from and
 * how long they are kept.
 *
 * One struct identity is one credential (a Registry's spec.credential):
 * workload identity (the projected service-account token exchanged at the
 * Entra v2 endpoint), managed identity (IMDS) or a service principal with a
 * client secret. Each owns a token cache for the ARM audience of its cloud.
 * identity_token_get() hands out a copy of the cached token and refreshes it
 * well before expiry; the cache mutex is never held across the network call
 * (one caller fetches while the others keep using the still-valid token, or
 * wait on a condition variable when there is none).
 *
 * Secrets (client secret, federated assertion, access tokens) never reach a
 * ctl_error message: token endpoint errors are reduced to the AADSTS code and
 * the first sentence of error_description, with any secret scrubbed.
 * Thread-safe; library code, never logs.
 */
#ifndef ACRPOOL_IDENTITY_H
#define ACRPOOL_IDENTITY_H

#include <stdint.h>

/* A cloud's well-known endpoints (azure-identity-and-arm.md 1.e). Every URL
 * ends with '/'. */
struct identity_cloud {
	const char *name;           /* ARM metadata name: "AzureCloud" */
	const char *authority_host; /* Entra: "https://login.microsoftonline.com/" */
	const char *arm_endpoint;   /* "https://management.azure.com/" */
	const char *arm_resource;   /* audience; IMDS resource, scope = this + ".default" */
};

/* The cloud named name (AzureCloud, AzureUSGovernment, AzureChinaCloud, or
 * the webhook's go-autorest names AzurePublicCloud / AzureUSGovernmentCloud;
 * case-insensitive). NULL or "" means AzureCloud. Unknown names: NULL. */
const struct identity_cloud *identity_cloud_find(const char *name);

enum identity_kind {
	IDENTITY_WORKLOAD,          /* federated token file + client_assertion */
	IDENTITY_MANAGED,           /* IMDS */
	IDENTITY_SERVICE_PRINCIPAL, /* client_secret */
};

/* Wall clock in seconds since the epoch; injectable for tests. */
typedef int64_t (*identity_clock_fn)(void *arg);
/* Sleep ms milliseconds (IMDS retries); injectable for tests. */
typedef void (*identity_sleep_fn)(long ms, void *arg);

/* Configuration. Every string is copied by identity_new(); NULL means the
 * default in the comment. Explicit fields win over environment variables. */
struct identity_options {
	enum identity_kind kind;
	const char *cloud;          /* NULL: AzureCloud */
	const char *authority_host; /* NULL: $AZURE_AUTHORITY_HOST (workload), else the cloud's */
	const char *resource;       /* audience; NULL: the cloud's arm_resource. A URL
	                               gets a trailing '/'; an application id (Azure
	                               DevOps: 499b84ac-1321-427f-aa17-267ca6975798)
	                               is kept as it is, its scope "<id>/.default" */
	const char *tenant_id;      /* NULL: $AZURE_TENANT_ID (not used by IMDS) */
	const char *client_id;      /* NULL: $AZURE_CLIENT_ID; optional for IMDS */
	const char *client_secret;  /* service principal only */
	const char *federated_token_file; /* NULL: $AZURE_FEDERATED_TOKEN_FILE */
	const char *imds_endpoint;  /* NULL: $AZURE_POD_IDENTITY_AUTHORITY_HOST,
	                               else http://169.254.169.254 */
	int imds_max_attempts;      /* 0: 5 (the documented IMDS strategy) */
	long imds_retry_delay_ms;   /* 0: 2000; delays (2^n - 1) x this, max 60 s */
	long timeout_ms;            /* per token request; 0: 30000 */
	const char *ca_file;        /* extra CA bundle (emulator); NULL: system */
	identity_clock_fn clock;    /* NULL: time() */
	identity_sleep_fn sleep;    /* NULL: nanosleep */
	void *clock_arg;            /* passed to clock and sleep */
};

#define IDENTITY_OPTIONS_INIT {0}

struct identity;

/* Create a credential. Fails with CTL_EINVALID (ctl_error says which field)
 * when the cloud is unknown or a required value (tenant, client id, secret,
 * token file) is missing from both the options and the environment. */
int identity_new(struct identity **out, const struct identity_options *opts);
void identity_free(struct identity *id);

/* The cloud and the resolved ARM audience of a credential. */
const struct identity_cloud *identity_cloud_of(const struct identity *id);
const char *identity_resource(const struct identity *id);

/* A bearer token for ARM: *out is a copy the caller releases with
 * identity_token_free(). Served from the cache while fresh; otherwise
 * fetched. Errors: CTL_EAUTH (the token endpoint refused: bad secret, no
 * federated credential match, ...), CTL_EUNAVAIL (network, 429, 5xx; the
 * last error's retry_after_ms says when to try again), CTL_EINVALID (the
 * token file is unreadable, the response is malformed). */
int identity_token_get(char **out, struct identity *id);

/* Zero and free a token from identity_token_get(). NULL is fine. */
void identity_token_free(char *token);

/* Drop the cached token if it is still `token` (ARM answered 401 with it),
 * so the next identity_token_get() fetches a new one. A token that was
 * already replaced by a concurrent refresh is left alone. */
void identity_token_invalidate(struct identity *id, const char *token);

/* ---- pure pieces, exposed for unit tests ---- */

/* A parsed token endpoint (v2 or IMDS) answer. */
struct identity_token {
	char *access_token;
	int64_t expires_on;   /* absolute, seconds since the epoch */
	int64_t refresh_at;   /* when to start a proactive refresh */
};

/* Parse a 200 token response received at `now`. expires_in and expires_on
 * are accepted as numbers or strings (IMDS sends strings); expires_in wins
 * because it does not depend on the two clocks agreeing; refresh_in, when
 * present, sets the refresh time. Returns 0 or CTL_EINVALID (no
 * access_token, no expiry). out->access_token is owned by the caller
 * (identity_token_dispose). */
int identity_token_parse(struct identity_token *out, const char *body, int64_t now);
void identity_token_dispose(struct identity_token *t);

/* When to refresh a token received at now and expiring at expires_on.
 * refresh_in > 0 (server-supplied) is used as given; else tokens living
 * more than 2 h refresh at half their lifetime, others 5 min before expiry.
 * Never later than 5 min before expiry, never before now + lifetime/2 when
 * the lifetime is too short for that. */
int64_t identity_refresh_at(int64_t now, int64_t expires_on, int64_t refresh_in);

/* What a caller of identity_token_get() should do, given the cache state. */
enum identity_cache_action {
	IDENTITY_CACHE_USE,     /* hand out the cached token */
	IDENTITY_CACHE_FETCH,   /* become the refresher: fetch without the lock */
	IDENTITY_CACHE_WAIT,    /* no usable token; another thread is fetching */
	IDENTITY_CACHE_FAILED,  /* no usable token; the last fetch failed just now */
};

struct identity_cache_state {
	int have_token;
	int64_t expires_on;
	int64_t refresh_at;
	int refreshing;          /* a fetch is in flight */
	int64_t last_failure;    /* 0: none since the last success */
};

/* Seconds before expiry a token is no longer handed out (clock skew). */
#define IDENTITY_EXPIRY_SKEW 30
/* After a failed proactive refresh, keep the old token this long. */
#define IDENTITY_REFRESH_BACKOFF 30
/* After a failed fetch with no usable token, repeat the error this long
 * instead of calling the token endpoint again. */
#define IDENTITY_FAILURE_HOLD 5

enum identity_cache_action identity_cache_decide(const struct identity_cache_state *s, int64_t now);

/* Turn a token endpoint error response into the thread's ctl_error and
 * return its code: reason is the first AADSTS code of error_codes or
 * error_description ("AADSTS7000215"), else the OAuth error ("invalid_client"),
 * else "TokenRequestFailed"; message is the error and the first sentence of
 * error_description (no trace ids), with every string of the
 * NULL-terminated `secrets` replaced by "[redacted]". 400/401/403 give
 * CTL_EAUTH, 429/5xx CTL_EUNAVAIL. */
int identity_error_set(long status, const char *body, const char *const *secrets);

#endif
