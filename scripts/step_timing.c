/*
 * Where a native-engine step spends its time, on one core: a group of
 * GROUP replicas of the post's MyChain (100 hidden units, batches of 10),
 * timed for a whole step, for its forward pass alone and for Adam alone
 * over every parameter (docs/performance.md, "The AVX2 set on a Zen 3").
 *
 *     gcc -O3 -ffp-contract=off -fno-math-errno -o /tmp/step_timing \
 *         scripts/step_timing.c -lm
 *     /tmp/step_timing [c|avx2|avx512] [steps]
 *
 * Prints the best of 5 rounds, in microseconds per group and step, and the
 * step's rate in GFLOP/s (714,010 FLOP per replica, as the benchmark
 * counts them).
 */
#define MH_NO_PYTHON 1
#include "../minibatch_hybrid/kernels/_native.c"

#include <stdio.h>
#include <string.h>
#include <time.h>

static double
seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* A fixed pseudo-random number in [0, 1). */
static float
draw(unsigned *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (*state >> 8) / 16777216.0f;
}

int
main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "c";
    const int steps = argc > 2 ? atoi(argv[2]) : 500;
    int set = -1;
    for (int k = 0; k < SET_COUNT; k++)
        if (strcmp(name, kernel_sets[k].name) == 0 && supports(k))
            set = k;
    if (set < 0 || steps < 1) {
        fprintf(stderr, "usage: step_timing [c|avx2|avx512] [steps >= 1] "
                "(a kernel set this CPU runs)\n");
        return 2;
    }
    const kernel_set *ks = &kernel_sets[set];
    const int n = 100, B = 10, L = ks->lanes;
    const idx size = PARAMS(n) * GROUP;
    float *P = aligned_alloc(64, size * sizeof(float));
    float *M = aligned_alloc(64, size * sizeof(float));
    float *V = aligned_alloc(64, size * sizeof(float));
    float *G = aligned_alloc(64, size * sizeof(float));
    float *h1, *h2, *g1, *x, *t, *d, *gy, *loss;
    if (!P || !M || !V || !G ||
        !alloc_scratch(B, n, &h1, &h2, &g1, &x, &t, &d, &gy, &loss))
        return 1;
    unsigned state = 1;
    for (idx i = 0; i < size; i++) {
        P[i] = 0.2f * (draw(&state) - 0.5f);
        M[i] = 1e-3f * (draw(&state) - 0.5f);
        V[i] = 1e-6f * draw(&state);
        G[i] = 1e-3f * (draw(&state) - 0.5f);
    }
    for (int i = 0; i < B * GROUP; i++) {
        x[i] = 6.28f * draw(&state);
        t[i] = sinf(x[i]);
    }
    const adam_hp h = {0.1f, 0.001f, 1e-8f, -1.0f};
    /* One replica's step, counted as bench.flops_per_step counts it: the
     * products forward and backward, and Adam at 10 per parameter. */
    const double flops = 4.0 * B * n * (n + 2) + 2.0 * B * n * (n + 1) +
                         10.0 * PARAMS(n);
    double best[3] = {1e9, 1e9, 1e9};
    fp_mode mode = enter_flush();
    for (int round = 0; round < 5; round++)
        for (int part = 0; part < 3; part++) {
            double start = seconds();
            for (int s = 0; s < steps; s++) {
                if (part == 2) {
                    ks->adam(&h, 1e-4f, P, G, M, V, size);
                    continue;
                }
                for (int l0 = 0; l0 < GROUP; l0 += L)
                    if (part == 0)
                        ks->step(B, n, P + l0, M + l0, V + l0, x, t, &h,
                                 1e-4f, h1, h2, d, gy, g1, loss);
                    else
                        ks->sq_error(B, n, P + l0, x, t, h1, h2, d, loss);
            }
            double each = (seconds() - start) / steps;
            if (each < best[part])
                best[part] = each;
        }
    leave_flush(mode);
    printf("%s (%d lanes a call): step %.1f us, forward %.1f us, Adam of "
           "every parameter %.1f us per group; step %.1f GFLOP/s\n",
           ks->name, L, 1e6 * best[0], 1e6 * best[1], 1e6 * best[2],
           GROUP * flops / best[0] / 1e9);
    return 0;
}
