"""The Dagster entry point (`dagster dev -w workspace.yaml`): definitions built lazily from the config.

The config is $APEX_CONFIG or configs/default.yaml, read when Dagster loads the code location, never when a
module imports this one (nothing in the package does).
"""

import dagster as dg

from apex_rotation.config import load_config
from apex_rotation.defs.build import build_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(load_config())
