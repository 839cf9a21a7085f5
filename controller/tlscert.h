/*
 * tlscert.h: a self-signed serving certificate made at start, for the
 * metrics endpoint when no certificate is mounted (as controller-runtime's
 * metrics server does with certwatcher absent).
 *
 * The key is ECDSA P-256; the certificate is X.509 v3, valid from an hour
 * ago for a year, CN = the first name, with every name as a subjectAltName
 * (an IPv4 or IPv6 literal as an IP address, anything else as a DNS name),
 * keyUsage digitalSignature and extendedKeyUsage serverAuth. Both are PEM
 * in memory; nothing is written to disk.
 */
#ifndef CTL_TLSCERT_H
#define CTL_TLSCERT_H

#include <stddef.h>

struct ctl_tlscert {
	char *cert_pem;   /* NUL-terminated PEM */
	size_t cert_len;  /* without the NUL */
	char *key_pem;    /* PKCS#8 PEM; wiped when disposed */
	size_t key_len;
};

#define CTL_TLSCERT_INIT {NULL, 0, NULL, 0}

/* Make a key and a certificate for names (NULL-terminated, at least one).
 * Returns 0, or CTL_ERR with OpenSSL's reason in ctl_error_last(). */
int ctl_tlscert_self_signed(struct ctl_tlscert *out, const char *const names[]);

/* Free both, wiping the key. */
void ctl_tlscert_dispose(struct ctl_tlscert *c);

#endif
