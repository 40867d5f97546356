"""``python -m ckptconv`` and the ``ckptconv`` console script.

Signals are held from the first line, before anything is imported: from the first moment, Ctrl-C
and SIGTERM end the run with one line and exit 130 / 143, never with a traceback.
"""

import signal

_held: list[int] = []


def main() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):  # hold them while the rest is imported
        signal.signal(signum, lambda s, frame: _held.append(s))
    import os
    import sys

    from .signals import deferred, exit_code, install, message

    try:
        with deferred():  # click, rich and the commands: a signal waits until they are in place
            install(_held)
            from .cli import run
    except KeyboardInterrupt as e:
        sys.stderr.write(f"error: {message(e)}\n")
        sys.stderr.flush()
        os._exit(exit_code(e))
    run()


if __name__ == "__main__":
    main()
