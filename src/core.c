/*
 * core.c - luaopen_cdnkit_core: the module table of the C core.
 *
 * Pure helpers (no hidden state; clock and randomness only where named):
 *   pct_encode(s)            RFC 3986 percent-encoding (space %20, * %2A, ~ kept)
 *   b64encode(s)             base64
 *   hmac(alg, key, msg[,enc]) alg "sha1"|"sha256", enc "base64"(default)|"hex"|"raw"
 *   sha256_hex(s)
 *   random_bytes(n), uuid4(), nonce_int()   CSPRNG (OpenSSL RAND_bytes), taken
 *                            from a block per lua_State, refilled after fork()
 *   now(), monotime(), sleep(s)
 *   iso8601(t)               "YYYY-MM-DDThh:mm:ssZ" (UTC) for epoch seconds t
 *   parse_http_date(s)       RFC 1123 / 850 / asctime date -> epoch seconds | nil
 *   parse_headers(raw)       raw HTTP header block -> { lower-case name = value }
 *   json_decode(s[, depth]), json_encode(v), null, array_mt
 *   signers                  { scheme name = function(client, ...) } (sign.c)
 *   client_class(name, methods), new_client(mt, opts)   (client.c)
 *   curl()                   a libcurl transport (http.c)
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <curl/curl.h>
#include "compat.h"
#include "client.h"
#include "http.h"
#include "json.h"
#include "redis.h"
#include "sign.h"
#include "util.h"

#ifndef CDNKIT_VERSION
#define CDNKIT_VERSION "0.2.0"
#endif

/* encoders write into scratch owned by a userdata: a push that raises
   (out of memory) leaks nothing */
static int push_scratch(lua_State *L, cdk_scratch *sc)
{
    if (sc->b[0].failed)
        return luaL_error(L, "cdnkit: out of memory");
    lua_pushlstring(L, sc->b[0].p != NULL ? sc->b[0].p : "", sc->b[0].len);
    cdk_scratch_done(sc);
    return 1;
}

static int l_pct_encode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    cdk_scratch *sc = cdk_scratch_new(L);
    cdk_buf_add_pct(&sc->b[0], s, n);
    return push_scratch(L, sc);
}

static int l_b64encode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    cdk_scratch *sc = cdk_scratch_new(L);
    cdk_buf_add_b64(&sc->b[0], (const unsigned char *)s, n);
    return push_scratch(L, sc);
}

static int l_hmac(lua_State *L)
{
    static const char *const algs[] = {"sha1", "sha256", NULL};
    static const char *const encs[] = {"base64", "hex", "raw", NULL};
    int a = luaL_checkoption(L, 1, NULL, algs);
    size_t kl, ml;
    const char *key = luaL_checklstring(L, 2, &kl);
    const char *msg = luaL_checklstring(L, 3, &ml);
    int e = luaL_checkoption(L, 4, "base64", encs);
    unsigned char mac[32];
    unsigned n = cdk_hmac(a == 0 ? CDK_SHA1 : CDK_SHA256, key, kl, msg, ml, mac);
    if (n == 0)
        return luaL_error(L, "cdnkit: HMAC failed");
    /* encs[] is in enum cdk_enc order */
    cdk_push_digest(L, mac, n, (enum cdk_enc)e);
    return 1;
}

static int l_sha256_hex(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    unsigned char md[32];
    if (cdk_sha256(s, n, md) != 32)
        return luaL_error(L, "cdnkit: SHA-256 failed");
    cdk_push_digest(L, md, 32, CDK_ENC_HEX);
    return 1;
}

/* the CSPRNG block of this lua_State: upvalue 1 of the functions using it */
static cdk_rng *rng_of(lua_State *L)
{
    return (cdk_rng *)lua_touserdata(L, lua_upvalueindex(1));
}

static int rng_gc(lua_State *L)
{
    cdk_rng *r = (cdk_rng *)lua_touserdata(L, 1);
    if (r != NULL)
        cdk_rng_free(r);
    return 0;
}

static int l_random_bytes(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    unsigned char buf[256];
    luaL_argcheck(L, n >= 0 && n <= (lua_Integer)sizeof(buf), 1, "0..256 expected");
    if (!cdk_random(buf, (size_t)n))
        return luaL_error(L, "cdnkit: RAND_bytes failed");
    lua_pushlstring(L, (const char *)buf, (size_t)n);
    return 1;
}

static int l_uuid4(lua_State *L)
{
    unsigned char r[16];
    char out[37];
    static const char H[] = "0123456789abcdef";
    int i, j = 0;
    if (!cdk_rng_take(rng_of(L), r, sizeof(r)))
        return luaL_error(L, "cdnkit: RAND_bytes failed");
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[j++] = '-';
        out[j++] = H[r[i] >> 4];
        out[j++] = H[r[i] & 15];
    }
    out[j] = '\0';
    lua_pushstring(L, out);
    return 1;
}

/* a random integer in 1 .. 2^31-1 */
static int l_nonce_int(lua_State *L)
{
    unsigned char r[4];
    unsigned long v;
    if (!cdk_rng_take(rng_of(L), r, sizeof(r)))
        return luaL_error(L, "cdnkit: RAND_bytes failed");
    v = ((unsigned long)r[0] << 24 | (unsigned long)r[1] << 16 | (unsigned long)r[2] << 8 | r[3]) &
        0x7fffffffUL;
    if (v == 0)
        v = 1;
    lua_pushinteger(L, (lua_Integer)v);
    return 1;
}

/* core.file_mode(path) -> the permission bits (st_mode & 07777) | nil, err */
static int l_file_mode(lua_State *L)
{
    struct stat sb;
    const char *path = luaL_checkstring(L, 1);
    if (stat(path, &sb) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, strerror(errno));
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)(sb.st_mode & 07777));
    return 1;
}

/* core.env_set(name) -> whether the environment variable is set and not
   empty, without making its value a Lua string (for secrets the C core
   reads itself) */
static int l_env_set(lua_State *L)
{
    const char *v = getenv(luaL_checkstring(L, 1));
    lua_pushboolean(L, v != NULL && v[0] != '\0');
    return 1;
}

static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

static int l_monotime(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

static int l_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    struct timespec ts, rem;
    if (!(s > 0))
        return 0;
    if (s > 3600)
        s = 3600;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &rem) != 0 && errno == EINTR)
        ts = rem;
    return 0;
}

static int l_iso8601(lua_State *L)
{
    lua_Number t = luaL_checknumber(L, 1);
    time_t tt = (time_t)floor(t);
    struct tm tm;
    char out[21];
    int y, i;
    /* formatted by hand: strftime is locale-aware and slow, and this runs on
       every signed request */
    if (!(t > -62135596800.0 && t < 253402300800.0) || gmtime_r(&tt, &tm) == NULL)
        return luaL_argerror(L, 1, "time out of range");
    y = tm.tm_year + 1900;
    if (y < 1 || y > 9999)
        return luaL_argerror(L, 1, "time out of range");
    for (i = 3; i >= 0; i--, y /= 10)
        out[i] = (char)('0' + y % 10);
    out[4] = '-';
    out[5] = (char)('0' + (tm.tm_mon + 1) / 10);
    out[6] = (char)('0' + (tm.tm_mon + 1) % 10);
    out[7] = '-';
    out[8] = (char)('0' + tm.tm_mday / 10);
    out[9] = (char)('0' + tm.tm_mday % 10);
    out[10] = 'T';
    out[11] = (char)('0' + tm.tm_hour / 10);
    out[12] = (char)('0' + tm.tm_hour % 10);
    out[13] = ':';
    out[14] = (char)('0' + tm.tm_min / 10);
    out[15] = (char)('0' + tm.tm_min % 10);
    out[16] = ':';
    out[17] = (char)('0' + tm.tm_sec / 10);
    out[18] = (char)('0' + tm.tm_sec % 10);
    out[19] = 'Z';
    lua_pushlstring(L, out, 20);
    return 1;
}

static int l_parse_http_date(lua_State *L)
{
    const char *s = luaL_checkstring(L, 1);
    time_t t = curl_getdate(s, NULL);
    if (t == (time_t)-1) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushnumber(L, (lua_Number)t);
    return 1;
}

static int l_curl_version(lua_State *L)
{
    lua_pushstring(L, curl_version());
    return 1;
}

static const luaL_Reg core_funcs[] = {
    {"pct_encode", l_pct_encode},
    {"b64encode", l_b64encode},
    {"hmac", l_hmac},
    {"sha256_hex", l_sha256_hex},
    {"random_bytes", l_random_bytes},
    {"now", l_now},
    {"env_set", l_env_set},
    {"file_mode", l_file_mode},
    {"monotime", l_monotime},
    {"sleep", l_sleep},
    {"iso8601", l_iso8601},
    {"parse_http_date", l_parse_http_date},
    {"json_decode", cdk_json_l_decode},
    {"json_encode", cdk_json_l_encode},
    {"use_array_mt", cdk_json_l_use_array_mt},
    {"parse_headers", cdk_http_l_parse_headers},
    {"client_class", cdk_client_class},
    {"new_client", cdk_client_new},
    {"client_token", cdk_client_token},
    {"client_set_token", cdk_client_set_token},
    {"client_set_credentials", cdk_client_set_credentials},
    {"curl", cdk_http_new},
    {"redis", cdk_redis_connect},
    {"curl_version", l_curl_version},
    {NULL, NULL},
};

CDK_API int luaopen_cdnkit_core(lua_State *L);

CDK_API int luaopen_cdnkit_core(lua_State *L)
{
    /* libcurl >= 7.84 makes curl_global_init thread-safe and reference counted */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return luaL_error(L, "cdnkit: curl_global_init failed");
    cdk_scratch_register(L);
    cdk_redis_register(L);
    cdk_http_register(L);
    luaL_newlib(L, core_funcs);
    {
        /* functions sharing this lua_State's CSPRNG block */
        static const luaL_Reg rng_funcs[] = {
            {"uuid4", l_uuid4},
            {"nonce_int", l_nonce_int},
            {NULL, NULL},
        };
        cdk_rng *r = (cdk_rng *)lua_newuserdata(L, sizeof(cdk_rng));
        r->page = NULL;
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, rng_gc);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        if (!cdk_rng_init(r))
            return luaL_error(L, "cdnkit: out of memory");
        luaL_setfuncs(L, rng_funcs, 1);
    }
    cdk_sign_push_schemes(L);
    lua_setfield(L, -2, "signers");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    cdk_json_push_array_mt(L);
    lua_setfield(L, -2, "array_mt");
    lua_pushliteral(L, CDNKIT_VERSION);
    lua_setfield(L, -2, "VERSION");
    return 1;
}
