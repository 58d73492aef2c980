// SPDX-License-Identifier: GPL-2.0-only
/*
 * nvme: an NVM Express controller (QEMU's nvme, 1b36:0010, or an SSD) made
 * to raise each of its interrupt vectors itself, through its own queues.
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
 * The device fetches every command and writes every completion through the
 * IOMMU: the queues are in a memfd ("<dev>_nvme_queues" in the CPR state)
 * that setup maps at NVME_IOVA through the container or IOAS, queue pair q
 * (0: admin) at pages 2q (submission) and 2q + 1 (completion).  That
 * mapping is made once and never unmapped here: it lives as long as the
 * container or IOAS, i.e. until the last generation closes it.  The
 * layout (IOVA, sizes, depth, doorbell stride, queue count, timeouts) is
 * the section "<dev>_nvme"; what changes with every command (submission
 * tails, completion heads, phase tags, commands in flight, the roaming
 * pair's vector) sits in the memfd after the queues, outside what the
 * device may write, so that every process holding the memfd - the
 * predecessor raising in the blackout, a successor, a forked load process -
 * sees the queues as they are, not as the state was when it was saved.
 * A process maps the memfd the first time it touches the queues; a
 * successor on a type1 container then gives the kernel its own address for
 * the mapping (VFIO_DMA_UNMAP_FLAG_VADDR, VFIO_DMA_MAP_FLAG_VADDR).  On an
 * IOAS the pages are held by the IOAS and move with the VMM's
 * IOMMU_IOAS_CHANGE_PROCESS.  One process raises and acks at a time.
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
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vfio_cpr/log.h"
#include "vfio_cpr/state.h"
#include "vfio_cpr/vfio.h"

#include "internal.h"

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

/* What this process knows of the memfds it has mapped. */
struct nvme_map {
	dev_t dev;
	ino_t ino;
	void *mem;
	size_t size;
};

#define NVME_MAPS_MAX		8
static struct nvme_map nvme_maps[NVME_MAPS_MAX];

/* A device's driver state, loaded for one operation. */
struct nvme {
	struct cpr_vfio_dev *d;
	struct nvme_layout lay;
	__u8 *mem;		/* the memfd, mapped */
	struct nvme_live *live;
};

static __u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

static void pause_us(unsigned int us)
{
	struct timespec ts = { 0, us * 1000L };

	nanosleep(&ts, NULL);
}

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

static void sec_name(const struct cpr_vfio_dev *d, const char *suffix,
		     char *buf, size_t size)
{
	snprintf(buf, size, "%s%s", d->name, suffix);
}

static const char *qname(unsigned int qid)
{
	return qid ? "I/O" : "admin";
}

/* ---- Queue memory ---- */

static size_t live_size(unsigned int nr_queues)
{
	return sizeof(struct nvme_live) + nr_queues * sizeof(struct nvme_qstate);
}

static __u64 sq_off(unsigned int qid)
{
	return 2ull * qid * NVME_PAGE;
}

static __u64 cq_off(unsigned int qid)
{
	return sq_off(qid) + NVME_PAGE;
}

static __u64 sq_db(const struct nvme *n, unsigned int qid)
{
	return NVME_REG_DBS + 2ull * qid * n->lay.db_stride;
}

static __u64 cq_db(const struct nvme *n, unsigned int qid)
{
	return sq_db(n, qid) + n->lay.db_stride;
}

static struct nvme_map *map_find(const struct stat *sb)
{
	unsigned int i;

	for (i = 0; i < NVME_MAPS_MAX; i++)
		if (nvme_maps[i].mem && nvme_maps[i].dev == sb->st_dev &&
		    nvme_maps[i].ino == sb->st_ino)
			return &nvme_maps[i];
	return NULL;
}

static int map_remember(struct cpr_vfio_dev *d, const struct stat *sb,
			void *mem, size_t size)
{
	unsigned int i;

	for (i = 0; i < NVME_MAPS_MAX; i++) {
		if (nvme_maps[i].mem)
			continue;
		nvme_maps[i] = (struct nvme_map){ sb->st_dev, sb->st_ino, mem,
						  size };
		return 0;
	}
	return cpr_err(-ENOSPC,
		       "%s: nvme: queue memory of more than %d devices mapped in this process",
		       d->name, NVME_MAPS_MAX);
}

static void map_forget(void *mem)
{
	unsigned int i;

	for (i = 0; i < NVME_MAPS_MAX; i++)
		if (nvme_maps[i].mem == mem)
			memset(&nvme_maps[i], 0, sizeof(nvme_maps[i]));
}

/*
 * The queue memory in this process: mapped already, or mapped now; a
 * successor on a type1 container also hands the kernel this address for
 * the DMA mapping, which still names the predecessor's.
 */
static int mem_attach(struct nvme *n, int memfd)
{
	struct cpr_vfio_dev *d = n->d;
	struct nvme_map *m;
	struct stat sb;
	void *mem;
	int ret;

	if (fstat(memfd, &sb))
		return cpr_err(-errno, "%s: nvme: fstat of the queue memfd %d",
			       d->name, memfd);
	if ((__u64)sb.st_size != n->lay.mem_size)
		return cpr_err(-EBADMSG,
			       "%s: nvme: the queue memfd %d holds %lld bytes, the state says %llu",
			       d->name, memfd, (long long)sb.st_size,
			       (unsigned long long)n->lay.mem_size);
	m = map_find(&sb);
	if (m) {
		n->mem = m->mem;
		return 0;
	}
	mem = mmap(NULL, n->lay.mem_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   memfd, 0);
	if (mem == MAP_FAILED)
		return cpr_err(-errno, "%s: nvme: mapping the queue memfd %d (%llu bytes)",
			       d->name, memfd,
			       (unsigned long long)n->lay.mem_size);
	ret = 0;
	if (d->reused && d->iface == CPR_VFIO_IFACE_GROUP) {
		ret = cpr_vfio_dma_unmap_vaddr(d, n->lay.iova, n->lay.dma_size);
		if (!ret)
			ret = cpr_vfio_dma_update_vaddr(d, n->lay.iova, mem,
							n->lay.dma_size);
		if (ret)
			cpr_err(ret,
				"%s: nvme: giving the kernel this process's address of the queue memory (IOVA 0x%llx)",
				d->name, (unsigned long long)n->lay.iova);
	}
	if (!ret)
		ret = map_remember(d, &sb, mem, n->lay.mem_size);
	if (ret) {
		munmap(mem, n->lay.mem_size);
		return ret;
	}
	n->mem = mem;
	return 0;
}

/* The driver state of @d, set up by a predecessor or by this process. */
static int nvme_load(struct cpr_vfio_dev *d, unsigned int irq_index,
		     const char *what, struct nvme *n)
{
	char name[CPR_NAME_MAX + 1];
	const struct nvme_layout *lay;
	size_t len = 0;
	int memfd, ret;

	memset(n, 0, sizeof(*n));
	n->d = d;
	sec_name(d, NVME_SEC_SUFFIX, name, sizeof(name));
	lay = cpr_state_get_section(d->st, name, &len);
	if (!lay)
		return cpr_err(-ENOENT,
			       "%s: nvme %s: no section '%s': the controller was not set up (drv->setup)",
			       d->name, what, name);
	if (len != sizeof(*lay) || lay->magic != NVME_SEC_MAGIC ||
	    lay->version != NVME_SEC_VERSION)
		return cpr_err(-EBADMSG,
			       "%s: nvme %s: section '%s' is not this driver's (%zu bytes, version %u)",
			       d->name, what, name, len,
			       len >= 8 ? lay->version : 0);
	n->lay = *lay;
	if (n->lay.irq_index != irq_index)
		return cpr_err(-EINVAL, "%s: nvme %s: the controller was set up for %s, not %s",
			       d->name, what, cpr_vfio_irq_name(n->lay.irq_index),
			       cpr_vfio_irq_name(irq_index));
	if (n->lay.nr_io >= NVME_QUEUES_MAX || !n->lay.depth ||
	    n->lay.depth > NVME_DEPTH_MAX ||
	    n->lay.dma_size < 2ull * (n->lay.nr_io + 1) * NVME_PAGE ||
	    n->lay.mem_size < n->lay.dma_size + live_size(n->lay.nr_io + 1))
		return cpr_err(-EBADMSG,
			       "%s: nvme %s: section '%s' describes no queue layout this driver makes",
			       d->name, what, name);

	sec_name(d, NVME_MEM_SUFFIX, name, sizeof(name));
	memfd = cpr_state_find_fd(d->st, name, 0);
	if (memfd < 0)
		return cpr_err(-ENOENT, "%s: nvme %s: no queue memfd '%s' in the state",
			       d->name, what, name);
	ret = mem_attach(n, memfd);
	if (ret)
		return ret;
	n->live = (struct nvme_live *)(n->mem + n->lay.dma_size);
	if (n->live->magic != NVME_LIVE_MAGIC ||
	    n->live->nr_queues != n->lay.nr_io + 1)
		return cpr_err(-EBADMSG,
			       "%s: nvme %s: the queue memory does not hold the queues the section describes",
			       d->name, what);
	return 0;
}

/* ---- Commands and completions ---- */

static struct nvme_sqe *sqe_at(struct nvme *n, unsigned int qid,
			       unsigned int slot)
{
	return (struct nvme_sqe *)(n->mem + sq_off(qid) + slot * NVME_SQE_SIZE);
}

static struct nvme_cqe *cqe_at(struct nvme *n, unsigned int qid,
			       unsigned int slot)
{
	return (struct nvme_cqe *)(n->mem + cq_off(qid) + slot * NVME_CQE_SIZE);
}

/* Put @cmd on submission queue @qid and ring its doorbell; *@cid its id. */
static int submit(struct nvme *n, unsigned int qid, struct nvme_sqe *cmd,
		  __u16 *cid, const char *what)
{
	struct nvme_qstate *q = &n->live->q[qid];
	unsigned int tail;

	if (q->inflight + 1u >= n->lay.depth)
		return cpr_err(-EBUSY, "%s: nvme %s: %s queue %u holds %u commands not acked yet",
			       n->d->name, what, qname(qid), qid, q->inflight);
	*cid = q->next_cid++;
	cmd->dw0 = htole32(le32toh(cmd->dw0) | ((__u32)*cid << 16));
	memcpy(sqe_at(n, qid, q->sq_tail), cmd, sizeof(*cmd));
	tail = (q->sq_tail + 1u) % n->lay.depth;
	q->sq_tail = tail;
	/* The command in memory before the device hears of it. */
	__sync_synchronize();
	return wr32(n->d, sq_db(n, qid), tail);
}

static int csts(struct nvme *n, __u32 *val)
{
	return rd32(n->d, NVME_REG_CSTS, val);
}

/*
 * Wait until completion queue @qid has a new entry, take it (*@cqe) and
 * move the head on; the doorbell is the caller's.
 */
static int cq_take(struct nvme *n, unsigned int qid, struct nvme_cqe *cqe,
		   const char *what)
{
	struct nvme_qstate *q = &n->live->q[qid];
	struct nvme_cqe *e = cqe_at(n, qid, q->cq_head);
	__u64 end = now_ms() + n->lay.cmd_wait_ms;
	__u32 st = 0;

	/* The device writes the entry: read its phase tag afresh each time. */
	while ((le16toh(__atomic_load_n(&e->status, __ATOMIC_ACQUIRE)) & 1) !=
	       q->phase) {
		if (now_ms() > end) {
			csts(n, &st);
			return cpr_err(-ETIMEDOUT,
				       "%s: nvme %s: %s completion queue %u: no completion at entry %u within %u ms (CSTS 0x%x%s)",
				       n->d->name, what, qname(qid), qid,
				       q->cq_head, n->lay.cmd_wait_ms, st,
				       st & NVME_CSTS_CFS ? ", controller fatal status" : "");
		}
		pause_us(NVME_POLL_US);
	}
	/* The entry's other fields after its phase tag (acquire above). */
	memcpy(cqe, e, sizeof(*cqe));
	if (++q->cq_head == n->lay.depth) {
		q->cq_head = 0;
		q->phase ^= 1;
	}
	if (le16toh(cqe->sq_id) != qid)
		return cpr_err(-EIO,
			       "%s: nvme %s: %s completion queue %u got a completion of submission queue %u",
			       n->d->name, what, qname(qid), qid,
			       le16toh(cqe->sq_id));
	return 0;
}

static int cq_doorbell(struct nvme *n, unsigned int qid)
{
	return wr32(n->d, cq_db(n, qid), n->live->q[qid].cq_head);
}

/* Consume every completion queue @qid owes; write its head doorbell. */
static int cq_drain(struct nvme *n, unsigned int qid, const char *what)
{
	struct nvme_qstate *q = &n->live->q[qid];
	struct nvme_cqe cqe;
	bool took = false;
	int ret = 0;

	while (q->inflight) {
		ret = cq_take(n, qid, &cqe, what);
		if (ret)
			break;
		q->inflight--;
		took = true;
	}
	if (took) {
		int err = cq_doorbell(n, qid);

		ret = ret ? ret : err;
	}
	return ret;
}

/*
 * Run an admin command to its end: completions of commands raise()
 * submitted on the admin queue before it are consumed on the way.
 */
static int admin_cmd(struct nvme *n, struct nvme_sqe *cmd, __u32 *dw0,
		     const char *what)
{
	struct nvme_qstate *q = &n->live->q[0];
	struct nvme_cqe cqe;
	__u16 cid, status;
	int ret, err;

	ret = submit(n, 0, cmd, &cid, what);
	if (ret)
		return ret;
	for (;;) {
		ret = cq_take(n, 0, &cqe, what);
		if (ret || le16toh(cqe.cid) == cid)
			break;
		if (!q->inflight) {
			ret = cpr_err(-EIO, "%s: nvme %s: admin completion of unknown command %u",
				      n->d->name, what, le16toh(cqe.cid));
			break;
		}
		q->inflight--;
	}
	err = cq_doorbell(n, 0);
	if (ret || err)
		return ret ? ret : err;
	status = le16toh(cqe.status) >> 1;
	if (status)
		return cpr_err(-EIO,
			       "%s: nvme %s: the controller refused: status 0x%x (type %u, code 0x%02x)",
			       n->d->name, what, status, (status >> 8) & 0x7,
			       status & 0xff);
	if (dw0)
		*dw0 = le32toh(cqe.dw0);
	return 0;
}

static void cmd_init(struct nvme_sqe *cmd, __u8 opcode)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->dw0 = htole32(opcode);
}

static int create_pair(struct nvme *n, unsigned int qid, unsigned int vector)
{
	__u32 qsize = (n->lay.depth - 1) << 16;
	struct nvme_sqe cmd;
	char what[64];
	int ret;

	memset(n->mem + sq_off(qid), 0, 2 * NVME_PAGE);
	n->live->q[qid] = (struct nvme_qstate){ .phase = 1 };
	snprintf(what, sizeof(what), "creating I/O completion queue %u on vector %u",
		 qid, vector);
	cmd_init(&cmd, NVME_ADM_CREATE_CQ);
	cmd.prp1 = htole64(n->lay.iova + cq_off(qid));
	cmd.cdw10 = htole32(qsize | qid);
	cmd.cdw11 = htole32(vector << 16 | NVME_CQ_IEN | NVME_QUEUE_PC);
	ret = admin_cmd(n, &cmd, NULL, what);
	if (ret)
		return ret;
	snprintf(what, sizeof(what), "creating I/O submission queue %u", qid);
	cmd_init(&cmd, NVME_ADM_CREATE_SQ);
	cmd.prp1 = htole64(n->lay.iova + sq_off(qid));
	cmd.cdw10 = htole32(qsize | qid);
	cmd.cdw11 = htole32(qid << 16 | NVME_QUEUE_PC);
	return admin_cmd(n, &cmd, NULL, what);
}

/* Re-create the roaming pair on @vector, its earlier completions taken. */
static int roam(struct nvme *n, unsigned int vector, const char *what)
{
	unsigned int qid = n->lay.roam_qid;
	struct nvme_sqe cmd;
	int ret;

	ret = cq_drain(n, qid, what);
	if (ret)
		return ret;
	cmd_init(&cmd, NVME_ADM_DELETE_SQ);
	cmd.cdw10 = htole32(qid);
	ret = admin_cmd(n, &cmd, NULL, "deleting the roaming submission queue");
	if (ret)
		return ret;
	cmd_init(&cmd, NVME_ADM_DELETE_CQ);
	cmd.cdw10 = htole32(qid);
	ret = admin_cmd(n, &cmd, NULL, "deleting the roaming completion queue");
	if (ret)
		return ret;
	/* Gone from the device: no vector until the pair is back. */
	n->live->roam_vector = ~0u;
	ret = create_pair(n, qid, vector);
	if (!ret)
		n->live->roam_vector = vector;
	return ret;
}

/* ---- Controller ---- */

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
	char name[CPR_NAME_MAX + 1];
	int memfd;

	if (n->mem) {
		disable(n);
		cpr_vfio_dma_unmap(n->d, n->lay.iova, n->lay.dma_size);
		map_forget(n->mem);
		munmap(n->mem, n->lay.mem_size);
		n->mem = NULL;
	}
	sec_name(n->d, NVME_MEM_SUFFIX, name, sizeof(name));
	memfd = cpr_state_find_fd(n->d->st, name, 0);
	if (memfd >= 0) {
		cpr_state_delete_fd(n->d->st, name, 0);
		close(memfd);
	}
	sec_name(n->d, NVME_SEC_SUFFIX, name, sizeof(name));
	cpr_state_delete_section(n->d->st, name);
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

/* The memfd, mapped here and for the device, saved in the state. */
static int make_memory(struct nvme *n)
{
	struct cpr_vfio_dev *d = n->d;
	char name[CPR_NAME_MAX + 1];
	struct stat sb;
	int memfd, ret;
	void *mem;

	/* Room for a pair per vector: the controller may grant fewer. */
	n->lay.dma_size = 2ull * n->lay.nr_vectors * NVME_PAGE;
	n->lay.mem_size = n->lay.dma_size + live_size(n->lay.nr_vectors);
	n->lay.mem_size = (n->lay.mem_size + NVME_PAGE - 1) & ~(NVME_PAGE - 1ull);
	memfd = memfd_create("vfio_cpr_nvme", MFD_CLOEXEC);
	if (memfd < 0)
		return cpr_err(-errno, "%s: nvme setup: memfd_create for the queues",
			       d->name);
	if (ftruncate(memfd, n->lay.mem_size) || fstat(memfd, &sb)) {
		ret = cpr_err(-errno, "%s: nvme setup: sizing the queue memfd to %llu bytes",
			      d->name, (unsigned long long)n->lay.mem_size);
		close(memfd);
		return ret;
	}
	mem = mmap(NULL, n->lay.mem_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   memfd, 0);
	if (mem == MAP_FAILED) {
		ret = cpr_err(-errno, "%s: nvme setup: mapping the queue memfd",
			      d->name);
		close(memfd);
		return ret;
	}
	sec_name(d, NVME_MEM_SUFFIX, name, sizeof(name));
	ret = cpr_state_save_fd(d->st, name, 0, memfd);
	if (ret) {
		cpr_err(ret, "%s: nvme setup: saving the queue memfd as '%s'",
			d->name, name);
		munmap(mem, n->lay.mem_size);
		close(memfd);
		return ret;
	}
	ret = map_remember(d, &sb, mem, n->lay.mem_size);
	if (ret) {
		munmap(mem, n->lay.mem_size);
		return ret;
	}
	n->mem = mem;
	ret = cpr_vfio_dma_map_memfd(d, n->lay.iova, mem, memfd, 0,
				     n->lay.dma_size);
	if (ret) {
		cpr_err(ret,
			"%s: nvme setup: mapping the queues at IOVA 0x%llx (0x%llx bytes) through the %s",
			d->name, (unsigned long long)n->lay.iova,
			(unsigned long long)n->lay.dma_size,
			d->iface == CPR_VFIO_IFACE_CDEV ? "IOAS" : "container");
		map_forget(mem);
		munmap(mem, n->lay.mem_size);
		n->mem = NULL;
		return ret;
	}
	n->live = (struct nvme_live *)(n->mem + n->lay.dma_size);
	n->live->magic = NVME_LIVE_MAGIC;
	n->live->nr_queues = 1;
	n->live->q[0].phase = 1;
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

/* MSI-X: an I/O pair per vector 1..n-1, as far as queues are granted. */
static int make_io_queues(struct nvme *n)
{
	struct cpr_vfio_dev *d = n->d;
	unsigned int want = n->lay.nr_vectors - 1, nsq, ncq, qid;
	struct nvme_sqe cmd;
	__u32 dw0;
	int ret;

	cmd_init(&cmd, NVME_ADM_SET_FEATURES);
	cmd.cdw10 = htole32(NVME_FEAT_NUM_QUEUES);
	cmd.cdw11 = htole32((want - 1) << 16 | (want - 1));
	ret = admin_cmd(n, &cmd, &dw0, "asking for I/O queues (Set Features, Number of Queues)");
	if (ret)
		return ret;
	nsq = (dw0 & 0xffff) + 1;
	ncq = (dw0 >> 16) + 1;
	n->lay.nr_io = want < nsq ? want : nsq;
	n->lay.nr_io = n->lay.nr_io < ncq ? n->lay.nr_io : ncq;
	if (n->lay.nr_io < want) {
		n->lay.roam_qid = n->lay.nr_io;
		cpr_info("%s: nvme: %u I/O queue pairs granted for %u vectors: vectors %u-%u share pair %u, re-created on the vector raised",
			 d->name, n->lay.nr_io, n->lay.nr_vectors,
			 n->lay.roam_qid, n->lay.nr_vectors - 1,
			 n->lay.roam_qid);
	}
	for (qid = 1; qid <= n->lay.nr_io; qid++) {
		n->live->nr_queues = qid + 1;
		ret = create_pair(n, qid, qid);
		if (ret)
			return ret;
	}
	n->live->roam_vector = n->lay.roam_qid;
	return 0;
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
		nvme_load(d, len == sizeof(*old) ? old->irq_index : irq_index,
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
		ret = make_memory(&n);
	if (!ret)
		ret = enable(&n);
	/* Pin-based: nothing may fire until it is all set up. */
	if (!ret && pin)
		ret = wr32(d, NVME_REG_INTMS, 0x1);
	if (!ret && n.lay.nr_vectors > 1)
		ret = make_io_queues(&n);
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

/* The queue pair that interrupts on @vector, re-creating the roaming one. */
static int pair_of(struct nvme *n, unsigned int vector, unsigned int *qid,
		   const char *what)
{
	int ret;

	if (vector >= n->lay.nr_vectors)
		return cpr_err(-EINVAL,
			       "%s: nvme %s: the controller was set up for %s vectors 0-%u",
			       n->d->name, what,
			       cpr_vfio_irq_name(n->lay.irq_index),
			       n->lay.nr_vectors - 1);
	if (!n->lay.roam_qid || vector < n->lay.roam_qid) {
		*qid = vector;
		return 0;
	}
	*qid = n->lay.roam_qid;
	if (n->live->roam_vector == vector)
		return 0;
	ret = roam(n, vector, what);
	if (ret)
		cpr_err(ret, "%s: nvme %s: moving I/O queue pair %u to vector %u",
			n->d->name, what, *qid, vector);
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
	ret = nvme_load(d, irq_index, what, &n);
	if (!ret)
		ret = pair_of(&n, vector, &qid, what);
	if (ret)
		return ret;
	if (qid) {
		/* Namespace 0 is never valid: an error completion, no I/O. */
		cmd_init(&cmd, NVME_IO_FLUSH);
	} else {
		cmd_init(&cmd, NVME_ADM_GET_FEATURES);
		cmd.cdw10 = htole32(NVME_FEAT_NUM_QUEUES);
	}
	ret = submit(&n, qid, &cmd, &cid, what);
	if (!ret)
		n.live->q[qid].inflight++;
	return ret;
}

int cpr_nvme_ack(struct cpr_vfio_dev *d, unsigned int irq_index)
{
	struct nvme n;
	unsigned int qid;
	int ret;

	ret = nvme_load(d, irq_index, "ack", &n);
	for (qid = 0; !ret && qid <= n.lay.nr_io; qid++)
		if (n.live->q[qid].inflight)
			ret = cq_drain(&n, qid, "ack");
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
	ret = nvme_load(d, lay && len == sizeof(*lay) ? lay->irq_index : 0,
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
	ret = admin_cmd(&n, &cmd, NULL, "DMA check (Identify Controller)");
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
