/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * CPR state store: named file descriptors and named opaque sections that a
 * process hands to its successor.
 *
 * File descriptors are kept under (name, index), as in QEMU's cpr_save_fd():
 * "<device>_interrupt" / "<device>_kvm_interrupt" with index = vector, and so
 * on.  The kind of each fd (eventfd, vfio group, kvm vm, memfd, ...) is
 * recorded when it is saved and checked again when the state is loaded.
 *
 * Serialised form (native endianness, all fields naturally aligned):
 *
 *   header   magic[8] "VFIOCPR\0", u32 version, u32 header_len (32 in
 *            version 1), u64 total_len, u32 nr_records, u32 checksum
 *            (CRC-32 of the whole buffer with this field zero)
 *   records  u32 type, u32 rec_len (8-byte aligned, header included), then
 *     fd (type 1):      u32 index, s32 fd, u32 kind, u32 name_len, name
 *     section (type 2): u32 data_len, u32 name_len, name, data
 *
 * Names are 1 to CPR_NAME_MAX bytes without a NUL.  rec_len is exactly the
 * record's contents rounded up to 8, the padding zero; the records end at
 * total_len, which is the length of the buffer.  The writer puts the fd
 * records first, each type in insertion order; a reader takes any order.
 */
#ifndef VFIO_CPR_STATE_H
#define VFIO_CPR_STATE_H

#include <stddef.h>
#include <linux/types.h>

#define CPR_STATE_MAGIC		"VFIOCPR"	/* 8 bytes with the NUL */
#define CPR_STATE_VERSION	1
#define CPR_NAME_MAX		255		/* bytes, without the NUL */
#define CPR_SECTION_MAX		(64u << 20)	/* one section, bytes */
#define CPR_STATE_MAX		(256u << 20)	/* whole state, bytes */

/* The serialised header, as described above (32 bytes). */
struct cpr_state_header {
	char magic[8];
	__u32 version;
	__u32 header_len;
	__u64 total_len;
	__u32 nr_records;
	__u32 checksum;
};

enum cpr_fd_kind {
	CPR_FD_OTHER = 0,	/* open, but nothing we know */
	CPR_FD_EVENTFD,
	CPR_FD_MEMFD,
	CPR_FD_KVM,		/* /dev/kvm */
	CPR_FD_KVM_VM,
	CPR_FD_KVM_VCPU,
	CPR_FD_KVM_DEVICE,	/* KVM_CREATE_DEVICE, e.g. kvm-vfio */
	CPR_FD_VFIO_CONTAINER,	/* /dev/vfio/vfio */
	CPR_FD_VFIO_GROUP,	/* /dev/vfio/N */
	CPR_FD_VFIO_DEVICE,	/* group-obtained fd or /dev/vfio/devices/vfioN */
	CPR_FD_IOMMUFD,		/* /dev/iommu */
	CPR_FD_SOCKET,
	CPR_FD_PIPE,
	CPR_FD_KIND_MAX,
};

/*
 * Kind of an open fd (>= 0), or -EBADF if it is not open (no message: a
 * query), or another -errno if /proc/self/fd cannot be read.
 */
int cpr_fd_kind_of(int fd);
const char *cpr_fd_kind_name(int kind);

/* Why a serialised state was refused. */
enum cpr_state_error {
	CPR_STATE_OK = 0,
	CPR_STATE_ETRUNCATED,	/* shorter than its header or its total_len */
	CPR_STATE_EMAGIC,
	CPR_STATE_EVERSION,
	CPR_STATE_ELENGTH,	/* header_len/total_len/count absurd */
	CPR_STATE_ECHECKSUM,
	CPR_STATE_ERECORD,	/* unknown type, bad name, misaligned length */
	CPR_STATE_EOVERRUN,	/* a record runs past the end of the buffer */
	CPR_STATE_EDUPLICATE,	/* the same (name, index) or section twice */
	CPR_STATE_EFD_CLOSED,	/* recorded fd not open in this process */
	CPR_STATE_EFD_KIND,	/* recorded fd is open but of another kind */
	CPR_STATE_ENOT_MEMFD,	/* state fd is not a memfd */
	CPR_STATE_ENOT_SEALED,	/* state memfd is missing its seals */
	CPR_STATE_ERROR_MAX,
};

const char *cpr_state_error_name(enum cpr_state_error e);

struct cpr_state;

struct cpr_fd_rec {
	const char *name;
	__u32 index;
	int fd;
	int kind;		/* enum cpr_fd_kind */
};

struct cpr_state *cpr_state_new(void);
/* Frees the store; never closes the fds it names. NULL is fine. */
void cpr_state_free(struct cpr_state *st);

/*
 * Named fds.  save: -EEXIST if (name, index) is already there, -EINVAL for
 * an empty or too long name, -EBADF if fd is not open.  find: the fd, or -1.
 * delete: 0, or -ENOENT.
 */
int cpr_state_save_fd(struct cpr_state *st, const char *name, __u32 index,
		      int fd);
int cpr_state_find_fd(const struct cpr_state *st, const char *name,
		      __u32 index);
int cpr_state_delete_fd(struct cpr_state *st, const char *name,
			__u32 index);
/*
 * cpr_state_find_fd() of (@name, 0) .. (@name, @nr - 1) into @fds[0 ..
 * @nr - 1], -1 where there is none: a device's vector table at once, the
 * name hashed once.
 */
void cpr_state_find_fds(const struct cpr_state *st, const char *name,
			__u32 nr, int *fds);
/*
 * Number of fds, and the i-th in insertion order (NULL past the end); the
 * record stays valid until that entry is deleted or the store freed.
 */
unsigned int cpr_state_nr_fds(const struct cpr_state *st);
/* A number that changes whenever an fd is saved in or deleted from @st. */
__u64 cpr_state_fd_serial(const struct cpr_state *st);
const struct cpr_fd_rec *cpr_state_fd_at(const struct cpr_state *st,
					 unsigned int i);

/*
 * Named opaque sections (device state: MSI messages, pending bits, ...).
 * set replaces an existing section of that name (keeping its place), or
 * fails with -EFBIG above CPR_SECTION_MAX; get returns NULL if absent (and a
 * non-NULL pointer for an empty section).  The pointer from get stays valid
 * until the section is set, deleted or the store freed.
 */
int cpr_state_set_section(struct cpr_state *st, const char *name,
			  const void *data, size_t len);
const void *cpr_state_get_section(const struct cpr_state *st,
				  const char *name, size_t *len);
int cpr_state_delete_section(struct cpr_state *st, const char *name);
unsigned int cpr_state_nr_sections(const struct cpr_state *st);
/* The i-th section's name, data and length; -ENOENT past the end. */
int cpr_state_section_at(const struct cpr_state *st, unsigned int i,
			 const char **name, const void **data, size_t *len);

/*
 * Convenience: a section holding one u64.  get: -ENOENT if absent, -EINVAL
 * if the section is not 8 bytes long.
 */
int cpr_state_set_u64(struct cpr_state *st, const char *name, __u64 val);
int cpr_state_get_u64(const struct cpr_state *st, const char *name,
		      __u64 *val);

/* Serialise into a malloc'd buffer that the caller frees; -EFBIG if large. */
int cpr_state_to_buf(const struct cpr_state *st, void **buf, size_t *len);

/*
 * Serialise into a new memfd (close-on-exec, offset 0), sealed against
 * write, grow, shrink and further seals.
 */
int cpr_state_to_memfd(const struct cpr_state *st, int *memfd);

/* Check that every recorded fd is open here and of the recorded kind. */
#define CPR_PARSE_CHECK_FDS	0x1

/*
 * Validate and decode a serialised state.  On failure returns -errno
 * (-EBADMSG for malformed input, -EPROTONOSUPPORT for a version we do not
 * know, -EBADF / -EBADFD for fd problems), sets *why, and the message from
 * cpr_last_error() names the exact problem and where; *out is untouched.
 * Bad arguments (unknown flags, no @out) give -EINVAL with *why CPR_STATE_OK.
 */
int cpr_state_parse(const void *buf, size_t len, unsigned int flags,
		    struct cpr_state **out, enum cpr_state_error *why);

/*
 * What CPR_PARSE_CHECK_FDS checks, on a loaded state: every recorded fd is
 * open here and of the recorded kind.  -EBADF (CPR_STATE_EFD_CLOSED) or
 * -EBADFD (CPR_STATE_EFD_KIND) for the first one that is not, with a
 * message naming the record and the fd; @why may be NULL.  Telling an fd's
 * kind reads a /proc link (a few microseconds an fd): a successor in a
 * hurry may load without the flag and check here once its interrupts flow
 * again (cpr_resume_flags(), CPR_RESUME_DEFER_CHECKS).
 */
int cpr_state_check_fds(const struct cpr_state *st,
			enum cpr_state_error *why);

/*
 * Check that @memfd is a memfd carrying all four seals, read it whole and
 * parse it with @flags.  Refuses anything else with a message naming it:
 * -EBADFD with CPR_STATE_ENOT_MEMFD or CPR_STATE_ENOT_SEALED (-EBADF if the
 * fd is not open).
 */
int cpr_state_from_memfd(int memfd, unsigned int flags,
			 struct cpr_state **out, enum cpr_state_error *why);

/* CRC-32 (IEEE 802.3, reflected), as used for the state checksum. */
__u32 cpr_crc32(__u32 crc, const void *buf, size_t len);

#endif /* VFIO_CPR_STATE_H */
