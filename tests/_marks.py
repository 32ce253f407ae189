"""Skip marks shared by test modules (imported as ``import _marks``, the way
the modules import ``native_reference``: pytest puts tests/ on sys.path)."""
import pytest

from minibatch_hybrid import kernels

#: For tests that run the compiled kernels, in this process or in the
#: processes it starts (commands, Dask workers): where the extension is not
#: built, or the CPU has no FMA, they have nothing to run.  (`make test`
#: checks first that the extension is built, so there they run.)
needs_native = pytest.mark.skipif(
    not kernels.available(),
    reason='minibatch_hybrid.kernels._native not built or this CPU has no FMA')
