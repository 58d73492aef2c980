// SPDX-License-Identifier: GPL-2.0-only
/*
 * What an open file descriptor is: eventfd, memfd, KVM or VFIO object, ...
 *
 * The kind is read from the /proc/self/fd/N link, which names anonymous
 * inodes ("anon_inode:[eventfd]", "anon_inode:kvm-vm"), device nodes by the
 * path they were opened at ("/dev/kvm", "/dev/vfio/12") and memfds as
 * "/memfd:<name> (deleted)".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vfio_cpr/log.h"
#include "vfio_cpr/state.h"

static const char * const fd_kind_names[CPR_FD_KIND_MAX] = {
	[CPR_FD_OTHER]		= "other",
	[CPR_FD_EVENTFD]	= "eventfd",
	[CPR_FD_MEMFD]		= "memfd",
	[CPR_FD_KVM]		= "kvm",
	[CPR_FD_KVM_VM]		= "kvm-vm",
	[CPR_FD_KVM_VCPU]	= "kvm-vcpu",
	[CPR_FD_KVM_DEVICE]	= "kvm-device",
	[CPR_FD_VFIO_CONTAINER]	= "vfio-container",
	[CPR_FD_VFIO_GROUP]	= "vfio-group",
	[CPR_FD_VFIO_DEVICE]	= "vfio-device",
	[CPR_FD_IOMMUFD]	= "iommufd",
	[CPR_FD_SOCKET]		= "socket",
	[CPR_FD_PIPE]		= "pipe",
};

const char *cpr_fd_kind_name(int kind)
{
	if (kind < 0 || kind >= CPR_FD_KIND_MAX)
		return "invalid";
	return fd_kind_names[kind];
}

/* If @s starts with @prefix, the rest of @s; else NULL. */
static const char *skip_prefix(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);

	return strncmp(s, prefix, n) ? NULL : s + n;
}

/* @s is one or more decimal digits and nothing else. */
static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* An anonymous inode named "kvm-...". */
static int kvm_anon_kind(const char *name)
{
	const char *rest;

	if (!strcmp(name, "vm"))
		return CPR_FD_KVM_VM;
	/* "kvm-vcpu:N" since Linux 4.x, plain "kvm-vcpu" before. */
	if (!strcmp(name, "vcpu"))
		return CPR_FD_KVM_VCPU;
	rest = skip_prefix(name, "vcpu:");
	if (rest && all_digits(rest))
		return CPR_FD_KVM_VCPU;
	/* Not devices: statistics fds, "kvm-vm-stats", "kvm-vcpu-stats:N". */
	if (strstr(name, "-stats"))
		return CPR_FD_OTHER;
	/* KVM_CREATE_DEVICE: "kvm-vfio", "kvm-arm-vgic-v3", "kvm-xive", ... */
	return CPR_FD_KVM_DEVICE;
}

/* A path under /dev/vfio/. */
static int vfio_node_kind(const char *name)
{
	const char *rest;

	if (!strcmp(name, "vfio"))
		return CPR_FD_VFIO_CONTAINER;
	if (all_digits(name))
		return CPR_FD_VFIO_GROUP;
	rest = skip_prefix(name, "noiommu-");
	if (rest && all_digits(rest))
		return CPR_FD_VFIO_GROUP;
	rest = skip_prefix(name, "devices/vfio");
	if (rest && all_digits(rest))
		return CPR_FD_VFIO_DEVICE;
	return CPR_FD_OTHER;
}

static int link_kind(int fd, const char *target)
{
	const char *rest;

	if (!strcmp(target, "anon_inode:[eventfd]"))
		return CPR_FD_EVENTFD;
	if (!strcmp(target, "anon_inode:[vfio-device]"))
		return CPR_FD_VFIO_DEVICE;
	rest = skip_prefix(target, "anon_inode:kvm-");
	if (rest)
		return kvm_anon_kind(rest);
	/* A memfd answers F_GET_SEALS; a file merely named so does not. */
	if (skip_prefix(target, "/memfd:"))
		return fcntl(fd, F_GET_SEALS) < 0 ? CPR_FD_OTHER : CPR_FD_MEMFD;
	if (!strcmp(target, "/dev/kvm"))
		return CPR_FD_KVM;
	if (!strcmp(target, "/dev/iommu"))
		return CPR_FD_IOMMUFD;
	rest = skip_prefix(target, "/dev/vfio/");
	if (rest)
		return vfio_node_kind(rest);
	if (skip_prefix(target, "socket:["))
		return CPR_FD_SOCKET;
	if (skip_prefix(target, "pipe:["))
		return CPR_FD_PIPE;
	return CPR_FD_OTHER;
}

int cpr_fd_kind_of(int fd)
{
	char path[64], target[PATH_MAX];
	ssize_t n;

	/* A query: "not open" is an answer, not an error worth a message. */
	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return -EBADF;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0) {
		/* Closed by another thread since the F_GETFD above. */
		if (errno == ENOENT && fcntl(fd, F_GETFD) < 0)
			return -EBADF;
		return cpr_err(-errno, "read the link %s to tell what fd %d is",
			       path, fd);
	}
	target[n] = '\0';
	return link_kind(fd, target);
}
