/*
 * tlscert.c: a self-signed ECDSA P-256 certificate in memory, and the
 * watcher of a mounted pair that follows its rotation. See tlscert.h.
 */
#include "tlscert.h"

#include "buf.h"
#include "error.h"
#include "xalloc.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A PEM chain or key is a few KiB; a mount is no place for more. */
#define PEM_MAX (1024 * 1024)

/* OpenSSL's first queued reason as the last error, with code. */
static int ossl_error_code(int code, const char *what)
{
	char detail[256];
	unsigned long e = ERR_get_error();
	ERR_error_string_n(e, detail, sizeof(detail));
	ERR_clear_error();
	return ctl_error_set(code, "TLSCertificate", "%s: %s", what, e ? detail : "failed");
}

static int ossl_error(const char *what)
{
	return ossl_error_code(CTL_ERR, what);
}

/* The contents of a memory BIO as a NUL-terminated string. */
static char *bio_text(BIO *b, size_t *len)
{
	char *data = NULL;
	long n = BIO_get_mem_data(b, &data);
	*len = n > 0 ? (size_t)n : 0;
	return xstrndup(data ? data : "", *len);
}

/* "DNS:name,IP:1.2.3.4,..." for X509V3_EXT_conf_nid. */
static char *san_list(const char *const names[])
{
	struct ctl_buf b = CTL_BUF_INIT;
	unsigned char addr[16];
	for (size_t i = 0; names[i]; i++) {
		int ip = inet_pton(AF_INET, names[i], addr) == 1 || inet_pton(AF_INET6, names[i], addr) == 1;
		ctl_buf_printf(&b, "%s%s:%s", i ? "," : "", ip ? "IP" : "DNS", names[i]);
	}
	return ctl_buf_detach(&b);
}

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -1;
	int ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

int ctl_tlscert_self_signed(struct ctl_tlscert *out, const char *const names[])
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	BIO *cb = NULL, *kb = NULL;
	char *san = NULL;
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!names || !names[0])
		return ctl_error_set(CTL_EINVALID, "TLSCertificate", "a certificate needs a name");
	if (!(key = EVP_EC_gen("P-256"))) {
		rc = ossl_error("cannot generate a P-256 key");
		goto done;
	}
	if (!(x = X509_new()) || !X509_set_version(x, 2)) {
		rc = ossl_error("cannot make a certificate");
		goto done;
	}
	/* A random positive 127-bit serial, as RFC 5280 asks of a CA. */
	if (RAND_bytes(serial, sizeof(serial)) != 1) {
		rc = ossl_error("no random bytes");
		goto done;
	}
	serial[0] &= 0x7f;
	if (!(bn = BN_bin2bn(serial, sizeof(serial), NULL)) || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))) {
		rc = ossl_error("cannot set the serial number");
		goto done;
	}
	/* Valid from an hour ago: a scraper's clock may run a little behind. */
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 365L * 24 * 3600);
	X509_NAME *name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)names[0], -1, -1, 0) ||
	    !X509_set_issuer_name(x, name) || !X509_set_pubkey(x, key)) {
		rc = ossl_error("cannot name the certificate");
		goto done;
	}
	san = san_list(names);
	if (add_ext(x, NID_subject_alt_name, san) || add_ext(x, NID_basic_constraints, "critical,CA:FALSE") ||
	    add_ext(x, NID_key_usage, "critical,digitalSignature") ||
	    add_ext(x, NID_ext_key_usage, "serverAuth")) {
		rc = ossl_error("cannot add the certificate's extensions");
		goto done;
	}
	if (!X509_sign(x, key, EVP_sha256())) {
		rc = ossl_error("cannot sign the certificate");
		goto done;
	}
	if (!(cb = BIO_new(BIO_s_mem())) || !(kb = BIO_new(BIO_s_mem())) || !PEM_write_bio_X509(cb, x) ||
	    !PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL)) {
		rc = ossl_error("cannot write the certificate");
		goto done;
	}
	out->cert_pem = bio_text(cb, &out->cert_len);
	out->key_pem = bio_text(kb, &out->key_len);
done:
	if (kb) {
		/* The BIO's copy of the key goes too. */
		char *data = NULL;
		long n = BIO_get_mem_data(kb, &data);
		if (data && n > 0)
			OPENSSL_cleanse(data, (size_t)n);
	}
	BIO_free(cb);
	BIO_free(kb);
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(key);
	free(san);
	return rc;
}

void ctl_tlscert_dispose(struct ctl_tlscert *c)
{
	if (!c)
		return;
	if (c->key_pem)
		OPENSSL_cleanse(c->key_pem, c->key_len);
	free(c->key_pem);
	free(c->cert_pem);
	memset(c, 0, sizeof(*c));
}

/* --- the watcher of a mounted pair --------------------------------------------- */

/* Which file a path named when it was looked at: a new file (the kubelet's
 * symlink swap, a rename over it) has a new inode, a rewrite a new mtime
 * or size. ok is false when the path could not be looked at. */
struct filesig {
	bool ok;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

static struct filesig sig_of(const struct stat *st)
{
	return (struct filesig){true, st->st_dev, st->st_ino, st->st_size, st->st_mtim};
}

static struct filesig sig_stat(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return (struct filesig){0};
	return sig_of(&st);
}

static bool sig_eq(const struct filesig *a, const struct filesig *b)
{
	if (!a->ok || !b->ok)
		return a->ok == b->ok;
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* A certificate chain and its key, and the files they were read from. */
struct pair {
	X509 *leaf;
	STACK_OF(X509) *chain; /* the certificates after the leaf */
	EVP_PKEY *key;
	struct filesig sig[2]; /* cert, key */
};

static void pair_dispose(struct pair *p)
{
	X509_free(p->leaf);
	sk_X509_pop_free(p->chain, X509_free);
	EVP_PKEY_free(p->key);
	memset(p, 0, sizeof(*p));
}

struct ctl_certwatcher {
	pthread_mutex_t mu;
	char *cert_file, *key_file;
	struct pair cur;          /* in use */
	struct filesig refused[2]; /* the files of the last pair reported unusable */
	bool has_refused;
};

/* Read path whole into *out (the caller wipes and frees it), with the
 * identity of the file actually read in *sig. CTL_EINVALID when it cannot
 * be read or is too big. */
static int read_whole(char **out, size_t *len, struct filesig *sig, const char *path)
{
	struct stat st;
	int e, rc = 0;
	char *buf = NULL;
	size_t n = 0;

	*out = NULL;
	*len = 0;
	*sig = (struct filesig){0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		return ctl_error_set(CTL_EINVALID, "TLSCertificate", "cannot open %s: %s", path, strerror(e));
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > PEM_MAX) {
		rc = ctl_error_set(CTL_EINVALID, "TLSCertificate", "%s is not a regular file of at most %d bytes",
				   path, PEM_MAX);
		goto done;
	}
	*sig = sig_of(&st);
	size_t cap = (size_t)st.st_size;
	buf = xmalloc(cap + 1);
	/* Stop at the size seen: a file that grows meanwhile is being
	 * replaced, and the next poll reads the new one. */
	while (n < cap) {
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			e = errno;
			rc = ctl_error_set(CTL_EINVALID, "TLSCertificate", "cannot read %s: %s", path, strerror(e));
			goto done;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
done:
	if (buf) {
		OPENSSL_cleanse(buf, cap + 1);
		free(buf);
	}
	close(fd);
	return rc;
}

static void wipe_free(char *p, size_t len)
{
	if (p)
		OPENSSL_cleanse(p, len);
	free(p);
}

/* No passphrase: an encrypted key is refused rather than prompted for on
 * a terminal (OpenSSL's default callback). */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* Read and check the pair in cert_file and key_file into *out. */
static int load_pair(struct pair *out, const char *cert_file, const char *key_file)
{
	char *crt = NULL, *key = NULL;
	size_t crt_len = 0, key_len = 0;
	BIO *b = NULL;
	SSL_CTX *probe = NULL;
	X509 *x;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = read_whole(&crt, &crt_len, &out->sig[0], cert_file)) != 0 ||
	    (rc = read_whole(&key, &key_len, &out->sig[1], key_file)) != 0)
		goto done;
	rc = CTL_EINVALID;
	if (!(b = BIO_new_mem_buf(crt, (int)crt_len)))
		abort(); /* fails only when out of memory */
	if (!(out->leaf = PEM_read_bio_X509(b, NULL, no_passphrase, NULL))) {
		ERR_clear_error();
		ctl_error_set(rc, "TLSCertificate", "no PEM certificate in %s", cert_file);
		goto done;
	}
	out->chain = sk_X509_new_null();
	while ((x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL)))
		sk_X509_push(out->chain, x);
	/* The loop ends on "no start line": the end of the file. */
	ERR_clear_error();
	BIO_free(b);
	if (!(b = BIO_new_mem_buf(key, (int)key_len)))
		abort();
	if (!(out->key = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL))) {
		ERR_clear_error();
		ctl_error_set(rc, "TLSCertificate", "no unencrypted PEM private key in %s", key_file);
		goto done;
	}
	if (X509_check_private_key(out->leaf, out->key) != 1) {
		ERR_clear_error();
		ctl_error_set(rc, "TLSCertificate", "the key in %s is not the certificate's in %s", key_file,
			      cert_file);
		goto done;
	}
	/* What serving it will check (the key's strength for the security
	 * level, the chain), asked now so that a handshake never finds out. */
	if (!(probe = SSL_CTX_new(TLS_server_method())))
		abort();
	if (SSL_CTX_use_cert_and_key(probe, out->leaf, out->key, out->chain, 1) != 1) {
		char what[512];
		snprintf(what, sizeof(what), "cannot serve the certificate in %s", cert_file);
		ossl_error_code(CTL_EINVALID, what);
		goto done;
	}
	rc = 0;
done:
	SSL_CTX_free(probe);
	BIO_free(b);
	wipe_free(crt, crt_len);
	wipe_free(key, key_len);
	if (rc != 0)
		pair_dispose(out);
	return rc;
}

int ctl_certwatcher_new(struct ctl_certwatcher **out, const char *cert_file, const char *key_file)
{
	struct pair p;
	*out = NULL;
	int rc = load_pair(&p, cert_file, key_file);
	if (rc != 0)
		return rc;
	struct ctl_certwatcher *w = xcalloc(1, sizeof(*w));
	pthread_mutex_init(&w->mu, NULL);
	w->cert_file = xstrdup(cert_file);
	w->key_file = xstrdup(key_file);
	w->cur = p;
	*out = w;
	return 0;
}

void ctl_certwatcher_free(struct ctl_certwatcher *w)
{
	if (!w)
		return;
	pair_dispose(&w->cur);
	pthread_mutex_destroy(&w->mu);
	free(w->cert_file);
	free(w->key_file);
	free(w);
}

int ctl_certwatcher_poll(struct ctl_certwatcher *w)
{
	struct filesig now[2] = {sig_stat(w->cert_file), sig_stat(w->key_file)};
	struct pair p;
	int rc = 0;

	pthread_mutex_lock(&w->mu);
	if ((sig_eq(&now[0], &w->cur.sig[0]) && sig_eq(&now[1], &w->cur.sig[1])) ||
	    (w->has_refused && sig_eq(&now[0], &w->refused[0]) && sig_eq(&now[1], &w->refused[1])))
		goto done;
	if (load_pair(&p, w->cert_file, w->key_file) == 0) {
		pair_dispose(&w->cur);
		w->cur = p;
		rc = 1;
		goto done;
	}
	/* Files that changed while being read (one of them from before a
	 * swap, the other from after) are no verdict on the new pair: the
	 * next poll reads them again. */
	struct filesig after[2] = {sig_stat(w->cert_file), sig_stat(w->key_file)};
	if (!sig_eq(&after[0], &now[0]) || !sig_eq(&after[1], &now[1]))
		goto done;
	w->refused[0] = now[0];
	w->refused[1] = now[1];
	w->has_refused = true;
	rc = CTL_EINVALID;
done:
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int ctl_certwatcher_use(struct ctl_certwatcher *w, struct ssl_st *ssl)
{
	pthread_mutex_lock(&w->mu);
	/* Clear first: a pair of another key type would otherwise go into
	 * its own slot beside the old one, and OpenSSL might pick the old. */
	SSL_certs_clear(ssl);
	int ok = SSL_use_cert_and_key(ssl, w->cur.leaf, w->cur.key, w->cur.chain, 1);
	pthread_mutex_unlock(&w->mu);
	if (ok != 1)
		return ossl_error("cannot use the serving certificate");
	return 0;
}

void ctl_certwatcher_fingerprint(struct ctl_certwatcher *w, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	pthread_mutex_lock(&w->mu);
	if (!X509_digest(w->cur.leaf, EVP_sha256(), md, &n))
		abort(); /* SHA-256 fails only when out of memory */
	pthread_mutex_unlock(&w->mu);
	for (unsigned int i = 0; i < n && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
}
