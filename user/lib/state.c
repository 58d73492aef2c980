// SPDX-License-Identifier: GPL-2.0-only
/*
 * CPR state store: fds named by (name, index) and named opaque sections.
 * Their serialised form, and the sealed memfd it travels in, are in
 * state_format.c.
 *
 * Both kinds of entry live in a table that keeps insertion order and finds
 * keys through an open addressing hash table (linear probing, backward-shift
 * deletion, so no tombstones): save, find and delete are O(1) on average.
 * Insertion order is an array of entries in which deletions leave holes,
 * squeezed out once they make up a third of it; a count of live entries per
 * block of 64 slots lets the i-th entry be found past the holes in
 * O(i / 64).  Entries are allocated one by one, so the pointers handed out
 * stay put until that entry is deleted.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "vfio_cpr/log.h"
#include "vfio_cpr/state.h"

#include "internal.h"

#define BLK	64		/* slots of order[] per blk_live[] count */

/* ---- Hash table keeping insertion order ---- */

/*
 * A per-process secret in the hash: the keys come from the predecessor,
 * and with a public hash it could pick (name, index) pairs that all land
 * in one probe run and make parsing quadratic (65536 such records took
 * 3 s, 131072 took 12 s).
 */
static __u32 hash_seed[2];

static void __attribute__((constructor)) hash_seed_init(void)
{
	if (getrandom(hash_seed, sizeof(hash_seed), GRND_NONBLOCK) !=
	    sizeof(hash_seed)) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		hash_seed[0] = (__u32)ts.tv_nsec ^ (__u32)getpid() << 16;
		hash_seed[1] = (__u32)ts.tv_sec * 0x9e3779b9u ^ hash_seed[0];
	}
}

/* The name's part of cpr_key_hash(): FNV-1a, seeded. */
static __u32 name_hash(const char *name, size_t len)
{
	__u32 h = 2166136261u ^ hash_seed[0];
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 16777619u;
	}
	return h;
}

/* Mix the index in and avalanche, so that vectors 0..N spread. */
static __u32 index_hash(__u32 h, __u32 index)
{
	h ^= index * 0x9e3779b9u;
	h ^= hash_seed[1];
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

__u32 cpr_key_hash(const char *name, size_t len, __u32 index)
{
	return index_hash(name_hash(name, len), index);
}

/* Slot holding the key, or the empty slot where its probe stops. */
static size_t tab_slot(const struct cpr_table *t, const char *name,
		       size_t len, __u32 index, __u32 h)
{
	size_t mask = t->hash_size - 1;
	size_t i = h & mask;
	struct cpr_entry *e;

	while ((e = t->hash[i])) {
		if (e->hash == h && e->rec.index == index &&
		    e->name_len == len && !memcmp(e->name, name, len))
			break;
		i = (i + 1) & mask;
	}
	return i;
}

struct cpr_entry *cpr_tab_find(const struct cpr_table *t, const char *name,
			       size_t len, __u32 index, __u32 h)
{
	if (!t->hash_size)
		return NULL;
	return t->hash[tab_slot(t, name, len, index, h)];
}

static void hash_put(struct cpr_entry **hash, size_t size,
		     struct cpr_entry *e)
{
	size_t i = e->hash & (size - 1);

	while (hash[i])
		i = (i + 1) & (size - 1);
	hash[i] = e;
}

/*
 * Room for @slots slots of order[] and @live live entries, the hash
 * table's load factor at most 1/2.
 */
int cpr_tab_reserve_n(struct cpr_table *t, size_t slots, size_t live)
{
	struct cpr_entry **hash;
	size_t i, size;

	if (slots > t->order_cap) {
		size_t cap = t->order_cap ? t->order_cap : BLK;
		struct cpr_entry **order;
		unsigned char *blk;

		while (cap < slots)
			cap *= 2;
		blk = realloc(t->blk_live, cap / BLK);
		if (!blk)
			return -ENOMEM;
		memset(blk + t->order_cap / BLK, 0, (cap - t->order_cap) / BLK);
		t->blk_live = blk;
		order = realloc(t->order, cap * sizeof(*order));
		if (!order)
			return -ENOMEM;
		t->order = order;
		t->order_cap = cap;
	}
	if (live * 2 <= t->hash_size)
		return 0;

	size = t->hash_size ? t->hash_size : 32;
	while (size < live * 2)
		size *= 2;
	hash = calloc(size, sizeof(*hash));
	if (!hash)
		return -ENOMEM;
	for (i = 0; i < t->hash_size; i++)
		if (t->hash[i])
			hash_put(hash, size, t->hash[i]);
	free(t->hash);
	t->hash = hash;
	t->hash_size = size;
	return 0;
}

/* Room for one more entry. */
int cpr_tab_reserve(struct cpr_table *t)
{
	return cpr_tab_reserve_n(t, t->nr_slots + 1, t->nr_live + 1);
}

/* Add @e, whose key is not in @t yet, after cpr_tab_reserve() succeeded. */
void cpr_tab_add(struct cpr_table *t, struct cpr_entry *e)
{
	hash_put(t->hash, t->hash_size, e);
	if (t->first_hole == t->nr_slots)
		t->first_hole++;
	e->pos = t->nr_slots;
	t->order[t->nr_slots++] = e;
	t->blk_live[e->pos / BLK]++;
	t->nr_live++;
}

static void tab_compact(struct cpr_table *t)
{
	size_t i, n = 0;

	memset(t->blk_live, 0, t->order_cap / BLK);
	for (i = 0; i < t->nr_slots; i++) {
		if (!t->order[i])
			continue;
		t->order[n] = t->order[i];
		t->order[n]->pos = n;
		t->blk_live[n / BLK]++;
		n++;
	}
	t->nr_slots = n;
	t->first_hole = n;
}

/* Unlink the entry at hash slot @slot and return it. */
static struct cpr_entry *tab_remove(struct cpr_table *t, size_t slot)
{
	size_t mask = t->hash_size - 1;
	struct cpr_entry *e = t->hash[slot];
	size_t i = slot, j = slot, home;

	/*
	 * Backward shift: move later members of the probe run into the gap
	 * unless that would put them before their home slot.
	 */
	for (;;) {
		j = (j + 1) & mask;
		if (!t->hash[j])
			break;
		home = t->hash[j]->hash & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			t->hash[i] = t->hash[j];
			i = j;
		}
	}
	t->hash[i] = NULL;

	t->order[e->pos] = NULL;
	t->blk_live[e->pos / BLK]--;
	t->nr_live--;
	if (e->pos < t->first_hole)
		t->first_hole = e->pos;
	while (t->nr_slots && !t->order[t->nr_slots - 1])
		t->nr_slots--;
	if (t->first_hole > t->nr_slots)
		t->first_hole = t->nr_slots;
	/* Amortised O(1): each squeeze is paid for by the deletions. */
	if ((t->nr_slots - t->nr_live) * 2 > t->nr_live)
		tab_compact(t);
	return e;
}

/* The @i-th live entry in insertion order, or NULL. */
static struct cpr_entry *tab_at(const struct cpr_table *t, size_t i)
{
	size_t blk, slot, rank;

	if (i >= t->nr_live)
		return NULL;
	if (i < t->first_hole)
		return t->order[i];
	/* Every slot below first_hole is live: start at its block. */
	blk = t->first_hole / BLK;
	rank = blk * BLK;
	while (rank + t->blk_live[blk] <= i)
		rank += t->blk_live[blk++];
	for (slot = blk * BLK; slot < t->nr_slots; slot++) {
		if (!t->order[slot])
			continue;
		if (rank == i)
			return t->order[slot];
		rank++;
	}
	return NULL;
}

static void entry_free(struct cpr_entry *e)
{
	if (!e)
		return;
	free(e->data);
	if (!e->in_arena)
		free(e);
}

static void tab_free(struct cpr_table *t)
{
	size_t i;

	for (i = 0; i < t->nr_slots; i++)
		entry_free(t->order[i]);
	free(t->order);
	free(t->blk_live);
	free(t->hash);
}

#define ENTRY_ALIGN	8

static size_t entry_size(size_t name_len)
{
	return (sizeof(struct cpr_entry) + name_len + 1 + ENTRY_ALIGN - 1) &
	       ~(size_t)(ENTRY_ALIGN - 1);
}

/* From @st's arena while it has room, else on its own. */
struct cpr_entry *cpr_entry_new_in(struct cpr_state *st, const char *name,
				   size_t len, __u32 index, __u32 h)
{
	size_t size = entry_size(len);
	struct cpr_entry *e;

	if (st && st->arena && st->arena_size - st->arena_used >= size) {
		e = (struct cpr_entry *)(st->arena + st->arena_used);
		st->arena_used += size;
		memset(e, 0, size);
		e->in_arena = 1;
	} else {
		e = calloc(1, size);
		if (!e)
			return NULL;
	}
	memcpy(e->name, name, len);
	e->name[len] = '\0';
	e->name_len = len;
	e->hash = h;
	e->rec.name = e->name;
	e->rec.index = index;
	e->rec.fd = -1;
	return e;
}

struct cpr_entry *cpr_entry_new(const char *name, size_t len, __u32 index,
				__u32 h)
{
	return cpr_entry_new_in(NULL, name, len, index, h);
}

/* ---- The store ---- */

struct cpr_state *cpr_state_new(void)
{
	struct cpr_state *st = calloc(1, sizeof(*st));

	if (!st)
		cpr_err(-ENOMEM, "allocate a CPR state");
	return st;
}

void cpr_state_free(struct cpr_state *st)
{
	if (!st)
		return;
	tab_free(&st->fds);
	tab_free(&st->sections);
	free(st->arena);
	free(st);
}

/* Length of a valid name, else 0 (and a message when @what is set). */
static size_t name_len_ok(const char *name, const char *what, __u32 index)
{
	size_t len;

	if (!name) {
		if (what)
			cpr_err(-EINVAL, "%s [%u]: no name given", what, index);
		return 0;
	}
	len = strnlen(name, CPR_NAME_MAX + 1);
	if (len && len <= CPR_NAME_MAX)
		return len;
	if (what)
		cpr_err(-EINVAL, "%s '%.40s'[%u]: name must be 1 to %d bytes",
			what, name, index, CPR_NAME_MAX);
	return 0;
}

int cpr_state_save_fd(struct cpr_state *st, const char *name, __u32 index,
		      int fd)
{
	struct cpr_entry *e;
	size_t len;
	__u32 h;
	int kind;

	if (!st)
		return cpr_err(-EINVAL, "save fd %d: no state", fd);
	len = name_len_ok(name, "save fd", index);
	if (!len)
		return -EINVAL;
	kind = cpr_fd_kind_of(fd);
	if (kind == -EBADF)
		return cpr_err(-EBADF, "save fd '%s'[%u]: fd %d is not open",
			       name, index, fd);
	if (kind < 0)
		return cpr_err(kind, "save fd '%s'[%u]: cannot tell what fd %d is",
			       name, index, fd);
	h = cpr_key_hash(name, len, index);
	e = cpr_tab_find(&st->fds, name, len, index, h);
	if (e)
		return cpr_err(-EEXIST,
			       "save fd '%s'[%u] = %d: already saved as fd %d",
			       name, index, fd, e->rec.fd);
	if (cpr_tab_reserve(&st->fds))
		return cpr_err(-ENOMEM, "save fd '%s'[%u]: grow the table",
			       name, index);
	e = cpr_entry_new(name, len, index, h);
	if (!e)
		return cpr_err(-ENOMEM, "save fd '%s'[%u]: allocate the entry",
			       name, index);
	e->rec.fd = fd;
	e->rec.kind = kind;
	cpr_tab_add(&st->fds, e);
	st->fd_serial++;
	return 0;
}

int cpr_state_find_fd(const struct cpr_state *st, const char *name,
		      __u32 index)
{
	struct cpr_entry *e;
	size_t len;

	if (!st)
		return -1;
	len = name_len_ok(name, NULL, index);
	if (!len)
		return -1;
	e = cpr_tab_find(&st->fds, name, len, index,
			 cpr_key_hash(name, len, index));
	return e ? e->rec.fd : -1;
}

void cpr_state_find_fds(const struct cpr_state *st, const char *name,
			__u32 nr, int *fds)
{
	struct cpr_entry *e;
	size_t len;
	__u32 i, h;

	len = st ? name_len_ok(name, NULL, 0) : 0;
	h = len ? name_hash(name, len) : 0;
	for (i = 0; i < nr; i++) {
		e = len ? cpr_tab_find(&st->fds, name, len, i,
				       index_hash(h, i)) : NULL;
		fds[i] = e ? e->rec.fd : -1;
	}
}

int cpr_state_delete_fd(struct cpr_state *st, const char *name,
			__u32 index)
{
	size_t len, slot;
	__u32 h;

	if (!st)
		return cpr_err(-EINVAL, "delete fd [%u]: no state", index);
	len = name_len_ok(name, "delete fd", index);
	if (!len)
		return -EINVAL;
	h = cpr_key_hash(name, len, index);
	if (!cpr_tab_find(&st->fds, name, len, index, h))
		return -ENOENT;	/* a query: the caller decides */
	slot = tab_slot(&st->fds, name, len, index, h);
	entry_free(tab_remove(&st->fds, slot));
	st->fd_serial++;
	return 0;
}

__u64 cpr_state_fd_serial(const struct cpr_state *st)
{
	return st ? st->fd_serial : 0;
}

unsigned int cpr_state_nr_fds(const struct cpr_state *st)
{
	return st ? st->fds.nr_live : 0;
}

const struct cpr_fd_rec *cpr_state_fd_at(const struct cpr_state *st,
					 unsigned int i)
{
	struct cpr_entry *e = st ? tab_at(&st->fds, i) : NULL;

	return e ? &e->rec : NULL;
}

/* ---- Sections ---- */

static struct cpr_entry *section_find(const struct cpr_state *st,
				      const char *name)
{
	size_t len;

	if (!st)
		return NULL;
	len = name_len_ok(name, NULL, 0);
	if (!len)
		return NULL;
	return cpr_tab_find(&st->sections, name, len, 0,
			    cpr_key_hash(name, len, 0));
}

int cpr_state_set_section(struct cpr_state *st, const char *name,
			  const void *data, size_t len)
{
	struct cpr_entry *e;
	size_t name_len;
	void *copy;
	__u32 h;

	if (!st)
		return cpr_err(-EINVAL, "set section: no state");
	name_len = name_len_ok(name, "set section", 0);
	if (!name_len)
		return -EINVAL;
	if (len > CPR_SECTION_MAX)
		return cpr_err(-EFBIG,
			       "set section '%s': %zu bytes, more than the %u a section may hold",
			       name, len, CPR_SECTION_MAX);
	if (!data && len)
		return cpr_err(-EINVAL, "set section '%s': %zu bytes at NULL",
			       name, len);

	copy = malloc(len ? len : 1);
	if (!copy)
		return cpr_err(-ENOMEM, "set section '%s': allocate %zu bytes",
			       name, len);
	if (len)
		memcpy(copy, data, len);

	h = cpr_key_hash(name, name_len, 0);
	e = cpr_tab_find(&st->sections, name, name_len, 0, h);
	if (e) {
		/* Replaced in place: it keeps its position. */
		free(e->data);
		e->data = copy;
		e->len = len;
		return 0;
	}
	if (cpr_tab_reserve(&st->sections)) {
		free(copy);
		return cpr_err(-ENOMEM, "set section '%s': grow the table",
			       name);
	}
	e = cpr_entry_new(name, name_len, 0, h);
	if (!e) {
		free(copy);
		return cpr_err(-ENOMEM, "set section '%s': allocate the entry",
			       name);
	}
	e->data = copy;
	e->len = len;
	cpr_tab_add(&st->sections, e);
	return 0;
}

const void *cpr_state_get_section(const struct cpr_state *st,
				  const char *name, size_t *len)
{
	struct cpr_entry *e = section_find(st, name);

	if (len)
		*len = e ? e->len : 0;
	return e ? e->data : NULL;
}

int cpr_state_delete_section(struct cpr_state *st, const char *name)
{
	size_t len, slot;
	__u32 h;

	if (!st)
		return cpr_err(-EINVAL, "delete section: no state");
	len = name_len_ok(name, "delete section", 0);
	if (!len)
		return -EINVAL;
	h = cpr_key_hash(name, len, 0);
	if (!cpr_tab_find(&st->sections, name, len, 0, h))
		return -ENOENT;	/* a query: the caller decides */
	slot = tab_slot(&st->sections, name, len, 0, h);
	entry_free(tab_remove(&st->sections, slot));
	return 0;
}

unsigned int cpr_state_nr_sections(const struct cpr_state *st)
{
	return st ? st->sections.nr_live : 0;
}

int cpr_state_section_at(const struct cpr_state *st, unsigned int i,
			 const char **name, const void **data, size_t *len)
{
	struct cpr_entry *e = st ? tab_at(&st->sections, i) : NULL;

	/* The end of an iteration, not an error: no message. */
	if (!e)
		return -ENOENT;
	if (name)
		*name = e->name;
	if (data)
		*data = e->data;
	if (len)
		*len = e->len;
	return 0;
}

int cpr_state_set_u64(struct cpr_state *st, const char *name, __u64 val)
{
	return cpr_state_set_section(st, name, &val, sizeof(val));
}

int cpr_state_get_u64(const struct cpr_state *st, const char *name,
		      __u64 *val)
{
	struct cpr_entry *e;

	if (!st || !val)
		return cpr_err(-EINVAL, "read u64 section: no state or result");
	if (!name_len_ok(name, "read u64 section", 0))
		return -EINVAL;
	e = section_find(st, name);
	if (!e)
		return -ENOENT;	/* a query: the caller decides */
	if (e->len != sizeof(*val))
		return cpr_err(-EINVAL,
			       "read u64 section '%s': it holds %zu bytes, not %zu",
			       name, e->len, sizeof(*val));
	memcpy(val, e->data, sizeof(*val));
	return 0;
}
