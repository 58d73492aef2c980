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
static struct cpr_state *make_state(struct __test_metadata *_metadata)
{
	struct cpr_state *st = cpr_state_new();
	__u8 sec[300];
	unsigned int i;

	ASSERT_NE(NULL, st);
	for (i = 0; i < NR_EVENTFDS; i++) {
		__u64 v = counter_of(i);
		int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

		ASSERT_LE(0, fd);
		ASSERT_EQ((ssize_t)sizeof(v), write(fd, &v, sizeof(v)));
		ASSERT_EQ(0, cpr_state_save_fd(st, EFD_NAME, i, fd));
	}
	section_bytes(sec, sizeof(sec));
	ASSERT_EQ(0, cpr_state_set_section(st, SEC_NAME, sec, sizeof(sec)));
	return st;
}

/* Successor: everything the predecessor made must be here, as it was. */
static void check_inherited(struct cpr_resume_info *info)
{
	__u8 want[300];
	const void *sec;
	unsigned int i;
	size_t len;

	SUCC_ASSERT(!getenv(CPR_STATE_ENV),
		    "$%s still set after cpr_resume()", CPR_STATE_ENV);
	SUCC_ASSERT(info->handoff_start_ns &&
		    info->handoff_start_ns <= cpr_now_ns(),
		    "handoff start %llu not recorded or in the future",
		    (unsigned long long)info->handoff_start_ns);

	for (i = 0; i < NR_EVENTFDS; i++) {
		int fd = cpr_state_find_fd(info->st, EFD_NAME, i);
		__u64 v = 0;

		SUCC_ASSERT(fd >= 0, "'%s'[%u] missing from the inherited state",
			    EFD_NAME, i);
		SUCC_ASSERT_EQ(CPR_FD_EVENTFD, cpr_fd_kind_of(fd),
			       "inherited fd %d of '%s'[%u] is not an eventfd",
			       fd, EFD_NAME, i);
		SUCC_ASSERT(fcntl(fd, F_GETFD) & FD_CLOEXEC,
			    "FD_CLOEXEC not restored on inherited eventfd %d",
			    fd);
		SUCC_ASSERT_EQ(sizeof(v), read(fd, &v, sizeof(v)),
			       "reading inherited eventfd %d", fd);
		SUCC_ASSERT_EQ(counter_of(i), v,
			       "eventfd '%s'[%u] lost its counter across exec",
			       EFD_NAME, i);
	}
	sec = cpr_state_get_section(info->st, SEC_NAME, &len);
	section_bytes(want, sizeof(want));
	SUCC_ASSERT(sec && len == sizeof(want) && !memcmp(sec, want, len),
		    "section '%s' changed across exec", SEC_NAME);
}

static int successor_counters(const char *arg)
{
	struct cpr_resume_info info;

	(void)arg;
	cpr_test_resume(&info);
	SUCC_ASSERT_EQ(1, info.generation, "first successor's generation");
	check_inherited(&info);
	cpr_state_free(info.st);
	return 0;
}

TEST(counters_and_flags_survive_exec)
{
	struct cpr_state *st = make_state(_metadata);

	cpr_test_exec_self(st, "counters", NULL);
	TH_LOG("exec into the successor failed: %s", cpr_last_error());
	ASSERT_TRUE(false);
}

/* Flags, environment and state exactly as they were before the attempt. */
static void check_rolled_back(struct __test_metadata *_metadata,
			      struct cpr_state *st, const int *flags)
{
	__u64 v;
	unsigned int i;

	ASSERT_EQ(NULL, getenv(CPR_STATE_ENV)) {
		TH_LOG("$%s left set after the failed exec", CPR_STATE_ENV);
	}
	ASSERT_EQ(-ENOENT, cpr_state_get_u64(st, CPR_SEC_GENERATION, &v)) {
		TH_LOG("failed exec bumped the generation");
	}
	ASSERT_EQ(-ENOENT, cpr_state_get_u64(st, CPR_SEC_HANDOFF_START, &v)) {
		TH_LOG("failed exec left a handoff start behind");
	}
	for (i = 0; i < NR_EVENTFDS; i++) {
		int fd = cpr_state_find_fd(st, EFD_NAME, i);

		ASSERT_LE(0, fd);
		ASSERT_EQ(flags[i], fcntl(fd, F_GETFD)) {
			TH_LOG("fd flags of '%s'[%u] fd %d not restored after the failed exec",
			       EFD_NAME, i, fd);
		}
	}
}

/* Every fd @st names has FD_CLOEXEC clear (@clear) or its @flags. */
static void check_flags(struct __test_metadata *_metadata,
			struct cpr_state *st, const int *flags, bool clear,
			const char *when)
{
	unsigned int i;

	for (i = 0; i < NR_EVENTFDS; i++) {
		int fd = cpr_state_find_fd(st, EFD_NAME, i);
		int now = fcntl(fd, F_GETFD);

		ASSERT_EQ(clear ? 0 : flags[i], now) {
			TH_LOG("%s: fd %d of '%s'[%u] has flags %d", when, fd,
			       EFD_NAME, i, now);
		}
	}
}

static void failed_exec_rolls_back(struct __test_metadata *_metadata,
				   const char *path, int expect_err,
				   bool remove_path, bool prepare)
{
	struct cpr_state *st = make_state(_metadata);
	int flags[NR_EVENTFDS], before, after, fd;
	unsigned int i;
	__u64 v;
	char *argv[2];

	argv[0] = (char *)path;
	argv[1] = NULL;
	/* One fd was not close-on-exec to begin with: it must stay so. */
	fd = cpr_state_find_fd(st, EFD_NAME, 3);
	ASSERT_EQ(0, fcntl(fd, F_SETFD, 0));
	for (i = 0; i < NR_EVENTFDS; i++)
		flags[i] = fcntl(cpr_state_find_fd(st, EFD_NAME, i), F_GETFD);
	before = cpr_state_nr_fds(st);

	if (prepare) {
		/* Cleared ahead, put back by a cancel, cleared again. */
		ASSERT_EQ(0, cpr_exec_prepare(st));
		check_flags(_metadata, st, flags, true, "after prepare");
		cpr_exec_cancel(st);
		check_flags(_metadata, st, flags, false, "after cancel");
		ASSERT_EQ(0, cpr_exec_prepare(st));
		check_flags(_metadata, st, flags, true, "prepared again");
	}
	cpr_log_set_quiet(true);
	ASSERT_EQ(expect_err, cpr_exec(st, path, argv));
	cpr_log_set_quiet(false);
	ASSERT_NE(NULL, strstr(cpr_last_error(), path)) {
		TH_LOG("error does not name the binary: %s", cpr_last_error());
	}
	if (remove_path)
		unlink(path);

	check_rolled_back(_metadata, st, flags);
	after = cpr_state_nr_fds(st);
	ASSERT_EQ(before, after);

	/* The predecessor runs on: its eventfds still carry and signal. */
	for (i = 0; i < NR_EVENTFDS; i++) {
		fd = cpr_state_find_fd(st, EFD_NAME, i);
		ASSERT_EQ((ssize_t)sizeof(v), read(fd, &v, sizeof(v)));
		ASSERT_EQ(counter_of(i), v);
		ASSERT_EQ((ssize_t)sizeof(v), write(fd, &v, sizeof(v)));
	}

	/*
	 * Only ASSERTs above: an EXPECT that failed would be forgotten by the
	 * exec (the successor's exit status is the test's).
	 */
	/* And the same state can still be handed over for real. */
	cpr_test_exec_self(st, "counters", NULL);
	TH_LOG("exec after the rolled-back attempt failed: %s",
	       cpr_last_error());
	ASSERT_TRUE(false);
}

TEST(exec_of_missing_binary_rolls_back)
{
	failed_exec_rolls_back(_metadata, "/nonexistent/vfio-cpr-successor",
			       -ENOENT, false, false);
}

TEST(exec_of_missing_binary_after_prepare_rolls_back)
{
	failed_exec_rolls_back(_metadata, "/nonexistent/vfio-cpr-successor",
			       -ENOENT, false, true);
}

TEST(exec_of_non_executable_rolls_back)
{
	char path[] = "/tmp/vfio_cpr_noexec_XXXXXX";
	int fd = mkstemp(path);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, fchmod(fd, 0644));
	close(fd);
	/* Root may exec anything with an x bit; this file has none. */
	failed_exec_rolls_back(_metadata, path, -EACCES, true, false);
}

/* Each generation checks what it got, adds to a section, execs on. */
static int successor_generations(const char *arg)
{
	struct cpr_resume_info info;
	__u64 hops = 0;
	unsigned int i;
	int ret;

	(void)arg;
	cpr_test_resume(&info);
	check_inherited(&info);
	/* check_inherited() drained the counters: put them back. */
	for (i = 0; i < NR_EVENTFDS; i++) {
		__u64 v = counter_of(i);
		int fd = cpr_state_find_fd(info.st, EFD_NAME, i);

		SUCC_ASSERT_EQ(sizeof(v), write(fd, &v, sizeof(v)),
			       "re-signalling eventfd %d", fd);
	}
	cpr_state_get_u64(info.st, "exectest_hops", &hops);
	SUCC_ASSERT_EQ(info.generation - 1, hops,
		       "a generation's section did not reach the next one");
	SUCC_ASSERT_EQ(0, cpr_state_set_u64(info.st, "exectest_hops",
					    hops + 1), "hop counter");
	fprintf(stderr, "# generation %llu: %u eventfds and 2 sections inherited intact\n",
		(unsigned long long)info.generation, NR_EVENTFDS);
	if (info.generation == GENERATIONS) {
		cpr_state_free(info.st);
		return 0;
	}

	/* A new handoff starts here. */
	cpr_state_delete_section(info.st, CPR_SEC_HANDOFF_START);
	ret = cpr_test_exec_self(info.st, "generations", NULL);
	SUCC_FAIL("exec into generation %llu failed: %d",
		  (unsigned long long)info.generation + 1, ret);
}

TEST(three_generations)
{
	struct cpr_state *st = make_state(_metadata);

	cpr_test_exec_self(st, "generations", NULL);
	TH_LOG("exec into the successor failed: %s", cpr_last_error());
	ASSERT_TRUE(false);
}

#define LATE_NAME	"exectest_late"
#define LATE_COUNT	77

/* An fd saved after cpr_exec_prepare() crosses too, with the others. */
static int successor_late(const char *arg)
{
	struct cpr_resume_info info;
	int fd;
	__u64 v = 0;

	(void)arg;
	cpr_test_resume(&info);
	check_inherited(&info);
	fd = cpr_state_find_fd(info.st, LATE_NAME, 0);
	SUCC_ASSERT(fd >= 0, "'%s'[0], saved after the prepare, missing",
		    LATE_NAME);
	SUCC_ASSERT_EQ(sizeof(v), read(fd, &v, sizeof(v)),
		       "reading '%s'[0] fd %d", LATE_NAME, fd);
	SUCC_ASSERT_EQ(LATE_COUNT, v, "counter of '%s'[0]", LATE_NAME);
	cpr_state_free(info.st);
	return 0;
}

TEST(prepared_exec_hands_over_fds_saved_after_prepare)
{
	struct cpr_state *st = make_state(_metadata);
	__u64 v = LATE_COUNT;
	int fd;

	ASSERT_EQ(0, cpr_exec_prepare(st));
	fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ((ssize_t)sizeof(v), write(fd, &v, sizeof(v)));
	ASSERT_EQ(0, cpr_state_save_fd(st, LATE_NAME, 0, fd));
	cpr_test_exec_self(st, "late", NULL);
	TH_LOG("exec into the successor failed: %s", cpr_last_error());
	ASSERT_TRUE(false);
}

#define WRONG_INDEX	5

/* The message names the record of the fd that is not an eventfd. */
static void said_wrong_kind(const struct cpr_state *st, int ret)
{
	char want[128];
	int fd = cpr_state_find_fd(st, EFD_NAME, WRONG_INDEX);

	SUCC_ASSERT_EQ(-EBADFD, ret, "an inherited memfd recorded as eventfd");
	snprintf(want, sizeof(want),
		 "fd record '%s'[%u]: fd %d is a memfd, recorded as eventfd",
		 EFD_NAME, WRONG_INDEX, fd);
	SUCC_ASSERT(strstr(cpr_last_error(), want),
		    "the message \"%s\" does not say \"%s\"",
		    cpr_last_error(), want);
}

/*
 * First the deferred checks find it (the state itself loads), then this
 * successor hands the same state on and the next one's cpr_resume() does.
 */
static int successor_wrong_kind(const char *arg)
{
	struct cpr_resume_info info;
	int ret;

	if (!strcmp(arg, "plain")) {
		cpr_log_set_quiet(true);
		ret = cpr_resume(&info);
		cpr_log_set_quiet(false);
		SUCC_ASSERT(ret < 0, "cpr_resume() took a memfd for an eventfd");
		SUCC_ASSERT_EQ(-EBADFD, ret, "cpr_resume()");
		SUCC_ASSERT(strstr(cpr_last_error(), "'" EFD_NAME "'[5]") &&
			    strstr(cpr_last_error(), "is a memfd"),
			    "the message \"%s\" does not name the record",
			    cpr_last_error());
		SUCC_ASSERT(!getenv(CPR_STATE_ENV),
			    "$%s left set after a refused state", CPR_STATE_ENV);
		return 0;
	}
	SUCC_ASSERT_EQ(1, cpr_resume_flags(&info, CPR_RESUME_DEFER_CHECKS),
		       "the deferred resume must load the state itself");
	SUCC_ASSERT(info.checks_pending, "no checks left to do");
	cpr_log_set_quiet(true);
	ret = cpr_resume_finish(&info);
	cpr_log_set_quiet(false);
	said_wrong_kind(info.st, ret);
	SUCC_ASSERT(info.checks_pending, "failed checks reported as done");
	ret = cpr_test_exec_self(info.st, "wrong_kind", "plain");
	SUCC_FAIL("exec into the next successor: %d", ret);
}

TEST(inherited_fd_of_another_kind_is_named)
{
	struct cpr_state *st = make_state(_metadata);
	int mfd = memfd_create("not_an_eventfd", MFD_CLOEXEC);

	/* The number of eventfd [5] now holds a memfd. */
	ASSERT_LE(0, mfd);
	ASSERT_LE(0, dup2(mfd, cpr_state_find_fd(st, EFD_NAME, WRONG_INDEX)));
	close(mfd);
	cpr_test_exec_self(st, "wrong_kind", "defer");
	TH_LOG("exec into the successor failed: %s", cpr_last_error());
	ASSERT_TRUE(false);
}

/* The audit must see an fd the predecessor forgot to close. */
static int successor_leak(const char *arg)
{
	struct cpr_resume_info info;
	int leaked = atoi(arg);

	SUCC_ASSERT_EQ(1, cpr_resume(&info), "resume");
	SUCC_ASSERT_EQ(1, info.leaked_fds,
		       "fd %d was left open by the predecessor and not named in the state, but the audit counted %d leaks",
		       leaked, info.leaked_fds);
	SUCC_ASSERT(fcntl(leaked, F_GETFD) >= 0, "fd %d not there", leaked);
	cpr_state_free(info.st);
	return 0;
}

TEST(fd_audit_reports_leak)
{
	struct cpr_state *st = make_state(_metadata);
	char num[16];
	int leak = eventfd(0, 0);	/* no EFD_CLOEXEC: it will cross */

	ASSERT_LE(0, leak);
	snprintf(num, sizeof(num), "%d", leak);
	cpr_test_exec_self(st, "leak", num);
	ASSERT_TRUE(false);
}

int main(int argc, char **argv)
{
	cpr_test_successor_enter(argc, argv);
	if (argc >= 3 && !strcmp(argv[1], CPR_TEST_SUCCESSOR)) {
		const char *arg = argc > 3 ? argv[3] : "";

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
		fprintf(stderr, "# unknown successor scenario '%s'\n", argv[2]);
		return 1;
	}
	return test_harness_run(argc, argv);
}
