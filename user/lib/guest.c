// SPDX-License-Identifier: GPL-2.0-only
/*
 * The tiny real-mode guest of the vfio_cpr KVM VM, and the loop that runs a
 * vCPU until its interrupt handler reports a vector.
 *
 * Guest memory (segment 0, guest physical = offset in vm->mem):
 *
 *   0x0000  IVT: 256 far pointers, vector v -> stub v
 *   0x0400  main loop: sti; hlt; jmp back
 *   0x0500  stubs, 8 bytes each: vectors from CPR_VECTOR_FIRST OUT their
 *           number to CPR_GUEST_PORT and IRET; lower ones (exceptions) OUT
 *           theirs to GUEST_FAULT_PORT and stop
 *   0x8000  top of vCPU 0's stack, each next vCPU's 1 KiB lower
 *
 * The guest never EOIs (no APIC access from real mode): after each report
 * the ISR bit is cleared from outside with KVM_GET_LAPIC/KVM_SET_LAPIC.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <linux/types.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "vfio_cpr/kvm.h"
#include "vfio_cpr/log.h"

#define GUEST_IVT		0x0000u
#define GUEST_MAIN		0x0400u
#define GUEST_STUBS		0x0500u
#define GUEST_STUB_SIZE		8u
#define GUEST_STACK_TOP		0x8000u
#define GUEST_STACK_SIZE	0x0400u
#define GUEST_FAULT_PORT	(CPR_GUEST_PORT + 1)
#define GUEST_IMAGE_END		(GUEST_STUBS + 256 * GUEST_STUB_SIZE)

#define APIC_ISR		0x100

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

static void guest_stub(__u8 *p, unsigned int vector)
{
	if (vector >= CPR_VECTOR_FIRST) {
		p = put8(p, 0x50);		/* push ax */
		p = put8(p, 0xb0);		/* mov al, imm8 */
		p = put8(p, vector);		/*   the vector */
		p = put8(p, 0xe6);		/* out imm8, al */
		p = put8(p, CPR_GUEST_PORT);	/*   the port */
		p = put8(p, 0x58);		/* pop ax */
		p = put8(p, 0xcf);		/* iret */
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

int cpr_vm_guest_load(struct cpr_vm *vm)
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
		guest_stub(mem + stub, v);
	}

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

int cpr_vm_guest_vcpu_init(struct cpr_vm *vm, unsigned int vcpu)
{
	int fd = vm->vcpu_fd[vcpu];
	struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };
	struct kvm_sregs sregs;
	struct kvm_regs regs;

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
		    run->io.direction == KVM_EXIT_IO_OUT && run->io.size == 1)
			return cpr_err(-EIO,
				       "KVM_RUN vcpu %u (fd %d): guest exception %u",
				       vcpu, fd,
				       *((__u8 *)run + run->io.data_offset));
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

/* The guest cannot EOI: clear the ISR bit of @vector for it. */
static int wait_eoi(struct cpr_vm *vm, unsigned int vcpu, unsigned int vector)
{
	int fd = vm->vcpu_fd[vcpu];
	struct kvm_lapic_state s;
	unsigned int off = APIC_ISR + 0x10 * (vector / 32);
	__u32 isr;

	if (ioctl(fd, KVM_GET_LAPIC, &s) < 0)
		return cpr_err(-errno,
			       "KVM_GET_LAPIC vcpu %u (fd %d) for the EOI of vector 0x%x",
			       vcpu, fd, vector);
	memcpy(&isr, &s.regs[off], sizeof(isr));
	isr &= ~(1u << (vector % 32));
	memcpy(&s.regs[off], &isr, sizeof(isr));
	if (ioctl(fd, KVM_SET_LAPIC, &s) < 0)
		return cpr_err(-errno,
			       "KVM_SET_LAPIC vcpu %u (fd %d) for the EOI of vector 0x%x",
			       vcpu, fd, vector);
	return 0;
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
		*vector = *((__u8 *)run + run->io.data_offset);
		return wait_eoi(vm, vcpu, *vector);
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
