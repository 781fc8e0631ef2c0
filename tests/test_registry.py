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


def test_version_and_cli_help(capsys):
    from humr.cli import main

    assert isinstance(humr.__version__, str)
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert humr.__version__ in capsys.readouterr().out
