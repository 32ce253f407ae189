"""Install script of minibatch_hybrid.

Chainer 7.8.1 is an sdist that needs an old setuptools to build and to
import; ``make install`` (see the Makefile and README) passes the needed
constraint to pip.  The bounds below are the ones that were tested.
"""
import os

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

here = os.path.abspath(os.path.dirname(__file__))


def read_version():
    path = os.path.join(here, 'minibatch_hybrid', '_version.py')
    scope = {}
    with open(path) as f:
        exec(f.read(), scope)
    return scope['__version__']


class BuildExt(build_ext):
    """Builds the optional kernels with the flags their results rely on.

    ``-ffp-contract=off``: no multiply-add is fused unless the code says so,
    so the Adam kernel performs Chainer's float32 operations exactly.
    """

    def build_extension(self, ext):
        if self.compiler.compiler_type == 'unix':
            ext.extra_compile_args = ['-O3', '-ffp-contract=off',
                                      '-fno-math-errno']
        super().build_extension(ext)


# The compiled kernels of the ensemble (minibatch_hybrid.kernels) are
# optional: without a C compiler the install goes on and the package runs
# on NumPy alone.
native = Extension('minibatch_hybrid.kernels._native',
                   sources=['minibatch_hybrid/kernels/_native.c'],
                   depends=['minibatch_hybrid/kernels/_native_body.h',
                            'minibatch_hybrid/kernels/_native_layout.h'],
                   optional=True)


TEST_REQUIRES = ['pytest>=8', 'pytest-timeout>=2.3', 'nbmake>=1.5',
                 'dask[distributed]>=2024.1']


with open(os.path.join(here, 'README.md'), encoding='utf-8') as f:
    long_description = f.read()


setup(
    name='minibatch_hybrid',
    version=read_version(),
    description=('Mini-batch order schedules (fixed, random, hybrid, ...) '
                 'for Chainer, and a faithful, faster reproduction of the '
                 '"fixed then random" sin(x) experiment'),
    long_description=long_description,
    long_description_content_type='text/markdown',
    license='MIT',
    python_requires='>=3.9',
    packages=find_packages(include=['minibatch_hybrid', 'minibatch_hybrid.*']),
    # The CUDA kernels' source, compiled at run time (kernels/cuda.py).
    package_data={'minibatch_hybrid.kernels': [
        '_native.cu', '_native_layout.h', '_cuda_vocab.h',
        '_native_body.h']},
    ext_modules=[native],
    cmdclass={'build_ext': BuildExt},
    install_requires=[
        'chainer==7.8.1',
        # chainer 7.8.1 reads numpy.sctypes (gone in NumPy 2); the package's
        # compatibility layer restores it, and the tests run on NumPy 1.26
        # and 2.x. `make install` keeps the default on NumPy 1.x.
        'numpy>=1.22,<2.6',
        # chainer imports pkg_resources and numpy.distutils at import time:
        # setuptools >= 74 breaks numpy.distutils, >= 82 drops pkg_resources.
        'setuptools>=66.1,<74',
        'matplotlib>=3.10,<3.12',
        # A study folder is held by one run at a time (study/folder.py).
        'filelock>=3.12,<5',
    ],
    extras_require={
        # Studies on a Dask cluster (study/sweep --scheduler, --workers).
        'distributed': ['dask[distributed]>=2024.1'],
        # The test suite: pytest-timeout ends any test that hangs.
        'test': TEST_REQUIRES,
        # Daily work: the tests and the linter (`make check`).
        'dev': TEST_REQUIRES + ['ruff>=0.17,<0.18'],
        # CUDA 12: CuPy 13 (NumPy 1.22 to 2.5).
        'cuda12': ['cupy-cuda12x>=13,<14'],
        # CUDA 13: CuPy 14, which needs NumPy 2.
        'cuda13': ['cupy-cuda13x>=14,<15', 'numpy>=2'],
    },
    entry_points={
        'console_scripts': [
            'minibatch-hybrid = minibatch_hybrid.cli:main',
        ],
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
        'License :: OSI Approved :: MIT License',
    ],
)
