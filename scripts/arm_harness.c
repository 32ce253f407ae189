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

#include "harness_run.h"

#include <string.h>

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
    harness_start();
    for (int e = 0; e < EPOCHS; e++) {
        harness_epoch(e);
        epoch_args a = {N_UNITS, BATCH, POINTS, params, m, v, X, Y,
                        alpha_t, order, harness_hp, sums};
        if (train_groups(&kernel_sets[set], &a, 0, GROUPS) < 0)
            return 1;
        harness_add();
    }
    if (evaluate_groups(&kernel_sets[set], N_UNITS, POINTS, params, EX, EY,
                        mse, NULL, NULL, 0, GROUPS) < 0)
        return 1;
    harness_print();
    return 0;
}
