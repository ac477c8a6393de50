"""Synthetic but realistic customer-churn data.

Mixed numeric and string categorical columns, an id column, some missing values and a few
dirty values (the kind a real export has), with churn driven by tenure, contract, charges and
support calls so that a model has something to learn. ``shift`` moves the population the way a
price rise and a marketing push would, for drift and retraining demos.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

CONTRACTS = ["month-to-month", "one-year", "two-year"]
PAYMENT_METHODS = ["credit-card", "bank-transfer", "electronic-check", "mailed-check"]
INTERNET = ["fiber", "dsl", "none"]
REGIONS = ["north", "south", "east", "west"]


def generate_churn(
    rows: int, seed: int = 0, shift: float = 0.0, dirty: bool = True
) -> pd.DataFrame:
    """Return ``rows`` customers. ``shift`` in [0, 1] drifts charges, contracts and calls."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(
        CONTRACTS, size=rows, p=_mix([0.55, 0.25, 0.20], [0.80, 0.12, 0.08], shift)
    )
    tenure = (
        np.where(
            contract == "month-to-month",
            rng.gamma(1.6, 9.0, rows),
            rng.gamma(3.0, 14.0, rows),
        )
        .clip(0, 72)
        .round()
        .astype(int)
    )
    internet = rng.choice(INTERNET, size=rows, p=[0.45, 0.35, 0.20])
    base = np.select([internet == "fiber", internet == "dsl"], [75.0, 50.0], 22.0)
    monthly = (base * (1.0 + 0.6 * shift) + rng.normal(0, 12, rows)).clip(15, 180).round(2)
    total = (monthly * tenure + rng.normal(0, 30, rows)).clip(0).round(2)
    support_calls = rng.poisson(1.2 + 2.5 * shift, rows)
    age = rng.normal(44, 14, rows).clip(18, 90).round().astype(int)
    payment = rng.choice(PAYMENT_METHODS, size=rows, p=[0.3, 0.25, 0.3, 0.15])
    region = rng.choice(REGIONS, size=rows)
    paperless = rng.random(rows) < 0.6

    logit = (
        -1.2
        + 1.3 * (contract == "month-to-month")
        - 0.6 * (contract == "two-year")
        - 0.045 * tenure
        + 0.018 * (monthly - 60)
        + 0.35 * support_calls
        + 0.45 * (payment == "electronic-check")
        + 0.3 * (internet == "fiber")
        - 0.008 * (age - 44)
    )
    churned = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(int)

    frame = pd.DataFrame(
        {
            "customer_id": [f"C{seed:02d}{i:07d}" for i in range(rows)],
            "age": age.astype(float),
            "tenure_months": tenure,
            "contract": contract,
            "internet_service": internet,
            "payment_method": payment,
            "region": region,
            "paperless_billing": np.where(paperless, "yes", "no"),
            "monthly_charges": monthly,
            "total_charges": total,
            "support_calls": support_calls,
            "churned": churned,
        }
    )
    if dirty and rows >= 20:
        # Real exports have holes and typos: ~3% unknown ages, ~2% blank totals and regions,
        # and a handful of mis-cased categories.
        frame.loc[rng.random(rows) < 0.03, "age"] = np.nan
        frame.loc[rng.random(rows) < 0.02, "total_charges"] = np.nan
        frame["region"] = frame["region"].astype(object)
        frame.loc[rng.random(rows) < 0.02, "region"] = None
        typo = rng.random(rows) < 0.005
        frame.loc[typo, "payment_method"] = frame.loc[typo, "payment_method"].str.upper()
    return frame


def _mix(before: list[float], after: list[float], shift: float) -> list[float]:
    weights = [(1 - shift) * b + shift * a for b, a in zip(before, after, strict=True)]
    total = sum(weights)
    return [w / total for w in weights]


def main() -> None:
    parser = argparse.ArgumentParser(description="Write synthetic churn data as CSV.")
    parser.add_argument("output", type=Path)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shift", type=float, default=0.0)
    parser.add_argument("--no-target", action="store_true", help="drop the label (for scoring)")
    args = parser.parse_args()
    frame = generate_churn(args.rows, seed=args.seed, shift=args.shift)
    if args.no_target:
        frame = frame.drop(columns=["churned"])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.output, index=False)
    print(f"wrote {len(frame)} rows to {args.output}")


if __name__ == "__main__":
    main()
