"""Training runs: the loop (``loop``), the configs (``config``), checkpoints, preemption,
logs, and one task per family (``tasks``).

Importing it loads Orbax (for the checkpoints) and ml_collections; ``import jaxgan`` alone
loads neither.
"""

from jaxgan.training.config import complete_any, default_config, translation_default_config
from jaxgan.training.loop import NonFiniteError, RunResult, train_and_evaluate
from jaxgan.training.preemption import Stopped, install_stop_handlers, stop_on_signals
from jaxgan.training.tasks.noise import export_samples, load_generator
from jaxgan.training.tasks.translation import translate_file

__all__ = ["NonFiniteError", "RunResult", "Stopped", "complete_any", "default_config",
           "export_samples", "install_stop_handlers", "load_generator", "stop_on_signals",
           "train_and_evaluate", "translate_file", "translation_default_config"]
