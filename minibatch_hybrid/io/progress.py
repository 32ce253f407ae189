"""Progress of long runs on standard error: epoch, loss and time left."""
import sys
import time


def format_seconds(seconds):
    """Formats seconds as ``H:MM:SS``."""
    seconds = int(round(seconds))
    return '{}:{:02d}:{:02d}'.format(
        seconds // 3600, seconds // 60 % 60, seconds % 60)


class Progress(object):
    """Reports progress over ``total`` units of work on ``stream``
    (standard error by default): one line redrawn on a terminal, else a
    line per tenth of the work."""

    def __init__(self, total, stream=None):
        self.total = total
        self.stream = sys.stderr if stream is None else stream
        self.done = 0
        self.start = time.perf_counter()
        self._tty = getattr(self.stream, 'isatty', lambda: False)()
        self._next_tenth = 1

    def update(self, done, message=''):
        """Records that ``done`` units are done in all; ``message`` follows."""
        self.done = done
        elapsed = time.perf_counter() - self.start
        left = elapsed / done * (self.total - done) if done else 0.0
        line = '{:3d}% {}/{} {} elapsed {} left {}'.format(
            100 * done // self.total, done, self.total, message,
            format_seconds(elapsed), format_seconds(left))
        if self._tty:
            self.stream.write('\r\x1b[K' + line)
            if done >= self.total:
                self.stream.write('\n')
        elif done * 10 >= self._next_tenth * self.total:
            self.stream.write(line + '\n')
            while done * 10 >= self._next_tenth * self.total:
                self._next_tenth += 1
        self.stream.flush()

    def clear(self):
        """Erases the redrawn line, so that other output starts clean."""
        if self._tty and 0 < self.done < self.total:
            self.stream.write('\r\x1b[K')
            self.stream.flush()

    def close(self):
        """Ends a redrawn line (after an interruption, say)."""
        if self._tty and self.done < self.total:
            self.stream.write('\n')
            self.stream.flush()
