/*
 * json.h - strict JSON codec for cdnkit (Lua 5.4 and the Lua 5.1 API).
 *
 * Decoding
 *   object  -> plain Lua table (duplicate keys: the last one wins)
 *   array   -> Lua table with the shared array metatable (also when empty), so
 *              that re-encoding it gives [] again
 *   null    -> light userdata NULL (the same value as cjson.null), also inside
 *              arrays, which therefore keep their positions and their length
 *   true / false -> booleans
 *   number  -> an integer literal (no '.', 'e', 'E') that fits in int64 becomes
 *              an exact Lua integer when CDK_HAVE_INT64 ("-0" becomes the float
 *              -0.0).  Without 64-bit integers (Lua 5.1 / LuaJIT) an integer
 *              literal with |n| > 2^53 that fits in int64 is returned as a Lua
 *              STRING of its digits (e.g. "9007199254740993"), because a double
 *              cannot hold it exactly; smaller ones are numbers.  Integers that
 *              overflow int64 and all other numbers become floats (correctly
 *              rounded, independent of the C locale).  Literals beyond the
 *              double range (1e400) become +/-inf (math.huge).
 *   string  -> Lua string; every escape is decoded, \uXXXX with surrogate pairs
 *              to UTF-8, \u0000 to a NUL byte.  Lone surrogates, unknown escapes
 *              and raw control characters (< 0x20) are errors.  Other bytes are
 *              copied as they are: invalid UTF-8 is passed through unchanged.
 *   The grammar is strict RFC 8259: no comments, no trailing commas, no
 *   leading zeros / '+' / '.5' / '1.', no NaN/Infinity, no single quotes, no
 *   unquoted keys, nothing but whitespace after the value.  A leading UTF-8
 *   BOM is skipped.  Byte positions in error messages are 1-based; "truncated
 *   input" reports len + 1.
 *
 * Encoding
 *   nil, light userdata NULL -> null; booleans; integers -> exact decimal;
 *   floats -> shortest of %.14g..%.17g that reads back to the same double,
 *   always with '.' as decimal point; NaN and +/-inf are errors.  Without
 *   64-bit integers (Lua 5.1) every number is a double: integral values with
 *   |n| < 2^63 are written as their exact decimal digits ("1152921504606846976"
 *   for 2^60), so APIs expecting integers get integers; above 2^53 such text
 *   decodes back as a digit string, as described above.
 *   strings -> escaped " \ and control characters (\b \f \n \r \t, others
 *   \u00XX); everything else, including UTF-8 (valid or not) and '/', as is.
 *   tables -> an array when its metatable has __jsontype == "array" (the
 *   shared array metatable does): elements 1..lua_rawlen(t), nil -> null,
 *   other keys ignored.  Otherwise: no keys -> {}; keys exactly 1..n -> array;
 *   only string keys -> object with the keys sorted bytewise (memcmp order),
 *   so the output is deterministic; anything else (mixed string/number keys,
 *   sparse or non-positive integer keys, float keys, other key types) is an
 *   error.  Metamethods are never called (raw access only).
 *   Unsupported values (functions, threads, full userdata, non-NULL light
 *   userdata) are errors.  Nesting deeper than max_depth is an error; this is
 *   also how reference cycles are detected.
 *   Error messages start with "cannot encode" and end with the path of the
 *   offending value when it is not the top level, e.g.
 *   "cannot encode value of type function at $.handlers[2]".
 *
 * Depth: max_depth <= 0 selects CDK_JSON_DEFAULT_DEPTH; values above
 * CDK_JSON_DEPTH_LIMIT are clamped to it (the codec recurses on the C stack,
 * one level per nesting level, so the recursion is always bounded).
 *
 * No global mutable state: any number of lua_States may use the codec
 * concurrently.  Bad input never raises a Lua error; memory errors may.
 */
#ifndef CDNKIT_JSON_H
#define CDNKIT_JSON_H

#include <stddef.h>
#include "compat.h"

#define CDK_JSON_DEFAULT_DEPTH 64
#define CDK_JSON_DEPTH_LIMIT 1000

/* Decode JSON text s[0..len) and push the Lua value.  On failure push nothing,
   write a message like "unexpected character 'x' at byte 17" /
   "truncated input at byte 120" / "nesting deeper than 64 at byte 9" /
   "empty input" into err (errlen bytes, always NUL-terminated when errlen > 0)
   and return 0.  On success return 1.  s must stay valid during the call. */
int cdk_json_decode(lua_State *L, const char *s, size_t len, int max_depth, char *err,
                    size_t errlen);

/* Encode the value at idx (absolute or relative) and push the JSON text as a
   Lua string; return 1.  On failure push nothing, write a message starting
   with "cannot encode" into err (always NUL-terminated when errlen > 0) and
   return 0.  The value at idx is never modified. */
int cdk_json_encode_str(lua_State *L, int idx, int max_depth, char *err, size_t errlen);

/* Push the shared array metatable: created once per lua_State and kept in the
   registry under a static-address key (lua_rawgetp/lua_rawsetp); it has
   __name = "cdnkit.array" and __jsontype = "array". */
void cdk_json_push_array_mt(lua_State *L);

/* luaL_Reg-compatible Lua functions for the module table:
   decode(s [, max_depth]) -> value | nil, errmsg
       (JSON null decodes to light userdata NULL, never to nil, so a nil first
       result always means an error; a non-string s or max_depth < 1 raises)
   encode(v [, max_depth]) -> string, or raises "cannot encode ..." */
int cdk_json_l_decode(lua_State *L);
int cdk_json_l_encode(lua_State *L);

/* core.use_array_mt(mt): decoded arrays carry mt from now on */
int cdk_json_l_use_array_mt(lua_State *L);

#endif /* CDNKIT_JSON_H */
