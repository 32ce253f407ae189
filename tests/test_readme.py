"""The README's code runs as written."""
import os
import re

import numpy
import pytest

README = os.path.join(os.path.dirname(__file__), '..', 'README.md')


def python_blocks():
    with open(README, encoding='utf-8') as f:
        return re.findall(r'```python\n(.*?)```', f.read(), re.S)


@pytest.mark.per_stack
def test_readme_trainer_snippet_runs_and_resumes(tmp_path, monkeypatch):
    (snippet,) = [b for b in python_blocks() if 'SerialIterator' in b]
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(snippet, 'README.md', 'exec'), scope)
    first, resumed = scope['trainer'], scope['resumed']
    assert first.updater.epoch == resumed.updater.epoch == 4
    log = first.get_extension('LogReport').log
    again = resumed.get_extension('LogReport').log
    assert [e['epoch'] for e in again] == [1, 2, 3, 4]
    assert [e['main/loss'] for e in again] == [e['main/loss'] for e in log]
    a = first.updater.get_optimizer('main').target
    b = resumed.updater.get_optimizer('main').target
    numpy.testing.assert_array_equal(a.l2.W.array, b.l2.W.array)


def test_readme_reset_snippet_runs():
    (snippet,) = [b for b in python_blocks() if 'InitialState' in b]
    import minibatch_hybrid as mh
    model = mh.make_model(8, seed=0)
    optimizer = mh.make_optimizer(model)
    before = model.l2.W.array.copy()
    scope = {'mh': mh, 'model': model, 'optimizer': optimizer}
    trained = snippet.replace('# ... train ...', 'model.l2.W.array[...] = 0')
    exec(compile(trained, 'README.md', 'exec'), scope)
    numpy.testing.assert_array_equal(model.l2.W.array, before)
