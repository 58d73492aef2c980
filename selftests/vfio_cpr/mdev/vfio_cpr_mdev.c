// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio_cpr_mdev: a mediated device that the vfio_cpr selftests use as a
 * probe of the kernel, not as a device under test.
 *
 * It is an emulated-IOMMU vfio device (vfio_register_emulated_iommu_dev()),
 * so the VFIO container it is attached to has to translate an IOVA to a
 * page on its behalf: vfio_pin_pages() makes type1 walk its DMA mapping
 * back to the user virtual address it was last given (dma->vaddr, in
 * dma->mm).  A real IOMMU domain never does that after the mapping was
 * made, so this is how a test sees which address the kernel kept after
 * VFIO_DMA_MAP_FLAG_VADDR.  It also reports whether vfio handed it a KVM
 * when it was opened (the KVM-VFIO device's KVM_DEV_VFIO_FILE_ADD), and
 * which process created that VM.
 *
 * The parent device "vfio_cpr_mdev" has one type, "vfio_cpr_mdev-1", with
 * no limit on the number of instances:
 *
 *   echo $(cat /proc/sys/kernel/random/uuid) > \
 *     /sys/class/mdev_bus/vfio_cpr_mdev/mdev_supported_types/vfio_cpr_mdev-1/create
 *
 * An instance is a "vfio-pci" device with no interrupts and one region,
 * BAR0: 4 KiB, read/write, at VFIO_PCI_INDEX_TO_OFFSET(0) in the device
 * fd (every other region has size 0).  BAR0, little-endian:
 *
 *   0x00  IOVA (write 8 bytes): pin the page holding that IOVA for reading
 *         with vfio_pin_pages(), copy the 64 bytes from the IOVA (fewer
 *         where the page ends first; the rest reads 0) into 0x40, unpin.
 *         The write succeeds whatever the pin gave.  Reads back the last
 *         IOVA written.
 *   0x08  result of that pin, s64: 0, or -errno (-ENODATA: no IOVA was
 *         written since the device was opened or reset)
 *   0x10  1 if the device was opened with a KVM (vfio_device->kvm was set
 *         at open_device), else 0
 *   0x18  that VM's kvm->userspace_pid (the pid of the process that
 *         created it, in the initial pid namespace), 0 if none
 *   0x20..0x3f  reserved, read 0
 *   0x40..0x7f  the bytes read by the last pin
 *   0x80..0xfff read 0
 *
 * Reads may have any size and alignment inside BAR0; the only write is 8
 * bytes at 0x00.  VFIO_DEVICE_RESET clears the pin result and the data.
 * No page stays pinned between two accesses, so dma_unmap has nothing to
 * give back.
 *
 * It builds out of tree against 6.1 and 6.12.  Where their vfio APIs differ
 * (who frees the vfio_device, the iommufd ops) Kbuild looks at the kernel's
 * own include/linux/vfio.h and defines CPR_MDEV_RELEASE_FREES,
 * CPR_MDEV_IOMMUFD_OPS and CPR_MDEV_IOMMUFD_DETACH_OP: what the headers
 * declare decides, not a version number, so backports are followed.
 */
#include <linux/device.h>
#include <linux/highmem.h>
#include <linux/kvm_host.h>
#include <linux/mdev.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sizes.h>
#include <linux/uaccess.h>
#include <linux/vfio.h>
#include <linux/vfio_pci_core.h>

#define CPR_MDEV_NAME		"vfio_cpr_mdev"
#define CPR_MDEV_BAR0_SIZE	SZ_4K
#define CPR_MDEV_DATA_LEN	64

/* The registers at the start of BAR0, as the guest driver reads them. */
struct cpr_mdev_regs {
	__le64 iova;
	__le64 pin_ret;
	__le64 kvm;
	__le64 kvm_pid;
	__le64 reserved[4];
	u8 data[CPR_MDEV_DATA_LEN];
};

static_assert(offsetof(struct cpr_mdev_regs, data) == 0x40);
static_assert(sizeof(struct cpr_mdev_regs) == 0x80);

struct cpr_mdev {
	struct vfio_device vdev;
	/* Serialises BAR0 accesses, reset and open against each other. */
	struct mutex lock;
	u64 iova;
	s64 pin_ret;
	bool kvm;
	pid_t kvm_pid;
	u8 data[CPR_MDEV_DATA_LEN];
};

static struct cpr_mdev *to_cpr_mdev(struct vfio_device *vdev)
{
	return container_of(vdev, struct cpr_mdev, vdev);
}

/* Forget the last probe; the caller holds m->lock (or owns m alone). */
static void cpr_mdev_clear_probe(struct cpr_mdev *m)
{
	m->iova = 0;
	m->pin_ret = -ENODATA;
	memset(m->data, 0, sizeof(m->data));
}

/* Read CPR_MDEV_DATA_LEN bytes at @iova through the container. */
static void cpr_mdev_pin_read(struct cpr_mdev *m, u64 iova)
{
	dma_addr_t page_iova = iova & PAGE_MASK;
	size_t off = offset_in_page(iova);
	size_t len = min_t(size_t, CPR_MDEV_DATA_LEN, PAGE_SIZE - off);
	struct page *page;
	void *va;
	int ret;

	lockdep_assert_held(&m->lock);
	m->iova = iova;
	memset(m->data, 0, sizeof(m->data));
	ret = vfio_pin_pages(&m->vdev, page_iova, 1, IOMMU_READ, &page);
	if (ret != 1) {
		/* One page asked for: anything but 1 pinned nothing. */
		m->pin_ret = ret < 0 ? ret : -EFAULT;
		return;
	}
	va = kmap_local_page(page);
	memcpy(m->data, va + off, len);
	kunmap_local(va);
	vfio_unpin_pages(&m->vdev, page_iova, 1);
	m->pin_ret = 0;
}

static int cpr_mdev_init_dev(struct vfio_device *vdev)
{
	struct cpr_mdev *m = to_cpr_mdev(vdev);

	mutex_init(&m->lock);
	cpr_mdev_clear_probe(m);
	return 0;
}

static void cpr_mdev_release_dev(struct vfio_device *vdev)
{
	struct cpr_mdev *m = to_cpr_mdev(vdev);

	mutex_destroy(&m->lock);
#ifdef CPR_MDEV_RELEASE_FREES
	/* Kernels with vfio_free_device() (6.1) leave the kvfree() to us. */
	vfio_free_device(vdev);
#endif
}

static int cpr_mdev_open_device(struct vfio_device *vdev)
{
	struct cpr_mdev *m = to_cpr_mdev(vdev);

	/*
	 * vfio holds the VM for the duration of this call; only what is
	 * needed is copied out, nothing keeps a reference to it.
	 */
	mutex_lock(&m->lock);
	cpr_mdev_clear_probe(m);
	m->kvm = !!vdev->kvm;
	m->kvm_pid = vdev->kvm ? vdev->kvm->userspace_pid : 0;
	mutex_unlock(&m->lock);
	return 0;
}

static void cpr_mdev_close_device(struct vfio_device *vdev)
{
	struct cpr_mdev *m = to_cpr_mdev(vdev);

	mutex_lock(&m->lock);
	cpr_mdev_clear_probe(m);
	m->kvm = false;
	m->kvm_pid = 0;
	mutex_unlock(&m->lock);
}

/* The BAR0 offset of an access of @count bytes at *@ppos, or -EINVAL. */
static loff_t cpr_mdev_bar0_pos(loff_t *ppos, size_t count)
{
	u64 pos = *ppos & VFIO_PCI_OFFSET_MASK;

	if (VFIO_PCI_OFFSET_TO_INDEX(*ppos) != VFIO_PCI_BAR0_REGION_INDEX ||
	    !count || pos >= CPR_MDEV_BAR0_SIZE ||
	    count > CPR_MDEV_BAR0_SIZE - pos)
		return -EINVAL;
	return pos;
}

static ssize_t cpr_mdev_read(struct vfio_device *vdev, char __user *buf,
			     size_t count, loff_t *ppos)
{
	struct cpr_mdev *m = to_cpr_mdev(vdev);
	loff_t pos = cpr_mdev_bar0_pos(ppos, count);
	struct cpr_mdev_regs regs = {};
	size_t n = 0;

	if (pos < 0)
		return pos;

	mutex_lock(&m->lock);
	regs.iova = cpu_to_le64(m->iova);
	regs.pin_ret = cpu_to_le64(m->pin_ret);
	regs.kvm = cpu_to_le64(m->kvm);
	regs.kvm_pid = cpu_to_le64(m->kvm_pid);
	memcpy(regs.data, m->data, sizeof(regs.data));
	mutex_unlock(&m->lock);

	if (pos < (loff_t)sizeof(regs)) {
		n = min_t(size_t, count, sizeof(regs) - pos);
		if (copy_to_user(buf, (u8 *)&regs + pos, n))
			return -EFAULT;
	}
	if (count > n && clear_user(buf + n, count - n))
		return -EFAULT;
	*ppos += count;
	return count;
}

static ssize_t cpr_mdev_write(struct vfio_device *vdev,
			      const char __user *buf, size_t count,
			      loff_t *ppos)
{
	struct cpr_mdev *m = to_cpr_mdev(vdev);
	loff_t pos = cpr_mdev_bar0_pos(ppos, count);
	__le64 val;

	if (pos < 0)
		return pos;
	if (pos != offsetof(struct cpr_mdev_regs, iova) || count != sizeof(val))
		return -EINVAL;
	if (copy_from_user(&val, buf, sizeof(val)))
		return -EFAULT;

	mutex_lock(&m->lock);
	cpr_mdev_pin_read(m, le64_to_cpu(val));
	mutex_unlock(&m->lock);
	*ppos += count;
	return count;
}

static long cpr_mdev_get_info(void __user *arg)
{
	unsigned long minsz = offsetofend(struct vfio_device_info, num_irqs);
	struct vfio_device_info info;

	if (copy_from_user(&info, arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;
	info.flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
	info.num_regions = VFIO_PCI_NUM_REGIONS;
	info.num_irqs = VFIO_PCI_NUM_IRQS;
	return copy_to_user(arg, &info, minsz) ? -EFAULT : 0;
}

static long cpr_mdev_get_region_info(void __user *arg)
{
	unsigned long minsz = offsetofend(struct vfio_region_info, offset);
	struct vfio_region_info info;

	if (copy_from_user(&info, arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz || info.index >= VFIO_PCI_NUM_REGIONS)
		return -EINVAL;
	info.offset = VFIO_PCI_INDEX_TO_OFFSET(info.index);
	if (info.index == VFIO_PCI_BAR0_REGION_INDEX) {
		info.size = CPR_MDEV_BAR0_SIZE;
		info.flags = VFIO_REGION_INFO_FLAG_READ |
			     VFIO_REGION_INFO_FLAG_WRITE;
	} else {
		info.size = 0;
		info.flags = 0;
	}
	info.cap_offset = 0;
	return copy_to_user(arg, &info, minsz) ? -EFAULT : 0;
}

static long cpr_mdev_get_irq_info(void __user *arg)
{
	unsigned long minsz = offsetofend(struct vfio_irq_info, count);
	struct vfio_irq_info info;

	if (copy_from_user(&info, arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz || info.index >= VFIO_PCI_NUM_IRQS)
		return -EINVAL;
	info.flags = 0;
	info.count = 0;
	return copy_to_user(arg, &info, minsz) ? -EFAULT : 0;
}

static long cpr_mdev_ioctl(struct vfio_device *vdev, unsigned int cmd,
			   unsigned long arg)
{
	struct cpr_mdev *m = to_cpr_mdev(vdev);
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case VFIO_DEVICE_GET_INFO:
		return cpr_mdev_get_info(uarg);
	case VFIO_DEVICE_GET_REGION_INFO:
		return cpr_mdev_get_region_info(uarg);
	case VFIO_DEVICE_GET_IRQ_INFO:
		return cpr_mdev_get_irq_info(uarg);
	case VFIO_DEVICE_RESET:
		mutex_lock(&m->lock);
		cpr_mdev_clear_probe(m);
		mutex_unlock(&m->lock);
		return 0;
	}
	return -ENOTTY;
}

static void cpr_mdev_dma_unmap(struct vfio_device *vdev, u64 iova, u64 length)
{
	/* Pages are pinned only inside a BAR0 write: nothing to release. */
}

static const struct vfio_device_ops cpr_mdev_dev_ops = {
	.name = CPR_MDEV_NAME,
	.init = cpr_mdev_init_dev,
	.release = cpr_mdev_release_dev,
	.open_device = cpr_mdev_open_device,
	.close_device = cpr_mdev_close_device,
	.read = cpr_mdev_read,
	.write = cpr_mdev_write,
	.ioctl = cpr_mdev_ioctl,
	.dma_unmap = cpr_mdev_dma_unmap,
	/*
	 * Where vfio has iommufd ops (6.12, not 6.1) an emulated device serves
	 * iommufd too, and with CONFIG_IOMMUFD vfio refuses to register one
	 * that lacks them.
	 */
#ifdef CPR_MDEV_IOMMUFD_OPS
	.bind_iommufd = vfio_iommufd_emulated_bind,
	.unbind_iommufd = vfio_iommufd_emulated_unbind,
	.attach_ioas = vfio_iommufd_emulated_attach_ioas,
#endif
#ifdef CPR_MDEV_IOMMUFD_DETACH_OP
	.detach_ioas = vfio_iommufd_emulated_detach_ioas,
#endif
};

static int cpr_mdev_probe(struct mdev_device *mdev)
{
	struct cpr_mdev *m;
	int ret;

	m = vfio_alloc_device(cpr_mdev, vdev, &mdev->dev, &cpr_mdev_dev_ops);
	if (IS_ERR(m))
		return PTR_ERR(m);
	ret = vfio_register_emulated_iommu_dev(&m->vdev);
	if (ret) {
		vfio_put_device(&m->vdev);
		return ret;
	}
	dev_set_drvdata(&mdev->dev, m);
	return 0;
}

static void cpr_mdev_remove(struct mdev_device *mdev)
{
	struct cpr_mdev *m = dev_get_drvdata(&mdev->dev);

	vfio_unregister_group_dev(&m->vdev);
	vfio_put_device(&m->vdev);
}

/* Instances cost a few bytes each: as many as asked for. */
static unsigned int cpr_mdev_get_available(struct mdev_type *mtype)
{
	return UINT_MAX;
}

static ssize_t cpr_mdev_show_description(struct mdev_type *mtype, char *buf)
{
	return sysfs_emit(buf, "vfio_cpr probe: type1 IOVA pin and KVM hand-over\n");
}

static struct mdev_driver cpr_mdev_driver = {
	.device_api = VFIO_DEVICE_API_PCI_STRING,
	.driver = {
		.name = CPR_MDEV_NAME,
		.owner = THIS_MODULE,
		.mod_name = KBUILD_MODNAME,
	},
	.probe = cpr_mdev_probe,
	.remove = cpr_mdev_remove,
	.get_available = cpr_mdev_get_available,
	.show_description = cpr_mdev_show_description,
};

/* The type's sysfs name is "<parent's class>-1": vfio_cpr_mdev-1. */
static struct mdev_type cpr_mdev_type = {
	.sysfs_name = "1",
	.pretty_name = "vfio_cpr probe",
};

static struct mdev_type *cpr_mdev_types[] = { &cpr_mdev_type };

static struct class cpr_mdev_class = {
	.name = CPR_MDEV_NAME,
};

static struct device *cpr_mdev_parent_dev;
static struct mdev_parent cpr_mdev_parent;

static int __init cpr_mdev_init(void)
{
	int ret;

	ret = mdev_register_driver(&cpr_mdev_driver);
	if (ret)
		return ret;
	ret = class_register(&cpr_mdev_class);
	if (ret)
		goto err_driver;
	cpr_mdev_parent_dev = device_create(&cpr_mdev_class, NULL, 0, NULL,
					    CPR_MDEV_NAME);
	if (IS_ERR(cpr_mdev_parent_dev)) {
		ret = PTR_ERR(cpr_mdev_parent_dev);
		goto err_class;
	}
	ret = mdev_register_parent(&cpr_mdev_parent, cpr_mdev_parent_dev,
				   &cpr_mdev_driver, cpr_mdev_types,
				   ARRAY_SIZE(cpr_mdev_types));
	if (ret)
		goto err_device;
	return 0;

err_device:
	device_unregister(cpr_mdev_parent_dev);
err_class:
	class_unregister(&cpr_mdev_class);
err_driver:
	mdev_unregister_driver(&cpr_mdev_driver);
	return ret;
}

static void __exit cpr_mdev_exit(void)
{
	/* Removes every instance first (cpr_mdev_remove()). */
	mdev_unregister_parent(&cpr_mdev_parent);
	device_unregister(cpr_mdev_parent_dev);
	class_unregister(&cpr_mdev_class);
	mdev_unregister_driver(&cpr_mdev_driver);
}

module_init(cpr_mdev_init);
module_exit(cpr_mdev_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("vfio_cpr selftest probe: an emulated-IOMMU mdev that pins by IOVA and reports its KVM");
