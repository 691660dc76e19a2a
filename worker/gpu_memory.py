"""JAX on a GPU allocates on demand in the worker, so an idle worker leaves VRAM to games.

By default XLA's GPU client takes 75% of the device's memory at its first call and keeps it for
the life of the process (JAX's "GPU memory allocation" note), whatever the model needs. With
XLA_PYTHON_CLIENT_PREALLOCATE=false it takes what the arrays need and gives back what they free,
which is what lets worker/model_holder.py's unload hand the memory back. A user who set either
variable (or XLA_PYTHON_CLIENT_MEM_FRACTION, a fraction to preallocate) has chosen; it is kept.
The variables are read when JAX starts its GPU backend, so this runs before the model loads.
"""

from __future__ import annotations

from collections.abc import MutableMapping

PREALLOCATE_ENV = "XLA_PYTHON_CLIENT_PREALLOCATE"
MEM_FRACTION_ENV = "XLA_PYTHON_CLIENT_MEM_FRACTION"


def allocate_on_demand(environ: MutableMapping[str, str]) -> bool:
    """Sets XLA_PYTHON_CLIENT_PREALLOCATE=false in environ unless the user chose an allocation;
    True when it set it."""
    if PREALLOCATE_ENV in environ or MEM_FRACTION_ENV in environ:
        return False
    environ[PREALLOCATE_ENV] = "false"
    return True
