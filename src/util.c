/*
 * util.c - byte buffer, encoders, wiping, CSPRNG and scratch memory shared
 * by the core.  No state outside the arguments: safe with many lua_States
 * per process.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, madvise, MADV_WIPEONFORK */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include "util.h"

void cdk_buf_init(cdk_buf *b)
{
    b->p = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}

void cdk_buf_free(cdk_buf *b)
{
    free(b->p);
    cdk_buf_init(b);
}

void cdk_buf_wipe(cdk_buf *b)
{
    if (b->p != NULL)
        cdk_wipe(b->p, b->cap);
    cdk_buf_free(b);
}

static int buf_reserve(cdk_buf *b, size_t extra)
{
    size_t need, ncap;
    char *np;
    if (b->failed)
        return 0;
    if (extra > ((size_t)-1) / 2 - b->len) {
        b->failed = 1;
        return 0;
    }
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 1;
    ncap = b->cap ? b->cap : 256;
    while (ncap < need)
        ncap *= 2;
    np = realloc(b->p, ncap);
    if (np == NULL) {
        b->failed = 1;
        return 0;
    }
    b->p = np;
    b->cap = ncap;
    return 1;
}

int cdk_buf_add(cdk_buf *b, const void *s, size_t n)
{
    if (!buf_reserve(b, n))
        return 0;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 1;
}

int cdk_buf_adds(cdk_buf *b, const char *s)
{
    return cdk_buf_add(b, s, strlen(s));
}

int cdk_buf_addc(cdk_buf *b, char c)
{
    return cdk_buf_add(b, &c, 1);
}

static const char HEXU[] = "0123456789ABCDEF";
static const char HEXL[] = "0123456789abcdef";

/* RFC 3986 unreserved characters: A-Z a-z 0-9 - _ . ~ */
static const unsigned char UNRESERVED[256] = {
    ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
    ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

int cdk_buf_add_pct(cdk_buf *b, const char *s, size_t n)
{
    size_t i;
    char *o;
    if (!buf_reserve(b, n * 3))
        return 0;
    o = b->p + b->len;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (UNRESERVED[c]) {
            *o++ = (char)c;
        } else {
            o[0] = '%';
            o[1] = HEXU[c >> 4];
            o[2] = HEXU[c & 15];
            o += 3;
        }
    }
    b->len = (size_t)(o - b->p);
    b->p[b->len] = '\0';
    return 1;
}

/* grow b so that n more bytes fit without another allocation */
int cdk_buf_reserve(cdk_buf *b, size_t n)
{
    return buf_reserve(b, n);
}

int cdk_buf_add_b64(cdk_buf *b, const unsigned char *s, size_t n)
{
    static const char T[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i;
    if (!buf_reserve(b, (n + 2) / 3 * 4))
        return 0;
    for (i = 0; i + 2 < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        b->p[b->len++] = T[v >> 18];
        b->p[b->len++] = T[(v >> 12) & 63];
        b->p[b->len++] = T[(v >> 6) & 63];
        b->p[b->len++] = T[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)s[i] << 16;
        b->p[b->len++] = T[v >> 18];
        b->p[b->len++] = T[(v >> 12) & 63];
        b->p[b->len++] = '=';
        b->p[b->len++] = '=';
    } else if (n - i == 2) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8;
        b->p[b->len++] = T[v >> 18];
        b->p[b->len++] = T[(v >> 12) & 63];
        b->p[b->len++] = T[(v >> 6) & 63];
        b->p[b->len++] = '=';
    }
    b->p[b->len] = '\0';
    return 1;
}

int cdk_buf_add_hex(cdk_buf *b, const unsigned char *s, size_t n)
{
    size_t i;
    if (!buf_reserve(b, n * 2))
        return 0;
    for (i = 0; i < n; i++) {
        b->p[b->len++] = HEXL[s[i] >> 4];
        b->p[b->len++] = HEXL[s[i] & 15];
    }
    b->p[b->len] = '\0';
    return 1;
}

int cdk_random(unsigned char *out, size_t n)
{
    if (n > 0x7fffffff)
        return 0;
    return RAND_bytes(out, (int)n) == 1;
}

void cdk_wipe(void *p, size_t n)
{
    if (p != NULL && n > 0)
        OPENSSL_cleanse(p, n);
}

void cdk_push_digest(lua_State *L, const unsigned char *md, unsigned n, enum cdk_enc enc)
{
    char out[132]; /* 64 bytes: 128 hex digits or 88 base64 characters */
    cdk_buf b;
    if (n > 64)
        n = 64;
    if (enc == CDK_ENC_RAW) {
        lua_pushlstring(L, (const char *)md, n);
        return;
    }
    /* a buffer over the stack array, large enough: no allocation */
    b.p = out;
    b.len = 0;
    b.cap = sizeof(out);
    b.failed = 0;
    if (enc == CDK_ENC_BASE64)
        cdk_buf_add_b64(&b, md, n);
    else
        cdk_buf_add_hex(&b, md, n);
    lua_pushlstring(L, out, b.len);
}

int cdk_buf_push(lua_State *L, const cdk_buf *b)
{
    if (b->failed)
        return 0;
    lua_pushlstring(L, b->p ? b->p : "", b->len);
    return 1;
}

int cdk_rng_init(cdk_rng *r)
{
    void *p = MAP_FAILED;
    r->page = NULL;
    r->wipeonfork = 0;
    r->mapped = 0;
    r->pos = CDK_RNG_BLOCK;
    r->pid = (long)getpid();
#if defined(MAP_ANONYMOUS)
    p = mmap(NULL, sizeof(cdk_rng_page), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
#endif
    if (p != MAP_FAILED) {
        r->page = (cdk_rng_page *)p;
        r->mapped = 1;
#if defined(MADV_WIPEONFORK)
        r->wipeonfork = madvise(p, sizeof(cdk_rng_page), MADV_WIPEONFORK) == 0;
#endif
    } else {
        r->page = (cdk_rng_page *)malloc(sizeof(cdk_rng_page));
        if (r->page == NULL)
            return 0;
    }
    memset(r->page, 0, sizeof(cdk_rng_page));
    return 1;
}

void cdk_rng_free(cdk_rng *r)
{
    if (r->page == NULL)
        return;
    OPENSSL_cleanse(r->page, sizeof(cdk_rng_page));
    if (r->mapped)
        munmap(r->page, sizeof(cdk_rng_page));
    else
        free(r->page);
    r->page = NULL;
}

int cdk_rng_take(cdk_rng *r, unsigned char *out, size_t n)
{
    cdk_rng_page *pg = r->page;
    int fresh;
    if (pg == NULL || n > CDK_RNG_BLOCK)
        return 0;
    if (r->wipeonfork) {
        fresh = !pg->filled; /* a fork wiped the page: refill */
    } else {
        long pid = (long)getpid();
        fresh = pid != r->pid;
        r->pid = pid;
    }
    if (fresh || r->pos + n > CDK_RNG_BLOCK) {
        pg->filled = 0;
        if (RAND_bytes(pg->block, CDK_RNG_BLOCK) != 1)
            return 0;
        pg->filled = 1;
        r->pos = 0;
    }
    /* no need to wipe what is handed out: nonces go on the wire */
    memcpy(out, pg->block + r->pos, n);
    r->pos += n;
    return 1;
}

/* ------------------------------------------------------------------ */
/* scratch memory owned by a userdata */

static const char SCRATCH_MT[] = "cdnkit.scratch";

void cdk_scratch_done(cdk_scratch *s)
{
    int i;
    for (i = 0; i < CDK_SCRATCH_BUFS; i++)
        cdk_buf_free(&s->b[i]);
    free(s->mem);
    s->mem = NULL;
    s->memlen = 0;
}

static int scratch_gc(lua_State *L)
{
    cdk_scratch *s = (cdk_scratch *)lua_touserdata(L, 1);
    if (s != NULL)
        cdk_scratch_done(s);
    return 0;
}

void cdk_scratch_register(lua_State *L)
{
    if (luaL_newmetatable(L, SCRATCH_MT)) {
        lua_pushcfunction(L, scratch_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushliteral(L, "cdnkit scratch");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
}

cdk_scratch *cdk_scratch_new(lua_State *L)
{
    int i;
    cdk_scratch *s = (cdk_scratch *)lua_newuserdata(L, sizeof(*s));
    for (i = 0; i < CDK_SCRATCH_BUFS; i++)
        cdk_buf_init(&s->b[i]);
    s->mem = NULL;
    s->memlen = 0;
    luaL_getmetatable(L, SCRATCH_MT);
    lua_setmetatable(L, -2);
    return s;
}
