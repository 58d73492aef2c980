// SPDX-License-Identifier: GPL-2.0-only
/*
 * Interrupt vectors of one device and their eventfds, preserved across a
 * handoff and claimed back by the successor without touching the device.
 * Their section in the state and the claim are in vectors_state.c, their
 * leaving a VM for a handoff in detach.c, the relay in relay.c.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vfio_cpr/fd.h"
#include "vfio_cpr/log.h"
#include "vfio_cpr/vectors.h"

#include "internal.h"

const char *cpr_irq_type_name(int type)
{
	switch (type) {
	case CPR_IRQ_NONE:
		return "none";
	case CPR_IRQ_INTX:
		return "INTx";
	case CPR_IRQ_MSI:
		return "MSI";
	case CPR_IRQ_MSIX:
		return "MSI-X";
	}
	return "invalid";
}

int cpr_vector_fd_name(char *buf, size_t size, const char *dev,
		       const char *name)
{
	int n = snprintf(buf, size, "%s_%s", dev, name);

	if (n < 0 || (size_t)n >= size || n > CPR_NAME_MAX)
		return cpr_err(-ENAMETOOLONG, "fd name '%s_%s' is longer than %d bytes",
			       dev, name, CPR_NAME_MAX);
	return 0;
}

/* 1 if an fd was created (and saved), 0 if a saved one was reused. */
static int notifier_init(struct cpr_state *st, const char *dev,
			 const char *name, __u32 nr, int *fd)
{
	char fdname[CPR_NAME_MAX + 1];
	int ret, efd;

	ret = cpr_vector_fd_name(fdname, sizeof(fdname), dev, name);
	if (ret)
		return ret;

	efd = cpr_state_find_fd(st, fdname, nr);
	if (efd >= 0) {
		*fd = efd;
		return 0;
	}

	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (efd < 0)
		return cpr_err(-errno, "eventfd for '%s'[%u]", fdname, nr);
	ret = cpr_state_save_fd(st, fdname, nr, efd);
	if (ret) {
		close(efd);
		return ret;
	}
	*fd = efd;
	return 1;
}

int cpr_notifier_init(struct cpr_state *st, const char *dev, const char *name,
		      __u32 nr, int *fd)
{
	int ret = notifier_init(st, dev, name, nr, fd);

	return ret < 0 ? ret : 0;
}

void cpr_notifier_cleanup(struct cpr_state *st, const char *dev,
			  const char *name, __u32 nr, int *fd)
{
	char fdname[CPR_NAME_MAX + 1];

	if (!cpr_vector_fd_name(fdname, sizeof(fdname), dev, name))
		cpr_state_delete_fd(st, fdname, nr);
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* A set's v[] is allocated with it, until cpr_vectors_add() grows it. */
static bool v_inline(const struct cpr_vectors *vs)
{
	return vs->v == (struct cpr_vector *)(vs + 1);
}

static void vector_init(struct cpr_vector *v, unsigned int entry)
{
	memset(v, 0, sizeof(*v));
	v->entry = entry;
	v->interrupt_fd = -1;
	v->kvm_fd = -1;
	v->virq = -1;
}

struct cpr_vectors *cpr_vectors_alloc(struct cpr_state *st, const char *dev,
				      int type, unsigned int table_size,
				      unsigned int nr)
{
	struct cpr_vectors *vs;
	unsigned int i;

	if (!dev || !*dev || strlen(dev) >= CPR_DEV_NAME_MAX) {
		cpr_err(-EINVAL, "device name '%.80s' empty or longer than %d bytes",
			dev ? dev : "", CPR_DEV_NAME_MAX - 1);
		return NULL;
	}
	if (!nr || nr > table_size || table_size > CPR_VECTORS_MAX) {
		cpr_err(-EINVAL, "%s: %u %s vectors of a table of %u, must be 1..%u of at most %d",
			dev, nr, cpr_irq_type_name(type), table_size,
			table_size, CPR_VECTORS_MAX);
		return NULL;
	}
	vs = calloc(1, sizeof(*vs) + nr * sizeof(vs->v[0]));
	if (!vs) {
		cpr_err(-ENOMEM, "%s: %u vectors", dev, nr);
		return NULL;
	}
	vs->st = st;
	vs->type = type;
	vs->nr = nr;
	vs->table_size = table_size;
	vs->v = (struct cpr_vector *)(vs + 1);
	strcpy(vs->dev, dev);
	for (i = 0; i < nr; i++)
		vector_init(&vs->v[i], i);
	return vs;
}

/* @entries (NULL: 0 .. @nr - 1) ascending, each below @table_size. */
static int entries_check(const char *dev, unsigned int table_size,
			 const unsigned int *entries, unsigned int nr)
{
	unsigned int i;

	for (i = 0; entries && i < nr; i++) {
		if (entries[i] >= table_size)
			return cpr_err(-EINVAL, "%s: entry %u is beyond the table of %u",
				       dev, entries[i], table_size);
		if (i && entries[i] <= entries[i - 1])
			return cpr_err(-EINVAL,
				       "%s: entry %u given after entry %u: entries must ascend",
				       dev, entries[i], entries[i - 1]);
	}
	return 0;
}

/*
 * Refuse up front, with nothing made, what RLIMIT_NOFILE would stop
 * halfway: the eventfds of @nr vectors that @st does not hold yet.
 */
static int check_fd_budget(struct cpr_state *st, const char *dev,
			   const unsigned int *entries, unsigned int nr,
			   unsigned int flags)
{
	char name[2][CPR_NAME_MAX + 1], what[CPR_DEV_NAME_MAX + 64];
	unsigned long long need = 0;
	unsigned int i, e;

	if (cpr_vector_fd_name(name[0], sizeof(name[0]), dev,
			       CPR_NOTIFY_INTERRUPT) ||
	    cpr_vector_fd_name(name[1], sizeof(name[1]), dev, CPR_NOTIFY_KVM))
		return -ENAMETOOLONG;
	for (i = 0; i < nr; i++) {
		e = entries ? entries[i] : i;
		need += (flags & CPR_VEC_INTERRUPT) &&
			cpr_state_find_fd(st, name[0], e) < 0;
		need += (flags & CPR_VEC_KVM) &&
			cpr_state_find_fd(st, name[1], e) < 0;
	}
	snprintf(what, sizeof(what), "%s: %u vectors need %llu new eventfds",
		 dev, nr, need);
	return cpr_fd_room(need, what);
}

/*
 * The fds @flags asks for, for @v (under its entry), its MSI message that
 * of the @k-th vector of cpr_vectors_create(); what was created (not
 * reused) is noted in *@made.
 */
static int vector_make(struct cpr_state *st, const char *dev,
		       struct cpr_vector *v, unsigned int k,
		       unsigned int flags, __u8 *made)
{
	int ret = 0;

	v->msg = cpr_msi_msg_make(0, CPR_VECTOR_FIRST +
				  k % (256 - CPR_VECTOR_FIRST));
	if (flags & CPR_VEC_INTERRUPT) {
		ret = notifier_init(st, dev, CPR_NOTIFY_INTERRUPT, v->entry,
				    &v->interrupt_fd);
		*made |= ret > 0 ? CPR_VEC_INTERRUPT : 0;
	}
	if (ret >= 0 && (flags & CPR_VEC_KVM)) {
		ret = notifier_init(st, dev, CPR_NOTIFY_KVM, v->entry,
				    &v->kvm_fd);
		*made |= ret > 0 ? CPR_VEC_KVM : 0;
	}
	return ret < 0 ? ret : 0;
}

/*
 * Undo only what vector_make() created: a reused fd belongs to the
 * handed-off state and stays there.
 */
static void vector_unmake(struct cpr_state *st, const char *dev,
			  struct cpr_vector *v, __u8 made)
{
	if (made & CPR_VEC_INTERRUPT)
		cpr_notifier_cleanup(st, dev, CPR_NOTIFY_INTERRUPT, v->entry,
				     &v->interrupt_fd);
	if (made & CPR_VEC_KVM)
		cpr_notifier_cleanup(st, dev, CPR_NOTIFY_KVM, v->entry,
				     &v->kvm_fd);
}

int cpr_vectors_create_entries(struct cpr_state *st, const char *dev,
			       int type, unsigned int table_size,
			       const unsigned int *entries, unsigned int nr,
			       unsigned int flags, struct cpr_vectors **out)
{
	struct cpr_vectors *vs;
	__u8 *made;
	unsigned int i;
	int ret;

	vs = cpr_vectors_alloc(st, dev, type, table_size, nr);
	if (!vs)
		return -EINVAL;
	ret = entries_check(dev, table_size, entries, nr);
	if (!ret)
		ret = check_fd_budget(st, dev, entries, nr, flags);
	made = ret ? NULL : calloc(nr, sizeof(*made));
	if (!made) {
		free(vs);
		return ret ? ret : cpr_err(-ENOMEM, "%s: %u vectors", dev, nr);
	}

	for (i = 0; i < nr && !ret; i++) {
		vs->v[i].entry = entries ? entries[i] : i;
		ret = vector_make(st, dev, &vs->v[i], i, flags, &made[i]);
	}
	if (ret) {
		for (i = 0; i < nr; i++)
			vector_unmake(st, dev, &vs->v[i], made[i]);
		free(made);
		free(vs);
		return ret;
	}
	free(made);
	*out = vs;
	return 0;
}

int cpr_vectors_create(struct cpr_state *st, const char *dev, int type,
		       unsigned int nr, unsigned int flags,
		       struct cpr_vectors **out)
{
	return cpr_vectors_create_entries(st, dev, type, nr, NULL, nr, flags,
					  out);
}

static void vector_detach_vm(struct cpr_vectors *vs, unsigned int i)
{
	struct cpr_vector *v = &vs->v[i];

	if (v->attached && !cpr_vm_priv(vs->vm)->quiesced)
		cpr_vm_irqfd_deassign(vs->vm, v->kvm_fd, v->virq);
	v->attached = false;
	if (v->virq >= 0) {
		cpr_vm_route_del(vs->vm, v->virq);
		cpr_vm_gsi_free(vs->vm, v->virq);
	}
	v->virq = -1;
}

void cpr_vectors_free(struct cpr_vectors *vs, bool cleanup)
{
	unsigned int i;

	if (!vs)
		return;
	if (cleanup) {
		for (i = 0; i < vs->nr; i++) {
			struct cpr_vector *v = &vs->v[i];

			if (vs->vm)
				vector_detach_vm(vs, i);
			if (v->interrupt_fd >= 0)
				cpr_notifier_cleanup(vs->st, vs->dev,
						     CPR_NOTIFY_INTERRUPT,
						     v->entry,
						     &v->interrupt_fd);
			if (v->kvm_fd >= 0)
				cpr_notifier_cleanup(vs->st, vs->dev,
						     CPR_NOTIFY_KVM, v->entry,
						     &v->kvm_fd);
		}
		if (vs->vm && !cpr_vm_priv(vs->vm)->quiesced)
			cpr_vm_routes_commit(vs->vm);
	}
	if (!v_inline(vs))
		free(vs->v);
	free(vs);
}

/* Vector @i, or NULL (reported) if there is no such vector. */
static struct cpr_vector *vector_at(struct cpr_vectors *vs, unsigned int i,
				    const char *what)
{
	if (i < vs->nr)
		return &vs->v[i];
	cpr_err(-EINVAL, "%s: %s vector %u of %u (a position, not an entry)",
		vs->dev, what, i, vs->nr);
	return NULL;
}

int cpr_vectors_find(const struct cpr_vectors *vs, unsigned int entry)
{
	unsigned int lo = 0, hi = vs->nr, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (vs->v[mid].entry == entry)
			return mid;
		if (vs->v[mid].entry < entry)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -ENOENT;
}

int cpr_vectors_set_msg(struct cpr_vectors *vs, unsigned int i,
			const struct cpr_msi_msg *msg)
{
	struct cpr_vector *v = vector_at(vs, i, "set message of");
	int ret;

	if (!v)
		return -EINVAL;
	if (v->relayed)
		return cpr_err(-EBUSY, "%s: new message for vector %u while it is relayed",
			       vs->dev, v->entry);
	v->msg = *msg;
	if (v->virq < 0)
		return 0;
	ret = cpr_vm_route_msi(vs->vm, v->virq, msg);
	return ret ? ret : cpr_vm_routes_commit(vs->vm);
}

int cpr_vector_irqfd(struct cpr_vectors *vs, unsigned int i)
{
	struct cpr_vector *v = &vs->v[i];
	int ret, kind;

	ret = cpr_vm_irqfd_assign(vs->vm, v->kvm_fd, v->virq, -1);
	if (!ret) {
		v->attached = true;
		return 0;
	}
	/*
	 * KVM checks the fd itself (eventfd_ctx_fdget(): EBADF, EINVAL for
	 * another kind of file), so a successor may attach inherited fds
	 * before it checked their kinds: name a bad one here.
	 */
	kind = (ret == -EBADF || ret == -EINVAL) ? cpr_fd_kind_of(v->kvm_fd) :
	       CPR_FD_EVENTFD;
	if (kind == -EBADF)
		return cpr_err(ret,
			       "%s: attaching %s vector %u to GSI %d: its fd '%s_%s'[%u] = %d is not open",
			       vs->dev, cpr_irq_type_name(vs->type), v->entry,
			       v->virq, vs->dev, CPR_NOTIFY_KVM, v->entry,
			       v->kvm_fd);
	if (kind >= 0 && kind != CPR_FD_EVENTFD)
		return cpr_err(ret,
			       "%s: attaching %s vector %u to GSI %d: its fd '%s_%s'[%u] = %d is a %s, not an eventfd (wrong kind)",
			       vs->dev, cpr_irq_type_name(vs->type), v->entry,
			       v->virq, vs->dev, CPR_NOTIFY_KVM, v->entry,
			       v->kvm_fd, cpr_fd_kind_name(kind));
	return cpr_err(ret, "%s: attaching %s vector %u (eventfd %d) to GSI %d",
		       vs->dev, cpr_irq_type_name(vs->type), v->entry,
		       v->kvm_fd, v->virq);
}

/* Undo vectors_route(): irqfds, routes (one commit), GSIs. */
static void vectors_unroute(struct cpr_vectors *vs)
{
	unsigned int i;

	for (i = 0; i < vs->nr; i++)
		vector_detach_vm(vs, i);
	cpr_vm_routes_commit(vs->vm);
	vs->vm = NULL;
}

/*
 * Stage a route in @vm for every vector of @vs with a kvm fd and no route
 * yet (@vs is in @vm from now on); their positions in @pos, *@n of them
 * (@pos NULL: not noted).  Nothing reaches KVM before a commit.
 */
static int vectors_stage(struct cpr_vectors *vs, struct cpr_vm *vm,
			 unsigned int *pos, unsigned int *n)
{
	unsigned int i;
	int ret = 0;

	vs->vm = vm;
	for (i = 0; i < vs->nr && !ret; i++) {
		struct cpr_vector *v = &vs->v[i];
		int gsi;

		if (v->kvm_fd < 0 || v->virq >= 0)
			continue;
		gsi = cpr_vm_gsi_alloc(vm);
		if (gsi < 0)
			return gsi;
		v->virq = gsi;
		if (pos)
			pos[(*n)++] = i;
		ret = cpr_vm_route_msi(vm, gsi, &v->msg);
	}
	return ret;
}

/*
 * Routes in @vm for every vector with a kvm fd and no route yet, one
 * commit, irqfds if unmasked; on failure those are undone (and a set
 * that had no route at all is in no VM again).
 */
static int vectors_route(struct cpr_vectors *vs, struct cpr_vm *vm)
{
	unsigned int k, n = 0, *pos;
	bool fresh = !vs->vm;
	int ret;

	pos = malloc((vs->nr + 1) * sizeof(*pos));
	if (!pos)
		return cpr_err(-ENOMEM, "%s: routing %u vectors", vs->dev,
			       vs->nr);
	ret = vectors_stage(vs, vm, pos, &n);
	if (!ret)
		ret = cpr_vm_routes_commit(vm);
	for (k = 0; k < n && !ret; k++)
		if (!vs->v[pos[k]].masked)
			ret = cpr_vector_irqfd(vs, pos[k]);
	if (ret && fresh) {
		vectors_unroute(vs);
	} else if (ret) {
		for (k = 0; k < n; k++)
			vector_detach_vm(vs, pos[k]);
		cpr_vm_routes_commit(vm);
	}
	free(pos);
	return ret;
}

/* What was pending in the old VM's LAPIC at handoff, injected anew. */
static int vectors_reinject(struct cpr_vectors *vs)
{
	unsigned int i;
	int ret;

	for (i = 0; i < vs->nr; i++) {
		struct cpr_vector *v = &vs->v[i];

		if (!v->lapic_pending)
			continue;
		ret = cpr_vm_signal_msi(vs->vm, &v->msg);
		if (ret)
			return cpr_err(ret, "%s: re-injecting pending vector %u",
				       vs->dev, v->entry);
		v->lapic_pending = false;
	}
	return 0;
}

int cpr_vectors_attach_sets(struct cpr_vm *vm, struct cpr_vectors *const *vss,
			    unsigned int nr_sets)
{
	unsigned int s, t, i;
	int ret = 0;

	for (s = 0; s < nr_sets; s++) {
		if (vss[s]->vm)
			return cpr_err(-EBUSY, "%s: vectors already attached to a VM",
				       vss[s]->dev);
		for (t = 0; t < s; t++)
			if (vss[t] == vss[s])
				return cpr_err(-EINVAL, "%s: the same vector set given twice",
					       vss[s]->dev);
	}
	/* Every route of every set, then one KVM_SET_GSI_ROUTING. */
	for (s = 0; s < nr_sets && !ret; s++)
		ret = vectors_stage(vss[s], vm, NULL, NULL);
	if (!ret)
		ret = cpr_vm_routes_commit(vm);
	for (s = 0; s < nr_sets && !ret; s++)
		for (i = 0; i < vss[s]->nr && !ret; i++)
			if (vss[s]->v[i].virq >= 0 && !vss[s]->v[i].masked)
				ret = cpr_vector_irqfd(vss[s], i);
	for (s = 0; s < nr_sets && !ret; s++)
		ret = vectors_reinject(vss[s]);
	if (ret)
		for (s = 0; s < nr_sets; s++)
			if (vss[s]->vm)
				vectors_unroute(vss[s]);
	return ret;
}

int cpr_vectors_attach(struct cpr_vectors *vs, struct cpr_vm *vm)
{
	return cpr_vectors_attach_sets(vm, &vs, 1);
}

/* The set's vectors and @nr new ones for @entries, merged by entry. */
static struct cpr_vector *vectors_merged(const struct cpr_vectors *vs,
					 const unsigned int *entries,
					 unsigned int nr)
{
	struct cpr_vector *v = malloc((vs->nr + nr) * sizeof(*v));
	unsigned int i = 0, k = 0, n = 0;

	while (v && (i < vs->nr || k < nr)) {
		if (k == nr || (i < vs->nr && vs->v[i].entry < entries[k]))
			v[n++] = vs->v[i++];
		else
			vector_init(&v[n++], entries[k++]);
	}
	return v;
}

int cpr_vectors_add(struct cpr_vectors *vs, const unsigned int *entries,
		    unsigned int nr, unsigned int flags)
{
	struct cpr_vector *old = vs->v, *v;
	unsigned int i, k, old_nr = vs->nr;
	__u8 *made;
	int ret;

	for (i = 0; i < vs->nr; i++)
		if (vs->v[i].relayed)
			return cpr_err(-EBUSY, "%s: adding vectors while vector %u is relayed",
				       vs->dev, vs->v[i].entry);
	if (vs->vm && cpr_vm_priv(vs->vm)->quiesced)
		return cpr_err(-ESHUTDOWN, "%s: adding vectors in a VM quiesced for a handoff",
			       vs->dev);
	if (!nr || !entries || vs->nr + nr > vs->table_size)
		return cpr_err(-EINVAL, "%s: adding %u vectors to %u of a table of %u",
			       vs->dev, nr, vs->nr, vs->table_size);
	ret = entries_check(vs->dev, vs->table_size, entries, nr);
	for (k = 0; k < nr && !ret; k++)
		if (cpr_vectors_find(vs, entries[k]) >= 0)
			ret = cpr_err(-EEXIST, "%s: adding %s entry %u: already in use",
				      vs->dev, cpr_irq_type_name(vs->type),
				      entries[k]);
	if (!ret)
		ret = check_fd_budget(vs->st, vs->dev, entries, nr, flags);
	if (ret)
		return ret;
	v = vectors_merged(vs, entries, nr);
	made = calloc(nr, sizeof(*made));
	if (!v || !made) {
		free(v);
		free(made);
		return cpr_err(-ENOMEM, "%s: adding %u vectors", vs->dev, nr);
	}
	for (i = 0, k = 0; i < old_nr + nr && !ret; i++)
		if (k < nr && v[i].entry == entries[k]) {
			ret = vector_make(vs->st, vs->dev, &v[i], old_nr + k,
					  flags, &made[k]);
			k++;
		}
	vs->v = v;
	vs->nr = old_nr + nr;
	if (!ret && vs->vm)
		ret = vectors_route(vs, vs->vm);
	if (ret) {
		for (i = 0, k = 0; i < vs->nr && k < nr; i++)
			if (v[i].entry == entries[k])
				vector_unmake(vs->st, vs->dev, &v[i], made[k++]);
		vs->v = old;
		vs->nr = old_nr;
		free(v);
	} else if (old != (struct cpr_vector *)(vs + 1)) {
		free(old);	/* v[] of an earlier cpr_vectors_add() */
	}
	free(made);
	return ret;
}

void cpr_vectors_drop(struct cpr_vectors *vs, const unsigned int *entries,
		      unsigned int nr)
{
	unsigned int i, k, n = 0;
	int pos;

	for (k = 0; k < nr; k++) {
		pos = cpr_vectors_find(vs, entries[k]);
		if (pos < 0)
			continue;
		if (vs->vm)
			vector_detach_vm(vs, pos);
		if (vs->v[pos].interrupt_fd >= 0)
			vector_unmake(vs->st, vs->dev, &vs->v[pos],
				      CPR_VEC_INTERRUPT);
		if (vs->v[pos].kvm_fd >= 0)
			vector_unmake(vs->st, vs->dev, &vs->v[pos],
				      CPR_VEC_KVM);
		vs->v[pos].virq = -2;	/* gone: squeezed out below */
	}
	if (vs->vm && !cpr_vm_priv(vs->vm)->quiesced)
		cpr_vm_routes_commit(vs->vm);
	for (i = 0; i < vs->nr; i++)
		if (vs->v[i].virq != -2)
			vs->v[n++] = vs->v[i];
	vs->nr = n;
}

int cpr_vectors_mask(struct cpr_vectors *vs, unsigned int i)
{
	struct cpr_vector *v = vector_at(vs, i, "mask");
	int ret;

	if (!v)
		return -EINVAL;
	if (v->relayed)
		return cpr_err(-EBUSY, "%s: masking vector %u while it is relayed",
			       vs->dev, v->entry);
	if (v->attached) {
		ret = cpr_vm_irqfd_deassign(vs->vm, v->kvm_fd, v->virq);
		if (ret)
			return ret;
		v->attached = false;
	}
	v->masked = true;
	return 0;
}

int cpr_vectors_unmask(struct cpr_vectors *vs, unsigned int i)
{
	struct cpr_vector *v = vector_at(vs, i, "unmask");
	int ret;

	if (!v)
		return -EINVAL;
	if (v->relayed)
		return cpr_err(-EBUSY, "%s: unmasking vector %u while it is relayed",
			       vs->dev, v->entry);
	v->masked = false;
	if (v->pending && vs->vm) {
		/* The PBA bit: deliver what was raised while masked. */
		ret = cpr_vm_signal_msi(vs->vm, &v->msg);
		if (ret)
			return cpr_err(ret, "%s: delivering pending vector %u on unmask",
				       vs->dev, v->entry);
		v->pending = false;
	}
	/* Attaching also injects what accumulated in the eventfd. */
	if (vs->vm && v->virq >= 0 && !v->attached)
		return cpr_vector_irqfd(vs, i);
	return 0;
}

static int read_counter(int fd, __u64 *count)
{
	ssize_t n = read(fd, count, sizeof(*count));

	if (n == sizeof(*count))
		return 1;
	*count = 0;
	if (n < 0 && errno == EAGAIN)
		return 0;
	return cpr_err(n < 0 ? -errno : -EIO, "reading eventfd %d", fd);
}

int cpr_vectors_poll(struct cpr_vectors *vs)
{
	unsigned int i;
	int seen = 0, ret;

	for (i = 0; i < vs->nr; i++) {
		struct cpr_vector *v = &vs->v[i];
		__u64 count;

		if (v->interrupt_fd >= 0) {
			ret = read_counter(v->interrupt_fd, &count);
			if (ret < 0)
				return ret;
			if (ret) {
				seen += count;
				vs->handled += count;
				if (v->masked)
					v->pending = true;
				else if (vs->handler)
					vs->handler(vs, i, count,
						    vs->handler_arg);
				else if (vs->vm)
					cpr_vm_signal_msi(vs->vm, &v->msg);
			}
		}
		if (v->masked && v->kvm_fd >= 0 && !v->attached) {
			ret = read_counter(v->kvm_fd, &count);
			if (ret < 0)
				return ret;
			if (ret) {
				seen += count;
				v->pending = true;
			}
		}
	}
	return seen;
}
