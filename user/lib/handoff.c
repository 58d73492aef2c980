// SPDX-License-Identifier: GPL-2.0-only
/*
 * Exec handoff of the CPR state and the fds it names, and the successor's
 * side of it: load, validate, restore close-on-exec, audit the fd table.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "vfio_cpr/handoff.h"
#include "vfio_cpr/log.h"

#define CPR_LAUNCHER_FDS_MAX	64

/*
 * fds this process line was started with by whoever launched the first
 * generation (a test runner's pipes, say): not ours, so not leaks.  The
 * first generation takes them from its fd table at start-up; successors
 * get the list in the state.
 */
static int launcher_fds[CPR_LAUNCHER_FDS_MAX];
static unsigned int nr_launcher_fds;

typedef int (*fd_visit_t)(int fd, void *arg);

static int visit_open_fds(fd_visit_t fn, void *arg)
{
	struct dirent *de;
	DIR *dir;
	int ret = 0;

	dir = opendir("/proc/self/fd");
	if (!dir)
		return cpr_err(-errno, "opendir /proc/self/fd");
	while ((de = readdir(dir))) {
		char *end;
		long fd;

		if (de->d_name[0] == '.')
			continue;
		fd = strtol(de->d_name, &end, 10);
		if (*end || fd < 0 || fd > INT_MAX || fd == dirfd(dir))
			continue;
		ret = fn((int)fd, arg);
		if (ret)
			break;
	}
	closedir(dir);
	return ret;
}

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
	visit_open_fds(note_launcher_fd, NULL);
}

static bool is_launcher_fd(int fd)
{
	unsigned int i;

	for (i = 0; i < nr_launcher_fds; i++)
		if (launcher_fds[i] == fd)
			return true;
	return false;
}

__u64 cpr_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
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

static int restore_env(const char *old)
{
	if (old ? setenv(CPR_STATE_ENV, old, 1) : unsetenv(CPR_STATE_ENV))
		return cpr_err(-errno, "restoring $%s", CPR_STATE_ENV);
	return 0;
}

int cpr_exec(struct cpr_state *st, const char *path, char *const argv[])
{
	struct saved_section sec[3] = {};
	unsigned int i, nr = 0, nr_fds = cpr_state_nr_fds(st);
	__u64 gen = 0;
	char num[16], *old_env = NULL;
	int *flags = NULL, memfd = -1, mflags, ret, err;

	if (section_save(st, CPR_SEC_HANDOFF_START, &sec[0]) ||
	    section_save(st, CPR_SEC_GENERATION, &sec[1]) ||
	    section_save(st, CPR_SEC_LAUNCHER_FDS, &sec[2])) {
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
	if (!ret)
		ret = cpr_state_to_memfd(st, &memfd);
	if (ret)
		goto out_sections;

	flags = calloc(nr_fds + 1, sizeof(*flags));
	if (!flags) {
		ret = cpr_err(-ENOMEM, "exec handoff: flags of %u fds", nr_fds);
		goto out_memfd;
	}
	for (nr = 0; nr < nr_fds; nr++) {
		const struct cpr_fd_rec *r = cpr_state_fd_at(st, nr);

		flags[nr] = fcntl(r->fd, F_GETFD);
		if (flags[nr] < 0 ||
		    fcntl(r->fd, F_SETFD, flags[nr] & ~FD_CLOEXEC)) {
			ret = cpr_err(-errno, "exec handoff: clearing FD_CLOEXEC on '%s'[%u] fd %d",
				      r->name, r->index, r->fd);
			goto out_flags;
		}
	}
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
out_memfd:
	close(memfd);
out_sections:
	for (i = 0; i < 3; i++)
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

int cpr_resume(struct cpr_resume_info *info)
{
	enum cpr_state_error why;
	struct cpr_state *st = NULL;
	const char *val = getenv(CPR_STATE_ENV);
	unsigned int i;
	int fd = -1, ret, leaks;

	memset(info, 0, sizeof(*info));
	info->state_fd = -1;
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
	ret = cpr_state_from_memfd(fd, CPR_PARSE_CHECK_FDS, &st, &why);
	if (ret)
		goto out_close;
	ret = load_launcher_fds(st);
	if (ret)
		goto out_close;

	for (i = 0; i < cpr_state_nr_fds(st); i++) {
		const struct cpr_fd_rec *r = cpr_state_fd_at(st, i);

		if (fcntl(r->fd, F_SETFD, FD_CLOEXEC)) {
			ret = cpr_err(-errno, "successor: setting FD_CLOEXEC on '%s'[%u] fd %d",
				      r->name, r->index, r->fd);
			goto out_close;
		}
	}
	close(fd);
	unsetenv(CPR_STATE_ENV);

	leaks = cpr_fd_audit(st);
	if (leaks < 0) {
		cpr_state_free(st);
		return leaks;
	}
	info->st = st;
	info->state_fd = fd;
	info->leaked_fds = leaks;
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

int cpr_fd_audit(const struct cpr_state *st)
{
	struct audit a = { .st = st, .fd_limit = INT_MAX };
	struct rlimit rl;
	unsigned int i;
	int ret;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < INT_MAX)
		a.fd_limit = rl.rlim_cur;
	a.nr_named = cpr_state_nr_fds(st);
	a.named = calloc(a.nr_named + 1, sizeof(int));
	if (!a.named)
		return cpr_err(-ENOMEM, "fd audit of %u named fds", a.nr_named);
	for (i = 0; i < a.nr_named; i++)
		a.named[i] = cpr_state_fd_at(st, i)->fd;
	qsort(a.named, a.nr_named, sizeof(int), cmp_int);

	ret = visit_open_fds(audit_fd, &a);
	free(a.named);
	return ret < 0 ? ret : a.leaks;
}
