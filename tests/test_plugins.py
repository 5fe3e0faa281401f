"""Plugins load through entry points; a third-party plugin in its own distribution works like a built-in."""

import subprocess
import sys
import textwrap

from visionbench.run.plugins import collect, default_registry, make_manager

BUILTIN_STRATEGIES = {"sequential", "concurrent", "single-prompt", "adaptive"}


def test_builtins_register_through_entry_points():
    registry = collect(make_manager())
    assert BUILTIN_STRATEGIES <= set(registry.strategies)
    assert "local-faces" in registry.providers
    # they came from the installed distribution's entry points, not from a hard-coded list
    assert registry.origins["strategy:sequential"].startswith("visionbench ")
    assert registry.origins["provider:local-faces"].startswith("visionbench ")


def test_no_entry_points_means_no_builtins():
    assert collect(make_manager(entry_points=False)).strategies == {}


def test_plugin_module_registered_directly(registry):
    assert registry.providers["scripted"].name == "scripted"
    assert registry.origins["provider:scripted"] == "fakeplugin"


def test_third_party_distribution_is_found_by_entry_point(tmp_path):
    """A tiny 'installed' package (a module plus dist-info with entry_points.txt) is picked up by a fresh process."""
    (tmp_path / "vb_echo.py").write_text(
        textwrap.dedent('''
        from visionbench import hookimpl
        from visionbench.provider import Provider
        from visionbench.types import Capabilities, Response

        class Echo(Provider):
            """Says how many images it got."""
            name = "echo"
            def capabilities(self, model):
                return Capabilities(max_images_per_request=8)
            async def generate(self, request):
                return Response(text=str(len(request.images)), usage=None)

        @hookimpl
        def register_providers(register):
            register(Echo)
    ''')
    )
    dist = tmp_path / "vb_echo-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vb-echo\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text("[visionbench]\necho = vb_echo\n")
    out = subprocess.run(
        [sys.executable, "-m", "visionbench.cli", "providers"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": ""},
        check=True,
    )
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}
    assert "echo" in lines and "vb-echo 1.2.3" in lines["echo"] and "Says how many images" in lines["echo"]
    assert "local-faces" in lines


def test_default_registry_is_cached():
    assert default_registry() is default_registry()


class _Named:
    """A plugin object; ``_origin`` names it by its class."""


def _plugin(name: str, providers=None, fail: Exception | None = None):
    from visionbench import hookimpl

    class Plugin(_Named):
        @hookimpl
        def register_providers(self, register):
            if fail is not None:
                raise fail
            for cls in providers or ():
                register(cls)

    Plugin.__name__ = name
    return Plugin()


def _provider(provider_name: str):
    from visionbench.provider import Provider

    class P(Provider):
        name = provider_name

        def capabilities(self, model):
            raise NotImplementedError

        async def generate(self, request):
            raise NotImplementedError

    return P


def test_a_hook_that_raises_is_named():
    import pytest

    from visionbench.errors import VisionbenchError

    pm = make_manager([_plugin("GoodPlugin", [_provider("good")]), _plugin("BrokenPlugin", fail=KeyError("x"))])
    with pytest.raises(VisionbenchError, match=r"plugin BrokenPlugin failed in register_providers: KeyError"):
        collect(pm)


def test_a_bad_registration_and_a_duplicate_name_the_plugins_at_fault():
    import pytest

    from visionbench.errors import VisionbenchError

    with pytest.raises(VisionbenchError, match=r"plugin OddPlugin registered 42, which is not a Provider subclass"):
        collect(make_manager([_plugin("OddPlugin", [42])], entry_points=False))
    pm = make_manager([_plugin("FirstPlugin", [_provider("same")]), _plugin("SecondPlugin", [_provider("same")])])
    with pytest.raises(VisionbenchError, match=r"'same' registered twice: by \w+Plugin and by \w+Plugin"):
        collect(pm)
    registry = collect(make_manager([_plugin("OnePlugin", [_provider("one")])]))
    assert registry.origins["provider:one"] == "OnePlugin" and registry.origins["provider:local-faces"] != "OnePlugin"


def test_hooks_are_called_through_pluggy_so_an_implementation_takes_only_the_arguments_it_names():
    from visionbench import hookimpl

    called = []

    class NoArgs:
        @hookimpl
        def register_strategies(self):
            called.append(True)

    collect(make_manager([NoArgs()], entry_points=False))
    assert called == [True]
