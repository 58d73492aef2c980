/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Declarations the library's files share among themselves and nobody
 * else: not part of the API in include/vfio_cpr/, which callers use.
 * Grouped by the file that defines them.
 */
#ifndef VFIO_CPR_INTERNAL_H
#define VFIO_CPR_INTERNAL_H

#include <stdbool.h>
#include <linux/types.h>

#include "vfio_cpr/kvm.h"
#include "vfio_cpr/vfio.h"

/*
 * kvm.c: 0, or -ESHUTDOWN with a message starting with @what once
 * cpr_vm_quiesce() closed the VM fd.
 */
int cpr_vm_live(struct cpr_vm *vm, const char *what);

/*
 * fd.c: call @fn on every fd open in this process (/proc/self/fd), until
 * it returns nonzero; that, or -errno if the table cannot be read.
 */
typedef int (*cpr_fd_visit_t)(int fd, void *arg);

int cpr_visit_open_fds(cpr_fd_visit_t fn, void *arg);

/* vectors.c, for cpr_vm_destroy(): end a relay left running. */
void cpr_vm_relay_end(struct cpr_vm *vm);

/*
 * vfio_cdev.c, for vfio.c: the cdev interface's fresh open (sets
 * device_fd, iommufd, ids, saves the section; the caller saves the fds),
 * section load/delete, and its DMA operations.
 */
int cpr_vfio_cdev_supported(const char *name, bool is_mdev);
int cpr_vfio_cdev_open_fresh(struct cpr_vfio_dev *d);
int cpr_vfio_cdev_load(struct cpr_vfio_dev *d);
void cpr_vfio_cdev_forget(struct cpr_vfio_dev *d);
int cpr_vfio_cdev_dma_map(struct cpr_vfio_dev *d, __u64 iova, void *vaddr,
			  int fd, __u64 off, __u64 size);
int cpr_vfio_cdev_dma_unmap(struct cpr_vfio_dev *d, __u64 iova, __u64 size);
int cpr_vfio_cdev_change_process(struct cpr_vfio_dev *d);

#endif /* VFIO_CPR_INTERNAL_H */
