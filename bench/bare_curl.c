/* bench/bare_curl.c - the baseline of the request-overhead bench: the least a
 * C program can do per call with libcurl.  One easy handle, reused for every
 * call (so one keep-alive connection), a GET of one fixed URL, the body
 * collected into a growing buffer that is emptied before each call, the HTTP
 * status checked.  No signing, no parsing, no per-call option setting.
 *
 *   bare_curl URL N [WARMUP]
 *
 * Does WARMUP calls (default 0), then times N calls and prints on stdout
 * "<calls per second> <process CPU microseconds per call>".  Exits non-zero, with the reason on
 * stderr, on any transfer error, non-200 status or empty body.  Built by
 * bench/run.sh (cc -O2 ... -lcurl) into build/bench/. */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct buf {
    char *p;
    size_t len, cap;
};

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    struct buf *b = ud;
    size_t add = size * n;
    if (b->len + add + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *q;
        while (cap < b->len + add + 1)
            cap *= 2;
        q = realloc(b->p, cap);
        if (q == NULL)
            return 0;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, add);
    b->len += add;
    b->p[b->len] = '\0';
    return add;
}

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int once(CURL *h, struct buf *b)
{
    long code = 0;
    CURLcode rc;
    b->len = 0;
    rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        fprintf(stderr, "bare_curl: %s\n", curl_easy_strerror(rc));
        return 0;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (code != 200 || b->len == 0) {
        fprintf(stderr, "bare_curl: HTTP %ld, %zu body bytes\n", code, b->len);
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    struct buf b = {NULL, 0, 0};
    CURL *h;
    long n, warm, i;
    double t, cpu;
    if (argc < 3) {
        fprintf(stderr, "usage: bare_curl URL N [WARMUP]\n");
        return 2;
    }
    n = atol(argv[2]);
    warm = argc > 3 ? atol(argv[3]) : 0;
    if (n <= 0 || warm < 0) {
        fprintf(stderr, "bare_curl: N must be > 0 and WARMUP >= 0\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    h = curl_easy_init();
    if (h == NULL) {
        fprintf(stderr, "bare_curl: curl_easy_init failed\n");
        return 1;
    }
    curl_easy_setopt(h, CURLOPT_URL, argv[1]);
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, (void *)&b);
    for (i = 0; i < warm; i++)
        if (!once(h, &b))
            return 1;
    t = clock_s(CLOCK_MONOTONIC);
    cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (i = 0; i < n; i++)
        if (!once(h, &b))
            return 1;
    t = clock_s(CLOCK_MONOTONIC) - t;
    cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu;
    printf("%.1f %.2f\n", (double)n / t, cpu / (double)n * 1e6);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    free(b.p);
    return 0;
}
