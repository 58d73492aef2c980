// SPDX-License-Identifier: GPL-2.0-only
/*
 * Write a few valid serialised CPR states into a folder, as the seed corpus
 * of state_fuzz: mkseeds DIR.
 *
 * The fds saved are real (an eventfd, a memfd, /dev/null) because
 * cpr_state_save_fd() wants them open; the fuzzer parses without
 * CPR_PARSE_CHECK_FDS, so their numbers need not mean anything there.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vfio_cpr/log.h"
#include "vfio_cpr/state.h"

#define DEV	"0000:00:04.0"

static const char *out_dir;
static int efd, mfd, nullfd;

static void die(const char *what, int err)
{
	fprintf(stderr, "mkseeds: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static void ok(int ret, const char *what)
{
	if (ret < 0)
		die(what, ret);
}

/* Serialise @st into DIR/seed-@name, then free it. */
static void emit(struct cpr_state *st, const char *name)
{
	char path[PATH_MAX];
	size_t len, done = 0;
	void *buf;
	int fd;

	ok(cpr_state_to_buf(st, &buf, &len), name);
	snprintf(path, sizeof(path), "%s/seed-%s", out_dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die(path, errno);
	while (done < len) {
		ssize_t n = write(fd, (char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die(path, n ? errno : EIO);
		done += n;
	}
	if (close(fd))
		die(path, errno);
	free(buf);
	cpr_state_free(st);
}

static struct cpr_state *new_state(void)
{
	struct cpr_state *st = cpr_state_new();

	if (!st)
		die("cpr_state_new", ENOMEM);
	return st;
}

static void seed_fds(void)
{
	struct cpr_state *st = new_state();

	ok(cpr_state_save_fd(st, DEV "_interrupt", 0, efd), "save eventfd");
	ok(cpr_state_save_fd(st, DEV "_interrupt", 1, efd), "save eventfd");
	ok(cpr_state_save_fd(st, DEV "_kvm_interrupt", 0, efd), "save eventfd");
	ok(cpr_state_save_fd(st, DEV "_err", 0, efd), "save eventfd");
	ok(cpr_state_save_fd(st, "guest_ram", 0, mfd), "save memfd");
	ok(cpr_state_save_fd(st, "null", 7, nullfd), "save /dev/null");
	ok(cpr_state_save_fd(st, "null", 0xffffffffu, nullfd), "save /dev/null");
	emit(st, "fds");
}

static void seed_sections(void)
{
	static __u8 page[4096];
	struct cpr_state *st = new_state();
	unsigned int i;

	for (i = 0; i < sizeof(page); i++)
		page[i] = i * 7 + 1;
	ok(cpr_state_set_section(st, "empty", page, 0), "section 0");
	ok(cpr_state_set_section(st, "b", page, 1), "section 1");
	ok(cpr_state_set_u64(st, DEV "_nr_vectors", 2048), "section 8");
	ok(cpr_state_set_section(st, DEV "_msix_table", page, sizeof(page)),
	   "section 4096");
	emit(st, "sections");
}

/* A device with many MSI-X vectors: indices up to 2047, a pending bitmap. */
static void seed_vectors(void)
{
	static __u8 pba[2048 / 8];
	struct cpr_state *st = new_state();
	unsigned int i;

	for (i = 0; i < 64; i++) {
		ok(cpr_state_save_fd(st, DEV "_interrupt", i * 32, efd),
		   "save vector");
		ok(cpr_state_save_fd(st, DEV "_kvm_interrupt", i * 32, efd),
		   "save kvm vector");
	}
	ok(cpr_state_save_fd(st, DEV "_interrupt", 2047, efd), "save vector");
	pba[0] = 0x81;
	pba[sizeof(pba) - 1] = 0x80;
	ok(cpr_state_set_section(st, DEV "_msix_pba", pba, sizeof(pba)),
	   "section pba");
	ok(cpr_state_set_u64(st, DEV "_nr_vectors", 2048), "section u64");
	emit(st, "vectors");
}

/* Longest names, a name with every printable byte, one of each. */
static void seed_names(void)
{
	char name[CPR_NAME_MAX + 1];
	struct cpr_state *st = new_state();
	unsigned int i;

	memset(name, 'n', CPR_NAME_MAX);
	name[CPR_NAME_MAX] = '\0';
	ok(cpr_state_save_fd(st, name, 3, efd), "save long name");
	ok(cpr_state_set_section(st, name, "x", 1), "long section name");
	for (i = 0; i < 0x7f - 0x20; i++)
		name[i] = 0x20 + i;
	name[i] = '\0';
	ok(cpr_state_save_fd(st, name, 0, mfd), "save printable name");
	name[0] = (char)0xff;
	name[1] = '\0';
	ok(cpr_state_set_section(st, name, "\0\1\2", 3), "high byte name");
	emit(st, "names");
}

int main(int argc, char **argv)
{
	struct cpr_state *st;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	out_dir = argv[1];
	if (mkdir(out_dir, 0755) && errno != EEXIST)
		die(out_dir, errno);

	efd = eventfd(0, EFD_CLOEXEC);
	if (efd < 0)
		die("eventfd", errno);
	mfd = memfd_create("mkseeds", MFD_CLOEXEC);
	if (mfd < 0)
		die("memfd_create", errno);
	nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nullfd < 0)
		die("/dev/null", errno);

	emit(new_state(), "empty");
	seed_fds();
	seed_sections();
	seed_vectors();
	seed_names();

	/* One fd and one section, the smallest records of each type. */
	st = new_state();
	ok(cpr_state_save_fd(st, "e", 0, efd), "save one");
	ok(cpr_state_set_section(st, "s", "", 0), "one section");
	emit(st, "one");

	close(nullfd);
	close(mfd);
	close(efd);
	return 0;
}
