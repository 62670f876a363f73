"""Property-based testing of the live API against its own OpenAPI schema (schemathesis): no 5xx and no
response that violates the schema, for generated valid and invalid requests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

from catalog_search.indexing import sync

pytestmark = pytest.mark.django_db(transaction=True)

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_schemathesis_finds_no_server_errors_or_schema_violations(live_server, make_product, product_index, encoder):
    for i, (color, category) in enumerate([("red", "bags"), ("blue", "shoes"), ("green", "bags"), ("black", "hats")]):
        make_product(f"{color} {category} item {i}", color=color, category=category, price=f"{10 + i * 20}.00")
    sync.reindex(product_index, encoder)
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
    with override_settings(CATALOG_SEARCH={"THROTTLE_TEXT": None, "THROTTLE_IMAGE": None, "MODEL": encoder.name}):
        result = subprocess.run(
            [
                st,
                "run",
                f"{live_server.url}/api/schema/",
                "--checks",
                CHECKS,
                "--max-examples",
                "40",
                "--seed",
                "20261121",
                "--request-timeout",
                "30",
                "--phases",
                "examples,coverage,fuzzing",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "passed" in output.lower()
