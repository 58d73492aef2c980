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
static __thread bool last_printed;
static bool log_quiet, errors_quiet;
static __thread bool thread_quiet;

void cpr_log_set_quiet(bool quiet)
{
	log_quiet = quiet;
}

void cpr_log_set_errors_quiet(bool quiet)
{
	errors_quiet = quiet;
}

bool cpr_last_error_printed(void)
{
	return last_printed;
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
	last_printed = false;
}

/*
 * The message is built apart from last_error: callers wrap the previous
 * error in the next one (cpr_err(..., "...: %s", cpr_last_error())).  The
 * errno text is added once: not again when a wrapped message ends with it.
 */
int cpr_err(int err, const char *fmt, ...)
{
	char msg[CPR_ERRMSG_MAX], tail[64];
	size_t len, tlen;
	va_list ap;
	int n;

	if (err < 0)
		err = -err;
	if (!err)
		err = EIO;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		msg[0] = '\0';
	len = strlen(msg);
	tlen = snprintf(tail, sizeof(tail), "(errno %d)", err);
	if (len < tlen || strcmp(msg + len - tlen, tail))
		snprintf(msg + len, sizeof(msg) - len, ": %s %s", strerror(err),
			 tail);
	memcpy(last_error, msg, sizeof(last_error));

	last_printed = !log_quiet && !thread_quiet && !errors_quiet;
	if (last_printed)
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
