/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Shared by the vfio_cpr selftests: running a test's successor (the test
 * binary itself, exec'd by the handoff, or started on its own for a socket
 * handoff), and asserting forms of the library calls the tests make most.
 * Checks use cpr_assert.h everywhere, the successor side included (the
 * harness lives in the predecessor's image): a failing check prints what
 * broke and exits with KSFT_FAIL, the successor's exit status being the
 * test's result: 0 pass, 1 fail, KSFT_SKIP never.
 *
 * Every successor runs under the lockdown (vfio_cpr/lockdown.h) from its
 * first instruction: cpr_test_exec_self() installs it just before the exec,
 * cpr_test_spawn_self() in the child just before its execl(), and a test's
 * main() calls cpr_test_successor_enter() first.  Where the kernel cannot
 * filter (no CONFIG_SECCOMP_FILTER) or a tool does not pass seccomp(2) on
 * (valgrind), successors run without it; cpr_lockdown_test skips and says
 * so.
 */
#ifndef VFIO_CPR_TEST_UTIL_H
#define VFIO_CPR_TEST_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cpr_assert.h"
#include "vfio_cpr/handoff.h"
#include "vfio_cpr/kvm.h"
#include "vfio_cpr/lockdown.h"
#include "vfio_cpr/log.h"
#include "vfio_cpr/state.h"
#include "vfio_cpr/transfer.h"

/* argv[1] of a test binary started as a successor. */
#define CPR_TEST_SUCCESSOR	"--cpr-successor"

/*
 * Asserting forms of the library calls the tests make most often, beside
 * the library's own, which return -errno (or NULL) for the caller to judge:
 * each fails the test saying what it was doing, with the library's error.
 * A test that expects a call to fail, or whose check says more than "it
 * worked", calls the library itself.
 */
static inline int __cpr_test_state_new(struct cpr_state **st)
{
	*st = cpr_state_new();
	return *st ? 0 : -ENOMEM;
}

static inline struct cpr_state *cpr_test_state_new(void)
{
	struct cpr_state *st;

	CPR_ASSERT_OK(__cpr_test_state_new(&st), "allocating a CPR state");
	return st;
}

static inline void cpr_test_save_fd(struct cpr_state *st, const char *name,
				    __u32 index, int fd)
{
	CPR_ASSERT_OK(cpr_state_save_fd(st, name, index, fd),
		      "saving fd %d as '%s'[%u] in the CPR state", fd, name,
		      index);
}

static inline void cpr_test_set_section(struct cpr_state *st,
					const char *name, const void *data,
					size_t len)
{
	CPR_ASSERT_OK(cpr_state_set_section(st, name, data, len),
		      "setting section '%s' (%zu bytes) in the CPR state", name,
		      len);
}

static inline void cpr_test_set_u64(struct cpr_state *st, const char *name,
				    __u64 val)
{
	CPR_ASSERT_OK(cpr_state_set_u64(st, name, val),
		      "setting section '%s' to %llu in the CPR state", name,
		      (unsigned long long)val);
}

/* Serialise @st into a malloc'd buffer (the caller frees it). */
static inline void cpr_test_state_to_buf(const struct cpr_state *st,
					 void **buf, size_t *len)
{
	CPR_ASSERT_OK(cpr_state_to_buf(st, buf, len),
		      "serialising a CPR state of %u fd(s) and %u section(s)",
		      cpr_state_nr_fds(st), cpr_state_nr_sections(st));
}

/*
 * This test binary's path: resolved, not /proc/self/exe itself, which under
 * valgrind is the tool, while readlink() is answered for the client.
 */
static inline int cpr_test_self_path(char *buf, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", buf, size - 1);

	if (n <= 0)
		return cpr_err(-errno, "readlink /proc/self/exe");
	buf[n] = '\0';
	return 0;
}

/*
 * The lockdown for a successor about to start, where it can be had: 0, or
 * -errno when the kernel could filter but installing failed.
 */
static inline int cpr_test_lockdown(void)
{
	return cpr_lockdown_available() ? cpr_lockdown_install() : 0;
}

/* At a successor's exit: refused ioctls fail it, even ignored ones. */
static inline void cpr_test_lockdown_exit_check(void)
{
	char what[512];

	/* A failed check already said what broke (a refusal included). */
	if (!cpr_lockdown_violations() || cpr_test_failed)
		return;
	fflush(stdout);
	fprintf(stderr,
		"# FAIL %s: the successor issued %u ioctl(s) that the lockdown refused: a successor must not touch the device\n"
		"#   expected 0 refused, seen %s\n",
		cpr_test_ctx[0] ? cpr_test_ctx : "lockdown",
		cpr_lockdown_violations(),
		cpr_lockdown_describe(what, sizeof(what)));
	fflush(NULL);
	_exit(CPR_TEST_EXIT_FAIL);	/* exit() again is undefined here */
}

/*
 * First thing in main(): when started as a successor, re-install the
 * lockdown's SIGSYS handler (handlers do not survive exec) and check the
 * filter is in place where the kernel has one; refused ioctls then fail
 * the successor when it exits.
 */
static inline void cpr_test_successor_enter(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], CPR_TEST_SUCCESSOR) ||
	    !cpr_lockdown_available())
		return;
	CPR_ASSERT_OK(cpr_lockdown_enter(),
		      "a successor must run under the lockdown from its first instruction");
	CPR_ASSERT_EQ(0, atexit(cpr_test_lockdown_exit_check),
		      "registering the lockdown's exit check");
}

/*
 * Exec this very test binary as the successor of @scenario, handing @st
 * over, under the lockdown.  Returns only if the exec failed (-errno):
 * this process then stays under the lockdown.
 */
static inline int cpr_test_exec_self(struct cpr_state *st,
				     const char *scenario, const char *arg)
{
	char self[4096], *argv[5];
	int ret = cpr_test_self_path(self, sizeof(self));

	if (!ret)
		ret = cpr_test_lockdown();
	if (ret)
		return ret;
	argv[0] = program_invocation_name;
	argv[1] = (char *)CPR_TEST_SUCCESSOR;
	argv[2] = (char *)scenario;
	argv[3] = (char *)(arg ? arg : "");
	argv[4] = NULL;
	return cpr_exec(st, self, argv);
}

/*
 * Start this test binary as "--cpr-successor @scenario @sock @arg", a
 * process of its own under the lockdown: the successor of a socket
 * handoff.  Its pid, or -errno.
 */
static inline pid_t cpr_test_spawn_self(const char *scenario,
					const char *sock, const char *arg)
{
	char self[4096];
	int ret = cpr_test_self_path(self, sizeof(self));
	pid_t pid;

	if (ret)
		return ret;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return cpr_err(-errno, "forking the successor");
	if (!pid) {
		if (cpr_test_lockdown())
			_exit(126);
		execl(self, self, CPR_TEST_SUCCESSOR, scenario, sock, arg,
		      (char *)NULL);
		_exit(127);
	}
	return pid;
}

/*
 * A socket handoff to a successor of our own: listen on @sock, spawn it
 * (@scenario, @arg) and cpr_xfer_give() it @st.  Returns the successor's
 * pid once it has attached everything, or -errno, the successor then
 * killed and reaped.
 */
static inline pid_t cpr_test_give_to_self(struct cpr_state *st,
					  const char *scenario,
					  const char *sock, const char *arg,
					  int timeout_ms,
					  const struct cpr_xfer_give_ops *ops,
					  void *ops_arg)
{
	pid_t pid;
	int lfd, ret;

	ret = cpr_xfer_listen(sock, &lfd);
	if (ret)
		return ret;
	pid = cpr_test_spawn_self(scenario, sock, arg);
	ret = pid < 0 ? pid : cpr_xfer_give(lfd, st, timeout_ms, ops, ops_arg);
	close(lfd);
	if (ret) {
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		return ret;
	}
	return pid;
}

/* Wait for a successor: its exit status (1 if it died), or -errno. */
static inline int cpr_test_wait_successor(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return cpr_err(-errno, "waiting for successor %d", pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* cpr_resume() as 0 or -errno; @got is what it returned. */
static inline int __cpr_test_resume(struct cpr_resume_info *info, int *got)
{
	*got = cpr_resume(info);
	return *got < 0 ? *got : 0;
}

/* Take the handed-off state over; any problem fails the successor. */
static inline void cpr_test_resume(struct cpr_resume_info *info)
{
	int got;

	CPR_ASSERT_OK(__cpr_test_resume(info, &got),
		      "the successor could not take the handed-off state over");
	CPR_ASSERT_EQ(got, 1,
		      "the successor found no handed-off state: $%s was not set across the handoff",
		      CPR_STATE_ENV);
	CPR_ASSERT_EQ(info->leaked_fds, 0,
		      "fd audit after the handoff: %d fd(s) not named in the state leaked into the successor",
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
