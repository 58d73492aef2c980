// SPDX-License-Identifier: GPL-2.0-only
/*
 * Hostile or mistaken input at the edges of a handoff, each refused with an
 * error that names it, nothing left open:
 *   - $VFIO_CPR_STATE_FD unset (not a handoff), not a number, out of range,
 *     naming stdio, a closed fd, something that is not a memfd, a memfd
 *     without all four seals;
 *   - a state saved for another device than the one being taken over;
 *   - malformed PCI addresses and mdev UUIDs (path tricks included), which
 *     must be refused before any path is built from them.
 * Runs anywhere: no KVM or VFIO needed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "cpr_assert.h"
#include "cpr_test_util.h"
#include "vfio_cpr/handoff.h"
#include "vfio_cpr/log.h"
#include "vfio_cpr/state.h"
#include "vfio_cpr/vectors.h"
#include "vfio_cpr/vfio.h"

static unsigned int open_fds(void)
{
	unsigned int n = 0;
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");

	if (!d)
		return 0;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;
}

/* @s with anything unprintable as \xNN, for a message: in @buf. */
static const char *shown(const char *s, char *buf, size_t size)
{
	size_t n = 0;

	for (; *s && n + 5 < size; s++) {
		if (*s >= 0x20 && *s < 0x7f)
			buf[n++] = *s;
		else
			n += snprintf(buf + n, size - n, "\\x%02x",
				      (unsigned char)*s);
	}
	buf[n] = '\0';
	return buf;
}

/*
 * Resume with $VFIO_CPR_STATE_FD=@val: must fail, mention @what, leave the
 * variable unset and (apart from @fd_given, which it may close) no fd.
 */
static void resume_is_refused(struct __test_metadata *_metadata,
			      const char *val, const char *what)
{
	struct cpr_resume_info info;
	unsigned int before = open_fds();
	int err_fd, ret;

	/*
	 * A library that took fd 2 and closed it would silence the checks:
	 * a copy of stderr, out of the way of the fd numbers under test.
	 */
	err_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 256);
	CPR_ASSERT_SYS(err_fd, "keeping a copy of stderr");
	CPR_ASSERT_SYS(setenv(CPR_STATE_ENV, val, 1), "setting $%s='%s'",
		       CPR_STATE_ENV, val);
	cpr_log_set_quiet(true);
	ret = cpr_resume(&info);
	cpr_log_set_quiet(false);
	if (fcntl(STDERR_FILENO, F_GETFD) < 0)
		dup2(err_fd, STDERR_FILENO);
	close(err_fd);
	CPR_ASSERT_LT(ret, 0, "$%s='%s' was accepted as a handoff",
		      CPR_STATE_ENV, val);
	CPR_ASSERT_TRUE(strstr(cpr_last_error(), what),
			"the refusal of $%s='%s' does not say '%s': \"%s\"",
			CPR_STATE_ENV, val, what, cpr_last_error());
	CPR_ASSERT_TRUE(!getenv(CPR_STATE_ENV),
			"$%s='%s' was left set after it was refused",
			CPR_STATE_ENV, val);
	CPR_ASSERT_TRUE(!info.st,
			"the refused resume of $%s='%s' handed back a state",
			CPR_STATE_ENV, val);
	CPR_ASSERT_LE(open_fds(), before,
		      "the refused resume of $%s='%s' left fds open",
		      CPR_STATE_ENV, val);
	TH_LOG("'%s': %s", val, cpr_last_error());
}

TEST(state_fd_variable_unset_means_no_handoff)
{
	struct cpr_resume_info info;

	unsetenv(CPR_STATE_ENV);
	CPR_ASSERT_OK(cpr_resume(&info),
		      "with $%s unset, cpr_resume() did not report that there is no handoff",
		      CPR_STATE_ENV);
	CPR_ASSERT_TRUE(!info.st,
			"with $%s unset, cpr_resume() handed back a state",
			CPR_STATE_ENV);
}

TEST(state_fd_variable_not_a_number_is_refused)
{
	static const char * const bad[] = {
		"", "abc", "12abc", "-3", "+5", " 5", "5 ", "0x10", "07", "1e3",
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(bad); i++)
		resume_is_refused(_metadata, bad[i], "is not an fd number");
}

TEST(state_fd_variable_out_of_range_is_refused)
{
	resume_is_refused(_metadata, "2147483648", "is not an fd number");
	resume_is_refused(_metadata, "99999999999999999999", "is not an fd number");
	resume_is_refused(_metadata, "0", "stdin/stdout/stderr");
	resume_is_refused(_metadata, "2", "stdin/stdout/stderr");
}

TEST(state_fd_variable_naming_a_closed_fd_is_refused)
{
	char val[16];
	int fd = eventfd(0, EFD_CLOEXEC);

	CPR_ASSERT_SYS(fd, "creating an eventfd");
	close(fd);
	snprintf(val, sizeof(val), "%d", fd);
	resume_is_refused(_metadata, val, "not open in the successor");
}

TEST(state_fd_that_is_not_a_memfd_is_refused)
{
	int fds[2], efd, tmp;
	char val[16], path[] = "/tmp/vfio_cpr_input.XXXXXX";

	CPR_ASSERT_SYS(pipe2(fds, O_CLOEXEC), "creating a pipe");
	snprintf(val, sizeof(val), "%d", fds[0]);
	resume_is_refused(_metadata, val, "memfd");
	close(fds[1]);

	efd = eventfd(0, EFD_CLOEXEC);
	CPR_ASSERT_SYS(efd, "creating an eventfd");
	snprintf(val, sizeof(val), "%d", efd);
	resume_is_refused(_metadata, val, "memfd");

	/* A regular file holding a perfectly valid state. */
	tmp = mkostemp(path, O_CLOEXEC);
	CPR_ASSERT_SYS(tmp, "creating a temporary file from %s", path);
	unlink(path);
	{
		struct cpr_state *st = cpr_test_state_new();
		size_t len;
		ssize_t n;
		void *buf;

		cpr_test_set_u64(st, "x", 1);
		cpr_test_state_to_buf(st, &buf, &len);
		n = write(tmp, buf, len);
		CPR_ASSERT_SYS(n, "writing a state into a temporary file");
		CPR_ASSERT_EQ(n, (ssize_t)len,
			      "a temporary file took only part of the %zu-byte state",
			      len);
		free(buf);
		cpr_state_free(st);
	}
	snprintf(val, sizeof(val), "%d", tmp);
	resume_is_refused(_metadata, val, "memfd");
}

/* A memfd with a valid state and only @seals of the four. */
static int state_memfd(unsigned int seals)
{
	struct cpr_state *st = cpr_test_state_new();
	int fd = memfd_create("vfio_cpr_input", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	size_t len;
	ssize_t n;
	void *buf;

	CPR_ASSERT_SYS(fd, "creating a memfd that allows sealing");
	cpr_test_set_u64(st, "x", 1);
	cpr_test_state_to_buf(st, &buf, &len);
	n = write(fd, buf, len);
	CPR_ASSERT_SYS(n, "writing a state into a memfd");
	CPR_ASSERT_EQ(n, (ssize_t)len,
		      "a memfd took only part of the %zu-byte state", len);
	if (seals)
		CPR_ASSERT_SYS(fcntl(fd, F_ADD_SEALS, seals),
			       "adding seals 0x%x to the state memfd", seals);
	CPR_ASSERT_SYS(lseek(fd, 0, SEEK_SET),
		       "rewinding the state memfd");
	free(buf);
	cpr_state_free(st);
	return fd;
}

TEST(state_memfd_without_all_four_seals_is_refused)
{
	static const unsigned int partial[] = {
		0,
		F_SEAL_WRITE,
		F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK,
		F_SEAL_SEAL | F_SEAL_WRITE | F_SEAL_GROW,
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(partial); i++) {
		int fd = state_memfd(partial[i]);
		char val[16];

		snprintf(val, sizeof(val), "%d", fd);
		resume_is_refused(_metadata, val, "seal");
	}
}

/* Stand-ins for a device's fds: the kind does not matter, the names do. */
static void save_device(struct cpr_state *st, const char *dev)
{
	static const char * const what[] = { "container", "group", "device" };
	char name[CPR_NAME_MAX + 1];
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(what); i++) {
		int fd = eventfd(0, EFD_CLOEXEC);

		CPR_ASSERT_SYS(fd, "creating an eventfd for %s's %s", dev,
			       what[i]);
		snprintf(name, sizeof(name), "%s_%s", dev, what[i]);
		cpr_test_save_fd(st, name, 0, fd);
	}
}

/* Close the fds a store names, then free it. */
static void free_state(struct cpr_state *st)
{
	while (cpr_state_nr_fds(st)) {
		const struct cpr_fd_rec *r = cpr_state_fd_at(st, 0);

		close(r->fd);
		cpr_state_delete_fd(st, r->name, r->index);
	}
	cpr_state_free(st);
}

TEST(state_saved_for_another_device_is_refused)
{
	struct cpr_state *st = cpr_test_state_new();
	struct cpr_vfio_dev *d = NULL;
	int ret;

	save_device(st, "0000:00:03.0");
	save_device(st, "c3a8f6c1-2a0e-4b44-9a1e-0ea9c5b3a7d2");
	ret = cpr_vfio_take_over(st, "0000:00:04.0", &d);
	CPR_ASSERT_EQ(ret, -ENOENT,
		      "0000:00:04.0 was not refused with -ENOENT by a state saved for 0000:00:03.0 and an mdev");
	CPR_ASSERT_TRUE(!d,
			"the refused take-over of 0000:00:04.0 handed back a device");
	TH_LOG("%s", cpr_last_error());
	CPR_ASSERT_TRUE(strstr(cpr_last_error(), "saved for another device"),
			"the refusal of 0000:00:04.0 does not say the state was saved for another device: \"%s\"",
			cpr_last_error());
	CPR_ASSERT_TRUE(strstr(cpr_last_error(), "0000:00:03.0"),
			"the refusal of 0000:00:04.0 does not name 0000:00:03.0, which the state holds: \"%s\"",
			cpr_last_error());
	CPR_ASSERT_TRUE(strstr(cpr_last_error(),
			       "c3a8f6c1-2a0e-4b44-9a1e-0ea9c5b3a7d2"),
			"the refusal of 0000:00:04.0 does not name the mdev the state holds: \"%s\"",
			cpr_last_error());

	free_state(st);

	st = cpr_test_state_new();
	ret = cpr_vfio_take_over(st, "0000:00:04.0", &d);
	CPR_ASSERT_EQ(ret, -ENOENT,
		      "0000:00:04.0 was not refused with -ENOENT by a state holding no device");
	CPR_ASSERT_TRUE(strstr(cpr_last_error(), "no VFIO device at all"),
			"the refusal by a state holding no device does not say so (\"no VFIO device at all\"): \"%s\"",
			cpr_last_error());
	free_state(st);
}

TEST(malformed_device_names_are_refused_before_any_path_is_built)
{
	static const char * const bad[] = {
		"", "../../../../etc/passwd", "0000:00:03.0/../../..",
		"0000:00:03.0/", "/sys/bus/pci/devices/0000:00:03.0",
		"0000:00:03", "0000:0:03.0", "0000:00:3.0", "00000:00:03.0",
		"0000:00:20.0",		/* device > 0x1f */
		"0000:00:03.8",		/* function > 7 */
		"0000:00:03.0\n", " 0000:00:03.0", "0000:00:03.0 ",
		"0000:zz:03.0", "0000-00-03.0",
		"c3a8f6c1-2a0e-4b44-9a1e-0ea9c5b3a7d",	/* one short */
		"c3a8f6c1-2a0e-4b44-9a1e-0ea9c5b3a7d2a",
		"c3a8f6c1_2a0e_4b44_9a1e_0ea9c5b3a7d2",
		"c3a8f6c1-2a0e-4b44-9a1e-0ea9c5b3a7g2",
		"../c3a8f6c1-2a0e-4b44-9a1e-0ea9c5b3a7",
		"0000:00:03.0000000000000000000000000000000000000000000000000000000000000",
	};
	struct cpr_state *st = cpr_test_state_new();
	char name[128];
	unsigned int i;

	cpr_log_set_quiet(true);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		struct cpr_vfio_dev *d = NULL;

		shown(bad[i], name, sizeof(name));
		CPR_ASSERT_EQ(cpr_vfio_open(st, bad[i], &d), -EINVAL,
			      "cpr_vfio_open() did not refuse '%s' as a device name with -EINVAL",
			      name);
		CPR_ASSERT_TRUE(!d,
				"cpr_vfio_open() of the malformed name '%s' handed back a device",
				name);
		CPR_ASSERT_TRUE(strstr(cpr_last_error(), "not a PCI address"),
				"the refusal of '%s' does not say it is not a PCI address: \"%s\"",
				name, cpr_last_error());
		CPR_ASSERT_EQ(cpr_vfio_take_over(st, bad[i], &d), -EINVAL,
			      "cpr_vfio_take_over() did not refuse '%s' as a device name with -EINVAL",
			      name);
		CPR_ASSERT_EQ(cpr_vfio_iface_supported(bad[i],
						       CPR_VFIO_IFACE_CDEV),
			      -EINVAL,
			      "cpr_vfio_iface_supported() did not refuse '%s' as a device name with -EINVAL",
			      name);
	}
	cpr_log_set_quiet(false);
	cpr_state_free(st);
}

TEST(rlimit_too_low_for_the_vectors_is_refused_before_anything_is_made)
{
	struct cpr_state *st = cpr_test_state_new();
	struct cpr_vectors *vs = NULL;
	struct rlimit rl, low;
	unsigned int before;
	int ret;

	CPR_ASSERT_SYS(getrlimit(RLIMIT_NOFILE, &rl), "reading RLIMIT_NOFILE");
	before = open_fds();
	low = rl;
	low.rlim_cur = before + 100;	/* 64 vectors need 128 eventfds */
	CPR_ASSERT_SYS(setrlimit(RLIMIT_NOFILE, &low),
		       "lowering RLIMIT_NOFILE to %llu",
		       (unsigned long long)low.rlim_cur);
	ret = cpr_vectors_create(st, "dev", CPR_IRQ_MSIX, 64,
				 CPR_VEC_INTERRUPT | CPR_VEC_KVM, &vs);
	CPR_ASSERT_SYS(setrlimit(RLIMIT_NOFILE, &rl),
		       "restoring RLIMIT_NOFILE");
	CPR_ASSERT_EQ(ret, -EMFILE,
		      "64 vectors (128 eventfds) were not refused with -EMFILE with room for only %u more fds",
		      100);
	CPR_ASSERT_TRUE(!vs, "the refused create handed back vectors");
	TH_LOG("%s", cpr_last_error());
	CPR_ASSERT_TRUE(strstr(cpr_last_error(), "RLIMIT_NOFILE"),
			"the refusal of 64 vectors does not name RLIMIT_NOFILE: \"%s\"",
			cpr_last_error());
	CPR_ASSERT_EQ(open_fds(), before,
		      "the refused create of 64 vectors left fds open");
	CPR_ASSERT_EQ(cpr_state_nr_fds(st), 0u,
		      "the refused create of 64 vectors left fds saved in the state");

	/* Room for the eventfds but not for the VM after them: refused too. */
	low.rlim_cur = before + 128 + 4;
	CPR_ASSERT_SYS(setrlimit(RLIMIT_NOFILE, &low),
		       "lowering RLIMIT_NOFILE to %llu",
		       (unsigned long long)low.rlim_cur);
	ret = cpr_vectors_create(st, "dev", CPR_IRQ_MSIX, 64,
				 CPR_VEC_INTERRUPT | CPR_VEC_KVM, &vs);
	CPR_ASSERT_SYS(setrlimit(RLIMIT_NOFILE, &rl),
		       "restoring RLIMIT_NOFILE");
	CPR_ASSERT_EQ(ret, -EMFILE,
		      "64 vectors were made with room for their 128 eventfds but no fd left for the VM after them");
	CPR_ASSERT_EQ(open_fds(), before,
		      "the refused create of 64 vectors, short of fds for the VM, left fds open");

	/* With room, the same call goes through. */
	low.rlim_cur = before + 128 + CPR_FD_HEADROOM;
	CPR_ASSERT_SYS(setrlimit(RLIMIT_NOFILE, &low),
		       "lowering RLIMIT_NOFILE to %llu",
		       (unsigned long long)low.rlim_cur);
	CPR_ASSERT_OK(cpr_vectors_create(st, "dev", CPR_IRQ_MSIX, 64,
					 CPR_VEC_INTERRUPT | CPR_VEC_KVM, &vs),
		      "64 vectors were refused with room for their 128 eventfds and CPR_FD_HEADROOM (%d) more fds",
		      CPR_FD_HEADROOM);
	CPR_ASSERT_SYS(setrlimit(RLIMIT_NOFILE, &rl),
		       "restoring RLIMIT_NOFILE");
	cpr_vectors_free(vs, true);
	cpr_state_free(st);
}

TEST_HARNESS_MAIN
