/*
 * compat.h - the one place that papers over Lua 5.1 (LuaJIT/OpenResty)
 * versus Lua 5.2+ API differences.  Every C file includes this instead of
 * lua.h/lauxlib.h directly.
 */
#ifndef CDNKIT_COMPAT_H
#define CDNKIT_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

/* Only luaopen_cdnkit_core is exported, whatever the build flags (the
   rockspec build passes no -fvisibility): everything declared after this
   line is hidden unless marked CDK_API.  Every C file includes its system
   headers before this one, so libcurl/OpenSSL declarations stay default. */
#pragma GCC visibility push(hidden)
#define CDK_API __attribute__((visibility("default")))

#if LUA_VERSION_NUM == 501
/* ---- Lua 5.1 / LuaJIT ------------------------------------------------- */
#define lua_rawlen(L, i) lua_objlen((L), (i))
/* LuaJIT 2.1 (luajit2, as in OpenResty) already has some 5.2 functions */
#ifndef luaL_newlibtable
#define luaL_setfuncs(L, l, nup) cdk_setfuncs((L), (l), (nup))
#define luaL_newlibtable(L, l) lua_createtable((L), 0, sizeof(l) / sizeof((l)[0]) - 1)
#endif
#ifndef luaL_newlib
#define luaL_newlib(L, l) (luaL_newlibtable((L), (l)), luaL_setfuncs((L), (l), 0))
#endif
#define LUA_OK 0
#define lua_absindex(L, i) \
    (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)
static inline void cdk_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    luaL_checkstack(L, nup + 1, "too many upvalues");
    for (; l->name != NULL; l++) {
        int i;
        for (i = 0; i < nup; i++)
            lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}
/* uservalue: 5.1 has function environments on userdata */
#define cdk_setuservalue(L, i) lua_setfenv((L), (i))
#define cdk_getuservalue(L, i) lua_getfenv((L), (i))
static inline void *cdk_testudata(lua_State *L, int ud, const char *tname)
{
    void *p = lua_touserdata(L, ud);
    if (p != NULL && lua_getmetatable(L, ud)) {
        luaL_getmetatable(L, tname);
        if (!lua_rawequal(L, -1, -2))
            p = NULL;
        lua_pop(L, 2);
        return p;
    }
    return NULL;
}
#define luaL_testudata(L, i, t) cdk_testudata((L), (i), (t))
/* 5.1 has no lua_rawgetp/rawsetp: use the pointer as a light userdata key */
static inline void cdk_rawgetp(lua_State *L, int idx, const void *p)
{
    if (idx < 0 && idx > LUA_REGISTRYINDEX) idx = lua_gettop(L) + idx + 1;
    lua_pushlightuserdata(L, (void *)p);
    lua_rawget(L, idx);
}
static inline void cdk_rawsetp(lua_State *L, int idx, const void *p)
{
    if (idx < 0 && idx > LUA_REGISTRYINDEX) idx = lua_gettop(L) + idx + 1;
    lua_pushlightuserdata(L, (void *)p);
    lua_insert(L, -2);
    lua_rawset(L, idx);
}
#define lua_rawgetp(L, i, p) cdk_rawgetp((L), (i), (p))
#define lua_rawsetp(L, i, p) cdk_rawsetp((L), (i), (p))
#define CDK_HAVE_INT64 0
static inline void cdk_pushint(lua_State *L, long long v) { lua_pushnumber(L, (lua_Number)v); }
#else
/* ---- Lua 5.2+ ---------------------------------------------------------- */
#define cdk_setuservalue(L, i) lua_setuservalue((L), (i))
#define cdk_getuservalue(L, i) ((void)lua_getuservalue((L), (i)))
#define CDK_HAVE_INT64 (LUA_MAXINTEGER >= 9223372036854775807LL)
static inline void cdk_pushint(lua_State *L, long long v) { lua_pushinteger(L, (lua_Integer)v); }
#endif

#endif /* CDNKIT_COMPAT_H */
