// SPDX-License-Identifier: GPL-2.0-only
/*
 * DMA mappings of a VFIO device, kept across a CPR handoff: through the
 * type1 IOMMU of the group interface's container here, through the IOAS
 * of the cdev interface in vfio_cdev.c.  A type1 mapping survives the
 * exec by its IOVA; the predecessor invalidates its address before the
 * exec, the successor gives its own after (VFIO_UPDATE_VADDR).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <linux/types.h>
#include <linux/vfio.h>
#include <sys/ioctl.h>

#include "vfio_cpr/log.h"
#include "vfio_cpr/vfio.h"

#include "internal.h"

int cpr_vfio_dma_map_memfd(struct cpr_vfio_dev *d, __u64 iova, void *vaddr,
			   int memfd, __u64 offset, __u64 size)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (__u64)(unsigned long)vaddr,
		.iova = iova,
		.size = size,
	};

	if (d->iface == CPR_VFIO_IFACE_CDEV)
		return cpr_vfio_cdev_dma_map(d, iova, vaddr, memfd, offset, size);
	if (ioctl(d->container_fd, VFIO_IOMMU_MAP_DMA, &map))
		return cpr_err(-errno,
			       "%s: VFIO_IOMMU_MAP_DMA iova 0x%llx size 0x%llx vaddr %p",
			       d->name, (unsigned long long)iova,
			       (unsigned long long)size, vaddr);
	return 0;
}

static int dma_unmap(struct cpr_vfio_dev *d, __u64 iova, __u64 size,
		     __u32 flags, const char *what)
{
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap),
		.flags = flags,
		.iova = iova,
		.size = size,
	};

	if (ioctl(d->container_fd, VFIO_IOMMU_UNMAP_DMA, &unmap))
		return cpr_err(-errno, "%s: VFIO_IOMMU_UNMAP_DMA%s iova 0x%llx size 0x%llx",
			       d->name, what, (unsigned long long)iova,
			       (unsigned long long)size);
	if (unmap.size != size)
		return cpr_err(-ENOENT,
			       "%s: VFIO_IOMMU_UNMAP_DMA%s iova 0x%llx: %llu of %llu bytes were mapped",
			       d->name, what, (unsigned long long)iova,
			       (unsigned long long)unmap.size,
			       (unsigned long long)size);
	return 0;
}

int cpr_vfio_dma_map(struct cpr_vfio_dev *d, __u64 iova, void *vaddr,
		     __u64 size)
{
	return cpr_vfio_dma_map_memfd(d, iova, vaddr, -1, 0, size);
}

int cpr_vfio_dma_unmap(struct cpr_vfio_dev *d, __u64 iova, __u64 size)
{
	if (d->iface == CPR_VFIO_IFACE_CDEV)
		return cpr_vfio_cdev_dma_unmap(d, iova, size);
	return dma_unmap(d, iova, size, 0, "");
}

static int check_update_vaddr(struct cpr_vfio_dev *d, const char *what)
{
	int ret = ioctl(d->container_fd, VFIO_CHECK_EXTENSION,
			VFIO_UPDATE_VADDR);

	if (ret < 0)
		return cpr_err(-errno, "%s: %s: VFIO_CHECK_EXTENSION VFIO_UPDATE_VADDR",
			       d->name, what);
	if (!ret)
		return cpr_err(-EOPNOTSUPP,
			       "%s: %s: the container lacks VFIO_UPDATE_VADDR (old kernel, or an mdev in it)",
			       d->name, what);
	return 0;
}

int cpr_vfio_dma_unmap_vaddr(struct cpr_vfio_dev *d, __u64 iova, __u64 size)
{
	int ret;

	if (d->iface == CPR_VFIO_IFACE_CDEV)
		return 0;	/* the IOAS holds the pages, not an address */
	ret = check_update_vaddr(d, "invalidating a DMA vaddr");

	return ret ? ret : dma_unmap(d, iova, size, VFIO_DMA_UNMAP_FLAG_VADDR,
				     " FLAG_VADDR");
}

int cpr_vfio_dma_update_vaddr(struct cpr_vfio_dev *d, __u64 iova,
			      void *vaddr, __u64 size)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_VADDR,	/* no READ/WRITE here */
		.vaddr = (__u64)(unsigned long)vaddr,
		.iova = iova,
		.size = size,
	};
	int ret;

	if (d->iface == CPR_VFIO_IFACE_CDEV)
		return cpr_vfio_cdev_change_process(d);
	ret = check_update_vaddr(d, "updating a DMA vaddr");
	if (ret)
		return ret;
	if (ioctl(d->container_fd, VFIO_IOMMU_MAP_DMA, &map))
		return cpr_err(-errno,
			       "%s: VFIO_IOMMU_MAP_DMA FLAG_VADDR iova 0x%llx size 0x%llx new vaddr %p",
			       d->name, (unsigned long long)iova,
			       (unsigned long long)size, vaddr);
	return 0;
}
