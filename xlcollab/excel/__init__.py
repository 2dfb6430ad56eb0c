"""The Excel layer, thin: worksheet functions, the macros behind the buttons, and the macro-enabled file writer.

  udfs     XC_DOT, XC_RMSE, XC_PREDICT, XC_RECOMMEND, XC_SIMILAR, XC_FIT: xlwings UDFs over core/
  macros   solve, run, reset, fit_movielens: each takes a Book (or, from a button, the calling workbook)
  vba      the VBA project (the Subs the buttons call); ovba its MS-OVBA compression
  xlsm     a built .xlsx turned into a .xlsm: VBA project, buttons, xlwings.conf sheet

xlwings reads this package by name: the workbooks' xlwings.conf sheet says `UDF Modules = xlcollab.excel` and each
button runs `import xlcollab.excel as x; x.solve()`, so the functions and macros are re-exported here.
"""
from __future__ import annotations

from xlcollab.excel.macros import caller_book, fit_movielens, reset, run, solve  # noqa: F401
from xlcollab.excel.udfs import (ERROR_PREFIX, XC_DOT, XC_FIT, XC_PREDICT, XC_RECOMMEND, XC_RMSE,  # noqa: F401
                                 XC_RECOMMEND_LEGACY, XC_SIMILAR, XC_SIMILAR_LEGACY, load_model, model_path_for)
