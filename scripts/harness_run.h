/*
 * The fixed training of the harnesses and the line they print, written
 * once: scripts/arm_harness.c runs it with the CPU kernel sets,
 * scripts/cuda_host_harness.c with the CUDA kernels' code on the host.
 * Included after the kernels' source (GROUP, PARAMS, idx, adam_hp).
 *
 * A harness calls harness_start(), then per epoch e harness_epoch(e), its
 * training of the lanes on order and alpha_t into sums, and
 * harness_add(sums); then its evaluation of EX, EY into mse, and
 * harness_print().  Integer recipes only: every input is exactly
 * representable or correctly rounded.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

/* Long enough that Adam's first moments of dead units decay into the range
 * where the flush matters (0.9 per step, below 1.2e-37 within ~800). */
enum { GROUPS = 2, N_UNITS = 24, BATCH = 7, POINTS = 100, EPOCHS = 120 };
enum { LANES = GROUPS * GROUP, STEPS = (POINTS + BATCH - 1) / BATCH };

static float params[GROUPS * PARAMS(N_UNITS) * GROUP];
static float m[sizeof params / sizeof *params];
static float v[sizeof params / sizeof *params];
static float X[POINTS], Y[POINTS], EX[LANES * POINTS], EY[LANES * POINTS];
static float mse[LANES], alpha_t[STEPS];
static int32_t order[LANES * POINTS];
static double sums[LANES];

/* Adam's hyperparameters as the kernels take them: 1 - beta1, 1 - beta2,
 * eps, -eta. */
static const adam_hp harness_hp = {0.1f, 0.001f, 1e-8f, -1.f};

static uint64_t harness_hash = 1469598103934665603ull;

static uint64_t
fnv1a(uint64_t h, const void *data, size_t size)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < size; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void
harness_start(void)
{
    for (idx i = 0; i < GROUPS * PARAMS(N_UNITS) * GROUP; i++)
        params[i] = (float)((int)((i * 2654435761u) % 2001u) - 1000) /
                    4000.f;
    for (int i = 0; i < POINTS; i++) {
        X[i] = (float)i * (6.25f / POINTS);
        Y[i] = X[i] * (1.f - X[i] * X[i] / 6.f);
    }
    for (idx l = 0; l < LANES; l++)
        for (int i = 0; i < POINTS; i++) {
            EX[l * POINTS + i] = X[(i * 7 + l) % POINTS];
            EY[l * POINTS + i] = Y[(i * 7 + l) % POINTS];
        }
}

/* Epoch e's orders (a permutation per lane) and step sizes. */
static void
harness_epoch(int e)
{
    for (idx l = 0; l < LANES; l++)
        for (int i = 0; i < POINTS; i++)
            order[l * POINTS + i] = (int32_t)((i * 37 + l * 11 + e) %
                                              POINTS);
    for (int s = 0; s < STEPS; s++)
        alpha_t[s] = 0.001f;
}

static void
harness_add(void)
{
    harness_hash = fnv1a(harness_hash, sums, sizeof sums);
}

/* The checksum of every epoch's losses, the weights, the moments and the
 * evaluations, and how many moments reached the range where flushing
 * acts. */
static void
harness_print(void)
{
    uint64_t h = harness_hash;
    h = fnv1a(h, params, sizeof params);
    h = fnv1a(h, m, sizeof m);
    h = fnv1a(h, v, sizeof v);
    h = fnv1a(h, mse, sizeof mse);
    long tiny = 0;
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        tiny += m[i] != 0.f && fabsf(m[i]) < 1e-36f;
    printf("%016llx loss %.9g mse %.9g tiny-m %ld\n",
           (unsigned long long)h, sums[0] / POINTS, (double)mse[0], tiny);
}
