/*
 * The layout the native engine's kernels share, on the CPU (_native.c)
 * and on NVIDIA GPUs (_native.cu): a group of replicas, its parameters,
 * Adam's hyperparameters, and what a product does with each output.
 * The includer defines idx (a signed index type) first.
 */
#ifndef MH_NATIVE_LAYOUT_H
#define MH_NATIVE_LAYOUT_H

/* Replicas per group: the widest vector (AVX-512, 16 float32 lanes).
 * The one place of this number and the next: Python reads both from this
 * file (kernels/__init__.py), and the CPU module exports them. */
#define GROUP 16

/* Points per batch of evaluation, on the CPU and on a GPU. */
#define EVAL_BATCH 10

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

#endif
