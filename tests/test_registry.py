import pytest

import humr
from humr.registry import Registry


def test_build_and_names():
    reg = Registry("thing")

    @reg.register("b")
    def make_b(x=1):
        return ("b", x)

    @reg.register("a")
    class A:
        def __init__(self, y):
            self.y = y

    assert reg.names() == ["a", "b"]
    assert reg.build("b", x=5) == ("b", 5)
    assert reg.build("a", y=3).y == 3
    assert "a" in reg and "c" not in reg


def test_unknown_name_lists_known():
    reg = Registry("flow")
    reg.register("nice")(object)
    reg.register("realnvp")(object)
    with pytest.raises(KeyError) as info:
        reg.build("glo")
    assert "glo" in str(info.value) and "nice" in str(info.value) and "realnvp" in str(info.value)


def test_duplicate_registration_rejected():
    reg = Registry("loss")
    reg.register("x")(int)
    with pytest.raises(KeyError):
        reg.register("x")(float)
    reg.unregister("x")
    reg.register("x")(float)
    assert reg.get("x") is float
    with pytest.raises(KeyError, match="known"):
        reg.unregister("y")


def test_version_and_cli_help(capsys):
    from humr.cli import main

    assert isinstance(humr.__version__, str)
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert humr.__version__ in capsys.readouterr().out


def test_import_humr_is_light_and_registries_fill_on_demand():
    """``import humr`` imports no torch / nflows / torchmetrics / smplx / lightning; asking a
    registry for its names imports the owning package only."""
    import subprocess
    import sys

    code = ("import sys, humr\n"
            "heavy = ('torch', 'nflows', 'torchmetrics', 'smplx', 'lightning', 'omegaconf', 'scipy')\n"
            "print(sorted(m for m in heavy if m in sys.modules))\n"
            "names = humr.FLOWS.names()\n"
            "print(names, 'nflows' in sys.modules, 'humr.conditions' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == "[]"
    assert lines[1] == "['glow', 'nice', 'realnvp'] True False"


def test_component_configs_follow_the_signature():
    reg = Registry("thing")

    @reg.register("a")
    class A:
        def __init__(self, dim, width: int = 4, rates: tuple[float, ...] = (0.5,),
                     name: str | None = None, module: object = None):
            pass

    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(reg.config("a"))}
    assert set(fields) == {"width", "rates", "name"}          # no default / unknown type: out
    assert fields["width"].default == 4 and fields["rates"].default_factory() == [0.5]

    @dataclasses.dataclass
    class BConfig:
        k: int = 1

    reg.register("b", config=BConfig)(lambda k=1: k)
    assert reg.config("b") is BConfig
    with pytest.raises(TypeError, match="dataclass"):
        reg.register("c", config=dict)
