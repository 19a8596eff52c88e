"""The docs cannot rot: every TOML, YAML and systemd (ini) example parses (configs also
validate as fedledger.toml), and every `fedledger <command>` the docs name answers --help.

Every command the docs (and the README) name must be registered: a doc that names a
command fedledger does not have fails the test.
"""

from __future__ import annotations

import configparser
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from collector.cli import app
from collector.config import parse_config

REPO = Path(__file__).resolve().parent.parent
DOC_FILES = sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]
GLOBAL_OPTIONS_WITH_VALUE = {"--ledger", "--format", "--as-of"}
FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```", re.S | re.M)


def _blocks(lang: str) -> list[tuple[str, str]]:
    found = []
    for path in DOC_FILES:
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group(1).lower() == lang:
                line = text.count("\n", 0, match.start()) + 1
                found.append((f"{path.name}:{line}", match.group(2)))
    return found


def _ids(blocks: list[tuple[str, str]]) -> list[str]:
    return [where for where, _ in blocks]


TOML_BLOCKS = _blocks("toml")
YAML_BLOCKS = _blocks("yaml") + _blocks("yml")
INI_BLOCKS = _blocks("ini")


def test_the_docs_have_examples() -> None:
    assert len(TOML_BLOCKS) >= 1 and len(YAML_BLOCKS) >= 3 and len(INI_BLOCKS) >= 2


def _validate_fedledger_toml(text: str, where: str) -> None:
    doc = tomllib.loads(text)
    if "ledger" in doc or "sources" in doc:
        parse_config(text, Path("/etc/fedledger/fedledger.toml"))  # raises ConfigInvalid listing every problem


@pytest.mark.parametrize(("where", "text"), TOML_BLOCKS, ids=_ids(TOML_BLOCKS))
def test_toml_examples_parse_and_validate(where: str, text: str) -> None:
    _validate_fedledger_toml(text, where)


@pytest.mark.parametrize(("where", "text"), YAML_BLOCKS, ids=_ids(YAML_BLOCKS))
def test_yaml_examples_parse(where: str, text: str) -> None:
    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    assert documents, f"{where}: empty YAML"
    for doc in documents:
        assert isinstance(doc, dict), f"{where}: a YAML document that is not a mapping"
        if doc.get("kind") == "ConfigMap":
            for name, value in (doc.get("data") or {}).items():
                if name.endswith(".toml"):
                    _validate_fedledger_toml(value, f"{where} ({name})")
        if doc.get("kind") == "CronJob":
            spec = doc["spec"]
            assert spec["concurrencyPolicy"] == "Forbid"
            assert spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][0] == "run"


def test_ci_examples_are_scheduled_and_use_oidc() -> None:
    docs = [d for _, text in YAML_BLOCKS for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    github = next(d for d in docs if "jobs" in d)
    # PyYAML reads the bare key `on` as True (YAML 1.1); GitHub reads it as "on".
    triggers = github.get("on", github.get(True))
    assert "schedule" in triggers and github["permissions"]["id-token"] == "write"
    job = next(iter(github["jobs"].values()))
    assert "self-hosted" in job["runs-on"]
    assert any("role-to-assume" in (step.get("with") or {}) for step in job["steps"])
    gitlab = next(d for d in docs if "stages" in d)
    gl_job = gitlab["fedledger-run"]
    assert gl_job["rules"][0]["if"] == '$CI_PIPELINE_SOURCE == "schedule"'
    assert "id_tokens" in gl_job and "AWS_ROLE_ARN" in gl_job["variables"]


@pytest.mark.parametrize(("where", "text"), INI_BLOCKS, ids=_ids(INI_BLOCKS))
def test_systemd_units_parse(where: str, text: str) -> None:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",), strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text, source=where)
    assert parser.sections()
    if parser.has_section("Service"):
        assert parser["Service"]["Type"] == "oneshot" and " run " in parser["Service"]["ExecStart"] + " "
    if parser.has_section("Timer"):
        assert parser["Timer"]["Persistent"] == "true"


# -- every command the docs name -------------------------------------------------------------

INLINE = re.compile(r"`([^`\n]+)`")
# `fedledger` where a shell would run it: at the start of a line or inline span (after
# `- ` or `$ `), as the last part of a path (/opt/fedledger/bin/fedledger), after `run:`,
# `&&` or `||`; not in prose such as "Description=Run fedledger nightly".
INVOCATION = re.compile(r"(?:^\s*(?:[-$]\s+)?|/|\brun:\s+|&&\s*|\|\|\s*)fedledger((?:[ \t]+[^\s|;&>`]+)+)")


def _command_path(tokens: list[str]) -> tuple[str, ...] | None:
    i = 0
    while i < len(tokens) and tokens[i].startswith("-"):
        i += 2 if tokens[i] in GLOBAL_OPTIONS_WITH_VALUE else 1
    if i >= len(tokens) or not re.fullmatch(r"[a-z][a-z-]*", tokens[i]):
        return None
    path = [tokens[i]]
    if tokens[i] in ("config", "collect", "cloudtrail", "vault") and i + 1 < len(tokens) and re.fullmatch(r"[a-z][a-z-]*", tokens[i + 1]):
        path.append(tokens[i + 1])
    return tuple(path)


def _named_commands() -> dict[tuple[str, ...], str]:
    named: dict[tuple[str, ...], str] = {}
    for path in DOC_FILES:
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        code = [m.group(2) for m in FENCE.finditer(text)] + INLINE.findall(FENCE.sub("", text))
        for chunk in code:
            for line in chunk.replace("\\\n", " ").splitlines():
                for match in INVOCATION.finditer(line):
                    command = _command_path(match.group(1).split())
                    if command is not None:
                        named.setdefault(command, path.name)
    return named


NAMED = _named_commands()


def _registered(command: tuple[str, ...]) -> bool:
    node = typer.main.get_command(app)
    for part in command:
        children = getattr(node, "commands", None)  # a group (typer may not use click's own classes)
        if not isinstance(children, dict) or part not in children:
            return False
        node = children[part]
    return True


def test_the_docs_name_the_commands_this_issue_adds() -> None:
    for command in [("run",), ("status",), ("config", "check"), ("verify",), ("verify-bundle",)]:
        assert command in NAMED, f"no doc names `fedledger {' '.join(command)}`"


@pytest.mark.parametrize("command", sorted(NAMED), ids=[" ".join(c) for c in sorted(NAMED)])
def test_every_command_in_the_docs_answers_help(command: tuple[str, ...]) -> None:
    if not _registered(command):
        message = (f"`fedledger {' '.join(command)}` (named in {NAMED[command]}) is not registered on this branch; "
                   "another issue adds it")
        pytest.fail(message)
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


# -- every option the docs pass to a command exists, every link resolves ----------------------

def _options_named() -> list[tuple[tuple[str, ...], str, str]]:
    """(command, --option, doc) for every `--option` the docs pass after a command they name."""
    found = []
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        code = [m.group(2) for m in FENCE.finditer(text)] + INLINE.findall(FENCE.sub("", text))
        for chunk in code:
            for line in chunk.replace("\\\n", " ").splitlines():
                for match in INVOCATION.finditer(line):
                    tokens = match.group(1).split()
                    command = _command_path(tokens)
                    if command is None:
                        continue
                    start = tokens.index(command[-1]) + 1
                    for token in tokens[start:]:
                        if token.startswith("--") and len(token) > 2:
                            found.append((command, token.split("=", 1)[0], path.name))
    return found


def _command(command: tuple[str, ...]) -> typer.core.TyperCommand:
    node = typer.main.get_command(app)
    for part in command:
        node = node.commands[part]  # type: ignore[attr-defined]
    return node  # type: ignore[return-value]


OPTIONS_NAMED = sorted(set(_options_named()))


@pytest.mark.parametrize(("command", "option", "doc"), OPTIONS_NAMED,
                         ids=[f"{' '.join(c)} {o} ({d})" for c, o, d in OPTIONS_NAMED])
def test_every_option_in_the_docs_exists(command: tuple[str, ...], option: str, doc: str) -> None:
    if not _registered(command):
        pytest.skip(f"`fedledger {' '.join(command)}` is not registered (the test above fails for it)")
    accepted = {name for param in _command(command).params for name in (*param.opts, *param.secondary_opts)}
    assert option in accepted | {"--help"}, (
        f"{doc} passes {option} to `fedledger {' '.join(command)}`, which has no such option "
        f"(global options go before the command: `fedledger {option} ... {' '.join(command)}`)")


LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")


def _links() -> list[tuple[str, str]]:
    return [(path.name if path.parent.name != "docs" else f"docs/{path.name}", target)
            for path in DOC_FILES for target in LINK.findall(path.read_text(encoding="utf-8"))
            if not re.match(r"[a-z]+:", target)]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces as '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize(("doc", "target"), _links(), ids=[f"{d} -> {t}" for d, t in _links()])
def test_every_relative_link_resolves(doc: str, target: str) -> None:
    file_part, _, anchor = target.partition("#")
    source = REPO / doc
    linked = (source.parent / file_part).resolve() if file_part else source
    assert linked.exists(), f"{doc} links to {target}: no such file"
    if anchor and linked.suffix == ".md":
        headings = re.findall(r"^#+ (.+)$", FENCE.sub("", linked.read_text(encoding="utf-8")), re.M)
        assert anchor in {_anchor(h) for h in headings}, f"{doc} links to {target}: no such heading"


# -- every command's --help: its exit codes, and no text lost to rich markup ------------------

def _leaf_commands() -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []

    def walk(node: object, path: tuple[str, ...]) -> None:
        children = getattr(node, "commands", None)
        if isinstance(children, dict):
            for name, child in children.items():
                walk(child, (*path, name))
        else:
            found.append(path)

    walk(typer.main.get_command(app), ())
    return sorted(found)


LEAVES = _leaf_commands()


@pytest.mark.parametrize("command", LEAVES, ids=[" ".join(c) for c in LEAVES])
def test_every_command_help_lists_its_exit_codes(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Exit codes: 0 ok · 1 " in text and "· 2 usage error or malformed input · 3 " in text, text[-400:]


@pytest.mark.parametrize("command", LEAVES, ids=[" ".join(c) for c in LEAVES])
def test_help_texts_keep_their_brackets(command: tuple[str, ...]) -> None:
    """typer renders help as rich markup, where `[signer]` is a style tag and vanishes: a
    bracket that is meant to be read must be written `\\[`."""
    node = _command(command)
    texts = [node.help or "", node.epilog or ""] + [getattr(p, "help", None) or "" for p in node.params]
    for text in texts:
        assert not re.search(r"(?<!\\)\[[a-z_/]+\]", text), f"unescaped markup-like bracket in: {text!r}"


def test_the_config_sections_show_in_help() -> None:
    result = CliRunner().invoke(app, ["checkpoint", "--help"], env={"COLUMNS": "400"})
    assert "(default: the --config [signer], else the key beside the ledger)" in result.output
    assert "its [signer] (unless --key" in result.output
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "400"})
    assert "(default: [bundle] after_run)" in result.output


def _rotation_key_commands() -> list[str]:
    text = (REPO / "docs" / "security-model.md").read_text(encoding="utf-8")
    section = text[text.index("### Rotate like this"):text.index("## Operational hardening")]
    (block,) = [m.group(2) for m in FENCE.finditer(section) if m.group(1) == "sh"]
    return [line for line in block.splitlines() if line.strip()]


def test_the_rotation_procedure_with_file_keys_works_as_written(tmp_path: Path) -> None:
    """docs/security-model.md, "Rotate like this", with file keys: the new key made by the page's own
    commands signs the handover that `fedledger checkpoint --config` signs, `verify` with only the old
    key pinned reports the new key accepted by handover, and the report and exit code of pinning the
    new key alone, and both keys, are what step 5 says. (Anchoring in S3 is left out here.)"""
    import os
    import shlex
    import subprocess

    from tests.ops_workspace import ORIGIN, make_workspace, manual_source, write_events

    write_events(tmp_path / "a.jsonl", 4)
    ws = make_workspace(tmp_path / "ws", manual_source("reviews", str(tmp_path / "a.jsonl")))
    assert ws.cli("run", "--config", str(ws.config)).exit_code == 0  # the old key's last checkpoint
    old_pub, old_key = ws.ledger.with_name("fedledger.pub"), ws.ledger.with_name("fedledger.key")
    for command in _rotation_key_commands():
        assert shlex.split(command)[0] == "openssl", command
        subprocess.run(shlex.split(command), cwd=ws.root, check=True, capture_output=True)
    assert (ws.root / "new.key").stat().st_mode & 0o077 == 0 and (ws.root / "new.pub").is_file()

    config = ws.config.read_text(encoding="utf-8").replace(
        "[[sources]]", f'[signer]\nkey_file = "new.key"\nprevious_keys = ["{old_pub}"]\n'
                       f'handover_key_file = "{old_key}"\n\n[[sources]]', 1)
    ws.config.write_text(config, encoding="utf-8")
    checked = ws.cli("config", "check", "--config", str(ws.config))
    assert checked.exit_code == 0 and "WARNING" not in checked.output, checked.output
    signed = ws.cli("checkpoint", "--config", str(ws.config))
    assert signed.exit_code == 0, signed.output
    assert re.search(r"key handover: the previous key \w{8} co-signed this checkpoint, handing the ledger over "
                     r"to key \w{8} from size 4 on", signed.stderr), signed.stderr
    os.remove(old_key)  # step 3: retire the old private key (the handover is signed; nothing needs it)

    def verify(*keys: Path) -> Any:
        pins = [arg for key in keys for arg in ("--trusted-key", str(key))]
        return ws.cli("verify", str(ws.ledger), *pins, "--origin", ORIGIN)

    old_only = verify(old_pub)
    assert old_only.exit_code == 0, old_only.output
    assert re.search(r"key \w{8} accepted by handover from key \w{8} at size 4", old_only.stdout), old_only.stdout
    new_only = verify(ws.root / "new.pub")
    assert new_only.exit_code == 1 and "unknown-signer" in new_only.stdout, new_only.stdout
    both = verify(old_pub, ws.root / "new.pub")
    assert both.exit_code == 0 and "also handed over to by key" in both.stdout, both.stdout
