// SPDX-License-Identifier: GPL-2.0-only
/*
 * An open VFIO device as it describes itself, on either side of a
 * handoff: its device, region and IRQ info (queried when it is opened),
 * access to its regions and config space within what that info allows,
 * and the names and counts of its IRQs.  Nothing here sets the device up,
 * so the drivers and the device helper use it as freely as vfio.c.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <endian.h>
#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/types.h>
#include <linux/vfio.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vfio_cpr/log.h"
#include "vfio_cpr/vfio.h"

#include "internal.h"

/* ---- Info ---- */

int cpr_vfio_query_info(struct cpr_vfio_dev *d)
{
	struct cpr_vfio_region *cfg;
	unsigned int i, n;
	__u16 ids[2];
	int ret;

	d->info.argsz = sizeof(d->info);
	if (ioctl(d->device_fd, VFIO_DEVICE_GET_INFO, &d->info))
		return cpr_err(-errno, "%s: VFIO_DEVICE_GET_INFO on device fd %d",
			       d->name, d->device_fd);
	if (!(d->info.flags & VFIO_DEVICE_FLAGS_PCI))
		return cpr_err(-ENODEV, "%s: not a PCI device (VFIO device flags 0x%x)",
			       d->name, d->info.flags);

	n = d->info.num_regions < VFIO_PCI_NUM_REGIONS ?
	    d->info.num_regions : VFIO_PCI_NUM_REGIONS;
	for (i = 0; i < n; i++) {
		struct vfio_region_info ri = {
			.argsz = sizeof(ri),
			.index = i,
		};

		if (ioctl(d->device_fd, VFIO_DEVICE_GET_REGION_INFO, &ri)) {
			/* vfio-pci: no VGA region on a non-VGA device. */
			if (errno == EINVAL)
				continue;
			return cpr_err(-errno, "%s: VFIO_DEVICE_GET_REGION_INFO index %u",
				       d->name, i);
		}
		d->regions[i].flags = ri.flags;
		d->regions[i].size = ri.size;
		d->regions[i].offset = ri.offset;
	}

	n = d->info.num_irqs < VFIO_PCI_NUM_IRQS ?
	    d->info.num_irqs : VFIO_PCI_NUM_IRQS;
	for (i = 0; i < VFIO_PCI_NUM_IRQS; i++) {
		struct vfio_irq_info *ii = &d->irqs[i];

		ii->argsz = sizeof(*ii);
		ii->index = i;
		if (i >= n)
			continue;
		if (ioctl(d->device_fd, VFIO_DEVICE_GET_IRQ_INFO, ii)) {
			/* mtty: EINVAL for the indexes it lacks (MSI-X, ERR). */
			if (errno != EINVAL)
				return cpr_err(-errno, "%s: VFIO_DEVICE_GET_IRQ_INFO %s (index %u)",
					       d->name, cpr_vfio_irq_name(i), i);
			memset(ii, 0, sizeof(*ii));
			ii->argsz = sizeof(*ii);
			ii->index = i;
		}
	}

	cfg = &d->regions[VFIO_PCI_CONFIG_REGION_INDEX];
	if (cfg->size < PCI_STD_HEADER_SIZEOF)
		return cpr_err(-ENODEV, "%s: config region of %llu bytes, want >= %d",
			       d->name, (unsigned long long)cfg->size,
			       PCI_STD_HEADER_SIZEOF);
	ret = cpr_vfio_config_read(d, PCI_VENDOR_ID, ids, sizeof(ids));
	if (ret)
		return ret;
	d->vendor = le16toh(ids[0]);
	d->device = le16toh(ids[1]);
	return 0;
}

/* ---- Regions ---- */

static int region_check(const struct cpr_vfio_dev *d, unsigned int index,
			__u64 off, size_t len, __u32 need, const char *what)
{
	const struct cpr_vfio_region *r;

	if (index >= VFIO_PCI_NUM_REGIONS || !d->regions[index].size)
		return cpr_err(-EINVAL, "%s: %s region %u: the device has no such region",
			       d->name, what, index);
	r = &d->regions[index];
	if (!(r->flags & need))
		return cpr_err(-EACCES, "%s: %s region %u: not allowed (region flags 0x%x)",
			       d->name, what, index, r->flags);
	if (!len || len > r->size || off > r->size - len)
		return cpr_err(-EINVAL,
			       "%s: %s %zu bytes at 0x%llx of region %u: outside its 0x%llx bytes",
			       d->name, what, len, (unsigned long long)off, index,
			       (unsigned long long)r->size);
	return 0;
}

/* pread() or pwrite() @len bytes at @off of region @index, all or none. */
static int region_rw(struct cpr_vfio_dev *d, unsigned int index, __u64 off,
		     void *buf, size_t len, bool write)
{
	const char *what = write ? "writing" : "reading";
	__u64 at;
	ssize_t n;
	int ret;

	ret = region_check(d, index, off, len, write ?
			   VFIO_REGION_INFO_FLAG_WRITE :
			   VFIO_REGION_INFO_FLAG_READ, what);
	if (ret)
		return ret;
	at = d->regions[index].offset + off;
	n = write ? pwrite(d->device_fd, buf, len, at) :
		    pread(d->device_fd, buf, len, at);
	if (n < 0 || (size_t)n != len)
		return cpr_err(n < 0 ? -errno : -EIO,
			       "%s: %s %zu bytes at 0x%llx of region %u (device fd %d) gave %zd",
			       d->name, what, len, (unsigned long long)off,
			       index, d->device_fd, n);
	return 0;
}

int cpr_vfio_region_read(struct cpr_vfio_dev *d, unsigned int index,
			 __u64 off, void *buf, size_t len)
{
	return region_rw(d, index, off, buf, len, false);
}

int cpr_vfio_region_write(struct cpr_vfio_dev *d, unsigned int index,
			  __u64 off, const void *buf, size_t len)
{
	return region_rw(d, index, off, (void *)buf, len, true);
}

int cpr_vfio_config_read(struct cpr_vfio_dev *d, __u64 off, void *buf,
			 size_t len)
{
	return cpr_vfio_region_read(d, VFIO_PCI_CONFIG_REGION_INDEX, off, buf,
				    len);
}

int cpr_vfio_config_write(struct cpr_vfio_dev *d, __u64 off,
			  const void *buf, size_t len)
{
	return cpr_vfio_region_write(d, VFIO_PCI_CONFIG_REGION_INDEX, off, buf,
				     len);
}

int cpr_vfio_enable_device(struct cpr_vfio_dev *d)
{
	__u16 cmd;
	int ret;

	ret = cpr_vfio_config_read(d, PCI_COMMAND, &cmd, sizeof(cmd));
	if (ret)
		return ret;
	cmd = htole16(le16toh(cmd) | PCI_COMMAND_IO | PCI_COMMAND_MEMORY |
		      PCI_COMMAND_MASTER);
	return cpr_vfio_config_write(d, PCI_COMMAND, &cmd, sizeof(cmd));
}

/* ---- IRQs ---- */

const char *cpr_vfio_irq_name(unsigned int index)
{
	switch (index) {
	case VFIO_PCI_INTX_IRQ_INDEX:
		return "INTx";
	case VFIO_PCI_MSI_IRQ_INDEX:
		return "MSI";
	case VFIO_PCI_MSIX_IRQ_INDEX:
		return "MSI-X";
	case VFIO_PCI_ERR_IRQ_INDEX:
		return "ERR";
	case VFIO_PCI_REQ_IRQ_INDEX:
		return "REQ";
	}
	return "unknown IRQ index";
}

unsigned int cpr_vfio_irq_count(const struct cpr_vfio_dev *d,
				unsigned int index)
{
	return index < VFIO_PCI_NUM_IRQS ? d->irqs[index].count : 0;
}
