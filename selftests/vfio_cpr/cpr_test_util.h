/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Shared by the vfio_cpr selftests: running a test's successor (the test
 * binary itself, exec'd by the handoff) and checks for the successor side,
 * where the harness's ASSERT macros are not available (the harness lives in
 * the predecessor's image).  The successor's exit status is the test's
 * result: 0 pass, 1 fail, KSFT_SKIP never.
 */
#ifndef VFIO_CPR_TEST_UTIL_H
#define VFIO_CPR_TEST_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/resource.h>
#include <unistd.h>

#include "vfio_cpr/handoff.h"
#include "vfio_cpr/kvm.h"
#include "vfio_cpr/log.h"

/* argv[1] of a test binary started as a successor. */
#define CPR_TEST_SUCCESSOR	"--cpr-successor"

/*
 * Fail the successor: say where, what was expected, the library's last
 * error and errno, then exit 1 (the harness in the parent reports it).
 */
#define SUCC_FAIL(fmt, ...) do {					\
	int __e = errno;						\
	fprintf(stderr, "# successor %s:%d: " fmt "\n",			\
		__FILE__, __LINE__, ##__VA_ARGS__);			\
	if (cpr_last_error()[0])					\
		fprintf(stderr, "#   last library error: %s\n",		\
			cpr_last_error());				\
	if (__e)							\
		fprintf(stderr, "#   errno %d (%s)\n", __e, strerror(__e)); \
	fflush(NULL);							\
	exit(1);							\
} while (0)

#define SUCC_ASSERT(cond, fmt, ...) do {				\
	if (!(cond))							\
		SUCC_FAIL("'%s' is false: " fmt, #cond, ##__VA_ARGS__); \
} while (0)

#define SUCC_ASSERT_EQ(expected, seen, fmt, ...) do {			\
	long long __x = (long long)(expected);				\
	long long __s = (long long)(seen);				\
	if (__x != __s)							\
		SUCC_FAIL("%s: expected %lld, got %lld: " fmt,		\
			  #seen, __x, __s, ##__VA_ARGS__);		\
} while (0)

/*
 * Exec this very test binary as the successor of @scenario, handing @st
 * over.  Returns only if the exec failed (-errno).
 */
static inline int cpr_test_exec_self(struct cpr_state *st,
				     const char *scenario, const char *arg)
{
	char self[4096], *argv[5];
	ssize_t n;

	/*
	 * The resolved path, not /proc/self/exe itself: under valgrind the
	 * latter is the tool, while readlink() is answered for the client.
	 */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return cpr_err(-errno, "readlink /proc/self/exe");
	self[n] = '\0';
	argv[0] = program_invocation_name;
	argv[1] = (char *)CPR_TEST_SUCCESSOR;
	argv[2] = (char *)scenario;
	argv[3] = (char *)(arg ? arg : "");
	argv[4] = NULL;
	return cpr_exec(st, self, argv);
}

/* Take the handed-off state over; any problem fails the successor. */
static inline void cpr_test_resume(struct cpr_resume_info *info)
{
	int ret = cpr_resume(info);

	if (ret != 1)
		SUCC_FAIL("cpr_resume() = %d: no handed-off state received",
			  ret);
	if (info->leaked_fds)
		SUCC_FAIL("fd audit after exec: %d fd(s) leaked into the successor",
			  info->leaked_fds);
}

/*
 * 2048 vectors hold 4096 eventfds: raise the soft RLIMIT_NOFILE to the
 * hard one, as a VMM does (Debian's default soft limit is 1024).
 */
static inline void cpr_test_raise_nofile(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * Wait until @vec shows in @vcpu's LAPIC IRR: 1, 0 when @ms passed
 * without it, -errno.  (An eventfd signalled before its irqfd was attached
 * is injected by a kernel worker, a little later than the attach.)
 */
static inline int cpr_test_wait_irr(struct cpr_vm *vm, unsigned int vcpu,
				    unsigned int vec, int ms)
{
	__u64 end = cpr_now_ns() + (__u64)ms * 1000000;
	int ret;

	do {
		ret = cpr_vm_lapic_irr_test(vm, vcpu, vec);
		if (ret)
			return ret;
		usleep(20);
	} while (cpr_now_ns() < end);
	return 0;
}

#endif /* VFIO_CPR_TEST_UTIL_H */
