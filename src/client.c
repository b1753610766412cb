/*
 * client.c - the client userdata: a vendor's key id and secret in C memory.
 *
 * What is wiped: the C copy of the secret (malloc'd here, OPENSSL_cleanse'd
 * and freed on close/__gc) and the keyed HMAC contexts derived from it (freed
 * with EVP_MAC_CTX_free, which cleanses them).  What is not: Lua strings the
 * secret passed through before it reached us (the user's options table, a
 * value read with os.getenv) are immutable and are collected by Lua like any
 * string; cdnkit keeps no reference to them.  A secret named by environment
 * variable (opts.secret_env) is read here with getenv() and never becomes a
 * Lua string.
 *
 * Each vendor has its own metatable (core.client_class), whose __index is
 * the vendor's plain Lua methods table: a method call is a table lookup,
 * with no C __index function per call.  The C methods (close, is_closed)
 * are put into that table.
 *
 * Lua side:
 *   core.client_class(name, methods) -> mt
 *   core.new_client(mt, { key_id =, secret = | secret_env =, endpoint = }) -> client
 *   client:close(), client:is_closed(), tostring(client), __gc, __close
 *   core.client_token(client) -> token | nil
 *   core.client_set_token(client, token | nil)
 *
 * The session token (Plcloud's keystone token, given as an option, read from
 * opts.token_env here, or set after authentication) is kept like the secret:
 * wiped when replaced and on close, never shown by tostring.  It does reach
 * Lua when a request header is built from it, as it must to be sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "client.h"
#include "util.h"

/* the address marks a client metatable (a static const: no mutable state) */
static const char CLIENT_KEY = 'c';

static char *dupstr(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static void drop_token(cdk_client *c)
{
    if (c->token != NULL) {
        cdk_wipe(c->token, c->token_len);
        free(c->token);
    }
    c->token = NULL;
    c->token_len = 0;
}

static void client_release(cdk_client *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    cdk_sign_forget(c);
    drop_token(c);
    if (c->secret != NULL) {
        cdk_wipe(c->secret, c->secret_len);
        free(c->secret);
    }
    c->secret = NULL;
    c->secret_len = 0;
    free(c->key_id);
    free(c->endpoint);
    c->key_id = c->endpoint = NULL;
}

static cdk_client *test_client(lua_State *L, int i)
{
    cdk_client *c = (cdk_client *)lua_touserdata(L, i);
    int ok;
    if (c == NULL || !lua_getmetatable(L, i))
        return NULL;
    lua_rawgetp(L, -1, &CLIENT_KEY);
    ok = lua_toboolean(L, -1);
    lua_pop(L, 2);
    return ok ? c : NULL;
}

cdk_client *cdk_client_check(lua_State *L, int i)
{
    cdk_client *c = test_client(L, i);
    if (c == NULL)
        luaL_argerror(L, i, "cdnkit client expected");
    return c;
}

cdk_client *cdk_client_check_secret(lua_State *L, int i)
{
    cdk_client *c = cdk_client_check(L, i);
    if (c->closed)
        luaL_error(L, "cdnkit.%s: client is closed", c->name);
    if (c->secret == NULL)
        luaL_error(L, "cdnkit.%s: client has no secret", c->name);
    return c;
}

/* read an optional string option into a malloc'd copy; 1 ok, 0 on OOM */
static int opt_string(lua_State *L, int t, const char *name, char **out, size_t *outlen)
{
    size_t n;
    const char *s;
    lua_getfield(L, t, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 1;
    }
    if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        return luaL_error(L, "cdnkit: option '%s' must be a string", name);
    }
    s = lua_tolstring(L, -1, &n);
    *out = dupstr(s, n);
    if (outlen != NULL)
        *outlen = n;
    lua_pop(L, 1);
    return *out != NULL;
}

/* core.new_client(mt, opts) */
int cdk_client_new(lua_State *L)
{
    cdk_client *c;
    int ok = 1;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_rawgetp(L, 1, &CLIENT_KEY);
    if (!lua_toboolean(L, -1))
        return luaL_argerror(L, 1, "a metatable from core.client_class expected");
    lua_pop(L, 1);
    c = (cdk_client *)lua_newuserdata(L, sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->closed = 1; /* until fully set up: __gc must not touch half-built state */
    lua_getfield(L, 1, "__name");
    {
        /* "cdnkit.<vendor>.client" -> "<vendor>" */
        const char *n = lua_tostring(L, -1);
        const char *dot;
        if (n != NULL && strncmp(n, "cdnkit.", 7) == 0)
            n += 7;
        dot = n != NULL ? strchr(n, '.') : NULL;
        if (n != NULL) {
            size_t len = dot != NULL ? (size_t)(dot - n) : strlen(n);
            if (len >= sizeof(c->name))
                len = sizeof(c->name) - 1;
            memcpy(c->name, n, len);
        }
    }
    lua_pop(L, 1);
    lua_pushvalue(L, 1);
    lua_setmetatable(L, -2);
    c->closed = 0;

    ok = ok && opt_string(L, 2, "key_id", &c->key_id, NULL);
    ok = ok && opt_string(L, 2, "secret", &c->secret, &c->secret_len);
    ok = ok && opt_string(L, 2, "endpoint", &c->endpoint, NULL);
    ok = ok && opt_string(L, 2, "token", &c->token, &c->token_len);
    if (ok && c->token == NULL) {
        lua_getfield(L, 2, "token_env");
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *v = getenv(lua_tostring(L, -1));
            if (v != NULL && v[0] != '\0') {
                c->token_len = strlen(v);
                c->token = dupstr(v, c->token_len);
                ok = c->token != NULL;
            }
        }
        lua_pop(L, 1);
    }
    if (ok && c->secret == NULL) {
        lua_getfield(L, 2, "secret_env");
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *v = getenv(lua_tostring(L, -1));
            if (v != NULL && v[0] != '\0') {
                c->secret_len = strlen(v);
                c->secret = dupstr(v, c->secret_len);
                ok = c->secret != NULL;
            }
        }
        lua_pop(L, 1);
    }
    if (!ok) {
        client_release(c);
        return luaL_error(L, "cdnkit: out of memory");
    }
    return 1;
}

static int client_is_closed(lua_State *L)
{
    cdk_client *c = cdk_client_check(L, 1);
    lua_pushboolean(L, c->closed);
    return 1;
}

static int client_has_secret(lua_State *L)
{
    cdk_client *c = cdk_client_check(L, 1);
    lua_pushboolean(L, !c->closed && c->secret != NULL);
    return 1;
}

int cdk_client_token(lua_State *L)
{
    cdk_client *c = cdk_client_check(L, 1);
    if (c->closed || c->token == NULL)
        lua_pushnil(L);
    else
        lua_pushlstring(L, c->token, c->token_len);
    return 1;
}

int cdk_client_set_token(lua_State *L)
{
    cdk_client *c = cdk_client_check(L, 1);
    size_t n = 0;
    const char *s = lua_isnoneornil(L, 2) ? NULL : luaL_checklstring(L, 2, &n);
    char *copy = NULL;
    if (c->closed)
        return luaL_error(L, "cdnkit.%s: client is closed", c->name);
    if (s != NULL && n > 0) {
        copy = dupstr(s, n);
        if (copy == NULL)
            return luaL_error(L, "cdnkit: out of memory");
    }
    drop_token(c);
    c->token = copy;
    c->token_len = copy != NULL ? n : 0;
    return 0;
}

/* core.client_set_credentials(client, key_id, secret [, token]): temporary
   credentials renewed (an instance role's): the old secret and token are
   wiped, the keyed contexts derived from the old secret dropped */
int cdk_client_set_credentials(lua_State *L)
{
    cdk_client *c = cdk_client_check(L, 1);
    size_t kl, sl, tl = 0;
    const char *k = luaL_checklstring(L, 2, &kl);
    const char *sec = luaL_checklstring(L, 3, &sl);
    const char *tok = lua_isnoneornil(L, 4) ? NULL : luaL_checklstring(L, 4, &tl);
    char *nk, *ns, *nt = NULL;
    c = cdk_client_check(L, 1); /* the checks above may have run a finalizer */
    if (c->closed)
        return luaL_error(L, "cdnkit.%s: client is closed", c->name);
    if (kl == 0 || sl == 0)
        return luaL_error(L, "cdnkit: empty key id or secret");
    nk = dupstr(k, kl);
    ns = dupstr(sec, sl);
    if (tok != NULL && tl > 0)
        nt = dupstr(tok, tl);
    if (nk == NULL || ns == NULL || (tok != NULL && tl > 0 && nt == NULL)) {
        if (ns != NULL) {
            cdk_wipe(ns, sl);
            free(ns);
        }
        if (nt != NULL) {
            cdk_wipe(nt, tl);
            free(nt);
        }
        free(nk);
        return luaL_error(L, "cdnkit: out of memory");
    }
    cdk_sign_forget(c);
    if (c->secret != NULL) {
        cdk_wipe(c->secret, c->secret_len);
        free(c->secret);
    }
    drop_token(c);
    free(c->key_id);
    c->key_id = nk;
    c->secret = ns;
    c->secret_len = sl;
    c->token = nt;
    c->token_len = nt != NULL ? tl : 0;
    return 0;
}

static int client_close(lua_State *L)
{
    client_release(cdk_client_check(L, 1));
    return 0;
}

static int client_gc(lua_State *L)
{
    cdk_client *c = test_client(L, 1);
    if (c != NULL)
        client_release(c);
    return 0;
}

static int client_tostring(lua_State *L)
{
    cdk_client *c = cdk_client_check(L, 1);
    char out[320];
    if (c->closed) {
        snprintf(out, sizeof(out), "cdnkit.%s client (closed)", c->name);
    } else {
        /* the start of the key id only; never the secret */
        char kid[8] = "none";
        if (c->key_id != NULL) {
            size_t kl = strlen(c->key_id);
            if (kl > 4) {
                memcpy(kid, c->key_id, 4);
                memcpy(kid + 4, "...", 4);
            } else {
                memcpy(kid, "***", 4);
            }
        }
        snprintf(out, sizeof(out), "cdnkit.%s client (%s, key %s%s)", c->name,
                 c->endpoint ? c->endpoint : "default endpoint", kid,
                 c->token != NULL ? ", session token set" : "");
    }
    lua_pushstring(L, out);
    return 1;
}

/* core.client_class(name, methods) -> metatable */
int cdk_client_class(lua_State *L)
{
    size_t nl;
    const char *name = luaL_checklstring(L, 1, &nl);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (nl == 0 || nl >= sizeof(((cdk_client *)0)->name) || strchr(name, '.') != NULL)
        return luaL_argerror(L, 1, "bad vendor name");
    lua_pushcfunction(L, client_close);
    lua_setfield(L, 2, "close");
    lua_pushcfunction(L, client_is_closed);
    lua_setfield(L, 2, "is_closed");
    lua_pushcfunction(L, client_has_secret);
    lua_setfield(L, 2, "_has_secret");
    lua_createtable(L, 0, 8);
    lua_pushfstring(L, "cdnkit.%s.client", name);
    lua_setfield(L, -2, "__name");
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, client_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, client_gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, client_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "cdnkit client");
    lua_setfield(L, -2, "__metatable");
    lua_pushboolean(L, 1);
    lua_rawsetp(L, -2, &CLIENT_KEY);
    return 1;
}
