"""Build large synthetic 835s (005010X221A1) for the reader benchmark: ~8 MB and ~80 MB.

Claim loops are replicated from one template, with the claim id, patient, dates and amounts varied
per claim (seeded, so the files are reproducible) and every line balanced, so the reader does real
work rather than hitting caches. Each transaction set carries ``--claims-per-set`` claims; SE01,
GE01 and IEA01 are counted, and BPR02 = sum(CLP04) - sum(PLB) in every set.

    python bench/make_835.py                 # bench/data/835_8mb.x12 and bench/data/835_80mb.x12
    python bench/make_835.py --size 2 --name small.x12
"""

from __future__ import annotations

import argparse
import random
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
FAMILY = ("SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "GARCIA", "MILLER", "DAVIS", "LOPEZ", "WILSON")
GIVEN = ("JAMES", "MARY", "ROBERT", "PATRICIA", "JOHN", "JENNIFER", "MICHAEL", "LINDA", "DAVID", "ELIZABETH")
PROCEDURES = ("99213", "99214", "80053", "85025", "93000", "71046", "97110", "J1885", "36415", "G0439")
MODIFIERS = ("", "", "", "25", "59", "LT", "RT")
REMARKS = ("N130", "M15", "MA01", "N381", "")
PAYEE_NPI = "1234567893"
CENT = Decimal("0.01")


def _money(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low * 100, high * 100)) * CENT


def _header(set_number: int, when: date) -> list[str]:
    """Everything between ST and the first LX; BPR02 is a placeholder filled in at the end."""
    return [
        f"ST*835*{set_number:04d}",
        "BPR*I*{total}*C*ACH*CCP*01*999999992*DA*123456*1512345678**01*999988880*DA*98765*" + when.strftime("%Y%m%d"),
        f"TRN*1*{set_number:010d}*1512345678",
        "REF*EV*HUBRECEIVER",
        "DTM*405*" + when.strftime("%Y%m%d"),
        "N1*PR*BENCHMARK HEALTH PLAN",
        "N3*1 PAYER PLAZA",
        "N4*HARTFORD*CT*06101",
        "REF*2U*99999",
        "PER*BL*PROVIDER SERVICES*TE*8005550100",
        "N1*PE*RIVERSIDE FAMILY PRACTICE*XX*" + PAYEE_NPI,
        "N3*100 MAIN ST",
        "N4*SPRINGFIELD*IL*627011234",
        "REF*TJ*123456789",
        "LX*1",
    ]


def _claim(rng: random.Random, number: int, when: date) -> tuple[list[str], Decimal]:
    """One claim loop (2100) with 1-4 service lines (2110); returns the segments and CLP04."""
    lines: list[str] = []
    billed = paid = responsibility = Decimal(0)
    served = when - timedelta(days=rng.randint(10, 90))
    for _ in range(rng.randint(1, 4)):
        charge = _money(rng, 40, 900)
        contractual = (charge * Decimal(rng.randint(5, 45)) / 100).quantize(CENT)
        deductible = _money(rng, 0, 30) if rng.random() < 0.4 else Decimal(0)
        copay = Decimal(rng.choice((0, 10, 20, 25)))
        if charge - contractual - deductible - copay < 0:
            deductible = copay = Decimal(0)
        line_paid = charge - contractual - deductible - copay
        billed, paid = billed + charge, paid + line_paid
        responsibility += deductible + copay
        code = rng.choice(PROCEDURES)
        modifier = rng.choice(MODIFIERS)
        procedure = f"HC:{code}" + (f":{modifier}" if modifier else "")
        lines += [
            f"SVC*{procedure}*{charge}*{line_paid}**{rng.randint(1, 3)}",
            "DTM*472*" + served.strftime("%Y%m%d"),
            f"CAS*CO*45*{contractual}",
        ]
        patient_part = [f"{reason}*{value}*" for reason, value in (("1", deductible), ("3", copay)) if value]
        if patient_part:
            lines.append("CAS*PR*" + "*".join(patient_part).rstrip("*"))
        lines += [f"REF*6R*{number:09d}{len(lines):03d}", f"AMT*B6*{charge - contractual}"]
        remark = rng.choice(REMARKS)
        if remark:
            lines.append(f"LQ*HE*{remark}")
    head = [
        f"CLP*PCN{number:09d}*1*{billed}*{paid}*{responsibility}*12*PAYER{number:012d}*11*1",
        f"NM1*QC*1*{rng.choice(FAMILY)}*{rng.choice(GIVEN)}****MI*M{number:010d}",
        f"NM1*82*1*{rng.choice(FAMILY)}*{rng.choice(GIVEN)}****XX*1234567893",
        f"REF*EA*MRN{number:08d}",
        "DTM*232*" + served.strftime("%Y%m%d"),
        "DTM*233*" + served.strftime("%Y%m%d"),
        f"AMT*AU*{billed}",
    ]
    return head + lines, paid


def _set(rng: random.Random, set_number: int, first: int, count: int, when: date) -> list[str]:
    """One ST..SE with ``count`` claims numbered from ``first``; BPR02 = sum(CLP04) - sum(PLB)."""
    body = _header(set_number, when)
    total = Decimal(0)
    for number in range(first, first + count):
        segments, paid = _claim(rng, number, when)
        body += segments
        total += paid
    interest, withheld = _money(rng, 1, 20), _money(rng, 5, 60)
    body.append(f"PLB*{PAYEE_NPI}*{when.year}1231*L6:INT{set_number:05d}*{-interest}*WO:OVP{set_number:05d}*{withheld}")
    body[1] = body[1].format(total=total - (withheld - interest))
    body.append(f"SE*{len(body) + 1}*{set_number:04d}")
    return body


def build(path: Path, megabytes: float, per_set: int = 5000, seed: int = 835) -> tuple[int, int]:
    """Write an 835 of about ``megabytes`` MB (10^6 bytes); returns (bytes written, claims)."""
    rng = random.Random(seed)
    when = date(2024, 3, 29)
    target = int(megabytes * 1_000_000)
    isa = "ISA*00*          *00*          *ZZ*BENCHPAYER     *ZZ*HUBRECEIVER    *240329*1200*^*00501*000000835*0*T*:~"
    path.parent.mkdir(parents=True, exist_ok=True)
    sets = claims = written = 0
    with path.open("w", encoding="ascii", newline="") as out:
        written += out.write(isa + "\n")
        written += out.write("GS*HP*BENCHPAYER*HUBRECEIVER*20240329*1200*835*X*005010X221A1~\n")
        while written < target:
            sets += 1
            # about 540 bytes a claim: size the last set so the file ends near the target
            count = max(1, min(per_set, (target - written) // 540))
            written += out.write("~\n".join(_set(rng, sets, claims + 1, count, when)) + "~\n")
            claims += count
        out.write(f"GE*{sets}*835~\nIEA*1*000000835~\n")
    return path.stat().st_size, claims


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=float, action="append", help="megabytes (repeatable); default 8 and 80")
    parser.add_argument("--name", help="file name under bench/data (only with one --size)")
    parser.add_argument("--claims-per-set", type=int, default=5000)
    args = parser.parse_args()
    sizes = args.size or [8, 80]
    for size in sizes:
        name = args.name if args.name and len(sizes) == 1 else f"835_{size:g}mb.x12"
        written, claims = build(DATA / name, size, args.claims_per_set)
        print(f"{DATA / name}: {written / 1e6:.1f} MB, {claims} claims")


if __name__ == "__main__":
    main()
