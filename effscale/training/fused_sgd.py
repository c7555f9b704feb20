"""SGD with momentum whose per-variable update is one TensorFlow kernel.

Keras 3's SGD updates each variable with separate ops (two multiplies, a subtract, two assigns
and the reads and casts around them): about eleven graph operations per variable, a third of a
proxy network's traced training step (``tiny``: 70 variables, ~770 of ~2,500 operations).
``ResourceApplyKerasMomentum`` computes the same update, Keras's own formula
(``m = momentum * m - lr * g; v += m``, Nesterov: ``v += momentum * m - lr * g``), in one op.
The optimizer's variables, its schedule and its saved form are Keras's SGD's; another backend,
a sparse gradient or no momentum takes Keras's path unchanged.

>>> import numpy as np, keras
>>> fused, plain = FusedSGD(0.1, momentum=0.9), keras.optimizers.SGD(0.1, momentum=0.9)
>>> a, b = keras.Variable(np.ones(3, "float32")), keras.Variable(np.ones(3, "float32"))
>>> for _ in range(3):
...     fused.apply([np.array([1.0, -2.0, 0.5], "float32")], [a])
...     plain.apply([np.array([1.0, -2.0, 0.5], "float32")], [b])
>>> bool(np.allclose(a.numpy(), b.numpy(), rtol=1e-6))
True
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="effscale")
class FusedSGD(keras.optimizers.SGD):
    """``keras.optimizers.SGD`` with each variable's momentum update on one kernel."""

    def update_step(self, gradient, variable, learning_rate):
        import tensorflow as tf

        if self.momentum == 0 or keras.backend.backend() != "tensorflow" or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        momentum = self.momentums[self._get_variable_index(variable)]
        dtype = variable.dtype
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=variable.handle, accum=momentum.handle, lr=tf.cast(learning_rate, dtype),
            grad=tf.cast(gradient, dtype), momentum=tf.constant(self.momentum, dtype),
            use_locking=False, use_nesterov=self.nesterov)
