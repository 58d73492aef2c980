/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A vfio-pci device (by PCI BDF) or mediated device (by UUID), preserved
 * across a handoff, through one of two interfaces:
 *
 *  - group: the legacy container/group interface with the type1 IOMMU.
 *    The container, group and device fds are saved in the CPR state as
 *    "<dev>_container", "<dev>_group" and "<dev>_device" (index 0).
 *  - cdev (Linux 6.6+ uapi and kernel): /dev/vfio/devices/vfioN bound to an
 *    iommufd with one IOAS; saved as "<dev>_device" and "<dev>_iommufd",
 *    with a "<dev>_iommufd" section (IOAS and device ids).
 *
 * A successor that finds the fds reuses them as they are: no re-open, no
 * VFIO_GROUP_SET_CONTAINER / VFIO_SET_IOMMU (group), no
 * VFIO_DEVICE_BIND_IOMMUFD / IOMMU_IOAS_ALLOC / ATTACH (cdev), no reset,
 * and no VFIO_DEVICE_SET_IRQS for any index (the kernel keeps signalling
 * the eventfds it was given).  Read-only queries (device, region and IRQ
 * info) are allowed on both sides.
 */
#ifndef VFIO_CPR_VFIO_H
#define VFIO_CPR_VFIO_H

#include <linux/types.h>
#include <linux/vfio.h>
#include <stdbool.h>
#include <stddef.h>

#include "state.h"
#include "vectors.h"

#define CPR_VFIO_NAME_MAX	64

/* Suffixes of the fd names in the CPR state: "<dev>_<suffix>", index 0. */
#define CPR_VFIO_FD_CONTAINER	"container"
#define CPR_VFIO_FD_GROUP	"group"
#define CPR_VFIO_FD_DEVICE	"device"
#define CPR_VFIO_FD_IOMMUFD	"iommufd"	/* also the section's name */
#define CPR_VFIO_NOTIFY_INTX	"intx_interrupt"
#define CPR_VFIO_NOTIFY_UNMASK	"intx_unmask"
#define CPR_VFIO_NOTIFY_ERR	"err"
#define CPR_VFIO_NOTIFY_REQ	"req"

/* The kernel's mtty sample mdev, which needs care (see cpr_vfio_is_mtty). */
#define CPR_VFIO_MTTY_VENDOR	0x4348
#define CPR_VFIO_MTTY_DEVICE	0x3253

struct cpr_vfio_dev;
struct cpr_helper;

enum cpr_vfio_iface {
	CPR_VFIO_IFACE_GROUP,	/* container + group, type1 IOMMU */
	CPR_VFIO_IFACE_CDEV,	/* device cdev bound to an iommufd */
};

/* Small per-device drivers: how to make a real device raise an IRQ. */
struct cpr_vfio_driver {
	const char *name;
	__u16 vendor, device;
	/*
	 * Make the device able to raise interrupts of @irq_index
	 * (VFIO_PCI_{INTX,MSI,MSIX}_IRQ_INDEX): program its interrupt
	 * sources.  Called by the predecessor only, after the IRQ was
	 * enabled: the successor must not touch the device setup (-EINVAL on
	 * a reused device).
	 */
	int (*setup)(struct cpr_vfio_dev *d, unsigned int irq_index);
	/* Have the device raise vector @vector (0 for MSI/INTx). */
	int (*raise)(struct cpr_vfio_dev *d, unsigned int irq_index,
		     unsigned int vector);
	/*
	 * Clear the interrupt condition in the device after it was seen;
	 * for INTx before cpr_vfio_intx_unmask(), or the line fires again.
	 */
	int (*ack)(struct cpr_vfio_dev *d, unsigned int irq_index);
	/*
	 * Optional: have the device DMA through @iova (mapped to @vaddr,
	 * @size bytes) and check the result in memory.  0 = data arrived.
	 */
	int (*dma_check)(struct cpr_vfio_dev *d, __u64 iova, void *vaddr,
			 size_t size);
};

struct cpr_vfio_region {
	__u32 flags;		/* VFIO_REGION_INFO_FLAG_* */
	__u64 size;
	__u64 offset;		/* in the device fd */
};

struct cpr_vfio_dev {
	char name[CPR_VFIO_NAME_MAX];	/* BDF or mdev UUID, as given */
	bool is_mdev;
	bool reused;			/* fds came from a handed-off state */
	enum cpr_vfio_iface iface;
	int group_id;			/* -1 if sysfs could not tell (reuse) */
	int container_fd;		/* group interface, else -1 */
	int group_fd;			/* group interface, else -1 */
	int device_fd;
	int iommufd;			/* cdev interface, else -1 */
	__u32 ioas_id, devid;		/* cdev interface */
	bool dma_by_file;		/* cdev: IOMMU_IOAS_MAP_FILE used */
	struct cpr_state *st;
	struct vfio_device_info info;
	struct cpr_vfio_region regions[VFIO_PCI_NUM_REGIONS];
	struct vfio_irq_info irqs[VFIO_PCI_NUM_IRQS];
	__u16 vendor, device;		/* from config space */
	const struct cpr_vfio_driver *drv;	/* NULL: software triggers */

	/*
	 * Setup ioctls issued through this handle: VFIO_GROUP_SET_CONTAINER,
	 * VFIO_SET_IOMMU, VFIO_GROUP_GET_DEVICE_FD (group), BIND_IOMMUFD,
	 * IOMMU_IOAS_ALLOC, ATTACH_IOMMUFD_PT (cdev), and VFIO_DEVICE_SET_IRQS
	 * that gives eventfds or disables (not software triggers or unmasks).
	 * A successor taking a device over must show 0 (tests check it).
	 */
	unsigned int setup_ioctls;

	/* INTx, ERR and REQ notifier eventfds, -1 if not enabled. */
	int intx_fd;			/* "<dev>_intx_interrupt" [0] */
	int intx_unmask_fd;		/* "<dev>_intx_unmask" [0] */
	bool intx_unmask_by_ioctl;	/* driver refused an unmask eventfd */
	int err_fd;			/* "<dev>_err" [0] */
	int req_fd;			/* "<dev>_req" [0] */

	/*
	 * Optional device helper (vfio_helper.h), not owned: when set,
	 * cpr_vfio_irq_trigger(), the ioctl unmask of cpr_vfio_intx_unmask()
	 * and cpr_vfio_irq_disable() ask it instead of issuing
	 * VFIO_DEVICE_SET_IRQS here (a successor under the lockdown).
	 */
	struct cpr_helper *helper;
};

/*
 * Open @name (a PCI BDF "0000:00:03.0" or an mdev UUID), or reuse its fds
 * from @st if a predecessor saved them, and save them there.  Validates
 * @name strictly (no path outside /sys/bus/{pci,mdev}/devices can be
 * reached).  Queries device, region and IRQ info, reads vendor/device ids
 * and picks the driver.  Errors name the device, the step and errno.
 *
 * Reuse is decided by "<name>_device"[0] being in @st; then the container
 * and group must be there too (-ENOENT otherwise) and of the right kind
 * (-EBADFD).  A reused device also gets its INTx, unmask, ERR and REQ
 * eventfds looked up from @st (lookup only: -1 where absent), exactly as
 * cpr_vfio_enable_intx() / cpr_vfio_enable_err_req() would find them.
 * On failure nothing is left behind: a fresh open closes and deletes what
 * it made, a reuse leaves the state's fds alone.
 */
int cpr_vfio_open(struct cpr_state *st, const char *name,
		  struct cpr_vfio_dev **out);
/*
 * A successor's open: take @name over from @st, never afresh.  When @st
 * holds no "<name>_device" (a state saved for another device) fails with
 * -ENOENT naming the devices it does hold; else as cpr_vfio_open().  A
 * malformed @name is refused (-EINVAL) before anything is looked up.
 */
int cpr_vfio_take_over(struct cpr_state *st, const char *name,
		       struct cpr_vfio_dev **out);
/*
 * The same through interface @iface.  A fresh open uses @iface; a reuse
 * takes the interface the state was saved with and fails with -EINVAL if
 * that is not @iface (cpr_vfio_open() accepts either on reuse and opens
 * fresh through the group interface).  cdev needs it built with 6.6+ uapi
 * headers, /dev/iommu and the device's vfio-dev/vfioN node: see
 * cpr_vfio_iface_supported().
 */
int cpr_vfio_open_iface(struct cpr_state *st, const char *name,
			enum cpr_vfio_iface iface, struct cpr_vfio_dev **out);
/* "group" or "cdev". */
const char *cpr_vfio_iface_name(enum cpr_vfio_iface iface);
/*
 * Whether interface @iface can be used for device @name here: 0, -EINVAL
 * for a malformed name, or -EOPNOTSUPP with the reason in cpr_last_error()
 * (for cdev it always starts with "<name>: vfio cdev/iommufd unavailable:
 * "): built without the uapi, no /dev/iommu, no vfio-dev/vfioN node.  The
 * group interface is always reported usable (opening it tells more).
 */
int cpr_vfio_iface_supported(const char *name, enum cpr_vfio_iface iface);
/* True if this library was built with the vfio cdev / iommufd uapi. */
bool cpr_vfio_cdev_built(void);
/*
 * The fd that KVM's KVM-VFIO device takes (KVM_DEV_VFIO_FILE_ADD, the old
 * KVM_DEV_VFIO_GROUP_ADD): the group fd, or the device cdev fd.
 */
int cpr_vfio_kvm_file(const struct cpr_vfio_dev *d);
/*
 * Free the memory; with @release also close the fds and delete the entries
 * the device owns (container, group, device, INTx, unmask, ERR and REQ
 * notifiers).  MSI/MSI-X vectors belong to their struct cpr_vectors.
 */
void cpr_vfio_free(struct cpr_vfio_dev *d, bool release);

/*
 * True for the mtty sample mdev (ids 4348:3253) and, to be safe, for any
 * mdev: there DATA_NONE | ACTION_TRIGGER disables the IRQ instead of
 * triggering it, so no software trigger is possible.
 */
bool cpr_vfio_is_mtty(const struct cpr_vfio_dev *d);

/*
 * Config space (region VFIO_PCI_CONFIG_REGION_INDEX) and any region, with
 * pread/pwrite on the device fd (so I/O BARs work too).  The access must
 * lie inside the region; one syscall of exactly @len bytes, so the device
 * sees one access of that width when @len is 1, 2, 4 or 8 and aligned.
 * Memory BARs need PCI_COMMAND_MEMORY (cpr_vfio_enable_device()) first.
 */
int cpr_vfio_region_read(struct cpr_vfio_dev *d, unsigned int index,
			 __u64 off, void *buf, size_t len);
int cpr_vfio_region_write(struct cpr_vfio_dev *d, unsigned int index,
			  __u64 off, const void *buf, size_t len);
int cpr_vfio_config_read(struct cpr_vfio_dev *d, __u64 off, void *buf,
			 size_t len);
int cpr_vfio_config_write(struct cpr_vfio_dev *d, __u64 off,
			  const void *buf, size_t len);
/* Set IO, MEM and BUS MASTER in the command register. */
int cpr_vfio_enable_device(struct cpr_vfio_dev *d);

/* Number of interrupts of @index (0 if the device has none). */
unsigned int cpr_vfio_irq_count(const struct cpr_vfio_dev *d,
				unsigned int index);

/* VFIO_DEVICE_SET_IRQS, DATA_EVENTFD | ACTION_TRIGGER, @count fds. */
int cpr_vfio_irq_set_eventfds(struct cpr_vfio_dev *d, unsigned int index,
			      unsigned int start, unsigned int count,
			      const int *fds);
/*
 * DATA_NONE | ACTION_TRIGGER, count 0: disable @index.  On mtty (6.1) this
 * drops the MSI eventfd without forgetting it: MSI cannot be enabled again
 * on that instance.
 */
int cpr_vfio_irq_disable(struct cpr_vfio_dev *d, unsigned int index);
/*
 * Software trigger of sub-index @vector (DATA_NONE | ACTION_TRIGGER,
 * count 1).  Refused (-EOPNOTSUPP) on mtty, where it disables the IRQ.
 */
int cpr_vfio_irq_trigger(struct cpr_vfio_dev *d, unsigned int index,
			 unsigned int vector);

/*
 * Enable MSI-X entries 0 .. @nr - 1 (cpr_vfio_enable_msix()) or MSI
 * vectors 0 .. @nr - 1 for @d: vectors with an "interrupt" and a
 * "kvm_interrupt" eventfd each, created or reused through the store
 * (cpr_vectors_create_entries(), the set's table size the device's count
 * of @irq_index), and VFIO_DEVICE_SET_IRQS with the kvm_interrupt fds; then
 * the "<dev>_msi" section is saved.  On a reused device nothing is sent to
 * the device and the vectors are not made here: -EINVAL, the successor
 * claims them with cpr_vectors_claim().  INTx must not be enabled
 * (vfio-pci refuses to switch; cpr_vfio_irq_disable() it first).  On
 * failure the vectors are cleaned up, nothing stays enabled and *@out is
 * untouched; -ENOSPC when the kernel has no room for the host vectors.
 */
int cpr_vfio_enable_msi(struct cpr_vfio_dev *d, unsigned int irq_index,
			unsigned int nr, struct cpr_vectors **out);

/*
 * Whether vfio-pci can add vectors to @d's enabled MSI-X set without
 * disabling it: dynamic MSI-X (Linux 6.5+, where the interrupt domain
 * allocates MSI-X vectors one by one), VFIO_IRQ_INFO_NORESIZE clear in the
 * MSI-X IRQ info.
 */
bool cpr_vfio_msix_can_grow(const struct cpr_vfio_dev *d);

/*
 * Enable MSI-X for the @nr table entries @entries (ascending; NULL: 0 ..
 * @nr - 1) of @d, as cpr_vfio_enable_msi() does, each vector's fds saved
 * under its entry.  The first VFIO_DEVICE_SET_IRQS of a disabled set makes
 * vfio-pci allocate start + count host vectors at once; a later one
 * allocates for its own entries only with dynamic MSI-X.  So where the set
 * can grow (cpr_vfio_msix_can_grow()), one SET_IRQS per run of consecutive
 * entries: the first enables, the others grow; where it cannot (or for
 * entries 0 .. @nr - 1), one SET_IRQS from entry 0 to the last, -1 for the
 * entries not in use: the kernel must grant the allocation of last + 1
 * vectors (x86 only reserves them; a vector is assigned to each entry
 * given an eventfd).
 */
int cpr_vfio_enable_msix(struct cpr_vfio_dev *d, const unsigned int *entries,
			 unsigned int nr, struct cpr_vectors **out);

/*
 * Add vectors for the @nr entries @entries (ascending, not in use yet) to
 * @d's enabled MSI-X set @vs, as a VMM does when its guest unmasks one:
 * cpr_vectors_add() (routed in @vs's VM if it is in one), one
 * VFIO_DEVICE_SET_IRQS per run of consecutive entries - by the device
 * helper when d->helper is set: the one SET_IRQS a successor under the
 * lockdown may have done (cpr_helper_msix_eventfds()) - and the section
 * saved.  -EOPNOTSUPP, naming VFIO_IRQ_INFO_NORESIZE, where the kernel
 * cannot grow the set.  When the kernel refuses a run, its vectors and
 * those of the runs after it leave @vs again (vfio-pci unwinds the run it
 * refused) and the error is returned; the runs before it stay.
 */
int cpr_vfio_msix_add(struct cpr_vfio_dev *d, struct cpr_vectors *vs,
		      const unsigned int *entries, unsigned int nr);

/*
 * INTx: the trigger eventfd "<dev>_intx_interrupt", and an unmask eventfd
 * "<dev>_intx_unmask" where the driver takes one (else unmask goes through
 * the ioctl: intx_unmask_by_ioctl).  Reused device: fds taken from the
 * state (-ENOENT if the trigger is not there), unmask_by_ioctl inferred
 * from the unmask fd's absence, nothing sent to the device.
 */
int cpr_vfio_enable_intx(struct cpr_vfio_dev *d);
/* Unmask INTx after the interrupt was handled (eventfd or ioctl). */
int cpr_vfio_intx_unmask(struct cpr_vfio_dev *d);
/*
 * Before a handoff: stop delivering INTx into @vm (deassign the trigger
 * eventfd's irqfd on @gsi) and, if the interrupt already sits in vCPU
 * @vcpu's LAPIC IRR as @lapic_vec without being taken, signal it back into
 * the trigger eventfd so that the next VM's irqfd delivers it on attach.
 * The vCPU must be stopped outside its handler (an accepted, unfinished
 * interrupt is in the ISR, not the IRR).
 */
int cpr_vfio_intx_detach(struct cpr_vfio_dev *d, struct cpr_vm *vm,
			 unsigned int gsi, unsigned int vcpu,
			 unsigned int lapic_vec);

/*
 * ERR and REQ notifiers ("<dev>_err", "<dev>_req"), each only if the
 * device reports one (edu: REQ only; mtty: REQ accepted but never
 * signalled); same reuse rule (lookup only, -1 where absent).
 */
int cpr_vfio_enable_err_req(struct cpr_vfio_dev *d);

/*
 * DMA (READ | WRITE) of @size bytes at @vaddr to @iova.  The unmap fails
 * with -ENOENT unless exactly @size bytes were unmapped.
 *
 * group (type1): the vaddr pair needs VFIO_UPDATE_VADDR on the container
 * (-EOPNOTSUPP otherwise; newer kernels withhold it from containers with
 * an mdev); iova and size must match the original map.
 *
 * cdev (iommufd): cpr_vfio_dma_map_memfd() maps the memfd itself where the
 * kernel has IOMMU_IOAS_MAP_FILE, by address otherwise.  Nothing is needed
 * before exec (unmap_vaddr does nothing: the IOAS keeps the pages pinned);
 * after exec update_vaddr moves the accounting to the successor with
 * IOMMU_IOAS_CHANGE_PROCESS (file mappings; by-address ones cannot move and
 * are reported).
 */
int cpr_vfio_dma_map(struct cpr_vfio_dev *d, __u64 iova, void *vaddr,
		     __u64 size);
/* The same, for memory that is @memfd from @offset (cdev maps the file). */
int cpr_vfio_dma_map_memfd(struct cpr_vfio_dev *d, __u64 iova, void *vaddr,
			   int memfd, __u64 offset, __u64 size);
int cpr_vfio_dma_unmap(struct cpr_vfio_dev *d, __u64 iova, __u64 size);
/* Before exec: invalidate the vaddr (VFIO_DMA_UNMAP_FLAG_VADDR). */
int cpr_vfio_dma_unmap_vaddr(struct cpr_vfio_dev *d, __u64 iova, __u64 size);
/* After exec: give the successor's vaddr (VFIO_DMA_MAP_FLAG_VADDR). */
int cpr_vfio_dma_update_vaddr(struct cpr_vfio_dev *d, __u64 iova,
			      void *vaddr, __u64 size);

/* "INTx", "MSI", "MSI-X", "ERR", "REQ" for a VFIO_PCI_*_IRQ_INDEX. */
const char *cpr_vfio_irq_name(unsigned int index);

/* The driver for a vendor/device pair, NULL if none. */
const struct cpr_vfio_driver *cpr_vfio_driver_find(__u16 vendor,
						   __u16 device);

/*
 * Make @d raise vector @vector of @irq_index: through its driver, or a
 * software trigger for a device without one.  Drivers: edu raises MSI or
 * INTx vector 0; e1000e raises any MSI-X vector (by pointing its IVAR
 * "other" cause at it) and MSI/INTx vector 0; mtty raises MSI or INTx
 * vector 0 (a byte looped back through port 0).  The device must have
 * been through drv->setup() (by the predecessor) and be acked in between.
 */
int cpr_vfio_raise(struct cpr_vfio_dev *d, unsigned int irq_index,
		   unsigned int vector);

#endif /* VFIO_CPR_VFIO_H */
