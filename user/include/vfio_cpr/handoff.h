/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Exec handoff: hand the CPR state and the fds it names to a successor
 * binary, and take them over on the other side.
 *
 * Predecessor: cpr_exec() serialises the state into a sealed memfd, clears
 * FD_CLOEXEC on exactly the preserved fds and the memfd, puts the memfd's
 * number in $VFIO_CPR_STATE_FD and execs.  If execve fails everything is put
 * back as it was and the error returned: the predecessor runs on.
 *
 * Successor: cpr_resume() finds the variable, loads and validates the state
 * (seals, fds open and of the recorded kind), removes the variable, puts
 * FD_CLOEXEC back on every inherited fd and audits the fd table.
 */
#ifndef VFIO_CPR_HANDOFF_H
#define VFIO_CPR_HANDOFF_H

#include <linux/types.h>

#include "state.h"

#define CPR_STATE_ENV		"VFIO_CPR_STATE_FD"

/* Sections the handoff itself keeps in the state. */
#define CPR_SEC_HANDOFF_START	"cpr.handoff_start_ns"
#define CPR_SEC_GENERATION	"cpr.generation"
#define CPR_SEC_LAUNCHER_FDS	"cpr.launcher_fds"

/* CLOCK_MONOTONIC in nanoseconds. */
__u64 cpr_now_ns(void);

/*
 * Record "now" as the start of the handoff (the moment the predecessor
 * stopped delivering interrupts).  cpr_exec() does it if nobody did.
 */
int cpr_handoff_mark_start(struct cpr_state *st);

/*
 * Exec @path with @argv handing over @st.  Returns only on failure, with
 * -errno; then the fd flags, the environment and @st are as before the call.
 */
int cpr_exec(struct cpr_state *st, const char *path, char *const argv[]);

struct cpr_resume_info {
	struct cpr_state *st;		/* owned by the caller */
	__u64 handoff_start_ns;	/* 0 if the predecessor recorded none */
	__u64 generation;		/* 1 for the first successor */
	int state_fd;			/* the memfd it came in (now closed) */
	int leaked_fds;			/* fds the audit found unaccounted */
};

/*
 * Take over a handed-off state.  Returns 1 with @info filled in, 0 if the
 * process was not started by a handoff ($VFIO_CPR_STATE_FD unset), or
 * -errno with the problem named (variable malformed, fd closed, not a
 * sealed memfd, state invalid).  On failure nothing is left open.
 */
int cpr_resume(struct cpr_resume_info *info);

/*
 * Count (and report) open fds that are neither stdin/out/err, nor named in
 * @st, nor inherited from whoever launched the first generation.  Returns
 * the number of such leaks (0 = clean) or -errno.
 */
int cpr_fd_audit(const struct cpr_state *st);

#endif /* VFIO_CPR_HANDOFF_H */
