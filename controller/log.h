/*
 * log.h: structured logs, one JSON object per line on stderr.
 *
 * Every line has time, level and msg; callers add key/value fields
 * (controller, key, reconcileID, azureRequestId, ...). Values are escaped
 * by cJSON, so a hostile string cannot break a line in two. Nothing here
 * knows what a secret is: callers must never pass one (tokens, client
 * secrets and SAS URLs are redacted at the source, see ctl_log_redact_url).
 */
#ifndef CTL_LOG_H
#define CTL_LOG_H

enum ctl_log_level { CTL_LOG_DEBUG, CTL_LOG_INFO, CTL_LOG_WARN, CTL_LOG_ERROR };

void ctl_log_set_level(enum ctl_log_level level);
int ctl_log_parse_level(const char *s, enum ctl_log_level *out); /* 0 or CTL_EINVALID */
int ctl_log_enabled(enum ctl_log_level level);

/* Log msg with NULL-terminated key, value string pairs:
 *   ctl_log(CTL_LOG_INFO, "reconciled", "controller", "agentpool",
 *           "key", "ns/name", NULL);
 */
void ctl_log(enum ctl_log_level level, const char *msg, ...) __attribute__((sentinel));

/* Copy of url without its query string (a SAS token lives there). */
char *ctl_log_redact_url(const char *url);

#endif
