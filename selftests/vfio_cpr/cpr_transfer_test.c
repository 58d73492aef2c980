// SPDX-License-Identifier: GPL-2.0-only
/*
 * The socket handoff (cpr-transfer): a successor started on its own
 * connects to the predecessor over a UNIX socket and gets the state and the
 * fds with SCM_RIGHTS, while the predecessor's VM keeps delivering.
 *
 * The predecessor (the test) holds a VM with VECTORS irqfd vectors and
 * leaves vector 0 pending, not taken, in its LAPIC.  The successor (this
 * binary again, started with fork + exec) prepares a VM, says READY, gets
 * the predecessor's final sections, raises vector 1 "in the blackout",
 * attaches and must see both vectors in its new VM.
 *
 * Then the successor fails at each step in turn - dies after connecting,
 * after the state came, after READY, after DETACHED (having raised vector
 * 1), refuses (ABORT), never answers (timeout), or runs as another uid -
 * and the predecessor must re-attach and lose nothing: vector 0 still
 * pending in its LAPIC, vector 1 (when raised) delivered, a new raise
 * delivered.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "cpr_test_util.h"
#include "vfio_cpr/handoff.h"
#include "vfio_cpr/kvm.h"
#include "vfio_cpr/transfer.h"
#include "vfio_cpr/vectors.h"

#define VECTORS		8
#define DEV		"xfer"
#define TIMEOUT_MS	3000
#define IRR_WAIT_MS	2000

/* How the successor behaves. */
enum succ_mode {
	SUCC_OK,
	SUCC_DIE_CONNECTED,	/* exits right after connecting */
	SUCC_DIE_STATE,		/* exits once the state came */
	SUCC_DIE_READY,		/* exits after sending READY */
	SUCC_DIE_DETACHED,	/* raises vector 1, then exits before attaching */
	SUCC_REFUSE,		/* prepare fails: ABORT */
	SUCC_HANG,		/* never answers after connecting */
	SUCC_OTHER_UID,		/* connects as uid 65534 */
	SUCC_LOW_NOFILE,	/* RLIMIT_NOFILE too low for the fds sent */
};

static const char * const mode_names[] = {
	"ok", "die-connected", "die-state", "die-ready", "die-detached",
	"refuse", "hang", "other-uid", "low-nofile",
};

static unsigned int lapic_vec(const struct cpr_vectors *vs, unsigned int i)
{
	return cpr_msi_msg_vector(&vs->v[i].msg);
}

static int raise_fd(int fd)
{
	__u64 one = 1;

	return write(fd, &one, sizeof(one)) == sizeof(one) ? 0 : -errno;
}

/* ---- The successor ---- */

struct succ {
	enum succ_mode mode;
	struct cpr_vm *vm;
	struct cpr_vectors *vs;
};

static int succ_prepare(struct cpr_state *st, void *arg)
{
	struct succ *s = arg;
	int ret;

	if (s->mode == SUCC_DIE_STATE)
		_exit(0);
	(void)st;
	if (s->mode == SUCC_REFUSE)
		return cpr_err(-EPERM, "successor refuses the handoff (test)");
	if (s->mode == SUCC_HANG) {
		sleep(30);
		_exit(0);
	}
	ret = cpr_vm_create(&s->vm, 1);
	if (!ret)
		ret = cpr_vectors_claim(st, DEV, NULL, &s->vs);
	return ret;
}

static int succ_attach(struct cpr_state *st, void *arg)
{
	struct succ *s = arg;
	int ret;

	if (s->mode == SUCC_DIE_READY)
		_exit(0);
	/* The claim above read the section before the detach: again. */
	cpr_vectors_free(s->vs, false);
	s->vs = NULL;
	ret = cpr_vectors_claim(st, DEV, NULL, &s->vs);
	if (ret)
		return ret;
	/* A device raising vector 1 in the blackout. */
	ret = raise_fd(s->vs->v[1].kvm_fd);
	if (ret)
		return cpr_err(ret, "raising vector 1 in the blackout");
	if (s->mode == SUCC_DIE_DETACHED)
		_exit(0);
	return cpr_vectors_attach(s->vs, s->vm);
}

/* The vectors close their fds; the store then holds none of its own. */
static void succ_free(struct succ *s, struct cpr_state *st)
{
	cpr_vectors_free(s->vs, true);
	cpr_vm_destroy(s->vm);
	if (st) {
		while (cpr_state_nr_fds(st)) {
			const struct cpr_fd_rec *r = cpr_state_fd_at(st, 0);

			close(r->fd);
			cpr_state_delete_fd(st, r->name, r->index);
		}
		cpr_state_free(st);
	}
}

static int successor_main(const char *path, const char *mode_name)
{
	struct cpr_xfer_take_ops ops = {
		.prepare = succ_prepare,
		.attach = succ_attach,
	};
	struct succ s = { 0 };
	struct cpr_state *st = NULL;
	unsigned int i;
	int sock, ret;

	for (i = 0; i < ARRAY_SIZE(mode_names); i++)
		if (!strcmp(mode_name, mode_names[i]))
			s.mode = i;
	if (s.mode == SUCC_OTHER_UID && setuid(65534))
		SUCC_FAIL("setuid(65534): %s", strerror(errno));
	if (s.mode == SUCC_LOW_NOFILE) {
		struct rlimit rl = { .rlim_cur = 24, .rlim_max = 4096 };

		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = 24;	/* room for stdio, the socket, not 8 + 32 */
		if (setrlimit(RLIMIT_NOFILE, &rl))
			SUCC_FAIL("setrlimit(RLIMIT_NOFILE, 24): %s", strerror(errno));
	}
	if (s.mode == SUCC_DIE_CONNECTED) {
		ret = cpr_xfer_connect(path, TIMEOUT_MS, &sock);
		_exit(ret ? 1 : 0);
	}
	ret = cpr_xfer_take(path, TIMEOUT_MS, &st, &ops, &s);
	if (s.mode != SUCC_OK) {
		succ_free(&s, st);
		return ret ? 0 : 1;	/* the failure was the point */
	}
	SUCC_ASSERT_EQ(0, ret, "socket handoff, successor side: %s", cpr_last_error());
	SUCC_ASSERT_EQ(1, s.vm->routing_commits,
		       "%u vectors must be routed in ONE KVM_SET_GSI_ROUTING", VECTORS);
	SUCC_ASSERT_EQ(1, cpr_test_wait_irr(s.vm, 0, lapic_vec(s.vs, 0), IRR_WAIT_MS),
		       "vector 0, pending in the predecessor's LAPIC at handoff, was not carried over the socket into the new VM");
	SUCC_ASSERT_EQ(1, cpr_test_wait_irr(s.vm, 0, lapic_vec(s.vs, 1), IRR_WAIT_MS),
		       "vector 1, raised in the blackout, was not delivered into the new VM");
	for (i = 0; i < VECTORS; i++)
		SUCC_ASSERT_EQ(CPR_FD_EVENTFD, cpr_fd_kind_of(s.vs->v[i].kvm_fd),
			       "vector %u's fd did not arrive as an eventfd", i);
	succ_free(&s, st);
	return 0;
}

/* ---- The predecessor ---- */

struct pred {
	struct cpr_state *st;
	struct cpr_vm *vm;
	struct cpr_vectors *vs;
};

static int pred_save(struct cpr_state *st, void *arg)
{
	struct pred *p = arg;

	(void)st;
	return cpr_vectors_save(p->vs);
}

static int pred_detach(struct cpr_state *st, void *arg)
{
	struct pred *p = arg;

	(void)st;
	return cpr_vectors_detach(p->vs);
}

static int pred_reattach(struct cpr_state *st, void *arg)
{
	struct pred *p = arg;

	(void)st;
	return cpr_vectors_reattach(p->vs);
}

static void try_handoff(struct __test_metadata *_metadata, enum succ_mode mode)
{
	const struct cpr_xfer_give_ops ops = {
		.save = pred_save,
		.detach = pred_detach,
		.reattach = pred_reattach,
	};
	struct pred p = { 0 };
	char dir[] = "/tmp/vfio_cpr_xfer.XXXXXX", path[64];
	int lfd, ret, status;
	pid_t pid;

	if (access("/dev/kvm", R_OK | W_OK))
		SKIP(return, "/dev/kvm not usable: %s", strerror(errno));
	ASSERT_NE(NULL, mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sock", dir);
	p.st = cpr_state_new();
	ASSERT_NE(NULL, p.st);
	ASSERT_EQ(0, cpr_vm_create(&p.vm, 1));
	ASSERT_EQ(0, cpr_vectors_create(p.st, DEV, CPR_IRQ_MSIX, VECTORS,
					CPR_VEC_KVM, &p.vs));
	ASSERT_EQ(0, cpr_vectors_attach(p.vs, p.vm));
	/* Vector 0 reaches the LAPIC and waits there, not taken. */
	ASSERT_EQ(0, raise_fd(p.vs->v[0].kvm_fd));
	ASSERT_EQ(1, cpr_test_wait_irr(p.vm, 0, lapic_vec(p.vs, 0), IRR_WAIT_MS));

	/*
	 * Another uid must reach the socket whatever the file permissions on
	 * the way: an abstract one, where SO_PEERCRED is the only gate.
	 */
	if (mode == SUCC_OTHER_UID)
		snprintf(path, sizeof(path), "@vfio_cpr_xfer.%d", getpid());
	ASSERT_EQ(0, cpr_xfer_listen(path, &lfd));
	pid = cpr_test_spawn_self("transfer", path, mode_names[mode]);
	ASSERT_LT(0, pid);
	ret = cpr_xfer_give(lfd, p.st, TIMEOUT_MS, &ops, &p);
	TH_LOG("successor '%s': predecessor's handoff %s%s", mode_names[mode],
	       ret ? "failed: " : "completed", ret ? cpr_last_error() : "");
	if (mode == SUCC_HANG)
		kill(pid, SIGKILL);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	close(lfd);
	if (path[0] != '@')
		unlink(path);
	rmdir(dir);

	if (mode == SUCC_OK) {
		ASSERT_EQ(0, ret);
		ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status)) {
			TH_LOG("the successor's checks failed (status 0x%x)", status);
		}
		goto out;
	}
	ASSERT_NE(0, ret) {
		TH_LOG("successor '%s' failed, yet the predecessor thinks the handoff completed",
		       mode_names[mode]);
	}
	if (mode == SUCC_OTHER_UID)
		ASSERT_EQ(-EACCES, ret);
	if (mode == SUCC_LOW_NOFILE) {
		ASSERT_EQ(-ECONNABORTED, ret);
		ASSERT_NE(NULL, strstr(cpr_last_error(), "RLIMIT_NOFILE")) {
			TH_LOG("the refusal does not name RLIMIT_NOFILE: %s",
			       cpr_last_error());
		}
	}
	/* Running on: nothing lost, deliveries work. */
	ASSERT_EQ(1, cpr_test_wait_irr(p.vm, 0, lapic_vec(p.vs, 0), IRR_WAIT_MS)) {
		TH_LOG("vector 0, pending in the LAPIC, was lost when the successor '%s' failed",
		       mode_names[mode]);
	}
	if (mode == SUCC_DIE_DETACHED) {
		ASSERT_EQ(1, cpr_test_wait_irr(p.vm, 0, lapic_vec(p.vs, 1),
					       IRR_WAIT_MS)) {
			TH_LOG("vector 1, raised while detached, was lost after re-attaching");
		}
	}
	ASSERT_EQ(0, cpr_vm_lapic_clear(p.vm, 0));
	ASSERT_EQ(0, raise_fd(p.vs->v[2].kvm_fd));
	ASSERT_EQ(1, cpr_test_wait_irr(p.vm, 0, lapic_vec(p.vs, 2), IRR_WAIT_MS)) {
		TH_LOG("the predecessor no longer delivers after the failed handoff");
	}
out:
	cpr_vectors_free(p.vs, true);
	cpr_vm_destroy(p.vm);
	cpr_state_free(p.st);
}

TEST(socket_handoff_carries_state_fds_and_pending_interrupts)
{
	try_handoff(_metadata, SUCC_OK);
}

TEST(successor_dying_after_connect_leaves_predecessor_running)
{
	try_handoff(_metadata, SUCC_DIE_CONNECTED);
}

TEST(successor_dying_with_the_state_leaves_predecessor_running)
{
	try_handoff(_metadata, SUCC_DIE_STATE);
}

TEST(successor_dying_after_ready_leaves_predecessor_running)
{
	try_handoff(_metadata, SUCC_DIE_READY);
}

TEST(successor_dying_after_detach_predecessor_reattaches_nothing_lost)
{
	try_handoff(_metadata, SUCC_DIE_DETACHED);
}

TEST(successor_refusing_is_reported_and_predecessor_runs_on)
{
	try_handoff(_metadata, SUCC_REFUSE);
}

TEST(successor_not_answering_times_out_and_predecessor_runs_on)
{
	try_handoff(_metadata, SUCC_HANG);
}

TEST(successor_without_room_for_the_fds_refuses_before_taking_any)
{
	try_handoff(_metadata, SUCC_LOW_NOFILE);
}

TEST(successor_of_another_uid_is_refused)
{
	if (getuid() != 0)
		SKIP(return, "needs root to start a successor as another uid");
	try_handoff(_metadata, SUCC_OTHER_UID);
}

int main(int argc, char **argv)
{
	cpr_test_successor_enter(argc, argv);
	if (argc >= 5 && !strcmp(argv[1], CPR_TEST_SUCCESSOR) &&
	    !strcmp(argv[2], "transfer"))
		return successor_main(argv[3], argv[4]);
	return test_harness_run(argc, argv);
}
