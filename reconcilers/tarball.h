/*
 * tarball.h: a build context as a gzip-compressed POSIX ustar archive,
 * made in memory (no I/O): what `az acr build .` uploads, here from the
 * files of a ConfigMap.
 *
 * Only what a ConfigMap can hold is needed: regular files with flat names
 * (ConfigMap keys are [-._a-zA-Z0-9]+, at most 253 bytes), so there are no
 * directories, links, long-name (PAX/GNU) records or special files. The
 * output is deterministic: files sorted by name, mode 0644, owner 0/0, the
 * given mtime, and a gzip header without a name or time.
 */
#ifndef TARBALL_H
#define TARBALL_H

#include <stddef.h>

struct tarball_file {
	const char *name;           /* at most 100 bytes, or up to 255 split at a '/'-free 155/100 boundary */
	const unsigned char *data;
	size_t len;
};

/* Pack files into a .tar.gz. *out (caller frees) gets *len bytes. Returns
 * 0, or CTL_EINVALID for a name that does not fit a ustar header
 * (ctl_error says which). files is sorted in place by name. */
int tarball_pack(unsigned char **out, size_t *len, struct tarball_file *files, size_t n, long long mtime);

#endif
