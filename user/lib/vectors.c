// SPDX-License-Identifier: GPL-2.0-only
/*
 * Interrupt vectors of one device and their eventfds, preserved across a
 * handoff and claimed back by the successor without touching the device.
 * Their leaving a VM for a handoff is in detach.c, the relay in relay.c.
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

/* Layout of the "<dev>_msi" section. */
#define CPR_MSI_SEC_VERSION	1

#define CPR_VEC_F_MASKED	0x1
#define CPR_VEC_F_PENDING	0x2
#define CPR_VEC_F_LAPIC_PENDING	0x4

struct cpr_msi_sec_hdr {
	__u32 version;
	__u32 type;
	__u32 nr;
	__u32 reserved;
};

struct cpr_msi_sec_vec {
	__u32 addr_lo;
	__u32 addr_hi;
	__u32 data;
	__u32 flags;
};

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

static int fd_name(char *buf, size_t size, const char *dev, const char *name)
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

	ret = fd_name(fdname, sizeof(fdname), dev, name);
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

	if (!fd_name(fdname, sizeof(fdname), dev, name))
		cpr_state_delete_fd(st, fdname, nr);
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static struct cpr_vectors *vectors_alloc(struct cpr_state *st,
					 const char *dev, int type,
					 unsigned int nr)
{
	struct cpr_vectors *vs;
	unsigned int i;

	if (!dev || !*dev || strlen(dev) >= CPR_DEV_NAME_MAX) {
		cpr_err(-EINVAL, "device name '%.80s' empty or longer than %d bytes",
			dev ? dev : "", CPR_DEV_NAME_MAX - 1);
		return NULL;
	}
	if (!nr || nr > CPR_VECTORS_MAX) {
		cpr_err(-EINVAL, "%s: %u %s vectors, must be 1..%d",
			dev, nr, cpr_irq_type_name(type), CPR_VECTORS_MAX);
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
	strcpy(vs->dev, dev);
	for (i = 0; i < nr; i++) {
		vs->v[i].interrupt_fd = -1;
		vs->v[i].kvm_fd = -1;
		vs->v[i].virq = -1;
	}
	return vs;
}

/*
 * Refuse up front, with nothing made, what RLIMIT_NOFILE would stop
 * halfway: the eventfds of @nr vectors that @st does not hold yet.
 */
static int check_fd_budget(struct cpr_state *st, const char *dev,
			   unsigned int nr, unsigned int flags)
{
	char name[2][CPR_NAME_MAX + 1], what[CPR_DEV_NAME_MAX + 64];
	unsigned long long need = 0;
	unsigned int i;

	if (fd_name(name[0], sizeof(name[0]), dev, CPR_NOTIFY_INTERRUPT) ||
	    fd_name(name[1], sizeof(name[1]), dev, CPR_NOTIFY_KVM))
		return -ENAMETOOLONG;
	for (i = 0; i < nr; i++) {
		need += (flags & CPR_VEC_INTERRUPT) &&
			cpr_state_find_fd(st, name[0], i) < 0;
		need += (flags & CPR_VEC_KVM) &&
			cpr_state_find_fd(st, name[1], i) < 0;
	}
	snprintf(what, sizeof(what), "%s: %u vectors need %llu new eventfds",
		 dev, nr, need);
	return cpr_fd_room(need, what);
}

int cpr_vectors_create(struct cpr_state *st, const char *dev, int type,
		       unsigned int nr, unsigned int flags,
		       struct cpr_vectors **out)
{
	struct cpr_vectors *vs;
	__u8 *made;
	unsigned int i;
	int ret;

	ret = check_fd_budget(st, dev, nr, flags);
	if (ret)
		return ret;
	vs = vectors_alloc(st, dev, type, nr);
	ret = 0;
	if (!vs)
		return -EINVAL;
	made = calloc(nr, sizeof(*made));
	if (!made) {
		free(vs);
		return cpr_err(-ENOMEM, "%s: %u vectors", dev, nr);
	}

	for (i = 0; i < nr && ret >= 0; i++) {
		struct cpr_vector *v = &vs->v[i];

		v->msg = cpr_msi_msg_make(0, CPR_VECTOR_FIRST +
					  i % (256 - CPR_VECTOR_FIRST));
		if (flags & CPR_VEC_INTERRUPT) {
			ret = notifier_init(st, dev, CPR_NOTIFY_INTERRUPT, i,
					    &v->interrupt_fd);
			made[i] |= ret > 0 ? CPR_VEC_INTERRUPT : 0;
		}
		if (ret >= 0 && (flags & CPR_VEC_KVM)) {
			ret = notifier_init(st, dev, CPR_NOTIFY_KVM, i,
					    &v->kvm_fd);
			made[i] |= ret > 0 ? CPR_VEC_KVM : 0;
		}
	}
	if (ret < 0) {
		/*
		 * Undo only what this call made: a reused fd belongs to the
		 * handed-off state and stays there.
		 */
		for (i = 0; i < nr; i++) {
			if (made[i] & CPR_VEC_INTERRUPT)
				cpr_notifier_cleanup(st, dev,
						     CPR_NOTIFY_INTERRUPT, i,
						     &vs->v[i].interrupt_fd);
			if (made[i] & CPR_VEC_KVM)
				cpr_notifier_cleanup(st, dev, CPR_NOTIFY_KVM,
						     i, &vs->v[i].kvm_fd);
		}
		free(made);
		free(vs);
		return ret;
	}
	free(made);
	*out = vs;
	return 0;
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
						     CPR_NOTIFY_INTERRUPT, i,
						     &v->interrupt_fd);
			if (v->kvm_fd >= 0)
				cpr_notifier_cleanup(vs->st, vs->dev,
						     CPR_NOTIFY_KVM, i,
						     &v->kvm_fd);
		}
		if (vs->vm && !cpr_vm_priv(vs->vm)->quiesced)
			cpr_vm_routes_commit(vs->vm);
	}
	free(vs);
}

/* Vector @i, or NULL (reported) if there is no such vector. */
static struct cpr_vector *vector_at(struct cpr_vectors *vs, unsigned int i,
				    const char *what)
{
	if (i < vs->nr)
		return &vs->v[i];
	cpr_err(-EINVAL, "%s: %s vector %u of %u", vs->dev, what, i, vs->nr);
	return NULL;
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
			       vs->dev, i);
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
			       vs->dev, cpr_irq_type_name(vs->type), i,
			       v->virq, vs->dev, CPR_NOTIFY_KVM, i, v->kvm_fd);
	if (kind >= 0 && kind != CPR_FD_EVENTFD)
		return cpr_err(ret,
			       "%s: attaching %s vector %u to GSI %d: its fd '%s_%s'[%u] = %d is a %s, not an eventfd (wrong kind)",
			       vs->dev, cpr_irq_type_name(vs->type), i,
			       v->virq, vs->dev, CPR_NOTIFY_KVM, i, v->kvm_fd,
			       cpr_fd_kind_name(kind));
	return cpr_err(ret, "%s: attaching %s vector %u (eventfd %d) to GSI %d",
		       vs->dev, cpr_irq_type_name(vs->type), i,
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

/* Routes for every vector with a kvm fd, one commit, irqfds if unmasked. */
static int vectors_route(struct cpr_vectors *vs, struct cpr_vm *vm)
{
	unsigned int i;
	int ret = 0;

	vs->vm = vm;
	for (i = 0; i < vs->nr && !ret; i++) {
		struct cpr_vector *v = &vs->v[i];
		int gsi;

		if (v->kvm_fd < 0)
			continue;
		gsi = cpr_vm_gsi_alloc(vm);
		if (gsi < 0) {
			ret = gsi;
			break;
		}
		v->virq = gsi;
		ret = cpr_vm_route_msi(vm, gsi, &v->msg);
	}
	if (!ret)
		ret = cpr_vm_routes_commit(vm);
	for (i = 0; i < vs->nr && !ret; i++)
		if (vs->v[i].virq >= 0 && !vs->v[i].masked)
			ret = cpr_vector_irqfd(vs, i);
	if (ret)
		vectors_unroute(vs);
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
				       vs->dev, i);
		v->lapic_pending = false;
	}
	return 0;
}

int cpr_vectors_attach(struct cpr_vectors *vs, struct cpr_vm *vm)
{
	int ret;

	if (vs->vm)
		return cpr_err(-EBUSY, "%s: vectors already attached to a VM",
			       vs->dev);
	ret = vectors_route(vs, vm);
	if (ret)
		return ret;
	ret = vectors_reinject(vs);
	if (ret)
		vectors_unroute(vs);
	return ret;
}

int cpr_vectors_mask(struct cpr_vectors *vs, unsigned int i)
{
	struct cpr_vector *v = vector_at(vs, i, "mask");
	int ret;

	if (!v)
		return -EINVAL;
	if (v->relayed)
		return cpr_err(-EBUSY, "%s: masking vector %u while it is relayed",
			       vs->dev, i);
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
			       vs->dev, i);
	v->masked = false;
	if (v->pending && vs->vm) {
		/* The PBA bit: deliver what was raised while masked. */
		ret = cpr_vm_signal_msi(vs->vm, &v->msg);
		if (ret)
			return cpr_err(ret, "%s: delivering pending vector %u on unmask",
				       vs->dev, i);
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

static int msi_section_name(char *buf, size_t size, const char *dev)
{
	int n = snprintf(buf, size, "%s%s", dev, CPR_SEC_MSI_SUFFIX);

	if (n < 0 || (size_t)n >= size)
		return cpr_err(-ENAMETOOLONG, "section name for device '%s'",
			       dev);
	return 0;
}

int cpr_vectors_save(struct cpr_vectors *vs)
{
	char name[CPR_NAME_MAX + 1];
	struct cpr_msi_sec_hdr *h;
	struct cpr_msi_sec_vec *sv;
	size_t len = sizeof(*h) + vs->nr * sizeof(*sv);
	unsigned int i;
	int ret;

	ret = msi_section_name(name, sizeof(name), vs->dev);
	if (ret)
		return ret;
	h = calloc(1, len);
	if (!h)
		return cpr_err(-ENOMEM, "%s: MSI section of %zu bytes", vs->dev,
			       len);
	h->version = CPR_MSI_SEC_VERSION;
	h->type = vs->type;
	h->nr = vs->nr;
	sv = (struct cpr_msi_sec_vec *)(h + 1);
	for (i = 0; i < vs->nr; i++) {
		const struct cpr_vector *v = &vs->v[i];

		sv[i].addr_lo = v->msg.addr_lo;
		sv[i].addr_hi = v->msg.addr_hi;
		sv[i].data = v->msg.data;
		sv[i].flags = (v->masked ? CPR_VEC_F_MASKED : 0) |
			      (v->pending ? CPR_VEC_F_PENDING : 0) |
			      (v->lapic_pending ? CPR_VEC_F_LAPIC_PENDING : 0);
	}
	ret = cpr_state_set_section(vs->st, name, h, len);
	free(h);
	return ret;
}

int cpr_vectors_claim(struct cpr_state *st, const char *dev,
		      struct cpr_vm *vm, struct cpr_vectors **out)
{
	char name[CPR_NAME_MAX + 1], irq_name[CPR_NAME_MAX + 1];
	char kvm_name[CPR_NAME_MAX + 1];
	const struct cpr_msi_sec_hdr *h;
	const struct cpr_msi_sec_vec *sv;
	struct cpr_vectors *vs;
	unsigned int i;
	size_t len;
	int ret, *fds;

	ret = msi_section_name(name, sizeof(name), dev);
	if (!ret)
		ret = fd_name(irq_name, sizeof(irq_name), dev,
			      CPR_NOTIFY_INTERRUPT);
	if (!ret)
		ret = fd_name(kvm_name, sizeof(kvm_name), dev, CPR_NOTIFY_KVM);
	if (ret)
		return ret;
	h = cpr_state_get_section(st, name, &len);
	if (!h)
		return cpr_err(-ENOENT, "%s: no saved vector state ('%s') in the CPR state",
			       dev, name);
	if (len < sizeof(*h) || h->version != CPR_MSI_SEC_VERSION ||
	    h->nr > CPR_VECTORS_MAX ||
	    len != sizeof(*h) + h->nr * sizeof(*sv))
		return cpr_err(-EBADMSG, "%s: section '%s' (%zu bytes) is not vector state v%d",
			       dev, name, len, CPR_MSI_SEC_VERSION);
	vs = vectors_alloc(st, dev, h->type, h->nr);
	if (!vs)
		return -EINVAL;
	vs->reused = true;
	fds = malloc(2 * vs->nr * sizeof(*fds));
	if (!fds) {
		free(vs);
		return cpr_err(-ENOMEM, "%s: fds of %u vectors", dev, h->nr);
	}
	cpr_state_find_fds(st, irq_name, vs->nr, fds);
	cpr_state_find_fds(st, kvm_name, vs->nr, fds + vs->nr);

	sv = (const struct cpr_msi_sec_vec *)(h + 1);
	for (i = 0; i < vs->nr; i++) {
		struct cpr_vector *v = &vs->v[i];

		v->msg.addr_lo = sv[i].addr_lo;
		v->msg.addr_hi = sv[i].addr_hi;
		v->msg.data = sv[i].data;
		v->masked = sv[i].flags & CPR_VEC_F_MASKED;
		v->pending = sv[i].flags & CPR_VEC_F_PENDING;
		v->lapic_pending = sv[i].flags & CPR_VEC_F_LAPIC_PENDING;
		v->interrupt_fd = fds[i];
		v->kvm_fd = fds[vs->nr + i];
	}
	free(fds);

	if (vm) {
		ret = cpr_vectors_attach(vs, vm);
		if (ret) {
			free(vs);
			return ret;
		}
	}
	*out = vs;
	return 0;
}
