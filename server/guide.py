"""The guidance parts of an analogy job (POST /v1/jobs): region maps, a structure mask and more
references, checked in two steps so that a bad job is refused before it is queued.

`guide_upload` reads only the parts' headers: which parts came (references numbered without
gaps, a map only beside its image, region maps in pairs), each map the size of its image, and
the job's pixels together within MAX_JOB_PIXELS, all before a pixel is decoded. After decoding,
`check_job` asks the engine (`check_guidance`) about everything else it would refuse (a colour
on one side only, a region too small for the working size, a mix of the wrong length), so such a
job is a 4xx now instead of a failed job later.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import numpy as np

from analogy_engine import AnalogyParams, Guidance, InputError, ParamsError, check_guidance
from analogy_engine.contract import (
    GUIDE_PARTS,
    MAX_REFERENCES,
    REF_AB,
    RESULT_PARTS,
    b_name,
    mask_name,
    reference_part,
    regions_ref_part,
)

from .config import MAX_JOB_PIXELS
from .errors import ApiError
from .images import decode_image, image_part, part_size
from .uploads import Part

REGIONS_A, REGIONS_B, STRUCTURE = GUIDE_PARTS
NUMBERS = range(2, MAX_REFERENCES + 1)  # B′ is reference 1
REFERENCE_LABELS = tuple(reference_part(n) for n in NUMBERS)
REGIONS_REF_LABELS = tuple(regions_ref_part(n) for n in NUMBERS)
GUIDANCE_LABELS = (*GUIDE_PARTS, *REFERENCE_LABELS, *REGIONS_REF_LABELS)
# One check at a time: labelling a map takes several 8-byte arrays per pixel (about 2 GB for a job
# at MAX_JOB_PIXELS), and the queue lets several uploads arrive together (as images.DECODE_SLOTS).
CHECK_SLOTS = threading.BoundedSemaphore(1)
NUMBERED = re.compile(r"(.*?)([0-9]{1,9})(_width|_height)?")

# The engine names the images in its messages; a client needs the part to fix. Longest first,
# so that "the region map of reference 2" is not taken for "reference 2".
ENGINE_NAMES = dict(sorted({
    "the region map of A": REGIONS_A,
    "the region map of B′": REGIONS_B,
    "the structure mask": STRUCTURE,
    **{f"the region map of reference {n}": regions_ref_part(n) for n in NUMBERS},
    **{f"reference {n}": reference_part(n) for n in NUMBERS},
}.items(), key=lambda item: -len(item[0])))
ENGINE_NAME = re.compile("|".join(re.escape(phrase) for phrase in ENGINE_NAMES))


def analogy_result_names(references: int) -> tuple[str, ...]:
    """What an analogy job with `references` extra references serves: B and its mask of each,
    and which reference each pixel of A′ came from."""
    more = [b_name(n) for n in range(2, references + 2)]
    return (*RESULT_PARTS, *more, *(mask_name(b) for b in more), *((REF_AB,) if references else ()))


def beyond_limit(name: str) -> str | None:
    """Why a reference (or its map, or their sizes) numbered outside 2 … MAX_REFERENCES is
    refused; None for any other unknown field (the form reader's own message then)."""
    match = NUMBERED.fullmatch(name)
    if match is None:
        return None
    stem, number = name[: match.end(2)], int(match.group(2))
    if stem not in (reference_part(number), regions_ref_part(number)):
        return None
    if number > MAX_REFERENCES:
        return (f"{name[:64]}: at most {MAX_REFERENCES} references in one job (b_prime and "
                f"{reference_part(2)} … {reference_part(MAX_REFERENCES)})")
    return f"{name[:64]}: B′ is the part b_prime; more references are {reference_part(2)} and up"


@dataclass(frozen=True)
class GuideUpload:
    """The guidance parts of one upload, checked from their headers; pixels not yet decoded."""

    labels: tuple[str, ...]  # the guidance parts sent, in GUIDANCE_LABELS order
    references: int  # extra references (B′ not counted)
    pixels: int  # of all the job's images together

    def decode(self, parts: dict[str, Part]) -> Guidance:
        images = {label: decode_image(parts, label) for label in self.labels}
        return Guidance(
            regions_a=images.get(REGIONS_A),
            regions_b=images.get(REGIONS_B),
            structure=images.get(STRUCTURE),
            references=[images[label] for label in REFERENCE_LABELS[: self.references]],
            regions_refs=[images[m] for m in REGIONS_REF_LABELS[: self.references] if m in images],
        )

    @property
    def summary(self) -> str:
        return f"guidance {', '.join(self.labels)}"


def guide_upload(parts: dict[str, Part]) -> GuideUpload | None:
    """The guidance parts checked from their headers; None for a plain two-image job (whose
    checks then stay exactly those of a job without guidance)."""
    labels = tuple(label for label in GUIDANCE_LABELS if label in parts)
    if not labels:
        return None
    count = 0
    while count < len(REFERENCE_LABELS) and REFERENCE_LABELS[count] in parts:
        count += 1
    stray = next((label for label in REFERENCE_LABELS[count:] if label in parts), None)
    if stray is not None:
        raise ApiError(400, f"{stray} was sent but {REFERENCE_LABELS[count]} was not: more references "
                       f"are numbered from {REFERENCE_LABELS[0]} without gaps")
    for reference, regions in zip(REFERENCE_LABELS, REGIONS_REF_LABELS, strict=True):
        if regions in parts and reference not in parts:
            raise ApiError(400, f"{regions} was sent without {reference}: it is that reference's region map")
    if (REGIONS_A in parts) != (REGIONS_B in parts):
        given, missing = (REGIONS_A, REGIONS_B) if REGIONS_A in parts else (REGIONS_B, REGIONS_A)
        raise ApiError(400, f"{given} was sent without {missing}: region maps are paired (equal colours "
                       "in both are regions that must correspond)")
    if REGIONS_A in parts:
        missing_maps = [m for m in REGIONS_REF_LABELS[:count] if m not in parts]
        if missing_maps:
            raise ApiError(400, f"{missing_maps[0]} is missing: with region maps, every reference needs "
                           "its own")
    else:
        orphan = next((m for m in REGIONS_REF_LABELS if m in parts), None)
        if orphan is not None:
            raise ApiError(400, f"{orphan} was sent without {REGIONS_A} and {REGIONS_B}: a reference's "
                           "region map pairs its regions with A's")
    sizes = {label: part_size(*image_part(parts, label), label) for label in ("a", "b_prime", *labels)}
    image_of = {REGIONS_A: "a", STRUCTURE: "a", REGIONS_B: "b_prime",
                **dict(zip(REGIONS_REF_LABELS, REFERENCE_LABELS, strict=True))}
    for label in labels:
        image = image_of.get(label)
        if image is not None and sizes[label] != sizes[image]:
            (w, h), (iw, ih) = sizes[label], sizes[image]
            raise ApiError(400, f"{label} is {w}×{h} pixels but {image} is {iw}×{ih}: a map must be the "
                           "size of its image")
    pixels = sum(w * h for w, h in sizes.values())
    if pixels > MAX_JOB_PIXELS:
        raise ApiError(413, f"the job's {len(sizes)} images have {pixels / 1e6:.1f} megapixels together; "
                       f"the limit for one job is {MAX_JOB_PIXELS // 1_000_000} megapixels: send smaller "
                       "maps or fewer references")
    return GuideUpload(labels, count, pixels)


def check_job(a: np.ndarray, b_prime: np.ndarray, params: AnalogyParams, guidance: Guidance | None) -> None:
    """What analogy() would refuse about the decoded job, as a 4xx naming the part (422 for a
    parameter, as for every other parameter)."""
    try:
        with CHECK_SLOTS:
            check_guidance(a, b_prime, params, guidance if guidance is not None else Guidance())
    except ParamsError as error:
        raise ApiError(422, str(error)[:500]) from None
    except InputError as error:
        message = ENGINE_NAME.sub(lambda m: f"{ENGINE_NAMES[m.group(0)]} ({m.group(0)})", str(error))
        raise ApiError(400, message[:600]) from None
