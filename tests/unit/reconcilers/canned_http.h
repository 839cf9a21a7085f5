/*
 * canned_http.h: a tiny HTTP/1.1 server on a loopback socket for the wire
 * tests (curl's tests/data/testNNNN in spirit): it accepts one request per
 * connection, records the raw request so a test can assert the exact
 * headers and body, and answers with the next canned reply. Token requests
 * (paths with /oauth2/ or /metadata/identity/) take replies from their own
 * queue, with a valid default token when it is empty, so an ARM script does
 * not have to interleave them. Also: a fake clock and sleep that record
 * waits instead of sleeping, and process setup (curl_global_init, no
 * proxies, no AZURE_* variables from the developer's shell).
 */
#ifndef ACRPOOL_TEST_CANNED_HTTP_H
#define ACRPOOL_TEST_CANNED_HTTP_H

#include "xalloc.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CANNED_MAX 64

struct canned_server {
	int fd;
	int port;
	char base[64];               /* "http://127.0.0.1:<port>" */
	pthread_t thread;
	atomic_int stop;
	pthread_mutex_t mu;
	char *arm[CANNED_MAX];
	size_t narm, next_arm;
	char *token[CANNED_MAX];
	size_t ntoken, next_token;
	long token_delay_ms;         /* sleep before answering a token request */
	char *requests[CANNED_MAX];  /* raw requests, in arrival order */
	size_t nrequests;
	size_t ntoken_requests;
	size_t narm_requests;
};

static const char canned_default_token[] =
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 70\r\n\r\n"
	"{\"token_type\":\"Bearer\",\"expires_in\":3600,\"access_token\":\"tok-default\"}";

/* Queue a reply: status line from status, extra header lines (each ending
 * "\r\n", may be NULL) and body (may be NULL). token != 0 queues it for
 * token requests. */
static inline void canned_reply(struct canned_server *s, int token, int status, const char *headers,
				const char *body)
{
	size_t len = body ? strlen(body) : 0;
	char *r = xasprintf("HTTP/1.1 %d Canned\r\nConnection: close\r\nContent-Type: application/json\r\n"
			    "x-ms-request-id: req-%d-%zu\r\nx-ms-correlation-request-id: corr-1\r\n"
			    "%sContent-Length: %zu\r\n\r\n%s",
			    status, status, token ? s->ntoken : s->narm, headers ? headers : "", len,
			    body ? body : "");
	pthread_mutex_lock(&s->mu);
	if (token && s->ntoken < CANNED_MAX)
		s->token[s->ntoken++] = r;
	else if (!token && s->narm < CANNED_MAX)
		s->arm[s->narm++] = r;
	else
		free(r);
	pthread_mutex_unlock(&s->mu);
}

static inline void canned_serve_one(struct canned_server *s, int c)
{
	char *req = NULL;
	size_t len = 0, cap = 0, need = 0;
	char chunk[4096];
	for (;;) {
		struct pollfd p = {c, POLLIN, 0};
		if (poll(&p, 1, 5000) <= 0)
			break;
		ssize_t n = read(c, chunk, sizeof(chunk));
		if (n <= 0)
			break;
		if (len + (size_t)n + 1 > cap) {
			cap = (len + (size_t)n + 1) * 2;
			req = xrealloc(req, cap);
		}
		memcpy(req + len, chunk, (size_t)n);
		len += (size_t)n;
		req[len] = '\0';
		char *end = strstr(req, "\r\n\r\n");
		if (!end)
			continue;
		if (!need) {
			size_t cl = 0;
			for (char *h = strchr(req, '\n'); h && h < end; h = strchr(h + 1, '\n'))
				if (strncasecmp(h + 1, "Content-Length:", 15) == 0)
					cl = strtoul(h + 16, NULL, 10);
			need = (size_t)(end - req) + 4 + cl;
		}
		if (len >= need)
			break;
	}
	if (!req) {
		close(c);
		return;
	}
	int is_token = strstr(req, "/oauth2/") != NULL || strstr(req, "/metadata/identity/") != NULL;
	const char *reply = NULL;
	long delay = 0;
	pthread_mutex_lock(&s->mu);
	if (s->nrequests < CANNED_MAX)
		s->requests[s->nrequests++] = req;
	else
		free(req);
	if (is_token) {
		s->ntoken_requests++;
		reply = s->next_token < s->ntoken ? s->token[s->next_token++] : canned_default_token;
		delay = s->token_delay_ms;
	} else {
		s->narm_requests++;
		reply = s->next_arm < s->narm ? s->arm[s->next_arm++]
			: "HTTP/1.1 418 No Canned Reply\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
	}
	pthread_mutex_unlock(&s->mu);
	if (delay) {
		struct timespec ts = {delay / 1000, (delay % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
	size_t off = 0, total = strlen(reply);
	while (off < total) {
		ssize_t w = write(c, reply + off, total - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	shutdown(c, SHUT_WR);
	/* Drain until the client closes, so it never sees a reset. */
	struct pollfd p = {c, POLLIN, 0};
	while (poll(&p, 1, 200) > 0 && read(c, chunk, sizeof(chunk)) > 0)
		;
	close(c);
}

static inline void *canned_thread(void *arg)
{
	struct canned_server *s = arg;
	while (!atomic_load(&s->stop)) {
		struct pollfd p = {s->fd, POLLIN, 0};
		if (poll(&p, 1, 20) <= 0)
			continue;
		int c = accept(s->fd, NULL, NULL);
		if (c >= 0)
			canned_serve_one(s, c);
	}
	return NULL;
}

static inline void canned_start(struct canned_server *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	if (bind(s->fd, (struct sockaddr *)&a, sizeof(a)) || listen(s->fd, 16) ||
	    getsockname(s->fd, (struct sockaddr *)&a, &al))
		abort();
	s->port = ntohs(a.sin_port);
	snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", s->port);
	pthread_create(&s->thread, NULL, canned_thread, s);
}

static inline void canned_stop(struct canned_server *s)
{
	atomic_store(&s->stop, 1);
	pthread_join(s->thread, NULL);
	close(s->fd);
	for (size_t i = 0; i < s->narm; i++)
		free(s->arm[i]);
	for (size_t i = 0; i < s->ntoken; i++)
		free(s->token[i]);
	for (size_t i = 0; i < s->nrequests; i++)
		free(s->requests[i]);
	pthread_mutex_destroy(&s->mu);
}

/* The i-th recorded request that was (token != 0) or was not a token
 * request; NULL if there is none. */
static inline const char *canned_request(struct canned_server *s, int token, size_t i)
{
	const char *r = NULL;
	pthread_mutex_lock(&s->mu);
	for (size_t k = 0; k < s->nrequests; k++) {
		const char *q = s->requests[k];
		int is_token = strstr(q, "/oauth2/") != NULL || strstr(q, "/metadata/identity/") != NULL;
		if (is_token == !!token && i-- == 0) {
			r = q;
			break;
		}
	}
	pthread_mutex_unlock(&s->mu);
	return r;
}

/* Copy of the value of header name in a raw request, or NULL. */
static inline char *canned_header(const char *req, const char *name)
{
	size_t n = strlen(name);
	const char *end = req ? strstr(req, "\r\n\r\n") : NULL;
	for (const char *h = req ? strstr(req, "\r\n") : NULL; h && h < end; h = strstr(h + 2, "\r\n")) {
		if (strncasecmp(h + 2, name, n) == 0 && h[2 + n] == ':') {
			const char *v = h + 3 + n;
			while (*v == ' ')
				v++;
			return xstrndup(v, strcspn(v, "\r\n"));
		}
	}
	return NULL;
}

/* The body of a raw request ("" if none). */
static inline const char *canned_body(const char *req)
{
	const char *end = req ? strstr(req, "\r\n\r\n") : NULL;
	return end ? end + 4 : "";
}

/* A port with nothing listening (bound, then closed). */
static inline int canned_dead_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || getsockname(fd, (struct sockaddr *)&a, &al))
		abort();
	close(fd);
	return ntohs(a.sin_port);
}

/* A clock that only moves when something sleeps on it. */
struct fake_clock {
	int64_t now_ms;
	long sleeps[CANNED_MAX];
	int nsleeps;
};

static inline void fake_sleep(long ms, void *arg)
{
	struct fake_clock *f = arg;
	if (f->nsleeps < CANNED_MAX)
		f->sleeps[f->nsleeps++] = ms;
	f->now_ms += ms;
}

static inline int64_t fake_clock_ms(void *arg)
{
	return ((struct fake_clock *)arg)->now_ms;
}

static inline int64_t fake_clock_s(void *arg)
{
	return ((struct fake_clock *)arg)->now_ms / 1000;
}

/* Process setup for wire tests: once, before any case runs. The test
 * binary is the "main" here, so it owns curl_global_init. */
__attribute__((constructor)) static void canned_setup(void)
{
	static const char *const vars[] = {
		"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy",
		"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST",
		"AZURE_POD_IDENTITY_AUTHORITY_HOST", NULL,
	};
	for (int i = 0; vars[i]; i++)
		unsetenv(vars[i]);
	setenv("NO_PROXY", "127.0.0.1,localhost", 1);
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

__attribute__((destructor)) static void canned_teardown(void)
{
	curl_global_cleanup();
}

#endif
