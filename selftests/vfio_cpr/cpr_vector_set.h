/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The vector set a predecessor held, in a state section of the test's own
 * - table size, count, entries - so that its successor checks the claim
 * against it rather than trusting the library's section to say what the
 * predecessor had.  Shared by vfio_cpr_test and vmm_cpr_test.
 */
#ifndef VFIO_CPR_VECTOR_SET_H
#define VFIO_CPR_VECTOR_SET_H

#include <stdio.h>
#include <string.h>

#include <linux/types.h>

#include "cpr_assert.h"
#include "vfio_cpr/state.h"
#include "vfio_cpr/vectors.h"

/* "0-1, 94, 187, 2047": the @n entries @e, runs shortened. */
static inline const char *cpr_test_entries_text(const unsigned int *e,
						unsigned int n, char *buf,
						size_t size)
{
	unsigned int i, j;
	size_t used = 0;

	buf[0] = '\0';
	for (i = 0; i < n && used < size; i = j) {
		for (j = i + 1; j < n && e[j] == e[j - 1] + 1; j++)
			;
		used += snprintf(buf + used, size - used, j - i > 1 ?
				 "%s%u-%u" : "%s%u", i ? ", " : "", e[i],
				 e[j - 1]);
	}
	return buf;
}

/* Record @vs under @sec in @st; @label names the device. */
static inline void cpr_test_set_record(struct cpr_state *st, const char *sec,
				       const struct cpr_vectors *vs,
				       const char *label)
{
	__u32 rec[2 + CPR_VECTORS_MAX];
	unsigned int i;

	rec[0] = vs->table_size;
	rec[1] = vs->nr;
	for (i = 0; i < vs->nr; i++)
		rec[2 + i] = vs->v[i].entry;
	CPR_ASSERT_OK(cpr_state_set_section(st, sec, rec,
					    (2 + vs->nr) * sizeof(rec[0])),
		      "recording the vector set of %s in the state failed",
		      label);
}

/*
 * The successor's claim @vs for VM #@prev + 1: exactly the entries VM
 * #@prev used as recorded under @sec, each with the eventfds saved under
 * that entry, and the same table size; then a '# ' line lists them.
 * @label names the device, @irq its IRQ type, @word what an entry is
 * called ("entry", "vector").
 */
static inline void cpr_test_set_check_claim(struct cpr_state *st,
					    const char *sec,
					    const struct cpr_vectors *vs,
					    const char *label, const char *irq,
					    const char *word,
					    unsigned long long prev)
{
	const __u32 *rec;
	char list[1024];
	unsigned int i;
	size_t len = 0;
	int pos;

	rec = cpr_state_get_section(st, sec, &len);
	CPR_ASSERT_TRUE(rec && len >= 8 && len == (2 + rec[1]) * sizeof(*rec),
			"the predecessor did not record the vector set of %s",
			label);
	for (i = 0; i < rec[1]; i++) {
		pos = cpr_vectors_find(vs, rec[2 + i]);
		CPR_ASSERT_LE(0, pos,
			      "%s %s %s %u, one of the %u VM #%llu used (table of %u), was not claimed for VM #%llu",
			      label, irq, word, rec[2 + i], rec[1], prev,
			      rec[0], prev + 1);
		CPR_ASSERT_TRUE(vs->v[pos].kvm_fd >= 0 &&
				vs->v[pos].interrupt_fd >= 0,
				"%s %s %s %u was claimed for VM #%llu without its eventfds: none saved under that entry",
				label, irq, word, rec[2 + i], prev + 1);
	}
	CPR_ASSERT_EQ(rec[1], vs->nr,
		      "the claim of %s for VM #%llu holds %u %s vectors, VM #%llu used %u: it made up entries",
		      label, prev + 1, vs->nr, irq, prev, rec[1]);
	CPR_ASSERT_EQ(rec[0], vs->table_size,
		      "the claim of %s for VM #%llu says the %s table has %u entries, VM #%llu had %u",
		      label, prev + 1, irq, vs->table_size, prev, rec[0]);
	printf("# %s %s generation %llu: claimed %u of %u %s: %s\n",
	       label, irq, prev + 1, vs->nr, vs->table_size,
	       strcmp(word, "entry") ? "vectors" : "table entries",
	       cpr_test_entries_text(rec + 2, rec[1], list, sizeof(list)));
}

#endif /* VFIO_CPR_VECTOR_SET_H */
