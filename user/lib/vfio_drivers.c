// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tiny drivers that make emulated devices raise real interrupts through
 * VFIO, so that the tests see an interrupt travel device -> vfio-pci (or
 * the mdev driver) -> eventfd, not just a software trigger:
 *
 *   edu     QEMU's educational device (1234:11e8): a raise register in
 *           BAR0, MSI or INTx depending on whether MSI is enabled, and a
 *           DMA engine with a 4 KiB buffer for an IOMMU round trip.
 *   e1000e  QEMU's 82574L (8086:10d3): "link status change" set through
 *           the interrupt cause set register; with MSI-X the "other" cause
 *           goes to whichever vector IVAR names, so every vector can fire.
 *   mtty    the kernel's sample mdev: a 16550-like UART in an I/O BAR;
 *           a byte written to port 0 loops back and raises "data ready".
 *
 * All register access goes through pread/pwrite on the device fd.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <endian.h>
#include <errno.h>
#include <linux/types.h>
#include <linux/vfio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vfio_cpr/fd.h"
#include "vfio_cpr/log.h"
#include "vfio_cpr/vfio.h"

#include "internal.h"

#define BAR0	VFIO_PCI_BAR0_REGION_INDEX

static int rd32(struct cpr_vfio_dev *d, __u64 off, __u32 *val)
{
	__u32 v;
	int ret = cpr_vfio_region_read(d, BAR0, off, &v, sizeof(v));

	*val = ret ? 0 : le32toh(v);
	return ret;
}

static int wr32(struct cpr_vfio_dev *d, __u64 off, __u32 val)
{
	__u32 v = htole32(val);

	return cpr_vfio_region_write(d, BAR0, off, &v, sizeof(v));
}

static int rd8(struct cpr_vfio_dev *d, __u64 off, __u8 *val)
{
	return cpr_vfio_region_read(d, BAR0, off, val, 1);
}

static int wr8(struct cpr_vfio_dev *d, __u64 off, __u8 val)
{
	return cpr_vfio_region_write(d, BAR0, off, &val, 1);
}

static int setup_allowed(const struct cpr_vfio_dev *d, unsigned int index)
{
	if (d->reused)
		return cpr_err(-EINVAL,
			       "%s: %s setup of IRQ index %u refused on a reused device: the predecessor did it",
			       d->name, d->drv->name, index);
	return 0;
}

/* MSI or INTx, vector 0: all that edu and mtty have. */
static int one_vector_only(const struct cpr_vfio_dev *d, unsigned int index,
			   unsigned int vector)
{
	if ((index != VFIO_PCI_INTX_IRQ_INDEX &&
	     index != VFIO_PCI_MSI_IRQ_INDEX) || vector)
		return cpr_err(-EINVAL,
			       "%s: %s raises only MSI or INTx vector 0, not IRQ index %u vector %u",
			       d->name, d->drv->name, index, vector);
	return 0;
}

/* ---- edu ---- */

#define EDU_IRQ_RAISE	0x60
#define EDU_IRQ_ACK	0x64
#define EDU_DMA_SRC	0x80
#define EDU_DMA_DST	0x88
#define EDU_DMA_COUNT	0x90
#define EDU_DMA_CMD	0x98
#define EDU_DMA_RUN	0x1
#define EDU_DMA_TO_RAM	0x2		/* direction: device buffer -> RAM */
#define EDU_DMA_BUF	0x40000u	/* the device's buffer, in its space */
/*
 * The buffer holds 4096 bytes, but QEMU up to 7.2 refuses a transfer that
 * ends exactly at its end, and refuses it with hw_error(): the whole VM
 * aborts.  Stay well inside.
 */
#define EDU_DMA_XFER	2048u
#define EDU_DMA_LIMIT	0x10000000ull	/* the default dma_mask: 28 bits */
#define EDU_DMA_WAIT_MS	5000		/* one transfer takes 100 ms */
#define EDU_RAISE_BIT	0x1

static int edu_ack(struct cpr_vfio_dev *d, unsigned int index)
{
	(void)index;
	return wr32(d, EDU_IRQ_ACK, 0xffffffff);
}

static int edu_setup(struct cpr_vfio_dev *d, unsigned int index)
{
	int ret = setup_allowed(d, index);

	if (ret)
		return ret;
	ret = one_vector_only(d, index, 0);
	/* Nothing to program: edu picks MSI when its MSI is enabled. */
	return ret ? ret : edu_ack(d, index);
}

static int edu_raise(struct cpr_vfio_dev *d, unsigned int index,
		     unsigned int vector)
{
	int ret = one_vector_only(d, index, vector);

	return ret ? ret : wr32(d, EDU_IRQ_RAISE, EDU_RAISE_BIT);
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int edu_dma_wait(struct cpr_vfio_dev *d, const char *what)
{
	__u64 end = cpr_now_ns() + EDU_DMA_WAIT_MS * 1000000ull;
	__u32 cmd;
	int ret;

	for (;;) {
		ret = rd32(d, EDU_DMA_CMD, &cmd);
		if (ret)
			return ret;
		if (!(cmd & EDU_DMA_RUN))
			return 0;
		if (cpr_now_ns() > end)
			return cpr_err(-ETIMEDOUT,
				       "%s: edu DMA %s still running after %d ms (cmd 0x%x)",
				       d->name, what, EDU_DMA_WAIT_MS, cmd);
		sleep_ms(1);
	}
}

static int edu_dma(struct cpr_vfio_dev *d, __u32 src, __u32 dst, __u32 len,
		   __u32 cmd, const char *what)
{
	int ret;

	ret = edu_dma_wait(d, "before a transfer");
	if (!ret)
		ret = wr32(d, EDU_DMA_SRC, src);
	if (!ret)
		ret = wr32(d, EDU_DMA_DST, dst);
	if (!ret)
		ret = wr32(d, EDU_DMA_COUNT, len);
	if (!ret)
		ret = wr32(d, EDU_DMA_CMD, cmd | EDU_DMA_RUN);
	return ret ? ret : edu_dma_wait(d, what);
}

/* Bytes of a pattern that differs from one call to the next. */
static void fill_pattern(__u8 *p, size_t len, __u64 seed)
{
	__u64 x = seed | 1;
	size_t i;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = x >> 32;
	}
}

/*
 * RAM (iova) -> device buffer -> RAM (iova + size / 2): the second half
 * is filled with the complement first, so only a real transfer matches.
 */
static int edu_dma_check(struct cpr_vfio_dev *d, __u64 iova, void *vaddr,
			 size_t size)
{
	static __u64 calls;
	size_t half = size / 2, len = half < EDU_DMA_XFER ? half : EDU_DMA_XFER;
	__u8 *src = vaddr, *dst = (__u8 *)vaddr + half, *want;
	size_t i;
	int ret;

	if (!len || iova >= EDU_DMA_LIMIT || size > EDU_DMA_LIMIT - iova)
		return cpr_err(-EINVAL,
			       "%s: edu DMA check at iova 0x%llx size 0x%zx: need 2 bytes or more below 0x%llx",
			       d->name, (unsigned long long)iova, size,
			       EDU_DMA_LIMIT);
	want = malloc(len);
	if (!want)
		return cpr_err(-ENOMEM, "%s: edu DMA check buffer", d->name);
	fill_pattern(want, len, cpr_now_ns() ^ ((__u64)getpid() << 32) ^ ++calls);
	memcpy(src, want, len);
	for (i = 0; i < len; i++)
		dst[i] = ~want[i];

	ret = edu_dma(d, iova, EDU_DMA_BUF, len, 0, "RAM to device");
	if (!ret)
		ret = edu_dma(d, EDU_DMA_BUF, iova + half, len, EDU_DMA_TO_RAM,
			      "device to RAM");
	if (!ret) {
		__sync_synchronize();
		for (i = 0; i < len && dst[i] == want[i]; i++)
			;
		if (i < len)
			ret = cpr_err(-EIO,
				      "%s: edu DMA via iova 0x%llx and back to 0x%llx: byte %zu of %zu is 0x%02x, want 0x%02x",
				      d->name, (unsigned long long)iova,
				      (unsigned long long)(iova + half), i, len,
				      dst[i], want[i]);
	}
	free(want);
	return ret;
}

/* ---- e1000e ---- */

#define E1000_ICR	0xc0		/* cause read; write 1s to clear */
#define E1000_ICS	0xc8		/* cause set */
#define E1000_IMS	0xd0		/* mask set (enable) */
#define E1000_IMC	0xd8		/* mask clear */
#define E1000_IVAR	0xe4		/* cause -> MSI-X vector */
#define E1000_ICR_LSC	0x00000004	/* link status change */
/* LSC, receiver overrun, MDIO done, and "other" (MSI-X). */
#define E1000_IMS_BITS	0x01000244
#define E1000_IVAR_VALID	0x8
#define E1000_IVAR_OTHER_SHIFT	16
#define E1000E_MSIX_VECTORS	5
/*
 * QEMU's e1000e throttles every interrupt it sends: it arms a timer of at
 * least 128 us (ITR, or the vector's EITR with MSI-X; a guest cannot turn
 * it off) and, in QEMU 7.2, aborts when that timer fires after the
 * interrupt mode changed (assertions in e1000e_intrmgr_on_throttling_timer
 * and _on_msix_throttling_timer).  So a raise waits for its timer before
 * it returns, and with MSI or MSI-X the causes stay masked between raises:
 * the interrupts QEMU sends on its own (a link status change after a
 * reset) cannot arm a timer just before a test switches modes.  With INTx
 * the causes stay enabled: a raise held pending by the INTx mask must
 * still be asserted when it is unmasked.
 */
#define E1000E_THROTTLE_DRAIN_MS	2

/* Receive queue 0 on vector 0, "other" causes (LSC) on @vector. */
static __u32 e1000e_ivar(unsigned int vector)
{
	return E1000_IVAR_VALID |
	       ((E1000_IVAR_VALID | vector) << E1000_IVAR_OTHER_SHIFT);
}

static int e1000e_ack(struct cpr_vfio_dev *d, unsigned int index)
{
	__u32 icr;
	int ret;

	(void)index;
	/* A read clears ICR without MSI-X; with it, write the bits back. */
	ret = rd32(d, E1000_ICR, &icr);
	return ret ? ret : wr32(d, E1000_ICR, 0xffffffff);
}

static int e1000e_setup(struct cpr_vfio_dev *d, unsigned int index)
{
	int ret = setup_allowed(d, index);

	if (ret)
		return ret;
	if (index > VFIO_PCI_MSIX_IRQ_INDEX)
		return cpr_err(-EINVAL, "%s: e1000e setup for IRQ index %u",
			       d->name, index);
	ret = wr32(d, E1000_IMC, 0xffffffff);
	if (!ret)
		ret = e1000e_ack(d, index);
	if (!ret && index == VFIO_PCI_MSIX_IRQ_INDEX)
		ret = wr32(d, E1000_IVAR, e1000e_ivar(0));
	if (!ret && index == VFIO_PCI_INTX_IRQ_INDEX)
		ret = wr32(d, E1000_IMS, E1000_IMS_BITS);
	return ret;
}

static int e1000e_raise(struct cpr_vfio_dev *d, unsigned int index,
			unsigned int vector)
{
	int ret = 0;

	if (index == VFIO_PCI_MSIX_IRQ_INDEX) {
		if (vector >= E1000E_MSIX_VECTORS)
			return cpr_err(-EINVAL, "%s: e1000e has MSI-X vectors 0-%d, not %u",
				       d->name, E1000E_MSIX_VECTORS - 1, vector);
		ret = wr32(d, E1000_IVAR, e1000e_ivar(vector));
	} else {
		ret = one_vector_only(d, index, vector);
	}
	/* A cause still set in ICR would not raise anything new. */
	if (!ret)
		ret = wr32(d, E1000_ICR, 0xffffffff);
	if (!ret)
		ret = wr32(d, E1000_IMS, E1000_IMS_BITS);
	if (!ret)
		ret = wr32(d, E1000_ICS, E1000_ICR_LSC);
	if (ret)
		return ret;
	sleep_ms(E1000E_THROTTLE_DRAIN_MS);
	if (index == VFIO_PCI_INTX_IRQ_INDEX)
		return 0;
	return wr32(d, E1000_IMC, 0xffffffff);
}

/* ---- mtty ---- */

#define UART_RX		0	/* read */
#define UART_TX		0	/* write */
#define UART_IER	1
#define UART_IIR	2	/* read */
#define UART_FCR	2	/* write */
#define UART_LCR	3
#define UART_LSR	5
#define UART_IER_RDI	0x01	/* data ready interrupt */
#define UART_FCR_SETUP	0x07	/* FIFO on, both cleared, trigger at 1 */
#define UART_LCR_8N1	0x03	/* and DLAB off */
#define UART_LSR_DR	0x01
#define MTTY_FIFO_MAX	64	/* more than the FIFO holds */
#define MTTY_BYTE	0x5a

/* Empty port 0's loop-back FIFO: the next byte reaches trigger level 1. */
static int mtty_drain(struct cpr_vfio_dev *d)
{
	unsigned int i;
	__u8 lsr, c;
	int ret;

	for (i = 0; i < MTTY_FIFO_MAX; i++) {
		ret = rd8(d, UART_LSR, &lsr);
		if (ret)
			return ret;
		if (!(lsr & UART_LSR_DR))
			return 0;
		ret = rd8(d, UART_RX, &c);
		if (ret)
			return ret;
	}
	return cpr_err(-EIO, "%s: mtty port 0 still has data after %d reads",
		       d->name, MTTY_FIFO_MAX);
}

static int mtty_ack(struct cpr_vfio_dev *d, unsigned int index)
{
	__u8 iir;
	int ret;

	(void)index;
	ret = rd8(d, UART_IIR, &iir);
	return ret ? ret : mtty_drain(d);
}

static int mtty_setup(struct cpr_vfio_dev *d, unsigned int index)
{
	int ret = setup_allowed(d, index);

	if (!ret)
		ret = one_vector_only(d, index, 0);
	if (!ret)
		ret = wr8(d, UART_LCR, UART_LCR_8N1);
	if (!ret)
		ret = wr8(d, UART_FCR, UART_FCR_SETUP);
	if (!ret)
		ret = wr8(d, UART_IER, UART_IER_RDI);
	return ret ? ret : mtty_drain(d);
}

static int mtty_raise(struct cpr_vfio_dev *d, unsigned int index,
		      unsigned int vector)
{
	int ret = one_vector_only(d, index, vector);

	/* Only the byte that makes the FIFO reach its level interrupts. */
	if (!ret)
		ret = mtty_drain(d);
	return ret ? ret : wr8(d, UART_TX, MTTY_BYTE);
}

static const struct cpr_vfio_driver drivers[] = {
	{
		.name = "edu",
		.vendor = 0x1234,
		.device = 0x11e8,
		.setup = edu_setup,
		.raise = edu_raise,
		.ack = edu_ack,
		.dma_check = edu_dma_check,
	},
	{
		.name = "e1000e",
		.vendor = 0x8086,
		.device = 0x10d3,
		.setup = e1000e_setup,
		.raise = e1000e_raise,
		.ack = e1000e_ack,
	},
	{
		.name = "mtty",
		.vendor = CPR_VFIO_MTTY_VENDOR,
		.device = CPR_VFIO_MTTY_DEVICE,
		.setup = mtty_setup,
		.raise = mtty_raise,
		.ack = mtty_ack,
	},
	{
		.name = "nvme",
		.vendor = 0x1b36,
		.device = 0x0010,
		.setup = cpr_nvme_setup,
		.raise = cpr_nvme_raise,
		.ack = cpr_nvme_ack,
		.dma_check = cpr_nvme_dma_check,
	},
	{ }	/* end */
};

const struct cpr_vfio_driver *cpr_vfio_driver_find(__u16 vendor,
						   __u16 device)
{
	const struct cpr_vfio_driver *drv;

	for (drv = drivers; drv->name; drv++)
		if (drv->vendor == vendor && drv->device == device)
			return drv;
	return NULL;
}
