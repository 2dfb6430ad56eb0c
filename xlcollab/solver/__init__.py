"""Any workbook's Solver model compiled to torch and solved by Excel's engines (GRG, Simplex LP, Evolutionary)."""
