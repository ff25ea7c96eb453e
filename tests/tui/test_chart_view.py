"""The charts' window on the x axis (zoom, pan) and their cursor."""

from workbench.tui.chart_view import ChartView, in_window, value_at

STEPS = [float(s) for s in range(20, 1001, 20)]


def test_the_whole_extent_by_default():
    assert ChartView().limits(20, 1000) == (20, 1000)
    assert ChartView().limits(100, 100) == (99, 101)  # one point: never an empty range


def test_zooming_in_keeps_the_latest_steps_in_view_and_zooming_out_returns_to_all():
    view = ChartView()
    view.zoom(0.5, 20, 1000)
    assert view.limits(20, 1000) == (510, 1000)
    assert view.limits(20, 2000) == (1510, 2000)  # a live run grows: the window follows it
    view.zoom(2, 20, 1000)
    assert view.width is None and view.limits(20, 1000) == (20, 1000)


def test_panning_moves_half_a_window_and_stops_at_the_ends():
    view = ChartView()
    view.pan(-1, 20, 1000)
    assert view.limits(20, 1000) == (20, 1000)  # nothing to pan when everything is shown
    view.zoom(0.25, 20, 1000)  # 245 steps, ending at 1000
    view.pan(-1, 20, 1000)
    assert view.limits(20, 1000) == (632.5, 877.5)
    assert view.limits(20, 2000) == (632.5, 877.5)  # panned away: it stays where it was put
    for _ in range(10):
        view.pan(-1, 20, 1000)
    assert view.limits(20, 1000) == (20, 265)
    for _ in range(10):
        view.pan(1, 20, 1000)
    assert view.end is None and view.limits(20, 1000) == (755, 1000)


def test_zooming_a_panned_window_keeps_its_centre():
    view = ChartView(width=400.0, end=600.0)
    view.zoom(0.5, 20, 1000)
    assert view.limits(20, 1000) == (300, 500)


def test_the_cursor_starts_at_the_latest_point_and_moves_by_logged_steps():
    view = ChartView()
    view.move_cursor(-1, STEPS, 20, 1000)
    assert view.cursor == 1000
    view.move_cursor(-1, STEPS, 20, 1000)
    assert view.cursor == 960  # at least 1/40 of the window (24.5 steps) away, on a logged step
    view.move_cursor(1, STEPS, 20, 1000)
    view.move_cursor(1, STEPS, 20, 1000)
    assert view.cursor == 1000  # it stops at the last point
    view.zoom(0.125, 20, 1000)
    view.move_cursor(-1, STEPS, 20, 1000)
    assert view.cursor == 980  # zoomed in, one logged step a press
    view.reset()
    assert view.key() == (None, None, None)


def test_a_curve_has_at_the_cursor_the_value_of_its_last_point_there():
    xs, ys = [100.0, 200.0, 300.0], [9.0, 8.0, 7.0]
    assert value_at(xs, ys, 250) == 8.0 and value_at(xs, ys, 300) == 7.0 and value_at(xs, ys, 50) is None


def test_a_window_keeps_one_point_beyond_each_edge():
    assert in_window(STEPS, STEPS, 105, 195) == ([100.0, 120.0, 140.0, 160.0, 180.0, 200.0],) * 2
