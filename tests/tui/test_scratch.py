from .driving import drive
from .test_runs_screen import open_runs


def text(app):
    return "\n".join(s.text for s in app.screen._compositor.render_strips())


def test_scratch(make_app, sweep_runs, finished_run):
    async def scenario(pilot):
        table = await open_runs(pilot)
        table.focus()
        await pilot.pause()
        open("/tmp/runs.txt", "w").write(text(pilot.app))
        await pilot.press("c")
        await pilot.pause(0.3)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.5)
        open("/tmp/compare.txt", "w").write(text(pilot.app))
        print(pilot.app.screen)

    drive(make_app(attach_live=False), scenario, size=(80, 24))
