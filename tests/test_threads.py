"""The thread governor: fewer torch threads while other processes keep the cores busy."""

import os
import sys

import pytest

torch = pytest.importorskip("torch")

from lvbert import threads  # noqa: E402


def write_stat(path, busy_per_cpu: list[int], idle: int = 0) -> None:
    """A /proc/stat with one line per CPU: ``busy`` ticks of user time, ``idle`` ticks idle."""
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    lines += [f"cpu{i} {b} 0 0 {idle} 0 0 0 0 0 0" for i, b in enumerate(busy_per_cpu)]
    path.write_text("\n".join(lines + ["intr 1", "ctxt 2"]) + "\n")


def test_decide_keeps_the_count_until_the_free_share_is_clearly_another():
    g = threads.ThreadGovernor(max_threads=2, stat_path="/nonexistent")
    assert g.decide(2, 0.0) == 2  # quiet
    assert g.decide(2, 0.6) == 2  # 1.4 cores free: not clearly one
    assert g.decide(2, 1.0) == 1  # a busy loop or another job beside us
    assert g.decide(1, 1.9) == 1  # never below one
    assert g.decide(1, 0.4) == 1  # 1.6 free: within the hysteresis
    assert g.decide(1, 0.2) == 2  # the other job ended
    assert threads.ThreadGovernor(max_threads=4, stat_path="/nonexistent").decide(4, 2.0) == 2


def test_tick_measures_other_load_from_proc_stat_and_sets_the_threads(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    hz = os.sysconf("SC_CLK_TCK")
    clock, own = [100.0], [5.0]
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(threads, "_own_seconds", lambda: own[0])
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        g = threads.ThreadGovernor(interval=1.0, max_threads=2, stat_path=str(stat))
        write_stat(stat, [1000, 1000])
        assert g.tick() is None and g.other_load is None  # the first sample
        clock[0] += 0.5
        assert g.tick() is None  # before the interval: not even measured
        clock[0] += 1.5  # 2 s after the first sample: both CPUs busy for 2 s each, 2 s of it ours
        write_stat(stat, [1000 + 2 * hz, 1000 + 2 * hz])
        own[0] += 2.0
        assert g.tick() == 1 and torch.get_num_threads() == 1
        assert g.other_load == pytest.approx(1.0)
        clock[0] += 2.0  # then quiet: only our own thread ran
        write_stat(stat, [1000 + 4 * hz, 1000 + 2 * hz])
        own[0] += 2.0
        assert g.tick() == 2 and torch.get_num_threads() == 2 and g.other_load == pytest.approx(0.0)
        assert g.changes == 2
    finally:
        torch.set_num_threads(before)


def test_cpus_outside_the_affinity_are_not_counted(tmp_path):
    stat = tmp_path / "stat"
    write_stat(stat, [100, 200, 300])
    hz = os.sysconf("SC_CLK_TCK")
    assert threads._busy_seconds({0, 2}, str(stat)) == pytest.approx(400 / hz)
    assert threads._busy_seconds(None, str(stat)) == pytest.approx(600 / hz)
    assert threads._busy_seconds(None, str(tmp_path / "missing")) is None


def test_the_governor_is_on_only_when_nothing_chose_the_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LVBERT_THREAD_DEFAULTS", raising=False)
    assert threads.wanted_by_default(None)
    assert not threads.wanted_by_default(1)  # --threads 1
    monkeypatch.setenv("LVBERT_THREAD_DEFAULTS", "0")
    assert not threads.wanted_by_default(None)
    monkeypatch.delenv("LVBERT_THREAD_DEFAULTS")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert not threads.wanted_by_default(None)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")
def test_the_lvbert_command_enables_it_and_the_training_loop_ticks_it(monkeypatch):
    from lvbert.cli import main

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LVBERT_THREAD_DEFAULTS", raising=False)
    try:
        assert main(["arch", "info", "bert", "--size", "tiny"]) == 0
        assert threads._governor is not None and threads._governor._last is not None
        threads.disable()
        assert main(["--threads", "1", "arch", "info", "bert", "--size", "tiny"]) == 0
        assert threads._governor is None
    finally:
        threads.disable()


def test_the_training_loop_ticks_the_governor_once_per_step(tmp_path, monkeypatch):
    from lvbert.training.loop import LoopConfig, train_loop

    class Counting:
        ticks = 0

        def tick(self):
            self.ticks += 1

    counting = Counting()
    monkeypatch.setattr(threads, "_governor", counting)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(8, 4)

    def objective(m, batch):
        return {"loss": m(batch["x"]).pow(2).mean()}

    train_loop(model, objective, lambda step, micro: {"x": x, "input_ids": torch.zeros(8, 4)}, opt, None,
               LoopConfig(out_dir=str(tmp_path), max_steps=3, progress=False, tensorboard=False, save_final=False))
    assert counting.ticks == 3


def test_the_fitness_runs_at_the_governors_full_count(monkeypatch):
    from lvbert.search.fitness import SupernetFitness
    from lvbert.supernet import LvBertSupernet

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        gov = threads.ThreadGovernor(max_threads=2, stat_path="/nonexistent")
        monkeypatch.setattr(threads, "_governor", gov)
        torch.set_num_threads(1)  # as a training stage's governor left it
        torch.manual_seed(0)
        net = LvBertSupernet.from_size("tiny", num_slots=2)
        ids = torch.randint(5, 100, (2, 8))
        labels = torch.where(torch.arange(8) % 3 == 0, ids, torch.full_like(ids, -100))
        SupernetFitness(net, {"input_ids": ids, "labels": labels}).evaluate("AF")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
