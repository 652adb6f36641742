"""The spec language's workload: open workloads (an entry, or a ``mix`` of entries by weight,
at a rate or a rate profile) and closed ones (``sessions``). Part of ``schema``, which
re-exports these names.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from faultmesh.model.spec.fields import Dist, Duration, Name, Rate, Ref, SpecModel

Weight = Annotated[float, Field(gt=0, le=1e9)]


class RatePointSpec(SpecModel):
    """A point of a rate profile: the rate from ``at`` on (``ramp``: reached linearly)."""

    at: Duration
    rate: Rate
    ramp: bool = False


# A number, or a profile list: told apart by type, so a bad point gets only its own error.
WorkloadRate = Annotated[
    Annotated[Rate, Tag("~rate")]
    | Annotated[list[RatePointSpec], Field(min_length=1), Tag("~profile")],
    Discriminator(lambda v: "~profile" if isinstance(v, list) else "~rate")]


class SessionsSpec(SpecModel):
    """A closed workload: ``users`` each run ``steps`` in order, thinking between requests,
    then start again."""

    users: Annotated[int, Field(ge=1, le=1_000_000, strict=True)]
    think: Dist
    steps: Annotated[list[Ref], Field(min_length=1)]


class WorkloadSpec(SpecModel):
    # One of: an entry with its rate; a rate split over entries by weight (``mix``); sessions.
    entry: Ref | None = None
    mix: Annotated[dict[Ref, Weight], Field(min_length=1)] | None = None
    sessions: SessionsSpec | None = None
    rate: WorkloadRate | None = None  # required with entry or mix
    arrivals: Literal["poisson", "constant"] = "poisson"
    timeout: Duration | None = None
    source: Name = "client"

    @model_validator(mode="after")
    def _one_form(self) -> WorkloadSpec:
        forms = [k for k in ("entry", "mix", "sessions") if getattr(self, k) is not None]
        if len(forms) != 1:
            raise ValueError("a workload item takes exactly one of 'entry' (with its rate), "
                             "'mix' (a rate split over entries by weight) or 'sessions'")
        if self.sessions is None and self.rate is None:
            raise ValueError(f"a workload item with '{forms[0]}' needs a 'rate'")
        if self.sessions is not None and self.rate is not None:
            raise ValueError("sessions set their own pace (users and think time); drop 'rate'")
        return self


__all__ = ["RatePointSpec", "SessionsSpec", "Weight", "WorkloadRate", "WorkloadSpec"]
