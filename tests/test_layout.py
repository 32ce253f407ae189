"""The tree is the architecture: layers, no import cycle, a small root.

Imports are read from the source (every ``import`` statement, those inside
functions included), so that no cycle hides behind an import that runs
late.
"""
import ast
import json
import os
import subprocess
import sys
import textwrap

import pytest

import minibatch_hybrid
from minibatch_hybrid import _legacy

PACKAGE = 'minibatch_hybrid'
ROOT = os.path.dirname(minibatch_hybrid.__file__)

#: The layers, lowest first: a module imports from its own layer and those
#: below it only.  The package's ``__init__`` and the two public names kept
#: at the root (``iterators``, ``extensions``) are facades: each stands as
#: high as the highest layer it imports.
LAYERS = [
    ('errors', '_version', '_compat', '_interrupts', '_legacy', 'checks'),
    ('schedules', 'kernels'),
    ('core', 'settings'),
    ('engines', 'io'),
    ('chainer_ext',),
    ('experiments',),
    ('cli',),
]
FACADES = ('', 'iterators', 'extensions')


def _modules():
    """Returns ``{dotted name: path}`` of the package's modules."""
    out = {}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if not name.endswith('.py'):
                continue
            path = os.path.join(folder, name)
            parts = os.path.relpath(path, os.path.dirname(ROOT))[:-3].split(
                os.sep)
            if parts[-1] == '__init__':
                parts = parts[:-1]
            out['.'.join(parts)] = path
    return out


MODULES = _modules()


def _imports(name, path):
    """Returns the package's modules that module ``name`` imports."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    package = name if path.endswith('__init__.py') else \
        name.rpartition('.')[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                up = package.split('.')[:len(package.split('.')) -
                                        node.level + 1]
                base = '.'.join(up + ([base] if base else []))
            # ``from a import b``: b is a module, or a name in module a.
            targets = [base + '.' + alias.name
                       if base + '.' + alias.name in MODULES else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition('.')[0]
            if target and target.startswith(PACKAGE) and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _short(name):
    return name[len(PACKAGE) + 1:]


def test_the_import_graph_has_no_cycle():
    # Depth-first search; a module on the current path seen again closes
    # a cycle.
    state, stack = {}, []

    def visit(name):
        state[name] = 'open'
        stack.append(name)
        for other in sorted(GRAPH[name]):
            if state.get(other) == 'open':
                cycle = stack[stack.index(other):] + [other]
                pytest.fail('import cycle: ' + ' -> '.join(cycle))
            if other not in state:
                visit(other)
        stack.pop()
        state[name] = 'done'

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


def test_the_finder_sees_imports_inside_functions(tmp_path):
    # The test above must see an import that runs late.
    path = tmp_path / 'late.py'
    path.write_text('def f():\n    from minibatch_hybrid import engines\n')
    assert _imports(PACKAGE + '.core.late', str(path)) == {
        PACKAGE + '.engines'}


def _layer(name):
    short = _short(name) if name != PACKAGE else ''
    if short in FACADES:  # as high as the highest layer it shows
        return max((_layer(t) for t in GRAPH[name]), default=0)
    best = None
    for rank, layer in enumerate(LAYERS):
        for prefix in layer:
            if short == prefix or short.startswith(prefix + '.'):
                if best is None or len(prefix) > best[1]:
                    best = (rank, len(prefix))
    assert best is not None, 'module {} is in no layer'.format(name)
    return best[0]


def test_every_module_imports_its_own_layer_or_below():
    wrong = []
    for name, targets in sorted(GRAPH.items()):
        rank = _layer(name)
        for target in sorted(targets):
            if _layer(target) > rank:
                wrong.append('{} imports {}'.format(_short(name),
                                                    _short(target)
                                                    or PACKAGE))
    assert not wrong, wrong


def test_the_root_holds_few_modules():
    # _legacy, the old names, goes in version _legacy.REMOVAL.
    modules = [name for name in os.listdir(ROOT) if name.endswith('.py')
               and name != '_legacy.py']
    assert len(modules) <= 10, sorted(modules)


def test_the_old_names_are_gone_by_their_removal_version():
    version = tuple(int(p) for p in minibatch_hybrid.__version__.split('.'))
    removal = tuple(int(p) for p in _legacy.REMOVAL.split('.'))
    assert version < removal, 'remove minibatch_hybrid/_legacy.py'


def _loaded_by(statement):
    """The modules a fresh process has loaded after ``statement``."""
    code = 'import sys\n{}\nprint("\\n".join(sorted(sys.modules)))'.format(
        statement)
    return set(subprocess.run([sys.executable, '-c', code], check=True,
                              capture_output=True, text=True,
                              timeout=120).stdout.split())


@pytest.mark.parametrize('statement', [
    'import minibatch_hybrid', 'import minibatch_hybrid.errors',
    'from minibatch_hybrid import checks', 'import minibatch_hybrid.kernels'])
def test_a_light_import_loads_neither_chainer_nor_the_engines(statement):
    # The root imported chainer and 31 of the package's modules (about a
    # second) for any of these.
    loaded = _loaded_by(statement)
    assert 'chainer' not in loaded
    assert not {PACKAGE + '.engines', PACKAGE + '.core',
                PACKAGE + '.experiments'} & loaded


def test_a_name_of_the_root_imports_its_module_when_used():
    loaded = _loaded_by('import minibatch_hybrid as mh\nmh.make_model')
    assert {'chainer', PACKAGE + '.core.model'} <= loaded
    assert PACKAGE + '.engines' not in loaded
    for name in minibatch_hybrid.PUBLIC:
        assert getattr(minibatch_hybrid, name) is not None, name
    with pytest.raises(AttributeError, match='no attribute'):
        minibatch_hybrid.no_such_name  # noqa: B018


def test_the_old_module_names_still_import_with_a_warning():
    # Code written before the layers keeps working: every old module name
    # imports as the module now in its place (the old `native`: the names
    # it had), with a DeprecationWarning naming the new place.  In a fresh
    # process: a module once imported is not imported (or warned) again.
    code = textwrap.dedent('''
        import importlib, json, warnings
        import minibatch_hybrid as mh
        out = {}
        for old, new in sorted(mh._legacy.MOVED.items()):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                module = importlib.import_module('minibatch_hybrid.' + old)
            said = [str(w.message) for w in caught
                    if w.category is DeprecationWarning]
            same = new is None or module is importlib.import_module(
                'minibatch_hybrid.' + new)
            out[old] = [same, said]
        from minibatch_hybrid.study.config import StudyConfig
        from minibatch_hybrid.native import NativeEnsemble, kernels
        out['names'] = [StudyConfig is mh.experiments.study.StudyConfig,
                        NativeEnsemble is mh.NativeEnsemble,
                        kernels() == mh.kernels.current()]
        print(json.dumps(out))
    ''')
    result = json.loads(subprocess.run(
        [sys.executable, '-c', code], check=True, capture_output=True,
        text=True).stdout)
    assert all(result.pop('names'))
    assert set(result) == set(_legacy.MOVED)
    for old, (same, said) in result.items():
        assert same, old
        assert len(said) == 1 and said[0].startswith(
            'minibatch_hybrid.{} has moved to'.format(old)), (old, said)
