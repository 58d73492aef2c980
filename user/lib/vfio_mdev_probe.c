// SPDX-License-Identifier: GPL-2.0-only
/*
 * The vfio_cpr_mdev probe (see vfio_cpr/mdev_probe.h): its group opened by
 * UUID, and one probe - attach, open, write the IOVA, read the registers,
 * close, detach - that leaves nothing attached behind it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/types.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vfio_cpr/log.h"
#include "vfio_cpr/mdev_probe.h"
#include "vfio_cpr/vfio.h"

#define UUID_LEN	36

/*
 * @uuid is an mdev UUID: vfio.c's name check (a PCI address or a UUID),
 * narrowed to UUIDs by length (a PCI address has 12 characters).
 */
static int check_uuid(const char *uuid, const char *what)
{
	if (!uuid || strnlen(uuid, UUID_LEN + 1) != UUID_LEN)
		return cpr_err(-EINVAL, "%s: mdev UUID '%.*s': not 36 characters",
			       what, UUID_LEN + 1, uuid ? uuid : "(null)");
	return cpr_vfio_iface_supported(uuid, CPR_VFIO_IFACE_GROUP);
}

int cpr_mdev_group_open(const char *uuid)
{
	char path[96], link[PATH_MAX];
	const char *base;
	char *end;
	long group;
	ssize_t n;
	int fd, ret;

	ret = check_uuid(uuid, "open mdev probe group");
	if (ret)
		return ret;
	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/iommu_group",
		 uuid);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return cpr_err(-errno, "%s: reading %s (no such %s instance?)",
			       uuid, path, CPR_MDEV_TYPE);
	link[n] = '\0';
	base = strrchr(link, '/');
	base = base ? base + 1 : link;
	errno = 0;
	group = strtol(base, &end, 10);
	if (*base < '0' || *base > '9' || *end || errno || group > INT_MAX)
		return cpr_err(-EINVAL, "%s: %s -> '%s' does not end in a group number",
			       uuid, path, link);
	snprintf(path, sizeof(path), "/dev/vfio/%ld", group);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return cpr_err(-errno, "%s: opening group %s", uuid, path);
	return fd;
}

/* BAR0's offset in the device fd, once it is known to hold the registers. */
static int bar0_offset(int device_fd, const char *uuid, __u64 *offset)
{
	struct vfio_region_info info = {
		.argsz = sizeof(info),
		.index = VFIO_PCI_BAR0_REGION_INDEX,
	};
	const __u32 rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;

	if (ioctl(device_fd, VFIO_DEVICE_GET_REGION_INFO, &info))
		return cpr_err(-errno, "%s: VFIO_DEVICE_GET_REGION_INFO BAR0 (device fd %d)",
			       uuid, device_fd);
	if (info.size < CPR_MDEV_REGS_LEN || (info.flags & rw) != rw)
		return cpr_err(-ENODEV,
			       "%s: BAR0 of %llu bytes, flags 0x%x: not a %s instance",
			       uuid, (unsigned long long)info.size, info.flags,
			       CPR_MDEV_TYPE);
	*offset = info.offset;
	return 0;
}

static __u64 reg64(const __u8 *regs, unsigned int off)
{
	__u64 v;

	memcpy(&v, regs + off, sizeof(v));
	return le64toh(v);
}

/* Write @iova to the IOVA register and read the registers back. */
static int probe_device(int device_fd, const char *uuid, __u64 iova,
			struct cpr_mdev_probe *out)
{
	__u8 regs[CPR_MDEV_REGS_LEN];
	__u64 off = 0, le_iova = htole64(iova);
	__s64 pin_ret;
	ssize_t n;
	int ret;

	ret = bar0_offset(device_fd, uuid, &off);
	if (ret)
		return ret;
	n = pwrite(device_fd, &le_iova, sizeof(le_iova), off + CPR_MDEV_REG_IOVA);
	if (n != (ssize_t)sizeof(le_iova))
		return cpr_err(n < 0 ? -errno : -EIO,
			       "%s: writing IOVA 0x%llx to BAR0 (device fd %d) gave %zd",
			       uuid, (unsigned long long)iova, device_fd, n);
	n = pread(device_fd, regs, sizeof(regs), off);
	if (n != (ssize_t)sizeof(regs))
		return cpr_err(n < 0 ? -errno : -EIO,
			       "%s: reading %zu bytes of BAR0 (device fd %d) gave %zd",
			       uuid, sizeof(regs), device_fd, n);
	if (reg64(regs, CPR_MDEV_REG_IOVA) != iova)
		return cpr_err(-EIO, "%s: BAR0 holds IOVA 0x%llx after 0x%llx was written",
			       uuid,
			       (unsigned long long)reg64(regs, CPR_MDEV_REG_IOVA),
			       (unsigned long long)iova);
	pin_ret = (__s64)reg64(regs, CPR_MDEV_REG_PIN_RET);
	if (pin_ret > 0 || pin_ret < -4095)
		return cpr_err(-EIO, "%s: pin result %lld is neither 0 nor -errno",
			       uuid, (long long)pin_ret);
	out->pin_ret = (int)pin_ret;
	memcpy(out->data, regs + CPR_MDEV_REG_DATA, sizeof(out->data));
	out->kvm = reg64(regs, CPR_MDEV_REG_KVM) != 0;
	out->kvm_pid = (__s32)reg64(regs, CPR_MDEV_REG_KVM_PID);
	return 0;
}

int cpr_mdev_probe(int group_fd, int container_fd, const char *uuid,
		   __u64 iova, struct cpr_mdev_probe *out)
{
	struct cpr_mdev_probe got;
	int device_fd, ret;

	if (!out || group_fd < 0 || container_fd < 0)
		return cpr_err(-EINVAL, "mdev probe: group fd %d, container fd %d, result %p",
			       group_fd, container_fd, (void *)out);
	ret = check_uuid(uuid, "mdev probe");
	if (ret)
		return ret;

	if (ioctl(group_fd, VFIO_GROUP_SET_CONTAINER, &container_fd))
		return cpr_err(-errno, "%s: VFIO_GROUP_SET_CONTAINER group fd %d container fd %d",
			       uuid, group_fd, container_fd);
	device_fd = ioctl(group_fd, VFIO_GROUP_GET_DEVICE_FD, uuid);
	if (device_fd < 0) {
		ret = cpr_err(-errno, "%s: VFIO_GROUP_GET_DEVICE_FD on group fd %d",
			      uuid, group_fd);
	} else {
		ret = probe_device(device_fd, uuid, iova, &got);
		/* The group cannot leave the container while this is open. */
		close(device_fd);
	}
	if (ioctl(group_fd, VFIO_GROUP_UNSET_CONTAINER)) {
		int err = cpr_err(-errno, "%s: VFIO_GROUP_UNSET_CONTAINER group fd %d",
				  uuid, group_fd);

		if (!ret)
			ret = err;
	}
	if (!ret)
		*out = got;
	return ret;
}
