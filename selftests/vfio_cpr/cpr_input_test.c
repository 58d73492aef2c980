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

/*
 * Resume with $VFIO_CPR_STATE_FD=@val: must fail, mention @what, leave the
 * variable unset and (apart from @fd_given, which it may close) no fd.
 */
static void refused(struct __test_metadata *_metadata, const char *val,
		    const char *what)
{
	struct cpr_resume_info info;
	unsigned int before = open_fds();
	int ret;

	ASSERT_EQ(0, setenv(CPR_STATE_ENV, val, 1));
	cpr_log_set_quiet(true);
	ret = cpr_resume(&info);
	cpr_log_set_quiet(false);
	ASSERT_GT(0, ret) {
		TH_LOG("$%s='%s' was accepted (%d)", CPR_STATE_ENV, val, ret);
	}
	ASSERT_NE(NULL, strstr(cpr_last_error(), what)) {
		TH_LOG("$%s='%s': the error does not say '%s': %s",
		       CPR_STATE_ENV, val, what, cpr_last_error());
	}
	ASSERT_EQ(NULL, getenv(CPR_STATE_ENV));
	ASSERT_EQ(NULL, info.st);
	ASSERT_GE(before, open_fds());
	TH_LOG("'%s': %s", val, cpr_last_error());
}

TEST(state_fd_variable_unset_means_no_handoff)
{
	struct cpr_resume_info info;

	unsetenv(CPR_STATE_ENV);
	ASSERT_EQ(0, cpr_resume(&info));
	ASSERT_EQ(NULL, info.st);
}

TEST(state_fd_variable_not_a_number_is_refused)
{
	static const char * const bad[] = {
		"", "abc", "12abc", "-3", "+5", " 5", "5 ", "0x10", "07", "1e3",
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(bad); i++)
		refused(_metadata, bad[i], "is not an fd number");
}

TEST(state_fd_variable_out_of_range_is_refused)
{
	refused(_metadata, "2147483648", "is not an fd number");
	refused(_metadata, "99999999999999999999", "is not an fd number");
	refused(_metadata, "0", "stdin/stdout/stderr");
	refused(_metadata, "2", "stdin/stdout/stderr");
}

TEST(state_fd_variable_naming_a_closed_fd_is_refused)
{
	char val[16];
	int fd = eventfd(0, EFD_CLOEXEC);

	ASSERT_LE(0, fd);
	close(fd);
	snprintf(val, sizeof(val), "%d", fd);
	refused(_metadata, val, "not open in the successor");
}

TEST(state_fd_that_is_not_a_memfd_is_refused)
{
	int fds[2], efd, tmp;
	char val[16], path[] = "/tmp/vfio_cpr_input.XXXXXX";

	ASSERT_EQ(0, pipe2(fds, O_CLOEXEC));
	snprintf(val, sizeof(val), "%d", fds[0]);
	refused(_metadata, val, "memfd");
	close(fds[1]);

	efd = eventfd(0, EFD_CLOEXEC);
	ASSERT_LE(0, efd);
	snprintf(val, sizeof(val), "%d", efd);
	refused(_metadata, val, "memfd");

	/* A regular file holding a perfectly valid state. */
	tmp = mkostemp(path, O_CLOEXEC);
	ASSERT_LE(0, tmp);
	unlink(path);
	{
		struct cpr_state *st = cpr_state_new();
		size_t len;
		void *buf;

		ASSERT_EQ(0, cpr_state_set_u64(st, "x", 1));
		ASSERT_EQ(0, cpr_state_to_buf(st, &buf, &len));
		ASSERT_EQ((ssize_t)len, write(tmp, buf, len));
		free(buf);
		cpr_state_free(st);
	}
	snprintf(val, sizeof(val), "%d", tmp);
	refused(_metadata, val, "memfd");
}

/* A memfd with a valid state and only @seals of the four. */
static int state_memfd(unsigned int seals)
{
	struct cpr_state *st = cpr_state_new();
	int fd = memfd_create("vfio_cpr_input", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	size_t len;
	void *buf;

	if (!st || fd < 0 || cpr_state_set_u64(st, "x", 1) ||
	    cpr_state_to_buf(st, &buf, &len))
		return -1;
	if (write(fd, buf, len) != (ssize_t)len ||
	    (seals && fcntl(fd, F_ADD_SEALS, seals)) ||
	    lseek(fd, 0, SEEK_SET))
		fd = -1;
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

		ASSERT_LE(0, fd);
		snprintf(val, sizeof(val), "%d", fd);
		refused(_metadata, val, "seal");
	}
}

/* Stand-ins for a device's fds: the kind does not matter, the names do. */
static void save_device(struct __test_metadata *_metadata,
			struct cpr_state *st, const char *dev)
{
	static const char * const what[] = { "container", "group", "device" };
	char name[CPR_NAME_MAX + 1];
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(what); i++) {
		int fd = eventfd(0, EFD_CLOEXEC);

		ASSERT_LE(0, fd);
		snprintf(name, sizeof(name), "%s_%s", dev, what[i]);
		ASSERT_EQ(0, cpr_state_save_fd(st, name, 0, fd));
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
	struct cpr_state *st = cpr_state_new();
	struct cpr_vfio_dev *d = NULL;
	int ret;

	ASSERT_NE(NULL, st);
	save_device(_metadata, st, "0000:00:03.0");
	save_device(_metadata, st, "c3a8f6c1-2a0e-4b44-9a1e-0ea9c5b3a7d2");
	ret = cpr_vfio_take_over(st, "0000:00:04.0", &d);
	ASSERT_EQ(-ENOENT, ret);
	ASSERT_EQ(NULL, d);
	TH_LOG("%s", cpr_last_error());
	ASSERT_NE(NULL, strstr(cpr_last_error(), "saved for another device"));
	ASSERT_NE(NULL, strstr(cpr_last_error(), "0000:00:03.0"));
	ASSERT_NE(NULL, strstr(cpr_last_error(),
			       "c3a8f6c1-2a0e-4b44-9a1e-0ea9c5b3a7d2"));

	free_state(st);

	st = cpr_state_new();
	ASSERT_NE(NULL, st);
	ret = cpr_vfio_take_over(st, "0000:00:04.0", &d);
	ASSERT_EQ(-ENOENT, ret);
	ASSERT_NE(NULL, strstr(cpr_last_error(), "no VFIO device at all"));
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
	struct cpr_state *st = cpr_state_new();
	unsigned int i;

	ASSERT_NE(NULL, st);
	cpr_log_set_quiet(true);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		struct cpr_vfio_dev *d = NULL;

		EXPECT_EQ(-EINVAL, cpr_vfio_open(st, bad[i], &d)) {
			TH_LOG("'%s' was not refused as a name", bad[i]);
		}
		EXPECT_EQ(NULL, d);
		EXPECT_NE(NULL, strstr(cpr_last_error(), "not a PCI address"));
		EXPECT_EQ(-EINVAL, cpr_vfio_take_over(st, bad[i], &d));
		EXPECT_EQ(-EINVAL, cpr_vfio_iface_supported(bad[i],
							    CPR_VFIO_IFACE_CDEV));
	}
	cpr_log_set_quiet(false);
	cpr_state_free(st);
}

TEST(rlimit_too_low_for_the_vectors_is_refused_before_anything_is_made)
{
	struct cpr_state *st = cpr_state_new();
	struct cpr_vectors *vs = NULL;
	struct rlimit rl, low;
	unsigned int before;
	int ret;

	ASSERT_NE(NULL, st);
	ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &rl));
	before = open_fds();
	low = rl;
	low.rlim_cur = before + 100;	/* 64 vectors need 128 eventfds */
	ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &low));
	ret = cpr_vectors_create(st, "dev", CPR_IRQ_MSIX, 64,
				 CPR_VEC_INTERRUPT | CPR_VEC_KVM, &vs);
	ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &rl));
	ASSERT_EQ(-EMFILE, ret);
	ASSERT_EQ(NULL, vs);
	TH_LOG("%s", cpr_last_error());
	ASSERT_NE(NULL, strstr(cpr_last_error(), "RLIMIT_NOFILE"));
	ASSERT_EQ(before, open_fds()) {
		TH_LOG("the refused create left fds open");
	}
	ASSERT_EQ(0u, cpr_state_nr_fds(st));

	/* Room for the eventfds but not for the VM after them: refused too. */
	low.rlim_cur = before + 128 + 4;
	ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &low));
	ret = cpr_vectors_create(st, "dev", CPR_IRQ_MSIX, 64,
				 CPR_VEC_INTERRUPT | CPR_VEC_KVM, &vs);
	ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &rl));
	ASSERT_EQ(-EMFILE, ret) {
		TH_LOG("64 vectors made with no fd left for the VM");
		cpr_vectors_free(vs, true);
	}
	ASSERT_EQ(before, open_fds());

	/* With room, the same call goes through. */
	low.rlim_cur = before + 128 + CPR_FD_HEADROOM;
	ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &low));
	ret = cpr_vectors_create(st, "dev", CPR_IRQ_MSIX, 64,
				 CPR_VEC_INTERRUPT | CPR_VEC_KVM, &vs);
	ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &rl));
	ASSERT_EQ(0, ret);
	cpr_vectors_free(vs, true);
	cpr_state_free(st);
}

TEST_HARNESS_MAIN
