/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vfio-cpr, the reference program: shared declarations of its parts.
 *
 *   main.c     options, sub-commands, exit codes
 *   run.c      the VMM: devices, VM, vCPU thread, handoffs by exec
 *   load.c     the ping-pong load process
 *   inspect.c  decode and validate a saved CPR state
 *   report.c   results as text or JSON
 */
#ifndef VFIO_CPR_PROG_H
#define VFIO_CPR_PROG_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>
#include <linux/types.h>

#include "vfio_cpr/compiler.h"
#include "vfio_cpr/kvm.h"
#include "vfio_cpr/state.h"
#include "vfio_cpr/vectors.h"
#include "vfio_cpr/vfio.h"

/* Exit codes (documented in the man page and --help). */
#define VC_EXIT_OK		0	/* every raise acknowledged */
#define VC_EXIT_LOST		1	/* a raise unacknowledged, or a check failed */
#define VC_EXIT_USAGE		2
#define VC_EXIT_SETUP		3	/* device, KVM or handoff setup failed */
#define VC_EXIT_ENV		4	/* no KVM, device lacks the IRQ type (SKIP) */

#define VC_MAX_DEVICES		8
#define VC_INTX_PIN		20	/* INTx goes in through this IOAPIC pin */
#define VC_INTX_VEC		0x60	/* ... as this LAPIC vector */
#define VC_NOVDEV_NAME		"eventfd"	/* the no-device vector set */

struct vc_opts {
	const char *devices[VC_MAX_DEVICES];
	unsigned int nr_devices;
	unsigned int irq_index;		/* VFIO_PCI_*_IRQ_INDEX */
	unsigned int vectors;		/* 0: all the device has (64 w/o) */
	unsigned int generations;
	unsigned int dwell_ms;		/* ping-pong time per generation */
	unsigned int timeout_ms;	/* bound on one raise's wait */
	bool json;
	bool quiet;
	const char *dump_state;		/* write each handed-off state here */
};

int vc_parse_run_opts(int argc, char **argv, struct vc_opts *o);

/* One interrupt the load can raise and the guest must take. */
struct vc_target {
	unsigned int dev;		/* index in vc_opts.devices, or 0 */
	unsigned int vector;		/* MSI/MSI-X vector, 0 for INTx */
	unsigned int lapic_vec;		/* what the guest reports */
};

/* Per generation, in the shared page (index = generation). */
struct vc_gen {
	__u64 stop_ns;		/* predecessor stopped its vCPU: blackout start */
	__u64 attached_ns;	/* this generation attached everything */
	__u64 first_ns;		/* first interrupt taken in this VM */
	__u32 open_fds;
	__u32 rss_kb;
	/* At the stop before this generation: the ping-pong, the carry. */
	__u64 stop_raised_seq, stop_acked_seq;
	__u32 carried;		/* vectors pending in the old LAPIC, carried */
	/* The raise in flight at the stop: where it was (1 yes, 0 no, <0 ?). */
	__u64 detached_ns;	/* the predecessor's detach returned */
	__s32 flight_irr_stop;	/* in the old LAPIC's IRR after the vCPU stop */
	__s32 flight_evt_detach;	/* its eventfd counting after the detach */
	__u32 routing_commits;	/* KVM_SET_GSI_ROUTING calls of its attach */
};

/*
 * The page the VMM (across all its generations) and the load share: a
 * memfd preserved in the CPR state.  Ping-pong: the load publishes
 * raised_vec then raised_seq and raises; the VMM's vCPU thread, when the
 * guest reports raised_vec, stores acked_seq = raised_seq.
 */
#define VC_SHARED_MAGIC		0x56435050u	/* "PPCV" */
#define VC_LOAD_ERR_MAX		512

struct vc_shared {
	__u32 magic;
	__u32 nr_gens;		/* generations + 1 entries in gen[] */
	__u64 raised_seq;
	__u64 raised_write_ns;	/* when the load's raise returned */
	__u32 raised_vec;
	__u32 stop;		/* VMM: finish the round trip in flight, exit */
	__u64 acked_seq;
	__u64 strays;		/* vectors taken that nobody waited for */
	__u64 taken;		/* vectors the guest took, all generations */
	/* The load's report. */
	__u32 load_done;
	__u32 load_failed;
	__u64 raised;
	__u64 delivered;
	__u64 unacked;
	__u64 max_wait_ns;
	__u64 max_wait_gen;
	__u64 generation;	/* the VMM's current generation */
	char load_error[VC_LOAD_ERR_MAX];
	struct vc_gen gen[];
};

/* What the VMM holds in one generation. */
struct vc_dev {
	struct cpr_vfio_dev *vdev;	/* NULL: plain eventfds */
	struct cpr_vectors *vs;		/* MSI / MSI-X, else NULL */
	bool intx;
};

struct vc_vmm {
	struct vc_opts *o;
	struct cpr_state *st;
	__u64 generation;
	struct vc_shared *sh;
	size_t sh_size;
	int sh_fd;
	pid_t load_pid;
	struct cpr_vm *vm;
	struct vc_dev dev[VC_MAX_DEVICES];
	unsigned int nr_dev;		/* >= 1: without devices, one set */
	struct vc_target *targets;
	unsigned int nr_targets;
};

int vc_run(struct vc_opts *o, char **argv);
/* The load process's body; never returns. */
void vc_load_main(struct vc_vmm *m) __noreturn;
int vc_inspect(int argc, char **argv);

/* report.c */
void vc_report(const struct vc_vmm *m, bool passed, FILE *f);
void vc_progress(const struct vc_vmm *m);

#endif /* VFIO_CPR_PROG_H */
