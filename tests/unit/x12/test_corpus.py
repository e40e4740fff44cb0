"""Public X12 samples (not in this repository) through the readers, checked by an independent reading.

The corpus lives in ``X12_CORPUS_DIR`` (default ``<repo>/../shared/x12-samples``) with a
``MANIFEST.tsv`` (type, file, ...); without it these tests skip. Each file must be read by the reader
for its type without an exception, and what the reader says is compared with what a deliberately
naive split-based reading of the same bytes, written here and sharing no code with the readers, says.
"""

from __future__ import annotations

import csv
import os
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.clearinghouse.x12._read276 import read_276
from connectors.clearinghouse.x12._read277 import read_277
from connectors.clearinghouse.x12._read835 import RemittanceTrailer, iter_835, read_835
from connectors.clearinghouse.x12._read837 import read_837
from connectors.clearinghouse.x12._read999 import read_999

pytestmark = pytest.mark.corpus

CORPUS = Path(os.environ.get("X12_CORPUS_DIR", Path(__file__).resolve().parents[3].parent / "shared" / "x12-samples"))


def manifest() -> list[tuple[str, str]]:
    path = CORPUS / "MANIFEST.tsv"
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [(row["type"], row["file"]) for row in csv.DictReader(handle, delimiter="\t")]


ENTRIES = manifest()
needs_corpus = pytest.mark.skipif(not ENTRIES, reason=f"no X12 corpus at {CORPUS} (set X12_CORPUS_DIR)")


def naive_sets(data: bytes) -> list[list[list[str]]]:
    """Every ST..SE of every interchange, split the simplest way that can work."""
    text = data.decode("latin-1").lstrip("\ufeff\xef\xbb\xbf \r\n\t")
    sets: list[list[list[str]]] = []
    while text.startswith("ISA"):
        element = text[3]
        ends = [i for i, char in enumerate(text[:200]) if char == element]
        terminator = text[ends[15] + 2]
        raw, _, text = text.partition(terminator + "IEA")
        text = text.partition(terminator)[2].lstrip(" \r\n\t")
        current: list[list[str]] | None = None
        for piece in raw.split(terminator):
            segment = piece.strip(" \r\n\t").split(element)
            if segment[0] == "ST":
                current = []
            if current is not None:
                current.append(segment)
            if segment[0] == "SE" and current is not None:
                sets.append(current)
                current = None
    return sets


def naive_835(body: list[list[str]]) -> tuple[int, Decimal, Decimal, Decimal]:
    """Claims, sum of CLP04, sum of PLB amounts, BPR02 signed by BPR03."""
    clps = [s for s in body if s[0] == "CLP"]
    plb = sum((Decimal(s[i]) for s in body if s[0] == "PLB" for i in range(4, len(s), 2) if s[i]), Decimal(0))
    (bpr,) = [s for s in body if s[0] == "BPR"]
    bpr02 = Decimal(bpr[2]) if bpr[3] == "C" else -Decimal(bpr[2])
    return len(clps), sum((Decimal(s[4]) for s in clps), Decimal(0)), plb, bpr02


def test_the_manifest_lists_every_sample() -> None:
    if not ENTRIES:
        pytest.skip(f"no X12 corpus at {CORPUS}")
    listed = {name for _, name in ENTRIES}
    present = {p.name for p in CORPUS.iterdir() if p.name != "MANIFEST.tsv"}
    assert listed == present
    assert {kind for kind, _ in ENTRIES} >= {"835", "277", "277CA", "999", "837P", "276"}


@needs_corpus
@pytest.mark.parametrize("name", [name for kind, name in ENTRIES if kind == "835"])
def test_835_totals_agree_with_a_naive_reading(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    expected = [naive_835(body) for body in naive_sets(data)]
    trailers = [e for e in iter_835(data) if isinstance(e, RemittanceTrailer)]
    found = [(t.claim_count, t.total_paid, t.total_provider_adjustments, t.payment_amount) for t in trailers]
    assert found == expected
    assert all(t.issues == [] for t in trailers)
    for read, (claims, paid, _, _) in zip(read_835(data), expected, strict=True):
        assert read.remittance is not None
        assert len(read.remittance.claims) == claims
        assert sum((c.paid for c in read.remittance.claims), Decimal(0)) == paid


@needs_corpus
@pytest.mark.parametrize(("kind", "name"), [(k, n) for k, n in ENTRIES if k in ("277", "277CA")])
def test_277_claim_statuses_name_claims_the_file_names(kind: str, name: str) -> None:
    data = (CORPUS / name).read_bytes()
    reads = read_277(data)
    assert len(reads) == len(naive_sets(data))
    ids = {s[2] for body in naive_sets(data) for s in body if s[0] in ("TRN", "REF") and s[1] in ("2", "EJ")}
    for read in reads:
        assert read.source == kind
        assert read.issues == []
        assert read.statuses
        assert {status.claim_id for status in read.statuses} <= ids
        claim_stcs = sum(1 for body in naive_sets(data) for s in body if s[0] == "STC")
        assert len(read.statuses) <= claim_stcs


@needs_corpus
@pytest.mark.parametrize("name", [name for kind, name in ENTRIES if kind == "999"])
def test_999_acknowledges_what_the_file_acknowledges(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    acks = read_999(data)
    bodies = naive_sets(data)
    assert [(a.functional_id, a.group_control_number) for a in acks] == [
        tuple(s[1:3]) for body in bodies for s in body if s[0] == "AK1"
    ]
    assert [[(s.transaction_code, s.control_number, s.status) for s in a.sets] for a in acks] == [
        list(
            zip(
                [s[1] for s in body if s[0] == "AK2"],
                [s[2] for s in body if s[0] == "AK2"],
                [s[1] for s in body if s[0] == "IK5"],
                strict=True,
            )
        )
        for body in bodies
    ]
    assert [a.status for a in acks] == [s[1] for body in bodies for s in body if s[0] == "AK9"]


@needs_corpus
@pytest.mark.parametrize("name", [name for kind, name in ENTRIES if kind == "837P"])
def test_837p_has_one_result_per_clm(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    reads = read_837(data)
    expected = [[s[1] for s in body if s[0] == "CLM"] for body in naive_sets(data)]
    assert [[c.claim_id for c in read.claims] for read in reads] == expected
    for read in reads:
        for claim in read.claims:
            assert (claim.claim is None) == bool(claim.issues)  # mapped, or says why not


@needs_corpus
@pytest.mark.parametrize("name", [name for kind, name in ENTRIES if kind == "276"])
def test_276_every_inquiry_is_mapped_or_explained(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    reads = read_276(data)
    bodies = naive_sets(data)
    assert len(reads) == len(bodies)
    for read, body in zip(reads, bodies, strict=True):
        traces = [s[2] for s in body if s[0] == "TRN"]
        assert {i.trace_number for i in read.inquiries} <= set(traces)
        assert len(read.inquiries) == len(traces) or read.issues
