/* bench/bare_hmac.c - the baseline of the signing bench: OpenSSL's one-shot
 * HMAC() over a string-to-sign, timed in a tight C loop.
 *
 *   bare_hmac STRING_TO_SIGN KEY N
 *
 * Prints one line per measurement, "<name> <ns per op>":
 *   sha1        HMAC(EVP_sha1(), ...)    one-shot, as cdnkit's core calls it
 *   sha256      HMAC(EVP_sha256(), ...)  one-shot
 *   sha1_ctx    EVP_MAC HMAC-SHA1 with the context set up once and reused
 *               (init/update/final per op): what a signer that keeps its
 *               keyed context could reach; for information only
 * Built by bench/run.sh (cc -O2 ... -lcrypto) into build/bench/. */
#define _POSIX_C_SOURCE 200809L
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile unsigned char sink;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double one_shot(const EVP_MD *md, const char *key, const char *msg, long n)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len;
    size_t kl = strlen(key), ml = strlen(msg);
    long i;
    double t = now();
    for (i = 0; i < n; i++) {
        if (HMAC(md, key, (int)kl, (const unsigned char *)msg, ml, mac, &len) == NULL) {
            fprintf(stderr, "bare_hmac: HMAC failed\n");
            exit(1);
        }
        sink ^= mac[0];
    }
    return (now() - t) / (double)n * 1e9;
}

static double reused_ctx(const char *key, const char *msg, long n)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t len, ml = strlen(msg);
    long i;
    double t;
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *base, *ctx;
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA1", 0);
    params[1] = OSSL_PARAM_construct_end();
    base = m ? EVP_MAC_CTX_new(m) : NULL;
    if (base == NULL ||
        !EVP_MAC_init(base, (const unsigned char *)key, strlen(key), params)) {
        fprintf(stderr, "bare_hmac: EVP_MAC setup failed\n");
        exit(1);
    }
    t = now();
    for (i = 0; i < n; i++) {
        ctx = EVP_MAC_CTX_dup(base);
        if (ctx == NULL || !EVP_MAC_update(ctx, (const unsigned char *)msg, ml) ||
            !EVP_MAC_final(ctx, mac, &len, sizeof(mac))) {
            fprintf(stderr, "bare_hmac: EVP_MAC failed\n");
            exit(1);
        }
        EVP_MAC_CTX_free(ctx);
        sink ^= mac[0];
    }
    t = (now() - t) / (double)n * 1e9;
    EVP_MAC_CTX_free(base);
    EVP_MAC_free(m);
    return t;
}

int main(int argc, char **argv)
{
    long n;
    if (argc != 4 || (n = atol(argv[3])) <= 0) {
        fprintf(stderr, "usage: bare_hmac STRING_TO_SIGN KEY N\n");
        return 2;
    }
    one_shot(EVP_sha1(), argv[2], argv[1], n / 20 + 1); /* warm-up */
    printf("sha1 %.1f\n", one_shot(EVP_sha1(), argv[2], argv[1], n));
    printf("sha256 %.1f\n", one_shot(EVP_sha256(), argv[2], argv[1], n));
    printf("sha1_ctx %.1f\n", reused_ctx(argv[2], argv[1], n));
    return 0;
}
