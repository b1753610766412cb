/*
 * http.c - the libcurl transport: one userdata per client ("cdnkit.curl")
 * holding one reusable easy handle for sequential calls (keep-alive: N calls
 * use one connection) and a multi handle with a small pool of easy handles
 * for concurrent batches.  It knows bytes on the wire, timeouts, TLS and
 * proxies; nothing about signing or vendors.
 *
 * A request is plain data:
 *   { method =, url =, headers = { name = value }, body = string|nil,
 *     timeout = s, connect_timeout = s, max_body = bytes,
 *     verify_tls = bool, ca_file = path, proxy = url }
 * (missing settings: 30 s, 5 s, 64 MiB, verify, system CAs, no proxy).
 *
 * Lua side:
 *   t:send(req)            -> status, headers, body | nil, err
 *   t:_perform(req, hdrs)  -> status, headers|raw, body | nil, err
 *       the engine's call path: response headers are parsed into a table only
 *       when `hdrs` is true or the status is not 2xx; otherwise the raw header
 *       block comes back as a string (core.parse_headers turns it into a table
 *       if the engine needs it later: clock skew, tracing).
 *   t:send_many(reqs, concurrency [, sched])
 *       -> { {status=, headers=, body=} | {err=} | {deferred=true}, ... } in
 *       request order.
 *       sched (optional, from the engine): { not_before = { t, ... }
 *       (core.monotime() values), group = { g, ... } (1..64), limits =
 *       { [g] = n } (at most n of group g in flight), max_bytes = n (no new
 *       transfer starts while the answers received hold n bytes or more;
 *       what could not start comes back { deferred = true }) }.
 *   A request with idempotent = false goes out on a fresh connection (never
 *   one libcurl could silently replay it on).
 *   t:close(), t:is_closed(), __gc, __close, __tostring
 * err = { code = "timeout"|"connect"|"tls"|"http", message =, sent = bool,
 *         curl_code = n }
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>
#include "http.h"
#include "util.h"

#define CURL_MT "cdnkit.curl"
#define DEFAULT_MAX_BODY (64.0 * 1024 * 1024)
#define MAX_HEADER_BYTES (256 * 1024)
#define MAX_GROUPS 64

/* transfer settings as applied to an easy handle */
typedef struct settings {
    long timeout_ms, connect_ms;
    int verify;
    char *ca_file, *proxy;
    char *ua;  /* the User-Agent set with CURLOPT_USERAGENT (NULL: none) */
    int valid; /* 0: options not applied yet (or reset) */
} settings;

typedef struct xfer {
    cdk_buf *body, *hdrs;  /* where the callbacks write */
    cdk_buf own_body, own_hdrs; /* batch transfers write here */
    size_t limit;
    int overflow;
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
} xfer;

typedef struct slot {
    CURL *easy;
    xfer x;
    settings applied;
    int idx;
    int active;
} slot;

typedef struct cdk_curl {
    CURL *easy;
    xfer x;
    settings applied;
    CURLM *multi;
    slot *pool;
    int pool_n;
    int closed;
    int busy;          /* > 0 while send_many runs */
    int close_pending; /* close() arrived while busy: release on the way out */
} cdk_curl;

/* ------------------------------------------------------------------ */

static void settings_init(settings *s)
{
    memset(s, 0, sizeof(*s));
}

static void settings_free(settings *s)
{
    free(s->ca_file);
    free(s->proxy);
    free(s->ua);
    settings_init(s);
}

static void xfer_init(xfer *x)
{
    cdk_buf_init(&x->own_body);
    cdk_buf_init(&x->own_hdrs);
    x->body = &x->own_body;
    x->hdrs = &x->own_hdrs;
    x->limit = 0;
    x->overflow = 0;
    x->headers = NULL;
    x->errbuf[0] = '\0';
}

static void xfer_clear(xfer *x)
{
    cdk_buf_free(&x->own_body);
    cdk_buf_free(&x->own_hdrs);
    if (x->headers != NULL)
        curl_slist_free_all(x->headers);
    xfer_init(x);
}

static void transport_release(cdk_curl *t)
{
    int i;
    if (t->closed)
        return;
    if (t->busy > 0) {
        /* a finalizer closed us in the middle of send_many: free nothing now,
           the running call releases on its way out */
        t->close_pending = 1;
        return;
    }
    t->closed = 1;
    if (t->pool != NULL) {
        for (i = 0; i < t->pool_n; i++) {
            if (t->pool[i].easy != NULL) {
                if (t->pool[i].active && t->multi != NULL)
                    curl_multi_remove_handle(t->multi, t->pool[i].easy);
                curl_easy_cleanup(t->pool[i].easy);
            }
            xfer_clear(&t->pool[i].x);
            settings_free(&t->pool[i].applied);
        }
        free(t->pool);
        t->pool = NULL;
        t->pool_n = 0;
    }
    if (t->multi != NULL)
        curl_multi_cleanup(t->multi);
    t->multi = NULL;
    if (t->easy != NULL)
        curl_easy_cleanup(t->easy);
    t->easy = NULL;
    xfer_clear(&t->x);
    settings_free(&t->applied);
}

static cdk_curl *check_transport(lua_State *L, int i)
{
    return (cdk_curl *)luaL_checkudata(L, i, CURL_MT);
}

static cdk_curl *check_open(lua_State *L, int i)
{
    cdk_curl *t = check_transport(L, i);
    if (t->closed || t->close_pending)
        luaL_error(L, "cdnkit: the curl transport is closed");
    return t;
}

/* ------------------------------------------------------------------ */
/* libcurl callbacks */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    xfer *x = (xfer *)ud;
    size_t n = size * nmemb;
    if (x->body->len + n > x->limit) {
        x->overflow = 1;
        return 0;
    }
    if (!cdk_buf_add(x->body, ptr, n))
        return 0;
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    xfer *x = (xfer *)ud;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0)
        x->hdrs->len = 0; /* a new response (after 100-continue or redirect) */
    if (x->hdrs->len + n > MAX_HEADER_BYTES) {
        x->overflow = 2; /* headers: not transient either */
        return 0;
    }
    if (!cdk_buf_add(x->hdrs, ptr, n))
        return 0;
    return n;
}

/* ------------------------------------------------------------------ */
/* reading a request table */

typedef struct reqinfo {
    const char *url, *method, *body;
    const char *ua;    /* the User-Agent header's value, sent with CURLOPT_USERAGENT */
    int fresh;         /* req.idempotent == false: a new connection, never a reused one */
    size_t bodylen;
    settings want;     /* ca_file/proxy point into Lua strings (not owned) */
    size_t max_body;
} reqinfo;

static long seconds_to_ms(lua_State *L, int r, const char *name, double def)
{
    double v = def;
    lua_getfield(L, r, name);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "cdnkit: request %s must be a number of seconds", name);
        v = lua_tonumber(L, -1);
        if (!(v > 0 && v <= 86400.0))
            luaL_error(L, "cdnkit: request %s must be > 0 and at most 86400 seconds", name);
    }
    lua_pop(L, 1);
    /* round up: 0.0004 s must not become 0 ms, which libcurl reads as "never";
       at most 86,400,000 ms, which fits a 32-bit long */
    return (long)ceil(v * 1000.0 - 1e-6);
}

static const char *opt_str(lua_State *L, int r, const char *name)
{
    const char *s = NULL;
    lua_getfield(L, r, name);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "cdnkit: request %s must be a string", name);
        s = lua_tostring(L, -1);
    }
    lua_pop(L, 1); /* the string stays alive: the request table holds it */
    return s;
}

/* Read request r into ri and build its header list into x->headers.
   Usage mistakes raise.  Only Lua reads happen here; the easy handle is not
   touched, so a finalizer running meanwhile cannot leave it half set up. */
static void read_request(lua_State *L, int r, reqinfo *ri, xfer *x)
{
    struct curl_slist *sl;
    r = lua_absindex(L, r);
    if (x->headers != NULL) {
        curl_slist_free_all(x->headers);
        x->headers = NULL;
    }
    lua_getfield(L, r, "url");
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "cdnkit: request has no url");
    ri->url = lua_tostring(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, r, "method");
    if (lua_isnil(L, -1)) {
        ri->method = "GET";
    } else {
        ri->method = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (ri->method == NULL || ri->method[0] == '\0' ||
            strspn(ri->method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(ri->method))
            luaL_error(L, "cdnkit: request method must be an upper-case HTTP method");
    }
    lua_pop(L, 1);
    ri->body = NULL;
    ri->bodylen = 0;
    lua_getfield(L, r, "body");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "cdnkit: request body must be a string");
        ri->body = lua_tolstring(L, -1, &ri->bodylen);
    }
    lua_pop(L, 1);
    /* a request that must not run twice goes out on a fresh connection:
       libcurl silently resends a request when a REUSED connection turns out
       to be dead, and the server may have run the first copy */
    lua_getfield(L, r, "idempotent");
    ri->fresh = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    ri->want.timeout_ms = seconds_to_ms(L, r, "timeout", 30.0);
    ri->want.connect_ms = seconds_to_ms(L, r, "connect_timeout", 5.0);
    lua_getfield(L, r, "verify_tls");
    ri->want.verify = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
    lua_pop(L, 1);
    ri->want.ca_file = (char *)opt_str(L, r, "ca_file");
    ri->want.proxy = (char *)opt_str(L, r, "proxy");
    ri->max_body = (size_t)DEFAULT_MAX_BODY;
    lua_getfield(L, r, "max_body");
    if (!lua_isnil(L, -1)) {
        lua_Number mb = lua_tonumber(L, -1);
        if (lua_type(L, -1) != LUA_TNUMBER || !(mb >= 1 && mb <= 1024.0 * 1024 * 1024))
            luaL_error(L, "cdnkit: request max_body must be 1 .. 2^30 bytes");
        ri->max_body = (size_t)mb;
    }
    lua_pop(L, 1);

    /* headers: a map name -> value.  User-Agent goes through
       CURLOPT_USERAGENT (kept set between calls); "Expect:" (no 100-continue
       round trip) is only needed with a body.  Fewer custom headers is less
       work for libcurl on every request. */
    ri->ua = NULL;
    if (ri->body != NULL) {
        sl = curl_slist_append(NULL, "Expect:");
        if (sl == NULL)
            luaL_error(L, "cdnkit: out of memory");
        x->headers = sl;
    }
    lua_getfield(L, r, "headers");
    if (lua_type(L, -1) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            char line[8192];
            const char *k, *v;
            size_t kl, vl;
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "cdnkit: request headers must map strings to strings");
            k = lua_tolstring(L, -2, &kl);
            v = lua_tolstring(L, -1, &vl);
            if (memchr(k, '\n', kl) || memchr(k, '\r', kl) || memchr(v, '\n', vl) ||
                memchr(v, '\r', vl) || memchr(k, '\0', kl) || memchr(v, '\0', vl) ||
                memchr(k, ':', kl) || kl == 0)
                luaL_error(L, "cdnkit: header '%s' has a bad name or a line break", k);
            if (kl + vl + 3 > sizeof(line))
                luaL_error(L, "cdnkit: header '%s' is too long", k);
            if (kl == 10 && strncasecmp(k, "User-Agent", 10) == 0 && strspn(v, " \t") != vl) {
                ri->ua = v;
                lua_pop(L, 1);
                continue;
            }
            memcpy(line, k, kl);
            if (strspn(v, " \t") == vl) {
                /* empty or blank: "Name:" alone would make libcurl drop the
                   header; "Name;" is its way to send it empty */
                line[kl] = ';';
                line[kl + 1] = '\0';
            } else {
                line[kl] = ':';
                line[kl + 1] = ' ';
                memcpy(line + kl + 2, v, vl);
                line[kl + 2 + vl] = '\0';
            }
            sl = curl_slist_append(x->headers, line);
            if (sl == NULL)
                luaL_error(L, "cdnkit: out of memory");
            x->headers = sl;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

static int same_str(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static char *dup_or_null(const char *s, int *oom)
{
    char *p;
    if (s == NULL)
        return NULL;
    p = malloc(strlen(s) + 1);
    if (p == NULL)
        *oom = 1;
    else
        memcpy(p, s, strlen(s) + 1);
    return p;
}

#define SETOPT(e, o, v)                                                   \
    do {                                                                  \
        if (curl_easy_setopt((e), (o), (v)) != CURLE_OK) {                \
            snprintf(why, whylen, "curl_easy_setopt(%s) failed", #o);     \
            return 0;                                                     \
        }                                                                 \
    } while (0)

/* Options that depend on the transfer settings, plus the fixed ones; applied
   again only when the settings change (curl_easy_reset drops the others). */
static int apply_settings(CURL *e, xfer *x, settings *have, const settings *want,
                          char *why, size_t whylen)
{
    int oom = 0;
    if (have->valid && have->timeout_ms == want->timeout_ms &&
        have->connect_ms == want->connect_ms && have->verify == want->verify &&
        same_str(have->ca_file, want->ca_file) && same_str(have->proxy, want->proxy))
        return 1;
    settings_free(have);
    curl_easy_reset(e);
    SETOPT(e, CURLOPT_NOSIGNAL, 1L);
    SETOPT(e, CURLOPT_TIMEOUT_MS, want->timeout_ms);
    SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS, want->connect_ms);
    SETOPT(e, CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(e, CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(e, CURLOPT_ACCEPT_ENCODING, "");
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SETOPT(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SETOPT(e, CURLOPT_SSL_VERIFYPEER, want->verify ? 1L : 0L);
    SETOPT(e, CURLOPT_SSL_VERIFYHOST, want->verify ? 2L : 0L);
    if (want->ca_file != NULL)
        SETOPT(e, CURLOPT_CAINFO, want->ca_file);
    if (want->proxy != NULL)
        SETOPT(e, CURLOPT_PROXY, want->proxy);
    SETOPT(e, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(e, CURLOPT_WRITEDATA, (void *)x);
    SETOPT(e, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(e, CURLOPT_HEADERDATA, (void *)x);
    SETOPT(e, CURLOPT_ERRORBUFFER, x->errbuf);
    have->timeout_ms = want->timeout_ms;
    have->connect_ms = want->connect_ms;
    have->verify = want->verify;
    have->ca_file = dup_or_null(want->ca_file, &oom);
    have->proxy = dup_or_null(want->proxy, &oom);
    if (oom) {
        settings_free(have);
        snprintf(why, whylen, "out of memory");
        return 0;
    }
    have->valid = 1;
    return 1;
}

/* Configure easy for a request read by read_request.  No Lua calls. */
static int setup_easy(CURL *e, xfer *x, settings *have, const reqinfo *ri, char *why,
                      size_t whylen)
{
    const char *m = ri->method;
    if (!apply_settings(e, x, have, &ri->want, why, whylen)) {
        have->valid = 0;
        return 0;
    }
    x->limit = ri->max_body;
    x->overflow = 0;
    x->errbuf[0] = '\0';
    SETOPT(e, CURLOPT_URL, ri->url);
    SETOPT(e, CURLOPT_FRESH_CONNECT, ri->fresh ? 1L : 0L);
    SETOPT(e, CURLOPT_CUSTOMREQUEST, (char *)NULL);
    SETOPT(e, CURLOPT_NOBODY, 0L);
    if (strcmp(m, "GET") == 0 && ri->body == NULL) {
        SETOPT(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(m, "HEAD") == 0) {
        SETOPT(e, CURLOPT_NOBODY, 1L);
    } else {
        if (ri->body != NULL || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0) {
            SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)ri->bodylen);
            SETOPT(e, CURLOPT_COPYPOSTFIELDS, ri->body != NULL ? ri->body : "");
        } else {
            SETOPT(e, CURLOPT_HTTPGET, 1L);
        }
        if (strcmp(m, "POST") != 0)
            SETOPT(e, CURLOPT_CUSTOMREQUEST, m);
    }
    SETOPT(e, CURLOPT_HTTPHEADER, x->headers);
    if (!same_str(have->ua, ri->ua)) {
        int oom = 0;
        free(have->ua);
        have->ua = dup_or_null(ri->ua, &oom);
        if (oom) {
            snprintf(why, whylen, "out of memory");
            return 0;
        }
        SETOPT(e, CURLOPT_USERAGENT, have->ua);
    }
    return 1;
}

/* ------------------------------------------------------------------ */
/* responses */

/* push the headers table parsed from a raw header block */
static void push_headers(lua_State *L, const char *p, size_t len)
{
    const char *end = p + len;
    lua_createtable(L, 0, 8);
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

/* core.parse_headers(raw) -> table */
int cdk_http_l_parse_headers(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    push_headers(L, s, n);
    return 1;
}

static const char *classify(CURLcode rc, int overflow)
{
    if (overflow)
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

/* what a failed transfer was, copied out of the handle before any Lua call */
typedef struct failure {
    CURLcode rc;
    int overflow;
    int setup;     /* the request could not even be set up (nothing sent) */
    int sent;
    size_t limit;
    char msg[CURL_ERROR_SIZE + 96];
} failure;

static void note_failure(CURL *e, CURLcode rc, const xfer *x, failure *f)
{
    long reqsize = 0;
    curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &reqsize);
    f->rc = rc;
    f->setup = 0;
    f->overflow = x->overflow;
    /* libcurl reports a header line over its own limit (100 KB) as
       CURLE_OUT_OF_MEMORY: an oversized answer, not a transient failure */
    if (rc == CURLE_OUT_OF_MEMORY && !f->overflow)
        f->overflow = 3;
    f->sent = reqsize > 0;
    f->limit = x->limit;
    if (f->overflow == 3)
        snprintf(f->msg, sizeof(f->msg),
                 "response headers larger than libcurl accepts (or out of memory)");
    else if (x->overflow == 2)
        snprintf(f->msg, sizeof(f->msg), "response headers larger than %d bytes",
                 MAX_HEADER_BYTES);
    else if (x->overflow)
        snprintf(f->msg, sizeof(f->msg), "response body larger than %lu bytes",
                 (unsigned long)x->limit);
    else if (rc == CURLE_OK)
        snprintf(f->msg, sizeof(f->msg), "out of memory reading the response");
    else
        snprintf(f->msg, sizeof(f->msg), "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
}

/* a request libcurl would not take (an option refused, e.g. a URL over
   libcurl's length limit): a runtime failure of that request, nothing sent */
static void note_setup_failure(const char *why, failure *f)
{
    f->rc = CURLE_FAILED_INIT;
    f->overflow = 0;
    f->setup = 1;
    f->sent = 0;
    f->limit = 0;
    snprintf(f->msg, sizeof(f->msg), "cannot send the request: %s", why);
}

/* push the transport error table
   { code=, message=, sent=, curl_code= [, overflow = true] [, malformed = true] } */
static void push_failure(lua_State *L, const failure *f)
{
    lua_createtable(L, 0, 5);
    lua_pushstring(L, f->setup ? "http" : classify(f->rc, f->overflow));
    lua_setfield(L, -2, "code");
    lua_pushstring(L, f->msg);
    lua_setfield(L, -2, "message");
    lua_pushboolean(L, f->sent);
    lua_setfield(L, -2, "sent");
    lua_pushinteger(L, (lua_Integer)f->rc);
    lua_setfield(L, -2, "curl_code");
    if (f->overflow) { /* the answer was larger than max_body: not transient */
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "overflow");
    }
    if (f->rc == CURLE_WEIRD_SERVER_REPLY || f->rc == CURLE_UNSUPPORTED_PROTOCOL ||
        f->rc == CURLE_BAD_CONTENT_ENCODING || f->setup) {
        /* the server answered something that is not HTTP, or the request
           cannot be made: sending it again will not help */
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "malformed");
    }
}

/* ------------------------------------------------------------------ */
/* one request */

static int perform(lua_State *L, int always_headers)
{
    cdk_curl *t = check_open(L, 1);
    cdk_scratch *box;
    reqinfo ri;
    if (t->busy > 0)
        return luaL_error(L, "cdnkit: the curl transport is busy (called again during send_many)");
    char why[160];
    CURLcode rc;
    long status = 0;
    failure f;
    luaL_checktype(L, 2, LUA_TTABLE);
    /* the response lands in scratch owned by a userdata: pushing it can
       raise (out of memory) or run a finalizer that closes this transport,
       and neither may leak or free what we are reading */
    box = cdk_scratch_new(L);
    if (t->closed || t->close_pending) /* a finalizer closed us meanwhile */
        return luaL_error(L, "cdnkit: the curl transport is closed");
    read_request(L, 2, &ri, &t->x);
    if (t->closed || t->close_pending) {
        xfer_clear(&t->x); /* the header list read_request made */
        return luaL_error(L, "cdnkit: the curl transport is closed");
    }
    if (t->easy == NULL) {
        t->easy = curl_easy_init();
        if (t->easy == NULL)
            return luaL_error(L, "cdnkit: curl_easy_init failed");
        settings_init(&t->applied);
    }
    t->x.body = &box->b[0];
    t->x.hdrs = &box->b[1];
    if (!setup_easy(t->easy, &t->x, &t->applied, &ri, why, sizeof(why))) {
        t->x.body = &t->x.own_body;
        t->x.hdrs = &t->x.own_hdrs;
        note_setup_failure(why, &f);
        cdk_scratch_done(box);
        lua_pushnil(L);
        push_failure(L, &f);
        return 2;
    }
    rc = curl_easy_perform(t->easy);
    t->x.body = &t->x.own_body;
    t->x.hdrs = &t->x.own_hdrs;
    if (rc != CURLE_OK || box->b[0].failed || box->b[1].failed) {
        note_failure(t->easy, rc, &t->x, &f);
        cdk_scratch_done(box);
        lua_pushnil(L);
        push_failure(L, &f);
        return 2;
    }
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    /* from here on only the scratch box is read */
    lua_pushinteger(L, (lua_Integer)status);
    if (always_headers || status < 200 || status > 299)
        push_headers(L, box->b[1].p != NULL ? box->b[1].p : "", box->b[1].len);
    else
        lua_pushlstring(L, box->b[1].p != NULL ? box->b[1].p : "", box->b[1].len);
    lua_pushlstring(L, box->b[0].p != NULL ? box->b[0].p : "", box->b[0].len);
    cdk_scratch_done(box);
    return 3;
}

static int t_send(lua_State *L)
{
    lua_settop(L, 2);
    return perform(L, 1);
}

static int t_perform(lua_State *L)
{
    int want = lua_toboolean(L, 3);
    lua_settop(L, 2);
    return perform(L, want);
}

/* ------------------------------------------------------------------ */
/* many requests at once */

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int ensure_pool(cdk_curl *t, int n)
{
    int i;
    if (t->multi == NULL) {
        t->multi = curl_multi_init();
        if (t->multi == NULL)
            return 0;
    }
    if (t->pool_n >= n)
        return 1;
    {
        slot *np = realloc(t->pool, sizeof(slot) * (size_t)n);
        if (np == NULL)
            return 0;
        t->pool = np;
    }
    /* the slots may have moved: their easy handles still point at the old
       xfer addresses (write/header data, error buffer), so re-apply */
    for (i = 0; i < t->pool_n; i++) {
        t->pool[i].x.body = &t->pool[i].x.own_body;
        t->pool[i].x.hdrs = &t->pool[i].x.own_hdrs;
        t->pool[i].applied.valid = 0;
    }
    for (i = t->pool_n; i < n; i++) {
        t->pool[i].easy = NULL;
        t->pool[i].active = 0;
        t->pool[i].idx = 0;
        xfer_init(&t->pool[i].x);
        settings_init(&t->pool[i].applied);
    }
    for (i = t->pool_n; i < n; i++) {
        t->pool[i].easy = curl_easy_init();
        if (t->pool[i].easy == NULL) {
            t->pool_n = i;
            return 0;
        }
        t->pool_n = i + 1;
    }
    return 1;
}

static void detach_all(cdk_curl *t)
{
    int i;
    for (i = 0; i < t->pool_n; i++) {
        if (t->pool[i].active) {
            curl_multi_remove_handle(t->multi, t->pool[i].easy);
            t->pool[i].active = 0;
        }
        xfer_clear(&t->pool[i].x);
    }
}

typedef struct pending {
    double not_before; /* monotonic seconds; 0 = now */
    int group;         /* 0 = none, else 1..MAX_GROUPS */
    int started;
} pending;

static double sched_number(lua_State *L, int sched, const char *field, int i, double def)
{
    double v = def;
    if (sched == 0)
        return def;
    lua_getfield(L, sched, field);
    if (lua_type(L, -1) == LUA_TTABLE) {
        lua_rawgeti(L, -1, i);
        if (!lua_isnil(L, -1)) {
            if (lua_type(L, -1) != LUA_TNUMBER)
                luaL_error(L, "cdnkit: send_many: sched.%s[%d] must be a number", field, i);
            v = lua_tonumber(L, -1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return v;
}

/* t:send_many(reqs, concurrency [, sched]) */
static int send_many_impl(lua_State *L)
{
    cdk_curl *t = check_open(L, 1);
    int n, conc = 4, running = 0, done = 0, results, first = 0, i, sched = 0;
    int glimit[MAX_GROUPS + 1], grun[MAX_GROUPS + 1];
    pending *pr;
    char why[160];
    double max_bytes = 0, held = 0; /* response bytes this call holds */
    luaL_checktype(L, 2, LUA_TTABLE);
    n = (int)lua_rawlen(L, 2);
    for (i = 0; i <= MAX_GROUPS; i++)
        glimit[i] = grun[i] = 0;
    if (!lua_isnoneornil(L, 3)) {
        lua_Number v = lua_tonumber(L, 3);
        if (lua_type(L, 3) != LUA_TNUMBER || !(v >= 1 && v <= 256))
            return luaL_error(L, "cdnkit: concurrency must be between 1 and 256");
        conc = (int)v;
    }
    if (lua_type(L, 4) == LUA_TTABLE) {
        sched = 4;
        lua_getfield(L, 4, "limits");
        if (lua_type(L, -1) == LUA_TTABLE) {
            for (i = 1; i <= MAX_GROUPS; i++) {
                lua_Number v;
                lua_rawgeti(L, -1, i);
                v = lua_tonumber(L, -1);
                if (lua_type(L, -1) == LUA_TNUMBER && v >= 1 && v <= 256)
                    glimit[i] = (int)v;
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
        lua_getfield(L, 4, "max_bytes");
        if (!lua_isnil(L, -1)) {
            max_bytes = lua_tonumber(L, -1);
            if (lua_type(L, -1) != LUA_TNUMBER || !(max_bytes >= 1))
                return luaL_error(L, "cdnkit: send_many: sched.max_bytes must be a number >= 1");
        }
        lua_pop(L, 1);
    } else if (!lua_isnoneornil(L, 4)) {
        return luaL_error(L, "cdnkit: send_many: sched must be a table");
    }
    if (conc > n)
        conc = n > 0 ? n : 1;
    /* scratch state lives in a userdata: freed by the GC whatever happens */
    pr = (pending *)lua_newuserdata(L, sizeof(pending) * (size_t)(n > 0 ? n : 1));
    for (i = 0; i < n; i++) {
        double g;
        lua_rawgeti(L, 2, i + 1);
        if (lua_type(L, -1) != LUA_TTABLE)
            return luaL_error(L, "cdnkit: request %d is not a table", i + 1);
        lua_getfield(L, -1, "url");
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "cdnkit: request %d has no url", i + 1);
        lua_pop(L, 2);
        pr[i].not_before = sched_number(L, sched, "not_before", i + 1, 0);
        if (!(pr[i].not_before >= 0 && pr[i].not_before <= mono_now() + 3600))
            return luaL_error(L, "cdnkit: request %d: not_before must be within the next hour", i + 1);
        g = sched_number(L, sched, "group", i + 1, 0);
        if (!(g >= 0 && g <= MAX_GROUPS) || g != floor(g))
            return luaL_error(L, "cdnkit: request %d: group must be 1..%d", i + 1, MAX_GROUPS);
        pr[i].group = (int)g;
        pr[i].started = 0;
    }
    /* every request is read once before any transfer starts: a usage
       mistake in request 7 raises before request 1 is sent */
    for (i = 0; i < n; i++) {
        reqinfo ri;
        lua_rawgeti(L, 2, i + 1);
        read_request(L, -1, &ri, &t->x);
        lua_pop(L, 1);
    }
    xfer_clear(&t->x);
    lua_createtable(L, n, 0);
    results = lua_gettop(L);
    if (n == 0)
        return 1;
    detach_all(t); /* before the pool may move in memory */
    if (!ensure_pool(t, conc))
        return luaL_error(L, "cdnkit: cannot create curl handles");

    while (done < n) {
        int still = 0, msgs = 0, completed = 0;
        long wait_ms = 1000;
        double now = mono_now();
        CURLMsg *m;
        /* start what concurrency, group limits and not_before allow */
        for (i = first; i < n && running < conc; i++) {
            slot *s = NULL;
            reqinfo ri;
            int j, g = pr[i].group;
            if (pr[i].started) {
                if (i == first)
                    first++;
                continue;
            }
            if (max_bytes > 0 && held >= max_bytes)
                break; /* the answers held already fill the budget */
            if (g > 0 && glimit[g] > 0 && grun[g] >= glimit[g])
                continue;
            if (pr[i].not_before > now) {
                double ms = (pr[i].not_before - now) * 1000.0; /* may be huge: clamp as double */
                if (ms < (double)wait_ms)
                    wait_ms = (long)ms + 1;
                continue;
            }
            for (j = 0; j < t->pool_n; j++)
                if (!t->pool[j].active) {
                    s = &t->pool[j];
                    break;
                }
            if (s == NULL)
                break;
            lua_rawgeti(L, 2, i + 1);
            xfer_clear(&s->x);
            read_request(L, -1, &ri, &s->x);
            if (!setup_easy(s->easy, &s->x, &s->applied, &ri, why, sizeof(why))) {
                /* this request fails; the others go on */
                failure f;
                lua_pop(L, 1);
                note_setup_failure(why, &f);
                lua_createtable(L, 0, 1);
                push_failure(L, &f);
                lua_setfield(L, -2, "err");
                lua_rawseti(L, results, i + 1);
                xfer_clear(&s->x);
                pr[i].started = 1;
                done++;
                continue;
            }
            lua_pop(L, 1);
            if (curl_easy_setopt(s->easy, CURLOPT_PRIVATE, (void *)s) != CURLE_OK ||
                curl_multi_add_handle(t->multi, s->easy) != CURLM_OK) {
                detach_all(t);
                return luaL_error(L, "cdnkit: curl_multi_add_handle failed");
            }
            s->active = 1;
            s->idx = i + 1;
            pr[i].started = 1;
            running++;
            if (g > 0)
                grun[g]++;
        }
        if (curl_multi_perform(t->multi, &still) != CURLM_OK) {
            detach_all(t);
            return luaL_error(L, "cdnkit: curl_multi_perform failed");
        }
        while ((m = curl_multi_info_read(t->multi, &msgs)) != NULL) {
            slot *s = NULL;
            int g;
            if (m->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            if (s == NULL)
                continue;
            lua_createtable(L, 0, 3);
            if (m->data.result != CURLE_OK || s->x.body->failed || s->x.hdrs->failed) {
                failure f;
                note_failure(s->easy, m->data.result, &s->x, &f);
                push_failure(L, &f);
                lua_setfield(L, -2, "err");
            } else {
                long status = 0;
                curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
                lua_pushinteger(L, (lua_Integer)status);
                lua_setfield(L, -2, "status");
                push_headers(L, s->x.hdrs->p != NULL ? s->x.hdrs->p : "", s->x.hdrs->len);
                lua_setfield(L, -2, "headers");
                lua_pushlstring(L, s->x.body->p != NULL ? s->x.body->p : "", s->x.body->len);
                lua_setfield(L, -2, "body");
                held += (double)s->x.body->len + (double)s->x.hdrs->len;
            }
            lua_rawseti(L, results, s->idx);
            g = pr[s->idx - 1].group;
            if (g > 0)
                grun[g]--;
            curl_multi_remove_handle(t->multi, s->easy);
            xfer_clear(&s->x);
            s->active = 0;
            running--;
            done++;
            completed++;
        }
        if (done < n && running == 0 && max_bytes > 0 && held >= max_bytes) {
            /* over the memory budget with nothing in flight: the requests
               not started come back as deferred, for the caller to send
               once it has let go of these answers */
            for (i = first; i < n; i++) {
                if (pr[i].started)
                    continue;
                lua_createtable(L, 0, 1);
                lua_pushboolean(L, 1);
                lua_setfield(L, -2, "deferred");
                lua_rawseti(L, results, i + 1);
                pr[i].started = 1;
                done++;
            }
            break;
        }
        /* something finished: go round at once to start what it unblocked */
        if (done < n && completed == 0) {
            if (running == 0) {
                /* only time holds us back: sleep until the next start is due */
                struct timespec ts;
                ts.tv_sec = wait_ms / 1000;
                ts.tv_nsec = (wait_ms % 1000) * 1000000L;
                nanosleep(&ts, NULL);
            } else if (curl_multi_poll(t->multi, NULL, 0, (int)wait_ms, NULL) != CURLM_OK) {
                detach_all(t);
                return luaL_error(L, "cdnkit: curl_multi_poll failed");
            }
        }
    }
    lua_pushvalue(L, results);
    return 1;
}

/* Run send_many with the transport marked busy: Lua code (finalizers) runs
   at allocations between transfers, and must neither free the handles under
   us (close is deferred) nor re-enter (it gets an error).  Errors are caught
   so that transfers still attached to the multi handle are detached first. */
static int t_send_many(lua_State *L)
{
    cdk_curl *t = check_open(L, 1);
    int top, i, rc;
    if (t->busy > 0)
        return luaL_error(L, "cdnkit: the curl transport is busy (called again during send_many)");
    top = lua_gettop(L);
    luaL_checkstack(L, top + 2, "too many arguments");
    lua_pushcfunction(L, send_many_impl);
    for (i = 1; i <= top; i++)
        lua_pushvalue(L, i);
    t->busy++;
    rc = lua_pcall(L, top, 1, 0);
    t->busy--;
    if (rc != 0 && t->multi != NULL && t->pool != NULL)
        detach_all(t);
    if (t->close_pending && t->busy == 0) {
        t->close_pending = 0;
        transport_release(t);
    }
    if (rc != 0)
        return lua_error(L);
    return 1;
}

static int t_close(lua_State *L)
{
    transport_release(check_transport(L, 1));
    return 0;
}

static int t_is_closed(lua_State *L)
{
    cdk_curl *t = check_transport(L, 1);
    lua_pushboolean(L, t->closed || t->close_pending);
    return 1;
}

static int t_gc(lua_State *L)
{
    cdk_curl *t = (cdk_curl *)luaL_testudata(L, 1, CURL_MT);
    if (t != NULL)
        transport_release(t);
    return 0;
}

static int t_tostring(lua_State *L)
{
    cdk_curl *t = check_transport(L, 1);
    lua_pushstring(L, t->closed ? "cdnkit curl transport (closed)" : "cdnkit curl transport");
    return 1;
}

/* core.curl() */
int cdk_http_new(lua_State *L)
{
    cdk_curl *t = (cdk_curl *)lua_newuserdata(L, sizeof(*t));
    memset(t, 0, sizeof(*t));
    xfer_init(&t->x);
    settings_init(&t->applied);
    luaL_getmetatable(L, CURL_MT);
    lua_setmetatable(L, -2);
    return 1;
}

static const luaL_Reg transport_methods[] = {
    {"send", t_send},
    {"_perform", t_perform},
    {"send_many", t_send_many},
    {"close", t_close},
    {"is_closed", t_is_closed},
    {NULL, NULL},
};

void cdk_http_register(lua_State *L)
{
    if (luaL_newmetatable(L, CURL_MT)) {
        lua_pushliteral(L, CURL_MT);
        lua_setfield(L, -2, "__name");
        luaL_newlib(L, transport_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, t_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, t_gc);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, t_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "cdnkit curl transport");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
}
