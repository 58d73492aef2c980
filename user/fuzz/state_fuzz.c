// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target for cpr_state_parse(), the loader a successor runs on
 * the bytes its predecessor left behind.
 *
 * Each input is parsed twice: as it is, and as a copy whose header checksum
 * has been recomputed, so that mutations get past the CRC and reach the
 * records.  Fds are not checked (CPR_PARSE_CHECK_FDS is not given): the fd
 * numbers in an input mean nothing in this process.
 *
 * Whatever parses must serialise again, and that serialisation must parse
 * to the same fds and sections, in the same order, and serialise to the same
 * bytes; it must also be exactly as long as the input, since the format has
 * one encoding only.  Any difference is a bug: __builtin_trap().
 */
#include <errno.h>
#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "vfio_cpr/log.h"
#include "vfio_cpr/state.h"

/* Offset of the checksum in the version 1 header; see state.h. */
#define HDR_CHECKSUM_OFF	28
#define HDR_LEN			32

#define check(cond)					\
	do {						\
		if (!(cond))				\
			__builtin_trap();		\
	} while (0)

/*
 * libFuzzer's entry points, LLVMFuzzerInitialize() and
 * LLVMFuzzerTestOneInput(), given kernel-style names in C and their own
 * names as asm labels.
 */
int fuzz_init(int *argc, char ***argv) __asm__("LLVMFuzzerInitialize");
int fuzz_one(const __u8 *data, size_t size) __asm__("LLVMFuzzerTestOneInput");

int fuzz_init(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	cpr_log_set_quiet(true);
	return 0;
}

/* Same fds and sections, in the same order. */
static void check_same(const struct cpr_state *a, const struct cpr_state *b)
{
	unsigned int i, n;

	n = cpr_state_nr_fds(a);
	check(n == cpr_state_nr_fds(b));
	for (i = 0; i < n; i++) {
		const struct cpr_fd_rec *x = cpr_state_fd_at(a, i);
		const struct cpr_fd_rec *y = cpr_state_fd_at(b, i);

		check(x && y);
		check(!strcmp(x->name, y->name));
		check(x->index == y->index);
		check(x->fd == y->fd);
		check(x->kind == y->kind);
		check(cpr_state_find_fd(b, x->name, x->index) == x->fd);
	}
	check(!cpr_state_fd_at(a, n));

	n = cpr_state_nr_sections(a);
	check(n == cpr_state_nr_sections(b));
	for (i = 0; i < n; i++) {
		const char *xn, *yn;
		const void *xd, *yd, *found;
		size_t xl, yl, fl;

		check(!cpr_state_section_at(a, i, &xn, &xd, &xl));
		check(!cpr_state_section_at(b, i, &yn, &yd, &yl));
		check(!strcmp(xn, yn));
		check(xl == yl);
		check(!memcmp(xd, yd, xl));
		found = cpr_state_get_section(b, xn, &fl);
		check(found && fl == xl && !memcmp(found, xd, xl));
	}
	check(cpr_state_section_at(a, n, NULL, NULL, NULL) == -ENOENT);
}

static void one_input(const __u8 *data, size_t size)
{
	enum cpr_state_error why = CPR_STATE_ERROR_MAX;
	struct cpr_state *st = NULL, *again = NULL;
	void *buf = NULL, *buf2 = NULL;
	size_t len, len2;
	int ret;

	ret = cpr_state_parse(data, size, 0, &st, &why);
	if (ret) {
		/* Refused: a reason, and nothing handed out. */
		check(ret < 0 && !st);
		check(why > CPR_STATE_OK && why < CPR_STATE_ERROR_MAX);
		check(cpr_last_error()[0]);
		return;
	}
	check(st && why == CPR_STATE_OK);

	check(!cpr_state_to_buf(st, &buf, &len));
	check(len == size);
	check(!cpr_state_parse(buf, len, 0, &again, &why));
	check(why == CPR_STATE_OK);
	check_same(st, again);
	check_same(again, st);
	check(!cpr_state_to_buf(again, &buf2, &len2));
	check(len2 == len && !memcmp(buf, buf2, len));

	free(buf2);
	free(buf);
	cpr_state_free(again);
	cpr_state_free(st);
}

int fuzz_one(const __u8 *data, size_t size)
{
	static const __u8 zero[4];
	__u8 *copy;
	__u32 crc;

	one_input(data, size);
	if (size < HDR_LEN)
		return 0;

	/* Again with a checksum that matches, to get past the CRC. */
	copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	crc = cpr_crc32(0, copy, HDR_CHECKSUM_OFF);
	crc = cpr_crc32(crc, zero, sizeof(zero));
	crc = cpr_crc32(crc, copy + HDR_CHECKSUM_OFF + 4,
			size - HDR_CHECKSUM_OFF - 4);
	if (memcmp(copy + HDR_CHECKSUM_OFF, &crc, sizeof(crc))) {
		memcpy(copy + HDR_CHECKSUM_OFF, &crc, sizeof(crc));
		one_input(copy, size);
	}
	free(copy);
	return 0;
}
