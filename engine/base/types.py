"""The plain types that cross stages: a query, one verified pair, a hit, a search result, the
kinds of review decision. They live below every stage so that verification, propagation, the
pipeline and annotation can all speak them without importing one another."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.base.regions import Region

# Review decisions on a hit; the latest one per image is the decision.
KINDS = ("accepted", "corrected", "rejected", "unreviewed")
DECIDED = ("accepted", "corrected", "rejected")
DIFFICULTIES = ("easy", "hard", "junk")


@dataclass(frozen=True)
class Query:
    image: int | str | Path  # an image id of the project, or an image file
    region: Region


@dataclass(frozen=True, eq=False)
class PairResult:
    """What any verifier (spatial, topological) says about one query/database pair.

    region: the predicted region in the database image or None;
    evidence: JSON-able details for the reviewer (inlier matches, verified patches, ...).
    """

    verified: bool
    score: float
    region: Region | None
    evidence: dict


@dataclass(frozen=True)
class Hit:
    image_id: int
    path: str
    score: float
    region: Region | None
    evidence: dict
    stage: str  # 'verified' | 'shortlist' | 'initial' | 'propagated' | 'diffused'


@dataclass(frozen=True)
class SearchResult:
    query: Query
    method: str
    hits: tuple[Hit, ...]
    uncertainty: float | None = None
    timings: dict = field(default_factory=dict)
    object_id: int | None = None  # the remembered object searched for (engine.annotate.objects), if any
