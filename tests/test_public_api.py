"""The package's public names: functions stay functions whatever submodules have been imported."""

import importlib
import importlib.resources
import inspect
import pkgutil

import langtts


def test_every_export_is_what_it_names_after_every_submodule_is_imported() -> None:
    for module in pkgutil.walk_packages(langtts.__path__, "langtts."):
        if not module.name.endswith("__main__"):  # running it is the CLI
            importlib.import_module(module.name)
    from langtts import aevaluate, aoptimize, evaluate, optimize, resume

    for function in (evaluate, optimize, resume):
        assert inspect.isfunction(function), function
    for function in (aevaluate, aoptimize):
        assert inspect.iscoroutinefunction(function), function
    for name in langtts.__all__:
        value = getattr(langtts, name)
        assert not inspect.ismodule(value), f"langtts.{name} is a module"
        assert getattr(value, "__name__", name) == name, name


def test_the_package_ships_its_type_information() -> None:
    assert (importlib.resources.files("langtts") / "py.typed").is_file()
