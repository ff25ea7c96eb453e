"""s2s-bench: a terminal workbench for GRU/LSTM attention sequence-to-sequence models."""

__version__ = "0.1.0"
