/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Error reporting for the vfio_cpr library.
 *
 * Every failing call in the library goes through cpr_err(): it formats what
 * was being done and on which object, appends the errno text (once: not
 * again after a wrapped message that ends with it), keeps the message for
 * cpr_last_error() and prints it on stderr (unless quiet), then returns
 * -errno so that the caller can simply "return cpr_err(...)".  A caller
 * that prints failures itself makes the library quiet about them, so that
 * nothing is read twice.
 */
#ifndef VFIO_CPR_LOG_H
#define VFIO_CPR_LOG_H

#include <stdbool.h>

#include "compiler.h"

#define CPR_ERRMSG_MAX 512

/*
 * Record and print an error.  @err is an errno value, negative or positive;
 * 0 is treated as EIO so that a failure can never be reported as success.
 * Returns the negative errno.
 */
int cpr_err(int err, const char *fmt, ...) __printf(2, 3);

/* Informational line on stderr, prefixed like errors; silenced by quiet. */
void cpr_info(const char *fmt, ...) __printf(1, 2);

/* The last message recorded by cpr_err() in this thread ("" if none). */
const char *cpr_last_error(void);
void cpr_clear_error(void);

/* Stop printing errors and info lines on stderr (errors are still recorded). */
void cpr_log_set_quiet(bool quiet);
/*
 * Stop printing errors only, for a caller that prints each failure itself
 * (cpr_last_error()); info lines still print.
 */
void cpr_log_set_errors_quiet(bool quiet);
/* Whether cpr_err() printed the last error on stderr when it recorded it. */
bool cpr_last_error_printed(void);
/* The same for the calling thread only (e.g. one that polls with timeouts). */
void cpr_log_set_thread_quiet(bool quiet);

#endif /* VFIO_CPR_LOG_H */
