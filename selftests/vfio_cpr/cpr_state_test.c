// SPDX-License-Identifier: GPL-2.0-only
/*
 * The CPR state store, on its own: what a VMM saves for its successor (fds
 * named by (name, index) with their kind, opaque sections), how it is
 * serialised into a sealed memfd, and how the successor refuses anything
 * that is not exactly such a state.  The wire format is written out again
 * here from state.h, independently of the library, to craft bad input.
 * And one section the library writes itself: a device's vector set
 * ("<dev>_msi"), which must bring back exactly the MSI-X table entries in
 * use, each with its own fds, through a serialised state.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/types.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "cpr_assert.h"
#include "cpr_test_util.h"
#include "vfio_cpr/log.h"
#include "vfio_cpr/state.h"
#include "vfio_cpr/vectors.h"

/* The serialised form, as state.h describes it. */
#define W_HDR_LEN	32
#define W_VERSION	8
#define W_HEADER_LEN	12
#define W_TOTAL_LEN	16
#define W_NR_RECORDS	24
#define W_CHECKSUM	28
#define W_REC_FD	1
#define W_REC_SECTION	2

#define ALL_SEALS \
	(F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)

static char not_written;
/* What *out holds before a parse that must fail, and after it. */
#define UNTOUCHED	((struct cpr_state *)&not_written)

static int new_eventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	CPR_ASSERT_SYS(fd, "creating an eventfd");
	return fd;
}

/* A memfd holding @len bytes of @buf, with @seals added (0: none). */
static int memfd_with(const void *buf, size_t len, int seals)
{
	int fd = memfd_create("cpr_state_test",
			      MFD_CLOEXEC | MFD_ALLOW_SEALING);
	ssize_t n;

	CPR_ASSERT_SYS(fd, "creating a memfd that allows sealing");
	n = write(fd, buf, len);
	CPR_ASSERT_SYS(n, "writing %zu bytes into a fresh memfd", len);
	CPR_ASSERT_EQ(n, (ssize_t)len,
		      "a fresh memfd took only part of the %zu bytes written",
		      len);
	if (seals)
		CPR_ASSERT_SYS(fcntl(fd, F_ADD_SEALS, seals),
			       "adding seals 0x%x to a fresh memfd", seals);
	return fd;
}

static void put32(unsigned char *buf, size_t off, __u32 v)
{
	memcpy(buf + off, &v, sizeof(v));
}

static void put64(unsigned char *buf, size_t off, __u64 v)
{
	memcpy(buf + off, &v, sizeof(v));
}

static __u32 get32(const unsigned char *buf, size_t off)
{
	__u32 v;

	memcpy(&v, buf + off, sizeof(v));
	return v;
}

/* The library's last message says @word. */
static bool said(const char *word)
{
	return strstr(cpr_last_error(), word);
}

/* @fd, which is @what, must be told as of @want's kind. */
static void assert_kind(int fd, int want, const char *what)
{
	int kind = cpr_fd_kind_of(fd);

	CPR_ASSERT_EQ(kind, want, "%s (fd %d) was told as \"%s\", not \"%s\"",
		      what, fd, cpr_fd_kind_name(kind),
		      cpr_fd_kind_name(want));
}

/* Two names the library gives must be the same. */
static void assert_same_name(const char *seen, const char *want,
			     const char *what)
{
	CPR_ASSERT_TRUE(!strcmp(seen, want), "%s is named \"%s\", not \"%s\"",
			what, seen, want);
}

/* Recompute the checksum over the @len bytes, as a writer would. */
static void fix_checksum(unsigned char *buf, size_t len)
{
	put32(buf, W_CHECKSUM, 0);
	put32(buf, W_CHECKSUM, cpr_crc32(0, buf, len));
}

/* A serialised state built byte by byte, for input the library never makes. */
struct raw {
	unsigned char buf[4096];
	size_t len;
	__u32 nr;
};

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static void raw_begin(struct raw *r)
{
	memset(r, 0, sizeof(*r));
	memcpy(r->buf, "VFIOCPR", 8);
	put32(r->buf, W_VERSION, CPR_STATE_VERSION);
	put32(r->buf, W_HEADER_LEN, W_HDR_LEN);
	r->len = W_HDR_LEN;
}

static void raw_fd(struct raw *r, const char *name, __u32 index, int fd,
		   int kind)
{
	size_t name_len = strlen(name);
	size_t rec_len = align8(24 + name_len);

	if (r->len + rec_len > sizeof(r->buf))
		abort();
	put32(r->buf, r->len, W_REC_FD);
	put32(r->buf, r->len + 4, rec_len);
	put32(r->buf, r->len + 8, index);
	put32(r->buf, r->len + 12, fd);
	put32(r->buf, r->len + 16, kind);
	put32(r->buf, r->len + 20, name_len);
	memcpy(r->buf + r->len + 24, name, name_len);
	r->len += rec_len;
	r->nr++;
}

static void raw_section(struct raw *r, const char *name, const void *data,
			size_t data_len)
{
	size_t name_len = strlen(name);
	size_t rec_len = align8(16 + name_len + data_len);

	if (r->len + rec_len > sizeof(r->buf))
		abort();
	put32(r->buf, r->len, W_REC_SECTION);
	put32(r->buf, r->len + 4, rec_len);
	put32(r->buf, r->len + 8, data_len);
	put32(r->buf, r->len + 12, name_len);
	memcpy(r->buf + r->len + 16, name, name_len);
	memcpy(r->buf + r->len + 16 + name_len, data, data_len);
	r->len += rec_len;
	r->nr++;
}

static void raw_end(struct raw *r)
{
	put64(r->buf, W_TOTAL_LEN, r->len);
	put32(r->buf, W_NR_RECORDS, r->nr);
	fix_checksum(r->buf, r->len);
}

/*
 * Parse must refuse @len bytes at @buf, a state with @what: returning
 * @want_ret, setting @want_why, saying @word in its message and leaving
 * *out alone.  The bytes are copied into a buffer of exactly @len bytes so
 * that any read past the end is caught (valgrind, ASan).
 */
static void expect_refused(const char *what, const void *buf, size_t len,
			   unsigned int flags, enum cpr_state_error want_why,
			   int want_ret, const char *word)
{
	enum cpr_state_error why = CPR_STATE_OK;
	struct cpr_state *out = UNTOUCHED;
	void *copy = malloc(len ? len : 1);
	int ret;

	CPR_ASSERT_TRUE(copy, "allocating %zu bytes for a copy of the input",
			len);
	memcpy(copy, buf, len);
	cpr_clear_error();
	cpr_log_set_quiet(true);
	ret = cpr_state_parse(copy, len, flags, &out, &why);
	cpr_log_set_quiet(false);
	free(copy);

	CPR_ASSERT_NE(ret, 0, "a state with %s was accepted", what);
	CPR_ASSERT_EQ(ret, want_ret,
		      "a state with %s was refused with %d, not %d (\"%s\")",
		      what, ret, want_ret, cpr_last_error());
	CPR_ASSERT_EQ(why, want_why,
		      "a state with %s was refused as \"%s\", not as \"%s\" (\"%s\")",
		      what, cpr_state_error_name(why),
		      cpr_state_error_name(want_why), cpr_last_error());
	CPR_ASSERT_TRUE(said(word),
			"the refusal of a state with %s does not say \"%s\": \"%s\"",
			what, word, cpr_last_error());
	CPR_ASSERT_TRUE(out == UNTOUCHED,
			"the refused parse of a state with %s wrote *out", what);
}

/* Parse must accept @buf; returns the state. */
static struct cpr_state *expect_parsed(const void *buf, size_t len,
				       unsigned int flags)
{
	enum cpr_state_error why = CPR_STATE_ERROR_MAX;
	struct cpr_state *out = NULL;

	CPR_ASSERT_OK(cpr_state_parse(buf, len, flags, &out, &why),
		      "a valid state of %zu bytes was refused", len);
	CPR_ASSERT_EQ(why, CPR_STATE_OK,
		      "a valid state of %zu bytes was accepted with a refusal reason set (\"%s\")",
		      len, cpr_state_error_name(why));
	CPR_ASSERT_TRUE(out,
			"a valid state of %zu bytes was accepted but no state came out",
			len);
	return out;
}

/* A small state as the library writes it: one fd, one section. */
static void small_state(int efd, void **buf, size_t *len)
{
	static const unsigned char msi[16] = { 0xfe, 0xe0, 0, 0, 0, 0, 0, 0,
					       0x41, 0, 0, 0, 1, 0, 0, 0 };
	struct cpr_state *st = cpr_test_state_new();

	cpr_test_save_fd(st, "dev_kvm_interrupt", 3, efd);
	cpr_test_set_section(st, "dev_msi", msi, sizeof(msi));
	cpr_test_state_to_buf(st, buf, len);
	cpr_state_free(st);
}

TEST(crc32_is_the_ieee_crc_zlib_computes)
{
	static const char check[] = "123456789";
	static const char fox[] = "The quick brown fox jumps over the lazy dog";
	__u32 crc;

	/* The published check values of CRC-32/ISO-HDLC. */
	CPR_ASSERT_EQ(cpr_crc32(0, check, 9), 0xcbf43926u,
		      "the CRC-32 of \"123456789\" is not the IEEE check value");
	CPR_ASSERT_EQ(cpr_crc32(0, fox, strlen(fox)), 0x414fa339u,
		      "the CRC-32 of \"%s\" is not the published one", fox);
	CPR_ASSERT_EQ(cpr_crc32(0, NULL, 0), 0u,
		      "the CRC-32 of no bytes is not 0");
	/* Chaining like zlib's crc32(crc, buf, len). */
	crc = cpr_crc32(0, check, 4);
	CPR_ASSERT_EQ(cpr_crc32(crc, check + 4, 5), 0xcbf43926u,
		      "the CRC-32 of \"123456789\" chained over two pieces differs from one pass");
}

TEST(fd_kind_is_read_from_what_the_kernel_shows)
{
	int efd = new_eventfd();
	int mfd = memfd_with("x", 1, 0);
	int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int pipefd[2], sv[2];

	CPR_ASSERT_SYS(pipe2(pipefd, O_CLOEXEC), "creating a pipe");
	CPR_ASSERT_SYS(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
		       "creating a UNIX socket pair");
	CPR_ASSERT_SYS(nullfd, "opening /dev/null");

	assert_kind(efd, CPR_FD_EVENTFD, "an eventfd");
	assert_kind(mfd, CPR_FD_MEMFD, "a memfd");
	assert_kind(pipefd[0], CPR_FD_PIPE, "a pipe's read end");
	assert_kind(pipefd[1], CPR_FD_PIPE, "a pipe's write end");
	assert_kind(sv[0], CPR_FD_SOCKET, "a UNIX socket");
	assert_kind(nullfd, CPR_FD_OTHER, "/dev/null");

	close(efd);
	cpr_clear_error();
	CPR_ASSERT_EQ(cpr_fd_kind_of(efd), -EBADF,
		      "a closed fd (%d) was not reported as not open", efd);
	CPR_ASSERT_EQ(cpr_fd_kind_of(-1), -EBADF,
		      "fd -1 was not reported as not open");
	CPR_ASSERT_TRUE(!cpr_last_error()[0],
			"asking the kind of a closed fd recorded an error (\"%s\"): it is a query, not a failure",
			cpr_last_error());

	assert_same_name(cpr_fd_kind_name(CPR_FD_EVENTFD), "eventfd",
			 "CPR_FD_EVENTFD");
	assert_same_name(cpr_fd_kind_name(CPR_FD_MEMFD), "memfd",
			 "CPR_FD_MEMFD");
	assert_same_name(cpr_fd_kind_name(CPR_FD_KVM_VM), "kvm-vm",
			 "CPR_FD_KVM_VM");
	assert_same_name(cpr_fd_kind_name(CPR_FD_VFIO_GROUP), "vfio-group",
			 "CPR_FD_VFIO_GROUP");
	assert_same_name(cpr_fd_kind_name(CPR_FD_PIPE), "pipe", "CPR_FD_PIPE");
	assert_same_name(cpr_fd_kind_name(CPR_FD_OTHER), "other",
			 "CPR_FD_OTHER");
	assert_same_name(cpr_fd_kind_name(CPR_FD_KIND_MAX), "invalid",
			 "the kind CPR_FD_KIND_MAX");
	assert_same_name(cpr_fd_kind_name(-1), "invalid", "the kind -1");

	close(mfd);
	close(nullfd);
	close(pipefd[0]);
	close(pipefd[1]);
	close(sv[0]);
	close(sv[1]);
}

TEST(fd_kind_knows_kvm_and_vfio_objects)
{
	struct kvm_create_device dev = { .type = KVM_DEV_TYPE_VFIO };
	int kvm, vm, vcpu, fd;

	/* Nodes that exist only on some machines: checked when present. */
	fd = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		assert_kind(fd, CPR_FD_VFIO_CONTAINER, "/dev/vfio/vfio");
		close(fd);
	}
	fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		assert_kind(fd, CPR_FD_IOMMUFD, "/dev/iommu");
		close(fd);
	}

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		SKIP(return, "/dev/kvm: %s", strerror(errno));
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	CPR_ASSERT_SYS(vm, "creating a VM (KVM_CREATE_VM)");
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	CPR_ASSERT_SYS(vcpu, "creating a vCPU (KVM_CREATE_VCPU)");
	assert_kind(kvm, CPR_FD_KVM, "/dev/kvm");
	assert_kind(vm, CPR_FD_KVM_VM, "a VM");
	assert_kind(vcpu, CPR_FD_KVM_VCPU, "a vCPU");
	if (!ioctl(vm, KVM_CREATE_DEVICE, &dev)) {
		assert_kind(dev.fd, CPR_FD_KVM_DEVICE, "a kvm-vfio device");
		close(dev.fd);
	} else {
		TH_LOG("no kvm-vfio device here (%s): not checked",
		       strerror(errno));
	}
	close(vcpu);
	close(vm);
	close(kvm);
}

TEST(named_fds_are_saved_found_and_deleted)
{
	struct cpr_state *st = cpr_test_state_new();
	int efd = new_eventfd();
	int mfd = memfd_with("", 0, 0);
	char name[CPR_NAME_MAX + 2];
	const struct cpr_fd_rec *rec;
	__u64 serial;
	int closed;

	cpr_test_save_fd(st, "dev_interrupt", 0, efd);
	cpr_test_save_fd(st, "dev_interrupt", 1, mfd);
	CPR_ASSERT_OK(cpr_state_save_fd(st, "dev_kvm_interrupt", 0, efd),
		      "saving eventfd %d under a second name was refused: one fd must be allowed under two names",
		      efd);
	CPR_ASSERT_EQ(cpr_state_nr_fds(st), 3u,
		      "three fds saved, but the store counts otherwise");

	CPR_ASSERT_EQ(cpr_state_find_fd(st, "dev_interrupt", 0), efd,
		      "'dev_interrupt'[0] does not give back the eventfd saved under it");
	CPR_ASSERT_EQ(cpr_state_find_fd(st, "dev_interrupt", 1), mfd,
		      "'dev_interrupt'[1] does not give back the memfd saved under it");
	CPR_ASSERT_EQ(cpr_state_find_fd(st, "dev_kvm_interrupt", 0), efd,
		      "'dev_kvm_interrupt'[0] does not give back the eventfd saved under it too");
	CPR_ASSERT_EQ(cpr_state_find_fd(st, "dev_interrupt", 2), -1,
		      "'dev_interrupt'[2], an index never saved, was found");
	CPR_ASSERT_EQ(cpr_state_find_fd(st, "dev_err", 0), -1,
		      "'dev_err'[0], a name never saved, was found");
	CPR_ASSERT_EQ(cpr_state_find_fd(st, "dev_interrup", 0), -1,
		      "'dev_interrup'[0], a prefix of a saved name, matched it");
	/* A vector table at once: what find_fd() gives each index. */
	{
		int fds[4] = { 7, 7, 7, 7 };

		cpr_state_find_fds(st, "dev_interrupt", 3, fds);
		CPR_ASSERT_EQ(fds[0], efd,
			      "find_fds() did not give 'dev_interrupt'[0] its eventfd");
		CPR_ASSERT_EQ(fds[1], mfd,
			      "find_fds() did not give 'dev_interrupt'[1] its memfd");
		CPR_ASSERT_EQ(fds[2], -1,
			      "find_fds() gave 'dev_interrupt'[2], never saved, an fd");
		CPR_ASSERT_EQ(fds[3], 7,
			      "find_fds() wrote past the %u entries asked for", 3);
		cpr_state_find_fds(st, "dev_interrup", 2, fds);
		CPR_ASSERT_EQ(fds[0], -1,
			      "find_fds() of 'dev_interrup', a prefix of a saved name, gave index 0 an fd");
		CPR_ASSERT_EQ(fds[1], -1,
			      "find_fds() of 'dev_interrup', a prefix of a saved name, gave index 1 an fd");
	}

	/* The kind is recorded when the fd is saved. */
	rec = cpr_state_fd_at(st, 1);
	CPR_ASSERT_TRUE(rec, "the second of three fd records is missing");
	CPR_ASSERT_TRUE(!strcmp(rec->name, "dev_interrupt"),
			"the second fd record is named '%s', not 'dev_interrupt'",
			rec->name);
	CPR_ASSERT_EQ(rec->index, 1u,
		      "the second fd record has the wrong index");
	CPR_ASSERT_EQ(rec->fd, mfd, "the second fd record has the wrong fd");
	CPR_ASSERT_EQ(rec->kind, CPR_FD_MEMFD,
		      "the second fd record, a memfd, was recorded as \"%s\"",
		      cpr_fd_kind_name(rec->kind));
	CPR_ASSERT_EQ(cpr_state_fd_at(st, 0)->kind, CPR_FD_EVENTFD,
		      "the first fd record, an eventfd, was recorded as \"%s\"",
		      cpr_fd_kind_name(cpr_state_fd_at(st, 0)->kind));
	CPR_ASSERT_TRUE(!cpr_state_fd_at(st, 3),
			"a fourth fd record exists in a store of three");

	cpr_log_set_quiet(true);
	CPR_ASSERT_EQ(cpr_state_save_fd(st, "dev_interrupt", 1, efd), -EEXIST,
		      "saving over an existing (name, index) was not refused with -EEXIST");
	CPR_ASSERT_EQ(cpr_state_find_fd(st, "dev_interrupt", 1), mfd,
		      "a refused save replaced the fd saved under 'dev_interrupt'[1]");
	CPR_ASSERT_EQ(cpr_state_save_fd(st, "", 0, efd), -EINVAL,
		      "an empty name was not refused with -EINVAL");
	CPR_ASSERT_EQ(cpr_state_save_fd(st, NULL, 0, efd), -EINVAL,
		      "a NULL name was not refused with -EINVAL");
	memset(name, 'n', CPR_NAME_MAX + 1);
	name[CPR_NAME_MAX + 1] = '\0';
	CPR_ASSERT_EQ(cpr_state_save_fd(st, name, 0, efd), -EINVAL,
		      "a name of %d bytes was not refused with -EINVAL",
		      CPR_NAME_MAX + 1);
	CPR_ASSERT_EQ(cpr_state_find_fd(st, name, 0), -1,
		      "a name of %d bytes, refused, was found", CPR_NAME_MAX + 1);
	closed = dup(efd);
	CPR_ASSERT_SYS(closed, "duplicating eventfd %d", efd);
	close(closed);
	CPR_ASSERT_EQ(cpr_state_save_fd(st, "dev_err", 0, closed), -EBADF,
		      "a closed fd (%d) was not refused with -EBADF", closed);
	CPR_ASSERT_TRUE(said("not open"),
			"the refusal of a closed fd does not say \"not open\": \"%s\"",
			cpr_last_error());
	CPR_ASSERT_EQ(cpr_state_save_fd(st, "dev_err", 0, -1), -EBADF,
		      "fd -1 was not refused with -EBADF");
	cpr_log_set_quiet(false);
	name[CPR_NAME_MAX] = '\0';
	CPR_ASSERT_OK(cpr_state_save_fd(st, name, 7, efd),
		      "a name of exactly %d bytes was refused", CPR_NAME_MAX);
	CPR_ASSERT_EQ(cpr_state_find_fd(st, name, 7), efd,
		      "the fd saved under a name of %d bytes is not found",
		      CPR_NAME_MAX);

	/* Saving and deleting change the serial, refusals do not. */
	serial = cpr_state_fd_serial(st);
	CPR_ASSERT_OK(cpr_state_delete_fd(st, "dev_interrupt", 0),
		      "deleting 'dev_interrupt'[0]");
	CPR_ASSERT_NE(cpr_state_fd_serial(st), serial,
		      "deleting an fd did not change the store's serial");
	serial = cpr_state_fd_serial(st);
	CPR_ASSERT_EQ(cpr_state_find_fd(st, "dev_interrupt", 0), -1,
		      "the deleted 'dev_interrupt'[0] is still found");
	CPR_ASSERT_EQ(cpr_state_find_fd(st, "dev_interrupt", 1), mfd,
		      "deleting 'dev_interrupt'[0] lost 'dev_interrupt'[1]");
	CPR_ASSERT_EQ(cpr_state_nr_fds(st), 3u,
		      "four fds saved and one deleted, but the store counts otherwise");
	CPR_ASSERT_EQ(cpr_fd_kind_of(efd), CPR_FD_EVENTFD,
		      "deleting an entry closed its fd %d", efd);
	cpr_log_set_quiet(true);
	CPR_ASSERT_EQ(cpr_state_delete_fd(st, "dev_interrupt", 0), -ENOENT,
		      "deleting 'dev_interrupt'[0] twice was not refused with -ENOENT");
	CPR_ASSERT_EQ(cpr_state_delete_fd(st, "dev_nothing", 9), -ENOENT,
		      "deleting 'dev_nothing'[9], never saved, was not refused with -ENOENT");
	CPR_ASSERT_EQ(cpr_state_save_fd(st, "dev_interrupt", 1, efd), -EEXIST,
		      "saving over an existing (name, index) was not refused with -EEXIST");
	cpr_log_set_quiet(false);
	CPR_ASSERT_EQ(cpr_state_fd_serial(st), serial,
		      "refused saves and deletes changed the store's serial");
	cpr_test_save_fd(st, "dev_interrupt", 0, efd);
	CPR_ASSERT_NE(cpr_state_fd_serial(st), serial,
		      "saving an fd did not change the store's serial");
	CPR_ASSERT_OK(cpr_state_delete_fd(st, "dev_interrupt", 0),
		      "deleting 'dev_interrupt'[0] saved again");
	/* Deleted, the name is free again. */
	CPR_ASSERT_OK(cpr_state_save_fd(st, "dev_interrupt", 0, mfd),
		      "saving under a deleted (name, index) was refused: it must be free again");
	CPR_ASSERT_EQ(cpr_state_find_fd(st, "dev_interrupt", 0), mfd,
		      "'dev_interrupt'[0], saved again after a delete, does not give the new fd");

	cpr_state_free(st);
	CPR_ASSERT_EQ(cpr_fd_kind_of(efd), CPR_FD_EVENTFD,
		      "freeing the store closed eventfd %d, which it named", efd);
	cpr_state_free(NULL);
	close(efd);
	close(mfd);
}

TEST(sections_are_set_replaced_read_and_deleted)
{
	static const char msi[] = "message area: address, data, mask";
	struct cpr_state *st = cpr_test_state_new();
	const void *data;
	const char *name;
	__u64 v = 0;
	size_t len;

	CPR_ASSERT_TRUE(!cpr_state_get_section(st, "dev_msi", &len),
			"section 'dev_msi' was found in a new store");
	cpr_test_set_section(st, "dev_msi", msi, sizeof(msi));
	data = cpr_state_get_section(st, "dev_msi", &len);
	CPR_ASSERT_TRUE(data, "section 'dev_msi', just set, is not found");
	CPR_ASSERT_EQ(len, sizeof(msi),
		      "section 'dev_msi' does not read back at the length it was set");
	CPR_ASSERT_EQ(memcmp(msi, data, len), 0,
		      "section 'dev_msi' does not read back as it was set");
	CPR_ASSERT_TRUE(data != (const void *)msi,
			"the store keeps the caller's buffer of a section instead of its own copy");

	/* Set again: replaced, by a shorter one, from its own bytes too. */
	CPR_ASSERT_OK(cpr_state_set_section(st, "dev_msi", data, 7),
		      "replacing section 'dev_msi' by its own first 7 bytes");
	data = cpr_state_get_section(st, "dev_msi", &len);
	CPR_ASSERT_EQ(len, 7u,
		      "section 'dev_msi', replaced by 7 bytes, reads back at another length");
	CPR_ASSERT_EQ(memcmp(msi, data, len), 0,
		      "section 'dev_msi', replaced from its own bytes, reads back changed");
	CPR_ASSERT_EQ(cpr_state_nr_sections(st), 1u,
		      "replacing a section added a second one");

	/* Empty sections exist, and are told apart from absent ones. */
	cpr_test_set_section(st, "dev_flags", NULL, 0);
	len = 99;
	CPR_ASSERT_TRUE(cpr_state_get_section(st, "dev_flags", &len),
			"an empty section reads as absent");
	CPR_ASSERT_EQ(len, 0u, "an empty section reads back with a length");

	cpr_test_set_u64(st, "cpr.generation", 0x1122334455667788ull);
	CPR_ASSERT_OK(cpr_state_get_u64(st, "cpr.generation", &v),
		      "reading back the u64 section 'cpr.generation'");
	CPR_ASSERT_EQ(v, 0x1122334455667788ull,
		      "the u64 section 'cpr.generation' reads back another value");
	CPR_ASSERT_TRUE(cpr_state_get_section(st, "cpr.generation", &len),
			"the u64 section 'cpr.generation' is not a section");
	CPR_ASSERT_EQ(len, 8u, "a u64 section is not exactly 8 bytes");

	cpr_log_set_quiet(true);
	CPR_ASSERT_EQ(cpr_state_get_u64(st, "cpr.nothing", &v), -ENOENT,
		      "reading an absent u64 section was not refused with -ENOENT");
	CPR_ASSERT_EQ(cpr_state_get_u64(st, "dev_msi", &v), -EINVAL,
		      "a 7-byte section read as a u64");
	CPR_ASSERT_TRUE(said("dev_msi"),
			"the refusal to read 'dev_msi' as a u64 does not name the section: \"%s\"",
			cpr_last_error());
	CPR_ASSERT_EQ(cpr_state_set_section(st, "", msi, 1), -EINVAL,
		      "a section with an empty name was not refused with -EINVAL");
	CPR_ASSERT_EQ(cpr_state_set_section(st, "x", NULL, 1), -EINVAL,
		      "a section of 1 byte at NULL was not refused with -EINVAL");
	CPR_ASSERT_EQ(cpr_state_set_section(st, "x", msi,
					    CPR_SECTION_MAX + 1ul), -EFBIG,
		      "a section over CPR_SECTION_MAX was not refused with -EFBIG");
	cpr_log_set_quiet(false);

	/* In insertion order; the replaced one kept its place. */
	CPR_ASSERT_EQ(cpr_state_nr_sections(st), 3u,
		      "three sections set (refusals aside), but the store counts otherwise");
	CPR_ASSERT_OK(cpr_state_section_at(st, 0, &name, &data, &len),
		      "reading the first section");
	CPR_ASSERT_TRUE(!strcmp(name, "dev_msi"),
			"the first section is '%s', not 'dev_msi': a replaced section lost its place",
			name);
	CPR_ASSERT_OK(cpr_state_section_at(st, 2, &name, &data, &len),
		      "reading the third section");
	CPR_ASSERT_TRUE(!strcmp(name, "cpr.generation"),
			"the third section is '%s', not 'cpr.generation': out of insertion order",
			name);
	CPR_ASSERT_EQ(cpr_state_section_at(st, 3, &name, &data, &len), -ENOENT,
		      "a fourth section was read from a store of three");

	CPR_ASSERT_OK(cpr_state_delete_section(st, "dev_msi"),
		      "deleting section 'dev_msi'");
	CPR_ASSERT_TRUE(!cpr_state_get_section(st, "dev_msi", NULL),
			"the deleted section 'dev_msi' is still found");
	cpr_log_set_quiet(true);
	CPR_ASSERT_EQ(cpr_state_delete_section(st, "dev_msi"), -ENOENT,
		      "deleting section 'dev_msi' twice was not refused with -ENOENT");
	cpr_log_set_quiet(false);
	CPR_ASSERT_OK(cpr_state_section_at(st, 0, &name, NULL, NULL),
		      "reading the first section after a delete");
	CPR_ASSERT_TRUE(!strcmp(name, "dev_flags"),
			"the first section after deleting 'dev_msi' is '%s', not 'dev_flags'",
			name);
	cpr_state_free(st);
}

/* A reference model: the keys in the order the store must list them. */
struct model_key {
	int name;
	__u32 index;
};

static void check_against_model(const struct cpr_state *st,
				const struct model_key *keys, unsigned int n,
				const char *const *names, const int *pool)
{
	const struct cpr_fd_rec *rec;
	unsigned int i;

	CPR_ASSERT_EQ(cpr_state_nr_fds(st), n,
		      "the store counts otherwise than the %u entries of the model",
		      n);
	for (i = 0; i < n; i++) {
		rec = cpr_state_fd_at(st, i);
		CPR_ASSERT_TRUE(rec, "entry %u of %u is missing", i, n);
		CPR_ASSERT_TRUE(!strcmp(rec->name, names[keys[i].name]),
				"entry %u is '%s', not '%s': out of insertion order",
				i, rec->name, names[keys[i].name]);
		CPR_ASSERT_EQ(rec->index, keys[i].index,
			      "entry %u ('%s') has the wrong index: out of insertion order",
			      i, rec->name);
		CPR_ASSERT_EQ(cpr_state_find_fd(st, rec->name, rec->index),
			      pool[keys[i].index % 4],
			      "'%s'[%u] does not give back the fd saved under it",
			      rec->name, rec->index);
	}
	CPR_ASSERT_TRUE(!cpr_state_fd_at(st, n),
			"an entry past the %u of the model exists", n);
}

TEST(insertion_order_survives_deletes)
{
	static const char *const names[] = { "a_interrupt", "a_kvm_interrupt",
					     "b_interrupt" };
	enum { MAX_KEYS = 600, STEPS = 6000 };
	struct model_key keys[MAX_KEYS];
	struct cpr_state *st = cpr_test_state_new();
	unsigned int seed = 1, n = 0, i, step;
	int pool[4];

	for (i = 0; i < 4; i++)
		pool[i] = new_eventfd();

	/* Random saves and deletes, checked against a plain array. */
	for (step = 0; step < STEPS; step++) {
		bool del = n && (n == MAX_KEYS || rand_r(&seed) % 100 < 45);
		struct model_key k;

		if (del) {
			i = rand_r(&seed) % n;
			k = keys[i];
			CPR_ASSERT_OK(cpr_state_delete_fd(st, names[k.name],
							  k.index),
				      "step %u: deleting '%s'[%u], which is saved",
				      step, names[k.name], k.index);
			memmove(&keys[i], &keys[i + 1],
				(n - i - 1) * sizeof(keys[0]));
			n--;
			CPR_ASSERT_EQ(cpr_state_find_fd(st, names[k.name],
							k.index), -1,
				      "step %u: the deleted '%s'[%u] is still found",
				      step, names[k.name], k.index);
		} else {
			k.name = rand_r(&seed) % 3;
			k.index = rand_r(&seed) % 400;
			if (cpr_state_find_fd(st, names[k.name], k.index) >= 0)
				continue;
			cpr_test_save_fd(st, names[k.name], k.index,
					 pool[k.index % 4]);
			keys[n++] = k;
		}
		if (step % 97 == 0)
			check_against_model(st, keys, n, names, pool);
	}
	check_against_model(st, keys, n, names, pool);

	/* Emptied completely, then used again. */
	while (n) {
		n--;
		CPR_ASSERT_OK(cpr_state_delete_fd(st, names[keys[0].name],
						  keys[0].index),
			      "emptying the store: deleting its first entry '%s'[%u]",
			      names[keys[0].name], keys[0].index);
		memmove(&keys[0], &keys[1], n * sizeof(keys[0]));
		if (n % 7 == 0)
			check_against_model(st, keys, n, names, pool);
	}
	cpr_test_save_fd(st, names[2], 5, pool[1]);
	keys[0].name = 2;
	keys[0].index = 5;
	check_against_model(st, keys, 1, names, pool);

	cpr_state_free(st);
	for (i = 0; i < 4; i++)
		close(pool[i]);
}

TEST(store_of_4096_fd_records_round_trips)
{
	enum { VECTORS = 2048, POOL = 64 };
	struct cpr_state *st = cpr_test_state_new(), *back;
	int pool[POOL], fd;
	unsigned int v, i;
	size_t len;
	void *buf;

	for (i = 0; i < POOL; i++)
		pool[i] = new_eventfd();
	/* 2048 MSI-X vectors, each with a handler and an irqfd eventfd. */
	for (v = 0; v < VECTORS; v++) {
		cpr_test_save_fd(st, "dev_interrupt", v, pool[(2 * v) % POOL]);
		cpr_test_save_fd(st, "dev_kvm_interrupt", v,
				 pool[(2 * v + 1) % POOL]);
	}
	CPR_ASSERT_EQ(cpr_state_nr_fds(st), 2u * VECTORS,
		      "%u fds saved, but the store counts otherwise",
		      2 * VECTORS);

	cpr_test_state_to_buf(st, &buf, &len);
	back = expect_parsed(buf, len, CPR_PARSE_CHECK_FDS);
	free(buf);
	CPR_ASSERT_EQ(cpr_state_nr_fds(back), 2u * VECTORS,
		      "%u fd records serialised, but the parsed state counts otherwise",
		      2 * VECTORS);
	for (v = 0; v < VECTORS; v++) {
		fd = cpr_state_find_fd(back, "dev_interrupt", v);
		CPR_ASSERT_EQ(fd, pool[(2 * v) % POOL],
			      "vector %u's interrupt fd came back wrong from the serialised state",
			      v);
		fd = cpr_state_find_fd(back, "dev_kvm_interrupt", v);
		CPR_ASSERT_EQ(fd, pool[(2 * v + 1) % POOL],
			      "vector %u's kvm_interrupt fd came back wrong from the serialised state",
			      v);
	}
	for (i = 0; i < 2 * VECTORS; i++) {
		const struct cpr_fd_rec *a = cpr_state_fd_at(st, i);
		const struct cpr_fd_rec *b = cpr_state_fd_at(back, i);

		CPR_ASSERT_TRUE(!strcmp(a->name, b->name),
				"fd record %u came back from the serialised state as '%s', not '%s': out of order",
				i, b->name, a->name);
		CPR_ASSERT_EQ(b->index, a->index,
			      "fd record %u ('%s') came back from the serialised state with another index: out of order",
			      i, a->name);
	}

	/* Cleaning every handler fd up leaves the irqfd ones, in order. */
	for (v = 0; v < VECTORS; v++)
		CPR_ASSERT_OK(cpr_state_delete_fd(back, "dev_interrupt", v),
			      "deleting 'dev_interrupt'[%u] from the parsed state",
			      v);
	CPR_ASSERT_EQ(cpr_state_nr_fds(back), 1u * VECTORS,
		      "%u of %u fd records deleted, but the state counts otherwise",
		      VECTORS, 2 * VECTORS);
	for (v = 0; v < VECTORS; v++) {
		const struct cpr_fd_rec *rec = cpr_state_fd_at(back, v);

		CPR_ASSERT_TRUE(!strcmp(rec->name, "dev_kvm_interrupt"),
				"entry %u after the deletes is '%s', not 'dev_kvm_interrupt'",
				v, rec->name);
		CPR_ASSERT_EQ(rec->index, v,
			      "entry %u after the deletes has the wrong index: out of order",
			      v);
		CPR_ASSERT_EQ(cpr_state_find_fd(back, "dev_interrupt", v), -1,
			      "the deleted 'dev_interrupt'[%u] is still found", v);
	}

	cpr_state_free(back);
	cpr_state_free(st);
	for (i = 0; i < POOL; i++)
		close(pool[i]);
}

TEST(serialise_and_parse_keep_every_record_byte_for_byte)
{
	struct cpr_state *st = cpr_test_state_new(), *back;
	unsigned char big[1000], one = 0x5a;
	const void *d1, *d2;
	const char *n1, *n2;
	char long_name[CPR_NAME_MAX + 1];
	void *buf, *again;
	size_t len, len2, l1, l2;
	int efd = new_eventfd();
	int mfd = memfd_with("", 0, 0);
	int pipefd[2];
	unsigned int i;

	CPR_ASSERT_SYS(pipe2(pipefd, O_CLOEXEC), "creating a pipe");
	for (i = 0; i < sizeof(big); i++)
		big[i] = i * 37 + (i >> 3);
	memset(long_name, 'L', CPR_NAME_MAX);
	long_name[CPR_NAME_MAX] = '\0';

	cpr_test_save_fd(st, "dev_interrupt", 0, efd);
	cpr_test_set_section(st, "dev_msi", big, sizeof(big));
	cpr_test_save_fd(st, "dev_ram", 0xffffffffu, mfd);
	cpr_test_set_section(st, "empty", NULL, 0);
	cpr_test_save_fd(st, long_name, 1, pipefd[1]);
	cpr_test_set_section(st, long_name, &one, 1);
	cpr_test_set_u64(st, "cpr.generation", 3);

	cpr_test_state_to_buf(st, &buf, &len);
	CPR_ASSERT_EQ(len % 8, 0u,
		      "the serialised state's length %zu is not a multiple of 8",
		      len);
	CPR_ASSERT_EQ(memcmp(buf, "VFIOCPR", 8), 0,
		      "the serialised state does not start with the magic \"VFIOCPR\"");
	back = expect_parsed(buf, len, CPR_PARSE_CHECK_FDS);

	CPR_ASSERT_EQ(cpr_state_nr_fds(back), cpr_state_nr_fds(st),
		      "the parsed state holds another number of fd records than the one serialised");
	for (i = 0; i < cpr_state_nr_fds(st); i++) {
		const struct cpr_fd_rec *a = cpr_state_fd_at(st, i);
		const struct cpr_fd_rec *b = cpr_state_fd_at(back, i);

		CPR_ASSERT_TRUE(!strcmp(a->name, b->name),
				"fd record %u came back named '%s', not '%s'",
				i, b->name, a->name);
		CPR_ASSERT_EQ(b->index, a->index,
			      "fd record %u ('%s') came back with another index",
			      i, a->name);
		CPR_ASSERT_EQ(b->fd, a->fd,
			      "fd record %u ('%s') came back with another fd",
			      i, a->name);
		CPR_ASSERT_EQ(b->kind, a->kind,
			      "fd record %u ('%s') lost its kind: %s, not %s",
			      i, a->name, cpr_fd_kind_name(b->kind),
			      cpr_fd_kind_name(a->kind));
	}
	CPR_ASSERT_EQ(cpr_state_nr_sections(back), 4u,
		      "four sections serialised, but the parsed state holds another number");
	for (i = 0; i < 4; i++) {
		CPR_ASSERT_OK(cpr_state_section_at(st, i, &n1, &d1, &l1),
			      "reading section %u of the state serialised", i);
		CPR_ASSERT_OK(cpr_state_section_at(back, i, &n2, &d2, &l2),
			      "reading section %u of the parsed state", i);
		CPR_ASSERT_TRUE(!strcmp(n1, n2),
				"section %u came back named '%s', not '%s'",
				i, n2, n1);
		CPR_ASSERT_EQ(l2, l1, "section '%s' came back at another length",
			      n1);
		CPR_ASSERT_EQ(memcmp(d1, d2, l1), 0,
			      "section '%s' changed on the way", n1);
	}

	/* One state, one encoding: written again it is the same bytes. */
	cpr_test_state_to_buf(back, &again, &len2);
	CPR_ASSERT_EQ(len2, len,
		      "a parsed state serialises to another length");
	CPR_ASSERT_EQ(memcmp(buf, again, len), 0,
		      "a parsed state serialises to other bytes");
	free(again);
	free(buf);
	cpr_state_free(back);
	cpr_state_free(st);

	/* An empty store is a valid state too. */
	st = cpr_test_state_new();
	cpr_test_state_to_buf(st, &buf, &len);
	CPR_ASSERT_EQ(len, 32u,
		      "an empty store does not serialise to a bare 32-byte header");
	back = expect_parsed(buf, len, CPR_PARSE_CHECK_FDS);
	CPR_ASSERT_EQ(cpr_state_nr_fds(back), 0u,
		      "an empty state parsed into fd records");
	CPR_ASSERT_EQ(cpr_state_nr_sections(back), 0u,
		      "an empty state parsed into sections");
	cpr_state_free(back);
	cpr_state_free(st);
	free(buf);
	close(efd);
	close(mfd);
	close(pipefd[0]);
	close(pipefd[1]);
}

/* @ret: what letting @what the sealed state memfd gave; @seal forbids it. */
static void assert_eperm(long ret, const char *seal, const char *what)
{
	CPR_ASSERT_EQ(ret, -1, "%s: the kernel let %s the sealed state memfd",
		      seal, what);
	CPR_ASSERT_EQ(errno, EPERM,
		      "%s: the kernel refused to let %s the sealed state memfd, but with errno %d, not EPERM",
		      seal, what, errno);
}

TEST(state_memfd_is_sealed_against_every_change)
{
	struct cpr_state *st = cpr_test_state_new(), *back = NULL;
	enum cpr_state_error why;
	int efd = new_eventfd();
	int memfd = -1, flags;
	struct stat sb;
	size_t len;
	ssize_t n;
	void *buf, *map, *inside;

	cpr_test_save_fd(st, "dev_interrupt", 0, efd);
	cpr_test_set_u64(st, "cpr.generation", 1);
	cpr_test_state_to_buf(st, &buf, &len);
	CPR_ASSERT_OK(cpr_state_to_memfd(st, &memfd),
		      "serialising a state into a memfd");

	assert_kind(memfd, CPR_FD_MEMFD, "the state memfd");
	flags = fcntl(memfd, F_GETFD);
	CPR_ASSERT_TRUE(flags & FD_CLOEXEC,
			"the state memfd is not close-on-exec (fd flags %d)",
			flags);
	CPR_ASSERT_EQ(lseek(memfd, 0, SEEK_CUR), 0,
		      "the state memfd is not handed over at offset 0");
	CPR_ASSERT_EQ(fcntl(memfd, F_GET_SEALS), ALL_SEALS,
		      "the state memfd lacks seals");
	CPR_ASSERT_SYS(fstat(memfd, &sb), "fstat of the state memfd");
	CPR_ASSERT_EQ(sb.st_size, (off_t)len,
		      "the state memfd is not the size of the serialised state");
	inside = malloc(len);
	CPR_ASSERT_TRUE(inside, "allocating %zu bytes", len);
	n = pread(memfd, inside, len, 0);
	CPR_ASSERT_SYS(n, "reading the state memfd");
	CPR_ASSERT_EQ(n, (ssize_t)len,
		      "the state memfd gave fewer bytes than the serialised state holds");
	CPR_ASSERT_EQ(memcmp(buf, inside, len), 0,
		      "the state memfd does not hold the serialised state");
	free(inside);

	/* The kernel must refuse every change. */
	assert_eperm(write(memfd, "x", 1), "F_SEAL_WRITE", "write() change");
	assert_eperm(pwrite(memfd, "x", 1, 0), "F_SEAL_WRITE",
		     "pwrite() change");
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	CPR_ASSERT_TRUE(map == MAP_FAILED,
			"F_SEAL_WRITE: the kernel allowed a shared writable map of the sealed state memfd");
	CPR_ASSERT_EQ(errno, EPERM,
		      "F_SEAL_WRITE: the kernel refused a shared writable map of the sealed state memfd with errno %d, not EPERM",
		      errno);
	assert_eperm(ftruncate(memfd, len + 4096), "F_SEAL_GROW",
		     "ftruncate() grow");
	assert_eperm(fallocate(memfd, 0, len, 4096), "F_SEAL_GROW",
		     "fallocate() grow");
	assert_eperm(ftruncate(memfd, 8), "F_SEAL_SHRINK",
		     "ftruncate() shrink");
	assert_eperm(fcntl(memfd, F_ADD_SEALS, F_SEAL_WRITE), "F_SEAL_SEAL",
		     "F_ADD_SEALS add a seal to");
	CPR_ASSERT_SYS(fstat(memfd, &sb), "fstat of the state memfd");
	CPR_ASSERT_EQ(sb.st_size, (off_t)len,
		      "the sealed state memfd changed size");

	/* And the successor takes it in, fds checked. */
	CPR_ASSERT_OK(cpr_state_from_memfd(memfd, CPR_PARSE_CHECK_FDS, &back,
					   &why),
		      "a sealed state memfd was refused");
	CPR_ASSERT_EQ(why, CPR_STATE_OK,
		      "a sealed state memfd was taken with a refusal reason set (\"%s\")",
		      cpr_state_error_name(why));
	CPR_ASSERT_EQ(cpr_state_find_fd(back, "dev_interrupt", 0), efd,
		      "'dev_interrupt'[0] came back from the state memfd with another fd");

	cpr_state_free(back);
	cpr_state_free(st);
	free(buf);
	close(memfd);
	close(efd);
}

/* Load @fd, which is @what, as a state: refused for @want_why saying @word. */
static void expect_fd_refused(const char *what, int fd,
			      enum cpr_state_error want_why, int want_ret,
			      const char *word)
{
	enum cpr_state_error why = CPR_STATE_OK;
	struct cpr_state *out = UNTOUCHED;
	char fdnum[16];
	int ret;

	cpr_log_set_quiet(true);
	ret = cpr_state_from_memfd(fd, 0, &out, &why);
	cpr_log_set_quiet(false);
	CPR_ASSERT_NE(ret, 0, "a state was loaded from %s (fd %d)", what, fd);
	CPR_ASSERT_EQ(ret, want_ret,
		      "loading a state from %s (fd %d) was refused with %d, not %d (\"%s\")",
		      what, fd, ret, want_ret, cpr_last_error());
	CPR_ASSERT_EQ(why, want_why,
		      "loading a state from %s (fd %d) was refused as \"%s\", not as \"%s\"",
		      what, fd, cpr_state_error_name(why),
		      cpr_state_error_name(want_why));
	CPR_ASSERT_TRUE(said(word),
			"the refusal to load a state from %s does not say \"%s\": \"%s\"",
			what, word, cpr_last_error());
	snprintf(fdnum, sizeof(fdnum), "fd %d", fd);
	CPR_ASSERT_TRUE(said(fdnum),
			"the refusal to load a state from %s does not name %s: \"%s\"",
			what, fdnum, cpr_last_error());
	CPR_ASSERT_TRUE(out == UNTOUCHED,
			"the refused load of a state from %s wrote *out", what);
}

TEST(state_fd_must_be_a_memfd_with_all_four_seals)
{
	static const struct {
		int seal;
		const char *name;
	} seals[] = {
		{ F_SEAL_WRITE, "F_SEAL_WRITE" },
		{ F_SEAL_GROW, "F_SEAL_GROW" },
		{ F_SEAL_SHRINK, "F_SEAL_SHRINK" },
		{ F_SEAL_SEAL, "F_SEAL_SEAL" },
	};
	char path[] = "/tmp/cpr_state_test.XXXXXX";
	int efd = new_eventfd();
	int fd, pipefd[2];
	char what[64];
	unsigned int i;
	size_t len;
	ssize_t n;
	void *buf;

	small_state(efd, &buf, &len);

	fd = memfd_with(buf, len, 0);
	expect_fd_refused("a memfd without seals", fd, CPR_STATE_ENOT_SEALED,
			  -EBADFD, "not sealed");
	close(fd);
	for (i = 0; i < 4; i++) {
		fd = memfd_with(buf, len, ALL_SEALS & ~seals[i].seal);
		snprintf(what, sizeof(what), "a memfd without %s",
			 seals[i].name);
		expect_fd_refused(what, fd, CPR_STATE_ENOT_SEALED, -EBADFD,
				  seals[i].name);
		expect_fd_refused(what, fd, CPR_STATE_ENOT_SEALED, -EBADFD,
				  "not sealed");
		close(fd);
	}

	fd = mkstemp(path);
	CPR_ASSERT_SYS(fd, "creating a temporary file from %s", path);
	unlink(path);
	n = write(fd, buf, len);
	CPR_ASSERT_SYS(n, "writing %zu bytes into a temporary file", len);
	CPR_ASSERT_EQ(n, (ssize_t)len,
		      "a temporary file took only part of the %zu bytes written",
		      len);
	expect_fd_refused("a regular file", fd, CPR_STATE_ENOT_MEMFD, -EBADFD,
			  "not a memfd");
	close(fd);

	CPR_ASSERT_SYS(pipe2(pipefd, O_CLOEXEC), "creating a pipe");
	expect_fd_refused("a pipe", pipefd[0], CPR_STATE_ENOT_MEMFD, -EBADFD,
			  "not a memfd");
	expect_fd_refused("a closed fd", pipefd[0] + 100, CPR_STATE_ENOT_MEMFD,
			  -EBADF, "not a memfd");
	close(pipefd[0]);
	close(pipefd[1]);
	free(buf);
	close(efd);
}

TEST(every_truncated_prefix_is_refused)
{
	int efd = new_eventfd();
	struct cpr_state *st;
	char what[80];
	size_t len, n;
	void *buf;

	small_state(efd, &buf, &len);
	for (n = 0; n < len; n++) {
		snprintf(what, sizeof(what), "only its first %zu of %zu bytes",
			 n, len);
		expect_refused(what, buf, n, 0, CPR_STATE_ETRUNCATED, -EBADMSG,
			       "truncated");
	}
	st = expect_parsed(buf, len, 0);
	cpr_state_free(st);
	free(buf);
	close(efd);
}

TEST(bad_magic_is_refused)
{
	int efd = new_eventfd();
	unsigned char *p;
	char what[64];
	size_t len, i;
	void *buf;

	small_state(efd, &buf, &len);
	p = buf;
	for (i = 0; i < 8; i++) {
		p[i] ^= 0x20;
		fix_checksum(p, len);
		snprintf(what, sizeof(what), "magic byte %zu changed", i);
		expect_refused(what, p, len, 0, CPR_STATE_EMAGIC, -EBADMSG,
			       "magic");
		p[i] ^= 0x20;
	}
	free(buf);
	close(efd);
}

TEST(unknown_version_is_refused)
{
	static const __u32 versions[] = { 0, 2, 0x100, 0xffffffffu };
	int efd = new_eventfd();
	unsigned char *p;
	char what[64];
	size_t len, i;
	void *buf;

	small_state(efd, &buf, &len);
	p = buf;
	for (i = 0; i < ARRAY_SIZE(versions); i++) {
		put32(p, W_VERSION, versions[i]);
		fix_checksum(p, len);
		snprintf(what, sizeof(what), "version %u", versions[i]);
		expect_refused(what, p, len, 0, CPR_STATE_EVERSION,
			       -EPROTONOSUPPORT, "version");
	}
	free(buf);
	close(efd);
}

TEST(any_changed_record_byte_fails_the_checksum)
{
	int efd = new_eventfd();
	unsigned char *p;
	char what[80];
	size_t len, i;
	void *buf;

	small_state(efd, &buf, &len);
	p = buf;
	for (i = W_HDR_LEN; i < len; i++) {
		p[i] ^= 0x01;
		snprintf(what, sizeof(what),
			 "byte %zu flipped (the checksum no longer matching)", i);
		expect_refused(what, p, len, 0, CPR_STATE_ECHECKSUM, -EBADMSG,
			       "checksum");
		p[i] ^= 0x01;
	}
	p[W_CHECKSUM] ^= 0x80;
	expect_refused("its checksum field flipped", p, len, 0,
		       CPR_STATE_ECHECKSUM, -EBADMSG, "checksum");
	free(buf);
	close(efd);
}

TEST(duplicate_names_are_refused)
{
	struct cpr_state *st;
	struct raw r;

	/* Same name, other index: two vectors, fine. */
	raw_begin(&r);
	raw_fd(&r, "dev_interrupt", 0, 10, CPR_FD_EVENTFD);
	raw_fd(&r, "dev_interrupt", 1, 11, CPR_FD_EVENTFD);
	raw_end(&r);
	st = expect_parsed(r.buf, r.len, 0);
	CPR_ASSERT_EQ(cpr_state_find_fd(st, "dev_interrupt", 1), 11,
		      "'dev_interrupt'[1], recorded as fd 11 beside [0], does not give fd 11");
	cpr_state_free(st);

	raw_begin(&r);
	raw_fd(&r, "dev_interrupt", 0, 10, CPR_FD_EVENTFD);
	raw_section(&r, "dev_msi", "abc", 3);
	raw_fd(&r, "dev_interrupt", 0, 12, CPR_FD_EVENTFD);
	raw_end(&r);
	expect_refused("the same fd record twice", r.buf, r.len, 0,
		       CPR_STATE_EDUPLICATE, -EBADMSG, "duplicate");
	CPR_ASSERT_TRUE(said("'dev_interrupt'[0]"),
			"the refusal of a duplicate fd record does not name it ('dev_interrupt'[0]): \"%s\"",
			cpr_last_error());

	raw_begin(&r);
	raw_section(&r, "dev_msi", "abc", 3);
	raw_fd(&r, "dev_msi", 0, 10, CPR_FD_EVENTFD);
	raw_section(&r, "dev_msi", "abcdefgh", 8);
	raw_end(&r);
	expect_refused("the same section twice", r.buf, r.len, 0,
		       CPR_STATE_EDUPLICATE, -EBADMSG, "duplicate");
	CPR_ASSERT_TRUE(said("'dev_msi'"),
			"the refusal of a duplicate section does not name it ('dev_msi'): \"%s\"",
			cpr_last_error());
}

/*
 * The base for the malformed states below:
 *   0   header
 *   32  fd record "dev_interrupt"[3] = fd 0 (eventfd), 40 bytes:
 *       type 32, rec_len 36, index 40, fd 44, kind 48, name_len 52,
 *       name 56..68, padding 69..71
 *   72  section "dev_msi", 16 bytes of data, 40 bytes:
 *       type 72, rec_len 76, data_len 80, name_len 84, name 88..94,
 *       data 95..110, padding 111
 *   112 end
 */
static void base_state(struct raw *r)
{
	static const unsigned char msi[16] = { 1, 2, 3, 4, 5, 6, 7, 8,
					       9, 10, 11, 12, 13, 14, 15, 16 };

	raw_begin(r);
	raw_fd(r, "dev_interrupt", 3, 0, CPR_FD_EVENTFD);
	raw_section(r, "dev_msi", msi, sizeof(msi));
	raw_end(r);
}

struct bad_field {
	const char *what;
	size_t off;
	int width;		/* 1, 4 or 8 bytes */
	__u64 value;
	enum cpr_state_error why;
	const char *word;
};

static const struct bad_field bad_fields[] = {
	{ "nr_records 0xffffffff", W_NR_RECORDS, 4, 0xffffffffu,
	  CPR_STATE_ELENGTH, "nr_records" },
	{ "nr_records one more than there are", W_NR_RECORDS, 4, 3,
	  CPR_STATE_EOVERRUN, "overruns" },
	{ "nr_records one less: trailing bytes", W_NR_RECORDS, 4, 1,
	  CPR_STATE_ELENGTH, "trailing" },
	{ "total_len 2^64 - 1", W_TOTAL_LEN, 8, ~0ull,
	  CPR_STATE_ELENGTH, "total_len" },
	{ "total_len 2^40", W_TOTAL_LEN, 8, 1ull << 40,
	  CPR_STATE_ELENGTH, "total_len" },
	{ "total_len shorter than a header", W_TOTAL_LEN, 8, 8,
	  CPR_STATE_ELENGTH, "total_len" },
	{ "total_len not a multiple of 8", W_TOTAL_LEN, 8, 111,
	  CPR_STATE_ELENGTH, "total_len" },
	{ "total_len short of the buffer", W_TOTAL_LEN, 8, 72,
	  CPR_STATE_ELENGTH, "stray" },
	{ "header_len 0", W_HEADER_LEN, 4, 0, CPR_STATE_ELENGTH, "header_len" },
	{ "header_len 0xffffffff", W_HEADER_LEN, 4, 0xffffffffu,
	  CPR_STATE_ELENGTH, "header_len" },
	{ "header_len 40", W_HEADER_LEN, 4, 40,
	  CPR_STATE_ELENGTH, "header_len" },
	{ "record type 0", 32, 4, 0, CPR_STATE_ERECORD, "type" },
	{ "record type 3", 72, 4, 3, CPR_STATE_ERECORD, "type" },
	{ "rec_len 0", 36, 4, 0, CPR_STATE_ERECORD, "length" },
	{ "rec_len 41, misaligned", 36, 4, 41, CPR_STATE_ERECORD, "length" },
	{ "rec_len 16, below the fd fixed part", 36, 4, 16,
	  CPR_STATE_ERECORD, "fixed part" },
	{ "rec_len 8, below the section fixed part", 76, 4, 8,
	  CPR_STATE_ERECORD, "fixed part" },
	{ "rec_len 32, name past the record", 36, 4, 32,
	  CPR_STATE_ERECORD, "run past" },
	{ "rec_len 80, slack after the name", 36, 4, 80,
	  CPR_STATE_ERECORD, "contents take" },
	{ "rec_len 0xfffffff8, past the buffer", 36, 4, 0xfffffff8u,
	  CPR_STATE_EOVERRUN, "overruns" },
	{ "section rec_len 48, past the buffer", 76, 4, 48,
	  CPR_STATE_EOVERRUN, "overruns" },
	{ "name_len 0", 52, 4, 0, CPR_STATE_ERECORD, "name length" },
	{ "name_len 256", 52, 4, 256, CPR_STATE_ERECORD, "name length" },
	{ "name_len 0xffffffff", 52, 4, 0xffffffffu,
	  CPR_STATE_ERECORD, "name length" },
	{ "name_len 14, taking a NUL in", 52, 4, 14, CPR_STATE_ERECORD, "NUL" },
	{ "name_len 12, leaving a name byte as padding", 52, 4, 12,
	  CPR_STATE_ERECORD, "padding" },
	{ "NUL inside a name", 59, 1, 0, CPR_STATE_ERECORD, "NUL" },
	{ "padding not zero", 70, 1, 0xff, CPR_STATE_ERECORD, "padding" },
	{ "fd kind CPR_FD_KIND_MAX", 48, 4, CPR_FD_KIND_MAX,
	  CPR_STATE_ERECORD, "kind" },
	{ "fd kind 0xffffffff", 48, 4, 0xffffffffu,
	  CPR_STATE_ERECORD, "kind" },
	{ "fd -1", 44, 4, 0xffffffffu, CPR_STATE_ERECORD, "negative fd" },
	{ "section name_len 0", 84, 4, 0, CPR_STATE_ERECORD, "name length" },
	{ "section data_len 18, past the record", 80, 4, 18,
	  CPR_STATE_ERECORD, "run past" },
	{ "section data_len 0xffffffff", 80, 4, 0xffffffffu,
	  CPR_STATE_ERECORD, "more than" },
	{ "section data_len over CPR_SECTION_MAX", 80, 4,
	  CPR_SECTION_MAX + 1ull, CPR_STATE_ERECORD, "more than" },
};

TEST(absurd_lengths_and_malformed_records_are_refused)
{
	struct cpr_state *st;
	unsigned int i;
	struct raw r;

	base_state(&r);
	CPR_ASSERT_EQ(r.len, 112u,
		      "the base state is not laid out as this test describes it");
	st = expect_parsed(r.buf, r.len, 0);
	CPR_ASSERT_EQ(cpr_state_find_fd(st, "dev_interrupt", 3), 0,
		      "the base state's 'dev_interrupt'[3] does not give fd 0");
	cpr_state_free(st);

	for (i = 0; i < ARRAY_SIZE(bad_fields); i++) {
		const struct bad_field *b = &bad_fields[i];

		base_state(&r);
		if (b->width == 1)
			r.buf[b->off] = b->value;
		else if (b->width == 4)
			put32(r.buf, b->off, b->value);
		else
			put64(r.buf, b->off, b->value);
		/* A consistent checksum: the check under test is reached. */
		fix_checksum(r.buf, r.len);
		expect_refused(b->what, r.buf, r.len, 0, b->why, -EBADMSG,
			       b->word);
	}

	/* Bytes after total_len. */
	base_state(&r);
	expect_refused("8 bytes past its total_len", r.buf, r.len + 8, 0,
		       CPR_STATE_ELENGTH, -EBADMSG, "stray");
	/* A zeroed record after the last: a length of 0. */
	base_state(&r);
	CPR_ASSERT_EQ(get32(r.buf, 72), (__u32)W_REC_SECTION,
		      "the base state has no section record at byte 72, as this test describes it");
	put32(r.buf, 76, 40);
	put32(r.buf, W_NR_RECORDS, 3);
	put64(r.buf, W_TOTAL_LEN, 112 + 8);
	fix_checksum(r.buf, 112 + 8);
	expect_refused("a zeroed record at the end", r.buf, 120, 0,
		       CPR_STATE_ERECORD, -EBADMSG, "length 0");
}

TEST(random_corruption_is_refused_cleanly_or_reencodes_exactly)
{
	unsigned int seed = 42, iter, nr_ok = 0;
	unsigned char *copy;
	struct raw r;

	/* Any mix of changes either fails cleanly or is canonical. */
	for (iter = 0; iter < 20000; iter++) {
		enum cpr_state_error why;
		struct cpr_state *st = NULL;
		unsigned int k, flips = 1 + rand_r(&seed) % 4;
		size_t len, len2;
		void *again;
		int ret;

		base_state(&r);
		for (k = 0; k < flips; k++) {
			size_t at = W_VERSION + rand_r(&seed) % (r.len - 8);
			unsigned int how = rand_r(&seed) % 3;

			if (how == 0)
				r.buf[at] ^= 1u << (rand_r(&seed) % 8);
			else if (how == 1)
				r.buf[at] = rand_r(&seed);
			else
				r.buf[at] = 0;
		}
		len = r.len - (rand_r(&seed) % 4 == 0 ? 8 : 0);
		fix_checksum(r.buf, len);
		copy = malloc(len);
		CPR_ASSERT_TRUE(copy, "allocating %zu bytes", len);
		memcpy(copy, r.buf, len);

		cpr_clear_error();
		cpr_log_set_quiet(true);
		ret = cpr_state_parse(copy, len, 0, &st, &why);
		cpr_log_set_quiet(false);
		if (ret) {
			CPR_ASSERT_NE(why, CPR_STATE_OK,
				      "iteration %u: a corrupted state was refused (%d) without a reason",
				      iter, ret);
			CPR_ASSERT_TRUE(ret == -EBADMSG ||
					ret == -EPROTONOSUPPORT,
					"iteration %u: a corrupted state was refused with %d, neither -EBADMSG nor -EPROTONOSUPPORT (\"%s\")",
					iter, ret, cpr_last_error());
			CPR_ASSERT_NE(cpr_last_error()[0], 0,
				      "iteration %u: a corrupted state was refused as \"%s\" without a message",
				      iter, cpr_state_error_name(why));
			free(copy);
			continue;
		}
		nr_ok++;
		CPR_ASSERT_OK(cpr_state_to_buf(st, &again, &len2),
			      "iteration %u: serialising a corrupted state that was accepted",
			      iter);
		CPR_ASSERT_EQ(len2, len,
			      "iteration %u: accepted bytes re-encode to another length",
			      iter);
		CPR_ASSERT_EQ(memcmp(copy, again, len), 0,
			      "iteration %u: accepted bytes re-encode differently",
			      iter);
		free(again);
		free(copy);
		cpr_state_free(st);
	}
	TH_LOG("%u of 20000 corrupted states were still valid", nr_ok);
}

TEST(recorded_fd_must_still_be_open)
{
	enum cpr_state_error why;
	struct cpr_state *st;
	size_t len;
	void *buf;
	int efd = new_eventfd();

	small_state(efd, &buf, &len);
	close(efd);

	/* Without the check, the fd number is just data ... */
	st = expect_parsed(buf, len, 0);
	CPR_ASSERT_EQ(cpr_state_find_fd(st, "dev_kvm_interrupt", 3), efd,
		      "'dev_kvm_interrupt'[3] of a state loaded without the fd check does not give its recorded fd %d",
		      efd);
	/* ... until it is checked on the loaded state. */
	cpr_log_set_quiet(true);
	CPR_ASSERT_EQ(cpr_state_check_fds(st, &why), -EBADF,
		      "checking the fds of a loaded state did not refuse its recorded fd %d, closed, with -EBADF",
		      efd);
	cpr_log_set_quiet(false);
	CPR_ASSERT_EQ(why, CPR_STATE_EFD_CLOSED,
		      "the check of a loaded state refused its closed fd as \"%s\", not as \"%s\"",
		      cpr_state_error_name(why),
		      cpr_state_error_name(CPR_STATE_EFD_CLOSED));
	CPR_ASSERT_TRUE(said("fd record 'dev_kvm_interrupt'[3]"),
			"the check's refusal of a closed fd does not name the record 'dev_kvm_interrupt'[3]: \"%s\"",
			cpr_last_error());
	cpr_state_free(st);

	expect_refused("its recorded fd closed", buf, len, CPR_PARSE_CHECK_FDS,
		       CPR_STATE_EFD_CLOSED, -EBADF, "not open");
	CPR_ASSERT_TRUE(said("'dev_kvm_interrupt'[3]"),
			"the refusal of a state whose recorded fd is closed does not name the record 'dev_kvm_interrupt'[3]: \"%s\"",
			cpr_last_error());
	free(buf);
}

TEST(recorded_fd_must_still_be_of_its_kind)
{
	enum cpr_state_error why;
	int efd = new_eventfd();
	struct cpr_state *st;
	char expect[96];
	size_t len;
	void *buf;
	int mfd;

	small_state(efd, &buf, &len);
	/* The eventfd's number now holds a memfd. */
	mfd = memfd_with("", 0, 0);
	CPR_ASSERT_SYS(dup2(mfd, efd),
		       "putting a memfd in place of eventfd %d", efd);
	close(mfd);

	snprintf(expect, sizeof(expect),
		 "fd record 'dev_kvm_interrupt'[3]: fd %d is a memfd, recorded as eventfd",
		 efd);
	/* Checked after the load: the same refusal, the same words. */
	st = expect_parsed(buf, len, 0);
	cpr_log_set_quiet(true);
	CPR_ASSERT_EQ(cpr_state_check_fds(st, &why), -EBADFD,
		      "checking the fds of a loaded state did not refuse a memfd recorded as an eventfd (fd %d) with -EBADFD",
		      efd);
	cpr_log_set_quiet(false);
	CPR_ASSERT_EQ(why, CPR_STATE_EFD_KIND,
		      "the check of a loaded state refused an fd of another kind as \"%s\", not as \"%s\"",
		      cpr_state_error_name(why),
		      cpr_state_error_name(CPR_STATE_EFD_KIND));
	CPR_ASSERT_TRUE(said(expect),
			"the check's refusal of an fd of another kind does not say \"%s\": \"%s\"",
			expect, cpr_last_error());
	cpr_state_free(st);
	expect_refused("its eventfd replaced by a memfd", buf, len,
		       CPR_PARSE_CHECK_FDS, CPR_STATE_EFD_KIND, -EBADFD, "kind");
	CPR_ASSERT_TRUE(said(expect),
			"the refusal of a state whose eventfd is now a memfd does not say \"%s\": \"%s\"",
			expect, cpr_last_error());
	free(buf);
	close(efd);
}

TEST(refusal_reasons_have_names)
{
	const char *name;
	int e;

	for (e = 0; e < CPR_STATE_ERROR_MAX; e++) {
		name = cpr_state_error_name(e);
		CPR_ASSERT_TRUE(name, "refusal reason %d has no name", e);
		CPR_ASSERT_TRUE(strcmp(name, "invalid"),
				"refusal reason %d is named \"invalid\", the name of no reason",
				e);
	}
	assert_same_name(cpr_state_error_name(CPR_STATE_ERROR_MAX), "invalid",
			 "the refusal reason CPR_STATE_ERROR_MAX");
	assert_same_name(cpr_state_error_name(CPR_STATE_ETRUNCATED),
			 "truncated", "the refusal reason CPR_STATE_ETRUNCATED");
}

/*
 * A library error wrapped in the next (cpr_err(..., "...: %s",
 * cpr_last_error())): the inner text intact, errno named once.
 */
TEST(a_wrapped_error_keeps_its_text_and_names_errno_once)
{
	const char *want =
		"exec into generation 2: reading the state: Connection reset by peer (errno 104)";

	cpr_log_set_quiet(true);
	cpr_err(-ECONNRESET, "reading the state");
	cpr_err(-ECONNRESET, "exec into generation %d: %s", 2,
		cpr_last_error());
	cpr_log_set_quiet(false);
	CPR_ASSERT_TRUE(!strcmp(cpr_last_error(), want),
			"the library's wrapped error reads \"%s\", not \"%s\"",
			cpr_last_error(), want);
	cpr_log_set_quiet(true);
	cpr_err(-EIO, "re-attaching: %s", "the successor failed");
	cpr_log_set_quiet(false);
	CPR_ASSERT_TRUE(!strcmp(cpr_last_error(),
				"re-attaching: the successor failed: Input/output error (errno 5)"),
			"an error without errno text got \"%s\"", cpr_last_error());
}

/* ---- A vector set through the state ---- */

#define VDEV		"0000:00:05.0"
#define VSEC		VDEV "_msi"
/* The "<dev>_msi" section, written out again: a header, 16 bytes a vector. */
#define VSEC_HDR	16
#define VSEC_VEC	16

/* Serialise @st, parse it back (fds checked) and claim @VDEV's vectors. */
static struct cpr_vectors *claim_back(struct cpr_state *st,
				      struct cpr_state **back)
{
	struct cpr_vectors *vs = NULL;
	size_t len;
	void *buf;

	cpr_test_state_to_buf(st, &buf, &len);
	*back = expect_parsed(buf, len, CPR_PARSE_CHECK_FDS);
	free(buf);
	CPR_ASSERT_OK(cpr_vectors_claim(*back, VDEV, NULL, &vs),
		      "claiming the vector set back from a serialised state failed");
	return vs;
}

/* @got holds exactly @want's entries, table size, fds and vector state. */
static void assert_same_set(const struct cpr_vectors *got,
			    const struct cpr_vectors *want)
{
	unsigned int i;

	CPR_ASSERT_EQ(got->table_size, want->table_size,
		      "the claimed set's table size is not the saved one");
	CPR_ASSERT_EQ(got->nr, want->nr,
		      "%u vectors claimed of the %u saved (table of %u)",
		      got->nr, want->nr, want->table_size);
	for (i = 0; i < want->nr; i++) {
		const struct cpr_vector *g = &got->v[i], *w = &want->v[i];

		CPR_ASSERT_EQ(g->entry, w->entry,
			      "claimed vector %u is entry %u, saved as entry %u",
			      i, g->entry, w->entry);
		CPR_ASSERT_EQ(g->kvm_fd, w->kvm_fd,
			      "entry %u was claimed with another kvm_interrupt fd than it was saved with",
			      w->entry);
		CPR_ASSERT_EQ(g->interrupt_fd, w->interrupt_fd,
			      "entry %u was claimed with another interrupt fd than it was saved with",
			      w->entry);
		CPR_ASSERT_TRUE(!memcmp(&g->msg, &w->msg, sizeof(g->msg)) &&
				g->masked == w->masked &&
				g->pending == w->pending &&
				g->lapic_pending == w->lapic_pending,
				"entry %u lost its message, mask or pending bits across the state",
				w->entry);
	}
}

static void close_set_fds(struct cpr_vectors *vs)
{
	unsigned int i;

	for (i = 0; i < vs->nr; i++) {
		close(vs->v[i].interrupt_fd);
		close(vs->v[i].kvm_fd);
	}
}

TEST(vector_set_is_claimed_by_entry_through_the_state)
{
	static const unsigned int entries[] = { 0, 1, 700, 1400, 2047 };
	struct cpr_state *st = cpr_test_state_new(), *back;
	struct cpr_vectors *vs, *got;
	const __u32 *sec;
	size_t len;
	int pos;

	CPR_ASSERT_OK(cpr_vectors_create_entries(st, VDEV, CPR_IRQ_MSIX, 2048,
						 entries, ARRAY_SIZE(entries),
						 CPR_VEC_INTERRUPT | CPR_VEC_KVM,
						 &vs),
		      "making a set of entries 0, 1, 700, 1400 and 2047 of 2048 failed");
	CPR_ASSERT_EQ(cpr_state_find_fd(st, VDEV "_kvm_interrupt", 2047),
		      vs->v[4].kvm_fd,
		      "entry 2047's kvm_interrupt fd is not saved under index 2047");
	CPR_ASSERT_EQ(cpr_state_find_fd(st, VDEV "_interrupt", 2), -1,
		      "an fd was saved under index 2, an entry not in use");
	pos = cpr_vectors_find(vs, 1400);
	CPR_ASSERT_EQ(pos, 3, "cpr_vectors_find() of entry 1400");
	CPR_ASSERT_EQ(cpr_vectors_find(vs, 2), -ENOENT,
		      "cpr_vectors_find() found entry 2, which is not in use");
	vs->v[3].masked = true;
	vs->v[3].pending = true;
	vs->v[4].lapic_pending = true;
	vs->v[2].msg = cpr_msi_msg_make(0, 0x77);
	CPR_ASSERT_OK(cpr_vectors_save(vs), "saving the sparse set failed");

	sec = cpr_state_get_section(st, VSEC, &len);
	CPR_ASSERT_TRUE(sec, "no section '%s' after the save", VSEC);
	CPR_ASSERT_EQ(len, (size_t)VSEC_HDR + 5 * (VSEC_VEC + 4),
		      "the section of 5 sparse vectors is not a header, 5 records and 5 entries long");
	CPR_ASSERT_TRUE(sec[0] == 2 && sec[2] == 5 && sec[3] == 2048,
			"the sparse set's section says version %u, %u vectors, a table of %u; want 2, 5, 2048",
			sec[0], sec[2], sec[3]);
	CPR_ASSERT_EQ(sec[4 + 5 * 4 + 4], 2047u,
		      "the section does not name entry 2047 last");

	got = claim_back(st, &back);
	assert_same_set(got, vs);
	CPR_ASSERT_TRUE(got->reused, "the claimed set is not marked reused");
	cpr_vectors_free(got, false);
	cpr_state_free(back);
	close_set_fds(vs);
	cpr_vectors_free(vs, false);
	cpr_state_free(st);
}

TEST(vectors_added_to_a_set_are_claimed_with_it)
{
	static const unsigned int entries[] = { 0, 1, 1024 };
	static const unsigned int more[] = { 2, 3, 2047 };
	struct cpr_state *st = cpr_test_state_new(), *back;
	struct cpr_vectors *vs, *got;
	int kvm1024;

	CPR_ASSERT_OK(cpr_vectors_create_entries(st, VDEV, CPR_IRQ_MSIX, 2048,
						 entries, ARRAY_SIZE(entries),
						 CPR_VEC_INTERRUPT | CPR_VEC_KVM,
						 &vs),
		      "making a set of entries 0, 1 and 1024 of 2048 failed");
	kvm1024 = vs->v[2].kvm_fd;
	CPR_ASSERT_OK(cpr_vectors_add(vs, more, ARRAY_SIZE(more),
				      CPR_VEC_INTERRUPT | CPR_VEC_KVM),
		      "adding entries 2, 3 and 2047 failed");
	CPR_ASSERT_TRUE(vs->nr == 6 && vs->v[2].entry == 2 &&
			vs->v[4].entry == 1024 && vs->v[5].entry == 2047,
			"the set after the addition is not entries 0-3, 1024, 2047 in order");
	CPR_ASSERT_EQ(vs->v[4].kvm_fd, kvm1024,
		      "entry 1024 moved in the set but lost its fd");
	CPR_ASSERT_EQ(cpr_state_find_fd(st, VDEV "_kvm_interrupt", 2047),
		      vs->v[5].kvm_fd,
		      "the added entry 2047's kvm_interrupt fd is not saved under index 2047");
	cpr_log_set_quiet(true);
	CPR_ASSERT_EQ(cpr_vectors_add(vs, more, 1, CPR_VEC_KVM), -EEXIST,
		      "adding entry 2 a second time was not refused as in use");
	CPR_ASSERT_EQ(cpr_vectors_add(vs, (const unsigned int[]){ 9, 5 }, 2,
				      CPR_VEC_KVM), -EINVAL,
		      "adding entries 9, 5 (not ascending) was not refused");
	cpr_log_set_quiet(false);
	CPR_ASSERT_EQ(vs->nr, 6u, "a refused addition changed the set");
	CPR_ASSERT_OK(cpr_vectors_save(vs), "saving the grown set failed");

	got = claim_back(st, &back);
	assert_same_set(got, vs);
	cpr_vectors_free(got, false);
	cpr_state_free(back);
	close_set_fds(vs);
	cpr_vectors_free(vs, false);
	cpr_state_free(st);
}

/*
 * Entries 0 .. nr - 1 keep the section's first layout, which successors
 * built before sparse sets claim; and a section such a predecessor wrote
 * (the table-size word reserved, 0) is claimed as entries 0 .. nr - 1.
 */
TEST(vector_set_from_entry_0_keeps_the_first_layout)
{
	struct cpr_state *st = cpr_test_state_new(), *back;
	struct cpr_vectors *vs, *got;
	unsigned char old[VSEC_HDR + 3 * VSEC_VEC] = { 0 };
	const __u32 *sec;
	unsigned int i;
	size_t len;

	CPR_ASSERT_OK(cpr_vectors_create_entries(st, VDEV, CPR_IRQ_MSIX, 64,
						 NULL, 4, CPR_VEC_KVM, &vs),
		      "making entries 0-3 of a table of 64 failed");
	CPR_ASSERT_OK(cpr_vectors_save(vs), "saving entries 0-3 failed");
	sec = cpr_state_get_section(st, VSEC, &len);
	CPR_ASSERT_TRUE(sec && len == VSEC_HDR + 4 * VSEC_VEC && sec[0] == 1 &&
			sec[3] == 64,
			"entries 0-3 of 64 were not saved as version 1 (%zu bytes, version %u, table %u)",
			len, sec ? sec[0] : 0, sec ? sec[3] : 0);
	got = claim_back(st, &back);
	assert_same_set(got, vs);
	cpr_vectors_free(got, false);
	cpr_state_free(back);

	/* As a predecessor without sparse sets wrote it. */
	put32(old, 0, 1);
	put32(old, 4, CPR_IRQ_MSIX);
	put32(old, 8, 3);
	for (i = 0; i < 3; i++) {
		put32(old, VSEC_HDR + i * VSEC_VEC, 0xfee00000);
		put32(old, VSEC_HDR + i * VSEC_VEC + 8, 0x40 + i);
	}
	cpr_test_set_section(st, VSEC, old, sizeof(old));
	got = claim_back(st, &back);
	CPR_ASSERT_TRUE(got->nr == 3 && got->table_size == 3 &&
			got->v[2].entry == 2 && got->v[2].msg.data == 0x42 &&
			got->v[2].kvm_fd == vs->v[2].kvm_fd,
			"a version 1 section of 3 vectors was not claimed as entries 0-2 of a table of 3 with their fds");
	cpr_vectors_free(got, false);
	cpr_state_free(back);
	close_set_fds(vs);
	cpr_vectors_free(vs, false);
	cpr_state_free(st);
}

/* A section naming entries out of order or outside its table. */
static void expect_section_refused(const char *what, __u32 table,
				   const __u32 *entries, unsigned int nr,
				   const char *word)
{
	unsigned char sec[VSEC_HDR + 4 * (VSEC_VEC + 4)] = { 0 };
	size_t len = VSEC_HDR + nr * (VSEC_VEC + 4);
	struct cpr_state *st = cpr_test_state_new();
	struct cpr_vectors *vs = NULL;
	unsigned int i;

	put32(sec, 0, 2);
	put32(sec, 4, CPR_IRQ_MSIX);
	put32(sec, 8, nr);
	put32(sec, 12, table);
	for (i = 0; i < nr; i++)
		put32(sec, VSEC_HDR + nr * VSEC_VEC + 4 * i, entries[i]);
	cpr_test_set_section(st, VSEC, sec, len);
	cpr_log_set_quiet(true);
	CPR_ASSERT_EQ(cpr_vectors_claim(st, VDEV, NULL, &vs), -EBADMSG,
		      "a vector section with %s was not refused as malformed",
		      what);
	cpr_log_set_quiet(false);
	CPR_ASSERT_TRUE(!vs, "the refused claim of a section with %s gave a set",
			what);
	CPR_ASSERT_TRUE(said(word),
			"the refusal of a section with %s does not say \"%s\": \"%s\"",
			what, word, cpr_last_error());
	cpr_state_free(st);
}

TEST(vector_section_with_bad_entries_is_refused)
{
	expect_section_refused("entries 5, 3", 8, (const __u32[]){ 5, 3 }, 2,
			       "out of order");
	expect_section_refused("entry 7 twice", 8, (const __u32[]){ 7, 7 }, 2,
			       "out of order");
	expect_section_refused("entry 8 of a table of 8", 8,
			       (const __u32[]){ 0, 8 }, 2, "beyond its table");
	expect_section_refused("a table of 4096", 4096,
			       (const __u32[]){ 0, 4095 }, 2, "4096");
	expect_section_refused("no vectors", 8, NULL, 0, "vectors");
}

TEST_HARNESS_MAIN
