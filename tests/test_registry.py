"""Registry behaviour and error messages."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT

import registry
from registry import Registry, RegistryError


def _fresh():
    reg = Registry("widget")

    @reg.register("alpha", aliases=("a",), size=3)
    def alpha():
        return "alpha"

    @reg.register(aliases=("b1",))
    def beta_one():
        return "beta"

    return reg


def test_get_by_name_alias_and_metadata():
    reg = _fresh()
    assert reg.get("alpha")() == "alpha"
    assert reg.get("a") is reg.get("alpha")
    assert reg.get("b1")() == "beta"  # name defaults to the function's __name__
    assert reg.metadata("a") == {"size": 3}
    assert "a" in reg and "alpha" in reg and "gamma" not in reg
    assert len(reg) == 2


def test_unknown_name_lists_known_names_and_closest_match():
    reg = _fresh()
    with pytest.raises(RegistryError) as e:
        reg.get("alpah")
    message = str(e.value)
    assert "Unknown widget 'alpah'" in message
    assert "Did you mean 'alpha'?" in message
    assert "alpha, beta_one" in message


def test_unknown_name_without_close_match_has_no_suggestion():
    with pytest.raises(RegistryError) as e:
        _fresh().get("zzzzzz")
    assert "Did you mean" not in str(e.value)


def test_duplicates_rejected_for_names_and_aliases():
    reg = _fresh()
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("alpha")(lambda: None)
    with pytest.raises(RegistryError, match="'a' is already registered"):
        reg.register("gamma", aliases=("a",))(lambda: None)
    # A rejected registration leaves nothing behind.
    assert "gamma" not in reg


def test_list_with_wildcards():
    reg = _fresh()
    reg.register("alpha_big")(lambda: None)
    assert reg.list() == ["alpha", "alpha_big", "beta_one"]
    assert reg.list("alpha*") == ["alpha", "alpha_big"]
    assert reg.list(["*big", "beta*"]) == ["alpha_big", "beta_one"]
    assert reg.list("alpha*", exclude="*big") == ["alpha"]


def test_unregister_removes_aliases():
    reg = _fresh()
    reg.unregister("a")
    assert "alpha" not in reg and "a" not in reg


def test_builtin_registries_load_their_packages():
    assert {"alexnet", "alexnet_modelzoo"} <= set(registry.MODELS.list())
    assert "cpu" in registry.BACKENDS
    assert "synthetic" in registry.DATASETS
    assert registry.MODELS.get("alexnet_torchvision") is registry.MODELS.get("alexnet")


def test_import_extra_modules_registers_user_model(tmp_path):
    plugin = tmp_path / "my_plugin_models.py"
    plugin.write_text(
        "from registry import MODELS\n"
        "@MODELS.register('plugin_model_from_file')\n"
        "def build(*, num_classes=10):\n"
        "    return num_classes\n"
    )
    try:
        assert registry.import_extra_modules(str(plugin)) == [str(plugin)]
        assert registry.MODELS.get("plugin_model_from_file")(num_classes=3) == 3
    finally:
        registry.MODELS.unregister("plugin_model_from_file")


def test_import_extra_modules_error_names_the_module():
    with pytest.raises(ImportError, match="no_such_module_xyz"):
        registry.import_extra_modules("os, no_such_module_xyz")


def test_lazy_entry_imports_its_module_only_when_built(tmp_path, monkeypatch):
    (tmp_path / "lazy_target_mod.py").write_text("LOADED = True\ndef build():\n    return 'built'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = _fresh()
    reg.register_lazy("lazy", "lazy_target_mod:build", description="a lazy entry")
    assert "lazy_target_mod" not in sys.modules
    assert reg.metadata("lazy")["description"] == "a lazy entry" and "lazy" in reg.list()
    assert "lazy_target_mod" not in sys.modules  # names and metadata need no import
    assert reg.get("lazy")() == "built"
    reg.register_lazy("broken", "lazy_target_mod:missing")
    with pytest.raises(RegistryError, match="'broken' is registered as 'lazy_target_mod:missing'"):
        reg.get("broken")
    with pytest.raises(RegistryError, match="package.module:attribute"):
        reg.register_lazy("bad", "no_colon_here")


def test_entry_point_plugin_package_registers_its_model(tmp_path):
    """An installed distribution advertising a module in the alexnet_zoo.plugins group: main.py loads it."""
    site = tmp_path / "site"
    package = site / "zoo_plugin_demo"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "from registry import MODELS\n"
        "@MODELS.register('plugin_entry_net', description='registered by an entry point')\n"
        "def plugin_entry_net(*, num_classes=10, image_size=32):\n"
        "    raise AssertionError('not built by --list')\n")
    dist = site / "zoo_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-plugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\ndemo = zoo_plugin_demo\n")
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "main.py", "--list", "--model=plugin_*"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "plugin_entry_net" in out.stdout and "registered by an entry point" in out.stdout
    # Without the distribution on the path, the model is unknown.
    out = subprocess.run([sys.executable, "main.py", "--list", "--model=plugin_*"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert "plugin_entry_net" not in out.stdout
