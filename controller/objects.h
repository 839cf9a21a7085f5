/*
 * objects.h: the writes every reconciler makes on its own objects:
 * finalizers, with the object's resourceVersion as a precondition, and
 * status, only when it changed.
 *
 * A status write that changes nothing still bumps resourceVersion and
 * wakes every watcher, including our own informer: a reconcile that
 * writes status unconditionally re-triggers itself forever. Hence
 * ctl_status_write() compares first.
 *
 * The API server's answer to a successful write goes to the client's write
 * hook (ctl_kube_observe_write) with the version the write was made on, so
 * the cache holds the written object before the next reconcile reads it.
 */
#ifndef CTL_OBJECTS_H
#define CTL_OBJECTS_H

#include "kube.h"
#include "store.h"

#include <cjson/cJSON.h>
#include <stdbool.h>

/* Does obj carry the finalizer? */
bool ctl_finalizer_has(const struct ctl_obj *obj, const char *finalizer);

/* Add or remove a finalizer with a merge patch that carries obj's
 * resourceVersion, so a concurrent change makes it fail with
 * CTL_ECONFLICT (requeue and look again) instead of clobbering the list.
 * A no-op (already there / already gone) returns 0 without a request. */
int ctl_finalizer_add(struct ctl_kube_client *c, const struct ctl_gvr *gvr, const struct ctl_obj *obj,
		      const char *finalizer);
int ctl_finalizer_remove(struct ctl_kube_client *c, const struct ctl_gvr *gvr, const struct ctl_obj *obj,
			 const char *finalizer);

/* Replace obj's status with status through the status subresource, unless
 * it is equal to what obj already has. *wrote (may be NULL) tells which.
 * The object's status is ours alone, so the write carries no precondition. */
int ctl_status_write(struct ctl_kube_client *c, const struct ctl_gvr *gvr, const struct ctl_obj *obj,
		     const cJSON *status, bool *wrote);

/* A deep copy of obj's status, or an empty object. Caller frees. */
cJSON *ctl_status_copy(const struct ctl_obj *obj);

/* obj.field.path ("spec.registryRef.name") as a borrowed cJSON, or NULL. */
const cJSON *ctl_obj_field(const struct ctl_obj *obj, const char *dotted);
const char *ctl_obj_string(const struct ctl_obj *obj, const char *dotted);

#endif
