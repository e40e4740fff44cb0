"""Run pyx12's validator programmatically and collect what it found.

``pyx12.x12n_document.x12n_document`` returns ``True`` only when the document has no errors; its
JSON error visitor (``fd_json``) gives the details, which the tests print on failure.

Maps in pyx12 4.0 for what the hub writes: 837P X222A1, 277CA X214 and 999 X231A1 are indexed and
work. The 277 X212 map file ships but is not indexed in ``maps.xml``, and its loop nesting is broken
(SE ends up inside the detail table; a conformant 277 fails on its first HL even when indexed), so
the 277 answer to a 276 is checked by the unit tests only. There is no 276 X212 map at all.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyx12
import pyx12.params
import pyx12.x12n_document

PYX12_MAPS = Path(pyx12.__file__).parent / "map"


@dataclass
class Pyx12Result:
    valid: bool
    errors: list[dict[str, Any]] = field(default_factory=list)
    ack: str = ""  # the 999 pyx12 generated for the document

    def summary(self) -> str:
        return "\n".join(f"{err['where']}: code {err['code']}: {err['message']}" for err in self.errors)


def _collect(node: Any, where: str, out: list[dict[str, Any]]) -> None:
    """Flatten the nested JSON report into ``{"where", "code", "message"}`` rows."""
    if isinstance(node, list):
        for item in node:
            _collect(item, where, out)
        return
    if not isinstance(node, dict):
        return
    if "seg_id" in node:
        where = f"{node['seg_id']}#{node.get('seg_count')}"
    elif "trn_set_control_num" in node:
        where = f"ST02={node['trn_set_control_num']}"
    elif "ele_pos" in node:
        where = f"{where} element {node['ele_pos']}"
    out.extend(
        {"where": where, "code": err.get("err_cde"), "message": err.get("err_str")} for err in node.get("errors", [])
    )
    for key, value in node.items():
        if key != "errors" and isinstance(value, list | dict):
            _collect(value, where, out)


def validate(text: str, *, map_path: Path | None = None) -> Pyx12Result:
    logging.getLogger("pyx12").setLevel(logging.CRITICAL)
    param = pyx12.params.params()
    if map_path is not None:
        param.set("map_path", str(map_path))
    fd_997 = io.StringIO()
    fd_json = io.StringIO()
    valid = pyx12.x12n_document.x12n_document(
        param=param,
        src_file=io.StringIO(text),
        fd_997=fd_997,
        fd_html=None,
        fd_xmldoc=None,
        fd_json=fd_json,
        map_path=str(map_path) if map_path is not None else None,
    )
    errors: list[dict[str, Any]] = []
    if fd_json.getvalue():
        _collect(json.loads(fd_json.getvalue()), "ISA", errors)
    return Pyx12Result(valid=bool(valid), errors=errors, ack=fd_997.getvalue())
