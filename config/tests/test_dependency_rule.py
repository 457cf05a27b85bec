"""The dependency rule holds, and the lint contract that checks it fails on a wrong import.

Each wrong import is made in a copy of the packages, never in the tree itself, and
`lint-imports` (import-linter, as `make lint` and CI run it) must reject it by name.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGES = ("orders", "customers", "inventory", "stores", "config", "bench")
LINT = Path(sys.executable).with_name("lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the project's packages and its contracts (pyproject.toml)."""
    copy = tmp_path_factory.mktemp("house")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__", "var"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def with_line(tree: Path, module: str, line: str):
    """A context in which `module` (a path under the tree) carries one more import."""

    class Edit:
        def __enter__(self):
            self.path = tree / module
            self.original = self.path.read_text()
            self.path.write_text(self.original + f"\n{line}\n")

        def __exit__(self, *exc):
            self.path.write_text(self.original)

    return Edit()


def test_the_house_keeps_every_contract(tree):
    result = lint(tree)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # inventory sits below orders: its services may not reach up for an order.
        (
            "inventory/services/stock.py",
            "from orders.models import Order  # noqa",
            "Cores import down: orders -> customers -> inventory -> stores",
        ),
        # a service that starts a task sends it by name; importing the task module is refused.
        (
            "orders/services/admission.py",
            "from orders.tasks import allocate_launch  # noqa",
            "No core imports an entry point",
        ),
        # one app's views may call another app's services, never its views.
        (
            "inventory/views.py",
            "from stores.views import home  # noqa",
            "inventory's entry points use other apps' cores, never their entry points",
        ),
        # two service modules importing each other.
        (
            "orders/services/catalogue.py",
            "from orders.services.admission import order_admit  # noqa",
            "No import circles inside any package",
        ),
    ],
)
def test_a_wrong_import_breaks_its_contract(tree, module, line, contract):
    with with_line(tree, module, line):
        result = lint(tree)
    assert result.returncode != 0
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert any(row.startswith(contract) for row in broken), result.stdout[-3000:]
