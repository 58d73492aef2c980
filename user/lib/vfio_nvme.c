// SPDX-License-Identifier: GPL-2.0-only
/*
 * nvme: an NVM Express controller (QEMU's nvme, 1b36:0010, or an SSD) made
 * to raise each of its interrupt vectors itself, through its own queues.
 * This file: the controller (capabilities, enable and disable, setup) and
 * the driver's operations; the queues, their memory across a handoff and
 * the commands and completions on them are vfio_nvme_queue.c's.
 *
 *   setup  (the predecessor only) the controller disabled, an admin queue
 *          pair given to it, enabled; with MSI-X, as many I/O queue pairs
 *          as the controller grants for vectors 1..n-1 (Set Features,
 *          Number of Queues), completion queue q interrupting on vector q.
 *          If it grants fewer queues than there are vectors, the last pair
 *          "roams": re-created on whichever vector above it is raised.
 *   raise  vector 0 is the admin completion queue's (it has no other): a
 *          Get Features there.  Vector v > 0: a Flush of namespace 0 on the
 *          I/O submission queue of v, which fails ("invalid namespace") -
 *          no namespace is needed - and still posts its completion, which
 *          interrupts on v.
 *   ack    every queue with commands in flight: their completions consumed
 *          (phase tag), the completion queue's head doorbell written.
 *
 * Registers are read and written with pread/pwrite on the device fd (32
 * bits at a time: CAP, ASQ and ACQ as two halves, low first).  Every wait
 * is bounded: CAP.TO for the ready bit, NVME_CMD_WAIT_MS for a completion.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <endian.h>
#include <errno.h>
#include <linux/types.h>
#include <linux/vfio.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "vfio_cpr/log.h"
#include "vfio_cpr/state.h"
#include "vfio_cpr/vfio.h"

#include "internal.h"
#include "vfio_nvme_queue.h"

/* ---- Controller ---- */

static int rd64(struct cpr_vfio_dev *d, __u64 off, __u64 *val)
{
	__u32 lo, hi;
	int ret = rd32(d, off, &lo);

	if (!ret)
		ret = rd32(d, off + 4, &hi);
	*val = ret ? 0 : ((__u64)hi << 32) | lo;
	return ret;
}

static int wr64(struct cpr_vfio_dev *d, __u64 off, __u64 val)
{
	int ret = wr32(d, off, (__u32)val);

	return ret ? ret : wr32(d, off + 4, (__u32)(val >> 32));
}

/* Wait for CSTS.RDY to read @rdy within CAP.TO. */
static int wait_ready(struct nvme *n, __u32 rdy, const char *what)
{
	__u64 end = now_ms() + n->lay.ready_wait_ms;
	__u32 st;
	int ret;

	for (;;) {
		ret = csts(n, &st);
		if (ret)
			return ret;
		if (st == ~0u)
			return cpr_err(-ENODEV,
				       "%s: nvme %s: CSTS reads all ones: the controller is gone",
				       n->d->name, what);
		if (rdy && (st & NVME_CSTS_CFS))
			return cpr_err(-EIO, "%s: nvme %s: controller fatal status (CSTS 0x%x)",
				       n->d->name, what, st);
		if ((st & NVME_CSTS_RDY) == rdy)
			return 0;
		if (now_ms() > end)
			return cpr_err(-ETIMEDOUT,
				       "%s: nvme %s: CSTS.RDY still %u after CAP.TO (%u ms; CSTS 0x%x)",
				       n->d->name, what, !rdy,
				       n->lay.ready_wait_ms, st);
		pause_us(1000);
	}
}

static int disable(struct nvme *n)
{
	__u32 cc;
	int ret = rd32(n->d, NVME_REG_CC, &cc);

	if (!ret && (cc & NVME_CC_EN))
		ret = wr32(n->d, NVME_REG_CC, cc & ~NVME_CC_EN);
	return ret ? ret : wait_ready(n, 0, "disabling the controller (CC.EN=0)");
}

static int setup_refused(const struct cpr_vfio_dev *d, unsigned int index)
{
	return cpr_err(-EINVAL,
		       "%s: nvme setup of IRQ index %u refused on a reused device: the predecessor did it",
		       d->name, index);
}

/* Everything setup() made for @d, gone; the controller left disabled. */
static void forget(struct nvme *n)
{
	if (n->mem)
		disable(n);
	cpr_nvme_forget_memory(n);
}

/* CAP: the queue depth, doorbell stride and ready timeout to use. */
static int read_cap(struct nvme *n)
{
	struct cpr_vfio_dev *d = n->d;
	__u64 cap, need;
	int ret = rd64(d, NVME_REG_CAP, &cap);

	if (ret)
		return ret;
	if (cap == ~0ull)
		return cpr_err(-ENODEV,
			       "%s: nvme setup: CAP reads all ones: the controller does not answer",
			       d->name);
	if (!NVME_CAP_CSS_NVM(cap) || NVME_CAP_MPSMIN(cap))
		return cpr_err(-EOPNOTSUPP,
			       "%s: nvme setup: CAP 0x%llx: no NVM command set or no 4 KiB pages",
			       d->name, (unsigned long long)cap);
	n->lay.depth = NVME_CAP_MQES(cap) + 1 < NVME_DEPTH_MAX ?
		       NVME_CAP_MQES(cap) + 1 : NVME_DEPTH_MAX;
	if (n->lay.depth < 2)
		return cpr_err(-EOPNOTSUPP, "%s: nvme setup: CAP.MQES %u: queues of one entry",
			       d->name, NVME_CAP_MQES(cap));
	n->lay.db_stride = 4u << NVME_CAP_DSTRD(cap);
	n->lay.ready_wait_ms = (NVME_CAP_TO(cap) ? NVME_CAP_TO(cap) : 1) * 500;
	n->lay.cmd_wait_ms = NVME_CMD_WAIT_MS;
	/* Every doorbell this setup could need must lie in BAR0. */
	need = cq_db(n, n->lay.nr_vectors - 1) + 4;
	if (need > d->regions[BAR0].size)
		return cpr_err(-EINVAL,
			       "%s: nvme setup: BAR0 of 0x%llx bytes has no doorbell for queue %u (stride %u)",
			       d->name, (unsigned long long)d->regions[BAR0].size,
			       n->lay.nr_vectors - 1, n->lay.db_stride);
	return 0;
}

/* Disabled, admin queue pair given, enabled. */
static int enable(struct nvme *n)
{
	struct cpr_vfio_dev *d = n->d;
	__u32 aqs = n->lay.depth - 1;
	int ret;

	ret = disable(n);
	if (!ret)
		ret = wr32(d, NVME_REG_AQA, aqs << 16 | aqs);
	if (!ret)
		ret = wr64(d, NVME_REG_ASQ, n->lay.iova + sq_off(0));
	if (!ret)
		ret = wr64(d, NVME_REG_ACQ, n->lay.iova + cq_off(0));
	if (!ret)
		ret = wr32(d, NVME_REG_CC,
			   NVME_CC_IOCQES | NVME_CC_IOSQES | NVME_CC_EN);
	return ret ? ret : wait_ready(n, NVME_CSTS_RDY,
				      "enabling the controller (CC.EN=1)");
}

int cpr_nvme_setup(struct cpr_vfio_dev *d, unsigned int irq_index)
{
	char name[CPR_NAME_MAX + 1];
	const struct nvme_layout *old;
	struct nvme n = { .d = d };
	size_t len = 0;
	bool pin;
	int ret;

	if (d->reused)
		return setup_refused(d, irq_index);
	if (irq_index > VFIO_PCI_MSIX_IRQ_INDEX ||
	    !cpr_vfio_irq_count(d, irq_index))
		return cpr_err(-EINVAL, "%s: nvme setup: the device has no %s",
			       d->name, cpr_vfio_irq_name(irq_index));
	/* Set up before, in this state: start over. */
	sec_name(d, NVME_SEC_SUFFIX, name, sizeof(name));
	old = cpr_state_get_section(d->st, name, &len);
	if (old) {
		cpr_nvme_load(d, len == sizeof(*old) ? old->irq_index : irq_index,
			      "setting up again", &n);
		forget(&n);
	}
	memset(&n, 0, sizeof(n));
	n.d = d;

	pin = irq_index != VFIO_PCI_MSIX_IRQ_INDEX;
	n.lay.magic = NVME_SEC_MAGIC;
	n.lay.version = NVME_SEC_VERSION;
	n.lay.irq_index = irq_index;
	n.lay.nr_vectors = pin ? 1 : cpr_vfio_irq_count(d, irq_index);
	if (n.lay.nr_vectors > CPR_VECTORS_MAX)
		n.lay.nr_vectors = CPR_VECTORS_MAX;
	n.lay.iova = NVME_IOVA;
	ret = read_cap(&n);
	if (!ret)
		ret = cpr_nvme_make_memory(&n);
	if (!ret)
		ret = enable(&n);
	/* Pin-based: nothing may fire until it is all set up. */
	if (!ret && pin)
		ret = wr32(d, NVME_REG_INTMS, 0x1);
	if (!ret && n.lay.nr_vectors > 1)
		ret = cpr_nvme_make_io_queues(&n);
	if (!ret && pin)
		ret = wr32(d, NVME_REG_INTMC, 0x1);
	if (!ret) {
		sec_name(d, NVME_SEC_SUFFIX, name, sizeof(name));
		ret = cpr_state_set_section(d->st, name, &n.lay, sizeof(n.lay));
		if (ret)
			cpr_err(ret, "%s: nvme setup: saving section '%s'",
				d->name, name);
	}
	if (ret)
		forget(&n);
	return ret;
}

int cpr_nvme_raise(struct cpr_vfio_dev *d, unsigned int irq_index,
		   unsigned int vector)
{
	struct nvme_sqe cmd;
	unsigned int qid = 0;
	char what[48];
	struct nvme n;
	__u16 cid;
	int ret;

	snprintf(what, sizeof(what), "raise of %s vector %u",
		 cpr_vfio_irq_name(irq_index), vector);
	ret = cpr_nvme_load(d, irq_index, what, &n);
	if (!ret)
		ret = cpr_nvme_pair_of(&n, vector, &qid, what);
	if (ret)
		return ret;
	if (qid) {
		/* Namespace 0 is never valid: an error completion, no I/O. */
		cmd_init(&cmd, NVME_IO_FLUSH);
	} else {
		cmd_init(&cmd, NVME_ADM_GET_FEATURES);
		cmd.cdw10 = htole32(NVME_FEAT_NUM_QUEUES);
	}
	ret = cpr_nvme_submit(&n, qid, &cmd, &cid, what);
	if (!ret)
		n.live->q[qid].inflight++;
	return ret;
}

int cpr_nvme_ack(struct cpr_vfio_dev *d, unsigned int irq_index)
{
	struct nvme n;
	unsigned int qid;
	int ret;

	ret = cpr_nvme_load(d, irq_index, "ack", &n);
	for (qid = 0; !ret && qid <= n.lay.nr_io; qid++)
		if (n.live->q[qid].inflight)
			ret = cpr_nvme_cq_drain(&n, qid, "ack");
	return ret;
}

/*
 * DMA into the caller's buffer: Identify Controller written by the device
 * through @iova.  The buffer is filled first, so only a real transfer
 * gives the PCI vendor id and an ASCII serial number at their places.
 * Pin-based interrupts are masked meanwhile (the completion would assert
 * INTx, which vfio-pci would then hold masked); with MSI-X the admin
 * completion signals vector 0.
 */
int cpr_nvme_dma_check(struct cpr_vfio_dev *d, __u64 iova, void *vaddr,
		       size_t size)
{
	char name[CPR_NAME_MAX + 1];
	const struct nvme_layout *lay;
	__u8 *buf = vaddr;
	struct nvme_sqe cmd;
	struct nvme n;
	size_t len = 0;
	unsigned int i;
	__u16 vid;
	bool pin;
	int ret, err;

	if (size < NVME_PAGE || (iova & (NVME_PAGE - 1)))
		return cpr_err(-EINVAL,
			       "%s: nvme DMA check at IOVA 0x%llx size 0x%zx: needs a page-aligned 4 KiB",
			       d->name, (unsigned long long)iova, size);
	sec_name(d, NVME_SEC_SUFFIX, name, sizeof(name));
	lay = cpr_state_get_section(d->st, name, &len);
	ret = cpr_nvme_load(d, lay && len == sizeof(*lay) ? lay->irq_index : 0,
			    "DMA check", &n);
	if (ret)
		return ret;
	pin = n.lay.irq_index != VFIO_PCI_MSIX_IRQ_INDEX;
	memset(buf, NVME_DMA_FILL, NVME_PAGE);
	__sync_synchronize();
	if (pin) {
		ret = wr32(d, NVME_REG_INTMS, 0x1);
		if (ret)
			return ret;
	}
	cmd_init(&cmd, NVME_ADM_IDENTIFY);
	cmd.prp1 = htole64(iova);
	cmd.cdw10 = htole32(NVME_CNS_CTRL);
	ret = cpr_nvme_admin_cmd(&n, &cmd, NULL,
				 "DMA check (Identify Controller)");
	if (pin) {
		err = wr32(d, NVME_REG_INTMC, 0x1);
		ret = ret ? ret : err;
	}
	if (ret)
		return ret;
	__sync_synchronize();
	vid = buf[0] | buf[1] << 8;
	for (i = 0; i < NVME_ID_SN_LEN; i++)
		if (buf[NVME_ID_SN + i] < 0x20 || buf[NVME_ID_SN + i] > 0x7e)
			break;
	if (vid != d->vendor || i < NVME_ID_SN_LEN)
		return cpr_err(-EIO,
			       "%s: nvme DMA check: Identify Controller through IOVA 0x%llx left vendor id 0x%04x (want 0x%04x), serial number byte %u is 0x%02x: the device's write did not arrive",
			       d->name, (unsigned long long)iova, vid, d->vendor,
			       i, i < NVME_ID_SN_LEN ? buf[NVME_ID_SN + i] : 0);
	return 0;
}
