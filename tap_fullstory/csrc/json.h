/* JSON tokens for the scanner: validation, decoding, and the exact text orjson writes for a value.
 * Included once, by columns.c (one translation unit, so the compiler can inline across it). */
#ifndef TAP_FULLSTORY_JSON_H
#define TAP_FULLSTORY_JSON_H

#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct { char *p; size_t len, cap; } Buf;

static int buf_grow(Buf *b, size_t extra) {
    size_t need = b->len + extra, cap = b->cap ? b->cap : 1024;
    if (need <= b->cap) return 0;
    while (cap < need) cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) return -1;
    b->p = np; b->cap = cap;
    return 0;
}
/* n == 0 copies nothing: the buffer may still be unallocated (NULL), and memcpy's arguments must
 * not be null even then (an empty RECORD head: JSONL day parts) */
#define PUT(b, src, n) do { if ((n) == 0) break; if (buf_grow((b), (n))) { FAIL("out of memory"); } \
    memcpy((b)->p + (b)->len, (src), (n)); (b)->len += (n); } while (0)
#define PUTC(b, c) do { if ((b)->len >= (b)->cap && buf_grow((b), 1)) { FAIL("out of memory"); } \
    (b)->p[(b)->len++] = (char)(c); } while (0)

enum { K_INT = 'i', K_FLOAT = 'f', K_STR = 's', K_TIME = 't', K_SKIP = '-' };

typedef struct {
    const char *reason;  /* set on refusal */
    Buf *floats;         /* float texts met in CustomVars/EventId values, '\n'-separated */
} Ctx;

#define FAIL(msg) do { ctx->reason = (msg); return NULL; } while (0)

/* byte classes: 1 = needs a look inside a string (quote, backslash, control, non-ASCII) */
static unsigned char SPECIAL[256];

static void init_tables(void) {
    for (int c = 0; c < 256; c++) SPECIAL[c] = (c == '"' || c == '\\' || c < 0x20 || c >= 0x80);
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
/* Non-zero when one of the 8 bytes is '"', '\\', below 0x20 or 0x80 and above. */
static inline uint64_t has_special(uint64_t w) {
    uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');
    return (((q - ONES) & ~q) | ((b - ONES) & ~b) | ((w - ONES * 0x20) & ~w) | w) & HIGHS;
}

static inline const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
    return p;
}

/* Length of a valid UTF-8 sequence at p (2-4), or 0. */
static inline int utf8_len(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    int n; unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 0;
    if (end - p < n) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (int i = 2; i < n; i++) if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return n;
}

static inline int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i]; v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static const char HEX[] = "0123456789abcdef";

/* A code point from an escape, as UTF-8 into `dec` and in orjson's form into `canon`. */
static int put_escaped(Ctx *ctx, unsigned cp, Buf *dec, Buf *canon) {
    char u[4]; size_t n;
    if (cp < 0x80) { u[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    if (dec && buf_grow(dec, n) == 0) { memcpy(dec->p + dec->len, u, n); dec->len += n; }
    else if (dec) { ctx->reason = "out of memory"; return -1; }
    if (!canon) return 0;
    const char *esc = NULL; char ctl[6];
    switch (cp) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\t': esc = "\\t"; break;
        case '\n': esc = "\\n"; break;
        case '\f': esc = "\\f"; break;
        case '\r': esc = "\\r"; break;
        default: break;
    }
    if (!esc && cp < 0x20) {
        ctl[0] = '\\'; ctl[1] = 'u'; ctl[2] = '0'; ctl[3] = '0';
        ctl[4] = HEX[cp >> 4]; ctl[5] = HEX[cp & 15];
        if (buf_grow(canon, 6)) { ctx->reason = "out of memory"; return -1; }
        memcpy(canon->p + canon->len, ctl, 6); canon->len += 6;
        return 0;
    }
    if (esc) { u[0] = esc[0]; u[1] = esc[1]; n = 2; }
    if (buf_grow(canon, n)) { ctx->reason = "out of memory"; return -1; }
    memcpy(canon->p + canon->len, u, n); canon->len += n;
    return 0;
}

/* A JSON string at p (p[0] == '"'): validated; decoded UTF-8 into `dec` (no quotes), orjson's
 * text into `canon` (with quotes); either may be NULL. Returns the byte after the closing quote.
 * `escaped` (may be NULL) is set when the string held an escape. */
static const char *scan_string(Ctx *ctx, const char *p, const char *end, Buf *dec, Buf *canon,
                               int *escaped) {
    p++;
    if (canon) PUTC(canon, '"');
    for (;;) {
        const char *run = p;
        while (end - p >= 8) {  /* 8 bytes at a time: any quote, backslash, control, non-ASCII? */
            uint64_t w;
            memcpy(&w, p, 8);
            if (has_special(w)) break;
            p += 8;
        }
        while (p < end && !SPECIAL[(unsigned char)*p]) p++;
        if (p > run) {
            size_t n = (size_t)(p - run);
            if (dec) PUT(dec, run, n);
            if (canon) PUT(canon, run, n);
        }
        if (p >= end) FAIL("unterminated string");
        unsigned char c = (unsigned char)*p;
        if (c == '"') { if (canon) PUTC(canon, '"'); return p + 1; }
        if (c < 0x20) FAIL("control character in a string");
        if (c >= 0x80) {
            int n = utf8_len((const unsigned char *)p, (const unsigned char *)end);
            if (!n) FAIL("invalid UTF-8");
            if (dec) PUT(dec, p, (size_t)n);
            if (canon) PUT(canon, p, (size_t)n);
            p += n;
            continue;
        }
        /* backslash */
        if (escaped) *escaped = 1;
        if (end - p < 2) FAIL("unterminated escape");
        unsigned cp;
        switch (p[1]) {
            case '"': cp = '"'; p += 2; break;
            case '\\': cp = '\\'; p += 2; break;
            case '/': cp = '/'; p += 2; break;
            case 'b': cp = '\b'; p += 2; break;
            case 'f': cp = '\f'; p += 2; break;
            case 'n': cp = '\n'; p += 2; break;
            case 'r': cp = '\r'; p += 2; break;
            case 't': cp = '\t'; p += 2; break;
            case 'u':
                if (end - p < 6 || hex4(p + 2, &cp)) FAIL("bad \\u escape");
                p += 6;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned lo;
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo)
                        || lo < 0xDC00 || lo > 0xDFFF) FAIL("lone surrogate");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    FAIL("lone surrogate");
                } else if (cp == 0) {
                    /* NUL: the reference strips or keeps it (nul_characters), and says so */
                    FAIL("NUL character");
                }
                break;
            default: FAIL("bad escape");
        }
        if (put_escaped(ctx, cp, dec, canon)) return NULL;
    }
}

/* A JSON number at p: validated; *is_float when it has a fraction or exponent; *digits counts
 * the integer part's digits (size_t: a chunk may hold more than 2^31 of them). */
static const char *scan_number(Ctx *ctx, const char *p, const char *end, int *is_float,
                               size_t *digits) {
    *is_float = 0;
    if (p < end && *p == '-') p++;
    const char *d = p;
    if (p < end && *p == '0') p++;
    else if (p < end && *p >= '1' && *p <= '9') { while (p < end && *p >= '0' && *p <= '9') p++; }
    else FAIL("invalid number");
    *digits = (size_t)(p - d);
    if (p < end && *p == '.') {
        *is_float = 1; p++;
        if (!(p < end && *p >= '0' && *p <= '9')) FAIL("invalid number");
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        *is_float = 1; p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (!(p < end && *p >= '0' && *p <= '9')) FAIL("invalid number");
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    return p;
}

/* Longest number text read as a double (a longer one is refused: the reference decides). */
#define MAX_NUMBER 400

/* The double that a number's text [p, e) (JSON grammar already checked) reads as. strtod gets a
 * NUL-terminated copy: on the chunk itself it would read on past `e` while digits follow, and
 * past the end of a buffer that ends inside a number. -1: text too long, or beyond a double
 * (orjson refuses such a number: "number is infinity when parsed as double"). */
static int number_value(const char *p, const char *e, double *out) {
    char text[MAX_NUMBER + 1];
    size_t n = (size_t)(e - p);
    if (n > MAX_NUMBER) return -1;
    memcpy(text, p, n);
    text[n] = 0;
    char *stop;
    double v = strtod(text, &stop);
    if (stop != text + n || !(v <= DBL_MAX && v >= -DBL_MAX)) return -1;
    *out = v;
    return 0;
}

/* A float's text [p, e) reads as a finite double (what orjson accepts). Without an exponent and
 * at most 300 characters it is below 1e300: no need to convert. */
static int float_finite(const char *p, const char *e) {
    double v;
    if (e - p <= 300 && !memchr(p, 'e', (size_t)(e - p)) && !memchr(p, 'E', (size_t)(e - p)))
        return 1;
    return number_value(p, e, &v) == 0;
}

/* memcmp(a, b, n) == 0 for short keys, inlined (a libc call per key of every row adds up). */
static inline int same_bytes(const char *a, const char *b, size_t n) {
    while (n >= 8) {
        uint64_t x, y;
        memcpy(&x, a, 8); memcpy(&y, b, 8);
        if (x != y) return 0;
        a += 8; b += 8; n -= 8;
    }
    while (n--) if (*a++ != *b++) return 0;
    return 1;
}

/* An integer's text (sign, digits) within [-2^63, 2^64 - 1]: what orjson reads as an int. */
static int int_fits(const char *p, const char *e, size_t digits, int signed_only) {
    if (digits < 19) return 1;
    if (digits > 20) return 0;
    int neg = *p == '-';
    const char *limit = neg ? "9223372036854775808"
                            : (signed_only ? "9223372036854775807" : "18446744073709551615");
    size_t n = strlen(limit);
    const char *d = p + neg;
    if ((size_t)(e - d) != n) return (size_t)(e - d) < n;
    return memcmp(d, limit, n) <= 0;
}

/* An integer's text (within 64 bits) whose value a double holds exactly, as every integer in
 * [-2^53, 2^53] (the misfit rule for a number column: beyond, an integer would change). */
static int exact_in_double(const char *p, const char *e, size_t digits) {
    if (digits < 16) return 1;
    if (digits > 16) return 0;
    const char *d = p + (*p == '-');
    return memcmp(d, "9007199254740992", 16) <= 0 && e - d == 16;
}

static inline int literal(const char *p, const char *end, const char *word, size_t n) {
    return (size_t)(end - p) >= n && memcmp(p, word, n) == 0;
}

/* Any JSON value at p, written as orjson would write it into `out` (may be NULL: validate only).
 * Nested objects are refused (key order/duplicates), float texts are recorded for checking. */
static const char *value_canon(Ctx *ctx, const char *p, const char *end, Buf *out, int depth) {
    if (p >= end) FAIL("missing value");
    switch (*p) {
        case '"':
            return scan_string(ctx, p, end, NULL, out, NULL);
        case 't':
            if (!literal(p, end, "true", 4)) FAIL("invalid literal");
            if (out) PUT(out, "true", 4);
            return p + 4;
        case 'f':
            if (!literal(p, end, "false", 5)) FAIL("invalid literal");
            if (out) PUT(out, "false", 5);
            return p + 5;
        case 'n':
            if (!literal(p, end, "null", 4)) FAIL("invalid literal");
            if (out) PUT(out, "null", 4);
            return p + 4;
        case '[': {
            if (depth > 32) FAIL("nesting too deep");
            if (out) PUTC(out, '[');
            p = skip_ws(p + 1, end);
            if (p < end && *p == ']') { if (out) PUTC(out, ']'); return p + 1; }
            for (;;) {
                p = value_canon(ctx, p, end, out, depth + 1);
                if (!p) return NULL;
                p = skip_ws(p, end);
                if (p < end && *p == ',') { if (out) PUTC(out, ','); p = skip_ws(p + 1, end); continue; }
                if (p < end && *p == ']') { if (out) PUTC(out, ']'); return p + 1; }
                FAIL("invalid array");
            }
        }
        case '{':
            FAIL("nested object");
        default: {
            int is_float;
            size_t digits;
            const char *e = scan_number(ctx, p, end, &is_float, &digits);
            if (!e) return NULL;
            if (!is_float) {
                if (!int_fits(p, e, digits, 0)) FAIL("integer beyond 64 bits");
                if (e - p == 2 && p[0] == '-' && p[1] == '0') FAIL("negative zero");
            } else if (!float_finite(p, e)) {  /* also when only validated: orjson refuses it */
                FAIL("float out of range");
            } else if (out) {
                PUT(ctx->floats, p, (size_t)(e - p));
                PUTC(ctx->floats, '\n');
            }
            if (out) PUT(out, p, (size_t)(e - p));
            return e;
        }
    }
}

#endif
