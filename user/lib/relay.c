// SPDX-License-Identifier: GPL-2.0-only
/*
 * The relay (cpr_vectors_relay()): ahead of a handoff, a thread of the
 * library reads the eventfds of vectors that gave up their irqfds and
 * injects what it reads with KVM_SIGNAL_MSI, so that KVM's slow irqfd
 * teardown happens before the blackout instead of in it.  The VM knows a
 * running relay only through its hook (struct cpr_relay_hook), by which
 * cpr_vm_destroy() and cpr_vectors_detach_vm() end it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vfio_cpr/handoff.h"
#include "vfio_cpr/log.h"
#include "vfio_cpr/vectors.h"

#include "internal.h"

#define RELAY_STOP	UINT32_MAX	/* epoll data of the stop eventfd */
#define RELAY_BATCH	64

struct relay_vec {
	struct cpr_vectors *vs;
	unsigned int i;
};

struct cpr_relay {
	struct cpr_relay_hook hook;	/* hook.nr: relayed vectors in rv[] */
	struct cpr_vm *vm;
	pthread_t thread;
	bool started;
	int epfd, stop_fd;
	struct relay_vec *rv;
	int err;			/* the thread's first failure */
	char errmsg[CPR_ERRMSG_MAX];
};

/* The relay @vm runs, or NULL. */
static struct cpr_relay *relay_of(struct cpr_vm *vm)
{
	struct cpr_relay_hook *hook = cpr_vm_priv(vm)->relay;

	return hook ? container_of(hook, struct cpr_relay, hook) : NULL;
}

/* In the thread: keep the first failure and its message for the caller. */
static void relay_fail(struct cpr_relay *r, int err)
{
	if (r->err)
		return;
	snprintf(r->errmsg, sizeof(r->errmsg), "%s", cpr_last_error());
	r->err = err;
}

/* What is on the k-th relayed vector's eventfd, injected as one MSI. */
static void relay_one(struct cpr_relay *r, unsigned int k)
{
	struct cpr_vectors *vs = r->rv[k].vs;
	unsigned int i = r->rv[k].i;
	struct cpr_vector *v = &vs->v[i];
	__u64 count;
	ssize_t n;
	int ret;

	n = read(v->kvm_fd, &count, sizeof(count));
	if (n == sizeof(count)) {
		ret = cpr_vm_signal_msi(r->vm, &v->msg);
		if (ret)
			relay_fail(r, cpr_err(ret,
					      "%s: relay: injecting vector %u (%llu signals read from eventfd %d)",
					      vs->dev, v->entry,
					      (unsigned long long)count,
					      v->kvm_fd));
	} else if (n >= 0 || errno != EAGAIN) {
		relay_fail(r, cpr_err(n < 0 ? -errno : -EIO,
				      "%s: relay: reading eventfd %d of vector %u",
				      vs->dev, v->kvm_fd, v->entry));
	}
}

static void *relay_run(void *arg)
{
	struct cpr_relay *r = arg;
	struct epoll_event ev[RELAY_BATCH];
	bool stop = false;
	int n, k;

	while (!stop) {
		n = epoll_wait(r->epfd, ev, RELAY_BATCH, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* Signals wait in the counters: late, not lost. */
			relay_fail(r, cpr_err(-errno, "relay: epoll_wait on fd %d",
					      r->epfd));
			break;
		}
		/* What was read is injected, even with the stop in the batch. */
		for (k = 0; k < n; k++) {
			if (ev[k].data.u32 == RELAY_STOP)
				stop = true;
			else
				relay_one(r, ev[k].data.u32);
		}
	}
	return NULL;
}

/*
 * Stop the thread and wait for it: whatever it read is in a LAPIC by then,
 * the rest waits in the eventfd counters.  Tearing the epoll set down
 * takes a microsecond a vector: in a handoff (@dispose) the successor
 * closes it instead (cpr_dispose_fd()).  Returns the thread's first
 * failure.
 */
static int relay_end(struct cpr_vm *vm, bool dispose)
{
	struct cpr_relay *r = relay_of(vm);
	__u64 one = 1;
	unsigned int k;
	int err;

	if (!r)
		return 0;
	if (r->started) {
		if (write(r->stop_fd, &one, sizeof(one)) != sizeof(one))
			/* Cannot happen to a fresh eventfd; never hang here. */
			pthread_cancel(r->thread);
		pthread_join(r->thread, NULL);
	}
	for (k = 0; k < r->hook.nr; k++)
		r->rv[k].vs->v[r->rv[k].i].relayed = false;
	if (r->epfd >= 0 && dispose)
		cpr_dispose_fd(r->epfd);
	else if (r->epfd >= 0)
		close(r->epfd);
	if (r->stop_fd >= 0)
		close(r->stop_fd);
	err = r->err;
	if (err)
		cpr_err(err, "relay of vm fd %d: %s", vm->vm_fd, r->errmsg);
	free(r->rv);
	free(r);
	cpr_vm_priv(vm)->relay = NULL;
	return err;
}

static int vm_live_check(struct cpr_vm *vm, const char *what)
{
	if (cpr_vm_priv(vm)->quiesced)
		return cpr_err(-ESHUTDOWN, "%s of a VM quiesced for a handoff",
			       what);
	return 0;
}

/* A thread that takes no signal: they are the VMM's business. */
static int relay_start(struct cpr_relay *r)
{
	sigset_t all, old;
	int ret;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&r->thread, NULL, relay_run, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		return cpr_err(-ret, "starting the relay thread of vm fd %d",
			       r->vm->vm_fd);
	r->started = true;
	return 0;
}

int cpr_vectors_relay(struct cpr_vm *vm, struct cpr_vectors *const *vss,
		      unsigned int nr_sets)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct cpr_relay *r;
	unsigned int i, j, attached;
	int ret;

	if (cpr_vm_priv(vm)->relay)
		return cpr_err(-EBUSY, "relay of vm fd %d: already running",
			       vm->vm_fd);
	ret = vm_live_check(vm, "relay");
	if (!ret)
		ret = cpr_vectors_sets_check(vm, vss, nr_sets, "relay",
					     &attached);
	if (ret)
		return ret;
	r = calloc(1, sizeof(*r));
	if (r)
		r->rv = calloc(attached + 1, sizeof(*r->rv));
	if (!r || !r->rv) {
		free(r);
		return cpr_err(-ENOMEM, "relay of %u vectors of vm fd %d",
			       attached, vm->vm_fd);
	}
	r->hook.end = relay_end;
	r->vm = vm;
	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	r->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cpr_vm_priv(vm)->relay = &r->hook;
	if (r->epfd < 0 || r->stop_fd < 0) {
		ret = cpr_err(-errno, "relay of vm fd %d: epoll and eventfd",
			      vm->vm_fd);
		goto undo;
	}
	ev.data.u32 = RELAY_STOP;
	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->stop_fd, &ev)) {
		ret = cpr_err(-errno, "relay of vm fd %d: adding stop eventfd %d to epoll fd %d",
			      vm->vm_fd, r->stop_fd, r->epfd);
		goto undo;
	}
	ret = relay_start(r);
	if (ret)
		goto undo;

	/*
	 * The deassign waits until KVM's irqfd is gone (a signal until then
	 * went to the VM), and whatever its shutdown found in the counter it
	 * had injected already; from then on the counter is the relay's.
	 */
	for (i = 0; i < nr_sets; i++) {
		struct cpr_vectors *vs = vss[i];

		for (j = 0; j < vs->nr && vs->vm; j++) {
			struct cpr_vector *v = &vs->v[j];

			if (!v->attached)
				continue;
			ret = cpr_vm_irqfd_deassign(vm, v->kvm_fd, v->virq);
			if (ret) {
				cpr_err(ret, "%s: relay: detaching vector %u (eventfd %d, GSI %d)",
					vs->dev, v->entry, v->kvm_fd, v->virq);
				goto undo;
			}
			v->attached = false;
			v->relayed = true;
			r->rv[r->hook.nr].vs = vs;
			r->rv[r->hook.nr].i = j;
			ev.data.u32 = r->hook.nr++;
			if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, v->kvm_fd, &ev)) {
				ret = cpr_err(-errno,
					      "%s: relay: adding eventfd %d of vector %u to epoll fd %d",
					      vs->dev, v->kvm_fd, v->entry, r->epfd);
				goto undo;
			}
		}
	}
	return 0;

undo:
	cpr_vectors_unrelay(vm);
	return ret;
}

int cpr_vectors_unrelay(struct cpr_vm *vm)
{
	struct cpr_relay *r = relay_of(vm);
	struct relay_vec *rv;
	unsigned int k, nr;
	int ret, err = 0;

	if (!r)
		return 0;
	/*
	 * The thread first: a signal it did not read stays in the counter,
	 * and KVM injects that when the irqfd comes back.  Reassigning
	 * under a running relay could inject one signal twice.
	 */
	nr = r->hook.nr;
	rv = malloc((nr + 1) * sizeof(*rv));
	if (!rv)
		return cpr_err(-ENOMEM, "unrelay of %u vectors", nr);
	memcpy(rv, r->rv, nr * sizeof(*rv));
	err = relay_end(vm, false);
	for (k = 0; k < nr; k++) {
		ret = cpr_vector_irqfd(rv[k].vs, rv[k].i);
		if (ret && !err)
			err = ret;
	}
	free(rv);
	return err;
}
