// SPDX-License-Identifier: GPL-2.0-only
/*
 * Error recording and printing for the vfio_cpr library.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfio_cpr/log.h"

static __thread char last_error[CPR_ERRMSG_MAX];
static bool log_quiet;
static __thread bool thread_quiet;

void cpr_log_set_quiet(bool quiet)
{
	log_quiet = quiet;
}

void cpr_log_set_thread_quiet(bool quiet)
{
	thread_quiet = quiet;
}

const char *cpr_last_error(void)
{
	return last_error;
}

void cpr_clear_error(void)
{
	last_error[0] = '\0';
}

int cpr_err(int err, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (err < 0)
		err = -err;
	if (!err)
		err = EIO;

	va_start(ap, fmt);
	n = vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n < sizeof(last_error))
		snprintf(last_error + n, sizeof(last_error) - n, ": %s (errno %d)",
			 strerror(err), err);

	if (!log_quiet && !thread_quiet)
		fprintf(stderr, "vfio_cpr: %s\n", last_error);
	return -err;
}

void cpr_info(const char *fmt, ...)
{
	va_list ap;

	if (log_quiet || thread_quiet)
		return;
	va_start(ap, fmt);
	fputs("vfio_cpr: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}
