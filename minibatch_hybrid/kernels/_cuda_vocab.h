/*
 * The CUDA vocabulary of the native engine's arithmetic (_native_body.h).
 *
 * One lane per thread: a vector is one float (VL = 1), and every
 * operation of the body is one IEEE float32 operation with its rounding
 * said explicitly, so that no compiler may fuse, reorder or approximate
 * it:
 *
 *   vadd vsub vmul vdiv vsqrt   __fadd_rn __fsub_rn __fmul_rn __fdiv_rn
 *                               __fsqrt_rn: round to nearest even, never
 *                               merged into a multiply-add
 *   vfma                        __fmaf_rn: a * b + c rounded once
 *
 * _native.cu is compiled by NVRTC with --fmad=false (no contraction
 * anywhere), --prec-div=true and --prec-sqrt=true (correctly rounded
 * division and square root) and --ftz=true: every single-precision
 * operation flushes subnormal inputs and results to zero of the same
 * sign, as the CPU kernel sets do with FTZ and DAZ (see cuda.py).
 *
 * Compiled for the host (not __CUDACC__), the same names are plain C
 * float operations and fmaf: with gcc -ffp-contract=off and the CPU's
 * FTZ and DAZ set, they are the very operations of the CPU kernel sets,
 * lane by lane (scripts/cuda_host_harness.c checks the bits).
 */
#ifndef MH_CUDA_VOCAB_SCALARS
#define MH_CUDA_VOCAB_SCALARS 1
#ifdef __CUDACC__
#define MH_DEVICE __device__
#else
#include <math.h>
#define MH_DEVICE
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline float __fmaf_rn(float a, float b, float c)
{
    return fmaf(a, b, c);
}
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
#endif

/* a > 0 ? a : +0, and h > 0 ? g : +0, as the CPU sets (NaN gives +0). */
MH_DEVICE static inline float
mh_relu(float a)
{
    return a > 0.f ? a : 0.f;
}

MH_DEVICE static inline float
mh_pos(float h, float g)
{
    return h > 0.f ? g : 0.f;
}
#endif /* MH_CUDA_VOCAB_SCALARS */

/* The vocabulary of _native_body.h (which undefines it at its end). */
#define TARGET MH_DEVICE
#define vec float
#define VL 1
#define RB 4
#define RO 2
#define SUFFIX(name) name##_cuda
#define vzero() 0.f
#define vset1(f) ((float)(f))
#define vload(p) (*(p))
#define vstore(p, a) ((void)(*(p) = (a)))
#define vadd __fadd_rn
#define vsub __fsub_rn
#define vmul __fmul_rn
#define vdiv __fdiv_rn
#define vsqrt __fsqrt_rn
#define vfma __fmaf_rn
#define vrelu mh_relu
#define vpos mh_pos
