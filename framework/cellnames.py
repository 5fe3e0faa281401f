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
