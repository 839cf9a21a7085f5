/*
 * secret_volume.h: a certificate pair published in a directory the way the
 * kubelet updates a Secret volume (a new directory ..gen<N>, ..data pointed
 * at it by renaming a new symlink over it, tls.crt and tls.key as links
 * through ..data), for the tests of the certificate watcher and of the
 * HTTPS server that uses it. Include after test.h.
 */
#ifndef TEST_SECRET_VOLUME_H
#define TEST_SECRET_VOLUME_H

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
}

/* Publish a pair in dir as the kubelet does: the files go into a new
 * directory ..gen<gen>, ..data is pointed at it by renaming a new symlink
 * over it, and tls.crt and tls.key are links through ..data. */
static void secret_volume_publish(const char *dir, int gen, const char *crt, const char *key)
{
	char d[512], p[600], tmp[600], data[600];
	snprintf(d, sizeof(d), "%s/..gen%d", dir, gen);
	CHECK(mkdir(d, 0700) == 0);
	snprintf(p, sizeof(p), "%s/tls.crt", d);
	write_file(p, crt);
	snprintf(p, sizeof(p), "%s/tls.key", d);
	write_file(p, key);
	snprintf(tmp, sizeof(tmp), "%s/..data_tmp", dir);
	snprintf(data, sizeof(data), "%s/..data", dir);
	snprintf(p, sizeof(p), "..gen%d", gen);
	CHECK(symlink(p, tmp) == 0);
	CHECK(rename(tmp, data) == 0);
	const char *names[] = {"tls.crt", "tls.key"};
	for (int i = 0; i < 2; i++) {
		struct stat st;
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		snprintf(tmp, sizeof(tmp), "..data/%s", names[i]);
		if (lstat(p, &st) != 0)
			CHECK(symlink(tmp, p) == 0);
	}
}

static void secret_volume_remove(const char *dir, int gens)
{
	char p[600];
	for (int g = 0; g < gens; g++) {
		snprintf(p, sizeof(p), "%s/..gen%d/tls.crt", dir, g);
		unlink(p);
		snprintf(p, sizeof(p), "%s/..gen%d/tls.key", dir, g);
		unlink(p);
		snprintf(p, sizeof(p), "%s/..gen%d", dir, g);
		rmdir(p);
	}
	const char *links[] = {"tls.crt", "tls.key", "..data"};
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, links[i]);
		unlink(p);
	}
	rmdir(dir);
}

#endif
