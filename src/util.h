/*
 * util.h - small shared helpers of the C core: a growable byte buffer,
 * RFC 3986 percent-encoding, base64, HMAC/SHA-256 wrappers.
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
int cdk_buf_add_hex(cdk_buf *b, const unsigned char *s, size_t n);

enum cdk_hash { CDK_SHA1 = 1, CDK_SHA256 = 2 };
/* out must hold 32 bytes; returns output length or 0 on failure */
unsigned cdk_hmac(enum cdk_hash h, const void *key, size_t keylen,
                  const void *msg, size_t msglen, unsigned char *out);
unsigned cdk_sha256(const void *msg, size_t len, unsigned char *out);
/* fill with CSPRNG bytes; 1 on success */
int cdk_random(unsigned char *out, size_t n);
/* zero memory in a way the compiler will not drop */
void cdk_wipe(void *p, size_t n);

/* push a buffer's content as a Lua string; 0 (nothing pushed) if an append failed */
int cdk_buf_push(lua_State *L, const cdk_buf *b);

#endif
