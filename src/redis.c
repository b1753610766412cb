/*
 * redis.c - a Redis connection for plain Lua (hiredis, synchronous), the
 * base of the fleet-wide purge queue.  Inside nginx use a cosocket Redis
 * client instead: these calls block.
 *
 * Lua side:
 *   core.redis(host, port [, timeout_seconds]) -> conn | nil, err
 *   conn:command(arg, ...) -> reply | nil, err     (args: strings or numbers)
 *   conn:close(), conn:is_closed(), tostring(conn), __gc, __close
 * Replies: status and bulk strings -> Lua strings, integers -> integers,
 * nil -> core.null (so arrays stay sequences), arrays -> tables marked with
 * the JSON array metatable; an error reply -> nil, { code = "redis",
 * message = ... } (inside an array: { err = message }).  A connection or I/O
 * failure -> nil, { code = "connect" | "redis_io", message = ... }, and the
 * connection is closed (make a new one).
 *
 * Memory: the hiredis reply is owned by a userdata while it is converted, so
 * an out-of-memory error in the middle leaks nothing.  No global state.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <hiredis/hiredis.h>
#include "compat.h"
#include "json.h"
#include "redis.h"

#define CONN_MT "cdnkit.redis"
#define MAX_DEPTH 32
#define MAX_ARGS 100000

typedef struct {
    redisContext *c;
} conn;

typedef struct {
    redisReply *r;
} holder;

static int holder_gc(lua_State *L)
{
    holder *h = (holder *)lua_touserdata(L, 1);
    if (h != NULL && h->r != NULL) {
        freeReplyObject(h->r);
        h->r = NULL;
    }
    return 0;
}

static conn *check_conn(lua_State *L)
{
    return (conn *)luaL_checkudata(L, 1, CONN_MT);
}

static void conn_drop(conn *k)
{
    if (k->c != NULL) {
        redisFree(k->c);
        k->c = NULL;
    }
}

/* nil, { code =, message = } */
static int fail(lua_State *L, const char *code, const char *msg)
{
    lua_pushnil(L);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, msg != NULL ? msg : "unknown error");
    lua_setfield(L, -2, "message");
    return 2;
}

static void push_reply(lua_State *L, const redisReply *r, int depth)
{
    size_t i;
    if (depth > MAX_DEPTH || !lua_checkstack(L, 4)) {
        luaL_error(L, "cdnkit.redis: reply nested too deep");
        return;
    }
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        lua_pushlstring(L, r->str, r->len);
        break;
    case REDIS_REPLY_INTEGER:
        lua_pushinteger(L, (lua_Integer)r->integer);
        break;
    case REDIS_REPLY_ERROR:
        lua_createtable(L, 0, 1);
        lua_pushlstring(L, r->str, r->len);
        lua_setfield(L, -2, "err");
        break;
    case REDIS_REPLY_ARRAY:
        lua_createtable(L, r->elements > 0x7fffffff ? 0 : (int)r->elements, 0);
        for (i = 0; i < r->elements; i++) {
            push_reply(L, r->element[i], depth + 1);
            lua_rawseti(L, -2, (int)(i + 1));
        }
        cdk_json_push_array_mt(L);
        lua_setmetatable(L, -2);
        break;
    default: /* REDIS_REPLY_NIL: core.null (light userdata NULL) */
        lua_pushlightuserdata(L, NULL);
        break;
    }
}

/* core.redis(host, port [, timeout]) */
int cdk_redis_connect(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    lua_Integer port = luaL_checkinteger(L, 2);
    lua_Number timeout = luaL_optnumber(L, 3, 5.0);
    struct timeval tv;
    conn *k;
    if (port < 1 || port > 65535)
        return luaL_argerror(L, 2, "port 1-65535 expected");
    if (!(timeout > 0 && timeout < 86400))
        return luaL_argerror(L, 3, "timeout in seconds (> 0) expected");
    tv.tv_sec = (time_t)timeout;
    tv.tv_usec = (suseconds_t)((timeout - (lua_Number)tv.tv_sec) * 1e6);
    k = (conn *)lua_newuserdata(L, sizeof(*k));
    k->c = NULL;
    luaL_getmetatable(L, CONN_MT);
    lua_setmetatable(L, -2);
    k->c = redisConnectWithTimeout(host, (int)port, tv);
    if (k->c == NULL)
        return fail(L, "connect", "out of memory");
    if (k->c->err) {
        char msg[160];
        snprintf(msg, sizeof(msg), "redis at %s:%d: %s", host, (int)port, k->c->errstr);
        conn_drop(k);
        return fail(L, "connect", msg);
    }
    if (redisSetTimeout(k->c, tv) != REDIS_OK) {
        conn_drop(k);
        return fail(L, "connect", "cannot set the timeout");
    }
    return 1;
}

static int conn_command(lua_State *L)
{
    conn *k = check_conn(L);
    int n = lua_gettop(L) - 1, i;
    const char **argv;
    size_t *lens;
    holder *h;
    redisReply *r;
    int is_error;
    if (n < 1)
        return luaL_error(L, "cdnkit.redis: command name expected");
    if (n > MAX_ARGS)
        return luaL_error(L, "cdnkit.redis: too many arguments");
    for (i = 2; i <= n + 1; i++) {
        int t = lua_type(L, i);
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            return luaL_argerror(L, i, "string or number expected");
        lua_tolstring(L, i, NULL); /* numbers become strings in place */
    }
    if (k->c == NULL)
        return fail(L, "redis_io", "the connection is closed (make a new one)");
    /* argv arrays in Lua-owned memory: an error below leaks nothing */
    argv = (const char **)lua_newuserdata(L, sizeof(*argv) * (size_t)n);
    lens = (size_t *)lua_newuserdata(L, sizeof(*lens) * (size_t)n);
    for (i = 0; i < n; i++)
        argv[i] = lua_tolstring(L, i + 2, &lens[i]);
    h = (holder *)lua_newuserdata(L, sizeof(*h));
    h->r = NULL;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, holder_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    r = (redisReply *)redisCommandArgv(k->c, n, argv, lens);
    if (r == NULL) {
        char msg[160];
        snprintf(msg, sizeof(msg), "%s", k->c->errstr[0] ? k->c->errstr : "connection lost");
        conn_drop(k);
        return fail(L, "redis_io", msg);
    }
    h->r = r;
    is_error = r->type == REDIS_REPLY_ERROR;
    if (is_error) {
        lua_pushnil(L);
        lua_createtable(L, 0, 2);
        lua_pushliteral(L, "redis");
        lua_setfield(L, -2, "code");
        lua_pushlstring(L, r->str, r->len);
        lua_setfield(L, -2, "message");
    } else {
        push_reply(L, r, 0);
    }
    freeReplyObject(r);
    h->r = NULL;
    return is_error ? 2 : 1;
}

static int conn_close(lua_State *L)
{
    conn_drop(check_conn(L));
    return 0;
}

static int conn_is_closed(lua_State *L)
{
    lua_pushboolean(L, check_conn(L)->c == NULL);
    return 1;
}

static int conn_gc(lua_State *L)
{
    conn *k = (conn *)luaL_testudata(L, 1, CONN_MT);
    if (k != NULL)
        conn_drop(k);
    return 0;
}

static int conn_tostring(lua_State *L)
{
    conn *k = check_conn(L);
    if (k->c == NULL)
        lua_pushliteral(L, "cdnkit.redis connection (closed)");
    else
        lua_pushfstring(L, "cdnkit.redis connection (%p)", (void *)k);
    return 1;
}

void cdk_redis_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"command", conn_command},
        {"close", conn_close},
        {"is_closed", conn_is_closed},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, CONN_MT)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, conn_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, conn_gc);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, conn_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}
