/* client.h - the client userdata (see client.c) */
#ifndef CDNKIT_CLIENT_H
#define CDNKIT_CLIENT_H
#include "compat.h"
/* core.new_client(vendor, opts, state) -> userdata */
int cdk_client_new(lua_State *L);
/* create the shared metatable (idempotent) */
void cdk_client_register(lua_State *L);
#endif
