// SPDX-License-Identifier: GPL-2.0-only
/*
 * The device helper (see vfio_helper.h), its client's side: starting the
 * helper (a fork that serves, vfio_helper_server.c) or taking it up after
 * a handoff, asking it, bounding every wait, and ending it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <linux/types.h>
#include <linux/vfio.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vfio_cpr/fd.h"
#include "vfio_cpr/lockdown.h"
#include "vfio_cpr/log.h"
#include "vfio_cpr/state.h"
#include "vfio_cpr/vfio.h"
#include "vfio_cpr/vfio_helper.h"

#include "internal.h"

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
		n = cpr_helper_recv_msg(h->sock, in->buf, sizeof(in->buf), fds,
					&nr_fds, &trunc, MSG_DONTWAIT);
		cpr_helper_close_fds(fds, nr_fds);
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
		n = cpr_helper_send_msg(h->sock, buf, sizeof(*rq) + rq->len,
					fds, nr_fds, MSG_DONTWAIT);
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
			       cpr_helper_data_name(flags));
	snprintf(what, sizeof(what), "%s: SET_IRQS %s %s|%s start %u count %u",
		 dev, cpr_vfio_irq_name(index), cpr_helper_action_name(flags),
		 cpr_helper_data_name(flags), start, count);
	kind = cpr_helper_classify(flags, index, count, &why);
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
		n = cpr_helper_recv_msg(h->sock, buf, sizeof(buf), fds, &nr,
					&trunc, MSG_DONTWAIT);
		cpr_helper_close_fds(fds, nr);
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
	struct cpr_helper_server *s;
	struct cpr_helper *h;
	int sv[2], ret;
	pid_t pid;

	ret = check_args(st, devs, nr_devs, ops, nr_ops, out);
	if (ret)
		return ret;
	s = cpr_helper_server_new(devs, nr_devs, ops, nr_ops);
	if (!s)
		return cpr_err(-ENOMEM, "vfio helper: allocating");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		ret = cpr_err(-errno, "vfio helper: socketpair");
		free(s);
		return ret;
	}
	fflush(NULL);
	pid = fork();
	if (!pid) {
		close(sv[0]);
		cpr_helper_serve(s, sv[1]);
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
