/*
 * agentkey.h: an Azure Pipelines agent's own RSA key, made by the operator
 * for pre-registered mode (docs/pipeline-agents.md).
 *
 * The agent proves who it is by signing a JWT client assertion with a
 * 2048-bit RSA key whose public half was registered with the pool
 * (TaskAgent.authorization.publicKey {exponent, modulus}). config.sh makes
 * that key itself; in pre-registered mode the operator makes it here,
 * registers the public half (devops_agent_add / devops_agent_replace) and
 * hands the container the private half as AZP_AGENT_KEY: base64 of the
 * agent's .credentials_rsaparams file, the JSON its RSAParametersSerializable
 * writes (ContainerName, UseCng, d, dp, dq, exponent, inverseQ, modulus, p,
 * q; byte arrays as base64 of big-endian bytes with the lengths .NET's
 * RSA.ExportParameters gives: modulus and d the key's size, the five CRT
 * values half of it, the exponent its minimal bytes).
 *
 * Private material lives in the OpenSSL key and in the strings
 * agentkey_rsaparams() / agentkey_env_value() return; both are zeroed when
 * freed (agentkey_free, agentkey_secret_free). Nothing here logs or puts
 * key material in a ctl_error.
 */
#ifndef ACRPOOL_DEVOPS_AGENTKEY_H
#define ACRPOOL_DEVOPS_AGENTKEY_H

#include <cjson/cJSON.h>

/* The agent's key size (RSACryptoServiceProvider(2048) in the agent). */
#define AGENTKEY_BITS 2048

struct agentkey;

/* Generate a key of bits (0: AGENTKEY_BITS; at least 1024) with public
 * exponent 65537. Errors: CTL_EINVALID for a bad size, CTL_ERR when
 * OpenSSL fails (the ctl_error names OpenSSL's reason, never key bytes). */
int agentkey_generate(struct agentkey **out, int bits);
/* Free and zero. NULL is fine. */
void agentkey_free(struct agentkey *k);

/* Key size in bits. */
int agentkey_bits(const struct agentkey *k);

/* The public half as TaskAgentPublicKey: {"exponent": b64, "modulus": b64}
 * (a new object, caller deletes). Public: may be logged. */
cJSON *agentkey_public_json(const struct agentkey *k);

/* The .credentials_rsaparams JSON (*out: caller frees with
 * agentkey_secret_free). 0 or CTL_ERR. */
int agentkey_rsaparams(char **out, const struct agentkey *k);
/* AZP_AGENT_KEY: base64 of agentkey_rsaparams() (*out: caller frees with
 * agentkey_secret_free). 0 or CTL_ERR. */
int agentkey_env_value(char **out, const struct agentkey *k);
/* Zero and free a string from agentkey_rsaparams/agentkey_env_value.
 * NULL is fine. */
void agentkey_secret_free(char *s);

/* A short public fingerprint (first 16 hex digits of SHA-256 over the
 * modulus and exponent bytes, as the emulator's keyFingerprint), into
 * out[17]. */
void agentkey_fingerprint(char out[17], const struct agentkey *k);

#endif
