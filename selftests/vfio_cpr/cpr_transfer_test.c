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
#include "cpr_assert.h"
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

/* What the successor of each mode did, for the messages. */
static const char * const mode_story[] = {
	"took everything",
	"died right after connecting",
	"died once the state came",
	"died after READY",
	"died after DETACHED, having raised vector 1",
	"refused the handoff (ABORT)",
	"never answered",
	"ran as another uid",
	"had no room for the fds",
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

/* Raise vector @i of @vs: one write to its irqfd eventfd. */
static void raise_vector(const struct cpr_vectors *vs, unsigned int i)
{
	__u64 one = 1;
	ssize_t n = write(vs->v[i].kvm_fd, &one, sizeof(one));

	CPR_ASSERT_SYS(n, "raising vector %u: writing its eventfd %d", i,
		       vs->v[i].kvm_fd);
	CPR_ASSERT_EQ(n, (ssize_t)sizeof(one),
		      "raising vector %u: a short write to its eventfd %d", i,
		      vs->v[i].kvm_fd);
}

/* cpr_test_wait_irr() for @vec on vCPU 0, as 0 or -errno; *@seen: it came. */
static int wait_irr(struct cpr_vm *vm, unsigned int vec, bool *seen)
{
	int ret = cpr_test_wait_irr(vm, 0, vec, IRR_WAIT_MS);

	*seen = ret == 1;
	return ret < 0 ? ret : 0;
}

/* Whether LAPIC vector @vec shows in the IRR of @which VM in time. */
static bool irr_arrives(struct cpr_vm *vm, unsigned int vec,
			const char *which)
{
	bool seen;

	CPR_ASSERT_OK(wait_irr(vm, vec, &seen),
		      "reading the LAPIC IRR of %s VM for vector 0x%x", which,
		      vec);
	return seen;
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
			break;
	if (i == ARRAY_SIZE(mode_names))
		CPR_FAIL("no socket successor mode '%s' in this test", mode_name);
	s.mode = i;
	cpr_test_context("socket successor '%s'", mode_names[s.mode]);
	if (s.mode == SUCC_OTHER_UID)
		CPR_ASSERT_SYS(setuid(65534), "becoming uid 65534");
	if (s.mode == SUCC_LOW_NOFILE) {
		struct rlimit rl = { .rlim_cur = 24, .rlim_max = 4096 };

		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = 24;	/* room for stdio, the socket, not 8 + 32 */
		CPR_ASSERT_SYS(setrlimit(RLIMIT_NOFILE, &rl),
			       "lowering RLIMIT_NOFILE to 24");
	}
	if (s.mode == SUCC_DIE_CONNECTED) {
		ret = cpr_xfer_connect(path, TIMEOUT_MS, &sock);
		_exit(ret ? 1 : 0);
	}
	if (s.mode != SUCC_OK) {
		ret = cpr_xfer_take(path, TIMEOUT_MS, &st, &ops, &s);
		/* The failure was the point. */
		CPR_ASSERT_NE(ret, 0,
			      "a successor that %s completed the handoff on its side",
			      mode_story[s.mode]);
		succ_free(&s, st);
		return 0;
	}
	CPR_ASSERT_OK(cpr_xfer_take(path, TIMEOUT_MS, &st, &ops, &s),
		      "the socket handoff failed on the successor's side");
	CPR_ASSERT_EQ(cpr_vm_routing_commits(s.vm), 1,
		      "%u vectors were not routed into the new VM with ONE KVM_SET_GSI_ROUTING",
		      VECTORS);
	CPR_ASSERT_TRUE(irr_arrives(s.vm, lapic_vec(s.vs, 0), "the new"),
			"vector 0, pending in the predecessor's LAPIC at the handoff, was not carried over the socket into the new VM (as 0x%x)",
			lapic_vec(s.vs, 0));
	CPR_ASSERT_TRUE(irr_arrives(s.vm, lapic_vec(s.vs, 1), "the new"),
			"vector 1, raised in the blackout, was not delivered into the new VM (as 0x%x)",
			lapic_vec(s.vs, 1));
	for (i = 0; i < VECTORS; i++)
		CPR_ASSERT_EQ(cpr_fd_kind_of(s.vs->v[i].kvm_fd), CPR_FD_EVENTFD,
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

/* Start the successor of @mode, to connect to @path: its pid in *@pid. */
static int spawn_successor(enum succ_mode mode, const char *path, pid_t *pid)
{
	*pid = cpr_test_spawn_self("transfer", path, mode_names[mode]);
	return *pid < 0 ? *pid : 0;
}

static void try_handoff(struct __test_metadata *_metadata, enum succ_mode mode)
{
	const struct cpr_xfer_give_ops ops = {
		.save = pred_save,
		.detach = pred_detach,
		.reattach = pred_reattach,
	};
	const char *story = mode_story[mode];
	struct pred p = { 0 };
	char dir[] = "/tmp/vfio_cpr_xfer.XXXXXX", path[64];
	int lfd, ret, status;
	pid_t pid;

	if (access("/dev/kvm", R_OK | W_OK))
		SKIP(return, "/dev/kvm not usable: %s", strerror(errno));
	cpr_test_context("socket handoff to a successor '%s'",
			 mode_names[mode]);
	CPR_ASSERT_SYS(mkdtemp(dir) ? 0 : -1,
		       "creating a directory for the socket from %s", dir);
	snprintf(path, sizeof(path), "%s/sock", dir);
	p.st = cpr_test_state_new();
	CPR_ASSERT_OK(cpr_vm_create(&p.vm, 1), "creating the predecessor's VM");
	CPR_ASSERT_OK(cpr_vectors_create(p.st, DEV, CPR_IRQ_MSIX, VECTORS,
					 CPR_VEC_KVM, &p.vs),
		      "creating %d MSI-X vectors with irqfd eventfds", VECTORS);
	CPR_ASSERT_OK(cpr_vectors_attach(p.vs, p.vm),
		      "routing %d vectors into the predecessor's VM and assigning their irqfds",
		      VECTORS);
	/* Vector 0 reaches the LAPIC and waits there, not taken. */
	raise_vector(p.vs, 0);
	CPR_ASSERT_TRUE(irr_arrives(p.vm, lapic_vec(p.vs, 0), "the predecessor's"),
			"vector 0, raised through its irqfd, did not arrive in the predecessor's LAPIC as 0x%x",
			lapic_vec(p.vs, 0));

	/*
	 * Another uid must reach the socket whatever the file permissions on
	 * the way: an abstract one, where SO_PEERCRED is the only gate.
	 */
	if (mode == SUCC_OTHER_UID)
		snprintf(path, sizeof(path), "@vfio_cpr_xfer.%d", getpid());
	CPR_ASSERT_OK(cpr_xfer_listen(path, &lfd), "listening on %s", path);
	CPR_ASSERT_OK(spawn_successor(mode, path, &pid),
		      "starting the successor");
	ret = cpr_xfer_give(lfd, p.st, TIMEOUT_MS, &ops, &p);
	TH_LOG("successor '%s': predecessor's handoff %s%s", mode_names[mode],
	       ret ? "failed: " : "completed", ret ? cpr_last_error() : "");
	if (mode == SUCC_HANG)
		kill(pid, SIGKILL);
	CPR_ASSERT_SYS(waitpid(pid, &status, 0),
		       "waiting for the successor (pid %d)", pid);
	close(lfd);
	if (path[0] != '@')
		unlink(path);
	rmdir(dir);

	if (mode == SUCC_OK) {
		CPR_ASSERT_EQ(ret, 0,
			      "the socket handoff failed on the predecessor's side (\"%s\")",
			      cpr_last_error());
		CPR_ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status),
				"the successor failed its checks (status 0x%x; what broke is above)",
				status);
		goto out;
	}
	CPR_ASSERT_NE(ret, 0,
		      "a successor %s, yet the predecessor thinks the handoff completed",
		      story);
	/* Each successor exits 0 once it failed the way it was told to. */
	if (mode != SUCC_HANG)
		CPR_ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status),
				"the successor that should have %s failed another way (status 0x%x; what broke is above)",
				story, status);
	if (mode == SUCC_OTHER_UID)
		CPR_ASSERT_EQ(ret, -EACCES,
			      "a successor of another uid was not refused with -EACCES (\"%s\")",
			      cpr_last_error());
	if (mode == SUCC_LOW_NOFILE) {
		CPR_ASSERT_EQ(ret, -ECONNABORTED,
			      "a successor without room for the fds did not abort the handoff with -ECONNABORTED (\"%s\")",
			      cpr_last_error());
		CPR_ASSERT_TRUE(strstr(cpr_last_error(), "RLIMIT_NOFILE"),
				"the successor's refusal does not name RLIMIT_NOFILE: \"%s\"",
				cpr_last_error());
	}
	/* Running on: nothing lost, deliveries work. */
	CPR_ASSERT_TRUE(irr_arrives(p.vm, lapic_vec(p.vs, 0), "the predecessor's"),
			"vector 0, pending in the predecessor's LAPIC, was lost when a successor %s",
			story);
	if (mode == SUCC_DIE_DETACHED)
		CPR_ASSERT_TRUE(irr_arrives(p.vm, lapic_vec(p.vs, 1),
					    "the predecessor's"),
				"vector 1, raised while the predecessor was detached, was lost after it re-attached (the successor %s)",
				story);
	CPR_ASSERT_OK(cpr_vm_lapic_clear(p.vm, 0),
		      "clearing the predecessor's LAPIC from outside");
	raise_vector(p.vs, 2);
	CPR_ASSERT_TRUE(irr_arrives(p.vm, lapic_vec(p.vs, 2), "the predecessor's"),
			"the predecessor stopped delivering after a successor %s: vector 2, raised, did not arrive as 0x%x",
			story, lapic_vec(p.vs, 2));
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
