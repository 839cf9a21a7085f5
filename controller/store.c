/*
 * store.c: refcounted objects and the keyed cache. See store.h.
 *
 * The map is a chained hash table (FNV-1a over the key, power-of-two
 * buckets, doubled when the load passes 1) of records: an object's compact
 * JSON text, packed against a reference object of the same store
 * (refpack.h), with its key, resourceVersion and the values of the index
 * fields beside it, in one allocation. A cJSON tree of a Ready AgentPool
 * is 40-odd nodes of 64 bytes, each with its own malloc for key and value;
 * its text is 1.1 KiB; packed, about a tenth of that. A read unpacks and
 * parses a private copy, which costs microseconds a reconcile never
 * notices. Readers hold the rwlock shared while they parse; a relist builds
 * a whole new table under the write lock and swaps it in, so a reader sees
 * either the old world or the new one.
 */
#include "store.h"

#include "error.h"
#include "hash.h"
#include "objects.h"
#include "refpack.h"
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

/* Records are packed against one of up to MAX_REFS references: objects
 * of the store whose text packed to more than a quarter of its size
 * against every reference kept (the objects changed shape: the first
 * ones had no status yet; or the store holds objects of a few shapes).
 * The newest replaces the one unused longest. A text is not made a
 * reference when it is tiny (not worth an index) or large (a Task with a
 * long inline definition: an index is 8 bytes per byte of text, kept as
 * long as the text is a reference; at most 4 x 512 KiB this way). */
#define MAX_REFS 4
#define REF_MIN 64
#define REF_MAX (64 * 1024)

struct rec {
	struct ctl_ref *ref;     /* what the code copies from; NULL when it is all literals */
	long long generation;
	size_t text_len;         /* the object as compact JSON, packed in the code */
	size_t code_len;
	uint32_t rv_at, code_at; /* where the resourceVersion and the code are in data */
	uint32_t field_at[MAX_INDEXES]; /* the index fields' values in data; 0 when absent */
	uint32_t ns_len;         /* the namespace is the key's first ns_len bytes */
	unsigned char deleting;
	unsigned char own_write;
	char data[];             /* the key ("ns/name" or "name"), rv and fields, each NUL-terminated; the code */
};

static const char *rec_key(const struct rec *r)
{
	return r->data;
}

static const char *rec_rv(const struct rec *r)
{
	return r->data + r->rv_at;
}

static const char *rec_field(const struct rec *r, int i)
{
	return r->field_at[i] ? r->data + r->field_at[i] : NULL;
}

struct entry {
	struct rec *rec;
	struct entry *next;
};

struct map {
	struct entry **buckets;
	size_t nbuckets; /* a power of two */
	size_t len;
	size_t bytes;    /* the records' rec_bytes */
};

struct ctl_store {
	pthread_rwlock_t lock;
	struct map map;
	int synced;
	char *index_paths[MAX_INDEXES];
	int nindexes;
	pthread_mutex_t pack_lock;        /* the references, and packing against them */
	struct ctl_ref *refs[MAX_REFS];   /* what new records are packed against; NULL slots unused */
	unsigned long ref_used[MAX_REFS]; /* when each was last chosen, counted in packs */
	unsigned long packs;
	atomic_size_t ref_bytes;          /* every reference still held, by anyone: ctl_ref_bytes */
};

/* Make text a reference, in an empty slot or the one unused longest; the
 * one there lives on in the records packed against it, without its
 * index. Under pack_lock. */
static int ref_add(struct ctl_store *s, const char *text, size_t len)
{
	int slot = 0;
	for (int i = 1; i < MAX_REFS && s->refs[slot]; i++)
		if (!s->refs[i] || s->ref_used[i] < s->ref_used[slot])
			slot = i;
	struct ctl_ref *old = s->refs[slot];
	if (old) {
		size_t before = ctl_ref_bytes(old);
		ctl_ref_retire(old);
		atomic_fetch_sub(&s->ref_bytes, before - ctl_ref_bytes(old));
		atomic_fetch_sub(&s->ref_bytes, ctl_ref_drop(old));
	}
	s->refs[slot] = ctl_ref_new(text, len);
	atomic_fetch_add(&s->ref_bytes, ctl_ref_bytes(s->refs[slot]));
	return slot;
}

/* Pack text into code against the reference that codes it shortest,
 * making it one when none does it well. Returns the code's length, and a
 * hold on that reference (or NULL) in *ref. */
static size_t pack(struct ctl_store *s, unsigned char *code, struct ctl_ref **ref, const char *text, size_t len)
{
	unsigned char *other = NULL;
	pthread_mutex_lock(&s->pack_lock);
	s->packs++;
	/* The last one chosen first: most writes are of the usual shape. */
	int best = 0;
	for (int i = 1; i < MAX_REFS; i++)
		if (s->refs[i] && s->ref_used[i] > s->ref_used[best])
			best = i;
	size_t code_len = ctl_refpack(code, s->refs[best], text, len);
	if (code_len > len / 4) {
		other = xmalloc(ctl_refpack_bound(len));
		for (int i = 0; i < MAX_REFS; i++) {
			if (i == best || !s->refs[i])
				continue;
			size_t n = ctl_refpack(other, s->refs[i], text, len);
			if (n < code_len) {
				memcpy(code, other, n);
				code_len = n;
				best = i;
			}
		}
		if (code_len > len / 4 && len >= REF_MIN && len <= REF_MAX) {
			best = ref_add(s, text, len);
			code_len = ctl_refpack(code, s->refs[best], text, len);
		}
	}
	s->ref_used[best] = s->packs;
	*ref = s->refs[best] ? ctl_ref_hold(s->refs[best]) : NULL;
	pthread_mutex_unlock(&s->pack_lock);
	free(other);
	return code_len;
}

/* Append n bytes of s and a NUL at *at; returns where they went. */
static uint32_t put_str(struct rec *r, size_t *at, const char *s, size_t n)
{
	uint32_t where = (uint32_t)*at;
	memcpy(r->data + *at, s, n);
	r->data[*at + n] = '\0';
	*at += n + 1;
	return where;
}

/* A record of obj (its reference is the caller's still): the object's
 * compact JSON packed against one of the store's references, and the
 * strings a scan reads beside it, in one allocation. */
static struct rec *rec_new(struct ctl_store *s, const struct ctl_obj *obj)
{
	char *text = cJSON_PrintUnformatted(obj->json);
	if (!text)
		xalloc_die();
	size_t len = strlen(text);
	unsigned char *code = xmalloc(ctl_refpack_bound(len));
	struct ctl_ref *ref;
	size_t code_len = pack(s, code, &ref, text, len);
	cJSON_free(text);

	const char *fields[MAX_INDEXES] = {0};
	size_t key_len = strlen(obj->key), rv_len = strlen(obj->resource_version), size = key_len + rv_len + 2;
	for (int i = 0; i < s->nindexes; i++) {
		const cJSON *v = ctl_obj_field(obj, s->index_paths[i]);
		if (cJSON_IsString(v)) {
			fields[i] = v->valuestring;
			size += strlen(fields[i]) + 1;
		}
	}
	if (size > UINT32_MAX) /* keys and index values are names: never */
		xalloc_die();
	struct rec *r = xmalloc(sizeof(*r) + size + code_len);
	size_t at = 0;
	r->ref = ref;
	put_str(r, &at, obj->key, key_len);
	r->rv_at = put_str(r, &at, obj->resource_version, rv_len);
	for (int i = 0; i < MAX_INDEXES; i++)
		r->field_at[i] = fields[i] ? put_str(r, &at, fields[i], strlen(fields[i])) : 0;
	r->code_at = (uint32_t)at;
	memcpy(r->data + at, code, code_len);
	r->code_len = code_len;
	r->text_len = len;
	r->ns_len = (uint32_t)strlen(obj->namespace);
	r->generation = obj->generation;
	r->deleting = (unsigned char)obj->deleting;
	r->own_write = (unsigned char)obj->own_write;
	free(code);
	return r;
}

/* What r holds on the heap, allocator overheads apart. */
static size_t rec_bytes(const struct rec *r)
{
	return sizeof(*r) + r->code_at + r->code_len;
}

static void rec_free(struct ctl_store *s, struct rec *r)
{
	if (!r)
		return;
	atomic_fetch_sub(&s->ref_bytes, ctl_ref_drop(r->ref));
	free(r);
}

/* A private parsed copy of the record, with one reference. */
static struct ctl_obj *rec_view(const struct rec *r)
{
	char *text = xmalloc(r->text_len + 1);
	/* We packed it ourselves against the reference it holds. */
	if (ctl_refunpack(text, r->text_len, r->ref, (const unsigned char *)r->data + r->code_at, r->code_len) != 0)
		abort();
	text[r->text_len] = '\0';
	struct ctl_obj *o = NULL;
	if (ctl_obj_new(&o, cJSON_ParseWithLength(text, r->text_len)) != 0)
		xalloc_die(); /* we printed it: only memory can fail */
	free(text);
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
	m->len = m->bytes = 0;
}

/* Free the table and the records it still holds. */
static void map_dispose(struct ctl_store *s, struct map *m)
{
	for (size_t i = 0; i < m->nbuckets; i++) {
		for (struct entry *e = m->buckets[i], *next; e; e = next) {
			next = e->next;
			rec_free(s, e->rec);
			free(e);
		}
	}
	free(m->buckets);
	m->buckets = NULL;
	m->nbuckets = m->len = m->bytes = 0;
}

static struct entry **map_slot(const struct map *m, const char *key)
{
	struct entry **pe = &m->buckets[hash_key(key) & (m->nbuckets - 1)];
	while (*pe && strcmp(rec_key((*pe)->rec), key) != 0)
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
			struct entry **head = &bigger.buckets[hash_key(rec_key(e->rec)) & (bigger.nbuckets - 1)];
			e->next = *head;
			*head = e;
		}
	}
	free(m->buckets);
	bigger.len = m->len;
	bigger.bytes = m->bytes;
	*m = bigger;
}

/* Put r (taking it); returns the record it replaced, or NULL. */
static struct rec *map_put(struct map *m, struct rec *r)
{
	struct entry **pe = map_slot(m, rec_key(r));
	m->bytes += rec_bytes(r);
	if (*pe) {
		struct rec *old = (*pe)->rec;
		(*pe)->rec = r;
		m->bytes -= rec_bytes(old);
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
	m->bytes -= rec_bytes(r);
	return r;
}

/* --- the store ----------------------------------------------------------- */

int ctl_store_new(struct ctl_store **out)
{
	struct ctl_store *s = xcalloc(1, sizeof(*s));
	pthread_rwlock_init(&s->lock, NULL);
	pthread_mutex_init(&s->pack_lock, NULL);
	atomic_init(&s->ref_bytes, 0);
	map_init(&s->map, 0);
	*out = s;
	return 0;
}

void ctl_store_free(struct ctl_store *s)
{
	if (!s)
		return;
	map_dispose(s, &s->map);
	for (int i = 0; i < MAX_REFS; i++)
		atomic_fetch_sub(&s->ref_bytes, ctl_ref_drop(s->refs[i]));
	pthread_mutex_destroy(&s->pack_lock);
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
static void give_old(struct ctl_store *s, struct ctl_obj **out, struct rec *old)
{
	if (out)
		*out = old ? rec_view(old) : NULL;
	rec_free(s, old);
}

void ctl_store_apply(struct ctl_obj **out, struct ctl_store *s, struct ctl_obj *obj)
{
	struct rec *r = rec_new(s, obj);
	ctl_obj_unref(obj);
	pthread_rwlock_wrlock(&s->lock);
	struct rec *old = map_put(&s->map, r);
	pthread_rwlock_unlock(&s->lock);
	give_old(s, out, old);
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
	    (cur && (strcmp(rec_rv(cur->rec), obj->resource_version) == 0 ||
		     rv_older(obj->resource_version, rec_rv(cur->rec))))) {
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
	if (cur && base_rv && strcmp(rec_rv(cur->rec), base_rv) == 0 && cur->rec->generation == obj->generation &&
	    cur->rec->deleting == obj->deleting)
		obj->own_write = 1;
	struct rec *old = map_put(&s->map, rec_new(s, obj));
	pthread_rwlock_unlock(&s->lock);
	ctl_obj_unref(obj);
	give_old(s, out, old);
	return 1;
}

int ctl_store_delete(struct ctl_obj **out, struct ctl_store *s, const char *key)
{
	pthread_rwlock_wrlock(&s->lock);
	struct rec *old = map_remove(&s->map, key);
	pthread_rwlock_unlock(&s->lock);
	int found = old != NULL;
	give_old(s, out, old);
	return found ? 0 : CTL_ENOTFOUND;
}

static int rec_in_scope(const struct rec *r, const char *ns)
{
	return !ns || (strlen(ns) == r->ns_len && strncmp(rec_key(r), ns, r->ns_len) == 0);
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
		if (cur && cur->rec && rv_older(objs[i]->resource_version, rec_rv(cur->rec))) {
			/* Newer than the list (our own write landed after it). */
			r = cur->rec;
			cur->rec = NULL;
		} else {
			r = rec_new(s, objs[i]);
			if (!cur || !cur->rec || strcmp(rec_rv(cur->rec), rec_rv(r)) != 0)
				delta_push(&d, &nd, &cap, cur && cur->rec ? rec_view(cur->rec) : NULL,
					   ctl_obj_ref(objs[i]));
		}
		struct rec *dup = map_put(&fresh, r);
		if (dup) {
			/* A duplicate key in the list: the later one wins; the
			 * delta of the earlier one goes. */
			for (size_t k = 0; k < nd; k++)
				if (d[k].obj && !strcmp(d[k].obj->key, rec_key(dup)) &&
				    strcmp(d[k].obj->resource_version, rec_rv(r)) != 0) {
					ctl_obj_unref(d[k].obj);
					ctl_obj_unref(d[k].old);
					d[k] = d[--nd];
					break;
				}
			rec_free(s, dup);
		}
		ctl_obj_unref(objs[i]);
	}
	for (size_t i = 0; i < s->map.nbuckets; i++)
		for (struct entry *e = s->map.buckets[i]; e; e = e->next)
			if (e->rec && rec_in_scope(e->rec, ns) && !map_find(&fresh, rec_key(e->rec)))
				delta_push(&d, &nd, &cap, rec_view(e->rec), NULL);
	stale = s->map;
	s->map = fresh;
	s->synced = 1;
	pthread_rwlock_unlock(&s->lock);

	map_dispose(s, &stale);
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
			if (idx >= 0 && (!rec_field(r, idx) || strcmp(rec_field(r, idx), value) != 0 || !rec_in_scope(r, ns)))
				continue;
			v[k++] = xstrdup(rec_key(r));
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

void ctl_store_footprint(struct ctl_store *s, size_t *objects, size_t *bytes)
{
	pthread_rwlock_rdlock(&s->lock);
	*objects = s->map.len;
	*bytes = s->map.bytes + s->map.len * sizeof(struct entry) + s->map.nbuckets * sizeof(*s->map.buckets) +
		 atomic_load(&s->ref_bytes);
	pthread_rwlock_unlock(&s->lock);
}
