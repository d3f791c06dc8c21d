"""Our CALVIN-compatible play table (scene D) in PyBullet: `calvin.scene` (procedural desk + patched Panda),
`calvin.env` (`CalvinSim`, `CalvinEnv`, registered as `skimo/Calvin-v0`), `calvin.primitives` (scripted skills)."""
