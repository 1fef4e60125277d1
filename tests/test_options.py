"""Every option of every command arrives with its declared type, from the command line and from
``--config`` YAML (issue: ``--lr`` typed ``float | None`` arrived as a string and crashed training)."""

from __future__ import annotations

import argparse
import typing

import pytest
import yaml

from lvbert.cli import build_parser
from lvbert.errors import LvBertError
from lvbert.options import collect, config_fields, field_type, flag_name

# A valid value of each base type, as typed on a command line and as written in YAML (YAML reads
# ``1e-3`` as a string, which is exactly what has to arrive as a float).
CLI_TEXT = {int: ("7", 7), float: ("1e-3", 1e-3), str: ("13.5M", "13.5M")}
YAML_VALUE = {int: (7, 7), float: ("1e-3", 1e-3), str: (13500000, "13500000"), bool: (True, True)}


def commands():
    """(path, parser, config class) of every command built from a config dataclass."""
    found = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    cls = sub.get_default("config_class")
                    if cls is not None:
                        found.append((tuple(path + [name]), sub, cls))
                    walk(sub, path + [name])

    walk(build_parser(), [])
    return found


COMMANDS = commands()


def test_every_command_is_built_from_a_config():
    names = {" ".join(p) for p, _, _ in COMMANDS}
    assert names >= {"arch info", "data fetch", "data prepare", "tokenizer train", "supernet train", "supernet extract",
                     "search", "pretrain", "finetune", "predict", "eval", "quickstart"}  # fmt: skip


def _cases():
    for path, parser, cls in COMMANDS:
        for name, (f, ftype) in config_fields(cls).items():
            yield pytest.param(path, parser, cls, name, f, ftype, id=f"{' '.join(path)}:{name}")


@pytest.mark.parametrize("path, parser, cls, name, f, ftype", list(_cases()))
def test_option_arrives_with_its_type_from_cli_and_yaml(path, parser, cls, name, f, ftype, tmp_path):
    flag = flag_name(name)
    positional = f.metadata.get("positional", False)
    # command line
    if ftype.is_list:
        for argv in ([flag, "a", "b"], [flag, "a,b"]):
            values = collect(cls, parser.parse_args(argv))
            assert values[name] == ["a", "b"]
    elif ftype.base is bool:
        assert collect(cls, parser.parse_args([flag]))[name] is True
        assert collect(cls, parser.parse_args(["--no-" + flag[2:]]))[name] is False
    else:
        text, expected = CLI_TEXT[ftype.base]
        values = collect(cls, parser.parse_args([text] if positional else [flag, text]))
        assert type(values[name]) is ftype.base and values[name] == expected
    # YAML
    raw, expected = (["a", "b"], ["a", "b"]) if ftype.is_list else YAML_VALUE[ftype.base]
    path_yaml = tmp_path / "run.yaml"
    path_yaml.write_text(yaml.safe_dump({name: raw}))
    values = collect(cls, parser.parse_args(["--config", str(path_yaml)]))
    assert values[name] == expected and type(values[name]) is type(expected)
    if ftype.optional:
        path_yaml.write_text(f"{name}: null\n")
        assert collect(cls, parser.parse_args(["--config", str(path_yaml)]))[name] is None


def test_optional_types_are_read_as_their_type():
    assert field_type(float | None).base is float and field_type(float | None).optional
    assert field_type(typing.Optional[int]).base is int
    assert field_type(list[str] | None).is_list


def test_a_value_of_the_wrong_type_is_one_line(tmp_path, capsys):
    from lvbert.cli import main

    with pytest.raises(SystemExit) as e:  # argparse's own exit, one line
        main(["supernet", "train", "--data", "x", "--lr", "fast"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--lr must be a number, got 'fast'" in err and len(err.strip().splitlines()) == 1
    cfg = tmp_path / "c.yaml"
    cfg.write_text("steps: many\n")
    with pytest.raises(LvBertError, match="--steps must be an integer, got 'many'"):
        collect(COMMANDS[[" ".join(p) for p, _, _ in COMMANDS].index("supernet train")][2],
                argparse.Namespace(config=str(cfg)))  # fmt: skip


def test_lr_and_warmup_reach_training_as_numbers(real_data, tmp_path):
    """The reproduction of the crash: --lr on the command line, lr and warmup in YAML."""
    from lvbert.cli import main

    out = tmp_path / "sn"
    argv = ["supernet", "train", "--size", "tiny", "--num-slots", "4", "--data", str(real_data), "--steps", "2",
            "--batch-size", "8", "--lr", "1e-3", "--warmup-steps", "1", "--eval-sequences", "8", "--no-progress",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    saved = yaml.safe_load((out / "run_config.yaml").read_text())["config"]
    assert saved["lr"] == 1e-3 and saved["warmup_steps"] == 1 and saved["num_slots"] == 4
    cfg = tmp_path / "pt.yaml"
    cfg.write_text(f"data: {real_data}\nsize: tiny\narch: AFAF\nobjective: mlm\nsteps: 2\nbatch_size: 8\nlr: 1e-3\n"
                   "warmup_steps: 1\ngenerator_hidden: 16\neval_sequences: 8\nprogress: false\n"
                   f"out: {tmp_path / 'pt'}\n")  # fmt: skip
    assert main(["pretrain", "--config", str(cfg)]) == 0
    saved = yaml.safe_load((tmp_path / "pt" / "run_config.yaml").read_text())["config"]
    assert saved["lr"] == 1e-3 and isinstance(saved["warmup_steps"], int)


def test_threads_option_and_the_wait_policy_default(capsys):
    import os

    import torch

    from lvbert.cli import main

    before = torch.get_num_threads()
    try:
        assert main(["--threads", "1", "arch", "info", "bert", "--size", "tiny"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SystemExit):
        main(["--threads", "0", "arch", "info", "bert"])
    assert "--threads must be at least 1" in capsys.readouterr().err
    # import lvbert (before torch) shortens OpenMP's spinning unless the user chose a wait policy
    import subprocess
    import sys

    def spin(env):
        code = "import lvbert, os; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip()

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    assert spin(env) == ("1000 None" if sys.platform.startswith("linux") else "None PASSIVE")
    assert spin({**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "None ACTIVE"
    assert spin({**env, "GOMP_SPINCOUNT": "7"}) == "7 None"
    env["LVBERT_THREAD_DEFAULTS"] = "0"
    assert spin(env) == "None None"
