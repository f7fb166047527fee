"""yamlload.py: sync.yaml is bounded (bytes, expanded nodes, depth) before anything reads it."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from secretsync.config import loader as yamlload
from secretsync.config.loader import (
    MAX_CONFIG_BYTES,
    MAX_CONFIG_CHARS,
    MAX_CONFIG_NODES,
    MAX_YAML_DEPTH,
    load_yaml,
    read_config_text,
)
from secretsync.config.model import ConfigError, load_config
from tests.support.paths import REPO

MEMORY_LIMIT_BYTES = 512 * 1024 * 1024
VALID_TAIL = "outputs: [{path: /o/a, secrets: [{id: s}]}]\n"


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """Nested aliases: `width ** levels` strings once expanded, from a few hundred bytes."""
    names = [chr(ord("a") + i) for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [" + ",".join(['"lol"'] * width) + "]"]
    for prev, cur in itertools.pairwise(names):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * width) + "]")
    # a duration echoes its input in the error: the old code repr'd 387M strings here
    return "\n".join(lines) + f"\npoll: {{interval: *{names[-1]}}}\n" + VALID_TAIL


def check_with_memory_limit(config: str) -> subprocess.CompletedProcess[str]:
    """`secretsync check -c config` in a child whose address space is capped.

    Without a bound the child fails with MemoryError (or is killed) instead of
    taking the machine down; the deadline only catches a hang.
    """
    code = (
        "import resource, runpy, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT_BYTES}, {MEMORY_LIMIT_BYTES}))\n"
        f"sys.argv = ['secretsync', 'check', '-c', {config!r}]\n"
        "runpy.run_module('secretsync', run_name='__main__', alter_sys=True)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
    )


@pytest.mark.slow
def test_an_alias_bomb_is_refused_by_check_in_bounded_memory(tmp_path: Path) -> None:
    cfg = tmp_path / "sync.yaml"
    cfg.write_text(billion_laughs())
    assert cfg.stat().st_size < 1024

    result = check_with_memory_limit(str(cfg))

    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert (
        f"config: too many YAML nodes after alias expansion (limit {MAX_CONFIG_NODES})"
        in result.stderr
    )
    assert len(result.stderr) < 1000


@pytest.mark.slow
def test_check_reads_at_most_the_size_limit_of_an_endless_file() -> None:
    result = check_with_memory_limit("/dev/zero")

    assert result.returncode == 2, result.stderr[-2000:]
    assert "larger than 1 MiB (limit 1048576 bytes)" in result.stderr


def test_a_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "sync.yaml"
    cfg.write_text(VALID_TAIL + "#" * (MAX_CONFIG_BYTES - len(VALID_TAIL) - 1) + "\n")
    assert cfg.stat().st_size == MAX_CONFIG_BYTES
    assert read_config_text(cfg).startswith(VALID_TAIL)  # exactly at the limit: fine

    with cfg.open("a") as stream:
        stream.write("#")
    with pytest.raises(ConfigError, match=r"larger than 1 MiB \(limit 1048576 bytes\)"):
        load_config(cfg)


def test_every_alias_counts_as_the_whole_node_it_names() -> None:
    shared = "&a [" + ",".join(["0"] * 9) + "]"  # a list of 9: 10 nodes
    # root list (1 node) + the anchored list + n aliases to it (10 nodes each)
    fits = (MAX_CONFIG_NODES - 1) // 10 - 1
    load_yaml(f"[{shared}" + ", *a" * fits + "]")
    with pytest.raises(ConfigError, match=f"alias expansion \\(limit {MAX_CONFIG_NODES}\\)"):
        load_yaml(f"[{shared}" + ", *a" * (fits + 1) + "]")


def test_the_node_limit_counts_plain_nodes_too(monkeypatch: pytest.MonkeyPatch) -> None:
    limit = 1000  # the real limit takes seconds of pure-Python parsing to reach
    monkeypatch.setattr(yamlload, "MAX_CONFIG_NODES", limit)
    load_yaml("[" + "0," * (limit - 1) + "]")  # the list and its items
    with pytest.raises(
        ConfigError, match=f"too many YAML nodes after alias expansion \\(limit {limit}\\)$"
    ):
        load_yaml("[" + "0," * limit + "]")


def test_a_long_string_aliased_many_times_counts_its_text_each_time() -> None:
    long = "x" * 100_000
    repeats = MAX_CONFIG_CHARS // len(long)  # the anchored copy itself counts once
    load_yaml(f"[&s {long}" + ", *s" * (repeats - 1) + "]")
    with pytest.raises(ConfigError, match=f"too much YAML text .*limit {MAX_CONFIG_CHARS} char"):
        aliases = ", ".join(f"k{i}: *s" for i in range(repeats))
        load_yaml(f"static: {{a: &s {long}, {aliases}}}")


def test_aliases_and_merge_keys_within_the_limit_still_work() -> None:
    data = load_yaml(
        "base: &base {format: json, secrets: &both [{id: one}, {id: two}]}\n"
        "outputs:\n"
        "  - {<<: *base, path: /o/a}\n"
        "  - {<<: *base, path: /o/b, format: env, secrets: *both}\n"
    )
    assert isinstance(data, dict)
    first, second = data["outputs"]
    assert first == {"format": "json", "secrets": [{"id": "one"}, {"id": "two"}], "path": "/o/a"}
    assert second["format"] == "env" and second["secrets"] == first["secrets"]


def test_a_recursive_alias_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"inside the node it names \(a recursive document\)"):
        load_yaml("a: &a [1, *a]\n")


def test_nesting_is_bounded() -> None:
    depth_ok = MAX_YAML_DEPTH - 1  # the document's top node is one level
    assert load_yaml("x: " + "[" * depth_ok + "]" * depth_ok) is not None
    deep = 10_000  # the plain composer would hit Python's recursion limit
    with pytest.raises(ConfigError, match=f"nested too deeply .*limit {MAX_YAML_DEPTH} levels"):
        load_yaml("x: " + "[" * deep + "]" * deep)


def test_a_key_given_twice_is_an_error_not_a_silent_override() -> None:
    with pytest.raises(ConfigError, match=r"key 'outputs' appears twice .* line 1.* line 3"):
        load_yaml("outputs: [{path: /o/a, secrets: [{id: s}]}]\naws: {}\noutputs: []\n")


@pytest.mark.parametrize(
    ("text", "kind"),
    [("settle: " + "1" * 5000 + "\n", "int"), ("settle: 2024-02-30\n", "timestamp")],
    ids=["int over 4300 digits", "impossible date"],
)
def test_a_scalar_python_cannot_build_is_a_config_error(text: str, kind: str) -> None:
    with pytest.raises(ConfigError, match=f"line 1, column 9 cannot be read as {kind}"):
        load_yaml(text)


def test_syntax_errors_keep_their_line_and_column() -> None:
    with pytest.raises(ConfigError, match=r"YAML syntax error at line 2, column 1"):
        load_yaml("outputs: [\n")


def test_python_tags_are_refused() -> None:
    with pytest.raises(ConfigError, match="YAML syntax error"):
        load_yaml("x: !!python/object/apply:os.getcwd []\n")


def test_the_seeded_non_printable_class_matches_exactly_what_pyyaml_s_own_would() -> None:
    every_code_point = "".join(map(chr, range(sys.maxunicode + 1)))
    # re.UNICODE (the default of a str pattern) gives another cache key: compiled afresh
    pyyaml_own = re.compile(yamlload.PYYAML_NON_PRINTABLE, re.UNICODE)
    seeded = re.compile(yamlload.NON_PRINTABLE)
    assert pyyaml_own is not seeded
    refused = [m.start() for m in pyyaml_own.finditer(every_code_point)]
    assert [m.start() for m in seeded.finditer(every_code_point)] == refused
    assert 0 in refused and 0xFFFE in refused and 0x41 not in refused  # not vacuous


@pytest.mark.slow
def test_pyyaml_s_reader_holds_the_seeded_class_so_its_import_skips_the_slow_compile() -> None:
    # in a fresh interpreter: here PyYAML may have been imported before the loader
    probe = (
        "import secretsync.config.loader as loader, yaml.reader\n"
        "print(yaml.reader.Reader.NON_PRINTABLE.pattern == loader.NON_PRINTABLE)\n"
        "try:\n"
        "    yaml.reader.Reader('a: \\x07')\n"
        "except yaml.reader.ReaderError:\n"
        "    print('refused')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    # the pure-Python reader holds the seeded class and still refuses what YAML refuses
    assert result.stdout.split() == ["True", "refused"]
