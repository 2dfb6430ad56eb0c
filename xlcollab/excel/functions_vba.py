"""The XC_* worksheet functions as the add-in declares them in VBA: xlwings' wrappers, plus spills and real errors.

Each wrapper is the one xlwings' Import Functions writes for an add-in (same signature, same `XLPy.CallUDF` call on
`ActiveWorkbook`), with two changes it cannot make itself:
- errors are Excel errors: an answer "#xlcollab: reason" (see `udfs.cell_error`) or a failed call becomes #VALUE!,
  so ISERROR works, and `=XC_ERROR(cell)` gives the reason;
- XC_RECOMMEND and XC_SIMILAR spill natively where Excel has dynamic arrays; older Excel gets their `_LEGACY`
  twins, which xlwings resizes over the cells below and right (overwriting them), as xlwings' own `sql` does.
"""
from __future__ import annotations

import inspect

from xlcollab.excel.udfs import ERROR_PREFIX, SPILLING, UDFS

UDF_MODULE = "xlcollab.excel"


def signature_of(udf) -> tuple[str, str]:
    """(VBA parameter list, CallUDF argument list) of a UDF, as xlwings' generator writes them."""
    params = list(inspect.signature(udf).parameters.values())
    declared = ", ".join(("Optional " if p.default is not p.empty else "") + p.name for p in params if p.name != "caller")
    passed = ", ".join("Nothing" if p.name == "caller" else p.name for p in params)
    return declared, passed


def functions_vba() -> list[str]:
    """The add-in's worksheet functions and their helpers, as VBA lines."""
    lines = [f'Private Const ERROR_PREFIX As String = "{ERROR_PREFIX}"',
             "Private Reasons As Object  ' calling cell -> why its XC_* function shows #VALUE! (read by XC_ERROR)", ""]
    for udf in UDFS:
        name = udf.__name__
        if name in SPILLING.values():
            continue  # reached through its spilling twin
        declared, passed = signature_of(udf)
        target = f'Spilling("{name}", "{SPILLING[name]}")' if name in SPILLING else f'"{name}"'
        lines += [f"Function {name}({declared})",
                  "    If TypeOf Application.Caller Is Range Then On Error GoTo failed",
                  f'    {name} = InCell(XLPy.CallUDF("{UDF_MODULE}", {target}, Array({passed}), ActiveWorkbook, '
                  "Application.Caller))",
                  "    Exit Function",
                  "failed:",
                  f"    {name} = InCell(ERROR_PREFIX & Err.Description)",
                  "End Function", ""]
    return lines + _HELPERS


_HELPERS = [
    "Function XC_ERROR(cell As Range) As String",
    "    ' Why the XC_* function in `cell` shows #VALUE!; empty when it shows an answer.",
    "    Dim key As String",
    "    key = cell.Cells(1, 1).Address(External:=True)",
    "    If Reasons Is Nothing Then Exit Function",
    "    If Reasons.Exists(key) Then XC_ERROR = Reasons(key)",
    "End Function",
    "",
    "Private Function InCell(ByVal answer As Variant) As Variant",
    "    ' An answer as its cell shows it: \"#xlcollab: reason\" becomes #VALUE!, the reason kept for XC_ERROR.",
    "    Dim key As String",
    "    If TypeOf Application.Caller Is Range Then key = Application.Caller.Cells(1, 1).Address(External:=True)",
    '    If Reasons Is Nothing Then Set Reasons = CreateObject("Scripting.Dictionary")',
    '    If key <> "" Then',
    "        If Reasons.Exists(key) Then Reasons.Remove key",
    "    End If",
    "    If VarType(answer) = vbString Then",
    "        If Left$(answer, Len(ERROR_PREFIX)) = ERROR_PREFIX Then",
    '            If key <> "" Then Reasons(key) = Mid$(answer, Len(ERROR_PREFIX) + 1)',
    "            InCell = CVErr(xlErrValue)",
    "            Exit Function",
    "        End If",
    "    End If",
    "    InCell = answer",
    "End Function",
    "",
    "Private Function Spilling(ByVal name As String, ByVal legacy As String) As String",
    "    ' Excel with dynamic arrays spills an array answer itself; older Excel needs xlwings' resize (the twin).",
    "    If has_dynamic_array() Then Spilling = name Else Spilling = legacy",
    "End Function",
]
