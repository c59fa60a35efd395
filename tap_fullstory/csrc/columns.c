/* tap_fullstory._columns: one pass over a chunk of NDJSON export rows -> Arrow column buffers.
 *
 * Why C: Arrow's JSON reader costs ~7 us per export row and cannot keep the fields it was not told
 * about, so the Parquet path parsed every row twice. This scanner reads each row once, writes the
 * known fields straight into Arrow buffers (validity bitmap + int64/float64 values or int32
 * offsets + UTF-8 data) and the rest (CustomVars, the EventId input) as the exact text orjson
 * writes for them (compact, keys sorted, orjson's escapes).
 *
 * A value that does not fit its column's type follows the misfit rule (tap_fullstory/fits.py): null
 * in the column, the original in CustomVars under the field's name, counted per field.
 *
 * It proves, or refuses: anything the per-record path could treat differently (a timestamp in
 * another RFC 3339 form, a misfit EventStart with EventIds, a known field in another case, a duplicate key, an escaped key, a nested
 * object, an integer beyond 64 bits, a NUL character, invalid JSON or UTF-8...) returns (None,
 * reason) and the caller takes the per-record path for that chunk. Float texts are returned for
 * the caller to check against orjson's own shortest form. The GIL is released while scanning, so
 * the chunk must be immutable (bytes, or a memoryview of bytes). Safe for any bytes and any
 * arguments: every read is bounded by the chunk's end, every narrowing to int32 is checked, and
 * bad arguments raise TypeError/ValueError.
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
#include "ordinals.h"
#include "scan.h"

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

/* The chunk as a buffer that cannot change while the GIL is released: bytes, or a memoryview of
 * bytes (a bytearray, or any writable or foreign buffer, is refused with TypeError). */
static int immutable_buffer(PyObject *obj, Py_buffer *view) {
    PyObject *base = PyMemoryView_Check(obj) ? PyMemoryView_GET_BASE(obj) : obj;
    if (!base || !PyBytes_Check(base)) {
        PyErr_Format(PyExc_TypeError, "chunk must be bytes or a memoryview of bytes, not %.80s",
                     Py_TYPE(base ? base : obj)->tp_name);
        return -1;
    }
    return PyObject_GetBuffer(obj, view, PyBUF_SIMPLE);
}

/* split(chunk: bytes | memoryview, known: tuple[tuple[bytes, str, bool[, bool]], ...],
 *       identity: tuple[int, ...] | None, after: bytes | None = None, record: tuple | None = None)
 *
 * known: every known field (exact name, kind 'i'/'f'/'s'/'t', whether it is an output column,
 *   and in RECORD mode whether the record keeps it); distinct names, at most MAX_NAMES;
 * record: RECORD mode (head, tail, keep EventId, keep CustomVars, ExportStart JSON or None,
 *   ExportEnd JSON or None): returns (rows, None, lines, None, floats, misfits) instead;
 * identity: indexes into `known` of the EventId fields, or None (no EventId);
 * after: the EventStart of the row before the chunk (None: no row, or a null EventStart).
 *
 * Returns (None, reason) or (rows, columns, customvars, identity, floats, misfits):
 *   columns: per output column in `known` order, (validity, values) or (validity, offsets, data)
 *   customvars: (offsets int32, data)
 *   (each buffer an (address, size, owner) triple for pyarrow.foreign_buffer: no copy)
 *   identity: EventId as Arrow string buffers (offsets int32, 32 hex chars per row), or
 *     None without EventId
 *   floats: the float texts written into CustomVars / identity, '\n'-separated
 *   misfits: per field of `known`, the values the misfit rule nulled */
static PyObject *split(PyObject *self, PyObject *args) {
    Py_buffer chunk = {0};
    PyObject *chunk_obj, *known, *identity, *after = Py_None, *record = Py_None;
    if (!PyArg_ParseTuple(args, "OO!O|OO", &chunk_obj, &PyTuple_Type, &known, &identity, &after,
                          &record))
        return NULL;
    if (PyTuple_GET_SIZE(known) > MAX_NAMES) {
        PyErr_Format(PyExc_ValueError, "known: at most %d fields", MAX_NAMES);
        return NULL;
    }
    if (immutable_buffer(chunk_obj, &chunk) < 0) return NULL;
    PyObject *result = NULL;
    Spec *spec = calloc(1, sizeof(Spec));
    Rec rec = {0};
    Buf cv = {0}, id = {0}, floats = {0};
    char *ids = NULL;
    int32_t *cv_off = NULL, *id_off = NULL;
    Py_ssize_t K = PyTuple_GET_SIZE(known);  /* <= MAX_NAMES: fits an int */
    if (!spec) { PyErr_NoMemory(); goto done; }
    spec->ncols = (int)K;
    spec->cols = calloc((size_t)(K ? K : 1), sizeof(Column));
    if (!spec->cols) { PyErr_NoMemory(); goto done; }
    const char *base = chunk.buf, *end = base + chunk.len;
    Py_ssize_t cap = 1;
    for (const char *q = base; (q = memchr(q, '\n', (size_t)(end - q))); q++) cap++;
    int outs = 0;
    for (Py_ssize_t k = 0; k < K; k++) {
        PyObject *item = PyTuple_GET_ITEM(known, k), *name_obj;
        const char *kind; int out, emit = 0;
        if (!PyTuple_Check(item)) { PyErr_SetString(PyExc_TypeError, "known: tuples"); goto done; }
        /* the name must be bytes: its pointer is kept (the tuple holds it) while scanning */
        if (!PyArg_ParseTuple(item, "O!sp|p", &PyBytes_Type, &name_obj, &kind, &out, &emit))
            goto done;
        if (strlen(kind) != 1 || !strchr("ifst", kind[0])) {
            PyErr_SetString(PyExc_ValueError, "kind must be 'i', 'f', 's' or 't'");
            goto done;
        }
        const char *name = PyBytes_AS_STRING(name_obj);
        Py_ssize_t nlen = PyBytes_GET_SIZE(name_obj);
        if (lookup(spec->exact, name, (size_t)nlen, 0) >= 0) {
            PyErr_SetString(PyExc_ValueError, "known: duplicate field name");
            goto done;
        }
        Column *c = &spec->cols[k];
        c->kind = out ? kind[0] : K_SKIP;
        c->name = name; c->nlen = nlen; c->emit = emit;
        c->out = out ? outs++ : -1;
        if (insert(spec->exact, name, nlen, (int)k, 0) || insert(spec->lower, name, nlen, (int)k, 1)) {
            PyErr_SetString(PyExc_ValueError, "known: too many fields");
            goto done;
        }
        if (!out) continue;
        c->valid = calloc((size_t)(cap + 7) / 8, 1);
        if (!c->valid) { PyErr_NoMemory(); goto done; }
        if (c->kind == K_STR) {
            c->offsets = calloc((size_t)cap + 1, sizeof(int32_t));
            if (!c->offsets) { PyErr_NoMemory(); goto done; }
        } else {
            c->values = calloc((size_t)cap, 8);
            if (!c->values) { PyErr_NoMemory(); goto done; }
        }
    }
    /* "CustomVars" in any case is a custom var (Splitter keeps it), and it is not in `known`. */
    if (identity != Py_None) {
        if (!PyTuple_Check(identity)) { PyErr_SetString(PyExc_TypeError, "identity: tuple"); goto done; }
        if (cap > MAX_ID_ROWS) {  /* checked before anything is allocated for them */
            result = Py_BuildValue("(Os)", Py_None, "too many lines for EventId offsets");
            goto done;
        }
        if (PyTuple_GET_SIZE(identity) > MAX_NAMES) {
            PyErr_Format(PyExc_ValueError, "identity: at most %d fields", MAX_NAMES);
            goto done;
        }
        spec->nident = (int)PyTuple_GET_SIZE(identity);
        spec->ident = calloc((size_t)spec->nident + 1, sizeof(int));
        if (!spec->ident) { PyErr_NoMemory(); goto done; }
        for (int i = 0; i < spec->nident; i++) {
            long v = PyLong_AsLong(PyTuple_GET_ITEM(identity, i));
            if (v < 0 || v >= K) { if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "identity index"); goto done; }
            spec->ident[i] = (int)v;
        }
        ids = malloc((size_t)cap * 32);
        if (!ids) { PyErr_NoMemory(); goto done; }
        spec->start_k = -1;
        for (Py_ssize_t k = 0; k < K; k++) {
            const Column *c = &spec->cols[k];
            if (c->nlen == 10 && memcmp(c->name, "EventStart", 10) == 0 && c->kind == K_TIME)
                spec->start_k = (int)k;
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
        PyObject *start_json, *end_json, *head, *tail;
        if (!PyTuple_Check(record)) { PyErr_SetString(PyExc_TypeError, "record: tuple or None"); goto done; }
        if (!PyArg_ParseTuple(record, "O!O!ppOO", &PyBytes_Type, &head, &PyBytes_Type, &tail,
                              &rec.keep_id, &rec.keep_cv, &start_json, &end_json))
            goto done;
        rec.head = PyBytes_AS_STRING(head); rec.head_len = PyBytes_GET_SIZE(head);
        rec.tail = PyBytes_AS_STRING(tail); rec.tail_len = PyBytes_GET_SIZE(tail);
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
    rows = scan(&ctx, spec, base, end, cap, &cv, cv_off, identity != Py_None ? &id : NULL, ids);
    Py_END_ALLOW_THREADS
    if (rows < 0) {
        if (ctx.reason && strcmp(ctx.reason, "out of memory") == 0) { PyErr_NoMemory(); goto done; }
        result = Py_BuildValue("(Os)", Py_None, ctx.reason ? ctx.reason : "refused");
        goto done;
    }
    PyObject *misfits = PyTuple_New(K);
    if (!misfits) goto done;
    for (Py_ssize_t k = 0; k < K; k++) {
        PyObject *n = PyLong_FromSsize_t(spec->cols[k].misfits);
        if (!n) { Py_DECREF(misfits); goto done; }
        PyTuple_SET_ITEM(misfits, k, n);
    }
    if (spec->rec) {  /* RECORD mode: the lines only */
        result = Py_BuildValue("(nONONN)", rows, Py_None, take((void **)&rec.lines.p, rec.lines.len),
                               Py_None, bytes_of(floats.p, floats.len), misfits);
        goto done;
    }
    PyObject *cols = PyList_New(0);
    if (!cols) { Py_DECREF(misfits); goto done; }
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
        if (!entry || PyList_Append(cols, entry)) {
            Py_XDECREF(entry); Py_DECREF(cols); Py_DECREF(misfits); goto done;
        }
        Py_DECREF(entry);
    }
    PyObject *idt = Py_None;
    Py_INCREF(Py_None);
    if (identity != Py_None) {
        Py_DECREF(Py_None);
        id_off = malloc(((size_t)rows + 1) * sizeof(int32_t));
        if (!id_off) { Py_DECREF(cols); Py_DECREF(misfits); PyErr_NoMemory(); goto done; }
        for (Py_ssize_t r = 0; r <= rows; r++) id_off[r] = (int32_t)(32 * r);  /* rows <= MAX_ID_ROWS */
        idt = Py_BuildValue("(NN)", take((void **)&id_off, ((size_t)rows + 1) * 4),
                            take((void **)&ids, (size_t)rows * 32));
    }
    result = Py_BuildValue("(nN(NN)NNN)", rows, cols,
                           take((void **)&cv_off, ((size_t)rows + 1) * 4), take((void **)&cv.p, cv.len),
                           idt, bytes_of(floats.p, floats.len), misfits);
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

/* The interface version `scanner.py` expects: 2 = immutable chunks only, names checked (issue #13);
 * 3 = the misfit rule (issue #20): typed columns in RECORD mode, misfit counts returned. A
 * build of other sources (an editable install not rebuilt) is then not used. */
#define API 3

PyMODINIT_FUNC PyInit__columns(void) {
    init_tables();
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "API", API) < 0) { Py_DECREF(m); return NULL; }
    return m;
}

