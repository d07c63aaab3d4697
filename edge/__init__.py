"""The device side: TFLite interpreter, model metadata, classify and camera. Imports no TensorFlow."""
