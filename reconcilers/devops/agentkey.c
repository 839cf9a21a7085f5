/*
 * agentkey.c: an Azure Pipelines agent's RSA key on OpenSSL 3 (see
 * agentkey.h). Owns one EVP_PKEY per key; the .credentials_rsaparams JSON
 * is written into buffers sized up front, so no reallocation leaves a copy
 * of private bytes behind, and every buffer that held them is cleansed
 * before it is freed.
 */
#include "devops/agentkey.h"

#include "error.h"
#include "xalloc.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct agentkey {
	EVP_PKEY *pkey;
	int bits;
};

/* The ctl_error for a failed OpenSSL call: its reason string only (never
 * data), and the queue emptied so it does not leak into a later call. */
static int openssl_error(const char *what)
{
	unsigned long e = ERR_get_error();
	char reason[160] = "";
	if (e)
		ERR_error_string_n(e, reason, sizeof(reason));
	ERR_clear_error();
	return ctl_error_set(CTL_ERR, "OpenSSLError", "%s failed%s%s", what, reason[0] ? ": " : "", reason);
}

int agentkey_generate(struct agentkey **out, int bits)
{
	int rc = CTL_ERR;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;

	*out = NULL;
	if (bits == 0)
		bits = AGENTKEY_BITS;
	if (bits < 1024 || bits > 8192 || bits % 8)
		return ctl_error_set(CTL_EINVALID, "InvalidKeySize", "agent key size %d is not 1024..8192 bits", bits);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (!ctx || EVP_PKEY_keygen_init(ctx) <= 0 || EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits) <= 0 ||
	    EVP_PKEY_generate(ctx, &pkey) <= 0) {
		rc = openssl_error("generating the agent's RSA key");
		goto done;
	}
	struct agentkey *k = xcalloc(1, sizeof(*k));
	k->pkey = pkey;
	k->bits = bits;
	pkey = NULL;
	*out = k;
	rc = 0;
done:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

void agentkey_free(struct agentkey *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey); /* RSA_free clears the private numbers */
	OPENSSL_cleanse(k, sizeof(*k));
	free(k);
}

int agentkey_bits(const struct agentkey *k)
{
	return k->bits;
}

/* One RSA number of the key (caller frees it with BN_clear_free), or NULL. */
static BIGNUM *param(const struct agentkey *k, const char *name)
{
	BIGNUM *bn = NULL;
	return EVP_PKEY_get_bn_param(k->pkey, name, &bn) > 0 ? bn : NULL;
}

/* base64 of bn as big-endian bytes, left-padded to len bytes (len 0: its
 * minimal length) into a new buffer the caller cleanses and frees; *n gets
 * the string's length. NULL when bn does not fit in len. */
static char *b64_bn(const BIGNUM *bn, int len, size_t *n)
{
	int bytes = len > 0 ? len : BN_num_bytes(bn);
	if (bytes < 1)
		bytes = 1;
	unsigned char *raw = xmalloc((size_t)bytes);
	char *b64 = NULL;
	if (BN_bn2binpad(bn, raw, bytes) == bytes) {
		size_t cap = 4 * (((size_t)bytes + 2) / 3) + 1;
		b64 = xmalloc(cap);
		*n = (size_t)EVP_EncodeBlock((unsigned char *)b64, raw, bytes);
	}
	OPENSSL_cleanse(raw, (size_t)bytes);
	free(raw);
	return b64;
}

static void secret_free(char *s, size_t n)
{
	if (s) {
		OPENSSL_cleanse(s, n);
		free(s);
	}
}

cJSON *agentkey_public_json(const struct agentkey *k)
{
	BIGNUM *n = param(k, OSSL_PKEY_PARAM_RSA_N), *e = param(k, OSSL_PKEY_PARAM_RSA_E);
	cJSON *o = NULL;
	size_t ln = 0, le = 0;
	char *mod = n ? b64_bn(n, 0, &ln) : NULL, *exp = e ? b64_bn(e, 0, &le) : NULL;
	if (mod && exp) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "exponent", exp);
		cJSON_AddStringToObject(o, "modulus", mod);
	}
	free(mod);
	free(exp);
	BN_free(n);
	BN_free(e);
	return o;
}

/* The members of .credentials_rsaparams that are byte arrays, in the order
 * RSAParametersSerializable writes them, with their OpenSSL names and the
 * length .NET gives each (1: the key size, 2: half of it, 0: minimal). */
static const struct {
	const char *json, *ossl;
	int size;
} fields[] = {
	{"d", OSSL_PKEY_PARAM_RSA_D, 1},
	{"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1, 2},
	{"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2, 2},
	{"exponent", OSSL_PKEY_PARAM_RSA_E, 0},
	{"inverseQ", OSSL_PKEY_PARAM_RSA_COEFFICIENT1, 2},
	{"modulus", OSSL_PKEY_PARAM_RSA_N, 1},
	{"p", OSSL_PKEY_PARAM_RSA_FACTOR1, 2},
	{"q", OSSL_PKEY_PARAM_RSA_FACTOR2, 2},
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

int agentkey_rsaparams(char **out, const struct agentkey *k)
{
	int rc = CTL_ERR;
	char *v[NFIELDS] = {0};
	size_t vn[NFIELDS] = {0};
	int bytes = (k->bits + 7) / 8;
	static const char head[] = "{\"ContainerName\":\"\",\"UseCng\":false";

	*out = NULL;
	size_t total = sizeof(head) + 2; /* head, "}", NUL */
	for (size_t i = 0; i < NFIELDS; i++) {
		BIGNUM *bn = param(k, fields[i].ossl);
		int len = fields[i].size == 1 ? bytes : fields[i].size == 2 ? bytes / 2 : 0;
		v[i] = bn ? b64_bn(bn, len, &vn[i]) : NULL;
		BN_clear_free(bn);
		if (!v[i]) {
			rc = ctl_error_set(CTL_ERR, "OpenSSLError", "reading RSA parameter %s of the agent's key",
					   fields[i].json);
			goto done;
		}
		total += strlen(fields[i].json) + vn[i] + 6; /* ,"name":"value" */
	}
	char *s = xmalloc(total);
	size_t off = (size_t)snprintf(s, total, "%s", head);
	for (size_t i = 0; i < NFIELDS; i++)
		off += (size_t)snprintf(s + off, total - off, ",\"%s\":\"%s\"", fields[i].json, v[i]);
	snprintf(s + off, total - off, "}");
	*out = s;
	rc = 0;
done:
	for (size_t i = 0; i < NFIELDS; i++)
		secret_free(v[i], vn[i]);
	return rc;
}

int agentkey_env_value(char **out, const struct agentkey *k)
{
	char *json = NULL;
	*out = NULL;
	int rc = agentkey_rsaparams(&json, k);
	if (rc)
		return rc;
	size_t n = strlen(json);
	char *b64 = xmalloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)json, (int)n);
	agentkey_secret_free(json);
	*out = b64;
	return 0;
}

void agentkey_secret_free(char *s)
{
	if (s)
		secret_free(s, strlen(s));
}

void agentkey_fingerprint(char out[17], const struct agentkey *k)
{
	BIGNUM *n = param(k, OSSL_PKEY_PARAM_RSA_N), *e = param(k, OSSL_PKEY_PARAM_RSA_E);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = n && e && ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) > 0;
	for (int i = 0; ok && i < 2; i++) {
		const BIGNUM *bn = i == 0 ? n : e;
		int len = BN_num_bytes(bn);
		unsigned char *raw = xmalloc(len > 0 ? (size_t)len : 1);
		BN_bn2bin(bn, raw);
		ok = EVP_DigestUpdate(ctx, raw, (size_t)len) > 0;
		free(raw);
	}
	ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) > 0 && mdlen >= 8;
	out[0] = '\0';
	for (unsigned i = 0; ok && i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	EVP_MD_CTX_free(ctx);
	BN_free(n);
	BN_free(e);
	ERR_clear_error();
}
