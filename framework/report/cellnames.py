"""Short names for cells, shared by every table and chart that has no room for full cell ids."""

from __future__ import annotations


def short_names(cell_ids: list[str]) -> dict[str, str]:
    """Cell ids without the parts every cell shares, for narrow tables: provider and model go when all cells
    share them; the model goes when each provider runs only one."""
    parts = [cell_id.split("/", 2) for cell_id in cell_ids]
    if len({p[0] for p in parts}) == 1:
        drop_model = len({p[1] for p in parts}) == 1
        return {c: "/".join(p[2:] if drop_model else p[1:]) for c, p in zip(cell_ids, parts)}
    models = {}
    for p in parts:
        models.setdefault(p[0], set()).add(p[1])
    if all(len(m) == 1 for m in models.values()):
        return {c: f"{p[0]}/{p[2]}" for c, p in zip(cell_ids, parts)}
    return {c: c for c in cell_ids}


#: Short forms of the built-in provider and strategy names, for table headers.
ABBREVIATIONS = {
    "gemini": "gem",
    "anthropic": "ant",
    "openai": "oai",
    "local-faces": "faces",
    "sequential": "seq",
    "concurrent": "conc",
    "single-prompt": "single",
    "adaptive": "adapt",
    "provider-batch": "batch",
}


def _tokens(cell_id: str) -> list[str]:
    provider, model, label = (cell_id.split("/", 2) + ["", ""])[:3]
    base, at, variant = label.partition("@")
    return [provider, model, base, at + variant]


def cell_codes(cell_ids: list[str]) -> dict[str, str]:
    """Short, unambiguous names for cells (a legend maps them back to the ids): only the parts that tell the cells
    apart (a model goes when each provider runs one), with the built-in provider and strategy names shortened
    (``gem/seq``, ``ant/conc@384px``). Falls back to :func:`short_names`, then the ids, if anything would clash."""
    ids = list(dict.fromkeys(cell_ids))
    if len(ids) <= 1:
        return {c: (short_names(ids)[c] if ids else c) for c in ids}
    toks = [_tokens(c) for c in ids]
    varies = [len({t[i] for t in toks}) > 1 for i in range(4)]
    models_per_provider: dict[str, set[str]] = {}
    for t in toks:
        models_per_provider.setdefault(t[0], set()).add(t[1])
    if all(len(m) == 1 for m in models_per_provider.values()) and varies[0]:
        varies[1] = False
    for abbreviate in (True, False):
        codes = {}
        for c, t in zip(ids, toks):
            parts = [ABBREVIATIONS.get(t[i], t[i]) if abbreviate else t[i] for i in range(3) if varies[i] and t[i]]
            code = "/".join(parts) + (t[3] if varies[3] else "")
            codes[c] = code or c
        if len(set(codes.values())) == len(ids):
            return codes
    fallback = short_names(ids)
    return fallback if len(set(fallback.values())) == len(ids) else {c: c for c in ids}


def setting(key: str, value: object) -> str:
    """``key=value`` as a reader would write it: ``max_side=full size`` for no resizing, ``none`` for other unset
    values (never Python's ``None``), ``true``/``false`` for booleans."""
    if value is None:
        shown = "full size" if key == "max_side" else "none"
    elif isinstance(value, bool):
        shown = str(value).lower()
    else:
        shown = str(value)
    return f"{key}={shown}"
