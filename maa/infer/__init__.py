"""Inference: the generation pipeline, vocoders at inference, audio-text scoring, plots."""
