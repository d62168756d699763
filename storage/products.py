"""Read a product list (JSON or YAML) into catalog rows, with clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from core.errors import InvalidInputError
from storage.models import Product


def parse_products(items: Any) -> list[Product]:
    if not isinstance(items, list):
        raise InvalidInputError("a product list must be a list of {name, aliases, sku, price}")
    products: list[Product] = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict) or not str(item.get("name", "")).strip():
            raise InvalidInputError(f"product {number} has no name")
        aliases = item.get("aliases") or []
        if not isinstance(aliases, list):
            raise InvalidInputError(f"product {number}: aliases must be a list")
        price = item.get("price")
        try:
            price = None if price is None else float(price)
        except (TypeError, ValueError):
            raise InvalidInputError(f"product {number}: price {price!r} is not a number") from None
        products.append(
            Product(
                name=str(item["name"]).strip(),
                aliases=json.dumps([str(a) for a in aliases], ensure_ascii=False),
                sku=None if item.get("sku") is None else str(item["sku"]),
                price=price,
            )
        )
    names = [p.name for p in products]
    if len(set(names)) != len(names):
        raise InvalidInputError("product names must be unique")
    return products


def load_products(path: Path) -> list[Product]:
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.__class__.__name__}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError):
        raise InvalidInputError(f"{path} is not valid JSON or YAML") from None
    return parse_products(data)
