/*
 * options.h: acrpool-controller's flags and their environment equivalents.
 *
 * Every flag --foo-bar can also be given as ACRPOOL_FOO_BAR; a flag on the
 * command line wins over the environment, which wins over the default.
 * (KUBECONFIG and AZURE_AUTHORITY_HOST are honoured under their usual
 * names too.) Parsing is pure: it reads argv and a getenv-like function and
 * fills a struct, so tests can drive it with tables.
 */
#ifndef OPTIONS_H
#define OPTIONS_H

#include <stdbool.h>

struct options {
	char *kubeconfig;           /* NULL: in-cluster config */
	char *context;              /* NULL: the kubeconfig's current context */
	char *namespaces;           /* comma-separated; NULL or "": all namespaces */
	int workers;
	long resync_ms;
	bool leader_elect;
	char *leader_election_namespace;
	char *leader_election_id;
	long lease_duration_ms;
	long renew_deadline_ms;
	long retry_period_ms;
	char *metrics_bind_address;  /* host:port; port 0 picks one, "0" disables */
	bool metrics_secure;         /* HTTPS + TokenReview/SubjectAccessReview (default); false
				      * only on a loopback address */
	char *metrics_cert_dir;      /* tls.crt and tls.key; NULL: self-signed at start */
	char *health_bind_address;
	char *log_level;
	char *arm_endpoint;          /* overrides the cloud's ARM endpoint */
	char *authority_host;        /* overrides the cloud's Entra authority */
	char *imds_endpoint;         /* overrides the managed identity endpoint */
	char *devops_endpoint;       /* overrides https://dev.azure.com (the emulator) */
	long shutdown_grace_ms;
	long queue_poll_ms;          /* autoscale: how often a pool's queue is read */
	long max_retry_delay_ms;     /* longest backoff of an object whose reconcile failed */
	bool show_version;
	bool show_help;
};

/* Fill out from argv and env (getenv when env is NULL). On a bad value
 * returns CTL_EINVALID with the message in ctl_error_last(). The caller
 * frees with options_dispose whatever the result. */
int options_parse(struct options *out, int argc, char **argv, const char *(*env)(const char *));
void options_dispose(struct options *o);

/* Is host (an address, or NULL/"" for every interface) a loopback one:
 * 127.0.0.0/8, ::1 or "localhost"? */
bool options_is_loopback(const char *host);

/* Parse "90s", "10m", "1h30m", "250ms" or a bare number of seconds. */
int options_parse_duration(const char *s, long *out_ms);

/* The --help text. */
const char *options_usage(void);

#endif
