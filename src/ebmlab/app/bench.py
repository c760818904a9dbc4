"""Benchmark discovery and the shared machine-limit measurement.

Benchmarks ship inside the package, in ``ebmlab/app/benchmarks/bench_<name>.py``, so that
``ebmlab bench`` works from an installed wheel, and only those run unless a folder is named
(``ebmlab bench --folder DIR``): a checkout's files are never imported by accident. Each
defines ``run(quick: bool) -> list[dict]`` and prints one JSON line per result when run as a
script (``python -m ebmlab.app.benchmarks.bench_rbm``). Speed is reported beside the machine's
own float32 matmul throughput, measured in the same run by ``matmul_peak``.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from ..training import PRECISIONS, matmul_precision

SHIPPED = Path(__file__).resolve().parent / "benchmarks"


def available(folder: str | Path | None = None) -> dict[str, Path]:
    """Benchmark name -> file, for every ``bench_<name>.py`` that ships with ebmlab, or in
    ``folder`` when one is named (nothing is ever picked up from the current directory)."""
    where = Path(folder) if folder is not None else SHIPPED
    if not where.is_dir():
        raise ValueError(f"--folder: {where} is not a directory")
    return {path.stem.removeprefix("bench_"): path for path in sorted(where.glob("bench_*.py"))}


def _module(path: Path) -> ModuleType:
    if path.parent == SHIPPED:
        return importlib.import_module(f"ebmlab.app.benchmarks.{path.stem}")
    spec = importlib.util.spec_from_file_location(f"ebmlab_bench_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_benchmark(
    name: str, quick: bool = False, folder: str | Path | None = None
) -> list[dict[str, Any]]:
    """Run benchmark ``name`` (shipped, or from ``folder``) and return its result records."""
    found = available(folder)
    if name not in found:
        valid = ", ".join(sorted(found)) or "(none installed)"
        raise ValueError(f"unknown benchmark {name!r}; valid benchmarks: {valid}")
    return list(_module(found[name]).run(quick=quick))


Clock = Callable[[], float]


def clock_for(device: str = "cpu", clock: str = "auto") -> tuple[str, Clock]:
    """(name, clock function) of a measurement: ``"wall"`` (``time.perf_counter``) or ``"cpu"``
    (``time.process_time``, the CPU time of the process, all its threads: a library that starts
    threads of its own is charged for them). ``"auto"`` takes the CPU clock for one-thread CPU
    code, where it equals the wall time of an idle machine and leaves out the time other
    processes take the core away (on a shared machine most of the spread of wall-clock
    timings), and the wall clock otherwise (several threads, a GPU)."""
    if clock not in ("auto", "wall", "cpu"):
        raise ValueError(f"clock: expected 'auto', 'wall' or 'cpu', got {clock!r}")
    if clock == "auto":
        clock = "cpu" if device == "cpu" and torch.get_num_threads() == 1 else "wall"
    return clock, time.process_time if clock == "cpu" else time.perf_counter


def timeit(
    fn: Any, repeat: int = 3, min_seconds: float = 0.2, clock: Clock = time.perf_counter
) -> float:
    """Best-of-``repeat`` seconds per call of ``fn`` (each timing loops for >= min_seconds of
    ``clock``)."""
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        calls, start = 0, clock()
        while True:
            fn()
            calls += 1
            elapsed = clock() - start
            if elapsed >= min_seconds:
                break
        best = min(best, elapsed / calls)
    return best


def matmul_peak(
    m: int = 1024,
    k: int = 1024,
    n: int = 1024,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
) -> float:
    """Measured matmul throughput in FLOP/s for an (m x k) @ (k x n) product."""
    a = torch.randn(m, k, dtype=dtype, device=device)
    b = torch.randn(k, n, dtype=dtype, device=device)

    def step() -> None:
        torch.mm(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return 2.0 * m * k * n / timeit(step)


@dataclass
class Measured:
    """Seconds of the measured code and, from the same rounds, the matmul references."""

    seconds: float
    peak_flops: float
    shape_flops: float
    clock: str = "wall"

    def ratios(self, flops: float) -> dict[str, float]:
        """The measured code's FLOP/s as fractions of the matmul peak and of the same-shape
        matmul, with both references in GFLOP/s."""
        rate = flops / self.seconds
        return {
            "gflops": round(rate / 1e9, 2),
            "fraction_of_matmul_peak": round(rate / self.peak_flops, 4),
            "fraction_of_same_shape_matmul": round(rate / self.shape_flops, 4),
            "matmul_peak_gflops": round(self.peak_flops / 1e9, 1),
            "same_shape_matmul_gflops": round(self.shape_flops / 1e9, 1),
            "clock": self.clock,
        }


def interleaved(
    fn: Callable[[], Any],
    shape: tuple[int, int, int],
    rounds: int = 3,
    device: str = "cpu",
    peak_size: int = 1024,
    warmup: bool = True,
    clock: str = "auto",
    dtype: torch.dtype = torch.float32,
) -> Measured:
    """Time ``fn`` against two references in the same rounds: a square matmul of
    ``peak_size`` (the machine's peak) and an (m x k) @ (k x n) matmul of ``shape`` (what the
    measured code's own products can reach), both in ``dtype`` (the measured code's matmul
    precision: float32, or bfloat16 for code that runs its products in bfloat16). Each round
    times all three one after the other and the best of the rounds is kept for each, so a load
    that comes and goes slows all three alike instead of moving the ratios. ``warmup``: one
    untimed call of ``fn`` first (leave it out for code that runs for many seconds). ``clock``:
    see ``clock_for`` (one thread on a CPU: the process's CPU time)."""
    clock_name, now = clock_for(device, clock)
    m, k, n = shape
    square = [torch.randn(peak_size, peak_size, device=device, dtype=dtype) for _ in range(2)]
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def peak() -> None:
        torch.mm(*square)
        sync()

    def same_shape() -> None:
        torch.mm(a, b)
        sync()

    if warmup:
        fn()  # allocations, first-call overheads
    best = {"fn": float("inf"), "peak": float("inf"), "shape": float("inf")}
    for _ in range(max(rounds, 1)):
        start = now()
        fn()
        sync()
        best["fn"] = min(best["fn"], now() - start)
        best["peak"] = min(best["peak"], timeit(peak, repeat=1, min_seconds=0.1, clock=now))
        best["shape"] = min(best["shape"], timeit(same_shape, repeat=1, min_seconds=0.1, clock=now))
    return Measured(
        best["fn"], 2.0 * peak_size**3 / best["peak"], 2.0 * m * k * n / best["shape"], clock_name
    )


# ----- the GPU check (``ebmlab bench --gpu``, ``make gpu-check``) --------------------------------
#: Sizes of the GPU check: the figures of the CPU benchmarks, and tiny ones for ``--dry-run``.
GPU_SIZES: dict[str, dict[str, int]] = {
    "full": {
        "visible": 784,
        "hidden": 500,
        "batch": 100,
        "examples": 60_000,
        "betas": 14_500,
        "runs": 100,
        "chains": 10_000,
        "steps": 1_000,
        "graph_steps": 100,
        "training_examples": 12_800,
        "rounds": 3,
        "peak": 4096,
    },
    "dry": {
        "visible": 12,
        "hidden": 6,
        "batch": 4,
        "examples": 16,
        "betas": 20,
        "runs": 5,
        "chains": 32,
        "steps": 6,
        "graph_steps": 3,
        "training_examples": 16,
        "rounds": 1,
        "peak": 128,
    },
}

#: Matmul precisions of the RBM training case: plain float32, TF32 tensor cores for float32
#: matmuls, and the whole update in bfloat16 (a speed figure: learning at bfloat16 precision is
#: not checked here). AIS always keeps its log weights in float64.
TRAIN_PRECISIONS = ("float32", "tf32", "bfloat16")


def graphed(
    step: Callable[[], Any],
    repeat: int,
    device: str,
    generators: tuple[torch.Generator, ...] = (),
) -> Callable[[], None]:
    """A callable that runs ``step()`` ``repeat`` times. On CUDA it replays one CUDA graph of
    ``repeat`` captured calls (after three warm-up calls on a side stream, which allocate every
    buffer the step reuses), so a fixed-shape inner loop costs one launch instead of one per
    kernel; ``step`` must then be graph-safe (static buffers, no host synchronization) and the
    custom ``generators`` it draws from are registered with the graph. Elsewhere (the CPU, the
    ``--dry-run`` of the GPU check) it is the plain loop."""
    if not device.startswith("cuda"):

        def loop() -> None:
            for _ in range(repeat):
                step()

        return loop
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    for generator in generators:
        graph.register_generator_state(generator)
    with torch.cuda.graph(graph):
        for _ in range(repeat):
            step()
    return graph.replay


def _gpu_rbm_epochs(
    device: str, size: dict[str, int], data: torch.Tensor, precision: str
) -> list[dict[str, Any]]:
    """PCD-1 epochs of the objective's fused SGD update at one matmul precision, eager and
    CUDA-graphed (one graph per update, the minibatch copied into its static input): a float32
    model throughout, bfloat16 being its products' dtype (``matmul_dtype``, what
    ``TrainConfig(precision="bfloat16")`` runs), timed against bfloat16 references."""
    from ..models.rbm import BernoulliRBM
    from ..objectives.contrastive import ContrastiveDivergence

    d, h, batch, n = size["visible"], size["hidden"], size["batch"], size["examples"]
    updates = -(-n // batch)
    low = torch.bfloat16 if precision == "bfloat16" else None
    x = data.to(device)
    rbm = BernoulliRBM(d, h, seed=0).to(device)
    objective = ContrastiveDivergence(k=1, method="pcd", n_chains=batch, monitor=False)
    objective.setup(rbm, x)
    generator = torch.Generator(device=device).manual_seed(0)
    batches = list(x.split(batch))
    full = [v for v in batches if v.shape[0] == batch]
    static = full[0].clone()
    records = []
    with matmul_precision(precision):
        replay = graphed(
            lambda: objective.sgd_update(rbm, static, generator, 0.01, matmul_dtype=low),
            1,
            device,
            (generator,),
        )

        def eager_epoch() -> None:
            for v in batches:
                objective.sgd_update(rbm, v, generator, 0.01, matmul_dtype=low)

        def graphed_epoch() -> None:
            for v in full:
                static.copy_(v)
                replay()

        for mode, epoch, count in (
            ("eager", eager_epoch, updates),
            ("cuda-graph", graphed_epoch, len(full)),
        ):
            timing = interleaved(
                epoch,
                (batch, d, h),
                size["rounds"],
                device,
                peak_size=size["peak"],
                dtype=low or torch.float32,
            )
            records.append(
                {
                    "benchmark": "gpu-rbm-pcd1",
                    "case": f"{d}x{h}-batch{batch}",
                    "mode": mode,
                    "precision": precision,
                    "updates_per_second": round(count / timing.seconds, 1),
                    **timing.ratios(count * 5 * 2 * batch * d * h),
                }
            )
    return records


def _gpu_rbm(device: str, size: dict[str, int]) -> list[dict[str, Any]]:
    """PCD-1 on random bits: the fused update at each precision (``_gpu_rbm_epochs``), and one
    epoch through ``ebmlab.training.train``."""
    from ..models.rbm import BernoulliRBM
    from ..objectives.contrastive import ContrastiveDivergence
    from ..training import TrainConfig, train

    d, h, batch, n = size["visible"], size["hidden"], size["batch"], size["examples"]
    data = (torch.rand(n, d, generator=torch.Generator().manual_seed(0)) < 0.13).float()
    records = []
    for precision in TRAIN_PRECISIONS:
        records += _gpu_rbm_epochs(device, size, data, precision)
    rbm = BernoulliRBM(d, h, seed=0)
    config = TrainConfig(
        epochs=1, batch_size=batch, lr=0.01, optimizer="sgd", progress=False, device=device
    )
    objective = ContrastiveDivergence(k=1, method="pcd", n_chains=batch)
    timing = interleaved(
        lambda: train(rbm, objective, data, config), (batch, d, h), 1, device, size["peak"]
    )
    updates = -(-n // batch)
    records.append(
        {
            "benchmark": "gpu-rbm-pcd1",
            "case": f"{d}x{h}-batch{batch}",
            "mode": "ebmlab.training.train",
            "precision": "float32",
            "updates_per_second": round(updates / timing.seconds, 1),
            **timing.ratios(updates * 5 * 2 * batch * d * h),
        }
    )
    return records


def _gpu_ais(device: str, size: dict[str, int]) -> list[dict[str, Any]]:
    """``ebmlab.estimators.ais`` on the device (log weights in float64), two matmuls per beta."""
    from ..estimators import ais
    from ..models.rbm import BernoulliRBM

    d, h, n_betas, n_runs = size["visible"], size["hidden"], size["betas"], size["runs"]
    rbm = BernoulliRBM(d, h, init_std=0.05, seed=0).to(device)
    results: list[Any] = []
    timing = interleaved(
        lambda: results.append(ais(rbm, n_betas=n_betas, n_runs=n_runs, seed=0, progress=False)),
        (n_runs, d, h),
        rounds=1,
        warmup=False,
        device=device,
        peak_size=size["peak"],
    )
    result = results[-1]
    return [
        {
            "benchmark": "gpu-ais",
            "case": f"{d}x{h}-{n_betas}betas-{n_runs}runs",
            "seconds": round(timing.seconds, 3),
            "log_z": round(result.log_z, 3),
            "log_weights_dtype": str(result.log_weights.dtype),
            **timing.ratios(n_betas * 2 * (2 * n_runs * d * h)),
        }
    ]


def ula_step(
    x: torch.Tensor,
    energy_fn: Callable[[torch.Tensor], torch.Tensor],
    step_size: float,
    generator: torch.Generator,
) -> None:
    """One unadjusted Langevin step of ``x`` in place, graph-safe: the move of
    ``ebmlab.samplers.Langevin.step`` (``langevin_move``) with the rejection of non-finite rows
    done on the device (``host_check=False``) instead of after a host check."""
    from ..samplers.base import energy_and_grad
    from ..samplers.langevin import langevin_move

    _, grad = energy_and_grad(energy_fn, x)
    new, _ = langevin_move(x, grad, step_size, (2.0 * step_size) ** 0.5, generator, False)
    x.copy_(new)


def _gpu_langevin(device: str, size: dict[str, int]) -> list[dict[str, Any]]:
    """8gaussians Langevin (autograd gradient): ``ebmlab.samplers.sample`` eager, and the same
    step CUDA-graphed ``graph_steps`` at a time (``ula_step``)."""
    from ..samplers import Langevin, sample
    from .benchmarks.bench_samplers import eight_gaussians_energy

    n_chains, n_steps, chunk = size["chains"], size["steps"], size["graph_steps"]
    x0 = torch.randn(n_chains, 2, generator=torch.Generator().manual_seed(0)).to(device)
    step = 0.01

    def eager() -> None:
        sample(
            Langevin(step_size=step),
            eight_gaussians_energy,
            x0,
            n_steps,
            thin=n_steps,
            seed=0,
            progress=False,
            diagnostics=False,
        )

    x = x0.clone()
    generator = torch.Generator(device=device).manual_seed(0)
    replay = graphed(
        lambda: ula_step(x, eight_gaussians_energy, step, generator), chunk, device, (generator,)
    )

    def graphed_run() -> None:
        for _ in range(max(n_steps // chunk, 1)):
            replay()

    records = []
    for mode, fn, steps in (
        ("ebmlab.sample eager", eager, n_steps),
        ("cuda-graph", graphed_run, max(n_steps // chunk, 1) * chunk),
    ):
        timing = interleaved(fn, (n_chains, 2, 8), size["rounds"], device, size["peak"])
        records.append(
            {
                "benchmark": "gpu-langevin-8gaussians",
                "mode": mode,
                "chains": n_chains,
                "steps": steps,
                "seconds": round(timing.seconds, 4),
                "chain_steps_per_second": round(n_chains * steps / timing.seconds),
                "matmul_peak_gflops": round(timing.peak_flops / 1e9, 1),
                "clock": timing.clock,
            }
        )
    return records


def _gpu_training_precision(device: str, size: dict[str, int]) -> list[dict[str, Any]]:
    """``ebmlab.training.train`` at each training precision (``TrainConfig.precision``) on the
    precision benchmark's cases (``bench_precision``; on the CPU, the dry run, tiny networks and
    no TF32, which is CUDA only)."""
    from .benchmarks import bench_precision

    gpu = device.startswith("cuda")
    cases = bench_precision.CASES if gpu else bench_precision.TINY_CASES
    precisions = PRECISIONS if gpu else ("float32", "bfloat16")
    n = size["training_examples"]
    x = (torch.rand(n, 784, generator=torch.Generator().manual_seed(0)) < 0.13).float()
    records = bench_precision.measure(cases, x, precisions, device, repeat=size["rounds"])
    return [{**record, "benchmark": "gpu-training-precision"} for record in records]


#: The cases of the GPU check, by the names ``ebmlab bench --gpu NAME ...`` selects them with.
GPU_CASES: dict[str, Callable[[str, dict[str, int]], list[dict[str, Any]]]] = {
    "rbm": _gpu_rbm,
    "ais": _gpu_ais,
    "langevin": _gpu_langevin,
    "training-precision": _gpu_training_precision,
}


def gpu_check(dry_run: bool = False, only: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
    """The RBM, AIS and Langevin benchmarks on the GPU against its own matmul peak (measured in the
    same rounds), with CUDA graphs for the fixed-shape inner loops and the RBM update at float32,
    TF32 and bfloat16, and the PixelCNN and VAE trained through ``ebmlab.training.train`` at each
    ``TrainConfig.precision``. ``dry_run``: the same code on the CPU with tiny sizes (what the
    default test suite runs, so that the check cannot rot without a GPU). ``only``: names of
    ``GPU_CASES`` to run (None: all). The records come as each case finishes, so that a check cut
    short by a time limit still reports the cases it finished; on the GPU a case that fails reports
    its error and the others still run."""
    names = list(GPU_CASES) if not only else list(only)
    unknown = [name for name in names if name not in GPU_CASES]
    if unknown:
        raise ValueError(
            f"names: the GPU check has the cases {', '.join(GPU_CASES)}; got {', '.join(unknown)}"
        )
    if dry_run:
        device, size = "cpu", GPU_SIZES["dry"]
    else:
        if not torch.cuda.is_available():
            raise RuntimeError(
                "--gpu: no CUDA device here (torch.cuda.is_available() is False); "
                "--gpu --dry-run runs the same check on the CPU with tiny sizes"
            )
        device, size = "cuda", GPU_SIZES["full"]
    return _gpu_records(device, size, dry_run, names)


def _gpu_records(
    device: str, size: dict[str, int], dry_run: bool, names: list[str]
) -> Iterator[dict[str, Any]]:
    from .benchmarks.common import machine_info

    machine = machine_info("cuda" if device == "cuda" else "cpu")
    for name in names:
        case = GPU_CASES[name]
        try:
            found = case(device, size)
        except Exception as error:
            if dry_run:
                raise
            found = [{"benchmark": f"gpu-{name}", "error": f"{type(error).__name__}: {error}"}]
        for record in found:
            yield {**record, "device": device, "dry_run": dry_run, **machine}
