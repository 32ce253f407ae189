/*
 * The native engine's arithmetic, written once.
 *
 * _native.c includes this file once per kernel set, after defining the
 * vocabulary below for that set's vectors.  Every value is a vector of VL
 * lanes, one replica per lane, and every operation is elementwise across
 * lanes: a replica's numbers never meet another replica's, and no sum runs
 * along a vector.  Each output of a product is one chain of fused
 * multiply-adds over its reduction index, in increasing order, from 0.
 * All kernel sets therefore perform the same float32 operations on every
 * lane, whatever VL or the register blocks (RB x RO) are: the same bits.
 *
 * Vocabulary (defined by the includer):
 *   vec, VL           the vector type and its lanes
 *   RB, RO            register block: rows of the batch x output columns
 *   SUFFIX(name)      name of this set's copy of a function
 *   TARGET            attributes of this set's functions
 *   vzero() vset1(f) vload(p) vstore(p, a)
 *   vadd vsub vmul vdiv vsqrt   IEEE float32, correctly rounded
 *   vfma(a, b, c)     a * b + c, rounded once
 *   vrelu(a)          a > 0 ? a : +0
 *   vpos(h, g)        h > 0 ? g : +0
 *
 * The body undefines the vocabulary at its end, ready for the next set.
 *
 * Memory: a group's parameters (and Adam's m and v) are GROUP lanes wide;
 * element e of lane l is at [e * GROUP + l].  A call works on VL lanes
 * starting at the pointer it is given.  Scratch arrays are VL lanes wide.
 */

/* Element e of a group array (stride GROUP), as a vector. */
#define LD(base, e) vload((base) + (idx)(e) * GROUP)
#define ST(base, e, a) vstore((base) + (idx)(e) * GROUP, (a))
/* Element e of a scratch array (stride VL). */
#define SLD(base, e) vload((base) + (idx)(e) * VL)
#define SST(base, e, a) vstore((base) + (idx)(e) * VL, (a))

/* Row r of a block that starts at r0, clamped to the last real row: a
 * block past the end repeats that row, and only real rows are stored. */
#define CLAMP(r0, q, rows) ((r0) + (q) < (rows) ? (r0) + (q) : (rows) - 1)

TARGET static inline __attribute__((always_inline)) void
SUFFIX(adam_at)(const adam_hp *h, vec alpha_t, float *p, float *m,
                float *v, idx e, vec g);

/* out(r, c) = sum over k < D of a(r, k) b(k, c), for r < R and c < C,
 * each output one chain of fused multiply-adds from 0, k in order;
 * a(r, k) = A[r * ar + k * ak], b(k, c) = Bm[k * bk + c * bc] (strides in
 * floats).  Register blocks of RB x RO outputs. */
TARGET static inline __attribute__((always_inline)) void
SUFFIX(product)(int R, int C, int D, const float *A, idx ar, idx ak,
                const float *Bm, idx bk, idx bc, const put *w, vec alpha_t)
{
    for (int r0 = 0; r0 < R; r0 += RB)
        for (int c0 = 0; c0 < C; c0 += RO) {
            const float *a[RB], *b[RO];
            vec acc[RB][RO];
            for (int q = 0; q < RB; q++)
                a[q] = A + (idx)CLAMP(r0, q, R) * ar;
            for (int u = 0; u < RO; u++)
                b[u] = Bm + (idx)CLAMP(c0, u, C) * bc;
            for (int q = 0; q < RB; q++)
                for (int u = 0; u < RO; u++)
                    acc[q][u] = vzero();
            for (int k = 0; k < D; k++) {
                vec bv[RO];
                for (int u = 0; u < RO; u++)
                    bv[u] = vload(b[u] + (idx)k * bk);
                for (int q = 0; q < RB; q++) {
                    vec av = vload(a[q] + (idx)k * ak);
                    for (int u = 0; u < RO; u++)
                        acc[q][u] = vfma(av, bv[u], acc[q][u]);
                }
            }
            for (int q = 0; q < RB && r0 + q < R; q++)
                for (int u = 0; u < RO && c0 + u < C; u++) {
                    const idx r = r0 + q, c = c0 + u;
                    if (w->kind == PUT_STORE)
                        vstore(w->out + r * w->or_ + c * w->oc, acc[q][u]);
                    else if (w->kind == PUT_BIAS_RELU)
                        vstore(w->out + r * w->or_ + c * w->oc,
                               vrelu(vadd(acc[q][u],
                                          vload(w->bias + c * GROUP))));
                    else
                        SUFFIX(adam_at)(w->h, alpha_t, w->P, w->M, w->V,
                                        w->e0 + r * w->er + c, acc[q][u]);
                }
        }
}

/* h1 = relu(x W1 + b1); h2 = relu(h1 W2^T + b2); d = h2 W3^T + b3 - t.
 * Returns sum + the lanes' sum of d^2 over the batch (the chain goes on
 * from sum, b in order). */
TARGET static vec
SUFFIX(forward)(int B, int n, const float *P, const float *x,
                const float *t, float *h1, float *h2, float *d, vec sum)
{
    const float *W1 = P + OFF_W1(n) * GROUP, *b1 = P + OFF_B1(n) * GROUP;
    const float *W2 = P + OFF_W2(n) * GROUP, *b2 = P + OFF_B2(n) * GROUP;
    const float *W3 = P + OFF_W3(n) * GROUP, *b3 = P + OFF_B3(n) * GROUP;
    for (int b = 0; b < B; b++) {
        vec xb = SLD(x, b);
        for (int i = 0; i < n; i++)
            SST(h1, b * n + i,
                vrelu(vadd(vmul(xb, LD(W1, i)), LD(b1, i))));
    }
    /* h2[b, o] = relu(sum_i h1[b, i] W2[o, i] + b2[o]) */
    const put w = {PUT_BIAS_RELU, h2, (idx)n * VL, VL, b2};
    SUFFIX(product)(B, n, n, h1, (idx)n * VL, VL, W2, GROUP,
                    (idx)n * GROUP, &w, vzero());
    for (int b = 0; b < B; b++) {
        vec y = vzero();
        for (int o = 0; o < n; o++)
            y = vfma(SLD(h2, b * n + o), LD(W3, o), y);
        vec diff = vsub(vadd(y, LD(b3, 0)), SLD(t, b));
        SST(d, b, diff);
        sum = vfma(diff, diff, sum);
    }
    return sum;
}

/* sum[0 .. VL) += the lanes' sum of d^2 over a batch (evaluation). */
TARGET static void
SUFFIX(sq_error)(int B, int n, const float *P, const float *x,
                 const float *t, float *h1, float *h2, float *d, float *sum)
{
    vstore(sum, SUFFIX(forward)(B, n, P, x, t, h1, h2, d, vload(sum)));
}

/* Chainer's Adam update of one element of every lane: its operations in
 * its order (m += c1 (g - m); v += c2 (g g - v);
 * p += -eta (alpha_t / (sqrt(v) + eps)) m). */
TARGET static inline __attribute__((always_inline)) void
SUFFIX(adam_at)(const adam_hp *h, vec alpha_t, float *p, float *m,
                float *v, idx e, vec g)
{
    vec mi = LD(m, e), vi = LD(v, e);
    mi = vadd(mi, vmul(vset1(h->one_minus_beta1), vsub(g, mi)));
    vi = vadd(vi, vmul(vset1(h->one_minus_beta2), vsub(vmul(g, g), vi)));
    vec a = vdiv(alpha_t, vadd(vsqrt(vi), vset1(h->eps)));
    a = vmul(vset1(h->neg_eta), vmul(a, mi));
    ST(m, e, mi);
    ST(v, e, vi);
    ST(p, e, vadd(LD(p, e), a));
}

/* One mini-batch step of VL lanes: forward, backward and Adam.  Writes
 * each lane's loss (mean of d^2 over the batch) to loss[0 .. VL).
 * Scratch: h1, h2 (B n each), d (B), gy (B), g1 (B n). */
TARGET static void
SUFFIX(step)(int B, int n, float *P, float *M, float *V, const float *x,
             const float *t, const adam_hp *h, float alpha_t_f,
             float *h1, float *h2, float *d, float *gy, float *g1,
             float *loss)
{
    const vec sum = SUFFIX(forward)(B, n, P, x, t, h1, h2, d, vzero());
    vstore(loss, vdiv(sum, vset1((float)B)));
    const vec alpha_t = vset1(alpha_t_f);
    /* As F.mean_squared_error's backward: gy = d * (2 / B). */
    const vec scale = vset1((float)(2.0 / B));
    for (int b = 0; b < B; b++)
        SST(gy, b, vmul(SLD(d, b), scale));

    /* Layer 3, then g2 = relu'(h2) * (gy W3), written over h2. */
    {
        float *W3 = P + OFF_W3(n) * GROUP;
        vec gb3 = vzero();
        for (int b = 0; b < B; b++)
            gb3 = vadd(gb3, SLD(gy, b));
        for (int o = 0; o < n; o++) {
            vec w3 = LD(W3, o), gw = vzero(), gb = vzero();
            for (int b = 0; b < B; b++) {
                vec hb = SLD(h2, b * n + o), g = SLD(gy, b);
                gw = vfma(g, hb, gw);
                vec g2 = vpos(hb, vmul(g, w3));
                SST(h2, b * n + o, g2);
                gb = vadd(gb, g2);
            }
            SUFFIX(adam_at)(h, alpha_t, P, M, V, OFF_W3(n) + o, gw);
            SUFFIX(adam_at)(h, alpha_t, P, M, V, OFF_B2(n) + o, gb);
        }
        SUFFIX(adam_at)(h, alpha_t, P, M, V, OFF_B3(n), gb3);
    }
    const float *g2 = h2;

    /* Layer 2: g1[b, i] = sum_o g2[b, o] W2[o, i] with the old weights,
     * then gW2[o, i] = sum_b g2[b, o] h1[b, i] and the update. */
    {
        const put to_g1 = {PUT_STORE, g1, (idx)n * VL, VL};
        SUFFIX(product)(B, n, n, g2, (idx)n * VL, VL,
                        P + OFF_W2(n) * GROUP, (idx)n * GROUP, GROUP, &to_g1,
                        alpha_t);
        const put update = {PUT_ADAM, NULL, 0, 0, NULL, P, M, V, OFF_W2(n),
                            n, h};
        SUFFIX(product)(n, n, B, g2, VL, (idx)n * VL, h1, (idx)n * VL, VL,
                        &update, alpha_t);
    }

    /* Layer 1. */
    for (int i = 0; i < n; i++) {
        vec gw = vzero(), gb = vzero();
        for (int b = 0; b < B; b++) {
            vec g = vpos(SLD(h1, b * n + i), SLD(g1, b * n + i));
            gw = vfma(g, SLD(x, b), gw);
            gb = vadd(gb, g);
        }
        SUFFIX(adam_at)(h, alpha_t, P, M, V, OFF_W1(n) + i, gw);
        SUFFIX(adam_at)(h, alpha_t, P, M, V, OFF_B1(n) + i, gb);
    }
}

#undef LD
#undef ST
#undef SLD
#undef SST
#undef CLAMP

/* Chainer's Adam update of n contiguous elements (a single model's
 * parameter, the python adam): adam_at on VL elements at a time, the last
 * ones through VL-wide copies. */
TARGET static void
SUFFIX(adam_span)(const adam_hp *h, float alpha_t, float *p, const float *g,
                  float *m, float *v, idx n)
{
    const vec a = vset1(alpha_t);
    idx i = 0;
    for (; i + VL <= n; i += VL)
        SUFFIX(adam_at)(h, a, p + i, m + i, v + i, 0, vload(g + i));
    if (i == n)
        return;
    float tp[VL], tg[VL], tm[VL], tv[VL];
    for (int j = 0; j < VL; j++) {
        int k = i + j < n ? j : 0;  /* lanes past the end repeat one */
        tp[j] = p[i + k], tg[j] = g[i + k], tm[j] = m[i + k], tv[j] = v[i + k];
    }
    SUFFIX(adam_at)(h, a, tp, tm, tv, 0, vload(tg));
    for (int j = 0; i + j < n; j++)
        p[i + j] = tp[j], m[i + j] = tm[j], v[i + j] = tv[j];
}

/* The CPU's peak: `rounds` rounds of PEAK_CHAINS independent chains of
 * fused multiply-adds, in registers (for the benchmark).  Writes a lane of
 * the result, so that the work is not optimised away. */
#define PEAK_CHAINS 12
TARGET static void
SUFFIX(fma_peak)(long rounds, float *out)
{
    vec acc[PEAK_CHAINS];
    const vec a = vset1(0.999999f), b = vset1(1e-7f);
    for (int j = 0; j < PEAK_CHAINS; j++)
        acc[j] = vset1((float)j);
    for (long r = 0; r < rounds; r++)
        for (int j = 0; j < PEAK_CHAINS; j++)
            acc[j] = vfma(acc[j], a, b);
    vec sum = acc[0];
    for (int j = 1; j < PEAK_CHAINS; j++)
        sum = vadd(sum, acc[j]);
    float lanes[VL];
    vstore(lanes, sum);
    *out = lanes[0];
}
#undef PEAK_CHAINS

#undef TARGET
#undef vec
#undef VL
#undef RB
#undef RO
#undef SUFFIX
#undef vzero
#undef vset1
#undef vload
#undef vstore
#undef vadd
#undef vsub
#undef vmul
#undef vdiv
#undef vsqrt
#undef vfma
#undef vrelu
#undef vpos
