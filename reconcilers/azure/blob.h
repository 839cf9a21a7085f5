/*
 * blob.h: Azure Storage calls through SAS URLs, on the ARM client's
 * connections and retry rules (arm.h): the tail of a run's log and the
 * upload of a build's source. The URL comes from an ACR call (acr.h:
 * arm_run_log_sas_url, arm_build_source_upload_url); its SAS is the
 * credential, so no bearer token is sent, and the URL is a secret that no
 * error message quotes.
 */
#ifndef ACRPOOL_BLOB_H
#define ACRPOOL_BLOB_H

#include "azure/arm.h"

#include <stddef.h>

/* The last tail bytes (at most) of the blob at url (a SAS URL such as a
 * run's logLink: the SAS is the credential, no bearer token is sent). Asks
 * for the size first (a one-byte x-ms-range), then for the tail; a server
 * that ignores ranges sends everything and only the tail is kept. *out is
 * NUL-terminated (caller frees), *len its length. Errors never quote the
 * URL. */
int arm_blob_tail(char **out, size_t *len, struct arm_client *c, const char *url, size_t tail);

/* PUT data (a tar.gz) to upload_url as a block blob (no bearer token: the
 * SAS is the credential). Retries like arm_request. Errors never quote the
 * URL. */
int arm_build_source_upload(struct arm_client *c, const char *upload_url, const void *data, size_t len);
int arm_build_source_upload_file(struct arm_client *c, const char *upload_url, const char *path);

#endif
