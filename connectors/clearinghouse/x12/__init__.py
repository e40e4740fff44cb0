"""X12 5010 codec: read any interchange (835, 837P, 276, 277/277CA, 999), write 837P, 276, 277,
277CA and 999. Canonical objects in and out; no gateway imports.

Reading is streaming (``iter_835``) or collected (``read_*``); every problem is a ``SegmentIssue``
naming the segment position, never an element's value. ``acknowledge`` turns what a reader found into
the ``FunctionalAck`` values ``write_999`` writes.
"""

from connectors.clearinghouse.x12._ack import acknowledge, set_ack
from connectors.clearinghouse.x12._envelope import (
    GroupEnd,
    InterchangeHeader,
    SetEnvelope,
    accepted_ta1,
    reply_envelope,
)
from connectors.clearinghouse.x12._inquiry import StatusInquiry
from connectors.clearinghouse.x12._model import (
    DEFAULT_DELIMITERS,
    Delimiters,
    FunctionalAck,
    SegmentIssue,
    SetAck,
    X12Error,
)
from connectors.clearinghouse.x12._read276 import Read276, read_276
from connectors.clearinghouse.x12._read277 import Read277, read_277
from connectors.clearinghouse.x12._read835 import Read835, RemittanceHeader, RemittanceTrailer, iter_835, read_835
from connectors.clearinghouse.x12._read837 import ClaimRead, Read837, read_837
from connectors.clearinghouse.x12._read999 import read_999
from connectors.clearinghouse.x12._write276 import write_276
from connectors.clearinghouse.x12._write277 import write_277, write_277ca
from connectors.clearinghouse.x12._write837 import FilingIndicator, Submitter, write_837p
from connectors.clearinghouse.x12._write999 import functional_ack, write_999
from connectors.clearinghouse.x12._writer import (
    ControlCounter,
    ControlNumbers,
    Envelope,
    Party,
    WrittenInterchange,
    is_segment_id,
    unwritable_paths,
)

__all__ = [
    "DEFAULT_DELIMITERS",
    "ClaimRead",
    "ControlCounter",
    "ControlNumbers",
    "Delimiters",
    "Envelope",
    "FilingIndicator",
    "FunctionalAck",
    "GroupEnd",
    "InterchangeHeader",
    "Party",
    "Read276",
    "Read277",
    "Read835",
    "Read837",
    "RemittanceHeader",
    "RemittanceTrailer",
    "SegmentIssue",
    "SetAck",
    "SetEnvelope",
    "StatusInquiry",
    "Submitter",
    "WrittenInterchange",
    "X12Error",
    "accepted_ta1",
    "acknowledge",
    "functional_ack",
    "is_segment_id",
    "iter_835",
    "read_276",
    "read_277",
    "read_835",
    "read_837",
    "read_999",
    "reply_envelope",
    "set_ack",
    "unwritable_paths",
    "write_276",
    "write_277",
    "write_277ca",
    "write_837p",
    "write_999",
]
