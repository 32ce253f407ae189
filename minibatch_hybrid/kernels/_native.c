/*
 * Compiled kernels of minibatch_hybrid (optional; see native.py for the
 * Python side and the documentation).
 *
 * The native engine (train_epoch, evaluate): an ensemble of replicas of
 * the post's network, Linear(1, n) -> ReLU -> Linear(n, n) -> ReLU ->
 * Linear(n, 1) with a mean squared error and Chainer's Adam, trained a
 * whole epoch per call.  Replicas are packed GROUP to a group, one per
 * vector lane, and the arithmetic is written once (_native_body.h) for
 * every kernel set: each output of a product is one ordered chain of
 * fused multiply-adds, so every kernel set gives the same bits.  The calls
 * run with subnormal numbers flushed to zero (FTZ and DAZ on x86, FZ on
 * 64-bit ARM), set on entry and restored on exit, unless
 * set_flush_subnormals(False).
 *
 * adam: Chainer's Adam update (no AMSGrad, AdaBound or weight decay) of
 * elements start <= i < stop of one parameter, the very float32 operations
 * of chainer.optimizers.Adam in the same order under IEEE semantics, so
 * the same bits.  This is the single-model path's update (FusedAdam).
 *
 * The module is compiled with -ffp-contract=off: no multiply-add is fused
 * unless the code says so.  The GIL is released while a kernel runs, so
 * Python threads can run disjoint groups in parallel.
 */
#ifndef MH_NO_PYTHON  /* scripts/check_arm.sh builds the kernels alone */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#endif
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
#define MH_X86 1
#include <immintrin.h>
#endif

typedef ptrdiff_t idx;

/* Replicas per group: the widest vector (AVX-512, 16 float32 lanes). */
#define GROUP 16

/* A group's parameters, one after another, in elements of GROUP lanes:
 * W1 (n), b1 (n), W2 (n x n, Chainer's (out, in) layout), b2 (n), W3 (n),
 * b3 (1). */
#define OFF_W1(n) ((idx)0)
#define OFF_B1(n) ((idx)(n))
#define OFF_W2(n) ((idx)2 * (n))
#define OFF_B2(n) ((idx)2 * (n) + (idx)(n) * (n))
#define OFF_W3(n) (OFF_B2(n) + (n))
#define OFF_B3(n) (OFF_W3(n) + (n))
#define PARAMS(n) (OFF_B3(n) + 1)

/* Adam's hyperparameters as float32, as NumPy meets them. */
typedef struct {
    float one_minus_beta1, one_minus_beta2, eps, neg_eta;
} adam_hp;

/* What product() does with each finished output. */
enum { PUT_STORE, PUT_BIAS_RELU, PUT_ADAM };

typedef struct {
    int kind;
    float *out;        /* PUT_STORE, PUT_BIAS_RELU: out[r * or + c * oc] */
    idx or_, oc;
    const float *bias; /* PUT_BIAS_RELU: + bias[c * GROUP], then relu */
    float *P, *M, *V;  /* PUT_ADAM: the update of element e0 + r * er + c */
    idx e0, er;
    const adam_hp *h;
} put;

/* ------------------------------------------------------------------ */
/* The kernel sets: one vocabulary each, then the body.                */

/* Portable C: a vector is GCC's (and Clang's) generic vector of CL floats
 * and every operation a loop over its lanes, which the compiler turns
 * into the CPU's vectors (NEON, SSE, AVX) where it can; fmaf is the fused
 * multiply-add.  On x86 the set is compiled for CPUs with FMA, so that
 * fmaf is one instruction. */
#ifdef MH_X86
#define TARGET __attribute__((target("fma")))
#define CL 8
#else
#define TARGET
#define CL 4
#endif
typedef float cvec __attribute__((vector_size(CL * sizeof(float))));
#define CVEC_OP(name, expr)                                                \
    TARGET static inline cvec name(cvec a, cvec b)                         \
    {                                                                      \
        cvec r;                                                            \
        for (int i = 0; i < CL; i++)                                       \
            r[i] = (expr);                                                 \
        return r;                                                          \
    }
CVEC_OP(c_sqrt, sqrtf(a[i]))
CVEC_OP(c_relu, a[i] > 0.f ? a[i] : 0.f)
CVEC_OP(c_pos, a[i] > 0.f ? b[i] : 0.f)
TARGET static inline cvec
c_fma(cvec a, cvec b, cvec c)
{
    cvec r;
    for (int i = 0; i < CL; i++)
        r[i] = fmaf(a[i], b[i], c[i]);
    return r;
}
TARGET static inline cvec
c_set1(float f)
{
    cvec r;
    for (int i = 0; i < CL; i++)
        r[i] = f;
    return r;
}

TARGET static inline cvec
c_load(const float *p)
{
    cvec r;
    memcpy(&r, p, sizeof r);
    return r;
}
TARGET static inline void
c_store(float *p, cvec a)
{
    memcpy(p, &a, sizeof a);
}
#define vec cvec
#define VL CL
#define RB 5
#define RO 2
#define SUFFIX(name) name##_c
#define vzero() ((cvec){0})
#define vset1(f) c_set1(f)
#define vload(p) c_load(p)
#define vstore(p, a) c_store((p), (a))
#define vadd(a, b) ((a) + (b))
#define vsub(a, b) ((a) - (b))
#define vmul(a, b) ((a) * (b))
#define vdiv(a, b) ((a) / (b))
#define vsqrt(a) c_sqrt((a), (a))
#define vfma c_fma
#define vrelu(a) c_relu((a), (a))
#define vpos c_pos
#include "_native_body.h"

#ifdef MH_X86
/* AVX2 and FMA: 8 lanes. */
#define TARGET __attribute__((target("avx2,fma")))
#define vec __m256
#define VL 8
#define RB 5
#define RO 2
#define SUFFIX(name) name##_avx2
#define vzero() _mm256_setzero_ps()
#define vset1(f) _mm256_set1_ps(f)
#define vload(p) _mm256_loadu_ps(p)
#define vstore(p, a) _mm256_storeu_ps((p), (a))
#define vadd _mm256_add_ps
#define vsub _mm256_sub_ps
#define vmul _mm256_mul_ps
#define vdiv _mm256_div_ps
#define vsqrt _mm256_sqrt_ps
#define vfma _mm256_fmadd_ps
/* maxps returns its second operand when both are zero or one is NaN. */
#define vrelu(a) _mm256_max_ps((a), _mm256_setzero_ps())
#define vpos(h, g) _mm256_and_ps( \
    _mm256_cmp_ps((h), _mm256_setzero_ps(), _CMP_GT_OQ), (g))
#include "_native_body.h"

/* AVX-512F: 16 lanes, 32 registers. */
#define TARGET __attribute__((target("avx512f,avx2,fma")))
#define vec __m512
#define VL 16
#define RB 5
#define RO 4
#define SUFFIX(name) name##_avx512
#define vzero() _mm512_setzero_ps()
#define vset1(f) _mm512_set1_ps(f)
#define vload(p) _mm512_loadu_ps(p)
#define vstore(p, a) _mm512_storeu_ps((p), (a))
#define vadd _mm512_add_ps
#define vsub _mm512_sub_ps
#define vmul _mm512_mul_ps
#define vdiv _mm512_div_ps
#define vsqrt _mm512_sqrt_ps
#define vfma _mm512_fmadd_ps
#define vrelu(a) _mm512_max_ps((a), _mm512_setzero_ps())
#define vpos(h, g) _mm512_maskz_mov_ps( \
    _mm512_cmp_ps_mask((h), _mm512_setzero_ps(), _CMP_GT_OQ), (g))
#include "_native_body.h"
#endif /* MH_X86 */

/* ------------------------------------------------------------------ */
/* Driving a kernel set: lanes of a group, steps of an epoch.          */

typedef void (*step_fn)(int, int, float *, float *, float *, const float *,
                        const float *, const adam_hp *, float, float *,
                        float *, float *, float *, float *, float *);
typedef void (*sq_error_fn)(int, int, const float *, const float *,
                            const float *, float *, float *, float *,
                            float *);

typedef void (*peak_fn)(long, float *);

typedef struct {
    const char *name;
    int lanes;
    step_fn step;
    sq_error_fn sq_error;
    peak_fn fma_peak;
} kernel_set;

enum { SET_C, SET_AVX2, SET_AVX512, SET_COUNT };
static const kernel_set kernel_sets[SET_COUNT] = {
    {"c", CL, step_c, sq_error_c, fma_peak_c},
#ifdef MH_X86
    {"avx2", 8, step_avx2, sq_error_avx2, fma_peak_avx2},
    {"avx512", 16, step_avx512, sq_error_avx512, fma_peak_avx512},
#else
    {"avx2", 0, NULL, NULL, NULL},
    {"avx512", 0, NULL, NULL, NULL},
#endif
};
static int current_set = SET_C;
static int flush_subnormals = 1;

/* Whether this CPU (and build) runs kernel set k.  The kernels need a
 * fused multiply-add in hardware and a flush-to-zero mode that behaves as
 * x86's does: x86-64 with FMA3, and 64-bit ARM.  Elsewhere none runs. */
static int
supports(int k)
{
#ifdef MH_X86
    int fma = __builtin_cpu_supports("fma");
    if (k == SET_C)
        return fma;
    if (k == SET_AVX2)
        return fma && __builtin_cpu_supports("avx2");
    if (k == SET_AVX512)
        return fma && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("avx512f");
    return 0;
#elif defined(__aarch64__)
    return k == SET_C;
#else
    (void)k;
    return 0;
#endif
}

/* The floating-point mode of a kernel call: whether it flushes, and the
 * caller's mode to restore.  The flag is read once per call, so that a
 * concurrent set_flush_subnormals cannot unbalance the save and restore. */
typedef struct {
    int active;
    uint64_t saved;
} fp_mode;

static fp_mode
enter_flush(void)
{
    fp_mode mode = {flush_subnormals, 0};
    if (!mode.active)
        return mode;
#ifdef MH_X86
    mode.saved = _mm_getcsr();
    _mm_setcsr((unsigned int)mode.saved | 0x8040);  /* FTZ 15 | DAZ 6 */
#elif defined(__aarch64__)
    uint64_t fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr) : : "memory");
    mode.saved = fpcr;
    fpcr |= (uint64_t)1 << 24;  /* FZ */
    __asm__ __volatile__("msr fpcr, %0" : : "r"(fpcr) : "memory");
#endif
    return mode;
}

static void
leave_flush(fp_mode mode)
{
    if (!mode.active)
        return;
#ifdef MH_X86
    _mm_setcsr((unsigned int)mode.saved);
#elif defined(__aarch64__)
    __asm__ __volatile__("msr fpcr, %0" : : "r"(mode.saved) : "memory");
#endif
}

/* Scratch of one call: VL-lane arrays for a batch of B (h1, h2, g1: B n;
 * x, t, d, gy: B; loss: 1), for the widest set. */
static float *
alloc_scratch(int B, int n, float **h1, float **h2, float **g1, float **x,
              float **t, float **d, float **gy, float **loss)
{
    size_t bn = (size_t)B * n * GROUP, b = (size_t)B * GROUP;
    float *s = aligned_alloc(64, ((3 * bn + 4 * b + GROUP) * sizeof(float)
                                  + 63) / 64 * 64);
    if (s == NULL)
        return NULL;
    *h1 = s;
    *h2 = *h1 + bn;
    *g1 = *h2 + bn;
    *x = *g1 + bn;
    *t = *x + b;
    *d = *t + b;
    *gy = *d + b;
    *loss = *gy + b;
    return s;
}

/* The arguments of train_epoch. */
typedef struct {
    int n, B, N;
    float *params, *m, *v;
    const float *X, *Y, *alpha_t;
    const int32_t *order;  /* (groups * GROUP, N) */
    adam_hp h;
    double *sum_loss;      /* (groups * GROUP) */
} epoch_args;

/* Trains groups g0 <= g < g1 for one epoch: each VL-lane slice of a group
 * takes every step of the epoch in turn.  Returns -1 if out of memory. */
static int
train_groups(const kernel_set *ks, const epoch_args *a, idx g0, idx g1)
{
    const int n = a->n, B = a->B, N = a->N, L = ks->lanes;
    const idx size = PARAMS(n) * GROUP;
    float *h1, *h2, *g1s, *x, *t, *d, *gy, *loss;
    float *scratch = alloc_scratch(B, n, &h1, &h2, &g1s, &x, &t, &d, &gy,
                                   &loss);
    if (scratch == NULL)
        return -1;
    fp_mode mode = enter_flush();
    for (idx g = g0; g < g1; g++)
        for (int l0 = 0; l0 < GROUP; l0 += L) {
            const idx lane = g * GROUP + l0;
            float *P = a->params + g * size + l0;
            float *M = a->m + g * size + l0, *V = a->v + g * size + l0;
            for (int l = 0; l < L; l++)
                a->sum_loss[lane + l] = 0.0;
            idx s = 0;
            for (idx pos = 0; pos < N; pos += B, s++) {
                const int Bs = N - pos < B ? (int)(N - pos) : B;
                for (int l = 0; l < L; l++) {
                    const int32_t *o = a->order + (lane + l) * N + pos;
                    for (int b = 0; b < Bs; b++) {
                        x[b * L + l] = a->X[o[b]];
                        t[b * L + l] = a->Y[o[b]];
                    }
                }
                ks->step(Bs, n, P, M, V, x, t, &a->h, a->alpha_t[s], h1, h2,
                         d, gy, g1s, loss);
                /* The post's metric: sum of loss * len(batch), in float64. */
                for (int l = 0; l < L; l++)
                    a->sum_loss[lane + l] += (double)loss[l] * (double)Bs;
            }
        }
    leave_flush(mode);
    free(scratch);
    return 0;
}

/* Mean squared error of groups g0 <= g < g1 on per-replica data X, Y
 * (groups * GROUP, N), in batches of EVAL_BATCH points; one chain of
 * d^2 over all points. */
#define EVAL_BATCH 10

static int
evaluate_groups(const kernel_set *ks, int n, int N, const float *params,
                const float *X, const float *Y, float *out, idx g0, idx g1)
{
    const int L = ks->lanes;
    const idx size = PARAMS(n) * GROUP;
    float *h1, *h2, *g1s, *x, *t, *d, *gy, *sum;
    float *scratch = alloc_scratch(EVAL_BATCH, n, &h1, &h2, &g1s, &x, &t,
                                   &d, &gy, &sum);
    if (scratch == NULL)
        return -1;
    fp_mode mode = enter_flush();
    for (idx g = g0; g < g1; g++)
        for (int l0 = 0; l0 < GROUP; l0 += L) {
            const idx lane = g * GROUP + l0;
            const float *P = params + g * size + l0;
            for (int l = 0; l < L; l++)
                sum[l] = 0.f;
            for (int pos = 0; pos < N; pos += EVAL_BATCH) {
                const int Bs = N - pos < EVAL_BATCH ? N - pos : EVAL_BATCH;
                for (int l = 0; l < L; l++)
                    for (int b = 0; b < Bs; b++) {
                        x[b * L + l] = X[(lane + l) * N + pos + b];
                        t[b * L + l] = Y[(lane + l) * N + pos + b];
                    }
                ks->sq_error(Bs, n, P, x, t, h1, h2, d, sum);
            }
            for (int l = 0; l < L; l++)
                out[lane + l] = sum[l] / (float)N;
        }
    leave_flush(mode);
    free(scratch);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Adam, Chainer's operations in Chainer's order.                      */

typedef struct {
    float one_minus_beta1, one_minus_beta2, eps, alpha_t, neg_eta;
} update_hp;

static void
adam_c(update_hp h, float *p, const float *g, float *m, float *v, idx n)
{
    for (idx i = 0; i < n; i++) {
        float a = g[i] - m[i];
        a = h.one_minus_beta1 * a;
        m[i] += a;
        a = g[i] * g[i];
        a = a - v[i];
        a = h.one_minus_beta2 * a;
        v[i] += a;
        a = sqrtf(v[i]);
        a = a + h.eps;
        a = h.alpha_t / a;
        a = a * m[i];
        a = h.neg_eta * a;
        p[i] += a;
    }
}

#ifdef MH_X86
__attribute__((target("avx2"))) static void
adam_avx2(update_hp h, float *p, const float *g, float *m, float *v, idx n)
{
    const __m256 c1 = _mm256_set1_ps(h.one_minus_beta1);
    const __m256 c2 = _mm256_set1_ps(h.one_minus_beta2);
    const __m256 eps = _mm256_set1_ps(h.eps);
    const __m256 alpha = _mm256_set1_ps(h.alpha_t);
    const __m256 neg_eta = _mm256_set1_ps(h.neg_eta);
    idx i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gi = _mm256_loadu_ps(g + i);
        __m256 mi = _mm256_loadu_ps(m + i);
        __m256 vi = _mm256_loadu_ps(v + i);
        mi = _mm256_add_ps(mi, _mm256_mul_ps(c1, _mm256_sub_ps(gi, mi)));
        vi = _mm256_add_ps(
            vi, _mm256_mul_ps(c2, _mm256_sub_ps(_mm256_mul_ps(gi, gi), vi)));
        __m256 a = _mm256_div_ps(
            alpha, _mm256_add_ps(_mm256_sqrt_ps(vi), eps));
        a = _mm256_mul_ps(neg_eta, _mm256_mul_ps(a, mi));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        _mm256_storeu_ps(p + i, _mm256_add_ps(_mm256_loadu_ps(p + i), a));
    }
    adam_c(h, p + i, g + i, m + i, v + i, n - i);
}
#endif

#ifndef MH_NO_PYTHON
/* ------------------------------------------------------------------ */
/* Python interface.                                                   */

static void
release_buffers(Py_buffer *views, Py_ssize_t count)
{
    for (Py_ssize_t i = 0; i < count; i++)
        PyBuffer_Release(&views[i]);
}

/* Gets the buffers of args[first:first + count]; spec has a letter per
 * buffer: 'f' float32, 'i' int32, 'd' float64, upper case where written.
 * All C-contiguous.  On failure releases what it got. */
static int
get_buffers(PyObject *args, Py_ssize_t first, const char *spec,
            Py_buffer *views, const char **names)
{
    Py_ssize_t count = (Py_ssize_t)strlen(spec);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *obj = PyTuple_GET_ITEM(args, first + i);
        const int written = spec[i] >= 'A' && spec[i] <= 'Z';
        const char format[2] = {(char)(spec[i] | 0x20), 0};
        const char *type = format[0] == 'f' ? "float32"
                           : format[0] == 'i' ? "int32" : "float64";
        int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT;
        if (written)
            flags |= PyBUF_WRITABLE;
        if (PyObject_GetBuffer(obj, &views[i], flags) < 0) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous%s %s "
                         "array", names[i], written ? ", writable" : "",
                         type);
            release_buffers(views, i);
            return -1;
        }
        const char *f = views[i].format ? views[i].format : "?";
        if (f[0] == '=' || f[0] == '<' || f[0] == '@')
            f++;
        if (views[i].itemsize != (format[0] == 'd' ? 8 : 4) ||
            strcmp(f, format) != 0) {
            PyErr_Format(PyExc_TypeError, "%s must be %s, not '%s'",
                         names[i], type, views[i].format
                                         ? views[i].format : "?");
            release_buffers(views, i + 1);
            return -1;
        }
    }
    return 0;
}

static Py_ssize_t
length(const Py_buffer *view)
{
    return view->len / view->itemsize;
}

static int
check_length(const Py_buffer *views, const char **names, int i,
             Py_ssize_t expected)
{
    if (length(&views[i]) != expected) {
        PyErr_Format(PyExc_ValueError, "%s has %zd elements; expected %zd",
                     names[i], length(&views[i]), expected);
        return -1;
    }
    return 0;
}

/* Checks a group range [g0, g1) against the groups there are. */
static int
checked_range(Py_ssize_t groups, Py_ssize_t g0, Py_ssize_t g1)
{
    if (g0 < 0 || g1 > groups || g0 > g1) {
        PyErr_Format(PyExc_ValueError, "group range [%zd, %zd) is not "
                     "within [0, %zd)", g0, g1, groups);
        return -1;
    }
    return 0;
}

/* Raises RuntimeError unless the CPU runs the selected kernel set. */
static int
check_cpu(void)
{
    if (supports(current_set))
        return 0;
    PyErr_SetString(PyExc_RuntimeError, "this CPU runs none of the native "
                    "engine's kernel sets (they need a fused multiply-add); "
                    "use the numpy engine");
    return -1;
}

/* Largest n: the group's parameters (n * n + 4 n + 1 elements of GROUP
 * lanes) must be indexable by an int product. */
#define MAX_UNITS 8192

static const char *epoch_names[] = {
    "params", "m", "v", "x", "y", "order", "alpha_t", "sum_loss"};

PyDoc_STRVAR(train_epoch_doc,
"train_epoch(g0, g1, n, batchsize, params, m, v, x, y, order, alpha_t,\n"
"            beta1, beta2, eps, eta, sum_loss)\n\n"
"Trains groups g0 <= g < g1 of an ensemble for one epoch, in place.\n"
"params, m, v: float32 (groups, P, 16), P = n * n + 4 * n + 1; x, y:\n"
"float32 (N,), the data; order: int32 (groups * 16, N), each replica's\n"
"order of the epoch; alpha_t: float32, Adam's step size of each of the\n"
"epoch's ceil(N / batchsize) steps.  Writes sum_loss: float64\n"
"(groups * 16,), each replica's sum of loss * len(batch).");

static PyObject *
train_epoch(PyObject *self, PyObject *args)
{
    Py_ssize_t g0, g1;
    int n, B;
    double beta1, beta2, eps, eta;
    Py_buffer v[8];
    if (PyTuple_GET_SIZE(args) != 16) {
        PyErr_SetString(PyExc_TypeError, "train_epoch takes 16 arguments");
        return NULL;
    }
    PyObject *head = PyTuple_GetSlice(args, 0, 4);
    PyObject *tail = PyTuple_GetSlice(args, 11, 15);
    int ok = head && tail &&
             PyArg_ParseTuple(head, "nnii:train_epoch", &g0, &g1, &n, &B) &&
             PyArg_ParseTuple(tail, "dddd:train_epoch", &beta1, &beta2, &eps,
                              &eta);
    Py_XDECREF(head);
    Py_XDECREF(tail);
    if (!ok)
        return NULL;
    PyObject *bufs = PyTuple_Pack(8, PyTuple_GET_ITEM(args, 4),
                                  PyTuple_GET_ITEM(args, 5),
                                  PyTuple_GET_ITEM(args, 6),
                                  PyTuple_GET_ITEM(args, 7),
                                  PyTuple_GET_ITEM(args, 8),
                                  PyTuple_GET_ITEM(args, 9),
                                  PyTuple_GET_ITEM(args, 10),
                                  PyTuple_GET_ITEM(args, 15));
    if (bufs == NULL)
        return NULL;
    if (check_cpu() < 0)
        return NULL;
    ok = get_buffers(bufs, 0, "FFFffifD", v, epoch_names) == 0;
    Py_DECREF(bufs);
    if (!ok)
        return NULL;
    const Py_ssize_t N = length(&v[3]);
    const Py_ssize_t size = n > 0 && n <= MAX_UNITS ? PARAMS(n) * GROUP : 0;
    const Py_ssize_t groups = size ? length(&v[0]) / size : 0;
    int bad = 0;
    if (size == 0 || N == 0 || N > INT_MAX || B < 1 || B > N ||
        (Py_ssize_t)B * n > INT_MAX / GROUP) {
        PyErr_Format(PyExc_ValueError, "train_epoch: need 1 <= n <= %d, "
                     "1 <= batchsize <= N and batchsize * n * %d within an "
                     "int; got n=%d, batchsize=%d, N=%zd", MAX_UNITS, GROUP,
                     n, B, N);
        bad = 1;
    }
    const Py_ssize_t steps = bad ? 0 : (N + B - 1) / B;
    const Py_ssize_t expected[8] = {groups * size, groups * size,
                                    groups * size, N, N, groups * GROUP * N,
                                    steps, groups * GROUP};
    for (int i = 0; !bad && i < 8; i++)
        bad = check_length(v, epoch_names, i, expected[i]) < 0;
    if (!bad)
        bad = checked_range(groups, g0, g1) < 0;
    if (!bad) {
        const int32_t *order = v[5].buf;
        for (Py_ssize_t i = 0; !bad && i < expected[5]; i++)
            if (order[i] < 0 || order[i] >= N) {
                PyErr_Format(PyExc_ValueError, "order holds index %d, out of "
                             "range for %zd points", (int)order[i], N);
                bad = 1;
            }
    }
    if (bad) {
        release_buffers(v, 8);
        return NULL;
    }
    epoch_args a = {n, B, (int)N, v[0].buf, v[1].buf, v[2].buf, v[3].buf,
                    v[4].buf, v[6].buf, v[5].buf,
                    {(float)(1.0 - beta1), (float)(1.0 - beta2), (float)eps,
                     (float)(-eta)},
                    v[7].buf};
    const kernel_set *ks = &kernel_sets[current_set];
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = train_groups(ks, &a, g0, g1);
    Py_END_ALLOW_THREADS
    release_buffers(v, 8);
    if (status < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static const char *evaluate_names[] = {"params", "x", "y", "out"};

PyDoc_STRVAR(evaluate_doc,
"evaluate(g0, g1, n, params, x, y, out)\n\n"
"Mean squared error of groups g0 <= g < g1 on their own data: x, y\n"
"float32 (groups * 16, N); writes out, float32 (groups * 16,).");

static PyObject *
evaluate(PyObject *self, PyObject *args)
{
    Py_ssize_t g0, g1;
    int n;
    Py_buffer v[4];
    if (PyTuple_GET_SIZE(args) != 7) {
        PyErr_SetString(PyExc_TypeError, "evaluate takes 7 arguments");
        return NULL;
    }
    PyObject *head = PyTuple_GetSlice(args, 0, 3);
    int ok = head && PyArg_ParseTuple(head, "nni:evaluate", &g0, &g1, &n);
    Py_XDECREF(head);
    if (!ok || check_cpu() < 0 ||
        get_buffers(args, 3, "fffF", v, evaluate_names) < 0)
        return NULL;
    const Py_ssize_t size = n > 0 && n <= MAX_UNITS ? PARAMS(n) * GROUP : 0;
    const Py_ssize_t groups = size ? length(&v[0]) / size : 0;
    const Py_ssize_t N = groups ? length(&v[1]) / (groups * GROUP) : 0;
    int bad = 0;
    if (size == 0 || groups == 0 || N == 0 || N > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "evaluate: need 1 <= n <= %d, params "
                     "of whole groups (%zd elements each) and at least one "
                     "point per lane; got n=%d, %zd params, %zd x values",
                     MAX_UNITS, size, n, length(&v[0]), length(&v[1]));
        bad = 1;
    }
    const Py_ssize_t expected[4] = {groups * size, groups * GROUP * N,
                                    groups * GROUP * N, groups * GROUP};
    for (int i = 0; !bad && i < 4; i++)
        bad = check_length(v, evaluate_names, i, expected[i]) < 0;
    if (!bad)
        bad = checked_range(groups, g0, g1) < 0;
    if (bad) {
        release_buffers(v, 4);
        return NULL;
    }
    const kernel_set *ks = &kernel_sets[current_set];
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = evaluate_groups(ks, n, (int)N, v[0].buf, v[1].buf, v[2].buf,
                             v[3].buf, g0, g1);
    Py_END_ALLOW_THREADS
    release_buffers(v, 4);
    if (status < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static const char *adam_names[] = {"param", "grad", "m", "v"};

PyDoc_STRVAR(adam_doc,
"adam(param, grad, m, v, beta1, beta2, eps, alpha_t, eta, start, stop)\n\n"
"Chainer's Adam update of elements start <= i < stop, in place, under\n"
"IEEE semantics (subnormals kept).");

static PyObject *
adam(PyObject *self, PyObject *args)
{
    Py_buffer v[4];
    double beta1, beta2, eps, alpha_t, eta;
    Py_ssize_t start, stop;
    if (PyTuple_GET_SIZE(args) != 11) {
        PyErr_SetString(PyExc_TypeError, "adam takes 11 arguments");
        return NULL;
    }
    PyObject *rest = PyTuple_GetSlice(args, 4, 11);
    if (rest == NULL)
        return NULL;
    int ok = PyArg_ParseTuple(rest, "dddddnn:adam", &beta1, &beta2, &eps,
                              &alpha_t, &eta, &start, &stop);
    Py_DECREF(rest);
    if (!ok)
        return NULL;
    if (get_buffers(args, 0, "FfFF", v, adam_names) < 0)
        return NULL;
    Py_ssize_t size = length(&v[0]);
    for (int i = 1; i < 4; i++)
        if (length(&v[i]) != size) {
            PyErr_Format(PyExc_ValueError,
                         "%s has %zd elements, param has %zd",
                         adam_names[i], length(&v[i]), size);
            release_buffers(v, 4);
            return NULL;
        }
    if (start < 0 || stop > size || start > stop) {
        PyErr_Format(PyExc_ValueError,
                     "range [%zd, %zd) is not within [0, %zd)",
                     start, stop, size);
        release_buffers(v, 4);
        return NULL;
    }
    /* As NumPy: each Python float meets float32 arrays as a float32. */
    update_hp h = {(float)(1.0 - beta1), (float)(1.0 - beta2), (float)eps,
                   (float)alpha_t, (float)(-eta)};
    float *p = (float *)v[0].buf + start, *m = (float *)v[2].buf + start,
          *vv = (float *)v[3].buf + start;
    const float *g = (const float *)v[1].buf + start;
    idx n = stop - start;
    Py_BEGIN_ALLOW_THREADS
#ifdef MH_X86
    if (supports(SET_AVX2))  /* the same bits as adam_c */
        adam_avx2(h, p, g, m, vv, n);
    else
#endif
        adam_c(h, p, g, m, vv, n);
    Py_END_ALLOW_THREADS
    release_buffers(v, 4);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(set_kernels_doc,
"set_kernels(name) -> str\n\n"
"Selects the kernel set of the native engine: 'avx512' (AVX-512F),\n"
"'avx2' (AVX2 and FMA) or 'c' (portable C), each only where the CPU runs\n"
"it.  All give the same bits.  Returns the previous selection.");

static PyObject *
set_kernels(PyObject *self, PyObject *arg)
{
    const char *name = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL;
    if (name == NULL) {
        PyErr_Format(PyExc_TypeError, "a kernel set is named by a str, not "
                     "%R", arg);
        return NULL;
    }
    for (int k = 0; k < SET_COUNT; k++) {
        if (strcmp(name, kernel_sets[k].name) != 0)
            continue;
        if (!supports(k)) {
            PyErr_Format(PyExc_ValueError,
                         "this CPU cannot run the %s kernel set; it runs: "
                         "%s", name,
                         supports(SET_AVX512) ? "c, avx2, avx512"
                         : supports(SET_AVX2) ? "c, avx2"
                         : supports(SET_C) ? "c" : "none");
            return NULL;
        }
        const char *previous = kernel_sets[current_set].name;
        current_set = k;
        return PyUnicode_FromString(previous);
    }
    PyErr_Format(PyExc_ValueError,
                 "unknown kernel set %R: choose 'avx512', 'avx2' or 'c'",
                 arg);
    return NULL;
}

static PyObject *
supported_kernels(PyObject *self, PyObject *noargs)
{
    PyObject *result = PyList_New(0);
    for (int k = 0; result != NULL && k < SET_COUNT; k++) {
        if (!supports(k))
            continue;
        PyObject *name = PyUnicode_FromString(kernel_sets[k].name);
        if (name == NULL || PyList_Append(result, name) < 0) {
            Py_XDECREF(name);
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(name);
    }
    return result;
}

static PyObject *
get_kernels(PyObject *self, PyObject *noargs)
{
    if (!supports(current_set))
        Py_RETURN_NONE;
    return PyUnicode_FromString(kernel_sets[current_set].name);
}

static PyObject *
set_flush(PyObject *self, PyObject *arg)
{
    int flag = PyObject_IsTrue(arg);
    if (flag < 0)
        return NULL;
    int previous = flush_subnormals;
    flush_subnormals = flag;
    return PyBool_FromLong(previous);
}

PyDoc_STRVAR(fma_peak_doc,
"fma_peak(rounds) -> int\n\n"
"Runs rounds x 12 vector fused multiply-adds of the kernel set in use, in\n"
"registers, without the GIL; returns the floating-point operations done.");

static PyObject *
fma_peak(PyObject *self, PyObject *arg)
{
    long rounds = PyLong_AsLong(arg);
    if (rounds == -1 && PyErr_Occurred())
        return NULL;
    if (rounds < 1) {
        PyErr_SetString(PyExc_ValueError, "rounds must be positive");
        return NULL;
    }
    if (check_cpu() < 0)
        return NULL;
    const kernel_set *ks = &kernel_sets[current_set];
    float out;
    Py_BEGIN_ALLOW_THREADS
    ks->fma_peak(rounds, &out);
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong((long long)rounds * 12 * ks->lanes * 2);
}

static PyMethodDef methods[] = {
    {"fma_peak", fma_peak, METH_O, fma_peak_doc},
    {"train_epoch", train_epoch, METH_VARARGS, train_epoch_doc},
    {"evaluate", evaluate, METH_VARARGS, evaluate_doc},
    {"adam", adam, METH_VARARGS, adam_doc},
    {"set_kernels", set_kernels, METH_O, set_kernels_doc},
    {"supported_kernels", supported_kernels, METH_NOARGS,
     "supported_kernels() -> list\n\nThe kernel sets this CPU runs, "
     "slowest first."},
    {"get_kernels", get_kernels, METH_NOARGS,
     "get_kernels() -> str or None\n\nThe kernel set in use (None if the "
     "CPU runs none)."},
    {"set_flush_subnormals", set_flush, METH_O,
     "set_flush_subnormals(flag) -> bool\n\nWhether the native engine "
     "flushes subnormals to zero (the default); returns the previous "
     "setting."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native",
    "Compiled kernels of minibatch_hybrid's native engine.", -1, methods};

PyMODINIT_FUNC
PyInit__native(void)
{
#ifdef MH_X86
    __builtin_cpu_init();
#endif
    for (int k = 0; k < SET_COUNT; k++)  /* the fastest there is */
        if (supports(k))
            current_set = k;
    return PyModule_Create(&module);
}
#endif /* MH_NO_PYTHON */
