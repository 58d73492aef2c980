/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Small helpers the handoff, the vectors, the socket transfer and the
 * device helper share: the clock their deadlines and timestamps read, and
 * how many fds this process has open and may still open.
 */
#ifndef VFIO_CPR_FD_H
#define VFIO_CPR_FD_H

#include <linux/types.h>

/* Fds a VMM needs beyond its vectors' (VM, vCPUs, KVM-VFIO, handoff). */
#define CPR_FD_HEADROOM		32

/* CLOCK_MONOTONIC in nanoseconds. */
__u64 cpr_now_ns(void);

/* Number of fds open in this process (from /proc/self/fd), or -errno. */
int cpr_open_fds(void);

/*
 * Whether @need more fds fit under RLIMIT_NOFILE's soft limit beside the
 * open ones and CPR_FD_HEADROOM: 0, or -EMFILE with a message that starts
 * with @what and names the limit and the counts.
 */
int cpr_fd_room(unsigned long long need, const char *what);

#endif /* VFIO_CPR_FD_H */
