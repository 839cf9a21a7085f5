/*
 * hash.h: FNV-1a (64-bit), the one string hash of the project: the store's
 * map, the metrics registry's series index, the Event recorder, the
 * registry snapshot's name index. Not for anything an attacker could choose
 * to collide at scale: every table using it compares the keys themselves.
 */
#ifndef CTL_HASH_H
#define CTL_HASH_H

#include <stdint.h>

#define CTL_FNV1A_INIT UINT64_C(0xcbf29ce484222325)

/* Fold one byte into h. */
static inline uint64_t ctl_fnv1a_byte(uint64_t h, unsigned char c)
{
	return (h ^ c) * UINT64_C(0x100000001b3);
}

/* Fold the bytes of s (NULL as "") into h. */
static inline uint64_t ctl_fnv1a_str(uint64_t h, const char *s)
{
	for (const char *c = s ? s : ""; *c; c++)
		h = ctl_fnv1a_byte(h, (unsigned char)*c);
	return h;
}

#endif
