/*
 * fuzz/json_fuzz.c - libFuzzer target for the JSON codec (src/json.c).
 * Property: decoding never crashes; whatever decodes re-encodes, and
 * encoding is a fixed point (encode(decode(encode(v))) == encode(v)).
 * Built and run by `make fuzz` (clang -fsanitize=fuzzer,address,undefined).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <lualib.h>
#include "../src/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    lua_State *L = luaL_newstate();
    if (L == NULL)
        return 0;
    if (cdk_json_decode(L, (const char *)data, size, 64, err, sizeof(err))) {
        size_t n1, n2;
        const char *e1, *e2;
        if (cdk_json_encode_str(L, -1, 64, err, sizeof(err))) {
            e1 = lua_tolstring(L, -1, &n1);
            if (!cdk_json_decode(L, e1, n1, 64, err, sizeof(err)))
                abort(); /* our own output must decode */
            if (!cdk_json_encode_str(L, -1, 64, err, sizeof(err)))
                abort();
            e2 = lua_tolstring(L, -1, &n2);
            if (n1 != n2 || memcmp(e1, e2, n1) != 0)
                abort(); /* encoding is a fixed point */
        }
        /* encode may refuse what decode accepts only for inf (1e400) */
    } else if (strlen(err) == 0) {
        abort(); /* a failure always says why */
    }
    lua_close(L);
    return 0;
}
