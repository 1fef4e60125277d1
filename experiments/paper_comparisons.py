"""The paper's comparisons at small scale, on the demo data, with seeds and intervals (issues 7 and 22).

(a) type sets {A, F} vs {A, F, C}: a supernet per set, evolutionary search in each,
    the best architecture of each pre-trained from scratch;
(b) orders at a matched parameter budget (the interleaved baseline's): interleaved
    (``bert``), sandwich, a random architecture and the searched one;
(c) evolution vs random search at an equal number of evaluations, with several search seeds;
(d) Kendall tau between supernet fitness and stand-alone MLM accuracy over every distinct
    architecture pre-trained here (at least 12 at the ``cpu`` budget), with a bootstrap interval.

Every architecture is pre-trained from scratch with ``seeds`` seeds (initialisation, data order
and masks), validated every ``eval_every`` steps on one fixed-mask set (the curves give the
plateau plot), evaluated on out-of-domain text (``lvbert eval --corpus``, the demo's 20 Newsgroups
sample) and fine-tuned on ``polarity`` once per seed. Each step's result is a file, so a stopped
run continues where it stopped; ``--workers 2`` runs two jobs at a time at one thread each.

Writes ``<out>/results.json``, the plateau plot (``--plot``) and the generated part of
EXPERIMENTS.md (``--experiments``: the text between its ``paper-comparisons`` markers).

    lvbert quickstart --profile cpu-quick --out runs/qs          # builds the demo data (seq 64, vocab 4096)
    python experiments/paper_comparisons.py --budget cpu --data runs/qs/data --out runs/experiments \\
        --workers 2 --plot docs/img/plateau.png --experiments EXPERIMENTS.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

BEGIN, END = "<!-- paper-comparisons:begin -->", "<!-- paper-comparisons:end -->"


@dataclass(frozen=True)
class Budget:
    size: str
    supernet_steps: int
    supernet_batch: int
    population: int
    generations: int
    pretrain_steps: int
    pretrain_batch: int
    eval_every: int  # validation interval of every pre-training run (the plateau curves)
    valid_sequences: int
    extra_random: int  # extra random architectures pre-trained for the rank correlation
    seeds: int  # pre-training (and fine-tuning) seeds per architecture
    search_seeds: int  # seeds of the evolution-vs-random comparison
    finetune_epochs: int
    lr: float
    bf16: bool


BUDGETS = {
    "smoke": Budget("tiny", 30, 16, 6, 2, 40, 16, 20, 64, 1, 2, 2, 1, 2e-3, False),
    "cpu": Budget("tiny", 3000, 32, 12, 6, 2000, 32, 100, 256, 4, 3, 3, 2, 2e-3, False),
    "gpu": Budget("small", 6000, 128, 50, 20, 6000, 128, 500, 256, 4, 2, 2, 3, 5e-4, True),
}
PLATEAU = {"interleaved (bert)": "from scratch: bert (AF x 12)", "lv-bert-small (paper)": "from scratch: LV-BERT-small",
           "random 1": "from scratch: a random {A,F,C} arch"}  # fmt: skip


# ----------------------------------------------------------------------------- jobs (run in worker processes)
def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _atomic_json(path: Path, obj) -> None:
    from lvbert.utils import atomic_write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, obj)


def job_supernet(out: str, data: str, b: Budget, allowed: str, device: str) -> None:
    from lvbert.recipes.supernet import SupernetTrainConfig, train_supernet
    from lvbert.training.run import RUN_CONFIG

    run = Path(out)
    cfg = SupernetTrainConfig(data=data, out=out, size=b.size, allowed=allowed, steps=b.supernet_steps,
                              batch_size=b.supernet_batch, lr=b.lr, bf16=b.bf16, save_every=max(100, b.supernet_steps // 4),
                              eval_every=b.supernet_steps, eval_sequences=min(128, b.valid_sequences), seed=0,
                              device=device, progress=False)  # fmt: skip
    train_supernet(cfg, resume=(run / RUN_CONFIG).exists())


def job_search(out: str, data: str, b: Budget, supernet: str, strategy: str, max_params: int | None, seed: int,
               device: str) -> None:  # fmt: skip
    from lvbert.recipes.search import SearchRunConfig, search

    folder = Path(out)
    cfg = SearchRunConfig(supernet=supernet, data=data, out=out, strategy=strategy, population=b.population,
                          generations=b.generations, parents=max(2, b.population // 5), mutations=b.population // 2,
                          crossovers=b.population - b.population // 2, seed=seed,
                          max_params=str(max_params) if max_params else None, valid_sequences=b.valid_sequences,
                          valid_seed=1234, bf16=b.bf16, device=device, progress=False)  # fmt: skip
    res = search(cfg, resume=(folder / "search_config.json").exists())
    best_so_far, best = [], -1.0
    for rec in res.history:
        best = max(best, rec["fitness"])
        best_so_far.append(best)
    _atomic_json(folder / "result.json", {"arch": res.best["arch"], "fitness": res.best["fitness"],
                                          "evaluations": len(res.history), "best_so_far": best_so_far})


def job_model(out: str, data: str, b: Budget, arch: str, seed: int, ood: str, task_dir: str, device: str) -> None:
    """Pre-train ``arch`` with ``seed``, evaluate it on the out-of-domain text, fine-tune it on polarity."""
    from lvbert.recipes.eval import EvalConfig, evaluate
    from lvbert.recipes.finetune import finetune
    from lvbert.recipes.pretrain import PretrainConfig, pretrain
    from lvbert.training.run import RUN_CONFIG
    from lvbert.utils import read_json

    root = Path(out)
    t0 = time.time()
    run = root / "pretrain"
    if not (run / "summary.json").exists():
        cfg = PretrainConfig(data=data, out=str(run), arch=arch, size=b.size, objective="mlm", steps=b.pretrain_steps,
                             batch_size=b.pretrain_batch, lr=b.lr, bf16=b.bf16,
                             save_every=max(100, b.pretrain_steps // 4), eval_every=b.eval_every,
                             eval_sequences=b.valid_sequences, seed=seed, device=device, progress=False)  # fmt: skip
        pretrain(cfg, resume=(run / RUN_CONFIG).exists())
    # every model on one fixed-mask set (the searches' own; a run's curve uses masks drawn from its seed)
    i = evaluate(EvalConfig(model=str(run), data=data, sequences=b.valid_sequences, seed=1234, device=device))
    seq_len = int(read_json(Path(data) / "manifest.json")["seq_len"])
    o = evaluate(EvalConfig(model=str(run), corpus=[ood], seq_len=seq_len, sequences=512, seed=0, device=device))
    ft_dir = root / "finetune"
    if (ft_dir / "results.json").exists():
        ft = read_json(ft_dir / "results.json")
    else:
        ft = finetune(run, "polarity", task_dir, ft_dir, epochs=b.finetune_epochs, lr=1e-3, layer_decay=1.0,
                      max_seq_len=seq_len, seed=seed, seeds=1, bf16=b.bf16, device=device, progress=False)  # fmt: skip
    _atomic_json(root / "result.json", {
        "arch": arch, "seed": seed, "mlm_accuracy": i["mlm_accuracy"], "mlm_loss": i["mlm_loss"], "ood_mlm_accuracy": o["mlm_accuracy"], "ood_mlm_loss": o["mlm_loss"],
        "ood_unigram_accuracy": o["unigram_accuracy"], "ood_sequences": o["sequences"],
        "polarity_dev_accuracy": ft["summary"]["dev/accuracy"]["median"], "seconds": round(time.time() - t0, 1),
    })  # fmt: skip


# ----------------------------------------------------------------------------- the schedule
@dataclass
class Job:
    key: str
    fn: object
    args: tuple  # positional arguments; a callable is called when the job starts (it reads earlier results)
    deps: tuple[str, ...]
    marker: Path
    lock: object = None  # resolved args -> a name no two running jobs may share (one folder, one writer)


def run_jobs(jobs: list[Job], workers: int, threads: int) -> None:
    """Run every job whose marker file is missing, in list order as their dependencies finish."""
    done = {j.key for j in jobs if j.marker.exists()}
    pending = [j for j in jobs if j.key not in done]
    print(f"{len(jobs) - len(pending)} of {len(jobs)} jobs already done; {len(pending)} to run on {workers} worker(s)",
          flush=True)  # fmt: skip
    if not pending:
        return
    if workers == 1:  # in this process, in list order
        t0 = time.time()
        while pending:
            j = next((j for j in pending if all(d in done for d in j.deps)), None)
            if j is None:
                raise RuntimeError(f"jobs wait on dependencies that never finish: {[j.key for j in pending]}")
            pending.remove(j)
            started = time.time()
            j.fn(*(a() if callable(a) else a for a in j.args))
            done.add(j.key)
            print(f"[{(time.time() - t0) / 60:6.1f} min] done {j.key} ({time.time() - started:.0f} s); {len(pending)} left",
                  flush=True)  # fmt: skip
        return
    import multiprocessing as mp

    running: dict = {}
    busy: set = set()
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                             initargs=(threads,)) as pool:  # fmt: skip
        while pending or running:
            for j in list(pending):
                if len(running) >= workers:
                    break
                if all(d in done for d in j.deps):
                    args = tuple(a() if callable(a) else a for a in j.args)
                    lock = j.lock(args) if j.lock else None
                    if lock is not None and lock in busy:
                        continue  # the same folder is being written by another job: wait for it
                    busy.add(lock)
                    running[pool.submit(j.fn, *args)] = (j, time.time(), lock)
                    pending.remove(j)
            if not running:
                raise RuntimeError(f"jobs wait on dependencies that never finish: {[j.key for j in pending]}")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                j, started, lock = running.pop(f)
                busy.discard(lock)
                f.result()  # a failed job stops the experiment; what finished stays on disk
                done.add(j.key)
                print(f"[{(time.time() - t0) / 60:6.1f} min] done {j.key} ({time.time() - started:.0f} s); "
                      f"{len(pending) + len(running)} left", flush=True)  # fmt: skip


# ----------------------------------------------------------------------------- statistics
def mean_interval(xs: list[float]) -> dict:
    """Mean, sample standard deviation and the 95 % t interval of the mean."""
    from scipy.stats import t

    n = len(xs)
    m = statistics.fmean(xs)
    sd = statistics.stdev(xs) if n > 1 else 0.0
    h = t.ppf(0.975, n - 1) * sd / math.sqrt(n) if n > 1 else float("nan")
    return {"n": n, "mean": m, "sd": sd, "ci95": [m - h, m + h], "min": min(xs), "max": max(xs),
            "median": statistics.median(xs), "values": list(xs)}  # fmt: skip


def bootstrap_tau(x: list[float], y: list[float], n: int = 2000, seed: int = 0) -> list[float]:
    """95 % percentile interval of Kendall tau, resampling architectures with replacement."""
    from lvbert.tasks.metrics import kendall_tau

    rng = random.Random(seed)
    taus = []
    idx = range(len(x))
    for _ in range(n):
        pick = [rng.choice(idx) for _ in idx]
        if len({x[i] for i in pick}) < 2 or len({y[i] for i in pick}) < 2:
            continue
        tau = kendall_tau([x[i] for i in pick], [y[i] for i in pick])
        if not math.isnan(tau):
            taus.append(tau)
    taus.sort()
    return [taus[int(0.025 * len(taus))], taus[int(0.975 * len(taus)) - 1]]


def slug(arch: str) -> str:
    """A folder name for an arch: the letters themselves, or a stable digest when they are long."""
    import hashlib

    return arch if len(arch) <= 40 else f"{arch[:32]}-{hashlib.sha256(arch.encode()).hexdigest()[:10]}"


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", choices=sorted(BUDGETS), default="smoke")
    ap.add_argument("--data", required=True, help="prepared data folder (e.g. a quickstart run's data/)")
    ap.add_argument("--out", default="runs/experiments")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random architectures")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=1, help="jobs at a time (2 on a 2-core machine, one thread each)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per job (default: cores / workers)")
    ap.add_argument("--ood", default=None, help="out-of-domain text (default: the demo's ood/newsgroups.txt)")
    ap.add_argument("--plot", default=None, help="write the plateau plot here (e.g. docs/img/plateau.png)")
    ap.add_argument("--experiments", default=None, help="rewrite the generated part of this file (EXPERIMENTS.md)")
    ap.add_argument("--render-only", action="store_true", help="write the tables from the results that exist")
    args = ap.parse_args(argv)

    from lvbert.arch import count_params, get_size, parse_arch
    from lvbert.data.demo import fetch_demo
    from lvbert.data.packed import load_manifest
    from lvbert.space import SearchSpace

    b = BUDGETS[args.budget]
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = str(Path(args.data).resolve())
    manifest = load_manifest(data)
    seq_len, vocab = int(manifest["seq_len"]), int(manifest["tokenizer"]["vocab_size"])
    size = get_size(b.size, vocab_size=vocab)
    bert = parse_arch("bert", size.num_slots)
    budget_params = count_params(bert, size)
    demo = fetch_demo(progress=False)  # polarity and the out-of-domain text (already there: nothing is fetched)
    ood = str(Path(args.ood).resolve()) if args.ood else str(demo / "ood" / "newsgroups.txt")
    task_dir = str(demo / "tasks" / "polarity")
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    settings_file = out / "settings.json"
    settings = {"budget": args.budget, "settings": asdict(b), "seed": args.seed, "data": data, "ood": ood}
    if settings_file.exists() and json.loads(settings_file.read_text())["settings"] != settings["settings"]:
        raise SystemExit(f"error: {out} holds a run of other settings; use another --out")
    _atomic_json(settings_file, settings)

    # the architectures: fixed ones, random ones drawn from --seed, searched ones read when their search ends
    rng = random.Random(args.seed)
    budget_space = SearchSpace(num_slots=size.num_slots, allowed="CAF", size=size, seq_len=seq_len, max_params=budget_params)
    searches = {"AF-evolution": ("AF", "evolution", None), "CAF-evolution": ("CAF", "evolution", None),
                "CAF-random": ("CAF", "random", None), "CAF-evolution-budget": ("CAF", "evolution", budget_params)}  # fmt: skip
    search_runs = [(tag, s) for tag in searches for s in range(b.search_seeds if tag in ("CAF-evolution", "CAF-random") else 1)]
    archs: dict[str, object] = {
        "interleaved (bert)": bert,
        "sandwich": parse_arch("sandwich", size.num_slots),
        "random (budget)": budget_space.sample(rng),
        "searched {A,F}": "AF-evolution",
        "searched {A,F,C}": "CAF-evolution",
        "searched {A,F,C} (budget)": "CAF-evolution-budget",
        "random-search best": "CAF-random",
        "lv-bert-small (paper)": parse_arch("lv-bert-small", size.num_slots) if size.num_slots == 24 else bert,
    }
    for k in range(b.extra_random):
        archs[f"random {k + 1}"] = "".join(rng.choice("CAF") for _ in range(size.num_slots))

    def search_dir(tag: str, s: int) -> Path:
        return out / "search" / f"{tag}-s{s}"

    def arch_of(name: str) -> str:
        a = archs[name]
        return a if a not in searches else json.loads((search_dir(a, 0) / "result.json").read_text())["arch"]

    def model_dir(arch: str, seed: int) -> Path:
        return out / "models" / f"{slug(arch)}-s{seed}"

    jobs = [Job(f"supernet {a}", job_supernet, (str(out / f"supernet-{a}"), data, b, a, args.device), (),
                out / f"supernet-{a}" / "summary.json") for a in ("CAF", "AF")]  # fmt: skip
    for tag, s in search_runs:
        allowed, strategy, max_params = searches[tag]
        jobs.append(Job(f"search {tag} seed {s}", job_search, (str(search_dir(tag, s)), data, b, str(out / f"supernet-{allowed}"),
                        strategy, max_params, s, args.device), (f"supernet {allowed}",), search_dir(tag, s) / "result.json"))  # fmt: skip
    for seed in range(b.seeds):
        for name, a in archs.items():
            searched = a in searches  # its arch is read when its search has ended
            arch = (lambda name=name: arch_of(name)) if searched else a
            jobs.append(Job(f"model {name} seed {seed}", _job_named_model,
                            (str(out), name, arch, seed, data, b, ood, task_dir, args.device),
                            (f"search {a} seed 0",) if searched else (), out / "names" / f"{slug(name)}-s{seed}.done",
                            lock=lambda a: f"{a[2]} seed {a[3]}"))  # fmt: skip
    if not args.render_only:
        t0 = time.time()
        run_jobs(jobs, args.workers, threads)
        print(f"jobs took {(time.time() - t0) / 60:.1f} min", flush=True)
    results = collect(out, b, archs, searches, search_runs, arch_of, model_dir, data, budget_params, size, args)
    _atomic_json(out / "results.json", results)
    text = render(results)
    print(text)
    if args.plot:
        plot_plateau(results, args.plot)
    if args.experiments:
        path = Path(args.experiments)
        doc = path.read_text(encoding="utf-8")
        if BEGIN not in doc or END not in doc:
            raise SystemExit(f"error: {path} has no {BEGIN} ... {END} markers to write between")
        head, rest = doc.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        path.write_text(head + BEGIN + "\n" + text + END + tail, encoding="utf-8")
        print(f"wrote the tables into {path}")
    return 0


def _job_named_model(out: str, name: str, arch: str, seed: int, data: str, b: Budget, ood: str, task_dir: str,
                     device: str) -> None:  # fmt: skip
    """One (architecture, seed): shared by names that resolve to the same arch; the name's marker records it."""
    folder = Path(out) / "models" / f"{slug(arch)}-s{seed}"
    if not (folder / "result.json").exists():
        job_model(str(folder), data, b, arch, seed, ood, task_dir, device)
    _atomic_json(Path(out) / "names" / f"{slug(name)}-s{seed}.done", {"name": name, "arch": arch})


# ----------------------------------------------------------------------------- results and tables
def collect(out: Path, b: Budget, archs: dict, searches: dict, search_runs: list, arch_of, model_dir, data: str,
            budget_params: int, size, args) -> dict:  # fmt: skip
    from lvbert.arch import count_params
    from lvbert.data.masking import MaskingConfig, fixed_mask_validation
    from lvbert.objectives import unigram_accuracy
    from lvbert.tasks.metrics import kendall_tau
    from lvbert.search.fitness import SupernetFitness
    from lvbert.supernet import LvBertSupernet
    from lvbert.training.distributed import pick_device

    res: dict = {"budget": args.budget, "settings": asdict(b), "param_budget": budget_params, "data": data}
    s_res = {}
    for tag, s in search_runs:
        f = out / "search" / f"{tag}-s{s}" / "result.json"
        if f.exists():
            s_res.setdefault(tag, []).append({"seed": s, **json.loads(f.read_text())})
    res["searches"] = s_res
    dev = pick_device(args.device)
    valid = fixed_mask_validation(data, b.valid_sequences, seed=1234, config=MaskingConfig())
    res["unigram_accuracy"] = unigram_accuracy(valid)
    fit = {}
    for allowed in ("CAF", "AF"):
        run = out / f"supernet-{allowed}"
        if (run / "summary.json").exists():
            fit[allowed] = SupernetFitness(LvBertSupernet.from_pretrained(run).to(dev).eval(), valid, batch_size=64)
    models = []
    for name in archs:
        try:
            arch = arch_of(name)
        except FileNotFoundError:
            continue
        runs = [json.loads((model_dir(arch, k) / "result.json").read_text()) for k in range(b.seeds)
                if (model_dir(arch, k) / "result.json").exists()]  # fmt: skip
        if not runs:
            continue
        m = {"name": name, "arch": arch, "params": count_params(arch, size), "seeds": [r["seed"] for r in runs],
             "supernet_fitness": fit["CAF"]([arch])[0]["fitness"] if "CAF" in fit else None,
             "supernet_fitness_AF": fit["AF"]([arch])[0]["fitness"] if "AF" in fit and set(arch) <= set("AF") else None}  # fmt: skip
        for key in ("mlm_accuracy", "mlm_loss", "ood_mlm_accuracy", "polarity_dev_accuracy"):
            m[key] = mean_interval([r[key] for r in runs])
        m["ood_unigram_accuracy"] = runs[0]["ood_unigram_accuracy"]
        m["curves"] = [_curve(model_dir(arch, k) / "pretrain") for k in m["seeds"]]
        m["seconds"] = statistics.fmean(r["seconds"] for r in runs)
        models.append(m)
    res["models"] = models
    unique = list({m["arch"]: m for m in models if m["supernet_fitness"] is not None}.values())
    for key, group in (("kendall_tau", unique), ("kendall_tau_with_C", [m for m in unique if "C" in m["arch"]])):
        if len(group) >= 3:
            xs = [m["supernet_fitness"] for m in group]
            ys = [m["mlm_accuracy"]["mean"] for m in group]
            res[key] = {"tau": kendall_tau(xs, ys), "ci95": bootstrap_tau(xs, ys), "architectures": len(xs)}
    # a run's curve is validated on masks drawn from its own seed: its plateau is that set's unigram accuracy
    res["unigram_accuracy_per_seed"] = [unigram_accuracy(fixed_mask_validation(data, b.valid_sequences, seed=k,
                                                                               config=MaskingConfig()))
                                        for k in range(b.seeds)]  # fmt: skip
    leave = {}
    for m in models:
        if m["name"] in PLATEAU:
            leave[m["name"]] = _leave_step(m["curves"], [res["unigram_accuracy_per_seed"][k] for k in m["seeds"]])
    res["plateau_leave_step"] = leave
    return res


def _curve(run: Path) -> dict:
    steps, vals = [], []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "eval/mlm_accuracy" in rec:
            steps.append(int(rec["step"]))
            vals.append(float(rec["eval/mlm_accuracy"]))
    return {"steps": steps, "mlm_accuracy": vals}


def _median_curve(curves: list[dict]) -> tuple[list[int], list[float], list[float], list[float]]:
    steps = sorted(set.intersection(*(set(c["steps"]) for c in curves)))
    vals = [[dict(zip(c["steps"], c["mlm_accuracy"]))[t] for c in curves] for t in steps]
    return steps, [statistics.median(v) for v in vals], [min(v) for v in vals], [max(v) for v in vals]


def _leave_step(curves: list[dict], unigrams: list[float]) -> dict:
    """First validation step at which a run is 0.01 above the unigram accuracy of its own validation set;
    the median over the seeds of those steps (a run that never leaves counts as after the last step)."""
    per_seed = [next((t for t, v in zip(c["steps"], c["mlm_accuracy"]) if v > u + 0.01), None)
                for c, u in zip(curves, unigrams)]  # fmt: skip
    last = max(c["steps"][-1] for c in curves) + 1
    med = statistics.median(t if t is not None else last for t in per_seed)
    return {"median": None if med >= last else med, "per_seed": per_seed, "unigram_per_seed": unigrams}


def plot_plateau(r: dict, path: str) -> None:
    from lvbert.plots import plot_curves

    series, bands = {}, {}
    u = statistics.median(r["unigram_accuracy_per_seed"])
    for m in r["models"]:
        if m["name"] in PLATEAU:
            steps, med, lo, hi = _median_curve(m["curves"])
            label = f"{PLATEAU[m['name']]} ({len(m['curves'])} seeds)"
            series[label] = (steps, med, "-")
            bands[label] = (steps, lo, hi)
    b = r["settings"]
    plot_curves(series, path, xlabel=f"optimizer step (batch {b['pretrain_batch']} x 64 tokens, lr {b['lr']:g})",
                ylabel="MLM accuracy, fixed-mask validation set",
                title=f"size {b['size']}, 24 slots, from scratch: median of seeds, band min-max",
                hlines={f"unigram baseline (median of the seeds' sets) {u:.3f}": u}, bands=bands)  # fmt: skip
    print(f"wrote {path}")


def _ci(s: dict, scale: float = 1.0, digits: int = 4) -> str:
    if s["n"] < 2:
        return f"{s['mean'] * scale:.{digits}f} (1 seed)"
    lo, hi = s["ci95"]
    return f"{s['mean'] * scale:.{digits}f} ± {s['sd'] * scale:.{digits}f} [{lo * scale:.{digits}f}, {hi * scale:.{digits}f}]"


def _diff(a: dict, b_: dict) -> str:
    """Welch's t test of two sets of seeds: the difference of means and its p-value."""
    from scipy.stats import ttest_ind

    if a["n"] < 2 or b_["n"] < 2:
        return "n/a"
    return f"{a['mean'] - b_['mean']:+.4f} (p {ttest_ind(a['values'], b_['values'], equal_var=False).pvalue:.3f})"


def render(r: dict) -> str:
    b = r["settings"]
    by_name = {m["name"]: m for m in r["models"]}
    lines = [
        f"## Budget `{r['budget']}`: {b['seeds']} seeds per model", "",
        f"Settings: size {b['size']}; supernets {b['supernet_steps']:,} steps x {b['supernet_batch']}; searches "
        f"{b['population']} x {b['generations']} = {b['population'] * b['generations']} evaluations; pre-training "
        f"{b['pretrain_steps']:,} steps x {b['pretrain_batch']} sequences, lr {b['lr']:g}, validated every "
        f"{b['eval_every']} steps on {b['valid_sequences']} fixed-mask sequences; parameter budget "
        f"{r['param_budget']:,} (the interleaved baseline's); polarity fine-tuning {b['finetune_epochs']} epochs, "
        f"once per pre-training seed. Numbers are mean ± standard deviation [95 % t interval of the mean] over "
        f"the seeds. Unigram baseline (in domain): {r['unigram_accuracy']:.4f}.", "",
    ]
    leave = r.get("plateau_leave_step", {})
    if leave:
        lines += ["### Where the models leave the unigram plateau", "",
                  "First validation step with MLM accuracy 0.01 above the unigram accuracy of the run's own "
                  "validation set (each run's masks come from its seed; those baselines are "
                  + ", ".join(f"{x:.4f}" for x in r["unigram_accuracy_per_seed"]) + "). Plot: "
                  "[docs/img/plateau.png](docs/img/plateau.png).", "",
                  "| model | median of the seeds | per seed |", "|---|---:|---|"]
        for name, v in leave.items():
            lines.append(f"| {PLATEAU[name]} | {format(v['median'], 'g') if v['median'] is not None else 'not left'} | "
                         + ", ".join(str(x) if x is not None else "not left" for x in v["per_seed"]) + " |")
        lines.append("")
    lines += ["### Pre-trained from scratch", "",
              "| model | arch | params | supernet fitness | MLM accuracy | out-of-domain MLM accuracy | polarity dev, median [min, max] |",
              "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for m in r["models"]:
        p = m["polarity_dev_accuracy"]
        fit = f"{m['supernet_fitness']:.4f}" if m["supernet_fitness"] is not None else "n/a"
        lines.append(f"| {m['name']} | `{m['arch']}` | {m['params']:,} | {fit} | {_ci(m['mlm_accuracy'])} | "
                     f"{_ci(m['ood_mlm_accuracy'])} | {100 * p['median']:.2f} [{100 * p['min']:.2f}, {100 * p['max']:.2f}] |")
    if r["models"]:
        lines += ["", f"Out of domain: the demo's 20 Newsgroups sample (`ood/newsgroups.txt`, Usenet posts of 1993, in "
                  f"no demo corpus), 512 sequences, unigram baseline {r['models'][0]['ood_unigram_accuracy']:.4f}.", ""]  # fmt: skip

    def group(names: list[str]) -> list[str]:
        return [n for n in names if n in by_name]

    def row(label: str, names: list[str]) -> str:
        ms = list({by_name[n]["arch"]: by_name[n] for n in names}.values())  # names that share an arch count once
        vals = [v for m in ms for v in m["mlm_accuracy"]["values"]]
        return f"| {label} | {len(ms)} archs, {len(vals)} runs | {_ci(mean_interval(vals)) if vals else 'n/a'} |"

    af = [m["name"] for m in r["models"] if set(m["arch"]) <= set("AF")]
    afc = [m["name"] for m in r["models"] if "C" in m["arch"]]
    lines += ["### (a) {A,F} vs {A,F,C}", "", "| models | runs | MLM accuracy |", "|---|---|---:|",
              row("searched {A,F}", group(["searched {A,F}"])), row("searched {A,F,C}", group(["searched {A,F,C}"])),
              row("every A/F-only arch", af), row("every arch with C", afc), ""]  # fmt: skip
    if "searched {A,F}" in by_name and "searched {A,F,C}" in by_name:
        lines += [f"Searched {{A,F,C}} minus searched {{A,F}}: {_diff(by_name['searched {A,F,C}']['mlm_accuracy'], by_name['searched {A,F}']['mlm_accuracy'])} "
                  "(Welch's t test over the seeds).", ""]  # fmt: skip
    order = group(["interleaved (bert)", "sandwich", "random (budget)", "searched {A,F,C} (budget)"])
    if order:
        lines += ["### (b) Orders at the matched parameter budget", "",
                  "| model | params | MLM accuracy | minus interleaved (p) | out-of-domain | polarity median |",
                  "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        base = by_name[order[0]]["mlm_accuracy"] if order[0] == "interleaved (bert)" else None
        for n in order:
            m = by_name[n]
            d = _diff(m["mlm_accuracy"], base) if base and n != order[0] else ""
            lines.append(f"| {n} | {m['params']:,} | {_ci(m['mlm_accuracy'])} | {d} | {_ci(m['ood_mlm_accuracy'])} | "
                         f"{100 * m['polarity_dev_accuracy']['median']:.2f} |")
        lines.append("")
    ev, rnd = r["searches"].get("CAF-evolution", []), r["searches"].get("CAF-random", [])
    if ev and rnd:
        fe, fr = mean_interval([s["fitness"] for s in ev]), mean_interval([s["fitness"] for s in rnd])
        lines += ["### (c) Evolution vs random search, equal evaluations", "",
                  "| search | seeds | best supernet fitness per seed | mean ± sd [95 % interval] |", "|---|---:|---|---:|",
                  f"| evolution | {len(ev)} | " + ", ".join(f"{s['fitness']:.4f}" for s in ev) + f" | {_ci(fe)} |",
                  f"| random | {len(rnd)} | " + ", ".join(f"{s['fitness']:.4f}" for s in rnd) + f" | {_ci(fr)} |", ""]  # fmt: skip
        if "searched {A,F,C}" in by_name and "random-search best" in by_name:
            lines += ["Stand-alone, the seed-0 winners: evolution "
                      f"{_ci(by_name['searched {A,F,C}']['mlm_accuracy'])}, random search "
                      f"{_ci(by_name['random-search best']['mlm_accuracy'])}.", ""]
    lines += ["### Searches (seed 0)", "", "| search | best arch | fitness | evaluations |", "|---|---|---:|---:|"]
    for tag, runs in r["searches"].items():
        s0 = runs[0]
        lines.append(f"| {tag} | `{s0['arch']}` | {s0['fitness']:.4f} | {s0['evaluations']} |")
    lines.append("")
    for key, label in (("kendall_tau", "every distinct architecture"), ("kendall_tau_with_C", "the architectures with C")):
        kt = r.get(key)
        if kt:
            lines.append(f"(d) Kendall tau, supernet fitness vs stand-alone MLM accuracy (mean of the seeds), {label} "
                         f"({kt['architectures']}): **{kt['tau']:.3f}**, 95 % bootstrap interval "
                         f"[{kt['ci95'][0]:.3f}, {kt['ci95'][1]:.3f}].")  # fmt: skip
    return "\n".join(lines) + "\n\n"


if __name__ == "__main__":
    sys.exit(main())
