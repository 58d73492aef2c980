// SPDX-License-Identifier: GPL-2.0-only
/*
 * resetup_bench: what CPR saves a successor on a real VFIO device.
 *
 * For each device given (BDFs; VFIO_CPR_DEVICES by default) with MSI-X,
 * ROUNDS times: enable all its MSI-X vectors and route them into a VM,
 * detach them as a handoff does, then time, into a new VM each,
 *
 *   reclaim   the CPR successor: rebuild the vectors from the state and the
 *             inherited eventfds (cpr_vectors_claim()), one routing commit,
 *             the irqfds - no VFIO ioctl at all;
 *   re-setup  a successor without CPR: new eventfds, VFIO_DEVICE_SET_IRQS
 *             disable and enable with them (vfio-pci reprograms the device's
 *             MSI-X table), the same routing commit and irqfds.
 *
 * Prints the median and spread of each and the ratio re-setup / reclaim.
 * Usage: resetup_bench [-r ROUNDS] [BDF...]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vfio_cpr/fd.h"
#include "vfio_cpr/kvm.h"
#include "vfio_cpr/log.h"
#include "vfio_cpr/vectors.h"
#include "vfio_cpr/vfio.h"

#define MAX_ROUNDS	200

static int cmp_u64(const void *a, const void *b)
{
	__u64 x = *(const __u64 *)a, y = *(const __u64 *)b;

	return (x > y) - (x < y);
}

static double pct(__u64 *v, unsigned int n, unsigned int p)
{
	return v[(n - 1) * p / 100] / 1e6;
}

/* One round; fills *@reclaim and *@resetup (ns).  0 or -errno. */
static int one_round(const char *bdf, __u64 *reclaim, __u64 *resetup)
{
	struct cpr_state *st = cpr_state_new(), *st2 = cpr_state_new();
	struct cpr_vectors *vs = NULL, *vs2 = NULL, *vs3 = NULL;
	struct cpr_vm *vm_a = NULL, *vm_b = NULL, *vm_c = NULL;
	struct cpr_vfio_dev *d = NULL;
	unsigned int n, i;
	int *fds = NULL;
	__u64 t0;
	int ret;

	if (!st || !st2)
		return -ENOMEM;
	ret = cpr_vfio_open(st, bdf, &d);
	if (ret)
		goto out;
	n = cpr_vfio_irq_count(d, VFIO_PCI_MSIX_IRQ_INDEX);
	ret = n ? 0 : cpr_err(-ENODEV, "%s has no MSI-X", bdf);
	if (!ret)
		ret = cpr_vfio_enable_msi(d, VFIO_PCI_MSIX_IRQ_INDEX, n, &vs);
	if (!ret)
		ret = cpr_vm_create(&vm_a, 1);
	if (!ret)
		ret = cpr_vectors_attach(vs, vm_a);
	if (!ret)
		ret = cpr_vectors_detach(vs);
	if (!ret)
		ret = cpr_vm_create(&vm_b, 1);
	if (ret)
		goto out;

	/* The CPR successor: everything from the state, nothing to VFIO. */
	t0 = cpr_now_ns();
	ret = cpr_vectors_claim(st, bdf, vm_b, &vs2);
	*reclaim = cpr_now_ns() - t0;
	if (!ret)
		ret = cpr_vectors_detach(vs2);
	if (!ret)
		ret = cpr_vm_create(&vm_c, 1);
	if (ret)
		goto out;

	/* Without CPR: new eventfds, the device set up again. */
	t0 = cpr_now_ns();
	ret = cpr_vectors_create(st2, "resetup", CPR_IRQ_MSIX, n, CPR_VEC_KVM,
				 &vs3);
	fds = calloc(n, sizeof(*fds));
	if (!ret && !fds)
		ret = -ENOMEM;
	for (i = 0; !ret && i < n; i++) {
		fds[i] = vs3->v[i].kvm_fd;
		vs3->v[i].msg = vs->v[i].msg;
	}
	if (!ret)
		ret = cpr_vfio_irq_disable(d, VFIO_PCI_MSIX_IRQ_INDEX);
	if (!ret)
		ret = cpr_vfio_irq_set_eventfds(d, VFIO_PCI_MSIX_IRQ_INDEX, 0, n,
						fds);
	if (!ret)
		ret = cpr_vectors_attach(vs3, vm_c);
	*resetup = cpr_now_ns() - t0;
	if (!ret)
		cpr_vfio_irq_disable(d, VFIO_PCI_MSIX_IRQ_INDEX);
out:
	free(fds);
	cpr_vectors_free(vs3, true);
	cpr_vectors_free(vs2, false);
	cpr_vectors_free(vs, true);
	cpr_vm_destroy(vm_c);
	cpr_vm_destroy(vm_b);
	cpr_vm_destroy(vm_a);
	cpr_vfio_free(d, true);
	cpr_state_free(st2);
	cpr_state_free(st);
	return ret;
}

static int bench_device(const char *bdf, unsigned int rounds)
{
	__u64 a[MAX_ROUNDS], b[MAX_ROUNDS];
	struct cpr_state *st = cpr_state_new();
	struct cpr_vfio_dev *d;
	unsigned int i, n = 0;
	int ret;

	if (!st)
		return -ENOMEM;
	ret = cpr_vfio_open(st, bdf, &d);
	if (!ret) {
		n = cpr_vfio_irq_count(d, VFIO_PCI_MSIX_IRQ_INDEX);
		cpr_vfio_free(d, true);
	}
	cpr_state_free(st);
	if (ret || !n) {
		printf("# %s: %s: not benchmarked\n", bdf,
		       ret ? cpr_last_error() : "no MSI-X");
		return ret;
	}
	for (i = 0; i < rounds; i++) {
		ret = one_round(bdf, &a[i], &b[i]);
		if (ret) {
			fprintf(stderr, "resetup_bench: %s round %u: %s\n", bdf, i,
				cpr_last_error());
			return ret;
		}
	}
	qsort(a, rounds, sizeof(a[0]), cmp_u64);
	qsort(b, rounds, sizeof(b[0]), cmp_u64);
	printf("%-14s %7u %9.3f [%7.3f .. %7.3f] %9.3f [%7.3f .. %7.3f] %8.1f\n",
	       bdf, n, pct(a, rounds, 50), pct(a, rounds, 10), pct(a, rounds, 90),
	       pct(b, rounds, 50), pct(b, rounds, 10), pct(b, rounds, 90),
	       pct(b, rounds, 50) / pct(a, rounds, 50));
	return 0;
}

int main(int argc, char **argv)
{
	unsigned int rounds = 20;
	char *list = NULL, *tok, *save = NULL;
	int opt, i, ret = 0;

	while ((opt = getopt(argc, argv, "r:")) != -1) {
		if (opt != 'r' || atoi(optarg) < 1 || atoi(optarg) > MAX_ROUNDS) {
			fprintf(stderr, "usage: resetup_bench [-r ROUNDS (1-%d)] [BDF...]\n",
				MAX_ROUNDS);
			return 2;
		}
		rounds = atoi(optarg);
	}
	cpr_log_set_quiet(true);
	printf("# MSI-X: reclaim from the inherited fds (CPR) vs re-setup\n");
	printf("# (new eventfds + VFIO_DEVICE_SET_IRQS), %u rounds, ms: median [p10 .. p90]\n",
	       rounds);
	printf("%-14s %7s %31s %31s %8s\n", "device", "vectors", "reclaim",
	       "re-setup", "ratio");
	if (optind < argc) {
		for (i = optind; i < argc; i++)
			ret |= bench_device(argv[i], rounds);
		return ret ? 1 : 0;
	}
	if (getenv("VFIO_CPR_DEVICES"))
		list = strdup(getenv("VFIO_CPR_DEVICES"));
	for (tok = list ? strtok_r(list, ",", &save) : NULL; tok;
	     tok = strtok_r(NULL, ",", &save))
		if (!strchr(tok, '-'))	/* PCI devices; mdevs have no MSI-X */
			ret |= bench_device(tok, rounds);
	free(list);
	return ret ? 1 : 0;
}
