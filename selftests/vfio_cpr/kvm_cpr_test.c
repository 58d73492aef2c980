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
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/types.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "cpr_test_util.h"
#include "vfio_cpr/handoff.h"
#include "vfio_cpr/kvm.h"
#include "vfio_cpr/transfer.h"
#include "vfio_cpr/vectors.h"

#define DEV		"kvmtest"
#define GENERATIONS	3
#define IRR_WAIT_MS	1000
#define GUEST_WAIT_MS	5000

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

enum handoff_way { WAY_RELAY, WAY_VECTORS, WAY_RELEASE };

static const char *const way_names[] = {
	[WAY_RELAY] = "irqfds relayed ahead, fd checks after the attach",
	[WAY_VECTORS] = "vector by vector, fd checks first",
	[WAY_RELEASE] = "old VM released at once, fd checks after the attach",
};

/* How the handoff into generation @gen is made. */
static enum handoff_way way_into(unsigned long long gen)
{
	return gen == 1 ? WAY_RELAY : gen == 2 ? WAY_VECTORS : WAY_RELEASE;
}

static unsigned int lapic_vec(const struct cpr_vectors *vs, unsigned int i)
{
	return cpr_msi_msg_vector(&vs->v[i].msg);
}

static int raise_vector(const struct cpr_vectors *vs, unsigned int i)
{
	__u64 one = 1;

	if (write(vs->v[i].kvm_fd, &one, sizeof(one)) != sizeof(one))
		return -errno;
	return 0;
}

static int wait_irr(struct cpr_vm *vm, unsigned int vec, int ms)
{
	return cpr_test_wait_irr(vm, 0, vec, ms);
}

/*
 * Raise every vector but the masked one and see it arrive in @vm's LAPIC,
 * one at a time.  Returns the index of the first vector that did not
 * arrive, or -1 when all did.
 */
static int check_every_vector(struct cpr_vectors *vs, struct cpr_vm *vm,
			      int skip)
{
	unsigned int i;

	for (i = 0; i < vs->nr; i++) {
		if ((int)i == skip)
			continue;
		if (cpr_vm_lapic_clear(vm, 0) || raise_vector(vs, i) ||
		    wait_irr(vm, lapic_vec(vs, i), IRR_WAIT_MS) != 1)
			return i;
	}
	return cpr_vm_lapic_clear(vm, 0) ? 0 : -1;
}

/* A real-mode vCPU must take vector @i's interrupt in its handler. */
static int check_guest_takes(struct cpr_vectors *vs, struct cpr_vm *vm,
			     unsigned int i, unsigned int *got)
{
	int ret;

	*got = 0;
	ret = cpr_vm_lapic_clear(vm, 0);
	if (!ret)
		ret = raise_vector(vs, i);
	if (!ret)
		ret = cpr_vm_guest_wait(vm, 0, GUEST_WAIT_MS, got);
	if (!ret && *got != lapic_vec(vs, i))
		ret = -EPROTO;
	return ret;
}

static void count_handled(struct cpr_vectors *vs, unsigned int i,
			  __u64 count, void *arg)
{
	__u64 *per_vector = arg;

	(void)vs;
	if (i == 0)
		*per_vector += count;
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
		rs->kvm_fd = -1;
	return NULL;
}

static int detach_one_way(struct cpr_vectors *vs, struct cpr_vm *vm,
			  enum handoff_way way)
{
	return way == WAY_VECTORS ? cpr_vectors_detach(vs) :
	       cpr_vectors_detach_vm(vm, &vs, 1);
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
 * Under the relay: R raised, to VM #0; then a burst of every vector
 * without a role, S last, just before the relay is stopped: it is still
 * working through them when the handoff starts.
 */
static const char *detach_relayed(struct cpr_vectors *vs, struct cpr_vm *vm)
{
	struct roles r = roles_of(vs->nr);
	unsigned int i;
	int ret;

	if (cpr_vectors_relay(vm, &vs, 1))
		return "relaying the vectors ahead of the handoff";
	if (r.r >= 0) {
		cpr_log_set_quiet(true);
		ret = cpr_vectors_mask(vs, r.r);
		cpr_log_set_quiet(false);
		if (ret != -EBUSY)
			return "a relayed vector could be masked";
		if (raise_vector(vs, r.r) ||
		    wait_irr(vm, lapic_vec(vs, r.r), IRR_WAIT_MS) != 1)
			return "vector R, raised under the relay, did not reach the old VM";
	}
	if (r.s >= 0) {
		for (i = 0; i < vs->nr; i++)
			if (roleless(vs, i) && raise_vector(vs, i))
				return "raising the burst before S";
		if (raise_vector(vs, r.s))
			return "raising vector S";
	}
	return cpr_vectors_detach_vm(vm, &vs, 1) ?
	       "stopping the relay and releasing the old VM" : NULL;
}

/* Detach the way asked for, S raised while that runs. */
static const char *detach_raising_s(struct cpr_vectors *vs, struct cpr_vm *vm,
				    enum handoff_way way)
{
	struct roles r = roles_of(vs->nr);
	struct raiser rs = { .vm_fd = vm->vm_fd, .release = way == WAY_RELEASE };
	int ret;

	if (way != WAY_VECTORS && cpr_exec_prepare(vs->st))
		return "clearing FD_CLOEXEC ahead of the handoff";
	if (way == WAY_RELAY)
		return detach_relayed(vs, vm);
	if (r.s < 0)
		return detach_one_way(vs, vm, way) ?
		       "detaching the vectors from the old VM" : NULL;
	rs.kvm_fd = vs->v[r.s].kvm_fd;
	if (pthread_create(&rs.thread, NULL, raiser_run, &rs))
		return "starting the thread that raises S";
	__atomic_store_n(&rs.go, true, __ATOMIC_RELEASE);
	ret = detach_one_way(vs, vm, way);
	__atomic_store_n(&rs.stop, true, __ATOMIC_RELEASE);
	pthread_join(rs.thread, NULL);
	if (ret)
		return "detaching the vectors from the old VM";
	if (rs.kvm_fd < 0)
		return "raising vector S";
	printf("# vector S raised %s\n", !rs.in_window ?
	       "after the detach (no window)" : way == WAY_RELEASE ?
	       "as the old VM's fd closed" : "while the irqfds were detached");
	return NULL;
}

/*
 * Leave the vectors as a handoff finds them in a running VMM, detach them
 * from @vm the way asked for and raise B in the blackout.  Returns a
 * message on failure.
 */
static const char *prepare_handoff(struct cpr_vectors *vs, struct cpr_vm *vm,
				   enum handoff_way way)
{
	struct roles r = roles_of(vs->nr);
	const char *why;
	__u64 one = 1;

	if (cpr_vm_lapic_clear(vm, 0))
		return "clearing the old VM's LAPIC";
	if (r.p >= 0 && (raise_vector(vs, r.p) ||
			 wait_irr(vm, lapic_vec(vs, r.p), IRR_WAIT_MS) != 1))
		return "vector P did not reach the old VM before the handoff";
	if (r.m >= 0) {
		if (cpr_vectors_mask(vs, r.m) || raise_vector(vs, r.m))
			return "masking and raising vector M";
		if (cpr_vm_lapic_irr_test(vm, 0, lapic_vec(vs, r.m)))
			return "masked vector M was delivered anyway";
		if (cpr_vectors_poll(vs) < 1 || !vs->v[r.m].pending)
			return "masked vector M raised but its pending bit is not set";
	}
	/* The userspace handler's eventfd carries a signal across too. */
	if (write(vs->v[0].interrupt_fd, &one, sizeof(one)) != sizeof(one))
		return "signalling vector 0's interrupt eventfd";
	why = detach_raising_s(vs, vm, way);
	if (why)
		return why;
	if (raise_vector(vs, r.b))
		return "raising vector B in the blackout";
	if (cpr_vm_lapic_irr_test(vm, 0, lapic_vec(vs, r.b)))
		return "vector B reached the old VM after its irqfd was detached";
	return NULL;
}

/* The successor's argument: "<vectors>,<enum handoff_way>". */
static int exec_next(struct cpr_state *st, unsigned int nr,
		     enum handoff_way way)
{
	char arg[32];

	snprintf(arg, sizeof(arg), "%u,%d", nr, way);
	return cpr_test_exec_self(st, "kvm", arg);
}

/* The fast path's resume: only the state now, the fds' checks later. */
static void resume_deferred(struct cpr_resume_info *info)
{
	int ret = cpr_resume_flags(info, CPR_RESUME_DEFER_CHECKS);

	if (ret != 1)
		SUCC_FAIL("cpr_resume_flags() = %d: no handed-off state received",
			  ret);
	SUCC_ASSERT(info->checks_pending,
		    "deferred resume with no checks left to do");
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
	SUCC_ASSERT_EQ(0, cpr_resume_finish(info),
		       "deferred checks of the inherited fds");
	SUCC_ASSERT(!info->checks_pending, "checks still pending");
	SUCC_ASSERT_EQ(0, info->leaked_fds,
		       "fd audit after exec: fd(s) leaked into the successor");
	SUCC_ASSERT(fcntl(cpr_state_fd_at(info->st, 0)->fd, F_GETFD) &
		    FD_CLOEXEC, "FD_CLOEXEC not put back on inherited fds");
	SUCC_ASSERT_EQ(0, fds_open("anon_inode:[eventpoll]"),
		       "the predecessor's relay epoll set is still open after the checks");
	SUCC_ASSERT_EQ(1, fds_open("anon_inode:kvm-vcpu"),
		       "vCPU fds open after the checks: the old VM's is not closed, or the new VM has none");
}

/*
 * Everything a successor checks once it has the state and a new VM: claim
 * the vectors into @vm (one routing commit) and see every interrupt of the
 * handoff arrive where it belongs.  Exits 1 on a failed check.
 */
static struct cpr_vectors *generation_checks(struct cpr_resume_info *info,
					     struct cpr_vm *vm, unsigned int nr,
					     enum handoff_way way, bool fast)
{
	struct cpr_vectors *vs;
	struct roles r = roles_of(nr);
	__u64 seen_ns, handled = 0;
	unsigned int got;
	int ret, bad;

	ret = cpr_vectors_claim(info->st, DEV, vm, &vs);
	SUCC_ASSERT_EQ(0, ret,
		       "claiming %u vectors in VM #%llu: KVM_IRQFD on the eventfds inherited across exec must succeed at once (the old VM's irqfds are gone)",
		       nr, (unsigned long long)info->generation);
	SUCC_ASSERT_EQ(nr, vs->nr, "vector count saved in the state");
	SUCC_ASSERT_EQ(1, vm->routing_commits,
		       "%u vectors must be routed in ONE KVM_SET_GSI_ROUTING",
		       nr);
	SUCC_ASSERT_EQ(nr, cpr_vm_nr_routes(vm), "routes staged in VM #%llu",
		       (unsigned long long)info->generation);

	/* The blackout ends when B, raised while no VM listened, arrives. */
	ret = wait_irr(vm, lapic_vec(vs, r.b), IRR_WAIT_MS);
	seen_ns = cpr_now_ns();
	SUCC_ASSERT_EQ(1, ret,
		       "vector %d raised in the blackout was not injected into VM #%llu when its irqfd was attached",
		       r.b, (unsigned long long)info->generation);
	/* From the irqfd detach to the first interrupt seen in the new VM. */
	printf("# generation %llu, %u vectors: blackout %.3f ms (%s)\n",
	       (unsigned long long)info->generation, nr,
	       (seen_ns - info->handoff_start_ns) / 1e6, way_names[way]);
	printf("# generation %llu: KVM_IRQFD on %u inherited eventfds succeeded right after exec\n",
	       (unsigned long long)info->generation, nr);
	if (fast)
		finish_deferred(info);

	if (r.p >= 0)
		SUCC_ASSERT_EQ(1, cpr_vm_lapic_irr_test(vm, 0,
							lapic_vec(vs, r.p)),
			       "vector %d was pending in the old VM's LAPIC at handoff and was lost",
			       r.p);
	if (way == WAY_RELAY && r.r >= 0)
		SUCC_ASSERT_EQ(1, cpr_vm_lapic_irr_test(vm, 0,
							lapic_vec(vs, r.r)),
			       "vector %d, relayed into the old VM's LAPIC, was lost",
			       r.r);
	if (r.s >= 0)
		SUCC_ASSERT_EQ(1, wait_irr(vm, lapic_vec(vs, r.s), IRR_WAIT_MS),
			       "vector %d, raised while the old VM's irqfds were detached, was lost: was the old LAPIC read before they (or the relay) were all shut down?",
			       r.s);
	/* Delivered once: nothing comes back after the LAPIC is cleared. */
	SUCC_ASSERT_EQ(0, cpr_vm_lapic_clear(vm, 0), "LAPIC clear");
	usleep(1000);
	SUCC_ASSERT_EQ(0, cpr_vm_lapic_irr_test(vm, 0, lapic_vec(vs, r.b)),
		       "vector %d raised once in the blackout was delivered twice",
		       r.b);
	if (way == WAY_RELAY && r.r >= 0)
		SUCC_ASSERT_EQ(0, cpr_vm_lapic_irr_test(vm, 0,
							lapic_vec(vs, r.r)),
			       "vector %d raised once under the relay was delivered twice",
			       r.r);
	if (r.s >= 0)
		SUCC_ASSERT_EQ(0, cpr_vm_lapic_irr_test(vm, 0,
							lapic_vec(vs, r.s)),
			       "vector %d raised once at the handoff was delivered twice",
			       r.s);
	if (r.m >= 0) {
		SUCC_ASSERT(vs->v[r.m].masked && vs->v[r.m].pending,
			    "vector %d lost its masked+pending state", r.m);
		SUCC_ASSERT_EQ(0, cpr_vm_lapic_irr_test(vm, 0,
							lapic_vec(vs, r.m)),
			       "masked vector %d delivered while still masked",
			       r.m);
		SUCC_ASSERT_EQ(0, cpr_vm_lapic_clear(vm, 0), "LAPIC clear");
		SUCC_ASSERT_EQ(0, cpr_vectors_unmask(vs, r.m), "unmask");
		SUCC_ASSERT_EQ(1, wait_irr(vm, lapic_vec(vs, r.m),
					   IRR_WAIT_MS),
			       "vector %d masked and pending at handoff not delivered on unmask",
			       r.m);
	}

	/* The handler is attached to the inherited "interrupt" eventfds. */
	vs->handler = count_handled;
	vs->handler_arg = &handled;
	SUCC_ASSERT(cpr_vectors_poll(vs) >= 1, "polling interrupt eventfds");
	SUCC_ASSERT_EQ(1, handled,
		       "vector 0's interrupt eventfd signalled before exec");

	bad = check_every_vector(vs, vm, -1);
	SUCC_ASSERT_EQ(-1, bad,
		       "inherited eventfd of vector %d no longer delivers into VM #%llu",
		       bad, (unsigned long long)info->generation);

	ret = check_guest_takes(vs, vm, info->generation % nr, &got);
	SUCC_ASSERT_EQ(0, ret,
		       "real-mode vCPU of VM #%llu did not take vector %llu (LAPIC 0x%x) in its handler, got 0x%x",
		       (unsigned long long)info->generation,
		       (unsigned long long)info->generation % nr,
		       lapic_vec(vs, info->generation % nr), got);

	return vs;
}

/* Socket handoff, the predecessor's side: its vectors and VM. */
struct kvm_pred {
	struct cpr_vectors *vs;
	struct cpr_vm *vm;
};

static int kx_save(struct cpr_state *st, void *arg)
{
	struct kvm_pred *p = arg;

	(void)st;
	return cpr_vectors_save(p->vs);
}

static int kx_detach(struct cpr_state *st, void *arg)
{
	struct kvm_pred *p = arg;
	const char *why = prepare_handoff(p->vs, p->vm, WAY_VECTORS);

	(void)st;
	return why ? cpr_err(-EIO, "%s", why) : 0;
}

static int kx_reattach(struct cpr_state *st, void *arg)
{
	struct kvm_pred *p = arg;

	(void)st;
	return cpr_vectors_reattach(p->vs);
}

/*
 * Hand generation @gen's vectors over a socket to a successor started as a
 * process of its own ("kvm-xfer"), and wait for the rest of the chain.
 * Returns the chain's exit status, or -1 with *@why set.
 */
static int socket_handoff(struct cpr_state *st, struct cpr_vectors *vs,
			  struct cpr_vm *vm, unsigned int nr, __u64 gen,
			  const char **why)
{
	const struct cpr_xfer_give_ops ops = {
		.save = kx_save,
		.detach = kx_detach,
		.reattach = kx_reattach,
	};
	struct kvm_pred p = { .vs = vs, .vm = vm };
	char path[64], arg[32];
	int status;
	pid_t pid;

	snprintf(path, sizeof(path), "@vfio_cpr_kvm.%d.%llu", getpid(),
		 (unsigned long long)gen);
	snprintf(arg, sizeof(arg), "%u", nr);
	pid = cpr_test_give_to_self(st, "kvm-xfer", path, arg, 20000, &ops, &p);
	if (pid < 0) {
		*why = "the socket handoff to the successor";
		return -1;
	}
	status = cpr_test_wait_successor(pid);
	if (status < 0)
		*why = "waiting for the successor";
	return status < 0 ? -1 : status;
}

/* The last generation cleans up; the others hand over, by exec or socket. */
static int next_generation(struct cpr_state *st, struct cpr_vectors *vs,
			   struct cpr_vm *vm, unsigned int nr, __u64 gen,
			   bool socket)
{
	const char *why = NULL;
	int ret;

	if (gen == GENERATIONS) {
		cpr_vectors_free(vs, true);
		cpr_vm_destroy(vm);
		cpr_state_free(st);
		return 0;
	}
	if (socket) {
		ret = socket_handoff(st, vs, vm, nr, gen + 1, &why);
		SUCC_ASSERT(ret >= 0, "generation %llu: %s: %s",
			    (unsigned long long)gen, why, cpr_last_error());
		_exit(ret);
	}
	why = prepare_handoff(vs, vm, way_into(gen + 1));
	SUCC_ASSERT(!why, "generation %llu: %s", (unsigned long long)gen, why);
	ret = exec_next(st, nr, way_into(gen + 1));
	SUCC_FAIL("exec into generation %llu: %d", (unsigned long long)gen + 1,
		  ret);
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

	if (fast)
		resume_deferred(&info);
	else
		cpr_test_resume(&info);
	SUCC_ASSERT_EQ(way, way_into(info.generation),
		       "generation %llu came the wrong way",
		       (unsigned long long)info.generation);
	SUCC_ASSERT_EQ(0, cpr_vm_create(&vm, 1), "creating VM #%llu",
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
	x->vs = generation_checks(&x->info, x->vm, x->nr, WAY_VECTORS, false);
	return 0;
}

static int successor_kvm_xfer(const char *path, const char *arg)
{
	const struct cpr_xfer_take_ops ops = {
		.prepare = kx_prepare,
		.attach = kx_attach,
	};
	struct kx_succ x = { .nr = atoi(arg) };
	struct cpr_state *st = NULL;
	int ret;

	ret = cpr_xfer_take(path, 20000, &st, &ops, &x);
	SUCC_ASSERT_EQ(0, ret, "socket handoff, successor side: %s",
		       cpr_last_error());
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
	self->st = cpr_state_new();
	ASSERT_NE(NULL, self->st);
	ASSERT_EQ(0, cpr_vm_create(&self->vm, 1));
	ASSERT_EQ(0, cpr_vectors_create(self->st, DEV, CPR_IRQ_MSIX,
					variant->nr,
					CPR_VEC_INTERRUPT | CPR_VEC_KVM,
					&self->vs));
	ASSERT_EQ(0, cpr_vectors_attach(self->vs, self->vm));
}

FIXTURE_TEARDOWN(kvm_cpr)
{
	/* Reached only when the test did not exec. */
	cpr_vectors_free(self->vs, true);
	cpr_vm_destroy(self->vm);
	cpr_state_free(self->st);
}

TEST_F_TIMEOUT(kvm_cpr, exec_replaces_vm_without_losing_interrupts, 120)
{
	struct cpr_vm *other;
	unsigned int got;
	const char *why;
	int bad, ret, z = -1;

	ASSERT_EQ(1u, self->vm->routing_commits) {
		TH_LOG("%u vectors took %u KVM_SET_GSI_ROUTING calls, not one",
		       variant->nr, self->vm->routing_commits);
	}
	bad = check_every_vector(self->vs, self->vm, -1);
	ASSERT_EQ(-1, bad) {
		TH_LOG("vector %d's irqfd does not deliver into VM #0", bad);
	}
	ret = check_guest_takes(self->vs, self->vm, 0, &got);
	ASSERT_EQ(0, ret) {
		TH_LOG("real-mode vCPU of VM #0 did not take vector 0 (0x%x), got 0x%x: %s",
		       lapic_vec(self->vs, 0), got, cpr_last_error());
	}

	/*
	 * A handoff given up after the relay took over: every vector is
	 * delivered by the relay, then by its irqfd again.  Z was signalled
	 * while it had no irqfd, which KVM injected when it got one back,
	 * leaving the count in the eventfd: the relay must not inject it
	 * once more.
	 */
	if (variant->nr >= 5) {
		z = 4;
		ASSERT_EQ(0, cpr_vectors_mask(self->vs, z));
		ASSERT_EQ(0, raise_vector(self->vs, z));
		ASSERT_EQ(0, cpr_vectors_unmask(self->vs, z));
		ASSERT_EQ(1, wait_irr(self->vm, lapic_vec(self->vs, z),
				      IRR_WAIT_MS));
		ASSERT_EQ(0, cpr_vm_lapic_clear(self->vm, 0));
	}
	ASSERT_EQ(0, cpr_vectors_relay(self->vm, &self->vs, 1));
	if (z >= 0) {
		usleep(2000);
		ASSERT_EQ(0, cpr_vm_lapic_irr_test(self->vm, 0,
						   lapic_vec(self->vs, z))) {
			TH_LOG("vector %d, injected when its irqfd came back, was relayed again",
			       z);
		}
	}
	ASSERT_EQ(0u, self->vm->nr_irqfds);
	bad = check_every_vector(self->vs, self->vm, -1);
	ASSERT_EQ(-1, bad) {
		TH_LOG("vector %d was not relayed into VM #0", bad);
	}
	ASSERT_EQ(0, cpr_vectors_unrelay(self->vm));
	ASSERT_EQ(variant->nr, self->vm->nr_irqfds);
	bad = check_every_vector(self->vs, self->vm, -1);
	ASSERT_EQ(-1, bad) {
		TH_LOG("vector %d's irqfd does not deliver after the relay", bad);
	}

	/* Which rule does this kernel enforce for one eventfd in two VMs? */
	ASSERT_EQ(0, cpr_vm_create(&other, 1));
	cpr_log_set_quiet(true);
	ret = cpr_vm_irqfd_assign(other, self->vs->v[0].kvm_fd,
				  self->vs->v[0].virq, -1);
	cpr_log_set_quiet(false);
	if (ret == -EBUSY)
		TH_LOG("kernel rule: one eventfd in two VMs' irqfds refused (EBUSY)");
	else if (!ret)
		TH_LOG("kernel rule: one eventfd may back irqfds in two VMs");
	else
		ASSERT_EQ(0, ret) {
			TH_LOG("KVM_IRQFD in a second VM failed unexpectedly: %s",
			       cpr_last_error());
		}
	cpr_vm_destroy(other);

	if (variant->socket) {
		ret = socket_handoff(self->st, self->vs, self->vm, variant->nr,
				     1, &why);
		ASSERT_LE(0, ret) {
			TH_LOG("VM #0: %s: %s", why, cpr_last_error());
		}
		ASSERT_EQ(0, ret) {
			TH_LOG("the chain of socket successors failed (exit %d)",
			       ret);
		}
		return;
	}
	why = prepare_handoff(self->vs, self->vm, way_into(1));
	ASSERT_EQ(NULL, why) {
		TH_LOG("VM #0: %s: %s", why, cpr_last_error());
	}
	/* Only ASSERTs above: the exec would forget a failed EXPECT. */
	exec_next(self->st, variant->nr, way_into(1));
	TH_LOG("exec into the successor failed: %s", cpr_last_error());
	ASSERT_TRUE(false);
}

/*
 * A successor may attach inherited eventfds before it checked their kinds
 * (CPR_RESUME_DEFER_CHECKS): KVM_IRQFD refuses another kind of file, and
 * the claim must then name the record, undo what it did and leave VM #1
 * without routes or irqfds, whether the bad one comes first or late.
 */
static void claim_with_bad_fd(struct __test_metadata *_metadata,
			      unsigned int nr, unsigned int bad)
{
	struct cpr_state *st = cpr_state_new();
	struct cpr_vectors *vs, *claimed = NULL;
	struct cpr_vm *vm;
	char want[160];
	int mfd, ret;

	ASSERT_NE(NULL, st);
	ASSERT_EQ(0, cpr_vectors_create(st, DEV, CPR_IRQ_MSIX, nr,
					CPR_VEC_INTERRUPT | CPR_VEC_KVM, &vs));
	ASSERT_EQ(0, cpr_vectors_save(vs));
	/* The bad vector's irqfd number now holds a memfd. */
	mfd = memfd_create("not_an_eventfd", MFD_CLOEXEC);
	ASSERT_LE(0, mfd);
	ASSERT_LE(0, dup2(mfd, vs->v[bad].kvm_fd));
	close(mfd);

	ASSERT_EQ(0, cpr_vm_create(&vm, 1));
	cpr_log_set_quiet(true);
	ret = cpr_vectors_claim(st, DEV, vm, &claimed);
	cpr_log_set_quiet(false);
	EXPECT_EQ(-EINVAL, ret);
	EXPECT_EQ(NULL, claimed);
	snprintf(want, sizeof(want),
		 "its fd '%s_%s'[%u] = %d is a memfd, not an eventfd (wrong kind)",
		 DEV, CPR_NOTIFY_KVM, bad, vs->v[bad].kvm_fd);
	EXPECT_NE(NULL, strstr(cpr_last_error(), want)) {
		TH_LOG("%u vectors: the message \"%s\" does not say \"%s\"",
		       nr, cpr_last_error(), want);
	}
	EXPECT_EQ(0u, cpr_vm_nr_routes(vm));
	EXPECT_EQ(0u, vm->nr_irqfds) {
		TH_LOG("%u irqfds left in the VM by a failed claim of %u vectors",
		       vm->nr_irqfds, nr);
	}
	cpr_vm_destroy(vm);
	cpr_vectors_free(vs, true);
	cpr_state_free(st);
}

TEST(claim_names_an_inherited_fd_of_another_kind)
{
	claim_with_bad_fd(_metadata, 4, 2);
	claim_with_bad_fd(_metadata, 512, 500);
}

/*
 * An exec that fails (a successor binary missing, or not executable) after
 * the vectors were detached: the predecessor re-attaches them to its own
 * VM and must deliver everything - the vector left pending in its LAPIC,
 * the one raised in the blackout, and new raises on every vector.
 */
static void failed_exec_keeps_delivering(struct __test_metadata *_metadata,
					 const char *bad)
{
	struct cpr_state *st = cpr_state_new();
	struct cpr_vectors *vs;
	struct roles r = roles_of(8);
	struct cpr_vm *vm;
	char *argv[2];
	int ret, bad_vec;

	argv[0] = (char *)bad;
	argv[1] = NULL;
	ASSERT_NE(NULL, st);
	ASSERT_EQ(0, cpr_vm_create(&vm, 1));
	ASSERT_EQ(0, cpr_vectors_create(st, DEV, CPR_IRQ_MSIX, 8,
					CPR_VEC_INTERRUPT | CPR_VEC_KVM, &vs));
	ASSERT_EQ(0, cpr_vectors_attach(vs, vm));
	ASSERT_EQ(NULL, prepare_handoff(vs, vm, WAY_VECTORS));

	cpr_log_set_quiet(true);
	ret = cpr_exec(st, bad, argv);
	cpr_log_set_quiet(false);
	ASSERT_GT(0, ret);
	TH_LOG("exec of %s: %s", bad, cpr_last_error());

	/* Roll back: the same VM, its irqfds again. */
	ASSERT_EQ(0, cpr_vectors_reattach(vs)) {
		TH_LOG("re-attaching after the failed exec: %s", cpr_last_error());
	}
	ASSERT_EQ(1, wait_irr(vm, lapic_vec(vs, r.p), IRR_WAIT_MS)) {
		TH_LOG("vector %d, pending in the LAPIC, was lost by the failed exec",
		       r.p);
	}
	ASSERT_EQ(1, wait_irr(vm, lapic_vec(vs, r.b), IRR_WAIT_MS)) {
		TH_LOG("vector %d, raised in the blackout, was not delivered after the rollback",
		       r.b);
	}
	ASSERT_EQ(0, cpr_vectors_unmask(vs, r.m));
	ASSERT_EQ(1, wait_irr(vm, lapic_vec(vs, r.m), IRR_WAIT_MS)) {
		TH_LOG("masked+pending vector %d lost by the failed exec", r.m);
	}
	ASSERT_EQ(0, cpr_vm_lapic_clear(vm, 0));
	bad_vec = check_every_vector(vs, vm, -1);
	ASSERT_EQ(-1, bad_vec) {
		TH_LOG("vector %d does not deliver after the failed exec", bad_vec);
	}
	cpr_vectors_free(vs, true);
	cpr_vm_destroy(vm);
	cpr_state_free(st);
}

TEST(failed_exec_rolls_back_and_keeps_delivering)
{
	char path[] = "/tmp/vfio_cpr_noexec.XXXXXX";
	int fd = mkstemp(path);

	failed_exec_keeps_delivering(_metadata, "/nonexistent/vfio-cpr-successor");
	ASSERT_LE(0, fd);
	close(fd);	/* mode 0600: not executable */
	failed_exec_keeps_delivering(_metadata, path);
	unlink(path);
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
		ksft_exit_skip("/dev/kvm not usable (%s): KVM tests need it\n",
			       strerror(errno));
	return test_harness_run(argc, argv);
}
