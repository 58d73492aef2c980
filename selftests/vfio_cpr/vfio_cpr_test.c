// SPDX-License-Identifier: GPL-2.0-only
/*
 * CPR of a real VFIO device: a VMM holding a vfio-pci device (or an mdev)
 * with MSI-X, MSI or INTx enabled hands over to a successor - by exec, or
 * over a UNIX socket to a process of its own - which rebuilds the vectors
 * from the inherited fds without touching the device and attaches them to
 * a new KVM instance.
 *
 * One device per run: VFIO_CPR_DEVICES=<BDF or mdev UUID>, or the first
 * argument.  Given several, main() runs this program once per device and
 * reports each run as a subtest named after the device.  The harness's
 * own options pass through (its filters, e.g. -t blackout_interrupt_...,
 * where the harness has them: 6.12 has, 6.1 ignores them).
 *
 * Fixtures vfio_cpr_msix, vfio_cpr_msi and vfio_cpr_intx, each through
 * every (interface, handoff mode) variant: group_exec, group_socket,
 * cdev_exec, cdev_socket (vfio_cpr_fixture.h).  FIXTURE_SETUP takes the
 * device as a VMM has it: opened through the variant's interface, a DMA
 * buffer mapped, the device helper started (the process that keeps the
 * device fds for the few VFIO_DEVICE_SET_IRQS a successor may ask for),
 * VM #0 with the group or cdev in its KVM-VFIO device, the IRQ type
 * enabled and routed into VM #0, the device's interrupt sources set up.
 * Every VM has VCPUS vCPUs, and the MSI/MSI-X messages are spread over
 * them as a guest spreads its device's vectors: every interrupt a story
 * raises must arrive at the vCPU its message names, and at no other.
 * A device given that cannot be opened fails; a device without the IRQ
 * type, or a kernel without the interface, skips saying which.
 *
 * Each TEST_F tells one story: it sets the scene in VM #0, hands over
 * once (three_generations: three times), and the successor - which runs
 * under the lockdown from its first instruction: every VFIO setup ioctl
 * refused by the kernel - checks one behaviour of the kernel that CPR
 * relies on.  Every successor also checks what all of them must hold: the
 * device reused, not re-opened; no setup ioctl, none refused; the group
 * or cdev removed from the old VM's KVM-VFIO device before the new VM
 * added it; every vector routed in one KVM_SET_GSI_ROUTING.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "cpr_assert.h"
#include "cpr_mdev_renew.h"
#include "cpr_msix_take.h"
#include "cpr_test_util.h"
#include "cpr_vector_set.h"
#include "vfio_cpr/fd.h"
#include "vfio_cpr/handoff.h"
#include "vfio_cpr/kvm.h"
#include "vfio_cpr/lockdown.h"
#include "vfio_cpr/mdev_probe.h"
#include "vfio_cpr/transfer.h"
#include "vfio_cpr/vectors.h"
#include "vfio_cpr/vfio.h"
#include "vfio_cpr/vfio_helper.h"

#define IRR_WAIT_MS	2000
/*
 * vCPUs of every VM, VM #0 and each successor's: a guest spreads its
 * device's vectors over them, so a handoff that loses a vector's
 * destination shows.
 */
#define VCPUS		4
#define GUEST_WAIT_MS	10000
/* How long a second delivery of one interrupt would take to show. */
#define TWICE_WAIT_US	50000
#define DMA_IOVA	0x100000ull	/* edu masks DMA to 28 bits */
#define DMA_SIZE	0x200000ull
#define DMA_MEM_NAME	"dma_mem"
/* INTx reaches the VMs through this IOAPIC pin (edge) as this vector. */
#define INTX_PIN	20
#define INTX_VEC	0x60
/* Socket handoff: each wait of either side (TCG guest: be generous). */
#define XFER_TIMEOUT_MS	20000
/* When the predecessor took the device out of its KVM-VFIO device. */
#define KVM_VFIO_RELEASED	"_kvm_vfio_released_ns"
/* The helper's operation: probe through the vfio_cpr_mdev instance. */
#define OP_MDEV_PROBE	1
/* The predecessor's vector set, which the successor must claim exactly. */
#define SET_HELD	"_test_vectors"
/* The entry the successor adds in successor_enables_a_new_vector. */
#define GROW_ENTRY	"_test_grow_entry"
/* retargeted_vector_arrives_at_its_new_vcpu: entry | new APIC id << 32. */
#define MOVED_ENTRY	"_test_moved_entry"

/* The harness's options that take a value (6.12+: -r, -t, -f, -v, ...). */
#define HARNESS_OPTARG	"FfVvTtr"

enum handoff_mode { MODE_EXEC, MODE_SOCKET };

static const char *const mode_names[] = {
	[MODE_EXEC] = "exec",
	[MODE_SOCKET] = "socket",
};

/* The one device of this run, and the probe mdev of the VM tier. */
static char device_name[CPR_VFIO_NAME_MAX];
static const char *probe_mdev;

struct story;

/* Everything one generation holds. */
struct gen {
	const struct story *story;
	char name[CPR_VFIO_NAME_MAX];
	char label[128];	/* "0000:00:03.0 [8086:10d3 e1000e]" */
	char skip[CPR_ERRMSG_MAX];	/* why FIXTURE_SETUP skipped */
	unsigned int index;	/* VFIO_PCI_*_IRQ_INDEX */
	enum cpr_vfio_iface iface;
	enum handoff_mode mode;
	unsigned int generations;	/* handoffs the story makes */
	__u64 generation;	/* 0: the harness's test child */
	__u64 handoff_start_ns;
	struct cpr_state *st;
	struct cpr_vfio_dev *d;
	struct cpr_helper *helper;
	struct cpr_vectors *vs;	/* MSI / MSI-X */
	struct cpr_vm *vm;
	void *dma;		/* DMA buffer, in a preserved memfd */
	int dma_fd;
	bool dma_vaddr;		/* the container takes VFIO_DMA_*_FLAG_VADDR */
	/* A vector given a new destination before the handoff (MOVED_ENTRY). */
	bool moved;
	unsigned int moved_entry;
	unsigned int moved_dest;
	unsigned int moved_from;
	__u64 arrived_ns;	/* when arrived_at_dest() last saw one there */
};

/*
 * A behaviour of the kernel, told as a story: hooks of the predecessor
 * (VM #n still running, then detached) and of the successor (device taken
 * over, nothing attached yet; then attached to VM #n+1).
 */
struct story {
	const char *name;
	unsigned int generations;	/* 0: one handoff */
	/* NULL, or why the story does not apply to @g's device. */
	const char *(*applies)(const struct gen *g);
	void (*arrange)(struct gen *g);
	void (*blackout)(struct gen *g);
	void (*before_attach)(struct gen *g);
	void (*after_attach)(struct gen *g);
};

static const char *irq_name(const struct gen *g)
{
	return cpr_vfio_irq_name(g->index);
}

static bool is_intx(const struct gen *g)
{
	return g->index == VFIO_PCI_INTX_IRQ_INDEX;
}

static unsigned int nr_vectors(const struct gen *g)
{
	return is_intx(g) ? 1 : g->vs->nr;
}

/* The table entry of the set's @i-th vector (INTx: 0). */
static unsigned int entry_of(const struct gen *g, unsigned int i)
{
	return is_intx(g) ? 0 : g->vs->v[i].entry;
}

/* What the number after "MSI-X", "MSI" or "INTx" in a message is. */
static const char *vec_word(const struct gen *g)
{
	return g->index == VFIO_PCI_MSIX_IRQ_INDEX ? "entry" : "vector";
}

static unsigned int lapic_vec(const struct gen *g, unsigned int i)
{
	return is_intx(g) ? INTX_VEC : cpr_msi_msg_vector(&g->vs->v[i].msg);
}

/* The eventfd vfio-pci signals for vector @i. */
static int trigger_fd(const struct gen *g, unsigned int i)
{
	return is_intx(g) ? g->d->intx_fd : g->vs->v[i].kvm_fd;
}

static const char *raised_how(const struct gen *g)
{
	return g->d->drv ? "by the device" : "by a software trigger";
}

/*
 * "0000:00:03.0 [8086:10d3 e1000e]" or "<uuid> [mtty]", from sysfs: names
 * the device before it is opened (a device that cannot be opened too).
 */
static void device_label(const char *name, char *buf, size_t size)
{
	const struct cpr_vfio_driver *drv;
	char path[PATH_MAX], link[PATH_MAX], *slash;
	unsigned int vendor = 0, device = 0;
	int up;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/mdev_type", name);
	if (realpath(path, link)) {
		/* .../<parent device>/mdev_supported_types/<type> */
		for (up = 0; up < 2 && (slash = strrchr(link, '/')); up++)
			*slash = '\0';
		slash = strrchr(link, '/');
		snprintf(buf, size, "%s [%s]", name, slash ? slash + 1 : "mdev");
		return;
	}
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", name);
	f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%x", &vendor) != 1)
			vendor = 0;
		fclose(f);
	}
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", name);
	f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%x", &device) != 1)
			device = 0;
		fclose(f);
	}
	drv = cpr_vfio_driver_find(vendor, device);
	snprintf(buf, size, "%s [%04x:%04x %s]", name, vendor, device,
		 drv ? drv->name : "no driver here");
}

static void set_context(struct gen *g)
{
	device_label(g->name, g->label, sizeof(g->label));
	cpr_test_context("%s %s (%s, %s)", g->label, irq_name(g),
			 cpr_vfio_iface_name(g->iface), mode_names[g->mode]);
}

/* ---- Small checks ---- */

/* Read an eventfd without blocking: its count, 0 if none. */
static long long drain(int fd)
{
	__u64 v;

	if (read(fd, &v, sizeof(v)) == sizeof(v))
		return v;
	CPR_ASSERT_EQ(EAGAIN, errno, "reading eventfd %d failed", fd);
	return 0;
}

/* Wait up to @ms for @fd to count something; what it read. */
static long long wait_count(int fd, int ms)
{
	__u64 end = cpr_now_ns() + (__u64)ms * 1000000;
	long long n;

	do {
		n = drain(fd);
		if (n)
			return n;
		usleep(100);
	} while (cpr_now_ns() < end);
	return 0;
}

/* Have the device raise the set's @i-th vector (its table entry). */
static void raise_vec(struct gen *g, unsigned int i)
{
	CPR_ASSERT_OK(cpr_vfio_raise(g->d, g->index, entry_of(g, i)),
		      "raising %s %s %u failed", irq_name(g), vec_word(g),
		      entry_of(g, i));
}

static void ack(struct gen *g)
{
	if (g->d->drv && g->d->drv->ack)
		CPR_ASSERT_OK(g->d->drv->ack(g->d, g->index),
			      "clearing the device's interrupt cause failed");
}

static void unmask_intx(struct gen *g)
{
	CPR_ASSERT_OK(cpr_vfio_intx_unmask(g->d),
		      "unmasking INTx (%s) failed",
		      g->d->intx_unmask_by_ioctl ? "ioctl, by the helper" :
		      "unmask eventfd");
}

/*
 * The APIC id - the vCPU - vector @i's message names, known to both sides
 * of a handoff without reading the library's section (whose messages are
 * what is checked): spread over the vCPUs as a guest spreads its device's
 * vectors (irq affinity), table entry e at APIC id (3 * e + 1) % VCPUS, so
 * that entry 0 is not on vCPU 0 and neighbours are apart; the vector that
 * retargeted_vector_arrives_at_its_new_vcpu moved, where it moved it.
 * INTx: APIC 0, where its IOAPIC pin sends it.
 */
static unsigned int dest_of(const struct gen *g, unsigned int i)
{
	unsigned int e = entry_of(g, i);

	if (is_intx(g))
		return 0;
	if (g->moved && e == g->moved_entry)
		return g->moved_dest;
	return (3 * e + 1) % VCPUS;
}

/* Vector @i's message made to name dest_of() (routed: one commit). */
static void aim(struct gen *g, unsigned int i)
{
	const struct cpr_msi_msg msg = cpr_msi_msg_make(dest_of(g, i),
							lapic_vec(g, i));

	CPR_ASSERT_OK(cpr_vectors_set_msg(g->vs, i, &msg),
		      "giving %s %s %u a message to APIC %u in VM #%llu failed",
		      irq_name(g), vec_word(g), entry_of(g, i), dest_of(g, i),
		      (unsigned long long)g->generation);
}

/* Every vector's message to its vCPU: before the set is routed. */
static void spread(struct gen *g)
{
	unsigned int i;

	for (i = 0; i < g->vs->nr; i++)
		aim(g, i);
}

/* Every LAPIC of the VM emptied before a raise: from outside, on purpose. */
static void lapic_clear(struct gen *g)
{
	unsigned int c;

	for (c = 0; c < cpr_vm_nr_vcpus(g->vm); c++)
		CPR_ASSERT_OK(cpr_vm_lapic_clear(g->vm, c),
			      "clearing the LAPIC of VM #%llu's vCPU %u failed",
			      (unsigned long long)g->generation, c);
}

/* Whether LAPIC vector @vec is in the IRR of the VM's vCPU @c now. */
static bool irr_on(struct gen *g, unsigned int c, unsigned int vec)
{
	int ret = cpr_vm_lapic_irr_test(g->vm, c, vec);

	CPR_ASSERT_LE(0, ret, "reading the LAPIC IRR of VM #%llu's vCPU %u failed",
		      (unsigned long long)g->generation, c);
	return ret;
}

/* The first vCPU but @but whose IRR holds @vec now, or -1. */
static int irr_elsewhere(struct gen *g, unsigned int vec, unsigned int but)
{
	unsigned int c;

	for (c = 0; c < cpr_vm_nr_vcpus(g->vm); c++)
		if (c != but && irr_on(g, c, vec))
			return c;
	return -1;
}

/* The first vCPU whose IRR holds @vec now, or -1. */
static int irr_anywhere(struct gen *g, unsigned int vec)
{
	return irr_elsewhere(g, vec, UINT_MAX);
}

/* What routes vector @i: "GSI 25", or "IOAPIC pin 20" for INTx. */
static const char *route_text(const struct gen *g, unsigned int i)
{
	static char buf[64];

	if (is_intx(g))
		snprintf(buf, sizeof(buf), "IOAPIC pin %d", INTX_PIN);
	else
		snprintf(buf, sizeof(buf), "GSI %d", g->vs->v[i].virq);
	return buf;
}

/* Who lost vector @i's destination, if it arrives elsewhere. */
static const char *lost_by(const struct gen *g, unsigned int i)
{
	static char buf[128];

	if (!g->generation)
		return "KVM did not deliver it where its route points";
	if (g->moved && entry_of(g, i) == g->moved_entry)
		snprintf(buf, sizeof(buf),
			 "the destination it was moved to from APIC %u before the handoff was lost in the handoff",
			 g->moved_from);
	else
		snprintf(buf, sizeof(buf), "the destination was lost in the handoff");
	return buf;
}

/*
 * Whether vector @i, raised, shows within IRR_WAIT_MS in the IRR of the
 * vCPU its message names (dest_of()), as the LAPIC vector it names.
 * Found there, it must be in no other vCPU's IRR; found only on another
 * vCPU, its destination was lost: both fail here.  Found nowhere: false,
 * for the caller to say what that means.
 */
static bool arrived_at_dest(struct gen *g, unsigned int i)
{
	const unsigned int dest = dest_of(g, i), vec = lapic_vec(g, i);
	const unsigned long long gen = g->generation;
	int ret = cpr_test_wait_irr(g->vm, dest, vec, IRR_WAIT_MS), other;

	g->arrived_ns = cpr_now_ns();
	CPR_ASSERT_LE(0, ret, "reading the LAPIC IRR of VM #%llu's vCPU %u failed",
		      gen, dest);
	other = irr_elsewhere(g, vec, dest);
	if (ret)
		CPR_ASSERT_LT(other, 0,
			      "%s %s %u (%s) arrived at vCPU %u in VM #%llu, the APIC its %s names, and at vCPU %d too",
			      irq_name(g), vec_word(g), entry_of(g, i),
			      route_text(g, i), dest, gen,
			      is_intx(g) ? "pin" : "message", other);
	else
		CPR_ASSERT_LT(other, 0,
			      "%s %s %u (%s) arrived at vCPU %d in VM #%llu, its %s names APIC %u: %s",
			      irq_name(g), vec_word(g), entry_of(g, i),
			      route_text(g, i), other, gen,
			      is_intx(g) ? "pin" : "message", dest, lost_by(g, i));
	return ret;
}

/*
 * Vector @i raised (by the device where it can) reaches the VM as routed:
 * the LAPIC vector and the vCPU its message names, no other vCPU.  The
 * LAPICs are empty before, and after: only that vCPU's is cleared.
 */
static void vector_delivers(struct gen *g, unsigned int i)
{
	bool there;

	raise_vec(g, i);
	there = arrived_at_dest(g, i);
	ack(g);
	if (is_intx(g))
		unmask_intx(g);
	CPR_ASSERT_TRUE(there,
			"%s %s %u raised %s did not reach VM #%llu's vCPU %u as 0x%x: the vector its %s names, at the vCPU it names",
			irq_name(g), vec_word(g), entry_of(g, i), raised_how(g),
			(unsigned long long)g->generation, dest_of(g, i),
			lapic_vec(g, i), is_intx(g) ? "IOAPIC pin" : "MSI route");
	CPR_ASSERT_OK(cpr_vm_lapic_clear(g->vm, dest_of(g, i)),
		      "clearing the LAPIC of VM #%llu's vCPU %u failed",
		      (unsigned long long)g->generation, dest_of(g, i));
}

static void check_vector_delivers(struct gen *g, unsigned int i)
{
	lapic_clear(g);
	vector_delivers(g, i);
}

static void check_every_vector(struct gen *g)
{
	unsigned int i;

	lapic_clear(g);
	for (i = 0; i < nr_vectors(g); i++)
		vector_delivers(g, i);
}

/*
 * The real-mode guest, run on the vCPU vector @i's message names, takes
 * it in its handler.  An emulated e1000e may still send an MSI-X message
 * of an earlier raise (seen once in ~10 runs): such a stray is taken
 * first if it is on that vCPU and its priority is higher; it is noted and
 * the awaited vector must still come, within the same bound.
 */
static void check_guest_takes(struct gen *g, unsigned int i)
{
	__u64 end = cpr_now_ns() + GUEST_WAIT_MS * 1000000ull;
	const unsigned int c = dest_of(g, i);
	unsigned int got = 0, strays = 0;
	int ret;

	lapic_clear(g);
	raise_vec(g, i);
	for (;;) {
		ret = cpr_vm_guest_wait(g->vm, c, GUEST_WAIT_MS, &got);
		if (ret || got == lapic_vec(g, i) || ++strays > 8 ||
		    cpr_now_ns() > end)
			break;
		printf("# %s: vCPU %u took stray vector 0x%x before 0x%x\n",
		       g->label, c, got, lapic_vec(g, i));
	}
	ack(g);
	if (is_intx(g))
		unmask_intx(g);
	CPR_ASSERT_EQ(0, ret,
		      "the real-mode vCPU %u of VM #%llu, the APIC its %s names, did not take %s %s %u (0x%x) in its handler: KVM_RUN gave %d (%s)",
		      c, (unsigned long long)g->generation,
		      is_intx(g) ? "IOAPIC pin" : "message", irq_name(g),
		      vec_word(g), entry_of(g, i), lapic_vec(g, i), ret,
		      cpr_last_error());
	CPR_ASSERT_EQ(lapic_vec(g, i), got,
		      "the real-mode vCPU %u of VM #%llu took another vector than %s %s %u",
		      c, (unsigned long long)g->generation, irq_name(g),
		      vec_word(g), entry_of(g, i));
}

/* ---- The device as a VMM holds it ---- */

/*
 * The DMA buffer, a memfd the handoff preserves: mapped through the
 * container or IOAS for every vfio-pci device (the probe mdev pins through
 * it), and for any device with a DMA engine driver.  An mdev's container
 * takes no VFIO_DMA_*_FLAG_VADDR (emulated IOMMU), so none there.
 */
static bool wants_dma(const struct gen *g)
{
	return !g->d->is_mdev || (g->d->drv && g->d->drv->dma_check);
}

static void dma_setup(struct gen *g)
{
	char name[CPR_NAME_MAX + 1];

	g->dma_fd = -1;
	if (!wants_dma(g))
		return;
	g->dma_vaddr = g->iface == CPR_VFIO_IFACE_GROUP && !g->d->is_mdev;
	g->dma_fd = memfd_create("vfio_cpr_dma", MFD_CLOEXEC);
	CPR_ASSERT_SYS(g->dma_fd, "memfd_create for the DMA buffer failed");
	CPR_ASSERT_SYS(ftruncate(g->dma_fd, DMA_SIZE),
		       "sizing the DMA buffer failed");
	g->dma = mmap(NULL, DMA_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		      g->dma_fd, 0);
	CPR_ASSERT_TRUE(g->dma != MAP_FAILED, "mapping the DMA buffer failed: %s",
			strerror(errno));
	snprintf(name, sizeof(name), "%s_%s", g->name, DMA_MEM_NAME);
	CPR_ASSERT_OK(cpr_state_save_fd(g->st, name, 0, g->dma_fd),
		      "saving the DMA buffer's memfd in the state failed");
	CPR_ASSERT_OK(cpr_vfio_dma_map_memfd(g->d, DMA_IOVA, g->dma, g->dma_fd,
					     0, DMA_SIZE),
		      "mapping the DMA buffer at IOVA 0x%llx through the %s failed",
		      DMA_IOVA, g->iface == CPR_VFIO_IFACE_CDEV ? "IOAS" :
		      "container");
}

/* The probe mdev, run by the helper: it holds the device's container. */
struct probe_req {
	char uuid[40];
	__u64 iova;
};

static int op_mdev_probe(struct cpr_helper_call *call)
{
	const struct probe_req *req = call->in;

	if (call->in_len != sizeof(*req) || call->nr_fds != 1 || !call->dev ||
	    call->dev->container_fd < 0)
		return cpr_err(-EINVAL,
			       "mdev probe: needs a request, the mdev's group fd and a device with a container");
	call->out_len = sizeof(struct cpr_mdev_probe);
	return cpr_mdev_probe(call->fds[0], call->dev->container_fd,
			      req->uuid, req->iova, call->out);
}

static const struct cpr_helper_op helper_ops[] = {
	{ .id = OP_MDEV_PROBE, .name = "mdev probe", .fn = op_mdev_probe },
};

/* INTx into the VMs: the trigger eventfd as an irqfd on an IOAPIC pin. */
static void intx_attach(struct gen *g)
{
	CPR_ASSERT_OK(cpr_vm_ioapic_pin(g->vm, INTX_PIN, INTX_VEC, false),
		      "programming VM #%llu's IOAPIC pin %d failed",
		      (unsigned long long)g->generation, INTX_PIN);
	CPR_ASSERT_OK(cpr_vm_irqfd_assign(g->vm, g->d->intx_fd, INTX_PIN, -1),
		      "KVM_IRQFD of the INTx eventfd in VM #%llu failed",
		      (unsigned long long)g->generation);
}

/*
 * Open the device; the previous test's device helper may still be closing
 * its fds (it does as soon as its last client is gone): a busy group is
 * waited for, a little.
 */
static int open_device(struct gen *g)
{
	__u64 end = cpr_now_ns() + 5000000000ull;
	int ret;

	do {
		cpr_log_set_quiet(true);
		ret = cpr_vfio_open_iface(g->st, g->name, g->iface, &g->d);
		cpr_log_set_quiet(false);
		if (ret != -EBUSY)
			break;
		usleep(20000);
	} while (cpr_now_ns() < end);
	/* Once more aloud, so that a failure says why. */
	return ret ? cpr_vfio_open_iface(g->st, g->name, g->iface, &g->d) : 0;
}

/* The entries @vs holds, in @e (CPR_VECTORS_MAX of them at most). */
static unsigned int set_entries(const struct cpr_vectors *vs, unsigned int *e)
{
	unsigned int i;

	for (i = 0; i < vs->nr; i++)
		e[i] = vs->v[i].entry;
	return vs->nr;
}

/* What FIXTURE_SETUP skips with, in g->skip. */
static const char *skip_with(struct gen *g, const char *fmt, const char *what)
{
	snprintf(g->skip, sizeof(g->skip), fmt, what);
	return g->skip;
}

/*
 * FIXTURE_SETUP: the device of this run, as a VMM holds it before a
 * handoff.  Returns NULL, or why the test cannot run here (skip).
 */
static const char *take_device(struct gen *g, unsigned int index,
			       enum cpr_vfio_iface iface,
			       enum handoff_mode mode)
{
	char path[PATH_MAX];
	int count;

	memset(g, 0, sizeof(*g));
	g->dma_fd = -1;
	g->index = index;
	g->iface = iface;
	g->mode = mode;
	snprintf(g->name, sizeof(g->name), "%s", device_name);
	set_context(g);

	if (cpr_vfio_iface_supported(g->name, iface))
		return skip_with(g, "%s", cpr_last_error());
	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s", g->name);
	if (!access(path, F_OK) && index == VFIO_PCI_MSI_IRQ_INDEX)
		CPR_ASSERT_OK(cpr_test_renew_mdev(g->name),
			      "re-creating the mtty instance for MSI (6.1's enables MSI once) failed");

	g->st = cpr_state_new();
	CPR_ASSERT_TRUE(g->st, "allocating the CPR state failed");
	CPR_ASSERT_OK(open_device(g),
		      "the device given cannot be opened through the %s interface",
		      cpr_vfio_iface_name(iface));
	count = cpr_vfio_irq_count(g->d, index);
	if (!count) {
		cpr_vfio_free(g->d, true);
		g->d = NULL;
		return skip_with(g, "not applicable: %s has no such IRQ",
				 g->label);
	}
	CPR_ASSERT_OK(cpr_vfio_enable_device(g->d),
		      "enabling IO, memory and bus mastering failed");
	CPR_ASSERT_OK(cpr_vfio_enable_err_req(g->d),
		      "giving the ERR/REQ notifiers their eventfds failed");
	dma_setup(g);
	/* Before any VM or vector eventfd: the helper must not hold one. */
	CPR_ASSERT_OK(cpr_helper_start(g->st, &g->d, 1, helper_ops,
				       ARRAY_SIZE(helper_ops), &g->helper),
		      "starting the device helper failed");
	g->d->helper = g->helper;

	CPR_ASSERT_OK(cpr_vm_create(&g->vm, VCPUS),
		      "creating VM #0 with %u vCPUs failed", VCPUS);
	CPR_ASSERT_OK(cpr_vm_vfio_add_group(g->vm, cpr_vfio_kvm_file(g->d)),
		      "adding the %s to VM #0's KVM-VFIO device failed",
		      iface == CPR_VFIO_IFACE_CDEV ? "device cdev" : "group");
	if (index == VFIO_PCI_INTX_IRQ_INDEX) {
		CPR_ASSERT_OK(cpr_vfio_enable_intx(g->d), "enabling INTx failed");
		intx_attach(g);
	} else {
		if (index == VFIO_PCI_MSIX_IRQ_INDEX)
			cpr_test_take_msix(g->d, g->label, count, &g->vs);
		else
			CPR_ASSERT_OK(cpr_vfio_enable_msi(g->d, index, count,
							  &g->vs),
				      "enabling %u %s vectors failed", count,
				      irq_name(g));
		spread(g);
		CPR_ASSERT_OK(cpr_vectors_attach(g->vs, g->vm),
			      "routing the vectors into VM #0 failed");
	}
	if (g->d->drv && g->d->drv->setup)
		CPR_ASSERT_OK(g->d->drv->setup(g->d, index),
			      "programming the device's interrupt sources failed");
	/*
	 * The setup's own interrupts (nvme: vector 0 for each admin command)
	 * are no story's: left in VM #0's LAPIC, a handoff would carry them
	 * and they would arrive in VM #1 beside what the story raised.
	 */
	lapic_clear(g);
	return NULL;
}

/* FIXTURE_TEARDOWN: reached when the test did not hand over. */
static void release_device(struct gen *g)
{
	if (g->helper)
		cpr_helper_quit(g->helper);
	if (g->vs)
		cpr_vectors_free(g->vs, true);
	cpr_vm_destroy(g->vm);
	if (g->d)
		cpr_vfio_free(g->d, true);
	if (g->dma && g->dma != MAP_FAILED)
		munmap(g->dma, DMA_SIZE);
	if (g->dma_fd >= 0)
		close(g->dma_fd);
	if (g->st)
		cpr_state_free(g->st);
	memset(g, 0, sizeof(*g));
}

/* ---- The handoff ---- */

static void kvm_vfio_release(struct gen *g)
{
	char sec[CPR_NAME_MAX + 1];

	CPR_ASSERT_OK(cpr_vm_vfio_del_group(g->vm, cpr_vfio_kvm_file(g->d)),
		      "KVM_DEV_VFIO_FILE_DEL of the %s from VM #%llu's KVM-VFIO device failed: KVM-VFIO never registered it",
		      g->iface == CPR_VFIO_IFACE_CDEV ? "device cdev" : "group",
		      (unsigned long long)g->generation);
	snprintf(sec, sizeof(sec), "%s%s", g->name, KVM_VFIO_RELEASED);
	CPR_ASSERT_OK(cpr_state_set_u64(g->st, sec, cpr_now_ns()),
		      "recording the KVM-VFIO release in the state failed");
}

/*
 * The successor's side: the predecessor must have taken the device out of
 * its KVM-VFIO device first (the old VM's death would otherwise call
 * vfio_file_set_kvm(NULL) after the new VM set its own).
 */
static void kvm_vfio_take(struct gen *g)
{
	char sec[CPR_NAME_MAX + 1];
	__u64 released = 0, added;

	snprintf(sec, sizeof(sec), "%s%s", g->name, KVM_VFIO_RELEASED);
	CPR_ASSERT_OK(cpr_state_get_u64(g->st, sec, &released),
		      "the predecessor did not take the device out of its KVM-VFIO device before the handoff");
	CPR_ASSERT_OK(cpr_vm_vfio_add_group(g->vm, cpr_vfio_kvm_file(g->d)),
		      "KVM_DEV_VFIO_FILE_ADD of the inherited %s in VM #%llu failed",
		      g->iface == CPR_VFIO_IFACE_CDEV ? "device cdev" : "group",
		      (unsigned long long)g->generation);
	added = cpr_now_ns();
	CPR_ASSERT_LT(released, added,
		      "VM #%llu added the device to its KVM-VFIO device before the predecessor removed it from its own",
		      (unsigned long long)g->generation);
}

/*
 * The vector set this generation holds, in a section of the test's own:
 * the successor must claim exactly these entries (and not trust the
 * library's section to tell it what the predecessor had).
 */
static void record_set(struct gen *g)
{
	char sec[CPR_NAME_MAX + 1];

	snprintf(sec, sizeof(sec), "%s%s", g->name, SET_HELD);
	cpr_test_set_record(g->st, sec, g->vs, g->label);
}

/*
 * The successor's claim: exactly the entries the predecessor held, each
 * with the eventfds it saved under that entry, and the same table size.
 */
static void check_claimed(struct gen *g)
{
	char sec[CPR_NAME_MAX + 1];

	snprintf(sec, sizeof(sec), "%s%s", g->name, SET_HELD);
	cpr_test_set_check_claim(g->st, sec, g->vs, g->label, irq_name(g),
				 vec_word(g), g->generation - 1);
}

/*
 * Stop delivering into the current VM, as a handoff does: the device out
 * of its KVM-VFIO device, the DMA vaddr invalidated, the vectors detached
 * (what is pending in the LAPIC noted), then the story's blackout.
 */
static void detach_for_handoff(struct gen *g)
{
	if (g->vs)
		record_set(g);
	kvm_vfio_release(g);
	if (g->dma_vaddr)
		CPR_ASSERT_OK(cpr_vfio_dma_unmap_vaddr(g->d, DMA_IOVA, DMA_SIZE),
			      "VFIO_DMA_UNMAP_FLAG_VADDR before the handoff failed");
	CPR_ASSERT_OK(cpr_handoff_mark_start(g->st),
		      "recording the handoff start failed");
	if (is_intx(g))
		CPR_ASSERT_OK(cpr_vfio_intx_detach(g->d, g->vm, INTX_PIN, 0,
						   INTX_VEC),
			      "detaching INTx from VM #%llu failed",
			      (unsigned long long)g->generation);
	else
		CPR_ASSERT_OK(cpr_vectors_detach(g->vs),
			      "detaching the vectors from VM #%llu failed",
			      (unsigned long long)g->generation);
	if (g->story->blackout)
		g->story->blackout(g);
}

/* The successor's argument: "<story>,<device>,<index>,<iface>,<mode>". */
static void successor_arg(const struct gen *g, char *arg, size_t size)
{
	snprintf(arg, size, "%s,%s,%u,%u,%u", g->story->name, g->name,
		 g->index, g->iface, g->mode);
}

static int xfer_save(struct cpr_state *st, void *arg)
{
	struct gen *g = arg;

	(void)st;
	return g->vs ? cpr_vectors_save(g->vs) : 0;
}

static int xfer_detach(struct cpr_state *st, void *arg)
{
	(void)st;
	detach_for_handoff(arg);
	return 0;
}

/*
 * The mapping's vaddr back to this process: invalidated by the detach, or
 * already given to the successor (which died after its update): then
 * invalidated again first.
 */
static int dma_take_back(struct gen *g)
{
	int ret;

	cpr_log_set_quiet(true);
	ret = cpr_vfio_dma_update_vaddr(g->d, DMA_IOVA, g->dma, DMA_SIZE);
	cpr_log_set_quiet(false);
	if (ret != -EINVAL)	/* once more aloud, so that a failure says why */
		return ret ? cpr_vfio_dma_update_vaddr(g->d, DMA_IOVA, g->dma,
						       DMA_SIZE) : 0;
	/* The successor had it: invalidate it again, then take it. */
	ret = cpr_vfio_dma_unmap_vaddr(g->d, DMA_IOVA, DMA_SIZE);
	return ret ? ret : cpr_vfio_dma_update_vaddr(g->d, DMA_IOVA, g->dma,
						     DMA_SIZE);
}

/* The socket successor failed after the detach: deliver again here. */
static int xfer_reattach(struct cpr_state *st, void *arg)
{
	struct gen *g = arg;
	int ret;

	(void)st;
	ret = cpr_vm_vfio_add_group(g->vm, cpr_vfio_kvm_file(g->d));
	if (!ret && g->dma_vaddr)
		ret = dma_take_back(g);
	if (ret)
		return ret;
	if (is_intx(g))
		return cpr_vm_irqfd_assign(g->vm, g->d->intx_fd, INTX_PIN, -1);
	return cpr_vectors_reattach(g->vs);
}

/*
 * Hand over to the next generation, by exec or over a socket.  By exec it
 * does not return; by socket it returns once the whole chain ended, with
 * the chain's exit status.
 */
static int handoff_next(struct gen *g)
{
	const struct cpr_xfer_give_ops ops = {
		.save = xfer_save,
		.detach = xfer_detach,
		.reattach = xfer_reattach,
	};
	char path[64], arg[CPR_VFIO_NAME_MAX + 64];
	pid_t pid;
	int status;

	successor_arg(g, arg, sizeof(arg));
	if (g->mode == MODE_EXEC) {
		detach_for_handoff(g);
		CPR_ASSERT_OK(cpr_test_exec_self(g->st, "vfio", arg),
			      "exec into the successor failed");
		CPR_FAIL("cpr_exec() returned without an error");
	}
	snprintf(path, sizeof(path), "@vfio_cpr_test.%d.%llu", getpid(),
		 (unsigned long long)g->generation);
	pid = cpr_test_give_to_self(g->st, "vfio-xfer", path, arg,
				    XFER_TIMEOUT_MS, &ops, g);
	CPR_ASSERT_GE(pid, 0,
		      "the socket handoff from VM #%llu to the successor failed",
		      (unsigned long long)g->generation);
	/* Handed over: this VM is done; the chain decides the outcome. */
	if (g->vs)
		cpr_vectors_free(g->vs, true);
	g->vs = NULL;
	cpr_vm_destroy(g->vm);
	g->vm = NULL;
	cpr_helper_free(g->helper);
	g->helper = NULL;
	status = cpr_test_wait_successor(pid);
	CPR_ASSERT_GE(status, 0, "waiting for the socket successor failed");
	return status;
}

/* The harness's test child: set the scene in VM #0 and hand over. */
static void tell(struct __test_metadata *_metadata, struct gen *g,
		 const struct story *s)
{
	const char *why;

	if (!g->d)
		SKIP(return, "%s", g->skip);
	why = s->applies ? s->applies(g) : NULL;
	if (why)
		SKIP(return, "not applicable: %s", why);
	g->story = s;
	g->generations = s->generations ? s->generations : 1;
	if (s->arrange)
		s->arrange(g);
	CPR_ASSERT_EQ(0, handoff_next(g),
		      "the chain of socket successors failed (their output is above)");
}

/* ---- The successor ---- */

/*
 * Take the device over from g->st: its fds, its helper, INTx, the DMA
 * buffer at a new address; the vectors come later (attach_and_check()),
 * from the sections the predecessor saved when it detached.
 */
static void take_over(struct gen *g)
{
	char name[CPR_NAME_MAX + 1];

	CPR_ASSERT_OK(cpr_vfio_take_over(g->st, g->name, &g->d),
		      "taking over the inherited VFIO fds failed");
	CPR_ASSERT_TRUE(g->d->reused,
			"the successor re-opened the device instead of reusing the inherited fds");
	CPR_ASSERT_EQ(g->iface, g->d->iface,
		      "the state holds the device through another interface than the variant's");
	CPR_ASSERT_OK(cpr_helper_attach(g->st, &g->helper),
		      "taking up the device helper the predecessor started failed");
	g->d->helper = g->helper;
	if (is_intx(g))
		CPR_ASSERT_OK(cpr_vfio_enable_intx(g->d),
			      "taking over the inherited INTx eventfds failed");

	snprintf(name, sizeof(name), "%s_%s", g->name, DMA_MEM_NAME);
	g->dma_fd = cpr_state_find_fd(g->st, name, 0);
	if (g->dma_fd < 0)
		return;
	g->dma_vaddr = g->iface == CPR_VFIO_IFACE_GROUP && !g->d->is_mdev;
	g->dma = mmap(NULL, DMA_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		      g->dma_fd, 0);
	CPR_ASSERT_TRUE(g->dma != MAP_FAILED,
			"mapping the inherited DMA memfd failed: %s",
			strerror(errno));
}

/* Refused ioctls fail the successor, even those whose error was ignored. */
static void check_lockdown(struct gen *g)
{
	char what[512];

	(void)g;
	CPR_ASSERT_EQ(0, cpr_lockdown_violations(),
		      "the successor issued ioctls the lockdown refused: %s: a successor must not touch the device",
		      cpr_lockdown_describe(what, sizeof(what)));
}

/* The vector the predecessor moved to another vCPU, if it moved one. */
static void moved_load(struct gen *g)
{
	char sec[CPR_NAME_MAX + 1];
	__u64 m = 0;
	int ret;

	snprintf(sec, sizeof(sec), "%s%s", g->name, MOVED_ENTRY);
	ret = cpr_state_get_u64(g->st, sec, &m);
	if (ret == -ENOENT)
		return;
	CPR_ASSERT_RET_OK(ret, "reading which vector the predecessor moved failed");
	g->moved = true;
	g->moved_entry = (__u32)m;
	g->moved_dest = (m >> 32) & 0xff;
	g->moved_from = (m >> 40) & 0xff;
}

/*
 * Everything a successor does once it holds the device: the story's
 * checks before anything is attached, the DMA mapping moved to this
 * process, VM #n (made now unless prepared already) with the device in its
 * KVM-VFIO device, the vectors attached in one routing commit, then the
 * story's checks.
 */
static void attach_and_check(struct gen *g)
{
	moved_load(g);
	/* The sections as the predecessor left them when it detached. */
	if (!is_intx(g)) {
		CPR_ASSERT_OK(cpr_vectors_claim(g->st, g->name, NULL, &g->vs),
			      "rebuilding the %s vectors from the state failed",
			      irq_name(g));
		check_claimed(g);
	}
	if (g->story->before_attach)
		g->story->before_attach(g);
	if (g->dma_vaddr)
		CPR_ASSERT_OK(cpr_vfio_dma_update_vaddr(g->d, DMA_IOVA, g->dma,
							DMA_SIZE),
			      "VFIO_DMA_MAP_FLAG_VADDR: giving the kernel the successor's address of the DMA buffer failed");
	else if (g->dma)
		CPR_ASSERT_OK(cpr_vfio_dma_update_vaddr(g->d, DMA_IOVA, g->dma,
							DMA_SIZE),
			      "moving the IOAS DMA mapping to the successor failed");
	if (!g->vm)
		CPR_ASSERT_OK(cpr_vm_create(&g->vm, VCPUS),
			      "creating VM #%llu with %u vCPUs failed",
			      (unsigned long long)g->generation, VCPUS);
	kvm_vfio_take(g);
	if (is_intx(g)) {
		intx_attach(g);
	} else {
		CPR_ASSERT_OK(cpr_vectors_attach(g->vs, g->vm),
			      "attaching %u inherited eventfds to VM #%llu failed",
			      g->vs->nr, (unsigned long long)g->generation);
		CPR_ASSERT_EQ(1, cpr_vm_routing_commits(g->vm),
			      "%u vectors must be routed in one KVM_SET_GSI_ROUTING",
			      g->vs->nr);
	}
	CPR_ASSERT_EQ(0, g->d->setup_ioctls,
		      "the successor sent setup ioctls (SET_IRQS, SET_CONTAINER...) to the device while taking over");
	check_lockdown(g);
	if (g->story->after_attach)
		g->story->after_attach(g);
	check_lockdown(g);
}

/* The last generation leaves the device quiet; the others hand over. */
static int next_generation(struct gen *g)
{
	if (g->generation < g->generations) {
		if (g->story->arrange)
			g->story->arrange(g);
		return handoff_next(g);
	}
	/*
	 * Not mtty: it keeps a pointer to the released eventfd and would
	 * ignore the next enable.
	 */
	if (!cpr_vfio_is_mtty(g->d))
		CPR_ASSERT_OK(cpr_vfio_irq_disable(g->d, g->index),
			      "disabling %s at the end (by the helper) failed",
			      irq_name(g));
	CPR_ASSERT_OK(cpr_helper_quit(g->helper),
		      "ending the device helper failed");
	g->helper = NULL;
	check_lockdown(g);
	return 0;
}

static const struct story *story_find(const char *name);

/* Parse "<story>,<device>,<index>,<iface>,<mode>" into @g. */
static void parse_successor_arg(const char *arg, struct gen *g)
{
	char story[64];
	unsigned int iface, mode;
	int n;

	n = sscanf(arg, "%63[^,],%63[^,],%u,%u,%u", story, g->name, &g->index,
		   &iface, &mode);
	CPR_ASSERT_EQ(5, n, "bad successor argument '%s'", arg);
	CPR_ASSERT_TRUE(iface <= CPR_VFIO_IFACE_CDEV && mode <= MODE_SOCKET,
			"bad successor argument '%s'", arg);
	g->iface = iface;
	g->mode = mode;
	g->story = story_find(story);
	CPR_ASSERT_TRUE(g->story, "no story '%s' in this test", story);
	g->generations = g->story->generations ? g->story->generations : 1;
	g->dma_fd = -1;
	set_context(g);
}

static int successor_exec(const char *arg)
{
	struct cpr_resume_info info;
	struct gen g = { 0 };

	parse_successor_arg(arg, &g);
	CPR_ASSERT_EQ(1, cpr_resume(&info),
		      "no handed-off state received: %s", cpr_last_error());
	CPR_ASSERT_EQ(0, info.leaked_fds,
		      "the fd audit after exec found fds leaked into the successor");
	g.st = info.st;
	g.generation = info.generation;
	g.handoff_start_ns = info.handoff_start_ns;
	take_over(&g);
	attach_and_check(&g);
	return next_generation(&g);
}

static int xfer_prepare(struct cpr_state *st, void *arg)
{
	struct gen *g = arg;

	g->st = st;
	CPR_ASSERT_OK(cpr_state_get_u64(st, CPR_SEC_GENERATION, &g->generation),
		      "the received state has no generation");
	take_over(g);
	CPR_ASSERT_OK(cpr_vm_create(&g->vm, VCPUS),
		      "creating VM #%llu with %u vCPUs failed",
		      (unsigned long long)g->generation, VCPUS);
	return 0;
}

static int xfer_attach(struct cpr_state *st, void *arg)
{
	struct gen *g = arg;

	if (cpr_state_get_u64(st, CPR_SEC_HANDOFF_START, &g->handoff_start_ns))
		g->handoff_start_ns = 0;
	attach_and_check(g);
	return 0;
}

static int successor_xfer(const char *path, const char *arg)
{
	const struct cpr_xfer_take_ops ops = {
		.prepare = xfer_prepare,
		.attach = xfer_attach,
	};
	struct cpr_state *st = NULL;
	struct gen g = { 0 };

	parse_successor_arg(arg, &g);
	CPR_ASSERT_OK(cpr_xfer_take(path, XFER_TIMEOUT_MS, &st, &ops, &g),
		      "the socket handoff, successor side, failed");
	return next_generation(&g);
}

/* ---- The stories ---- */

/* Why a story does not apply (the stories' applies() fill it). */
static char why_not[CPR_ERRMSG_MAX];

static const char *only_vfio_pci(const struct gen *g)
{
	if (!g->d->is_mdev)
		return NULL;
	snprintf(why_not, sizeof(why_not),
		 "%s is an mdev: this checks vfio-pci", g->label);
	return why_not;
}

/* The vector masked with its pending bit set: the last one. */
static unsigned int masked_vector(const struct gen *g)
{
	return nr_vectors(g) - 1;
}

/* The vector left pending in the old VM's LAPIC: the last one unmasked. */
static unsigned int pending_vector(const struct gen *g)
{
	if (g->index == VFIO_PCI_MSIX_IRQ_INDEX && nr_vectors(g) >= 3)
		return masked_vector(g) - 1;
	return nr_vectors(g) - 1;
}

/* inherited_eventfd_signalled_before_attach */
static void signalled_before_attach(struct gen *g)
{
	unsigned int i;

	for (i = 0; i < nr_vectors(g); i++) {
		raise_vec(g, i);
		CPR_ASSERT_LE(1, wait_count(trigger_fd(g, i), IRR_WAIT_MS),
			      "%s %s %u raised %s did not reach its inherited eventfd before anything was attached: vfio-pci no longer signals it after the handoff",
			      irq_name(g), vec_word(g), entry_of(g, i),
			      raised_how(g));
		ack(g);
		if (is_intx(g))
			unmask_intx(g);
	}
}

static void blackout_raise(struct gen *g)
{
	raise_vec(g, 0);
}

/* The story's raise; nothing of vector 0 may be carried beside it. */
static void blackout_only_raise(struct gen *g)
{
	if (g->vs)
		CPR_ASSERT_FALSE(g->vs->v[0].lapic_pending,
				 "%s %s %u was pending in VM #%llu's LAPIC before the blackout: the handoff carries it, and a second delivery could not be told from the blackout's (the test's scene is not clean)",
				 irq_name(g), vec_word(g), entry_of(g, 0),
				 (unsigned long long)g->generation);
	blackout_raise(g);
}

/*
 * How often this kernel took the interrupt of vector @i of the device
 * (its line in /proc/interrupts, vfio-pci's "vfio-msix[E](BDF)", summed
 * over the CPUs), or -1 where it has none (an mdev) or cannot be read.
 */
static long long host_irq_count(const struct gen *g, unsigned int i)
{
	char name[CPR_VFIO_NAME_MAX + 32], line[4096], *p, *end;
	long long sum = -1;
	FILE *f;

	if (is_intx(g))
		snprintf(name, sizeof(name), " vfio-intx(%s)", g->name);
	else
		snprintf(name, sizeof(name), " vfio-%s[%u](%s)",
			 g->index == VFIO_PCI_MSIX_IRQ_INDEX ? "msix" : "msi",
			 entry_of(g, i), g->name);
	f = fopen("/proc/interrupts", "re");
	if (!f)
		return -1;
	while (sum < 0 && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		end = line + strlen(line);
		if (end - line < (long)strlen(name) ||
		    strcmp(end - strlen(name), name))
			continue;
		p = strchr(line, ':');
		for (sum = 0, p = p ? p + 1 : end; p < end;) {
			long long n = strtoll(p, &end, 10);

			if (end == p)
				break;
			sum += n;
			p = end;
		}
	}
	fclose(f);
	return sum;
}

/* The interrupt raised while no VM listened arrives, once. */
static void blackout_delivered_once(struct gen *g)
{
	long long irqs, more;
	const char *why;
	int c;

	CPR_ASSERT_TRUE(arrived_at_dest(g, 0),
			"KVM did not inject the interrupt already pending on %s %s %u's eventfd when its irqfd was assigned in VM #%llu (as 0x%x at vCPU %u)",
			irq_name(g), vec_word(g), entry_of(g, 0),
			(unsigned long long)g->generation, lapic_vec(g, 0),
			dest_of(g, 0));
	irqs = host_irq_count(g, 0);
	printf("# %s %s generation %llu: blackout %.3f ms\n", g->label,
	       irq_name(g), (unsigned long long)g->generation,
	       (g->arrived_ns - g->handoff_start_ns) / 1e6);
	ack(g);
	lapic_clear(g);
	if (is_intx(g))
		unmask_intx(g);
	usleep(TWICE_WAIT_US);
	c = irr_anywhere(g, lapic_vec(g, 0));
	if (c < 0)
		return;
	more = host_irq_count(g, 0);
	if (irqs < 0 || more < 0)
		why = "this kernel's interrupt count of the vector is not known";
	else if (more > irqs)
		why = "the device interrupted again after the first delivery (/proc/interrupts)";
	else
		why = "no second interrupt from the device (/proc/interrupts)";
	CPR_FAIL("%s %s %u raised once in the blackout was delivered twice into VM #%llu: %s",
		 irq_name(g), vec_word(g), entry_of(g, 0),
		 (unsigned long long)g->generation, why);
}

/* Leave the last vector pending, not taken, in the old VM's LAPIC. */
static void leave_pending_in_lapic(struct gen *g)
{
	unsigned int p = pending_vector(g);

	lapic_clear(g);
	raise_vec(g, p);
	CPR_ASSERT_TRUE(arrived_at_dest(g, p),
			"%s %s %u raised %s did not reach VM #%llu's vCPU %u as 0x%x: the vector its %s names, at the vCPU it names",
			irq_name(g), vec_word(g), entry_of(g, p), raised_how(g),
			(unsigned long long)g->generation, dest_of(g, p),
			lapic_vec(g, p), is_intx(g) ? "IOAPIC pin" : "MSI route");
	ack(g);
}

static void pending_carried(struct gen *g)
{
	unsigned int p = pending_vector(g);

	CPR_ASSERT_TRUE(arrived_at_dest(g, p),
			"%s %s %u pending in VM #%llu's LAPIC at the handoff was lost",
			irq_name(g), vec_word(g), entry_of(g, p),
			(unsigned long long)g->generation - 1);
	lapic_clear(g);
	if (is_intx(g))
		unmask_intx(g);
}

/* masked_pending_delivered_on_unmask: the last MSI-X vector. */
static void mask_and_raise(struct gen *g)
{
	unsigned int m = masked_vector(g), e = entry_of(g, m);

	CPR_ASSERT_OK(cpr_vectors_mask(g->vs, m), "masking MSI-X entry %u failed",
		      e);
	raise_vec(g, m);
	usleep(10000);
	CPR_ASSERT_LE(1, cpr_vectors_poll(g->vs),
		      "MSI-X entry %u masked and raised %s: its eventfd counted nothing",
		      e, raised_how(g));
	CPR_ASSERT_TRUE(g->vs->v[m].pending,
			"MSI-X entry %u masked and raised: its pending bit is not set",
			e);
	ack(g);
}

static void masked_pending_on_unmask(struct gen *g)
{
	unsigned int m = masked_vector(g), e = entry_of(g, m);

	CPR_ASSERT_TRUE(g->vs->v[m].masked && g->vs->v[m].pending,
			"MSI-X entry %u lost its masked and pending state across the handoff",
			e);
	CPR_ASSERT_LT(irr_anywhere(g, lapic_vec(g, m)), 0,
		      "MSI-X entry %u was delivered into VM #%llu while still masked",
		      e, (unsigned long long)g->generation);
	CPR_ASSERT_OK(cpr_vectors_unmask(g->vs, m),
		      "unmasking MSI-X entry %u failed", e);
	CPR_ASSERT_TRUE(arrived_at_dest(g, m),
			"MSI-X entry %u, masked and pending at the handoff, was not delivered into VM #%llu when unmasked",
			e, (unsigned long long)g->generation);
	lapic_clear(g);
}

/* every_vector_delivers_in_both_vms */
static void every_vector_and_guest(struct gen *g)
{
	check_every_vector(g);
	check_guest_takes(g, 0);
}

/*
 * retargeted_vector_arrives_at_its_new_vcpu: just before the handoff the
 * guest moves the last vector to another vCPU (irq affinity) and the VMM
 * follows - masks it, routes its GSI with the new message (one commit),
 * unmasks it - so the saved state carries the new message.  VM #n+1 must
 * route it there, not where it was, nor to vCPU 0.
 */
static const char *has_msi_message(const struct gen *g)
{
	if (!is_intx(g))
		return NULL;
	snprintf(why_not, sizeof(why_not),
		 "%s INTx reaches the VMs through IOAPIC pin %d, not an MSI message: it has no message to retarget",
		 g->label, INTX_PIN);
	return why_not;
}

static unsigned int moved_vector(const struct gen *g)
{
	return nr_vectors(g) - 1;
}

static void retarget(struct gen *g)
{
	const unsigned int r = moved_vector(g), e = entry_of(g, r);
	const unsigned long long gen = g->generation;
	char sec[CPR_NAME_MAX + 1];

	check_vector_delivers(g, r);
	g->moved_from = dest_of(g, r);
	g->moved_entry = e;
	g->moved_dest = (g->moved_from + 2) % VCPUS;
	g->moved = true;
	CPR_ASSERT_OK(cpr_vectors_mask(g->vs, r),
		      "masking %s %s %u in VM #%llu to move it failed",
		      irq_name(g), vec_word(g), e, gen);
	aim(g, r);
	CPR_ASSERT_OK(cpr_vectors_unmask(g->vs, r),
		      "unmasking %s %s %u in VM #%llu, moved to APIC %u, failed",
		      irq_name(g), vec_word(g), e, gen, g->moved_dest);
	check_vector_delivers(g, r);
	snprintf(sec, sizeof(sec), "%s%s", g->name, MOVED_ENTRY);
	CPR_ASSERT_OK(cpr_state_set_u64(g->st, sec, e |
					(__u64)g->moved_dest << 32 |
					(__u64)g->moved_from << 40),
		      "recording the moved vector in the state failed");
}

static void retargeted_arrives(struct gen *g)
{
	const unsigned int r = moved_vector(g);

	CPR_ASSERT_TRUE(g->moved && g->moved_entry == entry_of(g, r),
			"the predecessor did not record that it moved %s %s %u",
			irq_name(g), vec_word(g), entry_of(g, r));
	check_vector_delivers(g, r);
	check_every_vector(g);
	check_guest_takes(g, r);
}

/* err_req_notifiers_still_wired */
static const char *has_err_req(const struct gen *g)
{
	if (only_vfio_pci(g))
		return only_vfio_pci(g);
	if (g->d->err_fd >= 0 || g->d->req_fd >= 0)
		return NULL;
	snprintf(why_not, sizeof(why_not), "%s has neither ERR nor REQ",
		 g->label);
	return why_not;
}

static void notifiers_wired(struct gen *g)
{
	const int fds[2] = { g->d->err_fd, g->d->req_fd };
	const unsigned int idx[2] = { VFIO_PCI_ERR_IRQ_INDEX,
				      VFIO_PCI_REQ_IRQ_INDEX };
	unsigned int i;

	for (i = 0; i < 2; i++) {
		if (fds[i] < 0)
			continue;
		CPR_ASSERT_OK(cpr_vfio_irq_trigger(g->d, idx[i], 0),
			      "triggering %s (by the helper) failed",
			      cpr_vfio_irq_name(idx[i]));
		CPR_ASSERT_LE(1, wait_count(fds[i], IRR_WAIT_MS),
			      "the %s notifier no longer reaches its inherited eventfd",
			      cpr_vfio_irq_name(idx[i]));
	}
}

/* dma_mapping_follows_the_new_vaddr */
static const char *has_dma_check(const struct gen *g)
{
	if (g->d->drv && g->d->drv->dma_check)
		return NULL;
	if (g->iface == CPR_VFIO_IFACE_GROUP && !g->d->is_mdev && probe_mdev)
		return NULL;
	snprintf(why_not, sizeof(why_not),
		 "%s has no DMA engine driver, and the pin probe needs the group interface and the vfio_cpr_mdev module (VFIO_CPR_PROBE_MDEV)",
		 g->label);
	return why_not;
}

static void dma_round_trip(struct gen *g)
{
	if (!g->d->drv || !g->d->drv->dma_check)
		return;
	CPR_ASSERT_OK(g->d->drv->dma_check(g->d, DMA_IOVA, g->dma, DMA_SIZE),
		      "the device's DMA through IOVA 0x%llx did not arrive in VM #%llu's era (the IOMMU mapping no longer serves it)",
		      DMA_IOVA, (unsigned long long)g->generation);
}

/*
 * One probe through the helper: the mdev's group @gfd (the group can be
 * open only once: KVM-VFIO holds it too while it is in a VM) attached to
 * the device's container for the probe.
 */
static void mdev_probe(struct gen *g, int gfd, __u64 iova,
		       struct cpr_mdev_probe *out)
{
	struct probe_req req = { .iova = iova };
	size_t len = 0;

	snprintf(req.uuid, sizeof(req.uuid), "%s", probe_mdev);
	CPR_ASSERT_OK(cpr_helper_call(g->helper, OP_MDEV_PROBE, g->name, &req,
				      sizeof(req), &gfd, 1, out, sizeof(*out),
				      &len),
		      "probing through the vfio_cpr_mdev instance %s (by the helper) failed",
		      probe_mdev);
	CPR_ASSERT_EQ(sizeof(*out), len, "the mdev probe answered short");
}

static int probe_group_open(void)
{
	int gfd = cpr_mdev_group_open(probe_mdev);

	CPR_ASSERT_GE(gfd, 0, "opening the probe mdev %s's group failed: %s",
		      probe_mdev, cpr_last_error());
	return gfd;
}

/* Pages at the start, in the middle and at the end of the mapping. */
static void pins_read_the_new_vaddr(struct gen *g)
{
	const __u64 offs[] = { 0, DMA_SIZE / 2 + 0x40, DMA_SIZE - CPR_MDEV_DATA_LEN };
	struct cpr_mdev_probe p;
	unsigned int i, k;
	__u8 *mem = g->dma;
	int gfd;

	if (!g->dma_vaddr || !probe_mdev)
		return;
	gfd = probe_group_open();
	for (i = 0; i < ARRAY_SIZE(offs); i++) {
		for (k = 0; k < CPR_MDEV_DATA_LEN; k++)
			mem[offs[i] + k] = (__u8)(getpid() + g->generation * 31 +
						  i * 7 + k);
		mdev_probe(g, gfd, DMA_IOVA + offs[i], &p);
		CPR_ASSERT_EQ(0, p.pin_ret,
			      "pinning IOVA 0x%llx through the container after VFIO_DMA_MAP_FLAG_VADDR failed in the kernel (%d: %s): the mapping does not follow the successor",
			      DMA_IOVA + offs[i], p.pin_ret,
			      strerror(-p.pin_ret));
		CPR_ASSERT_EQ(0, memcmp(p.data, mem + offs[i], CPR_MDEV_DATA_LEN),
			      "pinning IOVA 0x%llx through the container after VFIO_DMA_MAP_FLAG_VADDR read other bytes than the successor wrote at that address: the kernel does not use the successor's address",
			      DMA_IOVA + offs[i]);
	}
	close(gfd);
}

static void dma_follows(struct gen *g)
{
	pins_read_the_new_vaddr(g);
	dma_round_trip(g);
}

/* kvm_vfio_moves_to_the_new_vm: the probe mdev gets VM #n's KVM. */
static void kvm_vfio_gives_new_vm(struct gen *g)
{
	struct cpr_mdev_probe p;
	int gfd;

	if (!probe_mdev || g->iface != CPR_VFIO_IFACE_GROUP || g->d->is_mdev) {
		printf("# %s: %s\n", g->label,
		       "KVM-VFIO checked by the handoff's order only (the probe needs vfio_cpr_mdev and a type1 container)");
		return;
	}
	gfd = probe_group_open();
	CPR_ASSERT_OK(cpr_vm_vfio_add_group(g->vm, gfd),
		      "KVM_DEV_VFIO_FILE_ADD of the probe mdev's group in VM #%llu failed",
		      (unsigned long long)g->generation);
	mdev_probe(g, gfd, DMA_IOVA, &p);
	CPR_ASSERT_OK(cpr_vm_vfio_del_group(g->vm, gfd),
		      "KVM_DEV_VFIO_FILE_DEL of the probe mdev's group from VM #%llu failed: KVM-VFIO never registered it",
		      (unsigned long long)g->generation);
	close(gfd);
	CPR_ASSERT_TRUE(p.kvm,
			"the mdev opened after KVM_DEV_VFIO_FILE_ADD into VM #%llu sees no KVM: KVM-VFIO did not hand the VM to vfio",
			(unsigned long long)g->generation);
	CPR_ASSERT_EQ(getpid(), p.kvm_pid,
		      "the mdev opened after KVM_DEV_VFIO_FILE_ADD into VM #%llu sees another process's VM: KVM-VFIO did not hand the VM to vfio",
		      (unsigned long long)g->generation);
}

/* no_setup_ioctl_in_successor */
static void no_setup_ioctl(struct gen *g)
{
	CPR_ASSERT_TRUE(!cpr_lockdown_available() || cpr_lockdown_active(),
			"the successor runs without the lockdown although the kernel can filter");
	check_lockdown(g);
	CPR_ASSERT_EQ(0, g->d->setup_ioctls,
		      "the successor sent setup ioctls to the device");
	CPR_ASSERT_EQ(0, cpr_helper_count(g->helper, CPR_HELPER_REQ_EVENTFDS),
		      "the successor had the helper give the device eventfds");
	CPR_ASSERT_EQ(0, cpr_helper_count(g->helper, CPR_HELPER_REQ_REFUSED),
		      "the successor asked the helper for what its policy refuses");
	printf("# %s: lockdown: %u trigger(s), %u unmask(s) by the helper, no setup ioctl\n",
	       g->label, cpr_helper_count(g->helper, CPR_HELPER_REQ_TRIGGER),
	       cpr_helper_count(g->helper, CPR_HELPER_REQ_UNMASK));
}

/*
 * INTx: masked when it fires until unmasked, through either path.
 * vfio-pci masks the line in its interrupt handler; a software trigger
 * (DATA_NONE) only signals the eventfd, so only a device raising INTx
 * itself (a driver in vfio_drivers.c) can show the mask.
 */
static const char *intx_fires(const struct gen *g)
{
	if (only_vfio_pci(g))
		return only_vfio_pci(g);
	if (g->d->drv)
		return NULL;
	snprintf(why_not, sizeof(why_not),
		 "%s has no driver here: its INTx is raised by a software trigger (VFIO_DEVICE_SET_IRQS DATA_NONE), which vfio-pci signals without masking the line",
		 g->label);
	return why_not;
}

static const char *intx_unmask_eventfd_taken(const struct gen *g)
{
	if (intx_fires(g))
		return intx_fires(g);
	return g->d->intx_unmask_by_ioctl ?
	       "the driver refused an INTx unmask eventfd" : NULL;
}

static void intx_masked_until_unmasked(struct gen *g, bool by_ioctl)
{
	const char *how = by_ioctl ? "VFIO_DEVICE_SET_IRQS" :
				     "the unmask eventfd";
	long long n;

	raise_vec(g, 0);
	CPR_ASSERT_LE(1, wait_count(g->d->intx_fd, IRR_WAIT_MS),
		      "vfio-pci did not signal INTx of %s raised by the device after the handoff",
		      g->label);
	/* Once more while masked: the line asserts again, vfio stays quiet. */
	ack(g);
	raise_vec(g, 0);
	usleep(TWICE_WAIT_US);
	n = drain(g->d->intx_fd);
	CPR_ASSERT_EQ(0, n,
		      "vfio-pci did not mask INTx of %s when it fired: its eventfd counted again before the unmask",
		      g->label);
	if (by_ioctl)
		CPR_ASSERT_OK(cpr_helper_unmask(g->helper, g->name,
						VFIO_PCI_INTX_IRQ_INDEX, 0),
			      "VFIO_DEVICE_SET_IRQS UNMASK of INTx (by the helper) failed");
	else
		CPR_ASSERT_SYS(write(g->d->intx_unmask_fd, &(__u64){ 1 },
				     sizeof(__u64)),
			       "writing the INTx unmask eventfd failed");
	CPR_ASSERT_LE(1, wait_count(g->d->intx_fd, IRR_WAIT_MS),
		      "vfio-pci did not signal INTx of %s again after it was unmasked through %s",
		      g->label, how);
	ack(g);
	unmask_intx(g);
}

static void intx_unmasked_by_eventfd(struct gen *g)
{
	intx_masked_until_unmasked(g, false);
}

static void intx_unmasked_by_ioctl(struct gen *g)
{
	intx_masked_until_unmasked(g, true);
}

/*
 * three_generations_keep_delivering: each handoff carries everything at
 * once - a vector raised in the blackout, one left in the old LAPIC (INTx:
 * every other generation instead of the blackout raise), a masked MSI-X
 * vector with its pending bit - and every vector delivers after it.
 */
static bool chain_carries(const struct gen *g, __u64 gen)
{
	return is_intx(g) ? gen % 2 : nr_vectors(g) >= 2;
}

static bool chain_raises(const struct gen *g, __u64 gen)
{
	return !is_intx(g) || !(gen % 2);
}

static bool chain_masks(const struct gen *g)
{
	return g->index == VFIO_PCI_MSIX_IRQ_INDEX && nr_vectors(g) >= 3;
}

static void chain_arrange(struct gen *g)
{
	if (chain_masks(g))
		mask_and_raise(g);
	if (chain_carries(g, g->generation))
		leave_pending_in_lapic(g);
}

static void chain_blackout(struct gen *g)
{
	if (chain_raises(g, g->generation))
		blackout_raise(g);
}

static void chain_after(struct gen *g)
{
	__u64 prev = g->generation - 1;

	if (chain_raises(g, prev)) {
		CPR_ASSERT_TRUE(arrived_at_dest(g, 0),
				"KVM did not inject the interrupt already pending on %s %s %u's eventfd when its irqfd was assigned in VM #%llu",
				irq_name(g), vec_word(g), entry_of(g, 0),
				(unsigned long long)g->generation);
		ack(g);
	}
	if (chain_carries(g, prev))
		CPR_ASSERT_TRUE(arrived_at_dest(g, pending_vector(g)),
				"%s %s %u pending in VM #%llu's LAPIC at the handoff was lost",
				irq_name(g), vec_word(g),
				entry_of(g, pending_vector(g)),
				(unsigned long long)prev);
	lapic_clear(g);
	if (is_intx(g))
		unmask_intx(g);
	if (chain_masks(g))
		masked_pending_on_unmask(g);
	every_vector_and_guest(g);
	if (!has_err_req(g))
		notifiers_wired(g);
	if (!has_dma_check(g))
		dma_follows(g);
}

/*
 * MSI-X sets that grow (dynamic MSI-X): a VMM enables a vector when its
 * guest unmasks it, before the handoff or after it.
 */
static const char *msix_can_grow(const struct gen *g)
{
	if (!cpr_vfio_msix_can_grow(g->d))
		snprintf(why_not, sizeof(why_not),
			 "%s: the kernel cannot add vectors to an enabled MSI-X set (VFIO_IRQ_INFO_NORESIZE set in VFIO_DEVICE_GET_IRQ_INFO)",
			 g->label);
	else if (g->vs->nr < 2)
		snprintf(why_not, sizeof(why_not),
			 "%s uses one MSI-X entry: there is none to add",
			 g->label);
	else
		return NULL;
	return why_not;
}

/*
 * Enable the set again without its last @n entries (into @held), for the
 * story to add them: an MSI-X set enabled with fewer entries than it will
 * use, as a VMM's is before its guest unmasked them all.
 */
static void hold_back(struct gen *g, unsigned int n, unsigned int *held)
{
	unsigned int keep[CPR_VECTORS_MAX], nr = g->vs->nr - n, i;

	set_entries(g->vs, keep);
	for (i = 0; i < n; i++)
		held[i] = keep[nr + i];
	CPR_ASSERT_OK(cpr_vfio_irq_disable(g->d, g->index),
		      "disabling MSI-X to enable it again with fewer entries failed");
	cpr_vectors_free(g->vs, true);
	g->vs = NULL;
	CPR_ASSERT_OK(cpr_vfio_enable_msix(g->d, keep, nr, &g->vs),
		      "enabling MSI-X again without the last %u of its %u entries failed",
		      n, nr + n);
	spread(g);
	CPR_ASSERT_OK(cpr_vectors_attach(g->vs, g->vm),
		      "routing the vectors into VM #0 again failed");
}

/*
 * Entries @e added to VM #n's enabled set, each given a message to its
 * vCPU (the library made one to APIC 0), raised into VM #n.
 */
static void add_entries(struct gen *g, const unsigned int *e, unsigned int n)
{
	unsigned int i;
	int pos;

	CPR_ASSERT_OK(cpr_vfio_msix_add(g->d, g->vs, e, n),
		      "adding MSI-X entr%s %u%s to the enabled set in VM #%llu failed",
		      n > 1 ? "ies" : "y", e[0], n > 1 ? " and more" : "",
		      (unsigned long long)g->generation);
	for (i = 0; i < n; i++) {
		pos = cpr_vectors_find(g->vs, e[i]);
		CPR_ASSERT_LE(0, pos,
			      "MSI-X entry %u is not in the set after it was added in VM #%llu",
			      e[i], (unsigned long long)g->generation);
		aim(g, pos);
		check_vector_delivers(g, pos);
	}
	lapic_clear(g);
}

/* vectors_added_before_handoff_are_claimed: the last two, one by one. */
static void add_before_handoff(struct gen *g)
{
	unsigned int held[2], n = g->vs->nr >= 3 ? 2 : 1, i;

	hold_back(g, n, held);
	for (i = 0; i < n; i++)
		add_entries(g, &held[i], 1);
}

/* successor_enables_a_new_vector: the last entry, left for the successor. */
static void leave_one_to_add(struct gen *g)
{
	char sec[CPR_NAME_MAX + 1];
	unsigned int e;

	hold_back(g, 1, &e);
	snprintf(sec, sizeof(sec), "%s%s", g->name, GROW_ENTRY);
	CPR_ASSERT_OK(cpr_state_set_u64(g->st, sec, e),
		      "recording the entry left to add in the state failed");
}

static void successor_adds(struct gen *g)
{
	unsigned int asked = cpr_helper_count(g->helper,
					      CPR_HELPER_REQ_EVENTFDS), e;
	const unsigned long long gen = g->generation;
	char sec[CPR_NAME_MAX + 1];
	struct cpr_vectors *saved;
	__u64 entry = 0;
	int pos, spos;

	snprintf(sec, sizeof(sec), "%s%s", g->name, GROW_ENTRY);
	CPR_ASSERT_OK(cpr_state_get_u64(g->st, sec, &entry),
		      "the predecessor did not say which MSI-X entry it left to add");
	e = entry;
	CPR_ASSERT_EQ(-ENOENT, cpr_vectors_find(g->vs, e),
		      "MSI-X entry %u, not in use before the handoff, is in the set claimed for VM #%llu",
		      e, gen);
	add_entries(g, &e, 1);
	CPR_ASSERT_EQ(asked + 1, cpr_helper_count(g->helper,
						  CPR_HELPER_REQ_EVENTFDS),
		      "MSI-X entry %u's eventfd did not go to the device through the helper, in one VFIO_DEVICE_SET_IRQS",
		      e);
	CPR_ASSERT_EQ(0, cpr_helper_count(g->helper, CPR_HELPER_REQ_REFUSED),
		      "the helper refused what the successor asked for when it added MSI-X entry %u",
		      e);
	check_lockdown(g);
	/* What a next generation would claim. */
	pos = cpr_vectors_find(g->vs, e);
	CPR_ASSERT_OK(cpr_vectors_claim(g->st, g->name, NULL, &saved),
		      "claiming the vectors back from the state after MSI-X entry %u was added failed",
		      e);
	spos = cpr_vectors_find(saved, e);
	CPR_ASSERT_TRUE(spos >= 0 && saved->v[spos].kvm_fd == g->vs->v[pos].kvm_fd,
			"the state after MSI-X entry %u was added in VM #%llu does not hold it with its eventfd: the next generation would lose it",
			e, gen);
	cpr_vectors_free(saved, false);
	check_every_vector(g);
}

static const struct story stories[] = {
	{
		.name = "inherited_eventfd_signalled_before_attach",
		.before_attach = signalled_before_attach,
	}, {
		.name = "blackout_interrupt_delivered_once",
		.blackout = blackout_only_raise,
		.after_attach = blackout_delivered_once,
	}, {
		.name = "lapic_pending_carried",
		.arrange = leave_pending_in_lapic,
		.after_attach = pending_carried,
	}, {
		.name = "masked_pending_delivered_on_unmask",
		.arrange = mask_and_raise,
		.after_attach = masked_pending_on_unmask,
	}, {
		.name = "every_vector_delivers_in_both_vms",
		.arrange = every_vector_and_guest,
		.after_attach = every_vector_and_guest,
	}, {
		.name = "retargeted_vector_arrives_at_its_new_vcpu",
		.applies = has_msi_message,
		.arrange = retarget,
		.after_attach = retargeted_arrives,
	}, {
		.name = "err_req_notifiers_still_wired",
		.applies = has_err_req,
		.after_attach = notifiers_wired,
	}, {
		.name = "dma_mapping_follows_the_new_vaddr",
		.applies = has_dma_check,
		.arrange = dma_round_trip,
		.after_attach = dma_follows,
	}, {
		.name = "kvm_vfio_moves_to_the_new_vm",
		.after_attach = kvm_vfio_gives_new_vm,
	}, {
		.name = "no_setup_ioctl_in_successor",
		.after_attach = no_setup_ioctl,
	}, {
		.name = "intx_unmasked_by_eventfd",
		.applies = intx_unmask_eventfd_taken,
		.before_attach = intx_unmasked_by_eventfd,
	}, {
		.name = "intx_unmasked_by_ioctl",
		.applies = intx_fires,
		.before_attach = intx_unmasked_by_ioctl,
	}, {
		.name = "vectors_added_before_handoff_are_claimed",
		.applies = msix_can_grow,
		.arrange = add_before_handoff,
		.after_attach = every_vector_and_guest,
	}, {
		.name = "successor_enables_a_new_vector",
		.applies = msix_can_grow,
		.arrange = leave_one_to_add,
		.after_attach = successor_adds,
	}, {
		.name = "three_generations_keep_delivering",
		.generations = 3,
		.arrange = chain_arrange,
		.blackout = chain_blackout,
		.after_attach = chain_after,
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

#define TELL(name) tell(_metadata, &self->g, story_find(#name))

/* ---- The fixtures and their tests ---- */

#define CPR_FIXTURE		vfio_cpr_msix
#define CPR_FIXTURE_IRQ		VFIO_PCI_MSIX_IRQ_INDEX
#include "vfio_cpr_fixture.h"
#undef CPR_FIXTURE
#undef CPR_FIXTURE_IRQ

#define CPR_FIXTURE		vfio_cpr_msi
#define CPR_FIXTURE_IRQ		VFIO_PCI_MSI_IRQ_INDEX
#include "vfio_cpr_fixture.h"
#undef CPR_FIXTURE
#undef CPR_FIXTURE_IRQ

#define CPR_FIXTURE		vfio_cpr_intx
#define CPR_FIXTURE_IRQ		VFIO_PCI_INTX_IRQ_INDEX
#include "vfio_cpr_fixture.h"
#undef CPR_FIXTURE
#undef CPR_FIXTURE_IRQ

TEST_F_TIMEOUT(vfio_cpr_msix, inherited_eventfd_signalled_before_attach, 60)
{
	TELL(inherited_eventfd_signalled_before_attach);
}

TEST_F_TIMEOUT(vfio_cpr_msix, blackout_interrupt_delivered_once, 60)
{
	TELL(blackout_interrupt_delivered_once);
}

TEST_F_TIMEOUT(vfio_cpr_msix, lapic_pending_carried, 60)
{
	TELL(lapic_pending_carried);
}

TEST_F_TIMEOUT(vfio_cpr_msix, masked_pending_delivered_on_unmask, 60)
{
	TELL(masked_pending_delivered_on_unmask);
}

TEST_F_TIMEOUT(vfio_cpr_msix, every_vector_delivers_in_both_vms, 60)
{
	TELL(every_vector_delivers_in_both_vms);
}

TEST_F_TIMEOUT(vfio_cpr_msix, retargeted_vector_arrives_at_its_new_vcpu, 60)
{
	TELL(retargeted_vector_arrives_at_its_new_vcpu);
}

TEST_F_TIMEOUT(vfio_cpr_msix, err_req_notifiers_still_wired, 60)
{
	TELL(err_req_notifiers_still_wired);
}

TEST_F_TIMEOUT(vfio_cpr_msix, dma_mapping_follows_the_new_vaddr, 60)
{
	TELL(dma_mapping_follows_the_new_vaddr);
}

TEST_F_TIMEOUT(vfio_cpr_msix, kvm_vfio_moves_to_the_new_vm, 60)
{
	TELL(kvm_vfio_moves_to_the_new_vm);
}

TEST_F_TIMEOUT(vfio_cpr_msix, no_setup_ioctl_in_successor, 60)
{
	TELL(no_setup_ioctl_in_successor);
}

TEST_F_TIMEOUT(vfio_cpr_msix, vectors_added_before_handoff_are_claimed, 60)
{
	TELL(vectors_added_before_handoff_are_claimed);
}

TEST_F_TIMEOUT(vfio_cpr_msix, successor_enables_a_new_vector, 60)
{
	TELL(successor_enables_a_new_vector);
}

TEST_F_TIMEOUT(vfio_cpr_msix, three_generations_keep_delivering, 180)
{
	TELL(three_generations_keep_delivering);
}

TEST_F_TIMEOUT(vfio_cpr_msi, inherited_eventfd_signalled_before_attach, 60)
{
	TELL(inherited_eventfd_signalled_before_attach);
}

TEST_F_TIMEOUT(vfio_cpr_msi, blackout_interrupt_delivered_once, 60)
{
	TELL(blackout_interrupt_delivered_once);
}

TEST_F_TIMEOUT(vfio_cpr_msi, lapic_pending_carried, 60)
{
	TELL(lapic_pending_carried);
}

TEST_F_TIMEOUT(vfio_cpr_msi, every_vector_delivers_in_both_vms, 60)
{
	TELL(every_vector_delivers_in_both_vms);
}

TEST_F_TIMEOUT(vfio_cpr_msi, retargeted_vector_arrives_at_its_new_vcpu, 60)
{
	TELL(retargeted_vector_arrives_at_its_new_vcpu);
}

TEST_F_TIMEOUT(vfio_cpr_msi, err_req_notifiers_still_wired, 60)
{
	TELL(err_req_notifiers_still_wired);
}

TEST_F_TIMEOUT(vfio_cpr_msi, dma_mapping_follows_the_new_vaddr, 60)
{
	TELL(dma_mapping_follows_the_new_vaddr);
}

TEST_F_TIMEOUT(vfio_cpr_msi, kvm_vfio_moves_to_the_new_vm, 60)
{
	TELL(kvm_vfio_moves_to_the_new_vm);
}

TEST_F_TIMEOUT(vfio_cpr_msi, no_setup_ioctl_in_successor, 60)
{
	TELL(no_setup_ioctl_in_successor);
}

TEST_F_TIMEOUT(vfio_cpr_msi, three_generations_keep_delivering, 180)
{
	TELL(three_generations_keep_delivering);
}

TEST_F_TIMEOUT(vfio_cpr_intx, inherited_eventfd_signalled_before_attach, 60)
{
	TELL(inherited_eventfd_signalled_before_attach);
}

TEST_F_TIMEOUT(vfio_cpr_intx, blackout_interrupt_delivered_once, 60)
{
	TELL(blackout_interrupt_delivered_once);
}

TEST_F_TIMEOUT(vfio_cpr_intx, lapic_pending_carried, 60)
{
	TELL(lapic_pending_carried);
}

TEST_F_TIMEOUT(vfio_cpr_intx, intx_unmasked_by_eventfd, 60)
{
	TELL(intx_unmasked_by_eventfd);
}

TEST_F_TIMEOUT(vfio_cpr_intx, intx_unmasked_by_ioctl, 60)
{
	TELL(intx_unmasked_by_ioctl);
}

TEST_F_TIMEOUT(vfio_cpr_intx, every_vector_delivers_in_both_vms, 60)
{
	TELL(every_vector_delivers_in_both_vms);
}

TEST_F_TIMEOUT(vfio_cpr_intx, retargeted_vector_arrives_at_its_new_vcpu, 60)
{
	TELL(retargeted_vector_arrives_at_its_new_vcpu);
}

TEST_F_TIMEOUT(vfio_cpr_intx, err_req_notifiers_still_wired, 60)
{
	TELL(err_req_notifiers_still_wired);
}

TEST_F_TIMEOUT(vfio_cpr_intx, dma_mapping_follows_the_new_vaddr, 60)
{
	TELL(dma_mapping_follows_the_new_vaddr);
}

TEST_F_TIMEOUT(vfio_cpr_intx, kvm_vfio_moves_to_the_new_vm, 60)
{
	TELL(kvm_vfio_moves_to_the_new_vm);
}

TEST_F_TIMEOUT(vfio_cpr_intx, no_setup_ioctl_in_successor, 60)
{
	TELL(no_setup_ioctl_in_successor);
}

TEST_F_TIMEOUT(vfio_cpr_intx, three_generations_keep_delivering, 180)
{
	TELL(three_generations_keep_delivering);
}

/*
 * Several devices given: run this program once per device, each run a
 * subtest of this one, its KTAP indented; @argv: the harness's options.
 * Returns the exit status.
 */
static int run_each_device(char *const *devs, unsigned int n, char **argv)
{
	unsigned int i, failed = 0, skipped = 0;
	char self[PATH_MAX], label[128], line[4096];
	bool versions = !getenv("KSFT_TAP_LEVEL");

	CPR_ASSERT_OK(cpr_test_self_path(self, sizeof(self)),
		      "finding this program's path failed");
	ksft_print_header();
	printf("1..%u\n", n);
	for (i = 0; i < n; i++) {
		int pfd[2], status;
		pid_t pid;
		FILE *in;

		device_label(devs[i], label, sizeof(label));
		if (versions)
			printf("    TAP version 13\n");
		printf("    # Subtest: %s\n", label);
		fflush(stdout);
		CPR_ASSERT_SYS(pipe2(pfd, O_CLOEXEC), "pipe2 failed");
		pid = fork();
		CPR_ASSERT_SYS(pid, "forking the run of %s failed", label);
		if (!pid) {
			dup2(pfd[1], STDOUT_FILENO);
			dup2(pfd[1], STDERR_FILENO);
			setenv("VFIO_CPR_DEVICES", devs[i], 1);
			/* The version line is printed above, for the subtest. */
			setenv("KSFT_TAP_LEVEL", "1", 1);
			execv(self, argv);
			_exit(127);
		}
		close(pfd[1]);
		in = fdopen(pfd[0], "r");
		CPR_ASSERT_TRUE(in, "reading the run of %s failed", label);
		while (fgets(line, sizeof(line), in))
			printf("    %s", line);
		fclose(in);
		CPR_ASSERT_EQ(pid, waitpid(pid, &status, 0),
			      "waiting for the run of %s failed", label);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 4) {
			skipped++;
			printf("ok %u %s # SKIP every test skipped\n", i + 1,
			       label);
		} else if (WIFEXITED(status) && !WEXITSTATUS(status)) {
			printf("ok %u %s\n", i + 1, label);
		} else {
			failed++;
			printf("not ok %u %s\n", i + 1, label);
		}
		fflush(stdout);
	}
	printf("# Totals: pass:%u fail:%u skip:%u\n", n - failed - skipped,
	       failed, skipped);
	return failed ? 1 : skipped == n ? 4 : 0;
}

int main(int argc, char **argv)
{
	char *env = getenv("VFIO_CPR_DEVICES");
	char *devs[16], *hargv[32], *save = NULL, *tok, *list;
	unsigned int n = 0, hargc = 0;
	int i;

	cpr_test_successor_enter(argc, argv);
	cpr_test_raise_nofile();
	probe_mdev = getenv("VFIO_CPR_PROBE_MDEV");
	if (probe_mdev && !probe_mdev[0])
		probe_mdev = NULL;
	if (argc >= 4 && !strcmp(argv[1], CPR_TEST_SUCCESSOR) &&
	    !strcmp(argv[2], "vfio"))
		return successor_exec(argv[3]);
	if (argc >= 5 && !strcmp(argv[1], CPR_TEST_SUCCESSOR) &&
	    !strcmp(argv[2], "vfio-xfer"))
		return successor_xfer(argv[3], argv[4]);

	list = strdup(env ? env : "");
	/* The harness gets its options (-r, -t, ...), not the device. */
	hargv[hargc++] = argv[0];
	for (i = 1; i < argc && hargc < ARRAY_SIZE(hargv) - 2; i++) {
		if (argv[i][0] == '-') {
			hargv[hargc++] = argv[i];
			if (argv[i][1] && !argv[i][2] &&
			    strchr(HARNESS_OPTARG, argv[i][1]) && i + 1 < argc)
				hargv[hargc++] = argv[++i];
		} else if (!list[0]) {
			free(list);
			list = strdup(argv[i]);
		}
	}
	hargv[hargc] = NULL;
	for (tok = strtok_r(list, ", ", &save); tok && n < ARRAY_SIZE(devs);
	     tok = strtok_r(NULL, ", ", &save))
		devs[n++] = tok;
	if (!n)
		cpr_test_skip_all("%s",
				  "no device given: set VFIO_CPR_DEVICES=BDF or UUID, or pass one as the argument");
	if (access("/dev/kvm", R_OK | W_OK))
		cpr_test_skip_all("/dev/kvm not usable (%s): VFIO CPR tests need KVM",
				  strerror(errno));
	if (n > 1)
		return run_each_device(devs, n, hargv);
	snprintf(device_name, sizeof(device_name), "%s", devs[0]);
	return test_harness_run(hargc, hargv);
}
