/*
 * fuzz_options.c: acrpool-controller's command line and environment. The
 * input's lines are the arguments, except lines NAME=value whose NAME is
 * upper case, which are the environment options_parse() reads.
 */
#include "fuzz.h"

#include "error.h"
#include "options.h"

#include <ctype.h>

#define MAX_ARGS 32
#define MAX_ENV 16

static char *env_lines[MAX_ENV];
static size_t nenv;

static const char *fuzz_env(const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < nenv; i++)
		if (strncmp(env_lines[i], name, n) == 0 && env_lines[i][n] == '=')
			return env_lines[i] + n + 1;
	return NULL;
}

static int is_env_line(const char *s)
{
	const char *eq = strchr(s, '=');
	if (!eq || eq == s)
		return 0;
	for (const char *p = s; p < eq; p++)
		if (!isupper((unsigned char)*p) && *p != '_')
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_str(data, size);
	static char prog[] = "acrpool-controller";
	char *argv[MAX_ARGS + 1] = {prog};
	int argc = 1;
	struct options o;

	nenv = 0;
	for (char *line = text, *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (is_env_line(line) && nenv < MAX_ENV)
			env_lines[nenv++] = line;
		else if (argc < MAX_ARGS)
			argv[argc++] = line;
	}
	argv[argc] = NULL;
	int rc = options_parse(&o, argc, argv, fuzz_env);
	FUZZ_ASSERT(rc == 0 || rc == CTL_EINVALID);
	if (rc == 0) {
		FUZZ_ASSERT(o.workers >= 1 && o.workers <= 1024);
		FUZZ_ASSERT(o.retry_period_ms < o.renew_deadline_ms && o.renew_deadline_ms < o.lease_duration_ms);
	}
	options_dispose(&o);
	free(text);
	return 0;
}
