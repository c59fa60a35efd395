/* tap_fullstory._columns: one pass over a chunk of NDJSON export rows -> Arrow column buffers.
 *
 * Why C: Arrow's JSON reader costs ~7 us per export row and cannot keep the fields it was not told
 * about, so the Parquet path parsed every row twice. This scanner reads each row once, writes the
 * known fields straight into Arrow buffers (validity bitmap + int64/float64 values or int32
 * offsets + UTF-8 data) and the rest (CustomVars, the EventId input) as the exact text orjson
 * writes for them (compact, keys sorted, orjson's escapes).
 *
 * It proves, or refuses: anything the per-record path could treat differently (a type that does
 * not fit its column, a known field in another case, a duplicate key, an escaped key, a nested
 * object, an integer beyond 64 bits, invalid JSON or UTF-8...) returns (None, reason) and the
 * caller takes the per-record path for that chunk. Float texts are returned for the caller to
 * check against orjson's own shortest form. The GIL is released while scanning.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "blake2b.h"
#include "timestamp.h"
#include "names.h"

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

/* Longest run of rows sharing one EventStart that ordinals are counted over (quadratic). */
#define MAX_RUN 4096

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

/* Scans rows [p, end); fills the columns, CustomVars and identity buffers. Returns rows or -1. */
static Py_ssize_t scan(Ctx *ctx, Spec *spec, const char *p, const char *end, Py_ssize_t cap,
                       Buf *cv, int32_t *cv_off, Buf *id, int32_t *id_off, char *ids) {
    int K = spec->ncols;
    Py_ssize_t run_start = 0;
    int *next_of = malloc(((size_t)K + 1) * sizeof(int)), prev_k;  /* index -1 .. K-1, shifted */
    const char **tok = calloc((size_t)K, sizeof(char *));
    Py_ssize_t *seen = malloc((size_t)K * sizeof(Py_ssize_t));
    size_t ncustom_cap = 64, ncustom;
    Custom *custom = malloc(ncustom_cap * sizeof(Custom));
    Buf tmp = {0};
    Py_ssize_t row = 0;
    int first = 1;  /* RECORD mode: no key written yet in this record */
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
                if (c->kind == K_SKIP) {  /* not a column: validated, or written (RECORD) */
                    Buf *o = NULL;
                    if (spec->rec && c->emit) { EMIT_KEY(c->name, c->nlen); o = &spec->rec->lines; }
                    p = value_canon(ctx, p, end, o, 0);
                    if (!p) goto fail;
                } else if (p < end && *p == 'n') {
                    if (!literal(p, end, "null", 4)) FAIL("invalid literal");
                    p += 4;  /* present, null: validity stays 0 */
                } else if (p < end && *p != '-' && (*p < '0' || *p > '9')
                           && (c->kind == K_INT || c->kind == K_FLOAT)) {
                    FAIL("number column holds another type");
                } else if (c->kind == K_INT) {
                    int is_float, digits;
                    const char *e = scan_number(ctx, p, end, &is_float, &digits);
                    if (!e) goto fail;
                    if (is_float) FAIL("integer column holds another number");
                    if (!int_fits(p, e, digits, 1)) FAIL("integer beyond 64 bits");
                    if (e - p == 2 && p[0] == '-' && p[1] == '0') FAIL("negative zero");
                    uint64_t u = 0; const char *q = p; int neg = 0;
                    if (*q == '-') { neg = 1; q++; }
                    for (; q < e; q++) u = u * 10 + (uint64_t)(*q - '0');  /* fits: checked */
                    int64_t v = neg ? (int64_t)(0 - u) : (int64_t)u;
                    memcpy(c->values + 8 * row, &v, 8);
                    c->valid[row >> 3] |= (unsigned char)(1u << (row & 7));
                    p = e;
                } else if (c->kind == K_FLOAT) {
                    int is_float, digits;
                    const char *e = scan_number(ctx, p, end, &is_float, &digits);
                    if (!e) goto fail;
                    char *stop;
                    double v = strtod(p, &stop);  /* bytes objects end in NUL; JSON grammar checked */
                    if (stop != e || v > 1.7976931348623157e308 || v < -1.7976931348623157e308)
                        FAIL("float out of range");
                    memcpy(c->values + 8 * row, &v, 8);
                    c->valid[row >> 3] |= (unsigned char)(1u << (row & 7));
                    p = e;
                } else if (c->kind == K_TIME) {
                    if (p >= end || *p != '"') FAIL("timestamp column holds another type");
                    c->data.len = 0;  /* scratch: the decoded text */
                    p = scan_string(ctx, p, end, &c->data, NULL, NULL);
                    if (!p) goto fail;
                    int64_t v;
                    if (parse_timestamp(c->data.p, c->data.len, &v)) FAIL("timestamp not in FullStory's form");
                    memcpy(c->values + 8 * row, &v, 8);
                    c->valid[row >> 3] |= (unsigned char)(1u << (row & 7));
                } else if (c->kind == K_STR) {
                    if (p >= end || *p != '"') FAIL("string column holds another type");
                    p = scan_string(ctx, p, end, &c->data, NULL, NULL);
                    if (!p) goto fail;
                    if (c->data.len > INT32_MAX) FAIL("column too large");
                    c->valid[row >> 3] |= (unsigned char)(1u << (row & 7));
                }
                if (spec->rec && c->emit && c->kind != K_SKIP) {  /* a timestamp, checked above */
                    EMIT_KEY(c->name, c->nlen);
                    if (!value_canon(ctx, tok[k], end, &spec->rec->lines, 0)) goto fail;
                }
            } else {
                /* Not an exact column name: a custom var, unless a known field in another case
                 * (the Kelvin sign lower-cases to an ASCII k). */
                if (lookup(spec->lower, key, klen, 1) >= 0) FAIL("known field in another case");
                for (const char *e2 = key; (e2 = memchr(e2, 0xE2, klen - (size_t)(e2 - key))); e2++)
                    if ((size_t)(key + klen - e2) >= 3 && e2[1] == '\x84' && e2[2] == '\xAA')
                        FAIL("Kelvin sign in a key");
                if (ncustom == ncustom_cap) {
                    ncustom_cap *= 2;
                    Custom *grown = realloc(custom, ncustom_cap * sizeof(Custom));
                    if (!grown) FAIL("out of memory");
                    custom = grown;
                }
                size_t off = tmp.len;
                p = value_canon(ctx, p, end, &tmp, 0);
                if (!p) goto fail;
                custom[ncustom].key = key; custom[ncustom].klen = klen;
                custom[ncustom].off = off; custom[ncustom].len = tmp.len - off;
                ncustom++;
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
        /* string columns: close this row's value */
        for (int k = 0; k < K; k++) {
            Column *c = &spec->cols[k];
            if (c->kind == K_STR) c->offsets[row + 1] = (int32_t)c->data.len;
        }
        /* CustomVars: keys sorted, no duplicates */
        for (size_t i = 1; i < ncustom; i++) {  /* insertion sort: a handful of keys per row */
            Custom c = custom[i];
            size_t j = i;
            while (j > 0 && cmp_custom(&custom[j - 1], &c) > 0) { custom[j] = custom[j - 1]; j--; }
            custom[j] = c;
        }
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
            if (id->len > INT32_MAX) FAIL("identity text too large");
            id_off[row + 1] = (int32_t)id->len;
            /* The ordinal among this EventStart's rows with the same identity text, and the
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
                run_start = row;
            }
            if (row - run_start > MAX_RUN) FAIL("long run of one EventStart");
            const char *text = id->p + id_off[row];
            size_t text_len = (size_t)(id_off[row + 1] - id_off[row]);
            int32_t ordinal = 0;  /* runs are a row or a few: compare directly, no hashing */
            for (Py_ssize_t r = run_start; r < row; r++)
                if ((size_t)(id_off[r + 1] - id_off[r]) == text_len
                    && memcmp(id->p + id_off[r], text, text_len) == 0) ordinal++;
            event_id(text, text_len, ordinal, ids + 32 * row);
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
    free(tok); free(seen); free(custom); free(tmp.p); free(next_of);
    return row;
fail:
    free(tok); free(seen); free(custom); free(tmp.p); free(next_of);
    return -1;
#undef FAIL
}

static PyObject *bytes_of(const void *p, size_t n) {
    return PyBytes_FromStringAndSize(n ? (const char *)p : "", (Py_ssize_t)n);
}

static void free_capsule(PyObject *capsule) { free(PyCapsule_GetPointer(capsule, "tap_fullstory._columns.buffer")); }

/* Hands a malloc'd buffer to Python without copying: (address, size, owner). Arrow wraps it with
 * pyarrow.foreign_buffer(address, size, base=owner); the owner frees it when the last user goes. */
static PyObject *take(void **pp, size_t n) {
    void *p = *pp ? *pp : malloc(1);
    if (!p) return PyErr_NoMemory();
    PyObject *owner = PyCapsule_New(p, "tap_fullstory._columns.buffer", free_capsule);
    if (!owner) { if (p != *pp) free(p); return NULL; }
    *pp = NULL;
    return Py_BuildValue("(NnN)", PyLong_FromVoidPtr(p), (Py_ssize_t)n, owner);
}

/* split(chunk: bytes, known: tuple[tuple[bytes, str, bool[, bool]], ...],
 *       identity: tuple[int, ...] | None, after: bytes | None = None, record: tuple | None = None)
 *
 * known: every known field (exact name, kind 'i'/'f'/'s'/'t', whether it is an output column,
 *   and in RECORD mode whether the record keeps it);
 * record: RECORD mode (head, tail, keep EventId, keep CustomVars, ExportStart JSON or None,
 *   ExportEnd JSON or None): returns (rows, None, lines, None, floats) instead;
 * identity: indexes into `known` of the EventId fields, or None (no EventId);
 * after: the EventStart of the row before the chunk (None: no row, or a null EventStart).
 *
 * Returns (None, reason) or (rows, columns, customvars, identity, floats):
 *   columns: per output column in `known` order, (validity, values) or (validity, offsets, data)
 *   customvars: (offsets int32, data)
 *   (each buffer an (address, size, owner) triple for pyarrow.foreign_buffer: no copy)
 *   identity: EventId as Arrow string buffers (offsets int32, 32 hex chars per row), or
 *     None without EventId
 *   floats: the float texts written into CustomVars / identity, '\n'-separated */
static PyObject *split(PyObject *self, PyObject *args) {
    Py_buffer chunk;
    PyObject *known, *identity, *after = Py_None, *record = Py_None;
    if (!PyArg_ParseTuple(args, "y*O!O|OO", &chunk, &PyTuple_Type, &known, &identity, &after,
                          &record))
        return NULL;
    PyObject *result = NULL;
    Spec *spec = calloc(1, sizeof(Spec));
    Rec rec = {0};
    Buf cv = {0}, id = {0}, floats = {0};
    char *ids = NULL;
    int32_t *cv_off = NULL, *id_off = NULL;
    Py_ssize_t K = PyTuple_GET_SIZE(known);
    if (!spec) { PyErr_NoMemory(); goto done; }
    spec->ncols = (int)K;
    spec->cols = calloc((size_t)(K ? K : 1), sizeof(Column));
    if (!spec->cols) { PyErr_NoMemory(); goto done; }
    const char *base = chunk.buf, *end = base + chunk.len;
    Py_ssize_t cap = 1;
    for (const char *q = base; (q = memchr(q, '\n', (size_t)(end - q))); q++) cap++;
    int outs = 0;
    for (Py_ssize_t k = 0; k < K; k++) {
        PyObject *item = PyTuple_GET_ITEM(known, k);
        const char *name, *kind; Py_ssize_t nlen; int out, emit = 0;
        if (!PyArg_ParseTuple(item, "y#sp|p", &name, &nlen, &kind, &out, &emit)) goto done;
        Column *c = &spec->cols[k];
        c->kind = out ? kind[0] : K_SKIP;
        c->name = name; c->nlen = nlen; c->emit = emit;
        c->out = out ? outs++ : -1;
        insert(spec->exact, name, nlen, (int)k, 0);
        insert(spec->lower, name, nlen, (int)k, 1);
        if (!out) continue;
        c->valid = calloc((size_t)(cap + 7) / 8, 1);
        if (!c->valid) { PyErr_NoMemory(); goto done; }
        if (c->kind == K_STR) {
            c->offsets = calloc((size_t)cap + 1, sizeof(int32_t));
            if (!c->offsets) { PyErr_NoMemory(); goto done; }
        } else if (c->kind == K_INT || c->kind == K_FLOAT || c->kind == K_TIME) {
            c->values = calloc((size_t)cap, 8);
            if (!c->values) { PyErr_NoMemory(); goto done; }
        } else {
            PyErr_SetString(PyExc_ValueError, "kind must be 'i', 'f', 's' or 't'");
            goto done;
        }
    }
    /* "CustomVars" in any case is a custom var (Splitter keeps it), and it is not in `known`. */
    if (identity != Py_None) {
        if (!PyTuple_Check(identity)) { PyErr_SetString(PyExc_TypeError, "identity: tuple"); goto done; }
        spec->nident = (int)PyTuple_GET_SIZE(identity);
        spec->ident = calloc((size_t)spec->nident + 1, sizeof(int));
        if (!spec->ident) { PyErr_NoMemory(); goto done; }
        for (int i = 0; i < spec->nident; i++) {
            long v = PyLong_AsLong(PyTuple_GET_ITEM(identity, i));
            if (v < 0 || v >= K) { if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "identity index"); goto done; }
            spec->ident[i] = (int)v;
        }
        id_off = calloc((size_t)cap + 1, sizeof(int32_t));
        ids = malloc((size_t)cap * 32);
        if (!id_off || !ids) { PyErr_NoMemory(); goto done; }
        spec->start_k = -1;
        for (Py_ssize_t k = 0; k < K; k++) {
            const char *name = PyBytes_AS_STRING(PyTuple_GET_ITEM(PyTuple_GET_ITEM(known, k), 0));
            if (strcmp(name, "EventStart") == 0 && spec->cols[k].kind == K_TIME) spec->start_k = (int)k;
        }
        if (spec->start_k < 0) {
            PyErr_SetString(PyExc_ValueError, "EventStart must be a timestamp output column");
            goto done;
        }
        if (after != Py_None) {
            Py_ssize_t n;
            if (!PyBytes_Check(after)) { PyErr_SetString(PyExc_TypeError, "after: bytes or None"); goto done; }
            char *text;
            PyBytes_AsStringAndSize(after, &text, &n);
            if (parse_timestamp(text, (size_t)n, &spec->after)) {
                result = Py_BuildValue("(Os)", Py_None, "EventStart before the chunk not in FullStory's form");
                goto done;
            }
            spec->has_after = 1;
        }
    }
    cv_off = calloc((size_t)cap + 1, sizeof(int32_t));
    if (!cv_off) { PyErr_NoMemory(); goto done; }

    if (record != Py_None) {
        PyObject *start_json, *end_json;
        if (!PyArg_ParseTuple(record, "y#y#ppOO", &rec.head, &rec.head_len, &rec.tail,
                              &rec.tail_len, &rec.keep_id, &rec.keep_cv, &start_json, &end_json))
            goto done;
        if (start_json != Py_None
            && PyBytes_AsStringAndSize(start_json, (char **)&rec.start_json, &rec.start_len) < 0)
            goto done;
        if (end_json != Py_None
            && PyBytes_AsStringAndSize(end_json, (char **)&rec.end_json, &rec.end_len) < 0)
            goto done;
        spec->rec = &rec;
    }
    Ctx ctx = {NULL, &floats};
    Py_ssize_t rows;
    Py_BEGIN_ALLOW_THREADS
    rows = scan(&ctx, spec, base, end, cap, &cv, cv_off, identity != Py_None ? &id : NULL, id_off,
                ids);
    Py_END_ALLOW_THREADS
    if (rows < 0) {
        if (ctx.reason && strcmp(ctx.reason, "out of memory") == 0) { PyErr_NoMemory(); goto done; }
        result = Py_BuildValue("(Os)", Py_None, ctx.reason ? ctx.reason : "refused");
        goto done;
    }
    if (spec->rec) {  /* RECORD mode: the lines only */
        result = Py_BuildValue("(nONON)", rows, Py_None, take((void **)&rec.lines.p, rec.lines.len),
                               Py_None, bytes_of(floats.p, floats.len));
        goto done;
    }
    PyObject *cols = PyList_New(0);
    if (!cols) goto done;
    for (Py_ssize_t k = 0; k < K; k++) {
        Column *c = &spec->cols[k];
        if (c->out < 0) continue;
        PyObject *entry;
        size_t vbytes = (size_t)(rows + 7) / 8;
        if (c->kind == K_STR)
            entry = Py_BuildValue("(NNN)", take((void **)&c->valid, vbytes),
                                  take((void **)&c->offsets, ((size_t)rows + 1) * 4),
                                  take((void **)&c->data.p, c->data.len));
        else
            entry = Py_BuildValue("(NN)", take((void **)&c->valid, vbytes),
                                  take((void **)&c->values, (size_t)rows * 8));
        if (!entry || PyList_Append(cols, entry)) { Py_XDECREF(entry); Py_DECREF(cols); goto done; }
        Py_DECREF(entry);
    }
    PyObject *idt = Py_None;
    Py_INCREF(Py_None);
    if (identity != Py_None) {
        Py_DECREF(Py_None);
        for (Py_ssize_t r = 0; r <= rows; r++) id_off[r] = (int32_t)(32 * r);  /* now EventId's */
        idt = Py_BuildValue("(NN)", take((void **)&id_off, ((size_t)rows + 1) * 4),
                            take((void **)&ids, (size_t)rows * 32));
    }
    result = Py_BuildValue("(nN(NN)NN)", rows, cols,
                           take((void **)&cv_off, ((size_t)rows + 1) * 4), take((void **)&cv.p, cv.len),
                           idt, bytes_of(floats.p, floats.len));
done:
    if (spec) {
        for (Py_ssize_t k = 0; spec->cols && k < K; k++) {
            free(spec->cols[k].valid); free(spec->cols[k].values);
            free(spec->cols[k].offsets); free(spec->cols[k].data.p);
        }
        free(spec->cols); free(spec->ident); free(spec);
    }
    free(cv.p); free(id.p); free(floats.p); free(ids); free(cv_off); free(id_off);
    free(rec.lines.p);
    PyBuffer_Release(&chunk);
    return result;
}

static PyMethodDef methods[] = {
    {"split", split, METH_VARARGS, "Scan NDJSON export rows into Arrow column buffers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_columns", NULL, -1, methods};

PyMODINIT_FUNC PyInit__columns(void) {
    init_tables();
    return PyModule_Create(&module);
}

