"""scripts/setup.sh must fail loudly when pip fails, and never mark such an environment complete.

The script runs from a copy in a temporary directory (it works relative to its own location), with fake
interpreters whose ``-m venv`` creates an environment with a scripted ``pip``: no real environment is touched.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from bot.shared.paths import REPO_ROOT

ROOT = REPO_ROOT

FAKE_PYTHON = """#!/usr/bin/env bash
# A fake interpreter: "-m venv DIR" makes DIR/bin/pip (behaviour: {behaviour}) and DIR/bin/python.
set -e
[ "$1" = "-m" ] && [ "$2" = "venv" ] || exit 3
mkdir -p "$3/bin"
cat > "$3/bin/pip" <<'PIP'
#!/usr/bin/env bash
case "$*" in
  *"--upgrade pip"*) [ "{behaviour}" = "upgrade-fails" ] && {{ echo "ERROR: pip upgrade broke" >&2; exit 2; }}
                     echo "WARNING: Location 'https://mirror/simple/pip/' is ignored."; exit 0 ;;
  *"--no-deps"*)     [ "{behaviour}" = "install-fails" ] && {{
                       echo "WARNING: Location 'https://mirror/simple/nosuchpkg/' is ignored."
                       echo "ERROR: No matching distribution found for nosuchpkg==9.9" >&2; exit 1; }}
                     echo "WARNING: Location 'https://mirror/simple/x/' is ignored." >&2; exit 0 ;;
  *check*)           exit 0 ;;
esac
exit 0
PIP
printf '#!/usr/bin/env bash\\nexit 0\\n' > "$3/bin/python"
chmod +x "$3/bin/pip" "$3/bin/python"
"""


def _project(tmp_path: Path, rasa: str, app: str) -> tuple[Path, dict[str, str]]:
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    (project / "requirements").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", project / "scripts" / "setup.sh")
    (project / "requirements" / "rasa.lock").write_text("rasa==3.6.21\n")
    (project / "requirements" / "app.lock").write_text("nosuchpkg==9.9\n")
    interpreters = {}
    for name, behaviour in (("py310", rasa), ("py311", app)):
        path = tmp_path / name
        path.write_text(FAKE_PYTHON.format(behaviour=behaviour))
        path.chmod(0o755)
        interpreters[name] = str(path)
    env = {**os.environ, "CSBOT_PYTHON310": interpreters["py310"], "CSBOT_PYTHON311": interpreters["py311"],
           "CSBOT_VENV_ROOT": str(tmp_path / "venvs")}
    return project, env


def _run(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(project / "scripts" / "setup.sh")], cwd=project, env=env,
                          capture_output=True, text=True, timeout=60)


def _envs(tmp_path: Path, name: str) -> list[Path]:
    return list((tmp_path / "venvs").glob(f"{name}-*"))


def test_a_failed_pip_install_stops_setup_shows_the_error_and_leaves_no_complete_marker(tmp_path: Path) -> None:
    project, env = _project(tmp_path, rasa="ok", app="install-fails")
    result = _run(project, env)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "No matching distribution found for nosuchpkg==9.9" in output
    assert "FAILED: pip install -r requirements/app.lock" in output
    assert "WARNING: Location" not in output  # the noise is still filtered
    # The environment whose pip succeeded (only filtered noise, so grep printed nothing) is complete and linked;
    # the failed one is not marked complete and not linked, so the next run rebuilds it.
    [rasa_env] = _envs(tmp_path, "rasa")
    [app_env] = _envs(tmp_path, "app")
    assert (rasa_env / ".complete").exists()
    assert (project / ".venv-rasa").resolve() == rasa_env.resolve()
    assert not (app_env / ".complete").exists()
    assert not (project / ".venv-app").exists()
    assert not (project / "var").exists()  # nothing after the failure ran


def test_a_failed_pip_upgrade_also_stops_setup(tmp_path: Path) -> None:
    project, env = _project(tmp_path, rasa="upgrade-fails", app="ok")
    result = _run(project, env)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "ERROR: pip upgrade broke" in output and "FAILED: upgrading pip" in output
    [rasa_env] = _envs(tmp_path, "rasa")
    assert not (rasa_env / ".complete").exists()
    assert _envs(tmp_path, "app") == []  # setup stopped at the first failure
