/* Unit tests for controller/refpack.c: texts kept as differences from a
 * reference text. */
#include "test.h"

#include "refpack.h"
#include "xalloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A Ready AgentPool as the API server sends it, managedFields dropped. */
static char *pool(int i, const char *uid, const char *rv)
{
	return xasprintf(
		"{\"apiVersion\":\"acrpool.dev/v1alpha1\",\"kind\":\"AgentPool\",\"metadata\":{\"creationTimestamp\":"
		"\"2026-12-07T23:10:%02dZ\",\"finalizers\":[\"acrpool.dev/finalizer\"],\"generation\":1,\"name\":"
		"\"p%05d\",\"namespace\":\"bench\",\"resourceVersion\":\"%s\",\"uid\":\"%s\"},\"spec\":{\"count\":1,"
		"\"registryRef\":{\"name\":\"registry%d\"},\"tier\":\"S1\"},\"status\":{\"conditions\":[{"
		"\"lastTransitionTime\":\"2026-12-07T23:10:%02dZ\",\"message\":\"agent pool p%05d is ready with 1 "
		"agent\",\"observedGeneration\":1,\"reason\":\"Succeeded\",\"status\":\"True\",\"type\":\"Ready\"},{"
		"\"lastTransitionTime\":\"2026-12-07T23:10:%02dZ\",\"message\":\"\",\"observedGeneration\":1,"
		"\"reason\":\"Succeeded\",\"status\":\"False\",\"type\":\"Reconciling\"},{\"lastTransitionTime\":"
		"\"2026-12-07T23:10:%02dZ\",\"message\":\"\",\"observedGeneration\":1,\"reason\":\"Succeeded\","
		"\"status\":\"False\",\"type\":\"Stalled\"}],\"count\":1,\"id\":\"/subscriptions/00000000-0000-0000-"
		"0000-000000000000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/registry%d/"
		"agentPools/p%05d\",\"observedGeneration\":1,\"provisioningState\":\"Succeeded\"}}",
		i % 60, i, rv, uid, i % 10, (i + 1) % 60, i, (i + 1) % 60, (i + 1) % 60, i % 10, i);
}

/* Pack text against ref, unpack it, and check the round trip; returns the
 * code's length. */
static size_t round_trip(const struct ctl_ref *ref, const char *text, size_t len)
{
	unsigned char *code = xmalloc(ctl_refpack_bound(len));
	size_t n = ctl_refpack(code, ref, text, len);
	CHECK(n <= ctl_refpack_bound(len));
	char *back = xmalloc(len + 1);
	CHECK_INT(ctl_refunpack(back, len, ref, code, n), 0);
	CHECK(memcmp(back, text, len) == 0);
	free(back);
	free(code);
	return n;
}

TEST(similar_objects_pack_to_a_small_fraction)
{
	char *first = pool(0, "0e1f2a3b-4c5d-6e7f-8a9b-0c1d2e3f4a5b", "1000");
	struct ctl_ref *ref = ctl_ref_new(first, strlen(first));
	CHECK(round_trip(ref, first, strlen(first)) < 8); /* itself: one copy */
	size_t total = 0, raw = 0;
	for (int i = 1; i < 200; i++) {
		char uid[37];
		snprintf(uid, sizeof(uid), "%08x-%04x-4%03x-8%03x-%012x", (unsigned)i * 2654435761u, i, i, i,
			 (unsigned)i * 40503u);
		char rv[16];
		snprintf(rv, sizeof(rv), "%d", 1000 + i * 7);
		char *t = pool(i, uid, rv);
		raw += strlen(t);
		total += round_trip(ref, t, strlen(t));
		free(t);
	}
	/* A name, a uid, a resourceVersion and timestamps differ: under a
	 * sixth of the text. */
	fprintf(stderr, "packed %zu of %zu bytes\n", total, raw);
	CHECK(total * 6 < raw);
	ctl_ref_drop(ref);
	free(first);
}

TEST(unrelated_text_and_no_reference_cost_only_a_header)
{
	const char *text = "{\"kind\":\"Secret\",\"data\":{\"x\":\"qwertyuiopasdfghjklzxcvbnm\"}}";
	size_t len = strlen(text);
	CHECK(round_trip(NULL, text, len) <= len + 2);
	struct ctl_ref *ref = ctl_ref_new("0123456789abcdef", 16);
	CHECK(round_trip(ref, text, len) <= len + 2);
	ctl_ref_retire(ref); /* retired: packs literals, still unpacks */
	CHECK(round_trip(ref, text, len) <= len + 2);
	ctl_ref_drop(ref);
	CHECK_INT(round_trip(NULL, "", 0), 0);
	CHECK(round_trip(NULL, "abc", 3) == 4);
}

TEST(text_shorter_than_a_copy_and_long_literals_round_trip)
{
	/* A reference shorter than the shortest copy, and texts with
	 * literals long enough for two- and three-byte headers. */
	struct ctl_ref *tiny = ctl_ref_new("ab", 2);
	round_trip(tiny, "ab", 2);
	round_trip(tiny, "abab", 4);
	ctl_ref_drop(tiny);

	size_t len = 300000;
	char *big = xmalloc(len);
	uint32_t x = 1;
	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		big[i] = (char)('a' + (x >> 16) % 26);
	}
	struct ctl_ref *ref = ctl_ref_new(big, 20000);
	for (size_t i = 50000; i < len; i += 30000)
		big[i] = 'X'; /* a copy of the reference's start, then random tail */
	size_t n = round_trip(ref, big, len);
	CHECK(n <= len + len / 4096 + 10);
	ctl_ref_drop(ref);
	free(big);
}

TEST(unpack_refuses_code_that_does_not_fit)
{
	struct ctl_ref *ref = ctl_ref_new("hello, world", 12);
	char out[32];
	/* A copy of 12 from 0, then more. */
	const unsigned char whole[] = {(12 - CTL_REFPACK_MIN) << 1 | 1, 0};
	CHECK_INT(ctl_refunpack(out, 12, ref, whole, sizeof(whole)), 0);
	CHECK(memcmp(out, "hello, world", 12) == 0);
	CHECK_INT(ctl_refunpack(out, 11, ref, whole, sizeof(whole)), -1); /* too long for dst */
	CHECK_INT(ctl_refunpack(out, 13, ref, whole, sizeof(whole)), -1); /* too short */
	CHECK_INT(ctl_refunpack(out, 12, NULL, whole, sizeof(whole)), -1); /* a copy needs a ref */
	const unsigned char past_end[] = {(9 - CTL_REFPACK_MIN) << 1 | 1, 8}; /* 9 bytes from 4 */
	CHECK_INT(ctl_refunpack(out, 9, ref, past_end, sizeof(past_end)), -1);
	const unsigned char before_start[] = {(4 - CTL_REFPACK_MIN) << 1 | 1, 1}; /* from -1 */
	CHECK_INT(ctl_refunpack(out, 4, ref, before_start, sizeof(before_start)), -1);
	const unsigned char literal_short[] = {4 << 1, 'a', 'b'}; /* says 5 bytes, has 2 */
	CHECK_INT(ctl_refunpack(out, 5, ref, literal_short, sizeof(literal_short)), -1);
	const unsigned char cut_varint[] = {0x81};
	CHECK_INT(ctl_refunpack(out, 1, ref, cut_varint, sizeof(cut_varint)), -1);
	const unsigned char huge[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
	CHECK_INT(ctl_refunpack(out, 32, ref, huge, sizeof(huge)), -1);
	const unsigned char huge_step[] = {1, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
	CHECK_INT(ctl_refunpack(out, 4, ref, huge_step, sizeof(huge_step)), -1);
	ctl_ref_drop(ref);
}

TEST(bytes_count_the_index_until_retired)
{
	struct ctl_ref *ref = ctl_ref_new("0123456789abcdef0123456789abcdef", 32);
	size_t live = ctl_ref_bytes(ref);
	CHECK(live > 32 + 256 * 4);
	CHECK(ctl_ref_hold(ref) == ref);
	CHECK_INT(ctl_ref_drop(ref), 0); /* still held */
	ctl_ref_retire(ref);
	size_t retired = ctl_ref_bytes(ref);
	CHECK(retired < live && retired > 32);
	CHECK_INT(ctl_ref_drop(ref), retired);
	CHECK_INT(ctl_ref_drop(NULL), 0);
}

TEST_MAIN(T(similar_objects_pack_to_a_small_fraction), T(unrelated_text_and_no_reference_cost_only_a_header),
	  T(text_shorter_than_a_copy_and_long_literals_round_trip), T(unpack_refuses_code_that_does_not_fit),
	  T(bytes_count_the_index_until_retired))
