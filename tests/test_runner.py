"""The study runner executes numbered notebooks in order and names a failing notebook and cell."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from cxrsr_utils import runner
from cxrsr_utils.core import params


def _book(path, *sources):
    nb = new_notebook(
        cells=[
            new_code_cell("profile = 'quick'\noverrides = {}", metadata={"tags": ["parameters"]})
        ]
    )
    nb.cells += [new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


def test_failing_notebook_is_named_with_its_cell(tmp_path):
    _book(tmp_path / "01_ok.ipynb", "x = 1")
    _book(tmp_path / "02_bad.ipynb", "y = 2", "raise ValueError('boom')")
    _book(tmp_path / "03_never.ipynb", "open('ran', 'w')")
    with pytest.raises(runner.StudyError) as err:
        runner.run_study("quick", kernel="python3", folder=tmp_path)
    msg = str(err.value)
    assert "02_bad.ipynb" in msg and "cell 2" in msg and "ValueError: boom" in msg
    assert not (tmp_path / "ran").exists(), "the run stops at the failing notebook"


def test_study_notebooks_are_numbered_and_ordered():
    books = runner.study_notebooks()
    assert books and books[0].name.startswith("01_")
    assert [b.name for b in books] == sorted(b.name for b in books)
    for book in books:
        nb = nbformat.read(book, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{book.name} needs exactly one cell tagged 'parameters'"


def test_only_filter_and_unknown():
    assert [b.name[:2] for b in runner.study_notebooks(["01"])] == ["01"]
    with pytest.raises(runner.StudyError):
        runner.study_notebooks(["99"])


def test_set_parsing():
    assert params.parse_set(["nih.n_crops=3", "device=cpu"]) == {"nih.n_crops": 3, "device": "cpu"}


def test_reports_write_paths_inside_the_project_relative_to_it(tmp_path):
    import json

    from cxrsr_utils.core.project import PROJECT_ROOT
    from cxrsr_utils.reporting import provenance

    inside = PROJECT_ROOT / "work" / "quick" / "finetune" / "paper" / "generator.pth"
    sibling = str(PROJECT_ROOT) + "-other/x.pth"  # shares the prefix, is not inside
    record = {
        "path": str(inside),
        "dirs": [str(tmp_path), PROJECT_ROOT],
        "n": 3,
        "nested": {"source": sibling},
    }
    written = json.loads(provenance.write_json(tmp_path / "card.json", record).read_text())
    assert written == {
        "path": "work/quick/finetune/paper/generator.pth",
        "dirs": [str(tmp_path), "."],
        "n": 3,
        "nested": {"source": sibling},
    }


def test_git_commit_is_dirty_for_code_changes_not_for_run_outputs(tmp_path):
    import subprocess

    from cxrsr_utils.reporting import provenance

    def git(*args):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
        )

    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "table.csv").write_text("a\n1\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "init")
    head = provenance.git_commit(tmp_path)
    assert len(head) == 40 and "+" not in head
    (tmp_path / "reports" / "table.csv").write_text("a\n2\n")
    assert provenance.git_commit(tmp_path) == head
    (tmp_path / "code.py").write_text("x = 2\n")
    assert provenance.git_commit(tmp_path) == head + "+dirty"


def test_a_run_writes_only_git_ignored_files(monkeypatch):
    """`make study` must leave the checkout clean: every folder a run writes is ignored."""
    import subprocess

    from cxrsr_utils.core.layout import Paths
    from cxrsr_utils.core.params import load_params
    from cxrsr_utils.core.project import PROJECT_ROOT

    if not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    monkeypatch.delenv("CXRSR_OUTPUT_ROOT", raising=False)
    paths = Paths(load_params("quick"))
    written = [
        paths.reports / "01_data_prep.ipynb",
        paths.tables / "04_summary.csv",
        paths.figures / "04_zoom_comparison.png",
        paths.reports / "run_manifest.json",
        paths.work / "finetune" / "paper" / "generator.pth",
    ]
    for path in written:
        ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=PROJECT_ROOT)
        assert ignored.returncode == 0, f"{path} would show in git status"


def test_a_run_is_compared_with_the_committed_reference(tmp_path, monkeypatch):
    import pandas as pd

    monkeypatch.setenv("CXRSR_OUTPUT_ROOT", str(tmp_path / "out"))
    _book(
        tmp_path / "01_table.ipynb",
        "from cxrsr_utils.core.layout import Paths\n"
        "from cxrsr_utils.core.params import load_params\n"
        "from cxrsr_utils.reporting import files as report\nimport pandas as pd\n"
        "paths = Paths(load_params(profile))\n"
        "report.save_table(pd.DataFrame({'set': ['x'], 'part': ['y'], 'images': [1]}),\n"
        "                  paths.tables, '01_counts')",
    )
    manifest = runner.run_study("quick", kernel="python3", folder=tmp_path)
    reports = tmp_path / "out" / "work" / "quick" / "reports"
    assert manifest["device"]["cpu"]["model"] and (reports / "run_manifest.json").is_file()
    status = pd.read_csv(reports / "reference_comparison.csv").set_index("table").status
    assert status["01_counts"] == "differs"  # one made-up row against the committed counts
    assert status["04_summary"] == "missing"  # committed, not produced by this run


def test_mirror_paths_are_recorded_relative_to_the_project(tmp_path, monkeypatch):
    import os

    from cxrsr_utils.core.project import PROJECT_ROOT
    from cxrsr_utils.reporting import provenance

    mirror = tmp_path / "mirror"
    monkeypatch.setenv("CXRSR_MIRROR", str(mirror))
    folder = mirror / "data" / "nih-sample" / "images"
    expected = os.path.relpath(folder, PROJECT_ROOT)
    assert provenance.portable({"folders": [str(folder)]}) == {"folders": [expected]}
    assert provenance.portable(str(tmp_path / "elsewhere")) == str(tmp_path / "elsewhere")


def test_expected_outputs_are_refreshed_after_publishing(monkeypatch):
    # The checked cells print a verdict against the committed reference: refreshed from the
    # first run they would compare it with the reference it replaces. So publish, run again
    # (finished steps are reused), then store the outputs.
    calls = []
    monkeypatch.setattr(
        runner,
        "run_study",
        lambda *a, **k: calls.append("run") or {"wall_seconds": {"total": 0}},
    )
    monkeypatch.setattr(runner, "publish", lambda *a, **k: calls.append("publish"))
    monkeypatch.setattr(runner, "refresh_expected_outputs", lambda *a: calls.append("refresh"))
    assert runner.main(["--profile", "quick", "--refresh-expected", "--publish"]) == 0
    assert calls == ["run", "publish", "run", "refresh"]
    calls.clear()
    assert runner.main(["--profile", "quick", "--refresh-expected"]) == 0
    assert calls == ["run", "refresh"]


def test_both_study_commands_share_one_option_parser_and_not_each_other(capsys):
    """`cxrsr study` and `cxrsr-study` take their options from one place
    (cxrsr_utils.study_options), and the runner no longer imports the command it sits under."""
    import subprocess
    import sys

    from cxrsr_utils import cli

    helps = []
    for run in (lambda: cli.main(["study", "--help"]), lambda: runner.main(["--help"])):
        with pytest.raises(SystemExit):
            run()
        helps.append(capsys.readouterr().out)
    for option in ("--profile", "--only", "--set", "--publish"):
        assert all(option in text for text in helps), option
    code = "import sys, cxrsr_utils.runner; print('cxrsr_utils.cli' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
