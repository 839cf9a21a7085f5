/*
 * tlscert.h: the metrics endpoint's serving certificate: a self-signed one
 * made at start when no certificate is mounted (as controller-runtime's
 * metrics server does with certwatcher absent), or a mounted pair watched
 * for rotation (controller-runtime's certwatcher).
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

/* --- a mounted pair, reloaded when it changes ---------------------------------
 *
 * cert-manager rotates a Secret in place, and the kubelet updates the
 * mounted files by writing a new timestamped directory and swapping the
 * ..data symlink, so tls.crt and tls.key are new files (new inodes) at
 * once. The watcher keeps the pair in use in memory and, when polled,
 * compares each file's device, inode, size and mtime (stat follows the
 * symlinks) with those of the files it read. On a change it reads the
 * files again: a PEM certificate chain (leaf first) and an unencrypted PEM
 * key, each at most 1 MiB; the new pair replaces the old only when the key
 * is the certificate's and OpenSSL accepts the pair for serving. A pair
 * that fails keeps the old one in use and is reported once (until the
 * files change again), with the path and OpenSSL's reason, never file
 * contents. A pair caught mid-swap (the files changed while being read)
 * is not reported: the next poll reads it again.
 *
 * Thread safety: a watcher may be polled and used from any thread.
 */

struct ctl_certwatcher;
struct ssl_st;

/* Read the pair now. CTL_EINVALID (the reason in the last error) when it
 * cannot be read or used. */
int ctl_certwatcher_new(struct ctl_certwatcher **out, const char *cert_file, const char *key_file);
void ctl_certwatcher_free(struct ctl_certwatcher *w);

/* Look at the files: 0 when nothing new, 1 when a changed pair was loaded,
 * CTL_EINVALID when a changed pair cannot be used (kept the old one; the
 * reason in the last error). */
int ctl_certwatcher_poll(struct ctl_certwatcher *w);

/* Make ssl (a server connection before its certificate is chosen, as in
 * an SSL_CTX_set_cert_cb callback) present the pair in use, and only it.
 * 0, or CTL_ERR. */
int ctl_certwatcher_use(struct ctl_certwatcher *w, struct ssl_st *ssl);

/* The SHA-256 of the certificate in use (DER), as 64 lower-case hex digits
 * and a NUL: public, for logs and tests. */
void ctl_certwatcher_fingerprint(struct ctl_certwatcher *w, char out[65]);

#endif
