// SPDX-License-Identifier: GPL-2.0-only
/*
 * A vector set in the CPR state: the "<dev>_msi" section that says which
 * entries are in use and how each stands (message, mask, pending bits),
 * written at every detach, and the successor's claim, which rebuilds
 * exactly that set from the section and the inherited fds.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "vfio_cpr/log.h"
#include "vfio_cpr/state.h"
#include "vfio_cpr/vectors.h"

#include "internal.h"

/*
 * Layout of the "<dev>_msi" section: the header, a record per vector, and
 * in version 2 the vectors' entries (__u32 each, ascending).  Version 1
 * holds entries 0 .. nr - 1 and had the table size's field reserved (0:
 * a table of nr).
 */
#define CPR_MSI_SEC_V1		1
#define CPR_MSI_SEC_V2		2

#define CPR_VEC_F_MASKED	0x1
#define CPR_VEC_F_PENDING	0x2
#define CPR_VEC_F_LAPIC_PENDING	0x4

struct cpr_msi_sec_hdr {
	__u32 version;
	__u32 type;
	__u32 nr;
	__u32 table_size;
};

struct cpr_msi_sec_vec {
	__u32 addr_lo;
	__u32 addr_hi;
	__u32 data;
	__u32 flags;
};

static int msi_section_name(char *buf, size_t size, const char *dev)
{
	int n = snprintf(buf, size, "%s%s", dev, CPR_SEC_MSI_SUFFIX);

	if (n < 0 || (size_t)n >= size)
		return cpr_err(-ENAMETOOLONG, "section name for device '%s'",
			       dev);
	return 0;
}

/* Entries 0 .. nr - 1: what the section's version 1 can say. */
static bool vectors_dense(const struct cpr_vectors *vs)
{
	return vs->v[vs->nr - 1].entry == vs->nr - 1;
}

int cpr_vectors_save(struct cpr_vectors *vs)
{
	const bool v1 = vectors_dense(vs);
	char name[CPR_NAME_MAX + 1];
	struct cpr_msi_sec_hdr *h;
	struct cpr_msi_sec_vec *sv;
	size_t len = sizeof(*h) + vs->nr * (sizeof(*sv) + (v1 ? 0 : 4));
	unsigned int i;
	__u32 *entry;
	int ret;

	ret = msi_section_name(name, sizeof(name), vs->dev);
	if (ret)
		return ret;
	h = calloc(1, len);
	if (!h)
		return cpr_err(-ENOMEM, "%s: MSI section of %zu bytes", vs->dev,
			       len);
	h->version = v1 ? CPR_MSI_SEC_V1 : CPR_MSI_SEC_V2;
	h->type = vs->type;
	h->nr = vs->nr;
	h->table_size = vs->table_size;
	sv = (struct cpr_msi_sec_vec *)(h + 1);
	entry = (__u32 *)(sv + vs->nr);
	for (i = 0; i < vs->nr; i++) {
		const struct cpr_vector *v = &vs->v[i];

		sv[i].addr_lo = v->msg.addr_lo;
		sv[i].addr_hi = v->msg.addr_hi;
		sv[i].data = v->msg.data;
		sv[i].flags = (v->masked ? CPR_VEC_F_MASKED : 0) |
			      (v->pending ? CPR_VEC_F_PENDING : 0) |
			      (v->lapic_pending ? CPR_VEC_F_LAPIC_PENDING : 0);
		if (!v1)
			entry[i] = v->entry;
	}
	ret = cpr_state_set_section(vs->st, name, h, len);
	free(h);
	return ret;
}

/*
 * The section's vectors and table size: version 1 (entries 0 .. nr - 1,
 * a table of nr unless it says more) or 2 (the entries it names).
 */
static struct cpr_vectors *vectors_of_section(struct cpr_state *st,
					      const char *dev,
					      const char *name,
					      const struct cpr_msi_sec_hdr *h,
					      size_t len)
{
	const size_t vec = sizeof(struct cpr_msi_sec_vec);
	const bool v2 = len >= sizeof(*h) && h->version == CPR_MSI_SEC_V2;
	unsigned int i, table;
	struct cpr_vectors *vs;
	const __u32 *entry;

	if (len < sizeof(*h) || (!v2 && h->version != CPR_MSI_SEC_V1) ||
	    h->nr > CPR_VECTORS_MAX ||
	    len != sizeof(*h) + h->nr * (vec + (v2 ? 4 : 0))) {
		cpr_err(-EBADMSG, "%s: section '%s' (%zu bytes) is not vector state v%d or v%d",
			dev, name, len, CPR_MSI_SEC_V1, CPR_MSI_SEC_V2);
		return NULL;
	}
	entry = (const __u32 *)((const struct cpr_msi_sec_vec *)(h + 1) +
				h->nr);
	table = h->table_size ? h->table_size : h->nr;
	for (i = 0; v2 && i < h->nr; i++) {
		if (entry[i] >= table) {
			cpr_err(-EBADMSG, "%s: section '%s' names entry %u, beyond its table of %u",
				dev, name, entry[i], table);
			return NULL;
		}
		if (i && entry[i] <= entry[i - 1]) {
			cpr_err(-EBADMSG, "%s: section '%s' names entry %u after entry %u: out of order",
				dev, name, entry[i], entry[i - 1]);
			return NULL;
		}
	}
	vs = cpr_vectors_alloc(st, dev, h->type, table, h->nr);
	for (i = 0; vs && v2 && i < h->nr; i++)
		vs->v[i].entry = entry[i];
	return vs;
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
		ret = cpr_vector_fd_name(irq_name, sizeof(irq_name), dev,
					 CPR_NOTIFY_INTERRUPT);
	if (!ret)
		ret = cpr_vector_fd_name(kvm_name, sizeof(kvm_name), dev,
					 CPR_NOTIFY_KVM);
	if (ret)
		return ret;
	h = cpr_state_get_section(st, name, &len);
	if (!h)
		return cpr_err(-ENOENT, "%s: no saved vector state ('%s') in the CPR state",
			       dev, name);
	vs = vectors_of_section(st, dev, name, h, len);
	if (!vs)
		return -EBADMSG;
	vs->reused = true;
	fds = malloc(2 * vs->nr * sizeof(*fds));
	if (!fds) {
		free(vs);
		return cpr_err(-ENOMEM, "%s: fds of %u vectors", dev, h->nr);
	}
	if (vectors_dense(vs)) {
		cpr_state_find_fds(st, irq_name, vs->nr, fds);
		cpr_state_find_fds(st, kvm_name, vs->nr, fds + vs->nr);
	} else {
		for (i = 0; i < vs->nr; i++) {
			fds[i] = cpr_state_find_fd(st, irq_name, vs->v[i].entry);
			fds[vs->nr + i] = cpr_state_find_fd(st, kvm_name,
							    vs->v[i].entry);
		}
	}

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
