"""How figures are shown to analysts: money to the cent (or two significant figures below a cent, so a
tiny non-zero cost never reads "$0.00"), GB to three decimals, yes/no rather than True/False."""

from __future__ import annotations

import math
from decimal import Decimal


def round_money(usd: float) -> float:
    """Cents, or two significant figures below one cent ($0.00031 stays $0.00031, not $0.00)."""
    if not math.isfinite(usd) or usd == 0:
        return 0.0
    if abs(usd) >= 0.01:
        return round(usd, 2)
    return float(f"{usd:.2g}")


def money(usd: float) -> str:
    """`$1,234.57`, `$0.02`, `$0.00031`, `-$0.0008`; exactly zero is `$0.00`."""
    value = round_money(usd)
    sign = "-" if value < 0 else ""
    size = abs(value)
    if size == 0 or size >= 0.01:
        return f"{sign}${size:,.2f}"
    return f"{sign}${Decimal(repr(size)):f}"


def size(gb: float) -> str:
    """A size in a sentence: GB to 3 decimals, or MB when that would read 0.000 GB for a non-zero size."""
    if gb == 0 or abs(gb) >= 0.0005:
        return f"{gb:,.3f} GB"
    return f"{gb * 1000:.2g} MB"


def round_gb(gb: float) -> float:
    return round(gb, 3) if math.isfinite(gb) else 0.0


def round_pct(pct: float) -> float:
    return round(pct, 1) if math.isfinite(pct) else 0.0


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"
