// SPDX-License-Identifier: GPL-2.0-only
/*
 * blackout_floor: the bare minimum of an exec handoff of N MSI vectors
 * into a new KVM VM, the floor blackout_bench compares the library with.
 * No vfio_cpr library (nor its constructors), no state, no checks:
 *
 *   predecessor  exec, its old VM (guest memory, irqchip, a vCPU, N irqfds)
 *		  still attached: close-on-exec tears it down in the exec,
 *		  which is the same teardown the library's handoff pays
 *   successor	  raise the last vector (nothing could be raised between
 *		  that teardown and the exec's end), KVM_CREATE_VM,
 *		  KVM_CREATE_IRQCHIP, KVM_CREATE_VCPU, KVM_GET/SET_LAPIC (a
 *		  LAPIC out of reset is software-disabled and drops fixed
 *		  interrupts), one KVM_SET_GSI_ROUTING with N MSI routes, N
 *		  KVM_IRQFD; the eventfds come across by number
 *		  (FLOOR_FD_BASE + 2 * i: "interrupt", + 1: irqfd), then
 *		  read the LAPIC until the interrupt is in its IRR
 *
 * Guest memory is added after the measurement, off the clock: every real
 * VM has some, and KVM takes as long (an SRCU grace period) to destroy a
 * VM that never had a memory slot as to give it its first one.
 *
 * floor-pre: the same, but the predecessor deassigns its irqfds one by one
 * before the clock starts, so that the exec's teardown has none to wait
 * for: the floor of a handoff whose old irqfds are gone beforehand (what
 * the library's relay achieves, without the relay).
 *
 * Started by blackout_bench only (argv: see bench.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

#include "bench.h"

#define FLOOR_FD_BASE	32
#define FLOOR_MEM_SIZE	0x10000
#define MSI_ADDR	0xfee00000u	/* fixed delivery to APIC id 0 */
#define GSI_FIRST	24		/* above the IOAPIC pins */
#define VECTOR_FIRST	32

struct floor_vm {
	int kvm, vm, vcpu;
};

/* The library's layout: vector i is LAPIC vector 32 + i % 224. */
static unsigned int lapic_vector(unsigned int i)
{
	return VECTOR_FIRST + i % (256 - VECTOR_FIRST);
}

static int xioctl(int fd, unsigned long req, void *arg, const char *what)
{
	int ret = ioctl(fd, req, arg);

	if (ret < 0)
		bench_die(what, errno);
	return ret;
}

static void floor_vm_memory(struct floor_vm *f)
{
	struct kvm_userspace_memory_region region = {
		.memory_size = FLOOR_MEM_SIZE,
	};
	void *mem;

	mem = mmap(NULL, FLOOR_MEM_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		bench_die("mmap guest memory", errno);
	region.userspace_addr = (unsigned long)mem;
	xioctl(f->vm, KVM_SET_USER_MEMORY_REGION, &region,
	       "KVM_SET_USER_MEMORY_REGION");
}

static void floor_vm_create(struct floor_vm *f, unsigned int nr)
{
	struct kvm_irq_routing *r;
	struct kvm_lapic_state s;
	struct kvm_irqfd irqfd;
	unsigned int i;
	__u32 svr;

	/* KVM makes its VM and vCPU fds close-on-exec itself. */
	f->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (f->kvm < 0)
		bench_die("open /dev/kvm", errno);
	f->vm = xioctl(f->kvm, KVM_CREATE_VM, 0, "KVM_CREATE_VM");
	xioctl(f->vm, KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP");
	f->vcpu = xioctl(f->vm, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU");
	xioctl(f->vcpu, KVM_GET_LAPIC, &s, "KVM_GET_LAPIC");
	svr = bench_reg32(&s, BENCH_APIC_SVR) | 0x1ff;
	memcpy(&s.regs[BENCH_APIC_SVR], &svr, sizeof(svr));
	xioctl(f->vcpu, KVM_SET_LAPIC, &s, "KVM_SET_LAPIC");

	r = calloc(1, sizeof(*r) + nr * sizeof(r->entries[0]));
	if (!r)
		bench_die("routing table", ENOMEM);
	r->nr = nr;
	for (i = 0; i < nr; i++) {
		r->entries[i].gsi = GSI_FIRST + i;
		r->entries[i].type = KVM_IRQ_ROUTING_MSI;
		r->entries[i].u.msi.address_lo = MSI_ADDR;
		r->entries[i].u.msi.data = lapic_vector(i);
	}
	xioctl(f->vm, KVM_SET_GSI_ROUTING, r, "KVM_SET_GSI_ROUTING");
	free(r);
	memset(&irqfd, 0, sizeof(irqfd));
	for (i = 0; i < nr; i++) {
		irqfd.fd = FLOOR_FD_BASE + 2 * i + 1;
		irqfd.gsi = GSI_FIRST + i;
		xioctl(f->vm, KVM_IRQFD, &irqfd, "KVM_IRQFD");
	}
}

static void floor_handoff(struct chain *c, struct floor_vm *f)
{
	struct kvm_irqfd irqfd = { .flags = KVM_IRQFD_FLAG_DEASSIGN };
	struct chain_argv a;
	unsigned int i;

	bench_lapic_clear(f->vcpu);
	for (i = 0; c->mode == MODE_FLOOR_PRE && i < c->nr; i++) {
		irqfd.fd = FLOOR_FD_BASE + 2 * i + 1;
		irqfd.gsi = GSI_FIRST + i;
		xioctl(f->vm, KVM_IRQFD, &irqfd, "KVM_IRQFD deassign");
	}
	execv("/proc/self/exe",
	      bench_next_argv(&a, c, program_invocation_name, -1));
	bench_die("execv /proc/self/exe", errno);
}

static void floor_first(struct chain *c)
{
	struct floor_vm f;
	unsigned int i;

	/* One block of fd numbers: its base is all the successor needs. */
	for (i = 0; i < 2 * c->nr; i++) {
		int fd = eventfd(0, EFD_NONBLOCK);

		if (fd < 0 || dup2(fd, FLOOR_FD_BASE + i) < 0)
			bench_die("eventfd", errno);
		close(fd);
	}
	floor_vm_create(&f, c->nr);
	floor_vm_memory(&f);
	floor_handoff(c, &f);
}

static void floor_next(struct chain *c)
{
	struct floor_vm f;

	/* The handoff started when the predecessor called exec. */
	c->start = c->t[PH_EXEC];
	bench_raise(FLOOR_FD_BASE + 2 * (c->nr - 1) + 1);
	c->t[PH_RESUMED] = bench_now_ns();
	floor_vm_create(&f, c->nr);
	c->t[PH_VM] = bench_now_ns();
	c->t[PH_ATTACHED] = c->t[PH_VM];
	bench_wait_irr(f.vcpu, lapic_vector(c->nr - 1));
	c->t[PH_SEEN] = bench_now_ns();
	floor_vm_memory(&f);
	bench_report(c);
	if (c->gen == c->len)
		exit(0);
	floor_handoff(c, &f);
}

int main(int argc, char **argv)
{
	__u64 t_main = bench_now_ns();
	struct chain c;

	bench_chain_parse(&c, argc, argv, t_main);
	if (!bench_mode_is_floor(c.mode))
		bench_die("blackout_floor runs floor chains only", 0);
	if (!c.gen)
		floor_first(&c);
	floor_next(&c);
	return 0;
}
