/*
 * refpack.h: a text kept as the differences from a reference text.
 *
 * The objects of one informer are mostly the same bytes: the same keys,
 * apiVersion and kind, conditions with the same types, reasons and
 * messages; what differs is a name, a uid, a resourceVersion and some
 * timestamps. So the store keeps one object's text as a reference and each
 * object as copies out of it and the literal bytes between them: a Ready
 * AgentPool of 1.1 KiB packs to about a tenth of that. Unpacking is a few
 * memcpys. It is the idea of a compressor's preset dictionary (zlib's
 * deflateSetDictionary, zstd's dictionaries) without the entropy coding,
 * which would cost a reconcile's worth of CPU per write for the last few
 * bytes.
 *
 * The code is a series of operations, each an unsigned LEB128 varint v:
 * v even is a literal of (v >> 1) + 1 bytes, which follow; v odd is a copy
 * of (v >> 1) + CTL_REFPACK_MIN bytes out of the reference, followed by a
 * zigzag varint: where the copy starts, relative to where the previous
 * copy ended (0 at first), since an object's parts follow the reference's
 * in the same order and most copies carry on where the last one stopped.
 */
#ifndef CTL_REFPACK_H
#define CTL_REFPACK_H

#include <stddef.h>

#define CTL_REFPACK_MIN 4 /* the shortest copy */

struct ctl_ref;

/* A reference: a copy of text[0..len) with one holder, and the index that
 * finds matches in it. */
struct ctl_ref *ctl_ref_new(const char *text, size_t len);
struct ctl_ref *ctl_ref_hold(struct ctl_ref *r); /* returns r */

/* Let go of r; the last holder frees it. Returns the bytes that freed
 * (ctl_ref_bytes), 0 while others hold it. NULL is fine. */
size_t ctl_ref_drop(struct ctl_ref *r);

/* What r holds on the heap: its text, and its index until retired. */
size_t ctl_ref_bytes(const struct ctl_ref *r);

/* Free r's index: it still unpacks what was packed against it, and packs
 * nothing new (ctl_refpack then codes literals only). Not while another
 * thread packs against r. */
void ctl_ref_retire(struct ctl_ref *r);

/* The most bytes ctl_refpack writes for a text of len bytes. */
size_t ctl_refpack_bound(size_t len);

/* Code text[0..len) against ref (NULL, or retired: literals only) into dst,
 * which has room for ctl_refpack_bound(len) bytes. Returns the code's
 * length. */
size_t ctl_refpack(unsigned char *dst, const struct ctl_ref *ref, const char *text, size_t len);

/* Decode code[0..code_len) against ref into dst[0..len). Returns 0, or -1
 * when the code is not exactly len bytes' worth out of this ref (dst is
 * then undefined). Never reads or writes out of bounds, whatever code is. */
int ctl_refunpack(char *dst, size_t len, const struct ctl_ref *ref, const unsigned char *code, size_t code_len);

#endif
