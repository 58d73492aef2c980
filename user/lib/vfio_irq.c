// SPDX-License-Identifier: GPL-2.0-only
/*
 * Interrupts of a VFIO device: MSI and MSI-X vectors, INTx with its unmask
 * eventfd, and the ERR and REQ notifiers, signalled through eventfds that
 * the CPR state keeps.  The predecessor sets them up; a successor looks
 * the eventfds up, because the kernel keeps signalling them, and asks the
 * device helper for the few VFIO_DEVICE_SET_IRQS it still needs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <linux/types.h>
#include <linux/vfio.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vfio_cpr/kvm.h"
#include "vfio_cpr/log.h"
#include "vfio_cpr/vectors.h"
#include "vfio_cpr/vfio.h"
#include "vfio_cpr/vfio_helper.h"

#include "internal.h"

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

/*
 * VFIO_DEVICE_SET_IRQS with @count eventfds (@fds) or none (@fds NULL).
 * Reports the failure unless @quiet; returns -errno.  vfio-pci answers an
 * MSI or MSI-X enable that got fewer host vectors than it asked for with
 * that number (and enables nothing): -ENOSPC here.
 */
static int set_irqs(struct cpr_vfio_dev *d, __u32 action, unsigned int index,
		    unsigned int start, unsigned int count, const int *fds,
		    bool quiet)
{
	size_t size = sizeof(struct vfio_irq_set) +
		      (fds ? count * sizeof(__s32) : 0);
	struct vfio_irq_set *set;
	char got[48] = "";
	int ret = 0, rc;

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
	rc = ioctl(d->device_fd, VFIO_DEVICE_SET_IRQS, set);
	if (rc < 0)
		ret = -errno;
	if (rc > 0) {
		ret = -ENOSPC;
		snprintf(got, sizeof(got), ", the kernel granted only %d", rc);
	}
	free(set);
	if (ret && !quiet)
		return cpr_err(ret,
			       "%s: VFIO_DEVICE_SET_IRQS %s %s %s start %u count %u (first fd %d%s)",
			       d->name, cpr_vfio_irq_name(index),
			       irq_action_name(action),
			       fds ? "DATA_EVENTFD" : "DATA_NONE", start, count,
			       fds && count ? fds[0] : -1, got);
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

bool cpr_vfio_msix_can_grow(const struct cpr_vfio_dev *d)
{
	const struct vfio_irq_info *info = &d->irqs[VFIO_PCI_MSIX_IRQ_INDEX];

	return info->count && !(info->flags & VFIO_IRQ_INFO_NORESIZE);
}

/* MSI-X eventfds @fds for entries @start .. @start + @count - 1. */
static int msix_give(struct cpr_vfio_dev *d, bool by_helper,
		     unsigned int start, unsigned int count, const int *fds)
{
	if (!by_helper)
		return set_irqs(d, VFIO_IRQ_SET_ACTION_TRIGGER,
				VFIO_PCI_MSIX_IRQ_INDEX, start, count, fds,
				false);
	d->setup_ioctls++;	/* counted as set_irqs() does */
	return cpr_helper_msix_eventfds(d->helper, d->name, start, count,
					fds);
}

/*
 * The kvm fds of @vs's vectors for the @nr entries @entries (ascending),
 * one SET_IRQS per run of consecutive entries; *@done: how many of
 * @entries the device took.
 */
static int msix_give_runs(struct cpr_vfio_dev *d, const struct cpr_vectors *vs,
			  bool by_helper, const unsigned int *entries,
			  unsigned int nr, unsigned int *done)
{
	int *fds = malloc(nr * sizeof(*fds)), ret = 0;
	unsigned int k, n;

	*done = 0;
	if (!fds)
		return cpr_err(-ENOMEM, "%s: %u MSI-X eventfds", d->name, nr);
	for (k = 0; k < nr; k++)
		fds[k] = vs->v[cpr_vectors_find(vs, entries[k])].kvm_fd;
	for (k = 0; k < nr && !ret; k += n) {
		for (n = 1; k + n < nr && entries[k + n] == entries[k] + n; n++)
			;
		ret = msix_give(d, by_helper, entries[k], n, fds + k);
		if (!ret)
			*done = k + n;
	}
	free(fds);
	return ret;
}

/*
 * A set that cannot grow, or entries 0 .. nr - 1: one SET_IRQS from entry
 * 0 to the last, -1 (no eventfd, no host vector assigned) for the entries
 * not in use.
 */
static int msix_give_at_once(struct cpr_vfio_dev *d, struct cpr_vectors *vs)
{
	unsigned int i, n = vs->v[vs->nr - 1].entry + 1;
	int *fds = malloc(n * sizeof(*fds)), ret;

	if (!fds)
		return cpr_err(-ENOMEM, "%s: %u MSI-X eventfds", d->name, n);
	for (i = 0; i < n; i++)
		fds[i] = -1;
	for (i = 0; i < vs->nr; i++)
		fds[vs->v[i].entry] = vs->v[i].kvm_fd;
	ret = set_irqs(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX,
		       0, n, fds, false);
	free(fds);
	return ret;
}

/* The device's MSI vectors, entries 0 .. @nr - 1, at once. */
static int msi_give(struct cpr_vfio_dev *d, struct cpr_vectors *vs)
{
	int *fds = malloc(vs->nr * sizeof(*fds)), ret;
	unsigned int i;

	if (!fds)
		return cpr_err(-ENOMEM, "%s: %u MSI eventfds", d->name, vs->nr);
	for (i = 0; i < vs->nr; i++)
		fds[i] = vs->v[i].kvm_fd;
	ret = set_irqs(d, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSI_IRQ_INDEX,
		       0, vs->nr, fds, false);
	free(fds);
	return ret;
}

/*
 * Vectors for @entries (NULL: 0 .. @nr - 1) of @irq_index, given to the
 * device, the section saved.
 */
static int enable_vectors(struct cpr_vfio_dev *d, unsigned int irq_index,
			  const unsigned int *entries, unsigned int nr,
			  struct cpr_vectors **out)
{
	const bool msix = irq_index == VFIO_PCI_MSIX_IRQ_INDEX;
	unsigned int table = cpr_vfio_irq_count(d, irq_index), i, done = 0;
	struct cpr_vectors *vs;
	unsigned int *all;
	int ret;

	if (d->reused)
		return cpr_err(-EINVAL,
			       "%s: %s of a reused device is already signalling: claim the vectors with cpr_vectors_claim()",
			       d->name, cpr_vfio_irq_name(irq_index));
	if (!table || !nr || nr > table)
		return cpr_err(-EINVAL, "%s: enabling %u %s vectors: the device has %u",
			       d->name, nr, cpr_vfio_irq_name(irq_index), table);
	ret = cpr_vectors_create_entries(d->st, d->name,
					 msix ? CPR_IRQ_MSIX : CPR_IRQ_MSI,
					 table, entries, nr,
					 CPR_VEC_INTERRUPT | CPR_VEC_KVM, &vs);
	if (ret)
		return ret;
	if (!msix) {
		ret = msi_give(d, vs);
		done = !ret;
	} else if (vs->v[nr - 1].entry == nr - 1 || !cpr_vfio_msix_can_grow(d)) {
		ret = msix_give_at_once(d, vs);
		done = !ret;
	} else {
		/*
		 * The first run enables MSI-X, and vfio-pci allocates host
		 * vectors for the entries up to its end; each later run grows
		 * the set by its own vectors.
		 */
		all = malloc(nr * sizeof(*all));
		for (i = 0; all && i < nr; i++)
			all[i] = vs->v[i].entry;
		ret = all ? msix_give_runs(d, vs, false, all, nr, &done) :
		      cpr_err(-ENOMEM, "%s: %u MSI-X entries", d->name, nr);
		free(all);
	}
	if (!ret)
		ret = cpr_vectors_save(vs);
	if (ret) {
		if (done)
			set_irqs(d, VFIO_IRQ_SET_ACTION_TRIGGER, irq_index, 0, 0,
				 NULL, true);
		cpr_vectors_free(vs, true);
		return ret;
	}
	*out = vs;
	return 0;
}

int cpr_vfio_enable_msi(struct cpr_vfio_dev *d, unsigned int irq_index,
			unsigned int nr, struct cpr_vectors **out)
{
	if (irq_index != VFIO_PCI_MSIX_IRQ_INDEX &&
	    irq_index != VFIO_PCI_MSI_IRQ_INDEX)
		return cpr_err(-EINVAL, "%s: enable MSI: %s is not MSI or MSI-X",
			       d->name, cpr_vfio_irq_name(irq_index));
	return enable_vectors(d, irq_index, NULL, nr, out);
}

int cpr_vfio_enable_msix(struct cpr_vfio_dev *d, const unsigned int *entries,
			 unsigned int nr, struct cpr_vectors **out)
{
	return enable_vectors(d, VFIO_PCI_MSIX_IRQ_INDEX, entries, nr, out);
}

int cpr_vfio_msix_add(struct cpr_vfio_dev *d, struct cpr_vectors *vs,
		      const unsigned int *entries, unsigned int nr)
{
	unsigned int done = 0;
	int ret;

	if (vs->type != CPR_IRQ_MSIX || strcmp(vs->dev, d->name))
		return cpr_err(-EINVAL, "%s: adding MSI-X vectors to %s vectors of %s",
			       d->name, cpr_irq_type_name(vs->type), vs->dev);
	if (!cpr_vfio_msix_can_grow(d))
		return cpr_err(-EOPNOTSUPP,
			       "%s: the kernel cannot add vectors to an enabled MSI-X set (VFIO_IRQ_INFO_NORESIZE): enable every entry needed at once",
			       d->name);
	ret = cpr_vectors_add(vs, entries, nr, CPR_VEC_INTERRUPT | CPR_VEC_KVM);
	if (ret)
		return ret;
	ret = msix_give_runs(d, vs, !!d->helper, entries, nr, &done);
	/* The runs the device took stay; it unwound the one it refused. */
	if (done < nr)
		cpr_vectors_drop(vs, entries + done, nr - done);
	if (done) {
		int err = cpr_vectors_save(vs);

		ret = ret ? ret : err;
	}
	return ret;
}

int cpr_vfio_enable_intx(struct cpr_vfio_dev *d)
{
	int ret;

	ret = irq_range_check(d, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, "enabling");
	if (ret)
		return ret;
	if (d->reused) {
		cpr_vfio_lookup_notifiers(d);
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
		d->err_fd = cpr_vfio_find_fd(d, CPR_VFIO_NOTIFY_ERR);
		d->req_fd = cpr_vfio_find_fd(d, CPR_VFIO_NOTIFY_REQ);
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

int cpr_vfio_raise(struct cpr_vfio_dev *d, unsigned int irq_index,
		   unsigned int vector)
{
	if (d->drv && d->drv->raise)
		return d->drv->raise(d, irq_index, vector);
	return cpr_vfio_irq_trigger(d, irq_index, vector);
}
