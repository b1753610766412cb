/*
 * sign.h - request signing: one function per scheme, registered by name,
 * plus the hash primitives the core module exposes.
 */
#ifndef CDNKIT_SIGN_H
#define CDNKIT_SIGN_H
#include <stddef.h>
#include "compat.h"

enum cdk_hash { CDK_SHA1 = 1, CDK_SHA256 = 2 };

/* one-shot HMAC with a caller's key; out holds 32 bytes; 0 on failure */
unsigned cdk_hmac(enum cdk_hash h, const void *key, size_t keylen,
                  const void *msg, size_t msglen, unsigned char *out);
/* SHA-256; out holds 32 bytes; 0 on failure */
unsigned cdk_sha256(const void *msg, size_t len, unsigned char *out);

/* push the table of signing schemes: name -> function(client, ...) */
void cdk_sign_push_schemes(lua_State *L);
#endif
