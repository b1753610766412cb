/*
 * client.h - the client userdata: one vendor's credentials, kept in C memory.
 * The signing schemes (sign.c) read the secret through this struct; nothing
 * else does, and the secret never goes back to Lua.
 */
#ifndef CDNKIT_CLIENT_H
#define CDNKIT_CLIENT_H
#include <stddef.h>
#include "compat.h"

/* keyed HMAC contexts cached per client (sign.c fills them on first use) */
enum cdk_key_slot {
    CDK_KEY_SHA1,         /* HMAC-SHA1, key = secret */
    CDK_KEY_SHA256,       /* HMAC-SHA256, key = secret */
    CDK_KEY_SHA1_AMP,     /* HMAC-SHA1, key = secret .. "&" (Alibaba RPC v2) */
    CDK_KEY_SHA256_AMP,   /* HMAC-SHA256, key = secret .. "&" */
    CDK_KEY_SLOTS
};

typedef struct cdk_client {
    char name[24];        /* vendor name, for messages */
    char *key_id;         /* not secret: shown shortened by tostring */
    char *endpoint;       /* for tostring only */
    char *secret;         /* wiped and freed on close */
    size_t secret_len;
    /* a session token the vendor issued (Plcloud's keystone token): a
       secret too, wiped when replaced and on close */
    char *token;
    size_t token_len;
    void *mac;            /* EVP_MAC * (HMAC), fetched once per client */
    void *keyed[CDK_KEY_SLOTS];   /* EVP_MAC_CTX *, keyed, reused per call */
    /* one derived key (e.g. TC3's kSigning for a date and service), reused
       while its scope stays the same */
    void *derived;        /* EVP_MAC_CTX * */
    char derived_scope[96];
    int closed;
} cdk_client;

/* core.client_class(name, methods) -> metatable for that vendor's clients */
int cdk_client_class(lua_State *L);
/* core.new_client(metatable, opts) -> userdata */
int cdk_client_new(lua_State *L);
/* the client at index i, or a raised "cdnkit client expected" */
cdk_client *cdk_client_check(lua_State *L, int i);
/* the same, raising when it is closed or has no secret */
cdk_client *cdk_client_check_secret(lua_State *L, int i);

/* core.client_token(client) -> token | nil */
int cdk_client_token(lua_State *L);
/* core.client_set_token(client, token | nil) */
int cdk_client_set_token(lua_State *L);

/* core.client_set_credentials(client, key_id, secret [, token]) */
int cdk_client_set_credentials(lua_State *L);

/* sign.c: free the cached contexts of a client (called on close) */
void cdk_sign_forget(cdk_client *c);
#endif
