import io

from minibatch_hybrid.io.progress import Progress
from minibatch_hybrid.io.progress import format_seconds


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_log_file_gets_a_line_per_tenth():
    out = io.StringIO()
    progress = Progress(20, out)
    for done in range(1, 21):
        progress.update(done, 'loss 1')
    lines = out.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0].startswith(' 10% 2/20 loss 1 elapsed 0:00:00 left ')
    assert lines[-1].startswith('100% 20/20 ')


def test_terminal_line_is_redrawn_and_cleared():
    out = Terminal()
    progress = Progress(4, out)
    progress.update(1)
    progress.clear()
    progress.update(2)
    progress.close()
    text = out.getvalue()
    assert text.count('\r\x1b[K') == 3
    assert text.endswith('\n')


def test_format_seconds():
    assert format_seconds(3725.4) == '1:02:05'
