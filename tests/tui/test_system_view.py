"""The system view in the workbench: the machine's screen (g), the dashboard's line of small charts and
the runs table's `on` column, read through a stand-in NVML."""

import io
import json
import os

from fake_nvml import FakeGpu, FakeNvml
from rich.console import Console

from workbench.engine.run_folder import RunFolder
from workbench.engine.system_monitor import SystemMonitor
from workbench.tui.components.runs_table import RunsTable
from workbench.tui.components.system_strip import SystemStrip

from .driving import drive, settle, wait_until


def gpu_box(utilization: int = 87) -> SystemMonitor:
    """One GPU on which this process (the live_run fixture's trainer) holds 3 GiB."""
    return SystemMonitor(FakeNvml([FakeGpu(utilization=utilization, processes={os.getpid(): 3 * 2**30})]))


def text(widget) -> str:
    """What a Static shows, as plain text."""
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


def test_g_shows_every_gpu_and_every_trainer_of_the_machine(make_app, live_run):
    async def scenario(pilot):
        await pilot.press("g")
        await pilot.pause()
        assert pilot.app.current_mode == "system"
        screen = pilot.app.screen
        await wait_until(pilot, lambda: "NVIDIA H100" in text(screen.query_one("#devices")))
        await wait_until(pilot, lambda: "dates-live" in text(screen.query_one("#trainers")))
        devices, trainers = text(screen.query_one("#devices")), text(screen.query_one("#trainers"))
        assert "87%" in devices and "12.0 / 80.0 GiB" in devices and "310 W" in devices and "cpu" in devices
        assert "gpu0" in trainers and "3.0 GiB" in trainers and str(os.getpid()) in trainers
        await wait_until(pilot, lambda: len(pilot.app.system.readings) >= 3)
        await pilot.pause(0.2)
        assert "▇▇▇" in text(screen.query_one("#devices"))  # the GPU's use (87%) over time, as bars

    drive(make_app(attach_live=False, system_monitor=gpu_box(), system_interval=0.05), scenario, (120, 30))


def test_the_workbench_can_open_on_the_system_screen(make_app, live_run):
    async def scenario(pilot):
        await pilot.pause()
        assert pilot.app.current_mode == "system" and pilot.app.history is None  # no live run attached
        await pilot.press("r")
        await pilot.pause(0.3)
        assert pilot.app.current_mode == "runs"

    drive(make_app(mode="system", system_monitor=gpu_box()), scenario)


def test_without_a_gpu_the_system_screen_shows_the_cpu_side_and_says_so(make_app, runs_dir):
    no_gpu = SystemMonitor(FakeNvml(init_error="NVML Shared Library Not Found"))

    async def scenario(pilot):
        await pilot.press("g")
        screen = pilot.app.screen
        await wait_until(pilot, lambda: "no NVIDIA GPU" in text(screen.query_one("#devices")))
        assert "cores" in text(screen.query_one("#devices"))
        assert "No run is training on this machine" in text(screen.query_one("#trainers"))
        assert pilot.app.return_code is None  # no error

    drive(make_app(system_monitor=no_gpu, system_interval=0.05), scenario, (120, 30))


def test_the_dashboard_charts_the_open_runs_gpu_and_cpu_over_time(make_app, live_run):
    async def scenario(pilot):
        await settle(pilot)
        strip = pilot.app.screen.query_one(SystemStrip)
        await wait_until(pilot, lambda: "gpu0" in text(strip) and len(pilot.app.system.readings) >= 3)
        drawn = text(strip)
        assert strip.display and "87%" in drawn and "gpu mem" in drawn and "3.0 GiB" in drawn
        assert "cpu" in drawn and "resident" in drawn and "█" in drawn

    drive(make_app(run=live_run, system_monitor=gpu_box(), system_interval=0.05), scenario, (120, 30))


def test_a_finished_run_still_says_the_memory_it_needed(make_app, finished_run):
    metrics = RunFolder(finished_run).metrics_path
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    for record in lines:
        if record["kind"] == "train":
            record.update(peak_host_mb=2048.0, peak_cuda_mb=5321.0)
    metrics.write_text("".join(json.dumps(r) + "\n" for r in lines))

    async def scenario(pilot):
        await settle(pilot)
        strip = pilot.app.screen.query_one(SystemStrip)
        assert strip.display and "peak host 2,048 MB, cuda 5,321 MB" in text(strip)

    drive(make_app(run=finished_run, system_monitor=gpu_box()), scenario, (120, 30))


def test_a_dashboard_without_a_peak_or_a_live_trainer_has_no_system_line(make_app, finished_run):
    async def scenario(pilot):
        await settle(pilot, 0.2)
        assert not pilot.app.screen.query_one(SystemStrip).display

    drive(make_app(run=finished_run, system_monitor=gpu_box(), system_interval=0.05), scenario)


def test_the_runs_table_says_which_gpu_a_live_run_holds_and_how_busy_it_is(make_app, live_run, runs_dir):
    async def scenario(pilot):
        await pilot.pause()
        table = pilot.app.screen.query_one(RunsTable)
        column = [c.label.plain for c in table.columns.values()].index("on")

        def cell() -> str:
            return str(table.get_row_at(0)[column]) if table.row_count else ""

        await wait_until(pilot, lambda: cell() == "gpu0 42%")
        assert cell() == "gpu0 42%"

    app = make_app(attach_live=False, system_monitor=gpu_box(utilization=42), system_interval=0.05)
    drive(app, scenario, (120, 30))


def test_an_app_told_not_to_read_the_machine_never_reads_it(make_app, runs_dir):
    """`bench ui --no-system` measures the UI without the system view's sampling: the control must
    truly take no readings."""
    monitor = gpu_box()
    reads = []
    monitor.read = lambda pids: reads.append(pids)  # type: ignore[method-assign]

    async def scenario(pilot):
        await pilot.press("g")
        await pilot.pause(0.5)
        assert reads == [] and not pilot.app.system.readings

    drive(make_app(attach_live=False, system_monitor=monitor, system_interval=0), scenario, (120, 30))
