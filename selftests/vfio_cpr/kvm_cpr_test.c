// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM instance replacement across an exec handoff, without VFIO.
 *
 * VM #0 gets N vectors (eventfd pairs) routed through irqfds, and delivery
 * is checked in its LAPIC.  Before the exec the irqfds are detached; one
 * vector is left pending in VM #0's IRR, one is masked with its pending bit
 * set, one is raised during the blackout.  The successor (this binary,
 * exec'd) creates VM #1, claims the vectors from the state in one routing
 * commit, and every one of those interrupts must arrive in VM #1 exactly
 * where it belongs; then every vector is raised again, and a real-mode vCPU
 * takes one in its handler.  Three generations in a row.
 *
 * The three handoffs take the three ways the library has:
 *   into generation 1, relayed: FD_CLOEXEC cleared ahead
 *	(cpr_exec_prepare()), the irqfds replaced ahead by the library's
 *	relay thread (cpr_vectors_relay()), so that the handoff itself
 *	(cpr_vectors_detach_vm()) only stops the thread and closes the old
 *	VM's fd; one more vector, R, raised under the relay, must reach
 *	VM #0 and then VM #1;
 *   into generation 2, vector by vector (cpr_vectors_detach());
 *   into generation 3, the old VM released at once: its fd closed, which
 *	makes KVM drop all its irqfds in one go, its LAPIC read after.
 * Generations 1 and 3 check their fds after their vectors are attached
 * (CPR_RESUME_DEFER_CHECKS, cpr_resume_finish()), generation 2 before.
 *
 * During each detach one more vector, S, is raised: just before the relay
 * is stopped, as the old VM's fd is closed, or a little into the deassigns
 * (S's irqfd is one of the last).  Until its irqfd's shutdown work ran KVM
 * delivers it into VM #0, as does the relay until it stopped: S reaches
 * VM #1 only if VM #0's LAPIC is read after all of that.
 *
 * The socket_* variants make every handoff by the socket mode instead
 * (cpr_xfer_give()/cpr_xfer_take(), vector by vector): each successor is a
 * process of its own that gets the state and fds over a UNIX socket while
 * its predecessor's VM still delivers, and passes the same checks.
 *
 * Every check, in a test body, a helper or a successor, goes through
 * cpr_assert.h, and a failure names the KVM behaviour that broke, the
 * vector (index and LAPIC vector) and the VM, so that whoever changed KVM
 * reads what to look at:
 *   "KVM did not inject the interrupt already pending on vector 2's
 *    eventfd when its irqfd was assigned in VM #1"
 *   "KVM_IRQFD deassign did not detach: ..."
 *   "KVM kept the irqfds of a released VM: ..."
 *   "vector 63 ... did not arrive in VM #0's LAPIC as 0x5f, the vector its
 *    MSI route names ..."
 * Whether an irqfd still listens on an eventfd is seen at once, without
 * waiting for an injection: KVM's irqfd takes the eventfd's count in the
 * very write() that signals it, so a vector that must have no irqfd is
 * raised and its count must still be there (poll(), which takes nothing).
 *
 * Beside the handoff chain, tests of their own:
 *   one_eventfd_in_two_vms: an eventfd moves to a second VM and back, and
 *	a second VM takes an eventfd that backs an irqfd (both kernel rules:
 *	refused with EBUSY from Linux 6.17, allowed before);
 *   unrelay_delivers_each_signal_once: signals raised right before
 *	cpr_vectors_unrelay() are taken once, neither lost nor doubled;
 *   guest_takes_every_interrupt_raised_meanwhile: a vector raised from
 *	another thread while the guest takes interrupts in a loop is taken
 *	every time (nothing rewrites the LAPIC from outside).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/types.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "cpr_assert.h"
#include "cpr_test_util.h"
#include "vfio_cpr/fd.h"
#include "vfio_cpr/handoff.h"
#include "vfio_cpr/kvm.h"
#include "vfio_cpr/transfer.h"
#include "vfio_cpr/vectors.h"

#define DEV		"kvmtest"
#define GENERATIONS	3
#define IRR_WAIT_MS	1000
#define GUEST_WAIT_MS	5000
/* How long a vector that must not arrive is watched for (not in a blackout). */
#define QUIET_MS	5

/*
 * Roles in each handoff (all on distinct LAPIC vectors): P stays pending in
 * the old VM's IRR, M is masked and pending, B is raised in the blackout,
 * S is raised while the irqfds are being detached, R is raised under the
 * relay.  With fewer than 5 vectors only B is exercised.
 */
struct roles {
	int p, m, b, s, r;
};

static struct roles roles_of(unsigned int nr)
{
	struct roles r = { -1, -1, 0, -1, -1 };

	if (nr >= 5) {
		r.p = nr - 1;
		r.m = 1;
		r.b = 2;
		r.s = nr - 2;
		r.r = 3;
	}
	return r;
}

/* Z: masked, raised and unmasked in VM #0 before the first handoff. */
static unsigned int z_of(unsigned int nr)
{
	return nr >= 5 ? 4 : 0;
}

enum handoff_way { WAY_RELAY, WAY_VECTORS, WAY_RELEASE };

static const char *const way_names[] = {
	[WAY_RELAY] = "irqfds relayed ahead, fd checks after the attach",
	[WAY_VECTORS] = "vector by vector, fd checks first",
	[WAY_RELEASE] = "old VM released at once, fd checks after the attach",
};

/* What broke when an irqfd still listens after a detach made this way. */
#define DEASSIGN_KEPT	"KVM_IRQFD deassign did not detach"
#define RELEASE_KEPT	"KVM kept the irqfds of a released VM"
static const char *const way_culprit[] = {
	[WAY_RELAY] = DEASSIGN_KEPT " (the relay's), or " RELEASE_KEPT,
	[WAY_VECTORS] = DEASSIGN_KEPT,
	[WAY_RELEASE] = RELEASE_KEPT,
};

/* How the handoff into generation @gen is made. */
static enum handoff_way way_into(unsigned long long gen)
{
	return gen == 1 ? WAY_RELAY : gen == 2 ? WAY_VECTORS : WAY_RELEASE;
}

/* What a failure is printed with: the vectors, the mode, the generation. */
static void context(unsigned int nr, bool socket, unsigned long long gen,
		    const char *stage)
{
	cpr_test_context("%u vector%s, %s handoffs, generation %llu: %s", nr,
			 nr == 1 ? "" : "s", socket ? "socket" : "exec", gen,
			 stage);
}

/*
 * Library errors are printed by the failing check (CPR_ASSERT_OK), once:
 * the library itself stays quiet in this test.
 */
static void test_begin(void)
{
	cpr_log_set_quiet(true);
}

/*
 * A diagnostic line, flushed at once: a harness test child ends with
 * _exit(), which would drop what stdio still holds.
 */
static void __printf(1, 2) note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

static unsigned int lapic_vec(const struct cpr_vectors *vs, unsigned int i)
{
	return cpr_msi_msg_vector(&vs->v[i].msg);
}

/* Vector @i raised: one signal on its kvm_interrupt eventfd. */
static void raise_vector(const struct cpr_vectors *vs, unsigned int i)
{
	__u64 one = 1;

	CPR_ASSERT_SYS(write(vs->v[i].kvm_fd, &one, sizeof(one)),
		       "raising vector %u: writing its eventfd %d", i,
		       vs->v[i].kvm_fd);
}

/*
 * Whether vector @i's eventfd still holds a count, seen with poll(), which
 * takes nothing.  An irqfd takes the count in the write() that raised it:
 * right after a raise, a count gone means an irqfd still listens.  (Not
 * while the relay runs: it reads the counts.)
 */
static bool count_held(const struct cpr_vectors *vs, unsigned int i)
{
	struct pollfd p = { .fd = vs->v[i].kvm_fd, .events = POLLIN };

	CPR_ASSERT_SYS(poll(&p, 1, 0), "polling vector %u's eventfd %d", i,
		       p.fd);
	return p.revents & POLLIN;
}

/* The LAPIC vectors in @vm's vCPU 0 IRR, as text for a failure message. */
static const char *irr_text(struct cpr_vm *vm)
{
	static char buf[128];
	unsigned int v, shown = 0;
	size_t n = 0;
	__u64 irr[4];

	if (cpr_vm_lapic_irr(vm, 0, irr))
		return "(unreadable)";
	for (v = 0; v < 256 && n < sizeof(buf) - 8; v++) {
		if (!((irr[v / 64] >> (v % 64)) & 1))
			continue;
		if (shown++ == 10) {
			n += snprintf(buf + n, sizeof(buf) - n, " ...");
			break;
		}
		n += snprintf(buf + n, sizeof(buf) - n, "%s0x%02x",
			      n ? " " : "", v);
	}
	return shown ? buf : "nothing";
}

static int irr_test(struct cpr_vm *vm, unsigned int vec, int *set)
{
	int ret = cpr_vm_lapic_irr_test(vm, 0, vec);

	if (ret < 0)
		return ret;
	*set = ret;
	return 0;
}

/* Whether LAPIC vector @vec is in VM #@no's IRR now. */
static bool irr_has(struct cpr_vm *vm, unsigned long long no, unsigned int vec)
{
	int set;

	CPR_ASSERT_OK(irr_test(vm, vec, &set),
		      "reading VM #%llu's LAPIC IRR for 0x%x", no, vec);
	return set;
}

/*
 * Whether LAPIC vector @vec shows in VM #@no's IRR within @ms (an eventfd
 * signalled before its irqfd was attached is injected by a kernel worker,
 * a little after the attach).
 */
static bool irr_wait(struct cpr_vm *vm, unsigned long long no,
		     unsigned int vec, int ms)
{
	__u64 end = cpr_now_ns() + (__u64)ms * 1000000;

	do {
		if (irr_has(vm, no, vec))
			return true;
		usleep(20);
	} while (cpr_now_ns() < end);
	return false;
}

/* An empty LAPIC before a raise: a clear from outside, on purpose. */
static void lapic_clear(struct cpr_vm *vm, unsigned long long no)
{
	CPR_ASSERT_OK(cpr_vm_lapic_clear(vm, 0),
		      "clearing VM #%llu's LAPIC from outside", no);
}

/*
 * Raise every vector and see each arrive in VM #@no's LAPIC, one at a
 * time: through its irqfd, as the LAPIC vector its MSI route names, or,
 * @relayed, read from its eventfd and injected by the relay thread.
 */
static void check_every_vector(struct cpr_vectors *vs, struct cpr_vm *vm,
			       unsigned long long no, bool relayed)
{
	unsigned int i;

	for (i = 0; i < vs->nr; i++) {
		lapic_clear(vm, no);
		raise_vector(vs, i);
		if (relayed)
			CPR_ASSERT_TRUE(irr_wait(vm, no, lapic_vec(vs, i),
						 IRR_WAIT_MS),
					"vector %u, relayed (its eventfd read and injected with KVM_SIGNAL_MSI by the library's thread), did not arrive in VM #%llu's LAPIC as 0x%x; the IRR holds %s",
					i, no, lapic_vec(vs, i), irr_text(vm));
		else
			CPR_ASSERT_TRUE(irr_wait(vm, no, lapic_vec(vs, i),
						 IRR_WAIT_MS),
					"vector %u, raised through its irqfd (GSI %d), did not arrive in VM #%llu's LAPIC as 0x%x, the vector its MSI route names (data 0x%x); the IRR holds %s",
					i, vs->v[i].virq, no, lapic_vec(vs, i),
					vs->v[i].msg.data, irr_text(vm));
	}
	lapic_clear(vm, no);
}

/* A real-mode vCPU of VM #@no takes vector @i's interrupt in its handler. */
static void check_guest_takes(struct cpr_vectors *vs, struct cpr_vm *vm,
			      unsigned long long no, unsigned int i)
{
	unsigned int got = 0;

	lapic_clear(vm, no);
	raise_vector(vs, i);
	CPR_ASSERT_OK(cpr_vm_guest_wait(vm, 0, GUEST_WAIT_MS, &got),
		      "the real-mode vCPU of VM #%llu did not take vector %u (LAPIC vector 0x%x) in its handler",
		      no, i, lapic_vec(vs, i));
	CPR_ASSERT_EQ(got, lapic_vec(vs, i),
		      "the real-mode vCPU of VM #%llu took LAPIC vector 0x%x, not 0x%x of vector %u",
		      no, got, lapic_vec(vs, i), i);
}

/*
 * Vector @i masked (its irqfd deassigned), raised, unmasked (its irqfd
 * assigned again): while masked nothing may take its eventfd's count nor
 * reach the LAPIC; on unmask KVM must inject what the eventfd holds.
 */
static void check_mask_and_unmask(struct cpr_vectors *vs, struct cpr_vm *vm,
				  unsigned long long no, unsigned int i)
{
	unsigned int vec = lapic_vec(vs, i);

	lapic_clear(vm, no);
	CPR_ASSERT_OK(cpr_vectors_mask(vs, i),
		      "masking vector %u: KVM_IRQFD deassign in VM #%llu", i,
		      no);
	raise_vector(vs, i);
	CPR_ASSERT_TRUE(count_held(vs, i),
			"KVM_IRQFD deassign did not detach: vector %u, masked (its irqfd deassigned from VM #%llu), was raised and its eventfd's count was taken at once, as only an irqfd takes it; VM #%llu's IRR holds %s",
			i, no, no, irr_text(vm));
	CPR_ASSERT_FALSE(irr_wait(vm, no, vec, QUIET_MS),
			 "KVM_IRQFD deassign did not detach: vector %u, masked (its irqfd deassigned from VM #%llu), was raised and arrived in its LAPIC as 0x%x",
			 i, no, vec);
	CPR_ASSERT_OK(cpr_vectors_unmask(vs, i),
		      "unmasking vector %u: KVM_IRQFD assign in VM #%llu", i,
		      no);
	CPR_ASSERT_TRUE(irr_wait(vm, no, vec, IRR_WAIT_MS),
			"KVM did not inject the interrupt already pending on vector %u's eventfd when its irqfd was assigned in VM #%llu (raised while masked; LAPIC vector 0x%x; the IRR holds %s)",
			i, no, vec, irr_text(vm));
	lapic_clear(vm, no);
}

static void count_handled(struct cpr_vectors *vs, unsigned int i,
			  __u64 count, void *arg)
{
	__u64 *per_vector = arg;

	(void)vs;
	if (i == 0)
		*per_vector += count;
}

static int poll_vectors(struct cpr_vectors *vs, int *seen)
{
	int ret = cpr_vectors_poll(vs);

	if (ret < 0)
		return ret;
	*seen = ret;
	return 0;
}

/*
 * S's raiser.  When the old VM is released at once it waits for the VM's
 * fd to be closed (F_GETFD fails), vector by vector it waits
 * RAISE_DELAY_US into the deassigns (S's irqfd is among the last), then
 * it raises S once; if the detach is over first, it raises S anyway.
 */
#define RAISE_DELAY_US	200

struct raiser {
	pthread_t thread;
	int vm_fd, kvm_fd;
	bool release;
	bool go, stop;
	bool in_window;		/* S raised while the detach ran */
	int err;		/* errno of a failed write() */
};

static void *raiser_run(void *arg)
{
	struct raiser *rs = arg;
	__u64 one = 1, at = 0;

	for (;;) {
		if (__atomic_load_n(&rs->stop, __ATOMIC_ACQUIRE))
			break;
		if (rs->release && fcntl(rs->vm_fd, F_GETFD) < 0 &&
		    errno == EBADF) {
			rs->in_window = true;
			break;
		}
		if (!rs->release && !at &&
		    __atomic_load_n(&rs->go, __ATOMIC_ACQUIRE))
			at = cpr_now_ns() + RAISE_DELAY_US * 1000ull;
		if (at && cpr_now_ns() >= at) {
			rs->in_window = true;
			break;
		}
	}
	if (write(rs->kvm_fd, &one, sizeof(one)) != sizeof(one))
		rs->err = errno;
	return NULL;
}

static int detach_one_way(struct cpr_vectors *vs, struct cpr_vm *vm,
			  enum handoff_way way)
{
	return way == WAY_VECTORS ? cpr_vectors_detach(vs) :
	       cpr_vectors_detach_vm(vm, &vs, 1);
}

/* The detach, with S's raiser let go as it starts and joined after. */
static int detach_with_raiser(struct cpr_vectors *vs, struct cpr_vm *vm,
			      enum handoff_way way, struct raiser *rs)
{
	int ret;

	__atomic_store_n(&rs->go, true, __ATOMIC_RELEASE);
	ret = detach_one_way(vs, vm, way);
	__atomic_store_n(&rs->stop, true, __ATOMIC_RELEASE);
	pthread_join(rs->thread, NULL);
	return ret;
}

/* Vector @i shares its LAPIC vector with none of the roles. */
static bool roleless(const struct cpr_vectors *vs, unsigned int i)
{
	struct roles r = roles_of(vs->nr);
	int roles[] = { r.p, r.m, r.b, r.s, r.r };
	unsigned int k;

	for (k = 0; k < ARRAY_SIZE(roles); k++)
		if (roles[k] >= 0 &&
		    lapic_vec(vs, i) == lapic_vec(vs, roles[k]))
			return false;
	return true;
}

/*
 * Under the relay: R raised, to VM #@gen; then a burst of every vector
 * without a role, S last, just before the relay is stopped: it is still
 * working through them when the handoff starts.
 */
static void detach_relayed(struct cpr_vectors *vs, struct cpr_vm *vm,
			   unsigned long long gen)
{
	struct roles r = roles_of(vs->nr);
	unsigned int i;

	CPR_ASSERT_OK(cpr_vectors_relay(vm, &vs, 1),
		      "handing VM #%llu's irqfds to the relay thread ahead of the handoff",
		      gen);
	if (r.r >= 0) {
		CPR_ASSERT_EQ(cpr_vectors_mask(vs, r.r), -EBUSY,
			      "masking vector %d while it is relayed must be refused",
			      r.r);
		raise_vector(vs, r.r);
		CPR_ASSERT_TRUE(irr_wait(vm, gen, lapic_vec(vs, r.r),
					 IRR_WAIT_MS),
				"vector %d (R), raised under the relay, did not arrive in VM #%llu's LAPIC as 0x%x: the relay thread did not inject it; the IRR holds %s",
				r.r, gen, lapic_vec(vs, r.r), irr_text(vm));
	}
	if (r.s >= 0) {
		for (i = 0; i < vs->nr; i++)
			if (roleless(vs, i))
				raise_vector(vs, i);
		raise_vector(vs, r.s);
	}
	CPR_ASSERT_OK(cpr_vectors_detach_vm(vm, &vs, 1),
		      "stopping the relay and releasing VM #%llu", gen);
}

/* Detach from VM #@gen the way asked for, S raised while that runs. */
static void detach_raising_s(struct cpr_vectors *vs, struct cpr_vm *vm,
			     unsigned long long gen, enum handoff_way way)
{
	struct roles r = roles_of(vs->nr);
	struct raiser rs = { .vm_fd = cpr_vm_fd(vm), .release = way == WAY_RELEASE };

	if (way != WAY_VECTORS)
		CPR_ASSERT_OK(cpr_exec_prepare(vs->st),
			      "clearing FD_CLOEXEC ahead of the handoff");
	if (way == WAY_RELAY) {
		detach_relayed(vs, vm, gen);
		return;
	}
	if (r.s < 0) {
		CPR_ASSERT_OK(detach_one_way(vs, vm, way),
			      "detaching the vectors from VM #%llu (%s)", gen,
			      way_names[way]);
		return;
	}
	rs.kvm_fd = vs->v[r.s].kvm_fd;
	CPR_ASSERT_EQ(pthread_create(&rs.thread, NULL, raiser_run, &rs), 0,
		      "starting the thread that raises vector %d (S)", r.s);
	CPR_ASSERT_OK(detach_with_raiser(vs, vm, way, &rs),
		      "detaching the vectors from VM #%llu (%s) while a thread raises vector %d (S)",
		      gen, way_names[way], r.s);
	CPR_ASSERT_EQ(rs.err, 0,
		      "raising vector %d (S) from its thread: write() on eventfd %d failed: %s",
		      r.s, rs.kvm_fd, strerror(rs.err));
	note("# vector S raised %s\n", !rs.in_window ?
	     "after the detach (no window)" : way == WAY_RELEASE ?
	     "as the old VM's fd closed" : "while the irqfds were detached");
}

/*
 * Leave the vectors as a handoff finds them in a running VMM, detach them
 * from VM #@gen the way asked for and raise B in the blackout.
 */
static void prepare_handoff(struct cpr_vectors *vs, struct cpr_vm *vm,
			    unsigned long long gen, enum handoff_way way)
{
	struct roles r = roles_of(vs->nr);
	__u64 one = 1;
	int seen;

	lapic_clear(vm, gen);
	if (r.p >= 0) {
		raise_vector(vs, r.p);
		CPR_ASSERT_TRUE(irr_wait(vm, gen, lapic_vec(vs, r.p),
					 IRR_WAIT_MS),
				"vector %d (P), raised through its irqfd (GSI %d), did not arrive in VM #%llu's LAPIC as 0x%x, the vector its MSI route names (data 0x%x); the IRR holds %s",
				r.p, vs->v[r.p].virq, gen, lapic_vec(vs, r.p),
				vs->v[r.p].msg.data, irr_text(vm));
	}
	if (r.m >= 0) {
		CPR_ASSERT_OK(cpr_vectors_mask(vs, r.m),
			      "masking vector %d (M): KVM_IRQFD deassign in VM #%llu",
			      r.m, gen);
		raise_vector(vs, r.m);
		CPR_ASSERT_TRUE(count_held(vs, r.m),
				"KVM_IRQFD deassign did not detach: vector %d (M), masked (its irqfd deassigned from VM #%llu), was raised and its eventfd's count was taken at once, as only an irqfd takes it; VM #%llu's IRR holds %s",
				r.m, gen, gen, irr_text(vm));
		CPR_ASSERT_FALSE(irr_wait(vm, gen, lapic_vec(vs, r.m),
					  QUIET_MS),
				 "KVM_IRQFD deassign did not detach: vector %d (M), masked (its irqfd deassigned from VM #%llu), was raised and arrived in its LAPIC as 0x%x",
				 r.m, gen, lapic_vec(vs, r.m));
		CPR_ASSERT_OK(poll_vectors(vs, &seen),
			      "collecting masked vector %d (M)'s signal into its pending bit",
			      r.m);
		CPR_ASSERT_TRUE(seen >= 1 && vs->v[r.m].pending,
				"masked vector %d (M) was raised but cpr_vectors_poll() saw %d signals and left its pending bit clear",
				r.m, seen);
	}
	/* The userspace handler's eventfd carries a signal across too. */
	CPR_ASSERT_SYS(write(vs->v[0].interrupt_fd, &one, sizeof(one)),
		       "signalling vector 0's interrupt eventfd %d",
		       vs->v[0].interrupt_fd);
	detach_raising_s(vs, vm, gen, way);

	/* B in the blackout: no irqfd may listen, not even a dying one. */
	raise_vector(vs, r.b);
	CPR_ASSERT_TRUE(count_held(vs, r.b),
			"%s: vector %d (B), raised in the blackout after the detach from VM #%llu (%s), had its eventfd's count taken at once, as only an irqfd takes it; VM #%llu's IRR holds %s",
			way_culprit[way], r.b, gen, way_names[way], gen,
			irr_text(vm));
	CPR_ASSERT_FALSE(irr_has(vm, gen, lapic_vec(vs, r.b)),
			 "%s: vector %d (B), raised in the blackout after the detach from VM #%llu (%s), arrived in its LAPIC as 0x%x",
			 way_culprit[way], r.b, gen, way_names[way],
			 lapic_vec(vs, r.b));
}

/* The successor's argument: "<vectors>,<enum handoff_way>". */
static int exec_next(struct cpr_state *st, unsigned int nr,
		     enum handoff_way way)
{
	char arg[32];

	snprintf(arg, sizeof(arg), "%u,%d", nr, way);
	return cpr_test_exec_self(st, "kvm", arg);
}

/* 0 once a handed-off state was taken over, -errno otherwise. */
static int resume_state(struct cpr_resume_info *info, bool deferred)
{
	int ret = deferred ? cpr_resume_flags(info, CPR_RESUME_DEFER_CHECKS) :
		  cpr_resume(info);

	if (ret == 1)
		return 0;
	return ret ? ret : cpr_err(-ENOENT, "no handed-off state: $%s is not set",
				   CPR_STATE_ENV);
}

/*
 * The exec successor takes the state over; on the fast path only the state
 * now, the fds' checks once the vectors are attached.
 */
static void take_over(struct cpr_resume_info *info, bool deferred)
{
	CPR_ASSERT_OK(resume_state(info, deferred),
		      "taking over the handed-off state");
	if (deferred)
		CPR_ASSERT_TRUE(info->checks_pending,
				"a deferred resume left no fd checks for cpr_resume_finish()");
	else
		CPR_ASSERT_EQ(info->leaked_fds, 0,
			      "fd audit after exec: fds leaked into the successor");
}

/*
 * Open fds whose /proc link starts with @what: the old VM's relay left an
 * epoll set, and the old VM a vCPU fd, to be closed here.
 */
static int fds_open(const char *what)
{
	char path[64], target[64];
	int fd, n = 0;
	ssize_t len;

	for (fd = 3; fd < 1 << 16; fd++) {
		if (fcntl(fd, F_GETFD) < 0)
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		len = readlink(path, target, sizeof(target) - 1);
		if (len < 0)
			continue;
		target[len] = '\0';
		n += !strncmp(target, what, strlen(what));
	}
	return n;
}

static void finish_deferred(struct cpr_resume_info *info)
{
	int fd = cpr_state_fd_at(info->st, 0)->fd, flags;

	CPR_ASSERT_OK(cpr_resume_finish(info),
		      "the deferred checks of the inherited fds");
	CPR_ASSERT_FALSE(info->checks_pending,
			 "cpr_resume_finish() left checks pending");
	CPR_ASSERT_EQ(info->leaked_fds, 0,
		      "fd audit after exec: fds leaked into the successor");
	CPR_ASSERT_SYS(flags = fcntl(fd, F_GETFD),
		       "reading the flags of inherited fd %d", fd);
	CPR_ASSERT_TRUE(flags & FD_CLOEXEC,
			"FD_CLOEXEC not put back on inherited fd %d", fd);
	CPR_ASSERT_EQ(fds_open("anon_inode:[eventpoll]"), 0,
		      "the predecessor's relay epoll set is still open after the checks");
	CPR_ASSERT_EQ(fds_open("anon_inode:kvm-vcpu"), 1,
		      "vCPU fds open after the checks: the old VM's is not closed, or the new VM has none");
}

/*
 * Everything a successor checks once it has the state and a new VM: claim
 * the vectors into @vm (one routing commit) and see every interrupt of the
 * handoff arrive where it belongs.
 */
static struct cpr_vectors *generation_checks(struct cpr_resume_info *info,
					     struct cpr_vm *vm, unsigned int nr,
					     enum handoff_way way, bool fast)
{
	unsigned long long gen = info->generation, old = gen - 1;
	struct cpr_vectors *vs = NULL;
	struct roles r = roles_of(nr);
	__u64 seen_ns, handled = 0;
	int seen;

	CPR_ASSERT_OK(cpr_vectors_claim(info->st, DEV, vm, &vs),
		      "claiming %u vectors into VM #%llu: KVM_IRQFD on the eventfds inherited across the handoff must succeed at once (VM #%llu's irqfds on them are gone)",
		      nr, gen, old);
	CPR_ASSERT_EQ(vs->nr, nr, "vectors saved in the state");
	CPR_ASSERT_EQ(cpr_vm_routing_commits(vm), 1,
		      "%u vectors must be routed into VM #%llu with ONE KVM_SET_GSI_ROUTING",
		      nr, gen);
	CPR_ASSERT_EQ(cpr_vm_nr_routes(vm), nr, "MSI routes staged in VM #%llu",
		      gen);

	/* The blackout ends when B, raised while no VM listened, arrives. */
	CPR_ASSERT_TRUE(irr_wait(vm, gen, lapic_vec(vs, r.b), IRR_WAIT_MS),
			"KVM did not inject the interrupt already pending on vector %d's eventfd when its irqfd was assigned in VM #%llu (B, raised in the blackout; LAPIC vector 0x%x; the IRR holds %s)",
			r.b, gen, lapic_vec(vs, r.b), irr_text(vm));
	seen_ns = cpr_now_ns();
	/* From the irqfd detach to the first interrupt seen in the new VM. */
	note("# generation %llu, %u vectors: blackout %.3f ms (%s)\n", gen, nr,
	     (seen_ns - info->handoff_start_ns) / 1e6, way_names[way]);
	note("# generation %llu: KVM_IRQFD on %u inherited eventfds succeeded at once\n",
	     gen, nr);
	if (fast)
		finish_deferred(info);

	if (r.p >= 0)
		CPR_ASSERT_TRUE(irr_has(vm, gen, lapic_vec(vs, r.p)),
				"vector %d (P) was pending in VM #%llu's LAPIC at the handoff and did not arrive in VM #%llu as 0x%x (noted by the detach, re-injected with KVM_SIGNAL_MSI); the IRR holds %s",
				r.p, old, gen, lapic_vec(vs, r.p), irr_text(vm));
	if (way == WAY_RELAY && r.r >= 0)
		CPR_ASSERT_TRUE(irr_has(vm, gen, lapic_vec(vs, r.r)),
				"vector %d (R), relayed into VM #%llu's LAPIC before the handoff, did not arrive in VM #%llu as 0x%x; the IRR holds %s",
				r.r, old, gen, lapic_vec(vs, r.r), irr_text(vm));
	if (r.s >= 0)
		CPR_ASSERT_TRUE(irr_wait(vm, gen, lapic_vec(vs, r.s),
					 IRR_WAIT_MS),
				"vector %d (S), raised while VM #%llu's irqfds were being detached, did not arrive in VM #%llu as 0x%x: if it stayed in its eventfd, KVM did not inject the interrupt already pending on vector %d's eventfd when its irqfd was assigned in VM #%llu; if it reached VM #%llu, its LAPIC was read before its irqfds (or the relay) were all shut down; the IRR holds %s",
				r.s, old, gen, lapic_vec(vs, r.s), r.s, gen,
				old, irr_text(vm));

	/* Delivered once: nothing comes back after the LAPIC is cleared. */
	lapic_clear(vm, gen);
	usleep(1000);
	CPR_ASSERT_FALSE(irr_has(vm, gen, lapic_vec(vs, r.b)),
			 "vector %d (B), raised once in the blackout, was delivered into VM #%llu twice",
			 r.b, gen);
	if (way == WAY_RELAY && r.r >= 0)
		CPR_ASSERT_FALSE(irr_has(vm, gen, lapic_vec(vs, r.r)),
				 "vector %d (R), raised once under the relay, was delivered into VM #%llu again",
				 r.r, gen);
	if (r.s >= 0)
		CPR_ASSERT_FALSE(irr_has(vm, gen, lapic_vec(vs, r.s)),
				 "vector %d (S), raised once at the handoff, was delivered into VM #%llu twice",
				 r.s, gen);
	if (r.m >= 0) {
		CPR_ASSERT_TRUE(vs->v[r.m].masked && vs->v[r.m].pending,
				"vector %d (M) lost its masked+pending state in the handoff",
				r.m);
		CPR_ASSERT_FALSE(irr_has(vm, gen, lapic_vec(vs, r.m)),
				 "vector %d (M), masked, was delivered into VM #%llu as 0x%x while still masked",
				 r.m, gen, lapic_vec(vs, r.m));
		lapic_clear(vm, gen);
		CPR_ASSERT_OK(cpr_vectors_unmask(vs, r.m),
			      "unmasking vector %d (M) in VM #%llu", r.m, gen);
		CPR_ASSERT_TRUE(irr_wait(vm, gen, lapic_vec(vs, r.m),
					 IRR_WAIT_MS),
				"vector %d (M), masked and pending at the handoff, did not arrive in VM #%llu as 0x%x on unmask (KVM_SIGNAL_MSI of its pending bit); the IRR holds %s",
				r.m, gen, lapic_vec(vs, r.m), irr_text(vm));
	}

	/* The handler is attached to the inherited "interrupt" eventfds. */
	vs->handler = count_handled;
	vs->handler_arg = &handled;
	CPR_ASSERT_OK(poll_vectors(vs, &seen),
		      "polling the inherited interrupt eventfds");
	CPR_ASSERT_EQ(handled, 1,
		      "signals on vector 0's interrupt eventfd, signalled once before the handoff");

	check_every_vector(vs, vm, gen, false);
	check_guest_takes(vs, vm, gen, gen % nr);
	return vs;
}

/* Socket handoff, the predecessor's side: its vectors and VM. */
struct kvm_pred {
	struct cpr_vectors *vs;
	struct cpr_vm *vm;
	unsigned long long gen;
};

static int kx_save(struct cpr_state *st, void *arg)
{
	struct kvm_pred *p = arg;

	(void)st;
	return cpr_vectors_save(p->vs);
}

/* A failed check here ends the predecessor; its successor dies with it. */
static int kx_detach(struct cpr_state *st, void *arg)
{
	struct kvm_pred *p = arg;

	(void)st;
	prepare_handoff(p->vs, p->vm, p->gen, WAY_VECTORS);
	return 0;
}

static int kx_reattach(struct cpr_state *st, void *arg)
{
	struct kvm_pred *p = arg;

	(void)st;
	return cpr_vectors_reattach(p->vs);
}

static int give_to_successor(struct cpr_state *st, struct kvm_pred *p,
			     unsigned int nr, pid_t *pid)
{
	const struct cpr_xfer_give_ops ops = {
		.save = kx_save,
		.detach = kx_detach,
		.reattach = kx_reattach,
	};
	char path[64], arg[32];

	snprintf(path, sizeof(path), "@vfio_cpr_kvm.%d.%llu", getpid(),
		 p->gen + 1);
	snprintf(arg, sizeof(arg), "%u", nr);
	*pid = cpr_test_give_to_self(st, "kvm-xfer", path, arg, 20000, &ops, p);
	return *pid < 0 ? *pid : 0;
}

static int wait_successor(pid_t pid, int *status)
{
	*status = cpr_test_wait_successor(pid);
	return *status < 0 ? *status : 0;
}

/*
 * Hand generation @gen's vectors over a socket to a successor started as a
 * process of its own ("kvm-xfer"), and wait for the rest of the chain.
 * Returns the chain's exit status.
 */
static int socket_handoff(struct cpr_state *st, struct cpr_vectors *vs,
			  struct cpr_vm *vm, unsigned int nr,
			  unsigned long long gen)
{
	struct kvm_pred p = { .vs = vs, .vm = vm, .gen = gen };
	int status;
	pid_t pid;

	CPR_ASSERT_OK(give_to_successor(st, &p, nr, &pid),
		      "the socket handoff from VM #%llu to the successor of generation %llu",
		      gen, gen + 1);
	CPR_ASSERT_OK(wait_successor(pid, &status),
		      "waiting for the successor of generation %llu (pid %d)",
		      gen + 1, pid);
	return status;
}

/* The last generation cleans up; the others hand over, by exec or socket. */
static int next_generation(struct cpr_state *st, struct cpr_vectors *vs,
			   struct cpr_vm *vm, unsigned int nr,
			   unsigned long long gen, bool socket)
{
	if (gen == GENERATIONS) {
		cpr_vectors_free(vs, true);
		cpr_vm_destroy(vm);
		cpr_state_free(st);
		return 0;
	}
	context(nr, socket, gen, "handing over");
	if (socket)
		_exit(socket_handoff(st, vs, vm, nr, gen));
	prepare_handoff(vs, vm, gen, way_into(gen + 1));
	CPR_ASSERT_OK(exec_next(st, nr, way_into(gen + 1)),
		      "exec into generation %llu", gen + 1);
	CPR_FAIL("exec into generation %llu returned without an error", gen + 1);
}

static int successor_kvm(const char *arg)
{
	struct cpr_resume_info info;
	struct cpr_vectors *vs;
	struct cpr_vm *vm;
	unsigned int nr = atoi(arg);
	const char *comma = strchr(arg, ',');
	enum handoff_way way = comma ? atoi(comma + 1) : WAY_VECTORS;
	bool fast = way != WAY_VECTORS;

	test_begin();
	cpr_test_context("%u vectors, exec handoffs, a successor (%s)", nr,
			 way_names[way]);
	take_over(&info, fast);
	context(nr, false, info.generation, way_names[way]);
	CPR_ASSERT_EQ(way, way_into(info.generation),
		      "generation %llu came the wrong way",
		      (unsigned long long)info.generation);
	CPR_ASSERT_OK(cpr_vm_create(&vm, 1), "creating VM #%llu",
		      (unsigned long long)info.generation);
	vs = generation_checks(&info, vm, nr, way, fast);
	return next_generation(info.st, vs, vm, nr, info.generation, false);
}

/* Socket handoff, the successor's side. */
struct kx_succ {
	unsigned int nr;
	struct cpr_vm *vm;
	struct cpr_vectors *vs;
	struct cpr_resume_info info;
};

static int kx_prepare(struct cpr_state *st, void *arg)
{
	struct kx_succ *x = arg;

	(void)st;
	return cpr_vm_create(&x->vm, 1);
}

static int kx_attach(struct cpr_state *st, void *arg)
{
	struct kx_succ *x = arg;

	x->info.st = st;
	if (cpr_state_get_u64(st, CPR_SEC_GENERATION, &x->info.generation) ||
	    cpr_state_get_u64(st, CPR_SEC_HANDOFF_START,
			      &x->info.handoff_start_ns))
		return cpr_err(-EBADMSG, "the received state has no generation or handoff start");
	context(x->nr, true, x->info.generation, way_names[WAY_VECTORS]);
	x->vs = generation_checks(&x->info, x->vm, x->nr, WAY_VECTORS, false);
	return 0;
}

static int take_from_predecessor(const char *path, struct kx_succ *x,
				 struct cpr_state **st)
{
	const struct cpr_xfer_take_ops ops = {
		.prepare = kx_prepare,
		.attach = kx_attach,
	};

	return cpr_xfer_take(path, 20000, st, &ops, x);
}

static int successor_kvm_xfer(const char *path, const char *arg)
{
	struct kx_succ x = { .nr = atoi(arg) };
	struct cpr_state *st = NULL;

	/* A predecessor whose check failed mid-handoff takes this one along. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	test_begin();
	cpr_test_context("%u vectors, socket handoffs, a successor", x.nr);
	CPR_ASSERT_OK(take_from_predecessor(path, &x, &st),
		      "the socket handoff, successor side");
	return next_generation(st, x.vs, x.vm, x.nr, x.info.generation, true);
}

FIXTURE(kvm_cpr) {
	struct cpr_state *st;
	struct cpr_vectors *vs;
	struct cpr_vm *vm;
};

FIXTURE_VARIANT(kvm_cpr) {
	unsigned int nr;
	bool socket;	/* every handoff by the socket mode, not exec */
};

FIXTURE_VARIANT_ADD(kvm_cpr, one_vector) {
	.nr = 1,
};

FIXTURE_VARIANT_ADD(kvm_cpr, vectors_64) {
	.nr = 64,
};

FIXTURE_VARIANT_ADD(kvm_cpr, vectors_2048) {
	.nr = 2048,
};

FIXTURE_VARIANT_ADD(kvm_cpr, socket_one_vector) {
	.nr = 1,
	.socket = true,
};

FIXTURE_VARIANT_ADD(kvm_cpr, socket_vectors_64) {
	.nr = 64,
	.socket = true,
};

FIXTURE_VARIANT_ADD(kvm_cpr, socket_vectors_2048) {
	.nr = 2048,
	.socket = true,
};

FIXTURE_SETUP(kvm_cpr)
{
	test_begin();
	context(variant->nr, variant->socket, 0, "setting up VM #0");
	self->st = cpr_state_new();
	CPR_ASSERT_TRUE(self->st, "allocating a CPR state");
	CPR_ASSERT_OK(cpr_vm_create(&self->vm, 1), "creating VM #0");
	CPR_ASSERT_OK(cpr_vectors_create(self->st, DEV, CPR_IRQ_MSIX,
					 variant->nr,
					 CPR_VEC_INTERRUPT | CPR_VEC_KVM,
					 &self->vs),
		      "creating %u vectors", variant->nr);
	CPR_ASSERT_OK(cpr_vectors_attach(self->vs, self->vm),
		      "routing %u vectors into VM #0 and assigning their irqfds",
		      variant->nr);
}

FIXTURE_TEARDOWN(kvm_cpr)
{
	/* Reached only when the test did not exec. */
	cpr_vectors_free(self->vs, true);
	cpr_vm_destroy(self->vm);
	cpr_state_free(self->st);
}

/*
 * A handoff given up after the relay took over: every vector is delivered
 * by the relay, then by its irqfd again.  Z was signalled while it had no
 * irqfd, which KVM injected when it got one back, leaving the count in the
 * eventfd: the deassign that starts the relay drops that count, and the
 * relay must not inject it once more.
 */
static void check_relay_round_trip(struct cpr_vectors *vs, struct cpr_vm *vm,
				   unsigned int z)
{
	CPR_ASSERT_OK(cpr_vectors_relay(vm, &vs, 1),
		      "handing VM #0's irqfds to the relay thread");
	usleep(2000);
	CPR_ASSERT_FALSE(irr_has(vm, 0, lapic_vec(vs, z)),
			 "vector %u was injected into VM #0 again by the relay: the count KVM left in its eventfd when it injected it on assign was still there after KVM_IRQFD deassign",
			 z);
	CPR_ASSERT_EQ(cpr_vm_nr_irqfds(vm), 0,
		      "irqfds left in VM #0 once the relay took every vector");
	check_every_vector(vs, vm, 0, true);
	CPR_ASSERT_OK(cpr_vectors_unrelay(vm),
		      "giving VM #0 its irqfds back (cpr_vectors_unrelay())");
	CPR_ASSERT_EQ(cpr_vm_nr_irqfds(vm), vs->nr,
		      "irqfds in VM #0 after cpr_vectors_unrelay()");
	check_every_vector(vs, vm, 0, false);
}

TEST_F_TIMEOUT(kvm_cpr, exec_replaces_vm_without_losing_interrupts, 120)
{
	unsigned int z = z_of(variant->nr);
	int status;

	context(variant->nr, variant->socket, 0, "VM #0 before the handoff");
	CPR_ASSERT_EQ(cpr_vm_routing_commits(self->vm), 1,
		      "%u vectors must be routed into VM #0 with ONE KVM_SET_GSI_ROUTING",
		      variant->nr);
	check_every_vector(self->vs, self->vm, 0, false);
	check_guest_takes(self->vs, self->vm, 0, 0);
	check_mask_and_unmask(self->vs, self->vm, 0, z);
	check_relay_round_trip(self->vs, self->vm, z);

	if (variant->socket) {
		status = socket_handoff(self->st, self->vs, self->vm,
					variant->nr, 0);
		CPR_ASSERT_EQ(status, 0,
			      "the chain of socket successors after VM #0 failed (their failure is above)");
		return;
	}
	context(variant->nr, false, 0, "handing over");
	prepare_handoff(self->vs, self->vm, 0, way_into(1));
	CPR_ASSERT_OK(exec_next(self->st, variant->nr, way_into(1)),
		      "exec into generation 1");
	CPR_FAIL("exec into generation 1 returned without an error");
}

static int claim_expect_fail(struct cpr_state *st, struct cpr_vm *vm,
			     struct cpr_vectors **claimed, int *ret)
{
	*ret = cpr_vectors_claim(st, DEV, vm, claimed);
	return *ret ? 0 : cpr_err(-EEXIST, "the claim succeeded");
}

/*
 * A successor may attach inherited eventfds before it checked their kinds
 * (CPR_RESUME_DEFER_CHECKS): KVM_IRQFD refuses another kind of file, and
 * the claim must then name the record, undo what it did and leave VM #1
 * without routes or irqfds, whether the bad one comes first or late.
 */
static void claim_with_bad_fd(unsigned int nr, unsigned int bad)
{
	struct cpr_state *st = cpr_state_new();
	struct cpr_vectors *vs, *claimed = NULL;
	struct cpr_vm *vm;
	char want[160];
	int mfd, ret;

	cpr_test_context("%u vectors, vector %u's irqfd eventfd replaced by a memfd",
			 nr, bad);
	CPR_ASSERT_TRUE(st, "allocating a CPR state");
	CPR_ASSERT_OK(cpr_vectors_create(st, DEV, CPR_IRQ_MSIX, nr,
					 CPR_VEC_INTERRUPT | CPR_VEC_KVM, &vs),
		      "creating %u vectors", nr);
	CPR_ASSERT_OK(cpr_vectors_save(vs), "saving the vectors' section");
	/* The bad vector's irqfd number now holds a memfd. */
	CPR_ASSERT_SYS(mfd = memfd_create("not_an_eventfd", MFD_CLOEXEC),
		       "memfd_create");
	CPR_ASSERT_SYS(dup2(mfd, vs->v[bad].kvm_fd), "dup2 of the memfd onto fd %d",
		       vs->v[bad].kvm_fd);
	close(mfd);

	CPR_ASSERT_OK(cpr_vm_create(&vm, 1), "creating VM #1");
	CPR_ASSERT_OK(claim_expect_fail(st, vm, &claimed, &ret),
		      "claiming %u vectors, one fd a memfd, must fail", nr);
	CPR_ASSERT_EQ(ret, -EINVAL,
		      "the claim must fail with KVM_IRQFD's -EINVAL for a file that is not an eventfd");
	CPR_ASSERT_TRUE(!claimed, "a failed claim handed out vectors");
	snprintf(want, sizeof(want),
		 "its fd '%s_%s'[%u] = %d is a memfd, not an eventfd (wrong kind)",
		 DEV, CPR_NOTIFY_KVM, bad, vs->v[bad].kvm_fd);
	CPR_ASSERT_TRUE(strstr(cpr_last_error(), want),
			"the claim's message \"%s\" does not say \"%s\"",
			cpr_last_error(), want);
	CPR_ASSERT_EQ(cpr_vm_nr_routes(vm), 0,
		      "MSI routes left in VM #1 by a failed claim");
	CPR_ASSERT_EQ(cpr_vm_nr_irqfds(vm), 0,
		      "irqfds left in VM #1 by a failed claim");
	cpr_vm_destroy(vm);
	cpr_vectors_free(vs, true);
	cpr_state_free(st);
}

TEST(claim_names_an_inherited_fd_of_another_kind)
{
	test_begin();
	claim_with_bad_fd(4, 2);
	claim_with_bad_fd(512, 500);
}

static int exec_expect_fail(struct cpr_state *st, const char *path,
			    char *const argv[], int *ret)
{
	*ret = cpr_exec(st, path, argv);
	return *ret < 0 ? 0 : cpr_err(-EEXIST, "cpr_exec() returned %d", *ret);
}

/*
 * An exec that fails (a successor binary missing, or not executable) after
 * the vectors were detached: the predecessor re-attaches them to its own
 * VM and must deliver everything - the vector left pending in its LAPIC,
 * the one raised in the blackout, and new raises on every vector.
 */
static void failed_exec_keeps_delivering(const char *bad)
{
	struct cpr_state *st = cpr_state_new();
	struct cpr_vectors *vs;
	struct roles r = roles_of(8);
	struct cpr_vm *vm;
	char *argv[2];
	int ret;

	argv[0] = (char *)bad;
	argv[1] = NULL;
	cpr_test_context("8 vectors, an exec of %s that fails", bad);
	CPR_ASSERT_TRUE(st, "allocating a CPR state");
	CPR_ASSERT_OK(cpr_vm_create(&vm, 1), "creating VM #0");
	CPR_ASSERT_OK(cpr_vectors_create(st, DEV, CPR_IRQ_MSIX, 8,
					 CPR_VEC_INTERRUPT | CPR_VEC_KVM, &vs),
		      "creating 8 vectors");
	CPR_ASSERT_OK(cpr_vectors_attach(vs, vm),
		      "routing 8 vectors into VM #0 and assigning their irqfds");
	check_every_vector(vs, vm, 0, false);
	prepare_handoff(vs, vm, 0, WAY_VECTORS);

	CPR_ASSERT_OK(exec_expect_fail(st, bad, argv, &ret),
		      "an exec of %s must fail", bad);
	note("# exec of %s: %s\n", bad, cpr_last_error());

	/* Roll back: the same VM, its irqfds again. */
	CPR_ASSERT_OK(cpr_vectors_reattach(vs),
		      "re-attaching the vectors to VM #0 after the failed exec");
	CPR_ASSERT_TRUE(irr_wait(vm, 0, lapic_vec(vs, r.p), IRR_WAIT_MS),
			"vector %d (P), pending in VM #0's LAPIC as 0x%x, was lost by the failed exec; the IRR holds %s",
			r.p, lapic_vec(vs, r.p), irr_text(vm));
	CPR_ASSERT_TRUE(irr_wait(vm, 0, lapic_vec(vs, r.b), IRR_WAIT_MS),
			"KVM did not inject the interrupt already pending on vector %d's eventfd when its irqfd was assigned in VM #0 again after the failed exec (B, raised in the blackout; LAPIC vector 0x%x; the IRR holds %s)",
			r.b, lapic_vec(vs, r.b), irr_text(vm));
	CPR_ASSERT_OK(cpr_vectors_unmask(vs, r.m),
		      "unmasking vector %d (M) in VM #0", r.m);
	CPR_ASSERT_TRUE(irr_wait(vm, 0, lapic_vec(vs, r.m), IRR_WAIT_MS),
			"vector %d (M), masked and pending, did not arrive in VM #0 as 0x%x on unmask after the failed exec; the IRR holds %s",
			r.m, lapic_vec(vs, r.m), irr_text(vm));
	check_every_vector(vs, vm, 0, false);
	cpr_vectors_free(vs, true);
	cpr_vm_destroy(vm);
	cpr_state_free(st);
}

TEST(failed_exec_rolls_back_and_keeps_delivering)
{
	char path[] = "/tmp/vfio_cpr_noexec.XXXXXX";
	int fd;

	test_begin();
	failed_exec_keeps_delivering("/nonexistent/vfio-cpr-successor");
	CPR_ASSERT_SYS(fd = mkstemp(path), "mkstemp %s", path);
	close(fd);	/* mode 0600: not executable */
	failed_exec_keeps_delivering(path);
	unlink(path);
}

/* KVM_IRQFD of @fd in @vm: 0 with *@refused for EBUSY, -errno otherwise. */
static int irqfd_probe(struct cpr_vm *vm, int fd, unsigned int gsi,
		       bool *refused)
{
	int ret = cpr_vm_irqfd_assign(vm, fd, gsi, -1);

	*refused = ret == -EBUSY;
	return *refused ? 0 : ret;
}

/* VM #@no routes vector @i of @vs (message as in @vs) on GSI @gsi. */
static void route_like(struct cpr_vm *vm, unsigned long long no,
		       const struct cpr_vectors *vs, unsigned int i,
		       unsigned int gsi)
{
	CPR_ASSERT_OK(cpr_vm_gsi_claim(vm, gsi), "claiming GSI %u in VM #%llu",
		      gsi, no);
	CPR_ASSERT_OK(cpr_vm_route_msi(vm, gsi, &vs->v[i].msg),
		      "an MSI route for vector %u in VM #%llu", i, no);
	CPR_ASSERT_OK(cpr_vm_routes_commit(vm), "routing VM #%llu", no);
}

/*
 * One eventfd and two VMs, under either kernel rule: Linux 6.17 and later
 * refuse an eventfd that already backs an irqfd (in any VM) with EBUSY,
 * older kernels let it back both.  What CPR needs holds under both, and is
 * checked: an eventfd whose irqfd was deassigned, or whose VM was released,
 * is free for another VM, KVM injects there what it holds, and a second
 * VM's KVM_IRQFD, refused or not, leaves the first VM's irqfd working.
 */
TEST(one_eventfd_in_two_vms)
{
	struct cpr_state *st = cpr_state_new();
	struct cpr_vm *vm0, *vm1, *vm2;
	struct cpr_vectors *vs;
	bool refused;
	int gsi;

	test_begin();
	cpr_test_context("2 vectors, one eventfd in two VMs");
	CPR_ASSERT_TRUE(st, "allocating a CPR state");
	CPR_ASSERT_OK(cpr_vm_create(&vm0, 1), "creating VM #0");
	CPR_ASSERT_OK(cpr_vm_create(&vm1, 1), "creating VM #1");
	CPR_ASSERT_OK(cpr_vectors_create(st, DEV, CPR_IRQ_MSIX, 2,
					 CPR_VEC_KVM, &vs),
		      "creating 2 vectors");
	CPR_ASSERT_OK(cpr_vectors_attach(vs, vm0),
		      "routing 2 vectors into VM #0 and assigning their irqfds");
	check_every_vector(vs, vm0, 0, false);

	/* Vector 1 moves to VM #1 as a handoff moves it: deassign, assign. */
	CPR_ASSERT_OK(cpr_vectors_mask(vs, 1),
		      "masking vector 1: KVM_IRQFD deassign in VM #0");
	raise_vector(vs, 1);
	CPR_ASSERT_TRUE(count_held(vs, 1),
			"KVM_IRQFD deassign did not detach: vector 1, its irqfd deassigned from VM #0, was raised and its eventfd's count was taken at once, as only an irqfd takes it; VM #0's IRR holds %s",
			irr_text(vm0));
	gsi = vs->v[1].virq;
	route_like(vm1, 1, vs, 1, gsi);
	CPR_ASSERT_OK(cpr_vm_irqfd_assign(vm1, vs->v[1].kvm_fd, gsi, -1),
		      "KVM_IRQFD of vector 1's eventfd in VM #1 after its irqfd in VM #0 was deassigned: the eventfd must be free under either rule");
	CPR_ASSERT_TRUE(irr_wait(vm1, 1, lapic_vec(vs, 1), IRR_WAIT_MS),
			"KVM did not inject the interrupt already pending on vector 1's eventfd when its irqfd was assigned in VM #1 (LAPIC vector 0x%x; the IRR holds %s)",
			lapic_vec(vs, 1), irr_text(vm1));
	lapic_clear(vm1, 1);
	raise_vector(vs, 1);
	CPR_ASSERT_TRUE(irr_wait(vm1, 1, lapic_vec(vs, 1), IRR_WAIT_MS),
			"vector 1, raised through its irqfd (GSI %d), did not arrive in VM #1's LAPIC as 0x%x, the vector its MSI route names; the IRR holds %s",
			gsi, lapic_vec(vs, 1), irr_text(vm1));
	CPR_ASSERT_FALSE(irr_has(vm0, 0, lapic_vec(vs, 1)),
			 "KVM_IRQFD deassign did not detach: vector 1, its irqfd in VM #0 deassigned and one assigned in VM #1, arrived in VM #0 as 0x%x",
			 lapic_vec(vs, 1));

	/* VM #1 released: its irqfd goes with its fd, the eventfd is free. */
	CPR_ASSERT_OK(cpr_vm_quiesce(vm1), "releasing VM #1 (closing its fd)");
	lapic_clear(vm1, 1);
	raise_vector(vs, 1);
	CPR_ASSERT_TRUE(count_held(vs, 1),
			"KVM kept the irqfds of a released VM: vector 1, raised after VM #1's fd was closed, had its eventfd's count taken at once; VM #1's IRR holds %s",
			irr_text(vm1));
	CPR_ASSERT_FALSE(irr_has(vm1, 1, lapic_vec(vs, 1)),
			 "KVM kept the irqfds of a released VM: vector 1, raised after VM #1's fd was closed, arrived in VM #1's LAPIC as 0x%x",
			 lapic_vec(vs, 1));
	cpr_vm_destroy(vm1);
	CPR_ASSERT_OK(cpr_vectors_unmask(vs, 1),
		      "unmasking vector 1: KVM_IRQFD assign in VM #0 again, VM #1 released");
	CPR_ASSERT_TRUE(irr_wait(vm0, 0, lapic_vec(vs, 1), IRR_WAIT_MS),
			"KVM did not inject the interrupt already pending on vector 1's eventfd when its irqfd was assigned in VM #0 again (LAPIC vector 0x%x; the IRR holds %s)",
			lapic_vec(vs, 1), irr_text(vm0));
	check_every_vector(vs, vm0, 0, false);

	/* Vector 0's eventfd backs an irqfd in VM #0: which rule is this? */
	CPR_ASSERT_OK(cpr_vm_create(&vm2, 1), "creating VM #2");
	CPR_ASSERT_OK(irqfd_probe(vm2, vs->v[0].kvm_fd, vs->v[0].virq, &refused),
		      "KVM_IRQFD of vector 0's eventfd, which backs an irqfd in VM #0, in VM #2 must succeed (before Linux 6.17) or fail with EBUSY (6.17 and later)");
	note("# kernel rule: one eventfd in two VMs' irqfds %s\n", refused ?
	     "refused with EBUSY (Linux 6.17 and later)" :
	     "allowed (before Linux 6.17)");
	if (refused) {
		/* The refusal must not have touched VM #0's irqfd. */
		check_every_vector(vs, vm0, 0, false);
	} else {
		CPR_ASSERT_OK(cpr_vm_irqfd_deassign(vm2, vs->v[0].kvm_fd,
						    vs->v[0].virq),
			      "KVM_IRQFD deassign of vector 0's eventfd in VM #2");
		lapic_clear(vm0, 0);
		raise_vector(vs, 0);
		CPR_ASSERT_TRUE(irr_wait(vm0, 0, lapic_vec(vs, 0), IRR_WAIT_MS),
				"KVM_IRQFD deassign did not detach: vector 0's irqfd in VM #2 deassigned, VM #0's irqfd on the same eventfd did not deliver it as 0x%x; VM #0's IRR holds %s",
				lapic_vec(vs, 0), irr_text(vm0));
	}
	cpr_vm_destroy(vm2);
	check_every_vector(vs, vm0, 0, false);
	cpr_vectors_free(vs, true);
	cpr_vm_destroy(vm0);
	cpr_state_free(st);
}

/*
 * A vCPU thread that runs the real-mode guest and counts what it takes,
 * per LAPIC vector, while the test raises from outside.  Nothing clears
 * the LAPIC from outside meanwhile: the guest EOIs itself.
 */
struct taker {
	struct cpr_vm *vm;
	pthread_t thread;
	bool stop;
	unsigned int taken[256];
	int err;
	char errmsg[CPR_ERRMSG_MAX];
};

static void *taker_run(void *arg)
{
	struct taker *t = arg;
	unsigned int vec;
	int ret;

	while (!__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE)) {
		ret = cpr_vm_guest_wait(t->vm, 0, 100, &vec);
		if (ret == -ETIMEDOUT)
			continue;
		if (ret) {
			snprintf(t->errmsg, sizeof(t->errmsg), "%s",
				 cpr_last_error());
			__atomic_store_n(&t->err, ret, __ATOMIC_RELEASE);
			break;
		}
		__atomic_add_fetch(&t->taken[vec & 0xff], 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static unsigned int taken(struct taker *t, unsigned int vec)
{
	return __atomic_load_n(&t->taken[vec], __ATOMIC_ACQUIRE);
}

static void taker_check(struct taker *t, unsigned long long no)
{
	CPR_ASSERT_EQ(__atomic_load_n(&t->err, __ATOMIC_ACQUIRE), 0,
		      "the vCPU of VM #%llu stopped taking interrupts: %s", no,
		      t->errmsg);
}

/* Whether the guest has taken LAPIC vector @vec @want times within @ms. */
static bool taken_reaches(struct taker *t, unsigned long long no,
			  unsigned int vec, unsigned int want, int ms)
{
	__u64 end = cpr_now_ns() + (__u64)ms * 1000000;

	do {
		taker_check(t, no);
		if (taken(t, vec) >= want)
			return true;
		usleep(50);
	} while (cpr_now_ns() < end);
	return false;
}

static void taker_start(struct taker *t, struct cpr_vm *vm)
{
	memset(t, 0, sizeof(*t));
	t->vm = vm;
	CPR_ASSERT_OK(cpr_vm_guest_setup(vm), "loading the real-mode guest");
	CPR_ASSERT_EQ(pthread_create(&t->thread, NULL, taker_run, t), 0,
		      "starting the vCPU thread");
}

static void taker_stop(struct taker *t)
{
	__atomic_store_n(&t->stop, true, __ATOMIC_RELEASE);
	pthread_join(t->thread, NULL);
}

/* The guest takes each vector, raised once, exactly once. */
static void check_every_vector_taken(struct cpr_vectors *vs, struct taker *t,
				     unsigned long long no)
{
	unsigned int i, vec, before;

	for (i = 0; i < vs->nr; i++) {
		vec = lapic_vec(vs, i);
		before = taken(t, vec);
		raise_vector(vs, i);
		CPR_ASSERT_TRUE(taken_reaches(t, no, vec, before + 1,
					      GUEST_WAIT_MS),
				"vector %u, raised once, was not taken by VM #%llu's vCPU as 0x%x within %d ms",
				i, no, vec, GUEST_WAIT_MS);
		usleep(2000);
		CPR_ASSERT_EQ(taken(t, vec), before + 1,
			      "vector %u, raised once, was taken more than once by VM #%llu's vCPU",
			      i, no);
	}
}

/*
 * cpr_vectors_relay() called from a thread that runs on @cpu only and
 * under SCHED_IDLE: the relay thread it starts inherits both, so it reads
 * an eventfd only when nothing else on that CPU can run.
 */
struct idle_relay {
	struct cpr_vm *vm;
	struct cpr_vectors *vs;
	int cpu;
	int ret;
	char msg[CPR_ERRMSG_MAX];
};

static void *idle_relay_run(void *arg)
{
	struct idle_relay *ir = arg;
	struct sched_param sp = { 0 };
	cpu_set_t cpus;

	CPU_ZERO(&cpus);
	CPU_SET(ir->cpu, &cpus);
	ir->ret = -pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
	if (!ir->ret)
		ir->ret = -pthread_setschedparam(pthread_self(), SCHED_IDLE,
						 &sp);
	if (ir->ret) {
		snprintf(ir->msg, sizeof(ir->msg),
			 "running on CPU %d under SCHED_IDLE: %s", ir->cpu,
			 strerror(-ir->ret));
		return NULL;
	}
	ir->ret = cpr_vectors_relay(ir->vm, &ir->vs, 1);
	snprintf(ir->msg, sizeof(ir->msg), "%s", cpr_last_error());
	return NULL;
}

static void relay_at_idle(struct cpr_vectors *vs, struct cpr_vm *vm, int cpu)
{
	struct idle_relay ir = { .vm = vm, .vs = vs, .cpu = cpu };
	pthread_t th;

	CPR_ASSERT_EQ(pthread_create(&th, NULL, idle_relay_run, &ir), 0,
		      "starting the thread that starts the relay");
	pthread_join(th, NULL);
	CPR_ASSERT_EQ(ir.ret, 0,
		      "handing VM #0's irqfds to a relay thread on CPU %d under SCHED_IDLE: %s",
		      cpu, ir.msg);
}

/* The first CPU this thread may run on; the thread is pinned there. */
static int pin_here(void)
{
	cpu_set_t cpus;
	int cpu;

	CPR_ASSERT_EQ(pthread_getaffinity_np(pthread_self(), sizeof(cpus),
					     &cpus), 0,
		      "reading the test thread's CPU affinity");
	for (cpu = 0; cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &cpus); cpu++)
		;
	CPR_ASSERT_LT(cpu, CPU_SETSIZE, "the test thread may run on no CPU");
	CPU_ZERO(&cpus);
	CPU_SET(cpu, &cpus);
	CPR_ASSERT_EQ(pthread_setaffinity_np(pthread_self(), sizeof(cpus),
					     &cpus), 0,
		      "pinning the test thread to CPU %d", cpu);
	return cpu;
}

#define UNRELAY_VECTORS	4
#define UNRELAY_CYCLES	20
/* How long a second delivery of one raise is waited for. */
#define DOUBLE_WATCH_MS	20

/*
 * A handoff given up under the relay: cpr_vectors_unrelay() must stop the
 * relay thread before it gives the vectors their irqfds back.  In the
 * other order a signal raised just before, which the thread has been woken
 * for but not read yet, is injected twice: by KVM, which finds the count
 * in the eventfd when the irqfd is assigned (and leaves it there), and by
 * the thread, which reads that count right after.  Stopping first, the
 * thread reads and injects it, and KVM finds nothing on assign; or the
 * thread stops without it, and KVM injects it on assign: once either way.
 *
 * The window is made certain rather than likely: the guest's vCPU thread,
 * this thread and the relay thread share one CPU, the relay thread under
 * SCHED_IDLE, so that a signal raised here right before the unrelay is
 * not read by the relay until this thread blocks (in the unrelay's join
 * of the thread), and a second injection comes only after the vCPU has
 * taken (and EOIed) the first.  Each cycle raises one vector once; the
 * guest must take it exactly once.
 */
TEST(unrelay_delivers_each_signal_once)
{
	struct cpr_state *st = cpr_state_new();
	unsigned int k, i, vec, before;
	struct cpr_vectors *vs;
	struct cpr_vm *vm;
	struct taker t;
	int cpu;

	test_begin();
	cpr_test_context("%u vectors, relay and unrelay of VM #0, %u cycles",
			 UNRELAY_VECTORS, UNRELAY_CYCLES);
	CPR_ASSERT_TRUE(st, "allocating a CPR state");
	cpu = pin_here();
	CPR_ASSERT_OK(cpr_vm_create(&vm, 1), "creating VM #0");
	CPR_ASSERT_OK(cpr_vectors_create(st, DEV, CPR_IRQ_MSIX,
					 UNRELAY_VECTORS, CPR_VEC_KVM, &vs),
		      "creating %u vectors", UNRELAY_VECTORS);
	CPR_ASSERT_OK(cpr_vectors_attach(vs, vm),
		      "routing %u vectors into VM #0 and assigning their irqfds",
		      UNRELAY_VECTORS);
	check_every_vector(vs, vm, 0, false);
	check_mask_and_unmask(vs, vm, 0, 0);

	taker_start(&t, vm);
	check_every_vector_taken(vs, &t, 0);
	for (k = 0; k < UNRELAY_CYCLES; k++) {
		i = k % vs->nr;
		vec = lapic_vec(vs, i);
		before = taken(&t, vec);
		relay_at_idle(vs, vm, cpu);
		raise_vector(vs, i);
		CPR_ASSERT_OK(cpr_vectors_unrelay(vm),
			      "giving VM #0 its irqfds back (cpr_vectors_unrelay()), cycle %u",
			      k);
		CPR_ASSERT_TRUE(taken_reaches(&t, 0, vec, before + 1,
					      GUEST_WAIT_MS),
				"vector %u, raised once right before cpr_vectors_unrelay() (cycle %u), was lost: VM #0's vCPU did not take it as 0x%x within %d ms",
				i, k, vec, GUEST_WAIT_MS);
		usleep(DOUBLE_WATCH_MS * 1000);
		CPR_ASSERT_EQ(taken(&t, vec), before + 1,
			      "vector %u, raised once right before cpr_vectors_unrelay() (cycle %u), was taken by VM #0's vCPU %u times: KVM injected it when its irqfd came back and the relay thread, still running, injected it again (the irqfd re-attached before the relay stopped)",
			      i, k, taken(&t, vec) - before);
	}
	check_every_vector_taken(vs, &t, 0);
	taker_stop(&t);
	taker_check(&t, 0);
	note("# %u cycles of relay, raise, unrelay: each raise taken once\n",
	     UNRELAY_CYCLES);
	cpr_vectors_free(vs, true);
	cpr_vm_destroy(vm);
	cpr_state_free(st);
}

#define EOI_RACE_MS	3000
#define EOI_RACE_RAISES	5000
/* Longest a raise may take to be taken before it counts as lost. */
#define EOI_LOST_MS	2000

/*
 * Raises vector @b, one at a time, each once the guest took the one
 * before, a few microseconds apart at random, for EOI_RACE_MS or
 * EOI_RACE_RAISES raises.
 */
struct b_raiser {
	struct cpr_vectors *vs;
	unsigned int b;
	unsigned int *taken_b;
	unsigned int raised;
	bool lost;
	bool done;
	int err;	/* errno of a failed write() */
};

static void *b_raise_run(void *arg)
{
	struct b_raiser *br = arg;
	__u64 end = cpr_now_ns() + EOI_RACE_MS * 1000000ull, one = 1, until;
	unsigned int seed = getpid(), raised = 0;

	while (raised < EOI_RACE_RAISES && cpr_now_ns() < end) {
		if (write(br->vs->v[br->b].kvm_fd, &one, sizeof(one)) !=
		    sizeof(one)) {
			br->err = errno;
			break;
		}
		__atomic_store_n(&br->raised, ++raised, __ATOMIC_RELEASE);
		until = cpr_now_ns() + EOI_LOST_MS * 1000000ull;
		while (__atomic_load_n(br->taken_b, __ATOMIC_ACQUIRE) < raised &&
		       cpr_now_ns() < until)
			sched_yield();
		if (__atomic_load_n(br->taken_b, __ATOMIC_ACQUIRE) < raised) {
			br->lost = true;
			break;
		}
		until = cpr_now_ns() + (rand_r(&seed) % 50) * 1000ull;
		while (cpr_now_ns() < until)
			;
	}
	__atomic_store_n(&br->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * The guest takes interrupts in a loop (vector A, raised again each time
 * it was taken) while another thread raises vector B through its irqfd:
 * every raise of B must be taken, once.  cpr_vm_guest_wait() must not
 * acknowledge an interrupt by a KVM_GET_LAPIC/KVM_SET_LAPIC of the ISR
 * from outside: a B injected between the two is overwritten.
 */
TEST(guest_takes_every_interrupt_raised_meanwhile)
{
	struct cpr_state *st = cpr_state_new();
	unsigned int a_taken = 0, b_taken = 0, got, a, b;
	struct b_raiser br = { 0 };
	struct cpr_vectors *vs;
	struct cpr_vm *vm;
	pthread_t th;

	test_begin();
	cpr_test_context("2 vectors, the guest taking A in a loop while a thread raises B");
	CPR_ASSERT_TRUE(st, "allocating a CPR state");
	CPR_ASSERT_OK(cpr_vm_create(&vm, 1), "creating VM #0");
	CPR_ASSERT_OK(cpr_vectors_create(st, DEV, CPR_IRQ_MSIX, 2,
					 CPR_VEC_KVM, &vs),
		      "creating 2 vectors");
	CPR_ASSERT_OK(cpr_vectors_attach(vs, vm),
		      "routing 2 vectors into VM #0 and assigning their irqfds");
	check_every_vector(vs, vm, 0, false);
	CPR_ASSERT_OK(cpr_vm_guest_setup(vm), "loading the real-mode guest");
	a = lapic_vec(vs, 0);
	b = lapic_vec(vs, 1);

	br.vs = vs;
	br.b = 1;
	br.taken_b = &b_taken;
	raise_vector(vs, 0);
	CPR_ASSERT_EQ(pthread_create(&th, NULL, b_raise_run, &br), 0,
		      "starting the thread that raises vector 1 (B)");
	while (!__atomic_load_n(&br.done, __ATOMIC_ACQUIRE)) {
		CPR_ASSERT_OK(cpr_vm_guest_wait(vm, 0, GUEST_WAIT_MS, &got),
			      "VM #0's vCPU took nothing for %d ms after %u interrupts of vector 0 (A, raised again each time it is taken) and %u of vector 1 (B) of %u raised",
			      GUEST_WAIT_MS, a_taken, b_taken,
			      __atomic_load_n(&br.raised, __ATOMIC_RELAXED));
		if (got == a) {
			a_taken++;
			raise_vector(vs, 0);
		} else {
			CPR_ASSERT_EQ(got, b,
				      "VM #0's vCPU took LAPIC vector 0x%x; only 0x%x (A) and 0x%x (B) were raised",
				      got, a, b);
			__atomic_add_fetch(&b_taken, 1, __ATOMIC_RELEASE);
		}
	}
	pthread_join(th, NULL);
	CPR_ASSERT_EQ(br.err, 0,
		      "raising vector 1 (B): write() on eventfd %d failed: %s",
		      vs->v[1].kvm_fd, strerror(br.err));
	CPR_ASSERT_FALSE(br.lost,
			 "vector 1 (B, LAPIC vector 0x%x) was raised %u times through its irqfd while VM #0's vCPU took vector 0 (A) in a loop, and the vCPU took it %u times: raise %u was lost (an interrupt injected while the LAPIC is rewritten from outside, KVM_GET_LAPIC then KVM_SET_LAPIC, is overwritten)",
			 b, br.raised, b_taken, br.raised);
	CPR_ASSERT_EQ(b_taken, br.raised,
		      "vector 1 (B, LAPIC vector 0x%x) was taken more often than raised",
		      b);
	note("# vector B raised %u times while the guest took A %u times: each taken once\n",
	     br.raised, a_taken);
	cpr_vectors_free(vs, true);
	cpr_vm_destroy(vm);
	cpr_state_free(st);
}

int main(int argc, char **argv)
{
	cpr_test_successor_enter(argc, argv);
	cpr_test_raise_nofile();
	if (argc >= 4 && !strcmp(argv[1], CPR_TEST_SUCCESSOR) &&
	    !strcmp(argv[2], "kvm"))
		return successor_kvm(argv[3]);
	if (argc >= 5 && !strcmp(argv[1], CPR_TEST_SUCCESSOR) &&
	    !strcmp(argv[2], "kvm-xfer"))
		return successor_kvm_xfer(argv[3], argv[4]);
	if (access("/dev/kvm", R_OK | W_OK))
		cpr_test_skip_all("/dev/kvm not usable (%s): KVM tests need it",
				  strerror(errno));
	return test_harness_run(argc, argv);
}
