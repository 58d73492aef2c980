/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The vfio_cpr_mdev probe (selftests/vfio_cpr/mdev/vfio_cpr_mdev.c, a test
 * kernel module loaded in the VM tier): an emulated-IOMMU mdev that shows
 * what the kernel keeps behind a VFIO container and a KVM-VFIO device.
 *
 *  - type1 DMA: attached to a container, it pins a page by IOVA with
 *    vfio_pin_pages(), which makes type1 read the page through the user
 *    address it holds for the mapping.  After VFIO_DMA_MAP_FLAG_VADDR that
 *    must be the new address; a real IOMMU domain never reads it again,
 *    so only a pinning device can tell.
 *  - KVM-VFIO: whether vfio gave the device a KVM when it was opened
 *    (KVM_DEV_VFIO_FILE_ADD of its group first) and which process made
 *    that VM (kvm->userspace_pid).
 *
 * type1 refuses VFIO_DMA_MAP_FLAG_VADDR / VFIO_DMA_UNMAP_FLAG_VADDR while
 * an emulated-IOMMU group is in the container, so cpr_mdev_probe() attaches
 * the mdev's group only for the probe and detaches it again.
 *
 * The guest's /init (selftests/vfio_cpr/vmtest-init.sh) makes one instance
 * and exports its UUID as VFIO_CPR_PROBE_MDEV (empty if it could not).
 *
 * BAR0 of the device (little-endian, VFIO region 0, 4 KiB):
 *   0x00  IOVA: writing 8 bytes pins the page holding it, copies the 64
 *         bytes from there (fewer at the page's end, the rest 0) to 0x40
 *         and unpins; reads back the last IOVA written
 *   0x08  s64 result of that pin: 0 or -errno (-ENODATA: nothing probed
 *         since the device was opened)
 *   0x10  1 if the device was opened with a KVM, else 0
 *   0x18  that VM's creator pid (kvm->userspace_pid), 0 if none
 *   0x40..0x7f  the bytes the last pin read
 */
#ifndef VFIO_CPR_MDEV_PROBE_H
#define VFIO_CPR_MDEV_PROBE_H

#include <linux/types.h>
#include <stdbool.h>

/* The parent and its one type under /sys/class/mdev_bus. */
#define CPR_MDEV_PARENT		"vfio_cpr_mdev"
#define CPR_MDEV_TYPE		"vfio_cpr_mdev-1"

/* BAR0 registers. */
#define CPR_MDEV_REG_IOVA	0x00
#define CPR_MDEV_REG_PIN_RET	0x08
#define CPR_MDEV_REG_KVM	0x10
#define CPR_MDEV_REG_KVM_PID	0x18
#define CPR_MDEV_REG_DATA	0x40
#define CPR_MDEV_DATA_LEN	64
#define CPR_MDEV_REGS_LEN	(CPR_MDEV_REG_DATA + CPR_MDEV_DATA_LEN)

struct cpr_mdev_probe {
	int pin_ret;			/* vfio_pin_pages() in the module: 0 or -errno */
	__u8 data[CPR_MDEV_DATA_LEN];	/* the bytes at the IOVA (if pin_ret is 0) */
	bool kvm;			/* opened with a KVM (KVM-VFIO gave vfio the VM) */
	__s32 kvm_pid;			/* that VM's creator, 0 without one */
};

/*
 * Open /dev/vfio/<group> of the mdev @uuid (from /sys/bus/mdev/devices/
 * <uuid>/iommu_group), O_RDWR | O_CLOEXEC.  A malformed @uuid is refused
 * (-EINVAL) before any path is built.  Returns the fd or -errno.
 */
int cpr_mdev_group_open(const char *uuid);

/*
 * One probe through the group @group_fd (from cpr_mdev_group_open()) of the
 * mdev @uuid: VFIO_GROUP_SET_CONTAINER to @container_fd (which must have
 * its IOMMU set, and no vaddr invalidated), VFIO_GROUP_GET_DEVICE_FD(@uuid)
 * - the device is opened here, so a KVM-VFIO device the group was added to
 * before is what it reports -, @iova written to BAR0, the registers read
 * back into *@out, the device fd closed, VFIO_GROUP_UNSET_CONTAINER.
 *
 * Returns 0 whatever the pin gave (see out->pin_ret), or -errno when a step
 * failed (*@out untouched then).  Either way the device is closed and the
 * group out of the container when it returns - unless that last
 * VFIO_GROUP_UNSET_CONTAINER itself failed, which is reported.
 */
int cpr_mdev_probe(int group_fd, int container_fd, const char *uuid,
		   __u64 iova, struct cpr_mdev_probe *out);

#endif /* VFIO_CPR_MDEV_PROBE_H */
