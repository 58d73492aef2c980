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
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "cpr_test_util.h"
#include "vfio_cpr/handoff.h"
#include "vfio_cpr/kvm.h"
#include "vfio_cpr/vectors.h"

#define DEV		"kvmtest"
#define GENERATIONS	3
#define IRR_WAIT_MS	1000
#define GUEST_WAIT_MS	5000

/*
 * Roles in each handoff (all on distinct LAPIC vectors): P stays pending in
 * the old VM's IRR, M is masked and pending, B is raised in the blackout.
 * With fewer than 3 vectors only B is exercised.
 */
struct roles {
	int p, m, b;
};

static struct roles roles_of(unsigned int nr)
{
	struct roles r = { -1, -1, 0 };

	if (nr >= 3) {
		r.p = nr - 1;
		r.m = 1;
		r.b = 2;
	}
	return r;
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
 * Leave the vectors as a handoff finds them in a running VMM, detach them
 * from @vm and raise B in the blackout.  Returns a message on failure.
 */
static const char *prepare_handoff(struct cpr_vectors *vs, struct cpr_vm *vm)
{
	struct roles r = roles_of(vs->nr);
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
	if (cpr_vectors_detach(vs))
		return "detaching the vectors from the old VM";
	if (raise_vector(vs, r.b))
		return "raising vector B in the blackout";
	if (cpr_vm_lapic_irr_test(vm, 0, lapic_vec(vs, r.b)))
		return "vector B reached the old VM after its irqfd was detached";
	return NULL;
}

static int exec_next(struct cpr_state *st, unsigned int nr)
{
	char arg[16];

	snprintf(arg, sizeof(arg), "%u", nr);
	return cpr_test_exec_self(st, "kvm", arg);
}

static int successor_kvm(const char *arg)
{
	struct cpr_resume_info info;
	struct cpr_vectors *vs;
	struct cpr_vm *vm;
	unsigned int nr = atoi(arg), got;
	struct roles r = roles_of(nr);
	__u64 seen_ns, handled = 0;
	const char *why;
	int ret, bad;

	cpr_test_resume(&info);
	SUCC_ASSERT_EQ(0, cpr_vm_create(&vm, 1), "creating VM #%llu",
		       (unsigned long long)info.generation);

	ret = cpr_vectors_claim(info.st, DEV, vm, &vs);
	SUCC_ASSERT_EQ(0, ret,
		       "claiming %u vectors in VM #%llu: KVM_IRQFD on the eventfds inherited across exec must succeed at once (the old VM died with the exec)",
		       nr, (unsigned long long)info.generation);
	SUCC_ASSERT_EQ(nr, vs->nr, "vector count saved in the state");
	SUCC_ASSERT_EQ(1, vm->routing_commits,
		       "%u vectors must be routed in ONE KVM_SET_GSI_ROUTING",
		       nr);
	SUCC_ASSERT_EQ(nr, cpr_vm_nr_routes(vm), "routes staged in VM #%llu",
		       (unsigned long long)info.generation);

	/* The blackout ends when B, raised while no VM listened, arrives. */
	ret = wait_irr(vm, lapic_vec(vs, r.b), IRR_WAIT_MS);
	seen_ns = cpr_now_ns();
	SUCC_ASSERT_EQ(1, ret,
		       "vector %d raised in the blackout was not injected into VM #%llu when its irqfd was attached",
		       r.b, (unsigned long long)info.generation);
	/* From the irqfd detach to the first interrupt seen in the new VM. */
	printf("# generation %llu, %u vectors: blackout %.3f ms\n",
	       (unsigned long long)info.generation, nr,
	       (seen_ns - info.handoff_start_ns) / 1e6);
	printf("# generation %llu: KVM_IRQFD on %u inherited eventfds succeeded right after exec\n",
	       (unsigned long long)info.generation, nr);

	if (r.p >= 0)
		SUCC_ASSERT_EQ(1, cpr_vm_lapic_irr_test(vm, 0,
							lapic_vec(vs, r.p)),
			       "vector %d was pending in the old VM's LAPIC at handoff and was lost",
			       r.p);
	/* Delivered once: nothing comes back after the LAPIC is cleared. */
	SUCC_ASSERT_EQ(0, cpr_vm_lapic_clear(vm, 0), "LAPIC clear");
	usleep(1000);
	SUCC_ASSERT_EQ(0, cpr_vm_lapic_irr_test(vm, 0, lapic_vec(vs, r.b)),
		       "vector %d raised once in the blackout was delivered twice",
		       r.b);
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
		       bad, (unsigned long long)info.generation);

	ret = check_guest_takes(vs, vm, info.generation % nr, &got);
	SUCC_ASSERT_EQ(0, ret,
		       "real-mode vCPU of VM #%llu did not take vector %llu (LAPIC 0x%x) in its handler, got 0x%x",
		       (unsigned long long)info.generation,
		       (unsigned long long)info.generation % nr,
		       lapic_vec(vs, info.generation % nr), got);

	if (info.generation == GENERATIONS) {
		cpr_vectors_free(vs, true);
		cpr_vm_destroy(vm);
		cpr_state_free(info.st);
		return 0;
	}

	why = prepare_handoff(vs, vm);
	SUCC_ASSERT(!why, "generation %llu: %s",
		    (unsigned long long)info.generation, why);
	ret = exec_next(info.st, nr);
	SUCC_FAIL("exec into generation %llu: %d",
		  (unsigned long long)info.generation + 1, ret);
}

FIXTURE(kvm_cpr) {
	struct cpr_state *st;
	struct cpr_vectors *vs;
	struct cpr_vm *vm;
};

FIXTURE_VARIANT(kvm_cpr) {
	unsigned int nr;
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
	int bad, ret;

	EXPECT_EQ(1u, self->vm->routing_commits) {
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

	why = prepare_handoff(self->vs, self->vm);
	ASSERT_EQ(NULL, why) {
		TH_LOG("VM #0: %s: %s", why, cpr_last_error());
	}
	exec_next(self->st, variant->nr);
	TH_LOG("exec into the successor failed: %s", cpr_last_error());
	ASSERT_TRUE(false);
}

int main(int argc, char **argv)
{
	cpr_test_raise_nofile();
	if (argc >= 4 && !strcmp(argv[1], CPR_TEST_SUCCESSOR) &&
	    !strcmp(argv[2], "kvm"))
		return successor_kvm(argv[3]);
	if (access("/dev/kvm", R_OK | W_OK))
		ksft_exit_skip("/dev/kvm not usable (%s): KVM tests need it\n",
			       strerror(errno));
	return test_harness_run(argc, argv);
}
