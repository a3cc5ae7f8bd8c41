"""README's two set-up commands, checked as a new user meets them.

    python -m benchmarks.check_setup [--pythons 3.11,3.12,3.13] [--skip-venvs]

* resolves each command's install against the public package index alone (a pip with no
  configuration, no local wheels: `pip install --dry-run --report`), and lists what it would
  install; fails if that includes torch or any nvidia-* or cuda-* package;
* for each Python version: a clean clone of this repository's HEAD, a fresh venv, then README's
  commands run verbatim in it (the main job, then the tests), timed, with the tail of their
  output.

Writes results/setup.json. The venvs install from whatever index this machine's pip is set up
with (here a local mirror of the public one); the resolution above is what holds elsewhere.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .harness import machine, progress, write_json

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_INDEX = "https://pypi.org/simple"
FORBIDDEN = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$", re.I)


def readme_commands() -> list:
    """The bash blocks of README's "Set-up on a fresh machine" section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Set-up on a fresh machine"):]
    section = section[: section.index("\n## ", 5)]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def install_part(command: str) -> str:
    """The `pip install ...` of a command (before its `&&`)."""
    first = command.split("&&")[0].strip()
    if not first.startswith("pip install"):
        raise SystemExit(f"README's set-up command does not start with pip install: {command!r}")
    return first


def resolve_public(command: str, work: Path) -> dict:
    """What ``command``'s pip install would install from the public index alone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # no pip.conf: no local wheels, mirrors or constraints
    report = work / "report.json"
    args = install_part(command).split()[2:]
    args = [a.strip('"').strip("'") for a in args]
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                           "--index-url", PUBLIC_INDEX, "--report", str(report), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    if done.returncode:
        return {"command": command, "rc": done.returncode, "log": done.stderr[-3000:]}
    packages = sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in json.loads(report.read_text())["install"])
    forbidden = [p for p in packages if FORBIDDEN.match(p.split("==")[0])]
    return {"command": command, "rc": 0, "packages": packages, "forbidden": forbidden}


def find_python(version: str):
    for candidate in [shutil.which(f"python{version}")] + sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}"))):
        if candidate and subprocess.run([candidate, "--version"], capture_output=True).returncode == 0:
            return candidate
    return None


def run_in_venv(python: str, commands: list, work: Path) -> dict:
    clone = work / "fastpid"
    subprocess.run(["git", "clone", "--quiet", "--no-local", str(ROOT), str(clone)], check=True)
    venv = work / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "FASTPID_CUDA", "FASTPID_NATIVE",
                                                            "FASTPID_CPU_PATH", "FASTPID_EXPECT_CUDA_BUILD")}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    steps = []
    for command in commands:
        began = time.perf_counter()
        done = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True, timeout=3600)
        noise = ("WARNING: Running pip as", "WARNING: Location ")  # pip's notes about this machine's set-up
        steps.append({"command": command, "rc": done.returncode, "seconds": time.perf_counter() - began,
                      "tail": done.stdout.strip().splitlines()[-6:],
                      "stderr_tail": [line for line in done.stderr.strip().splitlines() if not line.startswith(noise)][-4:]})
        if done.returncode:
            break
    torch = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch"], capture_output=True).returncode == 0
    return {"steps": steps, "torch_installed": torch, "passed": all(s["rc"] == 0 for s in steps) and len(steps) == len(commands)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pythons", default="3.11,3.12,3.13")
    parser.add_argument("--skip-venvs", action="store_true", help="only the resolution against the public index")
    args = parser.parse_args(argv)
    commands = readme_commands()
    payload = {"machine": machine(), "readme_commands": commands}
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        payload["public_index_resolution"] = []
        for k, command in enumerate(commands):
            progress(f"resolving against {PUBLIC_INDEX}: {install_part(command)}")
            resolved = resolve_public(command, Path(tmp))
            payload["public_index_resolution"].append(resolved)
            print(f"  rc {resolved['rc']}, {len(resolved.get('packages', []))} packages, forbidden: {resolved.get('forbidden')}")
            failed += [command] if resolved["rc"] or resolved["forbidden"] else []
    if not args.skip_venvs:
        payload["venvs"] = {}
        for version in args.pythons.split(","):
            python = find_python(version)
            if python is None:
                payload["venvs"][version] = {"passed": False, "why": f"no python{version} on this machine"}
                failed.append(version)
                continue
            progress(f"Python {version} ({python}): clean clone, fresh venv, README's commands")
            with tempfile.TemporaryDirectory() as tmp:
                result = run_in_venv(python, commands, Path(tmp))
            result["python"] = subprocess.run([python, "--version"], capture_output=True, text=True).stdout.strip()
            payload["venvs"][version] = result
            for step in result["steps"]:
                print(f"  rc {step['rc']} in {step['seconds']:.0f} s: {step['command']}\n    " + "\n    ".join(step["tail"][-2:]))
            failed += [] if result["passed"] and not result["torch_installed"] else [version]
    payload["passed"] = not failed
    print("wrote", write_json("setup.json", payload))
    if failed:
        print("failed:", failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
