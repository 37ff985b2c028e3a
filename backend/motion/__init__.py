"""The motion model: one photo in, a spectral volume out (paper section 4). See ``predictor.py`` for the entry point."""
