/* Known field names: exact and case-insensitive lookups; included once, by columns.c. */
#ifndef TAP_FULLSTORY_NAMES_H
#define TAP_FULLSTORY_NAMES_H

#include <stdint.h>
#include <string.h>

/* --- known names: a small open-addressing table ---------------------------------------------- */

#define TABLE 512
/* Most names `split` takes: the table stays at most half full, so a probe ends at an empty slot
 * soon (and every probe loop is bounded by TABLE besides). */
#define MAX_NAMES (TABLE / 2)
typedef struct { const char *name; Py_ssize_t len; int index; } Slot;

static inline uint32_t fold(unsigned char c, int lower) {
    return (lower && c >= 'A' && c <= 'Z') ? (uint32_t)(c + 32) : c;
}

/* Length and three bytes: distinct enough for ~70 names, and cheap on every key of every row. */
static inline uint32_t hash_bytes(const char *s, size_t n, int lower) {
    if (!n) return 0;
    const unsigned char *u = (const unsigned char *)s;
    return (uint32_t)n * 2654435761u ^ fold(u[0], lower) * 97u ^ fold(u[n / 2], lower) * 7919u
        ^ fold(u[n - 1], lower) * 131u;
}

static int ieq_ascii(const char *a, const char *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z') x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z') y = (unsigned char)(y + 32);
        if (x != y) return 0;
    }
    return 1;
}

static int lookup(const Slot *t, const char *k, size_t n, int lower) {
    uint32_t h = hash_bytes(k, n, lower) & (TABLE - 1);
    for (int probes = 0; probes < TABLE && t[h].name; probes++) {
        if ((size_t)t[h].len == n && (lower ? ieq_ascii(t[h].name, k, n) : same_bytes(t[h].name, k, n)))
            return t[h].index;
        h = (h + 1) & (TABLE - 1);
    }
    return -1;
}

/* -1 when the table is full (the caller keeps to MAX_NAMES, so it never is). */
static int insert(Slot *t, const char *k, Py_ssize_t n, int index, int lower) {
    uint32_t h = hash_bytes(k, (size_t)n, lower) & (TABLE - 1);
    for (int probes = 0; probes < TABLE; probes++) {
        if (!t[h].name) {
            t[h].name = k; t[h].len = n; t[h].index = index;
            return 0;
        }
        h = (h + 1) & (TABLE - 1);
    }
    return -1;
}

#endif
