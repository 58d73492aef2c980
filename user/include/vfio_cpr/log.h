/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Error reporting for the vfio_cpr library.
 *
 * Every failing call in the library goes through cpr_err(): it formats what
 * was being done and on which object, appends the errno text, keeps the
 * message for cpr_last_error() and prints it on stderr (unless quiet), then
 * returns -errno so that the caller can simply "return cpr_err(...)".
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

/* Stop printing errors on stderr (they are still recorded). */
void cpr_log_set_quiet(bool quiet);
/* The same for the calling thread only (e.g. one that polls with timeouts). */
void cpr_log_set_thread_quiet(bool quiet);

#endif /* VFIO_CPR_LOG_H */
