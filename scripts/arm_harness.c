/*
 * The native engine's kernels without Python, for a check across CPUs
 * (scripts/check_arm.sh): trains a fixed ensemble for a few epochs with a
 * kernel set and prints a checksum of every weight, moment, loss and
 * evaluation.  Every kernel set on every CPU must print the same line.
 *
 *     harness [c|avx2|avx512]
 */
#define MH_NO_PYTHON 1
#include "../minibatch_hybrid/kernels/_native.c"

#include <stdio.h>

/* Long enough that Adam's first moments of dead units decay into the range
 * where the flush matters (0.9 per step, below 1.2e-37 within ~800). */
enum { GROUPS = 2, N_UNITS = 24, BATCH = 7, POINTS = 100, EPOCHS = 120 };

static uint64_t
fnv1a(uint64_t h, const void *data, size_t size)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < size; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

int
main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "c";
    int set = -1;
    for (int k = 0; k < SET_COUNT; k++)
        if (strcmp(name, kernel_sets[k].name) == 0 && supports(k))
            set = k;
    if (set < 0) {
        fprintf(stderr, "kernel set %s does not run here\n", name);
        return 2;
    }
    const idx size = PARAMS(N_UNITS) * GROUP, lanes = GROUPS * GROUP;
    static float params[GROUPS * PARAMS(N_UNITS) * GROUP];
    static float m[sizeof params / sizeof *params];
    static float v[sizeof params / sizeof *params];
    static float X[POINTS], Y[POINTS], EX[GROUPS * GROUP * POINTS];
    static float EY[GROUPS * GROUP * POINTS], mse[GROUPS * GROUP];
    static int32_t order[GROUPS * GROUP * POINTS];
    static float alpha_t[(POINTS + BATCH - 1) / BATCH];
    static double sums[GROUPS * GROUP];
    /* Integer recipes only, exactly representable or correctly rounded. */
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
    uint64_t h = 1469598103934665603ull;
    for (int e = 0; e < EPOCHS; e++) {
        for (idx l = 0; l < lanes; l++)  /* a permutation per lane */
            for (int i = 0; i < POINTS; i++)
                order[l * POINTS + i] = (int32_t)((i * 37 + l * 11 + e) %
                                                  POINTS);
        for (int s = 0; s < (POINTS + BATCH - 1) / BATCH; s++)
            alpha_t[s] = 0.001f;
        epoch_args a = {N_UNITS, BATCH, POINTS, params, m, v, X, Y,
                        alpha_t, order, {0.1f, 0.001f, 1e-8f, -1.f}, sums};
        if (train_groups(&kernel_sets[set], &a, 0, GROUPS) < 0)
            return 1;
        h = fnv1a(h, sums, sizeof sums);
    }
    if (evaluate_groups(&kernel_sets[set], N_UNITS, POINTS, params, EX, EY,
                        mse, 0, GROUPS) < 0)
        return 1;
    h = fnv1a(h, params, sizeof params);
    h = fnv1a(h, m, sizeof m);
    h = fnv1a(h, v, sizeof v);
    h = fnv1a(h, mse, sizeof mse);
    /* How many moments reached the range where flushing acts. */
    long tiny = 0;
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        tiny += m[i] != 0.f && fabsf(m[i]) < 1e-36f;
    printf("%016llx loss %.9g mse %.9g tiny-m %ld\n",
           (unsigned long long)h, sums[0] / POINTS, (double)mse[0], tiny);
    return 0;
}
