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
#define PUT(b, src, n) do { if (buf_grow((b), (n))) { FAIL("out of memory"); } \
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
                }
                break;
            default: FAIL("bad escape");
        }
        if (put_escaped(ctx, cp, dec, canon)) return NULL;
    }
}

/* A JSON number at p: validated; *is_float when it has a fraction or exponent. */
static const char *scan_number(Ctx *ctx, const char *p, const char *end, int *is_float, int *digits) {
    const char *s = p;
    *is_float = 0;
    if (p < end && *p == '-') p++;
    const char *d = p;
    if (p < end && *p == '0') p++;
    else if (p < end && *p >= '1' && *p <= '9') { while (p < end && *p >= '0' && *p <= '9') p++; }
    else FAIL("invalid number");
    *digits = (int)(p - d);
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
    (void)s;
    return p;
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
static int int_fits(const char *p, const char *e, int digits, int signed_only) {
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
            int is_float, digits;
            const char *e = scan_number(ctx, p, end, &is_float, &digits);
            if (!e) return NULL;
            if (!is_float) {
                if (!int_fits(p, e, digits, 0)) FAIL("integer beyond 64 bits");
                if (e - p == 2 && p[0] == '-' && p[1] == '0') FAIL("negative zero");
            } else if (out) {
                PUT(ctx->floats, p, (size_t)(e - p));
                PUTC(ctx->floats, '\n');
            }
            if (out) PUT(out, p, (size_t)(e - p));
            return e;
        }
    }
}

/* --- EventId: BLAKE2b-128 (RFC 7693) ------------------------------------------------------------
 * The same digest as hashlib.blake2b(text, digest_size=16), computed here because one Python call
 * per row costs more than the hash itself (tests check it against hashlib). */

static const uint64_t B2_IV[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

static const unsigned char B2_SIGMA[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

static inline uint64_t rotr64(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

static inline uint64_t load64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

#define B2_G(a, b, c, d, x, y) do { \
    v[a] = v[a] + v[b] + (x); v[d] = rotr64(v[d] ^ v[a], 32); \
    v[c] = v[c] + v[d]; v[b] = rotr64(v[b] ^ v[c], 24); \
    v[a] = v[a] + v[b] + (y); v[d] = rotr64(v[d] ^ v[a], 16); \
    v[c] = v[c] + v[d]; v[b] = rotr64(v[b] ^ v[c], 63); } while (0)

static void b2_compress(uint64_t h[8], const unsigned char block[128], uint64_t t, int last) {
    uint64_t v[16], m[16];
    for (int i = 0; i < 16; i++) m[i] = load64(block + 8 * i);
    for (int i = 0; i < 8; i++) { v[i] = h[i]; v[i + 8] = B2_IV[i]; }
    v[12] ^= t;  /* the high word of the 128-bit counter stays 0: rows are far below 2^64 bytes */
    if (last) v[14] = ~v[14];
    for (int r = 0; r < 12; r++) {
        const unsigned char *s = B2_SIGMA[r];
        B2_G(0, 4, 8, 12, m[s[0]], m[s[1]]);
        B2_G(1, 5, 9, 13, m[s[2]], m[s[3]]);
        B2_G(2, 6, 10, 14, m[s[4]], m[s[5]]);
        B2_G(3, 7, 11, 15, m[s[6]], m[s[7]]);
        B2_G(0, 5, 10, 15, m[s[8]], m[s[9]]);
        B2_G(1, 6, 11, 12, m[s[10]], m[s[11]]);
        B2_G(2, 7, 8, 13, m[s[12]], m[s[13]]);
        B2_G(3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
}

/* BLAKE2b with a 16-byte digest, no key. */
static void blake2b_16(const unsigned char *data, size_t n, unsigned char out[16]) {
    uint64_t h[8];
    unsigned char block[128];
    for (int i = 0; i < 8; i++) h[i] = B2_IV[i];
    h[0] ^= 0x01010000ULL ^ 16;
    size_t done = 0;
    while (n - done > 128) {
        b2_compress(h, data + done, (uint64_t)(done + 128), 0);
        done += 128;
    }
    memset(block, 0, sizeof block);
    memcpy(block, data + done, n - done);
    b2_compress(h, block, (uint64_t)n, 1);
    for (int i = 0; i < 16; i++) out[i] = (unsigned char)(h[i / 8] >> (8 * (i % 8)));
}

/* EventKeyer.key: hex(blake2b(text)), or for a repeat hex(blake2b(digest + ordinal, 8 bytes BE)). */
static void event_id(const char *text, size_t n, int32_t ordinal, char hex[32]) {
    unsigned char d[16], again[24];
    blake2b_16((const unsigned char *)text, n, d);
    if (ordinal) {
        memcpy(again, d, 16);
        for (int i = 0; i < 8; i++) again[16 + i] = (unsigned char)((uint64_t)ordinal >> (56 - 8 * i));
        blake2b_16(again, 24, d);
    }
    for (int i = 0; i < 16; i++) { hex[2 * i] = HEX[d[i] >> 4]; hex[2 * i + 1] = HEX[d[i] & 15]; }
}

/* --- timestamps ----------------------------------------------------------------------------- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static inline int digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* FullStory's form only, 2020-08-27T06:20:26.913Z (the one `Splitter` passes through untouched),
 * strictly valid, -> microseconds since the epoch. Anything else: -1 (the caller refuses). */
static int parse_timestamp(const char *s, size_t n, int64_t *us) {
    int y, mo, d, h, mi, se, ms;
    static const unsigned char dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':'
        || s[19] != '.' || s[23] != 'Z') return -1;
    if (digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) || digits(s + 11, 2, &h)
        || digits(s + 14, 2, &mi) || digits(s + 17, 2, &se) || digits(s + 20, 3, &ms)) return -1;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 59) return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > dim[mo - 1] + (mo == 2 && leap)) return -1;
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    *us = ((days * 86400 + h * 3600 + mi * 60 + se) * 1000 + ms) * 1000;
    return 0;
}

/* --- known names: a small open-addressing table ---------------------------------------------- */

#define TABLE 512
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
    while (t[h].name) {
        if ((size_t)t[h].len == n && (lower ? ieq_ascii(t[h].name, k, n) : same_bytes(t[h].name, k, n)))
            return t[h].index;
        h = (h + 1) & (TABLE - 1);
    }
    return -1;
}

static void insert(Slot *t, const char *k, Py_ssize_t n, int index, int lower) {
    uint32_t h = hash_bytes(k, (size_t)n, lower) & (TABLE - 1);
    while (t[h].name) h = (h + 1) & (TABLE - 1);
    t[h].name = k; t[h].len = n; t[h].index = index;
}

/* --- the scan --------------------------------------------------------------------------------- */

typedef struct { const char *key; size_t klen; size_t off, len; } Custom;

typedef struct {
    char kind;             /* K_INT, K_FLOAT, K_STR, K_TIME, K_SKIP (known, not an output column) */
    const char *name;      /* the exact field name (borrowed from `known`) */
    Py_ssize_t nlen;
    int out;               /* output column number, or -1 */
    unsigned char *valid;  /* bitmap */
    char *values;          /* n * 8 bytes (int64 / double) */
    int32_t *offsets;      /* n + 1 (strings) */
    Buf data;
} Column;

typedef struct {
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
                if (p < end && *p == 'n') {
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
                } else {
                    p = value_canon(ctx, p, end, NULL, 0);
                    if (!p) goto fail;
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

/* split(chunk: bytes, known: tuple[tuple[bytes, str, bool], ...],
 *       identity: tuple[int, ...] | None, after: bytes | None = None)
 *
 * known: every known field (exact name, kind 'i'/'f'/'s'/'t', whether it is an output column);
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
    PyObject *known, *identity, *after = Py_None;
    if (!PyArg_ParseTuple(args, "y*O!O|O", &chunk, &PyTuple_Type, &known, &identity, &after))
        return NULL;
    PyObject *result = NULL;
    Spec *spec = calloc(1, sizeof(Spec));
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
        const char *name, *kind; Py_ssize_t nlen; int out;
        if (!PyArg_ParseTuple(item, "y#sp", &name, &nlen, &kind, &out)) goto done;
        Column *c = &spec->cols[k];
        c->kind = out ? kind[0] : K_SKIP;
        c->name = name; c->nlen = nlen;
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
