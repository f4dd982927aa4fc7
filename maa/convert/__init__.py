"""Converters from other toolkits' released weights to maa model folders (`maa convert`)."""
