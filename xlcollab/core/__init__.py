"""The core: pure torch + numpy + pandas, no Excel anywhere (data, models, optimizer rules, training, interpretation)."""
