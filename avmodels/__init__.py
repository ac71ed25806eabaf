"""Models: pooling layers, context gating, audio-video fusion, training, spotting, metrics."""
