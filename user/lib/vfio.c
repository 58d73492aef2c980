// SPDX-License-Identifier: GPL-2.0-only
/*
 * VFIO devices (vfio-pci by BDF, mediated devices by UUID) through the
 * legacy container/group interface and the type1 IOMMU, or through the
 * device cdev and iommufd (vfio_cdev.c), kept across a CPR handoff.
 *
 * A fresh open does the whole dance (container, API and extension checks,
 * group, viability, SET_CONTAINER, SET_IOMMU, GET_DEVICE_FD) and saves the
 * three fds in the CPR state; a successor finds them there and does none
 * of it.  Read-only queries (device, region, IRQ info, config space) run
 * on both sides.  IRQ signalling (MSI/MSI-X vectors, INTx with its unmask
 * eventfd, ERR and REQ) is set up by the predecessor only; the successor
 * looks the eventfds up, because the kernel keeps signalling them.
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
#include "vfio_cpr/vfio_helper.h"

#include "internal.h"

#define VFIO_CONTAINER_PATH	"/dev/vfio/vfio"

static const char *irq_action_name(__u32 flags)
{
	switch (flags & VFIO_IRQ_SET_ACTION_TYPE_MASK) {
	case VFIO_IRQ_SET_ACTION_MASK:
		return "MASK";
	case VFIO_IRQ_SET_ACTION_UNMASK:
		return "UNMASK";
	case VFIO_IRQ_SET_ACTION_TRIGGER:
		return "TRIGGER";
	}
	return "?";
}

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

static int find_dev_fd(const struct cpr_vfio_dev *d, const char *what)
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

	*fd = find_dev_fd(d, what);
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
static void lookup_notifiers(struct cpr_vfio_dev *d)
{
	d->intx_fd = find_dev_fd(d, CPR_VFIO_NOTIFY_INTX);
	d->intx_unmask_fd = -1;
	d->intx_unmask_by_ioctl = false;
	if (d->intx_fd >= 0) {
		d->intx_unmask_fd = find_dev_fd(d, CPR_VFIO_NOTIFY_UNMASK);
		d->intx_unmask_by_ioctl = d->intx_unmask_fd < 0;
	}
	d->err_fd = find_dev_fd(d, CPR_VFIO_NOTIFY_ERR);
	d->req_fd = find_dev_fd(d, CPR_VFIO_NOTIFY_REQ);
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
		lookup_notifiers(d);
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
	d->reused = find_dev_fd(d, CPR_VFIO_FD_DEVICE) >= 0;
	if (d->reused) {
		d->iface = find_dev_fd(d, CPR_VFIO_FD_IOMMUFD) >= 0 ?
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

/* ---- IRQs ---- */

/*
 * VFIO_DEVICE_SET_IRQS with @count eventfds (@fds) or none (@fds NULL).
 * Reports the failure unless @quiet; returns -errno.
 */
static int set_irqs(struct cpr_vfio_dev *d, __u32 action, unsigned int index,
		    unsigned int start, unsigned int count, const int *fds,
		    bool quiet)
{
	size_t size = sizeof(struct vfio_irq_set) +
		      (fds ? count * sizeof(__s32) : 0);
	struct vfio_irq_set *set;
	int ret = 0;

	set = calloc(1, size);
	if (!set)
		return cpr_err(-ENOMEM, "%s: VFIO_DEVICE_SET_IRQS %s of %u eventfds",
			       d->name, cpr_vfio_irq_name(index), count);
	set->argsz = size;
	set->flags = action |
		     (fds ? VFIO_IRQ_SET_DATA_EVENTFD : VFIO_IRQ_SET_DATA_NONE);
	set->index = index;
	set->start = start;
	set->count = count;
	if (fds)
		memcpy(set->data, fds, count * sizeof(__s32));
	/* Eventfds given or IRQs disabled: setup.  Triggers, unmasks: not. */
	if (fds || !count)
		d->setup_ioctls++;
	if (ioctl(d->device_fd, VFIO_DEVICE_SET_IRQS, set))
		ret = -errno;
	free(set);
	if (ret && !quiet)
		return cpr_err(ret,
			       "%s: VFIO_DEVICE_SET_IRQS %s %s %s start %u count %u (first fd %d)",
			       d->name, cpr_vfio_irq_name(index),
			       irq_action_name(action),
			       fds ? "DATA_EVENTFD" : "DATA_NONE", start, count,
			       fds && count ? fds[0] : -1);
	return ret;
}

static int irq_range_check(const struct cpr_vfio_dev *d, unsigned int index,
			   unsigned int start, unsigned int count,
			   const char *what)
{
	unsigned int have = cpr_vfio_irq_count(d, index);

	if (!count || start >= have || count > have - start)
		return cpr_err(-EINVAL, "%s: %s %s start %u count %u: the device has %u",
			       d->name, what, cpr_vfio_irq_name(index), start, count,
			       have);
	return 0;
}

int cpr_vfio_irq_set_eventfds(struct cpr_vfio_dev *d, unsigned int index,
			      unsigned int start, unsigned int count,
			      const int *fds)
{
	int ret;

	if (!fds)
		return cpr_err(-EINVAL, "%s: %s eventfds: none given", d->name,
			       cpr_vfio_irq_name(index));
	ret = irq_range_check(d, index, start, count, "eventfds for");
	if (ret)
		return ret;
	return set_irqs(d, VFIO_IRQ_SET_ACTION_TRIGGER, index, start, count,
			fds, false);
}

int cpr_vfio_irq_disable(struct cpr_vfio_dev *d, unsigned int index)
{
	if (index >= VFIO_PCI_NUM_IRQS)
		return cpr_err(-EINVAL, "%s: disabling IRQ index %u", d->name,
			       index);
	if (d->helper) {
		d->setup_ioctls++;	/* counted as set_irqs() does */
		return cpr_helper_disable(d->helper, d->name, index);
	}
	return set_irqs(d, VFIO_IRQ_SET_ACTION_TRIGGER, index, 0, 0, NULL,
			false);
}

int cpr_vfio_irq_trigger(struct cpr_vfio_dev *d, unsigned int index,
			 unsigned int vector)
{
	int ret;

	if (cpr_vfio_is_mtty(d))
		return cpr_err(-EOPNOTSUPP,
			       "%s: no software trigger of %s %u on an mdev (DATA_NONE|TRIGGER disables it)",
			       d->name, cpr_vfio_irq_name(index), vector);
	ret = irq_range_check(d, index, vector, 1, "software trigger of");
	if (ret)
		return ret;
	if (d->helper)
		return cpr_helper_trigger(d->helper, d->name, index, vector);
	return set_irqs(d, VFIO_IRQ_SET_ACTION_TRIGGER, index, vector, 1, NULL,
			false);
}

int cpr_vfio_enable_msi(struct cpr_vfio_dev *d, unsigned int irq_index,
			unsigned int nr, struct cpr_vectors **out)
{
	struct cpr_vectors *vs;
	unsigned int i;
	int *fds, ret;
	int type;

	if (irq_index == VFIO_PCI_MSIX_IRQ_INDEX)
		type = CPR_IRQ_MSIX;
	else if (irq_index == VFIO_PCI_MSI_IRQ_INDEX)
		type = CPR_IRQ_MSI;
	else
		return cpr_err(-EINVAL, "%s: enable MSI: %s is not MSI or MSI-X",
			       d->name, cpr_vfio_irq_name(irq_index));
	if (d->reused)
		return cpr_err(-EINVAL,
			       "%s: %s of a reused device is already signalling: claim the vectors with cpr_vectors_claim()",
			       d->name, cpr_vfio_irq_name(irq_index));
	ret = irq_range_check(d, irq_index, 0, nr, "enabling");
	if (ret)
		return ret;

	ret = cpr_vectors_create(d->st, d->name, type, nr,
				 CPR_VEC_INTERRUPT | CPR_VEC_KVM, &vs);
	if (ret)
		return ret;
	fds = calloc(nr, sizeof(*fds));
	if (!fds) {
		cpr_vectors_free(vs, true);
		return cpr_err(-ENOMEM, "%s: %u %s eventfds", d->name, nr,
			       cpr_vfio_irq_name(irq_index));
	}
	for (i = 0; i < nr; i++)
		fds[i] = vs->v[i].kvm_fd;
	ret = set_irqs(d, VFIO_IRQ_SET_ACTION_TRIGGER, irq_index, 0, nr, fds,
		       false);
	free(fds);
	if (!ret) {
		ret = cpr_vectors_save(vs);
		if (ret)
			set_irqs(d, VFIO_IRQ_SET_ACTION_TRIGGER, irq_index, 0, 0,
				 NULL, true);
	}
	if (ret) {
		cpr_vectors_free(vs, true);
		return ret;
	}
	*out = vs;
	return 0;
}

int cpr_vfio_enable_intx(struct cpr_vfio_dev *d)
{
	int ret;

	ret = irq_range_check(d, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, "enabling");
	if (ret)
		return ret;
	if (d->reused) {
		lookup_notifiers(d);
		if (d->intx_fd < 0)
			return cpr_err(-ENOENT,
				       "%s: reused device without an inherited '%s_%s' eventfd",
				       d->name, d->name, CPR_VFIO_NOTIFY_INTX);
		return 0;
	}

	ret = cpr_notifier_init(d->st, d->name, CPR_VFIO_NOTIFY_INTX, 0,
				&d->intx_fd);
	if (ret)
		return ret;
	ret = set_irqs(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_INTX_IRQ_INDEX,
		       0, 1, &d->intx_fd, false);
	if (ret) {
		cpr_notifier_cleanup(d->st, d->name, CPR_VFIO_NOTIFY_INTX, 0,
				     &d->intx_fd);
		return ret;
	}

	d->intx_unmask_by_ioctl = false;
	ret = cpr_notifier_init(d->st, d->name, CPR_VFIO_NOTIFY_UNMASK, 0,
				&d->intx_unmask_fd);
	if (!ret) {
		ret = set_irqs(d, VFIO_IRQ_SET_ACTION_UNMASK,
			       VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &d->intx_unmask_fd,
			       true);
		if (ret) {
			cpr_info("%s: the driver refuses an INTx unmask eventfd (%s): unmasking by ioctl",
				 d->name, strerror(-ret));
			cpr_notifier_cleanup(d->st, d->name,
					     CPR_VFIO_NOTIFY_UNMASK, 0,
					     &d->intx_unmask_fd);
			d->intx_unmask_by_ioctl = true;
			ret = 0;
		}
	}
	if (ret) {
		/* Only a failure to make the eventfd: undo the trigger. */
		set_irqs(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_INTX_IRQ_INDEX,
			 0, 0, NULL, true);
		cpr_notifier_cleanup(d->st, d->name, CPR_VFIO_NOTIFY_INTX, 0,
				     &d->intx_fd);
	}
	return ret;
}

int cpr_vfio_intx_unmask(struct cpr_vfio_dev *d)
{
	__u64 one = 1;
	ssize_t n;

	if (d->intx_fd < 0)
		return cpr_err(-EINVAL, "%s: unmask INTx: INTx is not enabled",
			       d->name);
	if ((d->intx_unmask_by_ioctl || d->intx_unmask_fd < 0) && d->helper)
		return cpr_helper_unmask(d->helper, d->name,
					 VFIO_PCI_INTX_IRQ_INDEX, 0);
	if (d->intx_unmask_by_ioctl || d->intx_unmask_fd < 0)
		return set_irqs(d, VFIO_IRQ_SET_ACTION_UNMASK,
				VFIO_PCI_INTX_IRQ_INDEX, 0, 1, NULL, false);
	n = write(d->intx_unmask_fd, &one, sizeof(one));
	if (n != sizeof(one))
		return cpr_err(n < 0 ? -errno : -EIO,
			       "%s: unmask INTx: writing 1 to unmask eventfd %d gave %zd",
			       d->name, d->intx_unmask_fd, n);
	return 0;
}

int cpr_vfio_intx_detach(struct cpr_vfio_dev *d, struct cpr_vm *vm,
			 unsigned int gsi, unsigned int vcpu,
			 unsigned int lapic_vec)
{
	__u64 one = 1;
	int ret;

	if (d->intx_fd < 0)
		return cpr_err(-EINVAL, "%s: detach INTx: INTx is not enabled",
			       d->name);
	ret = cpr_vm_irqfd_deassign(vm, d->intx_fd, gsi);
	if (ret)
		return cpr_err(ret, "%s: handoff: detaching INTx (eventfd %d, GSI %u)",
			       d->name, d->intx_fd, gsi);
	/*
	 * Already in the old VM's LAPIC but not taken: it would die with the
	 * VM.  vfio keeps INTx masked until it is handled, so no new trigger
	 * can come: put this one back into the trigger eventfd, where the
	 * next VM's irqfd finds it on attach.
	 */
	ret = cpr_vm_lapic_irr_test(vm, vcpu, lapic_vec);
	if (ret < 0)
		return ret;
	if (ret && write(d->intx_fd, &one, sizeof(one)) != sizeof(one))
		return cpr_err(-errno,
			       "%s: handoff: carrying INTx (LAPIC vector 0x%x) back into eventfd %d",
			       d->name, lapic_vec, d->intx_fd);
	return 0;
}

/* One ERR or REQ notifier; *@fd stays -1 if the device has none. */
static int enable_notifier(struct cpr_vfio_dev *d, unsigned int index,
			   const char *what, int *fd)
{
	int ret;

	if (!cpr_vfio_irq_count(d, index))
		return 0;
	ret = cpr_notifier_init(d->st, d->name, what, 0, fd);
	if (ret)
		return ret;
	ret = set_irqs(d, VFIO_IRQ_SET_ACTION_TRIGGER, index, 0, 1, fd, false);
	if (ret)
		cpr_notifier_cleanup(d->st, d->name, what, 0, fd);
	return ret;
}

int cpr_vfio_enable_err_req(struct cpr_vfio_dev *d)
{
	int ret;

	if (d->reused) {
		d->err_fd = find_dev_fd(d, CPR_VFIO_NOTIFY_ERR);
		d->req_fd = find_dev_fd(d, CPR_VFIO_NOTIFY_REQ);
		return 0;
	}
	ret = enable_notifier(d, VFIO_PCI_ERR_IRQ_INDEX, CPR_VFIO_NOTIFY_ERR,
			      &d->err_fd);
	if (ret)
		return ret;
	ret = enable_notifier(d, VFIO_PCI_REQ_IRQ_INDEX, CPR_VFIO_NOTIFY_REQ,
			      &d->req_fd);
	if (ret && d->err_fd >= 0) {
		set_irqs(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_ERR_IRQ_INDEX,
			 0, 0, NULL, true);
		cpr_notifier_cleanup(d->st, d->name, CPR_VFIO_NOTIFY_ERR, 0,
				     &d->err_fd);
	}
	return ret;
}
