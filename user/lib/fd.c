// SPDX-License-Identifier: GPL-2.0-only
/*
 * The clock, and the process's fd table: how many fds are open, whether
 * more fit under RLIMIT_NOFILE, and a walk over the open ones.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "vfio_cpr/fd.h"
#include "vfio_cpr/log.h"

#include "internal.h"

__u64 cpr_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
}

int cpr_visit_open_fds(cpr_fd_visit_t fn, void *arg)
{
	struct dirent *de;
	DIR *dir;
	int ret = 0;

	dir = opendir("/proc/self/fd");
	if (!dir)
		return cpr_err(-errno, "opendir /proc/self/fd");
	while ((de = readdir(dir))) {
		char *end;
		long fd;

		if (de->d_name[0] == '.')
			continue;
		fd = strtol(de->d_name, &end, 10);
		if (*end || fd < 0 || fd > INT_MAX || fd == dirfd(dir))
			continue;
		ret = fn((int)fd, arg);
		if (ret)
			break;
	}
	closedir(dir);
	return ret;
}

static int count_fd(int fd, void *arg)
{
	(void)fd;
	++*(int *)arg;
	return 0;
}

int cpr_open_fds(void)
{
	int n = 0, ret = cpr_visit_open_fds(count_fd, &n);

	return ret ? ret : n;
}

int cpr_fd_room(unsigned long long need, const char *what)
{
	struct rlimit rl;
	int open;

	open = cpr_open_fds();
	if (!need || open < 0 || getrlimit(RLIMIT_NOFILE, &rl) ||
	    rl.rlim_cur == RLIM_INFINITY)
		return 0;
	if (open + need + CPR_FD_HEADROOM <= rl.rlim_cur)
		return 0;
	return cpr_err(-EMFILE,
		       "%s; with %d open and %d for the VM and the handoff, RLIMIT_NOFILE's soft limit %llu is too low (hard %llu): raise it first (setrlimit, ulimit -n)",
		       what, open, CPR_FD_HEADROOM,
		       (unsigned long long)rl.rlim_cur,
		       (unsigned long long)rl.rlim_max);
}
