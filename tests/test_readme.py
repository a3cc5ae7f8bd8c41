"""Every Python code block of README.md runs as shown, each in a fresh interpreter, after the
set-up commands README gives (a block that imports torch or dask skips when that is not
installed, as README says it needs them)."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
# A block that uses one of these needs it installed (README names the extra or the command).
OPTIONAL = {"torch": "torch", "dask": "dask", "sklearn": "scikit-learn", "matplotlib": "matplotlib"}


def _imports(code: str) -> set:
    return {m.group(1) for m in re.finditer(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)", code, re.M)}


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, tmp_path):
    code = BLOCKS[index]
    for module, package in OPTIONAL.items():
        if module in _imports(code) and importlib.util.find_spec(module) is None:
            pytest.skip(f"README block {index} needs {package}")
    script = tmp_path / f"readme_block_{index}.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"README block {index} failed:\n{code}\n--- stderr ---\n{done.stderr[-3000:]}"


def test_readme_output_comments_match():
    """The outputs README prints in its comments are what the blocks print."""
    quick = next(b for b in BLOCKS if "# AND gate" in b)
    done = subprocess.run([sys.executable, "-c", quick + "\nprint('synergy', round(float(fastpid.decompose(P).synergy), 6))"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "synergy 0.5" in done.stdout
    assert "method='exact', redundancy=0.311278" in done.stdout
    sampled = next(b for b in BLOCKS if "population" in b)
    done = subprocess.run([sys.executable, "-c", sampled], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [line.lstrip("# ").rstrip() for line in sampled.splitlines() if line.startswith("#   ") or line.startswith("# Estimate(")]
    for line in lines:
        if line != "...":
            assert line.strip() in done.stdout, f"README shows {line!r}; the block printed:\n{done.stdout}"
    assert "0.324275" in done.stdout


def test_readme_and_docs_point_inside_the_repository():
    """Every file README and docs/ name exists in the repository; nothing points outside it."""
    root = README.parent
    for page in [README, *sorted((root / "docs").glob("*.md"))]:
        text = page.read_text()
        assert "../" not in text, f"{page.name} points outside the repository"
        for path in set(re.findall(r"`((?:benchmarks|tests|docs|csrc|python|examples|results)/[\w./-]+\.\w+)`", text)):
            candidates = [root / path, root / "benchmarks" / path]
            assert any(c.exists() for c in candidates), f"{page.name} names {path}, which does not exist"
