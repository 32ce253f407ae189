"""The README's code runs as written."""
import os
import re

import numpy

README = os.path.join(os.path.dirname(__file__), '..', 'README.md')


def python_blocks():
    with open(README, encoding='utf-8') as f:
        return re.findall(r'```python\n(.*?)```', f.read(), re.S)


def test_readme_trainer_snippet_runs(tmp_path, monkeypatch, capsys):
    (snippet,) = [b for b in python_blocks() if 'SerialIterator' in b]
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(snippet, 'README.md', 'exec'), scope)
    trainer = scope['trainer']
    assert trainer.updater.epoch == 4
    log = trainer.get_extension('LogReport').log
    assert [entry['epoch'] for entry in log] == [1, 2, 3, 4]
    printed = float(capsys.readouterr().out.strip())
    assert printed == log[-1]['main/loss'] > 0


def test_readme_reset_snippet_runs():
    (snippet,) = [b for b in python_blocks() if 'InitialState' in b]
    import minibatch_hybrid as mh
    model = mh.make_model(8, seed=0)
    optimizer = mh.make_optimizer(model)
    before = model.l2.W.array.copy()
    scope = {'mh': mh, 'model': model, 'optimizer': optimizer}
    exec(compile(snippet.replace('# ... train ...', 'model.l2.W.array[...] = 0'),
                 'README.md', 'exec'), scope)
    numpy.testing.assert_array_equal(model.l2.W.array, before)
