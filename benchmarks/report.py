"""Markdown tables of the committed benchmark results, for the README.

    python benchmarks/report.py            # print the tables
    python benchmarks/report.py --write    # rewrite the generated blocks of README.md

Reads only ``benchmarks/results/*.json`` (the ``results`` block) and ``benchmarks/paper/results/*.json`` (the
``paper`` block): every number in the README's generated blocks comes from a committed JSON written by a
committed script (``tests/test_readme.py`` checks that the blocks are current).
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAPER = ROOT / "benchmarks" / "paper" / "results"


def markers(block: str):
    return f"<!-- {block}:start (python benchmarks/report.py --write) -->", f"<!-- {block}:end -->"


START, END = markers("results")


def _load(name, folder=RESULTS):
    return json.loads((folder / name).read_text())


def _stats(values) -> dict:
    """The summary the paper scripts store (``benchmarks/paper/_common.stats``), for the older benchmark JSON."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"n": len(values), "mean": statistics.fmean(values), "std": std, "min": min(values), "max": max(values)}


def _pm(stat: dict, fmt: str = ".3f") -> str:
    """``mean ± std`` over seeds (just the value for one seed)."""
    if stat.get("n", 0) == 0:
        return "–"
    if stat["n"] == 1 or stat["std"] == 0:
        return format(stat["mean"], fmt)
    return f"{format(stat['mean'], fmt)} ± {format(stat['std'], fmt)}"


def subset_sum_table() -> str:
    data = _load("subset_sum.json")
    tol = next((r["fewest"]["tol"] for r in data["results"] if "fewest" in r), None)
    rows = ["| N | exact problems/s | median \\|residual\\| | HiGHS MILP s/problem | exact vs MILP | exact ≤ MILP residual | "
            f"fewest within {tol:g}: problems/s | mean size |", "|---" * 8 + "|"]
    for r in data["results"]:
        milp, fewest = r.get("milp", {}), r.get("fewest", {})
        rows.append(f"| {r['N']} | {r['exact_problems_per_s']:,.0f} | {r['exact_residual']['median']:.1e} | "
                    f"{milp.get('s_per_problem_mean', float('nan')):.3f} | "
                    f"{milp.get('speedup_exact_vs_milp', float('nan')):,.0f}× | "
                    f"{100 * milp.get('frac_exact_le_milp', float('nan')):.0f}% | "
                    f"{fewest.get('problems_per_s', float('nan')):,.0f} | {fewest.get('mean_size', float('nan')):.2f} |")
    return f"Subset-Sum (`{data['command']}`):\n\n" + "\n".join(rows)


def construct_table() -> str:
    data = _load("construct.json")
    rows = ["| target | coefficients | construct (s) | draw / solve (s) | peak memory | agreement (inputs) | "
            "max output error | ticket forward vs target | random | kept |", "|---" * 10 + "|"]
    for r in data["runs"]:
        c, s = r["counts"], r["seconds"]
        accuracy = (f" (accuracy {r['target_accuracy']:.3f} → {r['ticket_accuracy']:.3f})"
                    if "target_accuracy" in r else "")
        rows.append(f"| {r['target']} | {r['target_coefficients']:,} | {s['construct_total']:.1f} | "
                    f"{s['draw']:.1f} / {s['solve']:.1f} | {r['peak_rss_mb'] / 1024:.2f} GB | "
                    f"{r['prediction_agreement']:.4f} ({r['inputs_measured']:,}){accuracy} | "
                    f"{r['max_output_error']:.1e} | {r['ticket_forward_vs_target']:.2f}× | {c['random']:,} | "
                    f"{c['kept']:,} |")
    fits = data["fits"]
    return (f"Construction (`{data['command']}`, tol {_scientific(data['tol'])}; each target in a fresh process, peak memory of "
            f"that process; agreement and errors on the listed number of inputs; Pensia et al.: "
            f"{data['reference']['pensia_2020_mlp_seconds']:,} s on {data['reference']['pensia_2020_cores']} cores "
            f"for the MLP). Time grows with the target's coefficients with a fitted log-log slope of "
            f"{fits['time']['slope']:.2f} ({fits['time']['slope_smallest_to_largest']:.2f} from the smallest to the "
            f"largest target; `benchmarks/results/construct.png`):\n\n" + "\n".join(rows))


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
    atlas = data.get("atlas")
    command = "python benchmarks/ign.py"
    if atlas:
        seeds = sorted({r["seed"] for runs in atlas["results"].values() for r in runs})
        command += " --atlas" + (f" --seeds {' '.join(map(str, seeds))}" if seeds != [0] else "")
    text = f"IGN layers (`{command}`):\n\n" + "\n".join(rows)
    if atlas:
        seeds = len(next(iter(atlas["results"].values())))
        rows = ["| model | parameters | held-out accuracy | min over seeds | 1-WL-ambiguous held-out | min over seeds |",
                "|---|---|---|---|---|---|"]
        for model, runs in atlas["results"].items():
            acc, hard = (_stats([r[key] for r in runs]) for key in ("test_acc", "wl_ambiguous_test_acc"))
            rows.append(f"| {model} | {runs[0]['parameters']:,} | {_pm(acc)} | {acc['min']:.3f} | {_pm(hard, '.2f')} | "
                        f"{hard['min']:.2f} |")
        hard_graphs = sorted({r["wl_ambiguous_test_graphs"] for runs in atlas["results"].values() for r in runs})
        text += (f"\n\nAtlas {atlas['task']}, {seeds} seed{'s' if seeds > 1 else ''} (mean ± std; the seed also "
                 f"draws the 80/20 split, with {'–'.join(str(n) for n in hard_graphs[::max(len(hard_graphs) - 1, 1)])} "
                 "1-WL-ambiguous held-out graphs):\n\n" + "\n".join(rows))
    return text


def _constructed_rows(steerable, ign, mpnn):
    """One row per target family: the default construction (the scripts' tol, widening), over seeds."""
    rows = []
    for group, g in steerable["summary"].items():
        r = next(c for c in g["construction"] if c["key"][1] == "widen")
        rows.append((f"steerable CNN {group.upper()} {tuple(steerable['settings']['channels'])}", r,
                     r["max_invariance_error"], "90° rotations" + (" and flips" if group.startswith("d") else "")))
    for r in ign["summary"]["targets"]:
        rows.append((r["key"][0], r, r["permutation_invariance_error.ticket"], "node relabellings"))
    for r in mpnn["summary"]["tickets"]:
        rows.append((r["key"][0], r, r["permutation_error.ticket"], "node relabellings"))
    return rows


def _tol(*runs) -> str:
    """The tolerance the paper scripts constructed with (one for all)."""
    tols = {run["settings"]["tol"] for run in runs}
    if len(tols) != 1:
        raise ValueError(f"the paper scripts ran with different tolerances: {sorted(tols)}")
    return _scientific(tols.pop())


def _scientific(value: float) -> str:
    """``1e-4`` rather than ``0.0001`` or ``1e-04``."""
    mantissa, exponent = f"{value:.3e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def paper_construction_table() -> str:
    steerable, ign, mpnn = (_load(f"{n}.json", PAPER) for n in ("steerable", "ign", "mpnn"))
    seeds = len(steerable["settings"]["seeds"])
    head = ("| target | target acc. | ticket acc. | agreement (min) | max \\|f − g\\| | ticket equivariance error "
            "(max) | random | kept | lower bound | construct (s) |")
    rows = [head, "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r, eq, action in _constructed_rows(steerable, ign, mpnn):
        rows.append(f"| {name} | {_pm(r['target_accuracy'])} | {_pm(r['ticket_accuracy'])} | "
                    f"{r['prediction_agreement']['mean']:.4f} ({r['prediction_agreement']['min']:.4f}) | "
                    f"{_pm(r['max_output_error'], '.1e')} | {eq['max']:.1e} ({action}) | "
                    f"{r['counts.random']['mean']:,.0f} | {r['counts.kept']['mean']:,.0f} | "
                    f"{r['counts.lower_bound']['mean']:,.0f} | {_pm(r['construct_seconds'], '.1f')} |")
    return (f"Tickets by construction, mean ± std over {seeds} seeds (tol {_tol(steerable, ign, mpnn)} with widening; "
            "accuracy on "
            "held-out data; agreement: the fraction of held-out predictions equal to the target's, mean (min over "
            "seeds); equivariance error: max over seeds and group elements of the error relative to the largest "
            "logit, float32; counts: mean):\n\n" + "\n".join(rows))


def paper_steerable_sweep_table() -> str:
    steerable = _load("steerable.json", PAPER)
    groups = steerable["summary"]
    names = list(groups)
    ns = [c["key"][0] for c in groups[names[0]]["construction"] if c["key"][1] == "report"]
    head = "| N | " + " | ".join(f"{g.upper()} ticket acc. | {g.upper()} agreement | {g.upper()} max \\|f − g\\| | "
                                 f"{g.upper()} certified bound" for g in names) + " |"
    rows = [head, "|---" * (1 + 4 * len(names)) + "|"]
    for n in ns:
        cells = []
        for g in names:
            r = next(c for c in groups[g]["construction"] if c["key"] == [n, "report"])
            cells += [_pm(r["ticket_accuracy"]), _pm(r["prediction_agreement"]), _pm(r["max_output_error"], ".1e"),
                      f"{r['certified_bound']['mean']:.1e}"]
        rows.append(f"| {n} | " + " | ".join(cells) + " |")
    targets = ", ".join(f"{g.upper()} target {_pm(groups[g]['target_accuracy'])}" for g in names)
    return (f"Steerable CNNs, construction for a sweep of N (summands per pool; policy report, nothing widened; "
            f"{targets}):\n\n" + "\n".join(rows))


def paper_agreement_sweep_table() -> str:
    steerable, ign, mpnn = (_load(f"{n}.json", PAPER) for n in ("steerable", "ign", "mpnn"))
    ns = sorted(set(ign["settings"]["ns"]) | set(mpnn["settings"]["ns"]))
    rows = ["| target | " + " | ".join(f"N = {n}" for n in ns) + f" | default (tol {_tol(steerable, ign, mpnn)}, widening) |",
            "|---" * (len(ns) + 2) + "|"]
    for group, g in steerable["summary"].items():
        by_n = {c["key"][0]: c for c in g["construction"] if c["key"][1] == "report"}
        widen = next(c for c in g["construction"] if c["key"][1] == "widen")
        rows.append(f"| steerable CNN {group.upper()} | " + " | ".join(
            _pm(by_n[n]["prediction_agreement"]) if n in by_n else "–" for n in ns)
            + f" | {_pm(widen['prediction_agreement'])} (N = {widen['key'][0]}) |")
    for data, targets in ((ign, ign["summary"]["targets"]), (mpnn, mpnn["summary"]["tickets"])):
        sweep = {tuple(r["key"]): r for r in data["summary"]["sweep"]}
        for t in targets:
            name = t["key"][0]
            rows.append(f"| {name} | " + " | ".join(
                _pm(sweep[(name, n)]["prediction_agreement"]) if (name, n) in sweep else "–" for n in ns)
                + f" | {_pm(t['prediction_agreement'])} |")
    return ("Prediction agreement of the constructed ticket with its target against N, the summands per Subset-Sum "
            "pool (policy report: nothing widened; mean ± std over the seeds):\n\n" + "\n".join(rows))


def paper_search_table() -> str:
    steerable, ign, mpnn = (_load(f"{n}.json", PAPER) for n in ("steerable", "ign", "mpnn"))
    rows = ["| random network | sparsity | searched ticket acc. | ticket equivariance error (max) | "
            "trained target acc. |", "|---|---|---|---|---|"]

    def row(network, r, error, target, target_size):
        rows.append(f"| {network} | {r['sparsity']['mean']:.2f} | {_pm(r['test_accuracy'])} | {r[error]['max']:.1e} | "
                    f"{_pm(target['target_accuracy'])} ({target_size}) |")

    st, si, sm = steerable["settings"], ign["settings"], mpnn["settings"]
    for group, g in steerable["summary"].items():
        for r in g["search"]:
            row(f"steerable CNN {group.upper()} {tuple(st['search_channels'])}, {st['search_epochs']} epochs", r,
                "max_invariance_error", g, f"channels {tuple(st['channels'])}")
    targets = {r["key"][0]: r for r in ign["summary"]["targets"] + mpnn["summary"]["tickets"]}
    for r in ign["summary"]["search"]:
        row(f"2-IGN (hidden {si['search_hidden']}), {si['search_epochs']} epochs", r, "permutation_invariance_error",
            targets["2-IGN"], f"hidden {si['hidden']}")
    for r in mpnn["summary"]["search"]:
        name = r["key"][0].replace(" (random, searched)", "")
        row(f"{name} (hidden {sm['search_hidden']}), {sm['search_epochs']} epochs", r, "permutation_error",
            targets[name], f"hidden {sm['hidden']}")
    return ("Tickets by supermask search (edge-popup on the basis coefficients of a wider random network; same "
            "scripts and seeds):\n\n" + "\n".join(rows))


def paper_scaling_table() -> str:
    data = _load("scaling.json", PAPER)
    rows = ["| random network | slope of ln(median residual) per summand | theory | kept / lower bound at "
            f"N = {data['settings']['ns'][-1]} |", "|---|---|---|---|"]
    for name, s in data["summary"].items():
        rows.append(f"| {name} | {_pm(s['slope_per_N'])} | {s['expected_slope']:.3f} (−ln 2) | "
                    f"{_pm(s['kept_over_lower_bound_at_max_N'], '.2f')} |")
    return (f"Scaling (`{data['command']}`, {len(data['settings']['seeds'])} seeds; figure "
            "`benchmarks/paper/results/scaling.png`):\n\n" + "\n".join(rows))


def paper_pensia_table() -> str:
    data = _load("pensia.json", PAPER)
    ref, closest, fewest = data["pensia_2020"], data["summary"]["closest"], data["summary"]["fewest"]
    seeds = len(data["settings"]["seeds"])
    rows = ["| | Pensia et al. 2020 | equislt, closest subset | equislt, fewest elements within ε |",
            "|---|---|---|---|",
            f"| solver | {ref['solver']} | exact meet-in-the-middle, batched | exact, fewest elements |",
            f"| hardware | {ref['cores']} cores (AWS c5.18xlarge) | {data['machine']['cpus']} CPU cores | same |",
            f"| Subset-Sum problems (n = {data['n']}, ε = {data['settings']['eps']}) | {ref['weights']:,} | "
            f"{data['runs'][0]['weights']:,} | same |",
            f"| wall time | {ref['seconds']:,} s | {_pm(closest['solve_seconds'], '.1f')} s | "
            f"{_pm(fewest['solve_seconds'], '.1f')} s |",
            f"| weights within ε | 100% | {100 * closest['frac_within_eps']['min']:.2f}% | "
            f"{100 * fewest['frac_within_eps']['min']:.2f}% |",
            f"| max residual | ≤ ε | {closest['max_residual']['max']:.1e} | {fewest['max_residual']['max']:.1e} |",
            f"| kept / target weights | {ref['kept_over_target']} | {_pm(closest['kept_over_target'], '.2f')} | "
            f"{_pm(fewest['kept_over_target'], '.2f')} |",
            f"| accuracy target → approximation | {ref['accuracy']:.4f} → {ref['accuracy']:.4f} (MNIST) | "
            f"{_pm(closest['target_accuracy'], '.4f')} → {_pm(closest['ticket_accuracy'], '.4f')} (digits) | "
            f"→ {_pm(fewest['ticket_accuracy'], '.4f')} |",
            f"| prediction agreement | – | {_pm(closest['prediction_agreement'], '.4f')} | "
            f"{_pm(fewest['prediction_agreement'], '.4f')} |"]
    return (f"Pensia et al.'s Experiment 1 replicated (`{data['command']}`, {seeds} seeds; their numbers from their "
            "repository):\n\n" + "\n".join(rows))


def paper_laws_table() -> str:
    data = _load("laws.json", PAPER)
    smallest = _scientific(min(data["settings"]["eps"]))
    rows = ["| target (coefficients) | Malach: exponent of random in 1/ε (theory 1) | Subset-Sum: random per bit of "
            "1/ε, fitted (theory κ) | random, Malach ÷ Subset-Sum at ε = " + smallest + " | kept / target at ε = "
            + smallest + ": Malach, closest, fewest |", "|---|---|---|---|---|"]
    for name, s in data["summary"].items():
        if "malach_exponent" not in s:
            continue
        kept = s["kept_over_target_at_smallest_eps"]
        rows.append(f"| {name} ({s['target_coefficients']:,}) | {_pm(s['malach_exponent'], '.2f')} | "
                    f"{_pm(s['subset_sum_slope_per_bit'], '.1f')} ({s['subset_sum_slope_per_bit_theory']['mean']:.1f}) | "
                    f"{_pm(s['malach_over_subset_sum_at_smallest_eps'], ',.0f')} | "
                    f"{kept['malach']['mean']:.1f}, {kept['subset_sum_closest']['mean']:.1f}, "
                    f"{kept['subset_sum_fewest']['mean']:.1f} |")
    neuron = data["summary"]["single ReLU neuron"]["error_exponent_in_width"]
    return (f"Over-parametrisation laws (`{data['command']}`, {len(data['settings']['seeds'])} seeds; random "
            "coefficients needed to bring every coefficient within ε, from ε = "
            f"{_scientific(max(data['settings']['eps']))} to {smallest}, each run widening from N = 2; figure "
            "`benchmarks/paper/results/laws.png`). κ is the random network's coefficients per summand of every pool "
            "over the target's: one more summand per halving of ε. Neuron subnetworks (whole hidden fields kept or "
            f"dropped) on a single ReLU neuron in 4 dimensions: held-out error ∝ width^{_pm(neuron, '.2f')}:\n\n"
            + "\n".join(rows))


def paper_sparse_table() -> str:
    data = _load("sparse.json", PAPER)
    rows = ["| target (coefficients) | closest subsets, tol 1e-5: kept / target | held-out agreement | "
            "`construct_sparse`: kept / target | selection agreement | held-out agreement |",
            "|---|---|---|---|---|---|"]
    for name, s in data["summary"].items():
        rows.append(f"| {name} ({s['target_coefficients']:,}) | {_pm(s['closest.kept_over_target'], '.2f')} | "
                    f"{_pm(s['closest.held_out_agreement'], '.4f')} | {_pm(s['sparse.kept_over_target'], '.2f')} | "
                    f"{_pm(s['sparse.selection_agreement'], '.4f')} | {_pm(s['sparse.held_out_agreement'], '.4f')} |")
    feedback = "without error feedback" if data["settings"].get("no_feedback", True) else "with error feedback"
    return (f"Sparse tickets (`{data['command']}`, {len(data['settings']['seeds'])} seeds; pools of "
            f"N = {data['settings']['n']}, fewest elements {feedback}, a tolerance per layer lowered until the "
            f"agreement on the "
            f"selection inputs reaches {data['settings']['agreement']}; selection: the training inputs; held out: "
            "4 fresh continuous rotations of every test digit, or the test graphs; Pensia et al. kept 9.39×; "
            "figure `benchmarks/paper/results/sparse.png`):\n\n" + "\n".join(rows))


def paper_width_table() -> str:
    data = _load("width.json", PAPER)
    families = data["summary"]
    widths = sorted({int(cell.split("x")[0]) for s in families.values() for cell in s["cells"]})
    rows = ["| family | trained target (1×) | " + " | ".join(f"{w}× (best sparsity)" for w in widths)
            + " | smallest width within one point |", "|---" * (len(widths) + 3) + "|"]
    for s in families.values():
        seeds = len(s["settings"]["seeds"])

        def partial(stat):  # a grid still running: how many seeds a number is over
            return f"{stat['n']} of {seeds} seeds" if stat["n"] < seeds else ""

        cells = []
        for w in widths:
            mine = {cell: v for cell, v in s["cells"].items() if int(cell.split("x")[0]) == w}
            if not mine:
                cells.append("–")
                continue
            cell, best = max(mine.items(), key=lambda kv: kv[1]["mean"])
            cells.append(f"{_pm(best)} ({'; '.join(filter(None, [cell.split('/')[1], partial(best)]))})")
        match, searches = s["smallest_matching_width"], s.get("searches")  # (no count: a complete grid)
        if searches and searches["done"] < searches["planned"]:
            verdict = f"grid incomplete ({searches['done']} of {searches['planned']} searches)"
        else:
            verdict = f"{match}×" if match else f"none up to {max(widths)}×"
        target = _pm(s["target_accuracy"])
        if partial(s["target_accuracy"]):
            target += f" ({partial(s['target_accuracy'])})"
        rows.append(f"| {s['name']} | {target} | " + " | ".join(cells) + f" | {verdict} |")
    settings = next(iter(families.values()))["settings"]
    return (f"Search width study (`benchmarks/paper/width.py`, run family by family; {len(settings['seeds'])} seeds, "
            f"sparsities {', '.join(str(x) for x in settings['sparsities'])}, Adam lr {settings['lr']}, "
            "30 epochs for images and 60 for graphs; held-out accuracy of the searched ticket, mean ± std over seeds, "
            "at the sparsity that does best for each width; figure `benchmarks/paper/results/width.png`):\n\n"
            + "\n".join(rows))


def paper_width_gap_table() -> str:
    data = _load("width_gap.json", PAPER)
    families = data["summary"]
    epochs = sorted({int(e) for s in families.values() for e in s["tickets"]})
    rows = ["| family | target: training | target: held out | "
            + " | ".join(f"ticket, {e} epochs: training | held out" for e in epochs)
            + " | held-out standard error |", "|---" * (3 + 2 * len(epochs) + 1) + "|"]
    for s in families.values():
        cells = [_pm(s["target"]["train_accuracy"]), _pm(s["target"]["test_accuracy"])]
        for e in epochs:
            ticket = s["tickets"].get(str(e), {})
            cells += [_pm(ticket.get("train_accuracy", {})), _pm(ticket.get("test_accuracy", {}))]
        rows.append(f"| {s['name']} ({s['width']}×, sparsity {s['sparsity']}) | " + " | ".join(cells)
                    + f" | {s['held_out_standard_error']:.3f} |")
    names = list(dict.fromkeys(name for s in families.values() for name in s["variants"]))
    changed = ["| family | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for s in families.values():
        changed.append(f"| {s['name']} ({s['variant_width']}×) | " + " | ".join(
            f"{_pm(s['variants'][n]['train_accuracy'], '.2f')} / {_pm(s['variants'][n]['test_accuracy'], '.2f')}"
            if n in s["variants"] else "–" for n in names) + " |")
    return (f"Why GIN and the 2-IGN fall short (`benchmarks/paper/width_gap.py`, {len(data['settings']['seeds'])} "
            "seeds): accuracy on the training set and held out, of the trained 1× target and of the searched ticket "
            "after the width study's epochs and three times as many:\n\n" + "\n".join(rows)
            + "\n\nThe same search with one setting changed (training / held-out accuracy):\n\n" + "\n".join(changed))


def report() -> str:
    return "\n\n".join([subset_sum_table(), construct_table(), search_table(), ign_table()])


PAPER_SCRIPTS = ("steerable", "ign", "mpnn", "scaling", "pensia", "laws", "sparse")  # what `make paper` runs


def paper_runs_table() -> str:
    rows = ["| script | command | seeds | wall time (s) | load at the end | figure |", "|---|---|---|---|---|---|"]
    total = 0.0
    for name in PAPER_SCRIPTS:
        data = _load(f"{name}.json", PAPER)
        total += data["wall_seconds"]
        rows.append(f"| `{name}.py` | `{data['command']}` | {len(data['settings']['seeds'])} | "
                    f"{data['wall_seconds']:.0f} | {data['machine']['loadavg_at_end'][0]:.1f} | "
                    f"`benchmarks/paper/results/{name}.png` |")
    rows.append(f"| all (`make paper`) | | | {total:.0f} ({total / 60:.0f} min) | | |")
    return "Runs (our machine: 2 CPU cores):\n\n" + "\n".join(rows)


def report_paper() -> str:
    return "\n\n".join([paper_runs_table(), paper_construction_table(), paper_agreement_sweep_table(),
                         paper_steerable_sweep_table(), paper_search_table(),
                         paper_scaling_table(), paper_laws_table(), paper_pensia_table(), paper_sparse_table(),
                         paper_width_table(), paper_width_gap_table()])


BLOCKS = {"results": report, "paper": report_paper}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the results block of README.md")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    content = readme.read_text()
    for block, make in BLOCKS.items():
        text = make()
        if not args.write:
            print(text, end="\n\n")
            continue
        start, end = markers(block)
        if start not in content or end not in content:
            raise SystemExit(f"README.md has no {block} markers ({start} ... {end})")
        head, rest = content.split(start, 1)
        _, tail = rest.split(end, 1)
        content = f"{head}{start}\n{text}\n{end}{tail}"
    if args.write:
        readme.write_text(content)


if __name__ == "__main__":
    main()
