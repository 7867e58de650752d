"""HEAR embedding throughput of the base preset, next to this machine's own matmul GFLOP/s.

Prints seconds of audio embedded per second of wall time for 1 and 8 clips of 10 s, the achieved
GFLOP/s (FLOPs counted by torch's FlopCounterMode on the same call) and its ratio to the matmul
GFLOP/s measured in this run. Target: >= 65 % of the matmul figure. On a GPU, also bf16 throughput
for 256 clips of 10 s and the CPU/GPU agreement.
"""

from __future__ import annotations

import time
import warnings

import torch
from torch.utils.flop_counter import FlopCounterMode

from hear_wavjepa import get_timestamp_embeddings, load_model

SR = 16_000
CLIP_SECONDS = 10


def best_of(fn, repeats: int) -> float:
    """Minimum wall time of `repeats` calls (after one warm-up call), in seconds."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_gflops(device: str, dtype: torch.dtype = torch.float32, n: int = 2048) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)

    def run():
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()

    return 2 * n**3 / best_of(run, 5) / 1e9


def embedding_flops(model, audio: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        get_timestamp_embeddings(audio, model)
    return counter.get_total_flops()


def cpu_report() -> None:
    model = load_model(preset="base")
    peak = matmul_gflops("cpu")
    print(f"CPU, {torch.get_num_threads()} threads; matmul 2048^3 fp32: {peak:.1f} GFLOP/s")
    print(f"{'clips':>5} {'audio s/s':>10} {'GFLOP/s':>8} {'of matmul':>9}")
    for clips in (1, 8):
        audio = torch.rand(clips, CLIP_SECONDS * SR) * 2 - 1
        seconds = best_of(
            lambda a=audio: get_timestamp_embeddings(a, model), 3 if clips == 1 else 2
        )
        gflops = embedding_flops(model, audio) / seconds / 1e9
        rate = clips * CLIP_SECONDS / seconds
        print(f"{clips:>5} {rate:>10.2f} {gflops:>8.1f} {gflops / peak:>9.0%}")


def gpu_report() -> None:
    cpu_model = load_model(preset="base")
    gpu_model = load_model(preset="base", precision="bfloat16", max_chunks=256).to("cuda")
    peak = matmul_gflops("cuda", torch.bfloat16, 8192)
    print(f"GPU {torch.cuda.get_device_name(0)}; matmul 8192^3 bf16: {peak / 1000:.1f} TFLOP/s")
    audio = torch.rand(256, CLIP_SECONDS * SR, device="cuda") * 2 - 1

    def run():
        get_timestamp_embeddings(audio, gpu_model)
        torch.cuda.synchronize()

    seconds = best_of(run, 3)
    tflops = embedding_flops(gpu_model, audio) / seconds / 1e12
    print(
        f"256 clips x 10 s, bf16: {256 * CLIP_SECONDS / seconds:,.0f} s of audio/s, "
        f"{tflops:.1f} TFLOP/s ({tflops * 1000 / peak:.0%} of matmul)"
    )
    fp32_gpu = load_model(preset="base").to("cuda")
    sample = torch.rand(2, CLIP_SECONDS * SR) * 2 - 1
    reference = get_timestamp_embeddings(sample, cpu_model)[0]
    for name, model in (("fp32", fp32_gpu), ("bf16", gpu_model)):
        out = get_timestamp_embeddings(sample.cuda(), model)[0].cpu()
        err = (out - reference).abs().max().item()
        cos = torch.nn.functional.cosine_similarity(out, reference, dim=-1).min().item()
        print(f"CPU vs GPU {name}: max abs diff {err:.2e}, min frame cosine {cos:.5f}")


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    cpu_report()
    if torch.cuda.is_available():
        gpu_report()
