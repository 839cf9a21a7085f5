/*
 * pipelineagentpool_spec.c: name parsing, the template hash and the
 * environment of a PipelineAgentPool's containers (see the header).
 */
#include "pipelineagentpool_spec.h"

#include "buf.h"
#include "xalloc.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pipelineagentpool_index(const char *prefix, const char *name)
{
	size_t pl = strlen(prefix);
	if (!name || strncmp(name, prefix, pl) != 0 || name[pl] != '-')
		return -1;
	const char *d = name + pl + 1;
	size_t len = strlen(d);
	if (len == 0 || len > 6 || (len > 1 && d[0] == '0'))
		return -1;
	int v = 0;
	for (size_t i = 0; i < len; i++) {
		if (d[i] < '0' || d[i] > '9')
			return -1;
		v = v * 10 + (d[i] - '0');
	}
	return v;
}

static void feed(EVP_MD_CTX *ctx, const char *field, const char *value)
{
	/* field=value\n with the value's length first: no two inputs give
	 * the same text. */
	char head[160];
	size_t vl = value ? strlen(value) : 0;
	int hl = snprintf(head, sizeof(head), "%s=%zu:", field, value ? vl : (size_t)-1);
	EVP_DigestUpdate(ctx, head, (size_t)hl);
	if (vl)
		EVP_DigestUpdate(ctx, value, vl);
	EVP_DigestUpdate(ctx, "\n", 1);
}

static void feed_num(EVP_MD_CTX *ctx, const char *field, const cJSON *v, double def)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%.6g", cJSON_IsNumber(v) ? v->valuedouble : def);
	feed(ctx, field, buf);
}

static int by_string(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void pipelineagentpool_template_hash(char out[17], const cJSON *aci, const char *const *secret_rvs)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		abort();
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	feed(ctx, "v", "1");
	feed(ctx, "location", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(aci, "location")));
	feed(ctx, "image", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(aci, "image")));
	feed_num(ctx, "cpu", cJSON_GetObjectItemCaseSensitive(aci, "cpu"), 1);
	feed_num(ctx, "memoryInGB", cJSON_GetObjectItemCaseSensitive(aci, "memoryInGB"), 2);
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(aci, "subnetIds"))
		feed(ctx, "subnet", cJSON_GetStringValue(it));
	const cJSON *pull = cJSON_GetObjectItemCaseSensitive(aci, "imagePull");
	if (cJSON_IsObject(pull)) {
		feed(ctx, "pull.server", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pull, "server")));
		/* Only when set: a hash that moved for every existing object
		 * would roll every instance on an operator upgrade. */
		const char *ref = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(pull, "registryRef"), "name"));
		if (ref)
			feed(ctx, "pull.registryRef", ref);
		feed(ctx, "pull.identity", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pull, "identityId")));
	}
	size_t i = 0;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(aci, "environment")) {
		feed(ctx, "env", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "name")));
		const cJSON *ref = cJSON_GetObjectItemCaseSensitive(it, "secretKeyRef");
		if (cJSON_IsObject(ref)) {
			feed(ctx, "env.secret", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ref, "name")));
			feed(ctx, "env.key", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ref, "key")));
			feed(ctx, "env.rv", secret_rvs ? secret_rvs[i] : NULL);
		} else {
			feed(ctx, "env.value", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "value")));
		}
		i++;
	}
	const cJSON *tags = cJSON_GetObjectItemCaseSensitive(aci, "tags");
	size_t nt = cJSON_IsObject(tags) ? (size_t)cJSON_GetArraySize(tags) : 0;
	const char **names = xcalloc(nt + 1, sizeof(*names));
	size_t k = 0;
	cJSON_ArrayForEach(it, tags)
		names[k++] = it->string;
	qsort(names, k, sizeof(*names), by_string);
	for (size_t j = 0; j < k; j++) {
		feed(ctx, "tag", names[j]);
		feed(ctx, "tag.value", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tags, names[j])));
	}
	free(names);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	for (int j = 0; j < 8; j++)
		snprintf(out + 2 * j, 3, "%02x", md[j]);
	out[16] = '\0';
}

void pipelineagentpool_env(struct arm_container_env_var **out, size_t *n, const struct pipelineagentpool_agent_env *e,
			   const cJSON *env, const char *const *secret_values, char numbuf[2][24],
			   char **passthrough)
{
	size_t cap = 9 + (size_t)(cJSON_IsArray(env) ? cJSON_GetArraySize(env) : 0);
	struct ctl_buf names = CTL_BUF_INIT;
	struct arm_container_env_var *v = xcalloc(cap, sizeof(*v));
	size_t k = 0;
	snprintf(numbuf[0], 24, "%lld", (long long)e->pool_id);
	snprintf(numbuf[1], 24, "%lld", (long long)e->agent_id);
	v[k++] = (struct arm_container_env_var){"AZP_URL", e->url, NULL};
	v[k++] = (struct arm_container_env_var){"AZP_POOL", e->pool, NULL};
	v[k++] = (struct arm_container_env_var){"AZP_POOL_ID", numbuf[0], NULL};
	v[k++] = (struct arm_container_env_var){"AZP_AGENT_NAME", e->agent_name, NULL};
	v[k++] = (struct arm_container_env_var){"AZP_AGENT_ID", numbuf[1], NULL};
	v[k++] = (struct arm_container_env_var){"AZP_AGENT_CLIENT_ID", e->client_id ? e->client_id : "", NULL};
	v[k++] = (struct arm_container_env_var){"AZP_AGENT_AUTH_URL", e->auth_url ? e->auth_url : "", NULL};
	v[k++] = (struct arm_container_env_var){"AZP_AGENT_KEY", NULL, e->key ? e->key : ""};
	size_t i = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, env) {
		const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "name"));
		const cJSON *ref = cJSON_GetObjectItemCaseSensitive(it, "secretKeyRef");
		size_t before = k;
		if (name && cJSON_IsObject(ref)) {
			const char *sv = secret_values ? secret_values[i] : NULL;
			if (sv)
				v[k++] = (struct arm_container_env_var){name, NULL, sv};
		} else if (name) {
			const char *pv = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "value"));
			v[k++] = (struct arm_container_env_var){name, pv ? pv : "", NULL};
		}
		if (k > before)
			ctl_buf_printf(&names, "%s%s", names.len ? "," : "", name);
		i++;
	}
	/* start.sh hands the agent and its jobs only an allowlist of variables
	 * plus those AZP_ENV_PASSTHROUGH names: the spec's own. */
	*passthrough = names.len ? xstrdup(names.ptr) : NULL;
	if (*passthrough)
		v[k++] = (struct arm_container_env_var){"AZP_ENV_PASSTHROUGH", *passthrough, NULL};
	ctl_buf_dispose(&names);
	*out = v;
	*n = k;
}
