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
