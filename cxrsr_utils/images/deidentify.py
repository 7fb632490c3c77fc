"""De-identifying DICOM outputs: PS3.15 Annex E, Basic Application Level Confidentiality Profile.

What ``cxrsr upscale --anonymize`` applies to every DICOM it writes. The profile's table
(PS3.15 Table E.1-1, every attribute with its action: remove, empty, dummy, new UID) and the
actions themselves come from dicom-anonymizer (Kitware), pinned, with the table of the
standard's edition :data:`PROFILE_EDITION`. It earns its place over a table kept here: it
carries the standard's table per edition (about 650 attributes and repeating groups), dummy
values that respect each VR, sequences and private tags; transcribing that by hand is where
de-identification usually goes wrong. What is ours:

- **UIDs** are replaced through one map per run (:class:`Deidentifier`), not the library's
  process-wide one, so a run gives one new study and one new series per source study and
  series, and two runs never share a mapping.
- **Options** of PS3.15 E.3, off by default: ``retain_uids`` (Retain UIDs Option) keeps every
  UID; ``retain_dates`` (Retain Longitudinal Temporal Information with Full Dates Option) keeps
  every date and time. The options used are recorded in DeidentificationMethodCodeSequence.
- **Burned-in annotation**: an image that declares text burned into its pixels is refused;
  the basic profile cannot clean pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cxrsr_utils.core.errors import CxrsrError

if TYPE_CHECKING:
    from pydicom import Dataset

PROFILE_EDITION = "dicomfields_2026c"  # the DICOM standard's edition 2026c
# PS3.16 CID 7050 codes (scheme DCM) for what was applied.
BASIC_PROFILE = ("113100", "Basic Application Confidentiality Profile")
RETAIN_DATES = ("113106", "Retain Longitudinal Temporal Information Full Dates Option")
RETAIN_UIDS = ("113110", "Retain UIDs Option")
_TIME_VRS = ("DA", "DT", "TM")

Action = Callable[[Any, Any], None]


class DeidentificationError(CxrsrError, ValueError):
    """A DICOM that the profile cannot make safe (the message says why and what to do)."""


def profile_table() -> dict[str, list[tuple[int, ...]]]:
    """The profile's attributes by action (``X_TAGS``, ``Z_TAGS``, ``D_TAGS``, ``U_TAGS``, ...,
    ``ALL_TAGS``): (group, element) pairs, or (group, element, group mask, element mask) for a
    repeating group such as overlays."""
    from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector

    return dicom_anonymization_database_selector(PROFILE_EDITION)


def _dictionary_vr(tag: tuple[int, ...]) -> str:
    from pydicom.datadict import dictionary_VR

    try:
        return str(dictionary_VR((tag[0] << 16) | tag[1]))
    except KeyError:  # an attribute newer than pydicom's dictionary
        return ""


@dataclass
class Deidentifier:
    """The profile with its options and the UID map of one run; :meth:`apply` to each dataset."""

    retain_uids: bool = False
    retain_dates: bool = False
    uids: dict[str, str] = field(default_factory=dict)

    def new_uid(self, old: str) -> str:
        """The replacement of ``old``: the same within this run, a fresh UID the first time."""
        from pydicom.uid import generate_uid

        return self.uids.setdefault(str(old), generate_uid())

    def _replace_uid(self, dataset: Any, tag: Any) -> None:
        element = dataset.get(tag)
        if element is None or element.VR != "UI" or not element.value:
            return
        if element.VM > 1:
            element.value = [self.new_uid(v) for v in element.value]
        else:
            element.value = self.new_uid(element.value)

    def rules(self) -> dict[tuple[int, ...], Action]:
        """Every attribute of the profile with the action this de-identifier takes."""
        from dicomanonymizer.simpledicomanonymizer import initialize_actions, keep

        table = profile_table()
        actions: dict[tuple[int, ...], Action] = initialize_actions(PROFILE_EDITION)
        for tag in table["U_TAGS"]:
            actions[tag] = keep if self.retain_uids else self._replace_uid
        if self.retain_dates:
            for tag in table["ALL_TAGS"]:
                if len(tag) == 2 and _dictionary_vr(tag) in _TIME_VRS:
                    actions[tag] = keep
        return actions

    def apply(self, ds: Dataset, source: object = "") -> None:
        """De-identify ``ds`` in place (see module doc); ``source`` names it in errors."""
        from dicomanonymizer.simpledicomanonymizer import anonymize_dataset
        from pydicom.dataset import Dataset as PydicomDataset

        if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
            raise DeidentificationError(
                f"{source}: declares burned-in annotation (text in the pixels, often the "
                "patient's name); the basic profile cannot clean pixels, so it is not written "
                "anonymized. Export it without annotations."
            )
        rules = self.rules()
        anonymize_dataset(ds, base_rules_gen=lambda: rules, delete_private_tags=True)
        codes = [BASIC_PROFILE]
        codes += [RETAIN_UIDS] if self.retain_uids else []
        codes += [RETAIN_DATES] if self.retain_dates else []
        items = []
        for value, meaning in codes:
            item = PydicomDataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
            items.append(item)
        ds.PatientIdentityRemoved = "YES"
        # LO holds 64 characters a value: one value per option applied.
        edition = PROFILE_EDITION.rsplit("_", 1)[-1]
        ds.DeidentificationMethod = [f"PS3.15 basic profile, DICOM {edition} table (cxrsr)"] + [
            meaning[:64] for _, meaning in codes[1:]
        ]
        ds.DeidentificationMethodCodeSequence = items
        ds.LongitudinalTemporalInformationModified = (
            "UNMODIFIED" if self.retain_dates else "REMOVED"
        )
