/*
 * main.c: acrpool-controller, the operator binary.
 */
#include "log.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("acrpool-controller %s\n", ACRPOOL_VERSION);
		return 0;
	}
	ctl_log(CTL_LOG_INFO, "acrpool-controller starting", "version", ACRPOOL_VERSION, NULL);
	return 0;
}
