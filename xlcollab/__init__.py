"""xlcollab: collaborative filtering and gradient descent in a spreadsheet, solved by torch."""
from xlcollab.errors import XlcollabError

__version__ = "0.1.0"
__all__ = ["XlcollabError", "__version__"]
