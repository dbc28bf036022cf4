"""Security rules that hold for the whole code base, checked on its source."""

import ast
import base64
import json
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ["orchestration", "ray_serve", "storage_tier", "general_tier"]
QUERY_METHODS = {"execute", "executemany", "fetch", "fetchrow", "fetchval", "run"}


def project_modules() -> list[Path]:
    return sorted(
        path for package in PACKAGES for path in (REPO / package).rglob("*.py")
    )


def test_sql_is_never_built_from_values() -> None:
    """Every query is a constant string; values go in as parameters."""
    offenders = []
    for path in project_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in QUERY_METHODS
                and node.args
            ):
                continue
            query = node.args[0]
            built = isinstance(query, ast.JoinedStr) or (
                isinstance(query, ast.BinOp) and isinstance(query.op, ast.Mod | ast.Add)
            )
            formatted = (
                isinstance(query, ast.Call)
                and isinstance(query.func, ast.Attribute)
                and query.func.attr == "format"
            )
            if built or formatted:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []


def test_no_secret_literals_in_code() -> None:
    offenders = []
    for path in project_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = (
                    node.targets if isinstance(node, ast.Assign) else [node.target]
                )
                names = [t.id.lower() for t in targets if isinstance(t, ast.Name)]
                value = node.value
                if (
                    any(w in n for n in names for w in ("password", "secret", "token"))
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                    and value.value
                ):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []


def test_workflow_history_carries_references_not_documents() -> None:
    """Every payload in a recorded history is small: document bytes, extracted text
    and embeddings travel as blob URIs, never through Temporal."""
    history = json.loads(
        (REPO / "tests/histories/document_processing.json").read_text()
    )
    payloads: list[bytes] = []

    def collect(node: object) -> None:
        if isinstance(node, dict):
            payloads.extend(
                base64.b64decode(p["data"]) for p in node.get("payloads", [])
            )
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(history)
    assert payloads
    assert max(len(payload) for payload in payloads) < 4096
    text = b"".join(payloads)
    assert b'"embedding":[' not in text  # no vector arrays
    assert b"file://" in text  # references are what travels
