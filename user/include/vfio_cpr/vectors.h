/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Interrupt vectors of one device, preserved across a handoff.
 *
 * Each vector owns up to two eventfds, kept in the CPR state as
 * "<device>_interrupt" and "<device>_kvm_interrupt" with index = vector:
 * "interrupt" is read by the userspace handler, "kvm_interrupt" is attached
 * to the VM with KVM_IRQFD.  They are created or reused exactly like QEMU's
 * vfio_notifier_init(): look the name up first, create and save only if it
 * is not there.
 *
 * The MSI message, mask and pending bit of every vector are saved as the
 * section "<device>_msi".  The successor rebuilds the vector set from that
 * section and the inherited fds (cpr_vectors_claim(), QEMU's
 * vfio_cpr_claim_vectors()) without touching the device, routes them in a
 * new VM in one batch and attaches the irqfds.
 */
#ifndef VFIO_CPR_VECTORS_H
#define VFIO_CPR_VECTORS_H

#include <stdbool.h>
#include <linux/types.h>

#include "kvm.h"
#include "state.h"

#define CPR_DEV_NAME_MAX	64
#define CPR_NOTIFY_INTERRUPT	"interrupt"
#define CPR_NOTIFY_KVM		"kvm_interrupt"
#define CPR_VECTORS_MAX		2048	/* MSI-X table size limit */

enum cpr_irq_type {
	CPR_IRQ_NONE = 0,
	CPR_IRQ_INTX,
	CPR_IRQ_MSI,
	CPR_IRQ_MSIX,
};

const char *cpr_irq_type_name(int type);

/*
 * Find "<dev>_<name>"[nr] in @st and reuse it, or create an eventfd
 * (non-blocking, close-on-exec) and save it there.  *@fd gets the fd.
 */
int cpr_notifier_init(struct cpr_state *st, const char *dev, const char *name,
		      __u32 nr, int *fd);
/* Delete the entry and close the fd; *@fd becomes -1. */
void cpr_notifier_cleanup(struct cpr_state *st, const char *dev,
			  const char *name, __u32 nr, int *fd);

struct cpr_vector {
	int interrupt_fd;	/* userspace handler's eventfd, or -1 */
	int kvm_fd;		/* irqfd eventfd, or -1 */
	int virq;		/* GSI in the current VM, or -1 */
	bool attached;		/* irqfd currently assigned */
	struct cpr_msi_msg msg;
	bool masked;
	bool pending;		/* PBA bit: raised while masked */
	bool lapic_pending;	/* was in the old VM's IRR at handoff */
};

struct cpr_vectors;

/* Userspace handler: @count signals were read from vector @i's fd. */
typedef void (*cpr_vector_handler_t)(struct cpr_vectors *vs, unsigned int i,
				     __u64 count, void *arg);

struct cpr_vectors {
	struct cpr_state *st;
	struct cpr_vm *vm;		/* VM the vectors are routed in */
	char dev[CPR_DEV_NAME_MAX];
	int type;			/* enum cpr_irq_type */
	unsigned int nr;
	bool reused;			/* claimed from a handed-off state */
	cpr_vector_handler_t handler;
	void *handler_arg;
	__u64 handled;		/* signals seen by the handler */
	struct cpr_vector v[];
};

/* What cpr_vectors_create() makes for each vector. */
#define CPR_VEC_INTERRUPT	0x1	/* the userspace "interrupt" fd */
#define CPR_VEC_KVM		0x2	/* the "kvm_interrupt" irqfd fd */

/*
 * Make @nr vectors for @dev with the fds @flags asks for (created or reused
 * through the store), all unmasked, MSI message = fixed delivery to APIC 0,
 * vector CPR_VECTOR_FIRST + i % (256 - CPR_VECTOR_FIRST).
 */
int cpr_vectors_create(struct cpr_state *st, const char *dev, int type,
		       unsigned int nr, unsigned int flags,
		       struct cpr_vectors **out);

/* Release the memory. With @cleanup also delete the entries, close fds. */
void cpr_vectors_free(struct cpr_vectors *vs, bool cleanup);

int cpr_vectors_set_msg(struct cpr_vectors *vs, unsigned int i,
			const struct cpr_msi_msg *msg);

/*
 * Route every vector that has a kvm_interrupt fd in @vm: a GSI each, all
 * routes in one KVM_SET_GSI_ROUTING, then KVM_IRQFD for the unmasked ones,
 * then re-inject what was pending in the old VM's LAPIC at handoff.
 * Vectors without one get virq = -1.
 */
int cpr_vectors_attach(struct cpr_vectors *vs, struct cpr_vm *vm);

/*
 * Stop delivering into the current VM before a handoff: deassign every
 * irqfd (interrupts raised from now on accumulate in the eventfd counters),
 * mark the handoff start, note which routed vectors are still pending in
 * the VM's LAPIC IRR, and save the section.  The VM may be destroyed next.
 */
int cpr_vectors_detach(struct cpr_vectors *vs);

/*
 * A handoff given up after cpr_vectors_detach() (a socket successor died or
 * refused): attach the irqfds again in the same, still running VM.  What
 * the eventfds counted meanwhile is injected; what the detach found in the
 * LAPIC is still there and is not injected twice.
 */
int cpr_vectors_reattach(struct cpr_vectors *vs);

/* Mask / unmask vector @i (MSI-X per-vector mask). */
int cpr_vectors_mask(struct cpr_vectors *vs, unsigned int i);
int cpr_vectors_unmask(struct cpr_vectors *vs, unsigned int i);

/*
 * Read every "interrupt" fd (non-blocking) and call the handler; also
 * collect signals of masked vectors' kvm_interrupt fds into their pending
 * bit.  Returns the number of signals seen, or -errno.
 */
int cpr_vectors_poll(struct cpr_vectors *vs);

/* Save the "<dev>_msi" section (messages, masks, pending bits). */
int cpr_vectors_save(struct cpr_vectors *vs);

/*
 * Successor: rebuild @dev's vectors from the "<dev>_msi" section and the
 * inherited fds in @st, without any device access: a handler on every
 * saved "interrupt" fd, a route + irqfd in @vm for every saved
 * "kvm_interrupt" fd (all routes in one commit), virq -1 where none was
 * saved, masked+pending kept pending, and vectors that were pending in the
 * old VM's LAPIC re-injected.  A NULL @vm only rebuilds the bookkeeping.
 */
int cpr_vectors_claim(struct cpr_state *st, const char *dev,
		      struct cpr_vm *vm, struct cpr_vectors **out);

/* Section name for @dev: "<dev>_msi". */
#define CPR_SEC_MSI_SUFFIX	"_msi"

#endif /* VFIO_CPR_VECTORS_H */
