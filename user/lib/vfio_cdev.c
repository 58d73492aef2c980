// SPDX-License-Identifier: GPL-2.0-only
/*
 * The vfio cdev interface (Linux 6.6+): the device's own character device
 * /dev/vfio/devices/vfioN, bound to an iommufd (/dev/iommu) and attached to
 * one IOAS, instead of a container and a group.
 *
 * A fresh open binds and attaches (three setup ioctls) and saves the
 * device and iommufd fds plus a "<dev>_iommufd" section (IOAS and device
 * ids, how DMA was mapped).  The successor reuses both fds as they are: the
 * binding and the attachment belong to the open files, not the process.
 *
 * DMA: where the kernel has IOMMU_IOAS_MAP_FILE (6.13+) the memfd itself
 * is mapped, and after exec IOMMU_IOAS_CHANGE_PROCESS moves the pinned
 * page accounting to the successor.  Older kernels only map by address;
 * their pinned pages stay mapped across exec (the memfd keeps them) and
 * stay accounted to the predecessor, which the successor reports.
 *
 * Built against uapi headers older than 6.6 (no VFIO_DEVICE_BIND_IOMMUFD
 * or no linux/iommufd.h), every entry point fails with -EOPNOTSUPP saying
 * so: there is no silent fallback to the group interface.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/types.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vfio_cpr/log.h"
#include "vfio_cpr/state.h"
#include "vfio_cpr/vfio.h"

#include "internal.h"

#if defined(VFIO_DEVICE_BIND_IOMMUFD) && defined(__has_include)
#if __has_include("linux/iommufd.h")
#include <linux/iommufd.h>
#define CPR_HAVE_VFIO_CDEV 1
#endif
#endif

#define IOMMUFD_PATH	"/dev/iommu"
#define CDEV_DIR	"/dev/vfio/devices"

/* Layout of the "<dev>_iommufd" section. */
#define CDEV_SECTION_VERSION	1
#define CDEV_DMA_BY_FILE	0x1u	/* IOMMU_IOAS_MAP_FILE mappings */

struct cdev_section {
	__u32 version;
	__u32 ioas_id;
	__u32 devid;
	__u32 flags;
};

bool cpr_vfio_cdev_built(void)
{
#ifdef CPR_HAVE_VFIO_CDEV
	return true;
#else
	return false;
#endif
}

static int section_name(char *buf, size_t size, const char *dev)
{
	int n = snprintf(buf, size, "%s_%s", dev, CPR_VFIO_FD_IOMMUFD);

	if (n < 0 || (size_t)n >= size)
		return cpr_err(-ENAMETOOLONG, "%s: iommufd section name too long",
			       dev);
	return 0;
}

void cpr_vfio_cdev_forget(struct cpr_vfio_dev *d)
{
	char name[CPR_NAME_MAX + 1];

	if (!section_name(name, sizeof(name), d->name))
		cpr_state_delete_section(d->st, name);
}

int cpr_vfio_cdev_load(struct cpr_vfio_dev *d)
{
	char name[CPR_NAME_MAX + 1];
	const struct cdev_section *s;
	size_t len;
	int ret;

	ret = section_name(name, sizeof(name), d->name);
	if (ret)
		return ret;
	s = cpr_state_get_section(d->st, name, &len);
	if (!s)
		return cpr_err(-ENOENT, "%s: the CPR state has its iommufd but no '%s' section",
			       d->name, name);
	if (len != sizeof(*s) || s->version != CDEV_SECTION_VERSION ||
	    (s->flags & ~CDEV_DMA_BY_FILE))
		return cpr_err(-EBADMSG,
			       "%s: section '%s' (%zu bytes) is not iommufd state v%d",
			       d->name, name, len, CDEV_SECTION_VERSION);
	d->ioas_id = s->ioas_id;
	d->devid = s->devid;
	d->dma_by_file = s->flags & CDEV_DMA_BY_FILE;
	return 0;
}

/*
 * The cdev name ("vfioN") from /sys/bus/{pci,mdev}/devices/NAME/vfio-dev/;
 * @d->name was validated as a BDF or UUID, so the path stays in sysfs.
 */
static int cdev_node(const char *dev, bool is_mdev, char *buf, size_t size)
{
	char path[128];
	struct dirent *e;
	int ret = -ENOENT;
	DIR *dir;

	snprintf(path, sizeof(path), "/sys/bus/%s/devices/%s/vfio-dev",
		 is_mdev ? "mdev" : "pci", dev);
	dir = opendir(path);
	if (!dir)
		return cpr_err(-errno,
			       "%s: no %s (kernel without CONFIG_VFIO_DEVICE_CDEV, or the device is not bound to a vfio driver)",
			       dev, path);
	while ((e = readdir(dir))) {
		if (strncmp(e->d_name, "vfio", 4) || !e->d_name[4] ||
		    strspn(e->d_name + 4, "0123456789") != strlen(e->d_name + 4))
			continue;
		if ((size_t)snprintf(buf, size, "%s/%s", CDEV_DIR, e->d_name) < size)
			ret = 0;
		break;
	}
	closedir(dir);
	if (ret)
		return cpr_err(ret, "%s: %s names no vfioN character device", dev,
			       path);
	return 0;
}

int cpr_vfio_cdev_supported(const char *name, bool is_mdev)
{
	char node[64];

	if (!cpr_vfio_cdev_built())
		return cpr_err(-EOPNOTSUPP,
			       "%s: vfio cdev/iommufd unavailable: built against uapi headers without VFIO_DEVICE_BIND_IOMMUFD or linux/iommufd.h (older than 6.6); rebuild with KHDR_INCLUDES=-isystem <newer headers>",
			       name);
	if (access(IOMMUFD_PATH, R_OK | W_OK))
		return cpr_err(-EOPNOTSUPP,
			       "%s: vfio cdev/iommufd unavailable: %s: %s (kernel without CONFIG_IOMMUFD?)",
			       name, IOMMUFD_PATH, strerror(errno));
	if (cdev_node(name, is_mdev, node, sizeof(node)))
		return cpr_err(-EOPNOTSUPP, "%s: vfio cdev/iommufd unavailable: %s",
			       name, cpr_last_error());
	if (access(node, R_OK | W_OK))
		return cpr_err(-EOPNOTSUPP, "%s: vfio cdev/iommufd unavailable: %s: %s",
			       name, node, strerror(errno));
	return 0;
}

#ifdef CPR_HAVE_VFIO_CDEV

static int save_section(struct cpr_vfio_dev *d)
{
	struct cdev_section s = {
		.version = CDEV_SECTION_VERSION,
		.ioas_id = d->ioas_id,
		.devid = d->devid,
		.flags = d->dma_by_file ? CDEV_DMA_BY_FILE : 0,
	};
	char name[CPR_NAME_MAX + 1];
	int ret = section_name(name, sizeof(name), d->name);

	return ret ? ret : cpr_state_set_section(d->st, name, &s, sizeof(s));
}

int cpr_vfio_cdev_open_fresh(struct cpr_vfio_dev *d)
{
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct vfio_device_attach_iommufd_pt attach = {
		.argsz = sizeof(attach),
	};
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	char node[64];
	int ret;

	ret = cdev_node(d->name, d->is_mdev, node, sizeof(node));
	if (ret)
		return ret;
	d->device_fd = open(node, O_RDWR | O_CLOEXEC);
	if (d->device_fd < 0)
		return cpr_err(-errno, "%s: opening %s", d->name, node);
	d->iommufd = open(IOMMUFD_PATH, O_RDWR | O_CLOEXEC);
	if (d->iommufd < 0)
		return cpr_err(-errno, "%s: opening %s", d->name, IOMMUFD_PATH);

	d->setup_ioctls += 3;	/* BIND_IOMMUFD, IOAS_ALLOC, ATTACH_PT */
	bind.iommufd = d->iommufd;
	if (ioctl(d->device_fd, VFIO_DEVICE_BIND_IOMMUFD, &bind))
		return cpr_err(-errno, "%s: VFIO_DEVICE_BIND_IOMMUFD %s to iommufd %d",
			       d->name, node, d->iommufd);
	d->devid = bind.out_devid;
	if (ioctl(d->iommufd, IOMMU_IOAS_ALLOC, &alloc))
		return cpr_err(-errno, "%s: IOMMU_IOAS_ALLOC on iommufd %d", d->name,
			       d->iommufd);
	d->ioas_id = alloc.out_ioas_id;
	attach.pt_id = d->ioas_id;
	if (ioctl(d->device_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach))
		return cpr_err(-errno, "%s: VFIO_DEVICE_ATTACH_IOMMUFD_PT IOAS %u (devid %u)",
			       d->name, d->ioas_id, d->devid);
	return save_section(d);
}

#ifdef IOMMU_IOAS_MAP_FILE
/* 0: mapped; -ENOTTY: kernel without IOMMU_IOAS_MAP_FILE; else error. */
static int map_file(struct cpr_vfio_dev *d, __u64 iova, int fd, __u64 off,
		    __u64 size)
{
	struct iommu_ioas_map_file map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = d->ioas_id,
		.fd = fd,
		.start = off,
		.length = size,
		.iova = iova,
	};

	if (!ioctl(d->iommufd, IOMMU_IOAS_MAP_FILE, &map))
		return 0;
	if (errno == ENOTTY)
		return -ENOTTY;
	return cpr_err(-errno,
		       "%s: IOMMU_IOAS_MAP_FILE memfd %d offset 0x%llx iova 0x%llx size 0x%llx (IOAS %u)",
		       d->name, fd, (unsigned long long)off,
		       (unsigned long long)iova, (unsigned long long)size,
		       d->ioas_id);
}
#else
static int map_file(struct cpr_vfio_dev *d, __u64 iova, int fd, __u64 off,
		    __u64 size)
{
	(void)d;
	(void)iova;
	(void)fd;
	(void)off;
	(void)size;
	return -ENOTTY;
}
#endif

int cpr_vfio_cdev_dma_map(struct cpr_vfio_dev *d, __u64 iova, void *vaddr,
			  int fd, __u64 off, __u64 size)
{
	struct iommu_ioas_map map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = d->ioas_id,
		.user_va = (__u64)(unsigned long)vaddr,
		.length = size,
		.iova = iova,
	};
	int ret = fd >= 0 ? map_file(d, iova, fd, off, size) : -ENOTTY;

	if (ret != -ENOTTY) {
		if (!ret && !d->dma_by_file) {
			d->dma_by_file = true;
			ret = save_section(d);
		}
		return ret;
	}
	if (d->dma_by_file)
		return cpr_err(-EINVAL,
			       "%s: IOAS %u holds IOMMU_IOAS_MAP_FILE mappings: map iova 0x%llx by file too",
			       d->name, d->ioas_id, (unsigned long long)iova);
	if (ioctl(d->iommufd, IOMMU_IOAS_MAP, &map))
		return cpr_err(-errno,
			       "%s: IOMMU_IOAS_MAP iova 0x%llx size 0x%llx vaddr %p (IOAS %u)",
			       d->name, (unsigned long long)iova,
			       (unsigned long long)size, vaddr, d->ioas_id);
	return 0;
}

int cpr_vfio_cdev_dma_unmap(struct cpr_vfio_dev *d, __u64 iova, __u64 size)
{
	struct iommu_ioas_unmap unmap = {
		.size = sizeof(unmap),
		.ioas_id = d->ioas_id,
		.iova = iova,
		.length = size,
	};

	if (ioctl(d->iommufd, IOMMU_IOAS_UNMAP, &unmap))
		return cpr_err(-errno, "%s: IOMMU_IOAS_UNMAP iova 0x%llx size 0x%llx (IOAS %u)",
			       d->name, (unsigned long long)iova,
			       (unsigned long long)size, d->ioas_id);
	if (unmap.length != size)
		return cpr_err(-ENOENT,
			       "%s: IOMMU_IOAS_UNMAP iova 0x%llx: %llu of %llu bytes were mapped",
			       d->name, (unsigned long long)iova,
			       (unsigned long long)unmap.length,
			       (unsigned long long)size);
	return 0;
}

int cpr_vfio_cdev_change_process(struct cpr_vfio_dev *d)
{
#ifdef IOMMU_IOAS_CHANGE_PROCESS
	struct iommu_ioas_change_process cp = { .size = sizeof(cp) };

	if (d->dma_by_file) {
		if (ioctl(d->iommufd, IOMMU_IOAS_CHANGE_PROCESS, &cp))
			return cpr_err(-errno,
				       "%s: IOMMU_IOAS_CHANGE_PROCESS on iommufd %d after exec",
				       d->name, d->iommufd);
		return 0;
	}
#endif
	/* Mapped by address: nothing can move; the memfd keeps the pages. */
	cpr_info("%s: DMA mapped by address (kernel or headers without IOMMU_IOAS_MAP_FILE): pinned pages stay accounted to the predecessor",
		 d->name);
	return 0;
}

#else /* !CPR_HAVE_VFIO_CDEV */

static int not_built(const struct cpr_vfio_dev *d)
{
	return cpr_err(-EOPNOTSUPP,
		       "%s: vfio cdev/iommufd unavailable: built against uapi headers without VFIO_DEVICE_BIND_IOMMUFD or linux/iommufd.h",
		       d->name);
}

int cpr_vfio_cdev_open_fresh(struct cpr_vfio_dev *d)
{
	return not_built(d);
}

int cpr_vfio_cdev_dma_map(struct cpr_vfio_dev *d, __u64 iova, void *vaddr,
			  int fd, __u64 off, __u64 size)
{
	(void)iova;
	(void)vaddr;
	(void)fd;
	(void)off;
	(void)size;
	return not_built(d);
}

int cpr_vfio_cdev_dma_unmap(struct cpr_vfio_dev *d, __u64 iova, __u64 size)
{
	(void)iova;
	(void)size;
	return not_built(d);
}

int cpr_vfio_cdev_change_process(struct cpr_vfio_dev *d)
{
	return not_built(d);
}

#endif /* CPR_HAVE_VFIO_CDEV */
