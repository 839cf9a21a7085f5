/*
 * buf.h: a growable byte buffer with a hard cap (after curl's dynbuf).
 *
 * Everything read from a peer (a watch line, an HTTP body, a token
 * response) goes through one of these, so a hostile or broken peer gets an
 * error (CTL_ETOOBIG) instead of unbounded memory. The contents are always
 * NUL-terminated so they can be handed to cJSON or printf directly.
 */
#ifndef CTL_BUF_H
#define CTL_BUF_H

#include <stddef.h>

struct ctl_buf {
	char *ptr;     /* NUL-terminated; NULL until the first append */
	size_t len;
	size_t cap;    /* allocated bytes */
	size_t max;    /* the cap on len; 0 means CTL_BUF_DEFAULT_MAX */
};

#define CTL_BUF_DEFAULT_MAX (64u * 1024 * 1024)
#define CTL_BUF_INIT {NULL, 0, 0, 0}

void ctl_buf_init(struct ctl_buf *b, size_t max);
void ctl_buf_dispose(struct ctl_buf *b);
void ctl_buf_reset(struct ctl_buf *b);   /* len = 0, keeps the memory */

/* Append n bytes. Returns 0, or CTL_ETOOBIG (buffer unchanged) when the
 * result would exceed max. */
int ctl_buf_append(struct ctl_buf *b, const void *data, size_t n);
int ctl_buf_puts(struct ctl_buf *b, const char *s);
int ctl_buf_printf(struct ctl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Drop the first n bytes (n <= len), moving the rest to the front. */
void ctl_buf_consume(struct ctl_buf *b, size_t n);

/* Hand the contents to the caller (who frees them) and reset the buffer. */
char *ctl_buf_detach(struct ctl_buf *b);

/* The contents, or "" for an empty buffer. Never NULL. */
const char *ctl_buf_str(const struct ctl_buf *b);

#endif
