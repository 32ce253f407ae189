"""One settings type: shared fields, defaults, checks, options, memory."""
import argparse
import dataclasses
import importlib.util
import os

import pytest

from minibatch_hybrid import cli
from minibatch_hybrid import settings
from minibatch_hybrid.chainer_ext import trainer as trainer_module
from minibatch_hybrid import checks
from minibatch_hybrid.core.model import n_params
from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.experiments import bench
from minibatch_hybrid.experiments.reproduce import ReproductionConfig
from minibatch_hybrid.experiments.study import StudyConfig
from minibatch_hybrid.experiments.study import sweep
from minibatch_hybrid.settings import Settings

TRAINER = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                       'scripts', 'train_chainer.py')

#: Every settings class, made with the least it needs.
CLASSES = {
    Settings: {},
    ReproductionConfig: {},
    StudyConfig: {'schedules': ['random']},
}


def make(cls, **kwargs):
    return cls(**dict(CLASSES[cls], **kwargs))


def test_the_defaults_are_the_posts():
    # The post: MyChain 1 -> 100 -> 100 -> 1, mini-batches of 10, 500
    # epochs, 1000 points; hybrid = fixed order for half, then random.
    post = {'epochs': 500, 'batchsize': 10, 'n_units': 100,
            'n_data': 1000, 'n_heldout': 1000, 'device': '@numpy'}
    for cls in CLASSES:
        config = make(cls)
        assert {name: getattr(config, name) for name in post} == post
        for name in post:
            assert settings.default(name, cls) == post[name]
    assert settings.default('seed') == ReproductionConfig().seed == 0
    assert settings.DEFAULT_SCHEDULES == ('random', 'fixed:E/2+random:E/2')
    assert settings.default_schedules(500) == ['random',
                                               'fixed:250+random:250']
    assert settings.default_schedules(9)[1] == 'fixed:4+random:5'
    # Every experiment runs the same pair by default.
    assert [str(s) for s in ReproductionConfig().schedules().values()] == \
        settings.default_schedules(500)
    assert [text for _, text in bench.study_schedules(2)] == \
        settings.default_schedules(bench.EPOCHS)
    # Was the doctest of settings.py.
    assert repr(Settings()) == (
        "Settings(epochs=500, batchsize=10, n_units=100, n_data=1000, "
        "n_heldout=1000, device='@numpy', engine='numpy')")


@pytest.mark.parametrize('cls', list(CLASSES))
@pytest.mark.parametrize('kwargs,message', [
    (dict(epochs=0), 'epochs must be a positive integer, got 0; give '
     '--epoch 1 or more'),
    (dict(epochs=2.5), 'epochs must be a positive integer, got 2.5'),
    (dict(n_units=0), 'n_units must be a positive integer, got 0; give '
     '--units 1 or more'),
    (dict(n_units=True), 'n_units must be a positive integer, got True'),
    (dict(n_data=-1), 'n_data must be a positive integer, got -1'),
    (dict(n_heldout=0), 'n_heldout must be a positive integer, got 0'),
    (dict(batchsize=0), 'batch size must be an integer from 1 to the data '
     'set size 1000, got 0; give --batchsize from 1 to 1000'),
    (dict(batchsize=101, n_data=100), 'batch size must be an integer from '
     '1 to the data set size 100, got 101; give --batchsize from 1 to 100'),
    (dict(engine='fast'), "unknown engine 'fast': choose one of "),
])
def test_every_experiment_checks_the_shared_settings_alike(cls, kwargs,
                                                           message):
    with pytest.raises(SettingsError) as e:
        make(cls, **kwargs)
    assert str(e.value).startswith(message)
    assert isinstance(e.value, ValueError)


def test_each_experiment_has_its_engines():
    assert ReproductionConfig(engine='native').engine == 'native'
    assert make(StudyConfig).engine == 'auto'
    with pytest.raises(SettingsError, match="choose one of numpy, native"):
        ReproductionConfig(engine='auto')
    with pytest.raises(SettingsError,
                       match='choose one of auto, native, numpy'):
        make(StudyConfig, engine='gpu')


def test_the_files_keep_their_settings_and_order():
    # config.json, summary.json and a study folder's record hold these, in
    # this order; a study folder is continued only with the same identity.
    assert list(ReproductionConfig().to_dict()) == [
        'seed', 'epochs', 'batchsize', 'n_units', 'n_data', 'n_heldout',
        'literal', 'device', 'engine']
    config = StudyConfig(['random', 'hybrid:250'], 4)
    assert list(config.to_dict()) == [
        'schedules', 'seeds', 'first_seed', 'epochs', 'batchsize',
        'n_units', 'n_data', 'n_heldout', 'chunk', 'revive', 'device',
        'engine']
    # Without revived arms the identity is that of earlier folders.
    assert config.identity() == {
        'schedules': ['random', 'fixed:250+random'], 'seeds': 4,
        'first_seed': 0, 'epochs': 500, 'batchsize': 10, 'n_units': 100,
        'n_data': 1000, 'n_heldout': 1000, 'chunk': 32}
    revived = StudyConfig(['random', 'hybrid:250'], 4, revive=250)
    assert revived.identity()['revive'] == 250
    # The first arguments are where they were.
    assert ReproductionConfig(3, 8).seed == 3
    assert StudyConfig(['random'], 5, 7, 8).first_seed == 7


def test_the_reproduction_and_the_study_use_the_one_memory_formula(
        monkeypatch):
    calls = []
    real = Settings.memory

    def memory(self, *args, **kwargs):
        calls.append((type(self), args, kwargs))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Settings, 'memory', memory)
    reproduction = ReproductionConfig(epochs=30, n_units=20)
    assert reproduction.memory_needed() == real(reproduction, replicas=1,
                                                records=60)
    study = StudyConfig(['random', 'fixed'], seeds=5, epochs=30, chunk=2)
    assert study.memory_needed(parallel=3) == real(
        study, replicas=3 * 2 * 2, records=2 * 5 * 32,
        record_bytes=settings.ARRAY_BYTES)
    assert [c[0] for c in calls] == [ReproductionConfig, StudyConfig]


def test_the_trainer_and_the_benchmark_use_it_too(monkeypatch, tmp_path):
    # A formula that says "too big" refuses all of them.
    monkeypatch.setattr(Settings, 'memory', lambda self, **held: 10 ** 18)
    monkeypatch.setattr(checks, 'available_memory', lambda: 10 ** 9)
    for refuse in (
            lambda: ReproductionConfig().check_memory(),
            lambda: make(StudyConfig).check_memory(),
            lambda: bench.check_settings([2], 0, 1, 1),
            lambda: trainer_module.build_trainer(epochs=4,
                                                 out=str(tmp_path))):
        with pytest.raises(SettingsError, match='needs about 1e\\+09 GB'):
            refuse()


def test_the_memory_formula():
    s = Settings(n_units=7, batchsize=3, n_data=50, n_heldout=80)
    replica = 4 * (settings.STATE_COPIES * n_params(7) + 3 * 7 * (3 + 80))
    assert s.memory(replicas=0) == 0
    assert s.memory() == replica
    assert s.memory(replicas=5, records=11) == 5 * replica + 11 * \
        settings.ROW_BYTES
    assert s.memory(replicas=2, records=3, record_bytes=16) == \
        2 * replica + 48
    assert n_params(7) == 7 * 7 + 4 * 7 + 1


def _subparsers():
    parser = cli.build_parser()
    action, = [a for a in parser._actions
               if isinstance(a, argparse._SubParsersAction)]
    return action.choices


@pytest.fixture(scope='module')
def train_chainer():
    spec = importlib.util.spec_from_file_location('train_chainer', TRAINER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _setting_actions(parser, cls):
    """``{setting: action}`` of the options that give settings."""
    out = {}
    for name, field in settings.option_fields(cls).items():
        for action in parser._actions:
            if field.metadata['flags'][0] in action.option_strings:
                out[name] = action
    return out


def test_the_cli_and_the_trainer_example_share_the_settings_options(
        train_chainer):
    commands = _subparsers()
    reproduce = _setting_actions(commands['reproduce'], ReproductionConfig)
    trainer = _setting_actions(train_chainer.build_parser(), Settings)
    # The Trainer example has every shared option of the command but the
    # engine (it runs Chainer's operations).
    assert set(reproduce) - set(trainer) == {'engine'}
    assert set(trainer) <= set(reproduce)
    for name, action in trainer.items():
        field = settings.option_fields(Settings)[name]
        flags = field.metadata['flags']
        for a in (action, reproduce[name]):
            assert a.option_strings[0] == flags[0]
            assert set(flags) <= set(a.option_strings)
            assert a.dest == settings.option_dest(field)
            assert a.type is field.metadata['type']
            assert a.help.startswith(field.metadata['help'].partition(
                ' (default')[0])
        # Its own default is the settings'; the command's is too, or None
        # where --quick decides it.
        assert action.default == field.default
        assert reproduce[name].default in (field.default, None)
    # The Trainer example keeps its old name of --units.
    assert trainer['n_units'].option_strings == ['--units', '--unit', '-u']
    parser = train_chainer.build_parser()
    for flag in ('--units', '--unit', '-u'):
        assert parser.parse_args([flag, '8']).units == 8


def test_every_command_gives_a_setting_the_same_way():
    commands = _subparsers()
    for name, cls in (('reproduce', ReproductionConfig),
                      ('study', StudyConfig), ('sweep', StudyConfig),
                      ('bench', Settings)):
        fields = settings.option_fields(cls)
        for setting, action in _setting_actions(commands[name],
                                                cls).items():
            field = fields[setting]
            assert action.option_strings == list(field.metadata['flags'])
            assert action.dest == settings.option_dest(field)
            assert action.choices == field.metadata['choices']
            # The sweep's chunks are smaller by default (its own).
            own = sweep.CHUNK \
                if (name, setting) == ('sweep', 'chunk') else field.default
            assert action.default in (own, None)
    # Defaults: those of the settings, in every command.
    for name in ('reproduce', 'study', 'sweep'):
        args = commands[name].parse_args([])
        assert (args.batchsize, args.units, args.device) == (
            10, 100, '@numpy')
    assert commands['reproduce'].parse_args([]).engine == 'numpy'
    assert commands['study'].parse_args([]).engine == 'auto'
    assert commands['bench'].parse_args([]).device == '@numpy'


def test_options_give_the_settings():
    commands = _subparsers()
    args = commands['reproduce'].parse_args(
        ['-e', '6', '-b', '5', '-u', '8', '--seed', '3', '--engine',
         'native', '-d', '-1'])
    assert settings.from_args(args, ReproductionConfig) == {
        'epochs': 6, 'batchsize': 5, 'n_units': 8, 'seed': 3,
        'engine': 'native', 'device': '-1'}
    args = commands['study'].parse_args(['-e', '6', '-u', '8'])
    kwargs = settings.from_args(args, StudyConfig)
    assert 'seed' not in kwargs  # a study has seeds of its own
    assert kwargs['epochs'] == 6 and kwargs['n_units'] == 8
    fields = {f.name for f in dataclasses.fields(StudyConfig)}
    assert set(kwargs) <= fields


@pytest.mark.parametrize('cls', list(CLASSES))
def test_a_check_added_to_the_settings_runs_for_every_experiment(
        cls, monkeypatch):
    # The subclasses call Settings.check: a check added there runs for
    # them too.
    real = Settings.check

    def check(self):
        real(self)
        if self.n_data == 7:
            raise SettingsError('a new check')

    monkeypatch.setattr(Settings, 'check', check)
    make(cls)
    with pytest.raises(SettingsError, match='a new check'):
        make(cls, n_data=7, batchsize=7)


def test_the_study_options_come_from_the_settings():
    commands = _subparsers()
    fields = settings.option_fields(StudyConfig)
    for name in ('study', 'sweep'):
        actions = _setting_actions(commands[name], StudyConfig)
        assert {'seeds', 'first_seed', 'chunk'} <= set(actions)
        args = commands[name].parse_args(
            ['--seeds', '3', '--first-seed', '5', '--chunk', '2'])
        kwargs = settings.from_args(args, StudyConfig)
        assert (kwargs['seeds'], kwargs['first_seed'], kwargs['chunk']) == \
            (3, 5, 2)
    assert fields['seeds'].default == 64
    # --quick decides the seeds and epochs that are not given.
    for flags, seeds, epochs in (([], 64, 500), (['--quick'], cli.QUICK_SEEDS,
                                                 cli.QUICK_EPOCHS),
                                 (['--quick', '--seeds', '9'], 9,
                                  cli.QUICK_EPOCHS)):
        args = commands['study'].parse_args(flags)
        assert (args.seeds, args.epoch) == (None if '--seeds' not in flags
                                            else seeds, None)
        cli._apply_quick(args)
        assert (args.seeds, args.epoch) == (seeds, epochs)
    assert commands['study'].parse_args([]).chunk == \
        settings.default('chunk', StudyConfig)
    assert commands['sweep'].parse_args([]).chunk == sweep.CHUNK


def test_the_memory_message_is_the_same_for_every_run(monkeypatch,
                                                      tmp_path):
    monkeypatch.setattr(checks, 'available_memory', lambda: 10 ** 6)
    messages = []
    for refuse in (
            lambda: ReproductionConfig(epochs=30, n_units=2000)
            .check_memory(),
            lambda: trainer_module.build_trainer(epochs=30, n_units=2000,
                                                 out=str(tmp_path))):
        with pytest.raises(SettingsError) as e:
            refuse()
        messages.append(str(e.value))
    assert all(m.startswith('this run (30 epochs, 2000 hidden units) needs '
                            'about') for m in messages)
    assert all(m.endswith('use fewer --epoch or --units') for m in messages)
