/*
 * client.c - the client userdata: credentials kept in C memory (wiped on
 * close), request signing that needs the secret, and the libcurl transport
 * (one reusable easy handle for sequential calls, a multi handle with a
 * small pool of easy handles for concurrent batches).
 *
 * Lua-facing methods (all on the userdata):
 *   c:_perform(req)                 -> status, headers, body | nil, err
 *   c:_perform_many(reqs, opts)     -> { {status=,headers=,body=} | {err=}, ... }
 *   c:_sign_aliyun(params, method)  -> query, string_to_sign, signature, canonical
 *   c:_sign_qcloud(params, method, host, path) -> encoded, source, signature
 *   c:_hmac(alg, msg [, "hex"|"base64"|"raw"]) -> digest keyed with the secret
 *   c:_state()                      -> the Lua-side state table (uservalue)
 *   c:close()                       -> frees handles, wipes the secret (idempotent)
 *   c:is_closed()                   -> boolean
 * Metamethods: __index (C methods, then state.methods), __tostring, __gc, __close.
 */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include <curl/curl.h>
#include "client.h"
#include "util.h"

#define CLIENT_MT "cdnkit.client"
#define DEFAULT_MAX_BODY (64L * 1024 * 1024)

typedef struct xfer {
    cdk_buf body;
    cdk_buf hdrs;
    size_t limit;
    int overflow;
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
} xfer;

typedef struct slot {
    CURL *easy;
    xfer x;
    int idx;
    int active;
} slot;

typedef struct cdk_client {
    char vendor[24];
    char *key_id;
    char *secret;
    size_t secret_len;
    char *endpoint;
    char *proxy;
    char *ca_file;
    char *user_agent;
    long timeout_ms;
    long connect_timeout_ms;
    long max_body;
    int verify_tls;
    int closed;
    int busy;          /* > 0 while a method of this client runs */
    int close_pending; /* close() arrived while busy: release on the way out */
    struct cdk_client *borrowed; /* another client marked busy by this call */
    CURL *easy;
    xfer x;
    CURLM *multi;
    slot *pool;
    int pool_n;
} cdk_client;

/* ------------------------------------------------------------------ */

static char *dupstr(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static void xfer_init(xfer *x)
{
    cdk_buf_init(&x->body);
    cdk_buf_init(&x->hdrs);
    x->limit = 0;
    x->overflow = 0;
    x->headers = NULL;
    x->errbuf[0] = '\0';
}

static void xfer_clear(xfer *x)
{
    cdk_buf_free(&x->body);
    cdk_buf_free(&x->hdrs);
    if (x->headers != NULL)
        curl_slist_free_all(x->headers);
    xfer_init(x);
}

static void client_release(cdk_client *c)
{
    int i;
    if (c->closed)
        return;
    if (c->busy > 0) {
        /* a finalizer or metamethod closed us in the middle of a call:
           free nothing now, the running call releases on its way out */
        c->close_pending = 1;
        return;
    }
    c->closed = 1;
    if (c->pool != NULL) {
        for (i = 0; i < c->pool_n; i++) {
            if (c->pool[i].easy != NULL) {
                if (c->pool[i].active && c->multi != NULL)
                    curl_multi_remove_handle(c->multi, c->pool[i].easy);
                curl_easy_cleanup(c->pool[i].easy);
            }
            xfer_clear(&c->pool[i].x);
        }
        free(c->pool);
        c->pool = NULL;
        c->pool_n = 0;
    }
    if (c->multi != NULL)
        curl_multi_cleanup(c->multi);
    c->multi = NULL;
    if (c->easy != NULL)
        curl_easy_cleanup(c->easy);
    c->easy = NULL;
    xfer_clear(&c->x);
    if (c->secret != NULL) {
        cdk_wipe(c->secret, c->secret_len);
        free(c->secret);
    }
    c->secret = NULL;
    c->secret_len = 0;
    free(c->key_id);
    free(c->endpoint);
    free(c->proxy);
    free(c->ca_file);
    free(c->user_agent);
    c->key_id = c->endpoint = c->proxy = c->ca_file = c->user_agent = NULL;
}

static cdk_client *check_client(lua_State *L, int i)
{
    return (cdk_client *)luaL_checkudata(L, i, CLIENT_MT);
}

static cdk_client *check_open(lua_State *L, int i)
{
    cdk_client *c = check_client(L, i);
    if (c->closed)
        luaL_error(L, "cdnkit.%s: client is closed", c->vendor);
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

static long opt_ms(lua_State *L, int t, const char *name, double def)
{
    double v = def;
    lua_getfield(L, t, name);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "cdnkit: option '%s' must be a number of seconds", name);
        v = lua_tonumber(L, -1);
        if (!(v > 0 && v < 86400.0 * 365))
            luaL_error(L, "cdnkit: option '%s' must be > 0 seconds", name);
    }
    lua_pop(L, 1);
    /* round up: 0.0004 s must not become 0 ms, which libcurl reads as "never" */
    return (long)ceil(v * 1000.0 - 1e-6);
}

/* core.new_client(vendor, opts, state) */
int cdk_client_new(lua_State *L)
{
    size_t vlen;
    const char *vendor = luaL_checklstring(L, 1, &vlen);
    cdk_client *c;
    int ok = 1;
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TTABLE);
    if (vlen == 0 || vlen >= sizeof(c->vendor))
        return luaL_argerror(L, 1, "bad vendor name");
    c = (cdk_client *)lua_newuserdata(L, sizeof(*c));
    memset(c, 0, sizeof(*c));
    memcpy(c->vendor, vendor, vlen);
    c->closed = 1; /* until fully set up: __gc must not touch half-built state */
    xfer_init(&c->x);
    luaL_getmetatable(L, CLIENT_MT);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, 3);
    cdk_setuservalue(L, -2);
    c->closed = 0;

    ok = ok && opt_string(L, 2, "key_id", &c->key_id, NULL);
    ok = ok && opt_string(L, 2, "secret", &c->secret, &c->secret_len);
    ok = ok && opt_string(L, 2, "endpoint", &c->endpoint, NULL);
    ok = ok && opt_string(L, 2, "proxy", &c->proxy, NULL);
    ok = ok && opt_string(L, 2, "ca_file", &c->ca_file, NULL);
    ok = ok && opt_string(L, 2, "user_agent", &c->user_agent, NULL);
    if (!ok) {
        client_release(c);
        return luaL_error(L, "cdnkit: out of memory");
    }
    c->timeout_ms = opt_ms(L, 2, "timeout", 30.0);
    c->connect_timeout_ms = opt_ms(L, 2, "connect_timeout", 5.0);
    lua_getfield(L, 2, "verify_tls");
    c->verify_tls = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 2, "max_body");
    c->max_body = DEFAULT_MAX_BODY;
    if (lua_isnumber(L, -1)) {
        lua_Number mb = lua_tonumber(L, -1);
        if (!(mb >= 1 && mb <= 1024.0 * 1024 * 1024)) {
            client_release(c);
            return luaL_error(L, "cdnkit: option 'max_body' must be 1 .. 2^30 bytes");
        }
        c->max_body = (long)mb;
    }
    lua_pop(L, 1);
    return 1;
}

/* ------------------------------------------------------------------ */
/* libcurl callbacks */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    xfer *x = (xfer *)ud;
    size_t n = size * nmemb;
    if (x->body.len + n > x->limit) {
        x->overflow = 1;
        return 0;
    }
    if (!cdk_buf_add(&x->body, ptr, n))
        return 0;
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    xfer *x = (xfer *)ud;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0)
        x->hdrs.len = 0; /* a new response (after 100-continue or redirect) */
    if (x->hdrs.len + n > 256 * 1024)
        return 0;
    if (!cdk_buf_add(&x->hdrs, ptr, n))
        return 0;
    return n;
}

#define SETOPT(e, o, v)                                                   \
    do {                                                                  \
        if (curl_easy_setopt((e), (o), (v)) != CURLE_OK) {                \
            snprintf(why, whylen, "curl_easy_setopt(%s) failed", #o);     \
            return 0;                                                     \
        }                                                                 \
    } while (0)

/* Configure easy for the request table at index r. Returns 1, or 0 with why
   filled (a usage mistake in the request table raises instead). */
static int setup_easy(lua_State *L, cdk_client *c, CURL *e, xfer *x, int r,
                      char *why, size_t whylen)
{
    const char *url, *method, *body = NULL;
    size_t bodylen = 0;
    struct curl_slist *sl;

    r = lua_absindex(L, r);
    xfer_clear(x);
    x->limit = (size_t)c->max_body;
    curl_easy_reset(e);

    lua_getfield(L, r, "url");
    url = lua_tostring(L, -1);
    if (url == NULL)
        return luaL_error(L, "cdnkit: request has no url");
    SETOPT(e, CURLOPT_URL, url);
    lua_pop(L, 1);

    lua_getfield(L, r, "method");
    method = lua_isnil(L, -1) ? "GET" : lua_tostring(L, -1);
    if (method == NULL || method[0] == '\0' || strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(method))
        return luaL_error(L, "cdnkit: request method must be an upper-case HTTP method");
    lua_getfield(L, r, "body");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "cdnkit: request body must be a string");
        body = lua_tolstring(L, -1, &bodylen);
    }
    if (strcmp(method, "GET") == 0 && body == NULL) {
        SETOPT(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        SETOPT(e, CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(method, "POST") != 0)
            SETOPT(e, CURLOPT_CUSTOMREQUEST, method);
        if (body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
            SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bodylen);
            SETOPT(e, CURLOPT_COPYPOSTFIELDS, body != NULL ? body : "");
        }
    }
    lua_pop(L, 2);

    /* headers: a map name -> value */
    sl = curl_slist_append(NULL, "Expect:");
    if (sl == NULL) {
        snprintf(why, whylen, "out of memory");
        return 0;
    }
    x->headers = sl;
    lua_getfield(L, r, "headers");
    if (lua_type(L, -1) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            cdk_buf line;
            const char *k, *v;
            size_t kl, vl;
            if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
                return luaL_error(L, "cdnkit: request headers must map strings to strings");
            k = lua_tolstring(L, -2, &kl);
            v = lua_tolstring(L, -1, &vl);
            if (memchr(k, '\n', kl) || memchr(k, '\r', kl) || memchr(v, '\n', vl) ||
                memchr(v, '\r', vl) || memchr(k, '\0', kl) || memchr(v, '\0', vl) ||
                memchr(k, ':', kl) || kl == 0)
                return luaL_error(L, "cdnkit: header '%s' has a bad name or a line break", k);
            cdk_buf_init(&line);
            cdk_buf_add(&line, k, kl);
            if (strspn(v, " \t") == vl) {
                /* empty or blank: "Name:" alone would make libcurl drop the
                   header; "Name;" is its way to send it empty */
                cdk_buf_addc(&line, ';');
            } else {
                cdk_buf_add(&line, ": ", 2);
                cdk_buf_add(&line, v, vl);
            }
            sl = line.failed ? NULL : curl_slist_append(x->headers, line.p);
            cdk_buf_free(&line);
            if (sl == NULL) {
                lua_pop(L, 3);
                snprintf(why, whylen, "out of memory");
                return 0;
            }
            x->headers = sl;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    SETOPT(e, CURLOPT_HTTPHEADER, x->headers);

    SETOPT(e, CURLOPT_NOSIGNAL, 1L);
    SETOPT(e, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    SETOPT(e, CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(e, CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(e, CURLOPT_ACCEPT_ENCODING, "");
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SETOPT(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SETOPT(e, CURLOPT_SSL_VERIFYPEER, c->verify_tls ? 1L : 0L);
    SETOPT(e, CURLOPT_SSL_VERIFYHOST, c->verify_tls ? 2L : 0L);
    if (c->ca_file != NULL)
        SETOPT(e, CURLOPT_CAINFO, c->ca_file);
    if (c->proxy != NULL)
        SETOPT(e, CURLOPT_PROXY, c->proxy);
    if (c->user_agent != NULL)
        SETOPT(e, CURLOPT_USERAGENT, c->user_agent);
    SETOPT(e, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(e, CURLOPT_WRITEDATA, (void *)x);
    SETOPT(e, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(e, CURLOPT_HEADERDATA, (void *)x);
    SETOPT(e, CURLOPT_ERRORBUFFER, x->errbuf);
    return 1;
}

/* push the headers table parsed from the raw header block */
static void push_headers(lua_State *L, const cdk_buf *h)
{
    const char *p = h->p, *end = h->p + h->len;
    lua_newtable(L);
    while (p != NULL && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end;
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        if (colon != NULL && colon > p && !(line_end - p >= 5 && memcmp(p, "HTTP/", 5) == 0)) {
            char name[128];
            size_t nl = (size_t)(colon - p), i;
            const char *v = colon + 1, *ve = line_end;
            if (nl < sizeof(name)) {
                for (i = 0; i < nl; i++) {
                    char ch = p[i];
                    name[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
                }
                while (v < ve && (*v == ' ' || *v == '\t'))
                    v++;
                while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                    ve--;
                lua_pushlstring(L, name, nl);
                lua_pushvalue(L, -1);
                lua_rawget(L, -3);
                if (lua_isstring(L, -1)) { /* repeated header: join with ", " */
                    lua_pushliteral(L, ", ");
                    lua_pushlstring(L, v, (size_t)(ve - v));
                    lua_concat(L, 3);
                } else {
                    lua_pop(L, 1);
                    lua_pushlstring(L, v, (size_t)(ve - v));
                }
                lua_rawset(L, -3);
            }
        }
        p = eol ? eol + 1 : NULL;
    }
}

static const char *classify(CURLcode rc, const xfer *x)
{
    if (x->overflow)
        return "http";
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return "connect";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
        return "tls";
    default:
        return "http";
    }
}

/* push the transport error table { code=, message=, sent=, curl_code= } */
static void push_error(lua_State *L, CURL *e, CURLcode rc, const xfer *x)
{
    long reqsize = 0;
    const char *msg;
    char buf[CURL_ERROR_SIZE + 96];
    curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &reqsize);
    if (x->overflow) {
        snprintf(buf, sizeof(buf), "response body larger than %lu bytes", (unsigned long)x->limit);
        msg = buf;
    } else {
        msg = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
    }
    lua_createtable(L, 0, 4);
    lua_pushstring(L, classify(rc, x));
    lua_setfield(L, -2, "code");
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
    lua_pushboolean(L, reqsize > 0);
    lua_setfield(L, -2, "sent");
    lua_pushinteger(L, (lua_Integer)rc);
    lua_setfield(L, -2, "curl_code");
}

static int ensure_easy(cdk_client *c)
{
    if (c->easy == NULL)
        c->easy = curl_easy_init();
    return c->easy != NULL;
}

/* c:_perform(req) -> status, headers, body | nil, err */
static int perform_impl(lua_State *L)
{
    cdk_client *c = check_open(L, 1);
    char why[160];
    CURLcode rc;
    long status = 0;
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!ensure_easy(c))
        return luaL_error(L, "cdnkit: curl_easy_init failed");
    if (!setup_easy(L, c, c->easy, &c->x, 2, why, sizeof(why)))
        return luaL_error(L, "cdnkit: %s", why);
    rc = curl_easy_perform(c->easy);
    if (rc != CURLE_OK || c->x.body.failed || c->x.hdrs.failed) {
        lua_pushnil(L);
        push_error(L, c->easy, rc, &c->x);
        xfer_clear(&c->x);
        return 2;
    }
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    lua_pushinteger(L, (lua_Integer)status);
    push_headers(L, &c->x.hdrs);
    cdk_buf_push(L, &c->x.body);
    xfer_clear(&c->x);
    return 3;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int ensure_pool(cdk_client *c, int n)
{
    int i;
    if (c->multi == NULL) {
        c->multi = curl_multi_init();
        if (c->multi == NULL)
            return 0;
    }
    if (c->pool_n >= n)
        return 1;
    {
        slot *np = realloc(c->pool, sizeof(slot) * (size_t)n);
        if (np == NULL)
            return 0;
        c->pool = np;
    }
    for (i = c->pool_n; i < n; i++) {
        c->pool[i].easy = NULL;
        c->pool[i].active = 0;
        c->pool[i].idx = 0;
        xfer_init(&c->pool[i].x);
    }
    for (i = c->pool_n; i < n; i++) {
        c->pool[i].easy = curl_easy_init();
        if (c->pool[i].easy == NULL) {
            c->pool_n = i;
            return 0;
        }
        c->pool_n = i + 1;
    }
    return 1;
}

static void detach_all(cdk_client *c)
{
    int i;
    for (i = 0; i < c->pool_n; i++) {
        if (c->pool[i].active) {
            curl_multi_remove_handle(c->multi, c->pool[i].easy);
            c->pool[i].active = 0;
        }
        xfer_clear(&c->pool[i].x);
    }
}

#define MAX_GROUPS 64

typedef struct pending {
    double not_before; /* monotonic seconds; 0 = now */
    int group;         /* 0 = none, else 1..MAX_GROUPS */
    int started;
} pending;

/* the client whose transfer settings a request uses: req.client or self */
static cdk_client *req_client(lua_State *L, int r, cdk_client *self)
{
    cdk_client *rc = self;
    lua_getfield(L, r, "client");
    if (!lua_isnil(L, -1)) {
        rc = (cdk_client *)luaL_testudata(L, -1, CLIENT_MT);
        if (rc == NULL || rc->closed)
            rc = NULL;
    }
    /* the value stays on the stack: it anchors rc while it is in use */
    return rc;
}

/* c:_perform_many(reqs, { concurrency = n, rate = per_second, groups = { [g] = n } })
   reqs[i] = { method=, url=, headers=, body=,
               not_before = core.monotime() value before which it must not start,
               group = 1..64 (at most groups[g] of a group in flight at once),
               client = another client whose timeouts/proxy/TLS settings to use }
   -> results array; results[i] = { status=, headers=, body= } or { err = {...} }
   Requests start in order, as concurrency, group limits, not_before and the
   overall rate allow. */
static int perform_many_impl(lua_State *L)
{
    cdk_client *c = check_open(L, 1);
    int n, conc = 4, running = 0, done = 0, results, first = 0, started = 0, i;
    int glimit[MAX_GROUPS + 1], grun[MAX_GROUPS + 1];
    double rate = 0, t0;
    pending *pr;
    char why[160];
    luaL_checktype(L, 2, LUA_TTABLE);
    n = (int)lua_rawlen(L, 2);
    for (i = 0; i <= MAX_GROUPS; i++)
        glimit[i] = grun[i] = 0;
    if (lua_type(L, 3) == LUA_TTABLE) {
        lua_Number v;
        lua_getfield(L, 3, "concurrency");
        if (!lua_isnil(L, -1)) {
            v = lua_tonumber(L, -1);
            if (!lua_isnumber(L, -1) || !(v >= 1 && v <= 256))
                return luaL_error(L, "cdnkit: concurrency must be between 1 and 256");
            conc = (int)v;
        }
        lua_getfield(L, 3, "rate");
        if (!lua_isnil(L, -1)) {
            rate = lua_tonumber(L, -1);
            if (!lua_isnumber(L, -1) || !(rate >= 0.001 && rate <= 1e6))
                return luaL_error(L, "cdnkit: rate must be between 0.001 and 1e6 per second");
        }
        lua_getfield(L, 3, "groups");
        if (lua_type(L, -1) == LUA_TTABLE) {
            for (i = 1; i <= MAX_GROUPS; i++) {
                lua_rawgeti(L, -1, i);
                v = lua_tonumber(L, -1);
                if (lua_isnumber(L, -1) && v >= 1 && v <= 256)
                    glimit[i] = (int)v;
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 3);
    }
    if (conc > n)
        conc = n > 0 ? n : 1;
    /* scratch state lives in a userdata: freed by the GC whatever happens */
    pr = (pending *)lua_newuserdata(L, sizeof(pending) * (size_t)(n > 0 ? n : 1));
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, 2, i + 1);
        if (lua_type(L, -1) != LUA_TTABLE)
            return luaL_error(L, "cdnkit: request %d is not a table", i + 1);
        lua_getfield(L, -1, "not_before");
        pr[i].not_before = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : 0;
        if (!(pr[i].not_before >= 0 && pr[i].not_before <= mono_now() + 3600))
            return luaL_error(L, "cdnkit: request %d: not_before must be within the next hour", i + 1);
        lua_getfield(L, -2, "group");
        pr[i].group = 0;
        if (!lua_isnil(L, -1)) {
            lua_Number g = lua_tonumber(L, -1);
            if (!lua_isnumber(L, -1) || !(g >= 1 && g <= MAX_GROUPS) || g != floor(g))
                return luaL_error(L, "cdnkit: request %d: group must be 1..%d", i + 1, MAX_GROUPS);
            pr[i].group = (int)g;
        }
        lua_getfield(L, -3, "url");
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "cdnkit: request %d has no url", i + 1);
        lua_pop(L, 1);
        pr[i].started = 0;
        lua_pop(L, 3);
    }
    lua_createtable(L, n, 0);
    results = lua_gettop(L);
    if (n == 0)
        return 1;
    detach_all(c); /* before the pool may move in memory */
    if (!ensure_pool(c, conc))
        return luaL_error(L, "cdnkit: cannot create curl handles");
    t0 = mono_now();

    while (done < n) {
        int still = 0, msgs = 0, completed = 0;
        long wait_ms = 1000;
        double now = mono_now();
        CURLMsg *m;
        /* start what concurrency, group limits, not_before and pacing allow */
        for (i = first; i < n && running < conc; i++) {
            slot *s = NULL;
            cdk_client *rc;
            int j, g = pr[i].group;
            if (pr[i].started) {
                if (i == first)
                    first++;
                continue;
            }
            if (g > 0 && glimit[g] > 0 && grun[g] >= glimit[g])
                continue;
            if (pr[i].not_before > now) {
                double ms = (pr[i].not_before - now) * 1000.0; /* may be huge: clamp as double */
                if (ms < (double)wait_ms)
                    wait_ms = (long)ms + 1;
                continue;
            }
            if (rate > 0) {
                double due = t0 + (double)started / rate;
                if (due > now) {
                    double ms = (due - now) * 1000.0;
                    if (ms < (double)wait_ms)
                        wait_ms = (long)ms + 1;
                    break;
                }
            }
            for (j = 0; j < c->pool_n; j++)
                if (!c->pool[j].active) {
                    s = &c->pool[j];
                    break;
                }
            if (s == NULL)
                break;
            lua_rawgeti(L, 2, i + 1);
            rc = req_client(L, lua_gettop(L), c);
            if (rc == NULL) {
                detach_all(c);
                return luaL_error(L, "cdnkit: request %d: 'client' is not an open cdnkit client", i + 1);
            }
            if (rc != c) { /* keep it from being freed under setup_easy */
                rc->busy++;
                c->borrowed = rc;
            }
            j = setup_easy(L, rc, s->easy, &s->x, -2, why, sizeof(why));
            if (rc != c) {
                c->borrowed = NULL;
                rc->busy--;
                if (rc->close_pending && rc->busy == 0) {
                    rc->close_pending = 0;
                    client_release(rc);
                }
            }
            if (!j) {
                detach_all(c);
                return luaL_error(L, "cdnkit: %s", why);
            }
            lua_pop(L, 2); /* request, client */
            if (curl_easy_setopt(s->easy, CURLOPT_PRIVATE, (void *)s) != CURLE_OK ||
                curl_multi_add_handle(c->multi, s->easy) != CURLM_OK) {
                detach_all(c);
                return luaL_error(L, "cdnkit: curl_multi_add_handle failed");
            }
            s->active = 1;
            s->idx = i + 1;
            pr[i].started = 1;
            started++;
            running++;
            if (g > 0)
                grun[g]++;
        }
        if (curl_multi_perform(c->multi, &still) != CURLM_OK) {
            detach_all(c);
            return luaL_error(L, "cdnkit: curl_multi_perform failed");
        }
        while ((m = curl_multi_info_read(c->multi, &msgs)) != NULL) {
            slot *s = NULL;
            int g;
            if (m->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            if (s == NULL)
                continue;
            lua_createtable(L, 0, 3);
            if (m->data.result != CURLE_OK || s->x.body.failed || s->x.hdrs.failed) {
                push_error(L, s->easy, m->data.result, &s->x);
                lua_setfield(L, -2, "err");
            } else {
                long status = 0;
                curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
                lua_pushinteger(L, (lua_Integer)status);
                lua_setfield(L, -2, "status");
                push_headers(L, &s->x.hdrs);
                lua_setfield(L, -2, "headers");
                cdk_buf_push(L, &s->x.body);
                lua_setfield(L, -2, "body");
            }
            lua_rawseti(L, results, s->idx);
            g = pr[s->idx - 1].group;
            if (g > 0)
                grun[g]--;
            curl_multi_remove_handle(c->multi, s->easy);
            xfer_clear(&s->x);
            s->active = 0;
            running--;
            done++;
            completed++;
        }
        /* something finished: go round at once to start what it unblocked */
        if (done < n && completed == 0) {
            if (running == 0) {
                /* only time holds us back: sleep until the next start is due */
                struct timespec ts;
                ts.tv_sec = wait_ms / 1000;
                ts.tv_nsec = (wait_ms % 1000) * 1000000L;
                nanosleep(&ts, NULL);
            } else if (curl_multi_poll(c->multi, NULL, 0, (int)wait_ms, NULL) != CURLM_OK) {
                detach_all(c);
                return luaL_error(L, "cdnkit: curl_multi_poll failed");
            }
        }
    }
    return 1;
}

/* ------------------------------------------------------------------ */
/* signing */

typedef struct pair {
    const char *k, *v, *sk; /* name, value, sort key */
    size_t kl, vl, skl;
    size_t sko;             /* sort key offset in the arena while it grows */
} pair;

static int pair_cmp(const void *a, const void *b)
{
    const pair *x = (const pair *)a, *y = (const pair *)b;
    size_t n = x->skl < y->skl ? x->skl : y->skl;
    int r = memcmp(x->sk, y->sk, n);
    if (r != 0)
        return r;
    return (x->skl > y->skl) - (x->skl < y->skl);
}

enum sortmode { SORT_PCT, SORT_QCLOUD };

/* Collect the string->string table at t into a sorted pair array.
   Numbers are accepted as values (converted in place on a copy).
   Returns the count; *out must be freed; arena must be freed by the caller. */
static int collect_pairs(lua_State *L, int t, enum sortmode mode, pair **out, cdk_buf *arena)
{
    int n = 0, cap = 16, i;
    pair *ps = malloc(sizeof(pair) * (size_t)cap);
    if (ps == NULL)
        return luaL_error(L, "cdnkit: out of memory");
    cdk_buf_init(arena);
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        pair *p;
        if (lua_type(L, -2) != LUA_TSTRING) {
            free(ps);
            cdk_buf_free(arena);
            return luaL_error(L, "cdnkit: parameter names must be strings");
        }
        if (lua_type(L, -1) != LUA_TSTRING) {
            free(ps);
            cdk_buf_free(arena);
            return luaL_error(L, "cdnkit: parameter '%s' must be a string when signing",
                              lua_tostring(L, -2));
        }
        if (n == cap) {
            pair *np = realloc(ps, sizeof(pair) * (size_t)cap * 2);
            if (np == NULL) {
                free(ps);
                cdk_buf_free(arena);
                return luaL_error(L, "cdnkit: out of memory");
            }
            ps = np;
            cap *= 2;
        }
        p = &ps[n++];
        /* strings stay alive: they are referenced by the table being traversed */
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
        lua_pop(L, 1);
    }
    if (arena->failed) {
        free(ps);
        cdk_buf_free(arena);
        return luaL_error(L, "cdnkit: out of memory");
    }
    for (i = 0; i < n; i++)
        ps[i].sk = arena->p ? arena->p + ps[i].sko : "";
    qsort(ps, (size_t)n, sizeof(pair), pair_cmp);
    *out = ps;
    return n;
}

static int require_secret(lua_State *L, cdk_client *c)
{
    if (c->secret == NULL)
        return luaL_error(L, "cdnkit.%s: client has no secret", c->vendor);
    return 1;
}

/* c:_sign_aliyun(params, method) -> query, string_to_sign, signature, canonical */
static int sign_aliyun_impl(lua_State *L)
{
    cdk_client *c = check_open(L, 1);
    const char *method = luaL_checkstring(L, 3);
    pair *ps = NULL;
    cdk_buf arena, canon, sts, key, sig, query;
    unsigned char mac[32];
    unsigned maclen;
    int n, i;
    luaL_checktype(L, 2, LUA_TTABLE);
    require_secret(L, c);
    n = collect_pairs(L, 2, SORT_PCT, &ps, &arena);
    cdk_buf_init(&canon);
    cdk_buf_init(&sts);
    cdk_buf_init(&key);
    cdk_buf_init(&sig);
    cdk_buf_init(&query);
    for (i = 0; i < n; i++) {
        if (i)
            cdk_buf_addc(&canon, '&');
        cdk_buf_add(&canon, ps[i].sk, ps[i].skl);
        cdk_buf_addc(&canon, '=');
        cdk_buf_add_pct(&canon, ps[i].v, ps[i].vl);
    }
    cdk_buf_adds(&sts, method);
    cdk_buf_adds(&sts, "&%2F&");
    cdk_buf_add_pct(&sts, canon.p ? canon.p : "", canon.len);
    /* key = secret .. "&", allocated once at its final size so no copy of
       the secret is left in a block freed by realloc */
    key.p = malloc(c->secret_len + 2);
    if (key.p != NULL) {
        memcpy(key.p, c->secret, c->secret_len);
        key.p[c->secret_len] = '&';
        key.len = c->secret_len + 1;
        key.cap = c->secret_len + 2;
    }
    maclen = (key.p == NULL || sts.failed)
                 ? 0
                 : cdk_hmac(CDK_SHA1, key.p, key.len, sts.p, sts.len, mac);
    cdk_buf_wipe(&key);
    if (maclen > 0) {
        cdk_buf_add_b64(&sig, mac, maclen);
        cdk_buf_add(&query, canon.p ? canon.p : "", canon.len);
        cdk_buf_adds(&query, "&Signature=");
        cdk_buf_add_pct(&query, sig.p ? sig.p : "", sig.len);
    }
    cdk_wipe(mac, sizeof(mac));
    free(ps);
    cdk_buf_free(&arena);
    if (maclen == 0 || canon.failed || sig.failed || query.failed) {
        cdk_buf_free(&canon);
        cdk_buf_free(&sts);
        cdk_buf_free(&sig);
        cdk_buf_free(&query);
        return luaL_error(L, "cdnkit: signing failed (out of memory or OpenSSL error)");
    }
    lua_pushlstring(L, query.p, query.len);
    lua_pushlstring(L, sts.p, sts.len);
    lua_pushlstring(L, sig.p, sig.len);
    lua_pushlstring(L, canon.p ? canon.p : "", canon.len);
    cdk_buf_free(&canon);
    cdk_buf_free(&sts);
    cdk_buf_free(&sig);
    cdk_buf_free(&query);
    return 4;
}

/* c:_sign_qcloud(params, method, host, path) -> encoded, source, signature */
static int sign_qcloud_impl(lua_State *L)
{
    cdk_client *c = check_open(L, 1);
    const char *method = luaL_checkstring(L, 3);
    const char *host = luaL_checkstring(L, 4);
    const char *path = luaL_checkstring(L, 5);
    enum cdk_hash alg = CDK_SHA1;
    pair *ps = NULL;
    cdk_buf arena, src, sig, enc;
    unsigned char mac[32];
    unsigned maclen;
    int n, i;
    luaL_checktype(L, 2, LUA_TTABLE);
    require_secret(L, c);
    lua_getfield(L, 2, "SignatureMethod");
    if (lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "HmacSHA256") == 0)
        alg = CDK_SHA256;
    lua_pop(L, 1);
    n = collect_pairs(L, 2, SORT_QCLOUD, &ps, &arena);
    cdk_buf_init(&src);
    cdk_buf_init(&sig);
    cdk_buf_init(&enc);
    for (i = 0; method[i]; i++) {
        char ch = method[i];
        cdk_buf_addc(&src, (ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch);
    }
    cdk_buf_adds(&src, host);
    cdk_buf_adds(&src, path);
    cdk_buf_addc(&src, '?');
    for (i = 0; i < n; i++) {
        if (i) {
            cdk_buf_addc(&src, '&');
            cdk_buf_addc(&enc, '&');
        }
        cdk_buf_add(&src, ps[i].sk, ps[i].skl);
        cdk_buf_addc(&src, '=');
        cdk_buf_add(&src, ps[i].v, ps[i].vl);
        cdk_buf_add_pct(&enc, ps[i].k, ps[i].kl);
        cdk_buf_addc(&enc, '=');
        cdk_buf_add_pct(&enc, ps[i].v, ps[i].vl);
    }
    maclen = src.failed ? 0 : cdk_hmac(alg, c->secret, c->secret_len, src.p, src.len, mac);
    if (maclen > 0) {
        cdk_buf_add_b64(&sig, mac, maclen);
        if (n > 0)
            cdk_buf_addc(&enc, '&');
        cdk_buf_adds(&enc, "Signature=");
        cdk_buf_add_pct(&enc, sig.p ? sig.p : "", sig.len);
    }
    cdk_wipe(mac, sizeof(mac));
    free(ps);
    cdk_buf_free(&arena);
    if (maclen == 0 || sig.failed || enc.failed) {
        cdk_buf_free(&src);
        cdk_buf_free(&sig);
        cdk_buf_free(&enc);
        return luaL_error(L, "cdnkit: signing failed (out of memory or OpenSSL error)");
    }
    lua_pushlstring(L, enc.p, enc.len);
    lua_pushlstring(L, src.p, src.len);
    lua_pushlstring(L, sig.p, sig.len);
    cdk_buf_free(&src);
    cdk_buf_free(&sig);
    cdk_buf_free(&enc);
    return 3;
}

/* c:_hmac(alg, msg [, enc]) -> digest of msg keyed with the client's secret */
static int client_hmac(lua_State *L)
{
    static const char *const algs[] = {"sha1", "sha256", NULL};
    static const char *const encs[] = {"base64", "hex", "raw", NULL};
    cdk_client *c = check_open(L, 1);
    int a = luaL_checkoption(L, 2, NULL, algs);
    size_t ml;
    const char *msg = luaL_checklstring(L, 3, &ml);
    int e = luaL_checkoption(L, 4, "base64", encs);
    unsigned char mac[32];
    unsigned n;
    cdk_buf out;
    require_secret(L, c);
    n = cdk_hmac(a == 0 ? CDK_SHA1 : CDK_SHA256, c->secret, c->secret_len, msg, ml, mac);
    if (n == 0)
        return luaL_error(L, "cdnkit: HMAC failed");
    if (e == 2) {
        lua_pushlstring(L, (const char *)mac, n);
        cdk_wipe(mac, sizeof(mac));
        return 1;
    }
    cdk_buf_init(&out);
    if (e == 0)
        cdk_buf_add_b64(&out, mac, n);
    else
        cdk_buf_add_hex(&out, mac, n);
    cdk_wipe(mac, sizeof(mac));
    if (!cdk_buf_push(L, &out)) {
        cdk_buf_free(&out);
        return luaL_error(L, "cdnkit: out of memory");
    }
    cdk_buf_free(&out);
    return 1;
}

/* ------------------------------------------------------------------ */

/* Run impl with the client marked busy: a finalizer or metamethod that runs
   during the call (Lua code can run at any allocation or table access) can
   neither free the client under us (close is deferred) nor re-enter it (it
   gets an error).  Errors from impl are caught so that transfers still
   attached to the multi handle are detached before the error goes on. */
static int guarded(lua_State *L, lua_CFunction impl)
{
    cdk_client *c = check_open(L, 1);
    int top, i, rc;
    if (c->busy > 0)
        return luaL_error(L, "cdnkit.%s: client is busy (called again during one of its calls)",
                          c->vendor);
    top = lua_gettop(L);
    luaL_checkstack(L, top + 2, "too many arguments");
    lua_pushcfunction(L, impl);
    for (i = 1; i <= top; i++)
        lua_pushvalue(L, i);
    c->busy++;
    rc = lua_pcall(L, top, LUA_MULTRET, 0);
    c->busy--;
    if (rc != 0 && c->multi != NULL && c->pool != NULL)
        detach_all(c);
    if (c->borrowed != NULL) { /* an error escaped while another client was marked */
        cdk_client *b = c->borrowed;
        c->borrowed = NULL;
        b->busy--;
        if (b->close_pending && b->busy == 0) {
            b->close_pending = 0;
            client_release(b);
        }
    }
    if (c->close_pending && c->busy == 0) {
        c->close_pending = 0;
        client_release(c);
    }
    if (rc != 0)
        return lua_error(L);
    return lua_gettop(L) - top;
}

static int client_perform(lua_State *L) { return guarded(L, perform_impl); }
static int client_perform_many(lua_State *L) { return guarded(L, perform_many_impl); }
static int client_sign_aliyun(lua_State *L) { return guarded(L, sign_aliyun_impl); }
static int client_sign_qcloud(lua_State *L) { return guarded(L, sign_qcloud_impl); }

static int client_state(lua_State *L)
{
    check_client(L, 1);
    cdk_getuservalue(L, 1);
    return 1;
}

static int client_is_closed(lua_State *L)
{
    cdk_client *c = check_client(L, 1);
    lua_pushboolean(L, c->closed || c->close_pending);
    return 1;
}

static int client_close(lua_State *L)
{
    cdk_client *c = check_client(L, 1);
    client_release(c);
    return 0;
}

static int client_gc(lua_State *L)
{
    cdk_client *c = (cdk_client *)luaL_testudata(L, 1, CLIENT_MT);
    if (c != NULL)
        client_release(c);
    return 0;
}

static int client_tostring(lua_State *L)
{
    cdk_client *c = check_client(L, 1);
    if (c->closed) {
        lua_pushfstring(L, "cdnkit.%s client (closed)", c->vendor);
    } else {
        /* show the start of the key id only; never the secret */
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
        char out[320];
        snprintf(out, sizeof(out), "cdnkit.%s client (%s, key %s)", c->vendor,
                 c->endpoint ? c->endpoint : "default endpoint", kid);
        lua_pushstring(L, out);
    }
    return 1;
}

static int client_index(lua_State *L)
{
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    if (!lua_isnil(L, -1))
        return 1;
    lua_pop(L, 1);
    cdk_getuservalue(L, 1);
    if (lua_type(L, -1) != LUA_TTABLE)
        return 0;
    lua_getfield(L, -1, "methods");
    if (lua_type(L, -1) != LUA_TTABLE)
        return 0;
    lua_pushvalue(L, 2);
    lua_gettable(L, -2);
    return 1;
}

static const luaL_Reg client_methods[] = {
    {"_perform", client_perform},
    {"_perform_many", client_perform_many},
    {"_sign_aliyun", client_sign_aliyun},
    {"_sign_qcloud", client_sign_qcloud},
    {"_hmac", client_hmac},
    {"_state", client_state},
    {"close", client_close},
    {"is_closed", client_is_closed},
    {NULL, NULL},
};

void cdk_client_register(lua_State *L)
{
    if (luaL_newmetatable(L, CLIENT_MT)) {
        lua_pushliteral(L, CLIENT_MT);
        lua_setfield(L, -2, "__name");
        luaL_newlib(L, client_methods);
        lua_pushcclosure(L, client_index, 1);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, client_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, client_gc);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, client_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "cdnkit client");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
}
