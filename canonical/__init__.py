"""The canonical model: versioned msgspec Structs and the value types they share.

``canonical`` imports nothing else of the hub; everything else imports it.
"""

from canonical._base import Canonical
from canonical._codec import decode, decoder, enc_hook, encode, money_dec_hook, to_builtins
from canonical._codes import check_currency, check_npi, npi_is_valid
from canonical._money import CENT, Amount, Balance, Money, Quantity, money_pattern, quantity_pattern
from canonical._phi import PHI, PHI_ITEMS, PhiTree, is_phi, phi_paths, phi_tree, phi_values

__all__ = [
    "CENT",
    "PHI",
    "PHI_ITEMS",
    "Amount",
    "Balance",
    "Canonical",
    "Money",
    "PhiTree",
    "Quantity",
    "check_currency",
    "check_npi",
    "decode",
    "decoder",
    "enc_hook",
    "encode",
    "is_phi",
    "money_dec_hook",
    "money_pattern",
    "npi_is_valid",
    "phi_paths",
    "phi_tree",
    "phi_values",
    "quantity_pattern",
    "to_builtins",
]
