/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What the programs of blackout_bench share: the chain protocol (argv of
 * each generation, the result line it writes back), the clock, and the
 * LAPIC reads that end a blackout.  Everything here is bare libc and KVM
 * uapi, so that blackout_floor links nothing else.
 *
 * A chain generation is started as
 *	PROG --chain MODE NR GEN LEN RESULT_FD T_EXEC [FLOOR_FD_BASE]
 * and writes, for GEN >= 1, one line to RESULT_FD:
 *	R MODE NR GEN exec_call main resumed vm attached seen
 * the times (ns) from the handoff start to each phase.
 */
#ifndef VFIO_CPR_BENCH_H
#define VFIO_CPR_BENCH_H

#include <errno.h>
#include <linux/kvm.h>
#include <linux/types.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define BENCH_CHAIN_ARG		"--chain"
#define BENCH_IRR_TIMEOUT_NS	(2000ull * 1000 * 1000)
#define BENCH_APIC_SVR		0xf0
#define BENCH_APIC_ISR		0x100
#define BENCH_APIC_IRR		0x200

/*
 * lib, floor and naive are the comparison; lib-release (the library's
 * handoff without the relay ahead) and floor-pre (the floor with its old
 * irqfds gone before the clock starts) show where the time goes.
 */
enum bench_mode {
	MODE_LIB, MODE_FLOOR, MODE_NAIVE, MODE_LIB_RELEASE, MODE_FLOOR_PRE,
	NR_MODES
};

static const char *const bench_mode_names[NR_MODES] = {
	[MODE_LIB] = "lib", [MODE_FLOOR] = "floor", [MODE_NAIVE] = "naive",
	[MODE_LIB_RELEASE] = "lib-release", [MODE_FLOOR_PRE] = "floor-pre",
};

static inline int bench_mode_is_floor(enum bench_mode m)
{
	return m == MODE_FLOOR || m == MODE_FLOOR_PRE;
}

/*
 * Phases of one handoff: the predecessor calls exec, the successor's
 * main() runs, has its state, has its VM, has attached the vectors, sees
 * the interrupt (the end of the blackout).
 */
enum bench_phase { PH_EXEC, PH_MAIN, PH_RESUMED, PH_VM, PH_ATTACHED, PH_SEEN,
		   NR_PHASES };

static const char *const bench_phase_names[NR_PHASES] = {
	"exec_call", "main", "resumed", "vm", "attached", "seen",
};

/* One generation of a chain. */
struct chain {
	enum bench_mode mode;
	unsigned int nr;	/* vectors */
	unsigned int gen;	/* this process's generation */
	unsigned int len;	/* handoffs in the chain */
	int result_fd;
	__u64 start;		/* the handoff start, absolute */
	__u64 t[NR_PHASES];	/* absolute */
};

static inline __u64 bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
}

static inline void bench_die(const char *what, int err)
{
	fprintf(stderr, "blackout_bench: %s%s%s\n", what, err ? ": " : "",
		err ? strerror(err) : "");
	fflush(NULL);
	exit(1);
}

static inline unsigned long bench_parse_ul(const char *s, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (!*s || *end || errno) {
		fprintf(stderr, "blackout_bench: %s '%s' is not a number\n",
			what, s);
		exit(2);
	}
	return v;
}

/* argv of a chain generation; @t_main is when its main() started. */
static inline void bench_chain_parse(struct chain *c, int argc, char **argv,
				     __u64 t_main)
{
	memset(c, 0, sizeof(*c));
	if (argc < 8 || strcmp(argv[1], BENCH_CHAIN_ARG))
		bench_die("chain: bad arguments", 0);
	c->mode = bench_parse_ul(argv[2], "mode");
	c->nr = bench_parse_ul(argv[3], "vector count");
	c->gen = bench_parse_ul(argv[4], "generation");
	c->len = bench_parse_ul(argv[5], "chain length");
	c->result_fd = bench_parse_ul(argv[6], "result fd");
	c->t[PH_EXEC] = bench_parse_ul(argv[7], "exec time");
	c->t[PH_MAIN] = t_main;
	if (c->mode >= NR_MODES || !c->nr || c->nr > 2048)
		bench_die("chain: bad mode or vector count", 0);
}

/* The argv of the next generation; the buffers live in @c's caller. */
struct chain_argv {
	char mode[16], nr[16], gen[16], len[16], fd[16], t[32], extra[16];
	char *argv[10];
};

static inline char **bench_next_argv(struct chain_argv *a,
				     const struct chain *c, const char *prog,
				     int extra)
{
	snprintf(a->mode, sizeof(a->mode), "%d", c->mode);
	snprintf(a->nr, sizeof(a->nr), "%u", c->nr);
	snprintf(a->gen, sizeof(a->gen), "%u", c->gen + 1);
	snprintf(a->len, sizeof(a->len), "%u", c->len);
	snprintf(a->fd, sizeof(a->fd), "%d", c->result_fd);
	snprintf(a->extra, sizeof(a->extra), "%d", extra);
	a->argv[0] = (char *)prog;
	a->argv[1] = (char *)BENCH_CHAIN_ARG;
	a->argv[2] = a->mode;
	a->argv[3] = a->nr;
	a->argv[4] = a->gen;
	a->argv[5] = a->len;
	a->argv[6] = a->fd;
	a->argv[7] = a->t;
	a->argv[8] = extra >= 0 ? a->extra : NULL;
	a->argv[9] = NULL;
	/* Last: the exec comes right after. */
	snprintf(a->t, sizeof(a->t), "%llu",
		 (unsigned long long)bench_now_ns());
	return a->argv;
}

static inline void bench_report(const struct chain *c)
{
	char line[256];
	int n, i;

	n = snprintf(line, sizeof(line), "R %s %u %u",
		     bench_mode_names[c->mode], c->nr, c->gen);
	for (i = 0; i < NR_PHASES; i++)
		n += snprintf(line + n, sizeof(line) - n, " %llu",
			      (unsigned long long)(c->t[i] - c->start));
	n += snprintf(line + n, sizeof(line) - n, "\n");
	if (write(c->result_fd, line, n) != n)
		bench_die("writing a result", errno);
}

static inline void bench_raise(int fd)
{
	__u64 one = 1;

	if (write(fd, &one, sizeof(one)) != sizeof(one))
		bench_die("raising an eventfd", errno);
}

static inline __u32 bench_reg32(const struct kvm_lapic_state *s,
				unsigned int off)
{
	__u32 v;

	memcpy(&v, &s->regs[off], sizeof(v));
	return v;
}

/*
 * Read the LAPIC until @vec is in its IRR, the same in every mode.  An
 * eventfd signalled before its irqfd was attached is injected by a kernel
 * worker, which may be queued on this CPU: yield to it between reads.
 */
static inline void bench_wait_irr(int vcpu_fd, unsigned int vec)
{
	__u64 end = bench_now_ns() + BENCH_IRR_TIMEOUT_NS;
	struct kvm_lapic_state s;

	do {
		if (ioctl(vcpu_fd, KVM_GET_LAPIC, &s) < 0)
			bench_die("KVM_GET_LAPIC", errno);
		if (bench_reg32(&s, BENCH_APIC_IRR + 0x10 * (vec / 32)) &
		    (1u << (vec % 32)))
			return;
		sched_yield();
	} while (bench_now_ns() < end);
	fprintf(stderr, "blackout_bench: vector 0x%x never reached the new VM's LAPIC\n",
		vec);
	exit(1);
}

/* Clear IRR and ISR, so that the next handoff starts from nothing. */
static inline void bench_lapic_clear(int vcpu_fd)
{
	struct kvm_lapic_state s;

	if (ioctl(vcpu_fd, KVM_GET_LAPIC, &s) < 0)
		bench_die("KVM_GET_LAPIC", errno);
	/* Eight registers 16 bytes apart each: the gaps are reserved. */
	memset(&s.regs[BENCH_APIC_IRR], 0, 0x80);
	memset(&s.regs[BENCH_APIC_ISR], 0, 0x80);
	if (ioctl(vcpu_fd, KVM_SET_LAPIC, &s) < 0)
		bench_die("KVM_SET_LAPIC", errno);
}

#endif /* VFIO_CPR_BENCH_H */
