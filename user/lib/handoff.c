// SPDX-License-Identifier: GPL-2.0-only
/*
 * Exec handoff of the CPR state and the fds it names, and the successor's
 * side of it: load, validate, restore close-on-exec, audit the fd table.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "vfio_cpr/fd.h"
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

/* The successor: what the predecessor handed over to be closed. */
static int load_dispose_fds(struct cpr_state *st)
{
	const __s32 *fds;
	size_t len;
	unsigned int i;

	nr_dispose_fds = 0;
	fds = cpr_state_get_section(st, CPR_SEC_DISPOSE_FDS, &len);
	if (!fds)
		return 0;
	if (len % sizeof(*fds) || len / sizeof(*fds) > CPR_DISPOSE_FDS_MAX)
		return cpr_err(-EBADMSG, "section '%s' has %zu bytes, not a list of at most %d fds",
			       CPR_SEC_DISPOSE_FDS, len, CPR_DISPOSE_FDS_MAX);
	/* Never close what is not the predecessor's: open, above stderr. */
	for (i = 0; i < len / sizeof(*fds); i++)
		if (fds[i] > 2 && fcntl(fds[i], F_GETFD) >= 0)
			dispose_fds[nr_dispose_fds++] = fds[i];
	/* Not this generation's business once closed: not handed on. */
	cpr_state_delete_section(st, CPR_SEC_DISPOSE_FDS);
	return 0;
}

int cpr_handoff_mark_start(struct cpr_state *st)
{
	return cpr_state_set_u64(st, CPR_SEC_HANDOFF_START, cpr_now_ns());
}

/* A copy of a section, to put it back if the exec fails. */
struct saved_section {
	const char *name;
	void *data;
	size_t len;
	bool present;
};

static int section_save(const struct cpr_state *st, const char *name,
			struct saved_section *s)
{
	const void *data = cpr_state_get_section(st, name, &s->len);

	s->name = name;
	s->data = NULL;
	s->present = !!data;
	if (!data)
		return 0;
	s->data = malloc(s->len ? s->len : 1);
	if (!s->data)
		return cpr_err(-ENOMEM, "copying section '%s' (%zu bytes)",
			       name, s->len);
	memcpy(s->data, data, s->len);
	return 0;
}

static void section_restore(struct cpr_state *st, struct saved_section *s)
{
	if (!s->name)
		return;
	if (s->present)
		cpr_state_set_section(st, s->name, s->data, s->len);
	else
		cpr_state_delete_section(st, s->name);
	free(s->data);
	s->data = NULL;
}

/* Launcher fds that will really cross this exec (open, no CLOEXEC). */
static int save_launcher_fds(struct cpr_state *st)
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

static int load_launcher_fds(const struct cpr_state *st)
{
	const __s32 *fds;
	size_t len;
	unsigned int i;

	nr_launcher_fds = 0;
	fds = cpr_state_get_section(st, CPR_SEC_LAUNCHER_FDS, &len);
	if (!fds)
		return 0;
	if (len % sizeof(*fds) || len / sizeof(*fds) > CPR_LAUNCHER_FDS_MAX)
		return cpr_err(-EBADMSG, "section '%s' has %zu bytes, not a list of at most %d fds",
			       CPR_SEC_LAUNCHER_FDS, len, CPR_LAUNCHER_FDS_MAX);
	for (i = 0; i < len / sizeof(*fds); i++)
		launcher_fds[nr_launcher_fds++] = fds[i];
	return 0;
}

static void restore_fd_flags(const struct cpr_state *st, const int *flags,
			     unsigned int n)
{
	/* Backwards, so an fd named twice ends with its first saved flags. */
	while (n--) {
		const struct cpr_fd_rec *r = cpr_state_fd_at(st, n);

		fcntl(r->fd, F_SETFD, flags[n]);
	}
}

/*
 * What cpr_exec_prepare() did: the flags each fd of @st had (in @st's
 * order), FD_CLOEXEC now clear on all of them; the same pairs sorted by fd
 * number, to match the records of a state that changed since.
 */
struct fd_flags {
	int fd, flags;
};

static struct {
	const struct cpr_state *st;
	__u64 serial;
	unsigned int nr;
	int *flags;
	struct fd_flags *by_fd;
} prepared;

static int cmp_fd_flags(const void *a, const void *b)
{
	const struct fd_flags *x = a, *y = b;

	return (x->fd > y->fd) - (x->fd < y->fd);
}

static void prepared_forget(void)
{
	free(prepared.flags);
	free(prepared.by_fd);
	memset(&prepared, 0, sizeof(prepared));
}

/* The flags @fd had when cpr_exec_prepare() saw it named in @st, or -1. */
static int prepared_flags_of(const struct cpr_state *st, int fd)
{
	struct fd_flags key = { .fd = fd }, *p;

	if (prepared.st != st)
		return -1;
	p = bsearch(&key, prepared.by_fd, prepared.nr, sizeof(key),
		    cmp_fd_flags);
	return p ? p->flags : -1;
}

/*
 * Clear FD_CLOEXEC on every fd @st names, its flags before into @flags
 * (in @st's order; *@done of them dealt with, even on failure).  An fd that
 * cpr_exec_prepare() already dealt with keeps the flags it had then.
 */
static int clear_cloexec(const struct cpr_state *st, int *flags,
			 unsigned int *done)
{
	unsigned int nr_fds = cpr_state_nr_fds(st);
	bool same = prepared.st == st && prepared.nr == nr_fds &&
		    prepared.serial == cpr_state_fd_serial(st);

	if (same) {
		/* Nothing saved or deleted since: all of it is done. */
		memcpy(flags, prepared.flags, nr_fds * sizeof(*flags));
		*done = nr_fds;
		return 0;
	}
	for (*done = 0; *done < nr_fds; (*done)++) {
		const struct cpr_fd_rec *r = cpr_state_fd_at(st, *done);
		int f = prepared_flags_of(st, r->fd);

		flags[*done] = f >= 0 ? f : fcntl(r->fd, F_GETFD);
		if (flags[*done] < 0 ||
		    fcntl(r->fd, F_SETFD, flags[*done] & ~FD_CLOEXEC))
			return cpr_err(-errno,
				       "exec handoff: clearing FD_CLOEXEC on '%s'[%u] fd %d",
				       r->name, r->index, r->fd);
	}
	return 0;
}

int cpr_exec_prepare(const struct cpr_state *st)
{
	unsigned int i, nr = cpr_state_nr_fds(st), done = 0;
	int *flags, ret;

	cpr_exec_cancel(prepared.st);
	flags = calloc(nr + 1, sizeof(*flags));
	prepared.by_fd = calloc(nr + 1, sizeof(*prepared.by_fd));
	if (!flags || !prepared.by_fd) {
		free(flags);
		prepared_forget();
		return cpr_err(-ENOMEM, "exec handoff: flags of %u fds", nr);
	}
	ret = clear_cloexec(st, flags, &done);
	if (ret) {
		restore_fd_flags(st, flags, done);
		free(flags);
		prepared_forget();
		return ret;
	}
	for (i = 0; i < nr; i++) {
		prepared.by_fd[i].fd = cpr_state_fd_at(st, i)->fd;
		prepared.by_fd[i].flags = flags[i];
	}
	qsort(prepared.by_fd, nr, sizeof(*prepared.by_fd), cmp_fd_flags);
	prepared.st = st;
	prepared.serial = cpr_state_fd_serial(st);
	prepared.nr = nr;
	prepared.flags = flags;
	return 0;
}

void cpr_exec_cancel(const struct cpr_state *st)
{
	unsigned int i;

	if (!st || prepared.st != st)
		return;
	/* Only the fds still named: a number no longer named is not ours. */
	for (i = 0; i < cpr_state_nr_fds(st); i++) {
		const struct cpr_fd_rec *r = cpr_state_fd_at(st, i);
		int f = prepared_flags_of(st, r->fd);

		if (f >= 0)
			fcntl(r->fd, F_SETFD, f);
	}
	prepared_forget();
}

static int restore_env(const char *old)
{
	if (old ? setenv(CPR_STATE_ENV, old, 1) : unsetenv(CPR_STATE_ENV))
		return cpr_err(-errno, "restoring $%s", CPR_STATE_ENV);
	return 0;
}

int cpr_exec(struct cpr_state *st, const char *path, char *const argv[])
{
	struct saved_section sec[4] = {};
	unsigned int i, nr = 0, nr_fds = cpr_state_nr_fds(st);
	__u64 gen = 0;
	char num[16], *old_env = NULL;
	int *flags = NULL, memfd = -1, mflags, ret, err;

	if (section_save(st, CPR_SEC_HANDOFF_START, &sec[0]) ||
	    section_save(st, CPR_SEC_GENERATION, &sec[1]) ||
	    section_save(st, CPR_SEC_LAUNCHER_FDS, &sec[2]) ||
	    section_save(st, CPR_SEC_DISPOSE_FDS, &sec[3])) {
		ret = -ENOMEM;
		goto out_sections;
	}
	if (!sec[0].present) {
		ret = cpr_handoff_mark_start(st);
		if (ret)
			goto out_sections;
	}
	cpr_state_get_u64(st, CPR_SEC_GENERATION, &gen);
	ret = cpr_state_set_u64(st, CPR_SEC_GENERATION, gen + 1);
	if (!ret)
		ret = save_launcher_fds(st);
	if (!ret && nr_dispose_fds)
		ret = cpr_state_set_section(st, CPR_SEC_DISPOSE_FDS, dispose_fds,
					    nr_dispose_fds *
					    sizeof(dispose_fds[0]));
	if (!ret)
		ret = cpr_state_to_memfd(st, &memfd);
	if (ret)
		goto out_sections;

	flags = calloc(nr_fds + 1, sizeof(*flags));
	if (!flags) {
		ret = cpr_err(-ENOMEM, "exec handoff: flags of %u fds", nr_fds);
		goto out_memfd;
	}
	ret = clear_cloexec(st, flags, &nr);
	if (ret)
		goto out_flags;
	mflags = fcntl(memfd, F_GETFD);
	if (mflags < 0 || fcntl(memfd, F_SETFD, mflags & ~FD_CLOEXEC)) {
		ret = cpr_err(-errno, "exec handoff: clearing FD_CLOEXEC on state memfd %d",
			      memfd);
		goto out_flags;
	}

	if (getenv(CPR_STATE_ENV)) {
		old_env = strdup(getenv(CPR_STATE_ENV));
		if (!old_env) {
			ret = cpr_err(-ENOMEM, "saving $%s", CPR_STATE_ENV);
			goto out_flags;
		}
	}
	snprintf(num, sizeof(num), "%d", memfd);
	if (setenv(CPR_STATE_ENV, num, 1)) {
		ret = cpr_err(-errno, "setting $%s=%s", CPR_STATE_ENV, num);
		goto out_env;
	}

	/* What is buffered would be lost with this image. */
	fflush(NULL);
	execv(path, argv);
	err = errno;

	ret = cpr_err(-err, "execve %s (state in memfd %d, %u fds, generation %llu)",
		      path, memfd, nr_fds, (unsigned long long)gen + 1);
out_env:
	restore_env(old_env);
	free(old_env);
out_flags:
	restore_fd_flags(st, flags, nr);
	free(flags);
	/* The flags are back as they were before cpr_exec_prepare() too. */
	if (prepared.st == st)
		prepared_forget();
out_memfd:
	close(memfd);
out_sections:
	for (i = 0; i < 4; i++)
		section_restore(st, &sec[i]);
	return ret;
}

static int parse_state_fd(const char *val, int *fd)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(val, &end, 10);
	if (!*val || *end || errno || v < 0 || v > INT_MAX ||
	    (val[0] == '0' && val[1]) || val[0] == '+' || val[0] == '-' ||
	    val[0] == ' ')
		return cpr_err(-EINVAL, "$%s='%.32s' is not an fd number",
			       CPR_STATE_ENV, val);
	if (v <= 2)
		return cpr_err(-EINVAL, "$%s=%ld names stdin/stdout/stderr, not a state memfd",
			       CPR_STATE_ENV, v);
	*fd = (int)v;
	return 0;
}

/* FD_CLOEXEC back on every inherited fd; EBADF names a closed one. */
static int restore_cloexec(const struct cpr_state *st)
{
	unsigned int i;

	for (i = 0; i < cpr_state_nr_fds(st); i++) {
		const struct cpr_fd_rec *r = cpr_state_fd_at(st, i);

		if (fcntl(r->fd, F_SETFD, FD_CLOEXEC))
			return cpr_err(-errno, "successor: setting FD_CLOEXEC on '%s'[%u] fd %d",
				       r->name, r->index, r->fd);
	}
	return 0;
}

static unsigned long *open_at_resume;
static unsigned int open_at_resume_nr;
/* The state memfd of a deferred resume, until cpr_resume_finish(). */
static int resume_memfd = -1;

/*
 * Which fds were open at resume, for cpr_resume_finish()'s audit: a bit
 * per fd below the fd table's size (FDSize in /proc/self/status), from
 * poll(), which answers POLLNVAL for an fd that is not open.  The fds the
 * state names, and those handed over to be closed, are left out (a
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

static int snapshot_open_fds(const struct cpr_state *st)
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
	if (resume_memfd >= 0 && resume_memfd < nr)
		set_bit_ul(named, resume_memfd);
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

static int audit_snapshot(const struct cpr_state *st);

int cpr_resume(struct cpr_resume_info *info)
{
	return cpr_resume_flags(info, 0);
}

int cpr_resume_flags(struct cpr_resume_info *info, unsigned int flags)
{
	bool defer = flags & CPR_RESUME_DEFER_CHECKS;
	enum cpr_state_error why;
	struct cpr_state *st = NULL;
	const char *val = getenv(CPR_STATE_ENV);
	int fd = -1, ret, leaks;

	memset(info, 0, sizeof(*info));
	info->state_fd = -1;
	if (flags & ~CPR_RESUME_DEFER_CHECKS)
		return cpr_err(-EINVAL, "resume: unknown flags 0x%x", flags);
	if (!val)
		return 0;

	ret = parse_state_fd(val, &fd);
	if (ret)
		goto out_env;
	if (fcntl(fd, F_GETFD) < 0) {
		ret = cpr_err(-errno, "$%s=%d: the state fd is not open in the successor",
			      CPR_STATE_ENV, fd);
		goto out_env;
	}
	ret = cpr_state_from_memfd(fd, defer ? 0 : CPR_PARSE_CHECK_FDS, &st,
				   &why);
	if (!ret)
		ret = load_launcher_fds(st);
	if (!ret)
		ret = load_dispose_fds(st);
	if (!ret && !defer)
		ret = restore_cloexec(st);
	if (ret)
		goto out_close;
	unsetenv(CPR_STATE_ENV);

	if (defer) {
		/* Freeing its pages can wait too: closed by the finish. */
		resume_memfd = fd;
		ret = snapshot_open_fds(st);
		if (ret) {
			resume_memfd = -1;
			cpr_state_free(st);
			close(fd);
			return ret;
		}
		info->checks_pending = true;
	} else {
		close(fd);
		cpr_dispose_fds_close();
		leaks = cpr_fd_audit(st);
		if (leaks < 0) {
			cpr_state_free(st);
			return leaks;
		}
		info->leaked_fds = leaks;
	}
	info->st = st;
	info->state_fd = fd;
	cpr_state_get_u64(st, CPR_SEC_HANDOFF_START, &info->handoff_start_ns);
	cpr_state_get_u64(st, CPR_SEC_GENERATION, &info->generation);
	return 1;

out_close:
	cpr_state_free(st);
	close(fd);
out_env:
	unsetenv(CPR_STATE_ENV);
	return ret;
}

int cpr_resume_finish(struct cpr_resume_info *info)
{
	int ret, leaks;

	if (!info->checks_pending)
		return 0;
	if (!info->st)
		return cpr_err(-EINVAL, "finishing a resume without its state");
	ret = cpr_state_check_fds(info->st, NULL);
	if (!ret)
		ret = restore_cloexec(info->st);
	if (ret)
		return ret;
	/* Off the clock now: what the predecessor could not close in time. */
	cpr_dispose_fds_close();
	if (resume_memfd >= 0)
		close(resume_memfd);
	resume_memfd = -1;
	leaks = audit_snapshot(info->st);
	if (leaks < 0)
		return leaks;
	info->leaked_fds = leaks;
	info->checks_pending = false;
	free(open_at_resume);
	open_at_resume = NULL;
	open_at_resume_nr = 0;
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
static int audit_snapshot(const struct cpr_state *st)
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
	return a.leaks;
}
