"""The profile schema's building blocks: the strict section model and bounded numbers.

Every section of a profile (:mod:`cxrsr_utils.core.params_data`,
:mod:`cxrsr_utils.core.params_networks`) and the whole :class:`~cxrsr_utils.core.params.Params`
derive from :class:`StrictSection`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# Bounded types: a probability, a positive number, a non-negative one (a range's lo <= hi is
# checked by the section that holds it).
Prob = Annotated[float, Field(ge=0, le=1)]
Pos = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]


class StrictSection(BaseModel):
    """A part of a profile: an unknown key is an error, and the values cannot be changed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
