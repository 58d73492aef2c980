// SPDX-License-Identifier: GPL-2.0-only
/*
 * The lockdown's seccomp filter and its SIGSYS handler (see lockdown.h).
 *
 * The filter, classic BPF over struct seccomp_data:
 *
 *   arch != AUDIT_ARCH_X86_64, or an x32 system call number  -> TRAP (abi)
 *   not ioctl(2)                                             -> ALLOW
 *   low 32 bits of the request == refused[i]                 -> TRAP (i)
 *   request == PROBE_REQUEST and fd == -1                    -> ERRNO
 *   anything else                                            -> ALLOW
 *
 * The 32-bit (int 0x80) and x32 entry points are trapped as a whole: their
 * ioctl numbers differ and a successor has no business there, so nothing
 * gets past through them.  The trap's data (16 bits, handed to the handler
 * in si_errno) says which entry matched, so the handler needs no decoding.
 *
 * The probe lets a process ask whether this filter is in place, including
 * one inherited across execve, without a handler and without side effects:
 * without the filter, ioctl(-1, ...) fails with EBADF in the kernel.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/types.h>
#include <linux/vfio.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifdef __x86_64__
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#endif

#include "vfio_cpr/lockdown.h"
#include "vfio_cpr/log.h"

#if defined(VFIO_DEVICE_BIND_IOMMUFD) && defined(__has_include)
#if __has_include("linux/iommufd.h")
#include <linux/iommufd.h>
#define CPR_HAVE_VFIO_CDEV 1
#endif
#endif

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

struct lockdown_ioctl {
	const char *name;
	__u32 request;
};

#define LOCKDOWN_IOCTL(req)	{ #req, req }

static const struct lockdown_ioctl refused[] = {
	LOCKDOWN_IOCTL(VFIO_GROUP_SET_CONTAINER),
	LOCKDOWN_IOCTL(VFIO_SET_IOMMU),
	LOCKDOWN_IOCTL(VFIO_GROUP_GET_DEVICE_FD),
	LOCKDOWN_IOCTL(VFIO_DEVICE_RESET),
	LOCKDOWN_IOCTL(VFIO_DEVICE_SET_IRQS),
#ifdef CPR_HAVE_VFIO_CDEV
	LOCKDOWN_IOCTL(VFIO_DEVICE_BIND_IOMMUFD),
	LOCKDOWN_IOCTL(VFIO_DEVICE_ATTACH_IOMMUFD_PT),
	LOCKDOWN_IOCTL(IOMMU_IOAS_ALLOC),
#endif
};

/* What a trap stands for: refused[i], or a system call of another ABI. */
#define WHAT_ABI		ARRAY_SIZE(refused)
#define WHAT_MAX		(WHAT_ABI + 1)
#define ABI_NAME		CPR_LOCKDOWN_ABI_NAME

/* Trap data: TRAP_DATA_BASE + what, never 0 (a SIGSYS of our own). */
#define TRAP_DATA_BASE		0x5600u

/*
 * Private, and harmless without the filter: the kernel answers EBADF for
 * fd -1 before it looks at the request.  Direction none, size 0: no
 * argument to look at (for valgrind too).
 */
#define PROBE_REQUEST		0x0000cf4cu

/* ---- What the handler records (async-signal-safe: fixed arrays) ---- */

static unsigned int nr_refused;
static unsigned int refused_of[WHAT_MAX];
static struct {
	unsigned short what;
	int fd;
} last[CPR_LOCKDOWN_LAST];

const char *cpr_lockdown_ioctl_name(unsigned int i)
{
	return i < ARRAY_SIZE(refused) ? refused[i].name : NULL;
}

unsigned long cpr_lockdown_ioctl_request(unsigned int i)
{
	return i < ARRAY_SIZE(refused) ? refused[i].request : 0;
}

static const char *what_name(unsigned int what)
{
	return what < ARRAY_SIZE(refused) ? refused[what].name : ABI_NAME;
}

unsigned int cpr_lockdown_violations(void)
{
	return __atomic_load_n(&nr_refused, __ATOMIC_RELAXED);
}

unsigned int cpr_lockdown_violations_of(const char *name)
{
	unsigned int i;

	for (i = 0; i < WHAT_MAX; i++)
		if (name && !strcmp(name, what_name(i)))
			return __atomic_load_n(&refused_of[i], __ATOMIC_RELAXED);
	return 0;
}

const char *cpr_lockdown_describe(char *buf, size_t size)
{
	unsigned int n = cpr_lockdown_violations(), first, i;
	size_t used = 0;

	if (!size)
		return buf;
	snprintf(buf, size, "none");
	first = n > CPR_LOCKDOWN_LAST ? n - CPR_LOCKDOWN_LAST : 0;
	for (i = first; i < n && used < size; i++) {
		unsigned int slot = i % CPR_LOCKDOWN_LAST;
		int len;

		if (last[slot].what == WHAT_ABI)
			len = snprintf(buf + used, size - used, "%s%s %d",
				       i > first ? ", " : "", ABI_NAME,
				       last[slot].fd);
		else
			len = snprintf(buf + used, size - used, "%s%s on fd %d",
				       i > first ? ", " : "",
				       what_name(last[slot].what), last[slot].fd);
		if (len < 0)
			break;
		used += len;
	}
	return buf;
}

/* ---- The SIGSYS handler ---- */

static size_t put_str(char *buf, size_t pos, size_t size, const char *s)
{
	while (*s && pos < size)
		buf[pos++] = *s++;
	return pos;
}

static size_t put_int(char *buf, size_t pos, size_t size, long v)
{
	char digits[24];
	unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;
	int n = 0;

	do {
		digits[n++] = '0' + u % 10;
		u /= 10;
	} while (u);
	if (v < 0 && pos < size)
		buf[pos++] = '-';
	while (n && pos < size)
		buf[pos++] = digits[--n];
	return pos;
}

/* Not ours: die of it as if there were no handler. */
static void sigsys_default(void)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };

	sigaction(SIGSYS, &sa, NULL);
	raise(SIGSYS);	/* blocked in the handler: delivered on return */
}

#ifdef __x86_64__
static void lockdown_sigsys(int sig, siginfo_t *si, void *ctx)
{
	unsigned int data = (unsigned int)si->si_errno, what, n;
	ucontext_t *uc = ctx;
	int saved = errno;
	char line[192];
	size_t pos;
	long arg;

	(void)sig;
	/* Sent by the kernel (si_code > 0), with our filter's data. */
	if (si->si_code <= 0 || data < TRAP_DATA_BASE ||
	    data >= TRAP_DATA_BASE + WHAT_MAX) {
		sigsys_default();
		return;
	}
	what = data - TRAP_DATA_BASE;
	/* ioctl's fd; for another ABI, the system call number. */
	arg = what == WHAT_ABI ? si->si_syscall :
	      (int)uc->uc_mcontext.gregs[REG_RDI];

	n = __atomic_fetch_add(&nr_refused, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&refused_of[what], 1, __ATOMIC_RELAXED);
	last[n % CPR_LOCKDOWN_LAST].what = what;
	last[n % CPR_LOCKDOWN_LAST].fd = (int)arg;

	/* The system call was skipped: make it return -1, errno set. */
	uc->uc_mcontext.gregs[REG_RAX] = -CPR_LOCKDOWN_ERRNO;

	pos = put_str(line, 0, sizeof(line), "# vfio_cpr lockdown: ");
	pos = put_str(line, pos, sizeof(line), what_name(what));
	if (what == WHAT_ABI) {
		pos = put_str(line, pos, sizeof(line), " ");
		pos = put_int(line, pos, sizeof(line), arg);
		pos = put_str(line, pos, sizeof(line),
			      " refused: only the x86_64 system call ABI is allowed\n");
	} else {
		pos = put_str(line, pos, sizeof(line), " on fd ");
		pos = put_int(line, pos, sizeof(line), arg);
		pos = put_str(line, pos, sizeof(line),
			      " refused: a successor must not touch the device\n");
	}
	if (write(STDERR_FILENO, line, pos) < 0)
		(void)0;	/* nowhere left to say it */
	errno = saved;
}

static int install_handler(void)
{
	struct sigaction sa = {
		.sa_sigaction = lockdown_sigsys,
		.sa_flags = SA_SIGINFO,
	};

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL))
		return cpr_err(-errno, "lockdown: installing the SIGSYS handler");
	return 0;
}

#define INSN(c, k, t, f)	((struct sock_filter){ (c), (t), (f), (k) })
#define LD_ABS(off)		INSN(BPF_LD | BPF_W | BPF_ABS, (off), 0, 0)
#define JEQ(k, t, f)		INSN(BPF_JMP | BPF_JEQ | BPF_K, (k), (t), (f))
#define JSET(k, t, f)		INSN(BPF_JMP | BPF_JSET | BPF_K, (k), (t), (f))
#define RET(k)			INSN(BPF_RET | BPF_K, (k), 0, 0)
/* Low 32 bits of a 64-bit argument (little endian). */
#define ARG_LO(n)	(offsetof(struct seccomp_data, args) + 8 * (n))

static int install_filter(void)
{
	struct sock_filter insns[16 + 2 * ARRAY_SIZE(refused)];
	struct sock_fprog prog = { .filter = insns };
	unsigned int n = 0, i;
	long ret;

	insns[n++] = LD_ABS(offsetof(struct seccomp_data, arch));
	insns[n++] = JEQ(AUDIT_ARCH_X86_64, 1, 0);
	insns[n++] = RET(SECCOMP_RET_TRAP | (TRAP_DATA_BASE + WHAT_ABI));
	insns[n++] = LD_ABS(offsetof(struct seccomp_data, nr));
	insns[n++] = JSET(__X32_SYSCALL_BIT, 0, 1);
	insns[n++] = RET(SECCOMP_RET_TRAP | (TRAP_DATA_BASE + WHAT_ABI));
	insns[n++] = JEQ(__NR_ioctl, 1, 0);
	insns[n++] = RET(SECCOMP_RET_ALLOW);
	insns[n++] = LD_ABS(ARG_LO(1));
	for (i = 0; i < ARRAY_SIZE(refused); i++) {
		insns[n++] = JEQ(refused[i].request, 0, 1);
		insns[n++] = RET(SECCOMP_RET_TRAP | (TRAP_DATA_BASE + i));
	}
	insns[n++] = JEQ(PROBE_REQUEST, 0, 3);
	insns[n++] = LD_ABS(ARG_LO(0));
	insns[n++] = JEQ(0xffffffffu, 0, 1);
	insns[n++] = RET(SECCOMP_RET_ERRNO | CPR_LOCKDOWN_ERRNO);
	insns[n++] = RET(SECCOMP_RET_ALLOW);
	prog.len = n;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return cpr_err(-errno, "lockdown: PR_SET_NO_NEW_PRIVS");
	/* Every thread of the process, not only this one. */
	ret = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER,
		      SECCOMP_FILTER_FLAG_TSYNC, &prog);
	if (ret < 0)
		return cpr_err(-errno,
			       "lockdown: seccomp(SET_MODE_FILTER, TSYNC) of %u instructions",
			       n);
	if (ret > 0)
		return cpr_err(-EBUSY, "lockdown: thread %ld could not take the filter",
			       ret);
	return 0;
}
#endif /* __x86_64__ */

bool cpr_lockdown_available(void)
{
#ifdef __x86_64__
	__u32 action = SECCOMP_RET_TRAP;

	return !syscall(__NR_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action);
#else
	return false;
#endif
}

/* "Seccomp:" of /proc/self/status: 2 = filter mode; -1 if unknown. */
static int seccomp_mode(void)
{
	static const char key[] = "\nSeccomp:\t";
	char buf[4096], *p;
	ssize_t n;
	int fd;

	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strstr(buf, key);
	return p ? p[sizeof(key) - 1] - '0' : -1;
}

bool cpr_lockdown_active(void)
{
	int saved = errno;
	bool active;

	/* No filter at all: do not even ask. */
	if (!seccomp_mode())
		return false;
	active = ioctl(-1, PROBE_REQUEST) == -1 && errno == CPR_LOCKDOWN_ERRNO;
	errno = saved;
	return active;
}

int cpr_lockdown_install(void)
{
#ifdef __x86_64__
	int ret = install_handler();

	if (ret || cpr_lockdown_active())
		return ret;
	if (!cpr_lockdown_available())
		return cpr_err(-EOPNOTSUPP,
			       "lockdown: seccomp filters that trap are unavailable here (a kernel without CONFIG_SECCOMP_FILTER, or a tool such as valgrind that does not pass seccomp(2) on)");
	ret = install_filter();
	if (ret)
		return ret;
	if (!cpr_lockdown_active())
		return cpr_err(-EIO, "lockdown: filter installed, yet its probe does not answer");
	return 0;
#else
	return cpr_err(-EOPNOTSUPP, "lockdown: the seccomp filter is written for x86_64 only");
#endif
}

int cpr_lockdown_enter(void)
{
#ifdef __x86_64__
	int ret = install_handler();

	if (ret)
		return ret;
	if (!cpr_lockdown_active())
		return cpr_err(-ENOENT,
			       "lockdown: this process does not run under the lockdown filter (its predecessor did not install it)");
	return 0;
#else
	return cpr_err(-EOPNOTSUPP, "lockdown: the seccomp filter is written for x86_64 only");
#endif
}
