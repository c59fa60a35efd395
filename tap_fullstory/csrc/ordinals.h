/* EventId ordinals: EventKeyer's per-EventStart count of each identity digest, in linear time
 * (a run of identical rows is counted by a hash table, not by comparing each row with the run's
 * earlier ones). Included once, by columns.c. */
#ifndef TAP_FULLSTORY_ORDINALS_H
#define TAP_FULLSTORY_ORDINALS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* An entry belongs to the current EventStart when its generation is the table's: a new
 * EventStart clears the table in O(1) by starting a new generation (0 = never used). */
typedef struct { unsigned char digest[16]; uint64_t count, gen; } OrdSlot;
typedef struct { OrdSlot *slots; size_t cap, used; uint64_t gen; } Ordinals;

static size_t ord_home(const unsigned char digest[16], size_t cap) {
    uint64_t h;
    memcpy(&h, digest, 8);  /* a BLAKE2b digest: its bits are as good as any hash of it */
    return (size_t)h & (cap - 1);
}

/* The table at least half empty, at twice its size when needed (current entries re-placed). */
static int ord_reserve(Ordinals *o) {
    if ((o->used + 1) * 2 <= o->cap) return 0;
    size_t cap = o->cap ? o->cap * 2 : 64;
    OrdSlot *slots = calloc(cap, sizeof(OrdSlot));
    if (!slots) return -1;
    for (size_t i = 0; i < o->cap; i++) {
        if (o->slots[i].gen != o->gen) continue;
        size_t j = ord_home(o->slots[i].digest, cap);
        while (slots[j].gen) j = (j + 1) & (cap - 1);
        slots[j] = o->slots[i];
    }
    free(o->slots);
    o->slots = slots; o->cap = cap;
    return 0;
}

/* A new EventStart: every count back to zero. */
static void ord_clear(Ordinals *o) { o->gen++; o->used = 0; }

/* How many rows of this EventStart had `digest` before this one (then counts this one); -1 when
 * out of memory. */
static int64_t ord_next(Ordinals *o, const unsigned char digest[16]) {
    if (!o->gen) o->gen = 1;
    if (ord_reserve(o)) return -1;
    size_t i = ord_home(digest, o->cap);
    while (o->slots[i].gen == o->gen) {
        if (memcmp(o->slots[i].digest, digest, 16) == 0) return (int64_t)o->slots[i].count++;
        i = (i + 1) & (o->cap - 1);
    }
    memcpy(o->slots[i].digest, digest, 16);
    o->slots[i].gen = o->gen; o->slots[i].count = 1;
    o->used++;
    return 0;
}

#endif
