/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Declarations the library's files share among themselves and nobody
 * else: not part of the API in include/vfio_cpr/, which callers use.
 * Grouped by the file that defines them.
 */
#ifndef VFIO_CPR_INTERNAL_H
#define VFIO_CPR_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <linux/types.h>

#include "vfio_cpr/compiler.h"
#include "vfio_cpr/kvm.h"
#include "vfio_cpr/state.h"
#include "vfio_cpr/vectors.h"
#include "vfio_cpr/vfio.h"
#include "vfio_cpr/vfio_helper.h"

#ifndef container_of
#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))
#endif

/*
 * fd.c: call @fn on every fd open in this process (/proc/self/fd), until
 * it returns nonzero; that, or -errno if the table cannot be read.
 */
typedef int (*cpr_fd_visit_t)(int fd, void *arg);

int cpr_visit_open_fds(cpr_fd_visit_t fn, void *arg);

/*
 * relay.c: a running relay as its VM sees it.  @end stops the thread and
 * frees the relay (@dispose: in a handoff, the successor closes its epoll
 * set) and returns the thread's first failure; cpr_vm_destroy() and
 * cpr_vectors_detach_vm() call it.
 */
struct cpr_relay_hook {
	unsigned int nr;		/* vectors relayed */
	int (*end)(struct cpr_vm *vm, bool dispose);
};

/*
 * kvm.c: what cpr_vm_create() allocates, the struct cpr_vm of kvm.h and,
 * behind it, what the library alone uses.
 */
struct cpr_vm_priv {
	struct cpr_vm vm;
	unsigned int max_routes;	/* KVM's table limit (pin routes too) */
	unsigned short route_slot[CPR_GSI_MAX];	/* gsi -> staged entry + 1 */
	unsigned int nr_irqfds;		/* assigned through this library */
	bool guest_ready;		/* cpr_vm_guest_setup() done */
	bool quiesced;			/* cpr_vm_quiesce(): vm_fd closed */
	struct cpr_relay_hook *relay;	/* cpr_vectors_relay() running */
};

static inline struct cpr_vm_priv *cpr_vm_priv(const struct cpr_vm *vm)
{
	return container_of(vm, struct cpr_vm_priv, vm);
}

/*
 * kvm.c, for guest.c: 0, or -ESHUTDOWN with a message starting with @what
 * once cpr_vm_quiesce() closed the VM fd.
 */
int cpr_vm_live(struct cpr_vm *vm, const char *what);

/*
 * vectors.c, for the relay and the detach: attach vector @i's irqfd
 * (naming a bad fd).
 */
int cpr_vector_irqfd(struct cpr_vectors *vs, unsigned int i);
/*
 * vectors.c, for the section and the claim (vectors_state.c): "<dev>_<name>"
 * into @buf, and an empty set of @nr vectors of a table of @table_size,
 * entries 0 .. @nr - 1, no fds (NULL, reported, if the sizes are wrong).
 */
int cpr_vector_fd_name(char *buf, size_t size, const char *dev,
		       const char *name);
struct cpr_vectors *cpr_vectors_alloc(struct cpr_state *st, const char *dev,
				      int type, unsigned int table_size,
				      unsigned int nr);
/*
 * vectors.c, for the interrupts (vfio_irq.c): take the vectors of the @nr
 * entries @entries out of @vs again (their irqfds, routes and fds, and the
 * fds' entries in the state), when the device refused them.
 */
void cpr_vectors_drop(struct cpr_vectors *vs, const unsigned int *entries,
		      unsigned int nr);

/*
 * detach.c, for the relay: check that @vss are the sets of a handoff of
 * @vm: all routed in it (or nowhere), together holding every irqfd and
 * relayed vector it has (*@nr_attached: their irqfds).
 */
int cpr_vectors_sets_check(struct cpr_vm *vm, struct cpr_vectors *const *vss,
			   unsigned int nr_sets, const char *what,
			   unsigned int *nr_attached);

/*
 * state.c, for the serialised form (state_format.c): the store's tables
 * and entries, and what the parser fills them with.  cpr_key_hash() is an
 * entry's hash, cpr_tab_find() finds a key's entry (NULL if absent),
 * cpr_tab_reserve*() make room for one more (or for @slots slots and
 * @live entries), cpr_tab_add() adds an entry whose key is not there yet.
 * cpr_entry_new_in() carves the entry from @st's arena while it has room.
 */
struct cpr_entry {
	struct cpr_fd_rec rec;	/* sections use name only */
	void *data;		/* sections: never NULL, even when len is 0 */
	size_t len;
	__u32 pos;		/* slot in the table's order[] */
	__u32 in_arena;		/* carved from the state's arena */
	__u32 hash;
	__u32 name_len;
	char name[];
};

struct cpr_table {
	struct cpr_entry **order;	/* insertion order, NULL = deleted */
	unsigned char *blk_live;	/* live entries per 64 slots */
	size_t nr_slots;		/* slots of order[] in use */
	size_t order_cap;		/* a multiple of 64 */
	size_t nr_live;
	size_t first_hole;		/* order[] is dense below this slot */
	struct cpr_entry **hash;	/* open addressing, linear probing */
	size_t hash_size;		/* a power of two, or 0 */
};

struct cpr_state {
	struct cpr_table fds;
	struct cpr_table sections;
	__u64 fd_serial;	/* bumped by every fd saved or deleted */
	/*
	 * A parsed state's entries, carved from one allocation: a successor
	 * loads thousands of them in its blackout, and a malloc() each costs
	 * a quarter of the load.  Freed with the state.
	 */
	unsigned char *arena;
	size_t arena_size, arena_used;
};

__u32 cpr_key_hash(const char *name, size_t len, __u32 index);
struct cpr_entry *cpr_tab_find(const struct cpr_table *t, const char *name,
			       size_t len, __u32 index, __u32 h);
int cpr_tab_reserve_n(struct cpr_table *t, size_t slots, size_t live);
int cpr_tab_reserve(struct cpr_table *t);
void cpr_tab_add(struct cpr_table *t, struct cpr_entry *e);
struct cpr_entry *cpr_entry_new(const char *name, size_t len, __u32 index,
				__u32 h);
struct cpr_entry *cpr_entry_new_in(struct cpr_state *st, const char *name,
				   size_t len, __u32 index, __u32 h);

/*
 * handoff_fds.c, for the exec and the resume (handoff.c): the launcher's
 * fds and those to be closed by the successor, into the state at exec and
 * out of it at resume; the fds open at a deferred resume (but the state's,
 * those to be closed and @memfd), and cpr_fd_audit() on them, which then
 * forgets them.
 */
int cpr_launcher_fds_save(struct cpr_state *st);
int cpr_launcher_fds_load(const struct cpr_state *st);
int cpr_dispose_fds_save(struct cpr_state *st);
int cpr_dispose_fds_load(struct cpr_state *st);
int cpr_fd_snapshot(const struct cpr_state *st, int memfd);
int cpr_fd_audit_snapshot(const struct cpr_state *st);

/*
 * vfio.c, for the interrupts (vfio_irq.c): the fd "<dev>_@what"[0] in the
 * device's state (-1 if absent), and the INTx, unmask, ERR and REQ
 * eventfds a reused device finds there.
 */
int cpr_vfio_find_fd(const struct cpr_vfio_dev *d, const char *what);
void cpr_vfio_lookup_notifiers(struct cpr_vfio_dev *d);

/*
 * vfio_dev.c, for vfio.c: the device, region and IRQ info of the freshly
 * opened or reused @d, and its vendor and device ids.
 */
int cpr_vfio_query_info(struct cpr_vfio_dev *d);

/*
 * vfio_cdev.c, for vfio.c and vfio_dma.c: the cdev interface's fresh open
 * (sets device_fd, iommufd, ids, saves the section; the caller saves the
 * fds), section load/delete, and its DMA operations.
 */
int cpr_vfio_cdev_supported(const char *name, bool is_mdev);
int cpr_vfio_cdev_open_fresh(struct cpr_vfio_dev *d);
int cpr_vfio_cdev_load(struct cpr_vfio_dev *d);
void cpr_vfio_cdev_forget(struct cpr_vfio_dev *d);
int cpr_vfio_cdev_dma_map(struct cpr_vfio_dev *d, __u64 iova, void *vaddr,
			  int fd, __u64 off, __u64 size);
int cpr_vfio_cdev_dma_unmap(struct cpr_vfio_dev *d, __u64 iova, __u64 size);
int cpr_vfio_cdev_change_process(struct cpr_vfio_dev *d);

/* vfio_nvme.c: the nvme driver's operations, for the driver table. */
int cpr_nvme_setup(struct cpr_vfio_dev *d, unsigned int irq_index);
int cpr_nvme_raise(struct cpr_vfio_dev *d, unsigned int irq_index,
		   unsigned int vector);
int cpr_nvme_ack(struct cpr_vfio_dev *d, unsigned int irq_index);
int cpr_nvme_dma_check(struct cpr_vfio_dev *d, __u64 iova, void *vaddr,
		       size_t size);

/*
 * vfio_helper_server.c, for its client (vfio_helper.c): the device
 * helper's wire, its policy and the helper process.
 *
 * Wire: a SOCK_SEQPACKET socket pair, one request or reply per message,
 * fds with SCM_RIGHTS in the same message.  A request is struct helper_req
 * followed by its payload; a reply is struct helper_rep, its payload, then
 * its message text.  A reply carries its request's sequence number, so
 * that a late answer to a request the client gave up on is dropped.  The
 * helper answers every request but QUIT; its first message (HELLO, sequence
 * 0) says whether it serves.
 */
#define HELPER_MAGIC	0x48525043u	/* "CPRH" */
#define HELPER_VERSION	1
/* Eventfds in one SET_IRQS message, well under SCM_MAX_FD (253). */
#define HELPER_FDS_MAX	128

enum helper_type {
	HT_HELLO = 1,
	HT_SET_IRQS,
	HT_DISABLE,
	HT_OP,
	HT_STATS,
	HT_QUIT,
};

struct helper_req {
	__u32 magic;
	__u16 version;
	__u16 type;
	__u32 seq;
	__u32 flags;		/* SET_IRQS: VFIO_IRQ_SET_* */
	__u32 index;
	__u32 start;
	__u32 count;
	__u32 op;		/* OP: the operation's id */
	__u32 len;		/* payload bytes after the header */
	__u32 nr_fds;		/* fds in the message */
	char dev[CPR_VFIO_NAME_MAX];	/* "" for none */
};

#define REP_REFUSED	0x1u	/* by the policy: the kernel was not asked */

struct helper_rep {
	__u32 magic;
	__u16 version;
	__u16 type;
	__u32 seq;
	__s32 status;		/* 0 or -errno */
	__u32 flags;		/* REP_* */
	__u32 len;		/* payload bytes after the header */
	__u32 msg_len;		/* message bytes after the payload */
};

#define REQ_BUF_SIZE	(sizeof(struct helper_req) + CPR_HELPER_PAYLOAD_MAX)
#define REP_BUF_SIZE	(sizeof(struct helper_rep) + CPR_HELPER_PAYLOAD_MAX + \
			 CPR_ERRMSG_MAX)

/* "DATA_NONE", ..., "ACTION_TRIGGER", ... of VFIO_IRQ_SET_* @flags. */
const char *cpr_helper_data_name(__u32 flags);
const char *cpr_helper_action_name(__u32 flags);
/*
 * The kind of a SET_IRQS request the policy allows, or -1 with the rule it
 * breaks in *@why.
 */
int cpr_helper_classify(__u32 flags, __u32 index, __u32 count,
			const char **why);
/* One message with up to HELPER_FDS_MAX fds: its length, or -errno. */
ssize_t cpr_helper_send_msg(int sock, const void *buf, size_t len,
			    const int *fds, unsigned int nr_fds, int flags);
ssize_t cpr_helper_recv_msg(int sock, void *buf, size_t size, int *fds,
			    unsigned int *nr_fds, bool *trunc, int flags);
/* Close @nr fds, each set to -1. */
void cpr_helper_close_fds(int *fds, unsigned int nr);

/*
 * The helper process: made by its parent (NULL: no memory), then run in
 * the fork on its end @sock of the socket pair until QUIT or EOF.
 */
struct cpr_helper_server;

struct cpr_helper_server *
cpr_helper_server_new(struct cpr_vfio_dev *const *devs, unsigned int nr_devs,
		      const struct cpr_helper_op *ops, unsigned int nr_ops);
void __noreturn cpr_helper_serve(struct cpr_helper_server *s, int sock);

#endif /* VFIO_CPR_INTERNAL_H */
