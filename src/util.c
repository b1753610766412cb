/*
 * util.c - byte buffer, encoders, wiping, CSPRNG and scratch memory shared
 * by the core.  No state outside the arguments: safe with many lua_States
 * per process.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '~';
}

int cdk_buf_add_pct(cdk_buf *b, const char *s, size_t n)
{
    size_t i;
    if (!buf_reserve(b, n * 3))
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c)) {
            b->p[b->len++] = (char)c;
        } else {
            b->p[b->len++] = '%';
            b->p[b->len++] = HEXU[c >> 4];
            b->p[b->len++] = HEXU[c & 15];
        }
    }
    b->p[b->len] = '\0';
    return 1;
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

int cdk_buf_push(lua_State *L, const cdk_buf *b)
{
    if (b->failed)
        return 0;
    lua_pushlstring(L, b->p ? b->p : "", b->len);
    return 1;
}

void cdk_rng_init(cdk_rng *r)
{
    memset(r->block, 0, sizeof(r->block));
    r->pos = CDK_RNG_BLOCK;
    r->pid = 0;
}

int cdk_rng_take(cdk_rng *r, unsigned char *out, size_t n)
{
    long pid = (long)getpid();
    if (n > CDK_RNG_BLOCK)
        return 0;
    if (r->pid != pid || r->pos + n > CDK_RNG_BLOCK) {
        if (RAND_bytes(r->block, CDK_RNG_BLOCK) != 1) {
            r->pos = CDK_RNG_BLOCK;
            return 0;
        }
        r->pos = 0;
        r->pid = pid;
    }
    memcpy(out, r->block + r->pos, n);
    OPENSSL_cleanse(r->block + r->pos, n);
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
        cdk_buf_wipe(&s->b[i]);
    if (s->mem != NULL) {
        cdk_wipe(s->mem, s->memlen);
        free(s->mem);
    }
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
