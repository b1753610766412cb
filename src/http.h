/* http.h - the libcurl transport userdata (see http.c) */
#ifndef CDNKIT_HTTP_H
#define CDNKIT_HTTP_H
#include "compat.h"
/* core.curl() -> transport userdata */
int cdk_http_new(lua_State *L);
/* core.parse_headers(raw) -> table */
int cdk_http_l_parse_headers(lua_State *L);
void cdk_http_register(lua_State *L);
#endif
