"""The device side (to come: the TFLite runtime, camera and classify commands). Imports no TensorFlow."""
