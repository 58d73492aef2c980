// SPDX-License-Identifier: GPL-2.0-only
/*
 * nvme queues: the memory the controller's queues live in and the state of
 * them a handoff passes on, and the commands and completions on them -
 * submission, doorbells, completion draining, admin commands, the I/O
 * queue pairs and the roaming one.  The driver, its controller and its
 * operations: vfio_nvme.c.
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
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <endian.h>
#include <errno.h>
#include <linux/types.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vfio_cpr/log.h"
#include "vfio_cpr/state.h"
#include "vfio_cpr/vfio.h"

#include "vfio_nvme_queue.h"

static const char *qname(unsigned int qid)
{
	return qid ? "I/O" : "admin";
}

/* ---- Queue memory ---- */

static size_t live_size(unsigned int nr_queues)
{
	return sizeof(struct nvme_live) + nr_queues * sizeof(struct nvme_qstate);
}

/* What this process knows of the memfds it has mapped. */
struct nvme_map {
	dev_t dev;
	ino_t ino;
	void *mem;
	size_t size;
};

#define NVME_MAPS_MAX		8
static struct nvme_map nvme_maps[NVME_MAPS_MAX];

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
int cpr_nvme_load(struct cpr_vfio_dev *d, unsigned int irq_index,
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

/* The memfd, mapped here and for the device, saved in the state. */
int cpr_nvme_make_memory(struct nvme *n)
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

/*
 * The queue memory gone: the device's mapping of it, this process's, the
 * memfd and the section, all out of the state.  The controller is
 * disabled first, by the caller, if the memory is mapped.
 */
void cpr_nvme_forget_memory(struct nvme *n)
{
	char name[CPR_NAME_MAX + 1];
	int memfd;

	if (n->mem) {
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
int cpr_nvme_submit(struct nvme *n, unsigned int qid, struct nvme_sqe *cmd,
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
int cpr_nvme_cq_drain(struct nvme *n, unsigned int qid, const char *what)
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
int cpr_nvme_admin_cmd(struct nvme *n, struct nvme_sqe *cmd, __u32 *dw0,
		       const char *what)
{
	struct nvme_qstate *q = &n->live->q[0];
	struct nvme_cqe cqe;
	__u16 cid, status;
	int ret, err;

	ret = cpr_nvme_submit(n, 0, cmd, &cid, what);
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

/* ---- Queue pairs ---- */

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
	ret = cpr_nvme_admin_cmd(n, &cmd, NULL, what);
	if (ret)
		return ret;
	snprintf(what, sizeof(what), "creating I/O submission queue %u", qid);
	cmd_init(&cmd, NVME_ADM_CREATE_SQ);
	cmd.prp1 = htole64(n->lay.iova + sq_off(qid));
	cmd.cdw10 = htole32(qsize | qid);
	cmd.cdw11 = htole32(qid << 16 | NVME_QUEUE_PC);
	return cpr_nvme_admin_cmd(n, &cmd, NULL, what);
}

/* Re-create the roaming pair on @vector, its earlier completions taken. */
static int roam(struct nvme *n, unsigned int vector, const char *what)
{
	unsigned int qid = n->lay.roam_qid;
	struct nvme_sqe cmd;
	int ret;

	ret = cpr_nvme_cq_drain(n, qid, what);
	if (ret)
		return ret;
	cmd_init(&cmd, NVME_ADM_DELETE_SQ);
	cmd.cdw10 = htole32(qid);
	ret = cpr_nvme_admin_cmd(n, &cmd, NULL,
				 "deleting the roaming submission queue");
	if (ret)
		return ret;
	cmd_init(&cmd, NVME_ADM_DELETE_CQ);
	cmd.cdw10 = htole32(qid);
	ret = cpr_nvme_admin_cmd(n, &cmd, NULL,
				 "deleting the roaming completion queue");
	if (ret)
		return ret;
	/* Gone from the device: no vector until the pair is back. */
	n->live->roam_vector = ~0u;
	ret = create_pair(n, qid, vector);
	if (!ret)
		n->live->roam_vector = vector;
	return ret;
}

/* MSI-X: an I/O pair per vector 1..n-1, as far as queues are granted. */
int cpr_nvme_make_io_queues(struct nvme *n)
{
	struct cpr_vfio_dev *d = n->d;
	unsigned int want = n->lay.nr_vectors - 1, nsq, ncq, qid;
	struct nvme_sqe cmd;
	__u32 dw0;
	int ret;

	cmd_init(&cmd, NVME_ADM_SET_FEATURES);
	cmd.cdw10 = htole32(NVME_FEAT_NUM_QUEUES);
	cmd.cdw11 = htole32((want - 1) << 16 | (want - 1));
	ret = cpr_nvme_admin_cmd(n, &cmd, &dw0,
				 "asking for I/O queues (Set Features, Number of Queues)");
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

/* The queue pair that interrupts on @vector, re-creating the roaming one. */
int cpr_nvme_pair_of(struct nvme *n, unsigned int vector, unsigned int *qid,
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
