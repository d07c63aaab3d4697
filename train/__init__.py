"""Training: dataset discovery and split, tf.data pipeline, backbones, the two phases, reports."""
