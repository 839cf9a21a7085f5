/*
 * fuzz_kubeconfig.c: kubeconfig YAML from memory (ctl_kubeconfig_parse),
 * for the current context and for a named one, with and without a base
 * directory. Nothing is read from disk and no exec plugin is run: a parsed
 * config is only checked for the invariants kube.c relies on.
 */
#include "fuzz.h"

#include "error.h"
#include "kubeconfig.h"

static void check(const struct ctl_kubeconfig *cfg)
{
	size_t n = strlen(cfg->server);
	FUZZ_ASSERT(strncmp(cfg->server, "http", 4) == 0);
	FUZZ_ASSERT(n == 0 || cfg->server[n - 1] != '/');
	FUZZ_ASSERT(cfg->namespace && cfg->context);
	FUZZ_ASSERT(!cfg->ca_data || cfg->ca_data[cfg->ca_len] == '\0');
	FUZZ_ASSERT(!cfg->cert_data || cfg->cert_len > 0);
	FUZZ_ASSERT(!cfg->key_data || cfg->key_len > 0);
	if (cfg->exec) {
		FUZZ_ASSERT(cfg->exec->command && cfg->exec->args && cfg->exec->env);
		FUZZ_ASSERT(strcmp(cfg->exec->args[0], cfg->exec->command) == 0);
		for (char **e = cfg->exec->env; *e; e++)
			FUZZ_ASSERT(strchr(*e, '=') != NULL);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const contexts[] = {NULL, "ctx", "kind-kind"};
	uint64_t h = fuzz_hash(data, size);
	char *yaml = fuzz_bytes(data, size);
	struct ctl_kubeconfig *cfg = NULL;

	int rc = ctl_kubeconfig_parse(&cfg, yaml, size, contexts[h % 3], (h & 4) ? "/etc/kube" : NULL);
	FUZZ_ASSERT(rc == 0 || rc == CTL_EINVALID);
	FUZZ_ASSERT((rc == 0) == (cfg != NULL));
	if (cfg)
		check(cfg);
	ctl_kubeconfig_free(cfg);
	free(yaml);
	return 0;
}
