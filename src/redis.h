/*
 * redis.h - core.redis(host, port [, timeout]): a synchronous Redis
 * connection (hiredis) for plain Lua; see redis.c.
 */
#ifndef CDNKIT_REDIS_H
#define CDNKIT_REDIS_H
#include "compat.h"

/* core.redis(host, port [, timeout]) -> conn | nil, err */
int cdk_redis_connect(lua_State *L);
/* register the connection metatable (luaopen) */
void cdk_redis_register(lua_State *L);
#endif
