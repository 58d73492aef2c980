/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The few compiler attributes the library uses, under their kernel names
 * (userspace has no <linux/compiler.h>).
 */
#ifndef VFIO_CPR_COMPILER_H
#define VFIO_CPR_COMPILER_H

#ifndef __printf
#define __printf(fmt_idx, args_idx)				\
	__attribute__((format(printf, fmt_idx,		\
			      args_idx)))
#endif

#ifndef __noreturn
#define __noreturn						\
	__attribute__((						\
		__noreturn__))
#endif

#endif /* VFIO_CPR_COMPILER_H */
