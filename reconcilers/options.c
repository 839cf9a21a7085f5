/*
 * options.c: flag and environment parsing for acrpool-controller. See
 * options.h.
 */
#include "options.h"

#include "error.h"
#include "manager.h"
#include "xalloc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { STR, INT, DURATION, BOOL };

struct flag {
	const char *name;     /* without the leading -- */
	const char *env;      /* ACRPOOL_... */
	const char *alt_env;  /* a well-known name also honoured, or NULL */
	enum kind kind;
	const char *def;
	size_t offset;
	const char *help;
};

#define OFF(f) offsetof(struct options, f)

static const struct flag flags[] = {
	{"kubeconfig", "ACRPOOL_KUBECONFIG", "KUBECONFIG", STR, NULL, OFF(kubeconfig),
	 "kubeconfig file; without it, in-cluster config"},
	{"context", "ACRPOOL_CONTEXT", NULL, STR, NULL, OFF(context),
	 "kubeconfig context (default: current-context)"},
	{"namespaces", "ACRPOOL_NAMESPACES", NULL, STR, "", OFF(namespaces),
	 "comma-separated namespaces to watch (default: all)"},
	{"workers", "ACRPOOL_WORKERS", NULL, INT, "4", OFF(workers),
	 "concurrent reconciles per kind"},
	{"resync-period", "ACRPOOL_RESYNC_PERIOD", NULL, DURATION, "10m", OFF(resync_ms),
	 "how often every object is reconciled even without changes (drift detection)"},
	{"leader-elect", "ACRPOOL_LEADER_ELECT", NULL, BOOL, "false", OFF(leader_elect),
	 "elect a leader with a Lease so several replicas are safe"},
	{"leader-election-namespace", "ACRPOOL_LEADER_ELECTION_NAMESPACE", "POD_NAMESPACE", STR, NULL,
	 OFF(leader_election_namespace), "namespace of the Lease (default: the pod's namespace)"},
	{"leader-election-id", "ACRPOOL_LEADER_ELECTION_ID", NULL, STR, "acrpool-controller",
	 OFF(leader_election_id), "name of the Lease"},
	{"lease-duration", "ACRPOOL_LEASE_DURATION", NULL, DURATION, "15s", OFF(lease_duration_ms),
	 "how long a lease is valid without renewal"},
	{"renew-deadline", "ACRPOOL_RENEW_DEADLINE", NULL, DURATION, "10s", OFF(renew_deadline_ms),
	 "how long the leader keeps trying to renew before it gives up and exits"},
	{"retry-period", "ACRPOOL_RETRY_PERIOD", NULL, DURATION, "2s", OFF(retry_period_ms),
	 "how often to try to acquire or renew the lease"},
	{"metrics-bind-address", "ACRPOOL_METRICS_BIND_ADDRESS", NULL, STR, ":8443",
	 OFF(metrics_bind_address), "address of /metrics (\"0\" disables)"},
	{"metrics-secure", "ACRPOOL_METRICS_SECURE", NULL, BOOL, "true", OFF(metrics_secure),
	 "serve /metrics over HTTPS to callers the API server authenticates (TokenReview) and authorizes "
	 "(SubjectAccessReview, get on /metrics); false serves plain HTTP to anyone, on a loopback address only"},
	{"metrics-cert-dir", "ACRPOOL_METRICS_CERT_DIR", NULL, STR, NULL, OFF(metrics_cert_dir),
	 "directory with tls.crt and tls.key for /metrics (a cert-manager Secret); without it, a self-signed "
	 "certificate made at start"},
	{"health-probe-bind-address", "ACRPOOL_HEALTH_PROBE_BIND_ADDRESS", NULL, STR, ":8081",
	 OFF(health_bind_address), "address of /healthz and /readyz"},
	{"log-level", "ACRPOOL_LOG_LEVEL", NULL, STR, "info", OFF(log_level),
	 "debug, info, warn or error"},
	{"arm-endpoint", "ACRPOOL_ARM_ENDPOINT", NULL, STR, NULL, OFF(arm_endpoint),
	 "Azure Resource Manager endpoint, overriding the Registry's cloud (sovereign clouds, the emulator)"},
	{"authority-host", "ACRPOOL_AUTHORITY_HOST", "AZURE_AUTHORITY_HOST", STR, NULL,
	 OFF(authority_host), "Microsoft Entra authority, overriding the Registry's cloud"},
	{"imds-endpoint", "ACRPOOL_IMDS_ENDPOINT", NULL, STR, NULL, OFF(imds_endpoint),
	 "managed identity token endpoint (default: the instance metadata service)"},
	{"devops-endpoint", "ACRPOOL_DEVOPS_ENDPOINT", NULL, STR, NULL, OFF(devops_endpoint),
	 "Azure DevOps endpoint: requests for organization ORG go to {endpoint}/ORG instead of "
	 "https://dev.azure.com/ORG (the emulator)"},
	{"shutdown-grace-period", "ACRPOOL_SHUTDOWN_GRACE_PERIOD", NULL, DURATION, "30s",
	 OFF(shutdown_grace_ms), "how long in-flight reconciles may finish after SIGTERM"},
	{"queue-poll-interval", "ACRPOOL_QUEUE_POLL_INTERVAL", NULL, DURATION, "30s", OFF(queue_poll_ms),
	 "how often an autoscaled pool's queue is read (each read is one ARM call)"},
	{"max-retry-delay", "ACRPOOL_MAX_RETRY_DELAY", NULL, DURATION, "60s", OFF(max_retry_delay_ms),
	 "longest wait before an object whose reconcile failed is tried again (the wait doubles from 5ms)"},
};

int options_parse_duration(const char *s, long *out_ms)
{
	if (!s || !*s)
		return ctl_error_set(CTL_EINVALID, "BadDuration", "empty duration");
	long total = 0;
	const char *p = s;
	bool bare = true;
	while (*p) {
		if (!isdigit((unsigned char)*p))
			return ctl_error_set(CTL_EINVALID, "BadDuration", "bad duration \"%s\"", s);
		errno = 0;
		char *end;
		long n = strtol(p, &end, 10);
		if (errno || n > 100000000L)
			return ctl_error_set(CTL_EINVALID, "BadDuration", "duration \"%s\" out of range", s);
		long unit;
		if (strncmp(end, "ms", 2) == 0) {
			unit = 1;
			end += 2;
		} else if (*end == 's') {
			unit = 1000;
			end++;
		} else if (*end == 'm') {
			unit = 60000;
			end++;
		} else if (*end == 'h') {
			unit = 3600000;
			end++;
		} else if (*end == '\0' && bare) {
			unit = 1000; /* a bare number is seconds */
		} else {
			return ctl_error_set(CTL_EINVALID, "BadDuration",
					     "bad duration \"%s\" (use 250ms, 30s, 10m, 1h)", s);
		}
		bare = false;
		if (n > (LONG_MAX - total) / unit)
			return ctl_error_set(CTL_EINVALID, "BadDuration", "duration \"%s\" out of range", s);
		total += n * unit;
		p = end;
	}
	*out_ms = total;
	return 0;
}

bool options_is_loopback(const char *host)
{
	unsigned char a[16];
	if (!host || !*host)
		return false;
	if (!strcmp(host, "localhost"))
		return true;
	if (inet_pton(AF_INET, host, a) == 1)
		return a[0] == 127;
	if (inet_pton(AF_INET6, host, a) == 1) {
		static const unsigned char one[16] = {[15] = 1};
		return memcmp(a, one, sizeof(one)) == 0;
	}
	return false;
}

/* --metrics-secure=false only on loopback; secure metrics on an address of
 * their own. */
static int check_metrics(const struct options *o)
{
	const char *addr = o->metrics_bind_address;
	if (!addr || !*addr || !strcmp(addr, "0"))
		return 0;
	char *host = NULL;
	int port, rc = ctl_manager_parse_address(addr, &host, &port);
	if (rc != 0) {
		rc = ctl_error_set(CTL_EINVALID, "BadFlag", "--metrics-bind-address: %s", ctl_error_last()->message);
	} else if (!o->metrics_secure && !options_is_loopback(host)) {
		rc = ctl_error_set(CTL_EINVALID, "BadFlag",
				   "--metrics-secure=false serves /metrics without TLS or authentication and is allowed "
				   "only on a loopback address (127.0.0.1, ::1, localhost), not --metrics-bind-address %s",
				   addr);
	} else if (o->metrics_secure && port != 0 && o->health_bind_address && !strcmp(addr, o->health_bind_address)) {
		rc = ctl_error_set(CTL_EINVALID, "BadFlag",
				   "--metrics-bind-address and --health-probe-bind-address must differ when metrics are "
				   "secure (probes stay plain HTTP)");
	}
	free(host);
	return rc;
}

static int set_value(struct options *o, const struct flag *f, const char *v, const char *from)
{
	char *base = (char *)o + f->offset;
	switch (f->kind) {
	case STR: {
		char **dst = (char **)(void *)base;
		free(*dst);
		*dst = v ? xstrdup(v) : NULL;
		return 0;
	}
	case INT: {
		char *end;
		errno = 0;
		long n = strtol(v, &end, 10);
		if (errno || *end || end == v || n < 1 || n > 1024)
			return ctl_error_set(CTL_EINVALID, "BadFlag", "%s: \"%s\" is not a number from 1 to 1024",
					     from, v);
		*(int *)(void *)base = (int)n;
		return 0;
	}
	case DURATION: {
		long ms;
		if (options_parse_duration(v, &ms) != 0)
			return ctl_error_set(CTL_EINVALID, "BadFlag", "%s: %s", from, ctl_error_last()->message);
		*(long *)(void *)base = ms;
		return 0;
	}
	case BOOL:
		if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) {
			*(bool *)(void *)base = true;
		} else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) {
			*(bool *)(void *)base = false;
		} else {
			return ctl_error_set(CTL_EINVALID, "BadFlag", "%s: \"%s\" is not true or false", from, v);
		}
		return 0;
	}
	return CTL_ERR;
}

static const char *default_env(const char *name)
{
	return getenv(name);
}

int options_parse(struct options *out, int argc, char **argv, const char *(*env)(const char *))
{
	size_t n = sizeof(flags) / sizeof(flags[0]);
	int rc;
	memset(out, 0, sizeof(*out));
	if (!env)
		env = default_env;
	for (size_t i = 0; i < n; i++) {
		const char *v = env(flags[i].env);
		const char *from = flags[i].env;
		if ((!v || !*v) && flags[i].alt_env) {
			v = env(flags[i].alt_env);
			from = flags[i].alt_env;
		}
		if (!v || !*v) {
			v = flags[i].def;
			from = flags[i].name;
		}
		if (v && (rc = set_value(out, &flags[i], v, from)) != 0)
			return rc;
	}
	for (int a = 1; a < argc; a++) {
		const char *arg = argv[a];
		if (!strcmp(arg, "--version") || !strcmp(arg, "-v")) {
			out->show_version = true;
			continue;
		}
		if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
			out->show_help = true;
			continue;
		}
		if (strncmp(arg, "--", 2) != 0)
			return ctl_error_set(CTL_EINVALID, "BadFlag", "unexpected argument \"%s\"", arg);
		const char *name = arg + 2, *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		const struct flag *f = NULL;
		for (size_t i = 0; i < n && !f; i++)
			if (strlen(flags[i].name) == len && !strncmp(flags[i].name, name, len))
				f = &flags[i];
		if (!f)
			return ctl_error_set(CTL_EINVALID, "BadFlag", "unknown flag --%.*s (see --help)", (int)len, name);
		const char *v;
		if (eq)
			v = eq + 1;
		else if (f->kind == BOOL)
			v = "true";
		else if (a + 1 < argc)
			v = argv[++a];
		else
			return ctl_error_set(CTL_EINVALID, "BadFlag", "--%s needs a value", f->name);
		char from[80];
		snprintf(from, sizeof(from), "--%s", f->name);
		if ((rc = set_value(out, f, v, from)) != 0)
			return rc;
	}
	if (out->renew_deadline_ms >= out->lease_duration_ms)
		return ctl_error_set(CTL_EINVALID, "BadFlag", "--renew-deadline must be shorter than --lease-duration");
	if (out->retry_period_ms >= out->renew_deadline_ms)
		return ctl_error_set(CTL_EINVALID, "BadFlag", "--retry-period must be shorter than --renew-deadline");
	return check_metrics(out);
}

void options_dispose(struct options *o)
{
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		if (flags[i].kind == STR) {
			char **p = (char **)(void *)((char *)o + flags[i].offset);
			free(*p);
			*p = NULL;
		}
	}
}

const char *options_usage(void)
{
	static char text[16384];
	if (text[0])
		return text;
	size_t len = (size_t)snprintf(text, sizeof(text),
		"usage: acrpool-controller [flags]\n\n"
		"Every flag can also be set in the environment as ACRPOOL_<FLAG> (upper case, - as _).\n\n");
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]) && len < sizeof(text); i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "  --%-28s %s%s%s%s\n", flags[i].name,
					flags[i].help, flags[i].def && *flags[i].def ? " [" : "",
					flags[i].def && *flags[i].def ? flags[i].def : "",
					flags[i].def && *flags[i].def ? "]" : "");
	return text;
}
