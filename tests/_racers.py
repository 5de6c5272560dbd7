"""Processes racing for a run directory (a module of its own: spawned racers import only tfmia.runs)."""

from tfmia.runs import RunDirectory


def claim_in_turn(writer: int, folders: list[str], barrier, results) -> None:
    """For each folder: wait for the other racer, then claim the folder with this writer's configuration."""
    for folder in folders:
        barrier.wait()
        try:
            RunDirectory(folder, "race", {"writer": writer})
            results.put((folder, writer, None))
        except ValueError as exc:
            results.put((folder, writer, str(exc)))
