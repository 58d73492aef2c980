/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * MSI-X as the tests take it, within what the kernel grants: every entry
 * of the table if the kernel has a host vector for each (not asked for
 * where the table is wider than the machine's CPUs could ever hold);
 * else (said in a '# ' line) a sparse set spread over the whole table - 0,
 * 1, even steps, the last entry - or, where even that is refused, the
 * widest prefix the kernel grants.  A device that cannot get one vector fails.  Shared by
 * vfio_cpr_test and vmm_cpr_test.
 */
#ifndef VFIO_CPR_MSIX_TAKE_H
#define VFIO_CPR_MSIX_TAKE_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/utsname.h>

#include <linux/vfio.h>

#include "cpr_assert.h"
#include "cpr_vector_set.h"
#include "vfio_cpr/log.h"
#include "vfio_cpr/vectors.h"
#include "vfio_cpr/vfio.h"

/* The most entries of a sparse set: a table of 2048 gets 24. */
#define CPR_TEST_SPARSE_ENTRIES	24

/*
 * @n entries spread over a table of @table: all of them if @n is the
 * table size, else 0, 1, the rest at even steps, and the last entry.
 */
static inline void cpr_test_spread_entries(unsigned int table, unsigned int n,
					   unsigned int *e)
{
	unsigned int k;

	for (k = 0; k < n; k++)
		e[k] = n == table ? k : !k ? 0 : k + 1 == n ? table - 1 :
		       k == 1 ? 1 : 1 + (table - 2) * (k - 1) / (n - 2);
}

/*
 * Enable MSI-X of @d for @n @entries (NULL: 0 .. @n - 1) into *@vs;
 * -ENOSPC (the kernel has no room) is returned quietly, anything else
 * fails the test.  @label names the device.
 */
static inline int cpr_test_try_msix(struct cpr_vfio_dev *d, const char *label,
				    const unsigned int *entries,
				    unsigned int n, struct cpr_vectors **vs)
{
	int ret;

	cpr_log_set_quiet(true);
	ret = cpr_vfio_enable_msix(d, entries, n, vs);
	cpr_log_set_quiet(false);
	if (ret != -ENOSPC)
		CPR_ASSERT_RET_OK(ret, "enabling %u of the %u MSI-X entries of %s failed",
				  n, cpr_vfio_irq_count(d, VFIO_PCI_MSIX_IRQ_INDEX),
				  label);
	return ret;
}

/* Without dynamic MSI-X: the most entries 0 .. n - 1 the kernel grants. */
static inline unsigned int cpr_test_widest_prefix(struct cpr_vfio_dev *d,
						  const char *label,
						  unsigned int table,
						  struct cpr_vectors **vs)
{
	unsigned int lo = 0, hi = table, mid;

	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		if (cpr_test_try_msix(d, label, NULL, mid, vs)) {
			hi = mid;
			continue;
		}
		lo = mid;
		CPR_ASSERT_OK(cpr_vfio_irq_disable(d, VFIO_PCI_MSIX_IRQ_INDEX),
			      "disabling MSI-X of %s after trying %u entries failed",
			      label, mid);
		cpr_vectors_free(*vs, true);
		*vs = NULL;
	}
	CPR_ASSERT_LT(0, lo, "%s cannot get one MSI-X vector from the kernel: %s",
		      label, cpr_last_error());
	CPR_ASSERT_OK(cpr_test_try_msix(d, label, NULL, lo, vs),
		      "enabling MSI-X entries 0-%u of %s, granted a moment ago, failed",
		      lo - 1, label);
	return lo;
}

/*
 * The most interrupt vectors this machine could ever grant at once, where
 * that is known; 0 where not.  On x86 (the running kernel's: uname) a CPU
 * has 256 vectors, the first 32 of them exceptions (and the kernel keeps
 * some more), so a table wider than 224 a CPU is refused whole, whatever
 * else holds vectors.
 */
static inline unsigned int cpr_test_vector_ceiling(long *cpus)
{
	struct utsname u;
	bool x86;

	*cpus = sysconf(_SC_NPROCESSORS_ONLN);
	x86 = !uname(&u) && (!strcmp(u.machine, "x86_64") ||
			     (u.machine[0] == 'i' && !strcmp(u.machine + 2, "86")));
	return x86 && *cpus > 0 ? 224 * *cpus : 0;
}

/*
 * Take MSI-X of @d (@table entries, @label its name) into *@vs: the whole
 * table - not asked for where it is wider than the machine could grant -
 * or a sparse set spanning it - enabled with its first run of
 * entries and grown by the others where the kernel has dynamic MSI-X, in
 * one allocation of the whole table where it has not - or the widest
 * prefix the kernel grants.
 */
static inline void cpr_test_take_msix(struct cpr_vfio_dev *d, const char *label,
				      unsigned int table,
				      struct cpr_vectors **vs)
{
	const bool grow = cpr_vfio_msix_can_grow(d);
	unsigned int e[CPR_TEST_SPARSE_ENTRIES], n, ceiling;
	char list[256];
	long cpus;
	int ret;

	ceiling = cpr_test_vector_ceiling(&cpus);
	if (ceiling && table > ceiling) {
		fprintf(stdout,
			"# %s: MSI-X: all %u entries would need more vectors than the %ld CPU(s) here have (x86: 224 each at most): not asked for\n",
			label, table, cpus);
	} else {
		if (!cpr_test_try_msix(d, label, NULL, table, vs))
			return;
		printf("# %s: MSI-X: enabling all %u entries was refused: %s\n",
		       label, table, cpr_last_error());
	}
	CPR_ASSERT_LT(1, table, "%s cannot get one MSI-X vector from the kernel: %s",
		      label, cpr_last_error());
	n = table - 1 < CPR_TEST_SPARSE_ENTRIES ? table - 1 :
	    CPR_TEST_SPARSE_ENTRIES;
	do {
		cpr_test_spread_entries(table, n, e);
		ret = cpr_test_try_msix(d, label, e, n, vs);
		/* Fewer vectors help only where each entry is its own. */
	} while (ret && grow && (n /= 2));
	if (!ret) {
		fprintf(stdout,
			"# %s: MSI-X: going on with %u of the %u entries, spread over the table: %s (%s)\n",
			label, n, table,
			cpr_test_entries_text(e, n, list, sizeof(list)),
			grow ? "dynamic MSI-X: enabled with the first run, grown by the others" :
			"no dynamic MSI-X, VFIO_IRQ_INFO_NORESIZE: the whole table allocated at once, host vectors only for the entries given eventfds");
		return;
	}
	CPR_ASSERT_FALSE(grow, "%s cannot get one MSI-X vector from the kernel: %s",
			 label, cpr_last_error());
	n = cpr_test_widest_prefix(d, label, table, vs);
	fprintf(stdout,
		"# %s: MSI-X: the kernel refused the whole table for entries spread over it too (no dynamic MSI-X: VFIO_IRQ_INFO_NORESIZE); going on with the widest prefix it grants, entries 0 to %u\n",
		label, n - 1);
}

#endif /* VFIO_CPR_MSIX_TAKE_H */
