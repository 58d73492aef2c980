// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-cpr run: the ping-pong load.
 *
 * A child of generation 0 that outlives every exec of its parent (an exec
 * keeps the pid, so it stays the parent).  It raises one interrupt at a
 * time, round robin over every vector of every device, and waits until the
 * guest has taken exactly that one (the VMM's vCPU thread acknowledges the
 * sequence number in the shared page) before it raises the next: so every
 * raise must be delivered, across every handoff, within --timeout ms.
 * Raising is the device's (through its small driver, or a software trigger)
 * or, without a device, a write to the vector's irqfd eventfd.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vfio_cpr/fd.h"
#include "vfio_cpr/log.h"
#include "vfio_cpr_prog.h"

static int raise_target(struct vc_vmm *m, const struct vc_target *t)
{
	struct vc_dev *vd = &m->dev[t->dev];
	__u64 one = 1;

	if (!vd->vdev) {
		if (write(vd->vs->v[t->vector].kvm_fd, &one, sizeof(one)) !=
		    sizeof(one))
			return cpr_err(-errno, "writing eventfd %d of vector %u",
				       vd->vs->v[t->vector].kvm_fd, t->vector);
		return 0;
	}
	return cpr_vfio_raise(vd->vdev, m->o->irq_index, t->vector);
}

/* After the guest took it: clear the device's condition, unmask INTx. */
static int ack_target(struct vc_vmm *m, const struct vc_target *t)
{
	struct vc_dev *vd = &m->dev[t->dev];
	struct cpr_vfio_dev *d = vd->vdev;

	if (!d)
		return 0;
	if (d->drv && d->drv->ack)
		d->drv->ack(d, m->o->irq_index);
	return vd->intx ? cpr_vfio_intx_unmask(d) : 0;
}

static void __printf(2, 3)
load_fail(struct vc_shared *sh, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sh->load_error, sizeof(sh->load_error), fmt, ap);
	va_end(ap);
	sh->load_failed = 1;
}

static const char *target_dev(const struct vc_vmm *m,
			      const struct vc_target *t)
{
	return m->o->nr_devices ? m->o->devices[t->dev] : VC_NOVDEV_NAME;
}

void vc_load_main(struct vc_vmm *m)
{
	struct vc_shared *sh = m->sh;
	__u64 timeout_ns = m->o->timeout_ms * 1000000ull;
	__u64 seq = 0;
	unsigned int k = 0;

	cpr_log_set_quiet(true);
	while (!__atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE)) {
		const struct vc_target *t = &m->targets[k];
		__u64 t0, wait;
		unsigned int spins = 0;

		k = (k + 1) % m->nr_targets;
		seq++;
		__atomic_store_n(&sh->raised_vec, t->lapic_vec, __ATOMIC_RELAXED);
		__atomic_store_n(&sh->raised_seq, seq, __ATOMIC_RELEASE);
		t0 = cpr_now_ns();
		if (raise_target(m, t)) {
			load_fail(sh, "raise %llu: %s %s vector %u: %s",
				  (unsigned long long)seq, target_dev(m, t),
				  cpr_vfio_irq_name(m->o->irq_index), t->vector,
				  cpr_last_error());
			break;
		}
		__atomic_store_n(&sh->raised_write_ns, cpr_now_ns(), __ATOMIC_RELEASE);
		sh->raised++;
		while (__atomic_load_n(&sh->acked_seq, __ATOMIC_ACQUIRE) < seq) {
			if (cpr_now_ns() - t0 > timeout_ns)
				break;
			if (++spins < 200)
				sched_yield();
			else
				usleep(50);
		}
		wait = cpr_now_ns() - t0;
		if (__atomic_load_n(&sh->acked_seq, __ATOMIC_ACQUIRE) < seq) {
			sh->unacked++;
			load_fail(sh,
				  "raise %llu (%s %s vector %u, LAPIC vector 0x%x) was not taken by the guest within %u ms (generation %llu)",
				  (unsigned long long)seq, target_dev(m, t),
				  cpr_vfio_irq_name(m->o->irq_index), t->vector,
				  t->lapic_vec, m->o->timeout_ms,
				  (unsigned long long)__atomic_load_n(&sh->generation,
								      __ATOMIC_ACQUIRE));
			break;
		}
		sh->delivered++;
		if (wait > sh->max_wait_ns) {
			sh->max_wait_ns = wait;
			sh->max_wait_gen = __atomic_load_n(&sh->generation,
							   __ATOMIC_ACQUIRE);
		}
		if (ack_target(m, t)) {
			load_fail(sh, "acknowledging %s after raise %llu: %s",
				  target_dev(m, t), (unsigned long long)seq,
				  cpr_last_error());
			break;
		}
	}
	__atomic_store_n(&sh->load_done, 1, __ATOMIC_RELEASE);
	_exit(sh->load_failed ? VC_EXIT_LOST : VC_EXIT_OK);
}
