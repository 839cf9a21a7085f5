/*
 * xalloc.h: the one allocation family of acrpool.
 *
 * Out of memory is not an error a reconciler can act on, so these functions
 * abort instead of returning NULL (as Redis' zmalloc and h2o_mem_alloc do).
 * With that settled, every negative return code in the tree means an I/O or
 * API failure, never "malloc failed".
 */
#ifndef CTL_XALLOC_H
#define CTL_XALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t n);
/* Abort as an allocation failure does: for a library call (cJSON) that can
 * only fail when memory is exhausted. */
__attribute__((noreturn)) void xalloc_die(void);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);            /* xstrdup(NULL) returns NULL */
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

#endif
