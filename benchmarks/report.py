"""Markdown tables of the committed benchmark results, for the README.

    python benchmarks/report.py            # print the tables
    python benchmarks/report.py --write    # rewrite the block between the results markers in README.md

Reads only ``benchmarks/results/*.json``: every number in the README's results block comes from a
committed JSON written by a committed script (``tests/test_readme.py`` checks that the block is current).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
START, END = "<!-- results:start (python benchmarks/report.py --write) -->", "<!-- results:end -->"


def _load(name):
    return json.loads((RESULTS / name).read_text())


def subset_sum_table() -> str:
    data = _load("subset_sum.json")
    rows = ["| N | exact problems/s | median \\|residual\\| | HiGHS MILP s/problem | exact vs MILP | exact ≤ MILP residual |",
            "|---|---|---|---|---|---|"]
    for r in data["results"]:
        milp = r.get("milp", {})
        rows.append(f"| {r['N']} | {r['exact_problems_per_s']:,.0f} | {r['exact_residual']['median']:.1e} | "
                    f"{milp.get('s_per_problem_mean', float('nan')):.3f} | "
                    f"{milp.get('speedup_exact_vs_milp', float('nan')):,.0f}× | "
                    f"{100 * milp.get('frac_exact_le_milp', float('nan')):.0f}% |")
    return f"Subset-Sum (`{data['command']}`):\n\n" + "\n".join(rows)


def construct_table() -> str:
    data = _load("construct.json")
    rows = ["| target | target coefficients | problems | build + solve (s) | rows over tol | agreement | "
            "max output error | random | kept | lower bound |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["runs"]:
        c = r["counts"]
        rows.append(f"| {r['target']} | {r['target_weight_coefficients']:,} | {c['subset_sum_problems']:,} | "
                    f"{r['seconds']['construct_excluding_evaluation']:.1f} | {r['rows_over_tol']} | "
                    f"{r['prediction_agreement']:.4f} | {r['max_output_error']:.1e} | {c['random']:,} | "
                    f"{c['kept']:,} | {c['lower_bound']:,.0f} |")
    command = f"python benchmarks/construct.py --only {','.join(r['target'] for r in data['runs'])} --n {data['n']}"
    return (f"Construction (`{command}`, tol {data['tol']}; Pensia et al.: {data['reference']['pensia_2020_mlp_seconds']:,} s "
            f"on {data['reference']['pensia_2020_cores']} cores for the MLP):\n\n" + "\n".join(rows))


def search_table() -> str:
    data = _load("search.json")
    dense = {d["model"]: d for d in data["dense_targets"]}
    rows = ["| random network | " + " | ".join(f"sparsity {s}" for s in data["settings"]["sparsities"])
            + " | dense target |", "|---" * (len(data["settings"]["sparsities"]) + 2) + "|"]
    for key in ("steerable_tickets", "plain_tickets"):
        tickets = data[key]
        model = tickets[0]["model"]
        target = dense.get(model)
        rows.append(f"| {model} {tuple(tickets[0]['channels'])} | "
                    + " | ".join(f"{t['test_accuracy']:.3f}" for t in tickets)
                    + f" | {target['test_accuracy']:.3f} |" if target else " | – |")
    step = data["layer_step"][0]
    return (f"Search (`{data['command'].split(' --out')[0]}`; held-out accuracy; a masked R2Conv training step "
            f"costs {step['ratio']:.2f}× the plain layer's):\n\n" + "\n".join(rows))


def ign_table() -> str:
    data = _load("ign.json")
    rows = ["| layer | n | IGNLinear fwd+bwd (ms) | dense basis reference |", "|---|---|---|---|"]
    for r in data["timing"]:
        dense = r["dense"]
        ref = f"{dense['time_ms']:.1f} ms" if "time_ms" in dense else f"skipped: {dense['skipped']}"
        rows.append(f"| {r['layer']} | {r['n']} | {r['ign']['time_ms']:.1f} | {ref} |")
    text = "IGN layers (`python benchmarks/ign.py --atlas`):\n\n" + "\n".join(rows)
    atlas = data.get("atlas")
    if atlas:
        rows = ["| model | parameters | held-out accuracy | 1-WL-ambiguous held-out |", "|---|---|---|---|"]
        for model, runs in atlas["results"].items():
            r = runs[0]
            rows.append(f"| {model} | {r['parameters']:,} | {r['test_acc']:.3f} | {r['wl_ambiguous_test_acc']:.2f} |")
        text += f"\n\nAtlas {atlas['task']}:\n\n" + "\n".join(rows)
    return text


def report() -> str:
    return "\n\n".join([subset_sum_table(), construct_table(), search_table(), ign_table()])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the results block of README.md")
    args = parser.parse_args()
    text = report()
    if not args.write:
        print(text)
        return
    readme = ROOT / "README.md"
    content = readme.read_text()
    if START not in content or END not in content:
        raise SystemExit("README.md has no results markers")
    head, rest = content.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{text}\n{END}{tail}")


if __name__ == "__main__":
    main()
