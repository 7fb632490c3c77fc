"""Notebook 01 opens and runs in JupyterLab itself, driven in headless Chromium.

JupyterLab is started from this environment on a free local port with a random token; its root
is a scratch folder holding a copy of notebook 01 (JupyterLab saves and checkpoints what it
opens, and the checkout must stay clean), and the notebook runs on the quick profile with the
offline mirror, writing under the test run's scratch output root. Chromium is Debian's
(``$CXRSR_CHROMIUM``, default ``/usr/bin/chromium``; ``make test`` installs it where it can),
driven by Playwright without Playwright's own browsers. The last screenshot is kept under
``work/jupyterlab/`` (git-ignored); ``reports/jupyterlab/notebook01.png`` is one such screenshot
committed as evidence.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_data_prep.ipynb"
KERNEL = "cxrsr"
SCREENSHOT = ROOT / "work" / "jupyterlab" / "notebook01.png"
FAILED_SCREENSHOT = SCREENSHOT.with_name("notebook01-failed.png")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# JupyterLab settings for the scratch user: every cell kept in the page (no windowing, so all
# outputs can be read) and no news or update checks (no network here).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
START_TIMEOUT_S = 120
RUN_TIMEOUT_S = 300

pytestmark = pytest.mark.slow


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium; skips, saying how to get it, where there is none."""
    path = os.environ.get("CXRSR_CHROMIUM", "/usr/bin/chromium")
    if not os.access(path, os.X_OK):
        pytest.skip(
            f"no browser at {path} (set CXRSR_CHROMIUM, or install Debian's chromium: "
            "`make browser` does it as root with apt-get)"
        )
    return path


def _kernel_is_registered() -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    if KERNEL not in KernelSpecManager().find_kernel_specs():
        pytest.skip(f"Jupyter kernel {KERNEL!r} is not registered (`make setup` registers it)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read()
    except (urllib.error.URLError, OSError):
        return None


def _checked_outputs(book: Path) -> list[str]:
    """The stored stream text of every cell nbval checks (``# NBVAL_CHECK_OUTPUT``)."""
    texts = []
    for cell in nbformat.read(book, as_version=4).cells:
        if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in cell.source:
            texts += [o.text for o in cell.outputs if o.output_type == "stream"]
    return texts


@pytest.fixture
def lab(tmp_path: Path, mirror: Path) -> Iterator[tuple[str, Path]]:
    """A JupyterLab server on a free port serving a scratch copy of notebook 01; its URL
    (with the token) and the copy's path."""
    pytest.importorskip("jupyterlab", reason="JupyterLab is in the `notebooks` extra")
    _kernel_is_registered()
    root, home = tmp_path / "lab", tmp_path / "home"
    root.mkdir()
    # Without the stored outputs and counts: whatever the page shows comes from this run.
    copy = nbformat.read(NOTEBOOK, as_version=4)
    for cell in copy.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    book = root / NOTEBOOK.name
    nbformat.write(copy, book)
    settings = home / "lab-settings"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the kernel's inline figures, as a user sees them
    env.update(
        CXRSR_MIRROR=str(mirror),
        # The kernel imports this checkout's package and writes under the tests' scratch root.
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        CXRSR_OUTPUT_ROOT=os.environ["CXRSR_OUTPUT_ROOT"],
        OMP_WAIT_POLICY="PASSIVE",
        HOME=str(home),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        IPYTHONDIR=str(home / "ipython"),
    )
    port, token = _free_port(), secrets.token_hex(16)
    log_path = tmp_path / "jupyterlab.log"
    log = log_path.open("w")
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.port_retries=0",
        "--ServerApp.terminals_enabled=False",
        "--LabApp.extension_manager=readonly",  # no PyPI queries from the extension manager
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI's machine runs everything as root
        command.append("--ServerApp.allow_root=True")
    server = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while _get(f"{base}/api/status?token={token}") is None:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield f"{base}/lab/tree/{book.name}?token={token}", book
    finally:
        server.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_notebook_01_runs_in_jupyterlab(
    chromium: str, lab: tuple[str, Path], tmp_path: Path
) -> None:
    """Run > Run All Cells on notebook 01: every cell runs without error on the quick profile
    with the mirror, and shows the outputs nbval checks."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is in the dev extra")
    url, book = lab
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh user-data-dir
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1500},
        )
        page = browser.pages[0] if browser.pages else browser.new_page()
        page.set_default_timeout(60_000)
        try:
            page.goto(url)
            notebook = page.locator(".jp-NotebookPanel")
            notebook.wait_for()
            # The notebook's own kernel (its metadata names "cxrsr"), started and idle.
            page.locator(".jp-Toolbar-kernelName", has_text="(cxrsr)").wait_for()
            page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').wait_for()

            page.locator(".lm-MenuBar-item", has_text="Run").first.click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

            # Done when every code cell has its execution count and the kernel is idle, or
            # stopped at an error (Run All stops there; the checks below say which).
            prompts = notebook.locator(".jp-CodeCell .jp-InputArea-prompt")
            n_code = sum(c.cell_type == "code" for c in nbformat.read(book, 4).cells)
            page.wait_for_function(
                """n => {
                    const p = [...document.querySelectorAll(
                        '.jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt')];
                    const idle = document.querySelector(
                        '.jp-Notebook-ExecutionIndicator[data-status="idle"]');
                    const error = [...document.querySelectorAll(
                        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
                    ].some(e => e.textContent.includes("Traceback"));
                    const done = p.length === n && p.every(e => /\\[\\d+\\]/.test(e.textContent));
                    return idle && (done || error);
                }""",
                arg=n_code,
                timeout=RUN_TIMEOUT_S * 1000,
            )
            outputs = notebook.locator(".jp-OutputArea-output")
            text = "\n".join(outputs.all_inner_texts())
            stderr = notebook.locator(
                '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
            ).all_inner_texts()
            assert not [e for e in stderr if "Traceback" in e or "Error" in e], stderr
            assert "Traceback" not in text
            ran = [p.strip() for p in prompts.all_inner_texts()]
            assert len(ran) == n_code and all(p[1:-2].isdigit() for p in ran), ran
            # The provenance cell: the quick profile, on the offline mirror.
            assert "'profile': 'quick'" in text
            assert "'mirror': '(unset)'" not in text and "'mirror':" in text
            # The key outputs: what nbval checks (counts table and data digest, the patient
            # split, the grayscale notes), line by line as JupyterLab shows them.
            expected = _checked_outputs(NOTEBOOK)
            assert expected, "notebook 01 has no checked outputs to compare"
            shown = {line.strip() for line in text.splitlines()}
            missing = [
                line.strip()
                for block in expected
                for line in block.splitlines()
                if line.strip() and line.strip() not in shown
            ]
            assert not missing, f"not shown in JupyterLab: {missing}"
            assert "| NIH fine-tune | total |" in text  # the counts table itself
            assert notebook.locator(".jp-RenderedImage img").count() >= 1  # the samples figure

            outputs.filter(has_text="NIH fine-tune").first.scroll_into_view_if_needed()
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))
        except Exception:
            FAILED_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(FAILED_SCREENSHOT))  # what the page showed, for the log
            raise
        finally:
            browser.close()
    ignored = subprocess.run(["git", "check-ignore", "-q", str(SCREENSHOT)], cwd=ROOT)
    assert ignored.returncode == 0, f"{SCREENSHOT} would show in git status"
