/*
 * The CUDA kernels' arithmetic on the host: the same fixed training as
 * scripts/arm_harness.c, run by _native.cu's per-thread code (train_lane,
 * evaluate_lane: what the kernels mh_train_epoch and mh_evaluate run for
 * each lane) with the CUDA vocabulary's operations compiled as C float
 * operations.  Prints the checksum line of arm_harness.c, which must be
 * the CPU kernel sets' (tests/test_cuda_kernels.py).
 *
 *     gcc -O3 -ffp-contract=off -fno-math-errno \
 *         -o cuda_host_harness scripts/cuda_host_harness.c -lm
 */
#include "../minibatch_hybrid/kernels/_native.cu"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

/* As arm_harness.c. */
enum { GROUPS = 2, N_UNITS = 24, BATCH = 7, POINTS = 100, EPOCHS = 120 };

static uint64_t
fnv1a(uint64_t h, const void *data, size_t size)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < size; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* Subnormals flushed, as the CPU kernels' calls and the GPU's -ftz. */
static int
flush_subnormals(void)
{
#if defined(__GNUC__) && defined(__x86_64__)
    _mm_setcsr(_mm_getcsr() | 0x8040);  /* FTZ 15 | DAZ 6 */
    return 0;
#elif defined(__aarch64__)
    uint64_t fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr) : : "memory");
    fpcr |= (uint64_t)1 << 24;  /* FZ */
    __asm__ __volatile__("msr fpcr, %0" : : "r"(fpcr) : "memory");
    return 0;
#else
    return -1;
#endif
}

int
main(void)
{
    if (flush_subnormals() < 0) {
        fprintf(stderr, "no flush-to-zero mode known on this CPU\n");
        return 2;
    }
    const idx size = PARAMS(N_UNITS) * GROUP, lanes = GROUPS * GROUP;
    static float params[GROUPS * PARAMS(N_UNITS) * GROUP];
    static float m[sizeof params / sizeof *params];
    static float v[sizeof params / sizeof *params];
    static float X[POINTS], Y[POINTS], EX[GROUPS * GROUP * POINTS];
    static float EY[GROUPS * GROUP * POINTS], mse[GROUPS * GROUP];
    static int order[GROUPS * GROUP * POINTS];
    static float alpha_t[(POINTS + BATCH - 1) / BATCH];
    static double sums[GROUPS * GROUP];
    float *scratch = malloc(sizeof(float) * (size_t)(
        MH_SCRATCH(BATCH, N_UNITS) > MH_SCRATCH(EVAL_BATCH, N_UNITS)
            ? MH_SCRATCH(BATCH, N_UNITS)
            : MH_SCRATCH(EVAL_BATCH, N_UNITS)));
    if (scratch == NULL)
        return 1;
    for (idx i = 0; i < GROUPS * size; i++)
        params[i] = (float)((int)((i * 2654435761u) % 2001u) - 1000) /
                    4000.f;
    for (int i = 0; i < POINTS; i++) {
        X[i] = (float)i * (6.25f / POINTS);
        Y[i] = X[i] * (1.f - X[i] * X[i] / 6.f);
    }
    for (idx l = 0; l < lanes; l++)
        for (int i = 0; i < POINTS; i++) {
            EX[l * POINTS + i] = X[(i * 7 + l) % POINTS];
            EY[l * POINTS + i] = Y[(i * 7 + l) % POINTS];
        }
    const adam_hp h = {0.1f, 0.001f, 1e-8f, -1.f};
    uint64_t hash = 1469598103934665603ull;
    for (int e = 0; e < EPOCHS; e++) {
        for (idx l = 0; l < lanes; l++)
            for (int i = 0; i < POINTS; i++)
                order[l * POINTS + i] = (int)((i * 37 + l * 11 + e) %
                                              POINTS);
        for (int s = 0; s < (POINTS + BATCH - 1) / BATCH; s++)
            alpha_t[s] = 0.001f;
        for (idx lane = 0; lane < lanes; lane++)  /* one thread each */
            train_lane(N_UNITS, BATCH, POINTS, lane, params, m, v, X, Y,
                       alpha_t, order, h, sums, scratch);
        hash = fnv1a(hash, sums, sizeof sums);
    }
    for (idx lane = 0; lane < lanes; lane++)
        evaluate_lane(N_UNITS, POINTS, lane, params, EX, EY, mse, scratch);
    hash = fnv1a(hash, params, sizeof params);
    hash = fnv1a(hash, m, sizeof m);
    hash = fnv1a(hash, v, sizeof v);
    hash = fnv1a(hash, mse, sizeof mse);
    long tiny = 0;
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        tiny += m[i] != 0.f && fabsf(m[i]) < 1e-36f;
    printf("%016llx loss %.9g mse %.9g tiny-m %ld\n",
           (unsigned long long)hash, sums[0] / POINTS, (double)mse[0], tiny);
    free(scratch);
    return 0;
}
