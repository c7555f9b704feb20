"""BatchNormalization whose training step runs TensorFlow's fused kernel.

Keras 3 normalizes a batch in training with separate ops (mean, squared difference, rsqrt,
multiply, add, the moving-average updates) and differentiates each of them: about a dozen graph
operations per layer forward and as many backward, where TensorFlow's ``FusedBatchNormV3`` is one
op each way. On a proxy-sized network (``tiny``: 16 batch-norm layers) that is a fifth of the
graph operations of a traced training step (3,099 to 2,505; tests/test_fused_kernels.py counts them). The
variables, their names, the moving-average rule (biased batch variance, as Keras keeps it) and
the inference path are Keras's own, so weights move freely between the two layers; results
differ from Keras's in float rounding only.

Anything the fused kernel does not cover (another backend, a mask, synchronized or renormalized
statistics, an axis other than the last of a 4-D input, an epsilon under the kernel's 1.001e-5)
takes Keras's path unchanged.

>>> import numpy as np, keras
>>> x = np.random.default_rng(0).normal(size=(8, 4, 4, 3)).astype("float32")
>>> fused, plain = FusedBatchNormalization(momentum=0.9), keras.layers.BatchNormalization(momentum=0.9)
>>> bool(np.allclose(fused(x, training=True), plain(x, training=True), atol=1e-5))
True
>>> bool(np.allclose(fused.moving_variance, plain.moving_variance, atol=1e-6))
True
"""

from __future__ import annotations

import keras


MIN_FUSED_EPSILON = 1.001e-5  # tf.nn.fused_batch_norm raises a smaller epsilon to this silently


@keras.saving.register_keras_serializable(package="effscale")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with the training step on ``FusedBatchNormV3``."""

    def _fused(self, inputs, training, mask) -> bool:
        return (bool(training) and self.trainable and mask is None and keras.backend.backend() == "tensorflow"
                and len(inputs.shape) == 4 and self.axis in (-1, 3) and not self.renorm
                and not self.synchronized and self.epsilon >= MIN_FUSED_EPSILON)

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = tf.cast(inputs, "float32")  # as Keras: statistics in float32 whatever the input
        scale = tf.cast(self.gamma, "float32") if self.scale else tf.ones_like(self.moving_mean)
        offset = tf.cast(self.beta, "float32") if self.center else tf.zeros_like(self.moving_mean)
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, scale, offset, epsilon=self.epsilon, is_training=True, data_format="NHWC")
        # The kernel returns the Bessel-corrected variance; Keras's moving variance follows the biased one.
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), "float32")
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(y, self.compute_dtype)
