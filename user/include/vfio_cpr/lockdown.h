/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Lockdown: "the successor does not touch the device", enforced by the
 * kernel.
 *
 * cpr_lockdown_install() puts a seccomp filter on the process that makes
 * every VFIO / iommufd setup ioctl fail, whoever issues it and however (the
 * library, a direct ioctl(2), a 32-bit int 0x80 or an x32 call).  Seccomp
 * filters are inherited across fork and execve and cannot be removed: a
 * predecessor installs it just before it execs its successor (or a
 * launcher in the child it forks for a socket successor, before execve),
 * and the successor runs under it from its first instruction.  The
 * predecessor itself stays under it if the exec fails and it runs on: it
 * was about to stop touching the device anyway.
 *
 * A refused ioctl is not executed: the filter traps it (SECCOMP_RET_TRAP)
 * and a SIGSYS handler makes it return -1 with errno CPR_LOCKDOWN_ERRNO,
 * counts it by name and writes one KTAP diagnostic line on stderr:
 *
 *   # vfio_cpr lockdown: VFIO_DEVICE_SET_IRQS on fd 12 refused: a successor
 *     must not touch the device
 *
 * (one line).  So a refused call is caught even when the caller ignores
 * its return value: a test checks cpr_lockdown_violations().  Signal
 * handlers do not survive execve: a successor calls cpr_lockdown_enter()
 * first thing in main().  Until then a refused ioctl kills the process
 * with SIGSYS (which still fails a test).
 *
 * The few VFIO_DEVICE_SET_IRQS a successor legitimately needs (software
 * triggers, INTx unmask by ioctl, growing MSI-X) go through the device
 * helper process (vfio_helper.h), which is forked before the lockdown and
 * not under it.
 *
 * Refused: VFIO_GROUP_SET_CONTAINER, VFIO_SET_IOMMU, VFIO_GROUP_GET_DEVICE_FD,
 * VFIO_DEVICE_RESET, VFIO_DEVICE_SET_IRQS, and, when built against uapi
 * headers that have them (6.6+), VFIO_DEVICE_BIND_IOMMUFD,
 * VFIO_DEVICE_ATTACH_IOMMUFD_PT and IOMMU_IOAS_ALLOC (built against older
 * headers the library cannot issue them either).  The request is compared
 * on its low 32 bits, as the kernel reads it (an unsigned int): high bits
 * set in the argument do not get past.  Everything else passes through to
 * the kernel untouched.
 *
 * x86_64 only; elsewhere cpr_lockdown_install() fails with -EOPNOTSUPP.
 */
#ifndef VFIO_CPR_LOCKDOWN_H
#define VFIO_CPR_LOCKDOWN_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * errno of a refused ioctl.  EROFS ("read-only file system") because no
 * VFIO or iommufd ioctl ever returns it (they give EINVAL, ENOTTY, EBUSY,
 * EPERM, EFAULT, ENODEV, ENOMEM, ENOSPC, EEXIST, ENOENT, EOPNOTSUPP,
 * ENXIO...), so a refusal cannot be mistaken for the kernel's answer, and
 * because the device is exactly that to a successor: read-only.
 */
#define CPR_LOCKDOWN_ERRNO	EROFS

/*
 * The name under which system calls of the ia32 (int 0x80) and x32 ABIs
 * are counted: refused whatever they are.
 */
#define CPR_LOCKDOWN_ABI_NAME	"ia32/x32 system call"

/* How many of the last refused ioctls are remembered by name and fd. */
#define CPR_LOCKDOWN_LAST	8

/*
 * Whether this kernel can run the filter (seccomp filters with
 * SECCOMP_RET_TRAP: CONFIG_SECCOMP_FILTER) and this is x86_64.
 */
bool cpr_lockdown_available(void);

/*
 * Set PR_SET_NO_NEW_PRIVS, install the SIGSYS handler and the filter (on
 * every thread of the process).  If the filter is already in place (from
 * this process or inherited) only the handler is installed: filters are
 * never stacked twice.  0, or -errno with the reason in cpr_last_error()
 * (-EOPNOTSUPP: not x86_64, or a kernel without seccomp filters).
 */
int cpr_lockdown_install(void);

/*
 * A successor's first call: install the SIGSYS handler, so that refused
 * ioctls fail with CPR_LOCKDOWN_ERRNO and are counted instead of killing
 * the process.  0 if the filter is in place, -ENOENT (with a message) if
 * it is not (the handler is installed anyway).
 */
int cpr_lockdown_enter(void);

/* True if the filter is in place in this process (asks the kernel). */
bool cpr_lockdown_active(void);

/* Number of ioctls refused in this process image so far. */
unsigned int cpr_lockdown_violations(void);

/* Refusals of the ioctl called @name (e.g. "VFIO_DEVICE_RESET"). */
unsigned int cpr_lockdown_violations_of(const char *name);

/*
 * The last refused ioctls (up to CPR_LOCKDOWN_LAST, oldest first) into
 * @buf, for a failure message: "VFIO_DEVICE_SET_IRQS on fd 12,
 * VFIO_DEVICE_RESET on fd 12", or "none".  Returns @buf.
 */
const char *cpr_lockdown_describe(char *buf, size_t size);

/*
 * The ioctls the filter refuses: the name and request of the @i-th, NULL
 * (and 0) past the end.
 */
const char *cpr_lockdown_ioctl_name(unsigned int i);
unsigned long cpr_lockdown_ioctl_request(unsigned int i);

#endif /* VFIO_CPR_LOCKDOWN_H */
