/*
 * error.c: the thread-local last error. See error.h.
 */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local struct ctl_error last = {.retry_after_ms = -1};

int ctl_error_set(int code, const char *reason, const char *fmt, ...)
{
	va_list ap;
	memset(&last, 0, sizeof(last));
	last.code = code;
	last.retry_after_ms = -1;
	snprintf(last.reason, sizeof(last.reason), "%s", reason ? reason : "");
	va_start(ap, fmt);
	vsnprintf(last.message, sizeof(last.message), fmt, ap);
	va_end(ap);
	return code;
}

void ctl_error_set_http(long status, const char *request_id, long retry_after_ms)
{
	last.http_status = status;
	snprintf(last.request_id, sizeof(last.request_id), "%s", request_id ? request_id : "");
	last.retry_after_ms = retry_after_ms;
}

const struct ctl_error *ctl_error_last(void)
{
	return &last;
}

void ctl_error_clear(void)
{
	memset(&last, 0, sizeof(last));
	last.retry_after_ms = -1;
}

int ctl_error_from_http(long status)
{
	switch (status) {
	case 400: case 405: case 415: case 422:
		return CTL_ETERMINAL;
	case 401: case 403:
		return CTL_EAUTH;
	case 404:
		return CTL_ENOTFOUND;
	case 409: case 412:
		return CTL_ECONFLICT;
	case 410:
		return CTL_EGONE;
	case 408: case 429: case 500: case 502: case 503: case 504:
		return CTL_EUNAVAIL;
	default:
		return status >= 500 ? CTL_EUNAVAIL : CTL_ERR;
	}
}

const char *ctl_error_name(int code)
{
	switch (code) {
	case CTL_OK: return "ok";
	case CTL_ENOTFOUND: return "not_found";
	case CTL_ECONFLICT: return "conflict";
	case CTL_EGONE: return "gone";
	case CTL_EUNAVAIL: return "unavailable";
	case CTL_ETERMINAL: return "terminal";
	case CTL_ETOOBIG: return "too_big";
	case CTL_EAUTH: return "auth";
	case CTL_EINVALID: return "invalid";
	default: return "error";
	}
}
