"""Many seeds, compared pair by pair: does the hybrid beat random order?

A study trains every schedule from every seed's initial weights as one
ensemble per chunk of seeds, saving each chunk as it is done, here or on a
Dask cluster.  The package is laid out as the work is:

* :mod:`~minibatch_hybrid.study.config`: the settings, checked whole.
* :mod:`~minibatch_hybrid.study.run`: training chunks, in order or resumed.
* :mod:`~minibatch_hybrid.study.folder`: the output folder that never lies.
* :mod:`~minibatch_hybrid.study.distributed`: chunks as Dask tasks.
* :mod:`~minibatch_hybrid.study.summary`: statistics, tables and files.
* :mod:`~minibatch_hybrid.study.sweep`: the switch-point sweep.
"""
from minibatch_hybrid.study.config import StudyConfig  # NOQA
from minibatch_hybrid.study.config import StudyResult  # NOQA
from minibatch_hybrid.study.folder import StudyFolderError  # NOQA
from minibatch_hybrid.study.run import run_study  # NOQA
from minibatch_hybrid.study.run import train_chunk  # NOQA
from minibatch_hybrid.study.summary import BOOTSTRAP_SEED  # NOQA
from minibatch_hybrid.study.summary import STUDY_FILES  # NOQA
from minibatch_hybrid.study.summary import summarize  # NOQA
from minibatch_hybrid.study.summary import summary_table  # NOQA
from minibatch_hybrid.study.summary import write_study_outputs  # NOQA
from minibatch_hybrid.study.sweep import SWEEP_FILES  # NOQA
from minibatch_hybrid.study.sweep import run_sweep  # NOQA
from minibatch_hybrid.study.sweep import sweep_config  # NOQA
from minibatch_hybrid.study.sweep import sweep_schedules  # NOQA
from minibatch_hybrid.study.sweep import sweep_table  # NOQA
from minibatch_hybrid.study.sweep import write_sweep_outputs  # NOQA
