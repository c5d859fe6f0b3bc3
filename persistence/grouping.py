"""Which writes of a batch may run their statements together (the writer's groups).

Writes of the same *shape* (the same kinds of statement, in the same order) run as a
group: the first statement of every write of the group as one statement, then the
second of each as one, and so on, where the group's first write stands in the batch.
So a batch of 500 starts sends four statements, not 2,000.

That moves statements of a group's later writes before the writes between, which is
only the same as running them in order when those never touch the same rows. The
rule that makes sure, without looking at the statements: every write names its
*owner* (the directive whose rows it changes), and a write joins a group only when no
other write of the batch that sends a statement of its own has the same owner. Writes
that send none (only a statement the batch merges at its end: an event append) do not
count; those are moved to the end of the batch already (``writer.Merge``).

If a statement of a group fails or a guard in it misses, the whole batch runs again
write by write, in order (the writer's rare path): a group never changes an outcome.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

Shape = tuple[str, ...]
"""The batch keys of a write's statements, in order (``()``: it sends none of its own)."""


def schedule(shapes: Sequence[Shape | None], owners: Sequence[Hashable | None]) -> list[list[int]]:
    """The batch's writes (their indices) in the order they are sent, as groups.

    ``shapes[i]``: write i's shape, None when some statement of it cannot be grouped;
    ``owners[i]``: whose rows it changes, None when it does not say. A group of one
    runs as a lone write; a longer one runs op by op (see the module docstring).
    """
    if len(shapes) != len(owners):
        raise ValueError(f"{len(shapes)} shapes for {len(owners)} owners")
    sending = Counter(o for s, o in zip(shapes, owners, strict=True) if s != () and o is not None)
    groups: list[list[int]] = []
    open_groups: dict[Shape, list[int]] = {}
    for index, (shape, owner) in enumerate(zip(shapes, owners, strict=True)):
        if not shape or owner is None or sending[owner] > 1:
            groups.append([index])  # its owner's other writes keep their order with it
        elif shape in open_groups:
            open_groups[shape].append(index)  # owners are distinct: each sends once
        else:
            open_groups[shape] = [index]
            groups.append(open_groups[shape])
    return groups
