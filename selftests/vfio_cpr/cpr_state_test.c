// SPDX-License-Identifier: GPL-2.0-only
/*
 * The CPR state store, on its own: what a VMM saves for its successor (fds
 * named by (name, index) with their kind, opaque sections), how it is
 * serialised into a sealed memfd, and how the successor refuses anything
 * that is not exactly such a state.  The wire format is written out again
 * here from state.h, independently of the library, to craft bad input.
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
#include "vfio_cpr/log.h"
#include "vfio_cpr/state.h"

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

static int new_eventfd(struct __test_metadata *_metadata)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	ASSERT_LE(0, fd) {
		TH_LOG("eventfd() failed: %s", strerror(errno));
	}
	return fd;
}

/* A memfd holding @len bytes of @buf, with @seals added (0: none). */
static int memfd_with(struct __test_metadata *_metadata, const void *buf,
		      size_t len, int seals)
{
	int fd = memfd_create("cpr_state_test",
			      MFD_CLOEXEC | MFD_ALLOW_SEALING);

	ASSERT_LE(0, fd) {
		TH_LOG("memfd_create() failed: %s", strerror(errno));
	}
	ASSERT_EQ((ssize_t)len, write(fd, buf, len)) {
		TH_LOG("writing %zu bytes into a fresh memfd failed", len);
	}
	if (seals) {
		ASSERT_EQ(0, fcntl(fd, F_ADD_SEALS, seals)) {
			TH_LOG("F_ADD_SEALS 0x%x on a fresh memfd failed: %s",
			       seals, strerror(errno));
		}
	}
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
 * Parse must refuse @len bytes at @buf: returning @want_ret, setting
 * @want_why, saying @word in its message and leaving *out alone.  The
 * bytes are copied into a buffer of exactly @len bytes so that any read
 * past the end is caught (valgrind, ASan).
 */
static void expect_refused(struct __test_metadata *_metadata, const char *what,
			   const void *buf, size_t len, unsigned int flags,
			   enum cpr_state_error want_why, int want_ret,
			   const char *word)
{
	enum cpr_state_error why = CPR_STATE_OK;
	struct cpr_state *out = UNTOUCHED;
	void *copy = malloc(len ? len : 1);
	int ret;

	ASSERT_NE(NULL, copy);
	memcpy(copy, buf, len);
	cpr_clear_error();
	cpr_log_set_quiet(true);
	ret = cpr_state_parse(copy, len, flags, &out, &why);
	cpr_log_set_quiet(false);
	free(copy);

	ASSERT_EQ(want_ret, ret) {
		TH_LOG("%s: parse returned %d (\"%s\"), it must refuse with %d",
		       what, ret, cpr_last_error(), want_ret);
	}
	ASSERT_EQ(want_why, why) {
		TH_LOG("%s: refused as \"%s\", it must be \"%s\" (\"%s\")",
		       what, cpr_state_error_name(why),
		       cpr_state_error_name(want_why), cpr_last_error());
	}
	ASSERT_TRUE(said(word)) {
		TH_LOG("%s: the message \"%s\" does not say \"%s\"",
		       what, cpr_last_error(), word);
	}
	ASSERT_EQ(UNTOUCHED, out) {
		TH_LOG("%s: a failed parse wrote *out", what);
	}
}

/* Parse must accept @buf; returns the state. */
static struct cpr_state *expect_parsed(struct __test_metadata *_metadata,
				       const void *buf, size_t len,
				       unsigned int flags)
{
	enum cpr_state_error why = CPR_STATE_ERROR_MAX;
	struct cpr_state *out = NULL;
	int ret = cpr_state_parse(buf, len, flags, &out, &why);

	ASSERT_EQ(0, ret) {
		TH_LOG("a valid state of %zu bytes was refused: %s",
		       len, cpr_last_error());
	}
	ASSERT_EQ(CPR_STATE_OK, (int)why);
	ASSERT_NE(NULL, out);
	return out;
}

/* A small state as the library writes it: one fd, one section. */
static void small_state(struct __test_metadata *_metadata, int efd,
			void **buf, size_t *len)
{
	static const unsigned char msi[16] = { 0xfe, 0xe0, 0, 0, 0, 0, 0, 0,
					       0x41, 0, 0, 0, 1, 0, 0, 0 };
	struct cpr_state *st = cpr_state_new();

	ASSERT_NE(NULL, st);
	ASSERT_EQ(0, cpr_state_save_fd(st, "dev_kvm_interrupt", 3, efd));
	ASSERT_EQ(0, cpr_state_set_section(st, "dev_msi", msi, sizeof(msi)));
	ASSERT_EQ(0, cpr_state_to_buf(st, buf, len)) {
		TH_LOG("serialising a two-entry state failed: %s",
		       cpr_last_error());
	}
	cpr_state_free(st);
}

TEST(crc32_is_the_ieee_crc_zlib_computes)
{
	static const char check[] = "123456789";
	static const char fox[] = "The quick brown fox jumps over the lazy dog";
	__u32 crc;

	/* The published check values of CRC-32/ISO-HDLC. */
	ASSERT_EQ(0xcbf43926u, cpr_crc32(0, check, 9)) {
		TH_LOG("CRC-32 of \"123456789\" is not the IEEE check value");
	}
	ASSERT_EQ(0x414fa339u, cpr_crc32(0, fox, strlen(fox)));
	ASSERT_EQ(0u, cpr_crc32(0, NULL, 0));
	/* Chaining like zlib's crc32(crc, buf, len). */
	crc = cpr_crc32(0, check, 4);
	ASSERT_EQ(0xcbf43926u, cpr_crc32(crc, check + 4, 5)) {
		TH_LOG("CRC-32 in two pieces differs from one pass");
	}
}

TEST(fd_kind_is_read_from_what_the_kernel_shows)
{
	int efd = new_eventfd(_metadata);
	int mfd = memfd_with(_metadata, "x", 1, 0);
	int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int pipefd[2], sv[2];

	ASSERT_EQ(0, pipe2(pipefd, O_CLOEXEC));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	ASSERT_LE(0, nullfd);

	EXPECT_EQ(CPR_FD_EVENTFD, cpr_fd_kind_of(efd));
	EXPECT_EQ(CPR_FD_MEMFD, cpr_fd_kind_of(mfd));
	EXPECT_EQ(CPR_FD_PIPE, cpr_fd_kind_of(pipefd[0]));
	EXPECT_EQ(CPR_FD_PIPE, cpr_fd_kind_of(pipefd[1]));
	EXPECT_EQ(CPR_FD_SOCKET, cpr_fd_kind_of(sv[0]));
	EXPECT_EQ(CPR_FD_OTHER, cpr_fd_kind_of(nullfd));

	close(efd);
	cpr_clear_error();
	EXPECT_EQ(-EBADF, cpr_fd_kind_of(efd)) {
		TH_LOG("a closed fd must be reported as not open");
	}
	EXPECT_EQ(-EBADF, cpr_fd_kind_of(-1));
	EXPECT_STREQ("", cpr_last_error()) {
		TH_LOG("asking about a closed fd is a query, not an error");
	}

	EXPECT_STREQ("eventfd", cpr_fd_kind_name(CPR_FD_EVENTFD));
	EXPECT_STREQ("memfd", cpr_fd_kind_name(CPR_FD_MEMFD));
	EXPECT_STREQ("kvm-vm", cpr_fd_kind_name(CPR_FD_KVM_VM));
	EXPECT_STREQ("vfio-group", cpr_fd_kind_name(CPR_FD_VFIO_GROUP));
	EXPECT_STREQ("pipe", cpr_fd_kind_name(CPR_FD_PIPE));
	EXPECT_STREQ("other", cpr_fd_kind_name(CPR_FD_OTHER));
	EXPECT_STREQ("invalid", cpr_fd_kind_name(CPR_FD_KIND_MAX));
	EXPECT_STREQ("invalid", cpr_fd_kind_name(-1));

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
		EXPECT_EQ(CPR_FD_VFIO_CONTAINER, cpr_fd_kind_of(fd));
		close(fd);
	}
	fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		EXPECT_EQ(CPR_FD_IOMMUFD, cpr_fd_kind_of(fd));
		close(fd);
	}

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		SKIP(return, "/dev/kvm: %s", strerror(errno));
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	ASSERT_LE(0, vm) {
		TH_LOG("KVM_CREATE_VM failed: %s", strerror(errno));
	}
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	ASSERT_LE(0, vcpu) {
		TH_LOG("KVM_CREATE_VCPU failed: %s", strerror(errno));
	}
	EXPECT_EQ(CPR_FD_KVM, cpr_fd_kind_of(kvm));
	EXPECT_EQ(CPR_FD_KVM_VM, cpr_fd_kind_of(vm));
	EXPECT_EQ(CPR_FD_KVM_VCPU, cpr_fd_kind_of(vcpu));
	if (!ioctl(vm, KVM_CREATE_DEVICE, &dev)) {
		EXPECT_EQ(CPR_FD_KVM_DEVICE, cpr_fd_kind_of(dev.fd)) {
			TH_LOG("the kvm-vfio device fd is not a kvm-device");
		}
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
	struct cpr_state *st = cpr_state_new();
	int efd = new_eventfd(_metadata);
	int mfd = memfd_with(_metadata, "", 0, 0);
	char name[CPR_NAME_MAX + 2];
	const struct cpr_fd_rec *rec;
	__u64 serial;
	int closed;

	ASSERT_NE(NULL, st);
	ASSERT_EQ(0, cpr_state_save_fd(st, "dev_interrupt", 0, efd));
	ASSERT_EQ(0, cpr_state_save_fd(st, "dev_interrupt", 1, mfd));
	ASSERT_EQ(0, cpr_state_save_fd(st, "dev_kvm_interrupt", 0, efd)) {
		TH_LOG("one fd must be allowed under two names");
	}
	ASSERT_EQ(3u, cpr_state_nr_fds(st));

	EXPECT_EQ(efd, cpr_state_find_fd(st, "dev_interrupt", 0));
	EXPECT_EQ(mfd, cpr_state_find_fd(st, "dev_interrupt", 1));
	EXPECT_EQ(efd, cpr_state_find_fd(st, "dev_kvm_interrupt", 0));
	EXPECT_EQ(-1, cpr_state_find_fd(st, "dev_interrupt", 2)) {
		TH_LOG("an index never saved must not be found");
	}
	EXPECT_EQ(-1, cpr_state_find_fd(st, "dev_err", 0));
	EXPECT_EQ(-1, cpr_state_find_fd(st, "dev_interrup", 0)) {
		TH_LOG("a prefix of a saved name must not match it");
	}
	/* A vector table at once: what find_fd() gives each index. */
	{
		int fds[4] = { 7, 7, 7, 7 };

		cpr_state_find_fds(st, "dev_interrupt", 3, fds);
		EXPECT_EQ(efd, fds[0]);
		EXPECT_EQ(mfd, fds[1]);
		EXPECT_EQ(-1, fds[2]);
		EXPECT_EQ(7, fds[3]) {
			TH_LOG("find_fds() wrote past the %u asked for", 3);
		}
		cpr_state_find_fds(st, "dev_interrup", 2, fds);
		EXPECT_EQ(-1, fds[0]);
		EXPECT_EQ(-1, fds[1]);
	}

	/* The kind is recorded when the fd is saved. */
	rec = cpr_state_fd_at(st, 1);
	ASSERT_NE(NULL, rec);
	EXPECT_STREQ("dev_interrupt", rec->name);
	EXPECT_EQ(1u, rec->index);
	EXPECT_EQ(mfd, rec->fd);
	EXPECT_EQ(CPR_FD_MEMFD, rec->kind);
	EXPECT_EQ(CPR_FD_EVENTFD, cpr_state_fd_at(st, 0)->kind);
	EXPECT_EQ(NULL, cpr_state_fd_at(st, 3));

	cpr_log_set_quiet(true);
	EXPECT_EQ(-EEXIST, cpr_state_save_fd(st, "dev_interrupt", 1, efd)) {
		TH_LOG("saving over an existing (name, index) must fail");
	}
	EXPECT_EQ(mfd, cpr_state_find_fd(st, "dev_interrupt", 1)) {
		TH_LOG("a refused save replaced the saved fd");
	}
	EXPECT_EQ(-EINVAL, cpr_state_save_fd(st, "", 0, efd));
	EXPECT_EQ(-EINVAL, cpr_state_save_fd(st, NULL, 0, efd));
	memset(name, 'n', CPR_NAME_MAX + 1);
	name[CPR_NAME_MAX + 1] = '\0';
	EXPECT_EQ(-EINVAL, cpr_state_save_fd(st, name, 0, efd)) {
		TH_LOG("a name of %d bytes must be refused", CPR_NAME_MAX + 1);
	}
	EXPECT_EQ(-1, cpr_state_find_fd(st, name, 0));
	closed = dup(efd);
	ASSERT_LE(0, closed);
	close(closed);
	EXPECT_EQ(-EBADF, cpr_state_save_fd(st, "dev_err", 0, closed)) {
		TH_LOG("a closed fd must not be saved");
	}
	EXPECT_TRUE(said("not open"));
	EXPECT_EQ(-EBADF, cpr_state_save_fd(st, "dev_err", 0, -1));
	cpr_log_set_quiet(false);
	name[CPR_NAME_MAX] = '\0';
	EXPECT_EQ(0, cpr_state_save_fd(st, name, 7, efd)) {
		TH_LOG("a name of exactly %d bytes must be accepted",
		       CPR_NAME_MAX);
	}
	EXPECT_EQ(efd, cpr_state_find_fd(st, name, 7));

	/* Saving and deleting change the serial, refusals do not. */
	serial = cpr_state_fd_serial(st);
	EXPECT_EQ(0, cpr_state_delete_fd(st, "dev_interrupt", 0));
	EXPECT_NE(serial, cpr_state_fd_serial(st));
	serial = cpr_state_fd_serial(st);
	EXPECT_EQ(-1, cpr_state_find_fd(st, "dev_interrupt", 0)) {
		TH_LOG("a deleted entry is still found");
	}
	EXPECT_EQ(mfd, cpr_state_find_fd(st, "dev_interrupt", 1));
	EXPECT_EQ(3u, cpr_state_nr_fds(st));
	EXPECT_EQ(CPR_FD_EVENTFD, cpr_fd_kind_of(efd)) {
		TH_LOG("deleting an entry closed its fd");
	}
	cpr_log_set_quiet(true);
	EXPECT_EQ(-ENOENT, cpr_state_delete_fd(st, "dev_interrupt", 0));
	EXPECT_EQ(-ENOENT, cpr_state_delete_fd(st, "dev_nothing", 9));
	EXPECT_EQ(-EEXIST, cpr_state_save_fd(st, "dev_interrupt", 1, efd));
	cpr_log_set_quiet(false);
	EXPECT_EQ(serial, cpr_state_fd_serial(st));
	EXPECT_EQ(0, cpr_state_save_fd(st, "dev_interrupt", 0, efd));
	EXPECT_NE(serial, cpr_state_fd_serial(st));
	EXPECT_EQ(0, cpr_state_delete_fd(st, "dev_interrupt", 0));
	/* Deleted, the name is free again. */
	EXPECT_EQ(0, cpr_state_save_fd(st, "dev_interrupt", 0, mfd));
	EXPECT_EQ(mfd, cpr_state_find_fd(st, "dev_interrupt", 0));

	cpr_state_free(st);
	EXPECT_EQ(CPR_FD_EVENTFD, cpr_fd_kind_of(efd)) {
		TH_LOG("freeing the store closed an fd it named");
	}
	cpr_state_free(NULL);
	close(efd);
	close(mfd);
}

TEST(sections_are_set_replaced_read_and_deleted)
{
	static const char msi[] = "message area: address, data, mask";
	struct cpr_state *st = cpr_state_new();
	const void *data;
	const char *name;
	__u64 v = 0;
	size_t len;

	ASSERT_NE(NULL, st);
	ASSERT_EQ(NULL, cpr_state_get_section(st, "dev_msi", &len));
	ASSERT_EQ(0, cpr_state_set_section(st, "dev_msi", msi, sizeof(msi)));
	data = cpr_state_get_section(st, "dev_msi", &len);
	ASSERT_NE(NULL, data);
	ASSERT_EQ(sizeof(msi), len);
	ASSERT_EQ(0, memcmp(msi, data, len)) {
		TH_LOG("a section does not read back as it was set");
	}
	ASSERT_NE((const void *)msi, data) {
		TH_LOG("the store must keep its own copy of a section");
	}

	/* Set again: replaced, by a shorter one, from its own bytes too. */
	ASSERT_EQ(0, cpr_state_set_section(st, "dev_msi", data, 7));
	data = cpr_state_get_section(st, "dev_msi", &len);
	ASSERT_EQ(7u, len);
	ASSERT_EQ(0, memcmp(msi, data, len));
	ASSERT_EQ(1u, cpr_state_nr_sections(st));

	/* Empty sections exist, and are told apart from absent ones. */
	ASSERT_EQ(0, cpr_state_set_section(st, "dev_flags", NULL, 0));
	len = 99;
	ASSERT_NE(NULL, cpr_state_get_section(st, "dev_flags", &len)) {
		TH_LOG("an empty section reads as absent");
	}
	ASSERT_EQ(0u, len);

	ASSERT_EQ(0, cpr_state_set_u64(st, "cpr.generation",
				       0x1122334455667788ull));
	ASSERT_EQ(0, cpr_state_get_u64(st, "cpr.generation", &v));
	ASSERT_EQ(0x1122334455667788ull, v);
	ASSERT_NE(NULL, cpr_state_get_section(st, "cpr.generation", &len));
	ASSERT_EQ(8u, len) {
		TH_LOG("a u64 section must be exactly 8 bytes");
	}

	cpr_log_set_quiet(true);
	ASSERT_EQ(-ENOENT, cpr_state_get_u64(st, "cpr.nothing", &v));
	ASSERT_EQ(-EINVAL, cpr_state_get_u64(st, "dev_msi", &v)) {
		TH_LOG("a 7-byte section must not read as a u64");
	}
	ASSERT_TRUE(said("dev_msi")) {
		TH_LOG("the message \"%s\" does not name the section",
		       cpr_last_error());
	}
	ASSERT_EQ(-EINVAL, cpr_state_set_section(st, "", msi, 1));
	ASSERT_EQ(-EINVAL, cpr_state_set_section(st, "x", NULL, 1));
	ASSERT_EQ(-EFBIG, cpr_state_set_section(st, "x", msi,
						CPR_SECTION_MAX + 1ul));
	cpr_log_set_quiet(false);

	/* In insertion order; the replaced one kept its place. */
	ASSERT_EQ(3u, cpr_state_nr_sections(st));
	ASSERT_EQ(0, cpr_state_section_at(st, 0, &name, &data, &len));
	ASSERT_STREQ("dev_msi", name);
	ASSERT_EQ(0, cpr_state_section_at(st, 2, &name, &data, &len));
	ASSERT_STREQ("cpr.generation", name);
	ASSERT_EQ(-ENOENT, cpr_state_section_at(st, 3, &name, &data, &len));

	ASSERT_EQ(0, cpr_state_delete_section(st, "dev_msi"));
	ASSERT_EQ(NULL, cpr_state_get_section(st, "dev_msi", NULL));
	cpr_log_set_quiet(true);
	ASSERT_EQ(-ENOENT, cpr_state_delete_section(st, "dev_msi"));
	cpr_log_set_quiet(false);
	ASSERT_EQ(0, cpr_state_section_at(st, 0, &name, NULL, NULL));
	ASSERT_STREQ("dev_flags", name);
	cpr_state_free(st);
}

/* A reference model: the keys in the order the store must list them. */
struct model_key {
	int name;
	__u32 index;
};

static void check_against_model(struct __test_metadata *_metadata,
				const struct cpr_state *st,
				const struct model_key *keys, unsigned int n,
				const char *const *names, const int *pool)
{
	const struct cpr_fd_rec *rec;
	unsigned int i;

	ASSERT_EQ(n, cpr_state_nr_fds(st));
	for (i = 0; i < n; i++) {
		rec = cpr_state_fd_at(st, i);
		ASSERT_NE(NULL, rec);
		ASSERT_STREQ(names[keys[i].name], rec->name) {
			TH_LOG("entry %u is out of insertion order", i);
		}
		ASSERT_EQ(keys[i].index, rec->index) {
			TH_LOG("entry %u is out of insertion order", i);
		}
		ASSERT_EQ(pool[keys[i].index % 4],
			  cpr_state_find_fd(st, rec->name, rec->index));
	}
	ASSERT_EQ(NULL, cpr_state_fd_at(st, n));
}

TEST(insertion_order_survives_deletes)
{
	static const char *const names[] = { "a_interrupt", "a_kvm_interrupt",
					     "b_interrupt" };
	enum { MAX_KEYS = 600, STEPS = 6000 };
	struct model_key keys[MAX_KEYS];
	struct cpr_state *st = cpr_state_new();
	unsigned int seed = 1, n = 0, i, step;
	int pool[4];

	ASSERT_NE(NULL, st);
	for (i = 0; i < 4; i++)
		pool[i] = new_eventfd(_metadata);

	/* Random saves and deletes, checked against a plain array. */
	for (step = 0; step < STEPS; step++) {
		bool del = n && (n == MAX_KEYS || rand_r(&seed) % 100 < 45);
		struct model_key k;

		if (del) {
			i = rand_r(&seed) % n;
			k = keys[i];
			ASSERT_EQ(0, cpr_state_delete_fd(st, names[k.name],
							 k.index));
			memmove(&keys[i], &keys[i + 1],
				(n - i - 1) * sizeof(keys[0]));
			n--;
			ASSERT_EQ(-1, cpr_state_find_fd(st, names[k.name],
							k.index));
		} else {
			k.name = rand_r(&seed) % 3;
			k.index = rand_r(&seed) % 400;
			if (cpr_state_find_fd(st, names[k.name], k.index) >= 0)
				continue;
			ASSERT_EQ(0, cpr_state_save_fd(st, names[k.name],
						       k.index,
						       pool[k.index % 4]));
			keys[n++] = k;
		}
		if (step % 97 == 0)
			check_against_model(_metadata, st, keys, n, names,
					    pool);
	}
	check_against_model(_metadata, st, keys, n, names, pool);

	/* Emptied completely, then used again. */
	while (n) {
		n--;
		ASSERT_EQ(0, cpr_state_delete_fd(st, names[keys[0].name],
						 keys[0].index));
		memmove(&keys[0], &keys[1], n * sizeof(keys[0]));
		if (n % 7 == 0)
			check_against_model(_metadata, st, keys, n, names,
					    pool);
	}
	ASSERT_EQ(0, cpr_state_save_fd(st, names[2], 5, pool[1]));
	keys[0].name = 2;
	keys[0].index = 5;
	check_against_model(_metadata, st, keys, 1, names, pool);

	cpr_state_free(st);
	for (i = 0; i < 4; i++)
		close(pool[i]);
}

TEST(store_of_4096_fd_records_round_trips)
{
	enum { VECTORS = 2048, POOL = 64 };
	struct cpr_state *st = cpr_state_new(), *back;
	int pool[POOL], fd;
	unsigned int v, i;
	size_t len;
	void *buf;

	ASSERT_NE(NULL, st);
	for (i = 0; i < POOL; i++)
		pool[i] = new_eventfd(_metadata);
	/* 2048 MSI-X vectors, each with a handler and an irqfd eventfd. */
	for (v = 0; v < VECTORS; v++) {
		ASSERT_EQ(0, cpr_state_save_fd(st, "dev_interrupt", v,
					       pool[(2 * v) % POOL]));
		ASSERT_EQ(0, cpr_state_save_fd(st, "dev_kvm_interrupt", v,
					       pool[(2 * v + 1) % POOL]));
	}
	ASSERT_EQ(2u * VECTORS, cpr_state_nr_fds(st));

	ASSERT_EQ(0, cpr_state_to_buf(st, &buf, &len)) {
		TH_LOG("serialising 4096 fd records failed: %s",
		       cpr_last_error());
	}
	back = expect_parsed(_metadata, buf, len, CPR_PARSE_CHECK_FDS);
	free(buf);
	ASSERT_EQ(2u * VECTORS, cpr_state_nr_fds(back));
	for (v = 0; v < VECTORS; v++) {
		fd = cpr_state_find_fd(back, "dev_interrupt", v);
		ASSERT_EQ(pool[(2 * v) % POOL], fd) {
			TH_LOG("vector %u's interrupt fd came back wrong", v);
		}
		fd = cpr_state_find_fd(back, "dev_kvm_interrupt", v);
		ASSERT_EQ(pool[(2 * v + 1) % POOL], fd) {
			TH_LOG("vector %u's kvm_interrupt fd came back wrong",
			       v);
		}
	}
	for (i = 0; i < 2 * VECTORS; i++) {
		const struct cpr_fd_rec *a = cpr_state_fd_at(st, i);
		const struct cpr_fd_rec *b = cpr_state_fd_at(back, i);

		ASSERT_STREQ(a->name, b->name);
		ASSERT_EQ(a->index, b->index);
	}

	/* Cleaning every handler fd up leaves the irqfd ones, in order. */
	for (v = 0; v < VECTORS; v++)
		ASSERT_EQ(0, cpr_state_delete_fd(back, "dev_interrupt", v));
	ASSERT_EQ(1u * VECTORS, cpr_state_nr_fds(back));
	for (v = 0; v < VECTORS; v++) {
		const struct cpr_fd_rec *rec = cpr_state_fd_at(back, v);

		ASSERT_STREQ("dev_kvm_interrupt", rec->name);
		ASSERT_EQ(v, rec->index);
		ASSERT_EQ(-1, cpr_state_find_fd(back, "dev_interrupt", v));
	}

	cpr_state_free(back);
	cpr_state_free(st);
	for (i = 0; i < POOL; i++)
		close(pool[i]);
}

TEST(serialise_and_parse_keep_every_record_byte_for_byte)
{
	struct cpr_state *st = cpr_state_new(), *back;
	unsigned char big[1000], one = 0x5a;
	const void *d1, *d2;
	const char *n1, *n2;
	char long_name[CPR_NAME_MAX + 1];
	void *buf, *again;
	size_t len, len2, l1, l2;
	int efd = new_eventfd(_metadata);
	int mfd = memfd_with(_metadata, "", 0, 0);
	int pipefd[2];
	unsigned int i;

	ASSERT_NE(NULL, st);
	ASSERT_EQ(0, pipe2(pipefd, O_CLOEXEC));
	for (i = 0; i < sizeof(big); i++)
		big[i] = i * 37 + (i >> 3);
	memset(long_name, 'L', CPR_NAME_MAX);
	long_name[CPR_NAME_MAX] = '\0';

	ASSERT_EQ(0, cpr_state_save_fd(st, "dev_interrupt", 0, efd));
	ASSERT_EQ(0, cpr_state_set_section(st, "dev_msi", big, sizeof(big)));
	ASSERT_EQ(0, cpr_state_save_fd(st, "dev_ram", 0xffffffffu, mfd));
	ASSERT_EQ(0, cpr_state_set_section(st, "empty", NULL, 0));
	ASSERT_EQ(0, cpr_state_save_fd(st, long_name, 1, pipefd[1]));
	ASSERT_EQ(0, cpr_state_set_section(st, long_name, &one, 1));
	ASSERT_EQ(0, cpr_state_set_u64(st, "cpr.generation", 3));

	ASSERT_EQ(0, cpr_state_to_buf(st, &buf, &len));
	ASSERT_EQ(0u, len % 8);
	ASSERT_EQ(0, memcmp(buf, "VFIOCPR", 8));
	back = expect_parsed(_metadata, buf, len, CPR_PARSE_CHECK_FDS);

	ASSERT_EQ(cpr_state_nr_fds(st), cpr_state_nr_fds(back));
	for (i = 0; i < cpr_state_nr_fds(st); i++) {
		const struct cpr_fd_rec *a = cpr_state_fd_at(st, i);
		const struct cpr_fd_rec *b = cpr_state_fd_at(back, i);

		ASSERT_STREQ(a->name, b->name);
		ASSERT_EQ(a->index, b->index);
		ASSERT_EQ(a->fd, b->fd);
		ASSERT_EQ(a->kind, b->kind) {
			TH_LOG("fd record %u lost its kind", i);
		}
	}
	ASSERT_EQ(4u, cpr_state_nr_sections(back));
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(0, cpr_state_section_at(st, i, &n1, &d1, &l1));
		ASSERT_EQ(0, cpr_state_section_at(back, i, &n2, &d2, &l2));
		ASSERT_STREQ(n1, n2);
		ASSERT_EQ(l1, l2);
		ASSERT_EQ(0, memcmp(d1, d2, l1)) {
			TH_LOG("section '%s' changed on the way", n1);
		}
	}

	/* One state, one encoding: written again it is the same bytes. */
	ASSERT_EQ(0, cpr_state_to_buf(back, &again, &len2));
	ASSERT_EQ(len, len2);
	ASSERT_EQ(0, memcmp(buf, again, len)) {
		TH_LOG("a parsed state serialises to other bytes");
	}
	free(again);
	free(buf);
	cpr_state_free(back);
	cpr_state_free(st);

	/* An empty store is a valid state too. */
	st = cpr_state_new();
	ASSERT_NE(NULL, st);
	ASSERT_EQ(0, cpr_state_to_buf(st, &buf, &len));
	ASSERT_EQ(32u, len);
	back = expect_parsed(_metadata, buf, len, CPR_PARSE_CHECK_FDS);
	ASSERT_EQ(0u, cpr_state_nr_fds(back));
	ASSERT_EQ(0u, cpr_state_nr_sections(back));
	cpr_state_free(back);
	cpr_state_free(st);
	free(buf);
	close(efd);
	close(mfd);
	close(pipefd[0]);
	close(pipefd[1]);
}

TEST(state_memfd_is_sealed_against_every_change)
{
	struct cpr_state *st = cpr_state_new(), *back = NULL;
	enum cpr_state_error why;
	int efd = new_eventfd(_metadata);
	int memfd = -1, flags;
	struct stat sb;
	size_t len;
	void *buf, *map, *inside;

	ASSERT_NE(NULL, st);
	ASSERT_EQ(0, cpr_state_save_fd(st, "dev_interrupt", 0, efd));
	ASSERT_EQ(0, cpr_state_set_u64(st, "cpr.generation", 1));
	ASSERT_EQ(0, cpr_state_to_buf(st, &buf, &len));
	ASSERT_EQ(0, cpr_state_to_memfd(st, &memfd)) {
		TH_LOG("serialising into a memfd failed: %s",
		       cpr_last_error());
	}

	ASSERT_EQ(CPR_FD_MEMFD, cpr_fd_kind_of(memfd));
	flags = fcntl(memfd, F_GETFD);
	ASSERT_TRUE(flags & FD_CLOEXEC) {
		TH_LOG("the state memfd must be close-on-exec");
	}
	ASSERT_EQ(0, lseek(memfd, 0, SEEK_CUR)) {
		TH_LOG("the state memfd must be handed over at offset 0");
	}
	ASSERT_EQ(ALL_SEALS, fcntl(memfd, F_GET_SEALS)) {
		TH_LOG("the state memfd lacks seals");
	}
	ASSERT_EQ(0, fstat(memfd, &sb));
	ASSERT_EQ((off_t)len, sb.st_size);
	inside = malloc(len);
	ASSERT_NE(NULL, inside);
	ASSERT_EQ((ssize_t)len, pread(memfd, inside, len, 0));
	ASSERT_EQ(0, memcmp(buf, inside, len)) {
		TH_LOG("the memfd does not hold the serialised state");
	}
	free(inside);

	/* The kernel must refuse every change. */
	ASSERT_EQ(-1, write(memfd, "x", 1)) {
		TH_LOG("F_SEAL_WRITE: the kernel let write() through");
	}
	ASSERT_EQ(EPERM, errno);
	ASSERT_EQ(-1, pwrite(memfd, "x", 1, 0)) {
		TH_LOG("F_SEAL_WRITE: the kernel let pwrite() through");
	}
	ASSERT_EQ(EPERM, errno);
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	ASSERT_EQ(MAP_FAILED, map) {
		TH_LOG("F_SEAL_WRITE: the kernel allowed a shared writable map");
	}
	ASSERT_EQ(EPERM, errno);
	ASSERT_EQ(-1, ftruncate(memfd, len + 4096)) {
		TH_LOG("F_SEAL_GROW: the kernel let ftruncate() grow it");
	}
	ASSERT_EQ(EPERM, errno);
	ASSERT_EQ(-1, fallocate(memfd, 0, len, 4096)) {
		TH_LOG("F_SEAL_GROW: the kernel let fallocate() grow it");
	}
	ASSERT_EQ(EPERM, errno);
	ASSERT_EQ(-1, ftruncate(memfd, 8)) {
		TH_LOG("F_SEAL_SHRINK: the kernel let ftruncate() shrink it");
	}
	ASSERT_EQ(EPERM, errno);
	ASSERT_EQ(-1, fcntl(memfd, F_ADD_SEALS, F_SEAL_WRITE)) {
		TH_LOG("F_SEAL_SEAL: the kernel let seals be added");
	}
	ASSERT_EQ(EPERM, errno);
	ASSERT_EQ(0, fstat(memfd, &sb));
	ASSERT_EQ((off_t)len, sb.st_size);

	/* And the successor takes it in, fds checked. */
	ASSERT_EQ(0, cpr_state_from_memfd(memfd, CPR_PARSE_CHECK_FDS, &back,
					  &why)) {
		TH_LOG("a sealed state memfd was refused: %s",
		       cpr_last_error());
	}
	ASSERT_EQ(CPR_STATE_OK, (int)why);
	ASSERT_EQ(efd, cpr_state_find_fd(back, "dev_interrupt", 0));

	cpr_state_free(back);
	cpr_state_free(st);
	free(buf);
	close(memfd);
	close(efd);
}

/* Load @fd as a state: it must be refused for @want_why saying @word. */
static void expect_fd_refused(struct __test_metadata *_metadata,
			      const char *what, int fd,
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
	ASSERT_EQ(want_ret, ret) {
		TH_LOG("%s: loading returned %d (\"%s\")", what, ret,
		       cpr_last_error());
	}
	ASSERT_EQ(want_why, why) {
		TH_LOG("%s: refused as \"%s\", it must be \"%s\"", what,
		       cpr_state_error_name(why),
		       cpr_state_error_name(want_why));
	}
	ASSERT_TRUE(said(word)) {
		TH_LOG("%s: the message \"%s\" does not say \"%s\"", what,
		       cpr_last_error(), word);
	}
	snprintf(fdnum, sizeof(fdnum), "fd %d", fd);
	ASSERT_TRUE(said(fdnum)) {
		TH_LOG("%s: the message \"%s\" does not name %s", what,
		       cpr_last_error(), fdnum);
	}
	ASSERT_EQ(UNTOUCHED, out);
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
	int efd = new_eventfd(_metadata);
	int fd, pipefd[2];
	unsigned int i;
	size_t len;
	void *buf;

	small_state(_metadata, efd, &buf, &len);

	fd = memfd_with(_metadata, buf, len, 0);
	expect_fd_refused(_metadata, "memfd without seals", fd,
			  CPR_STATE_ENOT_SEALED, -EBADFD, "not sealed");
	close(fd);
	for (i = 0; i < 4; i++) {
		fd = memfd_with(_metadata, buf, len,
				ALL_SEALS & ~seals[i].seal);
		expect_fd_refused(_metadata, seals[i].name, fd,
				  CPR_STATE_ENOT_SEALED, -EBADFD,
				  seals[i].name);
		expect_fd_refused(_metadata, seals[i].name, fd,
				  CPR_STATE_ENOT_SEALED, -EBADFD,
				  "not sealed");
		close(fd);
	}

	fd = mkstemp(path);
	ASSERT_LE(0, fd) {
		TH_LOG("mkstemp(%s): %s", path, strerror(errno));
	}
	unlink(path);
	ASSERT_EQ((ssize_t)len, write(fd, buf, len));
	expect_fd_refused(_metadata, "regular file", fd,
			  CPR_STATE_ENOT_MEMFD, -EBADFD, "not a memfd");
	close(fd);

	ASSERT_EQ(0, pipe2(pipefd, O_CLOEXEC));
	expect_fd_refused(_metadata, "pipe", pipefd[0],
			  CPR_STATE_ENOT_MEMFD, -EBADFD, "not a memfd");
	expect_fd_refused(_metadata, "closed fd", pipefd[0] + 100,
			  CPR_STATE_ENOT_MEMFD, -EBADF, "not a memfd");
	close(pipefd[0]);
	close(pipefd[1]);
	free(buf);
	close(efd);
}

TEST(every_truncated_prefix_is_refused)
{
	int efd = new_eventfd(_metadata);
	struct cpr_state *st;
	char what[64];
	size_t len, n;
	void *buf;

	small_state(_metadata, efd, &buf, &len);
	for (n = 0; n < len; n++) {
		snprintf(what, sizeof(what), "first %zu of %zu bytes", n, len);
		expect_refused(_metadata, what, buf, n, 0,
			       CPR_STATE_ETRUNCATED, -EBADMSG, "truncated");
	}
	st = expect_parsed(_metadata, buf, len, 0);
	cpr_state_free(st);
	free(buf);
	close(efd);
}

TEST(bad_magic_is_refused)
{
	int efd = new_eventfd(_metadata);
	unsigned char *p;
	char what[64];
	size_t len, i;
	void *buf;

	small_state(_metadata, efd, &buf, &len);
	p = buf;
	for (i = 0; i < 8; i++) {
		p[i] ^= 0x20;
		fix_checksum(p, len);
		snprintf(what, sizeof(what), "magic byte %zu changed", i);
		expect_refused(_metadata, what, p, len, 0, CPR_STATE_EMAGIC,
			       -EBADMSG, "magic");
		p[i] ^= 0x20;
	}
	free(buf);
	close(efd);
}

TEST(unknown_version_is_refused)
{
	static const __u32 versions[] = { 0, 2, 0x100, 0xffffffffu };
	int efd = new_eventfd(_metadata);
	unsigned char *p;
	char what[64];
	size_t len, i;
	void *buf;

	small_state(_metadata, efd, &buf, &len);
	p = buf;
	for (i = 0; i < ARRAY_SIZE(versions); i++) {
		put32(p, W_VERSION, versions[i]);
		fix_checksum(p, len);
		snprintf(what, sizeof(what), "version %u", versions[i]);
		expect_refused(_metadata, what, p, len, 0, CPR_STATE_EVERSION,
			       -EPROTONOSUPPORT, "version");
	}
	free(buf);
	close(efd);
}

TEST(any_changed_record_byte_fails_the_checksum)
{
	int efd = new_eventfd(_metadata);
	unsigned char *p;
	char what[64];
	size_t len, i;
	void *buf;

	small_state(_metadata, efd, &buf, &len);
	p = buf;
	for (i = W_HDR_LEN; i < len; i++) {
		p[i] ^= 0x01;
		snprintf(what, sizeof(what), "byte %zu flipped", i);
		expect_refused(_metadata, what, p, len, 0, CPR_STATE_ECHECKSUM,
			       -EBADMSG, "checksum");
		p[i] ^= 0x01;
	}
	p[W_CHECKSUM] ^= 0x80;
	expect_refused(_metadata, "checksum field flipped", p, len, 0,
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
	st = expect_parsed(_metadata, r.buf, r.len, 0);
	ASSERT_EQ(11, cpr_state_find_fd(st, "dev_interrupt", 1));
	cpr_state_free(st);

	raw_begin(&r);
	raw_fd(&r, "dev_interrupt", 0, 10, CPR_FD_EVENTFD);
	raw_section(&r, "dev_msi", "abc", 3);
	raw_fd(&r, "dev_interrupt", 0, 12, CPR_FD_EVENTFD);
	raw_end(&r);
	expect_refused(_metadata, "fd record twice", r.buf, r.len, 0,
		       CPR_STATE_EDUPLICATE, -EBADMSG, "duplicate");
	ASSERT_TRUE(said("'dev_interrupt'[0]")) {
		TH_LOG("the message \"%s\" does not name the record",
		       cpr_last_error());
	}

	raw_begin(&r);
	raw_section(&r, "dev_msi", "abc", 3);
	raw_fd(&r, "dev_msi", 0, 10, CPR_FD_EVENTFD);
	raw_section(&r, "dev_msi", "abcdefgh", 8);
	raw_end(&r);
	expect_refused(_metadata, "section twice", r.buf, r.len, 0,
		       CPR_STATE_EDUPLICATE, -EBADMSG, "duplicate");
	ASSERT_TRUE(said("'dev_msi'"));
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
	ASSERT_EQ(112u, r.len);
	st = expect_parsed(_metadata, r.buf, r.len, 0);
	ASSERT_EQ(0, cpr_state_find_fd(st, "dev_interrupt", 3));
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
		expect_refused(_metadata, b->what, r.buf, r.len, 0, b->why,
			       -EBADMSG, b->word);
	}

	/* Bytes after total_len. */
	base_state(&r);
	expect_refused(_metadata, "buffer longer than total_len", r.buf,
		       r.len + 8, 0, CPR_STATE_ELENGTH, -EBADMSG, "stray");
	/* A zeroed record after the last: a length of 0. */
	base_state(&r);
	ASSERT_EQ((__u32)W_REC_SECTION, get32(r.buf, 72));
	put32(r.buf, 76, 40);
	put32(r.buf, W_NR_RECORDS, 3);
	put64(r.buf, W_TOTAL_LEN, 112 + 8);
	fix_checksum(r.buf, 112 + 8);
	expect_refused(_metadata, "zeroed record at the end", r.buf, 120,
		       0, CPR_STATE_ERECORD, -EBADMSG, "length 0");
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
		ASSERT_NE(NULL, copy);
		memcpy(copy, r.buf, len);

		cpr_log_set_quiet(true);
		ret = cpr_state_parse(copy, len, 0, &st, &why);
		cpr_log_set_quiet(false);
		if (ret) {
			ASSERT_NE(CPR_STATE_OK, (int)why);
			ASSERT_TRUE(ret == -EBADMSG || ret == -EPROTONOSUPPORT);
			ASSERT_NE(0, cpr_last_error()[0]);
			free(copy);
			continue;
		}
		nr_ok++;
		ASSERT_EQ(0, cpr_state_to_buf(st, &again, &len2));
		ASSERT_EQ(len, len2);
		ASSERT_EQ(0, memcmp(copy, again, len)) {
			TH_LOG("iteration %u: accepted bytes re-encode differently",
			       iter);
		}
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
	int efd = new_eventfd(_metadata);

	small_state(_metadata, efd, &buf, &len);
	close(efd);

	/* Without the check, the fd number is just data ... */
	st = expect_parsed(_metadata, buf, len, 0);
	ASSERT_EQ(efd, cpr_state_find_fd(st, "dev_kvm_interrupt", 3));
	/* ... until it is checked on the loaded state. */
	cpr_log_set_quiet(true);
	EXPECT_EQ(-EBADF, cpr_state_check_fds(st, &why));
	cpr_log_set_quiet(false);
	EXPECT_EQ(CPR_STATE_EFD_CLOSED, (int)why);
	EXPECT_TRUE(said("fd record 'dev_kvm_interrupt'[3]")) {
		TH_LOG("the message \"%s\" does not name the record",
		       cpr_last_error());
	}
	cpr_state_free(st);

	expect_refused(_metadata, "recorded fd closed", buf, len,
		       CPR_PARSE_CHECK_FDS, CPR_STATE_EFD_CLOSED, -EBADF,
		       "not open");
	ASSERT_TRUE(said("'dev_kvm_interrupt'[3]")) {
		TH_LOG("the message \"%s\" does not name the record",
		       cpr_last_error());
	}
	free(buf);
}

TEST(recorded_fd_must_still_be_of_its_kind)
{
	enum cpr_state_error why;
	int efd = new_eventfd(_metadata);
	struct cpr_state *st;
	char expect[96];
	size_t len;
	void *buf;
	int mfd;

	small_state(_metadata, efd, &buf, &len);
	/* The eventfd's number now holds a memfd. */
	mfd = memfd_with(_metadata, "", 0, 0);
	ASSERT_EQ(efd, dup2(mfd, efd));
	close(mfd);

	snprintf(expect, sizeof(expect),
		 "fd record 'dev_kvm_interrupt'[3]: fd %d is a memfd, recorded as eventfd",
		 efd);
	/* Checked after the load: the same refusal, the same words. */
	st = expect_parsed(_metadata, buf, len, 0);
	cpr_log_set_quiet(true);
	EXPECT_EQ(-EBADFD, cpr_state_check_fds(st, &why));
	cpr_log_set_quiet(false);
	EXPECT_EQ(CPR_STATE_EFD_KIND, (int)why);
	EXPECT_TRUE(said(expect)) {
		TH_LOG("the message \"%s\" does not say \"%s\"",
		       cpr_last_error(), expect);
	}
	cpr_state_free(st);
	expect_refused(_metadata, "eventfd replaced by a memfd", buf, len,
		       CPR_PARSE_CHECK_FDS, CPR_STATE_EFD_KIND, -EBADFD,
		       "kind");
	ASSERT_TRUE(said(expect)) {
		TH_LOG("the message \"%s\" does not say \"%s\"",
		       cpr_last_error(), expect);
	}
	free(buf);
	close(efd);
}

TEST(refusal_reasons_have_names)
{
	int e;

	for (e = 0; e < CPR_STATE_ERROR_MAX; e++) {
		ASSERT_NE(NULL, cpr_state_error_name(e));
		ASSERT_STRNE("invalid", cpr_state_error_name(e));
	}
	ASSERT_STREQ("invalid", cpr_state_error_name(CPR_STATE_ERROR_MAX));
	ASSERT_STREQ("truncated",
		     cpr_state_error_name(CPR_STATE_ETRUNCATED));
}

TEST_HARNESS_MAIN
