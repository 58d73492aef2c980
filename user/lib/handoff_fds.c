// SPDX-License-Identifier: GPL-2.0-only
/*
 * The fds of a handoff beside those its state names, and the successor's
 * audit that tells them from leaks: the fds whoever launched the first
 * generation gave it (carried from one generation to the next), the fds
 * handed over to be closed by the successor (cpr_dispose_fd()), and what
 * was open at a deferred resume (cpr_resume_flags()).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "vfio_cpr/handoff.h"
#include "vfio_cpr/log.h"

#include "internal.h"

#define CPR_LAUNCHER_FDS_MAX	64

/*
 * fds this process line was started with by whoever launched the first
 * generation (a test runner's pipes, say): not ours, so not leaks.  The
 * first generation takes them from its fd table at start-up; successors
 * get the list in the state.
 */
static int launcher_fds[CPR_LAUNCHER_FDS_MAX];
static unsigned int nr_launcher_fds;

static int note_launcher_fd(int fd, void *arg)
{
	(void)arg;
	if (fd > 2 && nr_launcher_fds < CPR_LAUNCHER_FDS_MAX)
		launcher_fds[nr_launcher_fds++] = fd;
	return 0;
}

static void __attribute__((constructor)) cpr_note_launcher_fds(void)
{
	/* A successor learns them from the state instead. */
	if (getenv(CPR_STATE_ENV))
		return;
	cpr_visit_open_fds(note_launcher_fd, NULL);
}

static bool is_launcher_fd(int fd)
{
	unsigned int i;

	for (i = 0; i < nr_launcher_fds; i++)
		if (launcher_fds[i] == fd)
			return true;
	return false;
}

/* Launcher fds that will really cross this exec (open, no CLOEXEC). */
int cpr_launcher_fds_save(struct cpr_state *st)
{
	__s32 keep[CPR_LAUNCHER_FDS_MAX];
	unsigned int i, n = 0;

	for (i = 0; i < nr_launcher_fds; i++) {
		int flags = fcntl(launcher_fds[i], F_GETFD);

		if (flags >= 0 && !(flags & FD_CLOEXEC))
			keep[n++] = launcher_fds[i];
	}
	return cpr_state_set_section(st, CPR_SEC_LAUNCHER_FDS, keep,
				     n * sizeof(keep[0]));
}

/*
 * Section @sec of @st read as a list of at most @max fds: *@fds and its
 * length *@nr (0 when the section is absent).
 */
static int fd_list_section(const struct cpr_state *st, const char *sec,
			   unsigned int max, const __s32 **fds, unsigned int *nr)
{
	size_t len;

	*nr = 0;
	*fds = cpr_state_get_section(st, sec, &len);
	if (!*fds)
		return 0;
	if (len % sizeof(**fds) || len / sizeof(**fds) > max)
		return cpr_err(-EBADMSG, "section '%s' has %zu bytes, not a list of at most %u fds",
			       sec, len, max);
	*nr = len / sizeof(**fds);
	return 0;
}

/* The successor: the launcher fds the predecessor carried. */
int cpr_launcher_fds_load(const struct cpr_state *st)
{
	const __s32 *fds;
	unsigned int i, nr;
	int ret;

	nr_launcher_fds = 0;
	ret = fd_list_section(st, CPR_SEC_LAUNCHER_FDS, CPR_LAUNCHER_FDS_MAX,
			      &fds, &nr);
	if (ret)
		return ret;
	for (i = 0; i < nr; i++)
		launcher_fds[nr_launcher_fds++] = fds[i];
	return 0;
}

/*
 * fds to be closed by the successor (cpr_dispose_fd()).  In the successor:
 * the ones the predecessor handed over, until they are closed.
 */
static int dispose_fds[CPR_DISPOSE_FDS_MAX];
static unsigned int nr_dispose_fds;

static bool is_dispose_fd(int fd)
{
	unsigned int i;

	for (i = 0; i < nr_dispose_fds; i++)
		if (dispose_fds[i] == fd)
			return true;
	return false;
}

int cpr_dispose_fd(int fd)
{
	if (nr_dispose_fds == CPR_DISPOSE_FDS_MAX) {
		close(fd);
		return cpr_err(-ENOSPC, "handing fd %d to the successor to close: %d are already",
			       fd, CPR_DISPOSE_FDS_MAX);
	}
	if (fcntl(fd, F_SETFD, 0)) {
		int err = -errno;

		close(fd);
		return cpr_err(err, "handing fd %d to the successor to close: clearing FD_CLOEXEC",
			       fd);
	}
	dispose_fds[nr_dispose_fds++] = fd;
	return 0;
}

void cpr_dispose_fds_close(void)
{
	while (nr_dispose_fds)
		close(dispose_fds[--nr_dispose_fds]);
}

/* The predecessor, at exec: the fds to be closed, if any, into @st. */
int cpr_dispose_fds_save(struct cpr_state *st)
{
	if (!nr_dispose_fds)
		return 0;
	return cpr_state_set_section(st, CPR_SEC_DISPOSE_FDS, dispose_fds,
				     nr_dispose_fds * sizeof(dispose_fds[0]));
}

/* The successor: what the predecessor handed over to be closed. */
int cpr_dispose_fds_load(struct cpr_state *st)
{
	const __s32 *fds;
	unsigned int i, nr;
	int ret;

	nr_dispose_fds = 0;
	ret = fd_list_section(st, CPR_SEC_DISPOSE_FDS, CPR_DISPOSE_FDS_MAX,
			      &fds, &nr);
	if (ret || !fds)
		return ret;
	/* Never close what is not the predecessor's: open, above stderr. */
	for (i = 0; i < nr; i++)
		if (fds[i] > 2 && fcntl(fds[i], F_GETFD) >= 0)
			dispose_fds[nr_dispose_fds++] = fds[i];
	/* Not this generation's business once closed: not handed on. */
	cpr_state_delete_section(st, CPR_SEC_DISPOSE_FDS);
	return 0;
}

static unsigned long *open_at_resume;
static unsigned int open_at_resume_nr;

/*
 * Which fds were open at resume, for cpr_resume_finish()'s audit: a bit
 * per fd below the fd table's size (FDSize in /proc/self/status), from
 * poll(), which answers POLLNVAL for an fd that is not open.  The fds the
 * state names, those handed over to be closed and the state memfd of the
 * resume are left out (a
 * negative fd is skipped by poll(), while an open eventfd costs it a call
 * into the file): the audit ignores them.
 */
#define BITS_PER_UL	(8 * sizeof(unsigned long))
#define POLL_CHUNK	512

static int fd_table_size(void)
{
	char buf[4096], *p;
	ssize_t n;
	long size;
	int fd;

	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cpr_err(-errno, "open /proc/self/status for the fd table size");
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		n = -errno;
		close(fd);
		return cpr_err(n, "read /proc/self/status for the fd table size");
	}
	close(fd);
	buf[n] = '\0';
	p = strstr(buf, "\nFDSize:");
	size = p ? strtol(p + 8, NULL, 10) : 0;
	if (size <= 0 || size > INT_MAX)
		return cpr_err(-EPROTO, "no FDSize in /proc/self/status");
	return (int)size;
}

static bool test_bit_ul(const unsigned long *map, unsigned int nr)
{
	return map[nr / BITS_PER_UL] & (1ul << (nr % BITS_PER_UL));
}

static void set_bit_ul(unsigned long *map, unsigned int nr)
{
	map[nr / BITS_PER_UL] |= 1ul << (nr % BITS_PER_UL);
}

int cpr_fd_snapshot(const struct cpr_state *st, int memfd)
{
	struct pollfd pfd[POLL_CHUNK];
	unsigned long *named;
	unsigned int i, base, n;
	struct rlimit rl;
	int nr;

	nr = fd_table_size();
	if (nr < 0)
		return nr;
	/* poll() takes no more than RLIMIT_NOFILE; the audit ignores those. */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < (rlim_t)nr)
		nr = rl.rlim_cur;
	free(open_at_resume);
	open_at_resume_nr = 0;
	open_at_resume = calloc(nr / BITS_PER_UL + 1, sizeof(unsigned long));
	named = calloc(nr / BITS_PER_UL + 1, sizeof(unsigned long));
	if (!open_at_resume || !named) {
		free(named);
		return cpr_err(-ENOMEM, "snapshot of a table of %d fds", nr);
	}
	for (i = 0; i < cpr_state_nr_fds(st); i++) {
		int fd = cpr_state_fd_at(st, i)->fd;

		if (fd >= 0 && fd < nr)
			set_bit_ul(named, fd);
	}
	/* Closed by cpr_resume_finish() before its audit. */
	for (i = 0; i < nr_dispose_fds; i++)
		if (dispose_fds[i] < nr)
			set_bit_ul(named, dispose_fds[i]);
	if (memfd >= 0 && memfd < nr)
		set_bit_ul(named, memfd);
	for (base = 0; base < (unsigned int)nr; base += n) {
		n = nr - base < POLL_CHUNK ? nr - base : POLL_CHUNK;
		for (i = 0; i < n; i++) {
			pfd[i].fd = test_bit_ul(named, base + i) ? -1 :
				    (int)(base + i);
			pfd[i].events = 0;
			pfd[i].revents = 0;
		}
		if (poll(pfd, n, 0) < 0) {
			free(named);
			return cpr_err(-errno, "poll() over fds %u to %u for the fd audit",
				       base, base + n - 1);
		}
		for (i = 0; i < n; i++)
			if (pfd[i].fd >= 0 && !(pfd[i].revents & POLLNVAL))
				set_bit_ul(open_at_resume, base + i);
	}
	free(named);
	open_at_resume_nr = nr;
	return 0;
}

struct audit {
	const struct cpr_state *st;
	long fd_limit;
	int *named;
	unsigned int nr_named;
	int leaks;
};

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

static int audit_fd(int fd, void *arg)
{
	struct audit *a = arg;
	char link[64], target[256];
	ssize_t n;

	/*
	 * At or above the soft RLIMIT_NOFILE sit fds the process cannot have
	 * opened itself (a tool's, e.g. valgrind's).
	 */
	if (fd <= 2 || fd >= a->fd_limit || is_launcher_fd(fd) ||
	    is_dispose_fd(fd) ||
	    bsearch(&fd, a->named, a->nr_named, sizeof(int), cmp_int))
		return 0;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	target[n < 0 ? 0 : n] = '\0';
	cpr_info("fd audit: fd %d (%s, %s) is open but not named in the CPR state: leaked across the handoff",
		 fd, target, cpr_fd_kind_name(cpr_fd_kind_of(fd)));
	a->leaks++;
	return 0;
}

/* The named fds, sorted for bsearch(); the open-file limit. */
static int audit_init(struct audit *a, const struct cpr_state *st)
{
	struct rlimit rl;
	unsigned int i;

	memset(a, 0, sizeof(*a));
	a->st = st;
	a->fd_limit = INT_MAX;
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < INT_MAX)
		a->fd_limit = rl.rlim_cur;
	a->nr_named = cpr_state_nr_fds(st);
	a->named = calloc(a->nr_named + 1, sizeof(int));
	if (!a->named)
		return cpr_err(-ENOMEM, "fd audit of %u named fds", a->nr_named);
	for (i = 0; i < a->nr_named; i++)
		a->named[i] = cpr_state_fd_at(st, i)->fd;
	qsort(a->named, a->nr_named, sizeof(int), cmp_int);
	return 0;
}

int cpr_fd_audit(const struct cpr_state *st)
{
	struct audit a;
	int ret;

	ret = audit_init(&a, st);
	if (ret)
		return ret;
	ret = cpr_visit_open_fds(audit_fd, &a);
	free(a.named);
	return ret < 0 ? ret : a.leaks;
}

/* cpr_fd_audit() on the fds that were open at resume. */
int cpr_fd_audit_snapshot(const struct cpr_state *st)
{
	struct audit a;
	unsigned int fd;
	int ret;

	ret = audit_init(&a, st);
	if (ret)
		return ret;
	for (fd = 0; fd < open_at_resume_nr; fd++)
		if (test_bit_ul(open_at_resume, fd))
			audit_fd(fd, &a);
	free(a.named);
	free(open_at_resume);
	open_at_resume = NULL;
	open_at_resume_nr = 0;
	return a.leaks;
}
