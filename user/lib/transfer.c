// SPDX-License-Identifier: GPL-2.0-only
/*
 * Socket handoff transport: the messages of transfer.h over a UNIX stream
 * socket, the state as its serialised bytes, the fds with SCM_RIGHTS.
 *
 * A message is a 24-byte header (magic "CPRX", type, payload length, fd
 * count, version), the payload, then the fds in batches: one byte each,
 * carrying up to XFER_FDS_PER_MSG descriptors (the kernel caps one message
 * at SCM_MAX_FD = 253).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "vfio_cpr/fd.h"
#include "vfio_cpr/handoff.h"
#include "vfio_cpr/log.h"
#include "vfio_cpr/state.h"
#include "vfio_cpr/transfer.h"

#define XFER_MAGIC		"CPRX"
#define XFER_VERSION		1
#define XFER_FDS_PER_MSG	250
#define XFER_REASON_MAX		1024

struct xfer_hdr {
	char magic[4];
	__u32 type;
	__u64 len;
	__u32 nr_fds;
	__u32 version;
};

static const char * const type_names[CPR_XFER_TYPE_MAX] = {
	[CPR_XFER_STATE]	= "STATE",
	[CPR_XFER_READY]	= "READY",
	[CPR_XFER_DETACHED]	= "DETACHED",
	[CPR_XFER_ATTACHED]	= "ATTACHED",
	[CPR_XFER_ABORT]	= "ABORT",
};

const char *cpr_xfer_type_name(int type)
{
	if (type <= 0 || type >= CPR_XFER_TYPE_MAX)
		return "unknown";
	return type_names[type];
}

/* ---- Connecting ---- */

/*
 * @path, or "@name" for Linux's abstract namespace (no file, no file
 * permissions: SO_PEERCRED is then the only gate).  Returns the address
 * length, or -errno.
 */
static int sock_addr(const char *path, struct sockaddr_un *sa)
{
	size_t len = path ? strlen(path) : 0;

	if (!len || len >= sizeof(sa->sun_path) || (path[0] == '@' && len < 2))
		return cpr_err(-ENAMETOOLONG, "socket path '%s': empty or longer than %zu bytes",
			       path ? path : "(null)", sizeof(sa->sun_path) - 1);
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, len);
	if (path[0] == '@')
		sa->sun_path[0] = '\0';
	return offsetof(struct sockaddr_un, sun_path) + len +
	       (path[0] == '@' ? 0 : 1);
}

int cpr_xfer_listen(const char *path, int *lfd)
{
	struct sockaddr_un sa;
	struct stat sb;
	int fd, ret, alen;

	alen = sock_addr(path, &sa);
	if (alen < 0)
		return alen;
	if (path[0] != '@' && !lstat(path, &sb)) {
		if (!S_ISSOCK(sb.st_mode))
			return cpr_err(-EEXIST, "listen on %s: it exists and is not a socket",
				       path);
		if (unlink(path))
			return cpr_err(-errno, "listen on %s: removing the old socket", path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return cpr_err(-errno, "listen on %s: socket", path);
	if (bind(fd, (struct sockaddr *)&sa, alen) || listen(fd, 1)) {
		ret = cpr_err(-errno, "listen on %s: bind/listen", path);
		close(fd);
		return ret;
	}
	*lfd = fd;
	return 0;
}

int cpr_xfer_check_peer(int sock)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return cpr_err(-errno, "SO_PEERCRED on socket %d", sock);
	if (cred.uid != getuid() && cred.uid != 0)
		return cpr_err(-EACCES,
			       "successor pid %d runs as uid %u: only uid %u or root may take over",
			       cred.pid, cred.uid, getuid());
	return 0;
}

/* Wait for @events on @fd until @deadline_ns (0: no limit). */
static int wait_fd(int fd, short events, __u64 deadline_ns, const char *what)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int ms = -1, n;

		if (deadline_ns) {
			__u64 now = cpr_now_ns();

			if (now >= deadline_ns)
				return cpr_err(-ETIMEDOUT, "%s: timed out", what);
			ms = (deadline_ns - now + 999999) / 1000000;
		}
		n = poll(&p, 1, ms);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return cpr_err(-errno, "%s: poll", what);
	}
}

static __u64 deadline(int timeout_ms)
{
	return timeout_ms < 0 ? 0 : cpr_now_ns() + (__u64)timeout_ms * 1000000;
}

int cpr_xfer_accept(int lfd, int timeout_ms, int *sock)
{
	int fd, ret;

	ret = wait_fd(lfd, POLLIN, deadline(timeout_ms), "waiting for a successor");
	if (ret)
		return ret;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return cpr_err(-errno, "accepting the successor on socket %d", lfd);
	/* A successor that stops reading must not block us for good. */
	if (timeout_ms > 0) {
		struct timeval tv = {
			.tv_sec = timeout_ms / 1000,
			.tv_usec = (timeout_ms % 1000) * 1000,
		};

		if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv))) {
			ret = cpr_err(-errno, "SO_SNDTIMEO on the successor's socket");
			close(fd);
			return ret;
		}
	}
	ret = cpr_xfer_check_peer(fd);
	if (ret) {
		close(fd);
		return ret;
	}
	*sock = fd;
	return 0;
}

int cpr_xfer_connect(const char *path, int timeout_ms, int *sock)
{
	__u64 end = deadline(timeout_ms);
	struct sockaddr_un sa;
	int fd, ret, alen;

	alen = sock_addr(path, &sa);
	if (alen < 0)
		return alen;
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return cpr_err(-errno, "connect to %s: socket", path);
		if (!connect(fd, (struct sockaddr *)&sa, alen))
			break;
		ret = -errno;
		close(fd);
		if ((ret != -ENOENT && ret != -ECONNREFUSED) ||
		    (end && cpr_now_ns() >= end))
			return cpr_err(ret, "connecting to the predecessor at %s", path);
		usleep(1000);
	}
	ret = cpr_xfer_check_peer(fd);
	if (ret) {
		close(fd);
		return ret;
	}
	*sock = fd;
	return 0;
}

/* ---- Bytes and fds ---- */

static int send_all(int sock, const void *buf, size_t len, const char *what)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(sock, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return cpr_err(n < 0 ? -errno : -EIO, "sending %s on socket %d",
				       what, sock);
		p += n;
		len -= n;
	}
	return 0;
}

static int recv_all(int sock, void *buf, size_t len, __u64 end,
		    const char *what)
{
	char *p = buf;

	while (len) {
		ssize_t n;
		int ret = wait_fd(sock, POLLIN, end, what);

		if (ret)
			return ret;
		n = recv(sock, p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (!n)
			return cpr_err(-ECONNRESET, "%s: the peer closed the connection",
				       what);
		if (n < 0)
			return cpr_err(-errno, "%s: recv on socket %d", what, sock);
		p += n;
		len -= n;
	}
	return 0;
}

static int send_fds(int sock, const int *fds, unsigned int nr)
{
	union {
		char buf[CMSG_SPACE(XFER_FDS_PER_MSG * sizeof(int))];
		struct cmsghdr align;
	} u;
	unsigned int done = 0;

	/* CMSG_SPACE pads an odd number of fds: nothing unset goes out. */
	memset(&u, 0, sizeof(u));
	while (done < nr) {
		unsigned int n = nr - done < XFER_FDS_PER_MSG ? nr - done :
				 XFER_FDS_PER_MSG;
		char byte = 'F';
		struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
		struct msghdr msg = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = u.buf,
			.msg_controllen = CMSG_SPACE(n * sizeof(int)),
		};
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		ssize_t sent;

		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(n * sizeof(int));
		memcpy(CMSG_DATA(c), fds + done, n * sizeof(int));
		do {
			sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
		} while (sent < 0 && errno == EINTR);
		if (sent != 1)
			return cpr_err(sent < 0 ? -errno : -EIO,
				       "sending fds %u..%u of %u with SCM_RIGHTS on socket %d",
				       done, done + n - 1, nr, sock);
		done += n;
	}
	return 0;
}

static void close_fds(int *fds, unsigned int nr)
{
	while (nr--)
		close(fds[nr]);
}

static int recv_fds(int sock, int *fds, unsigned int nr, __u64 end)
{
	union {
		char buf[CMSG_SPACE(XFER_FDS_PER_MSG * sizeof(int))];
		struct cmsghdr align;
	} u;
	unsigned int got = 0;
	int ret;

	while (got < nr) {
		unsigned int want = nr - got < XFER_FDS_PER_MSG ? nr - got :
				    XFER_FDS_PER_MSG, n = 0;
		char byte;
		struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
		struct msghdr msg = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = u.buf,
			.msg_controllen = sizeof(u.buf),
		};
		struct cmsghdr *c;
		ssize_t r;

		ret = wait_fd(sock, POLLIN, end, "receiving fds");
		if (ret)
			goto fail;
		r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ret = cpr_err(r ? -errno : -ECONNRESET,
				      "receiving fds %u.. of %u: %s", got, nr,
				      r ? "recvmsg" : "the peer closed the connection");
			goto fail;
		}
		for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			unsigned int k, cnt;

			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (k = 0; k < cnt; k++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof(fd));
				if (got + n < nr)
					fds[got + n] = fd;
				else
					close(fd);
				n++;
			}
		}
		if (msg.msg_flags & MSG_CTRUNC || n != want) {
			got += n < want ? n : want;
			ret = cpr_err(-EBADMSG,
				      "receiving fds: a batch brought %u fds, want %u%s",
				      n, want, msg.msg_flags & MSG_CTRUNC ?
				      " (truncated: RLIMIT_NOFILE?)" : "");
			goto fail;
		}
		got += n;
	}
	return 0;
fail:
	close_fds(fds, got);
	return ret;
}

static int send_msg(int sock, int type, const void *payload, size_t len,
		    const int *fds, unsigned int nr_fds)
{
	struct xfer_hdr h = {
		.type = type,
		.len = len,
		.nr_fds = nr_fds,
		.version = XFER_VERSION,
	};
	char what[48];
	int ret;

	memcpy(h.magic, XFER_MAGIC, sizeof(h.magic));
	snprintf(what, sizeof(what), "%s", cpr_xfer_type_name(type));
	ret = send_all(sock, &h, sizeof(h), what);
	if (!ret && len)
		ret = send_all(sock, payload, len, what);
	if (!ret && nr_fds)
		ret = send_fds(sock, fds, nr_fds);
	return ret;
}

int cpr_xfer_send(int sock, int type, const char *reason)
{
	if (type != CPR_XFER_READY && type != CPR_XFER_ATTACHED &&
	    type != CPR_XFER_ABORT)
		return cpr_err(-EINVAL, "%s: message %s carries a state", __func__,
			       cpr_xfer_type_name(type));
	if (type != CPR_XFER_ABORT || !reason)
		reason = "";
	return send_msg(sock, type, reason, strnlen(reason, XFER_REASON_MAX),
			NULL, 0);
}

int cpr_xfer_send_state(int sock, int type, const struct cpr_state *st)
{
	unsigned int i, nr = 0;
	int *fds = NULL;
	size_t len;
	void *buf;
	int ret;

	if (type != CPR_XFER_STATE && type != CPR_XFER_DETACHED)
		return cpr_err(-EINVAL, "%s: message %s", __func__,
			       cpr_xfer_type_name(type));
	ret = cpr_state_to_buf(st, &buf, &len);
	if (ret)
		return ret;
	if (type == CPR_XFER_STATE) {
		nr = cpr_state_nr_fds(st);
		fds = calloc(nr ? nr : 1, sizeof(*fds));
		if (!fds) {
			free(buf);
			return cpr_err(-ENOMEM, "%u fds to send", nr);
		}
		for (i = 0; i < nr; i++)
			fds[i] = cpr_state_fd_at(st, i)->fd;
	}
	ret = send_msg(sock, type, buf, len, fds, nr);
	free(fds);
	free(buf);
	return ret;
}

/* ---- Receiving ---- */

static int merge_sections(struct cpr_state *st, const struct cpr_state *in)
{
	unsigned int i;
	int ret = 0;

	for (i = 0; !ret && i < cpr_state_nr_sections(in); i++) {
		const char *name;
		const void *data;
		size_t len;

		ret = cpr_state_section_at(in, i, &name, &data, &len);
		if (!ret)
			ret = cpr_state_set_section(st, name, data, len);
	}
	return ret;
}

/* The parsed store @in, on the received @fds (same order), kinds checked. */
static int rebuild(const struct cpr_state *in, const int *fds, unsigned int nr,
		   struct cpr_state **out)
{
	struct cpr_state *st = cpr_state_new();
	unsigned int i;
	int ret = 0;

	if (!st)
		return cpr_err(-ENOMEM, "the received state's store");
	for (i = 0; !ret && i < nr; i++) {
		const struct cpr_fd_rec *r = cpr_state_fd_at(in, i);
		int kind = cpr_fd_kind_of(fds[i]);

		if (kind != r->kind)
			ret = cpr_err(-EBADFD,
				      "received fd for '%s'[%u] is %s, the predecessor recorded %s",
				      r->name, r->index,
				      kind < 0 ? "not open" : cpr_fd_kind_name(kind),
				      cpr_fd_kind_name(r->kind));
		else
			ret = cpr_state_save_fd(st, r->name, r->index, fds[i]);
	}
	if (!ret)
		ret = merge_sections(st, in);
	if (ret) {
		cpr_state_free(st);
		return ret;
	}
	*out = st;
	return 0;
}

int cpr_xfer_recv(int sock, int timeout_ms, struct cpr_state **st)
{
	__u64 end = deadline(timeout_ms);
	enum cpr_state_error why;
	struct cpr_state *parsed = NULL;
	struct xfer_hdr h;
	int *fds = NULL;
	char *buf = NULL;
	int ret;

	ret = recv_all(sock, &h, sizeof(h), end, "receiving a message header");
	if (ret)
		return ret;
	if (memcmp(h.magic, XFER_MAGIC, sizeof(h.magic)) || h.version != XFER_VERSION ||
	    h.type <= 0 || h.type >= CPR_XFER_TYPE_MAX || h.len > CPR_STATE_MAX ||
	    (h.type == CPR_XFER_ABORT && h.len > XFER_REASON_MAX) ||
	    (h.type != CPR_XFER_STATE && h.nr_fds) ||
	    h.nr_fds > h.len / 24)
		return cpr_err(-EBADMSG,
			       "malformed message on socket %d (type %u, %llu bytes, %u fds, version %u)",
			       sock, h.type, (unsigned long long)h.len, h.nr_fds,
			       h.version);
	buf = malloc(h.len + 1);
	if (!buf)
		return cpr_err(-ENOMEM, "%llu bytes of %s", (unsigned long long)h.len,
			       cpr_xfer_type_name(h.type));
	ret = recv_all(sock, buf, h.len, end, cpr_xfer_type_name(h.type));
	if (ret)
		goto out;
	buf[h.len] = '\0';

	switch (h.type) {
	case CPR_XFER_ABORT:
		ret = cpr_err(-ECONNABORTED, "the peer aborted the handoff: %s",
			      h.len ? buf : "(no reason)");
		goto out;
	case CPR_XFER_READY:
	case CPR_XFER_ATTACHED:
		if (h.len)
			ret = cpr_err(-EBADMSG, "%s with a %llu-byte payload",
				      cpr_xfer_type_name(h.type),
				      (unsigned long long)h.len);
		goto out;
	}

	if (!st) {
		ret = cpr_err(-EINVAL, "received %s with nowhere to put it",
			      cpr_xfer_type_name(h.type));
		goto out;
	}
	if (h.nr_fds) {
		char what[48];

		/* Before taking any: the kernel would truncate the batch. */
		snprintf(what, sizeof(what), "the state brings %u fds", h.nr_fds);
		ret = cpr_fd_room(h.nr_fds, what);
		if (ret)
			goto out;
		fds = calloc(h.nr_fds, sizeof(*fds));
		if (!fds) {
			ret = cpr_err(-ENOMEM, "%u received fds", h.nr_fds);
			goto out;
		}
		ret = recv_fds(sock, fds, h.nr_fds, end);
		if (ret) {
			free(fds);
			fds = NULL;
			goto out;
		}
	}
	ret = cpr_state_parse(buf, h.len, 0, &parsed, &why);
	if (ret)
		goto out;
	if (h.type == CPR_XFER_DETACHED) {
		ret = *st ? merge_sections(*st, parsed) :
		      cpr_err(-EPROTO, "DETACHED before any STATE");
		goto out;
	}
	if (cpr_state_nr_fds(parsed) != h.nr_fds) {
		ret = cpr_err(-EBADMSG, "STATE names %u fds but %u came with it",
			      cpr_state_nr_fds(parsed), h.nr_fds);
		goto out;
	}
	ret = rebuild(parsed, fds, h.nr_fds, st);
out:
	if (ret && fds)
		close_fds(fds, h.nr_fds);
	free(fds);
	cpr_state_free(parsed);
	free(buf);
	return ret ? ret : (int)h.type;
}

/* ---- The conversation ---- */

/* Put the generation number back as it was before a failed handoff. */
static void restore_generation(struct cpr_state *st, bool had, __u64 gen)
{
	if (had)
		cpr_state_set_u64(st, CPR_SEC_GENERATION, gen);
	else
		cpr_state_delete_section(st, CPR_SEC_GENERATION);
}

static int expect(int sock, int timeout_ms, int want, struct cpr_state **st)
{
	int got = cpr_xfer_recv(sock, timeout_ms, st);

	if (got < 0)
		return got;
	if (got != want)
		return cpr_err(-EPROTO, "handoff: got %s, expected %s",
			       cpr_xfer_type_name(got), cpr_xfer_type_name(want));
	return 0;
}

int cpr_xfer_give(int lfd, struct cpr_state *st, int timeout_ms,
		  const struct cpr_xfer_give_ops *ops, void *arg)
{
	bool detached = false, had_gen;
	int sock = -1, ret;
	char why[CPR_ERRMSG_MAX];
	__u64 gen = 0;

	/* Both STATE and DETACHED carry the successor's generation number. */
	had_gen = !cpr_state_get_u64(st, CPR_SEC_GENERATION, &gen);
	ret = cpr_xfer_accept(lfd, timeout_ms, &sock);
	if (!ret && ops->save)
		ret = ops->save(st, arg);
	if (!ret)
		ret = cpr_state_set_u64(st, CPR_SEC_GENERATION, gen + 1);
	if (!ret) {
		ret = cpr_xfer_send_state(sock, CPR_XFER_STATE, st);
		/* A successor that refused may have closed before we were done. */
		if ((ret == -EPIPE || ret == -ECONNRESET) &&
		    cpr_xfer_recv(sock, 100, NULL) == -ECONNABORTED)
			ret = -ECONNABORTED;
	}
	if (!ret)
		ret = expect(sock, timeout_ms, CPR_XFER_READY, NULL);
	if (!ret) {
		ret = cpr_handoff_mark_start(st);
		if (!ret)
			ret = ops->detach(st, arg);
		detached = !ret;
		if (!ret)
			ret = cpr_xfer_send_state(sock, CPR_XFER_DETACHED, st);
	}
	if (!ret)
		ret = expect(sock, timeout_ms, CPR_XFER_ATTACHED, NULL);
	if (sock >= 0)
		close(sock);
	if (ret)
		restore_generation(st, had_gen, gen);
	if (!ret || !detached)
		return ret;

	/* The successor is gone or failed after we stopped: run on. */
	snprintf(why, sizeof(why), "%s", cpr_last_error());
	if (ops->reattach(st, arg))
		return cpr_err(-EIO, "handoff failed (%s) and re-attaching failed: %s",
			       why, cpr_last_error());
	return cpr_err(ret, "handoff failed, running on: %s", why);
}

int cpr_xfer_take(const char *path, int timeout_ms, struct cpr_state **st,
		  const struct cpr_xfer_take_ops *ops, void *arg)
{
	struct cpr_state *got = NULL;
	int sock, ret;

	ret = cpr_xfer_connect(path, timeout_ms, &sock);
	if (ret)
		return ret;
	ret = expect(sock, timeout_ms, CPR_XFER_STATE, &got);
	if (ret == -EMFILE)
		cpr_xfer_send(sock, CPR_XFER_ABORT, cpr_last_error());
	if (!ret) {
		ret = ops->prepare(got, arg);
		if (ret)
			cpr_xfer_send(sock, CPR_XFER_ABORT, cpr_last_error());
		else
			ret = cpr_xfer_send(sock, CPR_XFER_READY, NULL);
	}
	if (!ret)
		ret = expect(sock, timeout_ms, CPR_XFER_DETACHED, &got);
	if (!ret)
		ret = ops->attach(got, arg);
	if (!ret)
		ret = cpr_xfer_send(sock, CPR_XFER_ATTACHED, NULL);
	close(sock);
	if (got)
		*st = got;
	return ret;
}
