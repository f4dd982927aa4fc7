"""Loaders of trained parts (text encoders, scorers, vocoders): specs -> ready, frozen callables.

Below data/, infer/, train/, eval/ and convert/, above models/ (the nn.Modules they load).
"""
