"""The one shape every asset check result takes here: passed when nothing was found, findings as metadata."""

import dagster as dg

from apex_rotation.log import redact_obj


def problems_check(name: str, problems: dict) -> dg.AssetCheckResult:
    """A check that passes when `problems` (partition → what is wrong) is empty."""
    return dg.AssetCheckResult(
        check_name=name,
        passed=not problems,
        metadata={"problems": dg.MetadataValue.json(redact_obj(problems))},
    )
