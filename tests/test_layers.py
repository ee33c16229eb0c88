"""The apps import one another only downwards, as pyproject.toml's import-linter
contracts say: audit < accounts < catalog < environments < runs < insights, and no app
imports the project's wiring (settings, URLs). Imports inside functions count too."""

import re
import subprocess
import sys
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent


def test_the_apps_import_only_the_layers_below_them():
    lint_imports = Path(sys.executable).with_name("lint-imports")

    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=BASE,
        capture_output=True,
        text=True,
        timeout=300,
    )

    report = result.stdout + result.stderr
    # What is broken, import by import (with line numbers), or the whole report on an error.
    broken = report[report.find("Broken contracts") :] if "Broken contracts" in report else report
    assert re.search(r"Contracts: [1-9]\d* kept, 0 broken\.", report), broken
    assert result.returncode == 0, broken
