/*
 * The native engine's arithmetic on NVIDIA GPUs (compiled at run time by
 * NVRTC, through minibatch_hybrid.kernels.cuda).
 *
 * The body is _native_body.h, the one every CPU kernel set compiles, with
 * the vocabulary of _cuda_vocab.h: one replica (one lane) per thread, a
 * vector is one float, every operation an explicitly rounded intrinsic.
 * Each output of a product is therefore the same chain of fused
 * multiply-adds, in the same order, as on the CPU, and Adam the same
 * float32 operations: the same bits as every CPU kernel set.
 *
 * The layout of a group's parameters is _native_layout.h's, as on the
 * CPU (GROUP lanes wide, element e of lane l at [e * GROUP + l]); a
 * thread works on lane l = lane % GROUP of group lane / GROUP.  Its
 * scratch (h1, h2, g1: B n floats; x, t, d, gy: B; loss: 1, contiguous)
 * is MH_SCRATCH(B, n) floats of global memory at
 * scratch + lane * MH_SCRATCH(B, n).
 *
 * Without __CUDACC__ this file is plain C (scripts/cuda_host_harness.c
 * includes it): train_lane and evaluate_lane, which the kernels run, run
 * on the host with the vocabulary's operations as C float operations.
 */
#ifdef __CUDACC__
typedef long long idx;
#ifndef NULL
#define NULL 0
#endif
#else
#include <stddef.h>
typedef ptrdiff_t idx;
#endif

#include "_native_layout.h"

#include "_cuda_vocab.h"
#include "_native_body.h"

/* Floats of one thread's scratch for batches of B (cuda.py's
 * scratch_floats says the same; a test compares them). */
#define MH_SCRATCH(B, n) (3 * (idx)(B) * (n) + 4 * (idx)(B) + 1)


/* One epoch of lane `lane`: every step of its order, as train_groups does
 * for one lane; sum_loss[lane] = the sum of loss * len(batch), float64. */
MH_DEVICE static void
train_lane(int n, int B, int N, idx lane, float *params, float *m,
           float *v, const float *X, const float *Y, const float *alpha_t,
           const int *order, adam_hp h, double *sum_loss, float *scratch)
{
    const idx g = lane / GROUP, l = lane % GROUP;
    const idx at = g * PARAMS(n) * GROUP + l;
    float *h1 = scratch, *h2 = h1 + (idx)B * n, *g1 = h2 + (idx)B * n;
    float *x = g1 + (idx)B * n, *t = x + B, *d = t + B, *gy = d + B;
    float *loss = gy + B;
    double sum = 0.0;
    idx s = 0;
    for (idx pos = 0; pos < N; pos += B, s++) {
        const int Bs = N - pos < B ? (int)(N - pos) : B;
        const int *o = order + lane * N + pos;
        for (int b = 0; b < Bs; b++) {
            x[b] = X[o[b]];
            t[b] = Y[o[b]];
        }
        step_cuda(Bs, n, params + at, m + at, v + at, x, t, &h, alpha_t[s],
                  h1, h2, d, gy, g1, loss);
        sum = __dadd_rn(sum, __dmul_rn((double)loss[0], (double)Bs));
    }
    sum_loss[lane] = sum;
}

/* Mean squared error of lane `lane` on its data X, Y (lanes, N), as
 * evaluate_groups does for one lane. */
MH_DEVICE static void
evaluate_lane(int n, int N, idx lane, const float *params, const float *X,
              const float *Y, float *out, float *scratch)
{
    const idx g = lane / GROUP, l = lane % GROUP;
    const float *P = params + g * PARAMS(n) * GROUP + l;
    const int B = EVAL_BATCH;
    float *h1 = scratch, *h2 = h1 + (idx)B * n, *g1 = h2 + (idx)B * n;
    float *x = g1 + (idx)B * n, *t = x + B, *d = t + B, *gy = d + B;
    float *sum = gy + B;
    (void)g1;
    *sum = 0.f;
    for (int pos = 0; pos < N; pos += B) {
        const int Bs = N - pos < B ? N - pos : B;
        for (int b = 0; b < Bs; b++) {
            x[b] = X[lane * N + pos + b];
            t[b] = Y[lane * N + pos + b];
        }
        sq_error_cuda(Bs, n, P, x, t, h1, h2, d, sum);
    }
    out[lane] = __fdiv_rn(*sum, (float)N);
}

#ifdef __CUDACC__
/* The kernels, one lane per thread; their parameters are cuda.py's
 * PARAMETERS, which builds each launch.  mh_train_epoch: one epoch of
 * lanes 0 <= lane < lanes (groups * GROUP).  params, m, v: float32
 * (groups, PARAMS(n), GROUP); x, y: float32 (points); alpha_t: float32,
 * one per step; order: int32 (lanes, points); sums: float64 (lanes);
 * scratch: float32 (lanes, MH_SCRATCH(batchsize, n_units)). */
extern "C" __global__ void
mh_train_epoch(int n_units, int batchsize, int points, long long lanes,
               float *params, float *m, float *v, const float *x,
               const float *y, const float *alpha_t, const int *order,
               float one_minus_beta1, float one_minus_beta2, float eps,
               float neg_eta, double *sums, float *scratch)
{
    const idx lane = (idx)blockIdx.x * blockDim.x + threadIdx.x;
    if (lane >= lanes)
        return;
    const adam_hp h = {one_minus_beta1, one_minus_beta2, eps, neg_eta};
    train_lane(n_units, batchsize, points, lane, params, m, v, x, y,
               alpha_t, order, h, sums,
               scratch + lane * MH_SCRATCH(batchsize, n_units));
}

/* Mean squared error of lanes 0 <= lane < lanes: x, y float32
 * (lanes, points), out float32 (lanes); scratch: float32
 * (lanes, MH_SCRATCH(EVAL_BATCH, n_units)). */
extern "C" __global__ void
mh_evaluate(int n_units, int points, long long lanes, const float *params,
            const float *x, const float *y, float *out, float *scratch)
{
    const idx lane = (idx)blockIdx.x * blockDim.x + threadIdx.x;
    if (lane >= lanes)
        return;
    evaluate_lane(n_units, points, lane, params, x, y, out,
                  scratch + lane * MH_SCRATCH(EVAL_BATCH, n_units));
}
#endif
