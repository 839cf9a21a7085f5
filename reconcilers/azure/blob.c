/*
 * blob.c: Azure Storage calls through SAS URLs. See blob.h.
 *
 * The upload goes through the core's retry loop (arm_send) without the
 * bearer token; the log tail makes its own ranged GETs on the client's
 * connections, keeping only the last bytes as they arrive. A SAS URL is a
 * secret: no error message built here quotes it, nor libcurl's error
 * buffer, which can.
 */
#include "azure/blob.h"

#include "azure/arm_internal.h"
#include "buf.h"
#include "error.h"
#include "xalloc.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define BLOB_VERSION "2020-10-02"
#define UPLOAD_FILE_MAX (256u * 1024 * 1024)

/* ---- build source upload ---- */

int arm_build_source_upload(struct arm_client *c, const char *upload_url, const void *data, size_t len)
{
	static const char *const extra[] = {
		"x-ms-blob-type: BlockBlob", "x-ms-version: " BLOB_VERSION, NULL,
	};
	struct arm_response r;
	if (!upload_url || (strncmp(upload_url, "https://", 8) != 0 && strncmp(upload_url, "http://", 7) != 0))
		return ctl_error_set(CTL_EINVALID, "InvalidUploadUrl", "build source upload URL is not http(s)");
	struct arm_wire_req q = {
		.method = "PUT", .url = upload_url, .operation = "blob.upload",
		.body = data ? data : "", .len = len, .content_type = "application/octet-stream",
		.extra = extra, .auth = 0, .blob = 1,
	};
	arm_response_init(&r);
	int rc = arm_send(&r, c, &q);
	arm_response_dispose(&r);
	return rc;
}

int arm_build_source_upload_file(struct arm_client *c, const char *upload_url, const char *path)
{
	int rc = 0;
	struct ctl_buf b = CTL_BUF_INIT;
	char chunk[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	ctl_buf_init(&b, UPLOAD_FILE_MAX);
	if (fd < 0) {
		rc = ctl_error_set(CTL_EINVALID, "SourceUnreadable", "cannot open %.200s: %s", path, strerror(errno));
		goto done;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = ctl_error_set(CTL_EINVALID, "SourceUnreadable", "cannot read %.200s: %s", path,
					   strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		if ((rc = ctl_buf_append(&b, chunk, (size_t)n))) {
			ctl_error_set(rc, "SourceTooLarge", "%.200s is larger than %u bytes", path, UPLOAD_FILE_MAX);
			goto done;
		}
	}
	rc = arm_build_source_upload(c, upload_url, b.ptr ? b.ptr : "", b.len);
done:
	if (fd >= 0)
		close(fd);
	ctl_buf_dispose(&b);
	return rc;
}

/* ---- blob tail (run logs) ---- */

struct tail_state {
	char *buf;      /* the last cap bytes seen */
	size_t cap, len;
	char range[96]; /* Content-Range of the answer */
};

static size_t tail_body(char *p, size_t size, size_t n, void *arg)
{
	struct tail_state *t = arg;
	size_t len = size * n;
	if (len >= t->cap) {
		memcpy(t->buf, p + len - t->cap, t->cap);
		t->len = t->cap;
	} else if (t->len + len <= t->cap) {
		memcpy(t->buf + t->len, p, len);
		t->len += len;
	} else {
		size_t keep = t->cap - len;
		memmove(t->buf, t->buf + t->len - keep, keep);
		memcpy(t->buf + keep, p, len);
		t->len = t->cap;
	}
	return len;
}

static size_t tail_header(char *p, size_t size, size_t n, void *arg)
{
	struct tail_state *t = arg;
	size_t len = size * n;
	if (len > 14 && strncasecmp(p, "Content-Range:", 14) == 0) {
		size_t vlen = len - 14;
		const char *v = p + 14;
		while (vlen && (*v == ' ' || *v == '\t'))
			v++, vlen--;
		while (vlen && strchr(" \t\r\n", v[vlen - 1]))
			vlen--;
		snprintf(t->range, sizeof(t->range), "%.*s", (int)(vlen < 95 ? vlen : 95), v);
	}
	return len;
}

/* One GET of url with an x-ms-range (NULL: all), into t. */
static int blob_get(long *status, struct arm_client *c, const char *url, const char *range, struct tail_state *t)
{
	char line[128], errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *h = NULL;
	CURL *e = arm_easy_new(c, url, errbuf);
	t->len = 0;
	t->range[0] = '\0';
	*status = 0;
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, tail_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, tail_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
	h = curl_slist_append(h, "x-ms-version: " BLOB_VERSION);
	if (range) {
		snprintf(line, sizeof(line), "x-ms-range: %s", range);
		h = curl_slist_append(h, line);
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	double t0 = arm_monotonic_seconds();
	CURLcode cc = curl_easy_perform(e);
	if (cc == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
	arm_client_metric(c, "GET", "blob.read", cc == CURLE_OK ? *status : 0, arm_monotonic_seconds() - t0);
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	/* Never errbuf: it can name the URL, and the URL is a secret. */
	if (cc != CURLE_OK)
		return ctl_error_set(arm_transport_retryable(cc) ? CTL_EUNAVAIL : CTL_ERR, "ConnectionFailed",
				     "blob.read: %s", curl_easy_strerror(cc));
	if (*status == 416)
		return 0; /* an empty blob has no byte 0 */
	if (*status < 200 || *status >= 300) {
		t->buf[t->len < t->cap ? t->len : t->cap - 1] = '\0';
		return arm_blob_error_set(*status, t->buf, NULL, -1);
	}
	return 0;
}

int arm_blob_tail(char **out, size_t *len, struct arm_client *c, const char *url, size_t tail)
{
	struct tail_state t = {.cap = tail ? tail : 1};
	long status;
	int rc;
	*out = NULL;
	*len = 0;
	if (!url || (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0))
		return ctl_error_set(CTL_EINVALID, "InvalidBlobUrl", "blob URL is not http(s)");
	t.buf = xmalloc(t.cap + 1);
	if ((rc = blob_get(&status, c, url, "bytes=0-0", &t)))
		goto done;
	/* 206 "bytes 0-0/<size>": fetch the tail. 200: the server ignored the
	 * range and sent everything; t already holds its tail. */
	const char *slash = status == 206 ? strrchr(t.range, '/') : NULL;
	if (slash) {
		long long size = atoll(slash + 1);
		if (size > 1) {
			char range[64];
			long long from = size > (long long)tail ? size - (long long)tail : 0;
			snprintf(range, sizeof(range), "bytes=%lld-", from);
			if ((rc = blob_get(&status, c, url, range, &t)))
				goto done;
		}
	} else if (status == 416) {
		t.len = 0;
	}
	t.buf[t.len] = '\0';
	*out = t.buf;
	*len = t.len;
	t.buf = NULL;
done:
	free(t.buf);
	return rc;
}
