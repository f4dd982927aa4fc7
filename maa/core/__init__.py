"""Foundations every stage uses: errors, atomic files, audio, the mel transform, manifests, checkpoints."""
