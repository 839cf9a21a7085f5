/* Unit tests for controller/store.c: refcounted objects and the cache. */
#include "test.h"

#include "error.h"
#include "store.h"
#include "xalloc.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

static struct ctl_obj *make(const char *ns, const char *name, const char *rv)
{
	char *text = ns ? xasprintf("{\"kind\":\"Thing\",\"metadata\":{\"namespace\":\"%s\",\"name\":\"%s\","
				    "\"resourceVersion\":\"%s\",\"generation\":3}}", ns, name, rv)
			: xasprintf("{\"kind\":\"Thing\",\"metadata\":{\"name\":\"%s\",\"resourceVersion\":\"%s\"}}",
				    name, rv);
	struct ctl_obj *o = NULL;
	int rc = ctl_obj_new(&o, cJSON_Parse(text));
	free(text);
	CHECK_INT(rc, 0);
	return o;
}

static const struct ctl_store_delta *find_delta(const struct ctl_store_delta *d, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++) {
		const struct ctl_obj *o = d[i].obj ? d[i].obj : d[i].old;
		if (strcmp(o->key, key) == 0)
			return &d[i];
	}
	return NULL;
}

TEST(obj_new_reads_metadata)
{
	struct ctl_obj *o = make("ns1", "a", "42");
	CHECK_STR(o->key, "ns1/a");
	CHECK_STR(o->namespace, "ns1");
	CHECK_STR(o->name, "a");
	CHECK_STR(o->resource_version, "42");
	CHECK_STR(o->uid, "");
	CHECK_INT(o->generation, 3);
	CHECK_INT(o->deleting, 0);
	ctl_obj_unref(o);

	struct ctl_obj *d = NULL;
	CHECK_INT(ctl_obj_new(&d, cJSON_Parse("{\"metadata\":{\"name\":\"x\",\"deletionTimestamp\":\"2024-01-01T00:00:00Z\"}}")), 0);
	CHECK_STR(d->key, "x"); /* cluster-scoped: no namespace in the key */
	CHECK_INT(d->deleting, 1);
	ctl_obj_unref(d);
}

TEST(obj_new_rejects_nameless_object)
{
	struct ctl_obj *o = (struct ctl_obj *)1;
	CHECK_INT(ctl_obj_new(&o, cJSON_Parse("{\"metadata\":{}}")), CTL_EINVALID);
	CHECK(o == NULL);
	CHECK_INT(ctl_obj_new(&o, cJSON_Parse("[1,2]")), CTL_EINVALID);
	CHECK_INT(ctl_obj_new(&o, NULL), CTL_EINVALID);
}

TEST(store_get_returns_a_private_copy_that_outlives_the_store)
{
	struct ctl_store *s;
	struct ctl_obj *got = NULL, *again = NULL;
	ctl_store_new(&s);
	struct ctl_obj *o = make("ns1", "a", "1");
	ctl_store_apply(NULL, s, ctl_obj_ref(o));
	CHECK_INT(atomic_load(&o->refs), 1); /* the store keeps the text, not the object */
	CHECK_INT(ctl_store_get(&got, s, "ns1/a"), 0);
	CHECK(got != o && cJSON_Compare(got->json, o->json, 1));
	CHECK_INT(atomic_load(&got->refs), 1);
	CHECK_INT(ctl_store_get(&again, s, "ns1/a"), 0);
	CHECK(again != got); /* each reader its own */
	ctl_obj_unref(again);
	/* The reader's copy outlives the store. */
	ctl_store_free(s);
	CHECK_STR(got->name, "a");
	CHECK_INT(got->generation, 3);
	ctl_obj_unref(got);
	ctl_obj_unref(o);
}

TEST(store_get_missing_is_not_found)
{
	struct ctl_store *s;
	struct ctl_obj *got = (struct ctl_obj *)1;
	ctl_store_new(&s);
	CHECK_INT(ctl_store_get(&got, s, "ns/none"), CTL_ENOTFOUND);
	CHECK(got == NULL);
	CHECK_INT(ctl_store_delete(NULL, s, "ns/none"), CTL_ENOTFOUND);
	ctl_store_free(s);
}

TEST(store_apply_replaces_and_hands_back_old)
{
	struct ctl_store *s;
	struct ctl_obj *old = NULL, *got = NULL;
	ctl_store_new(&s);
	ctl_store_apply(&old, s, make("ns1", "a", "1"));
	CHECK(old == NULL);
	ctl_store_apply(&old, s, make("ns1", "a", "2"));
	CHECK(old != NULL);
	CHECK_STR(old->resource_version, "1");
	ctl_obj_unref(old);
	CHECK_INT(ctl_store_get(&got, s, "ns1/a"), 0);
	CHECK_STR(got->resource_version, "2");
	ctl_obj_unref(got);
	CHECK_INT(ctl_store_len(s), 1);
	CHECK_INT(ctl_store_delete(&old, s, "ns1/a"), 0);
	CHECK_STR(old->resource_version, "2");
	ctl_obj_unref(old);
	CHECK_INT(ctl_store_len(s), 0);
	ctl_store_free(s);
}

TEST(store_holds_many_objects)
{
	struct ctl_store *s;
	char name[32];
	ctl_store_new(&s);
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "obj-%d", i);
		ctl_store_apply(NULL, s, make("ns", name, "1"));
	}
	CHECK_INT(ctl_store_len(s), 2000);
	for (int i = 0; i < 2000; i += 97) {
		struct ctl_obj *got;
		snprintf(name, sizeof(name), "ns/obj-%d", i);
		CHECK_INT(ctl_store_get(&got, s, name), 0);
		ctl_obj_unref(got);
	}
	struct ctl_obj **all;
	size_t n;
	ctl_store_list(&all, &n, s);
	CHECK_INT(n, 2000);
	ctl_store_list_free(all, n);
	ctl_store_free(s);
}

TEST(store_replace_reports_added_changed_and_deleted)
{
	struct ctl_store *s;
	struct ctl_store_delta *d;
	size_t n;
	ctl_store_new(&s);
	CHECK_INT(ctl_store_has_synced(s), 0);
	ctl_store_apply(NULL, s, make("ns", "same", "1"));
	ctl_store_apply(NULL, s, make("ns", "changed", "1"));
	ctl_store_apply(NULL, s, make("ns", "gone", "1"));

	/* A reader holding "gone" across the swap keeps a valid object. */
	struct ctl_obj *held;
	CHECK_INT(ctl_store_get(&held, s, "ns/gone"), 0);

	struct ctl_obj *objs[] = {make("ns", "same", "1"), make("ns", "changed", "2"), make("ns", "new", "1")};
	ctl_store_replace(&d, &n, s, NULL, objs, 3);
	CHECK_INT(ctl_store_has_synced(s), 1);
	CHECK_INT(n, 3);
	const struct ctl_store_delta *x = find_delta(d, n, "ns/changed");
	CHECK(x && x->old && x->obj);
	CHECK_STR(x->old->resource_version, "1");
	CHECK_STR(x->obj->resource_version, "2");
	x = find_delta(d, n, "ns/new");
	CHECK(x && !x->old && x->obj);
	x = find_delta(d, n, "ns/gone");
	CHECK(x && x->old && !x->obj);
	CHECK(find_delta(d, n, "ns/same") == NULL);
	ctl_store_deltas_free(d, n);

	struct ctl_obj *got = NULL;
	CHECK_INT(ctl_store_get(&got, s, "ns/gone"), CTL_ENOTFOUND);
	CHECK_INT(ctl_store_len(s), 3);
	CHECK_STR(held->name, "gone");
	CHECK_INT(atomic_load(&held->refs), 1);
	ctl_obj_unref(held);
	ctl_store_free(s);
}

TEST(store_replace_is_scoped_to_its_namespace)
{
	struct ctl_store *s;
	struct ctl_store_delta *d;
	size_t n;
	ctl_store_new(&s);
	ctl_store_apply(NULL, s, make("a", "x", "1"));
	ctl_store_apply(NULL, s, make("b", "x", "1"));
	ctl_store_apply(NULL, s, make("b", "y", "1"));

	struct ctl_obj *objs[] = {make("a", "z", "1")};
	ctl_store_replace(&d, &n, s, "a", objs, 1);
	CHECK_INT(n, 2); /* a/z added, a/x deleted; b untouched */
	CHECK(find_delta(d, n, "a/x") && !find_delta(d, n, "a/x")->obj);
	CHECK(find_delta(d, n, "a/z") && !find_delta(d, n, "a/z")->old);
	ctl_store_deltas_free(d, n);
	CHECK_INT(ctl_store_len(s), 3);
	struct ctl_obj *got;
	CHECK_INT(ctl_store_get(&got, s, "b/y"), 0);
	ctl_obj_unref(got);
	ctl_store_free(s);
}

TEST(store_replace_keeps_the_later_duplicate)
{
	struct ctl_store *s;
	struct ctl_store_delta *d;
	size_t n;
	ctl_store_new(&s);
	struct ctl_obj *objs[] = {make("a", "x", "1"), make("a", "x", "2")};
	ctl_store_replace(&d, &n, s, NULL, objs, 2);
	CHECK_INT(n, 1);
	CHECK_STR(d[0].obj->resource_version, "2");
	ctl_store_deltas_free(d, n);
	ctl_store_free(s);
}

TEST(rv_compare_orders_by_number_not_text)
{
	int cmp = 0;
	CHECK_INT(ctl_rv_compare("9", "10", &cmp), 0);
	CHECK(cmp < 0);
	CHECK_INT(ctl_rv_compare("123456789012345678901", "99", &cmp), 0); /* any length */
	CHECK(cmp > 0);
	CHECK_INT(ctl_rv_compare("42", "42", &cmp), 0);
	CHECK_INT(cmp, 0);
	CHECK_INT(ctl_rv_compare("", "1", &cmp), CTL_EINVALID);
	CHECK_INT(ctl_rv_compare("0", "1", &cmp), CTL_EINVALID);    /* never a live version */
	CHECK_INT(ctl_rv_compare("012", "13", &cmp), CTL_EINVALID); /* leading zero */
	CHECK_INT(ctl_rv_compare("12a", "13", &cmp), CTL_EINVALID);
	CHECK_INT(ctl_rv_compare("-1", "13", &cmp), CTL_EINVALID);
}

/* The answer to our own write is cached first; the watch event of the same
 * write, and any older one still in flight, must not undo it. */
TEST(store_offer_drops_same_and_older_versions)
{
	struct ctl_store *s;
	struct ctl_obj *old = NULL, *got = NULL;
	ctl_store_new(&s);
	CHECK_INT(ctl_store_offer(&old, s, make("a", "x", "10"), NULL), 1);
	CHECK(old == NULL);
	CHECK_INT(ctl_store_offer(&old, s, make("a", "x", "12"), "10"), 1);
	CHECK_STR(old->resource_version, "10");
	ctl_obj_unref(old);
	CHECK_INT(ctl_store_offer(&old, s, make("a", "x", "11"), NULL), 0); /* older: the watch lagging */
	CHECK(old == NULL);
	CHECK_INT(ctl_store_offer(&old, s, make("a", "x", "12"), NULL), 0); /* the same write's event */
	CHECK_INT(ctl_store_get(&got, s, "a/x"), 0);
	CHECK_STR(got->resource_version, "12");
	CHECK_INT(got->own_write, 1);
	ctl_obj_unref(got);
	CHECK_INT(ctl_store_offer(NULL, s, make("a", "x", "13"), NULL), 1); /* someone else's change */
	CHECK_INT(ctl_store_get(&got, s, "a/x"), 0);
	CHECK_INT(got->own_write, 0);
	ctl_obj_unref(got);
	/* Versions that do not compare: newest wins, as before comparability. */
	CHECK_INT(ctl_store_offer(NULL, s, make("a", "y", "abc"), NULL), 1);
	CHECK_INT(ctl_store_offer(NULL, s, make("a", "y", "abb"), NULL), 1);
	CHECK_INT(ctl_store_get(&got, s, "a/y"), 0);
	CHECK_STR(got->resource_version, "abb");
	ctl_obj_unref(got);
	ctl_store_free(s);
}

/* An answer to our write on a version the store no longer holds carries
 * changes this process did not make: it is not marked own_write, so the
 * handlers treat it as news. */
TEST(store_offer_marks_own_write_only_on_the_base_version)
{
	struct ctl_store *s;
	struct ctl_obj *got = NULL;
	ctl_store_new(&s);
	/* The watch saw it deleted before our answer came: it stays gone. */
	CHECK_INT(ctl_store_offer(NULL, s, make("a", "gone", "7"), "6"), 0);
	CHECK_INT(ctl_store_get(&got, s, "a/gone"), CTL_ENOTFOUND);
	ctl_store_offer(NULL, s, make("a", "x", "10"), NULL);
	ctl_store_offer(NULL, s, make("a", "x", "11"), NULL); /* a user's edit, watched */
	CHECK_INT(ctl_store_offer(NULL, s, make("a", "x", "12"), "10"), 1);
	CHECK_INT(ctl_store_get(&got, s, "a/x"), 0);
	CHECK_INT(got->own_write, 0);
	ctl_obj_unref(got);
	/* A status write on the cached version whose answer carries a new
	 * generation: the spec changed while we wrote and the watch has not
	 * said so yet. That is news too. */
	struct ctl_obj *edited = NULL;
	CHECK_INT(ctl_obj_new(&edited, cJSON_Parse("{\"metadata\":{\"namespace\":\"a\",\"name\":\"x\","
						   "\"resourceVersion\":\"14\",\"generation\":4}}")), 0);
	CHECK_INT(ctl_store_offer(NULL, s, edited, "12"), 1);
	CHECK_INT(ctl_store_get(&got, s, "a/x"), 0);
	CHECK_STR(got->resource_version, "14");
	CHECK_INT(got->own_write, 0);
	ctl_obj_unref(got);
	ctl_store_free(s);
}

/* A relist taken before our write landed must not bring the older version
 * back. */
TEST(store_replace_keeps_an_entry_newer_than_the_list)
{
	struct ctl_store *s;
	struct ctl_store_delta *d;
	struct ctl_obj *got = NULL;
	size_t n;
	ctl_store_new(&s);
	ctl_store_offer(NULL, s, make("a", "x", "20"), NULL);
	struct ctl_obj *objs[] = {make("a", "x", "19"), make("a", "y", "5")};
	ctl_store_replace(&d, &n, s, NULL, objs, 2);
	CHECK_INT(n, 1); /* only y is news */
	CHECK_STR(d[0].obj->key, "a/y");
	ctl_store_deltas_free(d, n);
	CHECK_INT(ctl_store_get(&got, s, "a/x"), 0);
	CHECK_STR(got->resource_version, "20");
	ctl_obj_unref(got);
	ctl_store_free(s);
}

static struct ctl_obj *make_ref(const char *ns, const char *name, const char *registry)
{
	char *text = registry ? xasprintf("{\"metadata\":{\"namespace\":\"%s\",\"name\":\"%s\",\"resourceVersion\":\"1\"},"
					  "\"spec\":{\"registryRef\":{\"name\":\"%s\"}}}", ns, name, registry)
			      : xasprintf("{\"metadata\":{\"namespace\":\"%s\",\"name\":\"%s\",\"resourceVersion\":\"1\"}}",
					  ns, name);
	struct ctl_obj *o = NULL;
	CHECK_INT(ctl_obj_new(&o, cJSON_Parse(text)), 0);
	free(text);
	return o;
}

static int has_key(char **keys, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(keys[i], key))
			return 1;
	return 0;
}

/* Handlers follow references (the pools of a registry) without parsing
 * every cached object: the field is kept beside each one. */
TEST(store_finds_keys_by_an_indexed_field_in_one_namespace)
{
	struct ctl_store *s;
	char **keys;
	size_t n;
	ctl_store_new(&s);
	int ix = ctl_store_add_index(s, "spec.registryRef.name");
	CHECK(ix >= 0);
	CHECK_INT(ctl_store_add_index(s, "spec.registryRef.name"), ix); /* the same path, the same index */
	ctl_store_apply(NULL, s, make_ref("ns1", "p1", "reg"));
	ctl_store_apply(NULL, s, make_ref("ns1", "p2", "other"));
	ctl_store_apply(NULL, s, make_ref("ns2", "p3", "reg"));
	ctl_store_apply(NULL, s, make_ref("ns1", "p4", NULL));
	ctl_store_find_keys(&keys, &n, s, ix, "ns1", "reg");
	CHECK_INT(n, 1);
	CHECK_STR(keys[0], "ns1/p1");
	ctl_store_keys_free(keys, n);
	/* A changed reference moves with the object. */
	ctl_store_apply(NULL, s, make_ref("ns1", "p2", "reg"));
	ctl_store_find_keys(&keys, &n, s, ix, "ns1", "reg");
	CHECK_INT(n, 2);
	CHECK(has_key(keys, n, "ns1/p1") && has_key(keys, n, "ns1/p2"));
	ctl_store_keys_free(keys, n);
	ctl_store_keys(&keys, &n, s);
	CHECK_INT(n, 4);
	ctl_store_keys_free(keys, n);
	/* Indexes come before objects. */
	CHECK_INT(ctl_store_add_index(s, "spec.other"), CTL_EINVALID);
	ctl_store_find_keys(&keys, &n, s, 3, "ns1", "reg"); /* no such index */
	CHECK_INT(n, 0);
	ctl_store_keys_free(keys, n);
	ctl_store_free(s);
}

/* An object the way an informer of AgentPools sees it over its life:
 * created bare, then with the status the reconciler writes. */
static struct ctl_obj *make_pool(int i, int with_status)
{
	char *text = xasprintf(
		"{\"apiVersion\":\"acrpool.dev/v1alpha1\",\"kind\":\"AgentPool\",\"metadata\":{"
		"\"creationTimestamp\":\"2026-12-07T23:10:%02dZ\",\"generation\":1,\"name\":\"p%05d\","
		"\"namespace\":\"bench\",\"resourceVersion\":\"%d\",\"uid\":\"%08x-0000-4000-8000-%012x\"},"
		"\"spec\":{\"count\":1,\"registryRef\":{\"name\":\"registry%d\"},\"tier\":\"S1\"}}",
		i % 60, i, 1000 + 2 * i + with_status, i * 2654435761u, i * 40503u, i % 10);
	cJSON *json = cJSON_Parse(text);
	free(text);
	if (with_status) {
		text = xasprintf("{\"conditions\":[{\"lastTransitionTime\":\"2026-12-07T23:11:%02dZ\",\"message\":"
				 "\"agent pool p%05d is ready with 1 agent\",\"observedGeneration\":1,\"reason\":"
				 "\"Succeeded\",\"status\":\"True\",\"type\":\"Ready\"},{\"lastTransitionTime\":"
				 "\"2026-12-07T23:11:%02dZ\",\"message\":\"\",\"observedGeneration\":1,\"reason\":"
				 "\"Succeeded\",\"status\":\"False\",\"type\":\"Stalled\"}],\"observedGeneration\":1}",
				 i % 60, i, i % 60);
		cJSON_AddItemToObject(json, "status", cJSON_Parse(text));
		free(text);
	}
	struct ctl_obj *o = NULL;
	CHECK_INT(ctl_obj_new(&o, json), 0);
	return o;
}

/* The cache keeps objects of one kind as their differences from one of
 * them: a thousand pools, first bare and then Ready, take a small part of
 * their text, and every read gives back the object that went in. */
TEST(store_keeps_similar_objects_in_a_fraction_of_their_text)
{
	struct ctl_store *s;
	size_t objects, bytes, text = 0;
	ctl_store_new(&s);
	for (int pass = 0; pass < 2; pass++) {
		text = 0;
		for (int i = 0; i < 1000; i++) {
			struct ctl_obj *o = make_pool(i, pass);
			char *t = cJSON_PrintUnformatted(o->json);
			text += strlen(t);
			cJSON_free(t);
			ctl_store_apply(NULL, s, o);
		}
		ctl_store_footprint(s, &objects, &bytes);
		CHECK_INT(objects, 1000);
		fprintf(stderr, "pass %d: %zu bytes for %zu of text\n", pass, bytes, text);
		/* Each record also has its key, resourceVersion and a header
		 * of its own: a bare object's text is small. */
		CHECK(pass ? bytes * 3 < text : bytes * 3 < text * 2);
	}
	for (int i = 0; i < 1000; i += 37) {
		struct ctl_obj *want = make_pool(i, 1), *got = NULL;
		CHECK_INT(ctl_store_get(&got, s, want->key), 0);
		CHECK(got && cJSON_Compare(got->json, want->json, 1));
		ctl_obj_unref(got);
		ctl_obj_unref(want);
	}
	/* Deleting them gives the bytes back, references included. */
	for (int i = 0; i < 1000; i++) {
		char name[16];
		snprintf(name, sizeof(name), "bench/p%05d", i);
		CHECK_INT(ctl_store_delete(NULL, s, name), 0);
	}
	ctl_store_footprint(s, &objects, &bytes);
	CHECK_INT(objects, 0);
	CHECK(bytes < 64 * 1024); /* the table, and the references kept for what comes next */
	ctl_store_free(s);
}

TEST_MAIN(T(obj_new_reads_metadata), T(obj_new_rejects_nameless_object), T(store_get_returns_a_private_copy_that_outlives_the_store),
	  T(store_get_missing_is_not_found), T(store_apply_replaces_and_hands_back_old),
	  T(store_holds_many_objects), T(store_replace_reports_added_changed_and_deleted),
	  T(store_replace_is_scoped_to_its_namespace), T(store_replace_keeps_the_later_duplicate),
	  T(rv_compare_orders_by_number_not_text), T(store_offer_drops_same_and_older_versions),
	  T(store_offer_marks_own_write_only_on_the_base_version), T(store_replace_keeps_an_entry_newer_than_the_list),
	  T(store_finds_keys_by_an_indexed_field_in_one_namespace),
	  T(store_keeps_similar_objects_in_a_fraction_of_their_text))
