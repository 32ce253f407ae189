/*
 * Compiled kernels of the ensemble's training step (optional; see
 * minibatch_hybrid/native.py for the Python side and the documentation).
 *
 * mlp_forward / mlp_backward: the post's network, Linear(1, n) -> ReLU ->
 *     Linear(n, n) -> ReLU -> Linear(n, 1) with a mean squared error, for
 *     replicas k0 <= k < k1 of an ensemble whose parameters are stacked as
 *     in minibatch_hybrid.ensemble.Ensemble (Chainer's layout: W is
 *     (out, in)).  Each replica's numbers depend on that replica's inputs
 *     only.  The n x n products are register-blocked with AVX-512 or
 *     AVX2/FMA where the CPU has them (portable C elsewhere), summing in
 *     their own order, so results equal NumPy's to float32 rounding, not
 *     bit for bit.
 * adam: Chainer's Adam update (no AMSGrad, AdaBound or weight decay) of
 *     elements start <= i < stop, one pass, the very float32 operations of
 *     chainer.optimizers.Adam in the same order, so the same bits.  The
 *     module is compiled with -ffp-contract=off so that no multiply-add is
 *     fused behind our back.
 *
 * All arrays are C-contiguous float32 buffers.  The GIL is released while
 * a kernel runs, so Python threads can run disjoint ranges in parallel.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
#define MH_X86 1
#include <immintrin.h>
#endif

typedef ptrdiff_t idx;

/* ------------------------------------------------------------------ */
/* Small matrix products, portable C.                                  */

/* out[r, j] = sum_s a[r*ar + s*as] * m[s*ldm + j]
 * for r < rows, j < cols, s < depth. */
static void
axpy_c(int rows, int cols, int depth, const float *a, idx ar, idx as,
       const float *m, idx ldm, float *out, idx ldo)
{
    for (int r = 0; r < rows; r++) {
        float *o = out + r * ldo;
        for (int j = 0; j < cols; j++)
            o[j] = 0.f;
        for (int s = 0; s < depth; s++) {
            float c = a[r * ar + s * as];
            const float *row = m + s * ldm;
            for (int j = 0; j < cols; j++)
                o[j] += c * row[j];
        }
    }
}

/* out[r, c] = sum_i a[r*lda + i] * w[c*ldw + i]
 * for r < rows, c < cols, i < depth. */
static void
dot_c(int rows, int cols, int depth, const float *a, idx lda,
      const float *w, idx ldw, float *out, idx ldo)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            const float *x = a + r * lda, *y = w + c * ldw;
            float acc = 0.f;
            for (int i = 0; i < depth; i++)
                acc += x[i] * y[i];
            out[r * ldo + c] = acc;
        }
}

/* ------------------------------------------------------------------ */
/* The same products with AVX2 and FMA, in register blocks.            */

#ifdef MH_X86
#define MH_AVX2 __attribute__((target("avx2,fma")))

MH_AVX2 static __m256i
tail_mask(int n)
{
    /* lanes 0 .. n-1 on, for 0 < n < 8 */
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lanes);
}

#define ROWS 5 /* rows per register block: 5 x 2 accumulators */

/* Points ap[0 .. ROWS) at rows r0, r0 + 1, ... of `a` (rows `stride`
 * apart); past its last row a block repeats that row, so every block runs
 * the same code.  Returns how many rows are real (to be stored). */
static inline int
block_rows(const float *a, idx stride, int r0, int rows, const float **ap)
{
    int nr = rows - r0 < ROWS ? rows - r0 : ROWS;
    for (int q = 0; q < ROWS; q++)
        ap[q] = a + (r0 + (q < nr ? q : nr - 1)) * stride;
    return nr;
}

/* As axpy_c.  Blocks of ROWS rows (see block_rows) and 16 columns. */
MH_AVX2 static void
axpy_avx2(int rows, int cols, int depth, const float *a, idx ar, idx as,
          const float *m, idx ldm, float *out, idx ldo)
{
    const int tail = cols % 8;
    const __m256i mask = tail_mask(tail ? tail : 1);
    for (int r0 = 0; r0 < rows; r0 += ROWS) {
        const float *ap[ROWS];
        const int nr = block_rows(a, ar, r0, rows, ap);
        int j = 0;
        for (; j + 16 <= cols; j += 16) {
            __m256 acc[ROWS][2];
            for (int q = 0; q < ROWS; q++)
                acc[q][0] = acc[q][1] = _mm256_setzero_ps();
            for (int s = 0; s < depth; s++) {
                const float *row = m + s * ldm + j;
                __m256 m0 = _mm256_loadu_ps(row);
                __m256 m1 = _mm256_loadu_ps(row + 8);
                for (int q = 0; q < ROWS; q++) {
                    __m256 c = _mm256_broadcast_ss(ap[q] + s * as);
                    acc[q][0] = _mm256_fmadd_ps(c, m0, acc[q][0]);
                    acc[q][1] = _mm256_fmadd_ps(c, m1, acc[q][1]);
                }
            }
            for (int q = 0; q < nr; q++) {
                float *o = out + (r0 + q) * ldo + j;
                _mm256_storeu_ps(o, acc[q][0]);
                _mm256_storeu_ps(o + 8, acc[q][1]);
            }
        }
        for (; j < cols; j += 8) {
            int full = j + 8 <= cols;
            __m256 acc[ROWS];
            for (int q = 0; q < ROWS; q++)
                acc[q] = _mm256_setzero_ps();
            for (int s = 0; s < depth; s++) {
                const float *row = m + s * ldm + j;
                __m256 m0 = full ? _mm256_loadu_ps(row)
                                 : _mm256_maskload_ps(row, mask);
                for (int q = 0; q < ROWS; q++)
                    acc[q] = _mm256_fmadd_ps(
                        _mm256_broadcast_ss(ap[q] + s * as), m0, acc[q]);
            }
            for (int q = 0; q < nr; q++) {
                float *o = out + (r0 + q) * ldo + j;
                if (full)
                    _mm256_storeu_ps(o, acc[q]);
                else
                    _mm256_maskstore_ps(o, mask, acc[q]);
            }
        }
    }
}

MH_AVX2 static float
hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v),
                          _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* As dot_c.  Blocks of ROWS rows and 2 columns; repeats as axpy_avx2. */
MH_AVX2 static void
dot_avx2(int rows, int cols, int depth, const float *a, idx lda,
         const float *w, idx ldw, float *out, idx ldo)
{
    const int tail = depth % 8, body = depth - tail;
    const __m256i mask = tail_mask(tail ? tail : 1);
    for (int r0 = 0; r0 < rows; r0 += ROWS) {
        const float *ap[ROWS];
        const int nr = block_rows(a, lda, r0, rows, ap);
        for (int c0 = 0; c0 < cols; c0 += 2) {
            int nc = cols - c0 < 2 ? cols - c0 : 2;
            const float *w0 = w + c0 * ldw, *w1 = w + (c0 + nc - 1) * ldw;
            __m256 acc[ROWS][2];
            for (int q = 0; q < ROWS; q++)
                acc[q][0] = acc[q][1] = _mm256_setzero_ps();
            for (int i = 0; i < body; i += 8) {
                __m256 x0 = _mm256_loadu_ps(w0 + i);
                __m256 x1 = _mm256_loadu_ps(w1 + i);
                for (int q = 0; q < ROWS; q++) {
                    __m256 y = _mm256_loadu_ps(ap[q] + i);
                    acc[q][0] = _mm256_fmadd_ps(y, x0, acc[q][0]);
                    acc[q][1] = _mm256_fmadd_ps(y, x1, acc[q][1]);
                }
            }
            if (tail) {
                __m256 x0 = _mm256_maskload_ps(w0 + body, mask);
                __m256 x1 = _mm256_maskload_ps(w1 + body, mask);
                for (int q = 0; q < ROWS; q++) {
                    __m256 y = _mm256_maskload_ps(ap[q] + body, mask);
                    acc[q][0] = _mm256_fmadd_ps(y, x0, acc[q][0]);
                    acc[q][1] = _mm256_fmadd_ps(y, x1, acc[q][1]);
                }
            }
            for (int q = 0; q < nr; q++)
                for (int c = 0; c < nc; c++)
                    out[(r0 + q) * ldo + c0 + c] = hsum(acc[q][c]);
        }
    }
}

/* The same products with AVX-512: 16 lanes, tails by mask registers. */
#define MH_AVX512 __attribute__((target("avx512f,avx2,fma")))

MH_AVX512 static void
axpy_avx512(int rows, int cols, int depth, const float *a, idx ar, idx as,
            const float *m, idx ldm, float *out, idx ldo)
{
    for (int r0 = 0; r0 < rows; r0 += ROWS) {
        const float *ap[ROWS];
        const int nr = block_rows(a, ar, r0, rows, ap);
        int j = 0;
        for (; j + 32 <= cols; j += 32) {
            __m512 acc[ROWS][2];
            for (int q = 0; q < ROWS; q++)
                acc[q][0] = acc[q][1] = _mm512_setzero_ps();
            for (int s = 0; s < depth; s++) {
                const float *row = m + s * ldm + j;
                __m512 m0 = _mm512_loadu_ps(row);
                __m512 m1 = _mm512_loadu_ps(row + 16);
                for (int q = 0; q < ROWS; q++) {
                    __m512 c = _mm512_set1_ps(ap[q][s * as]);
                    acc[q][0] = _mm512_fmadd_ps(c, m0, acc[q][0]);
                    acc[q][1] = _mm512_fmadd_ps(c, m1, acc[q][1]);
                }
            }
            for (int q = 0; q < nr; q++) {
                float *o = out + (r0 + q) * ldo + j;
                _mm512_storeu_ps(o, acc[q][0]);
                _mm512_storeu_ps(o + 16, acc[q][1]);
            }
        }
        for (; j < cols; j += 16) {
            int left = cols - j;
            __mmask16 mask = left >= 16 ? 0xFFFF
                                        : (__mmask16)((1u << left) - 1);
            __m512 acc[ROWS];
            for (int q = 0; q < ROWS; q++)
                acc[q] = _mm512_setzero_ps();
            for (int s = 0; s < depth; s++) {
                __m512 m0 = _mm512_maskz_loadu_ps(mask, m + s * ldm + j);
                for (int q = 0; q < ROWS; q++)
                    acc[q] = _mm512_fmadd_ps(_mm512_set1_ps(ap[q][s * as]),
                                             m0, acc[q]);
            }
            for (int q = 0; q < nr; q++)
                _mm512_mask_storeu_ps(out + (r0 + q) * ldo + j, mask,
                                      acc[q]);
        }
    }
}

MH_AVX512 static void
dot_avx512(int rows, int cols, int depth, const float *a, idx lda,
           const float *w, idx ldw, float *out, idx ldo)
{
    const int tail = depth % 16, body = depth - tail;
    const __mmask16 mask = (__mmask16)((1u << tail) - 1);
    for (int r0 = 0; r0 < rows; r0 += ROWS) {
        const float *ap[ROWS];
        const int nr = block_rows(a, lda, r0, rows, ap);
        for (int c0 = 0; c0 < cols; c0 += 2) {
            int nc = cols - c0 < 2 ? cols - c0 : 2;
            const float *w0 = w + c0 * ldw, *w1 = w + (c0 + nc - 1) * ldw;
            __m512 acc[ROWS][2];
            for (int q = 0; q < ROWS; q++)
                acc[q][0] = acc[q][1] = _mm512_setzero_ps();
            for (int i = 0; i < body; i += 16) {
                __m512 x0 = _mm512_loadu_ps(w0 + i);
                __m512 x1 = _mm512_loadu_ps(w1 + i);
                for (int q = 0; q < ROWS; q++) {
                    __m512 y = _mm512_loadu_ps(ap[q] + i);
                    acc[q][0] = _mm512_fmadd_ps(y, x0, acc[q][0]);
                    acc[q][1] = _mm512_fmadd_ps(y, x1, acc[q][1]);
                }
            }
            if (tail) {
                __m512 x0 = _mm512_maskz_loadu_ps(mask, w0 + body);
                __m512 x1 = _mm512_maskz_loadu_ps(mask, w1 + body);
                for (int q = 0; q < ROWS; q++) {
                    __m512 y = _mm512_maskz_loadu_ps(mask, ap[q] + body);
                    acc[q][0] = _mm512_fmadd_ps(y, x0, acc[q][0]);
                    acc[q][1] = _mm512_fmadd_ps(y, x1, acc[q][1]);
                }
            }
            for (int q = 0; q < nr; q++)
                for (int c = 0; c < nc; c++)
                    out[(r0 + q) * ldo + c0 + c] =
                        _mm512_reduce_add_ps(acc[q][c]);
        }
    }
}
#endif /* MH_X86 */

/* The kernel sets, and the one in use. */
enum { ISA_C, ISA_AVX2, ISA_AVX512, ISA_COUNT };
static const char *isa_names[ISA_COUNT] = {"c", "avx2", "avx512"};
static int current_isa = ISA_C;

/* ------------------------------------------------------------------ */
/* One replica's forward and backward pass.                            */
/* Written once, inlined into one copy per kernel set (below): the      */
/* constant `isa` picks the products, and the compiler vectorises the   */
/* elementwise loops for each target.                                  */

#define INLINE static inline __attribute__((always_inline))

typedef struct {
    int batch, n;
} shape;

INLINE void
axpy(int isa, int rows, int cols, int depth, const float *a, idx ar,
     idx as, const float *m, idx ldm, float *out, idx ldo)
{
#ifdef MH_X86
    if (isa == ISA_AVX512) {
        axpy_avx512(rows, cols, depth, a, ar, as, m, ldm, out, ldo);
        return;
    }
    if (isa == ISA_AVX2) {
        axpy_avx2(rows, cols, depth, a, ar, as, m, ldm, out, ldo);
        return;
    }
#endif
    axpy_c(rows, cols, depth, a, ar, as, m, ldm, out, ldo);
}

INLINE void
dot(int isa, int rows, int cols, int depth, const float *a, idx lda,
    const float *w, idx ldw, float *out, idx ldo)
{
#ifdef MH_X86
    if (isa == ISA_AVX512) {
        dot_avx512(rows, cols, depth, a, lda, w, ldw, out, ldo);
        return;
    }
    if (isa == ISA_AVX2) {
        dot_avx2(rows, cols, depth, a, lda, w, ldw, out, ldo);
        return;
    }
#endif
    dot_c(rows, cols, depth, a, lda, w, ldw, out, ldo);
}

/* h1 = relu(x W1^T + b1), h2 = relu(h1 W2^T + b2), diff = h2 W3^T + b3 - t;
 * returns the mean of diff^2. */
INLINE float
forward_one(int isa, shape s, const float *restrict x,
            const float *restrict t, const float *restrict W1,
            const float *restrict b1, const float *restrict W2,
            const float *restrict b2, const float *restrict W3,
            const float *restrict b3, float *restrict h1,
            float *restrict h2, float *restrict diff)
{
    const int B = s.batch, n = s.n;
    for (int b = 0; b < B; b++) {
        float *restrict h = h1 + (idx)b * n;
        const float xb = x[b];
        for (int i = 0; i < n; i++) {
            float z = xb * W1[i];
            z += b1[i];
            h[i] = z > 0.f ? z : 0.f;
        }
    }
    dot(isa, B, n, n, h1, n, W2, n, h2, n);
    for (int b = 0; b < B; b++) {
        float *restrict h = h2 + (idx)b * n;
        for (int o = 0; o < n; o++) {
            float z = h[o] + b2[o];
            h[o] = z > 0.f ? z : 0.f;
        }
    }
    dot(isa, B, 1, n, h2, n, W3, n, diff, 1);
    float sum = 0.f;
    for (int b = 0; b < B; b++) {
        float y = diff[b] + b3[0];
        diff[b] = y - t[b];
        sum += diff[b] * diff[b];
    }
    return sum / (float)B;
}

/* Gradients of gloss * loss; g1, g2 are (B, n) scratch. */
INLINE void
backward_one(int isa, shape s, float gloss, const float *restrict x,
             const float *restrict W2, const float *restrict W3,
             const float *restrict h1, const float *restrict h2,
             const float *restrict diff, float *restrict g1,
             float *restrict g2, float *restrict gW1, float *restrict gb1,
             float *restrict gW2, float *restrict gb2, float *restrict gW3,
             float *restrict gb3)
{
    const int B = s.batch, n = s.n;
    const float scale = 2.0f / (float)B;
    float sum = 0.f;
    for (int i = 0; i < n; i++)
        gW3[i] = gb2[i] = 0.f;
    for (int b = 0; b < B; b++) {
        float gy = gloss * diff[b];
        gy *= scale;
        sum += gy;
        const float *restrict h = h2 + (idx)b * n;
        float *restrict g = g2 + (idx)b * n;
        for (int o = 0; o < n; o++) {
            float v = gy * W3[o];
            g[o] = h[o] > 0.f ? v : 0.f;
            gW3[o] += gy * h[o];
            gb2[o] += g[o];
        }
    }
    gb3[0] = sum;
    /* gW2[o, i] = sum_b g2[b, o] h1[b, i];  g1[b, i] = sum_o g2[b, o] W2[o, i] */
    axpy(isa, n, n, B, g2, 1, n, h1, n, gW2, n);
    axpy(isa, B, n, n, g2, n, 1, W2, n, g1, n);
    for (int i = 0; i < n; i++)
        gW1[i] = gb1[i] = 0.f;
    for (int b = 0; b < B; b++) {
        const float *restrict h = h1 + (idx)b * n;
        const float *restrict g = g1 + (idx)b * n;
        const float xb = x[b];
        for (int i = 0; i < n; i++) {
            float v = h[i] > 0.f ? g[i] : 0.f;
            gW1[i] += v * xb;
            gb1[i] += v;
        }
    }
}

/* The arrays of an ensemble; forward uses the first twelve. */
typedef struct {
    const float *x, *t, *W1, *b1, *W2, *b2, *W3, *b3;
    float *h1, *h2, *diff, *loss;
    const float *gloss;
    float *g1, *g2, *gW1, *gb1, *gW2, *gb2, *gW3, *gb3;
} arrays;

INLINE void
forward_range(int isa, shape s, const arrays *a, idx k0, idx k1)
{
    const idx B = s.batch, n = s.n;
    for (idx k = k0; k < k1; k++)
        a->loss[k] = forward_one(
            isa, s, a->x + k * B, a->t + k * B, a->W1 + k * n,
            a->b1 + k * n, a->W2 + k * n * n, a->b2 + k * n, a->W3 + k * n,
            a->b3 + k, a->h1 + k * B * n, a->h2 + k * B * n,
            a->diff + k * B);
}

INLINE void
backward_range(int isa, shape s, const arrays *a, idx k0, idx k1)
{
    const idx B = s.batch, n = s.n;
    for (idx k = k0; k < k1; k++)
        backward_one(
            isa, s, a->gloss[k], a->x + k * B, a->W2 + k * n * n,
            a->W3 + k * n, a->h1 + k * B * n, a->h2 + k * B * n,
            a->diff + k * B, a->g1 + k * B * n, a->g2 + k * B * n,
            a->gW1 + k * n, a->gb1 + k * n, a->gW2 + k * n * n,
            a->gb2 + k * n, a->gW3 + k * n, a->gb3 + k);
}

static void
forward_c(shape s, const arrays *a, idx k0, idx k1)
{
    forward_range(ISA_C, s, a, k0, k1);
}

static void
backward_c(shape s, const arrays *a, idx k0, idx k1)
{
    backward_range(ISA_C, s, a, k0, k1);
}

#ifdef MH_X86
MH_AVX2 static void
forward_avx2(shape s, const arrays *a, idx k0, idx k1)
{
    forward_range(ISA_AVX2, s, a, k0, k1);
}

MH_AVX2 static void
backward_avx2(shape s, const arrays *a, idx k0, idx k1)
{
    backward_range(ISA_AVX2, s, a, k0, k1);
}

MH_AVX512 static void
forward_avx512(shape s, const arrays *a, idx k0, idx k1)
{
    forward_range(ISA_AVX512, s, a, k0, k1);
}

MH_AVX512 static void
backward_avx512(shape s, const arrays *a, idx k0, idx k1)
{
    backward_range(ISA_AVX512, s, a, k0, k1);
}
#endif

typedef void (*pass)(shape, const arrays *, idx, idx);

#ifdef MH_X86
static const pass forward_passes[ISA_COUNT] = {forward_c, forward_avx2,
                                               forward_avx512};
static const pass backward_passes[ISA_COUNT] = {backward_c, backward_avx2,
                                                backward_avx512};
#else
static const pass forward_passes[ISA_COUNT] = {forward_c, forward_c,
                                               forward_c};
static const pass backward_passes[ISA_COUNT] = {backward_c, backward_c,
                                                backward_c};
#endif

/* ------------------------------------------------------------------ */
/* Adam, Chainer's operations in Chainer's order.                      */

typedef struct {
    float one_minus_beta1, one_minus_beta2, eps, alpha_t, neg_eta;
} adam_hp;

static void
adam_c(adam_hp h, float *p, const float *g, float *m, float *v, idx n)
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
MH_AVX2 static void
adam_avx2(adam_hp h, float *p, const float *g, float *m, float *v, idx n)
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

/* ------------------------------------------------------------------ */
/* Python interface.                                                   */

static void
release_buffers(Py_buffer *views, Py_ssize_t count)
{
    for (Py_ssize_t i = 0; i < count; i++)
        PyBuffer_Release(&views[i]);
}

/* Gets the buffers of args[first:first + count]: float32, C-contiguous,
 * writable where spec says 'w'.  On failure releases what it got. */
static int
get_buffers(PyObject *args, Py_ssize_t first, const char *spec,
            Py_buffer *views, const char **names)
{
    Py_ssize_t count = (Py_ssize_t)strlen(spec);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *obj = PyTuple_GET_ITEM(args, first + i);
        int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT;
        if (spec[i] == 'w')
            flags |= PyBUF_WRITABLE;
        if (PyObject_GetBuffer(obj, &views[i], flags) < 0) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError,
                         "%s must be a C-contiguous%s float32 array",
                         names[i], spec[i] == 'w' ? ", writable" : "");
            release_buffers(views, i);
            return -1;
        }
        if (views[i].itemsize != 4 || views[i].format == NULL ||
            strcmp(views[i].format, "f") != 0) {
            PyErr_Format(PyExc_TypeError, "%s must be float32, not '%s'",
                         names[i], views[i].format ? views[i].format : "?");
            release_buffers(views, i + 1);
            return -1;
        }
    }
    return 0;
}

static Py_ssize_t
length(const Py_buffer *view)
{
    return view->len / 4;
}

/* Checks that buffer i holds `per` floats per replica for K replicas. */
static int
check_length(const Py_buffer *views, const char **names, int i,
             Py_ssize_t K, Py_ssize_t per)
{
    if (length(&views[i]) != K * per) {
        PyErr_Format(PyExc_ValueError,
                     "%s has %zd elements; expected %zd (%zd replicas x %zd)",
                     names[i], length(&views[i]), K * per, K, per);
        return -1;
    }
    return 0;
}

static int
parse_range(PyObject *args, Py_ssize_t K, Py_ssize_t *k0, Py_ssize_t *k1)
{
    *k0 = PyLong_AsSsize_t(PyTuple_GET_ITEM(args, 0));
    if (*k0 == -1 && PyErr_Occurred())
        return -1;
    *k1 = PyLong_AsSsize_t(PyTuple_GET_ITEM(args, 1));
    if (*k1 == -1 && PyErr_Occurred())
        return -1;
    if (*k0 < 0 || *k1 > K || *k0 > *k1) {
        PyErr_Format(PyExc_ValueError,
                     "replica range [%zd, %zd) is not within [0, %zd)",
                     *k0, *k1, K);
        return -1;
    }
    return 0;
}

/* The arguments of a pass: (k0, k1, buffers...). */
typedef struct {
    const char *name;
    const char *spec;      /* 'r' read, 'w' written, per buffer */
    const char **names;
    const int *per;        /* floats per replica: PER_B, PER_N, ... */
    int k_from, n_from, b_from;  /* buffers of PER_ONE, PER_N, PER_B */
} pass_args;

enum { PER_B, PER_N, PER_NN, PER_ONE, PER_BN };

/* Gets and checks a pass's buffers into v, its shape and replica range.
 * On failure releases the buffers and returns -1. */
static int
parse_pass(PyObject *args, const pass_args *p, Py_buffer *v, shape *s,
           Py_ssize_t *k0, Py_ssize_t *k1)
{
    const Py_ssize_t count = (Py_ssize_t)strlen(p->spec);
    if (PyTuple_GET_SIZE(args) != 2 + count) {
        PyErr_Format(PyExc_TypeError, "%s takes %zd arguments", p->name,
                     2 + count);
        return -1;
    }
    if (get_buffers(args, 2, p->spec, v, p->names) < 0)
        return -1;
    Py_ssize_t K = length(&v[p->k_from]);
    Py_ssize_t n = K ? length(&v[p->n_from]) / K : 0;
    Py_ssize_t B = K ? length(&v[p->b_from]) / K : 0;
    int bad = K == 0 || n == 0 || B == 0 || n > INT_MAX / n || B > INT_MAX;
    if (bad)
        PyErr_Format(PyExc_ValueError, "%s: empty or too large arrays",
                     p->name);
    const Py_ssize_t per[] = {B, n, n * n, 1, B * n};
    for (Py_ssize_t i = 0; !bad && i < count; i++)
        bad = check_length(v, p->names, (int)i, K, per[p->per[i]]) < 0;
    if (!bad)
        bad = parse_range(args, K, k0, k1) < 0;
    if (bad) {
        release_buffers(v, count);
        return -1;
    }
    s->batch = (int)B;
    s->n = (int)n;
    return 0;
}

static const char *forward_names[] = {
    "x", "t", "W1", "b1", "W2", "b2", "W3", "b3", "h1", "h2", "diff", "loss"};
static const int forward_per[] = {
    PER_B, PER_B, PER_N, PER_N, PER_NN, PER_N, PER_N, PER_ONE,
    PER_BN, PER_BN, PER_B, PER_ONE};
static const pass_args forward_args = {
    "mlp_forward", "rrrrrrrrwwww", forward_names, forward_per, 11, 2, 0};

PyDoc_STRVAR(mlp_forward_doc,
"mlp_forward(k0, k1, x, t, W1, b1, W2, b2, W3, b3, h1, h2, diff, loss)\n\n"
"Forward pass of replicas k0 <= k < k1.  Shapes: x, t, diff (K, B);\n"
"W1, b1, b2, W3 (K, n); W2 (K, n, n); b3, loss (K,); h1, h2 (K, B, n).\n"
"Writes h1, h2 (after ReLU), diff = y - t and loss = mean(diff**2).");

static PyObject *
mlp_forward(PyObject *self, PyObject *args)
{
    Py_buffer v[12];
    shape s;
    Py_ssize_t k0, k1;
    if (parse_pass(args, &forward_args, v, &s, &k0, &k1) < 0)
        return NULL;
    arrays a = {0};
    a.x = v[0].buf; a.t = v[1].buf; a.W1 = v[2].buf; a.b1 = v[3].buf;
    a.W2 = v[4].buf; a.b2 = v[5].buf; a.W3 = v[6].buf; a.b3 = v[7].buf;
    a.h1 = v[8].buf; a.h2 = v[9].buf; a.diff = v[10].buf; a.loss = v[11].buf;
    Py_BEGIN_ALLOW_THREADS
    forward_passes[current_isa](s, &a, k0, k1);
    Py_END_ALLOW_THREADS
    release_buffers(v, 12);
    Py_RETURN_NONE;
}

static const char *backward_names[] = {
    "gloss", "x", "W2", "W3", "h1", "h2", "diff", "g1", "g2",
    "gW1", "gb1", "gW2", "gb2", "gW3", "gb3"};
static const int backward_per[] = {
    PER_ONE, PER_B, PER_NN, PER_N, PER_BN, PER_BN, PER_B, PER_BN, PER_BN,
    PER_N, PER_N, PER_NN, PER_N, PER_N, PER_ONE};
static const pass_args backward_args = {
    "mlp_backward", "rrrrrrrwwwwwwww", backward_names, backward_per,
    0, 3, 1};

PyDoc_STRVAR(mlp_backward_doc,
"mlp_backward(k0, k1, gloss, x, W2, W3, h1, h2, diff, g1, g2,\n"
"             gW1, gb1, gW2, gb2, gW3, gb3)\n\n"
"Gradients of sum_k gloss[k] * loss[k] for replicas k0 <= k < k1, from\n"
"what mlp_forward saved.  g1, g2 are (K, B, n) scratch; the gradients\n"
"have their parameters' shapes and are overwritten.");

static PyObject *
mlp_backward(PyObject *self, PyObject *args)
{
    Py_buffer v[15];
    shape s;
    Py_ssize_t k0, k1;
    if (parse_pass(args, &backward_args, v, &s, &k0, &k1) < 0)
        return NULL;
    arrays a = {0};
    a.gloss = v[0].buf; a.x = v[1].buf; a.W2 = v[2].buf; a.W3 = v[3].buf;
    a.h1 = v[4].buf; a.h2 = v[5].buf; a.diff = v[6].buf; a.g1 = v[7].buf;
    a.g2 = v[8].buf; a.gW1 = v[9].buf; a.gb1 = v[10].buf; a.gW2 = v[11].buf;
    a.gb2 = v[12].buf; a.gW3 = v[13].buf; a.gb3 = v[14].buf;
    Py_BEGIN_ALLOW_THREADS
    backward_passes[current_isa](s, &a, k0, k1);
    Py_END_ALLOW_THREADS
    release_buffers(v, 15);
    Py_RETURN_NONE;
}

static const char *adam_names[] = {"param", "grad", "m", "v"};

PyDoc_STRVAR(adam_doc,
"adam(param, grad, m, v, beta1, beta2, eps, alpha_t, eta, start, stop)\n\n"
"Chainer's Adam update of elements start <= i < stop, in place.");

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
    if (get_buffers(args, 0, "wrww", v, adam_names) < 0)
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
    adam_hp h = {(float)(1.0 - beta1), (float)(1.0 - beta2), (float)eps,
                 (float)alpha_t, (float)(-eta)};
    float *p = (float *)v[0].buf + start, *m = (float *)v[2].buf + start,
          *vv = (float *)v[3].buf + start;
    const float *g = (const float *)v[1].buf + start;
    idx n = stop - start;
    Py_BEGIN_ALLOW_THREADS
#ifdef MH_X86
    if (current_isa != ISA_C)  /* the same bits as adam_c */
        adam_avx2(h, p, g, m, vv, n);
    else
#endif
        adam_c(h, p, g, m, vv, n);
    Py_END_ALLOW_THREADS
    release_buffers(v, 4);
    Py_RETURN_NONE;
}

/* Whether this CPU (and build) runs kernel set k. */
static int
supports(int k)
{
#ifdef MH_X86
    if (k == ISA_AVX2)
        return __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
    if (k == ISA_AVX512)
        return supports(ISA_AVX2) && __builtin_cpu_supports("avx512f");
#endif
    return k == ISA_C;
}

PyDoc_STRVAR(set_kernels_doc,
"set_kernels(name) -> str\n\n"
"Selects the kernels: 'avx512' (AVX-512F), 'avx2' (AVX2 and FMA), each\n"
"only where the CPU has it, or 'c' (portable C).  Returns the previous\n"
"selection.");

static PyObject *
set_kernels(PyObject *self, PyObject *arg)
{
    const char *name = PyUnicode_AsUTF8(arg);
    if (name == NULL)
        return NULL;
    for (int k = 0; k < ISA_COUNT; k++) {
        if (strcmp(name, isa_names[k]) != 0)
            continue;
        if (!supports(k)) {
            PyErr_Format(PyExc_ValueError,
                         "this CPU (or build) cannot run the %s kernels; "
                         "see supported_kernels()", name);
            return NULL;
        }
        const char *previous = isa_names[current_isa];
        current_isa = k;
        return PyUnicode_FromString(previous);
    }
    PyErr_Format(PyExc_ValueError,
                 "unknown kernels %R: choose 'avx512', 'avx2' or 'c'", arg);
    return NULL;
}

static PyObject *
supported_kernels(PyObject *self, PyObject *noargs)
{
    const char *names[ISA_COUNT];
    Py_ssize_t count = 0;
    for (int k = 0; k < ISA_COUNT; k++)
        if (supports(k))
            names[count++] = isa_names[k];
    PyObject *result = PyTuple_New(count);
    for (Py_ssize_t i = 0; result != NULL && i < count; i++) {
        PyObject *name = PyUnicode_FromString(names[i]);
        if (name == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        PyTuple_SET_ITEM(result, i, name);
    }
    return result;
}

static PyObject *
get_kernels(PyObject *self, PyObject *noargs)
{
    return PyUnicode_FromString(isa_names[current_isa]);
}

static PyMethodDef methods[] = {
    {"mlp_forward", mlp_forward, METH_VARARGS, mlp_forward_doc},
    {"mlp_backward", mlp_backward, METH_VARARGS, mlp_backward_doc},
    {"adam", adam, METH_VARARGS, adam_doc},
    {"set_kernels", set_kernels, METH_O, set_kernels_doc},
    {"supported_kernels", supported_kernels, METH_NOARGS,
     "supported_kernels() -> tuple\n\nThe kernels this CPU can run, "
     "slowest first."},
    {"get_kernels", get_kernels, METH_NOARGS,
     "get_kernels() -> str\n\nThe kernels in use."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native",
    "Compiled kernels of minibatch_hybrid's ensemble step.", -1, methods};

PyMODINIT_FUNC
PyInit__native(void)
{
#ifdef MH_X86
    __builtin_cpu_init();
#endif
    for (int k = 0; k < ISA_COUNT; k++)  /* the fastest there is */
        if (supports(k))
            current_isa = k;
    return PyModule_Create(&module);
}
