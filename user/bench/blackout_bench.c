// SPDX-License-Identifier: GPL-2.0-only
/*
 * blackout_bench: how long a device's interrupts go undelivered across an
 * exec handoff of the VMM, the project's handoff side by side with the
 * bare floor of the same kernel work and with a naive successor.
 *
 * The blackout is measured as in kvm_cpr_test: from the handoff start (the
 * moment the predecessor stops delivering into the old VM) to the moment
 * an interrupt raised in between shows in the new VM's LAPIC IRR.  The
 * interrupt comes from the vector attached last (nr - 1), so the blackout
 * ends only once every vector is live again.
 *
 *   lib	  the project's handoff.  Ahead of it, off the clock:
 *		  cpr_exec_prepare() (FD_CLOEXEC cleared) and
 *		  cpr_vectors_relay() (the irqfds handed to the library's relay
 *		  thread, so that KVM's slow irqfd teardown is done while
 *		  interrupts still flow).  The handoff: cpr_vectors_detach_vm()
 *		  (the start: the relay stopped, the old VM's fd closed, its
 *		  LAPIC read; the relay's epoll set and the old VM handed to
 *		  the successor to close), an interrupt raised, cpr_exec();
 *		  the successor:
 *		  cpr_resume_flags(CPR_RESUME_DEFER_CHECKS), cpr_vm_create(),
 *		  cpr_vectors_claim() (one routing commit), then, off the
 *		  clock, cpr_resume_finish() (fd kinds, FD_CLOEXEC, the fd
 *		  audit) and the guest's memory.
 *   floor	  blackout_floor: exec (the old VM with its irqfds torn down
 *		  in it), KVM_CREATE_VM, irqchip, vCPU, LAPIC enable, one
 *		  KVM_SET_GSI_ROUTING, the irqfds; see there.
 *   naive	  lib, but the successor routes the vectors with one
 *		  KVM_SET_GSI_ROUTING per vector, as a naive VMM does.
 *   lib-release  lib without the relay: the old VM's irqfds go with its
 *		  fd, in the blackout.
 *   floor-pre	  floor, its irqfds deassigned before the clock starts.
 *
 * Every process of a chain holds the same fds: two eventfds per vector
 * (the "interrupt" and the "kvm_interrupt" one), the KVM fds, the pipe the
 * results go back in.  A chain is a fresh exec (generation 0, not
 * measured) and then @chain handoffs, each measured by the generation it
 * starts.  The driver runs rounds of one chain per configuration, the
 * configurations interleaved, and prints medians and spreads.
 *
 *   blackout_bench [-r ROUNDS] [-c CHAIN] [-s 1,64,512,2048]
 *		    [-m lib,floor,naive,lib-release,floor-pre] [-o CSV]
 *		    [-a SAMPLES_CSV] [-v]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "bench.h"
#include "vfio_cpr/handoff.h"
#include "vfio_cpr/kvm.h"
#include "vfio_cpr/log.h"
#include "vfio_cpr/state.h"
#include "vfio_cpr/vectors.h"

#define DEV		"bench"
#define MAX_SIZES	8

/* A library call failed: its message, then exit. */
static void die_lib(const char *what)
{
	fprintf(stderr, "blackout_bench: %s: %s\n", what, cpr_last_error());
	fflush(NULL);
	exit(1);
}

/* What a naive VMM does: one routing commit per vector. */
static void naive_attach(struct cpr_vectors *vs, struct cpr_vm *vm)
{
	unsigned int i;

	vs->vm = vm;
	for (i = 0; i < vs->nr; i++) {
		struct cpr_vector *v = &vs->v[i];
		int gsi = cpr_vm_gsi_alloc(vm);

		if (gsi < 0 || cpr_vm_route_msi(vm, gsi, &v->msg) ||
		    cpr_vm_routes_commit(vm))
			die_lib("naive routing");
		v->virq = gsi;
		if (cpr_vm_irqfd_assign(vm, v->kvm_fd, gsi, -1))
			die_lib("naive irqfd");
		v->attached = true;
	}
	for (i = 0; i < vs->nr; i++) {
		struct cpr_vector *v = &vs->v[i];

		if (v->lapic_pending && cpr_vm_signal_msi(vm, &v->msg))
			die_lib("naive re-injection");
		v->lapic_pending = false;
	}
}

static void lib_handoff(struct chain *c, struct cpr_state *st,
			struct cpr_vectors *vs, struct cpr_vm *vm)
{
	struct chain_argv a;

	/* Before the handoff starts: nothing of it depends on the moment. */
	if (cpr_vm_lapic_clear(vm, 0) || cpr_exec_prepare(st) ||
	    (c->mode != MODE_LIB_RELEASE && cpr_vectors_relay(vm, &vs, 1)))
		die_lib("preparing the handoff");
	if (cpr_vectors_detach_vm(vm, &vs, 1))
		die_lib("detaching the vectors");
	bench_raise(vs->v[vs->nr - 1].kvm_fd);
	cpr_exec(st, "/proc/self/exe",
		 bench_next_argv(&a, c, program_invocation_name, -1));
	die_lib("cpr_exec");
}

static void lib_first(struct chain *c)
{
	struct cpr_vectors *vs = NULL;
	struct cpr_state *st;
	struct cpr_vm *vm = NULL;

	st = cpr_state_new();
	if (!st || cpr_vm_create(&vm, 1) ||
	    cpr_vectors_create(st, DEV, CPR_IRQ_MSIX, c->nr,
			       CPR_VEC_INTERRUPT | CPR_VEC_KVM, &vs) ||
	    cpr_vectors_attach(vs, vm) || cpr_vm_guest_setup(vm))
		die_lib("setting up generation 0");
	lib_handoff(c, st, vs, vm);
}

static void lib_next(struct chain *c)
{
	struct cpr_resume_info info;
	struct cpr_vectors *vs;
	struct cpr_vm *vm;

	if (cpr_resume_flags(&info, CPR_RESUME_DEFER_CHECKS) != 1)
		die_lib("cpr_resume_flags");
	c->t[PH_RESUMED] = bench_now_ns();
	c->start = info.handoff_start_ns;
	if (cpr_vm_create(&vm, 1))
		die_lib("cpr_vm_create");
	c->t[PH_VM] = bench_now_ns();
	if (c->mode != MODE_NAIVE) {
		if (cpr_vectors_claim(info.st, DEV, vm, &vs))
			die_lib("cpr_vectors_claim");
	} else {
		if (cpr_vectors_claim(info.st, DEV, NULL, &vs))
			die_lib("cpr_vectors_claim");
		naive_attach(vs, vm);
	}
	c->t[PH_ATTACHED] = bench_now_ns();
	bench_wait_irr(cpr_vm_vcpu_fd(vm, 0),
		       cpr_msi_msg_vector(&vs->v[vs->nr - 1].msg));
	c->t[PH_SEEN] = bench_now_ns();
	/* Off the clock: the deferred checks, the guest's memory. */
	if (cpr_resume_finish(&info))
		die_lib("cpr_resume_finish");
	if (info.leaked_fds)
		bench_die("the fd audit found leaks", 0);
	if (cpr_vm_guest_setup(vm))
		die_lib("guest setup");
	bench_report(c);
	if (c->gen == c->len) {
		cpr_vectors_free(vs, true);
		cpr_vm_destroy(vm);
		cpr_state_free(info.st);
		exit(0);
	}
	lib_handoff(c, info.st, vs, vm);
}

static int chain_main(int argc, char **argv, __u64 t_main)
{
	struct chain c;

	bench_chain_parse(&c, argc, argv, t_main);
	if (bench_mode_is_floor(c.mode))
		bench_die("floor chains run in blackout_floor", 0);
	if (!c.gen)
		lib_first(&c);
	lib_next(&c);
	return 0;
}

/* ---- the driver ---- */

struct series {
	__u64 *v;		/* blackout samples, ns */
	__u64 *ph;		/* NR_PHASES per sample */
	unsigned int n, cap;
};

static struct series results[NR_MODES][MAX_SIZES];
static char floor_path[PATH_MAX];
static unsigned int sizes[MAX_SIZES] = { 1, 64, 512, 2048 };
static unsigned int nr_sizes = 4;

static void add_sample(struct series *s, const __u64 *ph)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 32;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		s->ph = realloc(s->ph, s->cap * NR_PHASES * sizeof(*s->ph));
		if (!s->v || !s->ph)
			bench_die("sample memory", errno);
	}
	s->v[s->n] = ph[PH_SEEN];
	memcpy(&s->ph[s->n * NR_PHASES], ph, NR_PHASES * sizeof(*ph));
	s->n++;
}

static int size_index(unsigned int nr)
{
	unsigned int i;

	for (i = 0; i < nr_sizes; i++)
		if (sizes[i] == nr)
			return i;
	return -1;
}

/* One chain: exec this binary as generation 0, collect its results. */
static void run_chain(enum bench_mode m, unsigned int nr, unsigned int len,
		      bool keep, bool verbose, FILE *raw)
{
	char a_mode[16], a_nr[16], a_len[16], a_fd[16], a_t[32], buf[4096];
	size_t have = 0;
	int pfd[2], status;
	pid_t pid;

	if (pipe(pfd))
		bench_die("pipe", errno);
	pid = fork();
	if (pid < 0)
		bench_die("fork", errno);
	if (!pid) {
		const char *prog = bench_mode_is_floor(m) ? floor_path :
				   "/proc/self/exe";
		char *argv[9];

		argv[0] = (char *)prog;
		argv[1] = (char *)BENCH_CHAIN_ARG;
		argv[2] = a_mode;
		argv[3] = a_nr;
		argv[4] = (char *)"0";
		argv[5] = a_len;
		argv[6] = a_fd;
		argv[7] = a_t;
		argv[8] = NULL;

		close(pfd[0]);
		snprintf(a_mode, sizeof(a_mode), "%d", m);
		snprintf(a_nr, sizeof(a_nr), "%u", nr);
		snprintf(a_len, sizeof(a_len), "%u", len);
		snprintf(a_fd, sizeof(a_fd), "%d", pfd[1]);
		snprintf(a_t, sizeof(a_t), "%llu",
			 (unsigned long long)bench_now_ns());
		execv(prog, argv);
		fprintf(stderr, "blackout_bench: execv %s: %s\n", prog,
			strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		ssize_t n = read(pfd[0], buf + have, sizeof(buf) - 1 - have);
		char *line, *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += n;
		buf[have] = '\0';
		line = buf;
		while ((nl = strchr(line, '\n'))) {
			__u64 ph[NR_PHASES];
			unsigned int r_nr, gen;
			char r_mode[16];
			int k;

			*nl = '\0';
			k = sscanf(line, "R %15s %u %u %llu %llu %llu %llu %llu %llu",
				   r_mode, &r_nr, &gen,
				   (unsigned long long *)&ph[0],
				   (unsigned long long *)&ph[1],
				   (unsigned long long *)&ph[2],
				   (unsigned long long *)&ph[3],
				   (unsigned long long *)&ph[4],
				   (unsigned long long *)&ph[5]);
			if (k != 3 + NR_PHASES || size_index(r_nr) < 0)
				bench_die("malformed result line", 0);
			if (verbose)
				fprintf(stderr,
					"%-11s %4u gen %u: blackout %8.3f ms (exec call %.3f, main %.3f, resumed %.3f, vm %.3f, attached %.3f)\n",
					r_mode, r_nr, gen, ph[PH_SEEN] / 1e6,
					ph[PH_EXEC] / 1e6, ph[PH_MAIN] / 1e6,
					ph[PH_RESUMED] / 1e6, ph[PH_VM] / 1e6,
					ph[PH_ATTACHED] / 1e6);
			if (keep) {
				add_sample(&results[m][size_index(r_nr)], ph);
				if (raw) {
					fprintf(raw, "%s,%u,%u", r_mode, r_nr,
						gen);
					for (k = 0; k < NR_PHASES; k++)
						fprintf(raw, ",%.6f",
							ph[k] / 1e6);
					fprintf(raw, "\n");
				}
			}
			line = nl + 1;
		}
		have = strlen(line);
		memmove(buf, line, have);
	}
	close(pfd[0]);
	if (waitpid(pid, &status, 0) < 0)
		bench_die("waitpid", errno);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "blackout_bench: %s chain of %u vectors failed (status 0x%x)\n",
			bench_mode_names[m], nr, status);
		exit(1);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	__u64 x = *(const __u64 *)a, y = *(const __u64 *)b;

	return (x > y) - (x < y);
}

/* Percentile @p (0..100) of sorted @v, nearest rank. */
static double pct(const __u64 *v, unsigned int n, unsigned int p)
{
	unsigned int rank = (p * n + 99) / 100;

	if (!n)
		return 0;
	if (rank)
		rank--;
	if (rank >= n)
		rank = n - 1;
	return v[rank] / 1e6;
}

static double median(const __u64 *v, unsigned int n)
{
	if (!n)
		return 0;
	return n % 2 ? v[n / 2] / 1e6 : (v[n / 2 - 1] + v[n / 2]) / 2e6;
}

static double ratio(const double *med, const bool *modes, enum bench_mode a,
		    enum bench_mode b)
{
	return modes[a] && modes[b] && med[b] > 0 ? med[a] / med[b] : 0;
}

static void print_ratio(double r)
{
	if (r)
		printf(" %14.3f", r);
	else
		printf(" %14s", "-");
}

static void summary(const bool *modes, FILE *csv)
{
	double med[MAX_SIZES][NR_MODES] = {};
	unsigned int s, m;

	printf("\nblackout (ms): median [p10 .. p90] of n handoffs each (min, max in the CSV)\n");
	printf("%8s", "vectors");
	for (m = 0; m < NR_MODES; m++)
		if (modes[m])
			printf("  %-24s", bench_mode_names[m]);
	printf("\n");
	if (csv) {
		fprintf(csv, "vectors");
		for (m = 0; m < NR_MODES; m++)
			fprintf(csv, ",%s_n,%s_median_ms,%s_p10_ms,%s_p90_ms,%s_min_ms,%s_max_ms",
				bench_mode_names[m], bench_mode_names[m],
				bench_mode_names[m], bench_mode_names[m],
				bench_mode_names[m], bench_mode_names[m]);
		fprintf(csv,
			",lib_over_floor,naive_over_lib,lib_over_floor_pre,lib_release_over_floor\n");
	}
	for (s = 0; s < nr_sizes; s++) {
		printf("%8u", sizes[s]);
		if (csv)
			fprintf(csv, "%u", sizes[s]);
		for (m = 0; m < NR_MODES; m++) {
			struct series *r = &results[m][s];
			char cell[64];

			qsort(r->v, r->n, sizeof(*r->v), cmp_u64);
			med[s][m] = median(r->v, r->n);
			if (csv)
				fprintf(csv, ",%u,%.4f,%.4f,%.4f,%.4f,%.4f",
					r->n, med[s][m], pct(r->v, r->n, 10),
					pct(r->v, r->n, 90),
					r->n ? r->v[0] / 1e6 : 0,
					r->n ? r->v[r->n - 1] / 1e6 : 0);
			if (!modes[m])
				continue;
			snprintf(cell, sizeof(cell), "%.3f [%.3f .. %.3f]",
				 med[s][m], pct(r->v, r->n, 10),
				 pct(r->v, r->n, 90));
			printf("  %-24s", cell);
		}
		printf("\n");
		if (csv)
			fprintf(csv, ",%.4f,%.4f,%.4f,%.4f\n",
				ratio(med[s], modes, MODE_LIB, MODE_FLOOR),
				ratio(med[s], modes, MODE_NAIVE, MODE_LIB),
				ratio(med[s], modes, MODE_LIB, MODE_FLOOR_PRE),
				ratio(med[s], modes, MODE_LIB_RELEASE,
				      MODE_FLOOR));
	}
	printf("\nratios of the medians (target: lib/floor <= 1.25, naive/lib >= 100 at 2048)\n");
	printf("%8s %14s %14s %14s %14s\n", "vectors", "lib/floor",
	       "naive/lib", "lib/floor-pre", "release/floor");
	for (s = 0; s < nr_sizes; s++) {
		printf("%8u", sizes[s]);
		print_ratio(ratio(med[s], modes, MODE_LIB, MODE_FLOOR));
		print_ratio(ratio(med[s], modes, MODE_NAIVE, MODE_LIB));
		print_ratio(ratio(med[s], modes, MODE_LIB, MODE_FLOOR_PRE));
		print_ratio(ratio(med[s], modes, MODE_LIB_RELEASE, MODE_FLOOR));
		printf("\n");
	}
}

/* Median of each phase, to see where the time goes. */
static void phase_summary(const bool *modes)
{
	unsigned int s, m, p, i;
	__u64 *tmp;

	printf("\nmedian time (ms) from the handoff start to each phase:\n");
	printf("%-11s %8s", "mode", "vectors");
	for (p = 0; p < NR_PHASES; p++)
		printf(" %9s", bench_phase_names[p]);
	printf("\n");
	for (m = 0; m < NR_MODES; m++) {
		if (!modes[m])
			continue;
		for (s = 0; s < nr_sizes; s++) {
			struct series *r = &results[m][s];

			tmp = calloc(r->n + 1, sizeof(*tmp));
			if (!tmp)
				bench_die("phase summary", errno);
			printf("%-11s %8u", bench_mode_names[m], sizes[s]);
			for (p = 0; p < NR_PHASES; p++) {
				for (i = 0; i < r->n; i++)
					tmp[i] = r->ph[i * NR_PHASES + p];
				qsort(tmp, r->n, sizeof(*tmp), cmp_u64);
				printf(" %9.3f", median(tmp, r->n));
			}
			printf("\n");
			free(tmp);
		}
	}
}

static void bad_usage(void)
{
	fputs("usage: blackout_bench [-r ROUNDS] [-c CHAIN] [-s SIZES]\n"
	      "  [-m lib,floor,naive,lib-release,floor-pre] [-o CSV]\n"
	      "  [-a SAMPLES_CSV] [-v]\n", stderr);
	exit(2);
}

static void parse_list(char *arg, bool *modes)
{
	char *tok, *save = NULL;
	unsigned int m;

	if (!modes)
		nr_sizes = 0;
	for (tok = strtok_r(arg, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (!modes) {
			if (nr_sizes == MAX_SIZES)
				bad_usage();
			sizes[nr_sizes] = bench_parse_ul(tok, "vector count");
			if (!sizes[nr_sizes] ||
			    sizes[nr_sizes] > CPR_VECTORS_MAX)
				bad_usage();
			nr_sizes++;
			continue;
		}
		for (m = 0; m < NR_MODES; m++)
			if (!strcmp(tok, bench_mode_names[m]))
				break;
		if (m == NR_MODES)
			bad_usage();
		modes[m] = true;
	}
}

int main(int argc, char **argv)
{
	__u64 t_main = bench_now_ns();
	bool modes[NR_MODES] = { true, true, true, true, true };
	bool verbose = false;
	unsigned int rounds = 4, chain = 6, r, s, k;
	const char *csv_path = NULL, *raw_path = NULL;
	FILE *csv = NULL, *raw = NULL;
	struct rlimit rl;
	char *slash;
	ssize_t n;
	int opt;

	if (argc > 1 && !strcmp(argv[1], BENCH_CHAIN_ARG))
		return chain_main(argc, argv, t_main);

	while ((opt = getopt(argc, argv, "r:c:s:m:o:a:v")) != -1) {
		switch (opt) {
		case 'r':
			rounds = bench_parse_ul(optarg, "rounds");
			break;
		case 'c':
			chain = bench_parse_ul(optarg, "chain length");
			break;
		case 's':
			parse_list(optarg, NULL);
			break;
		case 'm':
			memset(modes, 0, sizeof(modes));
			parse_list(optarg, modes);
			break;
		case 'o':
			csv_path = optarg;
			break;
		case 'a':
			raw_path = optarg;
			break;
		case 'v':
			verbose = true;
			break;
		default:
			bad_usage();
		}
	}
	if (!rounds || !chain || optind != argc)
		bad_usage();
	if (access("/dev/kvm", R_OK | W_OK))
		bench_die("/dev/kvm", errno);
	/* blackout_floor sits beside this program. */
	n = readlink("/proc/self/exe", floor_path, sizeof(floor_path) - 32);
	if (n <= 0)
		bench_die("readlink /proc/self/exe", errno);
	floor_path[n] = '\0';
	slash = strrchr(floor_path, '/');
	strcpy(slash ? slash + 1 : floor_path, "blackout_floor");
	if ((modes[MODE_FLOOR] || modes[MODE_FLOOR_PRE]) &&
	    access(floor_path, X_OK))
		bench_die(floor_path, errno);
	/* Two eventfds per vector: as a VMM does, take the hard limit. */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (csv_path) {
		csv = fopen(csv_path, "we");
		if (!csv)
			bench_die(csv_path, errno);
	}
	if (raw_path) {
		raw = fopen(raw_path, "we");
		if (!raw)
			bench_die(raw_path, errno);
		fprintf(raw, "mode,vectors,generation");
		for (k = 0; k < NR_PHASES; k++)
			fprintf(raw, ",%s_ms", bench_phase_names[k]);
		fprintf(raw, "\n");
	}

	printf("blackout_bench: %u rounds x %u handoffs per configuration, sizes",
	       rounds, chain);
	for (s = 0; s < nr_sizes; s++)
		printf(" %u", sizes[s]);
	printf("\n");
	fflush(stdout);
	/* A warm-up chain per configuration, not counted. */
	for (s = 0; s < nr_sizes; s++)
		for (k = 0; k < NR_MODES; k++)
			if (modes[k])
				run_chain(k, sizes[s], 1, false, false, NULL);
	for (r = 0; r < rounds; r++) {
		for (s = 0; s < nr_sizes; s++) {
			/* Rotate the order of the modes from round to round. */
			for (k = 0; k < NR_MODES; k++) {
				enum bench_mode m = (k + r) % NR_MODES;

				if (modes[m])
					run_chain(m, sizes[s], chain, true,
						  verbose, raw);
			}
		}
		fprintf(stderr, "blackout_bench: round %u of %u done\n",
			r + 1, rounds);
	}
	summary(modes, csv);
	phase_summary(modes);
	if (csv)
		fclose(csv);
	if (raw)
		fclose(raw);
	return 0;
}
