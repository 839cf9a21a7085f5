/*
 * metrics.c: the registry, its series and the text exposition. See
 * metrics.h.
 *
 * Locks: the registry mutex guards the family list and is held for a whole
 * scrape (which also serialises scrapes) and by ctl_metric_remove; each
 * family's mutex guards its series and their values. Order: registry, then
 * family. A scrape copies a family's values under the family mutex and
 * calls gauge callbacks after releasing it, so a callback may take locks
 * that other threads hold while updating metrics.
 */
#include "metrics.h"

#include "buf.h"
#include "error.h"
#include "hash.h"
#include "xalloc.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum type { COUNTER, GAUGE, HISTOGRAM };

static const char *const type_names[] = {"counter", "gauge", "histogram"};

/* client_golang's prometheus.DefBuckets. */
static const double default_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

struct series {
	char **values;      /* one per label name */
	double value;       /* counter, gauge */
	ctl_gauge_fn fn;    /* gauge callback, or NULL */
	void *ud;
	uint64_t *counts;   /* histogram: per bucket, not cumulative; +Inf is count */
	double sum;
	uint64_t count;
};

struct ctl_metric {
	struct ctl_metrics *reg;
	enum type type;
	char *name;
	char *help;
	char **labels;
	size_t nlabels;
	double *bounds;
	size_t nbounds;
	pthread_mutex_t mu;
	struct series **series;
	size_t nseries, cap;
	/* The series by label values: an open-addressing table (linear
	 * probing, at most half full) of indices into series plus one, 0 for
	 * empty. Without it every update searched the series one by one, and
	 * with a series per pool that was a third of the operator's CPU at
	 * 10,000 pools (BENCHMARKS.md). */
	size_t *index;
	size_t index_cap;   /* a power of two, or 0 */
};

struct ctl_metrics {
	pthread_mutex_t mu;
	struct ctl_metric **families;
	size_t nfamilies, cap;
};

int ctl_metrics_new(struct ctl_metrics **out)
{
	struct ctl_metrics *m = xcalloc(1, sizeof(*m));
	pthread_mutex_init(&m->mu, NULL);
	*out = m;
	return 0;
}

static void series_free(struct series *s, size_t nlabels)
{
	for (size_t i = 0; i < nlabels; i++)
		free(s->values[i]);
	free(s->values);
	free(s->counts);
	free(s);
}

static void family_free(struct ctl_metric *f)
{
	for (size_t i = 0; i < f->nseries; i++)
		series_free(f->series[i], f->nlabels);
	free(f->series);
	free(f->index);
	for (size_t i = 0; i < f->nlabels; i++)
		free(f->labels[i]);
	free(f->labels);
	free(f->bounds);
	free(f->name);
	free(f->help);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

void ctl_metrics_free(struct ctl_metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nfamilies; i++)
		family_free(m->families[i]);
	free(m->families);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

static int valid_name(const char *s, int colons)
{
	if (!s || !*s)
		return 0;
	for (const char *p = s; *p; p++) {
		int alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
			    (colons && *p == ':');
		int digit = *p >= '0' && *p <= '9';
		if (!alpha && !(digit && p != s))
			return 0;
	}
	return 1;
}

static size_t count_labels(const char *const labels[])
{
	size_t n = 0;
	while (labels && labels[n])
		n++;
	return n;
}

/* The family named name, or NULL. Registry lock held. */
static struct ctl_metric *family_find(struct ctl_metrics *m, const char *name)
{
	for (size_t i = 0; i < m->nfamilies; i++)
		if (strcmp(m->families[i]->name, name) == 0)
			return m->families[i];
	return NULL;
}

/* Does the registered family f match what a caller registers again? */
static int family_matches(const struct ctl_metric *f, enum type type, const char *const labels[],
			  size_t nlabels, const double *bounds, size_t nbounds)
{
	if (f->type != type || f->nlabels != nlabels)
		return 0;
	for (size_t i = 0; i < nlabels; i++)
		if (strcmp(f->labels[i], labels[i]) != 0)
			return 0;
	if (type != HISTOGRAM)
		return 1;
	return f->nbounds == nbounds && memcmp(f->bounds, bounds, nbounds * sizeof(*bounds)) == 0;
}

static struct series *series_new(const struct ctl_metric *f, const char *const values[])
{
	struct series *s = xcalloc(1, sizeof(*s));
	s->values = xcalloc(f->nlabels ? f->nlabels : 1, sizeof(char *));
	for (size_t i = 0; i < f->nlabels; i++)
		s->values[i] = xstrdup(values && values[i] ? values[i] : "");
	if (f->type == HISTOGRAM)
		s->counts = xcalloc(f->nbounds ? f->nbounds : 1, sizeof(uint64_t));
	return s;
}

/* Validate, then find or create the family. */
static int family_register(struct ctl_metric **out, struct ctl_metrics *m, enum type type,
			   const char *name, const char *help, const char *const labels[],
			   const double *bounds, size_t nbounds)
{
	int rc = 0;
	size_t nlabels = count_labels(labels);
	struct ctl_metric *f = NULL;

	*out = NULL;
	if (!m)
		return 0;
	if (!valid_name(name, 1))
		return ctl_error_set(CTL_EINVALID, "InvalidMetricName", "invalid metric name \"%s\"",
				     name ? name : "");
	for (size_t i = 0; i < nlabels; i++) {
		if (!valid_name(labels[i], 0) || strncmp(labels[i], "__", 2) == 0 ||
		    (type == HISTOGRAM && strcmp(labels[i], "le") == 0))
			return ctl_error_set(CTL_EINVALID, "InvalidLabelName",
					     "metric %s: invalid label name \"%s\"", name, labels[i]);
		for (size_t j = 0; j < i; j++)
			if (strcmp(labels[i], labels[j]) == 0)
				return ctl_error_set(CTL_EINVALID, "DuplicateLabelName",
						     "metric %s: label \"%s\" twice", name, labels[i]);
	}
	if (type == HISTOGRAM) {
		if (!bounds) {
			bounds = default_bounds;
			nbounds = sizeof(default_bounds) / sizeof(default_bounds[0]);
		}
		for (size_t i = 0; i < nbounds; i++)
			if (isnan(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
				return ctl_error_set(CTL_EINVALID, "InvalidBuckets",
						     "metric %s: buckets must increase", name);
	}

	pthread_mutex_lock(&m->mu);
	f = family_find(m, name);
	if (f) {
		if (!family_matches(f, type, labels, nlabels, bounds, nbounds)) {
			rc = ctl_error_set(CTL_ECONFLICT, "MetricConflict",
					   "metric %s is already registered differently", name);
			f = NULL;
		}
		goto done;
	}
	f = xcalloc(1, sizeof(*f));
	f->reg = m;
	f->type = type;
	f->name = xstrdup(name);
	f->help = xstrdup(help ? help : "");
	f->nlabels = nlabels;
	f->labels = xcalloc(nlabels ? nlabels : 1, sizeof(char *));
	for (size_t i = 0; i < nlabels; i++)
		f->labels[i] = xstrdup(labels[i]);
	if (type == HISTOGRAM) {
		f->nbounds = nbounds;
		f->bounds = xmalloc((nbounds ? nbounds : 1) * sizeof(double));
		if (nbounds)
			memcpy(f->bounds, bounds, nbounds * sizeof(double));
	}
	pthread_mutex_init(&f->mu, NULL);
	if (nlabels == 0) {
		f->series = xmalloc(sizeof(*f->series));
		f->series[0] = series_new(f, NULL);
		f->nseries = f->cap = 1;
	}
	if (m->nfamilies == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->families = xrealloc(m->families, m->cap * sizeof(*m->families));
	}
	m->families[m->nfamilies++] = f;
done:
	pthread_mutex_unlock(&m->mu);
	*out = f;
	return rc;
}

int ctl_metrics_counter(struct ctl_metric **out, struct ctl_metrics *m, const char *name,
			const char *help, const char *const labels[])
{
	return family_register(out, m, COUNTER, name, help, labels, NULL, 0);
}

int ctl_metrics_gauge(struct ctl_metric **out, struct ctl_metrics *m, const char *name,
		      const char *help, const char *const labels[])
{
	return family_register(out, m, GAUGE, name, help, labels, NULL, 0);
}

int ctl_metrics_histogram(struct ctl_metric **out, struct ctl_metrics *m, const char *name,
			  const char *help, const char *const labels[],
			  const double *buckets, size_t nbuckets)
{
	return family_register(out, m, HISTOGRAM, name, help, labels, buckets, nbuckets);
}

static int values_equal(const struct ctl_metric *f, const struct series *s,
			const char *const values[])
{
	for (size_t i = 0; i < f->nlabels; i++) {
		const char *v = values && values[i] ? values[i] : "";
		if (strcmp(s->values[i], v) != 0)
			return 0;
	}
	return 1;
}

/* The values, each ended by a byte no UTF-8 text holds ("a","bc" and
 * "ab","c" differ). */
static uint64_t values_hash(size_t nlabels, const char *const values[])
{
	uint64_t h = CTL_FNV1A_INIT;
	for (size_t i = 0; i < nlabels; i++)
		h = ctl_fnv1a_byte(ctl_fnv1a_str(h, values ? values[i] : NULL), 0xff);
	return h;
}

static void index_put(struct ctl_metric *f, size_t i)
{
	size_t mask = f->index_cap - 1;
	size_t slot = (size_t)values_hash(f->nlabels, (const char *const *)f->series[i]->values) & mask;
	while (f->index[slot])
		slot = (slot + 1) & mask;
	f->index[slot] = i + 1;
}

/* Make the table anew for the series there are (after a removal shifted
 * them, or to grow it). Family lock held. */
static void index_rebuild(struct ctl_metric *f)
{
	size_t cap = 16;
	while (cap < 2 * (f->nseries + 1))
		cap *= 2;
	free(f->index);
	f->index = xcalloc(cap, sizeof(*f->index));
	f->index_cap = cap;
	for (size_t i = 0; i < f->nseries; i++)
		index_put(f, i);
}

/* The series at `removed` is gone and those after it moved down one:
 * renumber the table and close the hole (backward shift: an entry further
 * along the probe run moves into the hole unless its home slot lies
 * between the two). Family lock held. */
static void index_remove(struct ctl_metric *f, size_t removed)
{
	size_t mask = f->index_cap - 1, hole = f->index_cap;
	for (size_t k = 0; k < f->index_cap; k++) {
		if (f->index[k] == removed + 1)
			hole = k;
		else if (f->index[k] > removed + 1)
			f->index[k]--;
	}
	if (hole == f->index_cap)
		return;
	size_t i = hole;
	for (size_t j = (hole + 1) & mask; f->index[j]; j = (j + 1) & mask) {
		size_t home = (size_t)values_hash(f->nlabels, (const char *const *)f->series[f->index[j] - 1]->values) &
			      mask;
		bool between = i <= j ? home > i && home <= j : home > i || home <= j;
		if (!between) {
			f->index[i] = f->index[j];
			i = j;
		}
	}
	f->index[i] = 0;
}

/* Index of the series with these values, or f->nseries. Family lock held. */
static size_t series_index(const struct ctl_metric *f, const char *const values[])
{
	if (f->nlabels == 0 || !f->index_cap)
		return f->nseries && values_equal(f, f->series[0], values) ? 0 : f->nseries;
	size_t mask = f->index_cap - 1;
	for (size_t slot = (size_t)values_hash(f->nlabels, values) & mask; f->index[slot]; slot = (slot + 1) & mask)
		if (values_equal(f, f->series[f->index[slot] - 1], values))
			return f->index[slot] - 1;
	return f->nseries;
}

/* The series with these values, created if absent; NULL when the family is
 * full. Family lock held. */
static struct series *series_get(struct ctl_metric *f, const char *const values[])
{
	size_t i = series_index(f, values);
	if (i < f->nseries)
		return f->series[i];
	if (f->nseries >= CTL_METRICS_MAX_SERIES)
		return NULL;
	if (f->nseries == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 8;
		f->series = xrealloc(f->series, f->cap * sizeof(*f->series));
	}
	f->series[f->nseries] = series_new(f, values);
	f->nseries++;
	if (f->nlabels > 0) {
		if (2 * f->nseries > f->index_cap)
			index_rebuild(f);
		else
			index_put(f, f->nseries - 1);
	}
	return f->series[f->nseries - 1];
}

enum op { OP_ADD, OP_SET, OP_OBSERVE };

static int update(struct ctl_metric *f, const char *const values[], enum op op, double v)
{
	int rc = 0;
	if (!f)
		return 0;
	if ((op == OP_ADD && (f->type == HISTOGRAM || (f->type == COUNTER && v < 0))) ||
	    (op == OP_SET && f->type != GAUGE) || (op == OP_OBSERVE && f->type != HISTOGRAM))
		return ctl_error_set(CTL_EINVALID, "InvalidMetricUpdate",
				     "metric %s: operation does not fit a %s", f->name,
				     type_names[f->type]);
	pthread_mutex_lock(&f->mu);
	struct series *s = series_get(f, values);
	if (!s) {
		rc = ctl_error_set(CTL_ETOOBIG, "TooManySeries", "metric %s: more than %d series",
				   f->name, CTL_METRICS_MAX_SERIES);
		goto done;
	}
	switch (op) {
	case OP_ADD:
		s->value += v;
		break;
	case OP_SET:
		s->fn = NULL;
		s->value = v;
		break;
	case OP_OBSERVE:
		for (size_t i = 0; i < f->nbounds; i++) {
			if (v <= f->bounds[i]) {
				s->counts[i]++;
				break;
			}
		}
		s->sum += v;
		s->count++;
		break;
	}
done:
	pthread_mutex_unlock(&f->mu);
	return rc;
}

int ctl_metric_inc(struct ctl_metric *f, const char *const values[])
{
	return update(f, values, OP_ADD, 1);
}

int ctl_metric_add(struct ctl_metric *f, const char *const values[], double v)
{
	return update(f, values, OP_ADD, v);
}

int ctl_metric_set(struct ctl_metric *f, const char *const values[], double v)
{
	return update(f, values, OP_SET, v);
}

int ctl_metric_observe(struct ctl_metric *f, const char *const values[], double v)
{
	return update(f, values, OP_OBSERVE, v);
}

int ctl_metric_set_func(struct ctl_metric *f, const char *const values[], ctl_gauge_fn fn,
			void *ud)
{
	int rc = 0;
	if (!f)
		return 0;
	if (f->type == HISTOGRAM)
		return ctl_error_set(CTL_EINVALID, "InvalidMetricUpdate",
				     "metric %s: a histogram cannot be a callback", f->name);
	pthread_mutex_lock(&f->mu);
	struct series *s = series_get(f, values);
	if (!s) {
		rc = ctl_error_set(CTL_ETOOBIG, "TooManySeries", "metric %s: more than %d series",
				   f->name, CTL_METRICS_MAX_SERIES);
		goto done;
	}
	s->fn = fn;
	s->ud = ud;
done:
	pthread_mutex_unlock(&f->mu);
	return rc;
}

int ctl_metric_remove(struct ctl_metric *f, const char *const values[])
{
	int rc = 0;
	if (!f)
		return 0;
	/* The registry lock makes us wait for a scrape that may be inside
	 * this series' callback. */
	pthread_mutex_lock(&f->reg->mu);
	pthread_mutex_lock(&f->mu);
	size_t i = series_index(f, values);
	if (i == f->nseries) {
		rc = ctl_error_set(CTL_ENOTFOUND, "SeriesNotFound", "metric %s: no such series",
				   f->name);
		goto done;
	}
	series_free(f->series[i], f->nlabels);
	memmove(&f->series[i], &f->series[i + 1], (f->nseries - i - 1) * sizeof(*f->series));
	f->nseries--;
	/* The series after it moved down one (the order is the exposition's). */
	if (f->nlabels > 0)
		index_remove(f, i);
done:
	pthread_mutex_unlock(&f->mu);
	pthread_mutex_unlock(&f->reg->mu);
	return rc;
}

int ctl_metric_get(double *out, struct ctl_metric *f, const char *const values[])
{
	int rc = 0;
	ctl_gauge_fn fn = NULL;
	void *ud = NULL;

	*out = 0;
	if (!f)
		return ctl_error_set(CTL_ENOTFOUND, "SeriesNotFound", "no metric");
	pthread_mutex_lock(&f->reg->mu);
	pthread_mutex_lock(&f->mu);
	size_t i = series_index(f, values);
	if (i == f->nseries) {
		rc = ctl_error_set(CTL_ENOTFOUND, "SeriesNotFound", "metric %s: no such series",
				   f->name);
	} else {
		struct series *s = f->series[i];
		*out = f->type == HISTOGRAM ? (double)s->count : s->value;
		fn = s->fn;
		ud = s->ud;
	}
	pthread_mutex_unlock(&f->mu);
	if (fn)
		*out = fn(ud);
	pthread_mutex_unlock(&f->reg->mu);
	return rc;
}

void ctl_metrics_format_value(char *buf, size_t size, double v)
{
	if (isnan(v)) {
		snprintf(buf, size, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(buf, size, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	/* expfmt writes strconv.AppendFloat(v, 'g', -1): the fewest digits
	 * that read back as v, in %e form when the decimal exponent is below
	 * -4 or at least 6 (Go's limit for the shortest form), else %f. */
	char tmp[40];
	int prec;
	for (prec = 1; prec < 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
	int exp = atoi(strchr(tmp, 'e') + 1);
	if (exp < -4 || exp >= 6) {
		snprintf(buf, size, "%s", tmp);
		return;
	}
	int decimals = prec - 1 - exp;
	snprintf(buf, size, "%.*f", decimals > 0 ? decimals : 0, v);
}

/* Label values escape backslash, double quote and newline; HELP text
 * escapes backslash and newline (format 0.0.4). */
static int put_escaped(struct ctl_buf *b, const char *s, int quotes)
{
	int rc = 0;
	for (const char *p = s; *p && rc == 0; p++) {
		if (*p == '\\')
			rc = ctl_buf_puts(b, "\\\\");
		else if (*p == '\n')
			rc = ctl_buf_puts(b, "\\n");
		else if (*p == '"' && quotes)
			rc = ctl_buf_puts(b, "\\\"");
		else
			rc = ctl_buf_append(b, p, 1);
	}
	return rc;
}

/* A snapshot of one series, taken under the family lock. values point into
 * the live series, which cannot be removed while the scrape holds the
 * registry lock. */
struct snap {
	size_t nlabels;
	char **values;
	double value;
	ctl_gauge_fn fn;
	void *ud;
	uint64_t *counts;
	double sum;
	uint64_t count;
};

static int snap_cmp(const void *a, const void *b)
{
	const struct snap *x = a, *y = b;
	for (size_t i = 0; i < x->nlabels; i++) {
		int c = strcmp(x->values[i], y->values[i]);
		if (c)
			return c;
	}
	return 0;
}

static int family_cmp(const void *a, const void *b)
{
	const struct ctl_metric *x = *(struct ctl_metric *const *)a;
	const struct ctl_metric *y = *(struct ctl_metric *const *)b;
	return strcmp(x->name, y->name);
}

/* name[suffix]{labels[,le="bound"]} value\n */
static int put_sample(struct ctl_buf *b, const struct ctl_metric *f, const char *suffix,
		      char *const values[], const char *le, double v)
{
	char num[40];
	int rc = ctl_buf_printf(b, "%s%s", f->name, suffix);
	if (rc == 0 && (f->nlabels || le))
		rc = ctl_buf_puts(b, "{");
	for (size_t i = 0; rc == 0 && i < f->nlabels; i++) {
		rc = ctl_buf_printf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
		if (rc == 0)
			rc = put_escaped(b, values[i], 1);
		if (rc == 0)
			rc = ctl_buf_puts(b, "\"");
	}
	if (rc == 0 && le)
		rc = ctl_buf_printf(b, "%sle=\"%s\"", f->nlabels ? "," : "", le);
	if (rc == 0 && (f->nlabels || le))
		rc = ctl_buf_puts(b, "}");
	ctl_metrics_format_value(num, sizeof(num), v);
	if (rc == 0)
		rc = ctl_buf_printf(b, " %s\n", num);
	return rc;
}

static int render_family(struct ctl_metric *f, struct ctl_buf *b)
{
	int rc = 0;
	size_t n = 0;
	struct snap *snaps = NULL;

	pthread_mutex_lock(&f->mu);
	n = f->nseries;
	snaps = xcalloc(n ? n : 1, sizeof(*snaps));
	for (size_t i = 0; i < n; i++) {
		struct series *s = f->series[i];
		snaps[i] = (struct snap){f->nlabels, s->values, s->value, s->fn, s->ud,
					 NULL, s->sum, s->count};
		if (f->type == HISTOGRAM) {
			snaps[i].counts = xmalloc((f->nbounds ? f->nbounds : 1) * sizeof(uint64_t));
			memcpy(snaps[i].counts, s->counts, f->nbounds * sizeof(uint64_t));
		}
	}
	pthread_mutex_unlock(&f->mu);
	if (n == 0)
		goto done;

	for (size_t i = 0; i < n; i++)
		if (snaps[i].fn)
			snaps[i].value = snaps[i].fn(snaps[i].ud);
	qsort(snaps, n, sizeof(*snaps), snap_cmp);

	rc = ctl_buf_printf(b, "# HELP %s ", f->name);
	if (rc == 0)
		rc = put_escaped(b, f->help, 0);
	if (rc == 0)
		rc = ctl_buf_printf(b, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct snap *s = &snaps[i];
		if (f->type != HISTOGRAM) {
			rc = put_sample(b, f, "", s->values, NULL, s->value);
			continue;
		}
		uint64_t cumulative = 0;
		for (size_t j = 0; rc == 0 && j < f->nbounds; j++) {
			char le[40];
			cumulative += s->counts[j];
			ctl_metrics_format_value(le, sizeof(le), f->bounds[j]);
			rc = put_sample(b, f, "_bucket", s->values, le, (double)cumulative);
		}
		if (rc == 0)
			rc = put_sample(b, f, "_bucket", s->values, "+Inf", (double)s->count);
		if (rc == 0)
			rc = put_sample(b, f, "_sum", s->values, NULL, s->sum);
		if (rc == 0)
			rc = put_sample(b, f, "_count", s->values, NULL, (double)s->count);
	}
done:
	for (size_t i = 0; i < n; i++)
		free(snaps[i].counts);
	free(snaps);
	return rc;
}

int ctl_metrics_render(struct ctl_metrics *m, struct ctl_buf *out)
{
	int rc = 0;
	struct ctl_metric **sorted = NULL;

	pthread_mutex_lock(&m->mu);
	sorted = xmalloc((m->nfamilies ? m->nfamilies : 1) * sizeof(*sorted));
	if (m->nfamilies)
		memcpy(sorted, m->families, m->nfamilies * sizeof(*sorted));
	qsort(sorted, m->nfamilies, sizeof(*sorted), family_cmp);
	for (size_t i = 0; rc == 0 && i < m->nfamilies; i++)
		rc = render_family(sorted[i], out);
	pthread_mutex_unlock(&m->mu);
	free(sorted);
	return rc;
}

int ctl_metrics_rest_client_observe(struct ctl_metrics *m, const char *host, const char *verb,
				    const char *code, double seconds)
{
	/* client-go's buckets for rest_client_request_duration_seconds. */
	static const double bounds[] = {0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60};
	struct ctl_metric *total = NULL, *duration = NULL;
	int rc = ctl_metrics_counter(&total, m, "rest_client_requests_total",
				     "Number of HTTP requests, partitioned by status code, method, and host.",
				     (const char *[]){"host", "verb", "code", NULL});
	if (rc == 0)
		rc = ctl_metrics_histogram(&duration, m, "rest_client_request_duration_seconds",
					   "Request latency in seconds. Broken down by verb, and host.",
					   (const char *[]){"host", "verb", NULL}, bounds,
					   sizeof(bounds) / sizeof(bounds[0]));
	if (rc == 0)
		rc = ctl_metric_inc(total, (const char *[]){host, verb, code});
	if (rc == 0)
		rc = ctl_metric_observe(duration, (const char *[]){host, verb}, seconds);
	return rc;
}
