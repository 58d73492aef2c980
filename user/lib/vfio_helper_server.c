// SPDX-License-Identifier: GPL-2.0-only
/*
 * The device helper (see vfio_helper.h), its own side: the process that
 * holds the devices' fds and carries out what its policy allows, and the
 * messages with fds that it and its client exchange (the wire is in
 * internal.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <linux/types.h>
#include <linux/vfio.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vfio_cpr/compiler.h"
#include "vfio_cpr/log.h"
#include "vfio_cpr/vfio.h"
#include "vfio_cpr/vfio_helper.h"

#include "internal.h"

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

/* ---- The policy ---- */

const char *cpr_helper_data_name(__u32 flags)
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

const char *cpr_helper_action_name(__u32 flags)
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
int cpr_helper_classify(__u32 flags, __u32 index, __u32 count,
			const char **why)
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

ssize_t cpr_helper_send_msg(int sock, const void *buf, size_t len,
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

void cpr_helper_close_fds(int *fds, unsigned int nr)
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
ssize_t cpr_helper_recv_msg(int sock, void *buf, size_t size, int *fds,
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
		cpr_helper_close_fds(fds, *nr_fds);
		*nr_fds = 0;
		*trunc = true;
	}
	return n;
}

/* ---- The helper process ---- */

struct cpr_helper_server {
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

static int reply(struct cpr_helper_server *s, __u16 type, __u32 seq,
		 int status, __u32 flags, const void *payload, size_t len)
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
	n = cpr_helper_send_msg(s->sock, s->out.buf, sizeof(*rep) + len + mlen,
				NULL, 0, 0);
	return n < 0 ? (int)n : 0;
}

static const struct cpr_helper_dev *find_dev(const struct cpr_helper_server *s,
					     const char *name)
{
	unsigned int i;

	for (i = 0; i < s->nr_devs; i++)
		if (!strcmp(s->devs[i].name, name))
			return &s->devs[i];
	return NULL;
}

static int no_such_dev(const struct cpr_helper_server *s, const char *name)
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
			      cpr_helper_action_name(rq->flags),
			      cpr_helper_data_name(rq->flags), rq->start,
			      rq->count, d->device_fd);
	free(set);
	return ret;
}

static int serve_set_irqs(struct cpr_helper_server *s,
			  const struct helper_req *rq, const void *payload,
			  bool *refused)
{
	const struct cpr_helper_dev *d = find_dev(s, rq->dev);
	const __s32 *slots = payload;
	const char *why = NULL;
	int kind;
	__u32 i;

	*refused = true;
	if (!d)
		return no_such_dev(s, rq->dev);
	kind = cpr_helper_classify(rq->flags, rq->index, rq->count, &why);
	if (kind < 0)
		return cpr_err(-EPERM,
			       "%s: VFIO_DEVICE_SET_IRQS %s %s|%s start %u count %u refused by the helper's policy: %s",
			       d->name, cpr_vfio_irq_name(rq->index),
			       cpr_helper_action_name(rq->flags),
			       cpr_helper_data_name(rq->flags), rq->start,
			       rq->count, why);
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
			       d->name, cpr_helper_data_name(rq->flags),
			       rq->len, rq->count);
	}
	*refused = false;
	s->counts[kind]++;
	if (kind == CPR_HELPER_REQ_EVENTFDS)
		return do_ioctl_set_irqs(d, rq, s->fds,
					 rq->count * sizeof(__s32));
	return do_ioctl_set_irqs(d, rq, payload, rq->len);
}

static int serve_disable(struct cpr_helper_server *s,
			 const struct helper_req *rq, bool *refused)
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

static int serve_op(struct cpr_helper_server *s, const struct helper_req *rq,
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
static bool serve_one(struct cpr_helper_server *s, ssize_t n)
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
static int close_other_fds(const struct cpr_helper_server *s)
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

struct cpr_helper_server *
cpr_helper_server_new(struct cpr_vfio_dev *const *devs, unsigned int nr_devs,
		      const struct cpr_helper_op *ops, unsigned int nr_ops)
{
	struct cpr_helper_server *s = calloc(1, sizeof(*s));
	unsigned int i;

	if (!s)
		return NULL;
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
	return s;
}

void __noreturn cpr_helper_serve(struct cpr_helper_server *s, int sock)
{
	unsigned int i;
	int ret;

	s->sock = sock;
	cpr_log_set_quiet(true);
	ret = close_other_fds(s);
	if (!ret)
		ret = check_no_kvm_mapping();
	if (reply(s, HT_HELLO, 0, ret, 0, NULL, 0) || ret)
		_exit(1);
	for (;;) {
		bool trunc, more;
		ssize_t n;

		n = cpr_helper_recv_msg(s->sock, s->in.buf, sizeof(s->in.buf),
					s->fds, &s->nr_fds, &trunc, 0);
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
		cpr_helper_close_fds(s->fds, s->nr_fds);
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
