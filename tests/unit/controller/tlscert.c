/* Unit tests for controller/tlscert.c: the self-signed certificate, and the
 * watcher of a mounted pair, rotated the way the kubelet updates a Secret
 * volume (a new directory, then an atomic swap of the ..data symlink). */
#include "test.h"

#include "error.h"
#include "tlscert.h"
#include "xalloc.h"

#include "secret_volume.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GENERATIONS 8

/* The SHA-256 of a PEM certificate's DER, in hex. */
static void fingerprint_of(const char *pem, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	CHECK(x != NULL);
	CHECK(x && X509_digest(x, EVP_sha256(), md, &n) == 1);
	for (unsigned int i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
	X509_free(x);
	BIO_free(b);
}

static struct ctl_tlscert make_pair(void)
{
	struct ctl_tlscert c = CTL_TLSCERT_INIT;
	CHECK_INT(ctl_tlscert_self_signed(&c, (const char *[]){"127.0.0.1", NULL}), 0);
	return c;
}

TEST(tlscert_self_signed_pair_is_pem)
{
	struct ctl_tlscert c = make_pair();
	CHECK(c.cert_pem && strstr(c.cert_pem, "-----BEGIN CERTIFICATE-----") == c.cert_pem);
	CHECK(c.key_pem && strstr(c.key_pem, "-----BEGIN PRIVATE KEY-----") == c.key_pem);
	CHECK_INT(c.cert_len, strlen(c.cert_pem));
	ctl_tlscert_dispose(&c);
	CHECK(c.cert_pem == NULL && c.key_pem == NULL);
}

TEST(tlscert_watcher_follows_a_symlink_swap)
{
	char dir[] = "/tmp/acrpool-certwatch-XXXXXX", crt[64], key[64], fp[65], want[65];
	struct ctl_tlscert a = make_pair(), b = make_pair();
	struct ctl_certwatcher *w = NULL;
	CHECK(mkdtemp(dir) != NULL);
	snprintf(crt, sizeof(crt), "%s/tls.crt", dir);
	snprintf(key, sizeof(key), "%s/tls.key", dir);
	secret_volume_publish(dir, 0, a.cert_pem, a.key_pem);

	CHECK_INT(ctl_certwatcher_new(&w, crt, key), 0);
	ctl_certwatcher_fingerprint(w, fp);
	fingerprint_of(a.cert_pem, want);
	CHECK_STR(fp, want);
	CHECK_INT(ctl_certwatcher_poll(w), 0);

	secret_volume_publish(dir, 1, b.cert_pem, b.key_pem);
	CHECK_INT(ctl_certwatcher_poll(w), 1);
	ctl_certwatcher_fingerprint(w, fp);
	fingerprint_of(b.cert_pem, want);
	CHECK_STR(fp, want);
	CHECK_INT(ctl_certwatcher_poll(w), 0); /* nothing new since */

	ctl_certwatcher_free(w);
	secret_volume_remove(dir, GENERATIONS);
	ctl_tlscert_dispose(&a);
	ctl_tlscert_dispose(&b);
}

TEST(tlscert_watcher_keeps_the_old_pair_when_the_new_one_is_bad)
{
	char dir[] = "/tmp/acrpool-certwatch-XXXXXX", crt[64], key[64], fp[65], want[65];
	struct ctl_tlscert a = make_pair(), b = make_pair(), c = make_pair();
	struct ctl_certwatcher *w = NULL;
	CHECK(mkdtemp(dir) != NULL);
	snprintf(crt, sizeof(crt), "%s/tls.crt", dir);
	snprintf(key, sizeof(key), "%s/tls.key", dir);
	secret_volume_publish(dir, 0, a.cert_pem, a.key_pem);
	CHECK_INT(ctl_certwatcher_new(&w, crt, key), 0);
	fingerprint_of(a.cert_pem, want);

	/* b's certificate with c's key: refused, a stays, and the report
	 * names the files, never their contents. */
	secret_volume_publish(dir, 1, b.cert_pem, c.key_pem);
	CHECK_INT(ctl_certwatcher_poll(w), CTL_EINVALID);
	const char *msg = ctl_error_last()->message;
	CHECK(strstr(msg, "is not the certificate's") != NULL);
	CHECK(strstr(msg, dir) != NULL);
	char keyline[80];
	const char *body = strchr(c.key_pem, '\n');
	snprintf(keyline, sizeof(keyline), "%.40s", body ? body + 1 : "");
	CHECK(strstr(msg, "BEGIN") == NULL && strstr(msg, keyline) == NULL);
	ctl_certwatcher_fingerprint(w, fp);
	CHECK_STR(fp, want);
	/* Reported once, until the files change again. */
	CHECK_INT(ctl_certwatcher_poll(w), 0);

	/* Not PEM at all. */
	secret_volume_publish(dir, 2, "not a certificate\n", c.key_pem);
	CHECK_INT(ctl_certwatcher_poll(w), CTL_EINVALID);
	CHECK(strstr(ctl_error_last()->message, "no PEM certificate") != NULL);
	ctl_certwatcher_fingerprint(w, fp);
	CHECK_STR(fp, want);

	/* Gone altogether: reported once too, and a stays. */
	char link[600];
	snprintf(link, sizeof(link), "%s/..data", dir);
	CHECK(unlink(link) == 0);
	CHECK_INT(ctl_certwatcher_poll(w), CTL_EINVALID);
	CHECK(strstr(ctl_error_last()->message, "cannot open") != NULL);
	CHECK_INT(ctl_certwatcher_poll(w), 0);
	ctl_certwatcher_fingerprint(w, fp);
	CHECK_STR(fp, want);

	/* The certificate gone, the key still there: reported once. */
	secret_volume_publish(dir, 4, c.cert_pem, c.key_pem);
	snprintf(link, sizeof(link), "%s/..gen4/tls.crt", dir);
	CHECK(unlink(link) == 0);
	CHECK_INT(ctl_certwatcher_poll(w), CTL_EINVALID);
	CHECK_INT(ctl_certwatcher_poll(w), 0);

	/* A good pair again: taken. */
	secret_volume_publish(dir, 5, c.cert_pem, c.key_pem);
	CHECK_INT(ctl_certwatcher_poll(w), 1);
	ctl_certwatcher_fingerprint(w, fp);
	fingerprint_of(c.cert_pem, want);
	CHECK_STR(fp, want);

	ctl_certwatcher_free(w);
	secret_volume_remove(dir, GENERATIONS);
	ctl_tlscert_dispose(&a);
	ctl_tlscert_dispose(&b);
	ctl_tlscert_dispose(&c);
}

TEST(tlscert_watcher_follows_a_file_rewritten_in_place)
{
	char dir[] = "/tmp/acrpool-certwatch-XXXXXX", crt[64], key[64], fp[65], want[65];
	struct ctl_tlscert a = make_pair(), b = make_pair();
	struct ctl_certwatcher *w = NULL;
	CHECK(mkdtemp(dir) != NULL);
	snprintf(crt, sizeof(crt), "%s/tls.crt", dir);
	snprintf(key, sizeof(key), "%s/tls.key", dir);
	write_file(crt, a.cert_pem);
	write_file(key, a.key_pem);
	CHECK_INT(ctl_certwatcher_new(&w, crt, key), 0);
	/* Not the kubelet's way: the certificate first, then the key. In
	 * between the pair does not match; that is reported, and the old
	 * pair stays. */
	write_file(crt, b.cert_pem);
	CHECK_INT(ctl_certwatcher_poll(w), CTL_EINVALID);
	write_file(key, b.key_pem);
	CHECK_INT(ctl_certwatcher_poll(w), 1);
	ctl_certwatcher_fingerprint(w, fp);
	fingerprint_of(b.cert_pem, want);
	CHECK_STR(fp, want);
	ctl_certwatcher_free(w);
	unlink(crt);
	unlink(key);
	rmdir(dir);
	ctl_tlscert_dispose(&a);
	ctl_tlscert_dispose(&b);
}

TEST(tlscert_watcher_refuses_an_unusable_pair_at_start)
{
	char dir[] = "/tmp/acrpool-certwatch-XXXXXX", crt[64], key[64];
	struct ctl_tlscert a = make_pair(), b = make_pair();
	struct ctl_certwatcher *w = NULL;
	CHECK(mkdtemp(dir) != NULL);
	snprintf(crt, sizeof(crt), "%s/tls.crt", dir);
	snprintf(key, sizeof(key), "%s/tls.key", dir);

	CHECK_INT(ctl_certwatcher_new(&w, crt, key), CTL_EINVALID); /* absent */
	CHECK(w == NULL);
	CHECK(strstr(ctl_error_last()->message, "tls.crt") != NULL);

	write_file(crt, a.cert_pem);
	write_file(key, b.key_pem);
	CHECK_INT(ctl_certwatcher_new(&w, crt, key), CTL_EINVALID); /* not its key */
	CHECK(w == NULL);

	/* An encrypted key is refused, not prompted for. */
	BIO *in = BIO_new_mem_buf(a.key_pem, -1), *out = BIO_new(BIO_s_mem());
	EVP_PKEY *pk = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
	CHECK(pk && PEM_write_bio_PKCS8PrivateKey(out, pk, EVP_aes_256_cbc(), "secret", 6, NULL, NULL) == 1);
	char *enc = NULL;
	long n = BIO_get_mem_data(out, &enc);
	char *text = xstrndup(enc, (size_t)n);
	CHECK(strstr(text, "ENCRYPTED") != NULL);
	write_file(key, text);
	CHECK_INT(ctl_certwatcher_new(&w, crt, key), CTL_EINVALID);
	CHECK(strstr(ctl_error_last()->message, "no unencrypted PEM private key") != NULL);
	CHECK(w == NULL);

	free(text);
	EVP_PKEY_free(pk);
	BIO_free(in);
	BIO_free(out);
	unlink(crt);
	unlink(key);
	rmdir(dir);
	ctl_tlscert_dispose(&a);
	ctl_tlscert_dispose(&b);
}

TEST_MAIN(T(tlscert_self_signed_pair_is_pem), T(tlscert_watcher_follows_a_symlink_swap),
	  T(tlscert_watcher_keeps_the_old_pair_when_the_new_one_is_bad),
	  T(tlscert_watcher_follows_a_file_rewritten_in_place), T(tlscert_watcher_refuses_an_unusable_pair_at_start))
