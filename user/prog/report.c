// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-cpr run: the results, as text or as one JSON object, and progress
 * on a terminal.
 *
 * Blackout of generation g: from the moment generation g-1 stopped its
 * vCPU (nothing can be delivered from then on) to the first interrupt the
 * guest took in generation g's VM.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "vfio_cpr_prog.h"

static double blackout_ms(const struct vc_gen *g)
{
	if (!g->stop_ns || !g->first_ns || g->first_ns < g->stop_ns)
		return -1;
	return (g->first_ns - g->stop_ns) / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct stats {
	unsigned int n;
	double min, median, max;
};

static struct stats blackout_stats(const struct vc_vmm *m)
{
	struct stats s = { 0 };
	unsigned int g, last = m->generation;
	double *v = calloc(last + 1, sizeof(*v));

	if (!v)
		return s;
	for (g = 1; g <= last; g++) {
		double b = blackout_ms(&m->sh->gen[g]);

		if (b >= 0)
			v[s.n++] = b;
	}
	if (s.n) {
		qsort(v, s.n, sizeof(*v), cmp_double);
		s.min = v[0];
		s.max = v[s.n - 1];
		s.median = s.n % 2 ? v[s.n / 2] : (v[s.n / 2 - 1] + v[s.n / 2]) / 2;
	}
	free(v);
	return s;
}

static const char *irq_name(const struct vc_vmm *m)
{
	return cpr_vfio_irq_name(m->o->irq_index);
}

static unsigned int nr_vectors(const struct vc_vmm *m)
{
	unsigned int i, n = 0;

	for (i = 0; i < m->nr_dev; i++)
		n += m->dev[i].intx ? 1 : (m->dev[i].vs ? m->dev[i].vs->nr : 0);
	return n;
}

/* The fewest and most KVM_SET_GSI_ROUTING calls of an attach, all generations. */
static void routing_commits(const struct vc_vmm *m, unsigned int *min,
			    unsigned int *max)
{
	unsigned int g, c;

	*min = *max = m->sh->gen[0].routing_commits;
	for (g = 1; g <= m->generation; g++) {
		c = m->sh->gen[g].routing_commits;
		*min = c < *min ? c : *min;
		*max = c > *max ? c : *max;
	}
}

static void report_json(const struct vc_vmm *m, bool passed, FILE *f)
{
	const struct vc_shared *sh = m->sh;
	const struct vc_gen *first = &sh->gen[0], *last = &sh->gen[m->generation];
	struct stats s = blackout_stats(m);
	unsigned int i, g, cmin, cmax;

	routing_commits(m, &cmin, &cmax);
	fprintf(f, "{\"result\":\"%s\",\"generations\":%llu,\"devices\":[",
		passed ? "pass" : "fail", (unsigned long long)m->generation);
	for (i = 0; i < m->o->nr_devices; i++)
		fprintf(f, "%s\"%s\"", i ? "," : "", m->o->devices[i]);
	fprintf(f, "],\"irq\":\"%s\",\"vectors\":%u,", irq_name(m), nr_vectors(m));
	fprintf(f, "\"raised\":%llu,\"delivered\":%llu,\"unacknowledged\":%llu,",
		(unsigned long long)sh->raised, (unsigned long long)sh->delivered,
		(unsigned long long)(sh->raised - sh->delivered));
	fprintf(f, "\"strays\":%llu,\"longest_wait_ms\":%.3f,\"longest_wait_generation\":%llu,",
		(unsigned long long)sh->strays, sh->max_wait_ns / 1e6,
		(unsigned long long)sh->max_wait_gen);
	fprintf(f, "\"blackout_ms\":{\"min\":%.3f,\"median\":%.3f,\"max\":%.3f},",
		s.min, s.median, s.max);
	fprintf(f, "\"open_fds\":{\"first\":%u,\"last\":%u},\"rss_kb\":{\"first\":%u,\"last\":%u},",
		first->open_fds, last->open_fds, first->rss_kb, last->rss_kb);
	fprintf(f, "\"routing_commits\":{\"min\":%u,\"max\":%u},", cmin, cmax);
	fprintf(f, "\"load_error\":");
	if (sh->load_failed) {
		const char *p;

		fputc('"', f);
		for (p = sh->load_error; *p && p < sh->load_error + VC_LOAD_ERR_MAX; p++) {
			if (*p == '"' || *p == '\\')
				fputc('\\', f);
			if ((unsigned char)*p >= 0x20)
				fputc(*p, f);
		}
		fputc('"', f);
	} else {
		fputs("null", f);
	}
	fprintf(f, ",\"generation_blackout_ms\":[");
	for (g = 1; g <= m->generation; g++)
		fprintf(f, "%s%.3f", g > 1 ? "," : "", blackout_ms(&sh->gen[g]));
	fprintf(f, "]}\n");
}

void vc_report(const struct vc_vmm *m, bool passed, FILE *f)
{
	const struct vc_shared *sh = m->sh;
	const struct vc_gen *first = &sh->gen[0], *last = &sh->gen[m->generation];
	struct stats s;
	unsigned int g;

	if (m->o->json) {
		report_json(m, passed, f);
		fflush(f);
		return;
	}
	if (!m->o->quiet && isatty(STDERR_FILENO))
		fputc('\n', stderr);
	s = blackout_stats(m);
	if (m->generation <= 20)
		for (g = 1; g <= m->generation; g++)
			fprintf(f,
				"# generation %u: blackout %.3f ms, %u open fds, RSS %u kB, %u routing commit(s)\n",
				g, blackout_ms(&sh->gen[g]), sh->gen[g].open_fds,
				sh->gen[g].rss_kb, sh->gen[g].routing_commits);
	fprintf(f, "vfio-cpr: %llu generations, %s%s, %s, %u vectors\n",
		(unsigned long long)m->generation,
		m->o->nr_devices ? "devices " : "no device (eventfds)",
		m->o->nr_devices ? m->o->devices[0] : "", irq_name(m),
		nr_vectors(m));
	fprintf(f, "vfio-cpr: raised %llu, delivered %llu, unacknowledged %llu, strays %llu, ",
		(unsigned long long)sh->raised, (unsigned long long)sh->delivered,
		(unsigned long long)(sh->raised - sh->delivered),
		(unsigned long long)sh->strays);
	fprintf(f, "longest wait %.3f ms (generation %llu)\n",
		sh->max_wait_ns / 1e6, (unsigned long long)sh->max_wait_gen);
	if (s.n)
		fprintf(f,
			"vfio-cpr: blackout over %u handoffs: min %.3f ms, median %.3f ms, max %.3f ms\n",
			s.n, s.min, s.median, s.max);
	fprintf(f, "vfio-cpr: open fds %u -> %u, RSS %u kB -> %u kB (generation 0 -> %llu)\n",
		first->open_fds, last->open_fds, first->rss_kb, last->rss_kb,
		(unsigned long long)m->generation);
	if (sh->load_failed)
		fprintf(f, "vfio-cpr: load: %s\n", sh->load_error);
	fprintf(f, "vfio-cpr: %s\n", passed ? "PASS" : "FAIL");
	fflush(f);
}

void vc_progress(const struct vc_vmm *m)
{
	const struct vc_gen *g = &m->sh->gen[m->generation];
	double b = blackout_ms(g);

	if (m->o->quiet || m->o->json || !isatty(STDERR_FILENO))
		return;
	fprintf(stderr, "\rvfio-cpr: generation %llu/%u, blackout %.3f ms, delivered %llu   ",
		(unsigned long long)m->generation, m->o->generations, b < 0 ? 0 : b,
		(unsigned long long)m->sh->delivered);
}
