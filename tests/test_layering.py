"""The import rule of docs/ARCHITECTURE.md, read from the source (AST): the tree shows the flow only while it holds.

channels -> handoff -> conversations -> bot.shared; actions -> kb_index, bot.shared, conversations.keys;
bot.plugins -> bot.shared; nothing imports channels or tools; bot.shared imports no other project package (it runs
on Python 3.10 and 3.11).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["channels", "analytics", "workbench", "handoff", "conversations", "actions", "kb_index", "bot.plugins",
            "bot.shared", "tools"]
ALLOWED: dict[str, set[str]] = {
    "channels": {"analytics", "workbench", "handoff", "conversations", "bot.shared"},
    "analytics": {"handoff", "conversations", "bot.shared"},
    "workbench": {"handoff", "conversations", "kb_index", "bot.shared"},
    "handoff": {"conversations", "bot.shared"},
    "conversations": {"bot.shared"},
    "actions": {"kb_index", "bot.shared", "conversations.keys"},
    "kb_index": {"bot.shared"},
    "bot.plugins": {"bot.shared"},
    "bot.shared": set(),
    "tools": set(PACKAGES) | {"conversations.keys"},
}


def _package(module: str) -> str | None:
    for name in sorted(PACKAGES, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return name
    return None


def _imports() -> set[tuple[str, str, str]]:
    """(importing package, imported module, file) for every absolute import between project packages."""
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package.replace(".", "/")).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                modules = []
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
                for module in modules:
                    target = _package(module)
                    if target and target != package:
                        found.add((package, module, str(path.relative_to(ROOT))))
    return found


def test_imports_follow_the_layering_rule() -> None:
    imports = _imports()
    assert imports, "the scan found no imports at all"
    broken = []
    for package, module, path in sorted(imports):
        target = _package(module)
        allowed = ALLOWED[package]
        if target in allowed or any(module == a or module.startswith(a + ".") for a in allowed):
            continue
        if package == "actions" and module == "conversations":  # `from conversations import keys`
            continue
        broken.append(f"{path}: {package} imports {module}")
    assert not broken, "\n".join(broken)


def test_the_rule_would_catch_a_desk_module_importing_the_gateway(tmp_path: Path) -> None:
    tree = ast.parse("from channels.webchat import router\n")
    node = tree.body[0]
    assert isinstance(node, ast.ImportFrom) and _package(node.module or "") == "channels"
    assert "channels" not in ALLOWED["handoff"]
