/*
 * error.h: return codes and the thread-local last error (after libgit2).
 *
 * Functions return int: 0 on success, or one of the negative codes below
 * that a caller can act on. The detail a human needs (the Kubernetes Status
 * reason and message, the ARM error code and message, the HTTP status) is
 * left in a per-thread record that the caller reads right after the failed
 * call with ctl_error_last(). Library code never logs; the loop that called
 * it decides what to log.
 */
#ifndef CTL_ERROR_H
#define CTL_ERROR_H

enum {
	CTL_OK = 0,
	CTL_ERR = -1,        /* anything else: see ctl_error_last() */
	CTL_ENOTFOUND = -2,  /* 404, or absent from the cache */
	CTL_ECONFLICT = -3,  /* 409: resourceVersion precondition, or busy */
	CTL_EGONE = -4,      /* 410: resourceVersion too old, relist */
	CTL_EUNAVAIL = -5,   /* transient: network, 429, 5xx; retry later */
	CTL_ETERMINAL = -6,  /* the request itself is wrong; retrying won't help */
	CTL_ETOOBIG = -7,    /* a capped buffer would overflow */
	CTL_EAUTH = -8,      /* 401/403: credentials refused */
	CTL_EINVALID = -9,   /* malformed input from a peer or a file */
};

struct ctl_error {
	int code;            /* one of the CTL_E* codes */
	long http_status;    /* 0 when no HTTP exchange was involved */
	char reason[128];    /* machine-readable: Status.reason, ARM error.code */
	char message[1024];  /* human-readable, never holds a secret */
	char request_id[80]; /* x-ms-request-id or audit id, when known */
	long retry_after_ms; /* from Retry-After, or -1 */
};

/* Record an error for this thread and return code (so callers can write
 * `return ctl_error_set(CTL_ENOTFOUND, "...", ...)`). */
int ctl_error_set(int code, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Set the HTTP status and request id on the current error. */
void ctl_error_set_http(long status, const char *request_id, long retry_after_ms);

/* The last error recorded on this thread; never NULL. */
const struct ctl_error *ctl_error_last(void);
void ctl_error_clear(void);

/* Map an HTTP status to a code: 404 -> ENOTFOUND, 409 -> ECONFLICT, ... */
int ctl_error_from_http(long status);

/* Short lowercase name of a code, for logs and metrics labels. */
const char *ctl_error_name(int code);

#endif
