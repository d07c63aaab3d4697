"""TFLite conversion and int8 quantization of a run directory (to come; see the open conversion issue)."""
