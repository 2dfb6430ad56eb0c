"""xlwings' Windows UDF machinery (decorators that record `__xlfunc__`, the VBA wrapper generator) loaded on Linux.

`xlwings.udfs` imports pywin32 at the top; its decorators and `generate_vba_wrapper` never call it, so stand-ins for
`pythoncom`, `pywintypes` and `win32com.client` are enough to import it. `import_with_metadata` then imports an
xlcollab module with `xlwings.func/arg/ret` pointing at the recording decorators, as they do on Windows.
"""
from __future__ import annotations

import importlib
import io
import sys
import types
from contextlib import contextmanager
from types import SimpleNamespace

STUBS = ("pythoncom", "pywintypes", "win32com", "win32com.client")


@contextmanager
def windows_udfs():
    """Yield `xlwings.udfs` imported with stand-ins for pywin32; sys.modules is restored afterwards."""
    saved = {name: sys.modules.get(name) for name in STUBS + ("xlwings.udfs",)}
    pythoncom = types.ModuleType("pythoncom")
    pythoncom.CoInitialize = lambda: None
    pywintypes = types.ModuleType("pywintypes")
    pywintypes.com_error = type("com_error", (Exception,), {})
    win32com = types.ModuleType("win32com")
    client = types.ModuleType("win32com.client")
    client.Dispatch = lambda *a, **k: None
    win32com.client = client
    sys.modules.update({"pythoncom": pythoncom, "pywintypes": pywintypes, "win32com": win32com,
                        "win32com.client": client})
    sys.modules.pop("xlwings.udfs", None)
    try:
        yield importlib.import_module("xlwings.udfs")
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def import_with_metadata(udfs, module_names: list[str]) -> list[types.ModuleType]:
    """Fresh imports of `module_names` (first = the one to return last) with xlwings' recording decorators."""
    import xlwings as xw
    saved = {k: getattr(xw, k) for k in ("func", "arg", "ret")}
    old = {name: sys.modules.pop(name, None) for name in module_names}
    xw.func, xw.arg, xw.ret = udfs.xlfunc, udfs.xlarg, udfs.xlret
    try:
        return [importlib.import_module(name) for name in module_names]
    finally:
        for k, v in saved.items():
            setattr(xw, k, v)
        for name, module in old.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def vba_wrappers(udfs, module, module_name: str = "xlcollab.excel", workbook: str = "collab_filter.xlsm") -> str:
    """The VBA that xlwings' Import Functions writes for `module` (what Excel then calls)."""
    out = io.StringIO()
    udfs.generate_vba_wrapper(module_name, module, out, SimpleNamespace(Name=workbook))
    return out.getvalue()


def metadata(module) -> dict:
    """Every UDF's `__xlfunc__` as plain data (converters by name), to compare across versions of the code."""
    def plain(v):
        return v.__module__ + "." + v.__qualname__ if isinstance(v, type) or callable(v) else v
    out = {}
    for name in dir(module):
        xlf = getattr(getattr(module, name), "__xlfunc__", None)
        if xlf is None:
            continue
        out[name] = {
            "args": [{"name": a["name"], "doc": a["doc"], "vba": a["vba"], "optional": a.get("optional", "<required>"),
                      "options": {k: plain(v) for k, v in a["options"].items()}} for a in xlf["args"]],
            "ret": {"doc": xlf["ret"]["doc"], "options": {k: plain(v) for k, v in xlf["ret"]["options"].items()}},
            **{k: xlf[k] for k in ("name", "sub", "category", "call_in_wizard", "volatile", "async_mode")},
        }
    return out
