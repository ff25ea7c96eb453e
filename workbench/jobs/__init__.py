"""The job system: trainers and sweeps started in the background, their queues, and run comparison.

It sits between the interfaces (CLI, TUI), which call it, and the engine, which it calls: it starts
`s2s-bench resume` and `sweep-runner` processes and reads run folders, never a trainer's objects.
"""
