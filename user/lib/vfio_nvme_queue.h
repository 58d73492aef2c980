/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The lower layer of the nvme driver, used by its upper layer (the
 * driver's operations, vfio_nvme.c) and nobody else: the controller's
 * registers and commands, the queue layout and the state kept of it,
 * register access, and what the queues (vfio_nvme_queue.c) give the
 * controller.  vfio_nvme.c builds on this layer, never the other way.
 */
#ifndef VFIO_CPR_VFIO_NVME_QUEUE_H
#define VFIO_CPR_VFIO_NVME_QUEUE_H

#include <endian.h>
#include <linux/types.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vfio_cpr/vectors.h"
#include "vfio_cpr/vfio.h"

#define BAR0			VFIO_PCI_BAR0_REGION_INDEX

/* Controller registers (NVMe base specification, "Controller Registers"). */
#define NVME_REG_CAP		0x00	/* 64 bits */
#define NVME_REG_INTMS		0x0c	/* pin-based and MSI only */
#define NVME_REG_INTMC		0x10
#define NVME_REG_CC		0x14
#define NVME_REG_CSTS		0x1c
#define NVME_REG_AQA		0x24
#define NVME_REG_ASQ		0x28	/* 64 bits */
#define NVME_REG_ACQ		0x30	/* 64 bits */
#define NVME_REG_DBS		0x1000	/* the doorbells */

#define NVME_CAP_MQES(cap)	((__u32)((cap) & 0xffff))	/* 0's based */
#define NVME_CAP_TO(cap)	((__u32)(((cap) >> 24) & 0xff))	/* 500 ms */
#define NVME_CAP_DSTRD(cap)	((__u32)(((cap) >> 32) & 0xf))
#define NVME_CAP_CSS_NVM(cap)	(((cap) >> 37) & 0x1)
#define NVME_CAP_MPSMIN(cap)	((__u32)(((cap) >> 48) & 0xf))

#define NVME_CC_EN		0x1
#define NVME_CC_IOSQES		(6u << 16)	/* 64-byte commands */
#define NVME_CC_IOCQES		(4u << 20)	/* 16-byte completions */
#define NVME_CSTS_RDY		0x1
#define NVME_CSTS_CFS		0x2

/* Admin opcodes, and the one I/O command used. */
#define NVME_ADM_DELETE_SQ	0x00
#define NVME_ADM_CREATE_SQ	0x01
#define NVME_ADM_DELETE_CQ	0x04
#define NVME_ADM_CREATE_CQ	0x05
#define NVME_ADM_SET_FEATURES	0x09
#define NVME_ADM_GET_FEATURES	0x0a
#define NVME_ADM_IDENTIFY	0x06
#define NVME_CNS_CTRL		0x01	/* Identify Controller: 4 KiB */
#define NVME_ID_SN		4	/* serial number: 20 ASCII bytes */
#define NVME_ID_SN_LEN		20
#define NVME_DMA_FILL		0xa5
#define NVME_FEAT_NUM_QUEUES	0x07
#define NVME_IO_FLUSH		0x00
#define NVME_QUEUE_PC		0x1	/* physically contiguous */
#define NVME_CQ_IEN		0x2	/* interrupts enabled */

#define NVME_PAGE		4096u	/* CC.MPS = 0 */
#define NVME_SQE_SIZE		64u
#define NVME_CQE_SIZE		16u
/* Entries per queue: a submission queue fills its page. */
#define NVME_DEPTH_MAX		(NVME_PAGE / NVME_SQE_SIZE)
#define NVME_QUEUES_MAX		(CPR_VECTORS_MAX + 1)
/*
 * Where the queues sit in the IOVA space: 1 GiB, far from the tests' own
 * buffer (1 MiB + 2 MiB) and from anything edu can reach (28 bits), below
 * the interrupt window at 0xfee00000, and well inside a 39-bit IOMMU.
 */
#define NVME_IOVA		0x40000000ull
#define NVME_CMD_WAIT_MS	5000u
#define NVME_POLL_US		50u

#define NVME_SEC_SUFFIX		"_nvme"
#define NVME_MEM_SUFFIX		"_nvme_queues"
#define NVME_SEC_MAGIC		0x514d564eu	/* "NVMQ" */
#define NVME_SEC_VERSION	1u
#define NVME_LIVE_MAGIC		0x45564c4eu	/* "NLVE" */

/* The section "<dev>_nvme": where everything is, fixed by setup. */
struct nvme_layout {
	__u32 magic;
	__u32 version;
	__u32 irq_index;	/* VFIO_PCI_*_IRQ_INDEX set up for */
	__u32 nr_vectors;	/* vectors raise() takes: 0..nr_vectors-1 */
	__u32 nr_io;		/* I/O queue pairs: qids 1..nr_io */
	__u32 roam_qid;		/* 0, or the pair serving vectors >= it */
	__u32 depth;		/* entries of every queue */
	__u32 db_stride;	/* bytes from one doorbell to the next */
	__u32 ready_wait_ms;	/* CAP.TO */
	__u32 cmd_wait_ms;
	__u64 iova;		/* of queue pair 0's submission queue */
	__u64 dma_size;		/* bytes mapped for the device: room for the queues */
	__u64 mem_size;		/* the memfd: the queues, then struct nvme_live */
};

/* One queue pair's progress, as the host sees it. */
struct nvme_qstate {
	__u16 sq_tail;
	__u16 cq_head;
	__u16 next_cid;
	__u8 phase;		/* phase tag of the next new completion */
	__u8 inflight;		/* submitted, completion not consumed yet */
};

/* In the memfd after the queues: what every raise and ack changes. */
struct nvme_live {
	__u32 magic;
	__u32 nr_queues;	/* 1 + nr_io */
	__u32 roam_vector;	/* the vector the roaming pair interrupts on */
	__u32 reserved;
	struct nvme_qstate q[];
};

/* An NVMe command (submission queue entry), little endian. */
struct nvme_sqe {
	__le32 dw0;		/* opcode, flags, command id */
	__le32 nsid;
	__le32 rsvd[4];
	__le64 prp1;
	__le64 prp2;
	__le32 cdw10;
	__le32 cdw11;
	__le32 cdw12[4];
};

/* A completion queue entry, little endian. */
struct nvme_cqe {
	__le32 dw0;		/* command specific */
	__le32 rsvd;
	__le16 sq_head;
	__le16 sq_id;
	__le16 cid;
	__le16 status;		/* bit 0: phase tag */
};

/* A device's driver state, loaded for one operation. */
struct nvme {
	struct cpr_vfio_dev *d;
	struct nvme_layout lay;
	__u8 *mem;		/* the memfd, mapped */
	struct nvme_live *live;
};

/* The clock of the bounded waits, and their pause between two polls. */
static inline __u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

static inline void pause_us(unsigned int us)
{
	struct timespec ts = { 0, us * 1000L };

	nanosleep(&ts, NULL);
}

/* A 32-bit register in BAR0, little endian. */
static inline int rd32(struct cpr_vfio_dev *d, __u64 off, __u32 *val)
{
	__u32 v;
	int ret = cpr_vfio_region_read(d, BAR0, off, &v, sizeof(v));

	*val = ret ? 0 : le32toh(v);
	return ret;
}

static inline int wr32(struct cpr_vfio_dev *d, __u64 off, __u32 val)
{
	__u32 v = htole32(val);

	return cpr_vfio_region_write(d, BAR0, off, &v, sizeof(v));
}

/* The name of @d's section or memfd in the state: "<dev>@suffix". */
static inline void sec_name(const struct cpr_vfio_dev *d, const char *suffix,
			    char *buf, size_t size)
{
	snprintf(buf, size, "%s%s", d->name, suffix);
}

/*
 * Queue pair @qid (0: admin) in the queue memory, i.e. from n->lay.iova
 * for the device, and its doorbells.
 */
static inline __u64 sq_off(unsigned int qid)
{
	return 2ull * qid * NVME_PAGE;
}

static inline __u64 cq_off(unsigned int qid)
{
	return sq_off(qid) + NVME_PAGE;
}

static inline __u64 sq_db(const struct nvme *n, unsigned int qid)
{
	return NVME_REG_DBS + 2ull * qid * n->lay.db_stride;
}

static inline __u64 cq_db(const struct nvme *n, unsigned int qid)
{
	return sq_db(n, qid) + n->lay.db_stride;
}

/* CSTS: the ready bit, and whether the controller failed. */
static inline int csts(struct nvme *n, __u32 *val)
{
	return rd32(n->d, NVME_REG_CSTS, val);
}

/* A command of @opcode, all else zero. */
static inline void cmd_init(struct nvme_sqe *cmd, __u8 opcode)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->dw0 = htole32(opcode);
}

/*
 * vfio_nvme_queue.c, for the controller and the operations (vfio_nvme.c).
 *
 * The queue memory: cpr_nvme_load() finds @d's layout and queue memory in
 * the state and maps it here (naming @what in its messages);
 * cpr_nvme_make_memory() makes it for n->lay (a new memfd, mapped here and
 * for the device, saved in the state); cpr_nvme_forget_memory() undoes
 * both, and deletes the section "<dev>_nvme" too.
 */
int cpr_nvme_load(struct cpr_vfio_dev *d, unsigned int irq_index,
		  const char *what, struct nvme *n);
int cpr_nvme_make_memory(struct nvme *n);
void cpr_nvme_forget_memory(struct nvme *n);

/*
 * Commands and completions: a command put on submission queue @qid (its
 * doorbell rung, *@cid its id), completion queue @qid drained of every
 * command in flight, an admin command run to its end (*@dw0: its
 * completion's dword 0, if @dw0).
 */
int cpr_nvme_submit(struct nvme *n, unsigned int qid, struct nvme_sqe *cmd,
		    __u16 *cid, const char *what);
int cpr_nvme_cq_drain(struct nvme *n, unsigned int qid, const char *what);
int cpr_nvme_admin_cmd(struct nvme *n, struct nvme_sqe *cmd, __u32 *dw0,
		       const char *what);

/*
 * The I/O queue pairs: made at setup (MSI-X), and the one that interrupts
 * on @vector (*@qid), the roaming pair re-created there if need be.
 */
int cpr_nvme_make_io_queues(struct nvme *n);
int cpr_nvme_pair_of(struct nvme *n, unsigned int vector, unsigned int *qid,
		     const char *what);

#endif /* VFIO_CPR_VFIO_NVME_QUEUE_H */
