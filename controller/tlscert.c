/*
 * tlscert.c: a self-signed ECDSA P-256 certificate in memory. See tlscert.h.
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
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

static int ossl_error(const char *what)
{
	char detail[256];
	unsigned long e = ERR_get_error();
	ERR_error_string_n(e, detail, sizeof(detail));
	ERR_clear_error();
	return ctl_error_set(CTL_ERR, "TLSCertificate", "%s: %s", what, e ? detail : "failed");
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
