// SPDX-License-Identifier: GPL-2.0-only
/*
 * The exec handoff with real eventfds: what a VMM hands to its successor
 * arrives intact (counters, flags, sections), close-on-exec is put back, no
 * fd leaks across, and a failed exec leaves the predecessor exactly as it
 * was and able to run on, also when FD_CLOEXEC was cleared ahead
 * (cpr_exec_prepare()).  An inherited fd of another kind than recorded is
 * named, whether the successor checks at once or after its attach.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/types.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "cpr_assert.h"
#include "cpr_test_util.h"
#include "vfio_cpr/handoff.h"
#include "vfio_cpr/state.h"

#define NR_EVENTFDS	8
#define EFD_NAME	"exectest_interrupt"
#define SEC_NAME	"exectest_device_state"
#define GENERATIONS	3

/* Counter value written into eventfd i before the exec. */
static __u64 counter_of(unsigned int i)
{
	return 1000 + i * 7;
}

static void section_bytes(__u8 *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (__u8)(i * 31 + 5);
}

/* State with NR_EVENTFDS signalled eventfds and one section. */
static struct cpr_state *make_state(void)
{
	struct cpr_state *st = cpr_test_state_new();
	__u8 sec[300];
	unsigned int i;
	ssize_t n;

	for (i = 0; i < NR_EVENTFDS; i++) {
		__u64 v = counter_of(i);
		int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

		CPR_ASSERT_SYS(fd, "creating eventfd '%s'[%u]", EFD_NAME, i);
		n = write(fd, &v, sizeof(v));
		CPR_ASSERT_SYS(n, "signalling eventfd '%s'[%u] (fd %d)",
			       EFD_NAME, i, fd);
		CPR_ASSERT_EQ(n, (ssize_t)sizeof(v),
			      "a short write signalling eventfd '%s'[%u]",
			      EFD_NAME, i);
		cpr_test_save_fd(st, EFD_NAME, i, fd);
	}
	section_bytes(sec, sizeof(sec));
	cpr_test_set_section(st, SEC_NAME, sec, sizeof(sec));
	return st;
}

/* Read eventfd @fd's count, which must be there: '@name'[@i]. */
static __u64 read_count(int fd, const char *name, unsigned int i)
{
	__u64 v = 0;
	ssize_t n = read(fd, &v, sizeof(v));

	CPR_ASSERT_SYS(n, "reading the count of eventfd '%s'[%u] (fd %d)",
		       name, i, fd);
	CPR_ASSERT_EQ(n, (ssize_t)sizeof(v),
		      "a short read of eventfd '%s'[%u] (fd %d)", name, i, fd);
	return v;
}

/* Signal @v on eventfd @fd, '@name'[@i]. */
static void write_count(int fd, __u64 v, const char *name, unsigned int i)
{
	ssize_t n = write(fd, &v, sizeof(v));

	CPR_ASSERT_SYS(n, "signalling eventfd '%s'[%u] (fd %d)", name, i, fd);
	CPR_ASSERT_EQ(n, (ssize_t)sizeof(v),
		      "a short write signalling eventfd '%s'[%u] (fd %d)", name,
		      i, fd);
}

/* Successor: everything the predecessor made must be here, as it was. */
static void check_inherited(struct cpr_resume_info *info)
{
	__u8 want[300];
	const void *sec;
	unsigned int i;
	size_t len;

	CPR_ASSERT_TRUE(!getenv(CPR_STATE_ENV),
			"$%s is still set in the successor after cpr_resume()",
			CPR_STATE_ENV);
	CPR_ASSERT_NE(info->handoff_start_ns, 0,
		      "the start of the handoff was not recorded in the state");
	CPR_ASSERT_LE(info->handoff_start_ns, cpr_now_ns(),
		      "the recorded start of the handoff lies in the future");

	for (i = 0; i < NR_EVENTFDS; i++) {
		int fd = cpr_state_find_fd(info->st, EFD_NAME, i);
		int flags;

		CPR_ASSERT_GE(fd, 0,
			      "'%s'[%u] is missing from the inherited state",
			      EFD_NAME, i);
		CPR_ASSERT_EQ(cpr_fd_kind_of(fd), CPR_FD_EVENTFD,
			      "inherited fd %d of '%s'[%u] is not an eventfd",
			      fd, EFD_NAME, i);
		flags = fcntl(fd, F_GETFD);
		CPR_ASSERT_SYS(flags, "reading the flags of inherited fd %d",
			       fd);
		CPR_ASSERT_TRUE(flags & FD_CLOEXEC,
				"FD_CLOEXEC was not put back on inherited fd %d after the handoff",
				fd);
		CPR_ASSERT_EQ(read_count(fd, EFD_NAME, i), counter_of(i),
			      "eventfd '%s'[%u] lost its count across the exec",
			      EFD_NAME, i);
	}
	sec = cpr_state_get_section(info->st, SEC_NAME, &len);
	section_bytes(want, sizeof(want));
	CPR_ASSERT_TRUE(sec, "section '%s' is missing from the inherited state",
			SEC_NAME);
	CPR_ASSERT_EQ(len, sizeof(want),
		      "section '%s' changed its length across the exec",
		      SEC_NAME);
	CPR_ASSERT_EQ(memcmp(sec, want, len), 0,
		      "section '%s' changed across the exec", SEC_NAME);
}

static int successor_counters(const char *arg)
{
	struct cpr_resume_info info;

	(void)arg;
	cpr_test_resume(&info);
	CPR_ASSERT_EQ(info.generation, 1,
		      "the first successor was not told it is generation 1");
	check_inherited(&info);
	cpr_state_free(info.st);
	return 0;
}

TEST(counters_and_flags_survive_exec)
{
	struct cpr_state *st = make_state();

	CPR_ASSERT_OK(cpr_test_exec_self(st, "counters", NULL),
		      "exec into the successor");
	CPR_FAIL("exec into the successor returned without an error");
}

/* Flags, environment and state exactly as they were before the attempt. */
static void check_rolled_back(struct cpr_state *st, const int *flags)
{
	__u64 v;
	unsigned int i;

	CPR_ASSERT_TRUE(!getenv(CPR_STATE_ENV),
			"$%s was left set after the failed exec",
			CPR_STATE_ENV);
	CPR_ASSERT_EQ(cpr_state_get_u64(st, CPR_SEC_GENERATION, &v), -ENOENT,
		      "the failed exec left a generation in the state");
	CPR_ASSERT_EQ(cpr_state_get_u64(st, CPR_SEC_HANDOFF_START, &v),
		      -ENOENT,
		      "the failed exec left a handoff start in the state");
	for (i = 0; i < NR_EVENTFDS; i++) {
		int fd = cpr_state_find_fd(st, EFD_NAME, i);

		CPR_ASSERT_GE(fd, 0,
			      "'%s'[%u] is missing from the state after the failed exec",
			      EFD_NAME, i);
		CPR_ASSERT_EQ(fcntl(fd, F_GETFD), flags[i],
			      "the fd flags of '%s'[%u] (fd %d) were not restored after the failed exec",
			      EFD_NAME, i, fd);
	}
}

/* Every fd @st names has FD_CLOEXEC clear (@clear) or its @flags. */
static void check_flags(struct cpr_state *st, const int *flags, bool clear,
			const char *when)
{
	unsigned int i;

	for (i = 0; i < NR_EVENTFDS; i++) {
		int fd = cpr_state_find_fd(st, EFD_NAME, i);
		int now = fcntl(fd, F_GETFD);

		if (clear)
			CPR_ASSERT_EQ(now, 0,
				      "%s: FD_CLOEXEC was not cleared on fd %d of '%s'[%u]",
				      when, fd, EFD_NAME, i);
		else
			CPR_ASSERT_EQ(now, flags[i],
				      "%s: the flags of fd %d of '%s'[%u] were not put back as they were",
				      when, fd, EFD_NAME, i);
	}
}

static void failed_exec_rolls_back(const char *path, int expect_err,
				   bool remove_path, bool prepare)
{
	struct cpr_state *st = make_state();
	int flags[NR_EVENTFDS], before, after, fd;
	unsigned int i;
	__u64 v;
	char *argv[2];

	argv[0] = (char *)path;
	argv[1] = NULL;
	/* One fd was not close-on-exec to begin with: it must stay so. */
	fd = cpr_state_find_fd(st, EFD_NAME, 3);
	CPR_ASSERT_SYS(fcntl(fd, F_SETFD, 0),
		       "clearing FD_CLOEXEC on '%s'[3] (fd %d)", EFD_NAME, fd);
	for (i = 0; i < NR_EVENTFDS; i++)
		flags[i] = fcntl(cpr_state_find_fd(st, EFD_NAME, i), F_GETFD);
	before = cpr_state_nr_fds(st);

	if (prepare) {
		/* Cleared ahead, put back by a cancel, cleared again. */
		CPR_ASSERT_OK(cpr_exec_prepare(st),
			      "clearing FD_CLOEXEC ahead of the exec (cpr_exec_prepare())");
		check_flags(st, flags, true, "after cpr_exec_prepare()");
		cpr_exec_cancel(st);
		check_flags(st, flags, false, "after cpr_exec_cancel()");
		CPR_ASSERT_OK(cpr_exec_prepare(st),
			      "clearing FD_CLOEXEC ahead of the exec again, after a cancel");
		check_flags(st, flags, true, "after cpr_exec_prepare() again");
	}
	cpr_log_set_quiet(true);
	CPR_ASSERT_EQ(cpr_exec(st, path, argv), expect_err,
		      "the exec of %s did not fail with %d (\"%s\")", path,
		      expect_err, cpr_last_error());
	cpr_log_set_quiet(false);
	CPR_ASSERT_TRUE(strstr(cpr_last_error(), path),
			"the failed exec's error does not name the binary %s: \"%s\"",
			path, cpr_last_error());
	if (remove_path)
		unlink(path);

	check_rolled_back(st, flags);
	after = cpr_state_nr_fds(st);
	CPR_ASSERT_EQ(after, before,
		      "the failed exec changed the number of fds in the state");

	/* The predecessor runs on: its eventfds still carry and signal. */
	for (i = 0; i < NR_EVENTFDS; i++) {
		fd = cpr_state_find_fd(st, EFD_NAME, i);
		v = read_count(fd, EFD_NAME, i);
		CPR_ASSERT_EQ(v, counter_of(i),
			      "eventfd '%s'[%u] lost its count in the failed exec",
			      EFD_NAME, i);
		write_count(fd, v, EFD_NAME, i);
	}

	/* And the same state can still be handed over for real. */
	CPR_ASSERT_OK(cpr_test_exec_self(st, "counters", NULL),
		      "exec into the successor after the rolled-back attempt");
	CPR_FAIL("exec into the successor after the rolled-back attempt returned without an error");
}

TEST(exec_of_missing_binary_rolls_back)
{
	failed_exec_rolls_back("/nonexistent/vfio-cpr-successor", -ENOENT,
			       false, false);
}

TEST(exec_of_missing_binary_after_prepare_rolls_back)
{
	failed_exec_rolls_back("/nonexistent/vfio-cpr-successor", -ENOENT,
			       false, true);
}

TEST(exec_of_non_executable_rolls_back)
{
	char path[] = "/tmp/vfio_cpr_noexec_XXXXXX";
	int fd = mkstemp(path);

	CPR_ASSERT_SYS(fd, "creating a temporary file from %s", path);
	CPR_ASSERT_SYS(fchmod(fd, 0644), "making %s not executable", path);
	close(fd);
	/* Root may exec anything with an x bit; this file has none. */
	failed_exec_rolls_back(path, -EACCES, true, false);
}

/* Each generation checks what it got, adds to a section, execs on. */
static int successor_generations(const char *arg)
{
	struct cpr_resume_info info;
	__u64 hops = 0;
	unsigned int i;

	(void)arg;
	cpr_test_resume(&info);
	cpr_test_context("exec successor 'generations', generation %llu of %d",
			 (unsigned long long)info.generation, GENERATIONS);
	check_inherited(&info);
	/* check_inherited() drained the counters: put them back. */
	for (i = 0; i < NR_EVENTFDS; i++)
		write_count(cpr_state_find_fd(info.st, EFD_NAME, i),
			    counter_of(i), EFD_NAME, i);
	cpr_state_get_u64(info.st, "exectest_hops", &hops);
	CPR_ASSERT_EQ(hops, info.generation - 1,
		      "section 'exectest_hops', set by each generation, did not reach the next one");
	cpr_test_set_u64(info.st, "exectest_hops", hops + 1);
	fprintf(stderr, "# generation %llu: %u eventfds and 2 sections inherited intact\n",
		(unsigned long long)info.generation, NR_EVENTFDS);
	if (info.generation == GENERATIONS) {
		cpr_state_free(info.st);
		return 0;
	}

	/* A new handoff starts here. */
	cpr_state_delete_section(info.st, CPR_SEC_HANDOFF_START);
	CPR_ASSERT_OK(cpr_test_exec_self(info.st, "generations", NULL),
		      "exec into generation %llu",
		      (unsigned long long)info.generation + 1);
	CPR_FAIL("exec into generation %llu returned without an error",
		 (unsigned long long)info.generation + 1);
}

TEST(three_generations)
{
	struct cpr_state *st = make_state();

	CPR_ASSERT_OK(cpr_test_exec_self(st, "generations", NULL),
		      "exec into the successor");
	CPR_FAIL("exec into the successor returned without an error");
}

#define LATE_NAME	"exectest_late"
#define LATE_COUNT	77

/* An fd saved after cpr_exec_prepare() crosses too, with the others. */
static int successor_late(const char *arg)
{
	struct cpr_resume_info info;
	int fd;

	(void)arg;
	cpr_test_resume(&info);
	check_inherited(&info);
	fd = cpr_state_find_fd(info.st, LATE_NAME, 0);
	CPR_ASSERT_GE(fd, 0,
		      "'%s'[0], saved after cpr_exec_prepare(), is missing from the inherited state",
		      LATE_NAME);
	CPR_ASSERT_EQ(read_count(fd, LATE_NAME, 0), LATE_COUNT,
		      "'%s'[0], saved after cpr_exec_prepare(), lost its count across the exec",
		      LATE_NAME);
	cpr_state_free(info.st);
	return 0;
}

TEST(prepared_exec_hands_over_fds_saved_after_prepare)
{
	struct cpr_state *st = make_state();
	int fd;

	CPR_ASSERT_OK(cpr_exec_prepare(st),
		      "clearing FD_CLOEXEC ahead of the exec (cpr_exec_prepare())");
	fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	CPR_ASSERT_SYS(fd, "creating eventfd '%s'[0]", LATE_NAME);
	write_count(fd, LATE_COUNT, LATE_NAME, 0);
	cpr_test_save_fd(st, LATE_NAME, 0, fd);
	CPR_ASSERT_OK(cpr_test_exec_self(st, "late", NULL),
		      "exec into the successor");
	CPR_FAIL("exec into the successor returned without an error");
}

#define WRONG_INDEX	5

/* The message names the record of the fd that is not an eventfd. */
static void said_wrong_kind(const struct cpr_state *st, int ret)
{
	char want[128];
	int fd = cpr_state_find_fd(st, EFD_NAME, WRONG_INDEX);

	CPR_ASSERT_EQ(ret, -EBADFD,
		      "the deferred checks did not refuse an inherited memfd recorded as an eventfd with -EBADFD");
	snprintf(want, sizeof(want),
		 "fd record '%s'[%u]: fd %d is a memfd, recorded as eventfd",
		 EFD_NAME, WRONG_INDEX, fd);
	CPR_ASSERT_TRUE(strstr(cpr_last_error(), want),
			"the refusal of an fd of another kind does not say \"%s\": \"%s\"",
			want, cpr_last_error());
}

/* cpr_resume_flags() as 0 or -errno; @got is what it returned. */
static int resume_deferred(struct cpr_resume_info *info, int *got)
{
	*got = cpr_resume_flags(info, CPR_RESUME_DEFER_CHECKS);
	return *got < 0 ? *got : 0;
}

/*
 * First the deferred checks find it (the state itself loads), then this
 * successor hands the same state on and the next one's cpr_resume() does.
 */
static int successor_wrong_kind(const char *arg)
{
	struct cpr_resume_info info;
	int ret, got;

	if (!strcmp(arg, "plain")) {
		cpr_log_set_quiet(true);
		ret = cpr_resume(&info);
		cpr_log_set_quiet(false);
		CPR_ASSERT_LT(ret, 0,
			      "cpr_resume() took an inherited memfd recorded as an eventfd");
		CPR_ASSERT_EQ(ret, -EBADFD,
			      "cpr_resume() did not refuse an inherited memfd recorded as an eventfd with -EBADFD (\"%s\")",
			      cpr_last_error());
		CPR_ASSERT_TRUE(strstr(cpr_last_error(), "'" EFD_NAME "'[5]") &&
				strstr(cpr_last_error(), "is a memfd"),
				"the refusal does not name the record '%s'[5] and say it is a memfd: \"%s\"",
				EFD_NAME, cpr_last_error());
		CPR_ASSERT_TRUE(!getenv(CPR_STATE_ENV),
				"$%s was left set after a refused state",
				CPR_STATE_ENV);
		return 0;
	}
	CPR_ASSERT_OK(resume_deferred(&info, &got),
		      "the deferred resume could not load the handed-off state");
	CPR_ASSERT_EQ(got, 1,
		      "the deferred resume found no handed-off state: it must load the state itself");
	CPR_ASSERT_TRUE(info.checks_pending,
			"the deferred resume left no fd checks for cpr_resume_finish()");
	cpr_log_set_quiet(true);
	ret = cpr_resume_finish(&info);
	cpr_log_set_quiet(false);
	said_wrong_kind(info.st, ret);
	CPR_ASSERT_TRUE(info.checks_pending,
			"cpr_resume_finish() failed its checks yet reported them as done");
	CPR_ASSERT_OK(cpr_test_exec_self(info.st, "wrong_kind", "plain"),
		      "exec into the next successor");
	CPR_FAIL("exec into the next successor returned without an error");
}

TEST(inherited_fd_of_another_kind_is_named)
{
	struct cpr_state *st = make_state();
	int mfd = memfd_create("not_an_eventfd", MFD_CLOEXEC);

	/* The number of eventfd [5] now holds a memfd. */
	CPR_ASSERT_SYS(mfd, "creating a memfd");
	CPR_ASSERT_SYS(dup2(mfd, cpr_state_find_fd(st, EFD_NAME, WRONG_INDEX)),
		       "putting a memfd in place of eventfd '%s'[%u]",
		       EFD_NAME, WRONG_INDEX);
	close(mfd);
	CPR_ASSERT_OK(cpr_test_exec_self(st, "wrong_kind", "defer"),
		      "exec into the successor");
	CPR_FAIL("exec into the successor returned without an error");
}

/* The audit must see an fd the predecessor forgot to close. */
static int successor_leak(const char *arg)
{
	struct cpr_resume_info info;
	int leaked = atoi(arg);
	int got;

	CPR_ASSERT_OK(__cpr_test_resume(&info, &got),
		      "the successor could not take the handed-off state over");
	CPR_ASSERT_EQ(got, 1, "the successor found no handed-off state");
	CPR_ASSERT_EQ(info.leaked_fds, 1,
		      "fd %d was left open by the predecessor and not named in the state, but the audit counted %d leaks",
		      leaked, info.leaked_fds);
	CPR_ASSERT_SYS(fcntl(leaked, F_GETFD),
		       "fd %d, left open by the predecessor, is not open in the successor",
		       leaked);
	cpr_state_free(info.st);
	return 0;
}

TEST(fd_audit_reports_leak)
{
	struct cpr_state *st = make_state();
	char num[16];
	int leak = eventfd(0, 0);	/* no EFD_CLOEXEC: it will cross */

	CPR_ASSERT_SYS(leak, "creating an eventfd to leak");
	snprintf(num, sizeof(num), "%d", leak);
	CPR_ASSERT_OK(cpr_test_exec_self(st, "leak", num),
		      "exec into the successor");
	CPR_FAIL("exec into the successor returned without an error");
}

int main(int argc, char **argv)
{
	cpr_test_successor_enter(argc, argv);
	if (argc >= 3 && !strcmp(argv[1], CPR_TEST_SUCCESSOR)) {
		const char *arg = argc > 3 ? argv[3] : "";

		cpr_test_context("exec successor '%s'", argv[2]);
		if (!strcmp(argv[2], "counters"))
			return successor_counters(arg);
		if (!strcmp(argv[2], "generations"))
			return successor_generations(arg);
		if (!strcmp(argv[2], "leak"))
			return successor_leak(arg);
		if (!strcmp(argv[2], "late"))
			return successor_late(arg);
		if (!strcmp(argv[2], "wrong_kind"))
			return successor_wrong_kind(arg);
		CPR_FAIL("the test has no successor scenario '%s'", argv[2]);
	}
	return test_harness_run(argc, argv);
}
