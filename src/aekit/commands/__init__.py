"""The verbs of the `aekit` command, a table of them (commands.table: VERBS, @verb): each verb's flags beside its
handler. Importing this package registers aekit's own, in the order `aekit --help` lists them."""

# isort: off
from . import data, runs, uses  # noqa: F401  (each registers its verbs)

# isort: on
from .table import VERBS, verb

__all__ = ["VERBS", "verb"]
