/*
 * buf.c: capped growable buffer. See buf.h.
 */
#include "buf.h"

#include "error.h"
#include "xalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ctl_buf_init(struct ctl_buf *b, size_t max)
{
	b->ptr = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void ctl_buf_dispose(struct ctl_buf *b)
{
	free(b->ptr);
	b->ptr = NULL;
	b->len = b->cap = 0;
}

void ctl_buf_reset(struct ctl_buf *b)
{
	b->len = 0;
	if (b->ptr)
		b->ptr[0] = '\0';
}

/* Room for n more bytes and a NUL, within the cap. */
static int reserve(struct ctl_buf *b, size_t n)
{
	size_t max = b->max ? b->max : CTL_BUF_DEFAULT_MAX;
	if (n > max || b->len > max - n)
		return CTL_ETOOBIG;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->ptr = xrealloc(b->ptr, cap);
		b->cap = cap;
	}
	return 0;
}

int ctl_buf_append(struct ctl_buf *b, const void *data, size_t n)
{
	int rc = reserve(b, n);
	if (rc != 0)
		return rc;
	if (n)
		memcpy(b->ptr + b->len, data, n);
	b->len += n;
	b->ptr[b->len] = '\0';
	return 0;
}

int ctl_buf_puts(struct ctl_buf *b, const char *s)
{
	return ctl_buf_append(b, s, strlen(s));
}

/* Formatted in place: the metrics page alone is tens of thousands of
 * these a scrape, and a temporary string for each was most of its
 * mallocs. */
int ctl_buf_printf(struct ctl_buf *b, const char *fmt, ...)
{
	va_list ap;
	size_t room = b->cap > b->len ? b->cap - b->len : 0;
	va_start(ap, fmt);
	int n = vsnprintf(room ? b->ptr + b->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		xalloc_die(); /* only an encoding error, which our formats never make */
	size_t max = b->max ? b->max : CTL_BUF_DEFAULT_MAX;
	if ((size_t)n > max || b->len > max - (size_t)n) {
		if (room)
			b->ptr[b->len] = '\0';
		return CTL_ETOOBIG;
	}
	if ((size_t)n >= room) {
		/* Did not fit: the bytes written past len are not ours yet. */
		if (room)
			b->ptr[b->len] = '\0';
		int rc = reserve(b, (size_t)n);
		if (rc != 0)
			return rc;
		va_start(ap, fmt);
		vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
	return 0;
}

void ctl_buf_consume(struct ctl_buf *b, size_t n)
{
	if (n >= b->len) {
		ctl_buf_reset(b);
		return;
	}
	memmove(b->ptr, b->ptr + n, b->len - n);
	b->len -= n;
	b->ptr[b->len] = '\0';
}

char *ctl_buf_detach(struct ctl_buf *b)
{
	char *p = b->ptr ? b->ptr : xstrdup("");
	b->ptr = NULL;
	b->len = b->cap = 0;
	return p;
}

const char *ctl_buf_str(const struct ctl_buf *b)
{
	return b->ptr ? b->ptr : "";
}
