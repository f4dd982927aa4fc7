"""Scoring generated audio: FD, FAD, KL, IS and CLAP over PANNs, VGGish and CLAP embeddings."""
