// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM instance replacement across a handoff, without VFIO.
 *
 * VM #0 gets N vectors (eventfd pairs) routed through irqfds and spread
 * over its vCPUs as a guest spreads its device's vectors (irq affinity):
 * vector i's MSI message names APIC id (3 * i + 1) % VCPUS, so that every
 * vCPU has some and each role below is on another one than vCPU 0.  The handoff - by
 * exec of this binary, or over a UNIX socket to a process of its own -
 * saves them in the state; the successor creates VM #1 with as many
 * vCPUs, claims the vectors from the state in one routing commit, and each
 * interrupt must arrive in the LAPIC of the vCPU its message names, as the
 * LAPIC vector its route names, and in no other vCPU's.
 *
 * Each TEST_F tells one story: it sets one scene in VM #0, hands over once
 * (three_generations_keep_delivering: three times) and the successor
 * checks one behaviour, so that `not ok` names what broke.  Every
 * successor also checks what all must hold: the claim attaches every
 * inherited eventfd at once (VM #0's irqfds on them are gone) and routes
 * every vector in ONE KVM_SET_GSI_ROUTING.
 *
 * The fixtures, each set up the same way (vm0_setup()), and their
 * variants:
 *   kvm_cpr         1, 64 and 2048 vectors, each by exec (irqfds relayed
 *                   ahead) and by the socket handoff: what must hold at
 *                   every size;
 *   kvm_cpr_mode    64 vectors, by exec (relayed) and by socket: what
 *                   holds whatever the way;
 *   kvm_cpr_way     64 vectors, by each way an exec handoff can be made -
 *                   relayed (cpr_vectors_relay(), then
 *                   cpr_vectors_detach_vm()), vector by vector
 *                   (cpr_vectors_detach()), the old VM released at once
 *                   (cpr_vectors_detach_vm()) - and by the socket handoff
 *                   (vector by vector, both VMs alive);
 *   kvm_cpr_relay   1, 64 and 2048 vectors relayed, by exec.
 *
 * Every check, in a test body, a helper or a successor, goes through
 * cpr_assert.h, and a failure names the KVM behaviour that broke, the
 * vector (index and LAPIC vector), the vCPU and the VM, so that whoever
 * changed KVM reads what to look at:
 *   "KVM did not inject the interrupt already pending on vector 2's
 *    eventfd when its irqfd was assigned in VM #1"
 *   "KVM_IRQFD deassign did not detach: ..."
 *   "KVM kept the irqfds of a released VM: ..."
 *   "vector 63 ... did not arrive in VM #0's LAPIC as 0x5f, the vector its
 *    MSI route names ..."
 *   "vector 5 (LAPIC vector 0x25) arrived in VM #1 on vCPU 2 (APIC id 2),
 *    not on vCPU 0, the APIC id its MSI message names ..."
 * Whether an irqfd still listens on an eventfd is seen at once, without
 * waiting for an injection: KVM's irqfd takes the eventfd's count in the
 * very write() that signals it, so a vector that must have no irqfd is
 * raised and its count must still be there (poll(), which takes nothing).
 *
 * Beside the stories, tests of their own (one vCPU each):
 *   claim_names_an_inherited_fd_of_another_kind;
 *   failed_exec_rolls_back_and_keeps_delivering;
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
#include <dirent.h>
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
/* vCPUs of the VMs the stories hand over between. */
#define VCPUS		4
#define XFER_TIMEOUT_MS	20000

/*
 * Roles in a handoff that carries everything at once (all on distinct
 * LAPIC vectors): P stays pending in the old VM's IRR, M is masked and
 * pending, B is raised in the blackout, S is raised while the irqfds are
 * being detached, R is raised under the relay, Z is masked, raised and
 * unmasked before the relay round trip, A is moved to another vCPU (a
 * new message written while masked) before the handoff.  With fewer than
 * 8 vectors every role is vector 0: a story plays one role at a time,
 * and the chain only B and A.
 */
struct roles {
	unsigned int p, m, b, s, r, z, a;
	bool distinct;
};

static struct roles roles_of(unsigned int nr)
{
	struct roles r = { 0 };

	if (nr >= 8) {
		r.p = nr - 1;
		r.m = 1;
		r.b = 2;
		r.s = nr - 2;
		r.r = 3;
		r.z = 4;
		r.a = 5;
		r.distinct = true;
	}
	return r;
}

/*
 * Where the test wants each vector, known to both sides of a handoff
 * without reading the state (whose messages are what is checked): over
 * @vcpus vCPUs, vector i at APIC id (3 * i + 1) % @vcpus, vector @a moved
 * on by one vCPU each of the @moves times it was reprogrammed.
 */
struct dests {
	unsigned int vcpus;
	int a;
	unsigned int moves;
};

static const struct dests one_vcpu = { .vcpus = 1, .a = -1 };

static unsigned int dest_of(const struct dests *d, unsigned int i)
{
	unsigned int moves = (int)i == d->a ? d->moves : 0;

	return (3 * i + 1 + moves) % d->vcpus;
}

enum handoff_mode { MODE_EXEC, MODE_SOCKET };

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

/* How the chain's handoff into generation @gen is made. */
static enum handoff_way way_into(unsigned long long gen)
{
	return gen == 1 ? WAY_RELAY : gen == 2 ? WAY_VECTORS : WAY_RELEASE;
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

/* The LAPIC vectors in one IRR, as text, at most 10. */
static size_t irr_print(char *buf, size_t size, const __u64 irr[4])
{
	unsigned int v, shown = 0;
	size_t n = 0;

	for (v = 0; v < 256 && n + 8 < size; v++) {
		if (!((irr[v / 64] >> (v % 64)) & 1))
			continue;
		if (shown++ == 10) {
			n += snprintf(buf + n, size - n, " ...");
			break;
		}
		n += snprintf(buf + n, size - n, "%s0x%02x", shown > 1 ? " " : "",
			      v);
	}
	if (!shown)
		n += snprintf(buf + n, size - n, "nothing");
	return n;
}

/*
 * The LAPIC vectors in @vm's IRRs, as text for a failure message: one
 * vCPU's as they are, several each named.  Two buffers, used in turn, so
 * that one message may show two VMs.
 */
static const char *irr_text(struct cpr_vm *vm)
{
	static char bufs[2][512];
	static unsigned int turn;
	char *buf = bufs[turn++ % 2];
	unsigned int c, nr = cpr_vm_nr_vcpus(vm);
	size_t n = 0;
	__u64 irr[4];

	buf[0] = '\0';
	for (c = 0; c < nr && n + 64 < sizeof(bufs[0]); c++) {
		if (nr > 1)
			n += snprintf(buf + n, sizeof(bufs[0]) - n, "%svCPU %u: ",
				      c ? "; " : "", c);
		if (cpr_vm_lapic_irr(vm, c, irr))
			n += snprintf(buf + n, sizeof(bufs[0]) - n,
				      "(unreadable)");
		else
			n += irr_print(buf + n, sizeof(bufs[0]) - n, irr);
	}
	return buf;
}

static int irr_test(struct cpr_vm *vm, unsigned int vcpu, unsigned int vec,
		    int *set)
{
	int ret = cpr_vm_lapic_irr_test(vm, vcpu, vec);

	if (ret < 0)
		return ret;
	*set = ret;
	return 0;
}

/* Whether LAPIC vector @vec is in the IRR of VM #@no's vCPU @vcpu now. */
static bool irr_on(struct cpr_vm *vm, unsigned long long no,
		   unsigned int vcpu, unsigned int vec)
{
	int set;

	CPR_ASSERT_OK(irr_test(vm, vcpu, vec, &set),
		      "reading the LAPIC IRR of VM #%llu's vCPU %u for 0x%x", no,
		      vcpu, vec);
	return set;
}

/* The first vCPU of VM #@no whose IRR holds @vec, or -1. */
static int irr_where(struct cpr_vm *vm, unsigned long long no,
		     unsigned int vec)
{
	unsigned int c;

	for (c = 0; c < cpr_vm_nr_vcpus(vm); c++)
		if (irr_on(vm, no, c, vec))
			return c;
	return -1;
}

/* Whether LAPIC vector @vec is in any IRR of VM #@no now. */
static bool irr_has(struct cpr_vm *vm, unsigned long long no, unsigned int vec)
{
	return irr_where(vm, no, vec) >= 0;
}

/*
 * Whether LAPIC vector @vec shows in any IRR of VM #@no within @ms (an
 * eventfd signalled before its irqfd was attached is injected by a kernel
 * worker, a little after the attach).
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

/*
 * Whether vector @i of @vs shows within @ms (0: now) in the IRR of VM
 * #@no's vCPU that @d wants it on, the APIC id its message was given,
 * as the LAPIC vector its message names.  Found there, it must be in no
 * other vCPU's IRR; found only on another vCPU, its destination was lost:
 * both fail here, naming the vector, the vCPUs and the VM.  Found nowhere:
 * false, for the caller to say what that means.
 */
static bool irr_wait_dest(struct cpr_vm *vm, unsigned long long no,
			  const struct cpr_vectors *vs, unsigned int i,
			  const struct dests *d, int ms)
{
	unsigned int vec = lapic_vec(vs, i), dest = dest_of(d, i), c;
	__u64 end = cpr_now_ns() + (__u64)ms * 1000000;
	bool there;
	int other;

	for (;;) {
		there = irr_on(vm, no, dest, vec);
		if (there || cpr_now_ns() >= end)
			break;
		usleep(20);
	}
	if (!there) {
		other = irr_where(vm, no, vec);
		CPR_ASSERT_LT(other, 0,
			      "vector %u (LAPIC vector 0x%x) arrived in VM #%llu on vCPU %d (APIC id %d), not on vCPU %u, the APIC id its MSI message names (address 0x%08x as claimed): its destination was lost; the IRRs hold %s",
			      i, vec, no, other, other, dest,
			      vs->v[i].msg.addr_lo, irr_text(vm));
		return false;
	}
	for (c = 0; c < cpr_vm_nr_vcpus(vm); c++)
		CPR_ASSERT_FALSE(c != dest && irr_on(vm, no, c, vec),
				 "vector %u (LAPIC vector 0x%x) arrived in VM #%llu on vCPU %u, the APIC id its MSI message names, and also on vCPU %u (APIC id %u); the IRRs hold %s",
				 i, vec, no, dest, c, c, irr_text(vm));
	return true;
}

/* Every LAPIC of VM #@no emptied before a raise: from outside, on purpose. */
static void lapic_clear(struct cpr_vm *vm, unsigned long long no)
{
	unsigned int c;

	for (c = 0; c < cpr_vm_nr_vcpus(vm); c++)
		CPR_ASSERT_OK(cpr_vm_lapic_clear(vm, c),
			      "clearing the LAPIC of VM #%llu's vCPU %u from outside",
			      no, c);
}

/*
 * Raise every vector and see each arrive in VM #@no's LAPIC, one at a
 * time: through its irqfd, as the LAPIC vector its MSI route names, or,
 * @relayed, read from its eventfd and injected by the relay thread; on
 * the vCPU @d wants it on, and on no other.
 */
static void check_every_vector_at(struct cpr_vectors *vs, struct cpr_vm *vm,
				  unsigned long long no, bool relayed,
				  const struct dests *d)
{
	unsigned int i;

	lapic_clear(vm, no);
	for (i = 0; i < vs->nr; i++) {
		raise_vector(vs, i);
		if (relayed)
			CPR_ASSERT_TRUE(irr_wait_dest(vm, no, vs, i, d,
						      IRR_WAIT_MS),
					"vector %u, relayed (its eventfd read and injected with KVM_SIGNAL_MSI by the library's thread), did not arrive in VM #%llu's LAPIC as 0x%x on vCPU %u; the IRR holds %s",
					i, no, lapic_vec(vs, i), dest_of(d, i),
					irr_text(vm));
		else
			CPR_ASSERT_TRUE(irr_wait_dest(vm, no, vs, i, d,
						      IRR_WAIT_MS),
					"vector %u, raised through its irqfd (GSI %d), did not arrive in VM #%llu's LAPIC as 0x%x, the vector its MSI route names (data 0x%x), on vCPU %u, the APIC id its message names; the IRR holds %s",
					i, vs->v[i].virq, no, lapic_vec(vs, i),
					vs->v[i].msg.data, dest_of(d, i),
					irr_text(vm));
		/* Only there: every other LAPIC is still empty. */
		CPR_ASSERT_OK(cpr_vm_lapic_clear(vm, dest_of(d, i)),
			      "clearing the LAPIC of VM #%llu's vCPU %u from outside",
			      no, dest_of(d, i));
	}
}

static void check_every_vector(struct cpr_vectors *vs, struct cpr_vm *vm,
			       unsigned long long no, bool relayed)
{
	check_every_vector_at(vs, vm, no, relayed, &one_vcpu);
}

/*
 * A real-mode vCPU of VM #@no - the one vector @i's message names - takes
 * its interrupt in its handler.
 */
static void check_guest_takes(struct cpr_vectors *vs, struct cpr_vm *vm,
			      unsigned long long no, unsigned int i,
			      const struct dests *d)
{
	unsigned int got = 0, c = dest_of(d, i);

	lapic_clear(vm, no);
	raise_vector(vs, i);
	CPR_ASSERT_TRUE(irr_wait_dest(vm, no, vs, i, d, IRR_WAIT_MS),
			"vector %u, raised through its irqfd (GSI %d), did not arrive in VM #%llu's LAPIC as 0x%x, the vector its MSI route names (data 0x%x), on vCPU %u, the APIC id its message names; the IRR holds %s",
			i, vs->v[i].virq, no, lapic_vec(vs, i),
			vs->v[i].msg.data, c, irr_text(vm));
	CPR_ASSERT_OK(cpr_vm_guest_wait(vm, c, GUEST_WAIT_MS, &got),
		      "the real-mode vCPU %u (APIC id %u) of VM #%llu did not take vector %u (LAPIC vector 0x%x) in its handler",
		      c, c, no, i, lapic_vec(vs, i));
	CPR_ASSERT_EQ(got, lapic_vec(vs, i),
		      "the real-mode vCPU %u of VM #%llu took LAPIC vector 0x%x, not 0x%x of vector %u",
		      c, no, got, lapic_vec(vs, i), i);
}

/*
 * Vector @i masked (its irqfd deassigned), raised, unmasked (its irqfd
 * assigned again): while masked nothing may take its eventfd's count nor
 * reach a LAPIC; on unmask KVM must inject what the eventfd holds.
 */
static void check_mask_and_unmask(struct cpr_vectors *vs, struct cpr_vm *vm,
				  unsigned long long no, unsigned int i,
				  const struct dests *d)
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
	CPR_ASSERT_TRUE(irr_wait_dest(vm, no, vs, i, d, IRR_WAIT_MS),
			"KVM did not inject the interrupt already pending on vector %u's eventfd when its irqfd was assigned in VM #%llu (raised while masked; LAPIC vector 0x%x on vCPU %u; the IRR holds %s)",
			i, no, vec, dest_of(d, i), irr_text(vm));
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
	unsigned int roles[] = { r.p, r.m, r.b, r.s, r.r, r.z, r.a };
	unsigned int k;

	for (k = 0; k < ARRAY_SIZE(roles); k++)
		if (lapic_vec(vs, i) == lapic_vec(vs, roles[k]))
			return false;
	return true;
}

/* What a handoff's detach does besides detaching. */
struct detach_plan {
	enum handoff_way way;
	bool r;		/* relayed: R raised under the relay */
	bool s;		/* S raised while the detach runs */
};

/*
 * Under the relay: R raised, to VM #@gen; then a burst of every vector
 * without a role, S last, just before the relay is stopped: it is still
 * working through them when the handoff starts.
 */
static void detach_relayed(struct cpr_vectors *vs, struct cpr_vm *vm,
			   unsigned long long gen, const struct detach_plan *dp,
			   const struct dests *d)
{
	struct roles r = roles_of(vs->nr);
	unsigned int i;

	CPR_ASSERT_OK(cpr_vectors_relay(vm, &vs, 1),
		      "handing VM #%llu's irqfds to the relay thread ahead of the handoff",
		      gen);
	if (dp->r) {
		CPR_ASSERT_EQ(cpr_vectors_mask(vs, r.r), -EBUSY,
			      "masking vector %u while it is relayed must be refused",
			      r.r);
		raise_vector(vs, r.r);
		CPR_ASSERT_TRUE(irr_wait_dest(vm, gen, vs, r.r, d,
					      IRR_WAIT_MS),
				"vector %u (R), raised under the relay, did not arrive in VM #%llu's LAPIC as 0x%x on vCPU %u: the relay thread did not inject it; the IRR holds %s",
				r.r, gen, lapic_vec(vs, r.r), dest_of(d, r.r),
				irr_text(vm));
	}
	if (dp->s) {
		for (i = 0; i < vs->nr && r.distinct; i++)
			if (roleless(vs, i))
				raise_vector(vs, i);
		raise_vector(vs, r.s);
	}
	CPR_ASSERT_OK(cpr_vectors_detach_vm(vm, &vs, 1),
		      "stopping the relay and releasing VM #%llu", gen);
}

/* Detach from VM #@gen the way asked for, S raised while that runs. */
static void detach_for_handoff(struct cpr_vectors *vs, struct cpr_vm *vm,
			       unsigned long long gen,
			       const struct detach_plan *dp,
			       const struct dests *d)
{
	struct roles r = roles_of(vs->nr);
	struct raiser rs = {
		.vm_fd = cpr_vm_fd(vm),
		.release = dp->way == WAY_RELEASE,
	};

	if (dp->way != WAY_VECTORS)
		CPR_ASSERT_OK(cpr_exec_prepare(vs->st),
			      "clearing FD_CLOEXEC ahead of the handoff");
	if (dp->way == WAY_RELAY) {
		detach_relayed(vs, vm, gen, dp, d);
		return;
	}
	if (!dp->s) {
		CPR_ASSERT_OK(detach_one_way(vs, vm, dp->way),
			      "detaching the vectors from VM #%llu (%s)", gen,
			      way_names[dp->way]);
		return;
	}
	rs.kvm_fd = vs->v[r.s].kvm_fd;
	CPR_ASSERT_EQ(pthread_create(&rs.thread, NULL, raiser_run, &rs), 0,
		      "starting the thread that raises vector %u (S)", r.s);
	CPR_ASSERT_OK(detach_with_raiser(vs, vm, dp->way, &rs),
		      "detaching the vectors from VM #%llu (%s) while a thread raises vector %u (S)",
		      gen, way_names[dp->way], r.s);
	CPR_ASSERT_EQ(rs.err, 0,
		      "raising vector %u (S) from its thread: write() on eventfd %d failed: %s",
		      r.s, rs.kvm_fd, strerror(rs.err));
	note("# vector S raised %s\n", !rs.in_window ?
	     "after the detach (no window)" : dp->way == WAY_RELEASE ?
	     "as the old VM's fd closed" : "while the irqfds were detached");
}

/* P raised and left pending, not taken, in VM #@gen's LAPIC. */
static void leave_pending(struct cpr_vectors *vs, struct cpr_vm *vm,
			  unsigned long long gen, unsigned int p,
			  const struct dests *d)
{
	lapic_clear(vm, gen);
	raise_vector(vs, p);
	CPR_ASSERT_TRUE(irr_wait_dest(vm, gen, vs, p, d, IRR_WAIT_MS),
			"vector %u (P), raised through its irqfd (GSI %d), did not arrive in VM #%llu's LAPIC as 0x%x, the vector its MSI route names (data 0x%x), on vCPU %u, the APIC id its message names; the IRR holds %s",
			p, vs->v[p].virq, gen, lapic_vec(vs, p),
			vs->v[p].msg.data, dest_of(d, p), irr_text(vm));
}

/* M masked, raised, and its signal collected into its pending bit. */
static void mask_pending(struct cpr_vectors *vs, struct cpr_vm *vm,
			 unsigned long long gen, unsigned int m)
{
	int seen;

	CPR_ASSERT_OK(cpr_vectors_mask(vs, m),
		      "masking vector %u (M): KVM_IRQFD deassign in VM #%llu",
		      m, gen);
	raise_vector(vs, m);
	CPR_ASSERT_TRUE(count_held(vs, m),
			"KVM_IRQFD deassign did not detach: vector %u (M), masked (its irqfd deassigned from VM #%llu), was raised and its eventfd's count was taken at once, as only an irqfd takes it; VM #%llu's IRR holds %s",
			m, gen, gen, irr_text(vm));
	CPR_ASSERT_FALSE(irr_wait(vm, gen, lapic_vec(vs, m), QUIET_MS),
			 "KVM_IRQFD deassign did not detach: vector %u (M), masked (its irqfd deassigned from VM #%llu), was raised and arrived in its LAPIC as 0x%x",
			 m, gen, lapic_vec(vs, m));
	CPR_ASSERT_OK(poll_vectors(vs, &seen),
		      "collecting masked vector %u (M)'s signal into its pending bit",
		      m);
	CPR_ASSERT_TRUE(seen >= 1 && vs->v[m].pending,
			"masked vector %u (M) was raised but cpr_vectors_poll() saw %d signals and left its pending bit clear",
			m, seen);
}

/* The userspace handler's eventfd carries a signal across too. */
static void signal_handler_fd(struct cpr_vectors *vs)
{
	__u64 one = 1;

	CPR_ASSERT_SYS(write(vs->v[0].interrupt_fd, &one, sizeof(one)),
		       "signalling vector 0's interrupt eventfd %d",
		       vs->v[0].interrupt_fd);
}

/* B in the blackout: no irqfd may listen, not even a dying one. */
static void blackout_raise(struct cpr_vectors *vs, struct cpr_vm *vm,
			   unsigned long long gen, enum handoff_way way,
			   unsigned int b)
{
	raise_vector(vs, b);
	CPR_ASSERT_TRUE(count_held(vs, b),
			"%s: vector %u (B), raised in the blackout after the detach from VM #%llu (%s), had its eventfd's count taken at once, as only an irqfd takes it; VM #%llu's IRR holds %s",
			way_culprit[way], b, gen, way_names[way], gen,
			irr_text(vm));
	CPR_ASSERT_FALSE(irr_has(vm, gen, lapic_vec(vs, b)),
			 "%s: vector %u (B), raised in the blackout after the detach from VM #%llu (%s), arrived in its LAPIC as 0x%x",
			 way_culprit[way], b, gen, way_names[way],
			 lapic_vec(vs, b));
}

/*
 * Leave the vectors as a handoff finds them in a running VMM, every role
 * at once, detach them from VM #@gen the way asked for and raise B in the
 * blackout.
 */
static void prepare_handoff(struct cpr_vectors *vs, struct cpr_vm *vm,
			    unsigned long long gen,
			    const struct detach_plan *dp,
			    const struct dests *d)
{
	struct roles r = roles_of(vs->nr);

	if (r.distinct) {
		leave_pending(vs, vm, gen, r.p, d);
		mask_pending(vs, vm, gen, r.m);
	}
	signal_handler_fd(vs);
	detach_for_handoff(vs, vm, gen, dp, d);
	blackout_raise(vs, vm, gen, dp->way, r.b);
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
	char path[300], target[64];
	struct dirent *e;
	int n = 0;
	ssize_t len;
	DIR *dir;

	dir = opendir("/proc/self/fd");
	CPR_ASSERT_TRUE(dir, "opening /proc/self/fd: %s", strerror(errno));
	while ((e = readdir(dir))) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(dir))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		len = readlink(path, target, sizeof(target) - 1);
		if (len < 0)
			continue;
		target[len] = '\0';
		n += !strncmp(target, what, strlen(what));
	}
	closedir(dir);
	return n;
}

/*
 * What a successor holds once its checks are done: the inherited fds
 * close-on-exec again, no epoll set of the old relay, and the vCPU fds of
 * the new VM only.
 */
static void check_fds_after(struct cpr_state *st, struct cpr_vm *vm)
{
	int fd = cpr_state_fd_at(st, 0)->fd, flags;

	CPR_ASSERT_SYS(flags = fcntl(fd, F_GETFD),
		       "reading the flags of inherited fd %d", fd);
	CPR_ASSERT_TRUE(flags & FD_CLOEXEC,
			"FD_CLOEXEC not put back on inherited fd %d", fd);
	CPR_ASSERT_EQ(fds_open("anon_inode:[eventpoll]"), 0,
		      "the predecessor's relay epoll set is still open after the checks");
	CPR_ASSERT_EQ(fds_open("anon_inode:kvm-vcpu"), cpr_vm_nr_vcpus(vm),
		      "vCPU fds open after the checks: the old VM's are not closed, or the new VM lacks some");
}

static void finish_deferred(struct cpr_resume_info *info, struct cpr_vm *vm)
{
	CPR_ASSERT_OK(cpr_resume_finish(info),
		      "the deferred checks of the inherited fds");
	CPR_ASSERT_FALSE(info->checks_pending,
			 "cpr_resume_finish() left checks pending");
	CPR_ASSERT_EQ(info->leaked_fds, 0,
		      "fd audit after exec: fds leaked into the successor");
	check_fds_after(info->st, vm);
}

/* ---- The handoff a story makes ---- */

struct story;

/* Everything one generation holds. */
struct gen {
	const struct story *story;
	unsigned int nr;
	enum handoff_mode mode;
	enum handoff_way way;		/* the variant's, for exec handoffs */
	enum handoff_way came;		/* how this generation was handed */
	unsigned int generations;	/* handoffs the story makes */
	unsigned long long generation;	/* VM #n; 0: the harness's child */
	struct dests d;			/* where each vector must arrive */
	struct cpr_state *st;
	struct cpr_vectors *vs;
	struct cpr_vm *vm;
	struct cpr_resume_info info;	/* an exec successor's resume */
	bool deferred;			/* fd checks after the attach */
};

/*
 * A behaviour, told as a story: a scene set in VM #n before its detach
 * (@arrange), something done in the blackout (@blackout), checks in VM
 * #n+1 once the vectors are claimed (@after_attach).
 */
struct story {
	const char *name;
	unsigned int generations;	/* 0: one handoff */
	bool chain;			/* every role at once, each way in turn */
	bool moves_a;			/* A moved once before each handoff */
	bool raises_s;			/* S raised during the detach */
	bool relays_r;			/* R raised under the relay */
	void (*arrange)(struct gen *g);
	void (*blackout)(struct gen *g);
	void (*after_attach)(struct gen *g);
};

static const char *const mode_names[] = {
	[MODE_EXEC] = "exec",
	[MODE_SOCKET] = "socket",
};

/* What a failure is printed with: the story, vectors, mode, generation. */
static void context(const struct gen *g, const char *stage)
{
	cpr_test_context("%s, %u vector%s over %u vCPUs, %s handoff%s, generation %llu: %s",
			 g->story ? g->story->name : "setup", g->nr,
			 g->nr == 1 ? "" : "s", g->d.vcpus, mode_names[g->mode],
			 g->generations > 1 ? "s" : "", g->generation, stage);
}

/* How the handoff out of @g's generation is made. */
static struct detach_plan plan_of(const struct gen *g)
{
	struct detach_plan dp = { .way = WAY_VECTORS };
	const struct story *s = g->story;

	if (g->mode == MODE_EXEC)
		dp.way = s->chain ? way_into(g->generation + 1) : g->way;
	if (s->chain) {
		dp.s = roles_of(g->nr).distinct;
		dp.r = dp.s && dp.way == WAY_RELAY;
	} else {
		dp.s = s->raises_s;
		dp.r = s->relays_r && dp.way == WAY_RELAY;
	}
	return dp;
}

/* Vector A given a new message while masked: its next vCPU. */
static void move_a(struct gen *g)
{
	unsigned int a = roles_of(g->nr).a;
	struct cpr_msi_msg msg;

	g->d.moves++;
	msg = cpr_msi_msg_make(dest_of(&g->d, a), lapic_vec(g->vs, a));
	CPR_ASSERT_OK(cpr_vectors_mask(g->vs, a),
		      "masking vector %u (A) in VM #%llu to move it", a,
		      g->generation);
	CPR_ASSERT_OK(cpr_vectors_set_msg(g->vs, a, &msg),
		      "writing vector %u (A)'s new message, to APIC id %u, in VM #%llu",
		      a, dest_of(&g->d, a), g->generation);
	CPR_ASSERT_OK(cpr_vectors_unmask(g->vs, a),
		      "unmasking vector %u (A) in VM #%llu, moved to APIC id %u",
		      a, g->generation, dest_of(&g->d, a));
}

/* The exec successor's argument: "<story>,<vectors>,<way>,<came>". */
static int exec_next(struct gen *g, enum handoff_way way)
{
	char arg[96];

	snprintf(arg, sizeof(arg), "%s,%u,%d,%d", g->story->name, g->nr,
		 g->way, way);
	return cpr_test_exec_self(g->st, "kvm", arg);
}

/* Socket handoff, the predecessor's side. */
struct kvm_pred {
	struct gen *g;
	struct detach_plan dp;
};

static int kx_save(struct cpr_state *st, void *arg)
{
	struct kvm_pred *p = arg;

	(void)st;
	return cpr_vectors_save(p->g->vs);
}

/* A failed check here ends the predecessor; its successor dies with it. */
static int kx_detach(struct cpr_state *st, void *arg)
{
	struct kvm_pred *p = arg;
	struct gen *g = p->g;

	(void)st;
	detach_for_handoff(g->vs, g->vm, g->generation, &p->dp, &g->d);
	if (g->story->blackout)
		g->story->blackout(g);
	return 0;
}

static int kx_reattach(struct cpr_state *st, void *arg)
{
	struct kvm_pred *p = arg;

	(void)st;
	return cpr_vectors_reattach(p->g->vs);
}

static int give_to_successor(struct kvm_pred *p, pid_t *pid)
{
	const struct cpr_xfer_give_ops ops = {
		.save = kx_save,
		.detach = kx_detach,
		.reattach = kx_reattach,
	};
	struct gen *g = p->g;
	char path[64], arg[96];

	snprintf(path, sizeof(path), "@vfio_cpr_kvm.%d.%llu", getpid(),
		 g->generation + 1);
	snprintf(arg, sizeof(arg), "%s,%u", g->story->name, g->nr);
	*pid = cpr_test_give_to_self(g->st, "kvm-xfer", path, arg,
				     XFER_TIMEOUT_MS, &ops, p);
	return *pid < 0 ? *pid : 0;
}

static int wait_successor(pid_t pid, int *status)
{
	*status = cpr_test_wait_successor(pid);
	return *status < 0 ? *status : 0;
}

/*
 * Set the story's scene in VM #n and hand over: by exec (no return), or
 * over a socket to a successor of its own, waited for with VM #n alive
 * (its irqfds detached); then the chain's exit status.
 */
static int handoff_next(struct gen *g)
{
	struct kvm_pred p = { .g = g };
	int status;
	pid_t pid;

	context(g, "before the handoff");
	if (g->story->moves_a && g->story->chain)
		move_a(g);
	if (g->story->arrange)
		g->story->arrange(g);
	p.dp = plan_of(g);
	context(g, "handing over");
	if (g->mode == MODE_SOCKET) {
		CPR_ASSERT_OK(give_to_successor(&p, &pid),
			      "the socket handoff from VM #%llu to the successor of generation %llu",
			      g->generation, g->generation + 1);
		CPR_ASSERT_OK(wait_successor(pid, &status),
			      "waiting for the successor of generation %llu (pid %d)",
			      g->generation + 1, pid);
		return status;
	}
	detach_for_handoff(g->vs, g->vm, g->generation, &p.dp, &g->d);
	if (g->story->blackout)
		g->story->blackout(g);
	CPR_ASSERT_OK(exec_next(g, p.dp.way), "exec into generation %llu",
		      g->generation + 1);
	CPR_FAIL("exec into generation %llu returned without an error",
		 g->generation + 1);
}

/*
 * Everything a successor does once it has the state and VM #n: claim the
 * vectors into it (at once, one routing commit), then the story's checks.
 */
static void attach_and_check(struct gen *g)
{
	unsigned long long gen = g->generation;

	g->d.moves = g->story->moves_a ? gen : 0;
	context(g, g->mode == MODE_EXEC ? way_names[g->came] :
		way_names[WAY_VECTORS]);
	CPR_ASSERT_OK(cpr_vectors_claim(g->st, DEV, g->vm, &g->vs),
		      "claiming %u vectors into VM #%llu: KVM_IRQFD on the eventfds inherited across the handoff must succeed at once (VM #%llu's irqfds on them are gone)",
		      g->nr, gen, gen - 1);
	CPR_ASSERT_EQ(g->vs->nr, g->nr, "vectors saved in the state");
	CPR_ASSERT_EQ(cpr_vm_routing_commits(g->vm), 1,
		      "%u vectors must be routed into VM #%llu with ONE KVM_SET_GSI_ROUTING",
		      g->nr, gen);
	CPR_ASSERT_EQ(cpr_vm_nr_routes(g->vm), g->nr,
		      "MSI routes staged in VM #%llu", gen);
	if (g->story->after_attach)
		g->story->after_attach(g);
	if (g->deferred && g->info.checks_pending)
		CPR_ASSERT_OK(cpr_resume_finish(&g->info),
			      "the deferred checks of the inherited fds");
}

/* The last generation cleans up; the others hand over. */
static int next_generation(struct gen *g)
{
	if (g->generation < g->generations)
		return handoff_next(g);
	cpr_vectors_free(g->vs, true);
	cpr_vm_destroy(g->vm);
	cpr_state_free(g->st);
	return 0;
}

static const struct story *story_find(const char *name);

/* "<story>,<vectors>[,<way>,<came>]" into @g. */
static void parse_successor_arg(const char *arg, struct gen *g,
				enum handoff_mode mode)
{
	char name[64];
	int way = WAY_VECTORS, came = WAY_VECTORS, n;

	n = sscanf(arg, "%63[^,],%u,%d,%d", name, &g->nr, &way, &came);
	CPR_ASSERT_EQ(n, mode == MODE_EXEC ? 4 : 2,
		      "bad successor argument '%s'", arg);
	CPR_ASSERT_TRUE(way >= WAY_RELAY && way <= WAY_RELEASE &&
			came >= WAY_RELAY && came <= WAY_RELEASE,
			"bad successor argument '%s'", arg);
	g->story = story_find(name);
	CPR_ASSERT_TRUE(g->story, "no story '%s' in this test", name);
	g->generations = g->story->generations ? g->story->generations : 1;
	g->mode = mode;
	g->way = way;
	g->came = came;
	g->d.vcpus = VCPUS;
	g->d.a = roles_of(g->nr).a;
}

static int successor_kvm(const char *arg)
{
	struct gen g = { 0 };

	test_begin();
	parse_successor_arg(arg, &g, MODE_EXEC);
	g.deferred = g.came != WAY_VECTORS;
	context(&g, "a successor taking the state over");
	take_over(&g.info, g.deferred);
	g.st = g.info.st;
	g.generation = g.info.generation;
	if (g.story->chain)
		CPR_ASSERT_EQ(g.came, way_into(g.generation),
			      "generation %llu came the wrong way",
			      g.generation);
	CPR_ASSERT_OK(cpr_vm_create(&g.vm, VCPUS),
		      "creating VM #%llu with %u vCPUs", g.generation, VCPUS);
	attach_and_check(&g);
	return next_generation(&g);
}

/* Socket handoff, the successor's side. */
static int kx_prepare(struct cpr_state *st, void *arg)
{
	struct gen *g = arg;

	(void)st;
	return cpr_vm_create(&g->vm, VCPUS);
}

static int kx_attach(struct cpr_state *st, void *arg)
{
	struct gen *g = arg;

	g->st = st;
	g->info.st = st;
	if (cpr_state_get_u64(st, CPR_SEC_GENERATION, &g->info.generation) ||
	    cpr_state_get_u64(st, CPR_SEC_HANDOFF_START,
			      &g->info.handoff_start_ns))
		return cpr_err(-EBADMSG, "the received state has no generation or handoff start");
	g->generation = g->info.generation;
	attach_and_check(g);
	return 0;
}

static int take_from_predecessor(const char *path, struct gen *g,
				 struct cpr_state **st)
{
	const struct cpr_xfer_take_ops ops = {
		.prepare = kx_prepare,
		.attach = kx_attach,
	};

	return cpr_xfer_take(path, XFER_TIMEOUT_MS, st, &ops, g);
}

static int successor_kvm_xfer(const char *path, const char *arg)
{
	struct cpr_state *st = NULL;
	struct gen g = { 0 };

	/* A predecessor whose check failed mid-handoff takes this one along. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	test_begin();
	parse_successor_arg(arg, &g, MODE_SOCKET);
	context(&g, "a successor taking the state over");
	CPR_ASSERT_OK(take_from_predecessor(path, &g, &st),
		      "the socket handoff, successor side");
	return next_generation(&g);
}

/* ---- The stories ---- */

/* every_vector_delivers_in_both_vms */
static void every_vector(struct gen *g)
{
	check_every_vector_at(g->vs, g->vm, g->generation, false, &g->d);
}

/* blackout_interrupt_delivered_once */
static void blackout_b(struct gen *g)
{
	blackout_raise(g->vs, g->vm, g->generation, plan_of(g).way,
		       roles_of(g->nr).b);
}

/* The blackout ends when B, raised while no VM listened, arrives. */
static void b_arrives(struct gen *g)
{
	unsigned int b = roles_of(g->nr).b;

	CPR_ASSERT_TRUE(irr_wait_dest(g->vm, g->generation, g->vs, b, &g->d,
				      IRR_WAIT_MS),
			"KVM did not inject the interrupt already pending on vector %u's eventfd when its irqfd was assigned in VM #%llu (B, raised in the blackout; LAPIC vector 0x%x on vCPU %u; the IRR holds %s)",
			b, g->generation, lapic_vec(g->vs, b), dest_of(&g->d, b),
			irr_text(g->vm));
	/* From the irqfd detach to the first interrupt seen in the new VM. */
	note("# generation %llu, %u vectors: blackout %.3f ms (%s)\n",
	     g->generation, g->nr,
	     (cpr_now_ns() - g->info.handoff_start_ns) / 1e6,
	     g->mode == MODE_EXEC ? way_names[g->came] : "socket handoff");
}

static void b_not_twice(struct gen *g)
{
	unsigned int b = roles_of(g->nr).b;

	CPR_ASSERT_FALSE(irr_has(g->vm, g->generation, lapic_vec(g->vs, b)),
			 "vector %u (B), raised once in the blackout, was delivered into VM #%llu twice",
			 b, g->generation);
}

static void blackout_delivered_once(struct gen *g)
{
	b_arrives(g);
	lapic_clear(g->vm, g->generation);
	usleep(1000);
	b_not_twice(g);
}

/* lapic_pending_carried */
static void pending_left(struct gen *g)
{
	leave_pending(g->vs, g->vm, g->generation, roles_of(g->nr).p, &g->d);
}

static void p_arrived(struct gen *g)
{
	unsigned int p = roles_of(g->nr).p;

	CPR_ASSERT_TRUE(irr_wait_dest(g->vm, g->generation, g->vs, p, &g->d,
				      0),
			"vector %u (P) was pending in VM #%llu's LAPIC at the handoff and did not arrive in VM #%llu as 0x%x on vCPU %u, the APIC id its message names (noted by the detach, re-injected with KVM_SIGNAL_MSI); the IRR holds %s",
			p, g->generation - 1, g->generation,
			lapic_vec(g->vs, p), dest_of(&g->d, p),
			irr_text(g->vm));
}

/* masked_pending_delivered_on_unmask */
static void masked_arrange(struct gen *g)
{
	struct roles r = roles_of(g->nr);

	check_mask_and_unmask(g->vs, g->vm, g->generation, r.z, &g->d);
	mask_pending(g->vs, g->vm, g->generation, r.m);
}

static void masked_on_unmask(struct gen *g)
{
	unsigned int m = roles_of(g->nr).m;
	unsigned long long gen = g->generation;

	CPR_ASSERT_TRUE(g->vs->v[m].masked && g->vs->v[m].pending,
			"vector %u (M) lost its masked+pending state in the handoff",
			m);
	CPR_ASSERT_FALSE(irr_has(g->vm, gen, lapic_vec(g->vs, m)),
			 "vector %u (M), masked, was delivered into VM #%llu as 0x%x while still masked",
			 m, gen, lapic_vec(g->vs, m));
	lapic_clear(g->vm, gen);
	CPR_ASSERT_OK(cpr_vectors_unmask(g->vs, m),
		      "unmasking vector %u (M) in VM #%llu", m, gen);
	CPR_ASSERT_TRUE(irr_wait_dest(g->vm, gen, g->vs, m, &g->d,
				      IRR_WAIT_MS),
			"vector %u (M), masked and pending at the handoff, did not arrive in VM #%llu as 0x%x on vCPU %u on unmask (KVM_SIGNAL_MSI of its pending bit); the IRR holds %s",
			m, gen, lapic_vec(g->vs, m), dest_of(&g->d, m),
			irr_text(g->vm));
}

/* vector_raised_during_detach_not_lost */
static void s_arrived(struct gen *g)
{
	unsigned int s = roles_of(g->nr).s;
	unsigned long long gen = g->generation, old = gen - 1;

	CPR_ASSERT_TRUE(irr_wait_dest(g->vm, gen, g->vs, s, &g->d,
				      IRR_WAIT_MS),
			"vector %u (S), raised while VM #%llu's irqfds were being detached, did not arrive in VM #%llu as 0x%x on vCPU %u: if it stayed in its eventfd, KVM did not inject the interrupt already pending on vector %u's eventfd when its irqfd was assigned in VM #%llu; if it reached VM #%llu, its LAPIC was read before its irqfds (or the relay) were all shut down; the IRR holds %s",
			s, old, gen, lapic_vec(g->vs, s), dest_of(&g->d, s), s,
			gen, old, irr_text(g->vm));
}

static void s_not_twice(struct gen *g)
{
	unsigned int s = roles_of(g->nr).s;

	CPR_ASSERT_FALSE(irr_has(g->vm, g->generation, lapic_vec(g->vs, s)),
			 "vector %u (S), raised once at the handoff, was delivered into VM #%llu twice",
			 s, g->generation);
}

static void s_delivered_once(struct gen *g)
{
	s_arrived(g);
	lapic_clear(g->vm, g->generation);
	usleep(1000);
	s_not_twice(g);
}

/* relayed_vector_reaches_old_then_new_vm */

/*
 * A handoff given up after the relay took over: every vector is delivered
 * by the relay, then by its irqfd again.  Z was signalled while it had no
 * irqfd, which KVM injected when it got one back, leaving the count in the
 * eventfd: the deassign that starts the relay drops that count, and the
 * relay must not inject it once more.
 */
static void relay_round_trip(struct gen *g)
{
	struct cpr_vectors *vs = g->vs;
	struct cpr_vm *vm = g->vm;
	unsigned int z = roles_of(g->nr).z;

	check_mask_and_unmask(vs, vm, 0, z, &g->d);
	CPR_ASSERT_OK(cpr_vectors_relay(vm, &vs, 1),
		      "handing VM #0's irqfds to the relay thread");
	usleep(2000);
	CPR_ASSERT_FALSE(irr_has(vm, 0, lapic_vec(vs, z)),
			 "vector %u was injected into VM #0 again by the relay: the count KVM left in its eventfd when it injected it on assign was still there after KVM_IRQFD deassign",
			 z);
	CPR_ASSERT_EQ(cpr_vm_nr_irqfds(vm), 0,
		      "irqfds left in VM #0 once the relay took every vector");
	check_every_vector_at(vs, vm, 0, true, &g->d);
	CPR_ASSERT_OK(cpr_vectors_unrelay(vm),
		      "giving VM #0 its irqfds back (cpr_vectors_unrelay())");
	CPR_ASSERT_EQ(cpr_vm_nr_irqfds(vm), vs->nr,
		      "irqfds in VM #0 after cpr_vectors_unrelay()");
	check_every_vector_at(vs, vm, 0, false, &g->d);
}

static void r_arrived(struct gen *g)
{
	unsigned int r = roles_of(g->nr).r;

	CPR_ASSERT_TRUE(irr_wait_dest(g->vm, g->generation, g->vs, r, &g->d,
				      0),
			"vector %u (R), relayed into VM #%llu's LAPIC before the handoff, did not arrive in VM #%llu as 0x%x on vCPU %u; the IRR holds %s",
			r, g->generation - 1, g->generation,
			lapic_vec(g->vs, r), dest_of(&g->d, r), irr_text(g->vm));
}

static void r_not_again(struct gen *g)
{
	unsigned int r = roles_of(g->nr).r;

	CPR_ASSERT_FALSE(irr_has(g->vm, g->generation, lapic_vec(g->vs, r)),
			 "vector %u (R), raised once under the relay, was delivered into VM #%llu again",
			 r, g->generation);
}

static void r_delivered_once(struct gen *g)
{
	r_arrived(g);
	lapic_clear(g->vm, g->generation);
	usleep(1000);
	r_not_again(g);
}

/* reprogrammed_vector_arrives_at_its_new_destination */
static void a_moved(struct gen *g)
{
	unsigned int a = roles_of(g->nr).a;

	move_a(g);
	lapic_clear(g->vm, g->generation);
	raise_vector(g->vs, a);
	CPR_ASSERT_TRUE(irr_wait_dest(g->vm, g->generation, g->vs, a, &g->d,
				      IRR_WAIT_MS),
			"vector %u (A), given a message to APIC id %u while masked and unmasked, did not arrive in VM #%llu's LAPIC as 0x%x; the IRR holds %s",
			a, dest_of(&g->d, a), g->generation,
			lapic_vec(g->vs, a), irr_text(g->vm));
	lapic_clear(g->vm, g->generation);
}

static void a_arrives(struct gen *g)
{
	unsigned int a = roles_of(g->nr).a;

	lapic_clear(g->vm, g->generation);
	raise_vector(g->vs, a);
	CPR_ASSERT_TRUE(irr_wait_dest(g->vm, g->generation, g->vs, a, &g->d,
				      IRR_WAIT_MS),
			"vector %u (A), moved to APIC id %u before the handoff, did not arrive in VM #%llu's LAPIC as 0x%x, the vector its MSI route names; the IRR holds %s",
			a, dest_of(&g->d, a), g->generation,
			lapic_vec(g->vs, a), irr_text(g->vm));
	lapic_clear(g->vm, g->generation);
}

/* real_mode_guest_takes_one_on_its_vcpu: one vector on each vCPU. */
static void guest_takes(struct gen *g)
{
	unsigned int i;

	for (i = 0; i < g->nr && i < g->d.vcpus; i++)
		check_guest_takes(g->vs, g->vm, g->generation, i, &g->d);
}

/* handler_eventfd_keeps_its_signal */
static void handler_signalled(struct gen *g)
{
	signal_handler_fd(g->vs);
}

static void handler_gets_it(struct gen *g)
{
	__u64 handled = 0;
	int seen;

	/* The handler is attached to the inherited "interrupt" eventfds. */
	g->vs->handler = count_handled;
	g->vs->handler_arg = &handled;
	CPR_ASSERT_OK(poll_vectors(g->vs, &seen),
		      "polling the inherited interrupt eventfds");
	CPR_ASSERT_EQ(handled, 1,
		      "signals on vector 0's interrupt eventfd, signalled once before the handoff");
	g->vs->handler = NULL;
}

/* successor_fds_checked */
static void fds_checked(struct gen *g)
{
	if (g->deferred)
		finish_deferred(&g->info, g->vm);
	else
		check_fds_after(g->st, g->vm);
}

/* three_generations_keep_delivering: every role at once, each time. */
static void chain_arrange(struct gen *g)
{
	struct roles r = roles_of(g->nr);

	if (r.distinct) {
		leave_pending(g->vs, g->vm, g->generation, r.p, &g->d);
		mask_pending(g->vs, g->vm, g->generation, r.m);
	}
	signal_handler_fd(g->vs);
}

static void chain_after(struct gen *g)
{
	struct roles r = roles_of(g->nr);
	bool relayed = g->mode == MODE_EXEC && g->came == WAY_RELAY;

	b_arrives(g);
	note("# generation %llu: KVM_IRQFD on %u inherited eventfds succeeded at once\n",
	     g->generation, g->nr);
	if (g->deferred)
		finish_deferred(&g->info, g->vm);
	if (r.distinct) {
		p_arrived(g);
		if (relayed)
			r_arrived(g);
		s_arrived(g);
	}
	/* Delivered once: nothing comes back after the LAPIC is cleared. */
	lapic_clear(g->vm, g->generation);
	usleep(1000);
	b_not_twice(g);
	if (r.distinct) {
		if (relayed)
			r_not_again(g);
		s_not_twice(g);
		masked_on_unmask(g);
	}
	handler_gets_it(g);
	check_every_vector_at(g->vs, g->vm, g->generation, false, &g->d);
	a_arrives(g);
	check_guest_takes(g->vs, g->vm, g->generation, g->generation % g->nr,
			  &g->d);
}

static const struct story stories[] = {
	{
		.name = "every_vector_delivers_in_both_vms",
		.arrange = every_vector,
		.after_attach = every_vector,
	}, {
		.name = "three_generations_keep_delivering",
		.generations = GENERATIONS,
		.chain = true,
		.moves_a = true,
		.arrange = chain_arrange,
		.blackout = blackout_b,
		.after_attach = chain_after,
	}, {
		.name = "blackout_interrupt_delivered_once",
		.blackout = blackout_b,
		.after_attach = blackout_delivered_once,
	}, {
		.name = "lapic_pending_carried",
		.arrange = pending_left,
		.after_attach = p_arrived,
	}, {
		.name = "masked_pending_delivered_on_unmask",
		.arrange = masked_arrange,
		.after_attach = masked_on_unmask,
	}, {
		.name = "vector_raised_during_detach_not_lost",
		.raises_s = true,
		.after_attach = s_delivered_once,
	}, {
		.name = "reprogrammed_vector_arrives_at_its_new_destination",
		.moves_a = true,
		.arrange = a_moved,
		.after_attach = a_arrives,
	}, {
		.name = "real_mode_guest_takes_one_on_each_vcpu",
		.arrange = guest_takes,
		.after_attach = guest_takes,
	}, {
		.name = "handler_eventfd_keeps_its_signal",
		.arrange = handler_signalled,
		.after_attach = handler_gets_it,
	}, {
		.name = "successor_fds_checked",
		.after_attach = fds_checked,
	}, {
		.name = "relayed_vector_reaches_old_then_new_vm",
		.relays_r = true,
		.arrange = relay_round_trip,
		.after_attach = r_delivered_once,
	},
};

static const struct story *story_find(const char *name)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(stories); i++)
		if (!strcmp(stories[i].name, name))
			return &stories[i];
	return NULL;
}

/* ---- The fixtures ---- */

struct kvm_variant {
	unsigned int nr;
	enum handoff_mode mode;
	enum handoff_way way;	/* of an exec handoff */
};

/*
 * VM #0 as a VMM holds it: VCPUS vCPUs, @v's vectors spread over them
 * (vector i at APIC id (3 * i + 1) % VCPUS), all routed in one commit and
 * attached through irqfds.
 */
static void vm0_setup(struct gen *g, const struct kvm_variant *v)
{
	struct cpr_msi_msg msg;
	unsigned int i;

	test_begin();
	g->nr = v->nr;
	g->mode = v->mode;
	g->way = v->way;
	g->d.vcpus = VCPUS;
	g->d.a = roles_of(v->nr).a;
	context(g, "setting up VM #0");
	g->st = cpr_state_new();
	CPR_ASSERT_TRUE(g->st, "allocating a CPR state");
	CPR_ASSERT_OK(cpr_vm_create(&g->vm, VCPUS),
		      "creating VM #0 with %u vCPUs", VCPUS);
	CPR_ASSERT_OK(cpr_vectors_create(g->st, DEV, CPR_IRQ_MSIX, v->nr,
					 CPR_VEC_INTERRUPT | CPR_VEC_KVM,
					 &g->vs),
		      "creating %u vectors", v->nr);
	for (i = 0; i < v->nr; i++) {
		msg = cpr_msi_msg_make(dest_of(&g->d, i), lapic_vec(g->vs, i));
		CPR_ASSERT_OK(cpr_vectors_set_msg(g->vs, i, &msg),
			      "giving vector %u a message to APIC id %u", i,
			      dest_of(&g->d, i));
	}
	CPR_ASSERT_OK(cpr_vectors_attach(g->vs, g->vm),
		      "routing %u vectors into VM #0 and assigning their irqfds",
		      v->nr);
	CPR_ASSERT_EQ(cpr_vm_routing_commits(g->vm), 1,
		      "%u vectors must be routed into VM #0 with ONE KVM_SET_GSI_ROUTING",
		      v->nr);
}

/* Reached only when the test did not exec. */
static void vm0_release(struct gen *g)
{
	cpr_vectors_free(g->vs, true);
	cpr_vm_destroy(g->vm);
	cpr_state_free(g->st);
}

/* The harness's test child: the story told from VM #0 on. */
static void tell(struct gen *g, const char *name)
{
	g->story = story_find(name);
	CPR_ASSERT_TRUE(g->story, "no story '%s' in this test", name);
	g->generations = g->story->generations ? g->story->generations : 1;
	CPR_ASSERT_EQ(handoff_next(g), 0,
		      "the chain of socket successors after VM #0 failed (their failure is above)");
}

/*
 * Each fixture is a struct gen, its variants a struct kvm_variant, and
 * VM #0 is set up from it the same way for all (vm0_setup()).
 */
#define TELL(name)	tell(&self->g, #name)

/* kvm_cpr: every size, by exec (the library's fast path) and by socket. */
FIXTURE(kvm_cpr) {
	struct gen g;
};

FIXTURE_VARIANT(kvm_cpr) {
	struct kvm_variant v;
};

FIXTURE_SETUP(kvm_cpr)
{
	vm0_setup(&self->g, &variant->v);
}

FIXTURE_TEARDOWN(kvm_cpr)
{
	vm0_release(&self->g);
}

FIXTURE_VARIANT_ADD(kvm_cpr, exec_1) {
	.v = { .nr = 1, .mode = MODE_EXEC, .way = WAY_RELAY },
};

FIXTURE_VARIANT_ADD(kvm_cpr, exec_64) {
	.v = { .nr = 64, .mode = MODE_EXEC, .way = WAY_RELAY },
};

FIXTURE_VARIANT_ADD(kvm_cpr, exec_2048) {
	.v = { .nr = 2048, .mode = MODE_EXEC, .way = WAY_RELAY },
};

FIXTURE_VARIANT_ADD(kvm_cpr, socket_1) {
	.v = { .nr = 1, .mode = MODE_SOCKET, .way = WAY_VECTORS },
};

FIXTURE_VARIANT_ADD(kvm_cpr, socket_64) {
	.v = { .nr = 64, .mode = MODE_SOCKET, .way = WAY_VECTORS },
};

FIXTURE_VARIANT_ADD(kvm_cpr, socket_2048) {
	.v = { .nr = 2048, .mode = MODE_SOCKET, .way = WAY_VECTORS },
};

TEST_F_TIMEOUT(kvm_cpr, every_vector_delivers_in_both_vms, 60)
{
	TELL(every_vector_delivers_in_both_vms);
}

TEST_F_TIMEOUT(kvm_cpr, three_generations_keep_delivering, 120)
{
	TELL(three_generations_keep_delivering);
}

/* kvm_cpr_way: 64 vectors, by each way of an exec handoff, and by socket. */
FIXTURE(kvm_cpr_way) {
	struct gen g;
};

FIXTURE_VARIANT(kvm_cpr_way) {
	struct kvm_variant v;
};

FIXTURE_SETUP(kvm_cpr_way)
{
	vm0_setup(&self->g, &variant->v);
}

FIXTURE_TEARDOWN(kvm_cpr_way)
{
	vm0_release(&self->g);
}

FIXTURE_VARIANT_ADD(kvm_cpr_way, exec_relayed) {
	.v = { .nr = 64, .mode = MODE_EXEC, .way = WAY_RELAY },
};

FIXTURE_VARIANT_ADD(kvm_cpr_way, exec_vector_by_vector) {
	.v = { .nr = 64, .mode = MODE_EXEC, .way = WAY_VECTORS },
};

FIXTURE_VARIANT_ADD(kvm_cpr_way, exec_released) {
	.v = { .nr = 64, .mode = MODE_EXEC, .way = WAY_RELEASE },
};

FIXTURE_VARIANT_ADD(kvm_cpr_way, socket) {
	.v = { .nr = 64, .mode = MODE_SOCKET, .way = WAY_VECTORS },
};

TEST_F_TIMEOUT(kvm_cpr_way, blackout_interrupt_delivered_once, 60)
{
	TELL(blackout_interrupt_delivered_once);
}

TEST_F_TIMEOUT(kvm_cpr_way, lapic_pending_carried, 60)
{
	TELL(lapic_pending_carried);
}

TEST_F_TIMEOUT(kvm_cpr_way, vector_raised_during_detach_not_lost, 60)
{
	TELL(vector_raised_during_detach_not_lost);
}

TEST_F_TIMEOUT(kvm_cpr_way, successor_fds_checked, 60)
{
	TELL(successor_fds_checked);
}

/* kvm_cpr_mode: 64 vectors, by exec (relayed) and by socket. */
FIXTURE(kvm_cpr_mode) {
	struct gen g;
};

FIXTURE_VARIANT(kvm_cpr_mode) {
	struct kvm_variant v;
};

FIXTURE_SETUP(kvm_cpr_mode)
{
	vm0_setup(&self->g, &variant->v);
}

FIXTURE_TEARDOWN(kvm_cpr_mode)
{
	vm0_release(&self->g);
}

FIXTURE_VARIANT_ADD(kvm_cpr_mode, exec) {
	.v = { .nr = 64, .mode = MODE_EXEC, .way = WAY_RELAY },
};

FIXTURE_VARIANT_ADD(kvm_cpr_mode, socket) {
	.v = { .nr = 64, .mode = MODE_SOCKET, .way = WAY_VECTORS },
};

TEST_F_TIMEOUT(kvm_cpr_mode, masked_pending_delivered_on_unmask, 60)
{
	TELL(masked_pending_delivered_on_unmask);
}

TEST_F_TIMEOUT(kvm_cpr_mode, reprogrammed_vector_arrives_at_its_new_destination, 60)
{
	TELL(reprogrammed_vector_arrives_at_its_new_destination);
}

TEST_F_TIMEOUT(kvm_cpr_mode, real_mode_guest_takes_one_on_each_vcpu, 60)
{
	TELL(real_mode_guest_takes_one_on_each_vcpu);
}

TEST_F_TIMEOUT(kvm_cpr_mode, handler_eventfd_keeps_its_signal, 60)
{
	TELL(handler_eventfd_keeps_its_signal);
}

/* kvm_cpr_relay: every size relayed, by exec. */
FIXTURE(kvm_cpr_relay) {
	struct gen g;
};

FIXTURE_VARIANT(kvm_cpr_relay) {
	struct kvm_variant v;
};

FIXTURE_SETUP(kvm_cpr_relay)
{
	vm0_setup(&self->g, &variant->v);
}

FIXTURE_TEARDOWN(kvm_cpr_relay)
{
	vm0_release(&self->g);
}

FIXTURE_VARIANT_ADD(kvm_cpr_relay, exec_1) {
	.v = { .nr = 1, .mode = MODE_EXEC, .way = WAY_RELAY },
};

FIXTURE_VARIANT_ADD(kvm_cpr_relay, exec_64) {
	.v = { .nr = 64, .mode = MODE_EXEC, .way = WAY_RELAY },
};

FIXTURE_VARIANT_ADD(kvm_cpr_relay, exec_2048) {
	.v = { .nr = 2048, .mode = MODE_EXEC, .way = WAY_RELAY },
};

TEST_F_TIMEOUT(kvm_cpr_relay, relayed_vector_reaches_old_then_new_vm, 60)
{
	TELL(relayed_vector_reaches_old_then_new_vm);
}

/* ---- Tests of their own ---- */

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
	const struct detach_plan dp = { .way = WAY_VECTORS, .s = true };
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
	prepare_handoff(vs, vm, 0, &dp, &one_vcpu);

	CPR_ASSERT_OK(exec_expect_fail(st, bad, argv, &ret),
		      "an exec of %s must fail", bad);
	note("# exec of %s: %s\n", bad, cpr_last_error());

	/* Roll back: the same VM, its irqfds again. */
	CPR_ASSERT_OK(cpr_vectors_reattach(vs),
		      "re-attaching the vectors to VM #0 after the failed exec");
	CPR_ASSERT_TRUE(irr_wait(vm, 0, lapic_vec(vs, r.p), IRR_WAIT_MS),
			"vector %u (P), pending in VM #0's LAPIC as 0x%x, was lost by the failed exec; the IRR holds %s",
			r.p, lapic_vec(vs, r.p), irr_text(vm));
	CPR_ASSERT_TRUE(irr_wait(vm, 0, lapic_vec(vs, r.b), IRR_WAIT_MS),
			"KVM did not inject the interrupt already pending on vector %u's eventfd when its irqfd was assigned in VM #0 again after the failed exec (B, raised in the blackout; LAPIC vector 0x%x; the IRR holds %s)",
			r.b, lapic_vec(vs, r.b), irr_text(vm));
	CPR_ASSERT_OK(cpr_vectors_unmask(vs, r.m),
		      "unmasking vector %u (M) in VM #0", r.m);
	CPR_ASSERT_TRUE(irr_wait(vm, 0, lapic_vec(vs, r.m), IRR_WAIT_MS),
			"vector %u (M), masked and pending, did not arrive in VM #0 as 0x%x on unmask after the failed exec; the IRR holds %s",
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
	check_mask_and_unmask(vs, vm, 0, 0, &one_vcpu);

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
