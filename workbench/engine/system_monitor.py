"""What the machine is doing: each NVIDIA GPU through NVML (nvidia-ml-py), the host and chosen processes
through psutil. Never parses `nvidia-smi` text; without NVML the reading says why there is no GPU."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from workbench.engine.run_folder import LIVE_STATES, RunFolder, list_runs


@dataclass(frozen=True)
class GpuReading:
    index: int
    name: str
    utilization: int | None  # percent of the last sample period a kernel ran
    memory_used: int  # bytes
    memory_total: int
    temperature: int | None  # °C
    power: float | None  # watts
    processes: dict[int, int | None] = field(default_factory=dict)  # pid -> GPU memory (bytes; None: hidden)


@dataclass(frozen=True)
class ProcessReading:
    pid: int
    cpu_percent: float  # since the previous reading; 100 per busy core
    rss: int  # resident memory, bytes
    gpus: tuple[int, ...]  # the GPUs it has a context on
    gpu_memory: int | None  # bytes over those GPUs; None where NVML does not say


@dataclass(frozen=True)
class SystemReading:
    time: float
    cpu_percent: float  # of the whole machine
    cpu_count: int
    memory_used: int
    memory_total: int
    gpus: tuple[GpuReading, ...]
    no_gpu: str  # why there is no GPU reading ("" when there are GPUs)
    processes: dict[int, ProcessReading]

    def usage(self, pids: Iterable[int]) -> ProcessReading | None:
        """The processes' readings summed (a distributed run's ranks); None when none of them is here."""
        found = [self.processes[pid] for pid in pids if pid in self.processes]
        if not found:
            return None
        memories = [p.gpu_memory for p in found if p.gpu_memory is not None]
        return ProcessReading(
            pid=found[0].pid,
            cpu_percent=sum(p.cpu_percent for p in found),
            rss=sum(p.rss for p in found),
            gpus=tuple(sorted({g for p in found for g in p.gpus})),
            gpu_memory=sum(memories) if memories else None,
        )


class SystemMonitor:
    """Takes readings; `nvml` stands in for the `pynvml` module (tests pass a fake one)."""

    def __init__(self, nvml: Any | None = None):
        self._nvml = nvml
        self._no_gpu: str | None = None  # set once NVML was tried
        self._processes: dict[int, psutil.Process] = {}  # kept: cpu_percent() measures between calls
        psutil.cpu_percent(None)

    def read(self, pids: Iterable[int] = ()) -> SystemReading:
        """One reading of the machine, with `pids`' processes (those still alive). Blocking: call it off
        an event loop."""
        gpus = self._read_gpus()
        memory = psutil.virtual_memory()
        processes = {}
        for pid in dict.fromkeys(pids):
            reading = self._read_process(pid, gpus)
            if reading is not None:
                processes[pid] = reading
        return SystemReading(
            time=time.time(),
            cpu_percent=psutil.cpu_percent(None),
            cpu_count=psutil.cpu_count() or 1,
            memory_used=memory.total - memory.available,
            memory_total=memory.total,
            gpus=gpus,
            no_gpu=self._no_gpu or "",
            processes=processes,
        )

    def close(self) -> None:
        if self._no_gpu == "" and self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # shutting down what may already be gone
                pass
        self._no_gpu = None

    # NVML -----------------------------------------------------------------------------------------
    def _start_nvml(self) -> bool:
        if self._no_gpu is None:
            try:
                if self._nvml is None:
                    import pynvml

                    self._nvml = pynvml
                self._nvml.nvmlInit()
                self._no_gpu = "" if self._nvml.nvmlDeviceGetCount() else "no NVIDIA GPU on this machine"
            except ImportError:
                self._no_gpu = "no NVIDIA GPU reading: nvidia-ml-py is not installed"
            except Exception as exc:  # NVMLError: no driver, no library, no device
                self._no_gpu = f"no NVIDIA GPU ({exc})"
        return not self._no_gpu

    def _read_gpus(self) -> tuple[GpuReading, ...]:
        if not self._start_nvml():
            return ()
        try:
            return self._read_each_gpu()
        except Exception as exc:  # NVMLError: a GPU that fell off the bus, a driver reloaded
            self._no_gpu = f"no NVIDIA GPU reading ({exc})"
            return ()

    def _read_each_gpu(self) -> tuple[GpuReading, ...]:
        nvml = self._nvml
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            utilization = _optional(lambda h=handle: nvml.nvmlDeviceGetUtilizationRates(h).gpu)
            milliwatts = _optional(lambda h=handle: nvml.nvmlDeviceGetPowerUsage(h))
            processes = _optional(lambda h=handle: nvml.nvmlDeviceGetComputeRunningProcesses(h)) or []
            gpus.append(
                GpuReading(
                    index=index,
                    name=_text(nvml.nvmlDeviceGetName(handle)),
                    utilization=utilization,
                    memory_used=int(memory.used),
                    memory_total=int(memory.total),
                    temperature=_optional(
                        lambda h=handle: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU)
                    ),
                    power=None if milliwatts is None else milliwatts / 1000,
                    processes={int(p.pid): _gpu_memory(p) for p in processes},
                )
            )
        return tuple(gpus)

    # psutil ---------------------------------------------------------------------------------------
    def _read_process(self, pid: int, gpus: tuple[GpuReading, ...]) -> ProcessReading | None:
        try:
            process = self._processes.get(pid)
            if process is None:
                process = self._processes[pid] = psutil.Process(pid)
            with process.oneshot():
                cpu, rss = process.cpu_percent(None), process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self._processes.pop(pid, None)
            return None
        held = [gpu for gpu in gpus if pid in gpu.processes]
        memories = [used for gpu in held if (used := gpu.processes[pid]) is not None]
        return ProcessReading(
            pid=pid,
            cpu_percent=cpu,
            rss=rss,
            gpus=tuple(gpu.index for gpu in held),
            gpu_memory=sum(memories) if memories else None,
        )


def _optional(read: Any) -> Any:
    """A value some GPUs do not report (power on some boards, utilisation under MIG): None then."""
    try:
        return read()
    except Exception:  # NVMLError_NotSupported and kin
        return None


def _gpu_memory(process: Any) -> int | None:
    used = getattr(process, "usedGpuMemory", None)
    return int(used) if isinstance(used, int) and used < 2**63 else None  # NVML_VALUE_NOT_AVAILABLE


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def trainer_pids(run: RunFolder) -> list[int]:
    """The processes training `run` on this machine: its trainer, and for a run over several processes
    the trainer's siblings under the launcher (torchrun's other ranks). [] when none is alive here."""
    status = run.status()
    if status.get("state") not in LIVE_STATES or not isinstance(status.get("pid"), int):
        return []
    if status.get("host") != socket.gethostname():
        return []  # its pid is another machine's
    try:
        trainer = psutil.Process(status["pid"])
        processes = status.get("processes")
        if isinstance(processes, int) and processes > 1 and (parent := trainer.parent()) is not None:
            ranks = [p.pid for p in parent.children() if p.pid != trainer.pid]
            return [trainer.pid, *sorted(ranks)]
        return [trainer.pid]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


@dataclass(frozen=True)
class LiveRun:
    """A run being trained on this machine: its name, torch device and processes (rank 0 first)."""

    name: str
    device: str
    pids: tuple[int, ...]

    def held_gpus(self, reading: SystemReading) -> tuple[int, ...]:
        """The GPUs the run holds: those NVML lists its processes on, else its torch device's (NVML in a
        container lists the host's pids, which match none of the container's)."""
        usage = reading.usage(self.pids)
        if usage is not None and usage.gpus:
            return usage.gpus
        kind, _, index = self.device.partition(":")
        gpu = int(index) if index.isdigit() else 0
        return (gpu,) if kind == "cuda" and any(g.index == gpu for g in reading.gpus) else ()


def live_runs(runs_dir: Path) -> list[LiveRun]:
    """The runs under `runs_dir` that a process on this machine is training (a sweep's runs included)."""
    found = []
    for run in list_runs(runs_dir):
        pids = trainer_pids(run)
        if pids:
            status = run.read_status_file()
            device = str(status.get("torch_device") or status.get("device") or "?")
            found.append(LiveRun(run.name, device, tuple(pids)))
    return found


# The view as rows of text, one way for the command line and the TUI ---------------------------------
GPU_COLUMNS = ("gpu", "name", "busy", "memory", "temp", "power")
PROCESS_COLUMNS = ("run", "pid", "device", "cpu", "resident", "gpu memory")


def gib(size: int | None) -> str:
    return "—" if size is None else f"{size / 2**30:.1f} GiB"


def gpu_rows(reading: SystemReading) -> list[tuple[str, ...]]:
    """One row per GPU, then one for the host's CPUs and memory."""
    rows = [
        (
            str(g.index),
            g.name,
            "—" if g.utilization is None else f"{g.utilization}%",
            f"{g.memory_used / 2**30:.1f} / {gib(g.memory_total)}",
            "—" if g.temperature is None else f"{g.temperature} °C",
            "—" if g.power is None else f"{g.power:.0f} W",
        )
        for g in reading.gpus
    ]
    rows.append(
        (
            "cpu",
            f"{reading.cpu_count} cores",
            f"{reading.cpu_percent:.0f}%",
            f"{reading.memory_used / 2**30:.1f} / {gib(reading.memory_total)}",
            "",
            "",
        )
    )
    return rows


def process_rows(reading: SystemReading, runs: list[LiveRun]) -> list[tuple[str, ...]]:
    """One row per process of each live run (a distributed run's ranks as `name` rank N)."""
    rows = []
    for run in runs:
        for rank, pid in enumerate(run.pids):
            p = reading.processes.get(pid)
            if p is None:
                continue
            device = ",".join(f"gpu{i}" for i in p.gpus) or (run.device if rank == 0 else "—")
            rows.append(
                (
                    run.name if rank == 0 else f"  rank {rank}",
                    str(pid),
                    device,
                    f"{p.cpu_percent:.0f}%",
                    gib(p.rss),
                    gib(p.gpu_memory) if p.gpus else "—",
                )
            )
    return rows


def busy_text(reading: SystemReading | None, run: LiveRun | None) -> str:
    """Which GPU(s) a run holds and how busy they are ("gpu0 87%"), or its CPU share ("cpu 340%")."""
    if reading is None or run is None or (usage := reading.usage(run.pids)) is None:
        return ""
    gpus = run.held_gpus(reading)
    if not gpus:
        return f"cpu {usage.cpu_percent:.0f}%"
    busy = {g.index: g.utilization for g in reading.gpus}
    return " ".join(f"gpu{i} {busy[i]}%" if busy.get(i) is not None else f"gpu{i}" for i in gpus)
