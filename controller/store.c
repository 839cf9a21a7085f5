/*
 * store.c: refcounted objects and the keyed cache. See store.h.
 *
 * The map is a chained hash table (FNV-1a over the key, power-of-two
 * buckets, doubled when the load passes 1). Readers take the rwlock shared
 * only long enough to bump a refcount; the store owns one reference per
 * entry. A relist builds a whole new table under the write lock and swaps
 * it in, so a reader sees either the old world or the new one.
 */
#include "store.h"

#include "error.h"
#include "xalloc.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	struct ctl_obj *obj; /* the key is obj->key */
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
};

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

/* --- the map ------------------------------------------------------------- */

static uint64_t hash_key(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h;
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

/* Free the table and drop its references. */
static void map_dispose(struct map *m)
{
	for (size_t i = 0; i < m->nbuckets; i++) {
		for (struct entry *e = m->buckets[i], *next; e; e = next) {
			next = e->next;
			ctl_obj_unref(e->obj);
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
	while (*pe && strcmp((*pe)->obj->key, key) != 0)
		pe = &(*pe)->next;
	return pe;
}

static struct ctl_obj *map_find(const struct map *m, const char *key)
{
	struct entry *e = *map_slot(m, key);
	return e ? e->obj : NULL;
}

static void map_grow(struct map *m)
{
	struct map bigger;
	map_init(&bigger, m->nbuckets * 2);
	for (size_t i = 0; i < m->nbuckets; i++) {
		for (struct entry *e = m->buckets[i], *next; e; e = next) {
			next = e->next;
			struct entry **head = &bigger.buckets[hash_key(e->obj->key) & (bigger.nbuckets - 1)];
			e->next = *head;
			*head = e;
		}
	}
	free(m->buckets);
	bigger.len = m->len;
	*m = bigger;
}

/* Put obj (taking its reference); returns the reference it replaced. */
static struct ctl_obj *map_put(struct map *m, struct ctl_obj *obj)
{
	struct entry **pe = map_slot(m, obj->key);
	if (*pe) {
		struct ctl_obj *old = (*pe)->obj;
		(*pe)->obj = obj;
		return old;
	}
	struct entry *e = xmalloc(sizeof(*e));
	e->obj = obj;
	e->next = NULL;
	*pe = e;
	if (++m->len > m->nbuckets)
		map_grow(m);
	return NULL;
}

/* Remove key; returns the reference the map held, or NULL. */
static struct ctl_obj *map_remove(struct map *m, const char *key)
{
	struct entry **pe = map_slot(m, key);
	struct entry *e = *pe;
	if (!e)
		return NULL;
	struct ctl_obj *obj = e->obj;
	*pe = e->next;
	free(e);
	m->len--;
	return obj;
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
	pthread_rwlock_destroy(&s->lock);
	free(s);
}

int ctl_store_get(struct ctl_obj **out, struct ctl_store *s, const char *key)
{
	pthread_rwlock_rdlock(&s->lock);
	struct ctl_obj *o = map_find(&s->map, key);
	if (o)
		ctl_obj_ref(o);
	pthread_rwlock_unlock(&s->lock);
	*out = o;
	return o ? 0 : CTL_ENOTFOUND;
}

void ctl_store_apply(struct ctl_obj **out, struct ctl_store *s, struct ctl_obj *obj)
{
	pthread_rwlock_wrlock(&s->lock);
	struct ctl_obj *old = map_put(&s->map, obj);
	pthread_rwlock_unlock(&s->lock);
	if (out)
		*out = old;
	else
		ctl_obj_unref(old);
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
	pthread_rwlock_wrlock(&s->lock);
	struct ctl_obj *cur = map_find(&s->map, obj->key);
	/* An answer to our own write never adds an entry: the watch may have
	 * seen the object deleted already (the answer to the write that
	 * removed its last finalizer), and nothing would remove it again. */
	if ((!cur && base_rv) ||
	    (cur && (strcmp(cur->resource_version, obj->resource_version) == 0 ||
		     rv_older(obj->resource_version, cur->resource_version)))) {
		pthread_rwlock_unlock(&s->lock);
		ctl_obj_unref(obj);
		if (out)
			*out = NULL;
		return 0;
	}
	/* Set before the entry is visible: readers take the lock to find it. */
	if (cur && base_rv && strcmp(cur->resource_version, base_rv) == 0)
		obj->own_write = 1;
	struct ctl_obj *old = map_put(&s->map, obj);
	pthread_rwlock_unlock(&s->lock);
	if (out)
		*out = old;
	else
		ctl_obj_unref(old);
	return 1;
}

int ctl_store_delete(struct ctl_obj **out, struct ctl_store *s, const char *key)
{
	pthread_rwlock_wrlock(&s->lock);
	struct ctl_obj *old = map_remove(&s->map, key);
	pthread_rwlock_unlock(&s->lock);
	if (out)
		*out = old;
	else
		ctl_obj_unref(old);
	return old ? 0 : CTL_ENOTFOUND;
}

static int in_scope(const struct ctl_obj *o, const char *ns)
{
	return !ns || strcmp(o->namespace, ns) == 0;
}

static void delta_push(struct ctl_store_delta **d, size_t *n, size_t *cap, struct ctl_obj *old,
		       struct ctl_obj *obj)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*d = xrealloc(*d, *cap * sizeof(**d));
	}
	(*d)[*n].old = old ? ctl_obj_ref(old) : NULL;
	(*d)[*n].obj = obj ? ctl_obj_ref(obj) : NULL;
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
	 * namespace's watch thread may be applying to the entries we copy. */
	map_init(&fresh, s->map.len + n);
	for (size_t i = 0; i < s->map.nbuckets; i++)
		for (struct entry *e = s->map.buckets[i]; e; e = e->next)
			if (!in_scope(e->obj, ns))
				map_put(&fresh, ctl_obj_ref(e->obj));
	for (size_t i = 0; i < n; i++) {
		struct ctl_obj *cur = map_find(&s->map, objs[i]->key);
		if (cur && rv_older(objs[i]->resource_version, cur->resource_version)) {
			ctl_obj_unref(objs[i]);
			objs[i] = ctl_obj_ref(cur);
		}
		ctl_obj_unref(map_put(&fresh, objs[i])); /* a duplicate key: the later one wins */
	}
	for (size_t i = 0; i < fresh.nbuckets; i++) {
		for (struct entry *e = fresh.buckets[i]; e; e = e->next) {
			if (!in_scope(e->obj, ns))
				continue;
			struct ctl_obj *old = map_find(&s->map, e->obj->key);
			if (!old || strcmp(old->resource_version, e->obj->resource_version) != 0)
				delta_push(&d, &nd, &cap, old, e->obj);
		}
	}
	for (size_t i = 0; i < s->map.nbuckets; i++)
		for (struct entry *e = s->map.buckets[i]; e; e = e->next)
			if (in_scope(e->obj, ns) && !map_find(&fresh, e->obj->key))
				delta_push(&d, &nd, &cap, e->obj, NULL);
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
			v[k++] = ctl_obj_ref(e->obj);
	pthread_rwlock_unlock(&s->lock);
	*out = v;
	*n_out = k;
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
