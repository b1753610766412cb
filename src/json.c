/*
 * json.c - strict JSON codec (see json.h for the exact semantics).
 *
 * Both directions are recursive descent with an explicit depth limit that is
 * clamped to CDK_JSON_DEPTH_LIMIT, so C recursion is always bounded.
 *
 * Memory: every scratch buffer lives in a Lua userdata anchored at a fixed
 * stack slot of the current call (grown by allocating a bigger one and
 * lua_replace-ing the slot), never in malloc'd memory.  A memory error raised
 * by any Lua API call in the middle of a decode/encode therefore cannot leak;
 * the garbage collector reclaims everything.  No luaL_Buffer is used, so
 * there are no stack-discipline differences between Lua versions to respect.
 */
#include <float.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#if LUA_VERSION_NUM >= 503
typedef lua_Integer cdk_idx_t; /* type of the index argument of lua_rawgeti/seti */
#else
typedef int cdk_idx_t;
#endif

/* The address of this constant is the registry key of the array metatable. */
static const char array_mt_key = 'A';

static int cdk_absindex(lua_State *L, int idx)
{
    return (idx < 0 && idx > LUA_REGISTRYINDEX) ? lua_gettop(L) + idx + 1 : idx;
}

static int clamp_depth(int max_depth)
{
    if (max_depth <= 0)
        return CDK_JSON_DEFAULT_DEPTH;
    if (max_depth > CDK_JSON_DEPTH_LIMIT)
        return CDK_JSON_DEPTH_LIMIT;
    return max_depth;
}

void cdk_json_push_array_mt(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    if (lua_type(L, -1) == LUA_TTABLE)
        return;
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushliteral(L, "cdnkit.array");
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__jsontype");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &array_mt_key);
}

/* core.use_array_mt(mt): from now on decoded arrays carry `mt` (lua-cjson's
   cjson.array_mt, so that cjson.encode writes [] for an empty one); `mt`
   gets __jsontype = "array", which cdnkit's encoder reads.  Per lua_State. */
int cdk_json_l_use_array_mt(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushliteral(L, "array");
    lua_setfield(L, 1, "__jsontype");
    lua_pushvalue(L, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    return 0;
}

/* ======================================================================== */
/* Decoder                                                                  */
/* ======================================================================== */

typedef struct {
    lua_State *L;
    const char *start; /* first byte of the input (positions are relative) */
    const char *p;     /* current position */
    const char *end;   /* one past the last byte */
    int max_depth;
    int mt_slot;      /* stack slot holding the array metatable */
    int scratch_slot; /* stack slot anchoring the scratch userdata (or nil) */
    char *scratch;
    size_t scratch_cap;
    char *err;
    size_t errlen;
} dec_t;

static int dec_fail(dec_t *D, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int dec_fail(dec_t *D, const char *fmt, ...)
{
    va_list ap;
    if (D->errlen == 0)
        return 0;
    va_start(ap, fmt);
    vsnprintf(D->err, D->errlen, fmt, ap);
    va_end(ap);
    return 0;
}

static size_t dec_pos(const dec_t *D, const char *p)
{
    return (size_t)(p - D->start) + 1;
}

static int dec_truncated(dec_t *D)
{
    return dec_fail(D, "truncated input at byte %zu", dec_pos(D, D->end));
}

/* Error for the byte at p (or truncation if p is at the end). */
static int dec_unexpected(dec_t *D, const char *p)
{
    unsigned char c;
    if (p >= D->end)
        return dec_truncated(D);
    c = (unsigned char)*p;
    if (c >= 0x20 && c < 0x7f)
        return dec_fail(D, "unexpected character '%c' at byte %zu", (int)c, dec_pos(D, p));
    return dec_fail(D, "unexpected byte 0x%02X at byte %zu", (unsigned)c, dec_pos(D, p));
}

/* Make the scratch buffer hold at least used + extra bytes, keeping the first
   `used` bytes.  May raise a memory error (nothing leaks: it is a userdata). */
static char *dec_reserve(dec_t *D, size_t used, size_t extra)
{
    size_t need = used + extra;
    if (need > D->scratch_cap) {
        size_t cap = D->scratch_cap ? D->scratch_cap : 256;
        char *nb;
        while (cap < need)
            cap = (cap > ((size_t)-1) / 2) ? need : cap * 2;
        nb = (char *)lua_newuserdata(D->L, cap);
        if (used > 0)
            memcpy(nb, D->scratch, used);
        lua_replace(D->L, D->scratch_slot);
        D->scratch = nb;
        D->scratch_cap = cap;
    }
    return D->scratch;
}

static void dec_skip_ws(dec_t *D)
{
    const char *p = D->p, *end = D->end;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    D->p = p;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Read the 4 hex digits at p (escape starts at esc, for messages). */
static int dec_hex4(dec_t *D, const char *p, const char *esc, unsigned *out)
{
    unsigned v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        int h;
        if (p + i >= D->end)
            return dec_truncated(D);
        h = hexval((unsigned char)p[i]);
        if (h < 0)
            return dec_fail(D, "invalid \\u escape at byte %zu", dec_pos(D, esc));
        v = (v << 4) | (unsigned)h;
    }
    *out = v;
    return 1;
}

static size_t utf8_encode(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

#define STR_PLAIN(c) ((c) >= 0x20 && (c) != '"' && (c) != '\\')

/* D->p is at the opening quote.  Pushes the decoded string. */
static int dec_string(dec_t *D)
{
    const char *begin = D->p + 1, *p = begin, *end = D->end;
    size_t n;
    char *buf;

    /* fast path: no escapes -> one lua_pushlstring straight from the input */
    for (;;) {
        unsigned char c;
        if (p >= end)
            return dec_truncated(D);
        c = (unsigned char)*p;
        if (c == '"') {
            lua_pushlstring(D->L, begin, (size_t)(p - begin));
            D->p = p + 1;
            return 1;
        }
        if (c == '\\')
            break;
        if (c < 0x20)
            return dec_fail(D, "control character 0x%02X in string at byte %zu", (unsigned)c,
                            dec_pos(D, p));
        p++;
    }

    /* slow path: copy into the scratch buffer.  The decoded text is never
       longer than the source text, but grow as we go so that one escaped
       string in a big document does not reserve the whole document. */
    n = (size_t)(p - begin);
    buf = dec_reserve(D, 0, n + 16);
    memcpy(buf, begin, n);
    for (;;) {
        unsigned char c;
        if (p >= end)
            return dec_truncated(D);
        c = (unsigned char)*p;
        if (c == '"') {
            lua_pushlstring(D->L, D->scratch, n);
            D->p = p + 1;
            return 1;
        }
        if (c == '\\') {
            const char *esc = p;
            char ch;
            buf = dec_reserve(D, n, 4);
            if (++p >= end)
                return dec_truncated(D);
            switch (*p) {
            case '"': ch = '"'; break;
            case '\\': ch = '\\'; break;
            case '/': ch = '/'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (!dec_hex4(D, p + 1, esc, &cp))
                    return 0;
                p += 5; /* past 'u' and the 4 digits */
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (p >= end || (p[0] == '\\' && p + 1 >= end))
                        return dec_truncated(D);
                    if (p[0] != '\\' || p[1] != 'u')
                        return dec_fail(D, "lone surrogate \\u%04X at byte %zu", cp,
                                        dec_pos(D, esc));
                    if (!dec_hex4(D, p + 2, p, &lo))
                        return 0;
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return dec_fail(D, "lone surrogate \\u%04X at byte %zu", cp,
                                        dec_pos(D, esc));
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return dec_fail(D, "lone surrogate \\u%04X at byte %zu", cp,
                                    dec_pos(D, esc));
                }
                n += utf8_encode(buf + n, cp);
                continue;
            }
            default:
                if ((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f)
                    return dec_fail(D, "invalid escape '\\%c' at byte %zu", *p, dec_pos(D, esc));
                return dec_fail(D, "invalid escape at byte %zu", dec_pos(D, esc));
            }
            buf[n++] = ch;
            p++;
        } else if (c < 0x20) {
            return dec_fail(D, "control character 0x%02X in string at byte %zu", (unsigned)c,
                            dec_pos(D, p));
        } else {
            const char *run = p;
            size_t k;
            while (p < end && STR_PLAIN((unsigned char)*p))
                p++;
            k = (size_t)(p - run);
            buf = dec_reserve(D, n, k);
            memcpy(buf + n, run, k);
            n += k;
        }
    }
}

static int dec_literal(dec_t *D, const char *lit, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (D->p + i >= D->end)
            return dec_truncated(D);
        if (D->p[i] != lit[i])
            return dec_unexpected(D, D->p + i);
    }
    D->p += n;
    return 1;
}

#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')

#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0 && DBL_MANT_DIG == 53
#define CDK_FAST_STRTOD 1
static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
#else
#define CDK_FAST_STRTOD 0
#endif

/* Locale-independent strtod for a validated JSON number text s[0..len)
   (no sign): the '.' is replaced by the current locale's decimal point
   before calling strtod, which therefore reads it back correctly. */
static int dec_strtod(dec_t *D, const char *s, size_t len, double *out)
{
    const char *dp = localeconv()->decimal_point;
    size_t dplen = (dp != NULL && dp[0] != '\0') ? strlen(dp) : 0;
    char local[64], *buf, *endp;
    size_t i, j = 0;
    if (dplen == 0) {
        dp = ".";
        dplen = 1;
    }
    if (len + dplen + 1 <= sizeof(local))
        buf = local;
    else
        buf = dec_reserve(D, 0, len + dplen + 1);
    for (i = 0; i < len; i++) {
        if (s[i] == '.') {
            memcpy(buf + j, dp, dplen);
            j += dplen;
        } else {
            buf[j++] = s[i];
        }
    }
    buf[j] = '\0';
    *out = strtod(buf, &endp);
    if (endp != buf + j)
        return dec_fail(D, "invalid number at byte %zu", dec_pos(D, s));
    return 1;
}

/* D->p is at '-' or a digit. */
static int dec_number(dec_t *D)
{
    lua_State *L = D->L;
    const char *start = D->p, *p = start, *end = D->end, *digits;
    int neg = 0, isint = 1, inexact = 0, ndig = 0;
    unsigned long long mant = 0; /* first (up to) 19 significant digits */
    long exp10 = 0;              /* value = mant * 10^exp10 (when !inexact) */
    double v;

    if (*p == '-') {
        neg = 1;
        if (++p >= end)
            return dec_truncated(D);
    }
    digits = p;
    if (*p == '0') {
        p++;
        if (p < end && IS_DIGIT(*p))
            return dec_unexpected(D, p); /* leading zero */
    } else if (*p >= '1' && *p <= '9') {
        do {
            int d = *p - '0';
            if (ndig < 19) {
                mant = mant * 10 + (unsigned)d;
                ndig++;
            } else {
                exp10++;
                if (d)
                    inexact = 1;
            }
            p++;
        } while (p < end && IS_DIGIT(*p));
    } else {
        return dec_unexpected(D, p);
    }
    if (p < end && *p == '.') {
        isint = 0;
        if (++p >= end)
            return dec_truncated(D);
        if (!IS_DIGIT(*p))
            return dec_unexpected(D, p);
        do {
            int d = *p - '0';
            if (mant == 0 && d == 0) {
                exp10--;
            } else if (ndig < 19) {
                mant = mant * 10 + (unsigned)d;
                ndig++;
                exp10--;
            } else if (d) {
                inexact = 1;
            }
            p++;
        } while (p < end && IS_DIGIT(*p));
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        int eneg = 0;
        long e = 0;
        isint = 0;
        if (++p >= end)
            return dec_truncated(D);
        if (*p == '+' || *p == '-') {
            eneg = (*p == '-');
            if (++p >= end)
                return dec_truncated(D);
        }
        if (!IS_DIGIT(*p))
            return dec_unexpected(D, p);
        do {
            if (e < 100000)
                e = e * 10 + (*p - '0');
            p++;
        } while (p < end && IS_DIGIT(*p));
        exp10 += eneg ? -e : e;
    }
    D->p = p;

    if (isint && exp10 == 0) {
        /* all digits are in mant (at most 19 digits, so no u64 overflow) */
        const unsigned long long lim = 9223372036854775807ULL + (neg ? 1u : 0u);
        if (mant <= lim) {
            if (neg && mant == 0) {
                lua_pushnumber(L, (lua_Number)-0.0);
                return 1;
            }
#if CDK_HAVE_INT64
            if (neg)
                lua_pushinteger(L, (lua_Integer)(-(long long)(mant - 1) - 1));
            else
                lua_pushinteger(L, (lua_Integer)mant);
#else
            if (mant <= (1ULL << 53))
                lua_pushnumber(L, neg ? -(lua_Number)mant : (lua_Number)mant);
            else /* not exactly representable as a double: keep the digits */
                lua_pushlstring(L, start, (size_t)(p - start));
#endif
            return 1;
        }
        /* overflows int64: fall through to a double */
    }

    if (mant == 0) {
        v = 0.0;
    }
#if CDK_FAST_STRTOD
    /* Clinger's fast path: both operands exact, one correctly rounded op */
    else if (!inexact && mant <= (1ULL << 53) && exp10 >= -22 && exp10 <= 22) {
        v = (double)mant;
        if (exp10 < 0)
            v /= pow10_exact[-exp10];
        else
            v *= pow10_exact[exp10];
    }
#endif
    else if (!dec_strtod(D, digits, (size_t)(p - digits), &v)) {
        return 0;
    }
    lua_pushnumber(L, (lua_Number)(neg ? -v : v));
    return 1;
}

static int dec_value(dec_t *D, int depth);

static int dec_array(dec_t *D, int depth)
{
    lua_State *L = D->L;
    int n = 0;
    if (depth > D->max_depth)
        return dec_fail(D, "nesting deeper than %d at byte %zu", D->max_depth, dec_pos(D, D->p));
    if (!lua_checkstack(L, 4))
        return dec_fail(D, "Lua stack exhausted at byte %zu", dec_pos(D, D->p));
    D->p++;
    dec_skip_ws(D);
    /* a non-empty array starts with room for 4 items: fewer resizes for
       the short lists API answers are made of */
    lua_createtable(L, (D->p < D->end && *D->p == ']') ? 0 : 4, 0);
    lua_pushvalue(L, D->mt_slot);
    lua_setmetatable(L, -2);
    if (D->p >= D->end)
        return dec_truncated(D);
    if (*D->p == ']') {
        D->p++;
        return 1;
    }
    for (;;) {
        if (!dec_value(D, depth))
            return 0;
        if (n == INT_MAX)
            return dec_fail(D, "array too long at byte %zu", dec_pos(D, D->p));
        lua_rawseti(L, -2, (cdk_idx_t)++n);
        dec_skip_ws(D);
        if (D->p >= D->end)
            return dec_truncated(D);
        if (*D->p == ',') {
            D->p++;
        } else if (*D->p == ']') {
            D->p++;
            return 1;
        } else {
            return dec_unexpected(D, D->p);
        }
    }
}

static int dec_object(dec_t *D, int depth)
{
    lua_State *L = D->L;
    if (depth > D->max_depth)
        return dec_fail(D, "nesting deeper than %d at byte %zu", D->max_depth, dec_pos(D, D->p));
    if (!lua_checkstack(L, 4))
        return dec_fail(D, "Lua stack exhausted at byte %zu", dec_pos(D, D->p));
    D->p++;
    dec_skip_ws(D);
    /* likewise, a non-empty object starts with room for 4 keys */
    lua_createtable(L, 0, (D->p < D->end && *D->p == '}') ? 0 : 4);
    if (D->p >= D->end)
        return dec_truncated(D);
    if (*D->p == '}') {
        D->p++;
        return 1;
    }
    for (;;) {
        dec_skip_ws(D);
        if (D->p >= D->end)
            return dec_truncated(D);
        if (*D->p != '"')
            return dec_unexpected(D, D->p); /* unquoted key, single quotes, trailing ',' */
        if (!dec_string(D))
            return 0;
        dec_skip_ws(D);
        if (D->p >= D->end)
            return dec_truncated(D);
        if (*D->p != ':')
            return dec_unexpected(D, D->p);
        D->p++;
        if (!dec_value(D, depth))
            return 0;
        lua_rawset(L, -3); /* duplicate keys: last one wins */
        dec_skip_ws(D);
        if (D->p >= D->end)
            return dec_truncated(D);
        if (*D->p == ',') {
            D->p++;
        } else if (*D->p == '}') {
            D->p++;
            return 1;
        } else {
            return dec_unexpected(D, D->p);
        }
    }
}

/* Parse one value (after optional whitespace) and push it.  depth is the
   nesting level of the enclosing container (0 at the top). */
static int dec_value(dec_t *D, int depth)
{
    dec_skip_ws(D);
    if (D->p >= D->end)
        return dec_truncated(D);
    switch (*D->p) {
    case '{':
        return dec_object(D, depth + 1);
    case '[':
        return dec_array(D, depth + 1);
    case '"':
        return dec_string(D);
    case 't':
        if (!dec_literal(D, "true", 4))
            return 0;
        lua_pushboolean(D->L, 1);
        return 1;
    case 'f':
        if (!dec_literal(D, "false", 5))
            return 0;
        lua_pushboolean(D->L, 0);
        return 1;
    case 'n':
        if (!dec_literal(D, "null", 4))
            return 0;
        lua_pushlightuserdata(D->L, NULL);
        return 1;
    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return dec_number(D);
    default:
        return dec_unexpected(D, D->p);
    }
}

int cdk_json_decode(lua_State *L, const char *s, size_t len, int max_depth, char *err,
                    size_t errlen)
{
    dec_t D;
    int base = lua_gettop(L);

    if (errlen > 0)
        err[0] = '\0';
    D.L = L;
    D.start = s;
    D.p = s;
    D.end = s + len;
    D.max_depth = clamp_depth(max_depth);
    D.scratch = NULL;
    D.scratch_cap = 0;
    D.err = err;
    D.errlen = errlen;

    if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        D.p += 3; /* UTF-8 byte order mark */
    dec_skip_ws(&D);
    if (D.p >= D.end)
        return dec_fail(&D, "empty input");
    if (!lua_checkstack(L, 6))
        return dec_fail(&D, "Lua stack exhausted");

    cdk_json_push_array_mt(L);
    D.mt_slot = base + 1;
    lua_pushnil(L);
    D.scratch_slot = base + 2;

    if (!dec_value(&D, 0)) {
        lua_settop(L, base);
        return 0;
    }
    dec_skip_ws(&D);
    if (D.p < D.end) {
        lua_settop(L, base);
        return dec_fail(&D, "trailing garbage at byte %zu", dec_pos(&D, D.p));
    }
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
    return 1;
}

/* ======================================================================== */
/* Encoder                                                                  */
/* ======================================================================== */

typedef struct {
    lua_State *L;
    char *buf; /* output, a userdata anchored at stack slot `slot` */
    size_t len, cap;
    int slot;
    int max_depth;
    char msg[128];  /* error message, without the path */
    char path[160]; /* path of the offending value, built while unwinding */
    size_t pathlen;
    int path_cut; /* path was too long: its tail was dropped */
} enc_t;

static int enc_fail(enc_t *E, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int enc_fail(enc_t *E, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(E->msg, sizeof(E->msg), fmt, ap);
    va_end(ap);
    return 0;
}

/* Prepend a path segment; when the path gets too long keep its head (the
   part nearest to the root) and drop the tail. */
static void enc_path_prepend(enc_t *E, const char *seg, size_t n)
{
    const size_t cap = sizeof(E->path) - 1;
    size_t keep = E->pathlen;
    if (n > cap)
        n = cap;
    if (keep + n > cap) {
        keep = cap - n;
        E->path_cut = 1;
    }
    memmove(E->path + n, E->path, keep);
    memcpy(E->path, seg, n);
    E->pathlen = n + keep;
    E->path[E->pathlen] = '\0';
}

static void enc_path_index(enc_t *E, size_t i)
{
    char seg[32];
    int n = snprintf(seg, sizeof(seg), "[%zu]", i);
    if (n > 0)
        enc_path_prepend(E, seg, (size_t)n);
}

static void enc_path_key(enc_t *E, const char *k, size_t klen)
{
    char seg[48];
    size_t i, n = 0, max = 40;
    seg[n++] = '.';
    for (i = 0; i < klen && i < max; i++) {
        unsigned char c = (unsigned char)k[i];
        seg[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (klen > max) {
        memcpy(seg + n, "...", 3);
        n += 3;
    }
    enc_path_prepend(E, seg, n);
}

static int enc_grow(enc_t *E, size_t extra)
{
    size_t need = E->len + extra, cap = E->cap;
    char *nb;
    if (need < E->len)
        return enc_fail(E, "cannot encode: output too large");
    while (cap < need)
        cap = (cap > ((size_t)-1) / 2) ? need : cap * 2;
    nb = (char *)lua_newuserdata(E->L, cap);
    memcpy(nb, E->buf, E->len);
    lua_replace(E->L, E->slot);
    E->buf = nb;
    E->cap = cap;
    return 1;
}

#define ENC_RESERVE(E, n) ((E)->cap - (E)->len >= (size_t)(n) || enc_grow((E), (size_t)(n)))

static int enc_put(enc_t *E, const char *s, size_t n)
{
    if (!ENC_RESERVE(E, n))
        return 0;
    memcpy(E->buf + E->len, s, n);
    E->len += n;
    return 1;
}

static int enc_putc(enc_t *E, char c)
{
    if (!ENC_RESERVE(E, 1))
        return 0;
    E->buf[E->len++] = c;
    return 1;
}

static int enc_string(enc_t *E, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;
    if (!enc_putc(E, '"'))
        return 0;
    while (i < n) {
        size_t run = i;
        unsigned char c;
        while (i < n && STR_PLAIN((unsigned char)s[i]))
            i++;
        if (i > run && !enc_put(E, s + run, i - run))
            return 0;
        if (i >= n)
            break;
        c = (unsigned char)s[i++];
        if (!ENC_RESERVE(E, 6))
            return 0;
        E->buf[E->len++] = '\\';
        switch (c) {
        case '"': E->buf[E->len++] = '"'; break;
        case '\\': E->buf[E->len++] = '\\'; break;
        case '\b': E->buf[E->len++] = 'b'; break;
        case '\f': E->buf[E->len++] = 'f'; break;
        case '\n': E->buf[E->len++] = 'n'; break;
        case '\r': E->buf[E->len++] = 'r'; break;
        case '\t': E->buf[E->len++] = 't'; break;
        default:
            E->buf[E->len++] = 'u';
            E->buf[E->len++] = '0';
            E->buf[E->len++] = '0';
            E->buf[E->len++] = hex[c >> 4];
            E->buf[E->len++] = hex[c & 15];
            break;
        }
    }
    return enc_putc(E, '"');
}

static int enc_int(enc_t *E, int neg, unsigned long long u)
{
    char tmp[24];
    size_t n = sizeof(tmp);
    do {
        tmp[--n] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u != 0);
    if (neg)
        tmp[--n] = '-';
    return enc_put(E, tmp + n, sizeof(tmp) - n);
}

static int enc_double(enc_t *E, double d)
{
    char tmp[64], out[64];
    int prec, len = 0;
    size_t i, n = 0;
    if (isnan(d))
        return enc_fail(E, "cannot encode NaN");
    if (isinf(d))
        return enc_fail(E, "cannot encode %s", d > 0 ? "inf" : "-inf");
#if LUA_VERSION_NUM < 503
    /* All numbers are doubles: print integral values below 2^63 as their
       exact decimal expansion (what an API expecting an integer wants).
       Beyond 2^53 such text decodes back as a digit string (see json.h). */
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 &&
        d == (double)(long long)d && !(d == 0 && signbit(d)))
        return d < 0 ? enc_int(E, 1, (unsigned long long)(-d))
                     : enc_int(E, 0, (unsigned long long)d);
#endif
    /* shortest %.Ng (14 <= N <= 17) that reads back as the same double;
       snprintf and strtod use the same locale, so the check is sound */
    for (prec = 14; prec <= 17; prec++) {
        len = snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (len <= 0 || (size_t)len >= sizeof(tmp))
            return enc_fail(E, "cannot encode number");
        if (prec == 17 || strtod(tmp, NULL) == d)
            break;
    }
    /* make it locale-independent: whatever the locale used as decimal point
       (possibly several bytes) becomes '.' */
    for (i = 0; i < (size_t)len;) {
        char c = tmp[i];
        if (IS_DIGIT(c) || c == '-' || c == '+' || c == 'e' || c == 'E') {
            out[n++] = c;
            i++;
        } else {
            out[n++] = '.';
            while (i < (size_t)len && !(IS_DIGIT(tmp[i]) || tmp[i] == 'e' || tmp[i] == 'E'))
                i++;
        }
    }
    return enc_put(E, out, n);
}

static int enc_number(enc_t *E, int idx)
{
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(E->L, idx)) {
        lua_Integer v = lua_tointeger(E->L, idx);
        if (v < 0)
            return enc_int(E, 1, 0ULL - (unsigned long long)v);
        return enc_int(E, 0, (unsigned long long)v);
    }
#endif
    return enc_double(E, (double)lua_tonumber(E->L, idx));
}

static int enc_value(enc_t *E, int idx, int depth);

/* elements 1..n of the table at idx */
static int enc_array(enc_t *E, int idx, size_t n, int depth)
{
    lua_State *L = E->L;
    size_t i;
    if (!enc_putc(E, '['))
        return 0;
    for (i = 1; i <= n; i++) {
        if (i > 1 && !enc_putc(E, ','))
            return 0;
        lua_rawgeti(L, idx, (cdk_idx_t)i);
        if (!enc_value(E, lua_gettop(L), depth)) {
            enc_path_index(E, i);
            return 0;
        }
        lua_pop(L, 1);
    }
    return enc_putc(E, ']');
}

typedef struct {
    const char *s;
    size_t len;
    size_t pos; /* value is kv[2 * pos + 2] */
} enc_key_t;

static int enc_key_cmp(const void *a, const void *b)
{
    const enc_key_t *x = (const enc_key_t *)a, *y = (const enc_key_t *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c != 0)
        return c;
    return x->len < y->len ? -1 : (x->len > y->len ? 1 : 0);
}

/* object with the nstr string keys of the table at idx, keys sorted */
static int enc_object(enc_t *E, int idx, size_t nstr, int depth)
{
    lua_State *L = E->L;
    int kv;
    size_t m = 0, i;
    enc_key_t *keys;

    /* Copy keys and values into a fresh table kv = {k1, v1, k2, v2, ...}:
       it anchors the key strings whose pointers we sort, and the values,
       even if the source table is weak and the collector runs meanwhile. */
    lua_createtable(L, (int)(nstr * 2 < (size_t)INT_MAX ? nstr * 2 : 0), 0);
    kv = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING || m >= nstr) {
            lua_pop(L, 1);
            continue;
        }
        lua_pushvalue(L, -2);
        lua_rawseti(L, kv, (cdk_idx_t)(2 * m + 1));
        lua_rawseti(L, kv, (cdk_idx_t)(2 * m + 2));
        m++;
    }
    if (!enc_putc(E, '{'))
        return 0;
    if (m == 0)
        return enc_putc(E, '}');
    keys = (enc_key_t *)lua_newuserdata(L, m * sizeof(enc_key_t));
    for (i = 0; i < m; i++) {
        lua_rawgeti(L, kv, (cdk_idx_t)(2 * i + 1));
        keys[i].s = lua_tolstring(L, -1, &keys[i].len); /* anchored by kv */
        keys[i].pos = i;
        lua_pop(L, 1);
    }
    qsort(keys, m, sizeof(enc_key_t), enc_key_cmp);
    for (i = 0; i < m; i++) {
        if (i > 0 && !enc_putc(E, ','))
            return 0;
        if (!enc_string(E, keys[i].s, keys[i].len) || !enc_putc(E, ':'))
            return 0;
        lua_rawgeti(L, kv, (cdk_idx_t)(2 * keys[i].pos + 2));
        if (!enc_value(E, lua_gettop(L), depth)) {
            enc_path_key(E, keys[i].s, keys[i].len);
            return 0;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 2); /* keys, kv */
    return enc_putc(E, '}');
}

static int enc_table(enc_t *E, int idx, int depth)
{
    lua_State *L = E->L;
    int is_array = 0, bad_kind = 0; /* 1: non-integer number, 2: integer < 1 */
    size_t nstr = 0, nint = 0, nbad = 0;
    double maxk = 0, badk = 0;

    if (depth > E->max_depth)
        return enc_fail(E, "cannot encode table nested deeper than %d (reference cycle?)",
                        E->max_depth);
    if (!lua_checkstack(L, 8))
        return enc_fail(E, "cannot encode: Lua stack exhausted");

    if (lua_getmetatable(L, idx)) {
        lua_pushliteral(L, "__jsontype");
        lua_rawget(L, -2);
        if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "array") == 0)
            is_array = 1;
        lua_pop(L, 2);
    }
    if (is_array)
        return enc_array(E, idx, (size_t)lua_rawlen(L, idx), depth);

    /* classify the keys (no allocation happens in this loop) */
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        int kt = lua_type(L, -2);
        if (kt == LUA_TSTRING) {
            nstr++;
        } else if (kt == LUA_TNUMBER) {
#if LUA_VERSION_NUM >= 503
            if (lua_isinteger(L, -2)) {
                lua_Integer k = lua_tointeger(L, -2);
                if (k >= 1) {
                    nint++;
                    if ((double)k > maxk)
                        maxk = (double)k;
                } else if (nbad++ == 0) {
                    bad_kind = 2;
                    badk = (double)k;
                }
            } else if (nbad++ == 0) {
                bad_kind = 1;
                badk = (double)lua_tonumber(L, -2);
            }
#else
            lua_Number k = lua_tonumber(L, -2);
            if (k >= 1 && k <= 9007199254740992.0 && k == (lua_Number)(long long)k) {
                nint++;
                if (k > maxk)
                    maxk = k;
            } else if (nbad++ == 0) {
                bad_kind = (k == k && k < 1 && k > -9007199254740992.0 &&
                            k == (lua_Number)(long long)k) ? 2 : 1;
                badk = (double)k;
            }
#endif
        } else {
            lua_pop(L, 2);
            return enc_fail(E, "cannot encode table with a key of type %s",
                            lua_typename(L, kt));
        }
        lua_pop(L, 1);
    }

    if (nstr > 0 && (nint > 0 || nbad > 0))
        return enc_fail(E, "cannot encode table with mixed string and number keys");
    if (nbad > 0) {
        if (bad_kind == 2)
            return enc_fail(E, "cannot encode table with integer key %.0f (array indices start at 1)",
                            badk);
        return enc_fail(E, "cannot encode table with non-integer number key %.14g", badk);
    }
    if (nint > 0) {
        if (maxk != (double)nint)
            return enc_fail(E, "cannot encode sparse array (%zu elements, highest index %.0f)",
                            nint, maxk);
        return enc_array(E, idx, nint, depth);
    }
    if (nstr > 0)
        return enc_object(E, idx, nstr, depth);
    return enc_put(E, "{}", 2);
}

static int enc_value(enc_t *E, int idx, int depth)
{
    lua_State *L = E->L;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return enc_put(E, "null", 4);
    case LUA_TBOOLEAN:
        return lua_toboolean(L, idx) ? enc_put(E, "true", 4) : enc_put(E, "false", 5);
    case LUA_TNUMBER:
        return enc_number(E, idx);
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return enc_string(E, s, n);
    }
    case LUA_TTABLE:
        return enc_table(E, idx, depth + 1);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL)
            return enc_put(E, "null", 4);
        return enc_fail(E, "cannot encode value of type lightuserdata (only NULL is null)");
    default:
        return enc_fail(E, "cannot encode value of type %s", lua_typename(L, lua_type(L, idx)));
    }
}

int cdk_json_encode_str(lua_State *L, int idx, int max_depth, char *err, size_t errlen)
{
    enc_t E;
    int base;

    if (errlen > 0)
        err[0] = '\0';
    idx = cdk_absindex(L, idx);
    base = lua_gettop(L);
    E.L = L;
    E.max_depth = clamp_depth(max_depth);
    E.msg[0] = '\0';
    E.path[0] = '\0';
    E.pathlen = 0;
    E.path_cut = 0;
    if (!lua_checkstack(L, 10)) {
        if (errlen > 0)
            snprintf(err, errlen, "cannot encode: Lua stack exhausted");
        return 0;
    }
    E.cap = 256;
    E.len = 0;
    E.buf = (char *)lua_newuserdata(L, E.cap);
    E.slot = base + 1;

    if (!enc_value(&E, idx, 0)) {
        lua_settop(L, base);
        if (errlen > 0) {
            if (E.pathlen > 0)
                snprintf(err, errlen, "%s at $%s%s", E.msg, E.path, E.path_cut ? "..." : "");
            else
                snprintf(err, errlen, "%s", E.msg);
        }
        return 0;
    }
    lua_pushlstring(L, E.buf, E.len);
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
    return 1;
}

/* ======================================================================== */
/* Lua functions                                                            */
/* ======================================================================== */

static int opt_depth(lua_State *L, int arg)
{
    lua_Integer d = luaL_optinteger(L, arg, CDK_JSON_DEFAULT_DEPTH);
    luaL_argcheck(L, d >= 1, arg, "max_depth must be >= 1");
    return d > CDK_JSON_DEPTH_LIMIT ? CDK_JSON_DEPTH_LIMIT : (int)d;
}

int cdk_json_l_decode(lua_State *L)
{
    char err[160];
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int depth = opt_depth(L, 2);
    if (cdk_json_decode(L, s, len, depth, err, sizeof(err)))
        return 1;
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

int cdk_json_l_encode(lua_State *L)
{
    char err[384];
    int depth;
    luaL_checkany(L, 1);
    depth = opt_depth(L, 2);
    lua_settop(L, 1);
    if (cdk_json_encode_str(L, 1, depth, err, sizeof(err)))
        return 1;
    return luaL_error(L, "%s", err);
}
