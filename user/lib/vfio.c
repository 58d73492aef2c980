// SPDX-License-Identifier: GPL-2.0-only
/*
 * VFIO devices (vfio-pci by BDF, mediated devices by UUID) through the
 * legacy container/group interface and the type1 IOMMU, or through the
 * device cdev and iommufd (vfio_cdev.c), kept across a CPR handoff.
 *
 * A fresh open does the whole dance (container, API and extension checks,
 * group, viability, SET_CONTAINER, SET_IOMMU, GET_DEVICE_FD) and saves the
 * three fds in the CPR state; a successor finds them there and does none
 * of it.  Then the device describes itself (vfio_dev.c: device, region and
 * IRQ info, which both sides query) and gets its driver.  Interrupts are
 * in vfio_irq.c, DMA in vfio_dma.c.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/types.h>
#include <linux/vfio.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vfio_cpr/log.h"
#include "vfio_cpr/state.h"
#include "vfio_cpr/vectors.h"
#include "vfio_cpr/vfio.h"

#include "internal.h"

#define VFIO_CONTAINER_PATH	"/dev/vfio/vfio"

/* ---- Names ---- */

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* @s matches @pat, where 'x' stands for one hex digit. */
static bool match_hex_pattern(const char *s, const char *pat)
{
	size_t i;

	for (i = 0; pat[i]; i++) {
		if (pat[i] == 'x' ? hex_val(s[i]) < 0 : s[i] != pat[i])
			return false;
	}
	return s[i] == '\0';
}

/* "DDDD:BB:DD.F": device 00-1f, function 0-7. */
static bool name_is_bdf(const char *s)
{
	if (!match_hex_pattern(s, "xxxx:xx:xx.x"))
		return false;
	return hex_val(s[8]) * 16 + hex_val(s[9]) <= 0x1f && hex_val(s[11]) <= 7;
}

static bool name_is_uuid(const char *s)
{
	return match_hex_pattern(s, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx");
}

static int fd_name(char *buf, size_t size, const char *dev, const char *what)
{
	int n = snprintf(buf, size, "%s_%s", dev, what);

	if (n < 0 || (size_t)n >= size)
		return cpr_err(-ENAMETOOLONG, "%s: fd name for '%s' too long", dev,
			       what);
	return 0;
}

int cpr_vfio_find_fd(const struct cpr_vfio_dev *d, const char *what)
{
	char name[CPR_NAME_MAX + 1];

	if (fd_name(name, sizeof(name), d->name, what))
		return -1;
	return cpr_state_find_fd(d->st, name, 0);
}

static int save_dev_fd(struct cpr_vfio_dev *d, const char *what, int fd)
{
	char name[CPR_NAME_MAX + 1];
	int ret;

	ret = fd_name(name, sizeof(name), d->name, what);
	if (ret)
		return ret;
	return cpr_state_save_fd(d->st, name, 0, fd);
}

/* Close *@fd and delete its entry if the state still maps it to *@fd. */
static void release_dev_fd(struct cpr_vfio_dev *d, const char *what, int *fd)
{
	char name[CPR_NAME_MAX + 1];

	if (*fd < 0)
		return;
	if (!fd_name(name, sizeof(name), d->name, what) &&
	    cpr_state_find_fd(d->st, name, 0) == *fd)
		cpr_state_delete_fd(d->st, name, 0);
	close(*fd);
	*fd = -1;
}

/* The device, its group and container or its iommufd (and section). */
static void release_dev_fds(struct cpr_vfio_dev *d)
{
	release_dev_fd(d, CPR_VFIO_FD_DEVICE, &d->device_fd);
	release_dev_fd(d, CPR_VFIO_FD_GROUP, &d->group_fd);
	release_dev_fd(d, CPR_VFIO_FD_CONTAINER, &d->container_fd);
	if (d->iface == CPR_VFIO_IFACE_CDEV) {
		if (d->iommufd >= 0)
			cpr_vfio_cdev_forget(d);
		release_dev_fd(d, CPR_VFIO_FD_IOMMUFD, &d->iommufd);
	}
}

/* ---- Opening ---- */

/*
 * The group number from /sys/bus/{pci,mdev}/devices/NAME/iommu_group.
 * Unless @report, failures only return -errno (a reused device does not
 * need sysfs: its group is already open).
 */
static int read_group_id(struct cpr_vfio_dev *d, bool report)
{
	const char *bus = d->is_mdev ? "mdev" : "pci";
	char path[128], link[PATH_MAX];
	const char *base;
	long long id = 0;
	ssize_t n;
	size_t i;

	snprintf(path, sizeof(path), "/sys/bus/%s/devices/%s", bus, d->name);
	if (access(path, F_OK))
		return report ? cpr_err(-errno, "%s: no such %s device (%s)", d->name,
					d->is_mdev ? "mediated" : "PCI", path) : -errno;
	snprintf(path, sizeof(path), "/sys/bus/%s/devices/%s/iommu_group", bus,
		 d->name);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return report ? cpr_err(-errno,
					"%s: reading %s (no IOMMU group: is an IOMMU on and the device bound to vfio?)",
					d->name, path) : -errno;
	link[n] = '\0';
	base = strrchr(link, '/');
	base = base ? base + 1 : link;
	for (i = 0; base[i] && i < 10; i++) {
		if (base[i] < '0' || base[i] > '9')
			break;
		id = id * 10 + (base[i] - '0');
	}
	if (!i || base[i] || id > INT_MAX)
		return report ? cpr_err(-EINVAL,
					"%s: %s -> '%s' does not end in a group number",
					d->name, path, link) : -EINVAL;
	d->group_id = id;
	return 0;
}

static int open_fresh(struct cpr_vfio_dev *d)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	char path[32];
	int ret;

	d->container_fd = open(VFIO_CONTAINER_PATH, O_RDWR | O_CLOEXEC);
	if (d->container_fd < 0)
		return cpr_err(-errno, "%s: opening %s", d->name,
			       VFIO_CONTAINER_PATH);
	ret = ioctl(d->container_fd, VFIO_GET_API_VERSION);
	if (ret != VFIO_API_VERSION)
		return cpr_err(ret < 0 ? -errno : -EPROTONOSUPPORT,
			       "%s: VFIO_GET_API_VERSION on %s gave %d, want %d",
			       d->name, VFIO_CONTAINER_PATH, ret, VFIO_API_VERSION);
	ret = ioctl(d->container_fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU);
	if (ret <= 0)
		return cpr_err(ret < 0 ? -errno : -EOPNOTSUPP,
			       "%s: VFIO_CHECK_EXTENSION VFIO_TYPE1v2_IOMMU gave %d (is vfio_iommu_type1 loaded?)",
			       d->name, ret);

	snprintf(path, sizeof(path), "/dev/vfio/%d", d->group_id);
	d->group_fd = open(path, O_RDWR | O_CLOEXEC);
	if (d->group_fd < 0)
		return cpr_err(-errno, "%s: opening group %s", d->name, path);
	if (ioctl(d->group_fd, VFIO_GROUP_GET_STATUS, &status))
		return cpr_err(-errno, "%s: VFIO_GROUP_GET_STATUS on %s", d->name,
			       path);
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE))
		return cpr_err(-EBUSY,
			       "%s: group %d is not viable (flags 0x%x): bind every device in it to vfio",
			       d->name, d->group_id, status.flags);
	d->setup_ioctls += 3;	/* SET_CONTAINER, SET_IOMMU, GET_DEVICE_FD */
	if (ioctl(d->group_fd, VFIO_GROUP_SET_CONTAINER, &d->container_fd))
		return cpr_err(-errno, "%s: VFIO_GROUP_SET_CONTAINER group %d container fd %d",
			       d->name, d->group_id, d->container_fd);
	if (ioctl(d->container_fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		return cpr_err(-errno, "%s: VFIO_SET_IOMMU VFIO_TYPE1v2_IOMMU (group %d)",
			       d->name, d->group_id);
	d->device_fd = ioctl(d->group_fd, VFIO_GROUP_GET_DEVICE_FD, d->name);
	if (d->device_fd < 0)
		return cpr_err(-errno, "%s: VFIO_GROUP_GET_DEVICE_FD on group %d",
			       d->name, d->group_id);
	if (fcntl(d->device_fd, F_SETFD, FD_CLOEXEC))
		return cpr_err(-errno, "%s: FD_CLOEXEC on device fd %d", d->name,
			       d->device_fd);

	ret = save_dev_fd(d, CPR_VFIO_FD_CONTAINER, d->container_fd);
	if (!ret)
		ret = save_dev_fd(d, CPR_VFIO_FD_GROUP, d->group_fd);
	if (!ret)
		ret = save_dev_fd(d, CPR_VFIO_FD_DEVICE, d->device_fd);
	return ret;
}

static int reuse_fd(struct cpr_vfio_dev *d, const char *what, int kind,
		    int *fd)
{
	int got;

	*fd = cpr_vfio_find_fd(d, what);
	if (*fd < 0)
		return cpr_err(-ENOENT,
			       "%s: the CPR state has '%s_%s' but no '%s_%s'",
			       d->name, d->name, CPR_VFIO_FD_DEVICE, d->name,
			       what);
	got = cpr_fd_kind_of(*fd);
	if (got != kind)
		return cpr_err(got == -EBADF ? -EBADF : -EBADFD,
			       "%s: inherited '%s_%s' fd %d is %s, not %s",
			       d->name, d->name, what, *fd,
			       got < 0 ? "not open" : cpr_fd_kind_name(got),
			       cpr_fd_kind_name(kind));
	return 0;
}

/* What cpr_vfio_enable_intx() and cpr_vfio_enable_err_req() would find. */
void cpr_vfio_lookup_notifiers(struct cpr_vfio_dev *d)
{
	d->intx_fd = cpr_vfio_find_fd(d, CPR_VFIO_NOTIFY_INTX);
	d->intx_unmask_fd = -1;
	d->intx_unmask_by_ioctl = false;
	if (d->intx_fd >= 0) {
		d->intx_unmask_fd = cpr_vfio_find_fd(d, CPR_VFIO_NOTIFY_UNMASK);
		d->intx_unmask_by_ioctl = d->intx_unmask_fd < 0;
	}
	d->err_fd = cpr_vfio_find_fd(d, CPR_VFIO_NOTIFY_ERR);
	d->req_fd = cpr_vfio_find_fd(d, CPR_VFIO_NOTIFY_REQ);
}

static int open_reused(struct cpr_vfio_dev *d)
{
	int ret;

	ret = reuse_fd(d, CPR_VFIO_FD_DEVICE, CPR_FD_VFIO_DEVICE,
		       &d->device_fd);
	if (ret)
		return ret;
	if (d->iface == CPR_VFIO_IFACE_CDEV) {
		ret = reuse_fd(d, CPR_VFIO_FD_IOMMUFD, CPR_FD_IOMMUFD,
			       &d->iommufd);
		if (!ret)
			ret = cpr_vfio_cdev_load(d);
	} else {
		ret = reuse_fd(d, CPR_VFIO_FD_GROUP, CPR_FD_VFIO_GROUP,
			       &d->group_fd);
		if (!ret)
			ret = reuse_fd(d, CPR_VFIO_FD_CONTAINER,
				       CPR_FD_VFIO_CONTAINER, &d->container_fd);
	}
	if (!ret)
		cpr_vfio_lookup_notifiers(d);
	return ret;
}

static int open_fresh_cdev(struct cpr_vfio_dev *d)
{
	int ret = cpr_vfio_cdev_supported(d->name, d->is_mdev);

	if (!ret)
		ret = cpr_vfio_cdev_open_fresh(d);
	if (!ret)
		ret = save_dev_fd(d, CPR_VFIO_FD_IOMMUFD, d->iommufd);
	if (!ret)
		ret = save_dev_fd(d, CPR_VFIO_FD_DEVICE, d->device_fd);
	return ret;
}

int cpr_vfio_iface_supported(const char *name, enum cpr_vfio_iface iface)
{
	if (!name || strnlen(name, CPR_VFIO_NAME_MAX) >= CPR_VFIO_NAME_MAX ||
	    (!name_is_bdf(name) && !name_is_uuid(name)))
		return cpr_err(-EINVAL,
			       "VFIO device name: not a PCI address DDDD:BB:DD.F nor an mdev UUID");
	if (iface == CPR_VFIO_IFACE_CDEV)
		return cpr_vfio_cdev_supported(name, name_is_uuid(name));
	return 0;
}

const char *cpr_vfio_iface_name(enum cpr_vfio_iface iface)
{
	return iface == CPR_VFIO_IFACE_CDEV ? "cdev" : "group";
}

int cpr_vfio_kvm_file(const struct cpr_vfio_dev *d)
{
	return d->iface == CPR_VFIO_IFACE_CDEV ? d->device_fd : d->group_fd;
}

/* @iface < 0: whatever the state holds on reuse, group when fresh. */
static int vfio_open(struct cpr_state *st, const char *name, int iface,
		     struct cpr_vfio_dev **out)
{
	struct cpr_vfio_dev *d;
	size_t len;
	int ret;

	if (!st || !name || !out)
		return cpr_err(-EINVAL, "open VFIO device: no state, name or result");
	len = strnlen(name, CPR_VFIO_NAME_MAX);
	if (len >= CPR_VFIO_NAME_MAX || (!name_is_bdf(name) && !name_is_uuid(name)))
		return cpr_err(-EINVAL,
			       "VFIO device '%.*s': not a PCI address DDDD:BB:DD.F nor an mdev UUID",
			       (int)(len < 80 ? len : 80), name);

	d = calloc(1, sizeof(*d));
	if (!d)
		return cpr_err(-ENOMEM, "%s: allocating the device", name);
	memcpy(d->name, name, len + 1);
	d->is_mdev = name_is_uuid(name);
	d->st = st;
	d->container_fd = -1;
	d->group_fd = -1;
	d->device_fd = -1;
	d->iommufd = -1;
	d->intx_fd = -1;
	d->intx_unmask_fd = -1;
	d->err_fd = -1;
	d->req_fd = -1;

	d->group_id = -1;
	d->reused = cpr_vfio_find_fd(d, CPR_VFIO_FD_DEVICE) >= 0;
	if (d->reused) {
		d->iface = cpr_vfio_find_fd(d, CPR_VFIO_FD_IOMMUFD) >= 0 ?
			   CPR_VFIO_IFACE_CDEV : CPR_VFIO_IFACE_GROUP;
		read_group_id(d, false);
		if (iface >= 0 && (int)d->iface != iface)
			ret = cpr_err(-EINVAL,
				      "%s: the CPR state holds it through the %s interface, not %s",
				      d->name, cpr_vfio_iface_name(d->iface),
				      cpr_vfio_iface_name(iface));
		else
			ret = open_reused(d);
	} else if (iface == CPR_VFIO_IFACE_CDEV) {
		d->iface = CPR_VFIO_IFACE_CDEV;
		ret = open_fresh_cdev(d);
	} else {
		d->iface = CPR_VFIO_IFACE_GROUP;
		ret = read_group_id(d, true);
		if (!ret)
			ret = open_fresh(d);
	}
	if (!ret)
		ret = cpr_vfio_query_info(d);
	if (!ret)
		d->drv = cpr_vfio_driver_find(d->vendor, d->device);
	if (ret) {
		if (!d->reused)
			release_dev_fds(d);
		free(d);
		return ret;
	}
	*out = d;
	return 0;
}

int cpr_vfio_open(struct cpr_state *st, const char *name,
		  struct cpr_vfio_dev **out)
{
	return vfio_open(st, name, -1, out);
}

int cpr_vfio_take_over(struct cpr_state *st, const char *name,
		       struct cpr_vfio_dev **out)
{
	const size_t suffix = strlen(CPR_VFIO_FD_DEVICE) + 1;
	char held[256] = "", want[CPR_NAME_MAX + 1];
	unsigned int i, n;
	size_t used = 0;
	int ret;

	if (!st || !name || !out)
		return cpr_err(-EINVAL, "take over VFIO device: no state, name or result");
	/* A malformed name never reaches sysfs or the state. */
	ret = cpr_vfio_iface_supported(name, CPR_VFIO_IFACE_GROUP);
	if (ret)
		return ret;
	ret = fd_name(want, sizeof(want), name, CPR_VFIO_FD_DEVICE);
	if (ret)
		return ret;
	if (cpr_state_find_fd(st, want, 0) >= 0)
		return cpr_vfio_open(st, name, out);
	n = cpr_state_nr_fds(st);
	for (i = 0; i < n; i++) {
		const struct cpr_fd_rec *r = cpr_state_fd_at(st, i);
		size_t len = strlen(r->name);

		if (len <= suffix || r->index ||
		    strcmp(r->name + len - suffix + 1, CPR_VFIO_FD_DEVICE) ||
		    r->name[len - suffix] != '_')
			continue;
		used += snprintf(held + used, sizeof(held) - used, "%s%.*s",
				 used ? ", " : "", (int)(len - suffix), r->name);
		if (used >= sizeof(held))
			break;
	}
	return cpr_err(-ENOENT,
		       "%s: the CPR state was saved for another device: it holds %s",
		       name, used ? held : "no VFIO device at all");
}

int cpr_vfio_open_iface(struct cpr_state *st, const char *name,
			enum cpr_vfio_iface iface, struct cpr_vfio_dev **out)
{
	if (iface != CPR_VFIO_IFACE_GROUP && iface != CPR_VFIO_IFACE_CDEV)
		return cpr_err(-EINVAL, "%s: unknown VFIO interface %d",
			       name ? name : "(null)", iface);
	return vfio_open(st, name, iface, out);
}

void cpr_vfio_free(struct cpr_vfio_dev *d, bool release)
{
	if (!d)
		return;
	if (release) {
		release_dev_fds(d);
		if (d->intx_unmask_fd >= 0)
			cpr_notifier_cleanup(d->st, d->name, CPR_VFIO_NOTIFY_UNMASK,
					     0, &d->intx_unmask_fd);
		if (d->intx_fd >= 0)
			cpr_notifier_cleanup(d->st, d->name, CPR_VFIO_NOTIFY_INTX,
					     0, &d->intx_fd);
		if (d->err_fd >= 0)
			cpr_notifier_cleanup(d->st, d->name, CPR_VFIO_NOTIFY_ERR,
					     0, &d->err_fd);
		if (d->req_fd >= 0)
			cpr_notifier_cleanup(d->st, d->name, CPR_VFIO_NOTIFY_REQ,
					     0, &d->req_fd);
	}
	free(d);
}

bool cpr_vfio_is_mtty(const struct cpr_vfio_dev *d)
{
	return d->is_mdev || (d->vendor == CPR_VFIO_MTTY_VENDOR &&
			      d->device == CPR_VFIO_MTTY_DEVICE);
}
