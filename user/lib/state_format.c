// SPDX-License-Identifier: GPL-2.0-only
/*
 * The CPR state's serialised form (see state.h): its CRC-32, the writer,
 * the parser, and the sealed memfd the state travels in.
 *
 * cpr_state_parse() is where bytes from another process come in: every
 * length is checked against what is left before anything is read, one
 * encoding only is accepted (exact record lengths, zero padding, no
 * trailing bytes; only the order of fd and section records may vary), and
 * failures name the problem and its byte offset.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vfio_cpr/log.h"
#include "vfio_cpr/state.h"

#include "internal.h"

/* Serialised form; see state.h. */
#define REC_FD		1
#define REC_SECTION	2

struct wire_rec {
	__u32 type;
	__u32 rec_len;
};

struct wire_fd {		/* follows struct wire_rec, then the name */
	__u32 index;
	__s32 fd;
	__u32 kind;
	__u32 name_len;
};

struct wire_section {		/* follows struct wire_rec, then name, data */
	__u32 data_len;
	__u32 name_len;
};

#define FD_FIXED	(sizeof(struct wire_rec) + sizeof(struct wire_fd))
#define SECTION_FIXED	(sizeof(struct wire_rec) + sizeof(struct wire_section))
/* The smallest record: a section with a one-byte name and no data. */
#define REC_MIN		24

static_assert(sizeof(struct cpr_state_header) == 32, "header layout");
static_assert(sizeof(struct wire_rec) == 8, "record header layout");
static_assert(FD_FIXED == 24, "fd record layout");
static_assert(SECTION_FIXED == 16, "section record layout");
static_assert(CPR_STATE_MAX < UINT32_MAX, "section and record lengths");

static const char state_magic[8] = CPR_STATE_MAGIC;

/* ---- CRC-32 ---- */

/*
 * Slicing-by-8: crc_table[k][b] is the CRC of byte b followed by k zero
 * bytes, so that eight bytes take eight lookups and no dependent shifts
 * (about 5 times the speed of a byte at a time: a 2048-vector state is
 * 180 KB, checked on both sides of the handoff).
 */
static __u32 crc_table[8][256];

__attribute__((constructor)) static void crc_table_init(void)
{
	__u32 c, i, k;
	int bit;

	for (i = 0; i < 256; i++) {
		c = i;
		for (bit = 0; bit < 8; bit++)
			c = (c >> 1) ^ ((c & 1) ? 0xedb88320u : 0);
		crc_table[0][i] = c;
	}
	for (i = 0; i < 256; i++)
		for (k = 1; k < 8; k++)
			crc_table[k][i] = (crc_table[k - 1][i] >> 8) ^
					  crc_table[0][crc_table[k - 1][i] & 0xff];
}

__u32 cpr_crc32(__u32 crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	crc = ~crc;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	for (; len >= 8; len -= 8, p += 8) {
		__u32 lo, hi;

		memcpy(&lo, p, sizeof(lo));
		memcpy(&hi, p + 4, sizeof(hi));
		lo ^= crc;
		crc = crc_table[7][lo & 0xff] ^
		      crc_table[6][(lo >> 8) & 0xff] ^
		      crc_table[5][(lo >> 16) & 0xff] ^
		      crc_table[4][lo >> 24] ^
		      crc_table[3][hi & 0xff] ^
		      crc_table[2][(hi >> 8) & 0xff] ^
		      crc_table[1][(hi >> 16) & 0xff] ^
		      crc_table[0][hi >> 24];
	}
#endif
	while (len--)
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* CRC of a serialised state, its checksum field counted as zero. */
static __u32 state_crc(const unsigned char *p, size_t total)
{
	static const unsigned char zero[4];
	size_t at = offsetof(struct cpr_state_header, checksum);
	__u32 crc;

	crc = cpr_crc32(0, p, at);
	crc = cpr_crc32(crc, zero, sizeof(zero));
	return cpr_crc32(crc, p + at + 4, total - at - 4);
}

/* ---- Serialisation ---- */

static __u64 align8(__u64 n)
{
	return (n + 7) & ~(__u64)7;
}

static __u64 fd_rec_len(const struct cpr_entry *e)
{
	return align8(FD_FIXED + e->name_len);
}

static __u64 section_rec_len(const struct cpr_entry *e)
{
	return align8(SECTION_FIXED + e->name_len + e->len);
}

/* The serialised length of @st, or -EFBIG (reported). */
static int state_len(const struct cpr_state *st, size_t *len)
{
	__u64 total = sizeof(struct cpr_state_header);
	struct cpr_entry *e;
	size_t i;

	for (i = 0; i < st->fds.nr_slots; i++) {
		e = st->fds.order[i];
		if (e)
			total += fd_rec_len(e);
	}
	for (i = 0; i < st->sections.nr_slots; i++) {
		e = st->sections.order[i];
		if (e)
			total += section_rec_len(e);
	}
	/* Entries are bounded by memory, sections by CPR_SECTION_MAX. */
	if (total > CPR_STATE_MAX)
		return cpr_err(-EFBIG,
			       "serialise state: %llu bytes, more than the %u a state may have",
			       (unsigned long long)total, CPR_STATE_MAX);
	*len = total;
	return 0;
}

/* Serialise @st into the @total zeroed bytes at @p (state_len()). */
static void state_write(const struct cpr_state *st, unsigned char *p,
			size_t total)
{
	struct cpr_state_header hdr = { .version = CPR_STATE_VERSION };
	struct cpr_entry *e;
	size_t i, off;

	off = sizeof(hdr);
	for (i = 0; i < st->fds.nr_slots; i++) {
		struct wire_rec rh = { .type = REC_FD };
		struct wire_fd fr;

		e = st->fds.order[i];
		if (!e)
			continue;
		rh.rec_len = fd_rec_len(e);
		fr.index = e->rec.index;
		fr.fd = e->rec.fd;
		fr.kind = e->rec.kind;
		fr.name_len = e->name_len;
		memcpy(p + off, &rh, sizeof(rh));
		memcpy(p + off + sizeof(rh), &fr, sizeof(fr));
		memcpy(p + off + FD_FIXED, e->name, e->name_len);
		off += rh.rec_len;
	}
	for (i = 0; i < st->sections.nr_slots; i++) {
		struct wire_rec rh = { .type = REC_SECTION };
		struct wire_section sr;

		e = st->sections.order[i];
		if (!e)
			continue;
		rh.rec_len = section_rec_len(e);
		sr.data_len = e->len;
		sr.name_len = e->name_len;
		memcpy(p + off, &rh, sizeof(rh));
		memcpy(p + off + sizeof(rh), &sr, sizeof(sr));
		memcpy(p + off + SECTION_FIXED, e->name, e->name_len);
		memcpy(p + off + SECTION_FIXED + e->name_len, e->data, e->len);
		off += rh.rec_len;
	}

	memcpy(hdr.magic, state_magic, sizeof(hdr.magic));
	hdr.header_len = sizeof(hdr);
	hdr.total_len = total;
	hdr.nr_records = st->fds.nr_live + st->sections.nr_live;
	memcpy(p, &hdr, sizeof(hdr));
	hdr.checksum = state_crc(p, total);
	memcpy(p + offsetof(struct cpr_state_header, checksum), &hdr.checksum,
	       sizeof(hdr.checksum));
}

int cpr_state_to_buf(const struct cpr_state *st, void **buf, size_t *len)
{
	unsigned char *p;
	size_t total;
	int ret;

	if (!st || !buf || !len)
		return cpr_err(-EINVAL, "serialise state: no state or result");
	ret = state_len(st, &total);
	if (ret)
		return ret;
	p = calloc(1, total);
	if (!p)
		return cpr_err(-ENOMEM, "serialise state: allocate %zu bytes",
			       total);
	state_write(st, p, total);
	*buf = p;
	*len = total;
	return 0;
}

int cpr_state_to_memfd(const struct cpr_state *st, int *memfd)
{
	const int seals = F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK |
			  F_SEAL_SEAL;
	void *map;
	size_t len;
	int fd, ret;

	if (!memfd || !st)
		return cpr_err(-EINVAL, "serialise state to a memfd: no state or result");
	ret = state_len(st, &len);
	if (ret)
		return ret;

	fd = memfd_create("vfio_cpr_state", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return cpr_err(-errno, "memfd_create(vfio_cpr_state)");
	/* Written in place: no buffer to fill, fault in and copy over. */
	if (ftruncate(fd, len) < 0) {
		ret = cpr_err(-errno, "size state memfd %d to %zu bytes", fd,
			      len);
		goto out_close;
	}
	map = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_POPULATE, fd, 0);
	if (map == MAP_FAILED) {
		ret = cpr_err(-errno, "map state memfd %d (%zu bytes)", fd,
			      len);
		goto out_close;
	}
	state_write(st, map, len);
	/* F_SEAL_WRITE needs the writable mapping gone. */
	munmap(map, len);
	if (fcntl(fd, F_ADD_SEALS, seals) < 0) {
		ret = cpr_err(-errno, "seal state memfd %d", fd);
		goto out_close;
	}
	*memfd = fd;
	return 0;

out_close:
	close(fd);
	return ret;
}

/* ---- Parsing: every byte is hostile ---- */

/* Record why in *@why, then report like cpr_err() (and check the format). */
#define refuse(why, e, err, ...) (*(why) = (e), cpr_err(err, __VA_ARGS__))

/* @name (@len bytes) made printable for a message. */
static const char *printable(char *dst, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		dst[i] = (name[i] >= 0x20 && name[i] < 0x7f) ? name[i] : '?';
	dst[len] = '\0';
	return dst;
}

struct parse_ctx {
	const unsigned char *p;
	unsigned int flags;
	struct cpr_state *st;
	enum cpr_state_error why;
	__u32 nr;		/* number of the record being parsed */
	size_t off;		/* its offset */
	__u32 rec_len;		/* its length, within the buffer */
};

/*
 * Check the name (and the @data_len bytes after it) of the record at
 * c->off, whose fixed part is @fixed bytes: the record must be exactly long
 * enough for them, its padding zero.
 */
static int parse_name(struct parse_ctx *c, size_t fixed, __u32 name_len,
		      __u64 data_len)
{
	const unsigned char *rec = c->p + c->off;
	__u64 need = fixed + (__u64)name_len + data_len;
	size_t i;

	if (!name_len || name_len > CPR_NAME_MAX)
		return refuse(&c->why, CPR_STATE_ERECORD, -EBADMSG,
			      "record %u at offset %zu: name length %u is not 1 to %d",
			      c->nr, c->off, name_len, CPR_NAME_MAX);
	if (need > c->rec_len)
		return refuse(&c->why, CPR_STATE_ERECORD, -EBADMSG,
			      "record %u at offset %zu: name and data run past its length %u",
			      c->nr, c->off, c->rec_len);
	if (align8(need) != c->rec_len)
		return refuse(&c->why, CPR_STATE_ERECORD, -EBADMSG,
			      "record %u at offset %zu: length %u, but its contents take %llu",
			      c->nr, c->off, c->rec_len,
			      (unsigned long long)align8(need));
	if (memchr(rec + fixed, '\0', name_len))
		return refuse(&c->why, CPR_STATE_ERECORD, -EBADMSG,
			      "record %u at offset %zu: name holds a NUL byte",
			      c->nr, c->off);
	for (i = need; i < c->rec_len; i++)
		if (rec[i])
			return refuse(&c->why, CPR_STATE_ERECORD, -EBADMSG,
				      "record %u: padding byte at offset %zu is not zero",
				      c->nr, c->off + i);
	return 0;
}

/*
 * The recorded fd is open, of the recorded kind.  @where starts the
 * message (where the record is), the record itself is named after it.
 */
static int check_fd(const struct cpr_entry *e, const char *where,
		    enum cpr_state_error *why)
{
	char shown[CPR_NAME_MAX + 1];
	int fd = e->rec.fd;
	int kind = cpr_fd_kind_of(fd);

	if (kind == e->rec.kind)
		return 0;
	printable(shown, e->name, e->name_len);
	if (kind == -EBADF)
		return refuse(why, CPR_STATE_EFD_CLOSED, -EBADF,
			      "%sfd record '%s'[%u]: fd %d is not open in this process",
			      where, shown, e->rec.index, fd);
	if (kind < 0)
		return refuse(why, CPR_STATE_EFD_KIND, kind,
			      "%sfd record '%s'[%u]: cannot tell the kind of fd %d",
			      where, shown, e->rec.index, fd);
	return refuse(why, CPR_STATE_EFD_KIND, -EBADFD,
		      "%sfd record '%s'[%u]: fd %d is a %s, recorded as %s (wrong kind)",
		      where, shown, e->rec.index, fd, cpr_fd_kind_name(kind),
		      cpr_fd_kind_name(e->rec.kind));
}

int cpr_state_check_fds(const struct cpr_state *st, enum cpr_state_error *why)
{
	enum cpr_state_error dummy;
	size_t i;
	int ret;

	if (!why)
		why = &dummy;
	*why = CPR_STATE_OK;
	if (!st)
		return cpr_err(-EINVAL, "check the fds of a state: no state");
	for (i = 0; i < st->fds.nr_slots; i++) {
		const struct cpr_entry *e = st->fds.order[i];

		if (!e)
			continue;
		ret = check_fd(e, "", why);
		if (ret)
			return ret;
	}
	return 0;
}

static int parse_fd_rec(struct parse_ctx *c)
{
	const unsigned char *rec = c->p + c->off;
	const char *name = (const char *)rec + FD_FIXED;
	char shown[CPR_NAME_MAX + 1];
	struct cpr_entry *e;
	struct wire_fd fr;
	__u32 h;
	int ret;

	if (c->rec_len < FD_FIXED)
		return refuse(&c->why, CPR_STATE_ERECORD, -EBADMSG,
			      "record %u at offset %zu: fd record of %u bytes, shorter than its fixed part",
			      c->nr, c->off, c->rec_len);
	memcpy(&fr, rec + sizeof(struct wire_rec), sizeof(fr));
	ret = parse_name(c, FD_FIXED, fr.name_len, 0);
	if (ret)
		return ret;
	printable(shown, name, fr.name_len);
	if (fr.fd < 0)
		return refuse(&c->why, CPR_STATE_ERECORD, -EBADMSG,
			      "record %u at offset %zu: fd record '%s'[%u]: negative fd %d",
			      c->nr, c->off, shown, fr.index, fr.fd);
	if (fr.kind >= CPR_FD_KIND_MAX)
		return refuse(&c->why, CPR_STATE_ERECORD, -EBADMSG,
			      "record %u at offset %zu: fd record '%s'[%u]: unknown fd kind %u",
			      c->nr, c->off, shown, fr.index, fr.kind);

	h = cpr_key_hash(name, fr.name_len, fr.index);
	if (cpr_tab_find(&c->st->fds, name, fr.name_len, fr.index, h))
		return refuse(&c->why, CPR_STATE_EDUPLICATE, -EBADMSG,
			      "record %u at offset %zu: duplicate fd record '%s'[%u]",
			      c->nr, c->off, shown, fr.index);
	if (cpr_tab_reserve(&c->st->fds))
		return cpr_err(-ENOMEM, "record %u: grow the fd table", c->nr);
	e = cpr_entry_new_in(c->st, name, fr.name_len, fr.index, h);
	if (!e)
		return cpr_err(-ENOMEM, "record %u: allocate an fd entry", c->nr);
	e->rec.fd = fr.fd;
	e->rec.kind = fr.kind;
	cpr_tab_add(&c->st->fds, e);

	if (c->flags & CPR_PARSE_CHECK_FDS) {
		char where[64];

		snprintf(where, sizeof(where), "record %u at offset %zu: ",
			 c->nr, c->off);
		return check_fd(e, where, &c->why);
	}
	return 0;
}

static int parse_section_rec(struct parse_ctx *c)
{
	const unsigned char *rec = c->p + c->off;
	const char *name = (const char *)rec + SECTION_FIXED;
	char shown[CPR_NAME_MAX + 1];
	struct wire_section sr;
	struct cpr_entry *e;
	void *data;
	__u32 h;
	int ret;

	if (c->rec_len < SECTION_FIXED)
		return refuse(&c->why, CPR_STATE_ERECORD, -EBADMSG,
			      "record %u at offset %zu: section record of %u bytes, shorter than its fixed part",
			      c->nr, c->off, c->rec_len);
	memcpy(&sr, rec + sizeof(struct wire_rec), sizeof(sr));
	if (sr.data_len > CPR_SECTION_MAX)
		return refuse(&c->why, CPR_STATE_ERECORD, -EBADMSG,
			      "record %u at offset %zu: section of %u bytes, more than the %u a section may hold",
			      c->nr, c->off, sr.data_len, CPR_SECTION_MAX);
	ret = parse_name(c, SECTION_FIXED, sr.name_len, sr.data_len);
	if (ret)
		return ret;

	h = cpr_key_hash(name, sr.name_len, 0);
	if (cpr_tab_find(&c->st->sections, name, sr.name_len, 0, h))
		return refuse(&c->why, CPR_STATE_EDUPLICATE, -EBADMSG,
			      "record %u at offset %zu: duplicate section '%s'",
			      c->nr, c->off,
			      printable(shown, name, sr.name_len));
	if (cpr_tab_reserve(&c->st->sections))
		return cpr_err(-ENOMEM, "record %u: grow the section table",
			       c->nr);
	data = malloc(sr.data_len ? sr.data_len : 1);
	if (!data)
		return cpr_err(-ENOMEM, "record %u: allocate %u bytes of section",
			       c->nr, sr.data_len);
	memcpy(data, rec + SECTION_FIXED + sr.name_len, sr.data_len);
	e = cpr_entry_new(name, sr.name_len, 0, h);
	if (!e) {
		free(data);
		return cpr_err(-ENOMEM, "record %u: allocate a section entry",
			       c->nr);
	}
	e->data = data;
	e->len = sr.data_len;
	cpr_tab_add(&c->st->sections, e);
	return 0;
}

/* The header: everything before the records, checksum included. */
static int parse_header(struct parse_ctx *c, size_t len,
			struct cpr_state_header *hdr)
{
	__u32 crc;

	if (len < sizeof(*hdr))
		return refuse(&c->why, CPR_STATE_ETRUNCATED, -EBADMSG,
			      "state truncated: %zu bytes, shorter than its %zu-byte header",
			      len, sizeof(*hdr));
	memcpy(hdr, c->p, sizeof(*hdr));
	if (memcmp(hdr->magic, state_magic, sizeof(hdr->magic)))
		return refuse(&c->why, CPR_STATE_EMAGIC, -EBADMSG,
			      "bad magic at offset 0: not a vfio_cpr state");
	if (hdr->version != CPR_STATE_VERSION)
		return refuse(&c->why, CPR_STATE_EVERSION, -EPROTONOSUPPORT,
			      "state version %u at offset %zu: only version %d is known here",
			      hdr->version,
			      offsetof(struct cpr_state_header, version),
			      CPR_STATE_VERSION);
	if (hdr->header_len != sizeof(*hdr))
		return refuse(&c->why, CPR_STATE_ELENGTH, -EBADMSG,
			      "header_len %u at offset %zu: a version %d header is %zu bytes",
			      hdr->header_len,
			      offsetof(struct cpr_state_header, header_len),
			      CPR_STATE_VERSION, sizeof(*hdr));
	if (hdr->total_len < sizeof(*hdr) || hdr->total_len > CPR_STATE_MAX ||
	    hdr->total_len % 8)
		return refuse(&c->why, CPR_STATE_ELENGTH, -EBADMSG,
			      "total_len %llu at offset %zu: not a multiple of 8 from %zu to %u",
			      (unsigned long long)hdr->total_len,
			      offsetof(struct cpr_state_header, total_len),
			      sizeof(*hdr), CPR_STATE_MAX);
	if (len < hdr->total_len)
		return refuse(&c->why, CPR_STATE_ETRUNCATED, -EBADMSG,
			      "state truncated: %zu bytes of the %llu its total_len says",
			      len, (unsigned long long)hdr->total_len);
	if (len > hdr->total_len)
		return refuse(&c->why, CPR_STATE_ELENGTH, -EBADMSG,
			      "%llu stray bytes after the state's total_len of %llu",
			      (unsigned long long)(len - hdr->total_len),
			      (unsigned long long)hdr->total_len);
	if (hdr->nr_records > (hdr->total_len - sizeof(*hdr)) / REC_MIN)
		return refuse(&c->why, CPR_STATE_ELENGTH, -EBADMSG,
			      "nr_records %u at offset %zu cannot fit in a state of %llu bytes",
			      hdr->nr_records,
			      offsetof(struct cpr_state_header, nr_records),
			      (unsigned long long)hdr->total_len);
	crc = state_crc(c->p, hdr->total_len);
	if (crc != hdr->checksum)
		return refuse(&c->why, CPR_STATE_ECHECKSUM, -EBADMSG,
			      "checksum mismatch: the header says 0x%08x, the %llu bytes give 0x%08x",
			      hdr->checksum,
			      (unsigned long long)hdr->total_len, crc);
	return 0;
}

static int parse_records(struct parse_ctx *c, const struct cpr_state_header *hdr)
{
	size_t total = hdr->total_len;
	struct wire_rec rh;
	int ret;

	/*
	 * The writer puts the fds first, and a state is mostly fds: size
	 * their table once (nr_records is bounded by the buffer's length).
	 */
	if (cpr_tab_reserve_n(&c->st->fds, hdr->nr_records, hdr->nr_records))
		return cpr_err(-ENOMEM, "parse state: tables for %u records",
			       hdr->nr_records);
	/*
	 * An fd record of rec_len bytes makes an entry of at most rec_len +
	 * sizeof(entry) bytes; untouched parts of a large arena are never
	 * faulted in.  Without it the entries are allocated one by one.
	 */
	c->st->arena_size = total + (size_t)hdr->nr_records *
			    sizeof(struct cpr_entry);
	c->st->arena = malloc(c->st->arena_size);
	if (!c->st->arena)
		c->st->arena_size = 0;
	c->off = hdr->header_len;
	for (c->nr = 0; c->nr < hdr->nr_records; c->nr++) {
		size_t left = total - c->off;

		if (left < sizeof(rh))
			return refuse(&c->why, CPR_STATE_EOVERRUN, -EBADMSG,
				      "record %u at offset %zu overruns the state: %zu bytes left",
				      c->nr, c->off, left);
		memcpy(&rh, c->p + c->off, sizeof(rh));
		if (rh.rec_len < sizeof(rh) || rh.rec_len % 8)
			return refuse(&c->why, CPR_STATE_ERECORD, -EBADMSG,
				      "record %u at offset %zu: length %u is not a multiple of 8 from 8",
				      c->nr, c->off, rh.rec_len);
		if (rh.rec_len > left)
			return refuse(&c->why, CPR_STATE_EOVERRUN, -EBADMSG,
				      "record %u at offset %zu: length %u overruns the state (%zu bytes left)",
				      c->nr, c->off, rh.rec_len, left);
		c->rec_len = rh.rec_len;
		switch (rh.type) {
		case REC_FD:
			ret = parse_fd_rec(c);
			break;
		case REC_SECTION:
			ret = parse_section_rec(c);
			break;
		default:
			ret = refuse(&c->why, CPR_STATE_ERECORD, -EBADMSG,
				     "record %u at offset %zu: unknown type %u",
				     c->nr, c->off, rh.type);
		}
		if (ret)
			return ret;
		c->off += rh.rec_len;
	}
	if (c->off != total)
		return refuse(&c->why, CPR_STATE_ELENGTH, -EBADMSG,
			      "%zu trailing bytes at offset %zu after the %u records of nr_records",
			      total - c->off, c->off, hdr->nr_records);
	return 0;
}

int cpr_state_parse(const void *buf, size_t len, unsigned int flags,
		    struct cpr_state **out, enum cpr_state_error *why)
{
	struct parse_ctx c = { .p = buf, .flags = flags };
	struct cpr_state_header hdr;
	int ret;

	if (why)
		*why = CPR_STATE_OK;
	if (!out || (!buf && len) || (flags & ~CPR_PARSE_CHECK_FDS))
		return cpr_err(-EINVAL, "parse state: bad arguments (flags 0x%x)",
			       flags);

	ret = parse_header(&c, len, &hdr);
	if (ret)
		goto fail;
	c.st = calloc(1, sizeof(*c.st));
	if (!c.st) {
		ret = cpr_err(-ENOMEM, "parse state: allocate the store");
		goto fail;
	}
	ret = parse_records(&c, &hdr);
	if (ret) {
		cpr_state_free(c.st);
		goto fail;
	}
	*out = c.st;
	return 0;

fail:
	if (why)
		*why = c.why;
	return ret;
}

int cpr_state_from_memfd(int memfd, unsigned int flags,
			 struct cpr_state **out, enum cpr_state_error *why)
{
	const int all = F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK |
			F_SEAL_SEAL;
	enum cpr_state_error dummy;
	size_t size, done = 0;
	unsigned char *buf;
	struct stat sb;
	int seals, kind, ret;

	if (!why)
		why = &dummy;
	*why = CPR_STATE_OK;
	if (!out)
		return cpr_err(-EINVAL, "load state from fd %d: no result",
			       memfd);

	seals = fcntl(memfd, F_GET_SEALS);
	if (seals < 0 && errno == EBADF)
		return refuse(why, CPR_STATE_ENOT_MEMFD, -EBADF,
			      "state fd %d is not open, so not a memfd", memfd);
	if (seals < 0 && errno == EINVAL)
		return refuse(why, CPR_STATE_ENOT_MEMFD, -EBADFD,
			      "state fd %d is not a memfd: it has no seals",
			      memfd);
	if (seals < 0)
		return refuse(why, CPR_STATE_ENOT_MEMFD, -errno,
			      "state fd %d: read its seals to check it is a memfd",
			      memfd);
	/*
	 * tmpfs and hugetlbfs files answer F_GET_SEALS too, but they are
	 * born with F_SEAL_SEAL, which only memfd_create(MFD_ALLOW_SEALING)
	 * takes away: with all four seals the fd is a memfd, and reading
	 * its /proc link (tens of microseconds in a fresh process) is left
	 * to telling what else it is.
	 */
	kind = (seals & all) == all ? CPR_FD_MEMFD : cpr_fd_kind_of(memfd);
	if (kind < 0)
		return refuse(why, CPR_STATE_ENOT_MEMFD, kind,
			      "state fd %d: tell whether it is a memfd", memfd);
	if (kind != CPR_FD_MEMFD)
		return refuse(why, CPR_STATE_ENOT_MEMFD, -EBADFD,
			      "state fd %d (%s) is not a memfd",
			      memfd, cpr_fd_kind_name(kind));
	if ((seals & all) != all)
		return refuse(why, CPR_STATE_ENOT_SEALED, -EBADFD,
			      "state memfd %d is not sealed: it lacks%s%s%s%s",
			      memfd,
			      seals & F_SEAL_WRITE ? "" : " F_SEAL_WRITE",
			      seals & F_SEAL_GROW ? "" : " F_SEAL_GROW",
			      seals & F_SEAL_SHRINK ? "" : " F_SEAL_SHRINK",
			      seals & F_SEAL_SEAL ? "" : " F_SEAL_SEAL");

	if (fstat(memfd, &sb) < 0)
		return cpr_err(-errno, "state memfd %d: fstat", memfd);
	if (sb.st_size < 0 || (unsigned long long)sb.st_size > CPR_STATE_MAX)
		return refuse(why, CPR_STATE_ELENGTH, -EBADMSG,
			      "state memfd %d holds %lld bytes, more than the %u a state may have",
			      memfd, (long long)sb.st_size, CPR_STATE_MAX);
	size = sb.st_size;
	/*
	 * Sealed against writing and shrinking, the memfd can be parsed in
	 * place: its pages mapped in one go, nothing allocated or copied.
	 */
	buf = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE,
			  memfd, 0) : MAP_FAILED;
	if (buf != MAP_FAILED) {
		ret = cpr_state_parse(buf, size, flags, out, why);
		munmap(buf, size);
		return ret;
	}
	buf = malloc(size ? size : 1);
	if (!buf)
		return cpr_err(-ENOMEM, "state memfd %d: allocate %zu bytes",
			       memfd, size);
	while (done < size) {
		ssize_t n = pread(memfd, buf + done, size - done, done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = cpr_err(-errno, "read state memfd %d at offset %zu",
				      memfd, done);
			goto out;
		}
		if (!n)
			break;	/* sealed, so it cannot shrink; parse tells */
		done += n;
	}
	ret = cpr_state_parse(buf, done, flags, out, why);
out:
	free(buf);
	return ret;
}

static const char * const state_error_names[CPR_STATE_ERROR_MAX] = {
	[CPR_STATE_OK]		= "ok",
	[CPR_STATE_ETRUNCATED]	= "truncated",
	[CPR_STATE_EMAGIC]	= "bad magic",
	[CPR_STATE_EVERSION]	= "unknown version",
	[CPR_STATE_ELENGTH]	= "bad length",
	[CPR_STATE_ECHECKSUM]	= "checksum mismatch",
	[CPR_STATE_ERECORD]	= "bad record",
	[CPR_STATE_EOVERRUN]	= "record overruns",
	[CPR_STATE_EDUPLICATE]	= "duplicate",
	[CPR_STATE_EFD_CLOSED]	= "fd not open",
	[CPR_STATE_EFD_KIND]	= "fd of another kind",
	[CPR_STATE_ENOT_MEMFD]	= "not a memfd",
	[CPR_STATE_ENOT_SEALED]	= "not sealed",
};

const char *cpr_state_error_name(enum cpr_state_error e)
{
	if ((unsigned int)e >= CPR_STATE_ERROR_MAX)
		return "invalid";
	return state_error_names[e];
}
