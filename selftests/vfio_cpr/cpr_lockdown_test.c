// SPDX-License-Identifier: GPL-2.0-only
/*
 * "The successor does not touch the device", enforced by the kernel: the
 * lockdown's seccomp filter and the device helper, on the host (no KVM, no
 * VFIO: the filter acts before the kernel looks at the fd, so any fd will
 * do, and the helper is exercised on fake devices whose fds answer
 * VFIO_DEVICE_SET_IRQS with ENOTTY or EBADF).
 *
 * Lockdown: each setup ioctl is refused by name and counted, also when the
 * caller ignores the result; a request with high bits set does not get
 * past; the ioctls a successor does issue reach the kernel; the ia32 and
 * x32 entry points are closed; a second install stacks no second filter;
 * the filter survives execve, a refused ioctl before cpr_lockdown_enter()
 * kills with SIGSYS, a successor not under the lockdown fails, and one
 * that ignored a refusal fails at exit.
 *
 * Helper: requests by device name with fds, the policy refusing what it
 * must, the extra operations, only the device fds kept, QUIT closing them
 * before its socket, a killed or stopped helper giving -ECONNRESET or
 * -ETIMEDOUT without hanging and no zombie left, the helper's socket
 * travelling through an exec and a socket handoff (where the library's
 * software trigger, ioctl unmask and disable go through it under the
 * lockdown), and the helper refused under the lockdown or after a VM.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <linux/types.h>
#include <linux/vfio.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "cpr_assert.h"
#include "cpr_test_util.h"
#include "vfio_cpr/fd.h"
#include "vfio_cpr/handoff.h"
#include "vfio_cpr/kvm.h"
#include "vfio_cpr/lockdown.h"
#include "vfio_cpr/state.h"
#include "vfio_cpr/transfer.h"
#include "vfio_cpr/vfio.h"
#include "vfio_cpr/vfio_helper.h"

#if defined(VFIO_DEVICE_BIND_IOMMUFD) && defined(__has_include)
#if __has_include("linux/iommufd.h")
#include <linux/iommufd.h>
#define CPR_HAVE_VFIO_CDEV 1
#endif
#endif

/* argv[1] of a start meant to refuse an ioctl before cpr_lockdown_enter(). */
#define BEFORE_ENTER	"--cpr-before-enter"

#define DEV_PCI		"0000:00:03.0"
#define DEV_MDEV	"83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"
#define DEV_ABSENT	"0000:00:04.0"
#define XFER_TIMEOUT_MS	10000

struct named_ioctl {
	const char *name;
	unsigned long request;
};

#define NAMED(req)	{ #req, req }

/* What a successor must never issue: this test's own list, not the filter's. */
static const struct named_ioctl must_refuse[] = {
	NAMED(VFIO_GROUP_SET_CONTAINER),
	NAMED(VFIO_SET_IOMMU),
	NAMED(VFIO_GROUP_GET_DEVICE_FD),
	NAMED(VFIO_DEVICE_RESET),
	NAMED(VFIO_DEVICE_SET_IRQS),
#ifdef CPR_HAVE_VFIO_CDEV
	NAMED(VFIO_DEVICE_BIND_IOMMUFD),
	NAMED(VFIO_DEVICE_ATTACH_IOMMUFD_PT),
	NAMED(IOMMU_IOAS_ALLOC),
#endif
};

/* What a successor does issue: the kernel must see it. */
static const struct named_ioctl must_pass[] = {
	NAMED(VFIO_GET_API_VERSION),
	NAMED(VFIO_CHECK_EXTENSION),
	NAMED(VFIO_GROUP_GET_STATUS),
	NAMED(VFIO_DEVICE_GET_INFO),
	NAMED(VFIO_DEVICE_GET_REGION_INFO),
	NAMED(VFIO_DEVICE_GET_IRQ_INFO),
	NAMED(VFIO_IOMMU_MAP_DMA),
	NAMED(VFIO_IOMMU_UNMAP_DMA),
	NAMED(KVM_CREATE_VM),
	NAMED(KVM_CREATE_VCPU),
	NAMED(KVM_IRQFD),
	NAMED(KVM_SET_GSI_ROUTING),
	NAMED(KVM_CREATE_DEVICE),
	NAMED(KVM_SET_DEVICE_ATTR),
	NAMED(KVM_GET_LAPIC),
#ifdef CPR_HAVE_VFIO_CDEV
	NAMED(IOMMU_IOAS_MAP),
	NAMED(IOMMU_IOAS_UNMAP),
#endif
};

#define NO_LOCKDOWN \
	"seccomp filters that trap are unavailable here (a kernel without CONFIG_SECCOMP_FILTER, or valgrind): no lockdown, and the other tests' successors run without it"

static int new_eventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC);

	CPR_ASSERT_SYS(fd, "creating an eventfd");
	return fd;
}

static int new_memfd(const char *name)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	CPR_ASSERT_SYS(fd, "creating memfd %s", name);
	return fd;
}

/* ---- stderr into a memfd, to read what was written there ---- */

struct capture {
	int memfd;
	int saved;
};

static void capture_start(struct capture *c)
{
	fflush(stderr);
	c->memfd = new_memfd("stderr");
	c->saved = dup(STDERR_FILENO);
	CPR_ASSERT_SYS(c->saved, "saving stderr");
	CPR_ASSERT_SYS(dup2(c->memfd, STDERR_FILENO), "stderr into a memfd");
}

static void capture_end(struct capture *c, char *buf, size_t size)
{
	ssize_t n;

	fflush(stderr);
	CPR_ASSERT_SYS(dup2(c->saved, STDERR_FILENO), "restoring stderr");
	close(c->saved);
	n = pread(c->memfd, buf, size - 1, 0);
	CPR_ASSERT_SYS(n, "reading what stderr got");
	buf[n] = '\0';
	close(c->memfd);
}

/* "Seccomp_filters:" of /proc/self/status (Linux 5.9+), -1 if absent. */
static int seccomp_filters(void)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "re");
	int n = -1;

	CPR_ASSERT_TRUE(f, "opening /proc/self/status");
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Seccomp_filters: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* ---- The lockdown ---- */

/* Each listed ioctl refused by name, counted, on an fd of no device. */
static void check_refuses_all(int fd)
{
	unsigned int i, before = cpr_lockdown_violations();

	for (i = 0; i < ARRAY_SIZE(must_refuse); i++) {
		const char *name = must_refuse[i].name;
		int ret;

		errno = 0;
		ret = ioctl(fd, must_refuse[i].request, NULL);
		CPR_ASSERT_EQ(-1, ret, "%s went through the lockdown", name);
		CPR_ASSERT_EQ(CPR_LOCKDOWN_ERRNO, errno,
			      "%s was not refused by the lockdown: the kernel answered (%s)",
			      name, strerror(errno));
		CPR_ASSERT_EQ(1, cpr_lockdown_violations_of(name),
			      "%s refused but not counted under its name", name);
		CPR_ASSERT_EQ(before + i + 1, cpr_lockdown_violations(),
			      "%s refused but the total did not grow", name);
	}
}

TEST(lockdown_refuses_every_setup_ioctl)
{
	unsigned int n = ARRAY_SIZE(must_refuse);
	char what[512];
	int fd, ret;

	if (!cpr_lockdown_available())
		SKIP(return, NO_LOCKDOWN);
	fd = new_eventfd();
	CPR_ASSERT_FALSE(cpr_lockdown_active(), "lockdown active before it was installed");
	CPR_ASSERT_OK(cpr_lockdown_install(), "installing the lockdown");
	CPR_ASSERT_TRUE(cpr_lockdown_active(), "lockdown not active once installed");
	check_refuses_all(fd);

	/* The kernel reads the request as an unsigned int: so does the filter. */
	errno = 0;
	ret = ioctl(fd, VFIO_DEVICE_SET_IRQS | 0xffffffff00000000ul, NULL);
	CPR_ASSERT_EQ(CPR_LOCKDOWN_ERRNO, ret ? errno : 0,
		      "VFIO_DEVICE_SET_IRQS with the high 32 bits of the request set got past the lockdown");
	CPR_ASSERT_EQ(2, cpr_lockdown_violations_of("VFIO_DEVICE_SET_IRQS"),
		      "the high-bits VFIO_DEVICE_SET_IRQS was not counted");
	CPR_ASSERT_EQ(n + 1, cpr_lockdown_violations(), "refusals counted");
	cpr_lockdown_describe(what, sizeof(what));
	CPR_ASSERT_TRUE(strstr(what, "VFIO_DEVICE_SET_IRQS on fd"),
			"the description of the refusals does not name the last one: %s",
			what);
	printf("# %u setup ioctls refused by name (built with%s the 6.6+ cdev uapi); last: %s\n",
	       n, n > 5 ? "" : "out", what);
	fflush(stdout);
	close(fd);
}

TEST(lockdown_counts_refusals_whose_result_is_ignored)
{
	struct capture c;
	char out[1024], want[160];
	int fd;

	if (!cpr_lockdown_available())
		SKIP(return, NO_LOCKDOWN);
	fd = new_eventfd();
	CPR_ASSERT_OK(cpr_lockdown_install(), "installing the lockdown");
	capture_start(&c);
	ioctl(fd, VFIO_DEVICE_RESET);	/* result ignored, on purpose */
	capture_end(&c, out, sizeof(out));
	CPR_ASSERT_EQ(1, cpr_lockdown_violations(),
		      "a refused VFIO_DEVICE_RESET whose result was ignored was not counted");
	CPR_ASSERT_EQ(1, cpr_lockdown_violations_of("VFIO_DEVICE_RESET"),
		      "counted, but not as VFIO_DEVICE_RESET");
	snprintf(want, sizeof(want),
		 "# vfio_cpr lockdown: VFIO_DEVICE_RESET on fd %d refused: a successor must not touch the device\n",
		 fd);
	CPR_ASSERT_TRUE(!strcmp(out, want),
			"stderr got '%s' instead of the diagnostic line '%s'",
			out, want);
	close(fd);
}

TEST(lockdown_lets_the_successors_ioctls_through)
{
	unsigned int i;
	int fd;

	if (!cpr_lockdown_available())
		SKIP(return, NO_LOCKDOWN);
	fd = new_eventfd();
	CPR_ASSERT_OK(cpr_lockdown_install(), "installing the lockdown");
	for (i = 0; i < ARRAY_SIZE(must_pass); i++) {
		int ret;

		errno = 0;
		ret = ioctl(fd, must_pass[i].request, NULL);
		CPR_ASSERT_EQ(-1, ret, "%s on an eventfd", must_pass[i].name);
		CPR_ASSERT_EQ(ENOTTY, errno,
			      "%s did not reach the kernel under the lockdown (errno %s)",
			      must_pass[i].name, strerror(errno));
	}
	CPR_ASSERT_EQ(0, cpr_lockdown_violations(),
		      "an ioctl a successor needs was counted as refused");
	close(fd);
}

TEST(lockdown_installed_twice_is_one_filter)
{
	int before, after;

	if (!cpr_lockdown_available())
		SKIP(return, NO_LOCKDOWN);
	CPR_ASSERT_OK(cpr_lockdown_install(), "installing the lockdown");
	before = seccomp_filters();
	CPR_ASSERT_OK(cpr_lockdown_install(), "installing the lockdown again");
	CPR_ASSERT_OK(cpr_lockdown_enter(), "entering it as a successor would");
	after = seccomp_filters();
	if (before < 0)
		SKIP(return, "no Seccomp_filters in /proc/self/status (Linux < 5.9)");
	CPR_ASSERT_EQ(before, after,
		      "a second cpr_lockdown_install() stacked another filter");
	CPR_ASSERT_TRUE(cpr_lockdown_active(), "lockdown not active");
}

/* An ia32 system call from this 64-bit process; its raw result. */
static long int80(long nr)
{
	long ret;

	asm volatile("int $0x80"
		     : "=a"(ret)
		     : "a"(nr)
		     : "r8", "r9", "r10", "r11", "memory");
	return ret;
}

#define IA32_GETPID	20	/* arch/x86/entry/syscalls/syscall_32.tbl */

static void no_ia32(int sig)
{
	(void)sig;
	_exit(1);
}

/*
 * Whether int 0x80 works here: a child tries (without ia32 emulation it
 * gets SIGSEGV, which its own handler turns into an exit, before a
 * sanitizer's handler reports it as a crash).
 */
static bool have_ia32(void)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	CPR_ASSERT_SYS(pid, "fork");
	if (!pid) {
		struct sigaction sa = { .sa_handler = no_ia32 };

		sigaction(SIGSEGV, &sa, NULL);
		_exit(int80(IA32_GETPID) == getpid() ? 0 : 1);
	}
	CPR_ASSERT_EQ(pid, waitpid(pid, &status, 0), "waiting for the child");
	return WIFEXITED(status) && !WEXITSTATUS(status);
}

TEST(lockdown_closes_the_ia32_and_x32_entries)
{
	bool ia32;
	long ret;

	if (!cpr_lockdown_available())
		SKIP(return, NO_LOCKDOWN);
	ia32 = have_ia32();
	CPR_ASSERT_OK(cpr_lockdown_install(), "installing the lockdown");
	errno = 0;
	ret = syscall(__X32_SYSCALL_BIT | __NR_getpid);
	CPR_ASSERT_EQ(-1, ret, "an x32 system call went through the lockdown");
	CPR_ASSERT_EQ(CPR_LOCKDOWN_ERRNO, errno, "x32 system call: errno");
	CPR_ASSERT_EQ(1, cpr_lockdown_violations_of(CPR_LOCKDOWN_ABI_NAME),
		      "the x32 system call was not counted");
	if (!ia32) {
		printf("# no ia32 emulation in this kernel: int 0x80 is closed anyway\n");
		fflush(stdout);
		return;
	}
	ret = int80(IA32_GETPID);
	CPR_ASSERT_EQ(-CPR_LOCKDOWN_ERRNO, ret,
		      "an ia32 system call (int 0x80) went through the lockdown");
	CPR_ASSERT_EQ(2, cpr_lockdown_violations_of(CPR_LOCKDOWN_ABI_NAME),
		      "the ia32 system call was not counted");
}

static void exec_self(const char *first, const char *scenario)
{
	char self[4096];

	CPR_ASSERT_OK(cpr_test_self_path(self, sizeof(self)), "finding this binary");
	fflush(NULL);
	execl(self, self, first, scenario, (char *)NULL);
	CPR_FAIL("exec of %s: %s", self, strerror(errno));
}

TEST(lockdown_survives_execve)
{
	if (!cpr_lockdown_available())
		SKIP(return, NO_LOCKDOWN);
	CPR_ASSERT_OK(cpr_lockdown_install(), "installing the lockdown");
	/* The successor (scenario "lockdown") is this test's verdict. */
	exec_self(CPR_TEST_SUCCESSOR, "lockdown");
}

/* Successor of lockdown_survives_execve: refusals on purpose. */
static int successor_lockdown(void)
{
	int fd = new_eventfd();
	int ret;

	CPR_ASSERT_TRUE(cpr_lockdown_active(),
			"the lockdown did not survive execve into the successor");
	check_refuses_all(fd);
	errno = 0;
	ret = ioctl(fd, VFIO_DEVICE_GET_INFO, NULL);
	CPR_ASSERT_EQ(ENOTTY, ret ? errno : 0,
		      "VFIO_DEVICE_GET_INFO did not reach the kernel in the successor");
	printf("# the successor runs under the lockdown: %u refused, GET_INFO passed\n",
	       cpr_lockdown_violations());
	fflush(NULL);
	_exit(0);	/* its refusals were wanted: skip the exit check */
}

/* Child of a test: run @scenario as a successor (@lockdown: under it). */
static int run_successor(const char *first, const char *scenario,
			 bool lockdown, char *err, size_t err_size)
{
	struct capture c;
	int status;
	pid_t pid;

	capture_start(&c);
	pid = fork();
	CPR_ASSERT_SYS(pid, "fork");
	if (!pid) {
		struct rlimit none = { 0, 0 };

		setrlimit(RLIMIT_CORE, &none);	/* SIGSYS dumps core */
		if (lockdown && cpr_lockdown_install())
			_exit(126);
		exec_self(first, scenario);
	}
	CPR_ASSERT_EQ(pid, waitpid(pid, &status, 0), "waiting for the successor");
	capture_end(&c, err, err_size);
	return status;
}

TEST(lockdown_refusal_before_enter_kills)
{
	char err[2048];
	int status;

	if (!cpr_lockdown_available())
		SKIP(return, NO_LOCKDOWN);
	status = run_successor(BEFORE_ENTER, "", true, err, sizeof(err));
	CPR_ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS,
			"a refused ioctl before cpr_lockdown_enter() must kill with SIGSYS (status 0x%x, stderr: %s)",
			status, err);
}

TEST(successor_without_lockdown_fails)
{
	char err[2048];
	int status;

	if (!cpr_lockdown_available())
		SKIP(return, NO_LOCKDOWN);
	status = run_successor(CPR_TEST_SUCCESSOR, "ignore", false, err,
			       sizeof(err));
	CPR_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == CPR_TEST_EXIT_FAIL,
			"a successor started without the lockdown did not fail (status 0x%x)",
			status);
	CPR_ASSERT_TRUE(strstr(err, "must run under the lockdown"),
			"its failure does not say why: %s", err);
}

TEST(successor_ignoring_a_refusal_fails_at_exit)
{
	char err[2048];
	int status;

	if (!cpr_lockdown_available())
		SKIP(return, NO_LOCKDOWN);
	status = run_successor(CPR_TEST_SUCCESSOR, "ignore", true, err,
			       sizeof(err));
	CPR_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == CPR_TEST_EXIT_FAIL,
			"a successor that ignored a refused VFIO_DEVICE_RESET passed (status 0x%x)",
			status);
	CPR_ASSERT_TRUE(strstr(err, "VFIO_DEVICE_RESET on fd"),
			"its failure does not name the refused ioctl: %s", err);
}

/* Successor that ignores a refusal and ends as if all went well. */
static int successor_ignore(void)
{
	int fd = new_eventfd();

	ioctl(fd, VFIO_DEVICE_RESET);
	close(fd);
	return 0;
}

/* Started with BEFORE_ENTER under the lockdown: SIGSYS kills it here. */
static int before_enter(void)
{
	int fd = eventfd(0, EFD_CLOEXEC);

	ioctl(fd, VFIO_DEVICE_SET_IRQS, NULL);
	fprintf(stderr, "# VFIO_DEVICE_SET_IRQS before cpr_lockdown_enter() did not kill\n");
	return 0;
}

/* ---- The helper, on fake devices ---- */

/*
 * Two devices: a PCI one through the group interface whose device fd is a
 * memfd (SET_IRQS: ENOTTY), an mdev through the cdev interface whose device
 * fd is an O_PATH fd (SET_IRQS: EBADF), so that each answer tells which
 * device fd the helper used.
 */
struct fakes {
	struct cpr_vfio_dev d[2];
	struct cpr_vfio_dev *devs[2];
};

static void fake_dev(struct cpr_vfio_dev *d, const char *name)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->container_fd = -1;
	d->group_fd = -1;
	d->device_fd = -1;
	d->iommufd = -1;
	d->intx_fd = -1;
	d->intx_unmask_fd = -1;
	d->err_fd = -1;
	d->req_fd = -1;
	d->irqs[VFIO_PCI_INTX_IRQ_INDEX].count = 1;
	d->irqs[VFIO_PCI_MSI_IRQ_INDEX].count = 1;
	d->irqs[VFIO_PCI_MSIX_IRQ_INDEX].count = 8;
	d->irqs[VFIO_PCI_ERR_IRQ_INDEX].count = 1;
	d->irqs[VFIO_PCI_REQ_IRQ_INDEX].count = 1;
}

static void fakes_open(struct fakes *f)
{
	fake_dev(&f->d[0], DEV_PCI);
	f->d[0].iface = CPR_VFIO_IFACE_GROUP;
	f->d[0].container_fd = new_memfd("container");
	f->d[0].group_fd = new_memfd("group");
	f->d[0].device_fd = new_memfd("device");
	fake_dev(&f->d[1], DEV_MDEV);
	f->d[1].is_mdev = true;
	f->d[1].iface = CPR_VFIO_IFACE_CDEV;
	f->d[1].iommufd = new_memfd("iommufd");
	f->d[1].device_fd = open("/", O_PATH | O_CLOEXEC);
	CPR_ASSERT_SYS(f->d[1].device_fd, "an O_PATH fd");
	f->devs[0] = &f->d[0];
	f->devs[1] = &f->d[1];
}

static void fakes_close(struct fakes *f)
{
	unsigned int i;

	for (i = 0; i < 2; i++) {
		int fds[] = { f->d[i].container_fd, f->d[i].group_fd,
			      f->d[i].device_fd, f->d[i].iommufd };
		unsigned int k;

		for (k = 0; k < ARRAY_SIZE(fds); k++)
			if (fds[k] >= 0)
				close(fds[k]);
	}
}

static int nr_open_fds(void)
{
	int n = cpr_open_fds();

	CPR_ASSERT_LE(0, n, "counting open fds");
	return n;
}

/*
 * The helper's fd table holds stdio, one socket and exactly the devices'
 * fds (the same files as ours, under the same numbers): nothing else, in
 * particular no eventfd and nothing of a VM.
 */
static void check_helper_fds(pid_t pid, const struct fakes *f)
{
	unsigned int kept = 0, sockets = 0, want = 0, i;
	char path[64], link[256], ours[256];
	struct dirent *e;
	struct rlimit rl;
	DIR *dir;

	/* A tool's own fds (valgrind's) sit above the limit it gives us. */
	CPR_ASSERT_SYS(getrlimit(RLIMIT_NOFILE, &rl), "RLIMIT_NOFILE");

	for (i = 0; i < 2; i++)
		want += (f->d[i].container_fd >= 0) + (f->d[i].group_fd >= 0) +
			(f->d[i].device_fd >= 0) + (f->d[i].iommufd >= 0);
	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	dir = opendir(path);
	CPR_ASSERT_TRUE(dir, "listing the helper's fds in %s", path);
	while ((e = readdir(dir))) {
		int fd = atoi(e->d_name);
		bool dev = false;
		ssize_t n;

		if (e->d_name[0] == '.' || fd <= STDERR_FILENO ||
		    (rlim_t)fd >= rl.rlim_cur)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
		n = readlink(path, link, sizeof(link) - 1);
		CPR_ASSERT_SYS(n, "reading %s", path);
		link[n] = '\0';
		if (!strncmp(link, "socket:", 7)) {
			sockets++;
			continue;
		}
		for (i = 0; i < 2; i++)
			dev |= fd == f->d[i].container_fd || fd == f->d[i].group_fd ||
			       fd == f->d[i].device_fd || fd == f->d[i].iommufd;
		CPR_ASSERT_TRUE(dev, "the helper holds fd %d (%s), which is no device's",
				fd, link);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, ours, sizeof(ours) - 1);
		CPR_ASSERT_SYS(n, "reading %s", path);
		ours[n] = '\0';
		CPR_ASSERT_TRUE(!strcmp(link, ours),
				"the helper's fd %d is %s, the device's is %s",
				fd, link, ours);
		kept++;
	}
	closedir(dir);
	CPR_ASSERT_EQ(1, sockets, "sockets held by the helper (its own end only)");
	CPR_ASSERT_EQ(want, kept, "device fds held by the helper");
}

static struct cpr_helper *start_helper(struct cpr_state *st, struct fakes *f,
				       const struct cpr_helper_op *ops,
				       unsigned int nr_ops)
{
	struct cpr_helper *h = NULL;

	CPR_ASSERT_OK(cpr_helper_start(st, f->devs, 2, ops, nr_ops, &h),
		      "starting the device helper");
	CPR_ASSERT_LT(0, cpr_helper_pid(h), "the helper's pid");
	return h;
}

/* Ended and reaped: no process, no zombie. */
static void check_reaped(pid_t pid)
{
	errno = 0;
	CPR_ASSERT_EQ(-1, waitpid(pid, NULL, WNOHANG),
		      "helper %d not reaped: a zombie is left", pid);
	CPR_ASSERT_EQ(ECHILD, errno, "waitpid on the ended helper");
	CPR_ASSERT_EQ(-1, kill(pid, 0), "helper %d still exists", pid);
}

static void check_counts(struct cpr_helper *h, const unsigned int *want,
			 const char *who)
{
	unsigned int done[CPR_HELPER_REQ_MAX], i;

	for (i = 0; i < CPR_HELPER_REQ_MAX; i++)
		CPR_ASSERT_EQ(want[i], cpr_helper_count(h, i),
			      "%s: %s requests counted by the client", who,
			      cpr_helper_req_name(i));
	CPR_ASSERT_OK(cpr_helper_stats(h, done), "the helper's statistics");
	for (i = 0; i < CPR_HELPER_REQ_MAX; i++)
		CPR_ASSERT_EQ(want[i], done[i], "%s: %s requests counted by the helper",
			      who, cpr_helper_req_name(i));
}

TEST(helper_serves_requests_by_device_name)
{
	unsigned int want[CPR_HELPER_REQ_MAX] = {
		[CPR_HELPER_REQ_TRIGGER] = 3,
		[CPR_HELPER_REQ_UNMASK] = 1,
		[CPR_HELPER_REQ_EVENTFDS] = 1,
		[CPR_HELPER_REQ_DISABLE] = 1,
		[CPR_HELPER_REQ_REFUSED] = 1,
	};
	struct cpr_state *st = cpr_state_new();
	int efds[3], stray[3], before, i;
	const __u8 bools[2] = { 1, 0 };
	struct cpr_helper *h;
	struct fakes f;
	pid_t pid;

	cpr_log_set_quiet(true);	/* failures expected: checked here */
	CPR_ASSERT_TRUE(st, "a CPR state");
	before = nr_open_fds();
	fakes_open(&f);
	/* A VMM's other fds at the time: none may reach the helper. */
	stray[0] = new_eventfd();
	stray[1] = new_memfd("guest-memory");
	stray[2] = epoll_create1(EPOLL_CLOEXEC);
	CPR_ASSERT_SYS(stray[2], "an epoll fd");
	h = start_helper(st, &f, NULL, 0);
	pid = cpr_helper_pid(h);
	check_helper_fds(pid, &f);

	CPR_ASSERT_EQ(-ENOTTY, cpr_helper_trigger(h, DEV_PCI, VFIO_PCI_ERR_IRQ_INDEX, 0),
		      "a software trigger of %s's ERR must reach VFIO_DEVICE_SET_IRQS on its device fd in the helper",
		      DEV_PCI);
	CPR_ASSERT_TRUE(strstr(cpr_last_error(), DEV_PCI) &&
			strstr(cpr_last_error(), "VFIO_DEVICE_SET_IRQS"),
			"the helper's error does not name the device and ioctl: %s",
			cpr_last_error());
	CPR_ASSERT_EQ(-EBADF, cpr_helper_trigger(h, DEV_MDEV, VFIO_PCI_REQ_IRQ_INDEX, 0),
		      "a trigger of %s must use that device's fd, not another's",
		      DEV_MDEV);
	CPR_ASSERT_EQ(-ENOTTY, cpr_helper_set_irqs(h, DEV_PCI, VFIO_IRQ_SET_DATA_BOOL |
						  VFIO_IRQ_SET_ACTION_TRIGGER,
						  VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, bools),
		      "a DATA_BOOL trigger of 2 MSI-X vectors");
	CPR_ASSERT_EQ(-ENOTTY, cpr_helper_unmask(h, DEV_PCI, VFIO_PCI_INTX_IRQ_INDEX, 0),
		      "the INTx unmask by ioctl");
	for (i = 0; i < 3; i++)
		efds[i] = new_eventfd();
	CPR_ASSERT_EQ(-ENOTTY, cpr_helper_msix_eventfds(h, DEV_PCI, 5, 3, efds),
		      "eventfds for MSI-X vectors 5..7, sent with SCM_RIGHTS");
	CPR_ASSERT_EQ(-ENOTTY, cpr_helper_disable(h, DEV_PCI, VFIO_PCI_MSIX_IRQ_INDEX),
		      "disabling MSI-X");
	CPR_ASSERT_EQ(-ENODEV, cpr_helper_trigger(h, DEV_ABSENT, VFIO_PCI_ERR_IRQ_INDEX, 0),
		      "a device the helper does not hold must be refused");
	CPR_ASSERT_TRUE(strstr(cpr_last_error(), DEV_ABSENT) &&
			strstr(cpr_last_error(), DEV_MDEV),
			"the refusal names neither the device asked for nor those held: %s",
			cpr_last_error());
	check_counts(h, want, "by name");
	/* The eventfds it was sent are closed once the ioctl is done. */
	check_helper_fds(pid, &f);

	CPR_ASSERT_OK(cpr_helper_quit(h), "QUIT");
	check_reaped(pid);
	CPR_ASSERT_EQ(-1, cpr_state_find_fd(st, CPR_HELPER_FD_NAME, 0),
		      "the state still names the helper after QUIT");
	for (i = 0; i < 3; i++) {
		close(efds[i]);
		close(stray[i]);
	}
	fakes_close(&f);
	cpr_state_free(st);
	CPR_ASSERT_EQ(before, nr_open_fds(), "fds open before the helper and after QUIT");
}

struct policy_case {
	const char *what;
	__u32 flags;
	unsigned int index, start, count;
	bool eventfds;		/* data: eventfds (one -1 if bad_fd) */
	bool bad_fd;
	int expect;		/* -EPERM refused, -ENOTTY allowed */
};

#define D_NONE		VFIO_IRQ_SET_DATA_NONE
#define D_BOOL		VFIO_IRQ_SET_DATA_BOOL
#define D_EFD		VFIO_IRQ_SET_DATA_EVENTFD
#define A_MASK		VFIO_IRQ_SET_ACTION_MASK
#define A_UNMASK	VFIO_IRQ_SET_ACTION_UNMASK
#define A_TRIG		VFIO_IRQ_SET_ACTION_TRIGGER
#define I_INTX		VFIO_PCI_INTX_IRQ_INDEX
#define I_MSI		VFIO_PCI_MSI_IRQ_INDEX
#define I_MSIX		VFIO_PCI_MSIX_IRQ_INDEX
#define I_ERR		VFIO_PCI_ERR_IRQ_INDEX
#define I_REQ		VFIO_PCI_REQ_IRQ_INDEX

static const struct policy_case policy[] = {
	{ "masking INTx", D_NONE | A_MASK, I_INTX, 0, 1, false, false, -EPERM },
	{ "masking MSI-X by bool", D_BOOL | A_MASK, I_MSIX, 0, 1, false, false, -EPERM },
	{ "an eventfd for MSI", D_EFD | A_TRIG, I_MSI, 0, 1, true, false, -EPERM },
	{ "an eventfd for INTx", D_EFD | A_TRIG, I_INTX, 0, 1, true, false, -EPERM },
	{ "an eventfd for ERR", D_EFD | A_TRIG, I_ERR, 0, 1, true, false, -EPERM },
	{ "an eventfd for REQ", D_EFD | A_TRIG, I_REQ, 0, 1, true, false, -EPERM },
	{ "an INTx unmask eventfd", D_EFD | A_UNMASK, I_INTX, 0, 1, true, false, -EPERM },
	{ "a disable (count 0) in SET_IRQS", D_NONE | A_TRIG, I_MSIX, 0, 0, false, false, -EPERM },
	{ "MSI-X eventfds, count 0", D_EFD | A_TRIG, I_MSIX, 0, 0, true, false, -EPERM },
	{ "MSI-X eventfds, one of them -1", D_EFD | A_TRIG, I_MSIX, 2, 2, true, true, -EPERM },
	{ "two data types", D_NONE | D_BOOL | A_TRIG, I_MSIX, 0, 1, false, false, -EPERM },
	{ "two actions", D_NONE | A_TRIG | A_UNMASK, I_INTX, 0, 1, false, false, -EPERM },
	{ "an unknown flag", D_NONE | A_TRIG | (1u << 12), I_ERR, 0, 1, false, false, -EPERM },
	{ "a software trigger of ERR", D_NONE | A_TRIG, I_ERR, 0, 1, false, false, -ENOTTY },
	{ "a software trigger of MSI-X 3", D_NONE | A_TRIG, I_MSIX, 3, 1, false, false, -ENOTTY },
	{ "an INTx unmask", D_NONE | A_UNMASK, I_INTX, 0, 1, false, false, -ENOTTY },
	{ "a bool trigger of MSI-X 0..1", D_BOOL | A_TRIG, I_MSIX, 0, 2, false, false, -ENOTTY },
	{ "a bool INTx unmask", D_BOOL | A_UNMASK, I_INTX, 0, 1, false, false, -ENOTTY },
	{ "eventfds for MSI-X 6..7", D_EFD | A_TRIG, I_MSIX, 6, 2, true, false, -ENOTTY },
};

TEST(helper_policy_refuses_what_it_must)
{
	unsigned int want[CPR_HELPER_REQ_MAX] = { 0 }, i, refused = 0;
	struct cpr_state *st = cpr_state_new();
	const __u8 bools[2] = { 1, 1 };
	struct cpr_helper *h;
	struct fakes f;
	int efd, fds[2];

	cpr_log_set_quiet(true);	/* failures expected: checked here */
	CPR_ASSERT_TRUE(st, "a CPR state");
	fakes_open(&f);
	h = start_helper(st, &f, NULL, 0);
	efd = new_eventfd();
	for (i = 0; i < ARRAY_SIZE(policy); i++) {
		const struct policy_case *p = &policy[i];
		const void *data = NULL;
		int ret;

		fds[0] = efd;
		fds[1] = p->bad_fd ? -1 : efd;
		if (p->eventfds)
			data = fds;
		else if (p->flags & D_BOOL)
			data = bools;
		ret = cpr_helper_set_irqs(h, DEV_PCI, p->flags, p->index,
					  p->start, p->count, data);
		CPR_ASSERT_EQ(p->expect, ret, "%s: %s by the helper's policy",
			      p->what, p->expect == -EPERM ? "must be refused" :
			      "must be allowed (and reach the device fd)");
		if (p->expect == -EPERM) {
			CPR_ASSERT_TRUE(strstr(cpr_last_error(), "refused by the helper's policy"),
					"%s: the refusal does not say it is the policy's: %s",
					p->what, cpr_last_error());
			refused++;
		} else {
			want[(p->flags & A_UNMASK) ? CPR_HELPER_REQ_UNMASK :
			     (p->flags & D_EFD) ? CPR_HELPER_REQ_EVENTFDS :
			     CPR_HELPER_REQ_TRIGGER]++;
		}
	}
	want[CPR_HELPER_REQ_REFUSED] = refused;
	check_counts(h, want, "policy");
	printf("# policy: %u requests refused, %zu allowed\n", refused,
	       ARRAY_SIZE(policy) - refused);
	fflush(stdout);
	CPR_ASSERT_OK(cpr_helper_quit(h), "QUIT");
	close(efd);
	fakes_close(&f);
	cpr_state_free(st);
}

/* ---- Extra operations ---- */

enum { OP_DESCRIBE = 1, OP_FAIL, OP_SLEEP, OP_UNKNOWN = 99 };

/* What OP_DESCRIBE sees inside the helper. */
struct op_view {
	char dev[CPR_VFIO_NAME_MAX];
	__u64 container_ino;	/* fstat() of the device's container fd */
	__u32 in_sum;
	__u32 nr_fds;
	__s32 kinds[CPR_HELPER_OP_FDS_MAX];
};

static int op_describe(struct cpr_helper_call *call)
{
	struct op_view *v = call->out;
	const __u8 *in = call->in;
	struct stat sb;
	unsigned int i;

	memset(v, 0, sizeof(*v));
	if (call->dev) {
		snprintf(v->dev, sizeof(v->dev), "%s", call->dev->name);
		if (call->dev->container_fd >= 0 &&
		    !fstat(call->dev->container_fd, &sb))
			v->container_ino = sb.st_ino;
	}
	for (i = 0; i < call->in_len; i++)
		v->in_sum += in[i];
	v->nr_fds = call->nr_fds;
	for (i = 0; i < call->nr_fds && i < CPR_HELPER_OP_FDS_MAX; i++)
		v->kinds[i] = cpr_fd_kind_of(call->fds[i]);
	call->out_len = sizeof(*v);
	return 0;
}

static int op_fail(struct cpr_helper_call *call)
{
	return cpr_err(-EIO, "deliberate failure on %s",
		       call->dev ? call->dev->name : "no device");
}

/* Busy for a while, the request read: to be killed meanwhile. */
static int op_sleep(struct cpr_helper_call *call)
{
	(void)call;
	sleep(10);
	return 0;
}

static const struct cpr_helper_op test_ops[] = {
	{ OP_DESCRIBE, "describe", op_describe },
	{ OP_FAIL, "fail", op_fail },
	{ OP_SLEEP, "sleep", op_sleep },
};

TEST(helper_runs_extra_operations)
{
	unsigned int want[CPR_HELPER_REQ_MAX] = {
		[CPR_HELPER_REQ_OP] = 3,
		[CPR_HELPER_REQ_REFUSED] = 2,
	};
	struct cpr_state *st = cpr_state_new();
	static const char in[] = "pin a page";
	struct cpr_helper *h;
	struct op_view v;
	struct fakes f;
	int fds[5], i;
	__u32 sum = 0;
	struct stat sb;
	size_t len;

	cpr_log_set_quiet(true);	/* failures expected: checked here */
	CPR_ASSERT_TRUE(st, "a CPR state");
	fakes_open(&f);
	h = start_helper(st, &f, test_ops, ARRAY_SIZE(test_ops));
	fds[0] = new_eventfd();
	fds[1] = new_memfd("probe-page");
	for (i = 2; i < 5; i++)
		fds[i] = new_eventfd();
	for (i = 0; i < (int)sizeof(in); i++)
		sum += (__u8)in[i];

	CPR_ASSERT_OK(cpr_helper_call(h, OP_DESCRIBE, DEV_PCI, in, sizeof(in),
				      fds, 2, &v, sizeof(v), &len),
		      "extra operation 'describe' on %s", DEV_PCI);
	CPR_ASSERT_EQ(sizeof(v), len, "answer length");
	CPR_ASSERT_TRUE(!strcmp(v.dev, DEV_PCI), "the operation was given device '%s'",
			v.dev);
	CPR_ASSERT_SYS(fstat(f.d[0].container_fd, &sb), "fstat of the container");
	CPR_ASSERT_EQ(sb.st_ino, v.container_ino,
		      "the operation does not see the device's container in the helper");
	CPR_ASSERT_EQ(sum, v.in_sum, "the operation's payload arrived changed");
	CPR_ASSERT_EQ(2, v.nr_fds, "fds the operation got");
	CPR_ASSERT_EQ(CPR_FD_EVENTFD, v.kinds[0], "first fd sent");
	CPR_ASSERT_EQ(CPR_FD_MEMFD, v.kinds[1], "second fd sent");

	CPR_ASSERT_OK(cpr_helper_call(h, OP_DESCRIBE, NULL, NULL, 0, NULL, 0,
				      &v, sizeof(v), &len),
		      "extra operation without a device");
	CPR_ASSERT_TRUE(!v.dev[0] && !v.nr_fds, "no device, no fds: got '%s', %u",
			v.dev, v.nr_fds);
	CPR_ASSERT_EQ(-EIO, cpr_helper_call(h, OP_FAIL, DEV_MDEV, NULL, 0, NULL, 0,
					    NULL, 0, NULL),
		      "an operation's failure must come back as its errno");
	CPR_ASSERT_TRUE(strstr(cpr_last_error(), "deliberate failure on " DEV_MDEV),
			"the operation's message did not come back: %s",
			cpr_last_error());
	CPR_ASSERT_EQ(-EOPNOTSUPP, cpr_helper_call(h, OP_UNKNOWN, NULL, NULL, 0,
						   NULL, 0, NULL, 0, NULL),
		      "an operation that was not registered");
	CPR_ASSERT_EQ(-ENODEV, cpr_helper_call(h, OP_DESCRIBE, DEV_ABSENT, NULL, 0,
					       NULL, 0, &v, sizeof(v), &len),
		      "an operation on a device the helper does not hold");
	CPR_ASSERT_EQ(-EMSGSIZE, cpr_helper_call(h, OP_DESCRIBE, NULL, NULL, 0,
						 fds, 5, &v, sizeof(v), &len),
		      "more fds than an operation takes");
	check_counts(h, want, "operations");
	check_helper_fds(cpr_helper_pid(h), &f);
	CPR_ASSERT_OK(cpr_helper_quit(h), "QUIT");
	for (i = 0; i < 5; i++)
		close(fds[i]);
	fakes_close(&f);
	cpr_state_free(st);
}

/* ---- QUIT: the device fds are closed before the socket ---- */

/*
 * The helper's close() of one device fd is held by a seccomp user
 * notification (the filter is this process's, inherited by the helper)
 * while this thread looks at the client socket: at that moment the helper
 * must not have closed its socket yet.
 */
struct close_watch {
	int listener;
	int client;		/* a dup of the client socket */
	pid_t helper;
	int notified;
	bool socket_closed_first;
	int error;
};

static void *close_watcher(void *arg)
{
	struct close_watch *w = arg;
	struct seccomp_notif_sizes sizes;
	struct seccomp_notif_resp *resp;
	struct seccomp_notif *req;
	struct pollfd p = { .fd = w->listener, .events = POLLIN };
	char byte;

	if (syscall(__NR_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes)) {
		w->error = errno;
		return NULL;
	}
	req = calloc(1, sizes.seccomp_notif);
	resp = calloc(1, sizes.seccomp_notif_resp);
	if (!req || !resp) {
		w->error = ENOMEM;
		goto out;
	}
	if (poll(&p, 1, 10000) != 1 ||
	    ioctl(w->listener, SECCOMP_IOCTL_NOTIF_RECV, req)) {
		w->error = errno ? errno : ETIMEDOUT;
		goto out;
	}
	w->notified = req->pid;
	/* EOF already (0), or still open (-1, EAGAIN)? */
	w->socket_closed_first = recv(w->client, &byte, 1,
				      MSG_PEEK | MSG_DONTWAIT) == 0;
	resp->id = req->id;
	resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	if (ioctl(w->listener, SECCOMP_IOCTL_NOTIF_SEND, resp))
		w->error = errno;
out:
	free(req);
	free(resp);
	return NULL;
}

/* A filter notifying close(@fd): the listener fd, or -errno. */
static int watch_close_of(int fd)
{
	struct sock_filter insns[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_close, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, args)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, fd, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
		.len = ARRAY_SIZE(insns),
		.filter = insns,
	};
	long ret;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	ret = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER,
		      SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	return ret < 0 ? -errno : (int)ret;
}

TEST(helper_quit_closes_device_fds_before_its_socket)
{
	struct close_watch w = { .listener = -1 };
	struct cpr_state *st;
	struct cpr_helper *h;
	pthread_t thread;
	struct fakes f;
	int watched;

	/* Seccomp filters, and user notifications (checked below). */
	if (!cpr_lockdown_available())
		SKIP(return, NO_LOCKDOWN);
	st = cpr_state_new();
	CPR_ASSERT_TRUE(st, "a CPR state");
	fakes_open(&f);
	/* This process never closes that fd number again: only the helper. */
	watched = f.d[0].device_fd;
	w.listener = watch_close_of(watched);
	if (w.listener < 0) {
		fakes_close(&f);
		cpr_state_free(st);
		SKIP(return, "no seccomp user notification here: %s",
		     strerror(-w.listener));
	}
	h = start_helper(st, &f, NULL, 0);
	w.helper = cpr_helper_pid(h);
	w.client = dup(cpr_state_find_fd(st, CPR_HELPER_FD_NAME, 0));
	CPR_ASSERT_SYS(w.client, "a second look at the client socket");
	CPR_ASSERT_EQ(0, pthread_create(&thread, NULL, close_watcher, &w),
		      "starting the close watcher");
	CPR_ASSERT_OK(cpr_helper_quit(h), "QUIT");
	CPR_ASSERT_EQ(0, pthread_join(thread, NULL), "joining the close watcher");
	CPR_ASSERT_EQ(0, w.error, "close watcher: %s", strerror(w.error));
	CPR_ASSERT_NE(0, w.notified,
		      "the helper never closed device fd %d on QUIT", watched);
	CPR_ASSERT_FALSE(w.socket_closed_first,
			 "on QUIT the helper closed its socket before the device fds: a client seeing EOF would find the device still open");
	check_reaped(w.helper);
	close(w.client);
	cpr_state_free(st);
}

/* ---- A helper that dies or stops ---- */

/*
 * A helper killed 200 ms into a request: stopped before it read it, or
 * busy in an operation once it did (the client then sees EOF).
 */
static void killed_while_waiting(struct cpr_state *st, struct fakes *f,
				 bool busy)
{
	struct cpr_helper *h;
	pid_t pid, killer;
	int status, ret;
	__u64 t0;

	h = start_helper(st, f, test_ops, ARRAY_SIZE(test_ops));
	pid = cpr_helper_pid(h);
	if (!busy)
		CPR_ASSERT_SYS(kill(pid, SIGSTOP), "stopping the helper");
	fflush(NULL);
	killer = fork();
	CPR_ASSERT_SYS(killer, "fork");
	if (!killer) {
		usleep(200000);
		_exit(kill(pid, SIGKILL) ? 1 : 0);
	}
	t0 = cpr_now_ns();
	ret = busy ? cpr_helper_call(h, OP_SLEEP, NULL, NULL, 0, NULL, 0, NULL,
				     0, NULL) :
	      cpr_helper_trigger(h, DEV_PCI, VFIO_PCI_ERR_IRQ_INDEX, 0);
	CPR_ASSERT_EQ(-ECONNRESET, ret,
		      "a helper killed while the client waits for its answer (%s)",
		      busy ? "busy with the request" : "before reading it");
	CPR_ASSERT_LT(cpr_now_ns() - t0, 2000000000ull,
		      "the end of the helper was not seen while waiting");
	CPR_ASSERT_EQ(killer, waitpid(killer, &status, 0), "waiting for the killer");
	CPR_ASSERT_EQ(-ECONNRESET, cpr_helper_quit(h), "QUIT of a killed helper");
	check_reaped(pid);
}

TEST(helper_killed_gives_econnreset_without_hanging)
{
	struct cpr_state *st = cpr_state_new();
	struct cpr_helper *h;
	struct fakes f;
	char want[64];
	__u64 t0;
	pid_t pid;

	CPR_ASSERT_TRUE(st, "a CPR state");
	fakes_open(&f);
	h = start_helper(st, &f, NULL, 0);
	pid = cpr_helper_pid(h);
	CPR_ASSERT_SYS(kill(pid, SIGKILL), "killing the helper");
	t0 = cpr_now_ns();
	CPR_ASSERT_EQ(-ECONNRESET, cpr_helper_trigger(h, DEV_PCI, VFIO_PCI_ERR_IRQ_INDEX, 0),
		      "a request to a killed helper");
	CPR_ASSERT_LT(cpr_now_ns() - t0, 2000000000ull,
		      "the request to a dead helper took too long");
	snprintf(want, sizeof(want), "pid %d", pid);
	CPR_ASSERT_TRUE(strstr(cpr_last_error(), want) &&
			strstr(cpr_last_error(), "killed by signal 9"),
			"the error does not name the helper and how it died: %s",
			cpr_last_error());
	CPR_ASSERT_EQ(-ECONNRESET, cpr_helper_quit(h), "QUIT of a killed helper");
	check_reaped(pid);

	/* Killed while the client waits: with the request unread, and read. */
	killed_while_waiting(st, &f, false);
	killed_while_waiting(st, &f, true);
	fakes_close(&f);
	cpr_state_free(st);
}

TEST(helper_stopped_gives_etimedout_then_recovers)
{
	struct cpr_state *st = cpr_state_new();
	struct cpr_helper *h;
	struct fakes f;
	__u64 t0, took;
	pid_t pid;

	CPR_ASSERT_TRUE(st, "a CPR state");
	fakes_open(&f);
	h = start_helper(st, &f, NULL, 0);
	pid = cpr_helper_pid(h);
	cpr_helper_set_timeout(h, 300);
	CPR_ASSERT_SYS(kill(pid, SIGSTOP), "stopping the helper");
	t0 = cpr_now_ns();
	CPR_ASSERT_EQ(-ETIMEDOUT, cpr_helper_trigger(h, DEV_MDEV, VFIO_PCI_REQ_IRQ_INDEX, 0),
		      "a request to a stopped helper");
	took = (cpr_now_ns() - t0) / 1000000;
	CPR_ASSERT_TRUE(took >= 290 && took < 3000,
			"the timeout of 300 ms took %llu ms", (unsigned long long)took);
	CPR_ASSERT_SYS(kill(pid, SIGCONT), "letting it go on");
	/* Its late answer (EBADF, the mdev) must not pass for this one's. */
	CPR_ASSERT_EQ(-ENOTTY, cpr_helper_trigger(h, DEV_PCI, VFIO_PCI_ERR_IRQ_INDEX, 0),
		      "the answer after a timeout is the late answer to the abandoned request");

	/* QUIT to a stopped helper: bounded, killed and reaped. */
	CPR_ASSERT_SYS(kill(pid, SIGSTOP), "stopping the helper again");
	t0 = cpr_now_ns();
	CPR_ASSERT_EQ(-ETIMEDOUT, cpr_helper_quit(h), "QUIT to a stopped helper");
	CPR_ASSERT_LT(cpr_now_ns() - t0, 3000000000ull, "QUIT took too long");
	check_reaped(pid);
	fakes_close(&f);
	cpr_state_free(st);
}

TEST(helper_refused_under_the_lockdown)
{
	struct cpr_state *st;
	struct cpr_helper *h = NULL;
	struct fakes f;

	if (!cpr_lockdown_available())
		SKIP(return, NO_LOCKDOWN);
	st = cpr_state_new();
	CPR_ASSERT_TRUE(st, "a CPR state");
	fakes_open(&f);
	CPR_ASSERT_OK(cpr_lockdown_install(), "installing the lockdown");
	CPR_ASSERT_EQ(-EPERM, cpr_helper_start(st, f.devs, 2, NULL, 0, &h),
		      "a helper started under the lockdown would inherit it");
	CPR_ASSERT_EQ(-1, cpr_state_find_fd(st, CPR_HELPER_FD_NAME, 0),
		      "a refused start left the helper's name in the state");
	fakes_close(&f);
	cpr_state_free(st);
}

TEST(helper_refuses_to_start_after_a_vm)
{
	struct cpr_state *st;
	struct cpr_helper *h = NULL;
	struct cpr_vm *vm;
	struct fakes f;
	int ret;

	if (access("/dev/kvm", R_OK | W_OK))
		SKIP(return, "/dev/kvm not usable (%s): no VM to start after",
		     strerror(errno));
	st = cpr_state_new();
	CPR_ASSERT_TRUE(st, "a CPR state");
	fakes_open(&f);
	CPR_ASSERT_OK(cpr_vm_create(&vm, 1), "creating a VM");
	ret = cpr_helper_start(st, f.devs, 2, NULL, 0, &h);
	CPR_ASSERT_EQ(-EBUSY, ret,
		      "a helper forked with a vCPU mapped would keep the VM alive after the handoff");
	CPR_ASSERT_TRUE(strstr(cpr_last_error(), "KVM"),
			"the refusal does not say why: %s", cpr_last_error());
	cpr_vm_destroy(vm);
	fakes_close(&f);
	cpr_state_free(st);
}

/* ---- The helper across handoffs ---- */

/*
 * A successor's device: @name taken over by hand (no VFIO here), routed
 * through @h, with INTx unmasked by ioctl.
 */
static void successor_dev(struct cpr_vfio_dev *d, struct cpr_helper *h,
			  int intx_fd)
{
	fake_dev(d, DEV_PCI);
	d->reused = true;
	d->helper = h;
	d->intx_fd = intx_fd;
	d->intx_unmask_by_ioctl = true;
}

/* What a successor may do through the helper, under the lockdown. */
static void successor_uses_helper(struct cpr_state *st, const char *how)
{
	unsigned int want[CPR_HELPER_REQ_MAX] = {
		[CPR_HELPER_REQ_TRIGGER] = 1,
		[CPR_HELPER_REQ_UNMASK] = 1,
		[CPR_HELPER_REQ_DISABLE] = 1,
	};
	struct cpr_helper *h = NULL;
	struct cpr_vfio_dev d;
	__u64 pid;
	int intx, status;
	pid_t child;

	cpr_test_context("helper after the %s handoff", how);
	CPR_ASSERT_EQ(cpr_lockdown_available(), cpr_lockdown_active(),
		      "the successor does not run under the lockdown");
	CPR_ASSERT_OK(cpr_helper_attach(st, &h), "taking the helper up from the state");
	CPR_ASSERT_OK(cpr_state_get_u64(st, CPR_HELPER_SEC_PID, &pid), "its pid");
	CPR_ASSERT_EQ(pid, cpr_helper_pid(h), "the helper's pid");
	intx = new_eventfd();
	successor_dev(&d, h, intx);

	/* The library's own calls go through the helper. */
	CPR_ASSERT_EQ(-ENOTTY, cpr_vfio_irq_trigger(&d, VFIO_PCI_ERR_IRQ_INDEX, 0),
		      "cpr_vfio_irq_trigger() did not reach the device through the helper");
	CPR_ASSERT_EQ(-ENOTTY, cpr_vfio_intx_unmask(&d),
		      "the ioctl unmask did not go through the helper");
	CPR_ASSERT_EQ(-ENOTTY, cpr_vfio_irq_disable(&d, VFIO_PCI_MSIX_IRQ_INDEX),
		      "the disable did not go through the helper");
	CPR_ASSERT_EQ(1, d.setup_ioctls, "the disable still counts as a setup ioctl");
	CPR_ASSERT_EQ(0, cpr_lockdown_violations(),
		      "the lockdown refused a call that went through the helper");
	check_counts(h, want, how);

	/* Without the helper the same trigger is refused (in a child). */
	fflush(NULL);
	child = fork();
	CPR_ASSERT_SYS(child, "fork");
	if (!child) {
		/* No device fd at all: the kernel would say EBADF. */
		d.helper = NULL;
		printf("# without the helper, the lockdown must refuse this trigger:\n");
		fflush(stdout);
		_exit(cpr_vfio_irq_trigger(&d, VFIO_PCI_ERR_IRQ_INDEX, 0) ==
		      (cpr_lockdown_active() ? -CPR_LOCKDOWN_ERRNO : -EBADF) ? 0 : 1);
	}
	CPR_ASSERT_EQ(child, waitpid(child, &status, 0), "waiting for the child");
	CPR_ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status),
			"without the helper, a software trigger was not refused by the lockdown (status 0x%x)",
			status);
	close(intx);
	CPR_ASSERT_OK(cpr_helper_quit(h), "QUIT from the successor");
	CPR_ASSERT_EQ(-1, cpr_state_find_fd(st, CPR_HELPER_FD_NAME, 0),
		      "the state still names the helper after QUIT");
}

/* Close what a received or inherited state names, and free it. */
static void state_release(struct cpr_state *st)
{
	while (cpr_state_nr_fds(st)) {
		const struct cpr_fd_rec *r = cpr_state_fd_at(st, 0);

		close(r->fd);
		cpr_state_delete_fd(st, r->name, r->index);
	}
	cpr_state_free(st);
}

TEST(helper_travels_through_an_exec_handoff)
{
	struct cpr_state *st = cpr_state_new();
	struct cpr_helper *h;
	struct fakes f;

	CPR_ASSERT_TRUE(st, "a CPR state");
	fakes_open(&f);
	h = start_helper(st, &f, NULL, 0);
	/* The fakes are close-on-exec: only the helper keeps the devices. */
	cpr_helper_free(h);
	CPR_ASSERT_OK(cpr_test_exec_self(st, "helper-exec", NULL),
		      "exec into the successor");
}

static int successor_helper_exec(void)
{
	struct cpr_resume_info info;
	pid_t pid;
	__u64 v;

	cpr_test_resume(&info);
	CPR_ASSERT_OK(cpr_state_get_u64(info.st, CPR_HELPER_SEC_PID, &v), "the pid");
	pid = v;
	successor_uses_helper(info.st, "exec");
	/* Same process as the helper's parent: QUIT reaped it. */
	check_reaped(pid);
	state_release(info.st);
	return 0;
}

static int give_detach(struct cpr_state *st, void *arg)
{
	(void)st;
	(void)arg;
	return 0;
}

TEST(helper_travels_through_a_socket_handoff)
{
	const struct cpr_xfer_give_ops ops = {
		.detach = give_detach,
		.reattach = give_detach,
	};
	struct cpr_state *st = cpr_state_new();
	struct cpr_helper *h;
	struct fakes f;
	char path[64];
	pid_t pid, succ;
	int vector;

	CPR_ASSERT_TRUE(st, "a CPR state");
	fakes_open(&f);
	h = start_helper(st, &f, NULL, 0);
	pid = cpr_helper_pid(h);
	/* A VMM's state names more than the helper: a vector's eventfd. */
	vector = new_eventfd();
	CPR_ASSERT_OK(cpr_state_save_fd(st, DEV_PCI "_interrupt", 0, vector),
		      "saving a vector's eventfd");
	snprintf(path, sizeof(path), "@cpr_lockdown_test.%d", getpid());
	succ = cpr_test_give_to_self(st, "helper-xfer", path, "",
				     XFER_TIMEOUT_MS, &ops, NULL);
	CPR_ASSERT_LT(0, succ, "the socket handoff: %s", cpr_last_error());
	CPR_ASSERT_EQ(0, cpr_test_wait_successor(succ),
		      "the socket successor's checks");
	/* The successor ended the helper; its parent reaps it. */
	CPR_ASSERT_OK(cpr_helper_quit(h),
		      "QUIT by the parent of a helper a successor ended");
	check_reaped(pid);
	close(vector);
	fakes_close(&f);
	cpr_state_free(st);
}

static int take_prepare(struct cpr_state *st, void *arg)
{
	(void)arg;
	successor_uses_helper(st, "socket");
	return 0;
}

static int take_attach(struct cpr_state *st, void *arg)
{
	(void)st;
	(void)arg;
	return 0;
}

static int successor_helper_xfer(const char *path)
{
	const struct cpr_xfer_take_ops ops = {
		.prepare = take_prepare,
		.attach = take_attach,
	};
	struct cpr_state *st = NULL;

	CPR_ASSERT_OK(cpr_xfer_take(path, XFER_TIMEOUT_MS, &st, &ops, NULL),
		      "taking the state over the socket");
	state_release(st);
	return 0;
}

int main(int argc, char **argv)
{
	/* Deliberately before the lockdown is entered: must die of SIGSYS. */
	if (argc >= 2 && !strcmp(argv[1], BEFORE_ENTER))
		return before_enter();
	cpr_test_successor_enter(argc, argv);
	if (argc >= 3 && !strcmp(argv[1], CPR_TEST_SUCCESSOR)) {
		if (!strcmp(argv[2], "lockdown"))
			return successor_lockdown();
		if (!strcmp(argv[2], "ignore"))
			return successor_ignore();
		if (!strcmp(argv[2], "helper-exec"))
			return successor_helper_exec();
		if (argc >= 4 && !strcmp(argv[2], "helper-xfer"))
			return successor_helper_xfer(argv[3]);
		CPR_FAIL("unknown successor scenario '%s'", argv[2]);
	}
	return test_harness_run(argc, argv);
}
