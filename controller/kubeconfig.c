/*
 * kubeconfig.c: kubeconfig and in-cluster loading, and the credential cache
 * behind ctl_kubeconfig_creds(). See kubeconfig.h.
 *
 * The YAML is loaded with libyaml's document API into a node tree and read
 * through a few typed getters that turn every shape mismatch into
 * CTL_EINVALID naming the offending field. Exec plugins are started with
 * posix_spawnp and their stdout is read into a capped buffer under a
 * deadline. Nothing here logs, and no error message ever quotes a token or
 * a plugin's output (which holds one).
 */
#define _GNU_SOURCE /* pipe2 */
#include "kubeconfig.h"

#include "buf.h"
#include "error.h"
#include "xalloc.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

extern char **environ;

#define KUBECONFIG_MAX (16u * 1024 * 1024)
#define TOKEN_MAX (64u * 1024)
#define EXEC_OUTPUT_MAX (1024u * 1024)
#define EXEC_TIMEOUT_MS 60000
#define TOKEN_RECHECK_S 60   /* re-read a token file at least this often */
#define EXPIRY_SLACK_S 10    /* treat an exec credential as expired this early */

#define EINV(...) ctl_error_set(CTL_EINVALID, "InvalidKubeconfig", __VA_ARGS__)

struct ctl_kube_auth {
	pthread_mutex_t mu;
	char *file_token;           /* last good content of token_file */
	time_t file_checked;        /* monotonic seconds of the last read */
	struct timespec file_mtime;
	int file_stale;             /* invalidated: re-read on next use */
	struct ctl_kube_creds exec; /* the plugin's last credential */
	int exec_valid;
	time_t exec_expiry;         /* wall clock; 0 means no expiry given */
};

static time_t mono_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static struct ctl_kube_auth *auth_new(void)
{
	struct ctl_kube_auth *a = xcalloc(1, sizeof(*a));
	pthread_mutex_init(&a->mu, NULL);
	return a;
}

static void auth_free(struct ctl_kube_auth *a)
{
	if (!a)
		return;
	pthread_mutex_destroy(&a->mu);
	wipe_free(a->file_token);
	ctl_kube_creds_dispose(&a->exec);
	free(a);
}

static void exec_free(struct ctl_kube_exec *x)
{
	if (!x)
		return;
	free(x->api_version);
	free(x->command);
	for (char **p = x->args; p && *p; p++)
		free(*p);
	free(x->args);
	for (char **p = x->env; p && *p; p++)
		free(*p);
	free(x->env);
	free(x);
}

void ctl_kubeconfig_free(struct ctl_kubeconfig *cfg)
{
	if (!cfg)
		return;
	free(cfg->server);
	free(cfg->namespace);
	free(cfg->context);
	free(cfg->tls_server_name);
	free(cfg->ca_file);
	free(cfg->ca_data);
	free(cfg->cert_file);
	free(cfg->cert_data);
	free(cfg->key_file);
	if (cfg->key_data) {
		explicit_bzero(cfg->key_data, cfg->key_len);
		free(cfg->key_data);
	}
	wipe_free(cfg->token);
	free(cfg->token_file);
	exec_free(cfg->exec);
	auth_free(cfg->auth);
	free(cfg);
}

void ctl_kube_creds_dispose(struct ctl_kube_creds *c)
{
	wipe_free(c->token);
	wipe_free(c->cert_pem);
	wipe_free(c->key_pem);
	c->token = c->cert_pem = c->key_pem = NULL;
}

/* Read a whole file into out (reset first), at most max bytes. Returns 0,
 * CTL_ENOTFOUND, CTL_ETOOBIG or CTL_ERR. */
static int read_file(struct ctl_buf *out, const char *path, size_t max)
{
	char chunk[8192];
	int rc = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		return ctl_error_set(e == ENOENT ? CTL_ENOTFOUND : CTL_ERR, "FileError", "%s: %s",
				     path, strerror(e));
	}
	ctl_buf_reset(out);
	out->max = max;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = ctl_error_set(CTL_ERR, "FileError", "%s: %s", path, strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		if (ctl_buf_append(out, chunk, (size_t)n) != 0) {
			rc = ctl_error_set(CTL_ETOOBIG, "FileError", "%s: larger than %zu bytes", path, max);
			goto done;
		}
	}
done:
	close(fd);
	return rc;
}

static char *trim_copy(const char *s)
{
	while (*s && isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	return xstrndup(s, n);
}

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode standard padded base64, skipping line breaks as Go's decoder does.
 * Returns 0 and a NUL-terminated buffer the caller frees, or -1. */
static int base64_decode(char **out, size_t *out_len, const char *in, size_t len)
{
	unsigned char *clean = xmalloc(len + 1);
	unsigned char *dst = NULL;
	size_t n = 0, o = 0;
	int rc = -1;

	for (size_t i = 0; i < len; i++)
		if (in[i] != '\n' && in[i] != '\r')
			clean[n++] = (unsigned char)in[i];
	if (n == 0 || n % 4 != 0)
		goto done;
	dst = xmalloc(n / 4 * 3 + 1);
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;
		for (int k = 0; k < 4; k++) {
			if (clean[i + k] == '=' && i + 4 == n && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad) /* data after '=' */
				goto done;
			v[k] = b64_value(clean[i + k]);
			if (v[k] < 0)
				goto done;
		}
		unsigned triple = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
		dst[o++] = (unsigned char)(triple >> 16);
		if (pad < 2)
			dst[o++] = (unsigned char)(triple >> 8);
		if (pad < 1)
			dst[o++] = (unsigned char)triple;
	}
	dst[o] = '\0';
	*out = (char *)dst;
	*out_len = o;
	dst = NULL;
	rc = 0;
done:
	free(clean);
	free(dst);
	return rc;
}

/* --- YAML access -------------------------------------------------------- */

static yaml_node_t *ymap_get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(d, p->key);
		if (k && k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
			return yaml_document_get_node(d, p->value);
	}
	return NULL;
}

static int ynull(const yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	const char *v = (const char *)n->data.scalar.value;
	return !*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0;
}

/* The optional string map[key]: *out is NULL when absent or null. */
static int ystr(const char **out, yaml_document_t *d, yaml_node_t *map, const char *key, const char *where)
{
	yaml_node_t *n = ymap_get(d, map, key);
	*out = NULL;
	if (!n || ynull(n))
		return 0;
	if (n->type != YAML_SCALAR_NODE)
		return EINV("kubeconfig: %s: %s must be a string", where, key);
	*out = (const char *)n->data.scalar.value;
	return 0;
}

static int ybool(int *out, yaml_document_t *d, yaml_node_t *map, const char *key, const char *where)
{
	const char *s;
	int rc = ystr(&s, d, map, key, where);
	*out = 0;
	if (rc || !s)
		return rc;
	if (strcmp(s, "true") == 0)
		*out = 1;
	else if (strcmp(s, "false") != 0)
		return EINV("kubeconfig: %s: %s must be true or false", where, key);
	return 0;
}

/* The optional node map[key] of the given type: *out NULL when absent. */
static int ynode(yaml_node_t **out, yaml_document_t *d, yaml_node_t *map, const char *key,
		 yaml_node_type_t type, const char *where)
{
	yaml_node_t *n = ymap_get(d, map, key);
	*out = NULL;
	if (!n || ynull(n))
		return 0;
	if (n->type != type)
		return EINV("kubeconfig: %s: %s must be a %s", where, key,
			    type == YAML_MAPPING_NODE ? "mapping" : "sequence");
	*out = n;
	return 0;
}

/* Find the entry called name in the sequence root[list] (contexts,
 * clusters, users) and return its field (context, cluster, user) mapping. */
static int find_named(yaml_node_t **out, yaml_document_t *d, yaml_node_t *root, const char *list,
		      const char *field, const char *name)
{
	yaml_node_t *seq;
	int rc = ynode(&seq, d, root, list, YAML_SEQUENCE_NODE, "top level");
	if (rc)
		return rc;
	for (yaml_node_item_t *it = seq ? seq->data.sequence.items.start : NULL;
	     seq && it < seq->data.sequence.items.top; it++) {
		yaml_node_t *item = yaml_document_get_node(d, *it);
		const char *n;
		if (!item || item->type != YAML_MAPPING_NODE)
			return EINV("kubeconfig: %s[%d] must be a mapping", list,
				    (int)(it - seq->data.sequence.items.start));
		if ((rc = ystr(&n, d, item, "name", list)))
			return rc;
		if (!n || strcmp(n, name) != 0)
			continue;
		if ((rc = ynode(out, d, item, field, YAML_MAPPING_NODE, list)))
			return rc;
		if (!*out)
			return EINV("kubeconfig: %s \"%s\" has no %s", field, name, field);
		return 0;
	}
	return EINV("kubeconfig: %s \"%s\" not found", field, name);
}

static char *resolve_path(const char *base_dir, const char *p)
{
	if (!p)
		return NULL;
	if (p[0] == '/' || !base_dir)
		return xstrdup(p);
	return xasprintf("%s/%s", base_dir, p);
}

/* Decode field key of map (a *-data field) into *out. */
static int ydata(char **out, size_t *out_len, yaml_document_t *d, yaml_node_t *map, const char *key,
		 const char *where)
{
	const char *s;
	int rc = ystr(&s, d, map, key, where);
	if (rc || !s)
		return rc;
	if (base64_decode(out, out_len, s, strlen(s)) != 0)
		return EINV("kubeconfig: %s: %s is not valid base64", where, key);
	return 0;
}

static int read_cluster(struct ctl_kubeconfig *cfg, yaml_document_t *d, yaml_node_t *cl,
			const char *name, const char *base_dir)
{
	char where[300];
	const char *server, *ca, *sni;
	int rc;

	snprintf(where, sizeof(where), "cluster \"%s\"", name);
	if ((rc = ystr(&server, d, cl, "server", where)))
		return rc;
	if (!server)
		return EINV("kubeconfig: %s has no server", where);
	if (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0)
		return EINV("kubeconfig: %s: server must be an http(s) URL", where);
	cfg->server = xstrdup(server);
	size_t n = strlen(cfg->server);
	while (n > 0 && cfg->server[n - 1] == '/')
		cfg->server[--n] = '\0';
	if ((rc = ystr(&ca, d, cl, "certificate-authority", where)) ||
	    (rc = ydata(&cfg->ca_data, &cfg->ca_len, d, cl, "certificate-authority-data", where)) ||
	    (rc = ybool(&cfg->insecure, d, cl, "insecure-skip-tls-verify", where)) ||
	    (rc = ystr(&sni, d, cl, "tls-server-name", where)))
		return rc;
	cfg->ca_file = resolve_path(base_dir, ca);
	cfg->tls_server_name = xstrdup(sni);
	return 0;
}

/* A NULL-terminated copy of the string sequence seq, after first (if any). */
static int ystrings(char ***out, yaml_document_t *d, yaml_node_t *seq, const char *first, const char *where)
{
	size_t n = seq ? (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start) : 0;
	char **v = xcalloc(n + 2, sizeof(*v));
	size_t k = 0;
	if (first)
		v[k++] = xstrdup(first);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = yaml_document_get_node(d, seq->data.sequence.items.start[i]);
		if (!item || item->type != YAML_SCALAR_NODE) {
			for (size_t j = 0; j < k; j++)
				free(v[j]);
			free(v);
			return EINV("kubeconfig: %s: args[%zu] must be a string", where, i);
		}
		v[k++] = xstrdup((const char *)item->data.scalar.value);
	}
	*out = v;
	return 0;
}

static int read_exec(struct ctl_kube_exec **out, yaml_document_t *d, yaml_node_t *ex, const char *user,
		     const char *base_dir)
{
	char where[300];
	const char *api, *cmd;
	yaml_node_t *args, *env;
	struct ctl_kube_exec *x = xcalloc(1, sizeof(*x));
	int rc;

	snprintf(where, sizeof(where), "user \"%s\": exec", user);
	if ((rc = ystr(&api, d, ex, "apiVersion", where)) || (rc = ystr(&cmd, d, ex, "command", where)) ||
	    (rc = ynode(&args, d, ex, "args", YAML_SEQUENCE_NODE, where)) ||
	    (rc = ynode(&env, d, ex, "env", YAML_SEQUENCE_NODE, where)))
		goto done;
	if (!cmd) {
		rc = EINV("kubeconfig: %s has no command", where);
		goto done;
	}
	if (!api || (strcmp(api, "client.authentication.k8s.io/v1") != 0 &&
		     strcmp(api, "client.authentication.k8s.io/v1beta1") != 0)) {
		rc = EINV("kubeconfig: %s: apiVersion must be client.authentication.k8s.io/v1 or v1beta1", where);
		goto done;
	}
	x->api_version = xstrdup(api);
	/* kubectl resolves a relative command with a slash against the
	 * kubeconfig's directory; a bare name is looked up in PATH. */
	x->command = strchr(cmd, '/') ? resolve_path(base_dir, cmd) : xstrdup(cmd);
	if ((rc = ystrings(&x->args, d, args, x->command, where)))
		goto done;
	size_t n = env ? (size_t)(env->data.sequence.items.top - env->data.sequence.items.start) : 0;
	x->env = xcalloc(n + 1, sizeof(*x->env));
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = yaml_document_get_node(d, env->data.sequence.items.start[i]);
		const char *name, *value;
		if (!item || item->type != YAML_MAPPING_NODE) {
			rc = EINV("kubeconfig: %s: env[%zu] must be a mapping", where, i);
			goto done;
		}
		if ((rc = ystr(&name, d, item, "name", where)) || (rc = ystr(&value, d, item, "value", where)))
			goto done;
		if (!name || !*name || strchr(name, '=')) {
			rc = EINV("kubeconfig: %s: env[%zu] needs a name", where, i);
			goto done;
		}
		x->env[i] = xasprintf("%s=%s", name, value ? value : "");
	}
	*out = x;
	x = NULL;
done:
	exec_free(x);
	return rc;
}

static int read_user(struct ctl_kubeconfig *cfg, yaml_document_t *d, yaml_node_t *u, const char *name,
		     const char *base_dir)
{
	char where[300];
	const char *token, *token_file, *cert, *key;
	yaml_node_t *ex, *provider;
	int rc;

	snprintf(where, sizeof(where), "user \"%s\"", name);
	if ((rc = ystr(&token, d, u, "token", where)) || (rc = ystr(&token_file, d, u, "tokenFile", where)) ||
	    (rc = ystr(&cert, d, u, "client-certificate", where)) ||
	    (rc = ydata(&cfg->cert_data, &cfg->cert_len, d, u, "client-certificate-data", where)) ||
	    (rc = ystr(&key, d, u, "client-key", where)) ||
	    (rc = ydata(&cfg->key_data, &cfg->key_len, d, u, "client-key-data", where)) ||
	    (rc = ynode(&ex, d, u, "exec", YAML_MAPPING_NODE, where)) ||
	    (rc = ynode(&provider, d, u, "auth-provider", YAML_MAPPING_NODE, where)))
		return rc;
	if (provider)
		return EINV("kubeconfig: %s: auth-provider is not supported; use an exec plugin such as kubelogin", where);
	if ((cert || cfg->cert_data) != (key || cfg->key_data))
		return EINV("kubeconfig: %s: a client certificate needs a client key and the other way round", where);
	cfg->token = xstrdup(token);
	cfg->token_file = resolve_path(base_dir, token_file);
	cfg->cert_file = resolve_path(base_dir, cert);
	cfg->key_file = resolve_path(base_dir, key);
	if (ex)
		return read_exec(&cfg->exec, d, ex, name, base_dir);
	return 0;
}

int ctl_kubeconfig_parse(struct ctl_kubeconfig **out, const char *yaml, size_t len,
			 const char *context, const char *base_dir)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	int have_doc = 0, rc;
	struct ctl_kubeconfig *cfg = NULL;
	yaml_node_t *root, *ctx, *cl, *user = NULL;
	const char *cluster_name, *user_name, *ns;

	*out = NULL;
	if (!yaml_parser_initialize(&parser))
		abort(); /* libyaml only fails here when out of memory */
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&parser, &doc)) {
		rc = EINV("kubeconfig: not YAML: %s at line %zu", parser.problem ? parser.problem : "parse error",
			  parser.problem_mark.line + 1);
		goto done;
	}
	have_doc = 1;
	root = yaml_document_get_root_node(&doc);
	if (!root) {
		rc = EINV("kubeconfig: empty");
		goto done;
	}
	if (root->type != YAML_MAPPING_NODE) {
		rc = EINV("kubeconfig: top level must be a mapping");
		goto done;
	}
	if (!context) {
		if ((rc = ystr(&context, &doc, root, "current-context", "top level")))
			goto done;
		if (!context) {
			rc = EINV("kubeconfig: no context given and no current-context");
			goto done;
		}
	}
	if ((rc = find_named(&ctx, &doc, root, "contexts", "context", context)))
		goto done;
	if ((rc = ystr(&cluster_name, &doc, ctx, "cluster", "context")) ||
	    (rc = ystr(&user_name, &doc, ctx, "user", "context")) ||
	    (rc = ystr(&ns, &doc, ctx, "namespace", "context")))
		goto done;
	if (!cluster_name) {
		rc = EINV("kubeconfig: context \"%s\" names no cluster", context);
		goto done;
	}
	if ((rc = find_named(&cl, &doc, root, "clusters", "cluster", cluster_name)))
		goto done;
	if (user_name && (rc = find_named(&user, &doc, root, "users", "user", user_name)))
		goto done;

	cfg = xcalloc(1, sizeof(*cfg));
	cfg->auth = auth_new();
	cfg->context = xstrdup(context);
	cfg->namespace = xstrdup(ns ? ns : "default");
	if ((rc = read_cluster(cfg, &doc, cl, cluster_name, base_dir)))
		goto done;
	if (user && (rc = read_user(cfg, &doc, user, user_name, base_dir)))
		goto done;
	*out = cfg;
	cfg = NULL;
	rc = 0;
done:
	ctl_kubeconfig_free(cfg);
	if (have_doc)
		yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return rc;
}

/* The first existing file of $KUBECONFIG, else ~/.kube/config, or NULL. */
static char *default_path(void)
{
	const char *env = getenv("KUBECONFIG");
	struct stat st;
	if (env && *env) {
		char *list = xstrdup(env), *save = NULL;
		for (char *p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
			if (stat(p, &st) == 0) {
				char *found = xstrdup(p);
				free(list);
				return found;
			}
		}
		free(list);
		return NULL;
	}
	const char *home = getenv("HOME");
	if (!home || !*home)
		return NULL;
	char *p = xasprintf("%s/.kube/config", home);
	if (stat(p, &st) == 0)
		return p;
	free(p);
	return NULL;
}

int ctl_kubeconfig_load(struct ctl_kubeconfig **out, const char *path, const char *context)
{
	struct ctl_buf b = CTL_BUF_INIT;
	char *found = NULL, *dir = NULL;
	int rc;

	*out = NULL;
	if (!path) {
		found = default_path();
		if (!found) {
			rc = ctl_error_set(CTL_ENOTFOUND, "NoKubeconfig",
					   "no kubeconfig: neither $KUBECONFIG nor ~/.kube/config exists");
			goto done;
		}
		path = found;
	}
	if ((rc = read_file(&b, path, KUBECONFIG_MAX)))
		goto done;
	const char *slash = strrchr(path, '/');
	dir = slash ? xstrndup(path, (size_t)(slash - path) + (slash == path)) : xstrdup(".");
	rc = ctl_kubeconfig_parse(out, ctl_buf_str(&b), b.len, context, dir);
done:
	ctl_buf_dispose(&b);
	free(found);
	free(dir);
	return rc;
}

int ctl_kubeconfig_in_cluster(struct ctl_kubeconfig **out)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	const char *dir = getenv("ACRPOOL_SA_DIR");
	struct ctl_kubeconfig *cfg = NULL;
	struct ctl_kube_creds creds = CTL_KUBE_CREDS_INIT;
	struct ctl_buf b = CTL_BUF_INIT;
	char *ca = NULL, *nsfile = NULL;
	int rc;

	*out = NULL;
	if (!host || !*host || !port || !*port)
		return ctl_error_set(CTL_ENOTFOUND, "NotInCluster",
				     "not in a cluster: KUBERNETES_SERVICE_HOST or _PORT is unset");
	if (!dir || !*dir)
		dir = CTL_SA_DIR_DEFAULT;
	cfg = xcalloc(1, sizeof(*cfg));
	cfg->auth = auth_new();
	cfg->context = xstrdup("in-cluster");
	cfg->server = strchr(host, ':') ? xasprintf("https://[%s]:%s", host, port)
					: xasprintf("https://%s:%s", host, port);
	cfg->token_file = xasprintf("%s/token", dir);
	ca = xasprintf("%s/ca.crt", dir);
	if (access(ca, R_OK) == 0) {
		cfg->ca_file = ca;
		ca = NULL;
	}
	nsfile = xasprintf("%s/namespace", dir);
	cfg->namespace = read_file(&b, nsfile, 4096) == 0 && b.len ? trim_copy(ctl_buf_str(&b)) : xstrdup("default");
	/* Fail now, not on the first request, when the token is missing. */
	if ((rc = ctl_kubeconfig_creds(&creds, cfg)))
		goto done;
	*out = cfg;
	cfg = NULL;
done:
	ctl_kube_creds_dispose(&creds);
	ctl_buf_dispose(&b);
	ctl_kubeconfig_free(cfg);
	free(ca);
	free(nsfile);
	return rc;
}

int ctl_kubeconfig_auto(struct ctl_kubeconfig **out, const char *path, const char *context)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	if (!path && host && *host)
		return ctl_kubeconfig_in_cluster(out);
	return ctl_kubeconfig_load(out, path, context);
}

/* --- credentials -------------------------------------------------------- */

/* Refresh a->file_token from path when due. Called with a->mu held. A read
 * failure keeps the last good token, as client-go does: the kubelet swaps
 * the file atomically, so a failure is more likely ours than a rotation. */
static int token_file_refresh(struct ctl_kube_auth *a, const char *path)
{
	struct ctl_buf b = CTL_BUF_INIT;
	struct stat st;
	time_t now = mono_seconds();
	int rc = 0;

	int have_stat = stat(path, &st) == 0;
	int due = !a->file_token || a->file_stale || now - a->file_checked >= TOKEN_RECHECK_S ||
		  (have_stat && (st.st_mtim.tv_sec != a->file_mtime.tv_sec ||
				 st.st_mtim.tv_nsec != a->file_mtime.tv_nsec));
	if (!due)
		return 0;
	rc = read_file(&b, path, TOKEN_MAX);
	if (rc == 0) {
		char *t = trim_copy(ctl_buf_str(&b));
		if (!*t) {
			free(t);
			rc = ctl_error_set(CTL_ERR, "EmptyToken", "%s: empty token file", path);
		} else {
			wipe_free(a->file_token);
			a->file_token = t;
		}
	}
	if (rc == 0 || a->file_token) {
		a->file_checked = now;
		a->file_stale = 0;
		if (have_stat)
			a->file_mtime = st.st_mtim;
	}
	if (rc && a->file_token)
		rc = 0;
	if (b.ptr)
		explicit_bzero(b.ptr, b.cap);
	ctl_buf_dispose(&b);
	return rc;
}

/* Parse an RFC 3339 timestamp ("2024-05-01T10:00:00Z", fractions and
 * offsets allowed). Returns 0 or -1. */
static int parse_rfc3339(const char *s, time_t *out)
{
	int Y, M, D, h, m, sec, n = 0;
	long off = 0;
	if (sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6 || n == 0)
		return -1;
	const char *p = s + n;
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++)
			;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om;
		if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2 || strlen(p) < 6)
			return -1;
		off = (long)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
		p += 6;
	} else {
		return -1;
	}
	if (*p || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
		return -1;
	struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = sec};
	*out = timegm(&tm) - off;
	return 0;
}

/* Our environment, minus the names the plugin config sets, plus those and
 * KUBERNETES_EXEC_INFO. The array borrows every string but *info_out. */
static char **exec_env(const struct ctl_kube_exec *x, char **info_out)
{
	size_t n = 0, k = 0, extra = 0;
	for (char **e = environ; e && *e; e++)
		n++;
	for (char **e = x->env; e && *e; e++)
		extra++;
	char **v = xcalloc(n + extra + 2, sizeof(*v));
	for (char **e = environ; e && *e; e++) {
		size_t len = strcspn(*e, "=");
		int overridden = strncmp(*e, "KUBERNETES_EXEC_INFO=", 21) == 0;
		for (char **o = x->env; o && *o && !overridden; o++)
			overridden = strncmp(*e, *o, len + 1) == 0;
		if (!overridden)
			v[k++] = *e;
	}
	for (char **o = x->env; o && *o; o++)
		v[k++] = *o;
	*info_out = xasprintf("KUBERNETES_EXEC_INFO={\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\","
			      "\"spec\":{\"interactive\":false}}", x->api_version);
	v[k++] = *info_out;
	return v;
}

/* Run the plugin and collect its stdout into out. stdin is /dev/null (we
 * are never interactive); stderr is inherited so its prompts and errors
 * reach the operator's log stream. Returns 0, CTL_EAUTH (did not start,
 * failed, timed out) or CTL_EINVALID (output too large). */
static int exec_run(const struct ctl_kube_exec *x, struct ctl_buf *out)
{
	int fds[2] = {-1, -1}, rc = 0, have_fa = 0;
	posix_spawn_file_actions_t fa;
	char **envp = NULL, *info = NULL, chunk[4096];
	pid_t pid = -1;
	struct timespec start, now;

	if (pipe2(fds, O_CLOEXEC) != 0) {
		rc = ctl_error_set(CTL_ERR, "ExecPluginFailed", "pipe: %s", strerror(errno));
		goto done;
	}
	posix_spawn_file_actions_init(&fa);
	have_fa = 1;
	posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	envp = exec_env(x, &info);
	int e = posix_spawnp(&pid, x->command, &fa, NULL, x->args, envp);
	if (e != 0) {
		pid = -1;
		rc = ctl_error_set(CTL_EAUTH, "ExecPluginFailed", "exec plugin %s: %s", x->command, strerror(e));
		goto done;
	}
	close(fds[1]);
	fds[1] = -1;
	ctl_buf_reset(out);
	out->max = EXEC_OUTPUT_MAX;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		long spent = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (spent >= EXEC_TIMEOUT_MS) {
			kill(pid, SIGKILL);
			rc = ctl_error_set(CTL_EAUTH, "ExecPluginFailed", "exec plugin %s: no answer after %d s",
					   x->command, EXEC_TIMEOUT_MS / 1000);
			goto done;
		}
		struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
		int pr = poll(&pfd, 1, (int)(EXEC_TIMEOUT_MS - spent));
		if (pr < 0 && errno != EINTR) {
			rc = ctl_error_set(CTL_ERR, "ExecPluginFailed", "poll: %s", strerror(errno));
			goto done;
		}
		if (pr <= 0)
			continue;
		ssize_t n = read(fds[0], chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (ctl_buf_append(out, chunk, (size_t)n) != 0) {
			kill(pid, SIGKILL);
			rc = ctl_error_set(CTL_EINVALID, "ExecPluginFailed", "exec plugin %s: output over %u bytes",
					   x->command, EXEC_OUTPUT_MAX);
			goto done;
		}
	}
done:
	if (pid > 0) {
		int status = 0;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (rc == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
			rc = ctl_error_set(CTL_EAUTH, "ExecPluginFailed", "exec plugin %s failed (%s %d)", x->command,
					   WIFEXITED(status) ? "exit status" : "signal",
					   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	}
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	if (have_fa)
		posix_spawn_file_actions_destroy(&fa);
	free(envp);
	free(info);
	return rc;
}

static const char *json_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* Parse an ExecCredential into a's cache. The output holds a secret, so no
 * message quotes it. */
static int exec_parse(struct ctl_kube_auth *a, const struct ctl_kube_exec *x, const char *text)
{
	cJSON *o = cJSON_Parse(text);
	const cJSON *status;
	const char *kind, *api, *token, *cert, *key, *exp;
	time_t expiry = 0;
	int rc = 0;

	if (!cJSON_IsObject(o)) {
		rc = ctl_error_set(CTL_EINVALID, "ExecPluginFailed", "exec plugin %s: output is not a JSON object",
				   x->command);
		goto done;
	}
	kind = json_str(o, "kind");
	api = json_str(o, "apiVersion");
	if (!kind || strcmp(kind, "ExecCredential") != 0 || !api || strcmp(api, x->api_version) != 0) {
		rc = ctl_error_set(CTL_EINVALID, "ExecPluginFailed",
				   "exec plugin %s: output is not an ExecCredential of %s", x->command, x->api_version);
		goto done;
	}
	status = cJSON_GetObjectItemCaseSensitive(o, "status");
	token = json_str(status, "token");
	cert = json_str(status, "clientCertificateData");
	key = json_str(status, "clientKeyData");
	exp = json_str(status, "expirationTimestamp");
	if (!cJSON_IsObject(status) || (!token && !(cert && key))) {
		rc = ctl_error_set(CTL_EINVALID, "ExecPluginFailed",
				   "exec plugin %s: status has neither a token nor a client certificate and key",
				   x->command);
		goto done;
	}
	if (exp && parse_rfc3339(exp, &expiry) != 0) {
		rc = ctl_error_set(CTL_EINVALID, "ExecPluginFailed",
				   "exec plugin %s: expirationTimestamp is not RFC 3339", x->command);
		goto done;
	}
	ctl_kube_creds_dispose(&a->exec);
	a->exec.token = xstrdup(token);
	a->exec.cert_pem = xstrdup(cert);
	a->exec.key_pem = xstrdup(key);
	a->exec_expiry = expiry;
	a->exec_valid = 1;
done:
	if (o) {
		/* Wipe the token out of cJSON's copy before it goes back to malloc. */
		cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "status"), "token");
		if (cJSON_IsString(t))
			explicit_bzero(t->valuestring, strlen(t->valuestring));
		cJSON_Delete(o);
	}
	return rc;
}

/* Make a->exec current. Called with a->mu held. */
static int exec_refresh(struct ctl_kube_auth *a, const struct ctl_kube_exec *x)
{
	struct ctl_buf out = CTL_BUF_INIT;
	int rc;
	if (a->exec_valid && (a->exec_expiry == 0 || time(NULL) < a->exec_expiry - EXPIRY_SLACK_S))
		return 0;
	a->exec_valid = 0;
	if ((rc = exec_run(x, &out)) == 0)
		rc = exec_parse(a, x, ctl_buf_str(&out));
	if (out.ptr)
		explicit_bzero(out.ptr, out.cap);
	ctl_buf_dispose(&out);
	return rc;
}

int ctl_kubeconfig_creds(struct ctl_kube_creds *out, struct ctl_kubeconfig *cfg)
{
	struct ctl_kube_auth *a = cfg->auth;
	int rc = 0;

	out->token = out->cert_pem = out->key_pem = NULL;
	if (!cfg->exec && !cfg->token_file) {
		out->token = xstrdup(cfg->token);
		return 0;
	}
	/* One lock for the refresh and the copy: a burst of requests after a
	 * credential expires runs the plugin once, not once per thread. */
	pthread_mutex_lock(&a->mu);
	if (cfg->exec) {
		if ((rc = exec_refresh(a, cfg->exec)) == 0) {
			out->token = xstrdup(a->exec.token);
			out->cert_pem = xstrdup(a->exec.cert_pem);
			out->key_pem = xstrdup(a->exec.key_pem);
		}
	} else if ((rc = token_file_refresh(a, cfg->token_file)) == 0) {
		out->token = xstrdup(a->file_token);
	}
	pthread_mutex_unlock(&a->mu);
	return rc;
}

int ctl_kubeconfig_invalidate(struct ctl_kubeconfig *cfg)
{
	struct ctl_kube_auth *a = cfg->auth;
	if (!cfg->exec && !cfg->token_file)
		return 0;
	pthread_mutex_lock(&a->mu);
	a->exec_valid = 0;
	a->file_stale = 1;
	pthread_mutex_unlock(&a->mu);
	return 1;
}
