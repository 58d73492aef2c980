// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-cpr run: the VMM side.
 *
 * Generation 0 opens the devices (or makes N plain eventfds), enables their
 * interrupts, creates a VM with the real-mode guest, routes everything in,
 * forks the load process and starts the vCPU thread.  Every generation
 * then lets the ping-pong run for --dwell ms, stops its vCPU, detaches the
 * vectors and execs a new copy of the program with the CPR state.  The
 * successor takes the fds over (no VFIO setup ioctl), creates a new VM,
 * claims the vectors in one routing commit and starts its vCPU: whatever
 * the load raised in between is delivered now.  The last generation tells
 * the load to stop, collects its figures and reports.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vfio_cpr/fd.h"
#include "vfio_cpr/handoff.h"
#include "vfio_cpr/log.h"
#include "vfio_cpr_prog.h"

#define SHARED_FD_NAME	"vfio-cpr_shared"
#define SEC_LOAD_PID	"vfio-cpr.load_pid"
#define VCPU_POLL_MS	2
#define NOVDEV_VECTORS	64
#define APIC_ISR	0x100
/* first_setup(): a device lacks the --irq type (not an errno). */
#define VC_NOT_APPLICABLE	(-10000)

/* ---- vCPU thread ---- */

struct vcpu_ctl {
	struct vc_vmm *m;
	pthread_t thread;
	int stop;
	int err;
	unsigned int bad_vector;
};

/*
 * 1 if vCPU 0 has accepted an interrupt it has not reported yet (an ISR bit:
 * the poll's timer stopped KVM_RUN inside the handler), 0 if not, -errno.
 */
static int in_service(struct cpr_vm *vm)
{
	int fd = cpr_vm_vcpu_fd(vm, 0);
	struct kvm_lapic_state lapic;
	unsigned int i;
	__u32 isr;

	if (ioctl(fd, KVM_GET_LAPIC, &lapic))
		return cpr_err(-errno, "KVM_GET_LAPIC on vCPU 0 (fd %d)", fd);
	for (i = 0; i < 8; i++) {
		memcpy(&isr, lapic.regs + APIC_ISR + 16 * i, sizeof(isr));
		if (isr)
			return 1;
	}
	return 0;
}

static void took(struct vc_vmm *m, unsigned int vec)
{
	struct vc_shared *sh = m->sh;
	struct vc_gen *g = &sh->gen[m->generation];
	__u64 seq;

	if (!g->first_ns)
		g->first_ns = cpr_now_ns();
	__atomic_add_fetch(&sh->taken, 1, __ATOMIC_RELAXED);
	seq = __atomic_load_n(&sh->raised_seq, __ATOMIC_ACQUIRE);
	if (vec == __atomic_load_n(&sh->raised_vec, __ATOMIC_RELAXED) &&
	    seq > __atomic_load_n(&sh->acked_seq, __ATOMIC_RELAXED))
		__atomic_store_n(&sh->acked_seq, seq, __ATOMIC_RELEASE);
	else
		__atomic_add_fetch(&sh->strays, 1, __ATOMIC_RELAXED);
}

static void *vcpu_main(void *arg)
{
	struct vcpu_ctl *c = arg;
	struct vc_vmm *m = c->m;
	unsigned int vec, tries = 0;
	bool reported = false;	/* stopped right at a reported OUT */
	int ret;

	/* Timeouts are its polling; real errors are reported by vcpu_stop(). */
	cpr_log_set_thread_quiet(true);
	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		ret = cpr_vm_guest_wait(m->vm, 0, VCPU_POLL_MS, &vec);
		if (ret == -ETIMEDOUT) {
			reported = false;
			continue;
		}
		if (ret) {
			c->err = ret;
			return NULL;
		}
		took(m, vec);
		reported = true;
	}
	/*
	 * Stop only outside the handler: an interrupt the guest accepted has
	 * left the LAPIC's IRR, so the detach would not carry it.  Two signs:
	 * its ISR bit, and (unless the vCPU stopped at the OUT it just
	 * reported) its RIP inside a handler stub.
	 */
	for (;;) {
		ret = in_service(m->vm);
		if (!ret && !reported)
			ret = cpr_vm_guest_in_handler(m->vm, 0);
		if (ret <= 0)
			break;
		if (tries++ >= 100) {
			ret = -EBUSY;
			break;
		}
		ret = cpr_vm_guest_wait(m->vm, 0, 1, &vec);
		if (!ret) {
			took(m, vec);
			reported = true;
		} else if (ret == -ETIMEDOUT) {
			reported = false;
		} else {
			break;
		}
	}
	if (ret)
		c->err = ret;
	return NULL;
}

static int vcpu_start(struct vc_vmm *m, struct vcpu_ctl *c)
{
	int ret;

	memset(c, 0, sizeof(*c));
	c->m = m;
	ret = pthread_create(&c->thread, NULL, vcpu_main, c);
	if (ret)
		return cpr_err(-ret, "starting the vCPU thread of generation %llu",
			       (unsigned long long)m->generation);
	return 0;
}

static int vcpu_stop(struct vcpu_ctl *c)
{
	__atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
	pthread_join(c->thread, NULL);
	if (c->err)
		return cpr_err(c->err, "vCPU 0 of generation %llu stopped: %s",
			       (unsigned long long)c->m->generation,
			       cpr_last_error());
	return 0;
}

/* ---- Process figures ---- */

static unsigned int rss_kb(void)
{
	unsigned long size, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ---- Devices and vectors ---- */

static const char *dev_name(const struct vc_vmm *m, unsigned int i)
{
	return m->o->nr_devices ? m->o->devices[i] : VC_NOVDEV_NAME;
}

static int intx_attach(struct vc_vmm *m, unsigned int i)
{
	int ret = cpr_vm_ioapic_pin(m->vm, VC_INTX_PIN + i, VC_INTX_VEC + i,
				    false);

	return ret ? ret : cpr_vm_irqfd_assign(m->vm, m->dev[i].vdev->intx_fd,
					       VC_INTX_PIN + i, -1);
}

static int vm_setup(struct vc_vmm *m)
{
	unsigned int i;
	int ret;

	ret = cpr_vm_create(&m->vm, 1);
	if (ret)
		return ret;
	for (i = 0; i < m->o->nr_devices; i++) {
		ret = cpr_vm_vfio_add_group(m->vm,
					    cpr_vfio_kvm_file(m->dev[i].vdev));
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Every device's MSI/MSI-X vectors into m->vm with one KVM_SET_GSI_ROUTING,
 * as a VMM attaches its devices (INTx goes pin by pin: intx_attach(), and
 * nothing here).  How many commits it took is kept for the report.
 */
static int attach_sets(struct vc_vmm *m)
{
	struct cpr_vectors *vss[VC_MAX_DEVICES];
	const unsigned int before = cpr_vm_routing_commits(m->vm);
	unsigned int i;
	int ret;

	if (m->o->irq_index == VFIO_PCI_INTX_IRQ_INDEX)
		return 0;
	for (i = 0; i < m->nr_dev; i++)
		vss[i] = m->dev[i].vs;
	ret = cpr_vectors_attach_sets(m->vm, vss, m->nr_dev);
	m->sh->gen[m->generation].routing_commits =
		cpr_vm_routing_commits(m->vm) - before;
	return ret;
}

/*
 * MSI or MSI-X vectors 0 .. n - 1 of device @i (--vectors, else all it
 * has).  A host does not give a device a vector per table entry: where
 * the kernel has no room for all (ENOSPC) and --vectors was not given,
 * fewer - halving - as a VMM enables only what its guest uses; said on
 * stderr.
 */
static int enable_msi(struct vc_vmm *m, unsigned int i, unsigned int n)
{
	struct vc_dev *vd = &m->dev[i];
	const unsigned int all = n;
	int ret;

	if (m->o->vectors)
		return cpr_vfio_enable_msi(vd->vdev, m->o->irq_index,
					   m->o->vectors < n ? m->o->vectors : n,
					   &vd->vs);
	while ((ret = cpr_vfio_enable_msi(vd->vdev, m->o->irq_index, n,
					  &vd->vs)) == -ENOSPC && n > 1)
		n /= 2;
	if (!ret && n < all)
		fprintf(stderr,
			"vfio-cpr: %s: the kernel has no room for all %u %s vectors: using the first %u (--vectors chooses)\n",
			m->o->devices[i], all, cpr_vfio_irq_name(m->o->irq_index),
			n);
	return ret;
}

/* Generation 0: open, enable, route; the list of targets for the load. */
static int first_setup(struct vc_vmm *m)
{
	struct vc_opts *o = m->o;
	unsigned int i, j, n, total = 0;
	int ret;

	m->nr_dev = o->nr_devices ? o->nr_devices : 1;
	if (!o->nr_devices) {
		n = o->vectors ? o->vectors : NOVDEV_VECTORS;
		ret = cpr_vectors_create(m->st, VC_NOVDEV_NAME, CPR_IRQ_MSIX, n,
					 CPR_VEC_KVM, &m->dev[0].vs);
		if (ret)
			return ret;
	}
	for (i = 0; i < o->nr_devices; i++) {
		struct vc_dev *vd = &m->dev[i];

		ret = cpr_vfio_open(m->st, o->devices[i], &vd->vdev);
		if (!ret)
			ret = cpr_vfio_enable_device(vd->vdev);
		if (ret)
			return ret;
		n = cpr_vfio_irq_count(vd->vdev, o->irq_index);
		if (!n) {
			cpr_err(-ENODEV, "%s has no %s interrupt", o->devices[i],
				cpr_vfio_irq_name(o->irq_index));
			return VC_NOT_APPLICABLE;
		}
		if (o->irq_index == VFIO_PCI_INTX_IRQ_INDEX) {
			vd->intx = true;
			ret = cpr_vfio_enable_intx(vd->vdev);
		} else {
			ret = enable_msi(m, i, n);
		}
		if (ret)
			return ret;
	}

	ret = vm_setup(m);
	if (!ret)
		ret = attach_sets(m);
	for (i = 0; !ret && i < m->nr_dev; i++) {
		struct vc_dev *vd = &m->dev[i];
		const struct cpr_vfio_driver *drv = vd->vdev ? vd->vdev->drv : NULL;

		if (vd->intx)
			ret = intx_attach(m, i);
		if (!ret && drv && drv->setup)
			ret = drv->setup(vd->vdev, o->irq_index);
		total += vd->intx ? 1 : vd->vs->nr;
	}
	if (ret)
		return ret;

	m->targets = calloc(total, sizeof(*m->targets));
	if (!m->targets)
		return cpr_err(-ENOMEM, "%u interrupt targets", total);
	for (i = 0; i < m->nr_dev; i++) {
		struct vc_dev *vd = &m->dev[i];

		for (j = 0; j < (vd->intx ? 1 : vd->vs->nr); j++) {
			struct vc_target *t = &m->targets[m->nr_targets++];

			t->dev = i;
			t->vector = j;
			t->lapic_vec = vd->intx ? VC_INTX_VEC + i :
				       cpr_msi_msg_vector(&vd->vs->v[j].msg);
		}
	}
	return 0;
}

/* A successor: take everything over from the state, attach to a new VM. */
static int successor_setup(struct vc_vmm *m)
{
	struct vc_opts *o = m->o;
	unsigned int i;
	int ret;

	m->nr_dev = o->nr_devices ? o->nr_devices : 1;
	for (i = 0; i < o->nr_devices; i++) {
		struct vc_dev *vd = &m->dev[i];

		ret = cpr_vfio_take_over(m->st, o->devices[i], &vd->vdev);
		if (ret)
			return ret;
		vd->intx = o->irq_index == VFIO_PCI_INTX_IRQ_INDEX;
		if (vd->intx) {
			ret = cpr_vfio_enable_intx(vd->vdev);
			if (ret)
				return ret;
		}
	}
	ret = vm_setup(m);
	for (i = 0; !ret && i < m->nr_dev; i++) {
		struct vc_dev *vd = &m->dev[i];

		if (vd->intx)
			ret = intx_attach(m, i);
		else
			ret = cpr_vectors_claim(m->st, dev_name(m, i), NULL,
						&vd->vs);
		if (!ret && vd->vdev && vd->vdev->setup_ioctls)
			ret = cpr_err(-EPROTO,
				      "%s: the successor sent %u setup ioctls to the device while taking it over",
				      dev_name(m, i), vd->vdev->setup_ioctls);
	}
	return ret ? ret : attach_sets(m);
}

/* ---- The shared page ---- */

static int shared_create(struct vc_vmm *m)
{
	size_t size = sizeof(*m->sh) + (m->o->generations + 1ull) *
		      sizeof(struct vc_gen);

	m->sh_fd = memfd_create("vfio-cpr.shared", MFD_CLOEXEC);
	if (m->sh_fd < 0)
		return cpr_err(-errno, "memfd_create for the shared page");
	if (ftruncate(m->sh_fd, size))
		return cpr_err(-errno, "sizing the shared page to %zu bytes", size);
	m->sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, m->sh_fd, 0);
	if (m->sh == MAP_FAILED) {
		m->sh = NULL;
		return cpr_err(-errno, "mapping the shared page");
	}
	m->sh_size = size;
	m->sh->magic = VC_SHARED_MAGIC;
	m->sh->nr_gens = m->o->generations + 1;
	return cpr_state_save_fd(m->st, SHARED_FD_NAME, 0, m->sh_fd);
}

static int shared_resume(struct vc_vmm *m)
{
	struct stat sb;
	__u64 pid;
	int ret;

	m->sh_fd = cpr_state_find_fd(m->st, SHARED_FD_NAME, 0);
	if (m->sh_fd < 0)
		return cpr_err(-ENOENT, "the CPR state has no '%s' fd", SHARED_FD_NAME);
	if (fstat(m->sh_fd, &sb))
		return cpr_err(-errno, "fstat of the shared page fd %d", m->sh_fd);
	if ((size_t)sb.st_size < sizeof(*m->sh))
		return cpr_err(-EBADMSG, "shared page of %lld bytes", (long long)sb.st_size);
	m->sh = mmap(NULL, sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		     m->sh_fd, 0);
	if (m->sh == MAP_FAILED) {
		m->sh = NULL;
		return cpr_err(-errno, "mapping the inherited shared page");
	}
	m->sh_size = sb.st_size;
	if (m->sh->magic != VC_SHARED_MAGIC ||
	    m->sh->nr_gens != m->o->generations + 1 ||
	    sizeof(*m->sh) + m->sh->nr_gens * sizeof(struct vc_gen) > m->sh_size)
		return cpr_err(-EBADMSG,
			       "inherited shared page does not match (magic 0x%x, %u generations; this run wants %u)",
			       m->sh->magic, m->sh->nr_gens - 1, m->o->generations);
	if (m->generation > m->o->generations)
		return cpr_err(-EPROTO, "generation %llu of %u",
			       (unsigned long long)m->generation, m->o->generations);
	ret = cpr_state_get_u64(m->st, SEC_LOAD_PID, &pid);
	if (ret)
		return cpr_err(ret, "the CPR state has no '%s'", SEC_LOAD_PID);
	m->load_pid = pid;
	return 0;
}

static int load_start(struct vc_vmm *m)
{
	pid_t parent = getpid();

	fflush(NULL);
	m->load_pid = fork();
	if (m->load_pid < 0)
		return cpr_err(-errno, "forking the load process");
	if (!m->load_pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(VC_EXIT_SETUP);
		vc_load_main(m);
	}
	return cpr_state_set_u64(m->st, SEC_LOAD_PID, m->load_pid);
}

/* ---- Generations ---- */

static void note_gen(struct vc_vmm *m)
{
	struct vc_gen *g = &m->sh->gen[m->generation];
	int open;

	g->attached_ns = cpr_now_ns();
	open = cpr_open_fds();
	g->open_fds = open > 0 ? open : 0;
	g->rss_kb = rss_kb();
	__atomic_store_n(&m->sh->generation, m->generation, __ATOMIC_RELEASE);
}

static int detach_all(struct vc_vmm *m)
{
	unsigned int i;
	int ret = 0;

	for (i = 0; !ret && i < m->nr_dev; i++) {
		struct vc_dev *vd = &m->dev[i];

		if (vd->intx)
			ret = cpr_vfio_intx_detach(vd->vdev, m->vm, VC_INTX_PIN + i,
						   0, VC_INTX_VEC + i);
		else
			ret = cpr_vectors_detach(vd->vs);
	}
	return ret;
}

static int dump_state(struct vc_vmm *m)
{
	size_t len, off = 0;
	void *buf;
	int fd, ret;

	ret = cpr_state_to_buf(m->st, &buf, &len);
	if (ret)
		return ret;
	fd = open(m->o->dump_state, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		  0644);
	if (fd < 0) {
		ret = cpr_err(-errno, "--dump-state: opening %s", m->o->dump_state);
		goto out;
	}
	while (off < len) {
		ssize_t n = write(fd, (char *)buf + off, len - off);

		if (n <= 0) {
			ret = cpr_err(n < 0 ? -errno : -EIO, "--dump-state: writing %s",
				      m->o->dump_state);
			break;
		}
		off += n;
	}
	close(fd);
out:
	free(buf);
	return ret;
}

/* The last generation: stop the load, collect its figures, report. */
static int last_generation(struct vc_vmm *m, struct vcpu_ctl *vcpu)
{
	struct vc_shared *sh = m->sh;
	__u64 end = cpr_now_ns() + (m->o->timeout_ms + 2000ull) * 1000000ull;
	bool passed = true;
	int status = 0;
	pid_t got;

	__atomic_store_n(&sh->stop, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&sh->load_done, __ATOMIC_ACQUIRE) &&
	       cpr_now_ns() < end)
		usleep(1000);
	if (vcpu_stop(vcpu)) {
		fprintf(stderr, "vfio-cpr: %s\n", cpr_last_error());
		passed = false;
	}
	if (!sh->load_done) {
		fprintf(stderr, "vfio-cpr: the load process did not end within %u ms of the stop\n",
			m->o->timeout_ms + 2000);
		kill(m->load_pid, SIGKILL);
		passed = false;
	}
	got = waitpid(m->load_pid, &status, 0);
	if (got != m->load_pid || !WIFEXITED(status) || WEXITSTATUS(status))
		passed = false;
	if (sh->load_failed || sh->unacked || sh->delivered != sh->raised)
		passed = false;
	vc_report(m, passed, stdout);
	return passed ? VC_EXIT_OK : VC_EXIT_LOST;
}

static void stop_load(struct vc_vmm *m)
{
	if (m->sh)
		__atomic_store_n(&m->sh->stop, 1, __ATOMIC_RELEASE);
	if (m->load_pid > 0) {
		usleep(100000);
		kill(m->load_pid, SIGKILL);
		waitpid(m->load_pid, NULL, 0);
	}
}

static unsigned int carried(const struct vc_vmm *m)
{
	unsigned int i, j, n = 0;

	for (i = 0; i < m->nr_dev; i++)
		for (j = 0; m->dev[i].vs && j < m->dev[i].vs->nr; j++)
			n += m->dev[i].vs->v[j].lapic_pending;
	return n;
}

/* Is the eventfd of the raise in flight counting (no device only)? */
static int flight_eventfd(const struct vc_vmm *m)
{
	unsigned int vec = __atomic_load_n(&m->sh->raised_vec, __ATOMIC_ACQUIRE);
	unsigned int j;

	if (m->o->nr_devices || !m->dev[0].vs)
		return -1;
	for (j = 0; j < m->dev[0].vs->nr; j++) {
		struct pollfd p = { .fd = m->dev[0].vs->v[j].kvm_fd, .events = POLLIN };

		if (cpr_msi_msg_vector(&m->dev[0].vs->v[j].msg) == vec)
			return poll(&p, 1, 0) == 1;
	}
	return -1;
}

/* Where is the raise the load waits for?  For the report of a loss. */
static void diagnose(struct vc_vmm *m)
{
	struct vc_shared *sh = m->sh;
	const struct vc_gen *g = &sh->gen[m->generation];
	unsigned int vec = sh->raised_vec, i, j;
	__u64 irr[4] = { 0 };

	cpr_vm_lapic_irr(m->vm, 0, irr);
	fprintf(stderr,
		"vfio-cpr: lost raise %llu (LAPIC vector 0x%x) in generation %llu: at the stop before it raise %llu acked %llu, in the old IRR %d, its eventfd counting after the detach %d, %u vector(s) carried from the old LAPIC; now IRR bit %d, in service %d\n",
		(unsigned long long)sh->raised_seq, vec,
		(unsigned long long)m->generation,
		(unsigned long long)g->stop_raised_seq,
		(unsigned long long)g->stop_acked_seq, g->flight_irr_stop,
		g->flight_evt_detach, g->carried,
		!!(irr[vec / 64] & (1ull << (vec % 64))), in_service(m->vm));
	fprintf(stderr,
		"vfio-cpr: the load's write of that raise returned %+.3f ms from the vCPU stop; the detach returned %+.3f ms from it\n",
		((double)sh->raised_write_ns - (double)g->stop_ns) / 1e6,
		((double)g->detached_ns - (double)g->stop_ns) / 1e6);
	for (i = 0; i < m->nr_dev; i++) {
		for (j = 0; m->dev[i].vs && j < m->dev[i].vs->nr; j++) {
			const struct cpr_vector *v = &m->dev[i].vs->v[j];
			struct pollfd p = { .fd = v->kvm_fd, .events = POLLIN };

			if (cpr_msi_msg_vector(&v->msg) != vec)
				continue;
			fprintf(stderr,
				"vfio-cpr: %s vector %u: GSI %d, irqfd %s, eventfd %d %s\n",
				dev_name(m, i), j, v->virq,
				v->attached ? "attached" : "not attached", v->kvm_fd,
				poll(&p, 1, 0) == 1 ? "holds a count" : "empty");
		}
	}
}

static int serve(struct vc_vmm *m, char **argv)
{
	struct vc_shared *sh = m->sh;
	struct vc_gen *next;
	struct vcpu_ctl vcpu;
	__u64 end;
	int ret;

	note_gen(m);
	ret = vcpu_start(m, &vcpu);
	if (ret)
		return ret;
	if (m->generation == m->o->generations)
		return last_generation(m, &vcpu);

	end = cpr_now_ns() + m->o->dwell_ms * 1000000ull;
	while (cpr_now_ns() < end && !sh->load_done)
		usleep(1000);
	/* Also wait until the new VM delivered once: a blackout each time. */
	end = cpr_now_ns() + m->o->timeout_ms * 1000000ull;
	while (m->generation && !sh->gen[m->generation].first_ns &&
	       !sh->load_done && cpr_now_ns() < end)
		usleep(200);
	if (sh->load_done) {
		/* The load gave up: report now, from this generation. */
		vcpu_stop(&vcpu);
		diagnose(m);
		waitpid(m->load_pid, NULL, 0);
		vc_report(m, false, stdout);
		return VC_EXIT_LOST;
	}

	next = &sh->gen[m->generation + 1];
	next->stop_ns = cpr_now_ns();
	ret = vcpu_stop(&vcpu);
	next->stop_raised_seq = __atomic_load_n(&sh->raised_seq, __ATOMIC_ACQUIRE);
	next->stop_acked_seq = __atomic_load_n(&sh->acked_seq, __ATOMIC_ACQUIRE);
	next->flight_irr_stop = cpr_vm_lapic_irr_test(m->vm, 0,
						      __atomic_load_n(&sh->raised_vec,
								      __ATOMIC_ACQUIRE));
	if (!ret)
		ret = detach_all(m);
	next->detached_ns = cpr_now_ns();
	next->carried = carried(m);
	next->flight_evt_detach = flight_eventfd(m);
	if (!ret && m->o->dump_state)
		ret = dump_state(m);
	if (!ret) {
		vc_progress(m);
		ret = cpr_exec(m->st, "/proc/self/exe", argv);
		cpr_err(ret, "exec into generation %llu: %s",
			(unsigned long long)m->generation + 1, cpr_last_error());
	}
	return ret;
}

/*
 * Two eventfds a vector: a wide MSI-X table needs more fds than the usual
 * soft limit of 1024.  As a VMM does, take the hard limit (the successors
 * inherit it).
 */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int vc_run(struct vc_opts *o, char **argv)
{
	struct cpr_resume_info info;
	struct vc_vmm m = { .o = o, .sh_fd = -1, .load_pid = -1 };
	int ret;

	/* Each failure is printed once, below, with its generation. */
	cpr_log_set_errors_quiet(true);
	ret = cpr_resume(&info);
	if (ret < 0) {
		fprintf(stderr, "vfio-cpr: taking over the handed-off state failed: %s\n",
			cpr_last_error());
		return VC_EXIT_SETUP;
	}
	if (ret == 1) {
		m.st = info.st;
		m.generation = info.generation;
		ret = shared_resume(&m);
		if (!ret && info.leaked_fds > 0)
			ret = cpr_err(-EBADFD,
				      "generation %llu inherited %d fds the state does not name",
				      (unsigned long long)m.generation, info.leaked_fds);
		if (!ret)
			ret = successor_setup(&m);
	} else {
		if (access("/dev/kvm", R_OK | W_OK)) {
			fprintf(stderr, "vfio-cpr: /dev/kvm not usable: %s\n",
				strerror(errno));
			return VC_EXIT_ENV;
		}
		raise_nofile();
		m.st = cpr_state_new();
		if (!m.st)
			return VC_EXIT_SETUP;
		ret = shared_create(&m);
		if (!ret)
			ret = first_setup(&m);
		if (!ret)
			ret = load_start(&m);
	}
	if (!ret)
		ret = serve(&m, argv);
	if (ret == VC_NOT_APPLICABLE) {
		fprintf(stderr, "vfio-cpr: %s\n", cpr_last_error());
		stop_load(&m);
		return VC_EXIT_ENV;
	}
	if (ret < 0) {
		fprintf(stderr, "vfio-cpr: generation %llu failed: %s\n",
			(unsigned long long)m.generation, cpr_last_error());
		stop_load(&m);
		return VC_EXIT_SETUP;
	}
	return ret;
}
