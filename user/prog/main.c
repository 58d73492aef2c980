// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-cpr: the vfio_cpr reference program.
 *
 *   vfio-cpr run [options]       hold devices and a KVM VM, hand off by
 *                                exec G times under ping-pong load
 *   vfio-cpr inspect [FD|FILE]   decode and validate a saved CPR state
 *
 * See vfio-cpr(8) (user/man/vfio-cpr.8) for the whole story.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfio_cpr_prog.h"

static void print_usage(FILE *f)
{
	fprintf(f,
		"usage: vfio-cpr run [--device BDF|UUID]... [--irq msix|msi|intx]\n"
		"                    [--vectors N] [--generations G] [--dwell MS]\n"
		"                    [--timeout MS] [--dump-state FILE] [--json] [--quiet]\n"
		"       vfio-cpr inspect [--json] [FD|FILE]\n"
		"       vfio-cpr --help\n"
		"\n"
		"run: hold the devices (none: N plain eventfds stand in for one) and a\n"
		"KVM VM, and hand off to a new copy of this program by exec G times,\n"
		"each successor rebuilding the vectors from the inherited fds and\n"
		"attaching them to a new VM.  A load process raises interrupts in\n"
		"ping-pong the whole time: each must be taken by the guest vCPU within\n"
		"--timeout ms.  Prints raised / delivered / longest wait and each\n"
		"generation's blackout.\n"
		"\n"
		"  --device D       vfio-pci BDF (0000:00:03.0) or mdev UUID; repeatable\n"
		"  --irq T          msix (default), msi or intx\n"
		"  --vectors N      MSI/MSI-X vectors to use (default: all the device has,\n"
		"                   or what the kernel grants; 64 without a device; max %u)\n"
		"  --generations G  handoffs (default 10)\n"
		"  --dwell MS       ping-pong time in each generation (default 20)\n"
		"  --timeout MS     longest a raise may wait for the guest (default 5000)\n"
		"  --dump-state F   write each state handed off to F (for inspect)\n"
		"  --json           machine output on stdout\n"
		"  --quiet          no progress on a terminal\n"
		"\n"
		"inspect: FD is an open state memfd (e.g. $VFIO_CPR_STATE_FD), FILE a\n"
		"state written by --dump-state; default: $VFIO_CPR_STATE_FD.\n"
		"\n"
		"exit: 0 all acknowledged / state valid, 1 a raise unacknowledged or a\n"
		"check failed / state invalid, 2 usage, 3 setup failed, 4 no usable\n"
		"/dev/kvm or a device lacks the --irq type.\n", CPR_VECTORS_MAX);
}

static int parse_uint(const char *opt, const char *s, unsigned int min,
		      unsigned int max, unsigned int *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
		fprintf(stderr, "vfio-cpr: %s wants an integer in [%u, %u], not '%s'\n",
			opt, min, max, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int vc_parse_run_opts(int argc, char **argv, struct vc_opts *o)
{
	static const struct option longopts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "irq", required_argument, NULL, 'i' },
		{ "vectors", required_argument, NULL, 'n' },
		{ "generations", required_argument, NULL, 'g' },
		{ "dwell", required_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' },
		{ "dump-state", required_argument, NULL, 'D' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->irq_index = VFIO_PCI_MSIX_IRQ_INDEX;
	o->generations = 10;
	o->dwell_ms = 20;
	o->timeout_ms = 5000;
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:i:n:g:w:t:D:jqh", longopts,
				NULL)) != -1) {
		switch (c) {
		case 'd':
			if (o->nr_devices == VC_MAX_DEVICES) {
				fprintf(stderr, "vfio-cpr: at most %d devices\n",
					VC_MAX_DEVICES);
				return -EINVAL;
			}
			o->devices[o->nr_devices++] = optarg;
			break;
		case 'i':
			if (!strcmp(optarg, "msix")) {
				o->irq_index = VFIO_PCI_MSIX_IRQ_INDEX;
			} else if (!strcmp(optarg, "msi")) {
				o->irq_index = VFIO_PCI_MSI_IRQ_INDEX;
			} else if (!strcmp(optarg, "intx")) {
				o->irq_index = VFIO_PCI_INTX_IRQ_INDEX;
			} else {
				fprintf(stderr,
					"vfio-cpr: --irq wants msix, msi or intx, not '%s'\n",
					optarg);
				return -EINVAL;
			}
			break;
		case 'n':
			if (parse_uint("--vectors", optarg, 1, CPR_VECTORS_MAX,
				       &o->vectors))
				return -EINVAL;
			break;
		case 'g':
			if (parse_uint("--generations", optarg, 0, 1000000,
				       &o->generations))
				return -EINVAL;
			break;
		case 'w':
			if (parse_uint("--dwell", optarg, 0, 3600000, &o->dwell_ms))
				return -EINVAL;
			break;
		case 't':
			if (parse_uint("--timeout", optarg, 1, 3600000,
				       &o->timeout_ms))
				return -EINVAL;
			break;
		case 'D':
			o->dump_state = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			print_usage(stdout);
			exit(VC_EXIT_OK);
		default:
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vfio-cpr run: unexpected argument '%s'\n",
			argv[optind]);
		return -EINVAL;
	}
	if (!o->nr_devices && o->irq_index != VFIO_PCI_MSIX_IRQ_INDEX) {
		fprintf(stderr,
			"vfio-cpr run: --irq %s needs a --device (without one, eventfds are MSI-X)\n",
			cpr_vfio_irq_name(o->irq_index));
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct vc_opts o;

	if (argc < 2) {
		print_usage(stderr);
		return VC_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		print_usage(stdout);
		return VC_EXIT_OK;
	}
	if (!strcmp(argv[1], "run")) {
		if (vc_parse_run_opts(argc - 1, argv + 1, &o)) {
			print_usage(stderr);
			return VC_EXIT_USAGE;
		}
		return vc_run(&o, argv);
	}
	if (!strcmp(argv[1], "inspect"))
		return vc_inspect(argc - 1, argv + 1);
	fprintf(stderr, "vfio-cpr: unknown command '%s'\n", argv[1]);
	print_usage(stderr);
	return VC_EXIT_USAGE;
}
