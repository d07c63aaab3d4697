"""Conversion of a run (or a Keras model) to TFLite: calibration, bias correction, the check against the float
model, the int8 repair strategy, metadata. Uses the device's interpreter (`edgetl.edge`) to check what it writes."""
