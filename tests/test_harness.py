"""The kernels without Python (scripts/arm_harness.c) print one checksum.

The harness trains a fixed ensemble with a kernel set and prints a
checksum of every weight, moment, loss and evaluation.  The arithmetic is
the package's own, so the line is the same on every CPU and kernel set:
the number below was printed by the portable set on 64-bit ARM (under
QEMU) and by every set on x86-64 (AVX-512, AVX2 and portable; see
``docs/performance.md``).  A change of any operation, order or rounding in
the kernels changes it.
"""
import os
import shutil
import subprocess

import pytest

from minibatch_hybrid import kernels
from _marks import needs_native

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.path.join(HERE, os.pardir, 'scripts', 'arm_harness.c')

#: The harness's line on every CPU (scripts/check_arm.sh).
CHECKSUM = '6e19d30c6ed2535d'


def outputs(source, tmp_path, *args):
    """Builds a C program of ``scripts/`` with the flags setup.py builds
    the extension with; returns its output for each kernel set the CPU
    runs, called with the set's name and ``args``, and the binary."""
    binary = str(tmp_path / 'program')
    subprocess.run(['gcc', '-O3', '-ffp-contract=off', '-fno-math-errno',
                    '-o', binary, source, '-lm'], check=True)
    return {kernel_set: subprocess.run(
        [binary, kernel_set] + list(args), check=True, capture_output=True,
        text=True).stdout for kernel_set in kernels.supported_kernels()}, \
        binary


@needs_native
@pytest.mark.exact
@pytest.mark.skipif(shutil.which('gcc') is None, reason='needs gcc')
def test_every_kernel_set_prints_the_one_checksum(tmp_path):
    lines, _ = outputs(HARNESS, tmp_path)
    for kernel_set, line in lines.items():
        assert line.split()[0] == CHECKSUM, (kernel_set, line)


STEP_TIMING = os.path.join(HERE, os.pardir, 'scripts', 'step_timing.c')


@needs_native
@pytest.mark.skipif(shutil.which('gcc') is None, reason='needs gcc')
def test_the_step_timing_tool_builds_and_times_every_kernel_set(tmp_path):
    # docs/performance.md quotes it: it must keep building from the
    # kernels' sources as they change.
    timings, binary = outputs(STEP_TIMING, tmp_path, '2')
    for kernel_set, out in timings.items():
        assert out.startswith(kernel_set + ' (') and 'GFLOP/s' in out, out
    refused = subprocess.run([binary, 'sse9'], capture_output=True,
                             text=True)
    assert refused.returncode == 2 and 'usage' in refused.stderr
