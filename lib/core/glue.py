"""Numbers recorded in a notebook's outputs, where tests and the reports read them back (the
papermill/scrapbook "glue" pattern)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

RECORD_MIMETYPE = "application/x-aia-record+json"


def record(name: str, value: Any) -> Any:
    """Record a number (or any JSON value) in a notebook's output, where tests and the
    reports read it back (the papermill/scrapbook "glue" pattern). Returns ``value``.

    Outside a notebook it does nothing visible."""
    try:
        from IPython import get_ipython  # lazy import (IPython: only inside a kernel)
        from IPython.display import display  # lazy import (IPython: only inside a kernel)
    except ImportError:  # pragma: no cover
        return value
    if get_ipython() is not None:
        display({RECORD_MIMETYPE: {name: _jsonable(value)}}, raw=True)
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def notebook_records(path: str | os.PathLike) -> dict[str, Any]:
    """Everything a notebook recorded with :func:`record`, by name."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    out: dict[str, Any] = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if RECORD_MIMETYPE in data:
                out.update(data[RECORD_MIMETYPE])
    return out
