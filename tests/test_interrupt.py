"""SIGTERM inside interruptible(): a clean stop even when the signal surfaces as another error."""

import os
import signal
import time

import pytest

from effscale.common.interrupt import Interrupted, interruptible, reraise_if_interrupted


def test_sigterm_raises_interrupted_with_the_shell_exit_code():
    with pytest.raises(Interrupted) as info:
        with interruptible():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    assert info.value.code == 143


def test_a_signal_turned_into_another_error_still_stops_the_command():
    with pytest.raises(Interrupted) as info:
        with interruptible():
            try:
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(5)
                except Interrupted:  # what TensorFlow's C++ layer did: another exception instead
                    raise SystemError("bad argument to internal function") from None
            except SystemError:  # Keras Tuner's broad catch that marks the trial FAILED
                reraise_if_interrupted()
                raise
    assert info.value.code == 143
    reraise_if_interrupted()  # outside the block, nothing is pending


def test_a_signal_landing_in_a_weakref_callback_still_stops_the_command_without_a_traceback(capsys):
    """Python ignores an exception raised inside a weakref callback (seen: SIGTERM during a
    search on a loaded machine, which then finished its trial and exited 0, printing a traceback)."""
    import gc
    import weakref

    class Thing:
        pass

    def callback(_):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100_000):  # the handler runs here, between bytecodes of the callback
            pass

    after = []
    with pytest.raises(Interrupted) as stopped:
        with interruptible():
            thing = Thing()
            ref = weakref.ref(thing, callback)
            del thing
            gc.collect()
            after.append("the block went on")  # the Interrupted was swallowed inside the callback
    assert ref() is None and after == ["the block went on"]
    assert stopped.value.code == 143
    assert "Traceback" not in capsys.readouterr().err
