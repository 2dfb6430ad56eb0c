"""The add-in's "xlcollab" ribbon tab: its controls as data, the customUI XML, and the VBA callbacks behind them.

Buttons run one Python macro of `xlcollab.excel` each through RunPython (in the add-in's own xlwings module, so the
user's workbook needs no VBA); the drop-downs' choices are passed to it as keywords, e.g.
`import xlcollab.excel as x; x.solve(device='cuda', multistart=4)`. A choice left at "as the sheet says" passes
nothing, so the tab's settings cells decide. Callbacks have the IRibbonControl signatures Office calls:
`Sub X(control As IRibbonControl)` for a button, `(control, id As String, index As Integer)` for a drop-down's
onAction, `(control, ByRef returnedVal)` for its getSelectedItemID.
"""
from __future__ import annotations

from xml.sax.saxutils import quoteattr

CUSTOM_UI_NS = "http://schemas.microsoft.com/office/2006/01/customui"
MODULE = "xlcollab"   # the add-in's VBA module holding the callbacks (and the worksheet functions)
SHEET = "sheet"       # the choice that leaves a setting to the sheet
RESTART = "restart"   # the one button that runs no Python: it stops the warm one (xlwings' KillPy)

# Ribbon groups: (id, label, [(macro, label, imageMso, screentip)]).
GROUPS = [
    ("xcSolver", "Solver", [("solve", "Solve", "ChartTrendline",
                             "Solve the active sheet's Solver model with torch (any workbook; the settings below)")]),
    ("xcGraddesc", "Gradient descent", [
        ("run", "Run", "MacroPlay", "Five more epochs of the active graddesc tab"),
        ("reset", "Reset", "Undo", "The active graddesc tab back to its start values")]),
    ("xcMovielens", "MovieLens", [("fit_movielens", "Fit MovieLens", "PivotTableLayoutReportLayout",
                                   "Fit the embedded ratings; the XC_* functions then answer from the model")]),
    ("xcPython", "Python", [(RESTART, "Restart Python", "Refresh",
                             "Stop the Python that runs the buttons and functions: the next click starts a fresh one "
                             "(after upgrading xlcollab)")]),
]
# Drop-downs: keyword -> (label, [(value, item label)]); the first item leaves the setting to the sheet.
CHOICES = {
    "engine": ("Engine", [(SHEET, "as the sheet says"), ("grg", "GRG Nonlinear"), ("lp", "Simplex LP"),
                          ("evolutionary", "Evolutionary")]),
    "optimizer": ("Optimizer", [(SHEET, "as the sheet says"), ("adam", "Adam"), ("adamw", "AdamW"), ("sgd", "SGD"),
                                ("momentum", "SGD with momentum"), ("lbfgs", "L-BFGS")]),
    "device": ("Device", [(SHEET, "as the sheet says"), ("auto", "auto"), ("cpu", "CPU"), ("cuda", "GPU (CUDA)")]),
    "multistart": ("Multistart", [(SHEET, "as the sheet says"), ("1", "1 start"), ("4", "4 starts"),
                                  ("16", "16 starts"), ("64", "64 starts")]),
}
# Which choices each button passes on.
PASSES = {"solve": ("engine", "optimizer", "device", "multistart"), "run": (), "reset": (),
          "fit_movielens": ("optimizer", "device")}


def sub_name(macro: str) -> str:
    """The VBA callback of a button: "fit_movielens" -> "XcFitMovielensClick"."""
    return "Xc" + "".join(part.title() for part in macro.split("_")) + "Click"


def item_id(key: str, value: str) -> str:
    """A drop-down item's id (an XML ID: no leading digit): ("multistart", "4") -> "multistart_4"."""
    return f"{key}_{value}"


def custom_ui() -> bytes:
    """customUI/customUI.xml: the xlcollab tab, one group per job, the settings drop-downs in the Solver group."""
    def attrs(**kw: str) -> str:
        return "".join(f" {k}={quoteattr(v)}" for k, v in kw.items())
    groups = []
    for gid, glabel, buttons in GROUPS:
        controls = [f"<button{attrs(id=sub_name(m)[:-5], label=label, size='large', imageMso=image, screentip=tip, onAction=f'{MODULE}.{sub_name(m)}')}/>"
                    for m, label, image, tip in buttons]
        if gid == "xcSolver":
            for key, (label, items) in CHOICES.items():
                options = "".join(f"<item{attrs(id=item_id(key, v), label=text)}/>" for v, text in items)
                controls.append(f"<dropDown{attrs(id='xc' + key.title(), label=label, onAction=f'{MODULE}.XcChoose', getSelectedItemID=f'{MODULE}.XcChosen')}>"
                                f"{options}</dropDown>")
        groups.append(f"<group{attrs(id=gid, label=glabel)}>{''.join(controls)}</group>")
    return (f'<customUI xmlns="{CUSTOM_UI_NS}"><ribbon><tabs><tab id="xcTab" label="xlcollab">'
            + "".join(groups) + "</tab></tabs></ribbon></customUI>").encode("utf-8")


def callbacks_vba() -> list[str]:
    """The ribbon's VBA: one Sub per button, the drop-downs' two callbacks, and the keyword text they build."""
    keys = list(CHOICES)
    lines = [f"Private Chosen({len(keys) - 1}) As String  ' per drop-down ({', '.join(keys)}): the item id chosen", ""]
    for macro, passes in PASSES.items():
        args = ", ".join(f'Keyword("{k}")' for k in passes)
        lines += [f"Sub {sub_name(macro)}(control As IRibbonControl)",
                  f'    RunPython "import xlcollab.excel as x; x.{macro}(" & Joined({args}) & ")"',
                  "End Sub", ""]
    lines += [f"Sub {sub_name(RESTART)}(control As IRibbonControl)", "    KillPy", "End Sub", ""]
    cases = "\n".join(f'        Case "xc{k.title()}": ChoiceIndex = {i}' for i, k in enumerate(keys))
    lines += [
        "Private Function ChoiceIndex(ByVal controlId As String) As Integer",
        "    ChoiceIndex = -1",
        "    Select Case controlId",
        *cases.split("\n"),
        "    End Select",
        "End Function",
        "",
        "Sub XcChoose(control As IRibbonControl, id As String, index As Integer)",
        "    If ChoiceIndex(control.ID) >= 0 Then Chosen(ChoiceIndex(control.ID)) = id",
        "End Sub",
        "",
        "Sub XcChosen(control As IRibbonControl, ByRef returnedVal)",
        '    Dim key As String: key = LCase$(Mid$(control.ID, 3))',
        "    returnedVal = Chosen(ChoiceIndex(control.ID))",
        f'    If returnedVal = "" Then returnedVal = key & "_{SHEET}"',
        "End Sub",
        "",
        "Private Function Keyword(ByVal key As String) As String",
        "    ' \"device_cuda\" -> \"device='cuda'\", \"multistart_4\" -> \"multistart=4\"; \"as the sheet says\" -> \"\"",
        "    Dim chosenId As String, value As String",
        "    chosenId = Chosen(ChoiceIndex(\"xc\" & UCase$(Left$(key, 1)) & Mid$(key, 2)))",
        f'    If chosenId = "" Or chosenId = key & "_{SHEET}" Then Exit Function',
        "    value = Mid$(chosenId, Len(key) + 2)",
        "    If IsNumeric(value) Then Keyword = key & \"=\" & value Else Keyword = key & \"='\" & value & \"'\"",
        "End Function",
        "",
        "Private Function Joined(ParamArray parts()) As String",
        "    Dim i As Integer",
        "    For i = LBound(parts) To UBound(parts)",
        '        If parts(i) <> "" Then',
        '            If Joined <> "" Then Joined = Joined & ", "',
        "            Joined = Joined & parts(i)",
        "        End If",
        "    Next i",
        "End Function",
    ]
    return lines
