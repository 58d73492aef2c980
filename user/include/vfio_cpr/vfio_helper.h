/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The device helper: a process that holds the VFIO devices' fds and, on
 * request, issues the few VFIO_DEVICE_SET_IRQS a successor legitimately
 * needs, while the successor itself runs under the lockdown (lockdown.h),
 * which refuses every SET_IRQS: seccomp cannot look inside one.
 *
 * Life:
 *  - The first generation starts it with cpr_helper_start() right after it
 *    opened its devices, before it creates any VM, vCPU or eventfd, and
 *    before any lockdown (-EPERM under one: the helper would inherit it).
 *    The helper is a fork of the caller: it closes every fd but stdio, its
 *    end of a SOCK_SEQPACKET socket pair and the devices' container, group,
 *    device and iommufd fds, refuses to run if it still maps a KVM object
 *    (it would keep the old VM alive after the handoff), then serves.
 *  - The client end is saved in the CPR state as CPR_HELPER_FD_NAME (index
 *    0), the helper's pid in section CPR_HELPER_SEC_PID: an exec successor
 *    inherits the socket, a socket successor receives it with the other
 *    fds, and cpr_helper_attach() takes it up.  One process at a time
 *    talks to the helper: the one that runs the VM.
 *  - On QUIT (cpr_helper_quit()) the helper closes the device fds, then its
 *    socket, then exits; the same when every client end is closed (EOF).
 *    A client that sees EOF knows the device fds are closed.
 *
 * Devices are named by the library's name (cpr_vfio_dev.name: BDF or mdev
 * UUID), since fd numbers differ in a socket successor.
 *
 * Policy, enforced by the helper (a refusal is -EPERM, -ENODEV for a
 * device it does not hold, with the rule in the message):
 *  - SET_IRQS with ACTION_TRIGGER or ACTION_UNMASK and DATA_NONE or
 *    DATA_BOOL, count >= 1: software triggers (ERR/REQ checks, devices
 *    without a driver) and the INTx unmask by ioctl (drivers that refuse an
 *    unmask eventfd);
 *  - SET_IRQS with DATA_EVENTFD | ACTION_TRIGGER for MSI-X only
 *    (VFIO_PCI_MSIX_IRQ_INDEX), count >= 1, every fd a valid one (-1 would
 *    release a vector): enabling vectors of an enabled MSI-X set that were
 *    not used yet (Linux 6.5+ allocates them dynamically);
 *  - DISABLE, its own request (DATA_NONE | ACTION_TRIGGER, count 0): the
 *    last generation leaving the device quiet;
 *  - the caller's extra operations, registered at start.
 * Everything else is refused: ACTION_MASK, eventfds for INTx, MSI, ERR or
 * REQ, an unmask eventfd, count 0 in a SET_IRQS (that disables: ask for
 * DISABLE), unknown flags, more than one data or action type.
 *
 * Every wait of the client is bounded (CPR_HELPER_TIMEOUT_MS, or
 * cpr_helper_set_timeout()): a helper that died gives -ECONNRESET, one that
 * does not answer -ETIMEDOUT, both naming it.  Errors of the helper come
 * back as -errno with its message in cpr_last_error().
 */
#ifndef VFIO_CPR_VFIO_HELPER_H
#define VFIO_CPR_VFIO_HELPER_H

#include <linux/types.h>
#include <linux/vfio.h>
#include <stddef.h>
#include <sys/types.h>

#include "state.h"
#include "vfio.h"

#define CPR_HELPER_FD_NAME	"cpr_helper"
#define CPR_HELPER_SEC_PID	"cpr.helper_pid"
#define CPR_HELPER_TIMEOUT_MS	10000
#define CPR_HELPER_DEVS_MAX	16
#define CPR_HELPER_OPS_MAX	16
/* Extra operations: payload in and out, and fds in. */
#define CPR_HELPER_PAYLOAD_MAX	4096
#define CPR_HELPER_OP_FDS_MAX	4

/* Kinds of requests, for the counters. */
enum cpr_helper_req {
	CPR_HELPER_REQ_TRIGGER,		/* ACTION_TRIGGER, DATA_NONE/BOOL */
	CPR_HELPER_REQ_UNMASK,		/* ACTION_UNMASK, DATA_NONE/BOOL */
	CPR_HELPER_REQ_EVENTFDS,	/* MSI-X vectors given eventfds */
	CPR_HELPER_REQ_DISABLE,
	CPR_HELPER_REQ_OP,		/* an extra operation */
	CPR_HELPER_REQ_REFUSED,		/* refused by the policy */
	CPR_HELPER_REQ_MAX,
};

const char *cpr_helper_req_name(enum cpr_helper_req kind);

/* The helper's view of a device it holds; -1 for fds the interface lacks. */
struct cpr_helper_dev {
	char name[CPR_VFIO_NAME_MAX];
	int container_fd;
	int group_fd;
	int device_fd;
	int iommufd;
};

/* One call of an extra operation, inside the helper. */
struct cpr_helper_call {
	const struct cpr_helper_dev *dev;	/* the device named, or NULL */
	const void *in;
	size_t in_len;
	/*
	 * The fds sent with the request, the helper's numbers: closed once
	 * the operation returns, except those it sets to -1 (it keeps them).
	 */
	int *fds;
	unsigned int nr_fds;
	void *out;			/* CPR_HELPER_PAYLOAD_MAX bytes */
	size_t out_len;			/* 0; set what was written */
};

/*
 * An extra operation, run inside the helper (a fork of the same binary, so
 * @fn is valid there; what travels is @id).  @fn returns 0 or -errno, and
 * reports with cpr_err() (the message reaches the client).
 */
struct cpr_helper_op {
	__u32 id;			/* nonzero, unique in the table */
	const char *name;
	int (*fn)(struct cpr_helper_call *call);
};

struct cpr_helper;

/*
 * Fork the helper holding @devs' fds, with the extra operations @ops, and
 * wait (bounded) until it says it serves.  Saves the client socket and the
 * pid in @st (-EEXIST if @st already names a helper).  *@out belongs to
 * the caller (cpr_helper_quit() or cpr_helper_free()).
 */
int cpr_helper_start(struct cpr_state *st, struct cpr_vfio_dev *const *devs,
		     unsigned int nr_devs, const struct cpr_helper_op *ops,
		     unsigned int nr_ops, struct cpr_helper **out);
/*
 * A successor: take up the helper named in @st (-ENOENT if there is none,
 * -EBADFD if the fd is not a socket, -EBADMSG without the pid section).
 */
int cpr_helper_attach(struct cpr_state *st, struct cpr_helper **out);
/*
 * Forget @h in this process, leaving the helper running and the socket
 * open and in the state, for the next generation.  NULL is fine.
 */
void cpr_helper_free(struct cpr_helper *h);
/*
 * End the helper: QUIT, then wait (bounded) until it closed the device
 * fds and its socket (EOF); close the socket and delete it and the pid
 * section from the state; reap the helper if it is this process's child
 * (a helper that ran out of time is killed and reaped).  Frees @h.  0 when
 * the helper ended as asked (or had already ended normally, seen by its
 * parent); -ECONNRESET if it was gone otherwise, -ETIMEDOUT.
 */
int cpr_helper_quit(struct cpr_helper *h);

pid_t cpr_helper_pid(const struct cpr_helper *h);
/* Bound of every wait; <= 0 restores CPR_HELPER_TIMEOUT_MS. */
void cpr_helper_set_timeout(struct cpr_helper *h, int timeout_ms);

/*
 * VFIO_DEVICE_SET_IRQS on device @dev, by the helper.  @data: NULL for
 * DATA_NONE, @count bytes (0 or 1) for DATA_BOOL, @count fds for
 * DATA_EVENTFD (sent with SCM_RIGHTS, in several requests beyond what one
 * message carries).
 */
int cpr_helper_set_irqs(struct cpr_helper *h, const char *dev, __u32 flags,
			unsigned int index, unsigned int start,
			unsigned int count, const void *data);
/* DATA_NONE | ACTION_TRIGGER of @index's sub-index @start. */
int cpr_helper_trigger(struct cpr_helper *h, const char *dev,
		       unsigned int index, unsigned int start);
/* DATA_NONE | ACTION_UNMASK of @index's sub-index @start. */
int cpr_helper_unmask(struct cpr_helper *h, const char *dev,
		      unsigned int index, unsigned int start);
/* MSI-X vectors @start .. @start + @count - 1 get eventfds @fds. */
int cpr_helper_msix_eventfds(struct cpr_helper *h, const char *dev,
			     unsigned int start, unsigned int count,
			     const int *fds);
/* DATA_NONE | ACTION_TRIGGER, count 0: disable @index. */
int cpr_helper_disable(struct cpr_helper *h, const char *dev,
		       unsigned int index);

/*
 * Run extra operation @op inside the helper, on device @dev (NULL: none),
 * with @in (up to CPR_HELPER_PAYLOAD_MAX bytes) and @fds (up to
 * CPR_HELPER_OP_FDS_MAX); what it wrote lands in @out (up to @out_size
 * bytes, -EMSGSIZE if it wrote more), its length in *@out_len.
 */
int cpr_helper_call(struct cpr_helper *h, __u32 op, const char *dev,
		    const void *in, size_t in_len, const int *fds,
		    unsigned int nr_fds, void *out, size_t out_size,
		    size_t *out_len);

/*
 * Requests of @kind this process sent and the helper carried out (whatever
 * the kernel answered), and how many it refused (REFUSED), since
 * cpr_helper_start() or cpr_helper_attach(): what a successor asked for.
 * Eventfds split over several messages count once a message.
 */
unsigned int cpr_helper_count(const struct cpr_helper *h,
			      enum cpr_helper_req kind);
/*
 * What the helper did over its whole life, for every client: requests of
 * each kind it carried out (whatever the kernel answered) and refused.
 */
int cpr_helper_stats(struct cpr_helper *h,
		     unsigned int counts[CPR_HELPER_REQ_MAX]);

#endif /* VFIO_CPR_VFIO_HELPER_H */
