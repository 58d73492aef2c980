// SPDX-License-Identifier: GPL-2.0-only
/*
 * The device helper (see vfio_helper.h): the helper process and its client.
 *
 * Wire: a SOCK_SEQPACKET socket pair, one request or reply per message,
 * fds with SCM_RIGHTS in the same message.  A request is struct helper_req
 * followed by its payload; a reply is struct helper_rep, its payload, then
 * its message text.  A reply carries its request's sequence number, so
 * that a late answer to a request the client gave up on is dropped.  The
 * helper answers every request but QUIT; its first message (HELLO, sequence
 * 0) says whether it serves.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/types.h>
#include <linux/vfio.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vfio_cpr/compiler.h"
#include "vfio_cpr/fd.h"
#include "vfio_cpr/lockdown.h"
#include "vfio_cpr/log.h"
#include "vfio_cpr/state.h"
#include "vfio_cpr/vfio.h"
#include "vfio_cpr/vfio_helper.h"

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

#define HELPER_MAGIC	0x48525043u	/* "CPRH" */
#define HELPER_VERSION	1
/* Eventfds in one SET_IRQS message, well under SCM_MAX_FD (253). */
#define HELPER_FDS_MAX	128

enum helper_type {
	HT_HELLO = 1,
	HT_SET_IRQS,
	HT_DISABLE,
	HT_OP,
	HT_STATS,
	HT_QUIT,
};

struct helper_req {
	__u32 magic;
	__u16 version;
	__u16 type;
	__u32 seq;
	__u32 flags;		/* SET_IRQS: VFIO_IRQ_SET_* */
	__u32 index;
	__u32 start;
	__u32 count;
	__u32 op;		/* OP: the operation's id */
	__u32 len;		/* payload bytes after the header */
	__u32 nr_fds;		/* fds in the message */
	char dev[CPR_VFIO_NAME_MAX];	/* "" for none */
};

#define REP_REFUSED	0x1u	/* by the policy: the kernel was not asked */

struct helper_rep {
	__u32 magic;
	__u16 version;
	__u16 type;
	__u32 seq;
	__s32 status;		/* 0 or -errno */
	__u32 flags;		/* REP_* */
	__u32 len;		/* payload bytes after the header */
	__u32 msg_len;		/* message bytes after the payload */
};

#define REQ_BUF_SIZE	(sizeof(struct helper_req) + CPR_HELPER_PAYLOAD_MAX)
#define REP_BUF_SIZE	(sizeof(struct helper_rep) + CPR_HELPER_PAYLOAD_MAX + \
			 CPR_ERRMSG_MAX)

struct cpr_helper {
	int sock;
	pid_t pid;
	struct cpr_state *st;
	int timeout_ms;
	__u32 seq;
	bool reaped;		/* its exit status is in exit_status */
	int exit_status;
	int asking;		/* kind of the request in flight, or -1 */
	unsigned int counts[CPR_HELPER_REQ_MAX];
};

static const char * const req_names[CPR_HELPER_REQ_MAX] = {
	[CPR_HELPER_REQ_TRIGGER]	= "trigger",
	[CPR_HELPER_REQ_UNMASK]		= "unmask",
	[CPR_HELPER_REQ_EVENTFDS]	= "MSI-X eventfds",
	[CPR_HELPER_REQ_DISABLE]	= "disable",
	[CPR_HELPER_REQ_OP]		= "extra operation",
	[CPR_HELPER_REQ_REFUSED]	= "refused",
};

const char *cpr_helper_req_name(enum cpr_helper_req kind)
{
	return (unsigned int)kind < CPR_HELPER_REQ_MAX ? req_names[kind] : "?";
}

/* ---- The policy ---- */

static const char *data_name(__u32 flags)
{
	switch (flags & VFIO_IRQ_SET_DATA_TYPE_MASK) {
	case VFIO_IRQ_SET_DATA_NONE:
		return "DATA_NONE";
	case VFIO_IRQ_SET_DATA_BOOL:
		return "DATA_BOOL";
	case VFIO_IRQ_SET_DATA_EVENTFD:
		return "DATA_EVENTFD";
	}
	return "DATA_?";
}

static const char *action_name(__u32 flags)
{
	switch (flags & VFIO_IRQ_SET_ACTION_TYPE_MASK) {
	case VFIO_IRQ_SET_ACTION_MASK:
		return "ACTION_MASK";
	case VFIO_IRQ_SET_ACTION_UNMASK:
		return "ACTION_UNMASK";
	case VFIO_IRQ_SET_ACTION_TRIGGER:
		return "ACTION_TRIGGER";
	}
	return "ACTION_?";
}

static bool one_bit(__u32 v)
{
	return v && !(v & (v - 1));
}

/*
 * The kind of a SET_IRQS request the policy allows, or -1 with the rule it
 * breaks in *@why.
 */
static int classify(__u32 flags, __u32 index, __u32 count, const char **why)
{
	__u32 data = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
	__u32 action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;

	if (flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK))
		*why = "unknown flags";
	else if (!one_bit(data) || !one_bit(action))
		*why = "not exactly one data type and one action";
	else if (action == VFIO_IRQ_SET_ACTION_MASK)
		*why = "masking is not a successor's business";
	else if (!count)
		*why = "count 0 disables the IRQ: that is a DISABLE request of its own";
	else if (count > CPR_HELPER_PAYLOAD_MAX)
		*why = "count out of range";
	else if (data != VFIO_IRQ_SET_DATA_EVENTFD)
		return action == VFIO_IRQ_SET_ACTION_TRIGGER ?
		       CPR_HELPER_REQ_TRIGGER : CPR_HELPER_REQ_UNMASK;
	else if (action != VFIO_IRQ_SET_ACTION_TRIGGER)
		*why = "an unmask eventfd is setup, not for a successor";
	else if (index != VFIO_PCI_MSIX_IRQ_INDEX)
		*why = "eventfds go only to MSI-X vectors not used yet; elsewhere they are setup";
	else
		return CPR_HELPER_REQ_EVENTFDS;
	return -1;
}

/* ---- Messages with fds ---- */

union fd_cmsg {
	char buf[CMSG_SPACE(sizeof(int) * HELPER_FDS_MAX)];
	struct cmsghdr align;
};

static ssize_t send_msg(int sock, const void *buf, size_t len,
			const int *fds, unsigned int nr_fds, int flags)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	union fd_cmsg cbuf;
	struct cmsghdr *cm;
	ssize_t n;

	if (nr_fds > HELPER_FDS_MAX)
		return -EINVAL;
	if (nr_fds) {
		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nr_fds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nr_fds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nr_fds);
	}
	n = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
	return n < 0 ? -errno : n;
}

static void close_fds(int *fds, unsigned int nr)
{
	unsigned int i;

	for (i = 0; i < nr; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

/*
 * One message into @buf, its fds (close-on-exec) into @fds.  Returns its
 * length (0 at EOF), or -errno.  A message or fds that did not fit set
 * *@trunc (whatever fds came are closed); @buf then holds its beginning.
 */
static ssize_t recv_msg(int sock, void *buf, size_t size, int *fds,
			unsigned int *nr_fds, bool *trunc, int flags)
{
	struct iovec iov = { .iov_base = buf, .iov_len = size };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	union fd_cmsg cbuf;
	struct cmsghdr *cm;
	ssize_t n;

	*nr_fds = 0;
	*trunc = false;
	mh.msg_control = cbuf.buf;
	mh.msg_controllen = sizeof(cbuf.buf);
	n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
	if (n < 0)
		return -errno;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		unsigned int k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (*nr_fds + k > HELPER_FDS_MAX)
			k = HELPER_FDS_MAX - *nr_fds;
		memcpy(fds + *nr_fds, CMSG_DATA(cm), k * sizeof(int));
		*nr_fds += k;
	}
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		close_fds(fds, *nr_fds);
		*nr_fds = 0;
		*trunc = true;
	}
	return n;
}

/* ---- The helper process ---- */

struct server {
	int sock;
	struct cpr_helper_dev devs[CPR_HELPER_DEVS_MAX];
	unsigned int nr_devs;
	struct cpr_helper_op ops[CPR_HELPER_OPS_MAX];
	unsigned int nr_ops;
	unsigned int counts[CPR_HELPER_REQ_MAX];
	union {
		struct helper_req req;
		char buf[REQ_BUF_SIZE];
	} in;
	union {
		struct helper_rep rep;
		char buf[REP_BUF_SIZE];
	} out;
	int fds[HELPER_FDS_MAX];
	unsigned int nr_fds;
};

/* The message of cpr_err() without the errno text the client adds again. */
static const char *strip_errno_text(char *msg, int status)
{
	char tail[96];
	size_t len = strlen(msg), tlen;

	snprintf(tail, sizeof(tail), ": %s (errno %d)", strerror(-status),
		 -status);
	tlen = strlen(tail);
	if (len >= tlen && !strcmp(msg + len - tlen, tail))
		msg[len - tlen] = '\0';
	return msg;
}

static int reply(struct server *s, __u16 type, __u32 seq, int status,
		 __u32 flags, const void *payload, size_t len)
{
	struct helper_rep *rep = &s->out.rep;
	char msg[CPR_ERRMSG_MAX];
	size_t mlen = 0;
	ssize_t n;

	if (status) {
		snprintf(msg, sizeof(msg), "%s", cpr_last_error());
		strip_errno_text(msg, status);
		mlen = strlen(msg);
	}
	memset(rep, 0, sizeof(*rep));
	rep->magic = HELPER_MAGIC;
	rep->version = HELPER_VERSION;
	rep->type = type;
	rep->seq = seq;
	rep->status = status;
	rep->flags = flags;
	rep->len = len;
	rep->msg_len = mlen;
	/* An operation's answer is already in place. */
	if (len && payload != s->out.buf + sizeof(*rep))
		memcpy(s->out.buf + sizeof(*rep), payload, len);
	memcpy(s->out.buf + sizeof(*rep) + len, msg, mlen);
	n = send_msg(s->sock, s->out.buf, sizeof(*rep) + len + mlen, NULL, 0, 0);
	return n < 0 ? (int)n : 0;
}

static const struct cpr_helper_dev *find_dev(const struct server *s,
					     const char *name)
{
	unsigned int i;

	for (i = 0; i < s->nr_devs; i++)
		if (!strcmp(s->devs[i].name, name))
			return &s->devs[i];
	return NULL;
}

static int no_such_dev(const struct server *s, const char *name)
{
	char held[CPR_HELPER_DEVS_MAX * (CPR_VFIO_NAME_MAX + 2)] = "";
	size_t used = 0;
	unsigned int i;

	for (i = 0; i < s->nr_devs && used < sizeof(held); i++)
		used += snprintf(held + used, sizeof(held) - used, "%s%s",
				 i ? ", " : "", s->devs[i].name);
	return cpr_err(-ENODEV, "%s: not a device the helper holds (it holds %s)",
		       name, s->nr_devs ? held : "none");
}

static int do_ioctl_set_irqs(const struct cpr_helper_dev *d,
			     const struct helper_req *rq, const void *data,
			     size_t data_len)
{
	struct vfio_irq_set *set;
	int ret = 0;

	set = calloc(1, sizeof(*set) + data_len);
	if (!set)
		return cpr_err(-ENOMEM, "%s: VFIO_DEVICE_SET_IRQS", d->name);
	set->argsz = sizeof(*set) + data_len;
	set->flags = rq->flags;
	set->index = rq->index;
	set->start = rq->start;
	set->count = rq->count;
	if (data_len)
		memcpy(set->data, data, data_len);
	if (ioctl(d->device_fd, VFIO_DEVICE_SET_IRQS, set))
		ret = cpr_err(-errno,
			      "%s: VFIO_DEVICE_SET_IRQS %s %s|%s start %u count %u (device fd %d in the helper)",
			      d->name, cpr_vfio_irq_name(rq->index),
			      action_name(rq->flags), data_name(rq->flags),
			      rq->start, rq->count, d->device_fd);
	free(set);
	return ret;
}

static int serve_set_irqs(struct server *s, const struct helper_req *rq,
			  const void *payload, bool *refused)
{
	const struct cpr_helper_dev *d = find_dev(s, rq->dev);
	const __s32 *slots = payload;
	const char *why = NULL;
	int kind;
	__u32 i;

	*refused = true;
	if (!d)
		return no_such_dev(s, rq->dev);
	kind = classify(rq->flags, rq->index, rq->count, &why);
	if (kind < 0)
		return cpr_err(-EPERM,
			       "%s: VFIO_DEVICE_SET_IRQS %s %s|%s start %u count %u refused by the helper's policy: %s",
			       d->name, cpr_vfio_irq_name(rq->index),
			       action_name(rq->flags), data_name(rq->flags),
			       rq->start, rq->count, why);
	if (kind == CPR_HELPER_REQ_EVENTFDS) {
		if (rq->len != rq->count * sizeof(__s32))
			return cpr_err(-EPERM,
				       "%s: MSI-X eventfds: %u bytes of fd numbers for count %u",
				       d->name, rq->len, rq->count);
		for (i = 0; i < rq->count; i++)
			if (slots[i] < 0)
				return cpr_err(-EPERM,
					       "%s: MSI-X vector %u given fd %d refused by the helper's policy: a successor only adds vectors (fd -1 would release one)",
					       d->name, rq->start + i, slots[i]);
		if (s->nr_fds != rq->count)
			return cpr_err(-EPERM, "%s: MSI-X eventfds: %u fds came for count %u",
				       d->name, s->nr_fds, rq->count);
	} else if (rq->len != (rq->flags & VFIO_IRQ_SET_DATA_BOOL ?
			       rq->count : 0)) {
		return cpr_err(-EPERM, "%s: %s with %u bytes of data for count %u",
			       d->name, data_name(rq->flags), rq->len, rq->count);
	}
	*refused = false;
	s->counts[kind]++;
	if (kind == CPR_HELPER_REQ_EVENTFDS)
		return do_ioctl_set_irqs(d, rq, s->fds,
					 rq->count * sizeof(__s32));
	return do_ioctl_set_irqs(d, rq, payload, rq->len);
}

static int serve_disable(struct server *s, const struct helper_req *rq,
			 bool *refused)
{
	const struct cpr_helper_dev *d = find_dev(s, rq->dev);
	struct helper_req off = {
		.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = rq->index,
	};

	*refused = !d;
	if (!d)
		return no_such_dev(s, rq->dev);
	s->counts[CPR_HELPER_REQ_DISABLE]++;
	return do_ioctl_set_irqs(d, &off, NULL, 0);
}

static int serve_op(struct server *s, const struct helper_req *rq,
		    const void *payload, size_t *out_len, bool *refused)
{
	struct cpr_helper_call call = {
		.in = payload,
		.in_len = rq->len,
		.fds = s->fds,
		.nr_fds = s->nr_fds,
		.out = s->out.buf + sizeof(struct helper_rep),
	};
	const struct cpr_helper_op *op = NULL;
	unsigned int i;
	int ret;

	*refused = true;
	for (i = 0; i < s->nr_ops; i++)
		if (s->ops[i].id == rq->op)
			op = &s->ops[i];
	if (!op)
		return cpr_err(-EOPNOTSUPP, "no extra operation %u in the helper (%u registered)",
			       rq->op, s->nr_ops);
	if (rq->dev[0]) {
		call.dev = find_dev(s, rq->dev);
		if (!call.dev)
			return no_such_dev(s, rq->dev);
	}
	if (s->nr_fds > CPR_HELPER_OP_FDS_MAX)
		return cpr_err(-EPERM, "extra operation %s: %u fds, at most %d",
			       op->name, s->nr_fds, CPR_HELPER_OP_FDS_MAX);
	*refused = false;
	s->counts[CPR_HELPER_REQ_OP]++;
	cpr_clear_error();
	ret = op->fn(&call);
	if (ret) {
		char msg[CPR_ERRMSG_MAX];

		snprintf(msg, sizeof(msg), "%s", cpr_last_error());
		ret = cpr_err(ret, "extra operation %s%s%s", op->name,
			      msg[0] ? ": " : "", strip_errno_text(msg, ret));
	}
	if (!ret && call.out_len > CPR_HELPER_PAYLOAD_MAX)
		ret = cpr_err(-EMSGSIZE, "extra operation %s wrote %zu bytes, at most %d",
			      op->name, call.out_len, CPR_HELPER_PAYLOAD_MAX);
	*out_len = ret ? 0 : call.out_len;
	return ret;
}

/* One request; false when the helper is to stop. */
static bool serve_one(struct server *s, ssize_t n)
{
	const struct helper_req *rq = &s->in.req;
	const void *payload = s->in.buf + sizeof(*rq);
	size_t out_len = 0;
	bool refused = false;
	const void *out = s->out.buf + sizeof(struct helper_rep);
	int ret;

	if ((size_t)n < sizeof(*rq) || rq->magic != HELPER_MAGIC ||
	    rq->version != HELPER_VERSION)
		return false;	/* not a client of ours: hang up */
	if (rq->type == HT_QUIT)
		return false;
	if (rq->len > CPR_HELPER_PAYLOAD_MAX ||
	    (size_t)n != sizeof(*rq) + rq->len ||
	    strnlen(rq->dev, sizeof(rq->dev)) == sizeof(rq->dev)) {
		ret = cpr_err(-EBADMSG, "malformed request of %zd bytes", n);
		refused = true;
	} else if (rq->type == HT_SET_IRQS) {
		ret = serve_set_irqs(s, rq, payload, &refused);
	} else if (rq->type == HT_DISABLE) {
		ret = serve_disable(s, rq, &refused);
	} else if (rq->type == HT_OP) {
		ret = serve_op(s, rq, payload, &out_len, &refused);
	} else if (rq->type == HT_STATS) {
		out = s->counts;
		out_len = sizeof(s->counts);
		ret = 0;
	} else {
		ret = cpr_err(-EOPNOTSUPP, "unknown request type %u", rq->type);
		refused = true;
	}
	if (refused)
		s->counts[CPR_HELPER_REQ_REFUSED]++;
	return !reply(s, rq->type, rq->seq, ret, refused ? REP_REFUSED : 0,
		      out, out_len);
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* close_range(2): Linux 5.9. */
static int close_from_to(int from, unsigned int to)
{
	if (close_range(from, to, 0))
		return cpr_err(-errno, "helper: closing fds %d..%u", from, to);
	return 0;
}

/* Close every fd but stdio, the socket and the devices' fds. */
static int close_other_fds(const struct server *s)
{
	int keep[4 + 4 * CPR_HELPER_DEVS_MAX];
	unsigned int n = 0, i;
	int from = 0;

	keep[n++] = STDIN_FILENO;
	keep[n++] = STDOUT_FILENO;
	keep[n++] = STDERR_FILENO;
	keep[n++] = s->sock;
	for (i = 0; i < s->nr_devs; i++) {
		keep[n++] = s->devs[i].container_fd;
		keep[n++] = s->devs[i].group_fd;
		keep[n++] = s->devs[i].device_fd;
		keep[n++] = s->devs[i].iommufd;
	}
	qsort(keep, n, sizeof(keep[0]), cmp_int);
	for (i = 0; i < n; i++) {
		int ret;

		if (keep[i] < from)
			continue;	/* -1, or kept already */
		ret = keep[i] > from ? close_from_to(from, keep[i] - 1) : 0;
		if (ret)
			return ret;
		from = keep[i] + 1;
	}
	return close_from_to(from, ~0u);
}

/*
 * A mapping of a KVM object (a vCPU's run structure) would keep the VM
 * alive in the helper after the handoff.
 */
static int check_no_kvm_mapping(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	int ret = 0;

	if (!f)
		return cpr_err(-errno, "helper: reading /proc/self/maps");
	while (!ret && fgets(line, sizeof(line), f)) {
		if (strstr(line, "anon_inode:kvm") || strstr(line, "anon_inode:[kvm"))
			ret = cpr_err(-EBUSY,
				      "helper: it maps a KVM object (%.*s): start it before any VM is created",
				      (int)strcspn(line, "\n"), line);
	}
	fclose(f);
	return ret;
}

static void __noreturn helper_main(struct server *s)
{
	unsigned int i;
	int ret;

	cpr_log_set_quiet(true);
	ret = close_other_fds(s);
	if (!ret)
		ret = check_no_kvm_mapping();
	if (reply(s, HT_HELLO, 0, ret, 0, NULL, 0) || ret)
		_exit(1);
	for (;;) {
		bool trunc, more;
		ssize_t n;

		n = recv_msg(s->sock, s->in.buf, sizeof(s->in.buf), s->fds,
			     &s->nr_fds, &trunc, 0);
		if (n == -EINTR)
			continue;
		if (n <= 0)
			break;		/* EOF: every client is gone */
		if (trunc && (size_t)n >= sizeof(s->in.req)) {
			cpr_err(-EMSGSIZE, "request larger than %zu bytes or %d fds",
				sizeof(s->in.buf), HELPER_FDS_MAX);
			s->counts[CPR_HELPER_REQ_REFUSED]++;
			more = !reply(s, s->in.req.type, s->in.req.seq,
				      -EMSGSIZE, REP_REFUSED, NULL, 0);
		} else {
			more = !trunc && serve_one(s, n);
		}
		close_fds(s->fds, s->nr_fds);
		if (!more)
			break;
	}
	/* The device fds first: a client seeing EOF knows they are closed. */
	for (i = 0; i < s->nr_devs; i++) {
		int *fds[] = { &s->devs[i].device_fd, &s->devs[i].group_fd,
			       &s->devs[i].container_fd, &s->devs[i].iommufd };
		unsigned int k;

		for (k = 0; k < ARRAY_SIZE(fds); k++)
			if (*fds[k] >= 0)
				close(*fds[k]);
	}
	close(s->sock);
	_exit(0);
}

/* ---- The client ---- */

static __u64 deadline_of(const struct cpr_helper *h)
{
	return cpr_now_ns() + (__u64)h->timeout_ms * 1000000;
}

/* 1 when @fd is ready for @events, 0 past @deadline, -errno. */
static int wait_ready(int fd, short events, __u64 deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		__u64 now = cpr_now_ns();
		int n;

		if (now >= deadline)
			return 0;
		n = poll(&p, 1, (deadline - now + 999999) / 1000000);
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/*
 * Reap the helper if it is our child and has ended: 1 if it was (now or
 * before), 0 if it runs, -ECHILD if it is not our child.
 */
static int reap_nohang(struct cpr_helper *h)
{
	int status;
	pid_t got;

	if (h->reaped)
		return 1;
	got = waitpid(h->pid, &status, WNOHANG);
	if (got < 0)
		return errno == EINTR ? 0 : -ECHILD;
	if (got != h->pid)
		return 0;
	h->reaped = true;
	h->exit_status = status;
	return 1;
}

static const char *exit_text(const struct cpr_helper *h, char *buf,
			     size_t size)
{
	if (!h->reaped)
		snprintf(buf, size, "%s", "");
	else if (WIFSIGNALED(h->exit_status))
		snprintf(buf, size, ": killed by signal %d (%s)",
			 WTERMSIG(h->exit_status),
			 strsignal(WTERMSIG(h->exit_status)));
	else
		snprintf(buf, size, ": exited with status %d",
			 WEXITSTATUS(h->exit_status));
	return buf;
}

static int helper_gone(struct cpr_helper *h, const char *what)
{
	unsigned int i;
	char how[96];

	/* A dying child closes its fds a little before it can be reaped. */
	for (i = 0; i < 100 && !reap_nohang(h); i++)
		usleep(2000);
	return cpr_err(-ECONNRESET, "vfio helper (pid %d) is gone: %s%s",
		       h->pid, what, exit_text(h, how, sizeof(how)));
}

/*
 * The reply to request @seq (stale ones dropped): its status, payload into
 * @out (@out_size bytes at most), its message reported.
 */
static int recv_reply(struct cpr_helper *h, __u32 seq, __u64 deadline,
		      const char *what, void *out, size_t out_size,
		      size_t *out_len)
{
	union {
		struct helper_rep rep;
		char buf[REP_BUF_SIZE];
	} *in;
	int fds[HELPER_FDS_MAX], ret;
	unsigned int nr_fds;
	bool trunc;
	ssize_t n;

	in = malloc(sizeof(*in));
	if (!in)
		return cpr_err(-ENOMEM, "vfio helper (pid %d): %s", h->pid, what);
	for (;;) {
		const struct helper_rep *rep = &in->rep;

		ret = wait_ready(h->sock, POLLIN, deadline);
		if (ret <= 0) {
			ret = ret ? cpr_err(ret, "vfio helper (pid %d): %s: waiting for the answer",
					    h->pid, what) :
			      cpr_err(-ETIMEDOUT,
				      "vfio helper (pid %d): %s: no answer within %d ms",
				      h->pid, what, h->timeout_ms);
			break;
		}
		n = recv_msg(h->sock, in->buf, sizeof(in->buf), fds, &nr_fds,
			     &trunc, MSG_DONTWAIT);
		close_fds(fds, nr_fds);
		if (n == -EAGAIN || n == -EINTR)
			continue;
		if (n == 0 || n == -ECONNRESET) {
			ret = helper_gone(h, what);
			break;
		}
		if (n < 0) {
			ret = cpr_err(n, "vfio helper (pid %d): %s: receiving the answer",
				      h->pid, what);
			break;
		}
		if (trunc || (size_t)n < sizeof(*rep) ||
		    rep->magic != HELPER_MAGIC ||
		    rep->version != HELPER_VERSION ||
		    (size_t)n != sizeof(*rep) + rep->len + rep->msg_len ||
		    rep->msg_len >= CPR_ERRMSG_MAX) {
			ret = cpr_err(-EBADMSG,
				      "vfio helper (pid %d): %s: malformed answer of %zd bytes",
				      h->pid, what, n);
			break;
		}
		if (rep->seq != seq)
			continue;	/* a late answer to an abandoned request */
		if (rep->flags & REP_REFUSED)
			h->counts[CPR_HELPER_REQ_REFUSED]++;
		else if (h->asking >= 0)
			h->counts[h->asking]++;
		ret = rep->status;
		if (ret > 0 || ret < -4095)
			ret = -EPROTO;
		if (ret) {
			ret = cpr_err(ret, "vfio helper (pid %d): %.*s", h->pid,
				      (int)rep->msg_len,
				      in->buf + sizeof(*rep) + rep->len);
		} else if (rep->len > out_size) {
			ret = cpr_err(-EMSGSIZE,
				      "vfio helper (pid %d): %s: %u bytes of answer, room for %zu",
				      h->pid, what, rep->len, out_size);
		} else {
			if (rep->len)
				memcpy(out, in->buf + sizeof(*rep), rep->len);
			if (out_len)
				*out_len = rep->len;
		}
		break;
	}
	free(in);
	return ret;
}

/* Send @rq with @payload and @fds by @deadline: 0 or -errno, unreported. */
static int send_req(struct cpr_helper *h, struct helper_req *rq,
		    const void *payload, const int *fds, unsigned int nr_fds,
		    __u64 deadline)
{
	char *buf;
	ssize_t n;
	int ret;

	if (rq->len > CPR_HELPER_PAYLOAD_MAX)
		return -EMSGSIZE;
	buf = malloc(sizeof(*rq) + rq->len);
	if (!buf)
		return -ENOMEM;
	rq->magic = HELPER_MAGIC;
	rq->version = HELPER_VERSION;
	if (!++h->seq)
		h->seq++;	/* 0 is the HELLO's */
	rq->seq = h->seq;
	rq->nr_fds = nr_fds;
	memcpy(buf, rq, sizeof(*rq));
	if (rq->len)
		memcpy(buf + sizeof(*rq), payload, rq->len);

	ret = wait_ready(h->sock, POLLOUT, deadline);
	if (ret > 0) {
		n = send_msg(h->sock, buf, sizeof(*rq) + rq->len, fds, nr_fds,
			     MSG_DONTWAIT);
		ret = n < 0 ? (int)n : 0;
	} else if (!ret) {
		ret = -ETIMEDOUT;
	}
	free(buf);
	return ret;
}

static bool is_hangup(int err)
{
	return err == -EPIPE || err == -ECONNRESET || err == -ENOTCONN;
}

/*
 * Send @rq (a request of @kind for the counters, or -1) with @payload and
 * @fds; the answer's status, its payload into @out.
 */
static int request(struct cpr_helper *h, int kind, struct helper_req *rq,
		   const void *payload, const int *fds, unsigned int nr_fds,
		   const char *what, void *out, size_t out_size,
		   size_t *out_len)
{
	__u64 deadline = deadline_of(h);
	int ret = send_req(h, rq, payload, fds, nr_fds, deadline);

	if (is_hangup(ret))
		return helper_gone(h, what);
	if (ret == -ETIMEDOUT)
		return cpr_err(ret, "vfio helper (pid %d): %s: could not send within %d ms",
			       h->pid, what, h->timeout_ms);
	if (ret)
		return cpr_err(ret, "vfio helper (pid %d): %s: sending it",
			       h->pid, what);
	h->asking = kind;
	ret = recv_reply(h, rq->seq, deadline, what, out, out_size, out_len);
	h->asking = -1;
	return ret;
}

static int dev_name(struct helper_req *rq, const char *dev, const char *what)
{
	size_t len = dev ? strnlen(dev, CPR_VFIO_NAME_MAX) : 0;

	if (len >= CPR_VFIO_NAME_MAX)
		return cpr_err(-ENAMETOOLONG, "vfio helper: %s: device name too long",
			       what);
	if (len)
		memcpy(rq->dev, dev, len);
	rq->dev[len] = '\0';
	return 0;
}

int cpr_helper_set_irqs(struct cpr_helper *h, const char *dev, __u32 flags,
			unsigned int index, unsigned int start,
			unsigned int count, const void *data)
{
	const bool eventfds = flags & VFIO_IRQ_SET_DATA_EVENTFD;
	const char *why = NULL;
	unsigned int done = 0;
	char what[128];
	int kind, ret;

	if (!h || !dev)
		return cpr_err(-EINVAL, "vfio helper: SET_IRQS without a helper or device");
	if ((flags & (VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_DATA_EVENTFD)) &&
	    count && !data)
		return cpr_err(-EINVAL, "vfio helper: %s: %s without data", dev,
			       data_name(flags));
	snprintf(what, sizeof(what), "%s: SET_IRQS %s %s|%s start %u count %u",
		 dev, cpr_vfio_irq_name(index), action_name(flags),
		 data_name(flags), start, count);
	kind = classify(flags, index, count, &why);
	/* Eventfds in messages of at most HELPER_FDS_MAX fds each. */
	do {
		unsigned int n = count - done;
		struct helper_req rq = {
			.type = HT_SET_IRQS,
			.flags = flags,
			.index = index,
			.start = start + done,
		};
		int fds[HELPER_FDS_MAX];
		unsigned int nr_fds = 0, i;
		const void *payload = NULL;

		ret = dev_name(&rq, dev, what);
		if (ret)
			return ret;
		if (eventfds) {
			const int *all = data;

			if (n > HELPER_FDS_MAX)
				n = HELPER_FDS_MAX;
			for (i = 0; i < n; i++)
				if (all[done + i] >= 0)
					fds[nr_fds++] = all[done + i];
			payload = all + done;
			rq.len = n * sizeof(__s32);
		} else if (flags & VFIO_IRQ_SET_DATA_BOOL) {
			payload = data;
			rq.len = count;
		}
		rq.count = n;
		ret = request(h, kind, &rq, payload, fds, nr_fds, what, NULL,
			      0, NULL);
		done += n;
	} while (!ret && done < count);
	return ret;
}

int cpr_helper_trigger(struct cpr_helper *h, const char *dev,
		       unsigned int index, unsigned int start)
{
	return cpr_helper_set_irqs(h, dev, VFIO_IRQ_SET_DATA_NONE |
				   VFIO_IRQ_SET_ACTION_TRIGGER, index, start, 1,
				   NULL);
}

int cpr_helper_unmask(struct cpr_helper *h, const char *dev,
		      unsigned int index, unsigned int start)
{
	return cpr_helper_set_irqs(h, dev, VFIO_IRQ_SET_DATA_NONE |
				   VFIO_IRQ_SET_ACTION_UNMASK, index, start, 1,
				   NULL);
}

int cpr_helper_msix_eventfds(struct cpr_helper *h, const char *dev,
			     unsigned int start, unsigned int count,
			     const int *fds)
{
	return cpr_helper_set_irqs(h, dev, VFIO_IRQ_SET_DATA_EVENTFD |
				   VFIO_IRQ_SET_ACTION_TRIGGER,
				   VFIO_PCI_MSIX_IRQ_INDEX, start, count, fds);
}

int cpr_helper_disable(struct cpr_helper *h, const char *dev,
		       unsigned int index)
{
	struct helper_req rq = { .type = HT_DISABLE, .index = index };
	char what[96];
	int ret;

	if (!h || !dev)
		return cpr_err(-EINVAL, "vfio helper: DISABLE without a helper or device");
	snprintf(what, sizeof(what), "%s: disable %s", dev,
		 cpr_vfio_irq_name(index));
	ret = dev_name(&rq, dev, what);
	if (ret)
		return ret;
	return request(h, CPR_HELPER_REQ_DISABLE, &rq, NULL, NULL, 0, what,
		       NULL, 0, NULL);
}

int cpr_helper_call(struct cpr_helper *h, __u32 op, const char *dev,
		    const void *in, size_t in_len, const int *fds,
		    unsigned int nr_fds, void *out, size_t out_size,
		    size_t *out_len)
{
	struct helper_req rq = { .type = HT_OP, .op = op };
	char what[96];
	int ret;

	if (!h)
		return cpr_err(-EINVAL, "vfio helper: extra operation %u without a helper",
			       op);
	snprintf(what, sizeof(what), "extra operation %u%s%s", op,
		 dev ? " on " : "", dev ? dev : "");
	if (in_len > CPR_HELPER_PAYLOAD_MAX || nr_fds > CPR_HELPER_OP_FDS_MAX)
		return cpr_err(-EMSGSIZE,
			       "vfio helper (pid %d): %s: %zu bytes and %u fds, at most %d and %d",
			       h->pid, what, in_len, nr_fds,
			       CPR_HELPER_PAYLOAD_MAX, CPR_HELPER_OP_FDS_MAX);
	ret = dev_name(&rq, dev, what);
	if (ret)
		return ret;
	rq.len = in_len;
	if (out_len)
		*out_len = 0;
	return request(h, CPR_HELPER_REQ_OP, &rq, in, fds, nr_fds, what, out,
		       out_size, out_len);
}

int cpr_helper_stats(struct cpr_helper *h,
		     unsigned int counts[CPR_HELPER_REQ_MAX])
{
	struct helper_req rq = { .type = HT_STATS };
	size_t len = 0;
	int ret;

	if (!h)
		return cpr_err(-EINVAL, "vfio helper: statistics without a helper");
	ret = request(h, -1, &rq, NULL, NULL, 0, "statistics", counts,
		      sizeof(unsigned int) * CPR_HELPER_REQ_MAX, &len);
	if (!ret && len != sizeof(unsigned int) * CPR_HELPER_REQ_MAX)
		ret = cpr_err(-EBADMSG, "vfio helper (pid %d): statistics of %zu bytes",
			      h->pid, len);
	return ret;
}

unsigned int cpr_helper_count(const struct cpr_helper *h,
			      enum cpr_helper_req kind)
{
	return h && (unsigned int)kind < CPR_HELPER_REQ_MAX ? h->counts[kind] : 0;
}

pid_t cpr_helper_pid(const struct cpr_helper *h)
{
	return h ? h->pid : -1;
}

void cpr_helper_set_timeout(struct cpr_helper *h, int timeout_ms)
{
	if (h)
		h->timeout_ms = timeout_ms > 0 ? timeout_ms : CPR_HELPER_TIMEOUT_MS;
}

void cpr_helper_free(struct cpr_helper *h)
{
	free(h);
}

/* Wait for our child to end, up to @deadline; kill it then. */
static int reap_until(struct cpr_helper *h, __u64 deadline)
{
	int ret;

	while (!(ret = reap_nohang(h))) {
		if (cpr_now_ns() >= deadline) {
			kill(h->pid, SIGKILL);
			if (waitpid(h->pid, &h->exit_status, 0) == h->pid)
				h->reaped = true;
			return -ETIMEDOUT;
		}
		usleep(1000);
	}
	return ret < 0 ? ret : 0;	/* -ECHILD: not ours to reap */
}

int cpr_helper_quit(struct cpr_helper *h)
{
	struct helper_req rq = { .type = HT_QUIT };
	__u64 deadline;
	char how[96];
	int ret, fds[HELPER_FDS_MAX];
	bool gone, trunc;
	unsigned int nr;
	char buf[64];

	if (!h)
		return 0;
	deadline = deadline_of(h);
	ret = send_req(h, &rq, NULL, NULL, 0, deadline);
	gone = is_hangup(ret);
	if (gone)
		ret = 0;	/* judged below, by how it ended */
	else if (ret)
		ret = cpr_err(ret, "vfio helper (pid %d): sending QUIT", h->pid);
	/* Drain late answers until EOF: the device fds are closed then. */
	while (!ret && !gone) {
		int ready = wait_ready(h->sock, POLLIN, deadline);
		ssize_t n;

		if (ready <= 0) {
			ret = ready ? cpr_err(ready, "vfio helper (pid %d): waiting for its end",
					      h->pid) :
			      cpr_err(-ETIMEDOUT, "vfio helper (pid %d) did not end within %d ms of QUIT",
				      h->pid, h->timeout_ms);
			break;
		}
		n = recv_msg(h->sock, buf, sizeof(buf), fds, &nr, &trunc,
			     MSG_DONTWAIT);
		close_fds(fds, nr);
		if (n == 0 || n == -ECONNRESET)
			break;
		/* A late answer, dropped. */
		if (n < 0 && n != -EAGAIN && n != -EINTR)
			ret = cpr_err(n, "vfio helper (pid %d): waiting for its end",
				      h->pid);
	}
	if (h->st && cpr_state_find_fd(h->st, CPR_HELPER_FD_NAME, 0) == h->sock) {
		cpr_state_delete_fd(h->st, CPR_HELPER_FD_NAME, 0);
		cpr_state_delete_section(h->st, CPR_HELPER_SEC_PID);
	}
	close(h->sock);

	/* Our child: reap it, and judge by how it ended. */
	if (reap_until(h, deadline) == -ETIMEDOUT && !ret)
		ret = cpr_err(-ETIMEDOUT, "vfio helper (pid %d) did not exit within %d ms: killed",
			      h->pid, h->timeout_ms);
	/* Gone already: fine if it had ended as asked (by another). */
	if (gone && !(h->reaped && WIFEXITED(h->exit_status) &&
		      !WEXITSTATUS(h->exit_status)))
		ret = cpr_err(-ECONNRESET, "vfio helper (pid %d) was gone before QUIT%s",
			      h->pid, exit_text(h, how, sizeof(how)));
	free(h);
	return ret;
}

static struct cpr_helper *helper_new(struct cpr_state *st, int sock, pid_t pid)
{
	struct cpr_helper *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->sock = sock;
	h->pid = pid;
	h->st = st;
	h->timeout_ms = CPR_HELPER_TIMEOUT_MS;
	h->asking = -1;
	return h;
}

static int check_args(struct cpr_state *st, struct cpr_vfio_dev *const *devs,
		      unsigned int nr_devs, const struct cpr_helper_op *ops,
		      unsigned int nr_ops, struct cpr_helper **out)
{
	unsigned int i, j;

	if (!st || !out || (nr_devs && !devs) || (nr_ops && !ops))
		return cpr_err(-EINVAL, "vfio helper: no state, devices, operations or result");
	if (nr_devs > CPR_HELPER_DEVS_MAX || nr_ops > CPR_HELPER_OPS_MAX)
		return cpr_err(-E2BIG,
			       "vfio helper: %u devices and %u operations, at most %d and %d",
			       nr_devs, nr_ops, CPR_HELPER_DEVS_MAX,
			       CPR_HELPER_OPS_MAX);
	for (i = 0; i < nr_devs; i++)
		if (!devs[i])
			return cpr_err(-EINVAL, "vfio helper: device %u is NULL", i);
	for (i = 0; i < nr_ops; i++) {
		if (!ops[i].id || !ops[i].fn || !ops[i].name)
			return cpr_err(-EINVAL,
				       "vfio helper: operation %u has no id, name or function",
				       i);
		for (j = 0; j < i; j++)
			if (ops[j].id == ops[i].id)
				return cpr_err(-EINVAL,
					       "vfio helper: operations %s and %s share id %u",
					       ops[j].name, ops[i].name, ops[i].id);
	}
	if (cpr_state_find_fd(st, CPR_HELPER_FD_NAME, 0) >= 0)
		return cpr_err(-EEXIST, "vfio helper: the CPR state already names one ('%s')",
			       CPR_HELPER_FD_NAME);
	if (cpr_lockdown_active())
		return cpr_err(-EPERM,
			       "vfio helper: this process runs under the lockdown, which the helper would inherit: start it first");
	return 0;
}

int cpr_helper_start(struct cpr_state *st, struct cpr_vfio_dev *const *devs,
		     unsigned int nr_devs, const struct cpr_helper_op *ops,
		     unsigned int nr_ops, struct cpr_helper **out)
{
	struct cpr_helper *h;
	struct server *s;
	int sv[2], ret;
	unsigned int i;
	pid_t pid;

	ret = check_args(st, devs, nr_devs, ops, nr_ops, out);
	if (ret)
		return ret;
	s = calloc(1, sizeof(*s));
	if (!s)
		return cpr_err(-ENOMEM, "vfio helper: allocating");
	for (i = 0; i < nr_devs; i++) {
		snprintf(s->devs[i].name, sizeof(s->devs[i].name), "%s",
			 devs[i]->name);
		s->devs[i].container_fd = devs[i]->container_fd;
		s->devs[i].group_fd = devs[i]->group_fd;
		s->devs[i].device_fd = devs[i]->device_fd;
		s->devs[i].iommufd = devs[i]->iommufd;
	}
	s->nr_devs = nr_devs;
	if (nr_ops)
		memcpy(s->ops, ops, nr_ops * sizeof(*ops));
	s->nr_ops = nr_ops;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		ret = cpr_err(-errno, "vfio helper: socketpair");
		free(s);
		return ret;
	}
	fflush(NULL);
	pid = fork();
	if (!pid) {
		close(sv[0]);
		s->sock = sv[1];
		helper_main(s);
	}
	ret = pid < 0 ? cpr_err(-errno, "vfio helper: fork") : 0;
	close(sv[1]);
	free(s);
	h = ret ? NULL : helper_new(st, sv[0], pid);
	if (!ret && !h)
		ret = cpr_err(-ENOMEM, "vfio helper: allocating");
	if (!ret)
		ret = recv_reply(h, 0, deadline_of(h), "starting", NULL, 0, NULL);
	if (!ret)
		ret = cpr_state_save_fd(st, CPR_HELPER_FD_NAME, 0, sv[0]);
	if (!ret) {
		ret = cpr_state_set_u64(st, CPR_HELPER_SEC_PID, pid);
		if (ret)
			cpr_state_delete_fd(st, CPR_HELPER_FD_NAME, 0);
	}
	if (ret) {
		close(sv[0]);
		if (pid > 0 && !(h && h->reaped)) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		free(h);
		return ret;
	}
	*out = h;
	return 0;
}

int cpr_helper_attach(struct cpr_state *st, struct cpr_helper **out)
{
	struct cpr_helper *h;
	__u64 pid;
	int fd, kind;

	if (!st || !out)
		return cpr_err(-EINVAL, "vfio helper: attach without a state or result");
	fd = cpr_state_find_fd(st, CPR_HELPER_FD_NAME, 0);
	if (fd < 0)
		return cpr_err(-ENOENT, "vfio helper: the CPR state names none ('%s')",
			       CPR_HELPER_FD_NAME);
	kind = cpr_fd_kind_of(fd);
	if (kind != CPR_FD_SOCKET)
		return cpr_err(kind == -EBADF ? -EBADF : -EBADFD,
			       "vfio helper: '%s' fd %d is %s, not a socket",
			       CPR_HELPER_FD_NAME, fd,
			       kind < 0 ? "not open" : cpr_fd_kind_name(kind));
	if (cpr_state_get_u64(st, CPR_HELPER_SEC_PID, &pid) || !pid ||
	    pid > INT_MAX)
		return cpr_err(-EBADMSG,
			       "vfio helper: the CPR state has its socket but no valid '%s' section",
			       CPR_HELPER_SEC_PID);
	h = helper_new(st, fd, (pid_t)pid);
	if (!h)
		return cpr_err(-ENOMEM, "vfio helper: allocating");
	*out = h;
	return 0;
}
