/*
 * refpack.c: a text kept as the differences from a reference text. See
 * refpack.h for the code's format.
 *
 * Packing looks for the longest match at each position of the text: first
 * where the previous copy ended in the reference (the usual case: the next
 * key of the same object), then along a hash chain of the reference's
 * positions that start with the same four bytes, at most MAX_CHAIN of
 * them. A match is taken when it saves bytes after its own operation's; a
 * text that matches nothing codes as one literal, a few bytes longer than
 * itself.
 */
#include "refpack.h"

#include "xalloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHAIN 16
#define VARINT_MAX 10 /* bytes of a 64-bit LEB128 varint */

struct ctl_ref {
	atomic_int holders;
	size_t len;
	unsigned bits;  /* the head table has 1 << bits slots */
	uint32_t *head; /* per hash: the last position with it, plus 1; 0 for none */
	uint32_t *prev; /* per position: the one before it with its hash, plus 1 */
	size_t indexed; /* positions in prev */
	char text[];
};

static uint32_t hash4(const char *p, unsigned bits)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return (v * UINT32_C(2654435761)) >> (32 - bits);
}

struct ctl_ref *ctl_ref_new(const char *text, size_t len)
{
	struct ctl_ref *r = xmalloc(sizeof(*r) + len + 1);
	atomic_init(&r->holders, 1);
	r->len = len;
	memcpy(r->text, text, len);
	r->text[len] = '\0';
	r->bits = 8;
	while (r->bits < 24 && ((size_t)1 << r->bits) < len)
		r->bits++;
	r->head = xcalloc((size_t)1 << r->bits, sizeof(*r->head));
	/* Positions are kept as 32 bits: a longer text only indexes its
	 * first 4 GiB, and copies reach no further. */
	size_t n = len >= CTL_REFPACK_MIN ? len - CTL_REFPACK_MIN + 1 : 0;
	if (n > UINT32_MAX - 1)
		n = UINT32_MAX - 1;
	r->indexed = n ? n : 1;
	r->prev = xmalloc(r->indexed * sizeof(*r->prev));
	for (size_t i = 0; i < n; i++) {
		uint32_t h = hash4(text + i, r->bits);
		r->prev[i] = r->head[h];
		r->head[h] = (uint32_t)i + 1;
	}
	return r;
}

struct ctl_ref *ctl_ref_hold(struct ctl_ref *r)
{
	atomic_fetch_add_explicit(&r->holders, 1, memory_order_relaxed);
	return r;
}

void ctl_ref_retire(struct ctl_ref *r)
{
	free(r->head);
	free(r->prev);
	r->head = r->prev = NULL;
}

size_t ctl_ref_bytes(const struct ctl_ref *r)
{
	size_t n = sizeof(*r) + r->len + 1;
	if (r->head)
		n += ((size_t)1 << r->bits) * sizeof(*r->head) + r->indexed * sizeof(*r->prev);
	return n;
}

size_t ctl_ref_drop(struct ctl_ref *r)
{
	if (!r || atomic_fetch_sub_explicit(&r->holders, 1, memory_order_acq_rel) != 1)
		return 0;
	size_t n = ctl_ref_bytes(r);
	ctl_ref_retire(r);
	free(r);
	return n;
}

size_t ctl_refpack_bound(size_t len)
{
	/* One literal of the whole text, or more than one, each but the first
	 * after a copy that saved at least two bytes: the header of a literal
	 * takes two bytes up to 8 KiB and one more per 7 bits beyond. */
	return len + len / 4096 + VARINT_MAX;
}

/* --- varints --------------------------------------------------------------- */

static size_t varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static size_t varint_put(unsigned char *dst, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		dst[n++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	dst[n++] = (unsigned char)v;
	return n;
}

/* Read a varint at code[*at]; 0 when it runs off the end or past 64 bits. */
static int varint_get(uint64_t *v, const unsigned char *code, size_t len, size_t *at)
{
	uint64_t x = 0;
	for (unsigned shift = 0; *at < len && shift < 64; shift += 7) {
		unsigned char b = code[(*at)++];
		if (shift == 63 && (b & 0x7e))
			return 0;
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return 1;
		}
	}
	return 0;
}

static uint64_t zigzag(int64_t d)
{
	return d < 0 ? ((uint64_t)(-(d + 1)) << 1) | 1 : (uint64_t)d << 1;
}

/* --- packing --------------------------------------------------------------- */

static size_t match_len(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen, i = 0;
	while (i < n && a[i] == b[i])
		i++;
	return i;
}

/* What a copy of n bytes from pos saves over coding them as literals. */
static long long copy_gain(size_t n, size_t pos, size_t expect)
{
	size_t cost = varint_len(((uint64_t)(n - CTL_REFPACK_MIN) << 1) | 1) +
		      varint_len(zigzag((int64_t)pos - (int64_t)expect));
	return (long long)n - (long long)cost;
}

static size_t put_literal(unsigned char *dst, const char *text, size_t n)
{
	if (!n)
		return 0;
	size_t k = varint_put(dst, (uint64_t)(n - 1) << 1);
	memcpy(dst + k, text, n);
	return k + n;
}

size_t ctl_refpack(unsigned char *dst, const struct ctl_ref *ref, const char *text, size_t len)
{
	size_t out = 0, i = 0, lit = 0, expect = 0;
	if (!ref || !ref->head) /* nothing to copy from */
		return put_literal(dst, text, len);
	while (i + CTL_REFPACK_MIN <= len) {
		size_t best_n = 0, best_pos = 0;
		long long best_gain = 1; /* a copy must save two bytes: the literal after it costs one */
		if (expect < ref->len) {
			size_t n = match_len(ref->text + expect, ref->len - expect, text + i, len - i);
			if (n >= CTL_REFPACK_MIN && copy_gain(n, expect, expect) > best_gain) {
				best_n = n;
				best_pos = expect;
				best_gain = copy_gain(n, expect, expect);
			}
		}
		uint32_t p = ref->head[hash4(text + i, ref->bits)];
		for (int chain = 0; p && chain < MAX_CHAIN; chain++, p = ref->prev[p - 1]) {
			size_t pos = p - 1;
			size_t n = match_len(ref->text + pos, ref->len - pos, text + i, len - i);
			long long gain = n >= CTL_REFPACK_MIN ? copy_gain(n, pos, expect) : 0;
			if (gain > best_gain) {
				best_n = n;
				best_pos = pos;
				best_gain = gain;
			}
		}
		if (!best_n) {
			i++;
			continue;
		}
		out += put_literal(dst + out, text + lit, i - lit);
		out += varint_put(dst + out, ((uint64_t)(best_n - CTL_REFPACK_MIN) << 1) | 1);
		out += varint_put(dst + out, zigzag((int64_t)best_pos - (int64_t)expect));
		i += best_n;
		lit = i;
		expect = best_pos + best_n;
	}
	return out + put_literal(dst + out, text + lit, len - lit);
}

int ctl_refunpack(char *dst, size_t len, const struct ctl_ref *ref, const unsigned char *code, size_t code_len)
{
	size_t at = 0, out = 0, expect = 0;
	while (at < code_len) {
		uint64_t v, z;
		if (!varint_get(&v, code, code_len, &at))
			return -1;
		uint64_t n = v >> 1;
		const char *from;
		if (v & 1) {
			if (!ref || !varint_get(&z, code, code_len, &at))
				return -1;
			/* z odd: back (z >> 1) + 1 bytes; even: forward z >> 1. */
			uint64_t step = (z >> 1) + (z & 1);
			if ((z & 1) ? step > expect : step > ref->len - expect)
				return -1;
			size_t pos = (z & 1) ? expect - (size_t)step : expect + (size_t)step;
			if (n > ref->len - pos || ref->len - pos - n < CTL_REFPACK_MIN)
				return -1;
			n += CTL_REFPACK_MIN;
			from = ref->text + pos;
			expect = pos + (size_t)n;
		} else {
			if (n >= code_len - at)
				return -1;
			n += 1;
			from = (const char *)code + at;
			at += (size_t)n;
		}
		if (n > len - out)
			return -1;
		memcpy(dst + out, from, (size_t)n);
		out += (size_t)n;
	}
	return out == len ? 0 : -1;
}
