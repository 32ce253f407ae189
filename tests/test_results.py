import os
import stat

import pytest

from minibatch_hybrid.io import results


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / 'a.txt'
    results.atomic_write(str(path), lambda f: f.write('one'))
    results.atomic_write(str(path), lambda f: f.write('two'))
    assert path.read_text() == 'two'
    assert os.listdir(tmp_path) == ['a.txt']
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_a_ctrl_c_just_after_the_replace_stays_a_ctrl_c(tmp_path,
                                                     monkeypatch):
    # The signal's handler runs between two bytecodes: after os.replace,
    # the temporary file is the result; the KeyboardInterrupt must not
    # become a FileNotFoundError of its clean-up.
    path = tmp_path / 'a.txt'
    real = os.replace

    def replace_then_interrupted(src, dst):
        real(src, dst)
        raise KeyboardInterrupt
    monkeypatch.setattr(os, 'replace', replace_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        results.atomic_write(str(path), lambda f: f.write('whole'))
    assert path.read_text() == 'whole'
    assert os.listdir(tmp_path) == ['a.txt']


@pytest.mark.parametrize('error', [RuntimeError, KeyboardInterrupt])
def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, error):
    path = tmp_path / 'a.txt'
    path.write_text('old')

    def write(f):
        f.write('half of the new')
        raise error('stop')

    with pytest.raises(error):
        results.atomic_write(str(path), write)
    assert path.read_text() == 'old'
    assert os.listdir(tmp_path) == ['a.txt']
