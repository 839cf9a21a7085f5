/*
 * kubeconfig.h: where the API server is and how to prove who we are.
 *
 * A struct ctl_kubeconfig is loaded once, either from a kubeconfig file
 * (the current context or a named one) or from the in-cluster service
 * account, and then handed to ctl_kube_client_new(), which owns it. The
 * connection fields (server, CA, client certificate, namespace) never change
 * after loading. The credentials that do change are fetched per request with
 * ctl_kubeconfig_creds(): a token file is re-read as the kubelet rotates it,
 * and an exec credential plugin (kubelogin for AKS) is run again when its
 * credential expires or the server answers 401. That state lives behind a
 * mutex inside the struct, so one config serves every thread.
 *
 * Inline data (certificate-authority-data, client-certificate-data,
 * client-key-data) is base64-decoded at load time and kept in memory; it is
 * handed to libcurl as blobs and never written to disk.
 */
#ifndef CTL_KUBECONFIG_H
#define CTL_KUBECONFIG_H

#include <stddef.h>

#define CTL_SA_DIR_DEFAULT "/var/run/secrets/kubernetes.io/serviceaccount"

/* An exec credential plugin (users[].user.exec). */
struct ctl_kube_exec {
	char *api_version;  /* client.authentication.k8s.io/v1 or v1beta1 */
	char *command;      /* resolved against the kubeconfig's directory if relative with a '/' */
	char **args;        /* NULL-terminated, args[0] is the command */
	char **env;         /* NULL-terminated "NAME=value" strings added to our environment */
};

struct ctl_kube_auth; /* private: token file and exec plugin cache */

struct ctl_kubeconfig {
	char *server;             /* "https://host:port", no trailing slash */
	char *namespace;          /* the context's namespace, or "default" */
	char *context;            /* name of the context used, or "in-cluster" */
	int insecure;             /* insecure-skip-tls-verify */
	char *tls_server_name;    /* tls-server-name, or NULL */

	char *ca_file;            /* certificate-authority, or NULL */
	char *ca_data;            /* decoded certificate-authority-data (PEM), or NULL */
	size_t ca_len;
	char *cert_file;          /* client-certificate, or NULL */
	char *cert_data;          /* decoded client-certificate-data, or NULL */
	size_t cert_len;
	char *key_file;           /* client-key, or NULL */
	char *key_data;           /* decoded client-key-data, or NULL */
	size_t key_len;

	char *token;              /* static bearer token, or NULL */
	char *token_file;         /* tokenFile or the service account token, or NULL */
	struct ctl_kube_exec *exec; /* exec plugin, or NULL */

	struct ctl_kube_auth *auth;
};

/* The credentials for one request: a copy the caller disposes of. Any field
 * may be NULL. cert_pem/key_pem come from an exec plugin only; static client
 * certificates are in the config itself. */
struct ctl_kube_creds {
	char *token;
	char *cert_pem;
	char *key_pem;
};

#define CTL_KUBE_CREDS_INIT {NULL, NULL, NULL}

/* Load a kubeconfig file. path NULL means the first existing file of
 * $KUBECONFIG (a colon-separated list; files are not merged) or else
 * ~/.kube/config. context NULL means current-context. Relative paths inside
 * the file are resolved against the file's directory, as kubectl does.
 * Returns 0, CTL_ENOTFOUND when there is no file, CTL_ERR when it cannot be
 * read, or CTL_EINVALID when it is malformed or names a context, cluster or
 * user it does not define; the message says which. */
int ctl_kubeconfig_load(struct ctl_kubeconfig **out, const char *path, const char *context);

/* Parse a kubeconfig from memory. base_dir resolves relative paths (NULL:
 * leave them as they are). Errors as ctl_kubeconfig_load. */
int ctl_kubeconfig_parse(struct ctl_kubeconfig **out, const char *yaml, size_t len,
			 const char *context, const char *base_dir);

/* The in-cluster config: KUBERNETES_SERVICE_HOST and _PORT, and the service
 * account directory (ACRPOOL_SA_DIR, default CTL_SA_DIR_DEFAULT) with token,
 * ca.crt and namespace. Returns 0; CTL_ENOTFOUND when not in a cluster (no
 * KUBERNETES_SERVICE_HOST) or when the token file is missing; CTL_ERR when
 * it cannot be read. */
int ctl_kubeconfig_in_cluster(struct ctl_kubeconfig **out);

/* What the operator does at start: an explicit path (flag) wins, then the
 * in-cluster config when KUBERNETES_SERVICE_HOST is set, then $KUBECONFIG
 * and ~/.kube/config. Errors as above. */
int ctl_kubeconfig_auto(struct ctl_kubeconfig **out, const char *path, const char *context);

void ctl_kubeconfig_free(struct ctl_kubeconfig *cfg);

/* Fill out with the credentials to send now: the static token, the token
 * file's content (re-read when its mtime changes, at least every minute, and
 * after ctl_kubeconfig_invalidate), or the exec plugin's cached credential
 * (re-run when expired or invalidated). Thread-safe. Returns 0; CTL_ERR when
 * the token file cannot be read; CTL_EAUTH when the plugin fails;
 * CTL_EINVALID when its output is not an ExecCredential. */
int ctl_kubeconfig_creds(struct ctl_kube_creds *out, struct ctl_kubeconfig *cfg);

/* The server refused our credentials (401): forget cached ones. Returns 1
 * when fetching them again may give different ones (token file, exec), so
 * a retry is worth it, else 0. */
int ctl_kubeconfig_invalidate(struct ctl_kubeconfig *cfg);

/* Wipe and free the strings in c. */
void ctl_kube_creds_dispose(struct ctl_kube_creds *c);

#endif
