// SPDX-License-Identifier: GPL-2.0-only
/*
 * Vectors leaving their VM for a handoff: one set at a time, or every set
 * of a VM that is being replaced at once; what already reached a LAPIC is
 * noted for the successor to inject again.  And back, when the handoff is
 * given up and the same VM runs on.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>

#include "vfio_cpr/handoff.h"
#include "vfio_cpr/log.h"
#include "vfio_cpr/vectors.h"

#include "internal.h"

/* The LAPIC IRRs of a VM, read once per vCPU, and what was claimed. */
struct lapic_snap {
	__u64 irr[CPR_VM_MAX_VCPUS][4];
	__u64 seen[CPR_VM_MAX_VCPUS][4];
	bool have[CPR_VM_MAX_VCPUS];
};

/*
 * What already reached the VM's LAPIC but was not taken yet would die with
 * it: note it, the successor re-injects it.  Several vectors may share a
 * LAPIC vector (of one set or of several); one of them carries it.
 */
static int vectors_note_lapic(struct cpr_vectors *vs, struct cpr_vm *vm,
			      struct lapic_snap *ls)
{
	unsigned int i;
	int ret;

	for (i = 0; i < vs->nr; i++) {
		struct cpr_vector *v = &vs->v[i];
		unsigned int cpu = (v->msg.addr_lo >> 12) & 0xff;
		unsigned int vec = cpr_msi_msg_vector(&v->msg);
		__u64 bit = 1ull << (vec % 64);

		v->lapic_pending = false;
		if (v->virq < 0 || cpu >= vm->nr_vcpus)
			continue;
		if (!ls->have[cpu]) {
			ret = cpr_vm_lapic_irr(vm, cpu, ls->irr[cpu]);
			if (ret)
				return ret;
			ls->have[cpu] = true;
		}
		if (!(ls->irr[cpu][vec / 64] & bit) ||
		    (ls->seen[cpu][vec / 64] & bit))
			continue;
		ls->seen[cpu][vec / 64] |= bit;
		v->lapic_pending = true;
	}
	return 0;
}

int cpr_vectors_detach(struct cpr_vectors *vs)
{
	struct lapic_snap ls = {};
	unsigned int i;
	int ret;

	ret = cpr_handoff_mark_start(vs->st);
	if (ret)
		return ret;
	if (!vs->vm)
		return cpr_vectors_save(vs);

	for (i = 0; i < vs->nr; i++) {
		struct cpr_vector *v = &vs->v[i];

		if (!v->attached)
			continue;
		ret = cpr_vm_irqfd_deassign(vs->vm, v->kvm_fd, v->virq);
		if (ret)
			return cpr_err(ret, "%s: handoff: detaching vector %u (eventfd %d, GSI %d)",
				       vs->dev, v->entry, v->kvm_fd, v->virq);
		v->attached = false;
	}

	/* After the last deassign: KVM flushed every injection by then. */
	ret = vectors_note_lapic(vs, vs->vm, &ls);
	return ret ? ret : cpr_vectors_save(vs);
}

/*
 * The sets of a handoff: all routed in @vm (or nowhere), and together
 * holding every irqfd and relayed vector @vm has.
 */
int cpr_vectors_sets_check(struct cpr_vm *vm, struct cpr_vectors *const *vss,
			   unsigned int nr_sets, const char *what,
			   unsigned int *nr_attached)
{
	const struct cpr_vm_priv *p = cpr_vm_priv(vm);
	unsigned int i, j, attached = 0, relayed = 0;

	for (i = 0; i < nr_sets; i++) {
		const struct cpr_vectors *vs = vss[i];

		if (vs->vm && vs->vm != vm)
			return cpr_err(-EINVAL,
				       "%s: %s of vm fd %d: the vectors are routed in another VM (vm fd %d)",
				       vs->dev, what, vm->vm_fd,
				       vs->vm->vm_fd);
		if (!vs->vm)
			continue;
		for (j = 0; j < vs->nr; j++) {
			attached += vs->v[j].attached;
			relayed += vs->v[j].relayed;
		}
	}
	if (!p->quiesced && attached != p->nr_irqfds)
		return cpr_err(-EBUSY,
			       "%s of vm fd %d: it has %u irqfds, the %u vector sets given %u: pass every set routed in it, or detach the others first",
			       what, vm->vm_fd, p->nr_irqfds, nr_sets,
			       attached);
	if (p->relay && relayed != p->relay->nr)
		return cpr_err(-EBUSY,
			       "%s of vm fd %d: %u vectors are relayed, the %u vector sets given hold %u",
			       what, vm->vm_fd, p->relay->nr, nr_sets,
			       relayed);
	if (nr_attached)
		*nr_attached = attached;
	return 0;
}

/*
 * The old VM's own teardown (a few hundred microseconds, more with many
 * routes) can wait until the successor's interrupts flow: a duplicate of
 * a vCPU fd, which holds the VM, crosses the exec to be closed there
 * (cpr_dispose_fd()).  Not with a KVM-VFIO device, whose teardown would
 * undo what the new VM's did to the same groups.  An optimisation only:
 * on failure the exec destroys the VM as it would have anyway.
 */
static void vm_dispose(struct cpr_vm *vm)
{
	int fd;

	if (vm->vfio_dev_fd >= 0 || !vm->nr_vcpus || vm->vcpu_fd[0] < 0)
		return;
	fd = fcntl(vm->vcpu_fd[0], F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		cpr_err(-errno, "handoff: duplicating vcpu fd %d to hand the old VM over",
			vm->vcpu_fd[0]);
	else
		cpr_dispose_fd(fd);
}

int cpr_vectors_detach_vm(struct cpr_vm *vm, struct cpr_vectors *const *vss,
			  unsigned int nr_sets)
{
	struct cpr_vm_priv *p = cpr_vm_priv(vm);
	struct lapic_snap ls = {};
	unsigned int i, j;
	int ret, relay_err;

	ret = cpr_vectors_sets_check(vm, vss, nr_sets, "handoff", NULL);
	if (ret)
		return ret;

	/* The handoff starts when the old VM stops taking interrupts. */
	for (i = 0; i < nr_sets; i++) {
		ret = cpr_handoff_mark_start(vss[i]->st);
		if (ret)
			return ret;
	}
	/* Every signal the relay read is in a LAPIC when it has stopped. */
	relay_err = p->relay ? p->relay->end(vm, true) : 0;
	ret = cpr_vm_quiesce(vm);
	if (ret)
		return ret;
	for (i = 0; i < nr_sets; i++) {
		struct cpr_vectors *vs = vss[i];

		if (vs->vm) {
			for (j = 0; j < vs->nr; j++)
				vs->v[j].attached = false;
			/* Only now: KVM has flushed every injection. */
			ret = vectors_note_lapic(vs, vm, &ls);
			if (ret)
				return ret;
		}
		ret = cpr_vectors_save(vs);
		if (ret)
			return ret;
	}
	vm_dispose(vm);
	return relay_err;
}

int cpr_vectors_reattach(struct cpr_vectors *vs)
{
	unsigned int i;
	int ret;

	if (!vs->vm || cpr_vm_priv(vs->vm)->quiesced)
		return cpr_err(-EINVAL, "%s: re-attach: the vectors' VM is %s",
			       vs->dev, vs->vm ? "quiesced" : "gone");
	if (cpr_vm_priv(vs->vm)->relay)
		return cpr_err(-EBUSY,
			       "%s: re-attach while relayed: cpr_vectors_unrelay() gives the irqfds back",
			       vs->dev);
	for (i = 0; i < vs->nr; i++) {
		struct cpr_vector *v = &vs->v[i];

		/* Still in the LAPIC this VM kept: no re-injection. */
		v->lapic_pending = false;
		if (v->attached || v->virq < 0 || v->masked)
			continue;
		ret = cpr_vector_irqfd(vs, i);
		if (ret)
			return ret;
	}
	return cpr_vectors_save(vs);
}
