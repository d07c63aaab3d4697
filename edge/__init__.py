"""The device side: TFLite interpreter, model metadata, classify, camera and `edgetl bench`. Imports no TensorFlow."""
