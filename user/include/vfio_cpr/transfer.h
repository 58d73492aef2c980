/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Socket handoff (QEMU's cpr-transfer): the successor is started on its own
 * and connects to the predecessor over a UNIX stream socket; the CPR state
 * and every fd it names travel with SCM_RIGHTS.  Unlike the exec handoff,
 * the predecessor keeps its guest running while the successor prepares,
 * and only stops once the successor confirmed it attached everything; if
 * the successor dies, refuses or times out before that, the predecessor
 * re-attaches and runs on.
 *
 * The conversation (each message: a header, a payload, and fds):
 *
 *   predecessor                         successor
 *   accept (peer: same uid or root) <-- connect
 *   STATE: state + its fds          -->  rebuild the store on the received
 *                                        fds (kinds checked), new VM,
 *                                        vectors claimed without a VM
 *                                   <--  READY
 *   stop the vCPU, detach the irqfds
 *   (LAPIC-pending noted)
 *   DETACHED: the updated sections  -->  merge them, attach everything
 *                                        (one routing commit, re-inject)
 *                                   <--  ATTACHED
 *   stop for good
 *
 * Either side may send ABORT with a reason instead of its next message.
 */
#ifndef VFIO_CPR_TRANSFER_H
#define VFIO_CPR_TRANSFER_H

#include <stdbool.h>
#include <linux/types.h>

#include "state.h"

enum cpr_xfer_type {
	CPR_XFER_STATE = 1,
	CPR_XFER_READY,
	CPR_XFER_DETACHED,
	CPR_XFER_ATTACHED,
	CPR_XFER_ABORT,
	CPR_XFER_TYPE_MAX,
};

const char *cpr_xfer_type_name(int type);

/*
 * Predecessor: a listening socket at @path (an existing socket file there is
 * replaced; anything else is refused), or, for "@name", in the abstract
 * namespace.  *@lfd is close-on-exec.
 */
int cpr_xfer_listen(const char *path, int *lfd);
/*
 * Accept one successor within @timeout_ms (-ETIMEDOUT) and check its
 * credentials (SO_PEERCRED): same uid as this process, or root; anyone
 * else is refused with -EACCES and the connection closed.
 */
int cpr_xfer_accept(int lfd, int timeout_ms, int *sock);
/* Successor: connect to @path, retrying until @timeout_ms passed. */
int cpr_xfer_connect(const char *path, int timeout_ms, int *sock);
/* The peer-credential rule of cpr_xfer_accept(), on any connected socket. */
int cpr_xfer_check_peer(int sock);

/*
 * Send the state: CPR_XFER_STATE with every fd @st names (in record order,
 * in batches under the kernel's SCM_MAX_FD), or CPR_XFER_DETACHED with the
 * sections only.
 */
int cpr_xfer_send_state(int sock, int type, const struct cpr_state *st);
/* READY, ATTACHED, or ABORT with @reason (NULL: none). */
int cpr_xfer_send(int sock, int type, const char *reason);

/*
 * Receive the next message within @timeout_ms.  Returns its type, or
 * -errno: -ETIMEDOUT, -ECONNRESET when the peer is gone (EOF), -EBADMSG for
 * a malformed message, -ECONNABORTED for an ABORT (its reason is in the
 * message of cpr_last_error()).
 *
 * For CPR_XFER_STATE, *@st becomes a new store naming the received fds
 * (close-on-exec), each checked to be of its recorded kind (-EBADFD
 * naming the record otherwise; every received fd is closed on failure).
 * For CPR_XFER_DETACHED the sections received are set in the existing
 * *@st.  @st may be NULL for the other types.
 */
int cpr_xfer_recv(int sock, int timeout_ms, struct cpr_state **st);

/* ---- The two sides of the conversation ---- */

struct cpr_xfer_give_ops {
	/*
	 * Optional: bring the state up to date before it is sent (the
	 * successor prepares from it while this side still delivers), e.g.
	 * cpr_vectors_save() for every vector set.
	 */
	int (*save)(struct cpr_state *st, void *arg);
	/* Stop delivering: stop the vCPUs, detach the irqfds, save sections. */
	int (*detach)(struct cpr_state *st, void *arg);
	/*
	 * The successor failed after detach(): deliver again, in the same VM,
	 * without duplicating what detach() left pending in its LAPIC.
	 */
	int (*reattach)(struct cpr_state *st, void *arg);
};

/*
 * Predecessor: accept a successor on @lfd, send it @st and its fds, wait for
 * READY, detach, send the updated sections, wait for ATTACHED; each wait
 * bounded by @timeout_ms.  Returns 0 once the successor has everything
 * (the caller stops for good), or -errno with the reason; after a failure
 * past detach() it has called reattach(), so the caller runs on.  The
 * generation section of @st is advanced for the successor, and put back
 * when the handoff fails.
 */
int cpr_xfer_give(int lfd, struct cpr_state *st, int timeout_ms,
		  const struct cpr_xfer_give_ops *ops, void *arg);

struct cpr_xfer_take_ops {
	/* With the received state: everything short of attaching (new VM...). */
	int (*prepare)(struct cpr_state *st, void *arg);
	/* With the predecessor's final sections: attach everything. */
	int (*attach)(struct cpr_state *st, void *arg);
};

/*
 * Successor: connect to @path, receive the state (*@st, the caller frees
 * it and owns its fds), prepare, READY, receive DETACHED, attach, ATTACHED.
 * A failing prepare() is sent as ABORT with its message.  @timeout_ms
 * bounds each wait.
 */
int cpr_xfer_take(const char *path, int timeout_ms, struct cpr_state **st,
		  const struct cpr_xfer_take_ops *ops, void *arg);

#endif /* VFIO_CPR_TRANSFER_H */
