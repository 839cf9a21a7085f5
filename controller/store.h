/*
 * store.h: the informer's cache of one resource type.
 *
 * Objects are immutable and refcounted. The store keeps each one as its
 * compact JSON text, packed against another object of the store (a small
 * fraction of its size as a tree of cJSON nodes; see store.c), and every
 * read (ctl_store_get, ctl_store_list, a replaced
 * object handed back) parses a private copy with one reference, so a
 * reconcile works on its own object without any lock while the watch
 * thread replaces the entry. What handlers and resyncs look up across
 * every object (keys, a reference field) is kept beside the text, so a
 * scan parses nothing. Keys are "namespace/name", or "name" for
 * cluster-scoped objects (client-go's MetaNamespaceKeyFunc), so the same
 * string goes into the work queue.
 *
 * A relist replaces every object of one namespace (or all of them) in one
 * swap under the write lock, and reports what changed against the old
 * contents, including the objects deleted while no watch was running.
 */
#ifndef CTL_STORE_H
#define CTL_STORE_H

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stddef.h>

/* One cached object. Every field is read-only once created; the strings
 * point into json and live as long as the object. */
struct ctl_obj {
	atomic_int refs;
	cJSON *json;
	char *key;                    /* "ns/name" or "name" */
	const char *namespace;        /* "" when cluster-scoped */
	const char *name;
	const char *uid;              /* "" when absent */
	const char *resource_version; /* "" when absent */
	long long generation;         /* metadata.generation, 0 when absent */
	int deleting;                 /* metadata.deletionTimestamp is set */
	int own_write;                /* the API server's answer to this process's own write
	                               * on the version the store held (ctl_store_offer) */
};

/* Wrap json (taken over, also on failure) with one reference. Returns 0,
 * or CTL_EINVALID when it is not an object with metadata.name. */
int ctl_obj_new(struct ctl_obj **out, cJSON *json);

/* Take another reference; returns o. */
struct ctl_obj *ctl_obj_ref(struct ctl_obj *o);

/* Drop a reference; the last one frees the object. NULL is fine. */
void ctl_obj_unref(struct ctl_obj *o);

/* The key of a namespace and name: "ns/name", or "name" when ns is NULL or
 * empty. The caller frees it. */
char *ctl_obj_key(const char *ns, const char *name);

struct ctl_store;

/* One change found by a relist: added (old NULL), changed (both set, the
 * resourceVersion differs) or deleted (obj NULL). Holds references. */
struct ctl_store_delta {
	struct ctl_obj *old;
	struct ctl_obj *obj;
};

int ctl_store_new(struct ctl_store **out);
void ctl_store_free(struct ctl_store *s); /* drops the store's references */

/* A new reference to the object under key, or CTL_ENOTFOUND. */
int ctl_store_get(struct ctl_obj **out, struct ctl_store *s, const char *key);

/* Insert or replace obj, taking the caller's reference. out (may be NULL)
 * receives the reference to the object it replaced, or NULL. */
void ctl_store_apply(struct ctl_obj **out, struct ctl_store *s, struct ctl_obj *obj);

/* Compare two resourceVersions: *cmp < 0, 0 or > 0 as a is older, the
 * same or newer. Kubernetes made them comparable for objects of one
 * resource in 1.35 (KEP-5504): decimal integers without leading zeros, of
 * any length. Returns 0, or CTL_EINVALID when either is not of that form
 * (then only equality means anything). */
int ctl_rv_compare(const char *a, const char *b, int *cmp);

/* Offer obj (taking the caller's reference) for key obj->key: it replaces
 * the entry unless the store already holds the same or a newer version,
 * so a watch event that arrives after the object it describes was already
 * cached (from the API server's answer to our own write) changes nothing.
 * When base_rv is set, the entry it replaces has exactly that
 * resourceVersion, and the generation and deletion state are unchanged,
 * obj is marked own_write: it differs from the cached object only by what
 * this process wrote (and, for a write without a precondition, perhaps by
 * labels, annotations or finalizers changed meanwhile, which no reconciler
 * here reads; the next resync sees them). Returns 1 when obj went in
 * (*out, if not NULL, gets the replaced reference or NULL), 0 when it was
 * stale (its reference is dropped, *out is NULL). Versions that are not
 * comparable always go in. With base_rv set, obj never adds an entry the
 * store does not hold (the watch may have seen it deleted already). */
int ctl_store_offer(struct ctl_obj **out, struct ctl_store *s, struct ctl_obj *obj, const char *base_rv);

/* Remove key. out (may be NULL) receives the removed object's reference.
 * Returns 0 or CTL_ENOTFOUND. */
int ctl_store_delete(struct ctl_obj **out, struct ctl_store *s, const char *key);

/* Replace every object in namespace ns (NULL: all objects) with objs[0..n),
 * taking those references, in one swap; an entry newer than its listed
 * version (cached from our own write after the list was taken) stays. *out gets the changes (the caller
 * frees them with ctl_store_deltas_free), *n_out their count. Marks the
 * store synced. */
void ctl_store_replace(struct ctl_store_delta **out, size_t *n_out, struct ctl_store *s, const char *ns,
		       struct ctl_obj **objs, size_t n);
void ctl_store_deltas_free(struct ctl_store_delta *d, size_t n);

/* Keep the string at dotted path (say "spec.registryRef.name") of every
 * object beside it, for ctl_store_find_keys. Before the first object goes
 * in; at most 4 per store. Returns the index's number, or CTL_EINVALID. */
int ctl_store_add_index(struct ctl_store *s, const char *path);

/* The keys of every object (ctl_store_keys), or of the objects of
 * namespace ns whose index field equals value (ctl_store_find_keys; "" for
 * cluster-scoped). No object is parsed. Free with ctl_store_keys_free. */
void ctl_store_keys(char ***out, size_t *n_out, struct ctl_store *s);
void ctl_store_find_keys(char ***out, size_t *n_out, struct ctl_store *s, int index, const char *ns,
			 const char *value);
void ctl_store_keys_free(char **keys, size_t n);

/* A snapshot: a parsed copy of every object. It parses them all: for rare
 * paths; handlers and resyncs use the keys. Free with ctl_store_list_free. */
void ctl_store_list(struct ctl_obj ***out, size_t *n_out, struct ctl_store *s);
void ctl_store_list_free(struct ctl_obj **objs, size_t n);

size_t ctl_store_len(struct ctl_store *s);

/* How many objects the store holds, and the heap bytes they take: the
 * records, the table and the references they are packed against (what
 * malloc adds around each allocation apart). */
void ctl_store_footprint(struct ctl_store *s, size_t *objects, size_t *bytes);

/* Has a relist been swapped in at least once? */
int ctl_store_has_synced(struct ctl_store *s);

#endif
