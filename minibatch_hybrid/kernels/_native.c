/*
 * Compiled kernels of minibatch_hybrid (optional; see kernels/__init__.py
 * and engines/native.py for the Python side and the documentation).
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
 * the same bits: the body's adam_at, which the engines' step uses too.
 * This is the single-model path's update (FusedAdam).
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

#include "_native_layout.h"

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
    void (*adam)(const adam_hp *, float, float *, const float *, float *,
                 float *, idx);  /* a single model's update (python adam) */
} kernel_set;

enum { SET_C, SET_AVX2, SET_AVX512, SET_COUNT };
static const kernel_set kernel_sets[SET_COUNT] = {
    {"c", CL, step_c, sq_error_c, fma_peak_c, adam_span_c},
#ifdef MH_X86
    {"avx2", 8, step_avx2, sq_error_avx2, fma_peak_avx2, adam_span_avx2},
    {"avx512", 16, step_avx512, sq_error_avx512, fma_peak_avx512,
     adam_span_avx512},
#else
    {"avx2", 0, NULL, NULL, NULL, NULL},
    {"avx512", 0, NULL, NULL, NULL, NULL},
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
 * d^2 over all points.  With count and reach (both NULL or neither),
 * also each hidden unit's activity, from the very activations of that
 * forward pass: count[lane * 2n + layer * n + i], the points at which
 * unit i of hidden layer 0 or 1 is positive, and reach[...], the largest
 * such x (-inf where none).  Comparisons only: the same on every set.
 * EVAL_BATCH: _native_layout.h. */

static void
scan_activity(int B, int n, int L, const float *h1, const float *h2,
              const float *x, int32_t *count, float *reach)
{
    for (int layer = 0; layer < 2; layer++) {
        const float *h = layer == 0 ? h1 : h2;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < n; i++)
                for (int l = 0; l < L; l++) {
                    if (!(h[((idx)b * n + i) * L + l] > 0.f))
                        continue;
                    const idx at = (idx)l * 2 * n + (idx)layer * n + i;
                    count[at]++;
                    if (x[b * L + l] > reach[at])
                        reach[at] = x[b * L + l];
                }
    }
}

static int
evaluate_groups(const kernel_set *ks, int n, int N, const float *params,
                const float *X, const float *Y, float *out, int32_t *count,
                float *reach, idx g0, idx g1)
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
            if (count != NULL)
                for (idx j = 0; j < (idx)L * 2 * n; j++) {
                    count[lane * 2 * n + j] = 0;
                    reach[lane * 2 * n + j] = -INFINITY;
                }
            for (int pos = 0; pos < N; pos += EVAL_BATCH) {
                const int Bs = N - pos < EVAL_BATCH ? N - pos : EVAL_BATCH;
                for (int l = 0; l < L; l++)
                    for (int b = 0; b < Bs; b++) {
                        x[b * L + l] = X[(lane + l) * N + pos + b];
                        t[b * L + l] = Y[(lane + l) * N + pos + b];
                    }
                ks->sq_error(Bs, n, P, x, t, h1, h2, d, sum);
                if (count != NULL)
                    scan_activity(Bs, n, L, h1, h2, x,
                                  count + lane * 2 * n, reach + lane * 2 * n);
            }
            for (int l = 0; l < L; l++)
                out[lane + l] = sum[l] / (float)N;
        }
    leave_flush(mode);
    free(scratch);
    return 0;
}

#ifndef MH_NO_PYTHON
/* ------------------------------------------------------------------ */
/* Python interface.                                                   */

/* Every argument of train_epoch, evaluate and adam is passed by keyword
 * and checked before a kernel runs, by the helpers below, each check
 * written once: kernel_args() reads the keywords and converts each value
 * (arrays: element type, C order, writable where written; integers;
 * reals); check_shape(), check_between() and check_range() compare what
 * the arguments make with what the call needs.  Every error names the
 * argument and says what was expected. */

/* A keyword argument of a kernel call. */
typedef struct {
    const char *name;
    /* 'f' float32, 'i' int32, 'd' float64 array, upper case where the
     * kernel writes it; 'n' an integer; 'r' a real number. */
    char kind;
    PyObject *obj;       /* borrowed from the call's keywords */
    Py_buffer view;      /* an array's buffer, once got */
    Py_ssize_t integer;  /* 'n' */
    double real;         /* 'r' */
} kernel_arg;

/* Releases the arrays' buffers (those not got are zeroed: a no-op). */
static void
release_args(kernel_arg *args, int count)
{
    for (int i = 0; i < count; i++)
        PyBuffer_Release(&args[i].view);
}

static const char *
type_name(char kind)
{
    switch (kind | 0x20) {  /* lower case */
    case 'f':
        return "float32";
    case 'i':
        return "int32";
    default:
        return "float64";
    }
}

/* Whether a buffer holds the array kind's elements, in native order. */
static int
has_type(const Py_buffer *view, char kind)
{
    const char *f = view->format ? view->format : "B";
    if (f[0] == '@' || f[0] == '=' || f[0] == (PY_LITTLE_ENDIAN ? '<' : '>'))
        f++;
    switch (kind | 0x20) {
    case 'f':
        return view->itemsize == 4 && strcmp(f, "f") == 0;
    case 'i':  /* NumPy's int32 is 'i', or 'l' where a long has 32 bits */
        return view->itemsize == 4 && (strcmp(f, "i") == 0 ||
                                       strcmp(f, "l") == 0);
    default:
        return view->itemsize == 8 && strcmp(f, "d") == 0;
    }
}

static int
get_array(const char *fn, kernel_arg *a)
{
    const char *type = type_name(a->kind);
    if (PyObject_GetBuffer(a->obj, &a->view, PyBUF_RECORDS_RO) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: %s must be a %s array, not "
                     "%.200s", fn, a->name, type, Py_TYPE(a->obj)->tp_name);
        return -1;
    }
    if (!has_type(&a->view, a->kind)) {
        PyObject *dtype = PyObject_GetAttrString(a->obj, "dtype");
        if (dtype != NULL) {
            PyErr_Format(PyExc_TypeError, "%s: %s must be %s, not %S", fn,
                         a->name, type, dtype);
            Py_DECREF(dtype);
        } else {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s: %s must be %s, not of "
                         "buffer format '%s'", fn, a->name, type,
                         a->view.format ? a->view.format : "B");
        }
        return -1;
    }
    if (!PyBuffer_IsContiguous(&a->view, 'C')) {
        PyErr_Format(PyExc_TypeError, "%s: %s must be a C-contiguous array",
                     fn, a->name);
        return -1;
    }
    if (a->kind >= 'A' && a->kind <= 'Z' && a->view.readonly) {
        PyErr_Format(PyExc_TypeError, "%s: %s must be writable (the kernel "
                     "writes it), not read-only", fn, a->name);
        return -1;
    }
    return 0;
}

static int
get_integer(const char *fn, kernel_arg *a)
{
    PyObject *index = PyNumber_Index(a->obj);
    if (index == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: %s must be an integer, not "
                     "%.200s", fn, a->name, Py_TYPE(a->obj)->tp_name);
        return -1;
    }
    a->integer = PyLong_AsSsize_t(index);
    Py_DECREF(index);
    if (a->integer == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_OverflowError, "%s: %s is out of a Py_ssize_t's "
                     "range", fn, a->name);
        return -1;
    }
    return 0;
}

static int
get_real(const char *fn, kernel_arg *a)
{
    a->real = PyFloat_AsDouble(a->obj);
    if (a->real == -1.0 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_OverflowError, "%s: %s is out of a "
                         "double's range", fn, a->name);
        } else {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s: %s must be a real number, "
                         "not %.200s", fn, a->name,
                         Py_TYPE(a->obj)->tp_name);
        }
        return -1;
    }
    return 0;
}

/* Reads the arguments of fn, every one by keyword and no other, and
 * converts them.  On failure raises an error that names the argument, and
 * releases what it got. */
static int
kernel_args(const char *fn, PyObject *args, PyObject *kwargs,
            kernel_arg *a, int count)
{
    if (PyTuple_GET_SIZE(args) != 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes keyword arguments only, "
                     "got %zd positional", fn, PyTuple_GET_SIZE(args));
        return -1;
    }
    for (int i = 0; i < count; i++) {
        a[i].obj = kwargs ? PyDict_GetItemString(kwargs, a[i].name) : NULL;
        if (a[i].obj == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing keyword argument "
                         "'%s'", fn, a[i].name);
            return -1;
        }
    }
    /* All count names are there: more keywords mean an unknown one. */
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_GET_SIZE(kwargs) > count &&
           PyDict_Next(kwargs, &pos, &key, &value)) {
        int known = 0;
        for (int i = 0; !known && i < count; i++)
            known = PyUnicode_CompareWithASCIIString(key, a[i].name) == 0;
        if (!known) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword "
                         "argument %R", fn, key);
            return -1;
        }
    }
    for (int i = 0; i < count; i++) {
        const int status = a[i].kind == 'n' ? get_integer(fn, &a[i])
                           : a[i].kind == 'r' ? get_real(fn, &a[i])
                           : get_array(fn, &a[i]);
        if (status < 0) {
            release_args(a, count);
            return -1;
        }
    }
    return 0;
}

/* Room for a shape of up to SHAPE_DIMS extents of 20 digits. */
#define SHAPE_DIMS 6
#define SHAPE_TEXT 200

/* Writes a shape as Python writes a tuple: "()", "(3,)", "(2, 16)"; a
 * negative extent is one the caller leaves free, written as free. */
static const char *
shape_text(char *text, int ndim, const Py_ssize_t *shape, const char *free)
{
    if (free == NULL)
        free = "any";
    if (ndim > SHAPE_DIMS) {
        snprintf(text, SHAPE_TEXT, "(%d dimensions)", ndim);
        return text;
    }
    size_t used = 1;
    text[0] = '(';
    for (int i = 0; i < ndim; i++) {
        const char *sep = i ? ", " : "";
        int w = shape[i] < 0
                    ? snprintf(text + used, SHAPE_TEXT - used, "%s%.20s",
                               sep, free)
                    : snprintf(text + used, SHAPE_TEXT - used, "%s%zd",
                               sep, shape[i]);
        used += w > 0 ? (size_t)w : 0;
    }
    snprintf(text + used, SHAPE_TEXT - used, ndim == 1 ? ",)" : ")");
    return text;
}

/* Checks that array a has the shape given; a negative extent is free,
 * named free in the message.  note, if not NULL, says what the shape is
 * made of. */
static int
check_shape(const char *fn, const kernel_arg *a, int ndim,
            const Py_ssize_t *shape, const char *free, const char *note)
{
    int same = a->view.ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = shape[i] < 0 || a->view.shape[i] == shape[i];
    if (same)
        return 0;
    char got[SHAPE_TEXT], expected[SHAPE_TEXT];
    PyErr_Format(PyExc_ValueError, "%s: %s has shape %s; expected %s%s%s%s",
                 fn, a->name,
                 shape_text(got, a->view.ndim, a->view.shape, free),
                 shape_text(expected, ndim, shape, free), note ? " (" : "",
                 note ? note : "", note ? ")" : "");
    return -1;
}

/* Checks lo <= value <= hi, value being the argument or quantity named;
 * why, if not NULL, says where hi comes from. */
static int
check_between(const char *fn, const char *name, Py_ssize_t value,
              Py_ssize_t lo, Py_ssize_t hi, const char *why)
{
    if (lo <= value && value <= hi)
        return 0;
    PyErr_Format(PyExc_ValueError, "%s: need %zd <= %s <= %zd%s%s%s; got "
                 "%s=%zd", fn, lo, name, hi, why ? " (" : "",
                 why ? why : "", why ? ")" : "", name, value);
    return -1;
}

/* Checks 0 <= start <= stop <= count: a range of the count things named
 * by of. */
static int
check_range(const char *fn, const kernel_arg *start, const kernel_arg *stop,
            Py_ssize_t count, const char *of)
{
    if (0 <= start->integer && start->integer <= stop->integer &&
        stop->integer <= count)
        return 0;
    PyErr_Format(PyExc_ValueError, "%s: need 0 <= start <= stop <= %zd "
                 "(%s); got start=%zd, stop=%zd", fn, count, of,
                 start->integer, stop->integer);
    return -1;
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

/* The model's arguments, shared by train_epoch and evaluate: checks
 * n_units, params' shape and the group range [start, stop).  Returns the
 * groups there are, or -1. */
static Py_ssize_t
check_model(const char *fn, const kernel_arg *n_units,
            const kernel_arg *params, const kernel_arg *start,
            const kernel_arg *stop)
{
    if (check_between(fn, "n_units", n_units->integer, 1, MAX_UNITS,
                      NULL) < 0)
        return -1;
    const Py_ssize_t n = n_units->integer, shape[3] = {-1, PARAMS(n), GROUP};
    char note[120];
    snprintf(note, sizeof note, "for n_units=%zd: n_units * (n_units + 4) "
             "+ 1 parameters, 16 replicas a group", n);
    if (check_shape(fn, params, 3, shape, "groups", note) < 0)
        return -1;
    const Py_ssize_t groups = params->view.shape[0];
    if (check_range(fn, start, stop, groups, "the groups in params") < 0)
        return -1;
    return groups;
}

/* Checks N, the points of a data set (per replica), for both kernels. */
static int
check_points(const char *fn, Py_ssize_t N)
{
    return check_between(fn, "N", N, 1, INT_MAX, "the points of x");
}

enum {
    E_PARAMS, E_M, E_V, E_X, E_Y, E_ORDER, E_ALPHA_T, E_SUMS, E_N_UNITS,
    E_BATCHSIZE, E_BETA1, E_BETA2, E_EPS, E_ETA, E_START, E_STOP, E_COUNT
};

/* The checks of train_epoch's arguments, beyond each one's type. */
static int
check_epoch(const char *fn, const kernel_arg *a)
{
    const Py_ssize_t groups = check_model(fn, &a[E_N_UNITS], &a[E_PARAMS],
                                          &a[E_START], &a[E_STOP]);
    if (groups < 0)
        return -1;
    const Py_ssize_t free1[1] = {-1};
    if (check_shape(fn, &a[E_M], 3, a[E_PARAMS].view.shape, NULL,
                    "params' shape") < 0 ||
        check_shape(fn, &a[E_V], 3, a[E_PARAMS].view.shape, NULL,
                    "params' shape") < 0 ||
        check_shape(fn, &a[E_X], 1, free1, "N", "the data's inputs") < 0)
        return -1;
    const Py_ssize_t N = a[E_X].view.shape[0], lanes = groups * GROUP;
    const Py_ssize_t n = a[E_N_UNITS].integer, B = a[E_BATCHSIZE].integer;
    /* The scratch of a step, batchsize * n_units * 16 floats, is indexed
     * by an int. */
    const Py_ssize_t most = N < INT_MAX / GROUP / n ? N
                            : INT_MAX / GROUP / n;
    if (check_points(fn, N) < 0 ||
        check_shape(fn, &a[E_Y], 1, &N, NULL, "x's shape") < 0 ||
        check_between(fn, "batchsize", B, 1, most,
                      most == N ? "N, the points of x"
                                : "batchsize * n_units * 16 within an "
                                  "int") < 0)
        return -1;
    const Py_ssize_t order[2] = {lanes, N}, steps = (N + B - 1) / B;
    if (check_shape(fn, &a[E_ORDER], 2, order, NULL, "16 * groups "
                    "replicas, N: each replica's order of x") < 0 ||
        check_shape(fn, &a[E_ALPHA_T], 1, &steps, NULL, "a step size per "
                    "mini-batch: ceil(N / batchsize)") < 0 ||
        check_shape(fn, &a[E_SUMS], 1, &lanes, NULL, "one per replica: 16 "
                    "* groups") < 0)
        return -1;
    /* All of order, for every group range: a bad index fails every part of
     * an epoch split across threads, before any trains. */
    const int32_t *o = a[E_ORDER].view.buf;
    for (Py_ssize_t i = 0; i < lanes * N; i++)
        if (o[i] < 0 || o[i] >= N) {
            PyErr_Format(PyExc_ValueError, "%s: order holds index %d, out "
                         "of range for N=%zd points (need 0 <= index < N)",
                         fn, (int)o[i], N);
            return -1;
        }
    return 0;
}

PyDoc_STRVAR(train_epoch_doc,
"train_epoch($module, /, *, params, m, v, x, y, order, alpha_t, sums,\n"
"            n_units, batchsize, beta1, beta2, eps, eta, start, stop)\n"
"--\n\n"
"Trains groups start <= g < stop of an ensemble for one epoch, in place.\n"
"\n"
"Every argument is passed by keyword; each is checked before any\n"
"training (ValueError or TypeError naming the argument).\n"
"params, m, v: float32 (groups, P, 16), P = n_units * n_units +\n"
"4 * n_units + 1, the weights and Adam's moments, 16 replicas a group,\n"
"written.  x, y: float32 (N,), the data.  order: int32 (groups * 16, N),\n"
"each replica's order of the epoch.  alpha_t: float32\n"
"(ceil(N / batchsize),), Adam's step size of each step.  sums: float64\n"
"(groups * 16,), written: each replica's sum of loss * len(batch).\n"
"n_units: 1 to 8192.  batchsize: 1 to N; the last batch is smaller if\n"
"it does not divide N.  beta1, beta2, eps, eta: Adam's hyperparameters.\n"
"start, stop: the groups to train, 0 <= start <= stop <= groups.");

static PyObject *
train_epoch(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static const char fn[] = "train_epoch";
    kernel_arg a[E_COUNT] = {
        [E_PARAMS] = {"params", 'F'}, [E_M] = {"m", 'F'},
        [E_V] = {"v", 'F'}, [E_X] = {"x", 'f'}, [E_Y] = {"y", 'f'},
        [E_ORDER] = {"order", 'i'}, [E_ALPHA_T] = {"alpha_t", 'f'},
        [E_SUMS] = {"sums", 'D'}, [E_N_UNITS] = {"n_units", 'n'},
        [E_BATCHSIZE] = {"batchsize", 'n'}, [E_BETA1] = {"beta1", 'r'},
        [E_BETA2] = {"beta2", 'r'}, [E_EPS] = {"eps", 'r'},
        [E_ETA] = {"eta", 'r'}, [E_START] = {"start", 'n'},
        [E_STOP] = {"stop", 'n'}};
    if (check_cpu() < 0 || kernel_args(fn, args, kwargs, a, E_COUNT) < 0)
        return NULL;
    if (check_epoch(fn, a) < 0) {
        release_args(a, E_COUNT);
        return NULL;
    }
    epoch_args e = {
        (int)a[E_N_UNITS].integer, (int)a[E_BATCHSIZE].integer,
        (int)a[E_X].view.shape[0], a[E_PARAMS].view.buf, a[E_M].view.buf,
        a[E_V].view.buf, a[E_X].view.buf, a[E_Y].view.buf,
        a[E_ALPHA_T].view.buf, a[E_ORDER].view.buf,
        {(float)(1.0 - a[E_BETA1].real), (float)(1.0 - a[E_BETA2].real),
         (float)a[E_EPS].real, (float)(-a[E_ETA].real)},
        a[E_SUMS].view.buf};
    const kernel_set *ks = &kernel_sets[current_set];
    const idx g0 = a[E_START].integer, g1 = a[E_STOP].integer;
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = train_groups(ks, &e, g0, g1);
    Py_END_ALLOW_THREADS
    release_args(a, E_COUNT);
    if (status < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

enum { V_PARAMS, V_X, V_Y, V_OUT, V_N_UNITS, V_START, V_STOP, V_COUNT };

/* The checks of evaluate's arguments, beyond each one's type. */
static int
check_evaluate(const char *fn, const kernel_arg *a)
{
    const Py_ssize_t groups = check_model(fn, &a[V_N_UNITS], &a[V_PARAMS],
                                          &a[V_START], &a[V_STOP]);
    if (groups < 0)
        return -1;
    const Py_ssize_t lanes = groups * GROUP, data[2] = {lanes, -1};
    if (check_shape(fn, &a[V_X], 2, data, "N", "16 * groups replicas, "
                    "N: each replica's inputs") < 0 ||
        check_points(fn, a[V_X].view.shape[1]) < 0 ||
        check_shape(fn, &a[V_Y], 2, a[V_X].view.shape, NULL,
                    "x's shape") < 0 ||
        check_shape(fn, &a[V_OUT], 1, &lanes, NULL, "one per replica: 16 "
                    "* groups") < 0)
        return -1;
    return 0;
}

PyDoc_STRVAR(evaluate_doc,
"evaluate($module, /, *, params, x, y, out, n_units, start, stop)\n"
"--\n\n"
"Mean squared error of groups start <= g < stop on their own data.\n"
"\n"
"Every argument is passed by keyword and checked (ValueError or\n"
"TypeError naming the argument).  params: float32 (groups, P, 16), as\n"
"train_epoch's.  x, y: float32 (groups * 16, N), each replica's data.\n"
"out: float32 (groups * 16,), written.  n_units: 1 to 8192.  start,\n"
"stop: the groups to evaluate, 0 <= start <= stop <= groups.");

/* activity takes evaluate's arguments and two more outputs. */
enum { H_COUNTS = V_COUNT, H_REACH, H_COUNT };

/* evaluate (V_COUNT arguments) or activity (H_COUNT), named fn. */
static PyObject *
evaluate_call(const char *fn, int count, PyObject *args, PyObject *kwargs)
{
    kernel_arg a[H_COUNT] = {
        [V_PARAMS] = {"params", 'f'}, [V_X] = {"x", 'f'},
        [V_Y] = {"y", 'f'}, [V_OUT] = {"out", 'F'},
        [V_N_UNITS] = {"n_units", 'n'}, [V_START] = {"start", 'n'},
        [V_STOP] = {"stop", 'n'}, [H_COUNTS] = {"counts", 'I'},
        [H_REACH] = {"reach", 'F'}};
    if (check_cpu() < 0 || kernel_args(fn, args, kwargs, a, count) < 0)
        return NULL;
    int bad = check_evaluate(fn, a) < 0;
    if (!bad && count == H_COUNT) {
        const Py_ssize_t units[3] = {a[V_OUT].view.shape[0], 2,
                                     a[V_N_UNITS].integer};
        bad = check_shape(fn, &a[H_COUNTS], 3, units, NULL,
                          "(16 * groups, 2, n_units)") < 0 ||
              check_shape(fn, &a[H_REACH], 3, units, NULL,
                          "(16 * groups, 2, n_units)") < 0;
    }
    if (bad) {
        release_args(a, count);
        return NULL;
    }
    const kernel_set *ks = &kernel_sets[current_set];
    const int n = (int)a[V_N_UNITS].integer, N = (int)a[V_X].view.shape[1];
    const idx g0 = a[V_START].integer, g1 = a[V_STOP].integer;
    int32_t *counts = count == H_COUNT ? a[H_COUNTS].view.buf : NULL;
    float *reach = count == H_COUNT ? a[H_REACH].view.buf : NULL;
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = evaluate_groups(ks, n, N, a[V_PARAMS].view.buf,
                             a[V_X].view.buf, a[V_Y].view.buf,
                             a[V_OUT].view.buf, counts, reach, g0, g1);
    Py_END_ALLOW_THREADS
    release_args(a, count);
    if (status < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *
evaluate(PyObject *self, PyObject *args, PyObject *kwargs)
{
    return evaluate_call("evaluate", V_COUNT, args, kwargs);
}

PyDoc_STRVAR(activity_doc,
"activity($module, /, *, params, x, y, out, n_units, start, stop, counts,\n"
"         reach)\n"
"--\n\n"
"evaluate, and each hidden unit's activity in that very forward pass.\n"
"\n"
"The arguments of evaluate, and: counts, int32 (groups * 16, 2, n_units),\n"
"written: the points at which each unit of hidden layer 1 and 2 is\n"
"positive; reach, float32 of the same shape, written: the largest such x\n"
"(-inf for a unit never active).  Comparisons of the forward's values\n"
"only, so the same on every kernel set.");

static PyObject *
activity(PyObject *self, PyObject *args, PyObject *kwargs)
{
    return evaluate_call("activity", H_COUNT, args, kwargs);
}

enum {
    A_PARAM, A_GRAD, A_M, A_V, A_ALPHA_T, A_BETA1, A_BETA2, A_EPS, A_ETA,
    A_START, A_STOP, A_COUNT
};

PyDoc_STRVAR(adam_doc,
"adam($module, /, *, param, grad, m, v, alpha_t, beta1, beta2, eps, eta,\n"
"     start, stop)\n"
"--\n\n"
"Chainer's Adam update of elements start <= i < stop, in place, under\n"
"IEEE semantics (subnormals kept), by the kernel set in use (every set\n"
"gives the same bits).  Returns the name of the kernel set that ran.\n"
"\n"
"Every argument is passed by keyword and checked (ValueError or\n"
"TypeError naming the argument).  param, m, v (written) and grad:\n"
"C-contiguous float32 arrays of one shape.  alpha_t, beta1, beta2, eps,\n"
"eta: Adam's step size and hyperparameters.  start, stop: a range of\n"
"the flattened elements, 0 <= start <= stop <= param.size.");

static PyObject *
adam(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static const char fn[] = "adam";
    kernel_arg a[A_COUNT] = {
        [A_PARAM] = {"param", 'F'}, [A_GRAD] = {"grad", 'f'},
        [A_M] = {"m", 'F'}, [A_V] = {"v", 'F'},
        [A_ALPHA_T] = {"alpha_t", 'r'}, [A_BETA1] = {"beta1", 'r'},
        [A_BETA2] = {"beta2", 'r'}, [A_EPS] = {"eps", 'r'},
        [A_ETA] = {"eta", 'r'}, [A_START] = {"start", 'n'},
        [A_STOP] = {"stop", 'n'}};
    if (check_cpu() < 0 || kernel_args(fn, args, kwargs, a, A_COUNT) < 0)
        return NULL;
    const Py_buffer *param = &a[A_PARAM].view;
    for (int i = A_GRAD; i <= A_V; i++)
        if (check_shape(fn, &a[i], param->ndim, param->shape, NULL,
                        "param's shape") < 0) {
            release_args(a, A_COUNT);
            return NULL;
        }
    if (check_range(fn, &a[A_START], &a[A_STOP],
                    param->len / param->itemsize,
                    "the elements of param") < 0) {
        release_args(a, A_COUNT);
        return NULL;
    }
    /* As NumPy: each Python float meets float32 arrays as a float32. */
    const adam_hp h = {(float)(1.0 - a[A_BETA1].real),
                       (float)(1.0 - a[A_BETA2].real), (float)a[A_EPS].real,
                       (float)(-a[A_ETA].real)};
    const float alpha_t = (float)a[A_ALPHA_T].real;
    const idx start = a[A_START].integer;
    float *p = (float *)a[A_PARAM].view.buf + start;
    float *m = (float *)a[A_M].view.buf + start;
    float *v = (float *)a[A_V].view.buf + start;
    const float *g = (const float *)a[A_GRAD].view.buf + start;
    const idx n = a[A_STOP].integer - start;
    const kernel_set *ks = &kernel_sets[current_set];
    Py_BEGIN_ALLOW_THREADS
    ks->adam(&h, alpha_t, p, g, m, v, n);
    Py_END_ALLOW_THREADS
    release_args(a, A_COUNT);
    return PyUnicode_FromString(ks->name);
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
    {"train_epoch", (PyCFunction)(void (*)(void))train_epoch,
     METH_VARARGS | METH_KEYWORDS, train_epoch_doc},
    {"evaluate", (PyCFunction)(void (*)(void))evaluate,
     METH_VARARGS | METH_KEYWORDS, evaluate_doc},
    {"activity", (PyCFunction)(void (*)(void))activity,
     METH_VARARGS | METH_KEYWORDS, activity_doc},
    {"adam", (PyCFunction)(void (*)(void))adam, METH_VARARGS | METH_KEYWORDS,
     adam_doc},
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
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && (
            PyModule_AddIntConstant(m, "MAX_UNITS", MAX_UNITS) < 0 ||
            PyModule_AddIntConstant(m, "GROUP", GROUP) < 0 ||
            PyModule_AddIntConstant(m, "EVAL_BATCH", EVAL_BATCH) < 0))
        Py_CLEAR(m);
    return m;
}
#endif /* MH_NO_PYTHON */
