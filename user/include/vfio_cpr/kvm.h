/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A minimal KVM VM for interrupt delivery checks: in-kernel irqchip, a few
 * vCPUs with their LAPIC software-enabled, MSI routes staged and committed
 * in one KVM_SET_GSI_ROUTING per batch, irqfds, the KVM-VFIO pseudo device,
 * and a tiny real-mode guest whose halted vCPU takes an interrupt in its
 * handler, acknowledges it (EOI) itself and reports the vector with an OUT.
 */
#ifndef VFIO_CPR_KVM_H
#define VFIO_CPR_KVM_H

#include <signal.h>
#include <stdbool.h>
#include <linux/types.h>
#include <stddef.h>

#define CPR_VM_MAX_VCPUS	8
#define CPR_MSI_ADDR_BASE	0xfee00000u
/* GSIs below this are the IOAPIC/PIC pins set up by KVM_CREATE_IRQCHIP. */
#define CPR_GSI_FIRST		24
#define CPR_GSI_MAX		4096
/* Port the real-mode guest's interrupt handler writes the vector to. */
#define CPR_GUEST_PORT		0xe9
/* First vector with a handler in the guest (below are exceptions). */
#define CPR_VECTOR_FIRST	32
/* Realtime signal that interrupts KVM_RUN in cpr_vm_guest_wait(). */
#define CPR_GUEST_WAIT_SIGNAL	(SIGRTMIN + 5)

struct cpr_msi_msg {
	__u32 addr_lo;
	__u32 addr_hi;
	__u32 data;
};

/* Fixed delivery, physical destination @apic_id, edge, @vector. */
static inline struct cpr_msi_msg
cpr_msi_msg_make(unsigned int apic_id, unsigned int vector)
{
	struct cpr_msi_msg m = {
		.addr_lo = CPR_MSI_ADDR_BASE | ((apic_id & 0xff) << 12),
		.addr_hi = 0,
		.data = vector & 0xff,
	};
	return m;
}

static inline unsigned int cpr_msi_msg_vector(const struct cpr_msi_msg *m)
{
	return m->data & 0xff;
}

/*
 * The destination APIC id of @m (physical mode: address bits 19:12).  In a
 * VM of this library APIC id n is vCPU n, before and after the guest's
 * switch to x2APIC mode: the vCPU whose LAPIC the interrupt reaches.
 */
static inline unsigned int cpr_msi_msg_dest(const struct cpr_msi_msg *m)
{
	return (m->addr_lo >> 12) & 0xff;
}

struct kvm_run;
struct kvm_irq_routing;

/*
 * A VM made by cpr_vm_create().  Callers read it through the accessors
 * below (cpr_vm_fd(), cpr_vm_vcpu_fd(), ...); the library keeps more
 * behind it.
 */
struct cpr_vm {
	int kvm_fd;			/* /dev/kvm */
	int vm_fd;			/* -1 once quiesced */
	unsigned int nr_vcpus;
	int vcpu_fd[CPR_VM_MAX_VCPUS];
	struct kvm_run *run[CPR_VM_MAX_VCPUS];
	size_t run_size;

	void *mem;			/* guest memory at GPA 0 */
	size_t mem_size;

	__u64 gsi_used[CPR_GSI_MAX / 64];

	struct kvm_irq_routing *routing;	/* staged routing table */
	unsigned int routes_cap;
	bool routes_dirty;
	unsigned int routing_commits;	/* KVM_SET_GSI_ROUTING calls made */

	int vfio_dev_fd;		/* KVM-VFIO device, -1 until made */
};

/*
 * Open /dev/kvm, create a VM with an in-kernel irqchip and @nr_vcpus vCPUs
 * (APIC ids 0..n-1, LAPIC software-enabled through SVR bit 8 with LINT0
 * masked: the PIC is not used).  From then on interrupts can be routed and
 * reach the LAPICs.  The real-mode guest (memory, image, vCPU registers)
 * comes with cpr_vm_guest_setup(), which cpr_vm_guest_wait() calls itself:
 * its first guest memory slot costs an SRCU grace period (milliseconds),
 * which a handoff does not have to wait for before its interrupts flow.
 * -ENODEV: no /dev/kvm.  Every fd is O_CLOEXEC.
 */
int cpr_vm_create(struct cpr_vm **out, unsigned int nr_vcpus);
/* Close everything the VM holds. NULL is fine. */
void cpr_vm_destroy(struct cpr_vm *vm);

/* The fds of /dev/kvm, of the VM (-1 once quiesced) and of vCPU @vcpu. */
int cpr_vm_kvm_fd(const struct cpr_vm *vm);
int cpr_vm_fd(const struct cpr_vm *vm);
/* -1 for a vCPU the VM does not have. */
int cpr_vm_vcpu_fd(const struct cpr_vm *vm, unsigned int vcpu);
/* The vCPUs made by cpr_vm_create(), APIC ids 0 to n - 1. */
unsigned int cpr_vm_nr_vcpus(const struct cpr_vm *vm);
/* KVM_SET_GSI_ROUTING calls made (cpr_vm_routes_commit() that did one). */
unsigned int cpr_vm_routing_commits(const struct cpr_vm *vm);
/*
 * Irqfds assigned in the VM through the library and not deassigned since;
 * 0 once the VM is quiesced.
 */
unsigned int cpr_vm_nr_irqfds(const struct cpr_vm *vm);

/*
 * Map guest memory at GPA 0, load the real-mode guest into it and make
 * every vCPU runnable at its entry (and, on Intel without unrestricted
 * guest, give KVM its real-mode TSS).  Each vCPU's LAPIC goes to x2APIC
 * mode (KVM_SET_CPUID2 with the x2APIC bit, then the APIC base MSR),
 * keeping what it holds: the guest EOIs through MSR 0x80b.  Once per VM;
 * later calls return 0.
 */
int cpr_vm_guest_setup(struct cpr_vm *vm);

/*
 * Handoff: stop @vm delivering anything, for good, all irqfds at once.
 * Closes the VM fd; KVM's release of the VM file (kvm_vm_release() ->
 * kvm_irqfd_release()) deactivates every irqfd of the VM and waits once
 * for all their shutdown work, which also finishes any injection still in
 * flight (one KVM_IRQFD deassign per vector waits once per vector).  The
 * vCPU fds hold the VM itself alive, so its LAPICs can still be read
 * (cpr_vm_lapic_irr()) and cleared; what needs the VM fd (routes, irqfds,
 * KVM_SIGNAL_MSI, ...) fails with -ESHUTDOWN from now on, and
 * cpr_vm_destroy() releases the rest.  Signals on the eventfds from then
 * on stay in their counters.
 *
 * The release happens in close() only if this was the last reference to
 * the VM file: the fd must not have been dup()ed, passed over a socket or
 * inherited by a child that still runs (cpr_vm_create() makes it
 * O_CLOEXEC, and the library never duplicates it).
 */
int cpr_vm_quiesce(struct cpr_vm *vm);

/* Lowest free GSI >= CPR_GSI_FIRST, or -ENOSPC. */
int cpr_vm_gsi_alloc(struct cpr_vm *vm);
/* Claim a given GSI (successor rebuilding a saved layout); -EBUSY if used. */
int cpr_vm_gsi_claim(struct cpr_vm *vm, unsigned int gsi);
void cpr_vm_gsi_free(struct cpr_vm *vm, unsigned int gsi);

/*
 * Stage an MSI route for @gsi (replacing a staged one for the same GSI) or
 * drop it (a GSI without a staged route: nothing to do).  Nothing reaches
 * KVM until cpr_vm_routes_commit().  -ENOSPC when KVM's table would be
 * full (4096 entries, of which the 40 default pin routes below).
 */
int cpr_vm_route_msi(struct cpr_vm *vm, unsigned int gsi,
		     const struct cpr_msi_msg *msg);
int cpr_vm_route_del(struct cpr_vm *vm, unsigned int gsi);
/* Number of staged MSI routes. */
unsigned int cpr_vm_nr_routes(const struct cpr_vm *vm);
/*
 * One KVM_SET_GSI_ROUTING with every staged route (no-op if unchanged).
 * The table replaces KVM's whole one, so it always carries KVM's default
 * pin routes too: GSI 0-23 to IOAPIC pins 0-23, GSI 0-15 to the PIC.
 */
int cpr_vm_routes_commit(struct cpr_vm *vm);

/*
 * KVM_IRQFD: attach @fd to @gsi (resample_fd < 0 for edge), or detach.
 * An eventfd already signalled is injected when attached, by a kernel
 * worker: poll for the IRR bit rather than test it once.  Each detach
 * waits for KVM's irqfd shutdown work (tens of microseconds); to stop a
 * whole VM before a handoff, cpr_vm_quiesce() pays that once.
 */
int cpr_vm_irqfd_assign(struct cpr_vm *vm, int fd, unsigned int gsi,
			int resample_fd);
int cpr_vm_irqfd_deassign(struct cpr_vm *vm, int fd, unsigned int gsi);

/*
 * Program IOAPIC pin @pin (KVM_GET/SET_IRQCHIP): unmasked, fixed delivery
 * to APIC 0 with @vector, edge- or level-triggered.  An irqfd on GSI @pin
 * then reaches the LAPIC (INTx of a device).
 */
int cpr_vm_ioapic_pin(struct cpr_vm *vm, unsigned int pin,
		      unsigned int vector, bool level);

/* KVM_SIGNAL_MSI: inject @msg now.  -EIO if no LAPIC accepted it. */
int cpr_vm_signal_msi(struct cpr_vm *vm, const struct cpr_msi_msg *msg);

/* The 256-bit IRR of @vcpu's LAPIC, bit v = vector v requested. */
int cpr_vm_lapic_irr(struct cpr_vm *vm, unsigned int vcpu, __u64 irr[4]);
/* 1 if @vector is set in @vcpu's IRR, 0 if not, -errno on failure. */
int cpr_vm_lapic_irr_test(struct cpr_vm *vm, unsigned int vcpu,
			  unsigned int vector);
/*
 * Clear every IRR and ISR bit of @vcpu from outside, on purpose: for a
 * test that wants an empty LAPIC before it raises something.  It is a
 * KVM_GET_LAPIC/KVM_SET_LAPIC read-modify-write: an interrupt injected
 * between the two (an irqfd signalled meanwhile, a relay, another thread)
 * is overwritten, lost.  Never call it while interrupts that must arrive
 * may be in flight, and never to acknowledge what the guest took (the
 * guest EOIs itself).
 */
int cpr_vm_lapic_clear(struct cpr_vm *vm, unsigned int vcpu);

/*
 * Run @vcpu (the real-mode guest, set up by cpr_vm_guest_setup() on the
 * first call, halts with interrupts enabled) until its handler reports a
 * vector through an OUT to CPR_GUEST_PORT.  The handler has EOIed it by
 * then (x2APIC EOI MSR, from inside the guest), so the next interrupt can
 * come at once, and the LAPIC is never written from outside: an interrupt
 * raised by any thread at any time is taken, none lost.  -ETIMEDOUT if
 * nothing came within @timeout_ms (< 0: no limit, 0 is -EINVAL); -EIO with
 * the exit reason for any other exit, or a guest exception.  The time limit
 * is a POSIX timer raising CPR_GUEST_WAIT_SIGNAL at the calling thread; its
 * handler is installed only while a wait runs.
 */
int cpr_vm_guest_wait(struct cpr_vm *vm, unsigned int vcpu, int timeout_ms,
		      unsigned int *vector);

/*
 * 1 if @vcpu stopped inside the real-mode guest's interrupt handler (an
 * interrupt was accepted, left the LAPIC's IRR, and is not reported yet: a
 * signal ended KVM_RUN in between; its ISR bit is clear once the handler
 * EOIed, just before it reports), 0 if not, -errno.  A VMM must not hand
 * off such a vCPU: run it until it reports (cpr_vm_guest_wait()).
 */
int cpr_vm_guest_in_handler(struct cpr_vm *vm, unsigned int vcpu);

/*
 * KVM-VFIO pseudo device: created once, returns its fd.  add/del take a
 * VFIO group fd or, on 6.6+ kernels (KVM_DEV_VFIO_FILE, the same ABI
 * value), a vfio device cdev fd: see cpr_vfio_kvm_file().
 */
int cpr_vm_vfio_dev(struct cpr_vm *vm);
int cpr_vm_vfio_add_group(struct cpr_vm *vm, int group_fd);
int cpr_vm_vfio_del_group(struct cpr_vm *vm, int group_fd);

#endif /* VFIO_CPR_KVM_H */
