"""The run's plan: what the listing found, summed on the workers, and the shard counts it gives.

``ListingStats`` is what each listing worker sends on (a few counters, never
rows); a combiner adds them up and ``plan_from`` turns the total into the
``Plan``: class names, counts per split, copies and shard counts, and two
fingerprints (of the listing, and of the whole run) that ``--resume`` checks.
The prepare step writes it to the work folder as ``run.json``; finalize reads
it there, so the driver never holds the listing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from pipeline.format.manifest import ErrorRow
from pipeline.job.listing import DUPLICATE, InputItem, item_max_label
from pipeline.job.options import JobConfig
from pipeline.job.target_columns import COLUMNS
from transforms.rng import stable_hash64

MASK64 = 2**64 - 1
RUN_FILE = "run.json"


def item_hash(item: InputItem) -> int:
    """An input as the listing fingerprint sees it: key, file, label and split, and its targets where it has them."""
    text = f"item\x00{item.split}\x00{item.key}\x00{item.path}\x00{item.label}"
    targets = [(name, getattr(item, name)) for name in COLUMNS if getattr(item, name) is not None]
    if targets:  # an input without targets keeps its hash (and its run its id)
        text += "".join(f"\x00{name}={value!r}" for name, value in targets)
    if item.annotation is not None:
        text += f"\x00annotation={item.annotation}"
    return stable_hash64(text)


def item_columns(item: InputItem) -> frozenset[str]:
    """The target columns an input has (``labels``, ``values``, ``mask``)."""
    return frozenset(name for name in COLUMNS if getattr(item, name) is not None)


def error_hash(row: ErrorRow) -> int:
    return stable_hash64(f"error\x00{row.split}\x00{row.key}\x00{row.error_type}\x00{row.message}")


@dataclasses.dataclass
class ListingStats:
    """Counts from part of the listing; ``merge`` adds two (order-free, so any combiner tree gives one result)."""

    listed: Counter[str] = dataclasses.field(default_factory=Counter)  # rows per split, refused included
    inputs: Counter[str] = dataclasses.field(default_factory=Counter)  # usable inputs per split
    refused: Counter[str] = dataclasses.field(default_factory=Counter)  # refused rows per error type
    first_refused: tuple[str, str] | None = None  # (key, message) of the smallest refused key, for messages
    max_label: int = -1
    count: int = 0  # inputs and refused rows the fingerprint covers
    digest: int = 0  # sum of their hashes mod 2**64
    names: set[str] = dataclasses.field(default_factory=set)  # class folders found (folder inputs)
    columns: dict[str, frozenset[str]] = dataclasses.field(default_factory=dict)  # target columns per split
    values_dim: int | None = None  # the length of every input's values (the listing's, checked per row)
    masks: bool = False  # an annotated run: some annotation has an instance mask

    def add_item(self, item: InputItem) -> None:
        self.listed[item.split] += 1  # every listed row ends as an input or a refused row: together, the listing
        self.inputs[item.split] += 1
        self.max_label = max(self.max_label, item_max_label(item))
        self.columns[item.split] = self.columns.get(item.split, frozenset()) | item_columns(item)
        if item.values is not None:
            self.values_dim = len(item.values)
        if item.annotation is not None and not self.masks:
            from pipeline.job.annotated import has_masks

            self.masks = has_masks(item.annotation)
        self.count += 1
        self.digest = (self.digest + item_hash(item)) & MASK64

    def add_entry(self, key: str, path: str, cls: str, split: str) -> None:
        """An input of a folder, counted before its label is known (its class folder stands in for it)."""
        self.listed[split] += 1
        self.inputs[split] += 1
        self.names.add(cls)
        self.count += 1
        self.digest = (self.digest + stable_hash64(f"entry\x00{split}\x00{key}\x00{path}\x00{cls}")) & MASK64

    def add_error(self, row: ErrorRow) -> None:
        self.listed[row.split] += 1
        self.refused[row.error_type] += 1
        if row.error_type != DUPLICATE:
            candidate = (row.key, row.message)
            if self.first_refused is None or candidate < self.first_refused:
                self.first_refused = candidate
        self.count += 1
        self.digest = (self.digest + error_hash(row)) & MASK64

    def merge(self, other: ListingStats) -> ListingStats:
        firsts = [f for f in (self.first_refused, other.first_refused) if f is not None]
        splits = {*self.columns, *other.columns}
        return ListingStats(
            self.listed + other.listed,
            self.inputs + other.inputs,
            self.refused + other.refused,
            min(firsts) if firsts else None,
            max(self.max_label, other.max_label),
            self.count + other.count,
            (self.digest + other.digest) & MASK64,
            self.names | other.names,
            {s: self.columns.get(s, frozenset()) | other.columns.get(s, frozenset()) for s in splits},
            self.values_dim if self.values_dim is not None else other.values_dim,
            self.masks or other.masks,
        )


@dataclasses.dataclass(frozen=True)
class Plan:
    """The run as planned from the listing's totals and the config: the same on any runner."""

    root: str
    kind: str
    classes: tuple[str, ...]
    listed: Mapping[str, int]
    inputs: Mapping[str, int]
    refused: Mapping[str, int]  # refused listing rows by error type (duplicates included)
    first_refused: tuple[str, str] | None  # (key, message) of one refused row (the smallest key), for messages
    copies: Mapping[str, int]
    shards: Mapping[str, int]
    listing: str  # fingerprint of the listing (every input and refused row)
    run: str  # fingerprint of the run: config, listing, shard counts, format and version
    columns: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # target columns per split
    values_dim: int | None = None  # how many ``values`` each record holds, where the listing has them
    # An annotated run: what its annotation sources declare (``annotated.dataset_json``), and whether masks.
    targets: str | None = None
    target_masks: bool = False

    def splits(self) -> list[str]:
        return sorted(self.listed)

    @property
    def planned_records(self) -> int:
        return sum(self.inputs.get(s, 0) * self.copies[s] for s in self.listed)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["classes"] = list(self.classes)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {name: data[name] for name in fields if name in data}  # columns, values_dim: absent in old plans
        values["classes"] = tuple(values["classes"])
        values["columns"] = {split: tuple(names) for split, names in values.get("columns", {}).items()}
        values["first_refused"] = tuple(values["first_refused"]) if values["first_refused"] else None
        return cls(**values)


def plan_from(
    config: JobConfig,
    root: str,
    kind: str,
    classes: tuple[str, ...],
    stats: ListingStats,
    targets: str | None = None,
) -> Plan:
    """Copies and shard counts per split from the listing's totals and the config alone.

    ``targets``: what an annotated run's sources declare (classes, keypoints, format).
    """
    from pipeline import __version__
    from pipeline.format.records import FORMAT_VERSION

    splits = sorted(stats.listed)
    copies = {s: config.copies_for(s) for s in splits}
    shards = {s: config.shards_for(stats.inputs[s] * copies[s]) for s in splits}
    listing = f"{stats.count}:{stats.digest:016x}"
    run = {
        "config": config.resolved(),
        "format_version": FORMAT_VERSION,
        "augbeam": __version__,
        "listing": listing,
        "classes": list(classes),
        "shards": shards,
    }
    columns = {s: tuple(sorted(stats.columns[s])) for s in splits if stats.columns.get(s)}
    if columns:  # a listing without target columns keeps its run id
        run["columns"] = columns
        run["values_dim"] = stats.values_dim
    if targets is not None:  # a run without annotations keeps its run id
        run["targets"] = targets
        run["target_masks"] = stats.masks
    digest = hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()[:32]
    return Plan(
        root=root,
        kind=kind,
        classes=classes,
        listed={s: stats.listed[s] for s in splits},
        inputs={s: stats.inputs[s] for s in splits},
        refused=dict(sorted(stats.refused.items())),
        first_refused=stats.first_refused,
        copies=copies,
        shards=shards,
        listing=listing,
        run=digest,
        columns=columns,
        values_dim=stats.values_dim,
        targets=targets,
        target_masks=stats.masks if targets is not None else False,
    )


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """``run.json`` in the work folder: the plan, what resume compares (config, version), and whose it is.

    ``token`` is the random token of the run that wrote it (its lock's, ``output_lock``): finalize builds a
    manifest only from its own run's plan. A resumed run writes its own token over the killed run's.
    """

    plan: Plan
    config: Mapping[str, Any]
    augbeam: str
    format_version: int
    token: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_json(),
            "config": dict(self.config),
            "augbeam": self.augbeam,
            "format_version": self.format_version,
            "token": self.token,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunInfo:
        plan = Plan.from_json(data["plan"])
        return cls(plan, data["config"], data["augbeam"], data["format_version"], data.get("token", ""))
