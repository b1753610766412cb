/*
 * sign.c - request signing schemes, one function each, registered by name in
 * SCHEMES below.  A vendor adapter names its scheme in data (A.scheme) and the
 * engine calls core.signers[name](client, ...).  Adding a scheme is adding
 * one function and one row, with its published vector in spec/core_spec.lua.
 *
 * The secret never leaves C memory: a scheme gets the client userdata and
 * keys its HMAC with the client's cached context (keyed once per client and
 * key form, re-initialised per call) or with a key derived in C (HMAC chains,
 * e.g. TC3's kDate -> kService -> kSigning, cached for the current scope).
 *
 * Memory: each scheme first gathers its Lua inputs, then (with no Lua call in
 * between, so no finalizer can close the client under it) computes, then
 * pushes its results from scratch buffers owned by a userdata, so an out of
 * memory error while pushing leaks nothing.
 *
 * Schemes (inputs -> outputs):
 *   aliyun_rpc_v2(client, params, method [, prefix [, explain]])
 *       -> prefix..query [, string_to_sign, signature, canonical]
 *       Alibaba RPC signature v2: pct-encode and sort params,
 *       METHOD&%2F&pct(canonical), HMAC-SHA1 with key secret.."&", base64.
 *   qcloud_v2(client, params, method, prefix, explain, host, path, hash)
 *       -> prefix..encoded [, string_to_sign, signature]
 *       Tencent API v2: '_' -> '.' in names, sorted, raw values,
 *       METHOD host path ? k=v&..., HMAC-SHA1 or -SHA256 (hash "sha1"|"sha256")
 *       with key secret, base64.
 *   For these two, the arguments start alike (client, params, method,
 *   prefix, explain: what transport.query_request passes) and the
 *   scheme's own follow.  `prefix` (the URL up to '?', or "" for a form body) is
 *   written before the query, so the request URL is one string built once;
 *   the explanation is returned only when `explain` is true (prepare, and a
 *   signature mismatch's diff), saving three strings per ordinary call.
 *   acs3_hmac_sha256(client, string_to_sign) -> hex signature
 *       Alibaba signature v3: hex(HMAC-SHA256(secret, string_to_sign)).
 *   cnc_hmac_sha256(client, string_to_sign) -> hex signature
 *       Wangsu / CDNetworks AK/SK: hex(HMAC-SHA256(secret, string_to_sign)),
 *       the string being "CNC-HMAC-SHA256\n<timestamp>\n<hex sha256(canonical)>".
 *   wangsu_basic(client, date) -> base64 password
 *       Wangsu's legacy scheme: base64(HMAC-SHA1(apikey, Date header)), the
 *       password of "Authorization: Basic base64(user:password)".
 *   keystone_password(client, username, tenant_name) -> JSON body
 *       OpenStack Keystone v2.0 password authentication (Plcloud): no
 *       signature, the secret is the password, sent once to POST /tokens as
 *       {"auth":{"passwordCredentials":{"username":U,"password":P},
 *       "tenantName":T}}.  The body is built in Lua-owned memory that is
 *       wiped once the string is pushed; the body string itself is a Lua
 *       string (it must be, to be sent), which cdnkit drops after the request.
 *   tc3_hmac_sha256(client, date, service, string_to_sign) -> hex signature
 *       Tencent API 3.0: kDate = HMAC("TC3"..secret, date),
 *       kService = HMAC(kDate, service), kSigning = HMAC(kService, "tc3_request"),
 *       hex(HMAC-SHA256(kSigning, string_to_sign)).
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include "client.h"
#include "sign.h"
#include "util.h"

#if OPENSSL_VERSION_NUMBER < 0x30000000L
#error "cdnkit needs OpenSSL 3 (EVP_MAC)"
#endif

unsigned cdk_hmac(enum cdk_hash h, const void *key, size_t keylen,
                  const void *msg, size_t msglen, unsigned char *out)
{
    unsigned int outlen = 0;
    const EVP_MD *md = (h == CDK_SHA256) ? EVP_sha256() : EVP_sha1();
    if (keylen > 0x7fffffff)
        return 0;
    if (HMAC(md, key, (int)keylen, (const unsigned char *)msg, msglen, out, &outlen) == NULL)
        return 0;
    return outlen;
}

unsigned cdk_sha256(const void *msg, size_t len, unsigned char *out)
{
    unsigned int outlen = 0;
    if (EVP_Digest(msg, len, out, &outlen, EVP_sha256(), NULL) != 1)
        return 0;
    return outlen;
}

/* ------------------------------------------------------------------ */
/* keyed contexts */

static EVP_MAC_CTX *new_keyed(cdk_client *c, enum cdk_hash h, const void *key, size_t keylen)
{
    OSSL_PARAM params[2];
    EVP_MAC_CTX *ctx;
    char digest[8];
    if (c->mac == NULL) {
        c->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        if (c->mac == NULL)
            return NULL;
    }
    ctx = EVP_MAC_CTX_new((EVP_MAC *)c->mac);
    if (ctx == NULL)
        return NULL;
    memcpy(digest, h == CDK_SHA256 ? "SHA256" : "SHA1", h == CDK_SHA256 ? 7 : 5);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_MAC_init(ctx, (const unsigned char *)key, keylen, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* the client's context for a key slot, keyed on first use */
static EVP_MAC_CTX *keyed(cdk_client *c, enum cdk_key_slot slot)
{
    enum cdk_hash h = (slot == CDK_KEY_SHA256 || slot == CDK_KEY_SHA256_AMP) ? CDK_SHA256 : CDK_SHA1;
    int amp = (slot == CDK_KEY_SHA1_AMP || slot == CDK_KEY_SHA256_AMP);
    unsigned char *key;
    EVP_MAC_CTX *ctx;
    if (c->keyed[slot] != NULL)
        return (EVP_MAC_CTX *)c->keyed[slot];
    /* the key is built at its final size, so no realloc leaves a copy behind */
    key = malloc(c->secret_len + 1);
    if (key == NULL)
        return NULL;
    memcpy(key, c->secret, c->secret_len);
    key[c->secret_len] = '&';
    ctx = new_keyed(c, h, key, c->secret_len + (size_t)amp);
    cdk_wipe(key, c->secret_len + 1);
    free(key);
    c->keyed[slot] = ctx;
    return ctx;
}

/* MAC of msg with a keyed context (re-initialised: same key, fresh state) */
static unsigned mac_run(EVP_MAC_CTX *ctx, const void *msg, size_t n, unsigned char *out)
{
    size_t outl = 0;
    if (ctx == NULL || EVP_MAC_init(ctx, NULL, 0, NULL) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)msg, n) != 1 ||
        EVP_MAC_final(ctx, out, &outl, 32) != 1)
        return 0;
    return (unsigned)outl;
}

void cdk_sign_forget(cdk_client *c)
{
    int i;
    for (i = 0; i < CDK_KEY_SLOTS; i++) {
        EVP_MAC_CTX_free((EVP_MAC_CTX *)c->keyed[i]); /* cleanses the key state */
        c->keyed[i] = NULL;
    }
    EVP_MAC_CTX_free((EVP_MAC_CTX *)c->derived);
    c->derived = NULL;
    c->derived_scope[0] = '\0';
    EVP_MAC_free((EVP_MAC *)c->mac);
    c->mac = NULL;
}

/* ------------------------------------------------------------------ */
/* sorted parameter pairs */

typedef struct pair {
    const char *k, *v; /* strings anchored by the params table */
    size_t kl, vl;
    size_t sko, skl;   /* sort key: offset and length in the arena */
} pair;

static int pair_cmp_base(const pair *x, const pair *y, const char *arena)
{
    size_t n = x->skl < y->skl ? x->skl : y->skl;
    int r = memcmp(arena + x->sko, arena + y->sko, n);
    if (r != 0)
        return r;
    return (x->skl > y->skl) - (x->skl < y->skl);
}

/* insertion sort: parameter lists are short (tens), and this keeps the arena
   pointer a plain argument (qsort has no context argument in C99) */
static void sort_pairs(pair *ps, int n, const char *arena)
{
    int i, j;
    for (i = 1; i < n; i++) {
        pair t = ps[i];
        for (j = i; j > 0 && pair_cmp_base(&ps[j - 1], &t, arena) > 0; j--)
            ps[j] = ps[j - 1];
        ps[j] = t;
    }
}

enum sortmode { SORT_PCT, SORT_DOTS };

/* Collect the string -> string table at t into sorted pairs held by scratch
   s (pairs in s->mem, sort keys in s->b[0]).  Raises on a bad table. */
static int collect_pairs(lua_State *L, int t, enum sortmode mode, cdk_scratch *s, pair **out,
                         size_t *total)
{
    int n = 0, cap = 0;
    size_t sum = 0;
    pair *ps = NULL;
    cdk_buf *arena = &s->b[0];
    cdk_buf_reserve(arena, 512);
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        pair *p;
        if (lua_type(L, -2) != LUA_TSTRING)
            return luaL_error(L, "cdnkit: parameter names must be strings");
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "cdnkit: parameter '%s' must be a string when signing",
                              lua_tostring(L, -2));
        if (n == cap) {
            size_t ncap = cap ? (size_t)cap * 2 : 16;
            pair *np = realloc(ps, sizeof(pair) * ncap);
            if (np == NULL)
                return luaL_error(L, "cdnkit: out of memory");
            ps = np;
            s->mem = ps;
            s->memlen = sizeof(pair) * ncap;
            cap = (int)ncap;
        }
        p = &ps[n++];
        p->k = lua_tolstring(L, -2, &p->kl);
        p->v = lua_tolstring(L, -1, &p->vl);
        p->sko = arena->len;
        if (mode == SORT_PCT) {
            cdk_buf_add_pct(arena, p->k, p->kl);
        } else {
            size_t j;
            for (j = 0; j < p->kl; j++)
                cdk_buf_addc(arena, p->k[j] == '_' ? '.' : p->k[j]);
        }
        p->skl = arena->len - p->sko;
        sum += p->kl + p->vl + 2;
        lua_pop(L, 1);
    }
    *total = sum;
    if (arena->failed)
        return luaL_error(L, "cdnkit: out of memory");
    sort_pairs(ps, n, arena->p != NULL ? arena->p : "");
    *out = ps;
    return n;
}

static int push_bufs(lua_State *L, cdk_scratch *s, const int *which, int n)
{
    int i;
    for (i = 0; i < n; i++)
        if (s->b[which[i]].failed)
            return luaL_error(L, "cdnkit: signing failed (out of memory)");
    for (i = 0; i < n; i++) {
        const cdk_buf *b = &s->b[which[i]];
        lua_pushlstring(L, b->p != NULL ? b->p : "", b->len);
    }
    cdk_scratch_done(s);
    return n;
}

/* ------------------------------------------------------------------ */
/* aliyun_rpc_v2(client, params, method) -> query, string_to_sign, signature, canonical */
static int s_aliyun_rpc_v2(lua_State *L)
{
    cdk_client *c;
    const char *method;
    cdk_scratch *s;
    pair *ps = NULL;
    cdk_buf *arena, *sts, *query;
    unsigned char mac[32];
    unsigned maclen;
    size_t total = 0, clen;
    int n, i;
    size_t pl;
    const char *prefix;
    int explain;
    cdk_client_check_secret(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    method = luaL_checkstring(L, 3);
    prefix = luaL_optlstring(L, 4, "", &pl);
    explain = lua_toboolean(L, 5);
    s = cdk_scratch_new(L);
    arena = &s->b[0];
    n = collect_pairs(L, 2, SORT_PCT, s, &ps, &total);
    /* b[0] holds the sort keys, then the signature; the canonical form is
       written straight into the query (b[3], after the URL prefix) and the
       string-to-sign (b[2]) is encoded from that slice */
    sts = &s->b[2];
    query = &s->b[3];
    /* worst cases: every byte encoded once (canonical), twice (sts) */
    cdk_buf_reserve(sts, total * 9 + 16);
    cdk_buf_reserve(query, pl + total * 3 + 96);
    cdk_buf_add(query, prefix, pl);
    for (i = 0; i < n; i++) {
        if (i)
            cdk_buf_addc(query, '&');
        cdk_buf_add(query, arena->p + ps[i].sko, ps[i].skl);
        cdk_buf_addc(query, '=');
        cdk_buf_add_pct(query, ps[i].v, ps[i].vl);
    }
    clen = query->len - pl;
    cdk_buf_adds(sts, method);
    cdk_buf_adds(sts, "&%2F&");
    cdk_buf_add_pct(sts, query->failed ? "" : query->p + pl, query->failed ? 0 : clen);
    /* no Lua call from here to the end of the MAC: the client stays open */
    c = cdk_client_check_secret(L, 1);
    maclen = (sts->failed || query->failed)
                 ? 0
                 : mac_run(keyed(c, CDK_KEY_SHA1_AMP), sts->p, sts->len, mac);
    if (maclen == 0)
        return luaL_error(L, "cdnkit: signing failed (out of memory or OpenSSL error)");
    arena->len = 0;
    cdk_buf_add_b64(arena, mac, maclen);
    cdk_wipe(mac, sizeof(mac));
    cdk_buf_adds(query, "&Signature=");
    cdk_buf_add_pct(query, arena->p != NULL ? arena->p : "", arena->len);
    if (query->failed || arena->failed)
        return luaL_error(L, "cdnkit: signing failed (out of memory)");
    /* results: query, then with explain: string_to_sign, signature, canonical */
    lua_pushlstring(L, query->p, query->len);
    if (explain) {
        lua_pushlstring(L, sts->p, sts->len);
        lua_pushlstring(L, arena->p, arena->len);
        lua_pushlstring(L, query->p + pl, clen);
    }
    cdk_scratch_done(s);
    return explain ? 4 : 1;
}

/* qcloud_v2(client, params, method, prefix, explain, host, path, hash)
   -> prefix..encoded [, string_to_sign, signature] */
static int s_qcloud_v2(lua_State *L)
{
    static const char *const hashes[] = {"sha1", "sha256", NULL};
    cdk_client *c;
    const char *method, *host, *path;
    int h;
    cdk_scratch *s;
    pair *ps = NULL;
    cdk_buf *arena, *src, *enc;
    unsigned char mac[32];
    unsigned maclen;
    size_t total = 0, pl;
    const char *prefix;
    int n, i, explain;
    cdk_client_check_secret(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    method = luaL_checkstring(L, 3);
    prefix = luaL_optlstring(L, 4, "", &pl);
    explain = lua_toboolean(L, 5);
    host = luaL_checkstring(L, 6);
    path = luaL_checkstring(L, 7);
    h = luaL_checkoption(L, 8, "sha1", hashes);
    s = cdk_scratch_new(L);
    n = collect_pairs(L, 2, SORT_DOTS, s, &ps, &total);
    arena = &s->b[0];
    src = &s->b[1];
    enc = &s->b[2];
    cdk_buf_reserve(src, total + strlen(host) + strlen(path) + 16);
    cdk_buf_reserve(enc, pl + total * 3 + 96);
    cdk_buf_add(enc, prefix, pl);
    for (i = 0; method[i]; i++) {
        char ch = method[i];
        cdk_buf_addc(src, (ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch);
    }
    cdk_buf_adds(src, host);
    cdk_buf_adds(src, path);
    cdk_buf_addc(src, '?');
    for (i = 0; i < n; i++) {
        if (i) {
            cdk_buf_addc(src, '&');
            cdk_buf_addc(enc, '&');
        }
        /* enc starts with the prefix: the first pair follows it directly */
        cdk_buf_add(src, arena->p + ps[i].sko, ps[i].skl);
        cdk_buf_addc(src, '=');
        cdk_buf_add(src, ps[i].v, ps[i].vl);
        cdk_buf_add_pct(enc, ps[i].k, ps[i].kl);
        cdk_buf_addc(enc, '=');
        cdk_buf_add_pct(enc, ps[i].v, ps[i].vl);
    }
    c = cdk_client_check_secret(L, 1);
    maclen = src->failed ? 0
                         : mac_run(keyed(c, h == 1 ? CDK_KEY_SHA256 : CDK_KEY_SHA1), src->p,
                                   src->len, mac);
    if (maclen == 0)
        return luaL_error(L, "cdnkit: signing failed (out of memory or OpenSSL error)");
    arena->len = 0;
    cdk_buf_add_b64(arena, mac, maclen);
    cdk_wipe(mac, sizeof(mac));
    if (n > 0)
        cdk_buf_addc(enc, '&');
    cdk_buf_adds(enc, "Signature=");
    cdk_buf_add_pct(enc, arena->p != NULL ? arena->p : "", arena->len);
    {
        static const int ORDER[] = {2, 1, 0}; /* encoded, source, signature */
        return push_bufs(L, s, ORDER, explain ? 3 : 1);
    }
}

/* One MAC of the string argument 2 with the client's key `slot`, pushed
   encoded: the schemes whose whole work is one keyed HMAC share this. */
static int sign_string(lua_State *L, enum cdk_key_slot slot, enum cdk_enc enc)
{
    size_t n;
    const char *msg;
    unsigned char mac[32];
    unsigned ml;
    cdk_client *c;
    cdk_client_check_secret(L, 1);
    msg = luaL_checklstring(L, 2, &n); /* may allocate: a finalizer may run */
    /* no Lua call from here to the end of the MAC: the client stays open */
    c = cdk_client_check_secret(L, 1);
    ml = mac_run(keyed(c, slot), msg, n, mac);
    if (ml == 0)
        return luaL_error(L, "cdnkit: signing failed (out of memory or OpenSSL error)");
    cdk_push_digest(L, mac, ml, enc);
    cdk_wipe(mac, sizeof(mac));
    return 1;
}

/* acs3_hmac_sha256(client, string_to_sign) -> hex signature (also Wangsu's
   cnc_hmac_sha256: the same primitive) */
static int s_acs3_hmac_sha256(lua_State *L)
{
    return sign_string(L, CDK_KEY_SHA256, CDK_ENC_HEX);
}

/* wangsu_basic(client, date) -> base64(HMAC-SHA1(secret, date)) */
static int s_wangsu_basic(lua_State *L)
{
    return sign_string(L, CDK_KEY_SHA1, CDK_ENC_BASE64);
}

/* kSigning for (date, service), derived from "TC3"..secret and cached */
static EVP_MAC_CTX *tc3_key(cdk_client *c, const char *date, size_t dl, const char *svc, size_t sl)
{
    unsigned char k1[32], k2[32], k3[32];
    unsigned char *k0;
    unsigned n;
    char scope[sizeof(c->derived_scope)];
    if (dl + sl + 8 >= sizeof(scope))
        return NULL;
    memcpy(scope, "tc3/", 4);
    memcpy(scope + 4, date, dl);
    scope[4 + dl] = '/';
    memcpy(scope + 5 + dl, svc, sl);
    scope[5 + dl + sl] = '\0';
    if (c->derived != NULL && strcmp(scope, c->derived_scope) == 0)
        return (EVP_MAC_CTX *)c->derived;
    k0 = malloc(c->secret_len + 3);
    if (k0 == NULL)
        return NULL;
    memcpy(k0, "TC3", 3);
    memcpy(k0 + 3, c->secret, c->secret_len);
    n = cdk_hmac(CDK_SHA256, k0, c->secret_len + 3, date, dl, k1);
    cdk_wipe(k0, c->secret_len + 3);
    free(k0);
    n = n ? cdk_hmac(CDK_SHA256, k1, 32, svc, sl, k2) : 0;
    n = n ? cdk_hmac(CDK_SHA256, k2, 32, "tc3_request", 11, k3) : 0;
    EVP_MAC_CTX_free((EVP_MAC_CTX *)c->derived);
    c->derived = n ? new_keyed(c, CDK_SHA256, k3, 32) : NULL;
    cdk_wipe(k1, sizeof(k1));
    cdk_wipe(k2, sizeof(k2));
    cdk_wipe(k3, sizeof(k3));
    if (c->derived != NULL)
        memcpy(c->derived_scope, scope, strlen(scope) + 1);
    else
        c->derived_scope[0] = '\0';
    return (EVP_MAC_CTX *)c->derived;
}

/* tc3_hmac_sha256(client, date, service, string_to_sign) -> hex signature */
static int s_tc3_hmac_sha256(lua_State *L)
{
    size_t dl, sl, n;
    const char *date, *svc, *sts;
    unsigned char mac[32];
    unsigned ml;
    cdk_client *c;
    cdk_client_check_secret(L, 1);
    date = luaL_checklstring(L, 2, &dl); /* these may allocate: a finalizer may run */
    svc = luaL_checklstring(L, 3, &sl);
    sts = luaL_checklstring(L, 4, &n);
    if (dl != 10 || date[4] != '-' || date[7] != '-')
        return luaL_argerror(L, 2, "date YYYY-MM-DD expected");
    if (sl == 0 || sl > 64 || memchr(svc, '/', sl) != NULL)
        return luaL_argerror(L, 3, "service name expected");
    /* no Lua call from here to the end of the MAC: the client stays open */
    c = cdk_client_check_secret(L, 1);
    ml = mac_run(tc3_key(c, date, dl, svc, sl), sts, n, mac);
    if (ml == 0)
        return luaL_error(L, "cdnkit: signing failed (out of memory or OpenSSL error)");
    cdk_push_digest(L, mac, ml, CDK_ENC_HEX);
    cdk_wipe(mac, sizeof(mac));
    return 1;
}

/* JSON string escape of s[0..n) into out (room for 6n + 2); returns the length */
static size_t json_quote(char *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, i;
    out[o++] = '"';
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            out[o++] = '\\';
            out[o++] = 'u';
            out[o++] = '0';
            out[o++] = '0';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o++] = '"';
    return o;
}

/* keystone_password(client, username, tenant_name) -> JSON body */
static int s_keystone_password(lua_State *L)
{
    static const char p1[] = "{\"auth\":{\"passwordCredentials\":{\"username\":";
    static const char p2[] = ",\"password\":";
    static const char p3[] = "},\"tenantName\":";
    static const char p4[] = "}}";
    size_t ul, tl, cap, o = 0;
    const char *user, *tenant;
    char *buf;
    cdk_client *c;
    cdk_client_check_secret(L, 1);
    user = luaL_checklstring(L, 2, &ul);
    tenant = luaL_checklstring(L, 3, &tl);
    c = cdk_client_check_secret(L, 1);
    if (ul > 65536 || tl > 65536 || c->secret_len > 65536)
        return luaL_error(L, "cdnkit: keystone credentials too long");
    cap = sizeof(p1) + sizeof(p2) + sizeof(p3) + sizeof(p4) + 6 * (ul + tl + c->secret_len) + 8;
    /* Lua-owned, so an error below leaks nothing; wiped before it is dropped
       (if pushing the string fails for lack of memory, the collector frees
       it unwiped: the password is then in a Lua string anyway) */
    buf = (char *)lua_newuserdata(L, cap);
    c = cdk_client_check_secret(L, 1); /* the allocation may have run a finalizer */
    memcpy(buf + o, p1, sizeof(p1) - 1);
    o += sizeof(p1) - 1;
    o += json_quote(buf + o, user, ul);
    memcpy(buf + o, p2, sizeof(p2) - 1);
    o += sizeof(p2) - 1;
    o += json_quote(buf + o, c->secret, c->secret_len);
    memcpy(buf + o, p3, sizeof(p3) - 1);
    o += sizeof(p3) - 1;
    o += json_quote(buf + o, tenant, tl);
    memcpy(buf + o, p4, sizeof(p4) - 1);
    o += sizeof(p4) - 1;
    lua_pushlstring(L, buf, o);
    cdk_wipe(buf, cap);
    lua_remove(L, -2);
    return 1;
}

/* the registry: scheme name -> function */
static const luaL_Reg SCHEMES[] = {
    {"aliyun_rpc_v2", s_aliyun_rpc_v2},
    {"qcloud_v2", s_qcloud_v2},
    {"acs3_hmac_sha256", s_acs3_hmac_sha256},
    {"tc3_hmac_sha256", s_tc3_hmac_sha256},
    /* the same primitive as ACS3 (HMAC-SHA256 of the string, hex), under
       Wangsu's name: adapters name the scheme they document */
    {"cnc_hmac_sha256", s_acs3_hmac_sha256},
    {"wangsu_basic", s_wangsu_basic},
    {"keystone_password", s_keystone_password},
    {NULL, NULL},
};

void cdk_sign_push_schemes(lua_State *L)
{
    luaL_newlib(L, SCHEMES);
}
