// SPDX-License-Identifier: GPL-2.0-only
/*
 * Exec handoff of the CPR state and the fds it names, and the successor's
 * side of it: load, validate, restore close-on-exec, audit the fd table
 * (with handoff_fds.c, which keeps the fds beside the state's).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vfio_cpr/fd.h"
#include "vfio_cpr/handoff.h"
#include "vfio_cpr/log.h"

#include "internal.h"

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
		ret = cpr_launcher_fds_save(st);
	if (!ret)
		ret = cpr_dispose_fds_save(st);
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

/* The state memfd of a deferred resume, until cpr_resume_finish(). */
static int resume_memfd = -1;

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
		ret = cpr_launcher_fds_load(st);
	if (!ret)
		ret = cpr_dispose_fds_load(st);
	if (!ret && !defer)
		ret = restore_cloexec(st);
	if (ret)
		goto out_close;
	unsetenv(CPR_STATE_ENV);

	if (defer) {
		/* Freeing its pages can wait too: closed by the finish. */
		resume_memfd = fd;
		ret = cpr_fd_snapshot(st, resume_memfd);
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
	leaks = cpr_fd_audit_snapshot(info->st);
	if (leaks < 0)
		return leaks;
	info->leaked_fds = leaks;
	info->checks_pending = false;
	return 0;
}
