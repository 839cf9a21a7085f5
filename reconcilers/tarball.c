/*
 * tarball.c: ustar headers and gzip through zlib. See tarball.h.
 *
 * The ustar header is written here rather than through libarchive: the
 * archive holds nothing but flat regular files, so one 512-byte header per
 * file (name, mode, size, mtime, checksum, "ustar\0" "00") is the whole
 * format, and zlib's deflate with a gzip wrapper does the compression.
 */
#include "tarball.h"

#include "error.h"
#include "xalloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define BLOCK 512

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct tarball_file *)a)->name, ((const struct tarball_file *)b)->name);
}

/* An octal field of width w (w-1 digits and a NUL), written from the
 * right so a value is never cut silently: one too large for the field
 * (the caller bounds sizes to fit 11 digits) fills it with 7s. */
static void octal(char *field, size_t w, unsigned long long v)
{
	size_t i = w - 1;
	field[i] = '\0';
	while (i > 0) {
		field[--i] = (char)('0' + (v & 7));
		v >>= 3;
	}
	if (v)
		memset(field, '7', w - 1);
}

static int header(unsigned char h[BLOCK], const struct tarball_file *f, long long mtime)
{
	memset(h, 0, BLOCK);
	size_t nlen = strlen(f->name);
	const char *name = f->name, *prefix = NULL;
	size_t plen = 0;
	if (nlen > 100) {
		/* ustar splits a long path at a '/' into prefix (155) and name (100). */
		const char *slash = NULL;
		for (const char *s = f->name; *s; s++)
			if (*s == '/' && (size_t)(s - f->name) <= 155 && strlen(s + 1) <= 100)
				slash = s;
		if (!slash)
			return ctl_error_set(CTL_EINVALID, "NameTooLong",
					     "file name %.60s... is longer than a tar header holds", f->name);
		prefix = f->name;
		plen = (size_t)(slash - f->name);
		name = slash + 1;
		nlen = strlen(name);
	}
	if (nlen == 0)
		return ctl_error_set(CTL_EINVALID, "EmptyName", "a file has an empty name");
	memcpy(h, name, nlen);                 /* name[100] */
	octal((char *)h + 100, 8, 0644);        /* mode */
	octal((char *)h + 108, 8, 0);           /* uid */
	octal((char *)h + 116, 8, 0);           /* gid */
	octal((char *)h + 124, 12, f->len);     /* size */
	octal((char *)h + 136, 12, (unsigned long long)(mtime > 0 ? mtime : 0));
	memset(h + 148, ' ', 8);                /* checksum counts as spaces */
	h[156] = '0';                           /* typeflag: regular file */
	memcpy(h + 257, "ustar", 6);            /* magic "ustar\0" */
	memcpy(h + 263, "00", 2);               /* version */
	if (prefix)
		memcpy(h + 345, prefix, plen);
	unsigned sum = 0;
	for (int i = 0; i < BLOCK; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	h[155] = ' ';
	return 0;
}

/* Deflate len bytes of in into the stream, growing *out. */
static void deflate_some(z_stream *z, unsigned char **out, size_t *cap, const void *in, size_t len, int flush)
{
	z->next_in = (Bytef *)(uintptr_t)in;
	z->avail_in = (uInt)len;
	for (;;) {
		if (*cap - z->total_out < 65536) {
			*cap = *cap * 2 + 65536;
			*out = xrealloc(*out, *cap);
		}
		z->next_out = *out + z->total_out;
		z->avail_out = (uInt)(*cap - z->total_out);
		int zr = deflate(z, flush);
		if (zr == Z_STREAM_ERROR)
			abort();
		if (flush == Z_FINISH ? zr == Z_STREAM_END : (z->avail_in == 0 && z->avail_out > 0))
			break;
	}
}

int tarball_pack(unsigned char **out, size_t *len, struct tarball_file *files, size_t n, long long mtime)
{
	static const unsigned char zeros[BLOCK * 2];
	unsigned char h[BLOCK];
	size_t cap = 0;
	int rc = 0;
	z_stream z;

	*out = NULL;
	*len = 0;
	qsort(files, n, sizeof(*files), by_name);
	memset(&z, 0, sizeof(z));
	/* windowBits 15 + 16: a gzip wrapper instead of zlib's. */
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	unsigned char *buf = NULL;
	for (size_t i = 0; i < n; i++) {
		if ((rc = header(h, &files[i], mtime)))
			goto done;
		deflate_some(&z, &buf, &cap, h, BLOCK, Z_NO_FLUSH);
		/* The data in chunks: avail_in is a uInt. */
		for (size_t off = 0; off < files[i].len;) {
			size_t chunk = files[i].len - off > (1u << 30) ? (1u << 30) : files[i].len - off;
			deflate_some(&z, &buf, &cap, files[i].data + off, chunk, Z_NO_FLUSH);
			off += chunk;
		}
		size_t pad = (BLOCK - files[i].len % BLOCK) % BLOCK;
		if (pad)
			deflate_some(&z, &buf, &cap, zeros, pad, Z_NO_FLUSH);
	}
	/* Two zero blocks end the archive. */
	deflate_some(&z, &buf, &cap, zeros, sizeof(zeros), Z_FINISH);
	*len = z.total_out;
	*out = buf;
	buf = NULL;
done:
	deflateEnd(&z);
	free(buf);
	return rc;
}
