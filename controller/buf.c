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

int ctl_buf_append(struct ctl_buf *b, const void *data, size_t n)
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

int ctl_buf_printf(struct ctl_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	int rc = ctl_buf_puts(b, s);
	free(s);
	return rc;
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
