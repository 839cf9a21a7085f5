/* Unit tests for controller/kubeconfig.c: parsing, in-cluster config, the
 * token file and exec plugins (a shell script in a temporary directory). */
#include "test.h"

#include "buf.h"
#include "error.h"
#include "kubeconfig.h"
#include "xalloc.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char *tmpdir(void)
{
	char tmpl[] = "/tmp/acrpool-kubeconfig-XXXXXX";
	char *d = mkdtemp(tmpl);
	CHECK(d != NULL);
	return xstrdup(d);
}

static void rmdir_all(char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char *p = xasprintf("%s/%s", dir, e->d_name);
		unlink(p);
		free(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
	free(dir);
}

static char *write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char *p = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	CHECK(f != NULL);
	fputs(text, f);
	fclose(f);
	chmod(p, mode);
	return p;
}

static int parse(struct ctl_kubeconfig **out, const char *yaml, const char *context)
{
	return ctl_kubeconfig_parse(out, yaml, strlen(yaml), context, NULL);
}

static const char full[] =
	"apiVersion: v1\n"
	"kind: Config\n"
	"current-context: dev\n"
	"contexts:\n"
	"- name: dev\n"
	"  context: {cluster: dev-cluster, user: dev-user, namespace: pools}\n"
	"- name: prod\n"
	"  context:\n"
	"    cluster: prod-cluster\n"
	"    user: prod-user\n"
	"clusters:\n"
	"- name: dev-cluster\n"
	"  cluster:\n"
	"    server: https://dev.example.com:6443/\n"
	"    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tY2E=\n"
	"- name: prod-cluster\n"
	"  cluster:\n"
	"    server: https://prod.example.com\n"
	"    certificate-authority: /etc/prod-ca.crt\n"
	"    insecure-skip-tls-verify: true\n"
	"    tls-server-name: kubernetes\n"
	"users:\n"
	"- name: dev-user\n"
	"  user:\n"
	"    client-certificate-data: Y2VydC1wZW0=\n"
	"    client-key-data: a2V5LXBlbSE=\n"
	"- name: prod-user\n"
	"  user:\n"
	"    token: prod-token\n";

TEST(kubeconfig_current_context_with_inline_data)
{
	struct ctl_kubeconfig *cfg;
	CHECK_INT(parse(&cfg, full, NULL), 0);
	CHECK_STR(cfg->context, "dev");
	CHECK_STR(cfg->server, "https://dev.example.com:6443");
	CHECK_STR(cfg->namespace, "pools");
	CHECK_INT(cfg->ca_len, 29);
	CHECK_STR(cfg->ca_data, "-----BEGIN CERTIFICATE-----ca");
	CHECK_STR(cfg->cert_data, "cert-pem");
	CHECK_INT(cfg->cert_len, 8);
	CHECK_STR(cfg->key_data, "key-pem!");
	CHECK(cfg->ca_file == NULL && cfg->token == NULL && cfg->exec == NULL);
	CHECK_INT(cfg->insecure, 0);
	struct ctl_kube_creds creds = CTL_KUBE_CREDS_INIT;
	CHECK_INT(ctl_kubeconfig_creds(&creds, cfg), 0);
	CHECK(creds.token == NULL && creds.cert_pem == NULL);
	CHECK_INT(ctl_kubeconfig_invalidate(cfg), 0); /* nothing to refresh */
	ctl_kube_creds_dispose(&creds);
	ctl_kubeconfig_free(cfg);
}

TEST(kubeconfig_named_context)
{
	struct ctl_kubeconfig *cfg;
	CHECK_INT(parse(&cfg, full, "prod"), 0);
	CHECK_STR(cfg->server, "https://prod.example.com");
	CHECK_STR(cfg->namespace, "default");
	CHECK_STR(cfg->ca_file, "/etc/prod-ca.crt");
	CHECK_INT(cfg->insecure, 1);
	CHECK_STR(cfg->tls_server_name, "kubernetes");
	struct ctl_kube_creds creds = CTL_KUBE_CREDS_INIT;
	CHECK_INT(ctl_kubeconfig_creds(&creds, cfg), 0);
	CHECK_STR(creds.token, "prod-token");
	ctl_kube_creds_dispose(&creds);
	ctl_kubeconfig_free(cfg);
}

TEST(kubeconfig_malformed_is_invalid_with_a_clear_message)
{
	static const struct {
		const char *yaml, *context, *says;
	} cases[] = {
		{"contexts: [{name: a, context: {cluster: c}}]\n", "missing", "context \"missing\" not found"},
		{"contexts: []\n", NULL, "no current-context"},
		{"{{{ not: yaml", NULL, "not YAML"},
		{"key: [unclosed\n", NULL, "not YAML"},
		{"just a string\n", NULL, "top level must be a mapping"},
		{"", NULL, "empty"},
		{"current-context: a\ncontexts: nope\n", NULL, "contexts must be a sequence"},
		{"current-context: a\ncontexts: [plain]\n", NULL, "contexts[0] must be a mapping"},
		{"current-context: a\ncontexts: [{name: a, context: {user: u}}]\n", NULL, "names no cluster"},
		{"current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n", NULL, "cluster \"c\" not found"},
		{"current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n"
		 "clusters: [{name: c, cluster: {server: [1, 2]}}]\n", NULL, "server must be a string"},
		{"current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n"
		 "clusters: [{name: c, cluster: {}}]\n", NULL, "has no server"},
		{"current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n"
		 "clusters: [{name: c, cluster: {server: 'ftp://x'}}]\n", NULL, "http(s) URL"},
		{"current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n"
		 "clusters: [{name: c, cluster: {server: 'https://x', insecure-skip-tls-verify: maybe}}]\n", NULL,
		 "true or false"},
		{"current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n"
		 "clusters: [{name: c, cluster: {server: 'https://x', certificate-authority-data: 'not*base64'}}]\n",
		 NULL, "certificate-authority-data is not valid base64"},
		{"current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n"
		 "clusters: [{name: c, cluster: {server: 'https://x', certificate-authority-data: 'QUJD='}}]\n",
		 NULL, "not valid base64"},
		{"current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
		 "clusters: [{name: c, cluster: {server: 'https://x'}}]\n", NULL, "user \"u\" not found"},
		{"current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
		 "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
		 "users: [{name: u, user: {client-certificate-data: Y2VydC1wZW0=}}]\n", NULL, "needs a client key"},
		{"current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
		 "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
		 "users: [{name: u, user: {client-key-data: '@@@@'}}]\n", NULL, "client-key-data is not valid base64"},
		{"current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
		 "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
		 "users: [{name: u, user: {exec: {command: x, apiVersion: client.authentication.k8s.io/v1alpha1}}}]\n",
		 NULL, "apiVersion must be"},
		{"current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
		 "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
		 "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1}}}]\n",
		 NULL, "has no command"},
		{"current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
		 "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
		 "users: [{name: u, user: {exec: {command: x, apiVersion: client.authentication.k8s.io/v1, "
		 "args: [{a: b}]}}}]\n", NULL, "args[0] must be a string"},
		{"current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
		 "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
		 "users: [{name: u, user: {exec: {command: x, apiVersion: client.authentication.k8s.io/v1, "
		 "env: [{value: v}]}}}]\n", NULL, "env[0] needs a name"},
		{"current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
		 "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
		 "users: [{name: u, user: {auth-provider: {name: azure}}}]\n", NULL, "auth-provider is not supported"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctl_kubeconfig *cfg = (struct ctl_kubeconfig *)1;
		int rc = parse(&cfg, cases[i].yaml, cases[i].context);
		CHECK_INT(rc, CTL_EINVALID);
		CHECK(cfg == NULL);
		if (!strstr(ctl_error_last()->message, cases[i].says)) {
			fprintf(stderr, "case %zu: message \"%s\" lacks \"%s\"\n", i, ctl_error_last()->message,
				cases[i].says);
			CHECK(0);
		}
	}
}

TEST(kubeconfig_load_resolves_relative_paths_and_reads_token_file)
{
	char *dir = tmpdir();
	char *tok = write_file(dir, "token", "first-token\n", 0600);
	char *kc = write_file(dir, "config",
			      "current-context: a\n"
			      "contexts: [{name: a, context: {cluster: c, user: u}}]\n"
			      "clusters: [{name: c, cluster: {server: 'https://x', certificate-authority: ca.crt}}]\n"
			      "users: [{name: u, user: {tokenFile: token, client-certificate: sub/c.crt, "
			      "client-key: /abs/c.key}}]\n", 0600);
	struct ctl_kubeconfig *cfg;
	struct ctl_kube_creds creds = CTL_KUBE_CREDS_INIT;
	CHECK_INT(ctl_kubeconfig_load(&cfg, kc, NULL), 0);
	char *want = xasprintf("%s/ca.crt", dir);
	CHECK_STR(cfg->ca_file, want);
	free(want);
	want = xasprintf("%s/sub/c.crt", dir);
	CHECK_STR(cfg->cert_file, want);
	free(want);
	CHECK_STR(cfg->key_file, "/abs/c.key");
	CHECK_STR(cfg->token_file, tok);

	CHECK_INT(ctl_kubeconfig_creds(&creds, cfg), 0);
	CHECK_STR(creds.token, "first-token");
	ctl_kube_creds_dispose(&creds);

	/* A rotation shows as a new mtime: picked up without being told. */
	free(write_file(dir, "token", "second-token", 0600));
	struct timespec times[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
	utimensat(AT_FDCWD, tok, times, 0);
	CHECK_INT(ctl_kubeconfig_creds(&creds, cfg), 0);
	CHECK_STR(creds.token, "second-token");
	ctl_kube_creds_dispose(&creds);

	/* After a 401 the file is read again even with the same mtime. */
	free(write_file(dir, "token", "third-token", 0600));
	utimensat(AT_FDCWD, tok, times, 0);
	CHECK_INT(ctl_kubeconfig_creds(&creds, cfg), 0);
	CHECK_STR(creds.token, "second-token");
	ctl_kube_creds_dispose(&creds);
	CHECK_INT(ctl_kubeconfig_invalidate(cfg), 1);
	CHECK_INT(ctl_kubeconfig_creds(&creds, cfg), 0);
	CHECK_STR(creds.token, "third-token");
	ctl_kube_creds_dispose(&creds);

	/* A vanished file keeps the last good token. */
	unlink(tok);
	ctl_kubeconfig_invalidate(cfg);
	CHECK_INT(ctl_kubeconfig_creds(&creds, cfg), 0);
	CHECK_STR(creds.token, "third-token");
	ctl_kube_creds_dispose(&creds);

	ctl_kubeconfig_free(cfg);
	free(tok);
	free(kc);
	rmdir_all(dir);
}

TEST(kubeconfig_load_missing_file_is_not_found)
{
	struct ctl_kubeconfig *cfg;
	CHECK_INT(ctl_kubeconfig_load(&cfg, "/nonexistent/acrpool/kubeconfig", NULL), CTL_ENOTFOUND);
	CHECK(cfg == NULL);
	setenv("KUBECONFIG", "/nonexistent/a:/nonexistent/b", 1);
	CHECK_INT(ctl_kubeconfig_load(&cfg, NULL, NULL), CTL_ENOTFOUND);
	unsetenv("KUBECONFIG");
}

/* The plugin counts its runs in a file next to it and mints tok-<arg>-<n>,
 * expiring at $EXPIRY (from the kubeconfig's env). */
static const char plugin[] =
	"#!/bin/sh\n"
	"d=$(dirname \"$0\")\n"
	"n=$(cat \"$d/count\" 2>/dev/null || echo 0)\n"
	"n=$((n + 1))\n"
	"echo $n > \"$d/count\"\n"
	"case \"$KUBERNETES_EXEC_INFO\" in *'\"interactive\":false'*) ;; *) exit 3 ;; esac\n"
	"printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
	"\"status\":{\"token\":\"tok-%s-%s\",\"expirationTimestamp\":\"%s\"}}' \"$1\" \"$n\" \"$EXPIRY\"\n";

static struct ctl_kubeconfig *exec_config(const char *dir, const char *expiry, const char *script)
{
	struct ctl_kubeconfig *cfg = NULL;
	free(write_file(dir, "plugin.sh", script, 0700));
	char *yaml = xasprintf("current-context: a\n"
			       "contexts: [{name: a, context: {cluster: c, user: u}}]\n"
			       "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
			       "users:\n"
			       "- name: u\n"
			       "  user:\n"
			       "    exec:\n"
			       "      apiVersion: client.authentication.k8s.io/v1\n"
			       "      command: ./plugin.sh\n"
			       "      args: [arg1]\n"
			       "      env: [{name: EXPIRY, value: '%s'}]\n"
			       "      interactiveMode: Never\n", expiry);
	CHECK_INT(ctl_kubeconfig_parse(&cfg, yaml, strlen(yaml), NULL, dir), 0);
	free(yaml);
	return cfg;
}

static int run_count(const char *dir)
{
	char *p = xasprintf("%s/count", dir);
	FILE *f = fopen(p, "r");
	int n = 0;
	if (f) {
		if (fscanf(f, "%d", &n) != 1)
			n = -1;
		fclose(f);
	}
	free(p);
	return n;
}

TEST(kubeconfig_exec_plugin_runs_once_until_invalidated)
{
	char *dir = tmpdir();
	struct ctl_kubeconfig *cfg = exec_config(dir, "2999-01-01T00:00:00Z", plugin);
	struct ctl_kube_creds creds = CTL_KUBE_CREDS_INIT;
	char *want = xasprintf("%s/./plugin.sh", dir);
	CHECK_STR(cfg->exec->command, want);
	free(want);
	CHECK_INT(ctl_kubeconfig_creds(&creds, cfg), 0);
	CHECK_STR(creds.token, "tok-arg1-1");
	ctl_kube_creds_dispose(&creds);
	CHECK_INT(ctl_kubeconfig_creds(&creds, cfg), 0);
	CHECK_STR(creds.token, "tok-arg1-1");
	ctl_kube_creds_dispose(&creds);
	CHECK_INT(run_count(dir), 1);
	/* A 401: run it again. */
	CHECK_INT(ctl_kubeconfig_invalidate(cfg), 1);
	CHECK_INT(ctl_kubeconfig_creds(&creds, cfg), 0);
	CHECK_STR(creds.token, "tok-arg1-2");
	ctl_kube_creds_dispose(&creds);
	CHECK_INT(run_count(dir), 2);
	ctl_kubeconfig_free(cfg);
	rmdir_all(dir);
}

TEST(kubeconfig_exec_expired_credential_runs_again)
{
	char *dir = tmpdir();
	struct ctl_kubeconfig *cfg = exec_config(dir, "2001-01-01T00:00:00.5+02:00", plugin);
	struct ctl_kube_creds creds = CTL_KUBE_CREDS_INIT;
	for (int i = 1; i <= 3; i++) {
		CHECK_INT(ctl_kubeconfig_creds(&creds, cfg), 0);
		ctl_kube_creds_dispose(&creds);
	}
	CHECK_INT(run_count(dir), 3);
	ctl_kubeconfig_free(cfg);
	rmdir_all(dir);
}

TEST(kubeconfig_exec_failures)
{
	static const struct {
		const char *script;
		int code;
		const char *says;
	} cases[] = {
		{"#!/bin/sh\necho 'login required' >&2\nexit 1\n", CTL_EAUTH, "exit status 1"},
		{"#!/bin/sh\necho 'not json'\n", CTL_EINVALID, "not a JSON object"},
		{"#!/bin/sh\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\","
		 "\"status\":{\"token\":\"t\"}}'\n", CTL_EINVALID, "not an ExecCredential of client.authentication.k8s.io/v1"},
		{"#!/bin/sh\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
		 "\"status\":{}}'\n", CTL_EINVALID, "neither a token"},
		{"#!/bin/sh\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
		 "\"status\":{\"token\":\"sekret\",\"expirationTimestamp\":\"tomorrow\"}}'\n", CTL_EINVALID, "RFC 3339"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *dir = tmpdir();
		struct ctl_kubeconfig *cfg = exec_config(dir, "", cases[i].script);
		struct ctl_kube_creds creds = CTL_KUBE_CREDS_INIT;
		CHECK_INT(ctl_kubeconfig_creds(&creds, cfg), cases[i].code);
		CHECK(creds.token == NULL);
		CHECK(strstr(ctl_error_last()->message, cases[i].says) != NULL);
		CHECK(strstr(ctl_error_last()->message, "sekret") == NULL);
		ctl_kubeconfig_free(cfg);
		rmdir_all(dir);
	}
}

TEST(kubeconfig_exec_missing_command_is_auth_error)
{
	struct ctl_kubeconfig *cfg;
	struct ctl_kube_creds creds = CTL_KUBE_CREDS_INIT;
	const char *yaml = "current-context: a\n"
			   "contexts: [{name: a, context: {cluster: c, user: u}}]\n"
			   "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
			   "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1, "
			   "command: acrpool-no-such-plugin}}}]\n";
	CHECK_INT(parse(&cfg, yaml, NULL), 0);
	CHECK_INT(ctl_kubeconfig_creds(&creds, cfg), CTL_EAUTH);
	ctl_kubeconfig_free(cfg);
}

TEST(kubeconfig_in_cluster)
{
	char *dir = tmpdir();
	free(write_file(dir, "token", "sa-token\n", 0600));
	free(write_file(dir, "ca.crt", "-----BEGIN CERTIFICATE-----\n", 0600));
	free(write_file(dir, "namespace", "acrpool-system\n", 0600));
	struct ctl_kubeconfig *cfg;
	struct ctl_kube_creds creds = CTL_KUBE_CREDS_INIT;

	unsetenv("KUBERNETES_SERVICE_HOST");
	CHECK_INT(ctl_kubeconfig_in_cluster(&cfg), CTL_ENOTFOUND);

	setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	setenv("ACRPOOL_SA_DIR", dir, 1);
	CHECK_INT(ctl_kubeconfig_auto(&cfg, NULL, NULL), 0);
	CHECK_STR(cfg->server, "https://10.0.0.1:443");
	CHECK_STR(cfg->namespace, "acrpool-system");
	char *ca = xasprintf("%s/ca.crt", dir);
	CHECK_STR(cfg->ca_file, ca);
	free(ca);
	CHECK_INT(ctl_kubeconfig_creds(&creds, cfg), 0);
	CHECK_STR(creds.token, "sa-token");
	ctl_kube_creds_dispose(&creds);
	ctl_kubeconfig_free(cfg);

	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	CHECK_INT(ctl_kubeconfig_in_cluster(&cfg), 0);
	CHECK_STR(cfg->server, "https://[fd00::1]:443");
	ctl_kubeconfig_free(cfg);

	/* No token: refuse to start rather than fail every request. */
	char *tok = xasprintf("%s/token", dir);
	unlink(tok);
	free(tok);
	CHECK_INT(ctl_kubeconfig_in_cluster(&cfg), CTL_ENOTFOUND);
	CHECK(cfg == NULL);

	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	unsetenv("ACRPOOL_SA_DIR");
	rmdir_all(dir);
}

TEST_MAIN(T(kubeconfig_current_context_with_inline_data), T(kubeconfig_named_context),
	  T(kubeconfig_malformed_is_invalid_with_a_clear_message),
	  T(kubeconfig_load_resolves_relative_paths_and_reads_token_file), T(kubeconfig_load_missing_file_is_not_found),
	  T(kubeconfig_exec_plugin_runs_once_until_invalidated), T(kubeconfig_exec_expired_credential_runs_again),
	  T(kubeconfig_exec_failures), T(kubeconfig_exec_missing_command_is_auth_error), T(kubeconfig_in_cluster))
