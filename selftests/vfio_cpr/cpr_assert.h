/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The one assertion layer of the vfio_cpr selftests.
 *
 * Every check of every test - in a harness test child, in a fixture setup,
 * in an exec'd successor (which no longer has the harness: it lives in the
 * predecessor's image) and in a socket successor (a process of its own) -
 * fails the same way: it prints what broke, then exits with KSFT_FAIL.  The
 * exit status is the verdict the harness reads: an exec'd successor is the
 * harness's test child itself, a socket successor's status is passed up by
 * the predecessor that waits for it.
 *
 * A failure prints, each line a KTAP diagnostic:
 *
 *   # FAIL <file>:<line>: <context>: <the kernel behaviour that broke>
 *   #   expected <expression as written>, seen <value(s)>
 *   #   <the library's last error, when a library call failed and the
 *        library, quieted, did not print it above>
 *   #   <errno and its text, when a syscall failed>
 *
 * The message names the behaviour in words ("KVM did not inject the
 * interrupt already pending on vector 7's eventfd when its irqfd was
 * assigned in VM #1"); the context (cpr_test_context()) names the device
 * by address and model, the IRQ type and the handoff mode.  errno is
 * printed only by the checks of syscalls (CPR_ASSERT_SYS), the library's
 * error only by the checks of library calls (CPR_ASSERT_OK,
 * CPR_ASSERT_RET_OK), so that nothing stale and nothing twice reaches the
 * reader.
 */
#ifndef VFIO_CPR_ASSERT_H
#define VFIO_CPR_ASSERT_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfio_cpr/compiler.h"
#include "vfio_cpr/log.h"

#define CPR_TEST_EXIT_FAIL	1	/* KSFT_FAIL */

/* What the test is working on, printed with every failure. */
static char cpr_test_ctx[256];
/* A check failed and said why: exit handlers must not say it again. */
static bool cpr_test_failed;

static inline void __printf(1, 2) cpr_test_context(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cpr_test_ctx, sizeof(cpr_test_ctx), fmt, ap);
	va_end(ap);
}

/* What a failed check saw besides the values. */
enum cpr_fail_extra {
	CPR_FAIL_PLAIN,		/* a value comparison */
	CPR_FAIL_LIBRARY,	/* a library call: its last error */
	CPR_FAIL_SYSCALL,	/* a syscall: errno */
};

static inline void __printf(6, 7) __noreturn
cpr_test_fail(const char *file, int line, const char *expect,
	      const char *seen, enum cpr_fail_extra extra,
	      const char *fmt, ...)
{
	int err = errno;
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	fflush(stdout);
	fprintf(stderr, "# FAIL %s:%d: %s%s%s\n", file, line, cpr_test_ctx,
		cpr_test_ctx[0] ? ": " : "", what);
	if (expect)
		fprintf(stderr, "#   expected %s%s%s\n", expect,
			seen ? ", seen " : "", seen ? seen : "");
	/* Unless the library printed it already (it was not quieted). */
	if (extra == CPR_FAIL_LIBRARY && cpr_last_error()[0] &&
	    !cpr_last_error_printed())
		fprintf(stderr, "#   library: %s\n", cpr_last_error());
	if (extra == CPR_FAIL_SYSCALL)
		fprintf(stderr, "#   errno %d: %s\n", err, strerror(err));
	fflush(NULL);
	cpr_test_failed = true;
	exit(CPR_TEST_EXIT_FAIL);
}

#define CPR_FAIL(fmt, ...)						\
	cpr_test_fail(__FILE__, __LINE__, NULL, NULL, CPR_FAIL_PLAIN,	\
		      fmt, ##__VA_ARGS__)

/* @a OP @b, both as signed 64-bit values. */
#define CPR_ASSERT_OP(a, op, b, fmt, ...) do {				\
	long long __a = (long long)(a);					\
	long long __b = (long long)(b);					\
	char __seen[64];						\
									\
	if (__a op __b)							\
		break;							\
	snprintf(__seen, sizeof(__seen), "%lld " #op " %lld", __a, __b); \
	cpr_test_fail(__FILE__, __LINE__, #a " " #op " " #b, __seen,	\
		      CPR_FAIL_PLAIN, fmt, ##__VA_ARGS__);		\
} while (0)

#define CPR_ASSERT_EQ(a, b, fmt, ...) CPR_ASSERT_OP(a, ==, b, fmt, ##__VA_ARGS__)
#define CPR_ASSERT_NE(a, b, fmt, ...) CPR_ASSERT_OP(a, !=, b, fmt, ##__VA_ARGS__)
#define CPR_ASSERT_LT(a, b, fmt, ...) CPR_ASSERT_OP(a, <, b, fmt, ##__VA_ARGS__)
#define CPR_ASSERT_LE(a, b, fmt, ...) CPR_ASSERT_OP(a, <=, b, fmt, ##__VA_ARGS__)
#define CPR_ASSERT_GT(a, b, fmt, ...) CPR_ASSERT_OP(a, >, b, fmt, ##__VA_ARGS__)
#define CPR_ASSERT_GE(a, b, fmt, ...) CPR_ASSERT_OP(a, >=, b, fmt, ##__VA_ARGS__)

#define CPR_ASSERT_TRUE(cond, fmt, ...) do {				\
	if (!(cond))							\
		cpr_test_fail(__FILE__, __LINE__, #cond, "false",	\
			      CPR_FAIL_PLAIN, fmt, ##__VA_ARGS__);	\
} while (0)

#define CPR_ASSERT_FALSE(cond, fmt, ...) do {				\
	if (cond)							\
		cpr_test_fail(__FILE__, __LINE__, "!(" #cond ")", "true", \
			      CPR_FAIL_PLAIN, fmt, ##__VA_ARGS__);	\
} while (0)

/*
 * A library call returning 0 or -errno must return 0; on failure the
 * library's own message (operation, object, errno) is printed.
 */
#define CPR_ASSERT_OK(call, fmt, ...) do {				\
	int __ret;							\
	char __seen[32];						\
									\
	cpr_clear_error();						\
	__ret = (call);							\
	if (!__ret)							\
		break;							\
	snprintf(__seen, sizeof(__seen), "%d", __ret);			\
	cpr_test_fail(__FILE__, __LINE__, #call " == 0", __seen,	\
		      CPR_FAIL_LIBRARY, fmt, ##__VA_ARGS__);		\
} while (0)

/*
 * The same for @ret, what a library call made just before returned (the
 * caller had to look at it first, e.g. for -ENOENT): its error is not
 * cleared, so that it is still there to print.
 */
#define CPR_ASSERT_RET_OK(ret, fmt, ...) do {				\
	int __ret = (ret);						\
	char __seen[32];						\
									\
	if (!__ret)							\
		break;							\
	snprintf(__seen, sizeof(__seen), "%d", __ret);			\
	cpr_test_fail(__FILE__, __LINE__, #ret " == 0", __seen,	\
		      CPR_FAIL_LIBRARY, fmt, ##__VA_ARGS__);		\
} while (0)

/* A syscall returning -1 with errno must not; errno is printed. */
#define CPR_ASSERT_SYS(call, fmt, ...) do {				\
	errno = 0;							\
	if ((call) != -1)						\
		break;							\
	cpr_test_fail(__FILE__, __LINE__, #call " != -1", "-1",		\
		      CPR_FAIL_SYSCALL, fmt, ##__VA_ARGS__);		\
} while (0)

/*
 * The whole program cannot run here (no /dev/kvm, no device given): say
 * why and exit KSFT_SKIP.  Printed as one skipped test named after the
 * program - "1..0 # SKIP" alone is refused by the kernel's KTAP parser -
 * after the version line unless a runner above prints it
 * (KSFT_TAP_LEVEL, as kselftest.h does).
 */
static inline void __printf(1, 2) __noreturn cpr_test_skip_all(const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (!getenv("KSFT_TAP_LEVEL"))
		printf("TAP version 13\n");
	printf("1..1\nok 1 %s # SKIP %s\n", program_invocation_short_name, why);
	fflush(NULL);
	exit(4);	/* KSFT_SKIP */
}

#endif /* VFIO_CPR_ASSERT_H */
