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


def round_unit_price(usd: float) -> float:
    """A unit price (per GB) as listed: up to 4 significant figures, so $0.0125 is not shown as $0.01."""
    if not math.isfinite(usd) or usd == 0:
        return 0.0
    return float(f"{usd:.4g}")


def unit_price(usd: float) -> str:
    """`$0.0125`, `$0.15`, `$0.023`: a per-GB price keeps its listed digits (at least to the cent)."""
    value = round_unit_price(usd)
    if value == round(value, 2):
        return f"${value:,.2f}"
    return f"${Decimal(repr(float(value))):f}"


def number_text(value: float) -> str:
    """A rounded figure in a table cell without float noise or scientific notation."""
    if value == int(value):
        return f"{value:,.0f}"
    return f"{Decimal(repr(float(value))):,f}"


def round_gb(gb: float) -> float:
    return round(gb, 3) if math.isfinite(gb) else 0.0


def round_pct(pct: float) -> float:
    return round(pct, 1) if math.isfinite(pct) else 0.0


def percent_less(pct: float) -> str:
    """`92.9 %`, but `more than 99.9 %` rather than a rounded `100.0 %` that is not quite true."""
    if 99.95 <= pct < 100:
        return "more than 99.9 %"
    return f"{round_pct(pct):.1f} %"


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def round_mb(mb: float) -> float:
    """MB in run metadata: 3 decimals, like GB."""
    return round(mb, 3) if math.isfinite(mb) else 0.0


def round_rate(per_second: float) -> float:
    """A throughput (MB/s, items/s) in run metadata: one decimal."""
    return round(per_second, 1) if math.isfinite(per_second) else 0.0
