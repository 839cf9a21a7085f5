/*
 * log.c: JSON line logger. See log.h.
 *
 * One fputs of a whole line under stdio's own stream lock keeps lines from
 * different threads from interleaving.
 */
#include "log.h"

#include "error.h"
#include "xalloc.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static atomic_int min_level = CTL_LOG_INFO;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void ctl_log_set_level(enum ctl_log_level level)
{
	atomic_store(&min_level, (int)level);
}

int ctl_log_parse_level(const char *s, enum ctl_log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum ctl_log_level)i;
			return 0;
		}
	}
	return CTL_EINVALID;
}

int ctl_log_enabled(enum ctl_log_level level)
{
	return (int)level >= atomic_load(&min_level);
}

void ctl_log(enum ctl_log_level level, const char *msg, ...)
{
	if (!ctl_log_enabled(level))
		return;
	struct timespec ts;
	struct tm tm;
	char when[40];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof(when) - n, ".%03ldZ", ts.tv_nsec / 1000000);

	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "time", when);
	cJSON_AddStringToObject(o, "level", level_names[level]);
	cJSON_AddStringToObject(o, "msg", msg);
	va_list ap;
	va_start(ap, msg);
	for (;;) {
		const char *k = va_arg(ap, const char *);
		if (!k)
			break;
		const char *v = va_arg(ap, const char *);
		cJSON_AddStringToObject(o, k, v ? v : "");
	}
	va_end(ap);
	char *line = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!line)
		abort();
	flockfile(stderr);
	fputs(line, stderr);
	fputc('\n', stderr);
	funlockfile(stderr);
	cJSON_free(line);
}

char *ctl_log_redact_url(const char *url)
{
	if (!url)
		return NULL;
	const char *q = strchr(url, '?');
	return q ? xstrndup(url, (size_t)(q - url)) : xstrdup(url);
}
