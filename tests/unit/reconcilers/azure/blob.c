/*
 * Tests for reconcilers/azure/blob.c, Azure Storage through SAS URLs: a
 * build source upload as a block blob, retried like an ARM call, without
 * the ARM token, and with the SAS never in an error.
 */
#include "test.h"

#include "arm_rig.h"

#include "azure/acr.h"
#include "azure/blob.h"
#include "error.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TEST(wire_upload_block_blob)
{
	struct rig r;
	struct arm_upload_url u;
	rig_start(&r, 0, 0);
	char *answer = xasprintf("{\"uploadUrl\":\"%s/container/source.tar.gz?sv=2020&sig=SASSECRET\","
				 "\"relativePath\":\"source/123/source.tar.gz\"}", r.s.base);
	canned_reply(&r.s, 0, 200, NULL, answer);
	canned_reply(&r.s, 0, 503, NULL, "");
	canned_reply(&r.s, 0, 201, NULL, "");
	canned_reply(&r.s, 0, 403, NULL, "<?xml version=\"1.0\"?><Error><Code>AuthenticationFailed</Code>"
				       "<Message>Signature sig=SASSECRET did not match</Message></Error>");
	CHECK_INT(arm_build_source_upload_url(&u, r.c, &r.ref), 0);
	CHECK_STR(u.relative_path, "source/123/source.tar.gz");
	static const char data[] = "\x1f\x8b\x08\x00tar-bytes";
	CHECK_INT(arm_build_source_upload(r.c, u.upload_url, data, sizeof(data) - 1), 0);
	const char *req = canned_request(&r.s, 0, 2);
	CHECK(req && strncmp(req, "PUT /container/source.tar.gz?sv=2020&sig=SASSECRET HTTP/1.1", 58) == 0);
	char *h = canned_header(req, "x-ms-blob-type");
	CHECK_STR(h, "BlockBlob");
	free(h);
	h = canned_header(req, "x-ms-version");
	CHECK(h != NULL);
	free(h);
	h = canned_header(req, "Authorization");
	CHECK(h == NULL); /* the SAS is the credential; the ARM token stays home */
	free(h);
	CHECK(memcmp(canned_body(req), data, sizeof(data) - 1) == 0);
	CHECK_INT(arm_build_source_upload(r.c, u.upload_url, data, sizeof(data) - 1), CTL_EAUTH);
	CHECK_STR(ctl_error_last()->reason, "AuthenticationFailed");
	CHECK(strstr(ctl_error_last()->message, "SASSECRET") == NULL);
	arm_upload_url_dispose(&u);
	free(answer);
	rig_stop(&r);
}

TEST_MAIN(T(wire_upload_block_blob))
