/*
 * The CUDA kernels' arithmetic on the host: the fixed training of
 * scripts/harness_run.h (arm_harness.c's) run by _native.cu's per-thread
 * code (train_lane, evaluate_lane: what the kernels mh_train_epoch and
 * mh_evaluate run for each lane) with the CUDA vocabulary's operations
 * compiled as C float operations.  The line it prints must be the CPU
 * kernel sets' (tests/test_cuda_kernels.py).
 *
 *     gcc -O3 -ffp-contract=off -fno-math-errno \
 *         -o cuda_host_harness scripts/cuda_host_harness.c -lm
 */
#include "../minibatch_hybrid/kernels/_native.cu"

#include "harness_run.h"

#include <stdlib.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

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
    float *scratch = malloc(sizeof(float) * (size_t)(
        MH_SCRATCH(BATCH, N_UNITS) > MH_SCRATCH(EVAL_BATCH, N_UNITS)
            ? MH_SCRATCH(BATCH, N_UNITS)
            : MH_SCRATCH(EVAL_BATCH, N_UNITS)));
    if (scratch == NULL)
        return 1;
    harness_start();
    for (int e = 0; e < EPOCHS; e++) {
        harness_epoch(e);
        for (idx lane = 0; lane < LANES; lane++)  /* one thread each */
            train_lane(N_UNITS, BATCH, POINTS, lane, params, m, v, X, Y,
                       alpha_t, order, harness_hp, sums, scratch);
        harness_add();
    }
    for (idx lane = 0; lane < LANES; lane++)
        evaluate_lane(N_UNITS, POINTS, lane, params, EX, EY, mse, scratch);
    harness_print();
    free(scratch);
    return 0;
}
