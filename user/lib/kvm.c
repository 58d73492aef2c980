// SPDX-License-Identifier: GPL-2.0-only
/*
 * The KVM side of the vfio_cpr library: a small VM with an in-kernel
 * irqchip, its GSI allocator, a staged GSI routing table committed in one
 * KVM_SET_GSI_ROUTING, irqfds, MSI injection, LAPIC IRR/ISR access and the
 * KVM-VFIO pseudo device.  The real-mode guest itself lives in guest.c.
 *
 * Only long-standing KVM uapi is used (it must work on Debian's 6.1 kernel,
 * also under nested SVM).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <linux/types.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "vfio_cpr/kvm.h"
#include "vfio_cpr/log.h"

#include "internal.h"

#define KVM_DEV_PATH		"/dev/kvm"

/* KVM's default routing (x86): GSI 0-23 -> IOAPIC, GSI 0-15 -> PIC too. */
#define NR_IOAPIC_PINS		24
#define NR_PIC_PINS		16
#define NR_PIN_ROUTES		(NR_IOAPIC_PINS + NR_PIC_PINS)
#define ROUTES_MIN_CAP		64

/* Local APIC registers, as offsets in struct kvm_lapic_state. */
#define APIC_TPR		0x80
#define APIC_SVR		0xf0
#define APIC_ISR		0x100
#define APIC_IRR		0x200
#define APIC_LVT0		0x350
#define APIC_SVR_ENABLE		0x100u
#define APIC_SPURIOUS_VECTOR	0xffu
#define APIC_LVT_MASKED		0x10000u

static __u32 apic_reg(const struct kvm_lapic_state *s, unsigned int off)
{
	__u32 v;

	memcpy(&v, &s->regs[off], sizeof(v));
	return v;
}

static void apic_reg_set(struct kvm_lapic_state *s, unsigned int off,
			 __u32 v)
{
	memcpy(&s->regs[off], &v, sizeof(v));
}

static int check_vcpu(struct cpr_vm *vm, unsigned int vcpu, const char *what)
{
	if (vcpu >= vm->nr_vcpus)
		return cpr_err(-EINVAL, "%s: vcpu %u of %u on vm fd %d", what,
			       vcpu, vm->nr_vcpus, vm->vm_fd);
	return 0;
}

static int lapic_get(struct cpr_vm *vm, unsigned int vcpu,
		     struct kvm_lapic_state *s)
{
	memset(s, 0, sizeof(*s));
	if (ioctl(vm->vcpu_fd[vcpu], KVM_GET_LAPIC, s) < 0)
		return cpr_err(-errno, "KVM_GET_LAPIC vcpu %u (fd %d)", vcpu,
			       vm->vcpu_fd[vcpu]);
	return 0;
}

static int lapic_set(struct cpr_vm *vm, unsigned int vcpu,
		     struct kvm_lapic_state *s)
{
	if (ioctl(vm->vcpu_fd[vcpu], KVM_SET_LAPIC, s) < 0)
		return cpr_err(-errno, "KVM_SET_LAPIC vcpu %u (fd %d)", vcpu,
			       vm->vcpu_fd[vcpu]);
	return 0;
}

void cpr_vm_destroy(struct cpr_vm *vm)
{
	struct cpr_vm_priv *p;
	unsigned int i;

	if (!vm)
		return;
	p = cpr_vm_priv(vm);
	/* Before the fds it injects through. */
	if (p->relay)
		p->relay->end(vm, false);
	if (vm->vfio_dev_fd >= 0)
		close(vm->vfio_dev_fd);
	for (i = 0; i < CPR_VM_MAX_VCPUS; i++) {
		if (vm->run[i])
			munmap(vm->run[i], vm->run_size);
		if (vm->vcpu_fd[i] >= 0)
			close(vm->vcpu_fd[i]);
	}
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->mem)
		munmap(vm->mem, vm->mem_size);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	free(vm->routing);
	free(p);
}

static int kvm_open(struct cpr_vm *vm)
{
	int ret;

	vm->kvm_fd = open(KVM_DEV_PATH, O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		ret = errno;
		if (ret == ENOENT || ret == ENXIO || ret == ENODEV)
			return cpr_err(-ENODEV,
				       "open %s: no KVM on this machine",
				       KVM_DEV_PATH);
		return cpr_err(-ret, "open %s O_RDWR", KVM_DEV_PATH);
	}
	ret = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (ret < 0)
		return cpr_err(-errno, "KVM_GET_API_VERSION on %s fd %d",
			       KVM_DEV_PATH, vm->kvm_fd);
	if (ret != KVM_API_VERSION)
		return cpr_err(-EINVAL,
			       "KVM_GET_API_VERSION on %s fd %d: %d, need %d",
			       KVM_DEV_PATH, vm->kvm_fd, ret, KVM_API_VERSION);
	return 0;
}

/* KVM_CHECK_EXTENSION: the capability's value, or an error if it is 0. */
static int kvm_need_cap(struct cpr_vm *vm, unsigned int cap, const char *name)
{
	int ret = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, cap);

	if (ret < 0)
		return cpr_err(-errno,
			       "KVM_CHECK_EXTENSION %s (%u) on %s fd %d",
			       name, cap, KVM_DEV_PATH, vm->kvm_fd);
	if (!ret)
		return cpr_err(-EOPNOTSUPP,
			       "KVM_CHECK_EXTENSION %s (%u) on %s fd %d: not supported",
			       name, cap, KVM_DEV_PATH, vm->kvm_fd);
	return ret;
}

static int kvm_caps(struct cpr_vm *vm)
{
	struct cpr_vm_priv *p = cpr_vm_priv(vm);
	int ret;

	ret = kvm_need_cap(vm, KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP");
	if (ret > 0)
		ret = kvm_need_cap(vm, KVM_CAP_IRQFD, "KVM_CAP_IRQFD");
	if (ret > 0)
		ret = kvm_need_cap(vm, KVM_CAP_IMMEDIATE_EXIT,
				   "KVM_CAP_IMMEDIATE_EXIT");
	if (ret > 0)
		ret = kvm_need_cap(vm, KVM_CAP_IRQ_ROUTING,
				   "KVM_CAP_IRQ_ROUTING");
	if (ret < 0)
		return ret;
	/* KVM_CAP_IRQ_ROUTING answers with the size of the routing table. */
	p->max_routes = ret;
	if (p->max_routes <= NR_PIN_ROUTES)
		return cpr_err(-EOPNOTSUPP,
			       "KVM_CAP_IRQ_ROUTING on %s fd %d: room for %u routes only",
			       KVM_DEV_PATH, vm->kvm_fd, p->max_routes);
	return 0;
}

static int vm_make(struct cpr_vm *vm)
{
	do {
		vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	} while (vm->vm_fd < 0 && errno == EINTR);
	if (vm->vm_fd < 0)
		return cpr_err(-errno, "KVM_CREATE_VM type 0 on %s fd %d",
			       KVM_DEV_PATH, vm->kvm_fd);

	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return cpr_err(-errno, "KVM_CREATE_IRQCHIP on vm fd %d",
			       vm->vm_fd);
	return 0;
}

static size_t routing_size(unsigned int nr)
{
	return sizeof(struct kvm_irq_routing) +
	       (size_t)nr * sizeof(struct kvm_irq_routing_entry);
}

/* Make room for @nr entries, doubling the capacity as needed. */
static int routing_reserve(struct cpr_vm *vm, unsigned int nr)
{
	struct kvm_irq_routing *r;
	unsigned int cap = vm->routes_cap ? vm->routes_cap : ROUTES_MIN_CAP;

	if (vm->routing && nr <= vm->routes_cap)
		return 0;
	while (cap < nr)
		cap *= 2;
	r = realloc(vm->routing, routing_size(cap));
	if (!r)
		return cpr_err(-ENOMEM,
			       "growing the GSI routing table of vm fd %d to %u entries",
			       vm->vm_fd, cap);
	if (!vm->routing)
		memset(r, 0, sizeof(*r));
	vm->routing = r;
	vm->routes_cap = cap;
	return 0;
}

static void route_pin(struct kvm_irq_routing_entry *e, unsigned int gsi,
		      unsigned int chip, unsigned int pin)
{
	memset(e, 0, sizeof(*e));
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_IRQCHIP;
	e->u.irqchip.irqchip = chip;
	e->u.irqchip.pin = pin;
}

/* The staged table starts as KVM's default one, which it must keep. */
static int routing_init(struct cpr_vm *vm)
{
	struct kvm_irq_routing_entry *e;
	unsigned int gsi;
	int ret;

	ret = routing_reserve(vm, NR_PIN_ROUTES);
	if (ret)
		return ret;
	e = vm->routing->entries;
	for (gsi = 0; gsi < NR_IOAPIC_PINS; gsi++)
		route_pin(e++, gsi, KVM_IRQCHIP_IOAPIC, gsi);
	for (gsi = 0; gsi < NR_PIC_PINS; gsi++)
		route_pin(e++, gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER :
				    KVM_IRQCHIP_PIC_SLAVE, gsi % 8);
	vm->routing->nr = NR_PIN_ROUTES;
	vm->routing->flags = 0;
	vm->routes_dirty = false;
	return 0;
}

/* Software-enable the LAPIC, accept every priority, keep the PIC out. */
static int lapic_enable(struct cpr_vm *vm, unsigned int vcpu)
{
	struct kvm_lapic_state s;
	int ret;

	ret = lapic_get(vm, vcpu, &s);
	if (ret)
		return ret;
	apic_reg_set(&s, APIC_SVR, (apic_reg(&s, APIC_SVR) & ~0xffu) |
		     APIC_SVR_ENABLE | APIC_SPURIOUS_VECTOR);
	apic_reg_set(&s, APIC_TPR, 0);
	apic_reg_set(&s, APIC_LVT0, apic_reg(&s, APIC_LVT0) | APIC_LVT_MASKED);
	return lapic_set(vm, vcpu, &s);
}

static int vcpu_make(struct cpr_vm *vm, unsigned int i)
{
	void *run;

	vm->vcpu_fd[i] = ioctl(vm->vm_fd, KVM_CREATE_VCPU, i);
	if (vm->vcpu_fd[i] < 0)
		return cpr_err(-errno, "KVM_CREATE_VCPU %u on vm fd %d", i,
			       vm->vm_fd);
	run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   vm->vcpu_fd[i], 0);
	if (run == MAP_FAILED)
		return cpr_err(-errno,
			       "mmap kvm_run (%zu bytes) of vcpu %u (fd %d)",
			       vm->run_size, i, vm->vcpu_fd[i]);
	vm->run[i] = run;

	return lapic_enable(vm, i);
}

int cpr_vm_create(struct cpr_vm **out, unsigned int nr_vcpus)
{
	struct cpr_vm_priv *p;
	struct cpr_vm *vm;
	unsigned int i;
	int ret;

	*out = NULL;
	if (!nr_vcpus || nr_vcpus > CPR_VM_MAX_VCPUS)
		return cpr_err(-EINVAL, "creating a VM with %u vCPUs (1 to %d)",
			       nr_vcpus, CPR_VM_MAX_VCPUS);
	p = calloc(1, sizeof(*p));
	if (!p)
		return cpr_err(-ENOMEM, "allocating a VM");
	vm = &p->vm;
	vm->kvm_fd = -1;
	vm->vm_fd = -1;
	vm->vfio_dev_fd = -1;
	for (i = 0; i < CPR_VM_MAX_VCPUS; i++)
		vm->vcpu_fd[i] = -1;

	ret = kvm_open(vm);
	if (!ret)
		ret = kvm_caps(vm);
	if (!ret)
		ret = vm_make(vm);
	if (!ret)
		ret = routing_init(vm);
	if (ret)
		goto fail;

	ret = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (ret <= 0) {
		ret = cpr_err(ret < 0 ? -errno : -EIO,
			      "KVM_GET_VCPU_MMAP_SIZE on %s fd %d: %d",
			      KVM_DEV_PATH, vm->kvm_fd, ret);
		goto fail;
	}
	vm->run_size = ret;

	for (i = 0; i < nr_vcpus; i++) {
		/* Count it first, so that a failure can be told about it. */
		vm->nr_vcpus = i + 1;
		ret = vcpu_make(vm, i);
		if (ret)
			goto fail;
	}
	*out = vm;
	return 0;

fail:
	cpr_vm_destroy(vm);
	return ret;
}

int cpr_vm_kvm_fd(const struct cpr_vm *vm)
{
	return vm->kvm_fd;
}

int cpr_vm_fd(const struct cpr_vm *vm)
{
	return vm->vm_fd;
}

int cpr_vm_vcpu_fd(const struct cpr_vm *vm, unsigned int vcpu)
{
	return vcpu < vm->nr_vcpus ? vm->vcpu_fd[vcpu] : -1;
}

unsigned int cpr_vm_nr_vcpus(const struct cpr_vm *vm)
{
	return vm->nr_vcpus;
}

unsigned int cpr_vm_routing_commits(const struct cpr_vm *vm)
{
	return vm->routing_commits;
}

unsigned int cpr_vm_nr_irqfds(const struct cpr_vm *vm)
{
	return cpr_vm_priv(vm)->nr_irqfds;
}

/* What needs the VM fd fails clearly once cpr_vm_quiesce() closed it. */
int cpr_vm_live(struct cpr_vm *vm, const char *what)
{
	if (cpr_vm_priv(vm)->quiesced)
		return cpr_err(-ESHUTDOWN,
			       "%s: the VM was quiesced for a handoff (its fd is closed)",
			       what);
	return 0;
}

int cpr_vm_quiesce(struct cpr_vm *vm)
{
	struct cpr_vm_priv *p = cpr_vm_priv(vm);
	int fd = vm->vm_fd;

	if (p->quiesced)
		return 0;
	if (fd < 0)
		return cpr_err(-EBADF, "quiescing a VM without a VM fd");
	/*
	 * Linux drops the fd whatever close() returns, and the release of
	 * a KVM VM file cannot fail: an error here is only reported.
	 */
	vm->vm_fd = -1;
	p->quiesced = true;
	p->nr_irqfds = 0;
	if (close(fd))
		return cpr_err(-errno, "closing vm fd %d to quiesce the VM", fd);
	return 0;
}

int cpr_vm_gsi_alloc(struct cpr_vm *vm)
{
	unsigned int w;

	for (w = CPR_GSI_FIRST / 64; w < CPR_GSI_MAX / 64; w++) {
		__u64 free_bits = ~vm->gsi_used[w];
		unsigned int gsi;

		if (w == CPR_GSI_FIRST / 64)
			free_bits &= ~0ull << (CPR_GSI_FIRST % 64);
		if (!free_bits)
			continue;
		gsi = w * 64 + __builtin_ctzll(free_bits);
		vm->gsi_used[w] |= 1ull << (gsi % 64);
		return gsi;
	}
	return cpr_err(-ENOSPC,
		       "allocating a GSI in vm fd %d: all %d to %d used",
		       vm->vm_fd, CPR_GSI_FIRST, CPR_GSI_MAX - 1);
}

static bool gsi_valid(unsigned int gsi)
{
	return gsi >= CPR_GSI_FIRST && gsi < CPR_GSI_MAX;
}

int cpr_vm_gsi_claim(struct cpr_vm *vm, unsigned int gsi)
{
	__u64 bit = 1ull << (gsi % 64);

	if (!gsi_valid(gsi))
		return cpr_err(-EINVAL,
			       "claiming GSI %u in vm fd %d: not in %d to %d",
			       gsi, vm->vm_fd, CPR_GSI_FIRST, CPR_GSI_MAX - 1);
	if (vm->gsi_used[gsi / 64] & bit)
		return cpr_err(-EBUSY,
			       "claiming GSI %u in vm fd %d: already used",
			       gsi, vm->vm_fd);
	vm->gsi_used[gsi / 64] |= bit;
	return 0;
}

void cpr_vm_gsi_free(struct cpr_vm *vm, unsigned int gsi)
{
	if (gsi_valid(gsi))
		vm->gsi_used[gsi / 64] &= ~(1ull << (gsi % 64));
}

int cpr_vm_route_msi(struct cpr_vm *vm, unsigned int gsi,
		     const struct cpr_msi_msg *msg)
{
	struct cpr_vm_priv *p = cpr_vm_priv(vm);
	struct kvm_irq_routing_entry *e;
	unsigned int slot;
	int ret;

	if (!gsi_valid(gsi))
		return cpr_err(-EINVAL,
			       "MSI route for GSI %u in vm fd %d: not in %d to %d",
			       gsi, vm->vm_fd, CPR_GSI_FIRST, CPR_GSI_MAX - 1);
	slot = p->route_slot[gsi];
	if (!slot) {
		if (vm->routing->nr >= p->max_routes)
			return cpr_err(-ENOSPC,
				       "MSI route for GSI %u in vm fd %d: KVM's table is full (%u entries)",
				       gsi, vm->vm_fd, p->max_routes);
		ret = routing_reserve(vm, vm->routing->nr + 1);
		if (ret)
			return ret;
		slot = ++vm->routing->nr;
		p->route_slot[gsi] = slot;
	}
	e = &vm->routing->entries[slot - 1];
	memset(e, 0, sizeof(*e));
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_MSI;
	e->u.msi.address_lo = msg->addr_lo;
	e->u.msi.address_hi = msg->addr_hi;
	e->u.msi.data = msg->data;
	vm->routes_dirty = true;
	return 0;
}

int cpr_vm_route_del(struct cpr_vm *vm, unsigned int gsi)
{
	struct cpr_vm_priv *p = cpr_vm_priv(vm);
	struct kvm_irq_routing *r = vm->routing;
	unsigned int slot, last;

	if (!gsi_valid(gsi))
		return cpr_err(-EINVAL,
			       "dropping the route of GSI %u in vm fd %d: not in %d to %d",
			       gsi, vm->vm_fd, CPR_GSI_FIRST, CPR_GSI_MAX - 1);
	slot = p->route_slot[gsi];
	if (!slot)
		return 0;
	/* Move the last entry (an MSI one, pins come first) into the hole. */
	last = r->nr;
	if (slot != last) {
		r->entries[slot - 1] = r->entries[last - 1];
		p->route_slot[r->entries[slot - 1].gsi] = slot;
	}
	r->nr--;
	p->route_slot[gsi] = 0;
	vm->routes_dirty = true;
	return 0;
}

unsigned int cpr_vm_nr_routes(const struct cpr_vm *vm)
{
	return vm->routing ? vm->routing->nr - NR_PIN_ROUTES : 0;
}

int cpr_vm_routes_commit(struct cpr_vm *vm)
{
	int ret;

	if (!vm->routes_dirty)
		return 0;
	ret = cpr_vm_live(vm, "KVM_SET_GSI_ROUTING");
	if (ret)
		return ret;
	if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, vm->routing) < 0)
		return cpr_err(-errno,
			       "KVM_SET_GSI_ROUTING %u entries (%u MSI) on vm fd %d",
			       vm->routing->nr, cpr_vm_nr_routes(vm),
			       vm->vm_fd);
	vm->routes_dirty = false;
	vm->routing_commits++;
	return 0;
}

int cpr_vm_irqfd_assign(struct cpr_vm *vm, int fd, unsigned int gsi,
			int resample_fd)
{
	struct kvm_irqfd irqfd;
	int ret;

	ret = cpr_vm_live(vm, "KVM_IRQFD assign");
	if (ret)
		return ret;
	memset(&irqfd, 0, sizeof(irqfd));
	irqfd.fd = fd;
	irqfd.gsi = gsi;
	if (resample_fd >= 0) {
		irqfd.flags = KVM_IRQFD_FLAG_RESAMPLE;
		irqfd.resamplefd = resample_fd;
	}
	if (ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0) {
		if (resample_fd >= 0)
			return cpr_err(-errno,
				       "KVM_IRQFD assign fd %d gsi %u resample fd %d on vm fd %d",
				       fd, gsi, resample_fd, vm->vm_fd);
		return cpr_err(-errno,
			       "KVM_IRQFD assign fd %d gsi %u on vm fd %d",
			       fd, gsi, vm->vm_fd);
	}
	cpr_vm_priv(vm)->nr_irqfds++;
	return 0;
}

int cpr_vm_irqfd_deassign(struct cpr_vm *vm, int fd, unsigned int gsi)
{
	struct kvm_irqfd irqfd;
	int ret;

	ret = cpr_vm_live(vm, "KVM_IRQFD deassign");
	if (ret)
		return ret;
	memset(&irqfd, 0, sizeof(irqfd));
	irqfd.fd = fd;
	irqfd.gsi = gsi;
	irqfd.flags = KVM_IRQFD_FLAG_DEASSIGN;
	if (ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0)
		return cpr_err(-errno,
			       "KVM_IRQFD deassign fd %d gsi %u on vm fd %d",
			       fd, gsi, vm->vm_fd);
	/* KVM answers 0 for an irqfd it did not have, too. */
	if (cpr_vm_priv(vm)->nr_irqfds)
		cpr_vm_priv(vm)->nr_irqfds--;
	return 0;
}

int cpr_vm_ioapic_pin(struct cpr_vm *vm, unsigned int pin,
		      unsigned int vector, bool level)
{
	struct kvm_irqchip chip = { .chip_id = KVM_IRQCHIP_IOAPIC };
	__u64 entry;

	if (pin >= KVM_IOAPIC_NUM_PINS || vector < CPR_VECTOR_FIRST ||
	    vector > 0xff)
		return cpr_err(-EINVAL, "IOAPIC pin %u vector 0x%x out of range",
			       pin, vector);
	if (cpr_vm_live(vm, "programming an IOAPIC pin"))
		return -ESHUTDOWN;
	if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip))
		return cpr_err(-errno, "KVM_GET_IRQCHIP IOAPIC on vm fd %d",
			       vm->vm_fd);
	/* Vector, fixed delivery, physical destination APIC 0, unmasked. */
	entry = vector | (level ? 1ull << 15 : 0);
	chip.chip.ioapic.redirtbl[pin].bits = entry;
	if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chip))
		return cpr_err(-errno, "KVM_SET_IRQCHIP IOAPIC pin %u vector 0x%x on vm fd %d",
			       pin, vector, vm->vm_fd);
	return 0;
}

int cpr_vm_signal_msi(struct cpr_vm *vm, const struct cpr_msi_msg *msg)
{
	struct kvm_msi msi;
	int ret;

	ret = cpr_vm_live(vm, "KVM_SIGNAL_MSI");
	if (ret)
		return ret;
	memset(&msi, 0, sizeof(msi));
	msi.address_lo = msg->addr_lo;
	msi.address_hi = msg->addr_hi;
	msi.data = msg->data;
	ret = ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi);
	/*
	 * 0: no LAPIC took it (no such APIC id, or software-disabled); some
	 * kernels pass that up as -1 instead, which reads as EPERM.
	 */
	if (ret < 0)
		return cpr_err(-errno,
			       "KVM_SIGNAL_MSI addr 0x%08x:%08x data 0x%x on vm fd %d%s",
			       msg->addr_hi, msg->addr_lo, msg->data,
			       vm->vm_fd, errno == EPERM ?
			       " (no LAPIC with that destination)" : "");
	if (!ret)
		return cpr_err(-EIO,
			       "KVM_SIGNAL_MSI addr 0x%08x:%08x data 0x%x on vm fd %d: no LAPIC took it (absent APIC id or LAPIC disabled)",
			       msg->addr_hi, msg->addr_lo, msg->data,
			       vm->vm_fd);
	return 0;
}

int cpr_vm_lapic_irr(struct cpr_vm *vm, unsigned int vcpu, __u64 irr[4])
{
	struct kvm_lapic_state s;
	unsigned int i;
	int ret;

	ret = check_vcpu(vm, vcpu, "reading the LAPIC IRR");
	if (!ret)
		ret = lapic_get(vm, vcpu, &s);
	if (ret)
		return ret;
	/* Eight 32-bit registers, 16 bytes apart, vector v in bit v % 32. */
	for (i = 0; i < 4; i++)
		irr[i] = apic_reg(&s, APIC_IRR + 0x20 * i) |
			 (__u64)apic_reg(&s, APIC_IRR + 0x20 * i + 0x10) << 32;
	return 0;
}

int cpr_vm_lapic_irr_test(struct cpr_vm *vm, unsigned int vcpu,
			  unsigned int vector)
{
	__u64 irr[4];
	int ret;

	if (vector > 255)
		return cpr_err(-EINVAL,
			       "testing IRR vector %u of vcpu %u: not a vector",
			       vector, vcpu);
	ret = cpr_vm_lapic_irr(vm, vcpu, irr);
	if (ret)
		return ret;
	return (irr[vector / 64] >> (vector % 64)) & 1;
}

int cpr_vm_lapic_clear(struct cpr_vm *vm, unsigned int vcpu)
{
	struct kvm_lapic_state s;
	unsigned int i;
	int ret;

	ret = check_vcpu(vm, vcpu, "clearing the LAPIC");
	if (!ret)
		ret = lapic_get(vm, vcpu, &s);
	if (ret)
		return ret;
	for (i = 0; i < 8; i++) {
		apic_reg_set(&s, APIC_IRR + 0x10 * i, 0);
		apic_reg_set(&s, APIC_ISR + 0x10 * i, 0);
	}
	return lapic_set(vm, vcpu, &s);
}

int cpr_vm_vfio_dev(struct cpr_vm *vm)
{
	struct kvm_create_device dev;

	if (vm->vfio_dev_fd >= 0)
		return vm->vfio_dev_fd;
	if (cpr_vm_live(vm, "creating the KVM-VFIO device"))
		return -ESHUTDOWN;
	memset(&dev, 0, sizeof(dev));
	dev.type = KVM_DEV_TYPE_VFIO;
	if (ioctl(vm->vm_fd, KVM_CREATE_DEVICE, &dev) < 0)
		return cpr_err(-errno,
			       "KVM_CREATE_DEVICE type KVM_DEV_TYPE_VFIO (%d) on vm fd %d (host KVM without VFIO support?)",
			       KVM_DEV_TYPE_VFIO, vm->vm_fd);
	vm->vfio_dev_fd = dev.fd;
	return vm->vfio_dev_fd;
}

static int vfio_group_attr(struct cpr_vm *vm, int group_fd, unsigned int op,
			   const char *name)
{
	struct kvm_device_attr attr;
	int dev_fd;

	dev_fd = cpr_vm_vfio_dev(vm);
	if (dev_fd < 0)
		return dev_fd;
	memset(&attr, 0, sizeof(attr));
	attr.group = KVM_DEV_VFIO_GROUP;
	attr.attr = op;
	attr.addr = (uintptr_t)&group_fd;
	if (ioctl(dev_fd, KVM_SET_DEVICE_ATTR, &attr) < 0)
		return cpr_err(-errno,
			       "KVM_SET_DEVICE_ATTR KVM_DEV_VFIO_GROUP/FILE %s VFIO fd %d on KVM-VFIO device fd %d (vm fd %d)",
			       name, group_fd, dev_fd, vm->vm_fd);
	return 0;
}

int cpr_vm_vfio_add_group(struct cpr_vm *vm, int group_fd)
{
	return vfio_group_attr(vm, group_fd, KVM_DEV_VFIO_GROUP_ADD,
			       "KVM_DEV_VFIO_GROUP_ADD");
}

int cpr_vm_vfio_del_group(struct cpr_vm *vm, int group_fd)
{
	return vfio_group_attr(vm, group_fd, KVM_DEV_VFIO_GROUP_DEL,
			       "KVM_DEV_VFIO_GROUP_DEL");
}
