/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The few compiler attributes the library uses, under their kernel names
 * (userspace has no <linux/compiler.h>).  This is the one file that spells
 * __attribute__ out: checkpatch's PREFER_DEFINED_ATTRIBUTE_MACRO, which
 * asks everyone else to use these macros, is expected here exactly as in
 * the kernel's own compiler_attributes.h (scripts/checkpatch.sh says so).
 */
#ifndef VFIO_CPR_COMPILER_H
#define VFIO_CPR_COMPILER_H

#ifndef __printf
#define __printf(a, b)	__attribute__((format(printf, a, b)))
#endif

#ifndef __noreturn
#define __noreturn	__attribute__((__noreturn__))
#endif

#endif /* VFIO_CPR_COMPILER_H */
