// SPDX-License-Identifier: GPL-2.0-only
/*
 * The tiny real-mode guest of the vfio_cpr KVM VM: its memory, its image
 * and its vCPUs' set-up, and the loop that runs a vCPU until its interrupt
 * handler reports a vector.
 *
 * Guest memory (segment 0, guest physical = offset in vm->mem):
 *
 *   0x0000  IVT: 256 far pointers, vector v -> stub v
 *   0x0400  main loop: sti; hlt; jmp back
 *   0x0500  stubs, 8 bytes each: vectors from CPR_VECTOR_FIRST save the
 *           registers, put their number in BL and jump to the common
 *           handler; lower ones (exceptions) OUT theirs to GUEST_FAULT_PORT
 *           and stop
 *   0x0d00  common handler: EOI, OUT the vector to CPR_GUEST_PORT, IRET
 *   0x8000  top of vCPU 0's stack, each next vCPU's 1 KiB lower
 *
 * The guest acknowledges its interrupts itself: its LAPIC is put in x2APIC
 * mode (the x2APIC CPUID bit with KVM_SET_CPUID2, then EXTD in the APIC
 * base MSR with KVM_SET_MSRS), in which the EOI register is MSR 0x80b, a
 * WRMSR away even in real mode.  The handler EOIs before it reports, so
 * that when KVM_RUN returns with the vector the ISR is clear again, and
 * nothing outside the guest ever writes the LAPIC while it runs: a
 * KVM_GET_LAPIC/KVM_SET_LAPIC from outside would overwrite an interrupt
 * injected between the two.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <linux/types.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "vfio_cpr/kvm.h"
#include "vfio_cpr/log.h"

#include "internal.h"

#define GUEST_MEM_SIZE		0x10000u	/* 64 KiB at GPA 0 */
#define GUEST_IVT		0x0000u
#define GUEST_MAIN		0x0400u
#define GUEST_STUBS		0x0500u
#define GUEST_STUB_SIZE		8u
#define GUEST_COMMON		(GUEST_STUBS + 256 * GUEST_STUB_SIZE)
#define GUEST_COMMON_SIZE	0x20u
#define GUEST_STACK_TOP		0x8000u
#define GUEST_STACK_SIZE	0x0400u
#define GUEST_FAULT_PORT	(CPR_GUEST_PORT + 1)
#define GUEST_IMAGE_END		(GUEST_COMMON + GUEST_COMMON_SIZE)

#define MSR_IA32_APICBASE	0x0000001bu
#define APICBASE_EXTD		0x400ull	/* bit 10: x2APIC mode */
#define APICBASE_ENABLE		0x800ull	/* bit 11 */
#define MSR_X2APIC_EOI		0x0000080bu
#define CPUID_1_EDX_APIC	0x00000200u	/* bit 9 */
#define CPUID_1_ECX_X2APIC	0x00200000u	/* bit 21 */
#define VECTOR_GP		13

/* Where Intel's real-mode support may put its TSS (3 pages), as QEMU does. */
#define VMX_TSS_ADDR		0xfffbd000ul

#if GUEST_FAULT_PORT > 0xff
#error "OUT imm8 needs ports below 256"
#endif
#if (GUEST_STACK_TOP - GUEST_IMAGE_END) / GUEST_STACK_SIZE < CPR_VM_MAX_VCPUS
#error "the vCPU stacks overlap the guest code"
#endif

#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))

/* Older C libraries name the thread id of SIGEV_THREAD_ID differently. */
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

static __u8 *put8(__u8 *p, __u8 b)
{
	*p = b;
	return p + 1;
}

static __u8 *put16(__u8 *p, __u16 w)
{
	p = put8(p, w & 0xff);
	return put8(p, w >> 8);
}

static __u8 *put32(__u8 *p, __u32 l)
{
	p = put16(p, l & 0xffff);
	return put16(p, l >> 16);
}

static void guest_stub(__u8 *p, unsigned int stub, unsigned int vector)
{
	if (vector >= CPR_VECTOR_FIRST) {
		p = put8(p, 0x66);		/* pushad (32-bit operands) */
		p = put8(p, 0x60);
		p = put8(p, 0xb3);		/* mov bl, imm8 */
		p = put8(p, vector);		/*   the vector */
		p = put8(p, 0xe9);		/* jmp rel16 */
		p = put16(p, GUEST_COMMON - (stub + 7));
		put8(p, 0x90);			/* nop (padding) */
		return;
	}
	p = put8(p, 0xb0);			/* mov al, imm8 */
	p = put8(p, vector);			/*   the vector */
	p = put8(p, 0xe6);			/* out imm8, al */
	p = put8(p, GUEST_FAULT_PORT);		/*   the port */
	p = put8(p, 0xfa);			/* cli */
	p = put8(p, 0xf4);			/* hlt */
	p = put8(p, 0xeb);			/* jmp rel8 */
	put8(p, 0xfd);				/*   back to the hlt */
}

/*
 * The handler every vector's stub jumps to, its number in BL: the EOI
 * first (x2APIC EOI register: WRMSR, which takes 0 in EDX:EAX), then the
 * report, so that the ISR bit is clear when KVM_RUN returns with it.  No
 * interrupt comes in between: the CPU cleared IF when it took this one.
 */
static __u8 *guest_common(__u8 *p)
{
	p = put8(p, 0x66);			/* mov ecx, imm32 */
	p = put8(p, 0xb9);
	p = put32(p, MSR_X2APIC_EOI);		/*   the EOI MSR */
	p = put8(p, 0x66);			/* xor eax, eax */
	p = put8(p, 0x31);
	p = put8(p, 0xc0);
	p = put8(p, 0x66);			/* xor edx, edx */
	p = put8(p, 0x31);
	p = put8(p, 0xd2);
	p = put8(p, 0x0f);			/* wrmsr */
	p = put8(p, 0x30);
	p = put8(p, 0x88);			/* mov al, bl */
	p = put8(p, 0xd8);
	p = put8(p, 0xe6);			/* out imm8, al */
	p = put8(p, CPR_GUEST_PORT);		/*   the port */
	p = put8(p, 0x66);			/* popad */
	p = put8(p, 0x61);
	return put8(p, 0xcf);			/* iret */
}

static int guest_load(struct cpr_vm *vm)
{
	__u8 *mem = vm->mem;
	__u8 *p;
	unsigned int v;

	if (vm->mem_size < GUEST_STACK_TOP)
		return cpr_err(-EINVAL,
			       "loading the guest into vm fd %d: %zu bytes of memory, need %u",
			       vm->vm_fd, vm->mem_size, GUEST_STACK_TOP);
	memset(mem, 0, GUEST_STACK_TOP);

	for (v = 0; v < 256; v++) {
		unsigned int stub = GUEST_STUBS + v * GUEST_STUB_SIZE;

		p = put16(mem + GUEST_IVT + 4 * v, stub);	/* offset */
		put16(p, 0);				/* segment */
		guest_stub(mem + stub, stub, v);
	}
	p = guest_common(mem + GUEST_COMMON);
	if (p > mem + GUEST_IMAGE_END)
		return cpr_err(-EOVERFLOW,
			       "loading the guest into vm fd %d: its handler overruns its %u bytes",
			       vm->vm_fd, GUEST_COMMON_SIZE);

	p = mem + GUEST_MAIN;
	p = put8(p, 0xfb);			/* sti (after the next one) */
	p = put8(p, 0xf4);			/* hlt, in the kernel */
	p = put8(p, 0xeb);			/* jmp rel8 */
	put8(p, 0xfc);				/*   back to the sti */
	return 0;
}

static void real_mode_seg(struct kvm_segment *s)
{
	s->base = 0;
	s->selector = 0;
	s->limit = 0xffff;
}

/*
 * x2APIC mode for @vcpu's LAPIC, so that the guest can EOI with a WRMSR:
 * KVM takes EXTD in the APIC base MSR only with the x2APIC bit in the
 * vCPU's CPUID, which has to be set before its first KVM_RUN.  What the
 * LAPIC holds (enable bit, LVTs, pending interrupts) stays as it was; its
 * id becomes the x2APIC id, which KVM makes the vCPU's index, as the
 * xAPIC id was: MSI routes to APIC id n still reach vCPU n.
 */
static int guest_x2apic(struct cpr_vm *vm, unsigned int vcpu)
{
	int fd = vm->vcpu_fd[vcpu];
	struct kvm_cpuid2 *cpuid;
	struct kvm_msrs *msrs;
	int ret;

	cpuid = calloc(1, sizeof(*cpuid) + sizeof(cpuid->entries[0]));
	msrs = calloc(1, sizeof(*msrs) + sizeof(msrs->entries[0]));
	if (!cpuid || !msrs) {
		ret = cpr_err(-ENOMEM, "x2APIC set-up of vcpu %u", vcpu);
		goto out;
	}
	cpuid->nent = 1;
	cpuid->entries[0].function = 1;
	cpuid->entries[0].ecx = CPUID_1_ECX_X2APIC;
	cpuid->entries[0].edx = CPUID_1_EDX_APIC;
	if (ioctl(fd, KVM_SET_CPUID2, cpuid) < 0) {
		ret = cpr_err(-errno,
			      "KVM_SET_CPUID2 vcpu %u (fd %d): leaf 1 with x2APIC",
			      vcpu, fd);
		goto out;
	}

	msrs->nmsrs = 1;
	msrs->entries[0].index = MSR_IA32_APICBASE;
	ret = ioctl(fd, KVM_GET_MSRS, msrs);
	if (ret != 1) {
		ret = cpr_err(ret < 0 ? -errno : -EIO,
			      "KVM_GET_MSRS vcpu %u (fd %d): IA32_APIC_BASE",
			      vcpu, fd);
		goto out;
	}
	msrs->entries[0].data |= APICBASE_ENABLE | APICBASE_EXTD;
	ret = ioctl(fd, KVM_SET_MSRS, msrs);
	if (ret != 1)
		ret = cpr_err(ret < 0 ? -errno : -EIO,
			      "KVM_SET_MSRS vcpu %u (fd %d): IA32_APIC_BASE 0x%llx (x2APIC mode) refused",
			      vcpu, fd,
			      (unsigned long long)msrs->entries[0].data);
	else
		ret = 0;
out:
	free(cpuid);
	free(msrs);
	return ret;
}

static int guest_vcpu_init(struct cpr_vm *vm, unsigned int vcpu)
{
	int fd = vm->vcpu_fd[vcpu];
	struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	int ret;

	ret = guest_x2apic(vm, vcpu);
	if (ret)
		return ret;
	if (ioctl(fd, KVM_GET_SREGS, &sregs) < 0)
		return cpr_err(-errno, "KVM_GET_SREGS vcpu %u (fd %d)", vcpu,
			       fd);
	/* Reset state is real mode with CS at 0xf0000: move it all to 0. */
	real_mode_seg(&sregs.cs);
	real_mode_seg(&sregs.ds);
	real_mode_seg(&sregs.es);
	real_mode_seg(&sregs.fs);
	real_mode_seg(&sregs.gs);
	real_mode_seg(&sregs.ss);
	sregs.idt.base = GUEST_IVT;
	sregs.idt.limit = 256 * 4 - 1;
	sregs.cr0 &= ~1ull;			/* PE off */
	if (ioctl(fd, KVM_SET_SREGS, &sregs) < 0)
		return cpr_err(-errno,
			       "KVM_SET_SREGS vcpu %u (fd %d) real mode",
			       vcpu, fd);

	memset(&regs, 0, sizeof(regs));
	regs.rip = GUEST_MAIN;
	regs.rsp = GUEST_STACK_TOP - vcpu * GUEST_STACK_SIZE;
	regs.rflags = 0x2;			/* reserved bit 1, IF off */
	if (ioctl(fd, KVM_SET_REGS, &regs) < 0)
		return cpr_err(-errno,
			       "KVM_SET_REGS vcpu %u (fd %d) rip 0x%llx rsp 0x%llx",
			       vcpu, fd, (unsigned long long)regs.rip,
			       (unsigned long long)regs.rsp);

	/* APs wait for INIT/SIPI with an in-kernel irqchip: start them. */
	if (ioctl(fd, KVM_SET_MP_STATE, &mp) < 0)
		return cpr_err(-errno,
			       "KVM_SET_MP_STATE vcpu %u (fd %d) runnable",
			       vcpu, fd);
	return 0;
}

/* Guest memory at GPA 0 (and, where real mode needs it, the TSS). */
static int guest_mem(struct cpr_vm *vm)
{
	struct kvm_userspace_memory_region region;
	void *mem;

	/* Real mode on Intel without unrestricted guest needs a TSS. */
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_TSS_ADDR) > 0 &&
	    ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, VMX_TSS_ADDR) < 0)
		return cpr_err(-errno, "KVM_SET_TSS_ADDR 0x%lx on vm fd %d",
			       VMX_TSS_ADDR, vm->vm_fd);

	mem = mmap(NULL, GUEST_MEM_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return cpr_err(-errno, "mmap %u bytes of guest memory",
			       GUEST_MEM_SIZE);
	vm->mem = mem;
	vm->mem_size = GUEST_MEM_SIZE;

	memset(&region, 0, sizeof(region));
	region.slot = 0;
	region.guest_phys_addr = 0;
	region.memory_size = vm->mem_size;
	region.userspace_addr = (uintptr_t)vm->mem;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		int ret = cpr_err(-errno,
				  "KVM_SET_USER_MEMORY_REGION slot 0 gpa 0 size 0x%zx at %p on vm fd %d",
				  vm->mem_size, vm->mem, vm->vm_fd);

		munmap(vm->mem, vm->mem_size);
		vm->mem = NULL;
		return ret;
	}
	return 0;
}

int cpr_vm_guest_setup(struct cpr_vm *vm)
{
	unsigned int i;
	int ret;

	if (cpr_vm_priv(vm)->guest_ready)
		return 0;
	ret = cpr_vm_live(vm, "setting up the guest");
	if (!ret && !vm->mem)
		ret = guest_mem(vm);
	if (!ret)
		ret = guest_load(vm);
	for (i = 0; i < vm->nr_vcpus && !ret; i++)
		ret = guest_vcpu_init(vm, i);
	if (!ret)
		cpr_vm_priv(vm)->guest_ready = true;
	return ret;
}

/*
 * The timeout: a POSIX timer signals this thread.  The handler marks the
 * wait as expired and sets immediate_exit, so that a signal arriving just
 * before KVM_RUN enters the guest still makes it return at once.
 */
static __thread struct kvm_run *wait_run;
static __thread int wait_expired;

/* The handler is process-wide: install it for the first waiter only. */
static pthread_mutex_t wait_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned int wait_users;
static struct sigaction wait_old_action;

static void wait_alarm(int sig)
{
	struct kvm_run *run = __atomic_load_n(&wait_run, __ATOMIC_RELAXED);

	(void)sig;
	__atomic_store_n(&wait_expired, 1, __ATOMIC_RELAXED);
	if (run)
		__atomic_store_n(&run->immediate_exit, 1, __ATOMIC_RELAXED);
}

static int wait_handler_get(void)
{
	struct sigaction sa;
	int ret = 0;

	memset(&sa, 0, sizeof(sa));
	/* No SA_RESTART: KVM_RUN must fail with EINTR. */
	sa.sa_handler = wait_alarm;
	sigemptyset(&sa.sa_mask);
	pthread_mutex_lock(&wait_lock);
	if (!wait_users &&
	    sigaction(CPR_GUEST_WAIT_SIGNAL, &sa, &wait_old_action) < 0)
		ret = cpr_err(-errno,
			      "sigaction signal %d for the guest wait timer",
			      CPR_GUEST_WAIT_SIGNAL);
	if (!ret)
		wait_users++;
	pthread_mutex_unlock(&wait_lock);
	return ret;
}

static void wait_handler_put(void)
{
	pthread_mutex_lock(&wait_lock);
	if (!--wait_users)
		sigaction(CPR_GUEST_WAIT_SIGNAL, &wait_old_action, NULL);
	pthread_mutex_unlock(&wait_lock);
}

static int wait_timer_start(timer_t *timer, int timeout_ms)
{
	struct itimerspec its;
	struct sigevent sev;

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = CPR_GUEST_WAIT_SIGNAL;
	sev.sigev_notify_thread_id = syscall(SYS_gettid);
	if (timer_create(CLOCK_MONOTONIC, &sev, timer) < 0)
		return cpr_err(-errno,
			       "timer_create CLOCK_MONOTONIC signal %d for the guest wait",
			       CPR_GUEST_WAIT_SIGNAL);

	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = timeout_ms / 1000;
	its.it_value.tv_nsec = (long)(timeout_ms % 1000) * 1000000;
	if (timer_settime(*timer, 0, &its, NULL) < 0) {
		int ret = cpr_err(-errno,
				  "timer_settime %d ms for the guest wait",
				  timeout_ms);

		timer_delete(*timer);
		return ret;
	}
	return 0;
}

static const char *exit_name(__u32 reason)
{
	static const char * const names[] = {
		[KVM_EXIT_UNKNOWN] = "UNKNOWN",
		[KVM_EXIT_EXCEPTION] = "EXCEPTION",
		[KVM_EXIT_IO] = "IO",
		[KVM_EXIT_HYPERCALL] = "HYPERCALL",
		[KVM_EXIT_DEBUG] = "DEBUG",
		[KVM_EXIT_HLT] = "HLT",
		[KVM_EXIT_MMIO] = "MMIO",
		[KVM_EXIT_IRQ_WINDOW_OPEN] = "IRQ_WINDOW_OPEN",
		[KVM_EXIT_SHUTDOWN] = "SHUTDOWN",
		[KVM_EXIT_FAIL_ENTRY] = "FAIL_ENTRY",
		[KVM_EXIT_INTR] = "INTR",
		[KVM_EXIT_SET_TPR] = "SET_TPR",
		[KVM_EXIT_TPR_ACCESS] = "TPR_ACCESS",
		[KVM_EXIT_NMI] = "NMI",
		[KVM_EXIT_INTERNAL_ERROR] = "INTERNAL_ERROR",
		[KVM_EXIT_SYSTEM_EVENT] = "SYSTEM_EVENT",
		[KVM_EXIT_X86_RDMSR] = "X86_RDMSR",
		[KVM_EXIT_X86_WRMSR] = "X86_WRMSR",
	};

	if (reason < ARRAY_SIZE(names) && names[reason])
		return names[reason];
	return "?";
}

/* An exit the guest should never make: say what and where, -EIO. */
static int wait_bad_exit(struct cpr_vm *vm, unsigned int vcpu)
{
	struct kvm_run *run = vm->run[vcpu];
	int fd = vm->vcpu_fd[vcpu];
	unsigned long long ip = ~0ull;
	struct kvm_regs regs;
	char what[96] = "";

	if (!ioctl(fd, KVM_GET_REGS, &regs))
		ip = regs.rip;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		if (run->io.port == GUEST_FAULT_PORT &&
		    run->io.direction == KVM_EXIT_IO_OUT && run->io.size == 1) {
			unsigned int exc = *((__u8 *)run + run->io.data_offset);

			return cpr_err(-EIO,
				       "KVM_RUN vcpu %u (fd %d): guest exception %u%s",
				       vcpu, fd, exc, exc != VECTOR_GP ? "" :
				       " (#GP: was the handler's EOI, WRMSR 0x80b, refused? the LAPIC must be in x2APIC mode)");
		}
		snprintf(what, sizeof(what), " %s port 0x%x size %u",
			 run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in",
			 run->io.port, run->io.size);
		break;
	case KVM_EXIT_MMIO:
		snprintf(what, sizeof(what), " %s gpa 0x%llx len %u",
			 run->mmio.is_write ? "write" : "read",
			 (unsigned long long)run->mmio.phys_addr,
			 run->mmio.len);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(what, sizeof(what), " hardware reason 0x%llx",
			 (unsigned long long)
			 run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(what, sizeof(what), " suberror %u",
			 run->internal.suberror);
		break;
	case KVM_EXIT_HLT:
		snprintf(what, sizeof(what),
			 " (HLT should stay in the kernel's irqchip)");
		break;
	}
	return cpr_err(-EIO,
		       "KVM_RUN vcpu %u (fd %d): unexpected exit %u (%s)%s at ip 0x%llx",
		       vcpu, fd, run->exit_reason, exit_name(run->exit_reason),
		       what, ip);
}

static int wait_run_loop(struct cpr_vm *vm, unsigned int vcpu, int timeout_ms,
			 unsigned int *vector)
{
	struct kvm_run *run = vm->run[vcpu];
	int fd = vm->vcpu_fd[vcpu];

	for (;;) {
		/* Cleared before the test: a later signal sets it again. */
		__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_RELAXED);
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n(&wait_expired, __ATOMIC_RELAXED))
			return cpr_err(-ETIMEDOUT,
				       "KVM_RUN vcpu %u (fd %d): no vector on port 0x%x within %d ms",
				       vcpu, fd, CPR_GUEST_PORT, timeout_ms);
		if (ioctl(fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return cpr_err(-errno, "KVM_RUN vcpu %u (fd %d)", vcpu,
				       fd);
		}
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		if (run->exit_reason == KVM_EXIT_INTR)
			continue;
		if (run->exit_reason != KVM_EXIT_IO ||
		    run->io.port != CPR_GUEST_PORT ||
		    run->io.direction != KVM_EXIT_IO_OUT ||
		    run->io.size != 1 || run->io.count != 1)
			return wait_bad_exit(vm, vcpu);
		/* The guest has EOIed it already. */
		*vector = *((__u8 *)run + run->io.data_offset);
		return 0;
	}
}

/* Run with the timer armed, its handler installed and its signal open. */
static int wait_timed(struct cpr_vm *vm, unsigned int vcpu, int timeout_ms,
		      unsigned int *vector)
{
	sigset_t sig, old_mask;
	timer_t timer;
	int ret;

	ret = wait_handler_get();
	if (ret)
		return ret;
	sigemptyset(&sig);
	sigaddset(&sig, CPR_GUEST_WAIT_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &sig, &old_mask);

	ret = wait_timer_start(&timer, timeout_ms);
	if (!ret) {
		ret = wait_run_loop(vm, vcpu, timeout_ms, vector);
		/* A signal of it still pending is delivered on the way back. */
		timer_delete(timer);
	}

	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	wait_handler_put();
	return ret;
}

int cpr_vm_guest_wait(struct cpr_vm *vm, unsigned int vcpu, int timeout_ms,
		      unsigned int *vector)
{
	int ret;

	if (vcpu >= vm->nr_vcpus)
		return cpr_err(-EINVAL, "guest wait: vcpu %u of %u on vm fd %d",
			       vcpu, vm->nr_vcpus, vm->vm_fd);
	if (!timeout_ms)
		return cpr_err(-EINVAL,
			       "guest wait on vcpu %u: timeout of 0 ms", vcpu);
	*vector = 0;
	ret = cpr_vm_guest_setup(vm);
	if (ret)
		return ret;

	__atomic_store_n(&wait_expired, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&wait_run, vm->run[vcpu], __ATOMIC_RELAXED);
	if (timeout_ms > 0)
		ret = wait_timed(vm, vcpu, timeout_ms, vector);
	else
		ret = wait_run_loop(vm, vcpu, timeout_ms, vector);
	__atomic_store_n(&wait_run, NULL, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	vm->run[vcpu]->immediate_exit = 0;
	return ret;
}

int cpr_vm_guest_in_handler(struct cpr_vm *vm, unsigned int vcpu)
{
	struct kvm_regs regs;

	if (vcpu >= vm->nr_vcpus)
		return cpr_err(-EINVAL, "guest handler check: vcpu %u of %u",
			       vcpu, vm->nr_vcpus);
	if (ioctl(vm->vcpu_fd[vcpu], KVM_GET_REGS, &regs))
		return cpr_err(-errno, "KVM_GET_REGS vcpu %u (fd %d)", vcpu,
			       vm->vcpu_fd[vcpu]);
	return regs.rip >= GUEST_STUBS && regs.rip < GUEST_IMAGE_END;
}
