"""HiveLM: align language models with online communities and measure their fidelity."""
__version__ = "0.1.0"
