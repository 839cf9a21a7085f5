/*
 * store.c: refcounted objects and the keyed cache. See store.h.
 *
 * The map is a chained hash table (FNV-1a over the key, power-of-two
 * buckets, doubled when the load passes 1) of records: an object's compact
 * JSON text with its key, resourceVersion and the values of the index
 * fields beside it. A record is a fifth of the object as a cJSON tree
 * (40-odd nodes of 64 bytes, each with its own malloc for key and value);
 * a read parses a private copy, which costs microseconds a reconcile never
 * notices. Readers hold the rwlock shared while they parse; a relist builds
 * a whole new table under the write lock and swaps it in, so a reader sees
 * either the old world or the new one.
 */
#include "store.h"

#include "error.h"
#include "hash.h"
#include "objects.h"
#include "xalloc.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* --- objects ------------------------------------------------------------- */

static const char *meta_str(const cJSON *meta, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
	return cJSON_IsString(v) ? v->valuestring : "";
}

char *ctl_obj_key(const char *ns, const char *name)
{
	return ns && *ns ? xasprintf("%s/%s", ns, name) : xstrdup(name);
}

int ctl_obj_new(struct ctl_obj **out, cJSON *json)
{
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(json, "metadata");
	const cJSON *gen = cJSON_GetObjectItemCaseSensitive(meta, "generation");
	*out = NULL;
	if (!cJSON_IsObject(json) || !cJSON_IsObject(meta) || !*meta_str(meta, "name")) {
		cJSON_Delete(json);
		return ctl_error_set(CTL_EINVALID, "InvalidObject", "object has no metadata.name");
	}
	struct ctl_obj *o = xcalloc(1, sizeof(*o));
	atomic_init(&o->refs, 1);
	o->json = json;
	o->namespace = meta_str(meta, "namespace");
	o->name = meta_str(meta, "name");
	o->uid = meta_str(meta, "uid");
	o->resource_version = meta_str(meta, "resourceVersion");
	o->generation = cJSON_IsNumber(gen) ? (long long)gen->valuedouble : 0;
	o->deleting = cJSON_GetObjectItemCaseSensitive(meta, "deletionTimestamp") != NULL;
	o->key = ctl_obj_key(o->namespace, o->name);
	*out = o;
	return 0;
}

struct ctl_obj *ctl_obj_ref(struct ctl_obj *o)
{
	atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
	return o;
}

void ctl_obj_unref(struct ctl_obj *o)
{
	if (!o || atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) != 1)
		return;
	cJSON_Delete(o->json);
	free(o->key);
	free(o);
}

/* --- records ------------------------------------------------------------ */

#define MAX_INDEXES 4

struct rec {
	char *text;                 /* the object, compact JSON */
	char *key;                  /* "ns/name" or "name" */
	char *rv;
	size_t ns_len;              /* the namespace is key[0..ns_len) */
	long long generation;
	int deleting;
	int own_write;
	char *fields[MAX_INDEXES];  /* the index fields' values, NULL when absent */
};

struct entry {
	struct rec *rec;
	struct entry *next;
};

struct map {
	struct entry **buckets;
	size_t nbuckets; /* a power of two */
	size_t len;
};

struct ctl_store {
	pthread_rwlock_t lock;
	struct map map;
	int synced;
	char *index_paths[MAX_INDEXES];
	int nindexes;
};

/* A record of obj (its reference is the caller's still). */
static struct rec *rec_new(const struct ctl_store *s, const struct ctl_obj *obj)
{
	struct rec *r = xcalloc(1, sizeof(*r));
	char *text = cJSON_PrintUnformatted(obj->json);
	if (!text)
		xalloc_die();
	r->text = xstrdup(text); /* out of cJSON's allocator and into ours */
	cJSON_free(text);
	r->key = xstrdup(obj->key);
	r->rv = xstrdup(obj->resource_version);
	r->ns_len = strlen(obj->namespace);
	r->generation = obj->generation;
	r->deleting = obj->deleting;
	r->own_write = obj->own_write;
	for (int i = 0; i < s->nindexes; i++) {
		const cJSON *v = ctl_obj_field(obj, s->index_paths[i]);
		r->fields[i] = cJSON_IsString(v) ? xstrdup(v->valuestring) : NULL;
	}
	return r;
}

static void rec_free(struct rec *r)
{
	if (!r)
		return;
	free(r->text);
	free(r->key);
	free(r->rv);
	for (int i = 0; i < MAX_INDEXES; i++)
		free(r->fields[i]);
	free(r);
}

/* A private parsed copy of the record, with one reference. */
static struct ctl_obj *rec_view(const struct rec *r)
{
	struct ctl_obj *o = NULL;
	if (ctl_obj_new(&o, cJSON_Parse(r->text)) != 0)
		xalloc_die(); /* we printed it: only memory can fail */
	o->own_write = r->own_write;
	return o;
}

/* --- the map ------------------------------------------------------------- */

static uint64_t hash_key(const char *s)
{
	return ctl_fnv1a_str(CTL_FNV1A_INIT, s);
}

static void map_init(struct map *m, size_t hint)
{
	size_t n = 16;
	while (n < hint)
		n *= 2;
	m->buckets = xcalloc(n, sizeof(*m->buckets));
	m->nbuckets = n;
	m->len = 0;
}

/* Free the table and the records it still holds. */
static void map_dispose(struct map *m)
{
	for (size_t i = 0; i < m->nbuckets; i++) {
		for (struct entry *e = m->buckets[i], *next; e; e = next) {
			next = e->next;
			rec_free(e->rec);
			free(e);
		}
	}
	free(m->buckets);
	m->buckets = NULL;
	m->nbuckets = m->len = 0;
}

static struct entry **map_slot(const struct map *m, const char *key)
{
	struct entry **pe = &m->buckets[hash_key(key) & (m->nbuckets - 1)];
	while (*pe && strcmp((*pe)->rec->key, key) != 0)
		pe = &(*pe)->next;
	return pe;
}

static struct entry *map_find(const struct map *m, const char *key)
{
	return *map_slot(m, key);
}

static void map_grow(struct map *m)
{
	struct map bigger;
	map_init(&bigger, m->nbuckets * 2);
	for (size_t i = 0; i < m->nbuckets; i++) {
		for (struct entry *e = m->buckets[i], *next; e; e = next) {
			next = e->next;
			struct entry **head = &bigger.buckets[hash_key(e->rec->key) & (bigger.nbuckets - 1)];
			e->next = *head;
			*head = e;
		}
	}
	free(m->buckets);
	bigger.len = m->len;
	*m = bigger;
}

/* Put r (taking it); returns the record it replaced, or NULL. */
static struct rec *map_put(struct map *m, struct rec *r)
{
	struct entry **pe = map_slot(m, r->key);
	if (*pe) {
		struct rec *old = (*pe)->rec;
		(*pe)->rec = r;
		return old;
	}
	struct entry *e = xmalloc(sizeof(*e));
	e->rec = r;
	e->next = NULL;
	*pe = e;
	if (++m->len > m->nbuckets)
		map_grow(m);
	return NULL;
}

/* Remove key; returns the record the map held, or NULL. */
static struct rec *map_remove(struct map *m, const char *key)
{
	struct entry **pe = map_slot(m, key);
	struct entry *e = *pe;
	if (!e)
		return NULL;
	struct rec *r = e->rec;
	*pe = e->next;
	free(e);
	m->len--;
	return r;
}

/* --- the store ----------------------------------------------------------- */

int ctl_store_new(struct ctl_store **out)
{
	struct ctl_store *s = xcalloc(1, sizeof(*s));
	pthread_rwlock_init(&s->lock, NULL);
	map_init(&s->map, 0);
	*out = s;
	return 0;
}

void ctl_store_free(struct ctl_store *s)
{
	if (!s)
		return;
	map_dispose(&s->map);
	for (int i = 0; i < s->nindexes; i++)
		free(s->index_paths[i]);
	pthread_rwlock_destroy(&s->lock);
	free(s);
}

int ctl_store_add_index(struct ctl_store *s, const char *path)
{
	pthread_rwlock_wrlock(&s->lock);
	int idx = -1;
	for (int i = 0; i < s->nindexes; i++)
		if (!strcmp(s->index_paths[i], path))
			idx = i;
	if (idx < 0 && s->nindexes < MAX_INDEXES && s->map.len == 0) {
		idx = s->nindexes++;
		s->index_paths[idx] = xstrdup(path);
	}
	pthread_rwlock_unlock(&s->lock);
	return idx < 0 ? ctl_error_set(CTL_EINVALID, "TooManyIndexes",
				       "index %s: at most %d, added before any object", path, MAX_INDEXES) : idx;
}

int ctl_store_get(struct ctl_obj **out, struct ctl_store *s, const char *key)
{
	pthread_rwlock_rdlock(&s->lock);
	struct entry *e = map_find(&s->map, key);
	struct ctl_obj *o = e ? rec_view(e->rec) : NULL;
	pthread_rwlock_unlock(&s->lock);
	*out = o;
	return o ? 0 : CTL_ENOTFOUND;
}

/* Hand back a replaced record as an object (or drop it). */
static void give_old(struct ctl_obj **out, struct rec *old)
{
	if (out)
		*out = old ? rec_view(old) : NULL;
	rec_free(old);
}

void ctl_store_apply(struct ctl_obj **out, struct ctl_store *s, struct ctl_obj *obj)
{
	struct rec *r = rec_new(s, obj);
	ctl_obj_unref(obj);
	pthread_rwlock_wrlock(&s->lock);
	struct rec *old = map_put(&s->map, r);
	pthread_rwlock_unlock(&s->lock);
	give_old(out, old);
}

int ctl_rv_compare(const char *a, const char *b, int *cmp)
{
	size_t la = strspn(a, "0123456789"), lb = strspn(b, "0123456789");
	if (!la || !lb || a[la] || b[lb] || a[0] == '0' || b[0] == '0')
		return CTL_EINVALID;
	*cmp = la != lb ? (la < lb ? -1 : 1) : strcmp(a, b);
	return 0;
}

/* Is a known to be older than b? Versions that do not compare are not. */
static int rv_older(const char *a, const char *b)
{
	int cmp;
	return ctl_rv_compare(a, b, &cmp) == 0 && cmp < 0;
}

int ctl_store_offer(struct ctl_obj **out, struct ctl_store *s, struct ctl_obj *obj, const char *base_rv)
{
	if (out)
		*out = NULL;
	pthread_rwlock_wrlock(&s->lock);
	struct entry *cur = map_find(&s->map, obj->key);
	/* An answer to our own write never adds an entry: the watch may have
	 * seen the object deleted already (the answer to the write that
	 * removed its last finalizer), and nothing would remove it again. */
	if ((!cur && base_rv) ||
	    (cur && (strcmp(cur->rec->rv, obj->resource_version) == 0 ||
		     rv_older(obj->resource_version, cur->rec->rv)))) {
		pthread_rwlock_unlock(&s->lock);
		ctl_obj_unref(obj);
		return 0;
	}
	/* Only our write stands between the cached version and the answer when
	 * the write was made on the cached version and nobody changed the spec
	 * or deleted the object meanwhile: a status write carries no
	 * precondition, so its answer may hold a change the watch has not
	 * brought yet (a spec edited while we wrote), which is news. The
	 * caller still holds obj (it hands it to the handlers). */
	if (cur && base_rv && strcmp(cur->rec->rv, base_rv) == 0 && cur->rec->generation == obj->generation &&
	    cur->rec->deleting == obj->deleting)
		obj->own_write = 1;
	struct rec *old = map_put(&s->map, rec_new(s, obj));
	pthread_rwlock_unlock(&s->lock);
	ctl_obj_unref(obj);
	give_old(out, old);
	return 1;
}

int ctl_store_delete(struct ctl_obj **out, struct ctl_store *s, const char *key)
{
	pthread_rwlock_wrlock(&s->lock);
	struct rec *old = map_remove(&s->map, key);
	pthread_rwlock_unlock(&s->lock);
	int found = old != NULL;
	give_old(out, old);
	return found ? 0 : CTL_ENOTFOUND;
}

static int rec_in_scope(const struct rec *r, const char *ns)
{
	return !ns || (strlen(ns) == r->ns_len && strncmp(r->key, ns, r->ns_len) == 0);
}

static void delta_push(struct ctl_store_delta **d, size_t *n, size_t *cap, struct ctl_obj *old,
		       struct ctl_obj *obj)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*d = xrealloc(*d, *cap * sizeof(**d));
	}
	(*d)[*n].old = old;
	(*d)[*n].obj = obj;
	(*n)++;
}

void ctl_store_replace(struct ctl_store_delta **out, size_t *n_out, struct ctl_store *s, const char *ns,
		       struct ctl_obj **objs, size_t n)
{
	struct ctl_store_delta *d = NULL;
	size_t nd = 0, cap = 0;
	struct map fresh, stale;

	pthread_rwlock_wrlock(&s->lock);
	/* Everything else has to be read under the same write lock: another
	 * namespace's watch thread may be applying to the entries we move. */
	map_init(&fresh, s->map.len + n);
	for (size_t i = 0; i < s->map.nbuckets; i++)
		for (struct entry *e = s->map.buckets[i]; e; e = e->next)
			if (!rec_in_scope(e->rec, ns)) {
				map_put(&fresh, e->rec);
				e->rec = NULL; /* moved */
			}
	for (size_t i = 0; i < n; i++) {
		struct entry *cur = map_find(&s->map, objs[i]->key);
		struct rec *r;
		if (cur && cur->rec && rv_older(objs[i]->resource_version, cur->rec->rv)) {
			/* Newer than the list (our own write landed after it). */
			r = cur->rec;
			cur->rec = NULL;
		} else {
			r = rec_new(s, objs[i]);
			if (!cur || !cur->rec || strcmp(cur->rec->rv, r->rv) != 0)
				delta_push(&d, &nd, &cap, cur && cur->rec ? rec_view(cur->rec) : NULL,
					   ctl_obj_ref(objs[i]));
		}
		struct rec *dup = map_put(&fresh, r);
		if (dup) {
			/* A duplicate key in the list: the later one wins; the
			 * delta of the earlier one goes. */
			for (size_t k = 0; k < nd; k++)
				if (d[k].obj && !strcmp(d[k].obj->key, dup->key) &&
				    strcmp(d[k].obj->resource_version, r->rv) != 0) {
					ctl_obj_unref(d[k].obj);
					ctl_obj_unref(d[k].old);
					d[k] = d[--nd];
					break;
				}
			rec_free(dup);
		}
		ctl_obj_unref(objs[i]);
	}
	for (size_t i = 0; i < s->map.nbuckets; i++)
		for (struct entry *e = s->map.buckets[i]; e; e = e->next)
			if (e->rec && rec_in_scope(e->rec, ns) && !map_find(&fresh, e->rec->key))
				delta_push(&d, &nd, &cap, rec_view(e->rec), NULL);
	stale = s->map;
	s->map = fresh;
	s->synced = 1;
	pthread_rwlock_unlock(&s->lock);

	map_dispose(&stale);
	*out = d;
	*n_out = nd;
}

void ctl_store_deltas_free(struct ctl_store_delta *d, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ctl_obj_unref(d[i].old);
		ctl_obj_unref(d[i].obj);
	}
	free(d);
}

void ctl_store_list(struct ctl_obj ***out, size_t *n_out, struct ctl_store *s)
{
	pthread_rwlock_rdlock(&s->lock);
	struct ctl_obj **v = xcalloc(s->map.len + 1, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; i < s->map.nbuckets; i++)
		for (struct entry *e = s->map.buckets[i]; e; e = e->next)
			v[k++] = rec_view(e->rec);
	pthread_rwlock_unlock(&s->lock);
	*out = v;
	*n_out = k;
}

/* The keys of the records match() accepts, copied under the read lock so
 * that the caller's callbacks run with no lock held. */
static void collect_keys(char ***out, size_t *n_out, struct ctl_store *s, int idx, const char *ns,
			 const char *value)
{
	pthread_rwlock_rdlock(&s->lock);
	char **v = xcalloc(s->map.len + 1, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; i < s->map.nbuckets; i++)
		for (struct entry *e = s->map.buckets[i]; e; e = e->next) {
			const struct rec *r = e->rec;
			if (idx >= 0 && (!r->fields[idx] || strcmp(r->fields[idx], value) != 0 || !rec_in_scope(r, ns)))
				continue;
			v[k++] = xstrdup(r->key);
		}
	pthread_rwlock_unlock(&s->lock);
	*out = v;
	*n_out = k;
}

void ctl_store_keys(char ***out, size_t *n_out, struct ctl_store *s)
{
	collect_keys(out, n_out, s, -1, NULL, NULL);
}

void ctl_store_find_keys(char ***out, size_t *n_out, struct ctl_store *s, int index, const char *ns,
			 const char *value)
{
	if (index < 0 || index >= s->nindexes) {
		*out = xcalloc(1, sizeof(**out));
		*n_out = 0;
		return;
	}
	collect_keys(out, n_out, s, index, ns ? ns : "", value);
}

void ctl_store_keys_free(char **keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}

void ctl_store_list_free(struct ctl_obj **objs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ctl_obj_unref(objs[i]);
	free(objs);
}

size_t ctl_store_len(struct ctl_store *s)
{
	pthread_rwlock_rdlock(&s->lock);
	size_t n = s->map.len;
	pthread_rwlock_unlock(&s->lock);
	return n;
}

int ctl_store_has_synced(struct ctl_store *s)
{
	pthread_rwlock_rdlock(&s->lock);
	int synced = s->synced;
	pthread_rwlock_unlock(&s->lock);
	return synced;
}
