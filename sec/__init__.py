"""sec: Self-Evolving Curriculum (arXiv:2505.14970) experiments on Hydra, TRL and verl."""

__version__ = "0.1.0"
