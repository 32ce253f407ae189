"""Many seeds, compared pair by pair: does the hybrid beat random order?"""
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
