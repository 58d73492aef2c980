// SPDX-License-Identifier: GPL-2.0-only
/*
 * CPR of a whole VMM: one process holding every device of
 * VFIO_CPR_DEVICES at once, each with its richest IRQ type (MSI-X, else
 * MSI, else INTx), all of them in one KVM VM of several vCPUs, hands over
 * in one handoff - by exec, or over a UNIX socket to a process of its own
 * - and its successor rebuilds every vector of every device without
 * touching a device and attaches them all to a new VM in one routing
 * commit.  vfio_cpr_test checks each device on its own, behaviour by
 * behaviour; this checks that a VMM's handoff loses nothing of any of them.
 *
 * Devices: VFIO_CPR_DEVICES=<BDF or mdev UUID>[,<...>] (commas or spaces),
 * or the first argument; none given, the program skips.  One device runs
 * too (a one-device VMM), saying so.
 *
 * Fixture vmm_cpr, variants group_exec, group_socket, cdev_exec,
 * cdev_socket (interface, handoff mode).  FIXTURE_SETUP takes every device
 * as the VMM holds it: opened through the variant's interface, IO, memory
 * and bus mastering on, ERR/REQ notifiers, one device helper for all (the
 * process that keeps the device fds for the few VFIO_DEVICE_SET_IRQS a
 * successor may ask for), VM #0 with every group or cdev in its KVM-VFIO
 * device, every IRQ enabled - MSI-X with as many entries as the kernel
 * grants - and routed into VM #0, the MSI/MSI-X vectors of all devices in
 * one routing commit, each vector with a LAPIC vector and vCPU of its own
 * (as long as 4 vCPUs x 192 vectors last), each INTx on an IOAPIC pin of
 * its own; then each device's interrupt sources are set up.
 *
 * Each TEST_F tells one story: it sets the scene in VM #0, hands over once,
 * and the successor - under the lockdown from its first instruction: every
 * VFIO setup ioctl refused by the kernel - checks one behaviour.  Every
 * successor also checks what all of them must hold: every device reused,
 * none re-opened, no setup ioctl; the vectors claimed exactly as VM #0 held
 * them; each group or cdev out of the old VM's KVM-VFIO device before the
 * new VM added it; every vector of every device routed in one
 * KVM_SET_GSI_ROUTING.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <linux/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "cpr_assert.h"
#include "cpr_mdev_renew.h"
#include "cpr_msix_take.h"
#include "cpr_test_util.h"
#include "cpr_vector_set.h"
#include "vfio_cpr/handoff.h"
#include "vfio_cpr/kvm.h"
#include "vfio_cpr/lockdown.h"
#include "vfio_cpr/transfer.h"
#include "vfio_cpr/vectors.h"
#include "vfio_cpr/vfio.h"
#include "vfio_cpr/vfio_helper.h"

#define VMM_DEVS_MAX	CPR_HELPER_DEVS_MAX
#define VMM_VCPUS	4
/* MSI/MSI-X vectors take LAPIC vectors 0x30-0xef, spread over the vCPUs. */
#define MSI_VEC_FIRST	0x30
#define MSI_VEC_SLOTS	0xc0
#define MSI_SLOTS	(VMM_VCPUS * MSI_VEC_SLOTS)
/* The k-th INTx device: IOAPIC pin 16 + k (edge), vector 0xf0 + k, vCPU 0. */
#define INTX_PIN_FIRST	16
#define INTX_VEC_FIRST	0xf0
#define INTX_MAX	8
/* Vectors of one device raised in the blackout, spread over its set. */
#define BLACKOUT_PER_DEV 8
#define IRR_WAIT_MS	2000
#define GUEST_WAIT_MS	10000
/* How long a second delivery of one interrupt would take to show. */
#define TWICE_WAIT_US	50000
/* Socket handoff: each wait of either side (TCG guest: be generous). */
#define XFER_TIMEOUT_MS	20000
/* The devices the VMM holds, for its successor. */
#define SEC_DEVICES	"vmm_cpr_test.devices"
/* Per device: the vector set VM #n used, which the successor must claim. */
#define SET_HELD	"_vmm_vectors"
/* Per device: when the predecessor took it out of its KVM-VFIO device. */
#define KVM_VFIO_RELEASED "_vmm_kvm_vfio_released_ns"

enum handoff_mode { MODE_EXEC, MODE_SOCKET };

static const char *const mode_names[] = {
	[MODE_EXEC] = "exec",
	[MODE_SOCKET] = "socket",
};

/* The devices given. */
static char dev_names[VMM_DEVS_MAX][CPR_VFIO_NAME_MAX];
static unsigned int nr_dev_names;

/* One device of the VMM. */
struct dev {
	char name[CPR_VFIO_NAME_MAX];
	char label[128];	/* "0000:00:03.0 [8086:10d3 e1000e]" */
	unsigned int index;	/* VFIO_PCI_*_IRQ_INDEX in use */
	unsigned int intx_nr;	/* INTx: the k-th INTx device */
	unsigned int slot;	/* MSI/MSI-X: its first vector's LAPIC slot */
	struct cpr_vfio_dev *d;
	struct cpr_vectors *vs;	/* MSI / MSI-X */
};

/* What the state says of each device, for the successor. */
struct dev_rec {
	char name[CPR_VFIO_NAME_MAX];
	__u32 index;
	__u32 intx_nr;
};

struct story;

/* Everything one generation of the VMM holds. */
struct vmm {
	const struct story *story;
	enum cpr_vfio_iface iface;
	enum handoff_mode mode;
	__u64 generation;	/* 0: the harness's test child */
	__u64 handoff_start_ns;
	bool ready;		/* FIXTURE_SETUP took every device */
	char skip[CPR_ERRMSG_MAX];	/* else why it skipped */
	struct cpr_state *st;
	struct cpr_helper *helper;
	struct cpr_vm *vm;
	unsigned int nr;
	struct dev dev[VMM_DEVS_MAX];
	/* blackout_interrupts_delivered_once: what was raised. */
	unsigned int raised[VMM_DEVS_MAX][BLACKOUT_PER_DEV];
	unsigned int nr_raised[VMM_DEVS_MAX];
};

/*
 * A behaviour of the kernel, told as a story: hooks of the predecessor
 * (VM #0 running, then detached) and of the successor (devices taken over,
 * nothing attached yet; then attached to VM #1).
 */
struct story {
	const char *name;
	/* NULL, or why the story does not apply to this VMM's devices. */
	const char *(*applies)(const struct vmm *m);
	void (*arrange)(struct vmm *m);
	void (*blackout)(struct vmm *m);
	void (*before_attach)(struct vmm *m);
	void (*after_attach)(struct vmm *m);
};

static void set_context(struct vmm *m)
{
	cpr_test_context("VMM of %u device%s (%s, %s)", m->nr,
			 m->nr == 1 ? "" : "s", cpr_vfio_iface_name(m->iface),
			 mode_names[m->mode]);
}

/* ---- A device's vectors ---- */

static bool is_intx(const struct dev *dv)
{
	return dv->index == VFIO_PCI_INTX_IRQ_INDEX;
}

static unsigned int nr_vectors(const struct dev *dv)
{
	return is_intx(dv) ? 1 : dv->vs->nr;
}

static const char *irq_name(const struct dev *dv)
{
	return cpr_vfio_irq_name(dv->index);
}

/* What the number after "MSI-X", "MSI" or "INTx" in a message is. */
static const char *vec_word(const struct dev *dv)
{
	return dv->index == VFIO_PCI_MSIX_IRQ_INDEX ? "entry" : "vector";
}

static unsigned int entry_of(const struct dev *dv, unsigned int i)
{
	return is_intx(dv) ? 0 : dv->vs->v[i].entry;
}

/* "<label> MSI-X entry 3", for a message (four at a time). */
static const char *vec_name(const struct dev *dv, unsigned int i)
{
	static char buf[4][192];
	static unsigned int next;
	char *b = buf[next++ % 4];

	snprintf(b, sizeof(buf[0]), "%s %s %s %u", dv->label, irq_name(dv),
		 vec_word(dv), entry_of(dv, i));
	return b;
}

/* Where vector @i lands: the LAPIC vector and the vCPU. */
static unsigned int lapic_vec(const struct dev *dv, unsigned int i)
{
	return is_intx(dv) ? INTX_VEC_FIRST + dv->intx_nr :
	       cpr_msi_msg_vector(&dv->vs->v[i].msg);
}

static unsigned int lapic_cpu(const struct dev *dv, unsigned int i)
{
	return is_intx(dv) ? 0 : cpr_msi_msg_dest(&dv->vs->v[i].msg);
}

/* Whether vector @i has its LAPIC vector and vCPU to itself. */
static bool own_slot(const struct dev *dv, unsigned int i)
{
	return is_intx(dv) || dv->slot + i < MSI_SLOTS;
}

static const char *raised_how(const struct dev *dv)
{
	return dv->d->drv ? "by the device" : "by a software trigger";
}

/* "0000:00:03.0 [8086:10d3 e1000e]" or "<uuid> [mtty]". */
static void set_label(struct dev *dv)
{
	const struct cpr_vfio_dev *d = dv->d;

	if (d->is_mdev)
		snprintf(dv->label, sizeof(dv->label), "%s [%s]", dv->name,
			 d->drv ? d->drv->name : "mdev");
	else
		snprintf(dv->label, sizeof(dv->label), "%s [%04x:%04x %s]",
			 dv->name, d->vendor, d->device,
			 d->drv ? d->drv->name : "no driver here");
}

/* ---- Small checks ---- */

static void raise_vec(struct dev *dv, unsigned int i)
{
	CPR_ASSERT_OK(cpr_vfio_raise(dv->d, dv->index, entry_of(dv, i)),
		      "raising %s failed", vec_name(dv, i));
}

static void ack(struct dev *dv)
{
	if (dv->d->drv && dv->d->drv->ack)
		CPR_ASSERT_OK(dv->d->drv->ack(dv->d, dv->index),
			      "clearing the interrupt cause of %s failed",
			      dv->label);
}

static void unmask_intx(struct dev *dv)
{
	if (is_intx(dv))
		CPR_ASSERT_OK(cpr_vfio_intx_unmask(dv->d),
			      "unmasking INTx of %s (%s) failed", dv->label,
			      dv->d->intx_unmask_by_ioctl ?
			      "ioctl, by the helper" : "unmask eventfd");
}

static void lapic_clear(struct vmm *m, unsigned int cpu)
{
	CPR_ASSERT_OK(cpr_vm_lapic_clear(m->vm, cpu),
		      "clearing vCPU %u's LAPIC in VM #%llu failed", cpu,
		      (unsigned long long)m->generation);
}

static void lapic_clear_all(struct vmm *m)
{
	unsigned int cpu;

	for (cpu = 0; cpu < cpr_vm_nr_vcpus(m->vm); cpu++)
		lapic_clear(m, cpu);
}

static int wait_irr(struct vmm *m, const struct dev *dv, unsigned int i)
{
	return cpr_test_wait_irr(m->vm, lapic_cpu(dv, i), lapic_vec(dv, i),
				 IRR_WAIT_MS);
}

static void check_lockdown(void)
{
	char what[512];

	CPR_ASSERT_EQ(0, cpr_lockdown_violations(),
		      "the successor issued ioctls the lockdown refused: %s: a successor must not touch a device",
		      cpr_lockdown_describe(what, sizeof(what)));
}

/* Vector @i of @dv, raised (by the device where it can), reaches the VM. */
static void check_vector_delivers(struct vmm *m, struct dev *dv, unsigned int i)
{
	int ret;

	lapic_clear(m, lapic_cpu(dv, i));
	raise_vec(dv, i);
	ret = wait_irr(m, dv, i);
	ack(dv);
	unmask_intx(dv);
	CPR_ASSERT_EQ(1, ret,
		      "%s raised %s did not reach vCPU %u of VM #%llu as 0x%x, the vector its %s names",
		      vec_name(dv, i), raised_how(dv), lapic_cpu(dv, i),
		      (unsigned long long)m->generation, lapic_vec(dv, i),
		      is_intx(dv) ? "IOAPIC pin" : "MSI route");
}

/*
 * The real-mode vCPU of @dv's first vector takes it in its handler.  An
 * emulated e1000e may still send an MSI-X message of an earlier raise: a
 * stray is noted and the awaited vector must still come.
 */
static void check_guest_takes(struct vmm *m, struct dev *dv)
{
	__u64 end = cpr_now_ns() + GUEST_WAIT_MS * 1000000ull;
	unsigned int got = 0, strays = 0, cpu = lapic_cpu(dv, 0);
	int ret;

	lapic_clear(m, cpu);
	raise_vec(dv, 0);
	for (;;) {
		ret = cpr_vm_guest_wait(m->vm, cpu, GUEST_WAIT_MS, &got);
		if (ret || got == lapic_vec(dv, 0) || ++strays > 8 ||
		    cpr_now_ns() > end)
			break;
		printf("# %s: vCPU %u took stray vector 0x%x before 0x%x\n",
		       dv->label, cpu, got, lapic_vec(dv, 0));
	}
	ack(dv);
	unmask_intx(dv);
	CPR_ASSERT_EQ(0, ret,
		      "the real-mode vCPU %u of VM #%llu did not take %s (0x%x) in its handler: KVM_RUN gave %d (%s)",
		      cpu, (unsigned long long)m->generation, vec_name(dv, 0),
		      lapic_vec(dv, 0), ret, cpr_last_error());
	CPR_ASSERT_EQ(lapic_vec(dv, 0), got,
		      "the real-mode vCPU %u of VM #%llu took another vector than %s",
		      cpu, (unsigned long long)m->generation, vec_name(dv, 0));
}

/* ---- The VMM as it holds its devices ---- */

/*
 * Open a device; the previous test's device helper may still be closing
 * its fds: a busy device is waited for, a little.
 */
static int open_device(struct vmm *m, struct dev *dv)
{
	__u64 end = cpr_now_ns() + 5000000000ull;
	int ret;

	do {
		cpr_log_set_quiet(true);
		ret = cpr_vfio_open_iface(m->st, dv->name, m->iface, &dv->d);
		cpr_log_set_quiet(false);
		if (ret != -EBUSY)
			break;
		usleep(20000);
	} while (cpr_now_ns() < end);
	/* Once more aloud, so that a failure says why. */
	return ret ? cpr_vfio_open_iface(m->st, dv->name, m->iface, &dv->d) : 0;
}

/* The device's richest IRQ type, enabled: 0, or -ENODEV if it has none. */
static int enable_irq(struct dev *dv)
{
	unsigned int count;

	count = cpr_vfio_irq_count(dv->d, VFIO_PCI_MSIX_IRQ_INDEX);
	if (count) {
		dv->index = VFIO_PCI_MSIX_IRQ_INDEX;
		cpr_test_take_msix(dv->d, dv->label, count, &dv->vs);
		return 0;
	}
	count = cpr_vfio_irq_count(dv->d, VFIO_PCI_MSI_IRQ_INDEX);
	if (count) {
		dv->index = VFIO_PCI_MSI_IRQ_INDEX;
		CPR_ASSERT_OK(cpr_vfio_enable_msi(dv->d, dv->index, count,
						  &dv->vs),
			      "enabling %u MSI vectors of %s failed", count,
			      dv->label);
		return 0;
	}
	if (!cpr_vfio_irq_count(dv->d, VFIO_PCI_INTX_IRQ_INDEX))
		return -ENODEV;
	dv->index = VFIO_PCI_INTX_IRQ_INDEX;
	CPR_ASSERT_OK(cpr_vfio_enable_intx(dv->d), "enabling INTx of %s failed",
		      dv->label);
	return 0;
}

/*
 * The slots of the MSI/MSI-X vectors, numbered over the devices in order
 * (the successor numbers the claimed sets the same way); their count.
 */
static unsigned int number_slots(struct vmm *m)
{
	unsigned int j, k = 0;

	for (j = 0; j < m->nr; j++) {
		if (is_intx(&m->dev[j]))
			continue;
		m->dev[j].slot = k;
		k += m->dev[j].vs->nr;
	}
	return k;
}

/*
 * A LAPIC vector and vCPU of its own for every MSI/MSI-X vector of every
 * device, as a guest programs its devices: slot k is vCPU k % 4, vector
 * 0x30 + k / 4.  Past 768 vectors the slots wrap (shared, said).
 */
static void assign_messages(struct vmm *m)
{
	const unsigned int total = number_slots(m);
	unsigned int j, i, k;

	for (j = 0; j < m->nr; j++) {
		struct dev *dv = &m->dev[j];

		for (i = 0; !is_intx(dv) && i < dv->vs->nr; i++) {
			struct cpr_msi_msg msg;

			k = dv->slot + i;
			msg = cpr_msi_msg_make(k % VMM_VCPUS, MSI_VEC_FIRST +
					       (k / VMM_VCPUS) % MSI_VEC_SLOTS);
			CPR_ASSERT_OK(cpr_vectors_set_msg(dv->vs, i, &msg),
				      "programming the MSI message of %s failed",
				      vec_name(dv, i));
		}
	}
	if (total > MSI_SLOTS)
		fprintf(stdout,
			"# VMM: %u MSI/MSI-X vectors, %u LAPIC vectors on %u vCPUs: the last %u share theirs\n",
			total, MSI_SLOTS, VMM_VCPUS, total - MSI_SLOTS);
}

/* INTx into the VM: the trigger eventfd as an irqfd on its IOAPIC pin. */
static void intx_attach(struct vmm *m, struct dev *dv)
{
	const unsigned int pin = INTX_PIN_FIRST + dv->intx_nr;

	CPR_ASSERT_OK(cpr_vm_ioapic_pin(m->vm, pin, lapic_vec(dv, 0), false),
		      "programming VM #%llu's IOAPIC pin %u for INTx of %s failed",
		      (unsigned long long)m->generation, pin, dv->label);
	CPR_ASSERT_OK(cpr_vm_irqfd_assign(m->vm, dv->d->intx_fd, pin, -1),
		      "KVM_IRQFD of the INTx eventfd of %s in VM #%llu failed",
		      dv->label, (unsigned long long)m->generation);
}

/* The MSI/MSI-X sets of every device, in @vss; their number. */
static unsigned int vector_sets(struct vmm *m, struct cpr_vectors **vss)
{
	unsigned int j, n = 0;

	for (j = 0; j < m->nr; j++)
		if (m->dev[j].vs)
			vss[n++] = m->dev[j].vs;
	return n;
}

static unsigned int total_vectors(const struct vmm *m)
{
	unsigned int j, n = 0;

	for (j = 0; j < m->nr; j++)
		n += is_intx(&m->dev[j]) ? 0 : m->dev[j].vs->nr;
	return n;
}

/* Every MSI/MSI-X vector of every device into m->vm, one routing commit. */
static void attach_vectors(struct vmm *m)
{
	struct cpr_vectors *vss[VMM_DEVS_MAX];
	const unsigned int n = vector_sets(m, vss), one = n ? 1 : 0;
	const unsigned int before = cpr_vm_routing_commits(m->vm);
	unsigned int commits;

	CPR_ASSERT_OK(cpr_vectors_attach_sets(m->vm, vss, n),
		      "attaching the %u vector(s) of %u device(s) to VM #%llu failed",
		      total_vectors(m), n, (unsigned long long)m->generation);
	commits = cpr_vm_routing_commits(m->vm) - before;
	CPR_ASSERT_EQ(one, commits,
		      "the %u MSI/MSI-X vector(s) of %u device(s) must be routed into VM #%llu in one KVM_SET_GSI_ROUTING",
		      total_vectors(m), n, (unsigned long long)m->generation);
}

/* The devices and their IRQ types, for the successor. */
static void record_devices(struct vmm *m)
{
	struct dev_rec rec[VMM_DEVS_MAX];
	unsigned int j;

	memset(rec, 0, sizeof(rec));
	for (j = 0; j < m->nr; j++) {
		snprintf(rec[j].name, sizeof(rec[j].name), "%s", m->dev[j].name);
		rec[j].index = m->dev[j].index;
		rec[j].intx_nr = m->dev[j].intx_nr;
	}
	CPR_ASSERT_OK(cpr_state_set_section(m->st, SEC_DEVICES, rec,
					    m->nr * sizeof(rec[0])),
		      "recording the VMM's devices in the state failed");
}

/* One line: what VM #0 holds. */
static void print_vmm(struct vmm *m)
{
	char line[2048];
	size_t used = 0;
	unsigned int j;

	for (j = 0; j < m->nr && used < sizeof(line); j++) {
		const struct dev *dv = &m->dev[j];

		used += snprintf(line + used, sizeof(line) - used, "%s%s %s %u",
				 j ? ", " : "", dv->label, irq_name(dv),
				 nr_vectors(dv));
	}
	printf("# VM #0 (%u vCPUs): %s\n", VMM_VCPUS, line);
}

/*
 * FIXTURE_SETUP: every device given, as the VMM holds them before a
 * handoff.  Returns false (m->skip says why) when the test cannot run.
 */
static bool take_devices(struct vmm *m, enum cpr_vfio_iface iface,
			 enum handoff_mode mode)
{
	struct cpr_vfio_dev *devs[VMM_DEVS_MAX];
	char path[PATH_MAX];
	unsigned int j, intx = 0;
	int ret;

	memset(m, 0, sizeof(*m));
	m->iface = iface;
	m->mode = mode;
	m->nr = nr_dev_names;
	set_context(m);
	if (m->nr == 1)
		printf("# a one-device VMM: VFIO_CPR_DEVICES names only %s\n",
		       dev_names[0]);
	for (j = 0; j < m->nr; j++) {
		snprintf(m->dev[j].name, sizeof(m->dev[j].name), "%s",
			 dev_names[j]);
		snprintf(m->dev[j].label, sizeof(m->dev[j].label), "%s",
			 dev_names[j]);
		/* The skip says why: the library need not print it too. */
		cpr_log_set_quiet(true);
		ret = cpr_vfio_iface_supported(dev_names[j], iface);
		cpr_log_set_quiet(false);
		if (ret) {
			snprintf(m->skip, sizeof(m->skip), "%s", cpr_last_error());
			return false;
		}
	}
	m->st = cpr_test_state_new();
	for (j = 0; j < m->nr; j++) {
		struct dev *dv = &m->dev[j];

		/* 6.1's mtty enables MSI once per instance. */
		snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s", dv->name);
		if (!access(path, F_OK))
			CPR_ASSERT_OK(cpr_test_renew_mdev(dv->name),
				      "re-creating the mdev %s (6.1's mtty enables MSI once) failed",
				      dv->name);
		CPR_ASSERT_OK(open_device(m, dv),
			      "%s, given, cannot be opened through the %s interface",
			      dv->name, cpr_vfio_iface_name(iface));
		set_label(dv);
		CPR_ASSERT_OK(cpr_vfio_enable_device(dv->d),
			      "enabling IO, memory and bus mastering of %s failed",
			      dv->label);
		CPR_ASSERT_OK(cpr_vfio_enable_err_req(dv->d),
			      "giving the ERR/REQ notifiers of %s their eventfds failed",
			      dv->label);
		devs[j] = dv->d;
	}
	/* Before any VM or vector eventfd: the helper must not hold one. */
	CPR_ASSERT_OK(cpr_helper_start(m->st, devs, m->nr, NULL, 0, &m->helper),
		      "starting the device helper of %u device(s) failed", m->nr);
	CPR_ASSERT_OK(cpr_vm_create(&m->vm, VMM_VCPUS), "creating VM #0 failed");
	for (j = 0; j < m->nr; j++) {
		struct dev *dv = &m->dev[j];

		dv->d->helper = m->helper;
		CPR_ASSERT_OK(cpr_vm_vfio_add_group(m->vm, cpr_vfio_kvm_file(dv->d)),
			      "adding the %s of %s to VM #0's KVM-VFIO device failed",
			      iface == CPR_VFIO_IFACE_CDEV ? "device cdev" : "group",
			      dv->label);
		if (enable_irq(dv)) {
			snprintf(m->skip, sizeof(m->skip),
				 "not applicable: %s has no MSI-X, MSI or INTx",
				 dv->label);
			return false;
		}
		if (is_intx(dv)) {
			CPR_ASSERT_LT(intx, INTX_MAX,
				      "more than %d devices on INTx: the VM has no IOAPIC pin left for %s",
				      INTX_MAX, dv->label);
			dv->intx_nr = intx++;
			intx_attach(m, dv);
		}
	}
	assign_messages(m);
	attach_vectors(m);
	for (j = 0; j < m->nr; j++) {
		struct dev *dv = &m->dev[j];

		if (dv->d->drv && dv->d->drv->setup)
			CPR_ASSERT_OK(dv->d->drv->setup(dv->d, dv->index),
				      "programming the interrupt sources of %s failed",
				      dv->label);
	}
	/*
	 * The setups' own interrupts (nvme: vector 0 for each admin command)
	 * are no story's: left in VM #0's LAPICs, the handoff would carry
	 * them into VM #1 beside what a story raised.
	 */
	lapic_clear_all(m);
	record_devices(m);
	print_vmm(m);
	m->ready = true;
	return true;
}

/* FIXTURE_TEARDOWN: reached when the test did not hand over. */
static void release_devices(struct vmm *m)
{
	unsigned int j;

	if (m->helper)
		cpr_helper_quit(m->helper);
	for (j = 0; j < m->nr; j++)
		if (m->dev[j].vs)
			cpr_vectors_free(m->dev[j].vs, true);
	cpr_vm_destroy(m->vm);
	for (j = 0; j < m->nr; j++)
		if (m->dev[j].d)
			cpr_vfio_free(m->dev[j].d, true);
	if (m->st)
		cpr_state_free(m->st);
	memset(m, 0, sizeof(*m));
}

/* ---- The handoff ---- */

static void dev_section(char *buf, size_t size, const struct dev *dv,
			const char *suffix)
{
	snprintf(buf, size, "%s%s", dv->name, suffix);
}

/* The device out of the old VM's KVM-VFIO device, when noted. */
static void kvm_vfio_release(struct vmm *m, struct dev *dv)
{
	char sec[CPR_NAME_MAX + 1];

	CPR_ASSERT_OK(cpr_vm_vfio_del_group(m->vm, cpr_vfio_kvm_file(dv->d)),
		      "KVM_DEV_VFIO_FILE_DEL of %s from VM #%llu's KVM-VFIO device failed: KVM-VFIO never registered it",
		      dv->label, (unsigned long long)m->generation);
	dev_section(sec, sizeof(sec), dv, KVM_VFIO_RELEASED);
	CPR_ASSERT_OK(cpr_state_set_u64(m->st, sec, cpr_now_ns()),
		      "recording the KVM-VFIO release of %s in the state failed",
		      dv->label);
}

/*
 * The successor's side: the predecessor must have taken the device out of
 * its KVM-VFIO device first (the old VM's death would otherwise call
 * vfio_file_set_kvm(NULL) after the new VM set its own).
 */
static void kvm_vfio_take(struct vmm *m, struct dev *dv)
{
	char sec[CPR_NAME_MAX + 1];
	__u64 released = 0, added;

	dev_section(sec, sizeof(sec), dv, KVM_VFIO_RELEASED);
	CPR_ASSERT_OK(cpr_state_get_u64(m->st, sec, &released),
		      "the predecessor did not take %s out of its KVM-VFIO device before the handoff",
		      dv->label);
	CPR_ASSERT_OK(cpr_vm_vfio_add_group(m->vm, cpr_vfio_kvm_file(dv->d)),
		      "KVM_DEV_VFIO_FILE_ADD of the inherited %s of %s in VM #%llu failed",
		      m->iface == CPR_VFIO_IFACE_CDEV ? "device cdev" : "group",
		      dv->label, (unsigned long long)m->generation);
	added = cpr_now_ns();
	CPR_ASSERT_LT(released, added,
		      "VM #%llu added %s to its KVM-VFIO device before the predecessor removed it from its own",
		      (unsigned long long)m->generation, dv->label);
}

/* The vector set VM #n used, in a section of the test's own. */
static void record_set(struct vmm *m, struct dev *dv)
{
	char sec[CPR_NAME_MAX + 1];

	dev_section(sec, sizeof(sec), dv, SET_HELD);
	cpr_test_set_record(m->st, sec, dv->vs, dv->label);
}

/*
 * The successor's claim: exactly the entries the predecessor held, each
 * with the eventfds it saved under that entry, and the same table size.
 */
static void check_claimed(struct vmm *m, struct dev *dv)
{
	char sec[CPR_NAME_MAX + 1];

	dev_section(sec, sizeof(sec), dv, SET_HELD);
	cpr_test_set_check_claim(m->st, sec, dv->vs, dv->label, irq_name(dv),
				 vec_word(dv), m->generation - 1);
}

/*
 * Stop delivering into VM #n, as the VMM's handoff does: every device out
 * of its KVM-VFIO device, every device's vectors detached (what is pending
 * in the LAPICs noted), then the story's blackout.
 */
static void detach_all(struct vmm *m)
{
	unsigned int j;

	for (j = 0; j < m->nr; j++) {
		if (m->dev[j].vs)
			record_set(m, &m->dev[j]);
		kvm_vfio_release(m, &m->dev[j]);
	}
	CPR_ASSERT_OK(cpr_handoff_mark_start(m->st),
		      "recording the handoff start failed");
	for (j = 0; j < m->nr; j++) {
		struct dev *dv = &m->dev[j];

		if (is_intx(dv))
			CPR_ASSERT_OK(cpr_vfio_intx_detach(dv->d, m->vm,
							   INTX_PIN_FIRST + dv->intx_nr,
							   0, lapic_vec(dv, 0)),
				      "detaching INTx of %s from VM #%llu failed",
				      dv->label, (unsigned long long)m->generation);
		else
			CPR_ASSERT_OK(cpr_vectors_detach(dv->vs),
				      "detaching the vectors of %s from VM #%llu failed",
				      dv->label, (unsigned long long)m->generation);
	}
	if (m->story->blackout)
		m->story->blackout(m);
}

/* The successor's argument: "<story>,<iface>,<mode>". */
static void successor_arg(const struct vmm *m, char *arg, size_t size)
{
	snprintf(arg, size, "%s,%u,%u", m->story->name, m->iface, m->mode);
}

static int xfer_save(struct cpr_state *st, void *arg)
{
	struct vmm *m = arg;
	unsigned int j;
	int ret = 0;

	(void)st;
	for (j = 0; j < m->nr && !ret; j++)
		if (m->dev[j].vs)
			ret = cpr_vectors_save(m->dev[j].vs);
	return ret;
}

static int xfer_detach(struct cpr_state *st, void *arg)
{
	(void)st;
	detach_all(arg);
	return 0;
}

/* The socket successor failed after the detach: deliver again here. */
static int xfer_reattach(struct cpr_state *st, void *arg)
{
	struct vmm *m = arg;
	unsigned int j;
	int ret = 0;

	(void)st;
	for (j = 0; j < m->nr && !ret; j++) {
		struct dev *dv = &m->dev[j];

		ret = cpr_vm_vfio_add_group(m->vm, cpr_vfio_kvm_file(dv->d));
		if (ret)
			break;
		if (is_intx(dv))
			ret = cpr_vm_irqfd_assign(m->vm, dv->d->intx_fd,
						  INTX_PIN_FIRST + dv->intx_nr, -1);
		else
			ret = cpr_vectors_reattach(dv->vs);
	}
	return ret;
}

/*
 * Hand the whole VMM over, by exec or over a socket.  By exec it does not
 * return; by socket it returns once the successor ended, with its status.
 */
static int handoff_next(struct vmm *m)
{
	const struct cpr_xfer_give_ops ops = {
		.save = xfer_save,
		.detach = xfer_detach,
		.reattach = xfer_reattach,
	};
	char path[64], arg[128];
	unsigned int j;
	int status;
	pid_t pid;

	successor_arg(m, arg, sizeof(arg));
	if (m->mode == MODE_EXEC) {
		detach_all(m);
		CPR_ASSERT_OK(cpr_test_exec_self(m->st, "vmm", arg),
			      "exec into the successor failed");
		CPR_FAIL("cpr_exec() returned without an error");
	}
	snprintf(path, sizeof(path), "@vmm_cpr_test.%d", getpid());
	pid = cpr_test_give_to_self(m->st, "vmm-xfer", path, arg,
				    XFER_TIMEOUT_MS, &ops, m);
	CPR_ASSERT_GE(pid, 0,
		      "the socket handoff of the VMM to its successor failed (a failure of the successor is printed above)");
	/* Handed over: this VM is done; the successor decides the outcome. */
	for (j = 0; j < m->nr; j++) {
		if (m->dev[j].vs)
			cpr_vectors_free(m->dev[j].vs, true);
		m->dev[j].vs = NULL;
	}
	cpr_vm_destroy(m->vm);
	m->vm = NULL;
	cpr_helper_free(m->helper);
	m->helper = NULL;
	status = cpr_test_wait_successor(pid);
	CPR_ASSERT_GE(status, 0, "waiting for the socket successor failed");
	return status;
}

/* The harness's test child: set the scene in VM #0 and hand over. */
static void tell(struct __test_metadata *_metadata, struct vmm *m,
		 const struct story *s)
{
	const char *why;

	if (!m->ready)
		SKIP(return, "%s", m->skip);
	why = s->applies ? s->applies(m) : NULL;
	if (why)
		SKIP(return, "not applicable: %s", why);
	m->story = s;
	if (s->arrange)
		s->arrange(m);
	CPR_ASSERT_EQ(0, handoff_next(m),
		      "the socket successor failed (its output is above)");
}

/* ---- The successor ---- */

/*
 * Take every device over from m->st, as the state lists them: their fds,
 * the helper, INTx; the vectors come later (attach_and_check()), from the
 * sections the predecessor saved when it detached.
 */
static void take_over(struct vmm *m)
{
	const struct dev_rec *rec;
	size_t len = 0;
	unsigned int j;

	rec = cpr_state_get_section(m->st, SEC_DEVICES, &len);
	CPR_ASSERT_TRUE(rec && len && len % sizeof(*rec) == 0 &&
			len / sizeof(*rec) <= VMM_DEVS_MAX,
			"the predecessor did not record its devices (section '%s', %zu bytes)",
			SEC_DEVICES, len);
	m->nr = len / sizeof(*rec);
	set_context(m);
	CPR_ASSERT_OK(cpr_helper_attach(m->st, &m->helper),
		      "taking up the device helper the predecessor started failed");
	for (j = 0; j < m->nr; j++) {
		struct dev *dv = &m->dev[j];

		snprintf(dv->name, sizeof(dv->name), "%.*s",
			 (int)sizeof(rec[j].name) - 1, rec[j].name);
		snprintf(dv->label, sizeof(dv->label), "%s", dv->name);
		dv->index = rec[j].index;
		dv->intx_nr = rec[j].intx_nr;
		CPR_ASSERT_OK(cpr_vfio_take_over(m->st, dv->name, &dv->d),
			      "taking over the inherited VFIO fds of %s failed",
			      dv->name);
		set_label(dv);
		CPR_ASSERT_TRUE(dv->d->reused,
				"the successor re-opened %s instead of reusing the inherited fds",
				dv->label);
		CPR_ASSERT_EQ(m->iface, dv->d->iface,
			      "the state holds %s through another interface than the variant's",
			      dv->label);
		dv->d->helper = m->helper;
		if (is_intx(dv))
			CPR_ASSERT_OK(cpr_vfio_enable_intx(dv->d),
				      "taking over the inherited INTx eventfds of %s failed",
				      dv->label);
	}
}

/*
 * Everything a successor does once it holds the devices: every device's
 * vectors claimed and checked, the story's checks before anything is
 * attached, VM #n (made now unless prepared already) with every device in
 * its KVM-VFIO device, all vectors attached in one routing commit, then
 * the story's checks.
 */
static void attach_and_check(struct vmm *m)
{
	unsigned int j;

	for (j = 0; j < m->nr; j++) {
		struct dev *dv = &m->dev[j];

		if (is_intx(dv))
			continue;
		CPR_ASSERT_OK(cpr_vectors_claim(m->st, dv->name, NULL, &dv->vs),
			      "rebuilding the %s vectors of %s from the state failed",
			      irq_name(dv), dv->label);
		check_claimed(m, dv);
	}
	number_slots(m);
	if (m->story->before_attach)
		m->story->before_attach(m);
	if (!m->vm)
		CPR_ASSERT_OK(cpr_vm_create(&m->vm, VMM_VCPUS),
			      "creating VM #%llu failed",
			      (unsigned long long)m->generation);
	for (j = 0; j < m->nr; j++)
		kvm_vfio_take(m, &m->dev[j]);
	for (j = 0; j < m->nr; j++)
		if (is_intx(&m->dev[j]))
			intx_attach(m, &m->dev[j]);
	attach_vectors(m);
	for (j = 0; j < m->nr; j++)
		CPR_ASSERT_EQ(0, m->dev[j].d->setup_ioctls,
			      "the successor sent setup ioctls (SET_IRQS, SET_CONTAINER...) to %s while taking it over",
			      m->dev[j].label);
	check_lockdown();
	if (m->story->after_attach)
		m->story->after_attach(m);
	check_lockdown();
}

/* The successor is the last generation: it leaves the devices quiet. */
static int finish(struct vmm *m)
{
	unsigned int j;

	for (j = 0; j < m->nr; j++) {
		struct dev *dv = &m->dev[j];

		/*
		 * Not mtty: it keeps a pointer to the released eventfd and
		 * would ignore the next enable.
		 */
		if (!cpr_vfio_is_mtty(dv->d))
			CPR_ASSERT_OK(cpr_vfio_irq_disable(dv->d, dv->index),
				      "disabling %s of %s at the end (by the helper) failed",
				      irq_name(dv), dv->label);
	}
	CPR_ASSERT_OK(cpr_helper_quit(m->helper), "ending the device helper failed");
	m->helper = NULL;
	check_lockdown();
	return 0;
}

static const struct story *story_find(const char *name);

/* Parse "<story>,<iface>,<mode>" into @m. */
static void parse_successor_arg(const char *arg, struct vmm *m)
{
	unsigned int iface, mode;
	char story[64];
	int n;

	n = sscanf(arg, "%63[^,],%u,%u", story, &iface, &mode);
	CPR_ASSERT_EQ(3, n, "bad successor argument '%s'", arg);
	CPR_ASSERT_TRUE(iface <= CPR_VFIO_IFACE_CDEV && mode <= MODE_SOCKET,
			"bad successor argument '%s'", arg);
	m->iface = iface;
	m->mode = mode;
	m->story = story_find(story);
	CPR_ASSERT_TRUE(m->story, "no story '%s' in this test", story);
	set_context(m);
}

static int successor_exec(const char *arg)
{
	static struct vmm m;
	struct cpr_resume_info info;

	parse_successor_arg(arg, &m);
	cpr_test_resume(&info);
	m.st = info.st;
	m.generation = info.generation;
	m.handoff_start_ns = info.handoff_start_ns;
	take_over(&m);
	attach_and_check(&m);
	return finish(&m);
}

static int xfer_prepare(struct cpr_state *st, void *arg)
{
	struct vmm *m = arg;

	m->st = st;
	CPR_ASSERT_OK(cpr_state_get_u64(st, CPR_SEC_GENERATION, &m->generation),
		      "the received state has no generation");
	take_over(m);
	CPR_ASSERT_OK(cpr_vm_create(&m->vm, VMM_VCPUS),
		      "creating VM #%llu failed",
		      (unsigned long long)m->generation);
	return 0;
}

static int xfer_attach(struct cpr_state *st, void *arg)
{
	struct vmm *m = arg;

	if (cpr_state_get_u64(st, CPR_SEC_HANDOFF_START, &m->handoff_start_ns))
		m->handoff_start_ns = 0;
	attach_and_check(m);
	return 0;
}

static int successor_xfer(const char *path, const char *arg)
{
	const struct cpr_xfer_take_ops ops = {
		.prepare = xfer_prepare,
		.attach = xfer_attach,
	};
	struct cpr_state *st = NULL;
	static struct vmm m;

	parse_successor_arg(arg, &m);
	CPR_ASSERT_OK(cpr_xfer_take(path, XFER_TIMEOUT_MS, &st, &ops, &m),
		      "the socket handoff, successor side, failed");
	return finish(&m);
}

/* ---- The stories ---- */

/*
 * blackout_interrupts_delivered_once: while no VM listens, every device
 * raises its vectors (up to 8 of a set, spread over it, each with its own
 * LAPIC vector and vCPU); VM #1 gets each of them, once.
 */
static void blackout_plan(struct vmm *m)
{
	unsigned int j, k, i, n;

	for (j = 0; j < m->nr; j++) {
		const struct dev *dv = &m->dev[j];

		n = nr_vectors(dv) < BLACKOUT_PER_DEV ? nr_vectors(dv) :
		    BLACKOUT_PER_DEV;
		m->nr_raised[j] = 0;
		for (k = 0; k < n; k++) {
			i = n == 1 ? 0 : k * (nr_vectors(dv) - 1) / (n - 1);
			if (own_slot(dv, i))
				m->raised[j][m->nr_raised[j]++] = i;
		}
	}
}

static void blackout_raise(struct vmm *m)
{
	unsigned int j, k;

	blackout_plan(m);
	for (j = 0; j < m->nr; j++) {
		struct dev *dv = &m->dev[j];

		for (k = 0; k < m->nr_raised[j]; k++) {
			/* Carried beside the raise, it would arrive twice. */
			if (dv->vs)
				CPR_ASSERT_FALSE(dv->vs->v[m->raised[j][k]].lapic_pending,
						 "%s was pending in VM #%llu's LAPIC before the blackout (the test's scene is not clean)",
						 vec_name(dv, m->raised[j][k]),
						 (unsigned long long)m->generation);
			raise_vec(dv, m->raised[j][k]);
		}
	}
}

static void blackout_delivered_once(struct vmm *m)
{
	unsigned int j, k, i, count = 0;
	__u64 seen;

	/* The predecessor raised them: the same plan for the same sets. */
	blackout_plan(m);
	for (j = 0; j < m->nr; j++) {
		struct dev *dv = &m->dev[j];

		for (k = 0; k < m->nr_raised[j]; k++) {
			i = m->raised[j][k];
			CPR_ASSERT_EQ(1, wait_irr(m, dv, i),
				      "KVM did not inject %s, raised %s in the blackout and pending on its eventfd, when its irqfd was assigned in VM #%llu (vCPU %u, vector 0x%x)",
				      vec_name(dv, i), raised_how(dv),
				      (unsigned long long)m->generation,
				      lapic_cpu(dv, i), lapic_vec(dv, i));
			count++;
		}
	}
	seen = cpr_now_ns();
	fprintf(stdout,
		"# VMM of %u device(s), %u vector(s) raised, generation %llu: blackout %.3f ms\n",
		m->nr, count, (unsigned long long)m->generation,
		(seen - m->handoff_start_ns) / 1e6);
	for (j = 0; j < m->nr; j++)
		ack(&m->dev[j]);
	lapic_clear_all(m);
	for (j = 0; j < m->nr; j++)
		unmask_intx(&m->dev[j]);
	usleep(TWICE_WAIT_US);
	for (j = 0; j < m->nr; j++) {
		struct dev *dv = &m->dev[j];

		for (k = 0; k < m->nr_raised[j]; k++) {
			i = m->raised[j][k];
			CPR_ASSERT_EQ(0, cpr_vm_lapic_irr_test(m->vm,
							       lapic_cpu(dv, i),
							       lapic_vec(dv, i)),
				      "%s, raised once in the blackout, was delivered twice into VM #%llu",
				      vec_name(dv, i),
				      (unsigned long long)m->generation);
		}
	}
}

static const char *has_vectors(const struct vmm *m)
{
	return total_vectors(m) ? NULL :
	       "no device of this VMM uses MSI or MSI-X: it routes no vector";
}

/*
 * all_vectors_routed_in_one_commit: every vector of every device has its
 * route and its irqfd in VM #1, all made by one KVM_SET_GSI_ROUTING.
 */
static void routed_in_one_commit(struct vmm *m)
{
	unsigned int j, i, sets = 0, one, commits;

	for (j = 0; j < m->nr; j++) {
		struct dev *dv = &m->dev[j];

		if (is_intx(dv))
			continue;
		sets++;
		for (i = 0; i < dv->vs->nr; i++)
			CPR_ASSERT_TRUE(dv->vs->v[i].virq >= 0 &&
					dv->vs->v[i].attached,
					"%s has no %s in VM #%llu",
					vec_name(dv, i),
					dv->vs->v[i].virq < 0 ? "MSI route" :
					"irqfd",
					(unsigned long long)m->generation);
	}
	one = sets ? 1 : 0;
	CPR_ASSERT_EQ(total_vectors(m), cpr_vm_nr_routes(m->vm),
		      "VM #%llu holds another number of MSI routes than the %u vector(s) of its %u MSI/MSI-X device(s)",
		      (unsigned long long)m->generation, total_vectors(m), sets);
	commits = cpr_vm_routing_commits(m->vm);
	CPR_ASSERT_EQ(one, commits,
		      "the %u vector(s) of %u device(s) must be routed into VM #%llu in one KVM_SET_GSI_ROUTING",
		      total_vectors(m), sets, (unsigned long long)m->generation);
	fprintf(stdout,
		"# VMM: %u vector(s) of %u device(s) routed in VM #%llu with %u KVM_SET_GSI_ROUTING\n",
		total_vectors(m), sets, (unsigned long long)m->generation,
		commits);
}

/*
 * every_device_reused_no_setup_ioctl: every device taken over as the
 * predecessor left it - its fds reused, no setup ioctl, nothing refused
 * by the lockdown, no eventfd given to it through the helper.
 */
static void every_device_reused(struct vmm *m)
{
	unsigned int j;

	CPR_ASSERT_TRUE(!cpr_lockdown_available() || cpr_lockdown_active(),
			"the successor runs without the lockdown although the kernel can filter");
	for (j = 0; j < m->nr; j++) {
		const struct dev *dv = &m->dev[j];

		CPR_ASSERT_TRUE(dv->d->reused,
				"%s was opened again instead of reused",
				dv->label);
		CPR_ASSERT_EQ(0, dv->d->setup_ioctls,
			      "the successor sent setup ioctls to %s",
			      dv->label);
	}
	check_lockdown();
	CPR_ASSERT_EQ(0, cpr_helper_count(m->helper, CPR_HELPER_REQ_EVENTFDS),
		      "the successor had the helper give a device eventfds");
	CPR_ASSERT_EQ(0, cpr_helper_count(m->helper, CPR_HELPER_REQ_REFUSED),
		      "the successor asked the helper for what its policy refuses");
	fprintf(stdout,
		"# VMM: %u device(s) reused, no setup ioctl; %u trigger(s), %u unmask(s) by the helper\n",
		m->nr, cpr_helper_count(m->helper, CPR_HELPER_REQ_TRIGGER),
		cpr_helper_count(m->helper, CPR_HELPER_REQ_UNMASK));
}

/*
 * every_vector_of_every_device_delivers: in VM #0 and in VM #1, each
 * vector of each device raised reaches its vCPU as its LAPIC vector, and
 * the real-mode guest takes each device's first vector in its handler.
 */
static void every_vector_delivers(struct vmm *m)
{
	unsigned int j, i;

	for (j = 0; j < m->nr; j++)
		for (i = 0; i < nr_vectors(&m->dev[j]); i++)
			check_vector_delivers(m, &m->dev[j], i);
	lapic_clear_all(m);
	for (j = 0; j < m->nr; j++)
		check_guest_takes(m, &m->dev[j]);
}

/*
 * lapic_pending_carried_for_every_device: each device leaves its last
 * vector pending, not taken, in a LAPIC of VM #0 (vCPUs of their own);
 * every one of them is pending in VM #1.
 */
static void leave_pending(struct vmm *m)
{
	unsigned int j, i;

	lapic_clear_all(m);
	for (j = 0; j < m->nr; j++) {
		struct dev *dv = &m->dev[j];

		i = nr_vectors(dv) - 1;
		if (!own_slot(dv, i))
			i = 0;
		raise_vec(dv, i);
		CPR_ASSERT_EQ(1, wait_irr(m, dv, i),
			      "%s raised %s did not reach vCPU %u of VM #%llu as 0x%x",
			      vec_name(dv, i), raised_how(dv), lapic_cpu(dv, i),
			      (unsigned long long)m->generation, lapic_vec(dv, i));
		ack(dv);
	}
}

static void pending_carried(struct vmm *m)
{
	unsigned int j, i;

	for (j = 0; j < m->nr; j++) {
		struct dev *dv = &m->dev[j];

		i = nr_vectors(dv) - 1;
		if (!own_slot(dv, i))
			i = 0;
		CPR_ASSERT_EQ(1, wait_irr(m, dv, i),
			      "%s, pending in vCPU %u's LAPIC of VM #%llu at the handoff, was lost",
			      vec_name(dv, i), lapic_cpu(dv, i),
			      (unsigned long long)m->generation - 1);
	}
	lapic_clear_all(m);
	for (j = 0; j < m->nr; j++)
		unmask_intx(&m->dev[j]);
}

static const struct story stories[] = {
	{
		.name = "blackout_interrupts_delivered_once",
		.blackout = blackout_raise,
		.after_attach = blackout_delivered_once,
	}, {
		.name = "all_vectors_routed_in_one_commit",
		.applies = has_vectors,
		.after_attach = routed_in_one_commit,
	}, {
		.name = "every_device_reused_no_setup_ioctl",
		.after_attach = every_device_reused,
	}, {
		.name = "every_vector_of_every_device_delivers",
		.arrange = every_vector_delivers,
		.after_attach = every_vector_delivers,
	}, {
		.name = "lapic_pending_carried_for_every_device",
		.arrange = leave_pending,
		.after_attach = pending_carried,
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

#define TELL(name) tell(_metadata, &self->m, story_find(#name))

/* ---- The fixture and its tests ---- */

FIXTURE(vmm_cpr) {
	struct vmm m;
};

FIXTURE_VARIANT(vmm_cpr) {
	enum cpr_vfio_iface iface;
	enum handoff_mode mode;
};

FIXTURE_VARIANT_ADD(vmm_cpr, group_exec) {
	.iface = CPR_VFIO_IFACE_GROUP,
	.mode = MODE_EXEC,
};

FIXTURE_VARIANT_ADD(vmm_cpr, group_socket) {
	.iface = CPR_VFIO_IFACE_GROUP,
	.mode = MODE_SOCKET,
};

FIXTURE_VARIANT_ADD(vmm_cpr, cdev_exec) {
	.iface = CPR_VFIO_IFACE_CDEV,
	.mode = MODE_EXEC,
};

FIXTURE_VARIANT_ADD(vmm_cpr, cdev_socket) {
	.iface = CPR_VFIO_IFACE_CDEV,
	.mode = MODE_SOCKET,
};

FIXTURE_SETUP(vmm_cpr)
{
	if (!take_devices(&self->m, variant->iface, variant->mode))
		SKIP(return, "%s", self->m.skip);
}

FIXTURE_TEARDOWN(vmm_cpr)
{
	release_devices(&self->m);
}

TEST_F_TIMEOUT(vmm_cpr, blackout_interrupts_delivered_once, 120)
{
	TELL(blackout_interrupts_delivered_once);
}

TEST_F_TIMEOUT(vmm_cpr, all_vectors_routed_in_one_commit, 120)
{
	TELL(all_vectors_routed_in_one_commit);
}

TEST_F_TIMEOUT(vmm_cpr, every_device_reused_no_setup_ioctl, 120)
{
	TELL(every_device_reused_no_setup_ioctl);
}

TEST_F_TIMEOUT(vmm_cpr, every_vector_of_every_device_delivers, 120)
{
	TELL(every_vector_of_every_device_delivers);
}

TEST_F_TIMEOUT(vmm_cpr, lapic_pending_carried_for_every_device, 120)
{
	TELL(lapic_pending_carried_for_every_device);
}

int main(int argc, char **argv)
{
	char *env = getenv("VFIO_CPR_DEVICES");
	char *save = NULL, *tok, *list;
	int i, kvm;

	cpr_test_successor_enter(argc, argv);
	cpr_test_raise_nofile();
	if (argc >= 4 && !strcmp(argv[1], CPR_TEST_SUCCESSOR) &&
	    !strcmp(argv[2], "vmm"))
		return successor_exec(argv[3]);
	if (argc >= 5 && !strcmp(argv[1], CPR_TEST_SUCCESSOR) &&
	    !strcmp(argv[2], "vmm-xfer"))
		return successor_xfer(argv[3], argv[4]);

	list = strdup(env ? env : "");
	for (i = 1; i < argc && list; i++)
		if (argv[i][0] != '-' && !list[0]) {
			free(list);
			list = strdup(argv[i]);
		}
	for (tok = list ? strtok_r(list, ", ", &save) : NULL; tok;
	     tok = strtok_r(NULL, ", ", &save)) {
		if (nr_dev_names == VMM_DEVS_MAX) {
			fprintf(stdout,
				"# a VMM of %d devices at most (one device helper holds them): %s and the devices after it left out\n",
				VMM_DEVS_MAX, tok);
			break;
		}
		snprintf(dev_names[nr_dev_names++], CPR_VFIO_NAME_MAX, "%s", tok);
	}
	free(list);
	/* Both said when both lack: a host without KVM counts its skip so. */
	kvm = access("/dev/kvm", R_OK | W_OK) ? errno : 0;
	if (!nr_dev_names)
		cpr_test_skip_all("%s%s%s%s",
				  "no device given: VFIO_CPR_DEVICES is unset or empty; set it to the BDFs or mdev UUIDs the VMM holds (or pass them as the argument)",
				  kvm ? "; and /dev/kvm not usable (" : "",
				  kvm ? strerror(kvm) : "", kvm ? ")" : "");
	if (kvm)
		cpr_test_skip_all("/dev/kvm not usable (%s): a VMM's handoff needs KVM",
				  strerror(kvm));
	/* The device list is ours, not the harness's. */
	return test_harness_run(1, argv);
}
