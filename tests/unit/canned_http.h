/*
 * canned_http.h: a tiny HTTP/1.1 server on a loopback socket for the unit
 * tests that talk to a server: the ARM and identity wire tests
 * (reconcilers/) and the Kubernetes client, watch and informer tests
 * (controller/). curl's tests/data/testNNNN in spirit: the server accepts
 * one request per connection, records the raw request so a test can assert
 * the exact request line, headers and body, and answers with a canned
 * reply, the first one queued that fits the request and has not been used:
 *
 *   canned_reply()     a whole answer with a Content-Length, then the
 *                      connection closes;
 *   canned_reply_to()  the same, for a request whose request line contains
 *                      a given string (a path, "watch=true") only;
 *   canned_stream()    a chunked answer, as the API server streams a
 *                      watch: each part is one HTTP chunk, and a part after
 *                      the first goes out only once the test calls
 *                      canned_release(), so the client has read the one
 *                      before on its own when the test waited for that.
 *                      CANNED_HOLD keeps the stream open after the last
 *                      part until the client leaves or the server stops.
 *
 * Token requests (paths with /oauth2/ or /metadata/identity/) take replies
 * from their own queue, with a valid default token when none is queued, so
 * an ARM script does not have to interleave them; any other request that
 * no reply fits gets 418. Held streams stay open on the side, so the
 * server goes on answering other connections meanwhile.
 *
 * Also: canned_wait_requests() to wait for the client's requests, a fake
 * clock and sleep that record waits instead of sleeping, and process setup
 * (curl_global_init, no proxies, no AZURE_* variables from the developer's
 * shell).
 */
#ifndef ACRPOOL_TEST_CANNED_HTTP_H
#define ACRPOOL_TEST_CANNED_HTTP_H

#include "xalloc.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
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
#define CANNED_PARTS 8

/* What a reply does once it is written. */
enum canned_end {
	CANNED_CLOSE, /* close the connection */
	CANNED_HOLD,  /* keep it open until the client leaves or the server stops */
};

struct canned_answer {
	int token;                 /* answers token requests */
	char *match;               /* answers only a request line containing this; NULL: any */
	char *head;                /* status line and headers; all of a canned_reply() */
	int chunked;               /* a canned_stream(): the body follows in parts */
	char *parts[CANNED_PARTS]; /* its body, each part already an HTTP chunk */
	size_t nparts;
	enum canned_end end;
	int used;
};

struct canned_server {
	int fd;
	int port;
	char base[64];               /* "http://127.0.0.1:<port>" */
	pthread_t thread;
	int wake[2];                 /* canned_stop() writes here to wake the server thread */
	atomic_int stop;
	pthread_mutex_t mu;
	pthread_cond_t cond;         /* a request recorded, a part released, or stop */
	struct canned_answer answers[CANNED_MAX];
	size_t nanswers;
	size_t released, gates_passed; /* canned_release() calls, and the parts they let out */
	long token_delay_ms;         /* sleep before answering a token request */
	char *requests[CANNED_MAX];  /* raw requests, in arrival order */
	size_t nrequests;
	size_t ntoken_requests;
	size_t narm_requests;        /* every request that is not a token request */
	int held[CANNED_MAX];        /* CANNED_HOLD streams; the server thread's own */
	size_t nheld;
};

static const char canned_default_token[] =
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 70\r\n\r\n"
	"{\"token_type\":\"Bearer\",\"expires_in\":3600,\"access_token\":\"tok-default\"}";

static const char canned_no_reply[] = "HTTP/1.1 418 No Canned Reply\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

static inline int canned_is_token(const char *req)
{
	return strstr(req, "/oauth2/") != NULL || strstr(req, "/metadata/identity/") != NULL;
}

/* Does the request line (the first line) of a raw request contain what? */
static inline int canned_line_has(const char *req, const char *what)
{
	const char *eol = strstr(req, "\r\n");
	const char *hit = strstr(req, what);
	return hit && (!eol || hit < eol);
}

/* Queue an answer; the server owns match, head and parts from here. */
static inline void canned_queue(struct canned_server *s, struct canned_answer a)
{
	if (s->nanswers >= CANNED_MAX) {
		fprintf(stderr, "canned_http.h: more than %d canned replies\n", CANNED_MAX);
		abort();
	}
	s->answers[s->nanswers++] = a;
}

static inline char *canned_head(struct canned_server *s, int token, int status, const char *headers,
				const char *body)
{
	size_t same = 0; /* replies of this kind queued before, for the request id */
	for (size_t i = 0; i < s->nanswers; i++)
		same += s->answers[i].token == token;
	return xasprintf("HTTP/1.1 %d Canned\r\nConnection: close\r\nContent-Type: application/json\r\n"
			 "x-ms-request-id: req-%d-%zu\r\nx-ms-correlation-request-id: corr-1\r\n"
			 "%sContent-Length: %zu\r\n\r\n%s",
			 status, status, same, headers ? headers : "", body ? strlen(body) : 0, body ? body : "");
}

/* Queue a reply: status line from status, extra header lines (each ending
 * "\r\n", may be NULL) and body (may be NULL). token != 0 queues it for
 * token requests. */
static inline void canned_reply(struct canned_server *s, int token, int status, const char *headers,
				const char *body)
{
	pthread_mutex_lock(&s->mu);
	char *head = canned_head(s, !!token, status, headers, body);
	canned_queue(s, (struct canned_answer){.token = !!token, .head = head});
	pthread_mutex_unlock(&s->mu);
}

/* canned_reply() for a request (not a token request) whose request line
 * contains match, whatever order the requests come in. */
static inline void canned_reply_to(struct canned_server *s, const char *match, int status, const char *headers,
				   const char *body)
{
	pthread_mutex_lock(&s->mu);
	char *head = canned_head(s, 0, status, headers, body);
	canned_queue(s, (struct canned_answer){.match = xstrdup(match), .head = head});
	pthread_mutex_unlock(&s->mu);
}

/* Queue a streamed reply for a request line containing match (NULL: any
 * request that is not a token request): the status, then the parts up to
 * a NULL, each non-empty and sent as one HTTP chunk. A part after the
 * first waits for canned_release(). end says whether the stream then ends
 * or stays open. */
__attribute__((sentinel)) static inline void canned_stream(struct canned_server *s, const char *match, int status,
							   enum canned_end end, ...)
{
	struct canned_answer a = {
		.match = match ? xstrdup(match) : NULL,
		.head = xasprintf("HTTP/1.1 %d Canned\r\nConnection: close\r\nContent-Type: application/json\r\n"
				  "Transfer-Encoding: chunked\r\n\r\n", status),
		.chunked = 1,
		.end = end,
	};
	va_list ap;
	va_start(ap, end);
	for (const char *p; (p = va_arg(ap, const char *));) {
		if (!*p || a.nparts == CANNED_PARTS)
			abort(); /* empty (that chunk would end the stream), or too many */
		a.parts[a.nparts++] = xasprintf("%zx\r\n%s\r\n", strlen(p), p);
	}
	va_end(ap);
	pthread_mutex_lock(&s->mu);
	canned_queue(s, a);
	pthread_mutex_unlock(&s->mu);
}

/* Let a stream waiting before its next part go on. */
static inline void canned_release(struct canned_server *s)
{
	pthread_mutex_lock(&s->mu);
	s->released++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
}

/* Wait until the server has recorded n requests, at most timeout_ms.
 * Returns 1 when it has, 0 on timeout. */
static inline int canned_wait_requests(struct canned_server *s, size_t n, long timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->mu);
	int timed_out = 0;
	while (s->nrequests < n && !timed_out)
		timed_out = pthread_cond_timedwait(&s->cond, &s->mu, &until) != 0;
	int reached = s->nrequests >= n;
	pthread_mutex_unlock(&s->mu);
	return reached;
}

static inline void canned_write(int c, const char *data)
{
	size_t off = 0, total = strlen(data);
	while (off < total) {
		ssize_t w = send(c, data + off, total - off, MSG_NOSIGNAL);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
}

/* The end of an answer: no more from us, and drain until the client
 * closes, so it never sees a reset. */
static inline void canned_finish(int c)
{
	char chunk[4096];
	shutdown(c, SHUT_WR);
	struct pollfd p = {c, POLLIN, 0};
	while (poll(&p, 1, 200) > 0 && read(c, chunk, sizeof(chunk)) > 0)
		;
	close(c);
}

static inline char *canned_read_request(int c)
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
	return req;
}

static inline void canned_serve_one(struct canned_server *s, int c)
{
	char *req = canned_read_request(c);
	if (!req) {
		close(c);
		return;
	}
	int is_token = canned_is_token(req);
	const struct canned_answer *a = NULL;
	long delay = 0;
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->nanswers && !a; i++) {
		struct canned_answer *q = &s->answers[i];
		if (!q->used && q->token == is_token && (!q->match || canned_line_has(req, q->match))) {
			q->used = 1;
			a = q;
		}
	}
	if (s->nrequests < CANNED_MAX)
		s->requests[s->nrequests++] = req;
	else
		free(req);
	if (is_token) {
		s->ntoken_requests++;
		delay = s->token_delay_ms;
	} else {
		s->narm_requests++;
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
	if (delay) {
		struct timespec ts = {delay / 1000, (delay % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (!a) {
		canned_write(c, is_token ? canned_default_token : canned_no_reply);
		canned_finish(c);
		return;
	}
	canned_write(c, a->head);
	for (size_t k = 0; k < a->nparts; k++) {
		if (k > 0) {
			pthread_mutex_lock(&s->mu);
			while (s->gates_passed == s->released && !atomic_load(&s->stop))
				pthread_cond_wait(&s->cond, &s->mu);
			s->gates_passed++;
			pthread_mutex_unlock(&s->mu);
			if (atomic_load(&s->stop))
				break;
		}
		canned_write(c, a->parts[k]);
	}
	if (a->end == CANNED_HOLD && s->nheld < CANNED_MAX && !atomic_load(&s->stop)) {
		s->held[s->nheld++] = c;
		return;
	}
	if (a->chunked)
		canned_write(c, "0\r\n\r\n"); /* the last chunk of a stream */
	canned_finish(c);
}

static inline void *canned_thread(void *arg)
{
	struct canned_server *s = arg;
	while (!atomic_load(&s->stop)) {
		struct pollfd p[CANNED_MAX + 2] = {{s->wake[0], POLLIN, 0}, {s->fd, POLLIN, 0}};
		for (size_t k = 0; k < s->nheld; k++)
			p[k + 2] = (struct pollfd){s->held[k], POLLIN, 0};
		if (poll(p, s->nheld + 2, -1) <= 0)
			continue;
		/* A held stream whose client went away: close it. Anything the
		 * client sends on it is read and dropped. */
		for (size_t k = s->nheld; k > 0; k--) {
			char junk[256];
			if (p[k + 1].revents && recv(s->held[k - 1], junk, sizeof(junk), 0) <= 0) {
				close(s->held[k - 1]);
				s->held[k - 1] = s->held[--s->nheld];
			}
		}
		if (p[1].revents && !atomic_load(&s->stop)) {
			int c = accept(s->fd, NULL, NULL);
			if (c >= 0)
				canned_serve_one(s, c);
		}
	}
	for (size_t k = 0; k < s->nheld; k++)
		close(s->held[k]);
	s->nheld = 0;
	return NULL;
}

static inline void canned_start(struct canned_server *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pipe(s->wake))
		abort();
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
	pthread_mutex_lock(&s->mu);
	atomic_store(&s->stop, 1);
	pthread_cond_broadcast(&s->cond); /* a stream waiting for canned_release() */
	pthread_mutex_unlock(&s->mu);
	if (write(s->wake[1], "", 1) != 1)
		abort();
	pthread_join(s->thread, NULL);
	close(s->fd);
	close(s->wake[0]);
	close(s->wake[1]);
	for (size_t i = 0; i < s->nanswers; i++) {
		struct canned_answer *a = &s->answers[i];
		free(a->match);
		free(a->head);
		for (size_t k = 0; k < a->nparts; k++)
			free(a->parts[k]);
	}
	for (size_t i = 0; i < s->nrequests; i++)
		free(s->requests[i]);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mu);
}

/* The i-th recorded request that was (token != 0) or was not a token
 * request; NULL if there is none. It stays valid until canned_stop(). */
static inline const char *canned_request(struct canned_server *s, int token, size_t i)
{
	const char *r = NULL;
	pthread_mutex_lock(&s->mu);
	for (size_t k = 0; k < s->nrequests; k++) {
		const char *q = s->requests[k];
		if (canned_is_token(q) == !!token && i-- == 0) {
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
