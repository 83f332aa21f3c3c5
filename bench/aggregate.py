#!/usr/bin/env python3
"""Medians of several `tamtam bench` runs (their stdout: the table and RESULT lines).

Usage: bench/aggregate.py run1.txt run2.txt run3.txt > table.md

For every figure: the median value, the median of the per-run ratios to its baseline, the
range over runs, and the target re-checked on the median ratio (or value). Markdown on stdout.
"""

import re
import statistics
import sys

UNIT_BASE = {"MB/s": 1e6, "GB/s": 1e9}


def parse(path):
    values, units, baselines, targets, order = {}, {}, {}, {}, []
    lines = open(path, encoding="utf-8").read().splitlines()
    for line in lines:
        if line.startswith("RESULT "):
            _, key, value, unit = line.split()[:4]
            values[key] = float(value)
            units[key] = unit
    known = set(values)
    in_table = False
    for line in lines:
        if line.startswith("figure "):
            in_table = True
            continue
        if in_table and (not line.strip() or line.startswith("processes")):
            if line.startswith("processes"):
                in_table = False
            continue
        if not in_table or line.startswith("---"):
            continue
        tokens = line.split()
        if not tokens or tokens[0] not in known:
            continue
        key = tokens[0]
        order.append(key)
        base = next((t for t in tokens[1:] if t in known), None)
        if base:
            baselines[key] = base
        found = re.findall(r"((?:≤|≥)[0-9.]+×|[0-9.]+–[0-9.]+×|(?:≤|≥)[0-9.]+ [^ ,]+(?: [^ ,]+)?|yes) (?:met|MISSED|n/a)", line)
        if found:
            targets[key] = found
    return values, units, baselines, targets, order


def ratio(values, units, key, base):
    if base not in values or key not in values or values[base] == 0:
        return None
    v = values[key] * UNIT_BASE.get(units[key], 1.0)
    b = values[base] * UNIT_BASE.get(units[base], 1.0)
    return v / b


def check(target, value, r):
    m = re.fullmatch(r"(≤|≥)([0-9.]+)×", target)
    if m:
        if r is None:
            return None
        x = float(m.group(2))
        return r <= x if m.group(1) == "≤" else r >= x
    m = re.fullmatch(r"([0-9.]+)–([0-9.]+)×", target)
    if m:
        return None if r is None else float(m.group(1)) <= r <= float(m.group(2))
    if target == "yes":
        return value >= 1.0
    m = re.fullmatch(r"(≤|≥)([0-9.]+) (.+)", target)
    if m:
        x = float(m.group(2))
        if m.group(3).startswith("M/"):
            x *= 1e6
        elif m.group(3).startswith("k/"):
            x *= 1e3
        return value <= x if m.group(1) == "≤" else value >= x
    return None


def fmt(value, unit):
    if unit == "msg/s":
        return f"{value / 1e6:.3f} M/s" if value >= 1e5 else f"{value / 1e3:.1f} k/s"
    if unit == "ok":
        return "yes" if value >= 1 else "no"
    if abs(value) < 10:
        return f"{value:.2f} {unit}"
    return f"{value:.1f} {unit}"


def main(paths):
    runs = [parse(p) for p in paths]
    values0, units, baselines, targets, order = runs[0]
    print("| figure | TamTam (median) | baseline (median) | ratio (median; range) | target | met |")
    print("|---|---|---|---|---|---|")
    met_count, missed = 0, []
    for key in order:
        vals = [r[0][key] for r in runs if key in r[0]]
        value = statistics.median(vals)
        base = baselines.get(key)
        ratios = [ratio(r[0], r[1], key, base) for r in runs] if base else []
        ratios = [x for x in ratios if x is not None]
        r = statistics.median(ratios) if ratios else None
        base_text = ""
        if base:
            bvals = [run[0][base] for run in runs if base in run[0]]
            base_text = f"{base} = {fmt(statistics.median(bvals), units[base])}"
        ratio_text = ""
        if r is not None:
            ratio_text = f"{r:.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"
        elif len(vals) > 1:
            ratio_text = f"(values {fmt(min(vals), units[key])} – {fmt(max(vals), units[key])})"
        verdicts = []
        for t in targets.get(key, []):
            ok = check(t, value, r)
            verdicts.append("met" if ok else ("**MISSED**" if ok is False else "n/a"))
            if ok:
                met_count += 1
            elif ok is False:
                missed.append(f"{key} {t}")
        print(
            f"| `{key}` | {fmt(value, units[key])} | {base_text} | {ratio_text} | "
            f"{', '.join(targets.get(key, []))} | {', '.join(verdicts)} |"
        )
    print()
    print(f"Targets on the medians: {met_count} met, {len(missed)} missed.")


if __name__ == "__main__":
    main(sys.argv[1:])
