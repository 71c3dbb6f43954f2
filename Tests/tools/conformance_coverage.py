#!/usr/bin/env python3
"""Every Server or Both statement of the MQTT 3.1.1 checklist has a test that names it.

Usage: conformance_coverage.py CHECKLIST [TEST_DIR]
A statement MQTT-a.b.c-d is covered when some test function's name holds MQTT_a_b_c_d (several IDs may share one name,
e.g. test_MQTT_4_6_0_2_and_4_6_0_3_...). Prints the uncovered IDs and exits non-zero when there is any.
"""
import pathlib
import re
import sys


def statements(checklist: pathlib.Path) -> list[tuple[str, str]]:
    rows = []
    for line in checklist.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) > 4 and re.fullmatch(r"MQTT-\d+\.\d+\.\d+-\d+", cells[1]):
            rows.append((cells[1], cells[3]))
    return rows


def named_ids(test_dir: pathlib.Path) -> set[str]:
    covered = set()
    for path in test_dir.rglob("*.swift"):
        text = path.read_text(encoding="utf-8", errors="replace")
        for name in re.findall(r"func\s+(test\w+)\s*\(", text):
            # test_MQTT_4_6_0_2_and_4_6_0_3_acks… names two statements: every a_b_c_d after MQTT_ counts.
            tail = name.split("MQTT_", 1)[1] if "MQTT_" in name else ""
            for match in re.finditer(r"(?:^|_)(\d+)_(\d+)_(\d+)_(\d+)(?=_|$)", tail):
                covered.add("MQTT-%s.%s.%s-%s" % match.groups())
    return covered


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    checklist = pathlib.Path(sys.argv[1])
    test_dir = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "Tests")
    rows = statements(checklist)
    required = [sid for sid, who in rows if who in ("Server", "Both")]
    covered = named_ids(test_dir)
    missing = [sid for sid in required if sid not in covered]
    print(f"conformance: {len(required) - len(missing)} of {len(required)} Server/Both statements have a named test")
    for sid in missing:
        print(f"  no test named for {sid}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
