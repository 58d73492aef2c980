/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Interrupt vectors of one device, preserved across a handoff.
 *
 * A set holds the vectors in use, each with its entry: the MSI-X table
 * entry (the MSI vector number for MSI).  A device with a 2048-entry table
 * may use a few of them, anywhere in the table, as a VMM does when its
 * guest unmasks vectors one by one.
 *
 * Each vector owns up to two eventfds, kept in the CPR state as
 * "<device>_interrupt" and "<device>_kvm_interrupt" with index = entry:
 * "interrupt" is read by the userspace handler, "kvm_interrupt" is attached
 * to the VM with KVM_IRQFD.  They are created or reused exactly like QEMU's
 * vfio_notifier_init(): look the name up first, create and save only if it
 * is not there.
 *
 * The entries in use, the table size and the MSI message, mask and pending
 * bit of every vector are saved as the section "<device>_msi".  The
 * successor rebuilds exactly that vector set from the section and the
 * inherited fds (cpr_vectors_claim(), QEMU's vfio_cpr_claim_vectors())
 * without touching the device, routes them in a new VM in one batch and
 * attaches the irqfds.
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
	__u32 entry;		/* MSI-X table entry (MSI: vector number) */
	int interrupt_fd;	/* userspace handler's eventfd, or -1 */
	int kvm_fd;		/* irqfd eventfd, or -1 */
	int virq;		/* GSI in the current VM, or -1 */
	bool attached;		/* irqfd currently assigned */
	struct cpr_msi_msg msg;
	bool masked;
	bool pending;		/* PBA bit: raised while masked */
	bool lapic_pending;	/* was in the old VM's IRR at handoff */
	bool relayed;		/* irqfd replaced by the relay thread */
};

struct cpr_vectors;

/*
 * Userspace handler: @count signals were read from the fd of vs->v[@i]
 * (table entry vs->v[@i].entry).
 */
typedef void (*cpr_vector_handler_t)(struct cpr_vectors *vs, unsigned int i,
				     __u64 count, void *arg);

struct cpr_vectors {
	struct cpr_state *st;
	struct cpr_vm *vm;		/* VM the vectors are routed in */
	char dev[CPR_DEV_NAME_MAX];
	int type;			/* enum cpr_irq_type */
	unsigned int nr;		/* vectors in use: v[0 .. nr - 1] */
	unsigned int table_size;	/* entries of the device's table */
	bool reused;			/* claimed from a handed-off state */
	cpr_vector_handler_t handler;
	void *handler_arg;
	__u64 handled;		/* signals seen by the handler */
	/*
	 * In ascending order of entry.  Where a function takes a vector @i,
	 * it is the position in v[], which is the entry in a set of entries
	 * 0 .. nr - 1; cpr_vectors_find() turns an entry into a position.
	 */
	struct cpr_vector *v;
};

/* What cpr_vectors_create() makes for each vector. */
#define CPR_VEC_INTERRUPT	0x1	/* the userspace "interrupt" fd */
#define CPR_VEC_KVM		0x2	/* the "kvm_interrupt" irqfd fd */

/*
 * Make @nr vectors for @dev, entries 0 .. @nr - 1 of a table of @nr, with
 * the fds @flags asks for (created or reused through the store), all
 * unmasked, v[i]'s MSI message = fixed delivery to APIC 0, vector
 * CPR_VECTOR_FIRST + i % (256 - CPR_VECTOR_FIRST).  Refused up front with
 * -EMFILE, nothing made, when the new eventfds plus the open fds plus
 * CPR_FD_HEADROOM (fd.h) exceed RLIMIT_NOFILE's soft limit.
 */
int cpr_vectors_create(struct cpr_state *st, const char *dev, int type,
		       unsigned int nr, unsigned int flags,
		       struct cpr_vectors **out);
/*
 * The same for the @nr entries @entries (strictly increasing, each below
 * @table_size, at most CPR_VECTORS_MAX) of a table of @table_size: vector
 * v[i] is entry @entries[i], its fds saved under that entry, its MSI
 * message as cpr_vectors_create() gives v[i].  cpr_vectors_create() is
 * this for entries 0 .. @nr - 1 of a table of @nr.
 */
int cpr_vectors_create_entries(struct cpr_state *st, const char *dev,
			       int type, unsigned int table_size,
			       const unsigned int *entries, unsigned int nr,
			       unsigned int flags, struct cpr_vectors **out);

/*
 * Add vectors for the @nr entries @entries (strictly increasing, below the
 * table size, none in the set yet) to @vs, with the fds @flags asks for
 * (created or reused through the store, as cpr_vectors_create() does),
 * unmasked, the k-th new one's MSI message that of vector @vs->nr + k of
 * cpr_vectors_create().  In a set routed in a VM they are routed there too
 * (one routing commit) and their irqfds attached.  v[] is re-allocated and
 * the positions after an added entry shift.  Refused (-EBUSY) while the
 * set is relayed.  On failure @vs is as it was.  The device is not told:
 * see cpr_vfio_msix_add().
 */
int cpr_vectors_add(struct cpr_vectors *vs, const unsigned int *entries,
		    unsigned int nr, unsigned int flags);

/* The position in v[] of the vector of table entry @entry, or -ENOENT. */
int cpr_vectors_find(const struct cpr_vectors *vs, unsigned int entry);

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
 * cpr_vectors_attach() of the @nr_sets sets @vss (a VMM's devices, none
 * in a VM yet, each given once) at once: the routes of every set in one
 * KVM_SET_GSI_ROUTING, then the irqfds, then the re-injections.  On
 * failure no set is in @vm.
 */
int cpr_vectors_attach_sets(struct cpr_vm *vm, struct cpr_vectors *const *vss,
			    unsigned int nr_sets);

/*
 * Stop delivering into the current VM before a handoff: mark the handoff
 * start, deassign every irqfd (interrupts raised from now on accumulate in
 * the eventfd counters), note which routed vectors are still pending in
 * the VM's LAPIC IRR, and save the section.  The VM may be destroyed next,
 * or live on (another device's vectors, a handoff that is given up).
 * One KVM_IRQFD deassign per vector, each waiting for KVM's irqfd shutdown
 * work: tens of microseconds a vector.
 */
int cpr_vectors_detach(struct cpr_vectors *vs);

/*
 * The handoff's fast path, for a VM that is being replaced: detach the
 * @nr_sets vector sets @vss, which must be every set routed in @vm, from
 * it in one go.  Marks the handoff start (in each set's state), stops the
 * relay if cpr_vectors_relay() started one (waiting for what it is
 * injecting), then quiesces @vm (cpr_vm_quiesce(): its fd is closed and
 * KVM deactivates every irqfd still there at once, waiting once), and
 * only then reads the LAPIC IRRs through the vCPU fds, so that whatever
 * reached them up to the very end is seen: a routed vector whose LAPIC
 * vector is pending is marked for re-injection (once per LAPIC vector and
 * vCPU across all sets), the sections are saved.  Same result as
 * cpr_vectors_detach() on each set, but the VM cannot be used afterwards
 * except to read or clear its LAPICs and to be destroyed, and what
 * cpr_vm_quiesce() requires holds.  What is slow to tear down and no
 * longer needed, the relay's epoll set and (without a KVM-VFIO device)
 * the old VM itself, is handed to the successor to close after its
 * blackout (cpr_dispose_fd()).
 *
 * -EBUSY, with nothing done, if @vm has irqfds that none of the sets
 * accounts for (an INTx irqfd assigned with cpr_vm_irqfd_assign(), say):
 * what they left in the LAPIC would be lost.  Sets of another VM: -EINVAL.
 * A set not routed in any VM is only saved.  If the relay failed to inject
 * a signal it consumed, that is reported here (-errno, the vector named),
 * after the rest was done.
 */
int cpr_vectors_detach_vm(struct cpr_vm *vm, struct cpr_vectors *const *vss,
			  unsigned int nr_sets);

/*
 * Ahead of a handoff, while @vm still runs: take what KVM makes slow out
 * of the blackout.  Releasing a VM's irqfds costs KVM an SRCU grace period
 * and a work item each (about 10 ms for 2048, whether one by one or with
 * the VM fd's release), and the new VM cannot attach an eventfd before the
 * old VM's irqfd on it is gone (newer kernels refuse it: EBUSY).  So here
 * every attached vector of the @nr_sets sets @vss (every set routed in
 * @vm, as for cpr_vectors_detach_vm()) loses its irqfd, one KVM_IRQFD
 * deassign after the other (~50 us each: 0.1 s for 2048), and a thread of
 * the library relays it instead: a signal on its eventfd is read and
 * injected with KVM_SIGNAL_MSI, so nothing is late by more than the
 * thread's wake-up.  cpr_vectors_detach_vm() then only has to stop the
 * thread.  cpr_vectors_unrelay() gives the vectors their irqfds back.
 *
 * While relayed, the sets must not be masked, unmasked, given new
 * messages, freed or exec()ed away (exec ends the thread): detach or
 * unrelay first.  On failure nothing is relayed and every irqfd is back.
 */
int cpr_vectors_relay(struct cpr_vm *vm, struct cpr_vectors *const *vss,
		      unsigned int nr_sets);
/*
 * Undo cpr_vectors_relay(): the thread stopped first (a signal it did not
 * read stays in its counter, and KVM injects that when the irqfd comes
 * back), then every relayed vector's irqfd assigned again.
 */
int cpr_vectors_unrelay(struct cpr_vm *vm);

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

/*
 * Save the "<dev>_msi" section: the entries in use and the table size,
 * messages, masks, pending bits.  A set of entries 0 .. nr - 1 is saved in
 * the section's first layout (version 1), which a successor built before
 * sparse sets also claims; any other set in version 2, which names its
 * entries (such a successor refuses it: unknown version).
 */
int cpr_vectors_save(struct cpr_vectors *vs);

/*
 * Successor: rebuild @dev's vectors from the "<dev>_msi" section and the
 * inherited fds in @st, without any device access: exactly the entries the
 * section names (version 1: entries 0 .. nr - 1) and its table size, the
 * fds saved under each entry, a handler on every saved "interrupt" fd, a
 * route + irqfd in @vm for every saved "kvm_interrupt" fd (all routes in
 * one commit), virq -1 where none was saved, masked+pending kept pending,
 * and vectors that were pending in the old VM's LAPIC re-injected.  A NULL
 * @vm only rebuilds the bookkeeping.
 */
int cpr_vectors_claim(struct cpr_state *st, const char *dev,
		      struct cpr_vm *vm, struct cpr_vectors **out);

/* Section name for @dev: "<dev>_msi". */
#define CPR_SEC_MSI_SUFFIX	"_msi"

#endif /* VFIO_CPR_VECTORS_H */
