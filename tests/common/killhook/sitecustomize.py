"""Test hook (tests/faults): SIGKILL a stage in the middle of its writes.

With this folder on PYTHONPATH and MIDILM_KILL_AT="package.module:function:N", the N-th call of
`function` (patched when `package.module` is first imported, in whichever process imports it)
runs to completion and then the process kills itself with SIGKILL: no exception handlers, no
`finally` blocks, no atexit, as when the OOM killer or a node failure ends a job. Processes that
never import the module (DVC itself, the launcher) are untouched.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import signal
import sys
import types
from typing import Any

_SPEC = os.environ.get("MIDILM_KILL_AT", "")


def _patch(module: types.ModuleType, function_name: str, after: int) -> None:
    original = getattr(module, function_name)
    calls = [0]

    def killing(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        calls[0] += 1
        if calls[0] >= after:
            sys.stderr.write(f"killhook: SIGKILL after call {calls[0]} of {function_name}\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(module, function_name, killing)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    def __init__(self, module_name: str, function_name: str, after: int) -> None:
        self.module_name, self.function_name, self.after = module_name, function_name, after

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != self.module_name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        loader, hook = spec.loader, self

        class _Loader(importlib.abc.Loader):
            def create_module(self, spec: Any) -> Any:
                return loader.create_module(spec)

            def exec_module(self, module: types.ModuleType) -> None:
                loader.exec_module(module)  # type: ignore[attr-defined]
                _patch(module, hook.function_name, hook.after)

        spec.loader = _Loader()
        return spec


if _SPEC:
    _module, _function, _after = _SPEC.split(":")
    sys.meta_path.insert(0, _PatchOnImport(_module, _function, int(_after)))
