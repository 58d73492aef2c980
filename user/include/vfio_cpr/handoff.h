/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Exec handoff: hand the CPR state and the fds it names to a successor
 * binary, and take them over on the other side.
 *
 * Predecessor: cpr_exec() serialises the state into a sealed memfd, clears
 * FD_CLOEXEC on exactly the preserved fds and the memfd, puts the memfd's
 * number in $VFIO_CPR_STATE_FD and execs.  If execve fails everything is put
 * back as it was and the error returned: the predecessor runs on.
 * cpr_exec_prepare() does the per-fd part ahead, before the handoff starts.
 *
 * Successor: cpr_resume() finds the variable, loads and validates the state
 * (seals, fds open and of the recorded kind), removes the variable, puts
 * FD_CLOEXEC back on every inherited fd and audits the fd table.  With
 * cpr_resume_flags(CPR_RESUME_DEFER_CHECKS) the per-fd part waits for
 * cpr_resume_finish(), once the successor's interrupts flow again.
 *
 * The fast handoff of a VM with vectors, in order:
 *	cpr_exec_prepare(st);			   before the blackout
 *	cpr_vectors_detach_vm(vm, sets, n);	   the handoff starts
 *	cpr_exec(st, path, argv);
 *   in the successor:
 *	cpr_resume_flags(&info, CPR_RESUME_DEFER_CHECKS);
 *	cpr_vm_create(&vm, ...); cpr_vectors_claim(info.st, dev, vm, &vs);
 *						   interrupts flow again
 *	cpr_resume_finish(&info);		   before anything else
 */
#ifndef VFIO_CPR_HANDOFF_H
#define VFIO_CPR_HANDOFF_H

#include <stdbool.h>
#include <linux/types.h>

#include "state.h"
/*
 * The clock and the fd count were declared here: their callers find them
 * in fd.h, which comes along until each includes it itself.
 */
#include "fd.h"

#define CPR_STATE_ENV		"VFIO_CPR_STATE_FD"

/* Sections the handoff itself keeps in the state. */
#define CPR_SEC_HANDOFF_START	"cpr.handoff_start_ns"
#define CPR_SEC_GENERATION	"cpr.generation"
#define CPR_SEC_LAUNCHER_FDS	"cpr.launcher_fds"
#define CPR_SEC_DISPOSE_FDS	"cpr.dispose_fds"
#define CPR_DISPOSE_FDS_MAX	16

/*
 * Record "now" as the start of the handoff (the moment the predecessor
 * stopped delivering interrupts).  cpr_exec() does it if nobody did.
 */
int cpr_handoff_mark_start(struct cpr_state *st);

/*
 * Exec @path with @argv handing over @st.  Returns only on failure, with
 * -errno; then the fd flags (as before cpr_exec_prepare(), if it was
 * called), the environment and @st are as before the call.
 */
int cpr_exec(struct cpr_state *st, const char *path, char *const argv[]);

/*
 * Optional, before the handoff starts: the part of cpr_exec() that does not
 * depend on its moment.  FD_CLOEXEC is cleared on every fd @st names (two
 * fcntl() calls an fd, 1.4 ms for 2048 vectors' 4096 eventfds), the flags
 * they had kept.  cpr_exec() on @st then skips that, or, if fds were saved
 * in or deleted from @st since, does it for the fds that are new; if the
 * exec fails it puts every flag back as it was before this call, and so
 * does cpr_exec_cancel() when the handoff is given up (on the fds @st
 * still names: a number no longer named is left alone).  Until then, a
 * child the process forks and execs inherits the fds.  One prepared state
 * a process: preparing another cancels the first.  Cancel before freeing
 * @st.
 */
int cpr_exec_prepare(const struct cpr_state *st);
/* Undo cpr_exec_prepare(@st); nothing if @st is not the prepared state. */
void cpr_exec_cancel(const struct cpr_state *st);

/*
 * Hand @fd to the next cpr_exec() only to be closed on the other side,
 * once the blackout is over: for an fd whose close() is slow and that
 * would otherwise be closed in the handoff (an epoll set of thousands of
 * fds takes a millisecond to tear down).  The handoff owns it from now on
 * (also on failure: -ENOSPC beyond CPR_DISPOSE_FDS_MAX, and it is closed
 * at once); FD_CLOEXEC is cleared on it.  The successor closes it in
 * cpr_resume_finish(), or in cpr_resume(); the fd audit does not count it.
 * cpr_dispose_fds_close() closes what a handoff given up still holds.
 */
int cpr_dispose_fd(int fd);
void cpr_dispose_fds_close(void);

struct cpr_resume_info {
	struct cpr_state *st;		/* owned by the caller */
	__u64 handoff_start_ns;	/* 0 if the predecessor recorded none */
	__u64 generation;		/* 1 for the first successor */
	int state_fd;			/* its memfd (closed by the finish) */
	int leaked_fds;			/* fds the audit found unaccounted */
	bool checks_pending;		/* cpr_resume_finish() still to do */
};

/*
 * Take over a handed-off state.  Returns 1 with @info filled in, 0 if the
 * process was not started by a handoff ($VFIO_CPR_STATE_FD unset), or
 * -errno with the problem named (variable malformed, fd closed, not a
 * sealed memfd, state invalid, an fd not open or of another kind than
 * recorded).  On failure nothing is left open.
 */
int cpr_resume(struct cpr_resume_info *info);

/*
 * cpr_resume_flags() flag: load the state (memfd, seals, every byte of it
 * validated) but leave the per-fd work for cpr_resume_finish(): checking
 * each fd's kind (a /proc link read, ~3 us an fd: 12 ms for 2048 vectors'
 * 4096 eventfds), putting FD_CLOEXEC back, auditing the fd table.  Only a
 * snapshot of which fds are open is taken now (one poll() over the fd
 * table), so that fds the successor opens meanwhile are not leaks.
 *
 * In between, the successor may attach the inherited eventfds to its new
 * VM: KVM_IRQFD checks an fd itself (EBADF, EINVAL for a file that is not
 * an eventfd; cpr_vectors_claim() then names the record and the kind).  It
 * must not fork, exec, read or write an inherited fd, nor report that the
 * handoff succeeded, before cpr_resume_finish() returned 0.
 */
#define CPR_RESUME_DEFER_CHECKS	0x1

int cpr_resume_flags(struct cpr_resume_info *info, unsigned int flags);

/*
 * The deferred part of cpr_resume_flags(): every recorded fd open and of
 * its kind (cpr_state_check_fds(), same messages), FD_CLOEXEC back on each,
 * the state memfd and what the predecessor handed over to be closed
 * (cpr_dispose_fd()) closed, then the audit of the fds open at resume
 * (@info->leaked_fds).  0, or -errno with the problem named; @info->st
 * stays the caller's either way.  Nothing to do (0) after a plain
 * cpr_resume().
 */
int cpr_resume_finish(struct cpr_resume_info *info);

/*
 * Count (and report) open fds that are neither stdin/out/err, nor named in
 * @st, nor inherited from whoever launched the first generation.  Returns
 * the number of such leaks (0 = clean) or -errno.
 */
int cpr_fd_audit(const struct cpr_state *st);

#endif /* VFIO_CPR_HANDOFF_H */
