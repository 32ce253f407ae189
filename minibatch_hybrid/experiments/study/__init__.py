"""Many seeds, compared pair by pair: does the hybrid beat random order?

A study trains every schedule from every seed's initial weights as one
ensemble per chunk of seeds, saving each chunk as it is done, here or on a
Dask cluster.  The package is laid out as the work is:

* :mod:`.config`: the settings, checked whole.
* :mod:`.run`: training chunks, in order or resumed.
* :mod:`.folder`: the output folder that never lies.
* :mod:`.distributed`: chunks as Dask tasks.
* :mod:`.summary`: statistics, tables and files.
* :mod:`.sweep`: the switch-point sweep.
"""
from minibatch_hybrid.experiments.study.config import StudyConfig  # NOQA
from minibatch_hybrid.experiments.study.config import StudyResult  # NOQA
from minibatch_hybrid.experiments.study.folder import StudyFolderError  # NOQA
from minibatch_hybrid.experiments.study.run import run_study  # NOQA
from minibatch_hybrid.experiments.study.run import train_chunk  # NOQA
from minibatch_hybrid.experiments.study.summary import BOOTSTRAP_SEED  # NOQA
from minibatch_hybrid.experiments.study.summary import STUDY_FILES  # NOQA
from minibatch_hybrid.experiments.study.summary import summarize  # NOQA
from minibatch_hybrid.experiments.study.summary import summary_table  # NOQA
from minibatch_hybrid.experiments.study.summary import write_study_outputs  # NOQA
from minibatch_hybrid.experiments.study.sweep import SWEEP_FILES  # NOQA
from minibatch_hybrid.experiments.study.sweep import run_sweep  # NOQA
from minibatch_hybrid.experiments.study.sweep import sweep_config  # NOQA
from minibatch_hybrid.experiments.study.sweep import sweep_schedules  # NOQA
from minibatch_hybrid.experiments.study.sweep import sweep_table  # NOQA
from minibatch_hybrid.experiments.study.sweep import write_sweep_outputs  # NOQA
