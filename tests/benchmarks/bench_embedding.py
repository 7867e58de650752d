"""HEAR embedding throughput of the base preset next to this machine's own matmul rate, measured
side by side in one run.

CPU (fp32, torch's default thread count): every round runs, one after the other, a 2048^3 matmul,
the encoder's four Linear layers at the shapes one forward pass gives them (F.linear with bias:
768 -> 2304 (QKV), 768 -> 768, 768 -> 3072, 3072 -> 768; M = 200 tokens x the windows of the
pass), `get_timestamp_embeddings` on 1 and on 8 clips of 10 s, and the front end and the
transformer alone on one pass of 32 windows. Each item keeps its best round, so a burst of load
from other processes costs all items alike. FLOPs are counted by torch's FlopCounterMode on the
same calls. Printed: each matmul rate, the embedding's GFLOP/s and its share of the best matmul
rate (target >= 80 %), and the same for the front end and the transformer alone. A last line
repeats the ratio on one thread in CPU seconds, which load from other processes hardly moves.

CUDA (when one is present; written for an H100/H200 and not yet run on one): bf16 autocast;
whether SDPA's flash kernel runs on the encoder (forced with `sdpa_kernel([FLASH_ATTENTION])`)
and which SDPA kernels embedding used (profiler); the largest pass of windows that fits, found by
doubling until out of memory; clips/s of 10 s clips at that size; CPU-GPU agreement.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import time
import warnings
from collections.abc import Callable

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from hear_wavjepa import get_timestamp_embeddings, load_model

SR = 16_000
CLIP_SECONDS = 10
#: 10 s clips give 999 frames: 4 whole windows of 200 frames and one of 199.
WINDOWS_PER_CLIP = 5
ROUNDS = 3
TARGET = 0.80


def timed(fn: Callable[[], object], sync: bool = False) -> float:
    start = time.perf_counter()
    fn()
    if sync:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def linear_layers(dim: int, mlp: int, tokens: int, device: str, dtype: torch.dtype):
    """The encoder's Linear layers at `tokens` rows: (call, FLOPs) with random operands."""
    shapes = [(dim, 3 * dim), (dim, dim), (dim, mlp), (mlp, dim)]
    operands = [
        (
            torch.randn(tokens, n_in, device=device, dtype=dtype),
            torch.randn(n_out, n_in, device=device, dtype=dtype) * 0.02,
            torch.randn(n_out, device=device, dtype=dtype),
        )
        for n_in, n_out in shapes
    ]

    def run() -> None:
        for x, weight, bias in operands:
            F.linear(x, weight, bias)

    return run, sum(2 * tokens * n_in * n_out for n_in, n_out in shapes)


def square_matmul(n: int, device: str, dtype: torch.dtype):
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return (lambda: a @ b), 2 * n**3


def cpu_report() -> None:
    model = load_model(preset="base")
    config = model.config
    dim, mlp = config.encoder.dim, config.encoder.mlp_dim
    passes = model.options.max_chunks
    frames = config.frames_per_crop
    clips_1 = torch.rand(1, CLIP_SECONDS * SR) * 2 - 1
    clips_8 = torch.rand(8, CLIP_SECONDS * SR) * 2 - 1
    windows = torch.randn(passes, 1, config.crop_samples)
    with torch.no_grad():
        tokens = model.encoder.frontend(windows)
    items: dict[str, tuple[Callable[[], object], int]] = {
        "matmul 2048^3": square_matmul(2048, "cpu", torch.float32),
        f"linears, {WINDOWS_PER_CLIP * frames} tokens": linear_layers(
            dim, mlp, WINDOWS_PER_CLIP * frames, "cpu", torch.float32
        ),
        f"linears, {passes * frames} tokens": linear_layers(
            dim, mlp, passes * frames, "cpu", torch.float32
        ),
    }
    matmuls = list(items)

    def embed(audio: torch.Tensor) -> Callable[[], object]:
        return lambda: get_timestamp_embeddings(audio, model)

    def no_grad(fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad():
                return fn()

        return run

    for name, fn in (
        ("embed 1 clip x 10 s", embed(clips_1)),
        ("embed 8 clips x 10 s", embed(clips_8)),
        (f"front end, {passes} windows", no_grad(lambda: model.encoder.frontend(windows))),
        (f"transformer, {passes} windows", no_grad(lambda: model.encoder.transformer(tokens))),
    ):
        items[name] = (fn, count_flops(fn))
    best = {name: float("inf") for name in items}
    load_before = os.getloadavg()[0]
    for fn, _ in items.values():  # warm-up
        fn()
    for _ in range(ROUNDS):
        for name, (fn, _) in items.items():
            best[name] = min(best[name], timed(fn))
    rate = {name: flops / best[name] / 1e9 for name, (_, flops) in items.items()}
    peak = max(rate[name] for name in matmuls)
    print(
        f"CPU, base fp32, {torch.get_num_threads()} threads; best of {ROUNDS} interleaved rounds; "
        f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print(
        f"{'item':<28} {'GFLOP':>7} {'best s':>7} {'GFLOP/s':>8} {'of matmul':>9} {'audio s/s':>9}"
    )
    for name, (_, flops) in items.items():
        clips = 8 if "8 clips" in name else 1 if "1 clip" in name else 0
        audio = f"{clips * CLIP_SECONDS / best[name]:>9.2f}" if clips else ""
        print(
            f"{name:<28} {flops / 1e9:>7.1f} {best[name]:>7.3f} {rate[name]:>8.1f} "
            f"{rate[name] / peak:>9.0%} {audio}"
        )
    share = rate["embed 8 clips x 10 s"] / peak
    verdict = "met" if share >= TARGET else "not met"
    print(
        f"embedding (8 clips) at {share:.0%} of the best matmul rate ({peak:.1f} GFLOP/s); "
        f"target >= {TARGET:.0%}: {verdict}"
    )
    single_thread_cpu_time(items, matmuls)


def single_thread_cpu_time(items: dict, matmuls: list[str]) -> None:
    """The same ratio on one thread, timed in process CPU seconds: other processes' load slows
    the wall clock (a descheduled thread stalls its partner at every op) but not this."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    names = [*matmuls, "embed 1 clip x 10 s"]
    best = {name: float("inf") for name in names}
    for _ in range(ROUNDS):
        for name in names:
            start = time.process_time()
            items[name][0]()
            best[name] = min(best[name], time.process_time() - start)
    torch.set_num_threads(threads)
    rate = {name: items[name][1] / best[name] / 1e9 for name in names}
    peak = max(rate[name] for name in matmuls)
    matmul_rates = ", ".join(f"{name} {rate[name]:.1f}" for name in matmuls)
    print(
        f"1 thread, GFLOP per CPU second: {matmul_rates}; embed 1 clip "
        f"{rate['embed 1 clip x 10 s']:.1f} = {rate['embed 1 clip x 10 s'] / peak:.0%} of matmul"
    )


def out_of_memory(error: RuntimeError) -> bool:
    text = str(error)
    return isinstance(error, torch.OutOfMemoryError) or any(
        word in text for word in ("out of memory", "ALLOC_FAILED")
    )


def sdpa_kernels_used(fn: Callable[[], object]) -> dict[str, int]:
    """The SDPA kernels (aten op names) one call of `fn` ran, with their call counts."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
        torch.cuda.synchronize()
    return {
        event.key.removeprefix("aten::_scaled_dot_product_"): event.count
        for event in prof.key_averages()
        if event.key.startswith("aten::_scaled_dot_product_")
    }


def gpu_report() -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model = load_model(preset="base", precision="bfloat16").to("cuda")
    config = model.config
    run, flops = square_matmul(8192, "cuda", torch.bfloat16)
    run()
    peak = flops / min(timed(run, sync=True) for _ in range(5)) / 1e12
    print(f"GPU {torch.cuda.get_device_name(0)}; matmul 8192^3 bf16: {peak:.0f} TFLOP/s")

    whole = torch.randn(8, 1, config.crop_samples, device="cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16)
    try:
        with torch.no_grad(), autocast, sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            model.encoder(whole)
        flash = "runs"
    except RuntimeError as error:
        flash = f"does not run: {str(error).splitlines()[0]}"
    print(f"SDPA flash kernel on the encoder (bf16, no padding mask): {flash}")
    # flash for the passes of whole windows; for the clips' partial last windows, whose
    # key-padding mask flash does not take, the memory-efficient kernel (math as a last resort).
    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]

    def embed(audio: torch.Tensor) -> Callable[[], object]:
        def go() -> object:
            with sdpa_kernel(backends):
                return get_timestamp_embeddings(audio, model)

        return go

    def clips_for(windows: int) -> torch.Tensor:
        # (WINDOWS_PER_CLIP - 1) whole windows per clip fill a pass of `windows`; the partial
        # last windows follow in a smaller pass.
        n = max(1, windows // (WINDOWS_PER_CLIP - 1))
        return torch.rand(n, CLIP_SECONDS * SR, device="cuda") * 2 - 1

    fits, windows, stop = None, 64, "the cap of 65,536 windows"
    while windows <= 65_536:
        model.options = dataclasses.replace(model.options, max_chunks=windows)
        try:
            audio = clips_for(windows)
            embed(audio)()
            torch.cuda.synchronize()
            fits = windows
            windows *= 2
        except RuntimeError as error:  # torch.OutOfMemoryError, or a library's failed alloc
            if not out_of_memory(error):
                raise
            stop = f"{windows} ran out of memory"
            break
        finally:
            audio = None
            gc.collect()
            torch.cuda.empty_cache()
    if fits is None:
        print("not even 64 windows per pass fit")
        return
    print(f"largest pass that fits: {fits} windows, doubling from 64 ({stop})")
    while True:
        model.options = dataclasses.replace(model.options, max_chunks=fits)
        audio = clips_for(fits)
        call = embed(audio)
        try:
            call()
            seconds = min(timed(call, sync=True) for _ in range(3))
            break
        except RuntimeError as error:
            if not out_of_memory(error) or fits <= 64:
                raise
            audio = call = None
            gc.collect()
            torch.cuda.empty_cache()
            fits //= 2
            print(f"out of memory while timing; {fits} windows per pass")
    kernels = sdpa_kernels_used(call)
    tflops = count_flops(call) / seconds / 1e12
    n = len(audio)
    print(f"SDPA kernels used while embedding (op: calls): {kernels}")
    print(
        f"{n} clips x {CLIP_SECONDS} s, bf16, {fits} windows per pass: {n / seconds:,.1f} clips/s, "
        f"{n * CLIP_SECONDS / seconds:,.0f} s of audio/s, {tflops:.0f} TFLOP/s "
        f"({tflops / peak:.0%} of the bf16 matmul)"
    )
    audio = call = None
    gc.collect()
    torch.cuda.empty_cache()

    cpu_model = load_model(preset="base")
    fp32_gpu = load_model(preset="base").to("cuda")
    model.options = dataclasses.replace(model.options, max_chunks=32)
    sample = torch.rand(2, CLIP_SECONDS * SR) * 2 - 1
    reference = get_timestamp_embeddings(sample, cpu_model)[0]
    for name, gpu_model in (("fp32", fp32_gpu), ("bf16", model)):
        out = get_timestamp_embeddings(sample.cuda(), gpu_model)[0].cpu()
        err = (out - reference).abs().max().item()
        cos = F.cosine_similarity(out, reference, dim=-1).min().item()
        print(f"CPU vs GPU {name}: max abs diff {err:.2e}, min frame cosine {cos:.5f}")


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    cpu_report()
    if torch.cuda.is_available():
        gpu_report()
