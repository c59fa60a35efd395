/* The row scanner: one pass per NDJSON row into columns, CustomVars, EventId, or RECORD lines.
 * Included once, by columns.c (one translation unit, so the compiler can inline across it). */
#ifndef TAP_FULLSTORY_SCAN_H
#define TAP_FULLSTORY_SCAN_H

#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* --- the scan --------------------------------------------------------------------------------- */

typedef struct { const char *key; size_t klen; size_t off, len; } Custom;

typedef struct {
    char kind;             /* K_INT, K_FLOAT, K_STR, K_TIME, K_SKIP (known, not an output column) */
    const char *name;      /* the exact field name (borrowed from `known`) */
    Py_ssize_t nlen;
    int emit;              /* RECORD mode: the field is written into the record */
    int out;               /* output column number, or -1 */
    unsigned char *valid;  /* bitmap */
    char *values;          /* n * 8 bytes (int64 / double) */
    int32_t *offsets;      /* n + 1 (strings) */
    Buf data;
    Py_ssize_t misfits;    /* values the misfit rule nulled (their originals: in CustomVars) */
} Column;

/* RECORD mode: whole Singer RECORD lines instead of columns, exactly as output.ChunkEncoder
 * writes them (head, the record: known fields in the row's order, EventId, CustomVars, the
 * export window; tail). A NULL text is a deselected property. */
typedef struct {
    Buf lines;
    const char *head, *tail, *start_json, *end_json;
    Py_ssize_t head_len, tail_len, start_len, end_len;
    int keep_id, keep_cv;
} Rec;

typedef struct {
    Rec *rec;  /* NULL: columns */
    int ncols;
    Column *cols;
    Slot exact[TABLE], lower[TABLE];
    int nident;
    int *ident;          /* known-field index per identity field */
    int start_k;         /* EventStart's index in `known` (a string output column) */
    int64_t after;       /* EventStart of the row before the chunk, if has_after */
    int has_after;
} Spec;

/* Lines per chunk at most with EventIds: their Arrow offsets (32 characters a row) are int32, and
 * rows <= lines ("more rows than lines"). */
#define MAX_ID_ROWS (INT32_MAX / 32)

static int cmp_custom(const void *a, const void *b) {
    const Custom *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    if (c) return c;
    return (x->klen > y->klen) - (x->klen < y->klen);
}

/* RECORD mode: `,"name":` (no comma before a record's first key). */
#define EMIT_KEY(name, nlen) do { Buf *L_ = &spec->rec->lines; \
    if (buf_grow(L_, (size_t)(nlen) + 4)) FAIL("out of memory"); \
    if (!first) L_->p[L_->len++] = ','; \
    first = 0; L_->p[L_->len++] = '"'; memcpy(L_->p + L_->len, (name), (size_t)(nlen)); \
    L_->len += (size_t)(nlen); L_->p[L_->len++] = '"'; L_->p[L_->len++] = ':'; } while (0)

/* A CustomVars entry: the key, and the value at p in orjson's text (appended to `tmp`). Returns
 * the byte after the value, or NULL (ctx->reason set). */
static const char *add_custom(Ctx *ctx, Custom **custom, size_t *n, size_t *cap, Buf *tmp,
                              const char *key, size_t klen, const char *p, const char *end) {
    if (*n == *cap) {
        Custom *grown = realloc(*custom, *cap * 2 * sizeof(Custom));
        if (!grown) { ctx->reason = "out of memory"; return NULL; }
        *custom = grown; *cap *= 2;
    }
    size_t off = tmp->len;
    p = value_canon(ctx, p, end, tmp, 0);
    if (!p) return NULL;
    (*custom)[*n] = (Custom){key, klen, off, tmp->len - off};
    (*n)++;
    return p;
}

/* Custom vars in key order: insertion sort for the usual handful, qsort (O(n log n)) beyond, so
 * that a row with tens of thousands of keys costs no more than the per-record path. */
static void sort_custom(Custom *custom, size_t n) {
    if (n > 16) { qsort(custom, n, sizeof(Custom), cmp_custom); return; }
    for (size_t i = 1; i < n; i++) {
        Custom c = custom[i];
        size_t j = i;
        while (j > 0 && cmp_custom(&custom[j - 1], &c) > 0) { custom[j] = custom[j - 1]; j--; }
        custom[j] = c;
    }
}

/* Scans rows [p, end); fills the columns, CustomVars and EventIds (`id`: scratch for a row's
 * identity text, NULL without EventId). Returns rows or -1. Every read is bounded by `end`. */
static Py_ssize_t scan(Ctx *ctx, Spec *spec, const char *p, const char *end, Py_ssize_t cap,
                       Buf *cv, int32_t *cv_off, Buf *id, char *ids) {
    int K = spec->ncols;
    Ordinals ords = {0};
    int *next_of = malloc(((size_t)K + 1) * sizeof(int)), prev_k;  /* index -1 .. K-1, shifted */
    const char **tok = calloc((size_t)K + 1, sizeof(char *));
    Py_ssize_t *seen = malloc(((size_t)K + 1) * sizeof(Py_ssize_t));
    size_t ncustom_cap = 64, ncustom;
    Custom *custom = malloc(ncustom_cap * sizeof(Custom));
    Buf tmp = {0};
    Py_ssize_t row = 0;
    int first = 1;  /* RECORD mode: no key written yet in this record */
    /* EventStart with EventIds: C cannot key a row whose EventStart the rule nulls (the
     * reference keys the value as exported): such a chunk is refused. */
    int start_id = id ? spec->start_k : -1;
    if (!tok || !seen || !custom || !next_of) { ctx->reason = "out of memory"; goto fail; }
    for (int k = 0; k < K; k++) seen[k] = -1;
    for (int k = 0; k <= K; k++) next_of[k] = -1;
#undef FAIL
#define FAIL(msg) do { ctx->reason = (msg); goto fail; } while (0)
    while (p < end) {
        p = skip_ws(p, end);
        if (p < end && *p == '\n') { p++; continue; }  /* blank line */
        if (p >= end) break;
        if (*p != '{') FAIL("row is not a JSON object");
        if (row >= cap) FAIL("more rows than lines");
        ncustom = 0; tmp.len = 0; prev_k = -1;
        if (spec->rec) {
            PUT(&spec->rec->lines, spec->rec->head, (size_t)spec->rec->head_len);
            PUTC(&spec->rec->lines, '{');
            first = 1;
        }
        p = skip_ws(p + 1, end);
        if (p < end && *p == '}') { p++; goto row_done; }
        for (;;) {
            if (p >= end || *p != '"') FAIL("expected a key");
            const char *key = p + 1;
            int esc = 0;
            const char *after = scan_string(ctx, p, end, NULL, NULL, &esc);
            if (!after) goto fail;
            if (esc) FAIL("escaped key");
            size_t klen = (size_t)(after - 1 - key);
            p = skip_ws(after, end);
            if (p >= end || *p != ':') FAIL("expected ':'");
            p = skip_ws(p + 1, end);
            /* Rows repeat their key order: try the key that followed the previous one last
             * time before hashing. */
            int k = next_of[prev_k + 1];
            if (k < 0 || (size_t)spec->cols[k].nlen != klen || !same_bytes(spec->cols[k].name, key, klen))
                k = lookup(spec->exact, key, klen, 0);
            next_of[prev_k + 1] = k;
            prev_k = k;
            if (k >= 0) {
                Column *c = &spec->cols[k];
                if (seen[k] == row) FAIL("duplicate key");
                seen[k] = row; tok[k] = p;
                int nulled = 0;  /* the misfit rule made it null (RECORD: write null) */
                int emitted = 0;  /* RECORD: already written (a string, as it was scanned) */
                if (c->kind == K_SKIP) {  /* not a column: validated, or written (RECORD) */
                    Buf *o = NULL;
                    if (spec->rec && c->emit) { EMIT_KEY(c->name, c->nlen); o = &spec->rec->lines; }
                    p = value_canon(ctx, p, end, o, 0);
                    if (!p) goto fail;
                } else if (p < end && *p == 'n') {
                    if (!literal(p, end, "null", 4)) FAIL("invalid literal");
                    p += 4;  /* present, null: validity stays 0 */
                } else if (p + 1 < end && p[0] == '"' && p[1] == '"' && c->kind != K_STR) {
                    if (k == start_id) FAIL("EventStart does not fit");
                    p += 2; nulled = 1;  /* "" in a typed column: absent */
                } else {
                    int fit = 1;  /* 0: the value does not fit (the misfit rule) */
                    if (p >= end) FAIL("missing value");
                    if (c->kind == K_INT || c->kind == K_FLOAT) {
                        int is_float;
                        size_t digits;
                        const char *e;
                        if (*p != '-' && (*p < '0' || *p > '9')) fit = 0;  /* not a number */
                        else if (!(e = scan_number(ctx, p, end, &is_float, &digits))) goto fail;
                        else if (!is_float && !int_fits(p, e, digits, 0)) FAIL("integer beyond 64 bits");
                        else if (c->kind == K_INT) {
                            if (e - p == 2 && p[0] == '-' && p[1] == '0') FAIL("negative zero");
                            if (is_float || !int_fits(p, e, digits, 1)) fit = 0;
                            else {
                                uint64_t u = 0; const char *q = p; int neg = 0;
                                if (*q == '-') { neg = 1; q++; }
                                for (; q < e; q++) u = u * 10 + (uint64_t)(*q - '0');  /* fits: checked */
                                int64_t v = neg ? (int64_t)(0 - u) : (int64_t)u;
                                memcpy(c->values + 8 * row, &v, 8);
                                p = e;
                            }
                        } else if (!is_float && !exact_in_double(p, e, digits)) {
                            fit = 0;
                        } else {
                            double v;
                            if (number_value(p, e, &v)) FAIL("float out of range");
                            if (!is_float && v == 0) v = 0.0;  /* "-0": orjson reads the integer 0 */
                            memcpy(c->values + 8 * row, &v, 8);
                            p = e;
                        }
                    } else if (c->kind == K_TIME) {
                        if (*p != '"') fit = 0;
                        else {
                            c->data.len = 0;  /* scratch: the decoded text */
                            const char *e = scan_string(ctx, p, end, &c->data, NULL, NULL);
                            if (!e) goto fail;
                            int64_t v;
                            if (parse_timestamp(c->data.p, c->data.len, &v) == 0) {
                                memcpy(c->values + 8 * row, &v, 8);
                                p = e;
                            } else if (c->data.len >= 4 && c->data.p[0] >= '0' && c->data.p[0] <= '9'
                                       && c->data.p[1] >= '0' && c->data.p[1] <= '9'
                                       && c->data.p[2] >= '0' && c->data.p[2] <= '9'
                                       && c->data.p[3] >= '0' && c->data.p[3] <= '9') {
                                /* maybe another RFC 3339 form: the reference normalises it */
                                FAIL("timestamp not in FullStory's form");
                            } else {
                                fit = 0;  /* RFC 3339 starts with 4 ASCII digits: no timestamp */
                            }
                        }
                    } else if (c->kind == K_STR) {
                        if (*p != '"') fit = 0;
                        else if (spec->rec && c->emit) {  /* RECORD: written as it is scanned */
                            EMIT_KEY(c->name, c->nlen);
                            p = value_canon(ctx, p, end, &spec->rec->lines, 0);
                            if (!p) goto fail;
                            emitted = 1;
                        } else {
                            p = scan_string(ctx, p, end, spec->rec ? NULL : &c->data, NULL, NULL);
                            if (!p) goto fail;
                        }
                    }
                    if (fit) {
                        c->valid[row >> 3] |= (unsigned char)(1u << (row & 7));
                    } else {  /* null here, the original into CustomVars under the field's name */
                        if (k == start_id) FAIL("EventStart does not fit");
                        p = add_custom(ctx, &custom, &ncustom, &ncustom_cap, &tmp, key, klen, p, end);
                        if (!p) goto fail;
                        c->misfits++;
                        nulled = 1;
                    }
                }
                if (spec->rec && c->emit && c->kind != K_SKIP && !emitted) {
                    EMIT_KEY(c->name, c->nlen);
                    if (nulled) PUT(&spec->rec->lines, "null", 4);
                    else if (!value_canon(ctx, tok[k], end, &spec->rec->lines, 0)) goto fail;
                }
            } else {
                /* Not an exact column name: a custom var, unless a known field in another case
                 * (the Kelvin sign lower-cases to an ASCII k). */
                if (lookup(spec->lower, key, klen, 1) >= 0) FAIL("known field in another case");
                for (const char *e2 = key; (e2 = memchr(e2, 0xE2, klen - (size_t)(e2 - key))); e2++)
                    if ((size_t)(key + klen - e2) >= 3 && e2[1] == '\x84' && e2[2] == '\xAA')
                        FAIL("Kelvin sign in a key");
                p = add_custom(ctx, &custom, &ncustom, &ncustom_cap, &tmp, key, klen, p, end);
                if (!p) goto fail;
            }
            p = skip_ws(p, end);
            if (p < end && *p == ',') { p = skip_ws(p + 1, end); continue; }
            if (p < end && *p == '}') { p++; break; }
            FAIL("invalid object");
        }
    row_done:
        p = skip_ws(p, end);
        if (p < end && *p != '\n') FAIL("text after the row");
        if (p < end) p++;
        /* string columns: close this row's value (Arrow's offsets are int32) */
        for (int k = 0; k < K; k++) {
            Column *c = &spec->cols[k];
            if (c->kind != K_STR) continue;
            if (c->data.len > INT32_MAX) FAIL("column too large");
            c->offsets[row + 1] = (int32_t)c->data.len;
        }
        /* CustomVars: keys sorted, no duplicates */
        sort_custom(custom, ncustom);
        if (buf_grow(cv, 2)) FAIL("out of memory");
        cv->p[cv->len++] = '{';
        for (size_t i = 0; i < ncustom; i++) {
            if (i && cmp_custom(&custom[i - 1], &custom[i]) == 0) FAIL("duplicate key");
            if (buf_grow(cv, custom[i].klen + custom[i].len + 4)) FAIL("out of memory");
            if (i) cv->p[cv->len++] = ',';
            cv->p[cv->len++] = '"';
            memcpy(cv->p + cv->len, custom[i].key, custom[i].klen); cv->len += custom[i].klen;
            cv->p[cv->len++] = '"'; cv->p[cv->len++] = ':';
            memcpy(cv->p + cv->len, tmp.p + custom[i].off, custom[i].len); cv->len += custom[i].len;
        }
        if (buf_grow(cv, 1)) FAIL("out of memory");
        cv->p[cv->len++] = '}';
        if (cv->len > INT32_MAX) FAIL("CustomVars too large");
        cv_off[row + 1] = (int32_t)cv->len;
        /* EventId input: orjson's [identity values] */
        if (id) {
            id->len = 0;
            if (buf_grow(id, 1)) FAIL("out of memory");
            id->p[id->len++] = '[';
            for (int i = 0; i < spec->nident; i++) {
                int k = spec->ident[i];
                if (i) { if (buf_grow(id, 1)) FAIL("out of memory"); id->p[id->len++] = ','; }
                if (seen[k] == row) {
                    if (!value_canon(ctx, tok[k], end, id, 0)) goto fail;
                } else {
                    if (buf_grow(id, 4)) FAIL("out of memory");
                    memcpy(id->p + id->len, "null", 4); id->len += 4;
                }
            }
            if (buf_grow(id, 1)) FAIL("out of memory");
            id->p[id->len++] = ']';
            /* The ordinal among this EventStart's rows with the same identity digest, and the
             * order check, exactly as EventKeyer (EventStart compared as text). */
            /* Canonical timestamps compare as their text does (fixed width, UTC). */
            Column *sc = &spec->cols[spec->start_k];
            int null_now = !(sc->valid[row >> 3] & (1u << (row & 7))), null_cur;
            int64_t now, cur;
            memcpy(&now, sc->values + 8 * row, 8);
            if (row == 0) {
                null_cur = !spec->has_after; cur = spec->after;
            } else {
                null_cur = !(sc->valid[(row - 1) >> 3] & (1u << ((row - 1) & 7)));
                memcpy(&cur, sc->values + 8 * (row - 1), 8);
            }
            int same = null_now || null_cur ? (null_now && null_cur) : now == cur;
            if (!same) {
                if (!null_now && !null_cur && now < cur) FAIL("rows out of EventStart order");
                ord_clear(&ords);
            }
            unsigned char digest[16];
            blake2b_16((const unsigned char *)id->p, id->len, digest);
            int64_t ordinal = ord_next(&ords, digest);
            if (ordinal < 0) FAIL("out of memory");
            event_id(digest, (uint64_t)ordinal, ids + 32 * row);
        }
        if (spec->rec) {  /* the record's last keys, as ChunkEncoder appends them */
            Rec *R = spec->rec;
            if (id && R->keep_id) {
                EMIT_KEY("EventId", 7);
                PUTC(&R->lines, '"'); PUT(&R->lines, ids + 32 * row, 32); PUTC(&R->lines, '"');
            }
            if (R->keep_cv) {
                EMIT_KEY("CustomVars", 10);
                PUT(&R->lines, cv->p + cv_off[row], (size_t)(cv_off[row + 1] - cv_off[row]));
            }
            if (R->start_json) { EMIT_KEY("ExportStart", 11); PUT(&R->lines, R->start_json, (size_t)R->start_len); }
            if (R->end_json) { EMIT_KEY("ExportEnd", 9); PUT(&R->lines, R->end_json, (size_t)R->end_len); }
            PUTC(&R->lines, '}');
            PUT(&R->lines, R->tail, (size_t)R->tail_len);
        }
        row++;
    }
    free(tok); free(seen); free(custom); free(tmp.p); free(next_of); free(ords.slots);
    return row;
fail:
    free(tok); free(seen); free(custom); free(tmp.p); free(next_of); free(ords.slots);
    return -1;
#undef FAIL
}

#endif
