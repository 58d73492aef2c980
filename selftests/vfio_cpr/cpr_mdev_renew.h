/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A fresh mdev instance under the same UUID, for the tests that enable MSI
 * on the mtty sample: the mtty of older kernels (6.1) enables MSI once per
 * instance - a disable keeps its eventfd pointer and it ignores every later
 * enable (6.12 resets it on close).
 */
#ifndef VFIO_CPR_MDEV_RENEW_H
#define VFIO_CPR_MDEV_RENEW_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Write @val into the sysfs file @path: 0 or -errno. */
static inline int cpr_test_sysfs_write(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	close(fd);
	return n == (ssize_t)strlen(val) ? 0 : (n < 0 ? -errno : -EIO);
}

/*
 * Remove mdev @uuid and create an instance of the same type under the same
 * UUID; wait (a little) for its IOMMU group.  The previous test's device
 * helper may still be closing the device: its removal is retried a little.
 * 0 or -errno.
 */
static inline int cpr_test_renew_mdev(const char *uuid)
{
	char path[PATH_MAX], type[PATH_MAX], create[PATH_MAX + 8];
	int i, ret;

	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/mdev_type", uuid);
	if (!realpath(path, type))
		return -errno;
	snprintf(create, sizeof(create), "%s/create", type);
	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/remove", uuid);
	for (i = 0; i < 200; i++) {
		ret = cpr_test_sysfs_write(path, "1");
		if (ret != -EBUSY)
			break;
		usleep(10000);
	}
	if (!ret)
		ret = cpr_test_sysfs_write(create, uuid);
	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/iommu_group", uuid);
	for (i = 0; !ret && access(path, F_OK) && i < 200; i++)
		usleep(10000);
	return ret ? ret : access(path, F_OK) ? -ENOENT : 0;
}

#endif /* VFIO_CPR_MDEV_RENEW_H */
