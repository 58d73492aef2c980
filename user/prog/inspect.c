// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-cpr inspect: decode and validate a saved CPR state.
 *
 * The state comes from an open fd (a sealed memfd, e.g. the one named by
 * $VFIO_CPR_STATE_FD: then the recorded fds are checked to be open here
 * and of their recorded kind) or from a file written by run --dump-state
 * (structure and checksum only: the fds belong to another process).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vfio_cpr/handoff.h"
#include "vfio_cpr/log.h"
#include "vfio_cpr_prog.h"

static int read_file(const char *path, void **buf, size_t *len)
{
	struct stat sb;
	size_t off = 0;
	char *p;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cpr_err(-errno, "opening %s", path);
	if (fstat(fd, &sb) || sb.st_size > CPR_STATE_MAX) {
		close(fd);
		return cpr_err(sb.st_size > CPR_STATE_MAX ? -EFBIG : -errno,
			       "%s: %lld bytes (limit %u)", path,
			       (long long)sb.st_size, CPR_STATE_MAX);
	}
	p = malloc(sb.st_size ? sb.st_size : 1);
	if (!p) {
		close(fd);
		return cpr_err(-ENOMEM, "%lld bytes for %s", (long long)sb.st_size,
			       path);
	}
	while (off < (size_t)sb.st_size) {
		ssize_t n = read(fd, p + off, sb.st_size - off);

		if (n <= 0)
			break;
		off += n;
	}
	close(fd);
	*buf = p;
	*len = off;
	return 0;
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", (unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void print_state(const struct cpr_state *st, const void *buf, size_t len,
			bool fds_checked, bool json)
{
	const struct cpr_state_header *h = buf;
	unsigned int i, nfd = cpr_state_nr_fds(st);
	unsigned int nsec = cpr_state_nr_sections(st);

	if (json) {
		printf("{\"valid\":true,\"bytes\":%zu,\"version\":%u,", len,
		       h->version);
		printf("\"records\":%u,\"checksum\":\"0x%08x\",", h->nr_records,
		       h->checksum);
		printf("\"fds_checked\":%s,\"fds\":[",
		       fds_checked ? "true" : "false");
		for (i = 0; i < nfd; i++) {
			const struct cpr_fd_rec *r = cpr_state_fd_at(st, i);

			printf("%s{\"name\":", i ? "," : "");
			json_str(stdout, r->name);
			printf(",\"index\":%u,\"fd\":%d,\"kind\":\"%s\"}", r->index,
			       r->fd, cpr_fd_kind_name(r->kind));
		}
		printf("],\"sections\":[");
	} else {
		printf("state: %zu bytes, version %u, %u records, checksum 0x%08x: valid%s\n",
		       len, h->version, h->nr_records, h->checksum,
		       fds_checked ? " (every fd open here and of its kind)" : "");
		printf("fds (%u):\n", nfd);
		for (i = 0; i < nfd; i++) {
			const struct cpr_fd_rec *r = cpr_state_fd_at(st, i);

			printf("  %-40s [%4u]  fd %-5d %s\n", r->name, r->index,
			       r->fd, cpr_fd_kind_name(r->kind));
		}
		printf("sections (%u):\n", nsec);
	}
	for (i = 0; i < nsec; i++) {
		const char *name;
		const void *data;
		size_t n;
		__u64 v = 0;

		if (cpr_state_section_at(st, i, &name, &data, &n))
			break;
		if (n == sizeof(v))
			memcpy(&v, data, sizeof(v));
		if (json) {
			printf("%s{\"name\":", i ? "," : "");
			json_str(stdout, name);
			printf(",\"bytes\":%zu", n);
			if (n == sizeof(v))
				printf(",\"u64\":%llu", (unsigned long long)v);
			printf("}");
		} else if (n == sizeof(v)) {
			printf("  %-40s %zu bytes  u64 %llu\n", name, n,
			       (unsigned long long)v);
		} else {
			printf("  %-40s %zu bytes\n", name, n);
		}
	}
	if (json)
		printf("]}\n");
}

int vc_inspect(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum cpr_state_error why = CPR_STATE_OK;
	const char *src = NULL;
	struct cpr_state *st = NULL;
	bool json = false, is_fd;
	size_t len = 0;
	void *buf = NULL;
	char *end;
	long fd = -1;
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "jh", longopts, NULL)) != -1) {
		if (c == 'j') {
			json = true;
		} else {
			fprintf(c == 'h' ? stdout : stderr,
				"usage: vfio-cpr inspect [--json] [FD|FILE]\n");
			return c == 'h' ? VC_EXIT_OK : VC_EXIT_USAGE;
		}
	}
	if (optind + 1 < argc) {
		fprintf(stderr, "usage: vfio-cpr inspect [--json] [FD|FILE]\n");
		return VC_EXIT_USAGE;
	}
	src = optind < argc ? argv[optind] : getenv(CPR_STATE_ENV);
	if (!src) {
		fprintf(stderr, "vfio-cpr inspect: no FD or FILE given and %s is not set\n",
			CPR_STATE_ENV);
		return VC_EXIT_USAGE;
	}
	cpr_log_set_quiet(true);
	errno = 0;
	fd = strtol(src, &end, 10);
	is_fd = *src && !*end && !errno && fd >= 0 && fd <= 0x7fffffff;

	if (is_fd) {
		/* Validates the memfd and its seals, and every recorded fd. */
		ret = cpr_state_from_memfd(fd, CPR_PARSE_CHECK_FDS, &st, &why);
		if (!ret) {
			ret = cpr_state_to_buf(st, &buf, &len);
			if (ret) {
				cpr_state_free(st);
				st = NULL;
			}
		}
	} else {
		ret = read_file(src, &buf, &len);
		if (!ret)
			ret = cpr_state_parse(buf, len, 0, &st, &why);
	}
	if (ret) {
		if (json) {
			printf("{\"valid\":false,\"error\":\"%s\",\"message\":",
			       cpr_state_error_name(why));
			json_str(stdout, cpr_last_error());
			printf("}\n");
		} else {
			/* The message names the fault (the JSON's "error"). */
			printf("state %s: INVALID: %s\n", src, cpr_last_error());
		}
		free(buf);
		return VC_EXIT_LOST;
	}
	print_state(st, buf, len, is_fd, json);
	cpr_state_free(st);
	free(buf);
	return VC_EXIT_OK;
}
