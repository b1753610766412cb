/*
 * util.h - small shared helpers of the C core: a growable byte buffer,
 * RFC 3986 percent-encoding, base64, hex, wiping, CSPRNG bytes (one-off and
 * in blocks), and scratch memory owned by a Lua userdata.
 */
#ifndef CDNKIT_UTIL_H
#define CDNKIT_UTIL_H

#include <stddef.h>
#include "compat.h"

typedef struct cdk_buf {
    char *p;
    size_t len;
    size_t cap;
    int failed; /* sticky allocation failure */
} cdk_buf;

void cdk_buf_init(cdk_buf *b);
void cdk_buf_free(cdk_buf *b);
/* wipe the bytes before freeing (for buffers that held key material) */
void cdk_buf_wipe(cdk_buf *b);
int cdk_buf_add(cdk_buf *b, const void *s, size_t n);
int cdk_buf_adds(cdk_buf *b, const char *s);
int cdk_buf_addc(cdk_buf *b, char c);
/* append s percent-encoded per RFC 3986 (unreserved A-Z a-z 0-9 - _ . ~ kept,
   everything else %XX, upper-case hex; UTF-8 bytes encoded one by one) */
int cdk_buf_add_pct(cdk_buf *b, const char *s, size_t n);
int cdk_buf_add_b64(cdk_buf *b, const unsigned char *s, size_t n);
/* make room for n more bytes (one allocation instead of several); 1 ok */
int cdk_buf_reserve(cdk_buf *b, size_t n);
int cdk_buf_add_hex(cdk_buf *b, const unsigned char *s, size_t n);

/* fill with CSPRNG bytes (OpenSSL RAND_bytes); 1 on success */
int cdk_random(unsigned char *out, size_t n);

/* CSPRNG bytes taken from a block refilled with one RAND_bytes call.  The
   block belongs to one lua_State (an upvalue of the module's functions), never
   to the process.  A child process must never reuse its parent's block (two
   nginx workers would hand out the same nonces): the block lives in its own
   page marked MADV_WIPEONFORK, so a fork leaves the child an empty block;
   where the kernel lacks that, the pid is compared on every take. */
#define CDK_RNG_BLOCK 1024
typedef struct cdk_rng_page {
    unsigned char filled;   /* 0 in a child after fork (page wiped) */
    unsigned char block[CDK_RNG_BLOCK];
} cdk_rng_page;
typedef struct cdk_rng {
    cdk_rng_page *page;     /* mmap'd; NULL if mmap failed (then: malloc) */
    int wipeonfork;         /* the kernel wipes the page in a child */
    int mapped;
    size_t pos;             /* bytes used */
    long pid;
} cdk_rng;
/* set up; 1 ok, 0 out of memory */
int cdk_rng_init(cdk_rng *r);
void cdk_rng_free(cdk_rng *r);
/* n <= CDK_RNG_BLOCK; 1 on success */
int cdk_rng_take(cdk_rng *r, unsigned char *out, size_t n);

/* zero memory in a way the compiler will not drop */
void cdk_wipe(void *p, size_t n);

/* push a digest (at most 64 bytes) as base64, lower-case hex or raw bytes,
   encoded on the stack */
enum cdk_enc { CDK_ENC_BASE64, CDK_ENC_HEX, CDK_ENC_RAW };
void cdk_push_digest(lua_State *L, const unsigned char *md, unsigned n, enum cdk_enc enc);

/* push a buffer's content as a Lua string; 0 (nothing pushed) if an append failed */
int cdk_buf_push(lua_State *L, const cdk_buf *b);

/* Scratch memory for one C call that pushes Lua values: the buffers belong to
   a userdata on the Lua stack, so when a push raises (out of memory) the
   garbage collector frees them (its __gc wipes and frees); on the normal path
   cdk_scratch_done() releases them at once.  Scratch never holds key
   material (keys are built in their own blocks and wiped there), so it is
   freed without wiping. */
#define CDK_SCRATCH_BUFS 4
typedef struct cdk_scratch {
    cdk_buf b[CDK_SCRATCH_BUFS];
    void *mem;      /* one more malloc'd block (an array), or NULL */
    size_t memlen;
} cdk_scratch;
/* register the scratch metatable (luaopen) */
void cdk_scratch_register(lua_State *L);
/* push a new scratch userdata and return it (raises on out of memory) */
cdk_scratch *cdk_scratch_new(lua_State *L);
/* free what it holds (idempotent; the userdata stays on the stack) */
void cdk_scratch_done(cdk_scratch *s);

#endif
