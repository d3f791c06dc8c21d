"""Minimal stand-in for the parts of the d4rl fork SkiMo uses: the `randMaze0S40` point-mass maze (official
`mujoco` bindings), its waypoint controller and a seeded offline-dataset generator.

Deliberately not installed into site-packages (it would shadow the PyPI `d4rl`); run from the repository root.
"""
